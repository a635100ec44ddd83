//! `/api/v1/sources`: RTSP cameras. Credentials go in, never come out.

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use serde::{Deserialize, Serialize};
use url::Url;

use super::RequireAdmin;
use super::json::ApiPath;
use super::{ApiError, ApiJson, AppState, StreamUrls, stream_urls};
use crate::media::stream::SourceStatusSnapshot;
use crate::media::{SourceState, SourceStatus};
use crate::store::{SourceRecord, StoreError, Transport, db};

#[derive(Deserialize, Debug, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SourceCreate {
    /// The stream id: letters, digits, `_`, `-`, `.`; 1–64 characters.
    #[schema(pattern = "^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")]
    pub name: String,
    /// `rtsp://host[:port]/path`. Credentials in the URL are moved to
    /// `username`/`password`.
    pub url: String,
    pub username: Option<String>,
    pub password: Option<String>,
    #[serde(default)]
    pub transport: Transport,
    #[serde(default = "yes")]
    pub on_demand: bool,
    #[serde(default = "yes")]
    pub enabled: bool,
}

fn yes() -> bool {
    true
}

/// Fields absent stay as they are. An empty `username` removes the credentials.
#[derive(Deserialize, Debug, Default, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SourcePatch {
    pub url: Option<String>,
    pub username: Option<String>,
    pub password: Option<String>,
    pub transport: Option<Transport>,
    pub on_demand: Option<bool>,
    pub enabled: Option<bool>,
}

#[derive(Serialize, Debug, utoipa::ToSchema)]
pub struct SourceView {
    pub name: String,
    pub url: String,
    pub has_credentials: bool,
    pub transport: Transport,
    pub on_demand: bool,
    pub enabled: bool,
    pub created_at: String,
    pub updated_at: String,
    pub status: SourceStatusSnapshot,
    pub urls: StreamUrls,
}

fn time(secs: i64) -> String {
    crate::util::rfc3339(std::time::UNIX_EPOCH + std::time::Duration::from_secs(secs.max(0) as u64))
}

fn view(app: &AppState, headers: &HeaderMap, r: SourceRecord) -> SourceView {
    let status = match app.hub.get(&r.name) {
        Some(s) => SourceStatusSnapshot::from(&*s.status().borrow()),
        None => SourceStatusSnapshot::from(&SourceStatus {
            state: SourceState::Idle,
            reason: (!r.enabled).then(|| "disabled".to_owned()),
            since: std::time::UNIX_EPOCH
                + std::time::Duration::from_secs(r.updated_at.max(0) as u64),
        }),
    };
    SourceView {
        urls: stream_urls(app, headers, &r.name),
        has_credentials: r.username.is_some(),
        url: r.url,
        transport: r.transport,
        on_demand: r.on_demand,
        enabled: r.enabled,
        created_at: time(r.created_at),
        updated_at: time(r.updated_at),
        status,
        name: r.name,
    }
}

