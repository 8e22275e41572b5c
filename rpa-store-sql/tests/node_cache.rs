//! Two stores on one PostgreSQL database, as two nodes are: each keeps what
//! is live in memory, hears of the other's commits, and never decides on a
//! stale copy (the database refuses it, and the refused node re-reads).

mod common;

use rpa_core::store::prelude::*;
use std::time::Duration;

use common::{fresh_postgres, postgres_url};
use rpa_core::Timestamp;
use rpa_core::conformance::{sample_job, sample_robot};
use rpa_core::error::StoreError;
use rpa_core::ids::{JobId, ProcessId, RobotId, UserId};
use rpa_core::model::{Job, JobState, RobotState, Token};
use rpa_core::store::{Commit, Write};
use rpa_store_sql::SqlStore;

async fn put(s: &SqlStore, writes: Vec<Write>) -> Result<(), StoreError> {
    s.commit(Commit {
        writes,
        ..Commit::default()
    })
    .await
}

/// Ends `s`'s listening connections, as a network fault would.
async fn drop_listeners(s: &SqlStore) {
    let rows = s
        .query(
            "SELECT COUNT(pg_terminate_backend(pid)) FROM pg_stat_activity \
             WHERE datname = current_database() AND query LIKE 'LISTEN%rpa_changes%'",
            &[rpa_core::record::ColumnType::Int],
        )
        .await
        .unwrap();
    let killed = match rows.first().and_then(|r| r.first()) {
        Some(rpa_core::record::Cell::Int(n)) => *n,
        other => panic!("{other:?}"),
    };
    assert!(killed >= 1, "the listeners were found");
}

