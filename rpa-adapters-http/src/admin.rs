//! Administration over HTTP (not in the seeds; needed to use the server).
//! Every call needs the `X-Access-Token` of a user whose role grants the
//! permission named; answers use the seed 000 envelope and errors
//! ([`crate::seed000`]).
//!
//! | method, path | permission | body / answer |
//! |---|---|---|
//! | `POST /admin/users` | ManageUsers | `{name, password, roles?, processes?: [processId]}` |
//! | `GET /admin/users` | ManageUsers | `[{name, locked, failedLogins, roles, processes}]` |
//! | `POST /admin/users/unlock` | ManageUsers | `{name}` |
//! | `POST /admin/users/disable`, `.../enable` | ManageUsers | `{name}`: a disabled user cannot log in and their sessions and tokens stop working at once (users are never deleted: the audit log names them) |
//! | `POST /admin/roles` | ManageUsers | `{name, permissions: [ManageUsers \| ManageProcesses \| ManageRobots \| ViewAudit \| OperateAllJobs]}` → `{roleId, name, permissions}` |
//! | `POST /admin/grants` | ManageUsers | `{name, processId}` or `{name, folder}` (every process of the folder, present and future) |
//! | `POST /admin/grants/revoke` | ManageUsers | `{name, processId}` or `{name, folder}` |
//! | `POST /admin/tokens` | ManageUsers | `{name, days?}` → `{token, user, expiresAt}`: a personal access token (UiPath bearer or `X-Access-Token`), shown once |
//! | `POST /admin/processes` | ManageProcesses | a process definition ([`crate::config::ProcessDef`]) → `{processId}` |
//! | `GET /admin/processes` | ManageProcesses | `[{processId, processName, type, version, packageDownloadUri, ...}]` |
//! | `POST /admin/processes/{processId}/package?version=` | ManageProcesses | raw package bytes → `{fileId, packageDownloadUri, version, sha256, current}`: kept as that version (default: the next patch); a process that follows the latest runs it if it is the latest; a version never changes content (other bytes under a kept version are refused) |
//! | `GET /admin/processes/{processId}/packages` | ManageProcesses | `[{version, fileId, sha256, size, uploadTime, uploadedBy, current}]`, newest version first |
//! | `POST /admin/processes/{processId}/package/pin` | ManageProcesses | `{version}`: run that kept version from now on (a rollback when older); `{version: null}`: follow the latest again |
//! | `POST /admin/vendors` | ManageRobots | `{supplierCode, secret}` |
//! | `POST /admin/robots` | ManageRobots | `{robotId, vendor?, pool?, labels?, attended?, licenseContent?, license?, folders?}` (folders: the only ones whose processes it runs; license: a license record's name, bound as `/admin/licenses/{name}/bind` does) |
//! | `GET /admin/robots` | ManageRobots | `[{robotId, state, jobId, pool, labels, attended, version, licensed, license, blocked, lastSeen}]` (blocked: why it gets no work, e.g. its license expired) |
//! | `/admin/licenses...` | ManageRobots | robot licenses: see [`crate::licenses`] |
//! | `POST /admin/jobs/{jobId}/kill` | OperateAllJobs | → `{jobId, state}`: the job ends Stopped at once, its robot is sent Stop (seed 000 `stopJob` asks the robot instead) |
//! | `GET /admin/audit?after=&limit=` | ViewAudit | audit events |
//! | `GET /admin/audit/verify` | ViewAudit | `{verified}` or a failure naming the first broken event |
//! | `GET /admin/listener/requests?queue=fallout\|automation&after=&limit=` | OperateAllJobs | `[{instanceId, messageId, appId, sourceMessageId, processName, profileName, userName, referenceCode, queue, errorCode, errorMsg, jobId, createdAt}]`: seed 003 requests by queue, oldest first; page on with `after` = the last `instanceId` |
//! | `POST /admin/schedules` | ManageProcesses | a schedule ([`crate::config::ScheduleDef`]) → the schedule with its next five fire times |
//! | `GET /admin/schedules` | ManageProcesses | `[{scheduleId, name, processId, processName, enabled, rule, zone, missed, owner, nextFireTimes}]` |
//! | `POST /admin/schedules/{scheduleId}/enable`, `.../disable` | ManageProcesses | the schedule |
//! | `GET /admin/schedules/{scheduleId}/firings?after=&limit=` | ManageProcesses | `[{firingId, due, at, jobId, missed, reason}]`, oldest first |
//! | `GET /admin/events?after=&limit=` | ViewAudit | `{events: [{seq, at, type, ...}], through}`: the domain events among the `limit` audit events after `after`; page on with `after=through` |

use rpa_core::store::People as _;
use std::collections::HashMap;

use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::routing::{get, post};
use rpa_core::engine::{NewPackage, NewUser};
use rpa_core::error::Error;
use rpa_core::events::Event;
use rpa_core::model::{Actor, FileSource, Permission, Process, RobotProfile, User};
use rpa_core::package::{self, Version};
use rpa_core::{Key, Store};
use serde::Serialize;
use serde_json::Value;
use sha2::{Digest, Sha256};
use utoipa::ToSchema;

use crate::AppState;
use crate::config::{ProcessDef, QueueTriggerDef, RobotDef};
use crate::seed000::{Answer, BusinessError, Done, Envelope, fields, session};
use crate::wire::key;

/// The administration routes.
pub fn router<S: Store>() -> Router<AppState<S>> {
    Router::new()
        .route("/admin/users", post(create_user::<S>).get(list_users::<S>))
        .route("/admin/users/unlock", post(unlock::<S>))
        .route("/admin/users/disable", post(disable::<S>))
        .route("/admin/users/enable", post(enable::<S>))
        .route("/admin/roles", post(create_role::<S>))
        .route("/admin/grants", post(grant::<S>))
        .route("/admin/grants/revoke", post(revoke::<S>))
        .route("/admin/tokens", post(issue_token::<S>))
        .route("/admin/processes", post(create_process::<S>).get(list_processes::<S>))
        .route("/admin/processes/{process_id}/packages", get(list_packages::<S>))
        .route("/admin/processes/{process_id}/package/pin", post(pin_package::<S>))
        .route("/admin/vendors", post(vendor::<S>))
        .route("/admin/robots", post(robot::<S>).get(list_robots::<S>))
        .route("/admin/jobs/{job_id}/kill", post(kill::<S>))
        .route("/admin/audit", get(audit::<S>))
        .route("/admin/audit/verify", get(verify::<S>))
        .route("/admin/events", get(events::<S>))
        .route("/admin/listener/requests", get(listener_requests::<S>))
        .route("/admin/schedules", post(create_schedule::<S>).get(list_schedules::<S>))
        .route("/admin/schedules/{scheduleId}/enable", post(enable_schedule::<S>))
        .route("/admin/schedules/{scheduleId}/disable", post(disable_schedule::<S>))
        .route("/admin/schedules/{scheduleId}/firings", get(schedule_firings::<S>))
        .route("/admin/workflows", post(save_workflow::<S>).get(list_workflows::<S>))
        .route("/admin/workflows/{workflowId}", get(export_workflow::<S>))
        .route("/admin/flow/directory", get(get_directory::<S>).put(put_directory::<S>))
        .route("/admin/webhooks", post(create_webhook::<S>).get(list_webhooks::<S>))
        .route(
            "/admin/webhooks/{webhookId}",
            axum::routing::delete(delete_webhook::<S>),
        )
        .route("/admin/webhooks/{webhookId}/failures", get(webhook_failures::<S>))
        .route(
            "/admin/webhooks/{webhookId}/failures/{failureId}/redeliver",
            post(redeliver_webhook::<S>),
        )
}

/// The package upload route (mounted with the upload body limit).
pub fn upload_router<S: Store>() -> Router<AppState<S>> {
    Router::new().route("/admin/processes/{process_id}/package", post(upload_package::<S>))
}

/// The session's user, if a role of theirs grants `perm`; a refusal is
/// audited (`permission.denied`).
pub async fn admin<S: Store>(st: &AppState<S>, h: &HeaderMap, perm: Permission) -> Result<User, BusinessError> {
    let user = session(st, h).await?;
    st.engine.require(Actor::User(user.id), perm).await?;
    Ok(user)
}

