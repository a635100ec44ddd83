use std::collections::{BTreeMap, BTreeSet};
use std::io::Read;
use std::path::{Path, PathBuf};

use proptest::prelude::*;

use super::*;

/// 测试通道01 in GB18030 (= GB2312) bytes, written out by hand so the test
/// does not depend on the encoder under test: 测 B2E2, 试 CAD4, 通 CDA8, 道 B5C0.
const NAME_GB: &[u8] = b"\xb2\xe2\xca\xd4\xcd\xa8\xb5\xc001";
const NAME: &str = "测试通道01";

fn catalog_body(name: &[u8]) -> Vec<u8> {
    let mut b = b"<?xml version=\"1.0\" encoding=\"GB2312\"?>\r\n<Response>\r\n\
<CmdType>Catalog</CmdType>\r\n<SN>17</SN>\r\n<DeviceID>34020000001320000001</DeviceID>\r\n\
<SumNum>1</SumNum>\r\n<DeviceList Num=\"1\">\r\n<Item>\r\n\
<DeviceID>34020000001320000001</DeviceID>\r\n<Name>"
        .to_vec();
    b.extend_from_slice(name);
    b.extend_from_slice(b"</Name>\r\n</Item>\r\n</DeviceList>\r\n</Response>\r\n");
    b
}

fn ok(bytes: &[u8]) -> Parsed {
    match parse(bytes, None) {
        Ok(p) => p,
        Err(e) => panic!("parse failed: {e}\n{}", String::from_utf8_lossy(bytes)),
    }
}

fn err(bytes: &[u8]) -> ManscdpError {
    match parse(bytes, None) {
        Ok(p) => panic!("expected an error, got {p:?}"),
        Err(e) => e,
    }
}

fn catalog(p: &Parsed) -> &Catalog {
    match &p.message.body {
        Body::Catalog(c) => c,
        other => panic!("not a catalog: {other:?}"),
    }
}

fn first_name(p: &Parsed) -> &str {
    catalog(p).items[0].name.as_deref().unwrap_or("")
}

// --- charset -----------------------------------------------------------------

#[test]
fn utf8_bytes_declared_gb2312_decode_as_utf8() {
    let p = ok(&catalog_body(NAME.as_bytes()));
    assert_eq!(p.charset, Charset::Utf8);
    assert!(!p.ascii_only);
    assert_eq!(first_name(&p), NAME);
}

#[test]
fn gb18030_bytes_decode_as_gb18030() {
    let p = ok(&catalog_body(NAME_GB));
    assert_eq!(p.charset, Charset::Gb18030);
    assert_eq!(first_name(&p), NAME);
}

#[test]
fn override_wins() {
    // UTF-8 bytes forced through GB18030 give the nonsense gb28181.md §2 quotes.
    let p = parse(&catalog_body(NAME.as_bytes()), Some(Charset::Gb18030)).unwrap();
    assert_eq!(p.charset, Charset::Gb18030);
    assert_eq!(first_name(&p), "娴嬭瘯閫氶亾01");
    // GB bytes forced through UTF-8 are lossy, not an error.
    let p = parse(&catalog_body(NAME_GB), Some(Charset::Utf8)).unwrap();
    assert_eq!(p.charset, Charset::Utf8);
    assert!(first_name(&p).contains('\u{fffd}'));
    assert!(first_name(&p).ends_with("01"));
    // decode_body directly.
    assert_eq!(
        decode_body(NAME_GB, None),
        (NAME.to_owned(), Charset::Gb18030)
    );
    assert_eq!(
        decode_body(NAME.as_bytes(), None),
        (NAME.to_owned(), Charset::Utf8)
    );
    assert_eq!(
        decode_body(NAME_GB, Some(Charset::Gb18030)),
        (NAME.to_owned(), Charset::Gb18030)
    );
}

#[test]
fn ascii_body_is_flagged() {
    let p = ok(&catalog_body(b"cam"));
    assert_eq!(p.charset, Charset::Utf8);
    assert!(p.ascii_only);
}

#[test]
fn utf8_bom_is_dropped() {
    let mut b = b"\xef\xbb\xbf".to_vec();
    b.extend_from_slice(&catalog_body(NAME.as_bytes()));
    assert_eq!(first_name(&ok(&b)), NAME);
}

#[test]
fn encode_body_writes_matching_declaration() {
    let xml = format!("<?xml version=\"1.0\"?>\r\n<Notify><Name>{NAME}</Name></Notify>");
    let gb = encode_body(&xml, Charset::Gb18030);
    let mut expected = b"<?xml version=\"1.0\" encoding=\"GB2312\"?>\r\n<Notify><Name>".to_vec();
    expected.extend_from_slice(NAME_GB);
    expected.extend_from_slice(b"</Name></Notify>");
    assert_eq!(gb, expected);

    let utf8 = encode_body(&xml, Charset::Utf8);
    assert_eq!(
        String::from_utf8(utf8.clone()).unwrap(),
        format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\r\n<Notify><Name>{NAME}</Name></Notify>"
        )
    );
    // Idempotent on its own output.
    assert_eq!(
        encode_body(std::str::from_utf8(&utf8).unwrap(), Charset::Utf8),
        utf8
    );
    // A missing declaration is added; an explicit label is honoured.
    assert_eq!(
        encode_body("<Notify/>", Charset::Utf8),
        b"<?xml version=\"1.0\" encoding=\"UTF-8\"?>\r\n<Notify/>"
    );
    assert!(
        encode_body_with_label(
            "<?xml version='1.0' encoding='gb2312' ?><a/>",
            Charset::Gb18030,
            "GB18030\"><x"
        )
        .starts_with(b"<?xml version=\"1.0\" encoding=\"GB18030x\"?><a/>")
    );
    // `<?xml-stylesheet` is not a declaration.
    assert!(
        encode_body("<?xml-stylesheet href=\"a\"?><a/>", Charset::Utf8)
            .starts_with(b"<?xml version=\"1.0\" encoding=\"UTF-8\"?>\r\n<?xml-stylesheet")
    );
}

#[test]
fn charset_labels() {
    assert_eq!(Charset::from_label(" gb2312 "), Some(Charset::Gb18030));
    assert_eq!(Charset::from_label("GBK"), Some(Charset::Gb18030));
    assert_eq!(Charset::from_label("GB18030"), Some(Charset::Gb18030));
    assert_eq!(Charset::from_label("utf-8"), Some(Charset::Utf8));
    assert_eq!(Charset::from_label("latin1"), None);
    assert_eq!(Charset::Gb18030.declared_label(), "GB2312");
    assert_eq!(Charset::Utf8.declared_label(), "UTF-8");
}

