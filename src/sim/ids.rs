//! GB28181 ids of the simulated devices and channels (gb28181.md §1: the
//! 20-digit code `CCCCCCCC II TTT N SSSSSS`).
//!
//! Devices are `<14-digit prefix><6-digit counter>`, counting from 1. Channels
//! keep the prefix's centre, industry and network digits, take type code 131
//! (camera) and a serial counted across all devices, so every id is unique.

use super::SimError;

/// Type code of the channels (gb28181.md §1: 131 camera).
pub const CHANNEL_TYPE: &str = "131";
/// The 6-digit serial part limits the ids we can make.
pub const MAX_SERIAL: usize = 999_999;

/// The ids of one simulated device.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeviceIds {
    pub device_id: String,
    pub channel_ids: Vec<String>,
}

/// Ids for `devices` devices of `channels` channels each.
pub fn make_ids(prefix: &str, devices: usize, channels: usize) -> Result<Vec<DeviceIds>, SimError> {
    let bad = |reason: String| SimError::Config {
        what: "--device-prefix/--devices/--channels",
        reason,
    };
    if prefix.len() != 14 || !prefix.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad(format!(
            "device prefix {prefix:?} must be 14 digits (20-digit id minus the 6-digit counter)"
        )));
    }
    if &prefix[10..13] == CHANNEL_TYPE {
        return Err(bad(format!(
            "device prefix {prefix:?} has type code {CHANNEL_TYPE}, the channels' own: ids would collide"
        )));
    }
    if devices == 0 || channels == 0 {
        return Err(bad("at least one device and one channel are needed".into()));
    }
    let total = devices.saturating_mul(channels);
    if devices > MAX_SERIAL || total > MAX_SERIAL {
        return Err(bad(format!(
            "{devices} devices × {channels} channels exceed the {MAX_SERIAL} serial numbers of a 20-digit id"
        )));
    }
    let channel_prefix = format!("{}{CHANNEL_TYPE}{}", &prefix[..10], &prefix[13..14]);
    Ok((0..devices)
        .map(|d| DeviceIds {
            device_id: format!("{prefix}{:06}", d + 1),
            channel_ids: (0..channels)
                .map(|c| format!("{channel_prefix}{:06}", d * channels + c + 1))
                .collect(),
        })
        .collect())
}

/// The display name of channel `index` (0-based): `通道01`, `通道02`, …
pub fn channel_name(index: usize) -> String {
    format!("通道{:02}", index + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_20_digits_and_unique() {
        let ids = make_ids("34020000001320", 3, 2).unwrap();
        assert_eq!(ids[0].device_id, "34020000001320000001");
        assert_eq!(ids[2].device_id, "34020000001320000003");
        assert_eq!(
            ids[0].channel_ids,
            ["34020000001310000001", "34020000001310000002"]
        );
        assert_eq!(ids[2].channel_ids[1], "34020000001310000006");
        let mut all: Vec<&String> = ids
            .iter()
            .flat_map(|d| std::iter::once(&d.device_id).chain(&d.channel_ids))
            .collect();
        assert!(all.iter().all(|i| i.len() == 20));
        let n = all.len();
        all.sort();
        all.dedup();
        assert_eq!(all.len(), n);
        assert_eq!(channel_name(0), "通道01");
        assert_eq!(channel_name(99), "通道100");
    }

    #[test]
    fn bad_prefixes_and_counts() {
        assert!(make_ids("3402000000132", 1, 1).is_err());
        assert!(make_ids("3402000000132x", 1, 1).is_err());
        assert!(
            make_ids("34020000001310", 1, 1).is_err(),
            "type 131 collides"
        );
        assert!(make_ids("34020000001320", 0, 1).is_err());
        assert!(make_ids("34020000001320", 1000, 1000).is_err());
    }
}
