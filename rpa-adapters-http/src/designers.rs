//! Designers and cloud designer scheduling over HTTP (seed 001 §6.2.3;
//! the rules are in [`rpa_core::designer`]). A designer speaks seed 001's
//! robot style (headers for its identity, envelope `{successful,
//! resultHint, resultValue}`, the same vendor proof); people ask for one
//! with their session (seed 000 envelope).
//!
//! | method, path | who | body → answer |
//! |---|---|---|
//! | `POST /design/connect/register` | a designer: header `designerId` | `{supplierCode, supplierSecret, version?, host?}` → `{designerConnectId, state, holder}` (401 for a wrong proof, 400 for a missing field) |
//! | `POST /design/connect/heartbeat` | headers `designerId`, `designerConnectId` | `{inUse?}` (its holder works in it now) → `{state, holder}` (401 for an unknown connection: register again) |
//! | `GET /admin/designers` | a session | → `[DesignerRow]`: every designer, its state and who holds it |
//! | `POST /admin/designers/allocate` | a session | → the [`DesignerRow`] the caller now holds (the one it held already, else the idle one that waited longest); none idle: `code` 500 |
//! | `POST /admin/designers/{designerId}/release` | its holder, or ManageRobots | → the designer, Idle again |
//!
//! A designer held but unused (no heartbeat with `inUse`) for 30 minutes is
//! reclaimed; one silent for 90 s is Offline and its holder loses it. Each
//! registration, allocation, release, reclaim and loss is audited.

use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::routing::{get, post};
use rpa_core::Store;
use rpa_core::designer::Designer;
use rpa_core::ids::Key;
use serde::Serialize;
use utoipa::ToSchema;

use crate::AppState;
use crate::robot::{self, Reply, RobotError};
use crate::seed000::{self, Done, session};

/// The routes.
pub fn router<S: Store>() -> Router<AppState<S>> {
    Router::new()
        .route("/design/connect/register", post(register::<S>))
        .route("/design/connect/heartbeat", post(heartbeat::<S>))
        .route("/admin/designers", get(list::<S>))
        .route("/admin/designers/allocate", post(allocate::<S>))
        .route("/admin/designers/{designer_id}/release", post(release::<S>))
}

/// A designer's registration.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DesignerRegistered {
    /// The connection its heartbeats name.
    #[schema(value_type = String)]
    pub designer_connect_id: Key,
    /// `Idle` or `Allocated` (a designer registering again keeps its holder).
    pub state: &'static str,
    /// Who holds it.
    pub holder: Option<String>,
}

/// Where a designer stands, as its heartbeat hears.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DesignerBeat {
    /// `Idle` or `Allocated`.
    pub state: &'static str,
    /// Who holds it.
    pub holder: Option<String>,
}

fn designer_id(h: &HeaderMap) -> Result<&str, RobotError> {
    robot::header(h, "designerId").ok_or_else(|| RobotError::Unauthorized("the designerId header is required".into()))
}

/// Registers a designer with its vendor's proof.
#[utoipa::path(post, path = "/design/connect/register", tag = "robot",
    params(("designerId" = String, Header, description = "the designer's own id")),
    request_body(content = Object, description = "{supplierCode, supplierSecret = hex(HMAC-SHA256(vendor secret, designerId)), version?, host?}"),
    responses((status = 200, description = "registered", body = robot::Envelope<DesignerRegistered>),
        (status = 401, description = "a wrong proof", body = robot::Envelope<Object>)))]
pub(crate) async fn register<S: Store>(
    State(st): State<AppState<S>>,
    h: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> robot::Answer<DesignerRegistered> {
    let code = designer_id(&h)?;
    let b = robot::fields(body)?;
    let supplier = b.str("supplierCode").map_err(RobotError::from)?;
    let proof = b.str("supplierSecret").map_err(RobotError::from)?;
    let version = b.opt_str("version").map_err(RobotError::from)?.map(str::to_owned);
    let host = b.opt_str("host").map_err(RobotError::from)?.map(str::to_owned);
    let d = st
        .engine
        .register_designer(code, supplier, proof, version, host)
        .await?;
    tracing::info!(designer = code, "designer registered");
    Ok(Reply(DesignerRegistered {
        designer_connect_id: d.connect,
        state: d.state.as_str(),
        holder: d.holder,
    }))
}

/// A designer's heartbeat.
#[utoipa::path(post, path = "/design/connect/heartbeat", tag = "robot",
    params(("designerId" = String, Header, description = "the designer's own id"),
        ("designerConnectId" = String, Header, description = "from register")),
    request_body(content = Object, description = "{inUse?: bool}"),
    responses((status = 200, description = "where it stands", body = robot::Envelope<DesignerBeat>),
        (status = 401, description = "unknown designer or connection", body = robot::Envelope<Object>)))]
