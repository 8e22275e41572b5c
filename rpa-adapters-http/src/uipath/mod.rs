//! The UiPath Orchestrator-compatible surface (seed 002): OData under
//! `/{org}/{tenant}/orchestrator_/odata/`, `/{org}/{tenant}/odata/` and
//! bare `/odata/`, OAuth tokens, in UiPath's own names.
//!
//! | UiPath | engine |
//! |---|---|
//! | `POST /oauth/token`, `/identity_/connect/token`, `/{org}/identity_/connect/token` (`client_credentials`, `refresh_token`; JSON or form) | a configured client ([`UiPathClient`]) → `open_session` of its user → `{access_token, expires_in, token_type: "Bearer", scope}` |
//! | `Authorization: Bearer <token>` (any case of `Bearer`) | `authenticate`; seed 000 tokens work too |
//! | `Folders`, `OrganizationUnits` | `Default` and the folders processes name (`ProcessSpec::folder`); `X-UIPATH-FolderPath`, `-FolderPath-Encoded`, `-FolderKey`, `-OrganizationUnitId` scope releases, queues and jobs to one (unknown: 404) |
//! | `Releases`, `Processes` (`$filter` `Name`/`ProcessKey eq '...'`) | the processes the caller may start; `Release.Key` = the process id as a GUID |
//! | `Jobs/UiPath.Server.Configuration.OData.StartJobs` `{startInfo: {ReleaseKey \| ReleaseName, Strategy, JobsCount, RobotIds, InputArguments, Source}}` | `start_job_on`: `JobsCount`/`ModernJobsCount` jobs for any robot; `Specific`: one job pinned to each of `RobotIds`; `All`: one pinned to each connected robot that may run it |
//! | `Jobs/UiPath.Server.Configuration.OData.StopJobs` `{jobIds, strategy: SoftStop \| Kill}` | `stop_job` / `kill_job` |
//! | `Jobs/UiPath.Server.Configuration.OData.RestartJob` `{jobId}` | a new job of the same process and arguments |
//! | `Jobs/UiPath.Server.Configuration.OData.GetByKey(identifier=<guid>)`, `Jobs(<Id>)` | a job the caller may see |
//! | `Jobs` (`$filter` on `Id`, `Key`, `State`, `ReleaseName`, `Key in (...)`, ...; `$top`, `$skip`, `$orderby`, `$count`) | a filter of state tests and `ReleaseName eq` only, newest first: `jobs_of`, every job of the processes the caller may see, read and counted from the state index; any other query: the newest 1,000 jobs of the last 30 days of each such process, filtered here |
//! | `Robots`, `Sessions` | robots and their states (permission ManageRobots); with a folder header, the robots that serve it (`RobotProfile::folders`) |
//! | `QueueDefinitions` | Queue processes |
//! | `Queues/UiPathODataSvc.AddQueueItem` `{itemData: {Name, Priority, SpecificContent, Reference, DeferDate, DueDate, RiskSlaDate, Progress}}` | `add_queue_item` (a repeated `Reference` is 409 where the queue enforces unique references) |
//! | `DELETE QueueItems(<Id>)`, `QueueItems/UiPathODataSvc.DeleteBulk` `{queueItemIds}` | `delete_queue_item`: New items only (a job not started is canceled); `{Success, FailedItems}` |
//! | `Queues/UiPathODataSvc.BulkAddQueueItems` `{queueName, commitType, queueItems}` | `add_queue_item` each; answers the items that failed |
//! | `POST QueueDefinitions` `{Name, MaxNumberOfRetries, AcceptAutomaticallyRetry, EnforceUniqueReference}` | `create_process` (Queue; `unique_references` only when `EnforceUniqueReference` is true, UiPath's default; trigger `TRANSACTIONS_ONLY`: as in UiPath, its items start no job and wait for `StartTransaction`) |
//! | `Assets`, `Assets(<Id>)`, `Assets/...GetFiltered`, `...GetRobotAssetByNameForRobotKey`, `...SetRobotAssetByRobotKey` | see [`assets`]: credentials and secrets only to a robot running a job |
//! | `Authorization: Bearer rpa-run.…` (Execute's `accessToken`, given to robots that declare the extensions) | `authenticate_run`: the robot running that attempt, with the grants of the job's starter, in the job's folder; only what [`robot_may`] lists |
//! | `Settings/UiPath.Server.Configuration.OData.GetLicense` | robots connected now |
//! | `RobotLogs?$filter=JobKey eq <guid>` | `job_logs`: `{Id, Level (Info, Warn, Error), Message, TimeStamp, RawMessage, JobKey, ProcessName, RobotName}` (the filter must name the job) |
//! | `Users/UiPath.Server.Configuration.OData.GetCurrentUser`, `...GetCurrentUserExtended` | the token's user (`Type` Robot for a run token); `PersonalWorkspace` null |
//! | `Queues/UiPathODataSvc.StartTransaction` `{transactionData: {Name, SpecificContent?}}` | `start_transaction`: an item waiting for its trigger, or a new one; 204 when none |
//! | `QueueItems(<Id>)/UiPathODataSvc.SetTransactionProgress` `{progress}`, `Queues(<Id>)/UiPathODataSvc.SetTransactionResult` `{transactionResult}` | `set_transaction_progress`, `end_transaction` |
//! | `QueueItems(<Id>)` | `queue_item_by_id` |
//! | `QueueItems` (`$filter` on `QueueDefinitionId`, `Status`, `Reference`, ...; `$top`, `$skip`, `$orderby`, `$count`) | the newest 1,000 items of each queue the caller may see, newest first |
//!
//! Query options: `$filter` ([`crate::odata`]), `$orderby`, `$top`,
//! `$skip`, `$select`, `$count` (`@odata.count` is always given), and
//! `$expand` (see [`expand`]).
//!
//! Job `State`: Pending, Running, Stopping, Suspended, Successful, Faulted,
//! Stopped (a job canceled before it ran is Stopped). Times are ISO 8601 in
//! UTC. Errors: `{message, errorCode, traceId, result: null, targets: null}`
//! with the HTTP status UiPath uses (400, 401, 403, 404, 409, 500).

use rpa_core::store::People as _;
use std::collections::HashMap;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, post};
use base64::Engine as _;
use rpa_core::engine::{NewQueueItem, RunCaller};
use rpa_core::error::Error;
use rpa_core::ids::JobId;
use rpa_core::job::StopStrategy;
use rpa_core::model::{Actor, Job, JobState, Permission, Process, ProcessType, QueueItem, Robot, User};
use rpa_core::{Key, Store, Timestamp};
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};

use crate::AppState;
use crate::odata;

mod assets;
mod buckets;
pub mod openapi;

/// The routes that take file bodies (bucket files through signed links),
/// to be given the upload size limit.
pub fn upload_router<S: Store>() -> Router<AppState<S>> {
    buckets::router()
}

/// The one folder.
pub const FOLDER: &str = rpa_core::asset::DEFAULT_FOLDER;
/// Its id.
const FOLDER_ID: i64 = 1;
/// Most jobs a list answers.
const MAX_TOP: usize = 1000;

/// An OAuth client allowed to ask for tokens, acting as an engine user.
#[derive(Clone)]
pub struct UiPathClient {
    /// `client_id`.
    pub client_id: String,
    secret: [u8; 32],
    refresh: Option<[u8; 32]>,
    /// The engine user its tokens act as.
    pub user: String,
}

impl UiPathClient {
    /// A client with its secret (`client_credentials`) and, optionally, a
    /// refresh token (UiPath's "User Key", `refresh_token` grant).
    pub fn new(client_id: &str, secret: &str, refresh_token: Option<&str>, user: &str) -> UiPathClient {
        UiPathClient {
            client_id: client_id.to_owned(),
            secret: Sha256::digest(secret.as_bytes()).into(),
            refresh: refresh_token.map(|r| Sha256::digest(r.as_bytes()).into()),
            user: user.to_owned(),
        }
    }
}

impl std::fmt::Debug for UiPathClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UiPathClient")
            .field("client_id", &self.client_id)
            .field("user", &self.user)
            .finish_non_exhaustive()
    }
}

fn same(digest: &[u8; 32], given: &str) -> bool {
    let g: [u8; 32] = Sha256::digest(given.as_bytes()).into();
    g.iter().zip(digest).fold(0u8, |acc, (a, b)| acc | (a ^ b)) == 0
}

/// The routes.
pub fn router<S: Store>() -> Router<AppState<S>> {
    Router::new()
        .route("/oauth/token", post(token::<S>))
        .route("/identity_/connect/token", post(token::<S>))
        .route("/{org}/identity_/connect/token", post(token::<S>))
        .route("/odata/{*rest}", any(odata::<S>))
        .route("/{org}/{tenant}/odata/{*rest}", any(odata::<S>))
        .route("/{org}/{tenant}/orchestrator_/odata/{*rest}", any(odata::<S>))
}

// ------------------------------------------------------------------ errors

/// An error as UiPath answers it.
#[derive(Debug)]
pub struct ODataError {
    status: StatusCode,
    code: i64,
    message: String,
}

