//! `GET /api/v1/system`: the box at a glance for the dashboard: CPU,
//! memory, bandwidth, streams, viewers and devices.

use axum::Json;
use axum::extract::State;
use serde::Serialize;

use super::{AppState, Caller};
use crate::ops::system::SystemLoad;

#[derive(Serialize, Debug, utoipa::ToSchema)]
pub struct SystemView {
    pub version: &'static str,
    pub hostname: String,
    pub uptime_secs: u64,
    #[serde(flatten)]
    pub load: SystemLoad,
    pub streams: usize,
    /// Streams whose source is delivering media.
    pub streams_live: usize,
    pub viewers: usize,
    pub devices_online: usize,
    pub devices_offline: usize,
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .unwrap_or_default()
}

#[utoipa::path(get, path = "/api/v1/system", tag = "system", summary = "The box at a glance: CPU, memory, bandwidth, streams, devices", responses((status = 200, description = "Sampled every 2 s", body = SystemView)))]
pub async fn get(State(app): State<AppState>, _caller: Caller) -> Json<SystemView> {
    let snaps: Vec<_> = app.hub.list().iter().map(|s| s.snapshot()).collect();
    let (online, known) = app.gb.device_counts();
    Json(SystemView {
        version: env!("CARGO_PKG_VERSION"),
        hostname: hostname(),
        uptime_secs: app.started.elapsed().as_secs(),
        load: app.system.load(),
        streams: snaps.len(),
        streams_live: snaps.iter().filter(|s| s.publishing).count(),
        viewers: snaps.iter().map(|s| s.viewers).sum(),
        devices_online: online,
        devices_offline: known.saturating_sub(online),
    })
}
