use proptest::prelude::*;

use super::*;

fn mv(pan: Option<Pan>, tilt: Option<Tilt>, zoom: Option<Zoom>, speed: u8, zs: u8) -> PtzCommand {
    PtzCommand::Move {
        pan,
        tilt,
        zoom,
        pan_speed: speed,
        tilt_speed: speed,
        zoom_speed: zs,
    }
}

fn lens(focus: Option<Focus>, iris: Option<Iris>, speed: u8) -> PtzCommand {
    PtzCommand::Lens {
        focus,
        iris,
        focus_speed: speed,
        iris_speed: speed,
    }
}

/// Every worked example of ../shared/docs/gb28181.md §4.
#[test]
fn gb_ptzcmd_matches_the_worked_examples() {
    let cases = [
        (PtzCommand::Stop, "A50F0100000000B5"),
        (
            mv(Some(Pan::Right), None, None, 0x80, 0),
            "A50F010180000036",
        ),
        (mv(None, Some(Tilt::Up), None, 0x40, 0), "A50F0108004000FD"),
        (
            mv(Some(Pan::Left), Some(Tilt::Up), None, 0x50, 0),
            "A50F010A5050005F",
        ),
        (mv(None, None, Some(Zoom::In), 0, 5), "A50F011000005015"),
        (mv(None, None, Some(Zoom::Out), 0, 5), "A50F012000005025"),
        (PtzCommand::PresetSet(1), "A50F018100010037"),
        (PtzCommand::PresetCall(3), "A50F01820003003A"),
        (PtzCommand::PresetDelete(1), "A50F018300010039"),
        (lens(Some(Focus::Far), None, 0x80), "A50F014180000076"),
        (lens(None, Some(Iris::Open), 0x80), "A50F014400800079"),
        (PtzCommand::LensStop, "A50F0140000000F5"),
    ];
    for (cmd, hex) in cases {
        assert_eq!(cmd.to_gb_hex(1).unwrap(), hex, "{cmd:?}");
        // And back: what a device (or the simulator) reads.
        let back = PtzCommand::from_gb_hex(hex).unwrap();
        assert_eq!(back.to_gb_hex(1).unwrap(), hex, "{back:?}");
    }
}

#[test]
fn gb_twelve_bit_values_split_across_bytes_6_and_7() {
    let b = PtzCommand::CruiseDwell {
        route: 2,
        secs: 0x123,
    }
    .to_gb(1)
    .unwrap();
    assert_eq!(b[3], 0x87);
    assert_eq!(b[4], 2);
    assert_eq!(b[5], 0x23);
    assert_eq!(b[6], 0x10);
    let b = PtzCommand::ScanSetRight { group: 1 }.to_gb(1).unwrap();
    assert_eq!(&b[3..6], &[0x89, 1, 2]);
    let b = PtzCommand::Aux {
        switch: 1,
        on: true,
    }
    .to_gb(1)
    .unwrap();
    assert_eq!(&b[3..5], &[0x8C, 1]);
    // A 12-bit address puts its high nibble in byte 7's low nibble.
    let b = PtzCommand::Stop.to_gb(0x3FF).unwrap();
    assert_eq!((b[2], b[6]), (0xFF, 0x03));
}

#[test]
fn gb_bad_input_is_refused_not_panicked_on() {
    for bad in [
        "",
        "A50F01",
        "A50F0100000000B6", // checksum
        "A40F0100000000B4", // first byte
        "A50F0103000000B8", // left and right at once
        "A50F01FF000000B3", // no such instruction
        "ZZ0F0100000000B5",
        "A50F0100000000B5FF",
        "é50F0100000000B5",
    ] {
        assert!(PtzCommand::from_gb_hex(bad).is_err(), "{bad}");
    }
    assert!(PtzCommand::PresetCall(0).to_gb(1).is_err());
    assert!(mv(None, None, Some(Zoom::In), 0, 16).to_gb(1).is_err());
    assert!(
        PtzCommand::CruiseSpeed {
            route: 1,
            speed: 0x1000
        }
        .to_gb(1)
        .is_err()
    );
}