impl ODataError {
    fn new(status: StatusCode, code: i64, message: impl Into<String>) -> ODataError {
        ODataError {
            status,
            code,
            message: message.into(),
        }
    }
    fn bad(message: impl Into<String>) -> ODataError {
        ODataError::new(StatusCode::BAD_REQUEST, 1001, message)
    }
    fn not_found(message: impl Into<String>) -> ODataError {
        ODataError::new(StatusCode::NOT_FOUND, 1002, message)
    }
}

impl From<Error> for ODataError {
    fn from(e: Error) -> ODataError {
        match e {
            Error::InvalidArgument(m) => ODataError::bad(m),
            Error::NotFound(..) => ODataError::not_found(e.to_string()),
            Error::AlreadyExists(_) => ODataError::new(StatusCode::CONFLICT, 1004, e.to_string()),
            Error::Unauthenticated | Error::BadCredentials | Error::UserLocked => {
                ODataError::new(StatusCode::UNAUTHORIZED, 0, "You are not authenticated!")
            }
            Error::PermissionDenied(m) => ODataError::new(StatusCode::FORBIDDEN, 0, m),
            Error::DirectoryUnavailable => ODataError::new(StatusCode::SERVICE_UNAVAILABLE, 0, e.to_string()),
            Error::Limit(_) | Error::Rejected(_) => ODataError::new(StatusCode::CONFLICT, 1013, e.to_string()),
            other => {
                tracing::error!(error = %other, "uipath: internal error");
                ODataError::new(StatusCode::INTERNAL_SERVER_ERROR, 0, "An error has occurred.")
            }
        }
    }
}

impl IntoResponse for ODataError {
    fn into_response(self) -> Response {
        let trace: [u8; 16] = rand_trace();
        let body = json!({
            "message": self.message,
            "errorCode": self.code,
            "traceId": hex::encode(trace),
            "result": null,
            "targets": null,
        });
        (self.status, axum::Json(body)).into_response()
    }
}

fn rand_trace() -> [u8; 16] {
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let d: [u8; 32] = Sha256::digest(t.to_le_bytes()).into();
    let mut out = [0u8; 16];
    out.copy_from_slice(&d[..16]);
    out
}

type Answer = Result<Response, ODataError>;

// ------------------------------------------------------------------- tokens

/// `POST /oauth/token`: a bearer token for a configured client.
async fn token<S: Store>(State(st): State<AppState<S>>, h: HeaderMap, body: Bytes) -> Response {
    let fields = body_fields(&h, &body);
    let get = |k: &str| fields.get(k).map(String::as_str).unwrap_or("");
    let oauth_error = |status: StatusCode, error: &str, why: &str| {
        (status, axum::Json(json!({"error": error, "error_description": why}))).into_response()
    };
    let grant = get("grant_type");
    let client = st
        .settings
        .uipath_clients
        .iter()
        .find(|c| c.client_id == get("client_id"));
    let Some(client) = client else {
        return oauth_error(StatusCode::BAD_REQUEST, "invalid_client", "unknown client_id");
    };
    let ok = match grant {
        "client_credentials" => same(&client.secret, get("client_secret")),
        "refresh_token" => client.refresh.is_some_and(|r| same(&r, get("refresh_token"))),
        "" => return oauth_error(StatusCode::BAD_REQUEST, "invalid_request", "grant_type is required"),
        _ => return oauth_error(StatusCode::BAD_REQUEST, "unsupported_grant_type", grant),
    };
    if !ok {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_grant",
            "the client's secret or refresh token is wrong",
        );
    }
    let user = match st.engine.store().user_by_name(&client.user).await {
        Ok(Some(u)) => u,
        _ => {
            return oauth_error(
                StatusCode::BAD_REQUEST,
                "invalid_client",
                "the client's user does not exist",
            );
        }
    };
    let ttl = st.settings.uipath_token_ttl_ms;
    match st
        .engine
        .open_session(&user, &format!("oauth client {}", client.client_id), ttl)
        .await
    {
        Ok((token, _)) => axum::Json(json!({
            "access_token": token,
            "expires_in": ttl / 1000,
            "token_type": "Bearer",
            "scope": fields.get("scope").cloned().unwrap_or_else(|| "OR.Default".into()),
        }))
        .into_response(),
        Err(e) => ODataError::from(e).into_response(),
    }
}

/// A body's fields, as JSON or `application/x-www-form-urlencoded`.
fn body_fields(h: &HeaderMap, body: &[u8]) -> HashMap<String, String> {
    let form = h
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|c| c.starts_with("application/x-www-form-urlencoded"));
    if !form && let Ok(Value::Object(m)) = serde_json::from_slice::<Value>(body) {
        return m
            .into_iter()
            .map(|(k, v)| {
                let s = match v {
                    Value::String(s) => s,
                    other => other.to_string(),
                };
                (k, s)
            })
            .collect();
    }
    let text = String::from_utf8_lossy(body);
    text.split('&')
        .filter_map(|pair| {
            let (k, v) = pair.split_once('=')?;
            Some((decode_form(k), decode_form(v)))
        })
        .collect()
}

