//! MANSCDP: the XML bodies GB/T 28181 carries in SIP MESSAGE/NOTIFY/SUBSCRIBE
//! (`Application/MANSCDP+xml`, gb28181.md §3).
//!
//! Sans-IO and bounded; malformed input gives a [`ManscdpError`], never a panic.
//!
//! Reading a body ([`parse`]):
//! 1. size check (≤ [`MAX_BODY`]);
//! 2. charset ([`decode_body`]): a per-device override wins, else valid UTF-8
//!    is UTF-8 whatever the declaration says, else GB18030 (gb28181.md §2);
//! 3. refuse `<!DOCTYPE`/`<!ENTITY` (XML bomb defence), escape the bare `&`
//!    Hikvision sends (gb28181.md §2);
//! 4. build a bounded element tree (depth ≤ [`MAX_DEPTH`], ≤ [`MAX_ELEMENTS`]
//!    elements, text cut at [`MAX_TEXT`] bytes);
//! 5. read the header (`CmdType`, `SN`, `DeviceID`, all required) and a typed
//!    [`Body`] for the messages the platform acts on; anything else is kept as
//!    [`Body::Other`] with its element tree.
//!
//! Names are matched ignoring ASCII case (devices and OCR'd 2022 texts vary,
//! gb28181.md §3). Numbers that do not parse read as `None`: devices send junk.
//!
//! Writing ([`query`], [`query_with`], [`response_ok`]) produces a `String`
//! declared as UTF-8; [`encode_body`] turns it into the bytes for a device's
//! charset and rewrites the declaration to match.

mod tree;

#[cfg(test)]
mod tests;

use std::borrow::Cow;
use std::fmt;

use serde::{Serialize, Serializer};

pub use tree::{Element, MAX_ATTRIBUTES, MAX_DEPTH, MAX_ELEMENTS, MAX_TEXT};

/// Largest body accepted, in bytes. A full 10,000-record catalog MESSAGE
/// (the standard's per-message cap, gb28181.md §3) of minimal items fits.
pub const MAX_BODY: usize = 1024 * 1024;
/// Most `<Item>`s read from one list (DeviceList, RecordList, Alarmstatus,
/// Keepalive Info): "at most 10000 records per message" (gb28181.md §3).
pub const MAX_ITEMS: usize = 10_000;

/// The label written in the XML declaration for GB18030 output. 2016 devices
/// declare and expect `GB2312` (gb28181.md §2); the bytes are GB18030, a
/// superset, so text inside GB2312 encodes identically and rare characters
/// (WVP #1344) still survive on decoders that are really GBK/GB18030.
pub const GB18030_DECLARED_LABEL: &str = "GB2312";

// ---------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------

/// Why a MANSCDP body could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ManscdpError {
    #[error("MANSCDP body is {len} bytes, over the {max}-byte limit")]
    TooLarge { len: usize, max: usize },
    #[error(
        "MANSCDP body contains <!{keyword} at byte {offset}: DTDs and entity declarations are refused (XML bomb defence)"
    )]
    Dtd {
        keyword: &'static str,
        offset: usize,
    },
    #[error("MANSCDP XML malformed near byte {offset}: {message}")]
    Xml { offset: u64, message: String },
    #[error("MANSCDP body ends inside <{element}> (truncated or fragmented message?)")]
    Truncated { element: String },
    #[error("MANSCDP body has no root element")]
    NoRoot,
    #[error("MANSCDP XML nests deeper than {max} elements at <{element}>")]
    TooDeep { max: usize, element: String },
    #[error("MANSCDP body has more than {max} elements")]
    TooManyElements { max: usize },
    #[error("MANSCDP <{list}> has more than {max} items")]
    TooManyItems { list: &'static str, max: usize },
    #[error("MANSCDP root <{0}> is not Query, Response, Notify or Control")]
    UnknownRoot(String),
    #[error("MANSCDP <{root}> lacks the required <{element}> element")]
    Missing { root: Root, element: &'static str },
    #[error("MANSCDP <SN> {0:?} is not an unsigned decimal number")]
    InvalidSn(String),
}

// ---------------------------------------------------------------------------
// Charset
// ---------------------------------------------------------------------------

/// The character sets GB28181 devices send (gb28181.md §2): UTF-8, or
/// GB2312/GBK/GB18030, all read and written as GB18030 (a superset).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Charset {
    Utf8,
    Gb18030,
}

impl Charset {
    /// The label [`encode_body`] writes in the XML declaration: `UTF-8`, or
    /// [`GB18030_DECLARED_LABEL`] (`GB2312`) for GB18030 bytes.
    pub fn declared_label(self) -> &'static str {
        match self {
            Charset::Utf8 => "UTF-8",
            Charset::Gb18030 => GB18030_DECLARED_LABEL,
        }
    }

    /// A charset from a configuration or declaration label: `utf-8`/`utf8`,
    /// or `gb2312`/`gbk`/`gb18030`/`cp936` (ASCII case ignored).
    pub fn from_label(label: &str) -> Option<Charset> {
        let l = label.trim();
        if l.eq_ignore_ascii_case("utf-8") || l.eq_ignore_ascii_case("utf8") {
            Some(Charset::Utf8)
        } else if ["gb2312", "gbk", "gb18030", "cp936", "gb_2312-80"]
            .iter()
            .any(|g| l.eq_ignore_ascii_case(g))
        {
            Some(Charset::Gb18030)
        } else {
            None
        }
    }
}

