//! One stream, every output at once: a GB28181 source (`camgate sim`) and an
//! RTSP source (GStreamer) are each watched over HTTP-FLV (Debian FFmpeg),
//! LL-HLS (FFmpeg 9), RTSP (Debian FFmpeg, TCP) and WebRTC (str0m as WHEP
//! client) in parallel; the stream info counts a viewer on every output and,
//! for the GB28181 source, reports the added latency of each.

use std::time::{Duration, Instant};

use serde_json::Value;

use crate::common::{
    Camera, Gateway, GatewayOptions, decoded_frames, ffmpeg_debian, ffmpeg_decode, ffmpeg9, fixture,
};
use crate::gb_sim::{SIM_DEVICE, Sim, first_camera, setup};

const OUTPUTS: [&str; 4] = ["flv", "hls", "rtsp", "webrtc"];

/// Polls the stream info until `ok` holds for it (or fails after 60 s).
async fn wait_stream(gw: &Gateway, id: &str, what: &str, ok: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (status, s) = gw
            .api(reqwest::Method::GET, &format!("/api/v1/streams/{id}"), None)
            .await;
        if status == 200 && ok(&s) {
            return s;
        }
        assert!(Instant::now() < deadline, "stream {id}: no {what}: {s}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Watches `id` on all four outputs at once; returns the stream info seen
/// while every output had its viewer.
async fn watch_everywhere(gw: &Gateway, id: &str, expect_latency: bool) -> Value {
    // The first viewer starts the source; the play URLs come from the API.
    let flv = tokio::spawn({
        let url = gw.url(&format!("/live/{id}.flv"));
        async move { ffmpeg_decode(&ffmpeg_debian(), &url, 150).await }
    });
    let info = wait_stream(gw, id, "URLs", |s| s["urls"]["whep"].is_string()).await;
    let urls = info["urls"].clone();
    for o in ["http_flv", "ws_flv", "hls", "rtsp", "whep"] {
        assert!(urls[o].is_string(), "no {o} URL: {info}");
    }
    let hls = tokio::spawn({
        let url = urls["hls"].as_str().unwrap().to_owned();
        async move { ffmpeg_decode(&ffmpeg9(), &url, 100).await }
    });
    let rtsp = tokio::spawn({
        let url = urls["rtsp"].as_str().unwrap().to_owned();
        async move { crate::rtsp_out::decode_ok(&ffmpeg_debian(), "tcp", &url, 150).await }
    });
    let webrtc = crate::webrtc::whep_play(gw, id, 60);
    let seen = async {
        wait_stream(gw, id, "a viewer on every output", |s| {
            OUTPUTS
                .iter()
                .all(|o| s["viewers_by_output"][o].as_u64().unwrap_or(0) >= 1)
                && (!expect_latency
                    || OUTPUTS
                        .iter()
                        .all(|o| s["added_latency_us"][o]["p99"].is_u64()))
        })
        .await
    };
    let (got, seen) = tokio::join!(webrtc, seen);
    assert!(got.frames >= 60, "WebRTC: {got:?}");
    assert_eq!(got.first_was_keyframe, Some(true), "{got:?}");
    for (name, task) in [("FLV", flv), ("HLS", hls), ("RTSP", rtsp)] {
        let log = task.await.unwrap();
        assert!(decoded_frames(&log) >= 100, "{name}:\n{log}");
    }
    seen
}

#[tokio::test(flavor = "multi_thread")]
async fn gb28181_and_rtsp_sources_reach_every_output_at_once() {
    let gw = Gateway::start(GatewayOptions::default());
    setup(&gw).await;
    let sim = Sim::start(&gw, &fixture("h264-es/240x320.h264"), &[]);
    let ch = first_camera(&gw).await;
    let id = format!("{SIM_DEVICE}_{ch}");
    let info = watch_everywhere(&gw, &id, true).await;
    assert_eq!(info["source"]["state"], "live", "{info}");
    check_metrics(&gw, &id).await;
    drop(sim);

    let cam = Camera::start();
    gw.add_source("lobby", &cam.url("h264aac"), "tcp").await;
    let info = watch_everywhere(&gw, "lobby", false).await;
    // MSE players get AAC; only G.711 would be left out of HLS.
    assert!(info["hls"]["audio_omitted"].is_null(), "{info}");
}

/// `/metrics` needs a token and is well-formed Prometheus text with the
/// stream's series.
async fn check_metrics(gw: &Gateway, stream: &str) {
    let client = Gateway::client();
    let r = client.get(gw.url("/metrics")).send().await.unwrap();
    assert_eq!(r.status(), 401);
    let r = client
        .get(gw.url("/metrics"))
        .bearer_auth(crate::common::TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(
        r.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain; version=0.0.4")
    );
    let text = r.text().await.unwrap();
    let mut typed = std::collections::HashSet::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').unwrap();
            assert!(["gauge", "counter"].contains(&kind), "{line}");
            typed.insert(name.to_owned());
            continue;
        }
        if line.starts_with("# HELP ") {
            continue;
        }
        // name{labels} value
        let (series, value) = line.rsplit_once(' ').unwrap_or_else(|| panic!("{line}"));
        value
            .parse::<f64>()
            .unwrap_or_else(|_| panic!("bad value: {line}"));
        let name = series.split('{').next().unwrap();
        assert!(typed.contains(name), "series before its TYPE: {line}");
        assert!(
            name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_'),
            "{line}"
        );
    }
    for want in [
        format!("camgate_stream_live{{stream=\"{stream}\"}} 1"),
        format!("camgate_stream_viewers{{stream=\"{stream}\",output=\"flv\"}}"),
        format!("camgate_gb_rtp_packets_total{{stream=\"{stream}\"}}"),
        format!(
            "camgate_stream_added_latency_seconds{{stream=\"{stream}\",output=\"webrtc\",quantile=\"0.99\"}}"
        ),
        "camgate_gb_devices{state=\"online\"} 1".to_owned(),
        "camgate_streams{kind=\"gb28181\"} 1".to_owned(),
    ] {
        assert!(text.contains(&want), "no {want} in\n{text}");
    }
    // Every watched output has sent bytes.
    for output in ["flv", "hls", "rtsp", "webrtc"] {
        let key =
            format!("camgate_stream_out_bytes_total{{stream=\"{stream}\",output=\"{output}\"}} ");
        let out = text
            .lines()
            .find_map(|l| l.strip_prefix(key.as_str()))
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or_else(|| panic!("no {key} in\n{text}"));
        assert!(out > 0, "{key}{out}");
    }
    let sent = text
        .lines()
        .find_map(|l| l.strip_prefix("camgate_sip_requests_received_total "))
        .and_then(|v| v.parse::<u64>().ok())
        .unwrap();
    assert!(sent > 0, "{text}");
}
