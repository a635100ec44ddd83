//! Header access and response building on top of rsip, kept string-based so
//! devices' header quirks (case, compact forms, odd parameters) do not trip a
//! typed parser.

use std::net::SocketAddr;

use rsip::prelude::*;

/// Compact header forms (RFC 3261 §7.3.3) that devices use.
fn long_name(name: &str) -> &str {
    match name {
        "v" | "V" => "Via",
        "f" | "F" => "From",
        "t" | "T" => "To",
        "i" | "I" => "Call-ID",
        "m" | "M" => "Contact",
        "l" | "L" => "Content-Length",
        "c" | "C" => "Content-Type",
        _ => name,
    }
}

/// (name, value) of a header as it would be written.
pub fn split_header(h: &rsip::Header) -> (String, String) {
    let s = h.to_string();
    match s.split_once(':') {
        Some((n, v)) => (long_name(n.trim()).to_owned(), v.trim().to_owned()),
        None => (s, String::new()),
    }
}

/// Values of every header named `name` (case-insensitive), in order.
pub fn header_values(headers: &rsip::Headers, name: &str) -> Vec<String> {
    headers
        .iter()
        .map(split_header)
        .filter(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v)
        .collect()
}

pub fn header_value(headers: &rsip::Headers, name: &str) -> Option<String> {
    header_values(headers, name).into_iter().next()
}

/// A `;name=value` parameter of a header value (case-insensitive name).
pub fn param<'a>(value: &'a str, name: &str) -> Option<&'a str> {
    value.split(';').skip(1).find_map(|p| {
        let (k, v) = p.split_once('=').unwrap_or((p, ""));
        k.trim()
            .eq_ignore_ascii_case(name)
            .then(|| v.trim().trim_matches('"'))
    })
}

/// The sent-by part of a Via value: `SIP/2.0/UDP host:port;…` → `host:port`.
pub fn via_sent_by(via: &str) -> Option<&str> {
    let first = via.split(',').next()?;
    let (_proto, rest) = first.trim().split_once(char::is_whitespace)?;
    Some(rest.split(';').next()?.trim())
}

/// The top Via's branch, the transaction identifier (§8.1.1.7).
pub fn top_branch(headers: &rsip::Headers) -> Option<String> {
    let via = header_value(headers, "Via")?;
    let top = via.split(',').next()?;
    param(top, "branch").map(str::to_owned)
}

/// The user part of a SIP URI in a From/To/Contact value: the GB28181 id.
pub fn uri_user(value: &str) -> Option<&str> {
    let start = value.find("sip:")? + 4;
    let rest = &value[start..];
    let end = rest.find('@')?;
    Some(&rest[..end]).filter(|u| !u.is_empty())
}

/// Adds `received` and fills `rport` on the top Via (RFC 3261 §18.2.1, RFC
/// 3581 §4), so responses follow the packet's real source through NAT.
fn stamp_via(via: &str, source: SocketAddr) -> String {
    let mut parts: Vec<String> = via.split(';').map(str::to_owned).collect();
    let mut has_received = false;
    for p in parts.iter_mut().skip(1) {
        let key = p
            .split('=')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase();
        if key == "rport" {
            *p = format!("rport={}", source.port());
        } else if key == "received" {
            *p = format!("received={}", source.ip());
            has_received = true;
        }
    }
    if !has_received {
        parts.push(format!("received={}", source.ip()));
    }
    parts.join(";")
}

/// A response to `request` with the headers §8.2.6.2 requires copied, the top
/// Via stamped with the packet's source, and a To tag added when given.
pub fn response(
    request: &rsip::Request,
    code: u16,
    source: SocketAddr,
    to_tag: Option<&str>,
) -> rsip::Response {
    let mut headers = rsip::Headers::default();
    let mut first_via = true;
    for h in request.headers().iter() {
        let (name, value) = split_header(h);
        match name.to_ascii_lowercase().as_str() {
            "via" => {
                // One header may carry several comma-separated Vias.
                for (i, v) in value.split(',').enumerate() {
                    let v = v.trim();
                    let v = if first_via && i == 0 {
                        stamp_via(v, source)
                    } else {
                        v.to_owned()
                    };
                    headers.push(rsip::Header::Other("Via".into(), v));
                }
                first_via = false;
            }
            "to" => {
                let v = match to_tag {
                    Some(tag) if param(&value, "tag").is_none() => format!("{value};tag={tag}"),
                    _ => value,
                };
                headers.push(rsip::Header::Other("To".into(), v));
            }
            "from" | "call-id" | "cseq" => headers.push(rsip::Header::Other(name, value)),
            _ => {}
        }
    }
    rsip::Response {
        status_code: rsip::StatusCode::from(code),
        version: rsip::Version::V2,
        headers,
        body: Vec::new(),
    }
}

