//! A stream: one publisher (an ingest session), any number of consumers, an
//! on-demand source behind it, and the numbers the API reports about it.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime};

use serde::Serialize;
use tokio::sync::{Notify, watch};
use tokio_util::sync::CancellationToken;

use super::demand::{DemandAction, DemandController, DemandPolicy};
use super::fanout::{Fanout, FanoutConfig, FanoutItem, FanoutReceiver};
use super::frame::{Frame, TrackInfo, from_ms};
use crate::codec::Codec;

/// Media bytes received from every source since the process started (for
/// the dashboard's bandwidth; streams come and go, these totals do not).
pub static MEDIA_BYTES_IN: AtomicU64 = AtomicU64::new(0);
/// Media bytes sent to every viewer since the process started.
pub static MEDIA_BYTES_OUT: AtomicU64 = AtomicU64::new(0);

impl FanoutItem for Frame {
    fn byte_len(&self) -> usize {
        self.payload_len()
    }
}

/// Where a source is in its life, as the API shows it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum SourceState {
    /// Not running: on-demand with nobody watching.
    Idle,
    Connecting,
    Live,
    /// The last attempt failed; `reason` says why. Retries continue while wanted.
    Error,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SourceStatus {
    pub state: SourceState,
    pub reason: Option<String>,
    pub since: SystemTime,
}

/// Bytes (or frames) per second over the last whole second.
#[derive(Debug, Default)]
pub struct RateMeter {
    bucket_start: Option<Instant>,
    current: u64,
    last: u64,
}

impl RateMeter {
    const WINDOW: Duration = Duration::from_secs(1);

    fn roll(&mut self, now: Instant) {
        let Some(start) = self.bucket_start else {
            self.bucket_start = Some(now);
            return;
        };
        let elapsed = now.saturating_duration_since(start);
        if elapsed >= 2 * Self::WINDOW {
            self.last = 0;
            self.current = 0;
            self.bucket_start = Some(now);
        } else if elapsed >= Self::WINDOW {
            self.last = self.current;
            self.current = 0;
            self.bucket_start = Some(start + Self::WINDOW);
        }
    }

    pub fn add(&mut self, now: Instant, amount: u64) {
        self.roll(now);
        self.current += amount;
    }

    /// Amount per second in the last complete window.
    pub fn rate(&mut self, now: Instant) -> u64 {
        self.roll(now);
        self.last
    }
}

#[derive(Default)]
struct Meters {
    bytes: RateMeter,
    video_frames: RateMeter,
}

struct PublishState {
    tracks: Vec<Arc<TrackInfo>>,
    /// (video, audio) the current session announced, e.g. from the SDP.
    expected: (bool, bool),
    since: Option<(SystemTime, Instant)>,
    /// Where the next publishing session's timeline starts, in ms, so that
    /// timestamps keep rising across source reconnects.
    next_ms: i64,
}

pub struct Stream {
    id: String,
    kind: &'static str,
    fanout: Fanout<Arc<Frame>>,
    demand: Mutex<DemandController>,
    wake: Notify,
    wanted: watch::Sender<bool>,
    status: watch::Sender<SourceStatus>,
    publish: Mutex<PublishState>,
    meters: Mutex<Meters>,
    bytes_in: AtomicU64,
    frames_in: AtomicU64,
    closed: CancellationToken,
    /// Video frames' network-read → output times (µs) per [`Output`], where
    /// known.
    latency: [Mutex<crate::util::LatencyWindow>; Output::ALL.len()],
    /// Viewers per [`Output`] (an HLS output's request lease counts as one).
    output_viewers: [AtomicU64; Output::ALL.len()],
    /// Bytes sent to viewers per output (payload as written to the socket
    /// or response body).
    output_bytes: [AtomicU64; Output::ALL.len()],
}

/// The outputs whose added latency a stream measures.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Output {
    /// First byte of the FLV tag handed to the viewers' fan-out.
    Flv,
    /// The LL-HLS part holding the frame listed in the playlist.
    Hls,
    /// First RTP packet of the frame written to an RTSP client.
    Rtsp,
    /// First RTP packet of the frame handed to a WebRTC session.
    WebRtc,
}

