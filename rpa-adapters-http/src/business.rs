//! Seed 000, "business systems calling RPA processes", as a translation
//! table onto the engine:
//!
//! | path (POST) | engine call | result |
//! |---|---|---|
//! | `/rpa/api/login` | `login` | `{token, processes:[{id,name,type}]}` |
//! | `/rpa/api/queryProcess` | `query_process` | `{processId, processName, argument, maxRunNum, currentRunNum, maxDayNum, type, version}` |
//! | `/rpa/api/startJob` | `start_job` | `{jobId, status, creationTime, type}` |
//! | `/rpa/api/stopJob` | `stop_job` (SoftStop) | — |
//! | `/rpa/api/jobStatus` | `job_status` | `[{processName, processId, stopTag, step, id, taskProcessId, autoJobId, status}]` |
//! | `/rpa/api/addQueueItem` | `add_queue_item` | `{key, status, creationTime}` |
//! | `/rpa/api/queryProcessJob` | `query_process_jobs` | `{total, record:[...]}` |
//!
//! Envelope `{success, message, code, result, timestamp}` (DESIGN §7):
//! `timestamp` is epoch milliseconds; `result` is a JSON value and is
//! present only on success. A business failure is HTTP 200 with
//! `success:false, code:500`; a missing, wrong or expired `X-Access-Token`
//! is HTTP 401 with `code:401`. Times are `yyyy-MM-dd HH:mm:ss` in the
//! server's time zone. Queue item state `Deleted` is rendered `Delete`.

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use rpa_core::engine::{JobQueryParams, NewQueueItem};
use rpa_core::error::Error;
use rpa_core::job::StopStrategy;
use rpa_core::model::{ItemState, Job, JobState, Process, User};
use rpa_core::{Store, Timestamp};
use serde_json::{Value, json};

use crate::AppState;
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

/// A seed 000 answer.
pub struct Answer {
    status: StatusCode,
    code: i32,
    message: String,
    result: Option<Value>,
}

impl Answer {
    /// Success with a result.
    pub fn ok(result: Value) -> Answer {
        Answer {
            status: StatusCode::OK,
            code: 200,
            message: "success".into(),
            result: Some(result),
        }
    }
    /// Success without a result.
    pub fn done(message: &str) -> Answer {
        Answer {
            status: StatusCode::OK,
            code: 200,
            message: message.into(),
            result: None,
        }
    }
    /// A business failure (HTTP 200, code 500).
    pub fn fail(message: impl Into<String>) -> Answer {
        Answer {
            status: StatusCode::OK,
            code: 500,
            message: message.into(),
            result: None,
        }
    }
    /// A request no endpoint takes: HTTP `status` (404, 405), the same code.
    pub(crate) fn no_route(status: StatusCode, message: String) -> Answer {
        Answer {
            status,
            code: i32::from(status.as_u16()),
            message,
            result: None,
        }
    }
}

impl IntoResponse for Answer {
    fn into_response(self) -> Response {
        let mut body = json!({
            "success": self.code == 200,
            "message": self.message,
            "code": self.code,
            "timestamp": chrono::Utc::now().timestamp_millis(),
        });
        if let Some(r) = self.result {
            body["result"] = r;
        }
        (self.status, axum::Json(body)).into_response()
    }
}

impl From<Error> for Answer {
    fn from(e: Error) -> Answer {
        match e {
            Error::Unauthenticated => Answer {
                status: StatusCode::UNAUTHORIZED,
                code: 401,
                message: "invalid or expired X-Access-Token; log in again".into(),
                result: None,
            },
            e if e.is_client_error() => Answer::fail(e.to_string()),
            e => {
                tracing::error!(error = %e, "business API internal error");
                Answer {
                    status: StatusCode::INTERNAL_SERVER_ERROR,
                    code: 500,
                    message: "internal error".into(),
                    result: None,
                }
            }
        }
    }
}

/// Reads the body as a JSON object; oversize and malformed bodies become answers.
pub(crate) fn fields(body: Result<Bytes, BytesRejection>) -> Result<Fields, Answer> {
    let bytes = body.map_err(|r| Answer {
        status: r.status(),
        code: 500,
        message: format!("cannot read the request body: {}", r.body_text()),
        result: None,
    })?;
    Fields::parse(&bytes).map_err(Answer::fail)
}

