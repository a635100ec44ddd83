use std::path::{Path, PathBuf};
use std::process::Command;

use super::*;
use crate::codec::es::{self, AudioEs, AudioFileKind, FrameRate, VideoEs};
use crate::codec::{nal, samples};

// --- a tiny PS parser, for checking the muxer's output -----------------------------

#[derive(Debug, Default)]
struct Pack {
    scr: u64,
    scr_ext: u16,
    mux_rate: u32,
    stuffing: Vec<u8>,
    system_header: Option<Vec<u8>>,
    psm: Option<Psm>,
    pes: Vec<Pes>,
}

#[derive(Debug)]
struct Psm {
    version: u8,
    streams: Vec<(u8, u8)>,
    /// CRC register after the whole map, CRC_32 included: 0 when valid.
    crc_residual: u32,
}

#[derive(Debug)]
struct Pes {
    id: u8,
    length: u16,
    aligned: bool,
    pts: Option<u64>,
    dts: Option<u64>,
    payload: Vec<u8>,
}

fn be16(d: &[u8], at: usize) -> usize {
    usize::from(u16::from_be_bytes([d[at], d[at + 1]]))
}

fn read_ts(d: &[u8], prefix: u8) -> u64 {
    assert_eq!(d[0] >> 4, prefix, "timestamp prefix");
    assert_eq!(d[0] & 1, 1, "marker");
    assert_eq!(d[2] & 1, 1, "marker");
    assert_eq!(d[4] & 1, 1, "marker");
    (u64::from(d[0] >> 1) & 7) << 30 | (be16(d, 1) as u64 >> 1) << 15 | (be16(d, 3) as u64 >> 1)
}

/// Parses a program stream strictly: every element must follow the previous
/// one; PES of length 0 end at the next system start code.
fn parse_ps(data: &[u8]) -> Vec<Pack> {
    let mut packs: Vec<Pack> = Vec::new();
    let mut pos = 0;
    while pos < data.len() {
        assert_eq!(&data[pos..pos + 3], &[0, 0, 1], "start code at byte {pos}");
        let id = data[pos + 3];
        if id == 0xba {
            let h = &data[pos + 4..pos + 14];
            assert_eq!(h[0] >> 6, 0b01, "MPEG-2 pack header");
            let bits = u64::from_be_bytes([0, 0, h[0], h[1], h[2], h[3], h[4], h[5]]);
            for m in [42, 26, 10, 0] {
                assert_eq!((bits >> m) & 1, 1, "pack header marker bit {m}");
            }
            let rate = u32::from_be_bytes([0, h[6], h[7], h[8]]);
            assert_eq!(rate & 3, 3, "mux rate markers");
            assert_eq!(h[9] & 0xf8, 0xf8, "reserved bits");
            let n = usize::from(h[9] & 7);
            packs.push(Pack {
                scr: ((bits >> 43) & 7) << 30
                    | ((bits >> 27) & 0x7fff) << 15
                    | (bits >> 11) & 0x7fff,
                scr_ext: ((bits >> 1) & 0x1ff) as u16,
                mux_rate: rate >> 2,
                stuffing: data[pos + 14..pos + 14 + n].to_vec(),
                ..Pack::default()
            });
            pos += 14 + n;
            continue;
        }
        let pack = packs
            .last_mut()
            .expect("element before the first pack header");
        let len = be16(data, pos + 4);
        match id {
            0xbb => {
                pack.system_header = Some(data[pos + 6..pos + 6 + len].to_vec());
                pos += 6 + len;
            }
            0xbc => {
                let m = &data[pos..pos + 6 + len];
                assert_eq!(m[6] & 0x80, 0x80, "current_next_indicator");
                assert_eq!(m[7] & 1, 1, "marker");
                let info = be16(m, 8);
                let map_len = be16(m, 10 + info);
                let mut streams = Vec::new();
                let mut i = 12 + info;
                while i < 12 + info + map_len {
                    streams.push((m[i], m[i + 1]));
                    i += 4 + be16(m, i + 2);
                }
                assert_eq!(i + 4, m.len(), "PSM length");
                pack.psm = Some(Psm {
                    version: m[6] & 0x1f,
                    streams,
                    crc_residual: crc32_mpeg2(m),
                });
                pos += 6 + len;
            }
            0xe0 | 0xc0 | 0xbd => {
                let flags = data[pos + 6];
                assert_eq!(flags & 0xc0, 0x80, "MPEG-2 PES header");
                let hdl = usize::from(data[pos + 8]);
                let (pts, dts) = match data[pos + 7] >> 6 {
                    0 => (None, None),
                    2 => (Some(read_ts(&data[pos + 9..], 2)), None),
                    3 => (
                        Some(read_ts(&data[pos + 9..], 3)),
                        Some(read_ts(&data[pos + 14..], 1)),
                    ),
                    f => panic!("PTS_DTS_flags {f}"),
                };
                let start = pos + 9 + hdl;
                let end = if len == 0 {
                    (start..data.len())
                        .find(|&i| data[i..].starts_with(&[0, 0, 1]) && data[i + 3] >= 0xb9)
                        .unwrap_or(data.len())
                } else {
                    pos + 6 + len
                };
                pack.pes.push(Pes {
                    id,
                    length: len as u16,
                    aligned: flags & 0x04 != 0,
                    pts,
                    dts,
                    payload: data[start..end].to_vec(),
                });
                pos = end;
            }
            other => panic!("unexpected start code 00 00 01 {other:02x} at byte {pos}"),
        }
    }
    packs
}

