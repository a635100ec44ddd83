//! Authentication for `/api/v1` and `/metrics`: a bearer token (machines,
//! VMSs) or the web UI's session cookie. Cookie-authenticated writes must
//! echo the session's CSRF token in `X-CSRF-Token` (the synchronizer token
//! pattern); the cookie is also `SameSite=Strict`, so a cross-site page can
//! neither send it nor read the token.

use std::net::{IpAddr, SocketAddr};

use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::{ApiError, AppState};

use crate::store::{SessionLifetime, SessionOwner, TokenRole, db, hash_token};

/// The session cookie's name.
pub const SESSION_COOKIE: &str = "camgate_session";
/// The header cookie-authenticated writes carry the CSRF token in.
pub const CSRF_HEADER: &str = "x-csrf-token";

/// Sessions end after 12 hours without a request and 7 days after sign-in:
/// a control-room screen stays signed in through a shift, a lost laptop's
/// session does not live forever.
pub const SESSION_LIFETIME: SessionLifetime = SessionLifetime {
    idle: 12 * 3600,
    absolute: 7 * 24 * 3600,
};

/// How a caller proved who they are.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Credential {
    /// `Authorization: Bearer`, the token's id.
    Token(i64),
    /// The session cookie: its owner and the SHA-256 of its id.
    Session {
        owner: SessionOwner,
        id_hash: String,
    },
}

/// Who is calling; inserted by [`authenticate`].
#[derive(Clone, Debug)]
pub struct Caller {
    /// The user's or the token's name.
    pub name: String,
    pub role: TokenRole,
    pub credential: Credential,
    /// The session's CSRF token (cookie callers only).
    pub csrf_token: Option<String>,
    /// When the session ends, unix seconds (cookie callers only).
    pub session_expires_at: Option<i64>,
}

fn rank(r: TokenRole) -> u8 {
    match r {
        TokenRole::Admin => 3,
        TokenRole::Operator => 2,
        TokenRole::Viewer => 1,
    }
}

impl Caller {
    /// Refuses callers below `role` (admin > operator > viewer).
    pub fn require(&self, role: TokenRole) -> Result<(), ApiError> {
        if rank(self.role) >= rank(role) {
            Ok(())
        } else {
            Err(ApiError::forbidden(format!(
                "this needs the {} role; {} has {}",
                role.as_str(),
                self.name,
                self.role.as_str()
            )))
        }
    }
}

impl<S: Send + Sync> axum::extract::FromRequestParts<S> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        _state: &S,
    ) -> Result<Self, Self::Rejection> {
        parts
            .extensions
            .get::<Caller>()
            .cloned()
            .ok_or_else(|| ApiError::unauthorized("authentication required"))
    }
}

/// A caller with at least the operator role, checked before the request
/// body is read (so a weaker token gets 403 whatever it sent).
pub struct RequireOperator(pub Caller);

/// A caller with the admin role, checked before the request body is read.
pub struct RequireAdmin(pub Caller);

macro_rules! role_extractor {
    ($name:ident, $role:expr) => {
        impl<S: Send + Sync> axum::extract::FromRequestParts<S> for $name {
            type Rejection = ApiError;

            async fn from_request_parts(
                parts: &mut axum::http::request::Parts,
                state: &S,
            ) -> Result<Self, Self::Rejection> {
                let caller = Caller::from_request_parts(parts, state).await?;
                caller.require($role)?;
                Ok($name(caller))
            }
        }
    };
}

role_extractor!(RequireOperator, TokenRole::Operator);
role_extractor!(RequireAdmin, TokenRole::Admin);

/// The client's address (from the listener), when known.
pub struct ClientIp(pub Option<IpAddr>);

impl<S: Send + Sync> axum::extract::FromRequestParts<S> for ClientIp {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        _state: &S,
    ) -> Result<Self, Self::Rejection> {
        Ok(ClientIp(
            parts
                .extensions
                .get::<ConnectInfo<SocketAddr>>()
                .map(|c| c.0.ip()),
        ))
    }
}

/// The client a request came from: the socket's peer, or, when that peer is
/// a trusted reverse proxy, the address its `X-Forwarded-For` appended last
/// that is not itself a trusted proxy (the rightmost untrusted hop: what a
/// client writes further left cannot be trusted).
pub fn client_ip(peer: Option<IpAddr>, headers: &HeaderMap, trusted: &[IpAddr]) -> Option<IpAddr> {
    let peer = peer?;
    if !trusted.contains(&peer) {
        return Some(peer);
    }
    let mut hops: Vec<IpAddr> = Vec::new();
    for v in headers.get_all("x-forwarded-for") {
        let Ok(v) = v.to_str() else {
            return Some(peer);
        };
        for hop in v.split(',').take(32) {
            match hop.trim().parse() {
                Ok(ip) => hops.push(ip),
                // An unreadable entry: stop trusting the header there.
                Err(_) => return Some(peer),
            }
        }
    }
    Some(
        hops.into_iter()
            .rev()
            .find(|ip| !trusted.contains(ip))
            .unwrap_or(peer),
    )
}

const MAX_TOKEN_LEN: usize = 256;

/// The bearer token of `Authorization`, `Err` if the header is there but is
/// not a usable bearer token.
pub(super) fn bearer(headers: &HeaderMap) -> Result<Option<String>, ApiError> {
    let Some(v) = headers.get(header::AUTHORIZATION) else {
        return Ok(None);
    };
    v.to_str()
        .ok()
        .and_then(|v| {
            let (scheme, rest) = v.split_once(' ')?;
            scheme.eq_ignore_ascii_case("bearer").then(|| rest.trim())
        })
        .filter(|t| !t.is_empty() && t.len() <= MAX_TOKEN_LEN)
        .map(|t| Some(t.to_owned()))
        .ok_or_else(|| ApiError::unauthorized("malformed Authorization header: use Bearer <token>"))
}

