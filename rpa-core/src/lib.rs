//! # rpa-core
//!
//! The engine of rpa: processes, jobs, queue items and robots, their state
//! machines, the scheduler, authentication and the audit chain, behind
//! storage, transport and clock traits. No I/O: no sockets, no files, no
//! database driver, no wall clock unless handed one.
//!
//! ```text
//!  adapters (HTTP, WebSocket)            host (examples/server, your service)
//!        │ start_job, heartbeat, report_finish, tick ...        │ Clock, RobotTransport
//!        ▼                                                      ▼
//!  ┌──────────────────────── Engine<S: Store> ─────────────────────────┐
//!  │ read snapshots ─► job / queue / robot state machines ─► Commit    │
//!  │                   scheduler (dispatch)                            │
//!  └──────────┬────────────────────────────────────────────┬───────────┘
//!             ▼ atomic, versioned                           ▼ wake(robot)
//!        Store (memory, SQLite, PostgreSQL)          outbox ─► Execute / Stop
//! ```
//!
//! ## The model
//!
//! A [`model::Process`] (package, version, argument schema, `maxRunNum`,
//! `maxDayNum`, retry policy, robot requirements) is run as [`model::Job`]s.
//! Queue processes get [`model::QueueItem`]s, each worked by one job.
//! [`model::Robot`]s (executors) register with a vendor's proof, heart-beat,
//! and are given jobs by the scheduler. People ([`model::User`]) log in,
//! hold roles and process grants. Every accepted transition and security
//! event appends to a hash-chained [`model::AuditEvent`] log.
//!
//! ## Job states ([`job`])
//!
//! ```text
//!            Stop                      Finish 0
//!  Canceled ◄──── Pending ──Dispatch──► Running ─────────► Successful
//!                  ▲  ▲                 │  │  │ Finish 2 (no retry) / Expire / robot lost (no attempt left)
//!   robot lost ────┘  └── Finish 2 ─────┘  │  └─────────────► Faulted
//!   (attempt+1)          (retry, back-off) │ Stop soft            ▲
//!                                          ▼                      │ Expire
//!                                       Stopping ──Finish──► Stopped ◄── Kill / Finish 1
//! ```
//!
//! The full table is in [`job`]; queue items in [`queue`]; robots in [`robot`].
//!
//! ## Layout
//!
//! - [`ids`], [`time`], [`model`], [`error`]: vocabulary
//! - [`job`], [`queue`], [`robot`]: the state machines, pure and total
//! - [`arguments`]: argument validation against a process's schema
//! - [`auth`]: passwords, tokens, vendor proofs; [`audit`]: the hash chain
//! - [`engine`]: the [`Engine`] operations and the scheduler
//! - [`share`]: which pending jobs each node of a cluster takes first
//! - [`limits`]: `maxRunNum`, `maxDayNum`, max pending items, and the counter changes
//! - [`asset`]: assets, named values processes read
//! - [`trigger`]: queue triggers (when waiting queue items get their jobs)
//! - [`pipeline`]: pipelines, DAGs of steps, and the rules of their runs
//! - [`pool`]: elastic robot pools (the robots a pool wants)
//! - [`schedule`]: when schedules fire (rules, zones, windows, calendar, missed times)
//! - [`listener`]: seed 003 listener requests (automation and fall-out queues)
//! - [`events`]: domain events, carried by the audit chain, and consumers' cursors
//! - [`store`]: the [`Store`] trait; [`memory`]: the in-memory store
//! - [`record`]: entity kinds that plug into every store (a row mapping each)
//! - [`transport`]: robot commands and the [`RobotTransport`] trait
//! - [`seed001`]: the robot protocol's messages, read and written once for both transports
//! - `conformance` (feature): the store test-suite every backend runs

pub mod ai;
pub mod analysis;
pub mod arguments;
pub mod asset;
pub mod audit;
pub mod auth;
pub mod bucket;
pub mod catalogue;
#[cfg(any(test, feature = "conformance"))]
pub mod conformance;
pub mod content;
pub mod designer;
pub mod engine;
pub mod error;
pub mod events;
pub mod federation;
#[cfg(any(test, feature = "conformance"))]
pub mod fixtures;
pub mod flow;
pub mod identity;
pub mod ids;
pub mod image;
pub mod job;
pub mod license;
pub mod limits;
pub mod listener;
pub mod memory;
pub mod metrics;
pub mod model;
pub mod package;
pub mod pipeline;
pub mod pool;
pub mod queue;
pub mod record;
pub mod retention;
pub mod robot;
pub mod schedule;
pub mod seed001;
pub mod service;
pub mod share;
pub mod store;
pub mod time;
pub mod transport;
pub mod trigger;
pub mod webhook;

pub use engine::{Engine, EngineConfig, TicketQuery};
pub use error::{Error, Result};
pub use ids::Key;
pub use memory::{MemoryStore, ReadCache};
pub use store::Store;
pub use time::{Clock, ManualClock, SystemClock, Timestamp, Tz};
pub use transport::{Command, RobotTransport};
