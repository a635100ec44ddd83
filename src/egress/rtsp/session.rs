//! One RTSP session's state (RFC 2326 Appendix A.1, server side): created by
//! the first SETUP (Init → Ready), PLAY → Playing, PAUSE → Ready, TEARDOWN
//! or the timeout (§12.37) end it. Time is passed in; nothing here does IO.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// How one track's packets travel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    /// Interleaved on the RTSP connection (RFC 2326 §10.12).
    Tcp { rtp_channel: u8, rtcp_channel: u8 },
    /// Unicast UDP to the client's ports, from the server's shared pair.
    Udp { client_rtp: u16, client_rtcp: u16 },
}

impl Transport {
    pub fn is_tcp(&self) -> bool {
        matches!(self, Transport::Tcp { .. })
    }

    /// The `Transport:` header of the SETUP response.
    pub fn header(&self, server_ports: (u16, u16), ssrc: u32) -> String {
        match *self {
            Transport::Tcp {
                rtp_channel,
                rtcp_channel,
            } => format!(
                "RTP/AVP/TCP;unicast;interleaved={rtp_channel}-{rtcp_channel};ssrc={ssrc:08X};mode=play"
            ),
            Transport::Udp {
                client_rtp,
                client_rtcp,
            } => format!(
                "RTP/AVP;unicast;client_port={client_rtp}-{client_rtcp};server_port={}-{};ssrc={ssrc:08X};mode=play",
                server_ports.0, server_ports.1
            ),
        }
    }
}

/// What a client asked for in `Transport:` (RFC 2326 §12.39), before the
/// server fills in interleaved channels the client left out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TransportRequest {
    Tcp { channels: Option<(u8, u8)> },
    Udp { client_rtp: u16, client_rtcp: u16 },
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TransportError {
    #[error("no Transport header")]
    Missing,
    #[error("no supported transport in {0:?} (unicast RTP/AVP over UDP or TCP, mode=play)")]
    Unsupported(String),
}

fn range(v: &str) -> Option<(u16, u16)> {
    match v.split_once('-') {
        Some((a, b)) => Some((a.trim().parse().ok()?, b.trim().parse().ok()?)),
        None => {
            let a: u16 = v.trim().parse().ok()?;
            Some((a, a.checked_add(1)?))
        }
    }
}

/// The first alternative this server can do. `destination=` is ignored:
/// media goes only to the address the request came from (no reflection).
pub fn parse_transport(header: Option<&str>) -> Result<TransportRequest, TransportError> {
    let header = header.ok_or(TransportError::Missing)?;
    'alternatives: for alt in header.split(',').take(8) {
        let mut parts = alt.split(';').map(str::trim);
        let spec = parts.next().unwrap_or("").to_ascii_uppercase();
        let tcp = match spec.as_str() {
            "RTP/AVP" | "RTP/AVP/UDP" => false,
            "RTP/AVP/TCP" => true,
            _ => continue,
        };
        let (mut interleaved, mut client_port) = (None, None);
        for p in parts.take(16) {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            match k.to_ascii_lowercase().as_str() {
                "multicast" => continue 'alternatives,
                "interleaved" => match range(v) {
                    Some((a, b)) => match (u8::try_from(a), u8::try_from(b)) {
                        (Ok(a), Ok(b)) => interleaved = Some((a, b)),
                        _ => continue 'alternatives,
                    },
                    None => continue 'alternatives,
                },
                "client_port" => match range(v) {
                    Some(r) if r.0 != 0 && r.1 != 0 => client_port = Some(r),
                    _ => continue 'alternatives,
                },
                "mode" if !v.trim_matches('"').eq_ignore_ascii_case("play") => {
                    continue 'alternatives;
                }
                _ => {}
            }
        }
        if tcp {
            return Ok(TransportRequest::Tcp {
                channels: interleaved,
            });
        }
        if let Some((client_rtp, client_rtcp)) = client_port {
            return Ok(TransportRequest::Udp {
                client_rtp,
                client_rtcp,
            });
        }
    }
    Err(TransportError::Unsupported(
        header.chars().take(120).collect(),
    ))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    Init,
    Ready,
    Playing,
}

