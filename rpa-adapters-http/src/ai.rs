//! AI capabilities over HTTP (seed 001 §5.1 c; the rules are in
//! [`rpa_core::ai`]): robots call them during a job, administrators
//! register them.
//!
//! | method, path | who | body → answer |
//! |---|---|---|
//! | `POST /v1/ai/{capability}` | a robot: headers `robotId` and `robotConnectId` (or `supplierCode` and `supplierSecret`, as for files), `runInstanceId` (a job it is running) | the input bytes (an image for OCR), with their `Content-Type` → [`AiAnswer`] in the seed 001 envelope |
//! | `POST /admin/ai/capabilities` | ManageProcesses | [`CapabilityDef`] → [`CapabilityInfo`] (registers, or replaces the spec of one that exists) |
//! | `GET /admin/ai/capabilities` | ManageProcesses | → `[CapabilityInfo]` (tokens never shown) |
//! | `PUT /admin/ai/capabilities/{name}` | ManageProcesses | the spec → [`CapabilityInfo`] |
//! | `DELETE /admin/ai/capabilities/{name}` | ManageProcesses | → the retired capability: later calls get 404 |
//! | `GET /admin/ai/capabilities/{name}/usage` | ManageProcesses | → `[{day, calls, refused}]` per day |
//!
//! A robot's call answers 400 (10001) for a bad request, 401 for an
//! unknown connection, 403 when the job's process is not granted the
//! capability, 404 for an unknown or retired capability or run, 413 past
//! [`MAX_INPUT`], 429 when the day's quota is spent, 502 when the service
//! failed, 503 when it is unavailable, 504 past the capability's timeout.
//! Every admitted call is audited (`ai.call`, with its job) and counted
//! (`rpa_ai_calls_total`); a failed call changes nothing about the job.

use std::time::Instant;

use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::routing::{get, post, put};
use rpa_core::Store;
use rpa_core::ai::{Capability, Failure, Input, MAX_INPUT, Spec, Usage};
use rpa_core::model::{Actor, Permission};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

use crate::AppState;
use crate::admin::admin;
use crate::robot::{self, Reply, RobotError};
use crate::seed000::{self, BusinessError, Done, fields};

/// The robots' route (mounted with the upload body limit).
pub fn robot_router<S: Store>() -> Router<AppState<S>> {
    Router::new().route("/v1/ai/{capability}", post(call::<S>))
}

/// The administration routes.
pub fn admin_router<S: Store>() -> Router<AppState<S>> {
    Router::new()
        .route("/admin/ai/capabilities", post(register::<S>).get(list::<S>))
        .route("/admin/ai/capabilities/{name}", put(replace::<S>).delete(retire::<S>))
        .route("/admin/ai/capabilities/{name}/usage", get(usage::<S>))
}

/// A capability's answer to a robot.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AiAnswer {
    /// The capability.
    pub capability: String,
    /// Its kind (`ocr`, `speech`, `nlp`, `knowledgeGraph`, `face`).
    pub kind: String,
    /// The run the call was made for.
    pub run_instance_id: String,
    /// Calls of the capability admitted today, this one included.
    pub calls_today: u64,
    /// What the service answered (OCR: `{"text": ...}`).
    #[schema(value_type = Object)]
    pub output: Value,
}

/// Calls an AI capability for a job the robot is running.
#[utoipa::path(post, path = "/v1/ai/{capability}", tag = "robot",
    params(("capability" = String, Path, description = "the capability's name"),
        ("robotId" = String, Header, description = "the executor's id"),
        ("robotConnectId" = Option<String>, Header, description = "its connection (HTTP robots)"),
        ("supplierCode" = Option<String>, Header, description = "or its vendor, with supplierSecret (WebSocket robots)"),
        ("supplierSecret" = Option<String>, Header, description = "hex(HMAC-SHA256(vendor secret, robotId))"),
        ("runInstanceId" = String, Header, description = "a job it is running")),
    request_body(content = Vec<u8>, content_type = "application/octet-stream", description = "the input (an image for OCR)"),
    responses((status = 200, description = "the answer", body = robot::Envelope<AiAnswer>),
        (status = 403, description = "the job's process is not granted the capability", body = robot::Envelope<Object>),
        (status = 404, description = "unknown or retired capability, or unknown run", body = robot::Envelope<Object>),
        (status = 429, description = "the day's quota is spent", body = robot::Envelope<Object>),
        (status = 502, description = "the service failed", body = robot::Envelope<Object>),
        (status = 503, description = "the service is unavailable", body = robot::Envelope<Object>),
        (status = 504, description = "no answer within the capability's timeout", body = robot::Envelope<Object>)))]
