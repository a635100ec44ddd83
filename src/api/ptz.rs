//! PTZ and other device control: `/api/v1/channels/{deviceId}/{channelId}/ptz`,
//! `/presets`, `/cruise`, `/scan`, and `/api/v1/devices/{id}/control`.

use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};

use super::json::ApiPath;
use super::{ApiError, ApiJson, AppState};
use super::{RequireAdmin, RequireOperator};
use crate::gb::Preset;
use crate::ptz::{Focus, Iris, Pan, PtzCommand, PtzSendError, Sent, Tilt, Zoom};
use crate::store::ptz::SerialBinding;
use crate::store::{TokenRole, db};

fn default_speed() -> u8 {
    128
}

fn default_zoom_speed() -> u8 {
    8
}

/// A PTZ request. Motion (`move`, `zoom`, `focus`, `iris`) continues until
/// `stop`/`lens_stop`, until `duration_ms` has passed, or at most
/// [`crate::ptz::MAX_MOTION`].
#[derive(Deserialize, Debug, Clone, Copy, utoipa::ToSchema)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum PtzRequest {
    Move {
        pan: Option<Pan>,
        tilt: Option<Tilt>,
        zoom: Option<Zoom>,
        /// Pan and tilt speed 0–255 (default 128); `pan_speed`/`tilt_speed`
        /// override one axis.
        #[serde(default = "default_speed")]
        speed: u8,
        pan_speed: Option<u8>,
        tilt_speed: Option<u8>,
        /// 0–15 (default 8).
        #[serde(default = "default_zoom_speed")]
        zoom_speed: u8,
        duration_ms: Option<u64>,
    },
    Zoom {
        direction: Zoom,
        #[serde(default = "default_zoom_speed")]
        speed: u8,
        duration_ms: Option<u64>,
    },
    Stop,
    Focus {
        direction: Focus,
        #[serde(default = "default_speed")]
        speed: u8,
        duration_ms: Option<u64>,
    },
    Iris {
        direction: Iris,
        #[serde(default = "default_speed")]
        speed: u8,
        duration_ms: Option<u64>,
    },
    LensStop,
    /// Auxiliary switch (1 = wiper).
    Aux {
        switch: u8,
        on: bool,
    },
}

impl PtzRequest {
    fn command(self) -> (PtzCommand, Option<Duration>) {
        let ms = |d: Option<u64>| d.map(Duration::from_millis);
        match self {
            PtzRequest::Move {
                pan,
                tilt,
                zoom,
                speed,
                pan_speed,
                tilt_speed,
                zoom_speed,
                duration_ms,
            } => (
                PtzCommand::Move {
                    pan,
                    tilt,
                    zoom,
                    pan_speed: pan_speed.unwrap_or(speed),
                    tilt_speed: tilt_speed.unwrap_or(speed),
                    zoom_speed,
                },
                ms(duration_ms),
            ),
            PtzRequest::Zoom {
                direction,
                speed,
                duration_ms,
            } => (
                PtzCommand::Move {
                    pan: None,
                    tilt: None,
                    zoom: Some(direction),
                    pan_speed: 0,
                    tilt_speed: 0,
                    zoom_speed: speed,
                },
                ms(duration_ms),
            ),
            PtzRequest::Stop => (PtzCommand::Stop, None),
            PtzRequest::Focus {
                direction,
                speed,
                duration_ms,
            } => (
                PtzCommand::Lens {
                    focus: Some(direction),
                    iris: None,
                    focus_speed: speed,
                    iris_speed: 0,
                },
                ms(duration_ms),
            ),
            PtzRequest::Iris {
                direction,
                speed,
                duration_ms,
            } => (
                PtzCommand::Lens {
                    focus: None,
                    iris: Some(direction),
                    focus_speed: 0,
                    iris_speed: speed,
                },
                ms(duration_ms),
            ),
            PtzRequest::LensStop => (PtzCommand::LensStop, None),
            PtzRequest::Aux { switch, on } => (PtzCommand::Aux { switch, on }, None),
        }
    }
}