/// A set-up track: how it travels and the SSRC announced for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SetupTrack {
    pub transport: Transport,
    pub ssrc: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SessionError {
    /// 455.
    #[error("{method} not valid while the session is {state:?}")]
    State { method: &'static str, state: State },
    /// 404.
    #[error("no track {0} in this stream")]
    NoTrack(usize),
    /// 461: one session, one kind of transport.
    #[error("tracks of one session must all use TCP or all use UDP")]
    MixedTransport,
    /// 400.
    #[error("interleaved channels {0}-{1} are already used")]
    ChannelsInUse(u8, u8),
}

impl SessionError {
    pub fn status(&self) -> u16 {
        match self {
            SessionError::State { .. } => 455,
            SessionError::NoTrack(_) => 404,
            SessionError::MixedTransport => 461,
            SessionError::ChannelsInUse(..) => 400,
        }
    }
}

/// What PLAY did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Play {
    /// Start sending.
    Start,
    /// Already playing: only a refresh (some clients PLAY as a keepalive).
    AlreadyPlaying,
}

#[derive(Debug)]
pub struct SessionCore {
    state: State,
    tracks: BTreeMap<usize, SetupTrack>,
    track_count: usize,
    last_activity: Instant,
    timeout: Duration,
}

impl SessionCore {
    /// A session over a stream described with `track_count` tracks.
    pub fn new(track_count: usize, timeout: Duration, now: Instant) -> Self {
        Self {
            state: State::Init,
            tracks: BTreeMap::new(),
            track_count,
            last_activity: now,
            timeout,
        }
    }

    pub fn state(&self) -> State {
        self.state
    }

    pub fn tracks(&self) -> &BTreeMap<usize, SetupTrack> {
        &self.tracks
    }

    pub fn is_tcp(&self) -> bool {
        self.tracks.values().any(|t| t.transport.is_tcp())
    }

    /// Interleaved channels for a TCP SETUP that named none: the first free
    /// even/odd pair.
    pub fn free_channels(&self) -> (u8, u8) {
        let used = |c: u8| {
            self.tracks.values().any(|t| {
                matches!(t.transport, Transport::Tcp { rtp_channel, rtcp_channel }
                    if rtp_channel == c || rtcp_channel == c)
            })
        };
        (0u8..=127)
            .map(|i| (2 * i, 2 * i + 1))
            .find(|&(a, b)| !used(a) && !used(b))
            .unwrap_or((254, 255))
    }

    pub fn setup(
        &mut self,
        track: usize,
        transport: Transport,
        ssrc: u32,
        now: Instant,
    ) -> Result<(), SessionError> {
        self.last_activity = now;
        if self.state == State::Playing {
            // Changing transports mid-play is allowed by RFC 2326 §10.4 but
            // no client needs it; PAUSE first.
            return Err(SessionError::State {
                method: "SETUP",
                state: self.state,
            });
        }
        if track >= self.track_count {
            return Err(SessionError::NoTrack(track));
        }
        let others = self.tracks.iter().filter(|(i, _)| **i != track);
        for (_, t) in others {
            if t.transport.is_tcp() != transport.is_tcp() {
                return Err(SessionError::MixedTransport);
            }
            if let (
                Transport::Tcp {
                    rtp_channel: a,
                    rtcp_channel: b,
                },
                Transport::Tcp {
                    rtp_channel: c,
                    rtcp_channel: d,
                },
            ) = (t.transport, transport)
                && (a == c || a == d || b == c || b == d)
            {
                return Err(SessionError::ChannelsInUse(c, d));
            }
        }
        self.tracks.insert(track, SetupTrack { transport, ssrc });
        self.state = State::Ready;
        Ok(())
    }

    pub fn play(&mut self, now: Instant) -> Result<Play, SessionError> {
        self.last_activity = now;
        match self.state {
            State::Init => Err(SessionError::State {
                method: "PLAY",
                state: self.state,
            }),
            State::Ready => {
                self.state = State::Playing;
                Ok(Play::Start)
            }
            State::Playing => Ok(Play::AlreadyPlaying),
        }
    }

    /// Playing → Ready; `true` if sending must stop.
    pub fn pause(&mut self, now: Instant) -> Result<bool, SessionError> {
        self.last_activity = now;
        match self.state {
            State::Init => Err(SessionError::State {
                method: "PAUSE",
                state: self.state,
            }),
            State::Ready => Ok(false),
            State::Playing => {
                self.state = State::Ready;
                Ok(true)
            }
        }
    }

