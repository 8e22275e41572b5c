//! The scheduling centre's administration over HTTP (seed 001 §6.1.2 c,
//! §6.5): queue triggers and pipelines. Same sessions, permissions,
//! envelope and errors as [`crate::admin`]; times are `yyyy-MM-dd HH:mm:ss`
//! in the server's zone.
//!
//! | method, path | permission | body / answer |
//! |---|---|---|
//! | `GET /admin/processes/{processId}/trigger` | ManageProcesses | `{processId, queueTrigger, waiting, active}` |
//! | `PUT /admin/processes/{processId}/trigger` | ManageProcesses | `{minItems, maxConcurrent}` → the same; items it lets start get jobs at once |
//! | `DELETE /admin/processes/{processId}/trigger` | ManageProcesses | → the same: every waiting item gets its job |
//! | `POST /admin/pipelines` | ManageProcesses | a definition ([`rpa_core::pipeline::PipelineDef`]) → [`PipelineInfo`]; the same name saves a new version |
//! | `GET /admin/pipelines` | ManageProcesses | `[`[`PipelineInfo`]`]` |
//! | `GET /admin/pipelines/{pipelineId}` | ManageProcesses | [`PipelineInfo`] |
//! | `POST /admin/pipelines/{pipelineId}/runs` | OperateAllJobs | `{inputs}` → [`RunInfo`]: the steps without dependencies start |
//! | `GET /admin/pipelines/{pipelineId}/runs?after=&limit=` | OperateAllJobs | `[`[`RunInfo`]`]`, oldest first |
//! | `GET /admin/pipeline-runs/{runId}` | OperateAllJobs | [`RunInfo`] with each step's state, job, outputs and reason |
//! | `POST /admin/pipeline-runs/{runId}/stop` | OperateAllJobs | [`RunInfo`]: nothing more starts, running steps' jobs are stopped |
//! | `POST /admin/pipeline-runs/{runId}/rerun` | OperateAllJobs | [`RunInfo`] of a new run that keeps the succeeded steps' outputs |
//! | `GET /admin/pools` | ManageRobots | `[`[`PoolInfo`]`]`: each pool's bounds, the robots it wants, the demand behind it, its robots now |
//! | `PUT /admin/pools/{name}` | ManageRobots | `{min, max, idleGraceSeconds}` → [`PoolInfo`] |

use axum::Router;
use axum::body::Bytes;
use axum::extract::Query;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::routing::{get, post};
use rpa_core::model::{Actor, Permission, Process};
use rpa_core::pipeline::{Pipeline, PipelineDef, PipelineRun};
use rpa_core::trigger::TriggerState;
use rpa_core::{Key, Store};
use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;

use crate::AppState;
use crate::admin::{admin, process_id};
use crate::config::QueueTriggerDef;
use crate::seed000::{Answer, BusinessError, Done, Envelope, fields};

/// The scheduling centre's routes.
pub fn router<S: Store>() -> Router<AppState<S>> {
    Router::new()
        .route(
            "/admin/processes/{processId}/trigger",
            get(get_trigger::<S>).put(put_trigger::<S>).delete(delete_trigger::<S>),
        )
        .route("/admin/pipelines", post(save_pipeline::<S>).get(list_pipelines::<S>))
        .route("/admin/pipelines/{pipelineId}", get(get_pipeline::<S>))
        .route(
            "/admin/pipelines/{pipelineId}/runs",
            post(start_run::<S>).get(list_runs::<S>),
        )
        .route("/admin/pipeline-runs/{runId}", get(get_run::<S>))
        .route("/admin/pipeline-runs/{runId}/stop", post(stop_run::<S>))
        .route("/admin/pipeline-runs/{runId}/rerun", post(rerun::<S>))
        .route("/admin/pools", get(list_pools::<S>))
        .route("/admin/pools/{name}", axum::routing::put(put_pool::<S>))
}

/// A queue trigger and its counts.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TriggerInfo {
    /// The process.
    #[schema(value_type = String)]
    pub process_id: Key,
    /// Its trigger (null: none; each item starts its own job).
    pub queue_trigger: Option<QueueTriggerDef>,
    /// Items waiting for a job.
    pub waiting: u32,
    /// Trigger jobs pending or running.
    pub active: u32,
}

