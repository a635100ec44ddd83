//! FLV muxing, sans-IO. [`FlvMuxer`] turns frames into tag bodies once per
//! stream; [`FlvWriter`] frames those bodies for one viewer, with timestamps
//! rebased to start near 0 for that viewer.
//!
//! References: Adobe "Video File Format Specification" v10.1 (E.4: tags, E.4.2
//! audio, E.4.3 video) and the Enhanced RTMP/FLV specification (v1, 2023) for
//! H.265 (`ExVideoTagHeader`, FourCC `hvc1`).

use std::sync::Arc;

use bytes::{BufMut, Bytes, BytesMut};

use crate::codec::nal::{NalKind, classify};
use crate::codec::{Codec, CodecError};
use crate::media::{Frame, FrameData, TrackInfo};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TagKind {
    Audio = 8,
    Video = 9,
    Script = 18,
}

/// A tag body, shared by every viewer of the stream.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FlvTag {
    pub kind: TagKind,
    /// Decode time on the stream's timeline, in ms.
    pub dts_ms: i64,
    pub body: Bytes,
    /// A video keyframe (a viewer may start here).
    pub keyframe: bool,
    /// An AVC/HEVC/AAC sequence header.
    pub sequence_header: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum FlvError {
    #[error("cannot build the {codec} sequence header: {source}")]
    SequenceHeader {
        codec: Codec,
        #[source]
        source: CodecError,
    },
    #[error("{codec} frame does not match its track (expected {expected})")]
    PayloadMismatch {
        codec: Codec,
        expected: &'static str,
    },
}

/// Enhanced FLV video packet types (Enhanced RTMP v1, ExVideoTagHeader).
const PACKET_TYPE_SEQUENCE_START: u8 = 0;
const PACKET_TYPE_CODED_FRAMES: u8 = 1;
/// FLV VideoTagHeader FrameType values.
const FRAME_TYPE_KEY: u8 = 1;
const FRAME_TYPE_INTER: u8 = 2;
/// FLV CodecID 7 = AVC.
const CODEC_ID_AVC: u8 = 7;

/// AAC: SoundFormat 10, 44 kHz, 16-bit, stereo — fixed values the format
/// requires for AAC whatever the real rate (E.4.2.1).
const AAC_SOUND_FLAGS: u8 = 0xaf;
/// G.711: SoundFormat 7 (A-law) / 8 (mu-law), 16-bit, mono; the rate field is
/// ignored by readers, which assume 8 kHz for these formats.
const G711A_SOUND_FLAGS: u8 = 0x72;
const G711U_SOUND_FLAGS: u8 = 0x82;

#[derive(Default)]
pub struct FlvMuxer {
    video_track: Option<Arc<TrackInfo>>,
    audio_track: Option<Arc<TrackInfo>>,
    video_sequence: Option<FlvTag>,
    audio_sequence: Option<FlvTag>,
}

fn put_i24(out: &mut BytesMut, v: i64) {
    let v = v.clamp(-(1 << 23), (1 << 23) - 1) as i32;
    out.put_slice(&v.to_be_bytes()[1..]);
}

impl FlvMuxer {
    pub fn new() -> Self {
        Self::default()
    }

    /// The current sequence headers, video first: what a new viewer needs
    /// before any frame.
    pub fn sequence_headers(&self) -> impl Iterator<Item = &FlvTag> {
        self.video_sequence.iter().chain(self.audio_sequence.iter())
    }

    pub fn video_track(&self) -> Option<&Arc<TrackInfo>> {
        self.video_track.as_ref()
    }

    pub fn audio_track(&self) -> Option<&Arc<TrackInfo>> {
        self.audio_track.as_ref()
    }

