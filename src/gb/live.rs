//! Live GB28181 streams: `{deviceId}_{channelId}` in the hub, started by the
//! first viewer (one INVITE however many viewers arrive at once), stopped with
//! BYE when the last one has gone and the grace period passed.
//!
//! Per session: SSRC reserved and media route registered before the INVITE
//! (media may arrive right after the ACK), the answered SDP adopted (its SSRC,
//! or any SSRC when it answered none), then RTP → (UDP: reorder buffer | TCP:
//! RFC 4571 framer) → frame-boundary tracker → PS demuxer → publisher. A frame
//! leaves as soon as its last packet is in (trusted marker bit, else the next
//! timestamp), never waiting for the next frame.
//!
//! No media within the timeout after the 200, or media stopping for the
//! timeout mid-stream, ends the session with BYE and ends the stream (viewers
//! see the end; the next viewer INVITEs again). A BYE from the device ends it
//! the same way.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::Serialize;
use tokio_util::sync::CancellationToken;

use super::media::{MediaTransport, SessionKind};
use super::platform::{Dialog, InviteRequest};
use super::{GbError, Platform};
use crate::ingest::media_server::{MediaChunk, MediaServer};
use crate::ingest::ps::{PsConfig, PsDemuxer, PsEvent};
use crate::ingest::rtp::{
    FrameBoundary, ReorderBuffer, ReorderConfig, Rfc4571Config, Rfc4571Framer, RtpPacket,
};
use crate::media::{DemandPolicy, Hub, SourceState, Stream};

/// Live-session behaviour.
#[derive(Clone, Debug)]
pub struct LiveConfig {
    /// No media for this long (after the 200, or mid-stream) ends the session.
    pub media_timeout: Duration,
    /// Our media address in offers; else the local address routing to the
    /// device.
    pub media_ip: Option<IpAddr>,
    /// Port written in offers when it differs from the listening one (NAT
    /// port forwarding).
    pub public_port: Option<u16>,
    /// Check that RTP carries the expected SSRC (else any SSRC on the route).
    pub check_ssrc: bool,
    pub reorder: ReorderConfig,
}

impl Default for LiveConfig {
    fn default() -> Self {
        Self {
            media_timeout: Duration::from_secs(10),
            media_ip: None,
            public_port: None,
            check_ssrc: true,
            reorder: ReorderConfig::default(),
        }
    }
}

/// What the API shows about a GB28181 session.
#[derive(Clone, Debug, Default, Serialize, utoipa::ToSchema)]
#[schema(as = GbSessionInfo)]
pub struct SessionInfo {
    pub device_id: String,
    pub channel_id: String,
    pub transport: &'static str,
    /// The SSRC media carries (10 digits), once known.
    pub ssrc: Option<String>,
    pub call_id: Option<String>,
    pub packets: u64,
    pub lost: u64,
    pub reordered: u64,
    pub duplicates: u64,
    /// Lost / (received + lost), 0–1.
    pub loss_ratio: f64,
    pub ps_warnings: u64,
    /// RFC 4571 resynchronisations (TCP): damaged lengths skipped.
    pub resyncs: u64,
    pub invites: u64,
    /// Gateway-added latency of the last ≤ 1000 video frames: from reading a
    /// frame's last packet off the socket to publishing the frame (µs).
    pub added_latency_us_p50: Option<u64>,
    pub added_latency_us_p99: Option<u64>,
    #[serde(skip)]
    latencies: crate::util::LatencyWindow,
}

struct Runner {
    cancel: CancellationToken,
    info: Arc<Mutex<SessionInfo>>,
    /// Playback sessions: MANSRTSP commands for the dialog.
    control: Option<tokio::sync::mpsc::Sender<PlaybackControl>>,
}

/// What a GB28181 stream is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StreamKind {
    Live,
    /// A recording from `start` to `end` (Unix seconds), `s=Playback`.
    Playback {
        start: u64,
        end: u64,
    },
    /// The same, `s=Download` at `speed`× (`a=downloadspeed`).
    Download {
        start: u64,
        end: u64,
        speed: u32,
    },
}