// --- robustness --------------------------------------------------------------

fn notify_with(extra: &str) -> String {
    format!(
        "<?xml version=\"1.0\"?><Notify><CmdType>Foo</CmdType><SN>1</SN>\
<DeviceID>34020000001320000001</DeviceID>{extra}</Notify>"
    )
}

fn other(p: &Parsed) -> &Element {
    match &p.message.body {
        Body::Other(e) => e,
        b => panic!("not Other: {b:?}"),
    }
}

#[test]
fn bare_ampersands_are_escaped() {
    let xml = notify_with(
        "<Name>A&B &amp; C&lt;&gt;&quot;&apos; &#x41;&#65; &foo; &#0; &#xD800; &#12 &AMP; &</Name>\
<Address a=\"x&y\"><![CDATA[raw & <kept>]]></Address>",
    );
    let p = ok(xml.as_bytes());
    let e = other(&p);
    assert_eq!(
        e.child_text("name"),
        Some("A&B & C<>\"' AA &foo; &#0; &#xD800; &#12 &AMP; &")
    );
    let addr = e.child("Address").unwrap();
    assert_eq!(addr.attribute("A"), Some("x&y"));
    assert_eq!(addr.text, "raw & <kept>");
}

#[test]
fn escape_borrows_when_nothing_to_do() {
    let s = "<a>&amp;&#x4e2d;</a><!-- & --><?pi & ?>";
    assert!(matches!(
        tree::escape_bare_ampersands(s),
        std::borrow::Cow::Borrowed(_)
    ));
}

#[test]
fn doctype_and_entity_are_refused() {
    let bomb = "<?xml version=\"1.0\"?><!DOCTYPE lolz [<!ENTITY lol \"lol\">\
<!ENTITY lol2 \"&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;\">]>\
<Notify><CmdType>Keepalive</CmdType><SN>1</SN><DeviceID>&lol2;</DeviceID></Notify>";
    let e = err(bomb.as_bytes());
    assert!(
        matches!(
            e,
            ManscdpError::Dtd {
                keyword: "DOCTYPE",
                ..
            }
        ),
        "{e:?}"
    );
    assert!(e.to_string().contains("XML bomb"), "{e}");
    let e = err(notify_with("<!entity x \"y\">").as_bytes());
    assert!(
        matches!(
            e,
            ManscdpError::Dtd {
                keyword: "ENTITY",
                ..
            }
        ),
        "{e:?}"
    );
    let e = err(b"<!doctype Notify><Notify/>");
    assert!(matches!(e, ManscdpError::Dtd { .. }), "{e:?}");
}

fn nested(depth: usize) -> String {
    // The root counts as one level.
    let inner = depth - 1;
    let open: String = (0..inner).map(|i| format!("<L{i}>")).collect();
    let close: String = (0..inner).rev().map(|i| format!("</L{i}>")).collect();
    notify_with(&format!("{open}x{close}"))
}

#[test]
fn depth_is_bounded() {
    ok(nested(MAX_DEPTH).as_bytes());
    let e = err(nested(MAX_DEPTH + 1).as_bytes());
    assert_eq!(
        e,
        ManscdpError::TooDeep {
            max: MAX_DEPTH,
            element: format!("L{}", MAX_DEPTH - 1)
        }
    );
}

#[test]
fn size_is_bounded() {
    let pad = " ".repeat(MAX_BODY);
    let e = err(notify_with(&pad).as_bytes());
    assert!(
        matches!(e, ManscdpError::TooLarge { max: MAX_BODY, .. }),
        "{e:?}"
    );
    // Just under the limit is fine.
    let small = notify_with("");
    let pad = " ".repeat(MAX_BODY - small.len());
    ok(notify_with(&pad).as_bytes());
}

#[test]
fn element_count_is_bounded() {
    let e = err(notify_with(&"<a/>".repeat(MAX_ELEMENTS)).as_bytes());
    assert_eq!(e, ManscdpError::TooManyElements { max: MAX_ELEMENTS });
}

#[test]
fn item_count_is_bounded() {
    let body = |n: usize| {
        format!(
            "<Response><CmdType>Catalog</CmdType><SN>1</SN><DeviceID>1</DeviceID>\
<SumNum>{n}</SumNum><DeviceList Num=\"{n}\">{}</DeviceList></Response>",
            "<Item/>".repeat(n)
        )
    };
    assert_eq!(
        catalog(&ok(body(MAX_ITEMS).as_bytes())).items.len(),
        MAX_ITEMS
    );
    let e = err(body(MAX_ITEMS + 1).as_bytes());
    assert_eq!(
        e,
        ManscdpError::TooManyItems {
            list: "DeviceList",
            max: MAX_ITEMS
        }
    );
}

#[test]
fn long_text_is_truncated_on_a_char_boundary() {
    let p = ok(notify_with(&format!(
        "<A>{}</A><B>{}</B>",
        "x".repeat(5000),
        "测".repeat(1000)
    ))
    .as_bytes());
    let e = other(&p);
    assert_eq!(e.child_text("A").unwrap().len(), MAX_TEXT);
    let b = e.child_text("B").unwrap();
    assert_eq!(b.len(), MAX_TEXT / 3 * 3);
    assert!(b.chars().all(|c| c == '测'));
}

#[test]
fn malformed_documents_are_errors() {
    assert_eq!(err(b""), ManscdpError::NoRoot);
    assert_eq!(err(b"   \r\n"), ManscdpError::NoRoot);
    assert_eq!(err(b"<?xml version=\"1.0\"?>"), ManscdpError::NoRoot);
    let e = err(b"<Response><CmdType>Catalog</CmdType><DeviceList>");
    assert_eq!(
        e,
        ManscdpError::Truncated {
            element: "DeviceList".into()
        }
    );
    let e = err(b"<Notify><CmdType>Keepalive</Foo></Notify>");
    assert!(matches!(e, ManscdpError::Xml { .. }), "{e:?}");
    let e = err(b"<Message><CmdType>Keepalive</CmdType></Message>");
    assert_eq!(e, ManscdpError::UnknownRoot("Message".into()));
}

