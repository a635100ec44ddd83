//! MPEG-2 program stream (ISO/IEC 13818-1 §2.5) muxing as GB28181 cameras do
//! it, sans-IO: [`PsMuxer::mux`] turns one frame into one PS pack.
//!
//! - **Video**: one pack per access unit. The pack header (§2.5.3.3) carries
//!   an SCR equal to the frame's DTS. Keyframe packs also carry a system
//!   header (§2.5.3.5) and a program stream map (§2.5.4) with the
//!   stream_types of GB/T 28181 (H.264 0x1B, H.265 0x24, AAC 0x0F, G.711A
//!   0x90, G.711U 0x91) and its CRC_32 (Annex A). The access unit follows as
//!   Annex B (`00 00 00 01` start codes) in PES packets of stream 0xE0
//!   (§2.4.3.6), as many as the 16-bit PES_packet_length needs; only the first
//!   carries the PTS (and the DTS when it differs). Keyframes that lack their
//!   parameter sets get the track's VPS/SPS/PPS in front.
//! - **Audio**: each frame in **its own pack** (as cameras usually send it), a
//!   PES of stream 0xC0 with the PTS converted from the sample rate to
//!   90 kHz. AAC is written as ADTS (stream_type 0x0F means ADTS), G.711 raw.
//!   When no video track is known, audio packs carry the system header and
//!   PSM once a second so that an audio-only stream can be identified.
//!
//! [`PsMuxOptions`] reproduces quirks of real devices (see
//! `../shared/fixtures/README.md`); every one is off by default.

use std::sync::Arc;

use bytes::{BufMut, Bytes, BytesMut};

use crate::codec::nal::{NalKind, classify};
use crate::codec::{Codec, CodecError, aac};
use crate::media::{AudioTrack, Frame, FrameData, TrackInfo, VideoTrack};

/// stream_id of the video PES (§2.4.3.7, Table 2-22: video stream 0).
pub const STREAM_ID_VIDEO: u8 = 0xe0;
/// stream_id of the audio PES (audio stream 0).
pub const STREAM_ID_AUDIO: u8 = 0xc0;
/// private_stream_1.
pub const STREAM_ID_PRIVATE_1: u8 = 0xbd;

pub const STREAM_TYPE_H264: u8 = 0x1b;
pub const STREAM_TYPE_H265: u8 = 0x24;
pub const STREAM_TYPE_AAC: u8 = 0x0f;
pub const STREAM_TYPE_G711A: u8 = 0x90;
pub const STREAM_TYPE_G711U: u8 = 0x91;

/// The PSM stream_type of a codec (GB/T 28181-2016 Annex C, ISO/IEC
/// 13818-1 Table 2-34 for the ISO ones).
pub fn stream_type(codec: Codec) -> u8 {
    match codec {
        Codec::H264 => STREAM_TYPE_H264,
        Codec::H265 => STREAM_TYPE_H265,
        Codec::Aac => STREAM_TYPE_AAC,
        Codec::G711A => STREAM_TYPE_G711A,
        Codec::G711U => STREAM_TYPE_G711U,
    }
}

/// Largest frame payload (NAL units with start codes, or audio) muxed.
pub const MAX_FRAME_BYTES: usize = 16 * 1024 * 1024;
/// PES_packet_length counts at most 65 535 bytes after itself (§2.4.3.7).
const MAX_PES_PACKET_LENGTH: usize = 0xffff;
/// The program_mux_rate a Hikvision camera writes: 41 944 × 50 B/s.
pub const DEFAULT_MUX_RATE: u32 = 41_944;
/// Audio-only streams repeat the system header and PSM this often (90 kHz).
const AUDIO_ONLY_HEADER_INTERVAL: i64 = 90_000;
const START_CODE: [u8; 4] = [0, 0, 0, 1];

