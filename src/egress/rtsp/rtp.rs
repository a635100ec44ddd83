//! Frames → RTP packets for one track of one RTSP session, and that track's
//! RTCP sender reports.
//!
//! - H.264 (RFC 6184 §5.6 single NAL unit, §5.8 FU-A); SPS/PPS are sent
//!   before each IDR that lacks them, so a client joining late or losing
//!   packets recovers at the next keyframe.
//! - H.265 (RFC 7798 §4.4.1 single NAL unit, §4.4.3 FU); VPS/SPS/PPS likewise.
//! - AAC (RFC 3640 §3.3.6 AAC-hbr): one AU per packet with a 16-bit AU
//!   header; an AU larger than a packet is fragmented (§3.2.3).
//! - G.711 (RFC 3551 §4.5.14): samples split at the payload limit.
//!
//! The marker bit ends a video access unit (RFC 6184 §5.1) and marks each
//! complete AAC AU or its last fragment (RFC 3640 §3.2.3). Unlike
//! `ingest::rtp::Packetizer`, which cuts an opaque PS pack into equal
//! slices, these cut at NAL unit boundaries and add codec headers, so they
//! share only the RTP fixed header format. Each packet may be built with
//! room for the 4-byte interleaved prefix (RFC 2326 §10.12) so TCP needs no
//! copy.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::{BufMut, Bytes, BytesMut};

use crate::codec::{Codec, nal};
use crate::media::{Frame, FrameData, TrackInfo};

/// Largest RTP payload: keeps packets under a 1500-byte Ethernet MTU with
/// IP/UDP/RTP headers.
pub const MAX_PAYLOAD: usize = 1400;
const RTP_HEADER: usize = 12;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PacketizeError {
    #[error("AAC access unit of {0} bytes does not fit a 13-bit AU size")]
    AuTooLarge(usize),
    #[error("{frame} frame on a {track} track")]
    Codec { frame: Codec, track: Codec },
}

/// Per-track sending state.
#[derive(Debug, Clone)]
pub struct TrackPacketizer {
    codec: Codec,
    payload_type: u8,
    ssrc: u32,
    next_seq: u16,
    ts_offset: u32,
    clock_rate: u32,
    channels: u32,
    /// Interleaved RTP channel, if the packets go over TCP.
    interleaved: Option<u8>,
    packets: u32,
    octets: u32,
    /// RTP timestamp and media time (in clock units, before the offset) of
    /// the last frame sent, for sender reports.
    last: Option<(u32, i64)>,
}

impl TrackPacketizer {
    pub fn new(
        track: &TrackInfo,
        payload_type: u8,
        ssrc: u32,
        initial_seq: u16,
        ts_offset: u32,
        interleaved: Option<u8>,
    ) -> Self {
        let channels = match track {
            TrackInfo::Audio(a) => u32::from(a.channels.max(1)),
            TrackInfo::Video(_) => 1,
        };
        Self {
            codec: track.codec(),
            payload_type: payload_type & 0x7f,
            ssrc,
            next_seq: initial_seq,
            ts_offset,
            clock_rate: track.timescale(),
            channels,
            interleaved,
            packets: 0,
            octets: 0,
            last: None,
        }
    }

    pub fn ssrc(&self) -> u32 {
        self.ssrc
    }

    pub fn next_seq(&self) -> u16 {
        self.next_seq
    }

    pub fn clock_rate(&self) -> u32 {
        self.clock_rate
    }

    /// The RTP timestamp of media time `ticks` (in this track's clock).
    pub fn rtp_time(&self, ticks: i64) -> u32 {
        // Wrapping is what RTP timestamps do (RFC 3550 §5.1).
        self.ts_offset.wrapping_add(ticks as u32)
    }

    /// Packets sent so far.
    pub fn packets(&self) -> u32 {
        self.packets
    }

    fn packet(&mut self, marker: bool, ts: u32, parts: &[&[u8]], out: &mut Vec<Bytes>) {
        let payload_len: usize = parts.iter().map(|p| p.len()).sum();
        let prefix = if self.interleaved.is_some() { 4 } else { 0 };
        let mut b = BytesMut::with_capacity(prefix + RTP_HEADER + payload_len);
        if let Some(ch) = self.interleaved {
            b.put_u8(b'$');
            b.put_u8(ch);
            // Payloads are capped at MAX_PAYLOAD, far below 64 KiB.
            b.put_u16((RTP_HEADER + payload_len) as u16);
        }
        b.put_u8(0x80); // V=2, no padding, no extension, no CSRC.
        b.put_u8(if marker { 0x80 } else { 0 } | self.payload_type);
        b.put_u16(self.next_seq);
        b.put_u32(ts);
        b.put_u32(self.ssrc);
        for p in parts {
            b.put_slice(p);
        }
        self.next_seq = self.next_seq.wrapping_add(1);
        self.packets = self.packets.wrapping_add(1);
        self.octets = self.octets.wrapping_add(payload_len as u32);
        out.push(b.freeze());
    }

