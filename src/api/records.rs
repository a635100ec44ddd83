//! `GET /api/v1/channels/{deviceId}/{channelId}/records?start=&end=&type=`:
//! a channel's recordings on the device (RecordInfo).

use axum::Json;
use axum::extract::State;
use serde::{Deserialize, Serialize};

use super::json::ApiPath;
use super::{ApiError, ApiQuery, AppState, Caller};
use crate::store::TokenRole;

#[derive(Deserialize, Debug, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct RecordsQuery {
    /// Unix seconds, or the box's local time `YYYY-MM-DDTHH:MM:SS` (as
    /// devices write it).
    pub start: String,
    pub end: String,
    /// `all` (default), `time`, `alarm` or `manual`.
    #[serde(rename = "type")]
    pub record_type: Option<String>,
}

#[derive(Serialize, Debug, utoipa::ToSchema)]
pub struct RecordView {
    pub name: Option<String>,
    pub file_path: Option<String>,
    pub address: Option<String>,
    /// As the device wrote it (local time).
    pub start_time: Option<String>,
    pub end_time: Option<String>,
    /// The same as Unix seconds (what playback takes).
    pub start: Option<i64>,
    pub end: Option<i64>,
    #[serde(rename = "type")]
    pub record_type: Option<String>,
    pub secrecy: Option<u32>,
    pub file_size: Option<u64>,
    pub recorder_id: Option<String>,
}

#[derive(Serialize, Debug, utoipa::ToSchema)]
pub struct RecordsView {
    /// False when the device stopped before sending all `sum_num` items.
    pub complete: bool,
    pub sum_num: Option<u32>,
    /// MESSAGEs the answer came in.
    pub messages: u32,
    pub records: Vec<RecordView>,
}

fn time_param(name: &'static str, value: &str, offset: i64) -> Result<i64, ApiError> {
    let v = value.trim();
    if let Ok(n) = v.parse::<i64>() {
        if (0..=32_503_680_000).contains(&n) {
            return Ok(n);
        }
    } else if let Some(t) = crate::util::parse_gb_time(v, offset) {
        return Ok(t);
    }
    Err(ApiError::invalid_field(
        name,
        format!("{name} must be Unix seconds or local YYYY-MM-DDTHH:MM:SS"),
    ))
}

#[utoipa::path(get, path = "/api/v1/channels/{device_id}/{channel_id}/records", tag = "records", summary = "Recordings on the device (RecordInfo)", params(("device_id" = String, Path, description = "Device id", example = "34020000001320000001"), ("channel_id" = String, Path, description = "Channel id", example = "34020000001310000001"), RecordsQuery), responses((status = 200, description = "The device's recordings in the span", body = RecordsView), (status = 404, description = "No such channel"), (status = 409, description = "The device is offline (`device_offline`)"), (status = 502, description = "The device refused or answered nonsense (`device_error`)"), (status = 504, description = "The device did not answer in time (`device_timeout`)")))]
pub async fn list(
    State(app): State<AppState>,
    caller: Caller,
    ApiPath((device_id, channel_id)): ApiPath<(String, String)>,
    ApiQuery(q): ApiQuery<RecordsQuery>,
) -> Result<Json<RecordsView>, ApiError> {
    caller.require(TokenRole::Viewer)?;
    let offset = crate::util::local_utc_offset_secs(std::time::SystemTime::now());
    let start = time_param("start", &q.start, offset)?;
    let end = time_param("end", &q.end, offset)?;
    if end <= start {
        return Err(ApiError::invalid_field("end", "end must be after start"));
    }
    if end - start > 31 * 86_400 {
        return Err(ApiError::invalid_field("end", "at most 31 days per query"));
    }
    if !app.gb.has_channel(&device_id, &channel_id).await? {
        return Err(ApiError::not_found(format!(
            "device {device_id} has no channel {channel_id}"
        )));
    }
    let kind = q.record_type.as_deref().unwrap_or("all");
    let answer = app
        .gb
        .records(&device_id, &channel_id, start, end, kind)
        .await?;
    let records = answer
        .items
        .iter()
        .map(|r| RecordView {
            name: r.name.clone(),
            file_path: r.file_path.clone(),
            address: r.address.clone(),
            start: r
                .start_time
                .as_deref()
                .and_then(|t| crate::util::parse_gb_time(t, offset)),
            end: r
                .end_time
                .as_deref()
                .and_then(|t| crate::util::parse_gb_time(t, offset)),
            start_time: r.start_time.clone(),
            end_time: r.end_time.clone(),
            record_type: r.record_type.clone(),
            secrecy: r.secrecy,
            file_size: r.file_size,
            recorder_id: r.recorder_id.clone(),
        })
        .collect();
    Ok(Json(RecordsView {
        complete: answer.complete,
        sum_num: answer.sum_num,
        messages: answer.messages,
        records,
    }))
}
