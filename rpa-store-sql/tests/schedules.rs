//! Two nodes on one PostgreSQL database firing the same schedule at the
//! same moment (as two timer holders would while a lease changes hands):
//! each due time is recorded once and starts one job.

mod common;

use std::sync::Arc;

use common::{fresh_postgres, pg_options, postgres_url};
use rpa_core::auth::PasswordCost;
use rpa_core::model::{Actor, ProcessSpec, ProcessType};
use rpa_core::schedule::{Missed, Rule, ScheduleFiring, ScheduleSpec};
use rpa_core::store::prelude::*;
use rpa_core::{Engine, EngineConfig, ManualClock, Timestamp};
use rpa_store_sql::SqlStore;
use serde_json::json;

const T0: Timestamp = Timestamp(1_767_225_600_000);

fn engine(store: SqlStore, clock: &ManualClock, seed: u64) -> Engine<SqlStore> {
    let config = EngineConfig {
        password_cost: PasswordCost::TESTING,
        seed: Some(seed),
        ..EngineConfig::default()
    };
    Engine::new(store, Arc::new(clock.clone()), config)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_postgres_nodes_fire_each_due_time_once() {
    let Some(url) = postgres_url() else { return };
    let db = fresh_postgres(&url).await;
    let clock = ManualClock::new(T0);
    let a = Arc::new(engine(SqlStore::connect(&db, pg_options()).await.unwrap(), &clock, 1));
    let b = Arc::new(engine(SqlStore::connect(&db, pg_options()).await.unwrap(), &clock, 2));
    let admin = a.ensure_admin("admin", "pw").await.unwrap();
    let p = a
        .create_process(Actor::System, ProcessSpec::new("P", ProcessType::Unattended))
        .await
        .unwrap();
    let spec = ScheduleSpec {
        name: "race".into(),
        process: p.id,
        arguments: Arc::new(json!({})),
        rule: Rule::Every { ms: 60_000 },
        zone: "UTC".into(),
        from: None,
        until: None,
        hours: None,
        skip_dates: Vec::new(),
        missed: Missed::RunOnce,
    };
    let s = a.create_schedule(Actor::System, &admin, spec).await.unwrap();
    let rounds = 15;
    let mut total = 0;
    for round in 1..=rounds {
        clock.advance(60_000);
        let now = T0.plus_ms(round * 60_000);
        let (x, y) = {
            let (a, b) = (a.clone(), b.clone());
            let ha = tokio::spawn(async move { a.fire_schedules(now).await });
            let hb = tokio::spawn(async move { b.fire_schedules(now).await });
            (ha.await.unwrap().unwrap(), hb.await.unwrap().unwrap())
        };
        assert_eq!(x + y, 1, "round {round}: the due time is handled once ({x} + {y})");
        total += x + y;
    }
    let firings: Vec<ScheduleFiring> = a
        .store()
        .list(rpa_core::record::Select::only("schedule", s.id, 100))
        .await
        .unwrap();
    assert_eq!((total, firings.len()), (rounds as usize, rounds as usize));
    let mut jobs: Vec<_> = firings.iter().map(|f| f.job.unwrap()).collect();
    jobs.sort_unstable();
    jobs.dedup();
    assert_eq!(jobs.len(), rounds as usize, "one job per due time");
    // Ids come from each node's own block: order by due time.
    let mut dues: Vec<Timestamp> = firings.iter().map(|f| f.due).collect();
    dues.sort_unstable();
    assert_eq!(dues, (1..=rounds).map(|k| T0.plus_ms(k * 60_000)).collect::<Vec<_>>());
    assert!(a.verify_audit().await.unwrap().is_ok());
}
