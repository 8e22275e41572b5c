//! Load for the robot hub: N WebSocket robots heart-beating, then the
//! latency from `startJob` (business API) to Execute on a robot's socket.
//! Prints the server's RSS and CPU (read from /proc for `--server-pid`).
//!
//! ```sh
//! cargo run --release --example server &            # SQLite by default
//! cargo run --release --example ws_load -- --robots 10000 --server-pid $(pgrep -f 'examples/server')
//! ```
//!
//! `--burst` connects every robot at once (what a server restart looks like
//! to it: the robots all come back together); `--leave` closes them all at
//! the end and reports the server's RSS once they are gone.
//!
//! Several servers of one cluster: `--server` and `--server-pid` take
//! comma-separated lists; robot `i` connects to server `i mod n` and the
//! jobs are started on each in turn. While the robots only heart-beat, the
//! servers' `/metrics` tell how many heartbeats were handled and written
//! and how many commits landed. A machine's open-file limit caps the robots
//! of one process: several generators share a load with `--first` (the
//! number of their first robot) and `--jobs 0` on all but one.
//!
//! `--throughput S` then has `--clients` business clients start jobs as
//! fast as they are answered, on the servers in turn, for S seconds while
//! the robots finish each job as its Execute comes: it prints lifecycles
//! per second, the servers' CPU, commits and commits refused as stale. The
//! same load over one, two or four servers of one database compares them.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use clap::Parser;
use futures::{SinkExt, StreamExt};
use rpa::core::auth::supplier_proof;
use serde_json::{Value, json};
use tokio::sync::{Mutex, oneshot};
use tokio_tungstenite::tungstenite::Message;

/// Command-line options.
#[derive(Parser, Debug, Clone)]
struct Args {
    /// Server base URLs (comma-separated: the nodes of one cluster).
    #[arg(long, default_value = "http://127.0.0.1:8080", value_delimiter = ',')]
    server: Vec<String>,
    /// Robots to connect.
    #[arg(long, default_value_t = 1000)]
    robots: usize,
    /// The number of the first robot (`load-<n>`), for several generators.
    #[arg(long, default_value_t = 0)]
    first: usize,
    /// Seconds between heartbeats.
    #[arg(long, default_value_t = 5)]
    heartbeat: u64,
    /// Milliseconds between heartbeats (instead of `--heartbeat`).
    #[arg(long)]
    heartbeat_ms: Option<u64>,
    /// Jobs to start, one at a time, measuring startJob → Execute.
    #[arg(long, default_value_t = 500)]
    jobs: usize,
    /// Seconds to watch the server's CPU while the robots only heart-beat.
    #[arg(long, default_value_t = 20)]
    idle: u64,
    /// The servers' pids (comma-separated), for RSS and CPU.
    #[arg(long, value_delimiter = ',')]
    server_pid: Vec<u32>,
    /// Vendor code and secret.
    #[arg(long, default_value = "acme")]
    vendor: String,
    #[arg(long, default_value = "acme-vendor-secret")]
    secret: String,
    /// Business user and password, and the process to start (by name).
    #[arg(long, default_value = "alice")]
    user: String,
    #[arg(long, default_value = "wonderland")]
    password: String,
    #[arg(long, default_value = "Invoice entry")]
    process: String,
    /// `params` for startJob.
    #[arg(long, default_value = r#"{"invoice": 1}"#)]
    params: String,
    /// Connect every robot at once instead of 200 every 50 ms.
    #[arg(long)]
    burst: bool,
    /// At the end, close every robot's socket and report the server's RSS
    /// after they left (`--settle` seconds later).
    #[arg(long)]
    leave: bool,
    /// Seconds to wait after the robots left before reading the RSS.
    #[arg(long, default_value_t = 10)]
    settle: u64,
    /// Seconds of jobs started by `--clients` at once, after the latency.
    #[arg(long, default_value_t = 0)]
    throughput: u64,
    /// Business clients starting jobs at once for `--throughput`.
    #[arg(long, default_value_t = 32)]
    clients: usize,
}

/// Per run: the client waiting for its Execute, or when the Execute came
/// (it can arrive before the client starts waiting). One lock for both, so
/// neither side can miss the other.
type Arrivals = Arc<Mutex<HashMap<String, Arrival>>>;

enum Arrival {
    Awaited(oneshot::Sender<Instant>),
    Came(Instant),
}

fn msg(action: &str, body: Value) -> Message {
    Message::Text(json!({"action": action, "body": body.to_string()}).to_string().into())
}

impl Args {
    fn beat(&self) -> Duration {
        Duration::from_millis(self.heartbeat_ms.unwrap_or(self.heartbeat * 1000))
    }
}

