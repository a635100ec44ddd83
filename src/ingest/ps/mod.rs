//! Sans-IO MPEG-2 program stream demuxer (ISO/IEC 13818-1 §2.5), as GB28181
//! cameras send it inside RTP: bytes in, [`Frame`]s out.
//!
//! The caller pushes bytes in any chunking ([`PsDemuxer::push`]), tells the
//! demuxer when the RTP layer knows a frame is complete
//! ([`PsDemuxer::end_of_access_unit`]) and drains [`PsEvent`]s with
//! [`PsDemuxer::poll`]. For the same bytes and the same end-of-access-unit
//! positions the events are the same whatever the chunking (as long as the
//! queue limits below are not reached). At the end of input, call
//! `end_of_access_unit` to flush.
//!
//! What the demuxer accepts, beyond the standard (see the shared fixtures README
//! and the GB28181 fact sheet §7):
//! - pack stuffing skipped by `pack_stuffing_length`, whatever its bytes (Hikvision
//!   puts a counter there); MPEG-1 pack headers (ISO/IEC 11172-1 §2.4.3.2) skipped;
//!   a stray `00 00 01 BA` directly followed by another start code is ignored;
//! - program stream maps with wrong `elementary_stream_map_length` or descriptor
//!   lengths: everything is clamped to the map's own length, the CRC is ignored,
//!   and a map repeated unchanged (before every keyframe) is neither parsed nor
//!   reported again;
//! - video PES with `PES_packet_length` 0 (they end at the next pack, PES, map or
//!   system header start code, or at [`PsDemuxer::end_of_access_unit`]);
//! - access units split over several PES of which only the first has a PTS;
//! - MPEG-1 PES headers (ISO/IEC 11172-1 §2.4.3.3);
//! - no map at all: H.264/H.265 are recognised from their parameter sets, AAC
//!   from its ADTS sync word; a map saying G.711 for ADTS payload gives AAC;
//! - private stream 1 (0xBD), padding (0xBE) and other stream ids are skipped by
//!   their length, so start codes inside them are never seen.
//!
//! Access units. A video access unit ends when a video PES carries a PTS that
//! differs from the pending one, at [`PsDemuxer::end_of_access_unit`], or at an
//! MPEG program end code. A pack header alone does not end it: some devices
//! start a pack before every PES of a frame.
//!
//! Emission policy. A video frame is emitted only when its track's parameter
//! sets (SPS/PPS, plus VPS for H.265) are known, and the first frame emitted for
//! a track is a keyframe; earlier access units are counted as dropped. So every
//! stream starts decodable. Parameter sets stay in the access unit as received
//! and are copied into the [`VideoTrack`]; the `Arc<TrackInfo>` is replaced only
//! when they change.
//!
//! Timestamps. Video PTS/DTS are in 90 kHz, audio in the sample rate. The 33-bit
//! values are unwrapped into a continuous i64 timeline starting at the first
//! value seen. A jump larger than [`PsConfig::max_timestamp_jump`] (or any
//! backward jump of video DTS) is reported and bridged: the timeline continues
//! one frame later. Video DTS strictly increase. Audio frames never overlap: a
//! frame starts no earlier than the previous one ends (senders repeat PTS on
//! consecutive audio PES), so when a sender's PTS clock runs slower than its
//! sample clock the audio timeline follows the samples.
//!
//! Bounds. Every access unit is limited to [`PsConfig::max_access_unit_bytes`]
//! (larger ones are dropped with a warning); partial units plus frames not yet
//! polled are limited to [`PsConfig::max_buffered_bytes`]; queued events to
//! [`PsConfig::max_queued_events`]; unparsed input held between calls to one
//! header (at most 64 KiB + 6) plus one 64 KiB input piece. At most
//! [`MAX_STREAMS`] elementary streams are tracked.

use std::collections::VecDeque;
use std::sync::Arc;

use bytes::{Buf, Bytes, BytesMut};

use crate::codec::nal::{self, NalKind};
use crate::codec::{Codec, CodecError, aac, h264};
use crate::media::{AudioTrack, Frame, FrameData, TrackInfo, VideoTrack};

#[cfg(test)]
mod tests;

/// Elementary streams tracked at once (audio and video together).
pub const MAX_STREAMS: usize = 8;

/// Input is parsed in pieces of this size, so unparsed input never exceeds one
/// piece plus one header.
const PIECE: usize = 64 * 1024;

/// 2^33: PTS, DTS and SCR are 33-bit counters (ISO/IEC 13818-1 §2.4.3.7).
const TS_MODULUS: i64 = 1 << 33;

/// Start codes and stream_id values (ISO/IEC 13818-1 §2.5.3.2, §2.4.3.7).
mod sid {
    pub const PROGRAM_END: u8 = 0xB9;
    pub const PACK: u8 = 0xBA;
    pub const SYSTEM_HEADER: u8 = 0xBB;
    pub const PROGRAM_STREAM_MAP: u8 = 0xBC;
    pub const AUDIO_FIRST: u8 = 0xC0;
    pub const AUDIO_LAST: u8 = 0xDF;
    pub const VIDEO_FIRST: u8 = 0xE0;
    pub const VIDEO_LAST: u8 = 0xEF;
}

/// stream_type values (ISO/IEC 13818-1 §2.4.4.9; G.711 from GB/T 28181 Annex C).
pub mod stream_type {
    pub const AAC_ADTS: u8 = 0x0F;
    pub const H264: u8 = 0x1B;
    pub const H265: u8 = 0x24;
    pub const G711A: u8 = 0x90;
    pub const G711U: u8 = 0x91;
}

/// The codec a program stream map's stream_type names, if camgate carries it.
pub fn codec_of_stream_type(t: u8) -> Option<Codec> {
    match t {
        stream_type::H264 => Some(Codec::H264),
        stream_type::H265 => Some(Codec::H265),
        stream_type::G711A => Some(Codec::G711A),
        stream_type::G711U => Some(Codec::G711U),
        stream_type::AAC_ADTS => Some(Codec::Aac),
        _ => None,
    }
}

/// Limits of one demuxer. Values below a small floor are raised to it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PsConfig {
    /// Largest video access unit or audio PES payload; larger ones are dropped
    /// with [`PsError::AccessUnitTooLarge`].
    pub max_access_unit_bytes: usize,
    /// Bytes of partial access units plus frames waiting to be polled; a frame
    /// that would exceed it is dropped with [`PsError::QueueFull`].
    pub max_buffered_bytes: usize,
    /// Events waiting to be polled; further events are dropped (and counted).
    pub max_queued_events: usize,
    /// Largest timestamp step, in 90 kHz ticks, taken as continuous time.
    pub max_timestamp_jump: i64,
}

impl Default for PsConfig {
    fn default() -> Self {
        Self {
            max_access_unit_bytes: 4 << 20,
            max_buffered_bytes: 16 << 20,
            max_queued_events: 4096,
            max_timestamp_jump: 10 * 90_000,
        }
    }
}

