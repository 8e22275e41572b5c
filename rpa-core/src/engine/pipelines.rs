//! Pipelines (the rules are in [`crate::pipeline`]): saving them, starting,
//! stopping and rerunning runs. A run moves in the commit that ends one of
//! its jobs ([`Engine::transition`]): the step's end, the jobs of the steps
//! it lets start, the run's end and its `pipeline_run_ended` event are one
//! commit, so nodes never start a step twice and a crash loses none.

use std::collections::HashMap;

use serde_json::{Map, Value};

use super::{Decided, Engine, Tx, dup_as_exists, is_conflict};
use crate::arguments;
use crate::audit::{self, Subject};
use crate::error::{Entity, Error, Result};
use crate::events;
use crate::ids::*;
use crate::job::{JobEvent, StopStrategy};
use crate::limits;
use crate::model::*;
use crate::pipeline::{Pipeline, PipelineDef, PipelineRun, ProcessInfo, RunEffects};
use crate::record::{Record, Select};
use crate::store::{Records, Store};
use crate::time::Timestamp;

/// Records read per page when listing.
const PAGE: usize = 500;

/// Jobs a run's change started, and jobs it wants stopped.
#[derive(Debug, Default)]
pub(crate) struct Moved {
    pub started: Vec<JobId>,
    pub stop: Vec<JobId>,
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
        let (run, fx) = decided!(self, |_attempt| {
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
            run.version += 1;
            tx.record(&run)?;
            Ok(Decided::Commit(tx, (run, fx)))
        })?;
        self.after_run_moved(Moved {
            started: Vec::new(),
            stop: fx.stop,
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
        run.version += 1;
        tx.record(&run)?;
        Ok(moved)
    }

    /// After a run's commit: dispatch the jobs it started, stop those it
    /// wants stopped (one transition each; a job that ended meanwhile is left be).
    pub(crate) async fn after_run_moved(&self, moved: Moved) -> Result<()> {
        for j in moved.started {
            self.place_job(j).await?;
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