/// The video payload of a pack: its E0 PES joined.
fn video_payload(p: &Pack) -> Vec<u8> {
    p.pes
        .iter()
        .filter(|e| e.id == STREAM_ID_VIDEO)
        .flat_map(|e| e.payload.iter().copied())
        .collect()
}

fn annex_b(nals: &[impl AsRef<[u8]>]) -> Vec<u8> {
    nals.iter()
        .flat_map(|n| START_CODE.iter().chain(n.as_ref()).copied())
        .collect()
}

fn nals_of(f: &Frame) -> &[Bytes] {
    match &f.data {
        FrameData::Nals(n) => n,
        FrameData::Audio(_) => panic!("video frame expected"),
    }
}

fn fixture_frames() -> Option<Vec<Frame>> {
    let p = es::real_fixture("h264-es/128x128.h264")?;
    let es = VideoEs::read_file(&p).unwrap();
    Some(es.frames(FrameRate::default()).collect())
}

fn mux_all(opts: PsMuxOptions, frames: &[Frame]) -> Vec<u8> {
    let mut m = PsMuxer::new(opts).unwrap();
    frames
        .iter()
        .flat_map(|f| m.mux(f).unwrap().to_vec())
        .collect()
}

fn h264_track() -> Arc<TrackInfo> {
    Arc::new(TrackInfo::Video(
        VideoTrack::h264(
            Bytes::from_static(samples::H264_SPS_640X360),
            Bytes::from_static(samples::H264_PPS),
        )
        .unwrap(),
    ))
}

fn h265_track() -> Arc<TrackInfo> {
    Arc::new(TrackInfo::Video(
        VideoTrack::h265(
            Bytes::from_static(samples::H265_VPS),
            Bytes::from_static(samples::H265_SPS),
            Bytes::from_static(samples::H265_PPS),
        )
        .unwrap(),
    ))
}

fn video_frame(track: &Arc<TrackInfo>, pts: i64, dts: i64, key: bool, nals: Vec<Bytes>) -> Frame {
    Frame {
        track: track.clone(),
        pts,
        dts,
        keyframe: key,
        data: FrameData::Nals(nals),
        received: None,
    }
}

fn audio_frame(track: &Arc<TrackInfo>, pts: i64, data: Vec<u8>) -> Frame {
    Frame {
        track: track.clone(),
        pts,
        dts: pts,
        keyframe: true,
        data: FrameData::Audio(Bytes::from(data)),
        received: None,
    }
}

fn g711_track(codec: Codec) -> Arc<TrackInfo> {
    Arc::new(TrackInfo::Audio(AudioTrack::g711(codec, 8000, 1)))
}

// --- structure ------------------------------------------------------------------

