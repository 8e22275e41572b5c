//! The server runtime (feature `server`): what a host needs besides the
//! routers, so that `examples/server.rs` is only a command line over it.
//!
//! ```text
//!  Options ──► open the store (memory | SQLite file | PostgreSQL URL, sealed with the secret key)
//!          ──► Engine (clock, time zone, heartbeat timeout, node) with the robot hub as transport
//!          ──► the configuration file (or the demo configuration)
//!          ──► serve: every HTTP API + the robot hub on one listener, the timer loop beside it
//!              (deadlines, schedules, tickets moved by robot jobs and timers), on PostgreSQL
//!              the dispatch of what other nodes' commits leave to this one, the poster of
//!              workflow hooks, the webhook subscriptions' deliveries, and the event consumers
//!              asked for (--events-file, --events-url)
//!  shutdown (SIGTERM, Ctrl-C, or the host's own future)
//!          ──► stop accepting; drain the requests in flight; close every robot
//!              WebSocket (Close 1001) and record its disconnect; stop the timers
//! ```
//!
//! [`run`] does all of it; [`shutdown_signal`] is the future a standalone
//! server passes. A host that embeds the engine in its own axum service
//! wires its store and engine itself and uses the pieces: [`run_timers`],
//! [`dispatch_on_notice`] (on PostgreSQL), [`secret_key`], and [`rpa_adapters_ws::Hub::close_all`] in its shutdown.
//!
//! Memory: the listener takes a backlog of 4,096 connections, so 10,000
//! robots reconnecting at once after a restart all get in. What such a
//! storm frees goes back to the system only with an allocator that returns
//! it: `examples/server.rs` uses jemalloc with its background thread (glibc's
//! allocator keeps it; `docs/PERFORMANCE.md` "Reconnect storm" has figures).

use std::future::Future;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use rpa_adapters_http::config::Config;
use rpa_adapters_http::{AppState, Files, HttpSettings};
use rpa_adapters_ws::{Hub, HubState};
use rpa_core::auth::{LinkKey, PasswordCost};
use rpa_core::{Engine, EngineConfig, MemoryStore, Store, SystemClock, Tz};
use rpa_store_sql::{Sealing, SqlOptions, SqlStore};
use tokio::sync::watch;

use crate::consume::{EventFile, HttpSink, run_consumer};

/// The demo configuration a server loads when it is given none.
pub const DEMO_CONFIG: &str = include_str!("../examples/demo-config.json");

/// The demo configuration's package of "Invoice entry", installed at start
/// when that process has none.
pub const DEMO_PACKAGE: &str = include_str!("../examples/demo-package.sh");

/// The demo configuration's processes and their packages, installed at
/// start for those that have none.
pub const DEMO_PACKAGES: [(&str, &str); 3] = [
    ("Invoice entry", DEMO_PACKAGE),
    ("vpn-grant", include_str!("../examples/vpn-grant-package.sh")),
    ("payment-entry", include_str!("../examples/payment-entry-package.sh")),
];

/// The consumer that writes [`Options::events_file`].
pub const EVENT_FILE_CONSUMER: &str = "event-file";
/// The consumer that posts to [`Options::events_url`].
pub const EVENT_WEBHOOK_CONSUMER: &str = "event-webhook";
/// How long a webhook receiver has to answer a batch.
const WEBHOOK_TIMEOUT: Duration = Duration::from_secs(10);

/// How long a stopping server waits for its robot connections to close.
const CLOSE_WAIT: Duration = Duration::from_secs(10);

