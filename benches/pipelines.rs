//! What a pipeline adds to its jobs: 100 jobs run one after the other on
//! one robot (start, dispatch, finish), against a pipeline of 100 steps in
//! a chain run by the same robot (each step's finish ends its job, moves the
//! run and starts the next step's job in one commit). Both in memory and on
//! SQLite; the difference divided by 100 is the engine time a step adds.
//!
//! `cargo bench --bench pipelines`

use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{Criterion, SamplingMode, Throughput, criterion_group, criterion_main};
use rpa::core::auth::PasswordCost;
use rpa::core::engine::Registration;
use rpa::core::fixtures::{self, Basics};
use rpa::core::job::FinishStatus;
use rpa::core::model::{Actor, ProcessSpec, ProcessType, User};
use rpa::core::pipeline::{PipelineDef, RunState};
use rpa::core::{Engine, EngineConfig, ManualClock, MemoryStore, Store, Timestamp};
use rpa::sql::{SqlOptions, SqlStore};
use serde_json::{Map, json};

const STEPS: u64 = 100;
const T0: Timestamp = Timestamp(1_767_225_600_000);

fn sqlite_url(round: u64) -> String {
    let dir = std::env::temp_dir().join(format!("rpa-bench-pipelines-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(format!("p{round}.db"));
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
    }
    SqlStore::sqlite_url(&path)
}

async fn sqlite(round: u64) -> SqlStore {
    SqlStore::connect(
        &sqlite_url(round),
        SqlOptions {
            sealing: rpa::sql::Sealing::Key([5; 32]),
            ..SqlOptions::default()
        },
    )
    .await
    .unwrap()
}

struct World<S: Store> {
    engine: Engine<S>,
    user: User,
    process: rpa::core::model::Process,
    robot: Registration,
    pipeline: i64,
}

async fn world<S: Store>(store: S) -> World<S> {
    let config = EngineConfig {
        password_cost: PasswordCost::TESTING,
        ..EngineConfig::default()
    };
    let engine = Engine::new(store, Arc::new(ManualClock::new(T0)), config);
    let mut spec = ProcessSpec::new("step", ProcessType::Unattended);
    spec.max_run_num = 0;
    let Basics { process, user } = fixtures::basics(&engine, spec).await.unwrap();
    let robot = fixtures::ready_robot(&engine, "r").await.unwrap();
    let steps: Vec<_> = (0..STEPS)
        .map(|i| {
            if i == 0 {
                json!({"name": "s0", "process": "step"})
            } else {
                json!({"name": format!("s{i}"), "process": "step", "after": [format!("s{}", i - 1)]})
            }
        })
        .collect();
    let def: PipelineDef = serde_json::from_value(json!({"name": "chain", "steps": steps})).unwrap();
    let pipeline = engine.save_pipeline(Actor::System, def).await.unwrap().id;
    World {
        engine,
        user,
        process,
        robot,
        pipeline,
    }
}

/// Finishes whatever the robot runs; false when it runs nothing.
async fn finish_current<S: Store>(w: &World<S>) -> bool {
    let r = w.engine.store().robot_by_code("r").await.unwrap().unwrap();
    let Some(job) = r.job else {
        return false;
    };
    let key = w.engine.store().job(job).await.unwrap().unwrap().key;
    w.engine
        .report_finish("r", w.robot.connect, key, FinishStatus::Success, None, None)
        .await
        .unwrap();
    true
}

async fn jobs<S: Store>(w: &World<S>) {
    for _ in 0..STEPS {
        w.engine.start_job(&w.user, w.process.key, &json!({})).await.unwrap();
        assert!(finish_current(w).await);
    }
}

async fn chain<S: Store>(w: &World<S>) {
    let admin = w.user.clone();
    let run = w
        .engine
        .start_pipeline(Actor::System, &admin, w.pipeline, Map::new())
        .await
        .unwrap();
    let mut n = 0;
    while finish_current(w).await {
        n += 1;
    }
    assert_eq!(n, STEPS);
    assert_eq!(w.engine.pipeline_run(run.id).await.unwrap().state, RunState::Successful);
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let mut g = c.benchmark_group("pipeline_100_steps");
    g.throughput(Throughput::Elements(STEPS));
    g.sample_size(10)
        .sampling_mode(SamplingMode::Flat)
        .measurement_time(Duration::from_secs(10));
    for pipeline in [false, true] {
        let what = if pipeline { "pipeline" } else { "jobs" };
        g.bench_function(format!("memory/{what}"), |b| {
            b.iter_custom(|iters| {
                rt.block_on(async {
                    let mut took = Duration::ZERO;
                    for _ in 0..iters {
                        let w = world(MemoryStore::new()).await;
                        let t = Instant::now();
                        if pipeline {
                            chain(&w).await
                        } else {
                            jobs(&w).await
                        }
                        took += t.elapsed();
                    }
                    took
                })
            })
        });
        let mut round = 0;
        g.bench_function(format!("sqlite/{what}"), |b| {
            b.iter_custom(|iters| {
                rt.block_on(async {
                    let mut took = Duration::ZERO;
                    for _ in 0..iters {
                        round += 1;
                        let w = world(sqlite(round + if pipeline { 1_000_000 } else { 0 }).await).await;
                        let t = Instant::now();
                        if pipeline {
                            chain(&w).await
                        } else {
                            jobs(&w).await
                        }
                        took += t.elapsed();
                    }
                    took
                })
            })
        });
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
