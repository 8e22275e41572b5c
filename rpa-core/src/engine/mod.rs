//! The [`Engine`]: the one entry point adapters call (DESIGN §4).
//!
//! Every operation follows the same shape: read snapshots from the store,
//! run the pure state machines ([`crate::job`], [`crate::queue`],
//! [`crate::robot`]) and the limits ([`crate::limits`]), and commit all
//! writes, audit events, domain events and robot commands of the decision
//! at once. A version conflict (another engine got there first) re-reads
//! and decides again: the one loop that does so is `decided!`. Writes that
//! cannot conflict (new rows, appended logs) commit once; a dispatch
//! attempt that loses its race reports it to the dispatcher, which looks
//! again. Success is returned only after commit.
//!
//! Layout:
//! - `mod.rs`: construction, the commit builder, people (login, tokens, users, roles, grants)
//! - `jobs.rs`: processes, jobs and queue items (seed 000)
//! - `robots.rs`: robot registration, heartbeats and reports (seed 001)
//! - `dispatch.rs`: the scheduler
//! - `events.rs`: domain events for consumers, and their cursors
//! - `timers.rs`: deadlines (heartbeat timeouts, expirations, back-offs)

/// `confirmed!(engine, robot, run, op)` evaluates `op`, a robot's operation
/// (an expression giving a `Result`). When it is refused in a way a lagging
/// copy of the robot `robot` (its code) or of its run `run` could cause, the
/// store confirms both against the durable store ([`Store::confirm`]) and,
/// if they may have changed, `op` is evaluated once more on what it reads
/// then: the answer rests on the durable store, never on a copy alone.
macro_rules! confirmed {
    ($engine:expr, $robot:expr, $run:expr, $op:expr) => {{
        match $op {
            Err(e) if $crate::engine::may_rest_on_a_copy(&e) => {
                if $engine.store.confirm($robot, $run).await? {
                    $op
                } else {
                    Err(e)
                }
            }
            other => other,
        }
    }};
}

/// `decided!(engine, |attempt| body)` is the one read → decide → commit
/// loop of the engine. `body` (an expression, run as an async block, so
/// `?` ends the operation with its error) reads snapshots and decides,
/// giving a [`Decided`]; what it decides to write is committed, and after a
/// version conflict (another engine got there first) it is run again on
/// fresh reads, `attempt` counting from 0, at most [`CONFLICT_RETRIES`]
/// times. The answer is the decision's value once its commit stands.
/// `decided!(engine, |attempt| body, retry)` also runs again after the
/// commit errors `retry` accepts (a unique key another engine just took).
macro_rules! decided {
    ($engine:expr, |$attempt:ident| $body:expr) => {
        decided!($engine, |$attempt| $body, $crate::engine::is_conflict)
    };
    ($engine:expr, |$attempt:ident| $body:expr, $retry:expr) => {{
        let mut outcome = Err($crate::error::Error::Store($crate::error::StoreError::Conflict));
        for $attempt in 0..$crate::engine::CONFLICT_RETRIES {
            let decision: $crate::error::Result<$crate::engine::Decided<_>> = async { $body }.await;
            match decision {
                Err(e) => {
                    outcome = Err(e);
                    break;
                }
                Ok($crate::engine::Decided::Again) => continue,
                Ok($crate::engine::Decided::Answer(v)) => {
                    outcome = Ok(v);
                    break;
                }
                Ok($crate::engine::Decided::Commit(tx, v)) => match $engine.commit(tx).await {
                    Ok(()) => {
                        outcome = Ok(v);
                        break;
                    }
                    Err(e) if ($retry)(&e) => continue,
                    Err(e) => {
                        outcome = Err(e);
                        break;
                    }
                },
            }
        }
        outcome
    }};
}

mod ai;
mod analysis;
mod assets;
mod buckets;
mod catalogue;
mod content;
mod designers;
mod dispatch;
mod events;
mod federation;
mod flow;
mod identity;
mod images;
mod jobs;
mod licenses;
mod listener;
mod liveness;
mod packages;
mod pipelines;
mod pools;
mod robots;
mod schedules;
mod service;
mod timers;
mod transactions;
mod triggers;
mod webhooks;

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

pub use ai::Admitted;
pub use assets::RunCaller;
pub use events::INTEGRATOR_LEASE;
pub use flow::{FLOW_CONSUMER, TicketQuery};
pub use images::NewImage;
pub use jobs::{JobQueryParams, NewQueueItem};
pub use liveness::SWEEP_MAX_MS;
pub use packages::NewPackage;
pub use robots::{CHECKPOINT_CAPABILITY, NewLog, Progress, Registration, StepReport};
pub use timers::{TIMER_LEASE, TickReport};
pub use transactions::TransactionResult;

use crate::audit::{self, AuditDraft, ChainBroken, Subject};
use crate::auth::{self, PasswordCost};
use crate::error::{Entity, Error, Result, StoreError};
use crate::events::Event;
use crate::ids::*;
pub(crate) use crate::limits::Delta;
use crate::model::*;
use crate::store::People as _;
use crate::store::{Commit, Counts, Store, Write};
use crate::time::{Clock, Timestamp, Tz};
use crate::transport::{Command, PollOnly, RobotTransport};

/// How many times an operation re-reads after a version conflict before giving up.
pub(crate) const CONFLICT_RETRIES: usize = 512;

/// What a decision of [`decided!`] does.
pub(crate) enum Decided<T> {
    /// Commit these writes; then the answer is `T`.
    Commit(Tx, T),
    /// Nothing to write: the answer is `T`.
    Answer(T),
    /// What was read has moved on: read and decide again.
    Again,
}

