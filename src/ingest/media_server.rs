//! Where GB28181 media arrives: one UDP port and one TCP port shared by every
//! session, demultiplexed by SSRC (gb28181.md §6), and outgoing TCP
//! connections for TCP-active sessions. A thin tokio shell: it only routes
//! bytes; RTP parsing, reordering and PS demuxing happen in the session that
//! owns the route.
//!
//! Routing: a session registers the SSRC it expects, or none when the device
//! answered `y=0000000000`/no `y=` (or SSRC checking is off for it). A packet
//! with a known SSRC goes to its session; one with an unknown SSRC goes to a
//! session without an SSRC that waits for the sending device's address, which
//! then learns that SSRC. TCP connections are routed once, by their first
//! packet, and then belong to that session.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use tokio::io::AsyncReadExt;
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// What a session receives.
#[derive(Debug)]
pub enum MediaChunk {
    /// One UDP datagram (one RTP packet) and where it came from.
    Datagram(Bytes, SocketAddr),
    /// Bytes of an RFC 4571 TCP stream, in order, as read.
    Stream(Bytes),
    /// The TCP connection ended (the device closed it or it failed).
    StreamClosed(String),
}

#[derive(Debug, thiserror::Error)]
pub enum MediaServerError {
    #[error("cannot bind media {what} on {addr}: {source}")]
    Bind {
        what: &'static str,
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot connect to the device's media address {addr}: {source}")]
    Connect {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("timed out connecting to the device's media address {0}")]
    ConnectTimeout(SocketAddr),
}

struct RouteEntry {
    id: u64,
    tx: mpsc::Sender<MediaChunk>,
}

#[derive(Default)]
struct Routes {
    by_ssrc: HashMap<u32, RouteEntry>,
    /// Sessions without a known SSRC, by the device address they expect.
    waiting: Vec<(u64, IpAddr, mpsc::Sender<MediaChunk>)>,
}

/// Counters for the API and benchmarks.
#[derive(Debug, Default)]
pub struct MediaServerStats {
    pub udp_packets: AtomicU64,
    pub udp_bytes: AtomicU64,
    pub unrouted_packets: AtomicU64,
    pub dropped_full: AtomicU64,
    pub tcp_connections: AtomicU64,
}

pub struct MediaServer {
    udp: UdpSocket,
    udp_addr: SocketAddr,
    tcp_addr: SocketAddr,
    routes: Mutex<Routes>,
    next_id: AtomicU64,
    pub stats: MediaServerStats,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// The SSRC of an RTP packet (RFC 3550 §5.1), without parsing the rest.
fn peek_ssrc(packet: &[u8]) -> Option<u32> {
    if packet.len() < 12 || packet[0] >> 6 != 2 {
        return None;
    }
    Some(u32::from_be_bytes([
        packet[8], packet[9], packet[10], packet[11],
    ]))
}

/// Packets queued per session before the newest are dropped (counted): a
/// stalled session must not grow memory.
const ROUTE_QUEUE: usize = 4096;

/// Socket receive buffer asked for: a keyframe of a 4 Mbit/s camera arrives
/// as a burst of ~200 packets; several cameras at once need room.
const UDP_RECV_BUFFER: usize = 8 * 1024 * 1024;

impl MediaServer {
    /// Binds the shared UDP port and the TCP port of the same number (the
    /// one the OS picked for UDP when the port is 0) and starts receiving.
    pub async fn start(
        listen: SocketAddr,
        shutdown: CancellationToken,
    ) -> Result<Arc<Self>, MediaServerError> {
        let udp_listen = listen;
        let udp = UdpSocket::bind(udp_listen)
            .await
            .map_err(|source| MediaServerError::Bind {
                what: "UDP",
                addr: udp_listen,
                source,
            })?;
        set_recv_buffer(&udp, UDP_RECV_BUFFER);
        let udp_addr = udp.local_addr().map_err(|source| MediaServerError::Bind {
            what: "UDP",
            addr: udp_listen,
            source,
        })?;
        let tcp_listen = udp_addr;
        let tcp = TcpListener::bind(tcp_listen)
            .await
            .map_err(|source| MediaServerError::Bind {
                what: "TCP",
                addr: tcp_listen,
                source,
            })?;
        let tcp_addr = tcp.local_addr().map_err(|source| MediaServerError::Bind {
            what: "TCP",
            addr: tcp_listen,
            source,
        })?;
        let server = Arc::new(Self {
            udp,
            udp_addr,
            tcp_addr,
            routes: Mutex::default(),
            next_id: AtomicU64::new(1),
            stats: MediaServerStats::default(),
        });
        tokio::spawn(server.clone().udp_loop(shutdown.clone()));
        tokio::spawn(server.clone().accept_loop(tcp, shutdown));
        tracing::info!(udp = %udp_addr, tcp = %tcp_addr, "GB28181 media ports listening");
        Ok(server)
    }