impl fmt::Display for Charset {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Charset::Utf8 => "UTF-8",
            Charset::Gb18030 => "GB18030",
        })
    }
}

/// Decodes a body to text and says which charset was used.
///
/// Order (gb28181.md §2): a per-device `charset_override` wins; otherwise
/// bytes that are valid UTF-8 are UTF-8 whatever the XML declaration says
/// (GB-encoded Chinese is almost never valid UTF-8, while UTF-8 bytes are
/// valid GB18030 and would decode to nonsense); otherwise GB18030. Invalid
/// sequences become U+FFFD; a leading UTF-8 BOM is dropped.
///
/// Pure-ASCII bodies report [`Charset::Utf8`] but say nothing about the
/// device: learn a device's charset only from bodies that are not ASCII
/// ([`Parsed::ascii_only`]).
pub fn decode_body(bytes: &[u8], charset_override: Option<Charset>) -> (String, Charset) {
    let (text, charset) = match charset_override {
        Some(Charset::Utf8) => (String::from_utf8_lossy(bytes).into_owned(), Charset::Utf8),
        Some(Charset::Gb18030) => (decode_gb18030(bytes), Charset::Gb18030),
        None => match std::str::from_utf8(bytes) {
            Ok(s) => (s.to_owned(), Charset::Utf8),
            Err(_) => (decode_gb18030(bytes), Charset::Gb18030),
        },
    };
    let text = match text.strip_prefix('\u{feff}') {
        Some(rest) => rest.to_owned(),
        None => text,
    };
    (text, charset)
}

fn decode_gb18030(bytes: &[u8]) -> String {
    let (text, had_errors) = encoding_rs::GB18030.decode_without_bom_handling(bytes);
    if had_errors {
        tracing::debug!("MANSCDP body is neither valid UTF-8 nor valid GB18030; replaced");
    }
    text.into_owned()
}

/// Encodes an XML document for a device, writing the matching declaration
/// `<?xml version="1.0" encoding="…"?>` ([`Charset::declared_label`]: `UTF-8`,
/// or `GB2312` for GB18030 bytes). An existing declaration is replaced; a
/// missing one is added.
pub fn encode_body(xml: &str, charset: Charset) -> Vec<u8> {
    encode_body_with_label(xml, charset, charset.declared_label())
}

/// [`encode_body`] with an explicit declaration label, e.g. `GB18030` for a
/// 2022 device that wants its charset declared as such (2022 §6.10).
/// `label` should be a plain encoding name; characters outside
/// `[A-Za-z0-9._-]` are dropped.
pub fn encode_body_with_label(xml: &str, charset: Charset, label: &str) -> Vec<u8> {
    let label: String = label
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
        .collect();
    let xml = with_declaration(xml, &label);
    match charset {
        Charset::Utf8 => xml.into_owned().into_bytes(),
        // GB18030 maps all of Unicode. The one code point encoding_rs (WHATWG)
        // will not encode, U+E5E5, comes out as `&#58853;`, which XML text
        // reads back as the same character. 18 private-use code points
        // (U+E78D..U+E796, U+E81E..U+E864) that GB18030-2005 used for
        // then-unassigned characters decode back as the characters
        // GB18030-2022 gave those bytes (e.g. U+FE10, U+9FB4).
        Charset::Gb18030 => encoding_rs::GB18030.encode(&xml).0.into_owned(),
    }
}

/// `xml` with its XML declaration replaced by (or prefixed with) one naming
/// `label`.
fn with_declaration<'a>(xml: &'a str, label: &str) -> Cow<'a, str> {
    let decl = format!("<?xml version=\"1.0\" encoding=\"{label}\"?>");
    let body = xml.strip_prefix('\u{feff}').unwrap_or(xml);
    let start = body.len() - body.trim_start().len();
    let rest = &body[start..];
    let is_decl = rest.starts_with("<?xml")
        && rest[5..]
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_whitespace() || c == '?');
    if is_decl && let Some(end) = rest.find("?>") {
        if rest[..end + 2] == decl {
            return Cow::Borrowed(rest);
        }
        return Cow::Owned(format!("{decl}{}", &rest[end + 2..]));
    }
    Cow::Owned(format!("{decl}\r\n{rest}"))
}

// ---------------------------------------------------------------------------
// Header types
// ---------------------------------------------------------------------------

/// The four MANSCDP root elements (gb28181.md §3).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Root {
    /// A request.
    Query,
    /// The business answer to a Query/Control (a separate MESSAGE, same SN).
    Response,
    /// Unsolicited (keepalive, alarm, subscription notifications).
    Notify,
    /// A command.
    Control,
}

