//! # rpa-adapters-ws
//!
//! The seed 001 A.1 robot hub: `GET /robothub/{id}` upgrades to a WebSocket
//! whose messages are `{"action": ..., "body": "<JSON as a string>"}`.
//!
//! | direction | action | body | engine call |
//! |---|---|---|---|
//! | up | `Register` | `{supplierCode, supplierSecret, version}` | `register_robot`; answered by `SendLicense` when a license is bound |
//! | up | `Heartbeat` | `{runInstanceId?}` | `heartbeat` (waiting commands are pushed) |
//! | up | `ReportLogs` | `{runInstanceId, logs: RunInstanceLog[]}` | `report_logs` |
//! | up | `ReportFinish` | `{runInstanceId, status, errorCode?, outputValues?}` | `report_finish` |
//! | up | `ReportVideoRecord` | `{runInstanceId, videoId}` | `report_video` |
//! | up | `ReportCheckpoint` (extension) | `{runInstanceId, checkpoint}` | `report_checkpoint` |
//! | down | `Execute` | table A.7 (+ `checkpoint`, `attempt`) | pushed once its commit stands, or taken from the outbox |
//! | down | `Stop` | none | pushed once its commit stands, or taken from the outbox |
//! | down | `SendLicense` | `{licenseContent}` | after Register |
//! | down | `Error` | `{errorCode, message}` | on a refused message |
//!
//! Error codes (A.3.5): 10000 duplicate connection, 10001 bad parameters,
//! 19999 unknown. A second connection for a robot whose live connection is
//! healthy gets 10000 and *that second connection* is closed: the robot's
//! work stays on the connection that holds it (DESIGN §7). A failed
//! Register (wrong supplier proof) gets Error 10001 and is closed. Any
//! other refused message gets Error and the connection stays usable.
//! A closed socket makes the robot Disconnected; it keeps its job until the
//! heartbeat timeout, so a robot that reconnects in time keeps running it.
//!
//! The hub is the engine's [`RobotTransport`]: the commands of a robot
//! connected here are handed to its connection once their commit stands
//! (they skip the outbox); commands that another node (or an HTTP caller
//! before the robot connected) put in a robot's outbox wake its connection,
//! which takes them and sends them. Each connection uses small buffers
//! (4 KiB read buffer, no write buffer beyond the frame being sent).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Path, State};
use axum::response::Response;
use axum::routing::get;
use futures::{SinkExt, StreamExt};
use rpa_core::engine::NewLog;
use rpa_core::error::Error;
use rpa_core::ids::RobotId;
use rpa_core::job::FinishStatus;
use rpa_core::model::LogLevel;
use rpa_core::transport::{Command, RobotTransport};
use rpa_core::{Engine, Key, Store};
use serde_json::{Map, Value, json};
use tokio::sync::mpsc;

/// Seed 001 error: a second connection for a robot that has a live one.
pub const DUPLICATE_CONNECTION: i64 = 10000;
/// Seed 001 error: bad parameters.
pub const BAD_PARAMETERS: i64 = 10001;
/// Seed 001 error: anything else.
pub const UNKNOWN: i64 = 19999;

/// Live connections by robot: to push commands to, or to wake when their
/// outbox fills.
#[derive(Default)]
pub struct Hub {
    conns: Mutex<HashMap<RobotId, Conn>>,
    next: std::sync::atomic::AtomicU64,
}

/// One live connection's ends.
struct Conn {
    id: u64,
    wake: mpsc::Sender<()>,
    push: mpsc::UnboundedSender<Vec<Command>>,
}

impl std::fmt::Debug for Hub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hub").field("connections", &self.connections()).finish()
    }
}

impl Hub {
    /// A hub with no connections.
    pub fn new() -> Arc<Hub> {
        Arc::new(Hub::default())
    }

    /// Number of registered connections.
    pub fn connections(&self) -> usize {
        self.conns.lock().unwrap_or_else(|p| p.into_inner()).len()
    }

    fn attach(&self, robot: RobotId, ends: &Ends) -> u64 {
        let id = self.next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let conn = Conn {
            id,
            wake: ends.wake.clone(),
            push: ends.push.clone(),
        };
        self.conns.lock().unwrap_or_else(|p| p.into_inner()).insert(robot, conn);
        id
    }

    fn detach(&self, robot: RobotId, id: u64) {
        let mut g = self.conns.lock().unwrap_or_else(|p| p.into_inner());
        if g.get(&robot).is_some_and(|c| c.id == id) {
            g.remove(&robot);
        }
    }
}