/// A recoverable problem. Parsing goes on (resynchronising on the next start
/// code where needed). Offsets count bytes from the first byte pushed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PsError {
    #[error("no start code at byte {offset}: skipped {skipped} bytes to resynchronise")]
    Resync { offset: u64, skipped: u64 },
    #[error("PES of stream 0x{stream_id:02x} at byte {offset}: {reason}; skipped")]
    BadPesHeader {
        offset: u64,
        stream_id: u8,
        reason: &'static str,
    },
    #[error("program stream map at byte {offset}: {reason}")]
    BadProgramStreamMap { offset: u64, reason: &'static str },
    #[error("{what} at byte {offset} cut short by the end of the access unit")]
    TruncatedHeader { offset: u64, what: &'static str },
    #[error(
        "PES of stream 0x{stream_id:02x} at byte {offset} cut short by the end of the access unit: {missing} bytes missing"
    )]
    TruncatedPes {
        offset: u64,
        stream_id: u8,
        missing: u64,
    },
    #[error(
        "access unit of stream 0x{stream_id:02x} starting at byte {offset} exceeds {limit} bytes; dropped"
    )]
    AccessUnitTooLarge {
        offset: u64,
        stream_id: u8,
        limit: usize,
    },
    #[error(
        "frame of stream 0x{stream_id:02x} starting at byte {offset} dropped: more than {limit} bytes wait to be polled"
    )]
    QueueFull {
        offset: u64,
        stream_id: u8,
        limit: usize,
    },
    #[error(
        "stream 0x{stream_id:02x}: stream_type 0x{stream_type:02x} (map at byte {offset}) is not supported; its PES are skipped"
    )]
    UnsupportedStreamType {
        offset: u64,
        stream_id: u8,
        stream_type: u8,
    },
    #[error(
        "audio stream 0x{stream_id:02x} at byte {offset}: codec unknown (no map entry, not ADTS); dropped until a map names it"
    )]
    UnknownAudioCodec { offset: u64, stream_id: u8 },
    #[error(
        "more than {MAX_STREAMS} elementary streams: stream 0x{stream_id:02x} at byte {offset} ignored"
    )]
    TooManyStreams { offset: u64, stream_id: u8 },
    #[error(
        "stream 0x{stream_id:02x}: bad parameter sets in the access unit at byte {offset}: {source}"
    )]
    BadParameterSets {
        offset: u64,
        stream_id: u8,
        source: CodecError,
    },
    #[error("stream 0x{stream_id:02x}: bad ADTS data in the PES at byte {offset}: {source}")]
    BadAdts {
        offset: u64,
        stream_id: u8,
        source: CodecError,
    },
    #[error(
        "stream 0x{stream_id:02x}: timestamp jump of {jump} ticks (90 kHz) at byte {offset}; timeline continued"
    )]
    TimestampJump {
        offset: u64,
        stream_id: u8,
        jump: i64,
    },
}

/// What [`PsDemuxer::poll`] returns.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PsEvent {
    Frame(Frame),
    Warning(PsError),
}

/// Counters of one demuxer.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PsStats {
    /// Bytes pushed.
    pub bytes: u64,
    pub packs: u64,
    pub system_headers: u64,
    pub program_stream_maps: u64,
    /// Audio and video PES parsed.
    pub pes: u64,
    /// Private, padding and other PES skipped by length.
    pub skipped_pes: u64,
    /// Resynchronisations reported with [`PsError::Resync`].
    pub resyncs: u64,
    /// Bytes that belonged to no structure (garbage, cut structures).
    pub skipped_bytes: u64,
    /// `00 00 01 BA` directly followed by another start code (Hikvision H.265).
    pub stray_pack_starts: u64,
    pub warnings: u64,
    /// Events dropped because the queue was full.
    pub dropped_events: u64,
    pub streams: Vec<StreamStats>,
}

/// Counters of one elementary stream.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct StreamStats {
    pub stream_id: u8,
    pub pes: u64,
    pub frames: u64,
    /// Access units or audio frames not emitted: before parameter sets or the
    /// first keyframe, unknown codec, oversize, queue full.
    pub dropped_frames: u64,
}

/// What the demuxer knows about one elementary stream.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StreamInfo {
    pub stream_id: u8,
    /// stream_type from the program stream map, if one named the stream.
    pub stream_type: Option<u8>,
    /// The codec in use (declared or detected).
    pub codec: Option<Codec>,
    /// The current track, once known.
    pub track: Option<Arc<TrackInfo>>,
}

/// Where the payload of the PES being read goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Sink {
    Video(usize),
    Audio(usize),
    /// Payload of a structure skipped by its length.
    Discard,
    /// The rest of a structure cut by `end_of_access_unit`: counted as skipped.
    Lost,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    /// At a structure boundary: a start code is expected.
    Header,
    /// Inside a PES payload (or a structure skipped by length). `remaining` is
    /// `None` for an unbounded PES, which ends at the next PS start code.
    Payload {
        sink: Sink,
        remaining: Option<usize>,
        stream_id: u8,
        offset: u64,
    },
    /// [`PsDemuxer::end_of_access_unit`] cut a structure with `remaining` bytes
    /// still to come: if the next bytes are a start code the rest was lost,
    /// otherwise they are the rest and are skipped.
    AfterCut { remaining: usize },
}

/// A run of bytes skipped while looking for a start code.
#[derive(Clone, Copy, Debug)]
struct SkipRun {
    offset: u64,
    bytes: u64,
    /// Zero bytes alone (stuffing before a start code) are not worth a warning.
    nonzero: bool,
}

#[derive(Debug, Default)]
struct AccessUnit {
    data: BytesMut,
    pts: Option<u64>,
    dts: Option<u64>,
    offset: u64,
    oversize: bool,
}

#[derive(Debug, Default)]
struct ParameterSets {
    vps: Option<Bytes>,
    sps: Option<Bytes>,
    pps: Option<Bytes>,
}

/// Maps 33-bit timestamps onto a continuous 90 kHz timeline.
#[derive(Debug)]
struct Clock {
    last_raw: Option<u64>,
    /// Last mapped value, 90 kHz.
    last: i64,
    /// Step used to bridge a discontinuity, 90 kHz.
    step: i64,
    /// Lower bound of the next output timestamp, in units of `rate`.
    next_out: Option<i64>,
    /// Output timescale (audio: the sample rate; 0 before the first frame).
    rate: u32,
}

impl Clock {
    fn new(step: i64) -> Self {
        Self {
            last_raw: None,
            last: 0,
            step,
            next_out: None,
            rate: 0,
        }
    }

    /// Maps `raw`; returns the mapped value and the jump when it was bridged.
    /// `monotonic`: any backward step is a discontinuity (video DTS).
    fn map(&mut self, raw: u64, max_jump: i64, monotonic: bool, learn: bool) -> (i64, Option<i64>) {
        let raw = raw & (TS_MODULUS as u64 - 1);
        let Some(prev) = self.last_raw.replace(raw) else {
            self.last = raw as i64;
            return (self.last, None);
        };
        let delta = wrap_diff(raw, prev);
        if delta > max_jump || delta < -max_jump || (monotonic && delta < 0) {
            self.last = self.last.saturating_add(self.step);
            return (self.last, Some(delta));
        }
        if learn && delta > 0 {
            self.step = delta;
        }
        self.last = self.last.saturating_add(delta);
        (self.last, None)
    }
}

/// `a - b` for 33-bit counters, in `[-2^32, 2^32)`.
fn wrap_diff(a: u64, b: u64) -> i64 {
    let d = (a as i64 - b as i64).rem_euclid(TS_MODULUS);
    if d >= TS_MODULUS / 2 {
        d - TS_MODULUS
    } else {
        d
    }
}

/// 90 kHz → `rate`, rounding toward negative infinity.
fn rescale_90k(v: i64, rate: u32) -> i64 {
    (i128::from(v) * i128::from(rate)).div_euclid(90_000) as i64
}

