//! Webhooks and their deliveries (`webhooks`, `webhook_deliveries`).

use rusqlite::{Connection, OptionalExtension, params};
use serde::Serialize;

use super::StoreError;

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// Deliveries kept; older ones are pruned.
const MAX_DELIVERIES: i64 = 10_000;

#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
pub struct Webhook {
    pub id: i64,
    pub url: String,
    /// Never returned by the API; kept here for signing.
    #[serde(skip)]
    pub secret: String,
    /// Event kinds delivered (`*` = all).
    pub events: Vec<String>,
    pub enabled: bool,
    pub created_at: i64,
}

impl Webhook {
    pub fn wants(&self, kind: &str) -> bool {
        self.enabled && self.events.iter().any(|e| e == "*" || e == kind)
    }
}

fn webhook_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Webhook> {
    let events: String = r.get(3)?;
    Ok(Webhook {
        id: r.get(0)?,
        url: r.get(1)?,
        secret: r.get(2)?,
        events: events.split(',').map(str::to_owned).collect(),
        enabled: r.get(4)?,
        created_at: r.get(5)?,
    })
}

pub fn insert_webhook(
    conn: &Connection,
    url: &str,
    secret: &str,
    events: &[String],
) -> Result<Webhook, StoreError> {
    conn.execute(
        "INSERT INTO webhooks (url, secret, events, enabled, created_at) VALUES (?1, ?2, ?3, 1, ?4)",
        params![url, secret, events.join(","), now_ms() / 1000],
    )?;
    let id = conn.last_insert_rowid();
    get_webhook(conn, id)?.ok_or_else(|| StoreError::Worker("inserted webhook vanished".into()))
}

pub fn get_webhook(conn: &Connection, id: i64) -> Result<Option<Webhook>, StoreError> {
    Ok(conn
        .query_row(
            "SELECT id, url, secret, events, enabled, created_at FROM webhooks WHERE id = ?1",
            [id],
            webhook_row,
        )
        .optional()?)
}

pub fn list_webhooks(conn: &Connection) -> Result<Vec<Webhook>, StoreError> {
    let mut st = conn
        .prepare("SELECT id, url, secret, events, enabled, created_at FROM webhooks ORDER BY id")?;
    let rows = st.query_map([], webhook_row)?;
    Ok(rows.collect::<Result<_, _>>()?)
}

pub fn delete_webhook(conn: &Connection, id: i64) -> Result<bool, StoreError> {
    Ok(conn.execute("DELETE FROM webhooks WHERE id = ?1", [id])? > 0)
}

#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
pub struct Delivery {
    pub id: i64,
    pub webhook_id: i64,
    pub event: String,
    #[serde(skip)]
    pub payload: String,
    /// `pending`, `delivered` or `failed`.
    pub state: String,
    pub attempts: u32,
    pub last_status: Option<u16>,
    pub last_error: Option<String>,
    pub next_attempt_at: i64,
    pub created_at: i64,
    pub delivered_at: Option<i64>,
}

const DELIVERY_COLUMNS: &str = "id, webhook_id, event, payload, state, attempts, last_status, \
     last_error, next_attempt_at, created_at, delivered_at";

fn delivery_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Delivery> {
    Ok(Delivery {
        id: r.get(0)?,
        webhook_id: r.get(1)?,
        event: r.get(2)?,
        payload: r.get(3)?,
        state: r.get(4)?,
        attempts: r.get(5)?,
        last_status: r.get(6)?,
        last_error: r.get(7)?,
        next_attempt_at: r.get(8)?,
        created_at: r.get(9)?,
        delivered_at: r.get(10)?,
    })
}

pub fn queue_delivery(
    conn: &Connection,
    webhook_id: i64,
    event: &str,
    payload: &str,
) -> Result<i64, StoreError> {
    let now = now_ms();
    conn.execute(
        "INSERT INTO webhook_deliveries (webhook_id, event, payload, state, next_attempt_at, created_at)
         VALUES (?1, ?2, ?3, 'pending', ?4, ?4)",
        params![webhook_id, event, payload, now],
    )?;
    let id = conn.last_insert_rowid();
    if id % 500 == 0 {
        conn.execute(
            "DELETE FROM webhook_deliveries WHERE id <= ?1 AND state != 'pending'",
            [id - MAX_DELIVERIES],
        )?;
    }
    Ok(id)
}

/// Pending deliveries due now, oldest first.
pub fn due_deliveries(conn: &Connection, limit: u32) -> Result<Vec<Delivery>, StoreError> {
    let mut st = conn.prepare(&format!(
        "SELECT {DELIVERY_COLUMNS} FROM webhook_deliveries
         WHERE state = 'pending' AND next_attempt_at <= ?1 ORDER BY next_attempt_at, id LIMIT ?2"
    ))?;
    let rows = st.query_map(params![now_ms(), limit], delivery_row)?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// Records one attempt: delivered, retried at `retry_at`, or failed for good.
pub fn record_attempt(
    conn: &Connection,
    id: i64,
    status: Option<u16>,
    error: Option<&str>,
    retry_at: Option<i64>,
) -> Result<(), StoreError> {
    let delivered = matches!(status, Some(200..=299));
    let state = match (delivered, retry_at) {
        (true, _) => "delivered",
        (false, Some(_)) => "pending",
        (false, None) => "failed",
    };
    conn.execute(
        "UPDATE webhook_deliveries SET attempts = attempts + 1, last_status = ?2, last_error = ?3,
           state = ?4, next_attempt_at = coalesce(?5, next_attempt_at),
           delivered_at = CASE WHEN ?4 = 'delivered' THEN ?6 ELSE delivered_at END
         WHERE id = ?1",
        params![id, status, error, state, retry_at, now_ms()],
    )?;
    Ok(())
}

pub fn list_deliveries(
    conn: &Connection,
    webhook_id: i64,
    limit: u32,
) -> Result<Vec<Delivery>, StoreError> {
    let mut st = conn.prepare(&format!(
        "SELECT {DELIVERY_COLUMNS} FROM webhook_deliveries WHERE webhook_id = ?1 ORDER BY id DESC LIMIT ?2"
    ))?;
    let rows = st.query_map(params![webhook_id, limit], delivery_row)?;
    Ok(rows.collect::<Result<_, _>>()?)
}
