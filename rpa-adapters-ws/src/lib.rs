//! # rpa-adapters-ws
//!
//! The seed 001 robot WebSocket hub (`/robothub/{id}`). Not yet implemented:
//! this crate currently only re-exports the core so the workspace builds;
//! see the project's issues.

pub use rpa_core as core;
