//! The storage boundary: the core decides, the store commits (DESIGN §4).
//!
//! Reads return owned snapshots. A [`Commit`] carries every write of one
//! engine decision plus its audit events and robot commands, and is applied
//! atomically or not at all. Each versioned entity in a commit carries its
//! *new* version; the store accepts it only if the stored version is exactly
//! one less (or the entity is absent and the new version is 1), so two
//! engines that read the same job can never both commit a change to it:
//! the second gets [`StoreError::Conflict`] and decides again.
//!
//! Stores also maintain the indexes dispatch needs ([`Store::next_pending`],
//! [`Store::available_robots`]) and the deadline index ([`Store::due`]),
//! derived from the entities themselves (see [`timers_of_job`] and
//! [`timers_of_robot`]), so no dispatch, heartbeat or finish scans a table.

use std::future::Future;

use crate::audit::AuditDraft;
use crate::error::StoreError;
use crate::events::EventPage;
use crate::ids::*;
use crate::limits;
use crate::model::*;
use crate::record::{Record, Row, Select};
pub use crate::record::{RecordStore, Records};
use crate::time::Timestamp;
use crate::transport::Command;

/// Result of a store call.
pub type StoreResult<T> = Result<T, StoreError>;

/// One write of a commit.
#[derive(Debug, Clone)]
#[allow(missing_docs)]
pub enum Write {
    Token(Token),
    /// Deletes a session.
    RevokeToken([u8; 32]),
    Process(Process),
    /// A change to a process's counters (see [`Counts`]).
    Counts(Counts),
    Job(Job),
    Item(QueueItem),
    Robot(Robot),
    Vendor(Vendor),
    /// Appended, never changed.
    Log(RunLog),
    /// Appended, never changed.
    Video(VideoRecord),
    /// Deletes a job's run logs (retention, see [`crate::retention`]).
    DropLogs(JobId),
    /// A record of a kind that plugs in (see [`crate::record`]): version 1
    /// inserts it, a later version replaces version − 1.
    Record(Row),
}

impl Write {
    /// The write of a record.
    pub fn record<R: Record>(r: &R) -> StoreResult<Write> {
        Row::of(r).map(Write::Record)
    }
}

/// A change to a process's counters: [`Process::running`], its successful
/// runs on `day`, and [`Process::pending_items`].
///
/// Stores apply it to the process *as stored*, so concurrent commits that
/// only count never conflict with each other (robots of one process finish
/// together all the time). A store either bumps the process's version, so
/// that a whole-process write made from an older snapshot conflicts rather
/// than overwrite the counts (memory, SQLite), or keeps the counters apart
/// from the process row, where no process write reaches them, and leaves
/// the version as it is (PostgreSQL: a row per process and node, so nodes
/// that run one process do not wait for each other unless it has a limit;
/// see [`limits::needs_exact_counts`]). A commit whose counts would raise a count past its
/// limit (`maxRunNum`, `maxDayNum`, and max pending items when
/// `limit_pending`: a retried item is no new item) fails with
/// [`StoreError::Conflict`] and writes nothing: the engine reads again and
/// decides again, and the limits hold across engines.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Counts {
    /// The process.
    pub process: ProcessId,
    /// Change of running jobs.
    pub running: i64,
    /// Change of New queue items.
    pub pending_items: i64,
    /// Successful runs to add on `day`.
    pub successes: u32,
    /// Today, in the server's calendar (see [`Process::day`]).
    pub day: i64,
    /// Whether new queue items are held to the process's max pending items.
    pub limit_pending: bool,
}

impl Counts {
    /// Whether nothing changes.
    pub fn is_empty(&self) -> bool {
        self.running == 0 && self.pending_items == 0 && self.successes == 0
    }

    /// Adds `other` (a later change of the same process) to this one.
    pub fn merge(&mut self, other: Counts) {
        self.running += other.running;
        self.pending_items += other.pending_items;
        self.successes += other.successes;
        self.day = self.day.max(other.day);
        self.limit_pending |= other.limit_pending;
    }

    /// Applies the change to `p` and bumps its version without checking
    /// limits (to a copy of a process whose store already checked them).
    pub fn apply_unchecked(&self, p: &mut Process) {
        if self.apply_checked(p, false).is_ok() {
            p.version += 1;
        }
    }

