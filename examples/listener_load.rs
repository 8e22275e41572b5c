//! Load for the AutomationEdge listener (seed 003): N synchronous requests
//! sent at once, each held by the server until its job ends on one of K
//! WebSocket robots run here (each finishes its Execute after `--hold-ms`). Prints how
//! long they took, how they ended, and the server's RSS before, at its peak
//! and after (read from /proc for `--server-pid`).
//!
//! ```sh
//! cargo run --release --example server &            # SQLite, demo configuration
//! cargo run --release --example listener_load -- --requests 1000 --server-pid $!
//! ```

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use clap::Parser;
use futures::{SinkExt, StreamExt};
use rpa::core::auth::supplier_proof;
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

/// Command-line options.
#[derive(Parser, Debug, Clone)]
struct Args {
    /// Server base URL.
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    server: String,
    /// Synchronous requests sent at once.
    #[arg(long, default_value_t = 1000)]
    requests: usize,
    /// Robots to connect.
    #[arg(long, default_value_t = 4)]
    robots: usize,
    /// How long a robot runs each job (ms) before it reports the finish.
    #[arg(long, default_value_t = 0)]
    hold_ms: u64,
    /// The server's pid, for RSS.
    #[arg(long)]
    server_pid: Option<u32>,
    /// Listener credentials (the demo configuration's).
    #[arg(long, default_value = "se:se")]
    basic: String,
    /// Vendor code and secret.
    #[arg(long, default_value = "acme")]
    vendor: String,
    #[arg(long, default_value = "acme-vendor-secret")]
    secret: String,
    /// The process, and its inputs.
    #[arg(long, default_value = "Invoice entry")]
    process: String,
    #[arg(long, default_value = r#"{"Search.invoice": 1}"#)]
    inputs: String,
}

fn msg(action: &str, body: Value) -> Message {
    Message::Text(json!({"action": action, "body": body.to_string()}).to_string().into())
}

async fn robot(args: Arc<Args>, id: String, stop: Arc<AtomicBool>) {
    let url = format!("{}/robothub/{id}", args.server.replacen("http://", "ws://", 1));
    let Ok((ws, _)) = tokio_tungstenite::connect_async(url).await else {
        eprintln!("robot {id}: cannot connect");
        return;
    };
    let (mut sink, mut stream) = ws.split();
    let proof = supplier_proof(&args.secret, &id);
    let _ = sink
        .send(msg(
            "Register",
            json!({"supplierCode": args.vendor, "supplierSecret": proof}),
        ))
        .await;
    let _ = sink.send(msg("Heartbeat", json!({}))).await;
    let mut beat = tokio::time::interval(Duration::from_secs(5));
    while !stop.load(Ordering::Relaxed) {
        tokio::select! {
            _ = beat.tick() => {
                if sink.send(msg("Heartbeat", json!({}))).await.is_err() { break; }
            }
            m = stream.next() => {
                let Some(Ok(Message::Text(t))) = m else {
                    if matches!(m, None | Some(Err(_)) | Some(Ok(Message::Close(_)))) { break; }
                    continue;
                };
                let v: Value = serde_json::from_str(&t).unwrap_or(Value::Null);
                if v["action"] == "Execute" {
                    let body: Value = serde_json::from_str(v["body"].as_str().unwrap_or("{}")).unwrap_or(Value::Null);
                    let run = body["runInstanceId"].as_str().unwrap_or("").to_owned();
                    tokio::time::sleep(Duration::from_millis(args.hold_ms)).await;
                    let _ = sink.send(msg("ReportFinish", json!({"runInstanceId": run, "status": 0}))).await;
                }
            }
        }
    }
}

