//! Deterministic simulation of a cluster: two engine nodes over one durable
//! store, each reading through a node cache that lags the other node's
//! commits by a random number of steps (as `rpa-store-sql` on PostgreSQL
//! does), robots over HTTP (any node may take any call) and over WebSocket
//! (the connection lives on one node), one node killed mid-run (its timer
//! lease and node lease expire; its WebSocket robots register again on the
//! survivor). No robot dies or hangs, so the promise is strict: every run is
//! executed exactly once, a robot is never refused a report about a run it
//! holds, every job ends Successful, and the audit chain verifies. The
//! database integrates audit events after their commits, as PostgreSQL
//! does: the holder of the integrator lease links them into the chain now
//! and then, and when it dies another node takes over; in the end every
//! event committed has its place.
//!
//! The node cache here ([`Node`]) is a [`ReadCache`](rpa_core::ReadCache) in front of
//! a shared [`MemoryStore`] that plays the database: reads come from the
//! cache (misses read through), commits go to the database and then into
//! the committing node's cache, other nodes take the changed rows in when
//! their delivery comes, a refused commit re-reads what it wrote, and
//! [`Store::confirm`] re-reads the robot and run from the database. A
//! delivery that brings a job waiting for a robot, or an idle robot, rings
//! the node's doorbell (most of the time: a ring may be lost), and the node
//! dispatches, as a server does.
//!
//! `SIM_SEEDS=n` runs seeds 0..n (default 100); `SIM_SEED=s` replays one.

mod common;

use std::collections::{HashMap, VecDeque};
use std::panic::{AssertUnwindSafe, catch_unwind, resume_unwind};
use std::sync::{Arc, Mutex};

use common::{SECRET, T0, block};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rpa_core::audit::Verifier;
use rpa_core::auth::{PasswordCost, supplier_proof};
use rpa_core::engine::NewUser;
use rpa_core::error::StoreError;
use rpa_core::ids::*;
use rpa_core::job::FinishStatus;
use rpa_core::model::*;
use rpa_core::record::{Cell, Kind, Row, Select};
use rpa_core::store::prelude::*;
use rpa_core::store::{Commit, Due, Integrated, JobQuery, StoreResult, Unintegrated, Write};
use rpa_core::transport::Command;
use rpa_core::{Engine, EngineConfig, Error, Key, ManualClock, MemoryStore, Timestamp};
use serde_json::json;

/// Rows a commit changed, by kind (what a PostgreSQL node announces).
#[derive(Debug, Default, Clone)]
struct Changed {
    jobs: Vec<JobId>,
    items: Vec<QueueItemId>,
    robots: Vec<RobotId>,
    processes: Vec<ProcessId>,
    vendors: Vec<String>,
    tokens: Vec<[u8; 32]>,
}

impl Changed {
    fn of(c: &Commit) -> Changed {
        let mut ch = Changed::default();
        for w in &c.writes {
            match w {
                Write::Job(j) => ch.jobs.push(j.id),
                Write::Item(i) => ch.items.push(i.id),
                Write::Robot(r) => ch.robots.push(r.id),
                Write::Process(p) => ch.processes.push(p.id),
                Write::Counts(n) => ch.processes.push(n.process),
                Write::Vendor(v) => ch.vendors.push(v.code.clone()),
                Write::Token(t) => ch.tokens.push(t.hash),
                Write::RevokeToken(h) => ch.tokens.push(*h),
                _ => {}
            }
        }
        ch
    }

    /// The rows as the database holds them now.
    async fn read(&self, db: &MemoryStore) -> Vec<Write> {
        let mut w = Vec::new();
        for id in &self.processes {
            w.extend(db.process(*id).await.unwrap().map(Write::Process));
        }
        for code in &self.vendors {
            w.extend(db.vendor_by_code(code).await.unwrap().map(Write::Vendor));
        }
        for h in &self.tokens {
            w.push(match db.token(*h).await.unwrap() {
                Some(t) => Write::Token(t),
                None => Write::RevokeToken(*h),
            });
        }
        for id in &self.robots {
            w.extend(db.robot(*id).await.unwrap().map(Write::Robot));
        }
        for id in &self.items {
            w.extend(db.item(*id).await.unwrap().map(Write::Item));
        }
        for id in &self.jobs {
            w.extend(db.job(*id).await.unwrap().map(Write::Job));
        }
        w
    }
}

