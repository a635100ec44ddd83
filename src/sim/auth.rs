//! The device side of digest authentication (RFC 3261 §22.2, RFC 2617
//! §3.2.2): read a `WWW-Authenticate` challenge, answer with an
//! `Authorization` header. MD5, with `qop=auth` (nc/cnonce) when the
//! challenge offers it and without otherwise (gb28181.md §2 "REGISTER").
//!
//! The arithmetic is [`crate::sip::digest`]'s: the same code that checks a
//! device's answer on the platform computes ours.

use crate::sip::digest::{self, DigestError, DigestResponse};

/// What a `WWW-Authenticate: Digest …` challenge asks for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Challenge {
    pub realm: String,
    pub nonce: String,
    pub opaque: Option<String>,
    /// `qop` lists `auth` (RFC 2617 §3.2.1: a quoted, comma-separated list).
    pub qop_auth: bool,
    /// As written, when present (only MD5 is answered).
    pub algorithm: Option<String>,
}

/// Reads a challenge. The parameter grammar is that of a credential (RFC
/// 2617 §3.2.1/§3.2.2), so [`digest::parse_authorization`] reads it once the
/// fields only a credential has are supplied.
pub fn parse_challenge(value: &str) -> Result<Challenge, DigestError> {
    let filled = format!("{value}, username=\"-\", uri=\"-\", response=\"-\"");
    let d = digest::parse_authorization(&filled)?;
    if let Some(a) = &d.algorithm
        && !a.eq_ignore_ascii_case("md5")
    {
        return Err(DigestError::Algorithm(a.clone()));
    }
    let qop_auth = d
        .qop
        .as_deref()
        .is_some_and(|q| q.split(',').any(|v| v.trim().eq_ignore_ascii_case("auth")));
    if d.qop.is_some() && !qop_auth {
        return Err(DigestError::Qop(d.qop.unwrap_or_default()));
    }
    Ok(Challenge {
        realm: d.realm,
        nonce: d.nonce,
        opaque: d.opaque,
        qop_auth,
        algorithm: d.algorithm,
    })
}

/// Quoted-string content we echo: no quote or backslash can break out.
fn clean(s: &str) -> String {
    s.chars().filter(|c| *c != '"' && *c != '\\').collect()
}

/// The `Authorization` value answering `challenge` for `method` on `uri`.
/// `nc` counts the requests made with this nonce (RFC 2617 §3.2.2: 8 hex
/// digits); `cnonce` is ours, used only with `qop=auth`.
pub fn authorization(
    challenge: &Challenge,
    username: &str,
    password: &str,
    method: &str,
    uri: &str,
    nc: u32,
    cnonce: &str,
) -> Result<String, DigestError> {
    let realm = clean(&challenge.realm);
    let nonce = clean(&challenge.nonce);
    let cnonce = clean(cnonce);
    let nc = format!("{nc:08x}");
    let d = DigestResponse {
        username: username.to_owned(),
        realm: realm.clone(),
        nonce: nonce.clone(),
        uri: uri.to_owned(),
        response: String::new(),
        algorithm: challenge.algorithm.clone(),
        qop: challenge.qop_auth.then(|| "auth".to_owned()),
        nc: Some(nc.clone()),
        cnonce: Some(cnonce.clone()),
        opaque: None,
    };
    let ha1 = digest::ha1(username, &realm, password);
    let response = d.expected(method, &ha1)?;
    let mut out = format!(
        "Digest username=\"{username}\", realm=\"{realm}\", nonce=\"{nonce}\", uri=\"{uri}\", response=\"{response}\", algorithm=MD5"
    );
    if challenge.qop_auth {
        out.push_str(&format!(", qop=auth, nc={nc}, cnonce=\"{cnonce}\""));
    }
    if let Some(o) = &challenge.opaque {
        out.push_str(&format!(", opaque=\"{}\"", clean(o)));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The verified vector of the official test tool (fixtures README):
    /// MD5 without qop.
    #[test]
    fn official_vector_without_qop() {
        let ch = parse_challenge(r#"Digest realm="3402000000", nonce="b0aa4ede24545411""#).unwrap();
        assert!(!ch.qop_auth);
        let h = authorization(
            &ch,
            "34010000002000000001",
            "12345678",
            "REGISTER",
            "sip:34020000002000000001@10.77.38.99:5060",
            1,
            "ignored",
        )
        .unwrap();
        assert!(
            h.contains(r#"response="9b707825749f8e8483c69bbd60774692""#),
            "{h}"
        );
        assert!(!h.contains("qop"));
        // The platform's own check accepts it.
        let d = digest::parse_authorization(&h).unwrap();
        let ha1 = digest::ha1("34010000002000000001", "3402000000", "12345678");
        assert!(d.verify("REGISTER", &ha1).unwrap());
    }

    /// RFC 2617 §3.5's example, answered by us, with qop=auth.
    #[test]
    fn rfc2617_example_with_qop() {
        let ch = parse_challenge(
            r#"Digest realm="testrealm@host.com", qop="auth,auth-int", nonce="dcd98b7102dd2f0e8b11d0f600bfb0c093", opaque="5ccc069c403ebaf9f0171e9517f40e41""#,
        )
        .unwrap();
        assert!(ch.qop_auth);
        let h = authorization(
            &ch,
            "Mufasa",
            "Circle Of Life",
            "GET",
            "/dir/index.html",
            1,
            "0a4f113b",
        )
        .unwrap();
        assert!(
            h.contains(r#"response="6629fae49393a05397450978507c4ef1""#),
            "{h}"
        );
        assert!(h.contains("qop=auth, nc=00000001, cnonce=\"0a4f113b\""));
        assert!(h.contains("opaque=\"5ccc069c403ebaf9f0171e9517f40e41\""));
    }

    #[test]
    fn unsupported_challenges() {
        assert!(parse_challenge("Basic realm=\"x\"").is_err());
        assert!(parse_challenge(r#"Digest realm="r", nonce="n", algorithm=SHA-256"#).is_err());
        assert!(parse_challenge(r#"Digest realm="r", nonce="n", qop="auth-int""#).is_err());
        assert!(parse_challenge(r#"Digest realm="r""#).is_err(), "no nonce");
    }
}