/// Pelco-D: `FF addr cmd1 cmd2 data1 data2 sum(2..6)` (the published layout).
#[test]
fn pelco_d_frames_match_the_published_layout() {
    let cases: [(PtzCommand, [u8; 7]); 9] = [
        // ../shared/docs/gb28181.md §4 examples.
        (
            mv(Some(Pan::Right), None, None, 0x80, 0),
            [0xFF, 0x01, 0x00, 0x02, 0x20, 0x00, 0x23],
        ),
        (PtzCommand::Stop, [0xFF, 0x01, 0x00, 0x00, 0x00, 0x00, 0x01]),
        (
            PtzCommand::PresetCall(5),
            [0xFF, 0x01, 0x00, 0x07, 0x00, 0x05, 0x0D],
        ),
        // Camera manuals' command tables.
        (
            mv(Some(Pan::Left), Some(Tilt::Up), None, 0xFC, 0),
            [0xFF, 0x01, 0x00, 0x0C, 0x3F, 0x3F, 0x8B],
        ),
        (
            mv(None, Some(Tilt::Down), None, 0x40, 0),
            [0xFF, 0x01, 0x00, 0x10, 0x00, 0x10, 0x21],
        ),
        (
            mv(None, None, Some(Zoom::In), 0, 3),
            [0xFF, 0x01, 0x00, 0x20, 0x00, 0x00, 0x21],
        ),
        (
            lens(Some(Focus::Near), None, 1),
            [0xFF, 0x01, 0x01, 0x00, 0x00, 0x00, 0x02],
        ),
        (
            lens(Some(Focus::Far), None, 1),
            [0xFF, 0x01, 0x00, 0x80, 0x00, 0x00, 0x81],
        ),
        (
            PtzCommand::PresetSet(1),
            [0xFF, 0x01, 0x00, 0x03, 0x00, 0x01, 0x05],
        ),
    ];
    for (cmd, frame) in cases {
        assert_eq!(cmd.to_pelco_d(1).unwrap(), frame, "{cmd:?}");
    }
    assert!(PtzCommand::Stop.to_pelco_d(0).is_err());
    assert!(matches!(
        PtzCommand::CruiseStart { route: 1 }.to_pelco_d(1),
        Err(PtzError::Unsupported { .. })
    ));
}

/// Pelco-P: `A0 addr-1 data1 data2 data3 data4 AF xor(1..7)`.
#[test]
fn pelco_p_frames_match_the_published_layout() {
    let cases: [(PtzCommand, [u8; 8]); 6] = [
        (
            mv(None, Some(Tilt::Up), None, 0x80, 0),
            [0xA0, 0x00, 0x00, 0x08, 0x00, 0x20, 0xAF, 0x27],
        ),
        (
            mv(None, None, Some(Zoom::In), 0, 3),
            [0xA0, 0x00, 0x00, 0x20, 0x00, 0x00, 0xAF, 0x2F],
        ),
        (
            PtzCommand::PresetCall(1),
            [0xA0, 0x00, 0x00, 0x07, 0x00, 0x01, 0xAF, 0x09],
        ),
        (
            lens(Some(Focus::Far), None, 1),
            [0xA0, 0x00, 0x01, 0x00, 0x00, 0x00, 0xAF, 0x0E],
        ),
        (
            PtzCommand::Stop,
            [0xA0, 0x00, 0x00, 0x00, 0x00, 0x00, 0xAF, 0x0F],
        ),
        (
            mv(Some(Pan::Right), None, None, 0x80, 0),
            [0xA0, 0x02, 0x00, 0x02, 0x20, 0x00, 0xAF, 0x2F],
        ),
    ];
    for (i, (cmd, frame)) in cases.into_iter().enumerate() {
        let address = if i == 5 { 3 } else { 1 };
        assert_eq!(cmd.to_pelco_p(address).unwrap(), frame, "{cmd:?}");
    }
}

