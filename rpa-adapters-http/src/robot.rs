//! Seed 001 A.2, the robot (executor) HTTP API, as a translation table:
//!
//! | path (POST) | headers | engine call | `resultValue` |
//! |---|---|---|---|
//! | `/robots/connect/register` | `robotId` | `register_robot` | `{robotConnectId, licenseContent}` |
//! | `/robots/connect/heartbeat` | `robotId`, `robotConnectId` | `heartbeat_take` (one command) | `{Action, Body}` |
//! | `/robots/connect/reportLogs` | same | `report_logs` | `null` |
//! | `/robots/connect/reportFinish` | same | `report_finish` | `null` |
//! | `/robots/connect/reportVideoRecord` | same | `report_video` | `null` |
//! | `/robots/connect/reportCheckpoint` (extension) | same | `report_checkpoint` | `null` |
//! | `/v1/file/{source}/upload` (multipart `file`) | robot headers or `X-Access-Token` | `record_file` | `{fileId, fileName, fileUrl}` |
//!
//! "Robot headers" on the file endpoints are `robotId` + `robotConnectId`,
//! or, for a robot connected over WebSocket (which is never given a
//! `robotConnectId`), `robotId` + `supplierCode` + `supplierSecret`.
//! | `/design/personalfile` | `robotId` (+ `robotConnectId`) or `X-Access-Token` | `add_personal_file` (folder by `userName` or `userId`; without `fileId`, the files uploaded for `runInstanceId`) | `null` |
//! | `GET /design/personalfile` | `X-Access-Token` | `personal_files` (the caller's own) | `[{fileId, fileName, fileUrl, size, createdAt}]` |
//! | `GET /v1/file/{fileId}` | robot headers or `X-Access-Token` | the stored bytes | — |
//!
//! Envelope `{successful, resultHint, resultValue}` ([`Envelope`]): HTTP 2xx
//! on success; every failure is a [`RobotError`]: 400 bad parameters or a
//! refused operation, 401 unknown robot or connection (or a wrong supplier
//! proof), 403 not permitted, 404 unknown ids, 413 too large. `resultHint`
//! starts with the seed 001 error code where one applies (10000 duplicate
//! connection, 10001 bad parameters, 19999 unknown).
//!
//! Extensions: ReportFinish accepts `outputValues` (a JSON object the job
//! reports as its outputs); the checkpoint report saves intermediate state
//! that a fail-over run receives back in Execute's `checkpoint`.

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::rejection::BytesRejection;
use axum::extract::{Multipart, Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use rpa_core::error::Error;
use rpa_core::model::{Actor, FileSource};
use rpa_core::seed001::{self, Body as Message};
use rpa_core::transport::Command;
use rpa_core::{Key, Store};
use serde::Serialize;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use utoipa::ToSchema;

use crate::AppState;
use crate::wire::key;

/// The seed 001 HTTP routes.
pub fn router<S: Store>() -> Router<AppState<S>> {
    Router::new()
        .route("/robots/connect/register", post(register::<S>))
        .route("/robots/connect/heartbeat", post(heartbeat::<S>))
        .route("/robots/connect/reportLogs", post(report_logs::<S>))
        .route("/robots/connect/reportFinish", post(report_finish::<S>))
        .route("/robots/connect/reportVideoRecord", post(report_video::<S>))
        .route("/robots/connect/reportCheckpoint", post(report_checkpoint::<S>))
        .route("/v1/file/{file_id}", get(download::<S>))
        .route(
            "/design/personalfile",
            post(personal_file::<S>).get(list_personal_files::<S>),
        )
}

/// The upload route (mounted with the upload body limit).
pub fn upload_router<S: Store>() -> Router<AppState<S>> {
    Router::new().route("/v1/file/{source}/upload", post(upload::<S>))
}

pub use rpa_core::seed001::{BAD_PARAMETERS, DUPLICATE_CONNECTION, UNKNOWN};

/// The seed 001 envelope around a `resultValue` of type `T`.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Envelope<T> {
    /// Whether the call succeeded.
    pub successful: bool,
    /// Why not: the seed 001 error code where one applies, then words.
    pub result_hint: String,
    /// The answer (`null` when there is none).
    pub result_value: T,
}

