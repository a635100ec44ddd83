//! HTTP-FLV and WS-FLV output: one muxing task per stream, shared by every FLV
//! viewer of that stream.
//!
//! The task turns frames into tag bodies once; each viewer adds only its own
//! 11-byte tag headers (timestamps rebased to start at 0 for that viewer) and
//! 4-byte trailers around the shared bodies.

pub mod mux;

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use bytes::Bytes;
use tokio_util::sync::CancellationToken;

pub use mux::{FlvMuxer, FlvTag, FlvWriter, TagKind};

use super::{StartError, wait_for_media};
use crate::media::{Fanout, FanoutConfig, FanoutError, FanoutItem, FanoutReceiver, Stream};

impl FanoutItem for FlvTag {
    fn byte_len(&self) -> usize {
        self.body.len()
    }
}

/// What a viewer needs before the first tag: metadata and sequence headers.
#[derive(Default)]
struct Prelude {
    metadata: Option<FlvTag>,
    sequence_headers: Vec<FlvTag>,
}

/// The shared FLV output of one stream.
pub struct FlvShared {
    stream: Arc<Stream>,
    prelude: Mutex<Prelude>,
    tags: Fanout<FlvTag>,
}

impl FlvShared {
    fn prelude(&self) -> (Option<FlvTag>, Vec<FlvTag>) {
        let p = self.prelude.lock().unwrap_or_else(|e| e.into_inner());
        (p.metadata.clone(), p.sequence_headers.clone())
    }
}

/// The per-stream FLV outputs, created on the first viewer and dropped with
/// the last.
#[derive(Default)]
pub struct FlvOutputs {
    shared: Mutex<HashMap<String, Weak<FlvShared>>>,
    config: FanoutConfig,
}

impl FlvOutputs {
    pub fn new(config: FanoutConfig) -> Self {
        Self {
            shared: Mutex::default(),
            config,
        }
    }

    /// Joins (or starts) the stream's FLV output.
    pub fn subscribe(&self, stream: &Arc<Stream>) -> FlvSubscription {
        let mut map = self.shared.lock().unwrap_or_else(|e| e.into_inner());
        map.retain(|_, w| w.strong_count() > 0);
        let shared = match map.get(stream.id()).and_then(Weak::upgrade) {
            Some(s) if Arc::ptr_eq(&s.stream, stream) => s,
            _ => {
                let s = Arc::new(FlvShared {
                    stream: stream.clone(),
                    prelude: Mutex::default(),
                    tags: Fanout::new(self.config),
                });
                map.insert(stream.id().to_owned(), Arc::downgrade(&s));
                spawn_mux_task(&s);
                s
            }
        };
        if !stream.is_publishing() {
            // The source stopped or is reconnecting: cached tags are stale.
            shared.tags.reset_group();
        }
        let rx = shared.tags.subscribe();
        FlvSubscription { shared, rx }
    }

    /// Streams with a running FLV output and their viewer counts.
    pub fn viewer_counts(&self) -> HashMap<String, usize> {
        let map = self.shared.lock().unwrap_or_else(|e| e.into_inner());
        map.iter()
            .filter_map(|(k, w)| w.upgrade().map(|s| (k.clone(), s.tags.receiver_count())))
            .collect()
    }
}

fn spawn_mux_task(shared: &Arc<FlvShared>) {
    let weak = Arc::downgrade(shared);
    let stream = shared.stream.clone();
    let mut frames = stream.subscribe();
    tokio::spawn(async move {
        let mut muxer = FlvMuxer::new();
        let mut tags = Vec::new();
        loop {
            let frame = match frames.recv().await {
                Ok(f) => f,
                Err(FanoutError::Closed) => break,
                Err(e) => {
                    // The muxer itself fell behind (CPU starved): resynchronise.
                    tracing::warn!(stream = %stream.id(), error = %e, "FLV muxer lagged; restarting from the next keyframe");
                    frames = stream.subscribe();
                    continue;
                }
            };
            let group_start = frames.last_was_group_start();
            let Some(shared) = weak.upgrade() else {
                break; // no viewer left
            };
            tags.clear();
            if let Err(e) = muxer.push(&frame, &mut tags) {
                tracing::warn!(stream = %stream.id(), error = %e, "frame dropped by the FLV muxer");
                continue;
            }
            let mut prelude = shared.prelude.lock().unwrap_or_else(|e| e.into_inner());
            if tags.iter().any(|t| t.sequence_header) || prelude.metadata.is_none() {
                prelude.metadata = Some(muxer.metadata());
                prelude.sequence_headers = muxer.sequence_headers().cloned().collect();
            }
            if let (true, Some(received)) = (frame.is_video(), frame.received) {
                stream.record_latency(crate::media::Output::Flv, received);
            }
            for tag in tags.drain(..) {
                // A frame's sequence header goes with the frame: viewers that
                // start at this group already got it in their prelude.
                let starts = group_start && !tag.sequence_header;
                shared.tags.publish(tag, starts);
            }
        }
        if let Some(shared) = weak.upgrade() {
            shared.tags.close();
        }
        tracing::debug!(stream = %stream.id(), "FLV muxer stopped");
    });
}

/// One viewer's place in a stream's FLV output.
pub struct FlvSubscription {
    shared: Arc<FlvShared>,
    rx: FanoutReceiver<FlvTag>,
}

impl FlvSubscription {
    /// Waits for media, then returns the viewer's byte stream: the FLV header,
    /// metadata, sequence headers, the cached GOP and then live tags.
    pub async fn start(mut self, timeout: Duration) -> Result<FlvByteStream, StartError> {
        let first = wait_for_media(&self.shared.stream, &mut self.rx, timeout).await?;
        let (metadata, headers) = self.shared.prelude();
        let (mut has_video, mut has_audio) = self.shared.stream.expected_tracks();
        has_video |= headers.iter().any(|t| t.kind == TagKind::Video);
        has_audio |= headers.iter().any(|t| t.kind == TagKind::Audio);
        let mut writer = FlvWriter::new();
        let mut pending = VecDeque::new();
        pending.push_back(mux::file_header(has_audio, has_video));
        for tag in metadata
            .iter()
            .chain(headers.iter())
            .chain(std::iter::once(&first))
        {
            pending.extend(writer.write(tag));
        }
        Ok(FlvByteStream {
            stream_id: self.shared.stream.id().to_owned(),
            _shared: self.shared,
            rx: self.rx,
            writer,
            pending,
        })
    }
}

/// Bytes for one FLV viewer.
pub struct FlvByteStream {
    stream_id: String,
    _shared: Arc<FlvShared>,
    rx: FanoutReceiver<FlvTag>,
    writer: FlvWriter,
    pending: VecDeque<Bytes>,
}

impl FlvByteStream {
    /// The next chunk, or `None` at the end of the stream, on `shutdown`, or
    /// when this viewer is too slow to keep up.
    pub async fn next_chunk(&mut self, shutdown: &CancellationToken) -> Option<Bytes> {
        loop {
            if let Some(c) = self.pending.pop_front() {
                return Some(c);
            }
            let tag = tokio::select! {
                () = shutdown.cancelled() => return None,
                r = self.rx.recv() => r,
            };
            match tag {
                Ok(tag) => self.pending.extend(self.writer.write(&tag)),
                Err(FanoutError::Closed) => return None,
                Err(e @ FanoutError::TooSlow { .. }) => {
                    tracing::warn!(stream = %self.stream_id, error = %e, "FLV viewer disconnected");
                    return None;
                }
            }
        }
    }

    pub fn skipped(&self) -> u64 {
        self.rx.skipped()
    }
}
