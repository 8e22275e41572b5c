//! A real robot executor speaking seed 001 to an rpa server, over WebSocket
//! (`/robothub/{id}`) or HTTP (`/robots/connect/*`).
//!
//! `cargo run --example robot -- --id robot-1 --vendor acme --secret acme-vendor-secret`
//!
//! On Execute it downloads the package from `packageDownloadUri` (a script,
//! run with `sh`; no package means an empty script), checks its SHA-256
//! against the digest the server recorded at upload (`X-Checksum-Sha256`;
//! a mismatch is not run), and runs it as a child
//! process with each argument as an environment variable `RPA_ARG_<NAME>`
//! and all of them in the JSON file `$RPA_ARGUMENTS_FILE`. Each stdout and
//! stderr line becomes a log line (sent in batches). A line
//! `::output {json}` adds to the run's `outputValues`; a line
//! `::step <number> [name]` reports that the run reached a step (seed 000
//! `jobStatus` lists them); a line `::pause <number> [name]` reports a
//! step at which a person decides (`stopTag` 1): the run ends there without
//! a finish, and the server sends Execute again once the person has
//! decided, with `decision`, `approved` and the ticket's fields among the
//! arguments (the process names the workflow of its pause tickets); a line
//! `::screenshot <file>` uploads that file (a path in the run's directory)
//! and sends a log line whose `screenshot` is its file id; a line
//! `::checkpoint {json}` reports a checkpoint, which a fail-over run gets
//! back in `$RPA_CHECKPOINT` (the robot declares the capability
//! `"checkpoint"` at Register, so its Execute carries `checkpoint`,
//! `attempt` and `accessToken`). With an `accessToken` the script also gets
//! what UiPath's robots give their processes, so UiPath's SDK works inside
//! it: `UIPATH_URL` (`<server>/default/DefaultTenant`),
//! `UIPATH_ACCESS_TOKEN` (the run's token: its robot's assets, credentials
//! included, and its queues, while the run lasts), `UIPATH_ROBOT_KEY` (the
//! robot's id), `UIPATH_JOB_KEY`; the token is also `$RPA_ACCESS_TOKEN`.
//! To call the server's AI capabilities (`POST $RPA_SERVER/v1/ai/<name>`)
//! a script has the robot's credentials: `RPA_ROBOT_ID`, and
//! `RPA_ROBOT_CONNECT_ID` over HTTP or `RPA_SUPPLIER_CODE` and
//! `RPA_SUPPLIER_SECRET` (the vendor proof) over WebSocket.
//! Files the script writes to `$RPA_OUTPUT_DIR`
//! are uploaded through `/v1/file/file/upload`. When Execute says
//! `videoRecordRequired`, the run's console output is recorded (asciicast
//! v2: `recording-<run>.cast`), uploaded, and reported with
//! ReportVideoRecord after the finish. Exit code 0 finishes with
//! status 0, a Stop kills the child and finishes with 1, anything else 2.
//! The robot reconnects with back-off when the server goes away.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use clap::{Parser, ValueEnum};
use futures::{SinkExt, StreamExt};
use rpa::core::auth::supplier_proof;
use serde_json::{Map, Value, json};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::sync::{Mutex, mpsc, watch};
use tokio_tungstenite::tungstenite::Message;

#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum)]
enum Transport {
    Ws,
    Http,
}

/// Command-line options.
#[derive(Parser, Debug, Clone)]
#[command(about = "rpa robot executor (seed 001, WebSocket or HTTP)")]
struct Args {
    /// Server base URL.
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    server: String,
    /// This executor's id.
    #[arg(long)]
    id: String,
    /// Vendor (supplier) code.
    #[arg(long)]
    vendor: String,
    /// Vendor secret (the supplier proof is derived from it; it is never sent).
    #[arg(long)]
    secret: String,
    /// How to talk to the server.
    #[arg(long, value_enum, default_value = "ws")]
    transport: Transport,
    /// Seconds between heartbeats.
    #[arg(long, default_value_t = 5)]
    heartbeat: u64,
    /// Working directory for runs.
    #[arg(long)]
    work_dir: Option<PathBuf>,
}

/// What a run reports up, whatever the transport.
#[derive(Debug)]
enum Up {
    Logs(String, Vec<Value>),
    Checkpoint(String, Value),
    Finish(String, i64, Option<Value>),
    /// A run's recording (its uploaded file id), sent after its finish.
    Video(String, String),
}

