//! The embedded database: SQLite in WAL mode, schema evolved only by the
//! numbered files in `migrations/`, typed queries per table.
//!
//! One connection serves the whole process (the box has a handful of writers at
//! most); calls run on tokio's blocking pool so a slow SD card never stalls the
//! async runtime.

pub mod gb;
pub mod ops;
pub mod ptz;
mod settings;
mod sources;
mod tokens;
mod users;
pub mod webhooks;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use rusqlite::Connection;
use rusqlite_migration::{M, Migrations};

pub use settings::{MediaSettings, NetworkSettings, SipSettings};
pub use sources::{SourceRecord, Transport};
pub use tokens::{DIGEST_REALM, TokenInfo, TokenRole, hash_token};
pub use users::{SessionLifetime, SessionOwner, UserChange, UserInfo};

/// The schema, one entry per file in `migrations/`, in order. Never edit a
/// released entry: add a new file.
const MIGRATION_FILES: &[&str] = &[
    include_str!("../../migrations/0001_sources_settings.sql"),
    include_str!("../../migrations/0002_api_tokens.sql"),
    include_str!("../../migrations/0003_gb28181.sql"),
    include_str!("../../migrations/0004_gb_media.sql"),
    include_str!("../../migrations/0005_token_digest.sql"),
    include_str!("../../migrations/0006_ptz_serial.sql"),
    include_str!("../../migrations/0007_event_ack.sql"),
    include_str!("../../migrations/0008_webhooks.sql"),
    include_str!("../../migrations/0009_users_sessions.sql"),
];

pub fn migrations() -> Migrations<'static> {
    Migrations::new(MIGRATION_FILES.iter().map(|sql| M::up(sql)).collect())
}

