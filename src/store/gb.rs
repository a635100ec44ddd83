//! GB28181 devices, their catalog tree, and the event log.

use rusqlite::{Connection, OptionalExtension, Row, params, params_from_iter};
use serde::Serialize;

use super::{StoreError, unix_now};
use crate::gb::manscdp::{CatalogItem, NodeKind};

/// A device row. The credential (HA1) never leaves the store layer in API
/// answers: [`DeviceRecord::has_password`] says whether one is set.
#[derive(Clone, Debug, PartialEq, Serialize, utoipa::ToSchema)]
pub struct DeviceRecord {
    pub id: String,
    pub name: Option<String>,
    #[serde(skip)]
    pub ha1: Option<String>,
    #[serde(skip)]
    pub ha1_realm: Option<String>,
    /// A device password is set (else the platform default applies).
    pub has_password: bool,
    pub charset_override: Option<String>,
    pub charset_detected: Option<String>,
    pub gb_version: Option<String>,
    pub transport: Option<String>,
    pub address: Option<String>,
    pub contact: Option<String>,
    pub user_agent: Option<String>,
    pub manufacturer: Option<String>,
    pub model: Option<String>,
    pub firmware: Option<String>,
    pub channel_count: Option<i64>,
    pub online: bool,
    pub registered_at: Option<i64>,
    pub expires: Option<i64>,
    pub last_keepalive: Option<i64>,
    pub catalog_synced_at: Option<i64>,
    /// RTP must carry the answered SSRC (else any SSRC on the session's route).
    pub ssrc_check: bool,
    pub created_at: i64,
    pub updated_at: i64,
}

const DEVICE_COLUMNS: &str = "id, name, ha1, ha1_realm, charset_override, charset_detected, \
    gb_version, transport, address, contact, user_agent, manufacturer, model, firmware, \
    channel_count, online, registered_at, expires, last_keepalive, catalog_synced_at, \
    created_at, updated_at, ssrc_check";

fn device_from_row(r: &Row<'_>) -> rusqlite::Result<DeviceRecord> {
    let ha1: Option<String> = r.get(2)?;
    Ok(DeviceRecord {
        id: r.get(0)?,
        name: r.get(1)?,
        has_password: ha1.is_some(),
        ha1,
        ha1_realm: r.get(3)?,
        charset_override: r.get(4)?,
        charset_detected: r.get(5)?,
        gb_version: r.get(6)?,
        transport: r.get(7)?,
        address: r.get(8)?,
        contact: r.get(9)?,
        user_agent: r.get(10)?,
        manufacturer: r.get(11)?,
        model: r.get(12)?,
        firmware: r.get(13)?,
        channel_count: r.get(14)?,
        online: r.get(15)?,
        registered_at: r.get(16)?,
        expires: r.get(17)?,
        last_keepalive: r.get(18)?,
        catalog_synced_at: r.get(19)?,
        created_at: r.get(20)?,
        updated_at: r.get(21)?,
        ssrc_check: r.get(22)?,
    })
}

pub fn get_device(conn: &Connection, id: &str) -> Result<Option<DeviceRecord>, StoreError> {
    Ok(conn
        .query_row(
            &format!("SELECT {DEVICE_COLUMNS} FROM gb_devices WHERE id = ?1"),
            [id],
            device_from_row,
        )
        .optional()?)
}

