//! The session description DESCRIBE answers with (RFC 4566; RFC 2326
//! Appendix C for the `a=control` attributes): one `m=` line per track with
//! the parameter sets a decoder needs before the first packet.

use std::fmt::Write as _;
use std::net::IpAddr;
use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;

use crate::codec::Codec;
use crate::media::TrackInfo;

/// The RTP payload type of track `index`: the static types of RFC 3551
/// Table 4 for 8 kHz mono G.711, dynamic ones (96+) otherwise.
pub fn payload_type(track: &TrackInfo, index: usize) -> u8 {
    match track {
        TrackInfo::Audio(a) if a.sample_rate == 8000 && a.channels == 1 => match a.codec {
            Codec::G711A => 8,
            Codec::G711U => 0,
            _ => dynamic(index),
        },
        _ => dynamic(index),
    }
}

fn dynamic(index: usize) -> u8 {
    96 + (index.min(31) as u8)
}

/// RTP clock rate (RFC 6184 §8.2.1, RFC 7798 §7.1: 90 kHz video; audio at
/// its sample rate).
pub fn clock_rate(track: &TrackInfo) -> u32 {
    track.timescale()
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SdpError {
    #[error("{codec} track without {what}")]
    Missing { codec: Codec, what: &'static str },
    #[error("H.264 SPS of {0} bytes is too short for profile-level-id")]
    ShortSps(usize),
}

/// The `a=fmtp` value of a track (without `a=fmtp:PT `), if it has one.
pub fn fmtp(track: &TrackInfo) -> Result<Option<String>, SdpError> {
    Ok(match track {
        TrackInfo::Video(v) if v.codec == Codec::H264 => {
            // RFC 6184 §8.1: profile_idc, constraint flags and level_idc,
            // the three bytes after the SPS NAL header.
            let pli = v.sps.get(1..4).ok_or(SdpError::ShortSps(v.sps.len()))?;
            Some(format!(
                "packetization-mode=1; profile-level-id={:02X}{:02X}{:02X}; sprop-parameter-sets={},{}",
                pli[0],
                pli[1],
                pli[2],
                B64.encode(&v.sps),
                B64.encode(&v.pps)
            ))
        }
        TrackInfo::Video(v) => {
            // RFC 7798 §7.1: the parameter sets out of band.
            let vps = v.vps.as_ref().ok_or(SdpError::Missing {
                codec: v.codec,
                what: "VPS",
            })?;
            Some(format!(
                "sprop-vps={}; sprop-sps={}; sprop-pps={}",
                B64.encode(vps),
                B64.encode(&v.sps),
                B64.encode(&v.pps)
            ))
        }
        TrackInfo::Audio(a) if a.codec == Codec::Aac => {
            // RFC 3640 §3.3.6 AAC-hbr: 13-bit sizes, 3-bit indexes.
            let config = a.config.as_ref().ok_or(SdpError::Missing {
                codec: a.codec,
                what: "AudioSpecificConfig",
            })?;
            Some(format!(
                "streamtype=5; profile-level-id=1; mode=AAC-hbr; sizelength=13; indexlength=3; indexdeltalength=3; config={}",
                crate::util::hex(config).to_ascii_uppercase()
            ))
        }
        TrackInfo::Audio(_) => None,
    })
}

/// The `a=rtpmap` encoding of a track: `H264/90000`, `MPEG4-GENERIC/44100/2`, ….
pub fn rtpmap(track: &TrackInfo) -> String {
    match track {
        TrackInfo::Video(v) => match v.codec {
            Codec::H265 => "H265/90000".into(),
            _ => "H264/90000".into(),
        },
        TrackInfo::Audio(a) => {
            let name = match a.codec {
                Codec::Aac => "MPEG4-GENERIC",
                Codec::G711U => "PCMU",
                _ => "PCMA",
            };
            format!("{name}/{}/{}", a.sample_rate, a.channels.max(1))
        }
    }
}

/// The whole description. Track `i` has control `trackID=i`, relative to the
/// Content-Base the DESCRIBE response carries.
pub fn describe(
    stream_id: &str,
    session_version: u64,
    origin: IpAddr,
    tracks: &[Arc<TrackInfo>],
) -> Result<String, SdpError> {
    let ip = match origin {
        IpAddr::V4(_) => "IP4",
        IpAddr::V6(_) => "IP6",
    };
    let mut s = String::with_capacity(512);
    // RFC 4566 §5.2 origin, §5.7 connection (0.0.0.0: unicast via SETUP).
    let _ = write!(
        s,
        "v=0\r\no=- {session_version} {session_version} IN {ip} {origin}\r\ns={stream_id}\r\nc=IN {ip} {}\r\nt=0 0\r\na=tool:camgate\r\na=range:npt=now-\r\na=control:*\r\n",
        if origin.is_ipv4() { "0.0.0.0" } else { "::" }
    );
    for (i, t) in tracks.iter().enumerate() {
        let pt = payload_type(t, i);
        let kind = if t.is_video() { "video" } else { "audio" };
        let _ = write!(
            s,
            "m={kind} 0 RTP/AVP {pt}\r\na=rtpmap:{pt} {}\r\n",
            rtpmap(t)
        );
        if let Some(f) = fmtp(t)? {
            let _ = write!(s, "a=fmtp:{pt} {f}\r\n");
        }
        let _ = write!(s, "a=control:trackID={i}\r\n");
    }
    Ok(s)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::samples::*;
    use crate::media::{AudioTrack, VideoTrack};
    use bytes::Bytes;

    fn h264() -> Arc<TrackInfo> {
        Arc::new(TrackInfo::Video(
            VideoTrack::h264(
                Bytes::from_static(H264_SPS_640X360),
                Bytes::from_static(H264_PPS),
            )
            .unwrap(),
        ))
    }

    /// Expected strings computed independently (Python's base64 over the
    /// sample bytes) and in the form FFmpeg's own SDP writer produces.
    #[test]
    fn known_good_fmtp() {
        assert_eq!(
            fmtp(&h264()).unwrap().unwrap(),
            "packetization-mode=1; profile-level-id=64001E; sprop-parameter-sets=Z2QAHqzZQKAv+XARAAADAAEAAAMAMg8WLZY=,aOvjyyLA"
        );
        let h265 = TrackInfo::Video(
            VideoTrack::h265(
                Bytes::from_static(H265_VPS),
                Bytes::from_static(H265_SPS),
                Bytes::from_static(H265_PPS),
            )
            .unwrap(),
        );
        assert_eq!(
            fmtp(&h265).unwrap().unwrap(),
            "sprop-vps=QAEMAf//AWAAAAMAkAAAAwAAAwA/lZgJ; sprop-sps=QgEBAWAAAAMAkAAAAwAAAwA/oAUCAWlllZpJMrwFoCAAAAMAIAAAAwMh; sprop-pps=RAHBcrRiQA=="
        );
        assert_eq!(rtpmap(&h265), "H265/90000");
        // AAC-LC 44.1 kHz stereo: AudioSpecificConfig 0x1210.
        let aac = TrackInfo::Audio(AudioTrack::aac(Bytes::from_static(&[0x12, 0x10])).unwrap());
        assert_eq!(
            fmtp(&aac).unwrap().unwrap(),
            "streamtype=5; profile-level-id=1; mode=AAC-hbr; sizelength=13; indexlength=3; indexdeltalength=3; config=1210"
        );
        assert_eq!(rtpmap(&aac), "MPEG4-GENERIC/44100/2");
        assert_eq!(payload_type(&aac, 1), 97);
    }

    #[test]
    fn g711_uses_static_payload_types() {
        let pcma = TrackInfo::Audio(AudioTrack::g711(Codec::G711A, 8000, 1));
        let pcmu = TrackInfo::Audio(AudioTrack::g711(Codec::G711U, 8000, 1));
        let wide = TrackInfo::Audio(AudioTrack::g711(Codec::G711A, 16000, 1));
        assert_eq!(payload_type(&pcma, 1), 8);
        assert_eq!(payload_type(&pcmu, 1), 0);
        assert_eq!(payload_type(&wide, 1), 97);
        assert_eq!(rtpmap(&pcmu), "PCMU/8000/1");
        assert_eq!(fmtp(&pcma).unwrap(), None);
    }

    #[test]
    fn whole_description() {
        let tracks = vec![
            h264(),
            Arc::new(TrackInfo::Audio(AudioTrack::g711(Codec::G711A, 8000, 1))),
        ];
        let sdp = describe("cam", 42, "127.0.0.1".parse().unwrap(), &tracks).unwrap();
        let want = "v=0\r\no=- 42 42 IN IP4 127.0.0.1\r\ns=cam\r\nc=IN IP4 0.0.0.0\r\nt=0 0\r\na=tool:camgate\r\na=range:npt=now-\r\na=control:*\r\n\
m=video 0 RTP/AVP 96\r\na=rtpmap:96 H264/90000\r\na=fmtp:96 packetization-mode=1; profile-level-id=64001E; sprop-parameter-sets=Z2QAHqzZQKAv+XARAAADAAEAAAMAMg8WLZY=,aOvjyyLA\r\na=control:trackID=0\r\n\
m=audio 0 RTP/AVP 8\r\na=rtpmap:8 PCMA/8000/1\r\na=control:trackID=1\r\n";
        assert_eq!(sdp, want);
    }
}
