//! SQLite: one file, one writer. The file's one write connection belongs
//! to the writer thread ([`writer`]); reads go through a few read-only
//! connections ([`readers`]). Both are rusqlite: the file is opened by one
//! driver only. Here: opening the file, the owner lock, the migrations,
//! and errors in the store's words.

use std::path::PathBuf;

use rpa_core::error::StoreError;
use rpa_core::store::StoreResult;
use rusqlite::types::{ToSql, ToSqlOutput};
use rusqlite::{Connection, ErrorCode, OptionalExtension, params};

use crate::plan::{self, Val};
use crate::{Synchronous, migrations};

mod checkpoints;
mod readers;
mod writer;

pub(crate) use checkpoints::Checkpoints;
pub(crate) use readers::Readers;
pub(crate) use writer::{Work, run};

/// WAL pages after which a commit copies the log back into the file (a
/// checkpoint), about 40 MB. SQLite's default, 1,000 pages, made a commit
/// group of a busy store checkpoint (and, even with `synchronous = NORMAL`,
/// sync the log and the file) every few dozen lifecycles: two fifths of
/// the writer's time went there. Ten times as many pages make a
/// checkpoint a tenth as often, and a page rewritten by many commits in
/// between is copied once (docs/PERFORMANCE.md, "SQLite: checkpoints ten times rarer").
/// Most of the copying is done beside the writer ([`Checkpoints`]).
const CHECKPOINT_PAGES: u32 = 10_000;

/// Opens the write connection of the SQLite file behind `url`.
pub(crate) fn open(url: &str, sync: Synchronous) -> StoreResult<Connection> {
    let path = path_of(url)?;
    let conn = Connection::open(path).map_err(err)?;
    let sync = match sync {
        Synchronous::Normal => "NORMAL",
        Synchronous::Full => "FULL",
    };
    conn.execute_batch(&format!(
        "PRAGMA journal_mode = WAL; PRAGMA synchronous = {sync}; PRAGMA busy_timeout = 5000; \
         PRAGMA wal_autocheckpoint = {CHECKPOINT_PAGES};"
    ))
    .map_err(err)?;
    conn.set_prepared_statement_cache_capacity(64);
    Ok(conn)
}

/// Runs the migrations `conn`'s file has not had yet, each in a
/// transaction of its own, recorded in `rpa_migrations` (the table both
/// backends keep).
pub(crate) fn migrate(conn: &Connection) -> StoreResult<()> {
    conn.execute_batch("CREATE TABLE IF NOT EXISTS rpa_migrations (version BIGINT PRIMARY KEY, name TEXT NOT NULL)")
        .map_err(err)?;
    for (version, name, sql) in migrations() {
        let done: Option<i64> = conn
            .query_row(
                "SELECT version FROM rpa_migrations WHERE version = $1",
                [version],
                |r| r.get(0),
            )
            .optional()
            .map_err(err)?;
        if done.is_some() {
            continue;
        }
        let tx = conn.unchecked_transaction().map_err(err)?;
        tx.execute_batch(sql).map_err(err)?;
        if let Some(own) = crate::backend_migration(crate::Backend::Sqlite, *version) {
            tx.execute_batch(own).map_err(err)?;
        }
        tx.execute(
            "INSERT INTO rpa_migrations (version, name) VALUES ($1, $2)",
            params![version, name],
        )
        .map_err(err)?;
        tx.commit().map_err(err)?;
        tracing::info!(version, name, "database migrated");
    }
    Ok(())
}

/// Takes the owner lock of the SQLite file behind `url` (`<file>.lock`):
/// one server per file, as the memory mirror assumes. The lock lasts as
/// long as the returned file is open (the writer thread holds it), and the
/// operating system lets go of it when the process dies. A store dropped
/// a moment ago lets go once its writer has finished its last group, so
/// this waits up to five seconds before it gives up.
pub(crate) async fn lock(url: &str) -> StoreResult<std::fs::File> {
    let mut name = path_of(url)?.into_os_string();
    name.push(".lock");
    let path = PathBuf::from(name);
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|e| StoreError::Backend(format!("cannot open {}: {e}", path.display())))?;
    for _ in 0..50 {
        match file.try_lock() {
            Ok(()) => return Ok(file),
            Err(std::fs::TryLockError::WouldBlock) => tokio::time::sleep(std::time::Duration::from_millis(100)).await,
            Err(std::fs::TryLockError::Error(e)) => {
                return Err(StoreError::Backend(format!("cannot lock {}: {e}", path.display())));
            }
        }
    }
    Err(StoreError::Backend(format!(
        "another server is using this SQLite database ({} is locked)",
        path.display()
    )))
}

/// The file of an `sqlite:` URL.
pub(crate) fn path_of(url: &str) -> StoreResult<PathBuf> {
    let rest = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))
        .ok_or_else(|| StoreError::Backend(format!("not an SQLite URL: {url}")))?;
    let path = rest.split('?').next().unwrap_or_default();
    if path.is_empty() || path == ":memory:" {
        return Err(StoreError::Backend(
            "the SQLite store needs a file (sqlite://path/to/file.db)".into(),
        ));
    }
    Ok(PathBuf::from(path))
}

impl ToSql for Val {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        match self {
            Val::I(x) => x.to_sql(),
            Val::NI(x) => x.to_sql(),
            Val::S(x) => x.to_sql(),
            Val::NS(x) => x.to_sql(),
        }
    }
}

/// An SQLite error in the store's words: busy is a conflict (try again),
/// a unique violation names the duplicate.
pub(crate) fn err(e: rusqlite::Error) -> StoreError {
    if let rusqlite::Error::SqliteFailure(f, msg) = &e {
        match f.code {
            ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked => return StoreError::Conflict,
            ErrorCode::ConstraintViolation
                if f.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE
                    || f.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_PRIMARYKEY =>
            {
                return plan::duplicate(msg.as_deref().unwrap_or_default());
            }
            _ => {}
        }
    }
    StoreError::Backend(e.to_string())
}
