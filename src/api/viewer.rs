//! Who may watch: with `[viewer] require_token = true`, every live output
//! (HTTP-FLV, WS-FLV, HLS, WHEP) needs an API token of any role, given as
//! `Authorization: Bearer <token>` (WHEP's own scheme, RFC 9725 §4.5) or as
//! `?token=<token>` for players that cannot set headers (`<video>`, FFmpeg,
//! hls.js segment requests). With `[viewer] signed_url_ttl_secs`, viewer
//! URLs carry `?exp=<unix>&sig=<HMAC-SHA256(key, stream \n exp)>` instead:
//! the API signs them, the key never leaves the box, and a URL works for one
//! stream until it expires (an API token still works too). A web UI
//! session cookie is accepted as well.

use axum::http::{HeaderMap, header};

use super::{ApiError, AppState};
use crate::store::db;

/// Longest token considered; real ones are 67 characters.
const MAX_TOKEN_LEN: usize = 256;

/// The `token` query parameter, percent-decoded.
pub fn query_token(query: Option<&str>) -> Option<String> {
    query?
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .find(|(k, _)| *k == "token")
        .map(|(_, v)| {
            percent_encoding::percent_decode_str(v)
                .decode_utf8_lossy()
                .into_owned()
        })
        .filter(|t| !t.is_empty() && t.len() <= MAX_TOKEN_LEN)
}

fn bearer(headers: &HeaderMap) -> Option<String> {
    let v = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, rest) = v.split_once(' ')?;
    let t = rest.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !t.is_empty() && t.len() <= MAX_TOKEN_LEN)
        .then(|| t.to_owned())
}

/// The signature of a viewer URL for `stream` valid until `exp`.
pub fn url_signature(key: &[u8], stream: &str, exp: u64) -> String {
    use hmac::{Hmac, Mac};
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(key).expect("HMAC takes keys of any length");
    mac.update(stream.as_bytes());
    mac.update(b"\n");
    mac.update(exp.to_string().as_bytes());
    // 128 bits are plenty for a URL that expires.
    crate::util::hex(&mac.finalize().into_bytes()[..16])
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// `exp=…&sig=…` for a new viewer URL of `stream`, when signed URLs are on.
pub fn signed_query(app: &crate::app::App, stream: &str) -> Option<String> {
    let ttl = app.config.viewer_signed_ttl?;
    let exp = unix_now() + ttl.as_secs();
    Some(format!(
        "exp={exp}&sig={}",
        url_signature(app.viewer_key(), stream, exp)
    ))
}

/// The `exp`/`sig` pair of a query, if it is a valid, unexpired signature
/// for `stream` (compared in constant time).
pub fn signature_ok(key: &[u8], stream: &str, query: Option<&str>) -> Option<String> {
    let q = query?;
    let param = |name: &str| {
        q.split('&')
            .find_map(|kv| kv.strip_prefix(name)?.strip_prefix('='))
    };
    let exp: u64 = param("exp")?.parse().ok()?;
    let sig = param("sig")?;
    if exp < unix_now() {
        return None;
    }
    let want = url_signature(key, stream, exp);
    let same = want.len() == sig.len()
        && want
            .bytes()
            .zip(sig.bytes())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0;
    same.then(|| format!("exp={exp}&sig={sig}"))
}

/// Lets a viewer of `stream` through when viewer checks are off, or it
/// carries a valid signed URL or API token. Returns the query to carry on
/// URIs handed back to the player (HLS playlists): `exp=…&sig=…` or
/// `token=…`.
pub async fn authorize(
    app: &AppState,
    headers: &HeaderMap,
    query: Option<&str>,
    stream: &str,
) -> Result<Option<String>, ApiError> {
    let signed = app.config.viewer_signed_ttl.is_some();
    if !app.config.viewer_require_token && !signed {
        return Ok(None);
    }
    if signed && let Some(carry) = signature_ok(app.viewer_key(), stream, query) {
        return Ok(Some(carry));
    }
    let from_query = query_token(query);
    let presented = bearer(headers).or_else(|| from_query.clone());
    // The web UI's players send the session cookie (same origin; hls.js
    // segment requests too), so a signed-in user needs no token in URLs.
    if presented.is_none() && super::auth::session_caller(app, headers).await?.is_some() {
        return Ok(None);
    }
    let Some(token) = presented else {
        return Err(ApiError::unauthorized(if signed {
            "this gateway requires a signed viewer URL (from the play or streams API) or an API token"
        } else {
            "this gateway requires a viewer token: add ?token=<token> or Authorization: Bearer <token>"
        }));
    };
    match app.store.call(move |c| db::verify_token(c, &token)).await? {
        Some(_) => Ok(from_query.map(|t| {
            // RFC 3986 unreserved characters stay as they are.
            const QUERY_VALUE: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
                .remove(b'-')
                .remove(b'.')
                .remove(b'_')
                .remove(b'~');
            format!(
                "token={}",
                percent_encoding::utf8_percent_encode(&t, QUERY_VALUE)
            )
        })),
        None => Err(ApiError::unauthorized("unknown or revoked viewer token")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signed_urls_check_stream_expiry_and_signature() {
        let key = b"0123456789abcdef0123456789abcdef";
        let exp = unix_now() + 60;
        let sig = url_signature(key, "yard", exp);
        let q = format!("exp={exp}&sig={sig}");
        assert_eq!(signature_ok(key, "yard", Some(&q)), Some(q.clone()));
        assert_eq!(signature_ok(key, "gate", Some(&q)), None, "another stream");
        assert_eq!(signature_ok(b"another key", "yard", Some(&q)), None);
        let later = format!("exp={}&sig={sig}", exp + 1);
        assert_eq!(
            signature_ok(key, "yard", Some(&later)),
            None,
            "exp is signed"
        );
        let old = unix_now() - 1;
        let stale = format!("exp={old}&sig={}", url_signature(key, "yard", old));
        assert_eq!(signature_ok(key, "yard", Some(&stale)), None, "expired");
        assert_eq!(signature_ok(key, "yard", None), None);
        assert_eq!(signature_ok(key, "yard", Some("exp=x&sig=y")), None);
    }

    #[test]
    fn token_from_the_query() {
        assert_eq!(
            query_token(Some("a=1&token=cg_x%2By")),
            Some("cg_x+y".into())
        );
        assert_eq!(query_token(Some("token=")), None);
        assert_eq!(query_token(None), None);
        assert_eq!(
            query_token(Some(&format!("token={}", "a".repeat(300)))),
            None
        );
    }
}
