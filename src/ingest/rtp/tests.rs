use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use bytes::Bytes;
use proptest::prelude::*;

use super::*;

const HIK_SSRC: u32 = 0x0BEB_C265;

// --- helpers -------------------------------------------------------------------------

fn packet(seq: u16, ts: u32, marker: bool) -> RtpPacket {
    packet_ssrc(HIK_SSRC, seq, ts, marker)
}

fn packet_ssrc(ssrc: u32, seq: u16, ts: u32, marker: bool) -> RtpPacket {
    let raw = RtpHeader {
        marker,
        payload_type: 96,
        sequence: seq,
        timestamp: ts,
        ssrc,
    }
    .to_packet(&seq.to_be_bytes())
    .unwrap();
    RtpPacket::parse(raw).unwrap()
}

fn drain(rb: &mut ReorderBuffer, now: Instant) -> Vec<u16> {
    std::iter::from_fn(|| rb.poll(now))
        .map(|p| p.sequence())
        .collect()
}

/// Every item of a framer over `stream` pushed in `chunks` (sizes, cycled).
fn deframe_items(
    cfg: Rfc4571Config,
    stream: &[u8],
    chunks: &[usize],
) -> (Vec<Result<Bytes, Rfc4571Error>>, Rfc4571Stats) {
    let mut framer = Rfc4571Framer::new(cfg);
    let mut out = Vec::new();
    let mut rest = stream;
    let mut sizes = chunks.iter().copied().cycle();
    while !rest.is_empty() {
        let n = sizes.next().unwrap_or(rest.len()).clamp(1, rest.len());
        let (piece, tail) = rest.split_at(n);
        rest = tail;
        framer.push(piece).unwrap();
        out.extend(std::iter::from_fn(|| framer.next_packet()));
    }
    framer.end_of_stream();
    out.extend(std::iter::from_fn(|| framer.next_packet()));
    (out, framer.stats())
}

fn deframe_ok(stream: &[u8], chunks: &[usize]) -> (Vec<Bytes>, Rfc4571Stats) {
    let (items, stats) = deframe_items(Rfc4571Config::default(), stream, chunks);
    (items.into_iter().filter_map(Result::ok).collect(), stats)
}

// --- packet parsing ------------------------------------------------------------------

#[test]
fn parses_csrc_extension_and_padding() {
    let mut b = vec![
        0xb2, 0xe0, 0x12, 0x34, 0, 0, 0x0e, 0x10, 0x0b, 0xeb, 0xc2, 0x65,
    ];
    b.extend_from_slice(&[0, 0, 0, 1, 0, 0, 0, 2]); // two CSRCs
    b.extend_from_slice(&[0xbe, 0xde, 0, 1, 0x10, 0xaa, 0, 0]); // one-word extension
    b.extend_from_slice(b"payload");
    b.extend_from_slice(&[0, 0, 3]); // padding, count 3
    let p = RtpPacket::parse(Bytes::from(b.clone())).unwrap();
    assert!(p.marker());
    assert_eq!(p.payload_type(), 96);
    assert_eq!(p.sequence(), 0x1234);
    assert_eq!(p.timestamp(), 3600);
    assert_eq!(p.ssrc(), HIK_SSRC);
    assert_eq!(p.csrcs().collect::<Vec<_>>(), [1, 2]);
    let ext = p.extension().unwrap();
    assert_eq!(ext.profile, 0xbede);
    assert_eq!(&ext.data[..], &[0x10, 0xaa, 0, 0]);
    assert_eq!(p.padding_len(), 3);
    assert_eq!(&p.payload()[..], b"payload");
    assert_eq!(p.raw().len(), b.len());
    // Zero-copy: the payload points into the input.
    let raw = Bytes::from(b);
    let p = RtpPacket::parse(raw.clone()).unwrap();
    assert_eq!(p.payload().as_ptr(), raw[28..].as_ptr());
}

#[test]
fn rejects_malformed_packets_with_context() {
    let hdr = |b0: u8| vec![b0, 0x60, 0, 1, 0, 0, 0, 0, 0, 0, 0, 1];
    let parse = |v: Vec<u8>| RtpPacket::parse(Bytes::from(v)).unwrap_err();
    assert_eq!(parse(vec![0x80; 11]), RtpError::TooShort { len: 11 });
    assert_eq!(parse(hdr(0x40)), RtpError::Version { version: 1 });
    assert_eq!(
        parse(hdr(0x82)),
        RtpError::CsrcOverrun {
            count: 2,
            end: 20,
            len: 12
        }
    );
    assert_eq!(
        parse(hdr(0x90)),
        RtpError::ExtensionOverrun {
            offset: 12,
            declared: 0,
            end: 16,
            available: 12
        }
    );
    let mut v = hdr(0x90);
    v.extend_from_slice(&[0, 0, 0, 2, 1, 2, 3, 4]);
    let e = parse(v);
    assert_eq!(
        e,
        RtpError::ExtensionOverrun {
            offset: 12,
            declared: 8,
            end: 24,
            available: 20
        }
    );
    assert!(e.to_string().contains("RFC 3550 §5.3.1"), "{e}");
    let mut v = hdr(0xa0);
    v.extend_from_slice(&[1, 2, 0]);
    assert_eq!(
        parse(v),
        RtpError::Padding {
            count: 0,
            offset: 14,
            available: 3
        }
    );
    let mut v = hdr(0xa0);
    v.extend_from_slice(&[1, 2, 4]);
    assert!(matches!(parse(v), RtpError::Padding { count: 4, .. }));
    // Padding that eats the extension.
    let mut v = hdr(0xb0);
    v.extend_from_slice(&[0, 0, 0, 1, 0, 0, 0, 4]);
    assert!(matches!(parse(v), RtpError::ExtensionOverrun { .. }));
    // Padding taking the whole payload is fine.
    let mut v = hdr(0xa0);
    v.extend_from_slice(&[9, 9, 3]);
    let p = RtpPacket::parse(Bytes::from(v)).unwrap();
    assert!(p.payload().is_empty());
}

