//! Sans-IO RTP for media ingest: bytes and time in, packets, statistics and
//! deadlines out. No sockets, no clocks.
//!
//! - [`RtpPacket::parse`]: one packet, zero-copy (RFC 3550 §5.1, §5.3.1).
//! - [`Rfc4571Framer`]: RTP over TCP (RFC 4571 §2), resynchronising after
//!   corrupt lengths instead of dropping the connection.
//! - [`ReorderBuffer`]: UDP reordering and loss statistics (RFC 3550 §A.1).
//! - [`FrameBoundary`]: which packet ends an access unit.
//! - [`Packetizer`] and [`rfc4571_frame`]: the sending side.
//!
//! A UDP shell runs datagram → [`RtpPacket::parse`] → SSRC check →
//! [`ReorderBuffer`] (polled again at [`ReorderBuffer::poll_timeout`]) →
//! [`FrameBoundary`] → PS demuxer. A TCP shell pushes reads of at most
//! [`Rfc4571Framer::free_space`] bytes, drains
//! [`Rfc4571Framer::next_packet`], calls [`Rfc4571Framer::end_of_stream`]
//! when the peer closes, and runs each packet through [`RtpPacket::parse`]
//! → [`FrameBoundary`]; TCP keeps order, so no reorder buffer.
//!
//! Downstream, a sequence number that is not the previous one plus 1, or an
//! [`Rfc4571Error::Resynced`] report, means data was lost (or the source
//! restarted): drop the frame being assembled.

mod boundary;
mod framing;
mod packet;
mod packetizer;
mod reorder;
#[cfg(test)]
mod tests;

use std::time::{Duration, Instant};

use bytes::Bytes;

pub use boundary::{DEFAULT_LEARN_FRAMES, FrameBoundary, PacketBoundary};
pub use framing::{
    ResyncReason, Rfc4571Config, Rfc4571Error, Rfc4571Framer, Rfc4571Stats, rfc4571_frame,
};
pub use packet::{
    FIXED_HEADER_LEN, MAX_CSRC, MAX_PACKET_LEN, RTP_VERSION, RtpError, RtpExtension, RtpHeader,
    RtpPacket,
};
pub use packetizer::{Packetizer, PacketizerConfig};
pub use reorder::{ReorderBuffer, ReorderConfig, ReorderStats};

/// Fuzz entry point: the bytes as one packet; as a sequence of packets
/// through the reorder buffer and frame-boundary tracker; as a frame through
/// the packetizer and back. Never panics unless an invariant breaks.
pub fn fuzz_rtp(data: &[u8]) {
    if let Ok(p) = RtpPacket::parse(Bytes::copy_from_slice(data)) {
        let ext = p.extension().map_or(0, |e| 4 + e.data.len());
        let total =
            FIXED_HEADER_LEN + 4 * p.csrcs().len() + ext + p.payload().len() + p.padding_len();
        assert_eq!(total, data.len(), "RTP parse lost bytes: {p:?}");
    }
    fuzz_reorder(data);
    fuzz_packetizer(data);
}

/// Each 4 input bytes make one packet: sequence step (signed), milliseconds
/// to wait before it (low 6 bits; bit 6 switches SSRC; bit 7 sets the
/// marker), timestamp step, and whether to poll afterwards.
fn fuzz_reorder(data: &[u8]) {
    let Some((&first, rest)) = data.split_first() else {
        return;
    };
    let cfg = ReorderConfig {
        max_packets: 1 + usize::from(first & 0x1f),
        max_delay: Duration::from_millis(u64::from(first >> 5) * 10),
        max_dropout: 3000,
        max_misorder: 100,
    };
    let mut rb = ReorderBuffer::new(cfg);
    let mut fb = FrameBoundary::new(2);
    // The harness's clock; the buffer itself only sees the instants given.
    let start = Instant::now();
    let mut now = start;
    let (mut seq, mut ts, mut ssrc) = (65530u16, 0u32, 1u32);
    let check = |rb: &ReorderBuffer| {
        let s = rb.stats();
        let accounted =
            s.delivered + s.duplicates + s.late + s.stray + s.overflow + rb.len() as u64;
        assert_eq!(s.received, accounted, "reorder accounting: {s:?}");
        assert!(
            rb.len() <= 3 * cfg.max_packets + 1,
            "reorder buffer grew to {}",
            rb.len()
        );
    };
    for rec in rest.chunks_exact(4) {
        seq = seq.wrapping_add(i16::from(rec[0] as i8).wrapping_mul(if rec[0] & 1 == 0 {
            1
        } else {
            97
        }) as u16);
        now += Duration::from_millis(u64::from(rec[1] & 0x3f));
        if rec[1] & 0x40 != 0 {
            ssrc ^= 0x8000_0001;
        }
        ts = ts.wrapping_add(u32::from(rec[2]) * 900);
        let header = RtpHeader {
            marker: rec[1] & 0x80 != 0,
            payload_type: 96,
            sequence: seq,
            timestamp: ts,
            ssrc,
        };
        let Ok(raw) = header.to_packet(&rec[..usize::from(rec[3] & 3)]) else {
            continue;
        };
        let Ok(packet) = RtpPacket::parse(raw) else {
            continue;
        };
        rb.push(packet, now);
        check(&rb);
        if rec[3] & 4 != 0 {
            continue;
        }
        if let Some(t) = rb.poll_timeout() {
            assert!(t >= start, "poll_timeout in the past of the first packet");
        }
        while let Some(p) = rb.poll(now) {
            let _ = fb.on_packet(&p);
        }
        check(&rb);
    }
    // Far in the future everything held comes out.
    let late = now + Duration::from_secs(10);
    while let Some(p) = rb.poll(late) {
        let _ = fb.on_packet(&p);
    }
    check(&rb);
}

