//! Seed 004: the workflow engine's `/api/v1.0` API, as loonflow serves it.
//! A translation table between the seed and [`rpa_core::flow`].
//!
//! - Envelope `{code, data, msg}`: `code` 0 on success; every failure is
//!   HTTP 200 with `code: -1` and a readable `msg` ([`FlowError`]), and
//!   changes nothing.
//! - Callers are applications ([`FlowApp`]): headers `appname`,
//!   `timestamp` (Unix seconds, within 120 s), `signature` =
//!   `md5(timestamp + token)`, and `username` (the person acting). Each
//!   application is granted a set of workflows; tickets of other workflows
//!   do not exist for it.
//! - Times are `yyyy-MM-dd HH:mm:ss` in the server's zone.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use rpa_core::error::Error;
use rpa_core::flow::workflow::{State as FlowState, participant};
use rpa_core::flow::{Directory, FlowLog, Request, Ticket, Who, Workflow};
use rpa_core::{Engine, Store, TicketQuery, Timestamp};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use crate::AppState;

/// How far a caller's `timestamp` may be from the server's clock.
pub const SIGNATURE_WINDOW_S: i64 = 120;

/// An application allowed to call `/api/v1.0` (seed 004 "调用token").
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FlowApp {
    /// `appname`.
    pub app_name: String,
    /// The token signatures are made with (never shown or logged).
    pub token: String,
    /// The workflows it may use, by name (`workflow_ids` of the seed).
    #[serde(default)]
    pub workflows: Vec<String>,
    /// The prefix of the serial numbers of its tickets (default `loonflow`).
    #[serde(default = "default_prefix")]
    pub ticket_sn_prefix: String,
}

fn default_prefix() -> String {
    "loonflow".into()
}

impl std::fmt::Debug for FlowApp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FlowApp")
            .field("app_name", &self.app_name)
            .field("token", &"***")
            .field("workflows", &self.workflows)
            .finish()
    }
}

/// Every failure of this family: `{code: -1, msg, data: ""}`, HTTP 200.
#[derive(Debug)]
pub enum FlowError {
    /// The caller's mistake, said in words.
    Refused(String),
    /// Not the caller's fault: logged, not shown.
    Internal(String),
}

impl FlowError {
    fn refused(m: impl Into<String>) -> FlowError {
        FlowError::Refused(m.into())
    }
}

impl From<Error> for FlowError {
    fn from(e: Error) -> Self {
        match e {
            Error::Store(_) | Error::Internal(_) => FlowError::Internal(e.to_string()),
            other => FlowError::Refused(other.to_string()),
        }
    }
}

impl IntoResponse for FlowError {
    fn into_response(self) -> Response {
        let msg = match self {
            FlowError::Refused(m) => m,
            FlowError::Internal(m) => {
                tracing::error!(error = %m, "workflow API");
                "internal error".into()
            }
        };
        axum::Json(json!({"code": -1, "msg": msg, "data": ""})).into_response()
    }
}

type Answer = Result<axum::Json<Value>, FlowError>;

fn ok(data: Value) -> Answer {
    Ok(axum::Json(json!({"code": 0, "msg": "", "data": data})))
}

/// A path under `/api/v1.0/` no endpoint serves, in this family's envelope.
pub fn no_route(message: String) -> Response {
    FlowError::Refused(message).into_response()
}

/// The routes of seed 004, each also with a trailing slash (clients of
/// older loonflow versions add one). Callers that send `username` as a
/// query parameter or a body field (loonflow before 0.3) are taken as if
/// they had sent the header.
pub fn router<S: Store>() -> Router<AppState<S>> {
    use axum::routing::{MethodRouter, patch, put};
    let routes: Vec<(&str, MethodRouter<AppState<S>>)> = vec![
        ("/api/v1.0/workflows", get(workflows::<S>)),
        ("/api/v1.0/workflows/{id}/init_state", get(init_state::<S>)),
        ("/api/v1.0/workflows/{id}/states", get(workflow_states::<S>)),
        ("/api/v1.0/workflows/states/{id}", get(state_detail::<S>)),
        ("/api/v1.0/tickets", get(list_tickets::<S>).post(create_ticket::<S>)),
        ("/api/v1.0/tickets/states", get(ticket_states::<S>)),
        ("/api/v1.0/tickets/{id}", get(ticket_detail::<S>).patch(handle::<S>)),
        ("/api/v1.0/tickets/{id}/transitions", get(transitions::<S>)),
        ("/api/v1.0/tickets/{id}/accept", post(accept::<S>)),
        ("/api/v1.0/tickets/{id}/deliver", post(deliver::<S>)),
        ("/api/v1.0/tickets/{id}/add_node", post(add_node::<S>)),
        ("/api/v1.0/tickets/{id}/add_node_end", post(add_node_end::<S>)),
        ("/api/v1.0/tickets/{id}/flowlogs", get(flowlogs::<S>)),
        ("/api/v1.0/tickets/{id}/flowsteps", get(flowsteps::<S>)),
        ("/api/v1.0/tickets/{id}/state", put(change_state::<S>)),
        ("/api/v1.0/tickets/{id}/fields", patch(fields::<S>)),
        ("/api/v1.0/tickets/{id}/retry_script", post(retry_script::<S>)),
        ("/api/v1.0/tickets/{id}/comments", post(comment::<S>)),
        ("/api/v1.0/tickets/{id}/hook_call_back", post(hook_call_back::<S>)),
        ("/api/v1.0/tickets/{id}/participant_info", get(participant_info::<S>)),
        ("/api/v1.0/tickets/{id}/close", post(close::<S>)),
    ];
    let mut r = Router::new();
    for (path, m) in routes {
        r = r.route(path, m.clone()).route(&format!("{path}/"), m);
    }
    r.layer(axum::middleware::from_fn(username_elsewhere))
}

