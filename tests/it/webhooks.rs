//! Webhooks against a local HTTP receiver: events arrive as signed JSON,
//! a failed delivery is retried with backoff, and every attempt is visible
//! in the API.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::mpsc;
use std::time::Duration;

use reqwest::Method;
use serde_json::json;

use crate::common::{Gateway, GatewayOptions, fixture};
use crate::gb_sim::{SIM_DEVICE, Sim, first_camera, setup};

struct Received {
    path: String,
    headers: HashMap<String, String>,
    body: Vec<u8>,
}

/// An HTTP receiver that answers the first `fail_first` requests with 503.
fn receiver(fail_first: usize) -> (u16, mpsc::Receiver<Received>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut served = 0;
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { continue };
            let mut reader = BufReader::new(conn.try_clone().unwrap());
            let mut line = String::new();
            if reader.read_line(&mut line).is_err() {
                continue;
            }
            let path = line.split_whitespace().nth(1).unwrap_or("").to_owned();
            let mut headers = HashMap::new();
            loop {
                let mut h = String::new();
                if reader.read_line(&mut h).unwrap_or(0) == 0 || h == "\r\n" {
                    break;
                }
                if let Some((k, v)) = h.split_once(':') {
                    headers.insert(k.trim().to_ascii_lowercase(), v.trim().to_owned());
                }
            }
            let len: usize = headers
                .get("content-length")
                .and_then(|v| v.parse().ok())
                .unwrap_or(0);
            let mut body = vec![0; len];
            let _ = reader.read_exact(&mut body);
            served += 1;
            let status = if served <= fail_first {
                "503 Service Unavailable"
            } else {
                "200 OK"
            };
            let _ = write!(
                conn,
                "HTTP/1.1 {status}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
            );
            let _ = tx.send(Received {
                path,
                headers,
                body,
            });
        }
    });
    (port, rx)
}

#[tokio::test(flavor = "multi_thread")]
async fn events_reach_a_webhook_signed_and_retried() {
    let (port, rx) = receiver(1);
    let gw = Gateway::start(GatewayOptions::default());
    let secret = "a-webhook-secret-0123456789";
    // Refusals first.
    for (body, field) in [
        (
            json!({"url": "https://vms.test/hook", "secret": secret}),
            "url",
        ),
        (
            json!({"url": "ftp://vms.test/hook", "secret": secret}),
            "url",
        ),
        (
            json!({"url": format!("http://127.0.0.1:{port}/hook"), "secret": "short"}),
            "secret",
        ),
        (
            json!({"url": format!("http://127.0.0.1:{port}/hook"), "secret": secret, "events": ["nonsense"]}),
            "events",
        ),
    ] {
        let (status, r) = gw.api(Method::POST, "/api/v1/webhooks", Some(body)).await;
        assert_eq!(status, 400, "{r}");
        assert_eq!(r["error"]["field"], field, "{r}");
    }
    let (status, hook) = gw
        .api(
            Method::POST,
            "/api/v1/webhooks",
            Some(json!({
                "url": format!("http://127.0.0.1:{port}/hook?site=1"),
                "secret": secret,
                "events": ["device_online", "stream_started"]
            })),
        )
        .await;
    assert_eq!(status, 201, "{hook}");
    assert!(hook.get("secret").is_none(), "{hook}");
    let id = hook["id"].as_i64().unwrap();

    // A device comes online: the first delivery gets 503, the retry 200.
    setup(&gw).await;
    let sim = Sim::start(&gw, &fixture("h264-es/240x320.h264"), &[]);
    let first = rx
        .recv_timeout(Duration::from_secs(10))
        .expect("first delivery");
    let retry = rx.recv_timeout(Duration::from_secs(10)).expect("the retry");
    assert_eq!(first.body, retry.body, "the retry carries the same event");
    assert_eq!(retry.path, "/hook?site=1");
    assert_eq!(retry.headers["content-type"], "application/json");
    assert_eq!(retry.headers["x-camgate-event"], "device_online");
    assert_eq!(
        retry.headers["x-camgate-signature"],
        camgate::webhooks::signature(secret, &retry.body),
        "HMAC-SHA256 of the body"
    );
    let event: serde_json::Value = serde_json::from_slice(&retry.body).unwrap();
    assert_eq!(event["kind"], "device_online");
    assert_eq!(event["device_id"], SIM_DEVICE);
    assert!(event["at"].as_i64().unwrap() > 1_700_000_000_000);

    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    loop {
        let (_, d) = gw
            .api(
                Method::GET,
                &format!("/api/v1/webhooks/{id}/deliveries"),
                None,
            )
            .await;
        let last = &d[0];
        if last["state"] == "delivered" {
            assert_eq!(last["attempts"], 2, "{d}");
            assert_eq!(last["last_status"], 200, "{d}");
            break;
        }
        assert!(std::time::Instant::now() < deadline, "not delivered: {d}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // A stream starts: stream_started (and nothing it did not ask for).
    let ch = first_camera(&gw).await;
    let (status, play) = gw
        .api(
            Method::POST,
            &format!("/api/v1/channels/{SIM_DEVICE}/{ch}/play"),
            None,
        )
        .await;
    assert_eq!(status, 200, "{play}");
    let started = rx
        .recv_timeout(Duration::from_secs(10))
        .expect("stream_started");
    let event: serde_json::Value = serde_json::from_slice(&started.body).unwrap();
    assert_eq!(event["kind"], "stream_started", "{event}");
    assert_eq!(event["stream"], format!("{SIM_DEVICE}_{ch}"));

    let (status, _) = gw
        .api(Method::DELETE, &format!("/api/v1/webhooks/{id}"), None)
        .await;
    assert_eq!(status, 204);
    drop(sim);
}