#[test]
fn missing_header_elements_are_named() {
    let cases = [
        (
            "<Notify><SN>1</SN><DeviceID>d</DeviceID></Notify>",
            "CmdType",
        ),
        (
            "<Notify><CmdType>Keepalive</CmdType><DeviceID>d</DeviceID></Notify>",
            "SN",
        ),
        (
            "<Notify><CmdType>Keepalive</CmdType><SN/><DeviceID>d</DeviceID></Notify>",
            "SN",
        ),
        (
            "<Notify><CmdType>Keepalive</CmdType><SN>1</SN></Notify>",
            "DeviceID",
        ),
        (
            "<Query><CmdType> </CmdType><SN>1</SN><DeviceID>d</DeviceID></Query>",
            "CmdType",
        ),
    ];
    for (xml, element) in cases {
        let e = err(xml.as_bytes());
        assert!(
            matches!(&e, ManscdpError::Missing { element: el, .. } if *el == element),
            "{xml}: {e:?}"
        );
        assert!(e.to_string().contains(element), "{e}");
    }
    let e = err(b"<Notify><CmdType>Keepalive</CmdType><SN>-1</SN><DeviceID>d</DeviceID></Notify>");
    assert_eq!(e, ManscdpError::InvalidSn("-1".into()));
}

#[test]
fn trailing_junk_and_prefixes_are_tolerated() {
    let mut b = b"<?xml version=\"1.0\"?>\r\n<ns:Notify xmlns:ns=\"urn:x\"><ns:CmdType>Keepalive</ns:CmdType>\
<SN> 42 </SN><DeviceID>\r\n  d1 </DeviceID><Status>OK</Status></ns:Notify>\r\n"
        .to_vec();
    b.extend_from_slice(b"\0\0\0 garbage <<<");
    let p = ok(&b);
    assert_eq!(p.message.sn, 42);
    assert_eq!(p.message.device_id, "d1");
    assert_eq!(p.message.cmd_type, CmdType::Keepalive);
}

// --- header -----------------------------------------------------------------

#[test]
fn names_are_case_insensitive() {
    let p = ok(
        b"<NOTIFY><cmdtype>KEEPALIVE</cmdtype><sn>7</sn><deviceid>x</deviceid>\
<STATUS>OK</STATUS><info><DEVICEID>y</DEVICEID></info></NOTIFY>",
    );
    assert_eq!(p.message.root, Root::Notify);
    assert_eq!(p.message.cmd_type, CmdType::Keepalive);
    assert_eq!(
        p.message.body,
        Body::Keepalive(Keepalive {
            status: Some("OK".into()),
            faulty_devices: vec!["y".into()],
        })
    );
    for name in ["Catalog", "CATALOG", "catalog", " cAtAlOg "] {
        assert_eq!(CmdType::from_name(name), CmdType::Catalog);
    }
    assert_eq!(
        CmdType::from_name("PTzPrecisectrl"),
        CmdType::Other("PTzPrecisectrl".into())
    );
    for c in KNOWN_CMD_TYPES {
        assert_eq!(CmdType::from_name(&c.as_str().to_ascii_lowercase()), c);
    }
    assert_eq!(Root::from_name("response"), Some(Root::Response));
    assert_eq!(Root::from_name("CONTROL"), Some(Root::Control));
}

#[test]
fn keepalive_with_faulty_children() {
    let p = ok(b"<?xml version=\"1.0\" encoding=\"GB2312\"?>\r\n<Notify>\r\n<CmdType>Keepalive</CmdType>\r\n\
<SN>5</SN>\r\n<DeviceID>34020000001180000001</DeviceID>\r\n<Status>OK</Status>\r\n\
<Info>\r\n<DeviceID>34020000001320000003</DeviceID>\r\n<DeviceID>34020000001320000004</DeviceID>\r\n</Info>\r\n</Notify>\r\n");
    assert_eq!(p.message.sn, 5);
    assert_eq!(p.message.device_id, "34020000001180000001");
    assert_eq!(
        p.message.body,
        Body::Keepalive(Keepalive {
            status: Some("OK".into()),
            faulty_devices: vec!["34020000001320000003".into(), "34020000001320000004".into()],
        })
    );
}

// --- catalog ------------------------------------------------------------------

#[test]
fn catalog_in_five_messages() {
    let nvr = "34020000001180000001";
    let bodies: Vec<String> = (1..=5)
        .map(|i| {
            format!(
                "<?xml version=\"1.0\" encoding=\"GB2312\"?>\r\n<Response>\r\n<CmdType>Catalog</CmdType>\r\n\
<SN>248</SN>\r\n<DeviceID>{nvr}</DeviceID>\r\n<SumNum>5</SumNum>\r\n<DeviceList Num=\"1\">\r\n<Item>\r\n\
<DeviceID>3402000000132000000{i}</DeviceID>\r\n<Name>通道{i}</Name>\r\n<ParentID>{nvr}</ParentID>\r\n\
<Status>ON</Status>\r\n</Item>\r\n</DeviceList>\r\n</Response>\r\n"
            )
        })
        .collect();
    // Collect per (device, SN), de-duplicating by DeviceID (gb28181.md §3), and
    // send one message twice as a retransmission would.
    let mut collected: BTreeMap<(String, u64), BTreeMap<String, CatalogItem>> = BTreeMap::new();
    let mut sum = None;
    for body in bodies.iter().chain(std::iter::once(&bodies[2])) {
        let p = ok(&encode_body(body, Charset::Gb18030));
        assert_eq!(p.charset, Charset::Gb18030);
        let m = &p.message;
        assert_eq!(
            (m.root, &m.cmd_type, m.sn),
            (Root::Response, &CmdType::Catalog, 248)
        );
        let c = catalog(&p);
        assert_eq!(
            (c.sum_num, c.list_num, c.items.len()),
            (Some(5), Some(1), 1)
        );
        sum = c.sum_num;
        let entry = collected.entry((m.device_id.clone(), m.sn)).or_default();
        for item in &c.items {
            entry.insert(item.device_id.clone(), item.clone());
        }
    }
    let items = &collected[&(nvr.to_owned(), 248)];
    assert_eq!(Some(items.len() as u32), sum);
    for (i, item) in items.values().enumerate() {
        assert_eq!(
            item.name.as_deref(),
            Some(format!("通道{}", i + 1).as_str())
        );
        assert_eq!(item.parent_ids(), vec![nvr]);
        assert_eq!(item.node_kind(), NodeKind::Camera);
        assert_eq!(item.is_online(), Some(true));
    }
}