    /// Applies the change to `p` and bumps its version; a count it raises
    /// past its limit is a conflict, and then `p` is left as it was.
    pub fn apply(&self, p: &mut Process) -> Result<(), StoreError> {
        self.apply_checked(p, true)?;
        p.version += 1;
        Ok(())
    }

    /// [`Counts::apply`] without bumping the version: for a store that keeps
    /// counters apart from the process row (`rpa-store-sql` on PostgreSQL
    /// keeps them by node), where counting does not change the process.
    pub fn apply_to_counters(&self, p: &mut Process) -> Result<(), StoreError> {
        self.apply_checked(p, true)
    }

    fn apply_checked(&self, p: &mut Process, check: bool) -> Result<(), StoreError> {
        let add = |n: u32, d: i64| u32::try_from((i64::from(n) + d).max(0)).unwrap_or(u32::MAX);
        let running = add(p.running, self.running);
        let pending = add(p.pending_items, self.pending_items);
        let (day, successes) = match p.day.cmp(&self.day) {
            std::cmp::Ordering::Less => (self.day, self.successes),
            std::cmp::Ordering::Equal => (p.day, p.day_successes.saturating_add(self.successes)),
            // A clock behind the stored day: its successes belong to a day that is over.
            std::cmp::Ordering::Greater => (p.day, p.day_successes),
        };
        let change = limits::Change {
            running: (p.running, running),
            today: (p.successes_on(self.day.max(p.day)) + p.running, successes + running),
            pending: (p.pending_items, pending),
            limit_pending: self.limit_pending,
        };
        if check && limits::exceeded(p, change) {
            return Err(StoreError::Conflict);
        }
        p.running = running;
        p.pending_items = pending;
        p.day = day;
        p.day_successes = successes;
        Ok(())
    }
}

/// Everything one engine decision writes, applied atomically.
#[derive(Debug, Clone, Default)]
pub struct Commit {
    /// Entity writes.
    pub writes: Vec<Write>,
    /// Audit events, appended to the chain in order.
    pub audit: Vec<AuditDraft>,
    /// Commands for robots' outboxes.
    pub commands: Vec<(RobotId, Command)>,
    /// Robots whose outboxes are emptied first (a new connection, a lost robot).
    pub clear_outbox: Vec<RobotId>,
}

impl Commit {
    /// Whether there is nothing to write.
    pub fn is_empty(&self) -> bool {
        self.writes.is_empty() && self.audit.is_empty() && self.commands.is_empty() && self.clear_outbox.is_empty()
    }
}

/// A deadline that has come.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Due {
    /// A robot was silent until its deadline.
    RobotSilent(RobotId),
    /// A job's deadline passed.
    JobExpired(JobId),
    /// A job's back-off is over.
    JobReady(JobId),
    /// A session ran out (the SHA-256 of its token): it is deleted.
    TokenExpired([u8; 32]),
}

/// The deadlines a job puts in the index.
pub fn timers_of_job(job: &Job) -> impl Iterator<Item = (Timestamp, Due)> {
    let ready = match (job.state, job.not_before) {
        (JobState::Pending, Some(t)) => Some((t, Due::JobReady(job.id))),
        _ => None,
    };
    let expire = match job.deadline {
        Some(d) if !job.state.is_terminal() => Some((d, Due::JobExpired(job.id))),
        _ => None,
    };
    ready.into_iter().chain(expire)
}

/// The deadline a session puts in the index.
pub fn timer_of_token(token: &Token) -> (Timestamp, Due) {
    (token.expires_at, Due::TokenExpired(token.hash))
}

/// The deadline a robot puts in the index: none while a node keeps its
/// liveness in memory ([`crate::robot::keeper`]).
pub fn timers_of_robot(robot: &Robot) -> Option<(Timestamp, Due)> {
    if crate::robot::keeper(robot).is_some() {
        return None;
    }
    robot.deadline.map(|d| (d, Due::RobotSilent(robot.id)))
}

/// Whether a job belongs in the dispatch index.
pub fn is_dispatchable(job: &Job) -> bool {
    job.state == JobState::Pending && job.not_before.is_none()
}

/// Whether a robot belongs in the available-robots index (may be given a job now).
pub fn is_idle(robot: &Robot) -> bool {
    robot.state == RobotState::Available && robot.job.is_none() && !robot.awaiting_heartbeat
}

