//! Processes, jobs and queue items: the seed 000 business operations, and
//! [`Engine::transition`], which carries a job event and everything it
//! implies for the robot, the process counters and the queue item in one commit.

use std::sync::Arc;

use serde_json::Value;

use super::triggers::Fresh;
use super::{Decided, Delta, Engine, Tx};
use crate::arguments;
use crate::audit::{self, Subject};
use crate::error::{Entity, Error, Result, StoreError};
use crate::events;
use crate::ids::*;
use crate::job::{self, JobCtx, JobEffects, JobEvent, Slot, StopStrategy};
use crate::limits;
use crate::model::*;
use crate::queue::{self, ItemEvent};
use crate::robot::{self, RobotEvent};
use crate::store::People as _;
use crate::store::{JobQuery, Store, is_idle};
use crate::time::{DAY_MS, Timestamp};
use crate::transport::Command;

/// Seed 000 §3.7 query parameters.
#[derive(Debug, Clone, Default)]
pub struct JobQueryParams {
    /// Only jobs in one of these states (empty: every state).
    pub states: Vec<JobState>,
    /// Window start (with `end`; at most one month apart).
    pub start: Option<Timestamp>,
    /// Window end.
    pub end: Option<Timestamp>,
}

/// A queue item to add (seed 000 §3.6 plus the orchestrator's item options).
#[derive(Debug, Clone, Default)]
pub struct NewQueueItem {
    /// Content: free-form data (a JSON object, UiPath's `SpecificContent`),
    /// validated only when the queue process declares arguments: they are
    /// then the schema of its items.
    pub content: Value,
    /// Unique reference within the process.
    pub reference: Option<String>,
    /// Priority (default: the process's).
    pub priority: Option<i32>,
    /// Not worked before then.
    pub defer_until: Option<Timestamp>,
    /// Faulted if not done by then.
    pub deadline: Option<Timestamp>,
    /// At risk of missing its SLA from then (shown, not acted on).
    pub risk_sla: Option<Timestamp>,
    /// Its progress so far (UiPath's `Progress`).
    pub progress: Option<String>,
}

/// What [`Engine::transition`] did, for follow-up dispatch.
pub(crate) struct Transitioned {
    pub job: Job,
    pub fx: JobEffects,
    /// A robot let go and left idle (not already given its next job).
    pub released: Option<RobotId>,
    /// Jobs this commit created (a retried item's, a trigger's, a pipeline's).
    pub new_jobs: Vec<JobId>,
    /// Jobs to stop after it (a pipeline run halted).
    pub stop_jobs: Vec<JobId>,
    /// A pipeline process whose job this commit ended by its run's end.
    pub freed_pipeline_slot: Option<ProcessId>,
}

impl<S: Store> Engine<S> {
    // -------------------------------------------------------------- processes

    /// Creates a process.
    pub async fn create_process(&self, actor: Actor, spec: ProcessSpec) -> Result<Process> {
        self.require(actor, Permission::ManageProcesses).await?;
        check_spec(&spec)?;
        let now = self.now();
        let p = self.new_process(spec, now).await?;
        let mut tx = Tx::default();
        tx.process(p.clone()).audit(
            now,
            actor,
            "process.create",
            Subject::Id("process", p.id.0),
            p.spec.name.clone(),
        );
        self.commit(tx).await?;
        Ok(Process { version: 1, ..p })
    }

    /// A process not yet written: a fresh id and key, no counts.
    pub(super) async fn new_process(&self, spec: ProcessSpec, now: Timestamp) -> Result<Process> {
        Ok(Process {
            id: ProcessId(self.next_id(IdKind::Process).await?),
            key: self.new_key(),
            version: 0,
            spec: Arc::new(spec),
            running: 0,
            day: self.today(now),
            day_successes: 0,
            pending_items: 0,
            created_at: now,
        })
    }

    /// Replaces a process's definition (new version, new package, new limits).
    pub async fn update_process(&self, actor: Actor, key: Key, spec: ProcessSpec) -> Result<Process> {
        self.require(actor, Permission::ManageProcesses).await?;
        check_spec(&spec)?;
        let spec = Arc::new(spec);
        let p = decided!(self, |_attempt| {
            let mut p = self.process_by_key(key).await?;
            p.spec = spec.clone();
            let mut tx = Tx::default();
            tx.process(p.clone()).audit(
                self.now(),
                actor,
                "process.update",
                Subject::Id("process", p.id.0),
                format!("version {}", p.spec.version),
            );
            let p = Process {
                version: p.version + 1,
                ..p
            };
            Ok(Decided::Commit(tx, p))
        })?;
        // A trigger loosened or removed may let waiting items start.
        self.run_trigger(p.id).await?;
        Ok(p)
    }

