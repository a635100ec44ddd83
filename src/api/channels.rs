//! `/api/v1/channels/{deviceId}/{channelId}`: a GB28181 channel's settings and
//! its live stream (`{deviceId}_{channelId}` in the hub).

use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use serde::{Deserialize, Serialize};

use super::json::ApiPath;
use super::{ApiError, ApiJson, AppState, StreamUrls, stream_urls};
use super::{RequireAdmin, RequireOperator};
use crate::egress::wait_for_media;
use crate::gb::live::{LiveError, SessionInfo, stream_id};
use crate::gb::media::MediaTransport;
use crate::store::db;

#[derive(Deserialize, Debug, Default, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PlayRequest {
    /// `udp`, `tcp_passive` or `tcp_active`; default: the channel's setting.
    pub transport: Option<String>,
}

#[derive(Serialize, Debug, utoipa::ToSchema)]
pub struct PlayResponse {
    pub stream: String,
    pub urls: StreamUrls,
    pub session: Option<SessionInfo>,
}

impl From<LiveError> for ApiError {
    fn from(e: LiveError) -> Self {
        match e {
            LiveError::UnknownChannel { .. } => ApiError::not_found(e.to_string()),
            LiveError::Gb(g) => g.into(),
            LiveError::Hub(..) => ApiError::internal(&e),
        }
    }
}

fn parse_transport(s: &str) -> Result<MediaTransport, ApiError> {
    MediaTransport::parse(s).ok_or_else(|| {
        ApiError::invalid_field(
            "transport",
            "transport must be udp, tcp_passive or tcp_active",
        )
    })
}

/// The transport a session asks for, else the channel's setting.
pub(super) async fn requested_transport(
    app: &AppState,
    device_id: &str,
    channel_id: &str,
    requested: Option<&str>,
) -> Result<MediaTransport, ApiError> {
    match requested {
        Some(t) => parse_transport(t),
        None => channel_transport(app, device_id, channel_id).await,
    }
}

async fn channel_transport(
    app: &AppState,
    device_id: &str,
    channel_id: &str,
) -> Result<MediaTransport, ApiError> {
    let (d, c) = (device_id.to_owned(), channel_id.to_owned());
    let ch = app
        .store
        .call(move |conn| db::get_channel(conn, &d, &c))
        .await?;
    Ok(ch
        .and_then(|c| MediaTransport::parse(&c.media_transport))
        .unwrap_or_default())
}

/// Starts the channel's live stream (INVITE) and waits for its first frame,
/// then returns where to watch it. The stream then lives on demand: it stops
/// a grace period after its last viewer.
#[utoipa::path(post, path = "/api/v1/channels/{device_id}/{channel_id}/play", tag = "channels", summary = "Start the live stream and wait for its first frame", description = "The body is optional (an empty body uses the channel's transport).", params(("device_id" = String, Path, description = "Device id", example = "34020000001320000001"), ("channel_id" = String, Path, description = "Channel id", example = "34020000001310000001")), request_body(content = Option<PlayRequest>, content_type = "application/json"), responses((status = 200, description = "Streaming; where to watch", body = PlayResponse), (status = 404, description = "No such channel"), (status = 409, description = "The device is offline (`device_offline`)"), (status = 502, description = "The device refused the INVITE or the media failed (`device_error`, `source_failed`)"), (status = 503, description = "No media port free (`no_capacity`) or the stream ended before its first frame (`stream_ended`)"), (status = 504, description = "No answer or no first frame within the start timeout (`device_timeout`, `source_timeout`)")))]
pub async fn play(
    State(app): State<AppState>,
    _caller: RequireOperator,
    headers: HeaderMap,
    ApiPath((device_id, channel_id)): ApiPath<(String, String)>,
    body: axum::body::Bytes,
) -> Result<Json<PlayResponse>, ApiError> {
    // No body, or JSON `null`, asks for the channel's own transport.
    let trimmed = body.trim_ascii();
    let body: PlayRequest = if trimmed.is_empty() || trimmed == b"null" {
        PlayRequest::default()
    } else {
        super::parse_json(&body)?
    };
    let transport =
        requested_transport(&app, &device_id, &channel_id, body.transport.as_deref()).await?;
    let stream = app
        .gb_live
        .ensure(&device_id, &channel_id, transport)
        .await?;
    // Hold the stream as a viewer until media flows, so it starts now.
    let viewer = stream.add_viewer();
    let mut rx = stream.subscribe();
    let timeout = app.start_timeout();
    let started = wait_for_media(&stream, &mut rx, timeout).await;
    drop(viewer);
    let id = stream_id(&device_id, &channel_id);
    if let Err(e) = started {
        return Err(match e {
            crate::egress::StartError::Timeout { .. } => {
                ApiError::new(StatusCode::GATEWAY_TIMEOUT, "source_timeout", e.to_string())
            }
            crate::egress::StartError::SourceFailed { .. } => {
                ApiError::new(StatusCode::BAD_GATEWAY, "source_failed", e.to_string())
            }
            crate::egress::StartError::Ended { .. } => ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "stream_ended",
                e.to_string(),
            ),
        });
    }
    Ok(Json(PlayResponse {
        urls: stream_urls(&app, &headers, &id),
        session: app.gb_live.session_info(&id),
        stream: id,
    }))
}