pub(crate) fn process_id(s: &str) -> Result<Key, BusinessError> {
    key("processId", s).map_err(|_| BusinessError::refused(format!("process {s} not found")))
}

// ------------------------------------------------------------------ requests

/// A new user.
#[derive(Debug, ToSchema)]
pub struct NewUserRequest {
    /// Login name.
    pub name: String,
    /// Password.
    #[schema(format = Password)]
    pub password: String,
    /// Role names (`admin`, `operator`, `user`...).
    pub roles: Option<Vec<String>>,
    /// Ids of the processes the user may start.
    pub processes: Option<Vec<String>>,
}

/// A body naming a user.
#[derive(Debug, ToSchema)]
pub struct UserRequest {
    /// Login name.
    pub name: String,
}

/// A process for a user.
#[derive(Debug, ToSchema)]
#[schema(rename_all = "camelCase")]
pub struct GrantRequest {
    /// Login name.
    pub name: String,
    /// The process's 32-character id (or `folder`).
    pub process_id: Option<String>,
    /// A folder: every process in it, present and future (or `processId`).
    pub folder: Option<String>,
}

/// A vendor and the secret its robots prove themselves with.
#[derive(Debug, ToSchema)]
#[schema(rename_all = "camelCase")]
pub struct VendorRequest {
    /// Seed 001 `supplierCode`.
    pub supplier_code: String,
    /// The shared secret (stored sealed).
    #[schema(format = Password)]
    pub secret: String,
}

/// `after` and `limit` of a paged query.
#[derive(Debug, serde::Deserialize, utoipa::IntoParams)]
pub struct PageQuery {
    /// Only what comes after this sequence number (default 0).
    pub after: Option<String>,
    /// At most this many (default 100, at most 1000).
    pub limit: Option<String>,
}

/// `after` and `limit` of a paged query (`limit` at most 1000).
fn page(q: &HashMap<String, String>) -> Result<(u64, usize), BusinessError> {
    let num = |k: &str, d: u64| {
        q.get(k).map_or(Ok(d), |v| {
            v.parse::<u64>()
                .map_err(|_| BusinessError::refused(format!("{k} must be a number")))
        })
    };
    Ok((num("after", 0)?, num("limit", 100)?.min(1000) as usize))
}

// ------------------------------------------------------------------- results

/// A user created.
#[derive(Debug, Serialize, ToSchema)]
pub struct CreatedUser {
    /// Login name.
    pub name: String,
}

/// A user.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct UserInfo {
    /// Login name.
    pub name: String,
    /// Locked by wrong passwords.
    pub locked: bool,
    /// Disabled by an administrator.
    pub disabled: bool,
    /// Wrong passwords counted.
    pub failed_logins: u32,
    /// Role ids.
    pub roles: Vec<i64>,
    /// Ids of the processes granted.
    #[schema(value_type = Vec<String>)]
    pub processes: Vec<Key>,
    /// Folders granted (every process in them).
    pub folders: Vec<String>,
}

/// A process.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ProcessDetails {
    /// 32-character id.
    #[schema(value_type = String)]
    pub process_id: Key,
    /// Name.
    pub process_name: String,
    /// Unattended, Attended or Queue.
    #[serde(rename = "type")]
    pub process_type: &'static str,
    /// Package version.
    pub version: String,
    /// Where robots download the package.
    pub package_download_uri: String,
    /// Most jobs running at once (0: no limit).
    pub max_run_num: u32,
    /// Jobs running now.
    pub current_run_num: u32,
    /// Most successful runs a day (0: no limit).
    pub max_day_num: u32,
    /// Most queue items waiting (0: no limit).
    pub max_pending_items: u32,
    /// Queue items waiting.
    pub pending_items: u32,
    /// Dispatch priority.
    pub priority: i32,
    /// A Queue process's trigger, if it has one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub queue_trigger: Option<QueueTriggerDef>,
    /// When it was created.
    pub create_time: String,
    /// Its region (run analysis).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    /// Its business scenario (scenario analysis).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scenario: Option<String>,
    /// Its business domain.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub business_domain: Option<String>,
    /// Minutes a successful run saves.
    pub saved_minutes: u32,
}

/// A package uploaded.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PackageUploaded {
    /// The stored file's id.
    #[schema(value_type = String)]
    pub file_id: Key,
    /// Where robots download it.
    pub package_download_uri: String,
    /// Its version.
    pub version: String,
    /// Lowercase hex SHA-256 of its bytes.
    pub sha256: String,
    /// Whether the process runs it now (it follows the latest and this is
    /// the latest, or it is pinned to it).
    pub current: bool,
}

/// A kept package version.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PackageInfo {
    /// Its version.
    pub version: String,
    /// The stored file's id.
    #[schema(value_type = String)]
    pub file_id: Key,
    /// Lowercase hex SHA-256 of its bytes.
    pub sha256: String,
    /// Bytes.
    pub size: u64,
    /// When it was uploaded.
    pub upload_time: String,
    /// Who uploaded it.
    pub uploaded_by: String,
    /// Whether the process runs it now.
    pub current: bool,
}

/// A job killed.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Killed {
    /// 32-character job id.
    #[schema(value_type = String)]
    pub job_id: Key,
    /// Its state now.
    pub state: &'static str,
}

/// A robot.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RobotInfo {
    /// The executor's id.
    pub robot_id: String,
    /// Available, Busy, Unresponsive or Disconnected.
    pub state: &'static str,
    /// The job it runs.
    #[schema(value_type = Option<String>)]
    pub job_id: Option<Key>,
    /// Vendor.
    pub vendor: Option<String>,
    /// Pool.
    pub pool: String,
    /// Labels.
    pub labels: Vec<String>,
    /// The folders whose processes it runs (empty: every folder).
    pub folders: Vec<String>,
    /// Attended.
    pub attended: bool,
    /// The executor's version.
    pub version: Option<String>,
    /// Whether a license is bound to it (sent with SendLicense).
    pub licensed: bool,
    /// The license record bound to it, if one is.
    pub license: Option<String>,
    /// Why it is given no work, if it is given none (its license expired).
    pub blocked: Option<String>,
    /// Last heard of.
    pub last_seen: String,
}

/// An event of the audit chain.
#[derive(Debug, Serialize, ToSchema)]
pub struct AuditRecord {
    /// Position in the chain.
    pub seq: u64,
    /// When.
    pub time: String,
    /// Who: `system`, `user:<id>` or `robot:<id>`.
    pub actor: String,
    /// What.
    pub action: String,
    /// On what.
    pub subject: String,
    /// Details.
    pub detail: String,
    /// Hash (hex).
    pub hash: String,
    /// The domain event it carries, if any.
    #[schema(value_type = Option<Object>)]
    pub event: Option<std::sync::Arc<Event>>,
}

/// The chain verified.
#[derive(Debug, Serialize, ToSchema)]
pub struct Verified {
    /// Events verified.
    pub verified: u64,
}

/// Domain events after a position.
#[derive(Debug, Serialize, ToSchema)]
pub struct EventsPage {
    /// The events, in order: `{seq, at, type, ...}`.
    #[schema(value_type = Vec<Object>)]
    pub events: Vec<rpa_core::events::EventRecord>,
    /// Page on with `after=through`.
    pub through: u64,
}

/// A schedule, with its next fire times.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ScheduleInfo {
    /// Serial id.
    pub schedule_id: i64,
    /// Name.
    pub name: String,
    /// The process (seed 000 `processId`).
    pub process_id: String,
    /// The process's name.
    pub process_name: String,
    /// Whether it fires.
    pub enabled: bool,
    /// When: `{kind: every|daily|weekly|monthly|cron, ...}`.
    #[schema(value_type = Object)]
    pub rule: Value,
    /// Its IANA zone.
    pub zone: String,
    /// `runOnce` or `skip`.
    #[schema(value_type = String)]
    pub missed: rpa_core::schedule::Missed,
    /// Whose jobs they are.
    pub owner: String,
    /// The job's arguments.
    #[schema(value_type = Object)]
    pub arguments: Value,
    /// The next five fire times (`yyyy-MM-dd HH:mm:ss`, in the schedule's zone).
    pub next_fire_times: Vec<String>,
}

