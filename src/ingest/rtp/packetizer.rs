//! Splitting a frame (for GB28181, one PS pack per video frame) into RTP
//! packets, for the device simulator and cascade to a superior platform.
//!
//! All packets of a frame share its timestamp and the marker is set on the
//! last one (RFC 3551 §4.1 video convention; GB/T 28181-2022 §4.3.6).
//! Sequence numbers continue across frames and wrap (RFC 3550 §5.1).

use bytes::{BufMut, Bytes, BytesMut};

use super::packet::{FIXED_HEADER_LEN, MAX_PACKET_LEN, RtpError, RtpHeader};

/// Settings of a [`Packetizer`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PacketizerConfig {
    pub ssrc: u32,
    /// 96 for PS in GB28181.
    pub payload_type: u8,
    /// RFC 3550 §5.1 recommends a random start.
    pub initial_sequence: u16,
    /// Largest payload per packet; 1400 is what cameras use (ZLM
    /// `videoMtuSize`).
    pub max_payload: usize,
}

impl Default for PacketizerConfig {
    fn default() -> Self {
        Self {
            ssrc: 0,
            payload_type: 96,
            initial_sequence: 0,
            max_payload: 1400,
        }
    }
}

/// Frame → RTP packets.
#[derive(Debug, Clone)]
pub struct Packetizer {
    cfg: PacketizerConfig,
    next_sequence: u16,
}

impl Packetizer {
    pub fn new(cfg: PacketizerConfig) -> Result<Self, RtpError> {
        if cfg.payload_type > 0x7f {
            return Err(RtpError::PayloadType(cfg.payload_type));
        }
        let limit = MAX_PACKET_LEN - FIXED_HEADER_LEN;
        if cfg.max_payload == 0 || cfg.max_payload > limit {
            return Err(RtpError::MaxPayload {
                max_payload: cfg.max_payload,
                limit,
            });
        }
        Ok(Self {
            next_sequence: cfg.initial_sequence,
            cfg,
        })
    }

    /// The sequence number of the next packet.
    pub fn next_sequence(&self) -> u16 {
        self.next_sequence
    }

    /// Appends the packets of one frame to `out` (none for an empty frame).
    pub fn packetize(&mut self, frame: &[u8], timestamp: u32, out: &mut Vec<Bytes>) {
        self.emit(frame, timestamp, false, out);
    }

    /// As [`packetize`](Self::packetize), each packet already prefixed with
    /// its RFC 4571 §2 length for TCP.
    pub fn packetize_rfc4571(&mut self, frame: &[u8], timestamp: u32, out: &mut Vec<Bytes>) {
        self.emit(frame, timestamp, true, out);
    }

    fn emit(&mut self, frame: &[u8], timestamp: u32, framed: bool, out: &mut Vec<Bytes>) {
        let count = frame.len().div_ceil(self.cfg.max_payload);
        out.reserve(count);
        for (i, chunk) in frame.chunks(self.cfg.max_payload).enumerate() {
            let len = FIXED_HEADER_LEN + chunk.len();
            let mut b = BytesMut::with_capacity(len + 2);
            if framed {
                // max_payload is checked in `new`, so len <= 65535.
                b.put_u16(len as u16);
            }
            RtpHeader {
                marker: i + 1 == count,
                payload_type: self.cfg.payload_type,
                sequence: self.next_sequence,
                timestamp,
                ssrc: self.cfg.ssrc,
            }
            .write(&mut b);
            b.put_slice(chunk);
            out.push(b.freeze());
            self.next_sequence = self.next_sequence.wrapping_add(1);
        }
    }
}
