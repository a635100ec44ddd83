//! RS-485 PTZ bindings (`ptz_serial`).

use rusqlite::{Connection, OptionalExtension, params};
use serde::{Deserialize, Serialize};

use super::StoreError;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum SerialParity {
    None,
    Even,
    Odd,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum PelcoProtocol {
    PelcoD,
    PelcoP,
}

/// How a channel's PTZ head is wired to the box.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SerialBinding {
    /// Serial device path, e.g. `/dev/ttyUSB0`.
    #[schema(pattern = "^/", max_length = 256)]
    pub port: String,
    #[serde(default = "default_baud")]
    #[schema(minimum = 300, maximum = 921_600)]
    pub baud: u32,
    #[serde(default = "default_parity")]
    pub parity: SerialParity,
    pub protocol: PelcoProtocol,
    /// The head's address as set on its DIP switches (1–255).
    #[schema(minimum = 1, maximum = 255)]
    pub address: u8,
}

fn default_baud() -> u32 {
    2400
}

fn default_parity() -> SerialParity {
    SerialParity::None
}

impl SerialBinding {
    /// Checks what the table's constraints would refuse, with a field name.
    pub fn validate(&self) -> Result<(), (&'static str, String)> {
        if self.port.is_empty() || self.port.len() > 256 || !self.port.starts_with('/') {
            return Err(("port", "port must be an absolute device path".into()));
        }
        if !(300..=921_600).contains(&self.baud) {
            return Err(("baud", "baud must be 300-921600".into()));
        }
        if self.address == 0 {
            return Err(("address", "address must be 1-255".into()));
        }
        Ok(())
    }
}

fn parity_str(p: SerialParity) -> &'static str {
    match p {
        SerialParity::None => "none",
        SerialParity::Even => "even",
        SerialParity::Odd => "odd",
    }
}

fn protocol_str(p: PelcoProtocol) -> &'static str {
    match p {
        PelcoProtocol::PelcoD => "pelco_d",
        PelcoProtocol::PelcoP => "pelco_p",
    }
}

pub fn get_serial_binding(
    conn: &Connection,
    device_id: &str,
    channel_id: &str,
) -> Result<Option<SerialBinding>, StoreError> {
    Ok(conn
        .query_row(
            "SELECT port, baud, parity, protocol, address FROM ptz_serial
             WHERE device_id = ?1 AND channel_id = ?2",
            params![device_id, channel_id],
            |r| {
                let parity: String = r.get(2)?;
                let protocol: String = r.get(3)?;
                Ok(SerialBinding {
                    port: r.get(0)?,
                    baud: r.get(1)?,
                    parity: match parity.as_str() {
                        "even" => SerialParity::Even,
                        "odd" => SerialParity::Odd,
                        _ => SerialParity::None,
                    },
                    protocol: if protocol == "pelco_p" {
                        PelcoProtocol::PelcoP
                    } else {
                        PelcoProtocol::PelcoD
                    },
                    address: r.get(4)?,
                })
            },
        )
        .optional()?)
}

pub fn put_serial_binding(
    conn: &Connection,
    device_id: &str,
    channel_id: &str,
    b: &SerialBinding,
) -> Result<(), StoreError> {
    conn.execute(
        "INSERT INTO ptz_serial (device_id, channel_id, port, baud, parity, protocol, address)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
         ON CONFLICT (device_id, channel_id) DO UPDATE SET
           port = excluded.port, baud = excluded.baud, parity = excluded.parity,
           protocol = excluded.protocol, address = excluded.address",
        params![
            device_id,
            channel_id,
            b.port,
            b.baud,
            parity_str(b.parity),
            protocol_str(b.protocol),
            b.address
        ],
    )?;
    Ok(())
}

pub fn delete_serial_binding(
    conn: &Connection,
    device_id: &str,
    channel_id: &str,
) -> Result<bool, StoreError> {
    Ok(conn.execute(
        "DELETE FROM ptz_serial WHERE device_id = ?1 AND channel_id = ?2",
        params![device_id, channel_id],
    )? > 0)
}
