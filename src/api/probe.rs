//! `POST /api/v1/probe/rtsp`: tests an RTSP camera without storing it (the
//! UI's "test connection"): connects as a source would, waits for the
//! first frame, reports the streams, codec and resolution, disconnects.
//! A camera that fails is a successful test with `ok: false` and the
//! reason, not an API error.

use std::time::Duration;

use axum::Json;
use axum::extract::State;
use serde::{Deserialize, Serialize};

use super::sources::{split_url, validate_credential};
use super::{ApiError, ApiJson, AppState, RequireAdmin};
use crate::ingest::rtsp::{ProbeReport, RtspSources, RtspTarget};
use crate::store::{Transport, db};

/// A stored source by `name` (with its stored credentials), or a camera by
/// `url` (and credentials).
#[derive(Deserialize, Debug, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ProbeRequest {
    pub name: Option<String>,
    pub url: Option<String>,
    pub username: Option<String>,
    pub password: Option<String>,
    #[serde(default)]
    pub transport: Transport,
}

#[derive(Serialize, Debug, utoipa::ToSchema)]
pub struct ProbeResult {
    /// Whether a frame arrived.
    pub ok: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub report: Option<ProbeReport>,
    /// Why not (the RTSP phase and the camera's answer or the timeout).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// A camera gets this long to answer each request and to send a frame.
const PROBE_TIMEOUT: Duration = Duration::from_secs(10);

// Admin only: it makes the gateway connect wherever the caller says.
#[utoipa::path(post, path = "/api/v1/probe/rtsp", tag = "sources", summary = "Test an RTSP camera without storing it (admin)", request_body = ProbeRequest, responses((status = 200, description = "The test ran: `ok` says whether a frame arrived", body = ProbeResult), (status = 404, description = "No stored source with that name")))]
pub async fn probe_rtsp(
    State(app): State<AppState>,
    _caller: RequireAdmin,
    ApiJson(body): ApiJson<ProbeRequest>,
) -> Result<Json<ProbeResult>, ApiError> {
    let target = match (body.name, body.url) {
        (Some(name), None) => {
            let n = name.clone();
            let record = app
                .store
                .call(move |c| db::get_source(c, &n))
                .await?
                .ok_or_else(|| ApiError::not_found(format!("no source {name:?}")))?;
            RtspSources::target_of(&record).map_err(|e| {
                ApiError::invalid_field("name", format!("the stored URL is invalid: {e}"))
            })?
        }
        (None, Some(raw)) => {
            validate_credential("username", &body.username)?;
            validate_credential("password", &body.password)?;
            let (url, user, pass) = split_url(&raw)?;
            RtspTarget {
                url: url::Url::parse(&url)
                    .map_err(|e| ApiError::invalid_field("url", e.to_string()))?,
                username: body.username.or(user),
                password: body.password.or(pass),
                transport: body.transport,
            }
        }
        _ => {
            return Err(ApiError::invalid_field(
                "url",
                "give either the name of a stored source or a url",
            ));
        }
    };
    let connect = app.config.rtsp_connect_timeout.min(PROBE_TIMEOUT);
    Ok(Json(
        match crate::ingest::rtsp::probe(&target, connect, PROBE_TIMEOUT).await {
            Ok(report) => {
                tracing::info!(url = %target.url, first_frame_ms = report.first_frame_ms, "RTSP probe succeeded");
                ProbeResult {
                    ok: true,
                    report: Some(report),
                    error: None,
                }
            }
            Err(e) => {
                tracing::info!(error = %e, "RTSP probe failed");
                ProbeResult {
                    ok: false,
                    report: None,
                    error: Some(e.to_string()),
                }
            }
        },
    ))
}
