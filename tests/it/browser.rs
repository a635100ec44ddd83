//! Headless Chromium plays the gateway's outputs: WHEP (WebRTC) and LL-HLS
//! through hls.js (MSE), from an RTSP camera (H.264 + AAC), and WHEP from a
//! `camgate sim` GB28181 device (H.264 + G.711A) with PCMA negotiated.
//! Scripts in tests/browser (playwright-core, hls.js from npm; Debian's
//! chromium).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::common::{Camera, Gateway, GatewayOptions};

pub(crate) fn browser_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/browser")
}

/// Fails the test, with the command that installs it, if chromium, node or
/// the npm packages of tests/browser are missing.
pub(crate) fn require_browser_tools() {
    assert!(
        Path::new("/usr/bin/chromium").exists(),
        "/usr/bin/chromium missing: apt-get install -y chromium"
    );
    assert!(
        Command::new("node").arg("--version").output().is_ok(),
        "node missing: apt-get install -y nodejs npm"
    );
    let dir = browser_dir();
    assert!(
        dir.join("node_modules/playwright-core").exists()
            && dir.join("node_modules/hls.js").exists(),
        "browser test packages missing: (cd tests/browser && npm ci)"
    );
}

/// Runs `node tests/browser/<script> <args…>` and returns the JSON result
/// it prints last, failing the test (with the install command) if a tool is
/// missing, and with the script's output and the gateway's log if the
/// result is not `ok`.
pub(crate) async fn run_node(script: &str, args: Vec<String>, gw: &Gateway) -> serde_json::Value {
    require_browser_tools();
    let dir = browser_dir();
    let script_path = dir.join(script);
    let out = tokio::task::spawn_blocking(move || {
        Command::new("node")
            .arg(script_path)
            .args(args)
            .current_dir(&dir)
            .output()
            .expect("run node")
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let line = stdout.lines().last().unwrap_or("");
    let result: serde_json::Value = serde_json::from_str(line)
        .unwrap_or_else(|e| panic!("no JSON result ({e}):\nstdout:\n{stdout}\nstderr:\n{stderr}"));
    let logs = gw.logs.all();
    assert!(
        out.status.success() && result["ok"] == true,
        "{script} failed: {result:#}\nstderr:\n{stderr}\ngateway log (last 200 lines):\n{}",
        logs[logs.len().saturating_sub(200)..].join("\n")
    );
    eprintln!("{script}: {result}");
    result
}

/// Runs `node tests/browser/<script> <base> <stream>` (whep.mjs, hls.mjs).
async fn run_browser(script: &str, gw: &Gateway, stream: &str) -> serde_json::Value {
    let args = [gw.base.as_str(), stream, "--timeout-secs", "60"];
    run_node(script, args.map(str::to_owned).to_vec(), gw).await
}

#[tokio::test(flavor = "multi_thread")]
async fn chromium_plays_rtsp_camera_over_whep_and_ll_hls() {
    let cam = Camera::start();
    let gw = Gateway::start(GatewayOptions::default());
    gw.add_source("gate", &cam.url("h264aac"), "tcp").await;

    let whep = run_browser("whep.mjs", &gw, "gate").await;
    assert!(whep["frames"].as_u64().unwrap() > 30, "{whep}");
    assert_eq!(whep["width"], 640, "{whep}");
    assert_eq!(whep["codecs"]["video"]["mimeType"], "video/H264", "{whep}");
    // AAC can't be carried: the audio section is answered but not sent on.
    assert!(whep["codecs"]["audio"].is_null(), "{whep}");
    assert_eq!(whep["deleteStatus"], 200, "{whep}");
    gw.logs
        .wait_for("the WHEP session to end", Duration::from_secs(5), |l| {
            l.contains("WebRTC session ended")
        });

    let hls = run_browser("hls.mjs", &gw, "gate").await;
    assert!(hls["frames"].as_u64().unwrap() > 30, "{hls}");
    assert_eq!(hls["width"], 640, "{hls}");
    // One muxed fMP4 rendition: hls.js reports "audiovideo" codecs.
    assert!(hls["codecs"].to_string().contains("avc1"), "{hls}");
    assert!(hls["codecs"].to_string().contains("mp4a"), "{hls}");
}

#[tokio::test(flavor = "multi_thread")]
async fn chromium_plays_gb28181_h264_g711a_over_whep_with_pcma() {
    let gw = Gateway::start(GatewayOptions::default());
    let (sim, channel) = crate::gb_sim::start_h264_g711a_sim(&gw).await;
    let stream = format!("{}_{channel}", crate::gb_sim::SIM_DEVICE);
    let whep = run_browser("whep.mjs", &gw, &stream).await;
    assert_eq!(whep["codecs"]["video"]["mimeType"], "video/H264", "{whep}");
    assert_eq!(whep["audioAnswered"], "PCMA", "{whep}");
    assert_eq!(whep["codecs"]["audio"]["mimeType"], "audio/PCMA", "{whep}");
    assert!(
        whep["codecs"]["audio"]["packets"].as_u64().unwrap_or(0) > 0,
        "{whep}"
    );
    drop(sim);
}
