//! RTSP server output: `rtsp://host:8554/live/{stream}` for VMSs and NVRs.
//!
//! Every stream of the hub can be played, whatever feeds it; a stream that
//! does not exist yet but can be made (a GB28181 channel, an on-demand RTSP
//! source) is found and started as for HTTP-FLV ([`App::find_stream`]).
//! Each RTSP session is a viewer of its stream, so on-demand sources start
//! with the first session and stop after the last one ends.
//!
//! Sans-IO parts: [`message`] (request parser, response writer, URL),
//! [`session`] (RFC 2326 Appendix A state machine, transports, timeout),
//! [`sdp`], [`rtp`] (packetizers, RTCP sender reports) and [`auth`]. This
//! file is the tokio shell: a TCP listener, one task per connection (reader)
//! plus a writer task draining a bounded queue, one task per playing
//! session reading the stream's fan-out, and one shared UDP pair (RTP and
//! RTCP = RTP + 1) for every UDP session, as mediamtx does.
//!
//! A slow client never stalls others: UDP sends never wait; a TCP client's
//! packets go through its connection's bounded queue, and a client whose
//! queue is full is dropped. A session whose fan-out lags too often is
//! ended by the fan-out's own policy.

pub mod auth;
pub mod message;
pub mod rtp;
pub mod sdp;
pub mod session;

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use tokio::io::{AsyncReadExt, AsyncWriteExt, BufWriter};
use tokio::net::tcp::OwnedWriteHalf;
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

pub use auth::AuthScheme;
use auth::{AuthGuard, AuthLimits, Credentials, NonceCheck};
use message::{Event, Request, RequestParser, Response, Target};
use rtp::TrackPacketizer;
use session::{Play, SessionCore, Transport, TransportRequest};

use super::{StartError, wait_for_media};
use crate::app::App;
use crate::media::frame::from_ms;
use crate::media::{FanoutError, Frame, Output, Stream, TrackInfo, ViewerGuard};
use crate::store::db;

/// `[rtsp_server]` settings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RtspServerConfig {
    pub enabled: bool,
    pub listen: SocketAddr,
    /// Shared UDP RTP port; RTCP is the next one; 0 picks a free pair.
    pub udp_rtp_port: u16,
    pub session_timeout: Duration,
    /// Offered in 401 challenges, in this order (FFmpeg picks Digest
    /// whenever it is offered, whatever the order).
    pub auth_schemes: Vec<AuthScheme>,
}

#[derive(Debug, thiserror::Error)]
pub enum RtspServerError {
    #[error("RTSP server cannot listen on {addr}: {source}")]
    Listen {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("RTSP server cannot bind UDP RTP/RTCP ports {rtp}/{} on {ip}: {source}", rtp + 1)]
    Udp {
        ip: IpAddr,
        rtp: u16,
        #[source]
        source: std::io::Error,
    },
}

const PUBLIC: &str = "OPTIONS, DESCRIBE, SETUP, PLAY, PAUSE, TEARDOWN, GET_PARAMETER";
const MAX_CONNECTIONS: usize = 1024;
const MAX_SESSIONS: usize = 4096;
/// Packets queued for one TCP client (about 2.8 MB of 1.4 kB packets):
/// more than a few seconds of a camera stream, so only a client that has
/// stopped reading fills it.
const TCP_QUEUE: usize = 2048;
const WRITE_TIMEOUT: Duration = Duration::from_secs(10);
/// RFC 3550 §6.2 allows 5 s as the minimum report interval.
const SR_INTERVAL: Duration = Duration::from_secs(5);
/// How long DESCRIBE waits, after the first frame, for the other track the
/// source announced (audio usually follows the first keyframe within a frame
/// or two).
const TRACKS_WAIT: Duration = Duration::from_secs(3);

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Every critical section below leaves its map or state consistent.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn now() -> Instant {
    tokio::time::Instant::now().into_std()
}

fn random_u32() -> u32 {
    let mut b = [0u8; 4];
    // Without OS randomness the values stay predictable but valid.
    let _ = getrandom::fill(&mut b);
    u32::from_be_bytes(b)
}

pub struct RtspServer;

impl RtspServer {
    /// Binds the TCP listener and the UDP pair, logs
    /// `RTSP server listening rtsp=ADDR udp_rtp=PORT`, and serves until the
    /// app shuts down.
    pub async fn start(app: Arc<App>) -> Result<SocketAddr, RtspServerError> {
        let config = app.config.rtsp_server.clone();
        let listener =
            TcpListener::bind(config.listen)
                .await
                .map_err(|source| RtspServerError::Listen {
                    addr: config.listen,
                    source,
                })?;
        let local = listener
            .local_addr()
            .map_err(|source| RtspServerError::Listen {
                addr: config.listen,
                source,
            })?;
        let (rtp, rtcp) = bind_udp_pair(config.listen.ip(), config.udp_rtp_port).await?;
        let udp_ports = (
            rtp.local_addr().map_or(0, |a| a.port()),
            rtcp.local_addr().map_or(0, |a| a.port()),
        );
        tracing::info!(rtsp = %local, udp_rtp = udp_ports.0, udp_rtcp = udp_ports.1, "RTSP server listening");
        app.set_rtsp_server_addr(local);
        let shared = Arc::new(Shared {
            app: app.clone(),
            config,
            rtp: Arc::new(rtp),
            rtcp: Arc::new(rtcp),
            udp_ports,
            sessions: Mutex::default(),
            udp_peers: Mutex::default(),
            auth: Mutex::new(AuthGuard::new(
                AuthLimits::default(),
                Box::new(|| {
                    crate::util::random_hex(16)
                        .unwrap_or_else(|_| format!("{:08x}{:08x}", random_u32(), random_u32()))
                }),
            )),
            connections: Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS)),
        });
        for socket in [shared.rtp.clone(), shared.rtcp.clone()] {
            tokio::spawn(udp_reader(shared.clone(), socket));
        }
        tokio::spawn(accept_loop(shared, listener));
        Ok(local)
    }
}

