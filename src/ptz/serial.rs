//! RS-485 PTZ heads on the box's serial ports: one open port per device path,
//! shared by every channel bound to it (several heads on one bus, told apart
//! by address). A port that fails (unplugged USB adapter) is closed and
//! opened again on the next command.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::AsyncWriteExt;
use tokio_serial::SerialPortBuilderExt;

use crate::store::ptz::{SerialBinding, SerialParity};

/// How long one frame may take to leave (at 2400 baud 8 bytes take 33 ms).
const WRITE_TIMEOUT: Duration = Duration::from_secs(2);

#[derive(Debug, thiserror::Error)]
pub enum SerialError {
    #[error("cannot open serial port {port}: {source}")]
    Open {
        port: String,
        #[source]
        source: tokio_serial::Error,
    },
    #[error("cannot write to serial port {port}: {source}")]
    Write {
        port: String,
        #[source]
        source: std::io::Error,
    },
}

struct OpenPort {
    /// Settings it was opened with; a binding with others reopens it.
    baud: u32,
    parity: SerialParity,
    stream: tokio_serial::SerialStream,
}

#[derive(Default)]
pub struct SerialPorts {
    ports: Mutex<HashMap<String, Arc<tokio::sync::Mutex<Option<OpenPort>>>>>,
}

fn open(b: &SerialBinding) -> Result<OpenPort, SerialError> {
    let parity = match b.parity {
        SerialParity::None => tokio_serial::Parity::None,
        SerialParity::Even => tokio_serial::Parity::Even,
        SerialParity::Odd => tokio_serial::Parity::Odd,
    };
    let stream = tokio_serial::new(&b.port, b.baud)
        .data_bits(tokio_serial::DataBits::Eight)
        .stop_bits(tokio_serial::StopBits::One)
        .flow_control(tokio_serial::FlowControl::None)
        .parity(parity)
        .open_native_async()
        .map_err(|source| SerialError::Open {
            port: b.port.clone(),
            source,
        })?;
    tracing::info!(port = %b.port, baud = b.baud, parity = ?b.parity, "serial port opened");
    Ok(OpenPort {
        baud: b.baud,
        parity: b.parity,
        stream,
    })
}

impl SerialPorts {
    /// Writes one Pelco frame to the binding's port, opening it if needed.
    /// A write that fails closes the port and is tried once more on a fresh
    /// open, so a re-plugged adapter works without anyone noticing.
    pub async fn send(&self, b: &SerialBinding, frame: &[u8]) -> Result<(), SerialError> {
        let slot = self
            .ports
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(b.port.clone())
            .or_default()
            .clone();
        let mut port = slot.lock().await;
        let mut last_error = None;
        for _attempt in 0..2 {
            if port
                .as_ref()
                .is_some_and(|p| p.baud != b.baud || p.parity != b.parity)
            {
                *port = None;
            }
            if port.is_none() {
                *port = Some(open(b)?);
            }
            let Some(p) = port.as_mut() else { continue };
            let written = tokio::time::timeout(WRITE_TIMEOUT, async {
                p.stream.write_all(frame).await?;
                p.stream.flush().await
            })
            .await
            .unwrap_or_else(|_| {
                Err(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    "write timed out",
                ))
            });
            match written {
                Ok(()) => {
                    tracing::debug!(port = %b.port, frame = %crate::util::hex(frame), "Pelco frame sent");
                    return Ok(());
                }
                Err(source) => {
                    tracing::warn!(port = %b.port, error = %source, "serial write failed; reopening the port");
                    *port = None;
                    last_error = Some(source);
                }
            }
        }
        Err(SerialError::Write {
            port: b.port.clone(),
            source: last_error.unwrap_or_else(|| std::io::Error::other("write failed")),
        })
    }
}
