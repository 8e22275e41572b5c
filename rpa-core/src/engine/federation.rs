//! Two-level collaboration (the rules are in [`crate::federation`]): the
//! child turning its events into run results, the parent folding a
//! child's report into its figures in one commit.

use std::collections::BTreeMap;

use super::{Decided, Engine, Tx};
use crate::audit::Subject;
use crate::error::{Error, Result};
use crate::events::{Event, EventRecord};
use crate::federation::{self, ChildCursor, ChildFigures, RunResult};
use crate::model::{Actor, Permission};
use crate::record::Select;
use crate::store::{Records, Store};

/// Most children, and figures of one child, a list reads.
const MAX_LIST: usize = 100_000;

impl<S: Store> Engine<S> {
    /// The run results among `events` (their ended jobs), for a parent.
    pub async fn run_results(&self, events: &[EventRecord]) -> Result<Vec<RunResult>> {
        let zone = self.config.time_zone;
        let mut out = Vec::new();
        for e in events {
            let Event::JobEnded {
                job, process, state, ..
            } = &e.event
            else {
                continue;
            };
            let name = match self.store.process(*process).await? {
                Some(p) => p.spec.name.clone(),
                None => continue,
            };
            let started = self.store.job(*job).await?.and_then(|j| j.started_at);
            out.push(RunResult {
                seq: e.seq,
                process: name,
                day: e.at.in_zone(zone).format("%Y-%m-%d").to_string(),
                state: *state,
                duration_ms: started.map(|s| (e.at.0 - s.0).max(0)),
            });
        }
        Ok(out)
    }

    /// Folds child `child`'s report into its figures (results it sent
    /// before count once); the child's cursor after it.
    pub async fn receive_results(&self, child: &str, results: &[RunResult]) -> Result<ChildCursor> {
        federation::check(child, results).map_err(Error::InvalidArgument)?;
        decided!(self, |_attempt| {
            let mut cursor = self
                .store
                .get::<ChildCursor>(child)
                .await?
                .unwrap_or_else(|| ChildCursor::start(child));
            let mut figures = BTreeMap::new();
            for r in results.iter().filter(|r| r.seq > cursor.seq) {
                let key = ChildFigures::key_of(child, &r.process, &r.day);
                if !figures.contains_key(&key)
                    && let Some(f) = self.store.get::<ChildFigures>(key.as_str()).await?
                {
                    figures.insert(key, f);
                }
            }
            let before = figures.clone();
            let now = self.now();
            let applied = federation::fold(&mut cursor, &mut figures, results, now);
            let mut tx = Tx::default();
            for (key, mut f) in figures {
                if before.get(&key) != Some(&f) {
                    f.version += 1;
                    tx.record(&f)?;
                }
            }
            cursor.version += 1;
            tx.record(&cursor)?;
            if applied > 0 {
                tx.audit(
                    now,
                    Actor::System,
                    "child.report",
                    Subject::Text(format!("child:{child}").into()),
                    format!("{applied} results through {}", cursor.seq),
                );
            }
            Ok(Decided::Commit(tx, cursor))
        })
    }

    /// The children that reported, with where their reports stand
    /// (permission ViewAudit).
    pub async fn children(&self, actor: Actor) -> Result<Vec<ChildCursor>> {
        self.require(actor, Permission::ViewAudit).await?;
        Ok(self.store.list(Select::all(MAX_LIST)).await?)
    }

    /// A child's figures, by process and day (permission ViewAudit).
    pub async fn child_figures(&self, actor: Actor, child: &str) -> Result<Vec<ChildFigures>> {
        self.require(actor, Permission::ViewAudit).await?;
        Ok(self.store.list(Select::only("child", child, MAX_LIST)).await?)
    }
}