    /// Appends the packets of `frame` to `out`.
    pub fn push(&mut self, frame: &Frame, out: &mut Vec<Bytes>) -> Result<(), PacketizeError> {
        if frame.codec() != self.codec {
            return Err(PacketizeError::Codec {
                frame: frame.codec(),
                track: self.codec,
            });
        }
        // Video is stamped with its presentation time (RFC 6184 §5.1).
        let ts = self.rtp_time(frame.pts);
        match (&frame.data, frame.track.as_ref()) {
            (FrameData::Nals(nals), TrackInfo::Video(v)) => {
                let units = with_parameter_sets(self.codec, frame.keyframe, nals, v);
                let count = units.len();
                for (i, unit) in units.into_iter().enumerate() {
                    self.push_nal(unit, i + 1 == count, ts, out);
                }
            }
            (FrameData::Audio(data), _) if self.codec == Codec::Aac => {
                self.push_aac(data, ts, out)?
            }
            (FrameData::Audio(data), _) => {
                // G.711: one byte per sample and channel.
                let step = MAX_PAYLOAD - MAX_PAYLOAD % self.channels as usize;
                let mut t = ts;
                for chunk in data.chunks(step.max(1)) {
                    self.packet(false, t, &[chunk], out);
                    t = t.wrapping_add((chunk.len() as u32) / self.channels);
                }
            }
            _ => {}
        }
        self.last = Some((ts, frame.pts));
        Ok(())
    }

    fn push_nal(&mut self, unit: &[u8], last: bool, ts: u32, out: &mut Vec<Bytes>) {
        if unit.len() <= MAX_PAYLOAD {
            self.packet(last, ts, &[unit], out);
            return;
        }
        match self.codec {
            Codec::H265 => {
                // RFC 7798 §4.4.3: PayloadHdr with Type 49, then FU header.
                let nal_type = (unit[0] >> 1) & 0x3f;
                let hdr = [(unit[0] & 0x81) | (49 << 1), unit[1]];
                let body = &unit[2..];
                let chunks: Vec<&[u8]> = body.chunks(MAX_PAYLOAD - 3).collect();
                let n = chunks.len();
                for (i, c) in chunks.into_iter().enumerate() {
                    let fu = nal_type
                        | if i == 0 { 0x80 } else { 0 }
                        | if i + 1 == n { 0x40 } else { 0 };
                    self.packet(last && i + 1 == n, ts, &[&hdr, &[fu], c], out);
                }
            }
            _ => {
                // RFC 6184 §5.8: FU indicator keeps F and NRI, type 28.
                let indicator = (unit[0] & 0xe0) | 28;
                let nal_type = unit[0] & 0x1f;
                let body = &unit[1..];
                let chunks: Vec<&[u8]> = body.chunks(MAX_PAYLOAD - 2).collect();
                let n = chunks.len();
                for (i, c) in chunks.into_iter().enumerate() {
                    let fu = nal_type
                        | if i == 0 { 0x80 } else { 0 }
                        | if i + 1 == n { 0x40 } else { 0 };
                    self.packet(last && i + 1 == n, ts, &[&[indicator, fu], c], out);
                }
            }
        }
    }

    fn push_aac(&mut self, au: &[u8], ts: u32, out: &mut Vec<Bytes>) -> Result<(), PacketizeError> {
        if au.len() > 0x1fff {
            return Err(PacketizeError::AuTooLarge(au.len()));
        }
        // AU-headers-length = 16 bits; AU-size (13) | AU-Index (3) = 0.
        let size = (au.len() as u16) << 3;
        let headers = [0x00, 0x10, (size >> 8) as u8, size as u8];
        let chunks: Vec<&[u8]> = if au.is_empty() {
            vec![au]
        } else {
            au.chunks(MAX_PAYLOAD - headers.len()).collect()
        };
        let n = chunks.len();
        for (i, c) in chunks.into_iter().enumerate() {
            self.packet(i + 1 == n, ts, &[&headers, c], out);
        }
        Ok(())
    }