    pub fn udp_port(&self) -> u16 {
        self.udp_addr.port()
    }

    pub fn tcp_port(&self) -> u16 {
        self.tcp_addr.port()
    }

    /// Registers a session: media with `ssrc` (or, when `None`, the first
    /// unknown SSRC from `device_ip`) goes to the returned route.
    pub fn route(self: &Arc<Self>, ssrc: Option<u32>, device_ip: IpAddr) -> MediaRoute {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = mpsc::channel(ROUTE_QUEUE);
        let mut routes = lock(&self.routes);
        match ssrc {
            Some(s) => {
                if let Some(old) = routes.by_ssrc.insert(s, RouteEntry { id, tx: tx.clone() }) {
                    tracing::warn!(
                        ssrc = s,
                        old_route = old.id,
                        "SSRC taken over by a new session"
                    );
                }
            }
            None => routes.waiting.push((id, device_ip, tx.clone())),
        }
        MediaRoute {
            id,
            rx,
            tx,
            server: self.clone(),
        }
    }

    /// Changes what a route waits for: the SSRC the device answered, or any
    /// SSRC from `device_ip` when it answered none.
    pub fn rekey(&self, route: &MediaRoute, ssrc: Option<u32>, device_ip: IpAddr) {
        let mut routes = lock(&self.routes);
        routes.by_ssrc.retain(|_, e| e.id != route.id);
        routes.waiting.retain(|(i, ..)| *i != route.id);
        match ssrc {
            Some(s) => {
                routes.by_ssrc.insert(
                    s,
                    RouteEntry {
                        id: route.id,
                        tx: route.tx.clone(),
                    },
                );
            }
            None => routes.waiting.push((route.id, device_ip, route.tx.clone())),
        }
    }

    fn unroute(&self, id: u64) {
        let mut routes = lock(&self.routes);
        routes.by_ssrc.retain(|_, e| e.id != id);
        routes.waiting.retain(|(i, ..)| *i != id);
    }

    /// The sender for a packet from `from` with `ssrc`, learning the SSRC of
    /// a waiting session from the same address.
    fn lookup(&self, ssrc: u32, from: IpAddr) -> Option<mpsc::Sender<MediaChunk>> {
        let mut routes = lock(&self.routes);
        if let Some(e) = routes.by_ssrc.get(&ssrc) {
            return Some(e.tx.clone());
        }
        let pos = routes.waiting.iter().position(|(_, ip, _)| *ip == from)?;
        let (id, _, tx) = routes.waiting.remove(pos);
        tracing::info!(ssrc, peer = %from, "session without an answered SSRC learnt it from its first packet");
        routes
            .by_ssrc
            .insert(ssrc, RouteEntry { id, tx: tx.clone() });
        Some(tx)
    }

