//! The job state machine (DESIGN §3): pure, total, and the only place job rules live.
//!
//! | state \ event | Dispatch | Finish 0 | Finish 1 | Finish 2 | Stop soft | Stop kill | RobotLost | Expire | Checkpoint | Ready |
//! |---|---|---|---|---|---|---|---|---|---|---|
//! | Pending (ready) | Running | ✗ | ✗ | ✗ | Canceled | Canceled | ✗ | Faulted | ✗ | ✗ |
//! | Pending (backing off) | ✗ | ✗ | ✗ | ✗ | Canceled | Canceled | ✗ | Faulted | ✗ | Pending (ready) |
//! | Running | ✗ | Successful | Stopped | Pending (retry) or Faulted | Stopping + Stop | Stopped* + Stop | Pending (attempt+1) or Faulted | Faulted* + Stop | Running | ✗ |
//! | Stopping | ✗ | Successful | Stopped | Stopped | Stopping | Stopped* + Stop | Stopped | Faulted* + Stop | Stopping | ✗ |
//! | terminal | ✗ | † | † | † | ✗ | ✗ | ✗ | ✗ | ✗ | ✗ |
//!
//! `*` forced: the job ends without the robot's word; the robot stays busy until it
//! confirms (its late finish is accepted whatever it says).
//! `†` a finish repeating the accepted one, or any finish of a forced job from its
//! robot, is accepted and changes nothing; any other finish is rejected.
//!
//! Finish 2 (Failed) is retried with back-off when the error is an application
//! error and attempts remain; business errors ([`ErrorClass::Business`]) are not.
//! Robot loss is retried at once (the job goes to another robot with its
//! checkpoint) while attempts remain. Attempts = 1 + `RetryPolicy::max_retries`.

use std::sync::Arc;

use serde_json::Value;

use crate::error::{AnyState, Entity, Rejected};
use crate::ids::{Key, RobotId};
use crate::model::{Job, JobState, JobStep, RetryPolicy};
use crate::time::Timestamp;

/// Seed 001 EnumRunInstanceFinishStatus.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum FinishStatus {
    /// 0: the run succeeded.
    Success = 0,
    /// 1: the run was cancelled (stopped).
    Cancelled = 1,
    /// 2: the run failed.
    Failed = 2,
}

impl FinishStatus {
    /// From seed 001's integer.
    pub fn from_int(v: i64) -> Option<FinishStatus> {
        match v {
            0 => Some(FinishStatus::Success),
            1 => Some(FinishStatus::Cancelled),
            2 => Some(FinishStatus::Failed),
            _ => None,
        }
    }
    fn target(self) -> JobState {
        match self {
            FinishStatus::Success => JobState::Successful,
            FinishStatus::Cancelled => JobState::Stopped,
            FinishStatus::Failed => JobState::Faulted,
        }
    }
}

/// How a stop is carried out (UiPath `strategy`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub enum StopStrategy {
    /// Ask the robot to stop; the job is Stopping until the robot confirms.
    #[default]
    SoftStop,
    /// Stop at once: the job is Stopped now and the robot is told to kill the run.
    Kill,
}

/// Whether a failure is worth retrying.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorClass {
    /// The data or the business rule is wrong: retrying gives the same answer.
    Business,
    /// The application or the machine failed: a retry may succeed.
    Application,
}

impl ErrorClass {
    /// Seed 001 `errorCode` 20000–29999 are business errors (an rpa convention);
    /// any other code, or none, is an application error.
    pub fn of(error_code: Option<i32>) -> ErrorClass {
        match error_code {
            Some(20_000..=29_999) => ErrorClass::Business,
            _ => ErrorClass::Application,
        }
    }
}

