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
    /// One UDP datagram (one RTP packet), where it came from, and when it was
    /// read from the socket (for the added-latency measurement).
    Datagram(Bytes, SocketAddr, std::time::Instant),
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
    #[error("no free media port in {0}-{1}")]
    NoPort(u16, u16),
    #[error("no media port range configured for sessions that need their own port")]
    NoRange,
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
    /// Ports for sessions that cannot share the SSRC-routed port.
    port_range: Option<(u16, u16)>,
    own_ports: Mutex<std::collections::HashSet<u16>>,
    next_own: AtomicU64,
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
        port_range: Option<(u16, u16)>,
        shutdown: CancellationToken,
    ) -> Result<Arc<Self>, MediaServerError> {
        let bind = |what, addr, source| MediaServerError::Bind { what, addr, source };
        // TCP on the UDP port's number, even when the OS picked it: a picked
        // port may be taken on TCP, so try again then.
        let mut attempt = 0;
        let (udp, udp_addr, tcp, tcp_addr) = loop {
            let udp = UdpSocket::bind(listen)
                .await
                .map_err(|e| bind("UDP", listen, e))?;
            let udp_addr = udp.local_addr().map_err(|e| bind("UDP", listen, e))?;
            match TcpListener::bind(udp_addr).await {
                Ok(tcp) => {
                    let tcp_addr = tcp.local_addr().map_err(|e| bind("TCP", udp_addr, e))?;
                    break (udp, udp_addr, tcp, tcp_addr);
                }
                Err(e) if listen.port() == 0 && attempt < 50 => {
                    attempt += 1;
                    tracing::debug!(port = udp_addr.port(), error = %e, "picked media port busy on TCP; trying another");
                }
                Err(e) => return Err(bind("TCP", udp_addr, e)),
            }
        };
        set_recv_buffer(&udp, UDP_RECV_BUFFER);
        let server = Arc::new(Self {
            udp,
            udp_addr,
            tcp_addr,
            routes: Mutex::default(),
            next_id: AtomicU64::new(1),
            port_range,
            own_ports: Mutex::default(),
            next_own: AtomicU64::new(0),
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
            own_port: None,
        }
    }

    /// A session on a port of its own from the configured range (UDP and TCP
    /// on the same number): everything arriving there is this session's,
    /// whatever its SSRC. For devices whose SSRC cannot be relied on.
    pub async fn route_own_port(
        self: &Arc<Self>,
        shutdown: CancellationToken,
    ) -> Result<(MediaRoute, u16), MediaServerError> {
        let (lo, hi) = self.port_range.ok_or(MediaServerError::NoRange)?;
        let span = u64::from(hi.saturating_sub(lo)) + 1;
        let ip = self.udp_addr.ip();
        for _ in 0..span {
            let n = self.next_own.fetch_add(1, Ordering::Relaxed) % span;
            let port = lo + n as u16;
            if !lock(&self.own_ports).insert(port) {
                continue;
            }
            let addr = SocketAddr::new(ip, port);
            let (Ok(udp), Ok(tcp)) = (UdpSocket::bind(addr).await, TcpListener::bind(addr).await)
            else {
                lock(&self.own_ports).remove(&port);
                continue;
            };
            set_recv_buffer(&udp, UDP_RECV_BUFFER);
            let id = self.next_id.fetch_add(1, Ordering::Relaxed);
            let (tx, rx) = mpsc::channel(ROUTE_QUEUE);
            let route = MediaRoute {
                id,
                rx,
                tx: tx.clone(),
                server: self.clone(),
                own_port: Some(port),
            };
            tokio::spawn(own_port_loop(self.clone(), udp, tcp, tx, shutdown));
            tracing::debug!(port, "media session on its own port");
            return Ok((route, port));
        }
        Err(MediaServerError::NoPort(lo, hi))
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
        let mut batch = batch::RecvBatch::new();
        loop {
            tokio::select! {
                () = shutdown.cancelled() => return,
                r = self.udp.readable() => if let Err(e) = r {
                    tracing::debug!(error = %e, "media UDP socket error");
                    continue;
                },
            }
            // Up to a batch of datagrams per system call where the OS can
            // (recvmmsg on Linux); one at a time elsewhere.
            let received = self
                .udp
                .try_io(tokio::io::Interest::READABLE, || batch.recv(&self.udp));
            let n = match received {
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => continue,
                Err(e) => {
                    // ICMP errors from earlier sends surface here on Linux.
                    tracing::debug!(error = %e, "media UDP receive error");
                    continue;
                }
            };
            for i in 0..n {
                let (packet, from, truncated) = batch.get(i);
                if truncated {
                    tracing::debug!(peer = %from, "oversized media datagram dropped");
                    continue;
                }
                self.deliver(packet, from);
            }
        }
    }

    fn deliver(&self, packet: &[u8], from: SocketAddr) {
        self.stats.udp_packets.fetch_add(1, Ordering::Relaxed);
        self.stats
            .udp_bytes
            .fetch_add(packet.len() as u64, Ordering::Relaxed);
        let Some(tx) = peek_ssrc(packet).and_then(|s| self.lookup(s, from.ip())) else {
            let c = self.stats.unrouted_packets.fetch_add(1, Ordering::Relaxed);
            if c.is_power_of_two() {
                tracing::debug!(peer = %from, ssrc = ?peek_ssrc(packet), total = c + 1, "media packet for no session dropped");
            }
            return;
        };
        if tx
            .try_send(MediaChunk::Datagram(
                Bytes::copy_from_slice(packet),
                from,
                std::time::Instant::now(),
            ))
            .is_err()
        {
            self.stats.dropped_full.fetch_add(1, Ordering::Relaxed);
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
    own_port: Option<u16>,
}

impl MediaRoute {
    pub fn id(&self) -> u64 {
        self.id
    }
}

impl Drop for MediaRoute {
    fn drop(&mut self) {
        self.server.unroute(self.id);
        if let Some(p) = self.own_port {
            lock(&self.server.own_ports).remove(&p);
        }
    }
}

/// A session's own port: UDP datagrams and one accepted TCP connection, all
/// delivered to `tx` until the route is dropped.
async fn own_port_loop(
    server: Arc<MediaServer>,
    udp: UdpSocket,
    tcp: TcpListener,
    tx: mpsc::Sender<MediaChunk>,
    shutdown: CancellationToken,
) {
    let mut buf = vec![0u8; 65_536];
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tx.closed() => return,
            r = udp.recv_from(&mut buf) => {
                let Ok((n, from)) = r else { continue };
                server.stats.udp_packets.fetch_add(1, Ordering::Relaxed);
                server.stats.udp_bytes.fetch_add(n as u64, Ordering::Relaxed);
                let chunk = MediaChunk::Datagram(Bytes::copy_from_slice(&buf[..n]), from, std::time::Instant::now());
                if tx.try_send(chunk).is_err() {
                    server.stats.dropped_full.fetch_add(1, Ordering::Relaxed);
                }
            }
            r = tcp.accept() => {
                let Ok((stream, _)) = r else { continue };
                let _ = stream.set_nodelay(true);
                server.stats.tcp_connections.fetch_add(1, Ordering::Relaxed);
                tokio::spawn(pump_tcp(stream, tx.clone(), shutdown.clone()));
            }
        }
    }
}