#[derive(Debug)]
struct AudioPes {
    data: BytesMut,
    pts: Option<u64>,
    offset: u64,
    oversize: bool,
}

/// State of one elementary stream.
#[derive(Debug)]
struct Es {
    stream_id: u8,
    declared: Option<u8>,
    unsupported: bool,
    codec: Option<Codec>,
    clock: Clock,
    track: Option<Arc<TrackInfo>>,
    stats: StreamStats,
    // Video.
    au: Option<AccessUnit>,
    params: ParameterSets,
    started: bool,
    last_raw: Option<(u64, u64)>,
    // Audio.
    pes: Option<AudioPes>,
    adts_carry: BytesMut,
    adts_detected: bool,
    warned_unknown: bool,
}

impl Es {
    fn new(stream_id: u8) -> Self {
        let step = if is_video(stream_id) { 3600 } else { 1800 };
        Self {
            stream_id,
            declared: None,
            unsupported: false,
            codec: None,
            clock: Clock::new(step),
            track: None,
            stats: StreamStats {
                stream_id,
                ..StreamStats::default()
            },
            au: None,
            params: ParameterSets::default(),
            started: false,
            last_raw: None,
            pes: None,
            adts_carry: BytesMut::new(),
            adts_detected: false,
            warned_unknown: false,
        }
    }

    fn buffered(&self) -> usize {
        self.au.as_ref().map_or(0, |a| a.data.len())
            + self.pes.as_ref().map_or(0, |p| p.data.len())
            + self.adts_carry.len()
    }

    /// Forgets the codec state after the map changed the stream's type.
    fn reset_codec(&mut self) {
        self.codec = None;
        self.track = None;
        self.params = ParameterSets::default();
        self.started = false;
        self.adts_detected = false;
        self.adts_carry.clear();
        self.warned_unknown = false;
    }
}

fn is_video(stream_id: u8) -> bool {
    (sid::VIDEO_FIRST..=sid::VIDEO_LAST).contains(&stream_id)
}

fn is_audio(stream_id: u8) -> bool {
    (sid::AUDIO_FIRST..=sid::AUDIO_LAST).contains(&stream_id)
}

/// The MPEG program stream demuxer. See the module documentation.
#[derive(Debug)]
pub struct PsDemuxer {
    config: PsConfig,
    /// Unparsed input; `base` is the stream offset of its first byte.
    buf: BytesMut,
    base: u64,
    state: State,
    skip_run: Option<SkipRun>,
    streams: Vec<Es>,
    /// Stream ids refused for lack of room (bit n = stream id 0xC0 + n).
    refused: u64,
    last_scr: Option<u64>,
    /// The last program stream map, to skip its unchanged repetitions.
    last_map: Bytes,
    events: VecDeque<PsEvent>,
    queued_bytes: usize,
    stats: PsStats,
}

/// A parsed PES header (ISO/IEC 13818-1 §2.4.3.6, or ISO/IEC 11172-1 §2.4.3.3).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct PesHeader {
    /// Bytes from the start code to the payload.
    header_len: usize,
    pts: Option<u64>,
    dts: Option<u64>,
}

#[derive(Debug, PartialEq, Eq)]
enum Parsed<T> {
    /// At least this many bytes (from the start code) are needed.
    Need(usize),
    Done(T),
    Bad(&'static str),
}

/// A 33-bit timestamp in the 5-byte PTS/DTS layout (ISO/IEC 13818-1 §2.4.3.7):
/// 4-bit prefix, [32..30], marker, [29..15], marker, [14..0], marker.
fn read_timestamp(b: &[u8]) -> u64 {
    ((u64::from(b[0]) >> 1) & 7) << 30
        | u64::from(b[1]) << 22
        | (u64::from(b[2]) >> 1) << 15
        | u64::from(b[3]) << 7
        | u64::from(b[4]) >> 1
}

/// Parses the header of an audio/video PES starting at `b[0]` (the start code).
/// `b` holds at least 6 bytes.
fn parse_pes_header(b: &[u8]) -> Parsed<PesHeader> {
    let packet_len = usize::from(u16::from_be_bytes([b[4], b[5]]));
    // Bytes the header may take: the whole packet when its length is known.
    let limit = if packet_len == 0 {
        usize::MAX
    } else {
        6 + packet_len
    };
    let need = |n: usize| -> Option<Parsed<PesHeader>> {
        if n > limit {
            Some(Parsed::Bad("header longer than the packet"))
        } else if b.len() < n {
            Some(Parsed::Need(n))
        } else {
            None
        }
    };
    if let Some(p) = need(7) {
        return p;
    }
    if b[6] & 0xC0 == 0x80 {
        // MPEG-2 (§2.4.3.6): '10' flags, PTS_DTS_flags etc., PES_header_data_length.
        if let Some(p) = need(9) {
            return p;
        }
        let flags = b[7];
        let header_len = 9 + usize::from(b[8]);
        if let Some(p) = need(header_len) {
            return p;
        }
        let fields = &b[9..header_len];
        let (pts, dts) = match flags >> 6 {
            // '10': PTS only; '11': PTS and DTS; '01' is forbidden, '00' none.
            2 if fields.len() >= 5 => (Some(read_timestamp(fields)), None),
            3 if fields.len() >= 10 => (
                Some(read_timestamp(fields)),
                Some(read_timestamp(&fields[5..])),
            ),
            _ => (None, None),
        };
        return Parsed::Done(PesHeader {
            header_len,
            pts,
            dts,
        });
    }
    // MPEG-1 (ISO/IEC 11172-1 §2.4.3.3): up to 16 stuffing bytes 0xFF, optional
    // '01' STD_buffer fields, then '0010' PTS, '0011' PTS DTS or 0x0F.
    let mut i = 6;
    let mut stuffing = 0;
    loop {
        if let Some(p) = need(i + 1) {
            return p;
        }
        if b[i] != 0xFF {
            break;
        }
        stuffing += 1;
        if stuffing > 16 {
            return Parsed::Bad("more than 16 MPEG-1 stuffing bytes");
        }
        i += 1;
    }
    if b[i] >> 6 == 1 {
        i += 2;
        if let Some(p) = need(i + 1) {
            return p;
        }
    }
    match b[i] >> 4 {
        2 => {
            if let Some(p) = need(i + 5) {
                return p;
            }
            Parsed::Done(PesHeader {
                header_len: i + 5,
                pts: Some(read_timestamp(&b[i..])),
                dts: None,
            })
        }
        3 => {
            if let Some(p) = need(i + 10) {
                return p;
            }
            Parsed::Done(PesHeader {
                header_len: i + 10,
                pts: Some(read_timestamp(&b[i..])),
                dts: Some(read_timestamp(&b[i + 5..])),
            })
        }
        _ if b[i] == 0x0F => Parsed::Done(PesHeader {
            header_len: i + 1,
            pts: None,
            dts: None,
        }),
        _ => Parsed::Bad("neither an MPEG-2 nor an MPEG-1 PES header"),
    }
}

/// One entry of a program stream map.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct MapEntry {
    stream_type: u8,
    stream_id: u8,
}