/// One firing of a schedule.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct FiringInfo {
    /// Serial id (page on with `after`).
    pub firing_id: i64,
    /// The due time it was for.
    pub due: String,
    /// When it was handled.
    pub at: String,
    /// The job started (seed 000 `jobId`), if one was.
    pub job_id: Option<String>,
    /// Due times missed (folded into this one, or skipped).
    pub missed: u32,
    /// Why no job started.
    pub reason: Option<String>,
}

/// A listener request (seed 003), as the fall-out and automation queues list it.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ListenerRequestInfo {
    /// `instance_id`.
    pub instance_id: i64,
    /// `message_id`.
    pub message_id: String,
    /// `app_id`.
    pub app_id: String,
    /// `source_message_id`.
    pub source_message_id: String,
    /// `ProcessName`.
    pub process_name: String,
    /// `ProfileName`.
    pub profile_name: String,
    /// `UserName`, as sent.
    pub user_name: String,
    /// `ReferenceCode`.
    pub reference_code: String,
    /// `automation` or `fallout`.
    pub queue: String,
    /// Why it fell out: `error_code`.
    pub error_code: Option<String>,
    /// Why it fell out: `error_msg`.
    pub error_msg: Option<String>,
    /// The job it started (seed 000 `jobId`).
    pub job_id: Option<String>,
    /// Arrival, `yyyy-MM-dd HH:mm:ss`.
    pub created_at: String,
}

// ------------------------------------------------------------------ handlers

/// Creates a user (permission ManageUsers).
#[utoipa::path(post, path = "/admin/users", tag = "admin",
    params(("X-Access-Token" = String, Header, description = "an administrator's session")),
    request_body = NewUserRequest,
    responses((status = 200, description = "the user", body = Envelope<CreatedUser>)))]
pub(crate) async fn create_user<S: Store>(
    State(st): State<AppState<S>>,
    h: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Answer<CreatedUser> {
    let me = admin(&st, &h, Permission::ManageUsers).await?;
    let f = fields(body)?;
    let name = f.str("name")?.to_owned();
    let password = f.str("password")?.to_owned();
    let strings = |field: &str| -> Result<Vec<String>, BusinessError> {
        let bad = || BusinessError::refused(format!("{field} must be an array of strings"));
        match f.value(field) {
            None => Ok(Vec::new()),
            Some(Value::Array(a)) => a
                .iter()
                .map(|v| v.as_str().map(str::to_owned).ok_or_else(bad))
                .collect(),
            Some(_) => Err(bad()),
        }
    };
    let roles = strings("roles")?;
    let grants = strings("processes")?
        .iter()
        .map(|p| process_id(p))
        .collect::<Result<Vec<_>, _>>()?;
    let new = NewUser {
        name,
        password,
        roles,
        grants,
    };
    let u = st.engine.create_user(Actor::User(me.id), new).await?;
    Ok(Done::ok(CreatedUser { name: u.name }))
}

/// Every user (permission ManageUsers).
#[utoipa::path(get, path = "/admin/users", tag = "admin",
    params(("X-Access-Token" = String, Header, description = "an administrator's session")),
    responses((status = 200, description = "the users", body = Envelope<Vec<UserInfo>>)))]
pub(crate) async fn list_users<S: Store>(State(st): State<AppState<S>>, h: HeaderMap) -> Answer<Vec<UserInfo>> {
    let me = admin(&st, &h, Permission::ManageUsers).await?;
    let users = st.engine.users(Actor::User(me.id)).await?;
    let processes: HashMap<_, _> = st
        .engine
        .processes()
        .await?
        .into_iter()
        .map(|p| (p.id, p.key))
        .collect();
    Ok(Done::ok(
        users
            .into_iter()
            .map(|u| UserInfo {
                processes: u.grants.iter().filter_map(|g| processes.get(g).copied()).collect(),
                folders: u.folders.iter().cloned().collect(),
                roles: u.roles.iter().map(|r| r.0).collect(),
                name: u.name,
                locked: u.locked,
                disabled: u.disabled,
                failed_logins: u.failed_logins,
            })
            .collect(),
    ))
}

/// Unlocks a user locked by wrong passwords (permission ManageUsers).
#[utoipa::path(post, path = "/admin/users/unlock", tag = "admin",
    params(("X-Access-Token" = String, Header, description = "an administrator's session")),
    request_body = UserRequest,
    responses((status = 200, description = "unlocked", body = Envelope<Object>)))]
pub(crate) async fn unlock<S: Store>(
    State(st): State<AppState<S>>,
    h: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Answer<()> {
    let me = admin(&st, &h, Permission::ManageUsers).await?;
    let f = fields(body)?;
    st.engine.unlock_user(Actor::User(me.id), f.str("name")?).await?;
    Ok(Done::said("unlocked"))
}

/// Disables a user: no login, and their sessions stop working (permission ManageUsers).
#[utoipa::path(post, path = "/admin/users/disable", tag = "admin",
    params(("X-Access-Token" = String, Header, description = "an administrator's session")),
    request_body = UserRequest,
    responses((status = 200, description = "disabled", body = Envelope<Object>)))]
pub(crate) async fn disable<S: Store>(
    State(st): State<AppState<S>>,
    h: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Answer<()> {
    let me = admin(&st, &h, Permission::ManageUsers).await?;
    let f = fields(body)?;
    st.engine
        .set_user_disabled(Actor::User(me.id), f.str("name")?, true)
        .await?;
    Ok(Done::said("disabled"))
}

/// Enables a disabled user again (permission ManageUsers).
#[utoipa::path(post, path = "/admin/users/enable", tag = "admin",
    params(("X-Access-Token" = String, Header, description = "an administrator's session")),
    request_body = UserRequest,
    responses((status = 200, description = "enabled", body = Envelope<Object>)))]
pub(crate) async fn enable<S: Store>(
    State(st): State<AppState<S>>,
    h: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Answer<()> {
    let me = admin(&st, &h, Permission::ManageUsers).await?;
    let f = fields(body)?;
    st.engine
        .set_user_disabled(Actor::User(me.id), f.str("name")?, false)
        .await?;
    Ok(Done::said("enabled"))
}

/// A new role.
#[derive(Debug, ToSchema)]
pub struct RoleRequest {
    /// Its unique name.
    pub name: String,
    /// What it allows: `ManageUsers`, `ManageProcesses`, `ManageRobots`,
    /// `ViewAudit`, `OperateAllJobs`.
    pub permissions: Vec<String>,
}

/// A role.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RoleInfo {
    /// Its id (as `GET /admin/users` lists roles).
    pub role_id: i64,
    /// Its name.
    pub name: String,
    /// What it allows.
    pub permissions: Vec<String>,
}

/// Creates a role from a list of permissions (permission ManageUsers).
#[utoipa::path(post, path = "/admin/roles", tag = "admin",
    params(("X-Access-Token" = String, Header, description = "an administrator's session")),
    request_body = RoleRequest,
    responses((status = 200, description = "the role", body = Envelope<RoleInfo>)))]
pub(crate) async fn create_role<S: Store>(
    State(st): State<AppState<S>>,
    h: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Answer<RoleInfo> {
    let me = admin(&st, &h, Permission::ManageUsers).await?;
    let f = fields(body)?;
    let name = f.str("name")?;
    let Some(Value::Array(words)) = f.value("permissions") else {
        return Err(BusinessError::refused(
            "permissions must be an array of permission names",
        ));
    };
    let mut permissions = std::collections::BTreeSet::new();
    for w in words {
        let p = w
            .as_str()
            .and_then(|s| Permission::ALL.into_iter().find(|p| format!("{p:?}") == s.trim()))
            .ok_or_else(|| {
                BusinessError::refused(format!(
                    "{w} is not a permission (ManageUsers, ManageProcesses, ManageRobots, ViewAudit, OperateAllJobs)"
                ))
            })?;
        permissions.insert(p);
    }
    let role = st.engine.create_role(Actor::User(me.id), name, permissions).await?;
    Ok(Done::ok(RoleInfo {
        role_id: role.id.0,
        name: role.name,
        permissions: role.permissions.iter().map(|p| format!("{p:?}")).collect(),
    }))
}

/// A personal access token.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct IssuedToken {
    /// The token: a bearer token for the UiPath surface, or `X-Access-Token`
    /// for the others. Shown this once.
    pub token: String,
    /// The user it acts as.
    pub user: String,
    /// When it stops working.
    pub expires_at: String,
}

