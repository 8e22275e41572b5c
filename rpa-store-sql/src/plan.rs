//! A commit as statements: the one translation of a [`Commit`] into SQL,
//! which both writers run (sqlx on PostgreSQL, the SQLite writer thread).
//!
//! Every entity is a versioned row: version 1 is an `INSERT`, a later
//! version an `UPDATE ... WHERE id = ? AND version = new - 1` that must
//! change exactly one row, or the commit's snapshot was stale
//! ([`StoreError::Conflict`]). Writes run in a fixed table order
//! ([`rank`]), so two writers never lock rows in crossed order. The JSON of
//! each row is made here, by the caller, before the commit reaches the
//! writer: the writer only runs statements.

use std::borrow::Cow;

use rpa_core::audit::AuditDraft;
use rpa_core::error::StoreError;
use rpa_core::model::*;
use rpa_core::record::{Cell, Kind, Row};
use rpa_core::store::*;
use serde::Serialize;

use crate::Backend;

/// A bound value.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Val {
    I(i64),
    NI(Option<i64>),
    S(String),
    NS(Option<String>),
}

/// What a statement must do for its commit to stand.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Expect {
    /// Whatever it changes.
    Any,
    /// Change exactly one row; none means the commit's snapshot was stale.
    OneRow,
}

/// One statement with its arguments (`$1`, `$2`, ... in order).
#[derive(Debug)]
pub(crate) struct Stmt {
    pub sql: Cow<'static, str>,
    pub args: Vec<Val>,
    pub expect: Expect,
}

/// One step of a commit.
#[derive(Debug)]
pub(crate) enum Step {
    Run(Stmt),
    /// Apply to the process row as stored (read, check the limits, write).
    Counts(Counts),
    /// A command into a robot's outbox; the SQLite writer numbers `seq`
    /// itself, in commit order.
    Outbox {
        seq: i64,
        robot: i64,
        data: String,
    },
}

/// A commit ready for a writer.
#[derive(Debug, Default)]
pub(crate) struct Planned {
    pub steps: Vec<Step>,
    /// Appended to the chain once the steps succeed.
    pub audit: Vec<AuditDraft>,
    /// Whether a step rewrites a process row (not only its counters).
    pub writes_process: bool,
    /// PostgreSQL: the commit's rows, when it writes only jobs, queue items
    /// and robots (with counters and commands): a writer may then check
    /// their versions itself and write many commits' rows at once.
    pub rows: Option<Vec<EntityRow>>,
}

/// A versioned row of `rpa_jobs`, `rpa_items` or `rpa_robots`.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct EntityRow {
    pub table: &'static str,
    /// Its kind's mapping (which columns an update leaves alone).
    pub kind: &'static Kind,
    pub id: i64,
    /// The other indexed columns.
    pub cols: Vec<(&'static str, Val)>,
    pub version: u64,
    pub json: String,
}

impl EntityRow {
    /// The row of a kind keyed by a serial id, from its mapping.
    fn of(r: Row) -> Result<EntityRow, StoreError> {
        let Cell::Int(id) = r.key else {
            return Err(StoreError::Backend(format!("{} is not keyed by an id", r.kind.name)));
        };
        Ok(EntityRow {
            table: r.kind.table,
            kind: r.kind,
            id,
            cols: r
                .kind
                .columns
                .iter()
                .zip(r.cells)
                .map(|(c, v)| (c.name, crate::records::into_val(c.ty, v)))
                .collect(),
            version: r.version,
            json: r.data.to_string(),
        })
    }
}

/// The row of a job, queue item or robot (from its
/// [`Mapped`](rpa_core::record::Mapped) row
/// mapping); `None` for other writes.
pub(crate) fn row(w: &Write) -> Result<Option<EntityRow>, StoreError> {
    let r = match w {
        Write::Job(j) => Row::of(j)?,
        Write::Item(i) => Row::of(i)?,
        Write::Robot(r) => Row::of(r)?,
        _ => return Ok(None),
    };
    note_unique(r.kind);
    EntityRow::of(r).map(Some)
}

