//! Frames → what str0m's writer takes, sans IO: Annex B access units with
//! parameter sets on keyframes, RTP timestamps that only move forward, and
//! the keyframe-request replay.
//!
//! # Keyframe requests (PLI/FIR, RFC 4585 §6.3.1, RFC 5104 §4.3.1)
//!
//! We pass the camera's bitstream through and cannot make the camera encode
//! an IDR on demand. Re-sending only the cached keyframe would reset the
//! browser's decoder to that picture, and the following P-frames (which
//! reference frames after it, not the keyframe) would decode with smeared
//! artefacts until the next real IDR: Chromium tracks H.264 frame
//! continuity by sequence number only, so it decodes them.
//!
//! Instead the session re-subscribes to the stream's fan-out, whose GOP
//! cache starts at the last keyframe, and replays the whole cached group: the
//! frames it already sent go out again with timestamps squeezed one tick
//! apart right after the last one sent (so RTP time keeps increasing and the
//! player renders them as "late", i.e. decodes and drops them), then live
//! frames continue, shifted by the ticks used. The decoder ends up in exactly
//! the state it would have had without the loss, and the picture resumes at
//! once instead of after a GOP. A request is honoured at most once a second
//! (a burst of PLIs during one loss would otherwise replay the GOP each
//! time). If no group is cached the new subscription waits for the next
//! keyframe, skipping the undecodable frames in between.

use std::time::{Duration, Instant};

use bytes::{BufMut, Bytes, BytesMut};

use crate::codec::Codec;
use crate::media::{Frame, FrameData, TrackInfo};

/// Minimum time between two keyframe-request replays.
pub const KEYFRAME_REPLAY_INTERVAL: Duration = Duration::from_secs(1);

/// The next video payload for the writer.
#[derive(Debug, PartialEq, Eq)]
pub struct VideoOut {
    /// RTP time in 90 kHz ticks.
    pub rtp_time: u64,
    /// Annex B access unit.
    pub data: Vec<u8>,
    /// Part of a keyframe-request replay (already sent once).
    pub replayed: bool,
}

#[derive(Debug, PartialEq, Eq)]
pub struct AudioOut {
    /// RTP time in 8 kHz ticks.
    pub rtp_time: u64,
    pub data: Bytes,
}

/// Per-session timestamp and replay state.
#[derive(Debug, Default)]
pub struct Stamper {
    /// Added to a video frame's pts to get its RTP time.
    video_offset: Option<i64>,
    last_video_out: Option<i64>,
    /// dts of the last live video frame sent.
    last_video_dts: Option<i64>,
    /// While replaying: frames up to this dts were sent before.
    replay_until: Option<i64>,
    audio_offset: Option<i64>,
    last_audio_dts: Option<i64>,
    last_replay: Option<Instant>,
    replays: u64,
}

impl Stamper {
    /// A keyframe request came in at `now`: whether to replay the cached
    /// group (the caller then re-subscribes to the stream).
    pub fn request_keyframe(&mut self, now: Instant) -> bool {
        if self
            .last_replay
            .is_some_and(|t| now.saturating_duration_since(t) < KEYFRAME_REPLAY_INTERVAL)
        {
            return false;
        }
        self.last_replay = Some(now);
        // Nothing sent yet: the new subscription starts at a keyframe anyway.
        self.replay_until = self.last_video_dts;
        self.replays += 1;
        true
    }

    /// Keyframe-request replays done.
    pub fn replays(&self) -> u64 {
        self.replays
    }