async fn robot(
    args: Arc<Args>,
    server: String,
    id: String,
    arrivals: Arrivals,
    up: Arc<AtomicUsize>,
    mut leave: tokio::sync::watch::Receiver<bool>,
) {
    let url = format!("{}/robothub/{id}", server.replacen("http://", "ws://", 1));
    // Turned away (a full accept queue): try again, as executors do.
    let mut tries = 0;
    let ws = loop {
        match tokio_tungstenite::connect_async(url.as_str()).await {
            Ok((ws, _)) => break ws,
            Err(_) if tries < 10 => {
                tries += 1;
                RETRIES.fetch_add(1, Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(500 + rand_offset(&id, 1000))).await;
            }
            Err(_) => return,
        }
    };
    let (mut sink, mut stream) = ws.split();
    let proof = supplier_proof(&args.secret, &id);
    if sink
        .send(msg(
            "Register",
            json!({"supplierCode": args.vendor, "supplierSecret": proof}),
        ))
        .await
        .is_err()
    {
        return;
    }
    let _ = sink.send(msg("Heartbeat", json!({}))).await;
    up.fetch_add(1, Ordering::Relaxed);
    // Spread heartbeats over the period.
    let offset = Duration::from_millis(rand_offset(&id, args.beat().as_millis() as u64));
    let mut beat = tokio::time::interval_at(tokio::time::Instant::now() + offset, args.beat());
    // A generator that falls behind beats less often, not in bursts.
    beat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = leave.changed() => {
                let _ = sink.send(Message::Close(None)).await;
                break;
            }
            _ = beat.tick() => {
                if sink.send(msg("Heartbeat", json!({}))).await.is_err() { break; }
            }
            m = stream.next() => {
                let Some(Ok(Message::Text(t))) = m else {
                    if matches!(m, None | Some(Err(_)) | Some(Ok(Message::Close(_)))) { break; }
                    continue;
                };
                let now = Instant::now();
                let v: Value = serde_json::from_str(&t).unwrap_or(Value::Null);
                if v["action"] == "Execute" {
                    let body: Value = serde_json::from_str(v["body"].as_str().unwrap_or("{}")).unwrap_or(Value::Null);
                    let run = body["runInstanceId"].as_str().unwrap_or("").to_owned();
                    let mut a = arrivals.lock().await;
                    match a.remove(&run) {
                        Some(Arrival::Awaited(tx)) => { let _ = tx.send(now); }
                        _ => { a.insert(run.clone(), Arrival::Came(now)); }
                    }
                    drop(a);
                    if sink.send(msg("ReportFinish", json!({"runInstanceId": run, "status": 0}))).await.is_ok() {
                        FINISHED.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
        }
    }
    up.fetch_sub(1, Ordering::Relaxed);
}

/// Connection attempts turned away.
static RETRIES: AtomicUsize = AtomicUsize::new(0);
/// Jobs the robots reported finished.
static FINISHED: AtomicUsize = AtomicUsize::new(0);

fn rand_offset(id: &str, range_ms: u64) -> u64 {
    id.bytes()
        .fold(17u64, |h, b| h.wrapping_mul(31).wrapping_add(u64::from(b)))
        % range_ms.max(1)
}

fn rss_kib(pid: u32) -> Option<u64> {
    status_kib(pid, "VmRSS:")
}

/// The server's peak RSS so far.
fn peak_kib(pid: u32) -> Option<u64> {
    status_kib(pid, "VmHWM:")
}

fn status_kib(pid: u32, field: &str) -> Option<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    s.lines()
        .find(|l| l.starts_with(field))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

/// The sum over `servers` of the Prometheus samples named `name` (with
/// exactly these `labels`, e.g. `outcome="written"`, or none).
async fn metric_sum(http: &reqwest::Client, servers: &[String], name: &str, labels: &str) -> f64 {
    let want = if labels.is_empty() {
        format!("{name} ")
    } else {
        format!("{name}{{{labels}}} ")
    };
    let mut sum = 0.0;
    for s in servers {
        let Ok(r) = http.get(format!("{s}/metrics")).send().await else {
            continue;
        };
        let text = r.text().await.unwrap_or_default();
        sum += text
            .lines()
            .filter_map(|l| l.strip_prefix(want.as_str()))
            .filter_map(|v| v.trim().parse::<f64>().ok())
            .sum::<f64>();
    }
    sum
}

/// What the servers' metrics said at one moment.
struct Figures {
    written: f64,
    quiet: f64,
    commits: f64,
    conflicts: f64,
}

async fn figures(http: &reqwest::Client, servers: &[String]) -> Figures {
    Figures {
        written: metric_sum(http, servers, "rpa_heartbeats_total", "outcome=\"written\"").await,
        quiet: metric_sum(http, servers, "rpa_heartbeats_total", "outcome=\"quiet\"").await,
        commits: metric_sum(http, servers, "rpa_commits_total", "").await,
        conflicts: metric_sum(http, servers, "rpa_commit_conflicts_total", "").await,
    }
}

/// `--throughput`: clients start jobs as fast as they are answered while
/// the robots finish them; lifecycles per second over the last seconds.
async fn throughput(args: &Args, http: &reqwest::Client, token: &str, process: &str, params: &Value) {
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let refused = Arc::new(AtomicUsize::new(0));
    let mut clients = Vec::new();
    for c in 0..args.clients {
        let (http, stop, refused) = (http.clone(), stop.clone(), refused.clone());
        let url = format!("{}/rpa/api/startJob", args.server[c % args.server.len()]);
        let (token, body) = (token.to_owned(), json!({"processId": process, "params": params}));
        clients.push(tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                let ok = match http
                    .post(&url)
                    .header("X-Access-Token", &token)
                    .json(&body)
                    .send()
                    .await
                {
                    Ok(r) => r.json::<Value>().await.is_ok_and(|v| v["success"] == true),
                    Err(_) => false,
                };
                if !ok {
                    refused.fetch_add(1, Ordering::Relaxed);
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        }));
    }
    // A few seconds to fill the pipes, then the measured window.
    let warm = Duration::from_secs(args.throughput.min(3));
    tokio::time::sleep(warm).await;
    let cpu = |pids: &[u32]| pids.iter().map(|p| cpu_ticks(*p).unwrap_or(0)).collect::<Vec<_>>();
    let (cpu0, f0, done0, t0) = (
        cpu(&args.server_pid),
        figures(http, &args.server).await,
        FINISHED.load(Ordering::Relaxed),
        Instant::now(),
    );
    tokio::time::sleep(Duration::from_secs(args.throughput) - warm).await;
    let (cpu1, f1, done1, secs) = (
        cpu(&args.server_pid),
        figures(http, &args.server).await,
        FINISHED.load(Ordering::Relaxed),
        t0.elapsed().as_secs_f64(),
    );
    stop.store(true, Ordering::Relaxed);
    for c in clients {
        let _ = c.await;
    }
    let per_server: Vec<String> = cpu0
        .iter()
        .zip(&cpu1)
        .map(|(a, b)| format!("{:.0}%", (b - a) as f64 / 100.0 / secs * 100.0))
        .collect();
    println!(
        "throughput over {secs:.1} s, {} servers, {} clients, {} robots: {:.0} lifecycles/s; \
         {:.0} commits/s, {:.0} refused as stale/s; servers' CPU (of one core) {}; {} startJob calls refused",
        args.server.len(),
        args.clients,
        args.robots,
        (done1 - done0) as f64 / secs,
        (f1.commits - f0.commits) / secs,
        (f1.conflicts - f0.conflicts) / secs,
        per_server.join(" "),
        refused.load(Ordering::Relaxed),
    );
}

