//! `/api/v1/settings/media`: on-demand grace and start timeout, applied live.

use std::time::Duration;

use axum::Json;
use axum::extract::State;

use super::{ApiError, ApiJson, AppState, Caller};
use crate::store::{MediaSettings, TokenRole, db};

pub async fn get_media(State(app): State<AppState>) -> Json<MediaSettings> {
    Json(app.media_settings())
}

pub async fn put_media(
    State(app): State<AppState>,
    caller: Caller,
    ApiJson(body): ApiJson<MediaSettings>,
) -> Result<Json<MediaSettings>, ApiError> {
    caller.require(TokenRole::Admin)?;
    if body.on_demand_grace_secs > 3600 {
        return Err(ApiError::invalid_field(
            "on_demand_grace_secs",
            "on_demand_grace_secs must be between 0 and 3600",
        ));
    }
    if !(1..=300).contains(&body.start_timeout_secs) {
        return Err(ApiError::invalid_field(
            "start_timeout_secs",
            "start_timeout_secs must be between 1 and 300",
        ));
    }
    app.store
        .call(move |c| db::put_setting(c, db::MEDIA_KEY, &body))
        .await?;
    app.set_media_settings(body);
    let grace = Duration::from_secs(body.on_demand_grace_secs);
    for s in app.hub.list() {
        let mut policy = s.policy();
        policy.grace = grace;
        s.set_policy(policy);
    }
    tracing::info!(
        grace_secs = body.on_demand_grace_secs,
        start_timeout_secs = body.start_timeout_secs,
        "media settings changed"
    );
    Ok(Json(body))
}