fn trigger_info(p: &Process, s: &TriggerState) -> TriggerInfo {
    TriggerInfo {
        process_id: p.key,
        queue_trigger: p.spec.trigger.map(Into::into),
        waiting: s.waiting,
        active: s.active,
    }
}

/// A process's queue trigger and its counts (permission ManageProcesses).
#[utoipa::path(get, path = "/admin/processes/{processId}/trigger", tag = "admin",
    params(("X-Access-Token" = String, Header, description = "an administrator's session"),
        ("processId" = String, Path, description = "the process")),
    responses((status = 200, description = "the trigger", body = Envelope<TriggerInfo>)))]
pub(crate) async fn get_trigger<S: Store>(
    State(st): State<AppState<S>>,
    h: HeaderMap,
    Path(pid): Path<String>,
) -> Answer<TriggerInfo> {
    let me = admin(&st, &h, Permission::ManageProcesses).await?;
    let (p, s) = st.engine.queue_trigger(Actor::User(me.id), process_id(&pid)?).await?;
    Ok(Done::ok(trigger_info(&p, &s)))
}

/// Sets a Queue process's trigger (permission ManageProcesses).
#[utoipa::path(put, path = "/admin/processes/{processId}/trigger", tag = "admin",
    params(("X-Access-Token" = String, Header, description = "an administrator's session"),
        ("processId" = String, Path, description = "the process")),
    request_body = QueueTriggerDef,
    responses((status = 200, description = "the trigger", body = Envelope<TriggerInfo>)))]
pub(crate) async fn put_trigger<S: Store>(
    State(st): State<AppState<S>>,
    h: HeaderMap,
    Path(pid): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> Answer<TriggerInfo> {
    let me = admin(&st, &h, Permission::ManageProcesses).await?;
    let key = process_id(&pid)?;
    let f = fields(body)?;
    let def: QueueTriggerDef = serde_json::from_value(Value::Object(f.0))
        .map_err(|e| BusinessError::refused(format!("invalid queue trigger: {e}")))?;
    let (p, s) = st
        .engine
        .set_queue_trigger(Actor::User(me.id), key, Some(def.into()))
        .await?;
    Ok(Done::ok(trigger_info(&p, &s)))
}

/// Removes a process's trigger: every waiting item gets its job (permission ManageProcesses).
#[utoipa::path(delete, path = "/admin/processes/{processId}/trigger", tag = "admin",
    params(("X-Access-Token" = String, Header, description = "an administrator's session"),
        ("processId" = String, Path, description = "the process")),
    responses((status = 200, description = "the process without a trigger", body = Envelope<TriggerInfo>)))]
pub(crate) async fn delete_trigger<S: Store>(
    State(st): State<AppState<S>>,
    h: HeaderMap,
    Path(pid): Path<String>,
) -> Answer<TriggerInfo> {
    let me = admin(&st, &h, Permission::ManageProcesses).await?;
    let (p, s) = st
        .engine
        .set_queue_trigger(Actor::User(me.id), process_id(&pid)?, None)
        .await?;
    Ok(Done::ok(trigger_info(&p, &s)))
}

// -------------------------------------------------------------- pipelines

/// A saved pipeline.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PipelineInfo {
    /// Its id.
    pub pipeline_id: i64,
    /// Its name.
    pub name: String,
    /// How many times it was saved.
    pub version: u64,
    /// Its definition, as saved (post it back to restore it).
    #[schema(value_type = Object)]
    pub definition: Value,
    /// Each step's name and the steps it waits for.
    pub depends_on: Vec<StepDeps>,
    /// When it was first saved.
    pub create_time: String,
    /// When it was last saved.
    pub update_time: String,
}

/// A step and its dependencies.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct StepDeps {
    /// The step.
    pub step: String,
    /// The steps it waits for.
    pub after: Vec<String>,
}

