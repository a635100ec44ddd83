//! Cross-origin access (the Fetch standard's CORS protocol) for web players
//! and VMS front-ends served from another origin.
//!
//! Off unless `[http] cors_allowed_origins` lists origins (or `"*"`). The
//! layer sits outside routing and authentication: a preflight `OPTIONS`
//! carries no credentials by design (Fetch §3.2.2), so it is answered here and
//! never reaches a handler; the real request then goes through auth as usual.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

/// Which origins may read responses.
#[derive(Clone, Debug, Default)]
pub struct CorsPolicy {
    any: bool,
    origins: Vec<String>,
}

/// Request headers a cross-origin caller may send: bearer auth, JSON and SDP
/// bodies, WHEP's `If-Match` on PATCH.
const ALLOWED_HEADERS: &str = "authorization, content-type, if-match, if-none-match";
const ALLOWED_METHODS: &str = "GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS";
/// Response headers scripts may read: WHEP's session resource and ETag
/// (RFC 9725 §4.2), its ICE-server `Link`s and `Accept-Patch`.
const EXPOSED_HEADERS: &str = "location, etag, link, accept-patch, content-length";

impl CorsPolicy {
    /// `origins` as configured: `"*"` or serialized origins such as
    /// `https://vms.example:8443` (scheme, host, optional port; no path).
    pub fn new(origins: &[String]) -> Result<Self, String> {
        let mut policy = Self::default();
        for o in origins {
            if o == "*" {
                policy.any = true;
                continue;
            }
            let parsed = url::Url::parse(o).map_err(|e| format!("CORS origin {o:?}: {e}"))?;
            let serialized = parsed.origin().ascii_serialization();
            if !matches!(parsed.scheme(), "http" | "https")
                || serialized != o.trim_end_matches('/')
                || parsed.path() != "/"
            {
                return Err(format!(
                    "CORS origin {o:?} must be \"*\" or scheme://host[:port] with nothing after it"
                ));
            }
            policy.origins.push(serialized);
        }
        Ok(policy)
    }

    pub fn is_enabled(&self) -> bool {
        self.any || !self.origins.is_empty()
    }

    fn allows(&self, origin: &str) -> bool {
        self.any || self.origins.iter().any(|o| o == origin)
    }
}

fn add_allow_origin(headers: &mut HeaderMap, origin: &HeaderValue) {
    // The origin is echoed rather than `*` so the same answer stays right once
    // cookie sessions exist; `Vary` keeps caches from mixing origins.
    headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin.clone());
    headers.append(header::VARY, HeaderValue::from_static("origin"));
}

/// The policy in force; SIGHUP swaps in a new one (see `ops::reload`).
pub type SharedCorsPolicy = Arc<std::sync::RwLock<Arc<CorsPolicy>>>;

pub async fn layer(State(cell): State<SharedCorsPolicy>, req: Request, next: Next) -> Response {
    let policy = cell.read().unwrap_or_else(|e| e.into_inner()).clone();
    if !policy.is_enabled() {
        return next.run(req).await;
    }
    let origin = req
        .headers()
        .get(header::ORIGIN)
        .filter(|o| o.to_str().is_ok_and(|o| policy.allows(o)))
        .cloned();
    let Some(origin) = origin else {
        return next.run(req).await;
    };
    let preflight = req.method() == Method::OPTIONS
        && req
            .headers()
            .contains_key(header::ACCESS_CONTROL_REQUEST_METHOD);
    if preflight {
        let mut resp = StatusCode::NO_CONTENT.into_response();
        let h = resp.headers_mut();
        add_allow_origin(h, &origin);
        h.insert(
            header::ACCESS_CONTROL_ALLOW_METHODS,
            HeaderValue::from_static(ALLOWED_METHODS),
        );
        h.insert(
            header::ACCESS_CONTROL_ALLOW_HEADERS,
            HeaderValue::from_static(ALLOWED_HEADERS),
        );
        h.insert(
            header::ACCESS_CONTROL_MAX_AGE,
            HeaderValue::from_static("600"),
        );
        return resp;
    }
    let mut resp = next.run(req).await;
    let h = resp.headers_mut();
    add_allow_origin(h, &origin);
    h.insert(
        header::ACCESS_CONTROL_EXPOSE_HEADERS,
        HeaderValue::from_static(EXPOSED_HEADERS),
    );
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins_are_checked_when_configured() {
        let p = CorsPolicy::new(&["https://vms.example:8443".into()]).unwrap();
        assert!(p.allows("https://vms.example:8443"));
        assert!(!p.allows("https://vms.example"));
        assert!(!p.allows("http://vms.example:8443"));
        let any = CorsPolicy::new(&["*".into()]).unwrap();
        assert!(any.allows("http://anything.test"));
        assert!(!CorsPolicy::new(&[]).unwrap().is_enabled());
    }

    #[test]
    fn bad_origins_are_refused() {
        for bad in [
            "vms.example",
            "https://vms.example/path",
            "ftp://vms.example",
            "https://",
        ] {
            assert!(CorsPolicy::new(&[bad.into()]).is_err(), "{bad} accepted");
        }
        // A trailing slash is how some people write an origin; it means the same.
        assert!(CorsPolicy::new(&["http://a.test/".into()]).is_ok());
    }
}