pub fn all_devices(conn: &Connection) -> Result<Vec<DeviceRecord>, StoreError> {
    let mut st = conn.prepare(&format!(
        "SELECT {DEVICE_COLUMNS} FROM gb_devices ORDER BY id"
    ))?;
    let rows = st.query_map([], device_from_row)?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// Filters for [`list_devices`].
#[derive(Clone, Debug, Default)]
pub struct DeviceFilter {
    pub online: Option<bool>,
    /// Matched (substring, case-insensitive for ASCII) against id, name,
    /// manufacturer, model and address.
    pub keyword: Option<String>,
    pub limit: u32,
    pub offset: u32,
}

/// A page of devices and the total matching the filter.
pub fn list_devices(
    conn: &Connection,
    f: &DeviceFilter,
) -> Result<(Vec<DeviceRecord>, u64), StoreError> {
    let mut clauses = Vec::new();
    let mut args: Vec<rusqlite::types::Value> = Vec::new();
    if let Some(online) = f.online {
        clauses.push("online = ?".to_owned());
        args.push(i64::from(online).into());
    }
    if let Some(k) = f.keyword.as_deref().filter(|k| !k.is_empty()) {
        let pattern = format!(
            "%{}%",
            k.replace('\\', "\\\\")
                .replace('%', "\\%")
                .replace('_', "\\_")
        );
        clauses.push(
            "(id LIKE ? ESCAPE '\\' OR name LIKE ? ESCAPE '\\' OR manufacturer LIKE ? ESCAPE '\\' \
             OR model LIKE ? ESCAPE '\\' OR address LIKE ? ESCAPE '\\')"
                .to_owned(),
        );
        for _ in 0..5 {
            args.push(pattern.clone().into());
        }
    }
    let filter = if clauses.is_empty() {
        String::new()
    } else {
        format!("WHERE {}", clauses.join(" AND "))
    };
    let total: i64 = conn.query_row(
        &format!("SELECT COUNT(*) FROM gb_devices {filter}"),
        params_from_iter(args.iter()),
        |r| r.get(0),
    )?;
    let mut page_args = args.clone();
    page_args.push(i64::from(f.limit).into());
    page_args.push(i64::from(f.offset).into());
    let mut st = conn.prepare(&format!(
        "SELECT {DEVICE_COLUMNS} FROM gb_devices {filter} ORDER BY id LIMIT ? OFFSET ?"
    ))?;
    let rows = st.query_map(params_from_iter(page_args.iter()), device_from_row)?;
    Ok((rows.collect::<Result<_, _>>()?, total.max(0) as u64))
}

/// A device an operator adds before it registers.
pub fn insert_device(
    conn: &Connection,
    id: &str,
    name: Option<&str>,
    credential: Option<(&str, &str)>,
    charset_override: Option<&str>,
) -> Result<DeviceRecord, StoreError> {
    let now = unix_now();
    let (ha1, realm) = credential.unzip();
    let n = conn.execute(
        "INSERT INTO gb_devices (id, name, ha1, ha1_realm, charset_override, created_at, updated_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?6) ON CONFLICT (id) DO NOTHING",
        params![id, name, ha1, realm, charset_override, now],
    )?;
    if n == 0 {
        return Err(StoreError::Conflict(format!("device {id} already exists")));
    }
    get_device(conn, id)?.ok_or_else(|| StoreError::Worker("inserted device vanished".into()))
}

/// What a successful REGISTER tells about a device.
#[derive(Clone, Debug)]
pub struct Registration {
    pub id: String,
    pub transport: String,
    pub address: String,
    pub contact: Option<String>,
    pub user_agent: Option<String>,
    pub gb_version: Option<String>,
    pub expires: i64,
    pub at: i64,
}

/// Records a registration, creating the device row if needed (auto-accept).
pub fn record_registration(conn: &Connection, r: &Registration) -> Result<(), StoreError> {
    conn.execute(
        "INSERT INTO gb_devices (id, transport, address, contact, user_agent, gb_version, online,
             registered_at, expires, last_keepalive, created_at, updated_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, 1, ?7, ?8, ?7, ?7, ?7)
         ON CONFLICT (id) DO UPDATE SET transport = excluded.transport,
             address = excluded.address, contact = excluded.contact,
             user_agent = excluded.user_agent, gb_version = excluded.gb_version, online = 1,
             registered_at = excluded.registered_at, expires = excluded.expires,
             last_keepalive = excluded.last_keepalive, updated_at = excluded.updated_at",
        params![
            r.id,
            r.transport,
            r.address,
            r.contact,
            r.user_agent,
            r.gb_version,
            r.at,
            r.expires
        ],
    )?;
    Ok(())
}

