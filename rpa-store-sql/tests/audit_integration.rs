//! PostgreSQL: writers never wait for one another on the audit chain. Each
//! commit writes its audit events durably and unplaced; integrators (any
//! node, several at once) link them into the chain afterwards, in order.
//! Against the real server of `DATABASE_URL`.

mod common;

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use common::{fresh_postgres, postgres_url};
use rpa_core::audit::{self, AuditDraft, Subject};
use rpa_core::conformance::sample_job;
use rpa_core::ids::ProcessId;
use rpa_core::model::{Actor, Job};
use rpa_core::store::prelude::*;
use rpa_core::store::{Commit, Write};
use rpa_core::{Engine, EngineConfig, Timestamp};
use rpa_store_sql::SqlStore;

/// A commit writing `job` at its version, with one audit event naming it.
fn commit(job: &Job) -> Commit {
    Commit {
        writes: vec![Write::Job(job.clone())],
        audit: vec![AuditDraft {
            at: Timestamp(0),
            actor: Actor::System,
            action: "job.test",
            subject: Subject::Id("job", job.id.0),
            detail: job.version.to_string(),
            event: None,
        }],
        ..Commit::default()
    }
}

/// Rows written straight into the chain's tables, bypassing the store.
async fn count(db: &str, sql: &str) -> i64 {
    let pool = sqlx::PgPool::connect(db).await.unwrap();
    let n = sqlx::query_scalar(sql).fetch_one(&pool).await.unwrap();
    pool.close().await;
    n
}

/// Two nodes commit versions of their own jobs at once while integrators
/// run on both: every event takes exactly one place, the chain verifies,
/// and each job's events stand in the order its versions were committed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_two_nodes_commit_while_two_integrators_link_every_event_once_in_order() {
    let Some(url) = postgres_url() else { return };
    let db = fresh_postgres(&url).await;
    let a = Arc::new(SqlStore::connect(&db, common::pg_options()).await.unwrap());
    let b = Arc::new(SqlStore::connect(&db, common::pg_options()).await.unwrap());
    const JOBS: i64 = 24;
    const VERSIONS: u64 = 12;
    let stop = Arc::new(AtomicBool::new(false));
    let mut integrators = Vec::new();
    for node in [&a, &b] {
        let (node, stop) = (node.clone(), stop.clone());
        integrators.push(tokio::spawn(async move {
            let mut integrated = 0;
            while !stop.load(Ordering::Relaxed) {
                integrated += node.integrate().await.unwrap().events;
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
            integrated
        }));
    }
    let mut writers = Vec::new();
    for id in 1..=JOBS {
        let node = if id % 2 == 0 { a.clone() } else { b.clone() };
        writers.push(tokio::spawn(async move {
            let first = sample_job(id, ProcessId(1), 0);
            for v in 1..=VERSIONS {
                let job = Job {
                    version: v,
                    steps: v as u32,
                    ..first.clone()
                };
                node.commit(commit(&job)).await.unwrap();
            }
        }));
    }
    for w in writers {
        w.await.unwrap();
    }
    stop.store(true, Ordering::Relaxed);
    let mut by_integrators = 0;
    for i in integrators {
        by_integrators += i.await.unwrap();
    }
    let rest = a.integrate().await.unwrap().events + b.integrate().await.unwrap().events;
    let total = (JOBS as u64) * VERSIONS;
    assert_eq!(by_integrators + rest, total, "every event integrated exactly once");
    assert!(by_integrators > 0, "the integrators ran while the writers wrote");
    assert_eq!(a.unintegrated().await.unwrap().commits, 0);

    let chain = b.audit(0, 10_000).await.unwrap();
    assert_eq!(audit::verify(&chain), Ok(total));
    let mut last: HashMap<String, u64> = HashMap::new();
    for e in &chain {
        let v: u64 = e.detail.parse().unwrap();
        let before = last.insert(e.subject.clone(), v).unwrap_or(0);
        assert_eq!(v, before + 1, "{}: version {v} after {before}", e.subject);
    }
    assert_eq!(last.len(), JOBS as usize);
    assert_eq!(count(&db, "SELECT COUNT(*) FROM rpa_audit_pending").await, 0);
    assert_eq!(
        count(&db, "SELECT COUNT(*) FROM rpa_audit").await,
        0,
        "each event is written once, where its commit wrote it"
    );
    assert_eq!(
        count(&db, "SELECT COUNT(*) FROM rpa_audit_links").await,
        count(&db, "SELECT COUNT(*) FROM rpa_audit_groups").await,
        "one link per group"
    );
}