const FULL_ITEM: &str = "<Item>\
<DeviceID>34020000001320000001</DeviceID><Name>Gate &amp; Lobby</Name><Manufacturer>Hikvision</Manufacturer>\
<Model>DS-2CD</Model><Owner>Owner</Owner><CivilCode>340200</CivilCode><Block>B1</Block>\
<Address>Road 1 & 2</Address><Parental>0</Parental><ParentID>34020000002000000001/34020000002160000001</ParentID>\
<SafetyWay>0</SafetyWay><RegisterWay>1</RegisterWay><CertNum>C1</CertNum><Certifiable>0</Certifiable>\
<ErrCode>400</ErrCode><EndTime>2030-01-01T00:00:00</EndTime><Secrecy>0</Secrecy>\
<IPAddress>192.168.1.64</IPAddress><Port>8000</Port><Password>secret</Password><Status>OFF</Status>\
<Longitude>117.25</Longitude><Latitude>31.83</Latitude><BusinessGroupID>34020000002150000001</BusinessGroupID>\
<Info><PTZType>1</PTZType><RoomType>2</RoomType><Resolution>6/4/2</Resolution>\
<SVCSpaceSupportMode>1</SVCSpaceSupportMode><StreamNumberList>0/1</StreamNumberList></Info>\
<PositionType>3</PositionType><UseType>1</UseType><SupplyLightType>2</SupplyLightType>\
<DirectionType>4</DirectionType><DownloadSpeed>1/2/4</DownloadSpeed><SVCTimeSupportMode>2</SVCTimeSupportMode>\
<PTZType>9</PTZType><Resolution>5</Resolution>\
</Item>";

#[test]
fn catalog_item_fields_and_info_at_both_levels() {
    let xml = format!(
        "<Response><CmdType>Catalog</CmdType><SN>1</SN><DeviceID>34020000002000000001</DeviceID>\
<SumNum>1</SumNum><DeviceList Num=\"1\">{FULL_ITEM}</DeviceList></Response>"
    );
    let p = ok(xml.as_bytes());
    let item = &catalog(&p).items[0];
    let expected = CatalogItem {
        device_id: "34020000001320000001".into(),
        name: Some("Gate & Lobby".into()),
        manufacturer: Some("Hikvision".into()),
        model: Some("DS-2CD".into()),
        owner: Some("Owner".into()),
        civil_code: Some("340200".into()),
        block: Some("B1".into()),
        address: Some("Road 1 & 2".into()),
        parental: Some(0),
        parent_id: Some("34020000002000000001/34020000002160000001".into()),
        safety_way: Some(0),
        register_way: Some(1),
        cert_num: Some("C1".into()),
        certifiable: Some(0),
        err_code: Some(400),
        end_time: Some("2030-01-01T00:00:00".into()),
        secrecy: Some(0),
        ip_address: Some("192.168.1.64".into()),
        port: Some(8000),
        password: Some("secret".into()),
        status: Some("OFF".into()),
        longitude: Some(117.25),
        latitude: Some(31.83),
        business_group_id: Some("34020000002150000001".into()),
        event: None,
        info: CatalogInfo {
            // <Info> wins over the Item level when both are present.
            ptz_type: Some(1),
            position_type: Some(3),
            room_type: Some(2),
            use_type: Some(1),
            supply_light_type: Some(2),
            direction_type: Some(4),
            resolution: Some("6/4/2".into()),
            download_speed: Some("1/2/4".into()),
            svc_space_support_mode: Some(1),
            svc_time_support_mode: Some(2),
            stream_number_list: Some("0/1".into()),
        },
    };
    assert_eq!(item, &expected);
    assert_eq!(
        item.parent_ids(),
        vec!["34020000002000000001", "34020000002160000001"]
    );
    assert_eq!(item.is_online(), Some(false));

    // The REST shape: snake_case, no password, event as a string.
    let json = serde_json::to_value(item).unwrap();
    assert_eq!(json["device_id"], "34020000001320000001");
    assert_eq!(json["info"]["ptz_type"], 1);
    assert!(json.get("password").is_none(), "{json}");
}

#[test]
fn junk_numbers_read_as_none() {
    let xml = "<Response><CmdType>Catalog</CmdType><SN>1</SN><DeviceID>d</DeviceID>\
<SumNum>five</SumNum><DeviceList Num=\"x\"><Item><DeviceID>34020000001320000001</DeviceID>\
<Port>70000</Port><Longitude>NaN</Longitude><Latitude>31.8E</Latitude><Parental>yes</Parental>\
<Info><PTZType>dome</PTZType></Info><PTZType>3</PTZType><Secrecy></Secrecy></Item></DeviceList></Response>";
    let p = ok(xml.as_bytes());
    let c = catalog(&p);
    assert_eq!((c.sum_num, c.list_num), (None, None));
    let i = &c.items[0];
    assert_eq!(
        (i.port, i.longitude, i.latitude, i.parental, i.secrecy),
        (None, None, None, None, None)
    );
    // Junk in <Info> falls back to the Item level.
    assert_eq!(i.info.ptz_type, Some(3));
}

#[test]
fn catalog_notify_events() {
    let items: String = [
        "ON", "off", "VLOST", "DEFECT", "ADD", "DEL", "UPDATE", "MOVE",
    ]
    .iter()
    .enumerate()
    .map(|(n, e)| {
        format!("<Item><DeviceID>3402000000132000000{n}</DeviceID><Event>{e}</Event></Item>")
    })
    .collect();
    let xml = format!(
        "<Notify><CmdType>Catalog</CmdType><SN>9</SN><DeviceID>34020000001180000001</DeviceID>\
<SumNum>8</SumNum><DeviceList Num=\"8\">{items}</DeviceList></Notify>"
    );
    let p = ok(xml.as_bytes());
    assert_eq!(p.message.root, Root::Notify);
    let events: Vec<_> = catalog(&p).items.iter().map(|i| i.event.clone()).collect();
    assert_eq!(
        events,
        [
            CatalogEvent::On,
            CatalogEvent::Off,
            CatalogEvent::Vlost,
            CatalogEvent::Defect,
            CatalogEvent::Add,
            CatalogEvent::Del,
            CatalogEvent::Update,
            CatalogEvent::Other("MOVE".into()),
        ]
        .map(Some)
    );
    assert_eq!(serde_json::to_value(&events[2]).unwrap(), "VLOST");
}