/// Muxer settings. The quirks reproduce real devices and are all off by default.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PsMuxOptions {
    /// program_mux_rate and rate_bound, in units of 50 bytes/s (1..2^22).
    pub mux_rate: u32,
    /// Most payload bytes in one PES packet (256..=65535). The header limit
    /// (65 535 − 3 − PES_header_data_length) applies in any case; lower values
    /// imitate other senders (libmpeg caps at 0xFF80, Hikvision near 65 490).
    pub max_pes_payload: usize,
    /// Hikvision: `pack_stuffing_length` of this many bytes (3..=7) holding a
    /// big-endian counter that rises every pack, after 0xFF fill
    /// (`FF FF` + 32-bit counter for 6).
    pub stuffing_counter: Option<u8>,
    /// One PES (or more, for a big NAL) per NAL unit instead of per access
    /// unit; only the access unit's first PES has a PTS.
    pub pes_per_nal: bool,
    /// Hikvision: a private_stream_1 (0xBD) PES of junk before the video PES,
    /// whose payload contains `00 00 00 01 00 00 01 BA`.
    pub private_bd: bool,
    /// Never write a system header or program stream map.
    pub no_psm: bool,
    /// Hikvision: PES_packet_length 0 on video PES ("unbounded", which
    /// §2.4.3.7 allows only in transport streams); each access unit (or NAL,
    /// with `pes_per_nal`) then goes in one PES, however big.
    pub video_pes_length_zero: bool,
}

impl Default for PsMuxOptions {
    fn default() -> Self {
        Self {
            mux_rate: DEFAULT_MUX_RATE,
            max_pes_payload: MAX_PES_PACKET_LENGTH,
            stuffing_counter: None,
            pes_per_nal: false,
            private_bd: false,
            no_psm: false,
            video_pes_length_zero: false,
        }
    }
}

/// Why a frame could not be muxed.
#[derive(Debug, thiserror::Error)]
pub enum PsMuxError {
    #[error("PS mux option {option} = {value} is outside {expected}")]
    InvalidOption {
        option: &'static str,
        value: u64,
        expected: &'static str,
    },
    #[error("{codec} frame does not match its track (expected {expected})")]
    PayloadMismatch {
        codec: Codec,
        expected: &'static str,
    },
    #[error("{codec} frame is empty")]
    EmptyFrame { codec: Codec },
    #[error("{codec} frame of {len} bytes is larger than {max} bytes")]
    FrameTooLarge {
        codec: Codec,
        len: usize,
        max: usize,
    },
    #[error("cannot write an ADTS header for this AAC track: {source}")]
    AacConfig {
        #[source]
        source: CodecError,
    },
    #[error("ADTS cannot carry AAC {field} {value}")]
    AdtsUnsupported { field: &'static str, value: u32 },
}

/// Turns frames into PS packs. See the module documentation for the layout.
#[derive(Debug)]
pub struct PsMuxer {
    opts: PsMuxOptions,
    video: Option<Arc<TrackInfo>>,
    audio: Option<Arc<TrackInfo>>,
    /// (stream_type, stream_id) of the last PSM written, and its version.
    psm_streams: Vec<(u8, u8)>,
    psm_version: u8,
    psm_written: bool,
    packs: u32,
    /// 90 kHz time of the last audio-only system header + PSM.
    audio_only_headers_at: Option<i64>,
}

impl PsMuxer {
    pub fn new(options: PsMuxOptions) -> Result<Self, PsMuxError> {
        let invalid = |option, value: u64, expected| PsMuxError::InvalidOption {
            option,
            value,
            expected,
        };
        if !(1..1 << 22).contains(&options.mux_rate) {
            return Err(invalid("mux_rate", options.mux_rate.into(), "1..=4194303"));
        }
        if !(256..=MAX_PES_PACKET_LENGTH).contains(&options.max_pes_payload) {
            return Err(invalid(
                "max_pes_payload",
                options.max_pes_payload as u64,
                "256..=65535",
            ));
        }
        if let Some(n) = options.stuffing_counter
            && !(3..=7).contains(&n)
        {
            return Err(invalid("stuffing_counter", n.into(), "3..=7"));
        }
        Ok(Self {
            opts: options,
            video: None,
            audio: None,
            psm_streams: Vec::new(),
            psm_version: 0,
            psm_written: false,
            packs: 0,
            audio_only_headers_at: None,
        })
    }

    pub fn options(&self) -> &PsMuxOptions {
        &self.opts
    }

    /// Announces a track before its first frame, so that the first keyframe's
    /// system header and PSM already list it (cameras list audio from the
    /// start). A frame of another track of the same kind replaces it.
    pub fn declare_track(&mut self, track: Arc<TrackInfo>) {
        if track.is_video() {
            self.video = Some(track);
        } else {
            self.audio = Some(track);
        }
    }