/// An engine on a fresh database and the database itself, with `n` commits
/// of job 1 (versions 1..=n: event `k` says `k`), each integrated.
async fn chain_of(url: &str, n: u64) -> (Engine<SqlStore>, sqlx::PgPool) {
    let db = fresh_postgres(url).await;
    let store = SqlStore::connect(&db, common::pg_options()).await.unwrap();
    let first = sample_job(1, ProcessId(1), 0);
    for v in 1..=n {
        let job = Job {
            version: v,
            ..first.clone()
        };
        store.commit(commit(&job)).await.unwrap();
        store.integrate().await.unwrap();
    }
    let engine = Engine::new(store, Arc::new(rpa_core::SystemClock), EngineConfig::default());
    (engine, sqlx::PgPool::connect(&db).await.unwrap())
}

/// Where the events are kept once integrated (their groups, and apart the
/// groups' places and hashes), a changed event, a group removed or a place
/// removed breaks the chain's verification at that event.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_a_change_where_integrated_events_are_kept_breaks_the_chain() {
    let Some(url) = postgres_url() else { return };
    let (engine, pool) = chain_of(&url, 5).await;
    assert_eq!(engine.verify_audit().await.unwrap(), Ok(5));
    let run = |sql: &'static str| {
        let pool = pool.clone();
        async move { sqlx::raw_sql(sql).execute(&pool).await.unwrap() }
    };

    run(r#"UPDATE rpa_audit_groups SET data = replace(data, '"detail":"3"', '"detail":"forged"')"#).await;
    let broken = engine.verify_audit().await.unwrap().unwrap_err();
    assert_eq!((broken.seq, broken.why), (3, "content changed"));
    run(r#"UPDATE rpa_audit_groups SET data = replace(data, '"detail":"forged"', '"detail":"3"')"#).await;
    assert_eq!(engine.verify_audit().await.unwrap(), Ok(5));

    run("CREATE TABLE kept AS SELECT * FROM rpa_audit_links WHERE first_seq = 2; DELETE FROM rpa_audit_links WHERE first_seq = 2").await;
    let broken = engine.verify_audit().await.unwrap().unwrap_err();
    assert_eq!((broken.seq, broken.why), (3, "missing or reordered event"));
    run("INSERT INTO rpa_audit_links SELECT * FROM kept").await;
    assert_eq!(engine.verify_audit().await.unwrap(), Ok(5));

    run("DELETE FROM rpa_audit_groups WHERE id = (SELECT group_id FROM rpa_audit_links WHERE first_seq = 4)").await;
    let broken = engine.verify_audit().await.unwrap().unwrap_err();
    assert_eq!((broken.seq, broken.why), (5, "missing or reordered event"));
}

/// Links an older release wrote with their hashes as hex text read on
/// after the upgrade to bytes (schema version 34): the chain verifies as
/// before, a new group links on, and a link takes half the room.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_links_written_as_hex_read_on_after_the_upgrade_to_bytes() {
    let Some(url) = postgres_url() else { return };
    let (engine, pool) = chain_of(&url, 4).await;
    let db = pool.connect_options().get_database().unwrap().to_owned();
    drop(engine);
    let hash_bytes = || async {
        sqlx::query_scalar::<_, i64>("SELECT SUM(octet_length(hashes))::BIGINT FROM rpa_audit_links")
            .fetch_one(&pool)
            .await
            .unwrap()
    };
    assert_eq!(hash_bytes().await, 4 * 32);
    // Version 33: hex text.
    sqlx::raw_sql(
        "ALTER TABLE rpa_audit_links \
             ALTER COLUMN prev TYPE TEXT USING encode(prev, 'hex'), \
             ALTER COLUMN hashes TYPE TEXT USING encode(hashes, 'hex'); \
         DELETE FROM rpa_migrations WHERE version = 34",
    )
    .execute(&pool)
    .await
    .unwrap();
    assert_eq!(hash_bytes().await, 4 * 64);

    let (base, _) = url.rsplit_once('/').unwrap();
    let store = SqlStore::connect(&format!("{base}/{db}"), common::pg_options())
        .await
        .unwrap();
    assert_eq!(audit::verify(&store.audit(0, 100).await.unwrap()), Ok(4));
    store.commit(commit(&sample_job(2, ProcessId(1), 0))).await.unwrap();
    store.integrate().await.unwrap();
    let chain = store.audit(0, 100).await.unwrap();
    assert_eq!(audit::verify(&chain), Ok(5));
    assert_eq!(chain.last().map(|e| e.subject.to_string()), Some("job:2".into()));
    assert_eq!(hash_bytes().await, 5 * 32);
}