pub(crate) async fn heartbeat<S: Store>(
    State(st): State<AppState<S>>,
    h: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> robot::Answer<DesignerBeat> {
    let code = designer_id(&h)?;
    let connect = robot::header(&h, "designerConnectId")
        .and_then(|c| c.parse::<Key>().ok())
        .ok_or_else(|| RobotError::Unauthorized("a valid designerConnectId header is required".into()))?;
    let b = robot::fields(body)?;
    let in_use = b.opt_bool("inUse").map_err(RobotError::from)?.unwrap_or(false);
    let d = st.engine.designer_heartbeat(code, connect, in_use).await?;
    Ok(Reply(DesignerBeat {
        state: d.state.as_str(),
        holder: d.holder,
    }))
}

/// A designer as people see it.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DesignerRow {
    /// Its own id.
    pub designer_id: String,
    /// Its vendor.
    pub vendor: String,
    /// The design tool's version.
    pub version: Option<String>,
    /// Where to reach it.
    pub host: Option<String>,
    /// `Idle`, `Allocated` or `Offline`.
    pub state: &'static str,
    /// Who holds it.
    pub holder: Option<String>,
    /// Since when (the server's zone).
    pub allocated_time: Option<String>,
    /// Its last heartbeat.
    pub last_heartbeat: String,
}

fn row<S: Store>(st: &AppState<S>, d: Designer) -> DesignerRow {
    let tz = st.engine.config().time_zone;
    DesignerRow {
        designer_id: d.code,
        vendor: d.vendor,
        version: d.client_version,
        host: d.host,
        state: d.state.as_str(),
        holder: d.holder,
        allocated_time: d.allocated_at.map(|t| t.format_local(tz)),
        last_heartbeat: d.last_heard.format_local(tz),
    }
}

/// Every designer and who holds it.
#[utoipa::path(get, path = "/admin/designers", tag = "admin",
    params(("X-Access-Token" = String, Header, description = "a session")),
    responses((status = 200, description = "the designers", body = seed000::Envelope<Vec<DesignerRow>>)))]
pub(crate) async fn list<S: Store>(State(st): State<AppState<S>>, h: HeaderMap) -> seed000::Answer<Vec<DesignerRow>> {
    session(&st, &h).await?;
    let all = st.engine.designers().await?;
    Ok(Done::ok(all.into_iter().map(|d| row(&st, d)).collect()))
}

/// A designer for the caller.
#[utoipa::path(post, path = "/admin/designers/allocate", tag = "admin",
    params(("X-Access-Token" = String, Header, description = "a session")),
    responses((status = 200, description = "the designer the caller holds", body = seed000::Envelope<DesignerRow>)))]
pub(crate) async fn allocate<S: Store>(State(st): State<AppState<S>>, h: HeaderMap) -> seed000::Answer<DesignerRow> {
    let user = session(&st, &h).await?;
    let d = st.engine.allocate_designer(&user).await?;
    Ok(Done::ok(row(&st, d)))
}

/// Gives a designer back.
#[utoipa::path(post, path = "/admin/designers/{designerId}/release", tag = "admin",
    params(("X-Access-Token" = String, Header, description = "its holder's session, or ManageRobots"),
        ("designerId" = String, Path, description = "the designer")),
    responses((status = 200, description = "the designer, Idle", body = seed000::Envelope<DesignerRow>)))]
pub(crate) async fn release<S: Store>(
    State(st): State<AppState<S>>,
    h: HeaderMap,
    Path(code): Path<String>,
) -> seed000::Answer<DesignerRow> {
    let user = session(&st, &h).await?;
    let d = st.engine.release_designer(&user, &code).await?;
    Ok(Done::ok(row(&st, d)))
}