fn fuzz_packetizer(data: &[u8]) {
    let max_payload = 1 + usize::from(data.first().copied().unwrap_or(0)) * 5;
    let cfg = PacketizerConfig {
        ssrc: 0x0BEB_C265,
        payload_type: 96,
        initial_sequence: 65534,
        max_payload,
    };
    let Ok(mut p) = Packetizer::new(cfg) else {
        return;
    };
    let mut out = Vec::new();
    p.packetize(data, 3600, &mut out);
    let mut joined = Vec::with_capacity(data.len());
    for (i, raw) in out.iter().enumerate() {
        let Ok(pkt) = RtpPacket::parse(raw.clone()) else {
            panic!("packetizer built an unparsable packet {i}");
        };
        assert!(pkt.payload().len() <= max_payload);
        assert_eq!(pkt.marker(), i + 1 == out.len());
        assert_eq!(pkt.sequence(), 65534u16.wrapping_add(i as u16));
        joined.extend_from_slice(pkt.payload());
    }
    assert_eq!(joined, data, "packetize/parse round trip");
}

/// Fuzz entry point: the bytes as an RFC 4571 stream in chunks; then a clean
/// stream built from them, which must come back whole, and the same stream
/// damaged by the bytes, which must not panic.
pub fn fuzz_rfc4571(data: &[u8]) {
    let chunk = 1 + usize::from(data.first().copied().unwrap_or(0));
    for cfg in [
        Rfc4571Config::default(),
        Rfc4571Config {
            max_packet_len: 2048,
            expected_ssrc: Some(0x0BEB_C265),
            learn_after: 1,
            relearn_after: 100,
            ..Rfc4571Config::default()
        },
    ] {
        let _ = deframe(cfg, data, chunk);
    }

    let Ok(mut p) = Packetizer::new(PacketizerConfig {
        ssrc: 0x0BEB_C265,
        max_payload: 1 + chunk * 3,
        ..PacketizerConfig::default()
    }) else {
        return;
    };
    let mut packets = Vec::new();
    p.packetize(data, 0, &mut packets);
    // Not the same bytes again: a repeat at the right distance is what a
    // resync takes for a packet chain.
    let second: Vec<u8> = data.iter().rev().map(|b| b ^ 0x5a).collect();
    p.packetize(&second, 3600, &mut packets);
    let mut stream = Vec::new();
    for pkt in &packets {
        if let Ok(f) = rfc4571_frame(pkt) {
            stream.extend_from_slice(&f);
        }
    }
    let (clean, stats) = deframe(Rfc4571Config::default(), &stream, chunk);
    assert_eq!(clean, packets, "clean RFC 4571 stream not returned whole");
    assert_eq!(stats.resyncs, 0);
    // Damage: each 3 input bytes overwrite one stream byte.
    if !stream.is_empty() {
        for rec in data.chunks_exact(3) {
            let at = usize::from(u16::from_be_bytes([rec[0], rec[1]])) % stream.len();
            stream[at] = rec[2];
        }
        let _ = deframe(Rfc4571Config::default(), &stream, chunk);
    }
}

fn deframe(cfg: Rfc4571Config, data: &[u8], chunk: usize) -> (Vec<Bytes>, Rfc4571Stats) {
    let mut framer = Rfc4571Framer::new(cfg);
    let mut out = Vec::new();
    for piece in data.chunks(chunk) {
        if let Err(e) = framer.push(piece) {
            panic!("framer refused a push after being drained: {e}");
        }
        while let Some(item) = framer.next_packet() {
            if let Ok(pkt) = item {
                let _ = RtpPacket::parse(pkt.clone());
                out.push(pkt);
            }
        }
        assert!(framer.buffered() <= 2 * (2 + 65535) + 16 + chunk);
    }
    framer.end_of_stream();
    while let Some(item) = framer.next_packet() {
        if let Ok(pkt) = item {
            out.push(pkt);
        }
    }
    let s = framer.stats();
    assert_eq!(s.bytes, data.len() as u64);
    (out, s)
}
