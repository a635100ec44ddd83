//! One simulated device: registration with digest authentication, refresh,
//! keepalive, unregistration (gb28181.md §2), and its answers to the
//! platform's MESSAGE queries and controls and to SUBSCRIBE (§3).

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, SystemTime};

use tokio::time::Instant;

use super::link::{Incoming, Route, TcpConn};
use super::{Shared, SimError, ids::DeviceIds, token, xml};
use crate::gb::manscdp::{self, Body, CmdType, Message, Root};
use crate::sip::msg;

/// Missed keepalives before the device registers again (the standard's
/// timeout count, gb28181.md §2 and §9: 3).
const MAX_MISSED_KEEPALIVES: u32 = 3;
/// Challenges answered in one registration attempt.
const MAX_CHALLENGES: usize = 2;
/// Backoff between failed registrations.
const BACKOFF_MIN: Duration = Duration::from_secs(1);
const BACKOFF_MAX: Duration = Duration::from_secs(60);
/// Longest subscription granted, seconds.
const MAX_SUBSCRIBE_EXPIRES: u32 = 86_400;
/// How long a stopping device waits for its sessions' BYEs before it
/// unregisters.
const STOP_WAIT: Duration = Duration::from_secs(5);

/// The registration dialog: the same Call-ID and From tag on every
/// refresh, CSeq rising (RFC 3261 §10.2.4).
struct RegDialog {
    call_id: String,
    from_tag: String,
}

pub struct Device {
    pub index: usize,
    pub id: String,
    pub channels: Vec<String>,
    reg: RegDialog,
    reg_cseq: AtomicU32,
    tcp: tokio::sync::Mutex<Option<Arc<TcpConn>>>,
}

impl Device {
    pub fn new(index: usize, ids: DeviceIds) -> Self {
        Self {
            index,
            id: ids.device_id,
            channels: ids.channel_ids,
            reg: RegDialog {
                call_id: format!("{}@camgate-sim", token(10)),
                from_tag: token(6),
            },
            reg_cseq: AtomicU32::new(0),
            tcp: tokio::sync::Mutex::new(None),
        }
    }

    /// The path to the platform: the shared UDP endpoint, or this device's
    /// TCP connection (opened again when it closed).
    pub async fn route(&self, sh: &Shared) -> Result<Route, SimError> {
        if let Some(endpoint) = &sh.endpoint {
            return Ok(Route::Udp {
                endpoint: endpoint.clone(),
                peer: sh.cfg.platform,
                local: sh.sip_local(),
            });
        }
        let mut slot = self.tcp.lock().await;
        if let Some(c) = slot.as_ref()
            && !c.is_closed()
        {
            return Ok(Route::Tcp(c.clone()));
        }
        let conn = TcpConn::connect(
            sh.local_ip,
            sh.cfg.platform,
            sh.inbound.clone(),
            sh.io.clone(),
        )
        .await
        .map_err(|source| SimError::Connect {
            device_id: self.id.clone(),
            peer: sh.cfg.platform,
            source,
        })?;
        sh.note_sip_addr(conn.local_addr());
        *slot = Some(conn.clone());
        Ok(Route::Tcp(conn))
    }

    async fn close_tcp(&self) {
        if let Some(c) = self.tcp.lock().await.take() {
            c.close();
        }
    }
}

