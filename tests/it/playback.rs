//! Playback of a device recording against `camgate sim`: INVITE
//! `s=Playback` with a history SSRC, the stream decoded by FFmpeg over FLV,
//! MANSRTSP pause/resume/speed/seek reaching the simulator in INFO, and
//! MediaStatus 121 at the end of the file ending the session with BYE.

use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::json;

use crate::common::{
    Gateway, GatewayOptions, TOKEN, decoded_frames, ffmpeg_decode, ffmpeg9, fixture,
};
use crate::gb_sim::{SIM_DEVICE, Sim, first_camera, setup};

#[tokio::test(flavor = "multi_thread")]
async fn playback_plays_is_controlled_and_ends_with_the_recording() {
    let gw = Gateway::start(GatewayOptions::default());
    setup(&gw).await;
    let sim = Sim::start(&gw, &fixture("h264-es/240x320.h264"), &[]);
    let ch = first_camera(&gw).await;
    let (start, end) = (1_796_000_400u64, 1_796_004_000u64);
    let (status, play) = gw
        .api(
            Method::POST,
            &format!("/api/v1/channels/{SIM_DEVICE}/{ch}/playback"),
            Some(json!({"start": start, "end": end})),
        )
        .await;
    assert_eq!(status, 200, "{play}");
    let stream = play["stream"].as_str().unwrap().to_owned();
    assert_eq!(stream, format!("{SIM_DEVICE}_{ch}_{start}_{end}"));
    // GB/T 28181-2016 §9.2.1: a history session's SSRC starts with 1.
    assert!(
        play["session"]["ssrc"].as_str().unwrap().starts_with('1'),
        "{play}"
    );
    sim.logs
        .wait_for("the Playback INVITE", Duration::from_secs(5), |l| {
            l.contains("sim invite") && l.contains("session=Playback")
        });

    // Every output plays it; FFmpeg decodes it over FLV while a second
    // viewer keeps it open for the controls below.
    let flv = play["urls"]["http_flv"].as_str().unwrap().to_owned();
    let keep = Gateway::client().get(&flv).send().await.unwrap();
    assert_eq!(keep.status(), 200);
    let log = ffmpeg_decode(&ffmpeg9(), &flv, 40).await;
    assert!(decoded_frames(&log) >= 40, "{log}");

    let control = |body: serde_json::Value| {
        let (gw, stream) = (&gw, stream.clone());
        async move {
            gw.api(
                Method::POST,
                &format!("/api/v1/playback/{stream}/control"),
                Some(body),
            )
            .await
        }
    };
    let saw = |what: &str, f: &dyn Fn(&str) -> bool| {
        sim.logs.wait_for(what, Duration::from_secs(5), |l| {
            l.contains("sim playback control") && f(l)
        });
    };
    let (status, body) = control(json!({"action": "pause"})).await;
    assert_eq!(
        (status, body["status"].as_u64()),
        (200, Some(200)),
        "{body}"
    );
    saw("PAUSE", &|l| l.contains("method=PAUSE"));
    let (status, _) = control(json!({"action": "resume"})).await;
    assert_eq!(status, 200);
    saw("PLAY now", &|l| {
        l.contains("method=PLAY") && l.contains("npt=now-")
    });
    let (status, _) = control(json!({"action": "scale", "scale": 4.0})).await;
    assert_eq!(status, 200);
    saw("Scale 4", &|l| l.contains("scale=Some(4.0)"));
    let (status, body) = control(json!({"action": "scale", "scale": 16.0})).await;
    assert_eq!(status, 400, "{body}");
    // Seek near the end of the 29 s input: at 4x it ends within seconds.
    let (status, _) = control(json!({"action": "seek", "offset": 25})).await;
    assert_eq!(status, 200);
    saw("seek", &|l| l.contains("npt=25-"));

    // The end of the file: MediaStatus 121, then the platform's BYE, and
    // the stream is gone.
    sim.logs
        .wait_for("MediaStatus 121", Duration::from_secs(20), |l| {
            l.contains("sim media status 121 sent")
        });
    gw.logs
        .wait_for("playback finished", Duration::from_secs(10), |l| {
            l.contains("GB28181 playback finished") && l.contains("MediaStatus 121")
        });
    sim.logs
        .wait_for("the platform's BYE", Duration::from_secs(10), |l| {
            l.contains("sim bye") && l.contains("by=platform")
        });
    drop(keep);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (status, _) = gw
            .api(Method::GET, &format!("/api/v1/streams/{stream}"), None)
            .await;
        if status == 404 {
            break;
        }
        assert!(Instant::now() < deadline, "the playback stream stayed");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let (status, _) = control(json!({"action": "pause"})).await;
    assert_eq!(status, 404);
    drop(sim);
}

