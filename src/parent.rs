//! Reporting to a parent server (two-level collaboration, seed 001
//! §6.5.3): a consumer of this server's domain events whose sink turns each
//! batch's ended jobs into run results and posts them, signed, to the
//! parent's `/federation/v1/results`. The consumer's durable cursor moves
//! only once the parent has answered, so results reach it at least once
//! and in order across restarts and parent outages; the parent counts a
//! result sent twice once (see [`rpa_core::federation`]).

use std::sync::Arc;
use std::time::Duration;

use rpa_core::events::EventRecord;
use rpa_core::{Engine, Store};

use crate::consume::Sink;

/// The consumer that reports to the parent.
pub const PARENT_CONSUMER: &str = "parent-report";

/// Posts run results to a parent.
pub struct ParentSink<S> {
    engine: Arc<Engine<S>>,
    client: reqwest::Client,
    url: String,
    name: String,
    secret: Vec<u8>,
}

impl<S: Store> ParentSink<S> {
    /// Reports to the parent at `base` as `name`, signing with `secret`.
    pub fn new(engine: Arc<Engine<S>>, base: &str, name: &str, secret: &str) -> Result<Self, String> {
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .build()
            .map_err(|e| e.to_string())?;
        Ok(ParentSink {
            engine,
            client,
            url: format!("{}/federation/v1/results", base.trim_end_matches('/')),
            name: name.to_owned(),
            secret: secret.as_bytes().to_vec(),
        })
    }
}

impl<S: Store> Sink for ParentSink<S> {
    async fn deliver(&mut self, events: &[EventRecord]) -> Result<(), String> {
        let results = self.engine.run_results(events).await.map_err(|e| e.to_string())?;
        if results.is_empty() {
            return Ok(());
        }
        let body = serde_json::to_vec(&serde_json::json!({ "results": results })).map_err(|e| e.to_string())?;
        let now = chrono::Utc::now().timestamp();
        let sent = self
            .client
            .post(&self.url)
            .header("content-type", "application/json")
            .header("x-rpa-child", &self.name)
            .header(
                "x-rpa-signature",
                rpa_core::auth::sign_delivery(&self.secret, now, &body),
            )
            .body(body)
            .send()
            .await;
        let (first, last) = (results[0].seq, results[results.len() - 1].seq);
        match sent {
            Ok(r) if r.status().is_success() => {
                let v: serde_json::Value = r.json().await.map_err(|e| e.to_string())?;
                if v["success"] == true {
                    tracing::debug!(first, last, "run results reported to the parent");
                    Ok(())
                } else {
                    Err(format!("results {first}-{last}: the parent refused: {}", v["message"]))
                }
            }
            Ok(r) => Err(format!("results {first}-{last}: the parent answered {}", r.status())),
            Err(e) => Err(format!("results {first}-{last}: {}", e.without_url())),
        }
    }
}

/// Where this server's parent is, for pulling from its catalogue.
#[derive(Clone)]
pub struct ParentLink {
    /// The parent's base URL.
    pub url: String,
    /// This server's name at the parent.
    pub name: String,
    /// The shared secret.
    pub secret: String,
}

impl std::fmt::Debug for ParentLink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ParentLink")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

/// The parent's catalogue on a child (seed 001 §6.5.3 a), seed 000 envelope:
///
/// | method, path | permission | answer |
/// |---|---|---|
/// | `GET /admin/catalogue/parent` | ManageProcesses | the parent's published listings `[{listingId, name, description, tags, version, sha256, definition}]` |
/// | `POST /admin/catalogue/parent/{listingId}/pull` | ManageProcesses | `{name?, folder?}` → a process of this server's with the listing's definition, running its package (fetched from the parent, its SHA-256 checked, stored here) |
pub fn pull_router<S: Store>(link: ParentLink) -> axum::Router<rpa_adapters_http::AppState<S>> {
    use axum::routing::{get, post};
    let link = Arc::new(link);
    let (a, b) = (link.clone(), link);
    axum::Router::new()
        .route(
            "/admin/catalogue/parent",
            get(move |st, h| parent_listings::<S>(st, h, a.clone())),
        )
        .route(
            "/admin/catalogue/parent/{listingId}/pull",
            post(move |st, h, path, body| pull::<S>(st, h, path, body, b.clone())),
        )
}

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use rpa_adapters_http::AppState;
use rpa_adapters_http::admin::{ProcessDetails, admin, process_details};
use rpa_adapters_http::seed000::{Answer, BusinessError, Done};
use rpa_core::model::{Actor, FileSource, Permission, ProcessSpec};
use serde_json::Value;
use sha2::Digest;