    /// Muxes one frame, appending its tags to `out`: a new sequence header
    /// first when the track's parameters changed, then the frame's own tag.
    pub fn push(&mut self, frame: &Frame, out: &mut Vec<FlvTag>) -> Result<(), FlvError> {
        let dts_ms = frame.dts_ms();
        match frame.track.as_ref() {
            TrackInfo::Video(v) => {
                let FrameData::Nals(nals) = &frame.data else {
                    return Err(FlvError::PayloadMismatch {
                        codec: v.codec,
                        expected: "NAL units",
                    });
                };
                if self.video_track.as_ref().is_none_or(|t| t != &frame.track) {
                    let tag = video_sequence_header(&frame.track, dts_ms)?;
                    out.push(tag.clone());
                    self.video_sequence = Some(tag);
                }
                self.video_track = Some(frame.track.clone());
                if let Some(tag) = video_tag(v.codec, frame, nals, dts_ms) {
                    out.push(tag);
                }
            }
            TrackInfo::Audio(a) => {
                let FrameData::Audio(payload) = &frame.data else {
                    return Err(FlvError::PayloadMismatch {
                        codec: a.codec,
                        expected: "an audio payload",
                    });
                };
                if self.audio_track.as_ref().is_none_or(|t| t != &frame.track) {
                    self.audio_sequence = audio_sequence_header(&frame.track, dts_ms);
                    out.extend(self.audio_sequence.clone());
                }
                self.audio_track = Some(frame.track.clone());
                let mut body = BytesMut::with_capacity(2 + payload.len());
                match a.codec {
                    Codec::Aac => {
                        body.put_u8(AAC_SOUND_FLAGS);
                        body.put_u8(1); // AACPacketType: raw
                    }
                    Codec::G711A => body.put_u8(G711A_SOUND_FLAGS),
                    _ => body.put_u8(G711U_SOUND_FLAGS),
                }
                body.put_slice(payload);
                out.push(FlvTag {
                    kind: TagKind::Audio,
                    dts_ms,
                    body: body.freeze(),
                    keyframe: false,
                    sequence_header: false,
                });
            }
        }
        Ok(())
    }

    /// An `onMetaData` script tag describing the current tracks.
    pub fn metadata(&self) -> FlvTag {
        let mut props: Vec<(&str, Amf0)> = vec![("encoder", Amf0::String("camgate"))];
        if let Some(t) = &self.video_track
            && let TrackInfo::Video(v) = t.as_ref()
        {
            props.push(("width", Amf0::Number(f64::from(v.width))));
            props.push(("height", Amf0::Number(f64::from(v.height))));
            let id = match v.codec {
                // Enhanced RTMP: videocodecid may carry the FourCC as a number.
                Codec::H265 => f64::from(u32::from_be_bytes(*b"hvc1")),
                _ => f64::from(CODEC_ID_AVC),
            };
            props.push(("videocodecid", Amf0::Number(id)));
        }
        if let Some(t) = &self.audio_track
            && let TrackInfo::Audio(a) = t.as_ref()
        {
            let id = match a.codec {
                Codec::Aac => 10.0,
                Codec::G711A => 7.0,
                _ => 8.0,
            };
            props.push(("audiocodecid", Amf0::Number(id)));
            props.push(("audiosamplerate", Amf0::Number(f64::from(a.sample_rate))));
            props.push(("stereo", Amf0::Bool(a.channels > 1)));
        }
        let mut body = BytesMut::with_capacity(256);
        amf0_string(&mut body, "onMetaData");
        body.put_u8(0x08); // ECMA array
        body.put_u32(props.len() as u32);
        for (k, v) in props {
            body.put_u16(k.len() as u16);
            body.put_slice(k.as_bytes());
            match v {
                Amf0::Number(n) => {
                    body.put_u8(0x00);
                    body.put_f64(n);
                }
                Amf0::Bool(b) => {
                    body.put_u8(0x01);
                    body.put_u8(u8::from(b));
                }
                Amf0::String(s) => amf0_string(&mut body, s),
            }
        }
        body.put_slice(&[0, 0, 9]); // object end
        FlvTag {
            kind: TagKind::Script,
            dts_ms: 0,
            body: body.freeze(),
            keyframe: false,
            sequence_header: false,
        }
    }
}

