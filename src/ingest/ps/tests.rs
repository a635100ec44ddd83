//! Tests of the PS demuxer: real captures (read from `CAMGATE_REAL_FIXTURES`),
//! hand-built streams for each quirk, property tests.

use std::path::PathBuf;
use std::sync::Arc;

use bytes::Bytes;
use proptest::prelude::*;

use super::*;
use crate::codec::samples;

// --- fixtures ------------------------------------------------------------------------

fn fixtures_dir() -> PathBuf {
    std::env::var("CAMGATE_REAL_FIXTURES")
        .unwrap_or_else(|_| "/work/shared/fixtures".into())
        .into()
}

fn fixture(rel: &str) -> Vec<u8> {
    let p = fixtures_dir().join(rel);
    std::fs::read(&p).unwrap_or_else(|e| {
        panic!(
            "real fixture {} unreadable ({e}); set CAMGATE_REAL_FIXTURES to the shared fixtures directory",
            p.display()
        )
    })
}

const HIK: &str = "hikvision-rtp-ps-fragments";
const G711_FILE: &str = "gb28181-official-test-tool/Audio_G711_PS2.mpg";

// --- a minimal RTP reader, private to these tests ----------------------------------

#[derive(Clone, Debug, PartialEq, Eq)]
struct Rtp {
    marker: bool,
    seq: u16,
    timestamp: u32,
    payload: Vec<u8>,
}

/// RFC 3550 §5.1: version 2, CSRC count, header extension, padding.
fn parse_rtp(p: &[u8]) -> Rtp {
    assert!(p.len() >= 12 && p[0] >> 6 == 2, "not RTP v2");
    let cc = usize::from(p[0] & 0x0F);
    let mut start = 12 + 4 * cc;
    if p[0] & 0x10 != 0 {
        let words = usize::from(u16::from_be_bytes([p[start + 2], p[start + 3]]));
        start += 4 + 4 * words;
    }
    let mut end = p.len();
    if p[0] & 0x20 != 0 {
        end -= usize::from(p[end - 1]);
    }
    assert!(start <= end, "RTP header longer than the packet");
    Rtp {
        marker: p[1] & 0x80 != 0,
        seq: u16::from_be_bytes([p[2], p[3]]),
        timestamp: u32::from_be_bytes([p[4], p[5], p[6], p[7]]),
        payload: p[start..end].to_vec(),
    }
}

/// UDP payloads of a classic pcap file (Ethernet, raw IP or Linux SLL; IPv4).
fn pcap_udp_payloads(file: &[u8]) -> Vec<Vec<u8>> {
    let magic = u32::from_le_bytes(file[..4].try_into().unwrap());
    let le = match magic {
        0xa1b2_c3d4 | 0xa1b2_3c4d => true,
        0xd4c3_b2a1 | 0x4d3c_b2a1 => false,
        m => panic!("not a pcap file: magic {m:08x}"),
    };
    let u32_at = |b: &[u8], i: usize| {
        let a: [u8; 4] = b[i..i + 4].try_into().unwrap();
        if le {
            u32::from_le_bytes(a)
        } else {
            u32::from_be_bytes(a)
        }
    };
    let linktype = u32_at(file, 20);
    let mut out = Vec::new();
    let mut i = 24;
    while i + 16 <= file.len() {
        let incl = u32_at(file, i + 8) as usize;
        let pkt = &file[i + 16..i + 16 + incl];
        i += 16 + incl;
        let mut ip = match linktype {
            1 => {
                let mut off = 12;
                while u16::from_be_bytes([pkt[off], pkt[off + 1]]) == 0x8100 {
                    off += 4;
                }
                assert_eq!(u16::from_be_bytes([pkt[off], pkt[off + 1]]), 0x0800);
                off + 2
            }
            101 | 228 => 0,
            113 => 16,
            l => panic!("unsupported pcap link type {l}"),
        };
        assert_eq!(pkt[ip] >> 4, 4, "IPv4 only");
        assert_eq!(pkt[ip + 9], 17, "UDP only");
        let total = usize::from(u16::from_be_bytes([pkt[ip + 2], pkt[ip + 3]]));
        let end = ip + total;
        ip += usize::from(pkt[ip] & 0x0F) * 4;
        let udp_len = usize::from(u16::from_be_bytes([pkt[ip + 4], pkt[ip + 5]]));
        assert_eq!(ip + udp_len, end);
        out.push(pkt[ip + 8..end].to_vec());
    }
    out
}

/// RFC 4571 framing: 16-bit length, packet.
fn rfc4571_packets(file: &[u8]) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let mut i = 0;
    while i + 2 <= file.len() {
        let n = usize::from(u16::from_be_bytes([file[i], file[i + 1]]));
        out.push(file[i + 2..i + 2 + n].to_vec());
        i += 2 + n;
    }
    assert_eq!(i, file.len());
    out
}

fn hex_packets(text: &str) -> Vec<Vec<u8>> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(|l| {
            (0..l.len())
                .step_by(2)
                .map(|i| u8::from_str_radix(&l[i..i + 2], 16).unwrap())
                .collect()
        })
        .collect()
}

fn lal_packets() -> Vec<Rtp> {
    let pcap: Vec<Rtp> = pcap_udp_payloads(&fixture(&format!("{HIK}/lal_hik_rtp_udp.pcap")))
        .iter()
        .map(|p| parse_rtp(p))
        .collect();
    let tcp: Vec<Rtp> = rfc4571_packets(&fixture(&format!("{HIK}/lal_hik_rtp.rfc4571")))
        .iter()
        .map(|p| parse_rtp(p))
        .collect();
    let text = String::from_utf8(fixture(&format!("{HIK}/lal_hik_rtp_packets.hex"))).unwrap();
    let hex: Vec<Rtp> = hex_packets(&text).iter().map(|p| parse_rtp(p)).collect();
    assert_eq!(pcap.len(), 10);
    assert_eq!(pcap, tcp, "pcap and RFC 4571 captures differ");
    assert_eq!(pcap, hex, "pcap and hex captures differ");
    pcap
}

// --- driving the demuxer -------------------------------------------------------------

fn drain(d: &mut PsDemuxer, out: &mut Vec<PsEvent>) {
    while let Some(e) = d.poll() {
        out.push(e);
    }
}

/// Feeds RTP payloads as the RTP layer does: an access unit ends on a timestamp
/// change, after a marker bit, and at the end of the input.
fn demux_rtp(d: &mut PsDemuxer, packets: &[Rtp]) -> Vec<PsEvent> {
    let mut out = Vec::new();
    let mut last_ts = None;
    for p in packets {
        if last_ts.is_some_and(|t| t != p.timestamp) {
            d.end_of_access_unit();
        }
        last_ts = Some(p.timestamp);
        d.push(&p.payload);
        if p.marker {
            d.end_of_access_unit();
        }
        drain(d, &mut out);
    }
    d.end_of_access_unit();
    drain(d, &mut out);
    out
}

/// Pushes `data` in chunks of the given sizes (cycled), polling after each,
/// then ends the access unit.
fn demux_chunked(data: &[u8], sizes: &[usize], config: PsConfig) -> Vec<PsEvent> {
    let mut d = PsDemuxer::new(config);
    let mut out = Vec::new();
    let mut rest = data;
    let mut k = 0;
    while !rest.is_empty() {
        let n = sizes[k % sizes.len()].clamp(1, rest.len());
        k += 1;
        d.push(&rest[..n]);
        rest = &rest[n..];
        drain(&mut d, &mut out);
    }
    d.end_of_access_unit();
    drain(&mut d, &mut out);
    out
}

fn demux(data: &[u8]) -> (Vec<PsEvent>, PsDemuxer) {
    let mut d = PsDemuxer::default();
    d.push(data);
    d.end_of_access_unit();
    let mut out = Vec::new();
    drain(&mut d, &mut out);
    (out, d)
}

