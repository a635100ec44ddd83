//! RTSP/1.0 requests in, responses out (RFC 2326 §6, §7), and the `$`
//! interleaved frames a client may send on the same connection (RFC 2326
//! §10.12: RTCP receiver reports over TCP). Sans-IO and bounded: a request
//! head is at most [`MAX_HEAD`] bytes with at most [`MAX_HEADERS`] headers,
//! a body at most [`MAX_BODY`] bytes; anything else is an error and the
//! connection is closed after a 400.

use bytes::{Buf, BufMut, Bytes, BytesMut};

/// Request line and headers, including the blank line.
pub const MAX_HEAD: usize = 8 * 1024;
pub const MAX_HEADERS: usize = 64;
/// Clients send bodies only with SET_PARAMETER/GET_PARAMETER; keepalives are empty.
pub const MAX_BODY: usize = 4 * 1024;
/// Largest thing buffered: an interleaved frame (`$`, channel, 16-bit length).
pub const BUFFER_LIMIT: usize = 4 + u16::MAX as usize;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    #[error("request head longer than {limit} bytes")]
    HeadTooLong { limit: usize },
    #[error("more than {limit} headers")]
    TooManyHeaders { limit: usize },
    #[error("malformed request line at byte {offset}")]
    RequestLine { offset: usize },
    #[error("malformed header line at byte {offset}")]
    Header { offset: usize },
    #[error("unsupported protocol version {0:?}")]
    Version(String),
    #[error("Content-Length {value:?} invalid or over {limit} bytes")]
    Body { value: String, limit: usize },
    #[error("request head is not UTF-8 (byte {offset})")]
    NotUtf8 { offset: usize },
}

