//! HLS out (fMP4, LL-HLS): an RTSP camera read back by FFmpeg through the
//! playlist; playlists parse with m3u8-rs; a blocking reload returns once
//! the asked-for part exists.

use std::time::{Duration, Instant};

use crate::common::{Camera, Gateway, GatewayOptions, decoded_frames, ffmpeg_decode, ffmpeg9};

async fn get_text(url: &str) -> (u16, String, reqwest::header::HeaderMap) {
    let r = Gateway::client().get(url).send().await.expect("GET");
    let status = r.status().as_u16();
    let headers = r.headers().clone();
    (status, r.text().await.unwrap_or_default(), headers)
}

#[tokio::test(flavor = "multi_thread")]
async fn rtsp_camera_as_ll_hls_decodes_and_blocking_reload_works() {
    let cam = Camera::start();
    let gw = Gateway::start(GatewayOptions::default());
    gw.add_source("yard", &cam.url("h264aac"), "tcp").await;
    let url = gw.url("/live/yard/index.m3u8");
    let (_, source) = gw
        .api(reqwest::Method::GET, "/api/v1/sources/yard", None)
        .await;
    assert_eq!(source["urls"]["hls"], url, "{source}");

    let log = ffmpeg_decode(&ffmpeg9(), &url, 50).await;
    assert!(decoded_frames(&log) >= 50, "{log}");
    assert!(log.contains("h264"), "{log}");
    assert!(log.contains("aac"), "{log}");

    let (status, text, headers) = get_text(&url).await;
    assert_eq!(status, 200, "{text}");
    assert_eq!(headers["cache-control"], "no-cache");
    assert_eq!(headers["content-type"], "application/vnd.apple.mpegurl");
    let parsed = m3u8_rs::parse_media_playlist_res(text.as_bytes())
        .unwrap_or_else(|e| panic!("m3u8-rs cannot parse the playlist: {e:?}\n{text}"));
    assert!(!parsed.segments.is_empty(), "{text}");
    assert!(
        text.contains("#EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES"),
        "{text}"
    );
    assert!(text.contains("#EXT-X-PART:"), "{text}");

    // The preload hint names the next part: ask for it with a blocking reload.
    let hint = text
        .lines()
        .find(|l| l.starts_with("#EXT-X-PRELOAD-HINT:"))
        .unwrap_or_else(|| panic!("no preload hint:\n{text}"));
    let uri = hint
        .split("URI=\"")
        .nth(1)
        .unwrap()
        .split('"')
        .next()
        .unwrap();
    let (msn, part) = uri
        .strip_prefix("part")
        .and_then(|p| p.strip_suffix(".m4s"))
        .and_then(|p| p.split_once('.'))
        .unwrap();
    let asked = Instant::now();
    let (status, reloaded, _) = get_text(&format!("{url}?_HLS_msn={msn}&_HLS_part={part}")).await;
    let waited = asked.elapsed();
    assert_eq!(status, 200, "{reloaded}");
    assert!(
        reloaded.contains(uri),
        "the answer lists {uri}:\n{reloaded}"
    );
    // It returns when the part exists (a part is 200 ms): generous bound.
    assert!(
        waited < Duration::from_secs(3),
        "blocking reload took {waited:?}"
    );
    // The part itself, immutable once complete.
    let r = Gateway::client()
        .get(gw.url(&format!("/live/yard/{uri}")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["cache-control"], "max-age=3600, immutable");
    assert!(!r.bytes().await.unwrap().is_empty());
    // Far ahead: 400 at once.
    let far: u64 = msn.parse::<u64>().unwrap() + 10;
    let (status, _, _) = get_text(&format!("{url}?_HLS_msn={far}")).await;
    assert_eq!(status, 400);
    // Unknown files and streams are 404s.
    assert_eq!(get_text(&gw.url("/live/yard/nope.txt")).await.0, 404);
    assert_eq!(get_text(&gw.url("/live/none/index.m3u8")).await.0, 404);
}

/// Debian's FFmpeg 5.1 reads the H.264 + AAC playlist; FFmpeg 9 an H.265 one.
#[tokio::test(flavor = "multi_thread")]
async fn hls_h264_aac_with_debian_ffmpeg_and_h265_with_ffmpeg9() {
    let cam = Camera::start();
    let gw = Gateway::start(GatewayOptions::default());
    gw.add_source("door", &cam.url("h264aac"), "tcp").await;
    gw.add_source("gate", &cam.url("h265"), "tcp").await;
    let log = ffmpeg_decode(
        &crate::common::ffmpeg_debian(),
        &gw.url("/live/door/index.m3u8"),
        50,
    )
    .await;
    assert!(decoded_frames(&log) >= 50, "{log}");
    assert!(log.contains("h264") && log.contains("aac"), "{log}");
    let log = ffmpeg_decode(&ffmpeg9(), &gw.url("/live/gate/index.m3u8"), 50).await;
    assert!(decoded_frames(&log) >= 50, "{log}");
    assert!(log.contains("hevc"), "{log}");
    // The camera's G.711 on the H.265 mount is not in the HLS output.
    assert!(!log.contains("pcm_mulaw"), "{log}");
}

/// With `[viewer] require_token`, FLV and HLS need an API token (any role);
/// the token given with the playlist rides on every URI in it, so FFmpeg
/// follows segments and parts without knowing about tokens.
#[tokio::test(flavor = "multi_thread")]
async fn viewer_tokens_guard_flv_and_hls_when_required() {
    let cam = Camera::start();
    let gw = Gateway::start(GatewayOptions {
        config_toml: "[viewer]\nrequire_token = true\n".into(),
        ..GatewayOptions::default()
    });
    gw.add_source("gate", &cam.url("h264aac"), "tcp").await;
    let (status, viewer) = gw
        .api(
            reqwest::Method::POST,
            "/api/v1/tokens",
            Some(serde_json::json!({"name": "wall screen", "role": "viewer"})),
        )
        .await;
    assert_eq!(status, 201, "{viewer}");
    let token = viewer["token"].as_str().unwrap().to_owned();

    for path in [
        "/live/gate.flv",
        "/live/gate/index.m3u8",
        "/live/gate/init.mp4",
    ] {
        let (status, body, _) = get_text(&gw.url(path)).await;
        assert_eq!(status, 401, "{path}: {body}");
        let (status, _, _) = get_text(&gw.url(&format!("{path}?token=cg_wrong"))).await;
        assert_eq!(status, 401, "{path} with a wrong token");
    }
    // Bearer works too (WHEP's scheme, and players that set headers).
    let r = Gateway::client()
        .get(gw.url("/live/gate/index.m3u8"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let bearer_playlist = r.text().await.unwrap();
    assert!(!bearer_playlist.contains("token="), "{bearer_playlist}");

    let url = gw.url(&format!("/live/gate/index.m3u8?token={token}"));
    let (status, text, _) = get_text(&url).await;
    assert_eq!(status, 200, "{text}");
    let uris: Vec<&str> = text
        .lines()
        .filter(|l| !l.starts_with('#') || l.contains("URI=\""))
        .collect();
    assert!(uris.len() > 3, "{text}");
    for l in &uris {
        assert!(l.contains(&format!("?token={token}")), "{l}\n{text}");
    }
    let log = ffmpeg_decode(&ffmpeg9(), &url, 30).await;
    assert!(decoded_frames(&log) >= 30, "{log}");
    let flv = ffmpeg_decode(
        &crate::common::ffmpeg_debian(),
        &gw.url(&format!("/live/gate.flv?token={token}")),
        30,
    )
    .await;
    assert!(decoded_frames(&flv) >= 30, "{flv}");
    // Revoked: refused at once.
    let id = viewer["id"].as_i64().unwrap();
    let (status, _) = gw
        .api(
            reqwest::Method::DELETE,
            &format!("/api/v1/tokens/{id}"),
            None,
        )
        .await;
    assert_eq!(status, 204);
    let (status, _, _) = get_text(&url).await;
    assert_eq!(status, 401);
}

/// With `[viewer] signed_url_ttl_secs`, the API hands out signed URLs
/// (`?exp=…&sig=…`) that FFmpeg plays over FLV, LL-HLS and RTSP; unsigned,
/// tampered or other-stream URLs are refused, an API token still works.
#[tokio::test(flavor = "multi_thread")]
async fn signed_viewer_urls_play_everywhere_and_nothing_else_does() {
    let cam = Camera::start();
    let gw = Gateway::start(GatewayOptions {
        config_toml: "[viewer]\nsigned_url_ttl_secs = 120\n".into(),
        ..GatewayOptions::default()
    });
    gw.add_source("gate", &cam.url("h264aac"), "tcp").await;
    let (_, source) = gw
        .api(reqwest::Method::GET, "/api/v1/sources/gate", None)
        .await;
    let urls = source["urls"].clone();
    for k in ["http_flv", "ws_flv", "hls", "rtsp", "whep"] {
        let u = urls[k].as_str().unwrap();
        assert!(u.contains("?exp=") && u.contains("&sig="), "{k}: {u}");
    }
    let flv = urls["http_flv"].as_str().unwrap().to_owned();
    let log = ffmpeg_decode(&crate::common::ffmpeg_debian(), &flv, 30).await;
    assert!(decoded_frames(&log) >= 30, "{log}");
    let hls = urls["hls"].as_str().unwrap().to_owned();
    let log = ffmpeg_decode(&ffmpeg9(), &hls, 30).await;
    assert!(decoded_frames(&log) >= 30, "{log}");
    let rtsp = urls["rtsp"].as_str().unwrap().to_owned();
    let log = crate::rtsp_out::decode_ok(&crate::common::ffmpeg_debian(), "tcp", &rtsp, 30).await;
    assert!(decoded_frames(&log) >= 30, "{log}");

    let (query, sig) = flv.split_once("&sig=").unwrap();
    let tampered = format!("{query}&sig={}", "0".repeat(sig.len()));
    let other = flv.replace("/live/gate.flv", "/live/yard.flv");
    for bad in [gw.url("/live/gate.flv"), tampered, other] {
        let (status, body, _) = get_text(&bad).await;
        assert_eq!(status, 401, "{bad}: {body}");
    }
    let r = Gateway::client()
        .get(gw.url("/live/gate/index.m3u8"))
        .bearer_auth(crate::common::TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
}
