//! RFC 4571 framing of RTP over TCP, with resynchronisation.
//!
//! RFC 4571 §2: each RTP (or RTCP) packet is preceded by a 16-bit big-endian
//! length, with no other delimiter. One wrong length therefore misplaces every
//! later packet. Devices do produce wrong lengths: Uniview overwrites its TCP
//! send buffer (ZLM #2632), some cameras push a raw PS pack (`00 00 01 BA`)
//! into the stream after a glitch. GB28181 devices speak this framing for
//! both TCP passive and active (GB/T 28181-2016 Annex L, 2022 Annex D).
//!
//! [`Rfc4571Framer`] never gives up on a connection. A frame goes out when
//! its length is plausible (at least an RTP header, at most
//! [`Rfc4571Config::max_packet_len`]), its first bytes look like an RTP
//! header (version 2 and, once learned or configured, the stream's SSRC and
//! payload type) and, if the bytes after it are buffered, they look like the
//! next header of the same SSRC and payload type. Once the stream is learned,
//! a packet with the marker bit (a frame's last) no longer than the longest
//! so far goes out as soon as it is complete, so no frame waits; the others
//! wait for their successor's header, which the sender sends right behind
//! them.
//!
//! Anything else starts a *resync*. Every position is a candidate; one is
//! *confirmed* when the header its length points to has the candidate's SSRC
//! and payload type ("two SSRC occurrences at the right distance", ZLM's
//! RtpSplitter). The earliest confirmed candidate wins, and a candidate still
//! waiting for bytes does not hold up a later one that is confirmed. A
//! plausible frame at the start of the resync is *held*: a confirmed packet
//! inside it means its length was wrong and it is dropped; otherwise it goes
//! out and the resync starts after it (what follows was junk). Dropped bytes
//! are counted and reported once, as an [`Rfc4571Error::Resynced`] item.
//!
//! So a wrong length costs the damaged packet only (a too-short length lets
//! it out truncated, followed by the report; so does a wrong length on a
//! marked packet at the end of the buffered bytes), a damaged header costs that
//! packet, and a raw PS pack or other junk between packets costs its own
//! bytes. The report means data was lost just before it: drop the frame being
//! assembled. A legitimate change of SSRC on the same connection (the device
//! restarted its stream) costs [`Rfc4571Config::relearn_after`] bytes once the
//! old SSRC was learned.
//!
//! RTCP frames (second byte 192..=223, RFC 5761 §4) are accepted and
//! dropped; they are counted in [`Rfc4571Stats::rtcp`].

use bytes::{Buf, Bytes, BytesMut};

use super::packet::{FIXED_HEADER_LEN, MAX_PACKET_LEN, RTP_VERSION, RtpError};

/// Bytes after the 2-byte length needed to judge an RTP header.
const PEEK: usize = 2 + FIXED_HEADER_LEN;

/// Why a resync started.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResyncReason {
    /// A length shorter than an RTP header (0 included).
    ShortLength { len: u16 },
    /// A length over [`Rfc4571Config::max_packet_len`].
    LongLength { len: u16, max: usize },
    /// A raw MPEG-PS pack start (`00 00 01 BA`) where a length should be.
    RawPsPack,
    /// The framed header's version is not 2.
    Version { version: u8 },
    /// The framed header's SSRC is not the configured or learned one.
    Ssrc { expected: u32, found: u32 },
    /// The framed header's payload type is not the learned one.
    PayloadType { expected: u8, found: u8 },
    /// The header is plausible but its length is wrong: a packet starts
    /// inside the frame it declares.
    Length { len: u16 },
}

impl std::fmt::Display for ResyncReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match *self {
            Self::ShortLength { len } => {
                write!(f, "length {len} is shorter than an RTP header")
            }
            Self::LongLength { len, max } => write!(f, "length {len} is over the {max}-byte limit"),
            Self::RawPsPack => f.write_str("raw PS pack header (00 00 01 BA) instead of a length"),
            Self::Version { version } => write!(f, "RTP version {version}, expected 2"),
            Self::Ssrc { expected, found } => {
                write!(f, "SSRC {found:#010x}, expected {expected:#010x}")
            }
            Self::PayloadType { expected, found } => {
                write!(f, "payload type {found}, expected {expected}")
            }
            Self::Length { len } => write!(f, "length {len} runs into the next packet"),
        }
    }
}

