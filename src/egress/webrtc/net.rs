//! The one UDP port every WebRTC session shares: host candidates, and the
//! dispatcher task that owns the socket's receive side and routes datagrams
//! to sessions.
//!
//! Routing: by the sender's address once a session has claimed it; a STUN
//! binding request from a new address is routed by the ICE ufrag in its
//! USERNAME (RFC 8445 §7.2.2), which claims that address for the session.
//! Anything else from an unknown address is dropped (ICE-lite: connectivity
//! always starts with the browser's check, RFC 8445 §2.5).

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};

use tokio::net::UdpSocket;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::media::stun_local_ufrag;

/// A datagram for a session.
pub struct Datagram {
    pub from: SocketAddr,
    /// Our address it was sent to (the matching host candidate).
    pub to: SocketAddr,
    pub data: Vec<u8>,
}

/// Datagrams queued per session before new ones are dropped (UDP: the
/// session's task is behind; RTP/RTCP loss is recoverable).
pub const INBOX: usize = 256;

#[derive(Clone)]
struct Route {
    session: Arc<str>,
    inbox: mpsc::Sender<Datagram>,
}

#[derive(Default)]
pub struct Routes {
    by_ufrag: HashMap<String, Route>,
    by_addr: HashMap<SocketAddr, Route>,
}

impl Routes {
    pub fn add_session(&mut self, session: Arc<str>, ufrag: String, inbox: mpsc::Sender<Datagram>) {
        self.by_ufrag.insert(ufrag, Route { session, inbox });
    }

    pub fn remove_session(&mut self, session: &str) {
        self.by_ufrag.retain(|_, r| &*r.session != session);
        self.by_addr.retain(|_, r| &*r.session != session);
    }

    fn route(&mut self, from: SocketAddr, data: &[u8]) -> Option<Route> {
        if let Some(r) = self.by_addr.get(&from) {
            return Some(r.clone());
        }
        let r = self.by_ufrag.get(stun_local_ufrag(data)?)?.clone();
        self.by_addr.insert(from, r.clone());
        Some(r)
    }
}

/// Which of our candidates a datagram from `from` was sent to. The socket
/// is bound to one address (possibly the wildcard), so the kernel doesn't
/// tell; ICE needs a host candidate that matches (str0m drops checks on
/// unknown interfaces). Loopback peers reach loopback candidates; others the
/// first candidate of their address family.
pub fn local_for(candidates: &[SocketAddr], from: SocketAddr) -> Option<SocketAddr> {
    let same_family = |c: &&SocketAddr| c.is_ipv4() == from.is_ipv4();
    candidates
        .iter()
        .filter(same_family)
        .find(|c| c.ip().is_loopback() == from.ip().is_loopback())
        .or_else(|| candidates.iter().find(same_family))
        .copied()
}

/// Runs until `shutdown`: reads the socket and hands each datagram to its
/// session.
pub fn spawn_dispatcher(
    socket: Arc<UdpSocket>,
    routes: Arc<Mutex<Routes>>,
    candidates: Vec<SocketAddr>,
    shutdown: CancellationToken,
) {
    tokio::spawn(async move {
        // Larger than any path MTU: a truncated datagram can't be valid SRTP.
        let mut buf = vec![0u8; 4096];
        loop {
            let (n, from) = tokio::select! {
                () = shutdown.cancelled() => break,
                r = socket.recv_from(&mut buf) => match r {
                    Ok(v) => v,
                    Err(e) => {
                        // ICMP port unreachable from a gone peer surfaces here
                        // on Linux; nothing to do but go on.
                        tracing::debug!(error = %e, "WebRTC socket receive error");
                        continue;
                    }
                },
            };
            let data = &buf[..n];
            let route = routes
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .route(from, data);
            let (Some(route), Some(to)) = (route, local_for(&candidates, from)) else {
                tracing::trace!(peer = %from, len = n, "WebRTC datagram for no session");
                continue;
            };
            let d = Datagram {
                from,
                to,
                data: data.to_vec(),
            };
            if let Err(mpsc::error::TrySendError::Closed(_)) = route.inbox.try_send(d) {
                routes
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .remove_session(&route.session);
            }
        }
        tracing::debug!("WebRTC dispatcher stopped");
    });
}

