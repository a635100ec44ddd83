//! The MANSCDP bodies a device sends (gb28181.md §2 "Keepalive", §3), built
//! as UTF-8 text with [`manscdp::escape_text`]; [`encode`] turns them into
//! the bytes of the configured charset.

use std::fmt::Write as _;

use crate::gb::manscdp::{self, Charset};

const MANUFACTURER: &str = "camgate-sim";
const MODEL: &str = "SIM-IPC";
const FIRMWARE: &str = concat!("V", env!("CARGO_PKG_VERSION"));

/// The body bytes in `charset`, with the matching XML declaration
/// (`GB2312` for GB18030 bytes, as 2016 devices write it).
pub fn encode(xml: &str, charset: Charset) -> Vec<u8> {
    manscdp::encode_body(xml, charset)
}

fn open(root: &str, cmd: &str, sn: u64, device_id: &str) -> String {
    let mut s = String::with_capacity(512);
    let _ = write!(
        s,
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\r\n<{root}>\r\n<CmdType>{cmd}</CmdType>\r\n<SN>{sn}</SN>\r\n<DeviceID>{}</DeviceID>\r\n",
        manscdp::escape_text(device_id)
    );
    s
}

fn field(s: &mut String, name: &str, value: &str) {
    let _ = write!(s, "<{name}>{}</{name}>\r\n", manscdp::escape_text(value));
}

fn close(mut s: String, root: &str) -> String {
    let _ = write!(s, "</{root}>\r\n");
    s
}

/// `Notify/Keepalive` with `Status OK` (gb28181.md §2).
pub fn keepalive(sn: u64, device_id: &str) -> String {
    let mut s = open("Notify", "Keepalive", sn, device_id);
    field(&mut s, "Status", "OK");
    close(s, "Notify")
}

/// One catalog channel.
#[derive(Clone, Debug)]
pub struct CatalogEntry<'a> {
    pub channel_id: &'a str,
    pub name: String,
}

