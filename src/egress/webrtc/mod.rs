//! WebRTC output (WHEP playback), built on str0m (sans-IO WebRTC).
//!
//! - [`offer`]: offer → answer, choosing pass-through codecs (sans IO).
//! - [`media`]: frames → Annex B + RTP time, keyframe-request replay (sans IO).
//! - [`net`]: the one shared UDP port, host candidates and the dispatcher.
//! - this module: the session registry and each session's task, which
//!   drives its `Rtc` (poll_output / handle_input with time) and writes the
//!   stream's frames once DTLS is up.
//!
//! Each session holds a [`ViewerGuard`], so the on-demand source runs while
//! somebody watches over WebRTC.

pub mod media;
pub mod net;
pub mod offer;

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use serde::Serialize;
use str0m::media::{Frequency, MediaKind, MediaTime, Mid};
use str0m::net::{Protocol, Receive};
use str0m::{Event, IceConnectionState, Input, Output, Rtc};
use tokio::net::UdpSocket;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use self::media::Stamper;
use self::net::{Datagram, Routes};
pub use self::offer::{ChosenCodecs, OfferError};
use crate::media::{FanoutError, Frame, Stream, TrackInfo, ViewerGuard};

/// `[webrtc]` settings.
#[derive(Clone, Debug)]
pub struct WebRtcConfig {
    pub enabled: bool,
    /// The one UDP port all sessions share.
    pub listen: SocketAddr,
    /// Addresses written as host candidates (NAT: the public address that
    /// forwards to `listen`); empty = the interface addresses.
    pub public_ips: Vec<IpAddr>,
    pub max_sessions: usize,
    /// A session that doesn't connect (ICE + DTLS) within this ends.
    pub connect_timeout: Duration,
}

impl Default for WebRtcConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            listen: SocketAddr::from(([0, 0, 0, 0], 8189)),
            public_ips: Vec::new(),
            max_sessions: 64,
            connect_timeout: Duration::from_secs(30),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum WhepError {
    #[error("WebRTC output is disabled ([webrtc] enabled = false)")]
    Disabled,
    #[error("{max} WebRTC sessions already running ([webrtc] max_sessions)")]
    TooManySessions { max: usize },
    #[error("stream {stream:?}: {source}")]
    Offer {
        stream: String,
        #[source]
        source: OfferError,
    },
    #[error("no WebRTC session {session:?} on stream {stream:?}")]
    NoSession { stream: String, session: String },
    #[error("If-Match {given:?} does not match the session's ETag")]
    PreconditionFailed { given: String },
    #[error("ICE restart (new ufrag {ufrag:?}) is not supported; start a new session")]
    IceRestart { ufrag: String },
    #[error("bad trickle-ice-sdpfrag: {0}")]
    BadFragment(String),
}

/// Where a session is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
#[schema(as = WebRtcSessionState)]
pub enum SessionState {
    /// Answer sent; waiting for ICE and DTLS.
    Connecting,
    /// Media flowing.
    Connected,
    Closed,
}

/// What the API shows about one session.
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
#[schema(as = WebRtcSessionInfo)]
pub struct SessionInfo {
    pub id: String,
    pub stream: String,
    /// The browser's ICE address once its first check arrived.
    pub peer: Option<String>,
    pub codecs: ChosenCodecs,
    pub state: SessionState,
    pub bytes_sent: u64,
    pub created: String,
    pub keyframe_replays: u64,
}

struct Shared {
    id: Arc<str>,
    stream: String,
    etag: String,
    remote_ufrag: Option<String>,
    codecs: ChosenCodecs,
    created: SystemTime,
    state: Mutex<SessionState>,
    peer: Mutex<Option<SocketAddr>>,
    bytes_sent: AtomicU64,
    replays: AtomicU64,
    cancel: CancellationToken,
    control: mpsc::Sender<str0m::Candidate>,
}