/// Cruise (tour) routes: `add`/`delete` a preset (preset 0 deletes the
/// route), `speed`, `dwell` (seconds at each preset), `start`, `stop`.
#[derive(Deserialize, Debug, Clone, Copy, utoipa::ToSchema)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum CruiseRequest {
    Add { route: u8, preset: u8 },
    Delete { route: u8, preset: u8 },
    Speed { route: u8, speed: u16 },
    Dwell { route: u8, secs: u16 },
    Start { route: u8 },
    Stop,
}

/// Linear scan: `start`, `set_left`/`set_right` (the limits at the current
/// position), `speed`, `stop`.
#[derive(Deserialize, Debug, Clone, Copy, utoipa::ToSchema)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum ScanRequest {
    Start { group: u8 },
    SetLeft { group: u8 },
    SetRight { group: u8 },
    Speed { group: u8, speed: u16 },
    Stop,
}

impl From<PtzSendError> for ApiError {
    fn from(e: PtzSendError) -> Self {
        match e {
            PtzSendError::Command(_) => {
                ApiError::new(StatusCode::BAD_REQUEST, "invalid_ptz", e.to_string())
            }
            PtzSendError::Gb(g) => g.into(),
            PtzSendError::Serial(_) => ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "serial_unavailable",
                e.to_string(),
            ),
            PtzSendError::Store(s) => s.into(),
        }
    }
}

/// RTSP sources are PTZ targets only through a serial binding; they are
/// keyed as device `source`, channel = the source's name.
pub const SOURCE_DEVICE: &str = "source";

async fn require_channel(
    app: &AppState,
    device_id: &str,
    channel_id: &str,
) -> Result<(), ApiError> {
    if app.gb.has_channel(device_id, channel_id).await? {
        Ok(())
    } else {
        Err(ApiError::not_found(format!(
            "device {device_id} has no channel {channel_id}"
        )))
    }
}

async fn send(
    app: &AppState,
    device_id: &str,
    channel_id: &str,
    cmd: PtzCommand,
    duration: Option<Duration>,
) -> Result<Json<Sent>, ApiError> {
    cmd.validate()
        .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, "invalid_ptz", e.to_string()))?;
    // A head on a serial port needs no GB28181 channel behind it.
    if app.ptz.binding(device_id, channel_id).await?.is_none() {
        if device_id == SOURCE_DEVICE {
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                "no_ptz",
                format!("source {channel_id:?} has no PTZ head bound to a serial port"),
            ));
        }
        require_channel(app, device_id, channel_id).await?;
    }
    Ok(Json(
        app.ptz.send(device_id, channel_id, cmd, duration).await?,
    ))
}

#[utoipa::path(post, path = "/api/v1/channels/{device_id}/{channel_id}/ptz", tag = "ptz", summary = "Pan, tilt, zoom, focus, iris, aux", params(("device_id" = String, Path, description = "Device id", example = "34020000001320000001"), ("channel_id" = String, Path, description = "Channel id", example = "34020000001310000001")), request_body = PtzRequest, responses((status = 200, description = "Where the command went", body = crate::ptz::Sent), (status = 400, description = "Out-of-range command (`invalid_ptz`) or bad body"), (status = 404, description = "No such device or channel"), (status = 409, description = "The device is offline (`device_offline`), or the source has no serial PTZ head (`no_ptz`)"), (status = 502, description = "The device refused the command (`device_error`)"), (status = 503, description = "The serial port cannot be opened (`serial_unavailable`)"), (status = 504, description = "The device did not answer in time")))]
pub async fn ptz(
    State(app): State<AppState>,
    _caller: RequireOperator,
    ApiPath((device_id, channel_id)): ApiPath<(String, String)>,
    ApiJson(req): ApiJson<PtzRequest>,
) -> Result<Json<Sent>, ApiError> {
    let (cmd, duration) = req.command();
    send(&app, &device_id, &channel_id, cmd, duration).await
}

