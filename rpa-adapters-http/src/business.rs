//! Seed 000, "business systems calling RPA processes", as a translation
//! table onto the engine:
//!
//! | path (POST) | request | engine call | result |
//! |---|---|---|---|
//! | `/rpa/api/login` | [`LoginRequest`] | `login` | [`LoginResult`] `{token, processes:[{id,name,type}]}` |
//! | `/rpa/api/logout` | — | `logout` | — |
//! | `/rpa/api/queryProcess` | [`ProcessRequest`] | `query_process` | [`ProcessInfo`] |
//! | `/rpa/api/startJob` | [`StartJobRequest`] | `start_job` | [`StartedJob`] `{jobId, status, creationTime, type}` |
//! | `/rpa/api/stopJob` | [`JobRequest`] | `stop_job` (SoftStop) | — |
//! | `/rpa/api/jobStatus` | [`JobRequest`] | `job_status` | `[`[`JobStep`]`]` |
//! | `/rpa/api/addQueueItem` | [`AddQueueItemRequest`] | `add_queue_item` | [`AddedItem`] `{key, status, creationTime}` |
//! | `/rpa/api/queryProcessJob` | [`QueryProcessJobRequest`] | `query_process_jobs` | [`JobPage`] `{total, record:[...]}` |
//!
//! The envelope and the errors are [`crate::seed000`]'s. Times are
//! `yyyy-MM-dd HH:mm:ss` in the server's time zone. Queue item state
//! `Deleted` is rendered `Delete`; a job that is stopping is `Running`.

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::http::HeaderMap;
use axum::routing::post;
use rpa_core::engine::{JobQueryParams, NewQueueItem};
use rpa_core::error::Error;
use rpa_core::job::StopStrategy;
use rpa_core::model::{ItemState, Job, JobState, Process, User};
use rpa_core::{Key, Store, Timestamp};
use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;

use crate::AppState;
use crate::seed000::{Answer, BusinessError, Done, Envelope, fields, session};
use crate::wire::{Fields, key};

/// The seed 000 routes.
pub fn router<S: Store>() -> Router<AppState<S>> {
    Router::new()
        .route("/rpa/api/login", post(login::<S>))
        .route("/rpa/api/logout", post(logout::<S>))
        .route("/rpa/api/queryProcess", post(query_process::<S>))
        .route("/rpa/api/startJob", post(start_job::<S>))
        .route("/rpa/api/stopJob", post(stop_job::<S>))
        .route("/rpa/api/jobStatus", post(job_status::<S>))
        .route("/rpa/api/addQueueItem", post(add_queue_item::<S>))
        .route("/rpa/api/queryProcessJob", post(query_process_job::<S>))
}

// ------------------------------------------------------------------ requests

/// `login`'s body.
#[derive(Debug, ToSchema)]
pub struct LoginRequest {
    /// Login name.
    pub username: String,
    /// Password.
    #[schema(format = Password)]
    pub password: String,
}

impl LoginRequest {
    fn read(f: &Fields) -> Result<LoginRequest, BusinessError> {
        let password = match f.value("password") {
            Some(Value::String(p)) => p.clone(),
            Some(_) => return Err(BusinessError::refused("password must be a string")),
            None => return Err(BusinessError::refused("password is required")),
        };
        Ok(LoginRequest {
            username: f.str("username")?.to_owned(),
            password,
        })
    }
}

/// A body naming a process.
#[derive(Debug, ToSchema)]
#[schema(rename_all = "camelCase")]
pub struct ProcessRequest {
    /// The process's 32-character id.
    pub process_id: String,
}

/// A body naming a job.
#[derive(Debug, ToSchema)]
#[schema(rename_all = "camelCase")]
pub struct JobRequest {
    /// The job's 32-character id (`startJob`'s `jobId`).
    pub job_id: String,
}

/// `startJob`'s body.
#[derive(Debug, ToSchema)]
#[schema(rename_all = "camelCase")]
pub struct StartJobRequest {
    /// The process's 32-character id.
    pub process_id: String,
    /// The arguments, by name: a JSON object, or a string holding one.
    #[schema(value_type = Object)]
    pub params: Option<Value>,
}