/// Copies a `username` given as a query parameter or a JSON body field
/// into the `username` header, when the header is missing.
async fn username_elsewhere(mut req: axum::extract::Request, next: axum::middleware::Next) -> Response {
    if req.headers().contains_key("username") {
        return next.run(req).await;
    }
    let from_query = Query::<std::collections::HashMap<String, String>>::try_from_uri(req.uri())
        .ok()
        .and_then(|Query(q)| q.get("username").cloned());
    let (parts, body) = req.into_parts();
    let bytes = match axum::body::to_bytes(body, 1 << 20).await {
        Ok(b) => b,
        Err(e) => return FlowError::refused(format!("unreadable body: {e}")).into_response(),
    };
    let from_body = serde_json::from_slice::<Value>(&bytes)
        .ok()
        .and_then(|v| v.get("username").and_then(Value::as_str).map(str::to_owned));
    req = axum::extract::Request::from_parts(parts, axum::body::Body::from(bytes));
    if let Some(u) = from_query.or(from_body)
        && let Ok(v) = axum::http::HeaderValue::from_str(&u)
    {
        req.headers_mut().insert("username", v);
    }
    next.run(req).await
}

/// The caller of a request: its application and the person acting.
struct Caller<'a> {
    app: &'a FlowApp,
    username: String,
}

fn header<'h>(h: &'h HeaderMap, name: &str) -> Option<&'h str> {
    h.get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|v| !v.is_empty())
}

fn caller<'a, S: Store>(st: &'a AppState<S>, h: &HeaderMap) -> Result<Caller<'a>, FlowError> {
    let fail = |why: &str| FlowError::refused(format!("权限校验失败 (authentication failed): {why}"));
    let name = header(h, "appname").ok_or_else(|| fail("no appname header"))?;
    let app = st
        .settings
        .flow_apps
        .iter()
        .find(|a| a.app_name == name)
        .ok_or_else(|| fail("appname is not authorised"))?;
    let signature = header(h, "signature").ok_or_else(|| fail("no signature header"))?;
    let timestamp = header(h, "timestamp").ok_or_else(|| fail("no timestamp header"))?;
    let now = st.engine.now().0 / 1000;
    rpa_core::auth::verify_md5_signature(signature, timestamp, &app.token, now, SIGNATURE_WINDOW_S).map_err(fail)?;
    Ok(Caller {
        app,
        username: header(h, "username").unwrap_or_default().to_owned(),
    })
}

impl Caller<'_> {
    fn user(&self) -> Result<&str, FlowError> {
        if self.username.is_empty() {
            return Err(FlowError::refused("the username header is required"));
        }
        Ok(&self.username)
    }

    fn granted(&self, w: &Workflow) -> bool {
        self.app.workflows.iter().any(|n| n == &w.name)
    }
}

fn stamp<S: Store>(e: &Engine<S>, t: Timestamp) -> String {
    t.format_local(e.config().time_zone)
}

fn body(b: Result<Bytes, BytesRejection>) -> Result<Map<String, Value>, FlowError> {
    let b = b.map_err(|e| FlowError::refused(format!("unreadable body: {e}")))?;
    if b.iter().all(u8::is_ascii_whitespace) {
        return Ok(Map::new());
    }
    match serde_json::from_slice::<Value>(&b) {
        Ok(Value::Object(m)) => Ok(m),
        Ok(_) => Err(FlowError::refused("the body must be a JSON object")),
        Err(e) => Err(FlowError::refused(format!("the body is not JSON: {e}"))),
    }
}

fn int(m: &Map<String, Value>, key: &str) -> Result<Option<i64>, FlowError> {
    match m.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) if n.is_i64() => Ok(n.as_i64()),
        Some(Value::String(s)) if s.trim().parse::<i64>().is_ok() => Ok(s.trim().parse().ok()),
        Some(v) => Err(FlowError::refused(format!("{key} must be an integer, got {v}"))),
    }
}

fn text(m: &Map<String, Value>, key: &str) -> Result<String, FlowError> {
    match m.get(key) {
        None | Some(Value::Null) => Ok(String::new()),
        Some(Value::String(s)) => Ok(s.clone()),
        Some(v) => Err(FlowError::refused(format!("{key} must be text, got {v}"))),
    }
}

/// `page` and `per_page` of a query (defaults 1 and 10).
#[derive(Debug, Deserialize)]
struct Paging {
    page: Option<String>,
    per_page: Option<String>,
    name: Option<String>,
}