/// The current run, if any.
#[derive(Default)]
struct Current {
    run: Option<String>,
    stop: Option<watch::Sender<bool>>,
}

struct Robot {
    args: Args,
    http: reqwest::Client,
    current: Mutex<Current>,
    up: mpsc::UnboundedSender<Up>,
    connect: Mutex<Option<String>>,
}

#[tokio::main]
async fn main() {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()))
        .init();
    let args = Args::parse();
    let (up_tx, up_rx) = mpsc::unbounded_channel();
    let robot = Arc::new(Robot {
        args: args.clone(),
        http: reqwest::Client::new(),
        current: Mutex::default(),
        up: up_tx,
        connect: Mutex::default(),
    });
    let mut backoff = Duration::from_millis(500);
    let mut up_rx = up_rx;
    loop {
        let result = match args.transport {
            Transport::Ws => run_ws(&robot, &mut up_rx).await,
            Transport::Http => run_http(&robot, &mut up_rx).await,
        };
        match result {
            Ok(()) => backoff = Duration::from_millis(500),
            Err(e) => tracing::warn!("connection lost: {e}; retrying in {backoff:?}"),
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(Duration::from_secs(10));
    }
}

fn ws_url(server: &str, id: &str) -> String {
    let base = server
        .trim_end_matches('/')
        .replacen("http://", "ws://", 1)
        .replacen("https://", "wss://", 1);
    format!("{base}/robothub/{id}")
}

fn msg(action: &str, body: Value) -> Message {
    Message::Text(json!({"action": action, "body": body.to_string()}).to_string().into())
}

async fn run_ws(robot: &Arc<Robot>, up: &mut mpsc::UnboundedReceiver<Up>) -> Result<(), String> {
    let a = &robot.args;
    let (ws, _) = tokio_tungstenite::connect_async(ws_url(&a.server, &a.id))
        .await
        .map_err(|e| e.to_string())?;
    let (mut sink, mut stream) = ws.split();
    let proof = supplier_proof(&a.secret, &a.id);
    sink.send(msg(
        "Register",
        json!({"supplierCode": a.vendor, "supplierSecret": proof, "version": env!("CARGO_PKG_VERSION"), "capabilities": ["checkpoint"]}),
    ))
    .await
    .map_err(|e| e.to_string())?;
    tracing::info!(id = %a.id, "connected over WebSocket");
    let mut beat = tokio::time::interval(Duration::from_secs(a.heartbeat.max(1)));
    loop {
        tokio::select! {
            _ = beat.tick() => {
                let run = robot.current.lock().await.run.clone();
                let body = match run { Some(r) => json!({"runInstanceId": r}), None => json!({}) };
                sink.send(msg("Heartbeat", body)).await.map_err(|e| e.to_string())?;
            }
            Some(u) = up.recv() => {
                let m = match u {
                    Up::Logs(run, logs) => msg("ReportLogs", json!({"runInstanceId": run, "logs": logs})),
                    Up::Checkpoint(run, c) => msg("ReportCheckpoint", with_run(run, c)),
                    Up::Finish(run, status, outputs) => msg("ReportFinish", json!({"runInstanceId": run, "status": status, "outputValues": outputs})),
                    Up::Video(run, id) => msg("ReportVideoRecord", json!({"runInstanceId": run, "videoId": id})),
                };
                sink.send(m).await.map_err(|e| e.to_string())?;
            }
            m = stream.next() => {
                let text = match m {
                    Some(Ok(Message::Text(t))) => t.to_string(),
                    Some(Ok(Message::Close(_))) | None => return Err("closed by the server".into()),
                    Some(Err(e)) => return Err(e.to_string()),
                    Some(Ok(_)) => continue,
                };
                let v: Value = serde_json::from_str(&text).map_err(|e| e.to_string())?;
                let body: Value = match v.get("body").and_then(Value::as_str) {
                    Some(s) if !s.is_empty() => serde_json::from_str(s).unwrap_or(Value::Null),
                    _ => Value::Null,
                };
                match v.get("action").and_then(Value::as_str).unwrap_or("") {
                    "Execute" => robot.clone().execute(body).await,
                    "Stop" => robot.stop().await,
                    "SendLicense" => tracing::info!("license received"),
                    "Error" => {
                        tracing::warn!(code = %body["errorCode"], message = %body["message"], "server error");
                        if body["errorCode"] == 10000 {
                            return Err("another connection holds this robot id".into());
                        }
                    }
                    other => tracing::warn!("unknown action {other}"),
                }
            }
        }
    }
}

