//! REST API: authentication on every route, error shapes, sources CRUD, tokens,
//! settings, first-start token.

use reqwest::Method;
use serde_json::json;

use crate::common::{Gateway, GatewayOptions, TOKEN};

fn concrete(path: &str) -> String {
    path.replace("{name}", "x").replace("{id}", "1")
}

#[tokio::test(flavor = "multi_thread")]
async fn every_route_answers_401_without_a_valid_token() {
    let gw = Gateway::start(GatewayOptions::default());
    let client = Gateway::client();
    for (method, path, _) in camgate::api::AUTHENTICATED_ROUTES {
        let url = gw.url(&concrete(path));
        let m: Method = method.parse().unwrap();
        for auth in [
            None,
            Some("Bearer wrong-token"),
            Some("Basic dXNlcjpwYXNz"),
            Some("Bearer "),
        ] {
            let mut req = client.request(m.clone(), &url);
            if let Some(a) = auth {
                req = req.header("authorization", a);
            }
            if matches!(*method, "POST" | "PUT" | "PATCH") {
                req = req.json(&json!({}));
            }
            let resp = req.send().await.unwrap();
            assert_eq!(resp.status().as_u16(), 401, "{method} {path} with {auth:?}");
            assert_eq!(resp.headers()["www-authenticate"], "Bearer");
            let body: serde_json::Value = resp.json().await.unwrap();
            assert_eq!(body["error"]["code"], "unauthorized", "{method} {path}");
        }
    }
    // Health is open.
    let resp = client.get(gw.url("/api/v1/health")).send().await.unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    let body: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(body["status"], "ok");
}

#[tokio::test(flavor = "multi_thread")]
async fn sources_crud_validation_and_error_shape() {
    let gw = Gateway::start(GatewayOptions::default());
    let post = |body: serde_json::Value| gw.api(Method::POST, "/api/v1/sources", Some(body));

    let (s, b) = post(
        json!({"name": "cam-1", "url": "rtsp://admin:pw@192.0.2.10:554/ch1", "transport": "udp"}),
    )
    .await;
    assert_eq!(s, 201, "{b}");
    assert_eq!(b["url"], "rtsp://192.0.2.10:554/ch1");
    assert_eq!(b["has_credentials"], true);
    assert_eq!(b["transport"], "udp");
    assert_eq!(b["on_demand"], true);
    assert_eq!(b["status"]["state"], "idle");
    assert!(
        b["urls"]["http_flv"]
            .as_str()
            .unwrap()
            .ends_with("/live/cam-1.flv")
    );
    assert!(b.get("password").is_none() && b.get("username").is_none());

    let (s, b) = post(json!({"name": "cam-1", "url": "rtsp://192.0.2.11/"})).await;
    assert_eq!(s, 409, "{b}");
    assert_eq!(b["error"]["code"], "conflict");

    let cases = [
        (json!({"url": "rtsp://h/"}), "name"),
        (json!({"name": "a b", "url": "rtsp://h/"}), "name"),
        (json!({"name": "ok", "url": "http://h/"}), "url"),
        (
            json!({"name": "ok", "url": "rtsp://h/", "transport": "sctp"}),
            "transport",
        ),
        (
            json!({"name": "ok", "url": "rtsp://h/", "on_demand": "yes"}),
            "on_demand",
        ),
        (json!({"name": "ok", "url": 5}), "url"),
    ];
    for (body, field) in cases {
        let (s, b) = post(body.clone()).await;
        assert_eq!(s, 400, "{body} → {b}");
        assert_eq!(b["error"]["field"], field, "{body} → {b}");
        assert!(b["error"]["message"].as_str().unwrap().len() > 5);
    }
    let (s, b) = post(json!({"name": "ok", "url": "rtsp://h/", "colour": "red"})).await;
    assert_eq!(s, 400);
    assert!(
        b["error"]["message"].as_str().unwrap().contains("colour"),
        "{b}"
    );

    // Broken JSON and wrong content type.
    let client = Gateway::client();
    let resp = client
        .post(gw.url("/api/v1/sources"))
        .bearer_auth(TOKEN)
        .header("content-type", "application/json")
        .body("{\"name\": ")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 400);
    let b: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(b["error"]["code"], "invalid_json");
    let resp = client
        .post(gw.url("/api/v1/sources"))
        .bearer_auth(TOKEN)
        .body("name=x")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 415);

    let (s, b) = gw.api(Method::GET, "/api/v1/sources", None).await;
    assert_eq!(s, 200);
    assert_eq!(b.as_array().unwrap().len(), 1);
    assert!(!b.to_string().contains("pw@"), "{b}");

    let (s, b) = gw
        .api(
            Method::PATCH,
            "/api/v1/sources/cam-1",
            Some(json!({"username": "", "transport": "tcp"})),
        )
        .await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(b["has_credentials"], false);
    assert_eq!(b["transport"], "tcp");

    let (s, _) = gw.api(Method::GET, "/api/v1/streams/cam-1", None).await;
    assert_eq!(s, 200);
    let (s, _) = gw.api(Method::DELETE, "/api/v1/sources/cam-1", None).await;
    assert_eq!(s, 204);
    let (s, b) = gw.api(Method::GET, "/api/v1/sources/cam-1", None).await;
    assert_eq!(s, 404);
    assert_eq!(b["error"]["code"], "not_found");
    let (s, _) = gw.api(Method::GET, "/api/v1/streams/cam-1", None).await;
    assert_eq!(s, 404);
    let (s, _) = gw.api(Method::DELETE, "/api/v1/sources/cam-1", None).await;
    assert_eq!(s, 404);
}

