//! Small helpers without a better home.

use std::time::{SystemTime, UNIX_EPOCH};

/// Formats a time as RFC 3339 in UTC with second precision, e.g.
/// `2026-11-24T09:15:11Z`.
pub fn rfc3339(t: SystemTime) -> String {
    let secs = match t.duration_since(UNIX_EPOCH) {
        Ok(d) => d.as_secs() as i64,
        Err(e) => -(e.duration().as_secs() as i64),
    };
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        (rem % 3600) / 60,
        rem % 60
    )
}

/// Days since 1970-01-01 to (year, month, day), proleptic Gregorian
/// (H. Hinnant's `civil_from_days`).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// The local time zone's offset from UTC at `t`, in seconds, from the C
/// library (`/etc/localtime` or `TZ`). 0 if it cannot be read.
pub fn local_utc_offset_secs(t: SystemTime) -> i64 {
    let secs = t
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as libc::time_t);
    // SAFETY: localtime_r only writes into the `tm` we pass and reads `secs`;
    // both live for the call. A zeroed `tm` is a valid value of the C struct.
    unsafe {
        let mut tm: libc::tm = std::mem::zeroed();
        if libc::localtime_r(&secs, &mut tm).is_null() {
            return 0;
        }
        tm.tm_gmtoff
    }
}

/// The `Date` value GB28181 platforms send in a 200 to REGISTER so devices set
/// their clocks: local time with milliseconds and no zone,
/// `2024-05-01T12:00:00.123` (gb28181.md §2, WVP `GbSipDate`).
pub fn gb_sip_date(t: SystemTime, utc_offset_secs: i64) -> String {
    let d = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = d.as_secs() as i64 + utc_offset_secs;
    let (y, m, day) = civil_from_days(secs.div_euclid(86_400));
    let rem = secs.rem_euclid(86_400);
    format!(
        "{y:04}-{m:02}-{day:02}T{:02}:{:02}:{:02}.{:03}",
        rem / 3600,
        (rem % 3600) / 60,
        rem % 60,
        d.subsec_millis()
    )
}

/// Days since 1970-01-01 of a proleptic Gregorian date (inverse of
/// `civil_from_days`; H. Hinnant's algorithm).
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let mp = i64::from(if m > 2 { m - 3 } else { m + 9 });
    let doy = (153 * mp + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// MANSCDP times (`YYYY-MM-DDTHH:MM:SS`, local, no zone; a space instead of
/// `T` and trailing fractions seen in the field are accepted) as Unix
/// seconds, given the local offset from UTC.
pub fn parse_gb_time(s: &str, utc_offset_secs: i64) -> Option<i64> {
    let s = s.trim();
    let b = s.as_bytes();
    if b.len() < 19 || !s.is_char_boundary(19) || !matches!(b[10], b'T' | b' ') {
        return None;
    }
    let num = |r: std::ops::Range<usize>| -> Option<u32> {
        let t = &s[r];
        t.bytes()
            .all(|c| c.is_ascii_digit())
            .then(|| t.parse().ok())?
    };
    let (y, mo, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (h, mi, se) = (num(11..13)?, num(14..16)?, num(17..19)?);
    if b[4] != b'-' || b[7] != b'-' || b[13] != b':' || b[16] != b':' {
        return None;
    }
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || se > 60 {
        return None;
    }
    let days = days_from_civil(i64::from(y), mo, d);
    Some(days * 86_400 + i64::from(h * 3600 + mi * 60 + se) - utc_offset_secs)
}

/// Unix seconds as MANSCDP local time `YYYY-MM-DDTHH:MM:SS`.
pub fn gb_time(unix: i64, utc_offset_secs: i64) -> String {
    let secs = unix + utc_offset_secs;
    let (y, m, day) = civil_from_days(secs.div_euclid(86_400));
    let rem = secs.rem_euclid(86_400);
    format!(
        "{y:04}-{m:02}-{day:02}T{:02}:{:02}:{:02}",
        rem / 3600,
        (rem % 3600) / 60,
        rem % 60
    )
}

/// `n` random bytes from the OS, hex-encoded.
pub fn random_hex(n: usize) -> Result<String, getrandom::Error> {
    let mut buf = vec![0u8; n];
    getrandom::fill(&mut buf)?;
    Ok(hex(&buf))
}

pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(DIGITS[usize::from(b >> 4)] as char);
        s.push(DIGITS[usize::from(b & 15)] as char);
    }
    s
}