    /// Muxes one frame into one PS pack.
    pub fn mux(&mut self, frame: &Frame) -> Result<Bytes, PsMuxError> {
        match (frame.track.as_ref(), &frame.data) {
            (TrackInfo::Video(v), FrameData::Nals(nals)) => self.mux_video(frame, v, nals),
            (TrackInfo::Audio(a), FrameData::Audio(data)) => self.mux_audio(frame, a, data),
            (TrackInfo::Video(v), _) => Err(PsMuxError::PayloadMismatch {
                codec: v.codec,
                expected: "NAL units",
            }),
            (TrackInfo::Audio(a), _) => Err(PsMuxError::PayloadMismatch {
                codec: a.codec,
                expected: "an audio payload",
            }),
        }
    }

    fn mux_video(
        &mut self,
        frame: &Frame,
        v: &VideoTrack,
        nals: &[Bytes],
    ) -> Result<Bytes, PsMuxError> {
        let mut units: Vec<&[u8]> = nals
            .iter()
            .filter(|n| !n.is_empty())
            .map(|n| &n[..])
            .collect();
        if units.is_empty() {
            return Err(PsMuxError::EmptyFrame { codec: v.codec });
        }
        if frame.keyframe {
            insert_parameter_sets(v, &mut units);
        }
        let len: usize = units.iter().map(|n| n.len() + START_CODE.len()).sum();
        if len > MAX_FRAME_BYTES {
            return Err(PsMuxError::FrameTooLarge {
                codec: v.codec,
                len,
                max: MAX_FRAME_BYTES,
            });
        }
        self.video = Some(frame.track.clone());

        let dts = ts33(frame.dts);
        let pts = ts33(frame.pts);
        let timestamps = Timestamps {
            pts,
            dts: (pts != dts).then_some(dts),
        };
        let mut out = BytesMut::with_capacity(len + 128 + len / 1024);
        self.put_pack_header(&mut out, dts);
        if frame.keyframe && !self.opts.no_psm {
            self.put_system_header(&mut out);
            self.put_psm(&mut out);
        }
        if self.opts.private_bd {
            put_private_bd(&mut out, self.packs);
        }
        let unbounded = self.opts.video_pes_length_zero;
        let groups: Vec<&[&[u8]]> = if self.opts.pes_per_nal {
            units.chunks(1).collect()
        } else {
            vec![&units[..]]
        };
        let mut first = Some(timestamps);
        for group in groups {
            let pieces: Vec<&[u8]> = group.iter().flat_map(|n| [&START_CODE[..], n]).collect();
            self.put_pes(&mut out, STREAM_ID_VIDEO, &pieces, first.take(), unbounded);
        }
        self.packs = self.packs.wrapping_add(1);
        Ok(out.freeze())
    }

    fn mux_audio(
        &mut self,
        frame: &Frame,
        a: &AudioTrack,
        data: &Bytes,
    ) -> Result<Bytes, PsMuxError> {
        if data.is_empty() {
            return Err(PsMuxError::EmptyFrame { codec: a.codec });
        }
        let adts = if a.codec == Codec::Aac && !is_adts_frame(data) {
            Some(adts_header(a, data.len())?)
        } else {
            None
        };
        if data.len() > MAX_FRAME_BYTES {
            return Err(PsMuxError::FrameTooLarge {
                codec: a.codec,
                len: data.len(),
                max: MAX_FRAME_BYTES,
            });
        }
        self.audio = Some(frame.track.clone());
        let scale = i128::from(a.sample_rate.max(1));
        let pts90 = (i128::from(frame.pts) * 90_000).div_euclid(scale);
        let pts90 = i64::try_from(pts90).unwrap_or(i64::MAX);
        let pts = ts33(pts90);

        let mut out = BytesMut::with_capacity(data.len() + 64);
        self.put_pack_header(&mut out, pts);
        let headers_due = self.video.is_none()
            && !self.opts.no_psm
            && self
                .audio_only_headers_at
                .is_none_or(|t| pts90 < t || pts90 - t >= AUDIO_ONLY_HEADER_INTERVAL);
        if headers_due {
            self.audio_only_headers_at = Some(pts90);
            self.put_system_header(&mut out);
            self.put_psm(&mut out);
        }
        let mut pieces: Vec<&[u8]> = Vec::with_capacity(2);
        if let Some(h) = &adts {
            pieces.push(h);
        }
        pieces.push(data);
        let ts = Timestamps { pts, dts: None };
        self.put_pes(&mut out, STREAM_ID_AUDIO, &pieces, Some(ts), false);
        self.packs = self.packs.wrapping_add(1);
        Ok(out.freeze())
    }

