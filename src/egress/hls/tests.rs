//! Tests with real encoded media: the shared H.264 fixture, and H.265/AAC
//! clips generated with FFmpeg; output is decoded by FFmpeg.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use mp4_atom::{Decode, Moof, Moov, TrunSamples};

use super::fmp4::{SAMPLE_FLAGS_SYNC, VIDEO_TRACK_ID};
use super::*;
use crate::codec::Codec;
use crate::codec::es::{AudioEs, AudioFileKind, FrameRate, VideoEs};
use crate::media::frame::to_ms;
use crate::media::{AudioTrack, Frame, FrameData, TrackInfo};

const FFMPEG: &str = "/usr/bin/ffmpeg";

fn fixture(rel: &str) -> PathBuf {
    let root = std::env::var_os("CAMGATE_REAL_FIXTURES")
        .map_or_else(|| PathBuf::from("/work/shared/fixtures"), PathBuf::from);
    let p = root.join(rel);
    assert!(
        p.is_file(),
        "fixture {} missing (set CAMGATE_REAL_FIXTURES)",
        p.display()
    );
    p
}

fn ffmpeg() -> &'static str {
    assert!(
        Path::new(FFMPEG).is_file(),
        "{FFMPEG} missing: apt-get install -y ffmpeg"
    );
    FFMPEG
}

