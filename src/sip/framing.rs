//! Where a SIP message ends: in a UDP datagram, or in a TCP byte stream by its
//! Content-Length (RFC 3261 §7.5, §18.3, §20.14). Every size is bounded, so a
//! hostile peer cannot make the gateway buffer without limit.

use bytes::{Buf, Bytes, BytesMut};

#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// Longest header section (start line + headers).
    pub max_header_bytes: usize,
    /// Most header lines.
    pub max_headers: usize,
    /// Largest body. GB28181 catalogs over TCP can be large.
    pub max_body_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_header_bytes: 16 * 1024,
            max_headers: 128,
            max_body_bytes: 1024 * 1024,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FramingError {
    #[error("header section longer than {limit} bytes")]
    HeaderTooLong { limit: usize },
    #[error("more than {limit} header lines")]
    TooManyHeaders { limit: usize },
    #[error("no blank line ends the header section")]
    Unterminated,
    #[error("Content-Length {value:?} is not a number")]
    BadContentLength { value: String },
    #[error("two different Content-Length headers")]
    ConflictingContentLength,
    #[error("no Content-Length on a stream transport (RFC 3261 §18.3)")]
    MissingContentLength,
    #[error("body of {declared} bytes is over the {limit}-byte limit")]
    BodyTooLarge { declared: usize, limit: usize },
    #[error("body is {actual} bytes, shorter than its Content-Length {declared} (RFC 3261 §18.3)")]
    LengthMismatch { declared: usize, actual: usize },
}

/// Splits at the blank line: (header section without it, body). Accepts CRLF
/// and bare LF line ends.
pub fn split_head(buf: &[u8]) -> Option<(&[u8], &[u8])> {
    let end = head_end(buf)?;
    let (head, rest) = buf.split_at(end.0);
    Some((head, &rest[end.1..]))
}

/// (offset of the blank line, its length in bytes).
fn head_end(buf: &[u8]) -> Option<(usize, usize)> {
    let mut i = 0;
    while i < buf.len() {
        if buf[i] == b'\n' {
            let next = &buf[i + 1..];
            if next.starts_with(b"\r\n") {
                return Some((i + 1, 2));
            }
            if next.starts_with(b"\n") {
                return Some((i + 1, 1));
            }
        }
        i += 1;
    }
    None
}

/// The Content-Length of a header section, if present (long or compact `l`
/// form, §7.3.3).
fn content_length(head: &[u8], limits: &Limits) -> Result<Option<usize>, FramingError> {
    let mut found: Option<usize> = None;
    for (n, line) in head.split(|&b| b == b'\n').enumerate() {
        if n > limits.max_headers {
            return Err(FramingError::TooManyHeaders {
                limit: limits.max_headers,
            });
        }
        let Some(colon) = line.iter().position(|&b| b == b':') else {
            continue;
        };
        let name = line[..colon].trim_ascii();
        if !(name.eq_ignore_ascii_case(b"content-length") || name.eq_ignore_ascii_case(b"l")) {
            continue;
        }
        let raw = line[colon + 1..].trim_ascii();
        let value = std::str::from_utf8(raw)
            .ok()
            .filter(|v| !v.is_empty() && v.len() <= 12 && v.bytes().all(|b| b.is_ascii_digit()))
            .and_then(|v| v.parse::<usize>().ok())
            .ok_or_else(|| FramingError::BadContentLength {
                value: String::from_utf8_lossy(&raw[..raw.len().min(32)]).into_owned(),
            })?;
        if found.is_some_and(|f| f != value) {
            return Err(FramingError::ConflictingContentLength);
        }
        found = Some(value);
    }
    Ok(found)
}

fn skip_keepalive_crlf(buf: &[u8]) -> usize {
    buf.iter()
        .take_while(|&&b| b == b'\r' || b == b'\n')
        .count()
}

/// Frames a UDP datagram: the message is the datagram less leading CRLF
/// keep-alives, cut at Content-Length when the datagram is longer (§18.3).
/// A body shorter than its Content-Length is an error, never guessed at.
/// Returns the message's byte range within the datagram.
pub fn frame_datagram(
    datagram: &[u8],
    limits: &Limits,
) -> Result<std::ops::Range<usize>, FramingError> {
    let start = skip_keepalive_crlf(datagram);
    let buf = &datagram[start..];
    let (head_len, sep) = head_end(buf).ok_or(if buf.len() > limits.max_header_bytes {
        FramingError::HeaderTooLong {
            limit: limits.max_header_bytes,
        }
    } else {
        FramingError::Unterminated
    })?;
    if head_len > limits.max_header_bytes {
        return Err(FramingError::HeaderTooLong {
            limit: limits.max_header_bytes,
        });
    }
    let body_start = head_len + sep;
    let available = buf.len() - body_start;
    let declared = content_length(&buf[..head_len], limits)?.unwrap_or(available);
    if declared > limits.max_body_bytes {
        return Err(FramingError::BodyTooLarge {
            declared,
            limit: limits.max_body_bytes,
        });
    }
    if declared > available {
        return Err(FramingError::LengthMismatch {
            declared,
            actual: available,
        });
    }
    Ok(start..start + body_start + declared)
}