/// Jobs of a process in a time window (seed 000 §3.7).
#[derive(Debug, Clone)]
pub struct JobQuery {
    /// The process.
    pub process: ProcessId,
    /// Created at or after.
    pub from: Timestamp,
    /// Created at or before.
    pub to: Timestamp,
    /// Only in this state.
    pub state: Option<JobState>,
    /// At most this many records (newest first); `total` counts all.
    pub limit: usize,
}

/// Commits and ids: the one way anything is written.
pub trait CommitStore: Send + Sync + 'static {
    /// A fresh serial id of `kind`.
    fn next_id(&self, kind: IdKind) -> impl Future<Output = StoreResult<i64>> + Send;

    /// Applies `commit` atomically, checking versions and unique keys.
    fn commit(&self, commit: Commit) -> impl Future<Output = StoreResult<()>> + Send;

    /// Brings this store's copies of the robot `robot` (by its code) and of
    /// the run `run` (a job, by key) up to date with the durable store, and
    /// answers whether they may have changed. A store whose reads are always
    /// current answers `false` and reads nothing (the default).
    ///
    /// The engine calls it before it refuses a robot on what it read (a run
    /// that is not the robot's, a connection that is not current, a report
    /// the job's state does not allow): a node's copy that lags another
    /// node's commit by a few milliseconds must never tell a robot that its
    /// own run is not its own.
    fn confirm(&self, robot: &str, run: Option<Key>) -> impl Future<Output = StoreResult<bool>> + Send {
        let _ = (robot, run);
        async { Ok(false) }
    }
}

/// Users and roles, read as the record kinds they are ([`User`] and
/// [`Role`] implement [`Record`]; stores keep them in their read cache).
pub trait People: RecordStore {
    /// A user by id.
    fn user(&self, id: UserId) -> impl Future<Output = StoreResult<Option<User>>> + Send {
        self.get::<User>(id.0)
    }
    /// A user by login name.
    fn user_by_name(&self, name: &str) -> impl Future<Output = StoreResult<Option<User>>> + Send {
        self.find::<User>("name", name.to_owned())
    }
    /// All users, by id.
    fn users(&self) -> impl Future<Output = StoreResult<Vec<User>>> + Send {
        self.list::<User>(Select::all(usize::MAX))
    }
    /// A role by id.
    fn role(&self, id: RoleId) -> impl Future<Output = StoreResult<Option<Role>>> + Send {
        self.get::<Role>(id.0)
    }
    /// A role by name.
    fn role_by_name(&self, name: &str) -> impl Future<Output = StoreResult<Option<Role>>> + Send {
        self.find::<Role>("name", name.to_owned())
    }
    /// All roles, by id.
    fn roles(&self) -> impl Future<Output = StoreResult<Vec<Role>>> + Send {
        self.list::<Role>(Select::all(usize::MAX))
    }
}

impl<S: RecordStore + ?Sized> People for S {}

/// Sessions.
pub trait PeopleStore: Send + Sync + 'static {
    /// A session by token hash.
    fn token(&self, hash: [u8; 32]) -> impl Future<Output = StoreResult<Option<Token>>> + Send;
}

/// Processes.
pub trait ProcessStore: Send + Sync + 'static {
    /// A process by id.
    fn process(&self, id: ProcessId) -> impl Future<Output = StoreResult<Option<Process>>> + Send;
    /// A process by key.
    fn process_by_key(&self, key: Key) -> impl Future<Output = StoreResult<Option<Process>>> + Send;
    /// All processes, by id.
    fn processes(&self) -> impl Future<Output = StoreResult<Vec<Process>>> + Send;
}

