//! UiPath's storage buckets ([`rpa_core::bucket`]), as a translation table:
//!
//! | UiPath | engine |
//! |---|---|
//! | `GET Buckets` (`$filter`, ...) | `buckets`: those of the caller's folder (every folder without a folder header) |
//! | `POST Buckets` `{Name, Identifier?, Description?}` | `create_bucket` in the folder the headers name (201) |
//! | `GET Buckets(<Id>)`, `GET Buckets/UiPath.Server.Configuration.OData.GetByKey(identifier='<guid>')` | `bucket` |
//! | `DELETE Buckets(<Id>)` | `delete_bucket` (204), and its files' bytes are removed |
//! | `GET Buckets(<Id>)/UiPath.Server.Configuration.OData.GetReadUri?path=&expiryInMinutes=` | `bucket_file`, then a signed `GET` link `{Uri, HttpMethod, RequiresAuth: false, Headers: {Keys, Values}}` |
//! | `GET Buckets(<Id>)/UiPath.Server.Configuration.OData.GetWriteUri?path=&contentType=&expiryInMinutes=` | a signed `PUT` link (ManageProcesses, or a robot's run token) |
//! | `GET Buckets(<Id>)/UiPath.Server.Configuration.OData.GetFiles?directory=&recursive=&fileNameGlob=` | `bucket_files` → `{FullPath, ContentType, Size, IsDirectory, LastModified}` |
//! | `DELETE Buckets(<Id>)/UiPath.Server.Configuration.OData.DeleteFile?path=` | `delete_bucket_file` (204) |
//! | `GET /api/Buckets/<Id>/ListFiles?prefix=&continuationToken=&takeHint=` (also under `/{org}/{tenant}/` and `/{org}/{tenant}/orchestrator_/`) | `bucket_files` (recursive, by path) → `{items: [{fullPath, contentType, size, lastModified}], continuationToken}` |
//! | `GET`/`PUT /v1/buckets/<Id>/blob?path=&expires=&signature=` (the signed links) | the bytes from or into the file store; `put_bucket_file` |
//!
//! A link is signed with the server's link key over its method, bucket,
//! path and expiry (default one hour, `expiryInMinutes` up to a day): whoever
//! holds it may use it until then, and for nothing else.

use std::collections::HashMap;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use rpa_core::Store;
use rpa_core::bucket::{Bucket, BucketFile};
use rpa_core::error::Error;
use rpa_core::model::{Actor, Permission};
use serde_json::{Map, Value, json};

use super::{Answer, Caller, ODataError, caller, field, folder_id, iso, one, options, respond};
use crate::AppState;

const ACTION: &str = "UiPath.Server.Configuration.OData.";
/// Longest a signed link lives.
const MAX_EXPIRY_MINUTES: i64 = 24 * 60;

/// The bucket routes outside OData: `ListFiles` and the signed links.
pub(super) fn router<S: Store>() -> Router<AppState<S>> {
    Router::new()
        .route("/api/Buckets/{id}/ListFiles", get(list_files::<S>))
        .route(
            "/{org}/{tenant}/orchestrator_/api/Buckets/{id}/ListFiles",
            get(list_files::<S>),
        )
        .route("/{org}/{tenant}/api/Buckets/{id}/ListFiles", get(list_files::<S>))
        .route("/v1/buckets/{id}/blob", get(read_blob::<S>).put(write_blob::<S>))
}

/// The answer of a bucket route, or `None` when `rest` names none.
pub(super) async fn route<S: Store>(
    st: &AppState<S>,
    me: &Caller,
    method: &Method,
    rest: &str,
    q: &HashMap<String, String>,
    body: &[u8],
) -> Option<Answer> {
    if rest != "Buckets" && !rest.starts_with("Buckets(") && !rest.starts_with("Buckets/") {
        return None;
    }
    Some(answer(st, me, method, rest, q, body).await)
}

