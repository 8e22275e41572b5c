//! Queue triggers: when the New items of a Queue process get their jobs.
//!
//! Without a trigger every queue item starts its own job as it is added.
//! A process with a [`QueueTrigger`] lets its items wait instead, and starts
//! jobs for them (one item per job, best [`rank`] first) when:
//!
//! | trigger jobs active | items waiting | jobs started |
//! |---|---|---|
//! | 0 | fewer than `min_items` | none: the batch is not full yet |
//! | 0 | `min_items` or more | up to `max_concurrent` |
//! | 1 or more | any | as many as keep the active jobs at `max_concurrent` |
//!
//! So `min_items` holds back the first job of a round, and a started round
//! drains the queue. With `max_concurrent` 0 no job is ever started: the
//! items wait for callers that take them as transactions (UiPath's queues,
//! whose items wait for a robot's `StartTransaction`; a queue created over
//! the UiPath-compatible API is made so). A trigger job is active from its start until it ends
//! (Pending and Running both count); `maxRunNum` still caps how many of
//! them run at once. The decision is re-taken in the commit that adds an
//! item and in the commit that ends a trigger job (a retried item waits
//! again, after its back-off), never by polling; the [`TriggerState`] record
//! that carries the counts is written by every such commit, so two nodes
//! deciding at once conflict and one decides again on the other's counts.

use serde::{Deserialize, Serialize};

use crate::ids::{JobId, QueueItemId, UserId};
use crate::record::{Cell, Column, Kind, Mapped, Record};
use crate::time::Timestamp;

/// A Queue process's trigger.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct QueueTrigger {
    /// New items that must wait before a round's first job starts (≥ 1).
    pub min_items: u32,
    /// Most trigger jobs active at once, pending or running; 0: none, the
    /// items wait for transactions.
    pub max_concurrent: u32,
}

impl QueueTrigger {
    /// Items wait for transactions alone: no trigger job ever starts.
    pub const TRANSACTIONS_ONLY: QueueTrigger = QueueTrigger {
        min_items: 1,
        max_concurrent: 0,
    };

    /// Refuses a trigger that makes no sense, with the reason.
    pub fn check(&self) -> Result<(), String> {
        if self.min_items == 0 {
            return Err("queueTrigger.minItems must be at least 1".into());
        }
        Ok(())
    }

    /// How many jobs to start now, with `waiting` items and `active` jobs.
    pub fn to_start(&self, waiting: u32, active: u32) -> u32 {
        if active == 0 && waiting < self.min_items {
            return 0;
        }
        waiting.min(self.max_concurrent.saturating_sub(active))
    }
}

/// How many jobs to start when a process has no trigger (any more): one
/// for every item still waiting.
pub fn untriggered(waiting: u32) -> u32 {
    waiting
}

/// A trigger's counts, one record per process (key: the process id).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TriggerState {
    /// The process.
    pub process: i64,
    /// Commit version (0: never written).
    pub version: u64,
    /// Items waiting for a job.
    pub waiting: u32,
    /// Trigger jobs started and not ended.
    pub active: u32,
}

impl Mapped for TriggerState {
    const KIND: &'static Kind = &Kind {
        table: "rpa_trigger_states",
        name: "queue trigger",
        key: Column::int("process"),
        sealed: false,
        cached: false,
        columns: &[],
    };
    fn key(&self) -> Cell {
        Cell::Int(self.process)
    }
    fn version(&self) -> u64 {
        self.version
    }
    fn cells(&self) -> Vec<Cell> {
        Vec::new()
    }
}

impl Record for TriggerState {}

/// A queue item waiting for its trigger (key: its [`rank`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Waiting {
    /// Its place in the process's line: see [`rank`].
    pub rank: String,
    /// Commit version.
    pub version: u64,
    /// The process while the item waits; none once its job started.
    pub process: Option<i64>,
    /// The item.
    pub item: QueueItemId,
    /// Who added it: the owner of its job.
    pub user: UserId,
    /// The job's earliest start (a retried item's back-off).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub not_before: Option<Timestamp>,
    /// The job started for it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job: Option<JobId>,
}

impl Mapped for Waiting {
    const KIND: &'static Kind = &Kind {
        table: "rpa_trigger_waits",
        name: "waiting queue item",
        key: Column::text("rank"),
        sealed: false,
        cached: false,
        columns: &[Column::int("process")],
    };
    fn key(&self) -> Cell {
        Cell::Text(self.rank.clone())
    }
    fn version(&self) -> u64 {
        self.version
    }
    fn cells(&self) -> Vec<Cell> {
        vec![self.process.into()]
    }
}

impl Record for Waiting {}

/// The order in which a process's waiting items get jobs: higher priority
/// first, then the earlier added. Text that sorts byte-wise in that order.
pub fn rank(process: i64, priority: i32, item: QueueItemId) -> String {
    // Priority descending: i32::MAX - priority is 0..=2^32-1, ten digits.
    let inverted = i64::from(i32::MAX) - i64::from(priority);
    format!("{process:019}:{inverted:010}:{:019}", item.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: QueueTrigger = QueueTrigger {
        min_items: 3,
        max_concurrent: 2,
    };

    #[test]
    fn a_round_starts_at_min_items_and_drains_the_queue() {
        assert_eq!(T.to_start(0, 0), 0);
        assert_eq!(T.to_start(2, 0), 0, "the batch is not full");
        assert_eq!(T.to_start(3, 0), 2, "full: up to max_concurrent");
        assert_eq!(T.to_start(10, 0), 2);
        assert_eq!(T.to_start(1, 1), 1, "a running round drains below min_items");
        assert_eq!(T.to_start(5, 2), 0, "at max_concurrent");
        assert_eq!(T.to_start(0, 1), 0);
        assert_eq!(untriggered(7), 7);
    }

    #[test]
    fn a_trigger_needs_min_items_and_zero_concurrency_means_transactions_only() {
        let zero_min = QueueTrigger {
            min_items: 0,
            max_concurrent: 1,
        };
        assert!(zero_min.check().unwrap_err().contains("minItems"));
        assert!(T.check().is_ok());
        let only = QueueTrigger::TRANSACTIONS_ONLY;
        assert!(only.check().is_ok());
        assert_eq!(only.to_start(1_000, 0), 0, "no job, however many wait");
    }

    #[test]
    fn ranks_sort_by_priority_then_age_within_a_process() {
        let mut ranks = [
            rank(7, 0, QueueItemId(5)),
            rank(7, 10, QueueItemId(9)),
            rank(7, 0, QueueItemId(3)),
            rank(7, -4, QueueItemId(1)),
            rank(7, i32::MIN, QueueItemId(2)),
            rank(7, i32::MAX, QueueItemId(12)),
        ];
        ranks.sort();
        let items: Vec<i64> = ranks
            .iter()
            .map(|r| r.rsplit(':').next().unwrap().parse().unwrap())
            .collect();
        assert_eq!(items, [12, 9, 3, 5, 1, 2]);
    }
}