/// An out-of-dialog request from the device to the platform, with the
/// headers gb28181.md §2 lists (mirroring `Platform::build_request`).
#[allow(clippy::too_many_arguments)]
fn build_request(
    sh: &Shared,
    dev: &Device,
    route: &Route,
    method: rsip::Method,
    call_id: &str,
    from_tag: &str,
    cseq: u32,
    extra: &[(&str, String)],
    body: Option<Vec<u8>>,
) -> rsip::Request {
    let cfg = &sh.cfg;
    let local = route.local();
    let uri_text = format!("sip:{}@{}", cfg.platform_id, cfg.platform);
    let uri = rsip::Uri::try_from(uri_text.as_str()).unwrap_or_default();
    // REGISTER: To = From = the device (gb28181.md §2); else To = the platform.
    let to_user = if method == rsip::Method::Register {
        dev.id.as_str()
    } else {
        cfg.platform_id.as_str()
    };
    let mut h = rsip::Headers::default();
    let mut push = |n: &str, v: String| h.push(rsip::Header::Other(n.into(), v));
    push(
        "Via",
        format!(
            "SIP/2.0/{} {local};rport;branch=z9hG4bK{}",
            route.via_transport(),
            token(10)
        ),
    );
    push(
        "From",
        format!("<sip:{}@{}>;tag={from_tag}", dev.id, cfg.domain),
    );
    push("To", format!("<sip:{to_user}@{}>", cfg.domain));
    push("Call-ID", call_id.to_owned());
    push("CSeq", format!("{cseq} {method}"));
    push("Max-Forwards", "70".into());
    push("Contact", format!("<sip:{}@{local}>", dev.id));
    push("User-Agent", super::USER_AGENT.into());
    for (n, v) in extra {
        push(n, v.clone());
    }
    if body.is_some() {
        push("Content-Type", "Application/MANSCDP+xml".into());
    }
    rsip::Request {
        method,
        uri,
        version: rsip::Version::V2,
        headers: h,
        body: body.unwrap_or_default(),
    }
}

/// REGISTER with `expires` (0 = unregister), answering digest challenges.
/// Returns the period the platform granted.
async fn register(sh: &Shared, dev: &Device, expires: u32) -> Result<u32, SimError> {
    let _slot = sh.register_slots.acquire().await;
    let route = dev.route(sh).await?;
    let uri = format!("sip:{}@{}", sh.cfg.platform_id, sh.cfg.platform);
    // (header name, credential): Authorization for 401, Proxy-Authorization
    // for 407 (RFC 3261 §22.2, §22.3).
    let mut authorization: Option<(&str, String)> = None;
    for _ in 0..=MAX_CHALLENGES {
        let cseq = dev.reg_cseq.fetch_add(1, Ordering::Relaxed) + 1;
        let mut extra = vec![("Expires", expires.to_string())];
        if let Some((name, value)) = &authorization {
            extra.push((name, value.clone()));
        }
        let req = build_request(
            sh,
            dev,
            &route,
            rsip::Method::Register,
            &dev.reg.call_id,
            &dev.reg.from_tag,
            cseq,
            &extra,
            None,
        );
        let resp = route.request(req).await.map_err(|source| SimError::Sip {
            device_id: dev.id.clone(),
            method: "REGISTER",
            source,
        })?;
        let code = resp.status_code.code();
        match code {
            200..=299 => {
                // The granted period: Expires, else the Contact's expires
                // parameter, else what we asked (RFC 3261 §10.2.4).
                let granted = msg::header_value(&resp.headers, "Expires")
                    .and_then(|v| v.trim().parse::<u32>().ok())
                    .or_else(|| {
                        msg::header_value(&resp.headers, "Contact")
                            .and_then(|c| msg::param(&c, "expires").and_then(|v| v.parse().ok()))
                    })
                    .unwrap_or(expires);
                return Ok(granted);
            }
            401 | 407 => {
                let header = if code == 401 {
                    "WWW-Authenticate"
                } else {
                    "Proxy-Authenticate"
                };
                let auth_err = |reason: String| SimError::Auth {
                    device_id: dev.id.clone(),
                    reason,
                };
                let value = msg::header_value(&resp.headers, header)
                    .ok_or_else(|| auth_err(format!("{code} without {header}")))?;
                let challenge =
                    super::auth::parse_challenge(&value).map_err(|e| auth_err(e.to_string()))?;
                let value = super::auth::authorization(
                    &challenge,
                    &dev.id,
                    &sh.cfg.password,
                    "REGISTER",
                    &uri,
                    1,
                    &token(8),
                )
                .map_err(|e| auth_err(e.to_string()))?;
                let name = if code == 401 {
                    "Authorization"
                } else {
                    "Proxy-Authorization"
                };
                authorization = Some((name, value));
            }
            _ => {
                return Err(SimError::Rejected {
                    device_id: dev.id.clone(),
                    method: "REGISTER",
                    code,
                });
            }
        }
    }
    Err(SimError::Auth {
        device_id: dev.id.clone(),
        reason: format!("still challenged after {MAX_CHALLENGES} answers (wrong password?)"),
    })
}