/// Issues a personal access token for a user (permission ManageUsers):
/// `{name, days?}` (default 90 days, at most 365).
#[utoipa::path(post, path = "/admin/tokens", tag = "admin",
    params(("X-Access-Token" = String, Header, description = "an administrator's session")),
    request_body(content = Object, description = "`{name, days?}`"),
    responses((status = 200, description = "the token", body = Envelope<IssuedToken>)))]
pub(crate) async fn issue_token<S: Store>(
    State(st): State<AppState<S>>,
    h: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Answer<IssuedToken> {
    let me = admin(&st, &h, Permission::ManageUsers).await?;
    let f = fields(body)?;
    let name = f.str("name")?;
    let days = match f.0.get("days") {
        None | Some(Value::Null) => 90,
        Some(v) => v
            .as_u64()
            .filter(|d| (1..=365).contains(d))
            .ok_or_else(|| BusinessError::refused("days must be a number from 1 to 365"))?,
    };
    let user = st
        .engine
        .store()
        .user_by_name(name)
        .await
        .map_err(Error::from)?
        .ok_or_else(|| BusinessError::refused(format!("user {name} not found")))?;
    let (token, expires) = st
        .engine
        .open_session(
            &user,
            &format!("personal access token issued by {}", me.name),
            days * 24 * 3_600_000,
        )
        .await?;
    Ok(Done::ok(IssuedToken {
        token,
        user: user.name.to_string(),
        expires_at: expires.format_local(st.engine.config().time_zone),
    }))
}

/// Lets a user start a process (permission ManageUsers).
#[utoipa::path(post, path = "/admin/grants", tag = "admin",
    params(("X-Access-Token" = String, Header, description = "an administrator's session")),
    request_body = GrantRequest,
    responses((status = 200, description = "granted", body = Envelope<Object>)))]
pub(crate) async fn grant<S: Store>(
    State(st): State<AppState<S>>,
    h: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Answer<()> {
    let me = admin(&st, &h, Permission::ManageUsers).await?;
    let f = fields(body)?;
    match f.opt_str("folder")? {
        Some(folder) => {
            st.engine
                .grant_folder(Actor::User(me.id), f.str("name")?, folder)
                .await?
        }
        None => {
            let p = process_id(f.str("processId")?)?;
            st.engine.grant(Actor::User(me.id), f.str("name")?, p).await?
        }
    };
    Ok(Done::said("granted"))
}

/// Takes a process away from a user (permission ManageUsers).
#[utoipa::path(post, path = "/admin/grants/revoke", tag = "admin",
    params(("X-Access-Token" = String, Header, description = "an administrator's session")),
    request_body = GrantRequest,
    responses((status = 200, description = "revoked", body = Envelope<Object>)))]
pub(crate) async fn revoke<S: Store>(
    State(st): State<AppState<S>>,
    h: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Answer<()> {
    let me = admin(&st, &h, Permission::ManageUsers).await?;
    let f = fields(body)?;
    match f.opt_str("folder")? {
        Some(folder) => {
            st.engine
                .revoke_folder(Actor::User(me.id), f.str("name")?, folder)
                .await?
        }
        None => {
            let p = process_id(f.str("processId")?)?;
            st.engine.revoke(Actor::User(me.id), f.str("name")?, p).await?
        }
    };
    Ok(Done::said("revoked"))
}

/// A process as the administration API answers it.
pub fn process_details<S: Store>(st: &AppState<S>, p: &Process) -> ProcessDetails {
    ProcessDetails {
        process_id: p.key,
        process_name: p.spec.name.clone(),
        process_type: p.spec.process_type.as_str(),
        version: p.spec.version.clone(),
        package_download_uri: p.spec.package_uri.clone(),
        max_run_num: p.spec.max_run_num,
        current_run_num: p.running,
        max_day_num: p.spec.max_day_num,
        max_pending_items: p.spec.max_pending_items,
        pending_items: p.pending_items,
        priority: p.spec.priority,
        queue_trigger: p.spec.trigger.map(Into::into),
        create_time: p.created_at.format_local(st.engine.config().time_zone),
        region: p.spec.attributes.region.clone(),
        scenario: p.spec.attributes.scenario.clone(),
        business_domain: p.spec.attributes.business_domain.clone(),
        saved_minutes: p.spec.attributes.saved_minutes,
    }
}

/// Creates a process (permission ManageProcesses).
#[utoipa::path(post, path = "/admin/processes", tag = "admin",
    params(("X-Access-Token" = String, Header, description = "an administrator's session")),
    request_body = ProcessDef,
    responses((status = 200, description = "the process", body = Envelope<ProcessDetails>)))]
pub(crate) async fn create_process<S: Store>(
    State(st): State<AppState<S>>,
    h: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Answer<ProcessDetails> {
    let me = admin(&st, &h, Permission::ManageProcesses).await?;
    let f = fields(body)?;
    let def: ProcessDef = serde_json::from_value(Value::Object(f.0))
        .map_err(|e| BusinessError::refused(format!("invalid process definition: {e}")))?;
    let p = st.engine.create_process(Actor::User(me.id), def.into()).await?;
    Ok(Done::ok(process_details(&st, &p)))
}

/// Every process (permission ManageProcesses).
#[utoipa::path(get, path = "/admin/processes", tag = "admin",
    params(("X-Access-Token" = String, Header, description = "an administrator's session")),
    responses((status = 200, description = "the processes", body = Envelope<Vec<ProcessDetails>>)))]
pub(crate) async fn list_processes<S: Store>(
    State(st): State<AppState<S>>,
    h: HeaderMap,
) -> Answer<Vec<ProcessDetails>> {
    admin(&st, &h, Permission::ManageProcesses).await?;
    let ps = st.engine.processes().await?;
    Ok(Done::ok(ps.iter().map(|p| process_details(&st, p)).collect()))
}

/// Uploads a process's package (the raw body) as a new version (permission ManageProcesses).
#[utoipa::path(post, path = "/admin/processes/{processId}/package", tag = "admin",
    params(("X-Access-Token" = String, Header, description = "an administrator's session"),
        ("processId" = String, Path, description = "the process"),
        ("version" = Option<String>, Query, description = "the new version, MAJOR.MINOR.PATCH (default: the latest version's next patch; the process's version for its first package)")),
    request_body(content = Vec<u8>, content_type = "application/octet-stream", description = "the package"),
    responses((status = 200, description = "the package", body = Envelope<PackageUploaded>)))]
pub(crate) async fn upload_package<S: Store>(
    State(st): State<AppState<S>>,
    h: HeaderMap,
    Path(pid): Path<String>,
    Query(q): Query<HashMap<String, String>>,
    body: Result<Bytes, BytesRejection>,
) -> Answer<PackageUploaded> {
    let me = admin(&st, &h, Permission::ManageProcesses).await?;
    let k = process_id(&pid)?;
    let bytes = match body {
        Ok(b) if !b.is_empty() => b,
        Ok(_) => return Err(BusinessError::refused("the package (request body) is empty")),
        Err(r) => {
            return Err(BusinessError::refused(format!(
                "cannot read the package: {}",
                r.body_text()
            )));
        }
    };
    let p = st
        .engine
        .processes()
        .await?
        .into_iter()
        .find(|p| p.key == k)
        .ok_or_else(|| BusinessError::refused(format!("process {pid} not found")))?;
    let version = q.get("version").map(|v| v.trim()).filter(|v| !v.is_empty());
    Ok(Done::ok(
        install_package(&st, Actor::User(me.id), &p, version, bytes).await?,
    ))
}