#[utoipa::path(post, path = "/api/v1/channels/{device_id}/{channel_id}/cruise", tag = "ptz", summary = "Cruise (tour) routes", params(("device_id" = String, Path, description = "Device id", example = "34020000001320000001"), ("channel_id" = String, Path, description = "Channel id", example = "34020000001310000001")), request_body = CruiseRequest, responses((status = 200, description = "Where the command went", body = crate::ptz::Sent), (status = 400, description = "Out-of-range command (`invalid_ptz`) or bad body"), (status = 404, description = "No such device or channel"), (status = 409, description = "The device is offline (`device_offline`), or the source has no serial PTZ head (`no_ptz`)"), (status = 502, description = "The device refused the command (`device_error`)"), (status = 503, description = "The serial port cannot be opened (`serial_unavailable`)"), (status = 504, description = "The device did not answer in time")))]
pub async fn cruise(
    State(app): State<AppState>,
    _caller: RequireOperator,
    ApiPath((device_id, channel_id)): ApiPath<(String, String)>,
    ApiJson(req): ApiJson<CruiseRequest>,
) -> Result<Json<Sent>, ApiError> {
    let cmd = match req {
        CruiseRequest::Add { route, preset } => PtzCommand::CruiseAdd { route, preset },
        CruiseRequest::Delete { route, preset } => PtzCommand::CruiseDelete { route, preset },
        CruiseRequest::Speed { route, speed } => PtzCommand::CruiseSpeed { route, speed },
        CruiseRequest::Dwell { route, secs } => PtzCommand::CruiseDwell { route, secs },
        CruiseRequest::Start { route } => PtzCommand::CruiseStart { route },
        CruiseRequest::Stop => PtzCommand::Stop,
    };
    send(&app, &device_id, &channel_id, cmd, None).await
}

#[utoipa::path(post, path = "/api/v1/channels/{device_id}/{channel_id}/scan", tag = "ptz", summary = "Linear scan", params(("device_id" = String, Path, description = "Device id", example = "34020000001320000001"), ("channel_id" = String, Path, description = "Channel id", example = "34020000001310000001")), request_body = ScanRequest, responses((status = 200, description = "Where the command went", body = crate::ptz::Sent), (status = 400, description = "Out-of-range command (`invalid_ptz`) or bad body"), (status = 404, description = "No such device or channel"), (status = 409, description = "The device is offline (`device_offline`), or the source has no serial PTZ head (`no_ptz`)"), (status = 502, description = "The device refused the command (`device_error`)"), (status = 503, description = "The serial port cannot be opened (`serial_unavailable`)"), (status = 504, description = "The device did not answer in time")))]
pub async fn scan(
    State(app): State<AppState>,
    _caller: RequireOperator,
    ApiPath((device_id, channel_id)): ApiPath<(String, String)>,
    ApiJson(req): ApiJson<ScanRequest>,
) -> Result<Json<Sent>, ApiError> {
    let cmd = match req {
        ScanRequest::Start { group } => PtzCommand::ScanStart { group },
        ScanRequest::SetLeft { group } => PtzCommand::ScanSetLeft { group },
        ScanRequest::SetRight { group } => PtzCommand::ScanSetRight { group },
        ScanRequest::Speed { group, speed } => PtzCommand::ScanSpeed { group, speed },
        ScanRequest::Stop => PtzCommand::Stop,
    };
    send(&app, &device_id, &channel_id, cmd, None).await
}

#[utoipa::path(get, path = "/api/v1/channels/{device_id}/{channel_id}/presets", tag = "ptz", summary = "The presets the device reports (PresetQuery)", params(("device_id" = String, Path, description = "Device id", example = "34020000001320000001"), ("channel_id" = String, Path, description = "Channel id", example = "34020000001310000001")), responses((status = 200, description = "Presets", body = Vec<crate::gb::Preset>), (status = 404, description = "No such channel"), (status = 409, description = "The device is offline (`device_offline`)"), (status = 502, description = "The device refused or answered nonsense (`device_error`)"), (status = 504, description = "The device did not answer in time (`device_timeout`)")))]
pub async fn presets(
    State(app): State<AppState>,
    _caller: RequireOperator,
    ApiPath((device_id, channel_id)): ApiPath<(String, String)>,
) -> Result<Json<Vec<Preset>>, ApiError> {
    require_channel(&app, &device_id, &channel_id).await?;
    Ok(Json(app.gb.presets(&device_id, &channel_id).await?))
}

