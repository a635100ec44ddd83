//! Who may watch: with `[viewer] require_token = true`, every live output
//! (HTTP-FLV, WS-FLV, HLS, WHEP) needs an API token of any role, given as
//! `Authorization: Bearer <token>` (WHEP's own scheme, RFC 9725 §4.5) or as
//! `?token=<token>` for players that cannot set headers (`<video>`, FFmpeg,
//! hls.js segment requests).

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

/// Lets the request through when viewer tokens are off or it carries a valid
/// token. Returns the token when it came in the query, so URIs handed back
/// to the player (HLS playlists) can carry it on.
pub async fn authorize(
    app: &AppState,
    headers: &HeaderMap,
    query: Option<&str>,
) -> Result<Option<String>, ApiError> {
    if !app.config.viewer_require_token {
        return Ok(None);
    }
    let from_query = query_token(query);
    let Some(token) = bearer(headers).or_else(|| from_query.clone()) else {
        return Err(ApiError::unauthorized(
            "this gateway requires a viewer token: add ?token=<token> or Authorization: Bearer <token>",
        ));
    };
    match app.store.call(move |c| db::verify_token(c, &token)).await? {
        Some(_) => Ok(from_query),
        None => Err(ApiError::unauthorized("unknown or revoked viewer token")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