/// Keeps `bytes` as process `p`'s package `version` (see
/// [`Engine::add_package_version`](rpa_core::Engine::add_package_version):
/// `None` is the next patch, or the process's own version for its first
/// package). A version refused (malformed, or kept with other bytes) is
/// refused before anything is stored.
pub async fn install_package<S: Store>(
    st: &AppState<S>,
    actor: Actor,
    p: &Process,
    version: Option<&str>,
    bytes: Bytes,
) -> Result<PackageUploaded, BusinessError> {
    let kept = st.engine.package_versions(p.key).await?;
    let version = match version {
        Some(v) => Version::parse(v).map_err(BusinessError::refused)?,
        None => match package::latest(&kept).and_then(|l| Version::parse(&l.name).ok()) {
            Some(latest) => latest.next_patch(),
            None => Version::parse(&p.spec.version).unwrap_or(Version {
                parts: [1, 0, 0],
                pre: None,
            }),
        },
    };
    let digest = hex::encode(Sha256::digest(&bytes));
    let (pv, p) = match package::upload(&kept, &version, &digest).map_err(BusinessError::refused)? {
        package::Upload::Again => (
            kept.into_iter()
                .find(|k| Version::parse(&k.name).is_ok_and(|x| x == version))
                .ok_or(BusinessError::Internal)?,
            p.clone(),
        ),
        package::Upload::New => {
            let name = format!("{}-{version}.pkg", p.spec.name);
            let meta = st
                .engine
                .record_file(actor, FileSource::Package, &name, bytes.len() as u64, &digest, None)
                .await?;
            if let Err(e) = st.files.put(meta.key, bytes).await {
                tracing::error!(error = %e, "cannot store a package");
                return Err(BusinessError::Internal);
            }
            let uri = format!("{}/v1/file/{}", st.settings.public_url.trim_end_matches('/'), meta.key);
            let new = NewPackage {
                file: meta.key,
                uri,
                sha256: digest,
                size: meta.size,
            };
            st.engine
                .add_package_version(actor, p.key, Some(&version.to_string()), new)
                .await?
        }
    };
    Ok(PackageUploaded {
        file_id: pv.file,
        current: p.spec.version == pv.name,
        package_download_uri: pv.uri,
        version: pv.name,
        sha256: pv.sha256,
    })
}

/// A process's kept package versions, newest first (permission ManageProcesses).
#[utoipa::path(get, path = "/admin/processes/{processId}/packages", tag = "admin",
    params(("X-Access-Token" = String, Header, description = "an administrator's session"),
        ("processId" = String, Path, description = "the process")),
    responses((status = 200, description = "the versions", body = Envelope<Vec<PackageInfo>>)))]
pub(crate) async fn list_packages<S: Store>(
    State(st): State<AppState<S>>,
    h: HeaderMap,
    Path(pid): Path<String>,
) -> Answer<Vec<PackageInfo>> {
    admin(&st, &h, Permission::ManageProcesses).await?;
    let k = process_id(&pid)?;
    let p = st
        .engine
        .processes()
        .await?
        .into_iter()
        .find(|p| p.key == k)
        .ok_or_else(|| BusinessError::refused(format!("process {pid} not found")))?;
    let zone = st.engine.config().time_zone;
    let versions = st.engine.package_versions(k).await?;
    Ok(Done::ok(
        versions
            .into_iter()
            .map(|v| PackageInfo {
                current: v.name == p.spec.version,
                version: v.name,
                file_id: v.file,
                sha256: v.sha256,
                size: v.size,
                upload_time: v.uploaded_at.format_local(zone),
                uploaded_by: v.uploaded_by,
            })
            .collect(),
    ))
}

/// Pins a process to a kept package version (a rollback when older), or
/// with `{"version": null}` lets it follow the latest (permission ManageProcesses).
#[utoipa::path(post, path = "/admin/processes/{processId}/package/pin", tag = "admin",
    params(("X-Access-Token" = String, Header, description = "an administrator's session"),
        ("processId" = String, Path, description = "the process")),
    request_body = PinRequest,
    responses((status = 200, description = "the process", body = Envelope<ProcessDetails>)))]
pub(crate) async fn pin_package<S: Store>(
    State(st): State<AppState<S>>,
    h: HeaderMap,
    Path(pid): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> Answer<ProcessDetails> {
    let me = admin(&st, &h, Permission::ManageProcesses).await?;
    let k = process_id(&pid)?;
    let f = fields(body)?;
    let version = match f.value("version") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s.as_str()),
        Some(_) => return Err(BusinessError::refused("version must be a string or null")),
    };
    let p = st.engine.pin_package(Actor::User(me.id), k, version).await?;
    Ok(Done::ok(process_details(&st, &p)))
}

/// Which package version a process runs.
#[derive(Debug, ToSchema)]
pub struct PinRequest {
    /// A kept version to pin the process to; `null`: follow the latest.
    pub version: Option<String>,
}

/// Registers a robot vendor (permission ManageRobots).
#[utoipa::path(post, path = "/admin/vendors", tag = "admin",
    params(("X-Access-Token" = String, Header, description = "an administrator's session")),
    request_body = VendorRequest,
    responses((status = 200, description = "registered", body = Envelope<Object>)))]
pub(crate) async fn vendor<S: Store>(
    State(st): State<AppState<S>>,
    h: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Answer<()> {
    let me = admin(&st, &h, Permission::ManageRobots).await?;
    let f = fields(body)?;
    st.engine
        .register_vendor(Actor::User(me.id), f.str("supplierCode")?, f.str("secret")?)
        .await?;
    Ok(Done::said("vendor registered"))
}

/// Sets a robot's profile (permission ManageRobots).
#[utoipa::path(post, path = "/admin/robots", tag = "admin",
    params(("X-Access-Token" = String, Header, description = "an administrator's session")),
    request_body = RobotDef,
    responses((status = 200, description = "configured", body = Envelope<Object>)))]
pub(crate) async fn robot<S: Store>(
    State(st): State<AppState<S>>,
    h: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Answer<()> {
    let me = admin(&st, &h, Permission::ManageRobots).await?;
    let f = fields(body)?;
    let def: RobotDef = serde_json::from_value(Value::Object(f.0))
        .map_err(|e| BusinessError::refused(format!("invalid robot profile: {e}")))?;
    let code = def.robot_id.clone();
    let license = def.license.clone();
    st.engine
        .configure_robot(Actor::User(me.id), &code, RobotProfile::from(def))
        .await?;
    if let Some(l) = license {
        st.engine.bind_license_to(Actor::User(me.id), &l, &code).await?;
    }
    Ok(Done::said("robot configured"))
}

/// Ends a job at once, Stopped, and tells its robot to stop (permission OperateAllJobs).
#[utoipa::path(post, path = "/admin/jobs/{jobId}/kill", tag = "admin",
    params(("X-Access-Token" = String, Header, description = "an administrator's session"),
        ("jobId" = String, Path, description = "the job")),
    responses((status = 200, description = "the job", body = Envelope<Killed>)))]
pub(crate) async fn kill<S: Store>(
    State(st): State<AppState<S>>,
    h: HeaderMap,
    Path(job_id): Path<String>,
) -> Answer<Killed> {
    let me = admin(&st, &h, Permission::OperateAllJobs).await?;
    let job = key("jobId", &job_id).map_err(|_| BusinessError::refused(format!("job {job_id} not found")))?;
    let job = st.engine.kill_job(Actor::User(me.id), job).await?;
    Ok(Done::ok(Killed {
        job_id: job.key,
        state: crate::business::job_state(job.state),
    }))
}

/// Every robot (permission ManageRobots).
#[utoipa::path(get, path = "/admin/robots", tag = "admin",
    params(("X-Access-Token" = String, Header, description = "an administrator's session")),
    responses((status = 200, description = "the robots", body = Envelope<Vec<RobotInfo>>)))]
pub(crate) async fn list_robots<S: Store>(State(st): State<AppState<S>>, h: HeaderMap) -> Answer<Vec<RobotInfo>> {
    admin(&st, &h, Permission::ManageRobots).await?;
    let robots = st.engine.robots().await?;
    let zone = st.engine.config().time_zone;
    let mut list = Vec::with_capacity(robots.len());
    for r in robots {
        let job = match r.job {
            Some(j) => st.engine.store().job(j).await.map_err(Error::from)?.map(|j| j.key),
            None => None,
        };
        list.push(RobotInfo {
            robot_id: r.code.to_string(),
            state: r.state.as_str(),
            job_id: job,
            vendor: r.profile.vendor.clone(),
            pool: r.profile.pool.clone(),
            labels: r.profile.labels.clone(),
            folders: r.profile.folders.clone(),
            attended: r.profile.attended,
            version: r.robot_version.as_deref().map(str::to_owned),
            licensed: r.profile.license.is_some(),
            license: r.profile.held.as_ref().map(|h| h.name.clone()),
            blocked: r.refusal(st.engine.now()),
            last_seen: r.last_seen.format_local(zone),
        });
    }
    Ok(Done::ok(list))
}