/// How long a playback command may take: the session taking it and the
/// device answering the INFO.
pub const PLAYBACK_CONTROL_TIMEOUT: Duration = Duration::from_secs(10);

/// MANSRTSP commands for a playback session (GB/T 28181-2016 appendix B).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum PlaybackCmd {
    Pause,
    Resume,
    /// To this many seconds after the recording's start (`Range: npt=`).
    Seek(u64),
    /// Playback speed (`Scale:`), 0.25–8; timestamps are rescaled so
    /// players keep real time.
    Scale(f64),
}

impl PlaybackCmd {
    /// The MANSRTSP request for `cseq`.
    pub fn mansrtsp(self, cseq: u32) -> String {
        match self {
            PlaybackCmd::Pause => {
                format!("PAUSE RTSP/1.0\r\nCSeq: {cseq}\r\nPauseTime: now\r\n\r\n")
            }
            PlaybackCmd::Resume => {
                format!("PLAY RTSP/1.0\r\nCSeq: {cseq}\r\nRange: npt=now-\r\n\r\n")
            }
            PlaybackCmd::Seek(secs) => {
                format!("PLAY RTSP/1.0\r\nCSeq: {cseq}\r\nRange: npt={secs}-\r\n\r\n")
            }
            PlaybackCmd::Scale(x) => {
                format!("PLAY RTSP/1.0\r\nCSeq: {cseq}\r\nScale: {x}\r\n\r\n")
            }
        }
    }
}

pub struct PlaybackControl {
    pub cmd: PlaybackCmd,
    /// The device's SIP status for the INFO, or why it was not sent.
    pub reply: tokio::sync::oneshot::Sender<Result<u16, String>>,
}

/// Rescales a playback's timestamps so a recording sent at `scale`× keeps
/// real-time timestamps for players, and keeps them continuous across a
/// seek. Identity for live streams (scale 1, no seek).
#[derive(Debug)]
struct Retimer {
    scale: f64,
    /// Per track (video, audio): (input anchor, output anchor, last output).
    tracks: [Option<(i64, i64, i64)>; 2],
    /// Set by a seek: the next frame of each track starts a new anchor.
    reanchor: [bool; 2],
}

impl Default for Retimer {
    fn default() -> Self {
        Self {
            scale: 1.0,
            tracks: [None; 2],
            reanchor: [false; 2],
        }
    }
}

impl Retimer {
    fn set_scale(&mut self, scale: f64) {
        for t in self.tracks.iter_mut().flatten() {
            // The new speed starts where the old one stopped.
            let last_in = t.0 + ((t.2 - t.1) as f64 * self.scale) as i64;
            *t = (last_in, t.2, t.2);
        }
        self.scale = scale;
    }

    fn seeked(&mut self) {
        self.reanchor = [true; 2];
    }

    fn apply(&mut self, frame: &mut crate::media::Frame) {
        let i = usize::from(!frame.is_video());
        let step = i64::from(frame.track.timescale() / 25).max(1);
        let t = match (self.tracks[i], self.reanchor[i]) {
            (Some((_, _, last_out)), true) => (frame.dts, last_out + step, last_out),
            (Some(t), false) => t,
            (None, _) => (frame.dts, frame.dts, frame.dts),
        };
        self.reanchor[i] = false;
        let dts = t.1 + ((frame.dts - t.0) as f64 / self.scale).round() as i64;
        let delta = ((frame.pts - frame.dts) as f64 / self.scale).round() as i64;
        // Never backwards: a device that jumps back gets a small step.
        let dts = if dts <= t.2 && self.tracks[i].is_some() {
            t.2 + 1
        } else {
            dts
        };
        frame.dts = dts;
        frame.pts = dts + delta.max(0);
        self.tracks[i] = Some((t.0, t.1, dts));
    }
}