/// Changes waiting for a node's cache, oldest first.
type Inbox = Arc<Mutex<VecDeque<Changed>>>;

/// One node's view of the database: a lagging cache in front of it.
#[derive(Clone)]
struct Node {
    db: MemoryStore,
    cache: rpa_core::ReadCache,
    /// Other nodes' changes not yet taken in, oldest first.
    inbox: Inbox,
    /// The inboxes of the other nodes.
    peers: Arc<Mutex<Vec<Inbox>>>,
    /// Commits to refuse whole, writing nothing, as a database refuses a
    /// group whose writer deadlocked with another node's.
    refuse: Arc<std::sync::atomic::AtomicUsize>,
}

impl Node {
    fn new(db: &MemoryStore) -> Node {
        Node {
            db: db.clone(),
            cache: rpa_core::ReadCache::new(),
            inbox: Arc::default(),
            peers: Arc::default(),
            refuse: Arc::default(),
        }
    }

    /// Takes in the oldest `n` deliveries waiting; whether they may give
    /// this node a dispatch (a job that waits for a robot, an idle robot),
    /// which rings a PostgreSQL node's doorbell.
    fn deliver(&self, n: usize) -> bool {
        let mut work = false;
        for _ in 0..n {
            let Some(ch) = self.inbox.lock().unwrap().pop_front() else {
                break;
            };
            let rows = block(ch.read(&self.db));
            work |= rows.iter().any(|w| match w {
                Write::Job(j) => rpa_core::store::is_dispatchable(j),
                Write::Robot(r) => rpa_core::store::is_idle(r),
                _ => false,
            });
            self.cache.refresh(rows);
        }
        work
    }

    /// A lookup: the cache answers; a miss reads the database and keeps what it finds.
    async fn point<T: Clone>(&self, cached: Option<T>, db: Option<T>, keep: fn(T) -> Write) -> StoreResult<Option<T>> {
        if cached.is_some() {
            return Ok(cached);
        }
        if let Some(x) = &db {
            self.cache.refresh([keep(x.clone())]);
        }
        Ok(db)
    }
}

impl CommitStore for Node {
    async fn next_id(&self, kind: IdKind) -> StoreResult<i64> {
        self.db.next_id(kind).await
    }
    async fn commit(&self, c: Commit) -> StoreResult<()> {
        use std::sync::atomic::Ordering::SeqCst;
        if self.refuse.fetch_update(SeqCst, SeqCst, |n| n.checked_sub(1)).is_ok() {
            return Err(StoreError::Conflict);
        }
        let changed = Changed::of(&c);
        match self.db.commit(c).await {
            Ok(()) => {
                self.cache.refresh(changed.read(&self.db).await);
                for p in self.peers.lock().unwrap().iter() {
                    p.lock().unwrap().push_back(changed.clone());
                }
                Ok(())
            }
            Err(StoreError::Conflict) => {
                // Re-read what the refused commit wrote, so the retry sees it fresh.
                self.cache.refresh(changed.read(&self.db).await);
                Err(StoreError::Conflict)
            }
            Err(e) => Err(e),
        }
    }
    async fn confirm(&self, robot: &str, run: Option<Key>) -> StoreResult<bool> {
        let mut fresh = Vec::new();
        fresh.extend(self.db.robot_by_code(robot).await?.map(Write::Robot));
        if let Some(k) = run {
            fresh.extend(self.db.job_by_key(k).await?.map(Write::Job));
        }
        self.cache.refresh(fresh);
        Ok(true)
    }
}

impl PeopleStore for Node {
    async fn token(&self, hash: [u8; 32]) -> StoreResult<Option<Token>> {
        let c = self.cache.token(hash).await?;
        let d = if c.is_none() { self.db.token(hash).await? } else { None };
        self.point(c, d, Write::Token).await
    }
}

impl ProcessStore for Node {
    async fn process(&self, id: ProcessId) -> StoreResult<Option<Process>> {
        let c = self.cache.process(id).await?;
        let d = if c.is_none() { self.db.process(id).await? } else { None };
        self.point(c, d, Write::Process).await
    }
    async fn process_by_key(&self, key: Key) -> StoreResult<Option<Process>> {
        let c = self.cache.process_by_key(key).await?;
        let d = if c.is_none() {
            self.db.process_by_key(key).await?
        } else {
            None
        };
        self.point(c, d, Write::Process).await
    }
    async fn processes(&self) -> StoreResult<Vec<Process>> {
        self.cache.processes().await
    }
}

