//! The platform's SDP offer and our answer (gb28181.md §5 "Media sessions",
//! §6 "RTP transport"), sans-IO.
//!
//! - `RTP/AVP`: we send RTP over UDP to the offered `c=`/`m=`.
//! - `TCP/RTP/AVP` with `a=setup:passive`: the platform listens, we connect to
//!   its `c=`/`m=` and answer `a=setup:active` (RFC 4145 §4). So does an
//!   offer without `a=setup` or with `actpass`: GB/T 28181-2022 Annex D makes
//!   the device the TCP client by default.
//! - `TCP/RTP/AVP` with `a=setup:active`: the platform connects, we listen on
//!   the port of our answer's `m=` and answer `a=setup:passive`.

use std::net::{IpAddr, SocketAddr};

use crate::gb::media::ssrc_value;
use crate::sip::sdp::{self, Attribute, Media, Sdp, SdpError};

/// How media goes from us to the platform.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MediaMode {
    /// RTP over UDP to the offer's address.
    Udp,
    /// RFC 4571 over a TCP connection we open to the offer's address.
    TcpConnect,
    /// RFC 4571 over a TCP connection the platform opens to our port.
    TcpListen,
}

impl MediaMode {
    /// For logs, named as the platform names its choice (its `a=setup`,
    /// camgate's `MediaTransport`): `udp`; `tcp_passive` (the platform
    /// listens, we connect); `tcp_active` (the platform connects, we listen).
    pub fn as_str(self) -> &'static str {
        match self {
            MediaMode::Udp => "udp",
            MediaMode::TcpConnect => "tcp_passive",
            MediaMode::TcpListen => "tcp_active",
        }
    }
}

/// What we take from the offer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Offer {
    /// `s=`: Play, Playback, Download, …
    pub session: String,
    /// The platform's media address (`c=` + `m=` port). Its port may be 0
    /// when we listen.
    pub addr: SocketAddr,
    pub mode: MediaMode,
    /// `y=` as written, when it is a valid 10-digit SSRC.
    pub ssrc_text: Option<String>,
    /// Its numeric value (gb28181.md §1: compare numerically).
    pub ssrc: Option<u32>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OfferError {
    #[error("unreadable SDP: {0}")]
    Sdp(#[from] SdpError),
    #[error("the offer has no video media description")]
    NoVideo,
    #[error("the offer does not offer PS (payload type 96 or rtpmap PS/90000)")]
    NoPs,
    #[error("the offer has no usable c= address")]
    NoAddress,
    #[error("the offer's m= port is 0, nowhere to send to")]
    NoPort,
    #[error("the offer's transport {0:?} is neither RTP/AVP nor TCP/RTP/AVP")]
    Protocol(String),
    #[error("unknown a=setup:{0}")]
    Setup(String),
}

/// Reads the offer of an INVITE.
pub fn read_offer(text: &str) -> Result<Offer, OfferError> {
    let parsed = sdp::parse(text)?;
    let media = parsed
        .media
        .iter()
        .find(|m| m.kind.eq_ignore_ascii_case("video"))
        .ok_or(OfferError::NoVideo)?;
    let ps = media.formats.iter().any(|f| f == "96")
        || media
            .rtpmaps()
            .any(|(_, enc)| enc.to_ascii_uppercase().starts_with("PS/"));
    if !ps {
        return Err(OfferError::NoPs);
    }
    let ip = media
        .connection
        .as_deref()
        .or(parsed.connection.as_deref())
        .and_then(|ip| ip.trim().parse::<IpAddr>().ok())
        .ok_or(OfferError::NoAddress)?;
    let proto = media.protocol.to_ascii_uppercase();
    let mode = if proto == "RTP/AVP" {
        MediaMode::Udp
    } else if proto == "TCP/RTP/AVP" {
        match media
            .attribute("setup")
            .map(str::to_ascii_lowercase)
            .as_deref()
        {
            None | Some("passive") | Some("actpass") => MediaMode::TcpConnect,
            Some("active") => MediaMode::TcpListen,
            Some(other) => return Err(OfferError::Setup(other.to_owned())),
        }
    } else {
        return Err(OfferError::Protocol(media.protocol.clone()));
    };
    if media.port == 0 && mode != MediaMode::TcpListen {
        return Err(OfferError::NoPort);
    }
    let ssrc_text = parsed
        .ssrc
        .as_deref()
        .map(str::trim)
        .filter(|t| t.len() == 10 && ssrc_value(t).is_some())
        .map(str::to_owned);
    let ssrc = ssrc_text.as_deref().and_then(ssrc_value);
    Ok(Offer {
        session: parsed.session_name.unwrap_or_default(),
        addr: SocketAddr::new(ip, media.port),
        mode,
        ssrc_text,
        ssrc,
    })
}

/// What goes into our answer.
#[derive(Clone, Debug)]
pub struct AnswerParams<'a> {
    pub channel_id: &'a str,
    pub session: &'a str,
    /// Our media address.
    pub ip: IpAddr,
    /// UDP: our sending port; TCP listen: our listening port; TCP connect:
    /// 9 (RFC 4145 §4: the active side's port is irrelevant, discard).
    pub port: u16,
    pub mode: MediaMode,
    /// `y=` to write (the offered one, or `0000000000`).
    pub ssrc_text: &'a str,
}