// --- real fixtures -------------------------------------------------------------------

/// `CAMGATE_REAL_FIXTURES`, else `/work/shared/fixtures` or
/// `../shared/fixtures` beside the repository. `None` (skip) only when the
/// variable is unset and neither directory exists.
fn fixtures_root() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("CAMGATE_REAL_FIXTURES") {
        let p = PathBuf::from(p);
        assert!(
            p.is_dir(),
            "CAMGATE_REAL_FIXTURES={} is not a directory",
            p.display()
        );
        return Some(p);
    }
    let candidates = [
        PathBuf::from("/work/shared/fixtures"),
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/fixtures"),
    ];
    let found = candidates.into_iter().find(|p| p.is_dir());
    if found.is_none() {
        eprintln!("skipping: no shared fixtures and CAMGATE_REAL_FIXTURES unset");
    }
    found
}

fn fixture(name: &str) -> Option<Vec<u8>> {
    let p = fixtures_root()?
        .join("hikvision-rtp-ps-fragments")
        .join(name);
    Some(std::fs::read(&p).unwrap_or_else(|e| {
        panic!(
            "real fixture {} missing or unreadable ({e}); set CAMGATE_REAL_FIXTURES to the shared fixtures directory",
            p.display()
        )
    }))
}

fn hex_packets() -> Option<Vec<Bytes>> {
    let text = String::from_utf8(fixture("lal_hik_rtp_packets.hex")?).unwrap();
    let packets = text
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let l = l.trim().as_bytes();
            assert_eq!(l.len() % 2, 0);
            l.chunks(2)
                .map(|h| u8::from_str_radix(std::str::from_utf8(h).unwrap(), 16).unwrap())
                .collect::<Vec<u8>>()
                .into()
        })
        .collect();
    Some(packets)
}

/// A UDP datagram from a capture.
struct Datagram {
    time: Duration,
    src_port: u16,
    dst_port: u16,
    payload: Bytes,
}

/// UDP payloads of a classic pcap (not pcapng) with Ethernet link type,
/// IPv4, optionally one VLAN tag. Anything else in the file is a test
/// failure, not a skip.
fn pcap_udp(file: &[u8]) -> Vec<Datagram> {
    assert!(file.len() >= 24, "pcap shorter than its global header");
    let (le, nanos) = match u32::from_le_bytes(file[0..4].try_into().unwrap()) {
        0xa1b2_c3d4 => (true, false),
        0xd4c3_b2a1 => (false, false),
        0xa1b2_3c4d => (true, true),
        0x4d3c_b2a1 => (false, true),
        m => panic!("not a classic pcap (magic {m:#010x})"),
    };
    let u32_at = |b: &[u8], at: usize| {
        let a: [u8; 4] = b[at..at + 4].try_into().unwrap();
        if le {
            u32::from_le_bytes(a)
        } else {
            u32::from_be_bytes(a)
        }
    };
    let be16 = |b: &[u8], at: usize| u16::from_be_bytes([b[at], b[at + 1]]);
    assert_eq!(u32_at(file, 20), 1, "pcap link type is not Ethernet");
    let mut out = Vec::new();
    let mut at = 24;
    while at < file.len() {
        assert!(
            file.len() >= at + 16,
            "truncated pcap record header at {at}"
        );
        let secs = u32_at(file, at);
        let frac = u32_at(file, at + 4);
        let incl = u32_at(file, at + 8) as usize;
        let frame = &file[at + 16..at + 16 + incl];
        at += 16 + incl;
        let time = Duration::from_secs(secs.into())
            + if nanos {
                Duration::from_nanos(frac.into())
            } else {
                Duration::from_micros(frac.into())
            };
        let mut l3 = 14;
        let mut ethertype = be16(frame, 12);
        if ethertype == 0x8100 {
            ethertype = be16(frame, 16);
            l3 = 18;
        }
        if ethertype != 0x0800 {
            continue;
        }
        let ip = &frame[l3..];
        assert_eq!(ip[0] >> 4, 4, "IPv4");
        let ihl = usize::from(ip[0] & 0x0f) * 4;
        let total = usize::from(be16(ip, 2));
        assert_eq!(be16(ip, 6) & 0x3fff, 0, "fragmented IPv4 in the capture");
        if ip[9] != 17 {
            continue;
        }
        let udp = &ip[ihl..total];
        let udp_len = usize::from(be16(udp, 4));
        assert_eq!(udp_len, udp.len(), "UDP length disagrees with IPv4 length");
        out.push(Datagram {
            time,
            src_port: be16(udp, 0),
            dst_port: be16(udp, 2),
            payload: Bytes::copy_from_slice(&udp[8..udp_len]),
        });
    }
    out
}

