//! The set-up tests and benches share (feature `conformance`): a process,
//! a user granted it, a vendor, and robots ready for work, made through the
//! engine's own operations.

use crate::auth::supplier_proof;
use crate::engine::{Engine, NewUser, Registration};
use crate::error::Result;
use crate::model::{Actor, Process, ProcessSpec, User};
use crate::store::Store;

/// The vendor [`basics`] registers.
pub const VENDOR: &str = "acme";
/// Its secret.
pub const VENDOR_SECRET: &str = "acme-secret";
/// The user [`basics`] creates, and the password.
pub const USER: (&str, &str) = ("u", "p");

/// What [`basics`] made.
#[derive(Debug, Clone)]
pub struct Basics {
    /// The process.
    pub process: Process,
    /// A user who may start it.
    pub user: User,
}

/// Creates the process of `spec`, the user [`USER`] granted it, and the
/// vendor [`VENDOR`].
pub async fn basics<S: Store>(engine: &Engine<S>, spec: ProcessSpec) -> Result<Basics> {
    let process = engine.create_process(Actor::System, spec).await?;
    let user = engine
        .create_user(
            Actor::System,
            NewUser {
                name: USER.0.into(),
                password: USER.1.into(),
                roles: vec![],
                grants: vec![process.key],
            },
        )
        .await?;
    engine.register_vendor(Actor::System, VENDOR, VENDOR_SECRET).await?;
    Ok(Basics { process, user })
}

/// Registers robot `code` under [`VENDOR`] and heart-beats it once: ready
/// for work.
pub async fn ready_robot<S: Store>(engine: &Engine<S>, code: &str) -> Result<Registration> {
    let reg = engine
        .register_robot(code, VENDOR, &supplier_proof(VENDOR_SECRET, code), None)
        .await?;
    engine.heartbeat(code, reg.connect, None).await?;
    Ok(reg)
}
