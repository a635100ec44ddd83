//! Configuration: embedded defaults, overridden by `camgate.toml`, overridden
//! by `CAMGATE_*` environment variables, overridden by command-line flags.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

/// Flags shared by every subcommand. Each has an environment variable.
#[derive(clap::Args, Debug, Default, Clone)]
pub struct ConfigArgs {
    /// Configuration file. Without this flag, `camgate.toml` in the current
    /// directory is read if it exists.
    #[arg(long, env = "CAMGATE_CONFIG", global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,

    /// Directory for the database [default: ./data].
    #[arg(long, env = "CAMGATE_DATA_DIR", global = true, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,

    /// HTTP listen address for the API, UI and live outputs [default: 0.0.0.0:8080].
    #[arg(long, env = "CAMGATE_HTTP_LISTEN", global = true, value_name = "ADDR")]
    pub http_listen: Option<SocketAddr>,

    /// SIP listen address, UDP and TCP on the same port [default: 0.0.0.0:5060].
    #[arg(long, env = "CAMGATE_SIP_LISTEN", global = true, value_name = "ADDR")]
    pub sip_listen: Option<SocketAddr>,

    /// GB28181 media: the shared RTP port, UDP and TCP [default: 0.0.0.0:10000].
    #[arg(long, env = "CAMGATE_RTP_LISTEN", global = true, value_name = "ADDR")]
    pub rtp_listen: Option<SocketAddr>,

    /// RTSP server (output) listen address [default: 0.0.0.0:8554].
    #[arg(
        long,
        env = "CAMGATE_RTSP_SERVER_LISTEN",
        global = true,
        value_name = "ADDR"
    )]
    pub rtsp_server_listen: Option<SocketAddr>,

    /// RTSP server: the shared UDP RTP port (RTCP is the next one); 0 picks
    /// free ports [default: 8000].
    #[arg(
        long,
        env = "CAMGATE_RTSP_SERVER_UDP_PORT",
        global = true,
        value_name = "PORT"
    )]
    pub rtsp_server_udp_port: Option<u16>,

    /// Viewers must present an API token (RTSP output) [default: false].
    #[arg(
        long,
        env = "CAMGATE_VIEWER_REQUIRE_TOKEN",
        global = true,
        value_name = "BOOL"
    )]
    pub viewer_require_token: Option<bool>,

    /// WebRTC (WHEP) media: the one UDP port all sessions share [default: 0.0.0.0:8189].
    #[arg(
        long,
        env = "CAMGATE_WEBRTC_LISTEN",
        global = true,
        value_name = "ADDR"
    )]
    pub webrtc_listen: Option<SocketAddr>,

    /// Log filter, e.g. `info` or `camgate=debug,retina=info` [default: info].
    #[arg(long, env = "CAMGATE_LOG", global = true, value_name = "FILTER")]
    pub log: Option<String>,

    /// Log output: `text` (stderr), `journald` (structured fields), or `auto`:
    /// journald when stderr is systemd's journal stream [default: auto].
    #[arg(long, env = "CAMGATE_LOG_FORMAT", global = true, value_name = "FORMAT")]
    pub log_format: Option<LogFormat>,

    /// Seconds an on-demand source keeps running after its last viewer left
    /// [default: 10]. A value stored through the API takes precedence.
    #[arg(
        long,
        env = "CAMGATE_ON_DEMAND_GRACE_SECS",
        global = true,
        value_name = "SECS"
    )]
    pub on_demand_grace_secs: Option<u64>,

    /// Seconds a new viewer waits for the first frame before getting an error
    /// [default: 15]. A value stored through the API takes precedence.
    #[arg(
        long,
        env = "CAMGATE_START_TIMEOUT_SECS",
        global = true,
        value_name = "SECS"
    )]
    pub start_timeout_secs: Option<u64>,

    /// Longest wait between RTSP reconnection attempts [default: 60].
    #[arg(
        long,
        env = "CAMGATE_RTSP_BACKOFF_MAX_SECS",
        global = true,
        value_name = "SECS"
    )]
    pub rtsp_backoff_max_secs: Option<u64>,

    /// An admin API token to accept (at least 24 characters). Without it, the
    /// first start with an empty database creates one and logs it once.
    #[arg(
        long,
        env = "CAMGATE_ADMIN_TOKEN",
        global = true,
        value_name = "TOKEN",
        hide_env_values = true
    )]
    pub admin_token: Option<String>,
}

