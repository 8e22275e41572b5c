//! A process's limits, in one place: `maxRunNum` (running jobs),
//! `maxDayNum` (successful runs per calendar day) and the max pending queue
//! items (DESIGN §5, §7). `0` means no limit for each.
//!
//! | question | asked by | rule |
//! |---|---|---|
//! | may a job be started? | `startJob` | refused once today's successes reach `maxDayNum` ([`may_start`]) |
//! | may a pending job run now? | dispatch | a slot is free and today's successes plus running jobs stay below `maxDayNum` ([`may_run`]) |
//! | may a queue item be added? | `addQueueItem` | fewer New items than the max ([`may_add_item`]) |
//! | does a commit's counter change hold? | every store, at commit | no count it raises goes past its limit ([`exceeded`]) |
//!
//! The counters change only through the [`Delta`]s below, which the engine
//! turns into [`Counts`](crate::store::Counts) (a delta the store applies
//! to the process as stored, so that concurrent commits that only count
//! never conflict, and a commit that would pass a limit is refused on every
//! node alike).

use crate::error::Limit;
use crate::model::Process;

/// Whether a job of `p` may be started today: `maxDayNum` refuses starts
/// once today's successful runs reach it (`maxRunNum` only makes a start wait).
pub fn may_start(p: &Process, today: i64) -> Result<(), Limit> {
    let max = p.spec.max_day_num;
    if max > 0 && p.successes_on(today) >= max {
        return Err(Limit::MaxDayNum(max));
    }
    Ok(())
}

/// Whether one more job of `p` may start running now.
pub fn may_run(p: &Process, today: i64) -> bool {
    let s = &p.spec;
    (s.max_run_num == 0 || p.running < s.max_run_num)
        && (s.max_day_num == 0 || p.successes_on(today) + p.running < s.max_day_num)
}

/// Whether one more New queue item of `p` may wait.
pub fn may_add_item(p: &Process) -> Result<(), Limit> {
    let max = p.spec.max_pending_items;
    if max > 0 && p.pending_items >= max {
        return Err(Limit::MaxPendingItems(max));
    }
    Ok(())
}

/// The counts of a process before and after a commit's change.
#[derive(Debug, Clone, Copy)]
pub struct Change {
    /// Running jobs before and after.
    pub running: (u32, u32),
    /// Today's successful runs plus running jobs, before and after.
    pub today: (u32, u32),
    /// New queue items before and after.
    pub pending: (u32, u32),
    /// Whether the new items are held to the max (a retried item is no new item).
    pub limit_pending: bool,
}

/// Whether a change raises a count past its limit (a count that falls, or
/// stays, never does: a limit lowered below the counts refuses only growth).
pub fn exceeded(p: &Process, c: Change) -> bool {
    let over = |limit: u32, (before, after): (u32, u32)| limit > 0 && after > before && after > limit;
    let s = &p.spec;
    over(s.max_run_num, c.running)
        || over(s.max_day_num, c.today)
        || (c.limit_pending && over(s.max_pending_items, c.pending))
}

/// Whether a commit that counts for `p` must see its exact counters: only
/// a limit needs them. A store may let the commits of a process without
/// limits count side by side (PostgreSQL: each node in a row of its own,
/// summed on read) and serialise only those of a process with one.
pub fn needs_exact_counts(p: &Process) -> bool {
    let s = &p.spec;
    s.max_run_num > 0 || s.max_day_num > 0 || s.max_pending_items > 0
}

/// A change of a process's counters, before it is bound to a process and a day.
#[derive(Debug, Clone, Copy, Default)]
pub struct Delta {
    /// Change of running jobs.
    pub running: i64,
    /// Change of New queue items.
    pub pending_items: i64,
    /// Successful runs to add.
    pub successes: u32,
    /// Whether the new items are held to the max pending items.
    pub limit_pending: bool,
}

impl Delta {
    /// A job took a running slot.
    pub const SLOT_TAKEN: Delta = Delta {
        running: 1,
        pending_items: 0,
        successes: 0,
        limit_pending: false,
    };
    /// A job gave its running slot back.
    pub const SLOT_FREED: Delta = Delta {
        running: -1,
        pending_items: 0,
        successes: 0,
        limit_pending: false,
    };
    /// A run succeeded.
    pub const SUCCESS: Delta = Delta {
        running: 0,
        pending_items: 0,
        successes: 1,
        limit_pending: false,
    };
    /// A new queue item waits, held to the process's max pending items.
    pub const NEW_ITEM: Delta = Delta {
        running: 0,
        pending_items: 1,
        successes: 0,
        limit_pending: true,
    };
    /// A retried item waits again (no new item: not held to the limit).
    pub const RETRIED_ITEM: Delta = Delta {
        running: 0,
        pending_items: 1,
        successes: 0,
        limit_pending: false,
    };
    /// A queue item stopped waiting.
    pub const ITEM_TAKEN: Delta = Delta {
        running: 0,
        pending_items: -1,
        successes: 0,
        limit_pending: false,
    };
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{ProcessSpec, ProcessType};

    fn process(run: u32, day: u32, pending: u32) -> Process {
        let mut spec = ProcessSpec::new("p", ProcessType::Queue);
        spec.max_run_num = run;
        spec.max_day_num = day;
        spec.max_pending_items = pending;
        Process {
            id: crate::ids::ProcessId(1),
            key: crate::ids::Key::from_random([1; 16]),
            version: 1,
            spec: std::sync::Arc::new(spec),
            running: 0,
            day: 10,
            day_successes: 0,
            pending_items: 0,
            created_at: crate::time::Timestamp(0),
        }
    }

    #[test]
    fn zero_means_no_limit() {
        let mut p = process(0, 0, 0);
        p.running = 1_000;
        p.day_successes = 1_000;
        p.pending_items = 1_000;
        assert!(may_run(&p, 10));
        assert_eq!(may_start(&p, 10), Ok(()));
        assert_eq!(may_add_item(&p), Ok(()));
    }

    #[test]
    fn max_day_num_counts_todays_successes_and_running_jobs() {
        let mut p = process(0, 3, 0);
        p.day_successes = 2;
        p.running = 1;
        assert!(!may_run(&p, 10), "two done and one running make three");
        assert_eq!(may_start(&p, 10), Ok(()), "a start waits, it is not refused");
        p.day_successes = 3;
        assert_eq!(may_start(&p, 10), Err(Limit::MaxDayNum(3)));
        assert_eq!(may_start(&p, 11), Ok(()), "a new day");
        assert!(may_run(&process(0, 3, 0), 11));
    }

    #[test]
    fn only_growth_past_a_limit_is_refused() {
        let p = process(2, 0, 1);
        let change = |running, pending, limit_pending| Change {
            running,
            today: (0, 0),
            pending,
            limit_pending,
        };
        assert!(!exceeded(&p, change((1, 2), (0, 0), false)));
        assert!(exceeded(&p, change((2, 3), (0, 0), false)));
        assert!(!exceeded(&p, change((5, 4), (0, 0), false)), "falling counts pass");
        assert!(exceeded(&p, change((0, 0), (1, 2), true)));
        assert!(
            !exceeded(&p, change((0, 0), (1, 2), false)),
            "a retried item is no new item"
        );
    }
}