#[test]
fn fixture_hex_packets_parse() {
    let Some(raw) = hex_packets() else { return };
    let packets: Vec<RtpPacket> = raw
        .iter()
        .map(|b| RtpPacket::parse(b.clone()).unwrap())
        .collect();
    assert_eq!(packets.len(), 10);
    let seqs: Vec<u16> = packets.iter().map(|p| p.sequence()).collect();
    assert_eq!(seqs, [0, 1, 2, 3, 4, 5, 6, 7, 8, 291]);
    for p in &packets {
        assert_eq!(p.ssrc(), HIK_SSRC, "SSRC is y=0200000101");
        assert_eq!(p.payload_type(), 96);
        assert_eq!(p.csrcs().len(), 0);
        assert!(p.extension().is_none());
        assert_eq!(p.padding_len(), 0);
        assert_eq!(p.marker(), matches!(p.sequence(), 3 | 8), "{p:?}");
        let ts = match p.sequence() {
            0..=3 => 3600,
            4..=8 => 7200,
            _ => 208_800,
        };
        assert_eq!(p.timestamp(), ts);
        let len = match p.sequence() {
            3 => 180,
            8 => 320,
            _ => 1400,
        };
        assert_eq!(p.payload().len(), len, "{p:?}");
    }
    // The payloads are the PS stream, byte for byte.
    let joined: Vec<u8> = packets[..9]
        .iter()
        .flat_map(|p| p.payload().iter().copied())
        .collect();
    let Some(ps) = fixture("lal_hik_seq0-8.ps") else {
        return;
    };
    assert_eq!(joined, ps);
    let Some(iframe) = fixture("lal_hik_seq291_iframe_start.ps") else {
        return;
    };
    assert_eq!(&packets[9].payload()[..], &iframe[..]);
    // Each frame's first packet starts a PS pack.
    for i in [0, 4, 9] {
        assert!(packets[i].payload().starts_with(&[0, 0, 1, 0xba]));
    }
}

#[test]
fn fixture_pcap_is_the_same_packets() {
    let (Some(hex), Some(pcap)) = (hex_packets(), fixture("lal_hik_rtp_udp.pcap")) else {
        return;
    };
    let grams = pcap_udp(&pcap);
    assert_eq!(grams.len(), 10);
    for (g, h) in grams.iter().zip(&hex) {
        assert_eq!((g.src_port, g.dst_port), (40000, 30000));
        assert_eq!(&g.payload, h);
    }
    let times: Vec<Duration> = grams.iter().map(|g| g.time).collect();
    assert!(times.windows(2).all(|w| w[0] <= w[1]), "{times:?}");
}

#[test]
fn fixture_srs_first_packet_header() {
    let Some(b) = fixture("srs_utest_hik_rtp0_first256.bin") else {
        return;
    };
    // Only the first 256 bytes of a longer packet: the header still parses.
    let p = RtpPacket::parse(Bytes::from(b)).unwrap();
    assert_eq!(
        (p.sequence(), p.timestamp(), p.ssrc(), p.payload_type()),
        (0, 0, 0x0BEB_DFA1, 96)
    );
    assert!(!p.marker());
    assert!(p.payload().starts_with(&[0, 0, 1, 0xba]));
    assert_eq!(p.payload().len(), 244);
}

#[test]
fn fixture_rfc4571_stream_is_the_same_packets() {
    let (Some(hex), Some(stream)) = (hex_packets(), fixture("lal_hik_rtp.rfc4571")) else {
        return;
    };
    let (packets, stats) = deframe_ok(&stream, &[]);
    assert_eq!(packets, hex);
    assert_eq!(
        stats,
        Rfc4571Stats {
            bytes: stream.len() as u64,
            packets: 10,
            ..Rfc4571Stats::default()
        }
    );
    // Same through a framer that knows the SSRC from the SDP answer.
    let (items, _) = deframe_items(
        Rfc4571Config {
            expected_ssrc: Some(HIK_SSRC),
            max_packet_len: 10 * 1024,
            ..Rfc4571Config::default()
        },
        &stream,
        &[1, 2, 3, 1500],
    );
    assert_eq!(items, hex.iter().cloned().map(Ok).collect::<Vec<_>>());
}

#[test]
fn fixture_rfc4571_to_packetizer_round_trip() {
    let (Some(hex), Some(stream)) = (hex_packets(), fixture("lal_hik_rtp.rfc4571")) else {
        return;
    };
    let parsed: Vec<RtpPacket> = hex
        .iter()
        .map(|b| RtpPacket::parse(b.clone()).unwrap())
        .collect();
    let frame = |r: std::ops::Range<usize>| -> Vec<u8> {
        parsed[r]
            .iter()
            .flat_map(|p| p.payload().iter().copied())
            .collect()
    };
    let mut p = Packetizer::new(PacketizerConfig {
        ssrc: HIK_SSRC,
        payload_type: 96,
        initial_sequence: 0,
        max_payload: 1400,
    })
    .unwrap();
    let mut out = Vec::new();
    p.packetize(&frame(0..4), 3600, &mut out);
    p.packetize(&frame(4..9), 7200, &mut out);
    // The camera's own packets, byte for byte.
    assert_eq!(out, hex[..9]);
    assert_eq!(p.next_sequence(), 9);
    let mut p = Packetizer::new(PacketizerConfig {
        ssrc: HIK_SSRC,
        initial_sequence: 0,
        ..PacketizerConfig::default()
    })
    .unwrap();
    let mut framed = Vec::new();
    p.packetize_rfc4571(&frame(0..4), 3600, &mut framed);
    p.packetize_rfc4571(&frame(4..9), 7200, &mut framed);
    let framed: Vec<u8> = framed.concat();
    assert_eq!(framed, stream[..framed.len()]);
    let one = rfc4571_frame(&hex[9]).unwrap();
    assert_eq!(&one[..], &stream[framed.len()..]);
}

