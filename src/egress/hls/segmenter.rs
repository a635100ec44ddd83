//! Cuts frames into LL-HLS media segments and partial segments.
//!
//! Rules (RFC 8216bis §4.4.4.9 and Apple LL-HLS "Partial Segments"):
//! - the stream starts at the first video keyframe; every segment starts on a
//!   keyframe and is cut at the first keyframe at or after `target_duration`
//!   (or, if keyframes stop, forcibly at `max_segment_duration`);
//! - a partial segment is cut before adding a frame would make it longer than
//!   `part_duration` (so parts are at most the PART-TARGET with a steady frame
//!   rate); a part starts on any frame and is INDEPENDENT when that frame is a
//!   keyframe (always so for the first part of a segment);
//! - a segment's bytes are the concatenation of its parts' fragments (each a
//!   `moof` + `mdat` with its own `mfhd` sequence number), as LL-HLS requires
//!   of a Parent Segment.
//!
//! Sample durations come from the next sample's DTS: the newest video frame is
//! held until the next one arrives, which adds one frame interval (40 ms at
//! 25 fps) of latency but gives exact durations even with a variable frame
//! rate. A DTS that goes backwards or jumps by more than [`MAX_GAP_MS`] is
//! treated as a discontinuity: the previous frame interval is used and the
//! timeline stays continuous. AAC frames last 1024 samples (ISO/IEC 14496-3
//! §4.5.2.1) and go into the part open when they arrive.
//!
//! Memory: `window_segments` complete segments, parts only for the segments
//! within three target durations of the live edge (RFC 8216bis §4.4.4.9 asks
//! to remove older parts from the playlist), one open segment bounded by
//! `max_segment_duration`.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};

use super::fmp4::{self, AUDIO_TRACK_ID, Fmp4Error, Sample, SampleData, TrackRun, VIDEO_TRACK_ID};
use crate::codec::Codec;
use crate::media::frame::{from_ms, to_ms};
use crate::media::{Frame, FrameData, TrackInfo};

/// A DTS step larger than this (or not positive) is a discontinuity.
pub const MAX_GAP_MS: i64 = 10_000;
/// AAC-LC frame length in samples.
const AAC_FRAME_SAMPLES: u32 = 1024;
/// Audio samples accepted in one part before the rest is dropped (parts are
/// cut on video; this bounds memory if video stops).
const MAX_AUDIO_SAMPLES_PER_PART: usize = 512;
const VIDEO_TIMESCALE: i64 = 90_000;
/// Frames held at startup while waiting for audio, whatever their timestamps.
const MAX_STARTUP_FRAMES: usize = 256;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HlsConfig {
    /// Segments are cut at the first keyframe at or after this duration.
    pub target_duration: Duration,
    /// PART-TARGET: partial segments are at most this long.
    pub part_duration: Duration,
    /// Complete segments kept (and listed) in the sliding window.
    pub window_segments: usize,
    /// A segment is cut even without a keyframe at this length (bounds memory
    /// with very long GOPs); such a segment does not start independent.
    pub max_segment_duration: Duration,
    /// How long (stream time) to wait after the first keyframe for the first
    /// audio frame before the init segment is fixed without audio.
    pub audio_wait: Duration,
}

