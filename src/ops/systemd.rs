//! Running as a systemd service: the `sd_notify(3)` protocol, spoken directly
//! over a Unix datagram socket (no libsystemd, no extra crate).
//!
//! systemd hands the service `$NOTIFY_SOCKET` (a filesystem path, or an
//! abstract-namespace name written with a leading `@`) and, with
//! `WatchdogSec=`, `$WATCHDOG_USEC` / `$WATCHDOG_PID`. Each datagram is a set
//! of newline-separated `VARIABLE=value` assignments (sd_notify(3),
//! "Description"). Without `$NOTIFY_SOCKET` every call is a no-op, so the
//! gateway behaves the same outside systemd.
//!
//! What camgate sends:
//! - `STATUS=…` at each start-up step, after a reload and on shutdown;
//! - `READY=1` once SIP, GB28181 media and HTTP listen (`Type=notify`);
//! - `WATCHDOG=1` from a task on the tokio runtime every half
//!   `$WATCHDOG_USEC` (sd_watchdog_enabled(3) recommends half): a wedged
//!   runtime stops pinging and systemd restarts the service;
//! - `RELOADING=1` + `MONOTONIC_USEC=…` on SIGHUP, then `READY=1` again
//!   (the `Type=notify-reload` protocol of systemd ≥ 253, harmless before);
//! - `STOPPING=1` when SIGTERM/SIGINT starts the shutdown.

use std::sync::OnceLock;
use std::time::Duration;

/// Why a notification could not be sent.
#[derive(Debug, thiserror::Error)]
pub enum NotifyError {
    #[error("NOTIFY_SOCKET {0:?} is not an absolute path or @abstract name")]
    BadAddress(String),
    #[error("NOTIFY_SOCKET {0:?}: this kind of socket is not supported here")]
    Unsupported(String),
    #[error("notification {0:?} contains a NUL byte")]
    Nul(String),
    #[error("cannot send to NOTIFY_SOCKET {addr:?}: {source}")]
    Send {
        addr: String,
        #[source]
        source: std::io::Error,
    },
}

/// A connection to the service manager's notification socket.
#[derive(Debug)]
pub struct Notifier {
    #[cfg(unix)]
    inner: Option<(
        std::os::unix::net::UnixDatagram,
        std::os::unix::net::SocketAddr,
    )>,
    /// `$NOTIFY_SOCKET` as given, for error messages.
    label: String,
}

impl Notifier {
    /// A notifier that sends nothing (not started by systemd).
    pub fn disabled() -> Self {
        Self {
            #[cfg(unix)]
            inner: None,
            label: String::new(),
        }
    }

    /// From `$NOTIFY_SOCKET`; disabled when unset or empty.
    pub fn from_env() -> Result<Self, NotifyError> {
        match std::env::var("NOTIFY_SOCKET") {
            Ok(s) if !s.is_empty() => Self::connect(&s),
            _ => Ok(Self::disabled()),
        }
    }

    /// A notifier sending to `addr`: `/path/to/socket` or `@abstract-name`.
    #[cfg(unix)]
    pub fn connect(addr: &str) -> Result<Self, NotifyError> {
        use std::os::unix::net::{SocketAddr, UnixDatagram};
        let target = if let Some(name) = addr.strip_prefix('@') {
            abstract_addr(name.as_bytes()).ok_or_else(|| NotifyError::Unsupported(addr.into()))?
        } else if addr.starts_with('/') {
            SocketAddr::from_pathname(addr).map_err(|_| NotifyError::BadAddress(addr.into()))?
        } else if addr.starts_with("vsock:") {
            // AF_VSOCK notification (VMs) needs a socket type std lacks.
            return Err(NotifyError::Unsupported(addr.into()));
        } else {
            return Err(NotifyError::BadAddress(addr.into()));
        };
        let socket = UnixDatagram::unbound().map_err(|source| NotifyError::Send {
            addr: addr.into(),
            source,
        })?;
        Ok(Self {
            inner: Some((socket, target)),
            label: addr.into(),
        })
    }

    #[cfg(not(unix))]
    pub fn connect(addr: &str) -> Result<Self, NotifyError> {
        Err(NotifyError::Unsupported(addr.into()))
    }

