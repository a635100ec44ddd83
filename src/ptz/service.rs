//! Sends PTZ commands to the channel's head and stops motion the caller
//! asked to be bounded: a browser that goes away in the middle of a
//! press-and-hold must not leave a camera spinning.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::PtzCommand;
use crate::gb::{GbError, Platform};

/// The longest motion a single command may ask for before the gateway stops
/// it; also the stop applied to motion sent without a duration.
pub const MAX_MOTION: Duration = Duration::from_secs(60);

pub struct PtzService {
    gb: Arc<Platform>,
    /// Per channel, a counter bumped by every command, so a pending
    /// automatic stop knows whether a newer command replaced its motion.
    generations: Mutex<HashMap<(String, String), u64>>,
}

fn is_motion(cmd: &PtzCommand) -> bool {
    matches!(cmd, PtzCommand::Move { .. } | PtzCommand::Lens { .. })
}

impl PtzService {
    pub fn new(gb: Arc<Platform>) -> Arc<Self> {
        Arc::new(Self {
            gb,
            generations: Mutex::default(),
        })
    }

    /// Sends `cmd`; for motion, schedules the matching stop after
    /// `duration` (at most [`MAX_MOTION`], which also applies when none is
    /// given) unless another command for the channel comes first.
    pub async fn send(
        self: &Arc<Self>,
        device_id: &str,
        channel_id: &str,
        cmd: PtzCommand,
        duration: Option<Duration>,
    ) -> Result<(), GbError> {
        let key = (device_id.to_owned(), channel_id.to_owned());
        let generation = {
            let mut g = self.generations.lock().unwrap_or_else(|e| e.into_inner());
            let n = g.entry(key.clone()).or_default();
            *n += 1;
            *n
        };
        self.gb.ptz(device_id, channel_id, &cmd).await?;
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
                match this.gb.ptz(device_id, channel_id, &stop).await {
                    Ok(()) => tracing::info!(
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
        Ok(())
    }
}
