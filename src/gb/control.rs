//! DeviceControl and PTZ-related queries to devices (GB/T 28181-2016
//! §9.3 / appendix A.2.3; gb28181.md §3–4). A child of `platform`, so it
//! reaches the private SIP plumbing.

use serde::Serialize;
use tokio::sync::oneshot;

use super::{Answer, GbError, Platform, lock};
use crate::gb::manscdp::{self, Body, CmdType};
use crate::ptz::PtzCommand;

/// A DeviceControl command that the standard answers with a Response
/// carrying `<Result>` (RecordCmd, GuardCmd, AlarmCmd, HomePosition);
/// PTZCmd, TeleBoot and IFameCmd get only the SIP 200.
fn answered(command: &str) -> bool {
    ["RecordCmd", "GuardCmd", "AlarmCmd", "HomePosition"]
        .iter()
        .any(|c| c.eq_ignore_ascii_case(command))
}

/// One preset a device reports (Response/PresetQuery `PresetList/Item`).
#[derive(Clone, Debug, Serialize, PartialEq, Eq, utoipa::ToSchema)]
pub struct Preset {
    pub id: u8,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

/// The presets in a Response/PresetQuery; items without a usable id are
/// skipped.
pub fn presets_of(body: &Body) -> Vec<Preset> {
    let Body::Other(el) = body else {
        return Vec::new();
    };
    let Some(list) = el.child("PresetList") else {
        return Vec::new();
    };
    list.children_named("Item")
        .filter_map(|item| {
            let id = item.child_text("PresetID")?.trim().parse::<u8>().ok()?;
            let name = item
                .child_text("PresetName")
                .map(str::trim)
                .filter(|n| !n.is_empty())
                .map(str::to_owned);
            Some(Preset { id, name })
        })
        .collect()
}

/// `<Control>` DeviceControl with `fields` after the DeviceID (the target:
/// a channel, or the device itself) and the `<Info>` block PTZ commands
/// carry (ControlPriority 5, the highest user priority).
fn control_xml(sn: u64, target_id: &str, fields: &[(&str, &str)], with_priority: bool) -> String {
    let mut xml = manscdp::build_message(
        manscdp::Root::Control,
        "DeviceControl",
        sn,
        target_id,
        fields,
    );
    if with_priority && let Some(at) = xml.rfind("</Control>") {
        xml.insert_str(
            at,
            "<Info>\r\n<ControlPriority>5</ControlPriority>\r\n</Info>\r\n",
        );
    }
    xml
}

/// One element of a DeviceControl body: plain text, or a group of text
/// children (`<HomePosition>`, `<PTZPreciseCtrl>`).
pub enum ControlField<'a> {
    Text(&'a str, &'a str),
    Group(&'a str, &'a [(&'a str, &'a str)]),
}

/// `<Control>` DeviceControl with one nested command element.
fn control_group_xml(sn: u64, target_id: &str, name: &str, children: &[(&str, &str)]) -> String {
    let mut xml =
        manscdp::build_message(manscdp::Root::Control, "DeviceControl", sn, target_id, &[]);
    let mut group = format!("<{name}>\r\n");
    for (n, v) in children {
        group.push_str(&format!("<{n}>{}</{n}>\r\n", manscdp::escape_text(v)));
    }
    group.push_str(&format!("</{name}>\r\n"));
    if let Some(at) = xml.rfind("</Control>") {
        xml.insert_str(at, &group);
    }
    xml
}

impl Platform {
    /// [`Platform::device_control`] for a command whose element has children
    /// (HomePosition, 2022's PTZPreciseCtrl).
    pub async fn device_control_group(
        &self,
        device_id: &str,
        target_id: &str,
        field: ControlField<'_>,
    ) -> Result<Option<String>, GbError> {
        match field {
            ControlField::Text(n, v) => self.device_control(device_id, target_id, &[(n, v)]).await,
            ControlField::Group(name, children) => {
                self.device_target(device_id)?;
                let sn = self.next_sn();
                let xml = control_group_xml(sn, target_id, name, children);
                self.control_exchange(device_id, name, sn, xml).await
            }
        }
    }

    /// Sends a DeviceControl to `target_id` (a channel of `device_id`, or the
    /// device) and, for commands the standard answers, waits for the
    /// device's `<Result>`; `Ok(Some(result))` then.
    pub async fn device_control(
        &self,
        device_id: &str,
        target_id: &str,
        fields: &[(&str, &str)],
    ) -> Result<Option<String>, GbError> {
        self.device_target(device_id)?;
        let command = fields.first().map_or("", |f| f.0);
        let sn = self.next_sn();
        let with_priority = command.eq_ignore_ascii_case("PTZCmd");
        let xml = control_xml(sn, target_id, fields, with_priority);
        self.control_exchange(device_id, command, sn, xml).await
    }