#[test]
fn fixture_udp_through_reorder_buffer() {
    let Some(pcap) = fixture("lal_hik_rtp_udp.pcap") else {
        return;
    };
    let grams = pcap_udp(&pcap);
    let t0 = Instant::now();
    let mut rb = ReorderBuffer::new(ReorderConfig::default());
    let mut fb = FrameBoundary::new(1);
    let mut out = Vec::new();
    // Swap a few neighbours: UDP may do that.
    let order = [1, 0, 2, 3, 5, 4, 6, 8, 7, 9];
    for (i, &k) in order.iter().enumerate() {
        let g = &grams[k];
        let now = t0 + g.time + Duration::from_millis(i as u64);
        rb.push(RtpPacket::parse(g.payload.clone()).unwrap(), now);
        while let Some(p) = rb.poll(now) {
            out.push((p.sequence(), fb.on_packet(&p)));
        }
    }
    // The first packet waits for earlier ones, 291 for 9..=290: the shell's
    // timer does the rest.
    while let Some(deadline) = rb.poll_timeout() {
        while let Some(p) = rb.poll(deadline) {
            out.push((p.sequence(), fb.on_packet(&p)));
        }
    }
    let seqs: Vec<u16> = out.iter().map(|o| o.0).collect();
    assert_eq!(seqs, [0, 1, 2, 3, 4, 5, 6, 7, 8, 291]);
    let s = rb.stats();
    assert_eq!(
        (s.received, s.delivered, s.lost, s.reordered, s.resyncs),
        (10, 10, 282, 3, 0)
    );
    // Frame ends: seq 3 ends frame 1 by timestamp change (the marker is not
    // trusted yet), seq 8 by its trusted marker.
    let ends: Vec<(u16, PacketBoundary)> = out
        .into_iter()
        .filter(|o| o.1 != PacketBoundary::default())
        .collect();
    assert_eq!(
        ends,
        [
            (
                4,
                PacketBoundary {
                    previous_frame_ended: true,
                    ends_frame: false
                }
            ),
            (
                8,
                PacketBoundary {
                    previous_frame_ended: false,
                    ends_frame: true
                }
            ),
        ]
    );
}

// --- RFC 4571 resynchronisation ------------------------------------------------------

/// The fixture stream and the offsets of its frames.
fn stream_and_offsets() -> Option<(Vec<u8>, Vec<usize>, Vec<Bytes>)> {
    let stream = fixture("lal_hik_rtp.rfc4571")?;
    let hex = hex_packets()?;
    let mut offsets = Vec::new();
    let mut at = 0;
    while at < stream.len() {
        offsets.push(at);
        at += 2 + usize::from(u16::from_be_bytes([stream[at], stream[at + 1]]));
    }
    assert_eq!(offsets.len(), 10);
    Some((stream, offsets, hex))
}

/// Checks the framer's output on a damaged stream: every undamaged packet
/// in order, and at most `damaged` other packets (a packet with a shortened
/// length may come out truncated when its successor was not buffered yet).
fn assert_recovers(
    case: &str,
    stream: &[u8],
    expected: &[Bytes],
    damaged: usize,
    reason: impl Fn(&ResyncReason) -> bool,
    skipped: u64,
) {
    let chunkings: [&[usize]; 5] = [&[], &[1], &[7, 1500, 3], &[1414], &[2, 600, 1412, 5000]];
    for chunks in chunkings {
        let (items, stats) = deframe_items(Rfc4571Config::default(), stream, chunks);
        let chunks = (case, chunks, &stats);
        let mut good = Vec::new();
        let mut other = 0;
        let mut resyncs = Vec::new();
        for item in items {
            match item {
                Ok(p) if expected.contains(&p) => good.push(p),
                Ok(_) => other += 1,
                Err(Rfc4571Error::Resynced {
                    skipped, reason, ..
                }) => resyncs.push((skipped, reason)),
                Err(e) => panic!("{e}"),
            }
        }
        let seqs = |v: &[Bytes]| -> Vec<u16> {
            v.iter().map(|b| u16::from_be_bytes([b[2], b[3]])).collect()
        };
        assert_eq!(
            seqs(&good),
            seqs(expected),
            "chunks {chunks:?}: {resyncs:?}"
        );
        assert!(good == expected);
        assert!(
            other <= damaged,
            "chunks {chunks:?}: {other} damaged packets"
        );
        assert_eq!(resyncs.len(), 1, "chunks {chunks:?}: {resyncs:?}");
        assert_eq!(chunks.2.resyncs, 1);
        if other == 0 {
            assert_eq!(resyncs[0].0, skipped, "chunks {chunks:?}: {resyncs:?}");
            assert!(reason(&resyncs[0].1), "chunks {chunks:?}: {resyncs:?}");
        }
        assert_eq!(chunks.2.skipped_bytes, resyncs[0].0);
    }
}

#[test]
fn rfc4571_corrupt_length_loses_only_the_damaged_packet() {
    let Some((stream, offsets, hex)) = stream_and_offsets() else {
        return;
    };
    for k in [0, 1, 5, 7] {
        let without_k: Vec<Bytes> = hex
            .iter()
            .enumerate()
            .filter(|&(i, _)| i != k)
            .map(|(_, p)| p.clone())
            .collect();
        let whole = 2 + hex[k].len() as u64;
        let set_len = |len: u16| {
            let mut s = stream.clone();
            s[offsets[k]..offsets[k] + 2].copy_from_slice(&len.to_be_bytes());
            s
        };
        // Shorter: comes out truncated, then the rest of it is skipped.
        assert_recovers(
            &format!("k={k} line {}", line!()),
            &set_len(1000),
            &without_k,
            1,
            |_| true,
            whole,
        );
        // Longer: it would swallow its successors.
        assert_recovers(
            &format!("k={k} line {}", line!()),
            &set_len(3000),
            &without_k,
            0,
            |r| *r == ResyncReason::Length { len: 3000 },
            whole,
        );
        assert_recovers(
            &format!("k={k} line {}", line!()),
            &set_len(0),
            &without_k,
            0,
            |r| *r == ResyncReason::ShortLength { len: 0 },
            whole,
        );
        assert_recovers(
            &format!("k={k} line {}", line!()),
            &set_len(0xffff),
            &without_k,
            0,
            |r| *r == ResyncReason::Length { len: 0xffff },
            whole,
        );
        // Header damaged: version bits.
        let mut s = stream.clone();
        s[offsets[k] + 2] = 0x40;
        assert_recovers(
            &format!("k={k} line {}", line!()),
            &s,
            &without_k,
            0,
            |r| *r == ResyncReason::Version { version: 1 },
            whole,
        );
    }
}

