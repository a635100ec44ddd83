//! Elementary-stream files as the device simulator plays them: an H.264 or
//! H.265 Annex B byte stream cut into access units, and raw G.711 or AAC ADTS
//! audio cut into frames, each turned into [`Frame`]s with timestamps made up
//! from a frame rate (video, 90 kHz) or the sample count (audio).
//!
//! Parsing works on `Bytes` and keeps NAL units and audio frames as zero-copy
//! slices of it. The only IO in the module is [`read_bounded`], which the
//! `read_file` helpers use to load a whole file of at most [`MAX_FILE_BYTES`].
//!
//! Access units are delimited as ITU-T H.264 §7.4.1.2.3 and H.265 §7.4.2.4.4
//! say: a new one starts at the first AUD/parameter set/SEI/… after the last
//! VCL NAL of the previous one, or at a VCL NAL that starts a new picture
//! (`first_mb_in_slice == 0`, `first_slice_segment_in_pic_flag == 1`).
//!
//! Timestamps are assigned in decode order with `pts == dts`: a stream with
//! B-frames therefore presents its pictures at decode-order times.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;

use super::nal::{self, NalKind};
use super::{Codec, CodecError, aac, h264, h265};
use crate::media::{AudioTrack, Frame, FrameData, TrackInfo, VideoTrack};

/// Largest file [`read_bounded`] loads.
pub const MAX_FILE_BYTES: u64 = 256 * 1024 * 1024;
/// Most NAL units one access unit may hold.
pub const MAX_NALS_PER_ACCESS_UNIT: usize = 1024;
/// The frame rate used when none is given.
pub const DEFAULT_FPS: u32 = 25;
/// G.711 is sampled at 8 kHz, one byte per sample (ITU-T G.711).
pub const G711_SAMPLE_RATE: u32 = 8000;
/// The usual G.711 packet duration (RTP/AVP and GB28181 devices).
pub const DEFAULT_G711_FRAME_MS: u32 = 20;
/// Samples per AAC frame (ISO/IEC 14496-3 §4.5.2.1, 1024-sample frames).
pub const AAC_FRAME_SAMPLES: u32 = 1024;

/// Why an elementary-stream file could not be read.
#[derive(Debug, thiserror::Error)]
pub enum EsError {
    #[error("cannot read {}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{} is larger than {max} bytes", path.display())]
    TooLarge { path: PathBuf, max: u64 },
    #[error("no Annex B NAL units (no 00 00 01 start code) in the video stream")]
    NoNalUnits,
    #[error("neither an H.264 nor an H.265 SPS found: cannot tell the video codec")]
    UnknownCodec,
    #[error("{codec} stream has no {missing}")]
    MissingParameterSet { codec: Codec, missing: &'static str },
    #[error("{codec} parameter sets of access unit {access_unit} are invalid: {source}")]
    ParameterSet {
        codec: Codec,
        access_unit: usize,
        #[source]
        source: CodecError,
    },
    #[error("access unit {access_unit} has more than {max} NAL units")]
    TooManyNals { access_unit: usize, max: usize },
    #[error("the video stream holds no picture (no VCL NAL unit)")]
    NoAccessUnits,
    #[error("invalid frame rate {num}/{den}")]
    InvalidFrameRate { num: u32, den: u32 },
    #[error("{codec} is not a G.711 codec")]
    NotG711 { codec: Codec },
    #[error("G.711 frame duration {ms} ms is outside 10..=100 ms")]
    InvalidG711FrameMs { ms: u32 },
    #[error("ADTS frame at byte {offset}: {source}")]
    Adts {
        offset: usize,
        #[source]
        source: CodecError,
    },
    #[error("ADTS frame at byte {offset} is {frame_len} bytes but only {remaining} remain")]
    AdtsTruncated {
        offset: usize,
        frame_len: usize,
        remaining: usize,
    },
    #[error("ADTS frame at byte {offset} holds {blocks} raw data blocks; only 1 is supported")]
    AdtsMultipleBlocks { offset: usize, blocks: u8 },
    #[error("ADTS frame at byte {offset} changes the stream configuration")]
    AdtsConfigChanged { offset: usize },
    #[error("the audio stream is empty")]
    EmptyAudio,
}

/// Loads a whole file of at most [`MAX_FILE_BYTES`].
pub fn read_bounded(path: &Path) -> Result<Bytes, EsError> {
    let io = |source| EsError::Io {
        path: path.to_owned(),
        source,
    };
    let file = std::fs::File::open(path).map_err(io)?;
    let mut data = Vec::new();
    file.take(MAX_FILE_BYTES + 1)
        .read_to_end(&mut data)
        .map_err(io)?;
    if data.len() as u64 > MAX_FILE_BYTES {
        return Err(EsError::TooLarge {
            path: path.to_owned(),
            max: MAX_FILE_BYTES,
        });
    }
    Ok(Bytes::from(data))
}

/// A frame rate as the fraction `num / den` frames per second.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FrameRate {
    num: u32,
    den: u32,
}

