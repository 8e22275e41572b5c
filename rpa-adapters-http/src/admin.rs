//! Administration over HTTP (not in the seeds; needed to use the server).
//! Every call needs the `X-Access-Token` of a user whose role grants the
//! permission named; answers use the seed 000 envelope.
//!
//! | method, path | permission | body / answer |
//! |---|---|---|
//! | `POST /admin/users` | ManageUsers | `{name, password, roles?, processes?: [processId]}` |
//! | `GET /admin/users` | ManageUsers | `[{name, locked, failedLogins, roles, processes}]` |
//! | `POST /admin/users/unlock` | ManageUsers | `{name}` |
//! | `POST /admin/grants` | ManageUsers | `{name, processId}` |
//! | `POST /admin/processes` | ManageProcesses | a process definition ([`crate::config::ProcessDef`]) → `{processId}` |
//! | `GET /admin/processes` | ManageProcesses | `[{processId, processName, type, version, packageDownloadUri, ...}]` |
//! | `POST /admin/processes/{processId}/package?version=` | ManageProcesses | raw package bytes → `{fileId, packageDownloadUri, version}` |
//! | `POST /admin/vendors` | ManageRobots | `{supplierCode, secret}` |
//! | `POST /admin/robots` | ManageRobots | `{robotId, vendor?, pool?, labels?, attended?, licenseContent?}` |
//! | `GET /admin/robots` | ManageRobots | `[{robotId, state, jobId, pool, labels, attended, lastSeen}]` |
//! | `POST /admin/jobs/{jobId}/kill` | OperateAllJobs | → `{jobId, state}`: the job ends Stopped at once, its robot is sent Stop (seed 000 `stopJob` asks the robot instead) |
//! | `GET /admin/audit?after=&limit=` | ViewAudit | audit events |
//! | `GET /admin/audit/verify` | ViewAudit | `{verified}` or a failure naming the first broken event |
//! | `GET /admin/events?after=&limit=` | ViewAudit | `{events: [{seq, at, type, ...}], through}`: the domain events among the `limit` audit events after `after`; page on with `after=through` |

use std::collections::HashMap;

use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::routing::{get, post};
use rpa_core::engine::NewUser;
use rpa_core::model::{Actor, FileSource, Permission, ProcessSpec, RobotProfile, User};
use rpa_core::{Key, Store};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::AppState;
use crate::business::{Answer, fields, session};
use crate::config::{ProcessDef, RobotDef};
use crate::wire::key;

/// The administration routes.
pub fn router<S: Store>() -> Router<AppState<S>> {
    Router::new()
        .route("/admin/users", post(create_user::<S>).get(list_users::<S>))
        .route("/admin/users/unlock", post(unlock::<S>))
        .route("/admin/grants", post(grant::<S>))
        .route("/admin/processes", post(create_process::<S>).get(list_processes::<S>))
        .route("/admin/vendors", post(vendor::<S>))
        .route("/admin/robots", post(robot::<S>).get(list_robots::<S>))
        .route("/admin/jobs/{job_id}/kill", post(kill::<S>))
        .route("/admin/audit", get(audit::<S>))
        .route("/admin/audit/verify", get(verify::<S>))
        .route("/admin/events", get(events::<S>))
}

/// The package upload route (mounted with the upload body limit).
pub fn upload_router<S: Store>() -> Router<AppState<S>> {
    Router::new().route("/admin/processes/{process_id}/package", post(upload_package::<S>))
}

macro_rules! answer {
    ($e:expr) => {
        match $e {
            Ok(v) => v,
            Err(a) => return Answer::from(a),
        }
    };
}

/// The session's user, if a role of theirs grants `perm`; a refusal is
/// audited (`permission.denied`).
async fn admin<S: Store>(st: &AppState<S>, h: &HeaderMap, perm: Permission) -> Result<User, Answer> {
    let user = session(st, h).await?;
    st.engine.require(Actor::User(user.id), perm).await?;
    Ok(user)
}

fn process_id(s: &str) -> Result<Key, Answer> {
    key("processId", s).map_err(|_| Answer::fail(format!("process {s} not found")))
}