/// Jobs and the dispatch index.
pub trait JobStore: Send + Sync + 'static {
    /// A job by id.
    fn job(&self, id: JobId) -> impl Future<Output = StoreResult<Option<Job>>> + Send;
    /// A job by key.
    fn job_by_key(&self, key: Key) -> impl Future<Output = StoreResult<Option<Job>>> + Send;
    /// Jobs of a process created in a window, newest first, and how many match.
    fn jobs_of_process(&self, q: JobQuery) -> impl Future<Output = StoreResult<(u64, Vec<Job>)>> + Send;
    /// How many jobs of a process created in a window are in each state
    /// (states with none left out), in [`JobState::ALL`] order.
    fn job_counts(
        &self,
        process: ProcessId,
        from: Timestamp,
        to: Timestamp,
    ) -> impl Future<Output = StoreResult<Vec<(JobState, u64)>>> + Send;
    /// The next job to dispatch among `processes`: dispatchable, highest
    /// priority first, then lowest id. O(log n) per process.
    fn next_pending(&self, processes: &[ProcessId]) -> impl Future<Output = StoreResult<Option<Job>>> + Send;
    /// The ids of the best `limit` dispatchable jobs among `processes`, best
    /// first (the order of [`Store::next_pending`]). O(limit · log n) per process.
    fn pending_heads(
        &self,
        processes: &[ProcessId],
        limit: usize,
    ) -> impl Future<Output = StoreResult<Vec<JobId>>> + Send;
    /// Number of dispatchable jobs of a process (pinned ones included).
    fn pending_count(&self, process: ProcessId) -> impl Future<Output = StoreResult<u64>> + Send;
    /// The best dispatchable job pinned to `robot` ([`Job::pinned`]), in the
    /// order of [`Store::next_pending`]. Pinned jobs are never among
    /// [`Store::next_pending`]'s or [`Store::pending_heads`]'s. O(log n).
    fn next_pinned(&self, robot: RobotId) -> impl Future<Output = StoreResult<Option<Job>>> + Send;
    /// The robots that have dispatchable jobs pinned to them.
    fn pinned_robots(&self) -> impl Future<Output = StoreResult<Vec<RobotId>>> + Send;
}

/// Queue items.
pub trait QueueStore: Send + Sync + 'static {
    /// A queue item by id.
    fn item(&self, id: QueueItemId) -> impl Future<Output = StoreResult<Option<QueueItem>>> + Send;
    /// A queue item by key.
    fn item_by_key(&self, key: Key) -> impl Future<Output = StoreResult<Option<QueueItem>>> + Send;
    /// The newest `limit` queue items of a process, newest first.
    fn items_of_process(
        &self,
        process: ProcessId,
        limit: usize,
    ) -> impl Future<Output = StoreResult<Vec<QueueItem>>> + Send;
    /// A queue item by its unique reference within a process.
    fn item_by_reference(
        &self,
        process: ProcessId,
        reference: &str,
    ) -> impl Future<Output = StoreResult<Option<QueueItem>>> + Send;
}

/// Robots, the idle-robot index, vendors.
pub trait RobotStore: Send + Sync + 'static {
    /// A robot by id.
    fn robot(&self, id: RobotId) -> impl Future<Output = StoreResult<Option<Robot>>> + Send;
    /// A robot by the executor's own id.
    fn robot_by_code(&self, code: &str) -> impl Future<Output = StoreResult<Option<Robot>>> + Send;
    /// All robots, by id.
    fn robots(&self) -> impl Future<Output = StoreResult<Vec<Robot>>> + Send;
    /// Idle robots (Available, no job) with id greater than `after`, by id.
    fn available_robots(
        &self,
        after: Option<RobotId>,
        limit: usize,
    ) -> impl Future<Output = StoreResult<Vec<Robot>>> + Send;
    /// A vendor by supplier code.
    fn vendor_by_code(&self, code: &str) -> impl Future<Output = StoreResult<Option<Vendor>>> + Send;
}

/// What runs leave: logs, recordings, files.
pub trait RunStore: Send + Sync + 'static {
    /// A job's run logs, in order.
    fn logs(&self, job: JobId) -> impl Future<Output = StoreResult<Vec<RunLog>>> + Send;
    /// A job's screen recordings.
    fn videos(&self, job: JobId) -> impl Future<Output = StoreResult<Vec<VideoRecord>>> + Send;
}

/// The deadline index.
pub trait DeadlineStore: Send + Sync + 'static {
    /// Deadlines at or before `now`, earliest first.
    fn due(&self, now: Timestamp, limit: usize) -> impl Future<Output = StoreResult<Vec<Due>>> + Send;
    /// The earliest deadline.
    fn next_due(&self) -> impl Future<Output = StoreResult<Option<Timestamp>>> + Send;
}

/// Robots' outboxes.
pub trait OutboxStore: Send + Sync + 'static {
    /// Removes and returns up to `limit` of a robot's waiting commands, oldest first.
    fn take_commands(&self, robot: RobotId, limit: usize) -> impl Future<Output = StoreResult<Vec<Command>>> + Send;
}

/// What one integration step did (see [`AuditStore::integrate`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Integrated {
    /// Events that took their place in the chain.
    pub events: u64,
    /// How long the longest waiting of them waited after its commit, in
    /// milliseconds by the database's clock (0 without events).
    pub longest_wait_ms: i64,
    /// Whether the step stopped at its size: more may wait.
    pub full: bool,
}

