//! # rpa-adapters-http
//!
//! The HTTP faces of the rpa engine: the seed 000 business API
//! (`/rpa/api/*`), the seed 001 robot HTTP API (`/robots/connect/*`), and
//! the compatibility APIs. Not yet implemented: this crate currently only
//! re-exports the core so the workspace builds; see the project's issues.

pub use rpa_core as core;
