//! The AutomationEdge listener (seed 003): `POST /listener/rpa/api/message`.
//!
//! | seed 003 | engine |
//! |---|---|
//! | `Authorization: Basic user:password` | a listener account of [`HttpSettings::listeners`], acting as an engine user |
//! | `payload` → `PerformAutomation.ProcessName` | the process of that name granted to the account's user |
//! | `ProfileName` (or `profile`) | the robot pool: a process bound to a pool runs only for that profile |
//! | `AutomationInputDictionary` `Search.<name>` | the job's argument `<name>` |
//! | `RetryFlag`, `NoOfTimesRetry`, `RetryCoolOffInterval` | the job's own retry policy (cool-off between attempts) |
//! | `expiration` (ms) | the job's deadline; with retries, each attempt's window |
//! | `source_message_id` + `app_id` | unique: a repeat gets the first answer and starts nothing |
//! | `wait_for_completion: false` | answer once the request is queued (or fell out) |
//! | `wait_for_completion: true` | answer when the job ends or the expiration passes |
//! | `instance_id` / `message_id` | the request's serial id / its UUID |
//! | automation queue / fall-out queue | a job started / [`rpa_core::listener::Fault`], listed at `GET /admin/listener/fallout` |
//!
//! Answers (HTTP 200): `{instance_id, message_id, status, response, error}`.
//! `status` is `"success"` when the request reached the automation queue
//! (even if the robot then failed, as the seed says) and `"failure"` when it
//! fell out, with `error: {error_msg, error_code}` (codes in
//! [`rpa_core::listener::codes`]). A synchronous answer's `response` holds,
//! beside `acknowledge`, the request as sent with secret inputs masked
//! (`PerformAutomation`), the robot (`RobotDetails`), the outputs
//! (`AutomationOutputDictionary`), `ErrorDetailObject` (empty on success) and
//! `AutomationQueueType` (`successqueue` or `failurequeue`).
//!
//! HTTP errors, each with `{status: "failure", error: {error_msg, error_code}}`:
//! 401 bad or missing credentials, 404 no such path (405 a wrong method),
//! 422 a body or payload that is not the documented JSON, 500 a server
//! fault (logged, never shown).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Extension, Json, Router};
use base64::Engine as _;
use rpa_core::error::Error;
use rpa_core::events::Event;
use rpa_core::ids::Key;
use rpa_core::ids::RobotId;
use rpa_core::job::ErrorClass;
use rpa_core::listener::{ListenerRequest, Perform, Queue};
use rpa_core::model::{Job, JobState, User};
use rpa_core::{Store, Timestamp};
use serde::Deserialize;
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};
use tokio::sync::oneshot;

use crate::AppState;

/// A listener account: Basic credentials that act as an engine user.
#[derive(Clone)]
pub struct ListenerAccount {
    /// The Basic user name.
    pub name: String,
    digest: [u8; 32],
    /// The engine user it acts as.
    pub user: String,
}

impl ListenerAccount {
    /// An account `name` with `password`, acting as the engine user `user`.
    pub fn new(name: &str, password: &str, user: &str) -> ListenerAccount {
        ListenerAccount {
            name: name.to_owned(),
            digest: Sha256::digest(password.as_bytes()).into(),
            user: user.to_owned(),
        }
    }

    fn accepts(&self, name: &str, password: &str) -> bool {
        let given: [u8; 32] = Sha256::digest(password.as_bytes()).into();
        let same = given.iter().zip(&self.digest).fold(0u8, |acc, (a, b)| acc | (a ^ b)) == 0;
        same & (self.name == name)
    }
}

impl std::fmt::Debug for ListenerAccount {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ListenerAccount")
            .field("name", &self.name)
            .field("user", &self.user)
            .finish_non_exhaustive()
    }
}

/// The listener's routes.
pub fn router<S: Store>() -> Router<AppState<S>> {
    Router::new()
        .route("/listener/rpa/api/message", post(message::<S>))
        .layer(Extension(Arc::new(Waiters::default())))
}

/// Every failure of the listener, with its HTTP status.
#[derive(Debug)]
pub enum ListenerError {
    /// Missing or wrong Basic credentials (401).
    Unauthorized,
    /// A body or payload that is not the documented JSON (422).
    Body(String),
    /// No such path (404) or method (405).
    NoRoute(StatusCode, String),
    /// The server failed (500; logged, not shown).
    Internal(String),
}