impl Root {
    pub fn as_str(self) -> &'static str {
        match self {
            Root::Query => "Query",
            Root::Response => "Response",
            Root::Notify => "Notify",
            Root::Control => "Control",
        }
    }

    /// The root named `name`, ignoring ASCII case.
    pub fn from_name(name: &str) -> Option<Root> {
        [Root::Query, Root::Response, Root::Notify, Root::Control]
            .into_iter()
            .find(|r| name.eq_ignore_ascii_case(r.as_str()))
    }
}

impl fmt::Display for Root {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for Root {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

/// `CmdType` values (gb28181.md §3 table). Parsed ignoring ASCII case; written
/// in the standard's CamelCase. Unknown values are kept verbatim.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum CmdType {
    Keepalive,
    Catalog,
    DeviceInfo,
    DeviceStatus,
    Alarm,
    MobilePosition,
    RecordInfo,
    DeviceControl,
    DeviceConfig,
    ConfigDownload,
    PresetQuery,
    MediaStatus,
    Broadcast,
    Other(String),
}

const KNOWN_CMD_TYPES: [CmdType; 13] = [
    CmdType::Keepalive,
    CmdType::Catalog,
    CmdType::DeviceInfo,
    CmdType::DeviceStatus,
    CmdType::Alarm,
    CmdType::MobilePosition,
    CmdType::RecordInfo,
    CmdType::DeviceControl,
    CmdType::DeviceConfig,
    CmdType::ConfigDownload,
    CmdType::PresetQuery,
    CmdType::MediaStatus,
    CmdType::Broadcast,
];

impl CmdType {
    /// The CmdType named `name` (trimmed, ASCII case ignored).
    pub fn from_name(name: &str) -> CmdType {
        let name = name.trim();
        KNOWN_CMD_TYPES
            .iter()
            .find(|c| name.eq_ignore_ascii_case(c.as_str()))
            .cloned()
            .unwrap_or_else(|| CmdType::Other(name.to_owned()))
    }

    /// The standard's spelling (an unknown value as received).
    pub fn as_str(&self) -> &str {
        match self {
            CmdType::Keepalive => "Keepalive",
            CmdType::Catalog => "Catalog",
            CmdType::DeviceInfo => "DeviceInfo",
            CmdType::DeviceStatus => "DeviceStatus",
            CmdType::Alarm => "Alarm",
            CmdType::MobilePosition => "MobilePosition",
            CmdType::RecordInfo => "RecordInfo",
            CmdType::DeviceControl => "DeviceControl",
            CmdType::DeviceConfig => "DeviceConfig",
            CmdType::ConfigDownload => "ConfigDownload",
            CmdType::PresetQuery => "PresetQuery",
            CmdType::MediaStatus => "MediaStatus",
            CmdType::Broadcast => "Broadcast",
            CmdType::Other(s) => s,
        }
    }
}

impl fmt::Display for CmdType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for CmdType {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

// ---------------------------------------------------------------------------
// Parsed message
// ---------------------------------------------------------------------------

/// A parsed body and the charset it was read in.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Parsed {
    /// The charset used to decode (see [`decode_body`]).
    pub charset: Charset,
    /// True when the body was pure ASCII, so `charset` tells nothing about
    /// what the device sends.
    pub ascii_only: bool,
    pub message: Message,
}

/// One MANSCDP message: the header every body has, and its typed body.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Message {
    pub root: Root,
    pub cmd_type: CmdType,
    /// Matches answers to requests, with the device and CmdType (gb28181.md §3).
    pub sn: u64,
    /// The target device or channel. For a Broadcast Notify, which carries
    /// `SourceID`/`TargetID` instead, this is the `TargetID`.
    pub device_id: String,
    pub body: Body,
}

/// The typed body for the messages the platform acts on. Which variant is
/// chosen depends on both root and CmdType; every other combination (queries,
/// controls, configuration, presets, result-only responses, unknown
/// CmdTypes) is [`Body::Other`] with the whole root element.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(tag = "kind", content = "data", rename_all = "snake_case")]
pub enum Body {
    /// Notify/Keepalive.
    Keepalive(Keepalive),
    /// Response/Catalog and Notify/Catalog (subscription).
    Catalog(Catalog),
    /// Response/DeviceInfo.
    DeviceInfo(DeviceInfo),
    /// Response/DeviceStatus.
    DeviceStatus(DeviceStatus),
    /// Notify/Alarm.
    Alarm(Alarm),
    /// Notify/MobilePosition.
    MobilePosition(MobilePosition),
    /// Notify/MediaStatus.
    MediaStatus(MediaStatus),
    /// Response/RecordInfo.
    RecordInfo(RecordInfo),
    /// Notify/Broadcast (platform → device, or superior → us).
    Broadcast(Broadcast),
    /// Anything else, as read.
    Other(Element),
}

/// Notify/Keepalive (gb28181.md §2 "Keepalive").
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Keepalive {
    /// `OK` per the standard; some devices send `ON`.
    pub status: Option<String>,
    /// Faulty child devices, from `<Info><DeviceID>…`.
    pub faulty_devices: Vec<String>,
}