    /// An RTCP compound packet: sender report (RFC 3550 §6.4.1) and SDES
    /// CNAME (§6.5.1, required in every compound packet, §6.1). `ntp` is the
    /// wall-clock time of the last frame sent, so that every track of a
    /// session maps its RTP clock to the same wall clock (A/V sync).
    /// `None` before the first frame.
    pub fn sender_report(
        &self,
        wall_of: impl Fn(i64, u32) -> SystemTime,
        cname: &str,
    ) -> Option<Bytes> {
        let (rtp_ts, ticks) = self.last?;
        let ntp = ntp_timestamp(wall_of(ticks, self.clock_rate));
        let cname = &cname.as_bytes()[..cname.len().min(255)];
        let prefix = if self.interleaved.is_some() { 4 } else { 0 };
        // SDES: header 4, SSRC 4, item 2 + text, END, padded to 32 bits.
        let sdes_len = (8 + 2 + cname.len() + 1).div_ceil(4) * 4;
        let total = 28 + sdes_len;
        let mut b = BytesMut::with_capacity(prefix + total);
        if let Some(ch) = self.interleaved {
            b.put_u8(b'$');
            b.put_u8(ch.wrapping_add(1));
            b.put_u16(total as u16);
        }
        b.put_u8(0x80);
        b.put_u8(200);
        b.put_u16(6);
        b.put_u32(self.ssrc);
        b.put_u64(ntp);
        b.put_u32(rtp_ts);
        b.put_u32(self.packets);
        b.put_u32(self.octets);
        b.put_u8(0x81);
        b.put_u8(202);
        b.put_u16((sdes_len / 4 - 1) as u16);
        b.put_u32(self.ssrc);
        b.put_u8(1);
        b.put_u8(cname.len() as u8);
        b.put_slice(cname);
        while b.len() < prefix + total {
            b.put_u8(0);
        }
        Some(b.freeze())
    }
}

/// The access unit's NAL units as sent: access unit delimiters dropped
/// (RFC 6184 §5.4 leaves them optional; they only cost packets), parameter
/// sets put in front of a keyframe that lacks them.
fn with_parameter_sets<'a>(
    codec: Codec,
    keyframe: bool,
    nals: &'a [Bytes],
    track: &'a crate::media::VideoTrack,
) -> Vec<&'a [u8]> {
    let kind = |n: &[u8]| nal::classify(codec, n);
    let mut units: Vec<&[u8]> = Vec::with_capacity(nals.len() + 3);
    let has = |k: nal::NalKind| nals.iter().any(|n| !n.is_empty() && kind(n) == k);
    if keyframe && !(has(nal::NalKind::Sps) && has(nal::NalKind::Pps)) {
        if let Some(vps) = track.vps.as_ref().filter(|_| codec == Codec::H265) {
            units.push(vps);
        }
        units.push(&track.sps);
        units.push(&track.pps);
    }
    // A NAL unit is at least its header (end-of-sequence is only that).
    let min_len = if codec == Codec::H265 { 2 } else { 1 };
    for n in nals {
        if n.len() < min_len || kind(n) == nal::NalKind::Aud {
            continue;
        }
        units.push(n);
    }
    units
}