enum Amf0 {
    Number(f64),
    Bool(bool),
    String(&'static str),
}

fn amf0_string(out: &mut BytesMut, s: &str) {
    out.put_u8(0x02);
    out.put_u16(s.len() as u16);
    out.put_slice(s.as_bytes());
}

fn video_sequence_header(track: &TrackInfo, dts_ms: i64) -> Result<FlvTag, FlvError> {
    let TrackInfo::Video(v) = track else {
        unreachable!("video_sequence_header is only called for video tracks")
    };
    let record = v
        .decoder_configuration()
        .map_err(|source| FlvError::SequenceHeader {
            codec: v.codec,
            source,
        })?;
    let mut body = BytesMut::with_capacity(8 + record.len());
    if v.codec == Codec::H265 {
        body.put_u8(0x80 | (FRAME_TYPE_KEY << 4) | PACKET_TYPE_SEQUENCE_START);
        body.put_slice(b"hvc1");
    } else {
        body.put_u8((FRAME_TYPE_KEY << 4) | CODEC_ID_AVC);
        body.put_u8(0); // AVCPacketType: sequence header
        put_i24(&mut body, 0);
    }
    body.put_slice(&record);
    Ok(FlvTag {
        kind: TagKind::Video,
        dts_ms,
        body: body.freeze(),
        keyframe: true,
        sequence_header: true,
    })
}

fn audio_sequence_header(track: &TrackInfo, dts_ms: i64) -> Option<FlvTag> {
    let TrackInfo::Audio(a) = track else {
        return None;
    };
    let config = a.config.as_ref().filter(|_| a.codec == Codec::Aac)?;
    let mut body = BytesMut::with_capacity(2 + config.len());
    body.put_u8(AAC_SOUND_FLAGS);
    body.put_u8(0); // AACPacketType: sequence header
    body.put_slice(config);
    Some(FlvTag {
        kind: TagKind::Audio,
        dts_ms,
        body: body.freeze(),
        keyframe: false,
        sequence_header: true,
    })
}

fn video_tag(codec: Codec, frame: &Frame, nals: &[bytes::Bytes], dts_ms: i64) -> Option<FlvTag> {
    let nals: Vec<&Bytes> = nals
        .iter()
        .filter(|n| !n.is_empty() && classify(codec, n) != NalKind::Aud)
        .collect();
    if nals.is_empty() {
        return None;
    }
    let size: usize = nals.iter().map(|n| n.len() + 4).sum();
    let mut body = BytesMut::with_capacity(8 + size);
    let frame_type = if frame.keyframe {
        FRAME_TYPE_KEY
    } else {
        FRAME_TYPE_INTER
    };
    let cts = frame.pts_ms() - dts_ms;
    if codec == Codec::H265 {
        body.put_u8(0x80 | (frame_type << 4) | PACKET_TYPE_CODED_FRAMES);
        body.put_slice(b"hvc1");
    } else {
        body.put_u8((frame_type << 4) | CODEC_ID_AVC);
        body.put_u8(1); // AVCPacketType: NALUs
    }
    put_i24(&mut body, cts);
    for n in nals {
        body.put_u32(n.len() as u32);
        body.put_slice(n);
    }
    Some(FlvTag {
        kind: TagKind::Video,
        dts_ms,
        body: body.freeze(),
        keyframe: frame.keyframe,
        sequence_header: false,
    })
}

/// The 9-byte FLV header plus PreviousTagSize0.
pub fn file_header(has_audio: bool, has_video: bool) -> Bytes {
    let flags = (u8::from(has_audio) << 2) | u8::from(has_video);
    Bytes::copy_from_slice(&[b'F', b'L', b'V', 1, flags, 0, 0, 0, 9, 0, 0, 0, 0])
}

/// Frames shared tag bodies for one viewer. Its timestamps start at 0 with the
/// first media tag the viewer receives and never go backwards per track.
#[derive(Default)]
pub struct FlvWriter {
    base_ms: Option<i64>,
    last_audio: u32,
    last_video: u32,
}

impl FlvWriter {
    pub fn new() -> Self {
        Self::default()
    }

