//! Two-level collaboration (seed 001 §6.5.3): a child server reports its
//! run results to a parent, which keeps each child's figures per process
//! and day.
//!
//! The child reads its domain events with a durable cursor (a consumer
//! like any other) and sends each ended job as a [`RunResult`] carrying the
//! event's sequence number, in order, until the parent answers: at least
//! once, surviving restarts and parent outages. The parent keeps, per
//! child, the last sequence number it applied ([`ChildCursor`]) and folds
//! only results past it, in the same commit as the figures: a batch sent
//! twice counts once. Pure: what a result is and how results fold.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::model::JobState;
use crate::record::{Cell, Column, Kind, Mapped, Record};
use crate::time::Timestamp;

/// An ended job, as a child reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RunResult {
    /// The child's event sequence number (its order and identity).
    pub seq: u64,
    /// The process's name.
    pub process: String,
    /// The day it ended, `yyyy-MM-dd` in the child's time zone.
    pub day: String,
    /// How it ended: Successful, Faulted, Stopped or Canceled.
    pub state: JobState,
    /// From the start of its last attempt to its end, if it started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration_ms: Option<i64>,
}

/// Where a child's reports stand on the parent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChildCursor {
    /// The child's name.
    pub child: String,
    /// Commit version.
    pub version: u64,
    /// The last sequence number applied.
    pub seq: u64,
    /// Results applied.
    pub results: u64,
    /// When the last report arrived.
    pub last_report: Option<Timestamp>,
}

impl ChildCursor {
    /// A child that has reported nothing yet.
    pub fn start(child: &str) -> ChildCursor {
        ChildCursor {
            child: child.to_owned(),
            version: 0,
            seq: 0,
            results: 0,
            last_report: None,
        }
    }
}

impl Mapped for ChildCursor {
    const KIND: &'static Kind = &Kind {
        table: "rpa_child_cursors",
        name: "child cursor",
        key: Column::text("child"),
        sealed: false,
        cached: false,
        columns: &[],
    };
    fn key(&self) -> Cell {
        self.child.as_str().into()
    }
    fn version(&self) -> u64 {
        self.version
    }
    fn cells(&self) -> Vec<Cell> {
        Vec::new()
    }
}

impl Record for ChildCursor {}

/// A child's figures for one process on one day.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ChildFigures {
    /// `child`, `process` and `day` joined by `\u{1f}`.
    pub key: String,
    /// Commit version.
    pub version: u64,
    /// The child.
    pub child: String,
    /// The process's name on the child.
    pub process: String,
    /// The day (`yyyy-MM-dd`, the child's calendar).
    pub day: String,
    /// Its ended jobs.
    #[serde(flatten)]
    pub tally: crate::analysis::Tally,
}

impl ChildFigures {
    /// The record key of a child's process on a day.
    pub fn key_of(child: &str, process: &str, day: &str) -> String {
        format!("{child}\u{1f}{process}\u{1f}{day}")
    }

    /// No runs yet.
    pub fn empty(child: &str, process: &str, day: &str) -> ChildFigures {
        ChildFigures {
            key: Self::key_of(child, process, day),
            version: 0,
            child: child.to_owned(),
            process: process.to_owned(),
            day: day.to_owned(),
            tally: crate::analysis::Tally::default(),
        }
    }
}

impl Mapped for ChildFigures {
    const KIND: &'static Kind = &Kind {
        table: "rpa_child_figures",
        name: "child figures",
        key: Column::text("key"),
        sealed: false,
        cached: false,
        columns: &[Column::text("child")],
    };
    fn key(&self) -> Cell {
        self.key.as_str().into()
    }
    fn version(&self) -> u64 {
        self.version
    }
    fn cells(&self) -> Vec<Cell> {
        vec![self.child.as_str().into()]
    }
}

impl Record for ChildFigures {}

/// Most results in one report.
pub const MAX_RESULTS: usize = 1000;