/// Online/offline transition; an unregister also clears the registration.
pub fn set_online(
    conn: &Connection,
    id: &str,
    online: bool,
    unregistered: bool,
) -> Result<(), StoreError> {
    let now = unix_now();
    if unregistered {
        conn.execute(
            "UPDATE gb_devices SET online = 0, expires = 0, updated_at = ?2 WHERE id = ?1",
            params![id, now],
        )?;
    } else {
        conn.execute(
            "UPDATE gb_devices SET online = ?2, updated_at = ?3 WHERE id = ?1",
            params![id, online, now],
        )?;
    }
    Ok(())
}

/// Stores the last keepalive times and addresses of several devices at once
/// (batched so keepalives do not each cost an SD-card write).
pub fn touch_devices(
    conn: &mut Connection,
    seen: &[(String, i64, String, String)],
) -> Result<(), StoreError> {
    let tx = conn.transaction()?;
    {
        let mut st = tx.prepare(
            "UPDATE gb_devices SET last_keepalive = ?2, address = ?3, transport = ?4 WHERE id = ?1",
        )?;
        for (id, at, address, transport) in seen {
            st.execute(params![id, at, address, transport])?;
        }
    }
    tx.commit()?;
    Ok(())
}

/// Operator changes; `None` leaves a field alone, `Some(None)` clears it.
#[derive(Clone, Debug, Default)]
pub struct DeviceUpdate {
    pub name: Option<Option<String>>,
    /// (HA1, realm).
    pub credential: Option<Option<(String, String)>>,
    pub charset_override: Option<Option<String>>,
    pub ssrc_check: Option<bool>,
}

pub fn update_device(
    conn: &Connection,
    id: &str,
    u: &DeviceUpdate,
) -> Result<Option<DeviceRecord>, StoreError> {
    let Some(mut d) = get_device(conn, id)? else {
        return Ok(None);
    };
    if let Some(n) = &u.name {
        d.name = n.clone();
    }
    if let Some(c) = &u.credential {
        (d.ha1, d.ha1_realm) = c.clone().unzip();
    }
    if let Some(c) = &u.charset_override {
        d.charset_override = c.clone();
    }
    if let Some(c) = u.ssrc_check {
        d.ssrc_check = c;
    }
    conn.execute(
        "UPDATE gb_devices SET name = ?2, ha1 = ?3, ha1_realm = ?4, charset_override = ?5,
             ssrc_check = ?6, updated_at = ?7 WHERE id = ?1",
        params![
            id,
            d.name,
            d.ha1,
            d.ha1_realm,
            d.charset_override,
            d.ssrc_check,
            unix_now()
        ],
    )?;
    get_device(conn, id)
}

pub fn set_charset_detected(conn: &Connection, id: &str, charset: &str) -> Result<(), StoreError> {
    conn.execute(
        "UPDATE gb_devices SET charset_detected = ?2 WHERE id = ?1",
        params![id, charset],
    )?;
    Ok(())
}

/// DeviceInfo answer fields; the name only fills an empty one.
pub fn set_device_info(
    conn: &Connection,
    id: &str,
    info: &crate::gb::manscdp::DeviceInfo,
) -> Result<(), StoreError> {
    conn.execute(
        "UPDATE gb_devices SET manufacturer = COALESCE(?2, manufacturer),
             model = COALESCE(?3, model), firmware = COALESCE(?4, firmware),
             channel_count = COALESCE(?5, channel_count), name = COALESCE(name, ?6),
             updated_at = ?7 WHERE id = ?1",
        params![
            id,
            info.manufacturer,
            info.model,
            info.firmware,
            info.channel,
            info.device_name,
            unix_now()
        ],
    )?;
    Ok(())
}

