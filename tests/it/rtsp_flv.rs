//! RTSP camera in → HTTP-FLV / WS-FLV out, decoded by FFmpeg and parsed.

use std::time::Duration;

use bytes::{Bytes, BytesMut};
use futures_util::StreamExt;

use crate::common::{
    Camera, Gateway, GatewayOptions, TOKEN, decoded_frames, ffmpeg_debian, ffmpeg_decode, ffmpeg9,
};
use camgate::egress::flv::mux::parse;

#[tokio::test(flavor = "multi_thread")]
async fn h264_pcma_over_rtsp_tcp_decodes_with_debian_ffmpeg() {
    let cam = Camera::start();
    let gw = Gateway::start(GatewayOptions::default());
    gw.add_source("lobby", &cam.url("h264"), "tcp").await;
    let log = ffmpeg_decode(&ffmpeg_debian(), &gw.url("/live/lobby.flv"), 50).await;
    assert!(log.contains("Video: h264"), "{log}");
    assert!(log.contains("640x360"), "{log}");
    assert!(log.contains("Audio: pcm_alaw, 8000 Hz, mono"), "{log}");
    assert!(decoded_frames(&log) >= 50, "{log}");
}

#[tokio::test(flavor = "multi_thread")]
async fn h265_pcmu_over_rtsp_udp_decodes_as_enhanced_flv_with_ffmpeg9() {
    let cam = Camera::start();
    let gw = Gateway::start(GatewayOptions::default());
    gw.add_source("gate", &cam.url("h265"), "udp").await;
    let log = ffmpeg_decode(&ffmpeg9(), &gw.url("/live/gate.flv"), 50).await;
    assert!(log.contains("Video: hevc"), "{log}");
    assert!(log.contains("640x360"), "{log}");
    assert!(log.contains("Audio: pcm_mulaw"), "{log}");
    assert!(decoded_frames(&log) >= 50, "{log}");
    // The stream really went over UDP (retina's SETUP with client_port).
    assert!(
        gw.logs.contains("transport=\"udp\""),
        "{}",
        gw.logs.all().join("\n")
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn h264_over_rtsp_udp_decodes_with_debian_ffmpeg() {
    let cam = Camera::start();
    let gw = Gateway::start(GatewayOptions::default());
    gw.add_source("yard", &cam.url("h264only"), "udp").await;
    let log = ffmpeg_decode(&ffmpeg_debian(), &gw.url("/live/yard.flv"), 50).await;
    assert!(log.contains("Video: h264"), "{log}");
    assert!(!log.contains("Audio:"), "no audio track expected: {log}");
}

/// Reads WS-FLV with a plain WebSocket client and checks the FLV byte stream:
/// header, metadata, sequence headers, a keyframe first, timestamps starting
/// at 0 and rising per track.
#[tokio::test(flavor = "multi_thread")]
async fn ws_flv_h264_aac_parses_and_starts_on_a_keyframe() {
    let cam = Camera::start();
    let gw = Gateway::start(GatewayOptions::default());
    gw.add_source("hall", &cam.url("h264aac"), "tcp").await;
    let ws_url = gw.url("/live/hall.flv").replacen("http://", "ws://", 1);
    let (mut ws, resp) = tokio_tungstenite::connect_async(&ws_url)
        .await
        .expect("WS connect");
    assert_eq!(resp.status().as_u16(), 101);
    let mut buf = BytesMut::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    // About three seconds of media.
    while buf.len() < 60_000 || count_video(&buf) < 75 {
        let msg = tokio::time::timeout_at(deadline, ws.next())
            .await
            .expect("WS-FLV data within 30 s")
            .expect("WS open")
            .expect("WS message");
        if let tokio_tungstenite::tungstenite::Message::Binary(b) = msg {
            buf.extend_from_slice(&b);
        }
    }
    drop(ws);
    let data = buf.freeze();
    assert_eq!(&data[..3], b"FLV");
    assert_eq!(data[4], 0x05, "header announces audio and video");
    let tags = match parse(&data) {
        Ok(t) => t,
        Err(camgate::egress::flv::mux::FlvParseError::Truncated(at)) => {
            parse(&data.slice(..at)).expect("complete tags parse")
        }
        Err(e) => panic!("bad FLV: {e}"),
    };
    assert_eq!(tags[0].kind, 18, "onMetaData first");
    let seq_video = tags
        .iter()
        .position(|t| t.kind == 9 && t.body[..2] == [0x17, 0])
        .expect("AVC sequence header");
    let seq_audio = tags
        .iter()
        .position(|t| t.kind == 8 && t.body[..2] == [0xaf, 0])
        .expect("AAC sequence header");
    let first_video = tags
        .iter()
        .position(|t| t.kind == 9 && t.body[1] == 1)
        .expect("video frames");
    let first_audio = tags
        .iter()
        .position(|t| t.kind == 8 && t.body[1] == 1)
        .expect("AAC frames");
    // Each sequence header precedes its own track's first frame; audio may
    // start after the first keyframe (a camera's first AAC frame can come later).
    assert!(seq_video < first_video, "AVC header before video");
    assert!(seq_audio < first_audio, "AAC header before audio");
    assert_eq!(
        tags[first_video].body[0], 0x17,
        "viewer starts on a keyframe"
    );
    assert_eq!(
        tags[first_video].timestamp, 0,
        "viewer timeline starts at 0"
    );
    let mut last = [0u32; 32];
    for t in &tags {
        assert!(
            t.timestamp >= last[t.kind as usize],
            "timestamps go back: {} after {}",
            t.timestamp,
            last[t.kind as usize]
        );
        last[t.kind as usize] = t.timestamp;
    }
    let audio = tags
        .iter()
        .filter(|t| t.kind == 8 && t.body[1] == 1)
        .count();
    assert!(audio > 10, "AAC frames flow: {audio}");
    assert!(last[9] > 1000, "several seconds of video: {} ms", last[9]);
}

fn count_video(buf: &BytesMut) -> usize {
    let data: Bytes = Bytes::copy_from_slice(buf);
    let tags = match parse(&data) {
        Ok(t) => t,
        Err(camgate::egress::flv::mux::FlvParseError::Truncated(at)) if at > 13 => {
            parse(&data.slice(..at)).unwrap_or_default()
        }
        Err(_) => return 0,
    };
    tags.iter().filter(|t| t.kind == 9).count()
}

/// Several viewers of one stream share one RTSP session and one FLV muxer.
#[tokio::test(flavor = "multi_thread")]
async fn concurrent_viewers_share_one_camera_session() {
    let cam = Camera::start();
    let gw = Gateway::start(GatewayOptions::default());
    gw.add_source("shared", &cam.url("h264"), "tcp").await;
    let url = gw.url("/live/shared.flv");
    let ff = ffmpeg_debian();
    let runs = (0..3).map(|_| ffmpeg_decode(&ff, &url, 75));
    for log in futures_util::future::join_all(runs).await {
        assert!(log.contains("Video: h264"), "{log}");
    }
    assert_eq!(
        cam.count("PLAY "),
        1,
        "one camera session for three viewers: {:?}",
        cam.events.all()
    );
}

/// An RTSP camera that asks for credentials gets them from the source.
#[tokio::test(flavor = "multi_thread")]
async fn camera_credentials_are_used_and_never_returned() {
    let cam = Camera::start_with(&["--user", "viewer", "--password", "s3cret!"]);
    let gw = Gateway::start(GatewayOptions::default());
    let url = format!("rtsp://viewer:s3cret%21@127.0.0.1:{}/h264only", cam.port);
    gw.add_source("secure", &url, "tcp").await;
    let (_, body) = gw
        .api(reqwest::Method::GET, "/api/v1/sources/secure", None)
        .await;
    let text = body.to_string();
    assert!(
        !text.contains("s3cret") && !text.contains("viewer"),
        "{text}"
    );
    assert_eq!(body["has_credentials"], true);
    let log = ffmpeg_decode(&ffmpeg_debian(), &gw.url("/live/secure.flv"), 25).await;
    assert!(log.contains("Video: h264"), "{log}");

    // A wrong password gives a clear error to the viewer, not a hang.
    let (s, _) = gw
        .api(
            reqwest::Method::PATCH,
            "/api/v1/sources/secure",
            Some(serde_json::json!({"password": "wrong"})),
        )
        .await;
    assert_eq!(s, 200);
    tokio::time::sleep(Duration::from_secs(3)).await; // grace: the old session ends
    let (status, err) = gw.get("/live/secure.flv", None).await;
    assert_eq!(status, 502);
    assert_eq!(err["error"]["code"], "source_failed");
    assert!(
        err["error"]["message"].as_str().unwrap().contains("401"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn probe_tests_a_camera_without_storing_it() {
    let cam = Camera::start();
    let gw = Gateway::start(GatewayOptions::default());
    let (s, v) = gw
        .api(
            reqwest::Method::POST,
            "/api/v1/probe/rtsp",
            Some(serde_json::json!({"url": cam.url("h264")})),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["ok"], true, "{v}");
    let r = &v["report"];
    assert!(
        r["video_codec"].as_str().unwrap().starts_with("avc1."),
        "{v}"
    );
    assert!(
        r["width"].as_u64().unwrap() > 0 && r["height"].as_u64().unwrap() > 0,
        "{v}"
    );
    assert!(
        r["streams"]
            .as_array()
            .unwrap()
            .iter()
            .any(|s| s["media"] == "video" && s["encoding"] == "h264" && s["used"] == true),
        "{v}"
    );
    // Nothing was stored or started.
    let (_, sources) = gw.get("/api/v1/sources", Some(TOKEN)).await;
    assert_eq!(sources, serde_json::json!([]));
    // A wrong path is a failed test with the camera's answer, not an error.
    let (s, v) = gw
        .api(
            reqwest::Method::POST,
            "/api/v1/probe/rtsp",
            Some(serde_json::json!({"url": cam.url("no-such-mount")})),
        )
        .await;
    assert_eq!((s, v["ok"].as_bool()), (200, Some(false)), "{v}");
    assert!(v["error"].as_str().unwrap().contains("DESCRIBE"), "{v}");
    // A stored source is tested by name.
    gw.add_source("gate", &cam.url("h264"), "udp").await;
    let (s, v) = gw
        .api(
            reqwest::Method::POST,
            "/api/v1/probe/rtsp",
            Some(serde_json::json!({"name": "gate"})),
        )
        .await;
    assert_eq!((s, v["ok"].as_bool()), (200, Some(true)), "{v}");
    let (s, v) = gw
        .api(
            reqwest::Method::POST,
            "/api/v1/probe/rtsp",
            Some(serde_json::json!({"url": "http://example.invalid/"})),
        )
        .await;
    assert_eq!((s, v["error"]["field"].as_str()), (400, Some("url")), "{v}");
}