/// `PUT /presets/{preset}`: stores the current position as `preset`.
#[utoipa::path(put, path = "/api/v1/channels/{device_id}/{channel_id}/presets/{preset}", tag = "ptz", summary = "Store the current position as a preset", params(("device_id" = String, Path, description = "Device id", example = "34020000001320000001"), ("channel_id" = String, Path, description = "Channel id", example = "34020000001310000001"), ("preset" = u8, Path, description = "Preset number 0-255")), responses((status = 200, description = "Where the command went", body = crate::ptz::Sent), (status = 400, description = "Out-of-range command (`invalid_ptz`) or bad body"), (status = 404, description = "No such device or channel"), (status = 409, description = "The device is offline (`device_offline`), or the source has no serial PTZ head (`no_ptz`)"), (status = 502, description = "The device refused the command (`device_error`)"), (status = 503, description = "The serial port cannot be opened (`serial_unavailable`)"), (status = 504, description = "The device did not answer in time")))]
pub async fn preset_set(
    State(app): State<AppState>,
    _caller: RequireOperator,
    ApiPath((device_id, channel_id, preset)): ApiPath<(String, String, u8)>,
) -> Result<Json<Sent>, ApiError> {
    send(
        &app,
        &device_id,
        &channel_id,
        PtzCommand::PresetSet(preset),
        None,
    )
    .await
}

/// `POST /presets/{preset}/call`.
#[utoipa::path(post, path = "/api/v1/channels/{device_id}/{channel_id}/presets/{preset}/call", tag = "ptz", summary = "Go to a preset", params(("device_id" = String, Path, description = "Device id", example = "34020000001320000001"), ("channel_id" = String, Path, description = "Channel id", example = "34020000001310000001"), ("preset" = u8, Path, description = "Preset number 0-255")), responses((status = 200, description = "Where the command went", body = crate::ptz::Sent), (status = 400, description = "Out-of-range command (`invalid_ptz`) or bad body"), (status = 404, description = "No such device or channel"), (status = 409, description = "The device is offline (`device_offline`), or the source has no serial PTZ head (`no_ptz`)"), (status = 502, description = "The device refused the command (`device_error`)"), (status = 503, description = "The serial port cannot be opened (`serial_unavailable`)"), (status = 504, description = "The device did not answer in time")))]
pub async fn preset_call(
    State(app): State<AppState>,
    _caller: RequireOperator,
    ApiPath((device_id, channel_id, preset)): ApiPath<(String, String, u8)>,
) -> Result<Json<Sent>, ApiError> {
    send(
        &app,
        &device_id,
        &channel_id,
        PtzCommand::PresetCall(preset),
        None,
    )
    .await
}

#[utoipa::path(delete, path = "/api/v1/channels/{device_id}/{channel_id}/presets/{preset}", tag = "ptz", summary = "Delete a preset", params(("device_id" = String, Path, description = "Device id", example = "34020000001320000001"), ("channel_id" = String, Path, description = "Channel id", example = "34020000001310000001"), ("preset" = u8, Path, description = "Preset number 0-255")), responses((status = 200, description = "Where the command went", body = crate::ptz::Sent), (status = 400, description = "Out-of-range command (`invalid_ptz`) or bad body"), (status = 404, description = "No such device or channel"), (status = 409, description = "The device is offline (`device_offline`), or the source has no serial PTZ head (`no_ptz`)"), (status = 502, description = "The device refused the command (`device_error`)"), (status = 503, description = "The serial port cannot be opened (`serial_unavailable`)"), (status = 504, description = "The device did not answer in time")))]
pub async fn preset_delete(
    State(app): State<AppState>,
    _caller: RequireOperator,
    ApiPath((device_id, channel_id, preset)): ApiPath<(String, String, u8)>,
) -> Result<Json<Sent>, ApiError> {
    send(
        &app,
        &device_id,
        &channel_id,
        PtzCommand::PresetDelete(preset),
        None,
    )
    .await
}

