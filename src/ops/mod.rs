//! Running camgate as an appliance: systemd integration, log output and
//! configuration reload on SIGHUP.

pub mod logging;
pub mod reload;
pub mod system;
pub mod systemd;
