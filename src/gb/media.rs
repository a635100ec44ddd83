//! Media session rules (gb28181.md §1 "SSRC", §5), sans-IO: SSRC allocation,
//! the SDP offer the platform sends in an INVITE, and what it takes from the
//! device's answer.

use std::collections::HashSet;
use std::fmt::Write as _;
use std::net::{IpAddr, SocketAddr};

use serde::{Deserialize, Serialize};

use crate::sip::sdp;

/// How media reaches the platform (gb28181.md §6).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum MediaTransport {
    /// RTP over UDP to our port.
    #[default]
    Udp,
    /// RFC 4571 over TCP; the device connects to us (`a=setup:passive` on our side).
    TcpPassive,
    /// RFC 4571 over TCP; we connect to the device (`a=setup:active`).
    TcpActive,
}

impl MediaTransport {
    pub fn as_str(self) -> &'static str {
        match self {
            MediaTransport::Udp => "udp",
            MediaTransport::TcpPassive => "tcp_passive",
            MediaTransport::TcpActive => "tcp_active",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "udp" => Some(MediaTransport::Udp),
            "tcp_passive" => Some(MediaTransport::TcpPassive),
            "tcp_active" => Some(MediaTransport::TcpActive),
            _ => None,
        }
    }
}

/// The kind of session, which decides `s=` and the SSRC's first digit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SessionKind {
    Play,
    Playback,
    Download,
}

impl SessionKind {
    pub fn sdp_name(self) -> &'static str {
        match self {
            SessionKind::Play => "Play",
            SessionKind::Playback => "Playback",
            SessionKind::Download => "Download",
        }
    }

    /// SSRC digit 1: `0` live, `1` history.
    fn ssrc_prefix(self) -> char {
        match self {
            SessionKind::Play => '0',
            SessionKind::Playback | SessionKind::Download => '1',
        }
    }
}

/// SSRCs in use: 10 decimal digits, `<0|1><domain digits 4–8><4-digit
/// sequence>` (gb28181.md §1). A value is never handed out twice while in
/// use; released on BYE.
#[derive(Debug)]
pub struct SsrcPool {
    domain_part: String,
    used: HashSet<u32>,
    next: u32,
}

impl SsrcPool {
    /// `domain` is the 10-digit SIP domain; digits 4–8 go into every SSRC
    /// (WVP and SRS take `domain[3..8]`). A shorter domain is zero-padded.
    pub fn new(domain: &str) -> Self {
        let digits: String = domain.chars().filter(char::is_ascii_digit).collect();
        let padded = format!("{digits:0<10}");
        Self {
            domain_part: padded[3..8].to_owned(),
            used: HashSet::new(),
            next: 1,
        }
    }

    pub fn set_domain(&mut self, domain: &str) {
        let used = std::mem::take(&mut self.used);
        *self = Self::new(domain);
        self.used = used;
    }

    /// A free SSRC as its 10-digit text, or `None` when all 9,999 are taken.
    pub fn allocate(&mut self, kind: SessionKind) -> Option<String> {
        for _ in 0..9_999 {
            let seq = self.next;
            self.next = if self.next >= 9_999 { 1 } else { self.next + 1 };
            let text = format!("{}{}{seq:04}", kind.ssrc_prefix(), self.domain_part);
            let value: u32 = text.parse().ok()?;
            if self.used.insert(value) {
                return Some(text);
            }
        }
        None
    }

    /// Marks an SSRC the device chose as taken (compared numerically).
    pub fn reserve(&mut self, value: u32) -> bool {
        self.used.insert(value)
    }

    pub fn release(&mut self, value: u32) {
        self.used.remove(&value);
    }

    pub fn in_use(&self) -> usize {
        self.used.len()
    }
}

/// The numeric value of a `y=` SSRC ("0020000001" is 20000001; gb28181.md §1).
pub fn ssrc_value(text: &str) -> Option<u32> {
    let t = text.trim();
    if t.is_empty() || t.len() > 10 || !t.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    t.parse::<u64>().ok().and_then(|v| u32::try_from(v).ok())
}