pub struct GbStreams {
    hub: Arc<Hub>,
    platform: Arc<Platform>,
    media: Arc<MediaServer>,
    config: LiveConfig,
    runners: Mutex<HashMap<String, Runner>>,
    grace: Box<dyn Fn() -> Duration + Send + Sync>,
    pub invites: AtomicU64,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// `{deviceId}_{channelId}` → (device, channel).
pub fn split_stream_id(id: &str) -> Option<(&str, &str)> {
    let (d, c) = id.split_once('_')?;
    (super::platform::valid_device_id(d) && super::platform::valid_device_id(c)).then_some((d, c))
}

pub fn stream_id(device_id: &str, channel_id: &str) -> String {
    format!("{device_id}_{channel_id}")
}

/// Why a live stream could not be made.
#[derive(Debug, thiserror::Error)]
pub enum LiveError {
    #[error("no channel {channel_id} on device {device_id}")]
    UnknownChannel {
        device_id: String,
        channel_id: String,
    },
    #[error(transparent)]
    Gb(#[from] GbError),
    #[error("stream {0} cannot be created: {1}")]
    Hub(String, String),
}

impl GbStreams {
    pub fn new(
        hub: Arc<Hub>,
        platform: Arc<Platform>,
        media: Arc<MediaServer>,
        config: LiveConfig,
        grace: Box<dyn Fn() -> Duration + Send + Sync>,
    ) -> Arc<Self> {
        Arc::new(Self {
            hub,
            platform,
            media,
            config,
            runners: Mutex::default(),
            grace,
            invites: AtomicU64::new(0),
        })
    }

    /// The stream of a channel, created (idle, on demand) if needed.
    pub async fn ensure(
        self: &Arc<Self>,
        device_id: &str,
        channel_id: &str,
        transport: MediaTransport,
    ) -> Result<Arc<Stream>, LiveError> {
        self.ensure_kind(device_id, channel_id, transport, StreamKind::Live)
            .await
    }

    /// A playback stream of a channel's recording (stream id
    /// `{device}_{channel}_{start}_{end}`), created (idle, on demand) if
    /// needed.
    pub async fn ensure_playback(
        self: &Arc<Self>,
        device_id: &str,
        channel_id: &str,
        transport: MediaTransport,
        start: u64,
        end: u64,
    ) -> Result<Arc<Stream>, LiveError> {
        self.ensure_kind(
            device_id,
            channel_id,
            transport,
            StreamKind::Playback { start, end },
        )
        .await
    }

    /// A download stream of a channel's recording (stream id
    /// `{device}_{channel}_{start}_{end}_download`), sent at `speed`×.
    pub async fn ensure_download(
        self: &Arc<Self>,
        device_id: &str,
        channel_id: &str,
        transport: MediaTransport,
        (start, end): (u64, u64),
        speed: u32,
    ) -> Result<Arc<Stream>, LiveError> {
        self.ensure_kind(
            device_id,
            channel_id,
            transport,
            StreamKind::Download { start, end, speed },
        )
        .await
    }

    /// Sends a MANSRTSP command to a playback stream's device.
    /// Sends a MANSRTSP command to playback stream `id` and waits for the
    /// device's answer (at most [`PLAYBACK_CONTROL_TIMEOUT`]).
    pub async fn control(&self, id: &str, cmd: PlaybackCmd) -> Result<u16, String> {
        let tx = lock(&self.runners)
            .get(id)
            .and_then(|r| r.control.clone())
            .ok_or_else(|| format!("no playback stream {id:?}"))?;
        let (reply, rx) = tokio::sync::oneshot::channel();
        // The session takes commands only while media flows (after the
        // INVITE's answer), and the INFO may go unanswered: never wait for
        // ever.
        let exchange = async {
            tx.send(PlaybackControl { cmd, reply })
                .await
                .map_err(|_| "the playback session has ended".to_owned())?;
            rx.await
                .map_err(|_| "the playback session has ended".to_owned())?
        };
        tokio::time::timeout(PLAYBACK_CONTROL_TIMEOUT, exchange)
            .await
            .map_err(|_| {
                format!(
                    "timed out: no answer to {cmd:?} within {} s (the session may not be playing yet)",
                    PLAYBACK_CONTROL_TIMEOUT.as_secs()
                )
            })?
    }

