//! The rpa server: every API of `rpa-adapters-http` and the robot WebSocket
//! hub of `rpa-adapters-ws` on one port, run by `rpa::server`.
//!
//! `cargo run --release --example server` starts it on 127.0.0.1:8080 with
//! the demo configuration (`examples/demo-config.json`); `--help` lists the
//! options. SIGTERM or Ctrl-C stops it gracefully.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::Parser;
use rpa::server::{Options, run, shutdown_signal};

/// jemalloc, with its background thread on, hands freed memory back to the
/// system (10,000 robots reconnecting at once, then leaving); glibc's
/// allocator keeps most of it.
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

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
    /// Minutes within which five wrong passwords lock a user.
    #[arg(long, default_value_t = 30)]
    lockout_window: u64,
    /// Minutes after which a locked user is unlocked by itself (default:
    /// only an administrator unlocks).
    #[arg(long)]
    auto_unlock: Option<u64>,
    /// Append every domain event (a job's end with its outputs, a queue
    /// item's end, a robot's connection change) to this file, one JSON
    /// object a line, at least once and in order, across restarts.
    #[arg(long)]
    events_file: Option<PathBuf>,
    /// POST every domain event to this URL in batches (`{"events": [...]}`),
    /// at least once and in order; a receiver that does not answer 2xx gets
    /// the batch again. With the environment variable RPA_EVENTS_SECRET set,
    /// each POST carries `X-Rpa-Signature: t=<unix time>,v1=<hex
    /// HMAC-SHA256(secret, "<t>.<body>")>`.
    #[arg(long)]
    events_url: Option<String>,
    /// Minutes a package link in Execute (`packageDownloadUri`) works:
    /// executors fetch it with a plain GET, no credentials, until then.
    #[arg(long, default_value_t = 60)]
    package_link_ttl: u64,
    /// The delays, in milliseconds, before each new try of a webhook
    /// delivery that failed (comma-separated; default 0,45000,150000,300000).
    #[arg(long, value_delimiter = ',')]
    webhook_retry_ms: Option<Vec<u64>>,
    /// Days run files (screenshots, recordings, outputs of runs) are kept
    /// before retention removes them (default: kept).
    #[arg(long)]
    run_files_days: Option<u64>,
    /// Most megabytes run files may hold; beyond it the oldest are removed
    /// (default: no limit).
    #[arg(long)]
    run_files_max_mb: Option<u64>,
    /// Days the run logs of an ended job are kept before retention deletes
    /// them (default: kept).
    #[arg(long)]
    run_logs_days: Option<u64>,
    /// Seconds between two passes of the retention.
    #[arg(long, default_value_t = 600)]
    retention_every: u64,
    /// Log one JSON object a line (for log collectors) instead of text.
    #[arg(long)]
    log_json: bool,
}

#[tokio::main]
async fn main() {
    let args = Args::parse();
    let filter =
        tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info,tower_http=warn".into());
    if args.log_json {
        tracing_subscriber::fmt().json().with_env_filter(filter).init();
    } else {
        tracing_subscriber::fmt().with_env_filter(filter).init();
    }
    if let Err(e) = tikv_jemalloc_ctl::background_thread::write(true) {
        tracing::warn!(error = %e, "jemalloc's background thread is off: freed memory is handed back later");
    }
    let result = match args.time_zone.parse() {
        Ok(time_zone) => {
            let options = Options {
                listen: args.listen,
                db: args.db,
                config: args.config,
                files: args.files,
                public_url: args.public_url,
                time_zone,
                heartbeat_timeout_s: args.heartbeat_timeout,
                heartbeat_slack_s: args.heartbeat_slack,
                secret_key_file: args.secret_key_file,
                node: args.node,
                lockout_window_min: args.lockout_window,
                auto_unlock_min: args.auto_unlock,
                events_file: args.events_file,
                events_url: args.events_url,
                events_secret: std::env::var("RPA_EVENTS_SECRET")
                    .ok()
                    .filter(|s| !s.is_empty())
                    .map(rpa::server::Secret),
                package_link_ttl_min: args.package_link_ttl,
                webhook_retry_ms: args
                    .webhook_retry_ms
                    .unwrap_or_else(|| rpa::core::webhook::RETRY_MS.to_vec()),
                run_files_days: args.run_files_days,
                run_files_max_mb: args.run_files_max_mb,
                run_logs_days: args.run_logs_days,
                retention_every_s: args.retention_every,
                // A bearer token for `/metrics`: from the environment, never the command line.
                metrics_token: std::env::var("RPA_METRICS_TOKEN")
                    .ok()
                    .filter(|s| !s.is_empty())
                    .map(rpa::server::Secret),
            };
            run(options, shutdown_signal()).await.map_err(|e| e.to_string())
        }
        Err(_) => Err(format!("--time-zone {}: not an IANA time zone name", args.time_zone)),
    };
    if let Err(e) = result {
        tracing::error!("{e}");
        std::process::exit(1);
    }
}
