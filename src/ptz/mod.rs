//! One PTZ command model, rendered to GB/T 28181 `PTZCmd` (the 8-byte
//! instruction of GB/T 28181-2016 appendix A.3, carried as 16 hex digits in a
//! `DeviceControl` MESSAGE) and to Pelco-D / Pelco-P frames for heads wired
//! to the box over RS-485. Sans-IO: bytes in, bytes out.

use serde::{Deserialize, Serialize};

pub mod serial;
mod service;
pub use service::{MAX_MOTION, PtzSendError, PtzService, Sent};

/// Pan direction.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Pan {
    Left,
    Right,
}

/// Tilt direction.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Tilt {
    Up,
    Down,
}

/// Zoom direction: `in` = tele, `out` = wide.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Zoom {
    In,
    Out,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Focus {
    Near,
    Far,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Iris {
    Open,
    Close,
}

/// What a PTZ head is told to do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PtzCommand {
    /// Pan/tilt/zoom motion until the next command; speeds 0–255 (pan,
    /// tilt) and 0–15 (zoom). All directions `None` is [`PtzCommand::Stop`].
    Move {
        pan: Option<Pan>,
        tilt: Option<Tilt>,
        zoom: Option<Zoom>,
        pan_speed: u8,
        tilt_speed: u8,
        zoom_speed: u8,
    },
    /// Stops pan, tilt and zoom.
    Stop,
    /// Focus and iris motion; speeds 0–255.
    Lens {
        focus: Option<Focus>,
        iris: Option<Iris>,
        focus_speed: u8,
        iris_speed: u8,
    },
    /// Stops focus and iris.
    LensStop,
    PresetSet(u8),
    PresetCall(u8),
    PresetDelete(u8),
    /// Adds `preset` to cruise route `route`.
    CruiseAdd {
        route: u8,
        preset: u8,
    },
    /// Removes `preset` from the route; preset 0 deletes the whole route.
    CruiseDelete {
        route: u8,
        preset: u8,
    },
    /// Cruise speed (12 bits).
    CruiseSpeed {
        route: u8,
        speed: u16,
    },
    /// Dwell time at each preset, seconds (12 bits).
    CruiseDwell {
        route: u8,
        secs: u16,
    },
    CruiseStart {
        route: u8,
    },
    ScanStart {
        group: u8,
    },
    ScanSetLeft {
        group: u8,
    },
    ScanSetRight {
        group: u8,
    },
    /// Scan speed (12 bits).
    ScanSpeed {
        group: u8,
        speed: u16,
    },
    /// Auxiliary switch; switch 1 is the wiper.
    Aux {
        switch: u8,
        on: bool,
    },
}

/// Why a command cannot be rendered or read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PtzError {
    #[error("{what} out of range: {value} (allowed {min}-{max})")]
    OutOfRange {
        what: &'static str,
        value: u32,
        min: u32,
        max: u32,
    },
    #[error("{protocol} has no equivalent of {command}")]
    Unsupported {
        protocol: &'static str,
        command: &'static str,
    },
    #[error("PTZCmd must be 16 hex digits, got {0:?}")]
    BadHex(String),
    #[error("PTZCmd byte {byte} is {found:#04x}, expected {expected:#04x}")]
    BadByte {
        byte: usize,
        found: u8,
        expected: u8,
    },
    #[error("PTZCmd instruction {0:#04x} is not one camgate knows")]
    UnknownInstruction(u8),
}

fn range(what: &'static str, value: u32, min: u32, max: u32) -> Result<(), PtzError> {
    if value < min || value > max {
        Err(PtzError::OutOfRange {
            what,
            value,
            min,
            max,
        })
    } else {
        Ok(())
    }
}

impl PtzCommand {
    /// Checks the ranges the wire formats can carry.
    pub fn validate(&self) -> Result<(), PtzError> {
        match *self {
            PtzCommand::Move { zoom_speed, .. } => range("zoom speed", zoom_speed.into(), 0, 15),
            PtzCommand::PresetSet(p) | PtzCommand::PresetCall(p) | PtzCommand::PresetDelete(p) => {
                range("preset", p.into(), 1, 255)
            }
            PtzCommand::CruiseAdd { preset, .. } => range("preset", preset.into(), 1, 255),
            PtzCommand::CruiseSpeed { speed, .. } | PtzCommand::ScanSpeed { speed, .. } => {
                range("speed", speed.into(), 0, 0xFFF)
            }
            PtzCommand::CruiseDwell { secs, .. } => range("dwell time", secs.into(), 0, 0xFFF),
            _ => Ok(()),
        }
    }