/// Parses the body of a program stream map (the bytes after
/// `program_stream_map_length`, ISO/IEC 13818-1 §2.5.4.1). Lengths inside are
/// clamped to the body; `elementary_stream_map_length` is not trusted (the
/// official test tool's file declares 8 bytes for 14 bytes of entries): entries
/// are read up to the CRC_32, stopping at the first that does not fit.
/// Descriptors are skipped by `elementary_stream_info_length` (vendor ones
/// included); `current_next_indicator` and the CRC_32 are ignored.
/// Returns the entries and whether a length had to be clamped.
fn parse_psm_body(body: &[u8]) -> (Vec<MapEntry>, bool) {
    let mut clamped = false;
    let mut entries = Vec::new();
    // current_next_indicator etc. (1 byte), reserved + marker (1 byte).
    let Some(info_len) = body.get(2..4) else {
        return (entries, true);
    };
    let info_len = usize::from(u16::from_be_bytes([info_len[0], info_len[1]]));
    let mut pos = 4 + info_len;
    if pos > body.len() {
        return (entries, true);
    }
    let Some(map_len) = body.get(pos..pos + 2) else {
        return (entries, true);
    };
    let map_len = usize::from(u16::from_be_bytes([map_len[0], map_len[1]]));
    pos += 2;
    // Entries end before the CRC_32; a map without room for one is read to its end.
    let end = if body.len() >= pos + 4 {
        body.len() - 4
    } else {
        body.len()
    };
    if pos + map_len != end {
        clamped = true;
    }
    while pos + 4 <= end && entries.len() < 64 {
        let stream_type = body[pos];
        let stream_id = body[pos + 1];
        let info = usize::from(u16::from_be_bytes([body[pos + 2], body[pos + 3]]));
        let next = pos + 4 + info;
        if next > end {
            // Descriptors run past the map: keep the entry, stop here.
            clamped = true;
            entries.push(MapEntry {
                stream_type,
                stream_id,
            });
            break;
        }
        entries.push(MapEntry {
            stream_type,
            stream_id,
        });
        pos = next;
    }
    (entries, clamped)
}

/// Finds `00 00 01` in `b`.
fn find_start_code(b: &[u8]) -> Option<usize> {
    let mut i = 0;
    while i + 2 < b.len() {
        if b[i + 2] > 1 {
            i += 3;
        } else if b[i + 2] == 1 && b[i + 1] == 0 && b[i] == 0 {
            return Some(i);
        } else {
            i += 1;
        }
    }
    None
}

/// Finds a program stream start code (`00 00 01` then 0xB9..=0xFF: pack, system
/// header, map, PES) in `b`. NAL unit headers after `00 00 01` are below 0x80,
/// so inside H.264/H.265 data only these end an unbounded PES.
fn find_ps_start_code(b: &[u8]) -> Option<usize> {
    let mut from = 0;
    while let Some(i) = find_start_code(&b[from..]) {
        let at = from + i;
        match b.get(at + 3) {
            Some(&c) if c >= sid::PROGRAM_END => return Some(at),
            Some(_) => from = at + 1,
            None => return None,
        }
    }
    None
}

/// True when `b` is a whole number of valid ADTS frames (at least one).
fn is_adts_payload(b: &[u8]) -> bool {
    let mut pos = 0;
    while pos < b.len() {
        match aac::parse_adts_header(&b[pos..]) {
            Ok(h) if pos + h.frame_len <= b.len() => pos += h.frame_len,
            _ => return false,
        }
    }
    pos > 0
}

/// Guesses the video codec of a stream without a map entry from its parameter
/// sets: H.265 VPS and SPS (types 32/33 with a valid two-byte header) or an
/// H.264 SPS (type 7, nal_ref_idc ≠ 0) that parses. Undecided without them.
fn sniff_video(nals: &[Bytes]) -> Option<Codec> {
    let h265_ps = |t: u8| {
        nals.iter().any(|n| {
            n.len() > 2
                && n[0] & 0x81 == 0
                && (n[0] >> 1) & 0x3F == t
                && n[1] & 0xF8 == 0
                && n[1] & 7 != 0
        })
    };
    let h265 = h265_ps(32) && h265_ps(33);
    let h264 = nals.iter().any(|n| {
        n.first()
            .is_some_and(|&b| b & 0x80 == 0 && b & 0x60 != 0 && b & 0x1F == 7)
            && h264::parse_sps(n).is_ok()
    });
    match (h264, h265) {
        (true, false) => Some(Codec::H264),
        (false, true) => Some(Codec::H265),
        _ => None,
    }
}

/// Random access pictures: H.264 IDR (type 5, ITU-T H.264 Table 7-1), H.265
/// IRAP (types 16..=23, ITU-T H.265 Table 7-1).
fn is_keyframe(codec: Codec, nals: &[Bytes]) -> bool {
    nals.iter().any(|n| match codec {
        Codec::H264 => nal::h264_type(n) == 5,
        Codec::H265 => (16..=23).contains(&nal::h265_type(n)),
        _ => false,
    })
}

impl PsDemuxer {
    pub fn new(config: PsConfig) -> Self {
        let config = PsConfig {
            max_access_unit_bytes: config.max_access_unit_bytes.max(1024),
            max_buffered_bytes: config.max_buffered_bytes.max(1024),
            max_queued_events: config.max_queued_events.max(16),
            max_timestamp_jump: config.max_timestamp_jump.max(90),
        };
        Self {
            config,
            buf: BytesMut::new(),
            base: 0,
            state: State::Header,
            skip_run: None,
            streams: Vec::new(),
            refused: 0,
            last_scr: None,
            last_map: Bytes::new(),
            events: VecDeque::new(),
            queued_bytes: 0,
            stats: PsStats::default(),
        }
    }

    pub fn config(&self) -> &PsConfig {
        &self.config
    }

    /// Appends input and parses as far as it goes.
    pub fn push(&mut self, mut bytes: &[u8]) {
        self.stats.bytes += bytes.len() as u64;
        while !bytes.is_empty() {
            let n = bytes.len().min(PIECE);
            self.buf.extend_from_slice(&bytes[..n]);
            bytes = &bytes[n..];
            self.parse();
        }
    }

    /// Everything pushed so far completes the current frame (RTP marker bit,
    /// timestamp change, or end of input): pending access units are emitted now,
    /// an unbounded PES ends here, and a structure still missing bytes is
    /// reported as cut. If the next bytes are not a start code they are taken as
    /// the rest of the cut structure and skipped.
    pub fn end_of_access_unit(&mut self) {
        match self.state {
            State::Header => {
                if !self.buf.is_empty() {
                    if self.buf.starts_with(&[0, 0, 1]) {
                        let what = match self.buf.get(3) {
                            Some(&sid::PACK) => "pack header",
                            Some(&sid::SYSTEM_HEADER) => "system header",
                            Some(&sid::PROGRAM_STREAM_MAP) => "program stream map",
                            Some(_) => "PES header",
                            None => "start code",
                        };
                        self.warn(PsError::TruncatedHeader {
                            offset: self.base,
                            what,
                        });
                        self.stats.skipped_bytes += self.buf.len() as u64;
                        self.consume(self.buf.len());
                    } else {
                        self.skip(self.buf.len());
                    }
                }
            }
            State::Payload {
                sink,
                remaining: None,
                ..
            } => {
                let n = self.buf.len();
                self.deliver(sink, n);
                self.state = State::Header;
                self.end_pes(sink);
            }
            State::Payload {
                sink,
                remaining: Some(r),
                stream_id,
                offset,
            } => {
                // Bounded payload: the buffer is always drained, so r > 0.
                if let Sink::Video(_) | Sink::Audio(_) = sink {
                    self.warn(PsError::TruncatedPes {
                        offset,
                        stream_id,
                        missing: r as u64,
                    });
                }
                self.state = State::AfterCut { remaining: r };
                self.end_pes(sink);
            }
            State::AfterCut { remaining } => {
                // Fewer than 4 bytes wait here: too short for a start code, so
                // they end the cut structure, and this frame.
                let n = self.buf.len();
                self.stats.skipped_bytes += n as u64;
                self.consume(n);
                if remaining > n {
                    self.state = State::AfterCut {
                        remaining: remaining - n,
                    };
                } else {
                    self.state = State::Header;
                }
            }
        }
        self.flush_skip_run();
        for i in 0..self.streams.len() {
            self.finish_access_unit(i);
        }
    }