fn frames(events: &[PsEvent]) -> Vec<&Frame> {
    events
        .iter()
        .filter_map(|e| match e {
            PsEvent::Frame(f) => Some(f),
            PsEvent::Warning(_) => None,
        })
        .collect()
}

fn warnings(events: &[PsEvent]) -> Vec<&PsError> {
    events
        .iter()
        .filter_map(|e| match e {
            PsEvent::Warning(w) => Some(w),
            PsEvent::Frame(_) => None,
        })
        .collect()
}

fn video(f: &Frame) -> &VideoTrack {
    match f.track.as_ref() {
        TrackInfo::Video(v) => v,
        TrackInfo::Audio(_) => panic!("not a video frame"),
    }
}

fn nals(f: &Frame) -> &[Bytes] {
    match &f.data {
        FrameData::Nals(n) => n,
        FrameData::Audio(_) => panic!("not a video frame"),
    }
}

fn audio_payload(f: &Frame) -> &Bytes {
    match &f.data {
        FrameData::Audio(b) => b,
        FrameData::Nals(_) => panic!("not an audio frame"),
    }
}

/// Checks what holds for every output, per track: video DTS strictly
/// increase, PTS ≥ DTS, audio frames never start before the previous ended.
fn check_timelines(events: &[PsEvent]) {
    let mut next: std::collections::HashMap<*const TrackInfo, i64> = Default::default();
    for f in frames(events) {
        assert!(f.pts >= f.dts, "pts {} before dts {}", f.pts, f.dts);
        let min = next.get(&Arc::as_ptr(&f.track)).copied();
        if let Some(min) = min {
            assert!(f.dts >= min, "dts {} before {min}", f.dts);
        }
        let end = match f.track.as_ref() {
            TrackInfo::Video(_) => f.dts + 1,
            TrackInfo::Audio(a) if a.codec == Codec::Aac => f.pts + 1024,
            TrackInfo::Audio(_) => f.pts + f.payload_len() as i64,
        };
        next.insert(Arc::as_ptr(&f.track), end);
    }
}

// --- building program streams by hand ----------------------------------------------

/// A PTS/DTS/SCR field in the 5-byte layout (ISO/IEC 13818-1 §2.4.3.7).
fn ts5(prefix: u8, t: u64) -> [u8; 5] {
    [
        (prefix << 4) | (((t >> 30) & 7) as u8) << 1 | 1,
        (t >> 22) as u8,
        (((t >> 15) & 0x7F) as u8) << 1 | 1,
        (t >> 7) as u8,
        ((t & 0x7F) as u8) << 1 | 1,
    ]
}

/// MPEG-2 pack header with the given stuffing bytes (at most 7).
fn pack(scr: u64, stuffing: &[u8]) -> Vec<u8> {
    let mut v = vec![0, 0, 1, 0xBA];
    v.push(0x40 | (((scr >> 30) & 7) as u8) << 3 | 0x04 | ((scr >> 28) & 3) as u8);
    v.push((scr >> 20) as u8);
    v.push((((scr >> 15) & 0x1F) as u8) << 3 | 0x04 | ((scr >> 13) & 3) as u8);
    v.push((scr >> 5) as u8);
    v.push(((scr & 0x1F) as u8) << 3 | 0x04);
    v.push(0x01);
    v.extend_from_slice(&[0x01, 0x89, 0xC3]);
    v.push(0xF8 | stuffing.len() as u8);
    v.extend_from_slice(stuffing);
    v
}

/// MPEG-1 pack header (ISO/IEC 11172-1 §2.4.3.2).
fn mpeg1_pack(scr: u64) -> Vec<u8> {
    let mut v = vec![0, 0, 1, 0xBA];
    v.extend_from_slice(&ts5(2, scr));
    v.extend_from_slice(&[0x80, 0x1B, 0x83]);
    v
}

fn system_header() -> Vec<u8> {
    let body = [
        0x80, 0x98, 0x09, 0x04, 0xE1, 0x7F, 0xE0, 0xE0, 0x80, 0xC0, 0xC0, 0x08,
    ];
    let mut v = vec![0, 0, 1, 0xBB, 0, body.len() as u8];
    v.extend_from_slice(&body);
    v
}

/// A program stream map with correct lengths and a dummy CRC.
fn psm(entries: &[(u8, u8, &[u8])]) -> Vec<u8> {
    let mut es = Vec::new();
    for (t, id, desc) in entries {
        es.extend_from_slice(&[*t, *id]);
        es.extend_from_slice(&(desc.len() as u16).to_be_bytes());
        es.extend_from_slice(desc);
    }
    let mut body = vec![0xE0, 0xFF, 0, 0];
    body.extend_from_slice(&(es.len() as u16).to_be_bytes());
    body.extend_from_slice(&es);
    body.extend_from_slice(&[0xDE, 0xAD, 0xBE, 0xEF]);
    let mut v = vec![0, 0, 1, 0xBC];
    v.extend_from_slice(&(body.len() as u16).to_be_bytes());
    v.extend_from_slice(&body);
    v
}

/// An MPEG-2 PES; `unbounded` writes PES_packet_length 0. `stuffing` bytes
/// after the timestamps end with 0xFC like Hikvision's.
fn pes(
    stream_id: u8,
    pts: Option<u64>,
    dts: Option<u64>,
    payload: &[u8],
    unbounded: bool,
) -> Vec<u8> {
    let mut fields = Vec::new();
    let flags = match (pts, dts) {
        (Some(p), Some(d)) => {
            fields.extend_from_slice(&ts5(3, p));
            fields.extend_from_slice(&ts5(1, d));
            0xC0
        }
        (Some(p), None) => {
            fields.extend_from_slice(&ts5(2, p));
            0x80
        }
        _ => 0x00,
    };
    fields.extend_from_slice(&[0xFF, 0xFC]);
    let len = 3 + fields.len() + payload.len();
    let mut v = vec![0, 0, 1, stream_id];
    let len = if unbounded {
        0
    } else {
        u16::try_from(len).unwrap()
    };
    v.extend_from_slice(&len.to_be_bytes());
    v.extend_from_slice(&[0x8C, flags, fields.len() as u8]);
    v.extend_from_slice(&fields);
    v.extend_from_slice(payload);
    v
}

/// An MPEG-1 PES (ISO/IEC 11172-1 §2.4.3.3): stuffing, STD buffer, PTS and DTS.
fn mpeg1_pes(stream_id: u8, pts: u64, dts: u64, payload: &[u8]) -> Vec<u8> {
    let mut body = vec![0xFF, 0xFF, 0x60, 0x20];
    body.extend_from_slice(&ts5(3, pts));
    body.extend_from_slice(&ts5(1, dts));
    body.extend_from_slice(payload);
    let mut v = vec![0, 0, 1, stream_id];
    v.extend_from_slice(&(body.len() as u16).to_be_bytes());
    v.extend_from_slice(&body);
    v
}

fn private_pes(stream_id: u8, payload: &[u8]) -> Vec<u8> {
    let mut v = vec![0, 0, 1, stream_id];
    v.extend_from_slice(&(payload.len() as u16).to_be_bytes());
    v.extend_from_slice(payload);
    v
}

fn annex_b(nals: &[&[u8]]) -> Vec<u8> {
    let mut v = Vec::new();
    for n in nals {
        v.extend_from_slice(&[0, 0, 0, 1]);
        v.extend_from_slice(n);
    }
    v
}

/// One ADTS frame (ISO/IEC 13818-7 §6.2), AAC LC, no CRC.
fn adts(sampling_index: u8, channels: u8, payload: &[u8]) -> Vec<u8> {
    let len = payload.len() + 7;
    let mut v = vec![
        0xFF,
        0xF1,
        (1 << 6) | (sampling_index << 2) | (channels >> 2),
        ((channels & 3) << 6) | (len >> 11) as u8,
        (len >> 3) as u8,
        ((len & 7) as u8) << 5 | 0x1F,
        0xFC,
    ];
    v.extend_from_slice(payload);
    v
}

