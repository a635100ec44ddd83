//! SIP, GB28181-agnostic: message framing with bounds, parsing with rsip, and
//! digest authentication. Sans-IO: bytes in, messages and verdicts out.

pub mod digest;
pub mod endpoint;
pub mod framing;
pub mod msg;
pub mod sdp;
pub mod transaction;

pub use framing::{FramingError, Limits, StreamFramer, frame_datagram};

/// Why bytes are not a SIP message.
#[derive(Debug, thiserror::Error)]
pub enum ParseError {
    #[error(transparent)]
    Framing(#[from] FramingError),
    #[error("invalid SIP message: {0}")]
    Syntax(String),
}

/// Parses one framed message. Header lines ending in a bare LF (as some logs
/// and devices produce) are accepted; the body is passed through byte for byte.
pub fn parse_message(bytes: &[u8]) -> Result<rsip::SipMessage, ParseError> {
    let (head, body) = framing::split_head(bytes)
        .ok_or_else(|| ParseError::Syntax("no blank line after the header section".into()))?;
    let mut normalized = Vec::with_capacity(bytes.len() + 64);
    for line in head.split(|&b| b == b'\n') {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.is_empty() {
            continue;
        }
        normalized.extend_from_slice(line);
        normalized.extend_from_slice(b"\r\n");
    }
    normalized.extend_from_slice(b"\r\n");
    normalized.extend_from_slice(body);
    rsip::SipMessage::try_from(normalized.as_slice()).map_err(|e| ParseError::Syntax(e.to_string()))
}

/// Serialises a message byte for byte: rsip writes the start line and headers,
/// the body is appended as is (rsip's own Display would re-encode a GB2312
/// body as lossy UTF-8).
pub fn to_bytes(msg: &rsip::SipMessage) -> bytes::Bytes {
    let (head, body) = match msg {
        rsip::SipMessage::Request(r) => (
            format!("{} {} {}\r\n{}\r\n", r.method, r.uri, r.version, r.headers),
            &r.body,
        ),
        rsip::SipMessage::Response(r) => (
            format!("{} {}\r\n{}\r\n", r.version, r.status_code, r.headers),
            &r.body,
        ),
    };
    let mut out = bytes::BytesMut::with_capacity(head.len() + body.len());
    out.extend_from_slice(head.as_bytes());
    out.extend_from_slice(body);
    out.freeze()
}
