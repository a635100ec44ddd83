//! `/api/v1/devices`: GB28181 devices, their catalog, live queries to them,
//! and `/api/v1/events`.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Deserializer, Serialize};

use super::json::ApiPath;
use super::{ApiError, ApiJson, ApiQuery, AppState};
use super::{RequireAdmin, RequireOperator};
use crate::gb::manscdp::{Body, Charset};
use crate::gb::platform::valid_device_id;
use crate::gb::{Answer, DeviceRuntime, GbError};
use crate::sip::digest;
use crate::store::db;

/// A device as the API shows it: the stored record plus live state.
#[derive(Serialize, Debug, utoipa::ToSchema)]
pub struct DeviceView {
    #[serde(flatten)]
    pub record: db::DeviceRecord,
    /// Registered and keeping alive now.
    pub online: bool,
    /// Registration not expired.
    pub registered: bool,
    pub catalog_subscribed: bool,
    pub charset: &'static str,
}

fn view(app: &AppState, record: db::DeviceRecord) -> DeviceView {
    let rt: Option<DeviceRuntime> = app.gb.runtime(&record.id);
    let charset = match (
        record.charset_override.as_deref(),
        record.charset_detected.as_deref(),
    ) {
        (Some(_), _) => "override",
        (None, Some(_)) => "detected",
        (None, None) => "unknown",
    };
    let mut record = record;
    if let Some(rt) = &rt {
        record.online = rt.online;
        record.address = Some(rt.address.clone());
        record.transport = Some(rt.transport.to_owned());
        if rt.last_seen_unix > 0 {
            record.last_keepalive = Some(rt.last_seen_unix);
        }
    }
    DeviceView {
        online: rt.as_ref().is_some_and(|r| r.online),
        registered: rt.as_ref().is_some_and(|r| r.registered),
        catalog_subscribed: rt.as_ref().is_some_and(|r| r.subscribed),
        charset,
        record,
    }
}

#[derive(Deserialize, Debug, Default, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    pub online: Option<bool>,
    pub keyword: Option<String>,
    /// 1-based.
    pub page: Option<u32>,
    /// 1–500, default 50.
    #[param(minimum = 1, maximum = 500)]
    pub page_size: Option<u32>,
}

#[derive(Serialize, Debug, utoipa::ToSchema)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub total: u64,
    pub page: u32,
    pub page_size: u32,
}

#[utoipa::path(get, path = "/api/v1/devices", tag = "devices", summary = "List GB28181 devices", params(ListQuery), responses((status = 200, description = "One page of devices", body = Page<DeviceView>)))]
pub async fn list(
    State(app): State<AppState>,
    ApiQuery(q): ApiQuery<ListQuery>,
) -> Result<Json<Page<DeviceView>>, ApiError> {
    let page = q.page.unwrap_or(1).max(1);
    let page_size = q.page_size.unwrap_or(50);
    if !(1..=500).contains(&page_size) {
        return Err(ApiError::invalid_field(
            "page_size",
            "page_size must be between 1 and 500",
        ));
    }
    if q.keyword.as_ref().is_some_and(|k| k.len() > 128) {
        return Err(ApiError::invalid_field(
            "keyword",
            "keyword longer than 128 bytes",
        ));
    }
    let filter = db::DeviceFilter {
        online: q.online,
        keyword: q.keyword,
        limit: page_size,
        offset: (page - 1).saturating_mul(page_size),
    };
    let (records, total) = app
        .store
        .call(move |c| db::list_devices(c, &filter))
        .await?;
    Ok(Json(Page {
        items: records.into_iter().map(|r| view(&app, r)).collect(),
        total,
        page,
        page_size,
    }))
}

async fn load(app: &AppState, id: &str) -> Result<db::DeviceRecord, ApiError> {
    let key = id.to_owned();
    app.store
        .call(move |c| db::get_device(c, &key))
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no device {id}")))
}

