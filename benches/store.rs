//! Durable job lifecycles: the scheduling bench's lifecycle (start, finish,
//! hand-over of the next job, audit on) on SQLite (synchronous NORMAL and
//! FULL) and PostgreSQL (`DATABASE_URL`, skipped without it), with 1k and
//! 100k pending jobs. 32 robots work at once, each on a socket of its node,
//! handed its Execute by the engine's transport once the commit stands (as
//! the WebSocket hub does for robots connected to it; `RPA_PUSH=0`: woken to take it from the
//! outbox instead), so group commit has concurrent commits to batch.
//! `RPA_READERS` sets the store's reader connections (default 8).
//! Each case ends by printing its commits and what they cost: CPU per
//! commit in this process and on the whole machine (a PostgreSQL server
//! on the same machine included), from Linux's `/proc`.
//! `RPA_NODES=n` runs the PostgreSQL cases on n engine nodes over one
//! database (n stores, each with its own group writer and node cache), the
//! robots and clients spread over them, each node's clients starting a
//! process of their own; one node runs the audit integrator
//! (`RPA_INTEGRATOR=0`: none, to measure the writers alone). Each node
//! reads the live nodes' leases and takes its share of the pending jobs
//! first, as a server's nodes do (`RPA_SHARE=0`: each reaches for the best
//! job, to compare), and dispatches to its own robots when the store tells
//! it of another node's commits, as a server does. `RPA_APART=1` gives
//! each node's robots a pool of their own and each node's process that pool
//! as its requirement: the nodes then share no process (whose counters
//! every dispatch and finish change) and no robot.
//! `cargo bench --bench store`; figures go to docs/PERFORMANCE.md.
#![allow(missing_docs)]

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, SamplingMode, Throughput, criterion_group, criterion_main};
use rpa::core::auth::PasswordCost;
use rpa::core::fixtures::{self, Basics};
use rpa::core::ids::RobotId;
use rpa::core::job::FinishStatus;
use rpa::core::model::{Actor, ProcessSpec, ProcessType, User};
use rpa::core::transport::Command;
use rpa::core::transport::RobotTransport;
use rpa::sql::{SqlOptions, SqlStore, Synchronous};
use rpa::{Clock, Engine, EngineConfig, Key, ManualClock, Timestamp};
use serde_json::json;
use tokio::sync::{Mutex, Notify};

#[path = "../tests/support/mod.rs"]
mod support;

/// The server's allocator (`examples/server.rs`): what the store does in a
/// server is measured with what a server allocates with.
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// CPU time so far, in ticks of 10 ms (Linux's `/proc`; `None` elsewhere):
/// this process's, and the machine's busy and idle time (the machine's
/// takes in a PostgreSQL server's backends on the same machine).
#[derive(Clone, Copy)]
struct Cpu {
    process: u64,
    busy: u64,
    idle: u64,
}

impl Cpu {
    fn now() -> Option<Cpu> {
        let own = std::fs::read_to_string("/proc/self/stat").ok()?;
        // After the command's closing parenthesis: the third field on;
        // utime and stime are the 14th and 15th.
        let times: Vec<u64> = own
            .rsplit_once(')')?
            .1
            .split_whitespace()
            .skip(11)
            .take(2)
            .map(|x| x.parse().ok())
            .collect::<Option<_>>()?;
        let all = std::fs::read_to_string("/proc/stat").ok()?;
        // user nice system idle iowait irq softirq steal ...
        let t: Vec<u64> = all
            .lines()
            .next()?
            .split_whitespace()
            .skip(1)
            .map(|x| x.parse().ok())
            .collect::<Option<_>>()?;
        Some(Cpu {
            process: times.iter().sum(),
            busy: t.first()? + t.get(1)? + t.get(2)? + t.get(5)? + t.get(6)?,
            idle: t.get(3)? + t.get(4)?,
        })
    }

    /// What a case cost since `self`: CPU per commit in this process and
    /// on the whole machine, and how idle the machine was. Steadier than
    /// throughput on a machine whose speed swings.
    fn report(self, case: &str, commits: u64) {
        let (Some(end), true) = (Cpu::now(), commits > 0) else {
            return;
        };
        let per = |ticks: u64| ticks as f64 * 10_000.0 / commits as f64;
        let (busy, idle) = (end.busy - self.busy, end.idle - self.idle);
        eprintln!(
            "{case}: CPU per commit: {:.1} µs in this process, {:.1} µs on the machine ({:.0}% of its time idle)",
            per(end.process - self.process),
            per(busy),
            100.0 * idle as f64 / (busy + idle).max(1) as f64
        );
    }
}