/// Polls `f` until it holds (the other node hears of a commit within milliseconds).
async fn eventually<F: AsyncFn() -> bool>(what: &str, f: F) {
    for _ in 0..200 {
        if f().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("never: {what}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_nodes_hear_of_each_others_commits_and_never_commit_a_stale_copy() {
    let Some(url) = postgres_url() else { return };
    let db = fresh_postgres(&url).await;
    let a = SqlStore::connect(&db, common::pg_options()).await.unwrap();
    let b = SqlStore::connect(&db, common::pg_options()).await.unwrap();

    // A job and an idle robot committed on A appear in B's dispatch indexes.
    let job = sample_job(1, ProcessId(1), 0);
    put(
        &a,
        vec![
            Write::Job(job.clone()),
            Write::Robot(sample_robot(1, RobotState::Available)),
        ],
    )
    .await
    .unwrap();
    eventually("B sees A's pending job", async || {
        b.next_pending(&[ProcessId(1)]).await.unwrap().map(|j| j.id) == Some(JobId(1))
    })
    .await;
    eventually("B sees A's idle robot", async || {
        b.available_robots(None, 10).await.unwrap().len() == 1
    })
    .await;

    // A changes the job; B, before it hears, commits from its old copy: refused.
    let running = Job {
        version: 2,
        state: JobState::Running,
        robot: Some(RobotId(1)),
        ..job.clone()
    };
    put(&a, vec![Write::Job(running)]).await.unwrap();
    let stale = Job {
        version: 2,
        state: JobState::Canceled,
        ..job.clone()
    };
    assert_eq!(put(&b, vec![Write::Job(stale)]).await, Err(StoreError::Conflict));
    // The refusal brought B's copy up to date: it decides again on what A wrote.
    let fresh = b.job(JobId(1)).await.unwrap().unwrap();
    assert_eq!((fresh.version, fresh.state), (2, JobState::Running));
    assert!(
        b.next_pending(&[ProcessId(1)]).await.unwrap().is_none(),
        "no longer pending on B"
    );

    // B ends it; A forgets it from memory and reads the ended job from the database.
    let ended = Job {
        version: 3,
        state: JobState::Successful,
        ..fresh
    };
    put(&b, vec![Write::Job(ended)]).await.unwrap();
    eventually("A hears the job ended", async || {
        a.job(JobId(1)).await.unwrap().map(|j| j.state) == Some(JobState::Successful)
    })
    .await;

    // Something created on B a moment ago is found on A by a direct lookup.
    put(&b, vec![Write::Robot(sample_robot(2, RobotState::Available))])
        .await
        .unwrap();
    assert!(a.robot(RobotId(2)).await.unwrap().is_some());

    // A session opened on A works on B; ended on B, A stops accepting it.
    let token = Token {
        hash: [9; 32],
        user: UserId(1),
        created_at: Timestamp(0),
        expires_at: Timestamp(i64::MAX),
    };
    put(&a, vec![Write::Token(token)]).await.unwrap();
    assert!(b.token([9; 32]).await.unwrap().is_some(), "read through on B");
    put(&b, vec![Write::RevokeToken([9; 32])]).await.unwrap();
    eventually("A hears the session ended", async || {
        a.token([9; 32]).await.unwrap().is_none()
    })
    .await;

    // B's listening connection drops; what A commits meanwhile, B finds by
    // reloading once it listens again.
    drop_listeners(&b).await;
    put(&a, vec![Write::Job(sample_job(3, ProcessId(1), 0))]).await.unwrap();
    eventually("B reloads after its listener came back", async || {
        b.next_pending(&[ProcessId(1)]).await.unwrap().map(|j| j.id) == Some(JobId(3))
    })
    .await;
}

/// Users are a cached record kind: each node answers from memory once it
/// has loaded them, and hears of the other node's changes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_nodes_keep_cached_record_kinds_level() {
    use rpa_core::conformance::sample_user;
    use rpa_core::model::User;

    let Some(url) = postgres_url() else { return };
    let db = fresh_postgres(&url).await;
    let a = SqlStore::connect(&db, common::pg_options()).await.unwrap();
    let b = SqlStore::connect(&db, common::pg_options()).await.unwrap();
    let record = |u: &User| Write::record(u).unwrap();

    // B loads the kind (nobody yet); A creates a user: B finds it by name at once
    // (a miss asks the database) and by id.
    assert!(b.users().await.unwrap().is_empty());
    let ann = sample_user(1, "ann");
    put(&a, vec![record(&ann)]).await.unwrap();
    assert_eq!(b.user_by_name("ann").await.unwrap().map(|u| u.id), Some(UserId(1)));
    assert_eq!(b.user(UserId(1)).await.unwrap().map(|u| u.name), Some("ann".into()));

    // A disables her: B hears of it (its memory answers, not the database).
    let disabled = User {
        version: 2,
        disabled: true,
        ..ann.clone()
    };
    put(&a, vec![record(&disabled)]).await.unwrap();
    eventually("B hears ann was disabled", async || {
        b.user(UserId(1)).await.unwrap().is_some_and(|u| u.disabled)
    })
    .await;
    // A name taken on one node is refused on the other, in the kind's words.
    assert_eq!(
        put(&b, vec![record(&sample_user(2, "ann"))]).await,
        Err(StoreError::Duplicate("user name"))
    );
    // A stale copy is refused; the refusal brings B's copy up to date.
    assert_eq!(put(&b, vec![record(&disabled)]).await, Err(StoreError::Conflict));

    // B's listener drops; A's change meanwhile is found by B's reload.
    drop_listeners(&b).await;
    let renamed = User {
        version: 3,
        name: "anna".into(),
        ..disabled
    };
    put(&a, vec![record(&renamed)]).await.unwrap();
    eventually("B reloads the users after its listener came back", async || {
        b.users()
            .await
            .unwrap()
            .iter()
            .map(|u| u.name.clone())
            .collect::<Vec<_>>()
            == ["anna"]
    })
    .await;
}

/// Two nodes count for one process at once. Without a limit each adds to a
/// row of its own (no waiting on the other, nothing refused) and every
/// count lands; with `maxRunNum` the sum is exact across the nodes: of 20
/// starts racing for 5 slots, 5 stand. A node whose copy still shows no
/// limit after the other node set one is refused, and counts exactly once
/// it has read again. Successes count for the latest day any node counted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_nodes_count_side_by_side_and_limits_hold_across_them() {
    use rpa_core::conformance::sample_process;
    use rpa_core::store::Counts;
    use std::sync::Arc;
    let Some(url) = postgres_url() else { return };
    let db = fresh_postgres(&url).await;
    let a = SqlStore::connect(&db, common::pg_options()).await.unwrap();
    let b = SqlStore::connect(&db, common::pg_options()).await.unwrap();
    let mut free = sample_process(1);
    Arc::make_mut(&mut free.spec).max_run_num = 0;
    let mut capped = sample_process(2);
    Arc::make_mut(&mut capped.spec).max_run_num = 5;
    put(&a, vec![Write::Process(free.clone()), Write::Process(capped.clone())])
        .await
        .unwrap();
    for s in [&a, &b] {
        eventually("both nodes know both processes", async || {
            s.process(ProcessId(2)).await.unwrap().is_some()
        })
        .await;
    }
    let start = |p: ProcessId| Counts {
        process: p,
        running: 1,
        pending_items: 0,
        successes: 0,
        day: 1,
        limit_pending: false,
    };
    let race = |p: ProcessId| {
        let (a, b) = (a.clone(), b.clone());
        async move {
            let mut tasks = Vec::new();
            for i in 0..20 {
                let s = if i % 2 == 0 { a.clone() } else { b.clone() };
                tasks.push(tokio::spawn(
                    async move { put(&s, vec![Write::Counts(start(p))]).await },
                ));
            }
            let mut stood = 0;
            for t in tasks {
                match t.await.unwrap() {
                    Ok(()) => stood += 1,
                    Err(StoreError::Conflict) => {}
                    Err(e) => panic!("{e:?}"),
                }
            }
            stood
        }
    };
    assert_eq!(race(ProcessId(1)).await, 20, "no limit: every count stands");
    assert_eq!(race(ProcessId(2)).await, 5, "maxRunNum 5: five of twenty stand");
    let read = async |id: i64| {
        let rows = a
            .query(
                &format!("SELECT data FROM rpa_processes_v WHERE id = {id}"),
                &[rpa_core::record::ColumnType::Text],
            )
            .await
            .unwrap();
        match rows.first().and_then(|r| r.first()) {
            Some(rpa_core::record::Cell::Text(t)) => serde_json::from_str::<rpa_core::model::Process>(t).unwrap(),
            other => panic!("{other:?}"),
        }
    };
    assert_eq!(read(1).await.running, 20);
    assert_eq!(read(2).await.running, 5);
    let rows = a
        .query(
            "SELECT COUNT(*) FROM rpa_process_counts WHERE process = 1",
            &[rpa_core::record::ColumnType::Int],
        )
        .await
        .unwrap();
    assert!(
        matches!(rows[0][0], rpa_core::record::Cell::Int(1..=2)),
        "one row per node: {rows:?}"
    );

    // A sets a limit of 21 on the free process; B counts at once, maybe
    // from its old copy: refused or counted, never past the limit.
    let mut limited = a.process(ProcessId(1)).await.unwrap().unwrap();
    Arc::make_mut(&mut limited.spec).max_run_num = 21;
    limited.version += 1;
    put(&a, vec![Write::Process(limited)]).await.unwrap();
    let mut stood = 0;
    for _ in 0..4 {
        // A refused commit re-reads; the next try decides on fresh data.
        for _ in 0..3 {
            match put(&b, vec![Write::Counts(start(ProcessId(1)))]).await {
                Ok(()) => {
                    stood += 1;
                    break;
                }
                Err(StoreError::Conflict) => {}
                Err(e) => panic!("{e:?}"),
            }
        }
    }
    assert_eq!(stood, 1, "one more fits under the new limit");
    assert_eq!(read(1).await.running, 21);

    // Successes count for the latest day any node counted: A's of day 1
    // are over once B counts one on day 2.
    let success = |day: i64| Counts {
        process: ProcessId(1),
        running: -1,
        pending_items: 0,
        successes: 1,
        day,
        limit_pending: false,
    };
    put(&a, vec![Write::Counts(success(1))]).await.unwrap();
    put(&a, vec![Write::Counts(success(1))]).await.unwrap();
    let p = read(1).await;
    assert_eq!((p.day, p.successes_on(1), p.running), (1, 2, 19));
    put(&b, vec![Write::Counts(success(2))]).await.unwrap();
    let p = read(1).await;
    assert_eq!((p.day, p.successes_on(2), p.successes_on(1), p.running), (2, 1, 0, 18));
}
