//! The SQLite file's read connections: read-only rusqlite connections,
//! opened when first needed, at most a set number at once, each keeping
//! its prepared statements. A read runs on a blocking thread
//! (`spawn_blocking`) so that a long one (a window of jobs, the audit
//! log) never holds up the async tasks; the write connection is the
//! writer thread's alone. In WAL mode readers see the last committed
//! state and never wait for the writer.

use std::borrow::Cow;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use rpa_core::error::StoreError;
use rpa_core::record::{Cell, ColumnType};
use rpa_core::store::StoreResult;
use rusqlite::{Connection, OpenFlags};
use tokio::sync::Semaphore;

use super::err;
use crate::plan::Val;
use crate::read::Sql;

/// The read connections of one file. Cloning shares them.
#[derive(Clone)]
pub(crate) struct Readers(Arc<Pool>);

struct Pool {
    path: PathBuf,
    /// Connections not in use.
    idle: Mutex<Vec<Connection>>,
    /// One permit per connection that may be open at once.
    permits: Semaphore,
}

impl Readers {
    /// Read connections to the file at `path`, at most `max` at once.
    pub(crate) fn new(path: PathBuf, max: u32) -> Readers {
        Readers(Arc::new(Pool {
            path,
            idle: Mutex::default(),
            permits: Semaphore::new(max.max(1) as usize),
        }))
    }

    /// The rows of `sql` with `args` bound in order, column `i` read as `types[i]`.
    pub(crate) async fn rows(
        &self,
        sql: Sql,
        args: Vec<Val>,
        types: Cow<'static, [ColumnType]>,
    ) -> StoreResult<Vec<Vec<Cell>>> {
        self.run(move |conn| {
            let mut st = conn.prepare_cached(&sql).map_err(err)?;
            let mut rows = st.query(rusqlite::params_from_iter(args.iter())).map_err(err)?;
            let mut out = Vec::new();
            while let Some(row) = rows.next().map_err(err)? {
                let cells = types
                    .iter()
                    .enumerate()
                    .map(|(i, ty)| {
                        Ok(match ty {
                            ColumnType::Int => row.get::<_, Option<i64>>(i).map_err(err)?.into(),
                            ColumnType::Text => row.get::<_, Option<String>>(i).map_err(err)?.into(),
                        })
                    })
                    .collect::<StoreResult<Vec<Cell>>>()?;
                out.push(cells);
            }
            Ok(out)
        })
        .await
    }

    /// Runs `f` on a read connection, on a blocking thread.
    async fn run<R, F>(&self, f: F) -> StoreResult<R>
    where
        R: Send + 'static,
        F: FnOnce(&Connection) -> StoreResult<R> + Send + 'static,
    {
        let _permit = self
            .0
            .permits
            .acquire()
            .await
            .map_err(|_| StoreError::Backend("the SQLite readers are closed".into()))?;
        let pool = self.0.clone();
        tokio::task::spawn_blocking(move || {
            let idle = pool.idle.lock().unwrap_or_else(|p| p.into_inner()).pop();
            let conn = match idle {
                Some(c) => c,
                None => open(&pool.path)?,
            };
            let r = f(&conn);
            pool.idle.lock().unwrap_or_else(|p| p.into_inner()).push(conn);
            r
        })
        .await
        .map_err(|e| StoreError::Backend(format!("an SQLite read stopped: {e}")))?
    }
}

/// A read-only connection to the file (its WAL mode was set by the writer).
fn open(path: &std::path::Path) -> StoreResult<Connection> {
    let conn = Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX)
        .map_err(err)?;
    conn.busy_timeout(std::time::Duration::from_secs(5)).map_err(err)?;
    conn.set_prepared_statement_cache_capacity(64);
    Ok(conn)
}
