//! The whole configuration over HTTP, in the configuration file's format
//! ([`crate::config`]): exported from a running server, imported into one.
//! Seed 000 envelope; both need ManageUsers, ManageProcesses and
//! ManageRobots.
//!
//! | method, path | body / answer |
//! |---|---|
//! | `GET /admin/config` | a configuration document: `roles`, `processes`, `users` (no passwords), `robots`, `pools`, `pipelines`, `schedules`, `flow.directory`, `flow.workflows` |
//! | `POST /admin/config` | a configuration document: what is missing is created (existing processes, users, robots are left as they are; users get the grants listed), audited under the caller's name; a new user without a password is refused before anything is created |
//!
//! Secrets never leave the server, nor what is made of them: passwords,
//! vendors (their secrets), listener accounts, workflow applications
//! (their tokens), OAuth clients and personal access tokens, webhooks, the
//! parent and the children are not exported; a server the file is
//! imported into needs its own (a robot whose vendor it lacks is refused).

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::http::HeaderMap;
use axum::routing::get;
use rpa_core::Store;
use rpa_core::model::{Actor, Permission, Process, User};
use rpa_core::store::People as _;
use serde_json::{Map, Value, json};

use crate::AppState;
use crate::admin::admin;
use crate::config::Config;
use crate::seed000::{Answer, BusinessError, Done};

/// The routes.
pub fn router<S: Store>() -> Router<AppState<S>> {
    Router::new().route("/admin/config", get(export::<S>).post(import::<S>))
}

/// The caller, if their roles allow everything a configuration touches.
async fn manager<S: Store>(st: &AppState<S>, h: &HeaderMap) -> Result<User, BusinessError> {
    let me = admin(st, h, Permission::ManageUsers).await?;
    for p in [Permission::ManageProcesses, Permission::ManageRobots] {
        st.engine.require(Actor::User(me.id), p).await?;
    }
    Ok(me)
}

/// A process definition as the configuration file writes it.
fn process_def(p: &Process) -> Value {
    let s = &p.spec;
    let mut d = Map::new();
    d.insert("name".into(), json!(s.name));
    d.insert("type".into(), json!(s.process_type.as_str()));
    d.insert("version".into(), json!(s.version));
    d.insert(
        "arguments".into(),
        Value::Array(
            s.arguments
                .iter()
                .map(|a| json!({"name": a.name, "id": a.id, "type": a.arg_type, "required": a.required, "secret": a.secret}))
                .collect(),
        ),
    );
    d.insert("maxRunNum".into(), json!(s.max_run_num));
    d.insert("maxDayNum".into(), json!(s.max_day_num));
    d.insert("maxPendingItems".into(), json!(s.max_pending_items));
    d.insert("priority".into(), json!(s.priority));
    d.insert("maxRetries".into(), json!(s.retry.max_retries));
    d.insert("retryBackoffMs".into(), json!(s.retry.backoff_ms));
    d.insert("vendor".into(), json!(s.requirements.vendor));
    d.insert("pool".into(), json!(s.requirements.pool));
    d.insert("labels".into(), json!(s.requirements.labels));
    d.insert("expirationMs".into(), json!(s.expiration_ms));
    d.insert("videoRecord".into(), json!(s.video_record));
    let optional = [
        ("pauseWorkflow", s.pause_workflow.as_ref().map(|v| json!(v))),
        (
            "queueTrigger",
            s.trigger.map(|t| json!(crate::config::QueueTriggerDef::from(t))),
        ),
        ("pipeline", s.pipeline.as_ref().map(|v| json!(v))),
        ("folder", s.folder.as_ref().map(|v| json!(v))),
        ("uniqueReferences", (!s.unique_references).then_some(json!(false))),
        ("region", s.attributes.region.as_ref().map(|v| json!(v))),
        ("scenario", s.attributes.scenario.as_ref().map(|v| json!(v))),
        (
            "businessDomain",
            s.attributes.business_domain.as_ref().map(|v| json!(v)),
        ),
        (
            "savedMinutes",
            (s.attributes.saved_minutes > 0).then_some(json!(s.attributes.saved_minutes)),
        ),
    ];
    for (k, v) in optional {
        if let Some(v) = v {
            d.insert(k.into(), v);
        }
    }
    Value::Object(d)
}

/// A schedule as the configuration file writes it.
fn schedule_def(
    s: &rpa_core::schedule::Schedule,
    process: &str,
    owner: Option<String>,
    server_zone: rpa_core::Tz,
) -> Value {
    use rpa_core::schedule::Rule;
    let spec = &s.spec;
    let zone: rpa_core::Tz = spec.zone.parse().unwrap_or(server_zone);
    let times = |t: &[chrono::NaiveTime]| t.iter().map(|t| t.format("%H:%M:%S").to_string()).collect::<Vec<_>>();
    let mut d = Map::new();
    d.insert("name".into(), json!(spec.name));
    d.insert("process".into(), json!(process));
    d.insert("arguments".into(), (*spec.arguments).clone());
    let (k, v) = match &spec.rule {
        Rule::Every { ms } if ms % 1000 == 0 => ("every", json!({"seconds": ms / 1000})),
        Rule::Every { ms } => ("every", json!({"seconds": (ms / 1000).max(1)})),
        Rule::Daily { times: t } => ("daily", json!(times(t))),
        Rule::Weekly { days, times: t } => (
            "weekly",
            json!({"days": days.iter().map(|d| d.to_string()).collect::<Vec<_>>(), "times": times(t)}),
        ),
        Rule::Monthly { days, times: t } => ("monthly", json!({"days": days, "times": times(t)})),
        Rule::Cron { expr } => ("cron", json!(expr)),
    };
    d.insert(k.into(), v);
    d.insert("zone".into(), json!(spec.zone));
    if let Some(t) = spec.from {
        d.insert("from".into(), json!(t.format_local(zone)));
    }
    if let Some(t) = spec.until {
        d.insert("until".into(), json!(t.format_local(zone)));
    }
    if let Some((a, b)) = spec.hours {
        d.insert(
            "hours".into(),
            json!([a.format("%H:%M:%S").to_string(), b.format("%H:%M:%S").to_string()]),
        );
    }
    d.insert(
        "skipDates".into(),
        json!(spec.skip_dates.iter().map(|d| d.to_string()).collect::<Vec<_>>()),
    );
    d.insert("missed".into(), json!(spec.missed));
    if let Some(o) = owner {
        d.insert("owner".into(), json!(o));
    }
    Value::Object(d)
}