impl Default for HlsConfig {
    fn default() -> Self {
        Self {
            target_duration: Duration::from_secs(2),
            part_duration: Duration::from_millis(200),
            window_segments: 6,
            max_segment_duration: Duration::from_secs(10),
            audio_wait: Duration::from_millis(500),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum HlsError {
    #[error(transparent)]
    Fmp4(#[from] Fmp4Error),
    #[error("the {codec} track parameters changed; a new segmenter (and init segment) is needed")]
    TrackChanged { codec: Codec },
    #[error("{codec} frame does not match its track (expected {expected})")]
    PayloadMismatch {
        codec: Codec,
        expected: &'static str,
    },
}

/// Why audio frames are not in the output.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AudioDropped {
    /// G.711 has no fMP4 sample entry that MSE players accept: video only.
    UnsupportedCodec(Codec),
    /// The audio track appeared after the init segment was fixed.
    ArrivedLate,
}

impl std::fmt::Display for AudioDropped {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            AudioDropped::UnsupportedCodec(c) => {
                write!(
                    f,
                    "{c} audio cannot be played by MSE/HLS players and is not transcoded; \
                     HLS carries video only (WebRTC, RTSP and FLV carry the audio)"
                )
            }
            AudioDropped::ArrivedLate => f.write_str("audio started after the HLS init segment"),
        }
    }
}

/// A complete partial segment.
#[derive(Clone, Debug)]
pub struct PartInfo {
    /// Duration in seconds.
    pub duration: f64,
    /// Starts with a keyframe (EXT-X-PART `INDEPENDENT=YES`).
    pub independent: bool,
    pub data: Bytes,
}

/// A complete media segment.
#[derive(Clone, Debug)]
pub struct SegmentInfo {
    pub msn: u64,
    /// Duration in seconds (EXTINF).
    pub duration: f64,
    /// Start on the stream timeline, in seconds from the first keyframe.
    pub start: f64,
    /// Starts with a keyframe.
    pub independent: bool,
    /// Its parts; empty once the segment is older than three target durations.
    pub parts: Vec<PartInfo>,
    pub data: Bytes,
}

struct OpenPart {
    start_dts: i64,
    independent: bool,
    video: Vec<Sample>,
    audio: Vec<Sample>,
}

struct OpenSegment {
    msn: u64,
    start_dts: i64,
    independent: bool,
    parts: Vec<PartInfo>,
}

struct Pending {
    dts: i64,
    cts_offset: i32,
    keyframe: bool,
    data: SampleData,
}

pub struct Segmenter {
    config: HlsConfig,
    video_track: Option<Arc<TrackInfo>>,
    audio_track: Option<Arc<TrackInfo>>,
    audio_dropped: Option<AudioDropped>,
    /// Frames from the first keyframe, held while waiting for audio.
    startup: Vec<Frame>,
    init: Option<Bytes>,
    /// Added to video DTS to get the output timeline (90 kHz).
    video_shift: i64,
    /// Added to audio DTS to get the output timeline (audio timescale).
    audio_shift: i64,
    audio_next: Option<i64>,
    frame_interval: i64,
    pending: Option<Pending>,
    part: Option<OpenPart>,
    open: OpenSegment,
    segments: VecDeque<SegmentInfo>,
    fragment_sequence: u32,
    /// Longest segment so far, in seconds (EXT-X-TARGETDURATION never shrinks).
    longest_segment: f64,
}

impl Segmenter {
    pub fn new(config: HlsConfig) -> Self {
        let mut config = config;
        config.window_segments = config.window_segments.max(1);
        config.part_duration = config.part_duration.max(Duration::from_millis(10));
        config.target_duration = config.target_duration.max(config.part_duration);
        config.max_segment_duration = config.max_segment_duration.max(config.target_duration);
        Self {
            config,
            video_track: None,
            audio_track: None,
            audio_dropped: None,
            startup: Vec::new(),
            init: None,
            video_shift: 0,
            audio_shift: 0,
            audio_next: None,
            frame_interval: VIDEO_TIMESCALE / 25,
            pending: None,
            part: None,
            open: OpenSegment {
                msn: 0,
                start_dts: 0,
                independent: true,
                parts: Vec::new(),
            },
            segments: VecDeque::new(),
            fragment_sequence: 1,
            longest_segment: 0.0,
        }
    }

    pub fn config(&self) -> &HlsConfig {
        &self.config
    }

    /// The initialization segment, once the first keyframe (and audio, if
    /// any, within `audio_wait`) arrived.
    pub fn init(&self) -> Option<Bytes> {
        self.init.clone()
    }

    /// Set when the source's audio is not in the output, and why.
    pub fn audio_dropped(&self) -> Option<AudioDropped> {
        self.audio_dropped
    }

    /// Whether the output has an audio track.
    pub fn has_audio(&self) -> bool {
        self.init.is_some() && self.audio_track.is_some()
    }

