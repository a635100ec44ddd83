//! INVITE dialogs on the device side (gb28181.md §5 "Flow"): the platform
//! is the UAC; we answer 100 then 200 with our SDP, wait for the ACK, stream,
//! and end with BYE from either side.
//!
//! The endpoint's server transactions absorb retransmitted INVITEs and
//! repeat our last response; the 2xx itself is ours to retransmit over UDP
//! until the ACK comes (RFC 3261 §13.3.1.4: T1 doubling up to T2, for
//! 64·T1), and without an ACK the session ends with a BYE.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::time::Duration;

use tokio::net::{TcpListener, UdpSocket};
use tokio::sync::watch;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::device::Device;
use super::link::{Incoming, Route};
use super::media::{self, MediaSocket, StreamEnd, StreamParams, StreamStats};
use super::offer::{self, AnswerParams, MediaMode};
use super::{Shared, token};
use crate::gb::media::ssrc_value;
use crate::sip::msg;
use crate::sip::transaction::Transport;

/// RFC 3261 Table 4.
const T1: Duration = Duration::from_millis(500);
const T2: Duration = Duration::from_secs(4);
/// Sessions at once, all channels together, and per channel.
pub const MAX_CALLS: usize = 10_000;
pub const MAX_CALLS_PER_CHANNEL: usize = 8;
/// How long our BYE may wait for its answer at shutdown.
const BYE_TIMEOUT: Duration = Duration::from_secs(5);

/// One confirmed or early INVITE dialog, keyed by Call-ID.
pub struct Call {
    pub device_id: String,
    pub channel_id: String,
    pub call_id: String,
    /// Where in-dialog requests go: back to the INVITE's sender.
    route: Route,
    /// Our From in requests we send: the INVITE's To with our tag.
    local_value: String,
    /// Their From (with their tag): our To.
    remote_value: String,
    /// The INVITE's Contact: the Request-URI of our BYE (RFC 3261 §12.1.1).
    remote_target: String,
    /// Our own CSeq space in the dialog (RFC 3261 §12.2.1.1).
    cseq: AtomicU32,
    /// Our To tag and SDP answer, for a repeated INVITE or re-INVITE.
    to_tag: String,
    answer: String,
    acked: watch::Sender<bool>,
    /// Fired by a BYE from the platform or by shutdown.
    stop: CancellationToken,
    by_peer: AtomicBool,
    mode: MediaMode,
    ssrc: u32,
    /// An SSRC we made up (no `y=` offered), returned to the pool at the end.
    pooled_ssrc: Option<u32>,
    /// Playback/Download sessions: what MANSRTSP asked for.
    playback: Option<watch::Sender<media::PlaybackState>>,
}

fn call_id(inc: &Incoming) -> Option<String> {
    msg::header_value(&inc.request().headers, "Call-ID").filter(|c| !c.is_empty())
}

/// The URI inside a Contact/From value (`<sip:…>;params` or bare).
fn uri_of(value: &str) -> Option<String> {
    let start = value.find("sip:")?;
    let rest = &value[start..];
    let end = rest.find(['>', ';', ' ']).unwrap_or(rest.len());
    Some(rest[..end].to_owned())
}

async fn refuse(inc: &Incoming, code: u16) {
    inc.respond(inc.response(code, Some(&token(6)))).await;
}

