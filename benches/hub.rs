//! Hub fan-out: one publisher, 1,000 subscribers. Reports the publish cost per
//! frame with every subscriber draining, and the memory one subscriber costs.
//!
//! `cargo bench --bench hub`

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::Arc;
use std::sync::atomic::{AtomicIsize, Ordering};

use bytes::Bytes;
use camgate::codec::Codec;
use camgate::media::{
    AudioTrack, DemandPolicy, FanoutConfig, Frame, FrameData, Hub, TrackInfo, VideoTrack,
};
use criterion::{Criterion, criterion_group, criterion_main};

/// Counts bytes currently allocated, to measure memory per subscriber.
struct Counting;

static ALLOCATED: AtomicIsize = AtomicIsize::new(0);

// SAFETY: forwards to the system allocator unchanged; only counts sizes.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATED.fetch_add(layout.size() as isize, Ordering::Relaxed);
        // SAFETY: same contract as the caller's.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        ALLOCATED.fetch_sub(layout.size() as isize, Ordering::Relaxed);
        // SAFETY: same contract as the caller's.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

const SUBSCRIBERS: usize = 1000;

const SPS: &[u8] = &[
    0x67, 0x64, 0x00, 0x1e, 0xac, 0xd9, 0x40, 0xa0, 0x2f, 0xf9, 0x70, 0x11, 0x00, 0x00, 0x03, 0x00,
    0x01, 0x00, 0x00, 0x03, 0x00, 0x32, 0x0f, 0x16, 0x2d, 0x96,
];
const PPS: &[u8] = &[0x68, 0xeb, 0xe3, 0xcb, 0x22, 0xc0];

struct Tracks {
    video: Arc<TrackInfo>,
    audio: Arc<TrackInfo>,
    slice: Bytes,
}

/// Frame `i` of a 25 fps stream with a keyframe every 50 frames and two G.711
/// frames per video frame (payloads shared, as ingest shares receive buffers).
fn frames(t: &Tracks, i: i64) -> [Frame; 3] {
    let audio = |k: i64| Frame {
        track: t.audio.clone(),
        pts: k * 160,
        dts: k * 160,
        keyframe: true,
        data: FrameData::Audio(Bytes::from_static(&[0xd5; 160])),
    };
    [
        Frame {
            track: t.video.clone(),
            pts: i * 3600,
            dts: i * 3600,
            keyframe: i % 50 == 0,
            data: FrameData::Nals(vec![t.slice.clone()]),
        },
        audio(2 * i),
        audio(2 * i + 1),
    ]
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let _guard = rt.enter();
    let hub = Hub::new(FanoutConfig::default());
    let stream = hub
        .create(
            "bench",
            "bench",
            DemandPolicy {
                always_on: true,
                grace: std::time::Duration::ZERO,
            },
        )
        .expect("stream");
    let t = Tracks {
        video: Arc::new(TrackInfo::Video(
            VideoTrack::h264(Bytes::from_static(SPS), Bytes::from_static(PPS)).expect("SPS"),
        )),
        audio: Arc::new(TrackInfo::Audio(AudioTrack::g711(Codec::G711A, 8000, 1))),
        slice: Bytes::from(vec![0x41u8; 20_000]),
    };
    let mut publisher = stream.start_publishing(true, true);
    // A full GOP (50 video + 100 audio frames) in the cache, as on a live stream.
    for i in 0..50 {
        for f in frames(&t, i) {
            publisher.publish(f);
        }
    }

    let before = ALLOCATED.load(Ordering::Relaxed);
    let mut subs: Vec<_> = (0..SUBSCRIBERS).map(|_| stream.subscribe()).collect();
    let joined = ALLOCATED.load(Ordering::Relaxed);
    for s in &mut subs {
        while let Ok(Some(_)) = s.try_recv() {}
    }
    let drained = ALLOCATED.load(Ordering::Relaxed);
    println!(
        "hub: memory per subscriber with a 150-item GOP cached: {} bytes on joining (GOP handles), {} bytes once caught up ({} subscribers)",
        (joined - before) / SUBSCRIBERS as isize,
        (drained - before) / SUBSCRIBERS as isize,
        SUBSCRIBERS
    );

    let mut i = 1000i64;
    c.bench_function("hub/publish_and_deliver_to_1000_subscribers", |b| {
        b.iter(|| {
            i += 1;
            for f in frames(&t, i) {
                publisher.publish(f);
            }
            for s in &mut subs {
                while let Ok(Some(f)) = s.try_recv() {
                    std::hint::black_box(f);
                }
            }
        });
    });
    c.bench_function("hub/publish_with_1000_idle_subscribers", |b| {
        // Subscribers that never read: the publisher still never waits.
        let idle: Vec<_> = (0..SUBSCRIBERS).map(|_| stream.subscribe()).collect();
        b.iter(|| {
            i += 1;
            for f in frames(&t, i) {
                publisher.publish(f);
            }
        });
        drop(idle);
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