    /// All processes (administration).
    pub async fn processes(&self) -> Result<Vec<Process>> {
        Ok(self.store.processes().await?)
    }

    /// Seed 000 §3.2: a process granted to `user`, with `currentRunNum` in `running`.
    pub async fn query_process(&self, user: &User, key: Key) -> Result<Process> {
        let p = self.process_by_key(key).await?;
        self.require_grant(user, p.id).await?;
        Ok(p)
    }

    pub(super) async fn require_grant(&self, user: &User, process: ProcessId) -> Result<()> {
        let by_folder =
            !user.folders.is_empty() && self.store.process(process).await?.is_some_and(|p| user.granted(&p));
        if user.grants.contains(&process)
            || by_folder
            || self
                .has_permission(Actor::User(user.id), Permission::OperateAllJobs)
                .await?
        {
            return Ok(());
        }
        let mut tx = Tx::default();
        tx.audit(
            self.now(),
            Actor::User(user.id),
            "permission.denied",
            Subject::Id("process", process.0),
            String::new(),
        );
        Err(self
            .record_failure(
                tx,
                Error::PermissionDenied("the process is not granted to this user".into()),
            )
            .await)
    }

    // ------------------------------------------------------------------- jobs

    /// Seed 000 §3.3: starts a job of a process granted to `user`.
    ///
    /// The job waits Pending while the process is at `maxRunNum` (DESIGN §7);
    /// it is refused once today's successful runs reached `maxDayNum`.
    pub async fn start_job(&self, user: &User, process: Key, params: &Value) -> Result<Job> {
        self.start_job_on(user, process, params, None).await
    }

    /// [`Engine::start_job`], the job pinned to `robot` when one is given
    /// (UiPath's `Specific` strategy): only that robot runs it, and it waits
    /// for that robot. The robot must meet the process's requirements.
    pub async fn start_job_on(&self, user: &User, process: Key, params: &Value, robot: Option<RobotId>) -> Result<Job> {
        let p = self.process_by_key(process).await?;
        self.require_grant(user, p.id).await?;
        if p.spec.process_type == ProcessType::Queue {
            return Err(Error::InvalidArgument(
                "a Queue process is started by adding queue items (addQueueItem)".into(),
            ));
        }
        let args = arguments::validate_shared(&p.spec, params)?;
        let now = self.now();
        limits::may_start(&p, self.today(now)).map_err(Error::Limit)?;
        if let Some(r) = robot {
            let found = self
                .store
                .robot(r)
                .await?
                .ok_or_else(|| Error::NotFound(Entity::Robot, r.to_string()))?;
            if !found.can_run(&p.spec) {
                return Err(Error::InvalidArgument(format!(
                    "robot {} does not meet the process's requirements",
                    found.code
                )));
            }
        }
        let mut job = self.new_job(&p, user, args, None, now, None, None).await?;
        job.pinned = robot;
        let mut detail = audit::id_text("process", p.id.0);
        if let Some(r) = robot {
            detail.push(' ');
            audit::push_id(&mut detail, "robot", r.0);
        }
        // The commit only adds the new job: a refusal is never about the job
        // (a group of commits that two nodes' writers deadlocked on), so it
        // is made again.
        decided!(self, |_attempt| {
            let mut tx = Tx::default();
            tx.job(job.clone()).audit(
                now,
                Actor::User(user.id),
                "job.start",
                Subject::Id("job", job.id.0),
                detail.clone(),
            );
            Ok(Decided::Commit(tx, ()))
        })?;
        // Placed here or, a moment sooner, by another path (a robot asking
        // for work, the timer's dispatch round): either way the answer is
        // the job as it stands now.
        self.place_job(job.id).await?;
        match self.store.job(job.id).await? {
            Some(now) => Ok(now),
            None => Ok(Job {
                version: job.version + 1,
                ..job
            }),
        }
    }