async fn answer<S: Store>(
    st: &AppState<S>,
    me: &Caller,
    method: &Method,
    rest: &str,
    q: &HashMap<String, String>,
    body: &[u8],
) -> Answer {
    let actor = Actor::User(me.id);
    if rest == "Buckets" {
        return match *method {
            Method::GET => {
                let o = options(q)?;
                let all = st.engine.buckets().await?;
                let out = all.iter().filter(|b| visible(me, b)).map(bucket_json).collect();
                respond("Buckets", out, &o)
            }
            Method::POST => {
                let b = match serde_json::from_slice::<Value>(body) {
                    Ok(Value::Object(m)) => m,
                    _ => return Err(ODataError::bad("The request body must be a JSON object")),
                };
                let text = |k: &str| field(&b, k).and_then(Value::as_str);
                let name = text("Name").ok_or_else(|| ODataError::bad("Name is required"))?;
                let created = st
                    .engine
                    .create_bucket(
                        actor,
                        name,
                        me.folder.clone(),
                        text("Identifier").map(str::to_owned),
                        text("Description").unwrap_or_default(),
                    )
                    .await?;
                Ok((StatusCode::CREATED, one("Buckets", bucket_json(&created))).into_response())
            }
            _ => Err(not_allowed(method, rest)),
        };
    }
    if let Some(call) = rest.strip_prefix("Buckets/").and_then(|r| r.strip_prefix(ACTION)) {
        let identifier = call
            .strip_prefix("GetByKey(identifier=")
            .and_then(|r| r.strip_suffix(')'))
            .map(|i| i.trim_matches('\'').replace("''", "'"))
            .ok_or_else(|| ODataError::not_found(format!("odata/{rest} is not a bucket call")))?;
        let b = st
            .engine
            .buckets()
            .await?
            .into_iter()
            .find(|b| b.identifier.eq_ignore_ascii_case(&identifier) && visible(me, b))
            .ok_or_else(|| ODataError::not_found(format!("Bucket {identifier} does not exist")))?;
        return Ok(one("Buckets", bucket_json(&b)));
    }
    let (id, tail) = rest
        .strip_prefix("Buckets(")
        .and_then(|r| r.split_once(')'))
        .ok_or_else(|| ODataError::not_found(format!("odata/{rest} is not a bucket")))?;
    let id: i64 = id
        .parse()
        .map_err(|_| ODataError::bad(format!("Buckets({id}): the key must be a number")))?;
    let b = st.engine.bucket(id).await?;
    if !visible(me, &b) {
        return Err(ODataError::not_found(format!("Bucket {id} is not in this folder")));
    }
    let call = tail.strip_prefix('/').and_then(|t| t.strip_prefix(ACTION));
    let path = || q.get("path").map(String::as_str).unwrap_or_default();
    match (method.clone(), call) {
        (Method::GET, None) if tail.is_empty() => Ok(one("Buckets", bucket_json(&b))),
        (Method::DELETE, None) if tail.is_empty() => {
            let files = st.engine.bucket_files(id, "/", true, None).await?;
            st.engine.delete_bucket(actor, id).await?;
            // Its files are unreachable now: their bytes go too.
            for f in files {
                if let Err(e) = st.files.delete(f.blob).await {
                    tracing::warn!(error = %e, "cannot remove a deleted bucket's file bytes");
                }
            }
            Ok(StatusCode::NO_CONTENT.into_response())
        }
        (Method::GET, Some("GetReadUri")) => {
            let f = st.engine.bucket_file(id, path()).await?;
            link(st, &b, "GET", &f.path, q)
        }
        (Method::GET, Some("GetWriteUri")) => {
            may_write(st, me).await?;
            let path = rpa_core::bucket::check_path(path()).map_err(ODataError::bad)?;
            link(st, &b, "PUT", &path, q)
        }
        (Method::GET, Some("GetFiles")) => {
            let dir = q.get("directory").map(String::as_str).unwrap_or("/");
            let recursive = q.get("recursive").is_some_and(|r| r.eq_ignore_ascii_case("true"));
            let glob = q.get("fileNameGlob").map(String::as_str).filter(|g| !g.is_empty());
            let files = st.engine.bucket_files(id, dir, recursive, glob).await?;
            let out = files
                .iter()
                .map(|f| {
                    json!({"FullPath": f.path, "ContentType": f.content_type, "Size": f.size,
                        "IsDirectory": false, "LastModified": iso(f.updated_at)})
                })
                .collect();
            respond(
                "Collection(UiPath.Server.Configuration.OData.BlobFile)",
                out,
                &options(q)?,
            )
        }
        (Method::DELETE, Some("DeleteFile")) => {
            let who = match &me.run {
                Some(run) => Actor::Robot(run.robot),
                None => actor,
            };
            let f = st.engine.delete_bucket_file(who, id, path()).await?;
            if let Err(e) = st.files.delete(f.blob).await {
                tracing::warn!(error = %e, "cannot remove a deleted bucket file's bytes");
            }
            Ok(StatusCode::NO_CONTENT.into_response())
        }
        _ => Err(not_allowed(method, rest)),
    }
}

