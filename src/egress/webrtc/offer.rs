//! The WHEP offer → answer step, sans IO: read what the browser offers,
//! choose what this stream can send without transcoding, and let str0m write
//! the answer.
//!
//! str0m parses and answers the SDP; this module only scans the offer's
//! `m=`/`a=rtpmap`/`a=fmtp` lines to pick payload types, because the stream's
//! codec is fixed (we pass it through) and the answer must name exactly one
//! of the browser's payload types with parameters that describe our bitstream
//! (RFC 3264 §6.1; RFC 6184 §8.2.2 for H.264, RFC 7798 §7.2.2 for H.265).

use std::sync::{Arc, OnceLock};
use std::time::Instant;

use serde::Serialize;
use str0m::change::SdpOffer;
use str0m::config::{CryptoProvider, DtlsCert};
use str0m::format::{Codec as RtcCodec, FormatParams};
use str0m::media::{Frequency, Pt};
use str0m::{Candidate, IceCreds, Rtc, RtcConfig};

use crate::codec::{Codec, h264, h265};
use crate::media::{AudioTrack, VideoTrack};

/// Largest offer accepted (the HTTP layer enforces the same bound).
pub const MAX_OFFER_BYTES: usize = 64 * 1024;
/// More media sections than a WHEP player ever sends.
const MAX_MEDIA_SECTIONS: usize = 32;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum OfferError {
    #[error("SDP offer is {len} bytes; at most {MAX_OFFER_BYTES} are accepted")]
    TooLarge { len: usize },
    #[error("SDP offer is not valid SDP: {0}")]
    Parse(String),
    #[error("SDP offer has more than {MAX_MEDIA_SECTIONS} media sections")]
    TooManySections,
    #[error("no codec in common: {0}")]
    NoCommonCodec(String),
    #[error("SDP offer rejected: {0}")]
    Rejected(String),
}

/// One payload type from the offer.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct OfferedPt {
    pt: u8,
    /// Encoding name as written (`H264`, `PCMA`, ...).
    name: String,
    clock_rate: u32,
    fmtp: String,
}

/// One `m=` section of the offer.
#[derive(Clone, Debug, Default)]
struct OfferedMedia {
    kind: String,
    pts: Vec<OfferedPt>,
    /// `a=sendonly`/`a=inactive` sections can't receive what we send.
    receives: bool,
}

/// What the scan found in the offer.
#[derive(Clone, Debug, Default)]
struct OfferSummary {
    media: Vec<OfferedMedia>,
}

fn scan(sdp: &str) -> Result<OfferSummary, OfferError> {
    let mut summary = OfferSummary::default();
    for line in sdp.lines() {
        let line = line.trim_end_matches('\r');
        if let Some(m) = line.strip_prefix("m=") {
            if summary.media.len() >= MAX_MEDIA_SECTIONS {
                return Err(OfferError::TooManySections);
            }
            let mut fields = m.split(' ');
            let kind = fields.next().unwrap_or("").to_owned();
            // <port> <proto> <fmt>...
            let pts = fields
                .skip(2)
                .filter_map(|f| f.parse::<u8>().ok())
                .filter(|pt| *pt < 128)
                .map(|pt| OfferedPt {
                    pt,
                    ..OfferedPt::default()
                })
                .collect();
            summary.media.push(OfferedMedia {
                kind,
                pts,
                receives: true,
            });
            continue;
        }
        let Some(media) = summary.media.last_mut() else {
            continue;
        };
        if let Some(v) = line.strip_prefix("a=rtpmap:") {
            // a=rtpmap:<pt> <name>/<rate>[/<channels>] (RFC 8866 §6.6)
            let Some((pt, rest)) = v.split_once(' ') else {
                continue;
            };
            let Ok(pt) = pt.parse::<u8>() else { continue };
            let mut parts = rest.split('/');
            let name = parts.next().unwrap_or("").to_owned();
            let rate = parts.next().and_then(|r| r.parse().ok()).unwrap_or(0);
            if let Some(p) = media.pts.iter_mut().find(|p| p.pt == pt) {
                p.name = name;
                p.clock_rate = rate;
            }
        } else if let Some(v) = line.strip_prefix("a=fmtp:") {
            let Some((pt, rest)) = v.split_once(' ') else {
                continue;
            };
            let Ok(pt) = pt.parse::<u8>() else { continue };
            if let Some(p) = media.pts.iter_mut().find(|p| p.pt == pt) {
                p.fmtp = rest.trim().to_owned();
            }
        } else if line == "a=sendonly" || line == "a=inactive" {
            media.receives = false;
        }
    }
    Ok(summary)
}