    /// pack_header (§2.5.3.3, Table 2-38): MPEG-2 form, SCR_extension 0.
    fn put_pack_header(&self, out: &mut BytesMut, scr: u64) {
        out.put_slice(&[0, 0, 1, 0xba]);
        // '01' SCR[32..30] m SCR[29..15] m SCR[14..0] m SCR_ext(9) m: 48 bits.
        let bits: u64 = (0b01 << 46)
            | (((scr >> 30) & 7) << 43)
            | (1 << 42)
            | (((scr >> 15) & 0x7fff) << 27)
            | (1 << 26)
            | ((scr & 0x7fff) << 11)
            | (1 << 10)
            | 1;
        out.put_slice(&bits.to_be_bytes()[2..]);
        // program_mux_rate(22) marker marker.
        let rate = (self.opts.mux_rate << 2) | 3;
        out.put_slice(&rate.to_be_bytes()[1..]);
        // reserved(5) pack_stuffing_length(3).
        let stuffing = self.opts.stuffing_counter.unwrap_or(0);
        out.put_u8(0xf8 | stuffing);
        if stuffing > 0 {
            let counter = self.packs.to_be_bytes();
            let n = usize::from(stuffing);
            for _ in 4..n {
                out.put_u8(0xff);
            }
            out.put_slice(&counter[4usize.saturating_sub(n)..]);
        }
    }

    /// The streams to announce: video, audio, then private_stream_1.
    fn streams(&self) -> Vec<(u8, u8)> {
        let mut s = Vec::with_capacity(3);
        if let Some(v) = &self.video {
            s.push((stream_type(v.codec()), STREAM_ID_VIDEO));
        }
        if let Some(a) = &self.audio {
            s.push((stream_type(a.codec()), STREAM_ID_AUDIO));
        }
        s
    }

    /// system_header (§2.5.3.5, Table 2-39), with Hikvision's buffer bounds.
    fn put_system_header(&self, out: &mut BytesMut) {
        let mut ids: Vec<u8> = self.streams().into_iter().map(|(_, id)| id).collect();
        if self.opts.private_bd {
            ids.push(STREAM_ID_PRIVATE_1);
        }
        let audio_bound = u8::from(self.audio.is_some());
        let video_bound = u8::from(self.video.is_some());
        out.put_slice(&[0, 0, 1, 0xbb]);
        out.put_u16(6 + 3 * ids.len() as u16);
        // marker rate_bound(22) marker.
        let rate = 0x80_0001 | (self.opts.mux_rate << 1);
        out.put_slice(&rate.to_be_bytes()[1..]);
        // audio_bound(6) fixed_flag CSPS_flag.
        out.put_u8(audio_bound << 2);
        // system_audio_lock_flag system_video_lock_flag marker video_bound(5).
        out.put_u8(0xe0 | video_bound);
        // packet_rate_restriction_flag reserved(7).
        out.put_u8(0x7f);
        for id in ids {
            // '11' P-STD_buffer_bound_scale P-STD_buffer_size_bound(13):
            // audio 8 × 128 B, others 128 × 1024 B.
            let bound: u16 = if id == STREAM_ID_AUDIO {
                0xc000 | 8
            } else {
                0xe000 | 128
            };
            out.put_u8(id);
            out.put_u16(bound);
        }
    }

    /// program_stream_map (§2.5.4.1, Table 2-41) without descriptors; the
    /// version rises whenever the list of streams changes.
    fn put_psm(&mut self, out: &mut BytesMut) {
        let streams = self.streams();
        if self.psm_written && streams != self.psm_streams {
            self.psm_version = (self.psm_version + 1) & 0x1f;
        }
        self.psm_written = true;
        let start = out.len();
        out.put_slice(&[0, 0, 1, 0xbc]);
        out.put_u16(10 + 4 * streams.len() as u16);
        // current_next_indicator single_extension_stream_flag reserved version(5).
        out.put_u8(0xa0 | self.psm_version);
        // reserved(7) marker.
        out.put_u8(0xff);
        out.put_u16(0); // program_stream_info_length
        out.put_u16(4 * streams.len() as u16); // elementary_stream_map_length
        for &(stream_type, id) in &streams {
            out.put_slice(&[stream_type, id, 0, 0]);
        }
        let crc = crc32_mpeg2(&out[start..]);
        out.put_u32(crc);
        self.psm_streams = streams;
    }