/// Batched UDP receive: `recvmmsg(2)` on Linux, `recv_from` elsewhere.
mod batch {
    use std::net::SocketAddr;

    use tokio::net::UdpSocket;

    /// Datagrams per system call.
    pub const BATCH: usize = 16;
    /// Largest datagram kept; bigger ones are reported truncated (RTP from
    /// cameras is ≤ 1500 bytes; this leaves room for jumbo frames).
    pub const MAX_DATAGRAM: usize = 9216;

    pub struct RecvBatch {
        bufs: Vec<Vec<u8>>,
        meta: Vec<(usize, SocketAddr, bool)>,
    }

    impl RecvBatch {
        pub fn new() -> Self {
            Self {
                bufs: (0..BATCH).map(|_| vec![0u8; MAX_DATAGRAM]).collect(),
                meta: Vec::with_capacity(BATCH),
            }
        }

        pub fn get(&self, i: usize) -> (&[u8], SocketAddr, bool) {
            let (len, from, truncated) = self.meta[i];
            (&self.bufs[i][..len], from, truncated)
        }

        #[cfg(target_os = "linux")]
        pub fn recv(&mut self, socket: &UdpSocket) -> std::io::Result<usize> {
            use std::os::fd::AsRawFd;
            // SAFETY: every pointer handed to recvmmsg points into `self.bufs`,
            // `iovs`, `addrs` or `msgs`, all alive and not moved for the call;
            // lengths are the real buffer sizes; the kernel writes at most
            // `msg_len` bytes per buffer and `msg_namelen` per address, and we
            // read back only the first `n` entries it reports.
            unsafe {
                let mut addrs: [libc::sockaddr_storage; BATCH] = std::mem::zeroed();
                let mut iovs: [libc::iovec; BATCH] = std::mem::zeroed();
                let mut msgs: [libc::mmsghdr; BATCH] = std::mem::zeroed();
                for i in 0..BATCH {
                    iovs[i].iov_base = self.bufs[i].as_mut_ptr().cast();
                    iovs[i].iov_len = self.bufs[i].len();
                    msgs[i].msg_hdr.msg_name =
                        (&mut addrs[i] as *mut libc::sockaddr_storage).cast();
                    msgs[i].msg_hdr.msg_namelen =
                        std::mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
                    msgs[i].msg_hdr.msg_iov = &mut iovs[i];
                    msgs[i].msg_hdr.msg_iovlen = 1;
                }
                let n = libc::recvmmsg(
                    socket.as_raw_fd(),
                    msgs.as_mut_ptr(),
                    BATCH as libc::c_uint,
                    libc::MSG_DONTWAIT,
                    std::ptr::null_mut(),
                );
                if n < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                let n = n as usize;
                self.meta.clear();
                for i in 0..n {
                    let from = to_socket_addr(&addrs[i]).unwrap_or(([0, 0, 0, 0], 0).into());
                    let truncated = msgs[i].msg_hdr.msg_flags & libc::MSG_TRUNC != 0;
                    self.meta.push((msgs[i].msg_len as usize, from, truncated));
                }
                Ok(n)
            }
        }