/// A database an older release left, its chain in `rpa_audit` and a group
/// waiting with its events: after the upgrade the chain reads on from the
/// older events through the waiting group to new commits, and verifies.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_an_older_chain_and_its_waiting_events_read_on_after_the_upgrade() {
    let Some(url) = postgres_url() else { return };
    let (engine, pool) = chain_of(&url, 0).await;
    let db = pool.connect_options().get_database().unwrap().to_owned();
    drop(engine);
    // Version 30: events linked into rpa_audit, groups waiting with their data.
    sqlx::raw_sql(
        "DROP TABLE rpa_audit_links; DROP TABLE rpa_audit_groups; \
         ALTER TABLE rpa_audit_pending ADD COLUMN data TEXT NOT NULL DEFAULT ''; \
         ALTER TABLE rpa_audit_pending ALTER COLUMN id SET DEFAULT nextval('rpa_audit_pending_id'); \
         DELETE FROM rpa_migrations WHERE version >= 31",
    )
    .execute(&pool)
    .await
    .unwrap();
    let draft = |v: u64| {
        commit(&Job {
            version: v,
            ..sample_job(1, ProcessId(1), 0)
        })
        .audit
        .remove(0)
    };
    let mut prev = [0; 32];
    for seq in 1..=2 {
        let e = audit::link(prev, seq, draft(seq));
        prev = e.hash;
        sqlx::query("INSERT INTO rpa_audit (seq, data) VALUES ($1, $2)")
            .bind(seq as i64)
            .bind(serde_json::to_string(&e).unwrap())
            .execute(&pool)
            .await
            .unwrap();
    }
    sqlx::query("UPDATE rpa_audit_tail SET seq = 2, hash = $1 WHERE id = 1")
        .bind(hex::encode(prev))
        .execute(&pool)
        .await
        .unwrap();
    let waiting = vec![audit::unplaced(draft(3)), audit::unplaced(draft(4))];
    sqlx::query("INSERT INTO rpa_audit_pending (written_at, data) VALUES (0, $1)")
        .bind(serde_json::to_string(&waiting).unwrap())
        .execute(&pool)
        .await
        .unwrap();

    let (base, _) = url.rsplit_once('/').unwrap();
    let store = SqlStore::connect(&format!("{base}/{db}"), common::pg_options())
        .await
        .unwrap();
    store.commit(commit(&sample_job(2, ProcessId(1), 0))).await.unwrap();
    let chain = store.audit(0, 100).await.unwrap();
    assert_eq!(audit::verify(&chain), Ok(5));
    let events: Vec<String> = chain.iter().map(|e| format!("{} {}", e.subject, e.detail)).collect();
    assert_eq!(events, ["job:1 1", "job:1 2", "job:1 3", "job:1 4", "job:2 1"]);
    assert_eq!(store.head().await.unwrap(), 5);
    // Read from the middle: from the older events on, and from within a group.
    assert_eq!(
        store
            .audit(1, 2)
            .await
            .unwrap()
            .iter()
            .map(|e| e.seq)
            .collect::<Vec<_>>(),
        [2, 3]
    );
    assert_eq!(
        store
            .audit(3, 10)
            .await
            .unwrap()
            .iter()
            .map(|e| e.seq)
            .collect::<Vec<_>>(),
        [4, 5]
    );
}

/// A writer commits while another session holds the chain's tail (an
/// integrator in the middle of a step) and the lock the writers of older
/// versions took: the commit neither waits for them nor fails, and its
/// event takes its place once the tail is free.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_a_commit_does_not_wait_for_the_chains_tail() {
    let Some(url) = postgres_url() else { return };
    let db = fresh_postgres(&url).await;
    let store = SqlStore::connect(&db, common::pg_options()).await.unwrap();
    let pool = sqlx::PgPool::connect(&db).await.unwrap();
    let mut holder = pool.begin().await.unwrap();
    sqlx::query("SELECT seq FROM rpa_audit_tail WHERE id = 1 FOR UPDATE")
        .fetch_one(&mut *holder)
        .await
        .unwrap();
    sqlx::query("SELECT pg_advisory_xact_lock(7263)")
        .execute(&mut *holder)
        .await
        .unwrap();
    let job = sample_job(1, ProcessId(1), 0);
    tokio::time::timeout(Duration::from_secs(20), store.commit(commit(&job)))
        .await
        .expect("the commit waited for the chain's tail")
        .unwrap();
    assert_eq!(store.job(job.id).await.unwrap().map(|j| j.version), Some(1));
    assert_eq!(
        store.unintegrated().await.unwrap().commits,
        1,
        "written, not yet placed"
    );
    holder.rollback().await.unwrap();
    assert_eq!(store.integrate().await.unwrap().events, 1);
    let chain = store.audit(0, 10).await.unwrap();
    assert_eq!(audit::verify(&chain), Ok(1));
    assert_eq!(chain[0].subject, "job:1");
}