/// What a server is told to do.
#[derive(Debug, Clone)]
pub struct Options {
    /// Address to listen on.
    pub listen: SocketAddr,
    /// Store: an SQLite file path (created if missing), a `postgres://` URL, or `memory`.
    pub db: String,
    /// JSON configuration loaded at start-up (`None`: the demo configuration).
    pub config: Option<PathBuf>,
    /// Directory for uploaded files and packages.
    pub files: PathBuf,
    /// Base URL clients reach this server at (default `http://<listen>`).
    pub public_url: Option<String>,
    /// The server's time zone.
    pub time_zone: Tz,
    /// Seconds without a heartbeat before a robot is Unresponsive.
    pub heartbeat_timeout_s: u64,
    /// Extra seconds of silence tolerated (default a third of the timeout).
    pub heartbeat_slack_s: Option<u64>,
    /// The key that seals vendor secrets at rest: this file (64 hex
    /// characters, created with a fresh key if missing), unless
    /// `RPA_SECRET_KEY` is set.
    pub secret_key_file: PathBuf,
    /// This node's number in a cluster's leases (default random).
    pub node: Option<u64>,
    /// Minutes within which five wrong passwords lock a user (default 30).
    pub lockout_window_min: u64,
    /// Minutes after which a locked user is unlocked by itself (default:
    /// never; an administrator unlocks).
    pub auto_unlock_min: Option<u64>,
    /// Append every domain event to this file as a line of JSON (consumer
    /// `event-file`; see [`crate::consume::EventFile`]).
    pub events_file: Option<PathBuf>,
    /// POST every domain event to this URL, in batches (consumer
    /// `event-webhook`; see [`crate::consume::HttpSink`]), signed with
    /// `events_secret` if given.
    pub events_url: Option<String>,
    /// The secret `events_url` deliveries are signed with.
    pub events_secret: Option<Secret>,
    /// Minutes a package link in Execute works without credentials (default 60).
    pub package_link_ttl_min: u64,
    /// The delays (ms) before each new try of a failed webhook delivery
    /// (default [`rpa_core::webhook::RETRY_MS`]).
    pub webhook_retry_ms: Vec<u64>,
    /// The bearer token `/metrics` asks for (`None`: open).
    pub metrics_token: Option<Secret>,
    /// Days run files (screenshots, recordings, outputs) are kept (`None`: no limit).
    pub run_files_days: Option<u64>,
    /// Most megabytes run files may hold; the oldest go first (`None`: no limit).
    pub run_files_max_mb: Option<u64>,
    /// Days the run logs of an ended job are kept (`None`: no limit).
    pub run_logs_days: Option<u64>,
    /// Seconds between two applications of the retention (default 600).
    pub retention_every_s: u64,
}

/// A secret: shown as `***` by `Debug`, so logging the options never shows it.
#[derive(Clone)]
pub struct Secret(pub String);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("***")
    }
}

impl Default for Options {
    fn default() -> Self {
        Options {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            db: "./rpa.db".into(),
            config: None,
            files: "./rpa-files".into(),
            public_url: None,
            time_zone: chrono_tz::Asia::Shanghai,
            heartbeat_timeout_s: 30,
            heartbeat_slack_s: None,
            secret_key_file: "./rpa.key".into(),
            node: None,
            lockout_window_min: 30,
            auto_unlock_min: None,
            events_file: None,
            events_url: None,
            events_secret: None,
            package_link_ttl_min: 60,
            webhook_retry_ms: rpa_core::webhook::RETRY_MS.to_vec(),
            metrics_token: None,
            run_files_days: None,
            run_files_max_mb: None,
            run_logs_days: None,
            retention_every_s: 600,
        }
    }
}

/// Why a server could not start or serve (said in words; nothing secret).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerError(pub String);

impl std::fmt::Display for ServerError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ServerError {}

fn fail(e: impl std::fmt::Display) -> ServerError {
    ServerError(e.to_string())
}

/// Completes on SIGTERM (what systemd and container runtimes send) or
/// Ctrl-C (SIGINT).
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot listen for SIGTERM");
                std::future::pending::<()>().await
            }
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => tracing::info!("interrupted"),
        () = term => tracing::info!("terminated"),
    }
}

/// Runs a server as `options` say until `shutdown` completes, then stops
/// gracefully (see the module docs).
pub async fn run(options: Options, shutdown: impl Future<Output = ()> + Send + 'static) -> Result<(), ServerError> {
    if options.config.is_none() && !options.listen.ip().is_loopback() {
        return Err(fail(format!(
            "{}: the demo configuration, whose passwords are published, is served on a loopback address only; \
             pass --config with your own users to listen on other addresses",
            options.listen
        )));
    }
    let hub = Hub::new();
    let db = options.db.clone();
    if db == "memory" {
        // Nothing outlives the process: neither do its links.
        let links = LinkKey(rand_key());
        serve(MemoryStore::new(), hub, "memory", None, links, options, shutdown).await
    } else if db.starts_with("postgres://") || db.starts_with("postgresql://") {
        let key = secret_key(&options.secret_key_file)?;
        let sql = SqlOptions {
            sealing: Sealing::Key(key),
            ..SqlOptions::default()
        };
        let store = SqlStore::connect(&db, sql)
            .await
            .map_err(|e| fail(format!("--db: {e}")))?;
        // Commands committed by other nodes for robots connected here.
        store.listen(hub.clone());
        let bell = store.doorbell();
        serve(store, hub, "postgres", bell, link_key(&key), options, shutdown).await
    } else {
        let url = SqlStore::sqlite_url(Path::new(&db));
        let key = secret_key(&options.secret_key_file)?;
        let sql = SqlOptions {
            sealing: Sealing::Key(key),
            ..SqlOptions::default()
        };
        let store = SqlStore::connect(&url, sql)
            .await
            .map_err(|e| fail(format!("--db {db}: {e}")))?;
        serve(store, hub, "sqlite", None, link_key(&key), options, shutdown).await
    }
}