#[utoipa::path(get, path = "/api/v1/devices/{id}", tag = "devices", summary = "One device", params(("id" = String, Path, description = "Device id (GB28181: 20 digits)", example = "34020000001320000001")), responses((status = 200, description = "The device", body = DeviceView), (status = 404, description = "No such device")))]
pub async fn get(
    State(app): State<AppState>,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<DeviceView>, ApiError> {
    let record = load(&app, &id).await?;
    Ok(Json(view(&app, record)))
}

/// `null` vs absent: `Some(None)` clears, `None` leaves alone.
fn double_option<'de, D: Deserializer<'de>, T: Deserialize<'de>>(
    d: D,
) -> Result<Option<Option<T>>, D::Error> {
    Option::<T>::deserialize(d).map(Some)
}

#[derive(Deserialize, Debug, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DeviceCreate {
    /// 1–64 letters or digits (GB28181: 20 digits).
    #[schema(pattern = "^[A-Za-z0-9]{1,64}$")]
    pub id: String,
    pub name: Option<String>,
    /// The device's own password; without it the default applies.
    pub password: Option<String>,
    /// `utf-8` or `gb18030` (`gb2312`/`gbk` accepted) to force; absent = detect.
    pub charset: Option<String>,
}

/// Fields absent stay as they are; `null` clears (`password: null` falls back
/// to the default password, `charset: null` to detection).
#[derive(Deserialize, Debug, Default, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DevicePatch {
    #[serde(default, deserialize_with = "double_option")]
    pub name: Option<Option<String>>,
    #[serde(default, deserialize_with = "double_option")]
    pub password: Option<Option<String>>,
    #[serde(default, deserialize_with = "double_option")]
    pub charset: Option<Option<String>>,
    /// Require the answered SSRC on this device's RTP (default true); off
    /// for devices that send another SSRC than they answer.
    pub ssrc_check: Option<bool>,
}

fn check_password(pw: &str) -> Result<(), ApiError> {
    if pw.is_empty() || pw.len() > 128 || pw.chars().any(char::is_control) {
        return Err(ApiError::invalid_field(
            "password",
            "password must be 1–128 characters without control characters",
        ));
    }
    Ok(())
}

fn check_name(name: &str) -> Result<(), ApiError> {
    if name.len() > 256 || name.chars().any(char::is_control) {
        return Err(ApiError::invalid_field(
            "name",
            "name must be at most 256 bytes without control characters",
        ));
    }
    Ok(())
}

fn parse_charset(label: &str) -> Result<&'static str, ApiError> {
    match Charset::from_label(label) {
        Some(Charset::Utf8) => Ok("utf-8"),
        Some(Charset::Gb18030) => Ok("gb18030"),
        None => Err(ApiError::invalid_field(
            "charset",
            "charset must be utf-8 or gb18030 (gb2312/gbk accepted), or null to detect",
        )),
    }
}

#[utoipa::path(post, path = "/api/v1/devices", tag = "devices", summary = "Add a GB28181 device (admin)", request_body = DeviceCreate, responses((status = 201, description = "Added", body = DeviceView), (status = 409, description = "The id is taken (`conflict`)")))]
pub async fn create(
    State(app): State<AppState>,
    _caller: RequireAdmin,
    ApiJson(body): ApiJson<DeviceCreate>,
) -> Result<(StatusCode, Json<DeviceView>), ApiError> {
    if !valid_device_id(&body.id) {
        return Err(ApiError::invalid_field(
            "id",
            "id must be 1–64 letters or digits (GB28181: 20 digits)",
        ));
    }
    if let Some(n) = &body.name {
        check_name(n)?;
    }
    let realm = app.gb.settings().domain;
    let credential = match &body.password {
        Some(pw) => {
            check_password(pw)?;
            Some((digest::ha1(&body.id, &realm, pw), realm))
        }
        None => None,
    };
    let charset = body.charset.as_deref().map(parse_charset).transpose()?;
    let id = body.id.clone();
    let name = body.name.clone();
    let record = app
        .store
        .call(move |c| {
            db::insert_device(
                c,
                &id,
                name.as_deref(),
                credential.as_ref().map(|(h, r)| (h.as_str(), r.as_str())),
                charset,
            )
        })
        .await?;
    tracing::info!(device_id = body.id, "device added");
    Ok((StatusCode::CREATED, Json(view(&app, record))))
}