fn not_allowed(method: &Method, rest: &str) -> ODataError {
    ODataError::not_found(format!(
        "No HTTP resource was found that matches the request URI 'odata/{rest}' ({method})."
    ))
}

/// A bucket in the caller's folder (any, without a folder header).
fn visible(me: &Caller, b: &Bucket) -> bool {
    me.folder.as_deref().is_none_or(|f| f == b.folder())
}

/// Writing takes ManageProcesses, or a robot running a job.
async fn may_write<S: Store>(st: &AppState<S>, me: &Caller) -> Result<(), ODataError> {
    if me.run.is_none() {
        st.engine
            .require(Actor::User(me.id), Permission::ManageProcesses)
            .await?;
    }
    Ok(())
}

/// What a link's signature covers.
fn signed(method: &str, bucket: i64, path: &str) -> String {
    format!("/v1/buckets/{bucket}/blob {method} {path}")
}

/// A signed link onto the file `path` of `b`, as UiPath answers one.
fn link<S: Store>(st: &AppState<S>, b: &Bucket, method: &str, path: &str, q: &HashMap<String, String>) -> Answer {
    let key = st.settings.link_key.as_ref().ok_or_else(|| {
        ODataError::new(
            StatusCode::NOT_IMPLEMENTED,
            0,
            "this server signs no links (no link key is configured)",
        )
    })?;
    let minutes = q
        .get("expiryInMinutes")
        .and_then(|m| m.parse::<i64>().ok())
        .filter(|m| *m > 0)
        .unwrap_or(60)
        .min(MAX_EXPIRY_MINUTES);
    let expires = st.engine.now().0.div_euclid(1000) + minutes * 60;
    let signature = rpa_core::auth::sign_link(key, &signed(method, b.id, path), expires);
    let uri = format!(
        "{}/v1/buckets/{}/blob?path={}&{signature}",
        st.settings.public_url.trim_end_matches('/'),
        b.id,
        encode(path),
    );
    Ok(axum::Json(json!({
        "Uri": uri,
        "HttpMethod": method,
        "RequiresAuth": false,
        "Headers": {"Keys": [], "Values": []},
    }))
    .into_response())
}

/// `s` percent-encoded for a query value (all but RFC 3986's unreserved
/// characters).
fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The path a signed link names, if its signature holds now.
fn check_link<S: Store>(
    st: &AppState<S>,
    method: &str,
    id: i64,
    q: &HashMap<String, String>,
) -> Result<String, ODataError> {
    let refused = || ODataError::new(StatusCode::FORBIDDEN, 0, "the link is not valid or has expired");
    let (Some(path), Some(expires), Some(signature)) = (
        q.get("path"),
        q.get("expires").and_then(|e| e.parse::<i64>().ok()),
        q.get("signature"),
    ) else {
        return Err(refused());
    };
    let now = st.engine.now().0.div_euclid(1000);
    let good = st
        .settings
        .link_key
        .as_ref()
        .is_some_and(|key| rpa_core::auth::verify_link(key, &signed(method, id, path), expires, signature, now));
    if good { Ok(path.clone()) } else { Err(refused()) }
}

/// `GET /v1/buckets/{id}/blob`: a file's bytes, through a signed link.
async fn read_blob<S: Store>(
    State(st): State<AppState<S>>,
    Path(id): Path<i64>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let path = match check_link(&st, "GET", id, &q) {
        Ok(p) => p,
        Err(e) => return e.into_response(),
    };
    let f: BucketFile = match st.engine.bucket_file(id, &path).await {
        Ok(f) => f,
        Err(e) => return ODataError::from(e).into_response(),
    };
    match st.files.get(f.blob).await {
        Ok(Some(bytes)) => ([(header::CONTENT_TYPE, f.content_type)], bytes).into_response(),
        Ok(None) => ODataError::not_found(format!("{path}: its bytes are gone")).into_response(),
        Err(e) => {
            tracing::error!(error = %e, "cannot read a bucket file");
            ODataError::from(Error::Internal("cannot read the file".into())).into_response()
        }
    }
}

