//! H.265 sequence parameter set (ITU-T H.265 §7.3.2.2) and the
//! HEVCDecoderConfigurationRecord (ISO/IEC 14496-15 §8.3.3.1).

use bytes::{BufMut, Bytes, BytesMut};

use super::CodecError;
use super::bits::{BitReader, rbsp_from_nal};

const WHAT: &str = "H.265 SPS";

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SpsInfo {
    /// general_profile_space .. general_level_idc: the 12 bytes of
    /// profile_tier_level(1, ..) that hvcC copies verbatim.
    pub general_profile_tier_level: [u8; 12],
    pub max_sub_layers_minus1: u8,
    pub temporal_id_nesting: bool,
    pub chroma_format_idc: u32,
    pub bit_depth_luma_minus8: u32,
    pub bit_depth_chroma_minus8: u32,
    pub width: u32,
    pub height: u32,
}

impl SpsInfo {
    pub fn general_profile_idc(&self) -> u8 {
        self.general_profile_tier_level[0] & 0x1f
    }
    pub fn general_level_idc(&self) -> u8 {
        self.general_profile_tier_level[11]
    }
}

/// Parses an SPS NAL unit (with its 2-byte NAL header).
pub fn parse_sps(nal: &[u8]) -> Result<SpsInfo, CodecError> {
    if nal.len() < 3 || (nal[0] >> 1) & 0x3f != 33 {
        return Err(CodecError::Malformed {
            what: WHAT,
            message: "not an SPS NAL unit",
        });
    }
    let rbsp = rbsp_from_nal(&nal[2..]);
    let mut r = BitReader::new(&rbsp, WHAT);
    let _vps_id = r.read_bits(4)?;
    let max_sub_layers_minus1 = r.read_bits(3)? as u8;
    if max_sub_layers_minus1 > 6 {
        return Err(CodecError::Invalid {
            what: WHAT,
            field: "sps_max_sub_layers_minus1",
            value: max_sub_layers_minus1.into(),
        });
    }
    let temporal_id_nesting = r.read_bit()?;
    let mut ptl = [0u8; 12];
    for b in &mut ptl {
        *b = r.read_bits(8)? as u8;
    }
    // Sub-layer flags (§7.3.3), then the sub-layer profile/level bytes they announce.
    let mut sub_profile = [false; 8];
    let mut sub_level = [false; 8];
    for i in 0..usize::from(max_sub_layers_minus1) {
        sub_profile[i] = r.read_bit()?;
        sub_level[i] = r.read_bit()?;
    }
    if max_sub_layers_minus1 > 0 {
        r.skip_bits(2 * (8 - usize::from(max_sub_layers_minus1)))?;
    }
    for i in 0..usize::from(max_sub_layers_minus1) {
        if sub_profile[i] {
            r.skip_bits(88)?;
        }
        if sub_level[i] {
            r.skip_bits(8)?;
        }
    }
    let _sps_id = r.read_ue()?;
    let chroma_format_idc = r.read_ue()?;
    if chroma_format_idc > 3 {
        return Err(CodecError::Invalid {
            what: WHAT,
            field: "chroma_format_idc",
            value: chroma_format_idc.into(),
        });
    }
    let mut separate_colour_plane = false;
    if chroma_format_idc == 3 {
        separate_colour_plane = r.read_bit()?;
    }
    let pic_width = u64::from(r.read_ue()?);
    let pic_height = u64::from(r.read_ue()?);
    let (mut l, mut rt, mut t, mut b) = (0u64, 0u64, 0u64, 0u64);
    if r.read_bit()? {
        l = r.read_ue()?.into();
        rt = r.read_ue()?.into();
        t = r.read_ue()?.into();
        b = r.read_ue()?.into();
    }
    let bit_depth_luma_minus8 = r.read_ue()?;
    let bit_depth_chroma_minus8 = r.read_ue()?;
    let (sub_w, sub_h) = if separate_colour_plane {
        (1, 1)
    } else {
        match chroma_format_idc {
            1 => (2, 2),
            2 => (2, 1),
            _ => (1, 1),
        }
    };
    let width = pic_width.checked_sub(sub_w * (l + rt));
    let height = pic_height.checked_sub(sub_h * (t + b));
    let (Some(width), Some(height)) = (width, height) else {
        return Err(CodecError::Malformed {
            what: WHAT,
            message: "conformance window larger than the picture",
        });
    };
    if width == 0 || height == 0 || width > 16888 || height > 16888 {
        return Err(CodecError::Invalid {
            what: WHAT,
            field: "picture size",
            value: width.max(height),
        });
    }
    Ok(SpsInfo {
        general_profile_tier_level: ptl,
        max_sub_layers_minus1,
        temporal_id_nesting,
        chroma_format_idc,
        bit_depth_luma_minus8,
        bit_depth_chroma_minus8,
        width: width as u32,
        height: height as u32,
    })
}

