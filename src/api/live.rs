//! `/live/{stream}.flv`: HTTP-FLV, and WS-FLV on the same path when the
//! request is a WebSocket upgrade.

use std::convert::Infallible;

use axum::body::Body;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{FromRequestParts, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use tokio_util::sync::CancellationToken;

use super::json::ApiPath;
use super::{ApiError, AppState};
use crate::egress::StartError;
use crate::egress::flv::FlvByteStream;
use crate::media::ViewerGuard;

fn is_websocket(req: &Request) -> bool {
    req.headers()
        .get(header::UPGRADE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("websocket"))
}

pub(super) fn start_error(e: StartError) -> ApiError {
    tracing::warn!(error = %e, "viewer could not start");
    match e {
        StartError::SourceFailed { .. } => {
            ApiError::new(StatusCode::BAD_GATEWAY, "source_failed", e.to_string())
        }
        StartError::Timeout { .. } => {
            ApiError::new(StatusCode::GATEWAY_TIMEOUT, "source_timeout", e.to_string())
        }
        StartError::Ended { .. } => ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "stream_ended",
            e.to_string(),
        ),
    }
}

#[utoipa::path(get, path = "/live/{file}", tag = "live", summary = "HTTP-FLV (or WS-FLV on a WebSocket upgrade)", description = "`{stream}.flv`. An endless stream. With `[viewer] require_token` it needs a token (`Authorization: Bearer` or `?token=`) or a signed URL (`?exp=&sig=`).", params(("file" = String, Path, description = "`{stream}.flv`"), ("token" = Option<String>, Query, description = "API token, for players that cannot set headers"), ("exp" = Option<u64>, Query, description = "Signed URL: expiry (Unix seconds)"), ("sig" = Option<String>, Query, description = "Signed URL: signature")), responses((status = 200, description = "FLV, endless", body = Vec<u8>, content_type = "video/x-flv"), (status = 101, description = "WebSocket upgrade (WS-FLV): FLV in binary messages"), (status = 401, description = "A viewer token or signed URL is required"), (status = 404, description = "No such stream, or not `.flv`"), (status = 502, description = "The source failed (`source_failed`)"), (status = 503, description = "The stream ended (`stream_ended`)"), (status = 504, description = "No first frame in time (`source_timeout`)")))]
pub async fn flv(
    State(app): State<AppState>,
    ApiPath(file): ApiPath<String>,
    req: Request,
) -> Result<Response, ApiError> {
    let id = file
        .strip_suffix(".flv")
        .ok_or_else(|| ApiError::not_found("live URLs end in .flv"))?;
    super::viewer::authorize(&app, req.headers(), req.uri().query(), id).await?;
    let stream = find_stream(&app, id).await?;
    let upgrade = if is_websocket(&req) {
        let (mut parts, _) = req.into_parts();
        match WebSocketUpgrade::from_request_parts(&mut parts, &app).await {
            Ok(u) => Some(u),
            Err(rejection) => return Ok(rejection.into_response()),
        }
    } else {
        None
    };
    let viewer = stream.add_output_viewer(crate::media::Output::Flv);
    let bytes = app
        .flv
        .subscribe(&stream)
        .start(app.start_timeout())
        .await
        .map_err(start_error)?;
    tracing::info!(stream = %id, websocket = upgrade.is_some(), "FLV viewer joined");
    let shutdown = app.shutdown.clone();
    if let Some(ws) = upgrade {
        return Ok(ws.on_upgrade(move |socket| ws_viewer(socket, bytes, viewer, shutdown)));
    }
    let body = futures_util::stream::unfold(
        (bytes, viewer, shutdown),
        |(mut bytes, viewer, shutdown)| async move {
            let chunk = bytes.next_chunk(&shutdown).await;
            if chunk.is_none() {
                tracing::info!(stream = %viewer.stream().id(), skipped = bytes.skipped(), "FLV viewer ended");
            }
            chunk.map(|c| {
                viewer
                    .stream()
                    .count_out(crate::media::Output::Flv, c.len());
                (Ok::<_, Infallible>(c), (bytes, viewer, shutdown))
            })
        },
    );
    let mut resp = Response::new(Body::from_stream(body));
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("video/x-flv"),
    );
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("no-cache, no-store"),
    );
    h.insert(
        header::ACCESS_CONTROL_ALLOW_ORIGIN,
        HeaderValue::from_static("*"),
    );
    Ok(resp)
}

async fn ws_viewer(
    mut socket: WebSocket,
    mut bytes: FlvByteStream,
    viewer: ViewerGuard,
    shutdown: CancellationToken,
) {
    loop {
        tokio::select! {
            chunk = bytes.next_chunk(&shutdown) => {
                let Some(chunk) = chunk else { break };
                viewer.stream().count_out(crate::media::Output::Flv, chunk.len());
                if socket.send(Message::Binary(chunk)).await.is_err() {
                    break;
                }
            }
            msg = socket.recv() => match msg {
                None | Some(Err(_)) | Some(Ok(Message::Close(_))) => break,
                Some(Ok(_)) => {}
            },
        }
    }
    let _ = socket.send(Message::Close(None)).await;
    tracing::info!(stream = %viewer.stream().id(), skipped = bytes.skipped(), "WS-FLV viewer ended");
}