fn cpu_ticks(pid: u32) -> Option<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &s[s.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    Some(f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?)
}

#[tokio::main]
async fn main() {
    let args = Arc::new(Args::parse());
    let arrivals: Arrivals = Arc::default();
    let up = Arc::new(AtomicUsize::new(0));
    let rss = |pids: &[u32], f: fn(u32) -> Option<u64>| pids.iter().filter_map(|p| f(*p)).sum::<u64>();
    let rss_before = rss(&args.server_pid, rss_kib);
    let (leave, left) = tokio::sync::watch::channel(false);
    let t = Instant::now();
    let mut robots = Vec::with_capacity(args.robots);
    for i in args.first..args.first + args.robots {
        robots.push(tokio::spawn(robot(
            args.clone(),
            args.server[i % args.server.len()].clone(),
            format!("load-{i}"),
            arrivals.clone(),
            up.clone(),
            left.clone(),
        )));
        if !args.burst && (i - args.first) % 200 == 199 {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    while up.load(Ordering::Relaxed) < args.robots && t.elapsed() < Duration::from_secs(120) {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    println!(
        "robots connected: {} of {} in {:.1} s ({} connection attempts turned away and tried again)",
        up.load(Ordering::Relaxed),
        args.robots,
        t.elapsed().as_secs_f64(),
        RETRIES.load(Ordering::Relaxed)
    );
    tokio::time::sleep(args.beat().max(Duration::from_secs(1))).await;
    let http = reqwest::Client::new();
    {
        let cpu = |pids: &[u32]| pids.iter().filter_map(|p| cpu_ticks(*p)).sum::<u64>();
        // Each figure over the time between its two readings (a scrape of
        // busy servers takes a while).
        let (c0, ct0) = (cpu(&args.server_pid), Instant::now());
        let f0 = figures(&http, &args.server).await;
        let t0 = Instant::now();
        tokio::time::sleep(Duration::from_secs(args.idle)).await;
        let f1 = figures(&http, &args.server).await;
        let secs = t0.elapsed().as_secs_f64();
        let (c1, cpu_secs) = (cpu(&args.server_pid), ct0.elapsed().as_secs_f64());
        if !args.server_pid.is_empty() {
            println!(
                "servers' RSS: {:.1} MiB before, {:.1} MiB with the robots (peaks {:.1} MiB); CPU while heart-beating: {:.1}% of one core",
                rss_before as f64 / 1024.0,
                rss(&args.server_pid, rss_kib) as f64 / 1024.0,
                rss(&args.server_pid, peak_kib) as f64 / 1024.0,
                (c1 - c0) as f64 / 100.0 / cpu_secs * 100.0
            );
        }
        println!(
            "while heart-beating ({secs:.1} s): {:.0} heartbeats/s handled, {:.1}/s written, {:.1} commits/s in all",
            (f1.written + f1.quiet - f0.written - f0.quiet) / secs,
            (f1.written - f0.written) / secs,
            (f1.commits - f0.commits) / secs,
        );
    }
    if args.jobs == 0 {
        // Another generator measures; this one keeps its robots beating.
        tokio::time::sleep(Duration::from_secs(u64::from(u32::MAX))).await;
    }
    // startJob -> Execute latency, one job at a time, on each server in turn.
    let login: Value = http
        .post(format!("{}/rpa/api/login", args.server[0]))
        .json(&json!({"username": args.user, "password": args.password}))
        .send()
        .await
        .expect("login")
        .json()
        .await
        .expect("login answer");
    let token = login["result"]["token"].as_str().expect("a token").to_owned();
    let process = login["result"]["processes"]
        .as_array()
        .and_then(|ps| ps.iter().find(|p| p["name"] == args.process.as_str()))
        .and_then(|p| p["id"].as_str())
        .expect("the process is granted")
        .to_owned();
    let params: Value = serde_json::from_str(&args.params).expect("--params is JSON");
    let mut lat = Vec::with_capacity(args.jobs);
    for n in 0..args.jobs {
        let t0 = Instant::now();
        let v: Value = http
            .post(format!("{}/rpa/api/startJob", args.server[n % args.server.len()]))
            .header("X-Access-Token", &token)
            .json(&json!({"processId": process, "params": params}))
            .send()
            .await
            .expect("startJob")
            .json()
            .await
            .expect("startJob answer");
        let Some(job) = v["result"]["jobId"].as_str().map(str::to_owned) else {
            eprintln!("startJob refused: {v}");
            continue;
        };
        let (tx, rx) = oneshot::channel();
        let came = {
            let mut a = arrivals.lock().await;
            match a.remove(&job) {
                Some(Arrival::Came(at)) => Some(at),
                _ => {
                    a.insert(job.clone(), Arrival::Awaited(tx));
                    None
                }
            }
        };
        let got = match came {
            Some(at) => Some(at),
            None => tokio::time::timeout(Duration::from_secs(10), rx)
                .await
                .ok()
                .and_then(Result::ok),
        };
        match got {
            Some(at) => lat.push(at.duration_since(t0)),
            None => eprintln!("job {job}: no Execute within 10 s"),
        }
    }
    lat.sort();
    let pct = |p: f64| {
        lat.get(((lat.len() as f64 * p) as usize).min(lat.len().saturating_sub(1)))
            .copied()
            .unwrap_or_default()
    };
    println!(
        "startJob -> Execute over {} jobs: p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        lat.len(),
        pct(0.50).as_secs_f64() * 1e3,
        pct(0.99).as_secs_f64() * 1e3,
        lat.last().copied().unwrap_or_default().as_secs_f64() * 1e3
    );
    if args.throughput > 0 {
        throughput(&args, &http, &token, &process, &params).await;
    }
    if args.leave {
        let _ = leave.send(true);
        for r in robots {
            let _ = r.await;
        }
        tokio::time::sleep(Duration::from_secs(args.settle)).await;
        if !args.server_pid.is_empty() {
            println!(
                "servers' RSS {} s after the robots left: {:.1} MiB",
                args.settle,
                rss(&args.server_pid, rss_kib) as f64 / 1024.0
            );
        }
    }
}
