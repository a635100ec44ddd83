//! `/api/v1/settings/media`: on-demand grace and start timeout, applied live.
//! `/api/v1/settings/sip`: the GB28181 platform's identity and registration
//! policy, applied live.

use std::time::Duration;

use axum::Json;
use axum::extract::State;

use super::RequireAdmin;
use super::{ApiError, ApiJson, AppState};
use crate::store::{MediaSettings, SipSettings, db};

#[utoipa::path(get, path = "/api/v1/settings/media", tag = "settings", summary = "Media settings", responses((status = 200, description = "Current values", body = crate::store::MediaSettings)))]
pub async fn get_media(State(app): State<AppState>) -> Json<MediaSettings> {
    Json(app.media_settings())
}

#[utoipa::path(put, path = "/api/v1/settings/media", tag = "settings", summary = "Change media settings (admin), applied live", request_body = crate::store::MediaSettings, responses((status = 200, description = "Stored and applied", body = crate::store::MediaSettings)))]
pub async fn put_media(
    State(app): State<AppState>,
    _caller: RequireAdmin,
    ApiJson(body): ApiJson<MediaSettings>,
) -> Result<Json<MediaSettings>, ApiError> {
    if body.on_demand_grace_secs > 3600 {
        return Err(ApiError::invalid_field(
            "on_demand_grace_secs",
            "on_demand_grace_secs must be between 0 and 3600",
        ));
    }
    if !(1..=300).contains(&body.start_timeout_secs) {
        return Err(ApiError::invalid_field(
            "start_timeout_secs",
            "start_timeout_secs must be between 1 and 300",
        ));
    }
    app.store
        .call(move |c| db::put_setting(c, db::MEDIA_KEY, &body))
        .await?;
    app.set_media_settings(body);
    let grace = Duration::from_secs(body.on_demand_grace_secs);
    for s in app.hub.list() {
        let mut policy = s.policy();
        policy.grace = grace;
        s.set_policy(policy);
    }
    tracing::info!(
        grace_secs = body.on_demand_grace_secs,
        start_timeout_secs = body.start_timeout_secs,
        "media settings changed"
    );
    Ok(Json(body))
}

/// The SIP settings as shown: the password never leaves, `has_password` says
/// whether one is set.
#[derive(serde::Serialize, Debug, utoipa::ToSchema)]
pub struct SipSettingsView {
    pub platform_id: String,
    pub domain: String,
    pub has_password: bool,
    pub auto_accept: bool,
    pub keepalive_interval_secs: u32,
    pub keepalive_timeout_count: u32,
    /// Where SIP listens (configuration file / `--sip-listen`; read-only here).
    pub listen: String,
}

fn sip_view(app: &AppState, s: &SipSettings) -> SipSettingsView {
    SipSettingsView {
        platform_id: s.platform_id.clone(),
        domain: s.domain.clone(),
        has_password: s.password.is_some(),
        auto_accept: s.auto_accept,
        keepalive_interval_secs: s.keepalive_interval_secs,
        keepalive_timeout_count: s.keepalive_timeout_count,
        listen: app.gb.sip_addr().to_string(),
    }
}

/// Fields absent stay as they are; `password: null` removes the default
/// password (then only devices with their own password can register).
#[derive(serde::Deserialize, Debug, Default, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SipSettingsUpdate {
    pub platform_id: Option<String>,
    pub domain: Option<String>,
    #[serde(default, deserialize_with = "double_option")]
    pub password: Option<Option<String>>,
    pub auto_accept: Option<bool>,
    pub keepalive_interval_secs: Option<u32>,
    pub keepalive_timeout_count: Option<u32>,
}

fn double_option<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<Option<Option<String>>, D::Error> {
    <Option<String> as serde::Deserialize>::deserialize(d).map(Some)
}

#[utoipa::path(get, path = "/api/v1/settings/sip", tag = "settings", summary = "GB28181 platform settings", responses((status = 200, description = "Current values (no password)", body = SipSettingsView)))]
pub async fn get_sip(State(app): State<AppState>) -> Json<SipSettingsView> {
    Json(sip_view(&app, &app.gb.settings()))
}