    async fn ensure_kind(
        self: &Arc<Self>,
        device_id: &str,
        channel_id: &str,
        transport: MediaTransport,
        kind: StreamKind,
    ) -> Result<Arc<Stream>, LiveError> {
        let id = match kind {
            StreamKind::Live => stream_id(device_id, channel_id),
            StreamKind::Playback { start, end } => {
                format!("{device_id}_{channel_id}_{start}_{end}")
            }
            StreamKind::Download { start, end, .. } => {
                format!("{device_id}_{channel_id}_{start}_{end}_download")
            }
        };
        if let Some(s) = self.hub.get(&id)
            && lock(&self.runners).contains_key(&id)
        {
            return Ok(s);
        }
        if !self.platform.has_channel(device_id, channel_id).await? {
            return Err(LiveError::UnknownChannel {
                device_id: device_id.to_owned(),
                channel_id: channel_id.to_owned(),
            });
        }
        let mut runners = lock(&self.runners);
        if let Some(s) = self.hub.get(&id)
            && runners.contains_key(&id)
        {
            return Ok(s);
        }
        let policy = DemandPolicy {
            always_on: false,
            grace: (self.grace)(),
        };
        let stream = match self.hub.create(&id, "gb28181", policy) {
            Ok(s) => s,
            Err(_) => {
                self.hub.remove(&id);
                self.hub
                    .create(&id, "gb28181", policy)
                    .map_err(|e| LiveError::Hub(id.clone(), e.to_string()))?
            }
        };
        let cancel = stream.closed().child_token();
        let info = Arc::new(Mutex::new(SessionInfo {
            device_id: device_id.to_owned(),
            channel_id: channel_id.to_owned(),
            transport: transport.as_str(),
            ..SessionInfo::default()
        }));
        let (control_tx, control_rx) = tokio::sync::mpsc::channel(8);
        runners.insert(
            id.clone(),
            Runner {
                cancel: cancel.clone(),
                info: info.clone(),
                control: (kind != StreamKind::Live).then_some(control_tx),
            },
        );
        drop(runners);
        tokio::spawn(self.clone().run(
            stream.clone(),
            Target {
                device_id: device_id.to_owned(),
                channel_id: channel_id.to_owned(),
                transport,
                kind,
            },
            cancel,
            info,
            control_rx,
        ));
        Ok(stream)
    }

    /// Stops a channel's stream now (BYE), whoever watches.
    pub fn stop(&self, id: &str) -> bool {
        let found = lock(&self.runners).remove(id);
        match found {
            Some(r) => {
                r.cancel.cancel();
                if let Some(s) = self.hub.remove(id) {
                    s.close();
                }
                true
            }
            None => false,
        }
    }

    pub fn session_info(&self, id: &str) -> Option<SessionInfo> {
        lock(&self.runners).get(id).map(|r| {
            let mut i = lock(&r.info).clone();
            if let Some((p50, p99)) = i.latencies.percentiles() {
                i.added_latency_us_p50 = Some(p50);
                i.added_latency_us_p99 = Some(p99);
            }
            i
        })
    }

    /// Ends every session with BYE (bounded by the caller).
    pub fn stop_all(&self) {
        let ids: Vec<String> = lock(&self.runners).keys().cloned().collect();
        for id in ids {
            self.stop(&id);
        }
    }

