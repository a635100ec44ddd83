//! GB28181 media end to end with `camgate sim` as the device: TCP passive and
//! TCP active, H.264 + G.711A and H.265 + AAC, read back as FLV by FFmpeg;
//! on-demand INVITE and BYE seen from the device's side.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use reqwest::Method;
use serde_json::json;

use crate::common::{Gateway, GatewayOptions, Lines, ffmpeg_decode, ffmpeg9, fixture, wait_child};
use crate::gb::{PASSWORD, channels, sip_settings, wait_device};

pub(crate) const SIM_DEVICE: &str = "34020000001320000001";

pub(crate) struct Sim {
    pub(crate) child: Child,
    pub(crate) logs: Lines,
}

impl Sim {
    pub(crate) fn start(gw: &Gateway, input: &Path, extra: &[&str]) -> Self {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_camgate"));
        cmd.arg("sim")
            .args(["--platform", &gw.sip.to_string()])
            .args(["--devices", "1", "--channels", "2"])
            .args(["--password", PASSWORD, "--keepalive-secs", "5"])
            .args(["--listen", "127.0.0.1:0"])
            .arg("--input")
            .arg(input)
            .args(extra)
            .env("CAMGATE_LOG", "info,camgate=debug")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("start camgate sim");
        let logs = Lines::default();
        logs.spawn_reader(child.stderr.take().unwrap(), None);
        logs.wait_for("sim ready", Duration::from_secs(20), |l| {
            l.contains("sim ready")
        });
        Self { child, logs }
    }
}