#[test]
fn crc32_is_the_mpeg2_variant() {
    // CRC-32/MPEG-2 check value.
    assert_eq!(crc32_mpeg2(b"123456789"), 0x0376_e6e7);
}

#[test]
fn fixture_h264_default_structure() {
    let Some(frames) = fixture_frames() else {
        return;
    };
    let ps = mux_all(PsMuxOptions::default(), &frames);
    let packs = parse_ps(&ps);
    assert_eq!(packs.len(), 155);
    let mut last_pts = None;
    for (i, (p, f)) in packs.iter().zip(&frames).enumerate() {
        assert_eq!(p.scr, f.dts as u64, "pack {i}: SCR is the DTS");
        assert_eq!((p.scr_ext, p.mux_rate), (0, DEFAULT_MUX_RATE));
        assert!(p.stuffing.is_empty());
        assert_eq!(p.system_header.is_some(), f.keyframe, "pack {i}");
        assert_eq!(p.psm.is_some(), f.keyframe, "pack {i}");
        if let Some(psm) = &p.psm {
            assert_eq!(psm.streams, [(STREAM_TYPE_H264, STREAM_ID_VIDEO)]);
            assert_eq!((psm.version, psm.crc_residual), (0, 0));
            let sh = p.system_header.as_ref().unwrap();
            // rate_bound = mux rate, audio_bound 0, video_bound 1, one stream entry.
            let rate_bound = (u32::from_be_bytes([0, sh[0], sh[1], sh[2]]) >> 1) & 0x3f_ffff;
            assert_eq!(rate_bound, DEFAULT_MUX_RATE);
            assert_eq!((sh[3] >> 2, sh[4] & 0x1f), (0, 1));
            assert_eq!(&sh[6..], &[0xe0, 0xe0, 0x80]);
        }
        // Small frames: one PES, with PTS only (PTS == DTS), aligned, exact length.
        assert_eq!(p.pes.len(), 1);
        let e = &p.pes[0];
        assert_eq!((e.id, e.aligned, e.dts), (STREAM_ID_VIDEO, true, None));
        assert_eq!(usize::from(e.length), e.payload.len() + 3 + 5);
        let pts = e.pts.unwrap();
        assert_eq!(pts, i as u64 * 3600);
        assert!(last_pts < Some(pts));
        last_pts = Some(pts);
        // The access unit as it was: the keyframes already carry SPS/PPS.
        assert_eq!(e.payload, annex_b(nals_of(f)), "pack {i}");
    }
}