/// The shared UDP pair: RTP on an even port, RTCP on the next (RFC 3550
/// §11). Port 0: let the OS pick until an even port with a free successor
/// comes up.
async fn bind_udp_pair(ip: IpAddr, port: u16) -> Result<(UdpSocket, UdpSocket), RtspServerError> {
    let err = |rtp, source| RtspServerError::Udp { ip, rtp, source };
    if port != 0 {
        let rtp = UdpSocket::bind((ip, port))
            .await
            .map_err(|e| err(port, e))?;
        let rtcp = UdpSocket::bind((ip, port.saturating_add(1)))
            .await
            .map_err(|e| err(port, e))?;
        return Ok((rtp, rtcp));
    }
    let mut last = std::io::Error::other("no even port with a free successor");
    for _ in 0..64 {
        let rtp = UdpSocket::bind((ip, 0)).await.map_err(|e| err(0, e))?;
        let p = rtp.local_addr().map_err(|e| err(0, e))?.port();
        if p % 2 != 0 || p == u16::MAX {
            continue;
        }
        match UdpSocket::bind((ip, p + 1)).await {
            Ok(rtcp) => return Ok((rtp, rtcp)),
            Err(e) => last = e,
        }
    }
    Err(err(0, last))
}

struct Shared {
    app: Arc<App>,
    config: RtspServerConfig,
    rtp: Arc<UdpSocket>,
    rtcp: Arc<UdpSocket>,
    udp_ports: (u16, u16),
    sessions: Mutex<HashMap<String, Arc<Session>>>,
    /// Client UDP address → session, so RTCP from a client keeps its
    /// session alive.
    udp_peers: Mutex<HashMap<SocketAddr, String>>,
    auth: Mutex<AuthGuard>,
    connections: Arc<tokio::sync::Semaphore>,
}

impl Shared {
    fn session(&self, id: &str) -> Option<Arc<Session>> {
        lock(&self.sessions).get(id).cloned()
    }

    /// Ends a session: its play task stops, its viewer leaves.
    fn remove_session(&self, id: &str, why: &str) {
        let Some(s) = lock(&self.sessions).remove(id) else {
            return;
        };
        lock(&self.udp_peers).retain(|_, v| v != id);
        s.ended.cancel();
        tracing::info!(stream = %s.stream.id(), session = %id, peer = %s.peer, reason = why, "RTSP session ended");
    }
}