fn paging(page: &Option<String>, per_page: &Option<String>) -> Result<(usize, usize), FlowError> {
    let num = |v: &Option<String>, d: usize, what: &str| match v.as_deref().map(str::trim) {
        None | Some("") => Ok(d),
        Some(s) => s
            .parse::<usize>()
            .ok()
            .filter(|n| *n > 0)
            .ok_or_else(|| FlowError::refused(format!("{what} must be a positive integer"))),
    };
    Ok((num(page, 1, "page")?, num(per_page, 10, "per_page")?.min(1000)))
}

async fn granted_workflow<S: Store>(st: &AppState<S>, c: &Caller<'_>, id: i64) -> Result<Arc<Workflow>, FlowError> {
    match st.engine.workflow(id).await {
        Ok(w) if c.granted(&w) => Ok(w),
        Ok(_) => Err(FlowError::refused(format!(
            "APP:{} has no permission for workflow {id}",
            c.app.app_name
        ))),
        Err(Error::NotFound(..)) => Err(FlowError::refused(format!("workflow {id} does not exist"))),
        Err(e) => Err(e.into()),
    }
}

/// Ticket `id` as the caller may see it: of a granted workflow, and (when
/// the workflow checks) related to the caller.
async fn visible<S: Store>(
    st: &AppState<S>,
    c: &Caller<'_>,
    id: i64,
) -> Result<(Ticket, Arc<Workflow>, Arc<Directory>), FlowError> {
    let t = match st.engine.ticket(id).await {
        Ok(t) => t,
        Err(Error::NotFound(..)) => return Err(FlowError::refused(format!("ticket {id} does not exist"))),
        Err(e) => return Err(e.into()),
    };
    let w = st.engine.workflow(t.workflow_id).await?;
    if !c.granted(&w) {
        return Err(FlowError::refused(format!("ticket {id} does not exist")));
    }
    let dir = st.engine.directory().await?;
    Ok((t, w, dir))
}

async fn viewable<S: Store>(
    st: &AppState<S>,
    c: &Caller<'_>,
    id: i64,
) -> Result<(Ticket, Arc<Workflow>, Arc<Directory>), FlowError> {
    let (t, w, dir) = visible(st, c, id).await?;
    if !t.may_view(&w, &dir, c.user()?) {
        return Err(FlowError::refused(format!(
            "{} is not related to ticket {id} and its workflow checks view permission",
            c.username
        )));
    }
    Ok((t, w, dir))
}

fn state_json<S: Store>(e: &Engine<S>, w: &Workflow, s: &FlowState) -> Value {
    let participant = match &s.hook {
        Some(h) => json!({"hook_url": h.hook_url, "wait": h.wait}).to_string(),
        None => s.participant.clone(),
    };
    json!({
        "id": s.id,
        "workflow_id": w.id,
        "name": s.name,
        "type_id": s.type_id,
        "participant_type_id": s.participant_type_id,
        "participant": participant,
        "distribute_type_id": s.distribute_type_id,
        "state_field_str": s.state_field_str,
        "order_id": s.order_id,
        "is_hidden": s.is_hidden,
        "sub_workflow_id": s.sub_workflow_id,
        "label": s.label,
        "remember_last_man_enable": s.remember_last_man_enable,
        "creator": w.creator,
        "gmt_created": stamp(e, w.created_at),
    })
}

fn field_list(w: &Workflow, s: &FlowState, values: Option<&Ticket>) -> Vec<Value> {
    let mut out = Vec::new();
    for (key, attribute) in &s.state_field_str {
        let value = values.map_or(Value::Null, |t| {
            if key == "title" {
                Value::String(t.title.clone())
            } else {
                t.fields.get(key).cloned().unwrap_or(Value::Null)
            }
        });
        let entry = match w.field(key) {
            Some(f) => json!({
                "field_key": f.field_key,
                "field_name": f.field_name,
                "field_type_id": f.field_type_id,
                "field_attribute": attribute,
                "field_value": value,
                "order_id": f.order_id,
                "default_value": f.default_value,
                "description": f.description,
                "field_choice": f.field_choice,
                "label": f.label,
                "field_template": "",
                "boolean_field_display": {},
            }),
            None => json!({
                "field_key": key,
                "field_name": "标题",
                "field_type_id": 5,
                "field_attribute": attribute,
                "field_value": value,
                "order_id": 20,
                "default_value": null,
                "description": "工单的标题",
                "field_choice": {},
                "label": {},
                "field_template": "",
                "boolean_field_display": {},
            }),
        };
        out.push(entry);
    }
    out.sort_by_key(|f| f["order_id"].as_i64().unwrap_or(0));
    out
}

async fn workflows<S: Store>(State(st): State<AppState<S>>, h: HeaderMap, Query(q): Query<Paging>) -> Answer {
    let c = caller(&st, &h)?;
    let (page, per_page) = paging(&q.page, &q.per_page)?;
    let name = q.name.unwrap_or_default();
    let all: Vec<Workflow> = st
        .engine
        .workflows()
        .await?
        .into_iter()
        .filter(|w| c.granted(w) && w.name.contains(&name))
        .collect();
    let value: Vec<Value> = all
        .iter()
        .skip((page - 1).saturating_mul(per_page))
        .take(per_page)
        .map(|w| {
            json!({
                "id": w.id,
                "name": w.name,
                "description": w.description,
                "creator": w.creator,
                "view_permission_check": w.view_permission_check,
                "limit_expression": w.limit_expression,
                "display_form_str": w.display_form_str,
                "gmt_created": stamp(&st.engine, w.created_at),
                "gmt_modified": stamp(&st.engine, w.modified_at),
            })
        })
        .collect();
    ok(json!({"total": all.len(), "page": page, "per_page": per_page, "value": value}))
}