    async fn run(
        self: Arc<Self>,
        stream: Arc<Stream>,
        target: Target,
        cancel: CancellationToken,
        info: Arc<Mutex<SessionInfo>>,
        mut control: tokio::sync::mpsc::Receiver<PlaybackControl>,
    ) {
        let mut wanted = stream.wanted();
        let mut backoff = Duration::from_secs(1);
        loop {
            stream.set_status(SourceState::Idle, None);
            tokio::select! {
                () = cancel.cancelled() => break,
                r = wanted.wait_for(|w| *w) => if r.is_err() { break },
            }
            stream.set_status(SourceState::Connecting, None);
            let outcome = self
                .session(&stream, &target, &cancel, &info, &mut control)
                .await;
            match outcome {
                Ok(End::NotWanted) => {
                    tracing::info!(stream = stream.id(), "GB28181 session closed: no viewers");
                    backoff = Duration::from_secs(1);
                }
                Ok(End::Cancelled) => break,
                Ok(End::Finished(reason)) => {
                    // A recording played to its end: the stream ends cleanly.
                    tracing::info!(stream = stream.id(), reason, "GB28181 playback finished");
                    stream.set_status(SourceState::Idle, Some(reason));
                    break;
                }
                Ok(End::Ended(reason)) => {
                    // The stream ends: its viewers see the end, the next one
                    // starts a new stream and a new INVITE.
                    tracing::warn!(stream = stream.id(), reason, "GB28181 stream ended");
                    stream.set_status(SourceState::Error, Some(reason));
                    break;
                }
                Err(e) => {
                    tracing::warn!(stream = stream.id(), error = %e, retry_in_secs = backoff.as_secs(), "GB28181 session failed");
                    stream.set_status(SourceState::Error, Some(e));
                    tokio::select! {
                        () = cancel.cancelled() => break,
                        () = tokio::time::sleep(backoff) => {}
                        r = wanted.wait_for(|w| !*w) => if r.is_err() { break },
                    }
                    backoff = (backoff * 2).min(Duration::from_secs(30));
                }
            }
        }
        let id = stream.id().to_owned();
        {
            let mut runners = lock(&self.runners);
            if runners.get(&id).is_some_and(|r| r.cancel == cancel) {
                runners.remove(&id);
            }
        }
        if let Some(s) = self.hub.get(&id)
            && Arc::ptr_eq(&s, &stream)
        {
            self.hub.remove(&id);
        }
        stream.close();
    }

    /// One INVITE dialog: until not wanted, cancelled, or ended.
    async fn session(
        &self,
        stream: &Arc<Stream>,
        target: &Target,
        cancel: &CancellationToken,
        info: &Arc<Mutex<SessionInfo>>,
        control: &mut tokio::sync::mpsc::Receiver<PlaybackControl>,
    ) -> Result<End, String> {
        let (device_id, channel_id, transport) = (
            target.device_id.as_str(),
            target.channel_id.as_str(),
            target.transport,
        );
        let (session_kind, time_range, download_speed) = match target.kind {
            StreamKind::Live => (SessionKind::Play, None, None),
            StreamKind::Playback { start, end } => {
                (SessionKind::Playback, Some((start, end)), None)
            }
            StreamKind::Download { start, end, speed } => {
                (SessionKind::Download, Some((start, end)), Some(speed))
            }
        };
        let ssrc = self
            .platform
            .allocate_ssrc(session_kind, device_id)
            .map_err(|e| e.to_string())?;
        let ssrc_value = super::media::ssrc_value(&ssrc);
        let check_ssrc = self.config.check_ssrc && self.platform.ssrc_check(device_id).await;
        let device_ip = self
            .platform
            .device_peer(device_id)
            .map(|p| p.addr.ip())
            .map_err(|e| {
                self.platform.release_ssrc(&ssrc);
                e.to_string()
            })?;
        // Without SSRC checking, a port of its own keeps this session apart
        // from others of the same device (if a range is configured).
        let own = if check_ssrc {
            None
        } else {
            match self.media.route_own_port(CancellationToken::new()).await {
                Ok(r) => Some(r),
                Err(e) => {
                    tracing::warn!(stream = stream.id(), error = %e, "no port of its own: sharing the media port, first unknown SSRC from the device is taken");
                    None
                }
            }
        };
        let own_port = own.as_ref().map(|(_, p)| *p);
        let mut route = match own {
            Some((r, _)) => r,
            None => self
                .media
                .route(if check_ssrc { ssrc_value } else { None }, device_ip),
        };
        let media_ip = self
            .config
            .media_ip
            .unwrap_or_else(|| self.platform.local_ip_towards(device_ip));
        let req = InviteRequest {
            device_id: device_id.to_owned(),
            channel_id: channel_id.to_owned(),
            kind: session_kind,
            transport,
            media_ip,
            media_port: own_port
                .or(self.config.public_port)
                .unwrap_or(match transport {
                    MediaTransport::Udp => self.media.udp_port(),
                    MediaTransport::TcpPassive | MediaTransport::TcpActive => self.media.tcp_port(),
                }),
            time_range,
            download_speed,
        };
        self.invites.fetch_add(1, Ordering::Relaxed);
        lock(info).invites += 1;
        let mut dialog = tokio::select! {
            () = cancel.cancelled() => {
                self.platform.release_ssrc(&ssrc);
                return Ok(End::Cancelled);
            }
            r = self.platform.invite(&req, &ssrc) => r.map_err(|e| e.to_string())?,
        };
        // The answer wins: the device's SSRC, or any SSRC if it gave none.
        let expected = if check_ssrc {
            dialog.media_ssrc()
        } else {
            None
        };
        if own_port.is_none() && (expected != ssrc_value || !check_ssrc) {
            self.media.rekey(&route, expected, device_ip);
        }
        {
            let mut i = lock(info);
            i.call_id = Some(dialog.call_id.clone());
            i.ssrc = expected.map(|v| format!("{v:010}"));
        }
        if transport == MediaTransport::TcpActive {
            let Some(addr) = dialog.answer.addr else {
                let _ = self.platform.bye(&mut dialog).await;
                return Err(
                    "TCP active: the device's answer has no media address to connect to".into(),
                );
            };
            // The connection is closed when the route is dropped, after the
            // BYE, so the device hears "BYE" before it sees the TCP close.
            if let Err(e) = self
                .media
                .connect_active(&route, addr, CancellationToken::new())
                .await
            {
                let _ = self.platform.bye(&mut dialog).await;
                return Err(e.to_string());
            }
        }
        tracing::info!(stream = stream.id(), transport = transport.as_str(), ssrc = ?expected, "GB28181 session established");
        let playback = target.kind != StreamKind::Live;
        let end = self
            .pump(
                stream,
                &mut route.rx,
                &mut dialog,
                transport,
                cancel,
                info,
                playback.then_some(control),
            )
            .await;
        if let Err(e) = self.platform.bye(&mut dialog).await {
            tracing::debug!(stream = stream.id(), error = %e, "BYE failed");
        }
        drop(route);
        Ok(end)
    }

