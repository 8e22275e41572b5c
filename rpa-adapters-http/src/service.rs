//! Customer service over HTTP (seed 001 §6.4.2; the rules are in
//! [`rpa_core::service`]): a process's page in the console reports a
//! problem and follows its handling. The tickets are those of the shipped
//! `customer-service` workflow: loonflow clients see and handle them
//! through `/api/v1.0` like any other.
//!
//! | method, path | who | body → answer (seed 000 envelope) |
//! |---|---|---|
//! | `GET /console/api/processes/{processId}/problems` | a session that may see the process | → `[ProblemRow]`, newest first, with the transitions the caller may take |
//! | `POST /console/api/processes/{processId}/problems` | a session that may see the process | `{title?, problem}` → the [`ProblemRow`] (in Handling, at the `handlers` field's people: `admin` unless the workflow says otherwise) |
//! | `POST /console/api/tickets/{id}/handle` | the ticket's participant | `{transitionId, suggestion?, fields?}` → the ticket as a [`ProblemRow`] (any workflow's ticket, as seed 004's handle) |
//!
//! Refusals (an empty problem, a process the caller may not see, a
//! transition the caller may not take) answer HTTP 200 with `code` 500 and
//! the reason in `message`.

use std::collections::HashMap;

use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::routing::{get, post};
use rpa_core::Store;
use rpa_core::flow::{Ctx, Request, Ticket, Who, Workflow};
use rpa_core::model::{Process, User};
use rpa_core::service::{FIELD_PROBLEM, FIELD_PROCESS, FIELD_RESOLUTION};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use utoipa::ToSchema;

use crate::AppState;
use crate::admin::process_id;
use crate::console::visible;
use crate::seed000::{Answer, BusinessError, Done, Envelope, fields, session};

/// The routes.
pub fn router<S: Store>() -> Router<AppState<S>> {
    Router::new()
        .route(
            "/console/api/processes/{process_id}/problems",
            get(problems::<S>).post(report::<S>),
        )
        .route("/console/api/tickets/{id}/handle", post(handle::<S>))
}

/// A transition the caller may take.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct OfferRow {
    /// `transition_id`.
    pub transition_id: i64,
    /// Its name.
    pub name: String,
}

/// A problem report (a ticket).
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ProblemRow {
    /// The ticket's id.
    pub id: i64,
    /// Its serial number.
    pub sn: String,
    /// Its title.
    pub title: String,
    /// The process's name.
    pub process: String,
    /// What was reported.
    pub problem: String,
    /// The handler's answer, once given.
    pub resolution: Option<String>,
    /// Its state's name.
    pub state: String,
    /// Who may act on it now.
    pub participant: String,
    /// Who reported it.
    pub creator: String,
    /// Closed.
    pub is_end: bool,
    /// Created (epoch ms).
    pub created_at: i64,
    /// What the caller may do with it now.
    pub offers: Vec<OfferRow>,
}

async fn row<S: Store>(st: &AppState<S>, user: &User, t: Ticket, w: &Workflow) -> Result<ProblemRow, BusinessError> {
    let dir = st.engine.directory().await?;
    let ctx = Ctx::new(w, &dir, st.engine.now());
    let offers = t
        .offers(&ctx, &user.name)
        .into_iter()
        .map(|o| OfferRow {
            transition_id: o.transition_id,
            name: o.transition_name,
        })
        .collect();
    let text = |k: &str| t.fields.get(k).and_then(Value::as_str).map(str::to_owned);
    Ok(ProblemRow {
        state: w
            .state(t.state_id)
            .map_or_else(|| t.state_id.to_string(), |s| s.name.clone()),
        process: text(FIELD_PROCESS).unwrap_or_default(),
        problem: text(FIELD_PROBLEM).unwrap_or_default(),
        resolution: text(FIELD_RESOLUTION),
        id: t.id,
        sn: t.sn,
        title: t.title,
        participant: t.participant,
        creator: t.creator,
        is_end: t.is_end,
        created_at: t.created_at.0,
        offers,
    })
}

/// The process `pid` if `user` may see it.
async fn process_of<S: Store>(st: &AppState<S>, user: &User, pid: &str) -> Result<Process, BusinessError> {
    let key = process_id(pid)?;
    visible(st, user)
        .await?
        .into_iter()
        .find(|p| p.key == key)
        .ok_or_else(|| BusinessError::refused(format!("process {pid} not found")))
}