/// `addQueueItem`'s body.
#[derive(Debug, ToSchema)]
#[schema(rename_all = "camelCase")]
pub struct AddQueueItemRequest {
    /// The queue process's 32-character id.
    pub process_id: String,
    /// The item's data: a JSON object, or a string holding one.
    #[schema(value_type = Object)]
    pub params: Option<Value>,
    /// A reference unique within the queue.
    pub reference: Option<String>,
    /// Priority (higher first), -1000 to 1000.
    pub priority: Option<i32>,
}

/// `queryProcessJob`'s body.
#[derive(Debug, ToSchema)]
#[schema(rename_all = "camelCase")]
pub struct QueryProcessJobRequest {
    /// The process's 32-character id.
    pub process_id: String,
    /// Only jobs in this state (Pending, Running, Faulted, Successful, Stopped, Canceled).
    pub state: Option<String>,
    /// Created at or after (`yyyy-MM-dd HH:mm:ss`; default 30 days before `endTime`).
    pub start_time: Option<String>,
    /// Created at or before (`yyyy-MM-dd HH:mm:ss`; default now). At most one month after `startTime`.
    pub end_time: Option<String>,
}

fn process_key(f: &Fields) -> Result<Key, BusinessError> {
    let s = f.str("processId")?;
    key("processId", s).map_err(|_| BusinessError::refused(format!("process {s} not found")))
}

fn job_key(f: &Fields) -> Result<Key, BusinessError> {
    let s = f.str("jobId")?;
    key("jobId", s).map_err(|_| BusinessError::refused(format!("job {s} not found")))
}

// ------------------------------------------------------------------- results

/// A process the user may start.
#[derive(Debug, Serialize, ToSchema)]
pub struct ProcessRef {
    /// 32-character id.
    #[schema(value_type = String)]
    pub id: Key,
    /// Name.
    pub name: String,
    /// Unattended, Attended or Queue.
    #[serde(rename = "type")]
    pub process_type: &'static str,
}

/// `login`'s result.
#[derive(Debug, Serialize, ToSchema)]
pub struct LoginResult {
    /// The `X-Access-Token` for the next 30 minutes.
    pub token: String,
    /// Exactly the processes granted to the user.
    pub processes: Vec<ProcessRef>,
}

/// An argument of a process.
#[derive(Debug, Serialize, ToSchema)]
pub struct ArgumentInfo {
    /// Name (the key in `params`).
    pub name: String,
    /// Id.
    pub id: String,
    /// Type: string, int, bool, ...
    #[serde(rename = "type")]
    pub arg_type: &'static str,
    /// `"true"` or `"false"`.
    pub required: String,
}

/// `queryProcess`'s result.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ProcessInfo {
    /// 32-character id.
    #[schema(value_type = String)]
    pub process_id: Key,
    /// Name.
    pub process_name: String,
    /// Its arguments.
    pub argument: Vec<ArgumentInfo>,
    /// Most jobs running at once (0: no limit).
    pub max_run_num: u32,
    /// Jobs running now.
    pub current_run_num: u32,
    /// Most successful runs a day (0: no limit).
    pub max_day_num: u32,
    /// Unattended, Attended or Queue.
    #[serde(rename = "type")]
    pub process_type: &'static str,
    /// Package version.
    pub version: String,
}

/// `startJob`'s result.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct StartedJob {
    /// 32-character job id.
    #[schema(value_type = String)]
    pub job_id: Key,
    /// Its state.
    pub status: &'static str,
    /// When it was created.
    pub creation_time: String,
    /// The process type.
    #[serde(rename = "type")]
    pub process_type: &'static str,
}

/// One of `jobStatus`'s step records.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct JobStep {
    /// Process name.
    pub process_name: String,
    /// Process serial id.
    pub process_id: i64,
    /// 1 for a step at which the job pauses for a person.
    pub stop_tag: i32,
    /// The step's number.
    pub step: u32,
    /// The step record's id.
    pub id: i64,
    /// The process's data step it ran.
    pub task_process_id: i64,
    /// The job's serial id.
    pub auto_job_id: i64,
    /// The job's state.
    pub status: &'static str,
}

