//! The SIP endpoint: UDP and TCP on one address, framing, parsing, the
//! transaction layer and its timers. A thin tokio shell around the sans-IO
//! parts; the application gets new requests on a channel and answers through
//! [`SipEndpoint::respond`].

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use bytes::Bytes;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::sync::{Notify, mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use super::framing::{Limits, StreamFramer, frame_datagram};
use super::msg;
use super::transaction::{
    Action, Peer, ResponseVerdict, ServerKey, ServerVerdict, Timers, TransactionLayer, Transport,
};

#[derive(Clone, Copy, Debug)]
pub struct EndpointConfig {
    pub listen: SocketAddr,
    pub limits: Limits,
    pub timers: Timers,
    /// TCP connections accepted at once; more are refused.
    pub max_tcp_connections: usize,
}

/// A new request for the application.
#[derive(Debug)]
pub struct InboundRequest {
    pub request: rsip::Request,
    pub peer: Peer,
    key: Option<ServerKey>,
}

#[derive(Debug, thiserror::Error)]
pub enum SipError {
    #[error("cannot bind SIP on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("no TCP connection to {0}")]
    NoConnection(SocketAddr),
    #[error("sending to {peer}: {source}")]
    Send {
        peer: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("no final response from {0} (timer F)")]
    Timeout(SocketAddr),
    #[error("request has no Via branch")]
    NoBranch,
    #[error("SIP endpoint stopped")]
    Stopped,
}

type Pending = oneshot::Sender<Result<rsip::Response, SipError>>;

pub struct SipEndpoint {
    udp: UdpSocket,
    local: SocketAddr,
    tcp: Mutex<HashMap<SocketAddr, mpsc::Sender<Bytes>>>,
    layer: Mutex<TransactionLayer>,
    timer_wake: Notify,
    pending: Mutex<HashMap<String, (SocketAddr, Pending)>>,
    /// INVITEs sent, by branch, to build the ACK for a 3xx–6xx (§17.1.1.3).
    invites: Mutex<HashMap<String, (Peer, rsip::Request)>>,
    inbound: mpsc::Sender<InboundRequest>,
    config: EndpointConfig,
    stats: EndpointStats,
}

/// Counters for `/metrics`.
#[derive(Default, Debug)]
pub struct EndpointStats {
    /// Requests received (new server transactions and ACKs).
    pub requests_received: AtomicU64,
    /// Client transactions started.
    pub requests_sent: AtomicU64,
    /// Client transactions that ended with timer B/F.
    pub timeouts: AtomicU64,
    /// Messages dropped as unparsable or malformed.
    pub malformed: AtomicU64,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn now() -> Instant {
    tokio::time::Instant::now().into_std()
}

impl SipEndpoint {
    /// Binds UDP and TCP on `config.listen` and starts the receive, accept and
    /// timer tasks, which end on `shutdown`.
    pub async fn start(
        config: EndpointConfig,
        shutdown: CancellationToken,
    ) -> Result<(Arc<Self>, mpsc::Receiver<InboundRequest>), SipError> {
        let bind_err = |source| SipError::Bind {
            addr: config.listen,
            source,
        };
        // TCP on the same port as UDP, even when the port was picked by the
        // OS: a picked UDP port may be taken on TCP, so try again then.
        let mut attempt = 0;
        let (udp, local, tcp) = loop {
            let udp = UdpSocket::bind(config.listen).await.map_err(bind_err)?;
            let local = udp.local_addr().map_err(bind_err)?;
            match TcpListener::bind(local).await {
                Ok(tcp) => break (udp, local, tcp),
                Err(e) if config.listen.port() == 0 && attempt < 50 => {
                    attempt += 1;
                    tracing::debug!(port = local.port(), error = %e, "picked port busy on TCP; trying another");
                }
                Err(e) => return Err(bind_err(e)),
            }
        };
        let (tx, rx) = mpsc::channel(4096);
        let ep = Arc::new(Self {
            udp,
            local,
            tcp: Mutex::default(),
            layer: Mutex::new(TransactionLayer::new(config.timers)),
            timer_wake: Notify::new(),
            pending: Mutex::default(),
            invites: Mutex::default(),
            inbound: tx,
            config,
            stats: EndpointStats::default(),
        });
        tokio::spawn(ep.clone().udp_loop(shutdown.clone()));
        tokio::spawn(ep.clone().accept_loop(tcp, shutdown.clone()));
        tokio::spawn(ep.clone().timer_loop(shutdown));
        tracing::info!(sip = %local, "SIP listening on UDP and TCP");
        Ok((ep, rx))
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }

    pub fn stats(&self) -> &EndpointStats {
        &self.stats
    }

    async fn udp_loop(self: Arc<Self>, shutdown: CancellationToken) {
        let mut buf = vec![0u8; 65_535];
        loop {
            let (n, src) = tokio::select! {
                () = shutdown.cancelled() => return,
                r = self.udp.recv_from(&mut buf) => match r {
                    Ok(x) => x,
                    Err(e) => {
                        // ICMP errors from earlier sends surface here on Linux.
                        tracing::debug!(error = %e, "UDP receive error");
                        continue;
                    }
                },
            };
            let peer = Peer {
                transport: Transport::Udp,
                addr: src,
            };
            let datagram = &buf[..n];
            if datagram.iter().all(|b| b.is_ascii_whitespace()) {
                continue; // keep-alive
            }
            match frame_datagram(datagram, &self.config.limits) {
                Ok(range) => self.on_message(&datagram[range], peer).await,
                Err(e) => {
                    self.stats.malformed.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(peer = %src, error = %e, "dropping malformed SIP datagram")
                }
            }
        }
    }

    async fn accept_loop(self: Arc<Self>, listener: TcpListener, shutdown: CancellationToken) {
        loop {
            let (stream, src) = tokio::select! {
                () = shutdown.cancelled() => return,
                r = listener.accept() => match r {
                    Ok(x) => x,
                    Err(e) => {
                        tracing::warn!(error = %e, "SIP TCP accept failed");
                        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                        continue;
                    }
                },
            };
            if lock(&self.tcp).len() >= self.config.max_tcp_connections {
                tracing::warn!(peer = %src, limit = self.config.max_tcp_connections, "refusing SIP TCP connection: too many");
                continue;
            }
            tokio::spawn(self.clone().connection(stream, src, shutdown.clone()));
        }
    }

    async fn connection(
        self: Arc<Self>,
        stream: TcpStream,
        src: SocketAddr,
        shutdown: CancellationToken,
    ) {
        let (mut reader, mut writer) = stream.into_split();
        let (tx, mut rx) = mpsc::channel::<Bytes>(256);
        lock(&self.tcp).insert(src, tx);
        let writer_task = tokio::spawn(async move {
            while let Some(b) = rx.recv().await {
                if writer.write_all(&b).await.is_err() {
                    break;
                }
            }
        });
        let peer = Peer {
            transport: Transport::Tcp,
            addr: src,
        };
        let mut framer = StreamFramer::new(self.config.limits);
        let mut buf = vec![0u8; 16 * 1024];
        tracing::debug!(peer = %src, "SIP TCP connection opened");
        'conn: loop {
            let n = tokio::select! {
                () = shutdown.cancelled() => break,
                r = reader.read(&mut buf) => match r {
                    Ok(0) | Err(_) => break,
                    Ok(n) => n,
                },
            };
            framer.push(&buf[..n]);
            loop {
                match framer.next_message() {
                    Ok(Some(m)) => self.on_message(&m, peer).await,
                    Ok(None) => break,
                    Err(e) => {
                        // Out of step with the stream: only this connection goes.
                        tracing::warn!(peer = %src, error = %e, "closing SIP TCP connection: bad framing");
                        break 'conn;
                    }
                }
            }
        }
        lock(&self.tcp).remove(&src);
        writer_task.abort();
        tracing::debug!(peer = %src, "SIP TCP connection closed");
    }

    async fn timer_loop(self: Arc<Self>, shutdown: CancellationToken) {
        loop {
            let next = lock(&self.layer).poll_timeout();
            let sleep = async {
                match next {
                    Some(at) => tokio::time::sleep_until(tokio::time::Instant::from_std(at)).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                () = shutdown.cancelled() => {
                    for (_, (_, p)) in lock(&self.pending).drain() {
                        let _ = p.send(Err(SipError::Stopped));
                    }
                    return;
                }
                () = self.timer_wake.notified() => continue,
                () = sleep => {}
            }
            let actions = lock(&self.layer).handle_timeout(now());
            for a in actions {
                match a {
                    Action::Transmit { peer, bytes } => {
                        if let Err(e) = self.send(peer, bytes).await {
                            tracing::debug!(error = %e, "retransmission failed");
                        }
                    }
                    Action::Timeout { branch } => {
                        self.stats.timeouts.fetch_add(1, Ordering::Relaxed);
                        if let Some((addr, p)) = lock(&self.pending).remove(&branch) {
                            let _ = p.send(Err(SipError::Timeout(addr)));
                        }
                    }
                }
            }
        }
    }

    async fn on_message(&self, bytes: &[u8], peer: Peer) {
        let msg = match super::parse_message(bytes) {
            Ok(m) => m,
            Err(e) => {
                self.stats.malformed.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(peer = %peer.addr, error = %e, "dropping unparsable SIP message");
                return;
            }
        };
        match msg {
            rsip::SipMessage::Request(request) => self.on_request(request, peer).await,
            rsip::SipMessage::Response(response) => self.on_response(response).await,
        }
    }

    async fn on_request(&self, request: rsip::Request, peer: Peer) {
        self.stats.requests_received.fetch_add(1, Ordering::Relaxed);
        let method = request.method.to_string();
        let key = if method == "ACK" {
            None // ACK for a 2xx is its own transaction (§17.1.1.3).
        } else {
            let via = msg::header_value(&request.headers, "Via").unwrap_or_default();
            let Some(branch) = msg::top_branch(&request.headers) else {
                tracing::warn!(peer = %peer.addr, method, "dropping request without Via branch");
                return;
            };
            Some(ServerKey {
                branch,
                sent_by: msg::via_sent_by(&via).unwrap_or("").to_owned(),
                method: method.clone(),
            })
        };
        if let Some(k) = &key {
            let verdict = lock(&self.layer).on_request(k.clone(), now());
            self.timer_wake.notify_one();
            match verdict {
                ServerVerdict::New => {}
                ServerVerdict::Absorb => return,
                ServerVerdict::Resend(bytes) => {
                    if let Err(e) = self.send(peer, bytes).await {
                        tracing::debug!(error = %e, "resending response failed");
                    }
                    return;
                }
            }
        }
        let inbound = InboundRequest { request, peer, key };
        if self.inbound.try_send(inbound).is_err() {
            tracing::warn!(peer = %peer.addr, method, "SIP application queue full: request dropped");
        }
    }

    async fn on_response(&self, response: rsip::Response) {
        let Some(branch) = msg::top_branch(&response.headers) else {
            return;
        };
        let code = response.status_code.code();
        let verdict = lock(&self.layer).on_response(&branch, code, now());
        match verdict {
            ResponseVerdict::Absorb => return,
            ResponseVerdict::ResendAck(ack) => {
                let peer = lock(&self.invites).get(&branch).map(|(p, _)| *p);
                if let Some(peer) = peer
                    && let Err(e) = self.send(peer, ack).await
                {
                    tracing::debug!(error = %e, "re-sending ACK failed");
                }
                return;
            }
            ResponseVerdict::DeliverAndAck => {
                let invite = lock(&self.invites).remove(&branch);
                if let Some((peer, invite)) = invite {
                    let ack = msg::finish(rsip::SipMessage::Request(msg::ack_for_failure(
                        &invite, &response,
                    )));
                    lock(&self.layer).set_ack(&branch, ack.clone());
                    if let Err(e) = self.send(peer, ack).await {
                        tracing::debug!(error = %e, "sending ACK for a failed INVITE failed");
                    }
                }
            }
            ResponseVerdict::Deliver => {}
        }
        self.timer_wake.notify_one();
        if code >= 200
            && let Some((_, p)) = lock(&self.pending).remove(&branch)
        {
            let _ = p.send(Ok(response));
        }
    }

    async fn send(&self, peer: Peer, bytes: Bytes) -> Result<(), SipError> {
        match peer.transport {
            Transport::Udp => self
                .udp
                .send_to(&bytes, peer.addr)
                .await
                .map(|_| ())
                .map_err(|source| SipError::Send {
                    peer: peer.addr,
                    source,
                }),
            Transport::Tcp => {
                let tx = lock(&self.tcp)
                    .get(&peer.addr)
                    .cloned()
                    .ok_or(SipError::NoConnection(peer.addr))?;
                tx.send(bytes)
                    .await
                    .map_err(|_| SipError::NoConnection(peer.addr))
            }
        }
    }

    /// Answers a request: the response goes where the request came from.
    pub async fn respond(&self, inbound: &InboundRequest, response: rsip::Response) {
        let code = response.status_code.code();
        let bytes = msg::finish(rsip::SipMessage::Response(response));
        if let Some(k) = &inbound.key {
            lock(&self.layer).on_send_response(
                k,
                code,
                bytes.clone(),
                inbound.peer.transport,
                now(),
            );
            self.timer_wake.notify_one();
        }
        if let Err(e) = self.send(inbound.peer, bytes).await {
            tracing::warn!(peer = %inbound.peer.addr, error = %e, "cannot send SIP response");
        }
    }

    /// Sends a request and waits for its final response (or timer F).
    pub async fn request(
        &self,
        peer: Peer,
        request: rsip::Request,
    ) -> Result<rsip::Response, SipError> {
        let branch = msg::top_branch(&request.headers).ok_or(SipError::NoBranch)?;
        self.stats.requests_sent.fetch_add(1, Ordering::Relaxed);
        let is_invite = request.method == rsip::Method::Invite;
        let kept = is_invite.then(|| request.clone());
        let bytes = msg::finish(rsip::SipMessage::Request(request));
        let (tx, rx) = oneshot::channel();
        if let Some(request) = kept {
            let mut invites = lock(&self.invites);
            // Bounded: entries are removed on failure; successes age out here.
            if invites.len() > 4096 {
                invites.clear();
            }
            invites.insert(branch.clone(), (peer, request.clone()));
        }
        lock(&self.pending).insert(branch.clone(), (peer.addr, tx));
        lock(&self.layer).on_send_request(branch.clone(), peer, bytes.clone(), now());
        self.timer_wake.notify_one();
        if let Err(e) = self.send(peer, bytes).await {
            lock(&self.pending).remove(&branch);
            return Err(e);
        }
        rx.await.unwrap_or(Err(SipError::Stopped))
    }

    /// Sends the ACK for an INVITE's 2xx (a request of the dialog, §13.2.2.4)
    /// and remembers it, so a retransmitted 2xx is ACKed again.
    pub async fn send_ack(
        &self,
        invite_branch: &str,
        peer: Peer,
        ack: rsip::Request,
    ) -> Result<(), SipError> {
        let bytes = msg::finish(rsip::SipMessage::Request(ack));
        lock(&self.layer).set_ack(invite_branch, bytes.clone());
        lock(&self.invites).remove(invite_branch);
        self.send(peer, bytes).await
    }

    /// The transport's address for Via/Contact of outgoing requests.
    pub fn via_sent_by(&self) -> String {
        self.local.to_string()
    }
}