/// Sends a MANSCDP MESSAGE and returns the final status code.
pub async fn send_message(sh: &Shared, dev: &Device, xml_text: &str) -> Result<u16, SimError> {
    let route = dev.route(sh).await?;
    let body = xml::encode(xml_text, sh.cfg.charset);
    let req = build_request(
        sh,
        dev,
        &route,
        rsip::Method::Message,
        &format!("{}@camgate-sim", token(10)),
        &token(6),
        1,
        &[],
        Some(body),
    );
    let resp = route.request(req).await.map_err(|source| SimError::Sip {
        device_id: dev.id.clone(),
        method: "MESSAGE",
        source,
    })?;
    Ok(resp.status_code.code())
}

/// The device's life: register, keep alive, refresh; register again after a
/// 404 to a keepalive, missed keepalives or a lost TCP connection;
/// unregister when the simulator stops.
pub async fn run(sh: Arc<Shared>, dev: Arc<Device>) {
    let cfg = &sh.cfg;
    let mut backoff = BACKOFF_MIN;
    let mut first = true;
    'life: loop {
        if sh.stopping.is_cancelled() {
            break;
        }
        let granted = tokio::select! {
            () = sh.stopping.cancelled() => break,
            r = register(&sh, &dev, cfg.expires) => r,
        };
        let granted = match granted {
            Ok(g) => g.max(1),
            Err(e) => {
                tracing::warn!(device_id = %dev.id, error = %e, retry_secs = backoff.as_secs(), "sim registration failed");
                dev.close_tcp().await;
                tokio::select! {
                    () = sh.stopping.cancelled() => break,
                    () = tokio::time::sleep(backoff) => {}
                }
                backoff = (backoff * 2).min(BACKOFF_MAX);
                continue;
            }
        };
        backoff = BACKOFF_MIN;
        tracing::debug!(device_id = %dev.id, expires = granted, "sim device registered");
        if first {
            first = false;
            sh.note_registered();
        }
        let now = Instant::now();
        // Refresh at 80 % of the granted period.
        let refresh_at = now + Duration::from_secs(u64::from(granted)) * 4 / 5;
        // Spread the devices' keepalives over one interval.
        let n = cfg.devices.max(1) as u32;
        let mut next_keepalive = now + cfg.keepalive * (dev.index as u32 % n + 1) / n;
        let mut missed = 0u32;
        let tcp = match dev.route(&sh).await {
            Ok(Route::Tcp(c)) => Some(c),
            _ => None,
        };
        loop {
            let tcp_closed = async {
                match &tcp {
                    Some(c) => c.closed().await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                () = sh.stopping.cancelled() => break 'life,
                () = tcp_closed => {
                    tracing::warn!(device_id = %dev.id, peer = %cfg.platform, "sim SIP TCP connection lost: registering again");
                    continue 'life;
                }
                () = tokio::time::sleep_until(refresh_at) => continue 'life,
                () = tokio::time::sleep_until(next_keepalive) => {}
            }
            next_keepalive += cfg.keepalive;
            let body = xml::keepalive(sh.next_sn(), &dev.id);
            let sent = tokio::select! {
                () = sh.stopping.cancelled() => break 'life,
                r = send_message(&sh, &dev, &body) => r,
            };
            match sent {
                Ok(200..=299) => missed = 0,
                Ok(404) => {
                    // The platform forgot us (gb28181.md §2): register again.
                    tracing::info!(device_id = %dev.id, "sim keepalive got 404: registering again");
                    continue 'life;
                }
                Ok(code) => {
                    tracing::warn!(device_id = %dev.id, code, "sim keepalive refused");
                    missed += 1;
                }
                Err(e) => {
                    tracing::warn!(device_id = %dev.id, error = %e, "sim keepalive failed");
                    missed += 1;
                }
            }
            if missed >= MAX_MISSED_KEEPALIVES {
                tracing::warn!(device_id = %dev.id, missed, "sim keepalives unanswered: registering again");
                continue 'life;
            }
        }
    }
    // Graceful stop: the sessions' BYEs first, then Expires 0.
    let deadline = Instant::now() + STOP_WAIT;
    while sh.calls_of(&dev.id) > 0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    if !first {
        match tokio::time::timeout(STOP_WAIT, register(&sh, &dev, 0)).await {
            Ok(Ok(_)) => tracing::info!(device_id = %dev.id, "sim device unregistered"),
            Ok(Err(e)) => {
                tracing::warn!(device_id = %dev.id, error = %e, "sim unregistration failed")
            }
            Err(_) => tracing::warn!(device_id = %dev.id, "sim unregistration timed out"),
        }
    }
    dev.close_tcp().await;
}

