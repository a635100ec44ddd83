//! Viewer authentication for RTSP with API tokens (any role may watch):
//!
//! - Basic (RFC 7617): any username, the token as password.
//! - Digest (RFC 7616 §3.4 with MD5, as RFC 2617 clients do it; realm
//!   `camgate`): the token's stored prefix as username, the token as
//!   password; the server checks against the HA1 stored at token creation.
//!   Tokens created before that column existed can use Basic only.
//! - `?token=` in the request URL.
//!
//! Nonces are bounded in number, expire, and are single-use without `qop`;
//! with `qop=auth` each use needs a higher nonce count (RFC 7616 §3.4:
//! replay protection). Failures per peer address are counted as the SIP
//! registrar does: too many in a window and the address is refused for a
//! while. Sans-IO: token lookups are the shell's, time is passed in.

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;

use crate::sip::digest::{DigestResponse, parse_authorization};
use crate::store::DIGEST_REALM;
use crate::util::{FailureLimiter, FailureLimits};

/// A scheme offered in challenges and accepted in credentials.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AuthScheme {
    Digest,
    Basic,
}

/// What a request presented.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Credentials {
    None,
    /// A token from Basic or `?token=`; verified by hash lookup.
    Token {
        token: String,
        scheme: &'static str,
    },
    Digest(Box<DigestResponse>),
    /// Present but unusable (malformed, or a scheme not offered).
    Invalid(String),
}

const MAX_TOKEN_LEN: usize = 256;

/// Reads the `Authorization` header (and the URL's `?token=`, used when the
/// header is absent).
pub fn credentials(
    authorization: Option<&str>,
    query_token: Option<&str>,
    schemes: &[AuthScheme],
) -> Credentials {
    let Some(value) = authorization.map(str::trim) else {
        return match query_token {
            Some(t) if t.len() <= MAX_TOKEN_LEN => Credentials::Token {
                token: t.to_owned(),
                scheme: "query",
            },
            _ => Credentials::None,
        };
    };
    let scheme = value.split(' ').next().unwrap_or("");
    if scheme.eq_ignore_ascii_case("basic") {
        if !schemes.contains(&AuthScheme::Basic) {
            return Credentials::Invalid("Basic is not offered".into());
        }
        let decoded = B64
            .decode(value[scheme.len()..].trim())
            .ok()
            .and_then(|b| String::from_utf8(b).ok());
        return match decoded.as_deref().and_then(|s| s.split_once(':')) {
            Some((_, token)) if !token.is_empty() && token.len() <= MAX_TOKEN_LEN => {
                Credentials::Token {
                    token: token.to_owned(),
                    scheme: "basic",
                }
            }
            _ => Credentials::Invalid("malformed Basic credentials".into()),
        };
    }
    if scheme.eq_ignore_ascii_case("digest") {
        if !schemes.contains(&AuthScheme::Digest) {
            return Credentials::Invalid("Digest is not offered".into());
        }
        return match parse_authorization(value) {
            Ok(d) if d.realm != DIGEST_REALM => {
                Credentials::Invalid(format!("Digest realm {:?}", d.realm))
            }
            Ok(d) if d.username.len() > MAX_TOKEN_LEN => {
                Credentials::Invalid("Digest username too long".into())
            }
            Ok(d) => Credentials::Digest(Box::new(d)),
            Err(e) => Credentials::Invalid(e.to_string()),
        };
    }
    Credentials::Invalid(format!(
        "unsupported scheme {:?}",
        scheme.chars().take(16).collect::<String>()
    ))
}

#[derive(Debug, Clone, Copy)]
pub struct AuthLimits {
    pub nonce_ttl: Duration,
    pub max_nonces: usize,
    /// Failed logins per address before it is blocked, and for how long.
    pub failures: FailureLimits,
}

impl Default for AuthLimits {
    fn default() -> Self {
        Self {
            nonce_ttl: Duration::from_secs(300),
            max_nonces: 10_000,
            failures: FailureLimits::default(),
        }
    }
}

/// Whether a Digest answer's nonce may be used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NonceCheck {
    Fresh,
    /// Unknown or expired: challenge again with `stale=true` (not a failure:
    /// the client knew the password, RFC 7616 §3.3).
    Stale,
    /// A nonce count not above the last one, or a second use without qop.
    Replay,
}

struct NonceState {
    issued: Instant,
    last_nc: Option<u32>,
}

pub struct AuthGuard {
    limits: AuthLimits,
    nonces: HashMap<String, NonceState>,
    order: VecDeque<(Instant, String)>,
    failures: FailureLimiter,
    new_nonce: Box<dyn FnMut() -> String + Send>,
}