impl JobStore for Node {
    async fn job(&self, id: JobId) -> StoreResult<Option<Job>> {
        // Live jobs from the cache; ended ones only in the database (not kept).
        match self.cache.job(id).await? {
            Some(j) => Ok(Some(j)),
            None => self.db.job(id).await,
        }
    }
    async fn job_by_key(&self, key: Key) -> StoreResult<Option<Job>> {
        match self.cache.job_by_key(key).await? {
            Some(j) => Ok(Some(j)),
            None => self.db.job_by_key(key).await,
        }
    }
    async fn jobs_of_process(&self, q: JobQuery) -> StoreResult<(u64, Vec<Job>)> {
        self.db.jobs_of_process(q).await
    }
    async fn job_counts(&self, p: ProcessId, from: Timestamp, to: Timestamp) -> StoreResult<Vec<(JobState, u64)>> {
        self.db.job_counts(p, from, to).await
    }
    async fn next_pending(&self, processes: &[ProcessId]) -> StoreResult<Option<Job>> {
        self.cache.next_pending(processes).await
    }
    async fn pending_heads(&self, processes: &[ProcessId], limit: usize) -> StoreResult<Vec<JobId>> {
        self.cache.pending_heads(processes, limit).await
    }
    async fn pending_count(&self, process: ProcessId) -> StoreResult<u64> {
        self.cache.pending_count(process).await
    }
    async fn next_pinned(&self, robot: RobotId) -> StoreResult<Option<Job>> {
        self.cache.next_pinned(robot).await
    }
    async fn pinned_robots(&self) -> StoreResult<Vec<RobotId>> {
        self.cache.pinned_robots().await
    }
}

impl QueueStore for Node {
    async fn items_of_process(&self, process: ProcessId, limit: usize) -> StoreResult<Vec<QueueItem>> {
        self.db.items_of_process(process, limit).await
    }
    async fn item(&self, id: QueueItemId) -> StoreResult<Option<QueueItem>> {
        match self.cache.item(id).await? {
            Some(i) => Ok(Some(i)),
            None => self.db.item(id).await,
        }
    }
    async fn item_by_key(&self, key: Key) -> StoreResult<Option<QueueItem>> {
        match self.cache.item_by_key(key).await? {
            Some(i) => Ok(Some(i)),
            None => self.db.item_by_key(key).await,
        }
    }
    async fn item_by_reference(&self, process: ProcessId, reference: &str) -> StoreResult<Option<QueueItem>> {
        self.db.item_by_reference(process, reference).await
    }
}

impl RobotStore for Node {
    async fn robot(&self, id: RobotId) -> StoreResult<Option<Robot>> {
        let c = self.cache.robot(id).await?;
        let d = if c.is_none() { self.db.robot(id).await? } else { None };
        self.point(c, d, Write::Robot).await
    }
    async fn robot_by_code(&self, code: &str) -> StoreResult<Option<Robot>> {
        let c = self.cache.robot_by_code(code).await?;
        let d = if c.is_none() {
            self.db.robot_by_code(code).await?
        } else {
            None
        };
        self.point(c, d, Write::Robot).await
    }
    async fn robots(&self) -> StoreResult<Vec<Robot>> {
        self.cache.robots().await
    }
    async fn available_robots(&self, after: Option<RobotId>, limit: usize) -> StoreResult<Vec<Robot>> {
        self.cache.available_robots(after, limit).await
    }
    async fn vendor_by_code(&self, code: &str) -> StoreResult<Option<Vendor>> {
        let c = self.cache.vendor_by_code(code).await?;
        let d = if c.is_none() {
            self.db.vendor_by_code(code).await?
        } else {
            None
        };
        self.point(c, d, Write::Vendor).await
    }
}

impl RunStore for Node {
    async fn logs(&self, job: JobId) -> StoreResult<Vec<RunLog>> {
        self.db.logs(job).await
    }
    async fn videos(&self, job: JobId) -> StoreResult<Vec<VideoRecord>> {
        self.db.videos(job).await
    }
}

impl DeadlineStore for Node {
    async fn due(&self, now: Timestamp, limit: usize) -> StoreResult<Vec<Due>> {
        self.db.due(now, limit).await
    }
    async fn next_due(&self) -> StoreResult<Option<Timestamp>> {
        self.db.next_due().await
    }
}

