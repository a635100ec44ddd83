//! FLV muxing throughput: frames → shared tag bodies (once per stream), and the
//! per-viewer framing cost.
//!
//! `cargo bench --bench flv`

use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use camgate::codec::Codec;
use camgate::egress::flv::{FlvMuxer, FlvTag, FlvWriter};
use camgate::media::{AudioTrack, Frame, FrameData, TrackInfo, VideoTrack};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};

const SPS: &[u8] = &[
    0x67, 0x64, 0x00, 0x1e, 0xac, 0xd9, 0x40, 0xa0, 0x2f, 0xf9, 0x70, 0x11, 0x00, 0x00, 0x03, 0x00,
    0x01, 0x00, 0x00, 0x03, 0x00, 0x32, 0x0f, 0x16, 0x2d, 0x96,
];
const PPS: &[u8] = &[0x68, 0xeb, 0xe3, 0xcb, 0x22, 0xc0];

/// Two seconds of a 4 Mbit/s-like camera stream: a 60 KB IDR then 49 P-frames
/// of 15 KB, each split into 4 slices, and 100 G.711 frames of 160 bytes.
fn gop() -> Vec<Frame> {
    let video = Arc::new(TrackInfo::Video(
        VideoTrack::h264(Bytes::from_static(SPS), Bytes::from_static(PPS)).expect("SPS"),
    ));
    let audio = Arc::new(TrackInfo::Audio(AudioTrack::g711(Codec::G711A, 8000, 1)));
    let slices = |size: usize, first: u8| -> Vec<Bytes> {
        (0..4)
            .map(|i| {
                let mut b = BytesMut::zeroed(size / 4);
                b[0] = if i == 0 { first } else { first & 0x7f };
                b.freeze()
            })
            .collect()
    };
    let mut frames = Vec::new();
    for i in 0..50i64 {
        let key = i == 0;
        frames.push(Frame {
            track: video.clone(),
            pts: i * 3600,
            dts: i * 3600,
            keyframe: key,
            data: FrameData::Nals(slices(
                if key { 60_000 } else { 15_000 },
                if key { 0x65 } else { 0x41 },
            )),
        });
        for a in 0..2i64 {
            let t = (i * 2 + a) * 160;
            frames.push(Frame {
                track: audio.clone(),
                pts: t,
                dts: t,
                keyframe: true,
                data: FrameData::Audio(Bytes::from(vec![0xd5u8; 160])),
            });
        }
    }
    frames
}

fn mux(frames: &[Frame]) -> Vec<FlvTag> {
    let mut m = FlvMuxer::new();
    let mut tags = Vec::with_capacity(frames.len() + 2);
    for f in frames {
        m.push(f, &mut tags).expect("mux");
    }
    tags
}

fn bench(c: &mut Criterion) {
    let frames = gop();
    let bytes: u64 = frames.iter().map(|f| f.payload_len() as u64).sum();
    let mut g = c.benchmark_group("flv");
    g.throughput(Throughput::Bytes(bytes));
    g.bench_function("mux_once_per_stream/2s_gop_4mbps", |b| {
        b.iter(|| std::hint::black_box(mux(&frames)));
    });
    let tags = mux(&frames);
    for viewers in [1usize, 100] {
        g.bench_function(format!("frame_for_viewers/{viewers}"), |b| {
            let mut writers: Vec<FlvWriter> = (0..viewers).map(|_| FlvWriter::new()).collect();
            b.iter(|| {
                for t in &tags {
                    for w in &mut writers {
                        std::hint::black_box(w.write(t));
                    }
                }
            });
        });
    }
    g.finish();
    println!(
        "flv: one bench iteration = {} frames ({} video), {:.1} MB of payload",
        frames.len(),
        frames.iter().filter(|f| f.is_video()).count(),
        bytes as f64 / 1e6
    );
}

criterion_group!(benches, bench);
criterion_main!(benches);