async fn accept_loop(shared: Arc<Shared>, listener: TcpListener) {
    let shutdown = shared.app.shutdown.clone();
    loop {
        let accepted = tokio::select! {
            () = shutdown.cancelled() => break,
            a = listener.accept() => a,
        };
        let (socket, peer) = match accepted {
            Ok(a) => a,
            Err(e) => {
                // EMFILE and the like: back off instead of spinning.
                tracing::warn!(error = %e, "RTSP accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let Ok(permit) = shared.connections.clone().try_acquire_owned() else {
            tracing::warn!(peer = %peer, limit = MAX_CONNECTIONS, "RTSP connection refused: too many");
            continue;
        };
        let _ = socket.set_nodelay(true);
        let shared = shared.clone();
        tokio::spawn(async move {
            run_connection(shared, socket, peer).await;
            drop(permit);
        });
    }
    let ids: Vec<String> = lock(&shared.sessions).keys().cloned().collect();
    for id in ids {
        shared.remove_session(&id, "shutdown");
    }
}

/// Reads what clients send to the shared UDP ports: RTCP receiver reports
/// (and FFmpeg's hole-punching packets on the RTP port) keep sessions alive.
async fn udp_reader(shared: Arc<Shared>, socket: Arc<UdpSocket>) {
    let mut buf = vec![0u8; 2048];
    let shutdown = shared.app.shutdown.clone();
    loop {
        let r = tokio::select! {
            () = shutdown.cancelled() => return,
            r = socket.recv_from(&mut buf) => r,
        };
        match r {
            Ok((_, from)) => {
                let id = lock(&shared.udp_peers).get(&from).cloned();
                if let Some(s) = id.and_then(|id| shared.session(&id)) {
                    lock(&s.core).touch(now());
                }
            }
            // ICMP port unreachable from a client that went away, etc.
            Err(e) => tracing::debug!(error = %e, "RTSP UDP receive"),
        }
    }
}

/// Where a TCP client's bytes go: its connection's queue.
#[derive(Clone)]
struct ConnOut {
    tx: mpsc::Sender<Bytes>,
    closed: CancellationToken,
}

struct Session {
    id: String,
    stream: Arc<Stream>,
    tracks: Vec<Arc<TrackInfo>>,
    peer: SocketAddr,
    core: Mutex<SessionCore>,
    /// The connection interleaved packets go to (TCP sessions).
    tcp_out: Mutex<Option<ConnOut>>,
    /// Cancels the running play task (PAUSE).
    play: Mutex<Option<CancellationToken>>,
    ended: CancellationToken,
    _viewer: ViewerGuard,
}

/// A stream described on this connection, kept for its SETUP.
struct Described {
    stream: Arc<Stream>,
    tracks: Vec<Arc<TrackInfo>>,
    /// The viewer DESCRIBE added; the first session takes it over so one
    /// client counts as one viewer.
    viewer: Option<ViewerGuard>,
}

struct Conn {
    shared: Arc<Shared>,
    peer: SocketAddr,
    local: SocketAddr,
    out: ConnOut,
    authed: bool,
    /// The stream a signed URL let this connection watch.
    signed_for: Option<String>,
    described: Option<Described>,
    /// Sessions set up on this connection.
    sessions: Vec<String>,
}

async fn run_connection(shared: Arc<Shared>, socket: TcpStream, peer: SocketAddr) {
    let local = socket
        .local_addr()
        .unwrap_or_else(|_| SocketAddr::from(([0, 0, 0, 0], 0)));
    let (mut rd, wr) = socket.into_split();
    let (tx, rx) = mpsc::channel(TCP_QUEUE);
    let closed = CancellationToken::new();
    tokio::spawn(writer(wr, rx, closed.clone(), peer));
    let shutdown = shared.app.shutdown.clone();
    let idle = shared.config.session_timeout;
    let mut conn = Conn {
        shared,
        peer,
        local,
        out: ConnOut {
            tx,
            closed: closed.clone(),
        },
        authed: false,
        signed_for: None,
        described: None,
        sessions: Vec::new(),
    };
    tracing::debug!(peer = %peer, "RTSP connection");
    let mut parser = RequestParser::new();
    let mut buf = vec![0u8; 16 * 1024];
    'conn: loop {
        loop {
            match parser.poll() {
                Ok(Some(Event::Request(req))) => {
                    let resp = conn.handle(&req).await;
                    if !conn.send(resp.encode(req.cseq())).await {
                        break 'conn;
                    }
                }
                Ok(Some(Event::Interleaved { channel, .. })) => conn.on_interleaved(channel),
                Ok(None) => break,
                Err(e) => {
                    tracing::warn!(peer = %peer, error = %e, "bad RTSP request; closing");
                    conn.send(Response::new(e.status()).encode(None)).await;
                    break 'conn;
                }
            }
        }
        let n = buf.len().min(parser.free_space());
        let read = tokio::select! {
            () = closed.cancelled() => break,
            () = shutdown.cancelled() => break,
            r = tokio::time::timeout(idle, rd.read(&mut buf[..n])) => r,
        };
        match read {
            Ok(Ok(0)) | Ok(Err(_)) => break,
            Err(_) => {
                tracing::info!(peer = %peer, "RTSP connection idle; closing");
                break;
            }
            Ok(Ok(n)) => {
                if let Err(e) = parser.push(&buf[..n]) {
                    tracing::warn!(peer = %peer, error = %e, "bad RTSP request; closing");
                    conn.send(Response::new(e.status()).encode(None)).await;
                    break;
                }
            }
        }
    }
    // Interleaved sessions die with their connection; UDP ones live on
    // until TEARDOWN or their timeout (RFC 2326 §3: sessions are not tied
    // to connections).
    for id in std::mem::take(&mut conn.sessions) {
        if conn
            .shared
            .session(&id)
            .is_some_and(|s| lock(&s.core).is_tcp())
        {
            conn.shared.remove_session(&id, "connection closed");
        }
    }
    closed.cancel();
    tracing::debug!(peer = %peer, "RTSP connection closed");
}

/// Drains a connection's queue to its socket; a client that stops reading
/// for [`WRITE_TIMEOUT`] is dropped.
async fn writer(
    wr: OwnedWriteHalf,
    mut rx: mpsc::Receiver<Bytes>,
    closed: CancellationToken,
    peer: SocketAddr,
) {
    let mut w = BufWriter::with_capacity(64 * 1024, wr);
    loop {
        let first = tokio::select! {
            () = closed.cancelled() => break,
            b = rx.recv() => b,
        };
        let Some(first) = first else { break };
        let write = async {
            w.write_all(&first).await?;
            // Whatever else is queued goes out in the same flush.
            for _ in 0..256 {
                match rx.try_recv() {
                    Ok(b) => w.write_all(&b).await?,
                    Err(_) => break,
                }
            }
            w.flush().await
        };
        match tokio::time::timeout(WRITE_TIMEOUT, write).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                tracing::debug!(peer = %peer, error = %e, "RTSP write failed");
                break;
            }
            Err(_) => {
                tracing::warn!(peer = %peer, "RTSP client stopped reading; dropping it");
                break;
            }
        }
    }
    closed.cancel();
    let _ = w.shutdown().await;
}