impl IntoResponse for ListenerError {
    fn into_response(self) -> Response {
        let (status, msg) = match self {
            ListenerError::Unauthorized => (StatusCode::UNAUTHORIZED, "Unauthorized".to_owned()),
            ListenerError::Body(m) => (StatusCode::UNPROCESSABLE_ENTITY, m),
            ListenerError::NoRoute(s, m) => (s, m),
            ListenerError::Internal(m) => {
                tracing::error!(error = %m, "listener: internal error");
                (StatusCode::INTERNAL_SERVER_ERROR, "internal server error".to_owned())
            }
        };
        let body = json!({
            "status": "failure",
            "error": {"error_msg": msg, "error_code": status.as_u16().to_string()},
        });
        (status, Json(body)).into_response()
    }
}

impl From<Error> for ListenerError {
    fn from(e: Error) -> Self {
        match e {
            Error::Unauthenticated => ListenerError::Unauthorized,
            Error::InvalidArgument(m) => ListenerError::Body(m),
            other => ListenerError::Internal(other.to_string()),
        }
    }
}

/// The message body (seed 003 "Request Object").
#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct Message {
    /// A JSON string holding `{"PerformAutomation": {AutomationInputDictionary,
    /// ProcessName, ProfileName, UserName, RetryFlag, Retry: {NoOfTimesRetry,
    /// RetryCoolOffInterval}, ReferenceCode, Timestamp, ...}}`.
    payload: String,
    #[allow(dead_code)]
    content_type: String,
    #[allow(dead_code)]
    content_encoding: String,
    profile: String,
    /// Milliseconds for queue wait and run together.
    expiration: i64,
    /// `true`: answer when the job ends.
    wait_for_completion: bool,
    /// Unique per `app_id`: a repeat gets the first answer.
    source_message_id: String,
    app_id: String,
    #[serde(default)]
    #[allow(dead_code)]
    #[schema(value_type = Option<Object>)]
    header: Option<Value>,
}

/// `payload`'s `PerformAutomation`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct PerformAutomation {
    #[serde(default)]
    automation_input_dictionary: Option<Map<String, Value>>,
    process_name: String,
    profile_name: String,
    user_name: String,
    retry_flag: bool,
    #[serde(default)]
    retry: Option<RetrySpec>,
    #[serde(default)]
    reference_code: Option<String>,
    #[serde(default)]
    timestamp: Option<Value>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct RetrySpec {
    #[serde(default)]
    no_of_times_retry: Option<u32>,
    #[serde(default)]
    retry_cool_off_interval: Option<u64>,
}

/// `Timestamp`: epoch milliseconds (number or digits) or RFC 3339; anything
/// else (the seed's `""`) is no time.
fn sent_at(v: Option<&Value>) -> Option<Timestamp> {
    match v? {
        Value::Number(n) => n.as_i64().map(Timestamp),
        Value::String(s) if !s.trim().is_empty() => {
            let s = s.trim();
            s.parse::<i64>().ok().map(Timestamp).or_else(|| {
                chrono::DateTime::parse_from_rfc3339(s)
                    .ok()
                    .map(|t| Timestamp(t.timestamp_millis()))
            })
        }
        _ => None,
    }
}

fn unprocessable(what: &str, e: impl std::fmt::Display) -> ListenerError {
    ListenerError::Body(format!("{what} is not the documented JSON: {e}"))
}

/// The request a message makes.
fn perform(body: &[u8]) -> Result<Perform, ListenerError> {
    let m: Message = serde_json::from_slice(body).map_err(|e| unprocessable("the body", e))?;
    let payload: Value = serde_json::from_str(&m.payload).map_err(|e| unprocessable("payload", e))?;
    let request = payload
        .get("PerformAutomation")
        .cloned()
        .ok_or_else(|| ListenerError::Body("payload has no PerformAutomation".into()))?;
    let p: PerformAutomation =
        serde_json::from_value(request.clone()).map_err(|e| unprocessable("PerformAutomation", e))?;
    let retry = match (p.retry_flag, p.retry) {
        (false, _) => None,
        (
            true,
            Some(RetrySpec {
                no_of_times_retry: Some(n),
                retry_cool_off_interval,
            }),
        ) => Some((n, retry_cool_off_interval.unwrap_or(0))),
        (true, _) => {
            return Err(ListenerError::Body(
                "Retry.NoOfTimesRetry is required when RetryFlag is true".into(),
            ));
        }
    };
    let profile = if p.profile_name.is_empty() {
        m.profile
    } else {
        p.profile_name
    };
    Ok(Perform {
        process: p.process_name,
        profile,
        user_name: p.user_name,
        inputs: p.automation_input_dictionary.unwrap_or_default(),
        retry,
        expiration_ms: m.expiration,
        sent_at: sent_at(p.timestamp.as_ref()),
        reference: p.reference_code.unwrap_or_default(),
        app_id: m.app_id,
        source_message_id: m.source_message_id,
        wait: m.wait_for_completion,
        request,
    })
}

