//! The registrar's decisions (gb28181.md §2 "REGISTER"), sans-IO: a REGISTER's
//! facts and the device's credential in, a verdict out; time is an input.
//!
//! - No credential for the device (unknown and not auto-accepted, or no
//!   password anywhere) → 403 at once, without a challenge.
//! - No `Authorization` → 401 with a fresh nonce.
//! - A stale or unknown nonce → 401 `stale=true` (not counted as a failure).
//! - A wrong answer, user or realm → 403, counted against the source address;
//!   after [`FailureLimits::max_failures`] within
//!   [`FailureLimits::window`] that address gets 403 without a digest
//!   check for [`FailureLimits::block_for`] (brute-force brake).
//! - A right answer → accepted; the nonce is used up (replay protection for the
//!   answers without `qop`).

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::time::{Duration, Instant};

use crate::sip::digest;
use crate::util::{FailureLimiter, FailureLimits};

#[derive(Clone, Copy, Debug)]
pub struct RegistrarLimits {
    pub nonce_ttl: Duration,
    pub max_nonces: usize,
    /// Failed registrations per address before it is blocked, and for how
    /// long.
    pub failures: FailureLimits,
}

impl Default for RegistrarLimits {
    fn default() -> Self {
        Self {
            nonce_ttl: Duration::from_secs(300),
            max_nonces: 20_000,
            failures: FailureLimits::default(),
        }
    }
}

/// What the registrar needs from one REGISTER.
#[derive(Clone, Debug)]
pub struct RegisterFacts<'a> {
    pub device_id: &'a str,
    pub source_ip: IpAddr,
    /// The `Authorization` header value, if any.
    pub authorization: Option<&'a str>,
}

/// The secret a device must prove it knows: HA1 = MD5(id:realm:password).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Credential {
    Ha1(String),
    /// Nobody may register as this device (unknown without auto-accept, or no
    /// password configured); the string says why, for the log.
    Refused(&'static str),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// 401 with `WWW-Authenticate: Digest realm, nonce[, stale=true]`.
    Challenge { nonce: String, stale: bool },
    /// Accepted: answer 200.
    Accept,
    /// Refused with this status and a reason for the log.
    Reject { code: u16, reason: String },
}

pub struct Registrar {
    realm: String,
    limits: RegistrarLimits,
    nonces: HashMap<String, Instant>,
    nonce_order: VecDeque<(Instant, String)>,
    failures: FailureLimiter,
    new_nonce: Box<dyn FnMut() -> String + Send>,
}

impl Registrar {
    /// `new_nonce` makes unpredictable nonces (tests pass a counter).
    pub fn new(
        realm: &str,
        limits: RegistrarLimits,
        new_nonce: Box<dyn FnMut() -> String + Send>,
    ) -> Self {
        Self {
            realm: realm.to_owned(),
            limits,
            nonces: HashMap::new(),
            nonce_order: VecDeque::new(),
            failures: FailureLimiter::new(limits.failures),
            new_nonce,
        }
    }

    pub fn realm(&self) -> &str {
        &self.realm
    }

    /// A changed SIP domain: outstanding nonces stay valid, answers must use
    /// the new realm.
    pub fn set_realm(&mut self, realm: &str) {
        self.realm = realm.to_owned();
    }

    fn issue_nonce(&mut self, now: Instant) -> String {
        self.prune(now);
        while self.nonces.len() >= self.limits.max_nonces {
            match self.nonce_order.pop_front() {
                Some((_, n)) => {
                    self.nonces.remove(&n);
                }
                None => break,
            }
        }
        let nonce = (self.new_nonce)();
        self.nonces.insert(nonce.clone(), now);
        self.nonce_order.push_back((now, nonce.clone()));
        nonce
    }

    /// Drops expired nonces and forgotten failure records.
    pub fn prune(&mut self, now: Instant) {
        while let Some((at, _)) = self.nonce_order.front() {
            if now.duration_since(*at) < self.limits.nonce_ttl {
                break;
            }
            if let Some((_, n)) = self.nonce_order.pop_front() {
                self.nonces.remove(&n);
            }
        }
        self.failures.prune(now);
    }

    fn is_blocked(&self, ip: IpAddr, now: Instant) -> bool {
        self.failures.blocked_for(ip, now).is_some()
    }

    fn fail(&mut self, ip: IpAddr, now: Instant, reason: String) -> Verdict {
        self.failures.failed(ip, now);
        Verdict::Reject { code: 403, reason }
    }

