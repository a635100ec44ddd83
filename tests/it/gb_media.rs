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
        s["gb28181"]["added_latency_us_p50"].is_u64(),
        "measured: {s}"
    );
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

fn gateway_with(toml: &str) -> crate::common::Gateway {
    crate::common::Gateway::start(crate::common::GatewayOptions {
        config_toml: format!("[sip]\ncatalog_timeout_secs = 5\nquery_timeout_secs = 5\n{toml}"),
        ..Default::default()
    })
}

async fn registered_sipp(gw: &crate::common::Gateway, pcap: Vec<u8>, keepalives: u32) -> Sipp {
    sip_settings(
        gw,
        json!({"password": PASSWORD, "auto_accept": true, "keepalive_interval_secs": 5}),
    )
    .await;
    let sipp = Sipp::start(
        gw,
        &SippRun {
            keepalives,
            keepalive_ms: 1000,
            files: vec![("media.pcap", pcap)],
            ..Default::default()
        },
    );
    wait_device(gw, DEVICE, "catalog-synced", Duration::from_secs(15), |d| {
        !d["catalog_synced_at"].is_null()
    })
    .await;
    sipp
}

/// FFmpeg reading a stream to its end (no frame limit): (exit ok, frames, log).
async fn ffmpeg_until_eof(url: &str) -> (bool, u32, String) {
    let out = tokio::time::timeout(
        Duration::from_secs(60),
        tokio::process::Command::new(ffmpeg_debian())
            .args(["-hide_banner", "-nostdin", "-i", url, "-f", "null", "-"])
            .kill_on_drop(true)
            .output(),
    )
    .await
    .expect("ffmpeg did not see the end of the stream")
    .expect("run ffmpeg");
    let log = String::from_utf8_lossy(&out.stderr).into_owned();
    (out.status.success(), decoded_frames(&log), log)
}

/// Several viewers arrive at once: one INVITE. The device's media stops
/// mid-stream: after the media timeout the gateway sends BYE and the viewers
/// see the end of the stream; the next viewer INVITEs again.
#[tokio::test(flavor = "multi_thread")]
async fn concurrent_viewers_one_invite_and_media_stop_ends_the_stream() {
    let gw = gateway_with("[gb_media]\nmedia_timeout_secs = 2\n");
    // 3 s of video, then silence.
    let sipp = registered_sipp(&gw, ps_rtp_pcap("h264-es/240x320.h264", 75), 20).await;
    let url = format!("{}/live/{DEVICE}_{CHANNEL}.flv", gw.base);
    let viewers: Vec<_> = (0..3)
        .map(|_| {
            let url = url.clone();
            tokio::spawn(async move { ffmpeg_until_eof(&url).await })
        })
        .collect();
    for v in viewers {
        let (ok, frames, log) = v.await.unwrap();
        assert!(ok, "{log}");
        assert!(frames >= 40, "{frames} frames before the end:\n{log}");
    }
    let established = gw
        .logs
        .all()
        .iter()
        .filter(|l| l.contains("GB28181 session established"))
        .count();
    assert_eq!(established, 1, "one INVITE for three viewers");
    assert!(
        gw.logs.contains("no media for 2 s"),
        "{}",
        gw.logs.all().join("\n")
    );
    // The next viewer starts a new session (the pcap plays again).
    let (ok, frames, log) = ffmpeg_until_eof(&url).await;
    assert!(ok && frames >= 40, "{log}");
    let established = gw
        .logs
        .all()
        .iter()
        .filter(|l| l.contains("GB28181 session established"))
        .count();
    assert_eq!(established, 2);
    drop(sipp);
}

/// The device accepts the INVITE but sends nothing usable: the viewer gets an
/// error naming the cause, the gateway ends the dialog with BYE.
#[tokio::test(flavor = "multi_thread")]
async fn no_media_after_the_invite_is_an_error_and_a_bye() {
    let gw = gateway_with("[gb_media]\nmedia_timeout_secs = 2\n");
    // A pcap whose only datagram is not RTP.
    let pcap = crate::gb::minimal_pcap();
    let sipp = registered_sipp(&gw, pcap, 10).await;
    let (status, body) = gw.get(&format!("/live/{DEVICE}_{CHANNEL}.flv"), None).await;
    assert_eq!(status, 502, "{body}");
    assert_eq!(body["error"]["code"], "source_failed");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("no media within 2 s after the device accepted the INVITE"),
        "{body}"
    );
    let (ok, errors) = sipp.wait(Duration::from_secs(30));
    assert!(ok, "the device got its BYE and finished: {errors}");
}

