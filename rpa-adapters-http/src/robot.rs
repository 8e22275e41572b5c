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
//! | `/design/personalfile` | `robotId` (+ `robotConnectId`) or `X-Access-Token` | `add_personal_file` | `null` |
//! | `GET /v1/file/{fileId}` | robot headers or `X-Access-Token` | the stored bytes | — |
//!
//! Envelope `{successful, resultHint, resultValue}`: HTTP 2xx on success;
//! 400 bad parameters or a refused operation, 401 unknown robot or
//! connection (or a wrong supplier proof), 403 not permitted, 404 unknown ids.
//! `resultHint` starts with the seed 001 error code where one applies
//! (10000 duplicate connection, 10001 bad parameters, 19999 unknown).
//!
//! Extensions: ReportFinish accepts `outputValues` (a JSON object the job
//! reports as its outputs); the checkpoint report saves intermediate state
//! that a fail-over run receives back in Execute's `checkpoint`.

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::rejection::BytesRejection;
use axum::extract::{Multipart, Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use rpa_core::error::Error;
use rpa_core::model::{Actor, FileSource};
use rpa_core::seed001::{self, Body as Message};
use rpa_core::transport::Command;
use rpa_core::{Key, Store};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

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
        .route("/design/personalfile", post(personal_file::<S>))
}

/// The upload route (mounted with the upload body limit).
pub fn upload_router<S: Store>() -> Router<AppState<S>> {
    Router::new().route("/v1/file/{source}/upload", post(upload::<S>))
}

pub use rpa_core::seed001::{BAD_PARAMETERS, DUPLICATE_CONNECTION, UNKNOWN};

/// A seed 001 answer.
pub struct Reply {
    status: StatusCode,
    hint: String,
    value: Value,
}

impl Reply {
    /// Success.
    pub fn ok(value: Value) -> Reply {
        Reply {
            status: StatusCode::OK,
            hint: String::new(),
            value,
        }
    }
    /// Bad parameters (400, 10001).
    pub fn bad(message: impl std::fmt::Display) -> Reply {
        Reply {
            status: StatusCode::BAD_REQUEST,
            hint: format!("{BAD_PARAMETERS}: {message}"),
            value: Value::Null,
        }
    }
    pub(crate) fn status(status: StatusCode, message: impl Into<String>) -> Reply {
        Reply {
            status,
            hint: message.into(),
            value: Value::Null,
        }
    }
}

impl IntoResponse for Reply {
    fn into_response(self) -> Response {
        let body = json!({"successful": self.status.is_success(), "resultHint": self.hint, "resultValue": self.value});
        (self.status, axum::Json(body)).into_response()
    }
}

impl From<Error> for Reply {
    fn from(e: Error) -> Reply {
        match &e {
            Error::InvalidArgument(m) => Reply::bad(m),
            Error::DuplicateConnection => {
                Reply::status(StatusCode::BAD_REQUEST, format!("{DUPLICATE_CONNECTION}: {e}"))
            }
            Error::NotConnected | Error::BadSupplier | Error::Unauthenticated => {
                Reply::status(StatusCode::UNAUTHORIZED, e.to_string())
            }
            Error::PermissionDenied(_) => Reply::status(StatusCode::FORBIDDEN, e.to_string()),
            Error::NotFound(..) => Reply::status(StatusCode::NOT_FOUND, e.to_string()),
            e if e.is_client_error() => Reply::status(StatusCode::BAD_REQUEST, e.to_string()),
            e => {
                tracing::error!(error = %e, "robot API internal error");
                Reply::status(StatusCode::INTERNAL_SERVER_ERROR, format!("{UNKNOWN}: internal error"))
            }
        }
    }
}

macro_rules! reply {
    ($e:expr) => {
        match $e {
            Ok(v) => v,
            Err(r) => return Reply::from(r),
        }
    };
}

fn fields(body: Result<Bytes, BytesRejection>) -> Result<Message, Reply> {
    let bytes = body.map_err(|r| Reply::status(r.status(), format!("{BAD_PARAMETERS}: {}", r.body_text())))?;
    Message::from_bytes(&bytes).map_err(Reply::bad)
}

fn header<'a>(h: &'a HeaderMap, name: &str) -> Option<&'a str> {
    h.get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|s| !s.is_empty())
}

fn robot_id(h: &HeaderMap) -> Result<&str, Reply> {
    header(h, "robotId").ok_or_else(|| Reply::status(StatusCode::UNAUTHORIZED, "the robotId header is required"))
}

/// `(robotId, robotConnectId)` from the headers.
fn connection(h: &HeaderMap) -> Result<(&str, Key), Reply> {
    let code = robot_id(h)?;
    let connect = header(h, "robotConnectId")
        .and_then(|c| c.parse::<Key>().ok())
        .ok_or_else(|| Reply::status(StatusCode::UNAUTHORIZED, "a valid robotConnectId header is required"))?;
    Ok((code, connect))
}