pub fn validate_name(name: &str) -> Result<(), ApiError> {
    let ok = (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
        && name.as_bytes()[0].is_ascii_alphanumeric();
    if ok {
        Ok(())
    } else {
        Err(ApiError::invalid_field(
            "name",
            "name must be 1-64 characters of letters, digits, '_', '-' or '.', starting with a letter or digit",
        ))
    }
}

pub(super) fn validate_credential(field: &str, v: &Option<String>) -> Result<(), ApiError> {
    if let Some(s) = v
        && (s.len() > 255 || s.chars().any(char::is_control))
    {
        return Err(ApiError::invalid_field(
            field,
            format!("{field} must be at most 255 characters without control characters"),
        ));
    }
    Ok(())
}

/// Checks an RTSP URL and splits credentials out of it.
pub(super) fn split_url(raw: &str) -> Result<(String, Option<String>, Option<String>), ApiError> {
    let mut url = Url::parse(raw.trim())
        .map_err(|e| ApiError::invalid_field("url", format!("not a valid URL: {e}")))?;
    if url.scheme() != "rtsp" {
        return Err(ApiError::invalid_field(
            "url",
            format!("scheme must be rtsp, not {:?}", url.scheme()),
        ));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(ApiError::invalid_field("url", "URL has no host"));
    }
    let decode = |s: &str| {
        percent_encoding::percent_decode_str(s)
            .decode_utf8_lossy()
            .into_owned()
    };
    let user = (!url.username().is_empty()).then(|| decode(url.username()));
    let pass = url.password().map(decode);
    let _ = url.set_username("");
    let _ = url.set_password(None);
    Ok((url.to_string(), user, pass))
}

#[utoipa::path(get, path = "/api/v1/sources", tag = "sources", summary = "List RTSP sources", responses((status = 200, description = "All sources with their state and output URLs", body = Vec<SourceView>)))]
pub async fn list(
    State(app): State<AppState>,
    headers: HeaderMap,
) -> Result<Json<Vec<SourceView>>, ApiError> {
    let rows = app.store.call(|c| db::list_sources(c)).await?;
    Ok(Json(
        rows.into_iter().map(|r| view(&app, &headers, r)).collect(),
    ))
}

#[utoipa::path(get, path = "/api/v1/sources/{name}", tag = "sources", summary = "One RTSP source", params(("name" = String, Path, description = "Source name (the stream id)")), responses((status = 200, description = "The source", body = SourceView), (status = 404, description = "No such source")))]
pub async fn get(
    State(app): State<AppState>,
    headers: HeaderMap,
    ApiPath(name): ApiPath<String>,
) -> Result<Json<SourceView>, ApiError> {
    let n = name.clone();
    let row = app.store.call(move |c| db::get_source(c, &n)).await?;
    let row = row.ok_or_else(|| ApiError::not_found(format!("no source named {name:?}")))?;
    Ok(Json(view(&app, &headers, row)))
}

#[utoipa::path(post, path = "/api/v1/sources", tag = "sources", summary = "Add an RTSP source", request_body = SourceCreate, responses((status = 201, description = "Added", body = SourceView), (status = 409, description = "The name is taken (`conflict`)")))]
pub async fn create(
    State(app): State<AppState>,
    _caller: RequireAdmin,
    headers: HeaderMap,
    ApiJson(body): ApiJson<SourceCreate>,
) -> Result<(StatusCode, Json<SourceView>), ApiError> {
    validate_name(&body.name)?;
    let (url, url_user, url_pass) = split_url(&body.url)?;
    let username = body.username.or(url_user).filter(|u| !u.is_empty());
    let password = if username.is_some() {
        body.password.or(url_pass)
    } else {
        None
    };
    validate_credential("username", &username)?;
    validate_credential("password", &password)?;
    if app.hub.get(&body.name).is_some_and(|s| s.kind() != "rtsp") {
        return Err(ApiError::conflict(format!(
            "stream id {:?} is in use by another source",
            body.name
        )));
    }
    let record = SourceRecord {
        name: body.name,
        url,
        username,
        password,
        transport: body.transport,
        on_demand: body.on_demand,
        enabled: body.enabled,
        created_at: 0,
        updated_at: 0,
    };
    let stored = app
        .store
        .call(move |c| db::insert_source(c, &record))
        .await?;
    if let Err(e) = app.rtsp.apply(&stored, app.grace()) {
        return Err(ApiError::internal(&e));
    }
    tracing::info!(stream = %stored.name, "RTSP source added");
    Ok((StatusCode::CREATED, Json(view(&app, &headers, stored))))
}

#[utoipa::path(patch, path = "/api/v1/sources/{name}", tag = "sources", summary = "Change an RTSP source", params(("name" = String, Path, description = "Source name (the stream id)")), request_body = SourcePatch, responses((status = 200, description = "Changed", body = SourceView), (status = 404, description = "No such source"), (status = 409, description = "Deleted meanwhile (`conflict`)")))]
pub async fn update(
    State(app): State<AppState>,
    _caller: RequireAdmin,
    headers: HeaderMap,
    ApiPath(name): ApiPath<String>,
    ApiJson(patch): ApiJson<SourcePatch>,
) -> Result<Json<SourceView>, ApiError> {
    let n = name.clone();
    let mut record = app
        .store
        .call(move |c| db::get_source(c, &n))
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no source named {name:?}")))?;
    if let Some(raw) = &patch.url {
        let (url, user, pass) = split_url(raw)?;
        record.url = url;
        if user.is_some() {
            record.username = user;
            record.password = pass;
        }
    }
    if let Some(u) = patch.username {
        if u.is_empty() {
            record.username = None;
            record.password = None;
        } else {
            record.username = Some(u);
        }
    }
    if let Some(p) = patch.password {
        record.password = Some(p);
    }
    validate_credential("username", &record.username)?;
    validate_credential("password", &record.password)?;
    record.transport = patch.transport.unwrap_or(record.transport);
    record.on_demand = patch.on_demand.unwrap_or(record.on_demand);
    record.enabled = patch.enabled.unwrap_or(record.enabled);
    let updated = app
        .store
        .call(move |c| db::update_source(c, &record))
        .await?
        .ok_or_else(|| {
            ApiError::from(StoreError::Conflict("source was deleted meanwhile".into()))
        })?;
    app.rtsp
        .apply(&updated, app.grace())
        .map_err(|e| ApiError::internal(&e))?;
    tracing::info!(stream = %updated.name, "RTSP source updated");
    Ok(Json(view(&app, &headers, updated)))
}

#[utoipa::path(delete, path = "/api/v1/sources/{name}", tag = "sources", summary = "Remove an RTSP source", params(("name" = String, Path, description = "Source name (the stream id)")), responses((status = 204, description = "Removed"), (status = 404, description = "No such source")))]
pub async fn delete(
    State(app): State<AppState>,
    _caller: RequireAdmin,
    ApiPath(name): ApiPath<String>,
) -> Result<StatusCode, ApiError> {
    let n = name.clone();
    if !app.store.call(move |c| db::delete_source(c, &n)).await? {
        return Err(ApiError::not_found(format!("no source named {name:?}")));
    }
    app.rtsp.remove(&name);
    tracing::info!(stream = %name, "RTSP source deleted");
    Ok(StatusCode::NO_CONTENT)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        for ok in ["cam1", "Gate_North-2", "a.b"] {
            assert!(validate_name(ok).is_ok(), "{ok}");
        }
        for bad in ["", "-x", ".x", "a/b", "a b", "摄像头", &"x".repeat(65)] {
            assert!(validate_name(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn url_credentials_are_split_out() {
        let (url, u, p) = split_url("rtsp://admin:p%40ss@10.1.2.3:554/Streaming/101").unwrap();
        assert_eq!(url, "rtsp://10.1.2.3:554/Streaming/101");
        assert_eq!(u.as_deref(), Some("admin"));
        assert_eq!(p.as_deref(), Some("p@ss"));
        assert!(split_url("http://x/y").is_err());
        assert!(split_url("rtsp:///y").is_err());
        assert!(split_url("not a url").is_err());
    }
}