/// A successful seed 001 answer: HTTP 200.
#[derive(Debug)]
pub struct Reply<T>(pub T);

impl<T: Serialize> IntoResponse for Reply<T> {
    fn into_response(self) -> Response {
        let body = Envelope {
            successful: true,
            result_hint: String::new(),
            result_value: self.0,
        };
        (StatusCode::OK, axum::Json(body)).into_response()
    }
}

/// A seed 001 answer.
pub type Answer<T> = Result<Reply<T>, RobotError>;

/// Every way a seed 001 call fails.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RobotError {
    /// Bad parameters (400, 10001).
    #[error("{BAD_PARAMETERS}: {0}")]
    BadParameters(String),
    /// A second live connection (400, 10000).
    #[error("{DUPLICATE_CONNECTION}: {0}")]
    DuplicateConnection(String),
    /// Refused for another reason (400).
    #[error("{0}")]
    Refused(String),
    /// Unknown robot or connection, or a wrong supplier proof (401).
    #[error("{0}")]
    Unauthorized(String),
    /// Not permitted (403).
    #[error("{0}")]
    Forbidden(String),
    /// Unknown id (404).
    #[error("{0}")]
    NotFound(String),
    /// A body the server does not take (its status: 413 too large, 400 otherwise).
    #[error("{BAD_PARAMETERS}: {1}")]
    Body(StatusCode, String),
    /// No endpoint for this path (404) or method (405).
    #[error("{1}")]
    NoRoute(StatusCode, String),
    /// A daily quota is spent (429).
    #[error("{0}")]
    Quota(String),
    /// A service this call needs failed (502).
    #[error("{0}")]
    Upstream(String),
    /// A service this call needs is unavailable (503).
    #[error("{0}")]
    Unavailable(String),
    /// A service this call needs gave no answer in time (504).
    #[error("{0}")]
    TimedOut(String),
    /// The server failed (500, 19999); the details are in its log.
    #[error("{UNKNOWN}: {0}")]
    Internal(&'static str),
}

impl RobotError {
    /// Bad parameters, saying why.
    pub fn bad(why: impl std::fmt::Display) -> RobotError {
        RobotError::BadParameters(why.to_string())
    }