/// Builds an HEVCDecoderConfigurationRecord with 4-byte NAL lengths and one
/// array each for VPS, SPS and PPS.
pub fn hevc_decoder_configuration(vps: &[u8], sps: &[u8], pps: &[u8]) -> Result<Bytes, CodecError> {
    let info = parse_sps(sps)?;
    for ps in [vps, sps, pps] {
        if ps.len() > usize::from(u16::MAX) || ps.len() < 2 {
            return Err(CodecError::Malformed {
                what: "hvcC",
                message: "parameter set shorter than its NAL header or longer than 65535 bytes",
            });
        }
    }
    let mut out = BytesMut::with_capacity(23 + 15 + vps.len() + sps.len() + pps.len());
    out.put_u8(1);
    out.put_slice(&info.general_profile_tier_level);
    out.put_u16(0xf000); // min_spatial_segmentation_idc = 0
    out.put_u8(0xfc); // parallelismType = 0 (unknown)
    out.put_u8(0xfc | (info.chroma_format_idc as u8 & 3));
    out.put_u8(0xf8 | (info.bit_depth_luma_minus8 as u8 & 7));
    out.put_u8(0xf8 | (info.bit_depth_chroma_minus8 as u8 & 7));
    out.put_u16(0); // avgFrameRate unknown
    out.put_u8(
        ((info.max_sub_layers_minus1 + 1) << 3) | (u8::from(info.temporal_id_nesting) << 2) | 3,
    );
    out.put_u8(3);
    for (nal_type, ps) in [(32u8, vps), (33, sps), (34, pps)] {
        out.put_u8(0x80 | nal_type); // array_completeness = 1
        out.put_u16(1);
        out.put_u16(ps.len() as u16);
        out.put_slice(ps);
    }
    Ok(out.freeze())
}

/// Parameter sets read back from an hvcC record.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct HevcConfig {
    pub length_size: u8,
    pub vps: Vec<Bytes>,
    pub sps: Vec<Bytes>,
    pub pps: Vec<Bytes>,
}

pub fn parse_hevc_decoder_configuration(record: &Bytes) -> Result<HevcConfig, CodecError> {
    let err = |message| CodecError::Malformed {
        what: "hvcC",
        message,
    };
    let mut pos = 0usize;
    let take = |pos: &mut usize, n: usize| -> Result<Bytes, CodecError> {
        let end = pos
            .checked_add(n)
            .filter(|&e| e <= record.len())
            .ok_or(err("truncated"))?;
        let out = record.slice(*pos..end);
        *pos = end;
        Ok(out)
    };
    let head = take(&mut pos, 23)?;
    if head[0] != 1 {
        return Err(err("configurationVersion is not 1"));
    }
    let mut cfg = HevcConfig {
        length_size: (head[21] & 3) + 1,
        ..Default::default()
    };
    for _ in 0..head[22] {
        let a = take(&mut pos, 3)?;
        let nal_type = a[0] & 0x3f;
        for _ in 0..u16::from_be_bytes([a[1], a[2]]) {
            let len = take(&mut pos, 2)?;
            let nal = take(&mut pos, usize::from(u16::from_be_bytes([len[0], len[1]])))?;
            match nal_type {
                32 => cfg.vps.push(nal),
                33 => cfg.sps.push(nal),
                34 => cfg.pps.push(nal),
                _ => {}
            }
        }
    }
    Ok(cfg)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub use crate::codec::samples::{H265_PPS as PPS, H265_SPS as SPS, H265_VPS as VPS};

    #[test]
    fn parses_main_profile_sps() {
        let info = parse_sps(SPS).unwrap();
        assert_eq!((info.width, info.height), (640, 360));
        assert_eq!(info.general_profile_idc(), 1);
        assert_eq!(info.general_level_idc(), 63);
        assert_eq!(info.chroma_format_idc, 1);
    }

    #[test]
    fn hvcc_round_trip() {
        let rec = hevc_decoder_configuration(VPS, SPS, PPS).unwrap();
        assert_eq!(rec[1], 0x01); // profile space 0, tier 0, Main
        let cfg = parse_hevc_decoder_configuration(&rec).unwrap();
        assert_eq!(cfg.length_size, 4);
        assert_eq!(&cfg.vps[0][..], VPS);
        assert_eq!(&cfg.sps[0][..], SPS);
        assert_eq!(&cfg.pps[0][..], PPS);
    }

    #[test]
    fn every_prefix_of_sps_is_handled() {
        for n in 0..SPS.len() {
            let _ = parse_sps(&SPS[..n]);
        }
        assert!(parse_sps(&SPS[..10]).is_err());
    }
}