/// Engine settings.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// The server's time zone (IANA): calendar days (`maxDayNum`) and seed
    /// 000 times. Default `Asia/Shanghai`.
    pub time_zone: Tz,
    /// Session token lifetime (seed 000: 30 minutes).
    pub token_ttl_ms: u64,
    /// Wrong passwords that lock a user (seed 000 §4: five, "cumulative"):
    /// counted since the last successful login, within
    /// `failed_login_window_ms` of the first of them.
    pub max_failed_logins: u32,
    /// The window wrong passwords are counted in (default 30 minutes): a
    /// wrong password after it starts a new count.
    pub failed_login_window_ms: u64,
    /// A locked user is unlocked this long after the lock (`None`, the
    /// default: only an administrator unlocks).
    pub auto_unlock_ms: Option<u64>,
    /// A robot silent this long is Unresponsive and loses its job.
    pub heartbeat_timeout_ms: u64,
    /// Extra time a robot may stay silent beyond the timeout, in exchange for
    /// fewer writes: a heartbeat is persisted only when less than the timeout
    /// is left of the stored deadline, so a silent robot is declared lost
    /// between `heartbeat_timeout_ms` and `heartbeat_timeout_ms + heartbeat_slack_ms`
    /// after its last heartbeat. 0 (the default) persists every heartbeat.
    pub heartbeat_slack_ms: u64,
    /// Argon2 cost for new password hashes.
    pub password_cost: PasswordCost,
    /// Execute's `fileUploadUri`.
    pub file_upload_uri: Option<String>,
    /// Most log lines in one report.
    pub max_log_batch: usize,
    /// Most records `queryProcessJob` returns (`total` still counts all).
    pub max_query_records: usize,
    /// Seed for entity keys and job numbers (random when `None`). Tokens are always random.
    pub seed: Option<u64>,
    /// This engine's name in the cluster's leases (random when `None`).
    pub node: Option<u64>,
    /// How long the timer lease lasts without renewal: when the node that
    /// fires the timers stops, another takes over after at most this long.
    pub timer_lease_ms: u64,
    /// Signs the package links Execute carries (`packageDownloadUri` of a
    /// package stored here, `/v1/file/...`), so that any executor fetches
    /// them with a plain GET until they expire (`None`: links unsigned;
    /// fetching then needs robot headers).
    pub link_key: Option<crate::auth::LinkKey>,
    /// How long a signed package link works (default one hour).
    pub link_ttl_ms: u64,
    /// How long a designer may be silent (then Offline) or held unused
    /// (then reclaimed): default 90 s and 30 minutes.
    pub designer_limits: crate::designer::Limits,
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            time_zone: chrono_tz::Asia::Shanghai,
            token_ttl_ms: 30 * 60 * 1000,
            max_failed_logins: 5,
            failed_login_window_ms: 30 * 60 * 1000,
            auto_unlock_ms: None,
            heartbeat_timeout_ms: 30_000,
            heartbeat_slack_ms: 0,
            password_cost: PasswordCost::default(),
            file_upload_uri: None,
            max_log_batch: 1000,
            max_query_records: 10_000,
            seed: None,
            node: None,
            timer_lease_ms: 10_000,
            link_key: None,
            link_ttl_ms: 3_600_000,
            designer_limits: crate::designer::Limits::default(),
        }
    }
}

/// The orchestration engine over a store `S`.
pub struct Engine<S> {
    store: S,
    clock: Arc<dyn Clock>,
    transport: Arc<dyn RobotTransport>,
    config: EngineConfig,
    node: u64,
    rng: Mutex<StdRng>,
    claims: dispatch::Claims,
    /// Until when this node's lease [`node_lease`] is known to be held.
    node_lease_until: std::sync::atomic::AtomicI64,
    /// The timer lease as this node holds it (see `timers.rs`).
    timer_lease: timers::TimerLease,
    /// This node's share of the pending jobs, as of the live node leases
    /// last read (see [`crate::share`]).
    share: Mutex<crate::share::Share>,
    /// The live nodes' numbers, this one's too, in rank order (as `share`).
    live_nodes: Mutex<Vec<u64>>,
    /// The current calendar day: its first instant, the next day's, its number.
    day: Mutex<(Timestamp, Timestamp, i64)>,
    /// Schedules: the earliest next fire time known, and when to look at
    /// all of them again (see `schedules.rs`).
    schedule_scan: Mutex<(Option<Timestamp>, Timestamp)>,
    /// Workflows and the directory, as last read (see `flow.rs`).
    flow_cache: flow::FlowCache,
    /// When to size the robot pools again (see `pools.rs`).
    pool_scan: Mutex<Timestamp>,
    /// What this node records as it works (see [`crate::metrics`]).
    metrics: crate::metrics::Metrics,
    /// What this node heard from robots (see `liveness.rs`).
    heard: liveness::Heard,
}

/// Writes, audit events and commands of one decision; bumps each entity's version once.
#[derive(Default)]
pub(crate) struct Tx {
    commit: Commit,
    /// Dispatch latencies (ms) to record once the commit lands.
    dispatched: Vec<i64>,
}