/// Download (`s=Download`, `a=downloadspeed:8`) into an MP4 on the box:
/// progress in the API, the file fetched over HTTP and decoded by FFmpeg.
#[tokio::test(flavor = "multi_thread")]
async fn download_makes_an_mp4_that_ffmpeg_decodes() {
    let gw = Gateway::start(GatewayOptions::default());
    setup(&gw).await;
    let sim = Sim::start(&gw, &fixture("h264-es/240x320.h264"), &[]);
    let ch = first_camera(&gw).await;
    let (status, dl) = gw
        .api(
            Method::POST,
            &format!("/api/v1/channels/{SIM_DEVICE}/{ch}/downloads"),
            Some(json!({"start": 1_796_000_400u64, "end": 1_796_000_430u64, "speed": 8})),
        )
        .await;
    assert_eq!(status, 202, "{dl}");
    let id = dl["id"].as_u64().unwrap();
    sim.logs
        .wait_for("the Download INVITE", Duration::from_secs(5), |l| {
            l.contains("sim invite") && l.contains("session=Download")
        });
    // 29 s of input at 8x: a few seconds. Progress rises to done.
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut seen_progress = false;
    let info = loop {
        let (status, info) = gw
            .api(Method::GET, &format!("/api/v1/downloads/{id}"), None)
            .await;
        assert_eq!(status, 200, "{info}");
        match info["state"].as_str().unwrap() {
            "running" => {
                seen_progress |= info["percent"].as_f64().unwrap() > 0.0;
                let file = Gateway::client()
                    .get(gw.url(&format!("/api/v1/downloads/{id}/file")))
                    .bearer_auth(TOKEN)
                    .send()
                    .await
                    .unwrap()
                    .status()
                    .as_u16();
                match file {
                    409 => {} // a running download has no file yet
                    // Unless it finished between the two requests.
                    200 => {
                        let (_, again) = gw
                            .api(Method::GET, &format!("/api/v1/downloads/{id}"), None)
                            .await;
                        assert_eq!(again["state"], "done", "a file while running: {again}");
                    }
                    other => panic!("GET file of a running download: {other}"),
                }
            }
            "done" => break info,
            other => panic!("download {other}: {info}"),
        }
        assert!(Instant::now() < deadline, "download not done: {info}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(
        seen_progress || info["percent"].as_f64().unwrap() > 0.0,
        "{info}"
    );
    assert!(info["media_secs"].as_f64().unwrap() > 25.0, "{info}");
    sim.logs
        .wait_for("MediaStatus 121", Duration::from_secs(5), |l| {
            l.contains("sim media status 121 sent")
        });

    let r = Gateway::client()
        .get(gw.url(&format!("/api/v1/downloads/{id}/file")))
        .bearer_auth(crate::common::TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "video/mp4");
    let bytes = r.bytes().await.unwrap();
    assert_eq!(bytes.len() as u64, info["bytes"].as_u64().unwrap());
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("download.mp4");
    std::fs::write(&path, &bytes).unwrap();
    let log = ffmpeg_decode(&crate::common::ffmpeg_debian(), path.to_str().unwrap(), 600).await;
    assert!(decoded_frames(&log) >= 600, "{log}");
    assert!(log.contains("h264"), "{log}");

    let (status, _) = gw
        .api(Method::DELETE, &format!("/api/v1/downloads/{id}"), None)
        .await;
    assert_eq!(status, 204);
    let (status, _) = gw
        .api(Method::GET, &format!("/api/v1/downloads/{id}"), None)
        .await;
    assert_eq!(status, 404);
    drop(sim);
}
