//! The HTTP surface: REST under `/api/v1`, live outputs under `/live`.

mod auth;
mod channels;
mod cors;
mod devices;
mod downloads;
mod error;
mod json;
mod live;
mod metrics;
mod openapi;
mod password;
mod playback;
mod probe;
mod ptz;
mod records;
mod session;
mod settings;
mod sources;
mod streams;
mod system;
mod tokens;
mod ui;
mod users;
mod viewer;
mod webhooks;
mod whep;

use std::sync::Arc;

use axum::Router;
use axum::http::HeaderMap;
use axum::routing::get;
use serde::Serialize;

pub use auth::{Caller, Credential, RequireAdmin, RequireOperator};
pub use cors::{CorsPolicy, SharedCorsPolicy};
pub use devices::{DeviceCreate, DevicePatch};
pub use error::ApiError;
pub use json::{ApiJson, ApiQuery, parse as parse_json};
pub use password::{PasswordError, hash_now as hash_password};
pub use settings::SipSettingsUpdate;
pub use sources::{SourceCreate, SourcePatch};
pub use tokens::TokenCreate;

/// Fuzzing entry: the request headers and paths the API reads before any
/// handler (session cookie, bearer token, UI file path, Accept-Encoding) and
/// every JSON body of the sign-in, users, network and probe routes.
pub fn fuzz_web_inputs(data: &[u8]) {
    use axum::http::{HeaderMap, HeaderValue, header};
    let text = String::from_utf8_lossy(data);
    let _ = ui::file_for(&text);
    if let Ok(v) = HeaderValue::from_bytes(data) {
        let mut h = HeaderMap::new();
        for name in [
            header::COOKIE,
            header::AUTHORIZATION,
            header::ACCEPT_ENCODING,
        ] {
            h.insert(name, v.clone());
        }
        let _ = auth::session_cookie(&h);
        let _ = auth::bearer(&h);
        let _ = ui::accepts_gzip(&h);
    }
    let _ = parse_json::<session::LoginRequest>(data);
    let _ = parse_json::<session::PasswordChange>(data);
    let _ = parse_json::<users::UserCreate>(data);
    let _ = parse_json::<users::UserPatch>(data);
    let _ = parse_json::<settings::NetworkSettingsUpdate>(data);
    let _ = parse_json::<probe::ProbeRequest>(data);
    // The /proc parsers of the dashboard.
    let _ = crate::ops::system::parse_proc_stat(&text);
    let _ = crate::ops::system::count_cores(&text);
    let _ = crate::ops::system::parse_meminfo(&text);
    let _ = crate::ops::system::parse_net_dev(&text);
    let _ = crate::ops::system::parse_statm_resident_pages(&text);
}

/// Whether `query` holds a valid, unexpired signature for `stream`.
pub fn viewer_signature_ok(key: &[u8], stream: &str, query: Option<&str>) -> bool {
    viewer::signature_ok(key, stream, query).is_some()
}

use crate::app::App;

pub type AppState = Arc<App>;

