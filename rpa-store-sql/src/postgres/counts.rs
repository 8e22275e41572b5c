//! A process's counters on PostgreSQL: rows per process in
//! `rpa_process_counts`, one per node slot, summed on read
//! (`rpa_processes_v`, migration 30). A node adds its commits' counts to
//! the row of its slot ([`slot`]: its number modulo [`SLOTS`], so a
//! process has at most that many rows however often nodes restart; two
//! nodes that share a slot only take turns on that row).
//!
//! Counting never writes the process row, so nodes that run one process
//! do not queue on it. How a group locks a process it counts for depends
//! on whether the process has a limit ([`needs_exact_counts`]):
//!
//! | process | lock | why |
//! |---|---|---|
//! | no limit | `FOR SHARE` | any number of nodes add to their own rows at once; the shared lock keeps the limits from changing until the group commits |
//! | a limit | `FOR UPDATE` | the sum read under the lock is exact until the group commits, so `maxRunNum`, `maxDayNum` and the pending-items cap hold across nodes |
//!
//! A group that took the shared lock and finds that the process has a
//! limit after all (its node's copy lagged) refuses the commits that count
//! for it ([`StoreError::Conflict`]); they are decided again on fresh data.

use std::fmt::Write as _;

use rpa_core::error::StoreError;
use rpa_core::limits::needs_exact_counts;
use rpa_core::model::Process;
use rpa_core::store::Counts;

use crate::plan::{Expect, Stmt};

/// How a group locks a process it counts for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Lock {
    /// No limit: nodes count side by side.
    Shared,
    /// A limit: one group at a time, on the exact sum.
    Exclusive,
}

impl Lock {
    /// The lock for a process as this node knows it (unknown: exclusive).
    pub fn of(p: Option<&Process>) -> Lock {
        match p {
            Some(p) if !needs_exact_counts(p) => Lock::Shared,
            _ => Lock::Exclusive,
        }
    }

    /// The row-lock clause.
    pub fn clause(self) -> &'static str {
        match self {
            Lock::Shared => "FOR SHARE",
            Lock::Exclusive => "FOR UPDATE",
        }
    }

    /// Whether `stored` (read under this lock) may be counted for: a shared
    /// lock does not serialise the commits that need exact counts.
    pub fn holds(self, stored: &Process) -> Result<(), StoreError> {
        match self {
            Lock::Shared if needs_exact_counts(stored) => Err(StoreError::Conflict),
            _ => Ok(()),
        }
    }
}

/// Statements that lock `locks` (sorted by id: the order every group
/// writer locks processes in), each with its own clause, then read them
/// with their counters as `SELECT 2 AS k, data` (a later statement: it sees
/// what the groups that held the locks before committed).
pub(crate) fn lock_and_read(locks: &[(i64, Lock)]) -> String {
    let mut sql = String::new();
    if locks.is_empty() {
        return sql;
    }
    for (id, lock) in locks {
        let _ = write!(
            sql,
            "; SELECT 0 AS k, '' AS data FROM rpa_processes WHERE id = {id} {}",
            lock.clause()
        );
    }
    let ids: Vec<String> = locks.iter().map(|(id, _)| id.to_string()).collect();
    let _ = write!(
        sql,
        "; SELECT 2 AS k, data FROM rpa_processes_v WHERE id IN ({})",
        ids.join(", ")
    );
    sql
}

/// What adding a count to a node's row sets (`t`: the row, `excluded`: the
/// count): counts add up; successes add up on the row's day, start again on
/// a later day, and a count of an earlier day (a clock behind) adds none.
pub(crate) const ADD: &str = "running = t.running + excluded.running, \
     pending_items = t.pending_items + excluded.pending_items, \
     day_successes = CASE WHEN excluded.day > t.day THEN excluded.day_successes \
     WHEN excluded.day = t.day THEN t.day_successes + excluded.day_successes ELSE t.day_successes END, \
     day = GREATEST(t.day, excluded.day)";

/// Rows a process's counters are spread over, at most.
pub(crate) const SLOTS: u64 = 256;

/// The row of a process's counters that `node` adds to.
pub(crate) fn slot(node: u64) -> i64 {
    (node % SLOTS) as i64
}

/// The statement that adds `c` to `node`'s row of its process (numbers
/// only: inlined).
pub(crate) fn add(c: &Counts, node: u64) -> Stmt {
    Stmt {
        sql: format!(
            "INSERT INTO rpa_process_counts AS t (process, node, running, pending_items, day, day_successes) \
             VALUES ({}, {}, {}, {}, {}, {}) ON CONFLICT (process, node) DO UPDATE SET {ADD}",
            c.process.0,
            slot(node),
            c.running,
            c.pending_items,
            c.day,
            c.successes
        )
        .into(),
        args: Vec::new(),
        expect: Expect::Any,
    }
}

/// The counts of the commits that stood, one per process and day (a row is
/// changed once per statement).
pub(crate) fn merged<'a>(counts: impl IntoIterator<Item = &'a Counts>) -> Vec<Counts> {
    let mut out: Vec<Counts> = Vec::new();
    for c in counts {
        match out.iter_mut().find(|o| o.process == c.process && o.day == c.day) {
            Some(o) => o.merge(*c),
            None => out.push(*c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use rpa_core::conformance::sample_process;
    use rpa_core::ids::ProcessId;
    use std::sync::Arc;

    fn count(process: i64, running: i64, day: i64) -> Counts {
        Counts {
            process: ProcessId(process),
            running,
            pending_items: 0,
            successes: 0,
            day,
            limit_pending: false,
        }
    }

    #[test]
    fn a_process_with_a_limit_is_counted_under_an_exclusive_lock() {
        let mut p = sample_process(1);
        Arc::make_mut(&mut p.spec).max_run_num = 0;
        assert_eq!(Lock::of(Some(&p)), Lock::Shared);
        assert_eq!(Lock::of(None), Lock::Exclusive);
        Arc::make_mut(&mut p.spec).max_run_num = 1;
        assert_eq!(Lock::of(Some(&p)), Lock::Exclusive);
        assert_eq!(Lock::Shared.holds(&p), Err(StoreError::Conflict));
        assert_eq!(Lock::Exclusive.holds(&p), Ok(()));
    }

    #[test]
    fn counts_merge_by_process_and_day() {
        let all = [count(1, 1, 10), count(2, 1, 10), count(1, -1, 10), count(1, 1, 11)];
        let m = merged(&all);
        assert_eq!(m.len(), 3);
        assert_eq!((m[0].process.0, m[0].running, m[0].day), (1, 0, 10));
        assert_eq!((m[2].process.0, m[2].running, m[2].day), (1, 1, 11));
    }

    #[test]
    fn locks_come_in_the_order_given_and_the_read_comes_last() {
        let sql = lock_and_read(&[(1, Lock::Exclusive), (2, Lock::Shared)]);
        let update = sql.find("id = 1 FOR UPDATE").unwrap();
        let share = sql.find("id = 2 FOR SHARE").unwrap();
        let read = sql.find("rpa_processes_v WHERE id IN (1, 2)").unwrap();
        assert!(update < share && share < read);
        assert!(lock_and_read(&[]).is_empty());
    }
}