#[test]
fn fixture_h264_every_quirk_changes_the_bytes_as_intended() {
    let Some(frames) = fixture_frames() else {
        return;
    };
    let default = mux_all(PsMuxOptions::default(), &frames);
    let base = parse_ps(&default);
    let payloads: Vec<Vec<u8>> = base.iter().map(video_payload).collect();
    let with = |f: fn(&mut PsMuxOptions)| {
        let mut o = PsMuxOptions::default();
        f(&mut o);
        let ps = mux_all(o, &frames);
        assert_ne!(ps, default);
        let packs = parse_ps(&ps);
        assert_eq!(packs.len(), 155);
        // Whatever the quirk, the same access units come out.
        let got: Vec<Vec<u8>> = packs.iter().map(video_payload).collect();
        assert!(got == payloads, "video payload changed");
        packs
    };

    for n in 3u8..=7 {
        let mut o = PsMuxOptions {
            stuffing_counter: Some(n),
            ..PsMuxOptions::default()
        };
        let packs = parse_ps(&mux_all(o.clone(), &frames));
        for (i, p) in packs.iter().enumerate() {
            let counter = (i as u32).to_be_bytes();
            let expected: Vec<u8> = std::iter::repeat_n(0xff, usize::from(n).saturating_sub(4))
                .chain(
                    counter[4usize.saturating_sub(usize::from(n))..]
                        .iter()
                        .copied(),
                )
                .collect();
            assert_eq!(p.stuffing, expected, "stuffing {n}, pack {i}");
        }
        o.stuffing_counter = Some(n + 5);
        assert!(PsMuxer::new(o).is_err());
    }
    let packs = with(|o| o.stuffing_counter = Some(6));
    assert_eq!(packs[7].stuffing, [0xff, 0xff, 0, 0, 0, 7]);
    assert!(
        PsMuxer::new(PsMuxOptions {
            stuffing_counter: Some(2),
            ..PsMuxOptions::default()
        })
        .is_err()
    );

    let packs = with(|o| o.pes_per_nal = true);
    for (p, f) in packs.iter().zip(&frames) {
        let nals = nals_of(f);
        assert_eq!(p.pes.len(), nals.len());
        for (k, (e, n)) in p.pes.iter().zip(nals).enumerate() {
            assert_eq!(e.payload, annex_b(&[n]));
            assert_eq!(e.pts.is_some(), k == 0, "only the first PES has a PTS");
            assert_eq!(e.aligned, k == 0);
        }
    }
    assert_eq!(packs[0].pes.len(), 4); // SEI, SPS, PPS, IDR

    let packs = with(|o| o.private_bd = true);
    for (i, p) in packs.iter().enumerate() {
        let ids: Vec<u8> = p.pes.iter().map(|e| e.id).collect();
        assert_eq!(ids, [STREAM_ID_PRIVATE_1, STREAM_ID_VIDEO]);
        let bd = &p.pes[0];
        assert!(bd.pts.is_none());
        assert!(
            bd.payload
                .windows(8)
                .any(|w| w == [0, 0, 0, 1, 0, 0, 1, 0xba])
        );
        assert!(bd.payload.ends_with(&(i as u32).to_be_bytes()));
    }
    let sh = packs[0].system_header.as_ref().unwrap();
    assert_eq!(&sh[6..], &[0xe0, 0xe0, 0x80, 0xbd, 0xe0, 0x80]);

    let packs = with(|o| o.no_psm = true);
    assert!(
        packs
            .iter()
            .all(|p| p.psm.is_none() && p.system_header.is_none())
    );

    let packs = with(|o| o.video_pes_length_zero = true);
    assert!(
        packs
            .iter()
            .all(|p| p.pes.len() == 1 && p.pes[0].length == 0)
    );

    // All of them together.
    let packs = with(|o| {
        *o = PsMuxOptions {
            stuffing_counter: Some(6),
            pes_per_nal: true,
            private_bd: true,
            no_psm: true,
            video_pes_length_zero: true,
            ..PsMuxOptions::default()
        }
    });
    assert_eq!(packs[0].pes.len(), 5);
}

#[test]
fn big_access_unit_is_split_into_several_pes() {
    let track = h264_track();
    let idr: Vec<u8> = [0x65, 0x88]
        .into_iter()
        .chain((0..200_000u32).map(|i| (i % 251) as u8 | 0x10))
        .collect();
    // No SPS/PPS in the frame: the track's go in front; PTS ≠ DTS.
    let frame = video_frame(&track, 7200, 3600, true, vec![Bytes::from(idr.clone())]);
    let expected = annex_b(&[samples::H264_SPS_640X360, samples::H264_PPS, &idr]);

    let mut m = PsMuxer::new(PsMuxOptions::default()).unwrap();
    let packs = parse_ps(&m.mux(&frame).unwrap());
    assert_eq!(packs.len(), 1);
    let p = &packs[0];
    assert_eq!(p.scr, 3600);
    assert_eq!(p.pes.len(), 4); // 200 032 bytes: 65 520 + 3 × 65 532 … at most
    assert_eq!(video_payload(p), expected);
    for (k, e) in p.pes.iter().enumerate() {
        let hdl = if k == 0 { 10 } else { 0 };
        assert_eq!(usize::from(e.length), e.payload.len() + 3 + hdl);
        assert_eq!(e.aligned, k == 0);
        if k == 0 {
            assert_eq!((e.pts, e.dts), (Some(7200), Some(3600)));
            assert_eq!(e.length, 0xffff);
        } else {
            assert_eq!((e.pts, e.dts), (None, None));
        }
    }

    let mut m = PsMuxer::new(PsMuxOptions {
        max_pes_payload: 1400,
        ..PsMuxOptions::default()
    })
    .unwrap();
    let packs = parse_ps(&m.mux(&frame).unwrap());
    assert_eq!(packs[0].pes.len(), expected.len().div_ceil(1400));
    assert!(packs[0].pes.iter().all(|e| e.payload.len() <= 1400));
    assert_eq!(video_payload(&packs[0]), expected);

    let mut m = PsMuxer::new(PsMuxOptions {
        video_pes_length_zero: true,
        ..PsMuxOptions::default()
    })
    .unwrap();
    let packs = parse_ps(&m.mux(&frame).unwrap());
    assert_eq!(packs[0].pes.len(), 1);
    assert_eq!(packs[0].pes[0].payload, expected);
}