/// An INVITE for `channel_id` of `dev`.
pub async fn on_invite(sh: &Arc<Shared>, dev: &Device, channel_id: &str, inc: Incoming) {
    let Some(cid) = call_id(&inc) else {
        refuse(&inc, 400).await;
        return;
    };
    let existing = sh.call(&cid);
    if let Some(call) = existing {
        // A re-INVITE, or the INVITE again after its transaction ended: the
        // same answer, in a response to this request.
        let ok = ok_response(&inc, &call.channel_id, &call.to_tag, &call.answer);
        inc.respond(ok).await;
        return;
    }
    if sh.stopping.is_cancelled() {
        refuse(&inc, 503).await;
        return;
    }
    let text = String::from_utf8_lossy(&inc.request().body);
    let offer = match offer::read_offer(&text) {
        Ok(o) => o,
        Err(e) => {
            tracing::warn!(device_id = %dev.id, channel_id = %channel_id, peer = %inc.source(), error = %e, "sim INVITE refused: 488");
            refuse(&inc, 488).await;
            return;
        }
    };
    let playback = if offer.session.eq_ignore_ascii_case("Play") {
        false
    } else if offer.session.eq_ignore_ascii_case("Playback")
        || offer.session.eq_ignore_ascii_case("Download")
    {
        // The input file stands in for the recording, whatever span.
        true
    } else {
        tracing::warn!(device_id = %dev.id, channel_id = %channel_id, session = %offer.session, "sim INVITE refused: unknown session (488)");
        refuse(&inc, 488).await;
        return;
    };
    let (total, on_channel) = sh.call_counts(channel_id);
    if total >= MAX_CALLS || on_channel >= MAX_CALLS_PER_CHANNEL {
        tracing::warn!(device_id = %dev.id, channel_id = %channel_id, total, on_channel, "sim INVITE refused: too many sessions (486)");
        refuse(&inc, 486).await;
        return;
    }
    inc.respond(inc.response(100, None)).await;

    // Where media will go, ready before we answer.
    let bind = SocketAddr::new(sh.local_ip, 0);
    let prepared = match offer.mode {
        MediaMode::Udp => prepare_udp(bind, offer.addr).await,
        MediaMode::TcpListen => TcpListener::bind(bind)
            .await
            .and_then(|l| Ok((l.local_addr()?.port(), MediaSocket::Listen(l)))),
        // RFC 4145 §4: the active side's port is irrelevant; 9 (discard).
        MediaMode::TcpConnect => Ok((9, MediaSocket::Connect(offer.addr))),
    };
    let (port, socket) = match prepared {
        Ok(x) => x,
        Err(e) => {
            tracing::error!(device_id = %dev.id, channel_id = %channel_id, error = %e, "sim cannot open a media socket: 500");
            refuse(&inc, 500).await;
            return;
        }
    };

    // The SSRC: the offered one; none offered, one of ours (gb28181.md §1).
    let (ssrc, ssrc_text, pooled_ssrc) = match (offer.ssrc, offer.ssrc_text.clone()) {
        (Some(v), Some(t)) => (v, t, None),
        _ => {
            let t = sh.allocate_ssrc();
            let v = ssrc_value(&t).unwrap_or(0);
            (v, t, Some(v))
        }
    };
    let answered = if sh.cfg.answer_zero_ssrc {
        "0000000000".to_owned()
    } else {
        ssrc_text.clone()
    };
    let answer = offer::answer_sdp(&AnswerParams {
        channel_id,
        session: &offer.session,
        ip: sh.local_ip,
        port,
        mode: offer.mode,
        ssrc_text: &answered,
    });

    let to_tag = token(6);
    let ok = ok_response(&inc, channel_id, &to_tag, &answer);

    let headers = &inc.request().headers;
    let to = msg::header_value(headers, "To").unwrap_or_default();
    let local_value = if msg::param(&to, "tag").is_some() {
        to
    } else {
        format!("{to};tag={to_tag}")
    };
    let remote_value = msg::header_value(headers, "From").unwrap_or_default();
    let remote_target = msg::header_value(headers, "Contact")
        .and_then(|c| uri_of(&c))
        .or_else(|| uri_of(&remote_value))
        .unwrap_or_else(|| format!("sip:{}@{}", sh.cfg.platform_id, inc.source()));
    let (acked, _) = watch::channel(false);
    let call = Arc::new(Call {
        device_id: dev.id.clone(),
        channel_id: channel_id.to_owned(),
        call_id: cid.clone(),
        route: inc.route(),
        local_value,
        remote_value,
        remote_target,
        cseq: AtomicU32::new(0),
        to_tag,
        answer,
        acked,
        stop: sh.stopping.child_token(),
        by_peer: AtomicBool::new(false),
        mode: offer.mode,
        ssrc,
        pooled_ssrc,
        playback: playback.then(|| {
            // A download is sent `a=downloadspeed` times faster.
            let speed = text
                .lines()
                .find_map(|l| l.trim().strip_prefix("a=downloadspeed:"))
                .and_then(|v| v.trim().parse::<f64>().ok())
                .filter(|x| *x > 0.0 && x.is_finite());
            watch::channel(media::PlaybackState {
                scale: speed.unwrap_or(1.0),
                ..media::PlaybackState::default()
            })
            .0
        }),
    });
    sh.insert_call(call.clone());
    inc.respond(ok.clone()).await;
    tracing::info!(
        device_id = %dev.id,
        channel_id = %channel_id,
        transport = %offer.mode.as_str(),
        ssrc = %ssrc_text,
        answered_ssrc = %answered,
        peer = %socket.describe(),
        session = %offer.session,
        "sim invite"
    );
    tokio::spawn(run_call(sh.clone(), call, inc, ok, socket));
}

/// The 200 to an INVITE: our tag, Contact and SDP answer.
fn ok_response(inc: &Incoming, channel_id: &str, to_tag: &str, answer: &str) -> rsip::Response {
    let local = inc.route().local();
    let mut ok = inc.response(200, Some(to_tag));
    for (n, v) in [
        ("Contact", format!("<sip:{channel_id}@{local}>")),
        ("Content-Type", "APPLICATION/SDP".to_owned()),
    ] {
        ok.headers.push(rsip::Header::Other(n.into(), v));
    }
    ok.body = answer.as_bytes().to_vec();
    ok
}

