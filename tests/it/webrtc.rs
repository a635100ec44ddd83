//! WebRTC out (WHEP): str0m as the WHEP client over loopback against the
//! gateway, an RTSP camera (H.264 + AAC) as the source. H.264 arrives and
//! decodes as access units starting at a keyframe; a PLI makes the gateway
//! replay its cached GOP; DELETE ends the session and releases the viewer.

use std::net::UdpSocket;
use std::sync::Arc;
use std::time::{Duration, Instant};

use str0m::change::SdpAnswer;
use str0m::media::{Direction, KeyframeRequestKind, MediaKind};
use str0m::net::{Protocol, Receive};
use str0m::{Candidate, Event, Input, Output, Rtc};

use crate::common::{Camera, Gateway, GatewayOptions};

/// What the client saw.
#[derive(Debug, Default)]
pub(crate) struct Received {
    pub(crate) frames: usize,
    keyframes: usize,
    pub(crate) first_was_keyframe: Option<bool>,
    audio_frames: usize,
    keyframe_requested: bool,
}

/// Drives the client `Rtc` on `socket` until `frames` video frames came in
/// (asking for a keyframe once after `pli_after` frames), or `timeout`.
fn run_client(
    mut rtc: Rtc,
    video_mid: str0m::media::Mid,
    socket: UdpSocket,
    frames: usize,
    pli_after: usize,
    timeout: Duration,
) -> Received {
    let mut got = Received::default();
    let video_mid = Some(video_mid);
    let mut buf = vec![0u8; 4096];
    let local = socket.local_addr().unwrap();
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline && got.frames < frames {
        let wait = match rtc.poll_output().expect("client poll_output") {
            Output::Timeout(t) => t,
            Output::Transmit(t) => {
                socket.send_to(&t.contents, t.destination).unwrap();
                continue;
            }
            Output::Event(e) => {
                match e {
                    Event::MediaData(d) if Some(d.mid) == video_mid => {
                        got.frames += 1;
                        got.first_was_keyframe.get_or_insert(d.is_keyframe());
                        got.keyframes += usize::from(d.is_keyframe());
                    }
                    Event::MediaData(_) => got.audio_frames += 1,
                    _ => {}
                }
                if got.frames == pli_after
                    && !got.keyframe_requested
                    && let Some(mid) = video_mid
                    && let Some(mut w) = rtc.writer(mid)
                {
                    w.request_keyframe(None, KeyframeRequestKind::Pli)
                        .expect("PLI negotiated");
                    got.keyframe_requested = true;
                }
                continue;
            }
        };
        let d = wait
            .saturating_duration_since(Instant::now())
            .max(Duration::from_millis(1));
        socket.set_read_timeout(Some(d)).unwrap();
        let input = match socket.recv_from(&mut buf) {
            Ok((n, from)) => Input::Receive(
                Instant::now(),
                Receive {
                    proto: Protocol::Udp,
                    source: from,
                    destination: local,
                    contents: buf[..n].try_into().expect("datagram"),
                },
            ),
            Err(_) => Input::Timeout(Instant::now()),
        };
        rtc.handle_input(input).expect("client handle_input");
    }
    got
}

/// Plays `stream` over WHEP with a str0m client until `frames` video frames
/// arrived (or 60 s), then DELETEs the session.
pub(crate) async fn whep_play(gw: &Gateway, stream: &str, frames: usize) -> Received {
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    let mut rtc = Rtc::builder()
        .set_crypto_provider(Arc::new(str0m::crypto::from_feature_flags()))
        .build(Instant::now());
    rtc.add_local_candidate(Candidate::host(socket.local_addr().unwrap(), "udp").unwrap());
    let mut change = rtc.sdp_api();
    let video_mid = change.add_media(MediaKind::Video, Direction::RecvOnly, None, None, None);
    let (offer, pending) = change.apply().unwrap();
    let r = Gateway::client()
        .post(gw.url(&format!("/live/{stream}/whep")))
        .header("content-type", "application/sdp")
        .body(offer.to_sdp_string())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201, "{:?}", r.text().await);
    let location = r.headers()["location"].to_str().unwrap().to_owned();
    let answer = r.text().await.unwrap();
    rtc.sdp_api()
        .accept_answer(pending, SdpAnswer::from_sdp_string(&answer).unwrap())
        .unwrap();
    let got = tokio::task::spawn_blocking(move || {
        run_client(
            rtc,
            video_mid,
            socket,
            frames,
            usize::MAX,
            Duration::from_secs(60),
        )
    })
    .await
    .unwrap();
    let r = Gateway::client()
        .delete(gw.url(&location))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    got
}

