//! Sends PTZ commands to the channel's head — over RS-485 (Pelco-D/P) when
//! the channel is bound to a serial port, else as GB28181 DeviceControl —
//! and stops motion the caller asked to be bounded: a browser that goes away
//! in the middle of a press-and-hold must not leave a camera spinning.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::serial::{SerialError, SerialPorts};
use super::{PtzCommand, PtzError};
use crate::gb::{GbError, Platform};
use crate::store::ptz::{PelcoProtocol, SerialBinding};
use crate::store::{Store, StoreError, db};

/// The longest motion a single command may ask for before the gateway stops
/// it; also the stop applied to motion sent without a duration.
pub const MAX_MOTION: Duration = Duration::from_secs(60);

#[derive(Debug, thiserror::Error)]
pub enum PtzSendError {
    #[error(transparent)]
    Command(#[from] PtzError),
    #[error(transparent)]
    Gb(#[from] GbError),
    #[error(transparent)]
    Serial(#[from] SerialError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Where a command went.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
#[serde(tag = "via", rename_all = "snake_case")]
pub enum Sent {
    /// GB28181 DeviceControl with this PTZCmd.
    Gb28181 { ptz_cmd: String },
    /// A Pelco frame (hex) on a serial port.
    Serial { port: String, frame: String },
}

pub struct PtzService {
    gb: Arc<Platform>,
    store: Store,
    serial: SerialPorts,
    /// Per channel, a counter bumped by every command, so a pending
    /// automatic stop knows whether a newer command replaced its motion.
    generations: Mutex<HashMap<(String, String), u64>>,
}

fn is_motion(cmd: &PtzCommand) -> bool {
    matches!(cmd, PtzCommand::Move { .. } | PtzCommand::Lens { .. })
}

impl PtzService {
    pub fn new(gb: Arc<Platform>, store: Store) -> Arc<Self> {
        Arc::new(Self {
            gb,
            store,
            serial: SerialPorts::default(),
            generations: Mutex::default(),
        })
    }

    /// The serial binding of a channel, if any.
    pub async fn binding(
        &self,
        device_id: &str,
        channel_id: &str,
    ) -> Result<Option<SerialBinding>, StoreError> {
        let (d, c) = (device_id.to_owned(), channel_id.to_owned());
        self.store
            .call(move |conn| db::get_serial_binding(conn, &d, &c))
            .await
    }

    async fn dispatch(
        &self,
        device_id: &str,
        channel_id: &str,
        cmd: &PtzCommand,
    ) -> Result<Sent, PtzSendError> {
        match self.binding(device_id, channel_id).await? {
            Some(b) => {
                let frame = match b.protocol {
                    PelcoProtocol::PelcoD => cmd.to_pelco_d(b.address)?.to_vec(),
                    PelcoProtocol::PelcoP => cmd.to_pelco_p(b.address)?.to_vec(),
                };
                self.serial.send(&b, &frame).await?;
                Ok(Sent::Serial {
                    port: b.port,
                    frame: crate::util::hex(&frame).to_ascii_uppercase(),
                })
            }
            None => {
                let ptz_cmd = cmd.to_gb_hex(1)?;
                self.gb.ptz(device_id, channel_id, cmd).await?;
                Ok(Sent::Gb28181 { ptz_cmd })
            }
        }
    }

    /// Sends `cmd`; for motion, schedules the matching stop after
    /// `duration` (at most [`MAX_MOTION`], which also applies when none is
    /// given) unless another command for the channel comes first — a preset
    /// call or a new move replaces the motion, and its own stop is its own.
    pub async fn send(
        self: &Arc<Self>,
        device_id: &str,
        channel_id: &str,
        cmd: PtzCommand,
        duration: Option<Duration>,
    ) -> Result<Sent, PtzSendError> {
        cmd.validate()?;
        let key = (device_id.to_owned(), channel_id.to_owned());
        let generation = {
            let mut g = self.generations.lock().unwrap_or_else(|e| e.into_inner());
            let n = g.entry(key.clone()).or_default();
            *n += 1;
            *n
        };
        let sent = self.dispatch(device_id, channel_id, &cmd).await?;
        if is_motion(&cmd) {
            let after = duration.unwrap_or(MAX_MOTION).min(MAX_MOTION);
            let stop = match cmd {
                PtzCommand::Lens { .. } => PtzCommand::LensStop,
                _ => PtzCommand::Stop,
            };
            let this = self.clone();
            tokio::spawn(async move {
                tokio::time::sleep(after).await;
                let current = this
                    .generations
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .get(&key)
                    .copied();
                if current != Some(generation) {
                    return;
                }
                let (device_id, channel_id) = (&key.0, &key.1);
                match this.dispatch(device_id, channel_id, &stop).await {
                    Ok(_) => tracing::info!(
                        device_id,
                        channel_id,
                        after_ms = after.as_millis() as u64,
                        "PTZ motion stopped by the gateway"
                    ),
                    Err(e) => {
                        tracing::warn!(device_id, channel_id, error = %e, "PTZ automatic stop failed")
                    }
                }
            });
        }
        Ok(sent)
    }
}