/// Audit events after a position (permission ViewAudit).
#[utoipa::path(get, path = "/admin/audit", tag = "admin",
    params(("X-Access-Token" = String, Header, description = "an administrator's session"), PageQuery),
    responses((status = 200, description = "the events", body = Envelope<Vec<AuditRecord>>)))]
pub(crate) async fn audit<S: Store>(
    State(st): State<AppState<S>>,
    h: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Answer<Vec<AuditRecord>> {
    let me = admin(&st, &h, Permission::ViewAudit).await?;
    let (after, limit) = page(&q)?;
    let events = st.engine.audit_events(Actor::User(me.id), after, limit).await?;
    let zone = st.engine.config().time_zone;
    Ok(Done::ok(
        events
            .into_iter()
            .map(|e| AuditRecord {
                seq: e.seq,
                time: e.at.format_local(zone),
                actor: e.actor.to_string(),
                action: e.action.into_owned(),
                subject: e.subject,
                detail: e.detail,
                hash: hex::encode(e.hash),
                event: e.event,
            })
            .collect(),
    ))
}

/// Re-walks the audit chain (permission ViewAudit): `success` false names the first broken event.
#[utoipa::path(get, path = "/admin/audit/verify", tag = "admin",
    params(("X-Access-Token" = String, Header, description = "an administrator's session")),
    responses((status = 200, description = "the chain verified", body = Envelope<Verified>)))]
pub(crate) async fn verify<S: Store>(State(st): State<AppState<S>>, h: HeaderMap) -> Answer<Verified> {
    admin(&st, &h, Permission::ViewAudit).await?;
    match st.engine.verify_audit().await? {
        Ok(n) => Ok(Done::ok(Verified { verified: n })),
        Err(broken) => Err(BusinessError::refused(broken.to_string())),
    }
}

/// Listener requests of one queue, oldest first (permission OperateAllJobs).
#[utoipa::path(get, path = "/admin/listener/requests", tag = "admin",
    params(("X-Access-Token" = String, Header, description = "an administrator's session"),
        ("queue" = Option<String>, Query, description = "fallout (default) or automation"), PageQuery),
    responses((status = 200, description = "the requests", body = Envelope<Vec<ListenerRequestInfo>>)))]
pub(crate) async fn listener_requests<S: Store>(
    State(st): State<AppState<S>>,
    h: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Answer<Vec<ListenerRequestInfo>> {
    use rpa_core::listener::Queue;
    admin(&st, &h, Permission::OperateAllJobs).await?;
    let queue = match q.get("queue").map(String::as_str) {
        None | Some("fallout") => Queue::Fallout,
        Some("automation") => Queue::Automation,
        Some(other) => {
            return Err(BusinessError::refused(format!(
                "queue must be fallout or automation, not {other}"
            )));
        }
    };
    let (after, limit) = page(&q)?;
    let after = i64::try_from(after).unwrap_or(i64::MAX);
    let zone = st.engine.config().time_zone;
    let list = st.engine.listener_requests(queue, after, limit).await?;
    Ok(Done::ok(
        list.into_iter()
            .map(|r| ListenerRequestInfo {
                instance_id: r.id,
                message_id: r.message_id,
                app_id: r.app_id,
                source_message_id: r.source_message_id,
                process_name: r.process_name,
                profile_name: r.profile,
                user_name: r.user_name,
                reference_code: r.reference,
                queue: r.queue.as_str().to_owned(),
                error_code: r.fault.as_ref().map(|f| f.code.clone()),
                error_msg: r.fault.map(|f| f.message),
                job_id: r.job_key.map(|k| k.to_string()),
                created_at: r.created_at.format_local(zone),
            })
            .collect(),
    ))
}

async fn schedule_info<S: Store>(
    st: &AppState<S>,
    s: &rpa_core::schedule::Schedule,
) -> Result<ScheduleInfo, BusinessError> {
    let zone: rpa_core::time::Tz = s.spec.zone.parse().unwrap_or(st.engine.config().time_zone);
    let process = st.engine.store().process(s.spec.process).await.map_err(Error::from)?;
    let owner = st.engine.store().user(s.owner).await.map_err(Error::from)?;
    Ok(ScheduleInfo {
        schedule_id: s.id,
        name: s.spec.name.clone(),
        process_id: process.as_ref().map(|p| p.key.to_string()).unwrap_or_default(),
        process_name: process.map(|p| p.spec.name.clone()).unwrap_or_default(),
        enabled: s.enabled,
        rule: serde_json::to_value(&s.spec.rule).unwrap_or(Value::Null),
        zone: s.spec.zone.clone(),
        missed: s.spec.missed,
        owner: owner.map(|u| u.name).unwrap_or_default(),
        arguments: (*s.spec.arguments).clone(),
        next_fire_times: st
            .engine
            .schedule_upcoming(s, 5)?
            .into_iter()
            .map(|t| t.format_local(zone))
            .collect(),
    })
}

/// Saves a schedule (permission ManageProcesses): refused with the reason
/// when malformed or when it could never fire; nothing is stored then.
#[utoipa::path(post, path = "/admin/schedules", tag = "admin",
    params(("X-Access-Token" = String, Header, description = "an administrator's session")),
    request_body = crate::config::ScheduleDef,
    responses((status = 200, description = "the schedule", body = Envelope<ScheduleInfo>)))]
pub(crate) async fn create_schedule<S: Store>(
    State(st): State<AppState<S>>,
    h: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Answer<ScheduleInfo> {
    let me = admin(&st, &h, Permission::ManageProcesses).await?;
    let f = fields(body)?;
    let def: crate::config::ScheduleDef = serde_json::from_value(Value::Object(f.0))
        .map_err(|e| BusinessError::refused(format!("invalid schedule: {e}")))?;
    let process = st
        .engine
        .processes()
        .await?
        .into_iter()
        .find(|p| p.spec.name == def.process)
        .ok_or_else(|| BusinessError::refused(format!("no process named {}", def.process)))?;
    let owner = match &def.owner {
        Some(name) => st
            .engine
            .store()
            .user_by_name(name)
            .await
            .map_err(Error::from)?
            .ok_or_else(|| BusinessError::refused(format!("no user named {name}")))?,
        None => me.clone(),
    };
    let spec = def
        .spec(process.id, st.engine.config().time_zone.name())
        .map_err(BusinessError::refused)?;
    let s = st.engine.create_schedule(Actor::User(me.id), &owner, spec).await?;
    Ok(Done::ok(schedule_info(&st, &s).await?))
}

/// Every schedule with its next five fire times (permission ManageProcesses).
#[utoipa::path(get, path = "/admin/schedules", tag = "admin",
    params(("X-Access-Token" = String, Header, description = "an administrator's session")),
    responses((status = 200, description = "the schedules", body = Envelope<Vec<ScheduleInfo>>)))]
pub(crate) async fn list_schedules<S: Store>(State(st): State<AppState<S>>, h: HeaderMap) -> Answer<Vec<ScheduleInfo>> {
    admin(&st, &h, Permission::ManageProcesses).await?;
    let mut out = Vec::new();
    for s in st.engine.schedules().await? {
        out.push(schedule_info(&st, &s).await?);
    }
    Ok(Done::ok(out))
}

async fn set_enabled<S: Store>(st: AppState<S>, h: HeaderMap, id: i64, on: bool) -> Answer<ScheduleInfo> {
    let me = admin(&st, &h, Permission::ManageProcesses).await?;
    let s = st.engine.set_schedule_enabled(Actor::User(me.id), id, on).await?;
    Ok(Done::ok(schedule_info(&st, &s).await?))
}

/// Turns a schedule on: it fires from its next time after now (permission ManageProcesses).
#[utoipa::path(post, path = "/admin/schedules/{scheduleId}/enable", tag = "admin",
    params(("X-Access-Token" = String, Header, description = "an administrator's session"),
        ("scheduleId" = i64, Path, description = "the schedule")),
    responses((status = 200, description = "the schedule", body = Envelope<ScheduleInfo>)))]
pub(crate) async fn enable_schedule<S: Store>(
    State(st): State<AppState<S>>,
    h: HeaderMap,
    Path(id): Path<String>,
) -> Answer<ScheduleInfo> {
    set_enabled(st, h, schedule_id(&id)?, true).await
}

