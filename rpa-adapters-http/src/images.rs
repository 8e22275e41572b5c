//! Executor images and the executors started from them, over HTTP (seed
//! 001 §6.2.2 b; the rules are in [`rpa_core::image`]).
//!
//! | method, path | who | body, query → answer (seed 000 envelope) |
//! |---|---|---|
//! | `POST /admin/images/{name}` | ManageRobots | the image file (raw bytes), `version` (default: the latest's next patch, 1.0.0 first) → [`ImageView`] (the same bytes again change nothing; other bytes under a kept version are refused) |
//! | `GET /admin/images` | ManageRobots | → `[ImageView]`, by name, newest first |
//! | `DELETE /admin/images/{name}/{version}` | ManageRobots | → the retired [`ImageView`]: no pool starts it any more |
//! | `GET /admin/executors` | ManageRobots | → `[ExecutorView]`: each executor a provisioner started, its image version, host, process, start and stop, and its robot's state now |
//!
//! A pool names its image with `image` (and pins a version with
//! `imageVersion`) in `PUT /admin/pools/{name}` or the configuration file;
//! its provisioner then starts robots with that image version's file.

use std::collections::HashMap;

use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::routing::{delete, get, post};
use rpa_core::Store;
use rpa_core::engine::NewImage;
use rpa_core::image::{Executor, ExecutorImage};
use rpa_core::model::{Actor, FileSource, Permission};
use serde::Serialize;
use sha2::{Digest, Sha256};
use utoipa::ToSchema;

use crate::AppState;
use crate::admin::admin;
use crate::seed000::{Answer, BusinessError, Done, Envelope};

/// The upload route (mounted with the upload body limit).
pub fn upload_router<S: Store>() -> Router<AppState<S>> {
    Router::new().route("/admin/images/{name}", post(upload::<S>))
}

/// The other routes.
pub fn router<S: Store>() -> Router<AppState<S>> {
    Router::new()
        .route("/admin/images", get(list::<S>))
        .route("/admin/images/{name}/{version}", delete(retire::<S>))
        .route("/admin/executors", get(executors::<S>))
}

/// An image version.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ImageView {
    /// The image's name.
    pub name: String,
    /// This version.
    pub version: String,
    /// Its bytes' SHA-256.
    pub sha256: String,
    /// Bytes.
    pub size: u64,
    /// When it was uploaded (the server's zone).
    pub upload_time: String,
    /// Who uploaded it.
    pub uploaded_by: String,
    /// Retired: no pool starts it.
    pub retired: bool,
}

fn view<S: Store>(st: &AppState<S>, i: ExecutorImage) -> ImageView {
    ImageView {
        name: i.name,
        version: i.image_version,
        sha256: i.sha256,
        size: i.size,
        upload_time: i.uploaded_at.format_local(st.engine.config().time_zone),
        uploaded_by: i.uploaded_by,
        retired: i.retired,
    }
}

/// Uploads a version of an image (permission ManageRobots).
#[utoipa::path(post, path = "/admin/images/{name}", tag = "admin",
    params(("X-Access-Token" = String, Header, description = "an administrator's session"),
        ("name" = String, Path, description = "the image"),
        ("version" = Option<String>, Query, description = "MAJOR.MINOR.PATCH (default: the latest's next patch)")),
    request_body(content = Vec<u8>, content_type = "application/octet-stream", description = "the image file"),
    responses((status = 200, description = "the version kept", body = Envelope<ImageView>)))]
pub(crate) async fn upload<S: Store>(
    State(st): State<AppState<S>>,
    h: HeaderMap,
    Path(name): Path<String>,
    Query(q): Query<HashMap<String, String>>,
    body: Result<Bytes, BytesRejection>,
) -> Answer<ImageView> {
    let me = admin(&st, &h, Permission::ManageRobots).await?;
    let bytes = match body {
        Ok(b) if !b.is_empty() => b,
        Ok(_) => return Err(BusinessError::refused("the image (request body) is empty")),
        Err(r) => {
            return Err(BusinessError::refused(format!(
                "cannot read the image: {}",
                r.body_text()
            )));
        }
    };
    rpa_core::image::check_name(&name).map_err(BusinessError::refused)?;
    let version = q.get("version").map(|v| v.trim()).filter(|v| !v.is_empty());
    let digest = hex::encode(Sha256::digest(&bytes));
    // The bytes are kept first: a version whose file is missing is never recorded.
    let meta = st
        .engine
        .record_file(
            Actor::User(me.id),
            FileSource::Package,
            &format!("image-{name}.img"),
            bytes.len() as u64,
            &digest,
            None,
        )
        .await?;
    if let Err(e) = st.files.put(meta.key, bytes).await {
        tracing::error!(error = %e, "cannot store an executor image");
        return Err(BusinessError::Internal);
    }
    let img = st
        .engine
        .add_image(
            Actor::User(me.id),
            &name,
            version,
            NewImage {
                file: meta.key,
                sha256: digest,
                size: meta.size,
            },
        )
        .await?;
    Ok(Done::ok(view(&st, img)))
}