async fn create_user<S: Store>(
    State(st): State<AppState<S>>,
    h: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Answer {
    let me = answer!(admin(&st, &h, Permission::ManageUsers).await);
    let f = answer!(fields(body));
    let name = answer!(f.str("name").map_err(Answer::fail)).to_owned();
    let password = answer!(f.str("password").map_err(Answer::fail)).to_owned();
    let strings = |field: &str| -> Result<Vec<String>, Answer> {
        match f.value(field) {
            None => Ok(Vec::new()),
            Some(Value::Array(a)) => a
                .iter()
                .map(|v| {
                    v.as_str()
                        .map(str::to_owned)
                        .ok_or_else(|| Answer::fail(format!("{field} must be an array of strings")))
                })
                .collect(),
            Some(_) => Err(Answer::fail(format!("{field} must be an array of strings"))),
        }
    };
    let roles = answer!(strings("roles"));
    let mut grants = Vec::new();
    for p in answer!(strings("processes")) {
        grants.push(answer!(process_id(&p)));
    }
    let u = answer!(
        st.engine
            .create_user(
                Actor::User(me.id),
                NewUser {
                    name,
                    password,
                    roles,
                    grants
                }
            )
            .await
    );
    Answer::ok(json!({"name": u.name}))
}

async fn list_users<S: Store>(State(st): State<AppState<S>>, h: HeaderMap) -> Answer {
    let me = answer!(admin(&st, &h, Permission::ManageUsers).await);
    let users = answer!(st.engine.users(Actor::User(me.id)).await);
    let processes: HashMap<_, _> = answer!(st.engine.processes().await)
        .into_iter()
        .map(|p| (p.id, p.key))
        .collect();
    let list: Vec<Value> = users
        .iter()
        .map(|u| {
            json!({
                "name": u.name,
                "locked": u.locked,
                "failedLogins": u.failed_logins,
                "roles": u.roles.iter().map(|r| r.0).collect::<Vec<_>>(),
                "processes": u.grants.iter().filter_map(|g| processes.get(g)).collect::<Vec<_>>(),
            })
        })
        .collect();
    Answer::ok(Value::Array(list))
}

async fn unlock<S: Store>(State(st): State<AppState<S>>, h: HeaderMap, body: Result<Bytes, BytesRejection>) -> Answer {
    let me = answer!(admin(&st, &h, Permission::ManageUsers).await);
    let f = answer!(fields(body));
    let name = answer!(f.str("name").map_err(Answer::fail));
    answer!(st.engine.unlock_user(Actor::User(me.id), name).await);
    Answer::done("unlocked")
}

async fn grant<S: Store>(State(st): State<AppState<S>>, h: HeaderMap, body: Result<Bytes, BytesRejection>) -> Answer {
    let me = answer!(admin(&st, &h, Permission::ManageUsers).await);
    let f = answer!(fields(body));
    let name = answer!(f.str("name").map_err(Answer::fail));
    let p = answer!(process_id(answer!(f.str("processId").map_err(Answer::fail))));
    answer!(st.engine.grant(Actor::User(me.id), name, p).await);
    Answer::done("granted")
}

fn process_json<S: Store>(st: &AppState<S>, p: &rpa_core::model::Process) -> Value {
    json!({
        "processId": p.key,
        "processName": p.spec.name,
        "type": p.spec.process_type.as_str(),
        "version": p.spec.version,
        "packageDownloadUri": p.spec.package_uri,
        "maxRunNum": p.spec.max_run_num,
        "currentRunNum": p.running,
        "maxDayNum": p.spec.max_day_num,
        "maxPendingItems": p.spec.max_pending_items,
        "pendingItems": p.pending_items,
        "priority": p.spec.priority,
        "createTime": p.created_at.format_local(st.engine.config().time_zone),
    })
}

async fn create_process<S: Store>(
    State(st): State<AppState<S>>,
    h: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Answer {
    let me = answer!(admin(&st, &h, Permission::ManageProcesses).await);
    let f = answer!(fields(body));
    let def: ProcessDef = match serde_json::from_value(Value::Object(f.0)) {
        Ok(d) => d,
        Err(e) => return Answer::fail(format!("invalid process definition: {e}")),
    };
    let p = answer!(st.engine.create_process(Actor::User(me.id), def.into()).await);
    Answer::ok(process_json(&st, &p))
}

async fn list_processes<S: Store>(State(st): State<AppState<S>>, h: HeaderMap) -> Answer {
    answer!(admin(&st, &h, Permission::ManageProcesses).await);
    let ps = answer!(st.engine.processes().await);
    Answer::ok(Value::Array(ps.iter().map(|p| process_json(&st, p)).collect()))
}

async fn upload_package<S: Store>(
    State(st): State<AppState<S>>,
    h: HeaderMap,
    Path(pid): Path<String>,
    Query(q): Query<HashMap<String, String>>,
    body: Result<Bytes, BytesRejection>,
) -> Answer {
    let me = answer!(admin(&st, &h, Permission::ManageProcesses).await);
    let k = answer!(process_id(&pid));
    let bytes = match body {
        Ok(b) if !b.is_empty() => b,
        Ok(_) => return Answer::fail("the package (request body) is empty"),
        Err(r) => return Answer::fail(format!("cannot read the package: {}", r.body_text())),
    };
    let p = answer!(st.engine.processes().await).into_iter().find(|p| p.key == k);
    let Some(p) = p else {
        return Answer::fail(format!("process {pid} not found"));
    };
    let version = q.get("version").cloned().unwrap_or_else(|| p.spec.version.clone());
    let name = format!("{}-{version}.pkg", p.spec.name);
    let digest = hex::encode(Sha256::digest(&bytes));
    let actor = Actor::User(me.id);
    let meta = answer!(
        st.engine
            .record_file(actor, FileSource::Package, &name, bytes.len() as u64, &digest, None)
            .await
    );
    if let Err(e) = st.files.put(meta.key, bytes).await {
        tracing::error!(error = %e, "cannot store a package");
        return Answer::from(rpa_core::Error::Internal("cannot store the package".into()));
    }
    let uri = format!("{}/v1/file/{}", st.settings.public_url.trim_end_matches('/'), meta.key);
    let spec = ProcessSpec {
        package_uri: uri.clone(),
        version: version.clone(),
        ..(*p.spec).clone()
    };
    answer!(st.engine.update_process(actor, k, spec).await);
    Answer::ok(json!({"fileId": meta.key, "packageDownloadUri": uri, "version": version}))
}

async fn vendor<S: Store>(State(st): State<AppState<S>>, h: HeaderMap, body: Result<Bytes, BytesRejection>) -> Answer {
    let me = answer!(admin(&st, &h, Permission::ManageRobots).await);
    let f = answer!(fields(body));
    let code = answer!(f.str("supplierCode").map_err(Answer::fail));
    let secret = answer!(f.str("secret").map_err(Answer::fail));
    answer!(st.engine.register_vendor(Actor::User(me.id), code, secret).await);
    Answer::done("vendor registered")
}

async fn robot<S: Store>(State(st): State<AppState<S>>, h: HeaderMap, body: Result<Bytes, BytesRejection>) -> Answer {
    let me = answer!(admin(&st, &h, Permission::ManageRobots).await);
    let f = answer!(fields(body));
    let def: RobotDef = match serde_json::from_value(Value::Object(f.0)) {
        Ok(d) => d,
        Err(e) => return Answer::fail(format!("invalid robot profile: {e}")),
    };
    let code = def.robot_id.clone();
    answer!(
        st.engine
            .configure_robot(Actor::User(me.id), &code, RobotProfile::from(def))
            .await
    );
    Answer::done("robot configured")
}

async fn kill<S: Store>(State(st): State<AppState<S>>, h: HeaderMap, Path(job_id): Path<String>) -> Answer {
    let me = answer!(admin(&st, &h, Permission::OperateAllJobs).await);
    let job = answer!(key("jobId", &job_id).map_err(|_| Answer::fail(format!("job {job_id} not found"))));
    let job = answer!(st.engine.kill_job(Actor::User(me.id), job).await);
    Answer::ok(json!({"jobId": job.key, "state": crate::business::job_state(job.state)}))
}

async fn list_robots<S: Store>(State(st): State<AppState<S>>, h: HeaderMap) -> Answer {
    answer!(admin(&st, &h, Permission::ManageRobots).await);
    let robots = answer!(st.engine.robots().await);
    let offset = st.engine.config().time_zone;
    let mut list = Vec::with_capacity(robots.len());
    for r in &robots {
        let job = match r.job {
            Some(j) => answer!(st.engine.store().job(j).await.map_err(rpa_core::Error::from)).map(|j| j.key),
            None => None,
        };
        list.push(json!({
            "robotId": &*r.code,
            "state": r.state.as_str(),
            "jobId": job,
            "vendor": r.profile.vendor,
            "pool": r.profile.pool,
            "labels": r.profile.labels,
            "attended": r.profile.attended,
            "version": r.robot_version.as_deref(),
            "lastSeen": r.last_seen.format_local(offset),
        }));
    }
    Answer::ok(Value::Array(list))
}

/// `after` and `limit` of a paged query (`limit` at most 1000).
fn page(q: &HashMap<String, String>) -> Result<(u64, usize), Answer> {
    let num = |k: &str, d: u64| {
        q.get(k).map_or(Ok(d), |v| {
            v.parse::<u64>()
                .map_err(|_| Answer::fail(format!("{k} must be a number")))
        })
    };
    Ok((num("after", 0)?, num("limit", 100)?.min(1000) as usize))
}

async fn audit<S: Store>(
    State(st): State<AppState<S>>,
    h: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Answer {
    let me = answer!(admin(&st, &h, Permission::ViewAudit).await);
    let (after, limit) = answer!(page(&q));
    let events = answer!(st.engine.audit_events(Actor::User(me.id), after, limit).await);
    let offset = st.engine.config().time_zone;
    Answer::ok(Value::Array(
        events
            .iter()
            .map(|e| {
                json!({
                    "seq": e.seq,
                    "time": e.at.format_local(offset),
                    "actor": e.actor.to_string(),
                    "action": e.action,
                    "subject": e.subject,
                    "detail": e.detail,
                    "hash": hex::encode(e.hash),
                    "event": e.event,
                })
            })
            .collect(),
    ))
}

async fn events<S: Store>(
    State(st): State<AppState<S>>,
    h: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Answer {
    answer!(admin(&st, &h, Permission::ViewAudit).await);
    let (after, limit) = answer!(page(&q));
    let page = answer!(st.engine.events(after, limit).await);
    Answer::ok(json!({"events": page.events, "through": page.through}))
}

async fn verify<S: Store>(State(st): State<AppState<S>>, h: HeaderMap) -> Answer {
    answer!(admin(&st, &h, Permission::ViewAudit).await);
    match answer!(st.engine.verify_audit().await) {
        Ok(n) => Answer::ok(json!({"verified": n})),
        Err(broken) => Answer::fail(broken.to_string()),
    }
}