pub fn delete_device(conn: &Connection, id: &str) -> Result<bool, StoreError> {
    Ok(conn.execute("DELETE FROM gb_devices WHERE id = ?1", [id])? > 0)
}

// ---------------------------------------------------------------------------
// Channels (the catalog tree)
// ---------------------------------------------------------------------------

#[derive(Clone, Debug, PartialEq, Serialize, utoipa::ToSchema)]
pub struct ChannelRecord {
    pub device_id: String,
    pub id: String,
    pub kind: String,
    pub name: Option<String>,
    pub parent_id: Option<String>,
    pub parent_ids: Vec<String>,
    pub business_group_id: Option<String>,
    pub civil_code: Option<String>,
    pub manufacturer: Option<String>,
    pub model: Option<String>,
    pub address: Option<String>,
    pub ip_address: Option<String>,
    pub port: Option<i64>,
    pub parental: Option<i64>,
    pub status: Option<String>,
    pub online: bool,
    pub ptz_type: Option<i64>,
    pub longitude: Option<f64>,
    pub latitude: Option<f64>,
    /// The whole catalog item as received (decoded), for fields not above.
    pub item: serde_json::Value,
    pub position: Option<serde_json::Value>,
    pub position_at: Option<i64>,
    pub updated_at: i64,
    /// `udp`, `tcp_passive` or `tcp_active`: how live media comes in.
    pub media_transport: String,
}

const CHANNEL_COLUMNS: &str = "device_id, id, kind, name, parent_id, parent_ids, \
    business_group_id, civil_code, manufacturer, model, address, ip_address, port, parental, \
    status, online, ptz_type, longitude, latitude, item, position, position_at, updated_at, \
    media_transport";

fn channel_from_row(r: &Row<'_>) -> rusqlite::Result<ChannelRecord> {
    let parent_ids: Option<String> = r.get(5)?;
    let item: String = r.get(19)?;
    let position: Option<String> = r.get(20)?;
    Ok(ChannelRecord {
        device_id: r.get(0)?,
        id: r.get(1)?,
        kind: r.get(2)?,
        name: r.get(3)?,
        parent_id: r.get(4)?,
        parent_ids: parent_ids
            .unwrap_or_default()
            .split('/')
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect(),
        business_group_id: r.get(6)?,
        civil_code: r.get(7)?,
        manufacturer: r.get(8)?,
        model: r.get(9)?,
        address: r.get(10)?,
        ip_address: r.get(11)?,
        port: r.get(12)?,
        parental: r.get(13)?,
        status: r.get(14)?,
        online: r.get(15)?,
        ptz_type: r.get(16)?,
        longitude: r.get(17)?,
        latitude: r.get(18)?,
        item: serde_json::from_str(&item).unwrap_or(serde_json::Value::Null),
        position: position.and_then(|p| serde_json::from_str(&p).ok()),
        position_at: r.get(21)?,
        updated_at: r.get(22)?,
        media_transport: r.get(23)?,
    })
}

pub fn node_kind_name(k: NodeKind) -> &'static str {
    match k {
        NodeKind::Region => "region",
        NodeKind::BusinessGroup => "business_group",
        NodeKind::VirtualOrganization => "virtual_organization",
        NodeKind::Recorder => "recorder",
        NodeKind::Camera => "camera",
        NodeKind::Platform => "platform",
        NodeKind::Other => "other",
    }
}

fn upsert_item(
    st: &mut rusqlite::Statement<'_>,
    device_id: &str,
    item: &CatalogItem,
    now: i64,
) -> Result<(), StoreError> {
    let parents = item.parent_ids();
    let json = serde_json::to_string(item).map_err(|e| StoreError::Worker(e.to_string()))?;
    let online = item.is_online().unwrap_or(true);
    st.execute(params![
        device_id,
        item.device_id,
        node_kind_name(item.node_kind()),
        item.name,
        parents.last().copied(),
        parents.join("/"),
        item.business_group_id,
        item.civil_code,
        item.manufacturer,
        item.model,
        item.address,
        item.ip_address,
        item.port,
        item.parental,
        item.status,
        online,
        item.info.ptz_type,
        item.longitude,
        item.latitude,
        json,
        now
    ])?;
    Ok(())
}

