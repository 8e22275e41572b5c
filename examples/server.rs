//! The rpa server: every API of `rpa-adapters-http` and the robot WebSocket
//! hub of `rpa-adapters-ws` on one port.
//!
//! `cargo run --release --example server` starts it on 127.0.0.1:8080 with
//! the demo configuration (`examples/demo-config.json`); `--help` lists the options.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use clap::Parser;
use rpa::core::auth::PasswordCost;
use rpa::http::config::Config;
use rpa::http::{AppState, Files, HttpSettings};
use rpa::sql::{SqlOptions, SqlStore};
use rpa::ws::{Hub, HubState};
use rpa::{Engine, EngineConfig, MemoryStore, Store, SystemClock};
use tokio::sync::watch;

const DEMO_CONFIG: &str = include_str!("demo-config.json");

/// Command-line options.
#[derive(Parser, Debug)]
#[command(about = "rpa: an RPA orchestration server (business API, robot HTTP API, administration)")]
struct Args {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    /// Store: an SQLite file path (created if missing), a `postgres://` URL, or `memory`.
    #[arg(long, default_value = "./rpa.db")]
    db: String,
    /// JSON configuration loaded at start-up (default: the built-in demo configuration).
    #[arg(long)]
    config: Option<PathBuf>,
    /// Directory for uploaded files and packages.
    #[arg(long, default_value = "./rpa-files")]
    files: PathBuf,
    /// Base URL clients reach this server at (default: http://<listen>).
    #[arg(long)]
    public_url: Option<String>,
    /// The server's time zone, an IANA name such as Europe/Berlin (calendar
    /// days for maxDayNum, seed 000 times; daylight saving is followed).
    #[arg(long, default_value = "Asia/Shanghai")]
    time_zone: String,
    /// Seconds without a heartbeat before a robot is Unresponsive and its job fails over.
    #[arg(long, default_value_t = 30)]
    heartbeat_timeout: u64,
    /// File holding the key (64 hex characters) that encrypts vendor secrets
    /// in the database; created with a fresh key if missing. The environment
    /// variable RPA_SECRET_KEY, if set, is used instead. Nodes sharing a
    /// PostgreSQL database must share the key.
    #[arg(long, default_value = "./rpa.key")]
    secret_key_file: PathBuf,
    /// Extra seconds of silence tolerated, so most heartbeats need no write
    /// (a silent robot is lost between the timeout and timeout + slack).
    /// Default: a third of the timeout.
    #[arg(long)]
    heartbeat_slack: Option<u64>,
    /// This node's number in a cluster's leases (default: random). Nodes
    /// sharing a PostgreSQL database must have different numbers.
    #[arg(long)]
    node: Option<u64>,
}

#[tokio::main]
async fn main() {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info,tower_http=warn".into()),
        )
        .init();
    if let Err(e) = run(Args::parse()).await {
        tracing::error!("{e}");
        std::process::exit(1);
    }
}

async fn run(args: Args) -> Result<(), String> {
    let hub = Hub::new();
    if args.db == "memory" {
        serve(MemoryStore::new(), hub, "memory", args).await
    } else if args.db.starts_with("postgres://") || args.db.starts_with("postgresql://") {
        let options = SqlOptions {
            secret_key: Some(secret_key(&args)?),
            ..SqlOptions::default()
        };
        let store = SqlStore::connect(&args.db, options)
            .await
            .map_err(|e| format!("--db: {e}"))?;
        // Commands committed by other nodes for robots connected here.
        store.listen(hub.clone());
        serve(store, hub, "postgres", args).await
    } else {
        let url = SqlStore::sqlite_url(std::path::Path::new(&args.db));
        let options = SqlOptions {
            secret_key: Some(secret_key(&args)?),
            ..SqlOptions::default()
        };
        let store = SqlStore::connect(&url, options)
            .await
            .map_err(|e| format!("--db {}: {e}", args.db))?;
        serve(store, hub, "sqlite", args).await
    }
}