    pub fn is_enabled(&self) -> bool {
        #[cfg(unix)]
        return self.inner.is_some();
        #[cfg(not(unix))]
        return false;
    }

    /// Sends one datagram with these `(VARIABLE, value)` assignments.
    /// Newlines in values become spaces: each line is one assignment.
    pub fn notify(&self, assignments: &[(&str, &str)]) -> Result<(), NotifyError> {
        #[cfg(unix)]
        if let Some((socket, target)) = &self.inner {
            let message = encode(assignments)?;
            socket
                .send_to_addr(message.as_bytes(), target)
                .map_err(|source| NotifyError::Send {
                    addr: self.label.clone(),
                    source,
                })?;
        }
        #[cfg(not(unix))]
        let _ = assignments;
        Ok(())
    }
}

#[cfg(target_os = "linux")]
fn abstract_addr(name: &[u8]) -> Option<std::os::unix::net::SocketAddr> {
    use std::os::linux::net::SocketAddrExt;
    std::os::unix::net::SocketAddr::from_abstract_name(name).ok()
}

#[cfg(all(unix, not(target_os = "linux")))]
fn abstract_addr(_name: &[u8]) -> Option<std::os::unix::net::SocketAddr> {
    None
}

/// The datagram for these assignments.
pub fn encode(assignments: &[(&str, &str)]) -> Result<String, NotifyError> {
    let mut out = String::new();
    for (key, value) in assignments {
        out.push_str(key);
        out.push('=');
        out.extend(
            value
                .chars()
                .map(|c| if c == '\n' || c == '\r' { ' ' } else { c }),
        );
        out.push('\n');
    }
    if out.contains('\0') {
        return Err(NotifyError::Nul(out));
    }
    Ok(out)
}

/// How often to send `WATCHDOG=1`: half of `$WATCHDOG_USEC`, if the watchdog
/// is meant for this process (`$WATCHDOG_PID` unset or equal to `my_pid`;
/// sd_watchdog_enabled(3)). `None` when there is no watchdog.
pub fn watchdog_interval(
    watchdog_usec: Option<&str>,
    watchdog_pid: Option<&str>,
    my_pid: u32,
) -> Option<Duration> {
    let usec: u64 = watchdog_usec?.trim().parse().ok()?;
    if usec == 0 {
        return None;
    }
    if let Some(pid) = watchdog_pid
        && pid.trim().parse::<u32>().ok() != Some(my_pid)
    {
        return None;
    }
    Some(Duration::from_micros(usec / 2).max(Duration::from_millis(1)))
}

/// `CLOCK_MONOTONIC` in microseconds, for `MONOTONIC_USEC=` with
/// `RELOADING=1` (systemd.service(5), `Type=notify-reload`).
pub fn monotonic_usec() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec; CLOCK_MONOTONIC always exists.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    (ts.tv_sec as u64) * 1_000_000 + (ts.tv_nsec as u64) / 1_000
}

static NOTIFIER: OnceLock<Notifier> = OnceLock::new();

/// The process's notifier, from `$NOTIFY_SOCKET` on first use. A bad
/// address is logged once and notifications are then dropped: systemd would
/// then time the start-up out, which names the problem better than exiting.
pub fn notifier() -> &'static Notifier {
    NOTIFIER.get_or_init(|| {
        Notifier::from_env().unwrap_or_else(|e| {
            tracing::error!(error = %e, "systemd notifications disabled");
            Notifier::disabled()
        })
    })
}

/// Sends to the process's notifier; failures are logged, never fatal (the
/// gateway keeps serving even if the service manager went away).
pub fn notify(assignments: &[(&str, &str)]) {
    if let Err(e) = notifier().notify(assignments) {
        tracing::warn!(error = %e, "systemd notification failed");
    }
}

/// `STATUS=` alone: a one-line summary `systemctl status` shows.
pub fn status(text: &str) {
    notify(&[("STATUS", text)]);
}

