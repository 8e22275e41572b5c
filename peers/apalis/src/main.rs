//! apalis 1.0 on apalis-sqlite: enqueue a backlog of no-op jobs into an
//! SQLite file (WAL, synchronous NORMAL, as the engine's default), then
//! process them all with one worker. Prints the median of the rounds.
//!
//! `BACKLOG` (default 10000), `ROUNDS` (default 5), `BATCH` (tasks per
//! fetch, default apalis's own 10).

use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use apalis::prelude::*;
use apalis_sqlite::{Config, SqliteStorage};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqliteSynchronous};

fn env(name: &str, default: usize) -> usize {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

async fn round(dir: &std::path::Path, i: usize, backlog: usize, batch: usize) -> (Duration, Duration) {
    let path = dir.join(format!("apalis-{i}.db"));
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
    }
    let options = SqliteConnectOptions::from_str(&format!("sqlite://{}?mode=rwc", path.display()))
        .expect("sqlite url")
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Normal);
    let pool = SqlitePool::connect_with(options).await.expect("open the database");
    SqliteStorage::setup(&pool).await.expect("apalis schema");
    let mut backend = SqliteStorage::new(&pool).with_config(Config::default().queue("bench").batch_size(batch));

    let start = Instant::now();
    backend.push_bulk((0..backlog as u32).collect()).await.expect("enqueue");
    let enqueued = start.elapsed();

    let done = Arc::new(AtomicUsize::new(0));
    async fn no_op(_job: u32, worker: WorkerContext, done: Data<Arc<AtomicUsize>>) -> Result<(), BoxDynError> {
        if done.fetch_add(1, Ordering::SeqCst) + 1 == BACKLOG.load(Ordering::SeqCst) {
            worker.stop()?;
        }
        Ok(())
    }
    BACKLOG.store(backlog, Ordering::SeqCst);
    let worker = WorkerBuilder::new(format!("peer-{i}"))
        .backend(backend)
        .data(done.clone())
        .build(no_op);
    let start = Instant::now();
    worker.run().await.expect("worker");
    let processed = start.elapsed();
    assert_eq!(done.load(Ordering::SeqCst), backlog, "every job ran once");
    pool.close().await;
    (enqueued, processed)
}

static BACKLOG: AtomicUsize = AtomicUsize::new(0);

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

#[tokio::main]
async fn main() {
    let backlog = env("BACKLOG", 10_000);
    let rounds = env("ROUNDS", 5).max(1);
    let batch = env("BATCH", 10).max(1);
    let dir = std::env::temp_dir().join(format!("rpa-apalis-peer-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let (mut enq, mut proc_, mut total) = (Vec::new(), Vec::new(), Vec::new());
    for i in 0..rounds {
        let (e, p) = round(&dir, i, backlog, batch).await;
        eprintln!("round {i}: enqueue {e:?}, process {p:?}");
        enq.push(e);
        proc_.push(p);
        total.push(e + p);
    }
    let _ = std::fs::remove_dir_all(&dir);
    let t = median(total);
    println!(
        "apalis-sqlite batch={batch} backlog={backlog}: enqueue {:.0} ms, process {:.0} ms, total {:.0} ms = {:.0} jobs/s (median of {rounds})",
        median(enq).as_secs_f64() * 1e3,
        median(proc_).as_secs_f64() * 1e3,
        t.as_secs_f64() * 1e3,
        backlog as f64 / t.as_secs_f64()
    );
}