/// `PUT /v1/buckets/{id}/blob`: writes a file's bytes, through a signed link.
async fn write_blob<S: Store>(
    State(st): State<AppState<S>>,
    Path(id): Path<i64>,
    Query(q): Query<HashMap<String, String>>,
    h: HeaderMap,
    body: Bytes,
) -> Response {
    let path = match check_link(&st, "PUT", id, &q) {
        Ok(p) => p,
        Err(e) => return e.into_response(),
    };
    let content_type = h
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("application/octet-stream")
        .to_owned();
    let blob = {
        let (_, random) = rpa_core::auth::new_token();
        let mut k = [0u8; 16];
        k.copy_from_slice(&random[..16]);
        rpa_core::Key::from_random(k)
    };
    if let Err(e) = st.files.put(blob, body.clone()).await {
        tracing::error!(error = %e, "cannot store a bucket file");
        return ODataError::from(Error::Internal("cannot store the file".into())).into_response();
    }
    match st
        .engine
        .put_bucket_file(id, &path, &content_type, body.len() as u64, blob)
        .await
    {
        Ok((_, old)) => {
            if let Some(old) = old
                && let Err(e) = st.files.delete(old.blob).await
            {
                tracing::warn!(error = %e, "cannot remove a replaced bucket file's bytes");
            }
            StatusCode::CREATED.into_response()
        }
        Err(e) => {
            let _ = st.files.delete(blob).await;
            ODataError::from(e).into_response()
        }
    }
}

/// `GET /api/Buckets/{id}/ListFiles`: every file under `prefix`, by path,
/// a page of `takeHint` (at most 1,000) after `continuationToken` (the
/// last path of the page before).
async fn list_files<S: Store>(
    State(st): State<AppState<S>>,
    Path(p): Path<HashMap<String, String>>,
    Query(q): Query<HashMap<String, String>>,
    h: HeaderMap,
) -> Response {
    let answer = async {
        let me = caller(&st, &h).await?;
        let id: i64 = p
            .get("id")
            .and_then(|i| i.parse().ok())
            .ok_or_else(|| ODataError::bad("the bucket id must be a number"))?;
        let b = st.engine.bucket(id).await?;
        if !visible(&me, &b) {
            return Err(ODataError::not_found(format!("Bucket {id} is not in this folder")));
        }
        let take = q
            .get("takeHint")
            .and_then(|t| t.parse::<usize>().ok())
            .unwrap_or(500)
            .clamp(1, 1000);
        let prefix = q.get("prefix").map(String::as_str).unwrap_or_default();
        let after = q.get("continuationToken").filter(|t| !t.is_empty());
        let mut files = st.engine.bucket_files(id, "/", true, None).await?;
        files.retain(|f| f.path.starts_with(prefix.trim_start_matches('/')));
        files.sort_by(|a, b| a.path.cmp(&b.path));
        let page: Vec<&BucketFile> = files
            .iter()
            .filter(|f| after.is_none_or(|a| f.path.as_str() > a.as_str()))
            .take(take + 1)
            .collect();
        let more = page.len() > take;
        let items: Vec<Value> = page
            .iter()
            .take(take)
            .map(|f| {
                json!({"fullPath": f.path, "contentType": f.content_type, "size": f.size,
                    "lastModified": iso(f.updated_at)})
            })
            .collect();
        let token = more.then(|| page[take - 1].path.clone());
        Ok::<_, ODataError>(axum::Json(json!({"items": items, "continuationToken": token})).into_response())
    };
    answer.await.unwrap_or_else(IntoResponse::into_response)
}

fn bucket_json(b: &Bucket) -> Value {
    let mut m = Map::new();
    m.insert("Id".into(), b.id.into());
    m.insert("Name".into(), b.name.clone().into());
    m.insert("Description".into(), b.description.clone().into());
    m.insert("Identifier".into(), b.identifier.clone().into());
    m.insert("StorageProvider".into(), Value::Null);
    m.insert("StorageParameters".into(), Value::Null);
    m.insert("StorageContainer".into(), Value::Null);
    m.insert("Options".into(), "None".into());
    m.insert("CredentialStoreId".into(), Value::Null);
    m.insert("ExternalName".into(), Value::Null);
    m.insert("Password".into(), Value::Null);
    m.insert("FoldersCount".into(), 1.into());
    m.insert("Encrypted".into(), false.into());
    m.insert("Tags".into(), json!([]));
    m.insert("OrganizationUnitId".into(), folder_id(b.folder()).into());
    Value::Object(m)
}