impl Default for FrameRate {
    fn default() -> Self {
        Self {
            num: DEFAULT_FPS,
            den: 1,
        }
    }
}

impl FrameRate {
    /// `num / den` frames per second, between 1/10 and 1000 fps.
    pub fn new(num: u32, den: u32) -> Result<Self, EsError> {
        let (n, d) = (u64::from(num), u64::from(den));
        let ok = n > 0 && d > 0 && n <= 1000 * d && d <= 10 * n;
        if ok {
            Ok(Self { num, den })
        } else {
            Err(EsError::InvalidFrameRate { num, den })
        }
    }

    /// Whole frames per second.
    pub fn fps(fps: u32) -> Result<Self, EsError> {
        Self::new(fps, 1)
    }

    /// Start of frame `index` in units of `timescale` per second, rounded down.
    pub fn ticks(self, index: u64, timescale: u32) -> i64 {
        let t =
            i128::from(index) * i128::from(timescale) * i128::from(self.den) / i128::from(self.num);
        i64::try_from(t).unwrap_or(i64::MAX)
    }
}

/// One video access unit of an elementary stream.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AccessUnit {
    /// The parameter sets in force for this access unit.
    pub track: Arc<TrackInfo>,
    /// NAL units without start codes, as in the file (AUD, SEI included).
    pub nals: Vec<Bytes>,
    /// Holds an IDR (H.264) or IRAP (H.265) picture.
    pub keyframe: bool,
}

/// An H.264 or H.265 elementary stream split into access units.
#[derive(Clone, Debug)]
pub struct VideoEs {
    codec: Codec,
    first_track: Arc<TrackInfo>,
    access_units: Vec<AccessUnit>,
}

impl VideoEs {
    /// Reads and parses an Annex B file (see [`VideoEs::parse`]).
    pub fn read_file(path: &Path) -> Result<Self, EsError> {
        Self::parse(read_bounded(path)?)
    }

    /// Detects the codec and splits an Annex B byte stream into access units.
    ///
    /// Every access unit gets the track of the parameter sets in force: the
    /// first complete set of the stream, replaced whenever a later access unit
    /// carries different ones. Non-VCL NAL units after the last picture are
    /// dropped.
    pub fn parse(data: Bytes) -> Result<Self, EsError> {
        let nals = nal::split_annex_b(&data);
        if nals.is_empty() {
            return Err(EsError::NoNalUnits);
        }
        let codec = detect_codec(&nals).ok_or(EsError::UnknownCodec)?;
        let mut params = ParamSets::default();
        for n in &nals {
            params.note(codec, n);
            if params.complete(codec) {
                break;
            }
        }
        let mut track = Arc::new(params.track(codec, 0)?);
        let first_track = track.clone();

        let mut access_units: Vec<AccessUnit> = Vec::new();
        let mut current: Vec<Bytes> = Vec::new();
        let mut has_vcl = false;
        for n in nals {
            let (vcl, starts_au) = au_boundary(codec, &n);
            if has_vcl && starts_au {
                let au = std::mem::take(&mut current);
                push_au(&mut access_units, codec, &mut track, &mut params, au)?;
                has_vcl = false;
            }
            if current.len() >= MAX_NALS_PER_ACCESS_UNIT {
                return Err(EsError::TooManyNals {
                    access_unit: access_units.len(),
                    max: MAX_NALS_PER_ACCESS_UNIT,
                });
            }
            has_vcl |= vcl;
            current.push(n);
        }
        if has_vcl {
            push_au(&mut access_units, codec, &mut track, &mut params, current)?;
        }
        if access_units.is_empty() {
            return Err(EsError::NoAccessUnits);
        }
        Ok(Self {
            codec,
            first_track,
            access_units,
        })
    }

