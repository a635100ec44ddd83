//! The OpenAPI 3.1 document of the HTTP API, generated from the handlers'
//! `#[utoipa::path]` annotations and the types' `ToSchema` derives, served
//! at `GET /api/openapi.json`; and a small docs viewer at `GET /api/docs`
//! (web-ui/api-docs, embedded: no CDN, no network).
//!
//! Annotating a handler: `#[utoipa::path(method, path, tag, summary,
//! params, request_body, responses)]` listing its success body and the
//! error statuses particular to it (404, 409, 502, 504 …) with a
//! description only; then add it to `paths(...)` below. What every route
//! shares is added here by [`Common`], so annotations stay short:
//! - the error body (`ApiErrorBody`) on every 4xx/5xx response without one;
//! - on every operation not in [`PUBLIC`] nor under `/live/`: the `bearer`
//!   and `session` security schemes and 401, 403, 503 (`storage_read_only`)
//!   and 507 (`storage_full`: the token check itself writes);
//! - with a JSON request body: 400 (`invalid_json`, `invalid_field`), 413,
//!   415; with query or path parameters: 400 (`invalid_query`,
//!   `invalid_path`);
//! - `operationId` = `{tag}.{function}`, unique across the document.

use std::sync::OnceLock;

use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use utoipa::openapi::path::{Operation, ParameterIn};
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{Content, Ref, RefOr, ResponseBuilder, SecurityRequirement};
use utoipa::{Modify, OpenApi, PartialSchema};

use super::{
    channels, devices, downloads, live, metrics, playback, probe, ptz, records, session, settings,
    sources, streams, system, tokens, users, webhooks, whep,
};

/// Operations anyone may call: no security requirement, no 401/403.
pub const PUBLIC: &[&str] = &[
    "/api/v1/health",
    "/api/v1/auth/login",
    "/api/openapi.json",
    "/api/docs",
];

/// The cookie of a browser session (the `session` security scheme).
pub const SESSION_COOKIE: &str = "camgate_session";

#[derive(OpenApi)]
#[openapi(
    info(
        title = "camgate",
        description = "GB28181 platform and security-camera media gateway. Errors always \
            have the body `{\"error\": {\"code\", \"message\", \"field\"?}}`.",
        license(name = "MIT OR Apache-2.0", identifier = "MIT OR Apache-2.0"),
    ),
    paths(
        super::health,
        sources::list, sources::create, sources::get, sources::update, sources::delete,
        streams::list, streams::get,
        tokens::list, tokens::create, tokens::delete,
        settings::get_media, settings::put_media, settings::get_sip, settings::put_sip,
        devices::list, devices::create, devices::get, devices::update, devices::delete,
        devices::catalog_refresh, devices::info, devices::status, devices::channels,
        devices::events, devices::acknowledge,
        channels::update, channels::play, channels::stop,
        ptz::ptz, ptz::cruise, ptz::scan, ptz::presets, ptz::preset_set, ptz::preset_call,
        ptz::preset_delete, ptz::device_control, ptz::serial_get, ptz::serial_put,
        ptz::serial_delete, ptz::precise, ptz::home, ptz::source_ptz, ptz::source_serial_get,
        ptz::source_serial_put, ptz::source_serial_delete,
        records::list,
        playback::start, playback::control, playback::stop,
        downloads::start, downloads::list, downloads::get, downloads::file, downloads::delete,
        webhooks::list, webhooks::create, webhooks::delete, webhooks::deliveries,
        metrics::metrics,
        live::flv, live::hls, whep::create, whep::patch, whep::delete,
        session::login, session::session, session::logout, session::change_password,
        users::list, users::create, users::update, users::delete,
        system::get, settings::get_network, settings::put_network, probe::probe_rtsp,
    ),
    tags(
        (name = "health", description = "Liveness"),
        (name = "devices", description = "GB28181 devices registered to the platform"),
        (name = "channels", description = "A device's channels and their live streams"),
        (name = "ptz", description = "Pan/tilt/zoom over GB28181 or RS-485 (Pelco)"),
        (name = "records", description = "Recordings on a device"),
        (name = "playback", description = "Playback of device recordings"),
        (name = "downloads", description = "Downloads of device recordings into MP4 files"),
        (name = "sources", description = "RTSP cameras"),
        (name = "streams", description = "What is in the hub now"),
        (name = "tokens", description = "API tokens"),
        (name = "settings", description = "Settings applied at run time"),
        (name = "events", description = "The event log and alarms"),
        (name = "webhooks", description = "HTTP endpoints that receive events"),
        (name = "metrics", description = "Prometheus metrics"),
        (name = "live", description = "Live outputs: HTTP-FLV, WS-FLV, LL-HLS, WHEP"),
        (name = "auth", description = "Web UI sign-in and sessions"),
        (name = "users", description = "Web UI users"),
        (name = "system", description = "The box's load"),
    ),
    modifiers(&Common),
)]
pub struct ApiDoc;

/// What every operation shares (see the module doc).
struct Common;

impl Modify for Common {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        let components = doc.components.get_or_insert_with(Default::default);
        components.schemas.insert(
            "ApiErrorBody".to_owned(),
            <super::error::Body<'static> as PartialSchema>::schema(),
        );
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some("An API token: `Authorization: Bearer cg_…`"))
                    .build(),
            ),
        );
        components.add_security_scheme(
            "session",
            SecurityScheme::ApiKey(ApiKey::Cookie(ApiKeyValue::with_description(
                SESSION_COOKIE,
                "A browser session; writes also need the `X-CSRF-Token` header",
            ))),
        );
        doc.info.version = env!("CARGO_PKG_VERSION").to_owned();
        for (path, item) in doc.paths.paths.iter_mut() {
            let secured = !PUBLIC.contains(&path.as_str()) && !path.starts_with("/live/");
            for op in [
                &mut item.get,
                &mut item.put,
                &mut item.post,
                &mut item.delete,
                &mut item.patch,
            ]
            .into_iter()
            .flatten()
            {
                common_responses(op, secured);
            }
        }
    }
}