fn fmtp_value<'a>(fmtp: &'a str, key: &str) -> Option<&'a str> {
    fmtp.split(';').find_map(|kv| {
        let (k, v) = kv.split_once('=')?;
        k.trim().eq_ignore_ascii_case(key).then(|| v.trim())
    })
}

/// H.264 profiles as RFC 6184 Table 5 names them, from profile_idc and the
/// constraint_set flags (profile-iop / the SPS byte after profile_idc).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum H264Profile {
    ConstrainedBaseline,
    Baseline,
    Main,
    Extended,
    ConstrainedHigh,
    High,
    /// High 10, 4:2:2, 4:4:4 and the rest: only an identical profile decodes.
    Other(u8),
}

fn h264_profile(profile_idc: u8, iop: u8) -> H264Profile {
    let (set0, set1) = (iop & 0x80 != 0, iop & 0x40 != 0);
    let (set4, set5) = (iop & 0x08 != 0, iop & 0x04 != 0);
    match profile_idc {
        66 if set1 => H264Profile::ConstrainedBaseline,
        66 => H264Profile::Baseline,
        77 if set0 => H264Profile::ConstrainedBaseline,
        77 => H264Profile::Main,
        88 if set0 && set1 => H264Profile::ConstrainedBaseline,
        88 => H264Profile::Extended,
        100 if set4 && set5 => H264Profile::ConstrainedHigh,
        100 => H264Profile::High,
        other => H264Profile::Other(other),
    }
}

/// How well a decoder for `offered` suits a `stream` bitstream: 0 = no,
/// higher = closer. A decoder conforming to a profile decodes the profiles
/// it contains (H.264 Annex A.2): CB ⊂ Baseline, Main, High; Main ⊂ High;
/// Constrained High ⊂ High.
fn h264_fit(stream: H264Profile, offered: H264Profile) -> u8 {
    use H264Profile::*;
    if stream == offered {
        return 4;
    }
    match (stream, offered) {
        (ConstrainedBaseline, Baseline | Main) => 3,
        (ConstrainedBaseline, ConstrainedHigh | High) => 2,
        (Main | ConstrainedHigh, High) => 2,
        // Chromium's decoder (FFmpeg) handles every 8-bit 4:2:0 profile;
        // its High 4:4:4 Predictive entry is a superset of High.
        (ConstrainedBaseline | Main | ConstrainedHigh | High, Other(244)) => 1,
        _ => 0,
    }
}

/// The codecs chosen for a session, as the session info shows them.
#[derive(Clone, Debug, Serialize, PartialEq, Eq, utoipa::ToSchema)]
pub struct ChosenCodecs {
    /// e.g. `H264/90000 pt=109 profile-level-id=42e01f;packetization-mode=1`.
    pub video: Option<String>,
    pub audio: Option<String>,
    /// Why a track of the stream is not sent, e.g. AAC audio.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
}

/// What the session sends, decided from the offer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Plan {
    pub video: Option<(Codec, Pt)>,
    pub audio: Option<(Codec, Pt)>,
    pub codecs: ChosenCodecs,
}

