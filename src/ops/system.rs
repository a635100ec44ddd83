//! The box's CPU, memory and network load for the dashboard
//! (`/api/v1/system`) and `/metrics`, sampled every few seconds from
//! `/proc`. The parsers are pure functions over the files' text; a file
//! that cannot be read or parsed leaves its figures at zero.

use std::sync::Mutex;
use std::time::Instant;

use serde::Serialize;

/// Aggregate CPU jiffies from the first line of `/proc/stat`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CpuTimes {
    pub busy: u64,
    pub total: u64,
}

/// `cpu  user nice system idle iowait irq softirq steal …` (proc(5)).
pub fn parse_proc_stat(text: &str) -> Option<CpuTimes> {
    let line = text.lines().find(|l| l.starts_with("cpu "))?;
    let fields: Vec<u64> = line
        .split_ascii_whitespace()
        .skip(1)
        .take(8)
        .map(|f| f.parse().ok())
        .collect::<Option<_>>()?;
    if fields.len() < 4 {
        return None;
    }
    let total = fields.iter().fold(0u64, |a, &b| a.saturating_add(b));
    // idle + iowait are not busy.
    let idle = fields[3].saturating_add(fields.get(4).copied().unwrap_or(0));
    Some(CpuTimes {
        busy: total.saturating_sub(idle),
        total,
    })
}

/// Cores listed in `/proc/stat` (`cpu0`, `cpu1`, …).
pub fn count_cores(text: &str) -> usize {
    text.lines()
        .filter(|l| l.starts_with("cpu") && l.as_bytes().get(3).is_some_and(u8::is_ascii_digit))
        .count()
}

/// (MemTotal, MemAvailable) in bytes from `/proc/meminfo`.
pub fn parse_meminfo(text: &str) -> Option<(u64, u64)> {
    let kib = |key: &str| -> Option<u64> {
        let line = text.lines().find(|l| l.starts_with(key))?;
        line[key.len()..]
            .split_ascii_whitespace()
            .next()?
            .parse::<u64>()
            .ok()?
            .checked_mul(1024)
    };
    Some((kib("MemTotal:")?, kib("MemAvailable:")?))
}

/// Received and transmitted bytes over every interface but loopback, from
/// `/proc/net/dev`.
pub fn parse_net_dev(text: &str) -> (u64, u64) {
    let mut rx = 0u64;
    let mut tx = 0u64;
    for line in text.lines().skip(2) {
        let Some((name, counters)) = line.split_once(':') else {
            continue;
        };
        if name.trim() == "lo" {
            continue;
        }
        let c: Vec<u64> = counters
            .split_ascii_whitespace()
            .filter_map(|f| f.parse().ok())
            .collect();
        // Field 0 is received bytes, field 8 transmitted bytes.
        if c.len() >= 9 {
            rx = rx.saturating_add(c[0]);
            tx = tx.saturating_add(c[8]);
        }
    }
    (rx, tx)
}

/// Resident pages (second field) of `/proc/self/statm`.
pub fn parse_statm_resident_pages(text: &str) -> Option<u64> {
    text.split_ascii_whitespace().nth(1)?.parse().ok()
}

/// The latest figures.
#[derive(Clone, Debug, Default, Serialize, PartialEq, utoipa::ToSchema)]
pub struct SystemLoad {
    /// Busy share of all cores, 0–100, over the last sampling interval.
    pub cpu_percent: f64,
    pub cpu_cores: usize,
    pub memory_total_bytes: u64,
    pub memory_available_bytes: u64,
    /// The gateway's own resident memory.
    pub process_rss_bytes: u64,
    /// Network interfaces (loopback excluded), bytes per second.
    pub net_rx_bytes_per_sec: u64,
    pub net_tx_bytes_per_sec: u64,
    /// Media received from cameras / sent to viewers, bytes per second.
    pub bytes_in_per_sec: u64,
    pub bytes_out_per_sec: u64,
}

#[derive(Default)]
struct Previous {
    at: Option<Instant>,
    cpu: Option<CpuTimes>,
    net: (u64, u64),
    media: (u64, u64),
}

/// Keeps the previous raw counters to turn them into rates.
#[derive(Default)]
pub struct SystemSampler {
    state: Mutex<(Previous, SystemLoad)>,
}

/// One reading of every counter (from `/proc` and the media hub).
#[derive(Clone, Copy, Debug, Default)]
pub struct Reading {
    pub cpu: Option<CpuTimes>,
    pub cpu_cores: usize,
    pub memory: Option<(u64, u64)>,
    pub rss_bytes: u64,
    pub net: (u64, u64),
    /// Media bytes in and out since start.
    pub media: (u64, u64),
}