/// The schema version this binary writes.
pub fn schema_version() -> usize {
    MIGRATION_FILES.len()
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database {path}: {source}")]
    Open {
        path: PathBuf,
        #[source]
        source: rusqlite::Error,
    },
    #[error(
        "database {path} has schema version {found}, newer than this camgate knows ({known}); refusing to touch it"
    )]
    TooNew {
        path: PathBuf,
        found: usize,
        known: usize,
    },
    #[error("database migration failed: {0}")]
    Migration(#[from] rusqlite_migration::Error),
    #[error("database query failed: {0}")]
    Sql(#[from] rusqlite::Error),
    #[error("{0}")]
    Conflict(String),
    #[error("database worker failed: {0}")]
    Worker(String),
    #[error("cannot create {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

#[derive(Clone)]
pub struct Store {
    conn: Arc<Mutex<Option<Connection>>>,
    path: PathBuf,
}

pub(crate) fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

fn user_version(conn: &Connection) -> Result<usize, rusqlite::Error> {
    conn.query_row("PRAGMA user_version", [], |r| r.get::<_, i64>(0))
        .map(|v| v.max(0) as usize)
}

impl Store {
    /// Opens (creating if needed) the database in `data_dir` and brings its
    /// schema up to date.
    pub fn open_in_dir(data_dir: &Path) -> Result<Self, StoreError> {
        std::fs::create_dir_all(data_dir).map_err(|source| StoreError::Io {
            path: data_dir.to_owned(),
            source,
        })?;
        Self::open(&data_dir.join("camgate.db"))
    }

    pub fn open(path: &Path) -> Result<Self, StoreError> {
        let open_err = |source| StoreError::Open {
            path: path.to_owned(),
            source,
        };
        let existed = path.exists();
        let mut conn = Connection::open(path).map_err(open_err)?;
        if !existed {
            restrict_permissions(path);
        }
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(open_err)?;
        conn.pragma_update(None, "synchronous", "NORMAL")
            .map_err(open_err)?;
        conn.pragma_update(None, "foreign_keys", "ON")
            .map_err(open_err)?;
        conn.busy_timeout(std::time::Duration::from_secs(5))
            .map_err(open_err)?;
        let found = user_version(&conn).map_err(open_err)?;
        if found > schema_version() {
            return Err(StoreError::TooNew {
                path: path.to_owned(),
                found,
                known: schema_version(),
            });
        }
        migrations().to_latest(&mut conn)?;
        if found < schema_version() {
            tracing::info!(path = %path.display(), from = found, to = schema_version(), "database schema upgraded");
        }
        Ok(Self {
            conn: Arc::new(Mutex::new(Some(conn))),
            path: path.to_owned(),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Runs `f` with the connection on the blocking pool.
    pub async fn call<R, F>(&self, f: F) -> Result<R, StoreError>
    where
        R: Send + 'static,
        F: FnOnce(&mut Connection) -> Result<R, StoreError> + Send + 'static,
    {
        let conn = self.conn.clone();
        tokio::task::spawn_blocking(move || {
            let mut guard = conn.lock().unwrap_or_else(|e| e.into_inner());
            let c = guard
                .as_mut()
                .ok_or_else(|| StoreError::Worker("database is closed".into()))?;
            f(c)
        })
        .await
        .map_err(|e| StoreError::Worker(e.to_string()))?
    }

    /// Runs `f` with the connection on the current thread (CLI, start-up).
    pub fn call_sync<R>(
        &self,
        f: impl FnOnce(&mut Connection) -> Result<R, StoreError>,
    ) -> Result<R, StoreError> {
        let mut guard = self.conn.lock().unwrap_or_else(|e| e.into_inner());
        let c = guard
            .as_mut()
            .ok_or_else(|| StoreError::Worker("database is closed".into()))?;
        f(c)
    }

    /// Checkpoints the WAL into the main file and closes the connection. Later
    /// calls fail with "database is closed".
    pub fn close(&self) -> Result<(), StoreError> {
        let mut guard = self.conn.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(conn) = guard.take() {
            conn.pragma_update(None, "wal_checkpoint", "TRUNCATE")?;
            conn.close().map_err(|(_, e)| StoreError::Sql(e))?;
            tracing::info!(path = %self.path.display(), "database closed");
        }
        Ok(())
    }
}

#[cfg(unix)]
fn restrict_permissions(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    // Source passwords must be kept in clear for RTSP digest auth: keep the
    // file readable by the service user only.
    if let Err(e) = std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)) {
        tracing::warn!(path = %path.display(), error = %e, "cannot restrict database permissions");
    }
}

#[cfg(not(unix))]
fn restrict_permissions(_path: &Path) {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn migrations_are_valid() {
        migrations().validate().unwrap();
    }

    #[test]
    fn refuses_a_newer_schema() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db");
        {
            let c = Connection::open(&path).unwrap();
            c.pragma_update(None, "user_version", 999).unwrap();
        }
        let err = Store::open(&path).err().unwrap();
        assert!(
            matches!(err, StoreError::TooNew { found: 999, .. }),
            "{err}"
        );
    }

    #[test]
    fn close_checkpoints_and_later_calls_fail_cleanly() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open_in_dir(dir.path()).unwrap();
        store.close().unwrap();
        assert!(store.call_sync(|_| Ok(())).is_err());
        // WAL truncated to zero on close.
        let wal = dir.path().join("camgate.db-wal");
        assert!(!wal.exists() || std::fs::metadata(&wal).unwrap().len() == 0);
    }
}

/// Typed queries, grouped by table.
pub mod db {
    pub use super::gb::*;
    pub use super::ptz::{delete_serial_binding, get_serial_binding, put_serial_binding};
    pub use super::settings::{
        MEDIA_KEY, NETWORK_KEY, SIP_KEY, get as get_setting, put as put_setting,
    };
    pub use super::sources::{
        delete as delete_source, get as get_source, insert as insert_source, list as list_sources,
        update as update_source,
    };
    pub use super::tokens::{
        count as count_tokens, delete as delete_token,
        digest_candidates as token_digest_candidates, generate as generate_token,
        insert as insert_token, list as list_tokens, touch as touch_token, verify as verify_token,
    };
    pub use super::users::{
        SessionInfo, SessionLifetime, SessionOwner, UserChange, UserInfo, count_users,
        delete_session, delete_user, delete_user_sessions, get_user, insert_session, insert_user,
        list_users, session, set_own_password, update_user, user_by_name, user_password_hash,
    };
    pub use super::webhooks::{
        Delivery, Webhook, delete_webhook, due_deliveries, get_webhook, insert_webhook,
        list_deliveries, list_webhooks, queue_delivery, record_attempt,
    };
}