const UPSERT_CHANNEL: &str = "INSERT INTO gb_channels (device_id, id, kind, name, parent_id,
        parent_ids, business_group_id, civil_code, manufacturer, model, address, ip_address,
        port, parental, status, online, ptz_type, longitude, latitude, item, updated_at)
    VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19,
        ?20, ?21)
    ON CONFLICT (device_id, id) DO UPDATE SET kind = excluded.kind, name = excluded.name,
        parent_id = excluded.parent_id, parent_ids = excluded.parent_ids,
        business_group_id = excluded.business_group_id, civil_code = excluded.civil_code,
        manufacturer = excluded.manufacturer, model = excluded.model, address = excluded.address,
        ip_address = excluded.ip_address, port = excluded.port, parental = excluded.parental,
        status = excluded.status, online = excluded.online, ptz_type = excluded.ptz_type,
        longitude = excluded.longitude, latitude = excluded.latitude, item = excluded.item,
        updated_at = excluded.updated_at";

/// Stores a catalog answer. A complete answer replaces the device's tree
/// (nodes it no longer lists are removed); an incomplete one (timed out) only
/// adds and updates, so a partial sync never loses channels.
pub fn store_catalog(
    conn: &mut Connection,
    device_id: &str,
    items: &[CatalogItem],
    complete: bool,
) -> Result<(), StoreError> {
    let now = unix_now();
    let tx = conn.transaction()?;
    {
        let mut st = tx.prepare(UPSERT_CHANNEL)?;
        for item in items.iter().filter(|i| !i.device_id.is_empty()) {
            upsert_item(&mut st, device_id, item, now)?;
        }
    }
    if complete {
        // Nodes the device no longer lists.
        let listed: std::collections::HashSet<&str> =
            items.iter().map(|i| i.device_id.as_str()).collect();
        let existing: Vec<String> = {
            let mut st = tx.prepare("SELECT id FROM gb_channels WHERE device_id = ?1")?;
            st.query_map([device_id], |r| r.get(0))?
                .collect::<Result<_, _>>()?
        };
        for id in existing.iter().filter(|id| !listed.contains(id.as_str())) {
            tx.execute(
                "DELETE FROM gb_channels WHERE device_id = ?1 AND id = ?2",
                params![device_id, id],
            )?;
        }
        tx.execute(
            "UPDATE gb_devices SET catalog_synced_at = ?2 WHERE id = ?1",
            params![device_id, now],
        )?;
    }
    tx.commit()?;
    Ok(())
}

/// Applies one catalog NOTIFY item (gb28181.md §3 "Subscription"). Returns
/// whether a stored channel changed.
pub fn apply_catalog_event(
    conn: &Connection,
    device_id: &str,
    item: &CatalogItem,
) -> Result<bool, StoreError> {
    use crate::gb::manscdp::CatalogEvent as E;
    let now = unix_now();
    let status_update = |status: &str, online: Option<bool>| -> Result<bool, StoreError> {
        Ok(conn.execute(
            "UPDATE gb_channels SET status = ?3, online = COALESCE(?4, online), updated_at = ?5
             WHERE device_id = ?1 AND id = ?2",
            params![device_id, item.device_id, status, online, now],
        )? > 0)
    };
    match item.event.as_ref() {
        Some(E::On) => status_update("ON", Some(true)),
        Some(E::Off) => status_update("OFF", Some(false)),
        Some(E::Vlost) => status_update("VLOST", None),
        Some(E::Defect) => status_update("DEFECT", None),
        Some(E::Del) => Ok(conn.execute(
            "DELETE FROM gb_channels WHERE device_id = ?1 AND id = ?2",
            params![device_id, item.device_id],
        )? > 0),
        Some(E::Add) | Some(E::Update) | None => {
            let mut st = conn.prepare(UPSERT_CHANNEL)?;
            upsert_item(&mut st, device_id, item, now)?;
            Ok(true)
        }
        Some(E::Other(_)) => Ok(false),
    }
}