async fn init_state<S: Store>(State(st): State<AppState<S>>, h: HeaderMap, Path(id): Path<i64>) -> Answer {
    let c = caller(&st, &h)?;
    let w = granted_workflow(&st, &c, id).await?;
    let s = w.start();
    let mut v = state_json(&st.engine, &w, s);
    v["transition"] = w
        .out_of(s.id)
        .map(|t| json!({"transition_id": t.id, "transition_name": t.name}))
        .collect();
    v["field_list"] = field_list(&w, s, None).into();
    ok(v)
}

async fn workflow_states<S: Store>(
    State(st): State<AppState<S>>,
    h: HeaderMap,
    Path(id): Path<i64>,
    Query(q): Query<Paging>,
) -> Answer {
    let c = caller(&st, &h)?;
    let (page, per_page) = paging(&q.page, &q.per_page)?;
    let w = granted_workflow(&st, &c, id).await?;
    let value: Vec<Value> = w
        .states
        .iter()
        .skip((page - 1).saturating_mul(per_page))
        .take(per_page)
        .map(|s| state_json(&st.engine, &w, s))
        .collect();
    ok(json!({"total": w.states.len(), "page": page, "per_page": per_page, "value": value}))
}

async fn state_detail<S: Store>(State(st): State<AppState<S>>, h: HeaderMap, Path(id): Path<i64>) -> Answer {
    let c = caller(&st, &h)?;
    for w in st.engine.workflows().await?.iter().filter(|w| c.granted(w)) {
        if let Some(s) = w.state(id) {
            let mut v = state_json(&st.engine, w, s);
            v["state_field"] = json!(s.state_field_str);
            return ok(v);
        }
    }
    Err(FlowError::refused(format!("state {id} does not exist")))
}

fn participant_json(t: &Ticket, dir: &Directory) -> Value {
    let person = dir.user(&t.participant);
    let name = match t.participant_type_id {
        participant::DEPT => t
            .participant
            .parse()
            .ok()
            .and_then(|d| dir.dept(d))
            .map_or_else(|| t.participant.clone(), |d| d.name.clone()),
        participant::ROLE => t
            .participant
            .parse()
            .ok()
            .and_then(|r| dir.role(r))
            .map_or_else(|| t.participant.clone(), |r| r.name.clone()),
        _ => t.participant.clone(),
    };
    let alias = match t.participant_type_id {
        participant::MULTI | participant::MULTI_ALL => t
            .participant
            .split(',')
            .map(|u| dir.user(u).map_or(u, |p| p.alias.as_str()))
            .collect::<Vec<_>>()
            .join(","),
        _ => person.map_or_else(|| name.clone(), |p| p.alias.clone()),
    };
    json!({
        "participant_type_id": t.participant_type_id,
        "participant": t.participant,
        "participant_name": name,
        "participant_type_name": participant::name(t.participant_type_id),
        "participant_alias": alias,
    })
}

fn ticket_item<S: Store>(e: &Engine<S>, t: &Ticket, w: Option<&Workflow>, dir: &Directory) -> Value {
    let state_name = w.and_then(|w| w.state(t.state_id)).map_or("", |s| s.name.as_str());
    json!({
        "id": t.id,
        "sn": t.sn,
        "title": t.title,
        "workflow_id": t.workflow_id,
        "workflow": {"workflow_id": t.workflow_id, "workflow_name": w.map_or("", |w| w.name.as_str())},
        "state_id": t.state_id,
        "state": {"state_id": t.state_id, "state_name": state_name},
        "participant_type_id": t.participant_type_id,
        "participant": t.participant,
        "participant_info": participant_json(t, dir),
        "parent_ticket_id": t.parent_ticket_id,
        "parent_ticket_state_id": t.parent_ticket_state_id,
        "creator": t.creator,
        "is_end": t.is_end,
        "is_rejected": t.is_rejected,
        "gmt_created": stamp(e, t.created_at),
        "gmt_modified": stamp(e, t.modified_at),
    })
}

/// The list filters of seed 004 `GET /tickets`.
#[derive(Debug, Default, Deserialize)]
struct TicketFilters {
    sn: Option<String>,
    title: Option<String>,
    create_start: Option<String>,
    create_end: Option<String>,
    workflow_ids: Option<String>,
    state_ids: Option<String>,
    ticket_ids: Option<String>,
    reverse: Option<String>,
    page: Option<String>,
    per_page: Option<String>,
    is_end: Option<String>,
    is_rejected: Option<String>,
    category: Option<String>,
}

fn ids(v: &Option<String>, what: &str) -> Result<Vec<i64>, FlowError> {
    v.as_deref()
        .unwrap_or("")
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| {
            s.parse()
                .map_err(|_| FlowError::refused(format!("{what} must be comma-separated ids")))
        })
        .collect()
}

