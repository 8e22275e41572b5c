//! Run analysis (the rules are in [`crate::analysis`]): folding ended jobs
//! into the figures per process and day, a process's attributes, reports.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use super::{Decided, Engine, Tx};
use crate::analysis::{self, Attributes, Bucket, Dimension, Ended, Period, ProcessInfo, RunFigures};
use crate::audit::Subject;
use crate::error::{Error, Result};
use crate::events::Event;
use crate::ids::{Key, ProcessId};
use crate::model::{Actor, Permission, Process};
use crate::record::{Cell, Select};
use crate::store::{Records, Store};

/// Audit events read per fold.
const BATCH: usize = 1000;
/// Figures read per page of a report.
const PAGE: usize = 10_000;

impl<S: Store> Engine<S> {
    /// Folds the jobs that ended since the `analysis` consumer's cursor into
    /// the figures, each batch in one commit with the cursor; how many jobs.
    /// Another node folding the same batch makes this one's commit conflict:
    /// it stops, and nothing counts twice.
    pub async fn fold_runs(&self) -> Result<usize> {
        let zone = self.config.time_zone;
        let mut folded = 0;
        loop {
            let batch = self.events_for(analysis::CONSUMER, BATCH).await?;
            if !batch.moves() {
                return Ok(folded);
            }
            let mut ended = Vec::new();
            for e in &batch.page.events {
                if let Event::JobEnded {
                    job,
                    process,
                    state,
                    started_at,
                    ..
                } = &e.event
                {
                    // Events written before they carried `startedAt`: the job's row.
                    let started = match started_at {
                        Some(s) => Some(*s),
                        None => self.store.job(*job).await?.and_then(|j| j.started_at),
                    };
                    ended.push(Ended {
                        process: *process,
                        day: e.at.in_zone(zone).format("%Y-%m-%d").to_string(),
                        state: *state,
                        duration_ms: started.map(|s| (e.at.0 - s.0).max(0)),
                    });
                }
            }
            let mut figures = BTreeMap::new();
            for e in &ended {
                let key = RunFigures::key_of(&e.day, e.process);
                if !figures.contains_key(&key)
                    && let Some(f) = self.store.get::<RunFigures>(key.as_str()).await?
                {
                    figures.insert(key, f);
                }
            }
            for e in &ended {
                analysis::fold(&mut figures, e);
            }
            let mut tx = Tx::default();
            for mut f in figures.into_values() {
                f.version += 1;
                tx.record(&f)?;
            }
            tx.record(&batch.advanced())?;
            match self.commit(tx).await {
                Ok(()) => folded += ended.len(),
                Err(e) if super::is_conflict(&e) => return Ok(folded),
                Err(e) => return Err(e),
            }
        }
    }

    /// Sets process `key`'s region, scenario, business domain and saved
    /// minutes (permission ManageProcesses).
    pub async fn set_process_attributes(&self, actor: Actor, key: Key, attributes: Attributes) -> Result<Process> {
        self.require(actor, Permission::ManageProcesses).await?;
        let attributes = attributes.checked().map_err(Error::InvalidArgument)?;
        decided!(self, |_attempt| {
            let mut p = self.process_by_key(key).await?;
            let mut spec = (*p.spec).clone();
            spec.attributes = attributes.clone();
            p.spec = Arc::new(spec);
            let mut tx = Tx::default();
            tx.process(p.clone()).audit(
                self.now(),
                actor,
                "process.attributes",
                Subject::Id("process", p.id.0),
                serde_json::to_string(&attributes).unwrap_or_default(),
            );
            let p = Process {
                version: p.version + 1,
                ..p
            };
            Ok(Decided::Commit(tx, p))
        })
    }

    /// Runs of `processes` (those the reader may see) that ended from day
    /// `from` to day `to` (`yyyy-MM-dd`, both included, the server's
    /// calendar), grouped by `by` and `period`. Jobs that ended since the
    /// last fold (the timer's, at most a tick ago) are not counted yet.
    pub async fn run_analysis(
        &self,
        processes: &[Process],
        by: Dimension,
        period: Period,
        from: &str,
        to: &str,
    ) -> Result<Vec<Bucket>> {
        let (from, to) = analysis::days(from, to).map_err(Error::InvalidArgument)?;
        let info: HashMap<ProcessId, ProcessInfo> = processes
            .iter()
            .map(|p| {
                (
                    p.id,
                    ProcessInfo {
                        name: p.spec.name.clone(),
                        attributes: p.spec.attributes.clone(),
                    },
                )
            })
            .collect();
        // Keys start with the day: the range is a range of keys. Every key
        // of `from` sorts after `from` itself; the first past `to` ends it.
        let mut figures = Vec::new();
        let mut after = Cell::Text(from);
        'pages: loop {
            let page: Vec<RunFigures> = self.store.list(Select::all(PAGE).after(after.clone())).await?;
            let full = page.len() == PAGE;
            for f in page {
                if f.day > to {
                    break 'pages;
                }
                after = Cell::Text(f.key.clone());
                figures.push(f);
            }
            if !full {
                break;
            }
        }
        Ok(analysis::aggregate(&figures, &info, by, period))
    }
}
