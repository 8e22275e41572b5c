#![allow(missing_docs)]
//! Scheduling throughput in memory: the full job lifecycle (start → dispatch
//! → Running → finish, audit on) with a standing backlog of pending jobs, and
//! with many robots. `cargo bench --bench scheduling`; figures go to
//! docs/PERFORMANCE.md.

use std::hint::black_box;
use std::sync::Arc;

use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, SamplingMode, Throughput, criterion_group, criterion_main};
use futures::executor::block_on;
use rpa::core::auth::PasswordCost;
use rpa::core::fixtures::{self, Basics};
use rpa::core::ids::RobotId;
use rpa::core::job::FinishStatus;
use rpa::core::model::{ProcessSpec, ProcessType, User};
use rpa::core::transport::Command;
use rpa::{Engine, EngineConfig, Key, ManualClock, MemoryStore, Timestamp};
use serde_json::json;

struct Rig {
    engine: Engine<MemoryStore>,
    user: User,
    process: Key,
    robots: Vec<(String, Key, Key, RobotId)>,
}

/// An engine with `robots` busy robots and `backlog` pending jobs behind them.
fn rig(robots: usize, backlog: usize) -> Rig {
    let clock = ManualClock::new(Timestamp(1_700_000_000_000));
    let config = EngineConfig {
        password_cost: PasswordCost::TESTING,
        seed: Some(7),
        heartbeat_timeout_ms: u64::MAX / 4,
        ..EngineConfig::default()
    };
    let engine = Engine::new(MemoryStore::new(), Arc::new(clock), config);
    block_on(async {
        let mut spec = ProcessSpec::new("bench", ProcessType::Unattended);
        spec.max_run_num = 0;
        spec.package_uri = "http://files/p".into();
        let Basics { process: p, user } = fixtures::basics(&engine, spec).await.unwrap();
        let mut bots = Vec::new();
        for i in 0..robots {
            let code = format!("r{i}");
            let reg = fixtures::ready_robot(&engine, &code).await.unwrap();
            bots.push((code, reg.connect, Key([0; 16]), reg.robot.id));
        }
        // One running job per robot, then the backlog.
        for _ in 0..robots + backlog {
            engine.start_job(&user, p.key, &json!({})).await.unwrap();
        }
        let mut rig = Rig {
            engine,
            user,
            process: p.key,
            robots: bots,
        };
        for i in 0..robots {
            rig.robots[i].2 = rig.take_execute(i).await;
        }
        rig
    })
}

impl Rig {
    async fn take_execute(&self, i: usize) -> Key {
        let robot = rpa::core::store::RobotStore::robot_by_code(self.engine.store(), &self.robots[i].0)
            .await
            .unwrap()
            .unwrap();
        let cmds = self.engine.take_commands(robot.id).await.unwrap();
        match cmds.last() {
            Some(Command::Execute(e)) => e.run_instance_id,
            other => panic!("expected Execute, got {other:?}"),
        }
    }

    /// One lifecycle: a new job joins the backlog, robot `i` finishes its
    /// job, and the scheduler gives it the oldest pending job.
    async fn lifecycle(&mut self, i: usize) {
        self.engine
            .start_job(&self.user, self.process, &json!({}))
            .await
            .unwrap();
        let (code, connect, run, _) = self.robots[i].clone();
        self.engine
            .report_finish(&code, connect, run, FinishStatus::Success, None, None)
            .await
            .unwrap();
        self.robots[i].2 = self.take_execute(i).await;
    }
}

fn lifecycle_with_backlog(c: &mut Criterion) {
    let mut g = c.benchmark_group("lifecycle_backlog");
    g.throughput(Throughput::Elements(1));
    // Few, equal samples: the store keeps every finished job, so a long run
    // measures a growing history as much as the backlog.
    g.sample_size(10)
        .sampling_mode(SamplingMode::Flat)
        .measurement_time(Duration::from_secs(3));
    for backlog in [1_000usize, 100_000, 1_000_000] {
        // Built on first use, so a filtered run does not pay for the others.
        let mut built = None;
        g.bench_with_input(BenchmarkId::from_parameter(backlog), &backlog, |b, &n| {
            let rig = built.get_or_insert_with(|| rig(1, n));
            b.iter_custom(|iters| {
                block_on(async {
                    let start = Instant::now();
                    for _ in 0..iters {
                        rig.lifecycle(black_box(0)).await;
                    }
                    start.elapsed()
                })
            });
        });
    }
    g.finish();
}

fn lifecycle_with_robots(c: &mut Criterion) {
    let mut g = c.benchmark_group("lifecycle_robots");
    g.throughput(Throughput::Elements(1));
    g.sample_size(10)
        .sampling_mode(SamplingMode::Flat)
        .measurement_time(Duration::from_secs(3));
    for robots in [10usize, 100, 1_000] {
        let mut built = None;
        let mut i = 0;
        g.bench_with_input(BenchmarkId::from_parameter(robots), &robots, |b, &n| {
            let rig = built.get_or_insert_with(|| rig(n, 1_000));
            b.iter_custom(|iters| {
                block_on(async {
                    let start = Instant::now();
                    for _ in 0..iters {
                        rig.lifecycle(black_box(i)).await;
                        i = (i + 1) % robots;
                    }
                    start.elapsed()
                })
            });
        });
    }
    g.finish();
}

criterion_group!(benches, lifecycle_with_backlog, lifecycle_with_robots);
criterion_main!(benches);
