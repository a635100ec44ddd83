//! Inputs: media that comes into the gateway.

pub mod rtsp;