/// 5 % of the packets lost and neighbours swapped on the way: the stream
/// keeps playing and the loss shows in the API.
#[tokio::test(flavor = "multi_thread")]
async fn lossy_udp_keeps_playing_and_reports_loss() {
    // A relay between the device and the gateway: the gateway tells devices
    // to send to the relay (public_port), the relay forwards with damage.
    let relay = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let relay_port = relay.local_addr().unwrap().port();
    let gw = gateway_with(&format!("[gb_media]\npublic_port = {relay_port}\n"));
    let line = gw
        .logs
        .wait_for("media ports", Duration::from_secs(5), |l| {
            l.contains("GB28181 media ports listening")
        });
    let media: std::net::SocketAddr = line
        .split("udp=")
        .nth(1)
        .and_then(|s| s.split_whitespace().next())
        .and_then(|s| s.parse().ok())
        .expect("media port in log");
    let forwarded = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let counter = forwarded.clone();
    tokio::spawn(async move {
        let out = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let mut buf = vec![0u8; 65_536];
        let mut held: Option<Vec<u8>> = None;
        let mut n = 0u64;
        while let Ok((len, _)) = relay.recv_from(&mut buf).await {
            n += 1;
            let packet = buf[..len].to_vec();
            if n.is_multiple_of(20) {
                continue; // 5 % loss
            }
            if n.is_multiple_of(7) && held.is_none() {
                held = Some(packet); // sent after the next one
                continue;
            }
            let _ = out.send_to(&packet, media).await;
            if let Some(h) = held.take() {
                let _ = out.send_to(&h, media).await;
            }
            counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
    });
    let sipp = registered_sipp(&gw, ps_rtp_pcap("h264-es/240x320.h264", 250), 14).await;
    let id = format!("{DEVICE}_{CHANNEL}");
    let log = ffmpeg_decode(&ffmpeg_debian(), &format!("{}/live/{id}.flv", gw.base), 100).await;
    assert!(decoded_frames(&log) >= 100, "{log}");
    let (_, s) = gw
        .api(Method::GET, &format!("/api/v1/streams/{id}"), None)
        .await;
    let gb = &s["gb28181"];
    assert!(gb["lost"].as_u64().unwrap() > 0, "{s}");
    assert!(gb["reordered"].as_u64().unwrap() > 0, "{s}");
    let ratio = gb["loss_ratio"].as_f64().unwrap();
    assert!((0.02..0.08).contains(&ratio), "loss ratio {ratio}: {s}");
    assert!(forwarded.load(std::sync::atomic::Ordering::Relaxed) > 100);
    drop(sipp);
}

/// A device whose SSRC is not to be trusted (SSRC check off): its session
/// gets a port of its own from the range, and plays whatever SSRC it sends.
#[tokio::test(flavor = "multi_thread")]
async fn device_without_ssrc_check_gets_its_own_port() {
    let gw = gateway_with("[gb_media]\nport_range = [31000, 31099]\n");
    let sipp = registered_sipp(&gw, ps_rtp_pcap("h264-es/240x320.h264", 150), 14).await;
    let (status, body) = gw
        .api(
            Method::PATCH,
            &format!("/api/v1/devices/{DEVICE}"),
            Some(json!({"ssrc_check": false})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["ssrc_check"], false);
    let id = format!("{DEVICE}_{CHANNEL}");
    let log = ffmpeg_decode(&ffmpeg_debian(), &format!("{}/live/{id}.flv", gw.base), 30).await;
    assert!(decoded_frames(&log) >= 30, "{log}");
    let line = gw.logs.wait_for("own port", Duration::from_secs(1), |l| {
        l.contains("media session on its own port")
    });
    let port: u16 = line
        .rsplit("port=")
        .next()
        .and_then(|p| p.split_whitespace().next())
        .and_then(|p| p.parse().ok())
        .expect("port in log");
    assert!((31000..=31099).contains(&port), "{line}");
    let (_, s) = gw
        .api(Method::GET, &format!("/api/v1/streams/{id}"), None)
        .await;
    assert!(s["gb28181"]["ssrc"].is_null(), "any SSRC accepted: {s}");
    drop(sipp);
}