/// The session cookie's value, if the request carries a well-formed one
/// (64 hex digits; anything else is ignored, not looked up).
pub fn session_cookie(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == SESSION_COOKIE)
        .map(|(_, v)| v.trim().to_owned())
        .filter(|v| v.len() == 64 && v.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// The caller a request's session cookie stands for, if it has a live one.
pub async fn session_caller(
    app: &AppState,
    headers: &HeaderMap,
) -> Result<Option<Caller>, ApiError> {
    let Some(cookie) = session_cookie(headers) else {
        return Ok(None);
    };
    let id_hash = hash_token(&cookie);
    let lookup = id_hash.clone();
    let session = app
        .store
        .call(move |c| db::session(c, &lookup, SESSION_LIFETIME))
        .await?;
    Ok(session.map(|s| Caller {
        name: s.name,
        role: s.role,
        credential: Credential::Session {
            owner: s.owner,
            id_hash,
        },
        csrf_token: Some(s.csrf_token),
        session_expires_at: Some(s.expires_at),
    }))
}

fn is_safe(method: &Method) -> bool {
    matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
}

/// Lets a request through with a [`Caller`] for a valid bearer token or a
/// live session (and, for a session's writes, the right CSRF token).
pub async fn authenticate(State(app): State<AppState>, mut req: Request, next: Next) -> Response {
    // Only the headers and method are needed; `&Request` is not `Send`.
    let (headers, method) = (req.headers().clone(), req.method().clone());
    match identify(&app, &headers, &method).await {
        Ok(caller) => {
            req.extensions_mut().insert(caller);
            next.run(req).await
        }
        Err(e) => e.into_response(),
    }
}

async fn identify(
    app: &AppState,
    headers: &HeaderMap,
    method: &Method,
) -> Result<Caller, ApiError> {
    if let Some(token) = bearer(headers)? {
        return match app.store.call(move |c| db::verify_token(c, &token)).await? {
            Some(info) => Ok(Caller {
                name: info.name,
                role: info.role,
                credential: Credential::Token(info.id),
                csrf_token: None,
                session_expires_at: None,
            }),
            None => Err(ApiError::unauthorized("unknown or revoked token")),
        };
    }
    let Some(caller) = session_caller(app, headers).await? else {
        return Err(ApiError::unauthorized(
            if session_cookie(headers).is_some() {
                "the session has ended; sign in again"
            } else {
                "sign in, or send Authorization: Bearer <token>"
            },
        ));
    };
    if !is_safe(method) {
        let sent = headers
            .get(CSRF_HEADER)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        let want = caller.csrf_token.as_deref().unwrap_or("");
        if want.is_empty() || !crate::util::constant_time_eq(sent.as_bytes(), want.as_bytes()) {
            return Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "csrf",
                "a write with the session cookie needs the session's X-CSRF-Token header",
            ));
        }
    }
    Ok(caller)
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    #[test]
    fn only_well_formed_session_cookies_are_looked_up() {
        let id = "ab".repeat(32);
        let mut h = HeaderMap::new();
        h.insert(
            header::COOKIE,
            HeaderValue::from_str(&format!("theme=dark; {SESSION_COOKIE}={id}")).unwrap(),
        );
        assert_eq!(session_cookie(&h), Some(id));
        h.insert(
            header::COOKIE,
            HeaderValue::from_str(&format!("{SESSION_COOKIE}=../../etc")).unwrap(),
        );
        assert_eq!(session_cookie(&h), None);
        assert_eq!(session_cookie(&HeaderMap::new()), None);
    }

    #[test]
    fn forwarded_for_counts_only_behind_a_trusted_proxy() {
        let proxy: IpAddr = "10.0.0.1".parse().unwrap();
        let client: IpAddr = "192.0.2.7".parse().unwrap();
        let mut h = HeaderMap::new();
        h.insert(
            "x-forwarded-for",
            HeaderValue::from_static("203.0.113.9, 192.0.2.7"),
        );
        assert_eq!(client_ip(Some(proxy), &h, &[proxy]), Some(client));
        // A direct client cannot claim another address.
        assert_eq!(client_ip(Some(client), &h, &[proxy]), Some(client));
        assert_eq!(client_ip(Some(proxy), &h, &[]), Some(proxy));
        // Two trusted proxies in a row: the hop before them.
        let inner: IpAddr = "10.0.0.2".parse().unwrap();
        h.insert(
            "x-forwarded-for",
            HeaderValue::from_static("192.0.2.7, 10.0.0.2"),
        );
        assert_eq!(client_ip(Some(proxy), &h, &[proxy, inner]), Some(client));
        h.insert("x-forwarded-for", HeaderValue::from_static("junk"));
        assert_eq!(client_ip(Some(proxy), &h, &[proxy]), Some(proxy));
        assert_eq!(client_ip(None, &h, &[proxy]), None);
    }

    #[test]
    fn bearer_header_must_be_well_formed_when_present() {
        let mut h = HeaderMap::new();
        assert!(matches!(bearer(&h), Ok(None)));
        h.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("Bearer cg_x"),
        );
        assert_eq!(bearer(&h).unwrap().as_deref(), Some("cg_x"));
        h.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("Basic eDp5"),
        );
        assert!(bearer(&h).is_err());
    }
}