/// A process's problem reports, newest first.
#[utoipa::path(get, path = "/console/api/processes/{processId}/problems", tag = "console",
    params(("X-Access-Token" = String, Header, description = "a session that may see the process"),
        ("processId" = String, Path, description = "the process")),
    responses((status = 200, description = "its reports", body = Envelope<Vec<ProblemRow>>)))]
pub(crate) async fn problems<S: Store>(
    State(st): State<AppState<S>>,
    h: HeaderMap,
    Path(pid): Path<String>,
) -> Answer<Vec<ProblemRow>> {
    let user = session(&st, &h).await?;
    let p = process_of(&st, &user, &pid).await?;
    let mut out = Vec::new();
    let mut workflows: HashMap<i64, std::sync::Arc<Workflow>> = HashMap::new();
    for t in st.engine.process_problems(&p).await? {
        let w = match workflows.get(&t.workflow_id) {
            Some(w) => w.clone(),
            None => {
                let w = st.engine.workflow(t.workflow_id).await?;
                workflows.insert(t.workflow_id, w.clone());
                w
            }
        };
        out.push(row(&st, &user, t, &w).await?);
    }
    Ok(Done::ok(out))
}

/// What a report says.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReportDef {
    /// A title (default: "Problem with <process>").
    #[serde(default)]
    pub title: String,
    /// What went wrong.
    pub problem: String,
}

/// Reports a problem with a process.
#[utoipa::path(post, path = "/console/api/processes/{processId}/problems", tag = "console",
    params(("X-Access-Token" = String, Header, description = "a session that may see the process"),
        ("processId" = String, Path, description = "the process")),
    request_body = ReportDef,
    responses((status = 200, description = "the report", body = Envelope<ProblemRow>)))]
pub(crate) async fn report<S: Store>(
    State(st): State<AppState<S>>,
    h: HeaderMap,
    Path(pid): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> Answer<ProblemRow> {
    let user = session(&st, &h).await?;
    let p = process_of(&st, &user, &pid).await?;
    let f = fields(body)?;
    let def: ReportDef = serde_json::from_value(Value::Object(f.0))
        .map_err(|e| BusinessError::refused(format!("invalid report: {e}")))?;
    let t = st.engine.report_problem(&user, &p, &def.title, &def.problem).await?;
    let w = st.engine.workflow(t.workflow_id).await?;
    Ok(Done::ok(row(&st, &user, t, &w).await?))
}

/// A move of a ticket.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct HandleDef {
    /// The transition to take (one of the ticket's offers).
    pub transition_id: i64,
    /// A comment.
    #[serde(default)]
    pub suggestion: String,
    /// Field values the state asks for.
    #[serde(default)]
    #[schema(value_type = Object)]
    pub fields: Map<String, Value>,
}

/// Handles a ticket as the session's user.
#[utoipa::path(post, path = "/console/api/tickets/{id}/handle", tag = "console",
    params(("X-Access-Token" = String, Header, description = "the ticket's participant"),
        ("id" = i64, Path, description = "the ticket")),
    request_body = HandleDef,
    responses((status = 200, description = "the ticket after", body = Envelope<ProblemRow>)))]
pub(crate) async fn handle<S: Store>(
    State(st): State<AppState<S>>,
    h: HeaderMap,
    Path(id): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> Answer<ProblemRow> {
    let user = session(&st, &h).await?;
    let id: i64 = id
        .parse()
        .map_err(|_| BusinessError::refused(format!("ticket {id} not found")))?;
    let f = fields(body)?;
    let def: HandleDef = serde_json::from_value(Value::Object(f.0))
        .map_err(|e| BusinessError::refused(format!("invalid handling: {e}")))?;
    let req = Request {
        transition_id: def.transition_id,
        suggestion: def.suggestion,
        fields: def.fields,
    };
    let name = user.name.clone();
    let t = st
        .engine
        .move_ticket(id, &name, "ticket.handle", |t, ctx| {
            t.handle(ctx, Who::Person(&name), &req)
        })
        .await?;
    let w = st.engine.workflow(t.workflow_id).await?;
    Ok(Done::ok(row(&st, &user, t, &w).await?))
}
