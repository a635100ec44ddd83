//! `camgate backup`, `restore` and `check` on the real binary.

use std::path::Path;
use std::process::{Command, Output};

use crate::common::{Gateway, GatewayOptions, TOKEN};

fn camgate(data_dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_camgate"));
    cmd.args(args)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("CAMGATE_DATA_DIR", data_dir)
        .env("CAMGATE_LOG", "warn");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().expect("run camgate")
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn backup_online_restore_offline_and_check() {
    let gw = Gateway::start(GatewayOptions::default());
    let data = gw.dir.path().join("data");
    // Something to find again: a token made through the API.
    let (status, created) = gw
        .api(
            reqwest::Method::POST,
            "/api/v1/tokens",
            Some(serde_json::json!({"name": "restored", "role": "viewer"})),
        )
        .await;
    assert_eq!(status, 201, "{created}");
    let viewer = created["token"].as_str().unwrap().to_owned();

    let work = tempfile::tempdir().unwrap();
    let copy = work.path().join("camgate-backup.db");
    // Online backup while the gateway runs.
    let out = camgate(&data, &["backup", copy.to_str().unwrap()], &[]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("integrity ok"), "{}", text(&out));
    // Restore and a second gateway are refused while it runs.
    let out = camgate(&data, &["restore", copy.to_str().unwrap()], &[]);
    assert!(!out.status.success());
    assert!(
        text(&out).contains("another camgate is using"),
        "{}",
        text(&out)
    );
    // check: the data dir is busy → exit 1 with the reason.
    let out = camgate(
        &data,
        &["check"],
        &[
            ("CAMGATE_HTTP_LISTEN", "127.0.0.1:0"),
            ("CAMGATE_SIP_LISTEN", "127.0.0.1:0"),
            ("CAMGATE_RTP_LISTEN", "127.0.0.1:0"),
            ("CAMGATE_RTSP_SERVER_LISTEN", "127.0.0.1:0"),
            ("CAMGATE_RTSP_SERVER_UDP_PORT", "0"),
            ("CAMGATE_WEBRTC_LISTEN", "127.0.0.1:0"),
        ],
    );
    assert!(!out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains("ERROR another camgate is using"),
        "{}",
        text(&out)
    );
    gw.stop();

    // Restore into a fresh directory; a gateway on it knows the token.
    let fresh = work.path().join("fresh");
    let out = camgate(&fresh, &["restore", copy.to_str().unwrap()], &[]);
    assert!(out.status.success(), "{}", text(&out));
    let dir = tempfile::tempdir().unwrap();
    std::fs::rename(&fresh, dir.path().join("data")).unwrap();
    let gw = Gateway::start_in(dir, GatewayOptions::default());
    assert_eq!(gw.get("/api/v1/streams", Some(&viewer)).await.0, 200);
    assert_eq!(gw.get("/api/v1/streams", Some(TOKEN)).await.0, 200);
    let kept = gw.stop();
    let data = kept.path().join("data");

    // check on a stopped gateway with free ports: all ok.
    let out = camgate(
        &data,
        &["check"],
        &[
            ("CAMGATE_HTTP_LISTEN", "127.0.0.1:0"),
            ("CAMGATE_SIP_LISTEN", "127.0.0.1:0"),
            ("CAMGATE_RTP_LISTEN", "127.0.0.1:0"),
            ("CAMGATE_RTSP_SERVER_LISTEN", "127.0.0.1:0"),
            ("CAMGATE_RTSP_SERVER_UDP_PORT", "0"),
            ("CAMGATE_WEBRTC_LISTEN", "127.0.0.1:0"),
        ],
    );
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains("passes the integrity check"),
        "{}",
        text(&out)
    );
    // A port in use is reported.
    let busy = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = busy.local_addr().unwrap().to_string();
    let out = camgate(
        &data,
        &["check"],
        &[
            ("CAMGATE_HTTP_LISTEN", &addr),
            ("CAMGATE_SIP_LISTEN", "127.0.0.1:0"),
            ("CAMGATE_RTP_LISTEN", "127.0.0.1:0"),
            ("CAMGATE_RTSP_SERVER_LISTEN", "127.0.0.1:0"),
            ("CAMGATE_RTSP_SERVER_UDP_PORT", "0"),
            ("CAMGATE_WEBRTC_LISTEN", "127.0.0.1:0"),
        ],
    );
    assert!(!out.status.success());
    assert!(
        text(&out).contains(&format!("ERROR HTTP port {addr}")),
        "{}",
        text(&out)
    );
    // A backup from a newer camgate is refused and the data kept.
    let newer = work.path().join("newer.db");
    std::fs::copy(&copy, &newer).unwrap();
    let c = rusqlite::Connection::open(&newer).unwrap();
    c.pragma_update(None, "user_version", 999).unwrap();
    drop(c);
    let out = camgate(&data, &["restore", newer.to_str().unwrap()], &[]);
    assert!(!out.status.success());
    assert!(
        text(&out).contains("newer than this camgate knows"),
        "{}",
        text(&out)
    );
}