/// `camgate.toml`. Every key is optional.
#[derive(Deserialize, Debug, Default)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    pub data_dir: Option<PathBuf>,
    /// `log = "FILTER"`, or a `[log]` table with `filter` and `format`.
    pub log: Option<LogFile>,
    pub admin_token: Option<String>,
    #[serde(default)]
    pub http: HttpFile,
    #[serde(default)]
    pub media: MediaFile,
    #[serde(default)]
    pub rtsp: RtspFile,
    #[serde(default)]
    pub sip: SipFile,
    #[serde(default)]
    pub gb_media: GbMediaFile,
    #[serde(default)]
    pub rtsp_server: RtspServerFile,
    #[serde(default)]
    pub viewer: ViewerFile,
    #[serde(default)]
    pub webrtc: WebRtcFile,
}

/// `[rtsp_server]`: the RTSP output (`rtsp://host:8554/live/{stream}`).
#[derive(Deserialize, Debug, Default)]
#[serde(deny_unknown_fields)]
pub struct RtspServerFile {
    /// [default: true]
    pub enabled: Option<bool>,
    /// [default: 0.0.0.0:8554]
    pub listen: Option<SocketAddr>,
    /// Shared UDP RTP port for every UDP session; RTCP is the next port; 0
    /// picks free ones [default: 8000].
    pub udp_rtp_port: Option<u16>,
    /// Seconds without a request or RTCP that end a session [default: 60].
    pub session_timeout_secs: Option<u64>,
    /// Schemes offered in 401 challenges, in this order: `digest`, `basic`
    /// [default: ["digest", "basic"]]. Only offered schemes are accepted.
    pub auth_schemes: Option<Vec<crate::egress::rtsp::AuthScheme>>,
}

/// `[viewer]`: who may watch live outputs.
#[derive(Deserialize, Debug, Default)]
#[serde(deny_unknown_fields)]
pub struct ViewerFile {
    /// Require an API token (any role) to watch [default: false].
    pub require_token: Option<bool>,
    /// Viewer URLs must carry a signature valid this long; the play and
    /// streams APIs hand out signed URLs [default: 0 = off].
    pub signed_url_ttl_secs: Option<u64>,
}

/// `[webrtc]`: WHEP playback.
#[derive(Deserialize, Debug, Default)]
#[serde(deny_unknown_fields)]
pub struct WebRtcFile {
    /// [default: true]
    pub enabled: Option<bool>,
    /// The UDP port every session shares [default: 0.0.0.0:8189].
    pub listen: Option<SocketAddr>,
    /// Host candidate addresses (NAT: the public address forwarding to
    /// `listen`); empty = the interface addresses [default: []].
    pub public_ips: Option<Vec<std::net::IpAddr>>,
    /// Concurrent sessions; more get 503 [default: 64].
    pub max_sessions: Option<usize>,
}

/// Where log records go.
#[derive(Deserialize, Debug, Default, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// journald when `$JOURNAL_STREAM` names our stderr, else text.
    #[default]
    Auto,
    /// Human-readable lines on stderr.
    Text,
    /// Native journald records with each tracing field as a journal field.
    Journald,
}

/// `log`: a filter string (the original form) or a `[log]` table.
#[derive(Deserialize, Debug, Clone)]
#[serde(untagged)]
pub enum LogFile {
    Filter(String),
    Table(LogTable),
}

#[derive(Deserialize, Debug, Clone, Default)]
#[serde(deny_unknown_fields)]
pub struct LogTable {
    pub filter: Option<String>,
    pub format: Option<LogFormat>,
}

/// `[gb_media]`: how GB28181 media comes in.
#[derive(Deserialize, Debug, Default)]
#[serde(deny_unknown_fields)]
pub struct GbMediaFile {
    /// RTP over UDP and RFC 4571 over TCP, same port [default: 0.0.0.0:10000].
    pub listen: Option<SocketAddr>,
    /// Our media address written in SDP offers (NAT); else the local address
    /// routing to each device.
    pub media_ip: Option<std::net::IpAddr>,
    /// The port devices must send to, when it differs from the listening
    /// port (port forwarding on a NAT router); written in SDP offers.
    pub public_port: Option<u16>,
    /// Ports for sessions that need a port of their own (devices without SSRC
    /// checking), `[first, last]` [default: [30000, 30499]]; `[]` for none.
    pub port_range: Option<Vec<u16>>,
    /// Seconds without media that end a session [default: 10].
    pub media_timeout_secs: Option<u64>,
    /// Require the answered SSRC on RTP [default: true]; per device too.
    pub check_ssrc: Option<bool>,
}

