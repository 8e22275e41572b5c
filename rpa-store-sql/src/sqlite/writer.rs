//! The SQLite writer: one thread that owns the file's one write connection
//! (rusqlite) and runs each group of commits as one transaction, a
//! savepoint per commit, with prepared statements kept across groups.
//!
//! One thread for a whole group matters: a statement costs a few
//! microseconds in SQLite, while handing each statement to a connection
//! thread and back (as an async driver does) costs two thread switches.
//! Callers hand over a commit already planned (JSON made, statements
//! chosen) and hear back after the transaction commits and the memory
//! mirror has taken the commit, in commit order.

use rpa_core::audit::{self, AuditDraft};
use rpa_core::error::StoreError;
use rpa_core::ids::RobotId;
use rpa_core::model::Process;
use rpa_core::store::{Commit, Counts, StoreResult};
use rpa_core::{ReadCache, Timestamp};
use rusqlite::{Connection, OptionalExtension, params};
use std::collections::HashMap;
use std::collections::hash_map::Entry;
use tokio::sync::{mpsc, oneshot};

use super::Checkpoints;

use super::err;
use crate::plan::{self, Expect, Planned, Step, Stmt};
use crate::{GROUP_MAX, queries};

/// Work for the writer thread.
pub(crate) enum Work {
    /// A planned commit; `commit` is what the mirror takes once it is durable.
    Commit {
        planned: Planned,
        commit: Commit,
        done: oneshot::Sender<StoreResult<()>>,
    },
    /// The robot's oldest `n` commands were delivered: delete their rows.
    Taken {
        robot: RobotId,
        n: usize,
        done: oneshot::Sender<StoreResult<()>>,
    },
    /// Reserve `block` ids of a sequence; answers the end of the block.
    Serial {
        kind: &'static str,
        block: i64,
        done: oneshot::Sender<StoreResult<i64>>,
    },
    /// Take or renew a lease (see [`rpa_core::Store::lease`]).
    Lease {
        name: String,
        holder: u64,
        now: Timestamp,
        until: Timestamp,
        done: oneshot::Sender<StoreResult<bool>>,
    },
}

/// Runs the writer until every sender is gone; `lock` is released after its last group.
pub(crate) fn run(
    conn: Connection,
    checkpoints: Checkpoints,
    lock: std::fs::File,
    mirror: ReadCache,
    mut rx: mpsc::Receiver<Work>,
) {
    let mut w = Writer {
        conn,
        mirror,
        last_seq: None,
    };
    while let Some(first) = rx.blocking_recv() {
        let mut group = Vec::new();
        let mut next = Some(first);
        while let Some(work) = next.take() {
            match work {
                Work::Serial { kind, block, done } => {
                    let _ = done.send(w.serial(kind, block));
                }
                Work::Lease {
                    name,
                    holder,
                    now,
                    until,
                    done,
                } => {
                    let _ = done.send(w.lease(&name, holder, now, until));
                }
                other => group.push(other),
            }
            if group.len() < GROUP_MAX {
                next = rx.try_recv().ok();
            }
        }
        if !group.is_empty() {
            w.group(group);
            checkpoints.nudge();
        }
    }
    checkpoints.stop();
    drop(w);
    drop(lock);
}

struct Writer {
    conn: Connection,
    mirror: ReadCache,
    /// The outbox's highest number, once read.
    last_seq: Option<i64>,
}

impl Writer {
    fn group(&mut self, mut group: Vec<Work>) {
        let results = match self.renumber(&mut group).and_then(|()| self.transaction(&mut group)) {
            Ok(results) => results,
            Err(e) => {
                if !self.conn.is_autocommit() {
                    let _ = self.conn.execute_batch("ROLLBACK");
                }
                // The numbers used may not be in the file: read them again.
                self.last_seq = None;
                group.iter().map(|_| Err(e.clone())).collect()
            }
        };
        // In commit order, before anyone hears back: a caller's next read sees its commit.
        for (work, r) in group.into_iter().zip(results) {
            match work {
                Work::Commit { commit, done, .. } => {
                    if r.is_ok() {
                        self.mirror.mirror(&commit);
                    }
                    let _ = done.send(r);
                }
                Work::Taken { done, .. } => {
                    let _ = done.send(r);
                }
                Work::Serial { .. } | Work::Lease { .. } => {}
            }
        }
    }