impl Output {
    pub const ALL: [Output; 4] = [Output::Flv, Output::Hls, Output::Rtsp, Output::WebRtc];

    pub fn as_str(self) -> &'static str {
        match self {
            Output::Flv => "flv",
            Output::Hls => "hls",
            Output::Rtsp => "rtsp",
            Output::WebRtc => "webrtc",
        }
    }
}

/// p50/p99 of one output's added latency (µs).
#[derive(Clone, Copy, Debug, Serialize, utoipa::ToSchema)]
pub struct LatencyPercentiles {
    pub p50: u64,
    pub p99: u64,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Every critical section here leaves the state consistent, so a poisoned lock
    // (a panic elsewhere while holding it) is safe to keep using.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn now() -> Instant {
    // tokio's clock, so tests can pause and advance time.
    tokio::time::Instant::now().into_std()
}

/// What the API reports about a stream.
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
pub struct StreamSnapshot {
    pub id: String,
    pub kind: &'static str,
    pub publishing: bool,
    pub viewers: usize,
    pub tracks: Vec<TrackSnapshot>,
    pub bitrate_bps: u64,
    pub fps: u64,
    pub bytes_in: u64,
    pub frames_in: u64,
    pub uptime_secs: Option<u64>,
    pub source: SourceStatusSnapshot,
    /// Gateway-added latency (µs) of the last ≤ 1000 video frames per output
    /// (`flv`, `hls`, `rtsp`, `webrtc`), from reading a frame's last packet off
    /// the network to its first byte leaving on that output (for HLS: its part
    /// being listed); only for sources that stamp arrival (GB28181) and only
    /// outputs being watched appear.
    pub added_latency_us: std::collections::BTreeMap<&'static str, LatencyPercentiles>,
    /// Viewers per output (`flv`, `hls`, `rtsp`, `webrtc`); an HLS output
    /// counts one while any player requested it in the last three target
    /// durations.
    pub viewers_by_output: std::collections::BTreeMap<&'static str, u64>,
    /// Bytes sent to viewers, per output.
    pub bytes_out_by_output: std::collections::BTreeMap<&'static str, u64>,
}

#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
pub struct TrackSnapshot {
    pub codec: Codec,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub width: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub height: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sample_rate: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub channels: Option<u8>,
}

#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
pub struct SourceStatusSnapshot {
    pub state: SourceState,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    pub since: String,
}

impl From<&SourceStatus> for SourceStatusSnapshot {
    fn from(s: &SourceStatus) -> Self {
        Self {
            state: s.state,
            reason: s.reason.clone(),
            since: crate::util::rfc3339(s.since),
        }
    }
}

impl Stream {
    pub(crate) fn new(
        id: String,
        kind: &'static str,
        policy: DemandPolicy,
        config: FanoutConfig,
    ) -> Arc<Self> {
        let (wanted, _) = watch::channel(false);
        let (status, _) = watch::channel(SourceStatus {
            state: SourceState::Idle,
            reason: None,
            since: SystemTime::now(),
        });
        Arc::new(Self {
            id,
            kind,
            fanout: Fanout::new(config),
            demand: Mutex::new(DemandController::new(policy)),
            wake: Notify::new(),
            wanted,
            status,
            publish: Mutex::new(PublishState {
                tracks: Vec::new(),
                expected: (false, false),
                since: None,
                next_ms: 0,
            }),
            meters: Mutex::new(Meters::default()),
            bytes_in: AtomicU64::new(0),
            frames_in: AtomicU64::new(0),
            closed: CancellationToken::new(),
            latency: Default::default(),
            output_viewers: Default::default(),
            output_bytes: Default::default(),
        })
    }

    pub fn id(&self) -> &str {
        &self.id
    }

