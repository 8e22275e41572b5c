//! The scheduling centre's administration over HTTP (seed 001 §6.1.2 c,
//! §6.5): queue triggers. Same sessions, permissions, envelope and errors as
//! [`crate::admin`].
//!
//! | method, path | permission | body / answer |
//! |---|---|---|
//! | `GET /admin/processes/{processId}/trigger` | ManageProcesses | `{processId, queueTrigger, waiting, active}` |
//! | `PUT /admin/processes/{processId}/trigger` | ManageProcesses | `{minItems, maxConcurrent}` → the same; items it lets start get jobs at once |
//! | `DELETE /admin/processes/{processId}/trigger` | ManageProcesses | → the same: every waiting item gets its job |

use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::routing::get;
use rpa_core::model::{Actor, Permission, Process};
use rpa_core::trigger::TriggerState;
use rpa_core::{Key, Store};
use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;

use crate::AppState;
use crate::admin::{admin, process_id};
use crate::config::QueueTriggerDef;
use crate::seed000::{Answer, BusinessError, Done, Envelope, fields};

/// The scheduling centre's routes.
pub fn router<S: Store>() -> Router<AppState<S>> {
    Router::new().route(
        "/admin/processes/{processId}/trigger",
        get(get_trigger::<S>).put(put_trigger::<S>).delete(delete_trigger::<S>),
    )
}

/// A queue trigger and its counts.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TriggerInfo {
    /// The process.
    #[schema(value_type = String)]
    pub process_id: Key,
    /// Its trigger (null: none; each item starts its own job).
    pub queue_trigger: Option<QueueTriggerDef>,
    /// Items waiting for a job.
    pub waiting: u32,
    /// Trigger jobs pending or running.
    pub active: u32,
}

fn trigger_info(p: &Process, s: &TriggerState) -> TriggerInfo {
    TriggerInfo {
        process_id: p.key,
        queue_trigger: p.spec.trigger.map(Into::into),
        waiting: s.waiting,
        active: s.active,
    }
}

/// A process's queue trigger and its counts (permission ManageProcesses).
#[utoipa::path(get, path = "/admin/processes/{processId}/trigger", tag = "admin",
    params(("X-Access-Token" = String, Header, description = "an administrator's session"),
        ("processId" = String, Path, description = "the process")),
    responses((status = 200, description = "the trigger", body = Envelope<TriggerInfo>)))]
pub(crate) async fn get_trigger<S: Store>(
    State(st): State<AppState<S>>,
    h: HeaderMap,
    Path(pid): Path<String>,
) -> Answer<TriggerInfo> {
    let me = admin(&st, &h, Permission::ManageProcesses).await?;
    let (p, s) = st.engine.queue_trigger(Actor::User(me.id), process_id(&pid)?).await?;
    Ok(Done::ok(trigger_info(&p, &s)))
}

/// Sets a Queue process's trigger (permission ManageProcesses).
#[utoipa::path(put, path = "/admin/processes/{processId}/trigger", tag = "admin",
    params(("X-Access-Token" = String, Header, description = "an administrator's session"),
        ("processId" = String, Path, description = "the process")),
    request_body = QueueTriggerDef,
    responses((status = 200, description = "the trigger", body = Envelope<TriggerInfo>)))]
pub(crate) async fn put_trigger<S: Store>(
    State(st): State<AppState<S>>,
    h: HeaderMap,
    Path(pid): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> Answer<TriggerInfo> {
    let me = admin(&st, &h, Permission::ManageProcesses).await?;
    let key = process_id(&pid)?;
    let f = fields(body)?;
    let def: QueueTriggerDef = serde_json::from_value(Value::Object(f.0))
        .map_err(|e| BusinessError::refused(format!("invalid queue trigger: {e}")))?;
    let (p, s) = st
        .engine
        .set_queue_trigger(Actor::User(me.id), key, Some(def.into()))
        .await?;
    Ok(Done::ok(trigger_info(&p, &s)))
}

/// Removes a process's trigger: every waiting item gets its job (permission ManageProcesses).
#[utoipa::path(delete, path = "/admin/processes/{processId}/trigger", tag = "admin",
    params(("X-Access-Token" = String, Header, description = "an administrator's session"),
        ("processId" = String, Path, description = "the process")),
    responses((status = 200, description = "the process without a trigger", body = Envelope<TriggerInfo>)))]
pub(crate) async fn delete_trigger<S: Store>(
    State(st): State<AppState<S>>,
    h: HeaderMap,
    Path(pid): Path<String>,
) -> Answer<TriggerInfo> {
    let me = admin(&st, &h, Permission::ManageProcesses).await?;
    let (p, s) = st
        .engine
        .set_queue_trigger(Actor::User(me.id), process_id(&pid)?, None)
        .await?;
    Ok(Done::ok(trigger_info(&p, &s)))
}