/// Our SDP answer (gb28181.md §5 "Device answer"): `a=sendonly`,
/// `a=rtpmap:96 PS/90000`, the opposite `a=setup` for TCP, and `y=`.
pub fn answer_sdp(a: &AnswerParams<'_>) -> String {
    let ip_kind = if a.ip.is_ipv4() { "IP4" } else { "IP6" };
    let attr = |name: &str, value: Option<&str>| Attribute {
        name: name.to_owned(),
        value: value.map(str::to_owned),
    };
    let mut attributes = vec![attr("sendonly", None), attr("rtpmap", Some("96 PS/90000"))];
    let protocol = match a.mode {
        MediaMode::Udp => "RTP/AVP",
        MediaMode::TcpConnect => {
            attributes.push(attr("setup", Some("active")));
            attributes.push(attr("connection", Some("new")));
            "TCP/RTP/AVP"
        }
        MediaMode::TcpListen => {
            attributes.push(attr("setup", Some("passive")));
            attributes.push(attr("connection", Some("new")));
            "TCP/RTP/AVP"
        }
    };
    let sdp = Sdp {
        origin: Some(format!("{} 0 0 IN {ip_kind} {}", a.channel_id, a.ip)),
        session_name: Some(a.session.to_owned()),
        connection: None,
        timing: Some((0, 0)),
        media: vec![Media {
            kind: "video".into(),
            port: a.port,
            protocol: protocol.into(),
            formats: vec!["96".into()],
            connection: None,
            attributes,
        }],
        ssrc: Some(a.ssrc_text.to_owned()),
        ..Sdp::default()
    };
    // Display writes `c=IN IP4`; write the session c= ourselves for IPv6.
    let text = sdp.to_string();
    let c_line = format!("c=IN {ip_kind} {}\r\n", a.ip);
    match text.find("\r\nt=") {
        Some(at) => format!("{}{c_line}{}", &text[..at + 2], &text[at + 2..]),
        None => text,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gb::media::{MediaTransport, Offer as PlatformOffer, SessionKind, offer_sdp};

    fn platform_offer(transport: MediaTransport) -> String {
        offer_sdp(&PlatformOffer {
            platform_id: "34020000002000000001",
            kind: SessionKind::Play,
            media_ip: "192.0.2.5".parse().unwrap(),
            port: 10000,
            transport,
            ssrc: "0200000001",
            uri_channel: None,
            time_range: None,
            download_speed: None,
        })
    }

    #[test]
    fn reads_camgate_offers() {
        let o = read_offer(&platform_offer(MediaTransport::Udp)).unwrap();
        assert_eq!(o.mode, MediaMode::Udp);
        assert_eq!(o.addr, "192.0.2.5:10000".parse().unwrap());
        assert_eq!(o.ssrc_text.as_deref(), Some("0200000001"));
        assert_eq!(o.ssrc, Some(200_000_001));
        assert_eq!(o.session, "Play");
        let o = read_offer(&platform_offer(MediaTransport::TcpPassive)).unwrap();
        assert_eq!(o.mode, MediaMode::TcpConnect);
        let o = read_offer(&platform_offer(MediaTransport::TcpActive)).unwrap();
        assert_eq!(o.mode, MediaMode::TcpListen);
    }

    #[test]
    fn offer_quirks_and_errors() {
        // Lower-case protocol, no y=, no setup on TCP: we connect.
        let o = read_offer(
            "v=0\r\ns=Play\r\nc=IN IP4 10.0.0.1\r\nt=0 0\r\nm=video 6000 tcp/rtp/avp 96\r\n",
        )
        .unwrap();
        assert_eq!(o.mode, MediaMode::TcpConnect);
        assert_eq!(o.ssrc, None);
        // A y= that is not 10 digits is ignored.
        let o = read_offer(
            "v=0\r\ns=Play\r\nc=IN IP4 10.0.0.1\r\nt=0 0\r\nm=video 6000 RTP/AVP 96\r\ny=12x\r\n",
        )
        .unwrap();
        assert_eq!(o.ssrc_text, None);
        let err = |t: &str| read_offer(t).unwrap_err();
        assert_eq!(
            err("v=0\r\nc=IN IP4 10.0.0.1\r\nm=audio 6000 RTP/AVP 8\r\n"),
            OfferError::NoVideo
        );
        assert_eq!(
            err(
                "v=0\r\nc=IN IP4 10.0.0.1\r\nm=video 6000 RTP/AVP 98\r\na=rtpmap:98 H264/90000\r\n"
            ),
            OfferError::NoPs
        );
        assert_eq!(
            err("v=0\r\nm=video 6000 RTP/AVP 96\r\n"),
            OfferError::NoAddress
        );
        assert_eq!(
            err("v=0\r\nc=IN IP4 10.0.0.1\r\nm=video 0 RTP/AVP 96\r\n"),
            OfferError::NoPort
        );
        assert!(matches!(
            err("v=0\r\nc=IN IP4 10.0.0.1\r\nm=video 1 RTP/SAVP 96\r\n"),
            OfferError::Protocol(_)
        ));
        assert!(matches!(
            err("v=0\r\nc=IN IP4 10.0.0.1\r\nm=video 1 TCP/RTP/AVP 96\r\na=setup:holdconn\r\n"),
            OfferError::Setup(_)
        ));
        assert!(matches!(err("m=video"), OfferError::Sdp(_)));
    }

    #[test]
    fn answers_read_back_with_the_platform_reader() {
        for (mode, setup) in [
            (MediaMode::Udp, None),
            (MediaMode::TcpConnect, Some("active")),
            (MediaMode::TcpListen, Some("passive")),
        ] {
            let text = answer_sdp(&AnswerParams {
                channel_id: "34020000001310000001",
                session: "Play",
                ip: "127.0.0.1".parse().unwrap(),
                port: 15060,
                mode,
                ssrc_text: "0200000001",
            });
            assert!(
                text.contains("a=sendonly\r\na=rtpmap:96 PS/90000\r\n"),
                "{text}"
            );
            assert!(text.ends_with("y=0200000001\r\n"), "{text}");
            let a = crate::gb::media::read_answer(&text).unwrap();
            assert_eq!(a.ssrc, Some(200_000_001));
            assert_eq!(a.addr, Some("127.0.0.1:15060".parse().unwrap()));
            assert_eq!(a.setup.as_deref(), setup);
            assert_eq!(a.payload_types, vec![(96, "PS/90000".to_owned())]);
        }
        let text = answer_sdp(&AnswerParams {
            channel_id: "34020000001310000001",
            session: "Play",
            ip: "::1".parse().unwrap(),
            port: 9,
            mode: MediaMode::TcpConnect,
            ssrc_text: "0000000000",
        });
        assert!(text.contains("c=IN IP6 ::1\r\n"), "{text}");
        assert_eq!(crate::gb::media::read_answer(&text).unwrap().ssrc, None);
    }
}