    fn status(&self) -> StatusCode {
        match self {
            RobotError::BadParameters(_) | RobotError::DuplicateConnection(_) | RobotError::Refused(_) => {
                StatusCode::BAD_REQUEST
            }
            RobotError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            RobotError::Forbidden(_) => StatusCode::FORBIDDEN,
            RobotError::NotFound(_) => StatusCode::NOT_FOUND,
            RobotError::Body(s, _) | RobotError::NoRoute(s, _) => *s,
            RobotError::Quota(_) => StatusCode::TOO_MANY_REQUESTS,
            RobotError::Upstream(_) => StatusCode::BAD_GATEWAY,
            RobotError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            RobotError::TimedOut(_) => StatusCode::GATEWAY_TIMEOUT,
            RobotError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

impl IntoResponse for RobotError {
    fn into_response(self) -> Response {
        let body = Envelope {
            successful: false,
            result_hint: self.to_string(),
            result_value: Value::Null,
        };
        (self.status(), axum::Json(body)).into_response()
    }
}

impl From<Error> for RobotError {
    fn from(e: Error) -> RobotError {
        match &e {
            Error::InvalidArgument(m) => RobotError::BadParameters(m.clone()),
            Error::DuplicateConnection | Error::Replaced => RobotError::DuplicateConnection(e.to_string()),
            Error::NotConnected | Error::BadSupplier | Error::Unauthenticated => {
                RobotError::Unauthorized(e.to_string())
            }
            Error::PermissionDenied(_) => RobotError::Forbidden(e.to_string()),
            Error::NotFound(..) => RobotError::NotFound(e.to_string()),
            Error::Limit(rpa_core::error::Limit::DailyQuota { .. }) => RobotError::Quota(e.to_string()),
            e if e.is_client_error() => RobotError::Refused(e.to_string()),
            e => {
                tracing::error!(error = %e, "robot API internal error");
                RobotError::Internal("internal error")
            }
        }
    }
}

impl From<seed001::Bad> for RobotError {
    fn from(b: seed001::Bad) -> RobotError {
        RobotError::BadParameters(b.to_string())
    }
}

// ------------------------------------------------------------------ requests

/// Register's body (A.2.1).
#[derive(Debug, ToSchema)]
#[schema(rename_all = "camelCase")]
pub struct RegisterRequest {
    /// The vendor's code.
    pub supplier_code: String,
    /// `hex(HMAC-SHA256(vendor secret, robotId))`.
    pub supplier_secret: String,
    /// The executor's version.
    pub version: Option<String>,
    /// Extensions the robot takes (`"checkpoint"`: Execute carries `checkpoint` and `attempt`).
    pub capabilities: Option<Vec<String>>,
}

/// Heartbeat's body (A.2.2).
#[derive(Debug, ToSchema)]
#[schema(rename_all = "camelCase")]
pub struct HeartbeatRequest {
    /// The run the robot is executing, if any.
    pub run_instance_id: Option<String>,
}

/// A RunInstanceLog (A.6).
#[derive(Debug, ToSchema)]
#[schema(rename_all = "camelCase")]
pub struct RunInstanceLog {
    /// The line.
    pub content: String,
    /// A screenshot (file id or data).
    pub screenshot: Option<String>,
    /// `yyyy-MM-dd HH:mm:ss` (or RFC 3339).
    pub log_at: String,
    /// 0 info, 1 warning, 2 error.
    pub log_level: i32,
}

/// ReportLogs' body (A.2.4).
#[derive(Debug, ToSchema)]
#[schema(rename_all = "camelCase")]
pub struct ReportLogsRequest {
    /// The run.
    pub run_instance_id: String,
    /// The lines.
    pub logs: Vec<RunInstanceLog>,
}

/// ReportFinish's body (A.2.5).
#[derive(Debug, ToSchema)]
#[schema(rename_all = "camelCase")]
pub struct ReportFinishRequest {
    /// The run.
    pub run_instance_id: String,
    /// 0 success, 1 cancelled, 2 failed.
    pub status: i32,
    /// An error code (20000–29999: a business error, not retried).
    pub error_code: Option<i32>,
    /// Output values (extension).
    #[schema(value_type = Option<Object>)]
    pub output_values: Option<Value>,
}

/// ReportVideoRecord's body (A.2.6).
#[derive(Debug, ToSchema)]
#[schema(rename_all = "camelCase")]
pub struct ReportVideoRequest {
    /// The run (finished).
    pub run_instance_id: String,
    /// The recording's id.
    pub video_id: String,
}

/// ReportCheckpoint's body (extension).
#[derive(Debug, ToSchema)]
#[schema(rename_all = "camelCase")]
pub struct ReportCheckpointRequest {
    /// The run.
    pub run_instance_id: String,
    /// State a fail-over run gets back (required without `step`).
    #[schema(value_type = Option<Object>)]
    pub checkpoint: Option<Value>,
    /// The step the run reached (from 0).
    pub step: Option<u32>,
    /// Its name.
    pub step_name: Option<String>,
    /// The process's data step (default: `step`).
    pub task_process_id: Option<i64>,
}

/// A file for a personal folder (A.2.8).
#[derive(Debug, ToSchema)]
#[schema(rename_all = "camelCase")]
pub struct PersonalFileRequest {
    /// An uploaded file's id; without it, the files uploaded for `runInstanceId`.
    pub file_id: Option<String>,
    /// Its name in the folder (without `fileId`: only the run's files of this name).
    pub file_name: Option<String>,
    /// The run it came from.
    pub run_instance_id: Option<String>,
    /// The owner's id.
    pub user_id: Option<String>,
    /// The owner's name (default: the caller, or the run's starter).
    pub user_name: Option<String>,
}

// ------------------------------------------------------------------- results

/// Register's answer (A.4).
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Registered {
    /// The connection id for the next calls' `robotConnectId` header.
    #[schema(value_type = String)]
    pub robot_connect_id: Key,
    /// The bound license (`""` when none).
    pub license_content: String,
}

/// One command for the robot (A.2.3): `Action` None, Execute, Stop, SendLicense or Error.
#[derive(Debug, Serialize, ToSchema)]
pub struct Action {
    /// What to do.
    #[serde(rename = "Action")]
    pub action: String,
    /// Its body (`null` for None).
    #[serde(rename = "Body")]
    #[schema(value_type = Object)]
    pub body: Value,
}

/// An uploaded file (A.2.7).
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Uploaded {
    /// Its id.
    #[schema(value_type = String)]
    pub file_id: Key,
    /// Its name.
    pub file_name: String,
    /// Where to fetch it.
    pub file_url: String,
}

pub(crate) fn fields(body: Result<Bytes, BytesRejection>) -> Result<Message, RobotError> {
    let bytes = body.map_err(|r| RobotError::Body(r.status(), r.body_text()))?;
    Ok(Message::from_bytes(&bytes)?)
}

pub(crate) fn header<'a>(h: &'a HeaderMap, name: &str) -> Option<&'a str> {
    h.get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|s| !s.is_empty())
}