#[utoipa::path(patch, path = "/api/v1/devices/{id}", tag = "devices", summary = "Change a device (admin)", params(("id" = String, Path, description = "Device id (GB28181: 20 digits)", example = "34020000001320000001")), request_body = DevicePatch, responses((status = 200, description = "Changed", body = DeviceView), (status = 404, description = "No such device")))]
pub async fn update(
    State(app): State<AppState>,
    _caller: RequireAdmin,
    ApiPath(id): ApiPath<String>,
    ApiJson(body): ApiJson<DevicePatch>,
) -> Result<Json<DeviceView>, ApiError> {
    let mut u = db::DeviceUpdate::default();
    if let Some(n) = &body.name {
        if let Some(n) = n {
            check_name(n)?;
        }
        u.name = Some(n.clone().filter(|n| !n.is_empty()));
    }
    if let Some(pw) = &body.password {
        u.credential = Some(match pw {
            Some(pw) => {
                check_password(pw)?;
                let realm = app.gb.settings().domain;
                Some((digest::ha1(&id, &realm, pw), realm))
            }
            None => None,
        });
    }
    u.ssrc_check = body.ssrc_check;
    let mut charset_change = None;
    if let Some(c) = &body.charset {
        let label = c.as_deref().map(parse_charset).transpose()?;
        u.charset_override = Some(label.map(str::to_owned));
        charset_change = Some(label.and_then(Charset::from_label));
    }
    let key = id.clone();
    let record = app
        .store
        .call(move |c| db::update_device(c, &key, &u))
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no device {id}")))?;
    if let Some(c) = charset_change {
        app.gb.set_charset_override(&id, c);
    }
    tracing::info!(device_id = id, "device updated");
    Ok(Json(view(&app, record)))
}

#[utoipa::path(delete, path = "/api/v1/devices/{id}", tag = "devices", summary = "Remove a device (admin)", params(("id" = String, Path, description = "Device id (GB28181: 20 digits)", example = "34020000001320000001")), responses((status = 204, description = "Removed"), (status = 404, description = "No such device")))]
pub async fn delete(
    State(app): State<AppState>,
    _caller: RequireAdmin,
    ApiPath(id): ApiPath<String>,
) -> Result<StatusCode, ApiError> {
    let key = id.clone();
    if !app.store.call(move |c| db::delete_device(c, &key)).await? {
        return Err(ApiError::not_found(format!("no device {id}")));
    }
    app.gb.forget(&id);
    tracing::info!(device_id = id, "device deleted");
    Ok(StatusCode::NO_CONTENT)
}

impl From<GbError> for ApiError {
    fn from(e: GbError) -> Self {
        match e {
            GbError::UnknownDevice(_) => ApiError::not_found(e.to_string()),
            GbError::Offline(_) => {
                ApiError::new(StatusCode::CONFLICT, "device_offline", e.to_string())
            }
            GbError::NoAnswer { .. } => {
                ApiError::new(StatusCode::GATEWAY_TIMEOUT, "device_timeout", e.to_string())
            }
            GbError::NoSsrc(_) => ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "no_capacity",
                e.to_string(),
            ),
            GbError::Rejected { .. } | GbError::Sip { .. } | GbError::BadAnswer { .. } => {
                ApiError::new(StatusCode::BAD_GATEWAY, "device_error", e.to_string())
            }
            GbError::BadRequest(_) => {
                ApiError::new(StatusCode::BAD_REQUEST, "invalid_request", e.to_string())
            }
            GbError::Store(s) => s.into(),
        }
    }
}

async fn require_known(app: &AppState, id: &str) -> Result<(), ApiError> {
    load(app, id).await.map(|_| ())
}