fn pipeline_info<S: Store>(st: &AppState<S>, p: &Pipeline) -> PipelineInfo {
    let tz = st.engine.config().time_zone;
    let steps = &p.plan.def.steps;
    PipelineInfo {
        pipeline_id: p.id,
        name: p.plan.def.name.clone(),
        version: p.version,
        definition: serde_json::to_value(&p.plan.def).unwrap_or(Value::Null),
        depends_on: steps
            .iter()
            .zip(&p.plan.deps)
            .map(|(s, d)| StepDeps {
                step: s.name.clone(),
                after: d.iter().map(|&j| steps[j].name.clone()).collect(),
            })
            .collect(),
        create_time: p.created_at.format_local(tz),
        update_time: p.updated_at.format_local(tz),
    }
}

/// A run of a pipeline.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RunInfo {
    /// Its id.
    pub run_id: i64,
    /// Its pipeline.
    pub pipeline_id: i64,
    /// The pipeline's name.
    pub name: String,
    /// Running, Successful, Faulted or Stopped.
    pub state: &'static str,
    /// Asked to stop, its jobs not all ended yet.
    pub stopping: bool,
    /// Its inputs.
    #[schema(value_type = Object)]
    pub inputs: Value,
    /// The run it reruns.
    pub rerun_of: Option<i64>,
    /// When it started.
    pub create_time: String,
    /// When it ended.
    pub end_time: Option<String>,
    /// Its steps, in the definition's order.
    pub steps: Vec<StepInfo>,
}

/// A step of a run.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct StepInfo {
    /// The step.
    pub name: String,
    /// Its process.
    pub process: String,
    /// Waiting, Running, Successful, Faulted, Stopped or Skipped.
    pub state: &'static str,
    /// Its job (seed 000 `jobId`), once started.
    #[schema(value_type = Option<String>)]
    pub job_id: Option<Key>,
    /// Its outputs, once Successful.
    #[schema(value_type = Option<Object>)]
    pub outputs: Option<Value>,
    /// Why it failed or was skipped.
    pub reason: Option<String>,
    /// Taken over, with its outputs, from the run this one reruns.
    pub reused: bool,
    /// When its job started.
    pub start_time: Option<String>,
    /// When it ended.
    pub end_time: Option<String>,
}

fn run_info<S: Store>(st: &AppState<S>, r: &PipelineRun) -> RunInfo {
    let tz = st.engine.config().time_zone;
    RunInfo {
        run_id: r.id,
        pipeline_id: r.pipeline,
        name: r.plan.def.name.clone(),
        state: r.state.as_str(),
        stopping: r.stopping && r.state == rpa_core::pipeline::RunState::Running,
        inputs: Value::Object(r.inputs.clone()),
        rerun_of: r.rerun_of,
        create_time: r.created_at.format_local(tz),
        end_time: r.ended_at.map(|t| t.format_local(tz)),
        steps: r
            .steps
            .iter()
            .zip(&r.plan.def.steps)
            .map(|(s, d)| StepInfo {
                name: d.name.clone(),
                process: d.process.clone(),
                state: s.state.as_str(),
                job_id: s.job_key,
                outputs: s.outputs.as_deref().cloned(),
                reason: s.reason.clone(),
                reused: s.reused,
                start_time: s.started_at.map(|t| t.format_local(tz)),
                end_time: s.ended_at.map(|t| t.format_local(tz)),
            })
            .collect(),
    }
}

fn numeric(what: &str, s: &str) -> Result<i64, BusinessError> {
    s.parse()
        .map_err(|_| BusinessError::refused(format!("{what} {s} not found")))
}

/// Saves a pipeline (permission ManageProcesses): `{name, inputs?, steps:
/// [{name, process, arguments?, outputs?, after?, onFailure?}]}`. A
/// definition with a cycle, an unknown reference, an unbound required
/// argument or a wrong literal is refused with the reason.
#[utoipa::path(post, path = "/admin/pipelines", tag = "admin",
    params(("X-Access-Token" = String, Header, description = "an administrator's session")),
    request_body(content = Object, description = "a pipeline definition"),
    responses((status = 200, description = "the pipeline", body = Envelope<PipelineInfo>)))]