/// Device-level DeviceControl commands (GB/T 28181-2016 A.2.3.1).
#[derive(Deserialize, Debug, Clone, Copy, PartialEq, Eq, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum DeviceCommand {
    /// `TeleBoot`: restart the device (admin only).
    Reboot,
    /// `RecordCmd Record` / `StopRecord` on a channel.
    RecordStart,
    RecordStop,
    /// `GuardCmd SetGuard` / `ResetGuard`: arm or disarm alarms.
    GuardOn,
    GuardOff,
    /// `AlarmCmd ResetAlarm`: acknowledge an alarm.
    ResetAlarm,
    /// `IFameCmd Send`: ask for a keyframe now.
    Keyframe,
}

#[derive(Deserialize, Debug, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = DeviceControlRequest)]
pub struct ControlRequest {
    pub command: DeviceCommand,
    /// The channel the command is for (record, keyframe, alarms of one
    /// input); default: the device.
    pub channel_id: Option<String>,
}

#[derive(Serialize, Debug, utoipa::ToSchema)]
#[schema(as = DeviceControlResult)]
pub struct ControlResult {
    pub command: DeviceCommand,
    /// The device's `<Result>` for commands the standard answers (record,
    /// guard, alarm reset); absent for the others, which only get SIP 200.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub result: Option<String>,
}

impl Serialize for DeviceCommand {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(match self {
            DeviceCommand::Reboot => "reboot",
            DeviceCommand::RecordStart => "record_start",
            DeviceCommand::RecordStop => "record_stop",
            DeviceCommand::GuardOn => "guard_on",
            DeviceCommand::GuardOff => "guard_off",
            DeviceCommand::ResetAlarm => "reset_alarm",
            DeviceCommand::Keyframe => "keyframe",
        })
    }
}

#[utoipa::path(post, path = "/api/v1/devices/{id}/control", tag = "devices", summary = "DeviceControl: reboot (admin), record, guard, alarm reset, keyframe", params(("id" = String, Path, description = "Device id (GB28181: 20 digits)", example = "34020000001320000001")), request_body = ControlRequest, responses((status = 200, description = "Sent; the device's result when it gives one", body = ControlResult), (status = 404, description = "No such device or channel"), (status = 409, description = "The device is offline (`device_offline`)"), (status = 502, description = "The device refused or answered nonsense (`device_error`)"), (status = 504, description = "The device did not answer in time (`device_timeout`)")))]
pub async fn device_control(
    State(app): State<AppState>,
    RequireOperator(caller): RequireOperator,
    ApiPath(device_id): ApiPath<String>,
    ApiJson(req): ApiJson<ControlRequest>,
) -> Result<Json<ControlResult>, ApiError> {
    // Operators control; rebooting a device is for admins.
    if req.command == DeviceCommand::Reboot {
        caller.require(TokenRole::Admin)?;
    }
    let target = match &req.channel_id {
        Some(ch) => {
            require_channel(&app, &device_id, ch).await?;
            ch.clone()
        }
        None => device_id.clone(),
    };
    let field: (&str, &str) = match req.command {
        DeviceCommand::Reboot => ("TeleBoot", "Boot"),
        DeviceCommand::RecordStart => ("RecordCmd", "Record"),
        DeviceCommand::RecordStop => ("RecordCmd", "StopRecord"),
        DeviceCommand::GuardOn => ("GuardCmd", "SetGuard"),
        DeviceCommand::GuardOff => ("GuardCmd", "ResetGuard"),
        DeviceCommand::ResetAlarm => ("AlarmCmd", "ResetAlarm"),
        DeviceCommand::Keyframe => ("IFameCmd", "Send"),
    };
    let result = app.gb.device_control(&device_id, &target, &[field]).await?;
    tracing::info!(
        device_id,
        channel_id = target,
        command = field.0,
        value = field.1,
        ?result,
        "device control"
    );
    Ok(Json(ControlResult {
        command: req.command,
        result,
    }))
}