    /// The viewer-relative timestamp a tag gets.
    fn timestamp(&mut self, tag: &FlvTag) -> u32 {
        if tag.kind == TagKind::Script {
            return 0;
        }
        let base = match self.base_ms {
            Some(b) => b,
            None if tag.sequence_header => return 0,
            None => *self.base_ms.insert(tag.dts_ms),
        };
        let ts = (tag.dts_ms - base).clamp(0, i64::from(u32::MAX)) as u32;
        let last = if tag.kind == TagKind::Audio {
            &mut self.last_audio
        } else {
            &mut self.last_video
        };
        *last = (*last).max(ts);
        *last
    }

    /// The tag as three chunks: its 11-byte header, the shared body, and the
    /// 4-byte PreviousTagSize that follows it.
    pub fn write(&mut self, tag: &FlvTag) -> [Bytes; 3] {
        let ts = self.timestamp(tag);
        let len = tag.body.len().min(0x00ff_ffff) as u32;
        let mut h = [0u8; 11];
        h[0] = tag.kind as u8;
        h[1..4].copy_from_slice(&len.to_be_bytes()[1..]);
        h[4..7].copy_from_slice(&ts.to_be_bytes()[1..]);
        h[7] = (ts >> 24) as u8; // TimestampExtended
        let prev = (11 + len).to_be_bytes();
        [
            Bytes::copy_from_slice(&h),
            tag.body.clone(),
            Bytes::copy_from_slice(&prev),
        ]
    }
}

/// A parsed FLV tag, for tests, tools and fuzzing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParsedTag {
    pub kind: u8,
    pub timestamp: u32,
    pub body: Bytes,
}

#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum FlvParseError {
    #[error("not an FLV file (bad signature)")]
    Signature,
    #[error("truncated at byte {0}")]
    Truncated(usize),
    #[error("PreviousTagSize {found} at byte {offset} does not match the tag size {expected}")]
    PreviousTagSize {
        offset: usize,
        found: u32,
        expected: u32,
    },
}