    /// The next event, if any.
    pub fn poll(&mut self) -> Option<PsEvent> {
        let ev = self.events.pop_front()?;
        if let PsEvent::Frame(f) = &ev {
            self.queued_bytes = self.queued_bytes.saturating_sub(f.payload_len());
        }
        Some(ev)
    }

    pub fn stats(&self) -> PsStats {
        let mut s = self.stats.clone();
        s.streams = self.streams.iter().map(|e| e.stats.clone()).collect();
        s
    }

    /// The elementary streams seen in maps or PES, in order of appearance.
    pub fn streams(&self) -> Vec<StreamInfo> {
        self.streams
            .iter()
            .map(|e| StreamInfo {
                stream_id: e.stream_id,
                stream_type: e.declared,
                codec: e
                    .codec
                    .or_else(|| e.declared.and_then(codec_of_stream_type)),
                track: e.track.clone(),
            })
            .collect()
    }

    /// Bytes held: unparsed input, partial access units, frames not yet polled.
    pub fn buffered_bytes(&self) -> usize {
        self.buf.len() + self.accumulated() + self.queued_bytes
    }

    fn accumulated(&self) -> usize {
        self.streams.iter().map(Es::buffered).sum()
    }

    // --- input bookkeeping -----------------------------------------------------

    fn consume(&mut self, n: usize) {
        self.buf.advance(n);
        self.base += n as u64;
    }

    /// Skips `n` bytes of garbage, extending the current resync run.
    fn skip(&mut self, n: usize) {
        if n == 0 {
            return;
        }
        let nonzero = self.buf[..n].iter().any(|&b| b != 0);
        let run = self.skip_run.get_or_insert(SkipRun {
            offset: self.base,
            bytes: 0,
            nonzero: false,
        });
        run.bytes += n as u64;
        run.nonzero |= nonzero;
        self.stats.skipped_bytes += n as u64;
        self.consume(n);
    }

    fn flush_skip_run(&mut self) {
        if let Some(run) = self.skip_run.take()
            && run.nonzero
        {
            self.stats.resyncs += 1;
            self.warn(PsError::Resync {
                offset: run.offset,
                skipped: run.bytes,
            });
        }
    }

    // --- events ------------------------------------------------------------------

    fn push_event(&mut self, ev: PsEvent) -> bool {
        if self.events.len() >= self.config.max_queued_events {
            self.stats.dropped_events += 1;
            return false;
        }
        self.events.push_back(ev);
        true
    }

    fn warn(&mut self, e: PsError) {
        self.stats.warnings += 1;
        self.push_event(PsEvent::Warning(e));
    }

    fn emit_frame(&mut self, idx: usize, frame: Frame, offset: u64) {
        let len = frame.payload_len();
        let held = self
            .queued_bytes
            .saturating_add(self.accumulated())
            .saturating_add(len);
        if held > self.config.max_buffered_bytes {
            self.streams[idx].stats.dropped_frames += 1;
            let stream_id = self.streams[idx].stream_id;
            self.warn(PsError::QueueFull {
                offset,
                stream_id,
                limit: self.config.max_buffered_bytes,
            });
            return;
        }
        if self.push_event(PsEvent::Frame(frame)) {
            self.queued_bytes += len;
            self.streams[idx].stats.frames += 1;
        } else {
            self.streams[idx].stats.dropped_frames += 1;
        }
    }

    // --- parsing -------------------------------------------------------------------

    fn parse(&mut self) {
        while self.step() {}
    }

    /// One parsing step; false when more input is needed.
    fn step(&mut self) -> bool {
        match self.state {
            State::Header => self.step_header(),
            State::Payload {
                sink,
                remaining,
                stream_id: _,
                offset: _,
            } => self.step_payload(sink, remaining),
            State::AfterCut { remaining } => {
                if self.buf.len() < 4 {
                    return false;
                }
                if self.buf[..3] == [0, 0, 1] && self.buf[3] >= sid::PROGRAM_END {
                    // The rest of the cut structure was lost.
                    self.state = State::Header;
                } else {
                    self.state = State::Payload {
                        sink: Sink::Lost,
                        remaining: Some(remaining),
                        stream_id: 0,
                        offset: self.base,
                    };
                }
                true
            }
        }
    }

    fn step_payload(&mut self, sink: Sink, remaining: Option<usize>) -> bool {
        if self.buf.is_empty() {
            return false;
        }
        match remaining {
            Some(r) => {
                let n = r.min(self.buf.len());
                self.deliver(sink, n);
                if r == n {
                    self.state = State::Header;
                    self.end_pes(sink);
                } else if let State::Payload { remaining, .. } = &mut self.state {
                    *remaining = Some(r - n);
                }
                true
            }
            None => match find_ps_start_code(&self.buf) {
                Some(p) => {
                    self.deliver(sink, p);
                    self.state = State::Header;
                    self.end_pes(sink);
                    true
                }
                None => {
                    // Keep what may be the start of a start code.
                    let n = self.buf.len().saturating_sub(3);
                    if n == 0 {
                        return false;
                    }
                    self.deliver(sink, n);
                    true
                }
            },
        }
    }

    fn step_header(&mut self) -> bool {
        let b = &self.buf[..];
        if b.len() < 4 {
            return false;
        }
        if b[..3] != [0, 0, 1] {
            let n = match find_start_code(&b[1..]) {
                Some(i) => 1 + i,
                None => b.len() - 2,
            };
            self.skip(n);
            return true;
        }
        let code = b[3];
        if code < sid::PROGRAM_END {
            // 00 00 01 with a non-PS code: garbage (or a NAL start code out of place).
            self.skip(1);
            return true;
        }
        match code {
            sid::PROGRAM_END => {
                self.flush_skip_run();
                self.consume(4);
                for i in 0..self.streams.len() {
                    self.finish_access_unit(i);
                }
                true
            }
            sid::PACK => self.pack_header(),
            _ => {
                if b.len() < 6 {
                    return false;
                }
                let len = usize::from(u16::from_be_bytes([b[4], b[5]]));
                match code {
                    sid::SYSTEM_HEADER => {
                        // §2.5.3.5: skipped by header_length.
                        self.flush_skip_run();
                        self.stats.system_headers += 1;
                        self.skip_structure(len);
                        true
                    }
                    sid::PROGRAM_STREAM_MAP => {
                        if b.len() < 6 + len {
                            return false;
                        }
                        self.flush_skip_run();
                        self.program_stream_map(len);
                        true
                    }
                    c if is_audio(c) || is_video(c) => self.pes(c, len),
                    _ => {
                        // private_stream_1 (Hikvision private data), padding,
                        // private_stream_2 and the rest: skipped by
                        // PES_packet_length (§2.4.3.7).
                        self.flush_skip_run();
                        self.stats.skipped_pes += 1;
                        self.skip_structure(len);
                        true
                    }
                }
            }
        }
    }

