//! The run analysis over a year of a million ended jobs: 100 processes in
//! 5 regions and 8 scenarios, 365 days, 1,000,000 jobs folded into their
//! figures per process and day (36,500 rows, written by the store itself),
//! then the reports the console asks for, on SQLite and, with
//! `DATABASE_URL`, PostgreSQL. `cargo bench --bench analysis`; figures go to
//! docs/PERFORMANCE.md.
#![allow(missing_docs)]

use std::collections::BTreeMap;
use std::hint::black_box;
use std::sync::Arc;
use std::time::Instant;

use criterion::{Criterion, criterion_group, criterion_main};
use rpa::core::analysis::{self, Attributes, Dimension, Ended, Period, RunFigures};
use rpa::core::ids::ProcessId;
use rpa::core::model::{JobState, Process, ProcessSpec, ProcessType};
use rpa::core::record::Row;
use rpa::core::store::{Commit, CommitStore, Write};
use rpa::sql::{SqlOptions, SqlStore};
use rpa::{Engine, EngineConfig, Key, SystemClock, Timestamp};

const JOBS: u64 = 1_000_000;
const PROCESSES: i64 = 100;
const DAYS: u64 = 365;
const FIRST_DAY: &str = "2025-12-01";
const LAST_DAY: &str = "2026-11-30";

fn processes() -> Vec<Process> {
    (1..=PROCESSES)
        .map(|i| {
            let mut spec = ProcessSpec::new(format!("process {i}"), ProcessType::Unattended);
            spec.attributes = Attributes {
                region: Some(format!("region {}", i % 5)),
                scenario: Some(format!("scenario {}", i % 8)),
                business_domain: Some(format!("domain {}", i % 3)),
                saved_minutes: 15,
            };
            Process {
                id: ProcessId(i),
                key: Key([i as u8; 16]),
                version: 1,
                spec: Arc::new(spec),
                running: 0,
                day: 0,
                day_successes: 0,
                pending_items: 0,
                created_at: Timestamp(0),
            }
        })
        .collect()
}

/// The figures of a million jobs, folded as the engine folds them.
fn figures() -> Vec<RunFigures> {
    let first = chrono::NaiveDate::parse_from_str(FIRST_DAY, "%Y-%m-%d").unwrap();
    let days: Vec<String> = (0..DAYS)
        .map(|d| (first + chrono::Days::new(d)).format("%Y-%m-%d").to_string())
        .collect();
    let mut figures = BTreeMap::new();
    let started = Instant::now();
    for n in 0..JOBS {
        let state = match n % 10 {
            0 => JobState::Faulted,
            1 if n % 100 == 1 => JobState::Stopped,
            _ => JobState::Successful,
        };
        analysis::fold(
            &mut figures,
            &Ended {
                process: ProcessId((n % PROCESSES as u64) as i64 + 1),
                day: days[((n / PROCESSES as u64) % DAYS) as usize].clone(),
                state,
                duration_ms: Some(30_000 + (n % 600) as i64 * 100),
            },
        );
    }
    eprintln!(
        "folded {JOBS} jobs into {} rows in {:?}",
        figures.len(),
        started.elapsed()
    );
    figures
        .into_values()
        .map(|mut f| {
            f.version = 1;
            f
        })
        .collect()
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let rows = figures();
    let ps = processes();
    let mut stores = Vec::new();
    let dir = std::env::temp_dir().join(format!("rpa-analysis-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    stores.push(("sqlite", SqlStore::sqlite_url(&dir.join("analysis.db"))));
    if let Ok(url) = std::env::var("DATABASE_URL") {
        stores.push(("postgres", url));
    }
    for (name, url) in stores {
        let engine = rt.block_on(async {
            let options = SqlOptions {
                sealing: rpa::sql::Sealing::Key([5; 32]),
                ..SqlOptions::default()
            };
            let store = SqlStore::connect(&url, options).await.unwrap();
            let started = Instant::now();
            for chunk in rows.chunks(1000) {
                let writes = chunk.iter().map(|f| Write::Record(Row::of(f).unwrap())).collect();
                store
                    .commit(Commit {
                        writes,
                        ..Commit::default()
                    })
                    .await
                    .unwrap();
            }
            eprintln!("{name}: wrote {} rows in {:?}", rows.len(), started.elapsed());
            Engine::new(store, Arc::new(SystemClock), EngineConfig::default())
        });
        let report = |by, period, from: &'static str| {
            let (engine, ps) = (&engine, &ps);
            async move { engine.run_analysis(ps, by, period, from, LAST_DAY).await.unwrap() }
        };
        let year = rt.block_on(report(Dimension::Region, Period::Month, FIRST_DAY));
        let runs: u64 = year.iter().map(|b| b.runs).sum();
        assert_eq!(runs, JOBS, "every job counted once");
        let mut g = c.benchmark_group(format!("analysis_{name}"));
        g.sample_size(20);
        g.bench_function("year_by_region_and_month", |b| {
            b.iter(|| black_box(rt.block_on(report(Dimension::Region, Period::Month, FIRST_DAY))))
        });
        g.bench_function("year_by_scenario", |b| {
            b.iter(|| black_box(rt.block_on(report(Dimension::Scenario, Period::All, FIRST_DAY))))
        });
        g.bench_function("month_by_process_and_day", |b| {
            b.iter(|| black_box(rt.block_on(report(Dimension::Process, Period::Day, "2026-11-01"))))
        });
        g.finish();
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