#[utoipa::path(put, path = "/api/v1/settings/sip", tag = "settings", summary = "Change GB28181 platform settings (admin), applied live", request_body = SipSettingsUpdate, responses((status = 200, description = "Stored and applied", body = SipSettingsView)))]
pub async fn put_sip(
    State(app): State<AppState>,
    _caller: RequireAdmin,
    ApiJson(body): ApiJson<SipSettingsUpdate>,
) -> Result<Json<SipSettingsView>, ApiError> {
    let mut s = app.gb.settings();
    let digits = |v: &str, n: usize| v.len() == n && v.bytes().all(|b| b.is_ascii_digit());
    if let Some(id) = body.platform_id {
        if !digits(&id, 20) {
            return Err(ApiError::invalid_field(
                "platform_id",
                "platform_id must be 20 digits",
            ));
        }
        s.platform_id = id;
    }
    if let Some(d) = body.domain {
        if !digits(&d, 10) {
            return Err(ApiError::invalid_field(
                "domain",
                "domain must be 10 digits",
            ));
        }
        s.domain = d;
    }
    if let Some(pw) = body.password {
        if let Some(p) = &pw
            && (p.is_empty() || p.len() > 128 || p.chars().any(char::is_control))
        {
            return Err(ApiError::invalid_field(
                "password",
                "password must be 1–128 characters without control characters",
            ));
        }
        s.password = pw;
    }
    if let Some(a) = body.auto_accept {
        s.auto_accept = a;
    }
    if let Some(i) = body.keepalive_interval_secs {
        if !(1..=3600).contains(&i) {
            return Err(ApiError::invalid_field(
                "keepalive_interval_secs",
                "keepalive_interval_secs must be between 1 and 3600",
            ));
        }
        s.keepalive_interval_secs = i;
    }
    if let Some(c) = body.keepalive_timeout_count {
        if !(1..=100).contains(&c) {
            return Err(ApiError::invalid_field(
                "keepalive_timeout_count",
                "keepalive_timeout_count must be between 1 and 100",
            ));
        }
        s.keepalive_timeout_count = c;
    }
    let stored = s.clone();
    app.store
        .call(move |c| db::put_setting(c, db::SIP_KEY, &stored))
        .await?;
    app.gb.set_settings(s.clone());
    tracing::info!(
        platform_id = s.platform_id,
        domain = s.domain,
        auto_accept = s.auto_accept,
        has_password = s.password.is_some(),
        "SIP settings changed"
    );
    Ok(Json(sip_view(&app, &s)))
}

/// The network settings: what is stored (else what runs), and whether a
/// restart is needed for them to take effect.
#[derive(serde::Serialize, Debug, utoipa::ToSchema)]
pub struct NetworkSettingsView {
    pub sip_port: Option<u16>,
    pub rtp_port: Option<u16>,
    pub rtsp_port: Option<u16>,
    pub webrtc_port: Option<u16>,
    #[schema(value_type = Option<String>)]
    pub public_ip: Option<std::net::IpAddr>,
    /// The settings differ from what the running gateway bound.
    pub restart_required: bool,
    /// Settings a command-line flag or environment variable fixes (stored
    /// values for them are kept but do not apply).
    pub fixed_by_flags: Vec<&'static str>,
}

fn network_view(
    app: &AppState,
    stored: Option<crate::store::NetworkSettings>,
) -> NetworkSettingsView {
    let stored = stored.unwrap_or_default();
    let base = app.config.network_base;
    // Stored values are shown even where a flag overrides them today.
    let shown = stored.or(base);
    let f = app.config.listen_flags;
    let fixed_by_flags = [
        ("sip_port", f.sip),
        ("rtp_port", f.rtp),
        ("rtsp_port", f.rtsp),
        ("webrtc_port", f.webrtc),
    ]
    .into_iter()
    .filter_map(|(n, fixed)| fixed.then_some(n))
    .collect();
    NetworkSettingsView {
        restart_required: app.config.network_next(&stored) != app.config.network(),
        sip_port: shown.sip_port,
        rtp_port: shown.rtp_port,
        rtsp_port: shown.rtsp_port,
        webrtc_port: shown.webrtc_port,
        public_ip: shown.public_ip,
        fixed_by_flags,
    }
}

#[utoipa::path(get, path = "/api/v1/settings/network", tag = "settings", summary = "Ports and public IP (applied at the next start)", responses((status = 200, description = "Stored values (else those in force)", body = NetworkSettingsView)))]
pub async fn get_network(
    State(app): State<AppState>,
) -> Result<Json<NetworkSettingsView>, ApiError> {
    let stored = app
        .store
        .call(|c| db::get_setting(c, db::NETWORK_KEY))
        .await?;
    Ok(Json(network_view(&app, stored)))
}