fn choose_video(
    summary: &OfferSummary,
    video: &VideoTrack,
) -> Result<(OfferedPt, RtcCodec), String> {
    let offered = summary
        .media
        .iter()
        .filter(|m| m.kind == "video" && m.receives)
        .flat_map(|m| m.pts.iter());
    match video.codec {
        Codec::H264 => {
            let sps = h264::parse_sps(&video.sps).map_err(|e| format!("stream SPS: {e}"))?;
            let ours = h264_profile(sps.profile_idc, sps.constraint_flags);
            offered
                .filter(|p| p.name.eq_ignore_ascii_case("H264") && p.clock_rate == 90_000)
                // Fragmentation units (FU-A) need packetization-mode 1 (RFC 6184 §6.3).
                .filter(|p| fmtp_value(&p.fmtp, "packetization-mode") == Some("1"))
                .filter_map(|p| {
                    let id = fmtp_value(&p.fmtp, "profile-level-id")
                        .and_then(|v| u32::from_str_radix(v, 16).ok())
                        // Absent means 42000A: Baseline level 1.0 (RFC 6184 §8.1).
                        .unwrap_or(0x42000a);
                    let theirs = h264_profile((id >> 16) as u8, (id >> 8) as u8);
                    let fit = h264_fit(ours, theirs);
                    (fit > 0).then_some((fit, p))
                })
                // Best fit; among equals the browser's first (its preference).
                .fold(None::<(u8, &OfferedPt)>, |best, (fit, p)| match best {
                    Some((f, _)) if f >= fit => best,
                    _ => Some((fit, p)),
                })
                .map(|(_, p)| (p.clone(), RtcCodec::H264))
                .ok_or_else(|| {
                    format!(
                        "the stream is H.264 {ours:?} (profile_idc {}); the offer has no \
                         H.264 payload type with packetization-mode=1 that decodes it",
                        sps.profile_idc
                    )
                })
        }
        Codec::H265 => {
            let sps = h265::parse_sps(&video.sps).map_err(|e| format!("stream SPS: {e}"))?;
            let ours = sps.general_profile_idc();
            offered
                .filter(|p| p.name.eq_ignore_ascii_case("H265") && p.clock_rate == 90_000)
                .find(|p| {
                    // Absent profile-id means Main (RFC 7798 §7.1); a Main 10
                    // decoder also decodes Main.
                    let theirs = fmtp_value(&p.fmtp, "profile-id")
                        .and_then(|v| v.parse::<u8>().ok())
                        .unwrap_or(1);
                    theirs == ours || (ours == 1 && theirs == 2)
                })
                .map(|p| (p.clone(), RtcCodec::H265))
                .ok_or_else(|| {
                    format!(
                        "the stream is H.265 (profile {ours}) and the browser does not offer \
                         H.265 it can decode; H.265 is sent only to browsers that offer it"
                    )
                })
        }
        other => Err(format!("{other} is not a video codec")),
    }
}

fn choose_audio(
    summary: &OfferSummary,
    audio: &AudioTrack,
) -> Result<(OfferedPt, RtcCodec), String> {
    let (name, codec) = match audio.codec {
        Codec::G711A => ("PCMA", RtcCodec::PCMA),
        Codec::G711U => ("PCMU", RtcCodec::PCMU),
        Codec::Aac => {
            return Err(
                "the stream's audio is AAC, which WebRTC cannot carry without transcoding \
                 (camgate does not transcode): video only"
                    .into(),
            );
        }
        other => return Err(format!("{other} is not an audio codec")),
    };
    if audio.sample_rate != 8000 || audio.channels != 1 {
        return Err(format!(
            "the stream's {name} is {} Hz with {} channels; WebRTC's {name} is 8000 Hz mono \
             (RFC 3551 §4.5.14): video only",
            audio.sample_rate, audio.channels
        ));
    }
    summary
        .media
        .iter()
        .filter(|m| m.kind == "audio" && m.receives)
        .flat_map(|m| m.pts.iter())
        .find(|p| p.name.eq_ignore_ascii_case(name) && p.clock_rate == 8000)
        .map(|p| (p.clone(), codec))
        .ok_or_else(|| format!("the browser does not offer {name}/8000 audio: video only"))
}

/// An audio payload type of the offer str0m can describe, to keep the
/// answer's audio section well-formed when we send no audio.
fn placeholder_audio(summary: &OfferSummary) -> Option<(OfferedPt, RtcCodec)> {
    summary
        .media
        .iter()
        .filter(|m| m.kind == "audio")
        .flat_map(|m| m.pts.iter())
        .find_map(|p| {
            let codec = match (p.name.to_ascii_lowercase().as_str(), p.clock_rate) {
                ("pcma", 8000) => RtcCodec::PCMA,
                ("pcmu", 8000) => RtcCodec::PCMU,
                ("opus", 48000) => RtcCodec::Opus,
                _ => return None,
            };
            Some((p.clone(), codec))
        })
}