fn flag(v: &Option<String>, what: &str) -> Result<Option<bool>, FlowError> {
    match v.as_deref().map(str::trim) {
        None | Some("") => Ok(None),
        Some("0") | Some("false") => Ok(Some(false)),
        Some("1") | Some("true") => Ok(Some(true)),
        Some(_) => Err(FlowError::refused(format!("{what} must be 0 or 1"))),
    }
}

async fn list_tickets<S: Store>(State(st): State<AppState<S>>, h: HeaderMap, Query(q): Query<TicketFilters>) -> Answer {
    let c = caller(&st, &h)?;
    let user = c.user()?.to_owned();
    let (page, per_page) = paging(&q.page, &q.per_page)?;
    let zone = st.engine.config().time_zone;
    let time = |v: &Option<String>, what: &str| -> Result<Option<Timestamp>, FlowError> {
        match v.as_deref().map(str::trim) {
            None | Some("") => Ok(None),
            Some(s) => {
                let full = if s.len() == 10 {
                    format!("{s} 00:00:00")
                } else {
                    s.to_owned()
                };
                Timestamp::parse_local(&full, zone)
                    .map(Some)
                    .ok_or_else(|| FlowError::refused(format!("{what} must be yyyy-MM-dd HH:mm:ss")))
            }
        }
    };
    let category = q.category.clone().unwrap_or_else(|| "all".into());
    if !["all", "owner", "duty", "relation"].contains(&category.as_str()) {
        return Err(FlowError::refused("category must be all, owner, duty or relation"));
    }
    let workflows = st.engine.workflows().await?;
    let granted: Vec<i64> = workflows.iter().filter(|w| c.granted(w)).map(|w| w.id).collect();
    let mut wanted = ids(&q.workflow_ids, "workflow_ids")?;
    wanted = if wanted.is_empty() {
        granted.clone()
    } else {
        wanted.into_iter().filter(|w| granted.contains(w)).collect()
    };
    if wanted.is_empty() {
        return ok(json!({"value": [], "total": 0, "page": page, "per_page": per_page}));
    }
    let query = TicketQuery {
        sn: q.sn.clone().unwrap_or_default(),
        title: q.title.clone().unwrap_or_default(),
        created: (
            time(&q.create_start, "create_start")?,
            time(&q.create_end, "create_end")?,
        ),
        workflows: wanted,
        states: ids(&q.state_ids, "state_ids")?,
        tickets: ids(&q.ticket_ids, "ticket_ids")?,
        is_end: flag(&q.is_end, "is_end")?,
        is_rejected: flag(&q.is_rejected, "is_rejected")?,
        category,
        reverse: flag(&q.reverse, "reverse")?.unwrap_or(true),
    };
    let (tickets, total) = st.engine.tickets(&user, &query, page, per_page).await?;
    let dir = st.engine.directory().await?;
    let value: Vec<Value> = tickets
        .iter()
        .map(|t| ticket_item(&st.engine, t, workflows.iter().find(|w| w.id == t.workflow_id), &dir))
        .collect();
    ok(json!({"value": value, "total": total, "page": page, "per_page": per_page}))
}

fn request_of(m: &Map<String, Value>, skip: &[&str]) -> Result<Request, FlowError> {
    let transition_id = int(m, "transition_id")?.ok_or_else(|| FlowError::refused("transition_id is required"))?;
    let suggestion = text(m, "suggestion")?;
    let fields = m
        .iter()
        .filter(|(k, _)| {
            !skip.contains(&k.as_str()) && !["transition_id", "suggestion", "username"].contains(&k.as_str())
        })
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    Ok(Request {
        transition_id,
        suggestion,
        fields,
    })
}

async fn create_ticket<S: Store>(
    State(st): State<AppState<S>>,
    h: HeaderMap,
    b: Result<Bytes, BytesRejection>,
) -> Answer {
    let c = caller(&st, &h)?;
    let user = c.user()?.to_owned();
    let m = body(b)?;
    let workflow = int(&m, "workflow_id")?.ok_or_else(|| FlowError::refused("workflow_id is required"))?;
    let w = granted_workflow(&st, &c, workflow).await?;
    let parent = int(&m, "parent_ticket_id")?.unwrap_or(0);
    let parent_state = int(&m, "parent_ticket_state_id")?.unwrap_or(0);
    if parent != 0 {
        visible(&st, &c, parent).await?;
    }
    let req = request_of(&m, &["workflow_id", "parent_ticket_id", "parent_ticket_state_id"])?;
    let t = st
        .engine
        .create_ticket(&c.app.ticket_sn_prefix, &user, w.id, (parent, parent_state), &req)
        .await?;
    ok(json!({"ticket_id": t.id}))
}

