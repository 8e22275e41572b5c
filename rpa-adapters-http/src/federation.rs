//! Two-level collaboration (seed 001 §6.5.3) over HTTP: what a parent
//! serves its children, and what its administrators read. Envelope and
//! errors of seed 000 ([`crate::seed000`]).
//!
//! | method, path | who | body / answer |
//! |---|---|---|
//! | `POST /federation/v1/results` | a child: `X-Rpa-Child: <name>` and `X-Rpa-Signature: t=<unix s>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>` | `{results: [{seq, process, day, state, durationMs?}]}` in increasing `seq` → `{child, seq, results}`: where the child's reports stand (results at or before a `seq` already applied count once) |
//! | `GET /federation/v1/catalogue` | a child (signed over an empty body) | the published listings with their process definitions: `[{listingId, name, description, tags, version, sha256, definition}]` |
//! | `GET /federation/v1/catalogue/{listingId}/package` | a child (signed over an empty body) | the listing's package bytes, with `X-Checksum-Sha256` |
//! | `GET /admin/children` | ViewAudit | `[{child, seq, results, lastReport, figures: [{process, day, successful, faulted, stopped, canceled, averageMs}]}]` |
//!
//! A child is known by the parent's configuration (`children: [{name,
//! secret}]`); a report with an unknown child, a bad signature or one
//! older than five minutes answers 401, and nothing is written.

use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use rpa_core::Store;
use rpa_core::federation::RunResult;
use rpa_core::model::{Actor, Permission};
use serde::{Deserialize, Serialize};

use crate::AppState;
use crate::admin::admin;
use crate::seed000::{Answer, BusinessError, Done, Envelope};
use utoipa::ToSchema;

/// How old a signed report may be, in seconds.
const TOLERANCE_S: i64 = 300;

/// A child a parent accepts reports from.
#[derive(Clone)]
pub struct ChildAccount {
    /// Its name.
    pub name: String,
    /// The secret its reports are signed with.
    pub secret: String,
}

impl std::fmt::Debug for ChildAccount {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChildAccount")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

/// The routes.
pub fn router<S: Store>() -> Router<AppState<S>> {
    Router::new()
        .route("/federation/v1/results", post(results::<S>))
        .route("/federation/v1/catalogue", get(catalogue::<S>))
        .route("/federation/v1/catalogue/{listingId}/package", get(package::<S>))
        .route("/admin/children", get(children::<S>))
}

/// A report's body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Report {
    results: Vec<RunResult>,
}

/// Where a child's reports stand.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Received {
    /// The child.
    pub child: String,
    /// The last sequence number applied.
    pub seq: u64,
    /// Results applied in all.
    pub results: u64,
}

/// A child's report of its ended jobs (signed with the child's secret).
#[utoipa::path(post, path = "/federation/v1/results", tag = "federation",
    params(("X-Rpa-Child" = String, Header, description = "the child's name"),
        ("X-Rpa-Signature" = String, Header, description = "t=<unix seconds>,v1=<hex HMAC-SHA256(secret, \"<t>.<body>\")>")),
    request_body(content = Object, description = "`{results: [{seq, process, day, state, durationMs?}]}`, increasing seq"),
    responses((status = 200, description = "where the child's reports stand", body = Envelope<Received>),
        (status = 401, description = "unknown child or bad signature", body = Envelope<Object>)))]
pub(crate) async fn results<S: Store>(
    State(st): State<AppState<S>>,
    h: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Answer<Received> {
    let body = body.map_err(|r| BusinessError::refused(format!("cannot read the report: {}", r.body_text())))?;
    let child = signed_child(&st, &h, &body)?;
    let report: Report =
        serde_json::from_slice(&body).map_err(|e| BusinessError::refused(format!("invalid report: {e}")))?;
    let cursor = st.engine.receive_results(&child, &report.results).await?;
    Ok(Done::ok(Received {
        child,
        seq: cursor.seq,
        results: cursor.results,
    }))
}

/// The child a request comes from, if it is signed with that child's secret.
fn signed_child<S: Store>(st: &AppState<S>, h: &HeaderMap, body: &[u8]) -> Result<String, BusinessError> {
    let header = |name: &str| {
        h.get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .trim()
            .to_owned()
    };
    let child = header("x-rpa-child");
    let now = st.engine.now().0.div_euclid(1000);
    let known = st.settings.children.iter().find(|c| c.name == child);
    let signed = known.is_some_and(|c| {
        rpa_core::auth::verify_delivery(c.secret.as_bytes(), &header("x-rpa-signature"), body, now, TOLERANCE_S)
    });
    if !signed {
        tracing::warn!(child = %child, "a child's request refused: unknown child or bad signature");
        return Err(BusinessError::Unauthenticated);
    }
    Ok(child)
}

/// A listing as a parent offers it to its children.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Offered {
    /// Its id.
    pub listing_id: i64,
    /// Its name.
    pub name: String,
    /// What it does.
    pub description: String,
    /// Its tags.
    pub tags: Vec<String>,
    /// The package version published.
    pub version: String,
    /// The package's SHA-256.
    pub sha256: String,
    /// The published process's definition (this server's process format).
    #[schema(value_type = Object)]
    pub definition: serde_json::Value,
}

