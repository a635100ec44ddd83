//! Runtime settings kept in the `settings` table as JSON values by key. A
//! stored value overrides the configuration file.

use rusqlite::{Connection, OptionalExtension, params};
use serde::{Deserialize, Serialize, de::DeserializeOwned};

use super::{StoreError, unix_now};

/// Media behaviour an operator may change at run time.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MediaSettings {
    /// Seconds an on-demand source keeps running after its last viewer left.
    pub on_demand_grace_secs: u64,
    /// Seconds a new viewer waits for the first frame before getting an error.
    pub start_timeout_secs: u64,
}

pub const MEDIA_KEY: &str = "media";

pub fn get<T: DeserializeOwned>(conn: &Connection, key: &str) -> Result<Option<T>, StoreError> {
    let v: Option<String> = conn
        .query_row("SELECT value FROM settings WHERE key = ?1", [key], |r| {
            r.get(0)
        })
        .optional()?;
    match v {
        None => Ok(None),
        Some(s) => match serde_json::from_str(&s) {
            Ok(v) => Ok(Some(v)),
            Err(e) => {
                // A value written by another version: fall back to the
                // configuration rather than refusing to start.
                tracing::warn!(key, error = %e, "ignoring unreadable stored setting");
                Ok(None)
            }
        },
    }
}

pub fn put<T: Serialize>(conn: &Connection, key: &str, value: &T) -> Result<(), StoreError> {
    let json = serde_json::to_string(value).map_err(|e| StoreError::Worker(e.to_string()))?;
    conn.execute(
        "INSERT INTO settings (key, value, updated_at) VALUES (?1, ?2, ?3)
         ON CONFLICT (key) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at",
        params![key, json, unix_now()],
    )?;
    Ok(())
}
