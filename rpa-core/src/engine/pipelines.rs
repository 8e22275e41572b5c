//! Pipelines (the rules are in [`crate::pipeline`]): saving them, starting,
//! stopping and rerunning runs. A run moves in the commit that ends one of
//! its jobs ([`Engine::transition`]): the step's end, the jobs of the steps
//! it lets start, the run's end and its `pipeline_run_ended` event are one
//! commit, so nodes never start a step twice and a crash loses none.

use std::collections::HashMap;

use serde_json::{Map, Value};

use super::{Decided, Delta, Engine, Tx, dup_as_exists, is_conflict};
use crate::arguments;
use crate::audit::{self, Subject};
use crate::error::{Entity, Error, Result};
use crate::events;
use crate::ids::*;
use crate::job::{self, FinishStatus, JobCtx, JobEvent, Slot, StopStrategy};
use crate::limits;
use crate::model::*;
use crate::pipeline::{Pipeline, PipelineDef, PipelineRun, ProcessInfo, RunEffects, RunState};
use crate::record::{Mapped, Select};
use crate::store::People as _;
use crate::store::{Records, Store};
use crate::time::Timestamp;

/// Records read per page when listing.
const PAGE: usize = 500;

/// Jobs a run's change started, jobs it wants stopped, and a process
/// whose running slot it freed.
#[derive(Debug, Default)]
pub(crate) struct Moved {
    pub started: Vec<JobId>,
    pub stop: Vec<JobId>,
    pub freed: Option<ProcessId>,
}

impl<S: Store> Engine<S> {
    /// Saves a pipeline (permission ManageProcesses): a new one, or a new
    /// version of the one of the same name (runs under way keep theirs).
    /// Refused with the reason when it does not compile.
    pub async fn save_pipeline(&self, actor: Actor, def: PipelineDef) -> Result<Pipeline> {
        self.require(actor, Permission::ManageProcesses).await?;
        let by_name: HashMap<String, ProcessInfo> = self
            .store
            .processes()
            .await?
            .into_iter()
            .map(|p| {
                (
                    p.spec.name.clone(),
                    ProcessInfo {
                        id: p.id,
                        spec: p.spec.clone(),
                    },
                )
            })
            .collect();
        let plan = std::sync::Arc::new(
            def.compile(|n| by_name.get(n).cloned())
                .map_err(Error::InvalidArgument)?,
        );
        let p = decided!(self, |_attempt| {
            let now = self.now();
            let existing: Option<Pipeline> = self.store.find("name", plan.def.name.as_str()).await?;
            let p = match existing {
                Some(old) => Pipeline {
                    version: old.version + 1,
                    plan: plan.clone(),
                    updated_at: now,
                    ..old
                },
                None => Pipeline {
                    id: self.next_id(IdKind::of::<Pipeline>()).await?,
                    version: 1,
                    plan: plan.clone(),
                    created_at: now,
                    updated_at: now,
                },
            };
            let mut tx = Tx::default();
            tx.record(&p)?.audit(
                now,
                actor,
                "pipeline.save",
                Subject::Id("pipeline", p.id),
                format!("{} (version {})", p.plan.def.name, p.version),
            );
            Ok(Decided::Commit(tx, p))
        })
        .map_err(dup_as_exists)?;
        Ok(p)
    }

    /// A pipeline by id.
    pub async fn pipeline(&self, id: i64) -> Result<Pipeline> {
        self.store
            .get::<Pipeline>(id)
            .await?
            .ok_or_else(|| Error::NotFound(Entity::Record(Pipeline::KIND.name), id.to_string()))
    }

    /// Every pipeline, by id.
    pub async fn pipelines(&self) -> Result<Vec<Pipeline>> {
        let mut all: Vec<Pipeline> = Vec::new();
        loop {
            let mut sel = Select::all(PAGE);
            if let Some(last) = all.last() {
                sel = sel.after(last.id.into());
            }
            let page: Vec<Pipeline> = self.store.list(sel).await?;
            let done = page.len() < PAGE;
            all.extend(page);
            if done {
                return Ok(all);
            }
        }
    }

