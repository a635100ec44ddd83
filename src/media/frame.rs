//! Frames and track descriptions: what ingest hands to the hub.

use std::sync::Arc;

use bytes::Bytes;

use crate::codec::{Codec, CodecError, aac, h264, h265};

/// Parameter sets of a video track, as NAL units without start codes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VideoTrack {
    pub codec: Codec,
    pub width: u32,
    pub height: u32,
    /// H.265 only.
    pub vps: Option<Bytes>,
    pub sps: Bytes,
    pub pps: Bytes,
}

impl VideoTrack {
    /// Builds an H.264 track description, reading the picture size from the SPS.
    pub fn h264(sps: Bytes, pps: Bytes) -> Result<Self, CodecError> {
        let info = h264::parse_sps(&sps)?;
        Ok(Self {
            codec: Codec::H264,
            width: info.width,
            height: info.height,
            vps: None,
            sps,
            pps,
        })
    }

    /// Builds an H.265 track description, reading the picture size from the SPS.
    pub fn h265(vps: Bytes, sps: Bytes, pps: Bytes) -> Result<Self, CodecError> {
        let info = h265::parse_sps(&sps)?;
        Ok(Self {
            codec: Codec::H265,
            width: info.width,
            height: info.height,
            vps: Some(vps),
            sps,
            pps,
        })
    }

    /// The ISO/IEC 14496-15 decoder configuration record (avcC or hvcC).
    pub fn decoder_configuration(&self) -> Result<Bytes, CodecError> {
        match (self.codec, &self.vps) {
            (Codec::H265, Some(vps)) => h265::hevc_decoder_configuration(vps, &self.sps, &self.pps),
            (Codec::H265, None) => Err(CodecError::Malformed {
                what: "hvcC",
                message: "H.265 track without a VPS",
            }),
            _ => h264::avc_decoder_configuration(&self.sps, &self.pps),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AudioTrack {
    pub codec: Codec,
    pub sample_rate: u32,
    pub channels: u8,
    /// AAC AudioSpecificConfig; `None` for G.711.
    pub config: Option<Bytes>,
}

impl AudioTrack {
    pub fn aac(config: Bytes) -> Result<Self, CodecError> {
        let asc = aac::parse_audio_specific_config(&config)?;
        Ok(Self {
            codec: Codec::Aac,
            sample_rate: asc.sample_rate,
            channels: asc.channels.max(1),
            config: Some(config),
        })
    }

    pub fn g711(codec: Codec, sample_rate: u32, channels: u8) -> Self {
        Self {
            codec,
            sample_rate,
            channels,
            config: None,
        }
    }
}

/// Description of one elementary stream. Frames point at it through an `Arc`, so
/// a muxer notices a change of parameters by pointer comparison.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TrackInfo {
    Video(VideoTrack),
    Audio(AudioTrack),
}

impl TrackInfo {
    pub fn codec(&self) -> Codec {
        match self {
            TrackInfo::Video(v) => v.codec,
            TrackInfo::Audio(a) => a.codec,
        }
    }

    /// Units of [`Frame::pts`]/[`Frame::dts`] per second: 90 kHz for video
    /// (RFC 6184/7798), the sample rate for audio.
    pub fn timescale(&self) -> u32 {
        match self {
            TrackInfo::Video(_) => 90_000,
            TrackInfo::Audio(a) => a.sample_rate.max(1),
        }
    }

    pub fn is_video(&self) -> bool {
        matches!(self, TrackInfo::Video(_))
    }
}

/// The payload of a frame.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FrameData {
    /// One video access unit as NAL units without start codes or length
    /// prefixes; each is a slice of the buffer it arrived in.
    Nals(Vec<Bytes>),
    /// One audio frame: raw AAC (no ADTS) or G.711 samples.
    Audio(Bytes),
}

/// One access unit, shared by every consumer through `Arc<Frame>`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Frame {
    pub track: Arc<TrackInfo>,
    /// Presentation time in units of `track.timescale()`.
    pub pts: i64,
    /// Decode time in units of `track.timescale()`; never after `pts`.
    pub dts: i64,
    /// A random access point: an IDR/IRAP video frame, or any audio frame.
    pub keyframe: bool,
    pub data: FrameData,
    /// When the frame's last byte was read off the network, for the
    /// gateway-added latency measurement; `None` where unknown.
    pub received: Option<std::time::Instant>,
}

impl Frame {
    pub fn codec(&self) -> Codec {
        self.track.codec()
    }

    pub fn is_video(&self) -> bool {
        self.track.is_video()
    }

    /// Payload bytes (without framing).
    pub fn payload_len(&self) -> usize {
        match &self.data {
            FrameData::Nals(n) => n.iter().map(Bytes::len).sum(),
            FrameData::Audio(b) => b.len(),
        }
    }

    /// Decode time in milliseconds.
    pub fn dts_ms(&self) -> i64 {
        to_ms(self.dts, self.track.timescale())
    }

    /// Presentation time in milliseconds.
    pub fn pts_ms(&self) -> i64 {
        to_ms(self.pts, self.track.timescale())
    }
}

/// Converts `value` in units of `timescale` per second to milliseconds, rounding
/// toward negative infinity.
pub fn to_ms(value: i64, timescale: u32) -> i64 {
    let ts = i128::from(timescale.max(1));
    (i128::from(value) * 1000).div_euclid(ts) as i64
}

/// Converts milliseconds to units of `timescale` per second.
pub fn from_ms(ms: i64, timescale: u32) -> i64 {
    (i128::from(ms) * i128::from(timescale) / 1000) as i64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ms_conversion_rounds_down() {
        assert_eq!(to_ms(90_000, 90_000), 1000);
        assert_eq!(to_ms(3600, 90_000), 40);
        assert_eq!(to_ms(-1, 90_000), -1);
        assert_eq!(to_ms(160, 8000), 20);
        assert_eq!(from_ms(40, 90_000), 3600);
    }
}