/// The key package links are signed with, derived from the secret key so
/// that every node of a cluster signs alike (and links survive restarts).
fn link_key(secret: &[u8; 32]) -> LinkKey {
    LinkKey(rpa_core::auth::derive_key(secret, b"rpa package links"))
}

fn rand_key() -> [u8; 32] {
    // The SHA-256 of 256 fresh random bits.
    rpa_core::auth::new_token().1
}

async fn serve<S: Store>(
    store: S,
    hub: Arc<Hub>,
    kind: &'static str,
    doorbell: Option<Arc<tokio::sync::Notify>>,
    links: LinkKey,
    options: Options,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServerError> {
    let (config_text, demo) = match &options.config {
        Some(path) => (
            std::fs::read_to_string(path).map_err(|e| fail(format!("{}: {e}", path.display())))?,
            false,
        ),
        None => (DEMO_CONFIG.to_owned(), true),
    };
    let config = Config::parse(&config_text).map_err(fail)?;
    let public_url = options
        .public_url
        .clone()
        .unwrap_or_else(|| format!("http://{}", options.listen));
    let engine_config = EngineConfig {
        link_key: Some(links.clone()),
        ..engine_config(&options, &public_url)
    };
    let engine = Arc::new(Engine::new(store, Arc::new(SystemClock), engine_config).with_transport(hub.clone()));
    // Nodes of one cluster that start together apply the same configuration
    // side by side: one that lost a race for a row applies it again (it is
    // idempotent) on what the other wrote.
    let mut attempt = 0;
    loop {
        match config.apply(&engine).await {
            Ok(()) => break,
            Err(
                rpa_core::Error::Store(
                    rpa_core::error::StoreError::Conflict | rpa_core::error::StoreError::Duplicate(_),
                )
                | rpa_core::Error::AlreadyExists(_),
            ) if attempt < 10 => {
                attempt += 1;
                tokio::time::sleep(Duration::from_millis(50 * attempt)).await;
            }
            Err(e) => return Err(fail(format!("applying the configuration: {e}"))),
        }
    }
    // After the configuration: a workflow of its own of the same name wins.
    if engine
        .install_templates()
        .await
        .map_err(|e| fail(format!("installing the shipped workflows: {e}")))?
    {
        tracing::info!(workflow = rpa_core::service::WORKFLOW, "shipped workflow installed");
    }
    // The organisation's directory: synced once now (users it lists can log
    // in at once), then every `syncSeconds` by one node.
    let ldap = config.ldap.clone().map(|d| Arc::new(crate::ldap::Ldap::new(d)));
    if let Some(l) = &ldap {
        crate::ldap::sync_once(&engine, l).await;
    }
    let files = Files::dir(&options.files).map_err(|e| fail(format!("{}: {e}", options.files.display())))?;
    let state = AppState {
        engine: engine.clone(),
        files,
        settings: Arc::new(HttpSettings {
            public_url: public_url.clone(),
            link_key: Some(links),
            listeners: config.listener_accounts(),
            flow_apps: config.flow_apps(),
            uipath_clients: config.uipath_clients(),
            uipath_token_ttl_ms: config.uipath_token_ttl_ms(),
            metrics_token: options.metrics_token.as_ref().map(|s| s.0.clone()),
            children: config.child_accounts(),
            ..HttpSettings::default()
        }),
        ai: Some(Arc::new(crate::ai::Services::default())),
        directory: ldap.clone().map(|l| l as Arc<dyn rpa_core::identity::Directory>),
        sso: match &config.oidc {
            Some(def) => Some(Arc::new(
                crate::oidc::Oidc::new(def.clone(), &public_url).map_err(|e| fail(format!("oidc: {e}")))?,
            ) as Arc<dyn rpa_adapters_http::sso::Sso>),
            None => None,
        },
    };
    if demo {
        install_demo_package(&state).await?;
    }
    let listener = listen(options.listen).map_err(|e| fail(format!("{}: {e}", options.listen)))?;

    // One signal for every part that stops.
    let (stop_tx, stop_rx) = watch::channel(false);
    tokio::spawn(async move {
        shutdown.await;
        let _ = stop_tx.send(true);
    });
    let timers = tokio::spawn(run_timers(engine.clone(), stopped(stop_rx.clone())));
    let dispatcher =
        doorbell.map(|bell| tokio::spawn(dispatch_on_notice(engine.clone(), bell, stopped(stop_rx.clone()))));
    let integrator = tokio::spawn(run_integrator(engine.clone(), stopped(stop_rx.clone())));
    let hooks = tokio::spawn(crate::hooks::run_hooks(engine.clone(), stopped(stop_rx.clone())));
    let retry = options
        .webhook_retry_ms
        .iter()
        .map(|ms| std::time::Duration::from_millis(*ms))
        .collect();
    let webhooks = tokio::spawn(crate::webhooks::run_webhooks(
        engine.clone(),
        retry,
        stopped(stop_rx.clone()),
    ));
    let provisions = config
        .pools
        .iter()
        .filter(|p| !p.command.is_empty())
        .map(|p| crate::pools::Provision {
            pool: p.name.clone(),
            command: p.command.clone(),
        })
        .collect();
    let provisioners = tokio::spawn(crate::pools::run_provisioners(
        engine.clone(),
        state.files.clone(),
        provisions,
        stopped(stop_rx.clone()),
    ));
    let retention = tokio::spawn(crate::retention::run_retention(
        engine.clone(),
        state.files.clone(),
        rpa_core::retention::Policy {
            max_age_days: options.run_files_days,
            max_bytes: options.run_files_max_mb.map(|mb| mb.saturating_mul(1 << 20)),
            log_days: options.run_logs_days,
        },
        Duration::from_secs(options.retention_every_s.max(1)),
        stopped(stop_rx.clone()),
    ));
    let mut consumers = Vec::new();
    if let Some(l) = &ldap {
        let (engine, l, stop) = (engine.clone(), l.clone(), stopped(stop_rx.clone()));
        consumers.push(tokio::spawn(
            async move { crate::ldap::run_sync(engine, l, stop).await },
        ));
    }
    if let Some(path) = &options.events_file {
        let sink = EventFile::new(path);
        let (engine, stop) = (engine.clone(), stopped(stop_rx.clone()));
        consumers.push(tokio::spawn(async move {
            run_consumer(engine, EVENT_FILE_CONSUMER, sink, stop).await
        }));
    }
    if let Some(url) = &options.events_url {
        let secret = options.events_secret.as_ref().map(|s| s.0.as_str());
        let sink = HttpSink::new(url, secret, WEBHOOK_TIMEOUT).map_err(|e| fail(format!("--events-url: {e}")))?;
        let (engine, stop) = (engine.clone(), stopped(stop_rx.clone()));
        consumers.push(tokio::spawn(async move {
            run_consumer(engine, EVENT_WEBHOOK_CONSUMER, sink, stop).await
        }));
    }
    if let Some(parent) = &config.parent {
        let sink = crate::parent::ParentSink::new(engine.clone(), &parent.url, &parent.name, &parent.secret)
            .map_err(|e| fail(format!("parent: {e}")))?;
        let (engine, stop) = (engine.clone(), stopped(stop_rx.clone()));
        tracing::info!(parent = %parent.name, "reporting run results to the parent");
        consumers.push(tokio::spawn(async move {
            run_consumer(engine, crate::parent::PARENT_CONSUMER, sink, stop).await
        }));
    }
    // WebSocket sessions are not requests the HTTP server waits for: close
    // them, each recording its robot's disconnect, while requests drain.
    let closing = {
        let (hub, stop) = (hub.clone(), stop_rx.clone());
        tokio::spawn(async move {
            stopped(stop).await;
            if tokio::time::timeout(CLOSE_WAIT, hub.close_all()).await.is_err() {
                tracing::warn!("robot connections still open after {CLOSE_WAIT:?}");
            }
        })
    };

    tracing::info!(url = %public_url, store = kind, db = %redact(&options.db), node = engine.node(), "rpa server listening");
    if demo {
        tracing::warn!(
            "DEMO CONFIGURATION: its users and passwords are published in examples/demo-config.json; \
             anyone who can reach this server can log in as them. Serving on loopback only; \
             pass --config with your own users for anything else"
        );
    }
    let mut routes = rpa_adapters_http::app(state.clone());
    if let Some(p) = &config.parent {
        let link = crate::parent::ParentLink {
            url: p.url.clone(),
            name: p.name.clone(),
            secret: p.secret.clone(),
        };
        routes = routes.merge(crate::parent::pull_router(link).with_state(state));
    }
    let app = traced(routes.merge(rpa_adapters_ws::router(HubState {
        engine: engine.clone(),
        hub,
    })));
    let served = axum::serve(listener, app)
        .with_graceful_shutdown(async move {
            stopped(stop_rx).await;
            tracing::info!("shutting down: draining requests, closing robot connections");
        })
        .await
        .map_err(|e| fail(format!("server: {e}")));
    let _ = closing.await;
    let _ = timers.await;
    if let Some(d) = dispatcher {
        let _ = d.await;
    }
    let _ = integrator.await;
    let _ = hooks.await;
    let _ = webhooks.await;
    let _ = provisioners.await;
    let _ = retention.await;
    for c in consumers {
        let _ = c.await;
    }
    tracing::info!("stopped");
    served
}

/// Gives every request an id (`X-Request-Id`: the client's, or a fresh
/// UUID), sends it back, and runs the request in a `request` span carrying
/// it, the method and the path (never the query, which may hold a signed
/// link's signature), so every log line of a request names it.
pub fn traced(app: axum::Router) -> axum::Router {
    use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
    let span = |req: &axum::http::Request<axum::body::Body>| {
        let id = req
            .headers()
            .get("x-request-id")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        tracing::info_span!("request", id = %id, method = %req.method(), path = %req.uri().path())
    };
    app.layer(PropagateRequestIdLayer::x_request_id())
        .layer(tower_http::trace::TraceLayer::new_for_http().make_span_with(span))
        .layer(SetRequestIdLayer::x_request_id(MakeRequestUuid))
}

/// The engine's settings for `options`. Passwords are hashed at the
/// production cost (argon2id, 19 MiB, 2 passes: OWASP's recommendation),
/// whatever the configuration.
fn engine_config(options: &Options, public_url: &str) -> EngineConfig {
    EngineConfig {
        file_upload_uri: Some(format!("{}/v1/file/file/upload", public_url.trim_end_matches('/'))),
        time_zone: options.time_zone,
        heartbeat_timeout_ms: options.heartbeat_timeout_s * 1000,
        heartbeat_slack_ms: options.heartbeat_slack_s.unwrap_or(options.heartbeat_timeout_s / 3) * 1000,
        node: options.node,
        failed_login_window_ms: options.lockout_window_min * 60_000,
        auto_unlock_ms: options.auto_unlock_min.map(|m| m * 60_000),
        password_cost: PasswordCost::default(),
        link_ttl_ms: options.package_link_ttl_min * 60_000,
        ..EngineConfig::default()
    }
}

/// Completes once `rx` says stop (or its sender is gone).
async fn stopped(mut rx: watch::Receiver<bool>) {
    let _ = rx.wait_for(|s| *s).await;
}

/// Fires the engine's deadlines (heartbeat timeouts, expirations, back-offs)
/// until `shutdown` completes: at each next deadline, and at least every
/// second (and at least every quarter of the node lease). With several
/// nodes on one database only the holder of the timer lease fires them; the
/// others try for the lease at each tick. The node's lease, and the timer
/// lease while its ticks make progress, are kept on a task of their own.
pub async fn run_timers<S: Store>(engine: Arc<Engine<S>>, shutdown: impl Future<Output = ()>) {
    tokio::pin!(shutdown);
    // Its own task: a tick slowed by load does not hold it up.
    let _leases = AbortOnDrop(tokio::spawn(keep_leases(engine.clone())));
    let mut leading = false;
    loop {
        let lead = match engine.tick().await {
            Ok(report) => report.leader,
            Err(e) => {
                tracing::error!(error = %e, "timer tick failed");
                leading
            }
        };
        if lead != leading {
            tracing::info!(
                node = engine.node(),
                "{}",
                if lead {
                    "this node fires the timers"
                } else {
                    "another node fires the timers"
                }
            );
            leading = lead;
        }
        let now = engine.now();
        let next = if lead { engine.next_timeout().await } else { Ok(None) };
        let most = (engine.node_lease_ms() / 4).clamp(10, 1000);
        let wait = match next {
            Ok(Some(t)) if t > now => Duration::from_millis(((t.0 - now.0) as u64).min(most)),
            Ok(Some(_)) => Duration::from_millis(10),
            _ => Duration::from_millis(most),
        };
        tokio::select! {
            _ = &mut shutdown => return,
            _ = tokio::time::sleep(wait) => {}
        }
    }
}

/// Dispatches each time `bell` rings until `shutdown` completes: a node
/// gives jobs only to the robots whose sockets it holds, so when another
/// node commits a job that waits for a robot (or frees a robot), this node
/// looks for its own idle robots at once (`SqlStore::doorbell` rings). Rings
/// that come while a dispatch runs make one more.
pub async fn dispatch_on_notice<S: Store>(
    engine: Arc<Engine<S>>,
    bell: Arc<tokio::sync::Notify>,
    shutdown: impl Future<Output = ()>,
) {
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            _ = &mut shutdown => return,
            _ = bell.notified() => {}
        }
        if let Err(e) = engine.dispatch_all().await {
            tracing::warn!(error = %e, "dispatch after another node's commit failed");
        }
    }
}