    /// A run by id.
    pub async fn pipeline_run(&self, id: i64) -> Result<PipelineRun> {
        self.store
            .get::<PipelineRun>(id)
            .await?
            .ok_or_else(|| Error::NotFound(Entity::Record(PipelineRun::KIND.name), id.to_string()))
    }

    /// A pipeline's runs, oldest first, after the run `after`.
    pub async fn pipeline_runs(&self, pipeline: i64, after: i64, limit: usize) -> Result<Vec<PipelineRun>> {
        self.pipeline(pipeline).await?;
        let sel = Select::only("pipeline", pipeline, limit).after(after.into());
        Ok(self.store.list(sel).await?)
    }

    /// Starts a run of pipeline `id` with `inputs`, its jobs owned by
    /// `owner` (permission OperateAllJobs for `actor`): the steps without
    /// dependencies start in the same commit.
    pub async fn start_pipeline(
        &self,
        actor: Actor,
        owner: &User,
        id: i64,
        inputs: Map<String, Value>,
    ) -> Result<PipelineRun> {
        self.require(actor, Permission::OperateAllJobs).await?;
        let p = self.pipeline(id).await?;
        let now = self.now();
        let run_id = self.next_id(IdKind::of::<PipelineRun>()).await?;
        let run =
            PipelineRun::new(run_id, p.id, p.plan.clone(), inputs, owner.id, now).map_err(Error::InvalidArgument)?;
        self.begin_run(actor, run, "pipeline.start").await
    }

    /// Reruns an ended run that did not succeed (permission
    /// OperateAllJobs): a new run that keeps the outputs of its Successful
    /// steps and runs the others again.
    pub async fn rerun_pipeline(&self, actor: Actor, owner: &User, run: i64) -> Result<PipelineRun> {
        self.require(actor, Permission::OperateAllJobs).await?;
        let old = self.pipeline_run(run).await?;
        let id = self.next_id(IdKind::of::<PipelineRun>()).await?;
        let run = old.rerun(id, owner.id, self.now()).map_err(Error::InvalidArgument)?;
        self.begin_run(actor, run, "pipeline.rerun").await
    }

    async fn begin_run(&self, actor: Actor, mut run: PipelineRun, action: &'static str) -> Result<PipelineRun> {
        let now = self.now();
        let mut tx = Tx::default();
        let mut detail = format!("{} ", run.plan.def.name);
        audit::push_id(&mut detail, "pipeline", run.pipeline);
        if let Some(of) = run.rerun_of {
            detail.push(' ');
            audit::push_id(&mut detail, "rerun_of", of);
        }
        tx.audit(now, actor, action, Subject::Id("pipeline_run", run.id), detail);
        let moved = self.advance_run(&mut tx, &mut run, now).await?;
        run.version = 1;
        tx.record(&run)?;
        self.commit(tx).await?;
        self.after_run_moved(moved).await?;
        Ok(run)
    }

    /// Stops a run (permission OperateAllJobs): nothing more starts, its
    /// running steps' jobs are stopped; it ends Stopped once they have.
    pub async fn stop_pipeline_run(&self, actor: Actor, id: i64) -> Result<PipelineRun> {
        self.require(actor, Permission::OperateAllJobs).await?;
        let (run, fx, freed) = decided!(self, |_attempt| {
            let mut run = self.pipeline_run(id).await?;
            let now = self.now();
            let fx = run.stop(now).map_err(Error::InvalidArgument)?;
            let mut tx = Tx::default();
            tx.audit(
                now,
                actor,
                "pipeline.stop",
                Subject::Id("pipeline_run", run.id),
                String::new(),
            );
            self.end_if_settled(&mut tx, &mut run, now);
            let freed = self.parent_ended(&mut tx, &run, now).await?;
            run.version += 1;
            tx.record(&run)?;
            Ok(Decided::Commit(tx, (run, fx, freed)))
        })?;
        self.after_run_moved(Moved {
            stop: fx.stop,
            freed,
            ..Moved::default()
        })
        .await?;
        Ok(self.pipeline_run(run.id).await.unwrap_or(run))
    }