fn any_command() -> impl Strategy<Value = PtzCommand> {
    let pan = prop_oneof![Just(None), Just(Some(Pan::Left)), Just(Some(Pan::Right))];
    let tilt = prop_oneof![Just(None), Just(Some(Tilt::Up)), Just(Some(Tilt::Down))];
    let zoom = prop_oneof![Just(None), Just(Some(Zoom::In)), Just(Some(Zoom::Out))];
    let focus = prop_oneof![Just(None), Just(Some(Focus::Near)), Just(Some(Focus::Far))];
    let iris = prop_oneof![Just(None), Just(Some(Iris::Open)), Just(Some(Iris::Close))];
    prop_oneof![
        (pan, tilt, zoom, any::<u8>(), any::<u8>(), 0u8..16).prop_map(
            |(pan, tilt, zoom, ps, ts, zs)| PtzCommand::Move {
                pan,
                tilt,
                zoom,
                pan_speed: ps,
                tilt_speed: ts,
                zoom_speed: zs,
            }
        ),
        (focus, iris, any::<u8>(), any::<u8>()).prop_map(|(focus, iris, fs, is)| {
            PtzCommand::Lens {
                focus,
                iris,
                focus_speed: fs,
                iris_speed: is,
            }
        }),
        (1u8..=255).prop_map(PtzCommand::PresetCall),
        (1u8..=255).prop_map(PtzCommand::PresetSet),
        (1u8..=255).prop_map(PtzCommand::PresetDelete),
        (any::<u8>(), 1u8..=255)
            .prop_map(|(route, preset)| PtzCommand::CruiseAdd { route, preset }),
        (any::<u8>(), any::<u8>())
            .prop_map(|(route, preset)| PtzCommand::CruiseDelete { route, preset }),
        (any::<u8>(), 0u16..0x1000)
            .prop_map(|(route, speed)| PtzCommand::CruiseSpeed { route, speed }),
        (any::<u8>(), 0u16..0x1000)
            .prop_map(|(route, secs)| PtzCommand::CruiseDwell { route, secs }),
        any::<u8>().prop_map(|route| PtzCommand::CruiseStart { route }),
        any::<u8>().prop_map(|group| PtzCommand::ScanStart { group }),
        any::<u8>().prop_map(|group| PtzCommand::ScanSetLeft { group }),
        any::<u8>().prop_map(|group| PtzCommand::ScanSetRight { group }),
        (any::<u8>(), 0u16..0x1000)
            .prop_map(|(group, speed)| PtzCommand::ScanSpeed { group, speed }),
        (any::<u8>(), any::<bool>()).prop_map(|(switch, on)| PtzCommand::Aux { switch, on }),
        Just(PtzCommand::Stop),
        Just(PtzCommand::LensStop),
    ]
}

/// What the wire keeps of a command: speeds of axes that do not move are
/// not sent, and a move without directions is a stop.
fn normalised(c: PtzCommand) -> PtzCommand {
    match c {
        PtzCommand::Move {
            pan: None,
            tilt: None,
            zoom: None,
            ..
        } => PtzCommand::Stop,
        PtzCommand::Move {
            pan,
            tilt,
            zoom,
            pan_speed,
            tilt_speed,
            zoom_speed,
        } => PtzCommand::Move {
            pan,
            tilt,
            zoom,
            pan_speed: if pan.is_some() { pan_speed } else { 0 },
            tilt_speed: if tilt.is_some() { tilt_speed } else { 0 },
            zoom_speed: if zoom.is_some() { zoom_speed } else { 0 },
        },
        PtzCommand::Lens {
            focus: None,
            iris: None,
            ..
        } => PtzCommand::LensStop,
        PtzCommand::Lens {
            focus,
            iris,
            focus_speed,
            iris_speed,
        } => PtzCommand::Lens {
            focus,
            iris,
            focus_speed: if focus.is_some() { focus_speed } else { 0 },
            iris_speed: if iris.is_some() { iris_speed } else { 0 },
        },
        other => other,
    }
}

proptest! {
    #[test]
    fn gb_round_trips(cmd in any_command(), address in 0u16..0x1000) {
        let hex = cmd.to_gb_hex(address).unwrap();
        prop_assert_eq!(PtzCommand::from_gb_hex(&hex).unwrap(), normalised(cmd));
        let bytes = cmd.to_gb(address).unwrap();
        prop_assert_eq!(u16::from(bytes[2]) | (u16::from(bytes[6] & 0x0F) << 8), address);
    }

    #[test]
    fn pelco_frames_are_well_formed(cmd in any_command(), address in 1u8..=255) {
        match (cmd.to_pelco_d(address), cmd.to_pelco_p(address)) {
            (Ok(d), Ok(p)) => {
                prop_assert_eq!(d[0], 0xFF);
                prop_assert_eq!(d[1], address);
                prop_assert_eq!(d[6], d[1..6].iter().fold(0u8, |s, &x| s.wrapping_add(x)));
                // Pan/tilt speeds stay in Pelco's 0–0x3F (extended commands,
                // odd cmd2, carry a preset or switch number instead).
                if d[3] & 1 == 0 {
                    prop_assert!(d[4] <= 0x3F && d[5] <= 0x3F);
                }
                prop_assert_eq!((p[0], p[1], p[6]), (0xA0, address - 1, 0xAF));
                prop_assert_eq!(p[7], p[..7].iter().fold(0u8, |s, &x| s ^ x));
                // The direction bits of both protocols agree (cmd2 == data2).
                prop_assert_eq!(d[3] & 0x7E, p[3] & 0x7E);
            }
            (Err(PtzError::Unsupported { .. }), Err(PtzError::Unsupported { .. })) => {}
            other => prop_assert!(false, "unexpected {:?}", other),
        }
    }
}
