//! H.264 sequence parameter set (ITU-T H.264 §7.3.2.1.1) and the
//! AVCDecoderConfigurationRecord (ISO/IEC 14496-15 §5.3.3.1).

use bytes::{BufMut, Bytes, BytesMut};

use super::CodecError;
use super::bits::{BitReader, rbsp_from_nal};

const WHAT: &str = "H.264 SPS";

/// The SPS fields camgate uses.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SpsInfo {
    pub profile_idc: u8,
    pub constraint_flags: u8,
    pub level_idc: u8,
    pub chroma_format_idc: u32,
    pub bit_depth_luma_minus8: u32,
    pub bit_depth_chroma_minus8: u32,
    pub width: u32,
    pub height: u32,
}

fn has_chroma_info(profile_idc: u8) -> bool {
    matches!(
        profile_idc,
        100 | 110 | 122 | 244 | 44 | 83 | 86 | 118 | 128 | 138 | 139 | 134 | 135
    )
}

fn skip_scaling_list(r: &mut BitReader<'_>, size: usize) -> Result<(), CodecError> {
    let mut last = 8i32;
    let mut next = 8i32;
    for _ in 0..size {
        if next != 0 {
            // delta_scale is limited to -128..=127 (§7.4.2.1.1.1).
            let delta = r.read_se()?;
            if !(-128..=127).contains(&delta) {
                return Err(CodecError::Invalid {
                    what: WHAT,
                    field: "delta_scale",
                    value: i64::from(delta).unsigned_abs(),
                });
            }
            next = (last + delta + 256).rem_euclid(256);
        }
        if next != 0 {
            last = next;
        }
    }
    Ok(())
}

/// Parses an SPS NAL unit (with its 1-byte NAL header).
pub fn parse_sps(nal: &[u8]) -> Result<SpsInfo, CodecError> {
    if nal.first().map(|b| b & 0x1f) != Some(7) {
        return Err(CodecError::Malformed {
            what: WHAT,
            message: "not an SPS NAL unit",
        });
    }
    let rbsp = rbsp_from_nal(&nal[1..]);
    let mut r = BitReader::new(&rbsp, WHAT);
    let profile_idc = r.read_bits(8)? as u8;
    let constraint_flags = r.read_bits(8)? as u8;
    let level_idc = r.read_bits(8)? as u8;
    let _sps_id = r.read_ue()?;
    let mut chroma_format_idc = 1;
    let mut separate_colour_plane = false;
    let mut bit_depth_luma_minus8 = 0;
    let mut bit_depth_chroma_minus8 = 0;
    if has_chroma_info(profile_idc) {
        chroma_format_idc = r.read_ue()?;
        if chroma_format_idc > 3 {
            return Err(CodecError::Invalid {
                what: WHAT,
                field: "chroma_format_idc",
                value: chroma_format_idc.into(),
            });
        }
        if chroma_format_idc == 3 {
            separate_colour_plane = r.read_bit()?;
        }
        bit_depth_luma_minus8 = r.read_ue()?;
        bit_depth_chroma_minus8 = r.read_ue()?;
        let _qpprime_y_zero_transform_bypass = r.read_bit()?;
        if r.read_bit()? {
            let lists = if chroma_format_idc == 3 { 12 } else { 8 };
            for i in 0..lists {
                if r.read_bit()? {
                    skip_scaling_list(&mut r, if i < 6 { 16 } else { 64 })?;
                }
            }
        }
    }
    let _log2_max_frame_num_minus4 = r.read_ue()?;
    let poc_type = r.read_ue()?;
    match poc_type {
        0 => {
            let _ = r.read_ue()?;
        }
        1 => {
            let _delta_pic_order_always_zero = r.read_bit()?;
            let _ = r.read_se()?;
            let _ = r.read_se()?;
            let cycle = r.read_ue()?;
            if cycle > 255 {
                return Err(CodecError::Invalid {
                    what: WHAT,
                    field: "num_ref_frames_in_pic_order_cnt_cycle",
                    value: cycle.into(),
                });
            }
            for _ in 0..cycle {
                let _ = r.read_se()?;
            }
        }
        2 => {}
        other => {
            return Err(CodecError::Invalid {
                what: WHAT,
                field: "pic_order_cnt_type",
                value: other.into(),
            });
        }
    }
    let _max_num_ref_frames = r.read_ue()?;
    let _gaps = r.read_bit()?;
    let width_mbs = u64::from(r.read_ue()?) + 1;
    let height_map_units = u64::from(r.read_ue()?) + 1;
    let frame_mbs_only = r.read_bit()?;
    if !frame_mbs_only {
        let _mb_adaptive = r.read_bit()?;
    }
    let _direct_8x8 = r.read_bit()?;
    let (mut crop_l, mut crop_r, mut crop_t, mut crop_b) = (0u64, 0u64, 0u64, 0u64);
    if r.read_bit()? {
        crop_l = r.read_ue()?.into();
        crop_r = r.read_ue()?.into();
        crop_t = r.read_ue()?.into();
        crop_b = r.read_ue()?.into();
    }
    let field_factor = if frame_mbs_only { 1 } else { 2 };
    let (crop_unit_x, crop_unit_y) = if chroma_format_idc == 0 || separate_colour_plane {
        (1, field_factor)
    } else {
        let (sub_w, sub_h) = match chroma_format_idc {
            1 => (2, 2),
            2 => (2, 1),
            _ => (1, 1),
        };
        (sub_w, sub_h * field_factor)
    };
    let width = (width_mbs * 16).checked_sub((crop_l + crop_r) * crop_unit_x);
    let height =
        (field_factor * height_map_units * 16).checked_sub((crop_t + crop_b) * crop_unit_y);
    let (Some(width), Some(height)) = (width, height) else {
        return Err(CodecError::Malformed {
            what: WHAT,
            message: "cropping larger than the picture",
        });
    };
    if width == 0 || height == 0 || width > 16384 || height > 16384 {
        return Err(CodecError::Invalid {
            what: WHAT,
            field: "picture size",
            value: width.max(height),
        });
    }
    Ok(SpsInfo {
        profile_idc,
        constraint_flags,
        level_idc,
        chroma_format_idc,
        bit_depth_luma_minus8,
        bit_depth_chroma_minus8,
        width: width as u32,
        height: height as u32,
    })
}