impl Drop for Sim {
    fn drop(&mut self) {
        crate::common::signal(self.child.id(), "TERM");
        if wait_child(&mut self.child, Duration::from_secs(5)).is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Encodes a short test clip with Debian's FFmpeg (libx265, aac).
pub(crate) fn encode(dir: &Path, name: &str, args: &[&str]) -> PathBuf {
    let out = dir.join(name);
    let status = Command::new("/usr/bin/ffmpeg")
        .args(["-hide_banner", "-loglevel", "error", "-y"])
        .args(args)
        .arg(&out)
        .status()
        .expect("run /usr/bin/ffmpeg (apt-get install ffmpeg)");
    assert!(status.success(), "ffmpeg could not make {name}");
    out
}

/// A 4 s 320x240 H.265 clip (libx265, keyframe every second) and a 4 s
/// 1 kHz AAC tone (ADTS, 16 kHz mono), made with Debian's FFmpeg.
pub(crate) fn h265_aac_clip(dir: &Path) -> (PathBuf, PathBuf) {
    let h265 = encode(
        dir,
        "clip.h265",
        &[
            "-f",
            "lavfi",
            "-i",
            "testsrc=size=320x240:rate=25",
            "-t",
            "4",
            "-pix_fmt",
            "yuv420p",
            "-c:v",
            "libx265",
            "-x265-params",
            "keyint=25:log-level=error",
            "-f",
            "hevc",
        ],
    );
    let aac = encode(
        dir,
        "tone.aac",
        &[
            "-f",
            "lavfi",
            "-i",
            "sine=frequency=1000:sample_rate=16000",
            "-t",
            "4",
            "-c:a",
            "aac",
            "-ac",
            "1",
            "-f",
            "adts",
        ],
    );
    (h265, aac)
}

pub(crate) async fn setup(gw: &Gateway) {
    sip_settings(
        gw,
        json!({"password": PASSWORD, "auto_accept": true, "keepalive_interval_secs": 5}),
    )
    .await;
}

pub(crate) async fn first_camera(gw: &Gateway) -> String {
    wait_device(
        gw,
        SIM_DEVICE,
        "catalog-synced",
        Duration::from_secs(15),
        |d| !d["catalog_synced_at"].is_null(),
    )
    .await;
    let ch = channels(gw, SIM_DEVICE).await;
    assert_eq!(ch.len(), 2, "{ch:?}");
    ch[0]["id"].as_str().unwrap().to_owned()
}

/// A `camgate sim` device sending H.264 + G.711A, registered and with its
/// catalog synced: (the device, its first channel id). Used by the browser
/// tests.
pub(crate) async fn start_h264_g711a_sim(gw: &Gateway) -> (Sim, String) {
    setup(gw).await;
    let sim = Sim::start(gw, &fixture("h264-es/240x320.h264"), &["--audio", "g711a"]);
    let channel = first_camera(gw).await;
    (sim, channel)
}

async fn play_over(gw: &Gateway, channel: &str, transport: &str, expect: &[&str]) -> String {
    let (status, body) = gw
        .api(
            Method::PATCH,
            &format!("/api/v1/channels/{SIM_DEVICE}/{channel}"),
            Some(json!({"transport": transport})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["media_transport"], transport);
    // The play API starts it and answers with the URLs once media flows.
    let (status, play) = gw
        .api(
            Method::POST,
            &format!("/api/v1/channels/{SIM_DEVICE}/{channel}/play"),
            None,
        )
        .await;
    assert_eq!(status, 200, "{play}");
    assert_eq!(play["session"]["transport"], transport);
    let url = play["urls"]["http_flv"].as_str().unwrap().to_owned();
    let log = ffmpeg_decode(&ffmpeg9(), &url, 40).await;
    assert!(crate::common::decoded_frames(&log) >= 40, "{log}");
    for e in expect {
        assert!(log.contains(e), "no {e:?} in:\n{log}");
    }
    log
}

#[tokio::test(flavor = "multi_thread")]
async fn sim_tcp_passive_h264_g711a_and_on_demand_bye() {
    let gw = Gateway::start(GatewayOptions::default());
    setup(&gw).await;
    let sim = Sim::start(
        &gw,
        &fixture("h264-es/240x320.h264"),
        &[
            "--audio",
            "g711a",
            "--ps-stuffing-counter",
            "--ps-private-bd",
        ],
    );
    let channel = first_camera(&gw).await;
    play_over(&gw, &channel, "tcp_passive", &["h264", "pcm_alaw"]).await;
    sim.logs
        .wait_for("INVITE at the device", Duration::from_secs(5), |l| {
            l.contains("sim invite") && l.contains("tcp_passive")
        });
    // Nobody watches any more: BYE after the grace period (2 s).
    sim.logs
        .wait_for("BYE from the platform", Duration::from_secs(15), |l| {
            l.contains("sim bye") && l.contains("by=platform")
        });
    // DELETE on a stream that is not running is a 404; a running one stops.
    let (status, _) = gw
        .api(
            Method::DELETE,
            &format!("/api/v1/channels/{SIM_DEVICE}/{channel}/play"),
            None,
        )
        .await;
    assert!(status == 204 || status == 404, "{status}");
}

#[tokio::test(flavor = "multi_thread")]
async fn sim_tcp_active_h265_aac() {
    let dir = tempfile::tempdir().unwrap();
    let (h265, aac) = h265_aac_clip(dir.path());
    let gw = Gateway::start(GatewayOptions::default());
    setup(&gw).await;
    let sim = Sim::start(
        &gw,
        &h265,
        &[
            "--audio",
            "aac-file",
            aac.to_str().unwrap(),
            "--answer-zero-ssrc",
        ],
    );
    let channel = first_camera(&gw).await;
    play_over(&gw, &channel, "tcp_active", &["hevc", "aac"]).await;
    sim.logs
        .wait_for("INVITE at the device", Duration::from_secs(5), |l| {
            l.contains("sim invite") && l.contains("tcp_active")
        });
    // Stop it through the API: BYE now, whoever watches.
    let (status, _) = gw
        .api(
            Method::POST,
            &format!("/api/v1/channels/{SIM_DEVICE}/{channel}/play"),
            None,
        )
        .await;
    assert_eq!(status, 200);
    let (status, _) = gw
        .api(
            Method::DELETE,
            &format!("/api/v1/channels/{SIM_DEVICE}/{channel}/play"),
            None,
        )
        .await;
    assert_eq!(status, 204);
    sim.logs
        .wait_for("BYE from the platform", Duration::from_secs(10), |l| {
            l.contains("sim bye") && l.contains("by=platform")
        });
}

/// The device ends the session (BYE, here because the simulator stops): the
/// gateway answers 200, the stream ends and its viewer sees the end.
#[tokio::test(flavor = "multi_thread")]
async fn device_bye_ends_the_stream() {
    let gw = Gateway::start(GatewayOptions::default());
    setup(&gw).await;
    // It also answers `y=0000000000`: the gateway takes the first SSRC from
    // the device's address on the shared UDP port.
    let mut sim = Sim::start(
        &gw,
        &fixture("h264-es/240x320.h264"),
        &["--answer-zero-ssrc"],
    );
    let channel = first_camera(&gw).await;
    let url = format!("{}/live/{SIM_DEVICE}_{channel}.flv", gw.base);
    let viewer = tokio::spawn(async move {
        tokio::time::timeout(
            Duration::from_secs(60),
            tokio::process::Command::new(ffmpeg9())
                .args(["-hide_banner", "-nostdin", "-i", &url, "-f", "null", "-"])
                .kill_on_drop(true)
                .output(),
        )
        .await
    });
    sim.logs
        .wait_for("media flowing", Duration::from_secs(10), |l| {
            l.contains("sim media started")
        });
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(
        gw.logs
            .contains("session without an answered SSRC learnt it from its first packet"),
        "{}",
        gw.logs.all().join("\n")
    );
    crate::common::signal(sim.child.id(), "TERM");
    let out = viewer
        .await
        .unwrap()
        .expect("the viewer saw the end of the stream")
        .expect("run ffmpeg");
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(crate::common::decoded_frames(&log) >= 25, "{log}");
    gw.logs.wait_for("device BYE", Duration::from_secs(5), |l| {
        l.contains("device ended the media dialog (BYE)")
    });
    gw.logs.wait_for("stream end", Duration::from_secs(5), |l| {
        l.contains("GB28181 stream ended") && l.contains("the device ended the session (BYE)")
    });
    let _ = wait_child(&mut sim.child, Duration::from_secs(5));
}

/// `systemctl stop` (SIGTERM) with a GB28181 session playing: the platform
/// sends BYE to the device before it exits, and exits 0.
#[tokio::test(flavor = "multi_thread")]
async fn sigterm_sends_bye_to_gb28181_sessions() {
    let mut gw = Gateway::start(GatewayOptions::default());
    setup(&gw).await;
    let sim = Sim::start(&gw, &fixture("h264-es/240x320.h264"), &[]);
    let channel = first_camera(&gw).await;
    play_over(&gw, &channel, "udp", &["h264"]).await;
    let status = tokio::task::block_in_place(|| gw.terminate(Duration::from_secs(20)));
    assert!(status.success(), "{status:?}");
    sim.logs
        .wait_for("BYE from the platform", Duration::from_secs(5), |l| {
            l.contains("sim bye") && l.contains("by=platform")
        });
}