impl OutboxStore for Node {
    async fn take_commands(&self, robot: RobotId, limit: usize) -> StoreResult<Vec<Command>> {
        self.db.take_commands(robot, limit).await
    }
}

impl AuditStore for Node {
    async fn head(&self) -> StoreResult<u64> {
        self.db.head().await
    }

    async fn audit(&self, after: u64, limit: usize) -> StoreResult<Vec<AuditEvent>> {
        self.db.audit(after, limit).await
    }

    async fn integrate(&self) -> StoreResult<Integrated> {
        self.db.integrate().await
    }

    async fn unintegrated(&self) -> StoreResult<Unintegrated> {
        self.db.unintegrated().await
    }
}

impl RecordStore for Node {
    async fn record(&self, kind: &'static Kind, key: &Cell) -> StoreResult<Option<Row>> {
        self.db.record(kind, key).await
    }
    async fn records(&self, kind: &'static Kind, select: &Select) -> StoreResult<Vec<Row>> {
        self.db.records(kind, select).await
    }
    async fn search(&self, kind: &'static Kind, words: &[String], select: &Select) -> StoreResult<Vec<Row>> {
        self.db.search(kind, words, select).await
    }
}

impl LeaseStore for Node {
    async fn lease(&self, name: &str, holder: u64, now: Timestamp, until: Timestamp) -> StoreResult<bool> {
        self.db.lease(name, holder, now, until).await
    }
    async fn lease_holder(&self, name: &str, now: Timestamp) -> StoreResult<Option<u64>> {
        self.db.lease_holder(name, now).await
    }
    async fn lease_holders(&self, prefix: &str, now: Timestamp) -> StoreResult<Vec<u64>> {
        self.db.lease_holders(prefix, now).await
    }
}

/// How a robot reaches the cluster.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Link {
    /// Any node takes any call; a robot whose node is gone tries another with the same connect id.
    Http,
    /// The connection lives on one node; when it is gone the robot registers again elsewhere.
    Socket(usize),
}

struct SimBot {
    code: String,
    link: Link,
    connect: Option<Key>,
    running: Option<Key>,
    /// A finish sent on a connection that died: reported again after registering.
    unsure: Option<Key>,
}

struct Sim {
    rng: StdRng,
    clock: ManualClock,
    db: MemoryStore,
    nodes: Vec<Node>,
    engines: Vec<Engine<Node>>,
    alive: Vec<bool>,
    user: User,
    processes: Vec<Process>,
    bots: Vec<SimBot>,
    jobs: Vec<Job>,
    executions: HashMap<Key, u32>,
    audit: Verifier,
    kill_at: usize,
    steps: usize,
}

fn trace(msg: impl FnOnce() -> String) {
    if std::env::var_os("SIM_TRACE").is_some() {
        eprintln!("{}", msg());
    }
}

impl Sim {
    fn new(seed: u64) -> Sim {
        let mut rng = StdRng::seed_from_u64(seed);
        let clock = ManualClock::new(T0);
        let db = MemoryStore::integrating_later();
        let nodes: Vec<Node> = (0..2).map(|_| Node::new(&db)).collect();
        for (i, n) in nodes.iter().enumerate() {
            let mut peers = n.peers.lock().unwrap();
            for (j, m) in nodes.iter().enumerate() {
                if i != j {
                    peers.push(m.inbox.clone());
                }
            }
        }
        let slack = if rng.random_bool(0.5) { 10_000 } else { 0 };
        let engines: Vec<Engine<Node>> = nodes
            .iter()
            .enumerate()
            .map(|(i, n)| {
                let config = EngineConfig {
                    password_cost: PasswordCost::TESTING,
                    seed: Some(seed * 10 + i as u64),
                    node: Some(i as u64 + 1),
                    heartbeat_timeout_ms: 30_000,
                    heartbeat_slack_ms: slack,
                    ..EngineConfig::default()
                };
                Engine::new(n.clone(), Arc::new(clock.clone()), config)
            })
            .collect();
        let e = &engines[0];
        let user = block(async {
            e.register_vendor(Actor::System, "acme", SECRET).await.unwrap();
            e.create_user(
                Actor::System,
                NewUser {
                    name: "alice".into(),
                    password: "pw".into(),
                    ..NewUser::default()
                },
            )
            .await
            .unwrap()
        });
        let mut processes = Vec::new();
        let mut user = user;
        for i in 0..rng.random_range(1..=2) {
            let mut spec = ProcessSpec::new(format!("p{i}"), ProcessType::Unattended);
            spec.max_run_num = rng.random_range(0..=3);
            spec.retry = RetryPolicy {
                max_retries: 3,
                backoff_ms: 1_000,
                backoff_max_ms: 1_000,
            };
            let (p, u) = block(async {
                let p = e.create_process(Actor::System, spec).await.unwrap();
                let u = e.grant(Actor::System, "alice", p.key).await.unwrap();
                (p, u)
            });
            processes.push(p);
            user = u;
        }
        let bots = (0..rng.random_range(2..=5))
            .map(|i| SimBot {
                code: format!("bot{i}"),
                link: if rng.random_bool(0.5) {
                    Link::Http
                } else {
                    Link::Socket(rng.random_range(0..2))
                },
                connect: None,
                running: None,
                unsure: None,
            })
            .collect();
        let kill_at = rng.random_range(50..250);
        let sim = Sim {
            rng,
            clock,
            db,
            nodes,
            engines,
            alive: vec![true, true],
            user,
            processes,
            bots,
            jobs: Vec::new(),
            executions: HashMap::new(),
            audit: Verifier::default(),
            kill_at,
            steps: 0,
        };
        for n in &sim.nodes {
            n.deliver(usize::MAX);
        }
        sim
    }

