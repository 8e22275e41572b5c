//! On SQLite the store serves live entities from memory and loads them at
//! start: a store reopened on a file answers exactly as the one that wrote it,
//! and a second store on a file that is open is refused. Its log (`-wal`)
//! is checkpointed and stays bounded under steady work.

mod common;

use rpa_core::store::prelude::*;
use std::sync::Arc;

use common::temp_sqlite;
use rpa_core::auth::PasswordCost;
use rpa_core::error::StoreError;
use rpa_core::fixtures::{self, Basics};
use rpa_core::job::FinishStatus;
use rpa_core::model::{JobState, ProcessSpec, ProcessType};
use rpa_core::transport::Command;
use rpa_core::{Engine, EngineConfig, ManualClock, Timestamp};
use rpa_store_sql::{SqlOptions, SqlStore};
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_reopened_store_serves_what_was_live() {
    let url = temp_sqlite();
    let (clock, config) = engine_parts();
    let first = SqlStore::connect(&url, options()).await.unwrap();
    let e = Engine::new(first.clone(), clock.clone(), config.clone());
    let mut spec = ProcessSpec::new("p", ProcessType::Unattended);
    spec.max_run_num = 1;
    let Basics { process: p, user } = fixtures::basics(&e, spec).await.unwrap();
    let reg = fixtures::ready_robot(&e, "r1").await.unwrap();
    let none = json!({});
    let mut jobs = Vec::new();
    for _ in 0..3 {
        jobs.push(e.start_job(&user, p.key, &none).await.unwrap());
    }
    let first_run = next_run(&e, reg.robot.id).await;
    // The robot finishes its first job and is handed the next; that Execute
    // stays in its outbox across the reopen.
    e.report_finish("r1", reg.connect, first_run, FinishStatus::Success, None, None)
        .await
        .unwrap();
    let token = e.login(fixtures::USER.0, fixtures::USER.1).await.unwrap().token;
    let before_jobs = futures::future::join_all(jobs.iter().map(|j| first.job(j.id))).await;
    let before = (
        first.processes().await.unwrap(),
        first.robots().await.unwrap(),
        first.users().await.unwrap(),
        first.next_pending(&[p.id]).await.unwrap(),
    );
    assert_eq!(
        before_jobs
            .iter()
            .filter(|j| j.as_ref().unwrap().as_ref().unwrap().state == JobState::Successful)
            .count(),
        1
    );
    let second = SqlStore::connect(&url, options()).await;
    assert!(
        matches!(&second, Err(StoreError::Backend(m)) if m.contains("another server")),
        "one server per SQLite file: {second:?}"
    );
    drop(e);
    drop(first);

    let again = SqlStore::connect(&url, options()).await.unwrap();
    let after_jobs = futures::future::join_all(jobs.iter().map(|j| again.job(j.id))).await;
    assert_eq!(
        format!("{before_jobs:?}"),
        format!("{after_jobs:?}"),
        "every job, live or ended, reads the same"
    );
    let after = (
        again.processes().await.unwrap(),
        again.robots().await.unwrap(),
        again.users().await.unwrap(),
        again.next_pending(&[p.id]).await.unwrap(),
    );
    assert_eq!(
        format!("{before:?}"),
        format!("{after:?}"),
        "processes, robots, users, dispatch order"
    );
    assert_eq!(
        again.vendor_by_code(fixtures::VENDOR).await.unwrap().unwrap().secret,
        fixtures::VENDOR_SECRET
    );
    let e = Engine::new(again.clone(), clock, config);
    assert_eq!(e.authenticate(&token).await.unwrap().id, user.id, "sessions survive");
    match e.take_commands(reg.robot.id).await.unwrap().as_slice() {
        [Command::Execute(x)] => assert_ne!(x.run_instance_id, first_run, "the hand-over's Execute waits"),
        other => panic!("expected one Execute, got {other:?}"),
    }
    assert!(
        e.take_commands(reg.robot.id).await.unwrap().is_empty(),
        "a taken command is gone"
    );
    drop(e);
    drop(again);
    let third = SqlStore::connect(&url, options()).await.unwrap();
    assert!(
        third.take_commands(reg.robot.id, 10).await.unwrap().is_empty(),
        "a taken command stays gone after another reopen"
    );
}

