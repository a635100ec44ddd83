//! Reordering of RTP packets received over UDP (RFC 3550 §A.1 sequence
//! handling), with loss statistics.
//!
//! Sequence numbers are extended to 64 bits (RFC 3550 §A.1 keeps a cycle
//! count; here the extension is computed against the highest sequence seen,
//! so wrap-around 65535 → 0 is just the next number). A packet within
//! `max_dropout` ahead or `max_misorder` behind the highest is part of the
//! stream; anything else is a *jump*, held on probation like RFC 3550 §A.1's
//! `bad_seq`: if the next jump packet is its successor (same SSRC, the next
//! sequence number) the source restarted and the buffer resyncs (flushing
//! what it held) instead of counting tens of thousands of losses; otherwise
//! the stray packet is dropped. A change of SSRC is handled the same way.
//!
//! Packets wait in a window of `max_packets` sequence numbers. A missing
//! packet is given up on (counted lost) when the oldest packet waiting
//! behind it has waited `max_delay`, or when a packet arrives too far ahead
//! for the window. Packets arriving after their slot was given up are
//! *late*; packets already held or delivered are *duplicates*; both are
//! dropped.
//!
//! The first packet of a stream waits `max_delay` too, so that packets sent
//! before it but received after it are not late; after that, packets in
//! order go out at once.
//!
//! Time is an input: `now` must not go backwards (an earlier `now` is taken
//! as the latest one seen).

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use super::packet::RtpPacket;

/// Settings of a [`ReorderBuffer`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReorderConfig {
    /// Window size in packets (1..=4096).
    pub max_packets: usize,
    /// Longest time a packet waits for a missing predecessor.
    pub max_delay: Duration,
    /// A sequence further ahead than this is a jump (RFC 3550 §A.1
    /// `MAX_DROPOUT`, 3000). At most 32767.
    pub max_dropout: u16,
    /// A sequence further behind than this is a jump (RFC 3550 §A.1
    /// `MAX_MISORDER`, 100). At most 32767.
    pub max_misorder: u16,
}

impl Default for ReorderConfig {
    fn default() -> Self {
        Self {
            max_packets: 64,
            max_delay: Duration::from_millis(50),
            max_dropout: 3000,
            max_misorder: 100,
        }
    }
}

/// Counters of a [`ReorderBuffer`]; `lost / (delivered + lost)` is the loss
/// ratio.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReorderStats {
    /// Packets pushed.
    pub received: u64,
    /// Packets returned by `poll`.
    pub delivered: u64,
    /// Sequence numbers given up on.
    pub lost: u64,
    /// Packets already held or delivered, dropped.
    pub duplicates: u64,
    /// Packets that arrived after a higher sequence number and were still in
    /// time.
    pub reordered: u64,
    /// Packets that arrived after their sequence number was given up on,
    /// dropped.
    pub late: u64,
    /// Source restarts (sequence jump or new SSRC confirmed by a second
    /// packet).
    pub resyncs: u64,
    /// Jump packets not confirmed by a successor, dropped.
    pub stray: u64,
    /// Ready packets dropped because `poll` was not called.
    pub overflow: u64,
}

#[derive(Debug)]
struct Slot {
    ext: u64,
    packet: RtpPacket,
}

#[derive(Debug)]
struct Stream {
    ssrc: u32,
    /// Extended sequence number of the next packet to deliver.
    next: u64,
    /// Highest extended sequence number accepted.
    highest: u64,
}

/// Sans-IO jitter/reorder buffer for one RTP stream: [`push`](Self::push)
/// packets as they arrive, then [`poll`](Self::poll) until `None`, and wake
/// up at [`poll_timeout`](Self::poll_timeout).
#[derive(Debug)]
pub struct ReorderBuffer {
    cfg: ReorderConfig,
    slots: Vec<Option<Slot>>,
    held: usize,
    stream: Option<Stream>,
    /// Bit `i`: sequence `next - 1 - i` was delivered (tells duplicates from
    /// late packets).
    history: u128,
    /// Held packets in arrival order (lazily pruned): the front is the one
    /// that has waited longest.
    arrivals: VecDeque<(u64, Instant)>,
    ready: VecDeque<RtpPacket>,
    probation: Option<(RtpPacket, Instant)>,
    /// Arrival of the stream's first packet, until something is released:
    /// the start waits `max_delay` for packets sent before it.
    start_hold: Option<Instant>,
    last_now: Option<Instant>,
    stats: ReorderStats,
}

/// Extended sequence numbers start here so that sequences behind the first
/// one stay positive.
const EXT_BASE: u64 = 1 << 32;

