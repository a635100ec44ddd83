//! Low-Latency HLS output core, sans-IO: fMP4 (CMAF) init and media segments
//! ([`fmp4`]), a segmenter cutting segments and partial segments from frames
//! ([`Segmenter`]), and the media playlist writer ([`playlist`]).
//!
//! Frames go in through [`Segmenter::push`]; everything comes out as shared
//! [`bytes::Bytes`] and playlist strings, kept in a bounded sliding window in
//! memory. The HTTP layer (routes, blocking reload, caching headers) sits on
//! top: [`Segmenter::blocking_status`] answers `_HLS_msn`/`_HLS_part`.
//!
//! References: RFC 8216bis (draft-pantos-hls-rfc8216bis-15) and Apple's
//! "Enabling Low-Latency HTTP Live Streaming" / HLS authoring spec; ISO/IEC
//! 14496-12, 14496-15, 23000-19 for the container.

pub mod fmp4;
pub mod playlist;
mod request;
mod segmenter;
#[cfg(test)]
mod tests;

pub mod output;
pub use output::HlsOutputInfo;
pub use playlist::{BlockingReload, PlaylistOptions};
pub use request::{HlsFile, HlsRequestError};
pub use segmenter::{AudioDropped, HlsConfig, HlsError, PartInfo, SegmentInfo, Segmenter};

/// URI of the initialization segment in playlists.
pub const INIT_URI: &str = "init.mp4";

/// URI of media segment `msn`, relative to the playlist.
pub fn segment_uri(msn: u64) -> String {
    format!("seg{msn}.m4s")
}

/// URI of partial segment `part` of media segment `msn`, relative to the playlist.
pub fn part_uri(msn: u64, part: u32) -> String {
    format!("part{msn}.{part}.m4s")
}
