//! The RTP packet: fixed header, CSRC list, header extension and padding
//! (RFC 3550 §5.1 and §5.3.1).
//!
//! ```text
//!  0                   1                   2                   3
//!  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |V=2|P|X|  CC   |M|     PT      |       sequence number         |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |                           timestamp                           |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |           synchronization source (SSRC) identifier            |
//! +=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+
//! |            contributing source (CSRC) identifiers             |
//! |                             ....                              |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |      defined by profile       |           length              |  (X = 1)
//! |                        header extension                       |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |                  payload ...  | padding ... | padding count   |  (P = 1)
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! ```
//!
//! Cameras do set X, CC and P (srs-gb28181 #52: a PS demuxer fed the
//! extension bytes as payload reports "unknown ps data"), so all three are
//! honoured here and the payload is exactly the bytes between them.

use bytes::{BufMut, Bytes, BytesMut};

/// RTP version carried in every packet (RFC 3550 §5.1).
pub const RTP_VERSION: u8 = 2;
/// Length of the fixed header (RFC 3550 §5.1).
pub const FIXED_HEADER_LEN: usize = 12;
/// Most CSRC identifiers a packet can carry (4-bit CC field, RFC 3550 §5.1).
pub const MAX_CSRC: usize = 15;
/// Largest RTP packet that fits an RFC 4571 frame or a UDP datagram.
pub const MAX_PACKET_LEN: usize = 65535;

/// Why bytes are not an RTP packet, or a packet cannot be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RtpError {
    #[error(
        "RTP packet of {len} bytes is shorter than the {FIXED_HEADER_LEN}-byte fixed header (RFC 3550 §5.1)"
    )]
    TooShort { len: usize },
    #[error("RTP version {version} in byte 0, expected 2 (RFC 3550 §5.1)")]
    Version { version: u8 },
    #[error(
        "RTP CSRC list of {count} entries ends at byte {end}, past the end of the {len}-byte packet (RFC 3550 §5.1)"
    )]
    CsrcOverrun { count: u8, end: usize, len: usize },
    #[error(
        "RTP header extension at byte {offset} declares {declared} bytes and ends at byte {end}, past the {available} bytes before padding (RFC 3550 §5.3.1)"
    )]
    ExtensionOverrun {
        offset: usize,
        declared: usize,
        end: usize,
        available: usize,
    },
    #[error(
        "RTP padding count {count} in byte {offset} is invalid: {available} bytes follow the header (RFC 3550 §5.1)"
    )]
    Padding {
        count: u8,
        offset: usize,
        available: usize,
    },
    #[error("RTP packet of {len} bytes is over the {max}-byte limit")]
    TooLong { len: usize, max: usize },
    #[error("RTP payload type {0} does not fit in 7 bits (RFC 3550 §5.1)")]
    PayloadType(u8),
    #[error("RTP packetizer payload size {max_payload} outside 1..={limit}")]
    MaxPayload { max_payload: usize, limit: usize },
}

/// The fields of the fixed header that a sender chooses (RFC 3550 §5.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct RtpHeader {
    pub marker: bool,
    /// 7 bits; [`RtpHeader::write`] masks off the eighth.
    pub payload_type: u8,
    pub sequence: u16,
    pub timestamp: u32,
    pub ssrc: u32,
}

impl RtpHeader {
    /// Writes the 12-byte fixed header: version 2, no padding, no extension,
    /// no CSRC.
    pub fn write(&self, out: &mut impl BufMut) {
        out.put_u8(RTP_VERSION << 6);
        out.put_u8(u8::from(self.marker) << 7 | (self.payload_type & 0x7f));
        out.put_u16(self.sequence);
        out.put_u32(self.timestamp);
        out.put_u32(self.ssrc);
    }

    /// The header followed by `payload`, as one packet.
    pub fn to_packet(&self, payload: &[u8]) -> Result<Bytes, RtpError> {
        let len = FIXED_HEADER_LEN + payload.len();
        if len > MAX_PACKET_LEN {
            return Err(RtpError::TooLong {
                len,
                max: MAX_PACKET_LEN,
            });
        }
        let mut b = BytesMut::with_capacity(len);
        self.write(&mut b);
        b.put_slice(payload);
        Ok(b.freeze())
    }
}

/// A header extension (RFC 3550 §5.3.1): skipped when locating the payload,
/// kept for whoever understands the profile.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RtpExtension {
    /// The 16 "defined by profile" bits (0xBEDE for RFC 8285 one-byte
    /// headers).
    pub profile: u16,
    /// The extension body (the `length` field times 4 bytes), without its
    /// 4-byte header.
    pub data: Bytes,
}

/// One parsed RTP packet. Owns its bytes: the payload, the extension body and
/// [`RtpPacket::raw`] are slices of the `Bytes` given to
/// [`RtpPacket::parse`], never copies.
#[derive(Clone, PartialEq, Eq)]
pub struct RtpPacket {
    header: RtpHeader,
    csrc_count: u8,
    padding: u8,
    extension: Option<RtpExtension>,
    payload: Bytes,
    raw: Bytes,
}

fn be16(b: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([b[at], b[at + 1]])
}

fn be32(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

impl RtpPacket {
    /// Parses one RTP packet (a UDP datagram, or the body of an RFC 4571
    /// frame). All lengths are checked before any slicing.
    pub fn parse(raw: Bytes) -> Result<Self, RtpError> {
        let len = raw.len();
        if len < FIXED_HEADER_LEN {
            return Err(RtpError::TooShort { len });
        }
        if len > MAX_PACKET_LEN {
            return Err(RtpError::TooLong {
                len,
                max: MAX_PACKET_LEN,
            });
        }
        let b = &raw[..];
        let version = b[0] >> 6;
        if version != RTP_VERSION {
            return Err(RtpError::Version { version });
        }
        let has_padding = b[0] & 0x20 != 0;
        let has_extension = b[0] & 0x10 != 0;
        let csrc_count = b[0] & 0x0f;
        let header = RtpHeader {
            marker: b[1] & 0x80 != 0,
            payload_type: b[1] & 0x7f,
            sequence: be16(b, 2),
            timestamp: be32(b, 4),
            ssrc: be32(b, 8),
        };
        let csrc_end = FIXED_HEADER_LEN + 4 * usize::from(csrc_count);
        if csrc_end > len {
            return Err(RtpError::CsrcOverrun {
                count: csrc_count,
                end: csrc_end,
                len,
            });
        }
        // Padding: the last byte counts the padding bytes, itself included,
        // so 0 is invalid (RFC 3550 §5.1, "P").
        let padding = if has_padding {
            let count = b[len - 1];
            let available = len - csrc_end;
            if count == 0 || usize::from(count) > available {
                return Err(RtpError::Padding {
                    count,
                    offset: len - 1,
                    available,
                });
            }
            count
        } else {
            0
        };
        let end = len - usize::from(padding);
        let (extension, payload_start) = if has_extension {
            let body_start = csrc_end + 4;
            if body_start > end {
                return Err(RtpError::ExtensionOverrun {
                    offset: csrc_end,
                    declared: 0,
                    end: body_start,
                    available: end,
                });
            }
            let profile = be16(b, csrc_end);
            let declared = 4 * usize::from(be16(b, csrc_end + 2));
            let body_end = body_start + declared;
            if body_end > end {
                return Err(RtpError::ExtensionOverrun {
                    offset: csrc_end,
                    declared,
                    end: body_end,
                    available: end,
                });
            }
            let ext = RtpExtension {
                profile,
                data: raw.slice(body_start..body_end),
            };
            (Some(ext), body_end)
        } else {
            (None, csrc_end)
        };
        Ok(Self {
            header,
            csrc_count,
            padding,
            extension,
            payload: raw.slice(payload_start..end),
            raw,
        })
    }

    /// The fixed-header fields.
    pub fn header(&self) -> RtpHeader {
        self.header
    }

    pub fn marker(&self) -> bool {
        self.header.marker
    }

    pub fn payload_type(&self) -> u8 {
        self.header.payload_type
    }

    pub fn sequence(&self) -> u16 {
        self.header.sequence
    }

    pub fn timestamp(&self) -> u32 {
        self.header.timestamp
    }

    pub fn ssrc(&self) -> u32 {
        self.header.ssrc
    }

    /// The CSRC identifiers (at most [`MAX_CSRC`]).
    pub fn csrcs(&self) -> impl ExactSizeIterator<Item = u32> + '_ {
        (0..usize::from(self.csrc_count)).map(|i| be32(&self.raw, FIXED_HEADER_LEN + 4 * i))
    }

    pub fn extension(&self) -> Option<&RtpExtension> {
        self.extension.as_ref()
    }

    /// Padding bytes removed from the end, the count byte included.
    pub fn padding_len(&self) -> usize {
        usize::from(self.padding)
    }

    /// The payload: between the header (CSRC list and extension included)
    /// and the padding.
    pub fn payload(&self) -> &Bytes {
        &self.payload
    }

    pub fn into_payload(self) -> Bytes {
        self.payload
    }

    /// The whole packet as received (for relaying it unchanged).
    pub fn raw(&self) -> &Bytes {
        &self.raw
    }
}

impl std::fmt::Debug for RtpPacket {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RtpPacket")
            .field("ssrc", &format_args!("{:#010x}", self.header.ssrc))
            .field("pt", &self.header.payload_type)
            .field("seq", &self.header.sequence)
            .field("ts", &self.header.timestamp)
            .field("marker", &self.header.marker)
            .field("csrcs", &self.csrc_count)
            .field("extension", &self.extension.as_ref().map(|e| e.profile))
            .field("padding", &self.padding)
            .field("payload_len", &self.payload.len())
            .finish()
    }
}