const IDR: &[u8] = &[0x65, 0x88, 0x84, 0x21, 0x43, 0x55, 0x66, 0x77];
const P_SLICE: &[u8] = &[0x41, 0x9A, 0x21, 0x6C, 0x41, 0x0F];
const H265_IDR: &[u8] = &[0x26, 0x01, 0xAF, 0x06, 0xB8, 0x63, 0xEF];
const H265_TRAIL: &[u8] = &[0x02, 0x01, 0xD0, 0x08, 0x9E, 0x42];

/// SPS of the Hikvision stream in `srs_utest_hik_rtp0_first256.bin` (640x480).
const HIK_SPS_640X480: &[u8] = &[
    0x67, 0x4d, 0x00, 0x1e, 0x9d, 0xa8, 0x28, 0x0f, 0x69, 0xb8, 0x08, 0x08, 0x0a, 0x00, 0x00, 0x03,
    0x00, 0x02, 0x00, 0x00, 0x03, 0x00, 0x65, 0x08,
];

fn h264_key_au() -> Vec<u8> {
    annex_b(&[samples::H264_SPS_640X360, samples::H264_PPS, IDR])
}

fn h264_psm() -> Vec<u8> {
    psm(&[(0x1B, 0xE0, &[]), (0x90, 0xC0, &[])])
}

// --- real captures -------------------------------------------------------------------

#[test]
fn hikvision_h264_rtp_packets() {
    let packets = lal_packets();
    let seqs: Vec<u16> = packets.iter().map(|p| p.seq).collect();
    assert_eq!(seqs, [0, 1, 2, 3, 4, 5, 6, 7, 8, 291]);
    assert_eq!(packets.iter().filter(|p| p.marker).count(), 2);
    // The RTP payloads are the concatenated PS files.
    let ps: Vec<u8> = packets.iter().flat_map(|p| p.payload.clone()).collect();
    let mut files = fixture(&format!("{HIK}/lal_hik_seq0-8.ps"));
    files.extend(fixture(&format!("{HIK}/lal_hik_seq291_iframe_start.ps")));
    assert_eq!(ps, files);

    let mut d = PsDemuxer::default();
    let events = demux_rtp(&mut d, &packets);
    let f = frames(&events);
    // Seq 0-8: two P-frames before any parameter set, dropped. Seq 291: the
    // start of an I-frame (SPS, PPS, then 1,174 of 63,974 bytes of the IDR PES), emitted at
    // the end of input.
    assert_eq!(f.len(), 1, "{events:#?}");
    let k = f[0];
    assert!(k.keyframe);
    assert_eq!(k.codec(), Codec::H264);
    let v = video(k);
    assert_eq!((v.width, v.height), (1920, 1080));
    assert_eq!(k.pts, 3_097_170_348);
    assert_eq!(k.dts, k.pts);
    let types: Vec<u8> = nals(k).iter().map(|n| nal::h264_type(n)).collect();
    assert_eq!(types, [7, 8, 5]);
    assert_eq!(&v.sps[..], &nals(k)[0][..]);
    // The only warning: the I-frame's last PES is cut by the end of input.
    let w = warnings(&events);
    assert_eq!(w.len(), 1, "{w:?}");
    assert!(matches!(
        w[0],
        PsError::TruncatedPes {
            offset: 10_512,
            stream_id: 0xE0,
            missing: 62_800,
        }
    ));
    let s = d.stats();
    assert_eq!(s.packs, 3);
    assert_eq!(s.program_stream_maps, 1);
    assert_eq!(s.system_headers, 1);
    assert_eq!(s.pes, 5);
    assert_eq!(s.resyncs, 0);
    assert_eq!(s.streams.len(), 2, "video, and the audio the map declares");
    let e0 = s.streams.iter().find(|s| s.stream_id == 0xE0).unwrap();
    assert_eq!((e0.pes, e0.frames, e0.dropped_frames), (5, 1, 2));
    let c0 = d
        .streams()
        .into_iter()
        .find(|s| s.stream_id == 0xC0)
        .unwrap();
    // This camera declares G.711U audio (it sent none in these packets).
    assert_eq!(c0.stream_type, Some(0x91));
    assert_eq!(c0.codec, Some(Codec::G711U));
}

#[test]
fn hikvision_h264_p_frames_after_the_keyframe() {
    // The I-frame start first, then the two P-frames that (in the capture) came
    // 2.3 s earlier: they are emitted, and the backward jump is bridged.
    let packets = lal_packets();
    let mut order = vec![packets[9].clone()];
    order.extend(packets[..9].iter().cloned());
    let mut d = PsDemuxer::default();
    let events = demux_rtp(&mut d, &order);
    let f = frames(&events);
    assert_eq!(f.len(), 3, "{events:#?}");
    assert!(f[0].keyframe && !f[1].keyframe && !f[2].keyframe);
    assert!(Arc::ptr_eq(&f[0].track, &f[1].track) && Arc::ptr_eq(&f[1].track, &f[2].track));
    let dts: Vec<i64> = f.iter().map(|f| f.dts).collect();
    assert_eq!(
        dts,
        [3_097_170_348, 3_097_170_348 + 3600, 3_097_170_348 + 7200]
    );
    assert!(f[1].payload_len() + f[2].payload_len() > 9000);
    assert!(
        warnings(&events)
            .iter()
            .any(|w| matches!(w, PsError::TimestampJump { jump: -205_200, .. }))
    );
    check_timelines(&events);
}

#[test]
fn hikvision_h264_aac_rtp_start() {
    let raw = fixture(&format!("{HIK}/srs_utest_hik_rtp0_first256.bin"));
    let rtp = parse_rtp(&raw);
    assert_eq!(rtp.payload.len(), 244);
    let (events, d) = demux(&rtp.payload);
    let f = frames(&events);
    assert_eq!(f.len(), 1);
    assert!(f[0].keyframe);
    let v = video(f[0]);
    assert_eq!((v.codec, v.width, v.height), (Codec::H264, 640, 480));
    assert_eq!(&v.sps[..], HIK_SPS_640X480);
    let types: Vec<u8> = nals(f[0]).iter().map(|n| nal::h264_type(n)).collect();
    assert_eq!(types, [7, 8, 6, 5]);
    let audio = d
        .streams()
        .into_iter()
        .find(|s| s.stream_id == 0xC0)
        .unwrap();
    assert_eq!(
        (audio.stream_type, audio.codec),
        (Some(0x0F), Some(Codec::Aac))
    );
}

#[test]
fn hikvision_h265_stream_starts() {
    // (file, size, audio stream type, audio codec, keyframe frames)
    let cases = [
        (
            "js_hik_h265_start_a.ps",
            (2688, 1520),
            0x90,
            Codec::G711A,
            0,
        ),
        ("js_hik_h265_start_b.ps", (2560, 1440), 0x0F, Codec::Aac, 1),
    ];
    for (file, size, audio_type, audio_codec, keyframes) in cases {
        let (events, d) = demux(&fixture(&format!("{HIK}/{file}")));
        let streams = d.streams();
        let video_info = streams.iter().find(|s| s.stream_id == 0xE0).unwrap();
        assert_eq!(video_info.stream_type, Some(0x24), "{file}");
        let Some(TrackInfo::Video(v)) = video_info.track.as_deref() else {
            panic!("{file}: no video track");
        };
        assert_eq!(v.codec, Codec::H265);
        assert_eq!((v.width, v.height), size, "{file}");
        assert!(v.vps.is_some());
        let audio = streams.iter().find(|s| s.stream_id == 0xC0).unwrap();
        assert_eq!(audio.stream_type, Some(audio_type), "{file}");
        assert_eq!(audio.codec, Some(audio_codec), "{file}");
        let f = frames(&events);
        assert_eq!(f.len(), keyframes, "{file}: {events:#?}");
        for k in f {
            // VPS, SPS, PPS and the start of an IDR_W_RADL picture.
            assert!(k.keyframe);
            let types: Vec<u8> = nals(k).iter().map(|n| nal::h265_type(n)).collect();
            assert_eq!(types, [32, 33, 34, 19]);
            assert!(Arc::ptr_eq(&k.track, video_info.track.as_ref().unwrap()));
        }
        assert_eq!(d.stats().resyncs, 0);
    }
}