/// `[sip]`: the GB28181 platform's transport. Identity, passwords and
/// keepalive policy are runtime settings (`/api/v1/settings/sip`).
#[derive(Deserialize, Debug, Default)]
#[serde(deny_unknown_fields)]
pub struct SipFile {
    pub listen: Option<SocketAddr>,
    /// Offer `qop="auth"` in digest challenges [default: true].
    pub digest_qop: Option<bool>,
    /// The address devices reach the platform at (NAT); else the local
    /// address routing to each device.
    pub public_ip: Option<std::net::IpAddr>,
    /// Seconds the API waits for a device's answer [default: 10].
    pub query_timeout_secs: Option<u64>,
    /// Seconds of silence that end a multi-message catalog [default: 10].
    pub catalog_timeout_secs: Option<u64>,
    /// Catalog subscription period [default: 3600].
    pub subscribe_expires_secs: Option<u32>,
}

#[derive(Deserialize, Debug, Default)]
#[serde(deny_unknown_fields)]
pub struct HttpFile {
    pub listen: Option<SocketAddr>,
    /// Origins allowed to read responses cross-origin (`"*"` for any); none
    /// by default.
    pub cors_allowed_origins: Option<Vec<String>>,
    /// Reverse proxies (their addresses) whose `X-Forwarded-For` names the
    /// client, for sign-in rate limits and logs; none by default.
    pub trusted_proxies: Option<Vec<std::net::IpAddr>>,
}

#[derive(Deserialize, Debug, Default)]
#[serde(deny_unknown_fields)]
pub struct MediaFile {
    pub on_demand_grace_secs: Option<u64>,
    pub start_timeout_secs: Option<u64>,
}

#[derive(Deserialize, Debug, Default)]
#[serde(deny_unknown_fields)]
pub struct RtspFile {
    pub connect_timeout_secs: Option<u64>,
    pub backoff_min_secs: Option<u64>,
    pub backoff_max_secs: Option<u64>,
}

/// The effective configuration.
#[derive(Clone, Debug)]
pub struct Config {
    pub data_dir: PathBuf,
    pub http_listen: SocketAddr,
    pub cors_allowed_origins: Vec<String>,
    pub trusted_proxies: Vec<std::net::IpAddr>,
    pub log: String,
    pub log_format: LogFormat,
    pub on_demand_grace: Duration,
    pub start_timeout: Duration,
    pub rtsp_connect_timeout: Duration,
    pub rtsp_backoff_min: Duration,
    pub rtsp_backoff_max: Duration,
    pub admin_token: Option<String>,
    pub sip_listen: SocketAddr,
    pub gb: crate::gb::GbConfig,
    pub rtp_listen: SocketAddr,
    pub rtp_port_range: Option<(u16, u16)>,
    pub live: crate::gb::live::LiveConfig,
    pub rtsp_server: crate::egress::rtsp::RtspServerConfig,
    /// Live outputs (FLV, HLS, RTSP, WebRTC) require an API token.
    pub viewer_require_token: bool,
    /// Live outputs require a signed URL (or an API token) valid this long.
    pub viewer_signed_ttl: Option<Duration>,
    pub webrtc: crate::egress::webrtc::WebRtcConfig,
    /// Which listen addresses came from a flag or environment variable:
    /// those win over the network settings stored from the web UI.
    pub listen_flags: ListenFlags,
    /// The network settings from flags, file and defaults alone, before any
    /// stored from the web UI: what a cleared setting falls back to.
    pub network_base: crate::store::NetworkSettings,
}

/// Listen addresses given on the command line or in the environment.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ListenFlags {
    pub sip: bool,
    pub rtp: bool,
    pub rtsp: bool,
    pub webrtc: bool,
}