#[test]
fn empty_catalog() {
    let p = ok(b"<Response><CmdType>Catalog</CmdType><SN>3</SN><DeviceID>d</DeviceID><SumNum>0</SumNum></Response>");
    assert_eq!(
        catalog(&p),
        &Catalog {
            sum_num: Some(0),
            list_num: None,
            items: vec![]
        }
    );
}

#[test]
fn parent_ids_split() {
    let item = |p: Option<&str>| CatalogItem {
        parent_id: p.map(str::to_owned),
        ..CatalogItem::default()
    };
    assert_eq!(item(None).parent_ids(), Vec::<&str>::new());
    assert_eq!(item(Some("")).parent_ids(), Vec::<&str>::new());
    assert_eq!(item(Some("A")).parent_ids(), vec!["A"]);
    assert_eq!(item(Some("A/B")).parent_ids(), vec!["A", "B"]);
    assert_eq!(item(Some(" A / /B/ C/")).parent_ids(), vec!["A", "B", "C"]);
}

#[test]
fn node_kinds() {
    let cases = [
        ("34", NodeKind::Region),
        ("3402", NodeKind::Region),
        ("34020000", NodeKind::Region),
        ("34020000002150000001", NodeKind::BusinessGroup),
        ("34020000002160000001", NodeKind::VirtualOrganization),
        ("34020000001110000001", NodeKind::Recorder),
        ("34020000001180000001", NodeKind::Recorder),
        ("34020000001310000001", NodeKind::Camera),
        ("34020000001320000001", NodeKind::Camera),
        ("34020000002000000001", NodeKind::Platform),
        ("34020000001340000001", NodeKind::Other),
        ("44198700001510000004", NodeKind::Other),
        ("340200001", NodeKind::Other),
        ("3402000000132000000", NodeKind::Other),
        ("3402000000132000000x", NodeKind::Other),
        ("", NodeKind::Other),
        ("测试", NodeKind::Other),
    ];
    for (id, kind) in cases {
        assert_eq!(node_kind(id), kind, "{id}");
    }
}

// --- other bodies --------------------------------------------------------------

#[test]
fn device_info_response() {
    let p = ok("<Response><CmdType>DeviceInfo</CmdType><SN>2</SN><DeviceID>34020000001180000001</DeviceID>\
<DeviceName>NVR 一楼</DeviceName><Result>OK</Result><Manufacturer>Dahua</Manufacturer><Model>NVR4216</Model>\
<Firmware>V4.0</Firmware><Channel>16</Channel></Response>"
        .as_bytes());
    assert_eq!(
        p.message.body,
        Body::DeviceInfo(DeviceInfo {
            device_name: Some("NVR 一楼".into()),
            result: Some("OK".into()),
            manufacturer: Some("Dahua".into()),
            model: Some("NVR4216".into()),
            firmware: Some("V4.0".into()),
            channel: Some(16),
        })
    );
}

#[test]
fn device_status_response() {
    let p = ok(
        b"<Response><CmdType>DeviceStatus</CmdType><SN>3</SN><DeviceID>d</DeviceID>\
<Result>OK</Result><Online>ONLINE</Online><Status>OK</Status><Reason></Reason><Encode>ON</Encode>\
<Record>OFF</Record><DeviceTime>2024-05-01T12:00:00</DeviceTime><AlarmStatus Num=\"2\">\
<Item><DeviceID>a1</DeviceID><DutyStatus>ONDUTY</DutyStatus></Item><Item><DeviceID>a2</DeviceID>\
<DutyStatus>ALARM</DutyStatus></Item></AlarmStatus></Response>",
    );
    assert_eq!(
        p.message.body,
        Body::DeviceStatus(DeviceStatus {
            result: Some("OK".into()),
            online: Some("ONLINE".into()),
            status: Some("OK".into()),
            reason: None,
            encode: Some("ON".into()),
            record: Some("OFF".into()),
            device_time: Some("2024-05-01T12:00:00".into()),
            alarm_status: vec![
                AlarmStatusItem {
                    device_id: "a1".into(),
                    duty_status: Some("ONDUTY".into())
                },
                AlarmStatusItem {
                    device_id: "a2".into(),
                    duty_status: Some("ALARM".into())
                },
            ],
        })
    );
}

#[test]
fn alarm_notify() {
    let p = ok("<Notify><CmdType>Alarm</CmdType><SN>4</SN><DeviceID>34020000001340000001</DeviceID>\
<AlarmPriority>1</AlarmPriority><AlarmMethod>5</AlarmMethod><AlarmTime>2024-05-01T12:00:00</AlarmTime>\
<AlarmDescription>移动侦测</AlarmDescription><Longitude>117.1</Longitude><Latitude>x</Latitude>\
<Info><AlarmType>2</AlarmType><AlarmTypeParam><EventType>1</EventType></AlarmTypeParam></Info></Notify>"
        .as_bytes());
    assert_eq!(
        p.message.body,
        Body::Alarm(Alarm {
            alarm_priority: Some(1),
            alarm_method: Some(5),
            alarm_time: Some("2024-05-01T12:00:00".into()),
            alarm_description: Some("移动侦测".into()),
            longitude: Some(117.1),
            latitude: None,
            alarm_type: Some(2),
            event_type: Some(1),
        })
    );
}