/// What happened to a job.
#[derive(Debug, Clone, PartialEq)]
pub enum JobEvent {
    /// The scheduler gives it to a robot.
    Dispatch {
        /// The robot.
        robot: RobotId,
        /// The robot's connection.
        connect: Key,
    },
    /// The robot reports the end of the run (seed 001 ReportFinish).
    Finish {
        /// Reporting robot.
        robot: RobotId,
        /// Seed 001 status.
        status: FinishStatus,
        /// Seed 001 `errorCode`.
        error_code: Option<i32>,
        /// Output values (an rpa extension of ReportFinish).
        outputs: Option<Arc<Value>>,
    },
    /// A person (or a ticket) stops it.
    Stop(StopStrategy),
    /// Its robot went silent past the heartbeat timeout, or reconnected without it.
    RobotLost,
    /// Its deadline passed.
    Expire,
    /// The robot saved intermediate state (fail-over resumes from it; `None`
    /// keeps the last), reaching a step of its run if it says which.
    Checkpoint(Option<Arc<Value>>, Option<Box<JobStep>>),
    /// Its retry back-off (or defer-until) is over.
    Ready,
    /// The robot reached a step at which a person decides (`stopTag` 1):
    /// the run pauses, keeping its checkpoint (`None` keeps the last).
    Pause(Option<Arc<Value>>, Box<JobStep>),
    /// The person decided: it runs again, from its checkpoint, with these arguments.
    Resume(Arc<Value>),
    /// A pipeline process's job starts its pipeline run: it runs without a
    /// robot of its own (see [`crate::pipeline`]).
    Delegate,
    /// The pipeline run of such a job ended (or could not start: from Pending).
    Delegated {
        /// Success, Failed (the run faulted or could not start) or Cancelled (stopped).
        status: FinishStatus,
        /// Each step's outputs, by step name.
        outputs: Option<Arc<Value>>,
        /// Why it failed, if it did.
        reason: Option<String>,
    },
}

impl JobEvent {
    fn name(&self) -> &'static str {
        match self {
            JobEvent::Dispatch { .. } => "dispatch",
            JobEvent::Finish { .. } => "finish",
            JobEvent::Stop(_) => "stop",
            JobEvent::RobotLost => "robot lost",
            JobEvent::Expire => "expire",
            JobEvent::Checkpoint(..) => "checkpoint",
            JobEvent::Pause(..) => "pause",
            JobEvent::Resume(_) => "resume",
            JobEvent::Ready => "ready",
            JobEvent::Delegate => "delegate",
            JobEvent::Delegated { .. } => "pipeline end",
        }
    }
}

/// How a job ended, for those who follow it (queue items, tickets).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobEnd {
    /// Successful.
    Succeeded,
    /// Faulted by the robot's failure report.
    Failed(ErrorClass),
    /// Faulted: its robot was lost and no attempt was left.
    Lost,
    /// Faulted: its deadline passed.
    Expired,
    /// Stopped while running.
    Stopped,
    /// Canceled before it started.
    Canceled,
}

/// A job's `maxRunNum` slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Slot {
    /// Unchanged.
    #[default]
    Keep,
    /// The job started running.
    Take,
    /// The job stopped running.
    Free,
}

/// What the engine must do after an accepted transition.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct JobEffects {
    /// The state before.
    pub from: Option<JobState>,
    /// Anything changed (false for accepted repeats).
    pub changed: bool,
    /// Send Stop to the job's robot.
    pub stop_robot: bool,
    /// The job's robot is done with it and may take new work.
    pub release_robot: bool,
    /// `maxRunNum` accounting.
    pub slot: Slot,
    /// Counts towards `maxDayNum`.
    pub succeeded: bool,
    /// It reached a terminal state, this way.
    pub ended: Option<JobEnd>,
    /// It went back to Pending to be tried again.
    pub requeued: bool,
    /// It paused for a person: a ticket must take it.
    pub paused: bool,
}

/// Inputs a transition needs besides the event.
#[derive(Debug, Clone, Copy)]
pub struct JobCtx<'a> {
    /// Now.
    pub now: Timestamp,
    /// The process's retry policy.
    pub retry: &'a RetryPolicy,
    /// Retry failed runs at job level (false for queue jobs: their items are retried instead).
    pub retry_failures: bool,
}

fn reject(job: &Job, ev: &JobEvent) -> Rejected {
    Rejected {
        entity: Entity::Job,
        state: AnyState::Job(job.state),
        event: ev.name(),
    }
}

/// The most step records a job keeps (the oldest go first).
pub const MAX_STEP_RECORDS: usize = 1000;