/// Turns a schedule off (permission ManageProcesses).
#[utoipa::path(post, path = "/admin/schedules/{scheduleId}/disable", tag = "admin",
    params(("X-Access-Token" = String, Header, description = "an administrator's session"),
        ("scheduleId" = i64, Path, description = "the schedule")),
    responses((status = 200, description = "the schedule", body = Envelope<ScheduleInfo>)))]
pub(crate) async fn disable_schedule<S: Store>(
    State(st): State<AppState<S>>,
    h: HeaderMap,
    Path(id): Path<String>,
) -> Answer<ScheduleInfo> {
    set_enabled(st, h, schedule_id(&id)?, false).await
}

fn schedule_id(s: &str) -> Result<i64, BusinessError> {
    s.parse()
        .map_err(|_| BusinessError::refused(format!("scheduleId must be a number, not {s:?}")))
}

/// A schedule's firings, oldest first (permission ManageProcesses).
#[utoipa::path(get, path = "/admin/schedules/{scheduleId}/firings", tag = "admin",
    params(("X-Access-Token" = String, Header, description = "an administrator's session"),
        ("scheduleId" = i64, Path, description = "the schedule"), PageQuery),
    responses((status = 200, description = "the firings", body = Envelope<Vec<FiringInfo>>)))]
pub(crate) async fn schedule_firings<S: Store>(
    State(st): State<AppState<S>>,
    h: HeaderMap,
    Path(id): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> Answer<Vec<FiringInfo>> {
    admin(&st, &h, Permission::ManageProcesses).await?;
    let id = schedule_id(&id)?;
    let (after, limit) = page(&q)?;
    let s = st.engine.schedule(id).await?;
    let zone: rpa_core::time::Tz = s.spec.zone.parse().unwrap_or(st.engine.config().time_zone);
    let list = st
        .engine
        .schedule_firings(id, i64::try_from(after).unwrap_or(i64::MAX), limit)
        .await?;
    Ok(Done::ok(
        list.into_iter()
            .map(|f| FiringInfo {
                firing_id: f.id,
                due: f.due.format_local(zone),
                at: f.at.format_local(zone),
                job_id: f.job_key.map(|k| k.to_string()),
                missed: f.missed,
                reason: f.reason,
            })
            .collect(),
    ))
}

/// Domain events among the `limit` audit events after `after` (permission ViewAudit).
#[utoipa::path(get, path = "/admin/events", tag = "admin",
    params(("X-Access-Token" = String, Header, description = "an administrator's session"), PageQuery),
    responses((status = 200, description = "the events", body = Envelope<EventsPage>)))]
pub(crate) async fn events<S: Store>(
    State(st): State<AppState<S>>,
    h: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Answer<EventsPage> {
    admin(&st, &h, Permission::ViewAudit).await?;
    let (after, limit) = page(&q)?;
    let page = st.engine.events(after, limit).await?;
    Ok(Done::ok(EventsPage {
        events: page.events,
        through: page.through,
    }))
}

// ------------------------------------------------------------------ workflows

/// A saved workflow (seed 004), with the ids its states and transitions got.
#[derive(Debug, Serialize, ToSchema)]
pub struct WorkflowInfo {
    /// Its id (`workflow_id` of the workflow API).
    pub id: i64,
    /// Its name.
    pub name: String,
    /// Its version: one more at each replacement.
    pub version: u64,
    /// Its states: `{id, name}`.
    pub states: Vec<Named>,
    /// Its transitions: `{id, name}`.
    pub transitions: Vec<Named>,
}

/// An id and its name.
#[derive(Debug, Serialize, ToSchema)]
pub struct Named {
    /// Id.
    pub id: i64,
    /// Name.
    pub name: String,
}

fn workflow_info(w: &rpa_core::flow::Workflow) -> WorkflowInfo {
    WorkflowInfo {
        id: w.id,
        name: w.name.clone(),
        version: w.version,
        states: w
            .states
            .iter()
            .map(|s| Named {
                id: s.id,
                name: s.name.clone(),
            })
            .collect(),
        transitions: w
            .transitions
            .iter()
            .map(|t| Named {
                id: t.id,
                name: t.name.clone(),
            })
            .collect(),
    }
}

/// Saves a workflow definition (permission ManageProcesses), replacing the
/// one of the same name (its states and transitions keep their ids by
/// name). The body uses the seed's names: `name`, `fields`, `states` with
/// `participant_type_id`/`participant`/`distribute_type_id`/`state_field_str`,
/// `transitions` with `source_state`/`destination_state` by state name. A
/// definition that could leave a ticket stuck is refused with the reason.
#[utoipa::path(post, path = "/admin/workflows", tag = "admin",
    params(("X-Access-Token" = String, Header, description = "an administrator's session")),
    request_body(content = Object, description = "a workflow definition"),
    responses((status = 200, description = "the workflow", body = Envelope<WorkflowInfo>)))]
pub(crate) async fn save_workflow<S: Store>(
    State(st): State<AppState<S>>,
    h: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Answer<WorkflowInfo> {
    let me = admin(&st, &h, Permission::ManageProcesses).await?;
    let f = fields(body)?;
    let def: rpa_core::flow::WorkflowDef = serde_json::from_value(Value::Object(f.0))
        .map_err(|e| BusinessError::refused(format!("invalid workflow definition: {e}")))?;
    let w = st.engine.save_workflow(Actor::User(me.id), &me.name, def).await?;
    Ok(Done::ok(workflow_info(&w)))
}

/// Every workflow (permission ManageProcesses).
#[utoipa::path(get, path = "/admin/workflows", tag = "admin",
    params(("X-Access-Token" = String, Header, description = "an administrator's session")),
    responses((status = 200, description = "the workflows", body = Envelope<Vec<WorkflowInfo>>)))]
pub(crate) async fn list_workflows<S: Store>(State(st): State<AppState<S>>, h: HeaderMap) -> Answer<Vec<WorkflowInfo>> {
    admin(&st, &h, Permission::ManageProcesses).await?;
    Ok(Done::ok(
        st.engine.workflows().await?.iter().map(workflow_info).collect(),
    ))
}

/// A workflow's definition, as saved (permission ManageProcesses): post it
/// back to `/admin/workflows` to restore it, or to another server.
#[utoipa::path(get, path = "/admin/workflows/{workflowId}", tag = "admin",
    params(("X-Access-Token" = String, Header, description = "an administrator's session"),
        ("workflowId" = i64, Path, description = "the workflow")),
    responses((status = 200, description = "the definition", body = Envelope<Object>)))]
pub(crate) async fn export_workflow<S: Store>(
    State(st): State<AppState<S>>,
    h: HeaderMap,
    Path(id): Path<String>,
) -> Answer<Value> {
    admin(&st, &h, Permission::ManageProcesses).await?;
    let id: i64 = id
        .parse()
        .map_err(|_| BusinessError::refused(format!("workflow {id} not found")))?;
    let w = st.engine.workflow(id).await?;
    let def = serde_json::to_value(&*w.definition).map_err(|e| Error::Internal(e.to_string()))?;
    Ok(Done::ok(def))
}

/// The people tickets flow between (permission ManageUsers).
#[utoipa::path(get, path = "/admin/flow/directory", tag = "admin",
    params(("X-Access-Token" = String, Header, description = "an administrator's session")),
    responses((status = 200, description = "users, departments and roles", body = Envelope<Object>)))]
pub(crate) async fn get_directory<S: Store>(State(st): State<AppState<S>>, h: HeaderMap) -> Answer<Value> {
    admin(&st, &h, Permission::ManageUsers).await?;
    // As configured: the platform's users take part in workflows besides.
    let d = st.engine.configured_directory().await?;
    Ok(Done::ok(
        serde_json::to_value(&d).map_err(|e| Error::Internal(e.to_string()))?,
    ))
}

/// Replaces the people tickets flow between (permission ManageUsers): the
/// seed's "sync user info", `{users, depts, roles}`. Refused whole when a
/// reference points at nothing.
#[utoipa::path(put, path = "/admin/flow/directory", tag = "admin",
    params(("X-Access-Token" = String, Header, description = "an administrator's session")),
    request_body(content = Object, description = "{users: [{username, alias, email, phone, dept_id, is_active, is_admin}], depts: [{id, name, parent_dept_id, leader, approver}], roles: [{id, name, members}]}"),
    responses((status = 200, description = "the directory", body = Envelope<Object>)))]
