//! The media core: frames, streams, the hub, fan-out with GOP cache and lag
//! policy, and the on-demand lifecycle. Nothing here knows a protocol.

pub mod demand;
pub mod fanout;
pub mod frame;
pub mod hub;
pub mod stream;

pub use demand::{DemandAction, DemandController, DemandPolicy};
pub use fanout::{Fanout, FanoutConfig, FanoutError, FanoutItem, FanoutReceiver};
pub use frame::{AudioTrack, Frame, FrameData, TrackInfo, VideoTrack};
pub use hub::{Hub, HubError};
pub use stream::{
    LatencyPercentiles, MEDIA_BYTES_IN, MEDIA_BYTES_OUT, Output, Publisher, SourceState,
    SourceStatus, Stream, StreamSnapshot, ViewerGuard,
};
