//! The query plans of the statements on the dispatch, heartbeat, finish and
//! timer paths (`rpa_store_sql::queries`): printed (run with `--nocapture`
//! to read them) and checked to use an index or a primary key, never a scan
//! of a table. PostgreSQL plans are taken with `enable_seqscan = off`, which
//! makes PostgreSQL choose a sequential scan only when no index can serve.

mod common;

use common::{fresh_postgres, postgres_url, temp_sqlite};
use rpa_store_sql::{SqlOptions, SqlStore, queries};
use sqlx::{Connection, Row};

/// The lines of SQLite's plan for `sql`, its parameters bound to 0.
fn sqlite_plan(conn: &rusqlite::Connection, sql: &str) -> Vec<String> {
    let mut st = conn.prepare(&format!("EXPLAIN QUERY PLAN {sql}")).unwrap();
    let zeros = vec![0_i64; params(sql)];
    st.query_map(rusqlite::params_from_iter(zeros), |r| r.get::<_, String>(3))
        .unwrap()
        .map(Result::unwrap)
        .collect()
}

/// How many `$n` parameters a statement has.
fn params(sql: &str) -> usize {
    (1..=20).take_while(|n| sql.contains(&format!("${n}"))).count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_hot_paths_use_indexes() {
    let url = temp_sqlite();
    SqlStore::connect(&url, SqlOptions::default()).await.unwrap();
    let path = common::sqlite_path(&url);
    let conn = rusqlite::Connection::open_with_flags(&path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY).unwrap();
    let mut scans = Vec::new();
    for (name, sql) in queries::hot_path(false) {
        println!("-- {name}\n{sql}");
        for detail in sqlite_plan(&conn, sql) {
            println!("   {detail}");
            // `SCAN d` reads the union's own result; `SCAN rpa_x` alone would read a whole table.
            if detail.starts_with("SCAN rpa_") && !detail.contains("USING") {
                scans.push(format!("{name}: {detail}"));
            }
        }
    }
    assert!(scans.is_empty(), "table scans on hot paths: {scans:#?}");
    // A state's jobs come from the state index, so a million jobs of other
    // states are never read (UiPath's `Jobs?$filter=State eq 'Pending'`).
    for (name, sql) in queries::hot_path(false)
        .into_iter()
        .filter(|(n, _)| n.starts_with("jobs by state"))
    {
        let plan = sqlite_plan(&conn, sql).join("; ");
        assert!(plan.contains("rpa_jobs_state"), "{name}: {plan}");
        assert!(!plan.contains("TEMP B-TREE FOR ORDER BY"), "{name} sorts: {plan}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_hot_paths_use_indexes() {
    let Some(url) = postgres_url() else { return };
    let url = fresh_postgres(&url).await;
    SqlStore::connect(&url, common::pg_options()).await.unwrap();
    let mut conn = sqlx::PgConnection::connect(&url).await.unwrap();
    sqlx::raw_sql("SET enable_seqscan = off; SET plan_cache_mode = force_generic_plan")
        .execute(&mut conn)
        .await
        .unwrap();
    let mut scans = Vec::new();
    for (i, (name, sql)) in queries::hot_path(true).into_iter().enumerate() {
        // PREPARE infers each parameter's type from its column; the generic
        // plan is the one every execution with any values can use.
        sqlx::raw_sql(&format!("PREPARE q{i} AS {sql}"))
            .execute(&mut conn)
            .await
            .unwrap();
        let args = vec!["'1'"; params(sql)].join(", ");
        let call = if args.is_empty() {
            format!("q{i}")
        } else {
            format!("q{i}({args})")
        };
        let rows = sqlx::raw_sql(&format!("EXPLAIN EXECUTE {call}"))
            .fetch_all(&mut conn)
            .await
            .unwrap();
        println!("-- {name}\n{sql}");
        for r in &rows {
            let line: String = r.get(0);
            println!("   {line}");
            if line.contains("Seq Scan") {
                scans.push(format!("{name}: {line}"));
            }
        }
    }
    assert!(scans.is_empty(), "sequential scans on hot paths: {scans:#?}");
    let states: Vec<usize> = queries::hot_path(true)
        .iter()
        .enumerate()
        .filter(|(_, (n, _))| n.starts_with("jobs by state"))
        .map(|(i, _)| i)
        .collect();
    for i in states {
        let (name, sql) = queries::hot_path(true)[i];
        let args = vec!["'1'"; params(sql)].join(", ");
        let rows = sqlx::raw_sql(&format!("EXPLAIN EXECUTE q{i}({args})"))
            .fetch_all(&mut conn)
            .await
            .unwrap();
        let plan: Vec<String> = rows.iter().map(|r| r.get::<String, _>(0)).collect();
        assert!(plan.iter().any(|l| l.contains("rpa_jobs_state")), "{name}: {plan:#?}");
    }
}