    fn w_job(&self, j: &Job) -> Job {
        block(self.db.job(j.id)).unwrap().unwrap()
    }

    fn live_node(&mut self) -> usize {
        loop {
            let n = self.rng.random_range(0..self.nodes.len());
            if self.alive[n] {
                return n;
            }
        }
    }

    /// The node a robot's call goes to.
    fn node_of(&mut self, i: usize) -> usize {
        match self.bots[i].link {
            Link::Http => self.live_node(),
            Link::Socket(n) => n,
        }
    }

    fn refused(&self, i: usize, what: &str, e: &Error) -> ! {
        panic!(
            "step {}: robot {} ({:?}) refused {what}: {e:?}",
            self.steps, self.bots[i].code, self.bots[i].link
        );
    }

    fn connect(&mut self, i: usize) {
        let n = self.node_of(i);
        let code = self.bots[i].code.clone();
        let proof = supplier_proof(SECRET, &code);
        let e = &self.engines[n];
        let r = match self.bots[i].link {
            Link::Http => block(e.register_robot(&code, "acme", &proof, None)),
            Link::Socket(_) => block(e.register_socket(&code, "acme", &proof, None, &[])),
        };
        trace(|| format!("  {code} registers on node {n}: {:?}", r.as_ref().map(|_| ())));
        match r {
            Ok(reg) => {
                self.bots[i].connect = Some(reg.connect);
                if let Some(run) = self.bots[i].unsure.take() {
                    // The finish sent on the lost connection, again.
                    let r = block(self.engines[n].report_finish(
                        &code,
                        reg.connect,
                        run,
                        FinishStatus::Success,
                        None,
                        None,
                    ));
                    if let Err(e) = r {
                        self.refused(i, "a repeated finish", &e);
                    }
                }
            }
            // The old connection's node is not known to be gone yet.
            Err(Error::DuplicateConnection) => {}
            Err(e) => self.refused(i, "registration", &e),
        }
    }

    fn obey(&mut self, i: usize, cmds: Vec<Command>) {
        for c in cmds {
            match c {
                Command::Execute(x) => {
                    trace(|| format!("  {} executes {}", self.bots[i].code, x.run_instance_id));
                    assert!(
                        self.bots[i].running.is_none(),
                        "robot {} got Execute {} while running {:?}",
                        self.bots[i].code,
                        x.run_instance_id,
                        self.bots[i].running
                    );
                    *self.executions.entry(x.run_instance_id).or_default() += 1;
                    self.bots[i].running = Some(x.run_instance_id);
                }
                Command::Stop { run_instance_id } => {
                    panic!(
                        "robot {} told to stop {run_instance_id}, which nobody asked for (running {:?})",
                        self.bots[i].code, self.bots[i].running
                    );
                }
                Command::SendLicense { .. } | Command::Error { .. } => {}
            }
        }
    }

    fn heartbeat(&mut self, i: usize) {
        let Some(connect) = self.bots[i].connect else { return };
        let n = self.node_of(i);
        let code = self.bots[i].code.clone();
        let r = block(self.engines[n].heartbeat(&code, connect, self.bots[i].running));
        match r {
            Ok(cmds) => self.obey(i, cmds),
            Err(e) => self.refused(i, "a heartbeat", &e),
        }
    }