    /// Decides on one REGISTER.
    pub fn check(
        &mut self,
        facts: &RegisterFacts<'_>,
        credential: &Credential,
        now: Instant,
    ) -> Verdict {
        if self.is_blocked(facts.source_ip, now) {
            return Verdict::Reject {
                code: 403,
                reason: format!(
                    "{} failed registrations from {}: refused for {} s",
                    self.limits.failures.max_failures,
                    facts.source_ip,
                    self.limits.failures.block_for.as_secs()
                ),
            };
        }
        let ha1 = match credential {
            Credential::Ha1(h) => h,
            Credential::Refused(why) => {
                return Verdict::Reject {
                    code: 403,
                    reason: (*why).to_owned(),
                };
            }
        };
        let Some(header) = facts.authorization else {
            return Verdict::Challenge {
                nonce: self.issue_nonce(now),
                stale: false,
            };
        };
        let answer = match digest::parse_authorization(header) {
            Ok(a) => a,
            Err(e) => {
                return Verdict::Reject {
                    code: 400,
                    reason: format!("malformed Authorization header: {e}"),
                };
            }
        };
        let fresh = self
            .nonces
            .get(&answer.nonce)
            .is_some_and(|at| now.duration_since(*at) < self.limits.nonce_ttl);
        if !fresh {
            return Verdict::Challenge {
                nonce: self.issue_nonce(now),
                stale: true,
            };
        }
        if answer.username != facts.device_id {
            return self.fail(
                facts.source_ip,
                now,
                format!(
                    "digest username {:?} is not the registering device {}",
                    answer.username, facts.device_id
                ),
            );
        }
        if answer.realm != self.realm {
            return self.fail(
                facts.source_ip,
                now,
                format!(
                    "digest realm {:?} is not the platform's domain {:?}",
                    answer.realm, self.realm
                ),
            );
        }
        // HA2 uses the uri of the Authorization header, not the request line:
        // devices disagree about what to put there (gb28181.md §10 item 10).
        match answer.verify("REGISTER", ha1) {
            Ok(true) => {
                self.nonces.remove(&answer.nonce);
                // (A blocked address never gets here: it is refused first.)
                self.failures.succeeded(facts.source_ip);
                Verdict::Accept
            }
            Ok(false) => self.fail(
                facts.source_ip,
                now,
                "wrong password (digest mismatch)".into(),
            ),
            Err(e) => self.fail(facts.source_ip, now, format!("digest not usable: {e}")),
        }
    }

    /// Outstanding nonces and tracked addresses (for tests and metrics).
    pub fn sizes(&self) -> (usize, usize) {
        (self.nonces.len(), self.failures.tracked())
    }
}