fn start_error(stream: &str, e: &StartError) -> Response {
    tracing::warn!(stream = %stream, error = %e, "RTSP viewer could not start");
    Response::new(503).body("text/plain", e.to_string())
}

impl Conn {
    async fn send(&self, b: Bytes) -> bool {
        matches!(
            tokio::time::timeout(WRITE_TIMEOUT, self.out.tx.send(b)).await,
            Ok(Ok(()))
        )
    }

    /// RTCP from an interleaved client keeps its session alive.
    fn on_interleaved(&self, channel: u8) {
        for id in &self.sessions {
            if let Some(s) = self.shared.session(id) {
                let mut core = lock(&s.core);
                let ours = core.tracks().values().any(|t| {
                    matches!(t.transport, Transport::Tcp { rtp_channel, rtcp_channel }
                        if rtcp_channel == channel || rtp_channel == channel)
                });
                if ours {
                    core.touch(now());
                }
            }
        }
    }

    async fn handle(&mut self, req: &Request) -> Response {
        let target = message::parse_target(&req.uri);
        let session = req.session().and_then(|id| self.shared.session(id));
        if let Some(s) = &session {
            lock(&s.core).touch(now());
        }
        if req.method != "OPTIONS"
            && let Err(r) = self
                .authorize(req, target.as_ref().ok(), session.is_some())
                .await
        {
            return r;
        }
        let resp = match req.method.as_str() {
            "OPTIONS" => Ok(Response::new(200).header("Public", PUBLIC)),
            "DESCRIBE" => self.describe(req, target).await,
            "SETUP" => self.setup(req, target, session).await,
            "PLAY" => self.play(req, target, session).await,
            "PAUSE" => self.pause(session),
            "TEARDOWN" => match session {
                Some(s) => {
                    self.shared.remove_session(&s.id, "TEARDOWN");
                    Ok(Response::new(200))
                }
                None => Err(Response::new(454)),
            },
            "GET_PARAMETER" | "SET_PARAMETER" => match (req.session(), session) {
                (Some(_), None) => Err(Response::new(454)),
                (_, Some(s)) => Ok(self.with_session(Response::new(200), &s)),
                (None, None) => Ok(Response::new(200)),
            },
            "ANNOUNCE" | "RECORD" => Err(Response::new(405).header("Allow", PUBLIC)),
            _ => Err(Response::new(501).header("Public", PUBLIC)),
        };
        resp.unwrap_or_else(|r| r)
    }

    fn with_session(&self, r: Response, s: &Session) -> Response {
        r.header(
            "Session",
            format!(
                "{};timeout={}",
                s.id,
                self.shared.config.session_timeout.as_secs()
            ),
        )
    }

    async fn authorize(
        &mut self,
        req: &Request,
        target: Option<&Target>,
        known_session: bool,
    ) -> Result<(), Response> {
        // A session id is 64 random bits handed out only after
        // authentication: knowing one is as good as a credential.
        let signed = self.shared.app.config.viewer_signed_ttl.is_some();
        if (!self.shared.app.config.viewer_require_token && !signed) || self.authed || known_session
        {
            return Ok(());
        }
        // A signed URL (from the play or streams API) is good for its
        // stream; SETUP and PLAY name the stream without the query, so the
        // connection remembers it.
        if signed && let Some(t) = target {
            if self.signed_for.as_deref() == Some(t.stream.as_str()) {
                return Ok(());
            }
            let key = self.shared.app.viewer_key();
            if crate::api::viewer_signature_ok(key, &t.stream, t.query.as_deref()) {
                self.signed_for = Some(t.stream.clone());
                return Ok(());
            }
        }
        let ip = self.peer.ip();
        let schemes = self.shared.config.auth_schemes.clone();
        if lock(&self.shared.auth).blocked(ip, now()) {
            tracing::warn!(peer = %self.peer, "RTSP request refused: too many failed logins");
            return Err(Response::new(403));
        }
        let creds = auth::credentials(
            req.header("Authorization"),
            target.and_then(|t| t.token.as_deref()),
            &schemes,
        );
        let store = self.shared.app.store.clone();
        let internal = |e: crate::store::StoreError| {
            tracing::error!(error = %e, "RTSP token lookup failed");
            Response::new(500)
        };
        // (count as a failure, stale nonce, why)
        let outcome: Result<(&str, i64), (bool, bool, String)> = match creds {
            Credentials::None => Err((false, false, "no credentials".into())),
            Credentials::Token { token, scheme } => {
                match store
                    .call(move |c| db::verify_token(c, &token))
                    .await
                    .map_err(internal)?
                {
                    Some(info) => Ok((scheme, info.id)),
                    None => Err((true, false, format!("{scheme}: unknown or revoked token"))),
                }
            }
            Credentials::Digest(d) => {
                let check = lock(&self.shared.auth).check_nonce(&d, now());
                match check {
                    NonceCheck::Stale => Err((false, true, "stale nonce".into())),
                    NonceCheck::Replay => Err((true, false, "replayed nonce".into())),
                    NonceCheck::Fresh => {
                        let user = d.username.clone();
                        let candidates = store
                            .call(move |c| db::token_digest_candidates(c, &user))
                            .await
                            .map_err(internal)?;
                        let found = candidates
                            .into_iter()
                            .find(|(_, ha1)| d.verify(&req.method, ha1).unwrap_or(false));
                        match found {
                            Some((id, _)) => {
                                store
                                    .call(move |c| db::touch_token(c, id))
                                    .await
                                    .map_err(internal)?;
                                Ok(("digest", id))
                            }
                            None => Err((
                                true,
                                false,
                                format!("digest: wrong answer for user {:?}", d.username),
                            )),
                        }
                    }
                }
            }
            Credentials::Invalid(why) => Err((true, false, why)),
        };
        let mut guard = lock(&self.shared.auth);
        match outcome {
            Ok((scheme, token_id)) => {
                guard.succeeded(ip);
                self.authed = true;
                tracing::info!(peer = %self.peer, scheme, token_id, "RTSP viewer authenticated");
                Ok(())
            }
            Err((count, stale, why)) => {
                if count {
                    tracing::warn!(peer = %self.peer, uri = %req.uri, reason = %why, "RTSP authentication failed");
                    if guard.failed(ip, now()) {
                        tracing::warn!(peer = %self.peer, "too many failed RTSP logins; address blocked for a while");
                    }
                }
                let mut r = Response::new(401);
                for c in guard.challenge(now(), stale, &schemes) {
                    r = r.header("WWW-Authenticate", c);
                }
                Err(r)
            }
        }
    }