fn decode_form(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = b
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (b[i], hex) {
            (b'+', _) => out.push(b' '),
            (b'%', Some(x)) => {
                out.push(x);
                i += 2;
            }
            (c, _) => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

// --------------------------------------------------------------- the OData

/// Who calls, and the folder its headers name (none: every folder). A
/// robot running a job (a run token) acts with the grants of the person who
/// started the job, in the job's folder unless its headers name another.
struct Caller {
    user: User,
    folder: Option<String>,
    run: Option<RunCaller>,
}

impl std::ops::Deref for Caller {
    type Target = User;
    fn deref(&self) -> &User {
        &self.user
    }
}

/// The caller behind `Authorization: Bearer`, in the folder its headers name.
async fn caller<S: Store>(st: &AppState<S>, h: &HeaderMap) -> Result<Caller, ODataError> {
    let auth = h.get("authorization").and_then(|v| v.to_str().ok()).unwrap_or("");
    let token = match auth.split_once(' ') {
        Some((scheme, t)) if scheme.eq_ignore_ascii_case("bearer") => t.trim(),
        _ => {
            return Err(ODataError::new(
                StatusCode::UNAUTHORIZED,
                0,
                "You are not authenticated!",
            ));
        }
    };
    let folders = folders(st).await?;
    let folder = requested_folder(h, &folders)?;
    if token.starts_with(rpa_core::auth::RUN_TOKEN_PREFIX) {
        let run = st.engine.authenticate_run(token).await?;
        return Ok(Caller {
            user: run.user.clone(),
            folder: folder.or_else(|| Some(rpa_core::asset::folder_name(run.folder.as_deref()).to_owned())),
            run: Some(run),
        });
    }
    let user = st.engine.authenticate(token).await?;
    Ok(Caller {
        user,
        folder,
        run: None,
    })
}

/// What a robot running a job (a run token) may call: what a process
/// does while it runs (read assets and set its own values, work queues,
/// read folders, releases and jobs, start jobs), nothing that administers.
fn robot_may(method: &Method, rest: &str) -> bool {
    let action = |name: &str| rest.rsplit_once('/').is_some_and(|(_, a)| a == name);
    if method == Method::GET {
        return [
            "Assets",
            "Buckets",
            "Folders",
            "OrganizationUnits",
            "Releases",
            "Processes",
            "Jobs",
            "RobotLogs",
            "Users/UiPath.Server.Configuration.OData.GetCurrentUser",
            "QueueDefinitions",
            "QueueItems",
        ]
        .iter()
        .any(|e| rest.starts_with(e));
    }
    if method == Method::DELETE {
        return rest.starts_with("Buckets(") && action("UiPath.Server.Configuration.OData.DeleteFile");
    }
    method == Method::POST
        && (action("UiPath.Server.Configuration.OData.GetRobotAssetByNameForRobotKey")
            || action("UiPath.Server.Configuration.OData.SetRobotAssetByRobotKey")
            || action("UiPathODataSvc.AddQueueItem")
            || action("UiPathODataSvc.BulkAddQueueItems")
            || action("UiPathODataSvc.StartTransaction")
            || action("UiPathODataSvc.SetTransactionProgress")
            || action("UiPathODataSvc.SetTransactionResult")
            || action("UiPath.Server.Configuration.OData.StartJobs"))
}

/// The folder of a process: its definition's `folder`, or [`FOLDER`].
fn folder_of(p: &Process) -> &str {
    p.spec.folder.as_deref().unwrap_or(FOLDER)
}

/// Every folder: [`FOLDER`] and those processes name, by name.
async fn folders<S: Store>(st: &AppState<S>) -> Result<Vec<String>, ODataError> {
    let mut names: Vec<String> = st
        .engine
        .processes()
        .await?
        .iter()
        .map(|p| folder_of(p).to_owned())
        .collect();
    names.push(FOLDER.to_owned());
    names.sort();
    names.dedup();
    Ok(names)
}

/// A folder's id: 1 for [`FOLDER`], a stable number from its name otherwise.
fn folder_id(name: &str) -> i64 {
    if name == FOLDER {
        return FOLDER_ID;
    }
    let d: [u8; 32] = Sha256::digest(format!("rpa folder {name}").as_bytes()).into();
    2 + i64::from(u32::from_le_bytes([d[0], d[1], d[2], d[3]]) & 0x3fff_ffff)
}

/// A folder's key: stable, so clients may keep it.
fn folder_key(name: &str) -> Key {
    let d: [u8; 32] = Sha256::digest(format!("rpa folder {name}").as_bytes()).into();
    let mut k = [0u8; 16];
    k.copy_from_slice(&d[..16]);
    Key::from_random(k)
}

fn folder_json(name: &str) -> Value {
    json!({
        "Id": folder_id(name),
        "Key": guid(folder_key(name)),
        "DisplayName": name,
        "FullyQualifiedName": name,
        "Description": null,
        "FolderType": "Standard",
        "ProvisionType": "Automatic",
        "PermissionModel": "FineGrained",
        "ParentId": null,
    })
}

/// The folder the headers name (`X-UIPATH-FolderPath`, `-FolderPath-Encoded`,
/// `-FolderKey`, `-OrganizationUnitId`), among `folders`; one that does not
/// exist answers 404; none named: every folder.
fn requested_folder(h: &HeaderMap, folders: &[String]) -> Result<Option<String>, ODataError> {
    let header = |n: &str| {
        h.get(n)
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
            .filter(|v| !v.is_empty())
    };
    let path = match (header("x-uipath-folderpath"), header("x-uipath-folderpath-encoded")) {
        (Some(p), _) => Some(p.to_owned()),
        (None, Some(enc)) => {
            let raw = base64::engine::general_purpose::STANDARD
                .decode(enc)
                .map_err(|_| ODataError::bad("X-UIPATH-FolderPath-Encoded is not base64"))?;
            let units: Vec<u16> = raw.chunks_exact(2).map(|c| u16::from_le_bytes([c[0], c[1]])).collect();
            Some(
                String::from_utf16(&units)
                    .map_err(|_| ODataError::bad("X-UIPATH-FolderPath-Encoded is not UTF-16LE"))?,
            )
        }
        _ => None,
    };
    let found = |pick: &dyn Fn(&String) -> bool, what: &str| {
        folders.iter().find(|f| pick(f)).cloned().map(Some).ok_or_else(|| {
            ODataError::not_found(format!(
                "Folder does not exist or the user does not have access to the folder: {what}"
            ))
        })
    };
    if let Some(p) = path {
        return found(&|f| *f == p, &p);
    }
    if let Some(id) = header("x-uipath-organizationunitid") {
        return found(&|f| folder_id(f).to_string() == id, id);
    }
    if let Some(k) = header("x-uipath-folderkey") {
        let key = parse_guid(k);
        return found(&|f| key == Some(folder_key(f)), k);
    }
    Ok(None)
}

/// A key as a GUID (`8-4-4-4-12`).
pub fn guid(k: Key) -> String {
    let s = k.to_string();
    format!("{}-{}-{}-{}-{}", &s[..8], &s[8..12], &s[12..16], &s[16..20], &s[20..])
}

/// A GUID (with or without dashes or braces) as a key.
pub fn parse_guid(s: &str) -> Option<Key> {
    let hex: String = s.chars().filter(|c| !matches!(c, '-' | '{' | '}' | '\'')).collect();
    hex.parse().ok()
}

fn iso(t: Timestamp) -> String {
    chrono::DateTime::from_timestamp_millis(t.0)
        .map(|d| d.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
        .unwrap_or_default()
}

/// A list as UiPath answers it: `@odata.count` is the number of entities
/// the filter let through, before `$top` and `$skip`.
fn page(entity: &str, values: Vec<Value>, count: usize) -> Response {
    let mut m = Map::new();
    m.insert("@odata.context".into(), format!("/odata/$metadata#{entity}").into());
    m.insert("@odata.count".into(), count.into());
    m.insert("value".into(), values.into());
    axum::Json(Value::Object(m)).into_response()
}

fn one(entity: &str, mut v: Value) -> Response {
    if let Value::Object(m) = &mut v {
        m.insert(
            "@odata.context".into(),
            format!("/odata/$metadata#{entity}/$entity").into(),
        );
    }
    axum::Json(v).into_response()
}

/// The query options of a list ([`crate::odata`]).
struct Options {
    top: usize,
    skip: usize,
    filter: Option<odata::Expr>,
    orderby: Vec<(Vec<String>, bool)>,
    /// `$select`, with the navigation properties `$expand` names (an
    /// expanded property is kept whatever `$select` says).
    select: Vec<String>,
    /// `$expand`: navigation properties (`Robot`, `Release`, ...; nested
    /// options in parentheses are taken as the property alone).
    expand: Vec<String>,
}

fn options(q: &HashMap<String, String>) -> Result<Options, ODataError> {
    let num = |k: &str, d: usize| -> Result<usize, ODataError> {
        q.get(k).map_or(Ok(d), |v| {
            v.trim()
                .parse()
                .map_err(|_| ODataError::bad(format!("{k} must be a number")))
        })
    };
    let invalid =
        |what: &str, e: String| ODataError::bad(format!("The query specified in the URI is not valid: {what}: {e}"));
    Ok(Options {
        top: num("$top", 100)?.min(MAX_TOP),
        skip: num("$skip", 0)?,
        filter: match q.get("$filter").filter(|f| !f.trim().is_empty()) {
            Some(f) => Some(odata::parse_filter(f).map_err(|e| invalid("$filter", e))?),
            None => None,
        },
        orderby: match q.get("$orderby").filter(|f| !f.trim().is_empty()) {
            Some(o) => odata::parse_orderby(o).map_err(|e| invalid("$orderby", e))?,
            None => Vec::new(),
        },
        select: {
            let mut s: Vec<String> = list(q.get("$select"));
            if !s.is_empty() {
                s.extend(list(q.get("$expand")));
            }
            s
        },
        expand: list(q.get("$expand")),
    })
}

/// A comma-separated option's names: `Robot($select=Name),Release` gives
/// `Robot` and `Release`; `Robot/Machine` its first property.
fn list(v: Option<&String>) -> Vec<String> {
    let Some(v) = v else { return Vec::new() };
    let mut out = Vec::new();
    let (mut depth, mut cur) = (0usize, String::new());
    for c in v.chars() {
        match c {
            '(' => depth += 1,
            ')' => depth = depth.saturating_sub(1),
            ',' if depth == 0 => out.push(std::mem::take(&mut cur)),
            c if depth == 0 => cur.push(c),
            _ => {}
        }
    }
    out.push(cur);
    out.into_iter()
        .map(|n| n.split('/').next().unwrap_or_default().trim().to_owned())
        .filter(|n| !n.is_empty())
        .collect()
}

/// UiPath's navigation properties this server has nothing behind on some
/// entities: expanded there, they are `null`.
const EMPTY_NAVIGATION: &[&str] = &[
    "Robot",
    "Release",
    "Machine",
    "ReviewerUser",
    "Environment",
    "Process",
    "CurrentVersion",
    "ReleaseVersions",
    "Folder",
    "Organization",
    "Tags",
];

/// Answers `$expand` on `values`: the navigation properties this server
/// knows are always in its answers; UiPath's others ([`EMPTY_NAVIGATION`])
/// are added as `null`; any other name is refused.
fn expand(entity: &str, o: &Options, values: &mut [Value]) -> Result<(), ODataError> {
    for e in &o.expand {
        let present = |v: &Value| {
            v.as_object()
                .is_some_and(|m| m.keys().any(|k| k.eq_ignore_ascii_case(e)))
        };
        if values.first().is_none_or(present) {
            continue;
        }
        let Some(name) = EMPTY_NAVIGATION.iter().find(|n| n.eq_ignore_ascii_case(e)) else {
            return Err(ODataError::bad(format!(
                "The query specified in the URI is not valid. Could not find a property named '{e}' on type '{entity}'."
            )));
        };
        for v in values.iter_mut() {
            if let Value::Object(m) = v {
                m.entry((*name).to_owned()).or_insert(Value::Null);
            }
        }
    }
    Ok(())
}

/// Applies `o` to `values` (already in the entity's own order) and answers the page.
fn respond(entity: &str, mut values: Vec<Value>, o: &Options) -> Answer {
    expand(entity, o, &mut values)?;
    if let (Some(f), Some(sample)) = (&o.filter, values.first()) {
        for path in odata::paths(f) {
            if odata::lookup(sample, path).is_none() {
                return Err(ODataError::bad(format!(
                    "The query specified in the URI is not valid. Could not find a property named '{}' on type '{entity}'.",
                    path.join("/")
                )));
            }
        }
    }
    if let Some(f) = &o.filter {
        values.retain(|v| odata::eval(f, v));
    }
    if !o.orderby.is_empty() {
        odata::order(&mut values, &o.orderby);
    }
    let total = values.len();
    let out: Vec<Value> = values
        .into_iter()
        .skip(o.skip)
        .take(o.top)
        .map(|v| odata::select(v, &o.select))
        .collect();
    Ok(page(entity, out, total))
}

/// Every OData request: the path after `odata/`, translated.
async fn odata<S: Store>(
    State(st): State<AppState<S>>,
    method: Method,
    Path(p): Path<HashMap<String, String>>,
    Query(q): Query<HashMap<String, String>>,
    h: HeaderMap,
    body: Bytes,
) -> Response {
    let rest = p.get("rest").cloned().unwrap_or_default();
    match route(&st, &method, &rest, &q, &h, &body).await {
        Ok(r) => r,
        Err(e) => e.into_response(),
    }
}

async fn route<S: Store>(
    st: &AppState<S>,
    method: &Method,
    rest: &str,
    q: &HashMap<String, String>,
    h: &HeaderMap,
    body: &[u8],
) -> Answer {
    let me = caller(st, h).await?;
    if me.run.is_some() && !robot_may(method, rest) {
        return Err(ODataError::new(
            StatusCode::FORBIDDEN,
            0,
            format!("a robot's run token may not call {method} odata/{rest}"),
        ));
    }
    if let Some(answer) = assets::route(st, &me, method, rest, q, body).await {
        return answer;
    }
    if let Some(answer) = buckets::route(st, &me, method, rest, q, body).await {
        return answer;
    }
    let get = method == Method::GET;
    let post = method == Method::POST;
    let json_body = || -> Result<Map<String, Value>, ODataError> {
        match serde_json::from_slice::<Value>(body) {
            Ok(Value::Object(m)) => Ok(m),
            _ => Err(ODataError::bad("The request body must be a JSON object")),
        }
    };
    match rest {
        "Folders" | "OrganizationUnits" if get => {
            let o = options(q)?;
            let all = folders(st).await?;
            respond(rest, all.iter().map(|f| folder_json(f)).collect(), &o)
        }
        "Releases" | "Processes" if get => list_releases(st, &me, rest, q).await,
        "Jobs/UiPath.Server.Configuration.OData.StartJobs" if post => start_jobs(st, &me, json_body()?).await,
        "Jobs/UiPath.Server.Configuration.OData.StopJobs" if post => stop_jobs(st, &me, json_body()?).await,
        "Jobs/UiPath.Server.Configuration.OData.RestartJob" if post => restart_job(st, &me, json_body()?).await,
        "Jobs" if get => list_jobs(st, &me, q).await,
        "Robots" | "Sessions" if get => list_robots(st, &me, rest, q).await,
        "QueueDefinitions" if get => list_queues(st, &me, q).await,
        "QueueItems" if get => list_items(st, &me, q).await,
        "RobotLogs" if get => robot_logs(st, &me, q).await,
        "Users/UiPath.Server.Configuration.OData.GetCurrentUser"
        | "Users/UiPath.Server.Configuration.OData.GetCurrentUserExtended"
            if get =>
        {
            current_user(st, &me, q).await
        }
        "Queues/UiPathODataSvc.AddQueueItem" if post => add_queue_item(st, &me, json_body()?).await,
        "Queues/UiPathODataSvc.BulkAddQueueItems" if post => bulk_add(st, &me, json_body()?).await,
        "Queues/UiPathODataSvc.StartTransaction" if post => start_transaction(st, &me, json_body()?).await,
        "QueueItems/UiPathODataSvc.DeleteBulk" if post => delete_items(st, &me, json_body()?).await,
        "QueueDefinitions" if post => create_queue(st, &me, json_body()?).await,
        "Settings/UiPath.Server.Configuration.OData.GetLicense" if get => license(st).await,
        _ => {
            if let Some((entity, id, action)) = keyed(rest) {
                let item_id = || -> Result<rpa_core::ids::QueueItemId, ODataError> {
                    id.parse()
                        .map(rpa_core::ids::QueueItemId)
                        .map_err(|_| ODataError::bad(format!("{entity}({id}): the key must be a number")))
                };
                match (entity, action, method.clone()) {
                    ("QueueItems", None, Method::GET) => {
                        let item = st.engine.queue_item_by_id(&me, item_id()?).await?;
                        let queue = st.engine.store().process(item.process).await.map_err(Error::from)?;
                        let queue = queue.ok_or_else(|| ODataError::not_found("the item's queue no longer exists"))?;
                        return Ok(one("QueueItems", item_json(&item, &queue)));
                    }
                    ("QueueItems", None, Method::DELETE) => {
                        st.engine.delete_queue_item(&me, item_id()?).await?;
                        return Ok(StatusCode::NO_CONTENT.into_response());
                    }
                    ("QueueItems", Some("UiPathODataSvc.SetTransactionProgress"), Method::POST) => {
                        let body = json_body()?;
                        let progress = field(&body, "progress").and_then(Value::as_str).unwrap_or_default();
                        st.engine.set_transaction_progress(&me, item_id()?, progress).await?;
                        return Ok(axum::Json(json!({})).into_response());
                    }
                    ("Queues", Some("UiPathODataSvc.SetTransactionResult"), Method::POST) => {
                        let body = json_body()?;
                        let result = transaction_result(&body)?;
                        st.engine.end_transaction(&me, item_id()?, result).await?;
                        return Ok(axum::Json(json!({})).into_response());
                    }
                    _ => {}
                }
            }
            if get && let Some(id) = rest.strip_prefix("Jobs(").and_then(|r| r.strip_suffix(')')) {
                let id: i64 = id
                    .parse()
                    .map_err(|_| ODataError::bad(format!("Jobs({id}): the key must be a number")))?;
                let job = st.engine.job_by_id(&me, JobId(id)).await?;
                return Ok(one("Jobs", job_json(st, &job).await));
            }
            if get
                && let Some(arg) = rest
                    .strip_prefix("Jobs/UiPath.Server.Configuration.OData.GetByKey(identifier=")
                    .and_then(|r| r.strip_suffix(')'))
            {
                let key = parse_guid(arg).ok_or_else(|| ODataError::bad(format!("{arg} is not a GUID")))?;
                let job = st.engine.job(key).await?;
                let job = st.engine.job_by_id(&me, job.id).await?;
                return Ok(one("Jobs", job_json(st, &job).await));
            }
            Err(ODataError::not_found(format!(
                "No HTTP resource was found that matches the request URI 'odata/{rest}' ({method})."
            )))
        }
    }
}

/// The processes `me` may start (every one for a process manager).
async fn visible_processes<S: Store>(st: &AppState<S>, me: &Caller) -> Result<Vec<Process>, ODataError> {
    let in_folder = |p: &Process| me.folder.as_deref().is_none_or(|f| f == folder_of(p));
    let all: Vec<Process> = st
        .engine
        .processes()
        .await?
        .into_iter()
        .filter(|p| in_folder(p))
        .collect();
    if st
        .engine
        .has_permission(Actor::User(me.id), Permission::ManageProcesses)
        .await?
    {
        return Ok(all);
    }
    Ok(all.into_iter().filter(|p| me.granted(p)).collect())
}

fn release_json(p: &Process) -> Value {
    let input: Vec<Value> = p
        .spec
        .arguments
        .iter()
        .map(|a| json!({"name": a.name, "type": a.arg_type.as_str(), "required": a.required, "hasDefault": false}))
        .collect();
    json!({
        "Id": p.id.0,
        "Key": guid(p.key),
        "Name": p.spec.name,
        "ProcessKey": p.spec.name,
        "ProcessVersion": p.spec.version,
        "IsLatestVersion": true,
        "IsProcessDeleted": false,
        "Description": "",
        "ProcessType": "Process",
        "JobPriority": "Normal",
        "SpecificPriorityValue": p.spec.priority,
        "OrganizationUnitId": folder_id(folder_of(p)),
        "OrganizationUnitFullyQualifiedName": folder_of(p),
        "Arguments": {"Input": serde_json::to_string(&input).unwrap_or_default(), "Output": null},
        "CreationTime": iso(p.created_at),
    })
}

async fn list_releases<S: Store>(st: &AppState<S>, me: &Caller, entity: &str, q: &HashMap<String, String>) -> Answer {
    let o = options(q)?;
    let mut out = Vec::new();
    for p in visible_processes(st, me).await? {
        let v = if entity == "Processes" {
            json!({
                "Id": p.spec.name,
                "Key": format!("{}:{}", p.spec.name, p.spec.version),
                "Title": p.spec.name,
                "Version": p.spec.version,
                "IsLatestVersion": true,
                "IsActive": true,
                "Description": "",
            })
        } else {
            release_json(&p)
        };
        out.push(v);
    }
    respond(entity, out, &o)
}

fn job_state(s: JobState) -> &'static str {
    match s {
        JobState::Pending => "Pending",
        JobState::Running => "Running",
        JobState::Stopping => "Stopping",
        JobState::Suspended => "Suspended",
        JobState::Successful => "Successful",
        JobState::Faulted => "Faulted",
        JobState::Stopped | JobState::Canceled => "Stopped",
    }
}

async fn job_json<S: Store>(st: &AppState<S>, j: &Job) -> Value {
    let p = st.engine.store().process(j.process).await.ok().flatten();
    let robot = match j.robot {
        Some(r) => st.engine.store().robot(r).await.ok().flatten(),
        None => None,
    };
    job_value(j, p.as_ref(), robot.as_ref())
}

fn job_value(j: &Job, p: Option<&Process>, robot: Option<&Robot>) -> Value {
    let folder = p.map_or(FOLDER, folder_of);
    let (name, key) = p.map_or((String::new(), None), |p| (p.spec.name.clone(), Some(guid(p.key))));
    json!({
        "Id": j.id.0,
        "Key": guid(j.key),
        "State": job_state(j.state),
        "StartTime": j.started_at.map(iso),
        "EndTime": j.ended_at.map(iso),
        "CreationTime": iso(j.created_at),
        "ReleaseName": name,
        "Release": {"Name": name, "Key": key},
        "ProcessType": "Process",
        "Type": "Unattended",
        "Source": "Manual",
        "SourceType": "Manual",
        "JobPriority": "Normal",
        "SpecificPriorityValue": j.priority,
        "InputArguments": serde_json::to_string(j.arguments.as_ref()).unwrap_or_default(),
        "OutputArguments": j.outputs.as_deref().map(|o| serde_json::to_string(o).unwrap_or_default()),
        "Info": j.reason.as_deref().or(match j.state {
            JobState::Successful => Some("Job completed"),
            _ => None,
        }),
        "StartingScheduleId": null,
        "HostMachineName": robot.map(|r| r.code.to_string()),
        "Robot": robot.map(|r| json!({"Id": r.id.0, "Name": r.code.to_string()})),
        "HasErrors": j.state == JobState::Faulted,
        "HasWarnings": false,
        "BatchExecutionKey": guid(j.key),
        "FolderKey": guid(folder_key(folder)),
        "OrganizationUnitId": folder_id(folder),
        "OrganizationUnitFullyQualifiedName": folder,
    })
}

async fn start_jobs<S: Store>(st: &AppState<S>, me: &Caller, body: Map<String, Value>) -> Answer {
    let info = match field(&body, "startInfo") {
        Some(Value::Object(m)) => m,
        _ => return Err(ODataError::bad("startInfo is required")),
    };
    let s = |k: &str| {
        field(info, k)
            .and_then(Value::as_str)
            .map(str::trim)
            .filter(|v| !v.is_empty())
    };
    let processes = visible_processes(st, me).await?;
    let p = match (s("ReleaseKey"), s("ReleaseName")) {
        (Some(k), _) => {
            let key = parse_guid(k).ok_or_else(|| ODataError::bad(format!("ReleaseKey {k} is not a GUID")))?;
            processes.into_iter().find(|p| p.key == key)
        }
        (None, Some(n)) => processes.into_iter().find(|p| p.spec.name == n),
        (None, None) => return Err(ODataError::bad("startInfo needs ReleaseKey or ReleaseName")),
    }
    .ok_or_else(|| ODataError::not_found("Could not find the release or the user does not have access to it"))?;
    let args = match field(info, "InputArguments") {
        None | Some(Value::Null) => Value::Object(Map::new()),
        Some(Value::String(s)) if s.trim().is_empty() => Value::Object(Map::new()),
        Some(Value::String(s)) => {
            serde_json::from_str(s).map_err(|e| ODataError::bad(format!("InputArguments is not JSON: {e}")))?
        }
        Some(Value::Object(m)) => Value::Object(m.clone()),
        Some(_) => return Err(ODataError::bad("InputArguments must be a JSON string")),
    };
    let count = |k: &str| field(info, k).and_then(Value::as_u64);
    // One entry a job: the robot it is pinned to, if any.
    let pins: Vec<Option<rpa_core::ids::RobotId>> = match s("Strategy").unwrap_or("ModernJobsCount") {
        "Specific" => {
            let ids = field(info, "RobotIds")
                .and_then(Value::as_array)
                .ok_or_else(|| ODataError::bad("the Specific strategy needs RobotIds"))?;
            let mut pins = Vec::with_capacity(ids.len());
            for id in ids {
                let id = id
                    .as_i64()
                    .ok_or_else(|| ODataError::bad("RobotIds holds robot Ids (numbers)"))?;
                pins.push(Some(rpa_core::ids::RobotId(id)));
            }
            pins
        }
        "All" => {
            let robots = st.engine.store().robots().await.map_err(Error::from)?;
            robots
                .iter()
                .filter(|r| r.state != rpa_core::model::RobotState::Disconnected && r.can_run(&p.spec))
                .map(|r| Some(r.id))
                .collect()
        }
        "JobsCount" | "ModernJobsCount" | "RobotCount" => {
            let n = count("JobsCount").unwrap_or(1).min(1000);
            vec![None; usize::try_from(n).unwrap_or(1000)]
        }
        other => return Err(ODataError::bad(format!("Strategy {other} is not supported"))),
    };
    if pins.is_empty() || pins.len() > 100 {
        return Err(ODataError::bad("the number of jobs to start must be 1 to 100"));
    }
    let mut out = Vec::new();
    for pin in pins {
        let job = st.engine.start_job_on(me, p.key, &args, pin).await?;
        let mut v = job_json(st, &job).await;
        if let (Some(src), Value::Object(m)) = (s("Source"), &mut v) {
            m.insert("Source".into(), src.into());
        }
        out.push(v);
    }
    let n = out.len();
    Ok((StatusCode::CREATED, page("Jobs", out, n)).into_response())
}

async fn stop_jobs<S: Store>(st: &AppState<S>, me: &Caller, body: Map<String, Value>) -> Answer {
    let ids = field(&body, "jobIds")
        .and_then(Value::as_array)
        .ok_or_else(|| ODataError::bad("jobIds is required"))?;
    let strategy = match field(&body, "strategy") {
        Some(Value::String(s)) if s == "Kill" => StopStrategy::Kill,
        Some(Value::Number(n)) if n.as_u64() == Some(2) => StopStrategy::Kill,
        Some(Value::String(s)) if s == "SoftStop" => StopStrategy::SoftStop,
        Some(Value::Number(n)) if n.as_u64() == Some(1) => StopStrategy::SoftStop,
        None => StopStrategy::SoftStop,
        Some(other) => return Err(ODataError::bad(format!("strategy {other} is not SoftStop or Kill"))),
    };
    let mut jobs = Vec::new();
    for id in ids {
        let id = id.as_i64().ok_or_else(|| ODataError::bad("jobIds must be numbers"))?;
        jobs.push(st.engine.job_by_id(me, JobId(id)).await?);
    }
    for j in jobs {
        if j.state.is_terminal() {
            continue;
        }
        match strategy {
            StopStrategy::Kill => st.engine.kill_job(Actor::User(me.id), j.key).await?,
            StopStrategy::SoftStop => st.engine.stop_job(me, j.key, StopStrategy::SoftStop).await?,
        };
    }
    Ok(StatusCode::OK.into_response())
}

async fn restart_job<S: Store>(st: &AppState<S>, me: &Caller, body: Map<String, Value>) -> Answer {
    let id = body
        .get("jobId")
        .or_else(|| field(&body, "jobId"))
        .and_then(Value::as_i64)
        .ok_or_else(|| ODataError::bad("jobId is required"))?;
    let old = st.engine.job_by_id(me, JobId(id)).await?;
    if !old.state.is_terminal() {
        return Err(ODataError::new(
            StatusCode::CONFLICT,
            1013,
            "Only a job that has ended can be restarted",
        ));
    }
    let p = st
        .engine
        .store()
        .process(old.process)
        .await
        .map_err(Error::from)?
        .ok_or_else(|| ODataError::not_found("the job's process no longer exists"))?;
    let job = st.engine.start_job(me, p.key, &old.arguments).await?;
    Ok(one("Jobs", job_json(st, &job).await))
}

async fn list_jobs<S: Store>(st: &AppState<S>, me: &Caller, q: &HashMap<String, String>) -> Answer {
    let o = options(q)?;
    let all_jobs = st
        .engine
        .has_permission(Actor::User(me.id), Permission::OperateAllJobs)
        .await?;
    let processes: Vec<Process> = st
        .engine
        .processes()
        .await?
        .into_iter()
        .filter(|p| all_jobs || me.granted(p))
        .filter(|p| me.folder.as_deref().is_none_or(|f| f == folder_of(p)))
        .collect();
    let robots: HashMap<_, _> = st
        .engine
        .store()
        .robots()
        .await
        .map_err(Error::from)?
        .into_iter()
        .map(|r| (r.id, r))
        .collect();
    if let Some((states, release)) = store_query(&o) {
        // The store answers it alone: the newest skip + top of the states
        // asked, counted from the state index.
        let ids: Vec<_> = processes
            .iter()
            .filter(|p| release.as_ref().is_none_or(|r| *r == p.spec.name))
            .map(|p| p.id)
            .collect();
        let (total, jobs) = st
            .engine
            .jobs_of(&ids, states.as_deref(), o.skip.saturating_add(o.top))
            .await?;
        let mut values: Vec<Value> = jobs
            .iter()
            .skip(o.skip)
            .map(|j| {
                let p = processes.iter().find(|p| p.id == j.process);
                job_value(j, p, j.robot.and_then(|r| robots.get(&r)))
            })
            .collect();
        expand("Jobs", &o, &mut values)?;
        let out: Vec<Value> = values.into_iter().map(|v| odata::select(v, &o.select)).collect();
        return Ok(page("Jobs", out, usize::try_from(total).unwrap_or(usize::MAX)));
    }
    let mut found: Vec<Job> = Vec::new();
    for p in &processes {
        let (_, jobs) = st.engine.recent_jobs(p.id, 1000).await?;
        found.extend(jobs);
    }
    // Newest first unless $orderby says otherwise.
    found.sort_by_key(|j| std::cmp::Reverse((j.created_at, j.id)));
    let values = found
        .iter()
        .map(|j| {
            let p = processes.iter().find(|p| p.id == j.process);
            job_value(j, p, j.robot.and_then(|r| robots.get(&r)))
        })
        .collect();
    respond("Jobs", values, &o)
}

/// What a jobs query asks for when the store can answer it alone: newest
/// first (no `$orderby`, or `CreationTime desc`) and a `$filter` made of
/// `and`s of state tests (`State eq '...'`, `State in (...)` or `or`s of
/// them) and `ReleaseName eq '...'`. The states (none: every state) and
/// the release name, if one is named; `None`: the query needs more.
type StoreQuery = (Option<Vec<JobState>>, Option<String>);

fn store_query(o: &Options) -> Option<StoreQuery> {
    let newest_first = match o.orderby.as_slice() {
        [] => true,
        [(path, desc)] => *desc && path.len() == 1 && path[0].eq_ignore_ascii_case("CreationTime"),
        _ => false,
    };
    if !newest_first {
        return None;
    }
    fn states(e: &odata::Expr, out: &mut Vec<JobState>) -> bool {
        let is_state = |path: &[String]| path.len() == 1 && path[0].eq_ignore_ascii_case("State");
        let mut add = |v: &Value| match v.as_str() {
            Some(word) => {
                out.extend(JobState::ALL.into_iter().filter(|s| job_state(*s) == word));
                true
            }
            None => false,
        };
        match e {
            odata::Expr::Compare(path, odata::Op::Eq, v) if is_state(path) => add(v),
            odata::Expr::In(path, vs) if is_state(path) => vs.iter().all(add),
            odata::Expr::Or(a, b) => states(a, out) && states(b, out),
            _ => false,
        }
    }
    fn conjuncts<'a>(e: &'a odata::Expr, out: &mut Vec<&'a odata::Expr>) {
        match e {
            odata::Expr::And(a, b) => {
                conjuncts(a, out);
                conjuncts(b, out);
            }
            e => out.push(e),
        }
    }
    let Some(f) = &o.filter else {
        return Some((None, None));
    };
    let mut parts = Vec::new();
    conjuncts(f, &mut parts);
    let (mut wanted, mut release): (Option<Vec<JobState>>, Option<String>) = (None, None);
    for part in parts {
        if let odata::Expr::Compare(path, odata::Op::Eq, Value::String(name)) = part
            && path.len() == 1
            && path[0].eq_ignore_ascii_case("ReleaseName")
        {
            if release.as_ref().is_some_and(|r| r != name) {
                return Some((Some(Vec::new()), None));
            }
            release = Some(name.clone());
            continue;
        }
        let mut these = Vec::new();
        if !states(part, &mut these) {
            return None;
        }
        wanted = Some(match wanted {
            None => these,
            Some(before) => before.into_iter().filter(|s| these.contains(s)).collect(),
        });
    }
    if let Some(w) = &mut wanted {
        w.sort_by_key(|s| s.as_str());
        w.dedup();
    }
    Some((wanted, release))
}

fn robot_json(r: &Robot, session: bool) -> Value {
    let state = r.state.as_str();
    if session {
        json!({
            "Id": r.id.0,
            "State": state,
            "ReportingTime": iso(r.last_seen),
            "IsUnresponsive": state == "Unresponsive",
            "Robot": {"Id": r.id.0, "Name": r.code.to_string(), "MachineName": r.code.to_string()},
            "HostMachineName": r.code.to_string(),
            "MachineName": r.code.to_string(),
            "Platform": "Linux",
            "Version": r.robot_version.as_deref(),
        })
    } else {
        json!({
            "Id": r.id.0,
            "Key": guid(r.key),
            "Name": r.code.to_string(),
            "MachineName": r.code.to_string(),
            "Type": if r.profile.attended { "Attended" } else { "Unattended" },
            "Description": r.profile.pool,
            "Version": r.robot_version.as_deref(),
            "IsConnected": state != "Disconnected",
        })
    }
}

async fn list_robots<S: Store>(st: &AppState<S>, me: &Caller, entity: &str, q: &HashMap<String, String>) -> Answer {
    st.engine.require(Actor::User(me.id), Permission::ManageRobots).await?;
    let o = options(q)?;
    let robots = st.engine.store().robots().await.map_err(Error::from)?;
    let out = robots
        .iter()
        .filter(|r| me.folder.is_none() || r.profile.serves(me.folder.as_deref()))
        .map(|r| robot_json(r, entity == "Sessions"))
        .collect();
    respond(entity, out, &o)
}

async fn list_queues<S: Store>(st: &AppState<S>, me: &Caller, q: &HashMap<String, String>) -> Answer {
    let o = options(q)?;
    let mut out = Vec::new();
    for p in visible_processes(st, me).await? {
        if p.spec.process_type != ProcessType::Queue {
            continue;
        }
        out.push(queue_json(&p));
    }
    respond("QueueDefinitions", out, &o)
}

/// The newest items (1,000 a queue) of the queues the caller may see.
async fn list_items<S: Store>(st: &AppState<S>, me: &Caller, q: &HashMap<String, String>) -> Answer {
    let o = options(q)?;
    let mut found: Vec<(QueueItem, Process)> = Vec::new();
    for p in visible_processes(st, me).await? {
        if p.spec.process_type != ProcessType::Queue {
            continue;
        }
        let items = st
            .engine
            .store()
            .items_of_process(p.id, 1000)
            .await
            .map_err(Error::from)?;
        found.extend(items.into_iter().map(|i| (i, p.clone())));
    }
    // Newest first unless $orderby says otherwise.
    found.sort_by_key(|(i, _)| std::cmp::Reverse((i.created_at, i.id)));
    let values = found.iter().map(|(i, p)| item_json(i, p)).collect();
    respond("QueueItems", values, &o)
}

/// `Settings/...GetLicense`: what this server allows (robots are not
/// limited by a license count).
async fn license<S: Store>(st: &AppState<S>) -> Answer {
    let robots = st.engine.store().robots().await.map_err(Error::from)?;
    let used = robots
        .iter()
        .filter(|r| r.state != rpa_core::model::RobotState::Disconnected)
        .count();
    Ok(axum::Json(json!({
        "IsExpired": false,
        "IsRegistered": true,
        "IsCommunity": false,
        "ExpireDate": null,
        "Allowed": {"Unattended": null, "Attended": null},
        "Used": {"Unattended": used, "Attended": 0},
    }))
    .into_response())
}

/// A property of a request body, its name without regard to case
/// (UiPath's casing, or camelCase clients).
fn field<'a>(m: &'a Map<String, Value>, name: &str) -> Option<&'a Value> {
    m.get(name)
        .or_else(|| m.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v))
}

