//! Entry points for `cargo fuzz` (see `fuzz/`), also run over random input by
//! the unit tests so CI exercises them. Each must never panic.

use std::sync::Arc;

use bytes::{BufMut, Bytes, BytesMut};

use crate::codec::{Codec, aac, h264, h265, nal};
use crate::egress::flv::mux::{self, FlvMuxer, FlvWriter};
use crate::media::{AudioTrack, Frame, FrameData, TrackInfo, VideoTrack};

/// Codec parsers on arbitrary bytes.
pub fn codec_parsers(data: &[u8]) {
    let _ = h264::parse_sps(data);
    let _ = h265::parse_sps(data);
    let b = Bytes::copy_from_slice(data);
    let _ = h264::parse_avc_decoder_configuration(&b);
    let _ = h265::parse_hevc_decoder_configuration(&b);
    let _ = aac::parse_audio_specific_config(data);
    let _ = aac::parse_adts_header(data);
    let _ = nal::split_annex_b(&b);
    let _ = nal::split_length_prefixed(&b);
    let _ = mux::parse(&b);
}

/// The FLV muxer's input path: arbitrary bytes become a sequence of frames
/// (H.264/H.265 Annex B access units, AAC/G.711 audio) with arbitrary
/// timestamps and flags; what comes out must parse back as FLV.
pub fn flv_mux(data: &[u8]) {
    let h264 = VideoTrack::h264(
        Bytes::from_static(crate::codec::samples::H264_SPS_640X360),
        Bytes::from_static(crate::codec::samples::H264_PPS),
    );
    let Ok(h264) = h264 else { return };
    let tracks = [
        Arc::new(TrackInfo::Video(h264)),
        Arc::new(TrackInfo::Audio(AudioTrack::g711(Codec::G711A, 8000, 1))),
        Arc::new(TrackInfo::Audio(AudioTrack::g711(Codec::G711U, 8000, 1))),
        Arc::new(TrackInfo::Audio(AudioTrack {
            codec: Codec::Aac,
            sample_rate: 16000,
            channels: 1,
            config: Some(Bytes::from_static(&[0x14, 0x08])),
        })),
    ];
    let mut muxer = FlvMuxer::new();
    let mut writer = FlvWriter::new();
    let mut out = BytesMut::new();
    out.put_slice(&mux::file_header(true, true));
    let mut tags = Vec::new();
    let mut rest = data;
    // Each record: 1 byte selector, 4 bytes dts delta, 2 bytes cts, 2 bytes length, payload.
    while rest.len() >= 9 {
        let sel = rest[0];
        let dts = i64::from(i32::from_be_bytes([rest[1], rest[2], rest[3], rest[4]]));
        let cts = i64::from(i16::from_be_bytes([rest[5], rest[6]]));
        let len = usize::from(u16::from_be_bytes([rest[7], rest[8]])).min(rest.len() - 9);
        let payload = Bytes::copy_from_slice(&rest[9..9 + len]);
        rest = &rest[9 + len..];
        let track = tracks[usize::from(sel & 3)].clone();
        let data = if track.is_video() {
            FrameData::Nals(nal::split_annex_b(&payload))
        } else {
            FrameData::Audio(payload)
        };
        let frame = Frame {
            track,
            pts: dts + cts,
            dts,
            keyframe: sel & 4 != 0,
            data,
            received: None,
        };
        tags.clear();
        if muxer.push(&frame, &mut tags).is_ok() {
            for t in &tags {
                for c in writer.write(t) {
                    out.put_slice(&c);
                }
            }
        }
    }
    if let Err(e) = mux::parse(&out.freeze()) {
        panic!("muxer produced unparsable FLV: {e}");
    }
}

/// SIP: datagram and stream framing, rsip parsing, SDP, Digest credentials.
pub fn sip_message(data: &[u8]) {
    use crate::sip::{Limits, StreamFramer, digest, frame_datagram, parse_message, sdp};
    let limits = Limits::default();
    if let Ok(range) = frame_datagram(data, &limits) {
        let _ = parse_message(&data[range]);
    }
    let mut framer = StreamFramer::new(limits);
    for chunk in data.chunks(7) {
        framer.push(chunk);
        while let Ok(Some(m)) = framer.next_message() {
            let _ = parse_message(&m);
        }
    }
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = sdp::parse(text);
        if let Ok(d) = digest::parse_authorization(text) {
            let _ = d.verify("REGISTER", "00000000000000000000000000000000");
        }
    }
}

/// Digest `Authorization` values through the parser and the registrar (the
/// nonce "n" is issued first so answers reach the digest check).
pub fn digest(data: &[u8]) {
    use crate::gb::registrar::{Credential, RegisterFacts, Registrar, RegistrarLimits};
    use crate::sip::digest;
    let text = String::from_utf8_lossy(data);
    if let Ok(d) = digest::parse_authorization(&text) {
        let _ = d.verify("REGISTER", &digest::ha1(&d.username, &d.realm, "pw"));
    }
    let mut r = Registrar::new(
        "3402000000",
        RegistrarLimits::default(),
        Box::new(|| "n".to_owned()),
    );
    let cred = Credential::Ha1(digest::ha1("34020000001320000001", "3402000000", "pw"));
    let now = std::time::Instant::now();
    let ip = std::net::IpAddr::from([127, 0, 0, 1]);
    let facts = |auth| RegisterFacts {
        device_id: "34020000001320000001",
        source_ip: ip,
        authorization: auth,
    };
    let _ = r.check(&facts(None), &cred, now);
    let _ = r.check(&facts(Some(&text)), &cred, now);
}