/// Checks a report: a child's name, results in increasing order, terminal states.
pub fn check(child: &str, results: &[RunResult]) -> Result<(), String> {
    if child.trim().is_empty() || child.len() > 128 {
        return Err("a child's name has 1 to 128 characters".into());
    }
    if results.len() > MAX_RESULTS {
        return Err(format!("at most {MAX_RESULTS} results in one report"));
    }
    for w in results.windows(2) {
        if w[1].seq <= w[0].seq {
            return Err(format!("results out of order: {} after {}", w[1].seq, w[0].seq));
        }
    }
    if let Some(r) = results.iter().find(|r| !r.state.is_terminal()) {
        return Err(format!("result {}: {} is not how a job ends", r.seq, r.state.as_str()));
    }
    Ok(())
}

/// Folds the results past `cursor` into `figures` (keyed by
/// [`ChildFigures::key_of`]; missing entries are created) and moves the
/// cursor; how many results were new.
pub fn fold(
    cursor: &mut ChildCursor,
    figures: &mut BTreeMap<String, ChildFigures>,
    results: &[RunResult],
    now: Timestamp,
) -> usize {
    let mut applied = 0;
    let from = cursor.seq;
    for r in results.iter().filter(|r| r.seq > from) {
        let key = ChildFigures::key_of(&cursor.child, &r.process, &r.day);
        let f = figures
            .entry(key)
            .or_insert_with(|| ChildFigures::empty(&cursor.child, &r.process, &r.day));
        f.tally.count(r.state, r.duration_ms);
        cursor.seq = r.seq;
        cursor.results += 1;
        applied += 1;
    }
    cursor.last_report = Some(now);
    applied
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(seq: u64, process: &str, state: JobState, d: Option<i64>) -> RunResult {
        RunResult {
            seq,
            process: process.into(),
            day: "2026-11-30".into(),
            state,
            duration_ms: d,
        }
    }

    #[test]
    fn a_batch_sent_twice_counts_once() {
        let mut cursor = ChildCursor::start("branch");
        let mut figures = BTreeMap::new();
        let batch = vec![
            r(3, "invoices", JobState::Successful, Some(1000)),
            r(7, "invoices", JobState::Faulted, Some(500)),
            r(9, "claims", JobState::Canceled, None),
        ];
        assert_eq!(fold(&mut cursor, &mut figures, &batch, Timestamp(1)), 3);
        assert_eq!(
            fold(&mut cursor, &mut figures, &batch, Timestamp(2)),
            0,
            "again: nothing new"
        );
        let more = vec![batch[2].clone(), r(12, "invoices", JobState::Successful, Some(1500))];
        assert_eq!(
            fold(&mut cursor, &mut figures, &more, Timestamp(3)),
            1,
            "only past the cursor"
        );
        let inv = &figures[&ChildFigures::key_of("branch", "invoices", "2026-11-30")];
        assert_eq!(
            (
                inv.tally.successful,
                inv.tally.faulted,
                inv.tally.duration_ms,
                inv.tally.timed
            ),
            (2, 1, 3000, 3)
        );
        let claims = &figures[&ChildFigures::key_of("branch", "claims", "2026-11-30")];
        assert_eq!((claims.tally.canceled, claims.tally.timed), (1, 0));
        assert_eq!(
            (cursor.seq, cursor.results, cursor.last_report),
            (12, 4, Some(Timestamp(3)))
        );
    }

    #[test]
    fn reports_are_checked() {
        assert!(check("", &[]).is_err());
        let out_of_order = [
            r(5, "p", JobState::Successful, None),
            r(5, "p", JobState::Successful, None),
        ];
        assert!(check("c", &out_of_order).unwrap_err().contains("out of order"));
        assert!(
            check("c", &[r(1, "p", JobState::Running, None)])
                .unwrap_err()
                .contains("not how a job ends")
        );
        assert!(check("c", &[r(1, "p", JobState::Stopped, None)]).is_ok());
    }
}