#[test]
fn official_tool_g711_file_with_malformed_psm() {
    let data = fixture(G711_FILE);
    let mut d = PsDemuxer::default();
    let mut events = Vec::new();
    for chunk in data.chunks(1400) {
        d.push(chunk);
        drain(&mut d, &mut events);
    }
    d.end_of_access_unit();
    drain(&mut d, &mut events);
    let f = frames(&events);
    // 35,353 PES on 0xC0 (35,351 MPEG-2 PES of 80 bytes, two MPEG-1 PES of 160).
    assert_eq!(f.len(), 35_353);
    assert!(
        f.iter()
            .all(|f| f.codec() == Codec::G711A && f.keyframe && f.pts == f.dts)
    );
    assert!(Arc::ptr_eq(&f[0].track, &f[35_352].track));
    assert_eq!(
        *f[0].track,
        TrackInfo::Audio(AudioTrack::g711(Codec::G711A, 8000, 1))
    );
    let bytes: usize = f.iter().map(|f| f.payload_len()).sum();
    assert_eq!(bytes, 2_828_400);
    assert_eq!(f.iter().filter(|f| f.payload_len() == 160).count(), 2);
    // First PTS 11,205,360 (90 kHz) → 8 kHz.
    assert_eq!(f[0].pts, 996_032);
    assert_eq!(&audio_payload(f[0])[..4], &[0x10, 0x92, 0x9D, 0xC8]);
    for w in f.windows(2) {
        assert!(w[1].pts > w[0].pts, "{} then {}", w[0].pts, w[1].pts);
    }
    check_timelines(&events);
    // The map's elementary_stream_map_length is wrong (reported once: the map
    // never changes), and the two MPEG-1 PES carry a PTS 39,394 s off: bridged
    // both ways.
    let w = warnings(&events);
    let maps = w
        .iter()
        .filter(|w| matches!(w, PsError::BadProgramStreamMap { .. }))
        .count();
    let jumps = w
        .iter()
        .filter(|w| {
            matches!(
                w,
                PsError::TimestampJump {
                    stream_id: 0xC0,
                    ..
                }
            )
        })
        .count();
    assert_eq!((maps, jumps, w.len()), (1, 2, 3), "{w:?}");
    let s = d.stats();
    assert_eq!(
        (s.packs, s.system_headers, s.program_stream_maps),
        (7982, 320, 320)
    );
    assert_eq!((s.pes, s.resyncs, s.skipped_bytes), (35_353, 0, 0));
    let streams = d.streams();
    let video = streams.iter().find(|s| s.stream_id == 0xE0).unwrap();
    assert_eq!(video.stream_type, Some(0x1B), "declared, never sent");
    assert!(video.track.is_none());
}

/// Hikvision-style PS around a real H.264 elementary stream: one pack per
/// access unit with a counter in the stuffing, system header and map before
/// keyframes, each parameter set and SEI in its own PES, pictures split into
/// PES of at most 65,490 bytes, only the first PES with a PTS, 0xBD private data
/// between frames, and every third picture in a PES of length 0.
fn hikvision_style_ps(es: &[u8]) -> (Vec<u8>, Vec<Vec<Bytes>>) {
    let all = nal::split_annex_b(&Bytes::copy_from_slice(es));
    // Access units (ITU-T H.264 §7.4.1.2.3): a new one starts at an AUD, SPS,
    // PPS or SEI, or at a slice with first_mb_in_slice 0, after a slice.
    let mut aus: Vec<Vec<Bytes>> = Vec::new();
    let mut has_slice = false;
    for n in all {
        let t = nal::h264_type(&n);
        let is_slice = t == 1 || t == 5;
        let starts = matches!(t, 6..=9) || (is_slice && n.get(1).is_some_and(|b| b & 0x80 != 0));
        if aus.is_empty() || (has_slice && starts) {
            aus.push(Vec::new());
            has_slice = false;
        }
        has_slice |= is_slice;
        aus.last_mut().unwrap().push(n);
    }
    let mut out = Vec::new();
    for (i, au) in aus.iter().enumerate() {
        let pts = 1_000_000 + 3600 * i as u64;
        let key = au.iter().any(|n| nal::h264_type(n) == 5);
        let counter = (i as u32).to_be_bytes();
        out.extend(pack(
            pts,
            &[0xFF, 0xFF, counter[0], counter[1], counter[2], counter[3]],
        ));
        if key {
            out.extend(system_header());
            out.extend(psm(&[
                (0x1B, 0xE0, &[0x42, 0x02, 0x01, 0x40]),
                (0x90, 0xC0, &[]),
            ]));
        }
        let mut first = true;
        for n in au {
            let data = annex_b(&[n]);
            let pieces: Vec<&[u8]> = data.chunks(65_490).collect();
            for piece in pieces {
                let p = first.then_some(pts);
                first = false;
                out.extend(pes(0xE0, p, None, piece, i % 3 == 2));
            }
        }
        out.extend(private_pes(0xBD, &[0, 0, 0, 1, 0, 0, 1, 0xBA, 0x42, 0x99]));
    }
    (out, aus)
}

#[test]
fn real_h264_elementary_streams_in_hikvision_style_ps() {
    for (file, count, size) in [
        ("h264-es/128x128.h264", 155, (128, 128)),
        ("h264-es/cuc_ieschool.h264", 511, (512, 288)),
    ] {
        let es = fixture(file);
        let (ps, aus) = hikvision_style_ps(&es);
        assert_eq!(aus.len(), count, "{file}");
        let (events, d) = demux(&ps);
        assert!(
            warnings(&events).is_empty(),
            "{file}: {:?}",
            warnings(&events)
        );
        let f = frames(&events);
        assert_eq!(f.len(), count, "{file}");
        for (i, (frame, au)) in f.iter().zip(&aus).enumerate() {
            assert_eq!(nals(frame), &au[..], "{file}: access unit {i}");
            assert_eq!(frame.pts, 1_000_000 + 3600 * i as i64);
        }
        assert!(f[0].keyframe);
        let v = video(f[0]);
        assert_eq!((v.width, v.height), size, "{file}");
        // One track for the whole stream: parameter sets never change.
        assert!(f.iter().all(|g| Arc::ptr_eq(&g.track, &f[0].track)));
        assert_eq!(d.stats().skipped_pes, count as u64);
        check_timelines(&events);
    }
}

// --- hand-built cases ----------------------------------------------------------------

#[test]
fn mpeg1_pack_header_is_skipped() {
    let mut s = mpeg1_pack(900_000);
    s.extend(h264_psm());
    s.extend(pes(0xE0, Some(900_000), None, &h264_key_au(), false));
    s.extend(mpeg1_pack(903_600));
    s.extend(pes(0xE0, Some(903_600), None, &annex_b(&[P_SLICE]), false));
    let (events, d) = demux(&s);
    assert!(warnings(&events).is_empty(), "{events:?}");
    let f = frames(&events);
    assert_eq!(f.len(), 2);
    assert!(f[0].keyframe && !f[1].keyframe);
    assert_eq!((f[0].pts, f[1].pts), (900_000, 903_600));
    assert_eq!((video(f[0]).width, video(f[0]).height), (640, 360));
    assert_eq!(d.stats().packs, 2);
}