/// Applies `ev` to `job`. On `Err` the job is unchanged.
pub fn apply(job: &mut Job, ev: JobEvent, ctx: JobCtx<'_>) -> Result<JobEffects, Rejected> {
    use JobState::*;
    let from = job.state;
    let mut fx = JobEffects {
        from: Some(from),
        changed: true,
        ..JobEffects::default()
    };
    let now = ctx.now;
    let own = job.retry.clone();
    let retry = own.as_ref().unwrap_or(ctx.retry);
    let can_retry = job.attempt <= retry.max_retries;
    // With a window, an attempt that expires is tried again while attempts remain.
    let renew = job.window_ms.filter(|_| can_retry);
    match (from, ev) {
        (Pending, JobEvent::Dispatch { robot, connect }) if job.not_before.is_none() => {
            job.state = Running;
            job.robot = Some(robot);
            job.connect = Some(connect);
            job.started_at = Some(now);
            job.forced = false;
            fx.slot = Slot::Take;
        }
        (Pending, JobEvent::Delegate) if job.not_before.is_none() => {
            job.state = Running;
            job.started_at = Some(now);
            fx.slot = Slot::Take;
        }
        (Pending, JobEvent::Delegated { reason, .. }) => {
            end(
                job,
                Faulted,
                now,
                reason.as_deref().unwrap_or("its pipeline could not start"),
            );
            fx.ended = Some(JobEnd::Failed(ErrorClass::Business));
        }
        (
            Running | Stopping,
            JobEvent::Delegated {
                status,
                outputs,
                reason,
            },
        ) if job.robot.is_none() => {
            fx.slot = Slot::Free;
            job.outputs = outputs;
            match status {
                FinishStatus::Success => {
                    end(job, Successful, now, "");
                    job.reason = None;
                    fx.succeeded = true;
                    fx.ended = Some(JobEnd::Succeeded);
                }
                FinishStatus::Failed => {
                    end(
                        job,
                        Faulted,
                        now,
                        reason.as_deref().unwrap_or("its pipeline run faulted"),
                    );
                    fx.ended = Some(JobEnd::Failed(ErrorClass::Business));
                }
                FinishStatus::Cancelled => {
                    end(job, Stopped, now, "its pipeline run was stopped");
                    fx.ended = Some(JobEnd::Stopped);
                }
            }
        }
        (Pending, JobEvent::Ready) if job.not_before.is_some() => {
            job.not_before = None;
        }
        (Pending, JobEvent::Stop(_)) => {
            end(job, Canceled, now, "canceled before it started");
            fx.ended = Some(JobEnd::Canceled);
        }
        (Pending, JobEvent::Expire) if renew.is_some() => {
            let cool_off = retry.backoff(job.attempt + 1);
            requeue(job, Some(now.plus_ms(cool_off)));
            job.deadline = renew.map(|w| now.plus_ms(cool_off).plus_ms(w));
            job.reason = Some("expired while queued; retrying".into());
            fx.requeued = true;
        }
        (Pending, JobEvent::Expire) => {
            end(job, Faulted, now, "expired before it started");
            fx.ended = Some(JobEnd::Expired);
        }
        (
            Running | Stopping,
            JobEvent::Finish {
                robot,
                status,
                error_code,
                outputs,
            },
        ) if job.robot == Some(robot) => {
            fx.release_robot = true;
            fx.slot = Slot::Free;
            job.outputs = outputs.or(job.outputs.take());
            job.error_code = error_code;
            let class = ErrorClass::of(error_code);
            match (from, status) {
                (_, FinishStatus::Success) => {
                    end(job, Successful, now, "");
                    job.reason = None;
                    fx.succeeded = true;
                    fx.ended = Some(JobEnd::Succeeded);
                }
                (Running, FinishStatus::Failed)
                    if ctx.retry_failures && class == ErrorClass::Application && can_retry =>
                {
                    requeue(job, Some(now.plus_ms(retry.backoff(job.attempt + 1))));
                    job.reason = Some("robot reported a failure; retrying".into());
                    fx.requeued = true;
                }
                (Running, FinishStatus::Failed) => {
                    end(job, Faulted, now, "robot reported a failure");
                    fx.ended = Some(JobEnd::Failed(class));
                }
                _ => {
                    end(job, Stopped, now, "stopped");
                    fx.ended = Some(JobEnd::Stopped);
                }
            }
        }
        (state, JobEvent::Finish { robot, status, .. })
            if state.is_terminal() && job.robot == Some(robot) && (job.forced || status.target() == state) =>
        {
            // A repeat of the accepted finish, or the late word of a robot whose
            // job was ended without it: harmless, and the robot is free again.
            fx.changed = false;
            fx.release_robot = job.forced;
        }
        (Running, JobEvent::Stop(StopStrategy::SoftStop)) => {
            job.state = Stopping;
            fx.stop_robot = true;
        }
        (Stopping, JobEvent::Stop(StopStrategy::SoftStop)) => {
            fx.changed = false;
        }
        (Running | Stopping, JobEvent::Stop(StopStrategy::Kill)) => {
            end(job, Stopped, now, "killed");
            job.forced = true;
            fx.stop_robot = true;
            fx.slot = Slot::Free;
            fx.ended = Some(JobEnd::Stopped);
        }
        (Running, JobEvent::RobotLost) => {
            fx.slot = Slot::Free;
            fx.release_robot = true;
            if can_retry {
                requeue(job, None);
                job.reason = Some("robot lost; resuming on another robot".into());
                fx.requeued = true;
            } else {
                end(job, Faulted, now, "robot lost and no attempt left");
                fx.ended = Some(JobEnd::Lost);
            }
        }
        (Stopping, JobEvent::RobotLost) => {
            end(job, Stopped, now, "robot lost while stopping");
            fx.slot = Slot::Free;
            fx.release_robot = true;
            fx.ended = Some(JobEnd::Stopped);
        }
        (Running, JobEvent::Expire) if renew.is_some() => {
            let cool_off = retry.backoff(job.attempt + 1);
            requeue(job, Some(now.plus_ms(cool_off)));
            job.deadline = renew.map(|w| now.plus_ms(cool_off).plus_ms(w));
            job.reason = Some("expired while running; retrying".into());
            fx.stop_robot = true;
            fx.release_robot = true;
            fx.slot = Slot::Free;
            fx.requeued = true;
        }
        (Running | Stopping, JobEvent::Expire) => {
            end(job, Faulted, now, "expired");
            job.forced = true;
            fx.stop_robot = true;
            fx.slot = Slot::Free;
            fx.ended = Some(JobEnd::Expired);
        }
        (Running, JobEvent::Pause(data, mut step)) => {
            if data.is_some() {
                job.checkpoint = data;
            }
            step.pause = true;
            job.steps = step.step;
            if job.step_records.len() == MAX_STEP_RECORDS {
                job.step_records.remove(0);
            }
            job.step_records.push(*step);
            job.state = Suspended;
            job.connect = None;
            job.deadline = None;
            job.reason = Some("waiting for a person".into());
            fx.release_robot = true;
            fx.slot = Slot::Free;
            fx.paused = true;
        }
        (Suspended, JobEvent::Resume(arguments)) => {
            job.state = Pending;
            job.arguments = arguments;
            job.not_before = None;
            job.reason = None;
        }
        (Suspended, JobEvent::Stop(_)) => {
            end(job, Stopped, now, "stopped while waiting for a person");
            fx.ended = Some(JobEnd::Stopped);
        }
        (Running | Stopping, JobEvent::Checkpoint(data, step)) => {
            if data.is_some() {
                job.checkpoint = data;
            }
            match step {
                Some(s) => {
                    job.steps = s.step;
                    if job.step_records.len() == MAX_STEP_RECORDS {
                        job.step_records.remove(0);
                    }
                    job.step_records.push(*s);
                }
                None => job.steps += 1,
            }
        }
        (_, ev) => return Err(reject(job, &ev)),
    }
    Ok(fx)
}