/// Aborts its task when dropped.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Keeps this node's lease (which says it lives, and with it the WebSocket
/// robots it holds) and the timer lease it holds (while its ticks make
/// progress: [`Engine::keep_timer_lease`]) on their own timer, every sixth of
/// the node lease: a tick slowed by load lets neither lapse. Never returns.
async fn keep_leases<S: Store>(engine: Arc<Engine<S>>) {
    let every = Duration::from_millis((engine.node_lease_ms() / 6).clamp(10, 1000));
    let mut held = true;
    loop {
        match engine.keep_node_lease().await {
            Ok(h) if h != held => {
                if h {
                    tracing::info!(node = engine.node(), "this node holds its lease again");
                } else {
                    tracing::warn!(
                        node = engine.node(),
                        "this node's lease lapsed: its robots may be closed elsewhere"
                    );
                }
                held = h;
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "cannot renew this node's lease"),
        }
        if let Err(e) = engine.keep_timer_lease().await {
            tracing::warn!(error = %e, "cannot renew the timer lease");
        }
        tokio::time::sleep(every).await;
    }
}

/// How often the audit integrator integrates what the commits wrote: the
/// bound on an event's wait, besides the integration itself. A step takes
/// everything that waits (up to its size), so the longer the pause, the
/// fewer (and larger) its transactions.
const INTEGRATE_EVERY: Duration = Duration::from_millis(20);