/// The `WWW-Authenticate` value for a challenge (RFC 3261 §22.4). `qop="auth"`
/// is offered when `offer_qop`; devices may answer with or without it.
pub fn challenge_header(realm: &str, nonce: &str, stale: bool, offer_qop: bool) -> String {
    let mut v = format!("Digest realm=\"{realm}\", nonce=\"{nonce}\"");
    if offer_qop {
        v.push_str(", qop=\"auth\"");
    }
    v.push_str(", algorithm=MD5");
    if stale {
        v.push_str(", stale=true");
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sip::digest::{ha1, md5_hex};

    const DEV: &str = "34020000001320000001";
    const REALM: &str = "3402000000";

    fn registrar() -> Registrar {
        let mut n = 0u32;
        Registrar::new(
            REALM,
            RegistrarLimits::default(),
            Box::new(move || {
                n += 1;
                format!("nonce{n}")
            }),
        )
    }

    fn answer(nonce: &str, password: &str, qop: bool) -> String {
        let uri = "sip:34020000002000000001@3402000000";
        let h1 = ha1(DEV, REALM, password);
        let h2 = md5_hex(format!("REGISTER:{uri}").as_bytes());
        if qop {
            let r = md5_hex(format!("{h1}:{nonce}:00000001:c0ffee:auth:{h2}").as_bytes());
            format!(
                r#"Digest username="{DEV}", realm="{REALM}", nonce="{nonce}", uri="{uri}", response="{r}", algorithm=MD5, qop=auth, nc=00000001, cnonce="c0ffee""#
            )
        } else {
            let r = md5_hex(format!("{h1}:{nonce}:{h2}").as_bytes());
            format!(
                r#"Digest username="{DEV}", realm="{REALM}", nonce="{nonce}", uri="{uri}", response="{r}", algorithm=MD5"#
            )
        }
    }

    fn facts<'a>(auth: Option<&'a str>, ip: &str) -> RegisterFacts<'a> {
        RegisterFacts {
            device_id: DEV,
            source_ip: ip.parse().unwrap(),
            authorization: auth,
        }
    }

    #[test]
    fn challenge_then_accept_with_and_without_qop() {
        let mut r = registrar();
        let cred = Credential::Ha1(ha1(DEV, REALM, "12345678"));
        let t = Instant::now();
        for qop in [true, false] {
            let Verdict::Challenge { nonce, stale } = r.check(&facts(None, "10.0.0.1"), &cred, t)
            else {
                panic!("expected a challenge")
            };
            assert!(!stale);
            let a = answer(&nonce, "12345678", qop);
            assert_eq!(
                r.check(&facts(Some(&a), "10.0.0.1"), &cred, t),
                Verdict::Accept
            );
            // The nonce is used up: a replay is challenged again as stale.
            assert!(matches!(
                r.check(&facts(Some(&a), "10.0.0.1"), &cred, t),
                Verdict::Challenge { stale: true, .. }
            ));
        }
    }

    #[test]
    fn wrong_password_is_403_and_repeats_are_blocked() {
        let mut r = registrar();
        let cred = Credential::Ha1(ha1(DEV, REALM, "12345678"));
        let t = Instant::now();
        for i in 0..5 {
            let Verdict::Challenge { nonce, .. } = r.check(&facts(None, "10.0.0.9"), &cred, t)
            else {
                panic!()
            };
            let a = answer(&nonce, "wrong", i % 2 == 0);
            assert!(matches!(
                r.check(&facts(Some(&a), "10.0.0.9"), &cred, t),
                Verdict::Reject { code: 403, .. }
            ));
        }
        // Blocked now, even before a challenge, even with the right password…
        assert!(matches!(
            r.check(&facts(None, "10.0.0.9"), &cred, t),
            Verdict::Reject { code: 403, .. }
        ));
        // …while another address is unaffected…
        assert!(matches!(
            r.check(&facts(None, "10.0.0.10"), &cred, t),
            Verdict::Challenge { .. }
        ));
        // …and the block ends.
        let later = t + Duration::from_secs(61);
        assert!(matches!(
            r.check(&facts(None, "10.0.0.9"), &cred, later),
            Verdict::Challenge { .. }
        ));
        r.prune(later + Duration::from_secs(600));
        assert_eq!(r.sizes(), (0, 0));
    }

    #[test]
    fn refused_credential_and_bad_answers() {
        let mut r = registrar();
        let t = Instant::now();
        assert!(matches!(
            r.check(
                &facts(None, "10.0.0.1"),
                &Credential::Refused("unknown device"),
                t
            ),
            Verdict::Reject { code: 403, .. }
        ));
        let cred = Credential::Ha1(ha1(DEV, REALM, "pw"));
        assert!(matches!(
            r.check(&facts(Some("Digest nonsense"), "10.0.0.1"), &cred, t),
            Verdict::Reject { code: 400, .. }
        ));
        // Unknown nonce: stale challenge, not a failure.
        let a = answer("never-issued", "pw", false);
        assert!(matches!(
            r.check(&facts(Some(&a), "10.0.0.1"), &cred, t),
            Verdict::Challenge { stale: true, .. }
        ));
        // Expired nonce.
        let Verdict::Challenge { nonce, .. } = r.check(&facts(None, "10.0.0.1"), &cred, t) else {
            panic!()
        };
        let a = answer(&nonce, "pw", true);
        assert!(matches!(
            r.check(
                &facts(Some(&a), "10.0.0.1"),
                &cred,
                t + Duration::from_secs(301)
            ),
            Verdict::Challenge { stale: true, .. }
        ));
    }

    #[test]
    fn nonces_are_bounded() {
        let mut r = Registrar::new(
            REALM,
            RegistrarLimits {
                max_nonces: 3,
                ..RegistrarLimits::default()
            },
            Box::new({
                let mut n = 0;
                move || {
                    n += 1;
                    n.to_string()
                }
            }),
        );
        let cred = Credential::Ha1("x".into());
        for _ in 0..10 {
            r.check(&facts(None, "10.0.0.1"), &cred, Instant::now());
        }
        assert_eq!(r.sizes().0, 3);
    }

    #[test]
    fn challenge_header_forms() {
        assert_eq!(
            challenge_header("3402000000", "abc", false, true),
            r#"Digest realm="3402000000", nonce="abc", qop="auth", algorithm=MD5"#
        );
        assert!(challenge_header("r", "n", true, false).ends_with("algorithm=MD5, stale=true"));
    }
}
