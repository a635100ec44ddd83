//! WHEP (WebRTC-HTTP Egress Protocol; resource model of RFC 9725):
//!
//! - `POST /live/{stream}/whep` with an SDP offer (`application/sdp`) →
//!   201, the SDP answer, `Location: /live/{stream}/whep/{session}`, `ETag`.
//! - `PATCH` on the session resource with `application/trickle-ice-sdpfrag`
//!   (RFC 8840) adds the browser's candidates → 204.
//! - `DELETE` on it ends the session → 200.

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::Response;

use super::json::ApiPath;
use super::live::{find_stream, start_error};
use super::{ApiError, AppState};
use crate::egress::webrtc::{OfferError, WhepError, offer::MAX_OFFER_BYTES};

fn content_type_is(headers: &HeaderMap, want: &str) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case(want))
}

fn whep_error(e: WhepError) -> ApiError {
    let status = match &e {
        WhepError::Disabled | WhepError::TooManySessions { .. } => StatusCode::SERVICE_UNAVAILABLE,
        WhepError::Offer {
            source: OfferError::TooLarge { .. },
            ..
        } => StatusCode::PAYLOAD_TOO_LARGE,
        WhepError::Offer { .. } | WhepError::BadFragment(_) => StatusCode::BAD_REQUEST,
        WhepError::NoSession { .. } => StatusCode::NOT_FOUND,
        WhepError::PreconditionFailed { .. } => StatusCode::PRECONDITION_FAILED,
        // RFC 9725 §4.3.1: a session that supports trickle ICE but not ICE
        // restarts answers a restart PATCH with 422.
        WhepError::IceRestart { .. } => StatusCode::UNPROCESSABLE_ENTITY,
    };
    let code = match &e {
        WhepError::Disabled => "webrtc_disabled",
        WhepError::TooManySessions { .. } => "too_many_sessions",
        WhepError::Offer {
            source: OfferError::NoCommonCodec(_),
            ..
        } => "no_common_codec",
        WhepError::Offer { .. } => "bad_offer",
        WhepError::NoSession { .. } => "not_found",
        WhepError::PreconditionFailed { .. } => "precondition_failed",
        WhepError::IceRestart { .. } => "ice_restart_unsupported",
        WhepError::BadFragment(_) => "bad_sdpfrag",
    };
    ApiError::new(status, code, e.to_string())
}

/// Waits (bounded) for the stream's audio track to be known when its source
/// announced one: an answer made before would leave audio out.
async fn wait_for_tracks(stream: &crate::media::Stream) {
    let (video, audio) = stream.expected_tracks();
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(2);
    loop {
        let tracks = stream.tracks();
        let has_video = tracks.iter().any(|t| t.is_video());
        let has_audio = tracks.iter().any(|t| !t.is_video());
        if (has_video || !video) && (has_audio || !audio) {
            return;
        }
        if tokio::time::Instant::now() >= deadline {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

#[utoipa::path(post, path = "/live/{stream}/whep", tag = "live", summary = "WHEP: start a WebRTC session (RFC 9725)", params(("stream" = String, Path, description = "Stream id"), ("token" = Option<String>, Query, description = "API token")), request_body(content = String, content_type = "application/sdp", description = "SDP offer"), responses((status = 201, description = "The SDP answer; `Location` is the session resource", body = String, content_type = "application/sdp", headers(("Location" = String, description = "The session resource"), ("ETag" = String, description = "The ICE session entity tag"))), (status = 400, description = "Bad offer (`bad_offer`, `no_common_codec`)"), (status = 401, description = "A viewer token is required"), (status = 404, description = "No such stream"), (status = 413, description = "Offer too large"), (status = 415, description = "Not `application/sdp`"), (status = 502, description = "The source failed"), (status = 503, description = "WebRTC disabled, too many sessions, or the stream ended"), (status = 504, description = "No first frame in time")))]
pub async fn create(
    State(app): State<AppState>,
    ApiPath(id): ApiPath<String>,
    headers: HeaderMap,
    axum::extract::RawQuery(query): axum::extract::RawQuery,
    body: Body,
) -> Result<Response, ApiError> {
    // WHEP's own scheme is a Bearer token (RFC 9725 §4.5); `?token=` too.
    super::viewer::authorize(&app, &headers, query.as_deref(), &id).await?;
    if !content_type_is(&headers, "application/sdp") {
        return Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "a WHEP offer is sent as Content-Type: application/sdp",
        ));
    }
    let offer: Bytes = axum::body::to_bytes(body, MAX_OFFER_BYTES)
        .await
        .map_err(|_| {
            ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "offer_too_large",
                format!("an SDP offer is at most {MAX_OFFER_BYTES} bytes"),
            )
        })?;
    app.webrtc.check_capacity().map_err(whep_error)?;
    let stream = find_stream(&app, &id).await?;
    let viewer = stream.add_output_viewer(crate::media::Output::WebRtc);
    // The answer depends on the stream's codecs: wait for media first (this
    // starts an on-demand source), with the same errors as the other outputs.
    let mut rx = stream.subscribe();
    crate::egress::wait_for_media(&stream, &mut rx, app.start_timeout())
        .await
        .map_err(start_error)?;
    drop(rx);
    wait_for_tracks(&stream).await;
    let created = app.webrtc.create(viewer, &offer).map_err(|e| {
        tracing::info!(stream = %id, error = %e, "WHEP offer refused");
        whep_error(e)
    })?;
    let location = format!("/live/{id}/whep/{}", created.id);
    let mut r = Response::new(Body::from(created.answer));
    *r.status_mut() = StatusCode::CREATED;
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/sdp"),
    );
    if let Ok(v) = HeaderValue::from_str(&location) {
        h.insert(header::LOCATION, v);
    }
    if let Ok(v) = HeaderValue::from_str(&created.etag) {
        h.insert(header::ETAG, v);
    }
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(r)
}