impl RobotTransport for Hub {
    fn wake(&self, robot: RobotId) {
        if let Some(c) = self.conns.lock().unwrap_or_else(|p| p.into_inner()).get(&robot) {
            // A full channel already holds a wake-up: nothing is lost.
            let _ = c.wake.try_send(());
        }
    }

    fn is_here(&self, robot: RobotId) -> bool {
        self.conns
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&robot)
            .is_some_and(|c| !c.push.is_closed())
    }

    fn push(&self, robot: RobotId, commands: Vec<Command>) {
        if let Some(c) = self.conns.lock().unwrap_or_else(|p| p.into_inner()).get(&robot) {
            // Closed: the connection is gone, and its commands with it.
            let _ = c.push.send(commands);
        }
    }
}

/// The channels a connection's loop listens on besides its socket.
struct Ends {
    wake: mpsc::Sender<()>,
    push: mpsc::UnboundedSender<Vec<Command>>,
}

/// What the hub's handler needs.
pub struct HubState<S> {
    /// The engine (built with this hub as its transport).
    pub engine: Arc<Engine<S>>,
    /// The hub.
    pub hub: Arc<Hub>,
}

impl<S> Clone for HubState<S> {
    fn clone(&self) -> Self {
        HubState {
            engine: self.engine.clone(),
            hub: self.hub.clone(),
        }
    }
}

/// `GET /robothub/{id}`.
pub fn router<S: Store>(state: HubState<S>) -> Router {
    Router::new()
        .route("/robothub/{id}", get(upgrade::<S>))
        .with_state(state)
}

async fn upgrade<S: Store>(State(st): State<HubState<S>>, Path(id): Path<String>, ws: WebSocketUpgrade) -> Response {
    ws.read_buffer_size(4096)
        .write_buffer_size(0)
        .max_message_size(1 << 20)
        .on_upgrade(move |socket| serve(st, id, socket))
}

/// A message down to the robot.
fn down(action: &str, body: Option<Value>) -> Message {
    let mut m = json!({ "action": action });
    if let Some(b) = body {
        m["body"] = Value::String(b.to_string());
    }
    Message::Text(m.to_string().into())
}

fn error(code: i64, message: impl std::fmt::Display) -> Message {
    down(
        "Error",
        Some(json!({"errorCode": code, "message": message.to_string()})),
    )
}

/// The message for a command.
pub fn command_message(cmd: &Command) -> Message {
    match cmd {
        Command::Execute(e) => down("Execute", Some(serde_json::to_value(e).unwrap_or(Value::Null))),
        Command::Stop { .. } => down("Stop", None),
        Command::SendLicense { license_content } => {
            down("SendLicense", Some(json!({"licenseContent": license_content})))
        }
        Command::Error { error_code, message } => error(i64::from(*error_code), message),
    }
}

fn code_of(e: &Error) -> i64 {
    match e {
        Error::DuplicateConnection => DUPLICATE_CONNECTION,
        e if e.is_client_error() => BAD_PARAMETERS,
        _ => UNKNOWN,
    }
}

/// The parsed `{action, body}` of an up message; `body` may be a string
/// holding JSON (as the document says) or, leniently, a JSON object.
fn parse(text: &str) -> Result<(String, Map<String, Value>), String> {
    let v: Value = serde_json::from_str(text).map_err(|e| format!("not JSON: {e}"))?;
    let action = v
        .get("action")
        .and_then(Value::as_str)
        .ok_or("action is required")?
        .to_owned();
    let body = match v.get("body") {
        None | Some(Value::Null) => Map::new(),
        Some(Value::String(s)) if s.trim().is_empty() => Map::new(),
        Some(Value::String(s)) => match serde_json::from_str::<Value>(s) {
            Ok(Value::Object(m)) => m,
            _ => return Err("body must be a string holding a JSON object".into()),
        },
        Some(Value::Object(m)) => m.clone(),
        Some(_) => return Err("body must be a string holding a JSON object".into()),
    };
    Ok((action, body))
}

fn str_field<'a>(b: &'a Map<String, Value>, name: &str) -> Result<&'a str, String> {
    match b.get(name) {
        Some(Value::String(s)) if !s.trim().is_empty() => Ok(s.trim()),
        None | Some(Value::Null) => Err(format!("{name} is required")),
        _ => Err(format!("{name} must be a non-empty string")),
    }
}

fn run_field(b: &Map<String, Value>) -> Result<Key, String> {
    str_field(b, "runInstanceId")?
        .parse()
        .map_err(|_| "runInstanceId must be a 32-character id".to_owned())
}

