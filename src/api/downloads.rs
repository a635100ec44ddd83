//! Downloads of device recordings (`s=Download`) into MP4 files on the box:
//! start, progress, fetch, delete.

use axum::Json;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::Response;
use serde::Deserialize;

use super::RequireOperator;
use super::json::ApiPath;
use super::{ApiError, ApiJson, AppState, Caller};
use crate::egress::download::{DownloadError, DownloadInfo};
use crate::store::TokenRole;

#[derive(Deserialize, Debug, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DownloadRequest {
    /// Unix seconds (as `records` gives them).
    pub start: u64,
    pub end: u64,
    /// `a=downloadspeed` (1–8, default 4): how much faster than real time
    /// the device sends.
    #[schema(minimum = 1, maximum = 8)]
    pub speed: Option<u32>,
    pub transport: Option<String>,
}

impl From<DownloadError> for ApiError {
    fn from(e: DownloadError) -> Self {
        match e {
            DownloadError::NotFound(_) => ApiError::not_found(e.to_string()),
            DownloadError::NotReady { .. } => {
                ApiError::new(StatusCode::CONFLICT, "not_ready", e.to_string())
            }
        }
    }
}

/// `POST /api/v1/channels/{d}/{c}/downloads`: INVITE `s=Download`; 202 with
/// the download's id and progress once the device accepted and sends.
#[utoipa::path(post, path = "/api/v1/channels/{device_id}/{channel_id}/downloads", tag = "downloads", summary = "Download a recording into an MP4 on the box (INVITE s=Download)", params(("device_id" = String, Path, description = "Device id", example = "34020000001320000001"), ("channel_id" = String, Path, description = "Channel id", example = "34020000001310000001")), request_body = DownloadRequest, responses((status = 202, description = "Started; poll its progress", body = crate::egress::download::DownloadInfo), (status = 404, description = "No such channel"), (status = 409, description = "The device is offline"), (status = 502, description = "The device refused the INVITE or the media failed (`device_error`, `source_failed`)"), (status = 503, description = "No media port free (`no_capacity`) or the stream ended before its first frame (`stream_ended`)"), (status = 504, description = "No answer or no first frame within the start timeout (`device_timeout`, `source_timeout`)")))]
pub async fn start(
    State(app): State<AppState>,
    _caller: RequireOperator,
    ApiPath((device_id, channel_id)): ApiPath<(String, String)>,
    ApiJson(req): ApiJson<DownloadRequest>,
) -> Result<(StatusCode, Json<DownloadInfo>), ApiError> {
    if req.end <= req.start {
        return Err(ApiError::invalid_field("end", "end must be after start"));
    }
    if req.end - req.start > 86_400 {
        return Err(ApiError::invalid_field(
            "end",
            "at most one day per download",
        ));
    }
    let speed = req.speed.unwrap_or(4);
    if !(1..=8).contains(&speed) {
        return Err(ApiError::invalid_field("speed", "speed must be 1-8"));
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
        .ensure_download(
            &device_id,
            &channel_id,
            transport,
            (req.start, req.end),
            speed,
        )
        .await?;
    // The writer is the download's viewer: it keeps the session until the
    // recording ends (MediaStatus 121).
    let viewer = stream.add_viewer();
    let mut rx = stream.subscribe();
    crate::egress::wait_for_media(&stream, &mut rx, app.start_timeout())
        .await
        .map_err(super::live::start_error)?;
    drop(rx);
    let info = app.downloads.start(
        stream,
        viewer,
        (&device_id, &channel_id),
        (req.start, req.end, speed),
    );
    tracing::info!(
        download = info.id,
        device_id,
        channel_id,
        speed,
        "download started"
    );
    Ok((StatusCode::ACCEPTED, Json(info)))
}

#[utoipa::path(get, path = "/api/v1/downloads", tag = "downloads", summary = "Downloads", responses((status = 200, description = "Every download", body = Vec<crate::egress::download::DownloadInfo>)))]
pub async fn list(
    State(app): State<AppState>,
    caller: Caller,
) -> Result<Json<Vec<DownloadInfo>>, ApiError> {
    caller.require(TokenRole::Viewer)?;
    Ok(Json(app.downloads.list()))
}

#[utoipa::path(get, path = "/api/v1/downloads/{id}", tag = "downloads", summary = "One download's progress", params(("id" = u64, Path, description = "Download id")), responses((status = 200, description = "The download", body = crate::egress::download::DownloadInfo), (status = 404, description = "No such download")))]
pub async fn get(
    State(app): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<u64>,
) -> Result<Json<DownloadInfo>, ApiError> {
    caller.require(TokenRole::Viewer)?;
    app.downloads
        .get(id)
        .map(Json)
        .ok_or_else(|| DownloadError::NotFound(id).into())
}

/// `GET /api/v1/downloads/{id}/file`: the MP4, streamed from disk.
#[utoipa::path(get, path = "/api/v1/downloads/{id}/file", tag = "downloads", summary = "The downloaded MP4", params(("id" = u64, Path, description = "Download id")), responses((status = 200, description = "The file", body = Vec<u8>, content_type = "video/mp4"), (status = 404, description = "No such download"), (status = 409, description = "Not finished (`not_ready`)")))]
pub async fn file(
    State(app): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<u64>,
) -> Result<Response, ApiError> {
    caller.require(TokenRole::Viewer)?;
    let path = app.downloads.file(id)?;
    let f = tokio::fs::File::open(&path)
        .await
        .map_err(|e| ApiError::internal(&format!("cannot open {}: {e}", path.display())))?;
    let len = f.metadata().await.map(|m| m.len()).ok();
    let mut r = Response::new(Body::from_stream(tokio_util::io::ReaderStream::new(f)));
    let h = r.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("video/mp4"));
    if let Some(len) = len
        && let Ok(v) = HeaderValue::from_str(&len.to_string())
    {
        h.insert(header::CONTENT_LENGTH, v);
    }
    if let Ok(v) = HeaderValue::from_str(&format!(
        "attachment; filename=\"camgate-download-{id}.mp4\""
    )) {
        h.insert(header::CONTENT_DISPOSITION, v);
    }
    Ok(r)
}

#[utoipa::path(delete, path = "/api/v1/downloads/{id}", tag = "downloads", summary = "Cancel a download and delete its file", params(("id" = u64, Path, description = "Download id")), responses((status = 204, description = "Deleted"), (status = 404, description = "No such download")))]
pub async fn delete(
    State(app): State<AppState>,
    _caller: RequireOperator,
    ApiPath(id): ApiPath<u64>,
) -> Result<StatusCode, ApiError> {
    app.downloads.delete(id).await?;
    Ok(StatusCode::NO_CONTENT)
}