#[test]
fn rfc4571_rejects_foreign_ssrc_and_payload_type_once_learned() {
    let Some((stream, offsets, hex)) = stream_and_offsets() else {
        return;
    };
    let k = 5;
    let without_k: Vec<Bytes> = hex
        .iter()
        .enumerate()
        .filter(|&(i, _)| i != k)
        .map(|(_, p)| p.clone())
        .collect();
    let whole = 2 + hex[k].len() as u64;
    let mut s = stream.clone();
    s[offsets[k] + 2 + 11] ^= 0x01;
    assert_recovers(
        &format!("k={k} line {}", line!()),
        &s,
        &without_k,
        0,
        |r| {
            *r == ResyncReason::Ssrc {
                expected: HIK_SSRC,
                found: HIK_SSRC ^ 1,
            }
        },
        whole,
    );
    let mut s = stream.clone();
    s[offsets[k] + 3] = 8;
    assert_recovers(
        &format!("k={k} line {}", line!()),
        &s,
        &without_k,
        0,
        |r| {
            *r == ResyncReason::PayloadType {
                expected: 96,
                found: 8,
            }
        },
        whole,
    );
}

#[test]
fn rfc4571_skips_inserted_garbage_and_raw_ps() {
    let Some((stream, offsets, hex)) = stream_and_offsets() else {
        return;
    };
    let Some(ps) = fixture("lal_hik_seq0-8.ps") else {
        return;
    };
    for k in [0, 4, 9] {
        let insert = |junk: &[u8]| {
            let mut s = stream[..offsets[k]].to_vec();
            s.extend_from_slice(junk);
            s.extend_from_slice(&stream[offsets[k]..]);
            s
        };
        assert_recovers(
            &format!("k={k} line {}", line!()),
            &insert(&[0xff; 37]),
            &hex,
            0,
            |r| matches!(r, ResyncReason::Version { version: 3 }),
            37,
        );
        // A raw PS pack (pack header, PES) pushed without RTP framing.
        assert_recovers(
            &format!("k={k} line {}", line!()),
            &insert(&ps[..300]),
            &hex,
            0,
            |r| *r == ResyncReason::RawPsPack,
            300,
        );
        // Only the header of an RTP packet: a truncated write.
        assert_recovers(
            &format!("k={k} line {}", line!()),
            &insert(&stream[offsets[1]..offsets[1] + 14]),
            &hex,
            0,
            |r| *r == ResyncReason::Length { len: 1412 },
            14,
        );
    }
}

#[test]
fn rfc4571_relearns_after_a_long_resync() {
    // The device restarted on the same connection with a new SSRC.
    let mut p1 = Packetizer::new(PacketizerConfig {
        ssrc: 1,
        max_payload: 500,
        ..PacketizerConfig::default()
    })
    .unwrap();
    let mut p2 = Packetizer::new(PacketizerConfig {
        ssrc: 2,
        max_payload: 500,
        ..PacketizerConfig::default()
    })
    .unwrap();
    let frame = vec![0x5a; 5000];
    let mut stream = Vec::new();
    for ts in 0..4 {
        p1.packetize_rfc4571(&frame, ts, &mut stream);
    }
    let old = stream.len();
    for ts in 0..40 {
        p2.packetize_rfc4571(&frame, ts, &mut stream);
    }
    let stream = stream.concat();
    let cfg = Rfc4571Config {
        relearn_after: 8 * 1024,
        ..Rfc4571Config::default()
    };
    let (items, stats) = deframe_items(cfg, &stream, &[4096]);
    let ok: Vec<RtpPacket> = items
        .iter()
        .filter_map(|i| i.clone().ok())
        .map(|b| RtpPacket::parse(b).unwrap())
        .collect();
    assert_eq!(ok.iter().filter(|p| p.ssrc() == 1).count(), old);
    let new = ok.iter().filter(|p| p.ssrc() == 2).count();
    assert!(new > 400 - 30, "{new} new packets, {stats:?}");
    assert_eq!(stats.relearns, 1);
    assert_eq!(stats.resyncs, 1);
}

#[test]
fn rfc4571_drops_rtcp_and_bounds_its_buffer() {
    let rtp = packet(7, 0, true);
    let rtcp_rr = [
        0x81u8, 201, 0, 7, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
        0, 0, 0, 0,
    ];
    let mut s = rfc4571_frame(rtp.raw()).unwrap().to_vec();
    s.extend_from_slice(&rfc4571_frame(&rtcp_rr).unwrap());
    s.extend_from_slice(&rfc4571_frame(rtp.raw()).unwrap());
    let (ok, stats) = deframe_ok(&s, &[]);
    assert_eq!(ok, [rtp.raw().clone(), rtp.raw().clone()]);
    assert_eq!((stats.rtcp, stats.resyncs), (1, 0));

    let mut f = Rfc4571Framer::new(Rfc4571Config {
        max_packet_len: 1500,
        buffer_capacity: 0,
        ..Rfc4571Config::default()
    });
    let room = f.free_space();
    assert!(room >= 4096);
    let e = f.push(&vec![0u8; room + 1]).unwrap_err();
    assert!(
        matches!(e, Rfc4571Error::BufferFull { buffered: 0, .. }),
        "{e}"
    );
    // Garbage never accumulates: after draining, little is kept.
    for _ in 0..100 {
        f.push(&[0x80; 4000]).unwrap();
        while f.next_packet().is_some() {}
        assert!(f.buffered() <= 2 + 1500 + 14, "{}", f.buffered());
    }
    // Still scanning: nothing found, everything but the tail skipped.
    let s = f.stats();
    assert_eq!(s.resyncs, 0);
    assert_eq!(s.skipped_bytes + f.buffered() as u64, 400_000);
}