    /// Finds (or makes) the stream, counts a viewer, waits for its first
    /// keyframe and its tracks.
    async fn prepare(&self, id: &str) -> Result<Described, Response> {
        let app = &self.shared.app;
        let stream = match app.find_stream(id).await {
            Ok(Some(s)) => s,
            Ok(None) => return Err(Response::new(404)),
            Err(e) => {
                tracing::error!(stream = %id, error = %e, "RTSP stream lookup failed");
                return Err(Response::new(500));
            }
        };
        let viewer = stream.add_output_viewer(Output::Rtsp);
        let mut rx = stream.subscribe();
        let timeout = app.start_timeout();
        wait_for_media(&stream, &mut rx, timeout)
            .await
            .map_err(|e| start_error(id, &e))?;
        let extra = tokio::time::sleep(TRACKS_WAIT.min(timeout));
        tokio::pin!(extra);
        loop {
            let tracks = stream.tracks();
            let (want_video, want_audio) = stream.expected_tracks();
            let has = |v: bool| tracks.iter().any(|t| t.is_video() == v);
            if (has(true) || !want_video) && (has(false) || !want_audio) {
                break;
            }
            tokio::select! {
                r = rx.recv() => if r.is_err() { break },
                () = &mut extra => break,
            }
        }
        let tracks = stream.tracks();
        if tracks.is_empty() {
            return Err(Response::new(503).body("text/plain", "no tracks"));
        }
        Ok(Described {
            stream,
            tracks,
            viewer: Some(viewer),
        })
    }

    async fn describe(
        &mut self,
        req: &Request,
        target: Result<Target, message::TargetError>,
    ) -> Result<Response, Response> {
        let target = target.map_err(|_| Response::new(404))?;
        if req.header("Accept").is_some_and(|a| {
            !a.to_ascii_lowercase().contains("application/sdp") && !a.contains("*/*")
        }) {
            return Err(Response::new(406));
        }
        let d = self.prepare(&target.stream).await?;
        let version = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let sdp = sdp::describe(&target.stream, version, self.local.ip(), &d.tracks).map_err(|e| {
            tracing::warn!(stream = %target.stream, error = %e, "RTSP: stream cannot be described");
            Response::new(503).body("text/plain", e.to_string())
        })?;
        tracing::info!(stream = %target.stream, peer = %self.peer, tracks = d.tracks.len(), "RTSP DESCRIBE");
        self.described = Some(d);
        Ok(Response::new(200)
            .header("Content-Base", target.base)
            .body("application/sdp", sdp))
    }