/// The last `LATENCY_WINDOW` samples.
#[derive(Clone, Debug, Default)]
pub struct LatencyWindow {
    samples: Vec<u32>,
    next: usize,
}

const LATENCY_WINDOW: usize = 1000;

impl LatencyWindow {
    pub fn add(&mut self, us: u32) {
        if self.samples.len() < LATENCY_WINDOW {
            self.samples.push(us);
        } else {
            self.samples[self.next] = us;
        }
        self.next = (self.next + 1) % LATENCY_WINDOW;
    }

    /// (p50, p99) of the samples, if any.
    pub fn percentiles(&self) -> Option<(u64, u64)> {
        if self.samples.is_empty() {
            return None;
        }
        let mut v = self.samples.clone();
        v.sort_unstable();
        let at = |q: f64| u64::from(v[((v.len() - 1) as f64 * q).round() as usize]);
        Some((at(0.5), at(0.99)))
    }
}

/// Compares two secrets in time that depends only on their lengths.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Limits on failed logins from one address.
#[derive(Debug, Clone, Copy)]
pub struct FailureLimits {
    /// Failures within `window` that block the address.
    pub max_failures: u32,
    pub window: std::time::Duration,
    /// How long a blocked address stays blocked.
    pub block_for: std::time::Duration,
    /// Addresses tracked at once (memory bound under a distributed attack).
    pub max_tracked: usize,
}

impl Default for FailureLimits {
    fn default() -> Self {
        Self {
            max_failures: 5,
            window: std::time::Duration::from_secs(60),
            block_for: std::time::Duration::from_secs(60),
            max_tracked: 10_000,
        }
    }
}

struct FailureRecord {
    first: std::time::Instant,
    count: u32,
    blocked_until: Option<std::time::Instant>,
}

/// Counts failed logins per address and blocks an address after too many
/// (sans-IO: the caller passes the time). Used by the HTTP login and the
/// RTSP server.
pub struct FailureLimiter {
    limits: FailureLimits,
    records: std::collections::HashMap<std::net::IpAddr, FailureRecord>,
}

impl FailureLimiter {
    pub fn new(limits: FailureLimits) -> Self {
        Self {
            limits,
            records: std::collections::HashMap::new(),
        }
    }

    /// Forgets records whose window and block have passed.
    pub fn prune(&mut self, now: std::time::Instant) {
        let l = self.limits;
        self.records.retain(|_, f| {
            f.blocked_until.is_some_and(|u| now < u)
                || now.saturating_duration_since(f.first) < l.window
        });
    }

    /// How much longer `ip` is refused, if it is.
    pub fn blocked_for(
        &self,
        ip: std::net::IpAddr,
        now: std::time::Instant,
    ) -> Option<std::time::Duration> {
        let until = self.records.get(&ip)?.blocked_until?;
        (now < until).then(|| until - now)
    }

    /// Counts a failure; `true` if `ip` is now blocked.
    pub fn failed(&mut self, ip: std::net::IpAddr, now: std::time::Instant) -> bool {
        let l = self.limits;
        if !self.records.contains_key(&ip) && self.records.len() >= l.max_tracked {
            self.prune(now);
            if self.records.len() >= l.max_tracked {
                // Still full: this try is refused anyway, memory stays bounded.
                return false;
            }
        }
        let f = self.records.entry(ip).or_insert(FailureRecord {
            first: now,
            count: 0,
            blocked_until: None,
        });
        if now.saturating_duration_since(f.first) >= l.window {
            *f = FailureRecord {
                first: now,
                count: 0,
                blocked_until: None,
            };
        }
        f.count += 1;
        if f.count >= l.max_failures {
            f.blocked_until = Some(now + l.block_for);
            true
        } else {
            false
        }
    }