pub(crate) async fn call<S: Store>(
    State(st): State<AppState<S>>,
    Path(name): Path<String>,
    h: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> robot::Answer<AiAnswer> {
    let robot = robot::robot_caller(&st, &h).await?;
    let run =
        robot::header(&h, "runInstanceId").ok_or_else(|| RobotError::bad("the runInstanceId header is required"))?;
    let run = run
        .parse()
        .map_err(|_| RobotError::NotFound(format!("run instance {run} not found")))?;
    let bytes = body.map_err(|r| RobotError::Body(r.status(), r.body_text()))?;
    if bytes.len() > MAX_INPUT {
        return Err(RobotError::Body(
            axum::http::StatusCode::PAYLOAD_TOO_LARGE,
            format!("an AI call sends at most {MAX_INPUT} bytes"),
        ));
    }
    if bytes.is_empty() {
        return Err(RobotError::bad("the body (the capability's input) is empty"));
    }
    let content_type = robot::header(&h, "content-type")
        .unwrap_or("application/octet-stream")
        .to_owned();
    let metrics = st.engine.metrics();
    let admitted = match st.engine.admit_ai_call(&robot, run, &name).await {
        Ok(a) => a,
        Err(e) => {
            if matches!(e, rpa_core::Error::Limit(_)) {
                metrics.ai_calls.add(&[&name, "refused"], 1);
            }
            return Err(e.into());
        }
    };
    let Some(service) = &st.ai else {
        metrics.ai_calls.add(&[&name, "failed"], 1);
        return Err(RobotError::Unavailable(format!(
            "capability {name}: this server calls no AI services"
        )));
    };
    let started = Instant::now();
    let input = Input {
        bytes: bytes.to_vec(),
        content_type,
    };
    let answer = service.call(&admitted.capability, input).await;
    let outcome = match &answer {
        Ok(_) => "answered",
        Err(Failure::TimedOut(_)) => "timeout",
        Err(_) => "failed",
    };
    metrics.ai_calls.add(&[&name, outcome], 1);
    tracing::info!(capability = %name, job = %admitted.job, outcome, ms = started.elapsed().as_millis() as u64, "AI call");
    let output = answer.map_err(|f| match f {
        Failure::Unavailable(why) => RobotError::Unavailable(format!("capability {name} is unavailable: {why}")),
        Failure::TimedOut(ms) => RobotError::TimedOut(format!("capability {name} gave no answer within {ms} ms")),
        Failure::Failed(why) => RobotError::Upstream(format!("capability {name} failed: {why}")),
    })?;
    Ok(Reply(AiAnswer {
        capability: name,
        kind: kind_name(&admitted.capability),
        run_instance_id: run.to_string(),
        calls_today: admitted.calls_today,
        output,
    }))
}

fn kind_name(c: &Capability) -> String {
    serde_json::to_value(c.spec.kind)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default()
}

/// A capability as an administrator gives it.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CapabilityDef {
    /// Its name: 1 to 64 letters, digits, `-`, `_` or `.` (from the path on `PUT`).
    #[serde(default)]
    pub name: String,
    /// `ocr`, `speech`, `nlp`, `knowledgeGraph` or `face`.
    pub kind: String,
    /// `{"type": "tesseract", "languages": "eng"}` or
    /// `{"type": "http", "endpoint": "http://...", "token": "..."}`.
    #[schema(value_type = Object)]
    pub backend: Value,
    /// Process names granted it (`"*"`: every process).
    #[serde(default)]
    pub processes: Vec<String>,
    /// Most calls a day (none: no limit).
    pub daily_quota: Option<u64>,
    /// How long a call may take (default 30000).
    pub timeout_ms: Option<u64>,
}

impl CapabilityDef {
    /// Its spec (checked when registered).
    pub fn spec(&self) -> Result<Spec, BusinessError> {
        let v = serde_json::json!({
            "kind": self.kind,
            "backend": self.backend,
            "processes": self.processes,
            "dailyQuota": self.daily_quota,
            "timeoutMs": self.timeout_ms.unwrap_or(rpa_core::ai::DEFAULT_TIMEOUT_MS),
        });
        serde_json::from_value(v).map_err(|e| BusinessError::refused(format!("invalid capability: {e}")))
    }
}

/// A capability as administrators see it (its token never shown).
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CapabilityInfo {
    /// Its name.
    pub name: String,
    /// Its kind.
    pub kind: String,
    /// What serves it (a token shown as `********`).
    #[schema(value_type = Object)]
    pub backend: Value,
    /// Process names granted it.
    pub processes: Vec<String>,
    /// Most calls a day.
    pub daily_quota: Option<u64>,
    /// Timeout of a call, in milliseconds.
    pub timeout_ms: u64,
    /// Retired.
    pub retired: bool,
    /// Registered or last changed (`yyyy-MM-dd HH:mm:ss`).
    pub changed_at: String,
}

fn info<S: Store>(st: &AppState<S>, c: Capability) -> CapabilityInfo {
    let c = c.redacted();
    CapabilityInfo {
        kind: kind_name(&c),
        backend: serde_json::to_value(&c.spec.backend).unwrap_or(Value::Null),
        changed_at: c.changed_at.format_local(st.engine.config().time_zone),
        name: c.name,
        processes: c.spec.processes,
        daily_quota: c.spec.daily_quota,
        timeout_ms: c.spec.timeout_ms,
        retired: c.retired,
    }
}