/// An item of [`Rfc4571Framer::next_packet`] that is not a packet, or a
/// refused [`Rfc4571Framer::push`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Rfc4571Error {
    /// Not fatal: the stream was corrupt from byte `offset` (counted from the
    /// start of the connection), `skipped` bytes were dropped and framing
    /// goes on at `offset + skipped`. The packet returned just before may be
    /// damaged (truncated): drop the frame being assembled.
    #[error(
        "RFC 4571 stream resynchronised: {reason} at stream byte {offset}, skipped {skipped} bytes (RFC 4571 §2)"
    )]
    Resynced {
        offset: u64,
        skipped: u64,
        reason: ResyncReason,
    },
    /// The caller pushed more than [`Rfc4571Framer::free_space`]; nothing
    /// was taken. Drain [`Rfc4571Framer::next_packet`] after every push.
    #[error(
        "RFC 4571 buffer full: {buffered} bytes buffered, {pushed} pushed, capacity {capacity}"
    )]
    BufferFull {
        buffered: usize,
        pushed: usize,
        capacity: usize,
    },
}

/// Settings of an [`Rfc4571Framer`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rfc4571Config {
    /// Longest acceptable packet; longer lengths are corruption. At most
    /// 65535 (the field's range). ZLM uses 10 KiB (`rtpMaxSize`); cameras
    /// send about 1400-byte packets.
    pub max_packet_len: usize,
    /// The SSRC from the SDP answer (`y=`), enforced from the first packet.
    /// `None`: learned from the stream.
    pub expected_ssrc: Option<u32>,
    /// Also learn and enforce the payload type.
    pub check_payload_type: bool,
    /// Consecutive packets with the same SSRC and payload type before they
    /// are enforced.
    pub learn_after: u32,
    /// A resync that skips this many bytes forgets the learned SSRC and
    /// payload type (the device restarted its stream); a configured SSRC is
    /// never forgotten.
    pub relearn_after: usize,
    /// Buffer bound; raised to fit one maximal frame and the look-ahead.
    pub buffer_capacity: usize,
}

impl Default for Rfc4571Config {
    fn default() -> Self {
        Self {
            max_packet_len: MAX_PACKET_LEN,
            expected_ssrc: None,
            check_payload_type: true,
            learn_after: 3,
            relearn_after: 64 * 1024,
            buffer_capacity: 192 * 1024,
        }
    }
}

/// Counters of an [`Rfc4571Framer`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Rfc4571Stats {
    /// Bytes pushed.
    pub bytes: u64,
    /// RTP packets returned.
    pub packets: u64,
    /// RTCP frames dropped.
    pub rtcp: u64,
    /// Resyncs that skipped bytes (one per corrupt region).
    pub resyncs: u64,
    /// Bytes dropped while resyncing.
    pub skipped_bytes: u64,
    /// Learned SSRC/payload type forgotten after a long resync.
    pub relearns: u64,
}

/// The front frame during a resync: its header is plausible, its length
/// not (yet) confirmed.
#[derive(Debug, Clone, Copy)]
struct Held {
    /// End of the frame its length declares.
    end: usize,
    /// Whether the header at `end` matches; `None` until buffered.
    next_ok: Option<bool>,
}

#[derive(Debug, Clone, Copy)]
struct Resync {
    offset: u64,
    skipped: u64,
    reason: ResyncReason,
    relearned: bool,
    held: Option<Held>,
    /// Next position (from `buf[0]`) to judge.
    cursor: usize,
    /// Buffer length at which a pending judgement becomes decidable.
    recheck_at: usize,
    /// A candidate inside the held frame waits for bytes.
    pending_inside: bool,
}

/// What the bytes at a position are.
#[derive(Debug, Clone, Copy)]
enum Frame {
    NeedMore,
    Bad(ResyncReason),
    Rtcp { len: usize },
    Rtp { len: usize, ssrc: u32, pt: u8 },
}

/// A resync candidate's fate.
#[derive(Debug, Clone, Copy)]
enum Judge {
    /// Not even its header is buffered.
    NeedMore,
    Reject,
    /// Decidable once the buffer holds this many bytes.
    Pending(usize),
    Confirmed,
}

enum Scan {
    NeedMore,
    /// The held front frame is fine (what follows it is not): return it.
    Release,
    /// Resynchronised; the report, unless nothing was skipped.
    Found(Option<Rfc4571Error>),
}