/// `addQueueItem`'s result.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AddedItem {
    /// 32-character item id.
    #[schema(value_type = String)]
    pub key: Key,
    /// Its state.
    pub status: &'static str,
    /// When it was created.
    pub creation_time: String,
}

/// One job of `queryProcessJob`.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct JobRecord {
    /// 32-character process id.
    #[schema(value_type = String)]
    pub process_id: Key,
    /// Created.
    pub create_time: String,
    /// Started (`""` if not yet).
    pub begin_time: String,
    /// Ended (`""` if not yet).
    pub end_time: String,
    /// Who started it.
    pub user_name: String,
    /// Process name.
    pub process_name: String,
    /// 32-character job id.
    #[schema(value_type = String)]
    pub job_id: Key,
    /// Job number.
    pub job_number: i64,
    /// The package version it ran.
    pub version: String,
    /// Its state.
    pub state: &'static str,
    /// The job's serial id.
    pub oc_job_id: i64,
    /// The process's serial id.
    pub auto_process_id: i64,
    /// What the robot reported (`{}` if nothing).
    #[schema(value_type = Object)]
    pub output_values: Value,
}

/// `queryProcessJob`'s result.
#[derive(Debug, Serialize, ToSchema)]
pub struct JobPage {
    /// How many jobs match (`record` holds at most the server's limit).
    pub total: u64,
    /// The newest matching jobs first.
    pub record: Vec<JobRecord>,
}

fn time<S: Store>(st: &AppState<S>, t: Option<Timestamp>) -> String {
    t.map(|t| t.format_local(st.engine.config().time_zone))
        .unwrap_or_default()
}

fn item_state(s: ItemState) -> &'static str {
    match s {
        ItemState::Deleted => "Delete",
        s => s.as_str(),
    }
}

/// Seed 000 job status words: Stopping is still running from the caller's
/// view, and so is a job Suspended at a pause step (`jobStatus` shows the
/// step with `stopTag` 1).
pub(crate) fn job_state(s: JobState) -> &'static str {
    match s {
        JobState::Stopping | JobState::Suspended => "Running",
        s => s.as_str(),
    }
}

fn process_type(p: &Process) -> &'static str {
    p.spec.process_type.as_str()
}

/// An authenticated request: the user behind the token and the body's fields.
async fn request<S: Store>(
    st: &AppState<S>,
    headers: &HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<(User, Fields), BusinessError> {
    let user = session(st, headers).await?;
    Ok((user, fields(body)?))
}

// ------------------------------------------------------------------ handlers

/// Logs in: a token for `X-Access-Token`, and the processes granted.
#[utoipa::path(post, path = "/rpa/api/login", tag = "business",
    request_body = LoginRequest,
    responses((status = 200, description = "`success` false: wrong password, or locked after five", body = Envelope<LoginResult>)))]
pub(crate) async fn login<S: Store>(
    State(st): State<AppState<S>>,
    body: Result<Bytes, BytesRejection>,
) -> Answer<LoginResult> {
    let req = LoginRequest::read(&fields(body)?)?;
    // An argon2 check costs tens of milliseconds of CPU: it runs on a
    // blocking thread, so logins never stall the requests of an async worker.
    let engine = st.engine.clone();
    let directory = st.directory.clone();
    let runtime = tokio::runtime::Handle::current();
    let login = tokio::task::spawn_blocking(move || {
        runtime.block_on(engine.login_with(&req.username, &req.password, directory.as_deref()))
    })
    .await
    .map_err(|e| Error::Internal(format!("login task: {e}")))??;
    Ok(Done::ok(LoginResult {
        token: login.token,
        processes: login
            .processes
            .iter()
            .map(|p| ProcessRef {
                id: p.key,
                name: p.spec.name.clone(),
                process_type: process_type(p),
            })
            .collect(),
    }))
}

/// Ends the session of `X-Access-Token`.
#[utoipa::path(post, path = "/rpa/api/logout", tag = "business",
    params(("X-Access-Token" = String, Header, description = "the session")),
    responses((status = 200, description = "logged out", body = Envelope<Object>)))]
pub(crate) async fn logout<S: Store>(State(st): State<AppState<S>>, headers: HeaderMap) -> Answer<()> {
    let token = headers
        .get("x-access-token")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    st.engine.logout(token.trim()).await?;
    Ok(Done::said("logged out"))
}