    /// Skips a structure of 6 header bytes plus `len` bytes.
    fn skip_structure(&mut self, len: usize) {
        let offset = self.base;
        self.consume(6);
        if len > 0 {
            self.state = State::Payload {
                sink: Sink::Discard,
                remaining: Some(len),
                stream_id: 0,
                offset,
            };
        }
    }

    /// Pack header, ISO/IEC 13818-1 §2.5.3.3 (MPEG-2) or ISO/IEC 11172-1
    /// §2.4.3.2 (MPEG-1). Marker bits are not checked.
    fn pack_header(&mut self) -> bool {
        let b = &self.buf[..];
        if b.len() < 5 {
            return false;
        }
        if b[4] >> 6 == 0b01 {
            // '01', SCR base and extension, program_mux_rate, 5 reserved bits and
            // pack_stuffing_length (3 bits), then that many stuffing bytes,
            // skipped whatever their value.
            if b.len() < 14 {
                return false;
            }
            let total = 14 + usize::from(b[13] & 7);
            if b.len() < total {
                return false;
            }
            let scr = (u64::from(b[4] >> 3) & 7) << 30
                | (u64::from(b[4]) & 3) << 28
                | u64::from(b[5]) << 20
                | (u64::from(b[6]) >> 3) << 15
                | (u64::from(b[6]) & 3) << 13
                | u64::from(b[7]) << 5
                | u64::from(b[8]) >> 3;
            self.flush_skip_run();
            self.last_scr = Some(scr);
            self.stats.packs += 1;
            self.consume(total);
            return true;
        }
        if b[4] >> 4 == 0b0010 {
            // MPEG-1: '0010', SCR with markers, mux_rate with markers: 12 bytes.
            if b.len() < 12 {
                return false;
            }
            let scr = read_timestamp(&b[4..]);
            self.flush_skip_run();
            self.last_scr = Some(scr);
            self.stats.packs += 1;
            self.consume(12);
            return true;
        }
        if b[4] == 0 {
            if b.len() < 7 {
                return false;
            }
            if b[4..7] == [0, 0, 1] {
                // Hikvision H.265: a stray pack start code directly followed by
                // another start code.
                self.stats.stray_pack_starts += 1;
                self.consume(4);
                return true;
            }
        }
        // Not a pack header: part of the garbage before the next start code.
        self.skip(4);
        true
    }

    /// Program stream map, ISO/IEC 13818-1 §2.5.4.
    fn program_stream_map(&mut self, len: usize) {
        let offset = self.base;
        self.stats.program_stream_maps += 1;
        // Cameras repeat the map before every keyframe: an unchanged one (even
        // a malformed one) is not parsed or reported again.
        if self.last_map[..] == self.buf[..6 + len] {
            self.consume(6 + len);
            return;
        }
        self.last_map = Bytes::copy_from_slice(&self.buf[..6 + len]);
        let (entries, clamped) = parse_psm_body(&self.buf[6..6 + len]);
        self.consume(6 + len);
        if clamped {
            self.warn(PsError::BadProgramStreamMap {
                offset,
                reason: "lengths inconsistent with program_stream_map_length; read up to the CRC",
            });
        }
        for e in entries {
            if !(is_audio(e.stream_id) || is_video(e.stream_id)) {
                continue;
            }
            let Some(idx) = self.stream_index(e.stream_id, offset) else {
                continue;
            };
            if self.streams[idx].declared == Some(e.stream_type) {
                continue;
            }
            let codec = codec_of_stream_type(e.stream_type);
            let fits = codec.is_some_and(|c| c.is_video() == is_video(e.stream_id));
            let es = &self.streams[idx];
            if es.declared.is_some() || (es.codec.is_some() && es.codec != codec) {
                // A pending access unit belongs to the old codec.
                self.finish_access_unit(idx);
                self.streams[idx].reset_codec();
            }
            let es = &mut self.streams[idx];
            es.declared = Some(e.stream_type);
            es.unsupported = !fits;
            if fits {
                if is_video(e.stream_id) {
                    es.codec = codec;
                }
            } else {
                self.warn(PsError::UnsupportedStreamType {
                    offset,
                    stream_id: e.stream_id,
                    stream_type: e.stream_type,
                });
            }
        }
    }

    /// The index of the state of `stream_id`, created on first use.
    fn stream_index(&mut self, stream_id: u8, offset: u64) -> Option<usize> {
        if let Some(i) = self.streams.iter().position(|e| e.stream_id == stream_id) {
            return Some(i);
        }
        if self.streams.len() < MAX_STREAMS {
            self.streams.push(Es::new(stream_id));
            return Some(self.streams.len() - 1);
        }
        let bit = 1u64 << (stream_id.saturating_sub(sid::AUDIO_FIRST) & 63);
        if self.refused & bit == 0 {
            self.refused |= bit;
            self.warn(PsError::TooManyStreams { offset, stream_id });
        }
        None
    }

    /// An audio or video PES (§2.4.3.6).
    fn pes(&mut self, stream_id: u8, len: usize) -> bool {
        let offset = self.base;
        let hdr = match parse_pes_header(&self.buf) {
            Parsed::Need(_) => return false,
            Parsed::Bad(reason) => {
                self.flush_skip_run();
                self.warn(PsError::BadPesHeader {
                    offset,
                    stream_id,
                    reason,
                });
                self.consume(6);
                self.state = State::Payload {
                    sink: Sink::Discard,
                    remaining: (len > 0).then_some(len),
                    stream_id,
                    offset,
                };
                return true;
            }
            Parsed::Done(h) => h,
        };
        self.flush_skip_run();
        self.stats.pes += 1;
        self.consume(hdr.header_len);
        let remaining = (len > 0).then(|| len + 6 - hdr.header_len);
        let sink = match self.stream_index(stream_id, offset) {
            None => Sink::Discard,
            Some(idx) => {
                self.streams[idx].stats.pes += 1;
                if self.streams[idx].unsupported {
                    Sink::Discard
                } else if is_video(stream_id) {
                    self.video_pes_start(idx, &hdr, offset);
                    Sink::Video(idx)
                } else {
                    self.streams[idx].pes = Some(AudioPes {
                        data: BytesMut::new(),
                        pts: hdr.pts,
                        offset,
                        oversize: false,
                    });
                    Sink::Audio(idx)
                }
            }
        };
        if remaining == Some(0) {
            self.end_pes(sink);
        } else {
            self.state = State::Payload {
                sink,
                remaining,
                stream_id,
                offset,
            };
        }
        true
    }

    /// A video PES begins: a PTS different from the pending access unit's
    /// starts a new one; a PES without PTS continues it.
    fn video_pes_start(&mut self, idx: usize, hdr: &PesHeader, offset: u64) {
        let ends = match &self.streams[idx].au {
            Some(au) => hdr.pts.is_some() && au.pts != hdr.pts,
            None => false,
        };
        if ends {
            self.finish_access_unit(idx);
        }
        let es = &mut self.streams[idx];
        if es.au.is_none() {
            es.au = Some(AccessUnit {
                data: BytesMut::new(),
                pts: hdr.pts,
                dts: hdr.dts,
                offset,
                oversize: false,
            });
        }
    }