    async fn setup(
        &mut self,
        req: &Request,
        target: Result<Target, message::TargetError>,
        session: Option<Arc<Session>>,
    ) -> Result<Response, Response> {
        let target = target.map_err(|_| Response::new(404))?;
        if req.session().is_some() && session.is_none() {
            return Err(Response::new(454));
        }
        let request = session::parse_transport(req.header("Transport")).map_err(|e| {
            tracing::info!(peer = %self.peer, error = %e, "RTSP SETUP transport refused");
            Response::new(461)
        })?;
        let session = match session {
            Some(s) => {
                if s.stream.id() != target.stream {
                    return Err(Response::new(459));
                }
                s
            }
            None => self.new_session(&target.stream).await?,
        };
        let track = match target.track {
            Some(t) => t,
            None if session.tracks.len() == 1 => 0,
            None => return Err(Response::new(459)),
        };
        let transport = match request {
            TransportRequest::Tcp { channels } => {
                let (rtp_channel, rtcp_channel) =
                    channels.unwrap_or_else(|| lock(&session.core).free_channels());
                Transport::Tcp {
                    rtp_channel,
                    rtcp_channel,
                }
            }
            TransportRequest::Udp {
                client_rtp,
                client_rtcp,
            } => Transport::Udp {
                client_rtp,
                client_rtcp,
            },
        };
        let ssrc = random_u32();
        lock(&session.core)
            .setup(track, transport, ssrc, now())
            .map_err(|e| {
                tracing::info!(session = %session.id, error = %e, "RTSP SETUP refused");
                Response::new(e.status())
            })?;
        match transport {
            Transport::Tcp { .. } => {
                lock(&session.tcp_out).get_or_insert_with(|| self.out.clone());
            }
            Transport::Udp {
                client_rtp,
                client_rtcp,
            } => {
                let ip = self.peer.ip();
                let mut peers = lock(&self.shared.udp_peers);
                peers.insert(SocketAddr::new(ip, client_rtp), session.id.clone());
                peers.insert(SocketAddr::new(ip, client_rtcp), session.id.clone());
            }
        }
        tracing::info!(stream = %target.stream, session = %session.id, peer = %self.peer, track, transport = ?transport, "RTSP SETUP");
        Ok(self.with_session(
            Response::new(200).header("Transport", transport.header(self.shared.udp_ports, ssrc)),
            &session,
        ))
    }

    async fn new_session(&mut self, stream_id: &str) -> Result<Arc<Session>, Response> {
        if lock(&self.shared.sessions).len() >= MAX_SESSIONS {
            tracing::warn!(limit = MAX_SESSIONS, "RTSP session refused: too many");
            return Err(Response::new(503));
        }
        let described = match self.described.take() {
            Some(d) if d.stream.id() == stream_id && !d.stream.is_closed() => d,
            _ => self.prepare(stream_id).await?,
        };
        let mut described = described;
        let viewer = described
            .viewer
            .take()
            .unwrap_or_else(|| described.stream.add_output_viewer(Output::Rtsp));
        let id = crate::util::random_hex(8)
            .unwrap_or_else(|_| format!("{:08x}{:08x}", random_u32(), random_u32()));
        let session = Arc::new(Session {
            id: id.clone(),
            stream: described.stream.clone(),
            tracks: described.tracks.clone(),
            peer: self.peer,
            core: Mutex::new(SessionCore::new(
                described.tracks.len(),
                self.shared.config.session_timeout,
                now(),
            )),
            tcp_out: Mutex::new(None),
            play: Mutex::new(None),
            ended: CancellationToken::new(),
            _viewer: viewer,
        });
        // Keep the description for further SETUPs of this stream.
        self.described = Some(described);
        lock(&self.shared.sessions).insert(id.clone(), session.clone());
        self.sessions.push(id);
        tokio::spawn(watchdog(self.shared.clone(), session.clone()));
        Ok(session)
    }

    async fn play(
        &mut self,
        req: &Request,
        target: Result<Target, message::TargetError>,
        session: Option<Arc<Session>>,
    ) -> Result<Response, Response> {
        let session = session.ok_or_else(|| Response::new(454))?;
        let started = lock(&session.core)
            .play(now())
            .map_err(|e| Response::new(e.status()))?;
        let base = match target {
            Ok(t) => t.base,
            Err(_) => format!("rtsp://{}/live/{}/", self.local, session.stream.id()),
        };
        let mut resp = Response::new(200).header("Range", "npt=now-");
        if started == Play::Start {
            match start_play(&self.shared, &session, &base).await {
                Ok(rtp_info) => resp = resp.header("RTP-Info", rtp_info),
                Err(e) => {
                    // Back to Ready: the client may try PLAY again.
                    let _ = lock(&session.core).pause(now());
                    return Err(start_error(session.stream.id(), &e));
                }
            }
            tracing::info!(stream = %session.stream.id(), session = %session.id, peer = %self.peer, user_agent = req.header("User-Agent").unwrap_or(""), "RTSP PLAY");
        }
        Ok(self.with_session(resp, &session))
    }

    fn pause(&mut self, session: Option<Arc<Session>>) -> Result<Response, Response> {
        let session = session.ok_or_else(|| Response::new(454))?;
        let stop = lock(&session.core)
            .pause(now())
            .map_err(|e| Response::new(e.status()))?;
        if stop && let Some(c) = lock(&session.play).take() {
            c.cancel();
        }
        Ok(self.with_session(Response::new(200), &session))
    }
}

/// Ends a session nobody kept alive (RFC 2326 §12.37).
async fn watchdog(shared: Arc<Shared>, session: Arc<Session>) {
    loop {
        let deadline = lock(&session.core).deadline();
        tokio::select! {
            () = session.ended.cancelled() => return,
            () = tokio::time::sleep_until(tokio::time::Instant::from_std(deadline)) => {
                if lock(&session.core).expired(now()) {
                    shared.remove_session(&session.id, "timeout");
                    return;
                }
            }
        }
    }
}

/// Where one track's packets go.
#[derive(Clone)]
enum Dest {
    Tcp(ConnOut),
    Udp { rtp: SocketAddr, rtcp: SocketAddr },
}