/// Every REST route behind authentication, as (method, path template, the
/// least role it takes). A test checks each answers 401 without a token and
/// 403 to a token of a weaker role (checked before the body is read).
pub const AUTHENTICATED_ROUTES: &[(&str, &str, &str)] = &[
    ("GET", "/api/v1/sources", "viewer"),
    ("POST", "/api/v1/sources", "admin"),
    ("GET", "/api/v1/sources/{name}", "viewer"),
    ("PATCH", "/api/v1/sources/{name}", "admin"),
    ("DELETE", "/api/v1/sources/{name}", "admin"),
    ("GET", "/api/v1/streams", "viewer"),
    ("GET", "/api/v1/streams/{id}", "viewer"),
    ("GET", "/api/v1/tokens", "admin"),
    ("POST", "/api/v1/tokens", "admin"),
    ("DELETE", "/api/v1/tokens/{id}", "admin"),
    ("GET", "/api/v1/settings/media", "viewer"),
    ("PUT", "/api/v1/settings/media", "admin"),
    ("GET", "/api/v1/settings/sip", "viewer"),
    ("PUT", "/api/v1/settings/sip", "admin"),
    ("GET", "/api/v1/settings/network", "viewer"),
    ("PUT", "/api/v1/settings/network", "admin"),
    ("GET", "/api/v1/devices", "viewer"),
    ("POST", "/api/v1/devices", "admin"),
    ("GET", "/api/v1/devices/{id}", "viewer"),
    ("PATCH", "/api/v1/devices/{id}", "admin"),
    ("DELETE", "/api/v1/devices/{id}", "admin"),
    ("POST", "/api/v1/devices/{id}/catalog/refresh", "operator"),
    ("GET", "/api/v1/devices/{id}/info", "viewer"),
    ("GET", "/api/v1/devices/{id}/status", "viewer"),
    ("GET", "/api/v1/devices/{id}/channels", "viewer"),
    ("GET", "/api/v1/events", "viewer"),
    ("GET", "/metrics", "viewer"),
    ("GET", "/api/v1/webhooks", "admin"),
    ("POST", "/api/v1/webhooks", "admin"),
    ("DELETE", "/api/v1/webhooks/{id}", "admin"),
    ("GET", "/api/v1/webhooks/{id}/deliveries", "admin"),
    ("POST", "/api/v1/events/{id}/ack", "operator"),
    (
        "PATCH",
        "/api/v1/channels/{device_id}/{channel_id}",
        "admin",
    ),
    (
        "POST",
        "/api/v1/channels/{device_id}/{channel_id}/play",
        "operator",
    ),
    (
        "DELETE",
        "/api/v1/channels/{device_id}/{channel_id}/play",
        "operator",
    ),
    (
        "POST",
        "/api/v1/channels/{device_id}/{channel_id}/ptz",
        "operator",
    ),
    (
        "POST",
        "/api/v1/channels/{device_id}/{channel_id}/cruise",
        "operator",
    ),
    (
        "POST",
        "/api/v1/channels/{device_id}/{channel_id}/scan",
        "operator",
    ),
    (
        "GET",
        "/api/v1/channels/{device_id}/{channel_id}/presets",
        "operator",
    ),
    (
        "PUT",
        "/api/v1/channels/{device_id}/{channel_id}/presets/{preset}",
        "operator",
    ),
    (
        "DELETE",
        "/api/v1/channels/{device_id}/{channel_id}/presets/{preset}",
        "operator",
    ),
    (
        "POST",
        "/api/v1/channels/{device_id}/{channel_id}/presets/{preset}/call",
        "operator",
    ),
    ("POST", "/api/v1/devices/{id}/control", "operator"),
    (
        "GET",
        "/api/v1/channels/{device_id}/{channel_id}/ptz/serial",
        "operator",
    ),
    (
        "PUT",
        "/api/v1/channels/{device_id}/{channel_id}/ptz/serial",
        "admin",
    ),
    (
        "DELETE",
        "/api/v1/channels/{device_id}/{channel_id}/ptz/serial",
        "admin",
    ),
    (
        "POST",
        "/api/v1/channels/{device_id}/{channel_id}/ptz/precise",
        "operator",
    ),
    (
        "PUT",
        "/api/v1/channels/{device_id}/{channel_id}/home",
        "operator",
    ),
    (
        "GET",
        "/api/v1/channels/{device_id}/{channel_id}/records",
        "viewer",
    ),
    (
        "POST",
        "/api/v1/channels/{device_id}/{channel_id}/playback",
        "operator",
    ),
    ("POST", "/api/v1/playback/{stream}/control", "operator"),
    ("DELETE", "/api/v1/playback/{stream}", "operator"),
    (
        "POST",
        "/api/v1/channels/{device_id}/{channel_id}/downloads",
        "operator",
    ),
    ("GET", "/api/v1/downloads", "viewer"),
    ("GET", "/api/v1/downloads/{id}", "viewer"),
    ("DELETE", "/api/v1/downloads/{id}", "operator"),
    ("GET", "/api/v1/downloads/{id}/file", "viewer"),
    ("POST", "/api/v1/sources/{name}/ptz", "operator"),
    ("GET", "/api/v1/sources/{name}/ptz/serial", "operator"),
    ("GET", "/api/v1/users", "admin"),
    ("POST", "/api/v1/users", "admin"),
    ("PATCH", "/api/v1/users/{id}", "admin"),
    ("DELETE", "/api/v1/users/{id}", "admin"),
    ("GET", "/api/v1/auth/session", "viewer"),
    ("POST", "/api/v1/auth/logout", "viewer"),
    ("PUT", "/api/v1/auth/password", "viewer"),
    ("GET", "/api/v1/system", "viewer"),
    ("POST", "/api/v1/probe/rtsp", "admin"),
    ("PUT", "/api/v1/sources/{name}/ptz/serial", "admin"),
    ("DELETE", "/api/v1/sources/{name}/ptz/serial", "admin"),
];