/// What the platform offers.
#[derive(Clone, Debug)]
pub struct Offer<'a> {
    pub platform_id: &'a str,
    pub kind: SessionKind,
    /// Our media address (for TCP active, the address we will connect from).
    pub media_ip: IpAddr,
    pub port: u16,
    pub transport: MediaTransport,
    pub ssrc: &'a str,
    /// Playback/Download: `u=channel:0` and `t=start end` (epoch seconds).
    pub uri_channel: Option<&'a str>,
    pub time_range: Option<(u64, u64)>,
    pub download_speed: Option<u32>,
}

/// The SDP body of a live/playback INVITE (gb28181.md §5): `s=Play`, `y=` SSRC,
/// `a=recvonly`, rtpmap 96 PS / 98 H264 / 97 MPEG4, setup for TCP.
pub fn offer_sdp(o: &Offer<'_>) -> String {
    let ip_kind = if o.media_ip.is_ipv4() { "IP4" } else { "IP6" };
    let mut s = String::with_capacity(320);
    let _ = write!(
        s,
        "v=0\r\no={} 0 0 IN {ip_kind} {}\r\ns={}\r\n",
        o.platform_id,
        o.media_ip,
        o.kind.sdp_name()
    );
    if let Some(ch) = o.uri_channel {
        let _ = write!(s, "u={ch}:0\r\n");
    }
    let _ = write!(s, "c=IN {ip_kind} {}\r\n", o.media_ip);
    let (start, end) = o.time_range.unwrap_or((0, 0));
    let _ = write!(s, "t={start} {end}\r\n");
    let proto = match o.transport {
        MediaTransport::Udp => "RTP/AVP",
        MediaTransport::TcpPassive | MediaTransport::TcpActive => "TCP/RTP/AVP",
    };
    let _ = write!(s, "m=video {} {proto} 96 98 97\r\n", o.port);
    s.push_str("a=recvonly\r\na=rtpmap:96 PS/90000\r\na=rtpmap:98 H264/90000\r\na=rtpmap:97 MPEG4/90000\r\n");
    match o.transport {
        MediaTransport::Udp => {}
        MediaTransport::TcpPassive => s.push_str("a=setup:passive\r\na=connection:new\r\n"),
        MediaTransport::TcpActive => s.push_str("a=setup:active\r\na=connection:new\r\n"),
    }
    if let Some(speed) = o.download_speed {
        let _ = write!(s, "a=downloadspeed:{speed}\r\n");
    }
    let _ = write!(s, "y={}\r\n", o.ssrc);
    s
}

/// What the platform takes from the device's SDP answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AnswerInfo {
    /// The device's `y=`: `None` when absent or all zeros (then any SSRC is
    /// accepted on the session's port).
    pub ssrc: Option<u32>,
    /// Where the device sends from / listens (`c=` + `m=` port): the address
    /// to connect to for TCP active.
    pub addr: Option<SocketAddr>,
    /// Payload type → encoding name from the answer's rtpmaps.
    pub payload_types: Vec<(u8, String)>,
    /// `a=setup` of the answer.
    pub setup: Option<String>,
}