/// A Catalog Response or Notify (gb28181.md §3 "Catalog"). One MESSAGE of a
/// possibly multi-packet answer: collect by (device, SN) until the unique
/// item count reaches `sum_num`.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Catalog {
    /// `SumNum`: items in the whole answer.
    pub sum_num: Option<u32>,
    /// `DeviceList Num`: items in this message.
    pub list_num: Option<u32>,
    pub items: Vec<CatalogItem>,
}

/// One catalog `<Item>` (gb28181.md §3 "Item fields").
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct CatalogItem {
    /// Empty if the item had none.
    pub device_id: String,
    pub name: Option<String>,
    pub manufacturer: Option<String>,
    pub model: Option<String>,
    pub owner: Option<String>,
    pub civil_code: Option<String>,
    pub block: Option<String>,
    pub address: Option<String>,
    /// 1 = has children.
    pub parental: Option<u32>,
    /// May be `/`-joined; see [`CatalogItem::parent_ids`].
    pub parent_id: Option<String>,
    /// 0 none, 2 S/MIME signature, 3 S/MIME encryption + signature, 4 digest.
    pub safety_way: Option<u32>,
    /// 1 RFC 3261, 2 password mutual, 3 certificate mutual.
    pub register_way: Option<u32>,
    pub cert_num: Option<String>,
    pub certifiable: Option<u32>,
    pub err_code: Option<u32>,
    pub end_time: Option<String>,
    /// 0/1.
    pub secrecy: Option<u32>,
    pub ip_address: Option<String>,
    pub port: Option<u16>,
    /// Never serialized: the REST API must not leak device passwords.
    #[serde(skip_serializing)]
    pub password: Option<String>,
    /// ON/OFF; ONLINE/OFFLINE/OK also seen. See [`CatalogItem::is_online`].
    pub status: Option<String>,
    pub longitude: Option<f64>,
    pub latitude: Option<f64>,
    pub business_group_id: Option<String>,
    /// Catalog Notify only: what happened to this item.
    pub event: Option<CatalogEvent>,
    pub info: CatalogInfo,
}

/// The `<Info>` fields of a catalog item (gb28181.md §3), read from `<Info>`
/// first and from the Item level when absent there (U found them silently
/// dropped when read from the wrong level).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct CatalogInfo {
    /// 1 dome, 2 half-dome, 3 fixed bullet, 4 PTZ bullet, 5 PTZ half-dome,
    /// 6 multi-lens panorama, 7 multi-lens split.
    pub ptz_type: Option<u32>,
    pub position_type: Option<u32>,
    /// 1 outdoor, 2 indoor.
    pub room_type: Option<u32>,
    /// 1 public order, 2 traffic, 3 key area.
    pub use_type: Option<u32>,
    /// 1 none, 2 IR, 3 white, 4 laser, 9 other.
    pub supply_light_type: Option<u32>,
    pub direction_type: Option<u32>,
    /// `/`-separated list.
    pub resolution: Option<String>,
    /// `/`-separated list.
    pub download_speed: Option<String>,
    pub svc_space_support_mode: Option<u32>,
    pub svc_time_support_mode: Option<u32>,
    /// 2022, e.g. `0/1`.
    pub stream_number_list: Option<String>,
}

/// A Catalog Notify item's `<Event>` (gb28181.md §3 "Subscription").
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum CatalogEvent {
    On,
    Off,
    /// Video lost.
    Vlost,
    /// Fault.
    Defect,
    Add,
    Del,
    Update,
    Other(String),
}