/// `GET …/ptz/serial`: the channel's RS-485 binding.
#[utoipa::path(get, path = "/api/v1/channels/{device_id}/{channel_id}/ptz/serial", tag = "ptz", summary = "The channel's RS-485 PTZ binding", params(("device_id" = String, Path, description = "Device id", example = "34020000001320000001"), ("channel_id" = String, Path, description = "Channel id", example = "34020000001310000001")), responses((status = 200, description = "The binding", body = crate::store::ptz::SerialBinding), (status = 404, description = "No binding")))]
pub async fn serial_get(
    State(app): State<AppState>,
    _caller: RequireOperator,
    ApiPath((device_id, channel_id)): ApiPath<(String, String)>,
) -> Result<Json<SerialBinding>, ApiError> {
    app.ptz
        .binding(&device_id, &channel_id)
        .await?
        .map(Json)
        .ok_or_else(|| ApiError::not_found("no serial binding for this channel"))
}

/// `PUT …/ptz/serial`: binds the channel's PTZ to a head on a serial port.
#[utoipa::path(put, path = "/api/v1/channels/{device_id}/{channel_id}/ptz/serial", tag = "ptz", summary = "Bind the channel's PTZ to a head on a serial port (admin)", params(("device_id" = String, Path, description = "Device id", example = "34020000001320000001"), ("channel_id" = String, Path, description = "Channel id", example = "34020000001310000001")), request_body = crate::store::ptz::SerialBinding, responses((status = 200, description = "Stored", body = crate::store::ptz::SerialBinding)))]
pub async fn serial_put(
    State(app): State<AppState>,
    _caller: RequireAdmin,
    ApiPath((device_id, channel_id)): ApiPath<(String, String)>,
    ApiJson(binding): ApiJson<SerialBinding>,
) -> Result<Json<SerialBinding>, ApiError> {
    binding
        .validate()
        .map_err(|(field, msg)| ApiError::invalid_field(field, msg))?;
    if device_id != SOURCE_DEVICE {
        crate::gb::platform::valid_device_id(&device_id)
            .then_some(())
            .ok_or_else(|| ApiError::invalid_field("device_id", "not a 20-digit GB28181 id"))?;
    }
    let (d, c, b) = (device_id.clone(), channel_id.clone(), binding.clone());
    app.store
        .call(move |conn| db::put_serial_binding(conn, &d, &c, &b))
        .await?;
    tracing::info!(device_id, channel_id, port = %binding.port, protocol = ?binding.protocol, address = binding.address, "PTZ bound to a serial port");
    Ok(Json(binding))
}

#[utoipa::path(delete, path = "/api/v1/channels/{device_id}/{channel_id}/ptz/serial", tag = "ptz", summary = "Remove the serial binding (admin)", params(("device_id" = String, Path, description = "Device id", example = "34020000001320000001"), ("channel_id" = String, Path, description = "Channel id", example = "34020000001310000001")), responses((status = 204, description = "Removed"), (status = 404, description = "No binding")))]
pub async fn serial_delete(
    State(app): State<AppState>,
    _caller: RequireAdmin,
    ApiPath((device_id, channel_id)): ApiPath<(String, String)>,
) -> Result<StatusCode, ApiError> {
    let (d, c) = (device_id.clone(), channel_id.clone());
    if app
        .store
        .call(move |conn| db::delete_serial_binding(conn, &d, &c))
        .await?
    {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::not_found("no serial binding for this channel"))
    }
}

