//! HTTP Digest authentication as SIP uses it (RFC 3261 §22.4, RFC 2617 §3.2.2),
//! MD5, with and without `qop=auth`. The server keeps HA1 =
//! MD5(username:realm:password), never the password.

use md5::{Digest, Md5};

/// Parameters of an `Authorization: Digest …` header.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DigestResponse {
    pub username: String,
    pub realm: String,
    pub nonce: String,
    pub uri: String,
    pub response: String,
    pub algorithm: Option<String>,
    pub qop: Option<String>,
    pub nc: Option<String>,
    pub cnonce: Option<String>,
    pub opaque: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DigestError {
    #[error("not a Digest credential")]
    NotDigest,
    #[error("Digest credential longer than {0} bytes")]
    TooLong(usize),
    #[error("Digest credential lacks {0}")]
    Missing(&'static str),
    #[error("malformed Digest parameter list at byte {0}")]
    Malformed(usize),
    #[error("unsupported Digest algorithm {0:?}")]
    Algorithm(String),
    #[error("unsupported qop {0:?}")]
    Qop(String),
}

const MAX_LEN: usize = 4096;

pub fn md5_hex(data: &[u8]) -> String {
    crate::util::hex(&Md5::digest(data))
}

/// HA1 = MD5(username:realm:password), what the store keeps per device.
pub fn ha1(username: &str, realm: &str, password: &str) -> String {
    md5_hex(format!("{username}:{realm}:{password}").as_bytes())
}

/// Parses the value of an Authorization header (`Digest k=v, k="v", …`).
pub fn parse_authorization(value: &str) -> Result<DigestResponse, DigestError> {
    if value.len() > MAX_LEN {
        return Err(DigestError::TooLong(MAX_LEN));
    }
    let v = value.trim_start();
    let rest = v
        .get(..6)
        .filter(|s| s.eq_ignore_ascii_case("digest"))
        .map(|_| &v[6..])
        .ok_or(DigestError::NotDigest)?;
    let base = value.len() - rest.len();
    let bytes = rest.as_bytes();
    let mut out = DigestResponse::default();
    let mut i = 0;
    loop {
        while i < bytes.len() && (bytes[i] == b',' || bytes[i].is_ascii_whitespace()) {
            i += 1;
        }
        if i >= bytes.len() {
            break;
        }
        let key_start = i;
        while i < bytes.len() && bytes[i] != b'=' && bytes[i] != b',' {
            i += 1;
        }
        if i >= bytes.len() || bytes[i] != b'=' {
            return Err(DigestError::Malformed(base + i));
        }
        let key = rest[key_start..i].trim();
        i += 1;
        while i < bytes.len() && bytes[i].is_ascii_whitespace() {
            i += 1;
        }
        let val = if bytes.get(i) == Some(&b'"') {
            i += 1;
            let start = i;
            while i < bytes.len() && bytes[i] != b'"' {
                i += if bytes[i] == b'\\' { 2 } else { 1 };
            }
            if i >= bytes.len() {
                return Err(DigestError::Malformed(base + start));
            }
            let s = rest[start..i].replace("\\\"", "\"").replace("\\\\", "\\");
            i += 1;
            s
        } else {
            let start = i;
            while i < bytes.len() && bytes[i] != b',' {
                i += 1;
            }
            rest[start..i].trim().to_owned()
        };
        let slot = match key.to_ascii_lowercase().as_str() {
            "username" => &mut out.username,
            "realm" => &mut out.realm,
            "nonce" => &mut out.nonce,
            "uri" => &mut out.uri,
            "response" => &mut out.response,
            "algorithm" => out.algorithm.insert(String::new()),
            "qop" => out.qop.insert(String::new()),
            "nc" => out.nc.insert(String::new()),
            "cnonce" => out.cnonce.insert(String::new()),
            "opaque" => out.opaque.insert(String::new()),
            _ => continue,
        };
        *slot = val;
    }
    for (name, v) in [
        ("username", &out.username),
        ("realm", &out.realm),
        ("nonce", &out.nonce),
        ("uri", &out.uri),
        ("response", &out.response),
    ] {
        if v.is_empty() {
            return Err(DigestError::Missing(name));
        }
    }
    Ok(out)
}

impl DigestResponse {
    /// The response a client knowing the password would send for `method`.
    /// Uses the `uri` from the credential itself, not the request line: devices
    /// (Hikvision among them) put `sip:<platform>@<domain>` there.
    pub fn expected(&self, method: &str, ha1: &str) -> Result<String, DigestError> {
        if let Some(a) = &self.algorithm
            && !a.eq_ignore_ascii_case("md5")
        {
            return Err(DigestError::Algorithm(a.clone()));
        }
        let ha2 = md5_hex(format!("{method}:{}", self.uri).as_bytes());
        match self.qop.as_deref() {
            None => Ok(md5_hex(format!("{ha1}:{}:{ha2}", self.nonce).as_bytes())),
            Some(q) if q.eq_ignore_ascii_case("auth") => {
                let nc = self.nc.as_deref().ok_or(DigestError::Missing("nc"))?;
                let cnonce = self
                    .cnonce
                    .as_deref()
                    .ok_or(DigestError::Missing("cnonce"))?;
                Ok(md5_hex(
                    format!("{ha1}:{}:{nc}:{cnonce}:{q}:{ha2}", self.nonce).as_bytes(),
                ))
            }
            Some(q) => Err(DigestError::Qop(q.to_owned())),
        }
    }

    /// Checks the credential against the stored HA1 in constant time.
    pub fn verify(&self, method: &str, ha1: &str) -> Result<bool, DigestError> {
        let expected = self.expected(method, ha1)?;
        let given = self.response.to_ascii_lowercase();
        if given.len() != expected.len() {
            return Ok(false);
        }
        let diff = given
            .bytes()
            .zip(expected.bytes())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b));
        Ok(diff == 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The verified vector from the official test tool's log
    /// (../shared/fixtures/README.md, files 01 and 02).
    #[test]
    fn official_test_tool_vector_without_qop() {
        let header = r#"Digest username="34010000002000000001", realm="3402000000", nonce="b0aa4ede24545411", uri="sip:34020000002000000001@10.77.38.99:5060", response="9b707825749f8e8483c69bbd60774692", algorithm=MD5"#;
        let d = parse_authorization(header).unwrap();
        assert_eq!(d.username, "34010000002000000001");
        let ha1 = ha1("34010000002000000001", "3402000000", "12345678");
        assert!(d.verify("REGISTER", &ha1).unwrap());
        assert!(
            !d.verify(
                "REGISTER",
                &super::ha1("34010000002000000001", "3402000000", "wrong")
            )
            .unwrap()
        );
    }

    /// RFC 2617 §3.5's worked example (qop=auth).
    #[test]
    fn rfc2617_example_with_qop() {
        let header = r#"Digest username="Mufasa", realm="testrealm@host.com", nonce="dcd98b7102dd2f0e8b11d0f600bfb0c093", uri="/dir/index.html", qop=auth, nc=00000001, cnonce="0a4f113b", response="6629fae49393a05397450978507c4ef1", opaque="5ccc069c403ebaf9f0171e9517f40e41""#;
        let d = parse_authorization(header).unwrap();
        let ha1 = ha1("Mufasa", "testrealm@host.com", "Circle Of Life");
        assert!(d.verify("GET", &ha1).unwrap());
    }

    #[test]
    fn malformed_credentials_are_errors() {
        assert_eq!(
            parse_authorization("Basic abc"),
            Err(DigestError::NotDigest)
        );
        assert!(matches!(
            parse_authorization("Digest username"),
            Err(DigestError::Malformed(_))
        ));
        assert!(matches!(
            parse_authorization("Digest username=\"a"),
            Err(DigestError::Malformed(_))
        ));
        assert_eq!(
            parse_authorization("Digest username=a"),
            Err(DigestError::Missing("realm"))
        );
        assert!(parse_authorization(&format!("Digest {}", "a".repeat(5000))).is_err());
        let d = parse_authorization(
            r#"Digest username="a",realm="r",nonce="n",uri="u",response="x",algorithm=SHA-256"#,
        )
        .unwrap();
        assert!(matches!(
            d.verify("REGISTER", "h"),
            Err(DigestError::Algorithm(_))
        ));
    }
}