    /// A success forgets the address's failures.
    pub fn succeeded(&mut self, ip: std::net::IpAddr) {
        self.records.remove(&ip);
    }

    /// Addresses tracked now.
    pub fn tracked(&self) -> usize {
        self.records.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn gb_times_round_trip() {
        for (unix, off) in [(0, 0), (1_795_511_711, 8 * 3600), (951_782_400, -5 * 3600)] {
            let text = gb_time(unix, off);
            assert_eq!(parse_gb_time(&text, off), Some(unix), "{text}");
        }
        assert_eq!(gb_time(1_795_511_711, 8 * 3600), "2026-11-24T17:15:11");
        assert_eq!(
            parse_gb_time("2026-11-24 17:15:11.5", 8 * 3600),
            Some(1_795_511_711)
        );
        for bad in [
            "",
            "2026-11-24",
            "2026-13-01T00:00:00",
            "2026-11-24T24:00:00",
            "20261124T171511xxxx",
            "2026-11-2４T17:15:11",
        ] {
            assert_eq!(parse_gb_time(bad, 0), None, "{bad}");
        }
    }

    #[test]
    fn formats_known_instants() {
        assert_eq!(rfc3339(UNIX_EPOCH), "1970-01-01T00:00:00Z");
        let t = UNIX_EPOCH + Duration::from_secs(1_795_511_711);
        assert_eq!(rfc3339(t), "2026-11-24T09:15:11Z");
        let leap = UNIX_EPOCH + Duration::from_secs(951_782_400);
        assert_eq!(rfc3339(leap), "2000-02-29T00:00:00Z");
    }

    #[test]
    fn gb_sip_date_is_local_with_millis_and_no_zone() {
        let t = UNIX_EPOCH + Duration::from_millis(1_795_511_711_042);
        assert_eq!(gb_sip_date(t, 0), "2026-11-24T09:15:11.042");
        assert_eq!(gb_sip_date(t, 8 * 3600), "2026-11-24T17:15:11.042");
        assert_eq!(gb_sip_date(t, -10 * 3600), "2026-11-23T23:15:11.042");
    }

    #[test]
    fn random_hex_has_requested_length() {
        let a = random_hex(16).unwrap();
        assert_eq!(a.len(), 32);
        assert_ne!(a, random_hex(16).unwrap());
    }

    #[test]
    fn failure_limiter_blocks_then_forgets() {
        use std::net::{IpAddr, Ipv4Addr};
        use std::time::{Duration, Instant};
        let mut l = FailureLimiter::new(FailureLimits {
            max_tracked: 2,
            ..Default::default()
        });
        let a = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1));
        let t0 = Instant::now();
        for i in 0..4 {
            assert!(!l.failed(a, t0 + Duration::from_secs(i)));
        }
        assert_eq!(l.blocked_for(a, t0), None);
        assert!(l.failed(a, t0 + Duration::from_secs(4)));
        assert_eq!(
            l.blocked_for(a, t0 + Duration::from_secs(5)),
            Some(Duration::from_secs(59))
        );
        assert_eq!(l.blocked_for(a, t0 + Duration::from_secs(64)), None);
        // Failures spread wider than the window never block.
        let b = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 2));
        for i in 0..10 {
            assert!(!l.failed(b, t0 + Duration::from_secs(i * 20)));
        }
        // The table is bounded.
        let c = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 3));
        assert!(!l.failed(c, t0 + Duration::from_secs(10)));
        assert_eq!(l.tracked(), 2);
        l.succeeded(b);
        assert_eq!(l.tracked(), 1);
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"ab"));
    }
}
