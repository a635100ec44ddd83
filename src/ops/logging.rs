//! Log output: plain text on stderr, or native journald records whose
//! tracing fields (`stream`, `peer`, `session`, …) become journal fields, so
//! `journalctl -u camgate STREAM=cam1` works.
//!
//! The filter sits behind a reload handle: SIGHUP can change it without a
//! restart.

use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Registry, reload};

use crate::config::LogFormat;

/// The installed subscriber's knobs.
pub struct Logging {
    filter: reload::Handle<EnvFilter, Registry>,
    /// Records go to journald (else to stderr as text).
    pub journald: bool,
}

fn parse_filter(filter: &str) -> Result<EnvFilter, String> {
    EnvFilter::try_new(filter).map_err(|e| format!("invalid log filter {filter:?}: {e}"))
}

/// Installs the global subscriber. An invalid filter falls back to `info`
/// (reported once the subscriber exists); journald that cannot be reached
/// falls back to text.
pub fn init(filter: &str, format: LogFormat) -> Logging {
    let (env_filter, filter_error) = match parse_filter(filter) {
        Ok(f) => (f, None),
        Err(e) => (EnvFilter::new("info"), Some(e)),
    };
    let want_journald = match format {
        LogFormat::Journald => true,
        LogFormat::Text => false,
        LogFormat::Auto => stderr_is_journal(std::env::var("JOURNAL_STREAM").ok().as_deref()),
    };
    let (journald, journald_error) = if want_journald {
        // No field prefix: our field names never start with `_` (journald's
        // trusted fields), and unprefixed names read naturally in queries.
        match tracing_journald::layer() {
            Ok(l) => (
                Some(
                    l.with_field_prefix(None)
                        .with_syslog_identifier("camgate".into())
                        .with_priority_mappings(priorities()),
                ),
                None,
            ),
            Err(e) => (None, Some(e)),
        }
    } else {
        (None, None)
    };
    let text = journald.is_none().then(|| {
        use std::io::IsTerminal;
        tracing_subscriber::fmt::layer()
            .with_ansi(std::io::stderr().is_terminal())
            .with_writer(std::io::stderr)
    });
    let is_journald = journald.is_some();
    let (filter_layer, handle) = reload::Layer::new(env_filter);
    tracing_subscriber::registry()
        .with(filter_layer)
        .with(journald)
        .with(text)
        .init();
    if let Some(e) = filter_error {
        tracing::error!("{e}; using \"info\"");
    }
    if let Some(e) = journald_error {
        tracing::warn!(error = %e, "journald is not reachable; logging text to stderr");
    }
    Logging {
        filter: handle,
        journald: is_journald,
    }
}

/// syslog's levels as `journalctl -p` reads them: info is 6, debug 7
/// (tracing-journald's default puts info at "notice" and debug at "info").
fn priorities() -> tracing_journald::PriorityMappings {
    use tracing_journald::Priority;
    tracing_journald::PriorityMappings {
        error: Priority::Error,
        warn: Priority::Warning,
        info: Priority::Informational,
        debug: Priority::Debug,
        trace: Priority::Debug,
    }
}

impl Logging {
    /// Replaces the filter; the old one stays if `filter` does not parse.
    pub fn set_filter(&self, filter: &str) -> Result<(), String> {
        let f = parse_filter(filter)?;
        self.filter
            .reload(f)
            .map_err(|e| format!("cannot change the log filter: {e}"))
    }
}

/// `$JOURNAL_STREAM` is `DEVICE:INODE` of the stream systemd connected
/// stdout/stderr to (systemd.exec(5), "Environment variables set"). It is
/// inherited by children whose stderr goes elsewhere, so stderr's own
/// device and inode must match it.
pub fn stderr_is_journal(journal_stream: Option<&str>) -> bool {
    let Some((dev, ino)) = journal_stream.and_then(parse_journal_stream) else {
        return false;
    };
    #[cfg(unix)]
    {
        use std::os::fd::AsFd;
        use std::os::unix::fs::MetadataExt;
        let Ok(fd) = std::io::stderr().as_fd().try_clone_to_owned() else {
            return false;
        };
        std::fs::File::from(fd)
            .metadata()
            .is_ok_and(|m| m.dev() == dev && m.ino() == ino)
    }
    #[cfg(not(unix))]
    {
        let _ = (dev, ino);
        false
    }
}

fn parse_journal_stream(s: &str) -> Option<(u64, u64)> {
    let (dev, ino) = s.trim().split_once(':')?;
    Some((dev.parse().ok()?, ino.parse().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn journal_stream_parses_device_and_inode() {
        assert_eq!(parse_journal_stream("8:12345"), Some((8, 12345)));
        assert_eq!(parse_journal_stream("8-12345"), None);
        assert_eq!(parse_journal_stream(":1"), None);
        assert!(!stderr_is_journal(None));
        assert!(!stderr_is_journal(Some("garbage")));
    }

    #[cfg(unix)]
    #[test]
    fn journal_stream_must_name_our_stderr() {
        use std::os::fd::AsFd;
        use std::os::unix::fs::MetadataExt;
        let fd = std::io::stderr().as_fd().try_clone_to_owned().unwrap();
        let m = std::fs::File::from(fd).metadata().unwrap();
        assert!(stderr_is_journal(Some(&format!("{}:{}", m.dev(), m.ino()))));
        assert!(!stderr_is_journal(Some(&format!(
            "{}:{}",
            m.dev(),
            m.ino().wrapping_add(1)
        ))));
    }

    #[test]
    fn bad_filters_are_reported() {
        assert!(parse_filter("camgate=debug,info").is_ok());
        assert!(parse_filter("camgate=loud").is_err());
    }
}