#[test]
fn pack_stuffing_is_skipped_by_length_whatever_its_bytes() {
    let mut s = Vec::new();
    // Counters as Hikvision writes them, and stuffing that looks like start codes.
    for (i, stuffing) in [
        &[0xFF, 0xFF, 0x02, 0x50, 0x3C, 0xB0][..],
        &[0x00, 0x00, 0x01, 0xBA, 0x00, 0x01],
        &[0x00, 0x00, 0x01, 0xE0, 0xFF, 0xFF, 0x07],
        &[],
    ]
    .into_iter()
    .enumerate()
    {
        let pts = 3600 * (i as u64 + 1);
        s.extend(pack(pts, stuffing));
        if i == 0 {
            s.extend(h264_psm());
            s.extend(pes(0xE0, Some(pts), None, &h264_key_au(), false));
        } else {
            s.extend(pes(0xE0, Some(pts), None, &annex_b(&[P_SLICE]), false));
        }
    }
    let (events, d) = demux(&s);
    assert!(warnings(&events).is_empty(), "{events:?}");
    assert_eq!(frames(&events).len(), 4);
    let st = d.stats();
    assert_eq!(
        (st.packs, st.skipped_bytes, st.stray_pack_starts),
        (4, 0, 0)
    );
}

#[test]
fn psm_with_bad_lengths_is_clamped() {
    let key = pes(0xE0, Some(3600), None, &h264_key_au(), false);
    let audio = pes(0xC0, Some(3600), None, &[0xD5; 160], false);

    // elementary_stream_map_length 8 for 14 bytes of entries (the official
    // tool's file), with an ISO 639 descriptor.
    let mut short = vec![
        0, 0, 1, 0xBC, 0x00, 0x18, 0xE1, 0xFF, 0x00, 0x00, 0x00, 0x08,
    ];
    short.extend_from_slice(&[0x1B, 0xE0, 0x00, 0x06, 0x0A, 0x04, b'e', b'n', b'g', 0x00]);
    short.extend_from_slice(&[0x90, 0xC0, 0x00, 0x00, 0x2E, 0xB9, 0x0F, 0x3D]);
    // program_stream_info_length running past the map.
    let mut info_overrun = vec![0, 0, 1, 0xBC, 0x00, 0x0A, 0xE0, 0xFF, 0x01, 0x00];
    info_overrun.extend_from_slice(&[0x1B, 0xE0, 0x00, 0x00, 0, 0, 0, 0]);
    // A vendor descriptor whose length runs past the map: the entry is kept.
    let mut desc_overrun = vec![
        0, 0, 1, 0xBC, 0x00, 0x19, 0xE0, 0xFF, 0x00, 0x02, 0x40, 0x0E,
    ];
    desc_overrun.extend_from_slice(&[0x00, 0x0D, 0x90, 0xC0, 0x00, 0x02, 0x43, 0x0A]);
    desc_overrun.extend_from_slice(&[0x1B, 0xE0, 0x00, 0x40, 0x42, 0x0E, 0x07]);
    desc_overrun.extend_from_slice(&[0xAA, 0xBB, 0xCC, 0xDD]);
    // A map too short for anything.
    let tiny = vec![0, 0, 1, 0xBC, 0x00, 0x01, 0xE0];

    for (name, map, video_ok, audio_ok) in [
        ("short es map", short, true, true),
        ("info overrun", info_overrun, false, false),
        ("descriptor overrun", desc_overrun, true, true),
        ("tiny", tiny, false, false),
    ] {
        let mut s = pack(3600, &[]);
        s.extend(map);
        s.extend(key.clone());
        s.extend(audio.clone());
        let (events, d) = demux(&s);
        let w = warnings(&events);
        assert!(
            w.iter()
                .any(|w| matches!(w, PsError::BadProgramStreamMap { offset: 14, .. })),
            "{name}: {w:?}"
        );
        let streams = d.streams();
        let declared = |id: u8| {
            streams
                .iter()
                .find(|s| s.stream_id == id)
                .and_then(|s| s.stream_type)
        };
        assert_eq!(declared(0xE0).is_some(), video_ok, "{name}");
        assert_eq!(declared(0xC0) == Some(0x90), audio_ok, "{name}");
        // Video is sniffed anyway; audio needs the map.
        let f = frames(&events);
        assert!(f.iter().any(|f| f.codec() == Codec::H264), "{name}");
        assert_eq!(
            f.iter().any(|f| f.codec() == Codec::G711A),
            audio_ok,
            "{name}"
        );
    }
}

#[test]
fn unbounded_video_pes_ends_at_the_next_start_code_or_end_of_access_unit() {
    let mut first = pack(3600, &[]);
    first.extend(h264_psm());
    first.extend(pes(0xE0, Some(3600), None, &h264_key_au(), true));
    let mut second = pack(7200, &[]);
    second.extend(pes(0xE0, Some(7200), None, &annex_b(&[P_SLICE]), true));
    second.extend(pes(0xC0, Some(7200), None, &[0xD5; 80], false));

    // Without end_of_access_unit: the first frame comes out once the next one
    // begins; the second at the end.
    let mut d = PsDemuxer::default();
    let mut events = Vec::new();
    d.push(&first);
    drain(&mut d, &mut events);
    assert!(events.is_empty());
    d.push(&second);
    drain(&mut d, &mut events);
    assert_eq!(frames(&events).len(), 2, "key frame and audio");
    assert_eq!(nals(frames(&events)[0]).len(), 3);
    d.end_of_access_unit();
    drain(&mut d, &mut events);
    let f = frames(&events);
    assert_eq!(f.len(), 3);
    assert_eq!(nals(f[2]), &[Bytes::from_static(P_SLICE)]);

    // With it: each frame comes out at once, and a start code split across
    // pushes is found.
    let mut d = PsDemuxer::default();
    let mut events = Vec::new();
    d.push(&first);
    d.end_of_access_unit();
    drain(&mut d, &mut events);
    assert_eq!(frames(&events).len(), 1);
    assert!(frames(&events)[0].keyframe);
    d.push(&second[..2]);
    d.push(&second[2..]);
    d.end_of_access_unit();
    drain(&mut d, &mut events);
    let f = frames(&events);
    assert_eq!(f.len(), 3);
    assert_eq!(f[1].codec(), Codec::G711A, "audio ends the unbounded PES");
    assert_eq!(f[2].dts, 7200);
    assert!(warnings(&events).is_empty(), "{events:?}");
}

#[test]
fn pes_without_pts_continue_the_access_unit() {
    // Hikvision: SPS, PPS, SEI each in their own PES (only the first with a
    // PTS), the IDR split over three PES mid-NAL, private data in between.
    let sei: &[u8] = &[0x06, 0x05, 0x02, 0xAA, 0xBB, 0x80];
    let big_idr: Vec<u8> = std::iter::once(0x65)
        .chain((0..5000u32).map(|i| (i % 251) as u8 | 1))
        .collect();
    let idr = annex_b(&[&big_idr]);
    let mut s = pack(90_000, &[0xFF, 0xFF, 0, 0, 0, 1]);
    s.extend(system_header());
    s.extend(h264_psm());
    s.extend(pes(
        0xE0,
        Some(90_000),
        None,
        &annex_b(&[samples::H264_SPS_640X360]),
        false,
    ));
    s.extend(pes(0xE0, None, None, &annex_b(&[samples::H264_PPS]), false));
    s.extend(pes(0xE0, None, None, &annex_b(&[sei]), false));
    s.extend(pes(0xE0, None, None, &idr[..2000], false));
    s.extend(private_pes(0xBD, &[1, 2, 3]));
    s.extend(pes(0xE0, None, None, &idr[2000..4000], false));
    s.extend(pes(0xE0, None, None, &idr[4000..], false));
    s.extend(pack(93_600, &[0xFF, 0xFF, 0, 0, 0, 2]));
    s.extend(pes(0xE0, Some(93_600), None, &annex_b(&[P_SLICE]), false));
    s.extend(pes(0xE0, None, None, &annex_b(&[P_SLICE]), false));
    let (events, _) = demux(&s);
    assert!(warnings(&events).is_empty(), "{events:?}");
    let f = frames(&events);
    assert_eq!(f.len(), 2);
    let n = nals(f[0]);
    assert_eq!(n.len(), 4);
    assert_eq!(&n[2][..], sei);
    assert_eq!(&n[3][..], &big_idr[..]);
    assert_eq!((f[0].pts, f[0].dts), (90_000, 90_000));
    assert_eq!(nals(f[1]).len(), 2, "two slices, one picture");
    assert_eq!(f[1].pts, 93_600);
}

