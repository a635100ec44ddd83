//! The OpenAPI document (`/api/openapi.json`) and the docs viewer
//! (`/api/docs`): the document covers every routed operation with its
//! security and auth errors, every `$ref` resolves, and Schemathesis, run
//! against a real gateway with a `camgate sim` device registered, finds no
//! server error and no answer that departs from the document.

use std::process::Stdio;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::common::{Gateway, GatewayOptions, TOKEN, fixture};
use crate::gb_sim::{SIM_DEVICE, Sim, first_camera, setup};

async fn document(gw: &Gateway) -> Value {
    let resp = Gateway::client()
        .get(gw.url("/api/openapi.json"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(
        resp.headers()["content-type"].to_str().unwrap(),
        "application/json"
    );
    let text = resp.text().await.unwrap();
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
}

/// Every `$ref` string anywhere under `v`.
fn refs<'a>(v: &'a Value, out: &mut Vec<&'a str>) {
    match v {
        Value::Object(m) => {
            for (k, x) in m {
                match (k.as_str(), x) {
                    ("$ref", Value::String(r)) => out.push(r),
                    _ => refs(x, out),
                }
            }
        }
        Value::Array(a) => a.iter().for_each(|x| refs(x, out)),
        _ => {}
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn document_covers_every_route_with_security_and_auth_errors() {
    let gw = Gateway::start(GatewayOptions::default());
    let doc = document(&gw).await;
    assert!(
        doc["openapi"]
            .as_str()
            .is_some_and(|v| v.starts_with("3.1")),
        "{}",
        doc["openapi"]
    );
    assert_eq!(doc["info"]["title"], "camgate");
    assert_eq!(doc["info"]["version"], env!("CARGO_PKG_VERSION"));
    let schemes = &doc["components"]["securitySchemes"];
    assert_eq!(schemes["bearer"]["type"], "http");
    assert_eq!(schemes["bearer"]["scheme"], "bearer");
    assert_eq!(schemes["session"]["type"], "apiKey");
    assert_eq!(schemes["session"]["in"], "cookie");
    assert_eq!(schemes["session"]["name"], "camgate_session");

    for (method, path, role) in camgate::api::AUTHENTICATED_ROUTES {
        let op = &doc["paths"][*path][method.to_ascii_lowercase()];
        assert!(op.is_object(), "{method} {path} ({role}) is not documented");
        let security: Vec<&str> = op["security"]
            .as_array()
            .unwrap_or_else(|| panic!("{method} {path}: no security"))
            .iter()
            .flat_map(|r| r.as_object().unwrap().keys().map(String::as_str))
            .collect();
        assert_eq!(security, ["bearer", "session"], "{method} {path}");
        assert!(
            op["security"]
                .as_array()
                .unwrap()
                .iter()
                .all(|r| r.as_object().is_some_and(|o| !o.is_empty())),
            "{method} {path}: anonymous access documented"
        );
        for status in ["401", "403"] {
            assert_eq!(
                op["responses"][status]["content"]["application/json"]["schema"]["$ref"],
                "#/components/schemas/ApiErrorBody",
                "{method} {path}: {status}"
            );
        }
        assert!(
            op["tags"].as_array().is_some_and(|t| t.len() == 1),
            "{method} {path}: one tag"
        );
    }
    let health = &doc["paths"]["/api/v1/health"]["get"];
    assert!(health.is_object());
    assert!(health.get("security").is_none(), "{health}");
    assert!(health["responses"]["401"].is_null());

    let mut all = Vec::new();
    refs(&doc, &mut all);
    assert!(all.len() > 50, "{} $refs", all.len());
    for r in all {
        let pointer = r
            .strip_prefix('#')
            .unwrap_or_else(|| panic!("non-local $ref {r}"));
        assert!(doc.pointer(pointer).is_some(), "$ref {r} does not resolve");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn docs_viewer_and_its_assets_are_served_with_etags() {
    let gw = Gateway::start(GatewayOptions::default());
    let client = Gateway::client();
    for (path, content_type, needle) in [
        ("/api/docs", "text/html; charset=utf-8", "/api-docs/docs.js"),
        (
            "/api-docs/docs.js",
            "text/javascript; charset=utf-8",
            "/api/openapi.json",
        ),
        (
            "/api-docs/docs.css",
            "text/css; charset=utf-8",
            "details.op",
        ),
        ("/api/openapi.json", "application/json", "\"openapi\""),
    ] {
        // No token: documentation is public.
        let resp = client.get(gw.url(path)).send().await.unwrap();
        assert_eq!(resp.status(), 200, "{path}");
        let h = resp.headers().clone();
        assert_eq!(h["content-type"], content_type, "{path}");
        assert_eq!(h["cache-control"], "no-cache", "{path}");
        let etag = h["etag"].to_str().unwrap().to_owned();
        let body = resp.text().await.unwrap();
        assert!(body.contains(needle), "{path} lacks {needle}");
        let again = client
            .get(gw.url(path))
            .header("if-none-match", &etag)
            .send()
            .await
            .unwrap();
        assert_eq!(again.status(), 304, "{path}");
        assert_eq!(again.headers()["etag"].to_str().unwrap(), etag);
    }
    let html = client
        .get(gw.url("/api/docs"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(html.contains("href=\"/api-docs/docs.css\""), "{html}");
    assert!(
        !html.contains("http://") && !html.contains("https://"),
        "the docs page loads nothing from elsewhere"
    );
}

/// Schemathesis (pinned in tests/run-all.sh) against a gateway with a
/// `camgate sim` device registered, as admin.
#[tokio::test(flavor = "multi_thread")]
async fn schemathesis_finds_no_server_error_or_schema_mismatch() {
    let gw = Gateway::start(GatewayOptions {
        grace_secs: 1,
        start_timeout_secs: 5,
        ..GatewayOptions::default()
    });
    setup(&gw).await;
    let sim = Sim::start(&gw, &fixture("h264-es/240x320.h264"), &[]);
    let channel = first_camera(&gw).await;
    // Statuses not_a_server_error accepts: the default 2xx-4xx, plus the
    // documented 5xx of a gateway talking to devices (502 the device
    // refused, 503 no capacity / stream ended, 504 no answer in time, 507
    // disk full); status_code_conformance still requires each to be
    // documented for its operation. 500 stays a failure.
    let config = gw.dir.path().join("schemathesis.toml");
    std::fs::write(
        &config,
        "[checks.not_a_server_error]\n\
         expected-statuses = [\"2xx\", \"3xx\", \"4xx\", \"502\", \"503\", \"504\", \"507\"]\n",
    )
    .unwrap();
    let started = Instant::now();
    let out = tokio::process::Command::new("schemathesis")
        .arg("--config-file")
        .arg(&config)
        .args(["--no-color", "run"])
        .arg(gw.url("/api/openapi.json"))
        .args(["--header", &format!("Authorization: Bearer {TOKEN}")])
        .args([
            "--checks",
            "not_a_server_error,response_schema_conformance,status_code_conformance,content_type_conformance",
        ])
        // Live outputs are endless media streams.
        .args(["--exclude-path-regex", "^/live/"])
        // Revoking tokens could revoke the one this run authenticates with
        // (once the run has made another admin token, the first is no
        // longer the last admin and may go); everything after would be 401.
        .args(["--exclude-operation-id", "tokens.delete"])
        // The probe connects to whatever URL it is given (10 s timeouts to
        // random hosts); tests/it/rtsp_flv.rs tests it against a camera.
        .args(["--exclude-operation-id", "sources.probe_rtsp"])
        .args(["--phases", "examples,coverage,fuzzing"])
        .args(["--max-examples", "15", "--seed", "20261130"])
        .args(["--request-timeout", "30", "--workers", "1"])
        .args(["--report", "junit", "--report-dir"])
        .arg(gw.dir.path().join("schemathesis-report"))
        .current_dir(gw.dir.path())
        .stdin(Stdio::null())
        .output();
    let out = tokio::time::timeout(Duration::from_secs(600), out)
        .await
        .expect("schemathesis ran for 10 minutes")
        .expect("run schemathesis (pip install schemathesis; see tests/run-all.sh)");
    let elapsed = started.elapsed();
    let text = format!(
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    eprintln!(
        "schemathesis ran {:.1} s against device {SIM_DEVICE} channel {channel}",
        elapsed.as_secs_f64()
    );
    assert!(
        out.status.success(),
        "schemathesis failed ({}):\n{text}\n--- gateway log (last 200 lines) ---\n{}",
        out.status,
        gw.logs
            .all()
            .iter()
            .rev()
            .take(200)
            .rev()
            .cloned()
            .collect::<Vec<_>>()
            .join("\n")
    );
    // It did test: operations ran, not just loaded.
    assert!(text.contains("passed"), "{text}");
    drop(sim);
}