pub(crate) async fn save_pipeline<S: Store>(
    State(st): State<AppState<S>>,
    h: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Answer<PipelineInfo> {
    let me = admin(&st, &h, Permission::ManageProcesses).await?;
    let f = fields(body)?;
    let def: PipelineDef = serde_json::from_value(Value::Object(f.0))
        .map_err(|e| BusinessError::refused(format!("invalid pipeline definition: {e}")))?;
    let p = st.engine.save_pipeline(Actor::User(me.id), def).await?;
    Ok(Done::ok(pipeline_info(&st, &p)))
}

/// Every pipeline (permission ManageProcesses).
#[utoipa::path(get, path = "/admin/pipelines", tag = "admin",
    params(("X-Access-Token" = String, Header, description = "an administrator's session")),
    responses((status = 200, description = "the pipelines", body = Envelope<Vec<PipelineInfo>>)))]
pub(crate) async fn list_pipelines<S: Store>(State(st): State<AppState<S>>, h: HeaderMap) -> Answer<Vec<PipelineInfo>> {
    admin(&st, &h, Permission::ManageProcesses).await?;
    let ps = st.engine.pipelines().await?;
    Ok(Done::ok(ps.iter().map(|p| pipeline_info(&st, p)).collect()))
}

/// A pipeline (permission ManageProcesses).
#[utoipa::path(get, path = "/admin/pipelines/{pipelineId}", tag = "admin",
    params(("X-Access-Token" = String, Header, description = "an administrator's session"),
        ("pipelineId" = i64, Path, description = "the pipeline")),
    responses((status = 200, description = "the pipeline", body = Envelope<PipelineInfo>)))]
pub(crate) async fn get_pipeline<S: Store>(
    State(st): State<AppState<S>>,
    h: HeaderMap,
    Path(id): Path<String>,
) -> Answer<PipelineInfo> {
    admin(&st, &h, Permission::ManageProcesses).await?;
    let p = st.engine.pipeline(numeric("pipeline", &id)?).await?;
    Ok(Done::ok(pipeline_info(&st, &p)))
}

/// Starts a run (permission OperateAllJobs): `{inputs: {...}}` with every
/// declared input; its jobs run as the caller.
#[utoipa::path(post, path = "/admin/pipelines/{pipelineId}/runs", tag = "admin",
    params(("X-Access-Token" = String, Header, description = "an administrator's session"),
        ("pipelineId" = i64, Path, description = "the pipeline")),
    request_body(content = Object, description = "`{inputs}`"),
    responses((status = 200, description = "the run", body = Envelope<RunInfo>)))]
pub(crate) async fn start_run<S: Store>(
    State(st): State<AppState<S>>,
    h: HeaderMap,
    Path(id): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> Answer<RunInfo> {
    let me = admin(&st, &h, Permission::OperateAllJobs).await?;
    let id = numeric("pipeline", &id)?;
    let f = fields(body)?;
    let inputs = match f.0.get("inputs") {
        None | Some(Value::Null) => serde_json::Map::new(),
        Some(Value::Object(m)) => m.clone(),
        Some(_) => return Err(BusinessError::refused("inputs must be a JSON object")),
    };
    if let Some(k) = f.0.keys().find(|k| *k != "inputs") {
        return Err(BusinessError::refused(format!("unknown field '{k}'")));
    }
    let r = st.engine.start_pipeline(Actor::User(me.id), &me, id, inputs).await?;
    Ok(Done::ok(run_info(&st, &r)))
}

/// A pipeline's runs, oldest first (permission OperateAllJobs); page on
/// with `after` = the last `runId`.
#[utoipa::path(get, path = "/admin/pipelines/{pipelineId}/runs", tag = "admin",
    params(("X-Access-Token" = String, Header, description = "an administrator's session"),
        ("pipelineId" = i64, Path, description = "the pipeline"),
        ("after" = Option<i64>, Query, description = "runs after this one"),
        ("limit" = Option<usize>, Query, description = "at most this many (default 100, at most 1000)")),
    responses((status = 200, description = "the runs", body = Envelope<Vec<RunInfo>>)))]