    /// The 8-byte GB/T 28181 PTZ instruction (appendix A.3). `address` is
    /// the 12-bit device address, whose low byte goes in byte 3 and high
    /// nibble in byte 7; devices take the target from the DeviceID, so
    /// callers pass 1 as other platforms do.
    pub fn to_gb(&self, address: u16) -> Result<[u8; 8], PtzError> {
        self.validate()?;
        let (instruction, data1, data2, data3): (u8, u8, u8, u8) = match *self {
            PtzCommand::Move {
                pan,
                tilt,
                zoom,
                pan_speed,
                tilt_speed,
                zoom_speed,
            } => {
                let mut i = 0u8;
                match zoom {
                    Some(Zoom::Out) => i |= 0x20,
                    Some(Zoom::In) => i |= 0x10,
                    None => {}
                }
                match tilt {
                    Some(Tilt::Up) => i |= 0x08,
                    Some(Tilt::Down) => i |= 0x04,
                    None => {}
                }
                match pan {
                    Some(Pan::Left) => i |= 0x02,
                    Some(Pan::Right) => i |= 0x01,
                    None => {}
                }
                // Speeds of axes that do not move are 0, as in the
                // standard's examples.
                (
                    i,
                    if pan.is_some() { pan_speed } else { 0 },
                    if tilt.is_some() { tilt_speed } else { 0 },
                    if zoom.is_some() { zoom_speed } else { 0 },
                )
            }
            PtzCommand::Stop => (0, 0, 0, 0),
            PtzCommand::Lens {
                focus,
                iris,
                focus_speed,
                iris_speed,
            } => {
                let mut i = 0x40u8;
                match iris {
                    Some(Iris::Close) => i |= 0x08,
                    Some(Iris::Open) => i |= 0x04,
                    None => {}
                }
                match focus {
                    Some(Focus::Near) => i |= 0x02,
                    Some(Focus::Far) => i |= 0x01,
                    None => {}
                }
                (
                    i,
                    if focus.is_some() { focus_speed } else { 0 },
                    if iris.is_some() { iris_speed } else { 0 },
                    0,
                )
            }
            PtzCommand::LensStop => (0x40, 0, 0, 0),
            PtzCommand::PresetSet(p) => (0x81, 0, p, 0),
            PtzCommand::PresetCall(p) => (0x82, 0, p, 0),
            PtzCommand::PresetDelete(p) => (0x83, 0, p, 0),
            PtzCommand::CruiseAdd { route, preset } => (0x84, route, preset, 0),
            PtzCommand::CruiseDelete { route, preset } => (0x85, route, preset, 0),
            // 12-bit values: low 8 bits in byte 6, high 4 in byte 7's high nibble.
            PtzCommand::CruiseSpeed { route, speed } => {
                (0x86, route, speed as u8, (speed >> 8) as u8)
            }
            PtzCommand::CruiseDwell { route, secs } => (0x87, route, secs as u8, (secs >> 8) as u8),
            PtzCommand::CruiseStart { route } => (0x88, route, 0, 0),
            PtzCommand::ScanStart { group } => (0x89, group, 0, 0),
            PtzCommand::ScanSetLeft { group } => (0x89, group, 1, 0),
            PtzCommand::ScanSetRight { group } => (0x89, group, 2, 0),
            PtzCommand::ScanSpeed { group, speed } => {
                (0x8A, group, speed as u8, (speed >> 8) as u8)
            }
            PtzCommand::Aux { switch, on } => (if on { 0x8C } else { 0x8D }, switch, 0, 0),
        };
        let mut b = [0u8; 8];
        b[0] = 0xA5;
        // Version 0 in the high nibble; the low nibble is the check
        // (B1.hi + B1.lo + B2.hi) mod 16 = (0xA + 0x5 + 0) mod 16.
        b[1] = 0x0F;
        b[2] = address as u8;
        b[3] = instruction;
        b[4] = data1;
        b[5] = data2;
        b[6] = ((data3 & 0x0F) << 4) | ((address >> 8) as u8 & 0x0F);
        b[7] = b[..7].iter().fold(0u8, |s, &x| s.wrapping_add(x));
        Ok(b)
    }

    /// [`PtzCommand::to_gb`] as the 16 upper-case hex digits of `<PTZCmd>`.
    pub fn to_gb_hex(&self, address: u16) -> Result<String, PtzError> {
        Ok(crate::util::hex(&self.to_gb(address)?).to_ascii_uppercase())
    }

