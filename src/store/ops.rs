//! Operations on the data directory: the lock that keeps two gateways (or a
//! restore) off one database, online backup, restore, and the checks of
//! `camgate check`.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::{Connection, OpenFlags};

use super::{StoreError, schema_version};

#[derive(Debug, thiserror::Error)]
pub enum OpsError {
    #[error("another camgate is using {0} (stop it first)")]
    Busy(PathBuf),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: {source}")]
    Sql {
        path: PathBuf,
        #[source]
        source: rusqlite::Error,
    },
    #[error(
        "{path} has schema version {found}, newer than this camgate knows ({known}); use a newer camgate to restore it"
    )]
    TooNew {
        path: PathBuf,
        found: usize,
        known: usize,
    },
    #[error("{path} failed the integrity check: {report}")]
    Corrupt { path: PathBuf, report: String },
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// An exclusive lock on a data directory (`camgate.lock`, flock), held for as
/// long as this value lives.
#[derive(Debug)]
pub struct DataDirLock {
    _file: File,
}

impl DataDirLock {
    pub fn acquire(data_dir: &Path) -> Result<Self, OpsError> {
        std::fs::create_dir_all(data_dir).map_err(|source| OpsError::Io {
            path: data_dir.to_owned(),
            source,
        })?;
        let path = data_dir.join("camgate.lock");
        let file = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(|source| OpsError::Io {
                path: path.clone(),
                source,
            })?;
        lock_exclusive(&file).map_err(|e| {
            if e.kind() == std::io::ErrorKind::WouldBlock {
                OpsError::Busy(data_dir.to_owned())
            } else {
                OpsError::Io { path, source: e }
            }
        })?;
        Ok(Self { _file: file })
    }
}

#[cfg(unix)]
fn lock_exclusive(file: &File) -> std::io::Result<()> {
    use std::os::fd::AsRawFd;
    // SAFETY: flock on a file descriptor we own; no memory is shared.
    let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
    if rc == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

#[cfg(not(unix))]
fn lock_exclusive(_file: &File) -> std::io::Result<()> {
    Ok(())
}

fn sql(path: &Path) -> impl Fn(rusqlite::Error) -> OpsError + '_ {
    move |source| OpsError::Sql {
        path: path.to_owned(),
        source,
    }
}

fn integrity(conn: &Connection, path: &Path) -> Result<(), OpsError> {
    let report: String = conn
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .map_err(sql(path))?;
    if report == "ok" {
        Ok(())
    } else {
        Err(OpsError::Corrupt {
            path: path.to_owned(),
            report,
        })
    }
}

fn user_version(conn: &Connection, path: &Path) -> Result<usize, OpsError> {
    conn.query_row("PRAGMA user_version", [], |r| r.get::<_, i64>(0))
        .map(|v| v.max(0) as usize)
        .map_err(sql(path))
}

/// What a backup or restore copied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CopyInfo {
    pub schema_version: usize,
    pub pages: i32,
}

/// Copies the database at `db` into the new file `dest` with SQLite's online
/// backup API: consistent while the gateway keeps running and writing.
pub fn backup(db: &Path, dest: &Path) -> Result<CopyInfo, OpsError> {
    if dest.exists() {
        return Err(OpsError::Io {
            path: dest.to_owned(),
            source: std::io::Error::new(std::io::ErrorKind::AlreadyExists, "file exists"),
        });
    }
    let src = Connection::open_with_flags(db, OpenFlags::SQLITE_OPEN_READ_ONLY).map_err(sql(db))?;
    src.busy_timeout(Duration::from_secs(10)).map_err(sql(db))?;
    let mut out = Connection::open(dest).map_err(sql(dest))?;
    let pages = {
        let b = rusqlite::backup::Backup::new(&src, &mut out).map_err(sql(dest))?;
        b.run_to_completion(256, Duration::from_millis(5), None)
            .map_err(sql(dest))?;
        b.progress().pagecount
    };
    integrity(&out, dest)?;
    Ok(CopyInfo {
        schema_version: user_version(&out, dest)?,
        pages,
    })
}