/// A file an older release left behind, without the newest migration, is
/// brought up to date when a store opens it, and what it held stays.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_file_of_an_older_release_is_migrated_on_open() {
    use rpa_core::conformance::sample_job;
    use rpa_core::ids::{JobId, ProcessId};
    use rpa_core::record::{Cell, ColumnType};
    use rpa_core::store::{Commit, Write};
    let url = temp_sqlite();
    let store = SqlStore::connect(&url, SqlOptions::default()).await.unwrap();
    let mut ended = sample_job(7, ProcessId(1), 0);
    ended.state = JobState::Successful;
    store
        .commit(Commit {
            writes: vec![Write::Job(ended.clone())],
            ..Commit::default()
        })
        .await
        .unwrap();
    drop(store);
    // As the release before the newest migration that makes a table left
    // the file (the migrations after it run again: each must be able to).
    let (newest, _, sql) = *rpa_store_sql::migrations()
        .iter()
        .rev()
        .find(|(_, _, sql)| sql.contains("CREATE TABLE "))
        .unwrap();
    let tables: Vec<&str> = sql
        .split("CREATE TABLE ")
        .skip(1)
        .filter_map(|s| s.split_whitespace().next())
        .collect();
    assert!(!tables.is_empty(), "the newest migration creates a table");
    let path = common::sqlite_path(&url);
    let raw = rusqlite::Connection::open(&path).unwrap();
    let own = rpa_store_sql::backend_migration(rpa_store_sql::Backend::Sqlite, newest).unwrap_or_default();
    for v in own
        .split("CREATE VIEW ")
        .skip(1)
        .filter_map(|s| s.split_whitespace().next())
    {
        raw.execute_batch(&format!("DROP VIEW {v}")).unwrap();
    }
    for t in &tables {
        raw.execute_batch(&format!("DROP TABLE {t}")).unwrap();
    }
    raw.execute_batch(&format!("DELETE FROM rpa_migrations WHERE version >= {newest}"))
        .unwrap();
    drop(raw);

    let store = SqlStore::connect(&url, SqlOptions::default()).await.unwrap();
    assert_eq!(store.job(JobId(7)).await.unwrap(), Some(ended));
    let versions = store
        .query(
            "SELECT version FROM rpa_migrations ORDER BY version",
            &[ColumnType::Int],
        )
        .await
        .unwrap();
    let versions: Vec<i64> = versions
        .into_iter()
        .map(|r| match r.as_slice() {
            [Cell::Int(v)] => *v,
            other => panic!("{other:?}"),
        })
        .collect();
    let all: Vec<i64> = rpa_store_sql::migrations().iter().map(|m| m.0).collect();
    assert_eq!(versions, all, "every migration recorded once");
    for t in &tables {
        let rows = store
            .query(&format!("SELECT COUNT(*) FROM {t}"), &[ColumnType::Int])
            .await
            .unwrap();
        assert_eq!(rows, vec![vec![Cell::Int(0)]], "the newest migration made {t} again");
    }
}

/// A busy SQLite file's log is copied back and reused: under a steady
/// stream of lifecycles the `-wal` file stays near the checkpoint size
/// (about 40 MB) instead of growing with everything ever written.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_log_stays_bounded_under_steady_work() {
    let url = temp_sqlite();
    let wal = format!("{}-wal", common::sqlite_path(&url));
    let store = SqlStore::connect(&url, SqlOptions::default()).await.unwrap();
    let config = EngineConfig {
        password_cost: PasswordCost::TESTING,
        ..EngineConfig::default()
    };
    let e = Engine::new(store, Arc::new(ManualClock::new(Timestamp(1_700_000_000_000))), config);
    let mut spec = ProcessSpec::new("p", ProcessType::Unattended);
    spec.max_run_num = 0;
    let Basics { process: p, user } = fixtures::basics(&e, spec).await.unwrap();
    let reg = fixtures::ready_robot(&e, "r1").await.unwrap();
    let mut largest = 0u64;
    for _ in 0..1500 {
        e.start_job(&user, p.key, &json!({})).await.unwrap();
        let run = next_run(&e, reg.robot.id).await;
        e.report_finish("r1", reg.connect, run, FinishStatus::Success, None, None)
            .await
            .unwrap();
        largest = largest.max(std::fs::metadata(&wal).map_or(0, |m| m.len()));
    }
    let written: u64 = std::fs::metadata(common::sqlite_path(&url)).unwrap().len();
    // Each lifecycle writes dozens of pages: 1,500 of them write several
    // times the checkpoint's worth into the log.
    assert!(
        largest < 48 << 20,
        "the log grew to {largest} bytes: checkpoints do not keep up"
    );
    assert!(written > 1 << 20, "the file itself holds the work: {written} bytes");
}