/// An event committed and never integrated (its group damaged where it
/// waits) breaks the chain's verification once it waited past the bound;
/// the events before it are integrated and verify.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_an_event_committed_but_never_integrated_fails_verification() {
    let Some(url) = postgres_url() else { return };
    let db = fresh_postgres(&url).await;
    let store = SqlStore::connect(&db, common::pg_options()).await.unwrap();
    store.commit(commit(&sample_job(1, ProcessId(1), 0))).await.unwrap();
    let engine = Engine::new(store, Arc::new(rpa_core::SystemClock), EngineConfig::default());
    assert_eq!(engine.verify_audit().await.unwrap(), Ok(1));

    let pool = sqlx::PgPool::connect(&db).await.unwrap();
    sqlx::query(
        "WITH g AS (INSERT INTO rpa_audit_groups (data) VALUES ('damaged') RETURNING id) \
         INSERT INTO rpa_audit_pending (id, written_at) \
         SELECT id, CAST(floor(extract(epoch FROM clock_timestamp()) * 1000) AS BIGINT) - $1 FROM g",
    )
    .bind(audit::INTEGRATION_BOUND_MS + 1000)
    .execute(&pool)
    .await
    .unwrap();
    let broken = engine.verify_audit().await.unwrap().unwrap_err();
    assert_eq!(broken.seq, 2);
    assert!(broken.why.contains("never integrated"), "{broken}");

    // Waiting within the bound is no break: integration is under way.
    sqlx::query(
        "UPDATE rpa_audit_pending SET written_at = CAST(floor(extract(epoch FROM clock_timestamp()) * 1000) AS BIGINT)",
    )
    .execute(&pool)
    .await
    .unwrap();
    assert_eq!(engine.verify_audit().await.unwrap(), Ok(1));
}

/// A group's events are compressed with lz4 where the server has it
/// (schema version 35); groups written with pglz before the upgrade read
/// and verify as before.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_audit_groups_are_compressed_with_lz4_and_older_ones_read_on() {
    let Some(url) = postgres_url() else { return };
    let db = fresh_postgres(&url).await;
    let pool = sqlx::PgPool::connect(&db).await.unwrap();
    if sqlx::raw_sql("CREATE TEMP TABLE probe (x TEXT COMPRESSION lz4)")
        .execute(&pool)
        .await
        .is_err()
    {
        eprintln!("skipping: this PostgreSQL server was built without lz4");
        return;
    }
    // A commit whose group of events is long enough to be compressed.
    let big = |v: u64| {
        let job = Job {
            version: v,
            ..sample_job(1, ProcessId(1), 0)
        };
        let mut c = commit(&job);
        let draft = c.audit[0].clone();
        c.audit = (0..40)
            .map(|i| AuditDraft {
                detail: format!("version {v} step {i} {}", "x".repeat(100)),
                ..draft.clone()
            })
            .collect();
        c
    };
    let store = SqlStore::connect(&db, common::pg_options()).await.unwrap();
    // As version 34 left it.
    sqlx::raw_sql(
        "ALTER TABLE rpa_audit_groups ALTER COLUMN data SET COMPRESSION pglz; \
         DELETE FROM rpa_migrations WHERE version = 35",
    )
    .execute(&pool)
    .await
    .unwrap();
    store.commit(big(1)).await.unwrap();
    store.integrate().await.unwrap();
    drop(store);

    let store = SqlStore::connect(&db, common::pg_options()).await.unwrap();
    store.commit(big(2)).await.unwrap();
    store.integrate().await.unwrap();
    let methods: Vec<Option<String>> =
        sqlx::query_scalar("SELECT pg_column_compression(data) FROM rpa_audit_groups ORDER BY id")
            .fetch_all(&pool)
            .await
            .unwrap();
    assert_eq!(methods, [Some("pglz".to_string()), Some("lz4".to_string())]);
    let chain = store.audit(0, 100).await.unwrap();
    assert_eq!(audit::verify(&chain), Ok(80));
    assert_eq!(
        chain[79].detail.as_ref(),
        format!("version 2 step 39 {}", "x".repeat(100))
    );
}
