//! GB28181 signalling against `sipp` acting as devices (scenarios in
//! tests/sipp/, see its README), over UDP and TCP, plus hostile SIP sent by
//! hand. The gateway is the real binary.

use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::{Value, json};

use crate::common::{Gateway, GatewayOptions, wait_child};

pub(crate) const PLATFORM: &str = "34020000002000000001";
const DOMAIN: &str = "3402000000";
pub(crate) const PASSWORD: &str = "12345678";
pub(crate) const DEVICE: &str = "34020000001180000001";

fn sipp_bin() -> &'static str {
    if Path::new("/usr/bin/sipp").exists() {
        "/usr/bin/sipp"
    } else {
        panic!("sipp missing: apt-get install sip-tester (tests/run-all.sh installs it)")
    }
}

fn scenario(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/sipp")
        .join(name)
}

/// A loopback port free for both UDP and TCP (sipp binds both for `-t t1`).
fn free_port() -> u16 {
    loop {
        let u = UdpSocket::bind("127.0.0.1:0").unwrap();
        let port = u.local_addr().unwrap().port();
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

/// One sipp process playing devices.
pub(crate) struct Sipp {
    child: Child,
    dir: tempfile::TempDir,
}

#[derive(Clone)]
pub(crate) struct SippRun<'a> {
    pub scenario: &'a str,
    pub transport: &'a str,
    pub devices: Vec<(String, String)>,
    pub keepalives: u32,
    pub keepalive_ms: u32,
    pub unregister: bool,
    pub rate: u32,
    pub with_ooc: bool,
    /// Files written into sipp's working directory (e.g. `media.pcap`).
    pub files: Vec<(&'a str, Vec<u8>)>,
}

impl Default for SippRun<'_> {
    fn default() -> Self {
        Self {
            scenario: "device.xml",
            transport: "u1",
            devices: vec![(DEVICE.into(), PASSWORD.into())],
            keepalives: 0,
            keepalive_ms: 1000,
            unregister: true,
            rate: 10,
            with_ooc: true,
            files: Vec::new(),
        }
    }
}

impl Sipp {
    pub(crate) fn start(gw: &Gateway, run: &SippRun<'_>) -> Self {
        let dir = tempfile::tempdir().unwrap();
        for (name, bytes) in &run.files {
            std::fs::write(dir.path().join(name), bytes).unwrap();
        }
        if run.with_ooc && !run.files.iter().any(|(n, _)| *n == "media.pcap") {
            // device_ooc.xml names media.pcap, which sipp loads with the
            // scenario: give it a minimal one (one non-RTP datagram).
            std::fs::write(dir.path().join("media.pcap"), minimal_pcap()).unwrap();
        }
        let mut csv = String::from("SEQUENTIAL\n");
        for (id, pw) in &run.devices {
            csv.push_str(&format!("{id};{pw}\n"));
        }
        let inf = dir.path().join("devices.csv");
        std::fs::write(&inf, csv).unwrap();
        let mut cmd = Command::new(sipp_bin());
        cmd.current_dir(dir.path())
            .arg(gw.sip.to_string())
            .arg("-sf")
            .arg(scenario(run.scenario))
            .arg("-inf")
            .arg(&inf)
            .args(["-key", "platform_id", PLATFORM, "-key", "domain", DOMAIN])
            .args(["-key", "gb_ver", "3.0"])
            .args(["-key", "keepalives", &run.keepalives.to_string()])
            .args(["-key", "unregister", if run.unregister { "1" } else { "0" }])
            .args(["-d", &run.keepalive_ms.to_string()])
            .args(["-t", run.transport, "-i", "127.0.0.1"])
            .args(["-p", &free_port().to_string()])
            .args(["-m", &run.devices.len().to_string()])
            .args(["-r", &run.rate.to_string()])
            .args(["-l", &run.devices.len().to_string()])
            .args(["-nostdin", "-trace_err", "-trace_msg", "-trace_logs"])
            // No BYE for aborted calls; forget ended calls after 1 s, so an
            // in-dialog SUBSCRIBE refresh reaches the out-of-call scenario.
            .args(["-default_behaviors", "all,-bye", "-deadcall_wait", "1000"])
            .args(["-timeout", "120s", "-timeout_error"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        if run.with_ooc {
            // The catalog carries GB2312 names: sipp sends the scenario's
            // bytes, so the file is converted (it is kept as UTF-8 in git).
            let text = std::fs::read_to_string(scenario("device_ooc.xml")).unwrap();
            let (bytes, _, unmappable) = encoding_rs::GB18030.encode(&text);
            assert!(!unmappable);
            let ooc = dir.path().join("ooc.xml");
            std::fs::write(&ooc, &bytes).unwrap();
            cmd.arg("-oocsf").arg(&ooc);
        }
        let child = cmd.spawn().expect("start sipp");
        Self { child, dir }
    }

    /// Waits for sipp to end; true if every call succeeded.
    pub(crate) fn wait(mut self, timeout: Duration) -> (bool, String) {
        let status = wait_child(&mut self.child, timeout).unwrap_or_else(|| {
            let _ = self.child.kill();
            panic!("sipp did not finish within {timeout:?}:\n{}", self.errors())
        });
        let mut report = self.errors();
        if !status.success() {
            let m = self.messages();
            let tail = m.len().saturating_sub(6000);
            let tail = (tail..m.len())
                .find(|&i| m.is_char_boundary(i))
                .unwrap_or(m.len());
            report.push_str("\n--- last messages ---\n");
            report.push_str(&m[tail..]);
        }
        (status.success(), report)
    }

    /// What the scenarios' `<log>` actions wrote so far.
    pub(crate) fn scenario_logs(&self) -> String {
        let mut out = String::new();
        for e in std::fs::read_dir(self.dir.path()).unwrap().flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if name.ends_with("_logs.log") {
                out.push_str(&std::fs::read_to_string(e.path()).unwrap_or_default());
            }
        }
        out
    }

    fn errors(&self) -> String {
        let mut out = String::new();
        for e in std::fs::read_dir(self.dir.path()).unwrap().flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if name.ends_with("_errors.log") {
                out.push_str(&std::fs::read_to_string(e.path()).unwrap_or_default());
            }
        }
        out
    }

    fn messages(&self) -> String {
        let mut out = String::new();
        for e in std::fs::read_dir(self.dir.path()).unwrap().flatten() {
            if e.file_name().to_string_lossy().ends_with("_messages.log") {
                out.push_str(&String::from_utf8_lossy(
                    &std::fs::read(e.path()).unwrap_or_default(),
                ));
            }
        }
        out
    }
}

/// A pcap holding one UDP datagram that is not RTP.
pub(crate) fn minimal_pcap() -> Vec<u8> {
    let mut pcap = Vec::new();
    pcap.extend_from_slice(&0xa1b2_c3d4u32.to_le_bytes());
    pcap.extend_from_slice(&[2, 0, 4, 0]);
    pcap.extend_from_slice(&[0; 8]);
    pcap.extend_from_slice(&65_535u32.to_le_bytes());
    pcap.extend_from_slice(&1u32.to_le_bytes());
    let junk = b"not rtp";
    let len = (14 + 20 + 8 + junk.len()) as u32;
    for v in [0u32, 0, len, len] {
        pcap.extend_from_slice(&v.to_le_bytes());
    }
    pcap.extend_from_slice(&[0, 0, 0, 0, 0, 2, 0, 0, 0, 0, 0, 1, 0x08, 0x00]);
    let ip_len = (20 + 8 + junk.len()) as u16;
    pcap.extend_from_slice(&[0x45, 0]);
    pcap.extend_from_slice(&ip_len.to_be_bytes());
    pcap.extend_from_slice(&[0, 0, 0x40, 0, 64, 17, 0, 0, 127, 0, 0, 1, 127, 0, 0, 1]);
    pcap.extend_from_slice(&[0x75, 0x30, 0x9c, 0x40]);
    pcap.extend_from_slice(&((8 + junk.len()) as u16).to_be_bytes());
    pcap.extend_from_slice(&[0, 0]);
    pcap.extend_from_slice(junk);
    pcap
}

impl Drop for Sipp {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub(crate) async fn sip_settings(gw: &Gateway, body: Value) {
    let (status, resp) = gw
        .api(Method::PUT, "/api/v1/settings/sip", Some(body))
        .await;
    assert_eq!(status, 200, "{resp}");
    assert!(resp.get("password").is_none(), "password never returned");
}

pub(crate) async fn device(gw: &Gateway, id: &str) -> Value {
    let (status, body) = gw
        .api(Method::GET, &format!("/api/v1/devices/{id}"), None)
        .await;
    assert_eq!(status, 200, "{body}");
    body
}

/// Polls until `f` holds for the device, returning the device and when.
pub(crate) async fn wait_device(
    gw: &Gateway,
    id: &str,
    what: &str,
    timeout: Duration,
    f: impl Fn(&Value) -> bool,
) -> (Value, Instant) {
    let deadline = Instant::now() + timeout;
    loop {
        let (status, body) = gw
            .api(Method::GET, &format!("/api/v1/devices/{id}"), None)
            .await;
        if status == 200 && f(&body) {
            return (body, Instant::now());
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting for device {id} to be {what}: {body}\n{}",
            gw.logs.all().join("\n")
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

pub(crate) async fn channels(gw: &Gateway, id: &str) -> Vec<Value> {
    let (status, body) = gw
        .api(Method::GET, &format!("/api/v1/devices/{id}/channels"), None)
        .await;
    assert_eq!(status, 200, "{body}");
    body.as_array().unwrap().clone()
}

pub(crate) async fn events(gw: &Gateway, query: &str) -> Vec<Value> {
    let (status, body) = gw
        .api(Method::GET, &format!("/api/v1/events?{query}"), None)
        .await;
    assert_eq!(status, 200, "{body}");
    body.as_array().unwrap().clone()
}

pub(crate) fn gateway(qop: bool) -> Gateway {
    Gateway::start(GatewayOptions {
        config_toml: format!(
            "[sip]\ndigest_qop = {qop}\ncatalog_timeout_secs = 5\nquery_timeout_secs = 5\nsubscribe_expires_secs = 10\n"
        ),
        ..Default::default()
    })
}

/// The whole life of one device: register (digest), catalog in two GB2312
/// MESSAGEs, DeviceInfo, catalog subscription and NOTIFY, keepalives,
/// on-demand queries, unregister.
async fn device_lifecycle(transport: &str) {
    let gw = gateway(true);
    sip_settings(
        &gw,
        json!({"password": PASSWORD, "auto_accept": true, "keepalive_interval_secs": 2}),
    )
    .await;
    let sipp = Sipp::start(
        &gw,
        &SippRun {
            transport,
            keepalives: 12,
            keepalive_ms: 1000,
            ..Default::default()
        },
    );
    let (dev, _) = wait_device(&gw, DEVICE, "online", Duration::from_secs(10), |d| {
        d["online"] == true
    })
    .await;
    assert_eq!(dev["gb_version"], "3.0", "{dev}");
    assert_eq!(
        dev["transport"],
        if transport == "t1" { "tcp" } else { "udp" }
    );

    // The catalog arrives in two MESSAGEs (SumNum 4, one duplicate), GB2312.
    let (dev, _) = wait_device(
        &gw,
        DEVICE,
        "catalog-synced",
        Duration::from_secs(10),
        |d| !d["catalog_synced_at"].is_null() && d["manufacturer"] == "camgate-sipp",
    )
    .await;
    assert_eq!(dev["charset_detected"], "gb18030", "{dev}");
    assert_eq!(dev["model"], "SIPP-NVR");
    let ch = channels(&gw, DEVICE).await;
    assert_eq!(ch.len(), 4, "{ch:?}");
    let by_id = |id: &str| ch.iter().find(|c| c["id"] == id).cloned().unwrap();
    let bg = by_id("34020000002150000001");
    assert_eq!(bg["kind"], "business_group");
    assert_eq!(bg["name"], "业务分组");
    assert_eq!(
        by_id("34020000002160000001")["kind"],
        "virtual_organization"
    );
    assert_eq!(by_id("34020000002160000001")["name"], "虚拟组织");
    let c1 = by_id("34020000001320000001");
    assert_eq!(c1["kind"], "camera");
    assert_eq!(c1["name"], "测试通道01");
    assert_eq!(c1["parent_id"], "34020000002160000001");
    assert_eq!(c1["parent_ids"], json!([PLATFORM, "34020000002160000001"]));
    assert_eq!(c1["ptz_type"], 1);
    assert_eq!(by_id("34020000001320000002")["name"], "测试通道02");

    // The catalog subscription's NOTIFY turns channel 2 off.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let ch = channels(&gw, DEVICE).await;
        let c2 = ch
            .iter()
            .find(|c| c["id"] == "34020000001320000002")
            .unwrap();
        if c2["online"] == false {
            assert_eq!(c2["status"], "OFF");
            assert_eq!(c2["name"], "测试通道02", "a status event keeps the rest");
            break;
        }
        assert!(Instant::now() < deadline, "NOTIFY not applied: {c2}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(device(&gw, DEVICE).await["catalog_subscribed"] == true);

    // On-demand queries, answered by the device.
    let (status, info) = gw
        .api(Method::GET, &format!("/api/v1/devices/{DEVICE}/info"), None)
        .await;
    assert_eq!(status, 200, "{info}");
    assert_eq!(info["manufacturer"], "camgate-sipp");
    assert_eq!(info["channel"], 2);
    let (status, st) = gw
        .api(
            Method::GET,
            &format!("/api/v1/devices/{DEVICE}/status"),
            None,
        )
        .await;
    assert_eq!(status, 200, "{st}");
    assert_eq!(st["online"], "ONLINE");
    let (status, summary) = gw
        .api(
            Method::POST,
            &format!("/api/v1/devices/{DEVICE}/catalog/refresh"),
            None,
        )
        .await;
    assert_eq!(status, 200, "{summary}");
    assert_eq!(summary["items"], 4);
    assert_eq!(summary["complete"], true);
    assert_eq!(summary["messages"], 2);

    // The subscription (10 s) is refreshed in its dialog before it expires.
    gw.logs
        .wait_for("a subscription refresh", Duration::from_secs(15), |l| {
            l.contains("subscription active")
                && l.contains("subscription=\"Catalog\"")
                && l.contains("refresh=true")
        });

    // Keepalives kept it online all along; then it unregisters.
    let (ok, errors) = sipp.wait(Duration::from_secs(60));
    assert!(ok, "sipp calls failed:\n{errors}");
    let dev = device(&gw, DEVICE).await;
    assert_eq!(dev["online"], false, "{dev}");
    assert_eq!(dev["registered"], false);
    let ev = events(&gw, &format!("device_id={DEVICE}")).await;
    let kinds: Vec<&str> = ev.iter().filter_map(|e| e["kind"].as_str()).collect();
    for k in [
        "device_online",
        "catalog_synced",
        "catalog_event",
        "device_offline",
    ] {
        assert!(kinds.contains(&k), "no {k} event in {kinds:?}");
    }
    assert!(
        ev.iter()
            .any(|e| e["message"].as_str().unwrap_or("").contains("unregistered")),
        "{ev:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn device_lifecycle_over_udp() {
    device_lifecycle("u1").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn device_lifecycle_over_tcp() {
    device_lifecycle("t1").await;
}

/// Challenges without `qop`: devices answer MD5(HA1:nonce:HA2).
#[tokio::test(flavor = "multi_thread")]
async fn digest_without_qop_over_udp_and_tcp() {
    let gw = gateway(false);
    sip_settings(&gw, json!({"password": PASSWORD, "auto_accept": true})).await;
    for transport in ["u1", "t1"] {
        let sipp = Sipp::start(
            &gw,
            &SippRun {
                transport,
                with_ooc: false,
                ..Default::default()
            },
        );
        let (ok, errors) = sipp.wait(Duration::from_secs(30));
        assert!(ok, "{transport}: {errors}");
    }
    assert!(
        gw.logs.contains("device registered"),
        "{}",
        gw.logs.all().join("\n")
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn wrong_password_is_403_and_repeats_are_rate_limited() {
    let gw = gateway(true);
    sip_settings(&gw, json!({"password": PASSWORD, "auto_accept": true})).await;
    for transport in ["u1", "t1"] {
        let sipp = Sipp::start(
            &gw,
            &SippRun {
                scenario: "device_wrong_password.xml",
                transport,
                devices: vec![(DEVICE.into(), "wrong-password".into())],
                with_ooc: false,
                ..Default::default()
            },
        );
        let (ok, errors) = sipp.wait(Duration::from_secs(30));
        assert!(ok, "{transport}: expected 403: {errors}");
    }
    let ev = events(&gw, "kind=auth_failed").await;
    assert_eq!(ev.len(), 2, "{ev:?}");
    assert!(
        ev[0]["message"]
            .as_str()
            .unwrap()
            .contains("wrong password")
    );
    // Three more failures from this address (5 in a minute) and even the
    // right password is refused for a while.
    for _ in 0..3 {
        let sipp = Sipp::start(
            &gw,
            &SippRun {
                scenario: "device_wrong_password.xml",
                devices: vec![(DEVICE.into(), "wrong-password".into())],
                with_ooc: false,
                ..Default::default()
            },
        );
        assert!(sipp.wait(Duration::from_secs(30)).0);
    }
    let sipp = Sipp::start(
        &gw,
        &SippRun {
            with_ooc: false,
            ..Default::default()
        },
    );
    let (ok, report) = sipp.wait(Duration::from_secs(30));
    assert!(!ok, "a blocked address registered");
    assert!(report.contains("SIP/2.0 403"), "{report}");
    assert!(gw.logs.contains("failed registrations from 127.0.0.1"));
    let (status, _) = gw
        .api(Method::GET, &format!("/api/v1/devices/{DEVICE}"), None)
        .await;
    assert_eq!(status, 404, "a refused device is not created");
}

#[tokio::test(flavor = "multi_thread")]
async fn unknown_devices_need_auto_accept_or_an_admin() {
    let gw = gateway(true);
    let run = SippRun {
        with_ooc: false,
        ..Default::default()
    };
    // No password anywhere yet: nobody registers.
    let (ok, _) = Sipp::start(&gw, &run).wait(Duration::from_secs(30));
    assert!(!ok, "registered without any password");
    // A default password, but auto-accept is off: unknown devices are refused.
    sip_settings(&gw, json!({"password": PASSWORD})).await;
    let (ok, _) = Sipp::start(&gw, &run).wait(Duration::from_secs(30));
    assert!(!ok, "unknown device registered with auto-accept off");
    assert!(gw.logs.contains("unknown device and auto-accept is off"));
    // An admin adds the device with its own password: it registers with that.
    let (status, body) = gw
        .api(
            Method::POST,
            "/api/v1/devices",
            Some(json!({"id": DEVICE, "name": "gate NVR", "password": "own-secret"})),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["has_password"], true);
    assert!(body.get("ha1").is_none());
    let (ok, _) = Sipp::start(&gw, &run).wait(Duration::from_secs(30));
    assert!(
        !ok,
        "the default password must not work for a device with its own"
    );
    let own = SippRun {
        devices: vec![(DEVICE.into(), "own-secret".into())],
        ..run.clone()
    };
    let (ok, errors) = Sipp::start(&gw, &own).wait(Duration::from_secs(30));
    assert!(ok, "{errors}");
    // The stored credential is a hash, not the password.
    let db = std::fs::read(gw.dir.path().join("data/camgate.db")).unwrap();
    assert!(!db.windows(10).any(|w| w == b"own-secret"));
    // Listing, filters, patch and delete.
    let (_, list) = gw
        .api(
            Method::GET,
            "/api/v1/devices?keyword=gate&page=1&page_size=10",
            None,
        )
        .await;
    assert_eq!(list["total"], 1, "{list}");
    assert_eq!(list["items"][0]["name"], "gate NVR");
    let (_, list) = gw
        .api(Method::GET, "/api/v1/devices?online=true", None)
        .await;
    assert_eq!(
        list["total"], 0,
        "unregistered at the end of the run: {list}"
    );
    let (status, body) = gw
        .api(
            Method::PATCH,
            &format!("/api/v1/devices/{DEVICE}"),
            Some(json!({"charset": "gb2312", "name": "gate", "password": null})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["charset_override"], "gb18030");
    assert_eq!(body["has_password"], false);
    let (status, body) = gw
        .api(
            Method::PATCH,
            &format!("/api/v1/devices/{DEVICE}"),
            Some(json!({"charset": "latin1"})),
        )
        .await;
    assert_eq!(status, 400);
    assert_eq!(body["error"]["field"], "charset");
    let (status, _) = gw
        .api(Method::DELETE, &format!("/api/v1/devices/{DEVICE}"), None)
        .await;
    assert_eq!(status, 204);
    let (status, _) = gw
        .api(Method::GET, &format!("/api/v1/devices/{DEVICE}"), None)
        .await;
    assert_eq!(status, 404);
}

/// Keepalives keep a device online; silence makes it offline after
/// interval × count; a MESSAGE from an unregistered device gets 404.
#[tokio::test(flavor = "multi_thread")]
async fn keepalive_silence_makes_a_device_offline_at_the_configured_time_udp() {
    keepalive_silence(&gateway(true), "u1").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn keepalive_silence_makes_a_device_offline_at_the_configured_time_tcp() {
    keepalive_silence(&gateway(true), "t1").await;
}

async fn keepalive_silence(gw: &Gateway, transport: &str) {
    // Offline after 2 s × 2 = 4 s without a keepalive.
    sip_settings(
        gw,
        json!({"password": PASSWORD, "auto_accept": true,
               "keepalive_interval_secs": 2, "keepalive_timeout_count": 2}),
    )
    .await;
    let sipp = Sipp::start(
        gw,
        &SippRun {
            transport,
            keepalives: 6,
            keepalive_ms: 1000,
            unregister: false,
            with_ooc: false,
            ..Default::default()
        },
    );
    wait_device(gw, DEVICE, "online", Duration::from_secs(10), |d| {
        d["online"] == true
    })
    .await;
    // Online throughout the keepalives (6 s, longer than the 4 s limit).
    let (ok, errors) = sipp.wait(Duration::from_secs(30));
    let last_keepalive = Instant::now();
    assert!(ok, "{errors}");
    assert_eq!(device(gw, DEVICE).await["online"], true);
    let (dev, offline_at) = wait_device(gw, DEVICE, "offline", Duration::from_secs(15), |d| {
        d["online"] == false
    })
    .await;
    let silence = offline_at.duration_since(last_keepalive);
    assert!(
        silence >= Duration::from_secs(3),
        "offline after only {silence:?} of silence: {dev}"
    );
    assert!(
        silence <= Duration::from_secs(7),
        "offline only after {silence:?} of silence: {dev}"
    );
    let ev = events(gw, "kind=device_offline").await;
    assert!(
        ev[0]["message"]
            .as_str()
            .unwrap()
            .contains("no keepalive for 4 s"),
        "{ev:?}"
    );

    // Still registered: a keepalive brings it back. Then an unregistered
    // device's keepalive gets 404.
    let reply = send_keepalive(gw.sip, DEVICE);
    assert!(reply.starts_with("SIP/2.0 200"), "{reply}");
    assert_eq!(device(gw, DEVICE).await["online"], true);
    let reply = send_keepalive(gw.sip, "34020000001320000099");
    assert!(reply.starts_with("SIP/2.0 404"), "{reply}");
}

fn keepalive_message(device: &str, branch: &str, body: &str) -> Vec<u8> {
    format!(
        "MESSAGE sip:{PLATFORM}@{DOMAIN} SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5999;rport;branch=z9hG4bK{branch}\r\nFrom: <sip:{device}@{DOMAIN}>;tag=1\r\nTo: <sip:{PLATFORM}@{DOMAIN}>\r\nCall-ID: {branch}@test\r\nCSeq: 1 MESSAGE\r\nMax-Forwards: 70\r\nContent-Type: Application/MANSCDP+xml\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

fn keepalive_body(device: &str) -> String {
    format!(
        "<?xml version=\"1.0\" encoding=\"GB2312\"?>\r\n<Notify>\r\n<CmdType>Keepalive</CmdType>\r\n<SN>1</SN>\r\n<DeviceID>{device}</DeviceID>\r\n<Status>OK</Status>\r\n</Notify>\r\n"
    )
}

/// Sends one datagram and returns the answer's text ("" if none in 2 s).
fn udp_exchange(sip: SocketAddr, bytes: &[u8]) -> String {
    let s = UdpSocket::bind("127.0.0.1:0").unwrap();
    s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    s.send_to(bytes, sip).unwrap();
    let mut buf = [0u8; 65_535];
    match s.recv_from(&mut buf) {
        Ok((n, _)) => String::from_utf8_lossy(&buf[..n]).into_owned(),
        Err(_) => String::new(),
    }
}

fn send_keepalive(sip: SocketAddr, device: &str) -> String {
    let branch = format!("ka{}", std::process::id() ^ rand_u32());
    udp_exchange(
        sip,
        &keepalive_message(device, &branch, &keepalive_body(device)),
    )
}

fn rand_u32() -> u32 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos()
}

/// 100 devices register and keep alive at once (sipp `-r 50`); all are
/// online together, none is lost, and all unregister.
#[tokio::test(flavor = "multi_thread")]
async fn hundred_devices_register_and_keep_alive() {
    let gw = gateway(true);
    sip_settings(
        &gw,
        json!({"password": PASSWORD, "auto_accept": true, "keepalive_interval_secs": 2}),
    )
    .await;
    let devices: Vec<(String, String)> = (1..=100)
        .map(|i| (format!("340200000013200{i:05}"), PASSWORD.to_owned()))
        .collect();
    let sipp = Sipp::start(
        &gw,
        &SippRun {
            devices: devices.clone(),
            keepalives: 8,
            keepalive_ms: 1000,
            rate: 50,
            ..Default::default()
        },
    );
    let started = Instant::now();
    let mut best = 0;
    loop {
        let (_, list) = gw
            .api(
                Method::GET,
                "/api/v1/devices?online=true&page_size=500",
                None,
            )
            .await;
        let online = list["total"].as_u64().unwrap_or(0);
        best = best.max(online);
        if online == 100 {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "only {best} of 100 devices online at once"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let (ok, errors) = sipp.wait(Duration::from_secs(90));
    assert!(ok, "sipp calls failed:\n{errors}");
    let (_, list) = gw
        .api(Method::GET, "/api/v1/devices?page_size=500", None)
        .await;
    assert_eq!(list["total"], 100);
    assert!(
        list["items"]
            .as_array()
            .unwrap()
            .iter()
            .all(|d| d["online"] == false && !d["catalog_synced_at"].is_null()),
        "every device synced its catalog and unregistered: {list}"
    );
}

/// Hostile SIP: every bad message is answered with an error or dropped with a
/// log line; the process stays up and a registered device is unaffected.
#[tokio::test(flavor = "multi_thread")]
async fn malformed_sip_is_refused_and_others_are_unaffected() {
    let gw = gateway(true);
    sip_settings(
        &gw,
        json!({"password": PASSWORD, "auto_accept": true, "keepalive_interval_secs": 2}),
    )
    .await;
    let sipp = Sipp::start(
        &gw,
        &SippRun {
            keepalives: 15,
            keepalive_ms: 1000,
            ..Default::default()
        },
    );
    wait_device(&gw, DEVICE, "online", Duration::from_secs(10), |d| {
        d["online"] == true
    })
    .await;
    let good = keepalive_message(DEVICE, "good1", &keepalive_body(DEVICE));

    // Truncated: fewer body bytes than Content-Length says → dropped.
    assert_eq!(udp_exchange(gw.sip, &good[..good.len() - 20]), "");
    gw.logs.wait_for(
        "log of the truncated datagram",
        Duration::from_secs(5),
        |l| l.contains("dropping malformed SIP datagram"),
    );
    // Content-Length far beyond the datagram / the body limit → dropped.
    let huge = String::from_utf8(good.clone())
        .unwrap()
        .replace("Content-Length: ", "Content-Length: 99999999");
    assert_eq!(udp_exchange(gw.sip, huge.as_bytes()), "");
    // Bad headers: no Via branch, garbage start line, header without colon.
    assert_eq!(
        udp_exchange(
            gw.sip,
            b"MESSAGE sip:x SIP/2.0\r\nFrom: <sip:1@d>\r\nContent-Length: 0\r\n\r\n"
        ),
        ""
    );
    assert_eq!(udp_exchange(gw.sip, b"\x00\x01\x02 HELLO\r\n\r\n"), "");
    assert_eq!(
        udp_exchange(
            gw.sip,
            b"MESSAGE sip:x SIP/2.0\r\nthis is not a header\r\nContent-Length: 0\r\n\r\n"
        ),
        ""
    );
    // Invalid XML from the registered device → 400.
    let bad_xml = keepalive_message(
        DEVICE,
        "badxml",
        "<Notify><CmdType>Keepalive</CmdType><SN>1</SN>",
    );
    let reply = udp_exchange(gw.sip, &bad_xml);
    assert!(reply.starts_with("SIP/2.0 400"), "{reply}");
    // XML bomb → 400, at once.
    let bomb = "<?xml version=\"1.0\"?><!DOCTYPE lolz [<!ENTITY lol \"lol\"><!ENTITY lol2 \"&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;\">]><Notify><CmdType>&lol2;</CmdType><SN>1</SN><DeviceID>x</DeviceID></Notify>";
    let reply = udp_exchange(gw.sip, &keepalive_message(DEVICE, "bomb", bomb));
    assert!(reply.starts_with("SIP/2.0 400"), "{reply}");
    // TCP: garbage closes that connection only.
    {
        use std::io::{Read, Write};
        let mut tcp = TcpStream::connect(gw.sip).unwrap();
        tcp.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        tcp.write_all(b"MESSAGE sip:x SIP/2.0\r\nContent-Length: -5\r\n\r\n")
            .unwrap();
        let mut buf = [0u8; 64];
        let n = tcp.read(&mut buf).unwrap_or(0);
        assert_eq!(n, 0, "connection closed after garbage");
        let mut tcp = TcpStream::connect(gw.sip).unwrap();
        tcp.write_all(&"X".repeat(70_000).into_bytes()).unwrap();
        tcp.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let n = tcp.read(&mut buf).unwrap_or(0);
        assert_eq!(n, 0, "connection closed after an endless header");
    }
    // Events are stored after the 400 went out: give them a moment.
    let deadline = Instant::now() + Duration::from_secs(10);
    let ev = loop {
        let ev = events(&gw, "kind=protocol_error").await;
        if ev.len() >= 2 || Instant::now() > deadline {
            break ev;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(ev.len(), 2, "{ev:?}");

    // The real device carried on.
    let (ok, errors) = sipp.wait(Duration::from_secs(60));
    assert!(ok, "device disturbed by the garbage:\n{errors}");
    let (status, health) = gw.get("/api/v1/health", None).await;
    assert_eq!(status, 200, "{health}");
}

/// A device written by hand on a UDP socket, for the paths sipp cannot
/// easily take: a device that never answers a query, alarms, positions.
struct RawDevice {
    socket: UdpSocket,
    sip: SocketAddr,
    id: String,
    /// Requests the platform sent (each answered 200, SUBSCRIBE 489).
    requests: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
    responses: std::sync::mpsc::Receiver<String>,
    cseq: std::sync::atomic::AtomicU32,
}

impl RawDevice {
    fn start(sip: SocketAddr, id: &str) -> Self {
        let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
        let reader = socket.try_clone().unwrap();
        let requests = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let (tx, responses) = std::sync::mpsc::channel();
        let seen = requests.clone();
        std::thread::spawn(move || {
            let mut buf = vec![0u8; 65_535];
            while let Ok((n, from)) = reader.recv_from(&mut buf) {
                let text = String::from_utf8_lossy(&buf[..n]).into_owned();
                if text.starts_with("SIP/2.0") {
                    if tx.send(text).is_err() {
                        return;
                    }
                    continue;
                }
                let code = if text.starts_with("SUBSCRIBE") {
                    "489 Bad Event"
                } else {
                    "200 OK"
                };
                let mut resp = format!("SIP/2.0 {code}\r\n");
                for h in ["Via", "From", "To", "Call-ID", "CSeq"] {
                    if let Some(l) = text.lines().find(|l| l.starts_with(&format!("{h}:"))) {
                        resp.push_str(l);
                        if h == "To" {
                            resp.push_str(";tag=dev1");
                        }
                        resp.push_str("\r\n");
                    }
                }
                resp.push_str("Content-Length: 0\r\n\r\n");
                let _ = reader.send_to(resp.as_bytes(), from);
                seen.lock().unwrap().push(text);
            }
        });
        Self {
            socket,
            sip,
            id: id.to_owned(),
            requests,
            responses,
            cseq: std::sync::atomic::AtomicU32::new(1),
        }
    }

    fn local(&self) -> SocketAddr {
        self.socket.local_addr().unwrap()
    }

    fn send(&self, method: &str, extra: &str, body: &[u8]) -> String {
        let cseq = self.cseq.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let (id, local) = (&self.id, self.local());
        let uri = format!("sip:{PLATFORM}@{DOMAIN}");
        let (from_to, ct) = if method == "REGISTER" {
            (
                format!("From: <sip:{id}@{DOMAIN}>;tag=r1\r\nTo: <sip:{id}@{DOMAIN}>\r\n"),
                "",
            )
        } else {
            (
                format!(
                    "From: <sip:{id}@{DOMAIN}>;tag=m{cseq}\r\nTo: <sip:{PLATFORM}@{DOMAIN}>\r\n"
                ),
                "Content-Type: Application/MANSCDP+xml\r\n",
            )
        };
        let mut msg = format!(
            "{method} {uri} SIP/2.0\r\nVia: SIP/2.0/UDP {local};rport;branch=z9hG4bKraw{cseq}x{}\r\n{from_to}Call-ID: raw{cseq}@{local}\r\nCSeq: {cseq} {method}\r\nMax-Forwards: 70\r\n{ct}{extra}Content-Length: {}\r\n\r\n",
            rand_u32(),
            body.len()
        )
        .into_bytes();
        msg.extend_from_slice(body);
        self.socket.send_to(&msg, self.sip).unwrap();
        self.responses
            .recv_timeout(Duration::from_secs(5))
            .unwrap_or_else(|_| panic!("no answer to {method}"))
    }

    /// REGISTER → 401 → digest without qop → 200; returns the 200.
    fn register(&self, password: &str, expires: u32) -> String {
        let extra = format!("Expires: {expires}\r\nX-GB-Ver: 2.0\r\n");
        let challenge = self.send("REGISTER", &extra, b"");
        assert!(challenge.starts_with("SIP/2.0 401"), "{challenge}");
        assert!(
            challenge.contains("X-GB-Ver: 2.0"),
            "version echoed: {challenge}"
        );
        let www = challenge
            .lines()
            .find(|l| l.starts_with("WWW-Authenticate:"))
            .unwrap();
        let nonce = www
            .split("nonce=\"")
            .nth(1)
            .unwrap()
            .split('"')
            .next()
            .unwrap();
        // Hikvision's habit: the digest uri is sip:<platform>@<domain>.
        let uri = format!("sip:{PLATFORM}@{DOMAIN}");
        let ha1 = camgate::sip::digest::ha1(&self.id, DOMAIN, password);
        let ha2 = camgate::sip::digest::md5_hex(format!("REGISTER:{uri}").as_bytes());
        let response = camgate::sip::digest::md5_hex(format!("{ha1}:{nonce}:{ha2}").as_bytes());
        let auth = format!(
            "{extra}Authorization: Digest username=\"{}\", realm=\"{DOMAIN}\", nonce=\"{nonce}\", uri=\"{uri}\", response=\"{response}\", algorithm=MD5\r\n",
            self.id
        );
        self.send("REGISTER", &auth, b"")
    }

    fn wait_request(&self, what: &str, f: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(r) = self.requests.lock().unwrap().iter().find(|r| f(r)) {
                return r.clone();
            }
            assert!(Instant::now() < deadline, "no {what} from the platform");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// Alarms and positions are stored and answered; a query the device never
/// answers gives the API a 504; replies go out in the device's charset.
#[tokio::test(flavor = "multi_thread")]
async fn alarms_positions_and_unanswered_queries() {
    let gw = Gateway::start(GatewayOptions {
        config_toml: "[sip]\nquery_timeout_secs = 2\n".into(),
        ..Default::default()
    });
    sip_settings(&gw, json!({"password": PASSWORD, "auto_accept": true})).await;
    let dev = RawDevice::start(gw.sip, DEVICE);
    let ok = dev.register(PASSWORD, 3600);
    assert!(ok.starts_with("SIP/2.0 200"), "{ok}");
    let date = ok
        .lines()
        .find(|l| l.starts_with("Date: "))
        .expect("Date header");
    let date = &date[6..];
    assert_eq!(date.len(), 23, "{date}");
    assert!(
        date.as_bytes()[10] == b'T' && date.as_bytes()[19] == b'.',
        "{date}"
    );
    assert!(ok.contains("X-GB-Ver: 2.0"), "{ok}");

    // The platform asks for the catalog; answer it in GB18030.
    let query = dev.wait_request("catalog query", |r| {
        r.contains("<CmdType>Catalog</CmdType>")
    });
    let sn: String = query
        .split("<SN>")
        .nth(1)
        .unwrap()
        .split('<')
        .next()
        .unwrap()
        .to_owned();
    let catalog = format!(
        "<?xml version=\"1.0\" encoding=\"GB2312\"?>\r\n<Response>\r\n<CmdType>Catalog</CmdType>\r\n<SN>{sn}</SN>\r\n<DeviceID>{DEVICE}</DeviceID>\r\n<SumNum>1</SumNum>\r\n<DeviceList Num=\"1\">\r\n<Item>\r\n<DeviceID>34020000001310000001</DeviceID>\r\n<Name>大门 & 停车场</Name>\r\n<Status>ON</Status>\r\n<Parental>0</Parental>\r\n</Item>\r\n</DeviceList>\r\n</Response>\r\n"
    );
    let (gb, _, _) = encoding_rs::GB18030.encode(&catalog);
    let r = dev.send("MESSAGE", "", &gb);
    assert!(r.starts_with("SIP/2.0 200"), "{r}");
    let deadline = Instant::now() + Duration::from_secs(10);
    let ch = loop {
        let ch = channels(&gw, DEVICE).await;
        if !ch.is_empty() {
            break ch;
        }
        assert!(Instant::now() < deadline, "catalog not stored");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(
        ch[0]["name"], "大门 & 停车场",
        "GB18030 and Hikvision's bare & read"
    );

    // DeviceInfo is taken (200) but never answered: the API says 504.
    let started = Instant::now();
    let (status, body) = gw
        .api(Method::GET, &format!("/api/v1/devices/{DEVICE}/info"), None)
        .await;
    assert_eq!(status, 504, "{body}");
    assert_eq!(body["error"]["code"], "device_timeout");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("did not answer the DeviceInfo query"),
        "{body}"
    );
    assert!(started.elapsed() >= Duration::from_secs(2));
    // The query went out in the charset the device uses.
    let info_query = dev.wait_request("DeviceInfo query", |r| {
        r.contains("<CmdType>DeviceInfo</CmdType>")
    });
    assert!(info_query.contains("encoding=\"GB2312\""), "{info_query}");
    // An unknown device id is a 404, an offline one a 409.
    let (status, _) = gw
        .api(
            Method::GET,
            "/api/v1/devices/34020000001320009999/info",
            None,
        )
        .await;
    assert_eq!(status, 404);

    // An alarm: 200, stored as an event, answered with Response/Alarm OK.
    let alarm = String::from(
        "<?xml version=\"1.0\" encoding=\"GB2312\"?>\r\n<Notify>\r\n<CmdType>Alarm</CmdType>\r\n<SN>77</SN>\r\n<DeviceID>34020000001310000001</DeviceID>\r\n<AlarmPriority>1</AlarmPriority>\r\n<AlarmMethod>5</AlarmMethod>\r\n<AlarmTime>2026-11-30T08:00:00</AlarmTime>\r\n<AlarmDescription>后门</AlarmDescription>\r\n<Info><AlarmType>2</AlarmType></Info>\r\n</Notify>\r\n",
    );
    let (gb, _, _) = encoding_rs::GB18030.encode(&alarm);
    let r = dev.send("MESSAGE", "", &gb);
    assert!(r.starts_with("SIP/2.0 200"), "{r}");
    let answer = dev.wait_request("alarm answer", |r| {
        r.contains("<Response>") && r.contains("<CmdType>Alarm</CmdType>")
    });
    assert!(
        answer.contains("<SN>77</SN>") && answer.contains("<Result>OK</Result>"),
        "{answer}"
    );
    let ev = events(&gw, "kind=alarm").await;
    assert_eq!(ev.len(), 1, "{ev:?}");
    assert_eq!(ev[0]["channel_id"], "34020000001310000001");
    assert_eq!(
        ev[0]["message"],
        "video alarm: motion detection (priority 1) — 后门"
    );
    assert_eq!(ev[0]["data"]["alarm_method"], 5);

    // A position for the channel.
    let pos = String::from(
        "<?xml version=\"1.0\"?>\r\n<Notify>\r\n<CmdType>MobilePosition</CmdType>\r\n<SN>78</SN>\r\n<DeviceID>34020000001310000001</DeviceID>\r\n<Time>2026-11-30T08:00:01</Time>\r\n<Longitude>117.2</Longitude>\r\n<Latitude>31.8</Latitude>\r\n<Speed>0</Speed>\r\n<Direction>90</Direction>\r\n<Altitude>20</Altitude>\r\n</Notify>\r\n",
    );
    let r = dev.send("MESSAGE", "", pos.as_bytes());
    assert!(r.starts_with("SIP/2.0 200"), "{r}");
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let ch = channels(&gw, DEVICE).await;
        if ch[0]["position"]["longitude"] == 117.2 {
            assert_eq!(ch[0]["position"]["direction"], 90.0);
            break;
        }
        assert!(Instant::now() < deadline, "position not stored: {ch:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // The device turned down the catalog subscription (489): it stays
    // usable, and says so.
    assert!(gw.logs.contains("catalog subscription not accepted"));
    assert_eq!(device(&gw, DEVICE).await["catalog_subscribed"], false);

    // Unregister, then an offline device's query is a 409.
    let r = dev.register(PASSWORD, 0);
    assert!(r.starts_with("SIP/2.0 200"), "{r}");
    let (status, body) = gw
        .api(
            Method::GET,
            &format!("/api/v1/devices/{DEVICE}/status"),
            None,
        )
        .await;
    assert_eq!(status, 409, "{body}");
    assert_eq!(body["error"]["code"], "device_offline");
}

/// PTZ and RecordInfo with a sipp device: the scenario pulls `<PTZCmd>`, the
/// priority, `<PTZPreciseCtrl>` and the record query's span out of the
/// bodies it receives and logs them; it answers RecordInfo.
#[tokio::test(flavor = "multi_thread")]
async fn ptz_and_records_with_a_sipp_device() {
    let gw = gateway(true);
    sip_settings(&gw, json!({"password": PASSWORD, "auto_accept": true})).await;
    let sipp = Sipp::start(
        &gw,
        &SippRun {
            keepalives: 20,
            ..Default::default()
        },
    );
    wait_device(
        &gw,
        DEVICE,
        "catalog synced",
        Duration::from_secs(20),
        |d| !d["catalog_synced_at"].is_null(),
    )
    .await;
    let ch = channels(&gw, DEVICE).await;
    let cam = ch
        .iter()
        .find(|c| c["kind"] == "camera" && c["ptz_type"] == 1)
        .unwrap_or_else(|| panic!("no PTZ camera in {ch:?}"))["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let base = format!("/api/v1/channels/{DEVICE}/{cam}");
    let (status, body) = gw
        .api(
            Method::POST,
            &format!("{base}/ptz"),
            Some(json!({"action": "move", "pan": "right", "speed": 128, "duration_ms": 300})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    // The gateway's own stop comes 300 ms later (any newer command for the
    // channel would replace it, so wait for it before the next one).
    gw.logs.wait_for("auto stop", Duration::from_secs(5), |l| {
        l.contains("PTZ motion stopped by the gateway")
    });
    let (status, body) = gw
        .api(Method::POST, &format!("{base}/presets/3/call"), None)
        .await;
    assert_eq!(status, 200, "{body}");
    // The alarm subscription: sipp answers it with an alarm NOTIFY in the
    // dialog, stored as an event with the decoded method and type.
    let deadline = Instant::now() + Duration::from_secs(10);
    let alarm = loop {
        let ev = events(&gw, "kind=alarm").await;
        if let Some(e) = ev.first() {
            break e.clone();
        }
        assert!(Instant::now() < deadline, "no alarm event");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(alarm["device_id"], DEVICE, "{alarm}");
    assert_eq!(alarm["channel_id"], "34020000001320000001", "{alarm}");
    assert_eq!(alarm["data"]["alarm_method"], 5, "{alarm}");
    assert!(
        alarm["message"]
            .as_str()
            .unwrap()
            .starts_with("video alarm: manual (priority 2)"),
        "{alarm}"
    );
    gw.logs
        .wait_for("alarm subscription", Duration::from_secs(5), |l| {
            l.contains("subscription active") && l.contains("subscription=\"Alarm\"")
        });
    // An operator acknowledges it: the gateway sends AlarmCmd ResetAlarm
    // (sipp gives only the SIP 200, so the reset reports no answer) and
    // records who acknowledged it; the open-alarms list no longer has it.
    let id = alarm["id"].as_i64().unwrap();
    let (status, body) = gw
        .api(Method::POST, &format!("/api/v1/events/{id}/ack"), None)
        .await;
    assert_eq!(status, 200, "{body}");
    assert!(body["acknowledged_at"].is_i64(), "{body}");
    assert!(
        !body["acknowledged_by"].as_str().unwrap().is_empty(),
        "{body}"
    );
    assert!(
        body["device_reset"]
            .as_str()
            .unwrap()
            .contains("did not answer"),
        "{body}"
    );
    let open = events(&gw, "kind=alarm&unacknowledged=true").await;
    assert!(open.iter().all(|e| e["id"] != id), "{open:?}");
    let (status, again) = gw
        .api(Method::POST, &format!("/api/v1/events/{id}/ack"), None)
        .await;
    assert_eq!(status, 200, "{again}");
    assert_eq!(again["device_reset"], "already acknowledged");
    assert_eq!(again["acknowledged_at"], body["acknowledged_at"]);
    let online = events(&gw, "kind=device_online").await;
    if let Some(e) = online.first() {
        let (status, body) = gw
            .api(
                Method::POST,
                &format!("/api/v1/events/{}/ack", e["id"]),
                None,
            )
            .await;
        assert_eq!(status, 409, "{body}");
    }

    // sipp registers with X-GB-Ver 3.0: a 2022 device takes PTZPreciseCtrl.
    let (status, body) = gw
        .api(
            Method::POST,
            &format!("{base}/ptz/precise"),
            Some(json!({"pan": 123.4, "tilt": -5.0, "zoom": 3.0})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    // RecordInfo: sipp echoes the asked span as one recording.
    let (status, body) = gw
        .api(
            Method::GET,
            &format!("/api/v1/channels/{DEVICE}/{cam}/records?start=2026-11-30T08:00:00&end=2026-11-30T09:00:00"),
            None,
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body["records"][0]["start_time"], "2026-11-30T08:00:00",
        "{body}"
    );
    assert_eq!(
        body["records"][0]["end_time"], "2026-11-30T09:00:00",
        "{body}"
    );
    assert_eq!(
        body["records"][0]["file_path"], "/sipp/record-1.mp4",
        "{body}"
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    let want = [
        "records=2026-11-30T08:00:00..2026-11-30T09:00:00".to_owned(),
        "precise=123.40/-5.00/3.00".to_owned(),
        "cmd=DeviceControl sn=".to_owned(),
        format!("qdev={cam} plat={PLATFORM}"),
        "ptz=A50F010180000036 priority=5".to_owned(),
        "ptz=A50F01820003003A priority=5".to_owned(),
        // The gateway's own stop after 300 ms.
        "ptz=A50F0100000000B5 priority=5".to_owned(),
    ];
    loop {
        let logs = sipp.scenario_logs();
        if want.iter().all(|w| logs.contains(w.as_str())) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "sipp logs lack {want:?}:\n{logs}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    drop(sipp);
}
