//! Alarm method and type names (gb28181.md §3 "Alarm", the standard's tables
//! as WVP's `DeviceAlarmNotify` carries them).

use super::manscdp::Alarm;

/// `AlarmMethod`: 1 phone, 2 device, 3 SMS, 4 GPS, 5 video, 6 device fault, 7 other.
pub fn method_name(method: u32) -> &'static str {
    match method {
        1 => "phone",
        2 => "device",
        3 => "SMS",
        4 => "GPS",
        5 => "video",
        6 => "device fault",
        7 => "other",
        _ => "unknown method",
    }
}

/// `Info/AlarmType`, whose meaning depends on the method.
pub fn type_name(method: u32, alarm_type: u32) -> Option<&'static str> {
    Some(match (method, alarm_type) {
        (2, 1) => "video loss",
        (2, 2) => "tamper",
        (2, 3) => "disk full",
        (2, 4) => "high temperature",
        (2, 5) => "low temperature",
        (5, 1) => "manual",
        (5, 2) => "motion detection",
        (5, 3) => "left object",
        (5, 4) => "removed object",
        (5, 5) => "tripwire",
        (5, 6) => "intrusion",
        (5, 7) => "wrong direction",
        (5, 8) => "loitering",
        (5, 9) => "flow count",
        (5, 10) => "density",
        (5, 11) => "video abnormal",
        (5, 12) => "fast move",
        (6, 1) => "disk fault",
        (6, 2) => "fan fault",
        _ => return None,
    })
}

/// One line for the event log, e.g. `video alarm: motion detection (priority 1)`.
pub fn describe(a: &Alarm) -> String {
    let method = a.alarm_method.unwrap_or(0);
    let mut s = format!("{} alarm", method_name(method));
    if let Some(t) = a.alarm_type {
        match type_name(method, t) {
            Some(n) => s.push_str(&format!(": {n}")),
            None => s.push_str(&format!(": type {t}")),
        }
    }
    if let Some(p) = a.alarm_priority {
        s.push_str(&format!(" (priority {p})"));
    }
    if let Some(d) = a
        .alarm_description
        .as_deref()
        .filter(|d| !d.trim().is_empty())
    {
        s.push_str(&format!(" — {}", d.trim()));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn describes_alarms() {
        let a = Alarm {
            alarm_priority: Some(1),
            alarm_method: Some(5),
            alarm_type: Some(2),
            alarm_description: Some("door".into()),
            ..Default::default()
        };
        assert_eq!(
            describe(&a),
            "video alarm: motion detection (priority 1) — door"
        );
        let a = Alarm {
            alarm_method: Some(2),
            alarm_type: Some(99),
            ..Default::default()
        };
        assert_eq!(describe(&a), "device alarm: type 99");
        assert_eq!(describe(&Alarm::default()), "unknown method alarm");
    }
}