async fn ticket_detail<S: Store>(State(st): State<AppState<S>>, h: HeaderMap, Path(id): Path<i64>) -> Answer {
    let c = caller(&st, &h)?;
    let (t, w, dir) = viewable(&st, &c, id).await?;
    let e = &st.engine;
    let state = w.state(t.state_id);
    let mut fields = vec![
        base_field("sn", "流水号", 10, Value::String(t.sn.clone()), "工单的流水号"),
        base_field(
            "state.state_name",
            "状态名",
            41,
            json!(state.map_or("", |s| s.name.as_str())),
            "工单当前状态的名称",
        ),
        base_field(
            "participant_info.participant_name",
            "当前处理人",
            50,
            participant_json(&t, &dir)["participant_name"].clone(),
            "工单的当前处理人",
        ),
        base_field(
            "workflow.workflow_name",
            "工作流名称",
            60,
            json!(w.name),
            "工单所属工作流的名称",
        ),
        base_field("creator", "创建人", 70, json!(t.creator), "工单的创建人"),
        base_field(
            "gmt_created",
            "创建时间",
            80,
            json!(stamp(e, t.created_at)),
            "工单的创建时间",
        ),
    ];
    if let Some(s) = state {
        fields.extend(field_list(&w, s, Some(&t)));
    }
    let creator = dir.user(&t.creator);
    let dept = creator.and_then(|u| dir.dept(u.dept_id));
    let creator_info = json!({
        "username": t.creator,
        "alias": creator.map_or("", |u| u.alias.as_str()),
        "email": creator.map_or("", |u| u.email.as_str()),
        "phone": creator.map_or("", |u| u.phone.as_str()),
        "is_active": creator.is_some_and(|u| u.is_active),
        "dept_info": dept.map_or(json!({}), |d| json!({
            "id": d.id,
            "name": d.name,
            "parent_dept_id": d.parent_dept_id,
            "leader": d.leader,
            "approver": d.approver,
            "leader_info": {
                "leader_username": d.leader,
                "leader_alias": dir.user(&d.leader).map_or("", |u| u.alias.as_str()),
            },
        })),
    });
    let multi: BTreeMap<&String, Value> = t
        .multi_all_person
        .iter()
        .map(|(u, h)| {
            (
                u,
                h.as_ref().map_or(
                    json!({}),
                    |h| json!({"transition_id": h.transition_id, "transition_name": h.transition_name}),
                ),
            )
        })
        .collect();
    ok(json!({"value": {
        "id": t.id,
        "sn": t.sn,
        "title": t.title,
        "workflow_id": t.workflow_id,
        "state_id": t.state_id,
        "participant_type_id": t.participant_type_id,
        "participant": t.participant,
        "relation": t.relation.join(","),
        "in_add_node": t.in_add_node,
        "add_node_man": t.add_node_man,
        "is_end": t.is_end,
        "is_rejected": t.is_rejected,
        "is_deleted": false,
        "script_run_last_result": t.script_run_last_result,
        "multi_all_person": serde_json::to_string(&multi).unwrap_or_else(|_| "{}".into()),
        "parent_ticket_id": t.parent_ticket_id,
        "parent_ticket_state_id": t.parent_ticket_state_id,
        "creator": t.creator,
        "creator_info": creator_info,
        "gmt_created": stamp(e, t.created_at),
        "gmt_modified": stamp(e, t.modified_at),
        "field_list": fields,
    }}))
}

fn base_field(key: &str, name: &str, order: i64, value: Value, description: &str) -> Value {
    json!({
        "field_key": key,
        "field_name": name,
        "field_type_id": 5,
        "field_attribute": 1,
        "field_value": value,
        "order_id": order,
        "default_value": null,
        "description": description,
        "field_choice": {},
        "label": {},
        "field_template": "",
        "boolean_field_display": {},
    })
}

async fn handle<S: Store>(
    State(st): State<AppState<S>>,
    h: HeaderMap,
    Path(id): Path<i64>,
    b: Result<Bytes, BytesRejection>,
) -> Answer {
    let c = caller(&st, &h)?;
    let user = c.user()?.to_owned();
    visible(&st, &c, id).await?;
    let req = request_of(&body(b)?, &[])?;
    st.engine
        .move_ticket(id, &user, "ticket.handle", |t, ctx| {
            t.handle(ctx, Who::Person(&user), &req)
        })
        .await?;
    ok(json!(""))
}

async fn transitions<S: Store>(State(st): State<AppState<S>>, h: HeaderMap, Path(id): Path<i64>) -> Answer {
    let c = caller(&st, &h)?;
    let (t, w, dir) = visible(&st, &c, id).await?;
    let ctx = rpa_core::flow::Ctx::new(&w, &dir, st.engine.now());
    let value: Vec<Value> = t
        .offers(&ctx, c.user()?)
        .into_iter()
        .map(|o| {
            let mut v = serde_json::to_value(&o).unwrap_or(Value::Null);
            v["alert_enable"] = json!(o.enable_alert);
            v
        })
        .collect();
    ok(json!({"value": value}))
}