fn describe(p: &OfferedPt) -> String {
    if p.fmtp.is_empty() {
        format!("{}/{} pt={}", p.name, p.clock_rate, p.pt)
    } else {
        format!("{}/{} pt={} {}", p.name, p.clock_rate, p.pt, p.fmtp)
    }
}

/// Picks the payload types for `video`/`audio` from the offer.
fn plan(
    summary: &OfferSummary,
    video: Option<&VideoTrack>,
    audio: Option<&AudioTrack>,
) -> Result<(Plan, Vec<(OfferedPt, RtcCodec)>), OfferError> {
    let mut notes = Vec::new();
    let mut chosen = Vec::new();
    let mut plan = Plan {
        video: None,
        audio: None,
        codecs: ChosenCodecs {
            video: None,
            audio: None,
            notes: Vec::new(),
        },
    };
    if let Some(v) = video {
        match choose_video(summary, v) {
            Ok((p, c)) => {
                plan.video = Some((v.codec, Pt::from(p.pt)));
                plan.codecs.video = Some(describe(&p));
                chosen.push((p, c));
            }
            Err(e) => return Err(OfferError::NoCommonCodec(e)),
        }
    }
    if let Some(a) = audio {
        match choose_audio(summary, a) {
            Ok((p, c)) => {
                plan.audio = Some((a.codec, Pt::from(p.pt)));
                plan.codecs.audio = Some(describe(&p));
                chosen.push((p, c));
            }
            // Audio is optional: the session goes on with video.
            Err(e) if plan.video.is_some() => notes.push(e),
            Err(e) => return Err(OfferError::NoCommonCodec(e)),
        }
    }
    if chosen.is_empty() {
        return Err(OfferError::NoCommonCodec(
            "the stream has no track yet".into(),
        ));
    }
    if plan.audio.is_none()
        && let Some(p) = placeholder_audio(summary)
    {
        // An audio section answered without any payload type is invalid SDP
        // (RFC 8866 §5.14 needs at least one format; str0m's own parser and
        // browsers refuse it), so it is answered with one of the browser's
        // codecs and simply never sent on.
        chosen.push(p);
    }
    plan.codecs.notes = notes;
    Ok((plan, chosen))
}

/// The crypto provider and DTLS certificate every session shares: one
/// certificate per process (RFC 8827 §6.5 allows reuse; the fingerprint
/// still authenticates the DTLS handshake), so a session starts without a key
/// generation.
struct Crypto {
    provider: Arc<CryptoProvider>,
    cert: Option<DtlsCert>,
}

fn crypto() -> &'static Crypto {
    static CRYPTO: OnceLock<Crypto> = OnceLock::new();
    CRYPTO.get_or_init(|| {
        let provider = str0m::crypto::from_feature_flags();
        let cert = provider.dtls_provider.generate_certificate();
        Crypto {
            provider: Arc::new(provider),
            cert,
        }
    })
}

/// A negotiated session, ready to be driven.
pub struct Answered {
    pub rtc: Rtc,
    pub answer: String,
    pub plan: Plan,
    pub local_ufrag: String,
    pub remote_ufrag: Option<String>,
}

