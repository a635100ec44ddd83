//! How the simulated devices talk SIP to the platform.
//!
//! - UDP: one [`SipEndpoint`] for all devices (the gateway's own endpoint,
//!   used as a UA: it retransmits requests and absorbs retransmitted
//!   requests, RFC 3261 §17).
//! - TCP: one connection per device, opened by the device ([`TcpConn`]), as
//!   cameras do (gb28181.md §2). TCP is reliable, so a request is sent once
//!   and waits at most 64·T1 for its final response (RFC 3261 §17.1.2.2,
//!   timer F); requests from the platform arrive on the same connection and
//!   are answered on it (§18.2.2).
//!
//! Both kinds of inbound requests become an [`Incoming`], answered with
//! [`Incoming::respond`]; both kinds of outbound paths are a [`Route`].

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpSocket;
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use crate::sip::endpoint::{InboundRequest, SipEndpoint, SipError};
use crate::sip::transaction::{Peer, Transport};
use crate::sip::{Limits, StreamFramer, msg};

/// Timer F: 64·T1 with T1 = 500 ms (RFC 3261 §17.1.2.2).
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(32);
/// How long a TCP connect to the platform may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Requests in flight on one TCP connection.
const MAX_PENDING: usize = 256;
/// Messages queued for writing on one TCP connection.
const WRITE_QUEUE: usize = 256;

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Why a request got no final response.
#[derive(Debug, thiserror::Error)]
pub enum LinkError {
    #[error(transparent)]
    Sip(#[from] SipError),
    #[error("TCP connection to {0} closed")]
    Closed(SocketAddr),
    #[error("no final response from {0} within 64·T1 (timer F)")]
    Timeout(SocketAddr),
    #[error("too many requests in flight to {0}")]
    Busy(SocketAddr),
    #[error("request has no Via branch")]
    NoBranch,
}

/// A request from the platform, to be answered where it came from.
pub enum Incoming {
    Udp {
        endpoint: Arc<SipEndpoint>,
        /// Our address for Via/Contact (the endpoint's port, a routable IP).
        local: SocketAddr,
        inbound: InboundRequest,
    },
    Tcp {
        conn: Arc<TcpConn>,
        request: rsip::Request,
    },
}

impl Incoming {
    pub fn request(&self) -> &rsip::Request {
        match self {
            Incoming::Udp { inbound, .. } => &inbound.request,
            Incoming::Tcp { request, .. } => request,
        }
    }

    /// Where the request came from.
    pub fn source(&self) -> SocketAddr {
        match self {
            Incoming::Udp { inbound, .. } => inbound.peer.addr,
            Incoming::Tcp { conn, .. } => conn.peer,
        }
    }

    pub fn transport(&self) -> Transport {
        match self {
            Incoming::Udp { .. } => Transport::Udp,
            Incoming::Tcp { .. } => Transport::Tcp,
        }
    }

    /// The path back to the sender, for requests of a dialog it opened.
    pub fn route(&self) -> Route {
        match self {
            Incoming::Udp {
                endpoint,
                local,
                inbound,
            } => Route::Udp {
                endpoint: endpoint.clone(),
                peer: inbound.peer.addr,
                local: *local,
            },
            Incoming::Tcp { conn, .. } => Route::Tcp(conn.clone()),
        }
    }

    /// A response built with [`msg::response`] for this request.
    pub fn response(&self, code: u16, to_tag: Option<&str>) -> rsip::Response {
        let mut r = msg::response(self.request(), code, self.source(), to_tag);
        r.headers.push(rsip::Header::Other(
            "User-Agent".into(),
            super::USER_AGENT.into(),
        ));
        r
    }

    pub async fn respond(&self, response: rsip::Response) {
        match self {
            Incoming::Udp {
                endpoint, inbound, ..
            } => endpoint.respond(inbound, response).await,
            Incoming::Tcp { conn, .. } => conn.send_response(response).await,
        }
    }
}

/// Where a device's requests go.
#[derive(Clone)]
pub enum Route {
    Udp {
        endpoint: Arc<SipEndpoint>,
        peer: SocketAddr,
        local: SocketAddr,
    },
    Tcp(Arc<TcpConn>),
}

impl Route {
    pub fn transport(&self) -> Transport {
        match self {
            Route::Udp { .. } => Transport::Udp,
            Route::Tcp(_) => Transport::Tcp,
        }
    }

    /// `UDP`/`TCP` for Via.
    pub fn via_transport(&self) -> &'static str {
        match self {
            Route::Udp { .. } => "UDP",
            Route::Tcp(_) => "TCP",
        }
    }

    /// Our address on this path, for Via and Contact.
    pub fn local(&self) -> SocketAddr {
        match self {
            Route::Udp { local, .. } => *local,
            Route::Tcp(c) => c.local,
        }
    }

    pub fn peer(&self) -> SocketAddr {
        match self {
            Route::Udp { peer, .. } => *peer,
            Route::Tcp(c) => c.peer,
        }
    }

    /// Sends a request and waits for its final response.
    pub async fn request(&self, request: rsip::Request) -> Result<rsip::Response, LinkError> {
        match self {
            Route::Udp { endpoint, peer, .. } => Ok(endpoint
                .request(
                    Peer {
                        transport: Transport::Udp,
                        addr: *peer,
                    },
                    request,
                )
                .await?),
            Route::Tcp(c) => c.request(request).await,
        }
    }
}

/// A device's TCP connection to the platform.
pub struct TcpConn {
    local: SocketAddr,
    peer: SocketAddr,
    writer: mpsc::Sender<Bytes>,
    pending: Mutex<HashMap<String, oneshot::Sender<rsip::Response>>>,
    closed: CancellationToken,
}

