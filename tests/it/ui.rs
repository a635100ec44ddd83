//! The admin web UI (web-ui/, served by the gateway at `/`) end to end in
//! headless Chromium: tests/browser/ui.mjs signs in with a user made through
//! the API, finds a `camgate sim` GB28181 device online, opens its channel
//! tree and plays a channel (WebRTC), adds the GStreamer RTSP camera through
//! the sources form and plays it over WebRTC, HTTP-FLV (mpegts.js) and
//! LL-HLS (hls.js), drives the PTZ pad, manages users and tokens, adds a
//! webhook whose signed event reaches a local receiver, changes
//! the on-demand grace,
//! reads events, switches to Chinese and to tablet size, and checks a
//! viewer is kept out of admin pages and APIs, and browses the API docs
//! (search, try-it) with nothing loaded from elsewhere. The gateway is then
//! restarted on the same data dir; signing in with the admin API token and
//! then with the password, the setting and the source are found kept.
//!
//! Full-page screenshots of every page go to `$CAMGATE_UI_SCREENSHOTS`, else
//! `$CARGO_TARGET_DIR/ui-screenshots`, else `target/ui-screenshots` (CI
//! artefacts).

use std::path::{Path, PathBuf};

use reqwest::Method;
use serde_json::json;

use crate::browser::run_node;
use crate::common::{Camera, Gateway, GatewayOptions, TOKEN};
use crate::gb_sim::{SIM_DEVICE, start_h264_g711a_sim};

const USER: &str = "admin";
const PASSWORD: &str = "ui-test-admin-password";

fn screenshot_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("CAMGATE_UI_SCREENSHOTS") {
        return PathBuf::from(d);
    }
    let target = std::env::var_os("CARGO_TARGET_DIR").map_or_else(
        || Path::new(env!("CARGO_MANIFEST_DIR")).join("target"),
        PathBuf::from,
    );
    target.join("ui-screenshots")
}

/// Runs one phase of ui.mjs against `gw` and returns its JSON result.
async fn run_ui(gw: &Gateway, phase: &str, config: &serde_json::Value) -> serde_json::Value {
    let args = vec![gw.base.clone(), phase.to_owned(), config.to_string()];
    run_node("ui.mjs", args, gw).await
}

#[tokio::test(flavor = "multi_thread")]
async fn admin_ui_end_to_end_in_chromium() {
    let shots = screenshot_dir();
    std::fs::create_dir_all(&shots).expect("create the screenshot directory");
    // Only this run's pictures: drop the previous run's.
    for entry in std::fs::read_dir(&shots).expect("read the screenshot directory") {
        let path = entry.expect("directory entry").path();
        if path.extension().is_some_and(|e| e == "png") {
            std::fs::remove_file(&path).expect("remove an old screenshot");
        }
    }

    let cam = Camera::start();
    let gw = Gateway::start(GatewayOptions::default());
    // The first user, made with the admin token as an installer would.
    let (status, body) = gw
        .api(
            Method::POST,
            "/api/v1/users",
            Some(json!({"username": USER, "password": PASSWORD, "role": "admin"})),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let (sim, _channel) = start_h264_g711a_sim(&gw).await;

    // Not the harness's 2 s, so a kept value is told apart from the default.
    let grace = 7;
    let config = json!({
        "user": USER,
        "password": PASSWORD,
        "token": TOKEN,
        "device": SIM_DEVICE,
        "camera_url": cam.url("h264aac"),
        "grace": grace,
        "screenshots": shots,
        "timeout_secs": 60,
    });
    let main = run_ui(&gw, "main", &config).await;
    let shots_taken = main["screenshots"].as_array().map_or(0, Vec::len);
    assert!(shots_taken >= 14, "{main}");
    for transport in ["webrtc", "flv", "hls"] {
        let m = &main["measured"][format!("ui-cam/{transport}")];
        assert_eq!(m["width"], 640, "{transport}: {m}");
        assert!(
            m["info"].as_str().unwrap_or("").contains("H264"),
            "{transport}: {m}"
        );
    }
    drop(sim);

    let (status, media) = gw.api(Method::GET, "/api/v1/settings/media", None).await;
    assert_eq!(status, 200, "{media}");
    assert_eq!(media["on_demand_grace_secs"], grace, "{media}");

    let gw = gw.restart(GatewayOptions::default());
    run_ui(&gw, "after-restart", &config).await;
    for name in [
        "01-login",
        "02-dashboard",
        "03-devices",
        "04-device-channel-tree",
        "06-live-grid",
        "05-sources",
        "07-users-tokens",
        "08-settings",
        "09-events",
        "10-dashboard-zh",
        "12-device-tablet",
        "13-live-tablet",
        "14-viewer-not-allowed",
        "15-settings-after-restart",
        "17-api-docs",
        "18-webhooks",
    ] {
        let png = shots.join(format!("{name}.png"));
        let bytes = std::fs::read(&png).unwrap_or_else(|e| panic!("{}: {e}", png.display()));
        assert!(bytes.starts_with(b"\x89PNG"), "{} is no PNG", png.display());
    }
    eprintln!("UI screenshots in {}", shots.display());
}

/// A gateway without WebRTC: an operator's tile on "Auto" plays over HTTP-FLV
/// by itself, and the operator is kept out of admin pages and settings.
#[tokio::test(flavor = "multi_thread")]
async fn live_tiles_fall_back_without_webrtc_for_an_operator() {
    // A directory of its own: the other UI test clears the top one.
    let shots = screenshot_dir().join("fallback");
    std::fs::create_dir_all(&shots).expect("create the screenshot directory");
    let cam = Camera::start();
    let gw = Gateway::start(GatewayOptions {
        config_toml: "[webrtc]\nenabled = false\n".into(),
        ..Default::default()
    });
    let (status, body) = gw
        .api(
            Method::POST,
            "/api/v1/users",
            Some(json!({"username": "op", "password": "operator-password", "role": "operator"})),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    gw.add_source("fb-cam", &cam.url("h264"), "tcp").await;
    let config = json!({
        "user": "op",
        "password": "operator-password",
        "source": "fb-cam",
        "screenshots": shots,
        "timeout_secs": 60,
    });
    let result = run_ui(&gw, "fallback", &config).await;
    assert_eq!(result["measured"]["fb-cam/flv"]["width"], 640, "{result}");
}