#[test]
fn rfc4571_frame_refuses_oversized_packets() {
    assert_eq!(
        rfc4571_frame(&vec![0; 65536]).unwrap_err(),
        RtpError::TooLong {
            len: 65536,
            max: 65535
        }
    );
    assert_eq!(&rfc4571_frame(&[1, 2, 3]).unwrap()[..], &[0, 3, 1, 2, 3]);
}

// --- reorder buffer ------------------------------------------------------------------

#[test]
fn reorder_in_order_passes_straight_through() {
    let t0 = Instant::now();
    let mut rb = ReorderBuffer::new(ReorderConfig::default());
    assert_eq!(rb.poll_timeout(), None);
    // The first packet waits for anything sent before it.
    rb.push(packet(10, 0, false), t0);
    let t = t0 + Duration::from_millis(50);
    assert_eq!(rb.poll_timeout(), Some(t));
    assert!(drain(&mut rb, t0).is_empty());
    assert_eq!(drain(&mut rb, t), [10]);
    for seq in 11..20 {
        rb.push(packet(seq, 0, false), t);
        assert_eq!(rb.poll_timeout(), Some(t));
        assert_eq!(drain(&mut rb, t), [seq]);
        assert_eq!(rb.poll_timeout(), None);
    }
    assert!(rb.is_empty());
    let s = rb.stats();
    assert_eq!(
        (s.received, s.delivered, s.lost, s.reordered),
        (10, 10, 0, 0)
    );
}

#[test]
fn reorder_restores_order_across_wrap_around() {
    let t = Instant::now();
    let mut rb = ReorderBuffer::new(ReorderConfig::default());
    // 65529 was sent first but arrives second.
    let arrival = [
        65530u16, 65529, 65532, 65531, 65533, 0, 65535, 65534, 2, 1, 3, 4,
    ];
    let mut out = Vec::new();
    for s in arrival {
        rb.push(packet(s, 0, false), t);
        out.extend(drain(&mut rb, t));
    }
    out.extend(drain(&mut rb, t + Duration::from_millis(50)));
    assert_eq!(
        out,
        [
            65529, 65530, 65531, 65532, 65533, 65534, 65535, 0, 1, 2, 3, 4
        ]
    );
    let s = rb.stats();
    assert_eq!((s.lost, s.reordered, s.late, s.duplicates), (0, 5, 0, 0));
}

/// A buffer whose start hold is over, having delivered `first`.
fn started(cfg: ReorderConfig, first: u16, t: Instant) -> (ReorderBuffer, Instant) {
    let mut rb = ReorderBuffer::new(cfg);
    rb.push(packet(first, 0, false), t);
    let t = rb.poll_timeout().unwrap();
    assert_eq!(drain(&mut rb, t), [first]);
    (rb, t)
}

#[test]
fn reorder_counts_a_loss_after_the_delay_then_a_late_packet() {
    let ms = Duration::from_millis;
    let (mut rb, t) = started(ReorderConfig::default(), 1, Instant::now());
    rb.push(packet(2, 0, false), t);
    rb.push(packet(4, 0, false), t + ms(10));
    rb.push(packet(5, 0, false), t + ms(20));
    assert_eq!(drain(&mut rb, t + ms(20)), [2]);
    assert_eq!(rb.poll_timeout(), Some(t + ms(60)));
    assert_eq!(drain(&mut rb, t + ms(59)), Vec::<u16>::new());
    assert_eq!(drain(&mut rb, t + ms(60)), [4, 5]);
    assert_eq!(rb.stats().lost, 1);
    rb.push(packet(3, 0, false), t + ms(70));
    assert_eq!(drain(&mut rb, t + ms(70)), Vec::<u16>::new());
    let s = rb.stats();
    assert_eq!((s.lost, s.late, s.duplicates, s.delivered), (1, 1, 0, 4));
    // Time going backwards is taken as no time passing.
    rb.push(packet(7, 0, false), t);
    assert_eq!(rb.poll_timeout(), Some(t + ms(120)));
}

#[test]
fn reorder_drops_duplicates() {
    let (mut rb, t) = started(ReorderConfig::default(), 1, Instant::now());
    rb.push(packet(3, 0, false), t);
    rb.push(packet(3, 0, false), t); // held twice
    assert!(drain(&mut rb, t).is_empty());
    rb.push(packet(1, 0, false), t); // delivered already
    rb.push(packet(2, 0, false), t);
    assert_eq!(drain(&mut rb, t), [2, 3]);
    rb.push(packet(2, 0, false), t);
    let s = rb.stats();
    assert_eq!((s.duplicates, s.late, s.lost, s.received), (3, 0, 0, 6));
}

#[test]
fn reorder_skips_a_gap_when_the_window_is_full() {
    let cfg = ReorderConfig {
        max_packets: 4,
        max_delay: Duration::from_secs(3600),
        ..ReorderConfig::default()
    };
    let (mut rb, t) = started(cfg, 1, Instant::now());
    for s in 3..=5 {
        rb.push(packet(s, 0, false), t);
        assert!(drain(&mut rb, t).is_empty());
    }
    rb.push(packet(6, 0, false), t); // window 2..=5 is full: 2 is given up
    assert_eq!(drain(&mut rb, t), [3, 4, 5, 6]);
    assert_eq!(rb.stats().lost, 1);
    assert!(rb.len() <= 4);
}