/// Subscribes, waits for the first frame, builds the packetizers and starts
/// the play task; returns the RTP-Info header (RFC 2326 §12.33): the first
/// sequence number and the RTP time of the play start on each track.
async fn start_play(
    shared: &Arc<Shared>,
    session: &Arc<Session>,
    base: &str,
) -> Result<String, StartError> {
    let stream = session.stream.clone();
    let mut rx = stream.subscribe();
    let first = wait_for_media(&stream, &mut rx, shared.app.start_timeout()).await?;
    let start_ms = first.pts_ms();
    let setup = lock(&session.core).tracks().clone();
    let tcp = lock(&session.tcp_out).clone();
    let mut writers: Vec<Option<(TrackPacketizer, Dest)>> = vec![None; session.tracks.len()];
    let mut info = Vec::new();
    for (&i, t) in &setup {
        let Some(track) = session.tracks.get(i) else {
            continue;
        };
        let (channel, dest) = match (t.transport, &tcp) {
            (Transport::Tcp { rtp_channel, .. }, Some(out)) => {
                (Some(rtp_channel), Dest::Tcp(out.clone()))
            }
            (
                Transport::Udp {
                    client_rtp,
                    client_rtcp,
                },
                _,
            ) => (
                None,
                Dest::Udp {
                    rtp: SocketAddr::new(session.peer.ip(), client_rtp),
                    rtcp: SocketAddr::new(session.peer.ip(), client_rtcp),
                },
            ),
            (Transport::Tcp { .. }, None) => continue,
        };
        let w = TrackPacketizer::new(
            track,
            sdp::payload_type(track, i),
            t.ssrc,
            random_u32() as u16,
            random_u32(),
            channel,
        );
        let rtptime = w.rtp_time(from_ms(start_ms, w.clock_rate()));
        info.push(format!(
            "url={base}trackID={i};seq={};rtptime={rtptime}",
            w.next_seq()
        ));
        writers[i] = Some((w, dest));
    }
    let cancel = CancellationToken::new();
    if let Some(old) = lock(&session.play).replace(cancel.clone()) {
        old.cancel();
    }
    tokio::spawn(play_task(
        shared.clone(),
        session.clone(),
        rx,
        first,
        writers,
        cancel,
        (SystemTime::now(), start_ms),
    ));
    Ok(info.join(","))
}

/// Sends a session's media until PAUSE, TEARDOWN, timeout, the stream's end
/// or a client too slow to keep up.
async fn play_task(
    shared: Arc<Shared>,
    session: Arc<Session>,
    mut rx: crate::media::FanoutReceiver<Arc<Frame>>,
    first: Arc<Frame>,
    mut writers: Vec<Option<(TrackPacketizer, Dest)>>,
    cancel: CancellationToken,
    (wall0, start_ms): (SystemTime, i64),
) {
    let stream = session.stream.clone();
    let mut pending = Some(first);
    let mut sr = tokio::time::interval_at(
        tokio::time::Instant::now() + Duration::from_secs(1),
        SR_INTERVAL,
    );
    let mut packets = Vec::new();
    let cname = format!("camgate@{}", shared.app.config.rtsp_server.listen.ip());
    // Every track's RTP clock maps to wall time through the same origin.
    let wall_of = |ticks: i64, rate: u32| {
        let ms = crate::media::frame::to_ms(ticks, rate) - start_ms;
        if ms >= 0 {
            wall0 + Duration::from_millis(ms as u64)
        } else {
            wall0 - Duration::from_millis(ms.unsigned_abs())
        }
    };
    let end = |why: &str| shared.remove_session(&session.id, why);
    loop {
        let frame = match pending.take() {
            Some(f) => f,
            None => tokio::select! {
                biased;
                () = cancel.cancelled() => return,
                () = session.ended.cancelled() => return,
                _ = sr.tick() => {
                    for (w, dest) in writers.iter().flatten() {
                        let Some(report) = w.sender_report(wall_of, &cname) else { continue };
                        match dest {
                            Dest::Udp { rtcp, .. } => { let _ = shared.rtcp.try_send_to(&report, *rtcp); }
                            Dest::Tcp(out) => { let _ = out.tx.try_send(report); }
                        }
                    }
                    continue;
                }
                r = rx.recv() => match r {
                    Ok(f) => f,
                    Err(FanoutError::Closed) => return end("stream ended"),
                    Err(e @ FanoutError::TooSlow { .. }) => {
                        tracing::warn!(stream = %stream.id(), session = %session.id, error = %e, "RTSP session cannot keep up");
                        return end("too slow");
                    }
                },
            },
        };
        let Some(index) = session
            .tracks
            .iter()
            .position(|t| t.is_video() == frame.is_video())
        else {
            continue;
        };
        let Some((w, dest)) = writers.get_mut(index).and_then(Option::as_mut) else {
            continue; // track not set up
        };
        packets.clear();
        if let Err(e) = w.push(&frame, &mut packets) {
            if matches!(e, rtp::PacketizeError::Codec { .. }) {
                tracing::warn!(stream = %stream.id(), session = %session.id, error = %e, "stream changed codec; the client must reconnect");
                return end("codec changed");
            }
            tracing::debug!(stream = %stream.id(), error = %e, "frame not sent");
            continue;
        }
        for (k, pkt) in packets.drain(..).enumerate() {
            stream.count_out(Output::Rtsp, pkt.len());
            match dest {
                Dest::Udp { rtp, .. } => {
                    // A full socket buffer drops the packet: UDP semantics.
                    let _ = shared.rtp.try_send_to(&pkt, *rtp);
                }
                Dest::Tcp(out) => match out.tx.try_send(pkt) {
                    Ok(()) => {}
                    Err(mpsc::error::TrySendError::Full(_)) => {
                        tracing::warn!(stream = %stream.id(), session = %session.id, peer = %session.peer, "RTSP TCP client cannot keep up; dropping it");
                        out.closed.cancel();
                        return end("TCP client too slow");
                    }
                    Err(mpsc::error::TrySendError::Closed(_)) => return end("connection closed"),
                },
            }
            if k == 0
                && frame.is_video()
                && let Some(received) = frame.received
            {
                stream.record_latency(Output::Rtsp, received);
            }
        }
    }
}