    /// Moves `n` bytes of payload from the input to `sink`.
    fn deliver(&mut self, sink: Sink, n: usize) {
        if n == 0 {
            return;
        }
        let limit = self.config.max_access_unit_bytes;
        let total_limit = self.config.max_buffered_bytes;
        let total_room = total_limit.saturating_sub(self.accumulated());
        // Whichever limit the bytes cross first (independent of the chunking).
        let exceeds = |len: usize| -> Option<usize> {
            let unit_room = limit.saturating_sub(len);
            if n <= unit_room.min(total_room) {
                None
            } else if unit_room <= total_room {
                Some(limit)
            } else {
                Some(total_limit)
            }
        };
        let mut too_large = None;
        match sink {
            Sink::Discard => {}
            Sink::Lost => self.stats.skipped_bytes += n as u64,
            Sink::Video(idx) => {
                let es = &mut self.streams[idx];
                if let Some(au) = &mut es.au
                    && !au.oversize
                {
                    if let Some(l) = exceeds(au.data.len()) {
                        au.oversize = true;
                        au.data = BytesMut::new();
                        too_large = Some((au.offset, es.stream_id, l));
                    } else {
                        au.data.extend_from_slice(&self.buf[..n]);
                    }
                }
            }
            Sink::Audio(idx) => {
                let es = &mut self.streams[idx];
                if let Some(pes) = &mut es.pes
                    && !pes.oversize
                {
                    if let Some(l) = exceeds(pes.data.len()) {
                        pes.oversize = true;
                        pes.data = BytesMut::new();
                        too_large = Some((pes.offset, es.stream_id, l));
                    } else {
                        pes.data.extend_from_slice(&self.buf[..n]);
                    }
                }
            }
        }
        if let Some((offset, stream_id, limit)) = too_large {
            self.warn(PsError::AccessUnitTooLarge {
                offset,
                stream_id,
                limit,
            });
        }
        self.consume(n);
    }

    /// The PES feeding `sink` is complete.
    fn end_pes(&mut self, sink: Sink) {
        if let Sink::Audio(idx) = sink {
            self.finish_audio_pes(idx);
        }
    }

    // --- video -------------------------------------------------------------------

    /// Emits (or drops) the pending access unit of stream `idx`.
    fn finish_access_unit(&mut self, idx: usize) {
        let Some(au) = self.streams[idx].au.take() else {
            return;
        };
        if !is_video(self.streams[idx].stream_id) {
            return;
        }
        if au.oversize {
            self.streams[idx].stats.dropped_frames += 1;
            return;
        }
        let data = au.data.freeze();
        let nals = nal::split_annex_b(&data);
        if nals.is_empty() {
            return;
        }
        let offset = au.offset;
        let stream_id = self.streams[idx].stream_id;
        let max_jump = self.config.max_timestamp_jump;
        let scr = self.last_scr.unwrap_or(0);

        // Timestamps first, so the timeline advances over dropped units too.
        let es = &mut self.streams[idx];
        let (raw_pts, raw_dts) = match au.pts {
            Some(p) => (p, au.dts.unwrap_or(p)),
            None => es.last_raw.unwrap_or((scr, scr)),
        };
        es.last_raw = Some((raw_pts, raw_dts));
        let (mapped, jump) = es.clock.map(raw_dts, max_jump, true, true);
        let cto = wrap_diff(raw_pts, raw_dts).clamp(0, max_jump);
        let dts = es.clock.next_out.map_or(mapped, |n| mapped.max(n));
        let pts = dts + cto;
        es.clock.next_out = Some(dts + 1);
        if let Some(jump) = jump {
            self.warn(PsError::TimestampJump {
                offset,
                stream_id,
                jump,
            });
        }

        let es = &mut self.streams[idx];
        let codec = match es.codec {
            Some(c) => c,
            None => match sniff_video(&nals) {
                Some(c) => {
                    es.codec = Some(c);
                    c
                }
                None => {
                    es.stats.dropped_frames += 1;
                    return;
                }
            },
        };
        self.update_parameter_sets(idx, codec, &nals, offset);
        let keyframe = is_keyframe(codec, &nals);
        let es = &mut self.streams[idx];
        let Some(track) = es.track.clone() else {
            es.stats.dropped_frames += 1;
            return;
        };
        if !es.started && !keyframe {
            es.stats.dropped_frames += 1;
            return;
        }
        es.started = true;
        let frame = Frame {
            track,
            pts,
            dts,
            keyframe,
            data: FrameData::Nals(nals),
            received: None,
        };
        self.emit_frame(idx, frame, offset);
    }

    /// Takes new parameter sets from an access unit into the stream's track.
    fn update_parameter_sets(&mut self, idx: usize, codec: Codec, nals: &[Bytes], offset: u64) {
        let es = &mut self.streams[idx];
        let mut changed = false;
        for n in nals {
            let slot = match nal::classify(codec, n) {
                NalKind::Vps if codec == Codec::H265 => &mut es.params.vps,
                NalKind::Sps => &mut es.params.sps,
                NalKind::Pps => &mut es.params.pps,
                _ => continue,
            };
            if slot.as_deref() != Some(&n[..]) {
                // A copy: a slice would keep the whole access unit alive.
                *slot = Some(Bytes::copy_from_slice(n));
                changed = true;
            }
        }
        if !changed {
            return;
        }
        let p = &es.params;
        let built = match (codec, &p.vps, &p.sps, &p.pps) {
            (Codec::H264, _, Some(sps), Some(pps)) => VideoTrack::h264(sps.clone(), pps.clone()),
            (Codec::H265, Some(vps), Some(sps), Some(pps)) => {
                VideoTrack::h265(vps.clone(), sps.clone(), pps.clone())
            }
            _ => return,
        };
        match built {
            Ok(v) => {
                let info = TrackInfo::Video(v);
                if es.track.as_deref() != Some(&info) {
                    es.track = Some(Arc::new(info));
                }
            }
            Err(source) => {
                let stream_id = es.stream_id;
                self.warn(PsError::BadParameterSets {
                    offset,
                    stream_id,
                    source,
                });
            }
        }
    }

    // --- audio -------------------------------------------------------------------

    fn finish_audio_pes(&mut self, idx: usize) {
        let Some(pes) = self.streams[idx].pes.take() else {
            return;
        };
        if pes.oversize {
            self.streams[idx].stats.dropped_frames += 1;
            return;
        }
        let data = pes.data.freeze();
        let es = &mut self.streams[idx];
        let declared = es.declared.and_then(codec_of_stream_type);
        let codec = if es.adts_detected {
            Codec::Aac
        } else {
            match declared {
                // Dahua: the map says G.711 for ADTS payload.
                Some(Codec::G711A | Codec::G711U) | None if is_adts_payload(&data) => {
                    es.adts_detected = true;
                    Codec::Aac
                }
                Some(c) => c,
                None => {
                    if !data.is_empty() {
                        es.stats.dropped_frames += 1;
                    }
                    if !es.warned_unknown && !data.is_empty() {
                        es.warned_unknown = true;
                        let stream_id = es.stream_id;
                        self.warn(PsError::UnknownAudioCodec {
                            offset: pes.offset,
                            stream_id,
                        });
                    }
                    return;
                }
            }
        };
        if es.codec != Some(codec) {
            es.codec = Some(codec);
            es.track = None;
        }
        match codec {
            Codec::Aac => self.aac_pes(idx, data, pes.pts, pes.offset),
            Codec::G711A | Codec::G711U => {
                if data.is_empty() {
                    return;
                }
                let es = &mut self.streams[idx];
                let track = es
                    .track
                    .get_or_insert_with(|| {
                        Arc::new(TrackInfo::Audio(AudioTrack::g711(codec, 8000, 1)))
                    })
                    .clone();
                let samples = data.len() as i64;
                let t = self.audio_time(idx, pes.pts, 8000, samples, pes.offset);
                let frame = Frame {
                    track,
                    pts: t,
                    dts: t,
                    keyframe: true,
                    data: FrameData::Audio(data),
                    received: None,
                };
                self.emit_frame(idx, frame, pes.offset);
            }
            _ => {}
        }
    }