    /// Complete segments in the window, oldest first.
    pub fn segments(&self) -> impl Iterator<Item = &SegmentInfo> {
        self.segments.iter()
    }

    /// EXT-X-MEDIA-SEQUENCE: the first segment in the window.
    pub fn media_sequence(&self) -> u64 {
        self.segments.front().map_or(self.open.msn, |s| s.msn)
    }

    /// Media sequence number of the segment being built (not yet complete).
    pub fn next_msn(&self) -> u64 {
        self.open.msn
    }

    /// Complete parts of the segment being built.
    pub fn open_parts(&self) -> &[PartInfo] {
        &self.open.parts
    }

    /// Whether the segment being built starts with a keyframe.
    pub fn open_independent(&self) -> bool {
        self.open.independent
    }

    /// EXT-X-TARGETDURATION (RFC 8216bis §4.4.3.1): an integer at least as
    /// large as every EXTINF rounded to the nearest integer. It is the
    /// configured target unless a longer segment was ever cut (a GOP longer
    /// than the target); it never decreases, as the tag must not change.
    pub fn target_duration_secs(&self) -> u64 {
        let configured = self.config.target_duration.as_secs_f64().ceil() as u64;
        configured.max(self.longest_segment.round() as u64)
    }

    pub fn segment(&self, msn: u64) -> Option<Bytes> {
        self.find(msn).map(|s| s.data.clone())
    }

    pub fn part(&self, msn: u64, part: u32) -> Option<Bytes> {
        let parts = if msn == self.open.msn {
            &self.open.parts
        } else {
            &self.find(msn)?.parts
        };
        parts.get(part as usize).map(|p| p.data.clone())
    }

    fn find(&self, msn: u64) -> Option<&SegmentInfo> {
        let first = self.segments.front()?.msn;
        self.segments
            .get(usize::try_from(msn.checked_sub(first)?).ok()?)
    }

    /// The (msn, part) the next partial segment will have: the
    /// EXT-X-PRELOAD-HINT target. `None` before the first keyframe.
    pub fn next_part(&self) -> Option<(u64, u32)> {
        self.init.as_ref()?;
        Some((self.open.msn, self.open.parts.len() as u32))
    }

    /// Consumes one frame. Frames must come in decode order per track.
    pub fn push(&mut self, frame: &Frame) -> Result<(), HlsError> {
        match frame.track.as_ref() {
            TrackInfo::Video(_) => {
                if let Some(t) = &self.video_track {
                    if **t != *frame.track {
                        return Err(HlsError::TrackChanged {
                            codec: frame.codec(),
                        });
                    }
                } else {
                    if !frame.keyframe {
                        return Ok(());
                    }
                    self.video_track = Some(frame.track.clone());
                    self.video_shift = frame.dts.saturating_neg();
                }
            }
            TrackInfo::Audio(a) => {
                if self.audio_track.is_none() && self.audio_dropped.is_none() {
                    if a.codec != Codec::Aac || a.config.is_none() {
                        self.audio_dropped = Some(AudioDropped::UnsupportedCodec(a.codec));
                    } else if self.init.is_some() {
                        self.audio_dropped = Some(AudioDropped::ArrivedLate);
                    } else {
                        self.audio_track = Some(frame.track.clone());
                    }
                }
                match &self.audio_track {
                    Some(t) if **t == *frame.track => {}
                    Some(_) => {
                        return Err(HlsError::TrackChanged {
                            codec: frame.codec(),
                        });
                    }
                    None => return Ok(()),
                }
                if self.video_track.is_none() {
                    return Ok(());
                }
            }
        }
        if self.init.is_none() {
            self.startup.push(frame.clone());
            let waited = self
                .startup
                .iter()
                .filter(|f| f.is_video())
                .map(|f| f.dts.saturating_add(self.video_shift))
                .max()
                .unwrap_or(0);
            let wait = i64::try_from(self.config.audio_wait.as_millis()).unwrap_or(i64::MAX);
            if self.audio_track.is_none()
                && waited < from_ms(wait, 90_000)
                && self.startup.len() < MAX_STARTUP_FRAMES
            {
                return Ok(());
            }
            return self.start();
        }
        self.process(frame)
    }