/// Turns a WHEP offer into an answer for a stream with these tracks.
///
/// The `Rtc` is ICE-lite (RFC 8445 §2.5: we only answer checks, on the host
/// candidates given), with only the chosen codecs configured so str0m's
/// answer names exactly those payload types and rejects the rest.
pub fn answer_offer(
    offer: &[u8],
    video: Option<&VideoTrack>,
    audio: Option<&AudioTrack>,
    candidates: &[std::net::SocketAddr],
    now: Instant,
) -> Result<Answered, OfferError> {
    if offer.len() > MAX_OFFER_BYTES {
        return Err(OfferError::TooLarge { len: offer.len() });
    }
    let text = std::str::from_utf8(offer)
        .map_err(|e| OfferError::Parse(format!("not UTF-8 at byte {}", e.valid_up_to())))?;
    let summary = scan(text)?;
    let sdp = SdpOffer::from_sdp_string(text).map_err(|e| OfferError::Parse(e.to_string()))?;
    let (plan, chosen) = plan(&summary, video, audio)?;
    let remote_ufrag = text
        .lines()
        .find_map(|l| l.trim_end_matches('\r').strip_prefix("a=ice-ufrag:"))
        .map(str::to_owned);

    let creds = IceCreds::new();
    let local_ufrag = creds.ufrag.clone();
    let c = crypto();
    let mut config = RtcConfig::new()
        .set_ice_lite(true)
        .clear_codecs()
        .set_local_ice_credentials(creds)
        .set_crypto_provider(c.provider.clone());
    if let Some(cert) = &c.cert {
        config = config.set_dtls_cert(cert.clone());
    }
    for (p, codec) in &chosen {
        let (rate, channels) = match codec {
            RtcCodec::Opus => (Frequency::FORTY_EIGHT_KHZ, Some(2)),
            c if c.is_video() => (Frequency::NINETY_KHZ, None),
            _ => (Frequency::EIGHT_KHZ, None),
        };
        // The browser's own fmtp: str0m then matches this payload type
        // exactly and echoes the parameters, which describe our bitstream
        // (we picked a profile that decodes it).
        let format = if p.fmtp.is_empty() {
            FormatParams::default()
        } else {
            FormatParams::parse_line(&p.fmtp)
        };
        config
            .codec_config()
            .add_config(Pt::from(p.pt), None, *codec, rate, channels, format);
    }
    let mut rtc = config.build(now);
    for addr in candidates {
        match Candidate::host(*addr, "udp") {
            Ok(c) => {
                rtc.add_local_candidate(c);
            }
            Err(e) => tracing::warn!(candidate = %addr, error = %e, "unusable host candidate"),
        }
    }
    let answer = rtc
        .sdp_api()
        .accept_offer(sdp)
        .map_err(|e| OfferError::Rejected(e.to_string()))?;
    let answer = fill_rejected_formats(&answer.to_sdp_string(), &summary);
    // str0m reads the offer its own way; if it did not take the payload type
    // we chose, refuse rather than answer with a session that can't carry
    // the stream.
    for (kind, chosen) in [("video", plan.video), ("audio", plan.audio)] {
        if let Some((_, pt)) = chosen
            && !answers_pt(&answer, kind, pt)
        {
            return Err(OfferError::Rejected(format!(
                "the {kind} payload type {pt} was not accepted from this offer"
            )));
        }
    }
    Ok(Answered {
        rtc,
        answer,
        plan,
        local_ufrag,
        remote_ufrag,
    })
}

/// A rejected media section keeps one of the offer's formats: RFC 3264 §6
/// requires at least one, str0m writes none (and then can't parse its own
/// answer; browsers refuse such SDP too). Answer sections are in offer order
/// (RFC 3264 §6).
fn fill_rejected_formats(answer: &str, summary: &OfferSummary) -> String {
    let mut out = String::with_capacity(answer.len() + 16);
    let mut index = 0;
    for line in answer.split_inclusive("\r\n") {
        let body = line.trim_end_matches("\r\n");
        if let Some(m) = body.strip_prefix("m=") {
            let fields: Vec<&str> = m.split(' ').filter(|f| !f.is_empty()).collect();
            if fields.len() == 3 && fields[1] == "0" {
                let pt = summary
                    .media
                    .get(index)
                    .and_then(|m| m.pts.first())
                    .map_or(0, |p| p.pt);
                out.push_str(&format!("m={} {pt}\r\n", fields.join(" ")));
                index += 1;
                continue;
            }
            index += 1;
        }
        out.push_str(line);
    }
    out
}

/// Whether the answer's first `kind` section is active and lists `pt`.
fn answers_pt(answer: &str, kind: &str, pt: Pt) -> bool {
    answer
        .lines()
        .find_map(|l| l.strip_prefix("m=")?.strip_prefix(kind)?.strip_prefix(' '))
        .is_some_and(|rest| {
            let mut f = rest.split(' ');
            let port = f.next();
            port != Some("0") && f.skip(1).any(|p| p.trim() == pt.to_string())
        })
}