#[test]
fn reorder_resyncs_on_a_restart_instead_of_counting_losses() {
    let (mut rb, t) = started(ReorderConfig::default(), 100, Instant::now());
    for s in 101..=110 {
        rb.push(packet(s, 0, false), t);
    }
    rb.push(packet(40000, 0, false), t);
    assert_eq!(drain(&mut rb, t).len(), 10);
    rb.push(packet(40001, 0, false), t);
    rb.push(packet(40002, 0, false), t);
    assert_eq!(drain(&mut rb, t), [40000, 40001, 40002]);
    let s = rb.stats();
    assert_eq!((s.resyncs, s.lost, s.stray), (1, 0, 0));

    // One stray packet from elsewhere is dropped, the stream goes on.
    rb.push(packet(7, 0, false), t);
    rb.push(packet(40003, 0, false), t);
    assert_eq!(drain(&mut rb, t), [40003]);
    // A packet far behind is a jump too.
    rb.push(packet(39000, 0, false), t);
    rb.push(packet(40004, 0, false), t);
    assert_eq!(drain(&mut rb, t), [40004]);
    let s = rb.stats();
    assert_eq!((s.resyncs, s.lost, s.stray), (1, 0, 2));

    // A new SSRC, confirmed by its second packet, with held packets
    // flushed first.
    rb.push(packet(40006, 0, false), t);
    rb.push(packet_ssrc(9, 40006, 0, false), t);
    rb.push(packet_ssrc(9, 40007, 0, false), t);
    let out: Vec<(u32, u16)> = std::iter::from_fn(|| rb.poll(t))
        .map(|p| (p.ssrc(), p.sequence()))
        .collect();
    assert_eq!(out, [(HIK_SSRC, 40006), (9, 40006), (9, 40007)]);
    assert_eq!(rb.ssrc(), Some(9));
    let s = rb.stats();
    assert_eq!((s.resyncs, s.lost, s.stray), (2, 1, 2));
}

#[test]
fn reorder_counts_a_jump_within_dropout_as_loss() {
    let t = Instant::now();
    let mut rb = ReorderBuffer::new(ReorderConfig::default());
    rb.push(packet(8, 0, false), t);
    rb.push(packet(291, 0, false), t);
    assert_eq!(drain(&mut rb, t), [8]);
    assert_eq!(drain(&mut rb, t + Duration::from_millis(50)), [291]);
    assert_eq!(rb.stats().lost, 282);
}

// --- frame boundaries ----------------------------------------------------------------

fn boundaries(fb: &mut FrameBoundary, packets: &[(u16, u32, bool)]) -> Vec<(bool, bool)> {
    packets
        .iter()
        .map(|&(s, ts, m)| {
            let b = fb.observe(s, ts, m);
            (b.previous_frame_ended, b.ends_frame)
        })
        .collect()
}

/// `frames` frames of 3 packets; `mark(i)` says whether packet i is marked.
fn frames(frames: u32, mark: impl Fn(u16) -> bool) -> Vec<(u16, u32, bool)> {
    (0..frames * 3)
        .map(|i| {
            let s = i as u16;
            (s, 3600 * (i / 3), mark(s))
        })
        .collect()
}

#[test]
fn frame_boundary_learns_a_reliable_marker() {
    let mut fb = FrameBoundary::new(3);
    let b = boundaries(&mut fb, &frames(6, |s| s % 3 == 2));
    // Frames 0..=2 end on the next timestamp; from the 4th frame on the
    // marker is trusted (3 frame changes seen after marked packets).
    let ends: Vec<usize> = (0..b.len()).filter(|&i| b[i].0).collect();
    let marks: Vec<usize> = (0..b.len()).filter(|&i| b[i].1).collect();
    assert_eq!(ends, [3, 6, 9]);
    assert_eq!(marks, [11, 14, 17]);
    assert!(fb.marker_reliable());
    // Every frame ends exactly once.
    assert_eq!(ends.len() + marks.len(), 6);
}

#[test]
fn frame_boundary_without_markers_uses_timestamps() {
    let mut fb = FrameBoundary::default();
    let b = boundaries(&mut fb, &frames(20, |_| false));
    assert!(b.iter().all(|x| !x.1));
    assert_eq!(b.iter().filter(|x| x.0).count(), 19);
    // Marker on every packet: never trusted.
    let mut fb = FrameBoundary::new(1);
    let b = boundaries(&mut fb, &frames(20, |_| true));
    assert!(!fb.marker_reliable());
    assert!(b.iter().all(|x| !x.1));
}

#[test]
fn frame_boundary_stops_trusting_a_marker_that_stops() {
    let mut fb = FrameBoundary::new(2);
    let mut p = frames(10, |s| s % 3 == 2 && s < 15);
    // A lost marker packet (gap) proves nothing.
    p.retain(|&(s, _, _)| s != 8);
    let b = boundaries(&mut fb, &p);
    let ends: Vec<u16> = p.iter().zip(&b).filter(|x| x.1.0).map(|x| x.0.0).collect();
    let marks: Vec<u16> = p.iter().zip(&b).filter(|x| x.1.1).map(|x| x.0.0).collect();
    assert_eq!(marks, [11, 14]);
    assert_eq!(ends, [3, 6, 9, 18, 21, 24, 27]);
    assert!(!fb.marker_reliable());
}

// --- packetizer ----------------------------------------------------------------------