/// The local time as MANSCDP writes it: `YYYY-MM-DDTHH:MM:SS`.
fn device_time(utc_offset: i64) -> String {
    let mut t = crate::util::gb_sip_date(SystemTime::now(), utc_offset);
    t.truncate(19);
    t
}

/// A MESSAGE from the platform: 200 at once (it only acknowledges receipt),
/// then the business answer as a MESSAGE of our own (gb28181.md §3).
pub async fn on_message(sh: &Shared, dev: &Device, inc: &Incoming) {
    let parsed = match manscdp::parse(&inc.request().body, None) {
        Ok(p) => p,
        Err(e) => {
            tracing::warn!(device_id = %dev.id, peer = %inc.source(), error = %e, "sim: unreadable MANSCDP body: 400");
            inc.respond(inc.response(400, Some(&token(6)))).await;
            return;
        }
    };
    inc.respond(inc.response(200, Some(&token(6)))).await;
    let m = parsed.message;
    let answer = match (m.root, &m.cmd_type) {
        (Root::Query, CmdType::Catalog) => {
            send_catalog(sh, dev, m.sn).await;
            return;
        }
        (Root::Query, CmdType::DeviceInfo) => {
            Some(xml::device_info(m.sn, &m.device_id, dev.channels.len()))
        }
        (Root::Query, CmdType::DeviceStatus) => Some(xml::device_status(
            m.sn,
            &m.device_id,
            &device_time(sh.utc_offset),
        )),
        (Root::Query, CmdType::RecordInfo) => {
            send_records(sh, dev, &m).await;
            return;
        }
        (Root::Query, CmdType::PresetQuery) => Some(xml::preset_list(m.sn, &m.device_id)),
        (Root::Control, CmdType::DeviceControl) => device_control(dev, &m),
        (Root::Control, CmdType::DeviceConfig) => {
            tracing::info!(device_id = %dev.id, channel_id = %m.device_id, sn = m.sn, "sim device_config");
            Some(manscdp::response_ok("DeviceConfig", m.sn, &m.device_id))
        }
        (Root::Notify, CmdType::Broadcast) => {
            tracing::info!(device_id = %dev.id, channel_id = %m.device_id, sn = m.sn, "sim broadcast");
            Some(manscdp::response_ok("Broadcast", m.sn, &m.device_id))
        }
        (root, cmd) => {
            tracing::info!(device_id = %dev.id, channel_id = %m.device_id, root = root.as_str(), cmd = %cmd, sn = m.sn, "sim message not answered");
            None
        }
    };
    if let Some(body) = answer {
        match send_message(sh, dev, &body).await {
            Ok(200..=299) => {}
            Ok(code) => {
                tracing::warn!(device_id = %dev.id, cmd = %m.cmd_type, code, "sim answer refused")
            }
            Err(e) => {
                tracing::warn!(device_id = %dev.id, cmd = %m.cmd_type, error = %e, "sim answer not delivered")
            }
        }
    }
}

/// Logs a DeviceControl and returns the Response the command calls for:
/// RecordCmd, GuardCmd, AlarmCmd and HomePosition get `Result OK`; PTZ,
/// TeleBoot, IFameCmd and DragZoom none (gb28181.md §3).
fn device_control(dev: &Device, m: &Message) -> Option<String> {
    let (command, value) = match &m.body {
        Body::Other(el) => el
            .children
            .iter()
            .find(|c| {
                !["CmdType", "SN", "DeviceID", "Info"]
                    .iter()
                    .any(|n| c.is(n))
            })
            .map(|c| (c.name.clone(), c.text.clone()))
            .unwrap_or_default(),
        _ => Default::default(),
    };
    // PTZ commands are logged decoded too, so tests and people can read
    // what a camera would do.
    let ptz = if command.eq_ignore_ascii_case("PTZCmd") {
        match crate::ptz::PtzCommand::from_gb_hex(&value) {
            Ok(c) => format!("{c:?}"),
            Err(e) => format!("unreadable: {e}"),
        }
    } else {
        String::new()
    };
    tracing::info!(
        device_id = %dev.id,
        channel_id = %m.device_id,
        command = %command,
        value = %value,
        ptz = %ptz,
        sn = m.sn,
        "sim device_control"
    );
    let answered = ["RecordCmd", "GuardCmd", "AlarmCmd", "HomePosition"]
        .iter()
        .any(|c| command.eq_ignore_ascii_case(c));
    answered.then(|| manscdp::response_ok("DeviceControl", m.sn, &m.device_id))
}

