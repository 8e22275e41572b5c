//! # rpa-adapters-http
//!
//! The HTTP faces of the rpa engine, each a translation table between a
//! document and [`rpa_core::Engine`]:
//!
//! ```text
//!  business system ──POST /rpa/api/*──────────► business (seed 000) ─┐
//!  HTTP robot ───────POST /robots/connect/*───► robot (seed 001 A.2) ─┼─► Engine<S> ─► Store
//!  robot / person ───/v1/file/*, /design/*────► robot (files)        ─┤
//!  business system ──POST /listener/rpa/api/*─► listener (seed 003)  ─┤
//!  business system ──/api/v1.0/*──────────────► loonflow (seed 004)  ─┤
//!  administrator ────/admin/*─────────────────► admin                ─┤
//!  operator (browser) /, /console/api/*───────► console              ─┤
//!  Prometheus ───────GET /metrics─────────────► metrics              ─┘
//! ```
//!
//! Layout: each API family has its request and result types, its envelope
//! and one error type that maps every failure to that envelope and status
//! (unknown paths and wrong methods under its prefix included); handlers
//! return `Result<_, FamilyError>` and use `?`.
//! - [`business`]: seed 000; [`seed000`]: its envelope
//!   `{success,message,code,result,timestamp}` and [`seed000::BusinessError`]
//! - [`robot`]: seed 001 A.2 and files, envelope
//!   `{successful,resultHint,resultValue}`, [`robot::RobotError`]
//! - [`listener`]: seed 003, the AutomationEdge listener, its answer
//!   `{instance_id, message_id, status, response, error}` and
//!   [`listener::ListenerError`]
//! - [`loonflow`]: seed 004, the workflow engine's API, envelope
//!   `{code, data, msg}`, [`loonflow::FlowError`], signed callers
//! - [`admin`]: users, processes, packages, vendors, robots, audit, events
//!   (not in the seeds; seed 000's envelope)
//! - [`console`]: the web console's pages and the reads they need (seed
//!   000 envelope); [`metrics`]: `/metrics` and the request-counting layer
//! - [`config`]: the start-up configuration file
//! - [`files`]: where uploaded bytes live
//! - [`openapi`]: `/openapi.json`, generated from the handlers and their
//!   types, and Swagger UI at `/docs`
//! - [`clock`]: envelopes are stamped with the engine's clock
//!
//! A host builds an [`AppState`], mounts [`app`] (or the modules' routers)
//! into its own axum application, and drives [`rpa_core::Engine::tick`]
//! (the `rpa` crate's `server::run_timers` does).

pub mod admin;
pub mod ai;
pub mod analysis;
pub mod business;
pub mod catalogue;
pub mod centre;
pub mod clock;
pub mod config;
pub mod console;
pub mod content;
pub mod designers;
pub mod export;
pub mod federation;
pub mod files;
pub mod images;
pub mod licenses;
pub mod listener;
pub mod loonflow;
pub mod metrics;
pub mod odata;
pub mod openapi;
pub mod robot;
pub mod seed000;
pub mod service;
pub mod sso;
pub mod uipath;
mod wire;

use std::sync::Arc;

