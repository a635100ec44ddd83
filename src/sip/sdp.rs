//! SDP (RFC 4566) as GB28181 uses it, sans-IO and bounded. GB28181 adds `y=`
//! (SSRC, 10 decimal digits) and `f=` (media format) lines after the media
//! description (GB/T 28181-2016 Annex G), which strict parsers reject; here
//! they are first-class fields.

use std::fmt::Write as _;

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Sdp {
    pub origin: Option<String>,
    /// `s=`: Play, Playback, Download, Talk.
    pub session_name: Option<String>,
    /// `u=`: `<channelId>:<n>` for playback and download.
    pub uri: Option<String>,
    /// Session-level `c=` address.
    pub connection: Option<String>,
    /// `t=` start and stop (Unix epoch seconds in GB28181 playback).
    pub timing: Option<(u64, u64)>,
    pub attributes: Vec<Attribute>,
    pub media: Vec<Media>,
    /// `y=`: the SSRC as written (leading zeros kept).
    pub ssrc: Option<String>,
    /// `f=`: `v/codec/res/fps/ratectl/kbps` + `a/codec/bitrate/samplerate`.
    pub format: Option<String>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Media {
    /// `video`, `audio`.
    pub kind: String,
    pub port: u16,
    /// `RTP/AVP`, `TCP/RTP/AVP`.
    pub protocol: String,
    pub formats: Vec<String>,
    pub connection: Option<String>,
    pub attributes: Vec<Attribute>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Attribute {
    pub name: String,
    pub value: Option<String>,
}

impl Media {
    pub fn attribute(&self, name: &str) -> Option<&str> {
        find(&self.attributes, name)
    }

    /// `a=rtpmap` entries as (payload type, encoding/clock).
    pub fn rtpmaps(&self) -> impl Iterator<Item = (u8, &str)> {
        self.attributes
            .iter()
            .filter(|a| a.name.eq_ignore_ascii_case("rtpmap"))
            .filter_map(|a| {
                let (pt, enc) = a.value.as_deref()?.split_once(' ')?;
                Some((pt.trim().parse().ok()?, enc.trim()))
            })
    }
}

impl Sdp {
    pub fn attribute(&self, name: &str) -> Option<&str> {
        find(&self.attributes, name)
    }

    /// The SSRC of `y=` as a number (GB28181 compares numerically).
    pub fn ssrc_value(&self) -> Option<u32> {
        self.ssrc
            .as_deref()?
            .trim()
            .parse::<u64>()
            .ok()
            .and_then(|v| u32::try_from(v).ok())
    }
}

fn find<'a>(attrs: &'a [Attribute], name: &str) -> Option<&'a str> {
    attrs
        .iter()
        .find(|a| a.name.eq_ignore_ascii_case(name))
        .map(|a| a.value.as_deref().unwrap_or(""))
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SdpError {
    #[error("SDP longer than {0} bytes")]
    TooLong(usize),
    #[error("SDP has more than {0} media descriptions")]
    TooManyMedia(usize),
    #[error("SDP line {line}: {message}")]
    Line { line: usize, message: &'static str },
    #[error("SDP does not start with v=0")]
    Version,
}

const MAX_LEN: usize = 64 * 1024;
const MAX_MEDIA: usize = 16;
const MAX_ATTRIBUTES: usize = 256;

fn connection_addr(v: &str) -> Option<String> {
    // c=IN IP4 <addr>[/ttl]
    let mut parts = v.split_whitespace();
    let (_net, _kind, addr) = (parts.next()?, parts.next()?, parts.next()?);
    Some(addr.split('/').next()?.to_owned())
}

/// Parses an SDP body. Unknown line types are skipped; `y=`/`f=` are read
/// wherever they appear.
pub fn parse(text: &str) -> Result<Sdp, SdpError> {
    if text.len() > MAX_LEN {
        return Err(SdpError::TooLong(MAX_LEN));
    }
    let mut sdp = Sdp::default();
    let mut saw_version = false;
    let mut attributes = 0usize;
    for (n, raw) in text.split('\n').enumerate() {
        let line = raw.trim_end_matches('\r').trim_start();
        if line.is_empty() {
            continue;
        }
        let bad = |message| SdpError::Line {
            line: n + 1,
            message,
        };
        let (kind, value) = line
            .split_once('=')
            .ok_or(bad("no '=' after the type letter"))?;
        let value = value.trim();
        match kind.trim() {
            "v" => {
                if value != "0" {
                    return Err(SdpError::Version);
                }
                saw_version = true;
            }
            "o" => sdp.origin = Some(value.to_owned()),
            "s" => sdp.session_name = Some(value.to_owned()),
            "u" => sdp.uri = Some(value.to_owned()),
            "c" => {
                let addr = connection_addr(value).ok_or(bad("c= needs <net> <type> <address>"))?;
                match sdp.media.last_mut() {
                    Some(m) => m.connection = Some(addr),
                    None => sdp.connection = Some(addr),
                }
            }
            "t" => {
                let mut p = value.split_whitespace().map(str::parse::<u64>);
                match (p.next(), p.next()) {
                    (Some(Ok(a)), Some(Ok(b))) => sdp.timing = Some((a, b)),
                    _ => return Err(bad("t= needs two numbers")),
                }
            }
            "m" => {
                if sdp.media.len() >= MAX_MEDIA {
                    return Err(SdpError::TooManyMedia(MAX_MEDIA));
                }
                let mut p = value.split_whitespace();
                let kind = p.next().ok_or(bad("m= without media type"))?;
                let port = p
                    .next()
                    .and_then(|s| s.split('/').next())
                    .and_then(|s| s.parse().ok())
                    .ok_or(bad("m= port is not a number"))?;
                let protocol = p.next().ok_or(bad("m= without protocol"))?;
                sdp.media.push(Media {
                    kind: kind.to_owned(),
                    port,
                    protocol: protocol.to_owned(),
                    formats: p.take(64).map(str::to_owned).collect(),
                    ..Media::default()
                });
            }
            "a" => {
                attributes += 1;
                if attributes > MAX_ATTRIBUTES {
                    return Err(bad("too many attributes"));
                }
                let (name, v) = match value.split_once(':') {
                    Some((k, v)) => (k.trim().to_owned(), Some(v.trim().to_owned())),
                    None => (value.to_owned(), None),
                };
                let attr = Attribute { name, value: v };
                match sdp.media.last_mut() {
                    Some(m) => m.attributes.push(attr),
                    None => sdp.attributes.push(attr),
                }
            }
            "y" => sdp.ssrc = Some(value.to_owned()),
            "f" => sdp.format = Some(value.to_owned()),
            _ => {}
        }
    }
    if !saw_version {
        return Err(SdpError::Version);
    }
    Ok(sdp)
}

impl std::fmt::Display for Sdp {
    /// Writes the SDP with CRLF line ends, `y=`/`f=` last as GB28181 devices
    /// expect.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut s = String::with_capacity(256);
        s.push_str("v=0\r\n");
        if let Some(o) = &self.origin {
            let _ = write!(s, "o={o}\r\n");
        }
        let _ = write!(s, "s={}\r\n", self.session_name.as_deref().unwrap_or("-"));
        if let Some(u) = &self.uri {
            let _ = write!(s, "u={u}\r\n");
        }
        if let Some(c) = &self.connection {
            let _ = write!(s, "c=IN IP4 {c}\r\n");
        }
        let (t0, t1) = self.timing.unwrap_or((0, 0));
        let _ = write!(s, "t={t0} {t1}\r\n");
        let attr = |s: &mut String, a: &Attribute| {
            let _ = match &a.value {
                Some(v) => write!(s, "a={}:{v}\r\n", a.name),
                None => write!(s, "a={}\r\n", a.name),
            };
        };
        for a in &self.attributes {
            attr(&mut s, a);
        }
        for m in &self.media {
            let _ = write!(s, "m={} {} {}", m.kind, m.port, m.protocol);
            for fmt in &m.formats {
                let _ = write!(s, " {fmt}");
            }
            s.push_str("\r\n");
            if let Some(c) = &m.connection {
                let _ = write!(s, "c=IN IP4 {c}\r\n");
            }
            for a in &m.attributes {
                attr(&mut s, a);
            }
        }
        if let Some(y) = &self.ssrc {
            let _ = write!(s, "y={y}\r\n");
        }
        if let Some(fv) = &self.format {
            let _ = write!(s, "f={fv}\r\n");
        }
        f.write_str(&s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const OFFER: &str = "v=0\r\no=34020000002000000001 0 0 IN IP4 192.0.2.5\r\ns=Play\r\nc=IN IP4 192.0.2.5\r\nt=0 0\r\nm=video 10000 TCP/RTP/AVP 96 97 98\r\na=recvonly\r\na=rtpmap:96 PS/90000\r\na=rtpmap:97 MPEG4/90000\r\na=rtpmap:98 H264/90000\r\na=setup:passive\r\na=connection:new\r\ny=0200000001\r\nf=v/2/6/25/2/4096a///\r\n";

    #[test]
    fn gb28181_offer_with_y_and_f() {
        let sdp = parse(OFFER).unwrap();
        assert_eq!(sdp.session_name.as_deref(), Some("Play"));
        assert_eq!(sdp.connection.as_deref(), Some("192.0.2.5"));
        assert_eq!(sdp.ssrc.as_deref(), Some("0200000001"));
        assert_eq!(sdp.ssrc_value(), Some(200_000_001));
        assert_eq!(sdp.format.as_deref(), Some("v/2/6/25/2/4096a///"));
        let m = &sdp.media[0];
        assert_eq!(
            (m.kind.as_str(), m.port, m.protocol.as_str()),
            ("video", 10000, "TCP/RTP/AVP")
        );
        assert_eq!(m.attribute("setup"), Some("passive"));
        assert_eq!(m.attribute("recvonly"), Some(""));
        assert_eq!(
            m.rtpmaps().collect::<Vec<_>>(),
            vec![(96, "PS/90000"), (97, "MPEG4/90000"), (98, "H264/90000")]
        );
    }

    #[test]
    fn display_round_trips() {
        let sdp = parse(OFFER).unwrap();
        let text = sdp.to_string();
        assert_eq!(text, OFFER);
        assert_eq!(parse(&text).unwrap(), sdp);
    }

    #[test]
    fn device_quirks_parse() {
        // An IPC from the official tool's log: y=0000000000, empty f=, LF only.
        let answer = "v=0\no=34010000001320000001 0 0 IN IP4 10.77.38.99\ns=Play\nc=IN IP4 10.77.38.99\nt=0 0\nm=video 6000 RTP/AVP 96\na=sendonly\na=rtpmap:96 PS/90000\na=username:34010000001320000001\na=password:12345678\ny=0000000000\nf=\n";
        let sdp = parse(answer).unwrap();
        assert_eq!(sdp.ssrc_value(), Some(0));
        assert_eq!(sdp.format.as_deref(), Some(""));
    }

    #[test]
    fn errors() {
        assert_eq!(parse("s=x\r\n"), Err(SdpError::Version));
        assert!(parse("v=0\r\nm=video x RTP/AVP 96\r\n").is_err());
        assert!(parse("v=0\r\nt=now\r\n").is_err());
        assert!(parse(&"v=0\r\n".repeat(20_000)).is_err());
        let many: String = std::iter::once("v=0\r\n".to_owned())
            .chain((0..20).map(|_| "m=video 1 RTP/AVP 96\r\n".to_owned()))
            .collect();
        assert_eq!(parse(&many), Err(SdpError::TooManyMedia(16)));
    }
}