fn robot_id(h: &HeaderMap) -> Result<&str, RobotError> {
    header(h, "robotId").ok_or_else(|| RobotError::Unauthorized("the robotId header is required".into()))
}

/// `(robotId, robotConnectId)` from the headers.
pub(crate) fn connection(h: &HeaderMap) -> Result<(&str, Key), RobotError> {
    let code = robot_id(h)?;
    let connect = header(h, "robotConnectId")
        .and_then(|c| c.parse::<Key>().ok())
        .ok_or_else(|| RobotError::Unauthorized("a valid robotConnectId header is required".into()))?;
    Ok((code, connect))
}

/// The run a report is about; an id that cannot be one is no run here (404).
fn run_instance(f: &Message) -> Result<Key, RobotError> {
    let s = f.str("runInstanceId")?;
    seed001::run_instance(f).map_err(|_| RobotError::NotFound(format!("run instance {s} not found")))
}

/// A report from a connected robot: who, its connection, the body, and the run it is about.
fn report(h: &HeaderMap, body: Result<Bytes, BytesRejection>) -> Result<(&str, Key, Message, Key), RobotError> {
    let (code, connect) = connection(h)?;
    let f = fields(body)?;
    let run = run_instance(&f)?;
    Ok((code, connect, f, run))
}

// ------------------------------------------------------------------ handlers

/// Registers the robot: a connection id for its next calls.
#[utoipa::path(post, path = "/robots/connect/register", tag = "robot",
    params(("robotId" = String, Header, description = "the executor's id")),
    request_body = RegisterRequest,
    responses((status = 200, description = "registered", body = Envelope<Registered>),
        (status = 400, description = "10001 bad parameters; 10000 a live connection exists", body = Envelope<Object>),
        (status = 401, description = "wrong supplier proof", body = Envelope<Object>)))]