impl ParseError {
    /// The status to answer with before closing.
    pub fn status(&self) -> u16 {
        match self {
            ParseError::Version(_) => 505,
            ParseError::HeadTooLong { .. } | ParseError::TooManyHeaders { .. } => 400,
            ParseError::Body { .. } => 413,
            _ => 400,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub method: String,
    pub uri: String,
    headers: Vec<(String, String)>,
    pub body: Bytes,
}

impl Request {
    /// The first header named `name` (case-insensitive, RFC 2326 §4.2).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn headers(&self) -> impl Iterator<Item = (&str, &str)> {
        self.headers.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    pub fn cseq(&self) -> Option<&str> {
        self.header("CSeq")
    }

    /// The session id of a `Session:` header, without `;timeout=`.
    pub fn session(&self) -> Option<&str> {
        self.header("Session")
            .map(|s| s.split(';').next().unwrap_or("").trim())
            .filter(|s| !s.is_empty())
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    Request(Request),
    /// A `$` frame from the client (RTCP on an odd channel, in practice).
    Interleaved {
        channel: u8,
        payload: Bytes,
    },
}

/// Bytes in, [`Event`]s out. After an error every call repeats it.
#[derive(Debug, Default)]
pub struct RequestParser {
    buf: BytesMut,
    error: Option<ParseError>,
}

fn is_token(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

impl RequestParser {
    pub fn new() -> Self {
        Self::default()
    }

    /// How many bytes the next read may bring; the shell reads at most this.
    pub fn free_space(&self) -> usize {
        BUFFER_LIMIT.saturating_sub(self.buf.len())
    }

    /// Adds bytes; bytes beyond [`Self::free_space`] are a bug in the shell
    /// and are refused with [`ParseError::HeadTooLong`].
    pub fn push(&mut self, data: &[u8]) -> Result<(), ParseError> {
        if let Some(e) = &self.error {
            return Err(e.clone());
        }
        if data.len() > self.free_space() {
            return Err(self.fail(ParseError::HeadTooLong { limit: MAX_HEAD }));
        }
        self.buf.extend_from_slice(data);
        Ok(())
    }

    fn fail(&mut self, e: ParseError) -> ParseError {
        self.error = Some(e.clone());
        self.buf.clear();
        e
    }

    /// The next complete event, if any.
    pub fn poll(&mut self) -> Result<Option<Event>, ParseError> {
        if let Some(e) = &self.error {
            return Err(e.clone());
        }
        // Blank lines between messages are allowed (RFC 2326 §4, as HTTP).
        let skip = self
            .buf
            .iter()
            .take_while(|&&b| b == b'\r' || b == b'\n')
            .count();
        self.buf.advance(skip);
        if self.buf.first() == Some(&b'$') {
            if self.buf.len() < 4 {
                return Ok(None);
            }
            let channel = self.buf[1];
            let len = usize::from(u16::from_be_bytes([self.buf[2], self.buf[3]]));
            if self.buf.len() < 4 + len {
                return Ok(None);
            }
            self.buf.advance(4);
            let payload = self.buf.split_to(len).freeze();
            return Ok(Some(Event::Interleaved { channel, payload }));
        }
        let search = &self.buf[..self.buf.len().min(MAX_HEAD)];
        let Some(head_len) = find_head_end(search) else {
            if self.buf.len() >= MAX_HEAD {
                return Err(self.fail(ParseError::HeadTooLong { limit: MAX_HEAD }));
            }
            return Ok(None);
        };
        let parsed = parse_head(&self.buf[..head_len]);
        let (method, uri, headers) = match parsed {
            Ok(p) => p,
            Err(e) => return Err(self.fail(e)),
        };
        let body_len = match headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case("Content-Length"))
        {
            None => 0,
            Some((_, v)) => match v.trim().parse::<usize>() {
                Ok(n) if n <= MAX_BODY => n,
                _ => {
                    let value = v.chars().take(32).collect();
                    return Err(self.fail(ParseError::Body {
                        value,
                        limit: MAX_BODY,
                    }));
                }
            },
        };
        if self.buf.len() < head_len + body_len {
            return Ok(None);
        }
        self.buf.advance(head_len);
        let body = self.buf.split_to(body_len).freeze();
        Ok(Some(Event::Request(Request {
            method,
            uri,
            headers,
            body,
        })))
    }
}

/// Length of the head including its blank line (`\r\n\r\n`, or bare `\n\n`
/// from sloppy clients).
fn find_head_end(buf: &[u8]) -> Option<usize> {
    let mut i = 0;
    while i < buf.len() {
        if buf[i] == b'\n' {
            if buf.get(i + 1) == Some(&b'\n') {
                return Some(i + 2);
            }
            if buf.get(i + 1) == Some(&b'\r') && buf.get(i + 2) == Some(&b'\n') {
                return Some(i + 3);
            }
        }
        i += 1;
    }
    None
}

type Head = (String, String, Vec<(String, String)>);

fn parse_head(head: &[u8]) -> Result<Head, ParseError> {
    let text = std::str::from_utf8(head).map_err(|e| ParseError::NotUtf8 {
        offset: e.valid_up_to(),
    })?;
    let mut offset = 0;
    let mut lines = text.split('\n').map(|l| {
        let start = offset;
        offset += l.len() + 1;
        (start, l.strip_suffix('\r').unwrap_or(l))
    });
    let (_, request_line) = lines.next().ok_or(ParseError::RequestLine { offset: 0 })?;
    let mut parts = request_line.split(' ');
    let (Some(method), Some(uri), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(ParseError::RequestLine { offset: 0 });
    };
    if method.is_empty() || !method.bytes().all(is_token) {
        return Err(ParseError::RequestLine { offset: 0 });
    }
    if uri.is_empty() || !uri.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(ParseError::RequestLine {
            offset: method.len() + 1,
        });
    }
    if version != "RTSP/1.0" {
        return Err(ParseError::Version(version.chars().take(16).collect()));
    }
    let mut headers = Vec::new();
    for (start, line) in lines {
        if line.is_empty() {
            break;
        }
        if headers.len() >= MAX_HEADERS {
            return Err(ParseError::TooManyHeaders { limit: MAX_HEADERS });
        }
        let (name, value) = line
            .split_once(':')
            .ok_or(ParseError::Header { offset: start })?;
        // No folded continuation lines (obsolete) and no controls in values.
        if name.is_empty()
            || !name.bytes().all(is_token)
            || value.bytes().any(|b| b.is_ascii_control() && b != b'\t')
        {
            return Err(ParseError::Header { offset: start });
        }
        headers.push((name.to_owned(), value.trim().to_owned()));
    }
    Ok((method.to_owned(), uri.to_owned(), headers))
}

/// RFC 2326 §7.1.1 reason phrases for the statuses this server sends.
pub fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        406 => "Not Acceptable",
        413 => "Request Entity Too Large",
        454 => "Session Not Found",
        455 => "Method Not Valid in This State",
        459 => "Aggregate Operation Not Allowed",
        461 => "Unsupported Transport",
        501 => "Not Implemented",
        503 => "Service Unavailable",
        505 => "RTSP Version Not Supported",
        _ => "Internal Server Error",
    }
}