fn int_field(b: &Map<String, Value>, name: &str) -> Result<Option<i64>, String> {
    match b.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => n.as_i64().map(Some).ok_or_else(|| format!("{name} must be an integer")),
        Some(Value::String(s)) => s
            .trim()
            .parse()
            .map(Some)
            .map_err(|_| format!("{name} must be an integer")),
        _ => Err(format!("{name} must be an integer")),
    }
}

fn logs_field(b: &Map<String, Value>) -> Result<Vec<NewLog>, String> {
    let Some(Value::Array(items)) = b.get("logs") else {
        return Err("logs must be an array of RunInstanceLog".into());
    };
    items
        .iter()
        .enumerate()
        .map(|(i, item)| {
            let Value::Object(m) = item else {
                return Err(format!("logs[{i}] must be an object"));
            };
            let content = match m.get("content") {
                Some(Value::String(s)) => s.clone(),
                _ => return Err(format!("logs[{i}].content is required")),
            };
            let screenshot = m.get("screenshot").and_then(Value::as_str).map(str::to_owned);
            let log_at = match m.get("logAt") {
                Some(Value::String(s)) => s.clone(),
                Some(Value::Number(n)) => n.to_string(),
                _ => return Err(format!("logs[{i}].logAt is required")),
            };
            let level = int_field(m, "logLevel")?
                .and_then(LogLevel::from_int)
                .ok_or_else(|| format!("logs[{i}].logLevel must be 0, 1 or 2"))?;
            Ok(NewLog {
                content,
                screenshot,
                log_at,
                level,
            })
        })
        .collect()
}

/// A registered connection.
struct Session {
    robot: RobotId,
    connect: Key,
    hub_id: u64,
}

/// What to do after a message.
enum Next {
    Continue,
    Close,
}

async fn serve<S: Store>(st: HubState<S>, code: String, socket: WebSocket) {
    let (mut sink, mut stream) = socket.split();
    let (wake_tx, mut wake_rx) = mpsc::channel::<()>(1);
    let (push_tx, mut push_rx) = mpsc::unbounded_channel::<Vec<Command>>();
    let ends = Ends {
        wake: wake_tx,
        push: push_tx,
    };
    let mut session: Option<Session> = None;
    loop {
        tokio::select! {
            msg = stream.next() => {
                let text = match msg {
                    Some(Ok(Message::Text(t))) => t.to_string(),
                    Some(Ok(Message::Binary(b))) => String::from_utf8_lossy(&b).into_owned(),
                    Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
                    Some(Ok(Message::Close(_))) | None | Some(Err(_)) => break,
                };
                let (out, next) = handle(&st, &code, &text, &mut session, &ends).await;
                let mut failed = false;
                for m in out {
                    if sink.send(m).await.is_err() {
                        failed = true;
                        break;
                    }
                }
                if failed || matches!(next, Next::Close) {
                    let _ = sink.close().await;
                    break;
                }
            }
            Some(cmds) = push_rx.recv() => {
                if send_all(&mut sink, &cmds).await.is_err() {
                    break;
                }
            }
            Some(()) = wake_rx.recv() => {
                let Some(s) = &session else { continue };
                match st.engine.take_commands(s.robot).await {
                    Ok(cmds) => {
                        if send_all(&mut sink, &cmds).await.is_err() {
                            break;
                        }
                    }
                    Err(e) => tracing::error!(error = %e, robot = %code, "cannot take robot commands"),
                }
            }
        }
    }
    if let Some(s) = session {
        st.hub.detach(s.robot, s.hub_id);
        if let Err(e) = st.engine.disconnect(&code, s.connect).await {
            tracing::error!(error = %e, robot = %code, "cannot record a robot disconnect");
        }
        tracing::info!(robot = %code, "robot disconnected");
    }
}

/// Sends `cmds` in order; an error means the socket is gone.
async fn send_all<K>(sink: &mut K, cmds: &[Command]) -> Result<(), K::Error>
where
    K: futures::Sink<Message> + Unpin,
{
    for c in cmds {
        sink.send(command_message(c)).await?;
    }
    Ok(())
}