/// Integrates committed audit events into the chain until `shutdown`
/// completes (stores that link in the commit have nothing to do). With
/// several nodes on one database the holder of the integrator lease does
/// it; the others try for the lease now and then, and take over within the
/// lease's life when its holder dies. The lease is renewed at a third of its
/// life, not at every step.
pub async fn run_integrator<S: Store>(engine: Arc<Engine<S>>, shutdown: impl Future<Output = ()>) {
    tokio::pin!(shutdown);
    let renew_every = Duration::from_millis((engine.config().timer_lease_ms / 3).max(10));
    let mut holding = false;
    let mut renewed: Option<tokio::time::Instant> = None;
    loop {
        if renewed.is_none_or(|t| t.elapsed() >= renew_every) {
            let held = match engine.hold_integrator().await {
                Ok(h) => h,
                Err(e) => {
                    tracing::warn!(error = %e, "cannot renew the audit integrator's lease");
                    false
                }
            };
            if held != holding {
                tracing::info!(node = engine.node(), held, "audit integrator lease");
                holding = held;
            }
            renewed = Some(tokio::time::Instant::now());
        }
        let wait = if !holding {
            renew_every
        } else {
            match engine.integrate_audit().await {
                // More waits behind a full step.
                Ok(done) if done.full => Duration::ZERO,
                Ok(_) => INTEGRATE_EVERY,
                Err(e) => {
                    tracing::error!(error = %e, "audit integration failed");
                    Duration::from_secs(1)
                }
            }
        };
        tokio::select! {
            _ = &mut shutdown => return,
            _ = tokio::time::sleep(wait) => {}
        }
    }
}

