//! RTSP sources.

use rusqlite::{Connection, OptionalExtension, Row, params};
use serde::{Deserialize, Serialize};

use super::{StoreError, unix_now};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Transport {
    /// RTP interleaved on the RTSP connection (RFC 2326 §10.12).
    #[default]
    Tcp,
    Udp,
}

impl Transport {
    pub fn as_str(self) -> &'static str {
        match self {
            Transport::Tcp => "tcp",
            Transport::Udp => "udp",
        }
    }

    fn parse(s: &str) -> Self {
        if s == "udp" {
            Transport::Udp
        } else {
            Transport::Tcp
        }
    }
}

/// A stored RTSP source. `url` never holds credentials.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SourceRecord {
    pub name: String,
    pub url: String,
    pub username: Option<String>,
    pub password: Option<String>,
    pub transport: Transport,
    pub on_demand: bool,
    pub enabled: bool,
    pub created_at: i64,
    pub updated_at: i64,
}

const COLUMNS: &str =
    "name, url, username, password, transport, on_demand, enabled, created_at, updated_at";

fn from_row(r: &Row<'_>) -> rusqlite::Result<SourceRecord> {
    Ok(SourceRecord {
        name: r.get(0)?,
        url: r.get(1)?,
        username: r.get(2)?,
        password: r.get(3)?,
        transport: Transport::parse(&r.get::<_, String>(4)?),
        on_demand: r.get(5)?,
        enabled: r.get(6)?,
        created_at: r.get(7)?,
        updated_at: r.get(8)?,
    })
}

pub fn list(conn: &Connection) -> Result<Vec<SourceRecord>, StoreError> {
    let mut stmt = conn.prepare(&format!("SELECT {COLUMNS} FROM rtsp_sources ORDER BY name"))?;
    let rows = stmt.query_map([], from_row)?;
    Ok(rows.collect::<Result<_, _>>()?)
}

pub fn get(conn: &Connection, name: &str) -> Result<Option<SourceRecord>, StoreError> {
    Ok(conn
        .query_row(
            &format!("SELECT {COLUMNS} FROM rtsp_sources WHERE name = ?1"),
            [name],
            from_row,
        )
        .optional()?)
}

/// Inserts a new source; a name already in use is a [`StoreError::Conflict`].
pub fn insert(conn: &Connection, s: &SourceRecord) -> Result<SourceRecord, StoreError> {
    let now = unix_now();
    let n = conn.execute(
        "INSERT INTO rtsp_sources (name, url, username, password, transport, on_demand, enabled, created_at, updated_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?8) ON CONFLICT (name) DO NOTHING",
        params![s.name, s.url, s.username, s.password, s.transport.as_str(), s.on_demand, s.enabled, now],
    )?;
    if n == 0 {
        return Err(StoreError::Conflict(format!(
            "source {:?} already exists",
            s.name
        )));
    }
    get(conn, &s.name)?.ok_or_else(|| StoreError::Worker("inserted source vanished".into()))
}

pub fn update(conn: &Connection, s: &SourceRecord) -> Result<Option<SourceRecord>, StoreError> {
    let n = conn.execute(
        "UPDATE rtsp_sources SET url = ?2, username = ?3, password = ?4, transport = ?5,
         on_demand = ?6, enabled = ?7, updated_at = ?8 WHERE name = ?1",
        params![
            s.name,
            s.url,
            s.username,
            s.password,
            s.transport.as_str(),
            s.on_demand,
            s.enabled,
            unix_now()
        ],
    )?;
    if n == 0 {
        return Ok(None);
    }
    get(conn, &s.name)
}

pub fn delete(conn: &Connection, name: &str) -> Result<bool, StoreError> {
    Ok(conn.execute("DELETE FROM rtsp_sources WHERE name = ?1", [name])? > 0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Store;

    fn record(name: &str) -> SourceRecord {
        SourceRecord {
            name: name.into(),
            url: "rtsp://10.0.0.2/stream".into(),
            username: Some("admin".into()),
            password: Some("secret".into()),
            transport: Transport::Udp,
            on_demand: true,
            enabled: true,
            created_at: 0,
            updated_at: 0,
        }
    }

    #[test]
    fn crud() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open_in_dir(dir.path()).unwrap();
        store
            .call_sync(|c| {
                let a = insert(c, &record("a"))?;
                assert_eq!(a.transport, Transport::Udp);
                assert!(a.created_at > 0);
                assert!(matches!(
                    insert(c, &record("a")),
                    Err(StoreError::Conflict(_))
                ));
                let mut b = record("b");
                insert(c, &b)?;
                b.on_demand = false;
                assert!(!update(c, &b)?.unwrap().on_demand);
                assert_eq!(list(c)?.len(), 2);
                assert!(delete(c, "a")?);
                assert!(!delete(c, "a")?);
                assert!(get(c, "a")?.is_none());
                assert!(update(c, &record("zzz"))?.is_none());
                Ok(())
            })
            .unwrap();
    }
}
