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

    // Home position is answered with a Result; PTZPreciseCtrl is 2022-only
    // and the simulator registers as a 2016 device.
    let (status, body) = gw
        .api(
            Method::PUT,
            &format!("{base}/home"),
            Some(json!({"enabled": true, "reset_secs": 30, "preset": 2})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["result"], "OK");
    sim.logs
        .wait_for("HomePosition", Duration::from_secs(5), |l| {
            l.contains("sim device_control") && l.contains("command=HomePosition")
        });
    let (status, body) = gw
        .api(
            Method::POST,
            &format!("{base}/ptz/precise"),
            Some(json!({"pan": 90.0, "tilt": 10.0, "zoom": 2.0})),
        )
        .await;
    assert_eq!(status, 409, "{body}");
    assert_eq!(body["error"]["code"], "not_supported");

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

/// A pseudo-terminal pair made by socat: the gateway opens one end as its
/// "RS-485 adapter", the test reads what reaches the other as the PTZ head.
struct PtyPair {
    child: std::process::Child,
    gateway_end: std::path::PathBuf,
    head_end: std::path::PathBuf,
}

impl PtyPair {
    fn start(dir: &std::path::Path) -> Self {
        let gateway_end = dir.join("ttyGW");
        let head_end = dir.join("ttyHEAD");
        let child = std::process::Command::new("socat")
            .arg(format!("pty,raw,echo=0,link={}", gateway_end.display()))
            .arg(format!("pty,raw,echo=0,link={}", head_end.display()))
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("run socat (apt-get install socat)");
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while !(gateway_end.exists() && head_end.exists()) {
            assert!(std::time::Instant::now() < deadline, "socat made no ptys");
            std::thread::sleep(Duration::from_millis(20));
        }
        Self {
            child,
            gateway_end,
            head_end,
        }
    }

    /// Reads `n` bytes from the head's end (within a few seconds).
    fn read_head(&self, n: usize) -> Vec<u8> {
        use std::io::Read;
        let path = self.head_end.clone();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut f = std::fs::File::open(&path).unwrap();
            let mut buf = vec![0u8; n];
            let r = f.read_exact(&mut buf).map(|()| buf);
            let _ = tx.send(r);
        });
        rx.recv_timeout(Duration::from_secs(5))
            .expect("the head got nothing within 5 s")
            .expect("read from the head's pty")
    }

    fn unplug(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while self.gateway_end.exists() {
            assert!(std::time::Instant::now() < deadline, "socat left its ptys");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for PtyPair {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// RS-485 PTZ: Pelco-D and Pelco-P bytes on a serial port for API calls,
/// the gateway's stop after a bounded move, an unplugged port reported and
/// reopened once it is back.
#[tokio::test(flavor = "multi_thread")]
async fn serial_ptz_writes_pelco_frames_and_survives_an_unplug() {
    let tmp = tempfile::tempdir().unwrap();
    let mut pty = PtyPair::start(tmp.path());
    let gw = Gateway::start(GatewayOptions::default());
    let port = pty.gateway_end.to_str().unwrap().to_owned();

    // Nothing bound yet: a source has no PTZ.
    let (status, body) = gw
        .api(
            Method::POST,
            "/api/v1/sources/dome/ptz",
            Some(json!({"action": "stop"})),
        )
        .await;
    assert_eq!(status, 409, "{body}");
    let (status, body) = gw
        .api(
            Method::PUT,
            "/api/v1/sources/dome/ptz/serial",
            Some(json!({"port": port, "baud": 9600, "protocol": "pelco_d", "address": 1})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = gw
        .api(Method::GET, "/api/v1/sources/dome/ptz/serial", None)
        .await;
    assert_eq!(
        (status, body["parity"].as_str()),
        (200, Some("none")),
        "{body}"
    );

    // Pelco-D right at 0x80 → speed 0x20, then the gateway's stop.
    let (status, body) = gw
        .api(
            Method::POST,
            "/api/v1/sources/dome/ptz",
            Some(json!({"action": "move", "pan": "right", "speed": 128, "duration_ms": 300})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["via"], "serial");
    assert_eq!(body["frame"], "FF010002200023");
    assert_eq!(
        pty.read_head(14),
        [
            0xFF, 0x01, 0x00, 0x02, 0x20, 0x00, 0x23, 0xFF, 0x01, 0x00, 0x00, 0x00, 0x00, 0x01
        ]
    );
    let (status, _) = gw
        .api(
            Method::POST,
            "/api/v1/sources/dome/ptz",
            Some(json!({"action": "aux", "switch": 1, "on": true})),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(pty.read_head(7), [0xFF, 0x01, 0x00, 0x09, 0x00, 0x01, 0x0B]);

    // A GB28181 channel bound to a Pelco-P head at address 1: presets go
    // out on the wire, not to the (absent) device.
    let base = "/api/v1/channels/34020000001320000009/34020000001310000009";
    let (status, body) = gw
        .api(
            Method::PUT,
            &format!("{base}/ptz/serial"),
            Some(json!({"port": port, "baud": 2400, "parity": "even", "protocol": "pelco_p", "address": 1})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = gw
        .api(Method::POST, &format!("{base}/presets/1/call"), None)
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        pty.read_head(8),
        [0xA0, 0x00, 0x00, 0x07, 0x00, 0x01, 0xAF, 0x09]
    );
    let (status, _) = gw
        .api(
            Method::POST,
            &format!("{base}/ptz"),
            Some(json!({"action": "move", "tilt": "up", "speed": 128, "duration_ms": 60000})),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(
        pty.read_head(8),
        [0xA0, 0x00, 0x00, 0x08, 0x00, 0x20, 0xAF, 0x27]
    );

    // Unplugged: the error says which port and why; nothing hangs.
    pty.unplug();
    let (status, body) = gw
        .api(
            Method::POST,
            &format!("{base}/ptz"),
            Some(json!({"action": "stop"})),
        )
        .await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["error"]["code"], "serial_unavailable");
    assert!(
        body["error"]["message"].as_str().unwrap().contains("ttyGW"),
        "{body}"
    );
    // Plugged back in (same path): the next command reopens the port.
    let pty = PtyPair::start(tmp.path());
    let (status, body) = gw
        .api(
            Method::POST,
            &format!("{base}/ptz"),
            Some(json!({"action": "stop"})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        pty.read_head(8),
        [0xA0, 0x00, 0x00, 0x00, 0x00, 0x00, 0xAF, 0x0F]
    );
    let (status, _) = gw
        .api(Method::DELETE, &format!("{base}/ptz/serial"), None)
        .await;
    assert_eq!(status, 204);
}

/// RecordInfo against the simulator: a list spanning several MESSAGEs,
/// assembled, with times as Unix seconds; the repeat comes from the cache.
#[tokio::test(flavor = "multi_thread")]
async fn records_from_the_simulator_span_several_messages() {
    let gw = Gateway::start(GatewayOptions::default());
    setup(&gw).await;
    let sim = Sim::start(&gw, &fixture("h264-es/240x320.h264"), &[]);
    let ch = first_camera(&gw).await;
    let base = format!("/api/v1/channels/{SIM_DEVICE}/{ch}/records");
    let start = 1_796_000_400i64; // on a 10-minute boundary
    let end = start + 3600;
    let (status, body) = gw
        .api(
            Method::GET,
            &format!("{base}?start={start}&end={end}"),
            None,
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["complete"], true, "{body}");
    assert_eq!(body["sum_num"], 6, "{body}");
    // The simulator pages lists like catalogs: 2 items per MESSAGE.
    assert_eq!(body["messages"], 3, "{body}");
    let records = body["records"].as_array().unwrap();
    assert_eq!(records.len(), 6, "{body}");
    assert_eq!(records[0]["start"], start, "{body}");
    assert_eq!(records[5]["end"], end, "{body}");
    for pair in records.windows(2) {
        assert_eq!(pair[0]["end"], pair[1]["start"], "{body}");
    }
    // The same question again is answered from the cache.
    let (status, again) = gw
        .api(
            Method::GET,
            &format!("{base}?start={start}&end={end}"),
            None,
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(again["records"], body["records"]);
    let asked = sim
        .logs
        .all()
        .iter()
        .filter(|l| l.contains("sim record query"))
        .count();
    assert_eq!(asked, 1, "the device was asked again");
    // An empty span and bad parameters.
    let (status, empty) = gw
        .api(
            Method::GET,
            &format!("{base}?start={start}&end={}&type=alarm", start + 1),
            None,
        )
        .await;
    assert_eq!(status, 200, "{empty}");
    for bad in [
        format!("{base}?start={end}&end={start}"),
        format!("{base}?start=yesterday&end={end}"),
        format!("{base}?start={start}&end={end}&type=motion"),
        format!("{base}?start={start}"),
    ] {
        let (status, body) = gw.api(Method::GET, &bad, None).await;
        assert_eq!(status, 400, "{bad}: {body}");
    }
    drop(sim);
}

/// The simulator raises an alarm on request (SIGUSR1): stored as a decoded
/// event; acknowledging it resets it on the device, which answers OK.
#[tokio::test(flavor = "multi_thread")]
async fn simulated_alarm_is_stored_and_acknowledged() {
    let gw = Gateway::start(GatewayOptions::default());
    setup(&gw).await;
    let sim = Sim::start(&gw, &fixture("h264-es/240x320.h264"), &[]);
    let ch = first_camera(&gw).await;
    crate::common::signal(sim.child.id(), "USR1");
    sim.logs
        .wait_for("alarm sent", Duration::from_secs(5), |l| {
            l.contains("sim alarm sent")
        });
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let alarm = loop {
        let (_, ev) = gw
            .api(
                Method::GET,
                "/api/v1/events?kind=alarm&unacknowledged=true",
                None,
            )
            .await;
        if let Some(e) = ev.as_array().and_then(|a| a.first()) {
            break e.clone();
        }
        assert!(std::time::Instant::now() < deadline, "no alarm event");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(alarm["channel_id"], ch, "{alarm}");
    assert_eq!(alarm["data"]["alarm_type"], 2, "{alarm}");
    assert!(
        alarm["message"]
            .as_str()
            .unwrap()
            .contains("motion detection"),
        "{alarm}"
    );
    let (status, body) = gw
        .api(
            Method::POST,
            &format!("/api/v1/events/{}/ack", alarm["id"]),
            None,
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["device_reset"], "OK", "{body}");
    sim.logs
        .wait_for("ResetAlarm", Duration::from_secs(5), |l| {
            l.contains("sim device_control") && l.contains("value=ResetAlarm")
        });
    drop(sim);
}