impl Shared {
    fn info(&self) -> SessionInfo {
        SessionInfo {
            id: self.id.to_string(),
            stream: self.stream.clone(),
            peer: lock(&self.peer).map(|p| p.to_string()),
            codecs: self.codecs.clone(),
            state: *lock(&self.state),
            bytes_sent: self.bytes_sent.load(Ordering::Relaxed),
            created: crate::util::rfc3339(self.created),
            keyframe_replays: self.replays.load(Ordering::Relaxed),
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // Every critical section is a single read or assignment.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// A session just created: what the WHEP answer needs.
pub struct Created {
    pub id: String,
    pub answer: String,
    pub etag: String,
    pub info: SessionInfo,
}

/// Every WebRTC session of the gateway.
pub struct WebRtcOutputs {
    config: WebRtcConfig,
    socket: Option<Arc<UdpSocket>>,
    local: Option<SocketAddr>,
    candidates: Vec<SocketAddr>,
    routes: Arc<Mutex<Routes>>,
    sessions: Arc<Mutex<HashMap<String, Arc<Shared>>>>,
    shutdown: CancellationToken,
}

impl WebRtcOutputs {
    /// Binds the shared UDP port and starts the dispatcher (when enabled).
    pub async fn start(
        config: WebRtcConfig,
        shutdown: CancellationToken,
    ) -> Result<Self, std::io::Error> {
        let mut me = Self {
            candidates: Vec::new(),
            socket: None,
            local: None,
            routes: Arc::default(),
            sessions: Arc::default(),
            shutdown,
            config,
        };
        if !me.config.enabled {
            tracing::info!("WebRTC output disabled");
            return Ok(me);
        }
        let socket = Arc::new(UdpSocket::bind(me.config.listen).await?);
        let local = socket.local_addr()?;
        me.candidates = net::host_candidates(local, &me.config.public_ips);
        if me.candidates.is_empty() {
            tracing::warn!(webrtc = %local, "no host candidate for WebRTC: set [webrtc] public_ips");
        }
        net::spawn_dispatcher(
            socket.clone(),
            me.routes.clone(),
            me.candidates.clone(),
            me.shutdown.clone(),
        );
        let candidates: Vec<String> = me.candidates.iter().map(ToString::to_string).collect();
        tracing::info!(webrtc = %local, candidates = ?candidates, "WebRTC listening");
        me.socket = Some(socket);
        me.local = Some(local);
        Ok(me)
    }

    /// The bound UDP address, when enabled.
    pub fn local_addr(&self) -> Option<SocketAddr> {
        self.local
    }

    /// Fails early (before the source is started) when no session can be added.
    pub fn check_capacity(&self) -> Result<(), WhepError> {
        if self.socket.is_none() {
            return Err(WhepError::Disabled);
        }
        let n = lock(&self.sessions).len();
        if n >= self.config.max_sessions {
            return Err(WhepError::TooManySessions {
                max: self.config.max_sessions,
            });
        }
        Ok(())
    }

    /// Answers `offer` and starts the session's task. `viewer` keeps the
    /// stream's source running for the session's lifetime.
    pub fn create(&self, viewer: ViewerGuard, offer: &[u8]) -> Result<Created, WhepError> {
        self.check_capacity()?;
        let Some(socket) = self.socket.clone() else {
            return Err(WhepError::Disabled);
        };
        let stream = viewer.stream().clone();
        let tracks = stream.tracks();
        let video = tracks.iter().find_map(|t| match t.as_ref() {
            TrackInfo::Video(v) => Some(v),
            TrackInfo::Audio(_) => None,
        });
        let audio = tracks.iter().find_map(|t| match t.as_ref() {
            TrackInfo::Audio(a) => Some(a),
            TrackInfo::Video(_) => None,
        });
        let answered = offer::answer_offer(offer, video, audio, &self.candidates, Instant::now())
            .map_err(|source| WhepError::Offer {
            stream: stream.id().to_owned(),
            source,
        })?;
        let id = crate::util::random_hex(12).unwrap_or_else(|_| answered.local_ufrag.clone());
        let etag = format!("\"{}\"", answered.local_ufrag);
        let (inbox_tx, inbox) = mpsc::channel(net::INBOX);
        let (control, control_rx) = mpsc::channel(64);
        let shared = Arc::new(Shared {
            id: Arc::from(id.as_str()),
            stream: stream.id().to_owned(),
            etag: etag.clone(),
            remote_ufrag: answered.remote_ufrag.clone(),
            codecs: answered.plan.codecs.clone(),
            created: SystemTime::now(),
            state: Mutex::new(SessionState::Connecting),
            peer: Mutex::new(None),
            bytes_sent: AtomicU64::new(0),
            replays: AtomicU64::new(0),
            cancel: self.shutdown.child_token(),
            control,
        });
        {
            let mut sessions = lock(&self.sessions);
            if sessions.len() >= self.config.max_sessions {
                return Err(WhepError::TooManySessions {
                    max: self.config.max_sessions,
                });
            }
            sessions.insert(id.clone(), shared.clone());
        }
        lock(&self.routes).add_session(shared.id.clone(), answered.local_ufrag.clone(), inbox_tx);
        for note in &answered.plan.codecs.notes {
            tracing::info!(stream = %stream.id(), session = %id, "{note}");
        }
        tracing::info!(
            stream = %stream.id(),
            session = %id,
            video = answered.plan.codecs.video.as_deref().unwrap_or("none"),
            audio = answered.plan.codecs.audio.as_deref().unwrap_or("none"),
            "WebRTC session created"
        );
        let task = SessionTask {
            rtc: answered.rtc,
            socket,
            inbox,
            control: control_rx,
            shared: shared.clone(),
            plan: answered.plan,
            stamper: Stamper::default(),
            video_mid: None,
            audio_mid: None,
            connected: false,
            replay_pending: false,
            viewer,
            connect_timeout: self.config.connect_timeout,
        };
        let routes = self.routes.clone();
        let sessions = self.sessions.clone();
        tokio::spawn(async move {
            let id = task.shared.id.clone();
            let stream = task.shared.stream.clone();
            let reason = task.run().await;
            lock(&routes).remove_session(&id);
            lock(&sessions).remove(&*id);
            tracing::info!(stream = %stream, session = %id, reason, "WebRTC session ended");
        });
        Ok(Created {
            id,
            answer: answered.answer,
            etag,
            info: shared.info(),
        })
    }

    fn find(&self, stream: &str, session: &str) -> Result<Arc<Shared>, WhepError> {
        lock(&self.sessions)
            .get(session)
            .filter(|s| s.stream == stream)
            .cloned()
            .ok_or_else(|| WhepError::NoSession {
                stream: stream.to_owned(),
                session: session.to_owned(),
            })
    }

    /// Ends a session (WHEP DELETE). Its viewer is released at once.
    pub fn delete(&self, stream: &str, session: &str) -> Result<(), WhepError> {
        let s = self.find(stream, session)?;
        // Out of the registry now, so viewer counts drop with the answer;
        // the task releases the viewer guard as it stops.
        lock(&self.sessions).remove(session);
        lock(&self.routes).remove_session(session);
        s.cancel.cancel();
        Ok(())
    }

    /// Adds the browser's trickled candidates (WHEP PATCH,
    /// `application/trickle-ice-sdpfrag`, RFC 8840). `if_match` is checked
    /// against the session's ETag (RFC 9725 §4.3.1, `*` matches any).
    pub fn add_candidates(
        &self,
        stream: &str,
        session: &str,
        if_match: Option<&str>,
        fragment: &str,
    ) -> Result<usize, WhepError> {
        let s = self.find(stream, session)?;
        if let Some(m) = if_match
            && m != "*"
            && m != s.etag
        {
            return Err(WhepError::PreconditionFailed {
                given: m.to_owned(),
            });
        }
        let (ufrag, candidates) = offer::parse_sdpfrag(fragment);
        if let (Some(u), Some(known)) = (ufrag, s.remote_ufrag.as_deref())
            && u != known
        {
            return Err(WhepError::IceRestart {
                ufrag: u.to_owned(),
            });
        }
        let mut added = 0;
        for c in candidates {
            let c = c.map_err(WhepError::BadFragment)?;
            // A full queue means a flood of candidates: the rest are dropped,
            // ICE-lite learns the browser's address from its checks anyway.
            if s.control.try_send(c).is_ok() {
                added += 1;
            }
        }
        Ok(added)
    }

    /// Streams with WebRTC sessions and their session counts.
    pub fn viewer_counts(&self) -> HashMap<String, usize> {
        let mut out = HashMap::new();
        for s in lock(&self.sessions).values() {
            *out.entry(s.stream.clone()).or_insert(0) += 1;
        }
        out
    }

    /// Every session, oldest first.
    pub fn sessions(&self) -> Vec<SessionInfo> {
        let mut v: Vec<SessionInfo> = lock(&self.sessions).values().map(|s| s.info()).collect();
        v.sort_by(|a, b| a.created.cmp(&b.created).then(a.id.cmp(&b.id)));
        v
    }
}

struct SessionTask {
    rtc: Rtc,
    socket: Arc<UdpSocket>,
    inbox: mpsc::Receiver<Datagram>,
    control: mpsc::Receiver<str0m::Candidate>,
    shared: Arc<Shared>,
    plan: offer::Plan,
    stamper: Stamper,
    video_mid: Option<Mid>,
    audio_mid: Option<Mid>,
    connected: bool,
    /// A keyframe request asked for a GOP replay.
    replay_pending: bool,
    viewer: ViewerGuard,
    connect_timeout: Duration,
}

impl SessionTask {
    fn stream(&self) -> &Arc<Stream> {
        self.viewer.stream()
    }

    /// Drives the session until it ends; returns why.
    async fn run(mut self) -> &'static str {
        let reason = self.drive().await;
        *lock(&self.shared.state) = SessionState::Closed;
        self.rtc.disconnect();
        // Flush what disconnecting produced (DTLS close_notify).
        while let Ok(Output::Transmit(t)) = self.rtc.poll_output() {
            let _ = self.socket.try_send_to(&t.contents, t.destination);
        }
        reason
    }

    async fn drive(&mut self) -> &'static str {
        let connect_deadline = tokio::time::Instant::now() + self.connect_timeout;
        // Frames flow only once connected: a fresh subscription then starts
        // at the GOP cache's keyframe (str0m drops media written earlier).
        let mut frames: Option<crate::media::FanoutReceiver<Arc<Frame>>> = None;
        let closed = self.stream().closed();
        loop {
            let deadline = match self.poll().await {
                Ok(d) => d,
                Err(reason) => return reason,
            };
            if self.connected && frames.is_none() {
                frames = Some(self.stream().subscribe());
            }
            if std::mem::take(&mut self.replay_pending) {
                // Replay the cached group (see `media`): a new subscription
                // starts at its keyframe.
                frames = Some(self.stream().subscribe());
            }
            let sleep = tokio::time::sleep_until(tokio::time::Instant::from_std(deadline));
            tokio::select! {
                () = self.shared.cancel.cancelled() => return "deleted or shutting down",
                () = closed.cancelled() => return "stream removed",
                () = tokio::time::sleep_until(connect_deadline), if !self.connected => {
                    return "ICE/DTLS did not connect in time";
                }
                d = self.inbox.recv() => {
                    let Some(d) = d else {
                        // DELETE drops the route (and so this inbox) first.
                        return if self.shared.cancel.is_cancelled() {
                            "deleted or shutting down"
                        } else {
                            "removed"
                        };
                    };
                    let now = Instant::now();
                    {
                        let mut peer = lock(&self.shared.peer);
                        if peer.is_none() {
                            tracing::debug!(stream = %self.shared.stream, session = %self.shared.id, peer = %d.from, "first ICE check");
                            *peer = Some(d.from);
                        }
                    }
                    let Ok(contents) = d.data.as_slice().try_into() else {
                        continue; // not STUN/DTLS/RTP: ignore
                    };
                    let input = Input::Receive(now, Receive {
                        proto: Protocol::Udp,
                        source: d.from,
                        destination: d.to,
                        contents,
                    });
                    if let Err(e) = self.rtc.handle_input(input) {
                        tracing::info!(stream = %self.shared.stream, session = %self.shared.id, error = %e, "WebRTC input error");
                        return "WebRTC error";
                    }
                }
                c = self.control.recv() => {
                    if let Some(c) = c {
                        self.rtc.add_remote_candidate(c);
                    }
                }
                f = recv_frame(&mut frames) => match f {
                    Ok(frame) => self.write_frame(&frame),
                    Err(FanoutError::Closed) => return "stream ended",
                    Err(e @ FanoutError::TooSlow { .. }) => {
                        tracing::warn!(stream = %self.shared.stream, session = %self.shared.id, error = %e, "WebRTC session too slow");
                        return "too slow";
                    }
                },
                () = sleep => {
                    if let Err(e) = self.rtc.handle_input(Input::Timeout(Instant::now())) {
                        tracing::info!(stream = %self.shared.stream, session = %self.shared.id, error = %e, "WebRTC timeout error");
                        return "WebRTC error";
                    }
                }
            }
        }
    }

    /// Runs `poll_output` until str0m wants time to pass; returns when.
    async fn poll(&mut self) -> Result<Instant, &'static str> {
        loop {
            if !self.rtc.is_alive() {
                return Err("peer closed (DTLS)");
            }
            match self.rtc.poll_output() {
                Ok(Output::Timeout(t)) => return Ok(t),
                Ok(Output::Transmit(t)) => {
                    self.shared
                        .bytes_sent
                        .fetch_add(t.contents.len() as u64, Ordering::Relaxed);
                    self.viewer
                        .stream()
                        .count_out(crate::media::Output::WebRtc, t.contents.len());
                    if let Err(e) = self.socket.send_to(&t.contents, t.destination).await {
                        tracing::debug!(session = %self.shared.id, peer = %t.destination, error = %e, "WebRTC send failed");
                    }
                }
                Ok(Output::Event(e)) => self.on_event(e)?,
                Err(e) => {
                    tracing::info!(stream = %self.shared.stream, session = %self.shared.id, error = %e, "WebRTC error");
                    return Err("WebRTC error");
                }
            }
        }
    }