    /// Starts what `run` lets start now, into `tx`, and ends it if nothing
    /// runs any more. A step whose job cannot start (its process gone, its
    /// arguments, `maxDayNum`) fails with the reason.
    pub(crate) async fn advance_run(&self, tx: &mut Tx, run: &mut PipelineRun, now: Timestamp) -> Result<Moved> {
        let mut moved = Moved::default();
        let mut owner: Option<User> = None;
        loop {
            let ready = run.ready();
            if ready.is_empty() {
                break;
            }
            for i in ready {
                let started = self.start_step(tx, run, i, &mut owner, now).await?;
                match started {
                    Ok(job) => moved.started.push(job),
                    Err(reason) => moved.stop.extend(run.refused(i, reason, now).stop),
                }
            }
        }
        self.end_if_settled(tx, run, now);
        Ok(moved)
    }

    async fn start_step(
        &self,
        tx: &mut Tx,
        run: &mut PipelineRun,
        i: usize,
        owner: &mut Option<User>,
        now: Timestamp,
    ) -> Result<std::result::Result<JobId, String>> {
        let Some(p) = self.store.process(run.plan.processes[i]).await? else {
            return Ok(Err("its process no longer exists".into()));
        };
        let args = match run.arguments(i) {
            Ok(a) => a,
            Err(e) => return Ok(Err(e)),
        };
        let args = match arguments::validate_shared(&p.spec, &args) {
            Ok(a) => a,
            Err(e) => return Ok(Err(e.to_string())),
        };
        if let Err(l) = limits::may_start(&p, self.today(now)) {
            return Ok(Err(Error::Limit(l).to_string()));
        }
        if owner.is_none() {
            *owner = Some(
                self.store
                    .user(run.owner)
                    .await?
                    .ok_or_else(|| Error::Internal(format!("pipeline run {} without its user", run.id)))?,
            );
        }
        let user = owner.as_ref().expect("read above");
        let mut job = self.new_job(&p, user, args, None, now, None, None).await?;
        job.pipeline_run = Some(run.id);
        run.started(i, job.id, job.key, now);
        let mut detail = String::with_capacity(64);
        audit::push_id(&mut detail, "pipeline_run", run.id);
        detail.push_str(" step ");
        detail.push_str(&run.plan.def.steps[i].name);
        tx.audit(now, Actor::System, "job.start", Subject::Id("job", job.id.0), detail);
        let id = job.id;
        tx.job(job);
        Ok(Ok(id))
    }

    fn end_if_settled(&self, tx: &mut Tx, run: &mut PipelineRun, now: Timestamp) {
        if run.settle(now) {
            tx.audit(
                now,
                Actor::System,
                "pipeline.end",
                Subject::Id("pipeline_run", run.id),
                run.state.as_str().into(),
            )
            .event(now, events::pipeline_run_ended(run));
        }
    }

    /// The job of a pipeline step ended: the run moves in the same commit.
    pub(crate) async fn pipeline_job_ended(&self, tx: &mut Tx, job: &Job, now: Timestamp) -> Result<Moved> {
        let Some(id) = job.pipeline_run else {
            return Ok(Moved::default());
        };
        let Some(mut run) = self.store.get::<PipelineRun>(id).await? else {
            return Ok(Moved::default());
        };
        let RunEffects { stop, .. } =
            run.job_ended(job.id, job.state, job.outputs.as_ref(), job.reason.as_deref(), now);
        let mut moved = self.advance_run(tx, &mut run, now).await?;
        moved.stop.extend(stop);
        moved.freed = self.parent_ended(tx, &run, now).await?;
        run.version += 1;
        tx.record(&run)?;
        Ok(moved)
    }