impl CatalogEvent {
    /// The event named `name` (trimmed, ASCII case ignored).
    pub fn from_name(name: &str) -> CatalogEvent {
        let name = name.trim();
        [
            CatalogEvent::On,
            CatalogEvent::Off,
            CatalogEvent::Vlost,
            CatalogEvent::Defect,
            CatalogEvent::Add,
            CatalogEvent::Del,
            CatalogEvent::Update,
        ]
        .into_iter()
        .find(|e| name.eq_ignore_ascii_case(e.as_str()))
        .unwrap_or_else(|| CatalogEvent::Other(name.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        match self {
            CatalogEvent::On => "ON",
            CatalogEvent::Off => "OFF",
            CatalogEvent::Vlost => "VLOST",
            CatalogEvent::Defect => "DEFECT",
            CatalogEvent::Add => "ADD",
            CatalogEvent::Del => "DEL",
            CatalogEvent::Update => "UPDATE",
            CatalogEvent::Other(s) => s,
        }
    }
}

impl fmt::Display for CatalogEvent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for CatalogEvent {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

/// What a catalog node is, from its ID (gb28181.md §1).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum NodeKind {
    /// ≤ 8 digits: an administrative-division (civil code) node.
    Region,
    /// Type 215.
    BusinessGroup,
    /// Type 216.
    VirtualOrganization,
    /// Type 111 (DVR) or 118 (NVR): the recorder itself.
    Recorder,
    /// Type 131 (camera) or 132 (IPC): a channel.
    Camera,
    /// Type 200: a platform (central signalling server).
    Platform,
    /// Any other type, or an ID that is not 1–8 or 20 digits.
    Other,
}

/// The kind of catalog node `id` names: ≤ 8 digits is a region; a 20-digit
/// code's type (digits 11–13) gives the rest (gb28181.md §1, §3 "Node kinds").
pub fn node_kind(id: &str) -> NodeKind {
    let id = id.trim();
    if id.is_empty() || !id.bytes().all(|b| b.is_ascii_digit()) {
        return NodeKind::Other;
    }
    if id.len() <= 8 {
        return NodeKind::Region;
    }
    if id.len() != 20 {
        return NodeKind::Other;
    }
    match &id[10..13] {
        "215" => NodeKind::BusinessGroup,
        "216" => NodeKind::VirtualOrganization,
        "111" | "118" => NodeKind::Recorder,
        "131" | "132" => NodeKind::Camera,
        "200" => NodeKind::Platform,
        _ => NodeKind::Other,
    }
}

impl CatalogItem {
    /// `ParentID` split on `/` (it arrives as `platformId/parentId` or as
    /// several parents; gb28181.md §3): trimmed, empty segments dropped. The
    /// last one is the direct parent.
    pub fn parent_ids(&self) -> Vec<&str> {
        self.parent_id
            .as_deref()
            .unwrap_or("")
            .split('/')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .collect()
    }

    /// What this node is, by its DeviceID ([`node_kind`]).
    pub fn node_kind(&self) -> NodeKind {
        node_kind(&self.device_id)
    }

    /// `Status` as online (`ON`, `ONLINE`, `OK`) or offline (`OFF`,
    /// `OFFLINE`); `None` if absent or unknown.
    pub fn is_online(&self) -> Option<bool> {
        let s = self.status.as_deref()?.trim();
        if ["ON", "ONLINE", "OK"]
            .iter()
            .any(|v| s.eq_ignore_ascii_case(v))
        {
            Some(true)
        } else if ["OFF", "OFFLINE"].iter().any(|v| s.eq_ignore_ascii_case(v)) {
            Some(false)
        } else {
            None
        }
    }
}

/// Response/DeviceInfo.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct DeviceInfo {
    pub device_name: Option<String>,
    /// OK/ERROR.
    pub result: Option<String>,
    pub manufacturer: Option<String>,
    pub model: Option<String>,
    pub firmware: Option<String>,
    /// Channel count.
    pub channel: Option<u32>,
}

/// Response/DeviceStatus.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct DeviceStatus {
    /// OK/ERROR.
    pub result: Option<String>,
    /// ONLINE/OFFLINE.
    pub online: Option<String>,
    /// OK/ERROR.
    pub status: Option<String>,
    pub reason: Option<String>,
    pub encode: Option<String>,
    /// ON/OFF.
    pub record: Option<String>,
    pub device_time: Option<String>,
    /// `<Alarmstatus Num><Item>` entries.
    pub alarm_status: Vec<AlarmStatusItem>,
}

/// One `<Alarmstatus><Item>` of a DeviceStatus response.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct AlarmStatusItem {
    pub device_id: String,
    /// ONDUTY/OFFDUTY/ALARM.
    pub duty_status: Option<String>,
}

/// Notify/Alarm (gb28181.md §3 "Alarm").
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Alarm {
    /// 1–4.
    pub alarm_priority: Option<u32>,
    /// 1 phone, 2 device, 3 SMS, 4 GPS, 5 video, 6 device fault, 7 other.
    pub alarm_method: Option<u32>,
    pub alarm_time: Option<String>,
    pub alarm_description: Option<String>,
    pub longitude: Option<f64>,
    pub latitude: Option<f64>,
    /// `Info/AlarmType` (also accepted at the top level); meaning depends on
    /// the method.
    pub alarm_type: Option<u32>,
    /// `Info/AlarmTypeParam/EventType`.
    pub event_type: Option<u32>,
}

/// Notify/MobilePosition (the 2016 single-position form).
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct MobilePosition {
    pub time: Option<String>,
    pub longitude: Option<f64>,
    pub latitude: Option<f64>,
    pub speed: Option<f64>,
    pub direction: Option<f64>,
    pub altitude: Option<f64>,
}

/// Notify/MediaStatus.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct MediaStatus {
    /// 121 = playback/download file ended ([`MediaStatus::FILE_END`]).
    pub notify_type: Option<u32>,
}

impl MediaStatus {
    /// NotifyType 121: the playback or download file has ended.
    pub const FILE_END: u32 = 121;
}

/// Response/RecordInfo (gb28181.md §3 "RecordInfo"); multi-packet like Catalog.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct RecordInfo {
    pub name: Option<String>,
    pub sum_num: Option<u32>,
    /// `RecordList Num`.
    pub list_num: Option<u32>,
    pub items: Vec<RecordItem>,
}