    pub fn codec(&self) -> Codec {
        self.codec
    }

    pub fn access_units(&self) -> &[AccessUnit] {
        &self.access_units
    }

    pub fn len(&self) -> usize {
        self.access_units.len()
    }

    pub fn is_empty(&self) -> bool {
        self.access_units.is_empty()
    }

    /// The track of the first access unit.
    pub fn track(&self) -> &Arc<TrackInfo> {
        &self.first_track
    }

    /// Length of the whole stream at `rate`, in 90 kHz ticks: the offset to add
    /// when playing it again in a loop.
    pub fn duration(&self, rate: FrameRate) -> i64 {
        rate.ticks(self.access_units.len() as u64, 90_000)
    }

    /// Access unit `index` as a frame with `pts == dts == offset + index / rate`
    /// (90 kHz); `None` past the end.
    pub fn frame(&self, index: usize, rate: FrameRate, offset: i64) -> Option<Frame> {
        let au = self.access_units.get(index)?;
        let ts = offset.saturating_add(rate.ticks(index as u64, 90_000));
        Some(Frame {
            track: au.track.clone(),
            pts: ts,
            dts: ts,
            keyframe: au.keyframe,
            data: FrameData::Nals(au.nals.clone()),
            received: None,
        })
    }

    /// Every access unit as a frame, starting at 0.
    pub fn frames(&self, rate: FrameRate) -> impl Iterator<Item = Frame> + '_ {
        (0..self.access_units.len()).filter_map(move |i| self.frame(i, rate, 0))
    }
}

/// Tells H.264 from H.265 by the first SPS that parses as one of them.
fn detect_codec(nals: &[Bytes]) -> Option<Codec> {
    nals.iter().find_map(|n| {
        let first = *n.first()?;
        let h265_sps = nal::h265_type(n) == 33 && first & 0x81 == 0;
        if h265_sps && h265::parse_sps(n).is_ok() {
            return Some(Codec::H265);
        }
        let h264_sps = first & 0x80 == 0 && nal::h264_type(n) == nal::h264_types::SPS;
        (h264_sps && h264::parse_sps(n).is_ok()).then_some(Codec::H264)
    })
}

/// `(is a VCL NAL of the base layer, may start a new access unit)`.
fn au_boundary(codec: Codec, n: &[u8]) -> (bool, bool) {
    match codec {
        Codec::H265 => {
            let t = nal::h265_type(n);
            let layer0 = n.len() >= 2 && (n[0] & 1) == 0 && (n[1] >> 3) == 0;
            if !layer0 {
                return (false, false);
            }
            if t < 32 {
                // first_slice_segment_in_pic_flag: the first bit after the header.
                (true, n.get(2).is_some_and(|b| b & 0x80 != 0))
            } else {
                // AUD, VPS, SPS, PPS, prefix SEI, reserved 41..=44 and 48..=55.
                let starts = matches!(t, 32..=35 | 39 | 41..=44 | 48..=55);
                (false, starts)
            }
        }
        _ => {
            let t = nal::h264_type(n);
            match t {
                // Coded slices: a new picture when first_mb_in_slice == 0 (ue(v) '1').
                1 | 2 | 5 => (true, n.get(1).is_some_and(|b| b & 0x80 != 0)),
                // Data partitions B/C and auxiliary slices belong to their picture.
                3 | 4 | 19 => (true, false),
                // SEI, SPS, PPS, AUD, prefix NAL, subset SPS, reserved 16..=18.
                6..=9 | 14..=18 => (false, true),
                _ => (false, false),
            }
        }
    }
}