    /// The timestamp of an audio frame of `samples` samples at `rate` starting
    /// with a PES PTS `raw` (or right after the previous frame): never before
    /// the previous frame's end.
    fn audio_time(
        &mut self,
        idx: usize,
        raw: Option<u64>,
        rate: u32,
        samples: i64,
        offset: u64,
    ) -> i64 {
        let max_jump = self.config.max_timestamp_jump;
        let es = &mut self.streams[idx];
        if es.clock.rate != rate {
            // The sample rate changed: the timeline goes on in the new unit.
            if let Some(n) = es.clock.next_out
                && es.clock.rate > 0
            {
                let old = i128::from(es.clock.rate);
                let v = i128::from(n) * i128::from(rate);
                es.clock.next_out = Some((v + old - 1).div_euclid(old) as i64);
            }
            es.clock.rate = rate;
        }
        let mut jump = None;
        let mapped = raw.map(|r| {
            let (m, j) = es.clock.map(r, max_jump, false, false);
            jump = j;
            rescale_90k(m, rate)
        });
        let t = match (mapped, es.clock.next_out) {
            (Some(m), Some(n)) => m.max(n),
            (Some(m), None) => m,
            (None, Some(n)) => n,
            (None, None) => rescale_90k(self.last_scr.unwrap_or(0) as i64, rate),
        };
        es.clock.next_out = Some(t + samples);
        es.clock.step = (i128::from(samples) * 90_000 / i128::from(rate.max(1))) as i64;
        let stream_id = es.stream_id;
        if let Some(jump) = jump {
            self.warn(PsError::TimestampJump {
                offset,
                stream_id,
                jump,
            });
        }
        t
    }

    /// Splits the ADTS frames of one PES (ISO/IEC 13818-7 §6.2); a frame that
    /// continues in the next PES is carried over. The PES PTS belongs to the
    /// first frame that starts in it; later ones follow by 1024 samples per
    /// raw data block.
    fn aac_pes(&mut self, idx: usize, data: Bytes, pts: Option<u64>, offset: u64) {
        let es = &mut self.streams[idx];
        let carried = es.adts_carry.len();
        let buf = if carried == 0 {
            data
        } else {
            es.adts_carry.extend_from_slice(&data);
            es.adts_carry.split().freeze()
        };
        let mut pos = 0;
        let mut pts = pts;
        let mut warned = false;
        while pos < buf.len() {
            match aac::parse_adts_header(&buf[pos..]) {
                Ok(h) if pos + h.frame_len <= buf.len() => {
                    let raw = buf.slice(pos + h.header_len..pos + h.frame_len);
                    let blocks = i64::from(buf[pos + 6] & 3) + 1;
                    let frame_pts = if pos >= carried { pts.take() } else { None };
                    pos += h.frame_len;
                    self.aac_frame(idx, &h, raw, frame_pts, 1024 * blocks, offset);
                }
                Ok(_) => break,
                Err(CodecError::Truncated { .. }) => break,
                Err(source) => {
                    if !warned {
                        warned = true;
                        let stream_id = self.streams[idx].stream_id;
                        self.warn(PsError::BadAdts {
                            offset,
                            stream_id,
                            source,
                        });
                    }
                    // Resynchronise on the next 0xFFF sync word.
                    pos = buf[pos + 1..]
                        .windows(2)
                        .position(|w| w[0] == 0xFF && w[1] & 0xF0 == 0xF0)
                        .map_or(buf.len(), |i| pos + 1 + i);
                }
            }
        }
        // What is left is shorter than one ADTS frame (at most 8191 bytes).
        let es = &mut self.streams[idx];
        es.adts_carry.clear();
        if pos < buf.len() {
            es.adts_carry.extend_from_slice(&buf[pos..]);
        }
    }

    fn aac_frame(
        &mut self,
        idx: usize,
        h: &aac::AdtsHeader,
        raw: Bytes,
        pts: Option<u64>,
        samples: i64,
        offset: u64,
    ) {
        let asc = h.audio_specific_config();
        let es = &mut self.streams[idx];
        let current = match es.track.as_deref() {
            Some(TrackInfo::Audio(a)) => a.config.as_ref() == Some(&asc),
            _ => false,
        };
        if !current {
            match AudioTrack::aac(asc) {
                Ok(a) => es.track = Some(Arc::new(TrackInfo::Audio(a))),
                Err(source) => {
                    es.stats.dropped_frames += 1;
                    let stream_id = es.stream_id;
                    self.warn(PsError::BadAdts {
                        offset,
                        stream_id,
                        source,
                    });
                    return;
                }
            }
        }
        let Some(track) = es.track.clone() else {
            return;
        };
        let t = self.audio_time(idx, pts, h.sample_rate(), samples, offset);
        let frame = Frame {
            track,
            pts: t,
            dts: t,
            keyframe: true,
            data: FrameData::Audio(raw),
            received: None,
        };
        self.emit_frame(idx, frame, offset);
    }
}

impl Default for PsDemuxer {
    fn default() -> Self {
        Self::new(PsConfig::default())
    }
}

/// Fuzz entry point (`fuzz/fuzz_targets/ps.rs`): demuxes `data` pushed whole,
/// in chunks whose sizes come from the data, and byte by byte, with
/// end-of-access-unit calls at the same positions, and checks that all give the
/// same events. Panics only on such a mismatch (a demuxer bug).
pub fn fuzz_entry(data: &[u8]) {
    let Some((&control, input)) = data.split_first() else {
        return;
    };
    // Bounds small enough to be hit, queues large enough never to depend on
    // the chunking.
    let config = PsConfig {
        max_access_unit_bytes: 16 * 1024,
        max_buffered_bytes: usize::MAX,
        max_queued_events: usize::MAX,
        max_timestamp_jump: 90_000,
    };
    // End-of-access-unit every `unit` bytes (0: only at the end).
    let unit = usize::from(control >> 4) * 97;
    let run = |chunk: &dyn Fn(usize) -> usize| -> Vec<PsEvent> {
        let mut d = PsDemuxer::new(config.clone());
        let mut out = Vec::new();
        let units: Vec<&[u8]> = if unit == 0 {
            vec![input]
        } else {
            input.chunks(unit).collect()
        };
        let mut k = 0;
        for u in units {
            let mut rest = u;
            while !rest.is_empty() {
                let n = chunk(k).clamp(1, rest.len());
                k += 1;
                d.push(&rest[..n]);
                rest = &rest[n..];
                while let Some(e) = d.poll() {
                    out.push(e);
                }
            }
            d.end_of_access_unit();
            while let Some(e) = d.poll() {
                out.push(e);
            }
        }
        out
    };
    let whole = run(&|_| usize::MAX);
    let step = usize::from(control & 0x0F) + 1;
    let varied = run(&|k| k.wrapping_mul(7919).wrapping_add(step) % (step * 37) + 1);
    assert_eq!(whole, varied, "chunking changed the demuxed events");
    if input.len() <= 4096 {
        let bytewise = run(&|_| 1);
        assert_eq!(
            whole, bytewise,
            "byte-wise input changed the demuxed events"
        );
    }
}