fn end(job: &mut Job, state: JobState, now: Timestamp, why: &str) {
    job.state = state;
    job.ended_at = Some(now);
    job.not_before = None;
    if !why.is_empty() {
        job.reason = Some(why.into());
    }
}

fn requeue(job: &mut Job, not_before: Option<Timestamp>) {
    job.state = JobState::Pending;
    job.attempt += 1;
    job.connect = None;
    job.not_before = not_before;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::*;
    use crate::model::JobState::*;

    fn job() -> Job {
        crate::conformance::sample_job(1, ProcessId(1), 0)
    }

    const R: RobotId = RobotId(9);
    const POLICY: RetryPolicy = RetryPolicy {
        max_retries: 1,
        backoff_ms: 1000,
        backoff_max_ms: 8000,
    };

    fn ctx() -> JobCtx<'static> {
        JobCtx {
            now: Timestamp(100),
            retry: &POLICY,
            retry_failures: true,
        }
    }

    fn go(j: &mut Job, ev: JobEvent) -> Result<JobEffects, Rejected> {
        apply(j, ev, ctx())
    }

    fn dispatch() -> JobEvent {
        JobEvent::Dispatch {
            robot: R,
            connect: Key([2; 16]),
        }
    }

    fn finish(status: FinishStatus, code: Option<i32>) -> JobEvent {
        JobEvent::Finish {
            robot: R,
            status,
            error_code: code,
            outputs: None,
        }
    }

    fn running() -> Job {
        let mut j = job();
        go(&mut j, dispatch()).unwrap();
        j
    }

    #[test]
    fn dispatch_runs_a_ready_job_and_takes_a_slot() {
        let mut j = job();
        let fx = go(&mut j, dispatch()).unwrap();
        assert_eq!(j.state, Running);
        assert_eq!(j.robot, Some(R));
        assert_eq!(fx.slot, Slot::Take);
    }

    #[test]
    fn finish_statuses_map_to_seed_001() {
        for (status, want, end) in [
            (FinishStatus::Success, Successful, JobEnd::Succeeded),
            (FinishStatus::Cancelled, Stopped, JobEnd::Stopped),
        ] {
            let mut j = running();
            let fx = go(&mut j, finish(status, None)).unwrap();
            assert_eq!(j.state, want);
            assert_eq!(fx.ended, Some(end));
            assert!(fx.release_robot);
            assert_eq!(fx.slot, Slot::Free);
        }
    }

    #[test]
    fn application_failure_is_retried_with_backoff_then_faults() {
        let mut j = running();
        let fx = go(&mut j, finish(FinishStatus::Failed, Some(500))).unwrap();
        assert!(fx.requeued);
        assert_eq!((j.state, j.attempt), (Pending, 2));
        assert_eq!(j.not_before, Some(Timestamp(1100)));
        assert!(go(&mut j, dispatch()).is_err(), "not dispatched while backing off");
        go(&mut j, JobEvent::Ready).unwrap();
        go(&mut j, dispatch()).unwrap();
        let fx = go(&mut j, finish(FinishStatus::Failed, None)).unwrap();
        assert_eq!(j.state, Faulted);
        assert_eq!(fx.ended, Some(JobEnd::Failed(ErrorClass::Application)));
    }

    #[test]
    fn business_failure_is_not_retried() {
        let mut j = running();
        let fx = go(&mut j, finish(FinishStatus::Failed, Some(20_001))).unwrap();
        assert_eq!(j.state, Faulted);
        assert_eq!(fx.ended, Some(JobEnd::Failed(ErrorClass::Business)));
    }

    #[test]
    fn queue_jobs_do_not_retry_failures_themselves() {
        let mut j = running();
        let c = JobCtx {
            retry_failures: false,
            ..ctx()
        };
        apply(&mut j, finish(FinishStatus::Failed, None), c).unwrap();
        assert_eq!(j.state, Faulted);
    }

    #[test]
    fn stop_before_start_cancels() {
        for s in [StopStrategy::SoftStop, StopStrategy::Kill] {
            let mut j = job();
            let fx = go(&mut j, JobEvent::Stop(s)).unwrap();
            assert_eq!(j.state, Canceled);
            assert!(!fx.stop_robot);
        }
    }

    #[test]
    fn soft_stop_waits_for_the_robot() {
        let mut j = running();
        let fx = go(&mut j, JobEvent::Stop(StopStrategy::SoftStop)).unwrap();
        assert_eq!(j.state, Stopping);
        assert!(fx.stop_robot);
        assert_eq!(fx.slot, Slot::Keep);
        assert!(!go(&mut j, JobEvent::Stop(StopStrategy::SoftStop)).unwrap().changed);
        go(&mut j, finish(FinishStatus::Cancelled, None)).unwrap();
        assert_eq!(j.state, Stopped);
    }

    #[test]
    fn stopping_job_that_fails_ends_stopped_and_success_wins() {
        let mut j = running();
        go(&mut j, JobEvent::Stop(StopStrategy::SoftStop)).unwrap();
        go(&mut j, finish(FinishStatus::Failed, None)).unwrap();
        assert_eq!(j.state, Stopped);
        let mut j = running();
        go(&mut j, JobEvent::Stop(StopStrategy::SoftStop)).unwrap();
        go(&mut j, finish(FinishStatus::Success, None)).unwrap();
        assert_eq!(j.state, Successful);
    }

    #[test]
    fn kill_ends_now_and_accepts_the_robots_late_word() {
        let mut j = running();
        let fx = go(&mut j, JobEvent::Stop(StopStrategy::Kill)).unwrap();
        assert_eq!(j.state, Stopped);
        assert!(fx.stop_robot && !fx.release_robot);
        let late = go(&mut j, finish(FinishStatus::Success, None)).unwrap();
        assert!(!late.changed && late.release_robot);
        assert_eq!(j.state, Stopped);
    }

    #[test]
    fn steps_are_kept_in_order_up_to_a_bound_and_checkpoints_without_one_count() {
        let step = |n: u32| JobStep {
            id: i64::from(n) + 100,
            step: n,
            name: None,
            task: i64::from(n),
            at: Timestamp(0),
            pause: false,
        };
        let mut j = running();
        let data = Some(Arc::new(serde_json::json!({})));
        go(&mut j, JobEvent::Checkpoint(data.clone(), None)).unwrap();
        assert_eq!(
            (j.steps, j.step_records.len()),
            (1, 0),
            "a checkpoint without a step counts"
        );
        for n in 1..=MAX_STEP_RECORDS as u32 + 2 {
            go(&mut j, JobEvent::Checkpoint(data.clone(), Some(Box::new(step(n))))).unwrap();
        }
        assert_eq!(j.steps, MAX_STEP_RECORDS as u32 + 2);
        assert_eq!(j.step_records.len(), MAX_STEP_RECORDS, "bounded");
        assert_eq!(j.step_records.first().map(|s| s.step), Some(3), "the oldest go first");
        go(&mut j, finish(FinishStatus::Success, None)).unwrap();
        assert!(
            go(&mut j, JobEvent::Checkpoint(data, Some(Box::new(step(9))))).is_err(),
            "no step after the end"
        );
    }

    #[test]
    fn robot_loss_fails_over_with_checkpoint_then_faults() {
        let mut j = running();
        go(
            &mut j,
            JobEvent::Checkpoint(Some(Arc::new(serde_json::json!({"row": 5}))), None),
        )
        .unwrap();
        let fx = go(&mut j, JobEvent::RobotLost).unwrap();
        assert!(fx.requeued && fx.release_robot);
        assert_eq!((j.state, j.attempt, j.not_before), (Pending, 2, None));
        assert_eq!(j.checkpoint.as_deref(), Some(&serde_json::json!({"row": 5})));
        go(&mut j, dispatch()).unwrap();
        let fx = go(&mut j, JobEvent::RobotLost).unwrap();
        assert_eq!(j.state, Faulted);
        assert_eq!(fx.ended, Some(JobEnd::Lost));
    }

    #[test]
    fn expiration_faults_and_stops_the_robot() {
        let mut j = running();
        let fx = go(&mut j, JobEvent::Expire).unwrap();
        assert_eq!(j.state, Faulted);
        assert!(fx.stop_robot && j.forced);
        let mut p = job();
        let fx = go(&mut p, JobEvent::Expire).unwrap();
        assert_eq!(p.state, Faulted);
        assert!(!fx.stop_robot);
    }

    #[test]
    fn repeated_finish_is_harmless_and_a_different_one_is_rejected() {
        let mut j = running();
        go(&mut j, finish(FinishStatus::Success, None)).unwrap();
        let again = go(&mut j, finish(FinishStatus::Success, None)).unwrap();
        assert!(!again.changed && !again.release_robot);
        let before = j.clone();
        assert!(go(&mut j, finish(FinishStatus::Failed, None)).is_err());
        assert_eq!(j, before);
    }

    #[test]
    fn finish_from_another_robot_is_rejected() {
        let mut j = running();
        let ev = JobEvent::Finish {
            robot: RobotId(1),
            status: FinishStatus::Success,
            error_code: None,
            outputs: None,
        };
        assert!(go(&mut j, ev).is_err());
        assert_eq!(j.state, Running);
    }

    #[test]
    fn every_illegal_event_changes_nothing() {
        let events = || {
            vec![
                dispatch(),
                finish(FinishStatus::Success, None),
                finish(FinishStatus::Cancelled, None),
                finish(FinishStatus::Failed, None),
                JobEvent::Stop(StopStrategy::SoftStop),
                JobEvent::Stop(StopStrategy::Kill),
                JobEvent::RobotLost,
                JobEvent::Expire,
                JobEvent::Checkpoint(Some(Arc::new(serde_json::json!(1))), None),
                JobEvent::Ready,
            ]
        };
        let mut starts = vec![job(), running()];
        let mut stopping = running();
        go(&mut stopping, JobEvent::Stop(StopStrategy::SoftStop)).unwrap();
        starts.push(stopping);
        for terminal in [Successful, Faulted, Stopped, Canceled] {
            let mut t = running();
            t.state = terminal;
            starts.push(t);
        }
        let mut rejected = 0;
        for start in starts {
            for ev in events() {
                let mut j = start.clone();
                if go(&mut j, ev).is_err() {
                    rejected += 1;
                    assert_eq!(j, start);
                }
            }
        }
        assert!(rejected > 30, "the table rejects most events of terminal states");
    }
}