    pub fn kind(&self) -> &'static str {
        self.kind
    }

    /// Starts the task that applies the on-demand grace period.
    pub(crate) fn spawn_supervisor(self: &Arc<Self>) {
        let action = lock(&self.demand).initial();
        self.apply(action);
        // The task holds the stream until it is closed (removed from the hub).
        let s = self.clone();
        let closed = self.closed.clone();
        tokio::spawn(async move {
            loop {
                let deadline = lock(&s.demand).poll_timeout();
                tokio::select! {
                    () = closed.cancelled() => return,
                    () = s.wake.notified() => {}
                    () = sleep_until(deadline) => {
                        let action = lock(&s.demand).handle_timeout(now());
                        s.apply(action);
                    }
                }
            }
        });
    }

    fn apply(&self, action: Option<DemandAction>) {
        match action {
            Some(DemandAction::Start) => {
                tracing::info!(stream = %self.id, "source wanted: starting");
                self.wanted.send_replace(true);
            }
            Some(DemandAction::Stop) => {
                tracing::info!(stream = %self.id, "no viewers for the grace period: stopping source");
                self.wanted.send_replace(false);
            }
            None => {}
        }
    }

    pub fn policy(&self) -> DemandPolicy {
        lock(&self.demand).policy()
    }

    /// Changes always-on/grace; takes effect at once.
    pub fn set_policy(&self, policy: DemandPolicy) {
        let action = lock(&self.demand).set_policy(policy, now());
        self.apply(action);
        self.wake.notify_one();
    }

    /// Counts a viewer for the on-demand lifecycle until the guard is dropped.
    pub fn add_viewer(self: &Arc<Self>) -> ViewerGuard {
        let action = lock(&self.demand).viewer_joined(now());
        self.apply(action);
        self.wake.notify_one();
        ViewerGuard {
            stream: self.clone(),
            output: None,
        }
    }

    /// Counts `n` bytes sent to a viewer on `output`.
    pub fn count_out(&self, output: Output, n: usize) {
        self.output_bytes[output as usize].fetch_add(n as u64, Ordering::Relaxed);
        MEDIA_BYTES_OUT.fetch_add(n as u64, Ordering::Relaxed);
    }

    /// [`Stream::add_viewer`] counted under `output` in the stream info.
    pub fn add_output_viewer(self: &Arc<Self>, output: Output) -> ViewerGuard {
        let mut guard = self.add_viewer();
        self.output_viewers[output as usize].fetch_add(1, Ordering::Relaxed);
        guard.output = Some(output);
        guard
    }

    pub fn viewers(&self) -> usize {
        lock(&self.demand).viewers()
    }

    /// Whether the source should be running; sources watch this.
    pub fn wanted(&self) -> watch::Receiver<bool> {
        self.wanted.subscribe()
    }

    pub fn status(&self) -> watch::Receiver<SourceStatus> {
        self.status.subscribe()
    }

    pub fn set_status(&self, state: SourceState, reason: Option<String>) {
        self.status.send_if_modified(|s| {
            if s.state == state && s.reason == reason {
                return false;
            }
            *s = SourceStatus {
                state,
                reason,
                since: SystemTime::now(),
            };
            true
        });
    }

    /// The source gave up by itself; a later viewer starts it again.
    pub fn source_ended(&self) {
        lock(&self.demand).source_ended();
        self.wanted.send_replace(false);
    }

    /// Begins a publishing session (a connection to the camera). Frames pushed
    /// through the returned publisher reach every consumer.
    pub fn start_publishing(self: &Arc<Self>, has_video: bool, has_audio: bool) -> Publisher {
        self.fanout.reset_group();
        let mut p = lock(&self.publish);
        p.tracks.clear();
        p.expected = (has_video, has_audio);
        p.since = Some((SystemTime::now(), now()));
        Publisher {
            stream: self.clone(),
            has_video,
            offset_ms: None,
            last_ms: p.next_ms,
            known_tracks: Vec::new(),
        }
    }

    /// A consumer of raw frames (a muxer). Consumers are not viewers: wrap
    /// them with [`Self::add_viewer`] where a person or client is behind them.
    pub fn subscribe(&self) -> FanoutReceiver<Arc<Frame>> {
        self.fanout.subscribe()
    }

    /// (video, audio) announced by the current publishing session.
    pub fn expected_tracks(&self) -> (bool, bool) {
        lock(&self.publish).expected
    }

    pub fn tracks(&self) -> Vec<Arc<TrackInfo>> {
        lock(&self.publish).tracks.clone()
    }

    pub fn is_publishing(&self) -> bool {
        lock(&self.publish).since.is_some()
    }

    /// Ends the stream: the source is told to stop and consumers see the end.
    pub fn close(&self) {
        self.wanted.send_replace(false);
        self.closed.cancel();
        self.fanout.close();
    }

    pub fn closed(&self) -> CancellationToken {
        self.closed.clone()
    }

    pub fn is_closed(&self) -> bool {
        self.closed.is_cancelled()
    }

    /// Records one video frame's network-read → `output` time.
    pub fn record_latency(&self, output: Output, received: Instant) {
        let us = received.elapsed().as_micros();
        lock(&self.latency[output as usize]).add(u32::try_from(us).unwrap_or(u32::MAX));
    }

    pub fn snapshot(&self) -> StreamSnapshot {
        let t = now();
        let (bitrate, fps) = {
            let mut m = lock(&self.meters);
            (m.bytes.rate(t) * 8, m.video_frames.rate(t))
        };
        let (tracks, uptime) = {
            let p = lock(&self.publish);
            let tracks = p
                .tracks
                .iter()
                .map(|t| match t.as_ref() {
                    TrackInfo::Video(v) => TrackSnapshot {
                        codec: v.codec,
                        width: Some(v.width),
                        height: Some(v.height),
                        sample_rate: None,
                        channels: None,
                    },
                    TrackInfo::Audio(a) => TrackSnapshot {
                        codec: a.codec,
                        width: None,
                        height: None,
                        sample_rate: Some(a.sample_rate),
                        channels: Some(a.channels),
                    },
                })
                .collect();
            (
                tracks,
                p.since
                    .map(|(_, i)| t.saturating_duration_since(i).as_secs()),
            )
        };
        let status = SourceStatusSnapshot::from(&*self.status.borrow());
        let added_latency_us = Output::ALL
            .iter()
            .filter_map(|&o| {
                let (p50, p99) = lock(&self.latency[o as usize]).percentiles()?;
                Some((o.as_str(), LatencyPercentiles { p50, p99 }))
            })
            .collect();
        StreamSnapshot {
            id: self.id.clone(),
            kind: self.kind,
            publishing: uptime.is_some(),
            viewers: self.viewers(),
            tracks,
            bitrate_bps: bitrate,
            fps,
            bytes_in: self.bytes_in.load(Ordering::Relaxed),
            frames_in: self.frames_in.load(Ordering::Relaxed),
            uptime_secs: uptime,
            added_latency_us,
            viewers_by_output: Output::ALL
                .iter()
                .map(|&o| {
                    (
                        o.as_str(),
                        self.output_viewers[o as usize].load(Ordering::Relaxed),
                    )
                })
                .collect(),
            bytes_out_by_output: Output::ALL
                .iter()
                .map(|&o| {
                    (
                        o.as_str(),
                        self.output_bytes[o as usize].load(Ordering::Relaxed),
                    )
                })
                .collect(),
            source: status,
        }
    }
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(tokio::time::Instant::from_std(d)).await,
        None => std::future::pending().await,
    }
}