    /// The RTP time and payload for a video frame, or `None` to skip it.
    pub fn video(&mut self, frame: &Frame) -> Option<VideoOut> {
        let FrameData::Nals(nals) = &frame.data else {
            return None;
        };
        let TrackInfo::Video(track) = frame.track.as_ref() else {
            return None;
        };
        if self.last_video_out.is_none() && !frame.keyframe {
            // A decoder can only start at a keyframe.
            return None;
        }
        let replayed = match self.replay_until {
            Some(until) if frame.dts <= until => true,
            Some(_) => {
                // First live frame after a replay: continue after the
                // squeezed frames.
                self.replay_until = None;
                if let (Some(off), Some(last)) = (self.video_offset, self.last_video_out)
                    && frame.pts + off <= last
                {
                    self.video_offset = Some(last + 1 - frame.pts);
                }
                false
            }
            None => false,
        };
        let out = if replayed {
            self.last_video_out.map_or(0, |l| l + 1)
        } else {
            let off = *self.video_offset.get_or_insert(-frame.pts);
            frame.pts + off
        };
        if replayed {
            // Keep pts + offset above the squeezed frames for what follows.
            if let Some(off) = self.video_offset.as_mut() {
                *off += 1;
            }
        } else {
            self.last_video_dts = Some(frame.dts);
        }
        self.last_video_out = Some(self.last_video_out.map_or(out, |l| l.max(out)));
        let mut data = BytesMut::new();
        if frame.keyframe {
            let has = |t: u8| nals.iter().any(|n| nal_type(track.codec, n) == Some(t));
            let sets: &[(u8, Option<&Bytes>)] = match track.codec {
                Codec::H265 => &[
                    (32, track.vps.as_ref()),
                    (33, Some(&track.sps)),
                    (34, Some(&track.pps)),
                ],
                _ => &[(7, Some(&track.sps)), (8, Some(&track.pps))],
            };
            // Parameter sets in band before each keyframe (RFC 6184 §8.4):
            // the answer carries no sprop-parameter-sets.
            for (t, nal) in sets {
                if let Some(nal) = nal
                    && !has(*t)
                {
                    put_nal(&mut data, nal);
                }
            }
        }
        for n in nals {
            put_nal(&mut data, n);
        }
        Some(VideoOut {
            rtp_time: u64::try_from(out).unwrap_or(0),
            data: data.to_vec(),
            replayed,
        })
    }

    /// The RTP time and payload for a G.711 frame (8 kHz), or `None` to
    /// skip it (replayed audio, other rates).
    pub fn audio(&mut self, frame: &Frame) -> Option<AudioOut> {
        let FrameData::Audio(data) = &frame.data else {
            return None;
        };
        if frame.track.timescale() != 8000 {
            return None;
        }
        if self.last_audio_dts.is_some_and(|d| frame.dts <= d) {
            // Sent before (a replay's backlog): audio needs no decoder state.
            return None;
        }
        self.last_audio_dts = Some(frame.dts);
        let off = *self.audio_offset.get_or_insert(-frame.pts);
        Some(AudioOut {
            rtp_time: u64::try_from(frame.pts + off).unwrap_or(0),
            data: data.clone(),
        })
    }
}

fn nal_type(codec: Codec, nal: &[u8]) -> Option<u8> {
    let b = *nal.first()?;
    Some(match codec {
        Codec::H265 => (b >> 1) & 0x3f,
        _ => b & 0x1f,
    })
}

fn put_nal(out: &mut BytesMut, nal: &[u8]) {
    out.put_slice(&[0, 0, 0, 1]);
    out.put_slice(nal);
}