/// One `<RecordList><Item>`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct RecordItem {
    pub device_id: String,
    pub name: Option<String>,
    pub file_path: Option<String>,
    pub address: Option<String>,
    /// Local `YYYY-MM-DDTHH:MM:SS`, as sent.
    pub start_time: Option<String>,
    pub end_time: Option<String>,
    pub secrecy: Option<u32>,
    /// `Type`: time/alarm/manual/all.
    pub record_type: Option<String>,
    pub recorder_id: Option<String>,
    pub file_size: Option<u64>,
}

/// Notify/Broadcast: voice broadcast from `source_id` to `target_id`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Broadcast {
    pub source_id: Option<String>,
    pub target_id: Option<String>,
}

// ---------------------------------------------------------------------------
// Parsing
// ---------------------------------------------------------------------------

/// Reads one MANSCDP body (the SIP body bytes). `charset_override` is the
/// per-device charset, if configured (see [`decode_body`]).
pub fn parse(bytes: &[u8], charset_override: Option<Charset>) -> Result<Parsed, ManscdpError> {
    if bytes.len() > MAX_BODY {
        return Err(ManscdpError::TooLarge {
            len: bytes.len(),
            max: MAX_BODY,
        });
    }
    let (text, charset) = decode_body(bytes, charset_override);
    tree::reject_dtd(&text)?;
    let xml = tree::escape_bare_ampersands(&text);
    let root = tree::build(&xml)?;
    let message = Message::from_element(root)?;
    Ok(Parsed {
        charset,
        ascii_only: bytes.is_ascii(),
        message,
    })
}

impl Message {
    /// Reads a message from an already-built root element.
    pub fn from_element(root_el: Element) -> Result<Message, ManscdpError> {
        let root = Root::from_name(&root_el.name)
            .ok_or_else(|| ManscdpError::UnknownRoot(tree::clip(&root_el.name, 64)))?;
        let missing = |element| ManscdpError::Missing { root, element };
        let cmd_type = CmdType::from_name(
            root_el
                .child_text("CmdType")
                .ok_or_else(|| missing("CmdType"))?,
        );
        let sn_text = root_el.child_text("SN").ok_or_else(|| missing("SN"))?;
        let sn = sn_text
            .parse::<u64>()
            .map_err(|_| ManscdpError::InvalidSn(tree::clip(sn_text, 64)))?;
        let device_id = match root_el.child_text("DeviceID") {
            Some(id) => id.to_owned(),
            // The Broadcast notification names SourceID/TargetID instead.
            None if cmd_type == CmdType::Broadcast => root_el
                .child_text("TargetID")
                .ok_or_else(|| missing("DeviceID"))?
                .to_owned(),
            None => return Err(missing("DeviceID")),
        };
        let body = read_body(root, &cmd_type, root_el)?;
        Ok(Message {
            root,
            cmd_type,
            sn,
            device_id,
            body,
        })
    }
}

fn read_body(root: Root, cmd_type: &CmdType, el: Element) -> Result<Body, ManscdpError> {
    use CmdType as C;
    use Root as R;
    Ok(match (root, cmd_type) {
        (R::Notify, C::Keepalive) => Body::Keepalive(read_keepalive(&el)?),
        (R::Response | R::Notify, C::Catalog) => Body::Catalog(read_catalog(&el)?),
        (R::Response, C::DeviceInfo) => Body::DeviceInfo(read_device_info(&el)),
        (R::Response, C::DeviceStatus) => Body::DeviceStatus(read_device_status(&el)?),
        (R::Notify, C::Alarm) => Body::Alarm(read_alarm(&el)),
        (R::Notify, C::MobilePosition) => Body::MobilePosition(read_mobile_position(&el)),
        (R::Notify, C::MediaStatus) => Body::MediaStatus(MediaStatus {
            notify_type: num(&el, "NotifyType"),
        }),
        (R::Response, C::RecordInfo) => Body::RecordInfo(read_record_info(&el)?),
        (R::Notify, C::Broadcast) => Body::Broadcast(Broadcast {
            source_id: text(&el, "SourceID"),
            target_id: text(&el, "TargetID"),
        }),
        _ => Body::Other(el),
    })
}

/// A child's text as an owned string; `None` when absent or empty.
fn text(el: &Element, name: &str) -> Option<String> {
    el.child_text(name).map(str::to_owned)
}

/// A child's text as a number; `None` when absent or not a number (devices
/// send junk, which must not fail the message).
fn num<T: std::str::FromStr>(el: &Element, name: &str) -> Option<T> {
    el.child_text(name)?.trim().parse().ok()
}

/// A child's text as a finite float (NaN/inf would not survive JSON).
fn float(el: &Element, name: &str) -> Option<f64> {
    num::<f64>(el, name).filter(|f| f.is_finite())
}

/// The `<Item>` children of `list`, refusing more than [`MAX_ITEMS`].
fn items<'a>(
    list: &'a Element,
    list_name: &'static str,
) -> Result<impl Iterator<Item = &'a Element>, ManscdpError> {
    if list.children_named("Item").nth(MAX_ITEMS).is_some() {
        return Err(ManscdpError::TooManyItems {
            list: list_name,
            max: MAX_ITEMS,
        });
    }
    Ok(list.children_named("Item"))
}