/// A signed GET to the parent; the body.
async fn from_parent(link: &ParentLink, path: &str) -> Result<reqwest::Response, BusinessError> {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(60))
        .build()
        .map_err(|_| BusinessError::Internal)?;
    let now = chrono::Utc::now().timestamp();
    let r = client
        .get(format!("{}{path}", link.url.trim_end_matches('/')))
        .header("x-rpa-child", &link.name)
        .header(
            "x-rpa-signature",
            rpa_core::auth::sign_delivery(link.secret.as_bytes(), now, b""),
        )
        .send()
        .await
        .map_err(|e| BusinessError::refused(format!("the parent cannot be reached: {}", e.without_url())))?;
    if !r.status().is_success() {
        return Err(BusinessError::refused(format!("the parent answered {}", r.status())));
    }
    Ok(r)
}

async fn offered(link: &ParentLink) -> Result<Vec<Value>, BusinessError> {
    let v: Value = from_parent(link, "/federation/v1/catalogue")
        .await?
        .json()
        .await
        .map_err(|_| BusinessError::refused("the parent's catalogue is not in the expected form"))?;
    if v["success"] != true {
        return Err(BusinessError::refused(format!(
            "the parent refused: {}",
            v["message"].as_str().unwrap_or("")
        )));
    }
    Ok(v["result"].as_array().cloned().unwrap_or_default())
}

async fn parent_listings<S: Store>(
    State(st): State<AppState<S>>,
    h: HeaderMap,
    link: Arc<ParentLink>,
) -> Answer<Vec<Value>> {
    admin(&st, &h, Permission::ManageProcesses).await?;
    Ok(Done::ok(offered(&link).await?))
}

async fn pull<S: Store>(
    State(st): State<AppState<S>>,
    h: HeaderMap,
    Path(id): Path<String>,
    body: Bytes,
    link: Arc<ParentLink>,
) -> Answer<ProcessDetails> {
    let me = admin(&st, &h, Permission::ManageProcesses).await?;
    let options: Value = if body.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&body).map_err(|e| BusinessError::refused(format!("invalid JSON: {e}")))?
    };
    let text = |k: &str| options.get(k).and_then(Value::as_str).map(str::to_owned);
    let wanted: i64 = id
        .trim()
        .parse()
        .map_err(|_| BusinessError::refused(format!("the parent publishes no listing {id}")))?;
    let listing = offered(&link)
        .await?
        .into_iter()
        .find(|l| l["listingId"].as_i64() == Some(wanted))
        .ok_or_else(|| BusinessError::refused(format!("the parent publishes no listing {id}")))?;
    let spec: ProcessSpec = serde_json::from_value(listing["definition"].clone())
        .map_err(|e| BusinessError::refused(format!("the parent's definition cannot be read here: {e}")))?;
    let version = listing["version"].as_str().unwrap_or("").to_owned();
    let expected = listing["sha256"].as_str().unwrap_or("").to_owned();
    let bytes = from_parent(&link, &format!("/federation/v1/catalogue/{}/package", id.trim()))
        .await?
        .bytes()
        .await
        .map_err(|e| BusinessError::refused(format!("the package did not arrive: {}", e.without_url())))?;
    let digest = hex::encode(sha2::Sha256::digest(&bytes));
    if digest != expected {
        return Err(BusinessError::refused(format!(
            "the package's checksum does not match (sha256 {digest}, the parent published {expected}); nothing was added"
        )));
    }
    let name = text("name").unwrap_or_else(|| listing["name"].as_str().unwrap_or("").to_owned());
    let actor = Actor::User(me.id);
    if st.engine.processes().await?.iter().any(|p| p.spec.name == name.trim()) {
        return Err(BusinessError::refused(format!("process {name} already exists")));
    }
    let file = st
        .engine
        .record_file(
            actor,
            FileSource::Package,
            &format!("{name}-{version}.pkg"),
            bytes.len() as u64,
            &digest,
            None,
        )
        .await?;
    if let Err(e) = st.files.put(file.key, bytes).await {
        tracing::error!(error = %e, "cannot store a pulled package");
        return Err(BusinessError::Internal);
    }
    let pkg = rpa_core::engine::NewPackage {
        file: file.key,
        uri: format!("{}/v1/file/{}", st.settings.public_url.trim_end_matches('/'), file.key),
        sha256: digest,
        size: file.size,
    };
    let origin = format!(
        "the parent's listing {} ({})",
        id.trim(),
        listing["name"].as_str().unwrap_or("")
    );
    let p = st
        .engine
        .adopt_listing(actor, &spec, &name, text("folder").as_deref(), &version, pkg, &origin)
        .await?;
    Ok(Done::ok(process_details(&st, &p)))
}
