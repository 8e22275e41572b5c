//! Shared by the cross-crate tests: where the PostgreSQL suites find their database.
#![allow(dead_code)]

use sqlx::Connection;

/// `DATABASE_URL` when it names PostgreSQL; `None` (the caller skips, saying
/// so) on a laptop without it; a failure under `CI=true`.
pub fn postgres_url() -> Option<String> {
    match std::env::var("DATABASE_URL") {
        Ok(u) if u.starts_with("postgres") => Some(u),
        _ if std::env::var("CI").is_ok_and(|v| v == "true") => {
            panic!("CI=true but DATABASE_URL does not name a PostgreSQL database")
        }
        _ => {
            eprintln!("skipping PostgreSQL test: DATABASE_URL is not set");
            None
        }
    }
}

fn case_name(tag: &str) -> String {
    format!("rpa_case_{tag}_{}", std::process::id())
}

/// Drops the database [`fresh_postgres`] made for `tag` (connections to it
/// are closed).
pub async fn drop_postgres(url: &str, tag: &str) {
    let mut admin = sqlx::PgConnection::connect(url)
        .await
        .unwrap_or_else(|e| panic!("PostgreSQL at DATABASE_URL: {e}"));
    let sql = format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", case_name(tag));
    sqlx::Executor::execute(&mut admin, sql.as_str()).await.unwrap();
}

/// A fresh database named `rpa_case_<tag>_<pid>` on the server of `url`; its URL.
pub async fn fresh_postgres(url: &str, tag: &str) -> String {
    let name = case_name(tag);
    let mut admin = sqlx::PgConnection::connect(url)
        .await
        .unwrap_or_else(|e| panic!("PostgreSQL at DATABASE_URL: {e}"));
    sqlx::Executor::execute(
        &mut admin,
        format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)").as_str(),
    )
    .await
    .unwrap();
    sqlx::Executor::execute(&mut admin, format!("CREATE DATABASE {name}").as_str())
        .await
        .unwrap();
    format!(
        "{}/{name}",
        url.rsplit_once('/').expect("DATABASE_URL ends with /database").0
    )
}