fn read_keepalive(el: &Element) -> Result<Keepalive, ManscdpError> {
    let mut faulty_devices = Vec::new();
    for info in el.children_named("Info") {
        for id in info.children_named("DeviceID") {
            if id.text.is_empty() {
                continue;
            }
            if faulty_devices.len() >= MAX_ITEMS {
                return Err(ManscdpError::TooManyItems {
                    list: "Info",
                    max: MAX_ITEMS,
                });
            }
            faulty_devices.push(id.text.clone());
        }
    }
    Ok(Keepalive {
        status: text(el, "Status"),
        faulty_devices,
    })
}

fn read_catalog(el: &Element) -> Result<Catalog, ManscdpError> {
    let mut catalog = Catalog {
        sum_num: num(el, "SumNum"),
        ..Catalog::default()
    };
    if let Some(list) = el.child("DeviceList") {
        catalog.list_num = list.attribute("Num").and_then(|n| n.trim().parse().ok());
        catalog.items = items(list, "DeviceList")?.map(read_catalog_item).collect();
    }
    Ok(catalog)
}

fn read_catalog_item(item: &Element) -> CatalogItem {
    let info = item.child("Info");
    // Info fields: <Info> first, then the Item level (gb28181.md §3).
    let info_num = |name: &str| {
        info.and_then(|i| num::<u32>(i, name))
            .or_else(|| num(item, name))
    };
    let info_text = |name: &str| {
        info.and_then(|i| text(i, name))
            .or_else(|| text(item, name))
    };
    CatalogItem {
        device_id: text(item, "DeviceID").unwrap_or_default(),
        name: text(item, "Name"),
        manufacturer: text(item, "Manufacturer"),
        model: text(item, "Model"),
        owner: text(item, "Owner"),
        civil_code: text(item, "CivilCode"),
        block: text(item, "Block"),
        address: text(item, "Address"),
        parental: num(item, "Parental"),
        parent_id: text(item, "ParentID"),
        safety_way: num(item, "SafetyWay"),
        register_way: num(item, "RegisterWay"),
        cert_num: text(item, "CertNum"),
        certifiable: num(item, "Certifiable"),
        err_code: num(item, "ErrCode"),
        end_time: text(item, "EndTime"),
        secrecy: num(item, "Secrecy"),
        ip_address: text(item, "IPAddress"),
        port: num(item, "Port"),
        password: text(item, "Password"),
        status: text(item, "Status"),
        longitude: float(item, "Longitude"),
        latitude: float(item, "Latitude"),
        business_group_id: text(item, "BusinessGroupID"),
        event: item.child_text("Event").map(CatalogEvent::from_name),
        info: CatalogInfo {
            ptz_type: info_num("PTZType"),
            position_type: info_num("PositionType"),
            room_type: info_num("RoomType"),
            use_type: info_num("UseType"),
            supply_light_type: info_num("SupplyLightType"),
            direction_type: info_num("DirectionType"),
            resolution: info_text("Resolution"),
            download_speed: info_text("DownloadSpeed"),
            svc_space_support_mode: info_num("SVCSpaceSupportMode"),
            svc_time_support_mode: info_num("SVCTimeSupportMode"),
            stream_number_list: info_text("StreamNumberList"),
        },
    }
}

fn read_device_info(el: &Element) -> DeviceInfo {
    DeviceInfo {
        device_name: text(el, "DeviceName"),
        result: text(el, "Result"),
        manufacturer: text(el, "Manufacturer"),
        model: text(el, "Model"),
        firmware: text(el, "Firmware"),
        channel: num(el, "Channel"),
    }
}

fn read_device_status(el: &Element) -> Result<DeviceStatus, ManscdpError> {
    let mut alarm_status = Vec::new();
    if let Some(list) = el.child("Alarmstatus") {
        alarm_status = items(list, "Alarmstatus")?
            .map(|i| AlarmStatusItem {
                device_id: text(i, "DeviceID").unwrap_or_default(),
                duty_status: text(i, "DutyStatus"),
            })
            .collect();
    }
    Ok(DeviceStatus {
        result: text(el, "Result"),
        online: text(el, "Online"),
        status: text(el, "Status"),
        reason: text(el, "Reason"),
        encode: text(el, "Encode"),
        record: text(el, "Record"),
        device_time: text(el, "DeviceTime"),
        alarm_status,
    })
}

fn read_alarm(el: &Element) -> Alarm {
    let info = el.child("Info");
    Alarm {
        alarm_priority: num(el, "AlarmPriority"),
        alarm_method: num(el, "AlarmMethod"),
        alarm_time: text(el, "AlarmTime"),
        alarm_description: text(el, "AlarmDescription"),
        longitude: float(el, "Longitude"),
        latitude: float(el, "Latitude"),
        alarm_type: info
            .and_then(|i| num(i, "AlarmType"))
            .or_else(|| num(el, "AlarmType")),
        event_type: info
            .and_then(|i| i.child("AlarmTypeParam"))
            .and_then(|p| num(p, "EventType")),
    }
}