    fn finish(&mut self, i: usize) {
        let (Some(connect), Some(run)) = (self.bots[i].connect, self.bots[i].running) else {
            return;
        };
        let n = self.node_of(i);
        let code = self.bots[i].code.clone();
        let r = block(self.engines[n].report_finish(&code, connect, run, FinishStatus::Success, None, None));
        trace(|| format!("  {code} finishes {run} on node {n}: {:?}", r.as_ref().map(|j| j.state)));
        if let Err(e) = r {
            self.refused(i, "its finish", &e);
        }
        self.bots[i].running = None;
    }

    /// Kills node `n`: nothing runs there any more; its WebSocket robots'
    /// connections are gone (a finish sent on them may be lost).
    fn kill(&mut self, n: usize) {
        trace(|| format!("  node {n} dies"));
        self.alive[n] = false;
        let survivor = (n + 1) % self.nodes.len();
        let lose = self.rng.random_bool(0.5);
        for b in &mut self.bots {
            if b.link == Link::Socket(n) {
                b.link = Link::Socket(survivor);
                b.connect = None;
                if lose && let Some(run) = b.running.take() {
                    // It executed and sent the finish, which died with the node.
                    b.unsure = Some(run);
                }
            }
        }
    }

    fn step(&mut self) {
        self.steps += 1;
        if self.steps == self.kill_at {
            let n = self.rng.random_range(0..self.nodes.len());
            self.kill(n);
        }
        let roll = self.rng.random_range(0..100);
        trace(|| format!("step {} roll {roll}", self.steps));
        match roll {
            0..=19 => {
                let n = self.live_node();
                let p = self.processes[self.rng.random_range(0..self.processes.len())].key;
                let j = block(self.engines[n].start_job(&self.user, p, &json!({}))).unwrap();
                trace(|| format!("  job {} started on node {n}", j.key));
                self.jobs.push(j);
            }
            20..=69 => {
                let i = self.rng.random_range(0..self.bots.len());
                match (self.bots[i].connect.is_some(), self.bots[i].running.is_some()) {
                    (false, _) => self.connect(i),
                    (true, true) if self.rng.random_bool(0.6) => self.finish(i),
                    (true, _) => self.heartbeat(i),
                }
            }
            70..=89 => {
                // Other nodes' changes reach a cache, a few at a time; work
                // among them rings the node's doorbell (as
                // `rpa::server::dispatch_on_notice` answers it), unless
                // the ring is lost.
                let n = self.rng.random_range(0..self.nodes.len());
                let k = self.rng.random_range(1..=3);
                if self.nodes[n].deliver(k) && self.alive[n] && self.rng.random_bool(0.8) {
                    let placed = block(self.engines[n].dispatch_all()).unwrap();
                    trace(|| format!("  node {n}'s doorbell: {placed} placed"));
                }
            }
            _ => {
                self.clock.advance(self.rng.random_range(0..2_000));
                for n in 0..self.nodes.len() {
                    if self.alive[n] {
                        block(self.engines[n].tick()).unwrap();
                    }
                }
                self.integrate(0.5);
            }
        }
        self.check();
    }

    /// Each live node that holds (or takes) the integrator lease integrates
    /// the committed audit events, with probability `p` (so events wait a
    /// while); when the holder dies, another takes over once the lease ran out.
    fn integrate(&mut self, p: f64) {
        for n in 0..self.nodes.len() {
            if self.alive[n] && block(self.engines[n].hold_integrator()).unwrap() && self.rng.random_bool(p) {
                let done = block(self.engines[n].integrate_audit()).unwrap();
                if done.events > 0 {
                    trace(|| format!("  node {n} integrates {} audit events", done.events));
                }
            }
        }
    }

    fn check(&mut self) {
        // No job is held by two robots, and what a robot holds names it.
        let robots = block(self.db.robots()).unwrap();
        let mut held: HashMap<JobId, u32> = HashMap::new();
        for r in &robots {
            if let Some(j) = r.job {
                *held.entry(j).or_default() += 1;
                let job = block(self.db.job(j)).unwrap().unwrap();
                assert_eq!(
                    job.robot,
                    Some(r.id),
                    "robot {} holds job {j} that names {:?}",
                    r.code,
                    job.robot
                );
            }
        }
        assert!(held.values().all(|n| *n == 1), "a job held by two robots");
        let twice: Vec<_> = self.executions.iter().filter(|(_, n)| **n > 1).collect();
        assert!(twice.is_empty(), "step {}: runs executed twice: {twice:?}", self.steps);
        for e in block(self.db.audit(self.audit.count(), usize::MAX)).unwrap() {
            self.audit.push(&e).unwrap_or_else(|b| panic!("audit: {b}"));
        }
    }