impl EntityRow {
    /// Its versioned write (see [`put`]).
    fn put(self) -> Result<Stmt, StoreError> {
        put(self.kind, Val::I(self.id), self.cols, self.version, self.json)
    }
}

pub(crate) fn to_json<T: Serialize>(v: &T) -> Result<String, StoreError> {
    serde_json::to_string(v).map_err(|e| StoreError::Backend(format!("encode: {e}")))
}

/// The statements of `c` (its audit drafts taken along); `seqs` numbers its commands.
pub(crate) fn plan(c: &mut Commit, backend: Backend, seqs: &[i64]) -> Result<Planned, StoreError> {
    let mut writes: Vec<&Write> = c.writes.iter().collect();
    writes.sort_by(|a, b| rank(a).cmp(&rank(b)));
    let mut steps = Vec::with_capacity(writes.len() + c.commands.len() + c.clear_outbox.len());
    let mut rows = (backend == Backend::Postgres && c.clear_outbox.is_empty()).then(Vec::new);
    for w in writes {
        let row = row(w)?;
        match (&mut rows, &row, w) {
            (Some(rows), Some(r), _) => rows.push(r.clone()),
            (Some(_), None, Write::Counts(_)) => {}
            _ => rows = None,
        }
        steps.push(match row {
            Some(r) => Step::Run(r.put()?),
            None => write(w)?,
        });
    }
    for r in &c.clear_outbox {
        steps.push(Step::Run(Stmt {
            sql: "DELETE FROM rpa_outbox WHERE robot = $1".into(),
            args: vec![Val::I(r.0)],
            expect: Expect::Any,
        }));
    }
    for ((robot, cmd), seq) in c.commands.iter().zip(seqs) {
        steps.push(Step::Outbox {
            seq: *seq,
            robot: robot.0,
            data: to_json(cmd)?,
        });
    }
    if backend == Backend::Postgres {
        // Delivered at commit (and dropped with a rolled-back savepoint):
        // wakes the node that holds each robot's connection.
        let mut robots: Vec<i64> = c.commands.iter().map(|(r, _)| r.0).collect();
        robots.sort_unstable();
        robots.dedup();
        for r in robots {
            steps.push(Step::Run(Stmt {
                sql: "SELECT pg_notify('rpa_outbox', $1)".into(),
                args: vec![Val::S(r.to_string())],
                expect: Expect::Any,
            }));
        }
    }
    Ok(Planned {
        steps,
        audit: std::mem::take(&mut c.audit),
        writes_process: c.writes.iter().any(|w| matches!(w, Write::Process(_))),
        rows,
    })
}

/// The order writes run in: parents before children, then by id (records
/// last, by table and key).
pub(crate) fn rank(w: &Write) -> (u8, i64, &'static str, Option<&rpa_core::record::Cell>) {
    let (n, id) = match w {
        Write::Token(_) | Write::RevokeToken(_) => (2, 0),
        Write::Vendor(v) => (3, v.id.0),
        Write::Process(p) => (4, p.id.0),
        Write::Counts(c) => (4, c.process.0),
        Write::Robot(r) => (5, r.id.0),
        Write::Item(i) => (6, i.id.0),
        Write::Job(j) => (7, j.id.0),
        Write::Log(l) => (9, l.id.0),
        Write::DropLogs(j) => (9, j.0),
        Write::Video(v) => (10, v.job.0),
        Write::Record(r) => return (11, 0, r.kind.table, Some(&r.key)),
    };
    (n, id, "", None)
}

/// An outbox row: seq, robot, data.
pub(crate) const OUTBOX_INSERT: &str = "INSERT INTO rpa_outbox (seq, robot, data) VALUES ($1, $2, $3)";

/// An outbox row.
pub(crate) fn outbox(seq: i64, robot: i64, data: String) -> Stmt {
    Stmt {
        sql: OUTBOX_INSERT.into(),
        args: vec![Val::I(seq), Val::I(robot), Val::S(data)],
        expect: Expect::Any,
    }
}

/// A process row at its version.
pub(crate) fn process(p: &Process) -> Result<Stmt, StoreError> {
    EntityRow::of(Row::of(p)?)?.put()
}