use axum::Router;
use axum::extract::{DefaultBodyLimit, MatchedPath};
use axum::http::{Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use rpa_core::{Engine, Store};

pub use files::Files;

/// What every handler needs.
pub struct AppState<S> {
    /// The engine.
    pub engine: Arc<Engine<S>>,
    /// Uploaded files and packages.
    pub files: Files,
    /// Settings.
    pub settings: Arc<HttpSettings>,
    /// Calls the services behind AI capabilities (`None`: calls answer 503).
    pub ai: Option<Arc<dyn rpa_core::ai::Service>>,
    /// The organisation's directory, which checks its users' passwords
    /// (`None`: none configured; its users cannot log in).
    pub directory: Option<Arc<dyn rpa_core::identity::Directory>>,
    /// The OpenID Connect provider the console signs in with (`None`: none).
    pub sso: Option<Arc<dyn sso::Sso>>,
}

impl<S> Clone for AppState<S> {
    fn clone(&self) -> Self {
        AppState {
            engine: self.engine.clone(),
            files: self.files.clone(),
            settings: self.settings.clone(),
            ai: self.ai.clone(),
            directory: self.directory.clone(),
            sso: self.sso.clone(),
        }
    }
}

/// HTTP settings.
#[derive(Debug, Clone)]
pub struct HttpSettings {
    /// Base URL clients reach this server at (for `fileUrl` and `packageDownloadUri`).
    pub public_url: String,
    /// Largest JSON request body, in bytes.
    pub max_json_body: usize,
    /// Largest upload (files, packages), in bytes.
    pub max_upload: usize,
    /// Verifies signed file links (`?expires=&signature=`, see
    /// [`rpa_core::auth::sign_link`]): the engine's `link_key`.
    pub link_key: Option<rpa_core::auth::LinkKey>,
    /// The AutomationEdge listener's accounts (seed 003 Basic credentials).
    pub listeners: Vec<listener::ListenerAccount>,
    /// The applications that call the workflow API (seed 004).
    pub flow_apps: Vec<loonflow::FlowApp>,
    /// The OAuth clients of the UiPath-compatible surface (seed 002).
    pub uipath_clients: Vec<uipath::UiPathClient>,
    /// How long their tokens last.
    pub uipath_token_ttl_ms: u64,
    /// The bearer token `/metrics` asks for (`None`: the page is open).
    pub metrics_token: Option<String>,
    /// The children whose reports this server accepts (two-level collaboration).
    pub children: Vec<federation::ChildAccount>,
}

impl Default for HttpSettings {
    fn default() -> Self {
        HttpSettings {
            public_url: "http://127.0.0.1:8080".into(),
            max_json_body: 1 << 20,
            max_upload: 64 << 20,
            link_key: None,
            listeners: Vec::new(),
            flow_apps: Vec::new(),
            uipath_clients: Vec::new(),
            uipath_token_ttl_ms: 3_600_000,
            metrics_token: None,
            children: Vec::new(),
        }
    }
}

/// Every API of this crate on one router. JSON bodies are limited to
/// `max_json_body`, uploads (files, packages) to `max_upload`.
pub fn app<S: Store>(state: AppState<S>) -> Router {
    let json = state.settings.max_json_body;
    let upload = state.settings.max_upload;
    Router::new()
        .merge(business::router().layer(DefaultBodyLimit::max(json)))
        .merge(robot::router().layer(DefaultBodyLimit::max(json)))
        .merge(admin::router().layer(DefaultBodyLimit::max(json)))
        .merge(licenses::router().layer(DefaultBodyLimit::max(json)))
        .merge(ai::admin_router().layer(DefaultBodyLimit::max(json)))
        .merge(analysis::router().layer(DefaultBodyLimit::max(json)))
        .merge(content::router().layer(DefaultBodyLimit::max(json)))
        .merge(service::router().layer(DefaultBodyLimit::max(json)))
        .merge(designers::router().layer(DefaultBodyLimit::max(json)))
        .merge(images::router().layer(DefaultBodyLimit::max(json)))
        .merge(centre::router().layer(DefaultBodyLimit::max(json)))
        .merge(federation::router().layer(DefaultBodyLimit::max(json)))
        .merge(catalogue::router().layer(DefaultBodyLimit::max(json)))
        .merge(export::router().layer(DefaultBodyLimit::max(json)))
        .merge(listener::router().layer(DefaultBodyLimit::max(json)))
        .merge(loonflow::router().layer(DefaultBodyLimit::max(json)))
        .merge(uipath::router().layer(DefaultBodyLimit::max(json)))
        .merge(
            robot::upload_router()
                .merge(ai::robot_router())
                .merge(admin::upload_router())
                .merge(images::upload_router())
                .merge(uipath::upload_router())
                .layer(DefaultBodyLimit::max(upload)),
        )
        .merge(openapi::router())
        .merge(console::router())
        .merge(sso::router())
        .merge(metrics::router())
        .fallback(no_route)
        .method_not_allowed_fallback(no_route)
        .layer(axum::middleware::from_fn_with_state(state.clone(), clock::stamp::<S>))
        .layer(axum::middleware::from_fn_with_state(state.clone(), metrics::track::<S>))
        .with_state(state)
}

/// A path no endpoint serves (404) or a method the path does not take
/// (405), answered in the envelope of the API family its prefix names:
/// seed 001's under `/robots/`, `/v1/file/`, `/v1/ai/` and `/design/`, seed 000's
/// elsewhere (`/rpa/api/`, `/admin/`).
async fn no_route(method: Method, uri: Uri, matched: Option<MatchedPath>) -> Response {
    let (status, what) = match matched {
        Some(_) => (StatusCode::METHOD_NOT_ALLOWED, "does not take"),
        None => (StatusCode::NOT_FOUND, "has no endpoint for"),
    };
    let path = uri.path();
    let message = format!("{path} {what} {method}");
    if ["/robots/", "/v1/file/", "/v1/ai/", "/design/"]
        .iter()
        .any(|p| path.starts_with(p))
    {
        robot::RobotError::NoRoute(status, message).into_response()
    } else if path.starts_with("/api/v1.0/") {
        loonflow::no_route(message)
    } else if path.starts_with("/listener/") {
        listener::ListenerError::NoRoute(status, message).into_response()
    } else {
        seed000::BusinessError::NoRoute(status, message).into_response()
    }
}