    #[allow(clippy::too_many_arguments)]
    async fn pump(
        &self,
        stream: &Arc<Stream>,
        rx: &mut tokio::sync::mpsc::Receiver<MediaChunk>,
        dialog: &mut Dialog,
        transport: MediaTransport,
        cancel: &CancellationToken,
        info: &Arc<Mutex<SessionInfo>>,
        mut control: Option<&mut tokio::sync::mpsc::Receiver<PlaybackControl>>,
    ) -> End {
        let mut media_status = self.platform.media_status();
        let mut retimer = Retimer::default();
        let mut mansrtsp_cseq = 0u32;
        let mut paused = false;
        let mut wanted = stream.wanted();
        let mut reorder = ReorderBuffer::new(self.config.reorder);
        let mut framer = Rfc4571Framer::new(Rfc4571Config::default());
        let mut boundary = FrameBoundary::default();
        let mut demux = PsDemuxer::new(PsConfig::default());
        let mut publisher = None;
        let mut last_media: Option<Instant> = None;
        let started = Instant::now();
        let timeout = self.config.media_timeout;
        let mut in_order = Vec::new();
        // When the newest packet fed to the demuxer was read off the socket.
        let mut last_arrival = Instant::now();
        let mut frame_latencies: Vec<u32> = Vec::new();
        loop {
            let mut pending_control: Option<PlaybackControl> = None;
            let deadline = if paused {
                // Paused on purpose: no media is expected until resumed.
                Instant::now() + timeout
            } else {
                last_media.unwrap_or(started) + timeout
            };
            let reorder_at = reorder.poll_timeout();
            let wake = reorder_at.map_or(deadline, |r| r.min(deadline));
            tokio::select! {
                () = cancel.cancelled() => return End::Cancelled,
                r = wanted.wait_for(|w| !*w) => {
                    if r.is_err() { return End::Cancelled }
                    return End::NotWanted;
                }
                r = dialog.ended.changed() => {
                    if r.is_err() || *dialog.ended.borrow() {
                        return End::Ended("the device ended the session (BYE)".into());
                    }
                }
                // GB/T 28181-2016 §9.8.4: the device says the recording
                // ended (MediaStatus 121); the platform answers with BYE.
                note = media_status.recv(), if control.is_some() => {
                    if let Ok(n) = note
                        && n.device_id == dialog.device_id
                        && n.channel_id == dialog.channel_id
                        && n.notify_type == Some(crate::gb::manscdp::MediaStatus::FILE_END)
                    {
                        return End::Finished("end of the recording (MediaStatus 121)".into());
                    }
                    continue;
                }
                c = async {
                    match control.as_mut() {
                        Some(c) => c.recv().await,
                        None => std::future::pending().await,
                    }
                } => {
                    pending_control = c;
                }
                chunk = rx.recv() => {
                    let Some(chunk) = chunk else { return End::Cancelled };
                    let now = Instant::now();
                    match chunk {
                        MediaChunk::Datagram(bytes, _, read_at) => match RtpPacket::parse(bytes) {
                            Ok(p) => {
                                last_media = Some(now);
                                last_arrival = read_at;
                                reorder.push(p, now);
                            }
                            Err(e) => tracing::debug!(stream = stream.id(), error = %e, "bad RTP packet"),
                        },
                        MediaChunk::Stream(bytes) => {
                            last_media = Some(now);
                            last_arrival = now;
                            if let Err(e) = framer.push(&bytes) {
                                tracing::warn!(stream = stream.id(), error = %e, "RFC 4571 stream: data dropped");
                            }
                            while let Some(r) = framer.next_packet() {
                                match r.map(RtpPacket::parse) {
                                    Ok(Ok(p)) => in_order.push(p),
                                    Ok(Err(e)) => tracing::debug!(stream = stream.id(), error = %e, "bad RTP packet"),
                                    Err(e) => {
                                        // A damaged stream: the frame being
                                        // assembled is suspect. Start over at
                                        // the next keyframe rather than pass
                                        // corrupt video on.
                                        tracing::warn!(stream = stream.id(), error = %e, "RFC 4571 resynchronised: dropping the frame in progress");
                                        in_order.clear();
                                        demux = PsDemuxer::new(PsConfig::default());
                                        boundary = FrameBoundary::default();
                                        lock(info).resyncs += 1;
                                    }
                                }
                            }
                        }
                        MediaChunk::StreamClosed(reason) => {
                            return End::Ended(format!("media connection closed: {reason}"));
                        }
                    }
                }
                () = tokio::time::sleep_until(tokio::time::Instant::from_std(wake)) => {
                    if Instant::now() >= deadline {
                        return End::Ended(match last_media {
                            None => format!("no media within {} s after the device accepted the INVITE", timeout.as_secs()),
                            Some(_) => format!("no media for {} s", timeout.as_secs()),
                        });
                    }
                }
            }
            // MANSRTSP in the dialog, outside the select (its output holds
            // a watch guard that must not live across this await).
            // A command whose caller gave up waiting (timed out before the
            // session was playing) is stale: not sent.
            if let Some(c) = pending_control.take().filter(|c| !c.reply.is_closed()) {
                mansrtsp_cseq += 1;
                let body = c.cmd.mansrtsp(mansrtsp_cseq);
                let sent = self
                    .platform
                    .info(dialog, &body)
                    .await
                    .map_err(|e| e.to_string());
                if matches!(sent, Ok(200..=299)) {
                    match c.cmd {
                        PlaybackCmd::Scale(x) => retimer.set_scale(x),
                        PlaybackCmd::Seek(_) => retimer.seeked(),
                        PlaybackCmd::Pause => paused = true,
                        PlaybackCmd::Resume => paused = false,
                    }
                }
                tracing::info!(stream = stream.id(), cmd = ?c.cmd, result = ?sent, "playback control");
                let _ = c.reply.send(sent);
                // A paused device sends nothing: the media timeout must not
                // end the session meanwhile.
                last_media = Some(Instant::now());
                continue;
            }
            let now = Instant::now();
            while let Some(p) = reorder.poll(now) {
                in_order.push(p);
            }
            let mut packets = 0;
            for p in in_order.drain(..) {
                packets += 1;
                let b = boundary.on_packet(&p);
                if b.previous_frame_ended {
                    demux.end_of_access_unit();
                }
                demux.push(p.payload());
                if b.ends_frame {
                    demux.end_of_access_unit();
                }
            }
            let mut warnings = 0;
            while let Some(ev) = demux.poll() {
                match ev {
                    PsEvent::Frame(mut frame) => {
                        frame.received = Some(last_arrival);
                        retimer.apply(&mut frame);
                        if frame.is_video() {
                            let us = last_arrival.elapsed().as_micros();
                            frame_latencies.push(u32::try_from(us).unwrap_or(u32::MAX));
                        }
                        let p = publisher.get_or_insert_with(|| {
                            let streams = demux.streams();
                            let has = |video: bool| {
                                streams
                                    .iter()
                                    .any(|s| s.codec.is_some_and(|c| c.is_video() == video))
                            };
                            let (has_video, has_audio) = (has(true), has(false));
                            stream.start_publishing(has_video, has_audio)
                        });
                        p.publish(frame);
                        if stream.status().borrow().state != SourceState::Live {
                            stream.set_status(SourceState::Live, None);
                        }
                    }
                    PsEvent::Warning(w) => {
                        warnings += 1;
                        tracing::debug!(stream = stream.id(), warning = %w, "PS");
                    }
                }
            }
            if packets > 0 || warnings > 0 || !frame_latencies.is_empty() {
                let s = reorder.stats();
                let mut i = lock(info);
                for us in frame_latencies.drain(..) {
                    i.latencies.add(us);
                }
                i.packets += packets;
                i.ps_warnings += warnings;
                if transport == MediaTransport::Udp {
                    i.lost = s.lost;
                    i.reordered = s.reordered;
                    i.duplicates = s.duplicates;
                    let total = s.delivered + s.lost;
                    i.loss_ratio = if total == 0 {
                        0.0
                    } else {
                        s.lost as f64 / total as f64
                    };
                }
            }
        }
    }
}

enum End {
    NotWanted,
    Cancelled,
    Ended(String),
    /// A playback reached the end of its recording.
    Finished(String),
}

/// What a runner INVITEs for.
struct Target {
    device_id: String,
    channel_id: String,
    transport: MediaTransport,
    kind: StreamKind,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::Codec;
    use crate::media::{AudioTrack, Frame, FrameData, TrackInfo};