    /// When `run` has ended and is a pipeline process's job, that job ends
    /// with it, into `tx`; gives the job's process (its slot is free).
    async fn parent_ended(&self, tx: &mut Tx, run: &PipelineRun, now: Timestamp) -> Result<Option<ProcessId>> {
        let Some(id) = run.job.filter(|_| run.state != RunState::Running) else {
            return Ok(None);
        };
        let Some(mut job) = self.store.job(id).await? else {
            return Ok(None);
        };
        if job.state.is_terminal() {
            return Ok(None);
        }
        let mut p = self
            .store
            .process(job.process)
            .await?
            .ok_or_else(|| Error::Internal("job without process".into()))?;
        self.close_parent(tx, &mut job, &mut p, run, now)?;
        tx.job(job);
        Ok(Some(p.id))
    }

    /// Ends `job`, the job `run` is, as the run ended (the caller writes it).
    fn close_parent(
        &self,
        tx: &mut Tx,
        job: &mut Job,
        p: &mut Process,
        run: &PipelineRun,
        now: Timestamp,
    ) -> Result<()> {
        let status = match run.state {
            RunState::Successful => FinishStatus::Success,
            RunState::Stopped => FinishStatus::Cancelled,
            _ => FinishStatus::Failed,
        };
        let ctx = JobCtx {
            now,
            retry: &p.spec.retry,
            retry_failures: false,
        };
        let from = job.state;
        let fx = job::apply(
            job,
            JobEvent::Delegated {
                status,
                outputs: Some(std::sync::Arc::new(run.outputs())),
                reason: run.failure(),
            },
            ctx,
        )?;
        let today = self.today(now);
        if fx.slot == Slot::Free {
            tx.count(p, Delta::SLOT_FREED, today);
        }
        if fx.succeeded {
            tx.count(p, Delta::SUCCESS, today);
        }
        let mut detail = format!("{}->{} ", from.as_str(), job.state.as_str());
        audit::push_id(&mut detail, "pipeline_run", run.id);
        tx.audit(
            now,
            Actor::System,
            "job.pipeline_end",
            Subject::Id("job", job.id.0),
            detail,
        )
        .event(now, events::job_ended(job));
        Ok(())
    }

    /// Starts the pipeline run that pending job `id` of a pipeline process
    /// is, when its process's limits let it run: the job is Running (with
    /// no robot) and the run's first steps start, in one commit; a run that
    /// cannot start (no such pipeline, inputs that do not fit) faults the
    /// job with the reason. False when there was nothing to do.
    pub(crate) async fn delegate(&self, id: JobId) -> Result<bool> {
        let moved = decided!(self, |_attempt| {
            let Some(mut job) = self.store.job(id).await? else {
                return Ok(Decided::Answer(None));
            };
            if !crate::store::is_dispatchable(&job) {
                return Ok(Decided::Answer(None));
            }
            let Some(mut p) = self.store.process(job.process).await? else {
                return Ok(Decided::Answer(None));
            };
            let Some(name) = p.spec.pipeline.clone() else {
                return Ok(Decided::Answer(None));
            };
            let now = self.now();
            let today = self.today(now);
            if !limits::may_run(&p, today) {
                return Ok(Decided::Answer(None));
            }
            let ctx = JobCtx {
                now,
                retry: &p.spec.retry,
                retry_failures: false,
            };
            let mut tx = Tx::default();
            let pipeline: Option<Pipeline> = self.store.find("name", name.as_str()).await?;
            let inputs = match job.arguments.as_ref() {
                Value::Object(m) => m.clone(),
                _ => Map::new(),
            };
            let run = match pipeline {
                None => Err(format!("no pipeline named '{name}'")),
                Some(pl) => {
                    let run_id = self.next_id(IdKind::of::<PipelineRun>()).await?;
                    PipelineRun::new(run_id, pl.id, pl.plan.clone(), inputs, job.user, now)
                }
            };
            let mut run = match run {
                Ok(r) => r,
                Err(reason) => {
                    let ev = JobEvent::Delegated {
                        status: FinishStatus::Failed,
                        outputs: None,
                        reason: Some(reason.clone()),
                    };
                    job::apply(&mut job, ev, ctx)?;
                    tx.audit(now, Actor::System, "job.delegate", Subject::Id("job", job.id.0), reason)
                        .event(now, events::job_ended(&job));
                    tx.job(job);
                    return Ok(Decided::Commit(tx, Some(Moved::default())));
                }
            };
            job::apply(&mut job, JobEvent::Delegate, ctx)?;
            tx.count(&mut p, Delta::SLOT_TAKEN, today);
            job.runs_pipeline = Some(run.id);
            run.job = Some(job.id);
            let mut detail = String::with_capacity(48);
            audit::push_id(&mut detail, "pipeline_run", run.id);
            detail.push(' ');
            detail.push_str(&name);
            tx.audit(now, Actor::System, "job.delegate", Subject::Id("job", job.id.0), detail);
            let mut moved = self.advance_run(&mut tx, &mut run, now).await?;
            if run.state != RunState::Running {
                self.close_parent(&mut tx, &mut job, &mut p, &run, now)?;
                moved.freed = Some(p.id);
            }
            run.version = 1;
            tx.record(&run)?;
            tx.job(job);
            Ok(Decided::Commit(tx, Some(moved)))
        })?;
        match moved {
            Some(m) => {
                self.after_run_moved(m).await?;
                Ok(true)
            }
            None => Ok(false),
        }
    }

