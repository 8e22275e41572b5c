//! The queue item state machine (DESIGN §3).
//!
//! | state \ event | Start, Take | Succeed | Fail | Abandon | Delete | Retry |
//! |---|---|---|---|---|---|---|
//! | New | InProgress | ✗ | Faulted | ✗ | Deleted | ✗ |
//! | InProgress | ✗ | Successful | Faulted | Abandoned | ✗ | ✗ |
//! | Faulted | ✗ | ✗ | ✗ | ✗ | ✗ | Retried (+ a new New item) |
//! | Successful, Retried, Abandoned, Deleted | ✗ | ✗ | ✗ | ✗ | ✗ | ✗ |
//!
//! `Take` is a transaction's start (UiPath's `StartTransaction`): the
//! caller works the item without a job; it ends the item itself.
//!
//! An item is worked by exactly one job; [`on_job_end`] says what the job's
//! end means for its item. A Faulted item is retried (a new item with
//! `retry_count + 1`) when the failure was an application error and the
//! process's retry policy allows.

use crate::error::{AnyState, Entity, Rejected};
use crate::ids::JobId;
use crate::job::{ErrorClass, JobEnd};
use crate::model::{ItemState, QueueItem, RetryPolicy};
use crate::time::Timestamp;

/// What happened to a queue item.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ItemEvent {
    /// Its job started on a robot.
    Start(JobId),
    /// Taken by a transaction (a caller works it without a job of its own).
    Take,
    /// Its job succeeded.
    Succeed,
    /// Its job failed (or expired, or was stopped).
    Fail,
    /// Its robot was lost and no attempt is left.
    Abandon,
    /// Removed before work started.
    Delete,
    /// Replaced by a new attempt.
    Retry,
}

impl ItemEvent {
    fn name(self) -> &'static str {
        match self {
            ItemEvent::Start(_) => "start",
            ItemEvent::Take => "take",
            ItemEvent::Succeed => "succeed",
            ItemEvent::Fail => "fail",
            ItemEvent::Abandon => "abandon",
            ItemEvent::Delete => "delete",
            ItemEvent::Retry => "retry",
        }
    }
}

/// Applies `ev` to `item`. On `Err` the item is unchanged.
pub fn apply(item: &mut QueueItem, ev: ItemEvent, now: Timestamp) -> Result<(), Rejected> {
    use ItemState::*;
    let to = match (item.state, ev) {
        (New, ItemEvent::Start(job)) => {
            item.job = Some(job);
            InProgress
        }
        (New, ItemEvent::Take) => InProgress,
        (InProgress, ItemEvent::Succeed) => Successful,
        (New | InProgress, ItemEvent::Fail) => Faulted,
        (InProgress, ItemEvent::Abandon) => Abandoned,
        (New, ItemEvent::Delete) => Deleted,
        (Faulted, ItemEvent::Retry) => Retried,
        (state, ev) => {
            return Err(Rejected {
                entity: Entity::QueueItem,
                state: AnyState::Item(state),
                event: ev.name(),
            });
        }
    };
    item.state = to;
    if to != InProgress {
        item.ended_at = Some(now);
    }
    Ok(())
}

/// The item events a job's end implies, and whether a new attempt of the item follows.
pub fn on_job_end(item: &QueueItem, end: JobEnd, policy: &RetryPolicy) -> (ItemEvent, bool) {
    let retry = item.retry_count < policy.max_retries;
    match end {
        JobEnd::Succeeded => (ItemEvent::Succeed, false),
        JobEnd::Failed(ErrorClass::Application) => (ItemEvent::Fail, retry),
        JobEnd::Failed(ErrorClass::Business) | JobEnd::Expired | JobEnd::Stopped => (ItemEvent::Fail, false),
        JobEnd::Lost => (ItemEvent::Abandon, false),
        JobEnd::Canceled if item.state == ItemState::New => (ItemEvent::Delete, false),
        JobEnd::Canceled => (ItemEvent::Fail, false),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::*;
    use crate::model::ItemState::*;

    fn item(state: ItemState) -> QueueItem {
        QueueItem {
            state,
            ..crate::conformance::sample_item(1, ProcessId(1))
        }
    }

    #[test]
    fn legal_transitions() {
        let cases = [
            (New, ItemEvent::Start(JobId(1)), InProgress),
            (New, ItemEvent::Delete, Deleted),
            (New, ItemEvent::Fail, Faulted),
            (InProgress, ItemEvent::Succeed, Successful),
            (InProgress, ItemEvent::Fail, Faulted),
            (InProgress, ItemEvent::Abandon, Abandoned),
            (Faulted, ItemEvent::Retry, Retried),
        ];
        for (from, ev, to) in cases {
            let mut i = item(from);
            apply(&mut i, ev, Timestamp(5)).unwrap();
            assert_eq!(i.state, to, "{from:?} + {ev:?}");
        }
    }

    #[test]
    fn illegal_transitions_change_nothing() {
        let events = [
            ItemEvent::Start(JobId(1)),
            ItemEvent::Succeed,
            ItemEvent::Fail,
            ItemEvent::Abandon,
            ItemEvent::Delete,
            ItemEvent::Retry,
        ];
        let mut rejected = 0;
        for from in [New, InProgress, Successful, Faulted, Retried, Abandoned, Deleted] {
            for ev in events {
                let start = item(from);
                let mut i = start.clone();
                if apply(&mut i, ev, Timestamp(5)).is_err() {
                    assert_eq!(i, start);
                    rejected += 1;
                }
            }
        }
        assert_eq!(rejected, 7 * 6 - 7);
    }

    #[test]
    fn job_ends_map_to_item_outcomes() {
        let p = RetryPolicy {
            max_retries: 1,
            ..RetryPolicy::default()
        };
        let busy = item(InProgress);
        assert_eq!(on_job_end(&busy, JobEnd::Succeeded, &p), (ItemEvent::Succeed, false));
        assert_eq!(
            on_job_end(&busy, JobEnd::Failed(ErrorClass::Application), &p),
            (ItemEvent::Fail, true)
        );
        assert_eq!(
            on_job_end(&busy, JobEnd::Failed(ErrorClass::Business), &p),
            (ItemEvent::Fail, false)
        );
        assert_eq!(on_job_end(&busy, JobEnd::Lost, &p), (ItemEvent::Abandon, false));
        assert_eq!(on_job_end(&item(New), JobEnd::Canceled, &p), (ItemEvent::Delete, false));
        let mut last = item(InProgress);
        last.retry_count = 1;
        assert_eq!(
            on_job_end(&last, JobEnd::Failed(ErrorClass::Application), &p),
            (ItemEvent::Fail, false)
        );
    }
}