#[tokio::test(flavor = "multi_thread")]
async fn tokens_roles_and_last_admin_protection() {
    let gw = Gateway::start(GatewayOptions::default());
    let (s, b) = gw
        .api(
            Method::POST,
            "/api/v1/tokens",
            Some(json!({"name": "vms", "role": "viewer"})),
        )
        .await;
    assert_eq!(s, 201, "{b}");
    let viewer_token = b["token"].as_str().unwrap().to_owned();
    let viewer_id = b["id"].as_i64().unwrap();
    let (_, list) = gw.api(Method::GET, "/api/v1/tokens", None).await;
    assert!(
        !list.to_string().contains(&viewer_token[3..]),
        "token values never listed"
    );

    // A viewer token can read streams but not change sources or tokens.
    let client = Gateway::client();
    assert_eq!(gw.get("/api/v1/streams", Some(&viewer_token)).await.0, 200);
    let r = client
        .post(gw.url("/api/v1/sources"))
        .bearer_auth(&viewer_token)
        .json(&json!({"name": "x", "url": "rtsp://h/"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 403);
    assert_eq!(gw.get("/api/v1/tokens", Some(&viewer_token)).await.0, 403);

    // The only admin token cannot be deleted; the viewer token can.
    let admin_id = list
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["role"] == "admin")
        .unwrap()["id"]
        .as_i64()
        .unwrap();
    let (s, b) = gw
        .api(Method::DELETE, &format!("/api/v1/tokens/{admin_id}"), None)
        .await;
    assert_eq!(s, 409, "{b}");
    let (s, _) = gw
        .api(Method::DELETE, &format!("/api/v1/tokens/{viewer_id}"), None)
        .await;
    assert_eq!(s, 204);
    assert_eq!(
        gw.get("/api/v1/streams", Some(&viewer_token)).await.0,
        401,
        "revoked token refused"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn first_start_creates_and_logs_an_admin_token_once() {
    let gw = Gateway::start(GatewayOptions {
        admin_token: None,
        ..Default::default()
    });
    let line = gw.logs.wait_for(
        "first admin token",
        std::time::Duration::from_secs(5),
        |l| l.contains("created the first admin API token"),
    );
    let token = line.rsplit(": ").next().unwrap().trim().to_owned();
    assert!(token.starts_with("cg_") && token.len() == 67, "{line}");
    assert_eq!(gw.get("/api/v1/sources", Some(&token)).await.0, 200);
    let dir = gw.stop();
    let gw = Gateway::start_in(
        dir,
        GatewayOptions {
            admin_token: None,
            ..Default::default()
        },
    );
    assert!(
        !gw.logs.contains("created the first admin API token"),
        "printed only once"
    );
    assert_eq!(
        gw.get("/api/v1/sources", Some(&token)).await.0,
        200,
        "the token survives a restart"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn settings_and_sources_persist_across_restart() {
    let gw = Gateway::start(GatewayOptions::default());
    let (s, b) = gw
        .api(
            Method::PUT,
            "/api/v1/settings/media",
            Some(json!({"on_demand_grace_secs": 42, "start_timeout_secs": 7})),
        )
        .await;
    assert_eq!(s, 200, "{b}");
    let (s, b) = gw
        .api(
            Method::PUT,
            "/api/v1/settings/media",
            Some(json!({"on_demand_grace_secs": 99999, "start_timeout_secs": 7})),
        )
        .await;
    assert_eq!(s, 400);
    assert_eq!(b["error"]["field"], "on_demand_grace_secs");
    gw.add_source("kept", "rtsp://192.0.2.1/a", "tcp").await;
    let dir = gw.stop();
    let gw = Gateway::start_in(dir, GatewayOptions::default());
    let (_, b) = gw.api(Method::GET, "/api/v1/settings/media", None).await;
    assert_eq!(b["on_demand_grace_secs"], 42);
    let (_, b) = gw.api(Method::GET, "/api/v1/sources/kept", None).await;
    assert_eq!(b["url"], "rtsp://192.0.2.1/a");
    let (_, b) = gw.api(Method::GET, "/api/v1/streams", None).await;
    assert_eq!(b[0]["id"], "kept", "stored sources are loaded at start");
}

#[test]
fn help_documents_the_cli() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_camgate"))
        .arg("--help")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success());
    for needle in [
        "run",
        "migrate",
        "token",
        "--data-dir",
        "CAMGATE_HTTP_LISTEN",
        "--config",
    ] {
        assert!(text.contains(needle), "--help lacks {needle}:\n{text}");
    }
}

#[test]
fn token_cli_creates_a_working_token() {
    let dir = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_camgate"))
        .args([
            "token",
            "create",
            "--name",
            "ops",
            "--role",
            "operator",
            "--data-dir",
        ])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let token = String::from_utf8(out.stdout).unwrap().trim().to_owned();
    assert!(token.starts_with("cg_"));
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_camgate"))
        .args(["token", "list", "--data-dir"])
        .arg(dir.path())
        .output()
        .unwrap();
    let list = String::from_utf8(out.stdout).unwrap();
    assert!(list.contains("operator\tops"), "{list}");
    assert!(!list.contains(&token), "list never shows the token");
}

#[tokio::test(flavor = "multi_thread")]
async fn cors_answers_configured_origins_only() {
    let gw = Gateway::start(GatewayOptions {
        config_toml: "[http]\ncors_allowed_origins = [\"http://player.test:8000\"]\n".into(),
        ..GatewayOptions::default()
    });
    let client = Gateway::client();
    // A preflight carries no credentials and is answered before authentication.
    let pre = client
        .request(Method::OPTIONS, gw.url("/api/v1/streams"))
        .header("origin", "http://player.test:8000")
        .header("access-control-request-method", "GET")
        .header("access-control-request-headers", "authorization")
        .send()
        .await
        .unwrap();
    assert_eq!(pre.status().as_u16(), 204);
    let h = pre.headers();
    assert_eq!(h["access-control-allow-origin"], "http://player.test:8000");
    assert!(
        h["access-control-allow-headers"]
            .to_str()
            .unwrap()
            .contains("authorization")
    );
    assert!(
        h["access-control-allow-methods"]
            .to_str()
            .unwrap()
            .contains("POST")
    );
    // The real request still needs the token, and its answer is readable.
    for (token, status) in [(None, 401), (Some(TOKEN), 200)] {
        let mut req = client
            .get(gw.url("/api/v1/streams"))
            .header("origin", "http://player.test:8000");
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        let resp = req.send().await.unwrap();
        assert_eq!(resp.status().as_u16(), status);
        assert_eq!(
            resp.headers()["access-control-allow-origin"],
            "http://player.test:8000"
        );
        assert!(
            resp.headers()["access-control-expose-headers"]
                .to_str()
                .unwrap()
                .contains("location")
        );
    }
    // Another origin gets no CORS headers, so its scripts cannot read anything.
    let other = client
        .get(gw.url("/api/v1/health"))
        .header("origin", "http://evil.test")
        .send()
        .await
        .unwrap();
    assert_eq!(other.status().as_u16(), 200);
    assert!(!other.headers().contains_key("access-control-allow-origin"));
    let pre = client
        .request(Method::OPTIONS, gw.url("/api/v1/streams"))
        .header("origin", "http://evil.test")
        .header("access-control-request-method", "GET")
        .send()
        .await
        .unwrap();
    assert!(!pre.headers().contains_key("access-control-allow-origin"));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_bad_cors_origin_stops_the_start_with_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("camgate.toml"),
        "[http]\ncors_allowed_origins = [\"player.test/path\"]\n",
    )
    .unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_camgate"))
        .arg("check")
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let text =
        String::from_utf8_lossy(&out.stderr).into_owned() + &String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("CORS origin"), "{text}");
}

#[tokio::test(flavor = "multi_thread")]
async fn every_route_answers_403_to_a_weaker_role() {
    let gw = Gateway::start(GatewayOptions::default());
    let mut tokens = std::collections::HashMap::new();
    for role in ["viewer", "operator"] {
        let (status, t) = gw
            .api(
                Method::POST,
                "/api/v1/tokens",
                Some(json!({"name": role, "role": role})),
            )
            .await;
        assert_eq!(status, 201, "{t}");
        tokens.insert(role, t["token"].as_str().unwrap().to_owned());
    }
    let rank = |r: &str| match r {
        "admin" => 3,
        "operator" => 2,
        _ => 1,
    };
    let client = Gateway::client();
    let mut checked = 0;
    for (method, path, least) in camgate::api::AUTHENTICATED_ROUTES {
        for role in ["viewer", "operator"] {
            if rank(role) >= rank(least) {
                continue;
            }
            let url = gw.url(&concrete(path));
            let m: Method = method.parse().unwrap();
            let mut req = client.request(m, &url).bearer_auth(&tokens[role]);
            if matches!(*method, "POST" | "PUT" | "PATCH") {
                // Even an unreadable body: the role is checked first.
                req = req.header("content-type", "application/json").body("{");
            }
            let resp = req.send().await.unwrap();
            assert_eq!(resp.status().as_u16(), 403, "{method} {path} as {role}");
            let body: serde_json::Value = resp.json().await.unwrap();
            assert_eq!(body["error"]["code"], "forbidden", "{method} {path}");
            checked += 1;
        }
    }
    assert!(checked > 40, "{checked} route/role pairs");
}

#[tokio::test(flavor = "multi_thread")]
async fn network_settings_are_checked_stored_and_applied_at_the_next_start() {
    let gw = Gateway::start(GatewayOptions::default());
    let (s, v) = gw.get("/api/v1/settings/network", Some(TOKEN)).await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["restart_required"], false, "{v}");
    // The harness gives every listen address as an environment variable.
    assert_eq!(
        v["fixed_by_flags"],
        json!(["sip_port", "rtp_port", "rtsp_port", "webrtc_port"])
    );
    for (body, field) in [
        (json!({"sip_port": 7000, "rtp_port": 7000}), "sip_port"),
        (json!({"webrtc_port": 0}), "webrtc_port"),
        (json!({"public_ip": "0.0.0.0"}), "public_ip"),
        (json!({"public_ip": "not an address"}), "public_ip"),
    ] {
        let (s, v) = gw
            .api(Method::PUT, "/api/v1/settings/network", Some(body.clone()))
            .await;
        assert_eq!(
            (s, v["error"]["field"].as_str()),
            (400, Some(field)),
            "{body}: {v}"
        );
    }
    let (s, v) = gw
        .api(
            Method::PUT,
            "/api/v1/settings/network",
            Some(json!({"public_ip": "192.0.2.10", "sip_port": 15060})),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["public_ip"], "192.0.2.10");
    assert_eq!(v["sip_port"], 15060);
    assert_eq!(v["restart_required"], true, "{v}");
    let dir = gw.stop();
    let gw = Gateway::start_in(dir, GatewayOptions::default());
    let (_, v) = gw.get("/api/v1/settings/network", Some(TOKEN)).await;
    assert_eq!(v["public_ip"], "192.0.2.10", "{v}");
    // The address applies; the SIP port stays as the flag says.
    assert!(
        gw.logs
            .contains("the stored network setting is overridden by a command-line flag"),
        "the log names the overridden setting"
    );
    let (_, v) = gw.get("/api/v1/settings/network", Some(TOKEN)).await;
    assert_eq!(v["sip_port"], 15060, "the stored value is shown: {v}");
    let (s, v) = gw
        .api(
            Method::PUT,
            "/api/v1/settings/network",
            Some(json!({"public_ip": null})),
        )
        .await;
    assert_eq!(
        (s, v["restart_required"].as_bool()),
        (200, Some(true)),
        "{v}"
    );
}