#[test]
fn private_and_padding_streams_are_skipped_by_length() {
    let mut s = pack(3600, &[]);
    s.extend(h264_psm());
    // Private data holding what naive scanners take for start codes.
    s.extend(private_pes(
        0xBD,
        &[0, 0, 0, 1, 0, 0, 1, 0xBA, 0x44, 0, 0, 1, 0xE0, 0, 0],
    ));
    s.extend(pes(0xE0, Some(3600), None, &h264_key_au(), false));
    s.extend(private_pes(0xBE, &[0xFF; 300]));
    s.extend(private_pes(0xBF, &[0, 0, 1, 0xC0, 0, 0]));
    s.extend(private_pes(0xBD, &[]));
    s.extend(pack(7200, &[]));
    s.extend(pes(0xE0, Some(7200), None, &annex_b(&[P_SLICE]), false));
    let (events, d) = demux(&s);
    assert!(warnings(&events).is_empty(), "{events:?}");
    assert_eq!(frames(&events).len(), 2);
    let st = d.stats();
    assert_eq!((st.skipped_pes, st.skipped_bytes, st.pes), (4, 0, 2));
}

#[test]
fn without_a_map_h264_and_h265_are_recognised() {
    // H.264 (no map at all).
    let mut s = pack(3600, &[]);
    s.extend(pes(0xE0, Some(3600), None, &annex_b(&[P_SLICE]), false));
    s.extend(pes(0xE0, Some(7200), None, &h264_key_au(), false));
    s.extend(pes(0xE0, Some(10_800), None, &annex_b(&[P_SLICE]), false));
    let (events, d) = demux(&s);
    let f = frames(&events);
    assert_eq!(
        f.len(),
        2,
        "the P-frame before the parameter sets is dropped"
    );
    assert_eq!(f[0].codec(), Codec::H264);
    assert!(f[0].keyframe);
    assert_eq!(d.stats().streams[0].dropped_frames, 1);

    // H.265, PES before the first map (which comes later and agrees).
    let mut s = pack(3600, &[]);
    s.extend(pes(
        0xE0,
        Some(3600),
        None,
        &annex_b(&[
            samples::H265_VPS,
            samples::H265_SPS,
            samples::H265_PPS,
            H265_IDR,
        ]),
        false,
    ));
    s.extend(pack(7200, &[]));
    s.extend(psm(&[(0x24, 0xE0, &[])]));
    s.extend(pes(0xE0, Some(7200), None, &annex_b(&[H265_TRAIL]), false));
    let (events, _) = demux(&s);
    assert!(warnings(&events).is_empty(), "{events:?}");
    let f = frames(&events);
    assert_eq!(f.len(), 2);
    assert!(f[0].keyframe && !f[1].keyframe);
    let v = video(f[0]);
    assert_eq!((v.codec, v.width, v.height), (Codec::H265, 640, 360));
    assert!(Arc::ptr_eq(&f[0].track, &f[1].track));
}

#[test]
fn adts_declared_as_g711_is_aac() {
    // Dahua: map says G.711A (0x90), payload is ADTS (AAC LC, 16 kHz, mono).
    let mut audio = Vec::new();
    for i in 0..3u8 {
        audio.extend(adts(8, 1, &[0x21, 0x10 + i, 0x05, 0x60]));
    }
    let mut s = pack(90_000, &[]);
    s.extend(psm(&[(0x90, 0xC0, &[])]));
    s.extend(pes(0xC0, Some(90_000), None, &audio, false));
    // No map, no PSM: ADTS recognised on its own.
    s.extend(pes(
        0xC1,
        Some(90_000),
        None,
        &adts(11, 2, &[1, 2, 3]),
        false,
    ));
    let (events, d) = demux(&s);
    assert!(warnings(&events).is_empty(), "{events:?}");
    let f = frames(&events);
    assert_eq!(f.len(), 4);
    let a = match f[0].track.as_ref() {
        TrackInfo::Audio(a) => a,
        TrackInfo::Video(_) => panic!(),
    };
    assert_eq!(
        (a.codec, a.sample_rate, a.channels),
        (Codec::Aac, 16_000, 1)
    );
    assert_eq!(a.config.as_deref(), Some(&[0x14, 0x08][..]));
    let pts: Vec<i64> = f[..3].iter().map(|f| f.pts).collect();
    assert_eq!(pts, [16_000, 16_000 + 1024, 16_000 + 2048]);
    assert_eq!(&audio_payload(f[1])[..], &[0x21, 0x11, 0x05, 0x60]);
    assert!(Arc::ptr_eq(&f[0].track, &f[2].track));
    assert_eq!(f[3].pts, 8000);
    let streams = d.streams();
    assert_eq!(streams[0].codec, Some(Codec::Aac));
    assert_eq!(streams[0].stream_type, Some(0x90));
}

#[test]
fn adts_frames_split_across_pes() {
    let frames_bytes: Vec<u8> = (0..4u8).flat_map(|i| adts(11, 1, &[i + 1; 100])).collect();
    let mut s = pack(0, &[]);
    s.extend(psm(&[(0x0F, 0xC0, &[])]));
    s.extend(pes(0xC0, Some(9000), None, &frames_bytes[..150], false));
    // The second PES's PTS is that of the first frame starting in it.
    s.extend(pes(
        0xC0,
        Some(9000 + 2 * 11_520),
        None,
        &frames_bytes[150..],
        false,
    ));
    let (events, _) = demux(&s);
    assert!(warnings(&events).is_empty(), "{events:?}");
    let f = frames(&events);
    assert_eq!(f.len(), 4);
    for (i, fr) in f.iter().enumerate() {
        assert_eq!(&audio_payload(fr)[..], &[i as u8 + 1; 100][..]);
        assert_eq!(fr.pts, 800 + 1024 * i as i64);
    }
}

#[test]
fn audio_pes_with_repeated_pts_do_not_overlap() {
    let mut s = pack(0, &[]);
    s.extend(psm(&[(0x91, 0xC0, &[])]));
    for pts in [90_000, 90_090, 90_090, 90_090, 99_000] {
        s.extend(pes(0xC0, Some(pts), Some(pts - 3600), &[0xFF; 80], false));
    }
    let (events, _) = demux(&s);
    let pts: Vec<i64> = frames(&events).iter().map(|f| f.pts).collect();
    assert_eq!(pts, [8000, 8080, 8160, 8240, 8800]);
    assert_eq!(frames(&events)[0].codec(), Codec::G711U);
}

#[test]
fn mpeg1_pes_header() {
    let mut s = pack(0, &[]);
    s.extend(psm(&[(0x90, 0xC0, &[])]));
    s.extend(mpeg1_pes(0xC0, 180_000, 176_400, &[0xD5; 160]));
    let mut no_pts = vec![0, 0, 1, 0xC0, 0, 6, 0xFF, 0x0F];
    no_pts.extend_from_slice(&[0x55; 4]);
    s.extend(no_pts);
    let (events, _) = demux(&s);
    assert!(warnings(&events).is_empty(), "{events:?}");
    let f = frames(&events);
    assert_eq!(f.len(), 2);
    assert_eq!((f[0].pts, f[0].payload_len()), (16_000, 160));
    assert_eq!(
        (f[1].pts, &audio_payload(f[1])[..]),
        (16_160, &[0x55; 4][..])
    );
}