    #[allow(clippy::too_many_arguments)]
    pub(super) async fn new_job(
        &self,
        p: &Process,
        user: &User,
        args: Arc<Value>,
        item: Option<&QueueItem>,
        now: Timestamp,
        not_before: Option<Timestamp>,
        deadline: Option<Timestamp>,
    ) -> Result<Job> {
        let expire = p.spec.expiration_ms.map(|ms| now.plus_ms(ms));
        let id = JobId(self.next_id(IdKind::Job).await?);
        let (key, job_number) = self.key_and_number(now);
        Ok(Job {
            id,
            key,
            version: 0,
            process: p.id,
            user: user.id,
            user_name: user.name.as_str().into(),
            state: JobState::Pending,
            priority: item.map_or(p.spec.priority, |i| i.priority),
            arguments: args,
            queue_item: item.map(|i| i.id),
            robot: None,
            connect: None,
            attempt: 1,
            not_before: not_before.filter(|t| *t > now),
            deadline: match (expire, deadline) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            },
            job_number,
            package_version: Some(p.spec.version.as_str().into()),
            created_at: now,
            started_at: None,
            ended_at: None,
            checkpoint: None,
            steps: 0,
            step_records: Vec::new(),
            outputs: None,
            error_code: None,
            reason: None,
            forced: false,
            retry: None,
            window_ms: None,
            triggered: false,
            pipeline_run: None,
            runs_pipeline: None,
            pinned: None,
        })
    }

    /// A job `user` may see, by key.
    async fn visible_job(&self, user: &User, key: Key) -> Result<Job> {
        let job = self
            .store
            .job_by_key(key)
            .await?
            .ok_or_else(|| Error::NotFound(Entity::Job, key.to_string()))?;
        self.require_grant(user, job.process).await?;
        Ok(job)
    }

    /// Seed 000 §3.4: stops a job of a process granted to `user`.
    pub async fn stop_job(&self, user: &User, key: Key, strategy: StopStrategy) -> Result<Job> {
        let job = self.visible_job(user, key).await?;
        let t = self
            .transition(job.id, JobEvent::Stop(strategy), Actor::User(user.id), None)
            .await?;
        self.follow_up(&t).await?;
        Ok(t.job)
    }

    /// Kills a job at once (an operator's word, not seed 000's stopJob,
    /// which asks the robot to stop): the job ends Stopped, its robot is sent
    /// Stop and stays busy until it confirms. Needs `OperateAllJobs`.
    pub async fn kill_job(&self, actor: Actor, key: Key) -> Result<Job> {
        self.require(actor, Permission::OperateAllJobs).await?;
        let job = self
            .store
            .job_by_key(key)
            .await?
            .ok_or_else(|| Error::NotFound(Entity::Job, key.to_string()))?;
        let t = self
            .transition(job.id, JobEvent::Stop(StopStrategy::Kill), actor, None)
            .await?;
        self.follow_up(&t).await?;
        Ok(t.job)
    }

    /// Seed 000 §3.5: a job of a process granted to `user`, and its process.
    pub async fn job_status(&self, user: &User, key: Key) -> Result<(Job, Process)> {
        let job = self.visible_job(user, key).await?;
        let p = self
            .store
            .process(job.process)
            .await?
            .ok_or_else(|| Error::Internal("job without process".into()))?;
        Ok((job, p))
    }

    /// A job by its serial id that `user` may see (granted its process, or
    /// OperateAllJobs).
    pub async fn job_by_id(&self, user: &User, id: JobId) -> Result<Job> {
        let job = self
            .store
            .job(id)
            .await?
            .ok_or_else(|| Error::NotFound(Entity::Job, id.to_string()))?;
        if !self
            .has_permission(Actor::User(user.id), Permission::OperateAllJobs)
            .await?
        {
            self.require_grant(user, job.process).await?;
        }
        Ok(job)
    }

    /// The newest jobs of a process created in the last 30 days, up to
    /// `limit`, with how many there are (for hosts: no permission check).
    pub async fn recent_jobs(&self, process: ProcessId, limit: usize) -> Result<(u64, Vec<Job>)> {
        let now = self.now();
        Ok(self
            .store
            .jobs_of_process(JobQuery {
                process,
                from: Timestamp(now.0 - 30 * DAY_MS),
                to: now,
                state: None,
                limit,
            })
            .await?)
    }

    /// The newest `limit` jobs of `processes`, in any of `states` (none:
    /// every state), newest first, with how many there are in all: one
    /// indexed read and count a process and state, whatever the number of
    /// jobs of other states (no permission check: callers pick the
    /// processes their caller may see).
    pub async fn jobs_of(
        &self,
        processes: &[ProcessId],
        states: Option<&[JobState]>,
        limit: usize,
    ) -> Result<(u64, Vec<Job>)> {
        let all: Vec<Option<JobState>> = match states {
            Some(s) => s.iter().copied().map(Some).collect(),
            None => vec![None],
        };
        let (mut total, mut found) = (0u64, Vec::new());
        for &process in processes {
            for &state in &all {
                let (n, jobs) = self
                    .store
                    .jobs_of_process(JobQuery {
                        process,
                        from: Timestamp(i64::MIN),
                        to: Timestamp(i64::MAX),
                        state,
                        limit,
                    })
                    .await?;
                total += n;
                found.extend(jobs);
            }
        }
        found.sort_by_key(|j| std::cmp::Reverse((j.created_at, j.id)));
        found.truncate(limit);
        Ok((total, found))
    }

    /// A job by key, for hosts (no permission check).
    pub async fn job(&self, key: Key) -> Result<Job> {
        self.store
            .job_by_key(key)
            .await?
            .ok_or_else(|| Error::NotFound(Entity::Job, key.to_string()))
    }

    /// A job's run logs.
    pub async fn job_logs(&self, user: &User, key: Key) -> Result<Vec<RunLog>> {
        let job = self.visible_job(user, key).await?;
        Ok(self.store.logs(job.id).await?)
    }

    /// Seed 000 §3.7: jobs of a process in a window of at most one month
    /// (default: the last 30 days), newest first, with the total count.
    pub async fn query_process_jobs(
        &self,
        user: &User,
        process: Key,
        q: JobQueryParams,
    ) -> Result<(u64, Vec<Job>, Process)> {
        let p = self.process_by_key(process).await?;
        self.require_grant(user, p.id).await?;
        let now = self.now();
        let (from, to) = match (q.start, q.end) {
            (None, None) => (Timestamp(now.0 - 30 * DAY_MS), now),
            (Some(s), None) => (s, Timestamp(s.0 + 30 * DAY_MS)),
            (None, Some(e)) => (Timestamp(e.0 - 30 * DAY_MS), e),
            (Some(s), Some(e)) => (s, e),
        };
        if from > to {
            return Err(Error::InvalidArgument("startTime must not be after endTime".into()));
        }
        let limit = from
            .in_zone(self.config.time_zone)
            .checked_add_months(chrono::Months::new(1))
            .map(|d| Timestamp(d.timestamp_millis()));
        if limit.is_none_or(|l| to > l) {
            return Err(Error::InvalidArgument(
                "startTime and endTime must be at most one month apart".into(),
            ));
        }
        let query = |state| JobQuery {
            process: p.id,
            from,
            to,
            state,
            limit: self.config.max_query_records,
        };
        if q.states.is_empty() {
            let (total, jobs) = self.store.jobs_of_process(query(None)).await?;
            return Ok((total, jobs, p));
        }
        // One query per state, merged newest first.
        let (mut total, mut jobs) = (0, Vec::new());
        for s in q.states.iter().copied().collect::<std::collections::BTreeSet<_>>() {
            let (n, some) = self.store.jobs_of_process(query(Some(s))).await?;
            total += n;
            jobs.extend(some);
        }
        jobs.sort_by_key(|j| std::cmp::Reverse((j.created_at, j.id)));
        jobs.truncate(self.config.max_query_records);
        Ok((total, jobs, p))
    }

    // ------------------------------------------------------------- queue items

    /// Seed 000 §3.6: adds an item to a Queue process; it runs as one job.
    pub async fn add_queue_item(&self, user: &User, process: Key, new: NewQueueItem) -> Result<QueueItem> {
        let p0 = self.process_by_key(process).await?;
        self.require_grant(user, p0.id).await?;
        if p0.spec.process_type != ProcessType::Queue {
            return Err(Error::InvalidArgument(
                "queue items can be added only to a Queue process".into(),
            ));
        }
        let content = item_content(&p0.spec, &new.content)?;
        if let Some(r) = &new.reference {
            if r.is_empty() || r.len() > 256 {
                return Err(Error::InvalidArgument("reference must be 1 to 256 characters".into()));
            }
            if p0.spec.unique_references && self.store.item_by_reference(p0.id, r).await?.is_some() {
                return Err(Error::AlreadyExists(format!("queue item with reference {r}")));
            }
        }
        let added = decided!(self, |_attempt| {
            let mut p = self
                .store
                .process(p0.id)
                .await?
                .ok_or_else(|| Error::NotFound(Entity::Process, process.to_string()))?;
            limits::may_add_item(&p).map_err(Error::Limit)?;
            let now = self.now();
            let item = self.fresh_item(&p, &new, content.clone(), now).await?;
            if p.spec.trigger.is_some() {
                // The item waits for its trigger, which may start it (or
                // others before it) in this same commit.
                let mut tx = Tx::default();
                tx.count(&mut p, Delta::NEW_ITEM, self.today(now)).audit(
                    now,
                    Actor::User(user.id),
                    "item.add",
                    Subject::Id("item", item.id.0),
                    "waits for the queue trigger".into(),
                );
                let state = self.trigger_state(p.id).await?;
                let fresh = Fresh {
                    item: item.clone(),
                    user: user.id,
                    not_before: None,
                };
                let jobs = self.trigger_round(&mut tx, &p, state, vec![fresh], now).await?;
                return Ok(Decided::Commit(tx, (item, jobs)));
            }
            let job = self
                .new_job(
                    &p,
                    user,
                    content.clone(),
                    Some(&item),
                    now,
                    item.defer_until,
                    item.deadline,
                )
                .await?;
            let item = QueueItem {
                job: Some(job.id),
                ..item
            };
            let mut tx = Tx::default();
            tx.count(&mut p, Delta::NEW_ITEM, self.today(now))
                .item(item.clone())
                .job(job.clone())
                .audit(
                    now,
                    Actor::User(user.id),
                    "item.add",
                    Subject::Id("item", item.id.0),
                    audit::id_text("job", job.id.0),
                );
            Ok(Decided::Commit(tx, (item, vec![job.id])))
        });
        let (item, jobs) = match added {
            Err(Error::Store(StoreError::Duplicate(_))) => {
                return Err(Error::AlreadyExists(format!(
                    "queue item with reference {}",
                    new.reference.unwrap_or_default()
                )));
            }
            other => other?,
        };
        for job in jobs {
            self.place_job(job).await?;
        }
        Ok(self.store.item(item.id).await?.unwrap_or(item))
    }

    /// A new queue item of `p`, New, not stored yet.
    pub(super) async fn fresh_item(
        &self,
        p: &Process,
        new: &NewQueueItem,
        content: Arc<Value>,
        now: Timestamp,
    ) -> Result<QueueItem> {
        Ok(QueueItem {
            id: QueueItemId(self.next_id(IdKind::QueueItem).await?),
            key: self.new_key(),
            version: 0,
            process: p.id,
            state: ItemState::New,
            priority: new.priority.unwrap_or(p.spec.priority),
            reference: new.reference.clone().filter(|_| p.spec.unique_references),
            shared_reference: new.reference.clone().filter(|_| !p.spec.unique_references),
            content,
            retry_count: 0,
            retry_of: None,
            job: None,
            defer_until: new.defer_until,
            deadline: new.deadline,
            created_at: now,
            ended_at: None,
            progress: new.progress.as_ref().map(|p| p.chars().take(10_000).collect()),
            output: None,
            risk_sla: new.risk_sla,
        })
    }

    /// The new attempt of retried item `item`: New, its content and
    /// deadlines, one retry more, no reference (the first keeps it).
    pub(super) async fn retried_item(&self, item: &QueueItem, now: Timestamp) -> Result<QueueItem> {
        Ok(QueueItem {
            id: QueueItemId(self.next_id(IdKind::QueueItem).await?),
            key: self.new_key(),
            version: 0,
            state: ItemState::New,
            reference: None,
            retry_count: item.retry_count + 1,
            retry_of: Some(item.id),
            job: None,
            created_at: now,
            ended_at: None,
            progress: None,
            output: None,
            ..item.clone()
        })
    }

    /// A queue item by key (hosts).
    pub async fn queue_item(&self, key: Key) -> Result<QueueItem> {
        self.store
            .item_by_key(key)
            .await?
            .ok_or_else(|| Error::NotFound(Entity::QueueItem, key.to_string()))
    }

    // ------------------------------------------------------------ transitions

    /// Applies `ev` to job `id` and everything it implies, in one commit:
    /// the robot (`pre` first, then released if the job lets it go), the
    /// process counters, the queue item (and its retry), Stop commands, audit.
    pub(crate) async fn transition(
        &self,
        id: JobId,
        ev: JobEvent,
        actor: Actor,
        pre: Option<RobotEvent>,
    ) -> Result<Transitioned> {
        self.transition_from(id, None, None, ev, actor, pre).await
    }

    /// [`Engine::transition`] starting from snapshots of the job (and its
    /// robot) the caller just read; they are re-read only after a conflict.
    pub(crate) async fn transition_from(
        &self,
        id: JobId,
        mut snapshot: Option<Job>,
        mut robot_snapshot: Option<Robot>,
        ev: JobEvent,
        actor: Actor,
        pre: Option<RobotEvent>,
    ) -> Result<Transitioned> {
        let (t, next_claim) = decided!(self, |attempt| {
            // After a conflict (another engine took the next job or the
            // robot) the job ends without the hand-over, and the dispatch
            // that follows places the next job.
            let chain = attempt == 0;
            let now = self.now();
            let mut job = match snapshot.take() {
                Some(j) => j,
                None => self
                    .store
                    .job(id)
                    .await?
                    .ok_or_else(|| Error::NotFound(Entity::Job, id.to_string()))?,
            };
            let mut p = self
                .store
                .process(job.process)
                .await?
                .ok_or_else(|| Error::Internal("job without process".into()))?;
            let today = self.today(now);
            let from = job.state;
            let ctx = JobCtx {
                now,
                retry: &p.spec.retry,
                retry_failures: job.queue_item.is_none(),
            };
            let fx = job::apply(&mut job, ev.clone(), ctx)?;
            let mut tx = Tx::default();
            let mut released = None;
            let mut new_jobs = Vec::new();
            let mut waits_again = Vec::new();
            let mut robot_write = None;
            let mut robot_before = None;

            // The robot: the event that caused this, then release.
            let cached = robot_snapshot.take().filter(|r| Some(r.id) == job.robot);
            let robot = match (job.robot, cached) {
                (_, Some(r)) => Some(r),
                (Some(rid), None) if pre.is_some() || fx.release_robot || fx.stop_robot => {
                    self.store.robot(rid).await?
                }
                _ => None,
            };
            if let Some(mut r) = robot.filter(|_| pre.is_some() || fx.release_robot || fx.stop_robot) {
                robot_before = Some(r.state);
                let mut touched = false;
                if let Some(e) = pre {
                    robot::apply(&mut r, e, now, self.robot_window())?;
                    touched = true;
                }
                if matches!(ev, JobEvent::RobotLost) {
                    // Whatever still waits for the robot belongs to the run it lost.
                    tx.commit.clear_outbox.push(r.id);
                }
                if fx.release_robot && r.job == Some(job.id) {
                    robot::apply(&mut r, RobotEvent::Release, now, self.robot_window())?;
                    touched = true;
                    released = Some(r.id);
                }
                if fx.stop_robot && r.job == Some(job.id) {
                    tx.command(
                        r.id,
                        Command::Stop {
                            run_instance_id: job.key,
                        },
                    );
                }
                if touched {
                    robot_write = Some(r);
                }
            }

            // Process counters.
            if fx.slot == Slot::Free {
                tx.count(&mut p, Delta::SLOT_FREED, today);
            }
            if fx.succeeded {
                tx.count(&mut p, Delta::SUCCESS, today);
            }

            // The queue item.
            if let (Some(end), Some(item_id)) = (fx.ended, job.queue_item)
                && let Some(mut item) = self.store.item(item_id).await?
            {
                let (ev, retry) = queue::on_job_end(&item, end, &p.spec.retry);
                let was_new = item.state == ItemState::New;
                queue::apply(&mut item, ev, now)?;
                if was_new {
                    tx.count(&mut p, Delta::ITEM_TAKEN, today);
                }
                if retry {
                    queue::apply(&mut item, ItemEvent::Retry, now)?;
                    let again = self.retried_item(&item, now).await?;
                    let backoff = Some(now.plus_ms(p.spec.retry.backoff(again.retry_count + 1)));
                    tx.count(&mut p, Delta::RETRIED_ITEM, today);
                    if p.spec.trigger.is_some() {
                        // The retry waits in the trigger's line.
                        tx.audit(
                            now,
                            Actor::System,
                            "item.retry",
                            Subject::Id("item", item.id.0),
                            format!("item:{} (waits for the queue trigger)", again.id),
                        );
                        waits_again.push(Fresh {
                            item: again,
                            user: job.user,
                            not_before: backoff,
                        });
                    } else {
                        let owner = self
                            .store
                            .user(job.user)
                            .await?
                            .ok_or_else(|| Error::Internal("job without user".into()))?;
                        let j2 = self
                            .new_job(
                                &p,
                                &owner,
                                again.content.clone(),
                                Some(&again),
                                now,
                                backoff,
                                again.deadline,
                            )
                            .await?;
                        let again = QueueItem {
                            job: Some(j2.id),
                            ..again
                        };
                        tx.audit(
                            now,
                            Actor::System,
                            "item.retry",
                            Subject::Id("item", item.id.0),
                            format!("item:{} job:{}", again.id, j2.id),
                        );
                        new_jobs.push(j2.id);
                        tx.item(again).job(j2);
                    }
                }
                tx.audit(
                    now,
                    actor,
                    "item.end",
                    Subject::Id("item", item.id.0),
                    item.state.as_str().into(),
                )
                .event(now, events::item_ended(&item));
                tx.item(item);
            }
            // The trigger: an ended trigger job makes room, a retry waits.
            let trigger_job_ended = fx.ended.is_some() && job.triggered;
            if trigger_job_ended || !waits_again.is_empty() {
                let mut state = self.trigger_state(p.id).await?;
                if trigger_job_ended {
                    state.active = state.active.saturating_sub(1);
                }
                new_jobs.extend(self.trigger_round(&mut tx, &p, state, waits_again, now).await?);
            }
            // A pipeline step: its run moves in this commit.
            let mut stop_jobs = Vec::new();
            let mut freed_pipeline_slot = None;
            if fx.ended.is_some() && job.pipeline_run.is_some() {
                let moved = self.pipeline_job_ended(&mut tx, &job, now).await?;
                new_jobs.extend(moved.started);
                stop_jobs = moved.stop;
                freed_pipeline_slot = moved.freed;
            }
            // A pipeline process's job stopped or expired: so does its run.
            if job.runs_pipeline.is_some() && fx.changed && matches!(ev, JobEvent::Stop(_) | JobEvent::Expire) {
                let was_stopping = job.state == JobState::Stopping;
                stop_jobs.extend(self.delegated_job_stopped(&mut tx, &mut job, &mut p, now).await?);
                if was_stopping && job.state.is_terminal() {
                    freed_pipeline_slot = Some(p.id);
                }
            }
            if fx.paused {
                self.pause_ticket(&mut tx, &job, &p, now).await?;
            }
            if fx.changed {
                let mut detail = String::with_capacity(64);
                detail.push_str(from.as_str());
                detail.push_str("->");
                detail.push_str(job.state.as_str());
                if let Some(r) = job.reason.as_deref() {
                    detail.push_str(" (");
                    detail.push_str(r);
                    detail.push(')');
                }
                if fx.ended.is_some() {
                    // The run log is closed: its seal goes into the chain.
                    detail.push(' ');
                    detail.push_str(&crate::audit::run_log_seal(&self.store.logs(job.id).await?));
                }
                tx.audit(now, actor, event_action(&ev), Subject::Id("job", job.id.0), detail);
                if fx.ended.is_some() {
                    tx.event(now, events::job_ended(&job));
                }
            }
            // The released robot takes its next job in the same commit.
            let mut chained = false;
            let mut next_claim = None;
            if let Some(mut r) = robot_write.take() {
                if let Some(before) = robot_before {
                    tx.robot_changed(now, before, &r);
                }
                if released.is_some() && is_idle(&r) && chain && r.takes_work(now) {
                    let mut others = self.store.processes().await?;
                    let eligible: Vec<ProcessId> = others
                        .iter()
                        .map(|q| if q.id == p.id { &p } else { q })
                        .filter(|q| limits::may_run(q, today) && r.can_run(&q.spec))
                        .map(|q| q.id)
                        .collect();
                    if let Some((mut next, claim)) = self.next_unclaimed(&eligible).await?
                        && next.id != job.id
                    {
                        next_claim = Some(claim);
                        if next.process == p.id {
                            self.assign(&mut tx, now, &mut r, &mut next, &mut p, true).await?;
                        } else if let Some(mut q) = others.drain(..).find(|q| q.id == next.process) {
                            self.assign(&mut tx, now, &mut r, &mut next, &mut q, true).await?;
                        }
                        if r.job == Some(next.id) {
                            chained = true;
                            tx.job(next);
                        }
                    }
                }
                tx.robot(r);
            }
            if fx.changed {
                tx.job(job.clone());
                job.version += 1;
            }
            let t = Transitioned {
                job,
                fx,
                released: released.filter(|_| !chained),
                new_jobs,
                stop_jobs,
                freed_pipeline_slot,
            };
            Ok(if tx.commit.is_empty() {
                Decided::Answer((t, next_claim))
            } else {
                Decided::Commit(tx, (t, next_claim))
            })
        })?;
        // The next job is taken (or not): other dispatches may look at it again.
        drop(next_claim);
        Ok(t)
    }

    /// Dispatch that a transition makes possible: a freed robot, a freed slot, a retry.
    pub(crate) async fn follow_up(&self, t: &Transitioned) -> Result<()> {
        if let Some(r) = t.released {
            self.fill_robot(r).await?;
        }
        if t.fx.slot == Slot::Free {
            self.place_next(t.job.process).await?;
        }
        if t.fx.requeued && t.job.not_before.is_none() {
            self.place_job(t.job.id).await?;
        }
        self.after_run_moved(super::pipelines::Moved {
            started: t.new_jobs.clone(),
            stop: t.stop_jobs.clone(),
            freed: t.freed_pipeline_slot,
        })
        .await?;
        Ok(())
    }
}