/// A response being built.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    pub status: u16,
    headers: Vec<(&'static str, String)>,
    content_type: Option<&'static str>,
    body: Bytes,
}

impl Response {
    pub fn new(status: u16) -> Self {
        Self {
            status,
            headers: Vec::new(),
            content_type: None,
            body: Bytes::new(),
        }
    }

    /// Adds a header; CR and LF in `value` are dropped so nothing a client
    /// sent can start a header of its own.
    pub fn header(mut self, name: &'static str, value: impl Into<String>) -> Self {
        let mut v: String = value.into();
        v.retain(|c| c != '\r' && c != '\n');
        self.headers.push((name, v));
        self
    }

    pub fn body(mut self, content_type: &'static str, body: impl Into<Bytes>) -> Self {
        self.content_type = Some(content_type);
        self.body = body.into();
        self
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The wire form, echoing the request's CSeq (RFC 2326 §12.17).
    pub fn encode(&self, cseq: Option<&str>) -> Bytes {
        let mut out = BytesMut::with_capacity(256 + self.body.len());
        out.put_slice(format!("RTSP/1.0 {} {}\r\n", self.status, reason(self.status)).as_bytes());
        if let Some(c) = cseq {
            let c: String = c.chars().filter(|&c| c != '\r' && c != '\n').collect();
            out.put_slice(format!("CSeq: {c}\r\n").as_bytes());
        }
        out.put_slice(b"Server: camgate\r\n");
        for (k, v) in &self.headers {
            out.put_slice(format!("{k}: {v}\r\n").as_bytes());
        }
        if let Some(ct) = self.content_type {
            out.put_slice(format!("Content-Type: {ct}\r\n").as_bytes());
        }
        if !self.body.is_empty() || self.content_type.is_some() {
            out.put_slice(format!("Content-Length: {}\r\n", self.body.len()).as_bytes());
        }
        out.put_slice(b"\r\n");
        out.put_slice(&self.body);
        out.freeze()
    }
}

/// What a request URL names: `rtsp://host[:port]/live/{stream}[/trackID={n}][?token=…]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub stream: String,
    pub track: Option<usize>,
    pub token: Option<String>,
    /// The URL's query as sent (signed viewer URLs: `exp=…&sig=…`).
    pub query: Option<String>,
    /// `rtsp://host:port/live/{stream}/`: the Content-Base of DESCRIBE.
    pub base: String,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TargetError {
    #[error("not an rtsp:// URL")]
    Scheme,
    #[error("not under /live/")]
    Path,
    #[error("bad stream name")]
    Stream,
    #[error("bad track control {0:?}")]
    Track(String),
}

/// Stream names are hub ids (RTSP source names, `{device}_{channel}`).
fn valid_stream(s: &str) -> bool {
    (1..=128).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
}

pub fn parse_target(uri: &str) -> Result<Target, TargetError> {
    let lower = uri.get(..7).map(str::to_ascii_lowercase);
    if lower.as_deref() != Some("rtsp://") {
        return Err(TargetError::Scheme);
    }
    let rest = &uri[7..];
    let (authority, path_query) = rest.split_at(rest.find('/').ok_or(TargetError::Path)?);
    if authority.is_empty() || authority.contains('@') {
        return Err(TargetError::Scheme);
    }
    let (path, query) = match path_query.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (path_query, None),
    };
    let rest = path.strip_prefix("/live/").ok_or(TargetError::Path)?;
    let rest = rest.trim_end_matches('/');
    let (stream, track) = match rest.split_once('/') {
        None => (rest, None),
        Some((s, control)) => {
            let n = control
                .strip_prefix("trackID=")
                .and_then(|n| n.parse::<usize>().ok())
                .filter(|&n| n < 16)
                .ok_or_else(|| TargetError::Track(control.chars().take(32).collect()))?;
            (s, Some(n))
        }
    };
    if !valid_stream(stream) {
        return Err(TargetError::Stream);
    }
    let token = query.and_then(|q| {
        q.split('&').find_map(|kv| {
            let v = kv.strip_prefix("token=")?;
            let v = percent_encoding::percent_decode_str(v)
                .decode_utf8()
                .ok()?
                .into_owned();
            (!v.is_empty() && v.len() <= 256).then_some(v)
        })
    });
    Ok(Target {
        base: format!("rtsp://{authority}/live/{stream}/"),
        stream: stream.to_owned(),
        track,
        token,
        query: query.filter(|q| q.len() <= 512).map(str::to_owned),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(data: &[u8]) -> Result<Option<Event>, ParseError> {
        let mut p = RequestParser::new();
        p.push(data)?;
        p.poll()
    }

    #[test]
    fn parses_ffmpeg_describe_and_interleaved_rtcp() {
        let mut p = RequestParser::new();
        let raw = b"DESCRIBE rtsp://127.0.0.1:8554/live/cam RTSP/1.0\r\nAccept: application/sdp\r\nCSeq: 2\r\nUser-Agent: Lavf59.27.100\r\n\r\n$\x01\x00\x04\x81\xc9\x00\x01OPTIONS rtsp://h/live/cam RTSP/1.0\r\nCSeq: 3\r\nContent-Length: 2\r\n\r\nhi";
        // Byte by byte: every prefix is incomplete, never an error.
        let mut events = Vec::new();
        for b in raw.iter() {
            p.push(&[*b]).unwrap();
            while let Some(e) = p.poll().unwrap() {
                events.push(e);
            }
        }
        assert_eq!(events.len(), 3, "{events:?}");
        let Event::Request(r) = &events[0] else {
            panic!()
        };
        assert_eq!(r.method, "DESCRIBE");
        assert_eq!(r.cseq(), Some("2"));
        assert_eq!(r.header("user-agent"), Some("Lavf59.27.100"));
        assert_eq!(
            events[1],
            Event::Interleaved {
                channel: 1,
                payload: Bytes::from_static(b"\x81\xc9\x00\x01")
            }
        );
        let Event::Request(r) = &events[2] else {
            panic!()
        };
        assert_eq!(&r.body[..], b"hi");
    }

    #[test]
    fn hostile_input_is_bounded() {
        // No end of head within 8 KiB.
        let mut p = RequestParser::new();
        p.push(b"OPTIONS * RTSP/1.0\r\nX: ").unwrap();
        p.push(&vec![b'a'; MAX_HEAD]).unwrap();
        assert_eq!(p.poll(), Err(ParseError::HeadTooLong { limit: MAX_HEAD }));
        assert!(p.push(b"x").is_err(), "errors are sticky");
        // Too many headers.
        let mut many = String::from("OPTIONS * RTSP/1.0\r\n");
        for i in 0..=MAX_HEADERS {
            many.push_str(&format!("X-{i}: 1\r\n"));
        }
        many.push_str("\r\n");
        assert_eq!(
            one(many.as_bytes()),
            Err(ParseError::TooManyHeaders { limit: MAX_HEADERS })
        );
        // Huge or negative Content-Length.
        for cl in ["999999999999999999999", "-1", "5000", "abc"] {
            let r = one(format!("OPTIONS * RTSP/1.0\r\nContent-Length: {cl}\r\n\r\n").as_bytes());
            assert!(matches!(r, Err(ParseError::Body { .. })), "{cl}: {r:?}");
        }
        assert_eq!(
            one(b"OPTIONS * HTTP/1.1\r\n\r\n").unwrap_err().status(),
            505
        );
        for bad in [
            &b"OPTIONS  * RTSP/1.0\r\n\r\n"[..],
            b"OPT IONS * RTSP/1.0 x\r\n\r\n",
            b"OPTIONS * RTSP/1.0\r\nno colon\r\n\r\n",
            b"OPTIONS * RTSP/1.0\r\n folded: x\r\n\r\n",
            b"OPTIONS * RTSP/1.0\r\nX: a\x00b\r\n\r\n",
            b"OPTIONS \xff RTSP/1.0\r\n\r\n",
        ] {
            assert!(one(bad).is_err(), "{:?}", String::from_utf8_lossy(bad));
        }
        // A pushed chunk larger than the free space is refused, not buffered.
        let mut p = RequestParser::new();
        assert!(p.push(&vec![b'$'; BUFFER_LIMIT + 1]).is_err());
        // A full-size interleaved frame fits exactly.
        let mut p = RequestParser::new();
        let mut frame = vec![b'$', 0, 0xff, 0xff];
        frame.resize(BUFFER_LIMIT, 7);
        p.push(&frame).unwrap();
        assert!(matches!(p.poll(), Ok(Some(Event::Interleaved { .. }))));
        assert_eq!(p.free_space(), BUFFER_LIMIT);
    }

    #[test]
    fn responses_echo_cseq_and_drop_injected_lines() {
        let r = Response::new(200)
            .header("Session", "abc\r\nX-Evil: 1")
            .body("application/sdp", "v=0\r\n");
        let wire = String::from_utf8(r.encode(Some("7\r\nX: y")).to_vec()).unwrap();
        assert!(
            wire.starts_with("RTSP/1.0 200 OK\r\nCSeq: 7X: y\r\n"),
            "{wire}"
        );
        assert!(wire.contains("Session: abcX-Evil: 1\r\n"));
        assert!(wire.ends_with("Content-Length: 5\r\n\r\nv=0\r\n"));
        let mut p = RequestParser::new();
        p.push(b"GET_PARAMETER rtsp://h/live/x RTSP/1.0\r\nCSeq: 9\r\nSession: 0123abcd;timeout=60\r\n\r\n")
            .unwrap();
        let Some(Event::Request(req)) = p.poll().unwrap() else {
            panic!()
        };
        assert_eq!(req.session(), Some("0123abcd"));
    }

    #[test]
    fn targets() {
        let t = parse_target(
            "rtsp://127.0.0.1:8554/live/34020000001320000001_34020000001310000001/trackID=1",
        )
        .unwrap();
        assert_eq!(t.stream, "34020000001320000001_34020000001310000001");
        assert_eq!(t.track, Some(1));
        assert_eq!(
            t.base,
            "rtsp://127.0.0.1:8554/live/34020000001320000001_34020000001310000001/"
        );
        let t = parse_target("RTSP://cam:1/live/front-door/?token=cg_ab%63&x=1").unwrap();
        assert_eq!((t.stream.as_str(), t.track), ("front-door", None));
        assert_eq!(t.token.as_deref(), Some("cg_abc"));
        assert_eq!(parse_target("*"), Err(TargetError::Scheme));
        assert_eq!(parse_target("rtsp://h/other/x"), Err(TargetError::Path));
        assert_eq!(parse_target("rtsp://h/live/"), Err(TargetError::Stream));
        assert_eq!(parse_target("rtsp://h/live/a b"), Err(TargetError::Stream));
        assert!(matches!(
            parse_target("rtsp://h/live/x/track9"),
            Err(TargetError::Track(_))
        ));
        assert!(parse_target("rtsp://u:p@h/live/x").is_err());
    }
}