    /// A request naming the session, or RTCP from the client (RFC 2326
    /// §12.37: either keeps it alive).
    pub fn touch(&mut self, now: Instant) {
        self.last_activity = self.last_activity.max(now);
    }

    pub fn deadline(&self) -> Instant {
        self.last_activity + self.timeout
    }

    pub fn expired(&self, now: Instant) -> bool {
        now >= self.deadline()
    }

    pub fn timeout(&self) -> Duration {
        self.timeout
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transports_clients_send() {
        assert_eq!(
            parse_transport(Some("RTP/AVP/TCP;unicast;interleaved=0-1")),
            Ok(TransportRequest::Tcp {
                channels: Some((0, 1))
            })
        );
        assert_eq!(
            parse_transport(Some("RTP/AVP/UDP;unicast;client_port=5000-5001")),
            Ok(TransportRequest::Udp {
                client_rtp: 5000,
                client_rtcp: 5001
            })
        );
        // Multicast first, then unicast: the first supported wins.
        assert_eq!(
            parse_transport(Some(
                "RTP/AVP;multicast;port=9000-9001,RTP/AVP;unicast;client_port=6000"
            )),
            Ok(TransportRequest::Udp {
                client_rtp: 6000,
                client_rtcp: 6001
            })
        );
        assert_eq!(
            parse_transport(Some("RTP/AVP/TCP;unicast")),
            Ok(TransportRequest::Tcp { channels: None })
        );
        for bad in [
            "RTP/AVP;unicast",
            "RTP/AVP/TCP;interleaved=300-301",
            "RTP/AVP;unicast;client_port=0-1",
            "RTP/AVP/TCP;unicast;mode=record",
            "RAW/RAW/UDP;unicast;client_port=1-2",
            "RTP/AVP;unicast;client_port=65535",
        ] {
            assert!(parse_transport(Some(bad)).is_err(), "{bad}");
        }
        assert_eq!(parse_transport(None), Err(TransportError::Missing));
        assert_eq!(
            Transport::Udp {
                client_rtp: 5000,
                client_rtcp: 5001
            }
            .header((8000, 8001), 0xabc),
            "RTP/AVP;unicast;client_port=5000-5001;server_port=8000-8001;ssrc=00000ABC;mode=play"
        );
    }

    #[test]
    fn state_machine_and_timeout() {
        let t0 = Instant::now();
        let timeout = Duration::from_secs(60);
        let mut s = SessionCore::new(2, timeout, t0);
        assert_eq!(s.state(), State::Init);
        assert!(matches!(s.play(t0), Err(SessionError::State { .. })));
        let tcp = |a, b| Transport::Tcp {
            rtp_channel: a,
            rtcp_channel: b,
        };
        s.setup(0, tcp(0, 1), 1, t0).unwrap();
        assert_eq!(s.free_channels(), (2, 3));
        assert_eq!(
            s.setup(1, tcp(1, 2), 2, t0),
            Err(SessionError::ChannelsInUse(1, 2))
        );
        assert_eq!(
            s.setup(
                1,
                Transport::Udp {
                    client_rtp: 1,
                    client_rtcp: 2
                },
                2,
                t0
            ),
            Err(SessionError::MixedTransport)
        );
        assert_eq!(s.setup(2, tcp(2, 3), 2, t0), Err(SessionError::NoTrack(2)));
        s.setup(1, tcp(2, 3), 2, t0).unwrap();
        assert_eq!(s.state(), State::Ready);
        assert_eq!(s.play(t0), Ok(Play::Start));
        assert_eq!(s.play(t0), Ok(Play::AlreadyPlaying));
        assert!(s.setup(0, tcp(0, 1), 1, t0).unwrap_err().status() == 455);
        assert_eq!(s.pause(t0), Ok(true));
        assert_eq!(s.pause(t0), Ok(false));
        assert_eq!(s.play(t0), Ok(Play::Start));
        // Keepalives push the deadline; silence ends the session.
        let t1 = t0 + Duration::from_secs(50);
        s.touch(t1);
        assert!(!s.expired(t0 + Duration::from_secs(100)));
        assert!(s.expired(t1 + timeout));
        // An older instant never moves the deadline back.
        s.touch(t0);
        assert_eq!(s.deadline(), t1 + timeout);
    }
}