#[test]
fn h265_parameter_sets_go_after_the_aud() {
    let track = h265_track();
    let aud = Bytes::from_static(&[0x46, 0x01, 0x10]);
    let idr = Bytes::from_static(&[0x26, 0x01, 0xaf, 0x11, 0x22]);
    let trail = Bytes::from_static(&[0x02, 0x01, 0xd0, 0x33]);
    let mut m = PsMuxer::new(PsMuxOptions::default()).unwrap();
    let key = video_frame(&track, 0, 0, true, vec![aud.clone(), idr.clone()]);
    let packs = parse_ps(&m.mux(&key).unwrap());
    let expected = annex_b(&[
        &aud[..],
        samples::H265_VPS,
        samples::H265_SPS,
        samples::H265_PPS,
        &idr,
    ]);
    assert_eq!(video_payload(&packs[0]), expected);
    let psm = packs[0].psm.as_ref().unwrap();
    assert_eq!(psm.streams, [(STREAM_TYPE_H265, STREAM_ID_VIDEO)]);
    assert_eq!(psm.crc_residual, 0);

    // A keyframe with its own parameter sets, and a P-frame: nothing added.
    let own = vec![
        Bytes::from_static(samples::H265_VPS),
        Bytes::from_static(samples::H265_SPS),
        Bytes::from_static(samples::H265_PPS),
        idr.clone(),
    ];
    let packs = parse_ps(
        &m.mux(&video_frame(&track, 3600, 3600, true, own.clone()))
            .unwrap(),
    );
    assert_eq!(video_payload(&packs[0]), annex_b(&own));
    let packs = parse_ps(
        &m.mux(&video_frame(&track, 7200, 7200, false, vec![trail.clone()]))
            .unwrap(),
    );
    assert_eq!(video_payload(&packs[0]), annex_b(&[&trail]));
    assert!(packs[0].psm.is_none());
}

#[test]
fn audio_goes_in_its_own_pack_with_90khz_pts() {
    let video = h264_track();
    let g711a = g711_track(Codec::G711A);
    let mut m = PsMuxer::new(PsMuxOptions::default()).unwrap();
    m.declare_track(g711a.clone());
    let sps = Bytes::from_static(samples::H264_SPS_640X360);
    let pps = Bytes::from_static(samples::H264_PPS);
    let idr = Bytes::from_static(&[0x65, 0x88, 0x84]);
    let key = video_frame(&video, 0, 0, true, vec![sps, pps, idr]);
    let packs = parse_ps(&m.mux(&key).unwrap());
    let psm = packs[0].psm.as_ref().unwrap();
    assert_eq!(
        psm.streams,
        [
            (STREAM_TYPE_H264, STREAM_ID_VIDEO),
            (STREAM_TYPE_G711A, STREAM_ID_AUDIO)
        ]
    );
    let sh = packs[0].system_header.as_ref().unwrap();
    assert_eq!((sh[3] >> 2, sh[4] & 0x1f), (1, 1));
    assert_eq!(&sh[6..], &[0xe0, 0xe0, 0x80, 0xc0, 0xc0, 0x08]);

    // 160 samples at 8 kHz = 20 ms = 1800 ticks at 90 kHz.
    let samples_ = vec![0xd5; 160];
    let packs = parse_ps(&m.mux(&audio_frame(&g711a, 160, samples_.clone())).unwrap());
    assert_eq!(packs.len(), 1);
    let p = &packs[0];
    assert_eq!(p.scr, 1800);
    assert!(p.psm.is_none() && p.system_header.is_none());
    assert_eq!(p.pes.len(), 1);
    let e = &p.pes[0];
    assert_eq!(
        (e.id, e.pts, e.dts, e.aligned),
        (STREAM_ID_AUDIO, Some(1800), None, true)
    );
    assert_eq!(e.payload, samples_);

    // G.711U instead: the next PSM says 0x91, with a new version.
    let g711u = g711_track(Codec::G711U);
    m.mux(&audio_frame(&g711u, 320, vec![0xff; 160])).unwrap();
    let key = video_frame(
        &video,
        3600,
        3600,
        true,
        vec![Bytes::from_static(&[0x65, 0x88, 0x84])],
    );
    let packs = parse_ps(&m.mux(&key).unwrap());
    let psm = packs[0].psm.as_ref().unwrap();
    assert_eq!(psm.streams[1], (STREAM_TYPE_G711U, STREAM_ID_AUDIO));
    assert_eq!((psm.version, psm.crc_residual), (1, 0));
}

