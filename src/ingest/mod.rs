//! Inputs: media that comes into the gateway.

pub mod media_server;
pub mod ps;
pub mod rtp;
pub mod rtsp;

#[cfg(test)]
mod pipeline_tests;