    fn audio(ts: i64) -> Frame {
        Frame {
            track: Arc::new(TrackInfo::Audio(AudioTrack::g711(Codec::G711A, 8000, 1))),
            pts: ts,
            dts: ts,
            keyframe: true,
            data: FrameData::Audio(bytes::Bytes::from_static(&[0; 160])),
            received: None,
        }
    }

    #[test]
    fn mansrtsp_requests_follow_appendix_b() {
        assert_eq!(
            PlaybackCmd::Pause.mansrtsp(1),
            "PAUSE RTSP/1.0\r\nCSeq: 1\r\nPauseTime: now\r\n\r\n"
        );
        assert_eq!(
            PlaybackCmd::Seek(90).mansrtsp(2),
            "PLAY RTSP/1.0\r\nCSeq: 2\r\nRange: npt=90-\r\n\r\n"
        );
        assert_eq!(
            PlaybackCmd::Scale(0.5).mansrtsp(3),
            "PLAY RTSP/1.0\r\nCSeq: 3\r\nScale: 0.5\r\n\r\n"
        );
        assert!(PlaybackCmd::Resume.mansrtsp(4).contains("Range: npt=now-"));
    }

    #[test]
    fn retimer_is_identity_at_1x_and_keeps_real_time_at_other_speeds() {
        let mut r = Retimer::default();
        let out: Vec<i64> = (0..4)
            .map(|i| {
                let mut f = audio(i * 160);
                r.apply(&mut f);
                f.dts
            })
            .collect();
        assert_eq!(out, [0, 160, 320, 480]);
        // At 4x the device sends 4 frames' worth of time per real frame:
        // players get them spaced in real time.
        r.set_scale(4.0);
        let mut f = audio(480 + 4 * 160);
        r.apply(&mut f);
        assert_eq!(f.dts, 480 + 160);
        // A seek back in the recording keeps output time moving forward.
        r.seeked();
        let mut f = audio(16_000);
        r.apply(&mut f);
        assert_eq!(f.dts, 480 + 160 + 8000 / 25);
        let mut g = audio(16_000 + 4 * 160);
        r.apply(&mut g);
        assert_eq!(g.dts, f.dts + 160);
    }
}