    /// Writes `pieces` as one or more PES packets (§2.4.3.6); only the first
    /// carries `timestamps` and, with them, data_alignment_indicator (it
    /// starts an access unit).
    fn put_pes(
        &self,
        out: &mut BytesMut,
        stream_id: u8,
        pieces: &[&[u8]],
        mut timestamps: Option<Timestamps>,
        unbounded: bool,
    ) {
        let mut remaining: usize = pieces.iter().map(|p| p.len()).sum();
        let mut reader = Pieces {
            pieces,
            index: 0,
            offset: 0,
        };
        let mut first = true;
        while first || remaining > 0 {
            let ts = timestamps.take();
            let header_data_length = match ts {
                None => 0,
                Some(Timestamps { dts: None, .. }) => 5,
                Some(Timestamps { dts: Some(_), .. }) => 10,
            };
            let n = if unbounded {
                remaining
            } else {
                remaining
                    .min(self.opts.max_pes_payload)
                    .min(MAX_PES_PACKET_LENGTH - 3 - header_data_length)
            };
            out.put_slice(&[0, 0, 1, stream_id]);
            // n ≤ 65535 − 3 − header_data_length unless unbounded (length 0).
            let length = if unbounded {
                0
            } else {
                (3 + header_data_length + n) as u16
            };
            out.put_u16(length);
            // '10' scrambling(2) priority data_alignment_indicator copyright original.
            out.put_u8(if ts.is_some() { 0x84 } else { 0x80 });
            match ts {
                None => out.put_slice(&[0x00, 0]),
                Some(Timestamps { pts, dts: None }) => {
                    out.put_slice(&[0x80, 5]);
                    put_timestamp(out, 0b0010, pts);
                }
                Some(Timestamps {
                    pts,
                    dts: Some(dts),
                }) => {
                    out.put_slice(&[0xc0, 10]);
                    put_timestamp(out, 0b0011, pts);
                    put_timestamp(out, 0b0001, dts);
                }
            }
            reader.copy_to(out, n);
            remaining -= n;
            first = false;
        }
    }
}

#[derive(Clone, Copy, Debug)]
struct Timestamps {
    pts: u64,
    dts: Option<u64>,
}

/// Reads across a list of slices without joining them first.
struct Pieces<'a> {
    pieces: &'a [&'a [u8]],
    index: usize,
    offset: usize,
}

impl Pieces<'_> {
    fn copy_to(&mut self, out: &mut BytesMut, mut n: usize) {
        while n > 0 {
            let Some(p) = self.pieces.get(self.index) else {
                return;
            };
            let take = (p.len() - self.offset).min(n);
            out.put_slice(&p[self.offset..self.offset + take]);
            self.offset += take;
            n -= take;
            if self.offset == p.len() {
                self.index += 1;
                self.offset = 0;
            }
        }
    }
}

/// A 90 kHz time as the 33-bit value PS carries (wrapping like the standard's
/// counters, §2.4.3.7).
fn ts33(t: i64) -> u64 {
    t.rem_euclid(1 << 33) as u64
}

/// PTS/DTS field: prefix(4) ts[32..30] m ts[29..15] m ts[14..0] m (§2.4.3.7).
fn put_timestamp(out: &mut BytesMut, prefix: u8, ts: u64) {
    out.put_u8((prefix << 4) | (((ts >> 30) & 7) as u8) << 1 | 1);
    out.put_u16((((ts >> 15) & 0x7fff) as u16) << 1 | 1);
    out.put_u16(((ts & 0x7fff) as u16) << 1 | 1);
}

/// Puts the track's parameter sets after the leading AUDs of a keyframe that
/// lacks any of them (VPS for H.265, SPS, PPS).
fn insert_parameter_sets<'a>(v: &'a VideoTrack, units: &mut Vec<&'a [u8]>) {
    let has = |kind| units.iter().any(|n| classify(v.codec, n) == kind);
    let complete =
        has(NalKind::Sps) && has(NalKind::Pps) && (v.codec != Codec::H265 || has(NalKind::Vps));
    if complete {
        return;
    }
    let at = units
        .iter()
        .position(|n| classify(v.codec, n) != NalKind::Aud)
        .unwrap_or(units.len());
    let sets = v
        .vps
        .iter()
        .filter(|_| v.codec == Codec::H265)
        .chain([&v.sps, &v.pps])
        .filter(|p| !p.is_empty())
        .map(|p| &p[..]);
    units.splice(at..at, sets);
}