pub fn router(app: AppState) -> Router {
    let cors = app.cors.clone();
    let v1 = Router::new()
        .route("/sources", get(sources::list).post(sources::create))
        .route(
            "/sources/{name}",
            get(sources::get)
                .patch(sources::update)
                .delete(sources::delete),
        )
        .route("/streams", get(streams::list))
        .route("/streams/{id}", get(streams::get))
        .route("/tokens", get(tokens::list).post(tokens::create))
        .route("/tokens/{id}", axum::routing::delete(tokens::delete))
        .route(
            "/settings/media",
            get(settings::get_media).put(settings::put_media),
        )
        .route(
            "/settings/sip",
            get(settings::get_sip).put(settings::put_sip),
        )
        .route(
            "/settings/network",
            get(settings::get_network).put(settings::put_network),
        )
        .route("/devices", get(devices::list).post(devices::create))
        .route(
            "/devices/{id}",
            get(devices::get)
                .patch(devices::update)
                .delete(devices::delete),
        )
        .route(
            "/devices/{id}/catalog/refresh",
            axum::routing::post(devices::catalog_refresh),
        )
        .route("/devices/{id}/info", get(devices::info))
        .route("/devices/{id}/status", get(devices::status))
        .route("/devices/{id}/channels", get(devices::channels))
        .route("/events", get(devices::events))
        .route(
            "/events/{id}/ack",
            axum::routing::post(devices::acknowledge),
        )
        .route(
            "/channels/{device_id}/{channel_id}",
            axum::routing::patch(channels::update),
        )
        .route(
            "/channels/{device_id}/{channel_id}/play",
            axum::routing::post(channels::play).delete(channels::stop),
        )
        .route(
            "/channels/{device_id}/{channel_id}/ptz",
            axum::routing::post(ptz::ptz),
        )
        .route(
            "/channels/{device_id}/{channel_id}/cruise",
            axum::routing::post(ptz::cruise),
        )
        .route(
            "/channels/{device_id}/{channel_id}/scan",
            axum::routing::post(ptz::scan),
        )
        .route(
            "/channels/{device_id}/{channel_id}/presets",
            get(ptz::presets),
        )
        .route(
            "/channels/{device_id}/{channel_id}/presets/{preset}",
            axum::routing::put(ptz::preset_set).delete(ptz::preset_delete),
        )
        .route(
            "/channels/{device_id}/{channel_id}/presets/{preset}/call",
            axum::routing::post(ptz::preset_call),
        )
        .route(
            "/devices/{id}/control",
            axum::routing::post(ptz::device_control),
        )
        .route(
            "/channels/{device_id}/{channel_id}/ptz/serial",
            get(ptz::serial_get)
                .put(ptz::serial_put)
                .delete(ptz::serial_delete),
        )
        .route(
            "/channels/{device_id}/{channel_id}/ptz/precise",
            axum::routing::post(ptz::precise),
        )
        .route(
            "/channels/{device_id}/{channel_id}/home",
            axum::routing::put(ptz::home),
        )
        .route(
            "/channels/{device_id}/{channel_id}/records",
            get(records::list),
        )
        .route(
            "/channels/{device_id}/{channel_id}/playback",
            axum::routing::post(playback::start),
        )
        .route(
            "/playback/{stream}/control",
            axum::routing::post(playback::control),
        )
        .route("/playback/{stream}", axum::routing::delete(playback::stop))
        .route(
            "/channels/{device_id}/{channel_id}/downloads",
            axum::routing::post(downloads::start),
        )
        .route("/downloads", get(downloads::list))
        .route("/webhooks", get(webhooks::list).post(webhooks::create))
        .route("/webhooks/{id}", axum::routing::delete(webhooks::delete))
        .route("/webhooks/{id}/deliveries", get(webhooks::deliveries))
        .route(
            "/downloads/{id}",
            get(downloads::get).delete(downloads::delete),
        )
        .route("/downloads/{id}/file", get(downloads::file))
        .route("/sources/{name}/ptz", axum::routing::post(ptz::source_ptz))
        .route(
            "/sources/{name}/ptz/serial",
            get(ptz::source_serial_get)
                .put(ptz::source_serial_put)
                .delete(ptz::source_serial_delete),
        )
        .route("/users", get(users::list).post(users::create))
        .route(
            "/users/{id}",
            axum::routing::patch(users::update).delete(users::delete),
        )
        .route("/auth/session", get(session::session))
        .route("/auth/logout", axum::routing::post(session::logout))
        .route(
            "/auth/password",
            axum::routing::put(session::change_password),
        )
        .route("/system", get(system::get))
        .route("/probe/rtsp", axum::routing::post(probe::probe_rtsp))
        .route_layer(axum::middleware::from_fn_with_state(
            app.clone(),
            auth::authenticate,
        ));
    let metrics = Router::new()
        .route("/metrics", get(metrics::metrics))
        .route_layer(axum::middleware::from_fn_with_state(
            app.clone(),
            auth::authenticate,
        ));
    Router::new()
        .route("/api/v1/health", get(health))
        // Signing in needs no credentials (it makes them); it is rate-limited.
        .route("/api/v1/auth/login", axum::routing::post(session::login))
        .route("/api/openapi.json", get(openapi::openapi_json))
        .route("/api/docs", get(openapi::docs_index))
        .nest("/api/v1", v1)
        .merge(metrics)
        .route("/live/{file}", get(live::flv))
        .route("/live/{stream}/{file}", get(live::hls))
        // A literal segment wins over `{file}` in the router, so `whep` is
        // never taken for an HLS file name.
        .route("/live/{stream}/whep", axum::routing::post(whep::create))
        .route(
            "/live/{stream}/whep/{session}",
            axum::routing::patch(whep::patch).delete(whep::delete),
        )
        .fallback(ui::fallback)
        .method_not_allowed_fallback(error::method_not_allowed)
        .with_state(app)
        .layer(axum::middleware::from_fn_with_state(cors, cors::layer))
}

