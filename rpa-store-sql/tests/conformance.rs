//! The store conformance suite of rpa-core, run against the in-memory store, SQLite files and
//! against PostgreSQL (`DATABASE_URL`; each case gets a fresh database).
//! Under `CI=true` a missing or unreachable PostgreSQL fails the test; on a
//! laptop without `DATABASE_URL` the PostgreSQL half is skipped, saying so.

mod common;

use common::{fresh_postgres, postgres_url, temp_sqlite};
use rpa_core::record::{Cell, ColumnType};
use rpa_core::store::prelude::*;
use rpa_store_sql::{SqlOptions, SqlStore};

/// The in-memory store the engine's own tests use: the same cases.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_conforms() {
    rpa_core::conformance::run(|| async { rpa_core::MemoryStore::new() }).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_conforms() {
    rpa_core::conformance::run(|| async { SqlStore::connect(&temp_sqlite(), SqlOptions::default()).await.unwrap() })
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_conforms() {
    let Some(url) = postgres_url() else { return };
    rpa_core::conformance::run(|| {
        let url = url.clone();
        async move {
            SqlStore::connect(&fresh_postgres(&url).await, common::pg_options())
                .await
                .unwrap()
        }
    })
    .await;
}

/// Many commits at once share transactions; a conflicting one fails alone,
/// and none of its rows is written, even those written before the one
/// refused.
async fn group_commit_isolates_conflicts(store: SqlStore) {
    use rpa_core::conformance::{sample_job, sample_robot};
    use rpa_core::ids::{JobId, ProcessId};
    use rpa_core::model::{JobState, RobotState};
    use rpa_core::store::{Commit, Write};
    let mut jobs = Vec::new();
    for i in 1..=40 {
        jobs.push(Write::Job(sample_job(i, ProcessId(1), 0)));
    }
    store
        .commit(Commit {
            writes: jobs,
            ..Commit::default()
        })
        .await
        .unwrap();
    // 40 independent updates and 10 racers for job 1, all at once.
    let mut tasks = Vec::new();
    for i in 1..=40 {
        let s = store.clone();
        tasks.push(tokio::spawn(async move {
            let mut j = sample_job(i, ProcessId(1), 0);
            j.state = JobState::Running;
            j.version = 2;
            s.commit(Commit {
                writes: vec![Write::Job(j)],
                ..Commit::default()
            })
            .await
            .map(|_| i)
        }));
    }
    // Each racer also adds a robot of its own, written before the job.
    for k in 0..10 {
        let s = store.clone();
        tasks.push(tokio::spawn(async move {
            let mut j = sample_job(1, ProcessId(1), 0);
            j.state = JobState::Canceled;
            j.version = 2;
            s.commit(Commit {
                writes: vec![
                    Write::Job(j),
                    Write::Robot(sample_robot(100 + k, RobotState::Available)),
                ],
                ..Commit::default()
            })
            .await
            .map(|_| 0)
        }));
    }
    let mut ok = 0;
    for t in tasks {
        if t.await.unwrap().is_ok() {
            ok += 1;
        }
    }
    assert_eq!(ok, 40, "one winner for job 1, every other job updated");
    for i in 2..=40 {
        assert_eq!(store.job(JobId(i)).await.unwrap().unwrap().state, JobState::Running);
    }
    let racer_won = store.job(JobId(1)).await.unwrap().unwrap().state == JobState::Canceled;
    let robots = store
        .query("SELECT id FROM rpa_robots WHERE id >= 100", &[ColumnType::Int])
        .await
        .unwrap();
    assert_eq!(
        robots.len(),
        usize::from(racer_won),
        "only the racer that won job 1 wrote its robot"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_group_commit_isolates_conflicts() {
    group_commit_isolates_conflicts(SqlStore::connect(&temp_sqlite(), SqlOptions::default()).await.unwrap()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_group_commit_isolates_conflicts() {
    let Some(url) = postgres_url() else { return };
    group_commit_isolates_conflicts(
        SqlStore::connect(&fresh_postgres(&url).await, common::pg_options())
            .await
            .unwrap(),
    )
    .await;
}

/// Vendor secrets are sealed at rest with the configured key.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vendor_secrets_are_encrypted_at_rest() {
    let url = temp_sqlite();
    let store = SqlStore::connect(
        &url,
        SqlOptions {
            sealing: rpa_store_sql::Sealing::Key([7u8; 32]),
            ..SqlOptions::default()
        },
    )
    .await
    .unwrap();
    let raw = commit_vendor(&store).await;
    assert!(!raw.contains("the-vendor-secret"), "stored sealed: {raw}");
    assert!(raw.contains("enc:v1:"));
    assert_eq!(
        store.vendor_by_code("acme").await.unwrap().unwrap().secret,
        "the-vendor-secret"
    );
    drop(store);
    let wrong = SqlStore::connect(
        &url,
        SqlOptions {
            sealing: rpa_store_sql::Sealing::Key([8u8; 32]),
            ..SqlOptions::default()
        },
    )
    .await
    .unwrap();
    assert!(
        wrong.vendor_by_code("acme").await.is_err(),
        "a wrong key does not open it"
    );
    drop(wrong);
    let none = SqlStore::connect(
        &url,
        SqlOptions {
            sealing: rpa_store_sql::Sealing::PlainTextInsecure,
            ..SqlOptions::default()
        },
    )
    .await
    .unwrap();
    assert!(none.vendor_by_code("acme").await.is_err(), "no key does not open it");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vendor_secrets_are_sealed_by_default() {
    // SQLite: a key file beside the database, created once, kept.
    let url = temp_sqlite();
    let file = url
        .trim_start_matches("sqlite://")
        .split('?')
        .next()
        .unwrap()
        .to_owned();
    let store = SqlStore::connect(&url, SqlOptions::default()).await.unwrap();
    let key = std::fs::read_to_string(format!("{file}.key")).expect("a key file beside the database");
    assert_eq!(key.trim().len(), 64);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(format!("{file}.key")).unwrap().permissions().mode();
        assert_eq!(mode & 0o077, 0, "readable by its owner only");
    }
    let raw = commit_vendor(&store).await;
    assert!(raw.contains("enc:v1:") && !raw.contains("the-vendor-secret"), "{raw}");
    drop(store);
    let again = SqlStore::connect(&url, SqlOptions::default()).await.unwrap();
    assert_eq!(
        again.vendor_by_code("acme").await.unwrap().unwrap().secret,
        "the-vendor-secret",
        "the same key after a restart"
    );
    assert_eq!(std::fs::read_to_string(format!("{file}.key")).unwrap(), key);
    assert_eq!(
        format!("{:?}", rpa_store_sql::Sealing::Key([9; 32])),
        "Key(***)",
        "a key is never shown"
    );

    // PostgreSQL: no file beside it; the key must be given.
    let Some(pg) = postgres_url() else { return };
    let Err(err) = SqlStore::connect(&fresh_postgres(&pg).await, SqlOptions::default()).await else {
        panic!("a PostgreSQL store without a key must be refused");
    };
    assert!(err.to_string().contains("Sealing::Key"), "{err}");
}

/// Commits vendor `acme` with secret `the-vendor-secret`; its row as stored.
async fn commit_vendor(store: &SqlStore) -> String {
    use rpa_core::ids::VendorId;
    use rpa_core::model::Vendor;
    use rpa_core::store::{Commit, Write};
    let v = Vendor {
        id: VendorId(1),
        key: rpa_core::Key([1; 16]),
        version: 1,
        code: "acme".into(),
        secret: "the-vendor-secret".into(),
    };
    store
        .commit(Commit {
            writes: vec![Write::Vendor(v)],
            ..Commit::default()
        })
        .await
        .unwrap();
    raw_text(store, "SELECT data FROM rpa_vendors").await
}

/// The text in the first column of the first row of `sql`, as stored.
async fn raw_text(store: &SqlStore, sql: &str) -> String {
    let rows = store.query(sql, &[ColumnType::Text]).await.unwrap();
    match rows.into_iter().next().and_then(|r| r.into_iter().next()) {
        Some(Cell::Text(s)) => s,
        other => panic!("{sql}: {other:?}"),
    }
}

/// A sealed record kind (assets, which hold credentials) is stored sealed
/// and read back whole; its unique column stays usable.
async fn sealed_records_are_sealed_at_rest(store: SqlStore) {
    use rpa_core::asset::{Asset, AssetValue};
    use rpa_core::record::{Records, Row};
    use rpa_core::store::{Commit, Write};
    let a = Asset {
        id: 1,
        version: 1,
        name: "erp".into(),
        folder: Some("Finance".into()),
        value: AssetValue::Credential {
            username: "svc-user".into(),
            password: "the-password".into(),
        },
        per_robot: false,
        robot_values: Vec::new(),
        description: String::new(),
        deleted: false,
        created_at: rpa_core::Timestamp(0),
        updated_at: rpa_core::Timestamp(0),
    };
    store
        .commit(Commit {
            writes: vec![Write::Record(Row::of(&a).unwrap())],
            ..Commit::default()
        })
        .await
        .unwrap();
    let raw = raw_text(&store, "SELECT data FROM rpa_assets").await;
    assert!(raw.starts_with("enc:v1:"), "{raw}");
    assert!(!raw.contains("the-password") && !raw.contains("svc-user"), "{raw}");
    assert_eq!(store.get::<Asset>(1).await.unwrap(), Some(a.clone()));
    let found: Option<Asset> = store
        .find("name", rpa_core::asset::unique_name("Finance", "erp"))
        .await
        .unwrap();
    assert_eq!(found, Some(a));

    // An AI capability's service token is sealed the same way.
    use rpa_core::ai::{Backend, Capability, CapabilityKind, Spec};
    let c = Capability {
        name: "nlp".into(),
        version: 1,
        spec: Spec {
            kind: CapabilityKind::Nlp,
            backend: Backend::Http {
                endpoint: "http://127.0.0.1:9/nlp".into(),
                token: "the-service-token".into(),
            },
            processes: vec!["*".into()],
            daily_quota: Some(10),
            timeout_ms: 1_000,
        },
        retired: false,
        changed_at: rpa_core::Timestamp(0),
    };
    store
        .commit(Commit {
            writes: vec![Write::Record(Row::of(&c).unwrap())],
            ..Commit::default()
        })
        .await
        .unwrap();
    let raw = raw_text(&store, "SELECT data FROM rpa_ai_capabilities").await;
    assert!(
        raw.starts_with("enc:v1:") && !raw.contains("the-service-token"),
        "{raw}"
    );
    assert_eq!(store.get::<Capability>("nlp").await.unwrap(), Some(c));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_seals_sealed_records() {
    sealed_records_are_sealed_at_rest(SqlStore::connect(&temp_sqlite(), SqlOptions::default()).await.unwrap()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_seals_sealed_records() {
    let Some(url) = postgres_url() else { return };
    sealed_records_are_sealed_at_rest(
        SqlStore::connect(&fresh_postgres(&url).await, common::pg_options())
            .await
            .unwrap(),
    )
    .await;
}
