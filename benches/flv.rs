//! FLV muxing throughput.
//!
//! One iteration feeds two seconds of a 25 fps H.264 + G.711 camera stream
//! (one GOP, 150 frames, ~0.81 MB of payload) through what the FLV output does
//! per frame: `FlvMuxer::push` once per stream, then `FlvWriter::write` once per
//! tag per viewer. Throughput is the stream's *input* payload per second.
//!
//! `cargo bench --bench flv -- --warm-up-time 1 --measurement-time 3`
//!
//! Not measured here: the fan-out of tags to viewers (see `benches/hub.rs`),
//! the viewer tasks, and the socket writes.

use std::hint::black_box;
use std::sync::Arc;

use bytes::Bytes;
use camgate::codec::Codec;
use camgate::egress::flv::{FlvMuxer, FlvTag, FlvWriter};
use camgate::media::{AudioTrack, Frame, FrameData, TrackInfo, VideoTrack};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};

/// A 640x360 High-profile x264 stream's parameter sets.
use camgate::codec::samples::{H264_PPS as PPS, H264_SPS_640X360 as SPS};

const FPS: i64 = 25;
const GOP: i64 = 50;
const KEYFRAME_BYTES: usize = 60_000;
const P_FRAME_BYTES: usize = 15_000;
const SLICES: usize = 4;
const G711_BYTES: usize = 160;

/// Pseudo-random bytes (xorshift64), so payloads look like compressed video.
fn noise(len: usize, seed: &mut u64) -> Vec<u8> {
    (0..len)
        .map(|_| {
            *seed ^= *seed << 13;
            *seed ^= *seed >> 7;
            *seed ^= *seed << 17;
            *seed as u8
        })
        .collect()
}

/// `total` bytes as `SLICES` slice NAL units with NAL header `header`.
fn slices(total: usize, header: u8, seed: &mut u64) -> Vec<Bytes> {
    (0..SLICES)
        .map(|_| {
            let mut n = noise(total / SLICES, seed);
            n[0] = header;
            Bytes::from(n)
        })
        .collect()
}

/// One GOP in arrival order: each video access unit followed by the two
/// 20 ms G.711 frames covering its 40 ms. The keyframe carries SPS and PPS
/// in-band, as Hikvision/Dahua cameras send them.
fn gop() -> Vec<Frame> {
    let video = Arc::new(TrackInfo::Video(
        VideoTrack::h264(Bytes::from_static(SPS), Bytes::from_static(PPS)).expect("SPS"),
    ));
    let audio = Arc::new(TrackInfo::Audio(AudioTrack::g711(Codec::G711A, 8000, 1)));
    let mut seed = 0x9e37_79b9_7f4a_7c15;
    let mut frames = Vec::new();
    for i in 0..GOP {
        let key = i == 0;
        let nals = if key {
            let mut n = vec![Bytes::from_static(SPS), Bytes::from_static(PPS)];
            n.extend(slices(KEYFRAME_BYTES, 0x65, &mut seed));
            n
        } else {
            slices(P_FRAME_BYTES, 0x41, &mut seed)
        };
        let t = i * 90_000 / FPS;
        frames.push(Frame {
            track: video.clone(),
            pts: t,
            dts: t,
            keyframe: key,
            data: FrameData::Nals(nals),
            received: None,
        });
        for a in 0..2 {
            let t = (i * 2 + a) * G711_BYTES as i64;
            frames.push(Frame {
                track: audio.clone(),
                pts: t,
                dts: t,
                keyframe: true,
                data: FrameData::Audio(Bytes::from(noise(G711_BYTES, &mut seed))),
                received: None,
            });
        }
    }
    frames
}

/// What the stream's FLV task and its viewers do for one GOP: mux each frame
/// once, then frame each resulting tag for every viewer.
fn mux_and_write(
    frames: &[Frame],
    muxer: &mut FlvMuxer,
    tags: &mut Vec<FlvTag>,
    writers: &mut [FlvWriter],
) {
    for f in frames {
        tags.clear();
        muxer.push(f, tags).expect("mux");
        for t in tags.iter() {
            for w in writers.iter_mut() {
                black_box(w.write(t));
            }
        }
    }
}

fn bench(c: &mut Criterion) {
    let frames = gop();
    let payload: u64 = frames.iter().map(|f| f.payload_len() as u64).sum();
    let video = frames.iter().filter(|f| f.is_video()).count();
    println!(
        "flv: one iteration = {} frames ({video} H.264 access units, {} G.711 frames), \
         {payload} bytes of payload = {:.2} Mbit/s over {} s",
        frames.len(),
        frames.len() - video,
        payload as f64 * 8.0 / (GOP / FPS) as f64 / 1e6,
        GOP / FPS,
    );

    let mut g = c.benchmark_group("flv");
    g.throughput(Throughput::Bytes(payload));

    // The muxer and writers persist across iterations, as on a live stream
    // (the sequence header is emitted once). Timestamps repeat every
    // iteration; that does not change the code path.
    for viewers in [1usize, 100] {
        g.bench_function(format!("push_and_write/{viewers}_viewers"), |b| {
            let mut muxer = FlvMuxer::new();
            let mut tags = Vec::new();
            let mut writers: Vec<FlvWriter> = (0..viewers).map(|_| FlvWriter::new()).collect();
            b.iter(|| mux_and_write(&frames, &mut muxer, &mut tags, &mut writers));
        });
    }

    // The two halves separately.
    g.bench_function("push_only", |b| {
        let mut muxer = FlvMuxer::new();
        let mut tags = Vec::new();
        b.iter(|| mux_and_write(&frames, &mut muxer, &mut tags, &mut []));
    });
    let mut tags = Vec::new();
    let mut muxer = FlvMuxer::new();
    for f in &frames {
        muxer.push(f, &mut tags).expect("mux");
    }
    let tags: Vec<FlvTag> = tags.into_iter().filter(|t| !t.sequence_header).collect();
    assert_eq!(tags.len(), frames.len());
    g.bench_function("write_only/100_viewers", |b| {
        let mut writers: Vec<FlvWriter> = (0..100).map(|_| FlvWriter::new()).collect();
        b.iter(|| {
            for t in &tags {
                for w in &mut writers {
                    black_box(w.write(t));
                }
            }
        });
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
