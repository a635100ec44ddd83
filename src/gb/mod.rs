//! The GB/T 28181 application: MANSCDP bodies, and (as it grows) registrar,
//! keepalive, catalog and media sessions.

pub mod manscdp;