    /// Outbox rows numbered in commit order, the order the mirror queues
    /// them in, so that a robot's oldest row is its oldest command.
    fn renumber(&mut self, group: &mut [Work]) -> StoreResult<()> {
        let mut last: i64 = match self.last_seq {
            Some(n) => n,
            None => self
                .conn
                .query_row("SELECT COALESCE(MAX(seq), 0) FROM rpa_outbox", [], |r| r.get(0))
                .map_err(err)?,
        };
        for work in group.iter_mut() {
            if let Work::Commit { planned, .. } = work {
                for step in &mut planned.steps {
                    if let Step::Outbox { seq, .. } = step {
                        last += 1;
                        *seq = last;
                    }
                }
            }
        }
        self.last_seq = Some(last);
        Ok(())
    }

    /// One transaction for the group: each commit's result, or an error
    /// that fails them all. It runs first without a savepoint per commit
    /// (under load nearly every commit stands, and two statements per
    /// commit are saved); if a commit of several statements is refused,
    /// that transaction is rolled back and the group runs again with a
    /// savepoint around each such commit, which then undoes only itself.
    fn transaction(&mut self, group: &mut [Work]) -> StoreResult<Vec<StoreResult<()>>> {
        if let Some(results) = self.attempt(group, false)? {
            return Ok(results);
        }
        self.conn.execute_batch("ROLLBACK").map_err(err)?;
        self.attempt(group, true)?
            .ok_or_else(|| StoreError::Backend("a group with savepoints was given up".into()))
    }

    /// The group's transaction, a savepoint around each commit of several
    /// statements if `savepoints`; without them, `None` (not committed)
    /// as soon as such a commit is refused.
    fn attempt(&mut self, group: &mut [Work], savepoints: bool) -> StoreResult<Option<Vec<StoreResult<()>>>> {
        let conn = &self.conn;
        conn.execute_batch("BEGIN IMMEDIATE").map_err(err)?;
        let mut results = Vec::with_capacity(group.len());
        let mut counted = Counted::default();
        for work in group.iter_mut() {
            match work {
                Work::Taken { robot, n, .. } => {
                    conn.prepare_cached(queries::OUTBOX_DROP_SQLITE)
                        .and_then(|mut s| s.execute(params![robot.0, limit(*n)]))
                        .map_err(err)?;
                    results.push(Ok(()));
                }
                Work::Commit { planned, .. } => {
                    // A commit that writes a process row writes it over the
                    // version stored: its counters go to the row at once.
                    let direct = planned.writes_process;
                    if direct {
                        counted.write(conn)?;
                    }
                    // A failed statement undoes only itself, so a commit of
                    // one statement needs no savepoint.
                    let several = planned.steps.len() > 1;
                    let guarded = several && savepoints;
                    if guarded {
                        run_sql(conn, "SAVEPOINT rpa_commit")?;
                    }
                    let mut moved = Moved::new();
                    let r = planned
                        .steps
                        .iter()
                        .try_for_each(|s| step(conn, s, &mut counted, &mut moved, direct));
                    if guarded {
                        if r.is_err() {
                            run_sql(conn, "ROLLBACK TO SAVEPOINT rpa_commit")?;
                        }
                        run_sql(conn, "RELEASE SAVEPOINT rpa_commit")?;
                    } else if several && r.is_err() {
                        return Ok(None);
                    }
                    if r.is_ok() {
                        counted.stood(moved);
                    }
                    results.push(r);
                }
                Work::Serial { .. } | Work::Lease { .. } => {}
            }
        }
        counted.write(conn)?;
        let mut audit = Vec::new();
        for (work, r) in group.iter_mut().zip(&results) {
            if let (Work::Commit { planned, .. }, Ok(())) = (work, r) {
                audit.append(&mut planned.audit);
            }
        }
        if !audit.is_empty() {
            append_audit(conn, audit)?;
        }
        run_sql(conn, "COMMIT")?;
        Ok(Some(results))
    }

    fn serial(&mut self, kind: &str, block: i64) -> StoreResult<i64> {
        self.conn
            .prepare_cached(queries::SEQ_RESERVE)
            .and_then(|mut s| s.query_row(params![kind, block], |r| r.get(0)))
            .map_err(err)
    }

    fn lease(&mut self, name: &str, holder: u64, now: Timestamp, until: Timestamp) -> StoreResult<bool> {
        let row: Option<i64> = self
            .conn
            .prepare_cached(queries::LEASE)
            .and_then(|mut s| {
                s.query_row(params![name, holder as i64, until.0, now.0], |r| r.get(0))
                    .optional()
            })
            .map_err(err)?;
        Ok(row.is_some())
    }
}