/// The log is copied back into the file beside the writer, long before
/// the log fills: a copy of the file alone (no `-wal`), taken once the
/// store has been quiet a moment, holds every job committed. (Copied by
/// the writer only, at its automatic checkpoint of 10,000 pages, the file
/// would still hold none.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_the_file_takes_the_log_in_beside_the_writer() {
    let url = temp_sqlite();
    let path = common::sqlite_path(&url);
    let (clock, config) = engine_parts();
    let store = SqlStore::connect(&url, SqlOptions::default()).await.unwrap();
    let e = Engine::new(store, clock, config);
    let mut spec = ProcessSpec::new("p", ProcessType::Unattended);
    spec.max_run_num = 0;
    let Basics { process: p, user } = fixtures::basics(&e, spec).await.unwrap();
    for _ in 0..200 {
        e.start_job(&user, p.key, &json!({})).await.unwrap();
    }
    let copy = format!("{path}.copy");
    let mut in_file = 0;
    for _ in 0..200 {
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        for end in ["", "-wal", "-shm"] {
            let _ = std::fs::remove_file(format!("{copy}{end}"));
        }
        std::fs::copy(&path, &copy).unwrap();
        let conn = rusqlite::Connection::open(&copy).unwrap();
        in_file = conn
            .query_row("SELECT COUNT(*) FROM rpa_jobs", [], |r| r.get(0))
            .unwrap_or(0);
        if in_file == 200 {
            break;
        }
    }
    assert_eq!(in_file, 200, "jobs in the file itself");
    let wal = std::fs::metadata(format!("{path}-wal")).map_or(0, |m| m.len());
    assert!(wal < 10_000 * 4096, "the log never filled: {wal} bytes");
}

/// A file written before versions 32 and 33 (its audit chain and its jobs
/// in tables keyed by a `BIGINT`, an index of its own beside the rowid)
/// reads on through the upgrade: the chain verifies, event for event, and
/// goes on from where it was; every job reads as it did, by id and by key.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_audit_and_jobs_read_on_after_the_upgrade_to_rowid_keys() {
    let url = temp_sqlite();
    let path = common::sqlite_path(&url);
    let (clock, config) = engine_parts();
    let store = SqlStore::connect(&url, SqlOptions::default()).await.unwrap();
    let e = Engine::new(store, clock.clone(), config.clone());
    let mut spec = ProcessSpec::new("p", ProcessType::Unattended);
    spec.max_run_num = 0;
    let Basics { process: p, user } = fixtures::basics(&e, spec).await.unwrap();
    let mut jobs = Vec::new();
    for _ in 0..3 {
        jobs.push(e.start_job(&user, p.key, &json!({})).await.unwrap());
    }
    let before = e.verify_audit().await.unwrap().unwrap();
    assert!(before >= 5, "events to carry over: {before}");
    drop(e);

    // The file as version 31 left it.
    {
        let conn = rusqlite::Connection::open(&path).unwrap();
        // The jobs' indexes as they are, made again over the old table.
        let job_indexes: Vec<String> = conn
            .prepare("SELECT sql FROM sqlite_schema WHERE type = 'index' AND tbl_name = 'rpa_jobs' AND sql IS NOT NULL")
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(job_indexes.len(), 4);
        conn.execute_batch(&format!(
            "BEGIN;
             CREATE TABLE old_audit (seq BIGINT PRIMARY KEY, data TEXT NOT NULL);
             INSERT INTO old_audit SELECT seq, data FROM rpa_audit;
             DROP TABLE rpa_audit;
             ALTER TABLE old_audit RENAME TO rpa_audit;
             CREATE TABLE old_jobs (id BIGINT PRIMARY KEY, key TEXT NOT NULL UNIQUE, process BIGINT NOT NULL,
                 state TEXT NOT NULL, priority BIGINT NOT NULL, dispatchable BIGINT NOT NULL, ready_at BIGINT,
                 expire_at BIGINT, created_at BIGINT NOT NULL, version BIGINT NOT NULL, data TEXT NOT NULL);
             INSERT INTO old_jobs SELECT * FROM rpa_jobs;
             DROP TABLE rpa_jobs;
             ALTER TABLE old_jobs RENAME TO rpa_jobs;
             {};
             DELETE FROM rpa_migrations WHERE version >= 32;
             COMMIT;",
            job_indexes.join(";\n")
        ))
        .unwrap();
        assert_eq!(
            (indexes(&conn, "rpa_audit"), indexes(&conn, "rpa_jobs")),
            (1, 6),
            "the old shape: a key index beside the rowid"
        );
    }

    let store = SqlStore::connect(&url, SqlOptions::default()).await.unwrap();
    let e = Engine::new(store, clock, config);
    assert_eq!(e.verify_audit().await.unwrap(), Ok(before), "the chain as it was");
    for j in &jobs {
        assert_eq!(e.store().job(j.id).await.unwrap().as_ref(), Some(j), "by id");
        assert_eq!(e.job(j.key).await.unwrap().id, j.id, "by key");
    }
    let (pending, _) = e.jobs_of(&[p.id], Some(&[JobState::Pending]), 10).await.unwrap();
    assert_eq!(pending, 3, "by state, from the rebuilt index");
    e.start_job(&user, p.key, &json!({})).await.unwrap();
    let after = e.verify_audit().await.unwrap().unwrap();
    assert!(after > before, "and it goes on: {before} then {after}");
    drop(e);
    let conn = rusqlite::Connection::open(&path).unwrap();
    assert_eq!(
        (indexes(&conn, "rpa_audit"), indexes(&conn, "rpa_jobs")),
        (0, 5),
        "keyed by their rowids: no index of the key's own"
    );
}