/// Sans-IO RFC 4571 deframer: [`push`](Self::push) received bytes, then
/// call [`next_packet`](Self::next_packet) until it returns `None`.
#[derive(Debug)]
pub struct Rfc4571Framer {
    cfg: Rfc4571Config,
    capacity: usize,
    buf: BytesMut,
    /// Stream offset of `buf[0]`.
    offset: u64,
    resync: Option<Resync>,
    /// The frame at `buf[0]` was confirmed by the resync scan.
    front_confirmed: bool,
    learned_ssrc: Option<u32>,
    learned_pt: Option<u8>,
    candidate: Option<(u32, u8)>,
    candidate_count: u32,
    /// Longest packet accepted so far.
    longest: usize,
    /// No more bytes will come.
    eof: bool,
    stats: Rfc4571Stats,
}

impl Rfc4571Framer {
    pub fn new(mut cfg: Rfc4571Config) -> Self {
        cfg.max_packet_len = cfg.max_packet_len.clamp(FIXED_HEADER_LEN, MAX_PACKET_LEN);
        // Room for a candidate, its successor and the header after that
        // (the worst a resync waits for), plus one read.
        let capacity = cfg
            .buffer_capacity
            .max(2 * (2 + cfg.max_packet_len) + PEEK + 4096);
        Self {
            cfg,
            capacity,
            buf: BytesMut::new(),
            offset: 0,
            resync: None,
            front_confirmed: false,
            learned_ssrc: None,
            learned_pt: None,
            candidate: None,
            candidate_count: 0,
            longest: 0,
            eof: false,
            stats: Rfc4571Stats::default(),
        }
    }

    /// Appends received bytes. Refused, taking nothing, if they would
    /// overflow the buffer.
    pub fn push(&mut self, data: &[u8]) -> Result<(), Rfc4571Error> {
        if data.len() > self.free_space() {
            return Err(Rfc4571Error::BufferFull {
                buffered: self.buf.len(),
                pushed: data.len(),
                capacity: self.capacity,
            });
        }
        self.buf.extend_from_slice(data);
        self.stats.bytes += data.len() as u64;
        Ok(())
    }

    /// How many bytes [`push`](Self::push) takes now. After
    /// [`next_packet`](Self::next_packet) returned `None` this is at least
    /// 4 KiB.
    pub fn free_space(&self) -> usize {
        self.capacity.saturating_sub(self.buf.len())
    }