/// Every image version (permission ManageRobots).
#[utoipa::path(get, path = "/admin/images", tag = "admin",
    params(("X-Access-Token" = String, Header, description = "an administrator's session")),
    responses((status = 200, description = "by name, newest first", body = Envelope<Vec<ImageView>>)))]
pub(crate) async fn list<S: Store>(State(st): State<AppState<S>>, h: HeaderMap) -> Answer<Vec<ImageView>> {
    admin(&st, &h, Permission::ManageRobots).await?;
    let all = st.engine.images().await?;
    Ok(Done::ok(all.into_iter().map(|i| view(&st, i)).collect()))
}

/// Retires an image version (permission ManageRobots).
#[utoipa::path(delete, path = "/admin/images/{name}/{version}", tag = "admin",
    params(("X-Access-Token" = String, Header, description = "an administrator's session"),
        ("name" = String, Path, description = "the image"),
        ("version" = String, Path, description = "the version")),
    responses((status = 200, description = "the retired version", body = Envelope<ImageView>)))]
pub(crate) async fn retire<S: Store>(
    State(st): State<AppState<S>>,
    h: HeaderMap,
    Path((name, version)): Path<(String, String)>,
) -> Answer<ImageView> {
    let me = admin(&st, &h, Permission::ManageRobots).await?;
    let img = st.engine.retire_image(Actor::User(me.id), &name, &version).await?;
    Ok(Done::ok(view(&st, img)))
}

/// An executor a provisioner started.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ExecutorView {
    /// Its robot's id.
    pub robot_id: String,
    /// Its pool.
    pub pool: String,
    /// Its image, if the pool names one.
    pub image: Option<String>,
    /// That image's version.
    pub image_version: Option<String>,
    /// The machine it runs on.
    pub host: String,
    /// Its process id there.
    pub pid: Option<u32>,
    /// When it started (the server's zone).
    pub start_time: String,
    /// When it stopped, if it did.
    pub stop_time: Option<String>,
    /// Its robot's state now.
    pub robot_state: Option<&'static str>,
}

/// The executors provisioners started (permission ManageRobots).
#[utoipa::path(get, path = "/admin/executors", tag = "admin",
    params(("X-Access-Token" = String, Header, description = "an administrator's session")),
    responses((status = 200, description = "the executors", body = Envelope<Vec<ExecutorView>>)))]
pub(crate) async fn executors<S: Store>(State(st): State<AppState<S>>, h: HeaderMap) -> Answer<Vec<ExecutorView>> {
    let me = admin(&st, &h, Permission::ManageRobots).await?;
    let all: Vec<Executor> = st.engine.executors(Actor::User(me.id)).await?;
    let robots = st.engine.robots().await?;
    let tz = st.engine.config().time_zone;
    Ok(Done::ok(
        all.into_iter()
            .map(|e| {
                let (image, image_version) = match e.image.as_deref().and_then(|k| k.split_once('@')) {
                    Some((n, v)) => (Some(n.to_owned()), Some(v.to_owned())),
                    None => (None, None),
                };
                ExecutorView {
                    robot_state: robots.iter().find(|r| *r.code == *e.robot).map(|r| r.state.as_str()),
                    robot_id: e.robot,
                    pool: e.pool,
                    image,
                    image_version,
                    host: e.host,
                    pid: e.pid,
                    start_time: e.started_at.format_local(tz),
                    stop_time: e.stopped_at.map(|t| t.format_local(tz)),
                }
            })
            .collect(),
    ))
}