/// Parses a complete FLV byte stream. A partial last tag is reported as
/// [`FlvParseError::Truncated`] with the offset where it starts.
pub fn parse(data: &Bytes) -> Result<Vec<ParsedTag>, FlvParseError> {
    if data.len() < 13 {
        return Err(FlvParseError::Truncated(0));
    }
    if &data[..3] != b"FLV" {
        return Err(FlvParseError::Signature);
    }
    let header_len = u32::from_be_bytes([data[5], data[6], data[7], data[8]]) as usize;
    let mut pos = header_len
        .checked_add(4)
        .ok_or(FlvParseError::Truncated(5))?;
    let mut tags = Vec::new();
    while pos < data.len() {
        let Some(h) = data.get(pos..pos + 11) else {
            return Err(FlvParseError::Truncated(pos));
        };
        let len = u32::from_be_bytes([0, h[1], h[2], h[3]]) as usize;
        let timestamp = u32::from_be_bytes([h[7], h[4], h[5], h[6]]);
        let body_end = pos + 11 + len;
        let Some(prev) = data.get(body_end..body_end + 4) else {
            return Err(FlvParseError::Truncated(pos));
        };
        let found = u32::from_be_bytes([prev[0], prev[1], prev[2], prev[3]]);
        let expected = (11 + len) as u32;
        if found != expected {
            return Err(FlvParseError::PreviousTagSize {
                offset: body_end,
                found,
                expected,
            });
        }
        tags.push(ParsedTag {
            kind: h[0] & 0x1f,
            timestamp,
            body: data.slice(pos + 11..body_end),
        });
        pos = body_end + 4;
    }
    Ok(tags)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::h264::tests::{PPS as PPS264, SPS_640X360};
    use crate::codec::h265::tests::{PPS, SPS, VPS};
    use crate::codec::{h264, h265};
    use crate::media::{AudioTrack, VideoTrack};
    use proptest::prelude::*;

    fn h264_track() -> Arc<TrackInfo> {
        Arc::new(TrackInfo::Video(
            VideoTrack::h264(Bytes::from_static(SPS_640X360), Bytes::from_static(PPS264)).unwrap(),
        ))
    }

    fn h265_track() -> Arc<TrackInfo> {
        Arc::new(TrackInfo::Video(
            VideoTrack::h265(
                Bytes::from_static(VPS),
                Bytes::from_static(SPS),
                Bytes::from_static(PPS),
            )
            .unwrap(),
        ))
    }

    fn video(track: &Arc<TrackInfo>, dts: i64, pts: i64, key: bool) -> Frame {
        let slice: &'static [u8] = match (track.codec(), key) {
            (Codec::H264, true) => &[0x65, 0x88, 0x80],
            (Codec::H264, false) => &[0x41, 0x9a],
            (_, true) => &[0x26, 0x01, 0xaf],
            (_, false) => &[0x02, 0x01, 0xd0],
        };
        Frame {
            track: track.clone(),
            pts,
            dts,
            keyframe: key,
            data: FrameData::Nals(vec![
                Bytes::from_static(&[0x09, 0xf0]),
                Bytes::from_static(slice),
            ]),
            received: None,
        }
    }

    fn mux_all(frames: &[Frame]) -> Bytes {
        let mut m = FlvMuxer::new();
        let mut w = FlvWriter::new();
        let mut out = BytesMut::new();
        out.put_slice(&file_header(true, true));
        let mut tags = Vec::new();
        for f in frames {
            m.push(f, &mut tags).unwrap();
        }
        for t in std::iter::once(m.metadata()).chain(tags) {
            for c in w.write(&t) {
                out.put_slice(&c);
            }
        }
        out.freeze()
    }

    #[test]
    fn h264_tags_parse_back_with_avcc_and_cts() {
        let t = h264_track();
        let data = mux_all(&[
            video(&t, 900_000, 900_000 + 7200, true),
            video(&t, 903_600, 903_600, false),
        ]);
        let tags = parse(&data).unwrap();
        assert_eq!(tags.len(), 4); // metadata, sequence header, 2 frames
        assert_eq!(tags[0].kind, 18);
        let seq = &tags[1];
        assert_eq!(&seq.body[..2], &[0x17, 0x00]);
        let cfg = h264::parse_avc_decoder_configuration(&seq.body.slice(5..)).unwrap();
        assert_eq!(&cfg.sps[0][..], SPS_640X360);
        let key = &tags[2];
        assert_eq!(key.timestamp, 0, "viewer timeline starts at 0");
        assert_eq!(&key.body[..2], &[0x17, 0x01]);
        assert_eq!(&key.body[2..5], &[0, 0, 80], "composition time 80 ms");
        // The AUD is dropped; one NAL remains, length-prefixed.
        assert_eq!(&key.body[5..9], &[0, 0, 0, 3]);
        assert_eq!(tags[3].timestamp, 40);
        assert_eq!(tags[3].body[0], 0x27);
    }

    #[test]
    fn h265_uses_enhanced_flv() {
        let t = h265_track();
        let data = mux_all(&[video(&t, 0, 0, true)]);
        let tags = parse(&data).unwrap();
        let seq = &tags[1];
        assert_eq!(seq.body[0], 0x80 | 0x10);
        assert_eq!(&seq.body[1..5], b"hvc1");
        let cfg = h265::parse_hevc_decoder_configuration(&seq.body.slice(5..)).unwrap();
        assert_eq!(&cfg.vps[0][..], VPS);
        assert_eq!(tags[2].body[0], 0x80 | 0x10 | 1);
        assert_eq!(&tags[2].body[1..5], b"hvc1");
    }

    #[test]
    fn audio_tags() {
        let aac = Arc::new(TrackInfo::Audio(
            AudioTrack::aac(Bytes::from_static(&[0x15, 0x88])).unwrap(),
        ));
        let pcma = Arc::new(TrackInfo::Audio(AudioTrack::g711(Codec::G711A, 8000, 1)));
        let pcmu = Arc::new(TrackInfo::Audio(AudioTrack::g711(Codec::G711U, 8000, 1)));
        let frame = |t: &Arc<TrackInfo>| Frame {
            track: t.clone(),
            pts: 0,
            dts: 0,
            keyframe: true,
            data: FrameData::Audio(Bytes::from_static(&[1, 2, 3])),
            received: None,
        };
        let mut m = FlvMuxer::new();
        let mut tags = Vec::new();
        m.push(&frame(&aac), &mut tags).unwrap();
        assert_eq!(&tags[0].body[..], &[0xaf, 0, 0x15, 0x88]);
        assert_eq!(&tags[1].body[..], &[0xaf, 1, 1, 2, 3]);
        tags.clear();
        m.push(&frame(&pcma), &mut tags).unwrap();
        assert_eq!(tags.len(), 1, "G.711 has no sequence header");
        assert_eq!(&tags[0].body[..], &[0x72, 1, 2, 3]);
        tags.clear();
        m.push(&frame(&pcmu), &mut tags).unwrap();
        assert_eq!(tags[0].body[0], 0x82);
    }

    #[test]
    fn parameter_change_emits_new_sequence_header_and_same_track_does_not() {
        let t = h264_track();
        let mut m = FlvMuxer::new();
        let mut tags = Vec::new();
        m.push(&video(&t, 0, 0, true), &mut tags).unwrap();
        m.push(&video(&t, 3600, 3600, false), &mut tags).unwrap();
        assert_eq!(tags.iter().filter(|t| t.sequence_header).count(), 1);
        let t2 = h265_track();
        m.push(&video(&t2, 7200, 7200, true), &mut tags).unwrap();
        assert_eq!(tags.iter().filter(|t| t.sequence_header).count(), 2);
        assert_eq!(m.sequence_headers().count(), 1);
    }

    #[test]
    fn parse_rejects_bad_input() {
        assert_eq!(
            parse(&Bytes::from_static(b"XYZ\x01\x05\0\0\0\x09\0\0\0\0")),
            Err(FlvParseError::Signature)
        );
        let good = mux_all(&[video(&h264_track(), 0, 0, true)]);
        assert!(matches!(
            parse(&good.slice(..good.len() - 2)),
            Err(FlvParseError::Truncated(_))
        ));
    }

    proptest! {
        /// Tag timestamps a viewer sees never go backwards per track and start
        /// at 0, whatever the stream's timeline and wherever the viewer joins.
        #[test]
        fn viewer_timestamps_are_monotonic(
            start in -1_000_000i64..10_000_000_000,
            steps in proptest::collection::vec((0i64..7200, any::<bool>(), 0i64..9000), 1..100),
            join in 0usize..100,
        ) {
            let t = h264_track();
            let a = Arc::new(TrackInfo::Audio(AudioTrack::g711(Codec::G711A, 8000, 1)));
            let mut m = FlvMuxer::new();
            let mut tags = Vec::new();
            let mut dts = start;
            for (i, (step, key, cts)) in steps.iter().enumerate() {
                dts += step;
                m.push(&video(&t, dts, dts + cts, *key || i == 0), &mut tags).unwrap();
                m.push(&Frame { track: a.clone(), pts: dts * 8000 / 90000 - 400, dts: dts * 8000 / 90000 - 400, keyframe: true, data: FrameData::Audio(Bytes::from_static(&[0; 160])), received: None,  }, &mut tags).unwrap();
            }
            let mut w = FlvWriter::new();
            let mut out = BytesMut::new();
            out.put_slice(&file_header(true, true));
            let join = join.min(tags.len() - 1);
            for tag in m.sequence_headers().cloned().collect::<Vec<_>>().iter().chain(&tags[join..]) {
                for c in w.write(tag) { out.put_slice(&c); }
            }
            let parsed = parse(&out.freeze()).unwrap();
            let mut last = [0u32; 32];
            let mut first_media = None;
            for p in &parsed {
                prop_assert!(p.timestamp >= last[p.kind as usize]);
                last[p.kind as usize] = p.timestamp;
                if first_media.is_none() && !(p.body.len() > 1 && (p.body[1] == 0 && (p.body[0] == 0x17 || p.body[0] == 0xaf))) {
                    first_media = Some(p.timestamp);
                }
            }
            prop_assert_eq!(first_media, Some(0));
        }
    }
}