/// A change to the network settings; absent fields stay, `public_ip: null`
/// clears the address.
#[derive(serde::Deserialize, Debug, Default, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NetworkSettingsUpdate {
    #[schema(minimum = 1, maximum = 65535)]
    pub sip_port: Option<u16>,
    #[schema(minimum = 1, maximum = 65535)]
    pub rtp_port: Option<u16>,
    #[schema(minimum = 1, maximum = 65535)]
    pub rtsp_port: Option<u16>,
    #[schema(minimum = 1, maximum = 65535)]
    pub webrtc_port: Option<u16>,
    /// A unicast address; `null` clears it.
    #[serde(default, deserialize_with = "some_or_null_ip")]
    #[schema(value_type = Option<String>)]
    pub public_ip: Option<Option<std::net::IpAddr>>,
}

fn some_or_null_ip<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<Option<Option<std::net::IpAddr>>, D::Error> {
    <Option<std::net::IpAddr> as serde::Deserialize>::deserialize(d).map(Some)
}

#[utoipa::path(put, path = "/api/v1/settings/network", tag = "settings", summary = "Change ports and public IP (admin); they apply at the next start", request_body = NetworkSettingsUpdate, responses((status = 200, description = "Stored", body = NetworkSettingsView)))]
pub async fn put_network(
    State(app): State<AppState>,
    _caller: RequireAdmin,
    ApiJson(body): ApiJson<NetworkSettingsUpdate>,
) -> Result<Json<NetworkSettingsView>, ApiError> {
    let mut n: crate::store::NetworkSettings = app
        .store
        .call(|c| db::get_setting(c, db::NETWORK_KEY))
        .await?
        .unwrap_or_default();
    for (name, port) in [
        ("sip_port", body.sip_port),
        ("rtp_port", body.rtp_port),
        ("rtsp_port", body.rtsp_port),
        ("webrtc_port", body.webrtc_port),
    ] {
        if port == Some(0) {
            return Err(ApiError::invalid_field(
                name,
                format!("{name} must be 1-65535"),
            ));
        }
    }
    n.sip_port = body.sip_port.or(n.sip_port);
    n.rtp_port = body.rtp_port.or(n.rtp_port);
    n.rtsp_port = body.rtsp_port.or(n.rtsp_port);
    n.webrtc_port = body.webrtc_port.or(n.webrtc_port);
    if let Some(ip) = body.public_ip {
        if ip.is_some_and(|ip| ip.is_unspecified() || ip.is_multicast()) {
            return Err(ApiError::invalid_field(
                "public_ip",
                "public_ip must be a unicast address devices and viewers can reach",
            ));
        }
        n.public_ip = ip;
    }
    // What the next start would bind must not collide: SIP and GB media
    // use both UDP and TCP, RTSP and HTTP TCP, WebRTC UDP. (Checked on the
    // stored values even where a flag overrides them today.)
    let next = n.or(app.config.network_base);
    let port = |p: Option<u16>| p.unwrap_or(0);
    let (sip, rtp) = (port(next.sip_port), port(next.rtp_port));
    let tcp = [
        ("sip_port", sip),
        ("rtp_port", rtp),
        ("rtsp_port", port(next.rtsp_port)),
        ("http", app.config.http_listen.port()),
    ];
    let udp = [
        ("sip_port", sip),
        ("rtp_port", rtp),
        ("webrtc_port", port(next.webrtc_port)),
    ];
    for set in [&tcp[..], &udp[..]] {
        for (i, (a, pa)) in set.iter().enumerate() {
            for (b, pb) in &set[i + 1..] {
                if *pa != 0 && pa == pb {
                    let field = if *a == "http" { *b } else { *a };
                    return Err(ApiError::invalid_field(
                        field,
                        format!("{a} and {b} would both use port {pa}"),
                    ));
                }
            }
        }
    }
    app.store
        .call(move |c| db::put_setting(c, db::NETWORK_KEY, &n))
        .await?;
    let view = network_view(&app, Some(n));
    tracing::info!(settings = ?n, restart_required = view.restart_required, "network settings changed; they apply at the next start");
    Ok(Json(view))
}