impl AuthGuard {
    /// `new_nonce` makes unpredictable nonces (tests pass a counter).
    pub fn new(limits: AuthLimits, new_nonce: Box<dyn FnMut() -> String + Send>) -> Self {
        Self {
            limits,
            nonces: HashMap::new(),
            order: VecDeque::new(),
            failures: FailureLimiter::new(limits.failures),
            new_nonce,
        }
    }

    fn expire(&mut self, now: Instant) {
        while let Some((at, _)) = self.order.front() {
            if now.saturating_duration_since(*at) < self.limits.nonce_ttl
                && self.nonces.len() < self.limits.max_nonces
            {
                break;
            }
            if let Some((_, n)) = self.order.pop_front() {
                self.nonces.remove(&n);
            }
        }
        self.failures.prune(now);
    }

    /// `WWW-Authenticate` values for a 401, in `schemes` order.
    pub fn challenge(&mut self, now: Instant, stale: bool, schemes: &[AuthScheme]) -> Vec<String> {
        self.expire(now);
        schemes
            .iter()
            .map(|s| match s {
                AuthScheme::Basic => format!("Basic realm=\"{DIGEST_REALM}\""),
                AuthScheme::Digest => {
                    let nonce = (self.new_nonce)();
                    self.nonces.insert(
                        nonce.clone(),
                        NonceState {
                            issued: now,
                            last_nc: None,
                        },
                    );
                    self.order.push_back((now, nonce.clone()));
                    format!(
                        "Digest realm=\"{DIGEST_REALM}\", nonce=\"{nonce}\", algorithm=MD5, qop=\"auth\"{}",
                        if stale { ", stale=TRUE" } else { "" }
                    )
                }
            })
            .collect()
    }

    /// Uses up (a count of) the answer's nonce.
    pub fn check_nonce(&mut self, d: &DigestResponse, now: Instant) -> NonceCheck {
        self.expire(now);
        let Some(state) = self.nonces.get_mut(&d.nonce) else {
            return NonceCheck::Stale;
        };
        if now.saturating_duration_since(state.issued) >= self.limits.nonce_ttl {
            return NonceCheck::Stale;
        }
        match d.nc.as_deref().map(|nc| u32::from_str_radix(nc, 16)) {
            Some(Ok(nc)) if d.qop.is_some() => {
                if state.last_nc.is_some_and(|last| nc <= last) {
                    return NonceCheck::Replay;
                }
                state.last_nc = Some(nc);
                NonceCheck::Fresh
            }
            Some(Err(_)) => NonceCheck::Replay,
            _ => {
                // No qop: one use only.
                self.nonces.remove(&d.nonce);
                NonceCheck::Fresh
            }
        }
    }

    /// Whether `ip` is refused for now after too many failures.
    pub fn blocked(&mut self, ip: IpAddr, now: Instant) -> bool {
        self.expire(now);
        self.failures.blocked_for(ip, now).is_some()
    }

    /// Counts a failure; `true` if `ip` is now blocked.
    pub fn failed(&mut self, ip: IpAddr, now: Instant) -> bool {
        self.expire(now);
        self.failures.failed(ip, now)
    }