    /// Reads a `<PTZCmd>` (what a device or the simulator receives).
    pub fn from_gb_hex(hex: &str) -> Result<Self, PtzError> {
        let hex = hex.trim();
        let bad = || PtzError::BadHex(hex.chars().take(32).collect());
        if hex.len() != 16 || !hex.is_ascii() {
            return Err(bad());
        }
        let mut b = [0u8; 8];
        for (i, byte) in b.iter_mut().enumerate() {
            *byte = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).map_err(|_| bad())?;
        }
        Self::from_gb(&b)
    }

    pub fn from_gb(b: &[u8; 8]) -> Result<Self, PtzError> {
        let expect = |byte: usize, expected: u8| {
            if b[byte] == expected {
                Ok(())
            } else {
                Err(PtzError::BadByte {
                    byte: byte + 1,
                    found: b[byte],
                    expected,
                })
            }
        };
        expect(0, 0xA5)?;
        expect(1, 0x0F)?;
        expect(7, b[..7].iter().fold(0u8, |s, &x| s.wrapping_add(x)))?;
        let (i, d1, d2, d3) = (b[3], b[4], b[5], b[6] >> 4);
        let d12 = u16::from(d2) | (u16::from(d3) << 8);
        Ok(match i {
            0 => PtzCommand::Stop,
            0x40 => PtzCommand::LensStop,
            i if i & 0xC0 == 0 => {
                if i & 0x30 == 0x30 || i & 0x0C == 0x0C || i & 0x03 == 0x03 {
                    return Err(PtzError::UnknownInstruction(i));
                }
                PtzCommand::Move {
                    zoom: match i & 0x30 {
                        0x20 => Some(Zoom::Out),
                        0x10 => Some(Zoom::In),
                        _ => None,
                    },
                    tilt: match i & 0x0C {
                        0x08 => Some(Tilt::Up),
                        0x04 => Some(Tilt::Down),
                        _ => None,
                    },
                    pan: match i & 0x03 {
                        0x02 => Some(Pan::Left),
                        0x01 => Some(Pan::Right),
                        _ => None,
                    },
                    pan_speed: d1,
                    tilt_speed: d2,
                    zoom_speed: d3,
                }
            }
            i if i & 0xF0 == 0x40 => {
                if i & 0x0C == 0x0C || i & 0x03 == 0x03 {
                    return Err(PtzError::UnknownInstruction(i));
                }
                PtzCommand::Lens {
                    iris: match i & 0x0C {
                        0x08 => Some(Iris::Close),
                        0x04 => Some(Iris::Open),
                        _ => None,
                    },
                    focus: match i & 0x03 {
                        0x02 => Some(Focus::Near),
                        0x01 => Some(Focus::Far),
                        _ => None,
                    },
                    focus_speed: d1,
                    iris_speed: d2,
                }
            }
            0x81 => PtzCommand::PresetSet(d2),
            0x82 => PtzCommand::PresetCall(d2),
            0x83 => PtzCommand::PresetDelete(d2),
            0x84 => PtzCommand::CruiseAdd {
                route: d1,
                preset: d2,
            },
            0x85 => PtzCommand::CruiseDelete {
                route: d1,
                preset: d2,
            },
            0x86 => PtzCommand::CruiseSpeed {
                route: d1,
                speed: d12,
            },
            0x87 => PtzCommand::CruiseDwell {
                route: d1,
                secs: d12,
            },
            0x88 => PtzCommand::CruiseStart { route: d1 },
            0x89 => match d2 {
                0 => PtzCommand::ScanStart { group: d1 },
                1 => PtzCommand::ScanSetLeft { group: d1 },
                2 => PtzCommand::ScanSetRight { group: d1 },
                _ => return Err(PtzError::UnknownInstruction(i)),
            },
            0x8A => PtzCommand::ScanSpeed {
                group: d1,
                speed: d12,
            },
            0x8C => PtzCommand::Aux {
                switch: d1,
                on: true,
            },
            0x8D => PtzCommand::Aux {
                switch: d1,
                on: false,
            },
            other => return Err(PtzError::UnknownInstruction(other)),
        })
    }

    fn name(&self) -> &'static str {
        match self {
            PtzCommand::Move { .. } => "move",
            PtzCommand::Stop => "stop",
            PtzCommand::Lens { .. } => "focus/iris",
            PtzCommand::LensStop => "focus/iris stop",
            PtzCommand::PresetSet(_) => "preset set",
            PtzCommand::PresetCall(_) => "preset call",
            PtzCommand::PresetDelete(_) => "preset delete",
            PtzCommand::CruiseAdd { .. } => "cruise add",
            PtzCommand::CruiseDelete { .. } => "cruise delete",
            PtzCommand::CruiseSpeed { .. } => "cruise speed",
            PtzCommand::CruiseDwell { .. } => "cruise dwell",
            PtzCommand::CruiseStart { .. } => "cruise start",
            PtzCommand::ScanStart { .. } => "scan start",
            PtzCommand::ScanSetLeft { .. } => "scan left limit",
            PtzCommand::ScanSetRight { .. } => "scan right limit",
            PtzCommand::ScanSpeed { .. } => "scan speed",
            PtzCommand::Aux { .. } => "auxiliary switch",
        }
    }

    /// Bytes 3–6 of a Pelco frame — Pelco-D's cmd1, cmd2, data1, data2;
    /// Pelco-P's data1–data4 — which the two protocols lay out alike except
    /// for the focus and iris bits.
    fn pelco_body(&self, protocol: Pelco) -> Result<[u8; 4], PtzError> {
        self.validate()?;
        // GB speeds are 0–255, Pelco's 0–0x3F.
        let scale = |s: u8| s >> 2;
        let (pan, tilt, zoom, focus, iris, pan_speed, tilt_speed) = match *self {
            PtzCommand::Move {
                pan,
                tilt,
                zoom,
                pan_speed,
                tilt_speed,
                ..
            } => (
                pan,
                tilt,
                zoom,
                None,
                None,
                if pan.is_some() { scale(pan_speed) } else { 0 },
                if tilt.is_some() { scale(tilt_speed) } else { 0 },
            ),
            PtzCommand::Stop | PtzCommand::LensStop => (None, None, None, None, None, 0, 0),
            PtzCommand::Lens { focus, iris, .. } => (None, None, None, focus, iris, 0, 0),
            // Extended commands (Pelco-D/P manuals: first byte 0, odd second).
            PtzCommand::PresetSet(p) => return Ok([0, 0x03, 0, p]),
            PtzCommand::PresetDelete(p) => return Ok([0, 0x05, 0, p]),
            PtzCommand::PresetCall(p) => return Ok([0, 0x07, 0, p]),
            PtzCommand::Aux { switch, on } => {
                return Ok([0, if on { 0x09 } else { 0x0B }, 0, switch]);
            }
            _ => {
                return Err(PtzError::Unsupported {
                    protocol: protocol.name(),
                    command: self.name(),
                });
            }
        };
        let mut b = [0, 0, pan_speed, tilt_speed];
        b[1] |= match zoom {
            Some(Zoom::Out) => 0x40,
            Some(Zoom::In) => 0x20,
            None => 0,
        } | match tilt {
            Some(Tilt::Down) => 0x10,
            Some(Tilt::Up) => 0x08,
            None => 0,
        } | match pan {
            Some(Pan::Left) => 0x04,
            Some(Pan::Right) => 0x02,
            None => 0,
        };
        match protocol {
            // Pelco-D: cmd1 bit2 iris close, bit1 iris open, bit0 focus
            // near; cmd2 bit7 focus far.
            Pelco::D => {
                b[0] |= match iris {
                    Some(Iris::Close) => 0x04,
                    Some(Iris::Open) => 0x02,
                    None => 0,
                };
                match focus {
                    Some(Focus::Near) => b[0] |= 0x01,
                    Some(Focus::Far) => b[1] |= 0x80,
                    None => {}
                }
            }
            // Pelco-P: data1 bit3 iris close, bit2 iris open, bit1 focus
            // near, bit0 focus far.
            Pelco::P => {
                b[0] |= match iris {
                    Some(Iris::Close) => 0x08,
                    Some(Iris::Open) => 0x04,
                    None => 0,
                } | match focus {
                    Some(Focus::Near) => 0x02,
                    Some(Focus::Far) => 0x01,
                    None => 0,
                };
            }
        }
        Ok(b)
    }

    /// The 7-byte Pelco-D frame for the head at `address` (1–255).
    pub fn to_pelco_d(&self, address: u8) -> Result<[u8; 7], PtzError> {
        range("Pelco-D address", address.into(), 1, 255)?;
        let [cmd1, cmd2, data1, data2] = self.pelco_body(Pelco::D)?;
        let mut f = [0xFF, address, cmd1, cmd2, data1, data2, 0];
        // Checksum: bytes 2–6 summed mod 256 (the sync byte is left out).
        f[6] = f[1..6].iter().fold(0u8, |s, &x| s.wrapping_add(x));
        Ok(f)
    }

    /// The 8-byte Pelco-P frame for the head at `address` (1–32 as set on
    /// its DIP switches; the wire carries it zero-based).
    pub fn to_pelco_p(&self, address: u8) -> Result<[u8; 8], PtzError> {
        range("Pelco-P address", address.into(), 1, 255)?;
        let [d1, d2, d3, d4] = self.pelco_body(Pelco::P)?;
        let mut f = [0xA0, address - 1, d1, d2, d3, d4, 0xAF, 0];
        // Checksum: XOR of bytes 1–7 (STX through ETX).
        f[7] = f[..7].iter().fold(0u8, |s, &x| s ^ x);
        Ok(f)
    }
}

#[derive(Clone, Copy)]
enum Pelco {
    D,
    P,
}

impl Pelco {
    fn name(self) -> &'static str {
        match self {
            Pelco::D => "Pelco-D",
            Pelco::P => "Pelco-P",
        }
    }
}

#[cfg(test)]
mod tests;
