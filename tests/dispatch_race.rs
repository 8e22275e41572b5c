//! Dispatches racing on one node (an SQLite file, real threads, no timer
//! tick): every job started while robots are idle is on a robot when the
//! calls that started them have returned, even when the starts race for
//! the last idle robots and a dispatch that held one of them lets it go
//! (its job was taken by another dispatch meanwhile).

use std::sync::Arc;

use rpa::core::auth::{PasswordCost, supplier_proof};
use rpa::core::fixtures::{self, Basics};
use rpa::core::model::{JobState, ProcessSpec, ProcessType, RobotState};
use rpa::sql::{SqlOptions, SqlStore};
use rpa::{Engine, EngineConfig, ManualClock, Timestamp};
use serde_json::json;

const ROBOTS: usize = 32;
const CLIENTS: usize = 16;
const ROUNDS: usize = 25;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn jobs_started_at_once_are_all_on_robots_when_the_starts_return() {
    let dir = std::env::temp_dir().join(format!("rpa-dispatch-race-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    for round in 0..ROUNDS {
        let path = dir.join(format!("round{round}.db"));
        let store = SqlStore::connect(&SqlStore::sqlite_url(&path), SqlOptions::default())
            .await
            .unwrap();
        let config = EngineConfig {
            password_cost: PasswordCost::TESTING,
            heartbeat_timeout_ms: u64::MAX / 4,
            node: Some(1),
            ..EngineConfig::default()
        };
        let clock = ManualClock::new(Timestamp(1_700_000_000_000));
        let engine = Arc::new(Engine::new(store, Arc::new(clock), config));
        let mut spec = ProcessSpec::new("race", ProcessType::Unattended);
        spec.max_run_num = 0;
        let Basics { process, user } = fixtures::basics(&engine, spec).await.unwrap();
        for i in 0..ROBOTS {
            let code = format!("r{i}");
            let proof = supplier_proof(fixtures::VENDOR_SECRET, &code);
            let reg = engine
                .register_socket(&code, fixtures::VENDOR, &proof, None, &[])
                .await
                .unwrap();
            engine.heartbeat(&code, reg.connect, None).await.unwrap();
        }
        let mut clients = Vec::new();
        for _ in 0..CLIENTS {
            let (engine, user) = (engine.clone(), user.clone());
            clients.push(tokio::spawn(async move {
                for _ in 0..ROBOTS / CLIENTS {
                    engine.start_job(&user, process.key, &json!({})).await.unwrap();
                }
            }));
        }
        for c in clients {
            c.await.unwrap();
        }
        let busy = engine
            .robots()
            .await
            .unwrap()
            .iter()
            .filter(|r| r.state == RobotState::Busy)
            .count();
        let (pending, _) = engine
            .jobs_of(&[process.id], Some(&[JobState::Pending]), 100)
            .await
            .unwrap();
        assert_eq!(
            (busy, pending as usize),
            (ROBOTS, 0),
            "round {round}: every robot runs a job, none waits for a tick"
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}