/// Reads the answer. A missing `c=`/`m=` is not an error for UDP and TCP
/// passive (the device sends to us); TCP active needs it.
pub fn read_answer(text: &str) -> Result<AnswerInfo, sdp::SdpError> {
    let parsed = sdp::parse(text)?;
    let media = parsed.media.first();
    let conn_ip = media
        .and_then(|m| m.connection.as_deref())
        .or(parsed.connection.as_deref())
        .and_then(|ip| ip.trim().parse::<IpAddr>().ok());
    let addr = match (conn_ip, media.map(|m| m.port)) {
        (Some(ip), Some(port)) if port != 0 => Some(SocketAddr::new(ip, port)),
        _ => None,
    };
    let ssrc = parsed.ssrc_value().filter(|v| *v != 0);
    Ok(AnswerInfo {
        ssrc,
        addr,
        payload_types: media
            .map(|m| m.rtpmaps().map(|(pt, n)| (pt, n.to_owned())).collect())
            .unwrap_or_default(),
        setup: media.and_then(|m| m.attribute("setup")).map(str::to_owned),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ssrcs_follow_the_standard_and_are_unique_while_in_use() {
        let mut pool = SsrcPool::new("3402000000");
        let a = pool.allocate(SessionKind::Play).unwrap();
        // Digits 4–8 of 3402000000 are 20000 (WVP: `substring(3, 8)`).
        assert_eq!(a, "0200000001");
        let b = pool.allocate(SessionKind::Playback).unwrap();
        assert_eq!(b, "1200000002");
        assert_eq!(ssrc_value(&a), Some(200_000_001));
        pool.release(ssrc_value(&a).unwrap());
        // The counter moves on; released values come back only after a wrap.
        assert_eq!(pool.allocate(SessionKind::Play).unwrap(), "0200000003");
        let mut full = SsrcPool::new("3402000000");
        let mut n = 0;
        while full.allocate(SessionKind::Play).is_some() {
            n += 1;
        }
        assert_eq!(n, 9_999);
        full.release(200_000_042);
        assert_eq!(full.allocate(SessionKind::Play).unwrap(), "0200000042");
    }

    #[test]
    fn offer_for_each_transport() {
        let o = Offer {
            platform_id: "34020000002000000001",
            kind: SessionKind::Play,
            media_ip: "192.168.1.10".parse().unwrap(),
            port: 10000,
            transport: MediaTransport::Udp,
            ssrc: "0200000001",
            uri_channel: None,
            time_range: None,
            download_speed: None,
        };
        let s = offer_sdp(&o);
        assert!(
            s.starts_with("v=0\r\no=34020000002000000001 0 0 IN IP4 192.168.1.10\r\ns=Play\r\n")
        );
        assert!(
            s.contains("m=video 10000 RTP/AVP 96 98 97\r\na=recvonly\r\na=rtpmap:96 PS/90000\r\n")
        );
        assert!(s.ends_with("y=0200000001\r\n"));
        let parsed = sdp::parse(&s).unwrap();
        assert_eq!(parsed.ssrc_value(), Some(200_000_001));
        let s = offer_sdp(&Offer {
            transport: MediaTransport::TcpPassive,
            ..o.clone()
        });
        assert!(s.contains("m=video 10000 TCP/RTP/AVP 96 98 97"));
        assert!(s.contains("a=setup:passive\r\na=connection:new\r\n"));
        let s = offer_sdp(&Offer {
            transport: MediaTransport::TcpActive,
            kind: SessionKind::Playback,
            uri_channel: Some("34020000001320000001"),
            time_range: Some((1_700_000_000, 1_700_000_600)),
            ..o
        });
        assert!(s.contains("s=Playback\r\nu=34020000001320000001:0\r\n"));
        assert!(s.contains("t=1700000000 1700000600\r\n"));
        assert!(s.contains("a=setup:active"));
    }

    #[test]
    fn answers_with_and_without_ssrc() {
        let a = read_answer("v=0\r\no=34020000001320000001 0 0 IN IP4 192.168.1.64\r\ns=Play\r\nc=IN IP4 192.168.1.64\r\nt=0 0\r\nm=video 15060 RTP/AVP 96\r\na=sendonly\r\na=rtpmap:96 PS/90000\r\ny=0100000001\r\n").unwrap();
        assert_eq!(a.ssrc, Some(100_000_001));
        assert_eq!(a.addr, Some("192.168.1.64:15060".parse().unwrap()));
        assert_eq!(a.payload_types, vec![(96, "PS/90000".to_owned())]);
        let a = read_answer("v=0\r\no=x 0 0 IN IP4 10.0.0.1\r\ns=Play\r\nc=IN IP4 10.0.0.1\r\nt=0 0\r\nm=video 9000 TCP/RTP/AVP 96\r\na=setup:passive\r\na=rtpmap:96 PS/90000\r\ny=0000000000\r\n").unwrap();
        assert_eq!(a.ssrc, None, "all zeros means: accept any SSRC");
        assert_eq!(a.setup.as_deref(), Some("passive"));
        let a = read_answer(
            "v=0\r\no=x 0 0 IN IP4 10.0.0.1\r\ns=Play\r\nt=0 0\r\nm=video 9000 RTP/AVP 96\r\n",
        )
        .unwrap();
        assert_eq!(a.ssrc, None);
        assert_eq!(a.addr, None, "no c= line");
    }
}