/// The engine user behind `Authorization: Basic` (the scheme word in any case).
async fn account<S: Store>(st: &AppState<S>, headers: &HeaderMap) -> Result<User, ListenerError> {
    let value = headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .trim();
    let (scheme, encoded) = value.split_once(' ').ok_or(ListenerError::Unauthorized)?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return Err(ListenerError::Unauthorized);
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .map_err(|_| ListenerError::Unauthorized)?;
    let text = String::from_utf8(decoded).map_err(|_| ListenerError::Unauthorized)?;
    let (name, password) = text.split_once(':').ok_or(ListenerError::Unauthorized)?;
    let found = st
        .settings
        .listeners
        .iter()
        .find(|a| a.accepts(name, password))
        .ok_or(ListenerError::Unauthorized)?;
    match st.engine.user_named(&found.user).await? {
        Some(u) if !u.locked => Ok(u),
        _ => Err(ListenerError::Unauthorized),
    }
}

/// Asks for a process run (seed 003): queued, fallen out, or (with
/// `wait_for_completion`) run to its end.
#[utoipa::path(post, path = "/listener/rpa/api/message", tag = "listener",
    request_body = Message,
    params(("Authorization" = String, Header, description = "Basic, a listener account")),
    responses(
        (status = 200, description = "`{instance_id, message_id, status, response, error}`: status success (queued; with wait_for_completion, run to its end — see response.AutomationQueueType) or failure (fall-out queue, error.error_code)", body = Object),
        (status = 401, description = "bad credentials", body = Object),
        (status = 422, description = "a body or payload that is not the documented JSON", body = Object),
    ))]
