//! Queue transactions (UiPath's `StartTransaction`, `SetTransactionProgress`,
//! `SetTransactionResult`): a caller takes a queue item and works it
//! without a job of its own, then says how it went.
//!
//! What a transaction may take: the best item waiting for its queue's
//! trigger ([`crate::trigger`]). A queue without a trigger starts a job for
//! each item as it is added, so it has none to give (the answer is "none").
//! A transaction started with content of its own creates its item and
//! takes it at once. A failed item is retried as any item is: an
//! application error while retries remain makes a new item, which waits in
//! the trigger's line (or gets a job of its own without a trigger).

use std::sync::Arc;

use serde_json::Value;

use super::jobs::item_content;
use super::triggers::Fresh;
use super::{Decided, Delta, Engine, Tx};
use crate::audit::{self, Subject};
use crate::error::{Entity, Error, Result};
use crate::events;
use crate::ids::*;
use crate::job::ErrorClass;
use crate::model::*;
use crate::queue::{self, ItemEvent};
use crate::record::Select;
use crate::store::{Records, Store};
use crate::trigger::Waiting;

use super::NewQueueItem;

/// How a transaction ended.
#[derive(Debug, Clone, PartialEq)]
pub struct TransactionResult {
    /// It succeeded.
    pub success: bool,
    /// A failure's kind: Business (no retry) or Application (retried while
    /// the queue's retries allow).
    pub class: ErrorClass,
    /// Why it failed.
    pub reason: Option<String>,
    /// What it produced.
    pub output: Option<Value>,
}

impl<S: Store> Engine<S> {
    /// Starts a transaction on queue process `queue` for `user` (granted
    /// it): with `new`, a new item taken at once; without, the best item
    /// waiting for the queue's trigger, or none.
    pub async fn start_transaction(
        &self,
        user: &User,
        queue: Key,
        new: Option<NewQueueItem>,
    ) -> Result<Option<QueueItem>> {
        let p0 = self.process_by_key(queue).await?;
        self.require_grant(user, p0.id).await?;
        if p0.spec.process_type != ProcessType::Queue {
            return Err(Error::InvalidArgument("transactions are on Queue processes".into()));
        }
        if let Some(new) = new {
            let content = item_content(&p0.spec, &new.content)?;
            let now = self.now();
            let mut item = self.fresh_item(&p0, &new, content, now).await?;
            queue::apply(&mut item, ItemEvent::Take, now)?;
            let mut tx = Tx::default();
            tx.item(item.clone()).audit(
                now,
                Actor::User(user.id),
                "item.transaction",
                Subject::Id("item", item.id.0),
                "created and taken".into(),
            );
            self.commit(tx).await.map_err(|e| match e {
                Error::Store(crate::error::StoreError::Duplicate(_)) => Error::AlreadyExists(format!(
                    "queue item with reference {}",
                    new.reference.unwrap_or_default()
                )),
                e => e,
            })?;
            return Ok(Some(QueueItem {
                version: item.version + 1,
                ..item
            }));
        }
        if p0.spec.trigger.is_none() {
            return Ok(None);
        }
        decided!(self, |_attempt| {
            let mut p = self
                .store
                .process(p0.id)
                .await?
                .ok_or_else(|| Error::NotFound(Entity::Process, queue.to_string()))?;
            let mut state = self.trigger_state(p.id).await?;
            let now = self.now();
            let mut tx = Tx::default();
            let head: Vec<Waiting> = self.store.list(Select::only("process", p.id.0, 8)).await?;
            for mut w in head {
                w.process = None;
                w.version += 1;
                state.waiting = state.waiting.saturating_sub(1);
                let Some(mut item) = self
                    .store
                    .item(w.item)
                    .await?
                    .filter(|i| i.state == ItemState::New && i.job.is_none())
                else {
                    // It stopped waiting some other way: it leaves the line.
                    tx.record(&w)?;
                    continue;
                };
                if item.defer_until.is_some_and(|t| t > now) || w.not_before.is_some_and(|t| t > now) {
                    // Not yet: the line is by rank, the next may be due.
                    state.waiting += 1;
                    continue;
                }
                queue::apply(&mut item, ItemEvent::Take, now)?;
                tx.count(&mut p, Delta::ITEM_TAKEN, self.today(now)).record(&w)?.audit(
                    now,
                    Actor::User(user.id),
                    "item.transaction",
                    Subject::Id("item", item.id.0),
                    "taken".into(),
                );
                state.version += 1;
                tx.record(&state)?;
                tx.item(item.clone());
                return Ok(Decided::Commit(
                    tx,
                    Some(QueueItem {
                        version: item.version + 1,
                        ..item
                    }),
                ));
            }
            Ok(Decided::Answer(None))
        })
    }

    /// A transaction's progress, as its caller reports it.
    pub async fn set_transaction_progress(&self, user: &User, id: QueueItemId, progress: &str) -> Result<QueueItem> {
        decided!(self, |_attempt| {
            let mut item = self.transaction(user, id).await?;
            item.progress = Some(progress.chars().take(10_000).collect());
            let mut tx = Tx::default();
            tx.item(item.clone());
            Ok(Decided::Commit(tx, item))
        })
    }

