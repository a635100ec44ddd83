//! `/api/v1/auth`: web UI sign-in. `POST /login` with a user name and
//! password (or an API token, for a fresh box that has only the admin token
//! printed at first start) sets the HttpOnly session cookie and returns the
//! session's CSRF token; `GET /session` says who is signed in; `POST
//! /logout` ends the session; `PUT /password` changes one's own password.
//!
//! Failed sign-ins are counted per client address: 5 within a minute block
//! the address for a minute (429 with `Retry-After`).

use std::time::Instant;

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};

use super::auth::{ClientIp, Credential, SESSION_COOKIE, SESSION_LIFETIME};
use super::password;
use super::{ApiError, ApiJson, AppState, Caller};
use crate::store::{SessionOwner, TokenRole, db, hash_token};

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LoginRequest {
    pub username: Option<String>,
    pub password: Option<String>,
    /// An API token instead of a user name and password.
    pub token: Option<String>,
}

/// Who is signed in.
#[derive(Serialize, Debug, utoipa::ToSchema)]
pub struct SessionView {
    pub username: String,
    pub role: TokenRole,
    /// Send it back in `X-CSRF-Token` with every write (cookie sessions
    /// only; bearer-token callers need none).
    pub csrf_token: Option<String>,
    /// Unix seconds (cookie sessions only); slides forward with use.
    pub expires_at: Option<i64>,
}

fn too_many(retry_after_secs: u64) -> Response {
    let mut resp = ApiError::new(
        StatusCode::TOO_MANY_REQUESTS,
        "too_many_attempts",
        format!("too many failed sign-ins from this address; try again in {retry_after_secs} s"),
    )
    .into_response();
    resp.headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from(retry_after_secs));
    resp
}

/// Who the credentials name, if they are right.
async fn check_credentials(
    app: &AppState,
    body: LoginRequest,
) -> Result<Option<(SessionOwner, String, TokenRole)>, ApiError> {
    if let Some(token) = body.token {
        if body.username.is_some() || body.password.is_some() {
            return Err(ApiError::invalid_field(
                "token",
                "give either a token or a user name and password",
            ));
        }
        if token.is_empty() || token.len() > 256 {
            return Ok(None);
        }
        let info = app.store.call(move |c| db::verify_token(c, &token)).await?;
        return Ok(info.map(|t| (SessionOwner::Token(t.id), t.name, t.role)));
    }
    let (Some(username), Some(pass)) = (body.username, body.password) else {
        return Err(ApiError::invalid_field(
            "username",
            "give a username and password (or a token)",
        ));
    };
    if username.is_empty() || username.len() > 64 || pass.len() > password::MAX_LEN * 4 {
        return Ok(None);
    }
    let lookup = username.clone();
    let user = app
        .store
        .call(move |c| db::user_by_name(c, &lookup))
        .await?;
    let (info, hash) = match user {
        Some((u, h)) => (Some(u), Some(h)),
        None => (None, None),
    };
    // Verified even for an unknown or disabled user, at the same cost.
    let ok = password::verify(pass, hash).await;
    Ok(match info {
        Some(u) if ok && !u.disabled => Some((SessionOwner::User(u.id), u.username, u.role)),
        _ => None,
    })
}

