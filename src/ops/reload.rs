//! SIGHUP: re-read the configuration and apply what can change while
//! streams keep running; name what needs a restart.
//!
//! Applied live: the log filter, CORS origins, and the on-demand grace and
//! start timeout (unless set through `/api/v1/settings/media`, whose stored
//! value takes precedence as at start). Everything else — listen addresses,
//! the data directory, SIP/GB28181 and RTSP timing, the admin token, the log
//! format — is bound at start and reported as "needs restart".

use std::time::Duration;

use crate::app::App;
use crate::config::Config;
use crate::ops::logging::Logging;
use crate::store::{MediaSettings, db};

/// What a reload did.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct ReloadOutcome {
    /// Settings changed in place.
    pub applied: Vec<&'static str>,
    /// Settings that differ from the running ones but take a restart.
    pub needs_restart: Vec<&'static str>,
    /// Settings that could not be applied, with why.
    pub failed: Vec<String>,
}

fn differs<T: std::fmt::Debug>(a: &T, b: &T) -> bool {
    // Debug output compares nested config types (durations, addresses,
    // options) that do not all implement PartialEq.
    format!("{a:?}") != format!("{b:?}")
}

/// Settings in `new` that differ from `old` and are fixed at start.
pub fn restart_needed(old: &Config, new: &Config) -> Vec<&'static str> {
    let mut out = Vec::new();
    let mut same = new.clone();
    macro_rules! fixed {
        ($($field:ident => $name:literal),* $(,)?) => {
            $(
                if differs(&old.$field, &new.$field) {
                    out.push($name);
                }
                same.$field = old.$field.clone();
            )*
        };
    }
    fixed!(
        data_dir => "data_dir",
        http_listen => "http.listen",
        sip_listen => "sip.listen",
        rtp_listen => "gb_media.listen",
        rtp_port_range => "gb_media.port_range",
        admin_token => "admin_token",
        log_format => "log.format",
        rtsp_connect_timeout => "rtsp.connect_timeout_secs",
        rtsp_backoff_min => "rtsp.backoff_min_secs",
        rtsp_backoff_max => "rtsp.backoff_max_secs",
        gb => "sip (digest_qop, public_ip, timeouts)",
        live => "gb_media (media_ip, public_port, check_ssrc, media_timeout_secs)",
    );
    // Derived at start, not settings of their own.
    same.network_base = old.network_base;
    same.listen_flags = old.listen_flags;
    // The live settings are not compared here.
    same.log = old.log.clone();
    same.cors_allowed_origins = old.cors_allowed_origins.clone();
    same.on_demand_grace = old.on_demand_grace;
    same.start_timeout = old.start_timeout;
    // A setting this list does not name yet (added since) is still caught.
    if differs(&same, old) {
        out.push("other settings");
    }
    out
}

/// Applies `new` to the running gateway. `running` is the configuration the
/// live settings were last taken from (updated by the caller on success).
pub async fn apply(
    app: &App,
    logging: Option<&Logging>,
    running: &Config,
    new: &Config,
) -> ReloadOutcome {
    // The network settings stored from the web UI apply over the file, as
    // they did at start; without them every stored port would look changed.
    let mut with_stored = new.clone();
    if let Ok(Some(n)) = app
        .store
        .call(|c| {
            crate::store::db::get_setting::<crate::store::NetworkSettings>(
                c,
                crate::store::db::NETWORK_KEY,
            )
        })
        .await
    {
        with_stored.apply_network(&n);
    }
    let mut outcome = ReloadOutcome {
        needs_restart: restart_needed(&app.config, &with_stored),
        ..ReloadOutcome::default()
    };
    if new.log != running.log {
        match logging.map(|l| l.set_filter(&new.log)) {
            Some(Ok(())) => outcome.applied.push("log filter"),
            Some(Err(e)) => outcome.failed.push(e),
            None => outcome.failed.push("no log handle to change".into()),
        }
    }
    if new.cors_allowed_origins != running.cors_allowed_origins {
        match crate::api::CorsPolicy::new(&new.cors_allowed_origins) {
            Ok(p) => {
                *app.cors.write().unwrap_or_else(|e| e.into_inner()) = std::sync::Arc::new(p);
                outcome.applied.push("http.cors_allowed_origins");
            }
            Err(e) => outcome.failed.push(e),
        }
    }
    if new.on_demand_grace != running.on_demand_grace || new.start_timeout != running.start_timeout
    {
        let stored = app
            .store
            .call(|c| db::get_setting::<MediaSettings>(c, db::MEDIA_KEY))
            .await;
        match stored {
            Ok(Some(_)) => outcome.failed.push(
                "media settings were set through the API, whose values take precedence; \
                 change them there"
                    .into(),
            ),
            Ok(None) => {
                let m = MediaSettings {
                    on_demand_grace_secs: new.on_demand_grace.as_secs(),
                    start_timeout_secs: new.start_timeout.as_secs(),
                };
                set_media(app, m);
                outcome
                    .applied
                    .push("media (on_demand_grace, start_timeout)");
            }
            Err(e) => outcome
                .failed
                .push(format!("cannot read media settings: {e}")),
        }
    }
    outcome
}

/// As `PUT /api/v1/settings/media` does, without storing.
fn set_media(app: &App, m: MediaSettings) {
    app.set_media_settings(m);
    let grace = Duration::from_secs(m.on_demand_grace_secs);
    for s in app.hub.list() {
        let mut policy = s.policy();
        policy.grace = grace;
        s.set_policy(policy);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{ConfigArgs, FileConfig};

    fn config(toml: &str) -> Config {
        let file: FileConfig = toml::from_str(toml).unwrap();
        Config::resolve(&ConfigArgs::default(), file).unwrap()
    }

    #[test]
    fn live_settings_need_no_restart() {
        let old = config("");
        let new = config(
            "log = \"debug\"\n[http]\ncors_allowed_origins = [\"*\"]\n[media]\non_demand_grace_secs = 1\nstart_timeout_secs = 3\n",
        );
        assert!(restart_needed(&old, &new).is_empty());
    }

    #[test]
    fn bound_settings_are_named() {
        let old = config("");
        let new = config(
            "[http]\nlisten = \"127.0.0.1:1\"\n[sip]\npublic_ip = \"192.0.2.1\"\n[rtsp]\nbackoff_max_secs = 5\n",
        );
        assert_eq!(
            restart_needed(&old, &new),
            vec![
                "http.listen",
                "rtsp.backoff_max_secs",
                "sip (digest_qop, public_ip, timeouts)"
            ]
        );
    }
}
