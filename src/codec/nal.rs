//! NAL unit framing: Annex B start codes and 4-byte length prefixes, and the
//! NAL header fields camgate needs (type, keyframe, parameter set).
//!
//! Splitting returns `Bytes` slices of the input buffer: no payload is copied.

use bytes::Bytes;

use super::{Codec, CodecError};

/// Splits an Annex B byte stream (`00 00 01` / `00 00 00 01` start codes) into NAL
/// units without their start codes. Bytes before the first start code are
/// ignored; trailing zero bytes of a NAL (trailing_zero_8bits) are trimmed.
pub fn split_annex_b(data: &Bytes) -> Vec<Bytes> {
    let mut nals = Vec::new();
    let buf = &data[..];
    let mut i = 0usize;
    let mut start: Option<usize> = None;
    while i + 2 < buf.len() {
        if buf[i] == 0 && buf[i + 1] == 0 && buf[i + 2] == 1 {
            if let Some(s) = start {
                push_trimmed(&mut nals, data, s, i);
            }
            i += 3;
            start = Some(i);
        } else if buf[i + 2] > 1 {
            // Neither byte i+1 nor i+2 can start a start code here: skip ahead.
            i += 3;
        } else {
            i += 1;
        }
    }
    if let Some(s) = start {
        push_trimmed(&mut nals, data, s, buf.len());
    }
    nals
}

fn push_trimmed(nals: &mut Vec<Bytes>, data: &Bytes, start: usize, mut end: usize) {
    while end > start && data[end - 1] == 0 {
        end -= 1;
    }
    if end > start {
        nals.push(data.slice(start..end));
    }
}

/// Splits NAL units framed with 4-byte big-endian lengths (ISO/IEC 14496-15, as
/// in MP4 samples and what retina emits with `FrameFormat::MP4`).
pub fn split_length_prefixed(data: &Bytes) -> Result<Vec<Bytes>, CodecError> {
    let mut nals = Vec::new();
    let mut pos = 0usize;
    while pos < data.len() {
        let Some(len_bytes) = data.get(pos..pos + 4) else {
            return Err(CodecError::Malformed {
                what: "length-prefixed NAL units",
                message: "truncated length prefix",
            });
        };
        let len =
            u32::from_be_bytes([len_bytes[0], len_bytes[1], len_bytes[2], len_bytes[3]]) as usize;
        pos += 4;
        let end =
            pos.checked_add(len)
                .filter(|&e| e <= data.len())
                .ok_or(CodecError::Malformed {
                    what: "length-prefixed NAL units",
                    message: "NAL length runs past the end of the frame",
                })?;
        if len > 0 {
            nals.push(data.slice(pos..end));
        }
        pos = end;
    }
    Ok(nals)
}

/// H.264 nal_unit_type (§7.4.1, Table 7-1).
pub fn h264_type(nal: &[u8]) -> u8 {
    nal.first().map_or(0, |b| b & 0x1f)
}

/// H.265 nal_unit_type (§7.4.2.2, Table 7-1).
pub fn h265_type(nal: &[u8]) -> u8 {
    nal.first().map_or(0, |b| (b >> 1) & 0x3f)
}

pub mod h264_types {
    pub const IDR: u8 = 5;
    pub const SEI: u8 = 6;
    pub const SPS: u8 = 7;
    pub const PPS: u8 = 8;
    pub const AUD: u8 = 9;
}

pub mod h265_types {
    pub const BLA_W_LP: u8 = 16;
    pub const CRA: u8 = 21;
    pub const VPS: u8 = 32;
    pub const SPS: u8 = 33;
    pub const PPS: u8 = 34;
    pub const AUD: u8 = 35;
}

/// What a NAL unit is, independent of codec.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NalKind {
    Vps,
    Sps,
    Pps,
    /// Access unit delimiter: dropped by muxers that frame access units themselves.
    Aud,
    /// A slice of a random access picture (H.264 IDR; H.265 BLA/IDR/CRA).
    KeySlice,
    Other,
}

pub fn classify(codec: Codec, nal: &[u8]) -> NalKind {
    match codec {
        Codec::H264 => match h264_type(nal) {
            h264_types::SPS => NalKind::Sps,
            h264_types::PPS => NalKind::Pps,
            h264_types::AUD => NalKind::Aud,
            h264_types::IDR => NalKind::KeySlice,
            _ => NalKind::Other,
        },
        Codec::H265 => match h265_type(nal) {
            h265_types::VPS => NalKind::Vps,
            h265_types::SPS => NalKind::Sps,
            h265_types::PPS => NalKind::Pps,
            h265_types::AUD => NalKind::Aud,
            t if (h265_types::BLA_W_LP..=h265_types::CRA).contains(&t) => NalKind::KeySlice,
            _ => NalKind::Other,
        },
        _ => NalKind::Other,
    }
}

/// True when the access unit holds a random access picture.
pub fn is_keyframe(codec: Codec, nals: &[Bytes]) -> bool {
    nals.iter().any(|n| classify(codec, n) == NalKind::KeySlice)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn annex_b_split_handles_3_and_4_byte_codes() {
        let data = Bytes::from_static(&[
            0, 0, 0, 1, 0x67, 1, 2, 0, 0, 1, 0x68, 3, 0, 0, 0, 1, 0x65, 4, 5, 0,
        ]);
        let nals = split_annex_b(&data);
        assert_eq!(nals.len(), 3);
        assert_eq!(&nals[0][..], &[0x67, 1, 2]);
        assert_eq!(&nals[1][..], &[0x68, 3]);
        assert_eq!(&nals[2][..], &[0x65, 4, 5]);
        assert!(is_keyframe(Codec::H264, &nals));
    }

    #[test]
    fn annex_b_split_is_zero_copy() {
        let data = Bytes::from(vec![0, 0, 1, 0x41, 9, 9, 9]);
        let nals = split_annex_b(&data);
        assert_eq!(nals[0].as_ptr(), data[3..].as_ptr());
    }

    #[test]
    fn length_prefixed_rejects_overrun() {
        let data = Bytes::from_static(&[0, 0, 0, 5, 1, 2]);
        assert!(split_length_prefixed(&data).is_err());
        let ok = Bytes::from_static(&[0, 0, 0, 2, 0x41, 1, 0, 0, 0, 1, 0x06]);
        assert_eq!(split_length_prefixed(&ok).unwrap().len(), 2);
    }

    #[test]
    fn h265_classification() {
        assert_eq!(classify(Codec::H265, &[0x40, 0x01]), NalKind::Vps);
        assert_eq!(classify(Codec::H265, &[0x42, 0x01]), NalKind::Sps);
        assert_eq!(classify(Codec::H265, &[0x44, 0x01]), NalKind::Pps);
        assert_eq!(classify(Codec::H265, &[0x26, 0x01]), NalKind::KeySlice); // IDR_W_RADL
        assert_eq!(classify(Codec::H265, &[0x02, 0x01]), NalKind::Other); // TRAIL_R
    }
}