/// `POST /api/v1/sources/{name}/ptz`: PTZ of an RTSP source's head on a
/// serial port (same body as the channel route).
#[utoipa::path(post, path = "/api/v1/sources/{name}/ptz", tag = "ptz", summary = "PTZ of an RTSP source's head on a serial port", params(("name" = String, Path, description = "Source name (the stream id)")), request_body = PtzRequest, responses((status = 200, description = "Where the command went", body = crate::ptz::Sent), (status = 400, description = "Out-of-range command (`invalid_ptz`) or bad body"), (status = 404, description = "No such device or channel"), (status = 409, description = "The device is offline (`device_offline`), or the source has no serial PTZ head (`no_ptz`)"), (status = 502, description = "The device refused the command (`device_error`)"), (status = 503, description = "The serial port cannot be opened (`serial_unavailable`)"), (status = 504, description = "The device did not answer in time")))]
pub async fn source_ptz(
    State(app): State<AppState>,
    _caller: RequireOperator,
    ApiPath(name): ApiPath<String>,
    ApiJson(req): ApiJson<PtzRequest>,
) -> Result<Json<Sent>, ApiError> {
    let (cmd, duration) = req.command();
    send(&app, SOURCE_DEVICE, &name, cmd, duration).await
}

#[utoipa::path(get, path = "/api/v1/sources/{name}/ptz/serial", tag = "ptz", summary = "The source's RS-485 PTZ binding", params(("name" = String, Path, description = "Source name (the stream id)")), responses((status = 200, description = "The binding", body = crate::store::ptz::SerialBinding), (status = 404, description = "No binding")))]
pub async fn source_serial_get(
    state: State<AppState>,
    caller: RequireOperator,
    ApiPath(name): ApiPath<String>,
) -> Result<Json<SerialBinding>, ApiError> {
    serial_get(state, caller, ApiPath((SOURCE_DEVICE.to_owned(), name))).await
}

#[utoipa::path(put, path = "/api/v1/sources/{name}/ptz/serial", tag = "ptz", summary = "Bind the source's PTZ to a head on a serial port (admin)", params(("name" = String, Path, description = "Source name (the stream id)")), request_body = crate::store::ptz::SerialBinding, responses((status = 200, description = "Stored", body = crate::store::ptz::SerialBinding)))]
pub async fn source_serial_put(
    state: State<AppState>,
    caller: RequireAdmin,
    ApiPath(name): ApiPath<String>,
    body: ApiJson<SerialBinding>,
) -> Result<Json<SerialBinding>, ApiError> {
    serial_put(
        state,
        caller,
        ApiPath((SOURCE_DEVICE.to_owned(), name)),
        body,
    )
    .await
}

#[utoipa::path(delete, path = "/api/v1/sources/{name}/ptz/serial", tag = "ptz", summary = "Remove the source's serial binding (admin)", params(("name" = String, Path, description = "Source name (the stream id)")), responses((status = 204, description = "Removed"), (status = 404, description = "No binding")))]
pub async fn source_serial_delete(
    state: State<AppState>,
    caller: RequireAdmin,
    ApiPath(name): ApiPath<String>,
) -> Result<StatusCode, ApiError> {
    serial_delete(state, caller, ApiPath((SOURCE_DEVICE.to_owned(), name))).await
}

/// `POST …/ptz/precise` (GB/T 28181-2022 A.2.3.1.13 PTZPreciseCtrl): absolute
/// pan (0–360°), tilt (-90–90°) and zoom (1–100×). Only devices that
/// registered as 2022 (X-GB-Ver 3.0 or later) understand it.
#[derive(Deserialize, Debug, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PreciseRequest {
    #[schema(minimum = 0, maximum = 360)]
    pub pan: f64,
    #[schema(minimum = -90, maximum = 90)]
    pub tilt: f64,
    #[schema(minimum = 1, maximum = 100)]
    pub zoom: f64,
}

#[derive(Serialize, Debug, utoipa::ToSchema)]
pub struct ControlSent {
    pub command: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub result: Option<String>,
}