#[utoipa::path(patch, path = "/live/{stream}/whep/{session}", tag = "live", summary = "WHEP: trickle ICE candidates (RFC 8840)", params(("stream" = String, Path, description = "Stream id"), ("session" = String, Path, description = "Session id"), ("If-Match" = Option<String>, Header, description = "The session's ETag")), request_body(content = String, content_type = "application/trickle-ice-sdpfrag"), responses((status = 204, description = "Candidates added"), (status = 400, description = "Bad fragment (`bad_sdpfrag`)"), (status = 404, description = "No such session"), (status = 412, description = "If-Match does not match (`precondition_failed`)"), (status = 413, description = "Fragment too large"), (status = 415, description = "Not `application/trickle-ice-sdpfrag`"), (status = 422, description = "ICE restart asked; not supported (`ice_restart_unsupported`)")))]
pub async fn patch(
    State(app): State<AppState>,
    ApiPath((id, session)): ApiPath<(String, String)>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    if !content_type_is(&headers, "application/trickle-ice-sdpfrag") {
        return Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "PATCH a WHEP session with Content-Type: application/trickle-ice-sdpfrag",
        ));
    }
    let frag = axum::body::to_bytes(body, MAX_OFFER_BYTES)
        .await
        .map_err(|_| {
            ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "fragment_too_large",
                format!("a trickle-ice-sdpfrag is at most {MAX_OFFER_BYTES} bytes"),
            )
        })?;
    let frag = std::str::from_utf8(&frag)
        .map_err(|_| ApiError::new(StatusCode::BAD_REQUEST, "bad_sdpfrag", "not UTF-8"))?;
    let if_match = headers.get(header::IF_MATCH).and_then(|v| v.to_str().ok());
    let added = app
        .webrtc
        .add_candidates(&id, &session, if_match, frag)
        .map_err(whep_error)?;
    tracing::debug!(stream = %id, session = %session, added, "WHEP trickle candidates");
    let mut r = Response::new(Body::empty());
    *r.status_mut() = StatusCode::NO_CONTENT;
    Ok(r)
}

#[utoipa::path(delete, path = "/live/{stream}/whep/{session}", tag = "live", summary = "WHEP: end a session", params(("stream" = String, Path, description = "Stream id"), ("session" = String, Path, description = "Session id")), responses((status = 200, description = "Ended"), (status = 404, description = "No such session")))]
pub async fn delete(
    State(app): State<AppState>,
    ApiPath((id, session)): ApiPath<(String, String)>,
) -> Result<Response, ApiError> {
    app.webrtc.delete(&id, &session).map_err(whep_error)?;
    tracing::info!(stream = %id, session = %session, "WHEP session deleted");
    Ok(Response::new(Body::empty()))
}