    /// Bytes buffered and not yet returned.
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }

    pub fn stats(&self) -> Rfc4571Stats {
        self.stats
    }

    /// The SSRC packets must carry: configured, or learned.
    pub fn ssrc(&self) -> Option<u32> {
        self.cfg.expected_ssrc.or(self.learned_ssrc)
    }

    /// The learned payload type.
    pub fn payload_type(&self) -> Option<u8> {
        self.learned_pt
    }

    /// Declares that no more bytes will come (the connection closed): frames
    /// that only wait for their successor's header are judged without it.
    pub fn end_of_stream(&mut self) {
        self.eof = true;
        if let Some(r) = self.resync.as_mut() {
            r.recheck_at = 0;
        }
    }

    /// The next RTP packet (without its length prefix), a resync report, or
    /// `None` when more bytes are needed. Errors are never fatal.
    pub fn next_packet(&mut self) -> Option<Result<Bytes, Rfc4571Error>> {
        loop {
            if self.resync.is_some() {
                match self.scan() {
                    Scan::NeedMore => return None,
                    Scan::Found(Some(e)) => return Some(Err(e)),
                    Scan::Found(None) => {}
                    Scan::Release => match self.release_front() {
                        Some(p) => return Some(Ok(p)),
                        None => continue,
                    },
                }
            }
            let (len, rtp) = match self.frame_at(0) {
                Frame::NeedMore => return None,
                Frame::Bad(_) => {
                    self.start_resync();
                    continue;
                }
                Frame::Rtcp { len } => (len, None),
                Frame::Rtp { len, ssrc, pt } => (len, Some((ssrc, pt))),
            };
            let end = 2 + len;
            let complete = self.buf.len() >= end;
            if !self.front_confirmed {
                let next_ok = if complete {
                    self.header_at(end, self.want(rtp))
                } else {
                    None
                };
                match next_ok {
                    Some(true) => {}
                    // A wrong length, a damaged successor, or junk after
                    // this frame: the resync scan tells which.
                    Some(false) => {
                        self.start_resync();
                        continue;
                    }
                    // Until the stream is learned, and for a frame longer
                    // than any before, look for packets inside it while
                    // waiting for its successor.
                    None if !self.learned() || len > self.longest => {
                        self.start_resync();
                        continue;
                    }
                    // A frame's last packet goes out at once; the others
                    // wait for their successor, which the sender sends right
                    // behind them.
                    None if complete && rtp.is_some() && self.buf[3] & 0x80 != 0 => {}
                    None => return None,
                }
            }
            if let Some(p) = self.release_front() {
                return Some(Ok(p));
            }
        }
    }

    /// Returns the complete frame at the front (`None` for RTCP, dropped).
    fn release_front(&mut self) -> Option<Bytes> {
        self.front_confirmed = false;
        let (len, rtp) = match self.frame_at(0) {
            Frame::Rtcp { len } => (len, None),
            Frame::Rtp { len, ssrc, pt } => (len, Some((ssrc, pt))),
            Frame::NeedMore | Frame::Bad(_) => return None,
        };
        let end = 2 + len;
        if self.buf.len() < end {
            return None;
        }
        let mut frame = self.buf.split_to(end);
        self.offset += end as u64;
        frame.advance(2);
        let Some((ssrc, pt)) = rtp else {
            self.stats.rtcp += 1;
            return None;
        };
        self.learn(ssrc, pt, len);
        self.stats.packets += 1;
        Some(frame.freeze())
    }

    /// Starts a resync at `buf[0]`. A plausible frame there is held: it goes
    /// out if its successor confirms it or if nothing inside it is a
    /// confirmed packet.
    fn start_resync(&mut self) {
        self.front_confirmed = false;
        let (reason, held) = match self.frame_at(0) {
            Frame::Bad(reason) => (reason, None),
            Frame::Rtp { len, .. } | Frame::Rtcp { len } => (
                ResyncReason::Length {
                    len: u16::try_from(len).unwrap_or(u16::MAX),
                },
                Some(Held {
                    end: 2 + len,
                    next_ok: None,
                }),
            ),
            Frame::NeedMore => (ResyncReason::ShortLength { len: 0 }, None),
        };
        self.resync = Some(Resync {
            offset: self.offset,
            skipped: 0,
            reason,
            relearned: false,
            cursor: usize::from(held.is_some()),
            recheck_at: usize::MAX,
            held,
            pending_inside: false,
        });
    }

    fn skip(&mut self, n: usize) {
        if n == 0 {
            return;
        }
        self.buf.advance(n);
        self.offset += n as u64;
        self.stats.skipped_bytes += n as u64;
        let Some(r) = self.resync.as_mut() else {
            return;
        };
        r.skipped += n as u64;
        if !r.relearned
            && r.skipped >= self.cfg.relearn_after as u64
            && (self.learned_ssrc.is_some() || self.learned_pt.is_some())
        {
            r.relearned = true;
            // Judgements made under the old SSRC no longer hold.
            r.cursor = 0;
            r.recheck_at = usize::MAX;
            self.learned_ssrc = None;
            self.learned_pt = None;
            self.candidate = None;
            self.candidate_count = 0;
            self.longest = 0;
            self.stats.relearns += 1;
        }
    }

    /// Looks for the earliest confirmed candidate. Rejected bytes at the
    /// front are dropped; a candidate that needs more bytes does not block
    /// a later one that is confirmed already.
    fn scan(&mut self) -> Scan {
        loop {
            let Some(mut r) = self.resync else {
                return Scan::Found(None);
            };
            if self.buf.len() >= r.recheck_at {
                r.cursor = usize::from(r.held.is_some());
                r.recheck_at = usize::MAX;
                r.pending_inside = false;
            }
            if let Some(h) = r.held.as_mut() {
                if h.next_ok.is_none() {
                    h.next_ok = self.header_at(h.end, self.front_want());
                }
                match h.next_ok {
                    Some(true) => {
                        // Its successor confirms it after all.
                        self.resync = None;
                        self.front_confirmed = true;
                        return Scan::Found(None);
                    }
                    None => r.recheck_at = r.recheck_at.min(h.end + PEEK),
                    Some(false) => {}
                }
                if r.cursor >= h.end {
                    self.resync = None;
                    if h.next_ok == Some(false) && !r.pending_inside {
                        // Nothing inside it: the frame is fine, what follows
                        // is not (a new resync starts after it).
                        return Scan::Release;
                    }
                    self.resync = Some(r);
                    return Scan::NeedMore;
                }
            }
            let p = r.cursor;
            match self.judge(p) {
                Judge::NeedMore => {
                    self.resync = Some(r);
                    return Scan::NeedMore;
                }
                Judge::Reject if p == 0 => {
                    self.resync = Some(r);
                    self.skip(1);
                }
                Judge::Reject => {
                    r.cursor += 1;
                    self.resync = Some(r);
                }
                Judge::Pending(need) => {
                    r.recheck_at = r.recheck_at.min(need);
                    r.pending_inside |= r.held.is_some();
                    r.cursor += 1;
                    self.resync = Some(r);
                }
                Judge::Confirmed
                    if !self.learned()
                        && r.held.is_some_and(|h| h.next_ok.is_none() && p < h.end) =>
                {
                    // Not learned yet, and the held frame may still be
                    // confirmed by its successor: a packet chain *inside* its
                    // payload must not win before that is known (a clean
                    // stream whose payload happens to look like RFC 4571 +
                    // RTP was mis-split here; found by `cargo fuzz`).
                    if let Some(h) = r.held {
                        r.recheck_at = r.recheck_at.min(h.end + PEEK);
                    }
                    r.pending_inside = true;
                    r.cursor += 1;
                    self.resync = Some(r);
                }
                Judge::Confirmed => {
                    // Before the held frame's end: its length was wrong.
                    self.resync = Some(r);
                    self.skip(p);
                    let Some(r) = self.resync.take() else {
                        return Scan::Found(None);
                    };
                    self.front_confirmed = true;
                    if r.skipped == 0 {
                        return Scan::Found(None);
                    }
                    self.stats.resyncs += 1;
                    return Scan::Found(Some(Rfc4571Error::Resynced {
                        offset: r.offset,
                        skipped: r.skipped,
                        reason: r.reason,
                    }));
                }
            }
        }
    }

    /// Whether a packet starts at `buf[p]`: a plausible header, and the
    /// header its length points to has the same SSRC (and payload type).
    fn judge(&self, p: usize) -> Judge {
        let (len, want) = match self.frame_at(p) {
            Frame::NeedMore => return Judge::NeedMore,
            Frame::Bad(_) | Frame::Rtcp { .. } => return Judge::Reject,
            Frame::Rtp { len, ssrc, pt } => (len, self.want(Some((ssrc, pt)))),
        };
        let end = p + 2 + len;
        match self.header_at(end, want) {
            Some(true) => Judge::Confirmed,
            Some(false) => Judge::Reject,
            None => Judge::Pending(end + PEEK),
        }
    }

    /// What the header after a frame must match: the frame's own SSRC and
    /// payload type after RTP, the learned ones after RTCP.
    fn want(&self, rtp: Option<(u32, u8)>) -> (Option<u32>, Option<u8>) {
        match rtp {
            Some((ssrc, pt)) => (Some(ssrc), self.cfg.check_payload_type.then_some(pt)),
            None => (self.ssrc(), self.learned_pt),
        }
    }

    fn front_want(&self) -> (Option<u32>, Option<u8>) {
        match self.frame_at(0) {
            Frame::Rtp { ssrc, pt, .. } => self.want(Some((ssrc, pt))),
            _ => self.want(None),
        }
    }

    /// Classifies the frame (length + header) starting at `buf[at]`.
    fn frame_at(&self, at: usize) -> Frame {
        let b = self.buf.get(at..).unwrap_or_default();
        if b.len() < 2 {
            return Frame::NeedMore;
        }
        const PACK_START: [u8; 4] = [0, 0, 1, 0xba];
        if b.starts_with(&PACK_START) {
            return Frame::Bad(ResyncReason::RawPsPack);
        }
        if b.len() < 4 && PACK_START.starts_with(b) {
            return Frame::NeedMore;
        }
        let len16 = u16::from_be_bytes([b[0], b[1]]);
        let len = usize::from(len16);
        if len > self.cfg.max_packet_len {
            return Frame::Bad(ResyncReason::LongLength {
                len: len16,
                max: self.cfg.max_packet_len,
            });
        }
        if len < 4 {
            return Frame::Bad(ResyncReason::ShortLength { len: len16 });
        }
        if b.len() < 4 {
            return Frame::NeedMore;
        }
        let version = b[2] >> 6;
        if version != RTP_VERSION {
            return Frame::Bad(ResyncReason::Version { version });
        }
        if is_rtcp(b[3]) {
            return Frame::Rtcp { len };
        }
        if len < FIXED_HEADER_LEN {
            return Frame::Bad(ResyncReason::ShortLength { len: len16 });
        }
        if b.len() < PEEK {
            return Frame::NeedMore;
        }
        let pt = b[3] & 0x7f;
        let ssrc = u32::from_be_bytes([b[10], b[11], b[12], b[13]]);
        if let Some(expected) = self.ssrc()
            && expected != ssrc
        {
            return Frame::Bad(ResyncReason::Ssrc {
                expected,
                found: ssrc,
            });
        }
        if let Some(expected) = self.learned_pt
            && expected != pt
        {
            return Frame::Bad(ResyncReason::PayloadType {
                expected,
                found: pt,
            });
        }
        Frame::Rtp { len, ssrc, pt }
    }

    /// Whether the frame at `buf[at]` starts with a plausible header (its
    /// length field is not judged: a wrong one is that frame's problem).
    /// RTP must match the SSRC and payload type in `want` when given.
    /// `None`: not enough bytes yet.
    fn header_at(&self, at: usize, want: (Option<u32>, Option<u8>)) -> Option<bool> {
        // At the end of the stream, a frame that ends exactly there is
        // confirmed by that.
        let missing = || self.eof.then_some(at == self.buf.len());
        let Some(b) = self.buf.get(at + 2..) else {
            return missing();
        };
        if b.len() < 2 {
            return missing();
        }
        if b[0] >> 6 != RTP_VERSION {
            return Some(false);
        }
        let (ssrc, pt) = want;
        if is_rtcp(b[1]) {
            // SR/RR/SDES/BYE start with the sender's SSRC, the media SSRC
            // for a camera (RFC 3550 §6.4).
            if b.len() < 8 {
                return missing();
            }
            return Some(ssrc.is_none_or(|s| s == u32::from_be_bytes([b[4], b[5], b[6], b[7]])));
        }
        if b.len() < FIXED_HEADER_LEN {
            return missing();
        }
        let ssrc_ok = ssrc.is_none_or(|s| s == u32::from_be_bytes([b[8], b[9], b[10], b[11]]));
        let pt_ok = pt.is_none_or(|p| p == b[1] & 0x7f);
        Some(ssrc_ok && pt_ok)
    }

    /// The SSRC (and payload type, if checked) are known.
    fn learned(&self) -> bool {
        self.ssrc().is_some() && (!self.cfg.check_payload_type || self.learned_pt.is_some())
    }

    fn learn(&mut self, ssrc: u32, pt: u8, len: usize) {
        if self.learned() {
            self.longest = self.longest.max(len);
            return;
        }
        if self.candidate == Some((ssrc, pt)) {
            self.candidate_count = self.candidate_count.saturating_add(1);
        } else {
            self.candidate = Some((ssrc, pt));
            self.candidate_count = 1;
            self.longest = 0;
        }
        self.longest = self.longest.max(len);
        if self.candidate_count >= self.cfg.learn_after {
            if self.cfg.expected_ssrc.is_none() {
                self.learned_ssrc = Some(ssrc);
            }
            if self.cfg.check_payload_type {
                self.learned_pt = Some(pt);
            }
        }
    }
}

/// RTCP packet types occupy 192..=223 of the second byte (RFC 5761 §4).
fn is_rtcp(second_byte: u8) -> bool {
    (192..=223).contains(&second_byte)
}

/// Prefixes one packet with its RFC 4571 §2 length.
pub fn rfc4571_frame(packet: &[u8]) -> Result<Bytes, RtpError> {
    let len = u16::try_from(packet.len()).map_err(|_| RtpError::TooLong {
        len: packet.len(),
        max: MAX_PACKET_LEN,
    })?;
    let mut b = BytesMut::with_capacity(2 + packet.len());
    b.extend_from_slice(&len.to_be_bytes());
    b.extend_from_slice(packet);
    Ok(b.freeze())
}