/// Remote candidates from a trickle-ice-sdpfrag body (RFC 8840 §4.4): the
/// `a=candidate:` lines, and the ICE ufrag it is for if it names one.
pub fn parse_sdpfrag(body: &str) -> (Option<&str>, Vec<Result<Candidate, String>>) {
    let mut ufrag = None;
    let mut out = Vec::new();
    for line in body.lines().take(1024) {
        let line = line.trim_end_matches('\r');
        if let Some(u) = line.strip_prefix("a=ice-ufrag:") {
            ufrag = Some(u.trim());
        } else if let Some(c) = line.strip_prefix("a=")
            && c.starts_with("candidate:")
        {
            out.push(Candidate::from_sdp_string(c).map_err(|e| format!("{c:?}: {e}")));
        }
    }
    (ufrag, out)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use bytes::Bytes;
    use str0m::change::SdpAnswer as SdpAnswerParse;

    /// Chromium's recvonly offer (trimmed to the parts that matter).
    pub(crate) const CHROME_OFFER: &str = "v=0\r\n\
o=- 4611731400430051336 2 IN IP4 127.0.0.1\r\n\
s=-\r\n\
t=0 0\r\n\
a=group:BUNDLE 0 1\r\n\
a=extmap-allow-mixed\r\n\
a=msid-semantic: WMS\r\n\
m=video 9 UDP/TLS/RTP/SAVPF 96 97 102 103 104 105 106 107 108 109 127 125 39 40\r\n\
c=IN IP4 0.0.0.0\r\n\
a=rtcp:9 IN IP4 0.0.0.0\r\n\
a=ice-ufrag:Xr3s\r\n\
a=ice-pwd:pq2Ry1Ho2b1XgxmQbjQS0ouF\r\n\
a=ice-options:trickle\r\n\
a=fingerprint:sha-256 8D:23:90:1C:7E:1A:1C:3B:38:C3:18:8C:1A:B4:35:A6:6C:6C:37:2B:B0:CC:97:C7:A3:67:92:2E:49:FA:97:3E\r\n\
a=setup:actpass\r\n\
a=mid:0\r\n\
a=recvonly\r\n\
a=rtcp-mux\r\n\
a=rtcp-rsize\r\n\
a=rtpmap:96 VP8/90000\r\n\
a=rtcp-fb:96 nack pli\r\n\
a=rtpmap:97 rtx/90000\r\n\
a=fmtp:97 apt=96\r\n\
a=rtpmap:102 H264/90000\r\n\
a=rtcp-fb:102 nack\r\n\
a=rtcp-fb:102 nack pli\r\n\
a=fmtp:102 level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42001f\r\n\
a=rtpmap:103 rtx/90000\r\n\
a=fmtp:103 apt=102\r\n\
a=rtpmap:104 H264/90000\r\n\
a=fmtp:104 level-asymmetry-allowed=1;packetization-mode=0;profile-level-id=42001f\r\n\
a=rtpmap:105 rtx/90000\r\n\
a=fmtp:105 apt=104\r\n\
a=rtpmap:106 H264/90000\r\n\
a=rtcp-fb:106 nack pli\r\n\
a=fmtp:106 level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f\r\n\
a=rtpmap:107 rtx/90000\r\n\
a=fmtp:107 apt=106\r\n\
a=rtpmap:108 H264/90000\r\n\
a=rtcp-fb:108 nack pli\r\n\
a=fmtp:108 level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=4d001f\r\n\
a=rtpmap:109 rtx/90000\r\n\
a=fmtp:109 apt=108\r\n\
a=rtpmap:127 H264/90000\r\n\
a=rtcp-fb:127 nack pli\r\n\
a=fmtp:127 level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=64001f\r\n\
a=rtpmap:125 rtx/90000\r\n\
a=fmtp:125 apt=127\r\n\
a=rtpmap:39 H265/90000\r\n\
a=rtcp-fb:39 nack pli\r\n\
a=fmtp:39 level-id=156;profile-id=1;tier-flag=0;tx-mode=SRST\r\n\
a=rtpmap:40 rtx/90000\r\n\
a=fmtp:40 apt=39\r\n\
m=audio 9 UDP/TLS/RTP/SAVPF 111 63 9 0 8 13 110 126\r\n\
c=IN IP4 0.0.0.0\r\n\
a=rtcp:9 IN IP4 0.0.0.0\r\n\
a=ice-ufrag:Xr3s\r\n\
a=ice-pwd:pq2Ry1Ho2b1XgxmQbjQS0ouF\r\n\
a=ice-options:trickle\r\n\
a=fingerprint:sha-256 8D:23:90:1C:7E:1A:1C:3B:38:C3:18:8C:1A:B4:35:A6:6C:6C:37:2B:B0:CC:97:C7:A3:67:92:2E:49:FA:97:3E\r\n\
a=setup:actpass\r\n\
a=mid:1\r\n\
a=recvonly\r\n\
a=rtcp-mux\r\n\
a=rtpmap:111 opus/48000/2\r\n\
a=fmtp:111 minptime=10;useinbandfec=1\r\n\
a=rtpmap:63 red/48000/2\r\n\
a=rtpmap:9 G722/8000\r\n\
a=rtpmap:0 PCMU/8000\r\n\
a=rtpmap:8 PCMA/8000\r\n\
a=rtpmap:13 CN/8000\r\n\
a=rtpmap:110 telephone-event/48000\r\n\
a=rtpmap:126 telephone-event/8000\r\n";

    pub(crate) fn h264_track() -> VideoTrack {
        VideoTrack::h264(
            Bytes::from_static(crate::codec::samples::H264_SPS_640X360),
            Bytes::from_static(crate::codec::samples::H264_PPS),
        )
        .unwrap()
    }

    fn cand() -> Vec<std::net::SocketAddr> {
        vec!["127.0.0.1:8189".parse().unwrap()]
    }

    fn answer_for(offer: &str, audio: Option<&AudioTrack>) -> Result<Answered, OfferError> {
        answer_offer(
            offer.as_bytes(),
            Some(&h264_track()),
            audio,
            &cand(),
            Instant::now(),
        )
    }

    #[test]
    fn h264_and_pcma_pick_the_browsers_payload_types() {
        let sps = h264::parse_sps(crate::codec::samples::H264_SPS_640X360).unwrap();
        let pcma = AudioTrack::g711(Codec::G711A, 8000, 1);
        let a = answer_for(CHROME_OFFER, Some(&pcma)).unwrap();
        let expected_pt = match h264_profile(sps.profile_idc, sps.constraint_flags) {
            H264Profile::ConstrainedBaseline => 106,
            H264Profile::Baseline => 102,
            H264Profile::Main => 108,
            H264Profile::High => 127,
            p => panic!("sample SPS has profile {p:?}"),
        };
        assert_eq!(a.plan.video, Some((Codec::H264, Pt::from(expected_pt))));
        assert_eq!(a.plan.audio, Some((Codec::G711A, Pt::from(8))));
        let video_m = a.answer.lines().find(|l| l.starts_with("m=video")).unwrap();
        assert!(
            video_m.split(' ').any(|f| f == expected_pt.to_string()),
            "{}",
            a.answer
        );
        assert!(a.answer.contains("a=sendonly"), "{}", a.answer);
        assert!(a.answer.contains("a=ice-lite"), "{}", a.answer);
        assert!(a.answer.contains("PCMA/8000"), "{}", a.answer);
        assert!(!a.answer.contains("VP8"), "{}", a.answer);
        assert!(a.answer.contains("127.0.0.1 8189 typ host"), "{}", a.answer);
        assert_eq!(a.remote_ufrag.as_deref(), Some("Xr3s"));
        assert!(a.answer.contains(&format!("a=ice-ufrag:{}", a.local_ufrag)));
    }

    #[test]
    fn aac_audio_is_left_out_with_a_note() {
        let aac = AudioTrack::aac(Bytes::from_static(&[0x14, 0x08])).unwrap();
        let a = answer_for(CHROME_OFFER, Some(&aac)).unwrap();
        assert_eq!(a.plan.audio, None);
        assert!(
            a.plan.codecs.notes[0].contains("AAC"),
            "{:?}",
            a.plan.codecs
        );
        // The audio section keeps one of the browser's codecs (well-formed
        // SDP) though nothing is sent on it.
        assert!(a.answer.contains("opus/48000/2"), "{}", a.answer);
        assert!(SdpAnswerParse::from_sdp_string(&a.answer).is_ok());
    }

    #[test]
    fn profiles_pick_a_compatible_decoder() {
        use H264Profile::*;
        assert_eq!(h264_profile(0x42, 0xe0), ConstrainedBaseline);
        assert_eq!(h264_profile(0x42, 0x00), Baseline);
        assert_eq!(h264_profile(0x4d, 0x40), Main);
        assert_eq!(h264_profile(0x64, 0x00), High);
        assert!(h264_fit(Main, High) > 0);
        assert_eq!(h264_fit(High, Main), 0);
        assert_eq!(h264_fit(Baseline, ConstrainedBaseline), 0);
        assert!(h264_fit(ConstrainedBaseline, Baseline) > h264_fit(ConstrainedBaseline, High));
    }

    #[test]
    fn h265_only_when_offered() {
        let track = VideoTrack::h265(
            Bytes::from_static(crate::codec::samples::H265_VPS),
            Bytes::from_static(crate::codec::samples::H265_SPS),
            Bytes::from_static(crate::codec::samples::H265_PPS),
        )
        .unwrap();
        let cand = cand();
        let a = answer_offer(
            CHROME_OFFER.as_bytes(),
            Some(&track),
            None,
            &cand,
            Instant::now(),
        )
        .unwrap();
        assert_eq!(a.plan.video, Some((Codec::H265, Pt::from(39))));
        assert!(a.answer.contains("H265/90000"), "{}", a.answer);
        let no_h265 = CHROME_OFFER.replace("H265/90000", "AV1/90000");
        let e = answer_offer(
            no_h265.as_bytes(),
            Some(&track),
            None,
            &cand,
            Instant::now(),
        )
        .err()
        .unwrap();
        assert!(
            matches!(e, OfferError::NoCommonCodec(ref m) if m.contains("H.265")),
            "{e}"
        );
    }

    #[test]
    fn bad_offers_are_errors() {
        assert!(matches!(
            answer_for("hello", None),
            Err(OfferError::Parse(_))
        ));
        assert!(matches!(
            answer_offer(&[0xff, 0xfe], None, None, &cand(), Instant::now()),
            Err(OfferError::Parse(_))
        ));
        let big = vec![b'a'; MAX_OFFER_BYTES + 1];
        assert!(matches!(
            answer_offer(&big, None, None, &cand(), Instant::now()),
            Err(OfferError::TooLarge { .. })
        ));
        let no_pm1 = CHROME_OFFER.replace("packetization-mode=1", "packetization-mode=0");
        assert!(matches!(
            answer_for(&no_pm1, None),
            Err(OfferError::NoCommonCodec(_))
        ));
    }

    #[test]
    fn a_rejected_section_keeps_a_format() {
        // Audio with nothing we can describe: rejected, but well-formed.
        let g722_only = CHROME_OFFER
            .replace(
                "m=audio 9 UDP/TLS/RTP/SAVPF 111 63 9 0 8 13 110 126",
                "m=audio 9 UDP/TLS/RTP/SAVPF 9",
            )
            .replace("a=rtpmap:8 PCMA/8000\r\n", "")
            .replace("a=rtpmap:0 PCMU/8000\r\n", "")
            .replace("a=rtpmap:111 opus/48000/2\r\n", "");
        let a = answer_for(&g722_only, None).unwrap();
        assert!(
            a.answer.contains("m=audio 0 UDP/TLS/RTP/SAVPF 9\r\n"),
            "{}",
            a.answer
        );
    }

    #[test]
    fn sdpfrag_candidates() {
        let frag = "a=ice-ufrag:Xr3s\r\na=ice-pwd:x\r\nm=audio 9 RTP/AVP 0\r\na=mid:0\r\n\
a=candidate:1 1 udp 2113929471 192.0.2.10 50000 typ host\r\na=candidate:bogus\r\na=end-of-candidates\r\n";
        let (ufrag, c) = parse_sdpfrag(frag);
        assert_eq!(ufrag, Some("Xr3s"));
        assert_eq!(c.len(), 2);
        assert!(c[0].is_ok());
        assert!(c[1].is_err());
    }
}