    /// A success forgets the address's failures.
    pub fn succeeded(&mut self, ip: IpAddr) {
        self.failures.succeeded(ip);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sip::digest::ha1;

    const BOTH: &[AuthScheme] = &[AuthScheme::Digest, AuthScheme::Basic];

    fn guard() -> AuthGuard {
        let mut n = 0;
        AuthGuard::new(
            AuthLimits::default(),
            Box::new(move || {
                n += 1;
                format!("nonce{n}")
            }),
        )
    }

    /// What FFmpeg's httpauth.c sends for qop=auth.
    fn answer(nonce: &str, nc: u32, password: &str) -> String {
        let (user, uri) = ("cg_0123456789abc", "rtsp://127.0.0.1:8554/live/cam");
        let h1 = ha1(user, DIGEST_REALM, password);
        let h2 = crate::sip::digest::md5_hex(format!("DESCRIBE:{uri}").as_bytes());
        let nc = format!("{nc:08x}");
        let resp =
            crate::sip::digest::md5_hex(format!("{h1}:{nonce}:{nc}:c0ffee:auth:{h2}").as_bytes());
        format!(
            "Digest username=\"{user}\", realm=\"camgate\", nonce=\"{nonce}\", uri=\"{uri}\", response=\"{resp}\", algorithm=\"MD5\", cnonce=\"c0ffee\", nc={nc}, qop=\"auth\""
        )
    }

    #[test]
    fn basic_query_and_invalid_credentials() {
        let basic = format!("Basic {}", B64.encode("anyone:cg_secret"));
        assert_eq!(
            credentials(Some(&basic), None, BOTH),
            Credentials::Token {
                token: "cg_secret".into(),
                scheme: "basic"
            }
        );
        assert!(matches!(
            credentials(Some(&basic), None, &[AuthScheme::Digest]),
            Credentials::Invalid(_)
        ));
        assert_eq!(
            credentials(None, Some("cg_q"), BOTH),
            Credentials::Token {
                token: "cg_q".into(),
                scheme: "query"
            }
        );
        assert_eq!(credentials(None, None, BOTH), Credentials::None);
        for bad in [
            "Basic !!!",
            "Basic Zm9v", // "foo": no colon
            "Bearer x",
            "Digest username=\"a\"",
            "Digest username=\"a\", realm=\"other\", nonce=\"n\", uri=\"u\", response=\"r\"",
        ] {
            assert!(
                matches!(credentials(Some(bad), None, BOTH), Credentials::Invalid(_)),
                "{bad}"
            );
        }
    }

    #[test]
    fn digest_verifies_and_nonces_are_not_replayable() {
        let mut g = guard();
        let t0 = Instant::now();
        let ch = g.challenge(t0, false, BOTH);
        assert_eq!(
            ch,
            vec![
                "Digest realm=\"camgate\", nonce=\"nonce1\", algorithm=MD5, qop=\"auth\""
                    .to_owned(),
                "Basic realm=\"camgate\"".to_owned()
            ]
        );
        let Credentials::Digest(d) = credentials(Some(&answer("nonce1", 1, "cg_tok")), None, BOTH)
        else {
            panic!()
        };
        let stored = ha1("cg_0123456789abc", DIGEST_REALM, "cg_tok");
        assert!(d.verify("DESCRIBE", &stored).unwrap());
        assert!(
            !d.verify("DESCRIBE", &ha1("cg_0123456789abc", DIGEST_REALM, "x"))
                .unwrap()
        );
        assert_eq!(g.check_nonce(&d, t0), NonceCheck::Fresh);
        assert_eq!(g.check_nonce(&d, t0), NonceCheck::Replay, "same nc again");
        let Credentials::Digest(d2) = credentials(Some(&answer("nonce1", 2, "cg_tok")), None, BOTH)
        else {
            panic!()
        };
        assert_eq!(g.check_nonce(&d2, t0), NonceCheck::Fresh);
        // Expired and unknown nonces are stale.
        assert_eq!(
            g.check_nonce(&d2, t0 + Duration::from_secs(301)),
            NonceCheck::Stale
        );
        let Credentials::Digest(d3) = credentials(Some(&answer("forged", 1, "cg_tok")), None, BOTH)
        else {
            panic!()
        };
        assert_eq!(g.check_nonce(&d3, t0), NonceCheck::Stale);
        // Without qop a nonce works once.
        g.challenge(t0, true, &[AuthScheme::Digest]);
        let d4 = DigestResponse {
            nonce: "nonce2".into(),
            ..Default::default()
        };
        assert_eq!(g.check_nonce(&d4, t0), NonceCheck::Fresh);
        assert_eq!(g.check_nonce(&d4, t0), NonceCheck::Stale);
    }

    #[test]
    fn nonces_and_failures_are_bounded() {
        let mut g = AuthGuard::new(
            AuthLimits {
                max_nonces: 3,
                failures: FailureLimits {
                    max_tracked: 2,
                    ..FailureLimits::default()
                },
                ..AuthLimits::default()
            },
            Box::new({
                let mut n = 0;
                move || {
                    n += 1;
                    n.to_string()
                }
            }),
        );
        let t0 = Instant::now();
        for _ in 0..10 {
            g.challenge(t0, false, &[AuthScheme::Digest]);
        }
        assert!(g.nonces.len() <= 3);
        let ip: IpAddr = "10.0.0.1".parse().unwrap();
        for i in 0..4 {
            assert!(!g.failed(ip, t0), "failure {i}");
        }
        assert!(g.failed(ip, t0));
        assert!(g.blocked(ip, t0 + Duration::from_secs(59)));
        assert!(!g.blocked(ip, t0 + Duration::from_secs(61)));
        // Spread over more than the window: never blocked.
        let other: IpAddr = "10.0.0.2".parse().unwrap();
        for i in 0..10 {
            assert!(!g.failed(other, t0 + Duration::from_secs(i * 20)));
        }
        g.succeeded(other);
        // The table holds at most 2 addresses.
        for i in 0..5u8 {
            g.failed(IpAddr::from([10, 1, 0, i]), t0 + Duration::from_secs(200));
        }
        assert!(g.failures.tracked() <= 2);
    }
}
