//! # rpa
//!
//! An embeddable RPA orchestration engine. This facade re-exports the
//! workspace's crates behind feature flags:
//!
//! - [`core`] (always): the engine, model, state machines and traits
//! - `http`: [`http`], the HTTP adapters
//! - `ws`: [`ws`], the robot WebSocket hub
//! - `sql`: [`sql`], the SQLite and PostgreSQL stores
//! - `server`: [`server`], the runtime a standalone server or a host needs
//!   besides the routers (store and engine set-up, configuration, timers,
//!   secret key, graceful shutdown on SIGTERM and Ctrl-C), [`ai`], the
//!   services behind AI capabilities (Tesseract, HTTP), [`consume`],
//!   consumers of the domain events, [`hooks`], the poster of workflow
//!   hooks, [`webhooks`], the deliveries of webhook subscriptions, and
//!   [`parent`], reports of run results to a parent server

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
#[cfg(feature = "server")]
pub mod ai;
#[cfg(feature = "server")]
pub mod consume;
#[cfg(feature = "server")]
pub mod hooks;
#[cfg(feature = "server")]
pub mod ldap;
#[cfg(feature = "server")]
pub mod oidc;
#[cfg(feature = "server")]
pub mod parent;
#[cfg(feature = "server")]
pub mod pools;
#[cfg(feature = "server")]
pub mod retention;
#[cfg(feature = "server")]
pub mod server;
#[cfg(feature = "server")]
pub mod webhooks;