#[test]
fn aac_is_written_as_adts_and_audio_only_streams_get_a_psm_each_second() {
    // AAC-LC, 8 kHz, mono.
    let track = Arc::new(TrackInfo::Audio(
        AudioTrack::aac(Bytes::from_static(&[0x15, 0x88])).unwrap(),
    ));
    let mut m = PsMuxer::new(PsMuxOptions::default()).unwrap();
    let raw = vec![0x21, 0x10, 0x05, 0x00];
    let mut with_psm = Vec::new();
    for i in 0..12 {
        let packs = parse_ps(&m.mux(&audio_frame(&track, i * 1024, raw.clone())).unwrap());
        let p = &packs[0];
        if let Some(psm) = &p.psm {
            assert_eq!(psm.streams, [(STREAM_TYPE_AAC, STREAM_ID_AUDIO)]);
            with_psm.push(i);
        }
        let e = &p.pes[0];
        assert_eq!(e.pts, Some(i as u64 * 1024 * 90_000 / 8000));
        let h = aac::parse_adts_header(&e.payload).unwrap();
        assert_eq!((h.frame_len, h.sample_rate(), h.channels), (11, 8000, 1));
        assert_eq!(h.object_type, 2);
        assert_eq!(&e.payload[7..], &raw[..]);
    }
    // 1 s = 7.8 frames of 1024 samples at 8 kHz.
    assert_eq!(with_psm, [0, 8]);

    // A frame that already is ADTS is written as it is.
    let adts = m.mux(&audio_frame(&track, 0, raw.clone())).unwrap();
    let adts_payload = parse_ps(&adts)[0].pes[0].payload.clone();
    let packs = parse_ps(
        &m.mux(&audio_frame(&track, 0, adts_payload.clone()))
            .unwrap(),
    );
    assert_eq!(packs[0].pes[0].payload, adts_payload);
}

#[test]
fn timestamps_wrap_at_33_bits() {
    let track = h264_track();
    let mut m = PsMuxer::new(PsMuxOptions::default()).unwrap();
    let f = video_frame(
        &track,
        (1 << 33) + 5,
        -3600,
        false,
        vec![Bytes::from_static(&[0x41, 0x9a])],
    );
    let packs = parse_ps(&m.mux(&f).unwrap());
    assert_eq!(packs[0].scr, (1 << 33) - 3600);
    assert_eq!(
        (packs[0].pes[0].pts, packs[0].pes[0].dts),
        (Some(5), Some((1 << 33) - 3600))
    );
}