async fn prepare_udp(bind: SocketAddr, to: SocketAddr) -> std::io::Result<(u16, MediaSocket)> {
    let s = UdpSocket::bind(bind).await?;
    s.connect(to).await?;
    Ok((s.local_addr()?.port(), MediaSocket::Udp(s)))
}

/// Why a session ended, for the log.
fn end_reason(end: &StreamEnd, by_peer: bool) -> String {
    match end {
        StreamEnd::Stopped if by_peer => "bye from the platform".into(),
        StreamEnd::Stopped => "shutdown".into(),
        StreamEnd::PeerGone(why) => why.clone(),
    }
}

/// The session: ACK, media, end.
async fn run_call(
    sh: Arc<Shared>,
    call: Arc<Call>,
    inc: Incoming,
    ok: rsip::Response,
    socket: MediaSocket,
) {
    let end = match wait_ack(&call, &inc, &ok).await {
        Some(end) => end,
        None => {
            let params = StreamParams {
                device_id: &call.device_id,
                channel_id: &call.channel_id,
                ssrc: call.ssrc,
                transport: call.mode.as_str(),
            };
            let mut stats = StreamStats::default();
            // A playback sends the input once, under MANSRTSP control, and
            // says so with MediaStatus 121 at the end (GB/T 28181-2016
            // §9.8.4); the platform then ends the dialog.
            let packs = call.playback.as_ref().map(|ctl| {
                let (rx, eof) = sh.media.playback(ctl.subscribe(), call.stop.clone());
                let (sh2, call2) = (sh.clone(), call.clone());
                tokio::spawn(async move {
                    if eof.await.is_ok() {
                        super::device::send_media_status_end(
                            &sh2,
                            &call2.device_id,
                            &call2.channel_id,
                        )
                        .await;
                    }
                });
                rx
            });
            let end =
                media::stream(&sh.media, packs, socket, &params, &call.stop, &mut stats).await;
            tracing::info!(
                device_id = %call.device_id,
                channel_id = %call.channel_id,
                reason = %end_reason(&end, call.by_peer.load(Ordering::Acquire)),
                packs = stats.packs,
                packets = stats.packets,
                bytes = stats.bytes,
                "sim media stopped"
            );
            end
        }
    };
    if !call.by_peer.load(Ordering::Acquire) {
        send_bye(&sh, &call, &end).await;
    }
    sh.remove_call(&call.call_id);
    if let Some(v) = call.pooled_ssrc {
        sh.release_ssrc(v);
    }
}

/// Waits for the ACK, retransmitting the 2xx over UDP. `None` once acked;
/// otherwise how the wait ended.
async fn wait_ack(call: &Call, inc: &Incoming, ok: &rsip::Response) -> Option<StreamEnd> {
    let mut acked = call.acked.subscribe();
    let start = Instant::now();
    let give_up = start + 64 * T1;
    let mut interval = T1;
    let mut resend_at = start + interval;
    let udp = inc.transport() == Transport::Udp;
    loop {
        if *acked.borrow_and_update() {
            return None;
        }
        tokio::select! {
            () = call.stop.cancelled() => return Some(StreamEnd::Stopped),
            r = acked.changed() => {
                if r.is_err() {
                    return Some(StreamEnd::Stopped);
                }
            }
            () = tokio::time::sleep_until(resend_at), if udp => {
                inc.respond(ok.clone()).await;
                interval = (interval * 2).min(T2);
                resend_at += interval;
            }
            () = tokio::time::sleep_until(give_up) => {
                tracing::warn!(device_id = %call.device_id, channel_id = %call.channel_id, "sim: no ACK for the 200 within 64·T1: ending the session");
                return Some(StreamEnd::PeerGone("no ACK".into()));
            }
        }
    }
}