    /// Sends a DeviceControl body and, for commands the standard answers,
    /// waits for the device's `<Result>`.
    async fn control_exchange(
        &self,
        device_id: &str,
        command: &str,
        sn: u64,
        xml: String,
    ) -> Result<Option<String>, GbError> {
        if !answered(command) {
            let code = self.send_message(device_id, xml).await?;
            return if (200..300).contains(&code) {
                tracing::info!(device_id, command, "device control sent");
                Ok(None)
            } else {
                Err(GbError::Rejected {
                    device_id: device_id.to_owned(),
                    cmd: command.to_owned(),
                    code,
                })
            };
        }
        // The Response comes as a MESSAGE with the target as DeviceID on
        // most devices, with the device's own id on some; the waiter is
        // keyed by the device the MESSAGE came from.
        let key = (device_id.to_owned(), "devicecontrol".to_owned(), sn);
        let (tx, rx) = oneshot::channel();
        lock(&self.waiters).insert(key.clone(), tx);
        let result = async {
            let code = self.send_message(device_id, xml).await?;
            if !(200..300).contains(&code) {
                return Err(GbError::Rejected {
                    device_id: device_id.to_owned(),
                    cmd: command.to_owned(),
                    code,
                });
            }
            match tokio::time::timeout(self.config.query_timeout, rx).await {
                Ok(Ok(Answer::Message(m))) => Ok(Some(match &m.body {
                    Body::Other(el) => el.child_text("Result").unwrap_or("").trim().to_owned(),
                    _ => String::new(),
                })),
                _ => Err(GbError::NoAnswer {
                    device_id: device_id.to_owned(),
                    cmd: command.to_owned(),
                    secs: self.config.query_timeout.as_secs(),
                }),
            }
        }
        .await;
        lock(&self.waiters).remove(&key);
        result
    }

    /// Sends one PTZ command to a channel as `<PTZCmd>`.
    pub async fn ptz(
        &self,
        device_id: &str,
        channel_id: &str,
        cmd: &PtzCommand,
    ) -> Result<(), GbError> {
        let hex = cmd
            .to_gb_hex(1)
            .map_err(|e| GbError::BadRequest(e.to_string()))?;
        tracing::debug!(device_id, channel_id, ptz = ?cmd, hex, "PTZ");
        self.device_control(device_id, channel_id, &[("PTZCmd", &hex)])
            .await
            .map(|_| ())
    }

    /// The channel's presets (Query/PresetQuery).
    pub async fn presets(&self, device_id: &str, channel_id: &str) -> Result<Vec<Preset>, GbError> {
        match self
            .query_for(device_id, channel_id, CmdType::PresetQuery.as_str(), &[])
            .await?
        {
            Answer::Message(m) => Ok(presets_of(&m.body)),
            _ => Ok(Vec::new()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ptz_control_carries_priority_and_parses() {
        let xml = control_xml(
            7,
            "34020000001310000001",
            &[("PTZCmd", "A50F0100000000B5")],
            true,
        );
        let m = manscdp::parse(xml.as_bytes(), None).unwrap().message;
        assert_eq!(m.root, manscdp::Root::Control);
        assert_eq!(m.cmd_type, CmdType::DeviceControl);
        assert_eq!(m.sn, 7);
        let Body::Other(el) = m.body else {
            panic!("{:?}", m.body)
        };
        assert_eq!(el.child_text("PTZCmd"), Some("A50F0100000000B5"));
        assert_eq!(
            el.child("Info")
                .and_then(|i| i.child_text("ControlPriority")),
            Some("5")
        );
        let plain = control_xml(8, "34020000001320000001", &[("TeleBoot", "Boot")], false);
        assert!(!plain.contains("Info"));
    }

    #[test]
    fn nested_commands_are_written_as_groups() {
        let xml = control_group_xml(
            9,
            "34020000001310000001",
            "PTZPreciseCtrl",
            &[("Pan", "120.5"), ("Tilt", "-10"), ("Zoom", "2")],
        );
        let m = manscdp::parse(xml.as_bytes(), None).unwrap().message;
        let Body::Other(el) = m.body else { panic!() };
        let g = el.child("PTZPreciseCtrl").unwrap();
        assert_eq!(g.child_text("Pan"), Some("120.5"));
        assert_eq!(g.child_text("Tilt"), Some("-10"));
    }

    #[test]
    fn preset_lists_are_read_leniently() {
        let body = "<?xml version=\"1.0\"?><Response><CmdType>PresetQuery</CmdType><SN>3</SN>\
            <DeviceID>34020000001310000001</DeviceID><PresetList Num=\"3\">\
            <Item><PresetID>1</PresetID><PresetName>门口</PresetName></Item>\
            <Item><PresetID>x</PresetID><PresetName>bad</PresetName></Item>\
            <Item><PresetID> 12 </PresetID><PresetName></PresetName></Item>\
            </PresetList></Response>";
        let m = manscdp::parse(body.as_bytes(), None).unwrap().message;
        assert_eq!(
            presets_of(&m.body),
            vec![
                Preset {
                    id: 1,
                    name: Some("门口".into())
                },
                Preset { id: 12, name: None },
            ]
        );
    }
}