async fn simple<S: Store>(
    st: &AppState<S>,
    h: &HeaderMap,
    id: i64,
    action: &'static str,
    op: impl Fn(&Ticket, &rpa_core::flow::Ctx<'_>, &str, &Map<String, Value>) -> Result<rpa_core::flow::Moved, String>,
    m: Map<String, Value>,
) -> Result<(), FlowError> {
    let c = caller(st, h)?;
    let user = c.user()?.to_owned();
    visible(st, &c, id).await?;
    st.engine
        .move_ticket(id, &user, action, |t, ctx| op(t, ctx, &user, &m))
        .await?;
    Ok(())
}

async fn accept<S: Store>(State(st): State<AppState<S>>, h: HeaderMap, Path(id): Path<i64>) -> Answer {
    simple(
        &st,
        &h,
        id,
        "ticket.accept",
        |t, ctx, u, _| t.accept(ctx, u),
        Map::new(),
    )
    .await?;
    ok(json!(true))
}

fn target(m: &Map<String, Value>) -> Result<(String, String), FlowError> {
    let target = text(m, "target_username")?;
    if target.is_empty() {
        return Err(FlowError::refused("target_username is required"));
    }
    Ok((target, text(m, "suggestion")?))
}

async fn deliver<S: Store>(
    State(st): State<AppState<S>>,
    h: HeaderMap,
    Path(id): Path<i64>,
    b: Result<Bytes, BytesRejection>,
) -> Answer {
    let m = body(b)?;
    let (to, s) = target(&m)?;
    simple(
        &st,
        &h,
        id,
        "ticket.deliver",
        move |t, ctx, u, _| t.deliver(ctx, u, &to, &s),
        m,
    )
    .await?;
    ok(json!(true))
}

async fn add_node<S: Store>(
    State(st): State<AppState<S>>,
    h: HeaderMap,
    Path(id): Path<i64>,
    b: Result<Bytes, BytesRejection>,
) -> Answer {
    let m = body(b)?;
    let (to, s) = target(&m)?;
    simple(
        &st,
        &h,
        id,
        "ticket.add_node",
        move |t, ctx, u, _| t.add_node(ctx, u, &to, &s),
        m,
    )
    .await?;
    ok(json!(true))
}

async fn add_node_end<S: Store>(
    State(st): State<AppState<S>>,
    h: HeaderMap,
    Path(id): Path<i64>,
    b: Result<Bytes, BytesRejection>,
) -> Answer {
    let m = body(b)?;
    let s = text(&m, "suggestion")?;
    simple(
        &st,
        &h,
        id,
        "ticket.add_node_end",
        move |t, ctx, u, _| t.add_node_end(ctx, u, &s),
        m,
    )
    .await?;
    ok(json!(true))
}

async fn close<S: Store>(
    State(st): State<AppState<S>>,
    h: HeaderMap,
    Path(id): Path<i64>,
    b: Result<Bytes, BytesRejection>,
) -> Answer {
    let m = body(b)?;
    let s = text(&m, "suggestion")?;
    simple(&st, &h, id, "ticket.close", move |t, ctx, u, _| t.close(ctx, u, &s), m).await?;
    ok(json!(""))
}

async fn change_state<S: Store>(
    State(st): State<AppState<S>>,
    h: HeaderMap,
    Path(id): Path<i64>,
    b: Result<Bytes, BytesRejection>,
) -> Answer {
    let m = body(b)?;
    let state = int(&m, "state_id")?.ok_or_else(|| FlowError::refused("state_id is required"))?;
    simple(
        &st,
        &h,
        id,
        "ticket.state",
        move |t, ctx, u, _| t.change_state(ctx, u, state),
        m,
    )
    .await?;
    ok(json!(""))
}

async fn retry_script<S: Store>(State(st): State<AppState<S>>, h: HeaderMap, Path(id): Path<i64>) -> Answer {
    simple(
        &st,
        &h,
        id,
        "ticket.retry_script",
        |t, ctx, u, _| t.retry_script(ctx, u),
        Map::new(),
    )
    .await?;
    Ok(axum::Json(
        json!({"code": 0, "msg": "Ticket script retry start successful", "data": ""}),
    ))
}

async fn hook_call_back<S: Store>(
    State(st): State<AppState<S>>,
    h: HeaderMap,
    Path(id): Path<i64>,
    b: Result<Bytes, BytesRejection>,
) -> Answer {
    let c = caller(&st, &h)?;
    visible(&st, &c, id).await?;
    let m = body(b)?;
    let result = match m.get("result") {
        None | Some(Value::Null) => true,
        Some(Value::Bool(b)) => *b,
        Some(v) => return Err(FlowError::refused(format!("result must be a boolean, got {v}"))),
    };
    let msg = text(&m, "msg")?;
    let values = match m.get("field_value") {
        None | Some(Value::Null) => Map::new(),
        Some(Value::Object(o)) => o.clone(),
        Some(v) => return Err(FlowError::refused(format!("field_value must be an object, got {v}"))),
    };
    st.engine
        .move_ticket(id, "hook", "ticket.hook_call_back", |t, ctx| {
            t.hook_answered(ctx, result, &msg, &values)
        })
        .await?;
    ok(json!(""))
}

async fn fields<S: Store>(
    State(st): State<AppState<S>>,
    h: HeaderMap,
    Path(id): Path<i64>,
    b: Result<Bytes, BytesRejection>,
) -> Answer {
    let c = caller(&st, &h)?;
    let user = c.user()?.to_owned();
    visible(&st, &c, id).await?;
    let m = body(b)?;
    if m.is_empty() {
        return Err(FlowError::refused("give the fields to change"));
    }
    st.engine.update_ticket_fields(id, &user, &m).await?;
    ok(json!(""))
}

async fn comment<S: Store>(
    State(st): State<AppState<S>>,
    h: HeaderMap,
    Path(id): Path<i64>,
    b: Result<Bytes, BytesRejection>,
) -> Answer {
    let c = caller(&st, &h)?;
    let user = c.user()?.to_owned();
    visible(&st, &c, id).await?;
    let s = text(&body(b)?, "suggestion")?;
    if s.is_empty() {
        return Err(FlowError::refused("suggestion is required"));
    }
    st.engine.comment_ticket(id, &user, &s).await?;
    ok(json!(""))
}

fn log_json<S: Store>(e: &Engine<S>, l: &FlowLog, w: &Workflow, dir: &Directory) -> Value {
    let who = dir.user(&l.entry.participant);
    json!({
        "id": l.id,
        "ticket_id": l.ticket_id,
        "state_id": l.entry.state_id,
        "state": {
            "state_id": l.entry.state_id,
            "state_name": w.state(l.entry.state_id).map_or("", |s| s.name.as_str()),
        },
        "transition": {
            "transition_id": l.entry.transition_id,
            "transition_name": l.entry.transition_name,
            "attribute_type_id": l.entry.attribute_type_id,
        },
        "participant": l.entry.participant,
        "participant_type_id": l.entry.participant_type_id,
        "participant_info": {
            "participant": l.entry.participant,
            "participant_type_id": l.entry.participant_type_id,
            "participant_alias": who.map_or(l.entry.participant.as_str(), |u| u.alias.as_str()),
            "participant_email": who.map_or("", |u| u.email.as_str()),
            "participant_phone": who.map_or("", |u| u.phone.as_str()),
        },
        "intervene_type_id": l.entry.intervene_type_id,
        "suggestion": l.entry.suggestion,
        "gmt_created": stamp(e, l.created_at),
        "gmt_modified": stamp(e, l.created_at),
    })
}

async fn flowlogs<S: Store>(
    State(st): State<AppState<S>>,
    h: HeaderMap,
    Path(id): Path<i64>,
    Query(q): Query<Paging>,
) -> Answer {
    let c = caller(&st, &h)?;
    let (page, per_page) = paging(&q.page, &q.per_page)?;
    let (_, w, dir) = viewable(&st, &c, id).await?;
    let mut logs = st.engine.flow_logs(id).await?;
    logs.reverse();
    let value: Vec<Value> = logs
        .iter()
        .skip((page - 1).saturating_mul(per_page))
        .take(per_page)
        .map(|l| log_json(&st.engine, l, &w, &dir))
        .collect();
    ok(json!({"total": logs.len(), "page": page, "per_page": per_page, "value": value}))
}

async fn flowsteps<S: Store>(State(st): State<AppState<S>>, h: HeaderMap, Path(id): Path<i64>) -> Answer {
    let c = caller(&st, &h)?;
    let (_, w, dir) = viewable(&st, &c, id).await?;
    let logs = st.engine.flow_logs(id).await?;
    let mut states: Vec<&FlowState> = w.states.iter().filter(|s| !s.is_hidden).collect();
    states.sort_by_key(|s| s.order_id);
    let value: Vec<Value> = states
        .into_iter()
        .map(|s| {
            json!({
                "state_id": s.id,
                "state_name": s.name,
                "order_id": s.order_id,
                "state_flow_log_list": logs
                    .iter()
                    .filter(|l| l.entry.state_id == s.id)
                    .map(|l| log_json(&st.engine, l, &w, &dir))
                    .collect::<Vec<_>>(),
            })
        })
        .collect();
    ok(json!({"value": value}))
}

#[derive(Debug, Deserialize)]
struct TicketIds {
    ticket_ids: Option<String>,
}

async fn ticket_states<S: Store>(State(st): State<AppState<S>>, h: HeaderMap, Query(q): Query<TicketIds>) -> Answer {
    let c = caller(&st, &h)?;
    let wanted = ids(&q.ticket_ids, "ticket_ids")?;
    if wanted.is_empty() {
        return Err(FlowError::refused("ticket_ids is required"));
    }
    let mut out = Map::new();
    for id in wanted {
        let (t, w, _) = viewable(&st, &c, id).await?;
        let name = w.state(t.state_id).map_or("", |s| s.name.as_str());
        out.insert(id.to_string(), json!({"state_id": t.state_id, "state_name": name}));
    }
    ok(Value::Object(out))
}

#[derive(Serialize)]
struct PersonInfo<'a> {
    username: &'a str,
    alias: &'a str,
    phone: &'a str,
    email: &'a str,
}

async fn participant_info<S: Store>(State(st): State<AppState<S>>, h: HeaderMap, Path(id): Path<i64>) -> Answer {
    let c = caller(&st, &h)?;
    let (t, _, dir) = viewable(&st, &c, id).await?;
    let names = t.participants(&dir);
    let info: Vec<PersonInfo<'_>> = names
        .iter()
        .filter_map(|n| dir.user(n))
        .map(|u| PersonInfo {
            username: &u.username,
            alias: &u.alias,
            phone: &u.phone,
            email: &u.email,
        })
        .collect();
    ok(json!({"participant_username_list": names, "participant_info_list": info}))
}