/// Fuzz entry point: bytes as a client's side of a connection, through the
/// parser, URL, transport and credential readers, the session state
/// machine, and the response writer. Never panics.
pub fn fuzz_request(data: &[u8]) {
    let mut parser = RequestParser::new();
    let t0 = Instant::now();
    let mut core = SessionCore::new(2, Duration::from_secs(60), t0);
    let mut guard = AuthGuard::new(AuthLimits::default(), Box::new(|| "n".to_owned()));
    let schemes = [AuthScheme::Digest, AuthScheme::Basic];
    // Feed in uneven chunks so partial messages are exercised.
    let mut rest = data;
    let mut step = 0u64;
    while !rest.is_empty() {
        let n = (usize::from(rest[0]) % 61 + 1)
            .min(rest.len())
            .min(parser.free_space().max(1));
        let (chunk, tail) = rest.split_at(n);
        rest = tail;
        if parser.push(chunk).is_err() {
            return;
        }
        loop {
            let ev = match parser.poll() {
                Ok(Some(ev)) => ev,
                Ok(None) => break,
                Err(e) => {
                    let _ = Response::new(e.status()).encode(None);
                    return;
                }
            };
            let Event::Request(req) = ev else { continue };
            step += 1;
            let now = t0 + Duration::from_millis(step * 700);
            let target = message::parse_target(&req.uri);
            let creds = auth::credentials(
                req.header("Authorization"),
                target.as_ref().ok().and_then(|t| t.token.as_deref()),
                &schemes,
            );
            if let Credentials::Digest(d) = &creds {
                let _ = guard.check_nonce(d, now);
                let _ = d.verify(&req.method, "0123456789abcdef0123456789abcdef");
            }
            let _ = guard.challenge(now, false, &schemes);
            let track = target.as_ref().ok().and_then(|t| t.track).unwrap_or(0);
            let mut resp = Response::new(200);
            match req.method.as_str() {
                "SETUP" => {
                    if let Ok(t) = session::parse_transport(req.header("Transport")) {
                        let transport = match t {
                            TransportRequest::Tcp { channels } => {
                                let (a, b) = channels.unwrap_or_else(|| core.free_channels());
                                Transport::Tcp {
                                    rtp_channel: a,
                                    rtcp_channel: b,
                                }
                            }
                            TransportRequest::Udp {
                                client_rtp,
                                client_rtcp,
                            } => Transport::Udp {
                                client_rtp,
                                client_rtcp,
                            },
                        };
                        if let Err(e) = core.setup(track, transport, 1, now) {
                            resp = Response::new(e.status());
                        } else {
                            resp = resp.header("Transport", transport.header((8000, 8001), 1));
                        }
                    }
                }
                "PLAY" => {
                    let _ = core.play(now);
                }
                "PAUSE" => {
                    let _ = core.pause(now);
                }
                _ => core.touch(now),
            }
            let _ = core.expired(now);
            let wire = resp.encode(req.cseq());
            // What we write must parse as one response head (no injected lines).
            let text = String::from_utf8_lossy(&wire);
            assert_eq!(
                text.matches("\r\n\r\n").count(),
                1,
                "response head broken by client input: {text:?}"
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fuzz_entry_survives_random_and_crafted_input() {
        fuzz_request(b"");
        fuzz_request(b"\x05SETUP rtsp://h/live/a/trackID=0 RTSP/1.0\r\nCSeq: 1\r\nTransport: RTP/AVP/TCP;interleaved=0-1\r\n\r\nPLAY rtsp://h/live/a RTSP/1.0\r\nCSeq: 2\r\nAuthorization: Digest username=\"x\", realm=\"camgate\", nonce=\"n\", uri=\"u\", response=\"r\", qop=auth, nc=1, cnonce=\"c\"\r\n\r\n$\x01\x00\x02ab");
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        for len in 0..400 {
            let data: Vec<u8> = (0..len * 3)
                .map(|_| {
                    seed ^= seed << 13;
                    seed ^= seed >> 7;
                    seed ^= seed << 17;
                    b"SETUP PLAY rtsp://h/live/x/trackID=1 RTSP/1.0\r\n:;=-,$\x00"
                        [(seed % 52) as usize]
                })
                .collect();
            fuzz_request(&data);
        }
    }
}