#[test]
fn stray_pack_start_code_is_ignored() {
    let mut s = pack(3600, &[]);
    s.extend(h264_psm());
    s.extend([0, 0, 1, 0xBA]);
    s.extend(pes(0xE0, Some(3600), None, &h264_key_au(), false));
    let (events, d) = demux(&s);
    assert!(warnings(&events).is_empty(), "{events:?}");
    assert_eq!(frames(&events).len(), 1);
    assert_eq!(d.stats().stray_pack_starts, 1);
}

#[test]
fn garbage_is_skipped_and_reported_with_its_offset() {
    let mut s = pack(3600, &[]);
    s.extend(h264_psm());
    let garbage_at = s.len() as u64;
    s.extend([0x12, 0x34, 0, 0, 1, 0x09, 0x10, 0, 0]);
    s.extend(pes(0xE0, Some(3600), None, &h264_key_au(), false));
    // Zero bytes before a start code are not worth a warning.
    s.extend([0, 0, 0, 0]);
    s.extend(pack(7200, &[]));
    let (events, d) = demux(&s);
    let w = warnings(&events);
    assert_eq!(
        w,
        [&PsError::Resync {
            offset: garbage_at,
            skipped: 9
        }]
    );
    assert_eq!(frames(&events).len(), 1);
    let st = d.stats();
    assert_eq!((st.resyncs, st.skipped_bytes), (1, 13));
}

#[test]
fn end_of_access_unit_cuts_a_pes_then_resynchronises() {
    let mut key = pack(3600, &[]);
    key.extend(h264_psm());
    key.extend(pes(0xE0, Some(3600), None, &h264_key_au(), false));
    let mut p1 = pack(7200, &[]);
    p1.extend(pes(
        0xE0,
        Some(7200),
        None,
        &annex_b(&[P_SLICE, P_SLICE]),
        false,
    ));
    let mut p2 = pack(10_800, &[]);
    p2.extend(pes(0xE0, Some(10_800), None, &annex_b(&[P_SLICE]), false));

    // Lost packet: the next frame starts with a pack header.
    let mut d = PsDemuxer::default();
    let mut events = Vec::new();
    d.push(&key);
    d.end_of_access_unit();
    d.push(&p1[..p1.len() - 4]);
    d.end_of_access_unit();
    d.push(&p2);
    d.end_of_access_unit();
    drain(&mut d, &mut events);
    let f = frames(&events);
    assert_eq!(f.len(), 3, "{events:?}");
    assert_eq!(f[1].payload_len(), 2 * P_SLICE.len() - 4);
    assert_eq!(f[2].pts, 10_800);
    assert!(matches!(
        warnings(&events)[..],
        [PsError::TruncatedPes {
            missing: 4,
            stream_id: 0xE0,
            ..
        }]
    ));

    // Marker bit set too early: the rest of the PES follows and is skipped.
    let mut d = PsDemuxer::default();
    let mut events = Vec::new();
    d.push(&key);
    d.end_of_access_unit();
    d.push(&p1[..p1.len() - 6]);
    d.end_of_access_unit();
    d.push(&p1[p1.len() - 6..]);
    d.push(&p2);
    d.end_of_access_unit();
    drain(&mut d, &mut events);
    let f = frames(&events);
    assert_eq!(f.len(), 3, "{events:?}");
    assert_eq!(f[2].pts, 10_800);
    assert_eq!(nals(f[2]).len(), 1);
    assert_eq!(d.stats().skipped_bytes, 6);

    // A header cut short.
    let mut d = PsDemuxer::default();
    let mut events = Vec::new();
    d.push(&key);
    d.push(&p1[..10]);
    d.end_of_access_unit();
    d.push(&p2);
    d.end_of_access_unit();
    drain(&mut d, &mut events);
    assert_eq!(frames(&events).len(), 2);
    assert!(matches!(
        warnings(&events)[..],
        [PsError::TruncatedHeader {
            what: "pack header",
            ..
        }]
    ));
}

#[test]
fn track_is_shared_until_parameter_sets_change() {
    let mut s = Vec::new();
    let pps: &[u8] = &[0x68, 0xEE, 0x3C, 0x80];
    let aus = [
        annex_b(&[samples::H264_SPS_640X360, samples::H264_PPS, IDR]),
        annex_b(&[P_SLICE]),
        annex_b(&[samples::H264_SPS_640X360, samples::H264_PPS, IDR]),
        annex_b(&[HIK_SPS_640X480, pps, IDR]),
        annex_b(&[P_SLICE]),
    ];
    for (i, au) in aus.iter().enumerate() {
        let pts = 3600 * (i as u64 + 1);
        s.extend(pack(pts, &[]));
        s.extend(pes(0xE0, Some(pts), None, au, false));
    }
    let (events, _) = demux(&s);
    let f = frames(&events);
    assert_eq!(f.len(), 5);
    assert!(Arc::ptr_eq(&f[0].track, &f[1].track));
    assert!(Arc::ptr_eq(&f[0].track, &f[2].track));
    assert!(!Arc::ptr_eq(&f[2].track, &f[3].track));
    assert!(Arc::ptr_eq(&f[3].track, &f[4].track));
    assert_eq!((video(f[3]).width, video(f[3]).height), (640, 480));
    assert_eq!(&video(f[3]).pps[..], pps);
}

#[test]
fn oversize_access_unit_is_dropped() {
    let config = PsConfig {
        max_access_unit_bytes: 4096,
        ..PsConfig::default()
    };
    let big: Vec<u8> = std::iter::once(0x65)
        .chain(std::iter::repeat_n(0x11, 5000))
        .collect();
    let mut s = pack(3600, &[]);
    s.extend(h264_psm());
    s.extend(pes(
        0xE0,
        Some(3600),
        None,
        &annex_b(&[samples::H264_SPS_640X360, samples::H264_PPS, &big]),
        false,
    ));
    s.extend(pes(0xE0, Some(7200), None, &h264_key_au(), false));
    // An unbounded PES that never ends is bounded too.
    s.extend(pes(0xE0, Some(10_800), None, &vec![0x11; 10_000], true));
    let events = demux_chunked(&s, &[333], config);
    let f = frames(&events);
    assert_eq!(f.len(), 1);
    assert_eq!(f[0].pts, 7200);
    let w = warnings(&events);
    assert_eq!(w.len(), 2, "{w:?}");
    assert!(matches!(
        w[0],
        PsError::AccessUnitTooLarge {
            offset: 38,
            stream_id: 0xE0,
            limit: 4096,
        }
    ));
}

#[test]
fn queue_and_input_are_bounded() {
    let config = PsConfig {
        max_buffered_bytes: 64 * 1024,
        max_queued_events: 16,
        ..PsConfig::default()
    };
    let mut d = PsDemuxer::new(config);
    // Garbage without start codes: nothing accumulates.
    d.push(&vec![0x47; 3 << 20]);
    assert!(d.buffered_bytes() <= 4, "{}", d.buffered_bytes());
    // A map announcing 65,535 bytes waits for them within one header.
    d.push(&[0, 0, 1, 0xBC, 0xFF, 0xFF]);
    d.push(&vec![0x47; 200_000]);
    assert!(
        d.buffered_bytes() <= 65_541 + 64 * 1024,
        "{}",
        d.buffered_bytes()
    );
    // Frames nobody polls are bounded by bytes and count.
    let mut d = PsDemuxer::new(PsConfig {
        max_buffered_bytes: 64 * 1024,
        max_queued_events: 16,
        ..PsConfig::default()
    });
    let mut s = pack(0, &[]);
    s.extend(psm(&[(0x90, 0xC0, &[])]));
    for i in 0..200u64 {
        s.extend(pes(0xC0, Some(i * 3600), None, &[0xD5; 2000], false));
    }
    d.push(&s);
    assert!(d.buffered_bytes() <= 64 * 1024 + 16);
    let st = d.stats();
    assert_eq!(st.streams[0].frames, 16);
    assert!(st.dropped_events > 0);
}