/// The Hikvision-style private_stream_1 PES: no timestamps, junk that looks
/// like start codes, and the pack number.
fn put_private_bd(out: &mut BytesMut, pack: u32) {
    const JUNK: [u8; 12] = [0, 0, 0, 1, 0, 0, 1, 0xba, 0xff, 0xff, 0x48, 0x4b];
    out.put_slice(&[0, 0, 1, STREAM_ID_PRIVATE_1]);
    out.put_u16((3 + JUNK.len() + 4) as u16);
    out.put_slice(&[0x80, 0x00, 0]);
    out.put_slice(&JUNK);
    out.put_u32(pack);
}

/// True when `data` is exactly one ADTS frame (some sources keep the header).
fn is_adts_frame(data: &[u8]) -> bool {
    aac::parse_adts_header(data).is_ok_and(|h| h.frame_len == data.len())
}

/// ISO/IEC 14496-3 Table 1.18 sampling frequencies, by index.
const AAC_SAMPLE_RATES: [u32; 13] = [
    96000, 88200, 64000, 48000, 44100, 32000, 24000, 22050, 16000, 12000, 11025, 8000, 7350,
];

/// A 7-byte ADTS header (ISO/IEC 13818-7 §6.2, no CRC) for a raw AAC frame.
fn adts_header(a: &AudioTrack, payload_len: usize) -> Result<[u8; 7], PsMuxError> {
    let (object_type, sample_rate, channels) = match &a.config {
        Some(c) => {
            let asc = aac::parse_audio_specific_config(c)
                .map_err(|source| PsMuxError::AacConfig { source })?;
            (asc.object_type, asc.sample_rate, asc.channels)
        }
        None => (2, a.sample_rate, a.channels),
    };
    // ADTS profile = object type − 1 for Main/LC/SSR/LTP; SBR/PS (HE-AAC)
    // streams are signalled as their LC core.
    let profile = match object_type {
        1..=4 => object_type - 1,
        5 | 29 => 1,
        other => {
            return Err(PsMuxError::AdtsUnsupported {
                field: "object type",
                value: other.into(),
            });
        }
    };
    let index = AAC_SAMPLE_RATES
        .iter()
        .position(|&r| r == sample_rate)
        .ok_or(PsMuxError::AdtsUnsupported {
            field: "sample rate",
            value: sample_rate,
        })? as u8;
    if channels > 7 {
        return Err(PsMuxError::AdtsUnsupported {
            field: "channel configuration",
            value: channels.into(),
        });
    }
    let len = payload_len + 7;
    if len >= 1 << 13 {
        return Err(PsMuxError::FrameTooLarge {
            codec: Codec::Aac,
            len: payload_len,
            max: (1 << 13) - 8,
        });
    }
    // syncword(12) ID=0 layer=00 protection_absent=1 | profile(2) index(4)
    // private(1) channels(3) original copy | 4 copyright bits, length(13),
    // buffer fullness 0x7FF (VBR), one raw data block.
    Ok([
        0xff,
        0xf1,
        (profile << 6) | (index << 2) | (channels >> 2),
        ((channels & 3) << 6) | ((len >> 11) as u8 & 3),
        (len >> 3) as u8,
        ((len as u8 & 7) << 5) | 0x1f,
        0xfc,
    ])
}

/// CRC_32 of ISO/IEC 13818-1 Annex A: polynomial 0x04C11DB7, initial value
/// 0xFFFFFFFF, MSB first, no final XOR. Over a PSM followed by its CRC the
/// decoder's register ends at 0.
pub fn crc32_mpeg2(data: &[u8]) -> u32 {
    let mut crc = u32::MAX;
    for &b in data {
        crc ^= u32::from(b) << 24;
        for _ in 0..8 {
            crc = if crc & 0x8000_0000 != 0 {
                (crc << 1) ^ 0x04c1_1db7
            } else {
                crc << 1
            };
        }
    }
    crc
}

#[cfg(test)]
mod tests;