/// A process row written over its stored version `stored` (several
/// commits of a group moved its counters, each bumping its version).
pub(crate) fn process_over(p: &Process, stored: u64) -> Result<Stmt, StoreError> {
    let r = EntityRow::of(Row::of(p)?)?;
    put_over(r.kind, Val::I(r.id), r.cols, r.version, stored, r.json)
}

fn insert(sql: &'static str, args: Vec<Val>) -> Step {
    Step::Run(Stmt {
        sql: sql.into(),
        args,
        expect: Expect::Any,
    })
}

fn write(w: &Write) -> Result<Step, StoreError> {
    let stmt = match w {
        Write::Token(t) => {
            return Ok(insert(
                "INSERT INTO rpa_tokens (hash, expires_at, data) VALUES ($1, $2, $3)",
                vec![Val::S(hex::encode(t.hash)), Val::I(t.expires_at.0), Val::S(to_json(t)?)],
            ));
        }
        Write::RevokeToken(h) => {
            return Ok(insert(
                "DELETE FROM rpa_tokens WHERE hash = $1",
                vec![Val::S(hex::encode(h))],
            ));
        }
        Write::Process(p) => process(p)?,
        Write::Counts(c) => return Ok(Step::Counts(*c)),
        Write::Job(_) | Write::Item(_) | Write::Robot(_) => match row(w)? {
            Some(r) => r.put()?,
            None => return Err(StoreError::Backend("a row without columns".into())),
        },
        Write::Vendor(v) => put_row(&Row::of(v)?)?,
        Write::Log(l) => {
            return Ok(insert(
                "INSERT INTO rpa_logs (id, job, data) VALUES ($1, $2, $3)",
                vec![Val::I(l.id.0), Val::I(l.job.0), Val::S(to_json(l)?)],
            ));
        }
        Write::DropLogs(j) => {
            return Ok(insert("DELETE FROM rpa_logs WHERE job = $1", vec![Val::I(j.0)]));
        }
        Write::Video(v) => {
            return Ok(insert(
                "INSERT INTO rpa_videos (job, at, data) VALUES ($1, $2, $3)",
                vec![Val::I(v.job.0), Val::I(v.at.0), Val::S(to_json(v)?)],
            ));
        }
        Write::Record(r) => put_row(r)?,
    };
    Ok(Step::Run(stmt))
}

/// The versioned write of a row, from its kind's mapping.
fn put_row(r: &Row) -> Result<Stmt, StoreError> {
    note_unique(r.kind);
    put(
        r.kind,
        crate::records::val(r.kind.key.ty, &r.key),
        r.kind
            .columns
            .iter()
            .zip(&r.cells)
            .map(|(c, v)| (c.name, crate::records::val(c.ty, v)))
            .collect(),
        r.version,
        r.data.to_string(),
    )
}

/// Inserts (`version == 1`) or updates a versioned row of `kind` whose
/// stored version must be `version - 1`; `cols` are its kind's columns in
/// order. An update leaves the [fixed](rpa_core::record::Column::fixed)
/// columns out: SQLite rewrites an index over every column an update sets,
/// even to the value it had (a job's random key would cost a random page
/// of its index at each change of state).
fn put(kind: &Kind, key: Val, cols: Vec<(&str, Val)>, version: u64, json: String) -> Result<Stmt, StoreError> {
    put_over(kind, key, cols, version, version.saturating_sub(1), json)
}

