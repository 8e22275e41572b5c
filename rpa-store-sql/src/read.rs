//! Reads, whichever the database: the store's SELECTs run on each
//! backend's own driver (SQLite: the store's rusqlite read connections,
//! [`crate::sqlite::Readers`]; PostgreSQL: the sqlx pool), every row as
//! cells of the column types the caller names. One driver per backend:
//! the SQLite file is never opened through sqlx.
//!
//! Also here, because both backends load it the same way: what is live,
//! for the read cache's first load ([`load_live`]).

use std::borrow::Cow;

use rpa_core::ids::RobotId;
use rpa_core::model::*;
use rpa_core::record::{Cell, ColumnType};
use rpa_core::store::{StoreResult, Write};
use rpa_core::transport::Command;
use serde::de::DeserializeOwned;
use sqlx::{AnyPool, Row};

use crate::plan::Val;
use crate::rows::{backend_err, bind, from_json};
use crate::sqlite::Readers;

/// SQL text: the store's constants, or made from a kind's row mapping.
pub(crate) type Sql = Cow<'static, str>;

/// Where reads go.
#[derive(Clone)]
pub(crate) enum Reader {
    /// SQLite: read-only rusqlite connections, each read on a blocking thread.
    Sqlite(Readers),
    /// PostgreSQL: the sqlx pool.
    Postgres(AnyPool),
}

/// A column read as text: `data`, the JSON of an entity.
pub(crate) const TEXT: &[ColumnType] = &[ColumnType::Text];
/// A column read as a number: counts, sequence numbers.
pub(crate) const INT: &[ColumnType] = &[ColumnType::Int];

impl Reader {
    /// The rows of `sql` with `args` bound to `$1`, `$2`, ... in order,
    /// column `i` read as `types[i]`.
    pub(crate) async fn rows(
        &self,
        sql: impl Into<Sql>,
        args: Vec<Val>,
        types: impl Into<Cow<'static, [ColumnType]>>,
    ) -> StoreResult<Vec<Vec<Cell>>> {
        let (sql, types) = (sql.into(), types.into());
        match self {
            Reader::Sqlite(readers) => readers.rows(sql, args, types).await,
            Reader::Postgres(pool) => {
                let mut q = sqlx::query(&sql);
                for a in args {
                    q = bind(q, a);
                }
                let rows = q.fetch_all(pool).await.map_err(backend_err)?;
                rows.iter()
                    .map(|r| {
                        types
                            .iter()
                            .enumerate()
                            .map(|(i, ty)| {
                                Ok(match ty {
                                    ColumnType::Int => r.try_get::<Option<i64>, _>(i).map_err(backend_err)?.into(),
                                    ColumnType::Text => r.try_get::<Option<String>, _>(i).map_err(backend_err)?.into(),
                                })
                            })
                            .collect()
                    })
                    .collect()
            }
        }
    }

    /// The entities of `sql`, whose one column is their JSON.
    pub(crate) async fn data<T: DeserializeOwned>(&self, sql: impl Into<Sql>, args: Vec<Val>) -> StoreResult<Vec<T>> {
        let rows = self.rows(sql, args, TEXT).await?;
        rows.into_iter().map(|r| json(r.into_iter().next())).collect()
    }

    /// The first entity of `sql`, whose one column is its JSON.
    pub(crate) async fn first<T: DeserializeOwned>(
        &self,
        sql: impl Into<Sql>,
        args: Vec<Val>,
    ) -> StoreResult<Option<T>> {
        let rows = self.rows(sql, args, TEXT).await?;
        rows.into_iter().next().map(|r| json(r.into_iter().next())).transpose()
    }

    /// The number in the first column of the first row (`None`: no row, or NULL).
    pub(crate) async fn int(&self, sql: impl Into<Sql>, args: Vec<Val>) -> StoreResult<Option<i64>> {
        let rows = self.rows(sql, args, INT).await?;
        Ok(match rows.into_iter().next().and_then(|r| r.into_iter().next()) {
            Some(Cell::Int(n)) => Some(n),
            _ => None,
        })
    }
}

/// A cell that holds an entity's JSON, decoded.
pub(crate) fn json<T: DeserializeOwned>(cell: Option<Cell>) -> StoreResult<T> {
    match cell {
        Some(Cell::Text(s)) => from_json(&s),
        _ => Err(rpa_core::error::StoreError::Backend(
            "decode: a row without data".into(),
        )),
    }
}

/// Everything live in the database: sessions, processes, robots,
/// vendors (secrets as stored), unfinished jobs and queue items, and the
/// commands waiting for robots.
pub(crate) async fn load_live(db: &Reader) -> StoreResult<(Vec<Write>, Vec<(RobotId, Command)>)> {
    let mut w: Vec<Write> = Vec::new();
    let tokens: Vec<Token> = db.data("SELECT data FROM rpa_tokens ORDER BY 1", vec![]).await?;
    w.extend(tokens.into_iter().map(Write::Token));
    let processes: Vec<Process> = db.data("SELECT data FROM rpa_processes_v ORDER BY 1", vec![]).await?;
    w.extend(processes.into_iter().map(Write::Process));
    let robots: Vec<Robot> = db.data("SELECT data FROM rpa_robots ORDER BY 1", vec![]).await?;
    w.extend(robots.into_iter().map(Write::Robot));
    let vendors: Vec<Vendor> = db.data("SELECT data FROM rpa_vendors ORDER BY 1", vec![]).await?;
    w.extend(vendors.into_iter().map(Write::Vendor));
    let jobs: Vec<Job> = db
        .data(
            "SELECT data FROM rpa_jobs WHERE state IN ('Pending', 'Running', 'Stopping') ORDER BY id",
            vec![],
        )
        .await?;
    w.extend(jobs.into_iter().map(Write::Job));
    let items: Vec<QueueItem> = db.data("SELECT data FROM rpa_items ORDER BY 1", vec![]).await?;
    w.extend(items.into_iter().filter(|i| !i.state.is_terminal()).map(Write::Item));
    let rows = db
        .rows(
            "SELECT robot, data FROM rpa_outbox ORDER BY seq",
            vec![],
            &[ColumnType::Int, ColumnType::Text][..],
        )
        .await?;
    let mut commands = Vec::with_capacity(rows.len());
    for r in rows {
        let mut cells = r.into_iter();
        let robot = match cells.next() {
            Some(Cell::Int(n)) => RobotId(n),
            _ => {
                return Err(rpa_core::error::StoreError::Backend(
                    "an outbox row without a robot".into(),
                ));
            }
        };
        commands.push((robot, json(cells.next())?));
    }
    Ok((w, commands))
}