/// Robots working at once: 32, or `RPA_ROBOTS`.
fn robots() -> usize {
    std::env::var("RPA_ROBOTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(32)
}

struct Bot {
    code: String,
    connect: Key,
    id: RobotId,
    /// The node it talks to.
    node: usize,
    run: Mutex<Key>,
}

struct Rig {
    /// The nodes; the first also runs the audit integrator.
    engines: Vec<Arc<Engine<SqlStore>>>,
    bells: Arc<Doorbells>,
    user: User,
    /// The process each node's clients start.
    processes: Vec<Key>,
    bots: Vec<Arc<Bot>>,
    integrator: Integrator,
    /// Each node's dispatch of what the others' commits leave to it.
    _dispatchers: Vec<AbortOnDrop>,
    /// Time passing (see [`passing_time`]).
    _time: AbortOnDrop,
}

/// Aborts its task when dropped.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// The audit integrator running beside the robots, as a server runs it
/// (PostgreSQL: it links the events the commits wrote into the chain;
/// SQLite links them in the commit and it finds nothing), and what it did.
struct Integrator {
    /// `RPA_INTEGRATOR=0`: the events wait (see [`drain_audit`]).
    off: bool,
    task: tokio::task::JoinHandle<()>,
    figures: Arc<IntegratorFigures>,
    started: Instant,
}

#[derive(Default)]
struct IntegratorFigures {
    events: AtomicU64,
    steps: AtomicU64,
    busy_us: AtomicU64,
    longest_wait_ms: AtomicI64,
}

impl Integrator {
    fn start(engine: Arc<Engine<SqlStore>>) -> Integrator {
        let figures = Arc::new(IntegratorFigures::default());
        let f = figures.clone();
        let off = std::env::var("RPA_INTEGRATOR").is_ok_and(|v| v == "0");
        let task = tokio::spawn(async move {
            if off {
                return;
            }
            loop {
                // As the server's integrator: everything that waits, every 20 ms.
                let t = Instant::now();
                let full = match engine.integrate_audit().await {
                    Ok(done) if done.events > 0 => {
                        f.events.fetch_add(done.events, Ordering::Relaxed);
                        f.steps.fetch_add(1, Ordering::Relaxed);
                        f.busy_us.fetch_add(t.elapsed().as_micros() as u64, Ordering::Relaxed);
                        f.longest_wait_ms.fetch_max(done.longest_wait_ms, Ordering::Relaxed);
                        done.full
                    }
                    _ => false,
                };
                if !full {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            }
        });
        Integrator {
            off,
            task,
            figures,
            started: Instant::now(),
        }
    }

    /// Prints what it did: events, the share of the time it was busy (the
    /// serial part of the write path, for Amdahl's bound), the longest wait.
    fn report(&self, case: &str) {
        let f = &self.figures;
        let events = f.events.load(Ordering::Relaxed);
        if events == 0 {
            return;
        }
        let busy = f.busy_us.load(Ordering::Relaxed) as f64 / 1e6;
        let wall = self.started.elapsed().as_secs_f64();
        eprintln!(
            "{case}: audit integrator: {events} events in {} steps, busy {busy:.2} s of {wall:.2} s ({:.1}%), \
             {:.0} events/s while busy, longest wait {} ms",
            f.steps.load(Ordering::Relaxed),
            100.0 * busy / wall,
            events as f64 / busy.max(1e-9),
            f.longest_wait_ms.load(Ordering::Relaxed)
        );
    }
}

/// With the integrator off, integrates every event the run left waiting,
/// in full steps back to back, and prints the rate: how many events one
/// integrator can place per second, the serial stage's capacity.
async fn drain_audit(engine: &Engine<SqlStore>, case: &str) {
    let start = Instant::now();
    let (mut events, mut steps) = (0, 0);
    loop {
        let done = engine.integrate_audit().await.unwrap();
        if done.events == 0 && !done.full {
            break;
        }
        events += done.events;
        steps += 1;
    }
    let took = start.elapsed().as_secs_f64();
    if events > 0 {
        eprintln!(
            "{case}: audit backlog: {events} events in {steps} steps, {took:.2} s: {:.0} events/s",
            events as f64 / took
        );
    }
}

impl Drop for Integrator {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// What the WebSocket hub does for robots connected to it: hands them the
/// commands of a commit once it stands, or (with `RPA_PUSH=0`, as for
/// robots connected to another node) wakes them to take their commands
/// from the outbox.
struct Doorbells {
    push: bool,
    bells: std::sync::Mutex<std::collections::HashMap<RobotId, Arc<Notify>>>,
    pushed: std::sync::Mutex<std::collections::HashMap<RobotId, Vec<Command>>>,
}

impl Default for Doorbells {
    fn default() -> Self {
        Doorbells {
            push: std::env::var("RPA_PUSH").map_or(true, |v| v != "0"),
            bells: Default::default(),
            pushed: Default::default(),
        }
    }
}

impl Doorbells {
    fn bell(&self, robot: RobotId) -> Arc<Notify> {
        self.bells.lock().unwrap().entry(robot).or_default().clone()
    }
}

impl RobotTransport for Doorbells {
    fn wake(&self, robot: RobotId) {
        self.bell(robot).notify_one();
    }

    fn is_here(&self, _robot: RobotId) -> bool {
        self.push
    }

    fn push(&self, robot: RobotId, commands: Vec<Command>) {
        self.pushed.lock().unwrap().entry(robot).or_default().extend(commands);
        self.bell(robot).notify_one();
    }
}

async fn next_run(engine: &Engine<SqlStore>, bells: &Doorbells, bot: &Bot) -> Key {
    let bell = bells.bell(bot.id);
    loop {
        let pushed = bells.pushed.lock().unwrap().remove(&bot.id).unwrap_or_default();
        let commands = if pushed.is_empty() {
            engine.take_commands(bot.id).await.unwrap()
        } else {
            pushed
        };
        if let Some(Command::Execute(e)) = commands.into_iter().rev().find(|c| matches!(c, Command::Execute(_))) {
            return e.run_instance_id;
        }
        bell.notified().await;
    }
}

/// The robot finishes its run and waits for its next Execute.
async fn finish_and_take_next(engine: &Engine<SqlStore>, bells: &Doorbells, bot: &Bot) {
    let run = *bot.run.lock().await;
    engine
        .report_finish(&bot.code, bot.connect, run, FinishStatus::Success, None, None)
        .await
        .unwrap();
    *bot.run.lock().await = next_run(engine, bells, bot).await;
}

/// Engine nodes on one database: 1, or `RPA_NODES` (PostgreSQL only).
fn nodes() -> usize {
    std::env::var("RPA_NODES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1)
        .max(1)
}

/// Moves the engines' clock on with real time, as a server's runs, so that
/// what follows it (job keys, which sort by the time they were made) looks
/// as it would in a server; keeps each node's lease meanwhile. No timer is
/// run: heartbeats never time out here.
async fn passing_time(clock: ManualClock, engines: Vec<Arc<Engine<SqlStore>>>) {
    let (start, from) = (Instant::now(), clock.now());
    let mut leases = Instant::now();
    loop {
        tokio::time::sleep(Duration::from_millis(1)).await;
        clock.set(from.plus_ms(start.elapsed().as_millis() as u64));
        if leases.elapsed() >= Duration::from_secs(2) {
            leases = Instant::now();
            for e in &engines {
                let _ = e.keep_node_lease().await;
            }
        }
    }
}

async fn rig(url: String, sync: Synchronous, backlog: usize) -> Rig {
    let nodes = if url.starts_with("postgres") { nodes() } else { 1 };
    let clock = ManualClock::new(Timestamp(1_700_000_000_000));
    let bells = Arc::new(Doorbells::default());
    let mut engines = Vec::new();
    for n in 0..nodes {
        let store = SqlStore::connect(
            &url,
            SqlOptions {
                synchronous: sync,
                max_connections: std::env::var("RPA_READERS")
                    .ok()
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(8),
                sealing: rpa::sql::Sealing::Key([5; 32]),
                ..SqlOptions::default()
            },
        )
        .await
        .unwrap();
        let config = EngineConfig {
            password_cost: PasswordCost::TESTING,
            heartbeat_timeout_ms: u64::MAX / 4,
            node: Some(n as u64 + 1),
            ..EngineConfig::default()
        };
        engines.push(Arc::new(
            Engine::new(store, Arc::new(clock.clone()), config).with_transport(bells.clone()),
        ));
    }
    if std::env::var("RPA_SHARE").map_or(true, |v| v != "0") {
        // Every node's lease first, then every node sees them all.
        for _ in 0..2 {
            for e in &engines {
                e.keep_node_lease().await.unwrap();
            }
        }
    }
    let mut dispatchers = Vec::new();
    for e in &engines {
        if let Some(bell) = e.store().doorbell() {
            dispatchers.push(AbortOnDrop(tokio::spawn(rpa::server::dispatch_on_notice(
                e.clone(),
                bell,
                std::future::pending::<()>(),
            ))));
        }
    }
    let time = AbortOnDrop(tokio::spawn(passing_time(clock.clone(), engines.clone())));
    let engine = engines[0].clone();
    // A process per node: each node's clients start their own.
    let apart = std::env::var("RPA_APART").is_ok_and(|v| v == "1");
    let spec = |n: usize| {
        let mut spec = ProcessSpec::new(format!("bench{n}"), ProcessType::Unattended);
        spec.max_run_num = 0;
        if apart {
            spec.requirements.pool = Some(format!("node{n}"));
        }
        spec
    };
    let Basics { process: p, mut user } = fixtures::basics(&engine, spec(0)).await.unwrap();
    let mut processes = vec![p.key];
    for n in 1..nodes {
        let q = engine.create_process(Actor::System, spec(n)).await.unwrap();
        user = engine.grant(Actor::System, &user.name, q.key).await.unwrap();
        processes.push(q.key);
    }
    let mut bots = Vec::new();
    for i in 0..robots() {
        let code = format!("r{i}");
        let node = i % nodes;
        let e = &engines[node];
        if apart {
            let profile = rpa::core::model::RobotProfile {
                pool: format!("node{node}"),
                ..Default::default()
            };
            e.configure_robot(Actor::System, &code, profile).await.unwrap();
        }
        let reg = e
            .register_socket(
                &code,
                fixtures::VENDOR,
                &rpa::core::auth::supplier_proof(fixtures::VENDOR_SECRET, &code),
                None,
                &[],
            )
            .await
            .unwrap();
        e.heartbeat(&code, reg.connect, None).await.unwrap();
        bots.push(Arc::new(Bot {
            code,
            connect: reg.connect,
            id: reg.robot.id,
            node,
            run: Mutex::new(Key([0; 16])),
        }));
    }
    // One running job per robot, then the backlog, started by 16 clients at
    // once (spread over the nodes, each starting its node's process).
    let per = (robots() + backlog).div_ceil(16);
    let mut tasks = Vec::new();
    for c in 0..16 {
        let (e, u, p) = (engines[c % nodes].clone(), user.clone(), processes[c % nodes]);
        tasks.push(tokio::spawn(async move {
            for _ in 0..per {
                e.start_job(&u, p, &json!({})).await.unwrap();
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    for b in &bots {
        *b.run.lock().await = next_run(&engines[b.node], &bells, b).await;
    }
    Rig {
        integrator: Integrator::start(engine),
        _dispatchers: dispatchers,
        _time: time,
        engines,
        bells,
        user,
        processes,
        bots,
    }
}

impl Rig {
    /// `iters` lifecycles over the 16 robots at once; the time they took.
    async fn run(&self, iters: u64) -> Duration {
        let start = Instant::now();
        let mut tasks = Vec::new();
        for (i, bot) in self.bots.iter().enumerate() {
            let n = iters / self.bots.len() as u64 + u64::from((i as u64) < iters % self.bots.len() as u64);
            let (e, u, p, bot, bells) = (
                self.engines[bot.node].clone(),
                self.user.clone(),
                self.processes[bot.node],
                bot.clone(),
                self.bells.clone(),
            );
            tasks.push(tokio::spawn(async move {
                for _ in 0..n {
                    e.start_job(&u, p, &json!({})).await.unwrap();
                    finish_and_take_next(&e, &bells, &bot).await;
                }
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
        start.elapsed()
    }
}

impl Rig {
    /// The apalis comparison's workload: `jobs` starts (16 clients at once),
    /// then the robots run them all; the time both took.
    async fn drain(&self, jobs: u64) -> Duration {
        let start = Instant::now();
        let mut clients = Vec::new();
        for i in 0..16u64 {
            let (e, u, p) = (self.engines[0].clone(), self.user.clone(), self.processes[0]);
            let n = jobs / 16 + u64::from(i < jobs % 16);
            clients.push(tokio::spawn(async move {
                for _ in 0..n {
                    e.start_job(&u, p, &json!({})).await.unwrap();
                }
            }));
        }
        for c in clients {
            c.await.unwrap();
        }
        let mut robots = Vec::new();
        for (i, bot) in self.bots.iter().enumerate() {
            let n = jobs / self.bots.len() as u64 + u64::from((i as u64) < jobs % self.bots.len() as u64);
            let (e, bot, bells) = (self.engines[bot.node].clone(), bot.clone(), self.bells.clone());
            robots.push(tokio::spawn(async move {
                for _ in 0..n {
                    finish_and_take_next(&e, &bells, &bot).await;
                }
            }));
        }
        for r in robots {
            r.await.unwrap();
        }
        start.elapsed()
    }
}

fn sqlite_url(tag: &str) -> String {
    let dir = std::env::temp_dir().join(format!("rpa-bench-store-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(format!("{tag}.db"));
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
    }
    SqlStore::sqlite_url(&path)
}

fn durable_lifecycles(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let mut g = c.benchmark_group("durable_lifecycle");
    g.throughput(Throughput::Elements(1));
    g.sample_size(10)
        .sampling_mode(SamplingMode::Flat)
        .measurement_time(Duration::from_secs(5));
    let pg = std::env::var("DATABASE_URL").ok().filter(|u| u.starts_with("postgres"));
    if pg.is_none() {
        eprintln!("skipping PostgreSQL: DATABASE_URL is not set");
    }
    for backlog in [1_000usize, 100_000] {
        let mut cases: Vec<(&str, Synchronous)> = vec![
            ("sqlite_normal", Synchronous::Normal),
            ("sqlite_full", Synchronous::Full),
        ];
        if pg.is_some() {
            cases.push(("postgres", Synchronous::Normal));
        }
        for (name, sync) in cases {
            let cpu = Cpu::now();
            let mut built: Option<Rig> = None;
            g.bench_with_input(BenchmarkId::new(name, backlog), &backlog, |b, &n| {
                let rig = built.get_or_insert_with(|| {
                    rt.block_on(async {
                        let url = match name {
                            "postgres" => support::fresh_postgres(pg.as_deref().unwrap(), &format!("bench_{n}")).await,
                            _ => sqlite_url(&format!("{name}-{n}")),
                        };
                        rig(url, sync, n).await
                    })
                });
                b.iter_custom(|iters| rt.block_on(rig.run(iters)));
            });
            if let Some(rig) = &built {
                rig.integrator.report(&format!("{name}/{backlog}"));
                if rig.integrator.off {
                    rt.block_on(drain_audit(&rig.engines[0], &format!("{name}/{backlog}")));
                }
                let (commits, conflicts) = rig.engines.iter().fold((0, 0), |(c, k), e| {
                    let m = e.metrics();
                    (
                        c + m.commits.load(Ordering::Relaxed),
                        k + m.conflicts.load(Ordering::Relaxed),
                    )
                });
                eprintln!(
                    "{name}/{backlog}: {} node(s): {commits} commits, {conflicts} refused as stale",
                    rig.engines.len()
                );
                if let Some(cpu) = cpu {
                    cpu.report(&format!("{name}/{backlog}"), commits);
                }
            }
            if let (Some(rig), "postgres", Some(url)) = (built.take(), name, pg.as_deref()) {
                drop(rig);
                rt.block_on(support::drop_postgres(url, &format!("bench_{backlog}")));
            }
        }
    }
    g.finish();
}

/// Side by side with `peers/apalis` (scripts/compare-apalis.sh): enqueue
/// 10,000 jobs, then run them all, on SQLite with synchronous NORMAL.
fn backlog_10k(c: &mut Criterion) {
    const JOBS: u64 = 10_000;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let mut g = c.benchmark_group("backlog_10k");
    g.throughput(Throughput::Elements(JOBS));
    g.sample_size(10)
        .sampling_mode(SamplingMode::Flat)
        .measurement_time(Duration::from_secs(30));
    let rig = rt.block_on(rig(sqlite_url("backlog"), Synchronous::Normal, 0));
    g.bench_function("rpa_sqlite_normal", |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let mut took = Duration::ZERO;
                for _ in 0..iters {
                    took += rig.drain(JOBS).await;
                }
                took
            })
        });
    });
    g.finish();
}

criterion_group!(benches, durable_lifecycles, backlog_10k);
criterion_main!(benches);
