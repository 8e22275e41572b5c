//! The process catalogue over HTTP (seed 001 §6.1.1, §6.2.2 a). Envelope
//! and errors of seed 000 ([`crate::seed000`]).
//!
//! | method, path | permission | body / answer |
//! |---|---|---|
//! | `POST /admin/catalogue` | ManageProcesses | `{processId, name?, description?, tags?: [..]}` → the listing of the process's current package version |
//! | `GET /admin/catalogue?q=&tag=` | any session | published listings matching every word of `q` (name, description, tags) and `tag`, by name |
//! | `DELETE /admin/catalogue/{listingId}` | ManageProcesses | unpublished; processes subscribed keep running |
//! | `POST /admin/catalogue/{listingId}/subscribe` | ManageProcesses | `{name?, folder?}` → the new process (running the published package, granted to the caller) |

use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::routing::{delete, get, post};
use rpa_core::Store;
use rpa_core::catalogue::Listing;
use rpa_core::model::{Actor, Permission};
use serde::Serialize;
use serde_json::Value;
use std::collections::HashMap;
use utoipa::ToSchema;

use crate::AppState;
use crate::admin::{ProcessDetails, admin, process_details, process_id};
use crate::seed000::{Answer, BusinessError, Done, Envelope, fields, session};

/// The routes.
pub fn router<S: Store>() -> Router<AppState<S>> {
    Router::new()
        .route("/admin/catalogue", post(publish::<S>).merge(get(search::<S>)))
        .route("/admin/catalogue/{listingId}", delete(unpublish::<S>))
        .route("/admin/catalogue/{listingId}/subscribe", post(subscribe::<S>))
}

/// A listing.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ListingInfo {
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
    /// Who published it.
    pub published_by: String,
    /// When (the server's zone).
    pub publish_time: String,
    /// Processes made from it by subscribing.
    pub subscriptions: u64,
}

fn info<S: Store>(st: &AppState<S>, l: Listing) -> ListingInfo {
    ListingInfo {
        listing_id: l.id,
        name: l.name,
        description: l.description,
        tags: l.tags,
        version: l.package_version,
        sha256: l.sha256,
        published_by: l.published_by,
        publish_time: l.published_at.format_local(st.engine.config().time_zone),
        subscriptions: l.subscriptions,
    }
}

fn listing_id(s: &str) -> Result<i64, BusinessError> {
    s.trim()
        .parse()
        .map_err(|_| BusinessError::refused(format!("listing {s} not found")))
}

fn strings(v: Option<&Value>, what: &str) -> Result<Vec<String>, BusinessError> {
    match v {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::Array(a)) => a
            .iter()
            .map(|x| {
                x.as_str()
                    .map(str::to_owned)
                    .ok_or_else(|| BusinessError::refused(format!("{what} must be strings")))
            })
            .collect(),
        Some(_) => Err(BusinessError::refused(format!("{what} must be an array of strings"))),
    }
}

/// Publishes a process's current package version (permission ManageProcesses).
#[utoipa::path(post, path = "/admin/catalogue", tag = "catalogue",
    params(("X-Access-Token" = String, Header, description = "an administrator's session")),
    request_body(content = Object, description = "`{processId, name?, description?, tags?}`"),
    responses((status = 200, description = "the listing", body = Envelope<ListingInfo>)))]
pub(crate) async fn publish<S: Store>(
    State(st): State<AppState<S>>,
    h: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Answer<ListingInfo> {
    let me = admin(&st, &h, Permission::ManageProcesses).await?;
    let f = fields(body)?;
    let k = process_id(f.str("processId")?)?;
    let tags = strings(f.value("tags"), "tags")?;
    let l = st
        .engine
        .publish(
            Actor::User(me.id),
            k,
            f.opt_str("name")?,
            f.opt_str("description")?.unwrap_or(""),
            &tags,
        )
        .await?;
    Ok(Done::ok(info(&st, l)))
}

/// Published listings matching a search (any session).
#[utoipa::path(get, path = "/admin/catalogue", tag = "catalogue",
    params(("X-Access-Token" = String, Header, description = "a session"),
        ("q" = Option<String>, Query, description = "words that must all appear in the name, description or tags"),
        ("tag" = Option<String>, Query, description = "a tag the listing must have")),
    responses((status = 200, description = "the listings, by name", body = Envelope<Vec<ListingInfo>>)))]
pub(crate) async fn search<S: Store>(
    State(st): State<AppState<S>>,
    h: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Answer<Vec<ListingInfo>> {
    session(&st, &h).await?;
    let found = st
        .engine
        .search_catalogue(
            q.get("q").map_or("", String::as_str),
            q.get("tag").map(String::as_str).filter(|t| !t.trim().is_empty()),
        )
        .await?;
    Ok(Done::ok(found.into_iter().map(|l| info(&st, l)).collect()))
}

/// Unpublishes a listing (permission ManageProcesses).
#[utoipa::path(delete, path = "/admin/catalogue/{listingId}", tag = "catalogue",
    params(("X-Access-Token" = String, Header, description = "an administrator's session"),
        ("listingId" = i64, Path, description = "the listing")),
    responses((status = 200, description = "unpublished", body = Envelope<ListingInfo>)))]
pub(crate) async fn unpublish<S: Store>(
    State(st): State<AppState<S>>,
    h: HeaderMap,
    Path(id): Path<String>,
) -> Answer<ListingInfo> {
    let me = admin(&st, &h, Permission::ManageProcesses).await?;
    let l = st.engine.unpublish(Actor::User(me.id), listing_id(&id)?).await?;
    Ok(Done::ok(info(&st, l)))
}

/// Subscribes to a listing: a new process running its package (permission ManageProcesses).
#[utoipa::path(post, path = "/admin/catalogue/{listingId}/subscribe", tag = "catalogue",
    params(("X-Access-Token" = String, Header, description = "an administrator's session"),
        ("listingId" = i64, Path, description = "the listing")),
    request_body(content = Object, description = "`{name?, folder?}`"),
    responses((status = 200, description = "the new process", body = Envelope<ProcessDetails>)))]
pub(crate) async fn subscribe<S: Store>(
    State(st): State<AppState<S>>,
    h: HeaderMap,
    Path(id): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> Answer<ProcessDetails> {
    let me = admin(&st, &h, Permission::ManageProcesses).await?;
    let f = fields(body)?;
    let p = st
        .engine
        .subscribe(
            Actor::User(me.id),
            listing_id(&id)?,
            f.opt_str("name")?,
            f.opt_str("folder")?,
        )
        .await?;
    Ok(Done::ok(process_details(&st, &p)))
}
