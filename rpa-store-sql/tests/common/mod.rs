//! Where the store tests find their databases.
#![allow(dead_code)]

use std::sync::atomic::{AtomicU32, Ordering};

use rpa_store_sql::SqlStore;
use sqlx::Connection;

static N: AtomicU32 = AtomicU32::new(0);

pub fn temp_sqlite() -> String {
    let dir = std::env::temp_dir().join(format!("rpa-conformance-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(format!("case-{}.db", N.fetch_add(1, Ordering::SeqCst)));
    let _ = std::fs::remove_file(&path);
    SqlStore::sqlite_url(&path)
}

/// The file of an SQLite URL made by [`temp_sqlite`].
pub fn sqlite_path(url: &str) -> String {
    url.trim_start_matches("sqlite://")
        .split('?')
        .next()
        .unwrap()
        .to_owned()
}

/// `DATABASE_URL`, or `None` (skip) when not in CI.
pub fn postgres_url() -> Option<String> {
    match std::env::var("DATABASE_URL") {
        Ok(u) if u.starts_with("postgres") => Some(u),
        _ if std::env::var("CI").is_ok_and(|v| v == "true") => {
            panic!("CI=true but DATABASE_URL does not name a PostgreSQL database")
        }
        _ => {
            eprintln!("skipping PostgreSQL tests: DATABASE_URL is not set");
            None
        }
    }
}

/// A fresh database on the server of `url`; returns its URL.
pub async fn fresh_postgres(url: &str) -> String {
    let name = format!("rpa_case_{}_{}", std::process::id(), N.fetch_add(1, Ordering::SeqCst));
    let mut admin = sqlx::PgConnection::connect(url)
        .await
        .unwrap_or_else(|e| panic!("PostgreSQL at DATABASE_URL: {e}"));
    sqlx::Executor::execute(&mut admin, format!("DROP DATABASE IF EXISTS {name}").as_str())
        .await
        .unwrap();
    sqlx::Executor::execute(&mut admin, format!("CREATE DATABASE {name}").as_str())
        .await
        .unwrap();
    let (base, _) = url.rsplit_once('/').expect("DATABASE_URL ends with /database");
    format!("{base}/{name}")
}

/// Options for a PostgreSQL store in tests: vendor secrets sealed with a
/// fixed key (every store a test opens on one database shares it).
#[allow(dead_code)]
pub fn pg_options() -> rpa_store_sql::SqlOptions {
    rpa_store_sql::SqlOptions {
        sealing: rpa_store_sql::Sealing::Key([5; 32]),
        ..rpa_store_sql::SqlOptions::default()
    }
}