#[utoipa::path(post, path = "/api/v1/channels/{device_id}/{channel_id}/ptz/precise", tag = "ptz", summary = "Absolute position (PTZPreciseCtrl, GB/T 28181-2022)", params(("device_id" = String, Path, description = "Device id", example = "34020000001320000001"), ("channel_id" = String, Path, description = "Channel id", example = "34020000001310000001")), request_body = PreciseRequest, responses((status = 200, description = "Sent", body = ControlSent), (status = 404, description = "No such channel"), (status = 409, description = "Offline (`device_offline`) or not a 2022 device (`not_supported`)"), (status = 502, description = "The device refused"), (status = 504, description = "No answer")))]
pub async fn precise(
    State(app): State<AppState>,
    _caller: RequireOperator,
    ApiPath((device_id, channel_id)): ApiPath<(String, String)>,
    ApiJson(req): ApiJson<PreciseRequest>,
) -> Result<Json<ControlSent>, ApiError> {
    for (field, v, lo, hi) in [
        ("pan", req.pan, 0.0, 360.0),
        ("tilt", req.tilt, -90.0, 90.0),
        ("zoom", req.zoom, 1.0, 100.0),
    ] {
        if !v.is_finite() || v < lo || v > hi {
            return Err(ApiError::invalid_field(
                field,
                format!("{field} must be {lo}-{hi}"),
            ));
        }
    }
    require_channel(&app, &device_id, &channel_id).await?;
    let id = device_id.clone();
    let version = app
        .store
        .call(move |c| db::get_device(c, &id))
        .await?
        .and_then(|d| d.gb_version);
    let major = version
        .as_deref()
        .and_then(|v| v.split('.').next())
        .and_then(|m| m.trim().parse::<u32>().ok())
        .unwrap_or(2);
    if major < 3 {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "not_supported",
            format!(
                "PTZPreciseCtrl needs a GB/T 28181-2022 device; {device_id} registered as {}",
                version.as_deref().unwrap_or("2016 (no X-GB-Ver)")
            ),
        ));
    }
    let (pan, tilt, zoom) = (
        format!("{:.2}", req.pan),
        format!("{:.2}", req.tilt),
        format!("{:.2}", req.zoom),
    );
    let result = app
        .gb
        .device_control_group(
            &device_id,
            &channel_id,
            crate::gb::ControlField::Group(
                "PTZPreciseCtrl",
                &[("Pan", &pan), ("Tilt", &tilt), ("Zoom", &zoom)],
            ),
        )
        .await?;
    Ok(Json(ControlSent {
        command: "PTZPreciseCtrl",
        result,
    }))
}

/// `PUT …/home`: the home position (GB/T 28181-2016 A.2.3.1.10): after
/// `reset_secs` without commands the camera returns to `preset`.
#[derive(Deserialize, Debug, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct HomeRequest {
    pub enabled: bool,
    #[serde(default)]
    pub reset_secs: u32,
    #[serde(default)]
    pub preset: u8,
}

#[utoipa::path(put, path = "/api/v1/channels/{device_id}/{channel_id}/home", tag = "ptz", summary = "Home position (HomePosition)", params(("device_id" = String, Path, description = "Device id", example = "34020000001320000001"), ("channel_id" = String, Path, description = "Channel id", example = "34020000001310000001")), request_body = HomeRequest, responses((status = 200, description = "Sent", body = ControlSent), (status = 404, description = "No such channel"), (status = 409, description = "The device is offline (`device_offline`)"), (status = 502, description = "The device refused or answered nonsense (`device_error`)"), (status = 504, description = "The device did not answer in time (`device_timeout`)")))]
pub async fn home(
    State(app): State<AppState>,
    _caller: RequireOperator,
    ApiPath((device_id, channel_id)): ApiPath<(String, String)>,
    ApiJson(req): ApiJson<HomeRequest>,
) -> Result<Json<ControlSent>, ApiError> {
    if req.enabled && req.preset == 0 {
        return Err(ApiError::invalid_field(
            "preset",
            "preset must be 1-255 when enabled",
        ));
    }
    require_channel(&app, &device_id, &channel_id).await?;
    let (enabled, reset, preset) = (
        if req.enabled { "1" } else { "0" }.to_owned(),
        req.reset_secs.to_string(),
        req.preset.to_string(),
    );
    let result = app
        .gb
        .device_control_group(
            &device_id,
            &channel_id,
            crate::gb::ControlField::Group(
                "HomePosition",
                &[
                    ("Enabled", &enabled),
                    ("ResetTime", &reset),
                    ("PresetIndex", &preset),
                ],
            ),
        )
        .await?;
    Ok(Json(ControlSent {
        command: "HomePosition",
        result,
    }))
}
