//! GB28181 live media end to end: sipp as the device answers the INVITE and
//! replays a PS-over-RTP pcap (`play_pcap_video`); FFmpeg reads the stream
//! back as HTTP-FLV and decodes it.

use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::json;

use crate::common::{decoded_frames, ffmpeg_debian, ffmpeg_decode, fixture};
use crate::gb::{DEVICE, PASSWORD, Sipp, SippRun, gateway, sip_settings, wait_device};

/// The SSRC the sipp device answers (and the pcap carries): 0200000101, as
/// in the Hikvision capture (fixtures README).
const DEVICE_SSRC: u32 = 200_000_101;
const CHANNEL: &str = "34020000001320000001";

/// A classic pcap (Ethernet/IPv4/UDP) of `frames` frames of an H.264 file,
/// muxed to PS by camgate's muxer and packetised to RTP, 25 fps timing.
fn ps_rtp_pcap(es: &str, frames: usize) -> Vec<u8> {
    use camgate::codec::es::{FrameRate, VideoEs};
    use camgate::egress::ps::{PsMuxOptions, PsMuxer};
    use camgate::ingest::rtp::{Packetizer, PacketizerConfig};
    let video = VideoEs::read_file(&fixture(es)).expect("read ES fixture");
    let mut mux = PsMuxer::new(PsMuxOptions {
        stuffing_counter: Some(6),
        ..PsMuxOptions::default()
    })
    .unwrap();
    let mut rtp = Packetizer::new(PacketizerConfig {
        ssrc: DEVICE_SSRC,
        ..PacketizerConfig::default()
    })
    .unwrap();
    let mut out = Vec::new();
    // Global header: magic, v2.4, zone 0, sigfigs 0, snaplen, Ethernet.
    out.extend_from_slice(&0xa1b2_c3d4u32.to_le_bytes());
    out.extend_from_slice(&2u16.to_le_bytes());
    out.extend_from_slice(&4u16.to_le_bytes());
    out.extend_from_slice(&0i32.to_le_bytes());
    out.extend_from_slice(&0u32.to_le_bytes());
    out.extend_from_slice(&65_535u32.to_le_bytes());
    out.extend_from_slice(&1u32.to_le_bytes());
    let rate = FrameRate::fps(25).unwrap();
    let mut packets = Vec::new();
    for frame in video.frames(rate).take(frames) {
        let pack = mux.mux(&frame).unwrap();
        packets.clear();
        rtp.packetize(&pack, frame.dts as u32, &mut packets);
        let t_us = frame.dts as u64 * 1_000_000 / 90_000;
        for p in &packets {
            let udp_len = 8 + p.len();
            let ip_len = 20 + udp_len;
            let frame_len = 14 + ip_len;
            out.extend_from_slice(&((t_us / 1_000_000) as u32).to_le_bytes());
            out.extend_from_slice(&((t_us % 1_000_000) as u32).to_le_bytes());
            out.extend_from_slice(&(frame_len as u32).to_le_bytes());
            out.extend_from_slice(&(frame_len as u32).to_le_bytes());
            out.extend_from_slice(&[0, 0, 0, 0, 0, 2, 0, 0, 0, 0, 0, 1, 0x08, 0x00]);
            let mut ip = vec![0x45, 0];
            ip.extend_from_slice(&(ip_len as u16).to_be_bytes());
            ip.extend_from_slice(&[0, 0, 0x40, 0, 64, 17, 0, 0, 127, 0, 0, 1, 127, 0, 0, 1]);
            let sum = ip
                .chunks(2)
                .map(|c| u32::from(u16::from_be_bytes([c[0], c[1]])))
                .sum::<u32>();
            let sum = (sum & 0xffff) + (sum >> 16);
            let sum = !((sum & 0xffff) + (sum >> 16)) as u16;
            ip[10..12].copy_from_slice(&sum.to_be_bytes());
            out.extend_from_slice(&ip);
            out.extend_from_slice(&30_000u16.to_be_bytes());
            out.extend_from_slice(&40_000u16.to_be_bytes());
            out.extend_from_slice(&(udp_len as u16).to_be_bytes());
            out.extend_from_slice(&[0, 0]);
            out.extend_from_slice(p);
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread")]
async fn sipp_device_streams_ps_over_udp_into_flv() {
    let gw = gateway(true);
    sip_settings(
        &gw,
        json!({"password": PASSWORD, "auto_accept": true, "keepalive_interval_secs": 5}),
    )
    .await;
    let pcap = ps_rtp_pcap("h264-es/240x320.h264", 250);
    let sipp = Sipp::start(
        &gw,
        &SippRun {
            keepalives: 14,
            keepalive_ms: 1000,
            files: vec![("media.pcap", pcap)],
            ..Default::default()
        },
    );
    wait_device(
        &gw,
        DEVICE,
        "catalog-synced",
        Duration::from_secs(15),
        |d| !d["catalog_synced_at"].is_null(),
    )
    .await;
    let id = format!("{DEVICE}_{CHANNEL}");
    // A viewer asks for the channel's FLV: one INVITE, PS/RTP in, FLV out.
    let started = Instant::now();
    let log = ffmpeg_decode(&ffmpeg_debian(), &format!("{}/live/{id}.flv", gw.base), 50).await;
    assert!(decoded_frames(&log) >= 50, "{log}");
    assert!(log.contains("h264"), "{log}");
    assert!(log.contains("240x320") || log.contains("320x240"), "{log}");
    let first_frames = started.elapsed();
    // The answered SSRC (not ours) was adopted.
    let (status, s) = gw
        .api(Method::GET, &format!("/api/v1/streams/{id}"), None)
        .await;
    assert_eq!(status, 200, "{s}");
    assert_eq!(s["gb28181"]["ssrc"], "0200000101", "{s}");
    assert_eq!(s["gb28181"]["transport"], "udp");
    assert_eq!(s["gb28181"]["invites"], 1);
    assert!(s["gb28181"]["packets"].as_u64().unwrap() > 100, "{s}");
    assert_eq!(s["gb28181"]["lost"], 0, "{s}");
    assert!(
        gw.logs
            .contains("device answered its own SSRC: adopting it"),
        "{}",
        gw.logs.all().join("\n")
    );
    // The viewer left; after the grace period (2 s) the gateway sends BYE.
    gw.logs
        .wait_for("BYE after the last viewer", Duration::from_secs(15), |l| {
            l.contains("GB28181 session closed: no viewers")
        });
    let (ok, errors) = sipp.wait(Duration::from_secs(60));
    assert!(ok, "sipp: {errors}");
    eprintln!("first 50 frames decoded after {first_frames:?}");
}