/// Exports the configuration (permissions ManageUsers, ManageProcesses, ManageRobots).
#[utoipa::path(get, path = "/admin/config", tag = "admin",
    params(("X-Access-Token" = String, Header, description = "an administrator's session")),
    responses((status = 200, description = "a configuration document (no secrets)", body = Object)))]
pub(crate) async fn export<S: Store>(State(st): State<AppState<S>>, h: HeaderMap) -> Answer<Value> {
    let me = manager(&st, &h).await?;
    let engine = &st.engine;
    let store = engine.store();
    let roles = store.roles().await.map_err(rpa_core::Error::from)?;
    let processes = engine.processes().await?;
    let name_of = |id| processes.iter().find(|p| p.id == id).map(|p| p.spec.name.clone());
    let users: Vec<Value> = engine
        .users(Actor::User(me.id))
        .await?
        .into_iter()
        .map(|u| {
            json!({
                "name": u.name,
                "roles": u.roles.iter().filter_map(|r| roles.iter().find(|x| x.id == *r).map(|x| x.name.clone())).collect::<Vec<_>>(),
                "processes": u.grants.iter().filter_map(|g| name_of(*g)).collect::<Vec<_>>(),
                "folders": u.folders,
            })
        })
        .collect();
    let robots: Vec<Value> = engine
        .robots()
        .await?
        .into_iter()
        .map(|r| {
            let mut def = json!({
                "robotId": r.code.to_string(),
                "vendor": r.profile.vendor,
                "pool": r.profile.pool,
                "labels": r.profile.labels,
                "attended": r.profile.attended,
                "folders": r.profile.folders,
            });
            match &r.profile.held {
                Some(h) => def["license"] = json!(h.name),
                None => def["licenseContent"] = json!(r.profile.license),
            }
            def
        })
        .collect();
    let zone = engine.config().time_zone;
    let licenses: Vec<Value> = engine
        .licenses()
        .await?
        .into_iter()
        .filter(|l| !l.retired)
        .map(|l| {
            json!({
                "name": l.name,
                "content": l.terms.content,
                "vendor": l.terms.vendor,
                "expiresAt": l.terms.expires_at.map(|t| t.format_local(zone)),
                "robots": l.terms.robots,
                "seats": l.terms.seats,
            })
        })
        .collect();
    let pools: Vec<Value> = engine
        .pools()
        .await?
        .into_iter()
        .map(|p| json!({"name": p.spec.name, "min": p.spec.min, "max": p.spec.max, "idleGraceSeconds": p.spec.idle_grace_seconds}))
        .collect();
    let pipelines: Vec<Value> = engine
        .pipelines()
        .await?
        .into_iter()
        .map(|p| json!(p.plan.def))
        .collect();
    let mut schedules = Vec::new();
    for s in engine.schedules().await? {
        let Some(process) = name_of(s.spec.process) else {
            continue;
        };
        let owner = store
            .user(s.owner)
            .await
            .map_err(rpa_core::Error::from)?
            .map(|u| u.name);
        schedules.push(schedule_def(&s, &process, owner, engine.config().time_zone));
    }
    let directory = engine.configured_directory().await?;
    let workflows: Vec<Value> = engine
        .workflows()
        .await?
        .into_iter()
        .map(|w| json!(&*w.definition))
        .collect();
    Ok(Done::ok(json!({
        "roles": roles.iter().map(|r| json!({"name": r.name, "permissions": r.permissions})).collect::<Vec<_>>(),
        "schedules": schedules,
        "flow": {"directory": directory, "workflows": workflows},
        "processes": processes.iter().map(process_def).collect::<Vec<_>>(),
        "users": users,
        "licenses": licenses,
        "robots": robots,
        "pools": pools,
        "pipelines": pipelines,
    })))
}

/// Imports a configuration: creates what is missing (permissions ManageUsers, ManageProcesses, ManageRobots).
#[utoipa::path(post, path = "/admin/config", tag = "admin",
    params(("X-Access-Token" = String, Header, description = "an administrator's session")),
    request_body(content = Object, description = "a configuration document"),
    responses((status = 200, description = "imported", body = crate::seed000::Envelope<Object>)))]
pub(crate) async fn import<S: Store>(
    State(st): State<AppState<S>>,
    h: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Answer<()> {
    let me = manager(&st, &h).await?;
    let body = body.map_err(|r| BusinessError::refused(format!("cannot read the configuration: {}", r.body_text())))?;
    let text = std::str::from_utf8(&body).map_err(|_| BusinessError::refused("the configuration is not UTF-8"))?;
    let config = Config::parse(text).map_err(BusinessError::refused)?;
    if config.admin.is_some() {
        return Err(BusinessError::refused(
            "admin: the administrator is set by the server's own configuration, not imported",
        ));
    }
    config.apply_as(&st.engine, Actor::User(me.id)).await?;
    Ok(Done::said("imported"))
}