async fn run_http(robot: &Arc<Robot>, up: &mut mpsc::UnboundedReceiver<Up>) -> Result<(), String> {
    let a = &robot.args;
    let base = a.server.trim_end_matches('/').to_owned();
    let proof = supplier_proof(&a.secret, &a.id);
    let reg: Value = robot
        .http
        .post(format!("{base}/robots/connect/register"))
        .header("robotId", &a.id)
        .json(&json!({"supplierCode": a.vendor, "supplierSecret": proof, "version": env!("CARGO_PKG_VERSION"), "capabilities": ["checkpoint"]}))
        .send()
        .await
        .map_err(|e| e.to_string())?
        .json()
        .await
        .map_err(|e| e.to_string())?;
    let connect = reg["resultValue"]["robotConnectId"]
        .as_str()
        .ok_or(format!("register refused: {reg}"))?
        .to_owned();
    *robot.connect.lock().await = Some(connect.clone());
    tracing::info!(id = %a.id, "registered over HTTP");
    let post = |path: &str, body: Value| {
        robot
            .http
            .post(format!("{base}{path}"))
            .header("robotId", &a.id)
            .header("robotConnectId", &connect)
            .json(&body)
            .send()
    };
    let mut beat = tokio::time::interval(Duration::from_secs(a.heartbeat.max(1)));
    loop {
        tokio::select! {
            _ = beat.tick() => {
                // Drain every waiting command: one per answer.
                loop {
                    let run = robot.current.lock().await.run.clone();
                    let body = match run { Some(r) => json!({"runInstanceId": r}), None => json!({}) };
                    let resp = post("/robots/connect/heartbeat", body).await.map_err(|e| e.to_string())?;
                    if resp.status() == reqwest::StatusCode::UNAUTHORIZED {
                        return Err("the server no longer knows this connection".into());
                    }
                    let v: Value = resp.json().await.map_err(|e| e.to_string())?;
                    let action = v["resultValue"]["Action"].as_str().unwrap_or("None").to_owned();
                    match action.as_str() {
                        "Execute" => robot.clone().execute(v["resultValue"]["Body"].clone()).await,
                        "Stop" => robot.stop().await,
                        "None" => break,
                        "SendLicense" => tracing::info!("license received"),
                        "Error" => {
                            let body = &v["resultValue"]["Body"];
                            tracing::warn!(code = %body["errorCode"], message = %body["message"], "server error");
                            if body["errorCode"] == 10000 {
                                return Err("another connection holds this robot id".into());
                            }
                        }
                        other => tracing::warn!(action = other, body = %v["resultValue"]["Body"], "server says"),
                    }
                }
            }
            Some(u) = up.recv() => {
                let (path, body) = match u {
                    Up::Logs(run, logs) => ("/robots/connect/reportLogs", json!({"runInstanceId": run, "logs": logs})),
                    Up::Checkpoint(run, c) => ("/robots/connect/reportCheckpoint", with_run(run, c)),
                    Up::Finish(run, status, outputs) => ("/robots/connect/reportFinish", json!({"runInstanceId": run, "status": status, "outputValues": outputs})),
                    Up::Video(run, id) => ("/robots/connect/reportVideoRecord", json!({"runInstanceId": run, "videoId": id})),
                };
                let resp = post(path, body).await.map_err(|e| e.to_string())?;
                if !resp.status().is_success() {
                    tracing::warn!(path, status = %resp.status(), "report refused");
                }
            }
        }
    }
}

impl Robot {
    fn work_dir(&self) -> PathBuf {
        self.args
            .work_dir
            .clone()
            .unwrap_or_else(|| std::env::temp_dir().join("rpa-robot").join(&self.args.id))
    }

    async fn stop(&self) {
        if let Some(tx) = &self.current.lock().await.stop {
            let _ = tx.send(true);
        }
    }