/// Gives the demo's processes their packages ([`DEMO_PACKAGES`]) where they have none.
async fn install_demo_package<S: Store>(state: &AppState<S>) -> Result<(), ServerError> {
    let processes = state
        .engine
        .processes()
        .await
        .map_err(|e| fail(format!("reading processes: {e}")))?;
    for (name, package) in DEMO_PACKAGES {
        let Some(p) = processes
            .iter()
            .find(|p| p.spec.name == name && p.spec.package_uri.is_empty())
        else {
            continue;
        };
        rpa_adapters_http::admin::install_package(
            state,
            rpa_core::model::Actor::System,
            p,
            None,
            package.as_bytes().to_vec().into(),
        )
        .await
        .map_err(|e| fail(format!("installing the demo package of {name}: {e}")))?;
        tracing::info!("demo package installed for \"{name}\"");
    }
    Ok(())
}

/// The key that seals vendor secrets: `RPA_SECRET_KEY`, or the key file
/// (created, readable by this user only, with a fresh random key if missing).
pub fn secret_key(path: &Path) -> Result<[u8; 32], ServerError> {
    let parse = |text: &str, from: &str| -> Result<[u8; 32], ServerError> {
        let bad = || fail(format!("{from}: the secret key must be 64 hex characters"));
        let bytes = hex::decode(text).map_err(|_| bad())?;
        bytes.try_into().map_err(|_| bad())
    };
    if let Ok(k) = std::env::var("RPA_SECRET_KEY") {
        return parse(k.trim(), "RPA_SECRET_KEY");
    }
    rpa_store_sql::key_file(path).map_err(fail)
}

