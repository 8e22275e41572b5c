//! The core's one error type, split by who must act (CONVENTIONS "Errors").

use crate::model::{ItemState, JobState, RobotState};

/// Which kind of entity an error is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[allow(missing_docs)]
pub enum Entity {
    User,
    Role,
    Process,
    Job,
    QueueItem,
    Robot,
    Vendor,
    File,
    /// A record kind, by its name (see [`crate::record::Kind::name`]).
    Record(&'static str),
}

impl std::fmt::Display for Entity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Entity::User => "user",
            Entity::Role => "role",
            Entity::Process => "process",
            Entity::Job => "job",
            Entity::QueueItem => "queue item",
            Entity::Robot => "robot",
            Entity::Vendor => "vendor",
            Entity::File => "file",
            Entity::Record(name) => name,
        })
    }
}

/// A state a rejected transition was attempted from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[allow(missing_docs)]
pub enum AnyState {
    Job(JobState),
    Item(ItemState),
    Robot(RobotState),
}

impl std::fmt::Display for AnyState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            AnyState::Job(s) => s.as_str(),
            AnyState::Item(s) => s.as_str(),
            AnyState::Robot(s) => s.as_str(),
        })
    }
}

/// An event a state machine does not accept in the current state. Nothing changed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{event} is not allowed while the {entity} is {state}")]
pub struct Rejected {
    /// The entity kind.
    pub entity: Entity,
    /// Its state.
    pub state: AnyState,
    /// The event, in words.
    pub event: &'static str,
}

/// A limit that refused new work.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Limit {
    /// `maxDayNum` successful runs already today.
    MaxDayNum(u32),
    /// Too many queue items waiting.
    MaxPendingItems(u32),
    /// An AI capability's calls for today are spent (see [`crate::ai`]).
    DailyQuota {
        /// The capability.
        capability: String,
        /// Its daily quota.
        quota: u64,
    },
}

/// A store failure.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// Someone else committed first: re-read and decide again.
    #[error("version conflict")]
    Conflict,
    /// A unique key (name, code, reference) is taken.
    #[error("duplicate {0}")]
    Duplicate(&'static str),
    /// The backend failed (I/O, connection, corruption).
    #[error("storage backend: {0}")]
    Backend(String),
}

/// Everything an engine operation can fail with.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    // --- the caller's mistake ---
    /// A parameter is missing, malformed or of the wrong type.
    #[error("{0}")]
    InvalidArgument(String),
    /// No such entity (or not visible to the caller).
    #[error("{0} {1} not found")]
    NotFound(Entity, String),
    /// A name, code or reference already in use.
    #[error("{0} already exists")]
    AlreadyExists(String),
    /// No valid session: missing, unknown, expired or revoked token.
    #[error("invalid or expired token")]
    Unauthenticated,
    /// Wrong user name or password.
    #[error("wrong user name or password")]
    BadCredentials,
    /// The organisation's directory, which checks this user's password,
    /// did not answer (the cause is logged).
    #[error("the organisation's directory cannot be reached; try again later")]
    DirectoryUnavailable,
    /// Locked after too many wrong passwords.
    #[error("user is locked; ask an administrator to unlock it")]
    UserLocked,
    /// Authenticated but not allowed.
    #[error("permission denied: {0}")]
    PermissionDenied(String),

    // --- robots ---
    /// The supplier code is unknown or the secret does not prove it.
    #[error("supplier code or secret is wrong")]
    BadSupplier,
    /// Unknown robot connection (`robotConnectId`), or the robot is not registered.
    #[error("robot is not connected; register first")]
    NotConnected,
    /// A healthy connection for this robot id exists (seed 001 error 10000).
    #[error("robot already has a live connection")]
    DuplicateConnection,
    /// The robot id registered again on another connection, which replaced
    /// this one (seed 001 error 10000 for the replaced connection, which is
    /// then closed).
    #[error("another connection of this robot id replaced this one")]
    Replaced,

    // --- rejected transitions and limits ---
    /// The state machine refused the event.
    #[error(transparent)]
    Rejected(#[from] Rejected),
    /// A limit refused new work.
    #[error("{}", limit_message(.0))]
    Limit(Limit),

    // --- not the caller's fault ---
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// An internal invariant broke (logged by hosts, never shown to clients).
    #[error("internal error: {0}")]
    Internal(String),
}

fn limit_message(l: &Limit) -> String {
    match l {
        Limit::MaxDayNum(n) => format!("maxDayNum reached: {n} successful runs today"),
        Limit::MaxPendingItems(n) => format!("too many pending queue items (max {n})"),
        Limit::DailyQuota { capability, quota } => {
            format!("the daily quota of capability {capability} is spent ({quota} calls)")
        }
    }
}

impl Error {
    /// Whether the caller caused it (as opposed to the store or a bug).
    pub fn is_client_error(&self) -> bool {
        !matches!(
            self,
            Error::Store(StoreError::Backend(_)) | Error::Store(StoreError::Conflict) | Error::Internal(_)
        )
    }
}

/// Result of an engine operation.
pub type Result<T, E = Error> = std::result::Result<T, E>;