    async fn execute(self: Arc<Self>, order: Value) {
        let Some(run) = order["runInstanceId"].as_str().map(str::to_owned) else {
            return;
        };
        {
            let mut cur = self.current.lock().await;
            if cur.run.as_deref() == Some(run.as_str()) {
                return; // already running it
            }
            if cur.run.is_some() {
                tracing::warn!(%run, "Execute while busy; ignored");
                return;
            }
            let (tx, _) = watch::channel(false);
            cur.run = Some(run.clone());
            cur.stop = Some(tx);
        }
        tracing::info!(%run, attempt = %order["attempt"], "executing");
        tokio::spawn(async move {
            let (status, outputs, video) = match self.run(&run, &order).await {
                Ok(r) => r,
                Err(e) => {
                    let _ = self.up.send(Up::Logs(run.clone(), vec![log(&e, 2)]));
                    (2, None, None)
                }
            };
            if status == PAUSED {
                tracing::info!(%run, "paused for a person's decision");
                *self.current.lock().await = Current::default();
                return;
            }
            let _ = self.up.send(Up::Finish(run.clone(), status, outputs));
            if let Some(id) = video {
                let _ = self.up.send(Up::Video(run.clone(), id));
            }
            *self.current.lock().await = Current::default();
            tracing::info!(%run, status, "finished");
        });
    }