fn def(body: Result<Bytes, BytesRejection>) -> Result<CapabilityDef, BusinessError> {
    let f = fields(body)?;
    serde_json::from_value(Value::Object(f.0)).map_err(|e| BusinessError::refused(format!("invalid capability: {e}")))
}

/// Registers a capability, or replaces the spec of one that exists.
#[utoipa::path(post, path = "/admin/ai/capabilities", tag = "admin",
    params(("X-Access-Token" = String, Header, description = "an administrator's session")),
    request_body = CapabilityDef,
    responses((status = 200, description = "the capability", body = seed000::Envelope<CapabilityInfo>)))]
pub(crate) async fn register<S: Store>(
    State(st): State<AppState<S>>,
    h: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> seed000::Answer<CapabilityInfo> {
    let me = admin(&st, &h, Permission::ManageProcesses).await?;
    let d = def(body)?;
    let c = st
        .engine
        .register_capability(Actor::User(me.id), &d.name, d.spec()?)
        .await?;
    Ok(Done::ok(info(&st, c)))
}

/// Every capability.
#[utoipa::path(get, path = "/admin/ai/capabilities", tag = "admin",
    params(("X-Access-Token" = String, Header, description = "an administrator's session")),
    responses((status = 200, description = "the capabilities", body = seed000::Envelope<Vec<CapabilityInfo>>)))]
pub(crate) async fn list<S: Store>(
    State(st): State<AppState<S>>,
    h: HeaderMap,
) -> seed000::Answer<Vec<CapabilityInfo>> {
    let me = admin(&st, &h, Permission::ManageProcesses).await?;
    let all = st.engine.capabilities(Actor::User(me.id)).await?;
    Ok(Done::ok(all.into_iter().map(|c| info(&st, c)).collect()))
}

/// Replaces a capability's spec.
#[utoipa::path(put, path = "/admin/ai/capabilities/{name}", tag = "admin",
    params(("X-Access-Token" = String, Header, description = "an administrator's session"),
        ("name" = String, Path, description = "the capability")),
    request_body = CapabilityDef,
    responses((status = 200, description = "the capability", body = seed000::Envelope<CapabilityInfo>)))]
pub(crate) async fn replace<S: Store>(
    State(st): State<AppState<S>>,
    h: HeaderMap,
    Path(name): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> seed000::Answer<CapabilityInfo> {
    let me = admin(&st, &h, Permission::ManageProcesses).await?;
    let d = def(body)?;
    if !d.name.is_empty() && d.name != name {
        return Err(BusinessError::refused("a capability cannot be renamed"));
    }
    let c = st
        .engine
        .register_capability(Actor::User(me.id), &name, d.spec()?)
        .await?;
    Ok(Done::ok(info(&st, c)))
}

/// Retires a capability: later calls are refused.
#[utoipa::path(delete, path = "/admin/ai/capabilities/{name}", tag = "admin",
    params(("X-Access-Token" = String, Header, description = "an administrator's session"),
        ("name" = String, Path, description = "the capability")),
    responses((status = 200, description = "the retired capability", body = seed000::Envelope<CapabilityInfo>)))]
pub(crate) async fn retire<S: Store>(
    State(st): State<AppState<S>>,
    h: HeaderMap,
    Path(name): Path<String>,
) -> seed000::Answer<CapabilityInfo> {
    let me = admin(&st, &h, Permission::ManageProcesses).await?;
    let c = st.engine.retire_capability(Actor::User(me.id), &name).await?;
    Ok(Done::ok(info(&st, c)))
}

/// One day of a capability's calls.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct UsageDay {
    /// The day, `yyyy-MM-dd` in the server's time zone.
    pub day: String,
    /// Calls admitted.
    pub calls: u64,
    /// Calls refused because the quota was spent.
    pub refused: u64,
}

/// A capability's calls per day.
#[utoipa::path(get, path = "/admin/ai/capabilities/{name}/usage", tag = "admin",
    params(("X-Access-Token" = String, Header, description = "an administrator's session"),
        ("name" = String, Path, description = "the capability")),
    responses((status = 200, description = "calls per day, oldest first", body = seed000::Envelope<Vec<UsageDay>>)))]
pub(crate) async fn usage<S: Store>(
    State(st): State<AppState<S>>,
    h: HeaderMap,
    Path(name): Path<String>,
) -> seed000::Answer<Vec<UsageDay>> {
    let me = admin(&st, &h, Permission::ManageProcesses).await?;
    let days = st.engine.capability_usage(Actor::User(me.id), &name).await?;
    Ok(Done::ok(days.into_iter().map(day).collect()))
}

fn day(u: Usage) -> UsageDay {
    let date = chrono::DateTime::from_timestamp(u.day.saturating_mul(86_400), 0)
        .map(|d| d.format("%Y-%m-%d").to_string())
        .unwrap_or_default();
    UsageDay {
        day: date,
        calls: u.calls,
        refused: u.refused,
    }
}