#[utoipa::path(post, path = "/api/v1/auth/login", tag = "auth", summary = "Sign in (no credentials needed; rate-limited)", description = "With `username` and `password`, or with an API `token`. Sets the `camgate_session` cookie (HttpOnly, SameSite=Strict); send `csrf_token` back in `X-CSRF-Token` with every cookie-authenticated write. Five failures from an address within a minute block it for a minute.", request_body = LoginRequest, responses((status = 200, description = "Signed in; the cookie is set", body = SessionView), (status = 401, description = "Wrong user name, password or token (`unauthorized`)"), (status = 429, description = "Too many failed sign-ins from this address (`too_many_attempts`); `Retry-After` says when to retry"), (status = 503, description = "The database is read-only"), (status = 507, description = "The disk is full")))]
pub async fn login(
    State(app): State<AppState>,
    ClientIp(peer): ClientIp,
    headers: HeaderMap,
    ApiJson(body): ApiJson<LoginRequest>,
) -> Result<Response, ApiError> {
    let trusted = &app.config.trusted_proxies;
    let from_proxy = peer.is_some_and(|p| trusted.contains(&p));
    let ip = super::auth::client_ip(peer, &headers, trusted)
        .unwrap_or(std::net::IpAddr::V6(std::net::Ipv6Addr::UNSPECIFIED));
    let blocked = app
        .login_failures
        .lock()
        .map_or(None, |l| l.blocked_for(ip, Instant::now()));
    if let Some(left) = blocked {
        return Ok(too_many(left.as_secs().max(1)));
    }
    let who = body
        .username
        .clone()
        .unwrap_or_else(|| "(token)".to_owned());
    let Some((owner, name, role)) = check_credentials(&app, body).await? else {
        // How long this failure blocks the address for, if it does.
        let blocked = app.login_failures.lock().ok().and_then(|mut l| {
            let now = Instant::now();
            l.failed(ip, now);
            l.blocked_for(ip, now)
        });
        tracing::warn!(peer = %ip, user = %who.chars().take(64).collect::<String>(), blocked = blocked.is_some(), "sign-in failed");
        if let Some(left) = blocked {
            return Ok(too_many(left.as_secs().max(1)));
        }
        return Err(ApiError::unauthorized("wrong user name or password"));
    };
    if let Ok(mut l) = app.login_failures.lock() {
        l.succeeded(ip);
    }
    let random = |n| {
        crate::util::random_hex(n).map_err(|e| ApiError::internal(&format!("no randomness: {e}")))
    };
    let session_id = random(32)?;
    let csrf = random(32)?;
    let id_hash = hash_token(&session_id);
    let csrf_stored = csrf.clone();
    let expires_at = app
        .store
        .call(move |c| db::insert_session(c, &id_hash, owner, &csrf_stored, SESSION_LIFETIME))
        .await?;
    tracing::info!(peer = %ip, user = %name, role = role.as_str(), "signed in");
    // Secure when a trusted TLS reverse proxy says the browser used https.
    let secure = from_proxy
        && headers
            .get("x-forwarded-proto")
            .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"https"));
    let cookie = format!(
        "{SESSION_COOKIE}={session_id}; Path=/; HttpOnly; SameSite=Strict; Max-Age={}{}",
        SESSION_LIFETIME.absolute,
        if secure { "; Secure" } else { "" }
    );
    let mut resp = Json(SessionView {
        username: name,
        role,
        csrf_token: Some(csrf),
        expires_at: Some(expires_at),
    })
    .into_response();
    resp.headers_mut().insert(
        header::SET_COOKIE,
        HeaderValue::from_str(&cookie).map_err(|e| ApiError::internal(&e))?,
    );
    resp.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(resp)
}

#[utoipa::path(get, path = "/api/v1/auth/session", tag = "auth", summary = "Who is signed in", responses((status = 200, description = "The caller: a session (with its CSRF token) or a bearer token", body = SessionView)))]
pub async fn session(caller: Caller) -> Response {
    let mut resp = Json(SessionView {
        username: caller.name,
        role: caller.role,
        csrf_token: caller.csrf_token,
        expires_at: caller.session_expires_at,
    })
    .into_response();
    resp.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp
}

#[utoipa::path(post, path = "/api/v1/auth/logout", tag = "auth", summary = "Sign out (ends the session on the server)", responses((status = 204, description = "Signed out; the cookie is cleared")))]
pub async fn logout(State(app): State<AppState>, caller: Caller) -> Result<Response, ApiError> {
    if let Credential::Session { id_hash, .. } = caller.credential {
        app.store
            .call(move |c| db::delete_session(c, &id_hash))
            .await?;
        tracing::info!(user = %caller.name, "signed out");
    }
    let mut resp = StatusCode::NO_CONTENT.into_response();
    resp.headers_mut().insert(
        header::SET_COOKIE,
        HeaderValue::from_static("camgate_session=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0"),
    );
    Ok(resp)
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PasswordChange {
    pub current_password: String,
    pub new_password: String,
}

/// Changes the signed-in user's own password; their other sessions end.
#[utoipa::path(put, path = "/api/v1/auth/password", tag = "auth", summary = "Change one's own password (other sessions end)", request_body = PasswordChange, responses((status = 204, description = "Changed"), (status = 403, description = "The current password is wrong (`wrong_password`), or the role is too weak"), (status = 409, description = "The caller is a token, not a user with a password (`not_a_user`)")))]
pub async fn change_password(
    State(app): State<AppState>,
    caller: Caller,
    ApiJson(body): ApiJson<PasswordChange>,
) -> Result<StatusCode, ApiError> {
    let Credential::Session {
        owner: SessionOwner::User(user_id),
        id_hash,
    } = caller.credential
    else {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "not_a_user",
            "only a user signed in with a password can change it; tokens have none",
        ));
    };
    password::check_policy(&body.new_password)
        .map_err(|e| ApiError::invalid_field("new_password", e.to_string()))?;
    let stored = app
        .store
        .call(move |c| db::user_password_hash(c, user_id))
        .await?;
    if !password::verify(body.current_password, stored).await {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "wrong_password",
            "the current password is wrong",
        ));
    }
    let hash = password::hash(body.new_password)
        .await
        .map_err(|e| ApiError::internal(&e))?;
    app.store
        .call(move |c| db::set_own_password(c, user_id, &hash, &id_hash))
        .await?;
    tracing::info!(user = %caller.name, "password changed; other sessions ended");
    Ok(StatusCode::NO_CONTENT)
}
