//! GB28181 ingest cost: PS demuxing throughput, the whole per-packet path
//! (RTP parse → reorder buffer → frame boundary → PS demux), and the CPU time
//! from a frame's last RTP packet to its FLV tag (the gateway-added latency
//! that is not network or scheduling).
//!
//! Input: `h264-es/240x320.h264` from the real fixtures (729 frames, 25
//! fps), muxed to Hikvision-style PS by camgate's muxer (6-byte stuffing
//! counter, 0xBD private PES) and packetised to 1400-byte RTP payloads.
//!
//! `cargo bench --bench gb_ingest -- --warm-up-time 1 --measurement-time 3`

use std::hint::black_box;
use std::path::PathBuf;
use std::time::Instant;

use bytes::Bytes;
use camgate::codec::es::{FrameRate, VideoEs};
use camgate::egress::flv::FlvMuxer;
use camgate::egress::ps::{PsMuxOptions, PsMuxer};
use camgate::ingest::ps::{PsConfig, PsDemuxer, PsEvent};
use camgate::ingest::rtp::{
    FrameBoundary, Packetizer, PacketizerConfig, ReorderBuffer, ReorderConfig, RtpPacket,
};
use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};

fn fixtures() -> PathBuf {
    std::env::var_os("CAMGATE_REAL_FIXTURES")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/fixtures"))
        })
}

/// (one PS pack per frame, RTP packets per frame).
fn input() -> (Vec<Bytes>, Vec<Vec<Bytes>>) {
    let es = VideoEs::read_file(&fixtures().join("h264-es/240x320.h264"))
        .expect("fixture h264-es/240x320.h264 (set CAMGATE_REAL_FIXTURES)");
    let mut mux = PsMuxer::new(PsMuxOptions {
        stuffing_counter: Some(6),
        private_bd: true,
        ..PsMuxOptions::default()
    })
    .expect("mux options");
    let mut rtp = Packetizer::new(PacketizerConfig {
        ssrc: 200_000_101,
        ..PacketizerConfig::default()
    })
    .expect("packetizer");
    let mut packs = Vec::new();
    let mut packets = Vec::new();
    for frame in es.frames(FrameRate::fps(25).expect("fps")) {
        let pack = mux.mux(&frame).expect("mux");
        let mut p = Vec::new();
        rtp.packetize(&pack, frame.dts as u32, &mut p);
        packs.push(pack);
        packets.push(p);
    }
    (packs, packets)
}

fn drain(demux: &mut PsDemuxer) -> usize {
    let mut frames = 0;
    while let Some(ev) = demux.poll() {
        if let PsEvent::Frame(f) = ev {
            black_box(&f);
            frames += 1;
        }
    }
    frames
}

fn bench(c: &mut Criterion) {
    let (packs, packets) = input();
    let ps_bytes: usize = packs.iter().map(Bytes::len).sum();
    let stream: Vec<u8> = packs.iter().flat_map(|p| p.iter().copied()).collect();

    let mut g = c.benchmark_group("gb_ingest");
    g.throughput(Throughput::Bytes(ps_bytes as u64));
    g.bench_function("ps_demux_729_frames", |b| {
        b.iter(|| {
            let mut demux = PsDemuxer::new(PsConfig::default());
            let mut frames = 0;
            for chunk in stream.chunks(1400) {
                demux.push(chunk);
                frames += drain(&mut demux);
            }
            demux.end_of_access_unit();
            frames += drain(&mut demux);
            black_box(frames)
        })
    });
    g.bench_function("rtp_to_frames_729_frames", |b| {
        b.iter(|| {
            let now = Instant::now();
            let mut reorder = ReorderBuffer::new(ReorderConfig::default());
            let mut boundary = FrameBoundary::default();
            let mut demux = PsDemuxer::new(PsConfig::default());
            let mut frames = 0;
            for frame in &packets {
                for raw in frame {
                    let p = RtpPacket::parse(raw.clone()).expect("rtp");
                    reorder.push(p, now);
                    while let Some(p) = reorder.poll(now) {
                        let bd = boundary.on_packet(&p);
                        if bd.previous_frame_ended {
                            demux.end_of_access_unit();
                        }
                        demux.push(p.payload());
                        if bd.ends_frame {
                            demux.end_of_access_unit();
                        }
                    }
                    frames += drain(&mut demux);
                }
            }
            black_box(frames)
        })
    });
    g.finish();

    // Added latency: state holds every packet of frames 0..k and all but the
    // last packet of frame k; the measured step is that last packet → Frame
    // → FLV tag. k = 100 (a P-frame) and 150 (a keyframe, 5–6 packets).
    let mut g = c.benchmark_group("gb_added_latency");
    for k in [100usize, 150] {
        let name = format!(
            "last_packet_to_flv_tag_frame_{k}_{}_packets",
            packets[k].len()
        );
        g.bench_function(name, |b| {
            b.iter_batched(
                || {
                    let now = Instant::now();
                    let mut boundary = FrameBoundary::default();
                    let mut demux = PsDemuxer::new(PsConfig::default());
                    let mut flv = FlvMuxer::new();
                    let mut tags = Vec::new();
                    let feed = |p: &RtpPacket, b: &mut FrameBoundary, d: &mut PsDemuxer| {
                        let bd = b.on_packet(p);
                        if bd.previous_frame_ended {
                            d.end_of_access_unit();
                        }
                        d.push(p.payload());
                        if bd.ends_frame {
                            d.end_of_access_unit();
                        }
                    };
                    for frame in &packets[..k] {
                        for raw in frame {
                            let p = RtpPacket::parse(raw.clone()).expect("rtp");
                            feed(&p, &mut boundary, &mut demux);
                        }
                        while let Some(ev) = demux.poll() {
                            if let PsEvent::Frame(f) = ev {
                                tags.clear();
                                let _ = flv.push(&f, &mut tags);
                            }
                        }
                    }
                    let (last, head) = packets[k].split_last().expect("packets");
                    for raw in head {
                        let p = RtpPacket::parse(raw.clone()).expect("rtp");
                        feed(&p, &mut boundary, &mut demux);
                    }
                    let _ = now;
                    (boundary, demux, flv, last.clone())
                },
                |(mut boundary, mut demux, mut flv, last)| {
                    let p = RtpPacket::parse(last).expect("rtp");
                    let bd = boundary.on_packet(&p);
                    demux.push(p.payload());
                    if bd.ends_frame {
                        demux.end_of_access_unit();
                    }
                    let mut tags = Vec::new();
                    let mut out = 0;
                    while let Some(ev) = demux.poll() {
                        if let PsEvent::Frame(f) = ev {
                            let _ = flv.push(&f, &mut tags);
                            out += 1;
                        }
                    }
                    assert_eq!(out, 1, "the frame leaves on its last packet");
                    black_box(tags)
                },
                BatchSize::LargeInput,
            )
        });
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
