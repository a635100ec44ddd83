//! The HLS output of each stream: one segmenter task per stream fed from the
//! stream's frames, started by the first request and stopped when requests
//! stop. HLS clients hold no connection, so each request renews a lease that
//! counts as one viewer of the stream for the on-demand lifecycle; the lease
//! lapses three target durations after the last request.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use tokio::sync::watch;

use super::{BlockingReload, HlsConfig, PlaylistOptions, Segmenter};
use crate::media::{FanoutError, Stream, ViewerGuard};

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// One stream's HLS state, shared by its requests and its segmenter task.
pub struct HlsShared {
    stream: Arc<Stream>,
    segmenter: Mutex<Segmenter>,
    /// Bumped whenever a part, segment or the init segment appears.
    version: watch::Sender<u64>,
    lease: Mutex<Lease>,
    started: SystemTime,
}

struct Lease {
    guard: Option<ViewerGuard>,
    last_request: Instant,
}

#[derive(Default)]
pub struct HlsOutputs {
    shared: Mutex<HashMap<String, Arc<HlsShared>>>,
    config: HlsConfig,
}

impl HlsOutputs {
    pub fn new(config: HlsConfig) -> Self {
        Self {
            shared: Mutex::default(),
            config,
        }
    }

    /// The stream's HLS output, started if needed; renews the request lease.
    pub fn touch(self: &Arc<Self>, stream: &Arc<Stream>) -> Arc<HlsShared> {
        let mut map = lock(&self.shared);
        let shared = match map.get(stream.id()) {
            Some(s) if Arc::ptr_eq(&s.stream, stream) => s.clone(),
            _ => {
                let s = Arc::new(HlsShared {
                    stream: stream.clone(),
                    segmenter: Mutex::new(Segmenter::new(self.config.clone())),
                    version: watch::channel(0).0,
                    lease: Mutex::new(Lease {
                        guard: None,
                        last_request: Instant::now(),
                    }),
                    started: SystemTime::now(),
                });
                map.insert(stream.id().to_owned(), s.clone());
                tokio::spawn(self.clone().run(s.clone()));
                s
            }
        };
        drop(map);
        {
            let mut l = lock(&shared.lease);
            l.last_request = Instant::now();
            if l.guard.is_none() {
                l.guard = Some(stream.add_output_viewer(crate::media::Output::Hls));
            }
        }
        shared
    }

    /// Streams with a live HLS output (for the API).
    pub fn active(&self) -> Vec<String> {
        lock(&self.shared).keys().cloned().collect()
    }

    /// What the stream's HLS output carries, if it runs.
    pub fn info(&self, stream: &str) -> Option<HlsOutputInfo> {
        let shared = lock(&self.shared).get(stream)?.clone();
        let seg = lock(&shared.segmenter);
        let leased = lock(&shared.lease).guard.is_some();
        Some(HlsOutputInfo {
            watched: leased,
            audio: seg.has_audio(),
            audio_omitted: seg.audio_dropped().map(|d| d.to_string()),
        })
    }

    async fn run(self: Arc<Self>, shared: Arc<HlsShared>) {
        let stream = shared.stream.clone();
        let mut frames = stream.subscribe();
        let lease_time = 3 * self.config.target_duration;
        let idle_end = Duration::from_secs(30).max(2 * lease_time);
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        // Arrival times of the video frames in the part being filled: the
        // added latency is measured to the moment their part is listed.
        let mut unlisted: Vec<Instant> = Vec::new();
        loop {
            let frame = tokio::select! {
                f = frames.recv() => f,
                _ = tick.tick() => {
                    let idle = lock(&shared.lease).last_request.elapsed();
                    if idle >= lease_time {
                        // The lease lapses: this output no longer keeps the
                        // source running.
                        lock(&shared.lease).guard = None;
                    }
                    if idle >= idle_end {
                        break;
                    }
                    continue;
                }
            };
            let frame = match frame {
                Ok(f) => f,
                Err(FanoutError::Closed) => break,
                Err(e) => {
                    tracing::warn!(stream = stream.id(), error = %e, "HLS segmenter lagged; restarting from the next keyframe");
                    frames = stream.subscribe();
                    continue;
                }
            };
            let (pushed, part_done) = {
                let mut seg = lock(&shared.segmenter);
                let before = seg.next_part();
                let pushed = seg.push(&frame);
                (pushed, seg.next_part() != before)
            };
            if part_done {
                for received in unlisted.drain(..) {
                    stream.record_latency(crate::media::Output::Hls, received);
                }
            }
            if let (true, Some(received)) = (frame.is_video(), frame.received) {
                unlisted.push(received);
            }
            if let Err(e) = pushed {
                // New parameter sets: a new init segment and numbering would
                // confuse players mid-playlist; start over cleanly.
                tracing::info!(stream = stream.id(), error = %e, "HLS output restarts");
                let mut seg = lock(&shared.segmenter);
                *seg = Segmenter::new(self.config.clone());
                let _ = seg.push(&frame);
            }
            shared.version.send_modify(|v| *v += 1);
        }
        lock(&shared.lease).guard = None;
        let mut map = lock(&self.shared);
        if map
            .get(stream.id())
            .is_some_and(|s| Arc::ptr_eq(s, &shared))
        {
            map.remove(stream.id());
        }
        tracing::debug!(stream = stream.id(), "HLS output stopped");
    }
}