#[test]
fn mobile_position_media_status_record_info_broadcast() {
    let p = ok(b"<Notify><CmdType>MobilePosition</CmdType><SN>5</SN><DeviceID>d</DeviceID>\
<Time>2024-05-01T12:00:00</Time><Longitude>117.2</Longitude><Latitude>31.8</Latitude><Speed>0.0</Speed>\
<Direction>90</Direction><Altitude>-3.5</Altitude></Notify>");
    assert_eq!(
        p.message.body,
        Body::MobilePosition(MobilePosition {
            time: Some("2024-05-01T12:00:00".into()),
            longitude: Some(117.2),
            latitude: Some(31.8),
            speed: Some(0.0),
            direction: Some(90.0),
            altitude: Some(-3.5),
        })
    );

    let p = ok(b"<Notify><CmdType>MediaStatus</CmdType><SN>6</SN><DeviceID>d</DeviceID><NotifyType>121</NotifyType></Notify>");
    assert_eq!(
        p.message.body,
        Body::MediaStatus(MediaStatus {
            notify_type: Some(MediaStatus::FILE_END)
        })
    );

    let p = ok(b"<Response><CmdType>RecordInfo</CmdType><SN>7</SN><DeviceID>c</DeviceID><Name>cam</Name>\
<SumNum>2</SumNum><RecordList Num=\"1\"><Item><DeviceID>c</DeviceID><Name>cam</Name><FilePath>/a</FilePath>\
<Address>x</Address><StartTime>2024-05-01T00:00:00</StartTime><EndTime>2024-05-01T01:00:00</EndTime>\
<Secrecy>0</Secrecy><Type>time</Type><RecorderID>r</RecorderID><FileSize>1024</FileSize></Item></RecordList></Response>");
    assert_eq!(
        p.message.body,
        Body::RecordInfo(RecordInfo {
            name: Some("cam".into()),
            sum_num: Some(2),
            list_num: Some(1),
            items: vec![RecordItem {
                device_id: "c".into(),
                name: Some("cam".into()),
                file_path: Some("/a".into()),
                address: Some("x".into()),
                start_time: Some("2024-05-01T00:00:00".into()),
                end_time: Some("2024-05-01T01:00:00".into()),
                secrecy: Some(0),
                record_type: Some("time".into()),
                recorder_id: Some("r".into()),
                file_size: Some(1024),
            }],
        })
    );

    // The Broadcast notification has no DeviceID: TargetID stands in.
    let p = ok(
        b"<Notify><CmdType>Broadcast</CmdType><SN>8</SN><SourceID>34020000002000000001</SourceID>\
<TargetID>34020000001370000001</TargetID></Notify>",
    );
    assert_eq!(p.message.device_id, "34020000001370000001");
    assert_eq!(
        p.message.body,
        Body::Broadcast(Broadcast {
            source_id: Some("34020000002000000001".into()),
            target_id: Some("34020000001370000001".into()),
        })
    );
}

#[test]
fn unknown_cmd_types_and_elements_are_kept() {
    let p = ok(
        b"<Control><CmdType>DeviceControl</CmdType><SN>11</SN><DeviceID>d</DeviceID>\
<PTZCmd>A50F0100000000B5</PTZCmd><Info><ControlPriority>5</ControlPriority></Info></Control>",
    );
    assert_eq!(p.message.cmd_type, CmdType::DeviceControl);
    let e = other(&p);
    assert_eq!(e.child_text("ptzcmd"), Some("A50F0100000000B5"));
    assert_eq!(
        e.child("Info")
            .and_then(|i| i.child_text("ControlPriority")),
        Some("5")
    );

    let p = ok(
        b"<Notify><CmdType>UploadSnapShotFinished</CmdType><SN>12</SN><DeviceID>d</DeviceID>\
<SnapShotList><SnapShotFileID>x</SnapShotFileID></SnapShotList><Vendor a=\"1\"/></Notify>",
    );
    assert_eq!(
        p.message.cmd_type,
        CmdType::Other("UploadSnapShotFinished".into())
    );
    assert_eq!(
        other(&p).child("vendor").and_then(|v| v.attribute("a")),
        Some("1")
    );

    // Unknown elements inside a typed body are ignored.
    let p = ok(
        b"<Notify><CmdType>Keepalive</CmdType><SN>1</SN><DeviceID>d</DeviceID><Status>OK</Status>\
<Extra><Deep>1</Deep></Extra></Notify>",
    );
    assert!(matches!(p.message.body, Body::Keepalive(_)));
}

// --- builders --------------------------------------------------------------------

#[test]
fn builders_round_trip() {
    for cmd in KNOWN_CMD_TYPES
        .iter()
        .chain([&CmdType::Other("SDCardStatus".into())])
    {
        for charset in [Charset::Utf8, Charset::Gb18030] {
            let xml = query(
                &cmd.as_str().to_ascii_uppercase(),
                123,
                "34020000001320000001",
            );
            assert!(
                xml.starts_with("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\r\n<Query>\r\n"),
                "{xml}"
            );
            let p = parse(&encode_body(&xml, charset), None).unwrap();
            let m = &p.message;
            let expected_cmd = match cmd {
                CmdType::Other(s) => CmdType::Other(s.to_ascii_uppercase()),
                c => c.clone(),
            };
            assert_eq!(
                (m.root, &m.cmd_type, m.sn),
                (Root::Query, &expected_cmd, 123)
            );
            assert_eq!(m.device_id, "34020000001320000001");
            assert!(matches!(m.body, Body::Other(_)));
        }
    }
    // Known CmdTypes are written in CamelCase.
    assert!(query("catalog", 1, "d").contains("<CmdType>Catalog</CmdType>"));

    let xml = response_ok("alarm", u64::MAX, "34020000001340000001");
    assert!(
        xml.contains("<CmdType>Alarm</CmdType>") && xml.contains("<Result>OK</Result>"),
        "{xml}"
    );
    let p = parse(&encode_body(&xml, Charset::Gb18030), None).unwrap();
    assert_eq!((p.message.root, p.message.sn), (Root::Response, u64::MAX));
    assert_eq!(other(&p).child_text("Result"), Some("OK"));

    // Escaping, extra fields, and invalid names.
    let xml = query_with(
        "RecordInfo",
        9,
        "a<b>&\"c'",
        &[
            ("StartTime", "2024-05-01T00:00:00"),
            ("Type", "all"),
            ("Address", "R&D <1>\u{0}"),
            ("bad name", "x"),
            ("<x>", "y"),
        ],
    );
    assert!(!xml.contains("bad name") && !xml.contains("<x>"), "{xml}");
    let p = parse(&encode_body(&xml, Charset::Gb18030), None).unwrap();
    assert_eq!(p.message.device_id, "a<b>&\"c'");
    let e = other(&p);
    assert_eq!(e.child_text("StartTime"), Some("2024-05-01T00:00:00"));
    assert_eq!(e.child_text("Type"), Some("all"));
    assert_eq!(e.child_text("Address"), Some("R&D <1>"));
    assert_eq!(escape_text("<&>\"'\u{1}ok"), "&lt;&amp;&gt;&quot;&apos;ok");
}

// --- real fixtures -----------------------------------------------------------------

/// `CAMGATE_REAL_FIXTURES`, or `../shared/fixtures` beside the repository.
/// `None` (skip) only when the variable is unset and the directory is absent.
fn fixtures_root() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("CAMGATE_REAL_FIXTURES") {
        let p = PathBuf::from(p);
        assert!(
            p.is_dir(),
            "CAMGATE_REAL_FIXTURES={} is not a directory",
            p.display()
        );
        return Some(p);
    }
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/fixtures");
    if p.is_dir() {
        Some(p)
    } else {
        eprintln!(
            "skipping: {} absent and CAMGATE_REAL_FIXTURES unset",
            p.display()
        );
        None
    }
}

