//! `/api/v1/users`: people who sign in to the web UI (admin only). Machines
//! use `/api/v1/tokens` instead.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::Deserialize;

use super::password;
use super::{ApiError, ApiJson, AppState, RequireAdmin};
use crate::store::{TokenRole, UserChange, UserInfo, db};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserCreate {
    pub username: String,
    pub password: String,
    pub role: TokenRole,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct UserPatch {
    pub role: Option<TokenRole>,
    /// A new password; the user's sessions end.
    pub password: Option<String>,
    /// A disabled user cannot sign in; their sessions end.
    pub disabled: Option<bool>,
}

/// 1–64 characters, no control characters, no spaces at either end. Any
/// script is fine (many operators use Chinese names).
fn check_username(name: &str) -> Result<(), ApiError> {
    let n = name.chars().count();
    if n == 0 || n > 64 || name.chars().any(char::is_control) || name.trim() != name {
        return Err(ApiError::invalid_field(
            "username",
            "username must be 1-64 characters, without control characters or surrounding spaces",
        ));
    }
    Ok(())
}

async fn hash_password(field: &str, password: String) -> Result<String, ApiError> {
    password::hash(password).await.map_err(|e| match e {
        password::PasswordError::Policy => ApiError::invalid_field(field, e.to_string()),
        other => ApiError::internal(&other),
    })
}

pub async fn list(
    State(app): State<AppState>,
    _caller: RequireAdmin,
) -> Result<Json<Vec<UserInfo>>, ApiError> {
    Ok(Json(app.store.call(|c| db::list_users(c)).await?))
}

pub async fn create(
    State(app): State<AppState>,
    RequireAdmin(caller): RequireAdmin,
    ApiJson(body): ApiJson<UserCreate>,
) -> Result<(StatusCode, Json<UserInfo>), ApiError> {
    check_username(&body.username)?;
    let hash = hash_password("password", body.password).await?;
    let (name, role) = (body.username, body.role);
    let user = app
        .store
        .call(move |c| db::insert_user(c, &name, &hash, role))
        .await?;
    tracing::info!(user = %user.username, role = role.as_str(), by = %caller.name, "user created");
    Ok((StatusCode::CREATED, Json(user)))
}

pub async fn update(
    State(app): State<AppState>,
    RequireAdmin(caller): RequireAdmin,
    Path(id): Path<i64>,
    ApiJson(body): ApiJson<UserPatch>,
) -> Result<Json<UserInfo>, ApiError> {
    let password_hash = match body.password {
        Some(p) => Some(hash_password("password", p).await?),
        None => None,
    };
    let change = UserChange {
        role: body.role,
        password_hash,
        disabled: body.disabled,
    };
    let user = app
        .store
        .call(move |c| db::update_user(c, id, &change))
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no user {id}")))?;
    tracing::info!(user = %user.username, role = user.role.as_str(), disabled = user.disabled, by = %caller.name, "user changed");
    Ok(Json(user))
}

pub async fn delete(
    State(app): State<AppState>,
    RequireAdmin(caller): RequireAdmin,
    Path(id): Path<i64>,
) -> Result<StatusCode, ApiError> {
    if app.store.call(move |c| db::delete_user(c, id)).await? {
        tracing::info!(user_id = id, by = %caller.name, "user deleted");
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::not_found(format!("no user {id}")))
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn usernames() {
        assert!(super::check_username("张伟").is_ok());
        assert!(super::check_username("ops.night-shift@site1").is_ok());
        assert!(super::check_username("").is_err());
        assert!(super::check_username(" admin").is_err());
        assert!(super::check_username("a\nb").is_err());
        assert!(super::check_username(&"x".repeat(65)).is_err());
    }
}