#[test]
fn bad_input_is_an_error() {
    let video = h264_track();
    let mut m = PsMuxer::new(PsMuxOptions::default()).unwrap();
    let wrong = Frame {
        track: video.clone(),
        pts: 0,
        dts: 0,
        keyframe: false,
        data: FrameData::Audio(Bytes::from_static(&[1])),
        received: None,
    };
    assert!(matches!(
        m.mux(&wrong),
        Err(PsMuxError::PayloadMismatch { .. })
    ));
    let empty = video_frame(&video, 0, 0, false, vec![Bytes::new()]);
    assert!(matches!(m.mux(&empty), Err(PsMuxError::EmptyFrame { .. })));
    let aac = Arc::new(TrackInfo::Audio(
        AudioTrack::aac(Bytes::from_static(&[0x15, 0x88])).unwrap(),
    ));
    assert!(matches!(
        m.mux(&audio_frame(&aac, 0, vec![0x21; 9000])),
        Err(PsMuxError::FrameTooLarge { .. })
    ));
    let odd = Arc::new(TrackInfo::Audio(AudioTrack {
        codec: Codec::Aac,
        sample_rate: 8001,
        channels: 1,
        config: None,
    }));
    assert!(matches!(
        m.mux(&audio_frame(&odd, 0, vec![0x21; 10])),
        Err(PsMuxError::AdtsUnsupported { .. })
    ));
    for o in [
        PsMuxOptions {
            mux_rate: 0,
            ..PsMuxOptions::default()
        },
        PsMuxOptions {
            mux_rate: 1 << 22,
            ..PsMuxOptions::default()
        },
        PsMuxOptions {
            max_pes_payload: 100,
            ..PsMuxOptions::default()
        },
    ] {
        assert!(matches!(
            PsMuxer::new(o),
            Err(PsMuxError::InvalidOption { .. })
        ));
    }
}

// --- FFmpeg ---------------------------------------------------------------------

const FFMPEG: &str = "/usr/bin/ffmpeg";

fn ffmpeg() -> Command {
    assert!(
        Path::new(FFMPEG).exists(),
        "{FFMPEG} missing: apt-get install -y --no-install-recommends ffmpeg"
    );
    let mut c = Command::new(FFMPEG);
    c.args(["-hide_banner", "-nostdin", "-loglevel", "error"]);
    c
}