/// One MESSAGE of a `Response/Catalog` (gb28181.md §3 "Multi-packet"):
/// `SumNum` = all channels, `DeviceList Num` = the items in this message.
pub fn catalog_page(
    sn: u64,
    device_id: &str,
    sum_num: usize,
    items: &[CatalogEntry<'_>],
) -> String {
    let mut s = open("Response", "Catalog", sn, device_id);
    field(&mut s, "SumNum", &sum_num.to_string());
    if sum_num == 0 {
        return close(s, "Response");
    }
    let _ = write!(s, "<DeviceList Num=\"{}\">\r\n", items.len());
    // CivilCode: the administrative division, the id's first 6 digits
    // (gb28181.md §1).
    let civil = device_id.get(..6).unwrap_or(device_id);
    for it in items {
        s.push_str("<Item>\r\n");
        field(&mut s, "DeviceID", it.channel_id);
        field(&mut s, "Name", &it.name);
        field(&mut s, "Manufacturer", MANUFACTURER);
        field(&mut s, "Model", MODEL);
        field(&mut s, "Owner", "Owner");
        field(&mut s, "CivilCode", civil);
        field(&mut s, "Address", "camgate simulator");
        field(&mut s, "Parental", "0");
        field(&mut s, "ParentID", device_id);
        field(&mut s, "SafetyWay", "0");
        field(&mut s, "RegisterWay", "1");
        field(&mut s, "Secrecy", "0");
        field(&mut s, "Status", "ON");
        // 3: fixed bullet camera (gb28181.md §3 "Info").
        s.push_str("<Info>\r\n");
        field(&mut s, "PTZType", "3");
        s.push_str("</Info>\r\n");
        s.push_str("</Item>\r\n");
    }
    s.push_str("</DeviceList>\r\n");
    close(s, "Response")
}

/// `Response/DeviceInfo` (gb28181.md §3 table).
pub fn device_info(sn: u64, device_id: &str, channels: usize) -> String {
    let mut s = open("Response", "DeviceInfo", sn, device_id);
    field(&mut s, "DeviceName", "camgate simulated IPC");
    field(&mut s, "Result", "OK");
    field(&mut s, "Manufacturer", MANUFACTURER);
    field(&mut s, "Model", MODEL);
    field(&mut s, "Firmware", FIRMWARE);
    field(&mut s, "Channel", &channels.to_string());
    close(s, "Response")
}

/// `Response/PresetQuery`: the simulated head's presets (GB/T 28181-2016
/// A.2.6.11): 1 "Gate", 2 "Yard", 3 with a Chinese name.
pub fn preset_list(sn: u64, channel_id: &str) -> String {
    let mut s = open("Response", "PresetQuery", sn, channel_id);
    let presets = [("1", "Gate"), ("2", "Yard"), ("3", "停车场")];
    let _ = write!(s, "<PresetList Num=\"{}\">\r\n", presets.len());
    for (id, name) in presets {
        s.push_str("<Item>\r\n");
        field(&mut s, "PresetID", id);
        field(&mut s, "PresetName", name);
        s.push_str("</Item>\r\n");
    }
    s.push_str("</PresetList>\r\n");
    close(s, "Response")
}

/// `Response/DeviceStatus`: online, working, encoding, not recording, no
/// alarm inputs (gb28181.md §3 table). `device_time` is local
/// `YYYY-MM-DDTHH:MM:SS`.
pub fn device_status(sn: u64, device_id: &str, device_time: &str) -> String {
    let mut s = open("Response", "DeviceStatus", sn, device_id);
    field(&mut s, "Result", "OK");
    field(&mut s, "Online", "ONLINE");
    field(&mut s, "Status", "OK");
    field(&mut s, "Encode", "ON");
    field(&mut s, "Record", "OFF");
    field(&mut s, "DeviceTime", device_time);
    s.push_str("<Alarmstatus Num=\"0\">\r\n</Alarmstatus>\r\n");
    close(s, "Response")
}

/// One simulated recording: local start/end times as MANSCDP writes them.
pub struct RecordEntry {
    pub start: String,
    pub end: String,
    pub file: String,
}

/// One page of a `Response/RecordInfo` (GB/T 28181-2016 A.2.6.7): `SumNum`
/// is the whole list, `RecordList Num` this page.
pub fn record_info_page(sn: u64, channel_id: &str, sum: usize, page: &[RecordEntry]) -> String {
    let mut s = open("Response", "RecordInfo", sn, channel_id);
    field(&mut s, "Name", "camgate simulator");
    field(&mut s, "SumNum", &sum.to_string());
    let _ = write!(s, "<RecordList Num=\"{}\">\r\n", page.len());
    for r in page {
        s.push_str("<Item>\r\n");
        field(&mut s, "DeviceID", channel_id);
        field(&mut s, "Name", "camgate simulator");
        field(&mut s, "FilePath", &r.file);
        field(&mut s, "Address", "sim");
        field(&mut s, "StartTime", &r.start);
        field(&mut s, "EndTime", &r.end);
        field(&mut s, "Secrecy", "0");
        field(&mut s, "Type", "time");
        field(&mut s, "FileSize", "1048576");
        s.push_str("</Item>\r\n");
    }
    s.push_str("</RecordList>\r\n");
    close(s, "Response")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gb::manscdp::{Body, CmdType, Root, parse};

    #[test]
    fn bodies_read_back_with_the_platform_parser() {
        let p = parse(
            &encode(&keepalive(7, "34020000001320000001"), Charset::Utf8),
            None,
        )
        .unwrap();
        assert_eq!(
            (p.message.root, p.message.cmd_type, p.message.sn),
            (Root::Notify, CmdType::Keepalive, 7)
        );

        let items = [
            CatalogEntry {
                channel_id: "34020000001310000001",
                name: "通道01".into(),
            },
            CatalogEntry {
                channel_id: "34020000001310000002",
                name: "A&B <x>".into(),
            },
        ];
        let xml = catalog_page(9, "34020000001320000001", 5, &items);
        for charset in [Charset::Utf8, Charset::Gb18030] {
            let bytes = encode(&xml, charset);
            let p = parse(&bytes, None).unwrap();
            assert_eq!(p.charset, charset);
            let Body::Catalog(c) = p.message.body else {
                panic!("not a catalog")
            };
            assert_eq!((c.sum_num, c.list_num), (Some(5), Some(2)));
            assert_eq!(c.items[0].name.as_deref(), Some("通道01"));
            assert_eq!(c.items[1].name.as_deref(), Some("A&B <x>"));
            assert_eq!(
                c.items[0].parent_id.as_deref(),
                Some("34020000001320000001")
            );
            assert_eq!(c.items[0].is_online(), Some(true));
        }
        let gb = encode(&xml, Charset::Gb18030);
        assert!(gb.starts_with(b"<?xml version=\"1.0\" encoding=\"GB2312\"?>"));

        let p = parse(
            encode(&device_info(3, "34020000001320000001", 4), Charset::Utf8).as_slice(),
            None,
        )
        .unwrap();
        let Body::DeviceInfo(i) = p.message.body else {
            panic!("not device info")
        };
        assert_eq!(i.manufacturer.as_deref(), Some("camgate-sim"));
        assert_eq!(i.channel, Some(4));

        let p = parse(
            device_status(4, "34020000001320000001", "2024-05-01T12:00:00").as_bytes(),
            None,
        )
        .unwrap();
        assert!(matches!(p.message.body, Body::DeviceStatus(_)));
        let p = parse(
            record_info_page(5, "34020000001310000001", 0, &[]).as_bytes(),
            None,
        )
        .unwrap();
        let Body::RecordInfo(r) = p.message.body else {
            panic!("not record info")
        };
        assert_eq!(r.sum_num, Some(0));
    }
}