async fn serve<S: Store>(store: S, hub: Arc<Hub>, kind: &'static str, args: Args) -> Result<(), String> {
    let time_zone: rpa::Tz = args
        .time_zone
        .parse()
        .map_err(|_| format!("--time-zone {}: not an IANA time zone name", args.time_zone))?;
    let (config_text, demo) = match &args.config {
        Some(path) => (
            std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?,
            false,
        ),
        None => (DEMO_CONFIG.to_owned(), true),
    };
    let config = Config::parse(&config_text)?;
    let public_url = args
        .public_url
        .clone()
        .unwrap_or_else(|| format!("http://{}", args.listen));
    let engine_config = EngineConfig {
        file_upload_uri: Some(format!("{}/v1/file/file/upload", public_url.trim_end_matches('/'))),
        time_zone,
        heartbeat_timeout_ms: args.heartbeat_timeout * 1000,
        heartbeat_slack_ms: args.heartbeat_slack.unwrap_or(args.heartbeat_timeout / 3) * 1000,
        node: args.node,
        password_cost: if demo {
            PasswordCost::TESTING
        } else {
            PasswordCost::default()
        },
        ..EngineConfig::default()
    };
    let engine = Arc::new(Engine::new(store, Arc::new(SystemClock), engine_config).with_transport(hub.clone()));
    config
        .apply(&engine)
        .await
        .map_err(|e| format!("applying the configuration: {e}"))?;
    let files = Files::dir(&args.files).map_err(|e| format!("{}: {e}", args.files.display()))?;
    let settings = HttpSettings {
        public_url: public_url.clone(),
        ..HttpSettings::default()
    };
    let state = AppState {
        engine: engine.clone(),
        files,
        settings: Arc::new(settings),
    };

    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .map_err(|e| format!("{}: {e}", args.listen))?;
    let (stop_tx, stop_rx) = watch::channel(false);
    let timers = tokio::spawn(rpa::http::run_timers(engine.clone(), wait(stop_rx.clone())));
    tracing::info!(url = %public_url, store = kind, db = %redact(&args.db), node = engine.node(), "rpa server listening");
    if demo {
        tracing::info!(
            "demo configuration loaded: its users, vendor and robot are listed in examples/demo-config.json"
        );
    }
    let app = rpa::http::app(state)
        .merge(rpa::ws::router(HubState {
            engine: engine.clone(),
            hub,
        }))
        .layer(tower_http::trace::TraceLayer::new_for_http());
    axum::serve(listener, app)
        .with_graceful_shutdown(async move {
            let _ = tokio::signal::ctrl_c().await;
            tracing::info!("shutting down");
            let _ = stop_tx.send(true);
        })
        .await
        .map_err(|e| format!("server: {e}"))?;
    let _ = timers.await;
    Ok(())
}

/// The key that seals vendor secrets: RPA_SECRET_KEY, or the key file
/// (created, readable by this user only, with a fresh random key if missing).
fn secret_key(args: &Args) -> Result<[u8; 32], String> {
    let parse = |text: &str, from: &str| -> Result<[u8; 32], String> {
        let mut key = [0u8; 32];
        let bytes: Vec<u8> = (0..text.len())
            .step_by(2)
            .map(|i| text.get(i..i + 2).and_then(|h| u8::from_str_radix(h, 16).ok()))
            .collect::<Option<_>>()
            .ok_or(format!("{from}: the secret key must be 64 hex characters"))?;
        if bytes.len() != 32 {
            return Err(format!("{from}: the secret key must be 64 hex characters"));
        }
        key.copy_from_slice(&bytes);
        Ok(key)
    };
    if let Ok(k) = std::env::var("RPA_SECRET_KEY") {
        return parse(k.trim(), "RPA_SECRET_KEY");
    }
    let path = &args.secret_key_file;
    match std::fs::read_to_string(path) {
        Ok(text) => parse(text.trim(), &path.display().to_string()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            use std::io::Write;
            use std::os::unix::fs::OpenOptionsExt;
            let (fresh, _) = rpa::core::auth::new_token();
            let mut f = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(path)
                .map_err(|e| format!("{}: {e}", path.display()))?;
            writeln!(f, "{fresh}").map_err(|e| format!("{}: {e}", path.display()))?;
            tracing::info!(file = %path.display(), "created a new key for vendor secrets at rest");
            parse(&fresh, &path.display().to_string())
        }
        Err(e) => Err(format!("{}: {e}", path.display())),
    }
}

/// A database URL without its password, for logs.
fn redact(db: &str) -> String {
    match (db.find("://"), db.find('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let creds = &db[scheme + 3..at];
            let user = creds.split(':').next().unwrap_or("");
            format!("{}{user}:***{}", &db[..scheme + 3], &db[at..])
        }
        _ => db.to_owned(),
    }
}

async fn wait(mut rx: watch::Receiver<bool>) {
    while !*rx.borrow() {
        if rx.changed().await.is_err() {
            return;
        }
    }
}