/// The user behind `X-Access-Token`.
pub(crate) async fn session<S: Store>(st: &AppState<S>, headers: &HeaderMap) -> Result<User, Answer> {
    let token = headers
        .get("x-access-token")
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .unwrap_or("");
    if token.is_empty() {
        return Err(Error::Unauthenticated.into());
    }
    Ok(st.engine.authenticate(token).await?)
}

/// An authenticated request: the user behind the token and the body's fields.
async fn request<S: Store>(
    st: &AppState<S>,
    headers: &HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<(User, Fields), Answer> {
    let user = session(st, headers).await?;
    Ok((user, fields(body)?))
}

fn process_key(f: &Fields) -> Result<rpa_core::Key, Answer> {
    let s = f.str("processId").map_err(Answer::fail)?;
    key("processId", s).map_err(|_| Answer::fail(format!("process {s} not found")))
}

fn job_key(f: &Fields) -> Result<rpa_core::Key, Answer> {
    let s = f.str("jobId").map_err(Answer::fail)?;
    key("jobId", s).map_err(|_| Answer::fail(format!("job {s} not found")))
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

/// Seed 000 job status words: Stopping is still running from the caller's view.
pub(crate) fn job_state(s: JobState) -> &'static str {
    match s {
        JobState::Stopping => "Running",
        s => s.as_str(),
    }
}

fn process_type(p: &Process) -> &'static str {
    p.spec.process_type.as_str()
}

macro_rules! answer {
    ($e:expr) => {
        match $e {
            Ok(v) => v,
            Err(a) => return Answer::from(a),
        }
    };
}

async fn login<S: Store>(State(st): State<AppState<S>>, body: Result<Bytes, BytesRejection>) -> Answer {
    let f = answer!(fields(body));
    let username = answer!(f.str("username").map_err(Answer::fail));
    let password = match f.value("password") {
        Some(Value::String(p)) => p.as_str(),
        Some(_) => return Answer::fail("password must be a string"),
        None => return Answer::fail("password is required"),
    };
    // An argon2 check costs tens of milliseconds of CPU: it runs on a
    // blocking thread, so logins never stall the requests of an async worker.
    let (engine, username, password) = (st.engine.clone(), username.to_owned(), password.to_owned());
    let runtime = tokio::runtime::Handle::current();
    let login = match tokio::task::spawn_blocking(move || runtime.block_on(engine.login(&username, &password))).await {
        Ok(result) => answer!(result),
        Err(e) => return Error::Internal(format!("login task: {e}")).into(),
    };
    let processes: Vec<Value> = login
        .processes
        .iter()
        .map(|p| json!({"id": p.key, "name": p.spec.name, "type": process_type(p)}))
        .collect();
    Answer::ok(json!({"token": login.token, "processes": processes}))
}

async fn logout<S: Store>(State(st): State<AppState<S>>, headers: HeaderMap) -> Answer {
    let token = headers
        .get("x-access-token")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    answer!(st.engine.logout(token.trim()).await);
    Answer::done("logged out")
}

