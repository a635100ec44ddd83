//! Where access units end in a packet stream, for "no frame holds".
//!
//! RFC 3550 §5.1 leaves the marker bit to the profile; for video (RFC 3551
//! §4.1, and GB/T 28181 for PS) it marks the last packet of a frame, and all
//! packets of a frame share a timestamp (GB/T 28181-2022 §4.3.6). The marker
//! is the earliest signal (no waiting for the next frame's first packet), but
//! some devices do not set it, or set it on every packet or every PES
//! (gb28181.md §6: "the marker bit is unreliable").
//!
//! The rule, per packet, in sequence order:
//!
//! - The marker is *trusted* once the last `learn_frames` timestamp changes
//!   all followed a packet with the marker set, and no marker was followed by
//!   a packet of the same timestamp. Any counter-example (seen between
//!   consecutive sequence numbers; a gap proves nothing, the marker packet may
//!   be the lost one) stops the trust until `learn_frames` good frames again.
//! - `ends_frame`: this packet has the marker and the marker is trusted. The
//!   caller may emit the frame now.
//! - `previous_frame_ended`: the timestamp changed and the previous frame was
//!   not already ended by a trusted marker. The caller emits the frame it
//!   holds *before* adding this packet.
//!
//! A frame is thus ended exactly once: by its marker when trusted, otherwise
//! by the first packet of the next frame. The PS layer may split further on a
//! pack header (`00 00 01 BA`).

use super::packet::RtpPacket;

/// Default number of well-marked frames before the marker is trusted.
pub const DEFAULT_LEARN_FRAMES: u32 = 8;

/// What one packet tells about frame ends. See the module documentation.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PacketBoundary {
    /// The frame before this packet is complete (timestamp change).
    pub previous_frame_ended: bool,
    /// This packet completes its frame (trusted marker).
    pub ends_frame: bool,
}

#[derive(Debug, Clone, Copy)]
struct Prev {
    sequence: u16,
    timestamp: u32,
    marker: bool,
}

/// Per-stream tracker of frame ends; feed it packets in sequence order (after
/// the reorder buffer).
#[derive(Debug, Clone)]
pub struct FrameBoundary {
    learn_frames: u32,
    good_frames: u32,
    prev: Option<Prev>,
    /// The current frame's packets were contiguous and none but the last
    /// carried the marker: it can vouch for the marker.
    frame_clean: bool,
    /// The current frame has packets and was not ended yet.
    open: bool,
}

impl Default for FrameBoundary {
    fn default() -> Self {
        Self::new(DEFAULT_LEARN_FRAMES)
    }
}

impl FrameBoundary {
    /// Trusts the marker after `learn_frames` well-marked frames (at least
    /// 1).
    pub fn new(learn_frames: u32) -> Self {
        Self {
            learn_frames: learn_frames.max(1),
            good_frames: 0,
            prev: None,
            frame_clean: true,
            open: false,
        }
    }

    /// Whether the marker bit is trusted now.
    pub fn marker_reliable(&self) -> bool {
        self.good_frames >= self.learn_frames
    }

    pub fn on_packet(&mut self, packet: &RtpPacket) -> PacketBoundary {
        self.observe(packet.sequence(), packet.timestamp(), packet.marker())
    }

    /// [`on_packet`](Self::on_packet) from the header fields.
    pub fn observe(&mut self, sequence: u16, timestamp: u32, marker: bool) -> PacketBoundary {
        let mut previous_frame_ended = false;
        if let Some(p) = self.prev {
            let contiguous = sequence == p.sequence.wrapping_add(1);
            if timestamp != p.timestamp {
                previous_frame_ended = self.open;
                // Judge the frame that ended at `p`, unless a gap hides its
                // end (the marked packet may be the lost one).
                if contiguous && self.frame_clean {
                    self.good_frames = if p.marker {
                        self.good_frames.saturating_add(1)
                    } else {
                        0
                    };
                }
                self.frame_clean = true;
            } else if !contiguous {
                self.frame_clean = false;
            } else if p.marker {
                // A marker inside a frame: markers are not frame ends.
                self.good_frames = 0;
                self.frame_clean = false;
            }
        }
        let ends_frame = marker && self.marker_reliable();
        self.open = !ends_frame;
        self.prev = Some(Prev {
            sequence,
            timestamp,
            marker,
        });
        PacketBoundary {
            previous_frame_ended,
            ends_frame,
        }
    }
}