/// A process granted to the user: its arguments, limits and type.
#[utoipa::path(post, path = "/rpa/api/queryProcess", tag = "business",
    params(("X-Access-Token" = String, Header, description = "the session")),
    request_body = ProcessRequest,
    responses((status = 200, description = "the process", body = Envelope<ProcessInfo>),
        (status = 401, description = "no valid token", body = Envelope<Object>)))]
pub(crate) async fn query_process<S: Store>(
    State(st): State<AppState<S>>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Answer<ProcessInfo> {
    let (user, f) = request(&st, &headers, body).await?;
    let p = st.engine.query_process(&user, process_key(&f)?).await?;
    Ok(Done::ok(ProcessInfo {
        process_id: p.key,
        process_name: p.spec.name.clone(),
        argument: p
            .spec
            .arguments
            .iter()
            .map(|a| ArgumentInfo {
                name: a.name.clone(),
                id: a.id.clone(),
                arg_type: a.arg_type.as_str(),
                required: a.required.to_string(),
            })
            .collect(),
        max_run_num: p.spec.max_run_num,
        current_run_num: p.running,
        max_day_num: p.spec.max_day_num,
        process_type: process_type(&p),
        version: p.spec.version.clone(),
    }))
}

/// Starts a job of a granted process with the given arguments.
#[utoipa::path(post, path = "/rpa/api/startJob", tag = "business",
    params(("X-Access-Token" = String, Header, description = "the session")),
    request_body = StartJobRequest,
    responses((status = 200, description = "the job, Pending or Running; `success` false past maxDayNum or for bad arguments", body = Envelope<StartedJob>),
        (status = 401, description = "no valid token", body = Envelope<Object>)))]
pub(crate) async fn start_job<S: Store>(
    State(st): State<AppState<S>>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Answer<StartedJob> {
    let (user, f) = request(&st, &headers, body).await?;
    let k = process_key(&f)?;
    let params = f.json_object("params")?;
    let job = st.engine.start_job(&user, k, &params).await?;
    let p = st.engine.query_process(&user, k).await?;
    Ok(Done::ok(StartedJob {
        job_id: job.key,
        status: job_state(job.state),
        creation_time: time(&st, Some(job.created_at)),
        process_type: process_type(&p),
    }))
}

/// Asks a job to stop (SoftStop): a job not yet started is canceled.
#[utoipa::path(post, path = "/rpa/api/stopJob", tag = "business",
    params(("X-Access-Token" = String, Header, description = "the session")),
    request_body = JobRequest,
    responses((status = 200, description = "what was done, in `message`", body = Envelope<Object>),
        (status = 401, description = "no valid token", body = Envelope<Object>)))]
pub(crate) async fn stop_job<S: Store>(
    State(st): State<AppState<S>>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Answer<()> {
    let (user, f) = request(&st, &headers, body).await?;
    let job = st.engine.stop_job(&user, job_key(&f)?, StopStrategy::SoftStop).await?;
    Ok(Done::said(match job.state {
        JobState::Canceled => "the job was canceled before it started",
        JobState::Stopping => "the robot was told to stop the job",
        _ => "the job was stopped",
    }))
}

/// `jobStatus`'s records: one per step the robot reported, in order; one
/// for step 0 (`id` and `taskProcessId` 0) while it has reported none.
fn step_records(job: &Job, p: &Process) -> Vec<JobStep> {
    let record = |id: i64, step: u32, task: i64, pause: bool| JobStep {
        process_name: p.spec.name.clone(),
        process_id: p.id.0,
        stop_tag: i32::from(pause),
        step,
        id,
        task_process_id: task,
        auto_job_id: job.id.0,
        status: job_state(job.state),
    };
    if job.step_records.is_empty() {
        return vec![record(0, 0, 0, false)];
    }
    job.step_records
        .iter()
        .map(|s| record(s.id, s.step, s.task, s.pause))
        .collect()
}

/// A job's state and the steps its robot reported.
#[utoipa::path(post, path = "/rpa/api/jobStatus", tag = "business",
    params(("X-Access-Token" = String, Header, description = "the session")),
    request_body = JobRequest,
    responses((status = 200, description = "the job's steps", body = Envelope<Vec<JobStep>>),
        (status = 401, description = "no valid token", body = Envelope<Object>)))]