fn fixture(root: &Path, rel: &str) -> Vec<u8> {
    let p = root.join(rel);
    std::fs::read(&p).unwrap_or_else(|e| {
        panic!(
            "real fixture {} missing or unreadable ({e}); set CAMGATE_REAL_FIXTURES to the shared fixtures directory",
            p.display()
        )
    })
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// Headers and body of one SIP message, split at the first blank line.
fn split_sip<'a>(msg: &'a [u8], blank: &[u8]) -> (&'a [u8], &'a [u8]) {
    match find(msg, blank) {
        Some(i) => (&msg[..i], &msg[i + blank.len()..]),
        None => (msg, &[]),
    }
}

fn is_manscdp(headers: &[u8], body: &[u8]) -> bool {
    let h = String::from_utf8_lossy(headers).to_ascii_lowercase();
    h.contains("application/manscdp+xml") && !body.trim_ascii().is_empty()
}

const SIP_DIR: &str = "gb28181-official-test-tool/sip_messages";

#[test]
fn real_sip_message_bodies_parse() {
    let Some(root) = fixtures_root() else { return };
    let dir = root.join(SIP_DIR);
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("real fixtures {} missing ({e})", dir.display()))
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".sip"))
        .collect();
    names.sort();
    assert!(
        names.len() >= 29,
        "expected 29 .sip files in {}, found {}",
        dir.display(),
        names.len()
    );
    let mut parsed = BTreeMap::new();
    for name in &names {
        let bytes = fixture(&root, &format!("{SIP_DIR}/{name}"));
        let (headers, body) = split_sip(&bytes, b"\r\n\r\n");
        if !is_manscdp(headers, body) {
            continue;
        }
        let p = parse(body, None).unwrap_or_else(|e| panic!("{name}: {e}"));
        parsed.insert(name.clone(), p);
    }
    let get = |prefix: &str| {
        parsed
            .iter()
            .find(|(n, _)| n.starts_with(prefix))
            .map(|(_, p)| p)
            .unwrap_or_else(|| panic!("no MANSCDP body in {prefix}*.sip"))
    };
    assert_eq!(parsed.len(), 4, "{:?}", parsed.keys());

    // eXosip keepalive: declared gb2312 in lower case, Status ON (not OK).
    let k = &get("04_").message;
    assert_eq!(
        (k.root, &k.cmd_type, k.sn),
        (Root::Notify, &CmdType::Keepalive, 1)
    );
    assert_eq!(k.device_id, "34010000002000000001");
    assert_eq!(
        k.body,
        Body::Keepalive(Keepalive {
            status: Some("ON".into()),
            faulty_devices: vec![]
        })
    );

    // The tool's catalog query: no encoding declared, no trailing CRLF.
    let q = &get("06_").message;
    assert_eq!(
        (q.root, &q.cmd_type, q.sn),
        (Root::Query, &CmdType::Catalog, 248)
    );

    let r = get("08_");
    assert_eq!(r.message.device_id, "46010000002000000100");
    let c = catalog(r);
    assert_eq!((c.sum_num, c.list_num), (Some(5), Some(1)));
    let item = &c.items[0];
    assert_eq!(item.name.as_deref(), Some("HON_Platform"));
    assert_eq!(item.manufacturer.as_deref(), Some("Honeywell"));
    assert_eq!((item.register_way, item.secrecy), (Some(1), Some(0)));
    assert_eq!(item.node_kind(), NodeKind::Platform);

    let k = &get("16_").message;
    assert_eq!(
        k.body,
        Body::Keepalive(Keepalive {
            status: Some("OK".into()),
            faulty_devices: vec![]
        })
    );
}

#[test]
fn real_catalog_sequence_parses() {
    let Some(root) = fixtures_root() else { return };
    let file = fixture(
        &root,
        "gb28181-official-test-tool/sip_messages/catalog_response_sequence_SumNum5_Num1_each.txt",
    );
    // Format: `# from <addr> time_ms <t>` comment lines, each followed by one
    // SIP message with LF line ends (not CRLF), messages separated by a blank line.
    let mut chunks = Vec::new();
    let mut rest = &file[..];
    while let Some(start) = find(rest, b"# from") {
        let after = &rest[start + 6..];
        let end = find(after, b"\n# from").map_or(after.len(), |e| e + 1);
        chunks.push(&after[..end]);
        rest = &after[end..];
    }
    assert_eq!(chunks.len(), 5, "five MESSAGEs expected");
    let mut ids = BTreeSet::new();
    let mut charsets = Vec::new();
    let mut names = Vec::new();
    for chunk in chunks {
        let (headers, body) = split_sip(chunk, b"\n\n");
        assert!(is_manscdp(headers, body));
        let p =
            parse(body, None).unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(body)));
        let m = &p.message;
        assert_eq!(
            (m.root, &m.cmd_type, m.sn),
            (Root::Response, &CmdType::Catalog, 248)
        );
        assert_eq!(m.device_id, "46010000002000000100");
        let c = catalog(&p);
        assert_eq!(
            (c.sum_num, c.list_num, c.items.len()),
            (Some(5), Some(1), 1)
        );
        ids.insert(c.items[0].device_id.clone());
        names.push(c.items[0].name.clone().unwrap_or_default());
        charsets.push(p.charset);
        if c.items[0].device_id.starts_with("4419870000") {
            assert_eq!(c.items[0].parent_ids(), vec!["46010000002000000100"]);
            assert_eq!(
                c.items[0].business_group_id.as_deref().map(node_kind),
                Some(NodeKind::BusinessGroup)
            );
        }
    }
    assert_eq!(ids.len(), 5);
    // The logging tool replaced the Chinese names by `?`; one name kept a
    // trailing GB2312 byte pair (A1 A4, the middle dot), so that body is not
    // UTF-8 and decodes as GB18030.
    assert_eq!(
        names,
        ["HON_Platform", "?????", "????·", "??????", "??????"]
    );
    assert_eq!(
        charsets,
        [
            Charset::Utf8,
            Charset::Utf8,
            Charset::Gb18030,
            Charset::Utf8,
            Charset::Utf8
        ]
    );
}

