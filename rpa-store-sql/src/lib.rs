//! # rpa-store-sql
//!
//! Durable [`rpa_core::Store`] backends: SQLite (the embedded default) and
//! PostgreSQL (several engine nodes). Not yet implemented: this crate
//! currently only re-exports the core so the workspace builds; see the
//! project's issues.

pub use rpa_core as core;
