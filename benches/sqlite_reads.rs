//! Reads of one SQLite file: through the store (its read connections,
//! rusqlite on a blocking thread) and, for the floor, the same statement
//! on a rusqlite connection called inline. Each reads one ended job's row
//! by id (what the store reads from the file once a job has left memory)
//! and a job's 20 run logs, from a file of 10,000 ended jobs written by
//! the store itself. `cargo bench --bench sqlite_reads`; figures go to
//! docs/PERFORMANCE.md.
#![allow(missing_docs)]

use std::hint::black_box;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use criterion::{Criterion, criterion_group, criterion_main};
use rpa::Timestamp;
use rpa::core::conformance::sample_job;
use rpa::core::ids::{JobId, ProcessId, RobotId, RunLogId};
use rpa::core::model::JobState;
use rpa::core::model::{LogLevel, RunLog};
use rpa::core::store::{Commit, CommitStore, JobStore, RunStore, Write};
use rpa::sql::{SqlOptions, SqlStore};

const JOBS: i64 = 10_000;
const LOGS: i64 = 20;

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let dir = std::env::temp_dir().join(format!("rpa-sqlite-reads-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("reads.db");
    let url = SqlStore::sqlite_url(&path);
    let store = rt.block_on(async {
        let store = SqlStore::connect(&url, SqlOptions::default()).await.unwrap();
        for chunk in (1..=JOBS).collect::<Vec<_>>().chunks(500) {
            let mut writes = Vec::new();
            for &id in chunk {
                let mut job = sample_job(id, ProcessId(1), 0);
                job.state = JobState::Successful;
                writes.push(Write::Job(job));
                for n in 0..LOGS {
                    writes.push(Write::Log(RunLog {
                        id: RunLogId(id * 100 + n),
                        job: JobId(id),
                        robot: RobotId(1),
                        content: format!("step {n} of job {id}: clicked the button and read the grid"),
                        screenshot: None,
                        log_at: "2026-11-30 12:00:00".into(),
                        level: LogLevel::Info,
                        received_at: Timestamp(n),
                    }));
                }
            }
            store
                .commit(Commit {
                    writes,
                    ..Commit::default()
                })
                .await
                .unwrap();
        }
        store
    });
    let conn = rusqlite::Connection::open_with_flags(&path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY).unwrap();
    let conn = Arc::new(Mutex::new(conn));
    let job_sql = "SELECT data FROM rpa_jobs WHERE id = $1";
    let logs_sql = "SELECT data FROM rpa_logs WHERE job = $1 ORDER BY id";
    let mut next = 0i64;
    let mut id = move || {
        next = next % JOBS + 1;
        next
    };

    let mut g = c.benchmark_group("sqlite_reads");
    g.bench_function("job_by_id/store", |b| {
        b.iter_custom(|n| {
            let first = id();
            rt.block_on(async {
                let t = Instant::now();
                for i in 0..n as i64 {
                    let job = store.job(JobId((first + i) % JOBS + 1)).await.unwrap();
                    black_box(job.expect("stored").id);
                }
                t.elapsed()
            })
        })
    });
    g.bench_function("job_by_id/rusqlite_inline", |b| {
        b.iter(|| {
            let c = conn.lock().unwrap();
            let mut st = c.prepare_cached(job_sql).unwrap();
            st.query_row([id()], |r| r.get::<_, String>(0)).unwrap().len()
        })
    });
    g.bench_function("logs_of_job/store", |b| {
        b.iter_custom(|n| {
            let first = id();
            rt.block_on(async {
                let t = Instant::now();
                for i in 0..n as i64 {
                    let logs = store.logs(JobId((first + i) % JOBS + 1)).await.unwrap();
                    black_box(logs.len());
                }
                t.elapsed()
            })
        })
    });
    g.bench_function("logs_of_job/rusqlite_inline", |b| {
        b.iter(|| {
            let c = conn.lock().unwrap();
            let mut st = c.prepare_cached(logs_sql).unwrap();
            let rows = st.query_map([id()], |r| r.get::<_, String>(0)).unwrap();
            rows.count()
        })
    });
    g.finish();
    drop(store);
    let _ = std::fs::remove_dir_all(&dir);
}

criterion_group!(benches, bench);
criterion_main!(benches);