pub(crate) async fn message<S: Store>(
    State(st): State<AppState<S>>,
    Extension(waiters): Extension<Arc<Waiters>>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ListenerError> {
    let user = account(&st, &headers).await?;
    let body = body.map_err(|r| ListenerError::Body(r.body_text()))?;
    let perform = perform(&body)?;
    let wait = perform.wait;
    let request = st.engine.listener_request(&user, perform).await?;
    let Some(key) = request.job_key.filter(|_| wait && request.queue == Queue::Automation) else {
        return Ok(Json(queued(&request)).into_response());
    };
    let job = waiters.until_ended(&st, key, longest_wait(&request)).await?;
    Ok(Json(completed(&st, &request, &job).await?).into_response())
}

/// How long a synchronous request may wait: every attempt's window and
/// cool-off, and a grace for the engine's timers. The engine ends the job
/// by then; this bound only keeps a lost wake-up from holding a request.
fn longest_wait(r: &ListenerRequest) -> Duration {
    let attempts = 1 + u64::from(r.retries);
    let per = u64::try_from(r.expiration_ms)
        .unwrap_or(0)
        .saturating_add(r.cool_off_ms);
    Duration::from_millis(per.saturating_mul(attempts)) + Duration::from_secs(5)
}

/// The answer of a request that reached a queue, without waiting.
fn queued(r: &ListenerRequest) -> Value {
    match (&r.queue, &r.fault) {
        (Queue::Fallout, Some(f)) => json!({
            "instance_id": r.id,
            "message_id": r.message_id,
            "status": "failure",
            "response": {"acknowledge": true},
            "error": {"error_msg": f.message, "error_code": f.code},
        }),
        _ => json!({
            "instance_id": r.id,
            "message_id": r.message_id,
            "status": "success",
            "response": {"acknowledge": true},
            "error": {},
        }),
    }
}

/// The answer of a synchronous request whose job ended (or whose wait ran out).
/// How a job ended, from its `job_ended` event or from the job as read.
#[derive(Debug, Clone)]
struct Ended {
    key: Key,
    state: JobState,
    robot: Option<RobotId>,
    error_code: Option<i32>,
    reason: Option<Arc<str>>,
    outputs: Option<Arc<Value>>,
}

impl From<&Job> for Ended {
    fn from(j: &Job) -> Ended {
        Ended {
            key: j.key,
            state: j.state,
            robot: j.robot,
            error_code: j.error_code,
            reason: j.reason.clone(),
            outputs: j.outputs.clone(),
        }
    }
}

impl Ended {
    fn of(e: &Event) -> Option<Ended> {
        match e {
            Event::JobEnded {
                key,
                state,
                robot,
                error_code,
                reason,
                outputs,
                ..
            } => Some(Ended {
                key: *key,
                state: *state,
                robot: *robot,
                error_code: *error_code,
                reason: reason.clone(),
                outputs: outputs.clone(),
            }),
            _ => None,
        }
    }
}

async fn completed<S: Store>(st: &AppState<S>, r: &ListenerRequest, job: &Ended) -> Result<Value, ListenerError> {
    let robot = match job.robot {
        Some(id) => st.engine.robot_by_id(id).await?,
        None => None,
    };
    let ok = job.state == JobState::Successful;
    let errors = if ok {
        Vec::new()
    } else {
        let (kind, code) = match (job.state, job.error_code) {
            (JobState::Faulted, Some(c)) if ErrorClass::of(Some(c)) == ErrorClass::Business => {
                ("Business", c.to_string())
            }
            (JobState::Faulted, Some(c)) => ("Technical", c.to_string()),
            (state, _) => ("System", state.as_str().to_owned()),
        };
        let description = job
            .reason
            .as_deref()
            .filter(|s| !s.is_empty())
            .map_or_else(|| format!("the job ended {}", job.state.as_str()), str::to_owned);
        vec![json!({"Type": kind, "Description": description, "Priority": 0, "Code": code})]
    };
    Ok(json!({
        "instance_id": r.id,
        "message_id": r.message_id,
        "status": "success",
        "response": {
            "acknowledge": true,
            "PerformAutomation": *r.request,
            "ProcessName": r.process_name,
            "ProfileName": r.profile,
            "ReferenceCode": r.reference,
            "RobotDetails": robot.map_or(Value::Null, |b| json!({
                "RobotId": b.code.to_string(),
                "Pool": b.profile.pool,
            })),
            "JobId": job.key.to_string(),
            "JobState": job.state.as_str(),
            "AutomationOutputDictionary": job.outputs.as_deref().cloned().unwrap_or_else(|| json!({})),
            "ErrorDetailObject": errors,
            "AutomationQueueType": if ok { "successqueue" } else { "failurequeue" },
        },
        "error": {},
    }))
}

/// Requests waiting for their jobs to end: one loop reads the domain
/// events for all of them while any waits, and wakes each at its job's
/// `job_ended`. A waiter holds no thread and no database connection.
#[derive(Default)]
pub(crate) struct Waiters {
    inner: Mutex<WaitersInner>,
}

#[derive(Default)]
struct WaitersInner {
    by_job: HashMap<Key, Vec<oneshot::Sender<Ended>>>,
    /// The event position the loop has read through, while it runs.
    through: Option<u64>,
}

/// How often the waiters' loop reads the events while anyone waits.
const TAIL: Duration = Duration::from_millis(50);

impl Waiters {
    /// How the job `key` ended (as its `job_ended` event tells, which the
    /// read side may not show yet), or the job as it is after `longest`.
    async fn until_ended<S: Store>(
        self: &Arc<Self>,
        st: &AppState<S>,
        key: Key,
        longest: Duration,
    ) -> Result<Ended, ListenerError> {
        let (tx, rx) = oneshot::channel();
        let start = {
            let mut g = self.inner.lock().unwrap_or_else(|p| p.into_inner());
            g.by_job.entry(key).or_default().push(tx);
            g.through.is_none()
        };
        if start {
            // Read the head before the job is looked at: an end committed
            // after this point is seen by the loop.
            let head = st.engine.events_head().await?;
            let begin = {
                let mut g = self.inner.lock().unwrap_or_else(|p| p.into_inner());
                let begin = g.through.is_none();
                if begin {
                    g.through = Some(head);
                }
                begin
            };
            if begin {
                tokio::spawn(Arc::clone(self).tail(st.engine.clone()));
            }
        }
        let job = st.engine.job(key).await?;
        if job.state.is_terminal() {
            return Ok(Ended::from(&job));
        }
        match tokio::time::timeout(longest, rx).await {
            Ok(Ok(ended)) => Ok(ended),
            _ => Ok(Ended::from(&st.engine.job(key).await?)),
        }
    }

    async fn tail<S: Store>(self: Arc<Self>, engine: Arc<rpa_core::Engine<S>>) {
        loop {
            tokio::time::sleep(TAIL).await;
            let after = {
                let mut g = self.inner.lock().unwrap_or_else(|p| p.into_inner());
                g.by_job.retain(|_, v| {
                    v.retain(|tx| !tx.is_closed());
                    !v.is_empty()
                });
                if g.by_job.is_empty() {
                    g.through = None;
                    return;
                }
                g.through.unwrap_or(0)
            };
            let page = match engine.events(after, 1000).await {
                Ok(p) => p,
                Err(e) => {
                    tracing::warn!(error = %e, "listener waiters: reading events");
                    continue;
                }
            };
            let mut g = self.inner.lock().unwrap_or_else(|p| p.into_inner());
            for ended in page.events.iter().filter_map(|ev| Ended::of(&ev.event)) {
                for tx in g.by_job.remove(&ended.key).unwrap_or_default() {
                    let _ = tx.send(ended.clone());
                }
            }
            g.through = Some(page.through.max(after));
        }
    }
}