/// The stream `id` (see [`crate::app::App::find_stream`]), or 404.
pub async fn find_stream(
    app: &AppState,
    id: &str,
) -> Result<std::sync::Arc<crate::media::Stream>, ApiError> {
    app.find_stream(id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no stream {id:?}")))
}

/// HLS: `/live/{stream}/index.m3u8` (LL-HLS, blocking reload with
/// `_HLS_msn`/`_HLS_part`), `init.mp4`, `seg{n}.m4s`, `part{n}.{m}.m4s`.
#[utoipa::path(get, path = "/live/{stream}/{file}", tag = "live", summary = "LL-HLS: playlist, init segment, segments, parts", description = "`index.m3u8` (blocking reload with `_HLS_msn`/`_HLS_part`), `init.mp4`, `seg{n}.m4s`, `part{n}.{m}.m4s`. Viewer auth as for FLV.", params(("stream" = String, Path, description = "Stream id"), ("file" = String, Path, description = "`index.m3u8`, `init.mp4`, `seg{n}.m4s` or `part{n}.{m}.m4s`"), ("_HLS_msn" = Option<u64>, Query, description = "Blocking reload: media sequence number"), ("_HLS_part" = Option<u64>, Query, description = "Blocking reload: part"), ("token" = Option<String>, Query, description = "API token"), ("exp" = Option<u64>, Query, description = "Signed URL: expiry"), ("sig" = Option<String>, Query, description = "Signed URL: signature")), responses((status = 200, description = "The playlist (`application/vnd.apple.mpegurl`) or fMP4 media (`video/mp4`)", content((String = "application/vnd.apple.mpegurl"), (Vec<u8> = "video/mp4"))), (status = 400, description = "Bad blocking-reload directive (`hls_bad_directive`, `hls_too_far`)"), (status = 401, description = "A viewer token or signed URL is required"), (status = 404, description = "No such stream or file"), (status = 502, description = "The source failed"), (status = 503, description = "No HLS media in time (`hls_not_ready`) or the stream ended"), (status = 504, description = "No first frame in time")))]
pub async fn hls(
    State(app): State<AppState>,
    ApiPath((id, file)): ApiPath<(String, String)>,
    headers: axum::http::HeaderMap,
    axum::extract::RawQuery(query): axum::extract::RawQuery,
) -> Result<Response, ApiError> {
    use crate::egress::hls::output::HlsWait;
    use crate::egress::hls::{HlsFile, HlsRequestError};
    let carry = super::viewer::authorize(&app, &headers, query.as_deref(), &id).await?;
    let stream = find_stream(&app, &id).await?;
    let shared = app.hls.touch(&stream);
    // The first playlist needs a whole segment: the source's start plus up
    // to the longest segment (keyframes can be rare).
    let timeout = app.start_timeout() + shared.max_segment_duration();
    let wait_err = |e: HlsWait| match e {
        HlsWait::Timeout => ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "hls_not_ready",
            format!("no HLS media for {id:?} within {} s", timeout.as_secs()),
        ),
        HlsWait::TooFar => ApiError::new(
            StatusCode::BAD_REQUEST,
            "hls_too_far",
            "_HLS_msn is more than two segments ahead",
        ),
        HlsWait::NotFound => {
            ApiError::not_found(format!("{file} is no longer (or not yet) in the window"))
        }
    };
    let media = |bytes: bytes::Bytes, immutable: bool| {
        stream.count_out(crate::media::Output::Hls, bytes.len());
        let mut r = Response::new(Body::from(bytes));
        let h = r.headers_mut();
        h.insert(header::CONTENT_TYPE, HeaderValue::from_static("video/mp4"));
        h.insert(
            header::CACHE_CONTROL,
            HeaderValue::from_static(if immutable {
                "max-age=3600, immutable"
            } else {
                "no-cache"
            }),
        );
        r
    };
    let request = HlsFile::parse(&file, query.as_deref()).map_err(|e| match e {
        HlsRequestError::UnknownFile(_) => ApiError::not_found(e.to_string()),
        HlsRequestError::BadDirective(_) => {
            ApiError::new(StatusCode::BAD_REQUEST, "hls_bad_directive", e.to_string())
        }
    })?;
    Ok(match request {
        HlsFile::Playlist { msn, part } => {
            let uri_query = carry;
            let text = shared
                .playlist(msn, part, uri_query, timeout)
                .await
                .map_err(wait_err)?;
            stream.count_out(crate::media::Output::Hls, text.len());
            let mut r = Response::new(Body::from(text));
            let h = r.headers_mut();
            h.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/vnd.apple.mpegurl"),
            );
            h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
            r
        }
        // Not immutable: a restarted output writes a new one under this name.
        HlsFile::Init => media(shared.init(timeout).await.map_err(wait_err)?, false),
        HlsFile::Segment(msn) => media(shared.segment(msn, timeout).await.map_err(wait_err)?, true),
        HlsFile::Part(msn, part) => media(
            shared.part(msn, part, timeout).await.map_err(wait_err)?,
            true,
        ),
    })
}