impl ReorderBuffer {
    pub fn new(mut cfg: ReorderConfig) -> Self {
        cfg.max_packets = cfg.max_packets.clamp(1, 4096);
        cfg.max_dropout = cfg.max_dropout.clamp(1, i16::MAX as u16);
        cfg.max_misorder = cfg.max_misorder.min(i16::MAX as u16);
        Self {
            slots: (0..cfg.max_packets).map(|_| None).collect(),
            cfg,
            held: 0,
            stream: None,
            history: 0,
            arrivals: VecDeque::new(),
            ready: VecDeque::new(),
            probation: None,
            start_hold: None,
            last_now: None,
            stats: ReorderStats::default(),
        }
    }

    pub fn stats(&self) -> ReorderStats {
        self.stats
    }

    /// Packets held: waiting for a predecessor, ready, or on probation.
    pub fn len(&self) -> usize {
        self.held + self.ready.len() + usize::from(self.probation.is_some())
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The SSRC being followed.
    pub fn ssrc(&self) -> Option<u32> {
        self.stream.as_ref().map(|s| s.ssrc)
    }

    fn clock(&mut self, now: Instant) -> Instant {
        let now = match self.last_now {
            Some(last) if now < last => last,
            _ => now,
        };
        self.last_now = Some(now);
        now
    }

    fn cap(&self) -> u64 {
        self.slots.len() as u64
    }

    fn index(&self, ext: u64) -> usize {
        (ext % self.cap()) as usize
    }

    /// Takes one received packet.
    pub fn push(&mut self, packet: RtpPacket, now: Instant) {
        let now = self.clock(now);
        self.stats.received += 1;
        let Some(stream) = self.stream.as_ref() else {
            let ext = EXT_BASE + u64::from(packet.sequence());
            self.stream = Some(Stream {
                ssrc: packet.ssrc(),
                next: ext,
                highest: ext,
            });
            self.start_hold = Some(now);
            self.insert(ext, packet, now);
            return;
        };
        let (ssrc, highest, mut next) = (stream.ssrc, stream.highest, stream.next);
        let delta = i64::from(packet.sequence().wrapping_sub(highest as u16) as i16);
        let jump = packet.ssrc() != ssrc
            || delta >= i64::from(self.cfg.max_dropout)
            || delta < -i64::from(self.cfg.max_misorder);
        if jump {
            self.on_jump(packet, now);
            return;
        }
        if self.probation.take().is_some() {
            self.stats.stray += 1;
        }
        let ext = highest.saturating_add_signed(delta);
        if ext < next && self.start_hold.is_some() && highest - ext < self.cap() {
            // Sent before the first packet received, and nothing is out yet.
            next = ext;
            if let Some(s) = self.stream.as_mut() {
                s.next = ext;
            }
        }
        if ext < next {
            let age = next - 1 - ext;
            if age < 128 && self.history & (1u128 << age) != 0 {
                self.stats.duplicates += 1;
            } else {
                self.stats.late += 1;
            }
            return;
        }
        self.insert(ext, packet, now);
    }

    /// Stores `packet` at `ext` (which is not behind the window), moving the
    /// window forward if `ext` is beyond it.
    fn insert(&mut self, ext: u64, packet: RtpPacket, now: Instant) {
        let Some(stream) = self.stream.as_ref() else {
            return;
        };
        let cap = self.cap();
        if ext >= stream.next + cap {
            self.advance_to(ext + 1 - cap);
        }
        let idx = self.index(ext);
        if self.slots[idx].is_some() {
            self.stats.duplicates += 1;
            return;
        }
        if let Some(stream) = self.stream.as_mut() {
            if ext < stream.highest {
                self.stats.reordered += 1;
            } else {
                stream.highest = ext;
            }
        }
        self.slots[idx] = Some(Slot { ext, packet });
        self.held += 1;
        self.arrivals.push_back((ext, now));
        if self.arrivals.len() > 2 * self.slots.len() + 16 {
            self.prune_arrivals_fully();
        }
    }

    /// Moves `next` forward to `target`: held packets on the way become
    /// ready, empty slots are counted lost.
    fn advance_to(&mut self, target: u64) {
        let Some(mut next) = self.stream.as_ref().map(|s| s.next) else {
            return;
        };
        self.start_hold = None;
        while next < target && self.held > 0 {
            let idx = self.index(next);
            match self.slots[idx].take() {
                Some(slot) => {
                    self.held -= 1;
                    self.make_ready(slot.packet);
                    self.history = self.history << 1 | 1;
                }
                None => {
                    self.stats.lost += 1;
                    self.history <<= 1;
                }
            }
            next += 1;
        }
        if next < target {
            let n = target - next;
            self.stats.lost += n;
            self.history = if n >= 128 { 0 } else { self.history << n };
            next = target;
        }
        if let Some(s) = self.stream.as_mut() {
            s.next = next;
        }
    }

    fn make_ready(&mut self, packet: RtpPacket) {
        if self.ready.len() >= 2 * self.slots.len() {
            self.ready.pop_front();
            self.stats.overflow += 1;
        }
        self.ready.push_back(packet);
    }

    fn on_jump(&mut self, packet: RtpPacket, now: Instant) {
        match self.probation.take() {
            Some((first, first_arrival))
                if first.ssrc() == packet.ssrc()
                    && packet.sequence() == first.sequence().wrapping_add(1) =>
            {
                self.resync(first, first_arrival, packet, now);
            }
            Some(_) => {
                self.stats.stray += 1;
                self.probation = Some((packet, now));
            }
            None => self.probation = Some((packet, now)),
        }
    }

    /// The source restarted: everything held becomes ready, then the stream
    /// restarts at `first`.
    fn resync(
        &mut self,
        first: RtpPacket,
        first_arrival: Instant,
        second: RtpPacket,
        now: Instant,
    ) {
        self.stats.resyncs += 1;
        let Some(stream) = self.stream.as_ref() else {
            return;
        };
        // Deliver what is held, counting only the gaps between held packets.
        let mut next = stream.next;
        while self.held > 0 {
            let idx = self.index(next);
            match self.slots[idx].take() {
                Some(slot) => {
                    self.held -= 1;
                    self.make_ready(slot.packet);
                }
                None => self.stats.lost += 1,
            }
            next += 1;
        }
        self.arrivals.clear();
        self.history = 0;
        self.start_hold = None;
        // Keep extended numbers increasing and congruent to the sequence.
        let ext = next + u64::from(first.sequence().wrapping_sub(next as u16));
        self.stream = Some(Stream {
            ssrc: first.ssrc(),
            next: ext,
            highest: ext,
        });
        self.insert(ext, first, first_arrival);
        self.insert(ext + 1, second, now);
    }

    /// The next packet in sequence order, if one may go now.
    pub fn poll(&mut self, now: Instant) -> Option<RtpPacket> {
        let now = self.clock(now);
        if let Some(p) = self.ready.pop_front() {
            self.stats.delivered += 1;
            return Some(p);
        }
        if self.held == 0 {
            return None;
        }
        if let Some(start) = self.start_hold {
            match start.checked_add(self.cfg.max_delay) {
                Some(deadline) if now >= deadline => self.start_hold = None,
                _ => return None,
            }
        }
        let next = self.stream.as_ref()?.next;
        if self.slots[self.index(next)].is_none() {
            self.prune_arrivals();
            // (Every held packet has an arrival; without one, give up now.)
            if let Some(&(_, oldest)) = self.arrivals.front() {
                match oldest.checked_add(self.cfg.max_delay) {
                    Some(deadline) if now >= deadline => {}
                    _ => return None,
                }
            }
            // Give up on the gap: skip to the lowest held sequence.
            let mut target = next;
            while self.slots[self.index(target)].is_none() {
                target += 1;
            }
            self.advance_to(target);
        }
        let next = self.stream.as_ref()?.next;
        let idx = self.index(next);
        let slot = self.slots[idx].take()?;
        self.held -= 1;
        self.history = self.history << 1 | 1;
        if let Some(s) = self.stream.as_mut() {
            s.next = next + 1;
        }
        self.stats.delivered += 1;
        Some(slot.packet)
    }

    /// When [`poll`](Self::poll) must be called again without a new packet:
    /// now (the latest `now` seen) if a packet is ready, the give-up time of
    /// the current gap, or `None` if nothing is held.
    pub fn poll_timeout(&self) -> Option<Instant> {
        if self.held == 0 && self.ready.is_empty() {
            return None;
        }
        if !self.ready.is_empty() {
            return self.last_now;
        }
        if let Some(start) = self.start_hold {
            return start.checked_add(self.cfg.max_delay);
        }
        let next = self.stream.as_ref()?.next;
        if self.slots[self.index(next)].is_some() {
            return self.last_now;
        }
        self.arrivals
            .iter()
            .find(|&&(ext, _)| self.is_held(ext))
            .and_then(|&(_, at)| at.checked_add(self.cfg.max_delay))
    }

    fn is_held(&self, ext: u64) -> bool {
        matches!(&self.slots[self.index(ext)], Some(s) if s.ext == ext)
    }

    fn prune_arrivals(&mut self) {
        while let Some(&(ext, _)) = self.arrivals.front() {
            if self.is_held(ext) {
                break;
            }
            self.arrivals.pop_front();
        }
    }

    fn prune_arrivals_fully(&mut self) {
        let mut arrivals = std::mem::take(&mut self.arrivals);
        arrivals.retain(|&(ext, _)| self.is_held(ext));
        self.arrivals = arrivals;
    }
}
