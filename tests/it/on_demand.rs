//! On-demand lifecycle observed from the camera's side, start errors, and
//! shutdown.

use std::time::{Duration, Instant};

use crate::common::{Camera, Gateway, GatewayOptions, ffmpeg_debian, ffmpeg_decode};

#[tokio::test(flavor = "multi_thread")]
async fn camera_session_exists_only_while_watched_plus_grace() {
    let cam = Camera::start();
    let gw = Gateway::start(GatewayOptions {
        grace_secs: 3,
        ..Default::default()
    });
    gw.add_source("porch", &cam.url("h264"), "tcp").await;

    // Nobody watches: the camera sees no client at all.
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(cam.count("CLIENT_CONNECTED"), 0, "{:?}", cam.events.all());
    assert_eq!(cam.sessions(), 0);
    assert_eq!(gw.source_state("porch").await, "idle");

    // A viewer opens exactly one session.
    let log = ffmpeg_decode(&ffmpeg_debian(), &gw.url("/live/porch.flv"), 50).await;
    assert!(log.contains("Video: h264"));
    let viewer_left = Instant::now();
    assert_eq!(cam.count("PLAY /h264"), 1, "{:?}", cam.events.all());

    // Within the grace period the session stays open …
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(viewer_left.elapsed() < Duration::from_secs(3));
    assert_eq!(
        cam.sessions(),
        1,
        "session kept during grace: {:?}",
        cam.events.all()
    );
    assert_eq!(gw.source_state("porch").await, "live");

    // … and closes after it.
    cam.wait_sessions("session closed after grace", Duration::from_secs(15), |n| {
        n == 0
    });
    assert!(
        viewer_left.elapsed() >= Duration::from_secs(3),
        "closed before the grace period ended"
    );
    assert!(cam.count("CLIENT_CLOSED") >= 1);
    assert_eq!(gw.source_state("porch").await, "idle");

    // The next viewer starts it again.
    ffmpeg_decode(&ffmpeg_debian(), &gw.url("/live/porch.flv"), 10).await;
    assert_eq!(cam.count("PLAY /h264"), 2);
}

#[tokio::test(flavor = "multi_thread")]
async fn always_on_source_runs_without_viewers() {
    let cam = Camera::start();
    let gw = Gateway::start(GatewayOptions::default());
    let (s, body) = gw
        .api(
            reqwest::Method::POST,
            "/api/v1/sources",
            Some(
                serde_json::json!({"name": "dock", "url": cam.url("h264only"), "on_demand": false}),
            ),
        )
        .await;
    assert_eq!(s, 201, "{body}");
    cam.wait_sessions("always-on session", Duration::from_secs(15), |n| n == 1);
    let deadline = Instant::now() + Duration::from_secs(15);
    while gw.source_state("dock").await != "live" {
        assert!(Instant::now() < deadline, "source never went live");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let (_, streams) = gw
        .api(reqwest::Method::GET, "/api/v1/streams/dock", None)
        .await;
    assert_eq!(streams["publishing"], true);
    assert_eq!(streams["tracks"][0]["codec"], "h264");
    assert_eq!(streams["tracks"][0]["width"], 640);

    // Switching it to on-demand lets it stop after the grace period.
    let (s, _) = gw
        .api(
            reqwest::Method::PATCH,
            "/api/v1/sources/dock",
            Some(serde_json::json!({"on_demand": true})),
        )
        .await;
    assert_eq!(s, 200);
    cam.wait_sessions(
        "session closed once on-demand",
        Duration::from_secs(15),
        |n| n == 0,
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn unreachable_camera_gives_a_clear_error_quickly() {
    // A port nobody listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let gw = Gateway::start(GatewayOptions::default());
    gw.add_source("dead", &format!("rtsp://127.0.0.1:{port}/x"), "tcp")
        .await;
    let started = Instant::now();
    let (status, err) = gw.get("/live/dead.flv", None).await;
    assert_eq!(status, 502);
    assert_eq!(err["error"]["code"], "source_failed");
    assert!(
        err["error"]["message"].as_str().unwrap().contains("dead"),
        "{err}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "error took {:?}",
        started.elapsed()
    );
    let (_, src) = gw
        .api(reqwest::Method::GET, "/api/v1/sources/dead", None)
        .await;
    assert_eq!(src["status"]["state"], "error", "{src}");
    assert!(
        src["status"]["reason"]
            .as_str()
            .unwrap()
            .contains("DESCRIBE"),
        "{src}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn silent_camera_times_out_with_504() {
    // Accepts TCP and never answers: DESCRIBE hangs until the start timeout.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let gw = Gateway::start(GatewayOptions {
        start_timeout_secs: 3,
        ..Default::default()
    });
    gw.add_source("mute", &format!("rtsp://127.0.0.1:{port}/x"), "tcp")
        .await;
    let (status, err) = gw.get("/live/mute.flv", None).await;
    assert_eq!(status, 504);
    assert_eq!(err["error"]["code"], "source_timeout");
    drop(listener);
}

#[tokio::test(flavor = "multi_thread")]
async fn unknown_stream_is_404() {
    let gw = Gateway::start(GatewayOptions::default());
    for path in ["/live/nope.flv", "/live/nope", "/live/nope.mp4"] {
        let resp = Gateway::client().get(gw.url(path)).send().await.unwrap();
        assert_eq!(resp.status().as_u16(), 404, "{path}");
        let err: serde_json::Value = resp.json().await.unwrap();
        assert_eq!(err["error"]["code"], "not_found");
    }
}

/// SIGTERM with a viewer and a camera session open: the viewer's stream ends,
/// the camera sees its client leave, the process exits 0 promptly, and the
/// database is checkpointed (no WAL left behind).
#[tokio::test(flavor = "multi_thread")]
async fn sigterm_closes_viewers_sources_and_database() {
    let cam = Camera::start();
    let mut gw = Gateway::start(GatewayOptions::default());
    gw.add_source("front", &cam.url("h264"), "tcp").await;
    let mut resp = Gateway::client()
        .get(gw.url("/live/front.flv"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    let first = resp.chunk().await.unwrap().expect("FLV bytes");
    assert_eq!(&first[..3], b"FLV");
    cam.wait_sessions("camera session", Duration::from_secs(10), |n| n == 1);

    let reader = tokio::spawn(async move {
        let mut total = 0usize;
        while let Ok(Some(c)) = resp.chunk().await {
            total += c.len();
        }
        total
    });
    let started = Instant::now();
    let status = tokio::task::block_in_place(|| gw.terminate(Duration::from_secs(15)));
    assert!(
        status.success(),
        "exit status {status:?}; log:\n{}",
        gw.logs.all().join("\n")
    );
    assert!(started.elapsed() < Duration::from_secs(10));
    tokio::time::timeout(Duration::from_secs(5), reader)
        .await
        .expect("viewer stream ended")
        .unwrap();
    cam.wait_sessions("camera session closed", Duration::from_secs(10), |n| n == 0);
    assert!(gw.logs.contains("database closed"));
    let wal = gw.dir.path().join("data/camgate.db-wal");
    assert!(
        !wal.exists() || std::fs::metadata(&wal).unwrap().len() == 0,
        "WAL not checkpointed"
    );
}