/// Seconds since 1900 in 32.32 fixed point (RFC 3550 §4).
pub fn ntp_timestamp(t: SystemTime) -> u64 {
    let d = t.duration_since(UNIX_EPOCH).unwrap_or(Duration::ZERO);
    let secs = d.as_secs() + 2_208_988_800;
    let frac = (u64::from(d.subsec_nanos()) << 32) / 1_000_000_000;
    (secs << 32) | frac
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::samples::*;
    use crate::media::{AudioTrack, VideoTrack};
    use std::sync::Arc;

    /// A depacketizer written from the RFCs for these tests: collects the
    /// NAL units of each access unit (ending at the marker).
    fn depacketize(codec: Codec, packets: &[Bytes]) -> Vec<Vec<Vec<u8>>> {
        let mut aus = Vec::new();
        let mut cur: Vec<Vec<u8>> = Vec::new();
        let mut fu: Option<Vec<u8>> = None;
        let mut seq = None;
        for p in packets {
            assert_eq!(p[0], 0x80);
            let s = u16::from_be_bytes([p[2], p[3]]);
            if let Some(prev) = seq {
                assert_eq!(s, u16::wrapping_add(prev, 1), "sequence gap");
            }
            seq = Some(s);
            let marker = p[1] & 0x80 != 0;
            let pl = &p[12..];
            assert!(pl.len() <= MAX_PAYLOAD);
            let (is_fu, hdr_len) = match codec {
                Codec::H265 => ((pl[0] >> 1) & 0x3f == 49, 3),
                _ => (pl[0] & 0x1f == 28, 2),
            };
            if is_fu {
                let fu_hdr = pl[hdr_len - 1];
                if fu_hdr & 0x80 != 0 {
                    assert!(fu.is_none());
                    let nal_hdr = match codec {
                        Codec::H265 => vec![(pl[0] & 0x81) | ((fu_hdr & 0x3f) << 1), pl[1]],
                        _ => vec![(pl[0] & 0xe0) | (fu_hdr & 0x1f)],
                    };
                    fu = Some(nal_hdr);
                }
                let buf = fu.as_mut().expect("FU without start");
                buf.extend_from_slice(&pl[hdr_len..]);
                if fu_hdr & 0x40 != 0 {
                    cur.push(fu.take().unwrap());
                } else {
                    assert!(!marker, "marker inside a fragmented NAL");
                }
            } else {
                cur.push(pl.to_vec());
            }
            if marker {
                aus.push(std::mem::take(&mut cur));
            }
        }
        assert!(
            cur.is_empty() && fu.is_none(),
            "trailing partial access unit"
        );
        aus
    }

    fn video_frame(track: &Arc<TrackInfo>, nals: Vec<Bytes>, keyframe: bool, pts: i64) -> Frame {
        Frame {
            track: track.clone(),
            pts,
            dts: pts,
            keyframe,
            data: FrameData::Nals(nals),
            received: None,
        }
    }

    fn big_nal(header: &[u8], len: usize) -> Bytes {
        let mut v = header.to_vec();
        v.extend((0..len - header.len()).map(|i| (i % 251) as u8));
        Bytes::from(v)
    }

    #[test]
    fn h264_fu_a_round_trip_with_parameter_sets_before_idr() {
        let track = Arc::new(TrackInfo::Video(
            VideoTrack::h264(
                Bytes::from_static(H264_SPS_640X360),
                Bytes::from_static(H264_PPS),
            )
            .unwrap(),
        ));
        let mut p = TrackPacketizer::new(&track, 96, 0x1234, 65534, 1000, None);
        let aud = Bytes::from_static(&[0x09, 0xf0]);
        let idr = big_nal(&[0x65, 0x88], 4000);
        let small = big_nal(&[0x41, 0x9a], 300);
        let exact = big_nal(&[0x41, 0x9b], MAX_PAYLOAD);
        let mut out = Vec::new();
        p.push(
            &video_frame(&track, vec![aud, idr.clone()], true, 3000),
            &mut out,
        )
        .unwrap();
        p.push(
            &video_frame(&track, vec![small.clone(), exact.clone()], false, 6000),
            &mut out,
        )
        .unwrap();
        // 1 SPS + 1 PPS + 3 FU-A (4000 bytes) + 2 singles; seq wraps.
        assert_eq!(out.len(), 7);
        assert_eq!(p.next_seq(), 5);
        let aus = depacketize(Codec::H264, &out);
        assert_eq!(
            aus,
            vec![
                vec![H264_SPS_640X360.to_vec(), H264_PPS.to_vec(), idr.to_vec()],
                vec![small.to_vec(), exact.to_vec()],
            ]
        );
        // Markers: only on the last packet of each access unit.
        let markers: Vec<bool> = out.iter().map(|p| p[1] & 0x80 != 0).collect();
        assert_eq!(markers, [false, false, false, false, true, false, true]);
        // FU-A keeps NRI (0x65 → 0x60 | 28 = 0x7c) and S/E bits.
        assert_eq!(&out[2][12..14], &[0x7c, 0x85]);
        assert_eq!(&out[4][12..14], &[0x7c, 0x45]);
        let ts = u32::from_be_bytes([out[0][4], out[0][5], out[0][6], out[0][7]]);
        assert_eq!(ts, 4000);
    }

    #[test]
    fn h265_fu_round_trip() {
        let track = Arc::new(TrackInfo::Video(
            VideoTrack::h265(
                Bytes::from_static(H265_VPS),
                Bytes::from_static(H265_SPS),
                Bytes::from_static(H265_PPS),
            )
            .unwrap(),
        ));
        let mut p = TrackPacketizer::new(&track, 96, 1, 0, 0, Some(0));
        // IDR_W_RADL (19): header 0x26 0x01.
        let idr = big_nal(&[0x26, 0x01, 0xaf], 5000);
        let mut out = Vec::new();
        p.push(&video_frame(&track, vec![idr.clone()], true, 0), &mut out)
            .unwrap();
        // Interleaved: '$', channel 0, length of the RTP packet.
        for pkt in &out {
            assert_eq!(pkt[0], b'$');
            assert_eq!(
                usize::from(u16::from_be_bytes([pkt[2], pkt[3]])),
                pkt.len() - 4
            );
        }
        let rtp: Vec<Bytes> = out.iter().map(|b| b.slice(4..)).collect();
        let aus = depacketize(Codec::H265, &rtp);
        assert_eq!(
            aus,
            vec![vec![
                H265_VPS.to_vec(),
                H265_SPS.to_vec(),
                H265_PPS.to_vec(),
                idr.to_vec()
            ]]
        );
        // FU payload header: type 49, layer/TID kept; FU header S + type 19.
        assert_eq!(&rtp[3][12..15], &[49 << 1, 0x01, 0x80 | 19]);
    }

    #[test]
    fn aac_au_headers_and_fragments() {
        let track = Arc::new(TrackInfo::Audio(
            AudioTrack::aac(Bytes::from_static(&[0x12, 0x10])).unwrap(),
        ));
        let mut p = TrackPacketizer::new(&track, 97, 7, 10, 0, None);
        let frame = |len: usize, pts| Frame {
            track: track.clone(),
            pts,
            dts: pts,
            keyframe: true,
            data: FrameData::Audio(Bytes::from(vec![0x21; len])),
            received: None,
        };
        let mut out = Vec::new();
        p.push(&frame(371, 1024), &mut out).unwrap();
        assert_eq!(out.len(), 1);
        assert_eq!(
            &out[0][12..16],
            &[0x00, 0x10, ((371 * 8) >> 8) as u8, (371 * 8) as u8]
        );
        assert_eq!(out[0].len(), 12 + 4 + 371);
        assert!(out[0][1] & 0x80 != 0);
        out.clear();
        p.push(&frame(3000, 2048), &mut out).unwrap();
        assert_eq!(out.len(), 3);
        let markers: Vec<bool> = out.iter().map(|p| p[1] & 0x80 != 0).collect();
        assert_eq!(markers, [false, false, true]);
        let body: usize = out.iter().map(|p| p.len() - 16).sum();
        assert_eq!(body, 3000);
        assert!(p.push(&frame(9000, 0), &mut out).is_err());
    }

    #[test]
    fn g711_and_sender_report() {
        let track = Arc::new(TrackInfo::Audio(AudioTrack::g711(Codec::G711A, 8000, 1)));
        let mut p = TrackPacketizer::new(&track, 8, 0xdead_beef, 0, 100, Some(2));
        assert!(p.sender_report(|_, _| SystemTime::now(), "x").is_none());
        let mut out = Vec::new();
        p.push(
            &Frame {
                track: track.clone(),
                pts: 8000,
                dts: 8000,
                keyframe: true,
                data: FrameData::Audio(Bytes::from(vec![0xd5; 3000])),
                received: None,
            },
            &mut out,
        )
        .unwrap();
        assert_eq!(out.len(), 3);
        let ts = |b: &Bytes| u32::from_be_bytes([b[8], b[9], b[10], b[11]]);
        assert_eq!([ts(&out[0]), ts(&out[1]), ts(&out[2])], [8100, 9500, 10900]);
        assert_eq!(out[0][5], 8);
        let wall = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let sr = p
            .sender_report(
                |ticks, rate| {
                    assert_eq!((ticks, rate), (8000, 8000));
                    wall
                },
                "camgate",
            )
            .unwrap();
        assert_eq!(&sr[..2], &[b'$', 3]);
        let sr = &sr[4..];
        assert_eq!(usize::from(u16::from_be_bytes([sr[2], sr[3]])), 6);
        assert_eq!(sr[1], 200);
        assert_eq!(
            u64::from_be_bytes(sr[8..16].try_into().unwrap()) >> 32,
            1_700_000_000 + 2_208_988_800
        );
        assert_eq!(u32::from_be_bytes(sr[16..20].try_into().unwrap()), 8100);
        assert_eq!(u32::from_be_bytes(sr[20..24].try_into().unwrap()), 3);
        assert_eq!(u32::from_be_bytes(sr[24..28].try_into().unwrap()), 3000);
        assert_eq!(sr[29], 202);
        assert_eq!(sr.len() % 4, 0);
    }
}