impl Reading {
    /// Reads `/proc` now; `media` are the hub's totals.
    pub fn from_proc(media: (u64, u64)) -> Self {
        let read = |p: &str| std::fs::read_to_string(p).unwrap_or_default();
        let stat = read("/proc/stat");
        // SAFETY: sysconf has no preconditions.
        let page = u64::try_from(unsafe { libc::sysconf(libc::_SC_PAGESIZE) }).unwrap_or(4096);
        Reading {
            cpu: parse_proc_stat(&stat),
            cpu_cores: count_cores(&stat),
            memory: parse_meminfo(&read("/proc/meminfo")),
            rss_bytes: parse_statm_resident_pages(&read("/proc/self/statm")).unwrap_or(0) * page,
            net: parse_net_dev(&read("/proc/net/dev")),
            media,
        }
    }
}

impl SystemSampler {
    /// Takes a reading made at `now` and updates the figures.
    pub fn update(&self, r: Reading, now: Instant) {
        let Ok(mut guard) = self.state.lock() else {
            return;
        };
        let (prev, load) = &mut *guard;
        load.cpu_cores = r.cpu_cores;
        if let Some((total, available)) = r.memory {
            load.memory_total_bytes = total;
            load.memory_available_bytes = available;
        }
        load.process_rss_bytes = r.rss_bytes;
        if let (Some(at), Some(cpu_now)) = (prev.at, r.cpu) {
            if let Some(cpu_before) = prev.cpu {
                let total = cpu_now.total.saturating_sub(cpu_before.total);
                let busy = cpu_now.busy.saturating_sub(cpu_before.busy);
                if total > 0 {
                    load.cpu_percent = (busy as f64 * 1000.0 / total as f64).round() / 10.0;
                }
            }
            let secs = now.saturating_duration_since(at).as_secs_f64();
            if secs > 0.0 {
                let rate = |a: u64, b: u64| (a.saturating_sub(b) as f64 / secs).round() as u64;
                load.net_rx_bytes_per_sec = rate(r.net.0, prev.net.0);
                load.net_tx_bytes_per_sec = rate(r.net.1, prev.net.1);
                load.bytes_in_per_sec = rate(r.media.0, prev.media.0);
                load.bytes_out_per_sec = rate(r.media.1, prev.media.1);
            }
        }
        *prev = Previous {
            at: Some(now),
            cpu: r.cpu,
            net: r.net,
            media: r.media,
        };
    }

    pub fn load(&self) -> SystemLoad {
        self.state.lock().map(|g| g.1.clone()).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn proc_files_parse() {
        let stat = "cpu  100 0 50 800 50 0 0 0 0 0\ncpu0 50 0 25 400 25 0 0 0 0 0\ncpu1 50 0 25 400 25 0 0 0 0 0\nintr 1\n";
        assert_eq!(
            parse_proc_stat(stat),
            Some(CpuTimes {
                busy: 150,
                total: 1000
            })
        );
        assert_eq!(count_cores(stat), 2);
        assert_eq!(parse_proc_stat("cpu  x"), None);
        assert_eq!(parse_proc_stat(""), None);
        let mem = "MemTotal:        2048000 kB\nMemFree:  1 kB\nMemAvailable:    1024000 kB\n";
        assert_eq!(parse_meminfo(mem), Some((2048000 * 1024, 1024000 * 1024)));
        assert_eq!(parse_meminfo("MemTotal: 99999999999999999999 kB"), None);
        let net = "Inter-|   Receive\n face |bytes\n    lo: 500 1 0 0 0 0 0 0 500 1 0 0 0 0 0 0\n  eth0: 1000 10 0 0 0 0 0 0 2000 20 0 0 0 0 0 0\n";
        assert_eq!(parse_net_dev(net), (1000, 2000));
        assert_eq!(
            parse_statm_resident_pages("1000 250 10 1 0 100 0"),
            Some(250)
        );
    }

    #[test]
    fn rates_come_from_two_readings() {
        let s = SystemSampler::default();
        let t0 = Instant::now();
        let r = |busy, total, net, media| Reading {
            cpu: Some(CpuTimes { busy, total }),
            cpu_cores: 2,
            memory: Some((4, 2)),
            rss_bytes: 7,
            net,
            media,
        };
        s.update(r(100, 1000, (0, 0), (0, 0)), t0);
        assert_eq!(s.load().cpu_percent, 0.0);
        s.update(
            r(350, 2000, (2000, 4000), (1000, 3000)),
            t0 + Duration::from_secs(2),
        );
        let l = s.load();
        assert_eq!(l.cpu_percent, 25.0);
        assert_eq!(
            (l.net_rx_bytes_per_sec, l.net_tx_bytes_per_sec),
            (1000, 2000)
        );
        assert_eq!((l.bytes_in_per_sec, l.bytes_out_per_sec), (500, 1500));
        assert_eq!(
            (
                l.memory_total_bytes,
                l.memory_available_bytes,
                l.process_rss_bytes
            ),
            (4, 2, 7)
        );
    }
}