fn priority(v: Option<&Value>) -> Result<Option<i32>, ODataError> {
    Ok(match v {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) if s.eq_ignore_ascii_case("High") => Some(10),
        Some(Value::String(s)) if s.eq_ignore_ascii_case("Normal") => Some(0),
        Some(Value::String(s)) if s.eq_ignore_ascii_case("Low") => Some(-10),
        Some(other) => return Err(ODataError::bad(format!("Priority {other} is not High, Normal or Low"))),
    })
}

fn priority_word(p: i32) -> &'static str {
    match p {
        p if p > 0 => "High",
        p if p < 0 => "Low",
        _ => "Normal",
    }
}

fn time(v: Option<&Value>, what: &str) -> Result<Option<Timestamp>, ODataError> {
    match v {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => chrono::DateTime::parse_from_rfc3339(s)
            .map(|d| Some(Timestamp(d.timestamp_millis())))
            .map_err(|_| ODataError::bad(format!("{what} must be an ISO 8601 date-time"))),
        Some(_) => Err(ODataError::bad(format!("{what} must be an ISO 8601 date-time"))),
    }
}

fn item_json(i: &QueueItem, queue: &Process) -> Value {
    let status = match i.state {
        rpa_core::model::ItemState::New => "New",
        rpa_core::model::ItemState::InProgress => "InProgress",
        rpa_core::model::ItemState::Faulted => "Failed",
        rpa_core::model::ItemState::Successful => "Successful",
        rpa_core::model::ItemState::Retried => "Retried",
        rpa_core::model::ItemState::Abandoned => "Abandoned",
        rpa_core::model::ItemState::Deleted => "Deleted",
    };
    json!({
        "Id": i.id.0,
        "Key": guid(i.key),
        "QueueDefinitionId": queue.id.0,
        "Name": queue.spec.name,
        "Status": status,
        "Priority": priority_word(i.priority),
        "Reference": i.any_reference(),
        "SpecificContent": i.content.as_ref(),
        "DeferDate": i.defer_until.map(iso),
        "Progress": i.progress,
        "Output": i.output.as_deref(),
        "DueDate": i.deadline.map(iso),
        "RiskSlaDate": i.risk_sla.map(iso),
        "RetryNumber": i.retry_count,
        "CreationTime": iso(i.created_at),
        "OrganizationUnitId": folder_id(folder_of(queue)),
    })
}