pub fn list_channels(conn: &Connection, device_id: &str) -> Result<Vec<ChannelRecord>, StoreError> {
    let mut st = conn.prepare(&format!(
        "SELECT {CHANNEL_COLUMNS} FROM gb_channels WHERE device_id = ?1 ORDER BY id"
    ))?;
    let rows = st.query_map([device_id], channel_from_row)?;
    Ok(rows.collect::<Result<_, _>>()?)
}

pub fn get_channel(
    conn: &Connection,
    device_id: &str,
    id: &str,
) -> Result<Option<ChannelRecord>, StoreError> {
    Ok(conn
        .query_row(
            &format!("SELECT {CHANNEL_COLUMNS} FROM gb_channels WHERE device_id = ?1 AND id = ?2"),
            [device_id, id],
            channel_from_row,
        )
        .optional()?)
}

/// Latest MobilePosition of a channel (or of the device itself, when the
/// notify names the device). Returns false if no such node is stored.
pub fn set_position(
    conn: &Connection,
    device_id: &str,
    channel_id: &str,
    position: &serde_json::Value,
) -> Result<bool, StoreError> {
    let now = unix_now();
    Ok(conn.execute(
        "UPDATE gb_channels SET position = ?3, position_at = ?4 WHERE device_id = ?1 AND id = ?2",
        params![device_id, channel_id, position.to_string(), now],
    )? > 0)
}

/// Sets how a channel's live media comes in. False if no such channel.
pub fn set_channel_transport(
    conn: &Connection,
    device_id: &str,
    id: &str,
    transport: &str,
) -> Result<bool, StoreError> {
    Ok(conn.execute(
        "UPDATE gb_channels SET media_transport = ?3 WHERE device_id = ?1 AND id = ?2",
        params![device_id, id, transport],
    )? > 0)
}

// ---------------------------------------------------------------------------
// Events
// ---------------------------------------------------------------------------

/// Events kept; older ones are pruned as new ones arrive.
pub const MAX_EVENTS: i64 = 100_000;

#[derive(Clone, Debug, PartialEq, Serialize, utoipa::ToSchema)]
pub struct EventRecord {
    pub id: i64,
    /// Unix milliseconds.
    pub at: i64,
    pub kind: String,
    pub device_id: Option<String>,
    pub channel_id: Option<String>,
    pub message: String,
    pub data: Option<serde_json::Value>,
    /// Unix milliseconds an operator acknowledged it (alarms).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub acknowledged_at: Option<i64>,
    /// The API token (name) that acknowledged it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub acknowledged_by: Option<String>,
}

pub fn insert_event(
    conn: &Connection,
    kind: &str,
    device_id: Option<&str>,
    channel_id: Option<&str>,
    message: &str,
    data: Option<&serde_json::Value>,
) -> Result<i64, StoreError> {
    let at = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64);
    conn.execute(
        "INSERT INTO events (at, kind, device_id, channel_id, message, data)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        params![
            at,
            kind,
            device_id,
            channel_id,
            message,
            data.map(|d| d.to_string())
        ],
    )?;
    let id = conn.last_insert_rowid();
    if id % 1000 == 0 {
        conn.execute("DELETE FROM events WHERE id <= ?1", [id - MAX_EVENTS])?;
    }
    Ok(id)
}