/// A viewer of a stream; dropping it may start the grace period.
pub struct ViewerGuard {
    stream: Arc<Stream>,
    output: Option<Output>,
}

impl ViewerGuard {
    pub fn stream(&self) -> &Arc<Stream> {
        &self.stream
    }
}

impl Drop for ViewerGuard {
    fn drop(&mut self) {
        if let Some(o) = self.output {
            self.stream.output_viewers[o as usize].fetch_sub(1, Ordering::Relaxed);
        }
        let action = lock(&self.stream.demand).viewer_left(now());
        self.stream.apply(action);
        self.stream.wake.notify_one();
    }
}

/// The sending side of one publishing session.
pub struct Publisher {
    stream: Arc<Stream>,
    has_video: bool,
    /// Shift applied to this session's timestamps, in ms: its first frame lands
    /// where the previous session ended.
    offset_ms: Option<i64>,
    last_ms: i64,
    known_tracks: Vec<Arc<TrackInfo>>,
}

impl Publisher {
    pub fn stream(&self) -> &Arc<Stream> {
        &self.stream
    }

    pub fn publish(&mut self, mut frame: Frame) {
        let offset_ms = *self.offset_ms.get_or_insert_with(|| {
            let next = lock(&self.stream.publish).next_ms;
            next - frame.dts_ms()
        });
        let shift = from_ms(offset_ms, frame.track.timescale());
        frame.pts += shift;
        frame.dts += shift;
        self.last_ms = self.last_ms.max(frame.dts_ms());

        if !self
            .known_tracks
            .iter()
            .any(|t| Arc::ptr_eq(t, &frame.track))
        {
            self.register_track(&frame.track);
        }

        let len = frame.payload_len() as u64;
        let is_video = frame.is_video();
        self.stream.bytes_in.fetch_add(len, Ordering::Relaxed);
        MEDIA_BYTES_IN.fetch_add(len, Ordering::Relaxed);
        self.stream.frames_in.fetch_add(1, Ordering::Relaxed);
        {
            let t = now();
            let mut m = lock(&self.stream.meters);
            m.bytes.add(t, len);
            if is_video {
                m.video_frames.add(t, 1);
            }
        }
        let group_start = if is_video {
            frame.keyframe
        } else {
            !self.has_video
        };
        self.stream.fanout.publish(Arc::new(frame), group_start);
    }