    /// Ends a transaction: the item Successful, or Faulted (and retried as
    /// a new item after an application error while retries remain).
    pub async fn end_transaction(&self, user: &User, id: QueueItemId, result: TransactionResult) -> Result<QueueItem> {
        let (item, jobs) = decided!(self, |_attempt| {
            let mut item = self.transaction(user, id).await?;
            let mut p = self
                .store
                .process(item.process)
                .await?
                .ok_or_else(|| Error::Internal("item without process".into()))?;
            let now = self.now();
            let today = self.today(now);
            let mut tx = Tx::default();
            item.output = result.output.clone().map(Arc::new);
            let mut jobs = Vec::new();
            if result.success {
                queue::apply(&mut item, ItemEvent::Succeed, now)?;
            } else {
                queue::apply(&mut item, ItemEvent::Fail, now)?;
                let retry = result.class == ErrorClass::Application && item.retry_count < p.spec.retry.max_retries;
                if retry {
                    queue::apply(&mut item, ItemEvent::Retry, now)?;
                    let again = self.retried_item(&item, now).await?;
                    let backoff = Some(now.plus_ms(p.spec.retry.backoff(again.retry_count + 1)));
                    tx.count(&mut p, Delta::RETRIED_ITEM, today);
                    let mut detail = String::with_capacity(32);
                    audit::push_id(&mut detail, "item", again.id.0);
                    tx.audit(now, Actor::System, "item.retry", Subject::Id("item", item.id.0), detail);
                    if p.spec.trigger.is_some() {
                        let state = self.trigger_state(p.id).await?;
                        let fresh = Fresh {
                            item: again,
                            user: user.id,
                            not_before: backoff,
                        };
                        jobs = self.trigger_round(&mut tx, &p, state, vec![fresh], now).await?;
                    } else {
                        let job = self
                            .new_job(
                                &p,
                                user,
                                again.content.clone(),
                                Some(&again),
                                now,
                                backoff,
                                again.deadline,
                            )
                            .await?;
                        jobs.push(job.id);
                        tx.item(QueueItem {
                            job: Some(job.id),
                            ..again
                        })
                        .job(job);
                    }
                }
            }
            let mut detail = item.state.as_str().to_owned();
            if let Some(r) = &result.reason {
                detail.push_str(" (");
                detail.push_str(r);
                detail.push(')');
            }
            tx.audit(
                now,
                Actor::User(user.id),
                "item.end",
                Subject::Id("item", item.id.0),
                detail,
            )
            .event(now, events::item_ended(&item));
            tx.item(item.clone());
            Ok(Decided::Commit(tx, (item, jobs)))
        })?;
        for j in jobs {
            self.place_job(j).await?;
        }
        Ok(self.store.item(item.id).await?.unwrap_or(item))
    }

    /// Deletes a New queue item of a process granted to `user` (the item
    /// state machine's Delete; UiPath's `DeleteBulk`): one with a job that
    /// has not started has the job canceled, one waiting for its trigger
    /// leaves the line. An item being worked or ended is refused.
    pub async fn delete_queue_item(&self, user: &User, id: QueueItemId) -> Result<QueueItem> {
        let item = self.queue_item_by_id(user, id).await?;
        queue::apply(&mut item.clone(), ItemEvent::Delete, self.now())?;
        if let Some(job) = item.job {
            let job = self
                .store
                .job(job)
                .await?
                .ok_or_else(|| Error::NotFound(Entity::Job, job.to_string()))?;
            self.stop_job(user, job.key, crate::job::StopStrategy::SoftStop).await?;
            return self
                .store
                .item(id)
                .await?
                .ok_or_else(|| Error::NotFound(Entity::QueueItem, id.to_string()));
        }
        decided!(self, |_attempt| {
            let mut item = self
                .store
                .item(id)
                .await?
                .ok_or_else(|| Error::NotFound(Entity::QueueItem, id.to_string()))?;
            let mut p = self
                .store
                .process(item.process)
                .await?
                .ok_or_else(|| Error::NotFound(Entity::Process, item.process.to_string()))?;
            let now = self.now();
            if item.job.is_some() {
                return Err(Error::InvalidArgument(format!(
                    "queue item {id} got a job meanwhile; delete it again"
                )));
            }
            queue::apply(&mut item, ItemEvent::Delete, now)?;
            let mut tx = Tx::default();
            tx.count(&mut p, Delta::ITEM_TAKEN, self.today(now)).audit(
                now,
                Actor::User(user.id),
                "item.delete",
                Subject::Id("item", item.id.0),
                String::new(),
            );
            let rank = crate::trigger::rank(p.id.0, item.priority, item.id);
            if let Some(mut w) = self.store.get::<Waiting>(rank).await?
                && w.process.is_some()
            {
                w.process = None;
                w.version += 1;
                let mut state = self.trigger_state(p.id).await?;
                state.waiting = state.waiting.saturating_sub(1);
                state.version += 1;
                tx.record(&w)?.record(&state)?;
            }
            tx.item(item.clone());
            Ok(Decided::Commit(
                tx,
                QueueItem {
                    version: item.version + 1,
                    ..item
                },
            ))
        })
    }

    /// A queue item of a process granted to `user` (or any, with OperateAllJobs).
    pub async fn queue_item_by_id(&self, user: &User, id: QueueItemId) -> Result<QueueItem> {
        let item = self
            .store
            .item(id)
            .await?
            .ok_or_else(|| Error::NotFound(Entity::QueueItem, id.to_string()))?;
        if !self
            .has_permission(Actor::User(user.id), Permission::OperateAllJobs)
            .await?
        {
            self.require_grant(user, item.process).await?;
        }
        Ok(item)
    }

    /// An item `user` works as a transaction: InProgress without a job, of
    /// a process granted to `user`.
    async fn transaction(&self, user: &User, id: QueueItemId) -> Result<QueueItem> {
        let item = self
            .store
            .item(id)
            .await?
            .ok_or_else(|| Error::NotFound(Entity::QueueItem, id.to_string()))?;
        self.require_grant(user, item.process).await?;
        if item.state != ItemState::InProgress || item.job.is_some() {
            return Err(Error::InvalidArgument(format!(
                "queue item {id} is not a transaction in progress"
            )));
        }
        Ok(item)
    }
}