async fn handle<S: Store>(
    st: &HubState<S>,
    code: &str,
    text: &str,
    session: &mut Option<Session>,
    ends: &Ends,
) -> (Vec<Message>, Next) {
    let (action, body) = match parse(text) {
        Ok(p) => p,
        Err(e) => return (vec![error(BAD_PARAMETERS, e)], Next::Continue),
    };
    let bad = |e: String| (vec![error(BAD_PARAMETERS, e)], Next::Continue);
    let refused = |e: Error| {
        if !e.is_client_error() {
            tracing::error!(error = %e, robot = %code, "robot hub internal error");
            return (vec![error(UNKNOWN, "internal error")], Next::Continue);
        }
        (vec![error(code_of(&e), e)], Next::Continue)
    };
    if action == "Register" {
        if session.is_some() {
            return bad("this connection is already registered".into());
        }
        let (supplier, secret) = match (str_field(&body, "supplierCode"), str_field(&body, "supplierSecret")) {
            (Ok(a), Ok(b)) => (a, b),
            (Err(e), _) | (_, Err(e)) => return (vec![error(BAD_PARAMETERS, e)], Next::Close),
        };
        let version = body.get("version").and_then(Value::as_str);
        return match st.engine.register_socket(code, supplier, secret, version).await {
            Ok(reg) => {
                let hub_id = st.hub.attach(reg.robot.id, ends);
                *session = Some(Session {
                    robot: reg.robot.id,
                    connect: reg.connect,
                    hub_id,
                });
                tracing::info!(robot = %code, "robot registered over WebSocket");
                let out = reg
                    .license
                    .map(|l| command_message(&Command::SendLicense { license_content: l }))
                    .into_iter()
                    .collect();
                // Commands may already wait (a reconnect): deliver them.
                let _ = ends.wake.try_send(());
                (out, Next::Continue)
            }
            Err(e) => (vec![error(code_of(&e), e)], Next::Close),
        };
    }
    let Some(s) = session.as_ref() else {
        return bad("register first".into());
    };
    let engine = &st.engine;
    match action.as_str() {
        "Heartbeat" => {
            let run = match body.get("runInstanceId") {
                None | Some(Value::Null) => None,
                Some(Value::String(x)) if x.trim().is_empty() => None,
                Some(_) => match run_field(&body) {
                    Ok(k) => Some(k),
                    Err(e) => return bad(e),
                },
            };
            match engine.heartbeat(code, s.connect, run).await {
                Ok(cmds) => (cmds.iter().map(command_message).collect(), Next::Continue),
                Err(e) => refused(e),
            }
        }
        "ReportLogs" => {
            let (run, logs) = match (run_field(&body), logs_field(&body)) {
                (Ok(r), Ok(l)) => (r, l),
                (Err(e), _) | (_, Err(e)) => return bad(e),
            };
            match engine.report_logs(code, s.connect, run, logs).await {
                Ok(_) => (vec![], Next::Continue),
                Err(e) => refused(e),
            }
        }
        "ReportFinish" => {
            let run = match run_field(&body) {
                Ok(r) => r,
                Err(e) => return bad(e),
            };
            let status = match int_field(&body, "status") {
                Ok(Some(v)) => match FinishStatus::from_int(v) {
                    Some(st) => st,
                    None => return bad("status must be 0, 1 or 2".into()),
                },
                Ok(None) => return bad("status is required".into()),
                Err(e) => return bad(e),
            };
            let error_code = match int_field(&body, "errorCode") {
                Ok(c) => c.and_then(|c| i32::try_from(c).ok()),
                Err(e) => return bad(e),
            };
            let outputs = match body.get("outputValues") {
                None | Some(Value::Null) => None,
                Some(v @ Value::Object(_)) => Some(v.clone()),
                Some(Value::String(x)) => match serde_json::from_str::<Value>(x) {
                    Ok(v @ Value::Object(_)) => Some(v),
                    _ => return bad("outputValues must be a JSON object".into()),
                },
                Some(_) => return bad("outputValues must be a JSON object".into()),
            };
            match engine
                .report_finish(code, s.connect, run, status, error_code, outputs)
                .await
            {
                Ok(_) => (vec![], Next::Continue),
                Err(e) => refused(e),
            }
        }
        "ReportVideoRecord" => {
            let (run, video) = match (run_field(&body), str_field(&body, "videoId")) {
                (Ok(r), Ok(v)) => (r, v),
                (Err(e), _) | (_, Err(e)) => return bad(e),
            };
            match engine.report_video(code, s.connect, run, video).await {
                Ok(()) => (vec![], Next::Continue),
                Err(e) => refused(e),
            }
        }
        "ReportCheckpoint" => {
            let run = match run_field(&body) {
                Ok(r) => r,
                Err(e) => return bad(e),
            };
            let Some(data) = body.get("checkpoint").cloned() else {
                return bad("checkpoint is required".into());
            };
            match engine.report_checkpoint(code, s.connect, run, data).await {
                Ok(_) => (vec![], Next::Continue),
                Err(e) => refused(e),
            }
        }
        other => bad(format!("unknown action {other}")),
    }
}