    /// No more starts; robots keep working, caches catch up: everything ends.
    fn settle(&mut self) {
        for _ in 0..3_000 {
            let done = self.jobs.iter().all(|j| {
                block(self.db.job(j.id))
                    .unwrap()
                    .is_some_and(|j| j.state == JobState::Successful)
            });
            if done {
                for j in &self.jobs {
                    assert_eq!(self.executions.get(&j.key), Some(&1), "job {} executed once", j.key);
                }
                // Every event committed takes its place, whoever integrates.
                for _ in 0..100 {
                    if block(self.db.unintegrated()).unwrap().commits == 0 {
                        break;
                    }
                    self.clock.advance(1_000);
                    self.integrate(1.0);
                }
                assert_eq!(
                    block(self.db.unintegrated()).unwrap().commits,
                    0,
                    "events never integrated"
                );
                self.check();
                return;
            }
            for i in 0..self.bots.len() {
                if self.bots[i].connect.is_none() {
                    self.connect(i);
                } else if self.bots[i].running.is_some() {
                    self.finish(i);
                } else {
                    self.heartbeat(i);
                }
            }
            for n in &self.nodes {
                n.deliver(1);
            }
            self.clock.advance(1_000);
            for n in 0..self.nodes.len() {
                if self.alive[n] {
                    block(self.engines[n].tick()).unwrap();
                }
            }
            self.integrate(0.5);
            self.check();
        }
        let stuck: Vec<_> = self
            .jobs
            .iter()
            .map(|j| block(self.db.job(j.id)).unwrap().unwrap())
            .filter(|j| j.state != JobState::Successful)
            .map(|j| (j.key, j.state, j.robot, j.attempt))
            .collect();
        let robots: Vec<_> = block(self.db.robots())
            .unwrap()
            .iter()
            .map(|r| (r.code.clone(), r.state, r.job, r.awaiting_heartbeat, r.node))
            .collect();
        let cached: Vec<_> = self
            .nodes
            .iter()
            .map(|n| {
                block(n.cache.robots())
                    .unwrap()
                    .iter()
                    .map(|r| (r.code.clone(), r.state, r.job, r.version))
                    .collect::<Vec<_>>()
            })
            .collect();
        let stuck = &stuck[..stuck.len().min(5)];
        let procs: Vec<_> = block(self.db.processes())
            .unwrap()
            .iter()
            .map(|p| (p.id, p.running, p.spec.max_run_num, p.version))
            .collect();
        let pending: Vec<_> = self
            .nodes
            .iter()
            .map(|n| block(n.cache.pending_count(self.processes[0].id)).unwrap())
            .collect();
        eprintln!("processes {procs:?} pending in caches {pending:?}");
        if std::env::var_os("SIM_TRACE").is_some() {
            for e in block(self.db.audit(0, usize::MAX)).unwrap() {
                eprintln!(
                    "audit {} {} {:?} {:?} {}",
                    e.seq, e.action, e.actor, e.subject, e.detail
                );
            }
        }
        panic!("not settled: {stuck:?}\nrobots {robots:?}\ncaches {cached:?}");
    }
}

fn run_seed(seed: u64) {
    let mut sim = Sim::new(seed);
    let steps = sim.rng.random_range(300..600);
    for _ in 0..steps {
        sim.step();
    }
    sim.settle();
    assert!(sim.audit.count() > 0);
}

#[test]
fn two_nodes_with_lagging_caches_run_every_job_exactly_once() {
    let seeds: Vec<u64> = match std::env::var("SIM_SEED") {
        Ok(s) => vec![s.parse().expect("SIM_SEED is a number")],
        Err(_) => {
            let n = std::env::var("SIM_SEEDS")
                .ok()
                .and_then(|s| s.parse().ok())
                .unwrap_or(100);
            (0..n).collect()
        }
    };
    for seed in seeds {
        if let Err(e) = catch_unwind(AssertUnwindSafe(|| run_seed(seed))) {
            eprintln!("cluster simulation failed with seed {seed}; replay with SIM_SEED={seed}");
            resume_unwind(e);
        }
    }
}