impl TcpConn {
    /// Connects from `bind_ip` to the platform and starts reading; requests
    /// from the platform go to `inbound`. The connection ends when either
    /// side closes it or on `shutdown`.
    pub async fn connect(
        bind_ip: IpAddr,
        peer: SocketAddr,
        inbound: mpsc::Sender<Incoming>,
        shutdown: CancellationToken,
    ) -> std::io::Result<Arc<Self>> {
        let socket = if peer.is_ipv4() {
            TcpSocket::new_v4()?
        } else {
            TcpSocket::new_v6()?
        };
        socket.bind(SocketAddr::new(bind_ip, 0))?;
        let stream = tokio::time::timeout(CONNECT_TIMEOUT, socket.connect(peer))
            .await
            .map_err(|_| {
                std::io::Error::new(std::io::ErrorKind::TimedOut, "connect timed out")
            })??;
        stream.set_nodelay(true)?;
        let local = stream.local_addr()?;
        let (reader, mut writer) = stream.into_split();
        let (tx, mut rx) = mpsc::channel::<Bytes>(WRITE_QUEUE);
        let closed = shutdown.child_token();
        let conn = Arc::new(Self {
            local,
            peer,
            writer: tx,
            pending: Mutex::default(),
            closed: closed.clone(),
        });
        tokio::spawn(async move {
            loop {
                let bytes = tokio::select! {
                    () = closed.cancelled() => break,
                    b = rx.recv() => match b { Some(b) => b, None => break },
                };
                if let Err(e) = writer.write_all(&bytes).await {
                    tracing::debug!(peer = %peer, error = %e, "SIP TCP write failed");
                    break;
                }
            }
            closed.cancel();
        });
        tokio::spawn(conn.clone().read_loop(reader, inbound));
        tracing::debug!(peer = %peer, local = %local, "SIP TCP connection to the platform opened");
        Ok(conn)
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }

    pub fn is_closed(&self) -> bool {
        self.closed.is_cancelled()
    }

    /// Resolves when the connection has ended.
    pub async fn closed(&self) {
        self.closed.cancelled().await;
    }

    pub fn close(&self) {
        self.closed.cancel();
    }

    async fn read_loop(
        self: Arc<Self>,
        mut reader: tokio::net::tcp::OwnedReadHalf,
        inbound: mpsc::Sender<Incoming>,
    ) {
        let mut framer = StreamFramer::new(Limits::default());
        let mut buf = vec![0u8; 16 * 1024];
        'conn: loop {
            let n = tokio::select! {
                () = self.closed.cancelled() => break,
                r = reader.read(&mut buf) => match r {
                    Ok(0) | Err(_) => break,
                    Ok(n) => n,
                },
            };
            framer.push(&buf[..n]);
            loop {
                match framer.next_message() {
                    Ok(Some(m)) => self.on_message(&m, &inbound),
                    Ok(None) => break,
                    Err(e) => {
                        tracing::warn!(peer = %self.peer, error = %e, "closing SIP TCP connection: bad framing");
                        break 'conn;
                    }
                }
            }
        }
        self.closed.cancel();
        // Dropping the senders fails the requests still waiting.
        lock(&self.pending).clear();
        tracing::debug!(peer = %self.peer, local = %self.local, "SIP TCP connection to the platform closed");
    }

    fn on_message(self: &Arc<Self>, bytes: &[u8], inbound: &mpsc::Sender<Incoming>) {
        match crate::sip::parse_message(bytes) {
            Ok(rsip::SipMessage::Request(request)) => {
                let method = request.method.to_string();
                let inc = Incoming::Tcp {
                    conn: self.clone(),
                    request,
                };
                if inbound.try_send(inc).is_err() {
                    tracing::warn!(peer = %self.peer, method, "simulator request queue full: request dropped");
                }
            }
            Ok(rsip::SipMessage::Response(response)) => {
                if response.status_code.code() < 200 {
                    return;
                }
                let Some(branch) = msg::top_branch(&response.headers) else {
                    return;
                };
                if let Some(tx) = lock(&self.pending).remove(&branch) {
                    let _ = tx.send(response);
                }
            }
            Err(e) => {
                tracing::warn!(peer = %self.peer, error = %e, "dropping unparsable SIP message")
            }
        }
    }

    async fn request(&self, request: rsip::Request) -> Result<rsip::Response, LinkError> {
        let branch = msg::top_branch(&request.headers).ok_or(LinkError::NoBranch)?;
        let (tx, rx) = oneshot::channel();
        {
            let mut pending = lock(&self.pending);
            if pending.len() >= MAX_PENDING {
                return Err(LinkError::Busy(self.peer));
            }
            pending.insert(branch.clone(), tx);
        }
        let bytes = msg::finish(rsip::SipMessage::Request(request));
        if self.is_closed() || self.writer.send(bytes).await.is_err() {
            lock(&self.pending).remove(&branch);
            return Err(LinkError::Closed(self.peer));
        }
        match tokio::time::timeout(REQUEST_TIMEOUT, rx).await {
            Ok(Ok(r)) => Ok(r),
            Ok(Err(_)) => Err(LinkError::Closed(self.peer)),
            Err(_) => {
                lock(&self.pending).remove(&branch);
                Err(LinkError::Timeout(self.peer))
            }
        }
    }

    async fn send_response(&self, response: rsip::Response) {
        let bytes = msg::finish(rsip::SipMessage::Response(response));
        if self.writer.send(bytes).await.is_err() {
            tracing::debug!(peer = %self.peer, "cannot answer: SIP TCP connection closed");
        }
    }
}