pub(crate) async fn register<S: Store>(
    State(st): State<AppState<S>>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Answer<Registered> {
    let code = robot_id(&headers)?;
    let f = fields(body)?;
    let r = seed001::register(&f)?;
    let reg = st
        .engine
        .register_robot_with(code, r.supplier_code, r.supplier_secret, r.version, &r.capabilities)
        .await?;
    tracing::info!(robot = code, "robot registered over HTTP");
    Ok(Reply(Registered {
        robot_connect_id: reg.connect,
        // A string in table A.4: empty when no license is bound.
        license_content: reg.license.unwrap_or_default(),
    }))
}

/// Seed 001 `{Action, Body}` for one command (A.2.3), for a robot that
/// takes the fail-over extensions or not.
pub fn action(cmd: Option<&Command>, extensions: bool) -> Value {
    match cmd.map(|c| seed001::command(c, extensions)) {
        None => json!({"Action": "None", "Body": null}),
        Some((action, body)) => json!({"Action": action, "Body": body}),
    }
}

/// A heartbeat: says what the robot runs; answers one waiting command.
#[utoipa::path(post, path = "/robots/connect/heartbeat", tag = "robot",
    params(("robotId" = String, Header, description = "the executor's id"),
        ("robotConnectId" = String, Header, description = "from register")),
    request_body = HeartbeatRequest,
    responses((status = 200, description = "the next command", body = Envelope<Action>),
        (status = 401, description = "unknown robot or connection", body = Envelope<Object>)))]
pub(crate) async fn heartbeat<S: Store>(
    State(st): State<AppState<S>>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Answer<Value> {
    let (code, connect) = connection(&headers)?;
    let f = fields(body)?;
    let run = seed001::heartbeat(&f)?;
    let cmds = match st.engine.heartbeat_take(code, connect, run, 1).await {
        // A connection another registration replaced is told so with the
        // seed's Error command (A.3.5 10000), as a socket would be.
        Err(e @ Error::Replaced) => {
            let told = Command::Error {
                error_code: DUPLICATE_CONNECTION,
                message: e.to_string(),
            };
            return Ok(Reply(action(Some(&told), false)));
        }
        other => other?,
    };
    // The command is taken: it is answered whatever this read says.
    let extensions = match cmds.first() {
        Some(Command::Execute(_)) => st
            .engine
            .connected_robot(code, connect)
            .await
            .is_ok_and(|r| r.extensions),
        _ => false,
    };
    Ok(Reply(action(cmds.first(), extensions)))
}

/// Run log lines.
#[utoipa::path(post, path = "/robots/connect/reportLogs", tag = "robot",
    params(("robotId" = String, Header, description = "the executor's id"),
        ("robotConnectId" = String, Header, description = "from register")),
    request_body = ReportLogsRequest,
    responses((status = 200, description = "kept", body = Envelope<Object>),
        (status = 400, description = "10001 bad parameters", body = Envelope<Object>)))]
pub(crate) async fn report_logs<S: Store>(
    State(st): State<AppState<S>>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Answer<()> {
    let (code, connect, f, run) = report(&headers, body)?;
    let logs = seed001::logs(&f)?;
    st.engine.report_logs(code, connect, run, logs).await?;
    Ok(Reply(()))
}

/// The end of a run.
#[utoipa::path(post, path = "/robots/connect/reportFinish", tag = "robot",
    params(("robotId" = String, Header, description = "the executor's id"),
        ("robotConnectId" = String, Header, description = "from register")),
    request_body = ReportFinishRequest,
    responses((status = 200, description = "recorded", body = Envelope<Object>),
        (status = 403, description = "another robot's run", body = Envelope<Object>)))]
pub(crate) async fn report_finish<S: Store>(
    State(st): State<AppState<S>>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Answer<()> {
    let (code, connect, f, run) = report(&headers, body)?;
    let fin = seed001::finish(&f)?;
    st.engine
        .report_finish(code, connect, run, fin.status, fin.error_code, fin.outputs)
        .await?;
    Ok(Reply(()))
}

/// A finished run's screen recording.
#[utoipa::path(post, path = "/robots/connect/reportVideoRecord", tag = "robot",
    params(("robotId" = String, Header, description = "the executor's id"),
        ("robotConnectId" = String, Header, description = "from register")),
    request_body = ReportVideoRequest,
    responses((status = 200, description = "recorded", body = Envelope<Object>)))]