/// Notify/MediaStatus 121 (GB/T 28181-2016 §9.8.4): the playback of
/// `channel_id` reached the end of the recording.
pub async fn send_media_status_end(sh: &Shared, device_id: &str, channel_id: &str) {
    let Some(dev) = sh.device_by_id(device_id) else {
        return;
    };
    let body = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\r\n<Notify>\r\n<CmdType>MediaStatus</CmdType>\r\n\
         <SN>{}</SN>\r\n<DeviceID>{}</DeviceID>\r\n<NotifyType>121</NotifyType>\r\n</Notify>\r\n",
        sh.next_sn(),
        manscdp::escape_text(channel_id)
    );
    match send_message(sh, &dev, &body).await {
        Ok(code) => tracing::info!(device_id, channel_id, code, "sim media status 121 sent"),
        Err(e) => {
            tracing::warn!(device_id, channel_id, error = %e, "sim media status not delivered")
        }
    }
}

/// Notify/Alarm for `channel_id`: video alarm (method 5), motion detection
/// (type 2), priority 1, now.
pub async fn send_alarm(sh: &Shared, dev: &Device, channel_id: &str) {
    let body = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\r\n<Notify>\r\n<CmdType>Alarm</CmdType>\r\n\
         <SN>{}</SN>\r\n<DeviceID>{}</DeviceID>\r\n<AlarmPriority>1</AlarmPriority>\r\n\
         <AlarmMethod>5</AlarmMethod>\r\n<AlarmTime>{}</AlarmTime>\r\n\
         <AlarmDescription>camgate sim motion</AlarmDescription>\r\n\
         <Info>\r\n<AlarmType>2</AlarmType>\r\n</Info>\r\n</Notify>\r\n",
        sh.next_sn(),
        manscdp::escape_text(channel_id),
        device_time(sh.utc_offset)
    );
    match send_message(sh, dev, &body).await {
        Ok(code) => tracing::info!(device_id = %dev.id, channel_id, code, "sim alarm sent"),
        Err(e) => {
            tracing::warn!(device_id = %dev.id, channel_id, error = %e, "sim alarm not delivered")
        }
    }
}

/// Length of each simulated recording.
const RECORD_SECS: i64 = 600;
/// Most recordings one answer lists.
const MAX_RECORDS: i64 = 24;

/// The simulated recordings of a channel: back-to-back 10-minute files over
/// the queried span (at most [`MAX_RECORDS`]), sent as several MESSAGEs of
/// `catalog_batch` items like the catalog (gb28181.md §3 "Multi-packet").
async fn send_records(sh: &Shared, dev: &Device, m: &Message) {
    let field = |name: &str| match &m.body {
        Body::Other(el) => el.child_text(name).map(str::to_owned),
        _ => None,
    };
    let offset = sh.utc_offset;
    let span = field("StartTime")
        .and_then(|s| crate::util::parse_gb_time(&s, offset))
        .zip(field("EndTime").and_then(|e| crate::util::parse_gb_time(&e, offset)));
    let mut entries = Vec::new();
    if let Some((start, end)) = span {
        let mut t = start;
        while t < end && (entries.len() as i64) < MAX_RECORDS {
            let until = (t + RECORD_SECS).min(end);
            entries.push(xml::RecordEntry {
                start: crate::util::gb_time(t, offset),
                end: crate::util::gb_time(until, offset),
                file: format!("/sim/{}/{t}.mp4", m.device_id),
            });
            t = until;
        }
    }
    tracing::info!(device_id = %dev.id, channel_id = %m.device_id, sn = m.sn, records = entries.len(), "sim record query");
    let batch = sh.cfg.catalog_batch.max(1);
    let pages: Vec<&[xml::RecordEntry]> = if entries.is_empty() {
        vec![&[]]
    } else {
        entries.chunks(batch).collect()
    };
    for page in pages {
        let body = xml::record_info_page(m.sn, &m.device_id, entries.len(), page);
        match send_message(sh, dev, &body).await {
            Ok(200..=299) => {}
            Ok(code) => {
                tracing::warn!(device_id = %dev.id, sn = m.sn, code, "sim record message refused: stopping");
                return;
            }
            Err(e) => {
                tracing::warn!(device_id = %dev.id, sn = m.sn, error = %e, "sim record message not delivered: stopping");
                return;
            }
        }
    }
}

