//! The workflow engine (seed 004, loonflow semantics): tickets that move
//! through the states of a workflow, handled by people, robots and hooks.
//!
//! Pure, like [`crate::job`]: no I/O, tested without sockets.
//! - [`workflow`]: definitions (fields, states, transitions), their checks
//!   and compilation (the graph is a petgraph)
//! - [`expr`]: condition expressions of transitions
//! - [`directory`]: users, departments and roles tickets flow between
//! - [`ticket`]: the ticket state machine, its flow log, what the engine
//!   must do after each move
//!
//! The engine's side (`engine/flow.rs`) reads a ticket, its workflow and
//! the directory, runs these rules and commits the ticket, its flow logs,
//! the jobs of robot states and the audit events at once.

pub mod directory;
pub mod expr;
pub mod ticket;
pub mod workflow;

pub use directory::{Dept, Directory, Person, Role};
pub use ticket::{Ctx, Effect, FlowLog, LogEntry, Moved, Offer, Request, Ticket, Waiting, Who};
pub use workflow::{Field, Hook, State, Transition, Workflow, WorkflowDef};