#[derive(Serialize, utoipa::ToSchema)]
struct Health {
    status: &'static str,
    version: &'static str,
    uptime_secs: u64,
}

#[utoipa::path(get, path = "/api/v1/health", tag = "health", summary = "Liveness (no authentication)", responses((status = 200, description = "Up", body = Health)))]
async fn health(axum::extract::State(app): axum::extract::State<AppState>) -> axum::Json<Health> {
    axum::Json(Health {
        status: "ok",
        version: env!("CARGO_PKG_VERSION"),
        uptime_secs: app.started.elapsed().as_secs(),
    })
}

/// Where a stream can be watched, as absolute URLs for the host the client
/// used to reach the API.
#[derive(Serialize, Debug, Clone, utoipa::ToSchema)]
pub struct StreamUrls {
    pub http_flv: String,
    pub ws_flv: String,
    /// LL-HLS (fMP4) playlist.
    pub hls: String,
    /// RTSP output (`None` when the RTSP server is disabled).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rtsp: Option<String>,
    /// WebRTC: the WHEP endpoint to POST an SDP offer to (`None` when
    /// WebRTC is disabled).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub whep: Option<String>,
}

/// Every output's URL for stream `id`, for the host the client used.
pub fn stream_urls(app: &App, headers: &HeaderMap, id: &str) -> StreamUrls {
    let fallback = app.config.http_listen;
    let rtsp_port = app.rtsp_port();
    let host = headers
        .get(axum::http::header::HOST)
        .and_then(|h| h.to_str().ok())
        .filter(|h| h.bytes().all(|b| b.is_ascii_graphic()))
        .map(str::to_owned)
        .unwrap_or_else(|| fallback.to_string());
    // Signed viewer URLs carry `?exp=…&sig=…`; the WHEP URL too (its POST
    // is checked the same way).
    let q = viewer::signed_query(app, id).map_or(String::new(), |q| format!("?{q}"));
    StreamUrls {
        http_flv: format!("http://{host}/live/{id}.flv{q}"),
        ws_flv: format!("ws://{host}/live/{id}.flv{q}"),
        hls: format!("http://{host}/live/{id}/index.m3u8{q}"),
        rtsp: rtsp_port
            .map(|port| format!("rtsp://{}:{port}/live/{id}{q}", host_without_port(&host))),
        whep: app
            .config
            .webrtc
            .enabled
            .then(|| format!("http://{host}/live/{id}/whep{q}")),
    }
}

/// `example:8080` → `example`, `[::1]:8080` → `[::1]`, `example` → `example`.
fn host_without_port(host: &str) -> &str {
    if host.starts_with('[') {
        return host.find(']').map_or(host, |i| &host[..=i]);
    }
    match host.rsplit_once(':') {
        Some((h, port)) if !h.contains(':') && port.bytes().all(|b| b.is_ascii_digit()) => h,
        _ => host,
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn rtsp_url_uses_the_host_without_its_port() {
        assert_eq!(super::host_without_port("cam.example:8080"), "cam.example");
        assert_eq!(super::host_without_port("[::1]:8080"), "[::1]");
        assert_eq!(super::host_without_port("[::1]"), "[::1]");
        assert_eq!(super::host_without_port("cam.example"), "cam.example");
        assert_eq!(super::host_without_port("::1"), "::1");
    }
}
