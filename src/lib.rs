//! # rpa
//!
//! An embeddable RPA orchestration engine. This facade re-exports the
//! workspace's crates behind feature flags:
//!
//! - [`core`] (always): the engine, model, state machines and traits
//! - `http`: [`http`], the HTTP adapters
//! - `ws`: [`ws`], the robot WebSocket hub
//! - `sql`: [`sql`], the SQLite and PostgreSQL stores

pub use rpa_core as core;
pub use rpa_core::{
    Clock, Engine, EngineConfig, Error, Key, ManualClock, MemoryStore, Store, SystemClock, Timestamp, Tz,
};

#[cfg(feature = "http")]
pub use rpa_adapters_http as http;
#[cfg(feature = "ws")]
pub use rpa_adapters_ws as ws;
#[cfg(feature = "sql")]
pub use rpa_store_sql as sql;
