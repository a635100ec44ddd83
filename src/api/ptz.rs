//! PTZ and other device control: `/api/v1/channels/{deviceId}/{channelId}/ptz`,
//! `/presets`, `/cruise`, `/scan`, and `/api/v1/devices/{id}/control`.

use std::time::Duration;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};

use super::{ApiError, ApiJson, AppState, Caller};
use crate::gb::Preset;
use crate::ptz::{Focus, Iris, Pan, PtzCommand, Tilt, Zoom};
use crate::store::TokenRole;

fn default_speed() -> u8 {
    128
}

fn default_zoom_speed() -> u8 {
    8
}

/// A PTZ request. Motion (`move`, `zoom`, `focus`, `iris`) continues until
/// `stop`/`lens_stop`, until `duration_ms` has passed, or at most
/// [`crate::ptz::MAX_MOTION`].
#[derive(Deserialize, Debug, Clone, Copy)]
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
#[derive(Deserialize, Debug, Clone, Copy)]
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
#[derive(Deserialize, Debug, Clone, Copy)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum ScanRequest {
    Start { group: u8 },
    SetLeft { group: u8 },
    SetRight { group: u8 },
    Speed { group: u8, speed: u16 },
    Stop,
}

#[derive(Serialize, Debug)]
pub struct Sent {
    /// The GB28181 PTZCmd sent, as 16 hex digits.
    pub ptz_cmd: String,
}

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
    let ptz_cmd = cmd
        .to_gb_hex(1)
        .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, "invalid_ptz", e.to_string()))?;
    require_channel(app, device_id, channel_id).await?;
    app.ptz.send(device_id, channel_id, cmd, duration).await?;
    Ok(Json(Sent { ptz_cmd }))
}

pub async fn ptz(
    State(app): State<AppState>,
    caller: Caller,
    Path((device_id, channel_id)): Path<(String, String)>,
    ApiJson(req): ApiJson<PtzRequest>,
) -> Result<Json<Sent>, ApiError> {
    caller.require(TokenRole::Operator)?;
    let (cmd, duration) = req.command();
    send(&app, &device_id, &channel_id, cmd, duration).await
}

pub async fn cruise(
    State(app): State<AppState>,
    caller: Caller,
    Path((device_id, channel_id)): Path<(String, String)>,
    ApiJson(req): ApiJson<CruiseRequest>,
) -> Result<Json<Sent>, ApiError> {
    caller.require(TokenRole::Operator)?;
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

pub async fn scan(
    State(app): State<AppState>,
    caller: Caller,
    Path((device_id, channel_id)): Path<(String, String)>,
    ApiJson(req): ApiJson<ScanRequest>,
) -> Result<Json<Sent>, ApiError> {
    caller.require(TokenRole::Operator)?;
    let cmd = match req {
        ScanRequest::Start { group } => PtzCommand::ScanStart { group },
        ScanRequest::SetLeft { group } => PtzCommand::ScanSetLeft { group },
        ScanRequest::SetRight { group } => PtzCommand::ScanSetRight { group },
        ScanRequest::Speed { group, speed } => PtzCommand::ScanSpeed { group, speed },
        ScanRequest::Stop => PtzCommand::Stop,
    };
    send(&app, &device_id, &channel_id, cmd, None).await
}

pub async fn presets(
    State(app): State<AppState>,
    caller: Caller,
    Path((device_id, channel_id)): Path<(String, String)>,
) -> Result<Json<Vec<Preset>>, ApiError> {
    caller.require(TokenRole::Operator)?;
    require_channel(&app, &device_id, &channel_id).await?;
    Ok(Json(app.gb.presets(&device_id, &channel_id).await?))
}

/// `PUT /presets/{preset}`: stores the current position as `preset`.
pub async fn preset_set(
    State(app): State<AppState>,
    caller: Caller,
    Path((device_id, channel_id, preset)): Path<(String, String, u8)>,
) -> Result<Json<Sent>, ApiError> {
    caller.require(TokenRole::Operator)?;
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
pub async fn preset_call(
    State(app): State<AppState>,
    caller: Caller,
    Path((device_id, channel_id, preset)): Path<(String, String, u8)>,
) -> Result<Json<Sent>, ApiError> {
    caller.require(TokenRole::Operator)?;
    send(
        &app,
        &device_id,
        &channel_id,
        PtzCommand::PresetCall(preset),
        None,
    )
    .await
}

pub async fn preset_delete(
    State(app): State<AppState>,
    caller: Caller,
    Path((device_id, channel_id, preset)): Path<(String, String, u8)>,
) -> Result<Json<Sent>, ApiError> {
    caller.require(TokenRole::Operator)?;
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
#[derive(Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
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

#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
pub struct ControlRequest {
    pub command: DeviceCommand,
    /// The channel the command is for (record, keyframe, alarms of one
    /// input); default: the device.
    pub channel_id: Option<String>,
}

#[derive(Serialize, Debug)]
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

pub async fn device_control(
    State(app): State<AppState>,
    caller: Caller,
    Path(device_id): Path<String>,
    ApiJson(req): ApiJson<ControlRequest>,
) -> Result<Json<ControlResult>, ApiError> {
    caller.require(if req.command == DeviceCommand::Reboot {
        TokenRole::Admin
    } else {
        TokenRole::Operator
    })?;
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