#[test]
fn packetizer_rejects_bad_settings_and_skips_empty_frames() {
    let bad_pt = PacketizerConfig {
        payload_type: 128,
        ..PacketizerConfig::default()
    };
    assert_eq!(
        Packetizer::new(bad_pt).unwrap_err(),
        RtpError::PayloadType(128)
    );
    for max_payload in [0, 65524] {
        let cfg = PacketizerConfig {
            max_payload,
            ..PacketizerConfig::default()
        };
        assert!(matches!(
            Packetizer::new(cfg).unwrap_err(),
            RtpError::MaxPayload { limit: 65523, .. }
        ));
    }
    let mut p = Packetizer::new(PacketizerConfig::default()).unwrap();
    let mut out = Vec::new();
    p.packetize(&[], 0, &mut out);
    assert!(out.is_empty());
    assert_eq!(p.next_sequence(), 0);
}

// --- properties ----------------------------------------------------------------------

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn random_bytes_never_panic(data in proptest::collection::vec(any::<u8>(), 0..2000)) {
        let _ = RtpPacket::parse(Bytes::from(data.clone()));
        fuzz_rtp(&data);
        fuzz_rfc4571(&data);
    }

    #[test]
    fn mutated_rtp_headers_never_panic(
        first in any::<u8>(),
        ext_words in any::<u16>(),
        pad in any::<u8>(),
        len in 0usize..80,
    ) {
        let mut b = vec![first, 0x60, 0, 1, 0, 0, 0, 0, 0, 0, 0, 1];
        b.resize(12 + len, 0);
        if len >= 4 {
            b[14..16].copy_from_slice(&ext_words.to_be_bytes());
        }
        if let Some(last) = b.last_mut() {
            *last = pad;
        }
        fuzz_rtp(&b);
    }

    #[test]
    fn reordering_within_the_window_gives_the_original_order(
        start in any::<u16>(),
        jitter in proptest::collection::vec(0u32..32, 1..300),
        polls in proptest::collection::vec(any::<bool>(), 300),
    ) {
        let n = jitter.len() as u32;
        let mut order: Vec<u32> = (0..n).collect();
        order.sort_by_key(|&i| (i + jitter[i as usize], i));
        let t = Instant::now();
        let mut rb = ReorderBuffer::new(ReorderConfig {
            max_packets: 64,
            max_delay: Duration::from_secs(1),
            ..ReorderConfig::default()
        });
        let mut out = Vec::new();
        for (k, &i) in order.iter().enumerate() {
            rb.push(packet(start.wrapping_add(i as u16), i, false), t);
            if polls[k] {
                out.extend(drain(&mut rb, t));
            }
        }
        // Only the start waited: nothing was given up.
        out.extend(drain(&mut rb, t + Duration::from_secs(1)));
        let expected: Vec<u16> = (0..n).map(|i| start.wrapping_add(i as u16)).collect();
        prop_assert_eq!(out, expected);
        let s = rb.stats();
        prop_assert_eq!((s.lost, s.late, s.duplicates, s.resyncs), (0, 0, 0, 0));
        prop_assert!(rb.is_empty());
    }

    #[test]
    fn packetize_then_parse_reassembles(
        frame in proptest::collection::vec(any::<u8>(), 0..5000),
        max_payload in 1usize..1500,
        seq in any::<u16>(),
        ts in any::<u32>(),
    ) {
        let mut p = Packetizer::new(PacketizerConfig {
            ssrc: 42,
            payload_type: 33,
            initial_sequence: seq,
            max_payload,
        })
        .unwrap();
        let mut out = Vec::new();
        p.packetize_rfc4571(&frame, ts, &mut out);
        let (raw, stats) = deframe_ok(&out.concat(), &[]);
        prop_assert_eq!(stats.resyncs, 0);
        prop_assert_eq!(raw.len(), frame.len().div_ceil(max_payload));
        let mut joined = Vec::new();
        for (i, r) in raw.into_iter().enumerate() {
            let pkt = RtpPacket::parse(r).unwrap();
            prop_assert_eq!(pkt.sequence(), seq.wrapping_add(i as u16));
            prop_assert_eq!((pkt.timestamp(), pkt.ssrc(), pkt.payload_type()), (ts, 42, 33));
            prop_assert_eq!(pkt.marker(), (i + 1) * max_payload >= frame.len());
            joined.extend_from_slice(pkt.payload());
        }
        prop_assert_eq!(joined, frame);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn fixture_rfc4571_any_chunking_gives_the_same_packets(
        chunks in proptest::collection::vec(1usize..3000, 1..40),
    ) {
        let (Some(hex), Some(stream)) = (hex_packets(), fixture("lal_hik_rtp.rfc4571")) else {
            return Ok(());
        };
        let (packets, stats) = deframe_ok(&stream, &chunks);
        prop_assert_eq!(packets, hex);
        prop_assert_eq!((stats.packets, stats.resyncs), (10, 0));
    }

    #[test]
    fn fixture_rfc4571_one_damaged_byte_never_panics(at in 0usize..11840, byte in any::<u8>(), chunk in 1usize..2000) {
        let Some(mut stream) = fixture("lal_hik_rtp.rfc4571") else {
            return Ok(());
        };
        let at = at % stream.len();
        stream[at] = byte;
        let (packets, _) = deframe_ok(&stream, &[chunk]);
        prop_assert!(packets.len() <= 10);
    }
}

/// Found by `cargo fuzz run rfc4571`: a clean stream whose first packet's
/// payload looks like a length + RTP header chain (`00 24 a9 …`) must come
/// back whole, not be split inside that payload while the stream is being
/// learned.
#[test]
fn clean_stream_with_framing_lookalike_payload_comes_back_whole() {
    let mut data = vec![0x45, 0xff, 0xff, 0x00, 0x00, 0x24];
    data.extend(std::iter::repeat_n(0xa9, 85));
    data.extend_from_slice(&[0x7b, 0x40, 0x0d, 0xff, 0x00, 0x2e, 0x66, 0x00, 0x93]);
    super::fuzz_rfc4571(&data);
}