fn push_au(
    out: &mut Vec<AccessUnit>,
    codec: Codec,
    track: &mut Arc<TrackInfo>,
    params: &mut ParamSets,
    nals: Vec<Bytes>,
) -> Result<(), EsError> {
    let mut changed = false;
    for n in &nals {
        changed |= params.note(codec, n);
    }
    if changed && params.complete(codec) {
        let t = params.track(codec, out.len())?;
        if t != **track {
            *track = Arc::new(t);
        }
    }
    out.push(AccessUnit {
        track: track.clone(),
        keyframe: nal::is_keyframe(codec, &nals),
        nals,
    });
    Ok(())
}

/// The latest parameter sets seen.
#[derive(Default)]
struct ParamSets {
    vps: Option<Bytes>,
    sps: Option<Bytes>,
    pps: Option<Bytes>,
}

impl ParamSets {
    /// Remembers `n` if it is a parameter set; true when it differs from the last one.
    fn note(&mut self, codec: Codec, n: &Bytes) -> bool {
        let slot = match nal::classify(codec, n) {
            NalKind::Vps => &mut self.vps,
            NalKind::Sps => &mut self.sps,
            NalKind::Pps => &mut self.pps,
            _ => return false,
        };
        if slot.as_ref() == Some(n) {
            return false;
        }
        *slot = Some(n.clone());
        true
    }

    fn complete(&self, codec: Codec) -> bool {
        self.sps.is_some() && self.pps.is_some() && (codec != Codec::H265 || self.vps.is_some())
    }

    fn track(&self, codec: Codec, access_unit: usize) -> Result<TrackInfo, EsError> {
        let missing = |missing| EsError::MissingParameterSet { codec, missing };
        let sps = self.sps.clone().ok_or_else(|| missing("SPS"))?;
        let pps = self.pps.clone().ok_or_else(|| missing("PPS"))?;
        let video = if codec == Codec::H265 {
            let vps = self.vps.clone().ok_or_else(|| missing("VPS"))?;
            VideoTrack::h265(vps, sps, pps)
        } else {
            VideoTrack::h264(sps, pps)
        };
        video
            .map(TrackInfo::Video)
            .map_err(|source| EsError::ParameterSet {
                codec,
                access_unit,
                source,
            })
    }
}

/// How an audio file is encoded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AudioFileKind {
    /// Raw G.711 A-law or mu-law samples at 8 kHz, cut into `frame_ms` frames.
    G711 { codec: Codec, frame_ms: u32 },
    /// AAC in ADTS frames (ISO/IEC 13818-7 §6.2).
    AacAdts,
}

/// One audio frame of a file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AudioUnit {
    /// G.711 samples, or one raw AAC frame (ADTS header removed).
    pub data: Bytes,
    /// Start, in samples from the beginning of the file.
    pub pts: i64,
}

/// An audio file cut into frames.
#[derive(Clone, Debug)]
pub struct AudioEs {
    track: Arc<TrackInfo>,
    units: Vec<AudioUnit>,
    duration: i64,
}

impl AudioEs {
    pub fn read_file(path: &Path, kind: AudioFileKind) -> Result<Self, EsError> {
        Self::parse(read_bounded(path)?, kind)
    }

    pub fn parse(data: Bytes, kind: AudioFileKind) -> Result<Self, EsError> {
        match kind {
            AudioFileKind::G711 { codec, frame_ms } => Self::g711(data, codec, frame_ms),
            AudioFileKind::AacAdts => Self::aac_adts(data),
        }
    }

