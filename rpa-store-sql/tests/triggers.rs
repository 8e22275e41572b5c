//! Two nodes on one PostgreSQL database adding items to a triggered queue
//! and ending its jobs at the same time: the trigger never has more than
//! `maxConcurrent` jobs, and no item gets two.

mod common;

use std::collections::HashSet;
use std::sync::Arc;

use common::{fresh_postgres, pg_options, postgres_url};
use rpa_core::auth::PasswordCost;
use rpa_core::engine::NewQueueItem;
use rpa_core::job::StopStrategy;
use rpa_core::model::{Actor, ItemState, JobState, ProcessSpec, ProcessType, QueueItem};
use rpa_core::store::prelude::*;
use rpa_core::trigger::{QueueTrigger, TriggerState};
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
async fn two_postgres_nodes_never_pass_max_concurrent() {
    let Some(url) = postgres_url() else { return };
    let db = fresh_postgres(&url).await;
    let clock = ManualClock::new(T0);
    let a = Arc::new(engine(SqlStore::connect(&db, pg_options()).await.unwrap(), &clock, 1));
    let b = Arc::new(engine(SqlStore::connect(&db, pg_options()).await.unwrap(), &clock, 2));
    let admin = a.ensure_admin("admin", "pw").await.unwrap();
    let mut spec = ProcessSpec::new("Q", ProcessType::Queue);
    spec.max_run_num = 0;
    spec.trigger = Some(QueueTrigger {
        min_items: 2,
        max_concurrent: 3,
    });
    let p = a.create_process(Actor::System, spec).await.unwrap();
    const EACH: usize = 20;
    let add = |e: Arc<Engine<SqlStore>>, admin: rpa_core::model::User| {
        tokio::spawn(async move {
            let mut items = Vec::new();
            for n in 0..EACH {
                let new = NewQueueItem {
                    content: json!({ "n": n }),
                    ..NewQueueItem::default()
                };
                items.push(e.add_queue_item(&admin, p.key, new).await.unwrap());
            }
            items
        })
    };
    let (x, y) = (add(a.clone(), admin.clone()), add(b.clone(), admin.clone()));
    let items: Vec<QueueItem> = x.await.unwrap().into_iter().chain(y.await.unwrap()).collect();

    let state = |e: Arc<Engine<SqlStore>>| async move { e.store().get::<TriggerState>(p.id.0).await.unwrap().unwrap() };
    let with_jobs = |e: Arc<Engine<SqlStore>>, items: Vec<QueueItem>| async move {
        let mut jobs = Vec::new();
        for i in &items {
            let i = e.queue_item(i.key).await.unwrap();
            if let Some(j) = i.job {
                jobs.push((i.key, e.store().job(j).await.unwrap().unwrap()));
            }
        }
        jobs
    };
    let s = state(a.clone()).await;
    assert_eq!((s.waiting, s.active), ((2 * EACH - 3) as u32, 3));
    // Node a's copy may lag node b's commits for a moment: never more than three.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let n = with_jobs(a.clone(), items.clone()).await.len();
        assert!(n <= 3, "{n} items have jobs");
        if n == 3 {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "three items never had jobs");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }

    // Both nodes cancel whatever trigger job they see, until the queue is
    // drained. The bound is checked against the database itself: a node's
    // copy may still show a job the other node has ended.
    let db_pool = sqlx::PgPool::connect(&db).await.unwrap();
    let live_in_db = || async {
        let n: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM rpa_jobs WHERE process = $1 AND state NOT IN ('Successful', 'Faulted', 'Stopped', 'Canceled')",
        )
        .bind(p.id.0)
        .fetch_one(&db_pool)
        .await
        .unwrap();
        n
    };
    let mut cancelled = HashSet::new();
    for _ in 0..200 {
        let in_db = live_in_db().await;
        assert!(in_db <= 3, "maxConcurrent passed: {in_db}");
        let jobs = with_jobs(a.clone(), items.clone()).await;
        let live: Vec<_> = jobs.iter().filter(|(_, j)| !j.state.is_terminal()).collect();
        if live.is_empty() && in_db == 0 {
            break;
        }
        if live.is_empty() {
            // This node's copy has not seen the new jobs yet.
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            continue;
        }
        let mut hs = Vec::new();
        for (n, (_, j)) in live.iter().enumerate() {
            let e = if n % 2 == 0 { a.clone() } else { b.clone() };
            let (key, admin) = (j.key, admin.clone());
            hs.push(tokio::spawn(async move {
                (key, e.stop_job(&admin, key, StopStrategy::SoftStop).await)
            }));
        }
        for h in hs {
            match h.await.unwrap() {
                (key, Ok(job)) => {
                    assert_eq!(job.state, JobState::Canceled);
                    assert!(cancelled.insert(key), "a job canceled twice");
                }
                // A node whose copy lagged saw a job another node had
                // already ended: the stop is refused, nothing happens twice.
                (_, Err(rpa_core::error::Error::Rejected(_))) => {}
                (_, Err(e)) => panic!("{e}"),
            }
        }
    }
    assert_eq!(cancelled.len(), 2 * EACH, "every item got one job, canceled once");
    // The nodes' copies catch up with what was committed.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let jobs = with_jobs(a.clone(), items.clone()).await;
        let mut deleted = 0;
        for i in &items {
            deleted += usize::from(a.queue_item(i.key).await.unwrap().state == ItemState::Deleted);
        }
        let done = jobs.len() == 2 * EACH
            && jobs.iter().all(|(_, j)| j.state == JobState::Canceled && j.triggered)
            && deleted == 2 * EACH;
        if done {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "items and jobs did not all end");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let s = state(b.clone()).await;
    assert_eq!((s.waiting, s.active), (0, 0));
}