/// The published listings, for a child (signed).
#[utoipa::path(get, path = "/federation/v1/catalogue", tag = "federation",
    params(("X-Rpa-Child" = String, Header, description = "the child's name"),
        ("X-Rpa-Signature" = String, Header, description = "signed over an empty body")),
    responses((status = 200, description = "the listings", body = Envelope<Vec<Offered>>)))]
pub(crate) async fn catalogue<S: Store>(State(st): State<AppState<S>>, h: HeaderMap) -> Answer<Vec<Offered>> {
    signed_child(&st, &h, b"")?;
    let processes = st.engine.processes().await?;
    let mut out = Vec::new();
    for l in st.engine.search_catalogue("", None).await? {
        let Some(p) = processes.iter().find(|p| p.id.0 == l.process) else {
            continue;
        };
        out.push(Offered {
            listing_id: l.id,
            name: l.name,
            description: l.description,
            tags: l.tags,
            version: l.package_version,
            sha256: l.sha256,
            definition: serde_json::to_value(&*p.spec).unwrap_or_default(),
        });
    }
    Ok(Done::ok(out))
}

/// A listing's package bytes, for a child (signed).
#[utoipa::path(get, path = "/federation/v1/catalogue/{listingId}/package", tag = "federation",
    params(("X-Rpa-Child" = String, Header, description = "the child's name"),
        ("X-Rpa-Signature" = String, Header, description = "signed over an empty body"),
        ("listingId" = i64, Path, description = "the listing")),
    responses((status = 200, description = "the bytes", content_type = "application/octet-stream", body = Vec<u8>)))]
pub(crate) async fn package<S: Store>(
    State(st): State<AppState<S>>,
    h: HeaderMap,
    Path(id): Path<String>,
) -> Result<Response, BusinessError> {
    signed_child(&st, &h, b"")?;
    let id: i64 = id
        .trim()
        .parse()
        .map_err(|_| BusinessError::refused(format!("listing {id} not found")))?;
    let l = st.engine.listing(id).await?;
    match st.files.get(l.file).await {
        Ok(Some(bytes)) => Ok((
            [
                (header::CONTENT_TYPE, "application/octet-stream".to_owned()),
                (header::HeaderName::from_static("x-checksum-sha256"), l.sha256),
            ],
            bytes,
        )
            .into_response()),
        Ok(None) => Err(BusinessError::refused(format!("listing {id}: its package is gone"))),
        Err(e) => {
            tracing::error!(error = %e, "cannot read a published package");
            Err(BusinessError::Internal)
        }
    }
}

/// A child's figures for one process on one day.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Figures {
    /// The process's name on the child.
    pub process: String,
    /// The day, in the child's calendar.
    pub day: String,
    /// Jobs ended Successful.
    pub successful: u64,
    /// Jobs ended Faulted.
    pub faulted: u64,
    /// Jobs ended Stopped.
    pub stopped: u64,
    /// Jobs ended Canceled.
    pub canceled: u64,
    /// Average duration of the jobs that ran, in milliseconds.
    pub average_ms: Option<i64>,
}

/// A child and its figures.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Child {
    /// Its name.
    pub child: String,
    /// The last sequence number applied.
    pub seq: u64,
    /// Results applied in all.
    pub results: u64,
    /// When its last report arrived (the server's zone).
    pub last_report: Option<String>,
    /// By day (newest first), then process.
    pub figures: Vec<Figures>,
}

/// The children that reported and their figures (permission ViewAudit).
#[utoipa::path(get, path = "/admin/children", tag = "federation",
    params(("X-Access-Token" = String, Header, description = "an administrator's session")),
    responses((status = 200, description = "the children", body = Envelope<Vec<Child>>)))]
pub(crate) async fn children<S: Store>(State(st): State<AppState<S>>, h: HeaderMap) -> Answer<Vec<Child>> {
    let me = admin(&st, &h, Permission::ViewAudit).await?;
    let zone = st.engine.config().time_zone;
    let mut out = Vec::new();
    for c in st.engine.children(Actor::User(me.id)).await? {
        let mut figures: Vec<Figures> = st
            .engine
            .child_figures(Actor::User(me.id), &c.child)
            .await?
            .into_iter()
            .map(|f| Figures {
                average_ms: (f.tally.timed > 0).then(|| f.tally.duration_ms / f.tally.timed as i64),
                process: f.process,
                day: f.day,
                successful: f.tally.successful,
                faulted: f.tally.faulted,
                stopped: f.tally.stopped,
                canceled: f.tally.canceled,
            })
            .collect();
        figures.sort_by(|a, b| b.day.cmp(&a.day).then_with(|| a.process.cmp(&b.process)));
        out.push(Child {
            child: c.child,
            seq: c.seq,
            results: c.results,
            last_report: c.last_report.map(|t| t.format_local(zone)),
            figures,
        });
    }
    Ok(Done::ok(out))
}