fn rss_kib(pid: u32) -> Option<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    s.lines()
        .find(|l| l.starts_with("VmRSS:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

fn message(args: &Args, run: &str, i: usize) -> Value {
    let inputs: Value = serde_json::from_str(&args.inputs).expect("--inputs is a JSON object");
    let payload = json!({"PerformAutomation": {
        "AutomationInputDictionary": inputs, "ProcessName": args.process, "ProfileName": "Profile1",
        "UserName": "load", "RetryFlag": false, "Retry": {"PreviousRequestIds": [], "NoOfTimesRetry": 0}
    }});
    json!({
        "payload": payload.to_string(), "content_type": "json", "content_encoding": "application/json",
        "profile": "Profile1", "expiration": 600_000, "wait_for_completion": true,
        "source_message_id": format!("{run}-{i}"), "app_id": "listener_load", "header": {}
    })
}

#[tokio::main]
async fn main() {
    use base64::Engine as _;
    let args = Arc::new(Args::parse());
    let stop = Arc::new(AtomicBool::new(false));
    for i in 0..args.robots {
        tokio::spawn(robot(args.clone(), format!("listener-load-{i}"), stop.clone()));
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let rss_before = args.server_pid.and_then(rss_kib);
    let peak = Arc::new(AtomicU64::new(rss_before.unwrap_or(0)));
    let sampling = Arc::new(AtomicBool::new(true));
    if let Some(pid) = args.server_pid {
        let (peak, sampling) = (peak.clone(), sampling.clone());
        tokio::spawn(async move {
            while sampling.load(Ordering::Relaxed) {
                if let Some(r) = rss_kib(pid) {
                    peak.fetch_max(r, Ordering::Relaxed);
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        });
    }
    let auth = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(&args.basic)
    );
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(args.requests)
        .timeout(Duration::from_secs(900))
        .build()
        .unwrap();
    let run = format!(
        "{:x}",
        std::process::id() as u64 * 1_000_003 + Instant::now().elapsed().as_nanos() as u64
    );
    let t = Instant::now();
    let mut tasks = Vec::with_capacity(args.requests);
    for i in 0..args.requests {
        let (http, auth, body, url) = (
            http.clone(),
            auth.clone(),
            message(&args, &run, i),
            format!("{}/listener/rpa/api/message", args.server),
        );
        tasks.push(tokio::spawn(async move {
            let sent = Instant::now();
            let r = http.post(url).header("Authorization", auth).json(&body).send().await;
            let answer: Value = match r {
                Ok(r) => r.json().await.unwrap_or(Value::Null),
                Err(e) => json!({"transport": e.to_string()}),
            };
            (sent.elapsed(), answer)
        }));
    }
    let mut latencies = Vec::new();
    let (mut success, mut failure, mut other) = (0, 0, 0);
    for task in tasks {
        let (took, answer) = task.await.unwrap();
        latencies.push(took);
        match answer["response"]["AutomationQueueType"].as_str() {
            Some("successqueue") => success += 1,
            Some(_) => {
                if failure == 0 {
                    eprintln!(
                        "a request in the failure queue: {}",
                        answer["response"]["ErrorDetailObject"]
                    );
                }
                failure += 1;
            }
            None => {
                if other == 0 {
                    eprintln!("unexpected answer: {answer}");
                }
                other += 1;
            }
        }
    }
    let total = t.elapsed();
    sampling.store(false, Ordering::Relaxed);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let rss_after = args.server_pid.and_then(rss_kib);
    latencies.sort();
    let pct = |p: f64| latencies[((latencies.len() as f64 * p) as usize).min(latencies.len() - 1)];
    println!(
        "{} synchronous requests on {} robots: {:.2} s, successqueue {success}, failurequeue {failure}, other {other}",
        args.requests,
        args.robots,
        total.as_secs_f64()
    );
    println!(
        "answer latency: p50 {:.0} ms, p99 {:.0} ms, max {:.0} ms",
        pct(0.5).as_secs_f64() * 1e3,
        pct(0.99).as_secs_f64() * 1e3,
        pct(1.0).as_secs_f64() * 1e3
    );
    if let (Some(b), Some(a)) = (rss_before, rss_after) {
        let p = peak.load(Ordering::Relaxed);
        println!(
            "server RSS: before {} MiB, peak {} MiB (+{} MiB), after {} MiB",
            b / 1024,
            p / 1024,
            p.saturating_sub(b) / 1024,
            a / 1024
        );
    }
    stop.store(true, Ordering::Relaxed);
}
