//! `/api/v1/webhooks`: HTTP endpoints that receive events (admin).

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::Deserialize;

use super::RequireAdmin;
use super::json::ApiPath;
use super::{ApiError, ApiJson, AppState};
use crate::store::db;
use crate::webhooks::{KINDS, client};

#[derive(Deserialize, Debug, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WebhookCreate {
    /// `http://host[:port]/path`.
    #[schema(pattern = "^http://", max_length = 2048)]
    pub url: String,
    /// HMAC-SHA256 key (16–256 characters); never returned.
    #[schema(min_length = 16, max_length = 256)]
    pub secret: String,
    /// Event kinds, or `["*"]` (the default) for all.
    pub events: Option<Vec<String>>,
}

#[utoipa::path(get, path = "/api/v1/webhooks", tag = "webhooks", summary = "Webhooks (admin)", responses((status = 200, description = "Every webhook (never the secret)", body = Vec<crate::store::db::Webhook>)))]
pub async fn list(
    State(app): State<AppState>,
    _caller: RequireAdmin,
) -> Result<Json<Vec<db::Webhook>>, ApiError> {
    Ok(Json(app.store.call(|c| db::list_webhooks(c)).await?))
}

#[utoipa::path(post, path = "/api/v1/webhooks", tag = "webhooks", summary = "Add a webhook (admin)", request_body = WebhookCreate, responses((status = 201, description = "Added", body = crate::store::db::Webhook)))]
pub async fn create(
    State(app): State<AppState>,
    _caller: RequireAdmin,
    ApiJson(body): ApiJson<WebhookCreate>,
) -> Result<(StatusCode, Json<db::Webhook>), ApiError> {
    if body.url.len() > 2048 {
        return Err(ApiError::invalid_field("url", "url is too long"));
    }
    client::check_url(&body.url).map_err(|e| ApiError::invalid_field("url", e.to_string()))?;
    if !(16..=256).contains(&body.secret.len()) || body.secret.chars().any(char::is_control) {
        return Err(ApiError::invalid_field(
            "secret",
            "secret must be 16-256 printable characters",
        ));
    }
    let events = body.events.unwrap_or_else(|| vec!["*".into()]);
    if events.is_empty() || events.len() > KINDS.len() {
        return Err(ApiError::invalid_field(
            "events",
            "events must list 1 or more kinds, or \"*\"",
        ));
    }
    for e in &events {
        if e != "*" && !KINDS.contains(&e.as_str()) {
            return Err(ApiError::invalid_field(
                "events",
                format!("unknown event kind {e:?}; known: {}", KINDS.join(", ")),
            ));
        }
    }
    let (url, secret) = (body.url, body.secret);
    let hook = app
        .store
        .call(move |c| db::insert_webhook(c, &url, &secret, &events))
        .await?;
    tracing::info!(webhook = hook.id, url = hook.url, events = ?hook.events, "webhook added");
    Ok((StatusCode::CREATED, Json(hook)))
}

#[utoipa::path(delete, path = "/api/v1/webhooks/{id}", tag = "webhooks", summary = "Remove a webhook (admin)", params(("id" = i64, Path, description = "Webhook id")), responses((status = 204, description = "Removed"), (status = 404, description = "No such webhook")))]
pub async fn delete(
    State(app): State<AppState>,
    _caller: RequireAdmin,
    ApiPath(id): ApiPath<i64>,
) -> Result<StatusCode, ApiError> {
    if app.store.call(move |c| db::delete_webhook(c, id)).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::not_found(format!("no webhook {id}")))
    }
}

/// The last 100 deliveries of a webhook, newest first.
#[utoipa::path(get, path = "/api/v1/webhooks/{id}/deliveries", tag = "webhooks", summary = "A webhook's last 100 deliveries (admin)", params(("id" = i64, Path, description = "Webhook id")), responses((status = 200, description = "Deliveries, newest first", body = Vec<crate::store::db::Delivery>), (status = 404, description = "No such webhook")))]
pub async fn deliveries(
    State(app): State<AppState>,
    _caller: RequireAdmin,
    ApiPath(id): ApiPath<i64>,
) -> Result<Json<Vec<db::Delivery>>, ApiError> {
    if app
        .store
        .call(move |c| db::get_webhook(c, id))
        .await?
        .is_none()
    {
        return Err(ApiError::not_found(format!("no webhook {id}")));
    }
    Ok(Json(
        app.store
            .call(move |c| db::list_deliveries(c, id, 100))
            .await?,
    ))
}