/// The catalog in several MESSAGEs of `catalog_batch` items, each sent after
/// the 200 for the previous one, all with the query's SN and `SumNum` = all
/// channels (gb28181.md §3 "Multi-packet").
async fn send_catalog(sh: &Shared, dev: &Device, sn: u64) {
    let sum = dev.channels.len();
    let batch = sh.cfg.catalog_batch.max(1);
    let entries: Vec<xml::CatalogEntry<'_>> = dev
        .channels
        .iter()
        .enumerate()
        .map(|(i, id)| xml::CatalogEntry {
            channel_id: id,
            name: super::ids::channel_name(i),
        })
        .collect();
    for (page, chunk) in entries.chunks(batch).enumerate() {
        let body = xml::catalog_page(sn, &dev.id, sum, chunk);
        match send_message(sh, dev, &body).await {
            Ok(200..=299) => {}
            Ok(code) => {
                tracing::warn!(device_id = %dev.id, sn, page, code, "sim catalog message refused: stopping");
                return;
            }
            Err(e) => {
                tracing::warn!(device_id = %dev.id, sn, page, error = %e, "sim catalog message not delivered: stopping");
                return;
            }
        }
    }
    tracing::info!(device_id = %dev.id, sn, items = sum, messages = sum.div_ceil(batch), "sim catalog sent");
}

/// SUBSCRIBE (Catalog and others): 200 with the period granted, never longer
/// than asked (RFC 6665 §4.2.1.1). No NOTIFY follows: the channels never
/// change.
pub async fn on_subscribe(dev: &Device, inc: &Incoming) {
    let req = inc.request();
    let event = msg::header_value(&req.headers, "Event").unwrap_or_default();
    let expires = msg::header_value(&req.headers, "Expires")
        .and_then(|v| v.trim().parse::<u32>().ok())
        .unwrap_or(3600)
        .min(MAX_SUBSCRIBE_EXPIRES);
    let mut resp = inc.response(200, Some(&token(6)));
    resp.headers
        .push(rsip::Header::Other("Expires".into(), expires.to_string()));
    let local = inc.route().local();
    resp.headers.push(rsip::Header::Other(
        "Contact".into(),
        format!("<sip:{}@{local}>", dev.id),
    ));
    inc.respond(resp).await;
    tracing::info!(device_id = %dev.id, event = %event, expires, "sim subscribe accepted");
}

#[cfg(test)]
mod tests {
    use super::*;

    fn control(body: &str) -> Option<String> {
        let dev = Device::new(
            0,
            DeviceIds {
                device_id: "34020000001320000001".into(),
                channel_ids: vec!["34020000001310000001".into()],
            },
        );
        let m = manscdp::parse(body.as_bytes(), None).unwrap().message;
        device_control(&dev, &m)
    }

    #[test]
    fn device_control_answers_only_what_the_standard_answers() {
        // PTZ gets no Response (gb28181.md §3).
        let ptz = "<?xml version=\"1.0\"?><Control><CmdType>DeviceControl</CmdType><SN>11</SN><DeviceID>34020000001310000001</DeviceID><PTZCmd>A50F0100000000B5</PTZCmd><Info><ControlPriority>5</ControlPriority></Info></Control>";
        assert_eq!(control(ptz), None);
        let record = "<Control><CmdType>DeviceControl</CmdType><SN>12</SN><DeviceID>34020000001310000001</DeviceID><RecordCmd>Record</RecordCmd></Control>";
        let answer = control(record).unwrap();
        let m = manscdp::parse(answer.as_bytes(), None).unwrap().message;
        assert_eq!((m.root, m.sn), (Root::Response, 12));
        assert_eq!(m.device_id, "34020000001310000001");
        assert!(answer.contains("<Result>OK</Result>"));
    }
}