/// An item's data (`itemData`, or one of `queueItems`) as the engine takes it.
fn new_item(data: &Map<String, Value>) -> Result<NewQueueItem, ODataError> {
    let content = match field(data, "SpecificContent") {
        None | Some(Value::Null) => Value::Object(Map::new()),
        Some(Value::Object(m)) => Value::Object(m.clone()),
        Some(_) => return Err(ODataError::bad("SpecificContent must be an object")),
    };
    Ok(NewQueueItem {
        content,
        reference: field(data, "Reference").and_then(Value::as_str).map(str::to_owned),
        priority: priority(field(data, "Priority"))?,
        defer_until: time(field(data, "DeferDate"), "DeferDate")?,
        deadline: time(field(data, "DueDate"), "DueDate")?,
        risk_sla: time(field(data, "RiskSlaDate"), "RiskSlaDate")?,
        progress: field(data, "Progress").and_then(Value::as_str).map(str::to_owned),
    })
}

async fn queue_named<S: Store>(st: &AppState<S>, me: &Caller, name: &str) -> Result<Process, ODataError> {
    visible_processes(st, me)
        .await?
        .into_iter()
        .find(|p| p.spec.name == name && p.spec.process_type == ProcessType::Queue)
        .ok_or_else(|| ODataError::not_found(format!("Queue '{name}' does not exist.")))
}

