//! Hub fan-out: one publisher, 1,000 subscribers on one stream.
//!
//! Prints the memory one subscriber costs (counting global allocator), then
//! measures with criterion what one published frame costs: `Publisher::publish`
//! plus every subscriber taking the frame with `try_recv`; `publish` alone with
//! subscribers that do not read and with none; and delivery to 1,000 tokio
//! tasks awaiting `recv`, which is how the server's consumers wait.
//!
//! `cargo bench --bench hub -- --warm-up-time 1 --measurement-time 3`

use std::alloc::{GlobalAlloc, Layout, System};
use std::hint::black_box;
use std::sync::Arc;
use std::sync::atomic::{AtomicIsize, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use camgate::codec::Codec;
use camgate::media::{
    AudioTrack, DemandPolicy, FanoutConfig, FanoutReceiver, Frame, FrameData, Hub, Publisher,
    TrackInfo, VideoTrack,
};
use criterion::{BatchSize, Criterion, criterion_group, criterion_main};

/// The system allocator, counting the bytes currently allocated.
struct Counting;

static ALLOCATED: AtomicIsize = AtomicIsize::new(0);

// SAFETY: every call is forwarded unchanged to the system allocator; the
// wrapper only adds to or subtracts from a counter.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATED.fetch_add(layout.size() as isize, Ordering::Relaxed);
        // SAFETY: the caller upholds `alloc`'s contract.
        unsafe { System.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        ALLOCATED.fetch_add(layout.size() as isize, Ordering::Relaxed);
        // SAFETY: the caller upholds `alloc_zeroed`'s contract.
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        ALLOCATED.fetch_sub(layout.size() as isize, Ordering::Relaxed);
        // SAFETY: the caller upholds `dealloc`'s contract.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: the caller upholds `realloc`'s contract.
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            ALLOCATED.fetch_add(
                new_size as isize - layout.size() as isize,
                Ordering::Relaxed,
            );
        }
        p
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn allocated() -> isize {
    ALLOCATED.load(Ordering::Relaxed)
}

const SUBSCRIBERS: usize = 1000;

/// A 640x360 High-profile x264 stream's parameter sets.
use camgate::codec::samples::{H264_PPS as PPS, H264_SPS_640X360 as SPS};

/// Frames of a 25 fps H.264 stream (60 KB keyframe every 50 frames, 15 KB
/// P-frames as 4 slices) with two 160-byte G.711 frames per video frame, in
/// arrival order. Payload buffers are shared, as ingest slices receive buffers;
/// the fan-out only moves `Arc<Frame>`s, so their content does not matter.
struct Source {
    video: Arc<TrackInfo>,
    audio: Arc<TrackInfo>,
    key_slice: Bytes,
    p_slice: Bytes,
    g711: Bytes,
    n: i64,
}

impl Source {
    fn new() -> Self {
        Self {
            video: Arc::new(TrackInfo::Video(
                VideoTrack::h264(Bytes::from_static(SPS), Bytes::from_static(PPS)).expect("SPS"),
            )),
            audio: Arc::new(TrackInfo::Audio(AudioTrack::g711(Codec::G711A, 8000, 1))),
            key_slice: Bytes::from(vec![0x65; 15_000]),
            p_slice: Bytes::from(vec![0x41; 3_750]),
            g711: Bytes::from(vec![0xd5; 160]),
            n: 0,
        }
    }

    fn next_frame(&mut self) -> Frame {
        let n = self.n;
        self.n += 1;
        let (i, k) = (n / 3, n % 3);
        if k == 0 {
            let key = i % 50 == 0;
            let slice = if key { &self.key_slice } else { &self.p_slice };
            Frame {
                track: self.video.clone(),
                pts: i * 3600,
                dts: i * 3600,
                keyframe: key,
                data: FrameData::Nals(vec![slice.clone(); 4]),
                received: None,
            }
        } else {
            let t = (i * 2 + k - 1) * 160;
            Frame {
                track: self.audio.clone(),
                pts: t,
                dts: t,
                keyframe: true,
                data: FrameData::Audio(self.g711.clone()),
                received: None,
            }
        }
    }
}

fn drain(subs: &mut [FanoutReceiver<Arc<Frame>>]) -> usize {
    let mut got = 0;
    for s in subs {
        while let Ok(Some(f)) = s.try_recv() {
            black_box(f);
            got += 1;
        }
    }
    got
}

fn per_sub(bytes: isize) -> f64 {
    bytes as f64 / SUBSCRIBERS as f64
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
                grace: Duration::ZERO,
            },
        )
        .expect("stream");
    let mut src = Source::new();
    let mut publisher: Publisher = stream.start_publishing(true, true);
    // One whole GOP (50 video + 100 audio frames) in the cache, as on a live stream.
    for _ in 0..150 {
        publisher.publish(src.next_frame());
    }

    // --- Memory per subscriber -------------------------------------------
    let before = allocated();
    let mut subs: Vec<_> = (0..SUBSCRIBERS).map(|_| stream.subscribe()).collect();
    let joined = allocated();
    let backlog = drain(&mut subs) / SUBSCRIBERS;
    let caught_up = allocated();
    let inline = std::mem::size_of::<FanoutReceiver<Arc<Frame>>>();
    println!(
        "hub: {SUBSCRIBERS} subscribers to a stream with {backlog} frames in its GOP cache \
         (deltas of bytes allocated, divided by {SUBSCRIBERS}):"
    );
    println!(
        "hub:   on joining:      {:.0} bytes per subscriber \
         ({inline} B FanoutReceiver in the Vec holding them + {:.0} B heap: its copy of the GOP's Arc handles)",
        per_sub(joined - before),
        per_sub(joined - before) - inline as f64,
    );
    println!(
        "hub:   once caught up:  {:.0} bytes per subscriber ({inline} B FanoutReceiver + {:.0} B heap)",
        per_sub(caught_up - before),
        per_sub(caught_up - before) - inline as f64,
    );

    // --- Publish cost ------------------------------------------------------
    let mut g = c.benchmark_group("hub");

    let mut publish_time = (Duration::ZERO, 0u64);
    g.bench_function("publish_and_try_recv/1000_subscribers", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let f = src.next_frame();
                let t0 = Instant::now();
                publisher.publish(f);
                let t1 = Instant::now();
                let got = drain(&mut subs);
                total += t0.elapsed();
                publish_time.0 += t1 - t0;
                publish_time.1 += 1;
                assert_eq!(got, SUBSCRIBERS);
            }
            total
        });
    });
    println!(
        "hub: of which Publisher::publish itself: {:.0} ns per frame (mean over {} frames, timed \
         separately inside the loop: includes one Instant::now)",
        publish_time.0.as_nanos() as f64 / publish_time.1 as f64,
        publish_time.1
    );

    // The same subscribers, now never reading: the publisher still never waits.
    g.bench_function("publish_only/1000_idle_subscribers", |b| {
        b.iter_batched(
            || src.next_frame(),
            |f| publisher.publish(f),
            BatchSize::SmallInput,
        );
    });
    drop(subs);
    g.bench_function("publish_only/no_subscribers", |b| {
        b.iter_batched(
            || src.next_frame(),
            |f| publisher.publish(f),
            BatchSize::SmallInput,
        );
    });

    // Subscribers as the server runs them: one tokio task each, parked in
    // `recv().await`, so a publish wakes 1,000 tasks and the runtime polls them.
    let received = Arc::new(AtomicU64::new(0));
    let mut probe = stream.subscribe();
    let before_tasks = allocated();
    let tasks: Vec<_> = (0..SUBSCRIBERS)
        .map(|_| {
            let mut rx = stream.subscribe();
            let received = received.clone();
            tokio::spawn(async move {
                while let Ok(f) = rx.recv().await {
                    black_box(f);
                    received.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();
    let mut delivered = (drain(std::slice::from_mut(&mut probe)) * SUBSCRIBERS) as u64;
    drop(probe);
    wait_for(&rt, &received, delivered);
    println!(
        "hub: {SUBSCRIBERS} subscribers as tokio tasks parked in recv().await, caught up: \
         {:.0} bytes per subscriber (task, its future with the FanoutReceiver, JoinHandle in a Vec)",
        per_sub(allocated() - before_tasks),
    );
    g.bench_function("publish_and_wake/1000_task_subscribers", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let f = src.next_frame();
                let t0 = Instant::now();
                publisher.publish(f);
                delivered += SUBSCRIBERS as u64;
                wait_for(&rt, &received, delivered);
                total += t0.elapsed();
            }
            total
        });
    });
    g.finish();
    for t in &tasks {
        t.abort();
    }
}

/// Runs the runtime (the subscriber tasks) until `target` frames in all have
/// been received.
fn wait_for(rt: &tokio::runtime::Runtime, received: &AtomicU64, target: u64) {
    rt.block_on(async {
        while received.load(Ordering::Relaxed) < target {
            tokio::task::yield_now().await;
        }
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