impl Tx {
    fn put(&mut self, w: Write) -> &mut Self {
        self.commit.writes.push(w);
        self
    }
    pub(crate) fn job(&mut self, mut j: Job) -> &mut Self {
        j.version += 1;
        self.put(Write::Job(j))
    }
    pub(crate) fn process(&mut self, mut p: Process) -> &mut Self {
        p.version += 1;
        self.put(Write::Process(p))
    }
    /// Changes the counters of `p` (see [`Counts`]): by `running` running
    /// jobs and `pending_items` New queue items, and `successes` successful
    /// runs on `day`. The change is recorded as a delta, which the store
    /// applies to the process as stored: a snapshot that lags (a node's copy
    /// that has not yet seen another node's dispatch) never turns a freed
    /// slot into no change. `p` follows, for decisions later in this commit.
    pub(crate) fn count(&mut self, p: &mut Process, delta: Delta, day: i64) -> &mut Self {
        let c = Counts {
            process: p.id,
            running: delta.running,
            pending_items: delta.pending_items,
            successes: delta.successes,
            day,
            limit_pending: delta.limit_pending,
        };
        let add = |n: u32, d: i64| u32::try_from((i64::from(n) + d).max(0)).unwrap_or(u32::MAX);
        p.running = add(p.running, c.running);
        p.pending_items = add(p.pending_items, c.pending_items);
        if c.successes > 0 {
            p.day_successes = p.successes_on(day) + c.successes;
            p.day = p.day.max(day);
        }
        self.counts_of(c)
    }
    fn counts_of(&mut self, c: Counts) -> &mut Self {
        if c.is_empty() {
            return self;
        }
        for w in &mut self.commit.writes {
            if let Write::Counts(old) = w
                && old.process == c.process
            {
                old.merge(c);
                return self;
            }
        }
        self.put(Write::Counts(c))
    }
    pub(crate) fn robot(&mut self, mut r: Robot) -> &mut Self {
        r.version += 1;
        self.put(Write::Robot(r))
    }
    pub(crate) fn item(&mut self, mut i: QueueItem) -> &mut Self {
        i.version += 1;
        self.put(Write::Item(i))
    }
    pub(crate) fn user(&mut self, mut u: User) -> crate::error::Result<&mut Self> {
        u.version += 1;
        self.record(&u)
    }
    pub(crate) fn audit(
        &mut self,
        at: Timestamp,
        actor: Actor,
        action: &'static str,
        subject: impl Into<Subject>,
        detail: String,
    ) -> &mut Self {
        self.commit.audit.push(AuditDraft {
            at,
            actor,
            action,
            subject: subject.into(),
            detail,
            event: None,
        });
        self
    }
    /// Records `ev` as the domain event of the audit event recorded last
    /// (see [`crate::events`]); without one, as an audit event of its own.
    pub(crate) fn event(&mut self, at: Timestamp, ev: Event) -> &mut Self {
        let event = Some(Arc::new(ev));
        match self.commit.audit.last_mut() {
            Some(d) if d.event.is_none() => d.event = event,
            _ => {
                self.commit.audit.push(AuditDraft {
                    at,
                    actor: Actor::System,
                    action: event.as_ref().map_or("event", |e| e.kind()),
                    subject: Subject::Text("".into()),
                    detail: String::new(),
                    event,
                });
            }
        }
        self
    }
    /// Records the event a robot's change from `before` is, if it is one
    /// (see [`crate::events::robot_changed`]).
    pub(crate) fn robot_changed(&mut self, at: Timestamp, before: RobotState, r: &Robot) -> &mut Self {
        match crate::events::robot_changed(before, r) {
            Some(ev) => self.event(at, ev),
            None => self,
        }
    }
    /// Writes a record (see [`crate::record`]).
    pub(crate) fn record<R: crate::record::Record>(&mut self, r: &R) -> crate::error::Result<&mut Self> {
        Ok(self.put(Write::record(r)?))
    }
    pub(crate) fn command(&mut self, robot: RobotId, cmd: Command) -> &mut Self {
        self.commit.commands.push((robot, cmd));
        self
    }
}

pub(crate) fn is_conflict(e: &Error) -> bool {
    matches!(e, Error::Store(StoreError::Conflict))
}

/// Whether a refusal may rest on a copy of a robot or a job that lags the
/// durable store (see [`Store::confirm`]).
pub(crate) fn may_rest_on_a_copy(e: &Error) -> bool {
    matches!(
        e,
        Error::NotConnected
            | Error::Replaced
            | Error::NotFound(..)
            | Error::PermissionDenied(_)
            | Error::Rejected(_)
            | Error::InvalidArgument(_)
            | Error::DuplicateConnection
    )
}

/// The lease a live node holds (see [`Engine::tick`]).
pub fn node_lease(node: u64) -> String {
    format!("{NODE_LEASE_PREFIX}{node}")
}

/// What the names of node leases start with.
const NODE_LEASE_PREFIX: &str = "node:";

/// What a successful login gives (seed 000 §3.1).
#[derive(Debug, Clone)]
pub struct Login {
    /// The opaque token for `X-Access-Token`.
    pub token: String,
    /// When it stops working.
    pub expires_at: Timestamp,
    /// Who logged in.
    pub user: User,
    /// Exactly the processes granted to the user.
    pub processes: Vec<Process>,
}

/// A new user.
#[derive(Debug, Clone, Default)]
pub struct NewUser {
    /// Login name.
    pub name: String,
    /// Password (hashed with argon2; never stored or logged as given).
    pub password: String,
    /// Role names.
    pub roles: Vec<String>,
    /// Keys of processes the user may start.
    pub grants: Vec<Key>,
}

/// Name of the built-in role with every permission.
pub const ADMIN_ROLE: &str = "admin";

impl<S: Store> Engine<S> {
    /// An engine over `store`, taking time from `clock`, for robots that poll.
    pub fn new(store: S, clock: Arc<dyn Clock>, config: EngineConfig) -> Self {
        let rng = match config.seed {
            Some(s) => StdRng::seed_from_u64(s),
            None => StdRng::from_rng(&mut rand::rng()),
        };
        Engine {
            store,
            clock,
            transport: Arc::new(PollOnly),
            node: config.node.unwrap_or_else(rand::random),
            config,
            rng: Mutex::new(rng),
            claims: dispatch::Claims::default(),
            node_lease_until: std::sync::atomic::AtomicI64::new(i64::MIN),
            timer_lease: timers::TimerLease::default(),
            share: Mutex::new(crate::share::Share::ALONE),
            live_nodes: Mutex::new(Vec::new()),
            day: Mutex::new((Timestamp(0), Timestamp(0), 0)),
            schedule_scan: Mutex::new((None, Timestamp(i64::MIN))),
            flow_cache: flow::FlowCache::default(),
            pool_scan: Mutex::new(Timestamp(i64::MIN)),
            metrics: crate::metrics::Metrics::default(),
            heard: liveness::Heard::default(),
        }
    }