/// Host candidates for `listen`: `public_ips` when configured; the listen
/// address itself when it is a specific one (loopback in tests); else every
/// up, non-loopback interface address of the listen family.
pub fn host_candidates(listen: SocketAddr, public_ips: &[IpAddr]) -> Vec<SocketAddr> {
    let port = listen.port();
    if !public_ips.is_empty() {
        return public_ips
            .iter()
            .map(|ip| SocketAddr::new(*ip, port))
            .collect();
    }
    if !listen.ip().is_unspecified() {
        return vec![listen];
    }
    let want_v6 = listen.is_ipv6();
    interface_addrs()
        .into_iter()
        .filter(|ip| !ip.is_loopback() && (ip.is_ipv4() || want_v6))
        // Link-local IPv6 needs a scope id a browser candidate can't carry.
        .filter(|ip| match ip {
            IpAddr::V6(v6) => (v6.segments()[0] & 0xffc0) != 0xfe80,
            IpAddr::V4(_) => true,
        })
        .map(|ip| SocketAddr::new(ip, port))
        .collect()
}

#[cfg(unix)]
fn interface_addrs() -> Vec<IpAddr> {
    let mut out = Vec::new();
    let mut head: *mut libc::ifaddrs = std::ptr::null_mut();
    // SAFETY: getifaddrs fills `head` with a list we only read and then free
    // exactly once with freeifaddrs; each node's ifa_addr is either null or
    // points to a sockaddr whose family says which struct it is.
    unsafe {
        if libc::getifaddrs(&mut head) != 0 {
            tracing::warn!(error = %std::io::Error::last_os_error(), "cannot list network interfaces");
            return out;
        }
        let mut cur = head;
        while !cur.is_null() {
            let ifa = &*cur;
            let up = ifa.ifa_flags & (libc::IFF_UP as libc::c_uint) != 0;
            if up && !ifa.ifa_addr.is_null() {
                match i32::from((*ifa.ifa_addr).sa_family) {
                    libc::AF_INET => {
                        let a = &*ifa.ifa_addr.cast::<libc::sockaddr_in>();
                        out.push(IpAddr::from(u32::from_be(a.sin_addr.s_addr).to_be_bytes()));
                    }
                    libc::AF_INET6 => {
                        let a = &*ifa.ifa_addr.cast::<libc::sockaddr_in6>();
                        out.push(IpAddr::from(a.sin6_addr.s6_addr));
                    }
                    _ => {}
                }
            }
            cur = ifa.ifa_next;
        }
        libc::freeifaddrs(head);
    }
    out.dedup();
    out
}

#[cfg(not(unix))]
fn interface_addrs() -> Vec<IpAddr> {
    Vec::new()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn candidates_follow_config() {
        let lo: SocketAddr = "127.0.0.1:8189".parse().unwrap();
        assert_eq!(host_candidates(lo, &[]), vec![lo]);
        let any: SocketAddr = "0.0.0.0:8189".parse().unwrap();
        let public = ["203.0.113.5".parse().unwrap()];
        assert_eq!(
            host_candidates(any, &public),
            vec!["203.0.113.5:8189".parse::<SocketAddr>().unwrap()]
        );
        assert!(
            host_candidates(any, &[])
                .iter()
                .all(|c| c.port() == 8189 && !c.ip().is_loopback() && c.is_ipv4())
        );
    }

    #[test]
    fn local_candidate_for_a_peer() {
        let c: Vec<SocketAddr> = vec![
            "192.0.2.1:8189".parse().unwrap(),
            "127.0.0.1:8189".parse().unwrap(),
        ];
        assert_eq!(local_for(&c, "127.0.0.1:5000".parse().unwrap()), Some(c[1]));
        assert_eq!(
            local_for(&c, "198.51.100.7:5000".parse().unwrap()),
            Some(c[0])
        );
        assert_eq!(local_for(&c, "[::1]:5000".parse().unwrap()), None);
    }

    #[tokio::test]
    async fn routes_claim_addresses_by_ufrag() {
        let (tx, _rx) = mpsc::channel(1);
        let mut r = Routes::default();
        r.add_session("s1".into(), "abcd".into(), tx);
        let from: SocketAddr = "127.0.0.1:5000".parse().unwrap();
        assert!(r.route(from, b"not stun").is_none());
        let mut stun = vec![0x00, 0x01, 0x00, 0x0c, 0x21, 0x12, 0xa4, 0x42];
        stun.extend_from_slice(&[7; 12]);
        stun.extend_from_slice(&[0x00, 0x06, 0x00, 0x06]);
        stun.extend_from_slice(b"abcd:x\0\0");
        assert_eq!(&*r.route(from, &stun).unwrap().session, "s1");
        assert_eq!(&*r.route(from, b"dtls").unwrap().session, "s1");
        r.remove_session("s1");
        assert!(r.route(from, b"dtls").is_none());
    }
}