fn duplicate(e: Error) -> ODataError {
    match e {
        Error::AlreadyExists(_) => ODataError::new(
            StatusCode::CONFLICT,
            1016,
            "Error creating Transaction. Duplicate Reference.",
        ),
        e => e.into(),
    }
}

async fn add_queue_item<S: Store>(st: &AppState<S>, me: &Caller, body: Map<String, Value>) -> Answer {
    let data = match field(&body, "itemData") {
        Some(Value::Object(m)) => m,
        _ => return Err(ODataError::bad("itemData is required")),
    };
    let name = field(data, "Name")
        .and_then(Value::as_str)
        .ok_or_else(|| ODataError::bad("itemData.Name (the queue) is required"))?;
    let queue = queue_named(st, me, name).await?;
    let item = st
        .engine
        .add_queue_item(me, queue.key, new_item(data)?)
        .await
        .map_err(duplicate)?;
    Ok((StatusCode::CREATED, one("QueueItems", item_json(&item, &queue))).into_response())
}

/// `BulkAddQueueItems`: `{queueName, commitType, queueItems}`; answers the
/// items that could not be added. With `AllOrNothing` nothing is added when
/// an item is malformed or its reference is taken (checked first).
async fn bulk_add<S: Store>(st: &AppState<S>, me: &Caller, body: Map<String, Value>) -> Answer {
    let name = field(&body, "queueName")
        .and_then(Value::as_str)
        .ok_or_else(|| ODataError::bad("queueName is required"))?;
    let queue = queue_named(st, me, name).await?;
    let all_or_nothing = match field(&body, "commitType").and_then(Value::as_str) {
        None | Some("AllOrNothing") => true,
        Some("StopOnFirstFailure") | Some("ProcessAllIndependently") => false,
        Some(other) => return Err(ODataError::bad(format!("commitType {other} is not known"))),
    };
    let stop_on_failure = field(&body, "commitType").and_then(Value::as_str) == Some("StopOnFirstFailure");
    let items = field(&body, "queueItems")
        .and_then(Value::as_array)
        .ok_or_else(|| ODataError::bad("queueItems is required"))?;
    if items.len() > 15_000 {
        return Err(ODataError::bad("at most 15000 items at once"));
    }
    let mut parsed = Vec::with_capacity(items.len());
    for (n, item) in items.iter().enumerate() {
        let Value::Object(m) = item else {
            return Err(ODataError::bad(format!("queueItems[{n}] must be an object")));
        };
        parsed.push((m.clone(), new_item(m)?));
    }
    if all_or_nothing && queue.spec.unique_references {
        let mut seen = std::collections::HashSet::new();
        for (_, new) in &parsed {
            if let Some(r) = &new.reference
                && (!seen.insert(r.clone())
                    || st
                        .engine
                        .store()
                        .item_by_reference(queue.id, r)
                        .await
                        .map_err(Error::from)?
                        .is_some())
            {
                return Err(duplicate(Error::AlreadyExists(r.clone())));
            }
        }
    }
    let mut failed = Vec::new();
    for (data, new) in parsed {
        if let Err(e) = st.engine.add_queue_item(me, queue.key, new).await {
            let mut v = Value::Object(data);
            if let Value::Object(m) = &mut v {
                m.insert("ErrorMessage".into(), ODataError::from(e).message.into());
            }
            failed.push(v);
            if stop_on_failure || all_or_nothing {
                break;
            }
        }
    }
    let n = failed.len();
    Ok(page(
        "Collection(UiPath.Core.Entities.Dto.Queues.BulkItemDto)",
        failed,
        n,
    ))
}