async fn query_process<S: Store>(
    State(st): State<AppState<S>>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Answer {
    let (user, f) = answer!(request(&st, &headers, body).await);
    let k = answer!(process_key(&f));
    let p = answer!(st.engine.query_process(&user, k).await);
    let argument: Vec<Value> = p
        .spec
        .arguments
        .iter()
        .map(|a| json!({"name": a.name, "id": a.id, "type": a.arg_type.as_str(), "required": a.required.to_string()}))
        .collect();
    Answer::ok(json!({
        "processId": p.key,
        "processName": p.spec.name,
        "argument": argument,
        "maxRunNum": p.spec.max_run_num,
        "currentRunNum": p.running,
        "maxDayNum": p.spec.max_day_num,
        "type": process_type(&p),
        "version": p.spec.version,
    }))
}

async fn start_job<S: Store>(
    State(st): State<AppState<S>>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Answer {
    let (user, f) = answer!(request(&st, &headers, body).await);
    let k = answer!(process_key(&f));
    let params = answer!(f.json_object("params").map_err(Answer::fail));
    let job = answer!(st.engine.start_job(&user, k, &params).await);
    let p = answer!(st.engine.query_process(&user, k).await);
    Answer::ok(json!({
        "jobId": job.key,
        "status": job_state(job.state),
        "creationTime": time(&st, Some(job.created_at)),
        "type": process_type(&p),
    }))
}

async fn stop_job<S: Store>(
    State(st): State<AppState<S>>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Answer {
    let (user, f) = answer!(request(&st, &headers, body).await);
    let k = answer!(job_key(&f));
    let job = answer!(st.engine.stop_job(&user, k, StopStrategy::SoftStop).await);
    Answer::done(match job.state {
        JobState::Canceled => "the job was canceled before it started",
        JobState::Stopping => "the robot was told to stop the job",
        _ => "the job was stopped",
    })
}

/// One step record per job: the job itself, its progress (`step` counts the
/// checkpoints its robot reported) and its state.
/// `jobStatus`'s records: one per step the robot reported, in order; one
/// for step 0 (`id` and `taskProcessId` 0) while it has reported none.
fn step_records(job: &Job, p: &Process) -> Value {
    let record = |id: i64, step: u32, task: i64, pause: bool| {
        json!({
            "processName": p.spec.name,
            "processId": p.id.0,
            "stopTag": i32::from(pause),
            "step": step,
            "id": id,
            "taskProcessId": task,
            "autoJobId": job.id.0,
            "status": job_state(job.state),
        })
    };
    if job.step_records.is_empty() {
        return json!([record(0, 0, 0, false)]);
    }
    Value::Array(
        job.step_records
            .iter()
            .map(|s| record(s.id, s.step, s.task, s.pause))
            .collect(),
    )
}

async fn job_status<S: Store>(
    State(st): State<AppState<S>>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Answer {
    let (user, f) = answer!(request(&st, &headers, body).await);
    let k = answer!(job_key(&f));
    let (job, p) = answer!(st.engine.job_status(&user, k).await);
    Answer::ok(step_records(&job, &p))
}

async fn add_queue_item<S: Store>(
    State(st): State<AppState<S>>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Answer {
    let (user, f) = answer!(request(&st, &headers, body).await);
    let k = answer!(process_key(&f));
    let content = answer!(f.json_object("params").map_err(Answer::fail));
    let reference = answer!(f.opt_str("reference").map_err(Answer::fail)).map(str::to_owned);
    let priority = answer!(f.opt_i64("priority").map_err(Answer::fail)).map(|p| p.clamp(-1000, 1000) as i32);
    let new = NewQueueItem {
        content,
        reference,
        priority,
        ..NewQueueItem::default()
    };
    let item = answer!(st.engine.add_queue_item(&user, k, new).await);
    Answer::ok(json!({
        "key": item.key,
        "status": item_state(item.state),
        "creationTime": time(&st, Some(item.created_at)),
    }))
}

async fn query_process_job<S: Store>(
    State(st): State<AppState<S>>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Answer {
    let (user, f) = answer!(request(&st, &headers, body).await);
    let k = answer!(process_key(&f));
    // The filter matches what the answer shows: Stopping is shown as Running.
    let states = match answer!(f.opt_str("state").map_err(Answer::fail)) {
        None => vec![],
        Some(s) => match JobState::parse(s) {
            Some(JobState::Running) => vec![JobState::Running, JobState::Stopping],
            Some(st) if st != JobState::Stopping => vec![st],
            _ => return Answer::fail("state must be one of Pending, Running, Faulted, Successful, Stopped, Canceled"),
        },
    };
    let offset = st.engine.config().time_zone;
    let parse = |name: &str| -> Result<Option<Timestamp>, Answer> {
        match f.opt_str(name).map_err(Answer::fail)? {
            None => Ok(None),
            Some(s) => Timestamp::parse_local(s, offset)
                .map(Some)
                .ok_or_else(|| Answer::fail(format!("{name} must be formatted yyyy-MM-dd HH:mm:ss"))),
        }
    };
    let start = answer!(parse("startTime"));
    let end = answer!(parse("endTime"));
    let (total, jobs, p) = answer!(
        st.engine
            .query_process_jobs(&user, k, JobQueryParams { states, start, end })
            .await
    );
    let record: Vec<Value> = jobs
        .iter()
        .map(|j| {
            json!({
                "processId": p.key,
                "createTime": time(&st, Some(j.created_at)),
                "beginTime": time(&st, j.started_at),
                "endTime": time(&st, j.ended_at),
                "userName": &*j.user_name,
                "processName": p.spec.name,
                "jobId": j.key,
                "jobNumber": j.job_number,
                "version": j.package_version.as_deref().unwrap_or(&p.spec.version),
                "state": job_state(j.state),
                "ocJobId": j.id.0,
                "autoProcessId": p.id.0,
                "outputValues": j.outputs.as_deref().cloned().unwrap_or_else(|| json!({})),
            })
        })
        .collect();
    Answer::ok(json!({"total": total, "record": record}))
}