/// Two nodes whose caches hear of each other only when told to, a process
/// and a robot; deliveries are all made.
fn pair() -> (Sim, Key) {
    let mut sim = Sim::new(1);
    sim.bots.truncate(1);
    let p = sim.processes[0].key;
    for n in &sim.nodes {
        n.deliver(usize::MAX);
    }
    (sim, p)
}

#[test]
fn a_finish_reported_to_a_node_that_has_not_seen_the_dispatch_is_accepted() {
    let (sim, p) = pair();
    let (a, b) = (&sim.engines[0], &sim.engines[1]);
    let proof = supplier_proof(SECRET, "r");
    let reg = block(b.register_robot("r", "acme", &proof, None)).unwrap();
    block(b.heartbeat("r", reg.connect, None)).unwrap();
    sim.nodes[0].deliver(usize::MAX);
    // Started and dispatched on A; B hears of neither.
    let job = block(a.start_job(&sim.user, p, &json!({}))).unwrap();
    let cmds = block(b.heartbeat("r", reg.connect, None)).unwrap();
    assert!(
        matches!(&cmds[..], [Command::Execute(x)] if x.run_instance_id == job.key),
        "the robot gets its Execute through B: {cmds:?}"
    );
    assert!(!sim.nodes[1].inbox.lock().unwrap().is_empty(), "B's copy lags");
    let done = block(b.report_finish("r", reg.connect, job.key, FinishStatus::Success, None, None))
        .expect("B confirms with the database before refusing");
    assert_eq!(done.state, JobState::Successful);
    let p = block(sim.db.process(sim.processes[0].id)).unwrap().unwrap();
    assert_eq!(p.running, 0, "the slot is given back though B's copy never counted it");
}

#[test]
fn a_start_refused_with_its_group_is_made_again_and_counted_once() {
    let (sim, p) = pair();
    let a = &sim.engines[0];
    sim.nodes[0].refuse.store(3, std::sync::atomic::Ordering::SeqCst);
    let job = block(a.start_job(&sim.user, p, &json!({}))).expect("started after three refusals");
    let stored = block(sim.db.job(job.id)).unwrap().expect("the job is stored");
    assert_eq!(stored.key, job.key);
    let (total, _) = block(sim.db.jobs_of_process(rpa_core::store::JobQuery {
        process: sim.processes[0].id,
        from: Timestamp(0),
        to: Timestamp(i64::MAX),
        state: None,
        limit: 10,
    }))
    .unwrap();
    assert_eq!(total, 1, "one job, however often its commit was made");
}

#[test]
fn a_websocket_robot_whose_node_died_registers_elsewhere_and_keeps_its_run() {
    let (sim, p) = pair();
    let (a, b) = (&sim.engines[0], &sim.engines[1]);
    let proof = supplier_proof(SECRET, "r");
    block(a.tick()).unwrap();
    let reg = block(a.register_socket("r", "acme", &proof, None, &[])).unwrap();
    block(a.heartbeat("r", reg.connect, None)).unwrap();
    let job = block(a.start_job(&sim.user, p, &json!({}))).unwrap();
    assert_eq!(sim.w_job(&job).state, JobState::Running);
    // A dies. Its connection still looks healthy, and its node lease holds for now.
    sim.nodes[1].deliver(usize::MAX);
    assert_eq!(
        block(b.register_socket("r", "acme", &proof, None, &[])).err(),
        Some(Error::DuplicateConnection)
    );
    // Once A's lease has run out (B keeps ticking), the new connection is accepted ...
    for _ in 0..12 {
        sim.clock.advance(1_000);
        block(b.tick()).unwrap();
    }
    let again = block(b.register_socket("r", "acme", &proof, None, &[])).expect("A is gone: its connection too");
    let r = block(sim.db.robot_by_code("r")).unwrap().unwrap();
    assert_eq!((r.state, r.job, r.node), (RobotState::Busy, Some(job.id), Some(2)));
    // ... and the robot, still running the job, keeps it: no second Execute.
    let cmds = block(b.heartbeat("r", again.connect, Some(job.key))).unwrap();
    assert!(cmds.is_empty(), "{cmds:?}");
    let done = block(b.report_finish("r", again.connect, job.key, FinishStatus::Success, None, None)).unwrap();
    assert_eq!((done.state, done.attempt), (JobState::Successful, job.attempt));
}