fn run(mut c: Command) -> std::process::Output {
    let out = c.output().expect("run ffmpeg");
    assert!(
        out.status.success(),
        "{c:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// Decodes a PS file with FFmpeg's `mpeg` demuxer: (video frames, audio frames, log).
fn ffmpeg_decode(file: &Path) -> (usize, usize, String) {
    let mut c = ffmpeg();
    c.args(["-f", "mpeg", "-i"]).arg(file);
    // framecrc: one line per decoded frame, with its stream index.
    c.args(["-f", "framecrc", "-"]);
    let out = run(c);
    let text = String::from_utf8_lossy(&out.stdout);
    let kinds: Vec<(String, String)> = text
        .lines()
        .filter_map(|l| l.strip_prefix("#media_type "))
        .filter_map(|l| l.split_once(": "))
        .map(|(i, k)| (i.to_owned(), k.to_owned()))
        .collect();
    let count = |kind: &str| {
        text.lines()
            .filter(|l| !l.starts_with('#'))
            .filter(|l| {
                let idx = l.split(',').next().unwrap_or("").trim();
                kinds.iter().any(|(i, k)| i == idx && k == kind)
            })
            .count()
    };
    (
        count("video"),
        count("audio"),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn write(dir: &Path, name: &str, data: &[u8]) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, data).unwrap();
    p
}

#[test]
fn ffmpeg_decodes_every_h264_frame() {
    let Some(frames) = fixture_frames() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();

    let ps = mux_all(PsMuxOptions::default(), &frames);
    let (video, audio, log) = ffmpeg_decode(&write(dir.path(), "default.ps", &ps));
    assert_eq!((video, audio), (155, 0), "{log}");
    assert!(log.is_empty(), "FFmpeg complained: {log}");

    // Quirks FFmpeg copes with, small PES, and G.711A audio in its own packs
    // (FFmpeg 5.1 takes 0x90 for MP2: only the video is decoded here).
    let mut m = PsMuxer::new(PsMuxOptions {
        stuffing_counter: Some(6),
        pes_per_nal: true,
        private_bd: true,
        no_psm: true,
        max_pes_payload: 1400,
        ..PsMuxOptions::default()
    })
    .unwrap();
    let g711 = g711_track(Codec::G711A);
    m.declare_track(g711.clone());
    let mut ps = Vec::new();
    for (i, f) in frames.iter().enumerate() {
        ps.extend_from_slice(&m.mux(f).unwrap());
        // 25 fps video, 40 ms of audio per frame (320 samples at 8 kHz).
        ps.extend_from_slice(
            &m.mux(&audio_frame(&g711, i as i64 * 320, vec![0xd5; 320]))
                .unwrap(),
        );
    }
    let file = write(dir.path(), "quirks.ps", &ps);
    let mut c = ffmpeg();
    c.args(["-f", "mpeg", "-i"]).arg(&file);
    c.args(["-map", "0:v", "-f", "framecrc", "-"]);
    let out = run(c);
    let decoded = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| !l.starts_with('#'))
        .count();
    assert_eq!(decoded, 155, "{}", String::from_utf8_lossy(&out.stderr));
}

#[test]
fn ffmpeg_decodes_h265_with_aac() {
    let dir = tempfile::tempdir().unwrap();
    let h265 = dir.path().join("in.h265");
    let adts = dir.path().join("in.aac");
    let mut c = ffmpeg();
    c.args(["-f", "lavfi", "-i", "testsrc=size=320x240:rate=25"]);
    c.args(["-f", "lavfi", "-i", "sine=frequency=440:sample_rate=8000"]);
    // yuv420p: Main profile, as cameras send (testsrc is RGB).
    let video_out = "-t 2 -map 0:v -pix_fmt yuv420p -c:v libx265 -preset ultrafast \
                     -x265-params bframes=0:keyint=25:log-level=error -f hevc";
    c.args(video_out.split_whitespace()).arg(&h265);
    let audio_out = "-t 2 -map 1:a -c:a aac -ac 1 -f adts";
    c.args(audio_out.split_whitespace()).arg(&adts);
    let out = c.output().expect("run ffmpeg");
    assert!(
        out.status.success(),
        "FFmpeg could not make H.265/AAC input (Debian's ffmpeg has libx265: \
         apt-get install -y --no-install-recommends ffmpeg): {}",
        String::from_utf8_lossy(&out.stderr)
    );

    let video = VideoEs::read_file(&h265).unwrap();
    assert_eq!(video.codec(), Codec::H265);
    assert_eq!(video.len(), 50);
    let keys = video.access_units().iter().filter(|a| a.keyframe).count();
    assert_eq!(keys, 2);
    let audio = AudioEs::read_file(&adts, AudioFileKind::AacAdts).unwrap();
    assert!(audio.len() >= 15, "{} AAC frames", audio.len());

    let mut m = PsMuxer::new(PsMuxOptions {
        stuffing_counter: Some(6),
        ..PsMuxOptions::default()
    })
    .unwrap();
    m.declare_track(audio.track().clone());
    // Interleave by time, in 90 kHz units.
    let mut v = video.frames(FrameRate::default()).peekable();
    let mut a = audio.frames().peekable();
    let mut ps = Vec::new();
    loop {
        let next = match (v.peek(), a.peek()) {
            (Some(fv), Some(fa)) if fv.dts * 8000 <= fa.dts * 90_000 => v.next(),
            (Some(_), Some(_)) | (None, Some(_)) => a.next(),
            (Some(_), None) => v.next(),
            (None, None) => None,
        };
        let Some(f) = next else { break };
        ps.extend_from_slice(&m.mux(&f).unwrap());
    }
    let packs = parse_ps(&ps);
    assert_eq!(packs.len(), 50 + audio.len());
    let psm = packs[0].psm.as_ref().unwrap();
    assert_eq!(
        psm.streams,
        [
            (STREAM_TYPE_H265, STREAM_ID_VIDEO),
            (STREAM_TYPE_AAC, STREAM_ID_AUDIO)
        ]
    );
    let first = video.access_units()[0]
        .nals
        .iter()
        .map(|n| nal::h265_type(n))
        .collect::<Vec<_>>();
    assert_eq!(&first[..3], &[32, 33, 34]);

    let (vf, af, log) = ffmpeg_decode(&write(dir.path(), "h265-aac.ps", &ps));
    assert_eq!(vf, 50, "{log}");
    // FFmpeg 5.1's mpeg demuxer loses the encoder's first AAC frame whatever
    // its position or PTS (the same bytes survive in MPEG-TS and raw ADTS).
    assert!(
        (audio.len() - 1..=audio.len()).contains(&af),
        "{af} of {} AAC frames decoded: {log}",
        audio.len()
    );
}