#[derive(Clone, Debug, Default)]
pub struct EventFilter {
    pub device_id: Option<String>,
    pub kind: Option<String>,
    /// Only events with a smaller id (paging backwards).
    pub before_id: Option<i64>,
    /// Only events at or after this unix-millisecond time.
    pub since_ms: Option<i64>,
    /// Only events nobody acknowledged yet.
    pub unacknowledged: bool,
    pub limit: u32,
}

/// Newest first.
pub fn list_events(conn: &Connection, f: &EventFilter) -> Result<Vec<EventRecord>, StoreError> {
    let mut clauses = vec!["1 = 1"];
    let mut args: Vec<rusqlite::types::Value> = Vec::new();
    if let Some(d) = &f.device_id {
        clauses.push("device_id = ?");
        args.push(d.clone().into());
    }
    if let Some(k) = &f.kind {
        clauses.push("kind = ?");
        args.push(k.clone().into());
    }
    if let Some(b) = f.before_id {
        clauses.push("id < ?");
        args.push(b.into());
    }
    if let Some(s) = f.since_ms {
        clauses.push("at >= ?");
        args.push(s.into());
    }
    if f.unacknowledged {
        clauses.push("acknowledged_at IS NULL");
    }
    args.push(i64::from(f.limit).into());
    let mut st = conn.prepare(&format!(
        "SELECT {EVENT_COLUMNS} FROM events WHERE {}
         ORDER BY id DESC LIMIT ?",
        clauses.join(" AND ")
    ))?;
    let rows = st.query_map(params_from_iter(args.iter()), event_row)?;
    Ok(rows.collect::<Result<_, _>>()?)
}

const EVENT_COLUMNS: &str =
    "id, at, kind, device_id, channel_id, message, data, acknowledged_at, acknowledged_by";

fn event_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<EventRecord> {
    let data: Option<String> = r.get(6)?;
    Ok(EventRecord {
        id: r.get(0)?,
        at: r.get(1)?,
        kind: r.get(2)?,
        device_id: r.get(3)?,
        channel_id: r.get(4)?,
        message: r.get(5)?,
        data: data.and_then(|d| serde_json::from_str(&d).ok()),
        acknowledged_at: r.get(7)?,
        acknowledged_by: r.get(8)?,
    })
}

/// Events kept in the log, per kind.
pub fn count_events_by_kind(conn: &Connection) -> Result<Vec<(String, i64)>, StoreError> {
    let mut st = conn.prepare("SELECT kind, count(*) FROM events GROUP BY kind ORDER BY kind")?;
    let rows = st.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
    Ok(rows.collect::<Result<_, _>>()?)
}

pub fn get_event(conn: &Connection, id: i64) -> Result<Option<EventRecord>, StoreError> {
    Ok(conn
        .query_row(
            &format!("SELECT {EVENT_COLUMNS} FROM events WHERE id = ?1"),
            [id],
            event_row,
        )
        .optional()?)
}

