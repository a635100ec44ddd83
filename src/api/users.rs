//! `/api/v1/users`: people who sign in to the web UI (admin only). Machines
//! use `/api/v1/tokens` instead.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::Deserialize;

use super::json::ApiPath;
use super::password;
use super::{ApiError, ApiJson, AppState, RequireAdmin};
use crate::store::{TokenRole, UserChange, UserInfo, db};

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UserCreate {
    /// 1–64 characters, any script, no control characters or surrounding spaces.
    #[schema(min_length = 1, max_length = 64)]
    pub username: String,
    /// 8–256 characters.
    #[schema(min_length = 8, max_length = 256)]
    pub password: String,
    pub role: TokenRole,
}

#[derive(Deserialize, Default, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UserPatch {
    pub role: Option<TokenRole>,
    /// A new password (8–256 characters); the user's sessions end.
    #[schema(min_length = 8, max_length = 256)]
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

#[utoipa::path(get, path = "/api/v1/users", tag = "users", summary = "List web UI users (admin)", responses((status = 200, description = "Every user (never a password hash)", body = Vec<crate::store::UserInfo>)))]
pub async fn list(
    State(app): State<AppState>,
    _caller: RequireAdmin,
) -> Result<Json<Vec<UserInfo>>, ApiError> {
    Ok(Json(app.store.call(|c| db::list_users(c)).await?))
}

#[utoipa::path(post, path = "/api/v1/users", tag = "users", summary = "Create a web UI user (admin)", request_body = UserCreate, responses((status = 201, description = "Created", body = crate::store::UserInfo), (status = 409, description = "The name is taken, case-insensitively (`conflict`)")))]
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

#[utoipa::path(patch, path = "/api/v1/users/{id}", tag = "users", summary = "Change a user's role, password or disabled flag (admin)", params(("id" = i64, Path, description = "User id")), request_body = UserPatch, responses((status = 200, description = "Changed", body = crate::store::UserInfo), (status = 404, description = "No such user"), (status = 409, description = "It would remove the last admin (`conflict`)")))]
pub async fn update(
    State(app): State<AppState>,
    RequireAdmin(caller): RequireAdmin,
    ApiPath(id): ApiPath<i64>,
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

#[utoipa::path(delete, path = "/api/v1/users/{id}", tag = "users", summary = "Delete a user (admin); their sessions end", params(("id" = i64, Path, description = "User id")), responses((status = 204, description = "Deleted"), (status = 404, description = "No such user"), (status = 409, description = "It is the last admin (`conflict`)")))]
pub async fn delete(
    State(app): State<AppState>,
    RequireAdmin(caller): RequireAdmin,
    ApiPath(id): ApiPath<i64>,
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