impl Config {
    /// Applies network settings stored from the web UI (over the file and
    /// defaults, under flags); returns the names of settings a flag
    /// overrode.
    pub fn apply_network(&mut self, n: &crate::store::NetworkSettings) -> Vec<&'static str> {
        let mut overridden = Vec::new();
        let f = self.listen_flags;
        let mut set = |name, flag: bool, port: Option<u16>, addr: &mut SocketAddr| {
            if let Some(p) = port {
                if flag {
                    overridden.push(name);
                } else {
                    addr.set_port(p);
                }
            }
        };
        set("sip_port", f.sip, n.sip_port, &mut self.sip_listen);
        set("rtp_port", f.rtp, n.rtp_port, &mut self.rtp_listen);
        set(
            "rtsp_port",
            f.rtsp,
            n.rtsp_port,
            &mut self.rtsp_server.listen,
        );
        set(
            "webrtc_port",
            f.webrtc,
            n.webrtc_port,
            &mut self.webrtc.listen,
        );
        if let Some(ip) = n.public_ip {
            self.gb.public_ip = Some(ip);
            self.live.media_ip = Some(ip);
            self.webrtc.public_ips = vec![ip];
        }
        overridden
    }

    /// What the next start would run with if `stored` were the stored
    /// network settings (flags still win).
    pub fn network_next(
        &self,
        stored: &crate::store::NetworkSettings,
    ) -> crate::store::NetworkSettings {
        let base = self.network_base;
        let f = self.listen_flags;
        let pick = |flag: bool, s: Option<u16>, b: Option<u16>| if flag { b } else { s.or(b) };
        crate::store::NetworkSettings {
            sip_port: pick(f.sip, stored.sip_port, base.sip_port),
            rtp_port: pick(f.rtp, stored.rtp_port, base.rtp_port),
            rtsp_port: if base.rtsp_port.is_some() {
                pick(f.rtsp, stored.rtsp_port, base.rtsp_port)
            } else {
                None
            },
            webrtc_port: if base.webrtc_port.is_some() {
                pick(f.webrtc, stored.webrtc_port, base.webrtc_port)
            } else {
                None
            },
            public_ip: stored.public_ip.or(base.public_ip),
        }
    }

    /// The network settings in force.
    pub fn network(&self) -> crate::store::NetworkSettings {
        crate::store::NetworkSettings {
            sip_port: Some(self.sip_listen.port()),
            rtp_port: Some(self.rtp_listen.port()),
            rtsp_port: self
                .rtsp_server
                .enabled
                .then_some(self.rtsp_server.listen.port()),
            webrtc_port: self.webrtc.enabled.then_some(self.webrtc.listen.port()),
            public_ip: self.gb.public_ip.or(self.live.media_ip),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: {source}")]
    Parse {
        path: PathBuf,
        #[source]
        source: toml::de::Error,
    },
    #[error("{0}")]
    Invalid(String),
}

impl Config {
    /// Reads the file named by `args` (or `camgate.toml` if present) and
    /// applies the flags/environment on top.
    pub fn load(args: &ConfigArgs) -> Result<Self, ConfigError> {
        let file = match &args.config {
            Some(p) => Some(read_file(p)?),
            None if Path::new("camgate.toml").exists() => {
                Some(read_file(Path::new("camgate.toml"))?)
            }
            None => None,
        };
        Self::resolve(args, file.unwrap_or_default())
    }

    pub fn resolve(args: &ConfigArgs, file: FileConfig) -> Result<Self, ConfigError> {
        let secs = Duration::from_secs;
        let log_file = match file.log {
            Some(LogFile::Filter(f)) => LogTable {
                filter: Some(f),
                format: None,
            },
            Some(LogFile::Table(t)) => t,
            None => LogTable::default(),
        };
        let mut config = Self {
            data_dir: args
                .data_dir
                .clone()
                .or(file.data_dir)
                .unwrap_or_else(|| PathBuf::from("data")),
            http_listen: args
                .http_listen
                .or(file.http.listen)
                .unwrap_or_else(|| SocketAddr::from(([0, 0, 0, 0], 8080))),
            cors_allowed_origins: file.http.cors_allowed_origins.unwrap_or_default(),
            trusted_proxies: file.http.trusted_proxies.unwrap_or_default(),
            log: args
                .log
                .clone()
                .or(log_file.filter)
                .unwrap_or_else(|| "info".into()),
            log_format: args.log_format.or(log_file.format).unwrap_or_default(),
            on_demand_grace: secs(
                args.on_demand_grace_secs
                    .or(file.media.on_demand_grace_secs)
                    .unwrap_or(10),
            ),
            start_timeout: secs(
                args.start_timeout_secs
                    .or(file.media.start_timeout_secs)
                    .unwrap_or(15),
            ),
            rtsp_connect_timeout: secs(file.rtsp.connect_timeout_secs.unwrap_or(10)),
            rtsp_backoff_min: secs(file.rtsp.backoff_min_secs.unwrap_or(1)),
            rtsp_backoff_max: secs(
                args.rtsp_backoff_max_secs
                    .or(file.rtsp.backoff_max_secs)
                    .unwrap_or(60),
            ),
            admin_token: args.admin_token.clone().or(file.admin_token),
            sip_listen: args
                .sip_listen
                .or(file.sip.listen)
                .unwrap_or_else(|| SocketAddr::from(([0, 0, 0, 0], 5060))),
            gb: crate::gb::GbConfig {
                digest_qop: file.sip.digest_qop.unwrap_or(true),
                public_ip: file.sip.public_ip,
                query_timeout: secs(file.sip.query_timeout_secs.unwrap_or(10)),
                catalog_idle_timeout: secs(file.sip.catalog_timeout_secs.unwrap_or(10)),
                subscribe_expires: file.sip.subscribe_expires_secs.unwrap_or(3600),
                ..crate::gb::GbConfig::default()
            },
            rtp_listen: args
                .rtp_listen
                .or(file.gb_media.listen)
                .unwrap_or_else(|| SocketAddr::from(([0, 0, 0, 0], 10000))),
            rtp_port_range: match file.gb_media.port_range.as_deref() {
                None => Some((30000, 30499)),
                Some([]) => None,
                Some([a, b]) if a <= b && *a > 0 => Some((*a, *b)),
                Some(_) => {
                    return Err(ConfigError::Invalid(
                        "gb_media port_range must be [first, last] with 0 < first <= last, or []"
                            .into(),
                    ));
                }
            },
            live: crate::gb::live::LiveConfig {
                media_timeout: secs(file.gb_media.media_timeout_secs.unwrap_or(10)),
                media_ip: file.gb_media.media_ip,
                public_port: file.gb_media.public_port,
                check_ssrc: file.gb_media.check_ssrc.unwrap_or(true),
                ..crate::gb::live::LiveConfig::default()
            },
            rtsp_server: crate::egress::rtsp::RtspServerConfig {
                enabled: file.rtsp_server.enabled.unwrap_or(true),
                listen: args
                    .rtsp_server_listen
                    .or(file.rtsp_server.listen)
                    .unwrap_or_else(|| SocketAddr::from(([0, 0, 0, 0], 8554))),
                udp_rtp_port: args
                    .rtsp_server_udp_port
                    .or(file.rtsp_server.udp_rtp_port)
                    .unwrap_or(8000),
                session_timeout: secs(file.rtsp_server.session_timeout_secs.unwrap_or(60)),
                auth_schemes: file.rtsp_server.auth_schemes.unwrap_or_else(|| {
                    vec![
                        crate::egress::rtsp::AuthScheme::Digest,
                        crate::egress::rtsp::AuthScheme::Basic,
                    ]
                }),
            },
            viewer_require_token: args
                .viewer_require_token
                .or(file.viewer.require_token)
                .unwrap_or(false),
            viewer_signed_ttl: file.viewer.signed_url_ttl_secs.filter(|s| *s > 0).map(secs),
            webrtc: {
                let d = crate::egress::webrtc::WebRtcConfig::default();
                crate::egress::webrtc::WebRtcConfig {
                    enabled: file.webrtc.enabled.unwrap_or(d.enabled),
                    listen: args
                        .webrtc_listen
                        .or(file.webrtc.listen)
                        .unwrap_or(d.listen),
                    public_ips: file.webrtc.public_ips.unwrap_or_default(),
                    max_sessions: file.webrtc.max_sessions.unwrap_or(d.max_sessions),
                    ..d
                }
            },
            listen_flags: ListenFlags {
                sip: args.sip_listen.is_some(),
                rtp: args.rtp_listen.is_some(),
                rtsp: args.rtsp_server_listen.is_some(),
                webrtc: args.webrtc_listen.is_some(),
            },
            network_base: crate::store::NetworkSettings::default(),
        };
        config.network_base = config.network();
        config.validate()?;
        Ok(config)
    }

    fn validate(&self) -> Result<(), ConfigError> {
        if let Some(t) = &self.admin_token
            && (t.len() < 24 || t.chars().any(|c| c.is_whitespace() || c.is_control()))
        {
            return Err(ConfigError::Invalid(
                "admin_token must be at least 24 characters without spaces".into(),
            ));
        }
        crate::api::CorsPolicy::new(&self.cors_allowed_origins).map_err(ConfigError::Invalid)?;
        if self.start_timeout.is_zero() {
            return Err(ConfigError::Invalid(
                "start_timeout_secs must be at least 1".into(),
            ));
        }
        if self.gb.query_timeout.is_zero() || self.gb.catalog_idle_timeout.is_zero() {
            return Err(ConfigError::Invalid(
                "sip query_timeout_secs and catalog_timeout_secs must be at least 1".into(),
            ));
        }
        if self.live.media_timeout.is_zero() {
            return Err(ConfigError::Invalid(
                "gb_media media_timeout_secs must be at least 1".into(),
            ));
        }
        if self.gb.subscribe_expires < 10 {
            return Err(ConfigError::Invalid(
                "sip subscribe_expires_secs must be at least 10".into(),
            ));
        }
        if self.rtsp_server.session_timeout.as_secs() < 5 {
            return Err(ConfigError::Invalid(
                "rtsp_server session_timeout_secs must be at least 5".into(),
            ));
        }
        if self.rtsp_server.auth_schemes.is_empty() {
            return Err(ConfigError::Invalid(
                "rtsp_server auth_schemes must name at least one of digest, basic".into(),
            ));
        }
        if self.rtsp_server.udp_rtp_port == u16::MAX {
            return Err(ConfigError::Invalid(
                "rtsp_server udp_rtp_port: RTCP needs the next port too".into(),
            ));
        }
        if self.rtsp_backoff_min.is_zero() || self.rtsp_backoff_max < self.rtsp_backoff_min {
            return Err(ConfigError::Invalid(
                "rtsp backoff: need 1 <= backoff_min_secs <= backoff_max_secs".into(),
            ));
        }
        if self.webrtc.max_sessions == 0 {
            return Err(ConfigError::Invalid(
                "webrtc max_sessions must be at least 1 (use enabled = false to turn WebRTC off)"
                    .into(),
            ));
        }
        Ok(())
    }
}

fn read_file(path: &Path) -> Result<FileConfig, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_owned(),
        source,
    })?;
    toml::from_str(&text).map_err(|source| ConfigError::Parse {
        path: path.to_owned(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults() {
        let c = Config::resolve(&ConfigArgs::default(), FileConfig::default()).unwrap();
        assert_eq!(c.http_listen.to_string(), "0.0.0.0:8080");
        assert_eq!(c.data_dir, PathBuf::from("data"));
        assert_eq!(c.on_demand_grace, Duration::from_secs(10));
        assert!(c.admin_token.is_none());
        assert_eq!(c.sip_listen.to_string(), "0.0.0.0:5060");
        assert!(c.gb.digest_qop);
        assert!(c.rtsp_server.enabled);
        assert_eq!(c.rtsp_server.listen.to_string(), "0.0.0.0:8554");
        assert_eq!(c.rtsp_server.udp_rtp_port, 8000);
        assert_eq!(c.rtsp_server.session_timeout, Duration::from_secs(60));
        assert!(!c.viewer_require_token);
        assert!(c.webrtc.enabled);
        assert_eq!(c.webrtc.listen.to_string(), "0.0.0.0:8189");
        assert_eq!(c.webrtc.max_sessions, 64);
    }

    #[test]
    fn rtsp_server_and_viewer_keys() {
        let file: FileConfig = toml::from_str(
            "[rtsp_server]\nenabled = false\nudp_rtp_port = 0\nsession_timeout_secs = 30\nauth_schemes = [\"basic\"]\n[viewer]\nrequire_token = true\n",
        )
        .unwrap();
        let args = ConfigArgs {
            rtsp_server_listen: Some("127.0.0.1:0".parse().unwrap()),
            ..Default::default()
        };
        let c = Config::resolve(&args, file).unwrap();
        assert!(!c.rtsp_server.enabled);
        assert_eq!(c.rtsp_server.listen.to_string(), "127.0.0.1:0");
        assert_eq!(c.rtsp_server.udp_rtp_port, 0);
        assert_eq!(
            c.rtsp_server.auth_schemes,
            vec![crate::egress::rtsp::AuthScheme::Basic]
        );
        assert!(c.viewer_require_token);
        assert!(toml::from_str::<FileConfig>("[rtsp_server]\nauth_schemes = [\"ntlm\"]").is_err());
    }

    #[test]
    fn webrtc_section() {
        let file: FileConfig = toml::from_str(
            "[webrtc]\nenabled = false\nlisten = \"0.0.0.0:9000\"\npublic_ips = [\"203.0.113.5\"]\nmax_sessions = 3\n",
        )
        .unwrap();
        let args = ConfigArgs {
            webrtc_listen: Some("127.0.0.1:9100".parse().unwrap()),
            ..Default::default()
        };
        let c = Config::resolve(&args, file).unwrap();
        assert!(!c.webrtc.enabled);
        assert_eq!(c.webrtc.listen.to_string(), "127.0.0.1:9100");
        assert_eq!(c.webrtc.public_ips.len(), 1);
        assert_eq!(c.webrtc.max_sessions, 3);
        let zero: FileConfig = toml::from_str("[webrtc]\nmax_sessions = 0\n").unwrap();
        assert!(Config::resolve(&ConfigArgs::default(), zero).is_err());
    }

    #[test]
    fn flags_override_file() {
        let file: FileConfig = toml::from_str(
            "data_dir = \"/var/lib/camgate\"\n[http]\nlisten = \"127.0.0.1:9000\"\n[media]\non_demand_grace_secs = 3\n",
        )
        .unwrap();
        let args = ConfigArgs {
            http_listen: Some("127.0.0.1:9100".parse().unwrap()),
            ..Default::default()
        };
        let c = Config::resolve(&args, file).unwrap();
        assert_eq!(c.http_listen.port(), 9100);
        assert_eq!(c.data_dir, PathBuf::from("/var/lib/camgate"));
        assert_eq!(c.on_demand_grace, Duration::from_secs(3));
    }

    #[test]
    fn log_is_a_filter_or_a_table() {
        let old: FileConfig = toml::from_str("log = \"debug\"\n").unwrap();
        let c = Config::resolve(&ConfigArgs::default(), old).unwrap();
        assert_eq!((c.log.as_str(), c.log_format), ("debug", LogFormat::Auto));
        let table: FileConfig =
            toml::from_str("[log]\nfilter = \"warn\"\nformat = \"journald\"\n").unwrap();
        let c = Config::resolve(&ConfigArgs::default(), table).unwrap();
        assert_eq!(
            (c.log.as_str(), c.log_format),
            ("warn", LogFormat::Journald)
        );
        assert!(toml::from_str::<FileConfig>("[log]\nformat = \"xml\"\n").is_err());
    }

    #[test]
    fn unknown_keys_and_weak_tokens_are_rejected() {
        assert!(toml::from_str::<FileConfig>("htttp = 1").is_err());
        let args = ConfigArgs {
            admin_token: Some("short".into()),
            ..Default::default()
        };
        assert!(Config::resolve(&args, FileConfig::default()).is_err());
    }

    #[test]
    fn stored_network_settings_apply_under_flags() {
        let args = ConfigArgs {
            sip_listen: Some("127.0.0.1:5070".parse().unwrap()),
            ..Default::default()
        };
        let mut c = Config::resolve(&args, FileConfig::default()).unwrap();
        let n = crate::store::NetworkSettings {
            sip_port: Some(15060),
            rtp_port: Some(20000),
            rtsp_port: None,
            webrtc_port: Some(9189),
            public_ip: Some("192.0.2.1".parse().unwrap()),
        };
        assert_eq!(c.apply_network(&n), vec!["sip_port"]);
        assert_eq!(c.sip_listen.port(), 5070, "the flag wins");
        assert_eq!(c.rtp_listen.port(), 20000);
        assert_eq!(c.webrtc.listen.port(), 9189);
        assert_eq!(c.rtsp_server.listen.port(), 8554);
        assert_eq!(c.webrtc.public_ips, vec![n.public_ip.unwrap()]);
        assert_eq!(c.network().public_ip, n.public_ip);
    }
}