/// MANSCDP bodies: parse under every charset choice, and feed the builders
/// whatever the bytes decode to.
pub fn manscdp(data: &[u8]) {
    use crate::gb::manscdp::{self, Charset};
    for charset in [None, Some(Charset::Utf8), Some(Charset::Gb18030)] {
        let _ = manscdp::parse(data, charset);
    }
    let (text, _) = manscdp::decode_body(data, None);
    let built = manscdp::query_with(&text, 1, &text, &[("Name", &text)]);
    let _ = manscdp::parse(&manscdp::encode_body(&built, Charset::Gb18030), None);
    // A <PTZCmd> as a device reads it; what parses must render back.
    if let Ok(cmd) = crate::ptz::PtzCommand::from_gb_hex(&text) {
        let hex = cmd.to_gb_hex(1).expect("a parsed PTZCmd renders");
        assert_eq!(crate::ptz::PtzCommand::from_gb_hex(&hex), Ok(cmd));
    }
}

/// The API's JSON bodies.
pub fn api_json(data: &[u8]) {
    use crate::api::{SourceCreate, SourcePatch, TokenCreate, parse_json};
    let _ = parse_json::<SourceCreate>(data);
    let _ = parse_json::<SourcePatch>(data);
    let _ = parse_json::<TokenCreate>(data);
    let _ = parse_json::<crate::store::MediaSettings>(data);
    let _ = parse_json::<crate::api::SipSettingsUpdate>(data);
    let _ = parse_json::<crate::api::DeviceCreate>(data);
    let _ = parse_json::<crate::api::DevicePatch>(data);
}

/// Web UI and sign-in inputs: cookies, Authorization, UI paths,
/// Accept-Encoding, the auth/users/network/probe bodies, /proc texts.
pub fn web_inputs(data: &[u8]) {
    crate::api::fuzz_web_inputs(data);
}

/// HTTP query strings and file names of the live routes.
pub fn http_query(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let (file, query) = text.split_once('?').unwrap_or((&text, ""));
    let _ = crate::egress::hls::HlsFile::parse(file, Some(query));
    let _ = crate::egress::hls::HlsFile::parse("index.m3u8", Some(&text));
}

/// The RTSP server's request path: parser, URL, transports, credentials,
/// session state machine, response writer.
pub fn rtsp_request(data: &[u8]) {
    crate::egress::rtsp::fuzz_request(data);
}

/// The WHEP offer path: an SDP offer answered for an H.264 + G.711A stream
/// and for an H.265 stream; the same bytes as a trickle-ice-sdpfrag and as a
/// STUN datagram on the shared WebRTC port.
pub fn whep_sdp(data: &[u8]) {
    use crate::egress::webrtc::{media, offer};
    let Ok(h264) = VideoTrack::h264(
        Bytes::from_static(crate::codec::samples::H264_SPS_640X360),
        Bytes::from_static(crate::codec::samples::H264_PPS),
    ) else {
        return;
    };
    let Ok(h265) = VideoTrack::h265(
        Bytes::from_static(crate::codec::samples::H265_VPS),
        Bytes::from_static(crate::codec::samples::H265_SPS),
        Bytes::from_static(crate::codec::samples::H265_PPS),
    ) else {
        return;
    };
    let pcma = AudioTrack::g711(Codec::G711A, 8000, 1);
    let candidates = [std::net::SocketAddr::from(([127, 0, 0, 1], 8189))];
    let now = std::time::Instant::now();
    if let Ok(a) = offer::answer_offer(data, Some(&h264), Some(&pcma), &candidates, now) {
        // Every answered section names at least one format (RFC 3264 §6),
        // rejected ones included.
        assert!(
            a.answer
                .lines()
                .filter_map(|l| l.strip_prefix("m="))
                .all(|m| m.split(' ').filter(|f| !f.trim().is_empty()).count() >= 4),
            "{}",
            a.answer
        );
    }
    let _ = offer::answer_offer(data, Some(&h265), None, &candidates, now);
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = offer::parse_sdpfrag(text);
    }
    let _ = media::stun_local_ufrag(data);
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]
        #[test]
        fn fuzz_entry_points_do_not_panic(data in proptest::collection::vec(any::<u8>(), 0..600)) {
            codec_parsers(&data);
            flv_mux(&data);
            api_json(&data);
            http_query(&data);
            sip_message(&data);
            manscdp(&data);
            digest(&data);
            rtsp_request(&data);
            whep_sdp(&data);
            web_inputs(&data);
        }

        #[test]
        fn whep_entry_point_survives_mutated_offers(
            cut in 0usize..6000,
            flip in 0usize..6000,
            byte in any::<u8>(),
        ) {
            let mut m = crate::egress::webrtc::offer::tests::CHROME_OFFER.as_bytes().to_vec();
            let i = flip % m.len();
            m[i] = byte;
            m.truncate(cut.max(1).min(m.len()));
            whep_sdp(&m);
        }

        #[test]
        fn sip_entry_point_survives_mutated_messages(
            cut in 0usize..400,
            flip in 0usize..400,
            byte in any::<u8>(),
        ) {
            let mut m = b"REGISTER sip:34020000002000000001@3402000000 SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.1:5060;rport;branch=z9hG4bK1\r\nFrom: <sip:1@d>;tag=1\r\nTo: <sip:1@d>\r\nCall-ID: x\r\nCSeq: 1 REGISTER\r\nAuthorization: Digest username=\"1\", realm=\"d\", nonce=\"n\", uri=\"sip:d\", response=\"00\"\r\nContent-Length: 4\r\n\r\nv=0\n".to_vec();
            let i = flip % m.len();
            m[i] = byte;
            m.truncate(cut.max(1).min(m.len()));
            sip_message(&m);
        }
    }
}
