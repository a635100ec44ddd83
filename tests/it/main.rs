//! Integration tests: the real binary against real peers (GStreamer RTSP
//! server, FFmpeg 5.1 and 9, sipp as GB28181 devices, a WebSocket client), on
//! loopback.

mod all_outputs;
mod api;
mod appliance;
mod browser;
mod common;
mod gb;
mod gb_media;
mod gb_sim;
mod hls;
mod on_demand;
mod openapi;
mod ops;
mod playback;
mod ptz;
mod rtsp_flv;
mod rtsp_out;
mod sessions;
mod sip_fixtures;
mod store;
mod ui;
mod webhooks;
mod webrtc;