    /// Runs an Execute: the finish status, the outputs, and the file id of
    /// the run's recording when the process asked for one.
    async fn run(&self, run: &str, order: &Value) -> Result<(i64, Option<Value>, Option<String>), String> {
        let dir = self.work_dir().join(run);
        let out_dir = dir.join("output");
        tokio::fs::create_dir_all(&out_dir).await.map_err(|e| e.to_string())?;
        let script = dir.join("package.sh");
        let uri = order["packageDownloadUri"].as_str().unwrap_or("");
        let package = if uri.is_empty() {
            Vec::new()
        } else {
            self.download(uri).await?
        };
        tokio::fs::write(&script, package).await.map_err(|e| e.to_string())?;
        let mut args = Map::new();
        let mut cmd = tokio::process::Command::new("sh");
        cmd.arg(&script)
            .current_dir(&dir)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        for a in order["arguments"].as_array().into_iter().flatten() {
            let (Some(name), Some(value)) = (a["name"].as_str(), a["value"].as_str()) else {
                continue;
            };
            args.insert(name.to_owned(), Value::String(value.to_owned()));
            let var: String = name
                .chars()
                .map(|c| {
                    if c.is_ascii_alphanumeric() {
                        c.to_ascii_uppercase()
                    } else {
                        '_'
                    }
                })
                .collect();
            cmd.env(format!("RPA_ARG_{var}"), value);
        }
        let args_file = dir.join("arguments.json");
        tokio::fs::write(&args_file, Value::Object(args).to_string())
            .await
            .map_err(|e| e.to_string())?;
        cmd.env("RPA_RUN_INSTANCE_ID", run)
            .env("RPA_ARGUMENTS_FILE", &args_file)
            .env("RPA_OUTPUT_DIR", &out_dir)
            .env("RPA_SERVER", self.args.server.trim_end_matches('/'))
            .env("RPA_ROBOT_ID", &self.args.id);
        match self.connect_id().await {
            Some(c) => cmd.env("RPA_ROBOT_CONNECT_ID", c),
            None => cmd
                .env("RPA_SUPPLIER_CODE", &self.args.vendor)
                .env("RPA_SUPPLIER_SECRET", supplier_proof(&self.args.secret, &self.args.id)),
        };
        if let Some(c) = order.get("checkpoint").filter(|c| !c.is_null()) {
            cmd.env("RPA_CHECKPOINT", c.to_string());
        }
        if let Some(token) = order["accessToken"].as_str() {
            let server = self.args.server.trim_end_matches('/');
            cmd.env("RPA_ACCESS_TOKEN", token)
                .env("UIPATH_URL", format!("{server}/default/DefaultTenant"))
                .env("UIPATH_ACCESS_TOKEN", token)
                .env("UIPATH_ROBOT_KEY", &self.args.id)
                .env("UIPATH_JOB_KEY", run);
        }
        let mut child = cmd.spawn().map_err(|e| format!("cannot start the package: {e}"))?;
        let (line_tx, mut line_rx) = mpsc::unbounded_channel::<(String, i64)>();
        for (pipe, level) in [
            (
                child
                    .stdout
                    .take()
                    .map(|p| Box::new(p) as Box<dyn tokio::io::AsyncRead + Unpin + Send>),
                0,
            ),
            (child.stderr.take().map(|p| Box::new(p) as _), 2),
        ] {
            let Some(pipe) = pipe else { continue };
            let tx = line_tx.clone();
            tokio::spawn(async move {
                let mut lines = BufReader::new(pipe).lines();
                while let Ok(Some(l)) = lines.next_line().await {
                    if tx.send((l, level)).is_err() {
                        break;
                    }
                }
            });
        }
        drop(line_tx);
        let mut stop_rx = self
            .current
            .lock()
            .await
            .stop
            .as_ref()
            .map(|t| t.subscribe())
            .ok_or("no run")?;
        let mut outputs = Map::new();
        let mut batch = Vec::new();
        // The run's console as an asciicast v2 recording, when asked for.
        let began = std::time::Instant::now();
        let mut recording = (order["videoRecordRequired"] == true).then(|| {
            let header = json!({"version": 2, "width": 120, "height": 40,
                "timestamp": chrono::Utc::now().timestamp(), "title": format!("run {run}")});
            vec![header.to_string()]
        });
        let mut flush = tokio::time::interval(Duration::from_millis(300));
        let mut stopped = false;
        let mut paused = false;
        let mut lines_done = false;
        let status = loop {
            tokio::select! {
                l = line_rx.recv(), if !lines_done => match l {
                    Some((line, level)) => {
                        if let Some(rest) = line.strip_prefix("::output ") {
                            if let Ok(Value::Object(m)) = serde_json::from_str::<Value>(rest) {
                                outputs.extend(m);
                            }
                        } else if let Some(rest) = line.strip_prefix("::checkpoint ") {
                            if let Ok(v) = serde_json::from_str::<Value>(rest) {
                                let _ = self.up.send(Up::Checkpoint(run.to_owned(), json!({"checkpoint": v})));
                            }
                        } else if let Some(rest) = line.strip_prefix("::pause ") {
                            // `::pause <number> [name]`: a person decides here; the run ends.
                            let (n, name) = rest.trim().split_once(' ').unwrap_or((rest.trim(), ""));
                            if let Ok(n) = n.parse::<u32>() {
                                let mut body = json!({"step": n, "pause": true});
                                if !name.is_empty() {
                                    body["stepName"] = json!(name);
                                }
                                let _ = self.up.send(Up::Checkpoint(run.to_owned(), body));
                                paused = true;
                                if let Some(pid) = child.id() {
                                    let _ = tokio::process::Command::new("kill").args(["-KILL", "--", &format!("-{pid}")]).status().await;
                                }
                                let _ = child.kill().await;
                            }
                        } else if let Some(rest) = line.strip_prefix("::step ") {
                            // `::step <number> [name]`: the run reached a step.
                            let (n, name) = rest.trim().split_once(' ').unwrap_or((rest.trim(), ""));
                            if let Ok(n) = n.parse::<u32>() {
                                let mut body = json!({"step": n});
                                if !name.is_empty() {
                                    body["stepName"] = json!(name);
                                }
                                let _ = self.up.send(Up::Checkpoint(run.to_owned(), body));
                            }
                        } else if let Some(rest) = line.strip_prefix("::screenshot ") {
                            // `::screenshot <file>`: the file is uploaded, the log line names it.
                            let path = dir.join(rest.trim());
                            let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
                            match tokio::fs::read(&path).await {
                                Ok(bytes) => {
                                    let mut l = log(&format!("screenshot {name}"), 0);
                                    if let Some(id) = self.upload(run, &name, bytes).await {
                                        l["screenshot"] = json!(id);
                                    }
                                    batch.push(l);
                                }
                                Err(e) => batch.push(log(&format!("screenshot {name}: {e}"), 2)),
                            }
                        } else {
                            if let Some(r) = recording.as_mut() {
                                r.push(json!([began.elapsed().as_secs_f64(), "o", format!("{line}\r\n")]).to_string());
                            }
                            batch.push(log(&line, level));
                            if batch.len() >= 50 {
                                let _ = self.up.send(Up::Logs(run.to_owned(), std::mem::take(&mut batch)));
                            }
                        }
                    }
                    None => lines_done = true,
                },
                _ = flush.tick() => {
                    if !batch.is_empty() {
                        let _ = self.up.send(Up::Logs(run.to_owned(), std::mem::take(&mut batch)));
                    }
                }
                _ = stop_rx.changed(), if !stopped => {
                    stopped = true;
                    tracing::info!(%run, "stop requested: killing the run");
                    if let Some(pid) = child.id() {
                        let _ = tokio::process::Command::new("kill").args(["-KILL", "--", &format!("-{pid}")]).status().await;
                    }
                    let _ = child.kill().await;
                }
                s = child.wait(), if lines_done || stopped || paused => break s.map_err(|e| e.to_string())?,
            }
        };
        if !batch.is_empty() {
            let _ = self.up.send(Up::Logs(run.to_owned(), batch));
        }
        self.upload_outputs(run, &out_dir).await;
        let video = match recording {
            Some(lines) => {
                let mut text = lines.join("\n");
                text.push('\n');
                self.upload(run, &format!("recording-{run}.cast"), text.into_bytes())
                    .await
            }
            None => None,
        };
        let code = if paused {
            PAUSED
        } else if stopped {
            1
        } else if status.success() {
            0
        } else {
            2
        };
        Ok((code, (!outputs.is_empty()).then_some(Value::Object(outputs)), video))
    }

