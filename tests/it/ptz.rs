//! PTZ and device control against `camgate sim` as the GB28181 device: the
//! DeviceControl MESSAGEs it receives (logged decoded), presets from
//! PresetQuery, the gateway's own stop after a bounded move, answered
//! commands (RecordCmd) and refusals.

use std::time::Duration;

use reqwest::Method;
use serde_json::json;

use crate::common::{Gateway, GatewayOptions, fixture};
use crate::gb_sim::{SIM_DEVICE, Sim, first_camera, setup};

#[tokio::test(flavor = "multi_thread")]
async fn ptz_presets_and_device_control_reach_the_simulated_device() {
    let gw = Gateway::start(GatewayOptions::default());
    setup(&gw).await;
    let sim = Sim::start(&gw, &fixture("h264-es/240x320.h264"), &[]);
    let ch = first_camera(&gw).await;
    let base = format!("/api/v1/channels/{SIM_DEVICE}/{ch}");
    let sim_saw = |value: &str, timeout: Duration| {
        sim.logs.wait_for(value, timeout, |l| {
            l.contains("sim device_control") && l.contains(&format!("value={value}"))
        })
    };

    // A bounded move: the PTZCmd for pan left at 200, then the gateway's stop.
    let (status, body) = gw
        .api(
            Method::POST,
            &format!("{base}/ptz"),
            Some(json!({"action": "move", "pan": "left", "speed": 200, "duration_ms": 400})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let hex = body["ptz_cmd"].as_str().unwrap().to_owned();
    assert_eq!(&hex[..10], "A50F0102C8", "{body}");
    let line = sim_saw(&hex, Duration::from_secs(5));
    assert!(line.contains("pan: Some(Left)"), "{line}");
    assert!(line.contains(&format!("channel_id={ch}")), "{line}");
    sim_saw("A50F0100000000B5", Duration::from_secs(5));
    gw.logs.wait_for("auto stop", Duration::from_secs(5), |l| {
        l.contains("PTZ motion stopped by the gateway")
    });

    // Zoom, focus, iris with the standard's worked examples.
    for (req, expect) in [
        (
            json!({"action": "zoom", "direction": "in", "speed": 5}),
            "A50F011000005015",
        ),
        (
            json!({"action": "focus", "direction": "far", "speed": 128}),
            "A50F014180000076",
        ),
        (
            json!({"action": "iris", "direction": "open", "speed": 128}),
            "A50F014400800079",
        ),
        (json!({"action": "lens_stop"}), "A50F0140000000F5"),
        (json!({"action": "stop"}), "A50F0100000000B5"),
    ] {
        let (status, body) = gw
            .api(Method::POST, &format!("{base}/ptz"), Some(req))
            .await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["ptz_cmd"], expect);
        sim_saw(expect, Duration::from_secs(5));
    }

    // Presets: the device's list, then call / set / delete.
    let (status, presets) = gw.api(Method::GET, &format!("{base}/presets"), None).await;
    assert_eq!(status, 200, "{presets}");
    assert_eq!(presets.as_array().unwrap().len(), 3, "{presets}");
    assert_eq!(presets[2]["id"], 3);
    assert_eq!(presets[2]["name"], "停车场");
    let (status, _) = gw
        .api(Method::POST, &format!("{base}/presets/3/call"), None)
        .await;
    assert_eq!(status, 200);
    sim_saw("A50F01820003003A", Duration::from_secs(5));
    let (status, _) = gw
        .api(Method::PUT, &format!("{base}/presets/1"), None)
        .await;
    assert_eq!(status, 200);
    sim_saw("A50F018100010037", Duration::from_secs(5));
    let (status, _) = gw
        .api(Method::DELETE, &format!("{base}/presets/1"), None)
        .await;
    assert_eq!(status, 200);
    sim_saw("A50F018300010039", Duration::from_secs(5));

    // Cruise and scan.
    let (status, body) = gw
        .api(
            Method::POST,
            &format!("{base}/cruise"),
            Some(json!({"action": "dwell", "route": 1, "secs": 291})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let line = sim_saw(body["ptz_cmd"].as_str().unwrap(), Duration::from_secs(5));
    assert!(
        line.contains("CruiseDwell { route: 1, secs: 291 }"),
        "{line}"
    );
    let (status, body) = gw
        .api(
            Method::POST,
            &format!("{base}/scan"),
            Some(json!({"action": "set_left", "group": 2})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let line = sim_saw(body["ptz_cmd"].as_str().unwrap(), Duration::from_secs(5));
    assert!(line.contains("ScanSetLeft { group: 2 }"), "{line}");

    // Device control: RecordCmd is answered with a Result; IFameCmd is not.
    let (status, body) = gw
        .api(
            Method::POST,
            &format!("/api/v1/devices/{SIM_DEVICE}/control"),
            Some(json!({"command": "record_start", "channel_id": ch})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["result"], "OK");
    sim_saw("Record", Duration::from_secs(5));
    let (status, body) = gw
        .api(
            Method::POST,
            &format!("/api/v1/devices/{SIM_DEVICE}/control"),
            Some(json!({"command": "keyframe", "channel_id": ch})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert!(body.get("result").is_none(), "{body}");
    sim_saw("Send", Duration::from_secs(5));

    // Refusals: out-of-range values, unknown channels, too weak a role.
    for (path, req) in [
        (
            format!("{base}/ptz"),
            json!({"action": "zoom", "direction": "in", "speed": 16}),
        ),
        (
            format!("{base}/ptz"),
            json!({"action": "move", "pan": "sideways"}),
        ),
        (format!("{base}/ptz"), json!({"action": "spin"})),
        (
            format!("{base}/cruise"),
            json!({"action": "speed", "route": 1, "speed": 4096}),
        ),
    ] {
        let (status, body) = gw.api(Method::POST, &path, Some(req.clone())).await;
        assert_eq!(status, 400, "{req} → {body}");
    }
    let (status, _) = gw
        .api(Method::POST, &format!("{base}/presets/0/call"), None)
        .await;
    assert_eq!(status, 400);
    let (status, body) = gw
        .api(
            Method::POST,
            &format!("/api/v1/channels/{SIM_DEVICE}/34020000001319999999/ptz"),
            Some(json!({"action": "stop"})),
        )
        .await;
    assert_eq!(status, 404, "{body}");
    let (_, viewer) = gw
        .api(
            Method::POST,
            "/api/v1/tokens",
            Some(json!({"name": "wall", "role": "viewer"})),
        )
        .await;
    let r = Gateway::client()
        .post(gw.url(&format!("{base}/ptz")))
        .bearer_auth(viewer["token"].as_str().unwrap())
        .json(&json!({"action": "stop"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 403);
    drop(sim);
}
