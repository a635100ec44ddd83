//! AAC AudioSpecificConfig (ISO/IEC 14496-3 §1.6.2.1) and ADTS headers
//! (ISO/IEC 13818-7 §6.2), as carried by RTSP (mpeg4-generic) and GB28181 PS.

use bytes::Bytes;

use super::CodecError;
use super::bits::BitReader;

const SAMPLE_RATES: [u32; 13] = [
    96000, 88200, 64000, 48000, 44100, 32000, 24000, 22050, 16000, 12000, 11025, 8000, 7350,
];

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AudioSpecificConfig {
    pub object_type: u8,
    pub sample_rate: u32,
    pub channels: u8,
}

pub fn parse_audio_specific_config(data: &[u8]) -> Result<AudioSpecificConfig, CodecError> {
    const WHAT: &str = "AAC AudioSpecificConfig";
    let mut r = BitReader::new(data, WHAT);
    let mut object_type = r.read_bits(5)? as u8;
    if object_type == 31 {
        object_type = 32 + r.read_bits(6)? as u8;
    }
    let index = r.read_bits(4)? as usize;
    let sample_rate = if index == 15 {
        r.read_bits(24)? as u32
    } else {
        *SAMPLE_RATES.get(index).ok_or(CodecError::Invalid {
            what: WHAT,
            field: "samplingFrequencyIndex",
            value: index as u64,
        })?
    };
    let channels = r.read_bits(4)? as u8;
    if object_type == 0 || sample_rate == 0 {
        return Err(CodecError::Malformed {
            what: WHAT,
            message: "object type or sample rate is zero",
        });
    }
    Ok(AudioSpecificConfig {
        object_type,
        sample_rate,
        channels,
    })
}

/// One ADTS frame header.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AdtsHeader {
    pub object_type: u8,
    pub sampling_index: u8,
    pub channels: u8,
    /// Header length: 7, or 9 with CRC.
    pub header_len: usize,
    /// Whole frame length including the header.
    pub frame_len: usize,
}

impl AdtsHeader {
    pub fn sample_rate(&self) -> u32 {
        SAMPLE_RATES[usize::from(self.sampling_index)]
    }

    /// The two-byte AudioSpecificConfig equivalent to this header.
    pub fn audio_specific_config(&self) -> Bytes {
        let v: u16 = (u16::from(self.object_type) << 11)
            | (u16::from(self.sampling_index) << 7)
            | (u16::from(self.channels) << 3);
        Bytes::copy_from_slice(&v.to_be_bytes())
    }
}

pub fn parse_adts_header(data: &[u8]) -> Result<AdtsHeader, CodecError> {
    const WHAT: &str = "ADTS header";
    if data.len() < 7 {
        return Err(CodecError::Truncated {
            what: WHAT,
            bit_offset: data.len() * 8,
        });
    }
    if data[0] != 0xff || data[1] & 0xf6 != 0xf0 {
        return Err(CodecError::Malformed {
            what: WHAT,
            message: "no ADTS sync word",
        });
    }
    let protection_absent = data[1] & 1 == 1;
    let object_type = ((data[2] >> 6) & 3) + 1;
    let sampling_index = (data[2] >> 2) & 0xf;
    if usize::from(sampling_index) >= SAMPLE_RATES.len() {
        return Err(CodecError::Invalid {
            what: WHAT,
            field: "sampling_frequency_index",
            value: sampling_index.into(),
        });
    }
    let channels = ((data[2] & 1) << 2) | (data[3] >> 6);
    let frame_len =
        (usize::from(data[3] & 3) << 11) | (usize::from(data[4]) << 3) | usize::from(data[5] >> 5);
    let header_len = if protection_absent { 7 } else { 9 };
    if frame_len < header_len {
        return Err(CodecError::Invalid {
            what: WHAT,
            field: "aac_frame_length",
            value: frame_len as u64,
        });
    }
    Ok(AdtsHeader {
        object_type,
        sampling_index,
        channels,
        header_len,
        frame_len,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn asc_lc_44100_stereo() {
        let asc = parse_audio_specific_config(&[0x12, 0x10]).unwrap();
        assert_eq!(asc.object_type, 2);
        assert_eq!(asc.sample_rate, 44100);
        assert_eq!(asc.channels, 2);
    }

    #[test]
    fn adts_header_and_equivalent_asc() {
        // AAC-LC, 8 kHz (index 11), mono, frame length 0x100.
        let h = [0xff, 0xf1, 0x6c, 0x40, 0x20, 0x1f, 0xfc];
        let hdr = parse_adts_header(&h).unwrap();
        assert_eq!(hdr.object_type, 2);
        assert_eq!(hdr.sample_rate(), 8000);
        assert_eq!(hdr.channels, 1);
        assert_eq!(hdr.frame_len, 0x100);
        let asc = parse_audio_specific_config(&hdr.audio_specific_config()).unwrap();
        assert_eq!((asc.sample_rate, asc.channels), (8000, 1));
    }

    #[test]
    fn adts_rejects_garbage() {
        assert!(parse_adts_header(&[0u8; 7]).is_err());
        assert!(parse_adts_header(&[0xff, 0xf1]).is_err());
    }
}
