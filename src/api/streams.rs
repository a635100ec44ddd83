//! `/api/v1/streams`: what is in the hub right now.

use axum::Json;
use axum::extract::State;
use axum::http::HeaderMap;
use serde::Serialize;

use super::json::ApiPath;
use super::{ApiError, AppState, StreamUrls, stream_urls};
use crate::media::StreamSnapshot;

#[derive(Serialize, utoipa::ToSchema)]
pub struct StreamView {
    #[serde(flatten)]
    pub snapshot: StreamSnapshot,
    pub urls: StreamUrls,
    /// The LL-HLS output, while it runs: whether it carries audio and why not.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hls: Option<crate::egress::hls::HlsOutputInfo>,
    /// GB28181 streams: transport, SSRC, packets, loss.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gb28181: Option<crate::gb::live::SessionInfo>,
    /// WebRTC sessions of this stream: peer, codecs, state, bytes sent.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub webrtc_sessions: Vec<crate::egress::webrtc::SessionInfo>,
}

fn view(app: &AppState, headers: &HeaderMap, s: &crate::media::Stream) -> StreamView {
    StreamView {
        snapshot: s.snapshot(),
        webrtc_sessions: app
            .webrtc
            .sessions()
            .into_iter()
            .filter(|w| w.stream == s.id())
            .collect(),
        urls: stream_urls(app, headers, s.id()),
        hls: app.hls.info(s.id()),
        gb28181: app.gb_live.session_info(s.id()),
    }
}

#[utoipa::path(get, path = "/api/v1/streams", tag = "streams", summary = "Streams in the hub now", responses((status = 200, description = "Every stream", body = Vec<StreamView>)))]
pub async fn list(State(app): State<AppState>, headers: HeaderMap) -> Json<Vec<StreamView>> {
    Json(
        app.hub
            .list()
            .iter()
            .map(|s| view(&app, &headers, s))
            .collect(),
    )
}

#[utoipa::path(get, path = "/api/v1/streams/{id}", tag = "streams", summary = "One stream", params(("id" = String, Path, description = "Stream id")), responses((status = 200, description = "The stream", body = StreamView), (status = 404, description = "No such stream")))]
pub async fn get(
    State(app): State<AppState>,
    headers: HeaderMap,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<StreamView>, ApiError> {
    let s = app
        .hub
        .get(&id)
        .ok_or_else(|| ApiError::not_found(format!("no stream {id:?}")))?;
    Ok(Json(view(&app, &headers, &s)))
}