/// Stops the channel's live stream now (BYE), whoever watches.
#[utoipa::path(delete, path = "/api/v1/channels/{device_id}/{channel_id}/play", tag = "channels", summary = "Stop the live stream now (BYE)", params(("device_id" = String, Path, description = "Device id", example = "34020000001320000001"), ("channel_id" = String, Path, description = "Channel id", example = "34020000001310000001")), responses((status = 204, description = "Stopped"), (status = 404, description = "No live stream for this channel")))]
pub async fn stop(
    State(app): State<AppState>,
    RequireOperator(_caller): RequireOperator,
    ApiPath((device_id, channel_id)): ApiPath<(String, String)>,
) -> Result<StatusCode, ApiError> {
    let id = stream_id(&device_id, &channel_id);
    if app.gb_live.stop(&id) {
        // Give the BYE a moment so the caller sees the session gone.
        tokio::time::sleep(Duration::from_millis(50)).await;
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::not_found(format!("no live stream {id}")))
    }
}

#[derive(Deserialize, Debug, Default, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ChannelPatch {
    /// `udp`, `tcp_passive` or `tcp_active`.
    pub transport: Option<String>,
}

#[utoipa::path(patch, path = "/api/v1/channels/{device_id}/{channel_id}", tag = "channels", summary = "Change a channel's media transport (admin)", params(("device_id" = String, Path, description = "Device id", example = "34020000001320000001"), ("channel_id" = String, Path, description = "Channel id", example = "34020000001310000001")), request_body = ChannelPatch, responses((status = 200, description = "The channel", body = crate::store::db::ChannelRecord), (status = 404, description = "No such channel")))]
pub async fn update(
    State(app): State<AppState>,
    _caller: RequireAdmin,
    ApiPath((device_id, channel_id)): ApiPath<(String, String)>,
    ApiJson(body): ApiJson<ChannelPatch>,
) -> Result<Json<db::ChannelRecord>, ApiError> {
    let (d, c) = (device_id.clone(), channel_id.clone());
    if let Some(t) = &body.transport {
        let t = parse_transport(t)?.as_str();
        let (d, c) = (d.clone(), c.clone());
        if !app
            .store
            .call(move |conn| db::set_channel_transport(conn, &d, &c, t))
            .await?
        {
            return Err(ApiError::not_found(format!(
                "no channel {channel_id} on device {device_id}"
            )));
        }
    }
    app.store
        .call(move |conn| db::get_channel(conn, &d, &c))
        .await?
        .map(Json)
        .ok_or_else(|| {
            ApiError::not_found(format!("no channel {channel_id} on device {device_id}"))
        })
}
