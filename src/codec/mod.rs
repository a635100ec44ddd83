//! Codec helpers shared by every ingest and egress path: NAL unit handling for
//! H.264/H.265, decoder configuration records (avcC/hvcC), AAC configuration.
//!
//! Everything here is pure (no IO, no clocks) and bounded: malformed input gives
//! a [`CodecError`], never a panic.

pub mod aac;
pub mod bits;
pub mod es;
pub mod h264;
pub mod h265;
pub mod nal;
pub mod samples;

use std::fmt;

/// The codecs camgate carries end to end.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Codec {
    H264,
    H265,
    Aac,
    /// G.711 A-law (PCMA).
    G711A,
    /// G.711 mu-law (PCMU).
    G711U,
}

impl Codec {
    pub fn is_video(self) -> bool {
        matches!(self, Codec::H264 | Codec::H265)
    }

    pub fn name(self) -> &'static str {
        match self {
            Codec::H264 => "h264",
            Codec::H265 => "h265",
            Codec::Aac => "aac",
            Codec::G711A => "g711a",
            Codec::G711U => "g711u",
        }
    }
}

impl fmt::Display for Codec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Why a codec-level structure could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CodecError {
    #[error("{what}: truncated at bit {bit_offset}")]
    Truncated {
        what: &'static str,
        bit_offset: usize,
    },
    #[error("{what}: invalid value {value} for {field}")]
    Invalid {
        what: &'static str,
        field: &'static str,
        value: u64,
    },
    #[error("{what}: {message}")]
    Malformed {
        what: &'static str,
        message: &'static str,
    },
}