pub(crate) async fn job_status<S: Store>(
    State(st): State<AppState<S>>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Answer<Vec<JobStep>> {
    let (user, f) = request(&st, &headers, body).await?;
    let (job, p) = st.engine.job_status(&user, job_key(&f)?).await?;
    Ok(Done::ok(step_records(&job, &p)))
}

/// Adds an item to a Queue process (refused past its max pending items).
#[utoipa::path(post, path = "/rpa/api/addQueueItem", tag = "business",
    params(("X-Access-Token" = String, Header, description = "the session")),
    request_body = AddQueueItemRequest,
    responses((status = 200, description = "the item", body = Envelope<AddedItem>),
        (status = 401, description = "no valid token", body = Envelope<Object>)))]
pub(crate) async fn add_queue_item<S: Store>(
    State(st): State<AppState<S>>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Answer<AddedItem> {
    let (user, f) = request(&st, &headers, body).await?;
    let k = process_key(&f)?;
    let new = NewQueueItem {
        content: f.json_object("params")?,
        reference: f.opt_str("reference")?.map(str::to_owned),
        priority: f.opt_i64("priority")?.map(|p| p.clamp(-1000, 1000) as i32),
        ..NewQueueItem::default()
    };
    let item = st.engine.add_queue_item(&user, k, new).await?;
    Ok(Done::ok(AddedItem {
        key: item.key,
        status: item_state(item.state),
        creation_time: time(&st, Some(item.created_at)),
    }))
}

/// A process's jobs in a time window, newest first.
#[utoipa::path(post, path = "/rpa/api/queryProcessJob", tag = "business",
    params(("X-Access-Token" = String, Header, description = "the session")),
    request_body = QueryProcessJobRequest,
    responses((status = 200, description = "the jobs", body = Envelope<JobPage>),
        (status = 401, description = "no valid token", body = Envelope<Object>)))]
pub(crate) async fn query_process_job<S: Store>(
    State(st): State<AppState<S>>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Answer<JobPage> {
    let (user, f) = request(&st, &headers, body).await?;
    let k = process_key(&f)?;
    // The filter matches what the answer shows: Stopping and Suspended are shown as Running.
    let states = match f.opt_str("state")? {
        None => vec![],
        Some(s) => match JobState::parse(s) {
            Some(JobState::Running) => vec![JobState::Running, JobState::Stopping, JobState::Suspended],
            Some(st) if st != JobState::Stopping && st != JobState::Suspended => vec![st],
            _ => {
                return Err(BusinessError::refused(
                    "state must be one of Pending, Running, Faulted, Successful, Stopped, Canceled",
                ));
            }
        },
    };
    let zone = st.engine.config().time_zone;
    let parse = |name: &str| -> Result<Option<Timestamp>, BusinessError> {
        match f.opt_str(name)? {
            None => Ok(None),
            Some(s) => Timestamp::parse_local(s, zone)
                .map(Some)
                .ok_or_else(|| BusinessError::refused(format!("{name} must be formatted yyyy-MM-dd HH:mm:ss"))),
        }
    };
    let (start, end) = (parse("startTime")?, parse("endTime")?);
    let (total, jobs, p) = st
        .engine
        .query_process_jobs(&user, k, JobQueryParams { states, start, end })
        .await?;
    let record = jobs
        .iter()
        .map(|j| JobRecord {
            process_id: p.key,
            create_time: time(&st, Some(j.created_at)),
            begin_time: time(&st, j.started_at),
            end_time: time(&st, j.ended_at),
            user_name: j.user_name.to_string(),
            process_name: p.spec.name.clone(),
            job_id: j.key,
            job_number: j.job_number,
            version: j.package_version.as_deref().unwrap_or(&p.spec.version).to_owned(),
            state: job_state(j.state),
            oc_job_id: j.id.0,
            auto_process_id: p.id.0,
            output_values: j.outputs.as_deref().cloned().unwrap_or_else(|| serde_json::json!({})),
        })
        .collect();
    Ok(Done::ok(JobPage { total, record }))
}