/// Events committed and not integrated yet (see [`AuditStore::integrate`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Unintegrated {
    /// Commits whose events wait.
    pub commits: u64,
    /// How long the oldest has waited, in milliseconds (0 without any).
    pub oldest_wait_ms: i64,
}

/// The audit chain and the domain events it carries.
///
/// A store either links a commit's audit events into the chain in the
/// commit itself (the in-memory store, SQLite: one writer), or writes them
/// durably in the commit, unplaced, and integrates them into the chain
/// afterwards, in order, one integrator at a time (PostgreSQL: so that the
/// writers of several nodes never wait for one another on the chain's
/// tail). Reads of the chain see every event committed before they asked:
/// such a store integrates first.
pub trait AuditStore: Send + Sync + 'static {
    /// Audit events with `seq > after`, in order, at most `limit`.
    fn audit(&self, after: u64, limit: usize) -> impl Future<Output = StoreResult<Vec<AuditEvent>>> + Send;

    /// The sequence number of the last audit event (0: none yet).
    fn head(&self) -> impl Future<Output = StoreResult<u64>> + Send;

    /// The domain events among the next `limit` audit events after `after`
    /// (see [`crate::events`]). Always current: a consumer on any node sees
    /// every event committed before it asked.
    fn events(&self, after: u64, limit: usize) -> impl Future<Output = StoreResult<EventPage>> + Send {
        async move { Ok(EventPage::of(after, &self.audit(after, limit).await?)) }
    }

    /// Gives the events committed and not yet in the chain their places, in
    /// order (the events of one commit together, in the commit's order; a
    /// commit after another that touched the same rows after it). Safe to
    /// call from several nodes at once. Stores that link in the commit
    /// have nothing to do.
    fn integrate(&self) -> impl Future<Output = StoreResult<Integrated>> + Send {
        async { Ok(Integrated::default()) }
    }

    /// The events committed and not yet in the chain.
    fn unintegrated(&self) -> impl Future<Output = StoreResult<Unintegrated>> + Send {
        async { Ok(Unintegrated::default()) }
    }
}

/// Leases: work one node of a cluster does alone.
pub trait LeaseStore: Send + Sync + 'static {
    /// Takes or renews the lease `name` for `holder` until `until`, when it
    /// is free, expired at `now`, or already `holder`'s; answers whether
    /// `holder` holds it now. Work one node of a cluster must do alone (the
    /// timers) runs only while its node holds the lease.
    fn lease(
        &self,
        name: &str,
        holder: u64,
        now: Timestamp,
        until: Timestamp,
    ) -> impl Future<Output = StoreResult<bool>> + Send;

    /// The holder of the lease `name` if it has not expired at `now`
    /// (whether a node still lives: each node holds `node:<id>`).
    fn lease_holder(&self, name: &str, now: Timestamp) -> impl Future<Output = StoreResult<Option<u64>>> + Send;

    /// The holders of the leases named `prefix…` that have not expired at
    /// `now`, in no order (the live nodes: `node:`).
    fn lease_holders(&self, prefix: &str, now: Timestamp) -> impl Future<Output = StoreResult<Vec<u64>>> + Send;
}

/// A storage backend: the sum of the capabilities above. All methods are
/// cancel-safe reads except [`CommitStore::commit`] and
/// [`OutboxStore::take_commands`], which are atomic. Implement the
/// capability traits; `Store` comes with them.
pub trait Store:
    CommitStore
    + PeopleStore
    + ProcessStore
    + JobStore
    + QueueStore
    + RobotStore
    + RunStore
    + DeadlineStore
    + OutboxStore
    + AuditStore
    + LeaseStore
    + RecordStore
{
}

impl<
    T: CommitStore
        + PeopleStore
        + ProcessStore
        + JobStore
        + QueueStore
        + RobotStore
        + RunStore
        + DeadlineStore
        + OutboxStore
        + AuditStore
        + LeaseStore
        + RecordStore,
> Store for T
{
}

/// Every capability trait, for code that calls a concrete store's methods
/// (`use rpa_core::store::prelude::*;`). Code generic over `S: Store`
/// needs no import.
pub mod prelude {
    pub use super::{
        AuditStore, CommitStore, DeadlineStore, JobStore, LeaseStore, OutboxStore, People, PeopleStore, ProcessStore,
        QueueStore, RecordStore, Records, RobotStore, RunStore, Store,
    };
}