    /// Credentials for the file endpoints: the connection id over HTTP, the
    /// vendor proof over WebSocket (the hub hands out no connection id).
    fn headers(&self, req: reqwest::RequestBuilder, connect: Option<&str>) -> reqwest::RequestBuilder {
        let req = req.header("robotId", &self.args.id);
        match connect {
            Some(c) => req.header("robotConnectId", c),
            None => req
                .header("supplierCode", &self.args.vendor)
                .header("supplierSecret", supplier_proof(&self.args.secret, &self.args.id)),
        }
    }

    async fn download(&self, uri: &str) -> Result<Vec<u8>, String> {
        let connect = self.connect_id().await;
        let resp = self
            .headers(self.http.get(uri), connect.as_deref())
            .send()
            .await
            .map_err(|e| e.to_string())?;
        if !resp.status().is_success() {
            return Err(format!("package download failed: {}", resp.status()));
        }
        // The digest the server recorded at upload: bytes damaged on the
        // way or on its disk are not run.
        let expected = resp
            .headers()
            .get("x-checksum-sha256")
            .and_then(|v| v.to_str().ok())
            .map(|v| v.trim().to_ascii_lowercase());
        let bytes = resp.bytes().await.map_err(|e| e.to_string())?.to_vec();
        if let Some(expected) = expected {
            use sha2::Digest;
            let got = hex::encode(sha2::Sha256::digest(&bytes));
            if got != expected {
                return Err(format!(
                    "the package's checksum does not match: sha256 {got}, the server recorded {expected}; not run"
                ));
            }
        }
        Ok(bytes)
    }

    /// The connection id for file calls (HTTP robots only).
    async fn connect_id(&self) -> Option<String> {
        self.connect.lock().await.clone()
    }

    async fn upload_outputs(&self, run: &str, dir: &Path) {
        let Ok(mut entries) = tokio::fs::read_dir(dir).await else {
            return;
        };
        while let Ok(Some(e)) = entries.next_entry().await {
            let Ok(bytes) = tokio::fs::read(e.path()).await else {
                continue;
            };
            let name = e.file_name().to_string_lossy().into_owned();
            self.upload(run, &name, bytes).await;
        }
    }

    /// Uploads a file of run `run`; its file id.
    async fn upload(&self, run: &str, name: &str, bytes: Vec<u8>) -> Option<String> {
        let connect = self.connect_id().await;
        let form = reqwest::multipart::Form::new().part(
            "file",
            reqwest::multipart::Part::bytes(bytes).file_name(name.to_owned()),
        );
        let url = format!("{}/v1/file/file/upload", self.args.server.trim_end_matches('/'));
        let req = self
            .headers(self.http.post(url), connect.as_deref())
            .header("runInstanceId", run)
            .multipart(form);
        match req.send().await {
            Ok(r) if r.status().is_success() => {
                tracing::info!(%run, file = %name, "uploaded");
                let v: Value = r.json().await.ok()?;
                v["resultValue"]["fileId"].as_str().map(str::to_owned)
            }
            Ok(r) => {
                tracing::warn!(%run, file = %name, status = %r.status(), "upload refused");
                None
            }
            Err(e) => {
                tracing::warn!(%run, file = %name, "upload failed: {e}");
                None
            }
        }
    }
}

/// What `run` answers for a run that paused for a person (no finish is sent).
const PAUSED: i64 = -1;

fn log(content: &str, level: i64) -> Value {
    json!({"content": content, "logAt": chrono::Utc::now().format("%Y-%m-%d %H:%M:%S").to_string(), "logLevel": level})
}

/// A report body: `extra`'s fields after `runInstanceId`.
fn with_run(run: String, extra: Value) -> Value {
    let mut body = json!({"runInstanceId": run});
    if let (Some(b), Value::Object(m)) = (body.as_object_mut(), extra) {
        b.extend(m);
    }
    body
}