pub(crate) async fn report_video<S: Store>(
    State(st): State<AppState<S>>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Answer<()> {
    let (code, connect, f, run) = report(&headers, body)?;
    st.engine.report_video(code, connect, run, seed001::video(&f)?).await?;
    Ok(Reply(()))
}

/// A checkpoint and the step the run reached (extension).
#[utoipa::path(post, path = "/robots/connect/reportCheckpoint", tag = "robot",
    params(("robotId" = String, Header, description = "the executor's id"),
        ("robotConnectId" = String, Header, description = "from register")),
    request_body = ReportCheckpointRequest,
    responses((status = 200, description = "recorded", body = Envelope<Object>)))]
pub(crate) async fn report_checkpoint<S: Store>(
    State(st): State<AppState<S>>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Answer<()> {
    let (code, connect, f, run) = report(&headers, body)?;
    let progress = seed001::checkpoint(&f)?;
    st.engine.report_checkpoint(code, connect, run, progress).await?;
    Ok(Reply(()))
}

/// Who is calling a file endpoint: a connected robot or a logged-in person.
async fn caller<S: Store>(st: &AppState<S>, h: &HeaderMap) -> Result<(Actor, String), RobotError> {
    if let Some(token) = header(h, "x-access-token") {
        let user = st.engine.authenticate(token).await?;
        return Ok((Actor::User(user.id), user.name));
    }
    let robot = robot_caller(st, h).await?;
    Ok((Actor::Robot(robot.id), robot.code.to_string()))
}

/// The robot calling: `robotId` with its `robotConnectId` (HTTP robots), or
/// with `supplierCode` and `supplierSecret` (the vendor proof, as a
/// WebSocket robot, which has no connection id, shows it).
pub(crate) async fn robot_caller<S: Store>(
    st: &AppState<S>,
    h: &HeaderMap,
) -> Result<rpa_core::model::Robot, RobotError> {
    if let (Some(code), Some(supplier), Some(secret)) = (
        header(h, "robotId"),
        header(h, "supplierCode"),
        header(h, "supplierSecret"),
    ) {
        return Ok(st.engine.authenticate_robot(code, supplier, secret).await?);
    }
    let (code, connect) = connection(h)?;
    Ok(st.engine.connected_robot(code, connect).await?)
}

/// Uploads a file (multipart field `file`).
#[utoipa::path(post, path = "/v1/file/{source}/upload", tag = "robot",
    params(("source" = String, Path, description = "file, demand or icon"),
        ("robotId" = Option<String>, Header, description = "a robot: with robotConnectId, or supplierCode + supplierSecret"),
        ("X-Access-Token" = Option<String>, Header, description = "a person"),
        ("runInstanceId" = Option<String>, Header, description = "the run the file belongs to")),
    request_body(content = Vec<u8>, content_type = "multipart/form-data", description = "field `file`"),
    responses((status = 200, description = "stored", body = Envelope<Uploaded>)))]
pub(crate) async fn upload<S: Store>(
    State(st): State<AppState<S>>,
    Path(source): Path<String>,
    headers: HeaderMap,
    multipart: Result<Multipart, axum::extract::multipart::MultipartRejection>,
) -> Answer<Uploaded> {
    let source = FileSource::parse(&source).ok_or_else(|| RobotError::bad("source must be file, demand or icon"))?;
    let (actor, _) = caller(&st, &headers).await?;
    let mut multipart =
        multipart.map_err(|e| RobotError::bad(format!("expected multipart/form-data: {}", e.body_text())))?;
    let job = header(&headers, "runInstanceId")
        .map(|s| key("runInstanceId", s))
        .transpose()
        .map_err(RobotError::bad)?;
    loop {
        let field = multipart
            .next_field()
            .await
            .map_err(|e| RobotError::Body(e.status(), e.body_text()))?
            .ok_or_else(|| RobotError::bad("the multipart field 'file' is required"))?;
        if field.name() != Some("file") {
            continue;
        }
        let name = field.file_name().unwrap_or("upload").to_owned();
        let bytes = field
            .bytes()
            .await
            .map_err(|e| RobotError::Body(e.status(), e.body_text()))?;
        let digest = hex::encode(Sha256::digest(&bytes));
        let meta = st
            .engine
            .record_file(actor, source, &name, bytes.len() as u64, &digest, job)
            .await?;
        if let Err(e) = st.files.put(meta.key, bytes).await {
            tracing::error!(error = %e, file = %meta.key, "cannot store an uploaded file");
            return Err(RobotError::Internal("cannot store the file"));
        }
        let url = format!("{}/v1/file/{}", st.settings.public_url.trim_end_matches('/'), meta.key);
        return Ok(Reply(Uploaded {
            file_id: meta.key,
            file_name: meta.name,
            file_url: url,
        }));
    }
}