    /// Fixes the init segment and replays the frames held at startup.
    fn start(&mut self) -> Result<(), HlsError> {
        let Some(video) = self.video_track.clone() else {
            return Ok(());
        };
        if let Some(TrackInfo::Audio(a)) = self.audio_track.as_deref() {
            // Audio timeline starts at the same instant as video.
            let origin_ms = to_ms(self.video_shift.saturating_neg(), 90_000);
            self.audio_shift = from_ms(origin_ms, a.sample_rate.max(1)).saturating_neg();
        }
        let init = fmp4::init_segment(&video, self.audio_track.as_deref())?;
        self.init = Some(init);
        for f in std::mem::take(&mut self.startup) {
            self.process(&f)?;
        }
        Ok(())
    }

    fn process(&mut self, frame: &Frame) -> Result<(), HlsError> {
        match (&frame.data, frame.track.as_ref()) {
            (FrameData::Nals(nals), TrackInfo::Video(v)) => {
                let data = SampleData::video(v.codec, nals);
                self.push_video(frame, data)
            }
            (FrameData::Audio(a), TrackInfo::Audio(_)) => {
                self.push_audio(frame, a.clone());
                Ok(())
            }
            (_, t) => Err(HlsError::PayloadMismatch {
                codec: t.codec(),
                expected: if t.is_video() {
                    "NAL units"
                } else {
                    "an audio payload"
                },
            }),
        }
    }

    fn push_video(&mut self, frame: &Frame, data: SampleData) -> Result<(), HlsError> {
        let mut dts = frame.dts.saturating_add(self.video_shift);
        let max_gap = from_ms(MAX_GAP_MS, 90_000);
        if let Some(p) = self.pending.take() {
            let delta = dts.saturating_sub(p.dts);
            let delta = if delta <= 0 || delta > max_gap {
                let fixed = p.dts.saturating_add(self.frame_interval);
                self.video_shift = self.video_shift.saturating_add(fixed.saturating_sub(dts));
                dts = fixed;
                self.frame_interval
            } else {
                self.frame_interval = delta;
                delta
            };
            self.append_video(p, delta);
            if let Some(part) = &self.part {
                let seg_len = dts.saturating_sub(self.open.start_dts);
                let part_len = dts.saturating_sub(part.start_dts);
                let target = duration_ticks(self.config.target_duration);
                let max_seg = duration_ticks(self.config.max_segment_duration);
                let part_target = duration_ticks(self.config.part_duration);
                if (frame.keyframe && seg_len >= target) || seg_len >= max_seg {
                    self.close_part()?;
                    self.close_segment(dts, frame.keyframe);
                } else if part_len.saturating_add(self.frame_interval) > part_target {
                    self.close_part()?;
                }
            }
        }
        if self.part.is_none() {
            self.part = Some(OpenPart {
                start_dts: dts,
                independent: frame.keyframe,
                video: Vec::new(),
                audio: Vec::new(),
            });
            if self.open.parts.is_empty() {
                self.open.start_dts = dts;
                self.open.independent = frame.keyframe;
            }
        }
        let cts = frame
            .pts
            .saturating_sub(frame.dts)
            .clamp(0, i64::from(i32::MAX)) as i32;
        self.pending = Some(Pending {
            dts,
            cts_offset: cts,
            keyframe: frame.keyframe,
            data,
        });
        Ok(())
    }

    fn append_video(&mut self, p: Pending, duration: i64) {
        if let Some(part) = &mut self.part {
            part.video.push(Sample {
                dts: u64::try_from(p.dts).unwrap_or(0),
                cts_offset: p.cts_offset,
                duration: u32::try_from(duration).unwrap_or(u32::MAX),
                keyframe: p.keyframe,
                data: p.data,
            });
        }
    }