    /// A pipeline process's job stopped, killed or expired: its run stops,
    /// into `tx`; if the run ends at once, so does a job still Stopping.
    /// Gives the jobs of the run's steps to stop.
    pub(crate) async fn delegated_job_stopped(
        &self,
        tx: &mut Tx,
        job: &mut Job,
        p: &mut Process,
        now: Timestamp,
    ) -> Result<Vec<JobId>> {
        let Some(id) = job.runs_pipeline else {
            return Ok(Vec::new());
        };
        let Some(mut run) = self.store.get::<PipelineRun>(id).await? else {
            return Ok(Vec::new());
        };
        if run.state != RunState::Running {
            return Ok(Vec::new());
        }
        let fx = run.stop(now).map_err(Error::Internal)?;
        self.end_if_settled(tx, &mut run, now);
        if run.state != RunState::Running && job.state == JobState::Stopping {
            self.close_parent(tx, job, p, &run, now)?;
        }
        run.version += 1;
        tx.record(&run)?;
        Ok(fx.stop)
    }

    /// After a run's commit: dispatch the jobs it started, stop those it
    /// wants stopped (one transition each; a job that ended meanwhile is left be).
    pub(crate) async fn after_run_moved(&self, moved: Moved) -> Result<()> {
        // Boxed: placing a job of a pipeline process starts a run, which moves here again.
        for j in moved.started {
            Box::pin(self.place_job(j)).await?;
        }
        if let Some(p) = moved.freed {
            Box::pin(self.place_next(p)).await?;
        }
        for j in moved.stop {
            match self
                .transition(j, JobEvent::Stop(StopStrategy::SoftStop), Actor::System, None)
                .await
            {
                Ok(t) => Box::pin(self.follow_up(&t)).await?,
                Err(Error::Rejected(_)) => {}
                Err(e) if is_conflict(&e) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }
}

impl<S: Store> Engine<S> {
    /// Starts the run of the best pending job of pipeline process
    /// `process`, if its limits let one run; false when none started.
    pub(crate) async fn delegate_next(&self, process: ProcessId) -> Result<bool> {
        for _ in 0..8 {
            let Some(job) = self.store.next_pending(&[process]).await? else {
                return Ok(false);
            };
            if self.delegate(job.id).await? {
                return Ok(true);
            }
            // Taken meanwhile, or the limits hold it: look once more only if it moved on.
            if self
                .store
                .job(job.id)
                .await?
                .is_some_and(|j| crate::store::is_dispatchable(&j))
            {
                return Ok(false);
            }
        }
        Ok(false)
    }
}