fn event_action(ev: &JobEvent) -> &'static str {
    match ev {
        JobEvent::Dispatch { .. } => "job.dispatch",
        JobEvent::Finish { .. } => "job.finish",
        JobEvent::Stop(StopStrategy::SoftStop) => "job.stop",
        JobEvent::Stop(StopStrategy::Kill) => "job.kill",
        JobEvent::RobotLost => "job.robot_lost",
        JobEvent::Expire => "job.expire",
        JobEvent::Checkpoint(..) => "job.checkpoint",
        JobEvent::Ready => "job.ready",
        JobEvent::Pause(..) => "job.pause",
        JobEvent::Resume(_) => "job.resume",
        JobEvent::Delegate => "job.delegate",
        JobEvent::Delegated { .. } => "job.pipeline_end",
    }
}

/// A queue item's content: free-form, or held to the arguments the queue
/// process declares for its items.
pub(super) fn item_content(spec: &ProcessSpec, content: &Value) -> Result<Arc<Value>> {
    if spec.arguments.is_empty() {
        arguments::free_form(content)
    } else {
        arguments::validate_shared(spec, content)
    }
}

pub(super) fn check_spec(spec: &ProcessSpec) -> Result<()> {
    super::non_empty(&spec.name, "process name")?;
    if spec.pipeline.as_deref().is_some_and(|n| n.trim().is_empty()) {
        return Err(Error::InvalidArgument("pipeline must name a pipeline".into()));
    }
    if spec.pipeline.is_some() && spec.process_type != ProcessType::Unattended {
        return Err(Error::InvalidArgument(
            "only an Unattended process can run a pipeline".into(),
        ));
    }
    if let Some(t) = &spec.trigger {
        if spec.process_type != ProcessType::Queue {
            return Err(Error::InvalidArgument(
                "only a Queue process can have a queueTrigger".into(),
            ));
        }
        t.check().map_err(Error::InvalidArgument)?;
    }
    spec.attributes.clone().checked().map_err(Error::InvalidArgument)?;
    let mut seen = std::collections::HashSet::new();
    for a in &spec.arguments {
        super::non_empty(&a.name, "argument name")?;
        if !seen.insert(a.name.as_str()) {
            return Err(Error::InvalidArgument(format!(
                "argument '{}' is declared twice",
                a.name
            )));
        }
    }
    Ok(())
}