    fn register_track(&mut self, track: &Arc<TrackInfo>) {
        let is_video = track.is_video();
        self.known_tracks.retain(|t| t.is_video() != is_video);
        self.known_tracks.push(track.clone());
        let mut p = lock(&self.stream.publish);
        p.tracks.retain(|t| t.is_video() != is_video);
        p.tracks.push(track.clone());
        p.tracks.sort_by_key(|t| !t.is_video());
    }
}

impl Drop for Publisher {
    fn drop(&mut self) {
        // What the ended session sent is no longer live: a viewer arriving now
        // must wait for the next session's keyframe, not get stale frames.
        self.stream.fanout.reset_group();
        let mut p = lock(&self.stream.publish);
        p.since = None;
        // Leave a frame's worth of room so the next session's first frame is later.
        p.next_ms = self.last_ms + 40;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::frame::{AudioTrack, FrameData};
    use bytes::Bytes;

    fn audio_frame(track: &Arc<TrackInfo>, ts: i64) -> Frame {
        Frame {
            track: track.clone(),
            pts: ts,
            dts: ts,
            keyframe: true,
            data: FrameData::Audio(Bytes::from_static(&[0xd5; 160])),
            received: None,
        }
    }

    #[test]
    fn rate_meter_reports_last_whole_second() {
        let t0 = Instant::now();
        let mut m = RateMeter::default();
        m.add(t0, 100);
        m.add(t0 + Duration::from_millis(500), 100);
        assert_eq!(m.rate(t0 + Duration::from_millis(900)), 0);
        assert_eq!(m.rate(t0 + Duration::from_millis(1100)), 200);
        assert_eq!(m.rate(t0 + Duration::from_secs(5)), 0);
    }

    #[tokio::test]
    async fn timeline_continues_across_publishing_sessions() {
        let s = Stream::new(
            "s".into(),
            "test",
            DemandPolicy {
                always_on: true,
                grace: Duration::ZERO,
            },
            FanoutConfig::default(),
        );
        let track = Arc::new(TrackInfo::Audio(AudioTrack::g711(Codec::G711A, 8000, 1)));
        let mut rx = s.subscribe();
        let mut p = s.start_publishing(false, true);
        p.publish(audio_frame(&track, 123_456));
        p.publish(audio_frame(&track, 123_456 + 8000));
        drop(p);
        let mut p = s.start_publishing(false, true);
        p.publish(audio_frame(&track, 5));
        let got: Vec<i64> = std::iter::from_fn(|| rx.try_recv().unwrap())
            .map(|f| f.dts_ms())
            .collect();
        assert_eq!(got, vec![0, 1000, 1040]);
        assert!(s.is_publishing());
        assert_eq!(s.tracks().len(), 1);
        drop(p);
        assert!(!s.is_publishing());
        let mut late = s.subscribe();
        assert_eq!(
            late.try_recv().unwrap(),
            None,
            "no stale frames after the session ended"
        );
    }
}
