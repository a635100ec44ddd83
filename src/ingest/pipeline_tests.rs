//! The GB28181 ingest pipeline as the live runner drives it (RTP → reorder
//! buffer → frame boundary → PS demuxer): reordering within the buffer's
//! window and any chunking give exactly the frames of the in-order stream.

use std::time::{Duration, Instant};

use bytes::Bytes;
use proptest::prelude::*;

use crate::codec::es::{FrameRate, VideoEs};
use crate::egress::ps::{PsMuxOptions, PsMuxer};
use crate::ingest::ps::{PsConfig, PsDemuxer, PsEvent};
use crate::ingest::rtp::{
    FrameBoundary, Packetizer, PacketizerConfig, ReorderBuffer, ReorderConfig, RtpPacket,
};
use crate::media::FrameData;

fn fixtures() -> std::path::PathBuf {
    std::env::var_os("CAMGATE_REAL_FIXTURES")
        .map(Into::into)
        .unwrap_or_else(|| "/work/shared/fixtures".into())
}

/// RTP packets of the first 60 frames of a real H.264 file, Hikvision-style PS.
fn packets() -> Vec<Bytes> {
    let es = VideoEs::read_file(&fixtures().join("h264-es/128x128.h264")).unwrap();
    let mut mux = PsMuxer::new(PsMuxOptions {
        stuffing_counter: Some(6),
        private_bd: true,
        ..PsMuxOptions::default()
    })
    .unwrap();
    let mut rtp = Packetizer::new(PacketizerConfig {
        ssrc: 7,
        initial_sequence: 65_500, // crosses the wrap-around
        max_payload: 300,         // several packets per frame
        ..PacketizerConfig::default()
    })
    .unwrap();
    let mut out = Vec::new();
    for frame in es.frames(FrameRate::fps(25).unwrap()).take(60) {
        let pack = mux.mux(&frame).unwrap();
        rtp.packetize(&pack, frame.dts as u32, &mut out);
    }
    out
}

/// (dts, keyframe, payload bytes) of every frame out of the pipeline.
fn run(order: &[Bytes]) -> Vec<(i64, bool, Vec<u8>)> {
    let t0 = Instant::now();
    let mut reorder = ReorderBuffer::new(ReorderConfig {
        max_packets: 64,
        max_delay: Duration::from_millis(50),
        ..ReorderConfig::default()
    });
    let mut boundary = FrameBoundary::default();
    let mut demux = PsDemuxer::new(PsConfig::default());
    let mut frames = Vec::new();
    let mut collect = |demux: &mut PsDemuxer| {
        while let Some(ev) = demux.poll() {
            if let PsEvent::Frame(f) = ev {
                let bytes = match &f.data {
                    FrameData::Nals(n) => n.iter().flat_map(|b| b.iter().copied()).collect(),
                    FrameData::Audio(a) => a.to_vec(),
                };
                frames.push((f.dts, f.keyframe, bytes));
            }
        }
    };
    // All arrive within 1 ms: nothing is given up on by time.
    for (i, raw) in order.iter().enumerate() {
        let now = t0 + Duration::from_micros(i as u64);
        reorder.push(RtpPacket::parse(raw.clone()).unwrap(), now);
        while let Some(p) = reorder.poll(now) {
            let b = boundary.on_packet(&p);
            if b.previous_frame_ended {
                demux.end_of_access_unit();
            }
            demux.push(p.payload());
            if b.ends_frame {
                demux.end_of_access_unit();
            }
        }
        collect(&mut demux);
    }
    let later = t0 + Duration::from_secs(1);
    while let Some(p) = reorder.poll(later) {
        demux.push(p.payload());
    }
    demux.end_of_access_unit();
    collect(&mut demux);
    assert_eq!(reorder.stats().lost, 0);
    frames
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]
    #[test]
    fn reordering_within_the_window_gives_the_same_frames(
        seed in any::<u64>(),
        window in 2usize..16,
    ) {
        let packets = packets();
        let expected = run(&packets);
        prop_assert!(expected.len() >= 59, "{} frames", expected.len());
        // Shuffle inside consecutive windows (xorshift from the seed).
        let mut shuffled = packets.clone();
        let mut s = seed | 1;
        for chunk in shuffled.chunks_mut(window) {
            for i in (1..chunk.len()).rev() {
                s ^= s << 13;
                s ^= s >> 7;
                s ^= s << 17;
                chunk.swap(i, (s % (i as u64 + 1)) as usize);
            }
        }
        prop_assert_eq!(run(&shuffled), expected);
    }
}