#[utoipa::path(post, path = "/api/v1/devices/{id}/catalog/refresh", tag = "devices", summary = "Query the device's catalog now", params(("id" = String, Path, description = "Device id (GB28181: 20 digits)", example = "34020000001320000001")), responses((status = 200, description = "What the device answered", body = crate::gb::CatalogSummary), (status = 404, description = "No such device"), (status = 409, description = "The device is offline (`device_offline`)"), (status = 502, description = "The device refused or answered nonsense (`device_error`)"), (status = 504, description = "The device did not answer in time (`device_timeout`)")))]
pub async fn catalog_refresh(
    State(app): State<AppState>,
    _caller: RequireOperator,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<crate::gb::CatalogSummary>, ApiError> {
    require_known(&app, &id).await?;
    match app.gb.query(&id, "Catalog", &[]).await? {
        Answer::Catalog(s) => Ok(Json(s)),
        _ => Err(ApiError::internal(&"catalog answer of the wrong kind")),
    }
}

#[utoipa::path(get, path = "/api/v1/devices/{id}/info", tag = "devices", summary = "DeviceInfo query", description = "Asks the device now (GB/T 28181-2016 A.2.4.4); the answer's fields as the device sent them.", params(("id" = String, Path, description = "Device id (GB28181: 20 digits)", example = "34020000001320000001")), responses((status = 200, description = "The device's answer", body = Object), (status = 404, description = "No such device"), (status = 409, description = "The device is offline (`device_offline`)"), (status = 502, description = "The device refused or answered nonsense (`device_error`)"), (status = 504, description = "The device did not answer in time (`device_timeout`)")))]
pub async fn info(
    State(app): State<AppState>,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<serde_json::Value>, ApiError> {
    require_known(&app, &id).await?;
    match app.gb.query(&id, "DeviceInfo", &[]).await? {
        Answer::Message(m) => match m.body {
            Body::DeviceInfo(i) => Ok(Json(serde_json::to_value(i).unwrap_or_default())),
            other => Ok(Json(serde_json::to_value(other).unwrap_or_default())),
        },
        _ => Err(ApiError::internal(&"DeviceInfo answer of the wrong kind")),
    }
}

#[utoipa::path(get, path = "/api/v1/devices/{id}/status", tag = "devices", summary = "DeviceStatus query", description = "Asks the device now (GB/T 28181-2016 A.2.4.5); the answer's fields as the device sent them.", params(("id" = String, Path, description = "Device id (GB28181: 20 digits)", example = "34020000001320000001")), responses((status = 200, description = "The device's answer", body = Object), (status = 404, description = "No such device"), (status = 409, description = "The device is offline (`device_offline`)"), (status = 502, description = "The device refused or answered nonsense (`device_error`)"), (status = 504, description = "The device did not answer in time (`device_timeout`)")))]
pub async fn status(
    State(app): State<AppState>,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<serde_json::Value>, ApiError> {
    require_known(&app, &id).await?;
    match app.gb.query(&id, "DeviceStatus", &[]).await? {
        Answer::Message(m) => match m.body {
            Body::DeviceStatus(s) => Ok(Json(serde_json::to_value(s).unwrap_or_default())),
            other => Ok(Json(serde_json::to_value(other).unwrap_or_default())),
        },
        _ => Err(ApiError::internal(&"DeviceStatus answer of the wrong kind")),
    }
}

#[derive(Deserialize, Debug, Default, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ChannelQuery {
    /// Only nodes of this kind (`camera`, `region`, `business_group`,
    /// `virtual_organization`, …).
    pub kind: Option<String>,
    /// Only direct children of this node.
    pub parent_id: Option<String>,
}

#[utoipa::path(get, path = "/api/v1/devices/{id}/channels", tag = "devices", summary = "The device's catalog (channels and tree nodes)", params(("id" = String, Path, description = "Device id (GB28181: 20 digits)", example = "34020000001320000001"), ChannelQuery), responses((status = 200, description = "Catalog nodes", body = Vec<crate::store::db::ChannelRecord>), (status = 404, description = "No such device")))]
pub async fn channels(
    State(app): State<AppState>,
    ApiPath(id): ApiPath<String>,
    ApiQuery(q): ApiQuery<ChannelQuery>,
) -> Result<Json<Vec<db::ChannelRecord>>, ApiError> {
    require_known(&app, &id).await?;
    let key = id.clone();
    let mut all = app.store.call(move |c| db::list_channels(c, &key)).await?;
    if let Some(k) = &q.kind {
        all.retain(|c| &c.kind == k);
    }
    if let Some(p) = &q.parent_id {
        all.retain(|c| c.parent_id.as_ref() == Some(p));
    }
    Ok(Json(all))
}

#[derive(Deserialize, Debug, Default, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct EventQuery {
    pub device_id: Option<String>,
    pub kind: Option<String>,
    /// Events older than this id (paging).
    pub before_id: Option<i64>,
    /// Unix milliseconds.
    pub since: Option<i64>,
    /// 1–1000, default 100.
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<u32>,
    /// Only events nobody acknowledged (alarms).
    #[serde(default)]
    pub unacknowledged: bool,
}

#[utoipa::path(get, path = "/api/v1/events", tag = "events", summary = "The event log, newest first", params(EventQuery), responses((status = 200, description = "Events", body = Vec<crate::store::db::EventRecord>)))]
pub async fn events(
    State(app): State<AppState>,
    ApiQuery(q): ApiQuery<EventQuery>,
) -> Result<Json<Vec<db::EventRecord>>, ApiError> {
    let limit = q.limit.unwrap_or(100);
    if !(1..=1000).contains(&limit) {
        return Err(ApiError::invalid_field(
            "limit",
            "limit must be between 1 and 1000",
        ));
    }
    let f = db::EventFilter {
        device_id: q.device_id,
        kind: q.kind,
        before_id: q.before_id,
        since_ms: q.since,
        unacknowledged: q.unacknowledged,
        limit,
    };
    Ok(Json(app.store.call(move |c| db::list_events(c, &f)).await?))
}

#[derive(Serialize, Debug, utoipa::ToSchema)]
pub struct Acknowledged {
    #[serde(flatten)]
    pub event: db::EventRecord,
    /// The device's answer to `AlarmCmd ResetAlarm` (`OK`), or why it could
    /// not be reset (offline, no answer); the acknowledgement stands either
    /// way.
    pub device_reset: String,
}

/// `POST /api/v1/events/{id}/ack`: an operator acknowledges an alarm; the
/// gateway resets it on the device (DeviceControl `AlarmCmd ResetAlarm`,
/// GB/T 28181-2016 A.2.3.1.6) and records who acknowledged it.
#[utoipa::path(post, path = "/api/v1/events/{id}/ack", tag = "events", summary = "Acknowledge an alarm (resets it on the device)", params(("id" = i64, Path, description = "Event id")), responses((status = 200, description = "Acknowledged", body = Acknowledged), (status = 404, description = "No such event"), (status = 409, description = "Not an alarm (`not_an_alarm`)")))]
pub async fn acknowledge(
    State(app): State<AppState>,
    RequireOperator(caller): RequireOperator,
    ApiPath(id): ApiPath<i64>,
) -> Result<Json<Acknowledged>, ApiError> {
    let event = app
        .store
        .call(move |c| db::get_event(c, id))
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no event {id}")))?;
    if event.kind != "alarm" {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "not_an_alarm",
            format!(
                "event {id} is a {} event; only alarms are acknowledged",
                event.kind
            ),
        ));
    }
    let device_reset = match (&event.device_id, event.acknowledged_at) {
        (_, Some(_)) => "already acknowledged".to_owned(),
        (Some(device), None) => {
            let target = event.channel_id.clone().unwrap_or_else(|| device.clone());
            match app
                .gb
                .device_control(device, &target, &[("AlarmCmd", "ResetAlarm")])
                .await
            {
                Ok(r) => r.unwrap_or_default(),
                Err(e) => e.to_string(),
            }
        }
        (None, None) => "no device".to_owned(),
    };
    let by = caller.name.clone();
    app.store
        .call(move |c| db::acknowledge_event(c, id, &by))
        .await?;
    let event = app
        .store
        .call(move |c| db::get_event(c, id))
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no event {id}")))?;
    tracing::info!(event_id = id, device_id = ?event.device_id, by = ?event.acknowledged_by, device_reset, "alarm acknowledged");
    Ok(Json(Acknowledged {
        event,
        device_reset,
    }))
}