fn read_mobile_position(el: &Element) -> MobilePosition {
    MobilePosition {
        time: text(el, "Time"),
        longitude: float(el, "Longitude"),
        latitude: float(el, "Latitude"),
        speed: float(el, "Speed"),
        direction: float(el, "Direction"),
        altitude: float(el, "Altitude"),
    }
}

fn read_record_info(el: &Element) -> Result<RecordInfo, ManscdpError> {
    let mut info = RecordInfo {
        name: text(el, "Name"),
        sum_num: num(el, "SumNum"),
        ..RecordInfo::default()
    };
    if let Some(list) = el.child("RecordList") {
        info.list_num = list.attribute("Num").and_then(|n| n.trim().parse().ok());
        info.items = items(list, "RecordList")?
            .map(|i| RecordItem {
                device_id: text(i, "DeviceID").unwrap_or_default(),
                name: text(i, "Name"),
                file_path: text(i, "FilePath"),
                address: text(i, "Address"),
                start_time: text(i, "StartTime"),
                end_time: text(i, "EndTime"),
                secrecy: num(i, "Secrecy"),
                record_type: text(i, "Type"),
                recorder_id: text(i, "RecorderID"),
                file_size: num(i, "FileSize"),
            })
            .collect();
    }
    Ok(info)
}

// ---------------------------------------------------------------------------
// Building
// ---------------------------------------------------------------------------

/// `<Query>` for `cmd_type` (Catalog, DeviceInfo, DeviceStatus, …): the
/// header fields only (gb28181.md §3 "Catalog": Query). Known CmdTypes are
/// written in the standard's CamelCase whatever case is passed.
///
/// The result is declared UTF-8; send it through [`encode_body`] for the
/// device's charset.
pub fn query(cmd_type: &str, sn: u64, device_id: &str) -> String {
    query_with(cmd_type, sn, device_id, &[])
}

/// [`query`] with extra elements after `DeviceID`, in order, e.g.
/// RecordInfo's `StartTime`/`EndTime`/`Type`, MobilePosition's `Interval`,
/// ConfigDownload's `ConfigType`. Values are escaped; a field whose name is
/// not a plain XML name (`[A-Za-z_][A-Za-z0-9_.-]*`) is skipped with a warning.
pub fn query_with(cmd_type: &str, sn: u64, device_id: &str, fields: &[(&str, &str)]) -> String {
    build(Root::Query, cmd_type, sn, device_id, fields)
}

/// `<Response>` carrying `<Result>OK</Result>`: the platform's business answer
/// to an Alarm notify, a Broadcast, or (as a lower platform) a control
/// command (gb28181.md §3).
pub fn response_ok(cmd_type: &str, sn: u64, device_id: &str) -> String {
    build(Root::Response, cmd_type, sn, device_id, &[("Result", "OK")])
}

/// A MANSCDP message with root `root` and flat `fields` after `DeviceID`
/// (escaped; see [`query_with`]).
pub fn build_message(
    root: Root,
    cmd_type: &str,
    sn: u64,
    device_id: &str,
    fields: &[(&str, &str)],
) -> String {
    build(root, cmd_type, sn, device_id, fields)
}

fn build(root: Root, cmd_type: &str, sn: u64, device_id: &str, fields: &[(&str, &str)]) -> String {
    let cmd_type = CmdType::from_name(cmd_type);
    let mut out = String::with_capacity(160 + device_id.len());
    out.push_str("<?xml version=\"1.0\" encoding=\"");
    out.push_str(Charset::Utf8.declared_label());
    out.push_str("\"?>\r\n<");
    out.push_str(root.as_str());
    out.push_str(">\r\n");
    push_field(&mut out, "CmdType", cmd_type.as_str());
    push_field(&mut out, "SN", &sn.to_string());
    push_field(&mut out, "DeviceID", device_id);
    for (name, value) in fields {
        if is_plain_name(name) {
            push_field(&mut out, name, value);
        } else {
            tracing::warn!(name, "MANSCDP builder: invalid element name skipped");
        }
    }
    out.push_str("</");
    out.push_str(root.as_str());
    out.push_str(">\r\n");
    out
}

fn push_field(out: &mut String, name: &str, value: &str) {
    out.push('<');
    out.push_str(name);
    out.push('>');
    escape_text_into(out, value);
    out.push_str("</");
    out.push_str(name);
    out.push_str(">\r\n");
}

fn is_plain_name(name: &str) -> bool {
    let mut bytes = name.bytes();
    bytes
        .next()
        .is_some_and(|b| b.is_ascii_alphabetic() || b == b'_')
        && bytes.all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
}

/// Escapes XML text: the five special characters become entity references,
/// and characters XML 1.0 does not allow (NUL, most C0 controls,
/// U+FFFE/U+FFFF) are dropped.
pub fn escape_text(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    escape_text_into(&mut out, s);
    out
}

fn escape_text_into(out: &mut String, s: &str) {
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            '\t' | '\n' | '\r' => out.push(c),
            c if c < ' ' || c == '\u{fffe}' || c == '\u{ffff}' => {}
            c => out.push(c),
        }
    }
}