pub(crate) async fn put_directory<S: Store>(
    State(st): State<AppState<S>>,
    h: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Answer<Value> {
    let me = admin(&st, &h, Permission::ManageUsers).await?;
    let f = fields(body)?;
    let d: rpa_core::flow::Directory = serde_json::from_value(Value::Object(f.0))
        .map_err(|e| BusinessError::refused(format!("invalid directory: {e}")))?;
    let d = st.engine.sync_directory(Actor::User(me.id), d).await?;
    Ok(Done::ok(
        serde_json::to_value(&d).map_err(|e| Error::Internal(e.to_string()))?,
    ))
}

// ------------------------------------------------------------------ webhooks

/// A webhook subscription.
#[derive(Debug, Serialize, ToSchema)]
pub struct WebhookInfo {
    /// Its id.
    pub id: i64,
    /// Where deliveries go.
    pub url: String,
    /// The event kinds it gets (`job_started`, `job_ended`, `item_ended`,
    /// `robot_changed`, `ticket_changed`, `pipeline_run_ended`,
    /// `pool_changed`; empty: all).
    pub events: Vec<String>,
    /// False once deleted.
    pub enabled: bool,
    /// The key of its `X-Rpa-Signature` (HMAC-SHA256 over `"<t>.<body>"`):
    /// given once, when it is created.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
}

fn webhook_info(s: &rpa_core::webhook::Subscription, secret: Option<String>) -> WebhookInfo {
    WebhookInfo {
        id: s.id,
        url: s.url.clone(),
        events: s.events.clone(),
        enabled: s.enabled,
        secret,
    }
}

/// Subscribes a URL to domain events (permission ManageProcesses): body
/// `{"url": "https://...", "events": ["job_ended", ...]}` (no `events`: all).
/// The answer holds the subscription's signing secret, this once.
#[utoipa::path(post, path = "/admin/webhooks", tag = "admin",
    params(("X-Access-Token" = String, Header, description = "an administrator's session")),
    request_body(content = Object, description = "{url, events}"),
    responses((status = 200, description = "the subscription, with its secret", body = Envelope<WebhookInfo>)))]
pub(crate) async fn create_webhook<S: Store>(
    State(st): State<AppState<S>>,
    h: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Answer<WebhookInfo> {
    let me = admin(&st, &h, Permission::ManageProcesses).await?;
    let f = fields(body)?;
    let url = f.str("url")?.to_owned();
    let events = match f.0.get("events") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(a)) => a
            .iter()
            .map(|v| v.as_str().map(str::to_owned))
            .collect::<Option<Vec<_>>>()
            .ok_or_else(|| BusinessError::refused("events must be a list of event kinds"))?,
        Some(_) => return Err(BusinessError::refused("events must be a list of event kinds")),
    };
    let (s, secret) = st
        .engine
        .create_webhook(Actor::User(me.id), &me.name, &url, events)
        .await?;
    Ok(Done::ok(webhook_info(&s, Some(secret))))
}

/// Every webhook subscription (permission ManageProcesses).
#[utoipa::path(get, path = "/admin/webhooks", tag = "admin",
    params(("X-Access-Token" = String, Header, description = "an administrator's session")),
    responses((status = 200, description = "the subscriptions", body = Envelope<Vec<WebhookInfo>>)))]
pub(crate) async fn list_webhooks<S: Store>(State(st): State<AppState<S>>, h: HeaderMap) -> Answer<Vec<WebhookInfo>> {
    admin(&st, &h, Permission::ManageProcesses).await?;
    let all = st.engine.webhooks().await?;
    Ok(Done::ok(all.iter().map(|s| webhook_info(s, None)).collect()))
}

fn webhook_id(s: &str) -> Result<i64, BusinessError> {
    s.parse()
        .map_err(|_| BusinessError::refused(format!("webhook subscription {s} not found")))
}

/// Deletes a webhook subscription (permission ManageProcesses): nothing more is delivered to it.
#[utoipa::path(delete, path = "/admin/webhooks/{webhookId}", tag = "admin",
    params(("X-Access-Token" = String, Header, description = "an administrator's session"),
        ("webhookId" = i64, Path, description = "the subscription")),
    responses((status = 200, description = "the subscription", body = Envelope<WebhookInfo>)))]
pub(crate) async fn delete_webhook<S: Store>(
    State(st): State<AppState<S>>,
    h: HeaderMap,
    Path(id): Path<String>,
) -> Answer<WebhookInfo> {
    let me = admin(&st, &h, Permission::ManageProcesses).await?;
    let s = st.engine.delete_webhook(Actor::User(me.id), webhook_id(&id)?).await?;
    Ok(Done::ok(webhook_info(&s, None)))
}

/// A delivery that failed every try.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct WebhookFailureInfo {
    /// Its id.
    pub id: i64,
    /// The event's position in the stream.
    pub seq: u64,
    /// The body that was posted.
    #[schema(value_type = Object)]
    pub body: Value,
    /// Tries made.
    pub attempts: u32,
    /// What the last try got.
    pub error: String,
    /// When it was given up (epoch ms).
    pub failed_at: i64,
    /// A redelivery was asked for and is not made yet.
    pub redeliver: bool,
    /// A redelivery succeeded.
    pub delivered: bool,
}

/// The deliveries of a subscription that failed every try (permission
/// ManageProcesses), oldest first: `?after=<failure id>&limit=`.
#[utoipa::path(get, path = "/admin/webhooks/{webhookId}/failures", tag = "admin",
    params(("X-Access-Token" = String, Header, description = "an administrator's session"),
        ("webhookId" = i64, Path, description = "the subscription"),
        ("after" = Option<i64>, Query, description = "after this failure id"),
        ("limit" = Option<usize>, Query, description = "at most this many (default 100, at most 1000)")),
    responses((status = 200, description = "the failures", body = Envelope<Vec<WebhookFailureInfo>>)))]
pub(crate) async fn webhook_failures<S: Store>(
    State(st): State<AppState<S>>,
    h: HeaderMap,
    Path(id): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> Answer<Vec<WebhookFailureInfo>> {
    admin(&st, &h, Permission::ManageProcesses).await?;
    let id = webhook_id(&id)?;
    st.engine.webhook(id).await?;
    let num = |k: &str, d: i64| -> Result<i64, BusinessError> {
        q.get(k).map_or(Ok(d), |v| {
            v.parse()
                .map_err(|_| BusinessError::refused(format!("{k} must be a number")))
        })
    };
    let after = num("after", 0)?;
    let limit = num("limit", 100)?.clamp(1, 1000) as usize;
    let failures = st.engine.webhook_failures(id, after, limit).await?;
    Ok(Done::ok(
        failures
            .into_iter()
            .map(|f| WebhookFailureInfo {
                id: f.id,
                seq: f.seq,
                body: f.body,
                attempts: f.attempts,
                error: f.error,
                failed_at: f.failed_at.0,
                redeliver: f.redeliver,
                delivered: f.delivered,
            })
            .collect(),
    ))
}

/// Asks for a failed delivery to be made again (permission ManageProcesses).
#[utoipa::path(post, path = "/admin/webhooks/{webhookId}/failures/{failureId}/redeliver", tag = "admin",
    params(("X-Access-Token" = String, Header, description = "an administrator's session"),
        ("webhookId" = i64, Path, description = "the subscription"),
        ("failureId" = i64, Path, description = "the failed delivery")),
    responses((status = 200, description = "asked", body = Envelope<Object>)))]
pub(crate) async fn redeliver_webhook<S: Store>(
    State(st): State<AppState<S>>,
    h: HeaderMap,
    Path((id, failure)): Path<(String, String)>,
) -> Answer<()> {
    let me = admin(&st, &h, Permission::ManageProcesses).await?;
    let failure: i64 = failure
        .parse()
        .map_err(|_| BusinessError::refused(format!("failure {failure} not found")))?;
    st.engine
        .redeliver_webhook(Actor::User(me.id), webhook_id(&id)?, failure)
        .await?;
    Ok(Done::said("the delivery will be made again"))
}