/// Pings `WATCHDOG=1` from the current tokio runtime at half the interval
/// systemd asked for, until `stop` is cancelled. Does nothing without a
/// watchdog. The ping runs as an ordinary task, so it stops when the
/// runtime's workers are all stuck — which is what the watchdog is for.
pub fn spawn_watchdog(stop: tokio_util::sync::CancellationToken) {
    let interval = watchdog_interval(
        std::env::var("WATCHDOG_USEC").ok().as_deref(),
        std::env::var("WATCHDOG_PID").ok().as_deref(),
        std::process::id(),
    );
    let Some(interval) = interval else { return };
    if !notifier().is_enabled() {
        return;
    }
    tracing::info!(
        interval_ms = interval.as_millis() as u64,
        "systemd watchdog enabled"
    );
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = stop.cancelled() => break,
                _ = tick.tick() => notify(&[("WATCHDOG", "1")]),
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::net::UnixDatagram;

    fn recv(sock: &UnixDatagram) -> String {
        sock.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut buf = [0u8; 4096];
        let n = sock.recv(&mut buf).unwrap();
        String::from_utf8(buf[..n].to_vec()).unwrap()
    }

    #[test]
    fn sends_to_a_path_socket() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("notify");
        let server = UnixDatagram::bind(&path).unwrap();
        let n = Notifier::connect(path.to_str().unwrap()).unwrap();
        assert!(n.is_enabled());
        n.notify(&[("READY", "1"), ("STATUS", "listening")])
            .unwrap();
        assert_eq!(recv(&server), "READY=1\nSTATUS=listening\n");
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn sends_to_an_abstract_socket() {
        use std::os::linux::net::SocketAddrExt;
        let name = format!(
            "camgate-test-{}-{:?}",
            std::process::id(),
            std::thread::current().id()
        );
        let addr = std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes()).unwrap();
        let server = UnixDatagram::bind_addr(&addr).unwrap();
        let n = Notifier::connect(&format!("@{name}")).unwrap();
        n.notify(&[("WATCHDOG", "1")]).unwrap();
        assert_eq!(recv(&server), "WATCHDOG=1\n");
    }

    #[test]
    fn newlines_in_values_cannot_inject_assignments() {
        assert_eq!(
            encode(&[("STATUS", "a\nREADY=1\r")]).unwrap(),
            "STATUS=a READY=1 \n"
        );
        assert!(matches!(
            encode(&[("STATUS", "a\0b")]),
            Err(NotifyError::Nul(_))
        ));
    }

    #[test]
    fn bad_addresses_are_refused() {
        assert!(matches!(
            Notifier::connect("relative/path"),
            Err(NotifyError::BadAddress(_))
        ));
        assert!(matches!(
            Notifier::connect("vsock:2:1234"),
            Err(NotifyError::Unsupported(_))
        ));
    }

    #[test]
    fn a_vanished_socket_is_an_error_not_a_panic() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("gone");
        let n = Notifier::connect(path.to_str().unwrap()).unwrap();
        let e = n.notify(&[("READY", "1")]).unwrap_err();
        assert!(e.to_string().contains("gone"), "{e}");
    }

    #[test]
    fn disabled_notifier_sends_nothing() {
        let n = Notifier::disabled();
        assert!(!n.is_enabled());
        n.notify(&[("READY", "1")]).unwrap();
    }

    #[test]
    fn watchdog_interval_is_half_and_honours_the_pid() {
        assert_eq!(
            watchdog_interval(Some("30000000"), None, 7),
            Some(Duration::from_secs(15))
        );
        assert_eq!(
            watchdog_interval(Some("2000000"), Some("7"), 7),
            Some(Duration::from_secs(1))
        );
        // Meant for another process (e.g. inherited by a child).
        assert_eq!(watchdog_interval(Some("2000000"), Some("8"), 7), None);
        assert_eq!(watchdog_interval(Some("0"), None, 7), None);
        assert_eq!(watchdog_interval(Some("soon"), None, 7), None);
        assert_eq!(watchdog_interval(None, None, 7), None);
    }

    #[test]
    fn monotonic_clock_moves_forward() {
        let a = monotonic_usec();
        std::thread::sleep(Duration::from_millis(2));
        assert!(monotonic_usec() > a);
    }
}