/// Builds an AVCDecoderConfigurationRecord with 4-byte NAL lengths.
pub fn avc_decoder_configuration(sps: &[u8], pps: &[u8]) -> Result<Bytes, CodecError> {
    let info = parse_sps(sps)?;
    if sps.len() > usize::from(u16::MAX) || pps.len() > usize::from(u16::MAX) {
        return Err(CodecError::Malformed {
            what: "avcC",
            message: "parameter set longer than 65535 bytes",
        });
    }
    let mut out = BytesMut::with_capacity(16 + sps.len() + pps.len());
    out.put_u8(1);
    out.put_u8(info.profile_idc);
    out.put_u8(info.constraint_flags);
    out.put_u8(info.level_idc);
    out.put_u8(0xfc | 3); // lengthSizeMinusOne = 3
    out.put_u8(0xe0 | 1);
    out.put_u16(sps.len() as u16);
    out.put_slice(sps);
    out.put_u8(1);
    out.put_u16(pps.len() as u16);
    out.put_slice(pps);
    if matches!(info.profile_idc, 100 | 110 | 122 | 144) {
        out.put_u8(0xfc | (info.chroma_format_idc as u8 & 3));
        out.put_u8(0xf8 | (info.bit_depth_luma_minus8 as u8 & 7));
        out.put_u8(0xf8 | (info.bit_depth_chroma_minus8 as u8 & 7));
        out.put_u8(0);
    }
    Ok(out.freeze())
}

/// Parameter sets read back from an avcC record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AvcConfig {
    pub length_size: u8,
    pub sps: Vec<Bytes>,
    pub pps: Vec<Bytes>,
}

pub fn parse_avc_decoder_configuration(record: &Bytes) -> Result<AvcConfig, CodecError> {
    let err = |message| CodecError::Malformed {
        what: "avcC",
        message,
    };
    let mut pos = 0usize;
    let take = |pos: &mut usize, n: usize| -> Result<Bytes, CodecError> {
        let end = pos.checked_add(n).filter(|&e| e <= record.len());
        let end = end.ok_or(err("truncated"))?;
        let out = record.slice(*pos..end);
        *pos = end;
        Ok(out)
    };
    let head = take(&mut pos, 6)?;
    if head[0] != 1 {
        return Err(err("configurationVersion is not 1"));
    }
    let length_size = (head[4] & 3) + 1;
    let mut sps = Vec::new();
    for _ in 0..(head[5] & 0x1f) {
        let len = take(&mut pos, 2)?;
        sps.push(take(
            &mut pos,
            usize::from(u16::from_be_bytes([len[0], len[1]])),
        )?);
    }
    let n_pps = take(&mut pos, 1)?[0];
    let mut pps = Vec::new();
    for _ in 0..n_pps {
        let len = take(&mut pos, 2)?;
        pps.push(take(
            &mut pos,
            usize::from(u16::from_be_bytes([len[0], len[1]])),
        )?);
    }
    Ok(AvcConfig {
        length_size,
        sps,
        pps,
    })
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub use crate::codec::samples::{H264_PPS as PPS, H264_SPS_640X360 as SPS_640X360};

    #[test]
    fn parses_high_profile_sps_with_cropping() {
        let info = parse_sps(SPS_640X360).unwrap();
        assert_eq!((info.width, info.height), (640, 360));
        assert_eq!(info.profile_idc, 100);
        assert_eq!(info.level_idc, 30);
    }

    #[test]
    fn avcc_round_trip() {
        let rec = avc_decoder_configuration(SPS_640X360, PPS).unwrap();
        let cfg = parse_avc_decoder_configuration(&rec).unwrap();
        assert_eq!(cfg.length_size, 4);
        assert_eq!(&cfg.sps[0][..], SPS_640X360);
        assert_eq!(&cfg.pps[0][..], PPS);
    }

    /// Found by `cargo fuzz run codec_parsers`: a scaling list delta far out of
    /// range overflowed the arithmetic.
    #[test]
    fn out_of_range_scaling_delta_is_an_error() {
        let input = [
            0x27, 0x87, 0x3f, 0x09, 0x00, 0x00, 0x00, 0xff, 0xff, 0xff, 0xff, 0x3f, 0x04, 0x00,
            0x31, 0x80, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0x31, 0x80, 0x00, 0x00, 0x00,
            0xff, 0xff, 0xff, 0xf8, 0x00, 0x5d, 0x00, 0x0a, 0x00, 0x00, 0x5d, 0x00, 0x0a,
        ];
        assert!(parse_sps(&input).is_err());
    }

    #[test]
    fn truncated_sps_is_an_error_not_a_panic() {
        for n in 0..SPS_640X360.len() {
            let _ = parse_sps(&SPS_640X360[..n]);
        }
        assert!(parse_sps(&SPS_640X360[..6]).is_err());
    }
}
