//! The one error shape of the API: `{"error": {"code", "message", "field"?}}`.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use crate::store::StoreError;

#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    pub field: Option<String>,
}

/// Every error answer of the API (all 4xx and 5xx of `/api/v1` and the live
/// outputs) has this body.
#[derive(Serialize, utoipa::ToSchema)]
#[schema(as = ApiErrorBody)]
pub(super) struct Body<'a> {
    #[schema(inline)]
    error: Inner<'a>,
}

#[derive(Serialize, utoipa::ToSchema)]
struct Inner<'a> {
    /// Machine-readable: `invalid_field`, `invalid_json`, `invalid_query`,
    /// `invalid_path`, `unauthorized`, `forbidden`, `not_found`, `conflict`,
    /// `device_offline`, `device_timeout`, `storage_full`, … (stable).
    code: &'a str,
    /// For people; may change between versions.
    message: &'a str,
    /// The request field at fault (`name`, `inner.port`), when one is.
    #[serde(skip_serializing_if = "Option::is_none")]
    field: Option<&'a str>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            field: None,
        }
    }

    pub fn invalid_field(field: &str, message: impl Into<String>) -> Self {
        Self {
            status: StatusCode::BAD_REQUEST,
            code: "invalid_field",
            message: message.into(),
            field: Some(field.to_owned()),
        }
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", message)
    }

    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "unauthorized", message)
    }

    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, "forbidden", message)
    }

    pub fn conflict(message: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, "conflict", message)
    }

    /// A failure that is ours, not the caller's: logged in full, reported briefly.
    pub fn internal(error: &dyn std::fmt::Display) -> Self {
        tracing::error!(error = %error, "request failed");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            format!("internal error: {error}"),
        )
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Conflict(m) => ApiError::conflict(m),
            other => match storage_failure(&other) {
                // SQLite rolled the statement back (SQLITE_FULL and
                // SQLITE_READONLY leave the database as it was), so the
                // caller may retry once the operator has fixed the disk.
                Some(rusqlite::ErrorCode::DiskFull) => {
                    tracing::error!(error = %other, "database write refused: disk full");
                    ApiError::new(
                        StatusCode::INSUFFICIENT_STORAGE,
                        "storage_full",
                        "the disk holding the database is full; nothing was changed. \
                         Live streams keep running; free space and retry",
                    )
                }
                Some(_) => {
                    tracing::error!(error = %other, "database write refused: read-only");
                    ApiError::new(
                        StatusCode::SERVICE_UNAVAILABLE,
                        "storage_read_only",
                        "the database is read-only (file system remounted read-only or \
                         permissions changed); nothing was changed. Live streams keep running",
                    )
                }
                None => ApiError::internal(&other),
            },
        }
    }
}

/// SQLite's "disk full" or "read-only" under a store error, if that is what
/// it is: these are the operator's to fix, not a bug.
fn storage_failure(e: &StoreError) -> Option<rusqlite::ErrorCode> {
    let sql = match e {
        StoreError::Sql(s) | StoreError::Open { source: s, .. } => s,
        _ => return None,
    };
    match sql.sqlite_error_code()? {
        code @ (rusqlite::ErrorCode::DiskFull | rusqlite::ErrorCode::ReadOnly) => Some(code),
        _ => None,
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = Body {
            error: Inner {
                code: self.code,
                message: &self.message,
                field: self.field.as_deref(),
            },
        };
        let mut resp = (self.status, Json(body)).into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            resp.headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        resp
    }
}

pub async fn method_not_allowed() -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        "method not allowed on this route",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sqlite(code: i32) -> StoreError {
        StoreError::Sql(rusqlite::Error::SqliteFailure(
            rusqlite::ffi::Error::new(code),
            None,
        ))
    }

    #[test]
    fn full_and_read_only_disks_are_named() {
        let full = ApiError::from(sqlite(rusqlite::ffi::SQLITE_FULL));
        assert_eq!(
            (full.status, full.code),
            (StatusCode::INSUFFICIENT_STORAGE, "storage_full")
        );
        let ro = ApiError::from(sqlite(rusqlite::ffi::SQLITE_READONLY));
        assert_eq!(
            (ro.status, ro.code),
            (StatusCode::SERVICE_UNAVAILABLE, "storage_read_only")
        );
        let other = ApiError::from(sqlite(rusqlite::ffi::SQLITE_CORRUPT));
        assert_eq!(other.code, "internal");
    }
}