pub(crate) async fn list_runs<S: Store>(
    State(st): State<AppState<S>>,
    h: HeaderMap,
    Path(id): Path<String>,
    Query(q): Query<std::collections::HashMap<String, String>>,
) -> Answer<Vec<RunInfo>> {
    admin(&st, &h, Permission::OperateAllJobs).await?;
    let id = numeric("pipeline", &id)?;
    let num = |k: &str, default: i64| -> Result<i64, BusinessError> {
        q.get(k).map_or(Ok(default), |v| {
            v.parse()
                .map_err(|_| BusinessError::refused(format!("{k} must be a number")))
        })
    };
    let after = num("after", 0)?;
    let limit = num("limit", 100)?.clamp(1, 1000) as usize;
    let runs = st.engine.pipeline_runs(id, after, limit).await?;
    Ok(Done::ok(runs.iter().map(|r| run_info(&st, r)).collect()))
}

/// A run with its steps (permission OperateAllJobs).
#[utoipa::path(get, path = "/admin/pipeline-runs/{runId}", tag = "admin",
    params(("X-Access-Token" = String, Header, description = "an administrator's session"),
        ("runId" = i64, Path, description = "the run")),
    responses((status = 200, description = "the run", body = Envelope<RunInfo>)))]
pub(crate) async fn get_run<S: Store>(
    State(st): State<AppState<S>>,
    h: HeaderMap,
    Path(id): Path<String>,
) -> Answer<RunInfo> {
    admin(&st, &h, Permission::OperateAllJobs).await?;
    let r = st.engine.pipeline_run(numeric("pipeline run", &id)?).await?;
    Ok(Done::ok(run_info(&st, &r)))
}

/// Stops a run (permission OperateAllJobs): nothing more starts, its
/// running steps' jobs are stopped; it ends Stopped once they have.
#[utoipa::path(post, path = "/admin/pipeline-runs/{runId}/stop", tag = "admin",
    params(("X-Access-Token" = String, Header, description = "an administrator's session"),
        ("runId" = i64, Path, description = "the run")),
    responses((status = 200, description = "the run", body = Envelope<RunInfo>)))]
pub(crate) async fn stop_run<S: Store>(
    State(st): State<AppState<S>>,
    h: HeaderMap,
    Path(id): Path<String>,
) -> Answer<RunInfo> {
    let me = admin(&st, &h, Permission::OperateAllJobs).await?;
    let r = st
        .engine
        .stop_pipeline_run(Actor::User(me.id), numeric("pipeline run", &id)?)
        .await?;
    Ok(Done::ok(run_info(&st, &r)))
}

/// Reruns an ended run that did not succeed (permission OperateAllJobs):
/// a new run that keeps its succeeded steps' outputs and runs the others.
#[utoipa::path(post, path = "/admin/pipeline-runs/{runId}/rerun", tag = "admin",
    params(("X-Access-Token" = String, Header, description = "an administrator's session"),
        ("runId" = i64, Path, description = "the run to rerun")),
    responses((status = 200, description = "the new run", body = Envelope<RunInfo>)))]
pub(crate) async fn rerun<S: Store>(
    State(st): State<AppState<S>>,
    h: HeaderMap,
    Path(id): Path<String>,
) -> Answer<RunInfo> {
    let me = admin(&st, &h, Permission::OperateAllJobs).await?;
    let r = st
        .engine
        .rerun_pipeline(Actor::User(me.id), &me, numeric("pipeline run", &id)?)
        .await?;
    Ok(Done::ok(run_info(&st, &r)))
}

// ------------------------------------------------------------------ pools

/// An elastic pool: what an autoscaler reads.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PoolInfo {
    /// The pool.
    pub name: String,
    /// Fewest robots it wants.
    pub min: u32,
    /// Most robots it wants.
    pub max: u32,
    /// How long a robot it no longer wants may stay idle.
    pub idle_grace_seconds: u64,
    /// The robots it wants (recorded by the timer holder, about once a second).
    pub desired: u32,
    /// The demand behind that figure.
    pub demand: DemandInfo,
    /// Its robots connected now (Available, Busy or Unresponsive).
    pub connected: u32,
    /// Of those, the ones running a job.
    pub busy: u32,
    /// When `desired` last changed.
    pub change_time: String,
    /// The executor image its robots start with.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    /// The version pinned, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub image_version: Option<String>,
}

