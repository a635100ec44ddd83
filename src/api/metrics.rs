//! `/metrics`: Prometheus text exposition format 0.0.4 (streams, viewers
//! per output, bytes and frames in, GB28181 packet loss, devices online,
//! SIP transactions, errors). Behind the same bearer-token auth as the API
//! (any role): Prometheus sends it with `authorization.credentials`.

use std::fmt::{Display, Write as _};
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

/// Writes metric families: HELP and TYPE once, then the samples.
#[derive(Default)]
struct Exposition(String);

impl Exposition {
    fn family(&mut self, name: &str, kind: &str, help: &str) -> &mut Self {
        let _ = writeln!(self.0, "# HELP {name} {help}\n# TYPE {name} {kind}");
        self
    }

    /// One sample; `labels` as `(name, value)` pairs, values escaped here.
    fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: impl Display) -> &mut Self {
        self.0.push_str(name);
        if !labels.is_empty() {
            let body: Vec<String> = labels
                .iter()
                .map(|(k, v)| format!("{k}=\"{}\"", label(v)))
                .collect();
            let _ = write!(self.0, "{{{}}}", body.join(","));
        }
        let _ = writeln!(self.0, " {value}");
        self
    }
}

#[utoipa::path(get, path = "/metrics", tag = "metrics", summary = "Prometheus metrics (text exposition format 0.0.4)", responses((status = 200, description = "Metrics", body = String, content_type = "text/plain")))]
pub async fn metrics(State(app): State<AppState>, caller: Caller) -> Result<Response, ApiError> {
    caller.require(TokenRole::Viewer)?;
    let mut m = Exposition::default();
    m.family(
        "camgate_build_info",
        "gauge",
        "Version of the running gateway.",
    )
    .sample(
        "camgate_build_info",
        &[("version", env!("CARGO_PKG_VERSION"))],
        1,
    );
    m.family(
        "camgate_uptime_seconds",
        "gauge",
        "Seconds since the gateway started.",
    )
    .sample(
        "camgate_uptime_seconds",
        &[],
        app.started.elapsed().as_secs(),
    );

    let snaps: Vec<_> = app.hub.list().iter().map(|s| s.snapshot()).collect();
    let mut kinds = std::collections::BTreeMap::<&str, usize>::new();
    for s in &snaps {
        *kinds.entry(s.kind).or_default() += 1;
    }
    m.family(
        "camgate_streams",
        "gauge",
        "Streams in the hub, by source kind.",
    );
    for (k, n) in &kinds {
        m.sample("camgate_streams", &[("kind", k)], n);
    }
    // Per-stream families: (name, type, help, value of a snapshot).
    type PerStream = fn(&crate::media::StreamSnapshot) -> u64;
    let per_stream: [(&str, &str, &str, PerStream); 4] = [
        (
            "camgate_stream_live",
            "gauge",
            "1 while the stream's source delivers media.",
            |s| u64::from(s.publishing),
        ),
        (
            "camgate_stream_in_bytes_total",
            "counter",
            "Payload bytes received from the stream's source.",
            |s| s.bytes_in,
        ),
        (
            "camgate_stream_in_frames_total",
            "counter",
            "Frames received from the stream's source.",
            |s| s.frames_in,
        ),
        (
            "camgate_stream_bitrate_bps",
            "gauge",
            "Incoming bitrate over the last seconds.",
            |s| s.bitrate_bps,
        ),
    ];
    for (name, kind, help, value) in per_stream {
        m.family(name, kind, help);
        for s in &snaps {
            m.sample(name, &[("stream", &s.id)], value(s));
        }
    }
    m.family(
        "camgate_stream_viewers",
        "gauge",
        "Viewers of a stream per output.",
    );
    for s in &snaps {
        for (o, n) in &s.viewers_by_output {
            m.sample(
                "camgate_stream_viewers",
                &[("stream", &s.id), ("output", o)],
                n,
            );
        }
    }
    m.family(
        "camgate_stream_out_bytes_total",
        "counter",
        "Media bytes sent to a stream's viewers per output.",
    );
    for s in &snaps {
        for (o, n) in &s.bytes_out_by_output {
            m.sample(
                "camgate_stream_out_bytes_total",
                &[("stream", &s.id), ("output", o)],
                n,
            );
        }
    }
    let load = app.system.load();
    m.family(
        "camgate_system_cpu_percent",
        "gauge",
        "Busy share of all the box's cores over the last 2 s.",
    )
    .sample("camgate_system_cpu_percent", &[], load.cpu_percent);
    m.family(
        "camgate_process_resident_memory_bytes",
        "gauge",
        "Resident memory of the gateway process.",
    )
    .sample(
        "camgate_process_resident_memory_bytes",
        &[],
        load.process_rss_bytes,
    );
    let latency = "camgate_stream_added_latency_seconds";
    m.family(
        latency,
        "gauge",
        "Gateway-added latency per output (quantile over the last 1000 frames).",
    );
    for s in &snaps {
        for (o, l) in &s.added_latency_us {
            for (q, us) in [("0.5", l.p50), ("0.99", l.p99)] {
                m.sample(
                    latency,
                    &[("stream", &s.id), ("output", o), ("quantile", q)],
                    us as f64 / 1e6,
                );
            }
        }
    }
    let gb: Vec<_> = snaps
        .iter()
        .filter_map(|s| Some((s.id.as_str(), app.gb_live.session_info(&s.id)?)))
        .collect();
    m.family(
        "camgate_gb_rtp_packets_total",
        "counter",
        "RTP packets received on a GB28181 stream.",
    );
    for (id, g) in &gb {
        m.sample("camgate_gb_rtp_packets_total", &[("stream", id)], g.packets);
    }
    m.family(
        "camgate_gb_rtp_lost_total",
        "counter",
        "RTP packets lost on a GB28181 stream (UDP).",
    );
    for (id, g) in &gb {
        m.sample("camgate_gb_rtp_lost_total", &[("stream", id)], g.lost);
    }
    m.family(
        "camgate_gb_invites_total",
        "counter",
        "INVITEs sent to GB28181 devices.",
    )
    .sample(
        "camgate_gb_invites_total",
        &[],
        app.gb_live.invites.load(Ordering::Relaxed),
    );
    let (online, known) = app.gb.device_counts();
    m.family("camgate_gb_devices", "gauge", "GB28181 devices by state.")
        .sample("camgate_gb_devices", &[("state", "online")], online)
        .sample(
            "camgate_gb_devices",
            &[("state", "offline")],
            known.saturating_sub(online),
        );
    let sip = app.gb.sip_stats();
    for (name, help, counter) in [
        (
            "camgate_sip_requests_received_total",
            "SIP requests received.",
            &sip.requests_received,
        ),
        (
            "camgate_sip_requests_sent_total",
            "SIP client transactions started.",
            &sip.requests_sent,
        ),
        (
            "camgate_sip_timeouts_total",
            "SIP client transactions that timed out.",
            &sip.timeouts,
        ),
        (
            "camgate_sip_malformed_total",
            "SIP messages dropped as malformed.",
            &sip.malformed,
        ),
    ] {
        m.family(name, "counter", help)
            .sample(name, &[], counter.load(Ordering::Relaxed));
    }
    m.family(
        "camgate_webrtc_sessions",
        "gauge",
        "WebRTC (WHEP) sessions.",
    )
    .sample("camgate_webrtc_sessions", &[], app.webrtc.sessions().len());
    let events = app
        .store
        .call(|c| crate::store::db::count_events_by_kind(c))
        .await?;
    m.family(
        "camgate_events",
        "gauge",
        "Events in the log by kind (errors: auth_failed, protocol_error, source errors).",
    );
    for (kind, n) in &events {
        m.sample("camgate_events", &[("kind", kind)], n);
    }
    let mut r = m.0.into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
    );
    Ok(r)
}