/// A database URL without its password, for logs.
pub fn redact(db: &str) -> String {
    match (db.find("://"), db.find('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let creds = &db[scheme + 3..at];
            let user = creds.split(':').next().unwrap_or("");
            format!("{}{user}:***{}", &db[..scheme + 3], &db[at..])
        }
        _ => db.to_owned(),
    }
}

/// Connections the kernel may hold for the server before it accepts them
/// (capped by `net.core.somaxconn`). Robots all reconnect at once after a
/// restart; tokio's default of 1,024 turns most of such a storm away.
const ACCEPT_BACKLOG: u32 = 4096;

fn listen(addr: std::net::SocketAddr) -> std::io::Result<tokio::net::TcpListener> {
    let socket = match addr {
        std::net::SocketAddr::V4(_) => tokio::net::TcpSocket::new_v4()?,
        std::net::SocketAddr::V6(_) => tokio::net::TcpSocket::new_v6()?,
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(ACCEPT_BACKLOG)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_demo_configuration_is_refused_on_an_address_others_can_reach() {
        let options = Options {
            listen: "0.0.0.0:0".parse().unwrap(),
            db: "memory".into(),
            ..Options::default()
        };
        let e = run(options, std::future::pending()).await.unwrap_err();
        assert!(e.0.contains("loopback"), "{e}");
    }

    #[test]
    fn servers_hash_passwords_at_the_production_cost() {
        let demo = engine_config(&Options::default(), "http://127.0.0.1:8080");
        assert_eq!(demo.password_cost, PasswordCost::default());
        assert_ne!(demo.password_cost, PasswordCost::TESTING);
        assert_eq!(PasswordCost::default().memory_kib, 19 * 1024);
        assert_eq!(PasswordCost::default().iterations, 2);
    }

    #[test]
    fn passwords_never_reach_the_log() {
        assert_eq!(
            redact("postgres://rpa:s3cret@db:5432/rpa"),
            "postgres://rpa:***@db:5432/rpa"
        );
        assert_eq!(redact("./rpa.db"), "./rpa.db");
    }

    #[test]
    fn a_secret_key_file_is_created_once_and_read_back() {
        let dir = std::env::temp_dir().join(format!("rpa-key-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("rpa.key");
        // RPA_SECRET_KEY would take precedence; tests do not set it.
        let first = secret_key(&path).unwrap();
        assert_eq!(secret_key(&path).unwrap(), first);
        std::fs::write(&path, "not hex").unwrap();
        assert!(secret_key(&path).is_err());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