#[tokio::test(flavor = "multi_thread")]
async fn str0m_client_receives_h264_over_whep_and_delete_releases_the_viewer() {
    let cam = Camera::start();
    let gw = Gateway::start(GatewayOptions::default());
    gw.add_source("door", &cam.url("h264aac"), "tcp").await;

    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    let mut rtc = Rtc::builder()
        .set_crypto_provider(Arc::new(str0m::crypto::from_feature_flags()))
        .build(Instant::now());
    rtc.add_local_candidate(Candidate::host(socket.local_addr().unwrap(), "udp").unwrap());
    let mut change = rtc.sdp_api();
    let video_mid = change.add_media(MediaKind::Video, Direction::RecvOnly, None, None, None);
    change.add_media(MediaKind::Audio, Direction::RecvOnly, None, None, None);
    let (offer, pending) = change.apply().unwrap();

    let client = Gateway::client();
    // Wrong content type and garbage SDP are refused clearly.
    let r = client
        .post(gw.url("/live/door/whep"))
        .header("content-type", "text/plain")
        .body(offer.to_sdp_string())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 415);
    let r = client
        .post(gw.url("/live/nosuch/whep"))
        .header("content-type", "application/sdp")
        .body(offer.to_sdp_string())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    let r = client
        .post(gw.url("/live/door/whep"))
        .header("content-type", "application/sdp")
        .body("v=0\r\nnot sdp")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400, "{:?}", r.text().await);

    let r = client
        .post(gw.url("/live/door/whep"))
        .header("content-type", "application/sdp")
        .body(offer.to_sdp_string())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let location = r.headers()["location"].to_str().unwrap().to_owned();
    let etag = r.headers()["etag"].to_str().unwrap().to_owned();
    assert!(location.starts_with("/live/door/whep/"), "{location}");
    assert_eq!(r.headers()["content-type"], "application/sdp");
    let answer = r.text().await.unwrap();
    assert!(answer.contains("a=ice-lite"), "{answer}");
    assert!(answer.contains("H264/90000"), "{answer}");
    assert!(!answer.contains("AAC"), "{answer}");
    gw.logs
        .wait_for("the AAC note", Duration::from_secs(5), |l| {
            l.contains("AAC") && l.contains("video only")
        });

    // Trickle: a candidate PATCH with the session's ETag is accepted, a
    // stale ETag is refused.
    let r = client
        .patch(gw.url(&location))
        .header("content-type", "application/trickle-ice-sdpfrag")
        .header("if-match", "\"stale\"")
        .body("a=candidate:1 1 udp 2113929471 127.0.0.1 9 typ host\r\n")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 412);
    let r = client
        .patch(gw.url(&location))
        .header("content-type", "application/trickle-ice-sdpfrag")
        .header("if-match", etag.clone())
        .body("a=candidate:1 1 udp 2113929471 127.0.0.1 9 typ host\r\na=end-of-candidates\r\n")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);

    rtc.sdp_api()
        .accept_answer(pending, SdpAnswer::from_sdp_string(&answer).unwrap())
        .unwrap();
    let got = tokio::task::spawn_blocking(move || {
        run_client(rtc, video_mid, socket, 120, 60, Duration::from_secs(60))
    })
    .await
    .unwrap();
    assert!(got.frames >= 120, "{got:?}\n{}", gw.logs.all().join("\n"));
    assert_eq!(got.first_was_keyframe, Some(true), "{got:?}");
    assert!(got.keyframes >= 2, "{got:?}");
    assert_eq!(got.audio_frames, 0, "{got:?}");
    // The PLI was answered from the GOP cache.
    gw.logs
        .wait_for("a GOP replay", Duration::from_secs(5), |l| {
            l.contains("keyframe request: replaying the cached GOP")
        });

    let (_, stream) = gw
        .api(reqwest::Method::GET, "/api/v1/streams/door", None)
        .await;
    assert_eq!(stream["viewers"], 1, "{stream}");
    let r = client.delete(gw.url(&location)).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let r = client.delete(gw.url(&location)).send().await.unwrap();
    assert_eq!(r.status(), 404);
    gw.logs
        .wait_for("session end", Duration::from_secs(5), |l| {
            l.contains("WebRTC session ended") && l.contains("deleted")
        });
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let (_, stream) = gw
            .api(reqwest::Method::GET, "/api/v1/streams/door", None)
            .await;
        if stream["viewers"] == 0 {
            break;
        }
        assert!(Instant::now() < deadline, "viewer not released: {stream}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
