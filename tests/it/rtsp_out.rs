//! The RTSP server output: FFmpeg 5.1 (Debian) and FFmpeg 9 read
//! `rtsp://…/live/{stream}` over TCP and UDP from an RTSP camera and from a
//! GB28181 device (`camgate sim`); a raw client checks the protocol, the
//! viewer count and on-demand stop after TEARDOWN; viewer tokens with
//! Basic, Digest and `?token=`.

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use reqwest::Method;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::common::{Camera, Gateway, GatewayOptions, decoded_frames, ffmpeg_debian, ffmpeg9};

/// Runs FFmpeg on an RTSP URL, decoding `frames` video frames; returns
/// (success, log).
async fn ffmpeg_rtsp(ffmpeg: &Path, transport: &str, url: &str, frames: u32) -> (bool, String) {
    let out = tokio::time::timeout(
        Duration::from_secs(90),
        tokio::process::Command::new(ffmpeg)
            .args(["-hide_banner", "-nostdin", "-rtsp_transport", transport])
            .args([
                "-i",
                url,
                "-frames:v",
                &frames.to_string(),
                "-f",
                "null",
                "-",
            ])
            .kill_on_drop(true)
            .output(),
    )
    .await
    .expect("ffmpeg timed out")
    .expect("run ffmpeg");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

pub(crate) async fn decode_ok(ffmpeg: &Path, transport: &str, url: &str, frames: u32) -> String {
    let (ok, log) = ffmpeg_rtsp(ffmpeg, transport, url, frames).await;
    assert!(ok, "ffmpeg failed on {url} ({transport}):\n{log}");
    assert!(decoded_frames(&log) >= frames, "{log}");
    log
}

fn rtsp_url(gw: &Gateway, path: &str) -> String {
    let addr = gw.rtsp.expect("RTSP server address in the gateway log");
    format!("rtsp://{addr}{path}")
}

/// A minimal RTSP client for what FFmpeg does not let a test see.
struct RawRtsp {
    tcp: tokio::net::TcpStream,
    buf: Vec<u8>,
    cseq: u32,
    /// Interleaved frames received, by channel.
    interleaved: [u32; 4],
}

struct Reply {
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
}

impl Reply {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    fn all(&self, name: &str) -> Vec<&str> {
        self.headers
            .iter()
            .filter(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
            .collect()
    }
}

impl RawRtsp {
    async fn connect(addr: SocketAddr) -> Self {
        Self {
            tcp: tokio::net::TcpStream::connect(addr).await.unwrap(),
            buf: Vec::new(),
            cseq: 0,
            interleaved: [0; 4],
        }
    }

    async fn fill(&mut self) {
        let mut chunk = [0u8; 8192];
        let n = tokio::time::timeout(Duration::from_secs(30), self.tcp.read(&mut chunk))
            .await
            .expect("RTSP read within 30 s")
            .unwrap();
        assert!(n > 0, "server closed the connection");
        self.buf.extend_from_slice(&chunk[..n]);
    }

    /// Skips interleaved frames, counting them; returns once a response is
    /// buffered (`want_response`) or `frames` frames were counted.
    async fn read_reply(&mut self) -> Reply {
        loop {
            if self.buf.first() == Some(&b'$') {
                if self.buf.len() >= 4 {
                    let len = usize::from(u16::from_be_bytes([self.buf[2], self.buf[3]]));
                    if self.buf.len() >= 4 + len {
                        let ch = usize::from(self.buf[1]);
                        if ch < 4 {
                            self.interleaved[ch] += 1;
                        }
                        self.buf.drain(..4 + len);
                        continue;
                    }
                }
                self.fill().await;
                continue;
            }
            if let Some(end) = self.buf.windows(4).position(|w| w == b"\r\n\r\n") {
                let head = String::from_utf8(self.buf[..end].to_vec()).unwrap();
                let mut lines = head.split("\r\n");
                let status_line = lines.next().unwrap();
                let status = status_line.split(' ').nth(1).unwrap().parse().unwrap();
                let headers: Vec<(String, String)> = lines
                    .map(|l| {
                        let (k, v) = l.split_once(':').unwrap();
                        (k.to_owned(), v.trim().to_owned())
                    })
                    .collect();
                let len: usize = headers
                    .iter()
                    .find(|(k, _)| k.eq_ignore_ascii_case("Content-Length"))
                    .map_or(0, |(_, v)| v.parse().unwrap());
                while self.buf.len() < end + 4 + len {
                    self.fill().await;
                }
                let body = String::from_utf8(self.buf[end + 4..end + 4 + len].to_vec()).unwrap();
                self.buf.drain(..end + 4 + len);
                return Reply {
                    status,
                    headers,
                    body,
                };
            }
            self.fill().await;
        }
    }

    async fn request(&mut self, method: &str, url: &str, headers: &[(&str, &str)]) -> Reply {
        self.cseq += 1;
        let mut req = format!("{method} {url} RTSP/1.0\r\nCSeq: {}\r\n", self.cseq);
        for (k, v) in headers {
            req.push_str(&format!("{k}: {v}\r\n"));
        }
        req.push_str("\r\n");
        self.tcp.write_all(req.as_bytes()).await.unwrap();
        let r = self.read_reply().await;
        assert_eq!(
            r.header("CSeq"),
            Some(self.cseq.to_string().as_str()),
            "CSeq echoed"
        );
        r
    }

    /// Reads interleaved media until `n` RTP packets arrived on channel 0.
    async fn media(&mut self, n: u32) {
        while self.interleaved[0] < n {
            if self.buf.first() == Some(&b'$') && self.buf.len() >= 4 {
                let len = usize::from(u16::from_be_bytes([self.buf[2], self.buf[3]]));
                if self.buf.len() >= 4 + len {
                    let ch = usize::from(self.buf[1]);
                    if ch < 4 {
                        self.interleaved[ch] += 1;
                    }
                    self.buf.drain(..4 + len);
                    continue;
                }
            }
            assert!(
                self.buf.is_empty() || self.buf[0] == b'$',
                "unexpected bytes between media: {:?}",
                String::from_utf8_lossy(&self.buf[..self.buf.len().min(64)])
            );
            self.fill().await;
        }
    }
}

async fn viewers(gw: &Gateway, id: &str) -> u64 {
    let (status, body) = gw
        .get(&format!("/api/v1/streams/{id}"), Some(crate::common::TOKEN))
        .await;
    assert_eq!(status, 200, "{body}");
    body["viewers"].as_u64().unwrap()
}

async fn wait_viewers(gw: &Gateway, id: &str, want: u64) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    loop {
        let v = viewers(gw, id).await;
        if v == want {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "viewers of {id} stayed {v}, want {want}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn h264_aac_camera_over_rtsp_out_tcp_udp_ffmpeg_5_and_9_and_teardown() {
    let cam = Camera::start();
    let gw = Gateway::start(GatewayOptions::default());
    gw.add_source("hall", &cam.url("h264aac"), "tcp").await;
    let url = rtsp_url(&gw, "/live/hall");

    // The stream info lists the RTSP URL.
    let (_, info) = gw
        .get("/api/v1/streams/hall", Some(crate::common::TOKEN))
        .await;
    let port = gw.rtsp.unwrap().port();
    assert!(
        info["urls"]["rtsp"]
            .as_str()
            .is_some_and(|u| u.ends_with(&format!(":{port}/live/hall"))),
        "{info}"
    );

    let log = decode_ok(&ffmpeg_debian(), "tcp", &url, 50).await;
    assert!(log.contains("Video: h264"), "{log}");
    assert!(log.contains("640x360"), "{log}");
    assert!(log.contains("Audio: aac"), "{log}");
    let log = decode_ok(&ffmpeg_debian(), "udp", &url, 50).await;
    assert!(
        log.contains("Video: h264") && log.contains("Audio: aac"),
        "{log}"
    );
    assert!(
        gw.logs.contains("transport=Udp"),
        "{}",
        gw.logs.all().join("\n")
    );
    let log = decode_ok(&ffmpeg9(), "tcp", &url, 50).await;
    assert!(
        log.contains("Video: h264") && log.contains("Audio: aac"),
        "{log}"
    );

    // Nobody watches: the on-demand source stops.
    cam.wait_sessions("source stopped", Duration::from_secs(20), |n| n == 0);
    wait_viewers(&gw, "hall", 0).await;

    // One raw client: protocol details, one viewer, stop after TEARDOWN.
    let mut c = RawRtsp::connect(gw.rtsp.unwrap()).await;
    let r = c.request("OPTIONS", &url, &[]).await;
    assert_eq!(r.status, 200);
    assert!(r.header("Public").unwrap().contains("GET_PARAMETER"));
    let r = c
        .request("DESCRIBE", &url, &[("Accept", "application/sdp")])
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.header("Content-Base"), Some(format!("{url}/").as_str()));
    assert!(r.body.contains("a=rtpmap:96 H264/90000"), "{}", r.body);
    assert!(r.body.contains("sprop-parameter-sets="), "{}", r.body);
    assert!(r.body.contains("MPEG4-GENERIC/"), "{}", r.body);
    let r = c
        .request(
            "SETUP",
            &format!("{url}/trackID=0"),
            &[("Transport", "RTP/AVP/TCP;unicast;interleaved=0-1")],
        )
        .await;
    assert_eq!(r.status, 200);
    let session = r
        .header("Session")
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_owned();
    assert!(r.header("Session").unwrap().contains("timeout=60"));
    assert!(r.header("Transport").unwrap().contains("interleaved=0-1"));
    // Mixing UDP into a TCP session is refused.
    let r = c
        .request(
            "SETUP",
            &format!("{url}/trackID=1"),
            &[
                ("Transport", "RTP/AVP;unicast;client_port=40000-40001"),
                ("Session", &session),
            ],
        )
        .await;
    assert_eq!(r.status, 461);
    let r = c
        .request("PLAY", &format!("{url}/"), &[("Session", &session)])
        .await;
    assert_eq!(r.status, 200);
    let rtp_info = r.header("RTP-Info").unwrap();
    assert!(
        rtp_info.starts_with(&format!("url={url}/trackID=0;seq=")) && rtp_info.contains("rtptime="),
        "{rtp_info}"
    );
    c.media(100).await;
    assert_eq!(
        viewers(&gw, "hall").await,
        1,
        "one RTSP session, one viewer"
    );
    let r = c
        .request("GET_PARAMETER", &url, &[("Session", &session)])
        .await;
    assert_eq!(r.status, 200);
    let r = c.request("TEARDOWN", &url, &[("Session", &session)]).await;
    assert_eq!(r.status, 200);
    let r = c.request("PLAY", &url, &[("Session", &session)]).await;
    assert_eq!(r.status, 454, "the session is gone");
    wait_viewers(&gw, "hall", 0).await;
    cam.wait_sessions(
        "source stopped after TEARDOWN",
        Duration::from_secs(20),
        |n| n == 0,
    );
    gw.logs
        .wait_for("session end", Duration::from_secs(5), |l| {
            l.contains("RTSP session ended") && l.contains("TEARDOWN")
        });
    // An unknown stream is a 404.
    let r = c
        .request("DESCRIBE", &rtsp_url(&gw, "/live/nope"), &[])
        .await;
    assert_eq!(r.status, 404);
}

#[tokio::test(flavor = "multi_thread")]
async fn gb28181_h265_aac_over_rtsp_out() {
    use crate::gb_sim::{SIM_DEVICE, Sim, first_camera, h265_aac_clip, setup};
    let dir = tempfile::tempdir().unwrap();
    let (h265, aac) = h265_aac_clip(dir.path());
    let gw = Gateway::start(GatewayOptions::default());
    setup(&gw).await;
    let _sim = Sim::start(&gw, &h265, &["--audio", "aac-file", aac.to_str().unwrap()]);
    let channel = first_camera(&gw).await;
    // Not playing yet: the RTSP DESCRIBE makes the stream (INVITE).
    let url = rtsp_url(&gw, &format!("/live/{SIM_DEVICE}_{channel}"));
    let log = decode_ok(&ffmpeg9(), "tcp", &url, 40).await;
    assert!(log.contains("Video: hevc"), "{log}");
    assert!(log.contains("320x240"), "{log}");
    assert!(log.contains("Audio: aac"), "{log}");
    let log = decode_ok(&ffmpeg_debian(), "udp", &url, 40).await;
    assert!(
        log.contains("Video: hevc") && log.contains("Audio: aac"),
        "{log}"
    );
    // GB28181 frames carry their arrival time: RTSP latency is measured.
    let (_, info) = gw
        .get(
            &format!("/api/v1/streams/{SIM_DEVICE}_{channel}"),
            Some(crate::common::TOKEN),
        )
        .await;
    assert!(info["added_latency_us"]["rtsp"]["p50"].is_u64(), "{info}");
}

async fn viewer_token(gw: &Gateway) -> (String, String) {
    let (status, body) = gw
        .api(
            Method::POST,
            "/api/v1/tokens",
            Some(json!({"name": "nvr", "role": "viewer"})),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    (
        body["token"].as_str().unwrap().to_owned(),
        body["prefix"].as_str().unwrap().to_owned(),
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn viewer_tokens_with_digest_basic_and_query() {
    let cam = Camera::start();
    let gw = Gateway::start(GatewayOptions {
        config_toml: "[viewer]\nrequire_token = true\n".into(),
        ..GatewayOptions::default()
    });
    gw.add_source("door", &cam.url("h264aac"), "tcp").await;
    let (token, prefix) = viewer_token(&gw).await;
    assert_eq!(prefix.len(), 16);
    let addr = gw.rtsp.unwrap();
    let url = format!("rtsp://{addr}/live/door");

    // No credentials: 401 offering Digest, then Basic.
    let mut c = RawRtsp::connect(addr).await;
    let r = c.request("DESCRIBE", &url, &[]).await;
    assert_eq!(r.status, 401);
    let offered = r.all("WWW-Authenticate");
    assert_eq!(offered.len(), 2, "{offered:?}");
    assert!(
        offered[0].starts_with("Digest realm=\"camgate\", nonce="),
        "{offered:?}"
    );
    assert!(offered[0].contains("qop=\"auth\""), "{offered:?}");
    assert_eq!(offered[1], "Basic realm=\"camgate\"");
    // Basic with a wrong token, then the right one.
    use base64::Engine as _;
    let basic = |t: &str| {
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(format!("anyone:{t}"))
        )
    };
    let r = c
        .request("DESCRIBE", &url, &[("Authorization", &basic("cg_wrong"))])
        .await;
    assert_eq!(r.status, 401);
    let r = c
        .request("DESCRIBE", &url, &[("Authorization", &basic(&token))])
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    drop(c);

    // FFmpeg with a wrong password: rejected, and the gateway says why.
    let (ok, log) = ffmpeg_rtsp(
        &ffmpeg_debian(),
        "tcp",
        &format!("rtsp://{prefix}:cg_wrong@{addr}/live/door"),
        10,
    )
    .await;
    assert!(!ok, "{log}");
    assert!(log.contains("401"), "{log}");
    gw.logs
        .wait_for("auth failure logged", Duration::from_secs(5), |l| {
            l.contains("RTSP authentication failed") && l.contains("digest: wrong answer")
        });
    // FFmpeg picks Digest when it is offered (whatever the order).
    decode_ok(
        &ffmpeg_debian(),
        "tcp",
        &format!("rtsp://{prefix}:{token}@{addr}/live/door"),
        30,
    )
    .await;
    assert!(
        gw.logs.contains("RTSP viewer authenticated") && gw.logs.contains("scheme=\"digest\""),
        "{}",
        gw.logs.all().join("\n")
    );
    // ?token= in the URL, over UDP, with FFmpeg 9.
    decode_ok(&ffmpeg9(), "udp", &format!("{url}?token={token}"), 30).await;
    assert!(gw.logs.contains("scheme=\"query\""));

    // A gateway offering only Basic: FFmpeg uses it.
    let gw2 = Gateway::start(GatewayOptions {
        config_toml: "[viewer]\nrequire_token = true\n[rtsp_server]\nauth_schemes = [\"basic\"]\n"
            .into(),
        ..GatewayOptions::default()
    });
    gw2.add_source("door", &cam.url("h264aac"), "tcp").await;
    let (token2, _) = viewer_token(&gw2).await;
    let addr2 = gw2.rtsp.unwrap();
    let mut c = RawRtsp::connect(addr2).await;
    let r = c
        .request("DESCRIBE", &format!("rtsp://{addr2}/live/door"), &[])
        .await;
    assert_eq!(r.all("WWW-Authenticate"), vec!["Basic realm=\"camgate\""]);
    drop(c);
    decode_ok(
        &ffmpeg_debian(),
        "tcp",
        &format!("rtsp://nvr:{token2}@{addr2}/live/door"),
        30,
    )
    .await;
    assert!(gw2.logs.contains("scheme=\"basic\""));
}
