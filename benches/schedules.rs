//! 10,000 schedules due in the same minute, fired by one pass of the timer
//! holder on SQLite (`Engine::fire_schedules`): every firing is a commit
//! (the schedule moved on, its firing recorded, its job started).
//!
//! `cargo bench --bench schedules`

use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{Criterion, SamplingMode, Throughput, criterion_group, criterion_main};
use rpa::core::auth::PasswordCost;
use rpa::core::fixtures::{self, Basics};
use rpa::core::model::{Actor, ProcessSpec, ProcessType};
use rpa::core::schedule::{Missed, Rule, ScheduleSpec};
use rpa::core::{Engine, EngineConfig, ManualClock, Timestamp};
use rpa::sql::{SqlOptions, SqlStore};
use serde_json::json;

const SCHEDULES: u64 = 10_000;
const T0: Timestamp = Timestamp(1_767_225_600_000);

fn sqlite_url(round: u64) -> String {
    let dir = std::env::temp_dir().join(format!("rpa-bench-schedules-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(format!("s{round}.db"));
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
    }
    SqlStore::sqlite_url(&path)
}

/// A fresh store with `SCHEDULES` schedules all due at T0 + 1 min; the time
/// one pass takes to fire them all.
async fn round(n: u64) -> Duration {
    let store = SqlStore::connect(
        &sqlite_url(n),
        SqlOptions {
            sealing: rpa::sql::Sealing::Key([5; 32]),
            ..SqlOptions::default()
        },
    )
    .await
    .unwrap();
    let clock = ManualClock::new(T0);
    let config = EngineConfig {
        password_cost: PasswordCost::TESTING,
        ..EngineConfig::default()
    };
    let engine = Engine::new(store, Arc::new(clock.clone()), config);
    let mut spec = ProcessSpec::new("bench", ProcessType::Unattended);
    spec.max_run_num = 0;
    let Basics { process, user } = fixtures::basics(&engine, spec).await.unwrap();
    for i in 0..SCHEDULES {
        let s = ScheduleSpec {
            name: format!("s{i}"),
            process: process.id,
            arguments: Arc::new(json!({})),
            rule: Rule::Cron {
                expr: "* * * * *".into(),
            },
            zone: "Asia/Shanghai".into(),
            from: None,
            until: None,
            hours: None,
            skip_dates: Vec::new(),
            missed: Missed::RunOnce,
        };
        engine.create_schedule(Actor::System, &user, s).await.unwrap();
    }
    clock.advance(60_000);
    let t = Instant::now();
    let fired = engine.fire_schedules(clock_now(&clock)).await.unwrap();
    let took = t.elapsed();
    assert_eq!(fired as u64, SCHEDULES);
    took
}

fn clock_now(c: &ManualClock) -> Timestamp {
    rpa::core::Clock::now(c)
}

fn due_in_one_minute(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let mut g = c.benchmark_group("schedules_due_in_one_minute");
    g.throughput(Throughput::Elements(SCHEDULES));
    g.sample_size(10)
        .sampling_mode(SamplingMode::Flat)
        .measurement_time(Duration::from_secs(20));
    let mut n = 0;
    g.bench_function("sqlite_10k", |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let mut took = Duration::ZERO;
                for _ in 0..iters {
                    n += 1;
                    took += round(n).await;
                }
                took
            })
        });
    });
    g.finish();
}

criterion_group!(benches, due_in_one_minute);
criterion_main!(benches);