#[test]
fn timestamps_unwrap_across_the_33_bit_wrap() {
    let start = (1u64 << 33) - 7200;
    let mut s = pack(0, &[]);
    s.extend(h264_psm());
    for i in 0..5u64 {
        let pts = (start + 3600 * i) & ((1 << 33) - 1);
        let au = if i == 0 {
            h264_key_au()
        } else {
            annex_b(&[P_SLICE])
        };
        // PTS 2 frames after DTS.
        let dts = (pts + (1 << 33) - 7200) & ((1 << 33) - 1);
        s.extend(pes(0xE0, Some(pts), Some(dts), &au, false));
        s.extend(pes(0xC0, Some(pts), None, &[0xD5; 320], false));
    }
    let (events, _) = demux(&s);
    assert!(warnings(&events).is_empty(), "{events:?}");
    let v: Vec<(i64, i64)> = frames(&events)
        .iter()
        .filter(|f| f.is_video())
        .map(|f| (f.dts, f.pts))
        .collect();
    let s0 = start as i64;
    assert_eq!(
        v,
        (0..5)
            .map(|i| (s0 - 7200 + 3600 * i, s0 + 3600 * i))
            .collect::<Vec<_>>()
    );
    let a: Vec<i64> = frames(&events)
        .iter()
        .filter(|f| !f.is_video())
        .map(|f| f.pts)
        .collect();
    let a0 = s0 * 8000 / 90_000;
    assert_eq!(a, (0..5).map(|i| a0 + 320 * i).collect::<Vec<_>>());
    check_timelines(&events);
}

#[test]
fn unsupported_stream_type_is_skipped_and_reported_once() {
    let mut s = Vec::new();
    for i in 0..3u64 {
        s.extend(pack(3600 * i, &[]));
        s.extend(psm(&[(0x80, 0xE0, &[]), (0x90, 0xC0, &[])]));
        s.extend(pes(0xE0, Some(3600 * i), None, &h264_key_au(), false));
        s.extend(pes(0xC0, Some(3600 * i), None, &[0xD5; 80], false));
    }
    let (events, d) = demux(&s);
    let w = warnings(&events);
    assert!(
        matches!(
            w[..],
            [PsError::UnsupportedStreamType {
                stream_id: 0xE0,
                stream_type: 0x80,
                ..
            }]
        ),
        "{w:?}"
    );
    assert!(frames(&events).iter().all(|f| !f.is_video()));
    assert_eq!(frames(&events).len(), 3);
    assert_eq!(d.stats().streams[0].pes, 3);
}

#[test]
fn errors_name_their_offset() {
    let e = PsError::TruncatedPes {
        offset: 10_512,
        stream_id: 0xE0,
        missing: 4,
    };
    assert_eq!(
        e.to_string(),
        "PES of stream 0xe0 at byte 10512 cut short by the end of the access unit: 4 bytes missing"
    );
}

#[test]
fn fuzz_entry_on_real_captures() {
    for file in [
        "lal_hik_seq0-8.ps",
        "lal_hik_seq291_iframe_start.ps",
        "js_hik_h265_start_a.ps",
        "js_hik_h265_start_b.ps",
        "srs_utest_hik_rtp0_first256.bin",
    ] {
        let data = fixture(&format!("{HIK}/{file}"));
        for control in [0x00, 0x13, 0x5F, 0xF1] {
            let mut input = vec![control];
            input.extend_from_slice(&data);
            fuzz_entry(&input);
        }
    }
    let mut g711 = vec![0x27];
    g711.extend_from_slice(&fixture(G711_FILE)[..20_000]);
    fuzz_entry(&g711);
}

// --- properties ----------------------------------------------------------------------

/// Real program streams (and real H.264 in a Hikvision-style PS), each small
/// enough to be demuxed many times.
fn corpus() -> Vec<Vec<u8>> {
    let mut lal = fixture(&format!("{HIK}/lal_hik_seq0-8.ps"));
    lal.extend(fixture(&format!("{HIK}/lal_hik_seq291_iframe_start.ps")));
    let srs = parse_rtp(&fixture(&format!("{HIK}/srs_utest_hik_rtp0_first256.bin"))).payload;
    let (synthetic, _) = hikvision_style_ps(&fixture("h264-es/128x128.h264")[..40_000]);
    vec![
        lal,
        fixture(&format!("{HIK}/js_hik_h265_start_a.ps")),
        fixture(&format!("{HIK}/js_hik_h265_start_b.ps")),
        srs,
        fixture(G711_FILE)[..60_000].to_vec(),
        synthetic,
    ]
}

fn corpus_cached() -> &'static [Vec<u8>] {
    static CORPUS: std::sync::OnceLock<Vec<Vec<u8>>> = std::sync::OnceLock::new();
    CORPUS.get_or_init(corpus)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn any_chunking_gives_the_same_events(
        which in 0usize..6,
        sizes in proptest::collection::vec(1usize..3000, 1..20),
    ) {
        let data = &corpus_cached()[which];
        let whole = demux_chunked(data, &[usize::MAX], PsConfig::default());
        let chunked = demux_chunked(data, &sizes, PsConfig::default());
        prop_assert!(!frames(&whole).is_empty() || which == 1);
        prop_assert_eq!(whole, chunked);
    }

    #[test]
    fn any_chunking_of_rtp_packets_gives_the_same_events(
        sizes in proptest::collection::vec(1usize..700, 1..10),
    ) {
        let packets = lal_packets();
        let mut d = PsDemuxer::default();
        let reference = demux_rtp(&mut d, &packets);
        // Same end-of-access-unit points, payloads split differently.
        let mut d = PsDemuxer::default();
        let mut out = Vec::new();
        let mut k = 0;
        let mut last_ts = None;
        for p in &packets {
            if last_ts.is_some_and(|t| t != p.timestamp) {
                d.end_of_access_unit();
            }
            last_ts = Some(p.timestamp);
            let mut rest = &p.payload[..];
            while !rest.is_empty() {
                let n = sizes[k % sizes.len()].min(rest.len());
                k += 1;
                d.push(&rest[..n]);
                rest = &rest[n..];
                drain(&mut d, &mut out);
            }
            if p.marker {
                d.end_of_access_unit();
            }
        }
        d.end_of_access_unit();
        drain(&mut d, &mut out);
        prop_assert_eq!(reference, out);
    }

    #[test]
    fn random_bytes_never_panic(
        data in proptest::collection::vec(any::<u8>(), 0..4096),
        control in any::<u8>(),
    ) {
        let mut input = vec![control];
        input.extend_from_slice(&data);
        fuzz_entry(&input);
        // Random bytes after a valid start.
        let mut s = pack(0, &[]);
        s.extend(h264_psm());
        s.extend(&data);
        let events = demux_chunked(&s, &[17, 1, 400], PsConfig::default());
        check_timelines(&events);
    }

    #[test]
    fn mutated_real_streams_never_panic(
        which in 0usize..6,
        edits in proptest::collection::vec((any::<prop::sample::Index>(), 0u8..3, any::<u8>()), 1..40),
        control in any::<u8>(),
    ) {
        let mut data = corpus_cached()[which].clone();
        if which == 4 || which == 5 {
            data.truncate(12_000);
        }
        for (at, kind, byte) in edits {
            if data.is_empty() {
                break;
            }
            let i = at.index(data.len());
            match kind {
                0 => data[i] = byte,
                1 => data.insert(i, byte),
                _ => {
                    data.remove(i);
                }
            }
        }
        let events = demux_chunked(&data, &[usize::MAX], PsConfig::default());
        check_timelines(&events);
        for f in frames(&events) {
            prop_assert!(f.payload_len() <= PsConfig::default().max_access_unit_bytes);
        }
        let mut input = vec![control];
        input.extend_from_slice(&data);
        fuzz_entry(&input);
    }
}