    fn on_event(&mut self, e: Event) -> Result<(), &'static str> {
        match e {
            Event::Connected => {
                self.connected = true;
                *lock(&self.shared.state) = SessionState::Connected;
                tracing::info!(stream = %self.shared.stream, session = %self.shared.id, peer = ?*lock(&self.shared.peer), "WebRTC session connected");
            }
            Event::IceConnectionStateChange(IceConnectionState::Disconnected) => {
                return Err("ICE disconnected");
            }
            Event::MediaAdded(m) => match m.kind {
                MediaKind::Video if self.video_mid.is_none() => self.video_mid = Some(m.mid),
                MediaKind::Audio if self.audio_mid.is_none() => self.audio_mid = Some(m.mid),
                _ => {}
            },
            Event::KeyframeRequest(r)
                if Some(r.mid) == self.video_mid
                    && self.stamper.request_keyframe(Instant::now()) =>
            {
                self.replay_pending = true;
                self.shared
                    .replays
                    .store(self.stamper.replays(), Ordering::Relaxed);
                tracing::debug!(stream = %self.shared.stream, session = %self.shared.id, kind = ?r.kind, "keyframe request: replaying the cached GOP");
            }
            _ => {}
        }
        Ok(())
    }

    fn write_frame(&mut self, frame: &Frame) {
        let now = Instant::now();
        if frame.is_video() {
            let (Some(mid), Some((_, pt))) = (self.video_mid, self.plan.video) else {
                return;
            };
            let Some(out) = self.stamper.video(frame) else {
                return;
            };
            let Some(writer) = self.rtc.writer(mid) else {
                return;
            };
            let t = MediaTime::new(out.rtp_time, Frequency::NINETY_KHZ);
            if let Err(e) = writer.write(pt, now, t, out.data) {
                tracing::debug!(session = %self.shared.id, error = %e, "video frame not written");
                return;
            }
            if let (false, Some(received)) = (out.replayed, frame.received) {
                self.stream()
                    .record_latency(crate::media::Output::WebRtc, received);
            }
        } else {
            let (Some(mid), Some((_, pt))) = (self.audio_mid, self.plan.audio) else {
                return;
            };
            let Some(out) = self.stamper.audio(frame) else {
                return;
            };
            let Some(writer) = self.rtc.writer(mid) else {
                return;
            };
            let t = MediaTime::new(out.rtp_time, Frequency::EIGHT_KHZ);
            if let Err(e) = writer.write(pt, now, t, out.data.to_vec()) {
                tracing::debug!(session = %self.shared.id, error = %e, "audio frame not written");
            }
        }
    }
}

async fn recv_frame(
    frames: &mut Option<crate::media::FanoutReceiver<Arc<Frame>>>,
) -> Result<Arc<Frame>, FanoutError> {
    match frames {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
    }
}