/// The run a report is about; an id that cannot be one is no run here (404).
fn run_instance(f: &Message) -> Result<Key, Reply> {
    let s = f.str("runInstanceId").map_err(Reply::bad)?;
    seed001::run_instance(f).map_err(|_| Reply::status(StatusCode::NOT_FOUND, format!("run instance {s} not found")))
}

/// A report from a connected robot: who, its connection, the body, and the run it is about.
fn report(h: &HeaderMap, body: Result<Bytes, BytesRejection>) -> Result<(&str, Key, Message, Key), Reply> {
    let (code, connect) = connection(h)?;
    let f = fields(body)?;
    let run = run_instance(&f)?;
    Ok((code, connect, f, run))
}

async fn register<S: Store>(
    State(st): State<AppState<S>>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Reply {
    let code = reply!(robot_id(&headers));
    let f = reply!(fields(body));
    let r = reply!(seed001::register(&f).map_err(Reply::bad));
    let reg = reply!(
        st.engine
            .register_robot_with(code, r.supplier_code, r.supplier_secret, r.version, &r.capabilities)
            .await
    );
    tracing::info!(robot = code, "robot registered over HTTP");
    // licenseContent is a string in table A.4: empty when no license is bound.
    let license = reg.license.unwrap_or_default();
    Reply::ok(json!({"robotConnectId": reg.connect, "licenseContent": license}))
}

/// Seed 001 `{Action, Body}` for one command (A.2.3), for a robot that
/// takes the fail-over extensions or not.
pub fn action(cmd: Option<&Command>, extensions: bool) -> Value {
    match cmd.map(|c| seed001::command(c, extensions)) {
        None => json!({"Action": "None", "Body": null}),
        Some((action, body)) => json!({"Action": action, "Body": body}),
    }
}

async fn heartbeat<S: Store>(
    State(st): State<AppState<S>>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Reply {
    let (code, connect) = reply!(connection(&headers));
    let f = reply!(fields(body));
    let run = reply!(seed001::heartbeat(&f).map_err(Reply::bad));
    let cmds = reply!(st.engine.heartbeat_take(code, connect, run, 1).await);
    // The command is taken: it is answered whatever this read says.
    let extensions = match cmds.first() {
        Some(Command::Execute(_)) => st
            .engine
            .connected_robot(code, connect)
            .await
            .is_ok_and(|r| r.extensions),
        _ => false,
    };
    Reply::ok(action(cmds.first(), extensions))
}

async fn report_logs<S: Store>(
    State(st): State<AppState<S>>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Reply {
    let (code, connect, f, run) = reply!(report(&headers, body));
    let logs = reply!(seed001::logs(&f).map_err(Reply::bad));
    reply!(st.engine.report_logs(code, connect, run, logs).await);
    Reply::ok(Value::Null)
}

async fn report_finish<S: Store>(
    State(st): State<AppState<S>>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Reply {
    let (code, connect, f, run) = reply!(report(&headers, body));
    let fin = reply!(seed001::finish(&f).map_err(Reply::bad));
    reply!(
        st.engine
            .report_finish(code, connect, run, fin.status, fin.error_code, fin.outputs)
            .await
    );
    Reply::ok(Value::Null)
}

async fn report_video<S: Store>(
    State(st): State<AppState<S>>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Reply {
    let (code, connect, f, run) = reply!(report(&headers, body));
    let video = reply!(seed001::video(&f).map_err(Reply::bad));
    reply!(st.engine.report_video(code, connect, run, video).await);
    Reply::ok(Value::Null)
}

async fn report_checkpoint<S: Store>(
    State(st): State<AppState<S>>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Reply {
    let (code, connect, f, run) = reply!(report(&headers, body));
    let data = reply!(seed001::checkpoint(&f).map_err(Reply::bad));
    reply!(st.engine.report_checkpoint(code, connect, run, data).await);
    Reply::ok(Value::Null)
}

/// Who is calling a file endpoint: a connected robot or a logged-in person.
async fn caller<S: Store>(st: &AppState<S>, h: &HeaderMap) -> Result<(Actor, String), Reply> {
    if let Some(token) = header(h, "x-access-token") {
        let user = st.engine.authenticate(token).await.map_err(Reply::from)?;
        return Ok((Actor::User(user.id), user.name));
    }
    if let (Some(code), Some(supplier), Some(secret)) = (
        header(h, "robotId"),
        header(h, "supplierCode"),
        header(h, "supplierSecret"),
    ) {
        let robot = st
            .engine
            .authenticate_robot(code, supplier, secret)
            .await
            .map_err(Reply::from)?;
        return Ok((Actor::Robot(robot.id), robot.code.to_string()));
    }
    let (code, connect) = connection(h)?;
    let robot = st.engine.connected_robot(code, connect).await.map_err(Reply::from)?;
    Ok((Actor::Robot(robot.id), robot.code.to_string()))
}

async fn upload<S: Store>(
    State(st): State<AppState<S>>,
    Path(source): Path<String>,
    headers: HeaderMap,
    multipart: Result<Multipart, axum::extract::multipart::MultipartRejection>,
) -> Reply {
    let Some(source) = FileSource::parse(&source) else {
        return Reply::bad("source must be file, demand or icon");
    };
    let (actor, _) = reply!(caller(&st, &headers).await);
    let mut multipart = match multipart {
        Ok(m) => m,
        Err(e) => return Reply::bad(format!("expected multipart/form-data: {}", e.body_text())),
    };
    let job = reply!(
        header(&headers, "runInstanceId")
            .map(|s| key("runInstanceId", s))
            .transpose()
            .map_err(Reply::bad)
    );
    loop {
        let field = match multipart.next_field().await {
            Ok(Some(f)) => f,
            Ok(None) => return Reply::bad("the multipart field 'file' is required"),
            Err(e) => return Reply::status(e.status(), format!("{BAD_PARAMETERS}: {}", e.body_text())),
        };
        if field.name() != Some("file") {
            continue;
        }
        let name = field.file_name().unwrap_or("upload").to_owned();
        let bytes = match field.bytes().await {
            Ok(b) => b,
            Err(e) => return Reply::status(e.status(), format!("{BAD_PARAMETERS}: {}", e.body_text())),
        };
        let digest = hex::encode(Sha256::digest(&bytes));
        let meta = reply!(
            st.engine
                .record_file(actor, source, &name, bytes.len() as u64, &digest, job)
                .await
        );
        if let Err(e) = st.files.put(meta.key, bytes).await {
            tracing::error!(error = %e, file = %meta.key, "cannot store an uploaded file");
            return Reply::status(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("{UNKNOWN}: cannot store the file"),
            );
        }
        let url = format!("{}/v1/file/{}", st.settings.public_url.trim_end_matches('/'), meta.key);
        return Reply::ok(json!({"fileId": meta.key, "fileName": meta.name, "fileUrl": url}));
    }
}

async fn download<S: Store>(
    State(st): State<AppState<S>>,
    Path(file_id): Path<String>,
    headers: HeaderMap,
) -> Response {
    let actor = match caller(&st, &headers).await {
        Ok((actor, _)) => actor,
        Err(r) => return r.into_response(),
    };
    let not_found = || Reply::status(StatusCode::NOT_FOUND, format!("file {file_id} not found")).into_response();
    let Ok(k) = file_id.parse::<Key>() else {
        return not_found();
    };
    let meta = match st.engine.readable_file(actor, k).await {
        Ok(m) => m,
        Err(Error::NotFound(..)) => return not_found(),
        Err(e) => return Reply::from(e).into_response(),
    };
    match st.files.get(k).await {
        Ok(Some(bytes)) => {
            let disposition = format!("attachment; filename=\"{}\"", meta.name.replace(['"', '\r', '\n'], "_"));
            (
                [
                    (header::CONTENT_TYPE, "application/octet-stream".to_owned()),
                    (header::CONTENT_DISPOSITION, disposition),
                ],
                Body::from(bytes),
            )
                .into_response()
        }
        Ok(None) => not_found(),
        Err(e) => {
            tracing::error!(error = %e, file = %k, "cannot read a stored file");
            Reply::status(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("{UNKNOWN}: cannot read the file"),
            )
            .into_response()
        }
    }
}

async fn personal_file<S: Store>(
    State(st): State<AppState<S>>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Reply {
    let (actor, _) = reply!(caller(&st, &headers).await);
    let f = reply!(fields(body));
    let file = reply!(f.str("fileId").map_err(Reply::bad));
    let Ok(file) = file.parse::<Key>() else {
        return Reply::status(StatusCode::NOT_FOUND, format!("file {file} not found"));
    };
    let name = reply!(f.opt_str("fileName").map_err(Reply::bad));
    let run = match reply!(f.opt_str("runInstanceId").map_err(Reply::bad)) {
        None => None,
        Some(s) => Some(reply!(key("runInstanceId", s).map_err(Reply::bad))),
    };
    let _user_id = reply!(f.opt_str("userId").map_err(Reply::bad));
    let folder = reply!(f.opt_str("userName").map_err(Reply::bad));
    reply!(st.engine.add_personal_file(actor, file, name, run, folder).await);
    Reply::ok(Value::Null)
}
