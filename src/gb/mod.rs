//! The GB/T 28181 application: MANSCDP bodies, the registrar's decisions,
//! multi-message assembly, alarm tables (sans-IO), and the platform shell
//! that runs them on the SIP endpoint.

pub mod alarm;
pub mod assemble;
pub mod live;
pub mod manscdp;
pub mod media;
pub mod platform;
pub mod registrar;

pub use platform::{
    Answer, CatalogSummary, ControlField, DeviceRuntime, GbConfig, GbError, Platform, Preset,
    presets_of,
};
