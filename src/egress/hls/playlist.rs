//! Media playlist writer (RFC 8216bis, draft-pantos-hls-rfc8216bis-15) and the
//! blocking-reload check.
//!
//! Tags: §4.4.1.1 EXTM3U, §4.4.1.2 EXT-X-VERSION, §4.4.3.1
//! EXT-X-TARGETDURATION, §4.4.3.2 EXT-X-MEDIA-SEQUENCE, §4.4.3.8
//! EXT-X-SERVER-CONTROL, §4.4.3.7 EXT-X-PART-INF, §4.4.4.5 EXT-X-MAP, §4.4.4.1
//! EXTINF, §4.4.4.6 EXT-X-PROGRAM-DATE-TIME, §4.4.4.9 EXT-X-PART, §4.4.5.3
//! EXT-X-PRELOAD-HINT, §4.4.3.4 EXT-X-ENDLIST; blocking reload §6.2.5.2.

use std::fmt::Write as _;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::{INIT_URI, Segmenter, part_uri, segment_uri};

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PlaylistOptions {
    /// Write the LL-HLS tags (server control, parts, preload hint). Without
    /// it the playlist is a plain live (or VOD with `end_list`) playlist.
    pub low_latency: bool,
    /// Append EXT-X-ENDLIST (the stream ended).
    pub end_list: bool,
    /// Wall-clock time of the stream's first keyframe: enables
    /// EXT-X-PROGRAM-DATE-TIME on every segment.
    pub program_date_time: Option<SystemTime>,
    /// Appended as `?{query}` to every URI in the playlist, so a viewer
    /// token given with the playlist request reaches segments and parts
    /// (players resolve relative URIs without the playlist's query).
    pub uri_query: Option<String>,
}

/// Answer to a blocking playlist reload (`_HLS_msn`, `_HLS_part`, RFC 8216bis
/// §6.2.5.2).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BlockingReload {
    /// The playlist already holds the requested segment/part: answer now.
    Ready,
    /// Hold the request until the next segment or part is complete.
    Wait,
    /// More than two segments ahead of the last one: answer 400 at once.
    TooFar,
}

impl Segmenter {
    /// The media playlist for the current window.
    pub fn playlist(&self, opts: &PlaylistOptions) -> String {
        write(self, opts)
    }

    /// Whether the playlist contains segment `msn` (with `part`: partial
    /// segment `part` of it) or a later one (RFC 8216bis §6.2.5.2).
    pub fn blocking_status(&self, msn: u64, part: Option<u32>) -> BlockingReload {
        if self.init().is_none() {
            return if msn > 1 {
                BlockingReload::TooFar
            } else {
                BlockingReload::Wait
            };
        }
        let open = self.next_msn();
        // "the last Media Segment in the current Playlist" + 2.
        if msn > open.saturating_add(1) {
            return BlockingReload::TooFar;
        }
        if msn < open {
            return BlockingReload::Ready;
        }
        match part {
            Some(p) if msn == open && (p as usize) < self.open_parts().len() => {
                BlockingReload::Ready
            }
            _ => BlockingReload::Wait,
        }
    }
}

fn secs(d: f64) -> String {
    format!("{d:.5}")
}

fn write(seg: &Segmenter, opts: &PlaylistOptions) -> String {
    let cfg = seg.config();
    let part_target = cfg.part_duration.as_secs_f64();
    let target = seg.target_duration_secs();
    let mut out = String::with_capacity(2048);
    out.push_str("#EXTM3U\n");
    // Version 6+ for EXT-X-MAP without I-frames-only; LL-HLS tags are fine at 9.
    let version = if opts.low_latency { 9 } else { 7 };
    let _ = writeln!(out, "#EXT-X-VERSION:{version}");
    let _ = writeln!(out, "#EXT-X-TARGETDURATION:{target}");
    if opts.low_latency {
        // PART-HOLD-BACK: at least twice PART-TARGET, three times recommended
        // (§4.4.3.8, Apple LL-HLS).
        let _ = writeln!(
            out,
            "#EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES,PART-HOLD-BACK={}",
            secs(3.0 * part_target)
        );
        let _ = writeln!(out, "#EXT-X-PART-INF:PART-TARGET={}", secs(part_target));
    }
    let _ = writeln!(out, "#EXT-X-MEDIA-SEQUENCE:{}", seg.media_sequence());
    if seg.init().is_none() {
        return out;
    }
    let q = opts
        .uri_query
        .as_deref()
        .map_or(String::new(), |q| format!("?{q}"));
    let _ = writeln!(out, "#EXT-X-MAP:URI=\"{INIT_URI}{q}\"");
    let write_parts = |out: &mut String, msn: u64, parts: &[super::PartInfo]| {
        for (i, p) in parts.iter().enumerate() {
            let _ = write!(
                out,
                "#EXT-X-PART:DURATION={},URI=\"{}{q}\"",
                secs(p.duration),
                part_uri(msn, i as u32)
            );
            out.push_str(if p.independent {
                ",INDEPENDENT=YES\n"
            } else {
                "\n"
            });
        }
    };
    for s in seg.segments() {
        if let Some(t0) = opts.program_date_time {
            let at = t0 + Duration::from_secs_f64(s.start.max(0.0));
            let _ = writeln!(out, "#EXT-X-PROGRAM-DATE-TIME:{}", iso8601(at));
        }
        if opts.low_latency {
            write_parts(&mut out, s.msn, &s.parts);
        }
        let _ = writeln!(out, "#EXTINF:{},", secs(s.duration));
        let _ = writeln!(out, "{}{q}", segment_uri(s.msn));
    }
    if opts.low_latency && !opts.end_list {
        write_parts(&mut out, seg.next_msn(), seg.open_parts());
        if let Some((msn, part)) = seg.next_part() {
            let _ = writeln!(
                out,
                "#EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"{}{q}\"",
                part_uri(msn, part)
            );
        }
    }
    if opts.end_list {
        out.push_str("#EXT-X-ENDLIST\n");
    }
    out
}

/// `YYYY-MM-DDThh:mm:ss.sssZ` (RFC 3339), UTC.
fn iso8601(t: SystemTime) -> String {
    let d = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = d.as_secs() as i64;
    let millis = d.subsec_millis();
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    // Civil from days (H. Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{millis:03}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

#[cfg(test)]
mod unit {
    use super::*;

    #[test]
    fn iso8601_formats_utc() {
        let t = UNIX_EPOCH + Duration::from_millis(1_700_000_000_123);
        assert_eq!(iso8601(t), "2023-11-14T22:13:20.123Z");
    }
}