        #[cfg(not(target_os = "linux"))]
        pub fn recv(&mut self, socket: &UdpSocket) -> std::io::Result<usize> {
            let (len, from) = socket.try_recv_from(&mut self.bufs[0])?;
            self.meta.clear();
            self.meta.push((len, from, false));
            Ok(1)
        }
    }

    #[cfg(target_os = "linux")]
    fn to_socket_addr(ss: &libc::sockaddr_storage) -> Option<SocketAddr> {
        match i32::from(ss.ss_family) {
            libc::AF_INET => {
                // SAFETY: the family says the storage holds a sockaddr_in,
                // which is smaller than sockaddr_storage and suitably aligned.
                let a =
                    unsafe { &*(ss as *const libc::sockaddr_storage).cast::<libc::sockaddr_in>() };
                let ip = std::net::Ipv4Addr::from(u32::from_be(a.sin_addr.s_addr));
                Some(SocketAddr::from((ip, u16::from_be(a.sin_port))))
            }
            libc::AF_INET6 => {
                // SAFETY: as above, for sockaddr_in6.
                let a =
                    unsafe { &*(ss as *const libc::sockaddr_storage).cast::<libc::sockaddr_in6>() };
                let ip = std::net::Ipv6Addr::from(a.sin6_addr.s6_addr);
                Some(SocketAddr::V6(std::net::SocketAddrV6::new(
                    ip,
                    u16::from_be(a.sin6_port),
                    a.sin6_flowinfo,
                    a.sin6_scope_id,
                )))
            }
            _ => None,
        }
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
            Ok(Some(MediaChunk::Datagram(b, _, _))) => peek_ssrc(&b),
            other => panic!("{other:?}"),
        }
    }

    #[tokio::test]
    async fn routes_udp_by_ssrc_and_learns_unknown_ones() {
        let shutdown = CancellationToken::new();
        let any: SocketAddr = "127.0.0.1:0".parse().unwrap();
        let server = MediaServer::start(any, None, shutdown.clone())
            .await
            .unwrap();
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
        let server = MediaServer::start(any, None, shutdown.clone())
            .await
            .unwrap();
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