/// Replaces the database in `data_dir` with `src` (a backup). Refuses while
/// a gateway runs on the directory, a backup from a newer camgate, and a
/// damaged file. An older schema is upgraded by the next start.
pub fn restore(src: &Path, data_dir: &Path) -> Result<CopyInfo, OpsError> {
    let _lock = DataDirLock::acquire(data_dir)?;
    let from =
        Connection::open_with_flags(src, OpenFlags::SQLITE_OPEN_READ_ONLY).map_err(sql(src))?;
    let found = user_version(&from, src)?;
    if found > schema_version() {
        return Err(OpsError::TooNew {
            path: src.to_owned(),
            found,
            known: schema_version(),
        });
    }
    integrity(&from, src)?;
    let db = data_dir.join("camgate.db");
    let mut to = Connection::open(&db).map_err(sql(&db))?;
    let pages = {
        let b = rusqlite::backup::Backup::new(&from, &mut to).map_err(sql(&db))?;
        b.run_to_completion(256, Duration::from_millis(0), None)
            .map_err(sql(&db))?;
        b.progress().pagecount
    };
    to.pragma_update(None, "wal_checkpoint", "TRUNCATE")
        .map_err(sql(&db))?;
    integrity(&to, &db)?;
    Ok(CopyInfo {
        schema_version: found,
        pages,
    })
}

/// `PRAGMA integrity_check` and the schema version of an existing database.
pub fn check_database(db: &Path) -> Result<usize, OpsError> {
    let conn =
        Connection::open_with_flags(db, OpenFlags::SQLITE_OPEN_READ_ONLY).map_err(sql(db))?;
    integrity(&conn, db)?;
    let found = user_version(&conn, db)?;
    if found > schema_version() {
        return Err(OpsError::TooNew {
            path: db.to_owned(),
            found,
            known: schema_version(),
        });
    }
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{Store, TokenRole, db};

    #[test]
    fn backup_restore_and_refusals() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        let store = Store::open_in_dir(&data).unwrap();
        store
            .call_sync(|c| {
                db::insert_token(c, "kept", "tok-0123456789abcdefghijklmn", TokenRole::Admin)
                    .map(|_| ())
            })
            .unwrap();
        // Online: the store stays open while the backup runs.
        let copy = dir.path().join("backup.db");
        let info = backup(&data.join("camgate.db"), &copy).unwrap();
        assert_eq!(info.schema_version, schema_version());
        assert!(
            backup(&data.join("camgate.db"), &copy).is_err(),
            "never overwrites"
        );

        // Restore while "running" (lock held) is refused.
        let lock = DataDirLock::acquire(&data).unwrap();
        assert!(matches!(restore(&copy, &data), Err(OpsError::Busy(_))));
        drop(lock);
        store.close().unwrap();

        let fresh = dir.path().join("fresh");
        restore(&copy, &fresh).unwrap();
        let restored = Store::open_in_dir(&fresh).unwrap();
        let tokens = restored.call_sync(|c| db::list_tokens(c)).unwrap();
        assert_eq!(tokens[0].name, "kept");
        restored.close().unwrap();
        assert_eq!(
            check_database(&fresh.join("camgate.db")).unwrap(),
            schema_version()
        );

        // A backup from a newer camgate is refused, the data untouched.
        let newer = dir.path().join("newer.db");
        std::fs::copy(&copy, &newer).unwrap();
        Connection::open(&newer)
            .unwrap()
            .pragma_update(None, "user_version", 999)
            .unwrap();
        assert!(matches!(
            restore(&newer, &fresh),
            Err(OpsError::TooNew { found: 999, .. })
        ));
        assert!(check_database(&fresh.join("camgate.db")).is_ok());
        // Not a database at all.
        let junk = dir.path().join("junk.db");
        std::fs::write(&junk, b"this is not sqlite at all, not even close").unwrap();
        assert!(restore(&junk, &fresh).is_err());
        assert!(check_database(&fresh.join("camgate.db")).is_ok());
    }
}