    fn push_audio(&mut self, frame: &Frame, data: Bytes) {
        let Some(part) = &mut self.part else {
            return;
        };
        if part.audio.len() >= MAX_AUDIO_SAMPLES_PER_PART {
            return;
        }
        let rate = frame.track.timescale();
        let mut dts = frame.dts.saturating_add(self.audio_shift);
        if let Some(next) = self.audio_next {
            let gap = dts.saturating_sub(next);
            if gap < -i64::from(AAC_FRAME_SAMPLES) || gap > from_ms(MAX_GAP_MS, rate) {
                self.audio_shift = self.audio_shift.saturating_add(next.saturating_sub(dts));
                dts = next;
            }
        }
        if dts < 0 {
            return;
        }
        // Within a trun only the first sample's time is explicit; the rest
        // follow by duration, so keep the run contiguous.
        let dts = match part.audio.last() {
            Some(last) => i64::try_from(last.dts)
                .unwrap_or(i64::MAX)
                .saturating_add(i64::from(last.duration)),
            None => dts.max(self.audio_next.unwrap_or(0)),
        };
        self.audio_next = Some(dts.saturating_add(i64::from(AAC_FRAME_SAMPLES)));
        part.audio.push(Sample {
            dts: dts as u64,
            cts_offset: 0,
            duration: AAC_FRAME_SAMPLES,
            keyframe: true,
            data: SampleData::Audio(data),
        });
    }

    fn close_part(&mut self) -> Result<(), HlsError> {
        let Some(part) = self.part.take() else {
            return Ok(());
        };
        if part.video.is_empty() {
            return Ok(());
        }
        let ticks: u64 = part.video.iter().map(|s| u64::from(s.duration)).sum();
        let mut runs = vec![TrackRun {
            track_id: VIDEO_TRACK_ID,
            samples: &part.video,
        }];
        if !part.audio.is_empty() {
            runs.push(TrackRun {
                track_id: AUDIO_TRACK_ID,
                samples: &part.audio,
            });
        }
        let data = fmp4::fragment(self.fragment_sequence, &runs)?;
        self.fragment_sequence = self.fragment_sequence.wrapping_add(1).max(1);
        self.open.parts.push(PartInfo {
            duration: ticks as f64 / VIDEO_TIMESCALE as f64,
            independent: part.independent,
            data,
        });
        Ok(())
    }

    /// Closes the open segment; the next one starts at `next_start`.
    fn close_segment(&mut self, next_start: i64, next_independent: bool) {
        let parts = std::mem::take(&mut self.open.parts);
        if parts.is_empty() {
            return;
        }
        let mut data = BytesMut::with_capacity(parts.iter().map(|p| p.data.len()).sum());
        for p in &parts {
            data.extend_from_slice(&p.data);
        }
        let duration: f64 = parts.iter().map(|p| p.duration).sum();
        self.longest_segment = self.longest_segment.max(duration);
        self.segments.push_back(SegmentInfo {
            msn: self.open.msn,
            duration,
            start: self.open.start_dts as f64 / VIDEO_TIMESCALE as f64,
            independent: self.open.independent,
            parts,
            data: data.freeze(),
        });
        self.open.msn += 1;
        self.open.start_dts = next_start;
        self.open.independent = next_independent;
        while self.segments.len() > self.config.window_segments {
            self.segments.pop_front();
        }
        // Drop the parts of segments ending more than 3 target durations
        // before the live edge (RFC 8216bis §4.4.4.9).
        let limit = 3.0 * self.config.target_duration.as_secs_f64();
        let mut from_end = 0.0;
        for s in self.segments.iter_mut().rev() {
            if from_end > limit {
                s.parts = Vec::new();
            }
            from_end += s.duration;
        }
    }

    /// Ends the stream: the held frame gets the last frame interval as its
    /// duration and the open part and segment are closed.
    pub fn finish(&mut self) -> Result<(), HlsError> {
        if self.init.is_none() && !self.startup.is_empty() {
            self.start()?;
        }
        if let Some(p) = self.pending.take() {
            let end = p.dts.saturating_add(self.frame_interval);
            self.append_video(p, self.frame_interval);
            self.close_part()?;
            self.close_segment(end, false);
        }
        Ok(())
    }
}

fn duration_ticks(d: Duration) -> i64 {
    i64::try_from(d.as_micros() * 9 / 100).unwrap_or(i64::MAX)
}
