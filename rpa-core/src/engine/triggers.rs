//! Queue triggers (the rules are in [`crate::trigger`]): the round that
//! starts jobs for waiting items, written into the commit of whatever made
//! it due (an item added, a trigger job ended, a process changed).

use std::collections::HashMap;

use super::{Decided, Engine, Tx};
use crate::audit::{self, Subject};
use crate::error::{Error, Result};
use crate::ids::*;
use crate::model::*;
use crate::record::Select;
use crate::store::People as _;
use crate::store::{Records, Store};
use crate::time::Timestamp;
use crate::trigger::{self, TriggerState, Waiting};

/// Most jobs one round starts (a trigger removed with many items waiting
/// drains in rounds of this size).
const ROUND: u32 = 500;

/// A queue item this commit adds to the line: not stored yet.
pub(crate) struct Fresh {
    pub item: QueueItem,
    pub user: UserId,
    pub not_before: Option<Timestamp>,
}

impl<S: Store> Engine<S> {
    /// The trigger counts of process `p` as committed (zero if none yet).
    pub(crate) async fn trigger_state(&self, p: ProcessId) -> Result<TriggerState> {
        Ok(self.store.get::<TriggerState>(p.0).await?.unwrap_or(TriggerState {
            process: p.0,
            ..TriggerState::default()
        }))
    }

    /// Puts `fresh` in the line of `p` and starts the jobs its trigger lets
    /// start now (every waiting item's, up to a round, when `p` has no
    /// trigger any more), all into `tx`, with `state` (counts as read, the
    /// fresh items not yet counted, an ended trigger job already
    /// uncounted). Returns the jobs started, for dispatch after commit.
    pub(crate) async fn trigger_round(
        &self,
        tx: &mut Tx,
        p: &Process,
        mut state: TriggerState,
        fresh: Vec<Fresh>,
        now: Timestamp,
    ) -> Result<Vec<JobId>> {
        state.waiting += fresh.len() as u32;
        let n = match p.spec.trigger {
            Some(t) => t.to_start(state.waiting, state.active),
            None => trigger::untriggered(state.waiting),
        }
        .min(ROUND) as usize;
        // The best n of the line: the stored best n and the fresh ones, by rank.
        let mut line: Vec<(Waiting, Option<QueueItem>)> = if n > 0 {
            let stored: Vec<Waiting> = self.store.list(Select::only("process", p.id.0, n)).await?;
            stored.into_iter().map(|w| (w, None)).collect()
        } else {
            Vec::new()
        };
        for f in fresh {
            let w = Waiting {
                rank: trigger::rank(p.id.0, f.item.priority, f.item.id),
                version: 0,
                process: Some(p.id.0),
                item: f.item.id,
                user: f.user,
                not_before: f.not_before,
                job: None,
            };
            line.push((w, Some(f.item)));
        }
        line.sort_by(|a, b| a.0.rank.cmp(&b.0.rank));
        let mut started = Vec::new();
        let mut users: HashMap<UserId, User> = HashMap::new();
        for (i, (mut w, fresh_item)) in line.into_iter().enumerate() {
            let is_fresh = fresh_item.is_some();
            w.version += 1;
            if i >= n {
                if let Some(item) = fresh_item {
                    tx.item(item).record(&w)?;
                }
                continue;
            }
            let item = match fresh_item {
                Some(item) => Some(item),
                None => self.store.item(w.item).await?,
            };
            w.process = None;
            state.waiting = state.waiting.saturating_sub(1);
            // An item that stopped waiting some other way leaves the line.
            let Some(mut item) = item.filter(|i| i.state == ItemState::New && i.job.is_none()) else {
                tx.record(&w)?;
                continue;
            };
            let user = match users.get(&w.user) {
                Some(u) => u.clone(),
                None => {
                    let u = self
                        .store
                        .user(w.user)
                        .await?
                        .ok_or_else(|| Error::Internal(format!("queue item {} without its user", item.id)))?;
                    users.insert(w.user, u.clone());
                    u
                }
            };
            let not_before = item.defer_until.max(w.not_before);
            let mut job = self
                .new_job(
                    p,
                    &user,
                    item.content.clone(),
                    Some(&item),
                    now,
                    not_before,
                    item.deadline,
                )
                .await?;
            job.triggered = true;
            item.job = Some(job.id);
            w.job = Some(job.id);
            state.active += 1;
            let mut detail = String::with_capacity(48);
            audit::push_id(&mut detail, "item", item.id.0);
            detail.push_str(if is_fresh {
                " (queue trigger, as added)"
            } else {
                " (queue trigger)"
            });
            tx.audit(now, Actor::System, "job.trigger", Subject::Id("job", job.id.0), detail);
            started.push(job.id);
            tx.item(item).job(job).record(&w)?;
        }
        state.version += 1;
        tx.record(&state)?;
        Ok(started)
    }

    /// Starts the jobs the trigger of process `id` lets start now (after
    /// its trigger changed or went), round after round. Returns how many.
    pub async fn run_trigger(&self, id: ProcessId) -> Result<usize> {
        let mut total = 0;
        loop {
            let jobs = decided!(self, |_attempt| {
                let Some(p) = self.store.process(id).await? else {
                    return Ok(Decided::Answer(Vec::new()));
                };
                let state = self.trigger_state(id).await?;
                if state.waiting == 0 {
                    return Ok(Decided::Answer(Vec::new()));
                }
                let mut tx = Tx::default();
                let jobs = self.trigger_round(&mut tx, &p, state, Vec::new(), self.now()).await?;
                if jobs.is_empty() {
                    return Ok(Decided::Answer(jobs));
                }
                Ok(Decided::Commit(tx, jobs))
            })?;
            if jobs.is_empty() {
                return Ok(total);
            }
            total += jobs.len();
            for j in jobs {
                self.place_job(j).await?;
            }
        }
    }
}

impl<S: Store> Engine<S> {
    /// A process's trigger and its counts (permission ManageProcesses).
    pub async fn queue_trigger(&self, actor: Actor, key: Key) -> Result<(Process, TriggerState)> {
        self.require(actor, Permission::ManageProcesses).await?;
        let p = self.process_by_key(key).await?;
        let state = self.trigger_state(p.id).await?;
        Ok((p, state))
    }

    /// Sets (or, with `None`, removes) a Queue process's trigger
    /// (permission ManageProcesses); items it now lets start get their
    /// jobs at once.
    pub async fn set_queue_trigger(
        &self,
        actor: Actor,
        key: Key,
        trigger: Option<trigger::QueueTrigger>,
    ) -> Result<(Process, TriggerState)> {
        self.require(actor, Permission::ManageProcesses).await?;
        let p = self.process_by_key(key).await?;
        let spec = ProcessSpec {
            trigger,
            ..(*p.spec).clone()
        };
        let p = self.update_process(actor, key, spec).await?;
        let state = self.trigger_state(p.id).await?;
        Ok((p, state))
    }
}
