//! `/api/v1/tokens`: bearer tokens for machines and people.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};

use super::RequireAdmin;
use super::json::ApiPath;
use super::{ApiError, ApiJson, AppState};
use crate::store::{StoreError, TokenInfo, TokenRole, db};

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TokenCreate {
    /// 1–100 printable characters.
    #[schema(min_length = 1, max_length = 100)]
    pub name: String,
    #[serde(default)]
    pub role: TokenRole,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct TokenCreated {
    /// The token itself, shown only in this response.
    pub token: String,
    #[serde(flatten)]
    pub info: TokenInfo,
}

#[utoipa::path(get, path = "/api/v1/tokens", tag = "tokens", summary = "List API tokens (admin)", responses((status = 200, description = "Every token (never the secret)", body = Vec<crate::store::TokenInfo>)))]
pub async fn list(
    State(app): State<AppState>,
    _caller: RequireAdmin,
) -> Result<Json<Vec<TokenInfo>>, ApiError> {
    Ok(Json(app.store.call(|c| db::list_tokens(c)).await?))
}

#[utoipa::path(post, path = "/api/v1/tokens", tag = "tokens", summary = "Create an API token (admin)", request_body = TokenCreate, responses((status = 201, description = "Created; the token is shown only here", body = TokenCreated)))]
pub async fn create(
    State(app): State<AppState>,
    _caller: RequireAdmin,
    ApiJson(body): ApiJson<TokenCreate>,
) -> Result<(StatusCode, Json<TokenCreated>), ApiError> {
    let name = body.name.trim().to_owned();
    if name.is_empty() || name.len() > 100 || name.chars().any(char::is_control) {
        return Err(ApiError::invalid_field(
            "name",
            "name must be 1-100 printable characters",
        ));
    }
    let role = body.role;
    let created = app
        .store
        .call(move |c| {
            let token = db::generate_token()?;
            let info = db::insert_token(c, &name, &token, role)?;
            Ok(TokenCreated { token, info })
        })
        .await?;
    tracing::info!(
        token_id = created.info.id,
        role = role.as_str(),
        "API token created"
    );
    Ok((StatusCode::CREATED, Json(created)))
}

#[utoipa::path(delete, path = "/api/v1/tokens/{id}", tag = "tokens", summary = "Revoke an API token (admin)", params(("id" = i64, Path, description = "Token id")), responses((status = 204, description = "Revoked"), (status = 404, description = "No such token"), (status = 409, description = "It is the last admin token (`conflict`)")))]
pub async fn delete(
    State(app): State<AppState>,
    _caller: RequireAdmin,
    ApiPath(id): ApiPath<i64>,
) -> Result<StatusCode, ApiError> {
    let deleted = app
        .store
        .call(move |c| {
            let tokens = db::list_tokens(c)?;
            let Some(target) = tokens.iter().find(|t| t.id == id) else {
                return Ok(false);
            };
            let admins = tokens.iter().filter(|t| t.role == TokenRole::Admin).count();
            if target.role == TokenRole::Admin && admins == 1 {
                return Err(StoreError::Conflict(
                    "refusing to delete the last admin token: create another admin token first"
                        .into(),
                ));
            }
            db::delete_token(c, id)
        })
        .await?;
    if !deleted {
        return Err(ApiError::not_found(format!("no token with id {id}")));
    }
    tracing::info!(token_id = id, "API token deleted");
    Ok(StatusCode::NO_CONTENT)
}