fn common_responses(op: &mut Operation, secured: bool) {
    let tag = op
        .tags
        .as_ref()
        .and_then(|t| t.first())
        .cloned()
        .unwrap_or_default();
    if let Some(id) = &op.operation_id
        && !id.contains('.')
    {
        op.operation_id = Some(format!("{tag}.{id}"));
    }
    let mut add = |status: &str, description: &str| {
        op.responses
            .responses
            .entry(status.to_owned())
            .or_insert_with(|| {
                ResponseBuilder::new()
                    .description(description)
                    .build()
                    .into()
            });
    };
    if secured {
        add(
            "401",
            "No valid credentials (`unauthorized`); `WWW-Authenticate: Bearer`",
        );
        add(
            "403",
            "The caller's role is too weak for this (`forbidden`), or a cookie-authenticated \
             write lacks the session's `X-CSRF-Token` (`csrf`)",
        );
        add(
            "503",
            "The database is read-only (`storage_read_only`); nothing was changed",
        );
        add(
            "507",
            "The disk holding the database is full (`storage_full`); nothing was changed",
        );
    }
    let json_body = op
        .request_body
        .as_ref()
        .is_some_and(|b| b.content.contains_key("application/json"));
    if json_body {
        add(
            "400",
            "The body is not valid JSON for this operation (`invalid_json`) or a field \
             is out of range (`invalid_field`); `field` names it",
        );
        add(
            "413",
            "The body is larger than 64 KiB (`payload_too_large`)",
        );
        add(
            "415",
            "The body is not `Content-Type: application/json` (`unsupported_media_type`)",
        );
    }
    let params = op.parameters.as_deref().unwrap_or_default();
    if params
        .iter()
        .any(|p| matches!(p.parameter_in, ParameterIn::Query | ParameterIn::Path))
    {
        add(
            "400",
            "A query parameter (`invalid_query`, `invalid_field`) or path parameter \
             (`invalid_path`) does not fit",
        );
    }
    for (status, response) in op.responses.responses.iter_mut() {
        if let RefOr::T(r) = response
            && (status.starts_with('4') || status.starts_with('5'))
            && r.content.is_empty()
        {
            r.content.insert(
                "application/json".to_owned(),
                Content::new(Some(Ref::from_schema_name("ApiErrorBody"))),
            );
        }
    }
    if secured {
        op.security = Some(vec![
            SecurityRequirement::new("bearer", Vec::<String>::new()),
            SecurityRequirement::new("session", Vec::<String>::new()),
        ]);
    } else if op.security.is_none() && op.tags.iter().flatten().any(|t| t == "live") {
        // Live outputs need a viewer token only with `[viewer]
        // require_token`: anonymous or bearer.
        op.security = Some(vec![
            SecurityRequirement::default(),
            SecurityRequirement::new("bearer", Vec::<String>::new()),
        ]);
    }
}

/// The document as JSON, generated once.
pub fn document() -> &'static str {
    static DOC: OnceLock<String> = OnceLock::new();
    DOC.get_or_init(|| {
        ApiDoc::openapi()
            .to_json()
            .unwrap_or_else(|e| format!("{{\"error\":\"cannot render the document: {e}\"}}"))
    })
}

/// A static text answer with a strong ETag over its bytes; 304 when the
/// client has it (RFC 9110 §13.1.2).
fn cached(headers: &HeaderMap, content_type: &'static str, body: &'static str) -> Response {
    use sha2::Digest;
    let etag = format!(
        "\"{}\"",
        crate::util::hex(&sha2::Sha256::digest(body.as_bytes())[..12])
    );
    let fresh = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == etag || t.trim() == "*"));
    let mut r = if fresh {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        (
            [(header::CONTENT_TYPE, HeaderValue::from_static(content_type))],
            body,
        )
            .into_response()
    };
    let h = r.headers_mut();
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    if let Ok(v) = HeaderValue::from_str(&etag) {
        h.insert(header::ETAG, v);
    }
    r
}

/// `GET /api/openapi.json`.
pub async fn openapi_json(headers: HeaderMap) -> Response {
    cached(&headers, "application/json", document())
}

/// `GET /api/docs`: the viewer's page, from the embedded web UI (its
/// assets are under `/api-docs/`, served like every UI file).
pub async fn docs_index(method: axum::http::Method, headers: HeaderMap) -> Response {
    super::ui::serve("api-docs/index.html", &method, &headers).unwrap_or_else(|| {
        super::ApiError::not_found("the API docs viewer is not embedded").into_response()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn document_renders_with_unique_operation_ids() {
        let doc: serde_json::Value = serde_json::from_str(document()).unwrap();
        assert!(doc["openapi"].as_str().unwrap().starts_with("3.1"));
        let mut ids = std::collections::HashSet::new();
        for (_, item) in doc["paths"].as_object().unwrap() {
            for (_, op) in item.as_object().unwrap() {
                let id = op["operationId"].as_str().unwrap().to_owned();
                assert!(ids.insert(id.clone()), "duplicate operationId {id}");
            }
        }
    }
}
