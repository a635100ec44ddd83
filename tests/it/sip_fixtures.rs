//! The official GB28181 test tool's log of 3,046 real SIP messages
//! (../shared/fixtures/gb28181-official-test-tool), through our framing, rsip
//! and the SDP parser.

use std::io::Read;

use camgate::sip::{self, FramingError, Limits, frame_datagram, parse_message};

use crate::common::fixture;

/// The messages of the log, in order, with CRLF restored: the logging tool
/// stored bare LF, and Content-Length counts the original CRLF body lines.
fn logged_messages() -> Vec<Vec<u8>> {
    let mut raw = Vec::new();
    flate2::read::GzDecoder::new(
        std::fs::File::open(fixture(
            "gb28181-official-test-tool/mss-jsip-messages.xml.gz",
        ))
        .unwrap(),
    )
    .read_to_end(&mut raw)
    .unwrap();
    let text = raw.as_slice();
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(start) = find(rest, b"<![CDATA[") {
        rest = &rest[start + 9..];
        let end = find(rest, b"]]>").expect("CDATA end");
        let mut msg = Vec::with_capacity(end + 64);
        for &b in &rest[..end] {
            if b == b'\n' {
                msg.push(b'\r');
            }
            msg.push(b);
        }
        out.push(msg);
        rest = &rest[end + 3..];
    }
    out
}

fn find(h: &[u8], n: &[u8]) -> Option<usize> {
    h.windows(n.len()).position(|w| w == n)
}

fn content_type(msg: &rsip::SipMessage) -> Option<String> {
    use rsip::prelude::{HasHeaders, UntypedHeader};
    msg.headers().iter().find_map(|h| match h {
        rsip::Header::ContentType(c) => Some(c.value().to_ascii_lowercase()),
        _ => None,
    })
}

#[test]
fn every_logged_message_parses_except_the_damaged_catalog_answers() {
    let messages = logged_messages();
    assert_eq!(messages.len(), 3046);
    let mut length_mismatch = Vec::new();
    let mut sdp_bodies = 0;
    let mut xml_bodies = 0;
    for (i, m) in messages.iter().enumerate() {
        let range = match frame_datagram(m, &Limits::default()) {
            Ok(r) => r,
            Err(FramingError::LengthMismatch { declared, actual }) => {
                length_mismatch.push((i, declared, actual));
                continue;
            }
            Err(e) => panic!("message {i}: {e}"),
        };
        let parsed = parse_message(&m[range]).unwrap_or_else(|e| panic!("message {i}: {e}"));
        let body = match &parsed {
            rsip::SipMessage::Request(r) => &r.body,
            rsip::SipMessage::Response(r) => &r.body,
        };
        match content_type(&parsed).as_deref() {
            Some("application/sdp") => {
                let text = std::str::from_utf8(body)
                    .unwrap_or_else(|e| panic!("message {i}: SDP not text: {e}"));
                sip::sdp::parse(text).unwrap_or_else(|e| panic!("message {i}: {e}"));
                sdp_bodies += 1;
            }
            Some("application/manscdp+xml") => {
                assert!(
                    body.starts_with(b"<?xml"),
                    "message {i}: MANSCDP body is not XML"
                );
                xml_bodies += 1;
            }
            _ => {}
        }
    }
    // Message 70 (counting from 0) is the fixture README's example: the log
    // replaced a Chinese name with '?', leaving the body 3 bytes short. 74 and
    // 76 are two more catalog answers damaged the same way (2 bytes short).
    // RFC 3261 §18.3: a body shorter than Content-Length is an error.
    assert_eq!(
        length_mismatch,
        vec![(70, 391, 388), (74, 391, 389), (76, 391, 389)]
    );
    assert!(sdp_bodies >= 60, "{sdp_bodies} SDP bodies");
    assert!(xml_bodies >= 700, "{xml_bodies} MANSCDP bodies");
}

#[test]
fn extracted_messages_round_trip_byte_for_byte() {
    let dir = fixture("gb28181-official-test-tool/sip_messages");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "sip"))
        .collect();
    files.sort();
    assert_eq!(files.len(), 29);
    for f in files {
        let bytes = std::fs::read(&f).unwrap();
        let range = frame_datagram(&bytes, &Limits::default())
            .unwrap_or_else(|e| panic!("{}: {e}", f.display()));
        assert_eq!(
            range,
            0..bytes.len(),
            "{}: whole file is one message",
            f.display()
        );
        let parsed = parse_message(&bytes).unwrap_or_else(|e| panic!("{}: {e}", f.display()));
        let written = sip::to_bytes(&parsed);
        let reparsed = parse_message(&written).unwrap();
        assert_eq!(reparsed, parsed, "{}", f.display());
        assert_eq!(
            sip::to_bytes(&reparsed),
            written,
            "{}: stable serialisation",
            f.display()
        );
        // The body survives byte for byte (GB2312 included).
        let body = |m: &rsip::SipMessage| match m {
            rsip::SipMessage::Request(r) => r.body.clone(),
            rsip::SipMessage::Response(r) => r.body.clone(),
        };
        assert_eq!(body(&reparsed), body(&parsed));
        let original_body = &bytes[find(&bytes, b"\r\n\r\n").unwrap() + 4..];
        assert_eq!(body(&parsed), original_body, "{}", f.display());
    }
}