/// Cuts SIP messages out of a TCP byte stream. After an error the stream is
/// out of step: the connection must be closed.
#[derive(Default)]
pub struct StreamFramer {
    buf: BytesMut,
    limits: Limits,
}

impl StreamFramer {
    pub fn new(limits: Limits) -> Self {
        Self {
            buf: BytesMut::new(),
            limits,
        }
    }

    pub fn push(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }

    /// Bytes received but not yet part of a whole message.
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }

    /// The next whole message, `None` if more bytes are needed.
    pub fn next_message(&mut self) -> Result<Option<Bytes>, FramingError> {
        let skip = skip_keepalive_crlf(&self.buf);
        self.buf.advance(skip);
        let Some((head_len, sep)) = head_end(&self.buf) else {
            if self.buf.len() > self.limits.max_header_bytes {
                return Err(FramingError::HeaderTooLong {
                    limit: self.limits.max_header_bytes,
                });
            }
            return Ok(None);
        };
        if head_len > self.limits.max_header_bytes {
            return Err(FramingError::HeaderTooLong {
                limit: self.limits.max_header_bytes,
            });
        }
        let declared = content_length(&self.buf[..head_len], &self.limits)?
            .ok_or(FramingError::MissingContentLength)?;
        if declared > self.limits.max_body_bytes {
            return Err(FramingError::BodyTooLarge {
                declared,
                limit: self.limits.max_body_bytes,
            });
        }
        let total = head_len + sep + declared;
        if self.buf.len() < total {
            return Ok(None);
        }
        Ok(Some(self.buf.split_to(total).freeze()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MSG: &[u8] = b"MESSAGE sip:a@b SIP/2.0\r\nContent-Length: 5\r\n\r\nhello";

    #[test]
    fn datagram_cut_at_content_length() {
        let mut d = MSG.to_vec();
        d.extend_from_slice(b"trailing junk");
        assert_eq!(
            frame_datagram(&d, &Limits::default()).unwrap(),
            0..MSG.len()
        );
    }

    #[test]
    fn short_body_is_a_length_mismatch() {
        let d = b"MESSAGE sip:a@b SIP/2.0\r\nl: 10\r\n\r\nhello";
        assert_eq!(
            frame_datagram(d, &Limits::default()),
            Err(FramingError::LengthMismatch {
                declared: 10,
                actual: 5
            })
        );
    }

    #[test]
    fn bad_and_conflicting_lengths() {
        let d = b"MESSAGE sip:a@b SIP/2.0\r\nContent-Length: -1\r\n\r\n";
        assert!(matches!(
            frame_datagram(d, &Limits::default()),
            Err(FramingError::BadContentLength { .. })
        ));
        let d = b"MESSAGE sip:a@b SIP/2.0\r\nContent-Length: 1\r\nl: 2\r\n\r\nab";
        assert_eq!(
            frame_datagram(d, &Limits::default()),
            Err(FramingError::ConflictingContentLength)
        );
        let d = b"MESSAGE sip:a@b SIP/2.0\r\nContent-Length: 99999999999999999999\r\n\r\n";
        assert!(frame_datagram(d, &Limits::default()).is_err());
    }

    #[test]
    fn stream_reassembles_across_any_split_and_skips_keepalives() {
        let mut stream = b"\r\n\r\n".to_vec();
        stream.extend_from_slice(MSG);
        stream.extend_from_slice(MSG);
        for split in 0..stream.len() {
            let mut f = StreamFramer::new(Limits::default());
            let mut got = Vec::new();
            for chunk in [&stream[..split], &stream[split..]] {
                f.push(chunk);
                while let Some(m) = f.next_message().unwrap() {
                    got.push(m);
                }
            }
            assert_eq!(got.len(), 2, "split at {split}");
            assert!(got.iter().all(|m| &m[..] == MSG));
            assert_eq!(f.buffered(), 0);
        }
    }

    #[test]
    fn stream_bounds() {
        let limits = Limits {
            max_header_bytes: 64,
            max_headers: 4,
            max_body_bytes: 10,
        };
        let mut f = StreamFramer::new(limits);
        f.push(&[b'x'; 100]);
        assert!(matches!(
            f.next_message(),
            Err(FramingError::HeaderTooLong { .. })
        ));
        let mut f = StreamFramer::new(limits);
        f.push(b"M sip:a SIP/2.0\r\nContent-Length: 11\r\n\r\n");
        assert!(matches!(
            f.next_message(),
            Err(FramingError::BodyTooLarge { .. })
        ));
        let mut f = StreamFramer::new(limits);
        f.push(b"M sip:a SIP/2.0\r\na: 1\r\nb: 1\r\nc: 1\r\nd: 1\r\ne: 1\r\nl: 0\r\n\r\n");
        assert!(matches!(
            f.next_message(),
            Err(FramingError::TooManyHeaders { .. })
        ));
        let mut f = StreamFramer::new(limits);
        f.push(b"M sip:a SIP/2.0\r\n\r\n");
        assert_eq!(f.next_message(), Err(FramingError::MissingContentLength));
    }
}
