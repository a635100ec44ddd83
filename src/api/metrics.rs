//! `/metrics`: Prometheus text exposition format 0.0.4 (streams, viewers
//! per output, bytes and frames in, GB28181 packet loss, devices online,
//! SIP transactions, errors). Behind the same bearer-token auth as the API
//! (any role): Prometheus sends it with `authorization.credentials`.

use std::fmt::Write as _;
use std::sync::atomic::Ordering;

use axum::extract::State;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};

use super::{ApiError, AppState, Caller};
use crate::store::TokenRole;

/// Label values: backslash, double quote and newline escaped (exposition
/// format §"Line format").
fn label(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

fn family(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

pub async fn metrics(State(app): State<AppState>, caller: Caller) -> Result<Response, ApiError> {
    caller.require(TokenRole::Viewer)?;
    let mut out = String::with_capacity(4096);
    family(
        &mut out,
        "camgate_build_info",
        "gauge",
        "Version of the running gateway.",
    );
    let _ = writeln!(
        out,
        "camgate_build_info{{version=\"{}\"}} 1",
        env!("CARGO_PKG_VERSION")
    );
    family(
        &mut out,
        "camgate_uptime_seconds",
        "gauge",
        "Seconds since the gateway started.",
    );
    let _ = writeln!(
        out,
        "camgate_uptime_seconds {}",
        app.started.elapsed().as_secs()
    );

    let streams = app.hub.list();
    let snaps: Vec<_> = streams.iter().map(|s| s.snapshot()).collect();
    family(
        &mut out,
        "camgate_streams",
        "gauge",
        "Streams in the hub, by source kind.",
    );
    let mut kinds = std::collections::BTreeMap::<&str, usize>::new();
    for s in &snaps {
        *kinds.entry(s.kind).or_default() += 1;
    }
    for (k, n) in &kinds {
        let _ = writeln!(out, "camgate_streams{{kind=\"{k}\"}} {n}");
    }
    family(
        &mut out,
        "camgate_stream_live",
        "gauge",
        "1 while the stream's source delivers media.",
    );
    for s in &snaps {
        let _ = writeln!(
            out,
            "camgate_stream_live{{stream=\"{}\"}} {}",
            label(&s.id),
            u8::from(s.publishing)
        );
    }
    family(
        &mut out,
        "camgate_stream_viewers",
        "gauge",
        "Viewers of a stream per output.",
    );
    for s in &snaps {
        for (o, n) in &s.viewers_by_output {
            let _ = writeln!(
                out,
                "camgate_stream_viewers{{stream=\"{}\",output=\"{o}\"}} {n}",
                label(&s.id)
            );
        }
    }
    family(
        &mut out,
        "camgate_stream_in_bytes_total",
        "counter",
        "Payload bytes received from the stream's source.",
    );
    for s in &snaps {
        let _ = writeln!(
            out,
            "camgate_stream_in_bytes_total{{stream=\"{}\"}} {}",
            label(&s.id),
            s.bytes_in
        );
    }
    family(
        &mut out,
        "camgate_stream_in_frames_total",
        "counter",
        "Frames received from the stream's source.",
    );
    for s in &snaps {
        let _ = writeln!(
            out,
            "camgate_stream_in_frames_total{{stream=\"{}\"}} {}",
            label(&s.id),
            s.frames_in
        );
    }
    family(
        &mut out,
        "camgate_stream_bitrate_bps",
        "gauge",
        "Incoming bitrate over the last seconds.",
    );
    for s in &snaps {
        let _ = writeln!(
            out,
            "camgate_stream_bitrate_bps{{stream=\"{}\"}} {}",
            label(&s.id),
            s.bitrate_bps
        );
    }
    family(
        &mut out,
        "camgate_stream_added_latency_seconds",
        "gauge",
        "Gateway-added latency per output (quantile over the last 1000 frames).",
    );
    for s in &snaps {
        for (o, l) in &s.added_latency_us {
            for (q, v) in [("0.5", l.p50), ("0.99", l.p99)] {
                let _ = writeln!(
                    out,
                    "camgate_stream_added_latency_seconds{{stream=\"{}\",output=\"{o}\",quantile=\"{q}\"}} {}",
                    label(&s.id),
                    v as f64 / 1e6
                );
            }
        }
    }
    family(
        &mut out,
        "camgate_gb_rtp_packets_total",
        "counter",
        "RTP packets received on a GB28181 stream.",
    );
    family(
        &mut out,
        "camgate_gb_rtp_lost_total",
        "counter",
        "RTP packets lost on a GB28181 stream (UDP).",
    );
    for s in &snaps {
        if let Some(g) = app.gb_live.session_info(&s.id) {
            let _ = writeln!(
                out,
                "camgate_gb_rtp_packets_total{{stream=\"{}\"}} {}",
                label(&s.id),
                g.packets
            );
            let _ = writeln!(
                out,
                "camgate_gb_rtp_lost_total{{stream=\"{}\"}} {}",
                label(&s.id),
                g.lost
            );
        }
    }
    family(
        &mut out,
        "camgate_gb_invites_total",
        "counter",
        "INVITEs sent to GB28181 devices.",
    );
    let _ = writeln!(
        out,
        "camgate_gb_invites_total {}",
        app.gb_live.invites.load(Ordering::Relaxed)
    );
    let (online, known) = app.gb.device_counts();
    family(
        &mut out,
        "camgate_gb_devices",
        "gauge",
        "GB28181 devices by state.",
    );
    let _ = writeln!(out, "camgate_gb_devices{{state=\"online\"}} {online}");
    let _ = writeln!(
        out,
        "camgate_gb_devices{{state=\"offline\"}} {}",
        known.saturating_sub(online)
    );
    let sip = app.gb.sip_stats();
    family(
        &mut out,
        "camgate_sip_requests_received_total",
        "counter",
        "SIP requests received.",
    );
    let _ = writeln!(
        out,
        "camgate_sip_requests_received_total {}",
        sip.requests_received.load(Ordering::Relaxed)
    );
    family(
        &mut out,
        "camgate_sip_requests_sent_total",
        "counter",
        "SIP client transactions started.",
    );
    let _ = writeln!(
        out,
        "camgate_sip_requests_sent_total {}",
        sip.requests_sent.load(Ordering::Relaxed)
    );
    family(
        &mut out,
        "camgate_sip_timeouts_total",
        "counter",
        "SIP client transactions that timed out.",
    );
    let _ = writeln!(
        out,
        "camgate_sip_timeouts_total {}",
        sip.timeouts.load(Ordering::Relaxed)
    );
    family(
        &mut out,
        "camgate_sip_malformed_total",
        "counter",
        "SIP messages dropped as malformed.",
    );
    let _ = writeln!(
        out,
        "camgate_sip_malformed_total {}",
        sip.malformed.load(Ordering::Relaxed)
    );
    family(
        &mut out,
        "camgate_webrtc_sessions",
        "gauge",
        "WebRTC (WHEP) sessions.",
    );
    let _ = writeln!(
        out,
        "camgate_webrtc_sessions {}",
        app.webrtc.sessions().len()
    );
    let events = app
        .store
        .call(|c| crate::store::db::count_events_by_kind(c))
        .await?;
    family(
        &mut out,
        "camgate_events",
        "gauge",
        "Events in the log by kind (errors: auth_failed, protocol_error, source errors).",
    );
    for (kind, n) in events {
        let _ = writeln!(out, "camgate_events{{kind=\"{}\"}} {n}", label(&kind));
    }
    let mut r = out.into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
    );
    Ok(r)
}