    async fn udp_loop(self: Arc<Self>, shutdown: CancellationToken) {
        let mut buf = vec![0u8; 65_536];
        loop {
            let (n, from) = tokio::select! {
                () = shutdown.cancelled() => return,
                r = self.udp.recv_from(&mut buf) => match r {
                    Ok(x) => x,
                    Err(e) => {
                        tracing::debug!(error = %e, "media UDP receive error");
                        continue;
                    }
                },
            };
            self.stats.udp_packets.fetch_add(1, Ordering::Relaxed);
            self.stats.udp_bytes.fetch_add(n as u64, Ordering::Relaxed);
            let packet = &buf[..n];
            let Some(tx) = peek_ssrc(packet).and_then(|s| self.lookup(s, from.ip())) else {
                let c = self.stats.unrouted_packets.fetch_add(1, Ordering::Relaxed);
                if c.is_power_of_two() {
                    tracing::debug!(peer = %from, ssrc = ?peek_ssrc(packet), total = c + 1, "media packet for no session dropped");
                }
                continue;
            };
            if tx
                .try_send(MediaChunk::Datagram(Bytes::copy_from_slice(packet), from))
                .is_err()
            {
                self.stats.dropped_full.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    async fn accept_loop(self: Arc<Self>, listener: TcpListener, shutdown: CancellationToken) {
        loop {
            let (stream, from) = tokio::select! {
                () = shutdown.cancelled() => return,
                r = listener.accept() => match r {
                    Ok(x) => x,
                    Err(e) => {
                        tracing::warn!(error = %e, "media TCP accept failed");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    }
                },
            };
            self.stats.tcp_connections.fetch_add(1, Ordering::Relaxed);
            let _ = stream.set_nodelay(true);
            tokio::spawn(
                self.clone()
                    .passive_connection(stream, from, shutdown.clone()),
            );
        }
    }

    /// A device connected to our TCP port: read until the first RTP header
    /// tells the SSRC, then hand the connection to that session.
    async fn passive_connection(
        self: Arc<Self>,
        mut stream: TcpStream,
        from: SocketAddr,
        shutdown: CancellationToken,
    ) {
        let mut head = BytesMut::with_capacity(4096);
        let tx = loop {
            // RFC 4571: 2-byte length, then the RTP packet.
            if head.len() >= 14
                && let Some(ssrc) = peek_ssrc(&head[2..])
            {
                match self.lookup(ssrc, from.ip()) {
                    Some(tx) => break tx,
                    None => {
                        tracing::warn!(peer = %from, ssrc, "media TCP connection for no session: closed");
                        return;
                    }
                }
            }
            if head.len() > 64 * 1024 {
                tracing::warn!(peer = %from, "media TCP connection without an RTP header: closed");
                return;
            }
            let read = tokio::select! {
                () = shutdown.cancelled() => return,
                r = tokio::time::timeout(Duration::from_secs(30), stream.read_buf(&mut head)) => r,
            };
            match read {
                Ok(Ok(0)) | Ok(Err(_)) | Err(_) => return,
                Ok(Ok(_)) => {}
            }
        };
        if tx.send(MediaChunk::Stream(head.freeze())).await.is_err() {
            return;
        }
        pump_tcp(stream, tx, shutdown).await;
    }

    /// TCP active (gb28181.md §6): connect to the device's answered address
    /// and deliver what it sends to `route`.
    pub async fn connect_active(
        &self,
        route: &MediaRoute,
        addr: SocketAddr,
        shutdown: CancellationToken,
    ) -> Result<(), MediaServerError> {
        let stream = tokio::time::timeout(Duration::from_secs(5), TcpStream::connect(addr))
            .await
            .map_err(|_| MediaServerError::ConnectTimeout(addr))?
            .map_err(|source| MediaServerError::Connect { addr, source })?;
        let _ = stream.set_nodelay(true);
        self.stats.tcp_connections.fetch_add(1, Ordering::Relaxed);
        tokio::spawn(pump_tcp(stream, route.tx.clone(), shutdown));
        Ok(())
    }
}

async fn pump_tcp(
    mut stream: TcpStream,
    tx: mpsc::Sender<MediaChunk>,
    shutdown: CancellationToken,
) {
    let reason = loop {
        let mut buf = BytesMut::with_capacity(64 * 1024);
        let r = tokio::select! {
            () = shutdown.cancelled() => break "gateway stopping".to_owned(),
            () = tx.closed() => return,
            r = stream.read_buf(&mut buf) => r,
        };
        match r {
            Ok(0) => break "device closed the connection".to_owned(),
            Ok(_) => {
                if tx.send(MediaChunk::Stream(buf.freeze())).await.is_err() {
                    return;
                }
            }
            Err(e) => break format!("connection error: {e}"),
        }
    };
    let _ = tx.send(MediaChunk::StreamClosed(reason)).await;
}

/// A session's inbox. Dropping it unregisters the session.
pub struct MediaRoute {
    id: u64,
    pub rx: mpsc::Receiver<MediaChunk>,
    tx: mpsc::Sender<MediaChunk>,
    server: Arc<MediaServer>,
}

impl MediaRoute {
    pub fn id(&self) -> u64 {
        self.id
    }
}

impl Drop for MediaRoute {
    fn drop(&mut self) {
        self.server.unroute(self.id);
    }
}

#[cfg(unix)]
fn set_recv_buffer(socket: &UdpSocket, bytes: usize) {
    use std::os::fd::AsRawFd;
    let size = libc::c_int::try_from(bytes).unwrap_or(libc::c_int::MAX);
    // SAFETY: setsockopt reads `size` (a c_int that outlives the call) from a
    // valid pointer with its exact length, on a socket fd we own.
    let rc = unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_RCVBUF,
            (&size as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc != 0 {
        tracing::warn!(error = %std::io::Error::last_os_error(), "cannot enlarge the media UDP receive buffer");
    }
}

#[cfg(not(unix))]
fn set_recv_buffer(_socket: &UdpSocket, _bytes: usize) {}

#[cfg(test)]
mod tests {
    use super::*;

    fn rtp(ssrc: u32, seq: u16) -> Vec<u8> {
        let mut p = vec![0x80, 96];
        p.extend_from_slice(&seq.to_be_bytes());
        p.extend_from_slice(&1234u32.to_be_bytes());
        p.extend_from_slice(&ssrc.to_be_bytes());
        p.extend_from_slice(b"payload");
        p
    }

    async fn recv(r: &mut MediaRoute) -> Option<u32> {
        match tokio::time::timeout(Duration::from_secs(2), r.rx.recv()).await {
            Ok(Some(MediaChunk::Datagram(b, _))) => peek_ssrc(&b),
            other => panic!("{other:?}"),
        }
    }

    #[tokio::test]
    async fn routes_udp_by_ssrc_and_learns_unknown_ones() {
        let shutdown = CancellationToken::new();
        let any: SocketAddr = "127.0.0.1:0".parse().unwrap();
        let server = MediaServer::start(any, shutdown.clone()).await.unwrap();
        let dest: SocketAddr = ([127, 0, 0, 1], server.udp_port()).into();
        let mut known = server.route(Some(200_000_001), "127.0.0.1".parse().unwrap());
        let mut open = server.route(None, "127.0.0.1".parse().unwrap());
        let sock = UdpSocket::bind(any).await.unwrap();
        sock.send_to(&rtp(200_000_001, 1), dest).await.unwrap();
        sock.send_to(&rtp(77, 1), dest).await.unwrap();
        sock.send_to(&rtp(77, 2), dest).await.unwrap();
        sock.send_to(&rtp(99, 1), dest).await.unwrap(); // nobody's
        assert_eq!(recv(&mut known).await, Some(200_000_001));
        assert_eq!(recv(&mut open).await, Some(77));
        assert_eq!(recv(&mut open).await, Some(77), "SSRC learnt");
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert_eq!(server.stats.unrouted_packets.load(Ordering::Relaxed), 1);
        drop(known);
        sock.send_to(&rtp(200_000_001, 2), dest).await.unwrap();
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert_eq!(
            server.stats.unrouted_packets.load(Ordering::Relaxed),
            2,
            "route gone"
        );
        shutdown.cancel();
    }

    #[tokio::test]
    async fn routes_a_passive_tcp_connection_by_its_first_packet() {
        use tokio::io::AsyncWriteExt;
        let shutdown = CancellationToken::new();
        let any: SocketAddr = "127.0.0.1:0".parse().unwrap();
        let server = MediaServer::start(any, shutdown.clone()).await.unwrap();
        let mut route = server.route(Some(5), "127.0.0.1".parse().unwrap());
        let mut c = TcpStream::connect(("127.0.0.1", server.tcp_port()))
            .await
            .unwrap();
        let p = rtp(5, 1);
        let mut framed = (p.len() as u16).to_be_bytes().to_vec();
        framed.extend_from_slice(&p);
        // Split mid-header: routing waits for the whole header.
        c.write_all(&framed[..6]).await.unwrap();
        tokio::time::sleep(Duration::from_millis(50)).await;
        c.write_all(&framed[6..]).await.unwrap();
        let mut got = Vec::new();
        while got.len() < framed.len() {
            match tokio::time::timeout(Duration::from_secs(2), route.rx.recv()).await {
                Ok(Some(MediaChunk::Stream(b))) => got.extend_from_slice(&b),
                other => panic!("{other:?}"),
            }
        }
        assert_eq!(got, framed);
        drop(c);
        match tokio::time::timeout(Duration::from_secs(2), route.rx.recv()).await {
            Ok(Some(MediaChunk::StreamClosed(_))) => {}
            other => panic!("{other:?}"),
        }
        shutdown.cancel();
    }
}