    /// Cuts raw 8 kHz G.711 samples into frames of `frame_ms` (10..=100 ms,
    /// usually 20 or 40); the last frame may be shorter.
    pub fn g711(data: Bytes, codec: Codec, frame_ms: u32) -> Result<Self, EsError> {
        if !matches!(codec, Codec::G711A | Codec::G711U) {
            return Err(EsError::NotG711 { codec });
        }
        if !(10..=100).contains(&frame_ms) {
            return Err(EsError::InvalidG711FrameMs { ms: frame_ms });
        }
        if data.is_empty() {
            return Err(EsError::EmptyAudio);
        }
        let step = (G711_SAMPLE_RATE * frame_ms / 1000) as usize;
        let units = (0..data.len())
            .step_by(step)
            .map(|start| AudioUnit {
                data: data.slice(start..(start + step).min(data.len())),
                pts: start as i64,
            })
            .collect();
        Ok(Self {
            track: Arc::new(TrackInfo::Audio(AudioTrack::g711(
                codec,
                G711_SAMPLE_RATE,
                1,
            ))),
            units,
            duration: data.len() as i64,
        })
    }

    /// Splits an ADTS stream into raw AAC frames of 1024 samples. Every frame
    /// must have the configuration of the first and one raw data block.
    pub fn aac_adts(data: Bytes) -> Result<Self, EsError> {
        let mut units = Vec::new();
        let mut first: Option<aac::AdtsHeader> = None;
        let mut offset = 0usize;
        while offset < data.len() {
            let rest = &data[offset..];
            let h =
                aac::parse_adts_header(rest).map_err(|source| EsError::Adts { offset, source })?;
            if h.frame_len > rest.len() {
                return Err(EsError::AdtsTruncated {
                    offset,
                    frame_len: h.frame_len,
                    remaining: rest.len(),
                });
            }
            let blocks = rest[6] & 3;
            if blocks != 0 {
                return Err(EsError::AdtsMultipleBlocks {
                    offset,
                    blocks: blocks + 1,
                });
            }
            let f = first.get_or_insert_with(|| h.clone());
            if (f.object_type, f.sampling_index, f.channels)
                != (h.object_type, h.sampling_index, h.channels)
            {
                return Err(EsError::AdtsConfigChanged { offset });
            }
            units.push(AudioUnit {
                data: data.slice(offset + h.header_len..offset + h.frame_len),
                pts: units.len() as i64 * i64::from(AAC_FRAME_SAMPLES),
            });
            offset += h.frame_len;
        }
        let first = first.ok_or(EsError::EmptyAudio)?;
        let track = AudioTrack::aac(first.audio_specific_config())
            .map_err(|source| EsError::Adts { offset: 0, source })?;
        let duration = units.len() as i64 * i64::from(AAC_FRAME_SAMPLES);
        Ok(Self {
            track: Arc::new(TrackInfo::Audio(track)),
            units,
            duration,
        })
    }

    pub fn track(&self) -> &Arc<TrackInfo> {
        &self.track
    }

    pub fn units(&self) -> &[AudioUnit] {
        &self.units
    }

    pub fn len(&self) -> usize {
        self.units.len()
    }

    pub fn is_empty(&self) -> bool {
        self.units.is_empty()
    }

    /// Length of the whole stream in samples (the track's timescale).
    pub fn duration(&self) -> i64 {
        self.duration
    }

    /// Frame `index` with `pts == dts == offset + its start` (in samples);
    /// `None` past the end.
    pub fn frame(&self, index: usize, offset: i64) -> Option<Frame> {
        let u = self.units.get(index)?;
        let ts = offset.saturating_add(u.pts);
        Some(Frame {
            track: self.track.clone(),
            pts: ts,
            dts: ts,
            keyframe: true,
            data: FrameData::Audio(u.data.clone()),
            received: None,
        })
    }

    /// Every frame, starting at 0.
    pub fn frames(&self) -> impl Iterator<Item = Frame> + '_ {
        (0..self.units.len()).filter_map(move |i| self.frame(i, 0))
    }
}