/// Marks an event acknowledged (once: the first acknowledgement stays).
pub fn acknowledge_event(conn: &Connection, id: i64, by: &str) -> Result<bool, StoreError> {
    let at = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64);
    Ok(conn.execute(
        "UPDATE events SET acknowledged_at = ?2, acknowledged_by = ?3
         WHERE id = ?1 AND acknowledged_at IS NULL",
        params![id, at, by],
    )? > 0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Store;

    fn item(id: &str, name: &str, parent: Option<&str>) -> CatalogItem {
        CatalogItem {
            device_id: id.into(),
            name: Some(name.into()),
            parent_id: parent.map(str::to_owned),
            status: Some("ON".into()),
            ..Default::default()
        }
    }

    #[test]
    fn devices_catalog_and_events() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open_in_dir(dir.path()).unwrap();
        store
            .call_sync(|c| {
                let d = insert_device(c, "34020000001320000001", Some("gate"), None, None)?;
                assert!(!d.has_password && !d.online);
                assert!(insert_device(c, "34020000001320000001", None, None, None).is_err());
                record_registration(
                    c,
                    &Registration {
                        id: "34020000001180000002".into(),
                        transport: "udp".into(),
                        address: "127.0.0.1:5070".into(),
                        contact: None,
                        user_agent: Some("sipp".into()),
                        gb_version: Some("3.0".into()),
                        expires: 3600,
                        at: 100,
                    },
                )?;
                let (page, total) = list_devices(
                    c,
                    &DeviceFilter {
                        online: Some(true),
                        limit: 10,
                        ..Default::default()
                    },
                )?;
                assert_eq!((page.len(), total), (1, 1));
                assert_eq!(page[0].gb_version.as_deref(), Some("3.0"));
                let (_, total) = list_devices(
                    c,
                    &DeviceFilter {
                        keyword: Some("GATE".into()),
                        limit: 10,
                        ..Default::default()
                    },
                )?;
                assert_eq!(total, 1);
                let (_, total) = list_devices(
                    c,
                    &DeviceFilter {
                        keyword: Some("%".into()),
                        limit: 10,
                        ..Default::default()
                    },
                )?;
                assert_eq!(total, 0, "LIKE wildcards are escaped");

                let dev = "34020000001180000002";
                let items = vec![
                    item(
                        "34020000002150000001",
                        "业务分组",
                        Some("34020000002000000001"),
                    ),
                    item(
                        "34020000001320000001",
                        "测试通道01",
                        Some("34020000002000000001/34020000002150000001"),
                    ),
                    item("34020000001320000002", "测试通道02", None),
                ];
                store_catalog(c, dev, &items, true)?;
                let ch = list_channels(c, dev)?;
                assert_eq!(ch.len(), 3);
                let cam = get_channel(c, dev, "34020000001320000001")?.unwrap();
                assert_eq!(cam.kind, "camera");
                assert_eq!(cam.parent_id.as_deref(), Some("34020000002150000001"));
                assert_eq!(cam.parent_ids.len(), 2);
                assert_eq!(cam.name.as_deref(), Some("测试通道01"));

                // A complete answer without channel 2 removes it; a partial one would not.
                store_catalog(c, dev, &items[..2], false)?;
                assert_eq!(list_channels(c, dev)?.len(), 3);
                store_catalog(c, dev, &items[..2], true)?;
                assert_eq!(list_channels(c, dev)?.len(), 2);

                let mut off = item("34020000001320000001", "", None);
                off.event = Some(crate::gb::manscdp::CatalogEvent::Off);
                assert!(apply_catalog_event(c, dev, &off)?);
                let cam = get_channel(c, dev, "34020000001320000001")?.unwrap();
                assert!(!cam.online);
                assert_eq!(cam.status.as_deref(), Some("OFF"));
                assert_eq!(
                    cam.name.as_deref(),
                    Some("测试通道01"),
                    "status events keep the rest"
                );

                insert_event(c, "alarm", Some(dev), None, "motion", None)?;
                insert_event(c, "device_online", Some(dev), None, "online", None)?;
                let ev = list_events(
                    c,
                    &EventFilter {
                        kind: Some("alarm".into()),
                        limit: 10,
                        ..Default::default()
                    },
                )?;
                assert_eq!(ev.len(), 1);
                assert!(acknowledge_event(c, ev[0].id, "operator")?);
                assert!(!acknowledge_event(c, ev[0].id, "again")?, "once only");
                let acked = get_event(c, ev[0].id)?.unwrap();
                assert_eq!(acked.acknowledged_by.as_deref(), Some("operator"));
                let open = list_events(
                    c,
                    &EventFilter {
                        kind: Some("alarm".into()),
                        unacknowledged: true,
                        limit: 10,
                        ..Default::default()
                    },
                )?;
                assert!(open.is_empty());
                assert!(delete_device(c, dev)?);
                assert!(
                    list_channels(c, dev)?.is_empty(),
                    "channels go with the device"
                );
                Ok(())
            })
            .unwrap();
    }
}