fn run_ffmpeg(args: &[&str]) -> std::process::Output {
    let out = Command::new(ffmpeg())
        .args(["-hide_banner", "-loglevel", "error", "-y"])
        .args(args)
        .output()
        .expect("run ffmpeg");
    assert!(
        out.status.success(),
        "ffmpeg {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn h264_frames() -> Vec<Frame> {
    let es = VideoEs::read_file(&fixture("h264-es/240x320.h264")).expect("fixture parses");
    es.frames(FrameRate::fps(25).expect("rate")).collect()
}

fn config(window: usize) -> HlsConfig {
    HlsConfig {
        window_segments: window,
        ..HlsConfig::default()
    }
}

/// Decodes the `moof` boxes of a run of `moof` + `mdat` fragments.
fn fragments(data: &[u8]) -> Vec<Moof> {
    let mut buf = data;
    let mut out = Vec::new();
    while buf.len() >= 8 {
        let size = u32::from_be_bytes(buf[..4].try_into().expect("4 bytes")) as usize;
        assert!(size >= 8 && size <= buf.len(), "box size {size}");
        if &buf[4..8] == b"moof" {
            let mut b = &buf[..size];
            out.push(Moof::decode(&mut b).expect("moof decodes"));
        } else {
            assert_eq!(&buf[4..8], b"mdat");
        }
        buf = &buf[size..];
    }
    assert!(buf.is_empty());
    out
}

fn first_video_flags(moof: &Moof) -> Option<u32> {
    let traf = moof
        .traf
        .iter()
        .find(|t| t.tfhd.track_id == VIDEO_TRACK_ID)?;
    match &traf.trun.first()?.samples {
        TrunSamples::Explicit(e) => e.first()?.flags,
        TrunSamples::Inherited { first_flags, .. } => *first_flags,
    }
}

fn parse_playlist(text: &str) -> m3u8_rs::MediaPlaylist {
    match m3u8_rs::parse_playlist_res(text.as_bytes()) {
        Ok(m3u8_rs::Playlist::MediaPlaylist(p)) => p,
        other => panic!("not a media playlist: {other:?}\n{text}"),
    }
}

#[test]
fn h264_segments_parts_and_playlists() {
    let frames = h264_frames();
    let mut seg = Segmenter::new(config(3));
    let ll = PlaylistOptions {
        low_latency: true,
        ..Default::default()
    };
    let mut seen_segments = 0u64;
    let mut max_window = 0usize;
    for f in frames.iter().take(250) {
        seg.push(f).expect("push");
        let text = seg.playlist(&ll);
        let p = parse_playlist(&text);
        assert!(p.segments.len() <= 3);
        max_window = max_window.max(p.segments.len());
        assert_eq!(p.media_sequence, seg.media_sequence());
        assert!(p.target_duration >= 2);
        for s in &p.segments {
            assert!(f64::from(s.duration).round() as u64 <= p.target_duration);
        }
        if seg.init().is_some() {
            let (msn, part) = seg.next_part().expect("next part");
            let hint = format!("#EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"part{msn}.{part}.m4s\"");
            assert!(text.ends_with(&format!("{hint}\n")), "{text}");
            assert_eq!(seg.blocking_status(msn, Some(part)), BlockingReload::Wait);
            assert_eq!(seg.blocking_status(msn + 2, None), BlockingReload::TooFar);
            if part > 0 {
                assert_eq!(
                    seg.blocking_status(msn, Some(part - 1)),
                    BlockingReload::Ready
                );
                assert!(seg.part(msn, part - 1).is_some());
            }
            assert!(seg.part(msn, part).is_none());
        }
        seen_segments = seen_segments.max(seg.next_msn());
    }
    // 250 frames at 25 fps, keyframes every 30 frames (1.2 s): segments cut at
    // the first keyframe >= 2 s, so 2.4 s each; 4 complete in 10 s.
    assert_eq!(seen_segments, 4);
    assert_eq!(max_window, 3);
    assert_eq!(seg.media_sequence(), 1);
    let text = seg.playlist(&ll);
    for s in seg.segments() {
        assert!(
            (s.duration - 2.4).abs() < 1e-6,
            "segment {} {}",
            s.msn,
            s.duration
        );
        assert!(s.independent);
        // Segment bytes are its parts' bytes; every part <= PART-TARGET.
        if !s.parts.is_empty() {
            let joined: Vec<u8> = s.parts.iter().flat_map(|p| p.data.to_vec()).collect();
            assert_eq!(joined, s.data.to_vec());
            assert_eq!(s.parts.len(), 12);
            for (i, p) in s.parts.iter().enumerate() {
                assert!((p.duration - 0.2).abs() < 1e-6, "part {i}: {}", p.duration);
                assert_eq!(p.independent, i == 0 || i == 6, "part {i}");
                assert!(text.contains(&format!("URI=\"part{}.{i}.m4s\"", s.msn)));
            }
        }
        let moofs = fragments(&s.data);
        assert_eq!(first_video_flags(&moofs[0]), Some(SAMPLE_FLAGS_SYNC));
        // mfhd sequence numbers increase.
        assert!(
            moofs
                .windows(2)
                .all(|w| w[1].mfhd.sequence_number == w[0].mfhd.sequence_number + 1)
        );
        assert_eq!(seg.segment(s.msn), Some(s.data.clone()));
    }
    assert!(seg.segment(0).is_none(), "slid out of the window");
    assert_eq!(seg.blocking_status(0, None), BlockingReload::Ready);
    assert!(text.contains("#EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES,PART-HOLD-BACK=0.60000\n"));
    assert!(text.contains("#EXT-X-PART-INF:PART-TARGET=0.20000\n"));
    assert!(text.contains("#EXT-X-MAP:URI=\"init.mp4\"\n"));
    eprintln!("{text}");
    // m3u8-rs keeps the LL-HLS tags it does not model as unknown tags of the
    // segment they precede.
    let parsed = parse_playlist(&text);
    for (p, s) in parsed.segments.iter().zip(seg.segments()) {
        assert_eq!(p.uri, segment_uri(s.msn));
        let parts = p.unknown_tags.iter().filter(|t| t.tag == "X-PART").count();
        assert_eq!(parts, s.parts.len());
    }
    // Plain playlist: no LL-HLS tags; PROGRAM-DATE-TIME per segment if asked.
    let plain = seg.playlist(&PlaylistOptions {
        program_date_time: Some(std::time::UNIX_EPOCH + Duration::from_secs(1_700_000_000)),
        ..Default::default()
    });
    assert!(!plain.contains("PART") && !plain.contains("PRELOAD") && !plain.contains("SERVER"));
    assert!(
        plain.contains(
            "#EXT-X-PROGRAM-DATE-TIME:2023-11-14T22:13:22.400Z\n#EXTINF:2.40000,\nseg1.m4s\n"
        ),
        "{plain}"
    );
    let parsed = parse_playlist(&plain);
    assert_eq!(parsed.segments.len(), 3);
    assert!(
        parsed
            .segments
            .iter()
            .all(|s| s.program_date_time.is_some())
    );
    // The init segment: ftyp + moov with one avc1 track and mvex/trex.
    let init = seg.init().expect("init");
    let mut b = &init[..];
    let _ftyp = mp4_atom::Ftyp::decode(&mut b).expect("ftyp");
    let moov = Moov::decode(&mut b).expect("moov");
    assert_eq!(moov.trak.len(), 1);
    assert_eq!(moov.mvex.as_ref().map(|m| m.trex.len()), Some(1));
    assert_eq!(moov.trak[0].mdia.mdhd.timescale, 90_000);
}

/// Writes init + segments + a plain VOD playlist and counts the frames FFmpeg
/// decodes per stream (via framemd5: one line per decoded frame).
fn decode_with_ffmpeg(seg: &Segmenter, strict: bool) -> (usize, usize) {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join(INIT_URI), seg.init().expect("init")).expect("write");
    for s in seg.segments() {
        std::fs::write(dir.path().join(segment_uri(s.msn)), &s.data).expect("write");
    }
    let text = seg.playlist(&PlaylistOptions {
        end_list: true,
        ..Default::default()
    });
    parse_playlist(&text);
    let index = dir.path().join("index.m3u8");
    std::fs::write(&index, &text).expect("write");
    let index = index.to_str().expect("utf-8 path");
    // The command the brief asks for must succeed...
    let out = run_ffmpeg(&["-i", index, "-f", "null", "-"]);
    // -loglevel error: any decoder or demuxer complaint fails the test.
    assert!(
        !strict || out.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // ...and decode every frame.
    let out = run_ffmpeg(&[
        "-i",
        index,
        "-fps_mode",
        "passthrough",
        "-f",
        "framemd5",
        "-",
    ]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let count = |stream: &str| {
        stdout
            .lines()
            .filter(|l| !l.starts_with('#') && l.split(',').next().map(str::trim) == Some(stream))
            .count()
    };
    (count("0"), count("1"))
}

#[test]
fn h264_decodes_with_ffmpeg() {
    let frames = h264_frames();
    assert_eq!(frames.len(), 729);
    let mut seg = Segmenter::new(config(1000));
    for f in &frames {
        seg.push(f).expect("push");
    }
    seg.finish().expect("finish");
    let total: f64 = seg.segments().map(|s| s.duration).sum();
    assert!((total - 729.0 / 25.0).abs() < 1e-6, "{total}");
    assert_eq!(decode_with_ffmpeg(&seg, true), (729, 0));
}

/// H.265 from x265: without B-frames (timestamps exact, FFmpeg must not
/// complain) and with x265's default B-frames. `VideoEs` stamps access units
/// in decode order with pts == dts (an Annex B stream carries no timestamps),
/// so with B-frames the presentation times FFmpeg derives after reordering are
/// not monotonic and it warns; every frame must still decode.
#[test]
fn h265_decodes_with_ffmpeg() {
    for (params, strict) in [
        ("log-level=error:bframes=0", true),
        ("log-level=error", false),
    ] {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("out.h265");
        run_ffmpeg(&[
            "-f",
            "lavfi",
            "-i",
            "testsrc=size=320x240:rate=25",
            "-t",
            "3",
            "-pix_fmt",
            "yuv420p",
            "-c:v",
            "libx265",
            "-x265-params",
            params,
            "-f",
            "hevc",
            path.to_str().expect("utf-8"),
        ]);
        let es = VideoEs::read_file(&path).expect("h265 parses");
        assert_eq!(es.codec(), Codec::H265);
        let mut seg = Segmenter::new(config(100));
        for f in es.frames(FrameRate::fps(25).expect("rate")) {
            seg.push(&f).expect("push");
        }
        seg.finish().expect("finish");
        let init = seg.init().expect("init");
        assert!(init.windows(4).any(|w| w == b"hvc1") && init.windows(4).any(|w| w == b"hvcC"));
        assert_eq!(decode_with_ffmpeg(&seg, strict), (75, 0), "{params}");
    }
}

fn aac_clip(dir: &Path) -> AudioEs {
    let path = dir.join("out.aac");
    run_ffmpeg(&[
        "-f",
        "lavfi",
        "-i",
        "sine=frequency=1000:sample_rate=16000",
        "-t",
        "3",
        "-c:a",
        "aac",
        "-ac",
        "1",
        "-f",
        "adts",
        path.to_str().expect("utf-8"),
    ]);
    AudioEs::read_file(&path, AudioFileKind::AacAdts).expect("adts parses")
}

/// Video and audio frames interleaved by time, as a source would deliver them.
fn interleave(video: Vec<Frame>, audio: Vec<Frame>) -> Vec<Frame> {
    let mut all: Vec<Frame> = video.into_iter().chain(audio).collect();
    all.sort_by_key(|f| (to_ms(f.dts, f.track.timescale()), !f.is_video()));
    all
}

#[test]
fn h264_with_aac_decodes_with_ffmpeg() {
    let dir = tempfile::tempdir().expect("tempdir");
    let audio = aac_clip(dir.path());
    let audio_frames: Vec<Frame> = audio.frames().collect();
    let n_audio = audio_frames.len();
    let video: Vec<Frame> = h264_frames().into_iter().take(75).collect();
    let mut seg = Segmenter::new(config(100));
    for f in interleave(video, audio_frames) {
        seg.push(&f).expect("push");
    }
    seg.finish().expect("finish");
    assert!(seg.has_audio());
    assert_eq!(seg.audio_dropped(), None);
    let init = seg.init().expect("init");
    let mut b = &init[..];
    let _ = mp4_atom::Ftyp::decode(&mut b).expect("ftyp");
    let moov = Moov::decode(&mut b).expect("moov");
    assert_eq!(moov.trak.len(), 2);
    assert_eq!(moov.trak[1].mdia.mdhd.timescale, 16_000);
    let (v, a) = decode_with_ffmpeg(&seg, true);
    eprintln!("decoded {v} video, {a} audio frames of {n_audio} AAC frames");
    assert_eq!(v, 75);
    assert_eq!(a, n_audio);
}

#[test]
fn g711_audio_is_dropped_with_reason() {
    let g711 = Arc::new(TrackInfo::Audio(AudioTrack::g711(Codec::G711A, 8000, 1)));
    let audio: Vec<Frame> = (0..100)
        .map(|i| Frame {
            track: g711.clone(),
            pts: i * 320,
            dts: i * 320,
            keyframe: true,
            data: FrameData::Audio(Bytes::from(vec![0xd5; 320])),
            received: None,
        })
        .collect();
    let video: Vec<Frame> = h264_frames().into_iter().take(100).collect();
    let mut seg = Segmenter::new(config(10));
    for f in interleave(video, audio) {
        seg.push(&f).expect("push");
    }
    assert_eq!(
        seg.audio_dropped(),
        Some(AudioDropped::UnsupportedCodec(Codec::G711A))
    );
    assert!(!seg.has_audio());
    let init = seg.init().expect("init");
    assert!(!init.windows(4).any(|w| w == b"mp4a"));
    assert!(seg.segments().count() >= 1);
}

#[test]
fn hostile_timestamps_and_payloads_do_not_panic() {
    let frames = h264_frames();
    let mut seg = Segmenter::new(HlsConfig {
        target_duration: Duration::ZERO,
        part_duration: Duration::ZERO,
        window_segments: 0,
        max_segment_duration: Duration::ZERO,
        audio_wait: Duration::ZERO,
    });
    let mut x: u64 = 0x2545_f491_4f6c_dd1d;
    for (i, f) in frames.iter().take(200).enumerate() {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let mut f = f.clone();
        f.dts = match i % 7 {
            0 => i64::MIN,
            1 => i64::MAX,
            2 => -(x as i64 >> 8),
            _ => (x >> 20) as i64,
        };
        f.pts = f.dts.wrapping_add((x % 5000) as i64);
        if i % 11 == 0 {
            f.data = FrameData::Nals(vec![Bytes::new(), Bytes::from_static(&[0x65])]);
        }
        if i % 13 == 0 {
            f.data = FrameData::Audio(Bytes::new());
        }
        let _ = seg.push(&f);
        let _ = seg.playlist(&PlaylistOptions {
            low_latency: true,
            ..Default::default()
        });
    }
    let _ = seg.finish();
    assert!(seg.segments().count() <= 1);
}

#[test]
fn part_durations_follow_dts_with_variable_frame_rate() {
    // 40 ms and 50 ms intervals alternating: parts never exceed PART-TARGET
    // and sum to the segment duration.
    let frames = h264_frames();
    let mut seg = Segmenter::new(config(10));
    let mut t = 0i64;
    for (i, f) in frames.iter().take(300).enumerate() {
        let mut f = f.clone();
        f.dts = t;
        f.pts = t;
        t += if i % 2 == 0 { 3600 } else { 4500 };
        seg.push(&f).expect("push");
    }
    assert!(seg.segments().count() >= 3);
    for s in seg.segments() {
        assert!(s.duration >= 2.0 && s.duration < 2.0 + 30.0 * 0.05 + 1e-6);
        let sum: f64 = s.parts.iter().map(|p| p.duration).sum();
        if !s.parts.is_empty() {
            assert!((sum - s.duration).abs() < 1e-9);
        }
        for p in &s.parts {
            assert!(p.duration <= 0.2 + 1e-9, "{}", p.duration);
        }
    }
}

#[test]
fn independent_part_decodes_alone_with_init() {
    let frames = h264_frames();
    let mut seg = Segmenter::new(config(10));
    for f in frames.iter().take(100) {
        seg.push(f).expect("push");
    }
    let s = seg.segments().next().expect("a segment");
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("part.mp4");
    let mut file = seg.init().expect("init").to_vec();
    file.extend_from_slice(&seg.part(s.msn, 0).expect("part 0"));
    std::fs::write(&path, file).expect("write");
    let out = run_ffmpeg(&["-i", path.to_str().expect("utf-8"), "-f", "framemd5", "-"]);
    let decoded = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| !l.starts_with('#'))
        .count();
    assert_eq!(decoded, 5, "a 200 ms part at 25 fps");
}

#[test]
fn audio_starting_after_init_is_reported() {
    let dir = tempfile::tempdir().expect("tempdir");
    let audio = aac_clip(dir.path());
    let mut seg = Segmenter::new(config(10));
    for f in h264_frames().iter().take(50) {
        seg.push(f).expect("push");
    }
    for f in audio.frames().take(10) {
        seg.push(&f).expect("push");
    }
    assert_eq!(seg.audio_dropped(), Some(AudioDropped::ArrivedLate));
    assert!(!seg.has_audio());
}

#[test]
fn long_gop_is_cut_at_max_segment_duration() {
    let mut seg = Segmenter::new(HlsConfig {
        max_segment_duration: Duration::from_secs(3),
        ..config(10)
    });
    for (i, f) in h264_frames().iter().take(300).enumerate() {
        let mut f = f.clone();
        f.keyframe = i == 0;
        seg.push(&f).expect("push");
    }
    let segs: Vec<&SegmentInfo> = seg.segments().collect();
    assert_eq!(segs.len(), 3);
    assert!(segs.iter().all(|s| (s.duration - 3.0).abs() < 1e-6));
    assert!(segs[0].independent && !segs[1].independent);
    assert_eq!(seg.target_duration_secs(), 3);
    let text = seg.playlist(&PlaylistOptions::default());
    assert!(text.contains("#EXT-X-TARGETDURATION:3\n"));
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(64))]

    /// Arbitrary timestamps, keyframe flags and payloads: no panic, the window
    /// stays bounded, every playlist parses.
    #[test]
    fn arbitrary_frames_keep_invariants(
        steps in proptest::collection::vec(
            (-200_000i64..200_000, proptest::bool::ANY, 0usize..64, proptest::bool::ANY),
            1..400,
        )
    ) {
        let video = h264_frames()[0].track.clone();
        let aac = Arc::new(TrackInfo::Audio(
            AudioTrack::aac(Bytes::from_static(&[0x14, 0x08])).expect("asc"),
        ));
        let mut seg = Segmenter::new(config(3));
        let (mut vt, mut at) = (0i64, 0i64);
        for (delta, key, len, is_audio) in steps {
            let f = if is_audio {
                at = at.saturating_add(delta / 8);
                Frame { track: aac.clone(), pts: at, dts: at, keyframe: true,
                        data: FrameData::Audio(Bytes::from(vec![0x21; len])), received: None,  }
            } else {
                vt = vt.saturating_add(delta / 10);
                let mut nal = vec![if key { 0x65 } else { 0x41 }];
                nal.resize(len + 1, 0x88);
                Frame { track: video.clone(), pts: vt + 3000, dts: vt, keyframe: key,
                        data: FrameData::Nals(vec![Bytes::from(nal)]), received: None,  }
            };
            seg.push(&f).expect("push");
            proptest::prop_assert!(seg.segments().count() <= 3);
            let text = seg.playlist(&PlaylistOptions { low_latency: true, ..Default::default() });
            parse_playlist(&text);
        }
        seg.finish().expect("finish");
        for s in seg.segments() {
            proptest::prop_assert!(s.duration > 0.0);
            proptest::prop_assert!(s.parts.is_empty() || s.parts[0].independent == s.independent);
        }
    }
}