/// A manual clock and an engine configuration for tests.
fn engine_parts() -> (Arc<ManualClock>, EngineConfig) {
    let clock = Arc::new(ManualClock::new(Timestamp(1_700_000_000_000)));
    let config = EngineConfig {
        password_cost: PasswordCost::TESTING,
        ..EngineConfig::default()
    };
    (clock, config)
}

/// The store's options, with a sealing key of the test's own (kept
/// across reopens).
fn options() -> SqlOptions {
    SqlOptions {
        sealing: rpa_store_sql::Sealing::Key([3; 32]),
        ..SqlOptions::default()
    }
}

/// The run of the Execute the robot was sent last.
async fn next_run(e: &Engine<SqlStore>, robot: rpa_core::ids::RobotId) -> rpa_core::Key {
    match e.take_commands(robot).await.unwrap().pop() {
        Some(Command::Execute(x)) => x.run_instance_id,
        other => panic!("expected an Execute, got {other:?}"),
    }
}

/// The indexes of `table` in the file of `conn`.
fn indexes(conn: &rusqlite::Connection, table: &str) -> i64 {
    conn.query_row(
        "SELECT COUNT(*) FROM sqlite_schema WHERE type = 'index' AND tbl_name = $1",
        [table],
        |r| r.get(0),
    )
    .unwrap()
}

/// A finish seals its job's run log into the audit chain, with every line
/// the robot reported: for a job the store saw created (and whose lines it
/// saw written), for one it loaded at start, and for one that has none.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_a_finish_seals_the_lines_reported_before_and_after_a_reopen() {
    use rpa_core::engine::NewLog;
    use rpa_core::model::{Actor, LogLevel};
    let url = temp_sqlite();
    let (clock, config) = engine_parts();
    let lines = |n: usize| {
        (0..n)
            .map(|i| NewLog {
                content: format!("line {i}"),
                screenshot: None,
                log_at: String::new(),
                level: LogLevel::Info,
            })
            .collect::<Vec<_>>()
    };
    let first = SqlStore::connect(&url, options()).await.unwrap();
    let e = Engine::new(first.clone(), clock.clone(), config.clone());
    let mut spec = ProcessSpec::new("p", ProcessType::Unattended);
    spec.max_run_num = 2;
    let Basics { process: p, user } = fixtures::basics(&e, spec).await.unwrap();
    let (r1, r2) = (
        fixtures::ready_robot(&e, "r1").await.unwrap(),
        fixtures::ready_robot(&e, "r2").await.unwrap(),
    );
    e.start_job(&user, p.key, &json!({})).await.unwrap();
    e.start_job(&user, p.key, &json!({})).await.unwrap();
    let (run1, run2) = (next_run(&e, r1.robot.id).await, next_run(&e, r2.robot.id).await);
    e.report_logs("r1", r1.connect, run1, lines(2)).await.unwrap();
    e.report_finish("r1", r1.connect, run1, FinishStatus::Success, None, None)
        .await
        .unwrap();
    e.report_logs("r2", r2.connect, run2, lines(3)).await.unwrap();
    drop(e);
    drop(first);

    let again = SqlStore::connect(&url, options()).await.unwrap();
    let e = Engine::new(again.clone(), clock, config);
    e.report_finish("r2", r2.connect, run2, FinishStatus::Success, None, None)
        .await
        .unwrap();
    e.start_job(&user, p.key, &json!({})).await.unwrap();
    let run3 = next_run(&e, r1.robot.id).await;
    e.report_finish("r1", r1.connect, run3, FinishStatus::Success, None, None)
        .await
        .unwrap();
    let seals: Vec<String> = e
        .audit_events(Actor::System, 0, 1_000)
        .await
        .unwrap()
        .into_iter()
        .filter(|a| a.action == "job.finish")
        .filter_map(|a| {
            a.detail
                .split(' ')
                .find(|w| w.starts_with("logs="))
                .map(|w| w[..6].to_string())
        })
        .collect();
    assert_eq!(
        seals,
        ["logs=2", "logs=3", "logs=0"],
        "each finish seals its run's lines"
    );
    assert_eq!(e.verify_audit().await.unwrap().map(|_| ()), Ok(()));
}