/// The HLS output of one stream, for the stream info.
#[derive(Clone, Debug, serde::Serialize, utoipa::ToSchema)]
pub struct HlsOutputInfo {
    /// Requested within the last three target durations.
    pub watched: bool,
    /// Whether segments carry the stream's audio.
    pub audio: bool,
    /// Why they do not, e.g. G.711, which MSE players cannot play.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub audio_omitted: Option<String>,
}

/// Why an HLS request cannot be answered.
#[derive(Debug, PartialEq, Eq)]
pub enum HlsWait {
    /// Nothing to answer within the wait (no media yet, or the part never came).
    Timeout,
    /// A blocking reload too far ahead (RFC 8216bis §6.2.5.2: 400).
    TooFar,
    NotFound,
}

impl HlsShared {
    pub fn target_duration(&self) -> Duration {
        lock(&self.segmenter).config().target_duration
    }

    /// The longest a segment can take (cameras with rare keyframes): the
    /// first playlist may wait this long after the source starts.
    pub fn max_segment_duration(&self) -> Duration {
        lock(&self.segmenter).config().max_segment_duration
    }

    /// Waits until `ready` says yes (or the timeout).
    async fn wait_for<T>(
        &self,
        timeout: Duration,
        mut ready: impl FnMut(&Segmenter) -> Result<Option<T>, HlsWait>,
    ) -> Result<T, HlsWait> {
        let mut rx = self.version.subscribe();
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            if let Some(v) = ready(&lock(&self.segmenter))? {
                return Ok(v);
            }
            match tokio::time::timeout_at(deadline, rx.changed()).await {
                Ok(Ok(())) => {}
                _ => return Err(HlsWait::Timeout),
            }
        }
    }

    /// The LL-HLS playlist, after a blocking reload for (`msn`, `part`) when
    /// asked (RFC 8216bis §6.2.5.2); waits for the first whole segment.
    pub async fn playlist(
        &self,
        msn: Option<u64>,
        part: Option<u32>,
        uri_query: Option<String>,
        timeout: Duration,
    ) -> Result<String, HlsWait> {
        let opts = PlaylistOptions {
            low_latency: true,
            end_list: false,
            program_date_time: Some(self.started),
            uri_query,
        };
        self.wait_for(timeout, |s| {
            // A first playlist needs one whole segment: players without
            // LL-HLS (FFmpeg's demuxer among them) see only segments.
            if s.init().is_none() || s.segments().next().is_none() {
                return Ok(None);
            }
            match msn {
                None => Ok(Some(s.playlist(&opts))),
                Some(m) => match s.blocking_status(m, part) {
                    BlockingReload::Ready => Ok(Some(s.playlist(&opts))),
                    BlockingReload::Wait => Ok(None),
                    BlockingReload::TooFar => Err(HlsWait::TooFar),
                },
            }
        })
        .await
    }

    pub async fn init(&self, timeout: Duration) -> Result<Bytes, HlsWait> {
        self.wait_for(timeout, |s| Ok(s.init())).await
    }

    /// A segment; one that is still being written is waited for (bounded).
    pub async fn segment(&self, msn: u64, timeout: Duration) -> Result<Bytes, HlsWait> {
        self.wait_for(timeout, |s| match s.segment(msn) {
            Some(b) => Ok(Some(b)),
            None if msn >= s.next_msn() && msn <= s.next_msn() + 1 => Ok(None),
            None => Err(HlsWait::NotFound),
        })
        .await
    }

    /// A part; the preload-hinted one is held until it is complete.
    pub async fn part(&self, msn: u64, part: u32, timeout: Duration) -> Result<Bytes, HlsWait> {
        self.wait_for(timeout, |s| match s.part(msn, part) {
            Some(b) => Ok(Some(b)),
            None if msn >= s.next_msn() && msn <= s.next_msn() + 1 => Ok(None),
            None => Err(HlsWait::NotFound),
        })
        .await
    }
}