/// The ACK a client transaction sends for a 3xx–6xx to `invite` (RFC 3261
/// §17.1.1.3): the INVITE's Request-URI, top Via, From, Call-ID and CSeq
/// number, the response's To (with its tag).
pub fn ack_for_failure(invite: &rsip::Request, response: &rsip::Response) -> rsip::Request {
    let mut headers = rsip::Headers::default();
    if let Some(via) = header_value(&invite.headers, "Via") {
        let top = via.split(',').next().unwrap_or("").trim().to_owned();
        headers.push(rsip::Header::Other("Via".into(), top));
    }
    for name in ["From", "Call-ID"] {
        if let Some(v) = header_value(&invite.headers, name) {
            headers.push(rsip::Header::Other(name.into(), v));
        }
    }
    if let Some(v) = header_value(&response.headers, "To") {
        headers.push(rsip::Header::Other("To".into(), v));
    }
    let seq = header_value(&invite.headers, "CSeq")
        .and_then(|c| c.split_whitespace().next().map(str::to_owned))
        .unwrap_or_else(|| "1".into());
    headers.push(rsip::Header::Other("CSeq".into(), format!("{seq} ACK")));
    headers.push(rsip::Header::Other("Max-Forwards".into(), "70".into()));
    rsip::Request {
        method: rsip::Method::Ack,
        uri: invite.uri.clone(),
        version: rsip::Version::V2,
        headers,
        body: Vec::new(),
    }
}

/// Serialises a message with exactly one Content-Length equal to its body.
pub fn finish(mut msg: rsip::SipMessage) -> bytes::Bytes {
    let (headers, len) = match &mut msg {
        rsip::SipMessage::Request(r) => (&mut r.headers, r.body.len()),
        rsip::SipMessage::Response(r) => (&mut r.headers, r.body.len()),
    };
    headers.retain(|h| !split_header(h).0.eq_ignore_ascii_case("Content-Length"));
    headers.push(rsip::Header::Other(
        "Content-Length".into(),
        len.to_string(),
    ));
    super::to_bytes(&msg)
}

#[cfg(test)]
mod tests {
    use super::*;

    const REGISTER: &[u8] = b"REGISTER sip:34020000002000000001@3402000000 SIP/2.0\r\nVia: SIP/2.0/UDP 192.168.1.64:5060;rport;branch=z9hG4bK1234\r\nFrom: <sip:34020000001320000001@3402000000>;tag=77\r\nTo: <sip:34020000001320000001@3402000000>\r\nCall-ID: abc@192.168.1.64\r\nCSeq: 1 REGISTER\r\nContact: <sip:34020000001320000001@192.168.1.64:5060>\r\nMax-Forwards: 70\r\nExpires: 3600\r\nContent-Length: 0\r\n\r\n";

    fn request() -> rsip::Request {
        match crate::sip::parse_message(REGISTER).unwrap() {
            rsip::SipMessage::Request(r) => r,
            _ => unreachable!(),
        }
    }

    #[test]
    fn header_access() {
        let r = request();
        assert_eq!(top_branch(&r.headers).as_deref(), Some("z9hG4bK1234"));
        let via = header_value(&r.headers, "via").unwrap();
        assert_eq!(via_sent_by(&via), Some("192.168.1.64:5060"));
        let from = header_value(&r.headers, "From").unwrap();
        assert_eq!(uri_user(&from), Some("34020000001320000001"));
        assert_eq!(param(&from, "tag"), Some("77"));
        assert_eq!(header_value(&r.headers, "Expires").as_deref(), Some("3600"));
    }

    #[test]
    fn response_follows_nat_and_tags_to() {
        let r = request();
        let source: SocketAddr = "203.0.113.9:40000".parse().unwrap();
        let resp = response(&r, 401, source, Some("t1"));
        let bytes = finish(rsip::SipMessage::Response(resp));
        let text = String::from_utf8(bytes.to_vec()).unwrap();
        assert!(text.starts_with("SIP/2.0 401"), "{text}");
        assert!(text.contains("Via: SIP/2.0/UDP 192.168.1.64:5060;rport=40000;branch=z9hG4bK1234;received=203.0.113.9"), "{text}");
        assert!(
            text.contains("To: <sip:34020000001320000001@3402000000>;tag=t1"),
            "{text}"
        );
        assert!(text.contains("Call-ID: abc@192.168.1.64"));
        assert!(text.contains("CSeq: 1 REGISTER"));
        assert!(text.ends_with("Content-Length: 0\r\n\r\n"), "{text}");
        crate::sip::parse_message(&bytes).unwrap();
    }
}