/// The shared fixtures directory: `CAMGATE_REAL_FIXTURES`, or
/// `../shared/fixtures` beside the repository. `None` (skip) only when the
/// variable is unset and the directory is absent.
#[cfg(test)]
pub(crate) fn real_fixture(rel: &str) -> Option<PathBuf> {
    let root = match std::env::var_os("CAMGATE_REAL_FIXTURES") {
        Some(p) => PathBuf::from(p),
        None => {
            let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/fixtures");
            if !p.is_dir() {
                eprintln!(
                    "skipping: {} absent and CAMGATE_REAL_FIXTURES unset",
                    p.display()
                );
                return None;
            }
            p
        }
    };
    let p = root.join(rel);
    assert!(
        p.is_file(),
        "real fixture {} missing; set CAMGATE_REAL_FIXTURES to the shared fixtures directory",
        p.display()
    );
    Some(p)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::samples;

    fn annex_b(nals: &[&[u8]]) -> Bytes {
        let mut v = Vec::new();
        for n in nals {
            v.extend_from_slice(&[0, 0, 0, 1]);
            v.extend_from_slice(n);
        }
        Bytes::from(v)
    }

    fn types(es: &VideoEs) -> Vec<Vec<u8>> {
        es.access_units()
            .iter()
            .map(|au| {
                au.nals
                    .iter()
                    .map(|n| match es.codec() {
                        Codec::H265 => nal::h265_type(n),
                        _ => nal::h264_type(n),
                    })
                    .collect()
            })
            .collect()
    }

    #[test]
    fn fixture_128x128_splits_into_155_access_units() {
        let Some(p) = real_fixture("h264-es/128x128.h264") else {
            return;
        };
        let es = VideoEs::read_file(&p).unwrap();
        assert_eq!(es.codec(), Codec::H264);
        assert_eq!(es.len(), 155);
        let keys: Vec<usize> = (0..es.len())
            .filter(|&i| es.access_units()[i].keyframe)
            .collect();
        assert_eq!(keys, [0, 54]);
        let t = types(&es);
        assert_eq!(t[0], [6, 7, 8, 5]);
        assert_eq!(t[54], [7, 8, 5]);
        assert!(
            t.iter()
                .enumerate()
                .all(|(i, a)| keys.contains(&i) || a == &[1])
        );
        let TrackInfo::Video(v) = es.track().as_ref() else {
            panic!("video track expected");
        };
        assert_eq!((v.width, v.height), (128, 128));
        // 25 fps: 3600 ticks per frame; the whole file lasts 6.2 s.
        let rate = FrameRate::default();
        let f = es.frame(3, rate, 1000).unwrap();
        assert_eq!((f.pts, f.dts), (1000 + 3 * 3600, 1000 + 3 * 3600));
        assert_eq!(es.duration(rate), 155 * 3600);
        assert_eq!(es.frames(rate).count(), 155);
    }

    #[test]
    fn fixture_240x320_has_25_keyframes_led_by_sps_pps_sei() {
        let Some(p) = real_fixture("h264-es/240x320.h264") else {
            return;
        };
        let es = VideoEs::read_file(&p).unwrap();
        assert_eq!(es.len(), 729);
        let keys: Vec<usize> = (0..es.len())
            .filter(|&i| es.access_units()[i].keyframe)
            .collect();
        assert_eq!(keys.len(), 25);
        let t = types(&es);
        for &k in &keys {
            assert_eq!(t[k], [7, 8, 6, 5], "access unit {k}");
        }
        // The same parameter sets throughout: one shared track.
        assert!(
            es.access_units()
                .iter()
                .all(|au| Arc::ptr_eq(&au.track, es.track()))
        );
    }

    #[test]
    fn h264_aud_and_multi_slice_pictures() {
        let sps = samples::H264_SPS_640X360;
        let pps = samples::H264_PPS;
        // AUD | SPS PPS IDR(first_mb 0) IDR(first_mb 1) | AUD P | P(first_mb 0) P(first_mb 5).
        let data = annex_b(&[
            &[0x09, 0xf0],
            sps,
            pps,
            &[0x65, 0x88, 1],
            &[0x65, 0x40, 2],
            &[0x09, 0xf0],
            &[0x41, 0x9a, 3],
            &[0x41, 0x9a, 4],
            &[0x41, 0x0c, 5],
        ]);
        let es = VideoEs::parse(data).unwrap();
        assert_eq!(es.codec(), Codec::H264);
        assert_eq!(
            types(&es),
            vec![vec![9, 7, 8, 5, 5], vec![9, 1], vec![1, 1]]
        );
        let keys: Vec<bool> = es.access_units().iter().map(|a| a.keyframe).collect();
        assert_eq!(keys, [true, false, false]);
    }

    #[test]
    fn h265_first_slice_flag_and_parameter_sets() {
        let data = annex_b(&[
            samples::H265_VPS,
            samples::H265_SPS,
            samples::H265_PPS,
            &[0x4e, 0x01, 0x05],    // prefix SEI
            &[0x26, 0x01, 0xaf, 1], // IDR_W_RADL, first slice
            &[0x26, 0x01, 0x20, 2], // IDR_W_RADL, second slice segment
            &[0x02, 0x01, 0xd0, 3], // TRAIL_R, first slice
            &[0x50, 0x01, 0x05],    // suffix SEI stays with its picture
            &[0x02, 0x01, 0xd0, 4],
        ]);
        let es = VideoEs::parse(data).unwrap();
        assert_eq!(es.codec(), Codec::H265);
        assert_eq!(
            types(&es),
            vec![vec![32, 33, 34, 39, 19, 19], vec![1, 40], vec![1]]
        );
        assert!(es.access_units()[0].keyframe);
        assert_eq!(es.track().codec(), Codec::H265);
    }

    #[test]
    fn parameter_set_change_gives_a_new_track() {
        let sps2: Vec<u8> = {
            // Same SPS with another level_idc: still parses, differs in bytes.
            let mut s = samples::H264_SPS_640X360.to_vec();
            s[3] = 0x1f;
            s
        };
        let data = annex_b(&[
            samples::H264_SPS_640X360,
            samples::H264_PPS,
            &[0x65, 0x88, 1],
            &sps2,
            samples::H264_PPS,
            &[0x65, 0x88, 2],
            &[0x41, 0x9a, 3],
        ]);
        let es = VideoEs::parse(data).unwrap();
        let aus = es.access_units();
        assert_eq!(aus.len(), 3);
        assert!(!Arc::ptr_eq(&aus[0].track, &aus[1].track));
        assert!(Arc::ptr_eq(&aus[1].track, &aus[2].track));
        let TrackInfo::Video(v) = aus[1].track.as_ref() else {
            panic!("video track expected");
        };
        assert_eq!(&v.sps[..], &sps2[..]);
    }

    #[test]
    fn bad_video_input_is_an_error() {
        assert!(matches!(
            VideoEs::parse(Bytes::from_static(b"no start codes here")),
            Err(EsError::NoNalUnits)
        ));
        assert!(matches!(
            VideoEs::parse(annex_b(&[&[0x41, 0x9a, 1]])),
            Err(EsError::UnknownCodec)
        ));
        assert!(matches!(
            VideoEs::parse(annex_b(&[samples::H264_SPS_640X360, &[0x65, 0x88]])),
            Err(EsError::MissingParameterSet { missing: "PPS", .. })
        ));
        let only_params = annex_b(&[samples::H264_SPS_640X360, samples::H264_PPS]);
        assert!(matches!(
            VideoEs::parse(only_params),
            Err(EsError::NoAccessUnits)
        ));
        let many: Vec<&[u8]> = [samples::H264_SPS_640X360, samples::H264_PPS]
            .into_iter()
            .chain(std::iter::repeat_n(&[0x65u8, 0x40, 1][..], 1100))
            .collect();
        assert!(matches!(
            VideoEs::parse(annex_b(&many)),
            Err(EsError::TooManyNals { .. })
        ));
        assert!(FrameRate::new(0, 1).is_err());
        assert!(FrameRate::new(25, 0).is_err());
        assert_eq!(FrameRate::new(30000, 1001).unwrap().ticks(1, 90_000), 3003);
    }

    #[test]
    fn g711_frames_of_20_and_40_ms() {
        let data = Bytes::from(vec![0xd5u8; 8000 + 100]);
        let es = AudioEs::g711(data.clone(), Codec::G711A, 20).unwrap();
        assert_eq!(es.len(), 51);
        assert_eq!(es.units()[1].pts, 160);
        assert_eq!(es.units()[50].data.len(), 100);
        assert_eq!(es.duration(), 8100);
        let f = es.frame(2, 8000).unwrap();
        assert_eq!((f.pts, f.dts, f.keyframe), (8320, 8320, true));
        assert_eq!(f.track.timescale(), 8000);

        let es = AudioEs::parse(
            data,
            AudioFileKind::G711 {
                codec: Codec::G711U,
                frame_ms: 40,
            },
        )
        .unwrap();
        assert_eq!(es.len(), 26);
        assert_eq!(es.units()[0].data.len(), 320);
        assert_eq!(es.track().codec(), Codec::G711U);

        assert!(matches!(
            AudioEs::g711(Bytes::from_static(&[1]), Codec::Aac, 20),
            Err(EsError::NotG711 { .. })
        ));
        assert!(AudioEs::g711(Bytes::from_static(&[1]), Codec::G711A, 5).is_err());
        assert!(AudioEs::g711(Bytes::new(), Codec::G711A, 20).is_err());
    }

    /// An ADTS frame: AAC-LC, 8 kHz (index 11), mono, no CRC.
    fn adts(payload: &[u8]) -> Vec<u8> {
        let len = payload.len() + 7;
        let mut v = vec![
            0xff,
            0xf1,
            0x6c,
            0x40 | ((len >> 11) as u8 & 3),
            (len >> 3) as u8,
            ((len as u8 & 7) << 5) | 0x1f,
            0xfc,
        ];
        v.extend_from_slice(payload);
        v
    }

    #[test]
    fn aac_adts_frames() {
        let mut data = adts(&[0x21, 1, 2, 3]);
        data.extend(adts(&[0x21, 4, 5]));
        data.extend(adts(&[0x21, 6]));
        let es = AudioEs::parse(Bytes::from(data.clone()), AudioFileKind::AacAdts).unwrap();
        assert_eq!(es.len(), 3);
        assert_eq!(&es.units()[1].data[..], &[0x21, 4, 5]);
        assert_eq!(es.units()[2].pts, 2048);
        assert_eq!(es.duration(), 3072);
        let TrackInfo::Audio(a) = es.track().as_ref() else {
            panic!("audio track expected");
        };
        assert_eq!((a.codec, a.sample_rate, a.channels), (Codec::Aac, 8000, 1));

        let truncated = Bytes::from(data[..data.len() - 1].to_vec());
        assert!(matches!(
            AudioEs::aac_adts(truncated),
            Err(EsError::AdtsTruncated { offset: 21, .. })
        ));
        let mut junk = data.clone();
        junk.extend_from_slice(&[0; 8]);
        assert!(matches!(
            AudioEs::aac_adts(Bytes::from(junk)),
            Err(EsError::Adts { offset: 30, .. })
        ));
        let mut changed = data;
        let mut stereo = adts(&[0x21]);
        stereo[3] = (stereo[3] & 0x3f) | 0x80; // channel configuration 2
        changed.extend(stereo);
        assert!(matches!(
            AudioEs::aac_adts(Bytes::from(changed)),
            Err(EsError::AdtsConfigChanged { offset: 30 })
        ));
        assert!(matches!(
            AudioEs::aac_adts(Bytes::new()),
            Err(EsError::EmptyAudio)
        ));
    }
}