    /// Sets who is told when robots have new commands (the WebSocket hub).
    pub fn with_transport(mut self, transport: Arc<dyn RobotTransport>) -> Self {
        self.transport = transport;
        self
    }

    /// The store.
    pub fn store(&self) -> &S {
        &self.store
    }

    /// The settings.
    pub fn config(&self) -> &EngineConfig {
        &self.config
    }

    /// This engine's name in the cluster's leases.
    pub fn node(&self) -> u64 {
        self.node
    }

    /// Now, by the engine's clock.
    pub fn now(&self) -> Timestamp {
        self.clock.now()
    }

    /// How long a heartbeat keeps a robot alive.
    fn robot_window(&self) -> u64 {
        self.config
            .heartbeat_timeout_ms
            .saturating_add(self.config.heartbeat_slack_ms)
    }

    /// Today's number in the server's calendar (see [`Timestamp::day`]);
    /// the bounds of the current day are kept, so most calls look up no zone.
    fn today(&self, now: Timestamp) -> i64 {
        let mut d = self.day.lock().unwrap_or_else(|p| p.into_inner());
        if !(d.0 <= now && now < d.1) {
            *d = now.day_bounds(self.config.time_zone);
        }
        d.2
    }

    /// A random UUID, hyphenated (seed 003 `message_id`).
    fn new_uuid(&self) -> String {
        let mut g = self.rng.lock().unwrap_or_else(|p| p.into_inner());
        uuid::Builder::from_random_bytes(g.random())
            .into_uuid()
            .hyphenated()
            .to_string()
    }

    fn new_key(&self) -> Key {
        let mut g = self.rng.lock().unwrap_or_else(|p| p.into_inner());
        Key::from_random(g.random())
    }

    /// A job's key (a v7 UUID, [`Key::ordered`]: the time it was made and
    /// 74 random bits; it tells nothing of how many jobs there are, and the
    /// stores' key indexes grow at one end) and its seed 000 `jobNumber` (a
    /// ten-digit random number).
    fn key_and_number(&self, now: Timestamp) -> (Key, i64) {
        let mut g = self.rng.lock().unwrap_or_else(|p| p.into_inner());
        (
            Key::ordered(now, g.random()),
            g.random_range(1_000_000_000..10_000_000_000),
        )
    }

    async fn next_id(&self, kind: IdKind) -> Result<i64> {
        Ok(self.store.next_id(kind).await?)
    }

    /// Commits `tx`; then its commands reach their robots (see
    /// [`RobotTransport`]): pushed to connections here, else left in the
    /// outbox with the robot woken.
    async fn commit(&self, mut tx: Tx) -> Result<()> {
        if tx.commit.commands.is_empty() {
            return self.store_commit(tx.commit, &tx.dispatched).await;
        }
        let (pushed, queued): (Vec<_>, Vec<_>) = std::mem::take(&mut tx.commit.commands)
            .into_iter()
            .partition(|(r, _)| self.transport.is_here(*r));
        tx.commit.commands = queued;
        let mut woken: Vec<RobotId> = tx.commit.commands.iter().map(|(r, _)| *r).collect();
        self.store_commit(tx.commit, &tx.dispatched).await?;
        woken.dedup();
        for r in woken {
            self.transport.wake(r);
        }
        let mut by_robot: Vec<(RobotId, Vec<Command>)> = Vec::new();
        for (r, c) in pushed {
            match by_robot.iter_mut().find(|(robot, _)| *robot == r) {
                Some((_, cs)) => cs.push(c),
                None => by_robot.push((r, vec![c])),
            }
        }
        for (r, cs) in by_robot {
            // Handed over when the transport writes them (`Engine::handed`).
            self.transport.push(r, self.with_run_tokens(cs));
        }
        Ok(())
    }

    /// The store's commit, counted in [`Engine::metrics`] and, one in
    /// [`crate::metrics::TIMED_EVERY`], timed (reading the clock costs as
    /// much as the rest of an in-memory commit's bookkeeping).
    async fn store_commit(&self, commit: Commit, dispatched: &[i64]) -> Result<()> {
        use std::sync::atomic::Ordering::Relaxed;
        let m = &self.metrics;
        let began = m.time_this_commit().then(std::time::Instant::now);
        let result = self.store.commit(commit).await;
        match &result {
            Ok(()) => {
                if let Some(t) = began {
                    m.commit_seconds.observe(t.elapsed().as_secs_f64());
                }
                m.commits.fetch_add(1, Relaxed);
                for ms in dispatched {
                    m.dispatch_seconds.observe_ms(*ms);
                }
            }
            Err(crate::error::StoreError::Conflict) => {
                m.conflicts.fetch_add(1, Relaxed);
            }
            Err(_) => {}
        }
        Ok(result?)
    }

    /// What this node has recorded as it works: commits, dispatch latency,
    /// webhook deliveries, HTTP requests (the adapters record those).
    pub fn metrics(&self) -> &crate::metrics::Metrics {
        &self.metrics
    }

    /// Whether node `node` still holds its lease [`node_lease`].
    async fn node_alive(&self, node: u64, now: Timestamp) -> Result<bool> {
        Ok(self.store.lease_holder(&node_lease(node), now).await? == Some(node))
    }