#[test]
fn real_sip_log_manscdp_bodies_parse() {
    let Some(root) = fixtures_root() else { return };
    let gz = fixture(&root, "gb28181-official-test-tool/mss-jsip-messages.xml.gz");
    let mut log = Vec::new();
    flate2::read::GzDecoder::new(&gz[..])
        .read_to_end(&mut log)
        .expect("mss-jsip-messages.xml.gz does not gunzip");
    let mut counts: BTreeMap<(String, String), usize> = BTreeMap::new();
    let mut rest = &log[..];
    while let Some(start) = find(rest, b"<![CDATA[") {
        let after = &rest[start + 9..];
        let end = find(after, b"]]>").unwrap_or(after.len());
        let msg = &after[..end];
        rest = &after[end..];
        // The log stores LF line ends.
        let (headers, body) = split_sip(msg, b"\n\n");
        if !is_manscdp(headers, body) {
            continue;
        }
        let p =
            parse(body, None).unwrap_or_else(|e| panic!("{e}:\n{}", String::from_utf8_lossy(msg)));
        *counts
            .entry((p.message.root.to_string(), p.message.cmd_type.to_string()))
            .or_default() += 1;
    }
    let key = |r: &str, c: &str| (r.to_owned(), c.to_owned());
    let expected = BTreeMap::from([
        (key("Notify", "Keepalive"), 703),
        (key("Query", "Catalog"), 18),
        (key("Response", "Catalog"), 10),
    ]);
    assert_eq!(counts, expected);
}

// --- never panics ----------------------------------------------------------------

/// The fuzz entry point (mirrors the text proposed for `src/fuzzing.rs`).
fn fuzz_manscdp(data: &[u8]) {
    let _ = parse(data, None);
    let _ = parse(data, Some(Charset::Utf8));
    let _ = parse(data, Some(Charset::Gb18030));
    let (text, _) = decode_body(data, None);
    let _ = encode_body(&text, Charset::Gb18030);
    let built = query_with(&text, 1, &text, &[("Name", &text)]);
    let _ = parse(&encode_body(&built, Charset::Gb18030), None);
}

fn seeds() -> Vec<Vec<u8>> {
    vec![
        catalog_body(NAME.as_bytes()),
        catalog_body(NAME_GB),
        format!(
            "<Response><CmdType>Catalog</CmdType><SN>1</SN><DeviceID>d</DeviceID><SumNum>1</SumNum>\
<DeviceList Num=\"1\">{FULL_ITEM}</DeviceList></Response>"
        )
        .into_bytes(),
        b"<Notify><CmdType>Keepalive</CmdType><SN>5</SN><DeviceID>d</DeviceID><Status>OK</Status>\
<Info><DeviceID>x</DeviceID></Info></Notify>"
            .to_vec(),
        b"<Notify><CmdType>Alarm</CmdType><SN>4</SN><DeviceID>d</DeviceID><AlarmMethod>5</AlarmMethod>\
<Info><AlarmType>2</AlarmType><AlarmTypeParam><EventType>1</EventType></AlarmTypeParam></Info></Notify>"
            .to_vec(),
        b"<Response><CmdType>DeviceStatus</CmdType><SN>3</SN><DeviceID>d</DeviceID><Alarmstatus Num=\"1\">\
<Item><DeviceID>a</DeviceID><DutyStatus>ONDUTY</DutyStatus></Item></Alarmstatus></Response>"
            .to_vec(),
        b"<Notify><CmdType>Broadcast</CmdType><SN>8</SN><SourceID>s</SourceID><TargetID>t</TargetID></Notify>"
            .to_vec(),
        query("RecordInfo", 9, "&<x>").into_bytes(),
        b"<a>&bad; &#xD800; <![CDATA[&]]><!-- <!DOCTYPE --></a>".to_vec(),
    ]
}

const TOKENS: [&[u8]; 10] = [
    b"<",
    b">",
    b"&",
    b"</",
    b"/>",
    b"<![CDATA[",
    b"]]>",
    b"<!DOCTYPE",
    b"&#x",
    b"\xb2",
];

fn mutate(mut data: Vec<u8>, ops: &[(u8, u16, u8)]) -> Vec<u8> {
    for &(kind, pos, byte) in ops {
        let at = if data.is_empty() {
            0
        } else {
            usize::from(pos) % (data.len() + 1)
        };
        match kind % 5 {
            0 if at < data.len() => data[at] = byte,
            1 => data.insert(at, byte),
            2 if at < data.len() => {
                data.remove(at);
            }
            3 => data.truncate(at),
            4 => {
                let token = TOKENS[usize::from(byte) % TOKENS.len()];
                data.splice(at..at, token.iter().copied());
            }
            _ => {}
        }
    }
    data
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1000))]

    #[test]
    fn random_bytes_never_panic(data in proptest::collection::vec(any::<u8>(), 0..1024)) {
        fuzz_manscdp(&data);
    }

    #[test]
    fn mutated_bodies_never_panic(
        seed in 0usize..9,
        ops in proptest::collection::vec((any::<u8>(), any::<u16>(), any::<u8>()), 0..12),
    ) {
        let seeds = seeds();
        let data = mutate(seeds[seed % seeds.len()].clone(), &ops);
        fuzz_manscdp(&data);
    }

    #[test]
    fn built_device_ids_round_trip(
        chars in proptest::collection::vec(any::<char>(), 1..64),
        sn in any::<u64>(),
        gb in any::<bool>(),
    ) {
        // A few private-use code points do not survive GB18030 (see encode_body).
        let id: String = chars
            .into_iter()
            .filter(|c| !gb || !('\u{e000}'..='\u{f8ff}').contains(c))
            .collect();
        let kept: String = escape_text(&id)
            .replace("&lt;", "<").replace("&gt;", ">").replace("&quot;", "\"")
            .replace("&apos;", "'").replace("&amp;", "&");
        let expected = kept.trim();
        let charset = if gb { Charset::Gb18030 } else { Charset::Utf8 };
        let result = parse(&encode_body(&query("Catalog", sn, &id), charset), None);
        if expected.is_empty() {
            let missing = matches!(result, Err(ManscdpError::Missing { element: "DeviceID", .. }));
            prop_assert!(missing);
        } else {
            let p = result.map_err(|e| TestCaseError::fail(e.to_string()))?;
            prop_assert_eq!(p.message.sn, sn);
            prop_assert_eq!(p.message.device_id.as_str(), expected);
        }
    }
}