/// [`put`] of `version` over the stored version `stored` (0: a new row).
fn put_over(
    kind: &Kind,
    key: Val,
    cols: Vec<(&str, Val)>,
    version: u64,
    stored: u64,
    json: String,
) -> Result<Stmt, StoreError> {
    let (table, key_col) = (kind.table, kind.key.name);
    let overflow = |_| StoreError::Backend("version overflow".into());
    let (version, stored) = (
        i64::try_from(version).map_err(overflow)?,
        i64::try_from(stored).map_err(overflow)?,
    );
    let mut args: Vec<Val> = Vec::with_capacity(cols.len() + 4);
    if stored == 0 {
        let names: Vec<&str> = cols.iter().map(|(c, _)| *c).collect();
        args.push(key);
        args.extend(cols.into_iter().map(|(_, v)| v));
        args.extend([Val::I(version), Val::S(json)]);
        return Ok(Stmt {
            sql: insert_sql(table, key_col, &names).into(),
            args,
            expect: Expect::Any,
        });
    }
    let changing = cols
        .into_iter()
        .zip(kind.columns)
        .filter(|(_, c)| !c.fixed)
        .map(|((name, v), _)| (name, v));
    let (names, vals): (Vec<&str>, Vec<Val>) = changing.unzip();
    args.extend(vals);
    args.extend([Val::I(version), Val::S(json), key, Val::I(stored)]);
    Ok(Stmt {
        sql: update_sql(table, key_col, &names).into(),
        args,
        expect: Expect::OneRow,
    })
}

fn insert_sql(table: &str, key_col: &str, cols: &[&str]) -> String {
    let names: Vec<&str> = std::iter::once(key_col)
        .chain(cols.iter().copied())
        .chain(["version", "data"])
        .collect();
    let marks: Vec<String> = (1..=names.len()).map(|i| format!("${i}")).collect();
    format!(
        "INSERT INTO {table} ({}) VALUES ({})",
        names.join(", "),
        marks.join(", ")
    )
}

/// `UPDATE table SET cols.., version, data WHERE key = .. AND version = ..` (see [`crate::queries::JOB_UPDATE`]).
pub(crate) fn update_sql(table: &str, key_col: &str, cols: &[&str]) -> String {
    let mut sets: Vec<String> = cols
        .iter()
        .enumerate()
        .map(|(i, c)| format!("{c} = ${}", i + 1))
        .collect();
    let n = cols.len();
    sets.push(format!("version = ${}", n + 1));
    sets.push(format!("data = ${}", n + 2));
    format!(
        "UPDATE {table} SET {} WHERE {key_col} = ${} AND version = ${}",
        sets.join(", "),
        n + 3,
        n + 4
    )
}

/// The record kinds with a unique column that this process has planned a
/// write of: a unique violation can only come from a row a commit writes,
/// and every commit is planned here first, so these are the kinds a
/// database's message may name (no list of every kind is kept anywhere).
static UNIQUE_KINDS: std::sync::RwLock<Vec<&'static Kind>> = std::sync::RwLock::new(Vec::new());

/// Notes `kind` among [`UNIQUE_KINDS`] if it has a unique column.
fn note_unique(kind: &'static Kind) {
    let known = |v: &Vec<&'static Kind>| v.iter().any(|k| k.table == kind.table);
    if kind.columns.iter().all(|c| c.unique.is_none()) || UNIQUE_KINDS.read().is_ok_and(|v| known(&v)) {
        return;
    }
    let mut v = UNIQUE_KINDS.write().unwrap_or_else(std::sync::PoisonError::into_inner);
    if !known(&v) {
        v.push(kind);
    }
}

/// A unique violation, in the memory store's words, from the database's
/// message and constraint name (a primary key clash is a conflict).
pub(crate) fn duplicate(what: &str) -> StoreError {
    let kinds = UNIQUE_KINDS.read().map(|v| v.clone()).unwrap_or_default();
    if let Some(e) = rpa_core::record::duplicate_in(what, kinds) {
        e
    } else if what.contains("rpa_items.reference") || what.contains("rpa_items_reference") {
        // Unique per process: an index of two columns.
        StoreError::Duplicate("queue item reference")
    } else if what.contains("rpa_vendors") {
        // Its key, whose index PostgreSQL names `rpa_vendors_pkey`.
        StoreError::Duplicate("supplier code")
    } else {
        StoreError::Conflict
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_planned_job_update_is_the_one_commits_run() {
        use rpa_core::record::Mapped;
        let kind = rpa_core::model::Job::KIND;
        let cols: Vec<&str> = kind.columns.iter().filter(|c| !c.fixed).map(|c| c.name).collect();
        assert_eq!(
            super::update_sql(kind.table, kind.key.name, &cols),
            crate::queries::JOB_UPDATE
        );
    }
}
