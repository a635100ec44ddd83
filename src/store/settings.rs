//! Runtime settings kept in the `settings` table as JSON values by key. A
//! stored value overrides the configuration file.

use rusqlite::{Connection, OptionalExtension, params};
use serde::{Deserialize, Serialize, de::DeserializeOwned};

use super::{StoreError, unix_now};

/// Media behaviour an operator may change at run time.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MediaSettings {
    /// Seconds an on-demand source keeps running after its last viewer left.
    #[schema(maximum = 3600)]
    pub on_demand_grace_secs: u64,
    /// Seconds a new viewer waits for the first frame before getting an error.
    #[schema(minimum = 1, maximum = 300)]
    pub start_timeout_secs: u64,
}

pub const MEDIA_KEY: &str = "media";

/// GB28181 platform identity and registration policy.
///
/// The default device password is kept as given: digest HA1 depends on the
/// device id, which is unknown until a device first registers, so it cannot
/// be stored hashed. Per-device passwords are stored as HA1 (`gb_devices`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SipSettings {
    /// Our 20-digit platform id (type 200).
    pub platform_id: String,
    /// The 10-digit SIP domain, also the digest realm.
    pub domain: String,
    /// The default device password; `None` until an admin sets one, and no
    /// device without its own password can register before.
    pub password: Option<String>,
    /// Register unknown devices on first contact (with the default password).
    pub auto_accept: bool,
    /// Expected keepalive interval, seconds (standard default 60).
    pub keepalive_interval_secs: u32,
    /// Missed keepalives before a device is offline (standard default 3).
    pub keepalive_timeout_count: u32,
}

impl Default for SipSettings {
    fn default() -> Self {
        Self {
            platform_id: "34020000002000000001".into(),
            domain: "3402000000".into(),
            password: None,
            auto_accept: false,
            keepalive_interval_secs: 60,
            keepalive_timeout_count: 3,
        }
    }
}

pub const SIP_KEY: &str = "sip";

/// Ports and the public address, set from the web UI; applied at the next
/// start (listeners are bound once). A value here overrides the
/// configuration file, but not a command-line flag or environment variable.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NetworkSettings {
    /// SIP, UDP and TCP.
    pub sip_port: Option<u16>,
    /// GB28181 media, UDP and TCP.
    pub rtp_port: Option<u16>,
    /// The RTSP server (TCP).
    pub rtsp_port: Option<u16>,
    /// WebRTC media (UDP).
    pub webrtc_port: Option<u16>,
    /// The address devices and viewers reach this box at (NAT): written in
    /// SIP headers, SDP offers to devices and WebRTC candidates.
    #[schema(value_type = Option<String>)]
    pub public_ip: Option<std::net::IpAddr>,
}

impl NetworkSettings {
    /// These settings, each one not set taken from `fallback`.
    pub fn or(self, fallback: NetworkSettings) -> NetworkSettings {
        NetworkSettings {
            sip_port: self.sip_port.or(fallback.sip_port),
            rtp_port: self.rtp_port.or(fallback.rtp_port),
            rtsp_port: self.rtsp_port.or(fallback.rtsp_port),
            webrtc_port: self.webrtc_port.or(fallback.webrtc_port),
            public_ip: self.public_ip.or(fallback.public_ip),
        }
    }
}

pub const NETWORK_KEY: &str = "network";

pub fn get<T: DeserializeOwned>(conn: &Connection, key: &str) -> Result<Option<T>, StoreError> {
    let v: Option<String> = conn
        .query_row("SELECT value FROM settings WHERE key = ?1", [key], |r| {
            r.get(0)
        })
        .optional()?;
    match v {
        None => Ok(None),
        Some(s) => match serde_json::from_str(&s) {
            Ok(v) => Ok(Some(v)),
            Err(e) => {
                // A value written by another version: fall back to the
                // configuration rather than refusing to start.
                tracing::warn!(key, error = %e, "ignoring unreadable stored setting");
                Ok(None)
            }
        },
    }
}

pub fn put<T: Serialize>(conn: &Connection, key: &str, value: &T) -> Result<(), StoreError> {
    let json = serde_json::to_string(value).map_err(|e| StoreError::Worker(e.to_string()))?;
    conn.execute(
        "INSERT INTO settings (key, value, updated_at) VALUES (?1, ?2, ?3)
         ON CONFLICT (key) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at",
        params![key, json, unix_now()],
    )?;
    Ok(())
}