fn limit(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

fn run_sql(conn: &Connection, sql: &str) -> StoreResult<()> {
    conn.prepare_cached(sql).and_then(|mut s| s.execute([])).map_err(err)?;
    Ok(())
}

/// Runs a commit's step; `moved`: the counters it moved so far (see
/// [`Counted`]), written at once if `direct`.
fn step(conn: &Connection, s: &Step, counted: &mut Counted, moved: &mut Moved, direct: bool) -> StoreResult<()> {
    match s {
        Step::Run(stmt) => exec(conn, stmt),
        Step::Outbox { seq, robot, data } => conn
            .prepare_cached(plan::OUTBOX_INSERT)
            .and_then(|mut s| s.execute(params![seq, robot, data]))
            .map(|_| ())
            .map_err(err),
        Step::Counts(c) => {
            counted.count(conn, c, moved)?;
            if direct && let Some((p, stored)) = moved.get_mut(&c.process.0) {
                exec(conn, &plan::process_over(p, *stored)?)?;
                *stored = p.version;
            }
            Ok(())
        }
    }
}

/// Processes by id, each with its version as stored.
type Moved = HashMap<i64, (Process, u64)>;

/// The processes a group counts for: each read once, its counters moved
/// by every commit that stood, written once before the group commits (or
/// before a commit that writes a process row). Under load most commits of
/// a group count for the same process; reading, decoding, encoding and
/// writing its row for each of them cost the writer thread more than any
/// other part of its own work.
#[derive(Default)]
struct Counted {
    /// Each process as the commits that stood leave it, and its version as stored.
    held: Moved,
}

impl Counted {
    /// Applies `c` to the process as this commit sees it (`moved`: what
    /// the commit moved so far); checks the limits.
    fn count(&mut self, conn: &Connection, c: &Counts, moved: &mut Moved) -> StoreResult<()> {
        let id = c.process.0;
        let (p, _) = match moved.entry(id) {
            Entry::Occupied(e) => e.into_mut(),
            Entry::Vacant(e) => e.insert(match self.held.get(&id) {
                Some(h) => h.clone(),
                None => {
                    // The one writer: the row read here is the row updated.
                    let json: Option<String> = conn
                        .prepare_cached(queries::PROCESS)
                        .and_then(|mut s| s.query_row([id], |r| r.get(0)).optional())
                        .map_err(err)?;
                    let p: Process = crate::from_json(&json.ok_or(StoreError::Conflict)?)?;
                    let stored = p.version;
                    self.held.insert(id, (p.clone(), stored));
                    (p, stored)
                }
            }),
        };
        c.apply(p)
    }

    /// A commit stood: what it moved is what later commits see.
    fn stood(&mut self, moved: Moved) {
        self.held.extend(moved);
    }

    /// Writes every process whose counters moved, and forgets them all.
    fn write(&mut self, conn: &Connection) -> StoreResult<()> {
        for (p, stored) in std::mem::take(&mut self.held).into_values() {
            if p.version != stored {
                exec(conn, &plan::process_over(&p, stored)?)?;
            }
        }
        Ok(())
    }
}

fn exec(conn: &Connection, s: &Stmt) -> StoreResult<()> {
    let changed = conn
        .prepare_cached(&s.sql)
        .and_then(|mut st| st.execute(rusqlite::params_from_iter(s.args.iter())))
        .map_err(err)?;
    if s.expect == Expect::OneRow && changed != 1 {
        return Err(StoreError::Conflict);
    }
    Ok(())
}

/// Appends a group's audit events (of the commits that succeeded, in commit order) to the chain.
fn append_audit(conn: &Connection, drafts: Vec<AuditDraft>) -> StoreResult<()> {
    let (mut seq, hash): (i64, String) = conn
        .prepare_cached("SELECT seq, hash FROM rpa_audit_tail WHERE id = 1")
        .and_then(|mut s| s.query_row([], |r| Ok((r.get(0)?, r.get(1)?))))
        .map_err(err)?;
    let mut prev = [0u8; 32];
    hex::decode_to_slice(hash, &mut prev).map_err(|e| StoreError::Backend(format!("audit tail: {e}")))?;
    let mut insert = conn
        .prepare_cached("INSERT INTO rpa_audit (seq, data) VALUES ($1, $2)")
        .map_err(err)?;
    for d in drafts {
        seq += 1;
        let e = audit::link(prev, seq as u64, d);
        prev = e.hash;
        insert.execute(params![seq, plan::to_json(&e)?]).map_err(err)?;
    }
    conn.prepare_cached("UPDATE rpa_audit_tail SET seq = $1, hash = $2 WHERE id = 1")
        .and_then(|mut s| s.execute(params![seq, hex::encode(prev)]))
        .map_err(err)?;
    Ok(())
}