/// `RobotLogs?$filter=JobKey eq <guid>`: a job's run log lines, in order;
/// the filter must name the job (the logs of every job are not listed).
async fn robot_logs<S: Store>(st: &AppState<S>, me: &Caller, q: &HashMap<String, String>) -> Answer {
    let o = options(q)?;
    fn job_key(e: &odata::Expr) -> Option<Key> {
        match e {
            odata::Expr::Compare(path, odata::Op::Eq, Value::String(k))
                if path.len() == 1 && path[0].eq_ignore_ascii_case("JobKey") =>
            {
                parse_guid(k)
            }
            odata::Expr::And(a, b) => job_key(a).or_else(|| job_key(b)),
            _ => None,
        }
    }
    let key = o
        .filter
        .as_ref()
        .and_then(job_key)
        .ok_or_else(|| ODataError::bad("RobotLogs needs $filter=JobKey eq <the job's Key>"))?;
    let job = st.engine.job(key).await?;
    let logs = st.engine.job_logs(me, key).await?;
    let process = st.engine.store().process(job.process).await.map_err(Error::from)?;
    let robot = match job.robot {
        Some(r) => st.engine.store().robot(r).await.map_err(Error::from)?,
        None => None,
    };
    let robot_name = robot.as_ref().map(|r| r.code.to_string());
    let values = logs
        .iter()
        .map(|l| {
            json!({
                "Id": l.id.0,
                "Level": match l.level {
                    rpa_core::model::LogLevel::Info => "Info",
                    rpa_core::model::LogLevel::Warning => "Warn",
                    rpa_core::model::LogLevel::Error => "Error",
                },
                "Message": l.content,
                "TimeStamp": iso(l.received_at),
                "RawMessage": json!({"message": l.content, "logAt": l.log_at, "screenshot": l.screenshot}).to_string(),
                "JobKey": guid(job.key),
                "ProcessName": process.as_ref().map(|p| p.spec.name.clone()),
                "RobotName": robot_name,
                "HostMachineName": robot_name,
                "WindowsIdentity": null,
                "MachineId": job.robot.map(|r| r.0),
            })
        })
        .collect();
    respond("RobotLogs", values, &o)
}

/// `Users/...GetCurrentUser(Extended)`: who the token is.
async fn current_user<S: Store>(st: &AppState<S>, me: &Caller, q: &HashMap<String, String>) -> Answer {
    let o = options(q)?;
    let roles = st.engine.store().roles().await.map_err(Error::from)?;
    let role_names: Vec<String> = roles
        .iter()
        .filter(|r| me.roles.contains(&r.id))
        .map(|r| r.name.clone())
        .collect();
    let mut v = json!({
        "Id": me.id.0,
        "Key": guid(me.key),
        "UserName": me.name,
        "Name": me.name,
        "Surname": null,
        "FullName": me.name,
        "EmailAddress": null,
        "IsActive": !me.disabled,
        "Type": if me.run.is_some() { "Robot" } else { "User" },
        "RolesList": role_names,
        "CreationTime": iso(me.created_at),
        "PersonalWorkspace": null,
    });
    let mut one_value = [std::mem::take(&mut v)];
    expand("Users", &o, &mut one_value)?;
    let [v] = one_value;
    Ok(one("Users", odata::select(v, &o.select)))
}

/// `QueueItems/UiPathODataSvc.DeleteBulk` `{queueItemIds: [Id, ...]}`:
/// deletes the New items among them; answers whether all were and, for
/// the others, why not (`{Success, FailedItems: [{Key, ErrorMessage}]}`).
async fn delete_items<S: Store>(st: &AppState<S>, me: &Caller, body: Map<String, Value>) -> Answer {
    let ids = field(&body, "queueItemIds")
        .and_then(Value::as_array)
        .ok_or_else(|| ODataError::bad("queueItemIds is required"))?;
    if ids.len() > 10_000 {
        return Err(ODataError::bad("at most 10000 items at once"));
    }
    let mut failed = Vec::new();
    for v in ids {
        let id = v
            .as_i64()
            .ok_or_else(|| ODataError::bad("queueItemIds holds item Ids (numbers)"))?;
        if let Err(e) = st.engine.delete_queue_item(me, rpa_core::ids::QueueItemId(id)).await {
            failed.push(json!({"Key": id, "ErrorMessage": ODataError::from(e).message}));
        }
    }
    Ok(axum::Json(json!({"Success": failed.is_empty(), "FailedItems": failed})).into_response())
}