/// The local ICE ufrag a STUN request is addressed to: the part of its
/// USERNAME before the colon (RFC 8445 §7.2.2: "<receiver ufrag>:<sender
/// ufrag>"). Bounded: reads only within the datagram and the STUN length.
pub fn stun_local_ufrag(pkt: &[u8]) -> Option<&str> {
    // RFC 5389 §6: first two bits zero, magic cookie at bytes 4..8.
    if pkt.len() < 20 || pkt[0] & 0xc0 != 0 || pkt[4..8] != [0x21, 0x12, 0xa4, 0x42] {
        return None;
    }
    let len = usize::from(u16::from_be_bytes([pkt[2], pkt[3]]));
    let end = pkt.len().min(20 + len);
    let mut i = 20;
    while i + 4 <= end {
        let typ = u16::from_be_bytes([pkt[i], pkt[i + 1]]);
        let l = usize::from(u16::from_be_bytes([pkt[i + 2], pkt[i + 3]]));
        let v = i + 4;
        if v + l > end {
            return None;
        }
        if typ == 0x0006 {
            let name = std::str::from_utf8(&pkt[v..v + l]).ok()?;
            return name.split(':').next();
        }
        // Attributes are padded to 4 bytes (RFC 5389 §15).
        i = v + l.div_ceil(4) * 4;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::{AudioTrack, VideoTrack};
    use std::sync::Arc;

    fn track() -> Arc<TrackInfo> {
        Arc::new(TrackInfo::Video(
            VideoTrack::h264(
                Bytes::from_static(crate::codec::samples::H264_SPS_640X360),
                Bytes::from_static(crate::codec::samples::H264_PPS),
            )
            .unwrap(),
        ))
    }

    fn vframe(track: &Arc<TrackInfo>, n: i64, key: bool) -> Frame {
        let nal = if key {
            vec![0x65, 0x88]
        } else {
            vec![0x41, 0x9a]
        };
        Frame {
            track: track.clone(),
            pts: 1000 + n * 3600,
            dts: 1000 + n * 3600,
            keyframe: key,
            data: FrameData::Nals(vec![Bytes::from(nal)]),
            received: None,
        }
    }

    #[test]
    fn starts_at_a_keyframe_with_parameter_sets() {
        let t = track();
        let mut s = Stamper::default();
        assert_eq!(s.video(&vframe(&t, 0, false)), None);
        let k = s.video(&vframe(&t, 1, true)).unwrap();
        assert_eq!(k.rtp_time, 0);
        // SPS, PPS, then the IDR, each with a start code.
        assert_eq!(&k.data[..5], &[0, 0, 0, 1, 0x67]);
        assert!(k.data.windows(5).any(|w| w == [0, 0, 0, 1, 0x68]));
        assert!(k.data.ends_with(&[0, 0, 0, 1, 0x65, 0x88]));
        let p = s.video(&vframe(&t, 2, false)).unwrap();
        assert_eq!(p.rtp_time, 3600);
        assert_eq!(p.data, vec![0, 0, 0, 1, 0x41, 0x9a]);
    }

    #[test]
    fn replay_keeps_rtp_time_increasing_and_is_rate_limited() {
        let t = track();
        let mut s = Stamper::default();
        let now = Instant::now();
        for n in 0..4 {
            s.video(&vframe(&t, n, n == 0)).unwrap();
        }
        assert!(s.request_keyframe(now));
        assert!(!s.request_keyframe(now + Duration::from_millis(500)));
        // The new subscription replays frames 0..=3, then live 4, 5.
        let mut times = Vec::new();
        for n in 0..6 {
            let o = s.video(&vframe(&t, n, n == 0)).unwrap();
            assert_eq!(o.replayed, n <= 3, "frame {n}");
            times.push(o.rtp_time);
        }
        assert_eq!(
            &times[..4],
            &[3 * 3600 + 1, 3 * 3600 + 2, 3 * 3600 + 3, 3 * 3600 + 4]
        );
        assert!(times.windows(2).all(|w| w[0] < w[1]), "{times:?}");
        assert_eq!(times[5] - times[4], 3600);
        assert!(s.request_keyframe(now + Duration::from_secs(1)));
        assert_eq!(s.replays(), 2);
    }

    #[test]
    fn audio_is_not_replayed() {
        let a = Arc::new(TrackInfo::Audio(AudioTrack::g711(Codec::G711A, 8000, 1)));
        let f = |ts: i64| Frame {
            track: a.clone(),
            pts: ts,
            dts: ts,
            keyframe: true,
            data: FrameData::Audio(Bytes::from_static(&[0xd5; 160])),
            received: None,
        };
        let mut s = Stamper::default();
        assert_eq!(s.audio(&f(500)).unwrap().rtp_time, 0);
        assert_eq!(s.audio(&f(660)).unwrap().rtp_time, 160);
        assert_eq!(s.audio(&f(660)), None);
    }

    #[test]
    fn stun_username() {
        let mut p = vec![0x00, 0x01, 0x00, 0x10, 0x21, 0x12, 0xa4, 0x42];
        p.extend_from_slice(&[7; 12]);
        p.extend_from_slice(&[0x00, 0x06, 0x00, 0x09]);
        p.extend_from_slice(b"abcd:wxyz\0\0\0");
        assert_eq!(stun_local_ufrag(&p), Some("abcd"));
        assert_eq!(stun_local_ufrag(&p[..30]), None);
        assert_eq!(stun_local_ufrag(&[0x80; 40]), None);
    }
}