/// Work for a pool's robots, in robots.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DemandInfo {
    /// Running jobs.
    pub running: u32,
    /// Pending jobs that may run now.
    pub pending: u32,
    /// Queue items a trigger would start now.
    pub waiting: u32,
}

/// A pool's bounds.
#[derive(Debug, serde::Deserialize, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct PoolBounds {
    /// Fewest robots it wants (default 0).
    #[serde(default)]
    pub min: u32,
    /// Most robots it wants.
    pub max: u32,
    /// How long a robot it no longer wants may stay idle (default 60).
    pub idle_grace_seconds: Option<u64>,
    /// The executor image its provisioner starts robots with.
    pub image: Option<String>,
    /// The image version it is pinned to (default: the latest not retired).
    pub image_version: Option<String>,
}

async fn pool_infos<S: Store>(st: &AppState<S>, only: Option<&str>) -> Result<Vec<PoolInfo>, BusinessError> {
    let tz = st.engine.config().time_zone;
    let robots = st.engine.store().robots().await.map_err(rpa_core::Error::from)?;
    let pools = st.engine.pools().await?;
    Ok(pools
        .into_iter()
        .filter(|p| only.is_none_or(|n| n == p.spec.name))
        .map(|p| {
            let mine = robots.iter().filter(|r| r.profile.pool == p.spec.name);
            let connected: Vec<_> = mine
                .filter(|r| r.state != rpa_core::model::RobotState::Disconnected)
                .collect();
            PoolInfo {
                min: p.spec.min,
                max: p.spec.max,
                idle_grace_seconds: p.spec.idle_grace_seconds,
                desired: p.desired,
                demand: DemandInfo {
                    running: p.demand.running,
                    pending: p.demand.pending,
                    waiting: p.demand.waiting,
                },
                connected: connected.len() as u32,
                busy: connected.iter().filter(|r| r.job.is_some()).count() as u32,
                change_time: p.changed_at.format_local(tz),
                image: p.spec.image.clone(),
                image_version: p.spec.image_version.clone(),
                name: p.spec.name,
            }
        })
        .collect())
}

/// Every elastic pool (permission ManageRobots).
#[utoipa::path(get, path = "/admin/pools", tag = "admin",
    params(("X-Access-Token" = String, Header, description = "an administrator's session")),
    responses((status = 200, description = "the pools", body = Envelope<Vec<PoolInfo>>)))]
pub(crate) async fn list_pools<S: Store>(State(st): State<AppState<S>>, h: HeaderMap) -> Answer<Vec<PoolInfo>> {
    admin(&st, &h, Permission::ManageRobots).await?;
    Ok(Done::ok(pool_infos(&st, None).await?))
}

/// Saves a pool's bounds (permission ManageRobots).
#[utoipa::path(put, path = "/admin/pools/{name}", tag = "admin",
    params(("X-Access-Token" = String, Header, description = "an administrator's session"),
        ("name" = String, Path, description = "the pool")),
    request_body = PoolBounds,
    responses((status = 200, description = "the pool", body = Envelope<PoolInfo>)))]
pub(crate) async fn put_pool<S: Store>(
    State(st): State<AppState<S>>,
    h: HeaderMap,
    Path(name): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> Answer<PoolInfo> {
    let me = admin(&st, &h, Permission::ManageRobots).await?;
    let f = fields(body)?;
    let b: PoolBounds =
        serde_json::from_value(Value::Object(f.0)).map_err(|e| BusinessError::refused(format!("invalid pool: {e}")))?;
    let spec = rpa_core::pool::PoolSpec {
        name: name.clone(),
        min: b.min,
        max: b.max,
        idle_grace_seconds: b.idle_grace_seconds.unwrap_or(60),
        image: b.image,
        image_version: b.image_version,
    };
    st.engine.save_pool(Actor::User(me.id), spec).await?;
    let mut infos = pool_infos(&st, Some(&name)).await?;
    infos.pop().map(Done::ok).ok_or(BusinessError::Internal)
}
