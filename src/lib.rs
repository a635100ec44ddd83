//! camgate: a GB28181 platform and security-camera media gateway.
//!
//! Layers (see `docs/architecture.md`): sans-IO cores in [`codec`], [`media`]
//! and the muxers under [`egress`]; thin tokio shells in [`ingest`], [`api`]
//! and [`app`].

pub mod api;
pub mod app;
pub mod codec;
pub mod config;
pub mod egress;
pub mod fuzzing;
pub mod gb;
pub mod ingest;
pub mod media;
pub mod ops;
pub mod ptz;
pub mod sim;
pub mod sip;
pub mod store;
pub mod util;
pub mod webhooks;
