//! Playback of device recordings (GB/T 28181-2016 §9.8): start a stream of
//! a channel's recording, control it with MANSRTSP (pause, resume, seek,
//! speed), stop it. The stream is in the hub like a live one, so every
//! output plays it.

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use serde::{Deserialize, Serialize};

use super::RequireOperator;
use super::json::ApiPath;
use super::{ApiError, ApiJson, AppState, StreamUrls, stream_urls};
use crate::egress::wait_for_media;
use crate::gb::live::{PlaybackCmd, SessionInfo};

#[derive(Deserialize, Debug, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PlaybackRequest {
    /// Unix seconds (as `records` gives them).
    pub start: u64,
    pub end: u64,
    /// `udp`, `tcp_passive` or `tcp_active`; default: the channel's setting.
    pub transport: Option<String>,
}

#[derive(Serialize, Debug, utoipa::ToSchema)]
pub struct PlaybackResponse {
    pub stream: String,
    pub urls: StreamUrls,
    pub session: Option<SessionInfo>,
}

/// `POST /api/v1/channels/{d}/{c}/playback`: INVITE `s=Playback` for the
/// span and wait for its first frame.
#[utoipa::path(post, path = "/api/v1/channels/{device_id}/{channel_id}/playback", tag = "playback", summary = "Play back a recording (INVITE s=Playback)", params(("device_id" = String, Path, description = "Device id", example = "34020000001320000001"), ("channel_id" = String, Path, description = "Channel id", example = "34020000001310000001")), request_body = PlaybackRequest, responses((status = 200, description = "Streaming; where to watch", body = PlaybackResponse), (status = 404, description = "No such channel"), (status = 409, description = "The device is offline"), (status = 502, description = "The device refused the INVITE or the media failed (`device_error`, `source_failed`)"), (status = 503, description = "No media port free (`no_capacity`) or the stream ended before its first frame (`stream_ended`)"), (status = 504, description = "No answer or no first frame within the start timeout (`device_timeout`, `source_timeout`)")))]
pub async fn start(
    State(app): State<AppState>,
    _caller: RequireOperator,
    headers: HeaderMap,
    ApiPath((device_id, channel_id)): ApiPath<(String, String)>,
    ApiJson(req): ApiJson<PlaybackRequest>,
) -> Result<Json<PlaybackResponse>, ApiError> {
    if req.end <= req.start {
        return Err(ApiError::invalid_field("end", "end must be after start"));
    }
    if req.end - req.start > 31 * 86_400 {
        return Err(ApiError::invalid_field("end", "at most 31 days"));
    }
    let transport = super::channels::requested_transport(
        &app,
        &device_id,
        &channel_id,
        req.transport.as_deref(),
    )
    .await?;
    let stream = app
        .gb_live
        .ensure_playback(&device_id, &channel_id, transport, req.start, req.end)
        .await?;
    // Hold the stream as a viewer until media flows, so it starts now.
    let viewer = stream.add_viewer();
    let mut rx = stream.subscribe();
    let started = wait_for_media(&stream, &mut rx, app.start_timeout()).await;
    drop(viewer);
    let id = stream.id().to_owned();
    started.map_err(super::live::start_error)?;
    Ok(Json(PlaybackResponse {
        urls: stream_urls(&app, &headers, &id),
        session: app.gb_live.session_info(&id),
        stream: id,
    }))
}

/// `{"action": "pause" | "resume" | "seek" | "scale", "offset": secs, "scale": x}`.
#[derive(Deserialize, Debug, utoipa::ToSchema)]
#[serde(tag = "action", rename_all = "snake_case", deny_unknown_fields)]
#[schema(as = PlaybackControlRequest)]
pub enum ControlRequest {
    Pause,
    Resume,
    /// Seconds after the recording's start.
    Seek {
        offset: u64,
    },
    /// 0.25–8 (devices commonly take 0.25, 0.5, 1, 2, 4, 8).
    Scale {
        scale: f64,
    },
}

#[derive(Serialize, Debug, utoipa::ToSchema)]
#[schema(as = PlaybackControlResponse)]
pub struct ControlResponse {
    /// The device's SIP status for the INFO.
    pub status: u16,
}

#[utoipa::path(post, path = "/api/v1/playback/{stream}/control", tag = "playback", summary = "Pause, resume, seek, speed (MANSRTSP)", params(("stream" = String, Path, description = "Playback stream id")), request_body = ControlRequest, responses((status = 200, description = "The device accepted", body = ControlResponse), (status = 404, description = "No such playback stream"), (status = 502, description = "The device refused (`device_error`)"), (status = 504, description = "No answer within 10 s, or the session is not playing yet (`device_timeout`)")))]
pub async fn control(
    State(app): State<AppState>,
    _caller: RequireOperator,
    ApiPath(stream): ApiPath<String>,
    ApiJson(req): ApiJson<ControlRequest>,
) -> Result<Json<ControlResponse>, ApiError> {
    let cmd = match req {
        ControlRequest::Pause => PlaybackCmd::Pause,
        ControlRequest::Resume => PlaybackCmd::Resume,
        ControlRequest::Seek { offset } => PlaybackCmd::Seek(offset),
        ControlRequest::Scale { scale } => {
            if !(0.25..=8.0).contains(&scale) {
                return Err(ApiError::invalid_field("scale", "scale must be 0.25-8"));
            }
            PlaybackCmd::Scale(scale)
        }
    };
    match app.gb_live.control(&stream, cmd).await {
        Ok(status) if (200..300).contains(&status) => Ok(Json(ControlResponse { status })),
        Ok(status) => Err(ApiError::new(
            StatusCode::BAD_GATEWAY,
            "device_error",
            format!("the device refused the {cmd:?} command: SIP {status}"),
        )),
        Err(e) if e.starts_with("no playback stream") => Err(ApiError::not_found(e)),
        Err(e) if e.starts_with("timed out") => Err(ApiError::new(
            StatusCode::GATEWAY_TIMEOUT,
            "device_timeout",
            e,
        )),
        Err(e) => Err(ApiError::new(StatusCode::BAD_GATEWAY, "device_error", e)),
    }
}

/// `DELETE /api/v1/playback/{stream}`: BYE now.
#[utoipa::path(delete, path = "/api/v1/playback/{stream}", tag = "playback", summary = "Stop a playback (BYE)", params(("stream" = String, Path, description = "Playback stream id")), responses((status = 204, description = "Stopped"), (status = 404, description = "No such playback stream")))]
pub async fn stop(
    State(app): State<AppState>,
    _caller: RequireOperator,
    ApiPath(stream): ApiPath<String>,
) -> Result<StatusCode, ApiError> {
    // Only playback streams (live ones have their own route).
    if stream.matches('_').count() != 3 || !app.gb_live.stop(&stream) {
        return Err(ApiError::not_found(format!("no playback stream {stream}")));
    }
    Ok(StatusCode::NO_CONTENT)
}