/// `Entity(<key>)` or `Entity(<key>)/Action`.
fn keyed(rest: &str) -> Option<(&str, &str, Option<&str>)> {
    let (entity, after) = rest.split_once('(')?;
    let (key, tail) = after.split_once(')')?;
    let action = tail.strip_prefix('/').filter(|a| !a.is_empty());
    if !tail.is_empty() && action.is_none() {
        return None;
    }
    Some((entity, key, action))
}

/// `StartTransaction`: `{transactionData: {Name, RobotIdentifier,
/// SpecificContent?, Reference?}}`; the item taken, or 204 when none waits.
async fn start_transaction<S: Store>(st: &AppState<S>, me: &Caller, body: Map<String, Value>) -> Answer {
    let data = match field(&body, "transactionData") {
        Some(Value::Object(m)) => m,
        _ => return Err(ODataError::bad("transactionData is required")),
    };
    let name = field(data, "Name")
        .and_then(Value::as_str)
        .ok_or_else(|| ODataError::bad("transactionData.Name (the queue) is required"))?;
    let queue = queue_named(st, me, name).await?;
    let new = match field(data, "SpecificContent") {
        None | Some(Value::Null) => None,
        Some(_) => Some(new_item(data)?),
    };
    match st
        .engine
        .start_transaction(me, queue.key, new)
        .await
        .map_err(duplicate)?
    {
        Some(item) => Ok(one("QueueItems", item_json(&item, &queue))),
        None => Ok(StatusCode::NO_CONTENT.into_response()),
    }
}

/// `SetTransactionResult`'s `transactionResult`.
fn transaction_result(body: &Map<String, Value>) -> Result<rpa_core::engine::TransactionResult, ODataError> {
    let r = match field(body, "transactionResult") {
        Some(Value::Object(m)) => m,
        _ => return Err(ODataError::bad("transactionResult is required")),
    };
    let success = field(r, "IsSuccessful")
        .and_then(Value::as_bool)
        .ok_or_else(|| ODataError::bad("transactionResult.IsSuccessful is required"))?;
    let exception = match field(r, "ProcessingException") {
        Some(Value::Object(m)) => Some(m),
        _ => None,
    };
    let text = |k: &str| exception.and_then(|m| field(m, k)).and_then(Value::as_str);
    let class = match text("Type") {
        Some(t) if t.eq_ignore_ascii_case("BusinessException") || t == "1" => rpa_core::job::ErrorClass::Business,
        _ => rpa_core::job::ErrorClass::Application,
    };
    Ok(rpa_core::engine::TransactionResult {
        success,
        class,
        reason: text("Reason").map(str::to_owned),
        output: field(r, "Output").filter(|v| !v.is_null()).cloned(),
    })
}

/// `POST QueueDefinitions`: a new Queue process (permission ManageProcesses).
async fn create_queue<S: Store>(st: &AppState<S>, me: &Caller, body: Map<String, Value>) -> Answer {
    let name = field(&body, "Name")
        .and_then(Value::as_str)
        .map(str::trim)
        .filter(|n| !n.is_empty())
        .ok_or_else(|| ODataError::bad("Name is required"))?;
    let mut spec = rpa_core::model::ProcessSpec::new(name, ProcessType::Queue);
    spec.max_run_num = 0;
    spec.folder = me.folder.clone().filter(|f| f != FOLDER);
    if let Some(n) = field(&body, "MaxNumberOfRetries").and_then(Value::as_u64) {
        spec.retry.max_retries = u32::try_from(n.min(50)).unwrap_or(50);
    }
    if field(&body, "AcceptAutomaticallyRetry").and_then(Value::as_bool) == Some(false) {
        spec.retry.max_retries = 0;
    }
    // UiPath's default: references are labels unless the queue enforces them.
    spec.unique_references = field(&body, "EnforceUniqueReference").and_then(Value::as_bool) == Some(true);
    // UiPath's queues start no jobs: their items wait for StartTransaction.
    spec.trigger = Some(rpa_core::trigger::QueueTrigger::TRANSACTIONS_ONLY);
    if visible_processes(st, me).await?.iter().any(|p| p.spec.name == name) {
        return Err(ODataError::new(
            StatusCode::CONFLICT,
            1004,
            format!("Queue '{name}' already exists."),
        ));
    }
    let p = st.engine.create_process(Actor::User(me.id), spec).await?;
    Ok((StatusCode::CREATED, one("QueueDefinitions", queue_json(&p))).into_response())
}

fn queue_json(p: &Process) -> Value {
    json!({
        "Id": p.id.0,
        "Key": guid(p.key),
        "Name": p.spec.name,
        "Description": "",
        "MaxNumberOfRetries": p.spec.retry.max_retries,
        "AcceptAutomaticallyRetry": p.spec.retry.max_retries > 0,
        "EnforceUniqueReference": p.spec.unique_references,
        "CreationTime": iso(p.created_at),
        "OrganizationUnitId": folder_id(folder_of(p)),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_store_answers_state_and_release_filters_newest_first() {
        let q = |filter: &str, orderby: &str| {
            let mut m = HashMap::new();
            if !filter.is_empty() {
                m.insert("$filter".to_owned(), filter.to_owned());
            }
            if !orderby.is_empty() {
                m.insert("$orderby".to_owned(), orderby.to_owned());
            }
            store_query(&options(&m).unwrap())
        };
        assert_eq!(q("", ""), Some((None, None)));
        assert_eq!(q("State eq 'Pending'", ""), Some((Some(vec![JobState::Pending]), None)));
        assert_eq!(
            q("State eq 'Stopped'", "CreationTime desc"),
            Some((Some(vec![JobState::Canceled, JobState::Stopped]), None)),
            "Stopped is both words of the engine"
        );
        assert_eq!(
            q(
                "(State eq 'Running' or State eq 'Pending') and ReleaseName eq 'Invoice'",
                ""
            ),
            Some((Some(vec![JobState::Pending, JobState::Running]), Some("Invoice".into())))
        );
        assert_eq!(
            q("State in ('Faulted','Successful') and State eq 'Faulted'", ""),
            Some((Some(vec![JobState::Faulted]), None))
        );
        assert_eq!(q("State eq 'Pending'", "CreationTime"), None, "oldest first needs more");
        assert_eq!(q("State ne 'Pending'", ""), None);
        assert_eq!(q("State eq 'Pending' or ReleaseName eq 'X'", ""), None);
        assert_eq!(q("contains(ReleaseName, 'In')", ""), None);
    }

    #[test]
    fn expand_names_navigation_properties() {
        let o = |expand: &str, select: &str| {
            let mut m = HashMap::new();
            m.insert("$expand".to_owned(), expand.to_owned());
            if !select.is_empty() {
                m.insert("$select".to_owned(), select.to_owned());
            }
            options(&m).unwrap()
        };
        let x = o("Robot($select=Name,Id), Release ,Robot/Machine", "State");
        assert_eq!(x.expand, ["Robot", "Release", "Robot"]);
        assert_eq!(
            x.select,
            ["State", "Robot", "Release", "Robot"],
            "expanded ones are kept"
        );
        let job = json!({"State": "Pending", "Robot": {"Name": "r"}, "Release": {"Name": "p"}});
        let mut values = vec![job.clone()];
        expand("Jobs", &x, &mut values).unwrap();
        assert_eq!(values, std::slice::from_ref(&job), "known ones are there already");
        expand("Jobs", &o("robot", ""), &mut values).unwrap();
        assert_eq!(values, std::slice::from_ref(&job), "any case");
        expand("Jobs", &o("Machine", ""), &mut values).unwrap();
        assert_eq!(
            values[0]["Machine"],
            Value::Null,
            "UiPath's, without anything behind it here"
        );
        assert!(expand("Jobs", &o("Nonsense", ""), &mut values).is_err());
        assert_eq!(o("", "").expand, Vec::<String>::new());
    }

    #[test]
    fn guids_round_trip() {
        let k = Key::from_random([7; 16]);
        let g = guid(k);
        assert_eq!(g.len(), 36);
        assert_eq!(parse_guid(&g), Some(k));
        assert_eq!(parse_guid(&format!("{{{g}}}")), Some(k));
        assert_eq!(parse_guid("nope"), None);
    }

    #[test]
    fn form_bodies_decode() {
        let mut h = HeaderMap::new();
        h.insert("content-type", "application/x-www-form-urlencoded".parse().unwrap());
        let f = body_fields(
            &h,
            b"grant_type=client_credentials&client_id=a%2Bb&scope=OR.Jobs+OR.Robots",
        );
        assert_eq!(f["client_id"], "a+b");
        assert_eq!(f["scope"], "OR.Jobs OR.Robots");
        let f = body_fields(&HeaderMap::new(), br#"{"grant_type": "refresh_token"}"#);
        assert_eq!(f["grant_type"], "refresh_token");
    }
}