/// A stored file's bytes, for its owner, the robot running its job, people
/// granted the job's process, and administrators; or for anyone holding a
/// signed link that has not expired (Execute's `packageDownloadUri`).
#[utoipa::path(get, path = "/v1/file/{fileId}", tag = "robot",
    params(("fileId" = String, Path, description = "the file"),
        ("robotId" = Option<String>, Header, description = "a robot: with robotConnectId, or supplierCode + supplierSecret"),
        ("X-Access-Token" = Option<String>, Header, description = "a person"),
        ("expires" = Option<i64>, Query, description = "a signed link's expiry (Unix seconds)"),
        ("signature" = Option<String>, Query, description = "a signed link's signature")),
    responses((status = 200, description = "the bytes", content_type = "application/octet-stream", body = Vec<u8>),
        (status = 404, description = "no such file, or not readable by the caller", body = Envelope<Object>)))]
pub(crate) async fn download<S: Store>(
    State(st): State<AppState<S>>,
    Path(file_id): Path<String>,
    Query(q): Query<std::collections::HashMap<String, String>>,
    headers: HeaderMap,
) -> Result<Response, RobotError> {
    let not_found = || RobotError::NotFound(format!("file {file_id} not found"));
    let k = file_id.parse::<Key>().map_err(|_| not_found())?;
    let meta = match (q.get("expires"), q.get("signature")) {
        (Some(expires), Some(signature)) => {
            // A signed link: whoever holds it may fetch the file, until it expires.
            let now = st.engine.now().0.div_euclid(1000);
            let path = format!("/v1/file/{file_id}");
            let good = st.settings.link_key.as_ref().is_some_and(|key| {
                expires
                    .parse()
                    .is_ok_and(|e| rpa_core::auth::verify_link(key, &path, e, signature, now))
            });
            if !good {
                return Err(RobotError::Unauthorized(
                    "the link is not valid or has expired; ask for the file again".into(),
                ));
            }
            st.engine.file(k).await.map_err(|e| match e {
                Error::NotFound(..) => not_found(),
                e => e.into(),
            })?
        }
        _ => {
            let (actor, _) = caller(&st, &headers).await?;
            match st.engine.readable_file(actor, k).await {
                Ok(m) => m,
                Err(Error::NotFound(..)) => return Err(not_found()),
                Err(e) => return Err(e.into()),
            }
        }
    };
    match st.files.get(k).await {
        Ok(Some(bytes)) => {
            let disposition = format!("attachment; filename=\"{}\"", meta.name.replace(['"', '\r', '\n'], "_"));
            // The digest recorded at upload, so that a client can check the
            // bytes it got are the ones uploaded (RFC 9530, and plain hex).
            let digest = hex::decode(&meta.sha256)
                .map(|d| {
                    format!(
                        "sha-256=:{}:",
                        base64::Engine::encode(&base64::engine::general_purpose::STANDARD, d)
                    )
                })
                .unwrap_or_default();
            Ok((
                [
                    (header::CONTENT_TYPE, "application/octet-stream".to_owned()),
                    (header::CONTENT_DISPOSITION, disposition),
                    (header::HeaderName::from_static("repr-digest"), digest),
                    (
                        header::HeaderName::from_static("x-checksum-sha256"),
                        meta.sha256.clone(),
                    ),
                ],
                Body::from(bytes),
            )
                .into_response())
        }
        Ok(None) => Err(not_found()),
        Err(e) => {
            tracing::error!(error = %e, file = %k, "cannot read a stored file");
            Err(RobotError::Internal("cannot read the file"))
        }
    }
}