/// Our BYE for a dialog (RFC 3261 §15.1.1).
async fn send_bye(sh: &Shared, call: &Call, end: &StreamEnd) {
    let cseq = call.cseq.fetch_add(1, Ordering::Relaxed) + 1;
    let local = call.route.local();
    let via_proto = call.route.via_transport();
    let mut h = rsip::Headers::default();
    let mut push = |n: &str, v: String| h.push(rsip::Header::Other(n.into(), v));
    push(
        "Via",
        format!(
            "SIP/2.0/{via_proto} {local};rport;branch=z9hG4bK{}",
            token(10)
        ),
    );
    push("From", call.local_value.clone());
    push("To", call.remote_value.clone());
    push("Call-ID", call.call_id.clone());
    push("CSeq", format!("{cseq} BYE"));
    push("Max-Forwards", "70".into());
    push("User-Agent", super::USER_AGENT.into());
    let uri = rsip::Uri::try_from(call.remote_target.as_str()).unwrap_or_else(|_| {
        let fallback = format!("sip:{}@{}", sh.cfg.platform_id, call.route.peer());
        rsip::Uri::try_from(fallback.as_str()).unwrap_or_default()
    });
    let bye = rsip::Request {
        method: rsip::Method::Bye,
        uri,
        version: rsip::Version::V2,
        headers: h,
        body: Vec::new(),
    };
    let reason = end_reason(end, false);
    match tokio::time::timeout(BYE_TIMEOUT, call.route.request(bye)).await {
        Ok(Ok(r)) => tracing::info!(
            device_id = %call.device_id,
            channel_id = %call.channel_id,
            by = %"device",
            reason = %reason,
            code = r.status_code.code(),
            "sim bye"
        ),
        Ok(Err(e)) => tracing::warn!(
            device_id = %call.device_id,
            channel_id = %call.channel_id,
            by = %"device",
            reason = %reason,
            error = %e,
            "sim bye failed"
        ),
        Err(_) => tracing::warn!(
            device_id = %call.device_id,
            channel_id = %call.channel_id,
            by = %"device",
            reason = %reason,
            "sim bye unanswered"
        ),
    }
}

/// An ACK: confirms the dialog (no response, RFC 3261 §17.1.1.3).
pub fn on_ack(sh: &Shared, inc: &Incoming) {
    if let Some(call) = call_id(inc).and_then(|c| sh.call(&c)) {
        call.acked.send_replace(true);
    }
}

/// A BYE from the platform: 200 and stop, or 481 for no dialog (RFC 3261
/// §15.1.2).
pub async fn on_bye(sh: &Shared, inc: &Incoming) {
    let Some(call) = call_id(inc).and_then(|c| sh.call(&c)) else {
        refuse(inc, 481).await;
        return;
    };
    call.by_peer.store(true, Ordering::Release);
    call.stop.cancel();
    inc.respond(inc.response(200, None)).await;
    tracing::info!(
        device_id = %call.device_id,
        channel_id = %call.channel_id,
        by = %"platform",
        "sim bye"
    );
}

/// INFO in a playback dialog: a MANSRTSP command (GB/T 28181-2016 appendix
/// B): `PLAY` (resume, `Range: npt=<secs>-` seeks, `Scale:` sets the speed)
/// or `PAUSE`. 200 and applied; 481 for no dialog; 400 for anything else.
pub async fn on_info(sh: &Shared, inc: &Incoming) {
    let Some(call) = call_id(inc).and_then(|c| sh.call(&c)) else {
        refuse(inc, 481).await;
        return;
    };
    let body = String::from_utf8_lossy(&inc.request().body).into_owned();
    let Some(ctl) = call.playback.as_ref() else {
        tracing::info!(device_id = %call.device_id, channel_id = %call.channel_id, body = %body.trim(), "sim info outside a playback");
        inc.respond(inc.response(200, None)).await;
        return;
    };
    let mut lines = body.lines();
    let method = lines
        .next()
        .and_then(|l| l.split_whitespace().next())
        .unwrap_or("")
        .to_ascii_uppercase();
    let header = |name: &str| {
        body.lines().find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.trim()
                .eq_ignore_ascii_case(name)
                .then(|| v.trim().to_owned())
        })
    };
    let scale = header("Scale").and_then(|v| v.parse::<f64>().ok());
    let range = header("Range");
    let seek = range
        .as_deref()
        .and_then(|r| r.strip_prefix("npt="))
        .and_then(|r| r.split('-').next())
        .and_then(|from| from.trim().parse::<f64>().ok());
    let mut state = *ctl.borrow();
    match method.as_str() {
        "PAUSE" => state.paused = true,
        "PLAY" => {
            state.paused = false;
            if let Some(x) = scale.filter(|x| *x > 0.0 && x.is_finite()) {
                state.scale = x;
            }
            if let Some(secs) = seek.filter(|s| *s >= 0.0) {
                let n = state.seek.map_or(1, |(n, _)| n + 1);
                state.seek = Some((n, secs as u64));
            }
        }
        _ => {
            tracing::warn!(device_id = %call.device_id, body = %body.trim(), "sim: unreadable MANSRTSP: 400");
            refuse(inc, 400).await;
            return;
        }
    }
    ctl.send_replace(state);
    inc.respond(inc.response(200, None)).await;
    tracing::info!(
        device_id = %call.device_id,
        channel_id = %call.channel_id,
        method = %method,
        scale = ?scale,
        range = ?range,
        "sim playback control"
    );
}

/// CANCEL: our INVITEs are answered at once, so there is nothing left to
/// cancel; 200 for a known dialog (RFC 3261 §9.2), else 481.
pub async fn on_cancel(sh: &Shared, inc: &Incoming) {
    let code = if call_id(inc).and_then(|c| sh.call(&c)).is_some() {
        200
    } else {
        481
    };
    refuse(inc, code).await;
}