    /// How long a node's lease lasts: within half a heartbeat timeout of a
    /// node's death its WebSocket robots may register on another node. A
    /// host calls [`Engine::keep_node_lease`] (or [`Engine::tick`]) at least
    /// every sixth of it.
    pub fn node_lease_ms(&self) -> u64 {
        self.config
            .timer_lease_ms
            .min(self.config.heartbeat_timeout_ms / 2)
            .max(1)
    }

    /// Keeps this node's lease [`node_lease`], which says the node lives
    /// (the robots whose sockets it holds are alive as long as it says so):
    /// renewed once less than two thirds of it is left. A host calls it on
    /// its own timer, so that slow ticks do not let the lease lapse. Answers
    /// whether the node holds it. Also reads which nodes live, for this
    /// node's [share](crate::share) of the pending jobs.
    pub async fn keep_node_lease(&self) -> Result<bool> {
        let now = self.now();
        if !self.renew_node_lease(now).await? {
            self.read_share(now).await?;
        }
        Ok(self.node_lease_until.load(std::sync::atomic::Ordering::Relaxed) > now.0)
    }

    /// This node's share of the pending jobs, as last read.
    pub fn share(&self) -> crate::share::Share {
        *self.share.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Reads the live nodes and takes this node's share among them.
    async fn read_share(&self, now: Timestamp) -> Result<()> {
        let mut live = self.store.lease_holders(NODE_LEASE_PREFIX, now).await?;
        let share = crate::share::Share::new(self.node, &live);
        live.push(self.node);
        live.sort_unstable();
        live.dedup();
        *self.live_nodes.lock().unwrap_or_else(|p| p.into_inner()) = live;
        *self.share.lock().unwrap_or_else(|p| p.into_inner()) = share;
        Ok(())
    }

    /// Takes or renews this node's lease once less than two thirds of it
    /// are left (so it dies at least half a lease before its lease runs out),
    /// and then reads which nodes live. Answers whether it did.
    async fn renew_node_lease(&self, now: Timestamp) -> Result<bool> {
        let lease_ms = self.node_lease_ms();
        let until = self.node_lease_until.load(std::sync::atomic::Ordering::Relaxed);
        if until.saturating_sub(now.0) > (lease_ms * 2 / 3) as i64 {
            return Ok(false);
        }
        let end = now.plus_ms(lease_ms);
        if self.store.lease(&node_lease(self.node), self.node, now, end).await? {
            self.node_lease_until.store(end.0, std::sync::atomic::Ordering::Relaxed);
        }
        self.read_share(now).await?;
        Ok(true)
    }

    /// Commits a security event that must be recorded even though the
    /// operation fails; returns the error to answer with.
    async fn record_failure(&self, tx: Tx, err: Error) -> Error {
        match self.commit(tx).await {
            Ok(()) | Err(Error::Store(StoreError::Conflict)) => err,
            Err(e) => e,
        }
    }

    // ----------------------------------------------------------------- people

    /// Whether `actor` holds `perm`.
    pub async fn has_permission(&self, actor: Actor, perm: Permission) -> Result<bool> {
        match actor {
            Actor::System => Ok(true),
            Actor::Robot(_) => Ok(false),
            Actor::User(id) => {
                let Some(user) = self.store.user(id).await? else {
                    return Ok(false);
                };
                for r in &user.roles {
                    if self
                        .store
                        .role(*r)
                        .await?
                        .is_some_and(|role| role.permissions.contains(&perm))
                    {
                        return Ok(true);
                    }
                }
                Ok(false)
            }
        }
    }

    /// Refuses `actor` unless one of its roles grants `perm`; a refusal is
    /// recorded in the audit chain (`permission.denied`).
    pub async fn require(&self, actor: Actor, perm: Permission) -> Result<()> {
        if self.has_permission(actor, perm).await? {
            return Ok(());
        }
        let mut tx = Tx::default();
        tx.audit(
            self.now(),
            actor,
            "permission.denied",
            format!("{perm:?}"),
            String::new(),
        );
        Err(self
            .record_failure(tx, Error::PermissionDenied(format!("{perm:?} is required")))
            .await)
    }

    /// Creates a role.
    pub async fn create_role(&self, actor: Actor, name: &str, permissions: BTreeSet<Permission>) -> Result<Role> {
        self.require(actor, Permission::ManageUsers).await?;
        let name = non_empty(name, "role name")?;
        if self.store.role_by_name(name).await?.is_some() {
            return Err(Error::AlreadyExists(format!("role {name}")));
        }
        let role = Role {
            id: RoleId(self.next_id(IdKind::Role).await?),
            key: self.new_key(),
            version: 1,
            name: name.into(),
            permissions,
        };
        let mut tx = Tx::default();
        tx.record(&role)?.audit(
            self.now(),
            actor,
            "role.create",
            Subject::Id("role", role.id.0),
            format!("{:?}", role.permissions),
        );
        self.commit(tx).await.map_err(dup_as_exists)?;
        Ok(role)
    }

    /// Creates the `admin` role (every permission) and user `name` holding
    /// it, unless they exist; an `admin` role of an earlier release gets the
    /// permissions added since.
    pub async fn ensure_admin(&self, name: &str, password: &str) -> Result<User> {
        match self.store.role_by_name(ADMIN_ROLE).await? {
            None => match self
                .create_role(Actor::System, ADMIN_ROLE, Permission::ALL.into_iter().collect())
                .await
            {
                Ok(_) | Err(Error::AlreadyExists(_)) => {}
                Err(e) => return Err(e),
            },
            Some(role) if Permission::ALL.iter().any(|p| !role.permissions.contains(p)) => {
                let added: Vec<Permission> = Permission::ALL
                    .into_iter()
                    .filter(|p| !role.permissions.contains(p))
                    .collect();
                let role = Role {
                    version: role.version + 1,
                    permissions: Permission::ALL.into_iter().collect(),
                    ..role
                };
                let mut tx = Tx::default();
                tx.record(&role)?.audit(
                    self.now(),
                    Actor::System,
                    "role.upgrade",
                    Subject::Id("role", role.id.0),
                    format!("added {added:?}"),
                );
                match self.commit(tx).await {
                    // Another node upgraded it first.
                    Ok(()) => {}
                    Err(e) if is_conflict(&e) => {}
                    Err(e) => return Err(e),
                }
            }
            Some(_) => {}
        }
        if let Some(u) = self.store.user_by_name(name).await? {
            return Ok(u);
        }
        self.create_user(
            Actor::System,
            NewUser {
                name: name.into(),
                password: password.into(),
                roles: vec![ADMIN_ROLE.into()],
                grants: vec![],
            },
        )
        .await
    }

    /// Creates a user.
    pub async fn create_user(&self, actor: Actor, new: NewUser) -> Result<User> {
        self.require(actor, Permission::ManageUsers).await?;
        let name = non_empty(&new.name, "user name")?;
        if new.password.is_empty() {
            return Err(Error::InvalidArgument("password must not be empty".into()));
        }
        if self.store.user_by_name(name).await?.is_some() {
            return Err(Error::AlreadyExists(format!("user {name}")));
        }
        let mut roles = BTreeSet::new();
        for r in &new.roles {
            let role = self
                .store
                .role_by_name(r)
                .await?
                .ok_or_else(|| Error::NotFound(Entity::Role, r.clone()))?;
            roles.insert(role.id);
        }
        let mut grants = BTreeSet::new();
        for k in &new.grants {
            grants.insert(self.process_by_key(*k).await?.id);
        }
        let now = self.now();
        let user = User {
            id: UserId(self.next_id(IdKind::User).await?),
            key: self.new_key(),
            version: 0,
            name: name.into(),
            password_hash: auth::hash_password(&new.password, self.config.password_cost)?,
            failed_logins: 0,
            first_failed_at: None,
            locked_at: None,
            locked: false,
            disabled: false,
            roles,
            grants,
            folders: BTreeSet::new(),
            created_at: now,
            directory: None,
        };
        let mut tx = Tx::default();
        tx.user(user.clone())?.audit(
            now,
            actor,
            "user.create",
            Subject::Id("user", user.id.0),
            user.name.clone(),
        );
        self.commit(tx).await.map_err(dup_as_exists)?;
        Ok(User { version: 1, ..user })
    }

    /// All users.
    pub async fn users(&self, actor: Actor) -> Result<Vec<User>> {
        self.require(actor, Permission::ManageUsers).await?;
        Ok(self.store.users().await?)
    }

    /// Unlocks a user locked by wrong passwords.
    pub async fn unlock_user(&self, actor: Actor, name: &str) -> Result<User> {
        self.require(actor, Permission::ManageUsers).await?;
        self.update_user(actor, name, "user.unlock", |u| {
            u.locked = false;
            u.locked_at = None;
            u.failed_logins = 0;
            u.first_failed_at = None;
            Ok(())
        })
        .await
    }

    /// Grants a process to a user.
    pub async fn grant(&self, actor: Actor, user: &str, process: Key) -> Result<User> {
        self.require(actor, Permission::ManageUsers).await?;
        let p = self.process_by_key(process).await?;
        self.update_user(actor, user, "user.grant", |u| {
            u.grants.insert(p.id);
            Ok(())
        })
        .await
    }

    /// Disables a user (`disabled`: no login, and every session of theirs
    /// stops working at once) or enables them again.
    pub async fn set_user_disabled(&self, actor: Actor, name: &str, disabled: bool) -> Result<User> {
        self.require(actor, Permission::ManageUsers).await?;
        let target = self
            .user_named(name)
            .await?
            .ok_or_else(|| Error::NotFound(Entity::User, name.into()))?;
        if disabled && actor == Actor::User(target.id) {
            return Err(Error::InvalidArgument(
                "an administrator cannot disable themself".into(),
            ));
        }
        let action = if disabled { "user.disable" } else { "user.enable" };
        self.update_user(actor, name, action, |u| {
            u.disabled = disabled;
            Ok(())
        })
        .await
    }

    /// Grants a folder to a user: every process in it, present and future.
    pub async fn grant_folder(&self, actor: Actor, user: &str, folder: &str) -> Result<User> {
        self.require(actor, Permission::ManageUsers).await?;
        let folder = folder.trim();
        if folder.is_empty() || folder.chars().count() > 256 || folder.chars().any(char::is_control) {
            return Err(Error::InvalidArgument(
                "a folder's name has 1 to 256 characters and no control characters".into(),
            ));
        }
        self.update_user(actor, user, "user.grant_folder", |u| {
            u.folders.insert(folder.to_owned());
            Ok(())
        })
        .await
    }

    /// Takes a folder grant away from a user (the processes granted one by
    /// one stay granted).
    pub async fn revoke_folder(&self, actor: Actor, user: &str, folder: &str) -> Result<User> {
        self.require(actor, Permission::ManageUsers).await?;
        self.update_user(actor, user, "user.revoke_folder", |u| {
            u.folders.remove(folder.trim());
            Ok(())
        })
        .await
    }

    /// Takes a process away from a user.
    pub async fn revoke(&self, actor: Actor, user: &str, process: Key) -> Result<User> {
        self.require(actor, Permission::ManageUsers).await?;
        let p = self.process_by_key(process).await?;
        self.update_user(actor, user, "user.revoke", |u| {
            u.grants.remove(&p.id);
            Ok(())
        })
        .await
    }

    async fn update_user(
        &self,
        actor: Actor,
        name: &str,
        action: &'static str,
        f: impl Fn(&mut User) -> Result<()>,
    ) -> Result<User> {
        decided!(self, |_attempt| {
            let mut u = self
                .store
                .user_by_name(name)
                .await?
                .ok_or_else(|| Error::NotFound(Entity::User, name.into()))?;
            f(&mut u)?;
            let mut tx = Tx::default();
            tx.user(u.clone())?
                .audit(self.now(), actor, action, Subject::Id("user", u.id.0), String::new());
            let u = User {
                version: u.version + 1,
                ..u
            };
            Ok(Decided::Commit(tx, u))
        })
    }

    /// Seed 000 §3.1 login. Five wrong passwords in a row lock the user.
    pub async fn login(&self, name: &str, password: &str) -> Result<Login> {
        self.login_with(name, password, None).await
    }

    /// [`Engine::login`], with the organisation's directory checking the
    /// passwords of its users (see [`crate::identity`]). A directory user
    /// without a directory, or with one that does not answer, is refused
    /// with [`Error::DirectoryUnavailable`] (nothing counted against it);
    /// an empty password is never sent to the directory.
    pub async fn login_with(
        &self,
        name: &str,
        password: &str,
        directory: Option<&dyn crate::identity::Directory>,
    ) -> Result<Login> {
        let now = self.now();
        let Some(mut user) = self.store.user_by_name(name).await? else {
            let mut tx = Tx::default();
            tx.audit(now, Actor::System, "login.failed", "user:?", "unknown user".into());
            return Err(self.record_failure(tx, Error::BadCredentials).await);
        };
        let actor = Actor::User(user.id);
        let mut tx = Tx::default();
        let mut unlocked = false;
        if user.disabled {
            tx.audit(
                now,
                actor,
                "login.refused",
                Subject::Id("user", user.id.0),
                "disabled".into(),
            );
            return Err(self.record_failure(tx, Error::BadCredentials).await);
        }
        if user.locked {
            let period_over = self
                .config
                .auto_unlock_ms
                .zip(user.locked_at)
                .is_some_and(|(ms, at)| now >= at.plus_ms(ms));
            if !period_over {
                tx.audit(
                    now,
                    actor,
                    "login.refused",
                    Subject::Id("user", user.id.0),
                    "locked".into(),
                );
                return Err(self.record_failure(tx, Error::UserLocked).await);
            }
            user.locked = false;
            user.locked_at = None;
            user.failed_logins = 0;
            user.first_failed_at = None;
            unlocked = true;
            tx.audit(
                now,
                Actor::System,
                "user.unlock",
                Subject::Id("user", user.id.0),
                "lock period over".into(),
            );
        }
        let right = match (&user.directory, directory) {
            (None, _) => auth::verify_password(password, &user.password_hash),
            // An empty password would be an anonymous bind, which succeeds.
            (Some(_), _) if password.is_empty() => false,
            // The sign-on provider's users have no password here.
            (Some(dn), _) if dn.starts_with(crate::identity::SSO_PREFIX) => false,
            // The directory's own code logs why it did not answer.
            (Some(dn), Some(d)) => match d.verify(dn, password).await {
                Ok(right) => right,
                Err(_) => {
                    tx.audit(
                        now,
                        actor,
                        "login.refused",
                        Subject::Id("user", user.id.0),
                        "directory unavailable".into(),
                    );
                    return Err(self.record_failure(tx, Error::DirectoryUnavailable).await);
                }
            },
            (Some(_), None) => {
                tx.audit(
                    now,
                    actor,
                    "login.refused",
                    Subject::Id("user", user.id.0),
                    "no directory configured".into(),
                );
                return Err(self.record_failure(tx, Error::DirectoryUnavailable).await);
            }
        };
        if !right {
            // Counted since the last success, within the window of the first miss.
            let window = self.config.failed_login_window_ms;
            if user.first_failed_at.is_none_or(|t| now > t.plus_ms(window)) {
                user.failed_logins = 0;
                user.first_failed_at = Some(now);
            }
            user.failed_logins += 1;
            tx.audit(
                now,
                actor,
                "login.failed",
                Subject::Id("user", user.id.0),
                format!("attempt {}", user.failed_logins),
            );
            let err = if user.failed_logins >= self.config.max_failed_logins {
                user.locked = true;
                user.locked_at = Some(now);
                tx.audit(
                    now,
                    Actor::System,
                    "user.lock",
                    Subject::Id("user", user.id.0),
                    "too many wrong passwords".into(),
                );
                Error::UserLocked
            } else {
                Error::BadCredentials
            };
            tx.user(user)?;
            return Err(self.record_failure(tx, err).await);
        }
        let (token, hash) = auth::new_token();
        let expires_at = now.plus_ms(self.config.token_ttl_ms);
        if user.failed_logins > 0 || user.first_failed_at.is_some() || unlocked {
            user.failed_logins = 0;
            user.first_failed_at = None;
            tx.user(user.clone())?;
        }
        tx.put(Write::Token(Token {
            hash,
            user: user.id,
            created_at: now,
            expires_at,
        }))
        .audit(now, actor, "login.ok", Subject::Id("user", user.id.0), String::new());
        self.commit(tx).await?;
        let mut processes = Vec::with_capacity(user.grants.len());
        if user.folders.is_empty() {
            for p in &user.grants {
                if let Some(p) = self.store.process(*p).await? {
                    processes.push(p);
                }
            }
        } else {
            processes = self.store.processes().await?;
            processes.retain(|p| user.granted(p));
        }
        Ok(Login {
            token,
            expires_at,
            user,
            processes,
        })
    }

    /// Opens a session for `user` without a password, for a caller that
    /// proved itself otherwise (an OAuth client's secret): a token that
    /// lasts `ttl_ms`, audited as a login `via` that caller.
    pub async fn open_session(&self, user: &User, via: &str, ttl_ms: u64) -> Result<(String, Timestamp)> {
        if user.locked {
            return Err(Error::UserLocked);
        }
        if user.disabled {
            return Err(Error::Unauthenticated);
        }
        let now = self.now();
        let (token, hash) = auth::new_token();
        let expires_at = now.plus_ms(ttl_ms);
        let mut tx = Tx::default();
        tx.put(Write::Token(Token {
            hash,
            user: user.id,
            created_at: now,
            expires_at,
        }))
        .audit(
            now,
            Actor::User(user.id),
            "login.ok",
            Subject::Id("user", user.id.0),
            format!("via {via}"),
        );
        self.commit(tx).await?;
        Ok((token, expires_at))
    }

    /// Installs `token` (a personal access token of the configuration) as a
    /// session of `user` lasting `ttl_ms`, unless it is installed already.
    pub async fn install_token(&self, user: &User, token: &str, via: &str, ttl_ms: u64) -> Result<()> {
        let hash = auth::token_hash(token);
        if let Some(t) = self.store.token(hash).await?
            && t.user == user.id
            && t.expires_at > self.now()
        {
            return Ok(());
        }
        let now = self.now();
        let mut tx = Tx::default();
        tx.put(Write::Token(Token {
            hash,
            user: user.id,
            created_at: now,
            expires_at: now.plus_ms(ttl_ms),
        }))
        .audit(
            now,
            Actor::System,
            "token.install",
            Subject::Id("user", user.id.0),
            format!("via {via}"),
        );
        self.commit(tx).await?;
        Ok(())
    }

    /// The user behind a token, if it is valid and not expired.
    pub async fn authenticate(&self, token: &str) -> Result<User> {
        let t = self
            .store
            .token(auth::token_hash(token))
            .await?
            .ok_or(Error::Unauthenticated)?;
        if t.expires_at <= self.now() {
            return Err(Error::Unauthenticated);
        }
        match self.store.user(t.user).await? {
            Some(u) if !u.locked && !u.disabled => Ok(u),
            _ => Err(Error::Unauthenticated),
        }
    }

    /// Ends a session.
    pub async fn logout(&self, token: &str) -> Result<()> {
        let user = self.authenticate(token).await?;
        let mut tx = Tx::default();
        tx.put(Write::RevokeToken(auth::token_hash(token))).audit(
            self.now(),
            Actor::User(user.id),
            "logout",
            Subject::Id("user", user.id.0),
            String::new(),
        );
        self.commit(tx).await
    }

    // ----------------------------------------------------------------- audit

    /// Audit events after `after`, at most `limit`.
    pub async fn audit_events(&self, actor: Actor, after: u64, limit: usize) -> Result<Vec<AuditEvent>> {
        self.require(actor, Permission::ViewAudit).await?;
        Ok(self.store.audit(after, limit).await?)
    }

    /// Re-walks the whole audit chain; `Ok(n)` is the number of events verified.
    pub async fn verify_audit(&self) -> Result<Result<u64, ChainBroken>> {
        const PAGE: usize = 4096;
        let mut v = audit::Verifier::default();
        let purged_through = crate::store::Records::get::<crate::retention::LogCursor>(
            &self.store,
            crate::retention::LogCursor::start().name,
        )
        .await?
        .map(|c| c.through);
        loop {
            let page = self.store.audit(v.count(), PAGE).await?;
            if page.is_empty() {
                let waiting = self.store.unintegrated().await?;
                if waiting.commits > 0 && waiting.oldest_wait_ms > audit::INTEGRATION_BOUND_MS {
                    return Ok(Err(ChainBroken {
                        seq: v.count() + 1,
                        why: "an event was committed but never integrated into the chain",
                    }));
                }
                return Ok(Ok(v.count()));
            }
            for e in &page {
                if let Err(broken) = v.push(e) {
                    return Ok(Err(broken));
                }
                if !self.run_log_intact(e, purged_through).await? {
                    return Ok(Err(ChainBroken {
                        seq: e.seq,
                        why: "the job's run log changed since it ended",
                    }));
                }
            }
        }
    }

    /// Whether the run log sealed by `e` (a job's end, if it seals one) is
    /// as it was sealed. A run log the retention purged (a job created
    /// through `purged_through`, no line left) is not held against it.
    async fn run_log_intact(&self, e: &AuditEvent, purged_through: Option<Timestamp>) -> Result<bool> {
        let Some(seal) = audit::sealed_run_log(&e.detail) else {
            return Ok(true);
        };
        let Some(id) = e.subject.strip_prefix("job:").and_then(|s| s.parse().ok()) else {
            return Ok(true);
        };
        let id = JobId(id);
        let logs = self.store.logs(id).await?;
        if audit::run_log_matches(seal, &logs) {
            return Ok(true);
        }
        let purged = match (logs.is_empty(), purged_through, self.store.job(id).await?) {
            (true, Some(through), Some(job)) => job.created_at <= through,
            _ => false,
        };
        Ok(purged)
    }

    async fn process_by_key(&self, key: Key) -> Result<Process> {
        self.store
            .process_by_key(key)
            .await?
            .ok_or_else(|| Error::NotFound(Entity::Process, key.to_string()))
    }
}

fn non_empty<'a>(s: &'a str, what: &str) -> Result<&'a str> {
    let t = s.trim();
    if t.is_empty() || t.len() > 256 {
        return Err(Error::InvalidArgument(format!("{what} must be 1 to 256 characters")));
    }
    Ok(t)
}

fn dup_as_exists(e: Error) -> Error {
    match e {
        Error::Store(StoreError::Duplicate(what)) => Error::AlreadyExists(what.into()),
        e => e,
    }
}