/// Puts an uploaded file into a personal folder.
#[utoipa::path(post, path = "/design/personalfile", tag = "robot",
    params(("robotId" = Option<String>, Header, description = "a robot: with robotConnectId, or supplierCode + supplierSecret"),
        ("X-Access-Token" = Option<String>, Header, description = "a person")),
    request_body = PersonalFileRequest,
    responses((status = 200, description = "added", body = Envelope<Object>)))]
pub(crate) async fn personal_file<S: Store>(
    State(st): State<AppState<S>>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Answer<()> {
    let (actor, _) = caller(&st, &headers).await?;
    let f = fields(body)?;
    let file = match f.opt_str("fileId")? {
        Some(id) => Some(
            id.parse::<Key>()
                .map_err(|_| RobotError::NotFound(format!("file {id} not found")))?,
        ),
        None => None,
    };
    let name = f.opt_str("fileName")?;
    let run = f
        .opt_str("runInstanceId")?
        .map(|s| key("runInstanceId", s))
        .transpose()
        .map_err(RobotError::bad)?;
    // `userId` (the user's id, as Execute gives it) or `userName` name the
    // folder; when both are given they must name the same user.
    let by_id = match f.opt_str("userId")? {
        Some(id) => Some(st.engine.user_name_of(id).await?),
        None => None,
    };
    let folder = match (by_id, f.opt_str("userName")?) {
        (Some(a), Some(b)) if a != b => {
            return Err(RobotError::bad("userId and userName name different users"));
        }
        (Some(a), _) => Some(a),
        (None, b) => b.map(str::to_owned),
    };
    st.engine
        .add_personal_file(actor, file, name, run, folder.as_deref())
        .await?;
    Ok(Reply(()))
}

/// A file in a personal folder.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PersonalFile {
    /// Its id.
    #[schema(value_type = String)]
    pub file_id: Key,
    /// Its name.
    pub file_name: String,
    /// Where to fetch it (`GET`, with the same credentials).
    pub file_url: String,
    /// Size in bytes.
    pub size: u64,
    /// When it was uploaded (epoch milliseconds).
    pub created_at: i64,
}

/// The caller's personal folder: a person's own (`X-Access-Token`).
#[utoipa::path(get, path = "/design/personalfile", tag = "robot",
    params(("X-Access-Token" = String, Header, description = "the folder's owner")),
    responses((status = 200, description = "the files, newest last", body = Envelope<Vec<PersonalFile>>),
        (status = 401, description = "no valid token", body = Envelope<Object>)))]
pub(crate) async fn list_personal_files<S: Store>(
    State(st): State<AppState<S>>,
    headers: HeaderMap,
) -> Answer<Vec<PersonalFile>> {
    let token = header(&headers, "x-access-token")
        .ok_or_else(|| RobotError::Unauthorized("a person's X-Access-Token is required".into()))?;
    let user = st.engine.authenticate(token).await?;
    let base = st.settings.public_url.trim_end_matches('/').to_owned();
    let mut files = st.engine.personal_files(&user.name).await?;
    files.sort_by_key(|f| (f.created_at, f.id));
    Ok(Reply(
        files
            .into_iter()
            .map(|f| PersonalFile {
                file_id: f.key,
                file_url: format!("{base}/v1/file/{}", f.key),
                file_name: f.name,
                size: f.size,
                created_at: f.created_at.0,
            })
            .collect(),
    ))
}
