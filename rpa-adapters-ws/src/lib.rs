//! # rpa-adapters-ws
//!
//! The seed 001 A.1 robot hub: `GET /robothub/{id}` upgrades to a WebSocket
//! whose messages are `{"action": ..., "body": "<JSON as a string>"}`.
//!
//! | direction | action | body | engine call |
//! |---|---|---|---|
//! | up | `Register` | `{supplierCode, supplierSecret, version, capabilities?}` | `register_socket`; answered by `SendLicense` when a license is bound |
//! | up | `Heartbeat` | `{runInstanceId?}` | `heartbeat_received` with the message's arrival (waiting commands are pushed) |
//! | up | `ReportLogs` | `{runInstanceId, logs: RunInstanceLog[]}` | `report_logs` |
//! | up | `ReportFinish` | `{runInstanceId, status, errorCode?, outputValues?}` | `report_finish` |
//! | up | `ReportVideoRecord` | `{runInstanceId, videoId}` | `report_video` |
//! | up | `ReportCheckpoint` (extension) | `{runInstanceId, checkpoint?, step?, stepName?, taskProcessId?, pause?}` | `report_checkpoint` |
//! | down | `Execute` | table A.7 (+ `checkpoint`, `attempt` for robots that declared `capabilities: ["checkpoint"]`) | pushed once its commit stands, or taken from the outbox |
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
//! A server that stops calls [`Hub::close_all`]: every connection gets a
//! Close frame (1001) and its disconnect is recorded before the server exits.
//!
//! The hub is the engine's [`RobotTransport`]: the commands of a robot
//! connected here are handed to its connection once their commit stands
//! (they skip the outbox); commands that another node (or an HTTP caller
//! before the robot connected) put in a robot's outbox wake its connection,
//! which takes them and sends them. Each connection uses small buffers
//! (4 KiB read buffer, no write buffer beyond the frame being sent).
//!
//! A connection's frames are read as they arrive, noted as heard from the
//! robot ([`Engine::heard`]), and handled in order: a robot whose messages
//! wait behind slow work here is not taken for silent, and a heartbeat that
//! arrived before its job's Execute left is not taken to disown the job.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade, close_code};
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use futures::{SinkExt, StreamExt};
use rpa_core::error::Error;
use rpa_core::ids::RobotId;
use rpa_core::seed001::{self, Bad, Body};
use rpa_core::transport::{Command, RobotTransport};
use rpa_core::{Engine, Key, Store, Timestamp};
use serde_json::{Value, json};
use tokio::sync::{mpsc, watch};

pub use rpa_core::seed001::{BAD_PARAMETERS, DUPLICATE_CONNECTION, UNKNOWN};

/// Live connections by robot: to push commands to, or to wake when their
/// outbox fills.
pub struct Hub {
    conns: Mutex<HashMap<RobotId, Conn>>,
    next: std::sync::atomic::AtomicU64,
    /// Set by [`Hub::close_all`]: every connection says goodbye and ends,
    /// and new ones are refused.
    closing: watch::Sender<bool>,
    /// Sockets whose loop still runs (registered or not).
    open: watch::Sender<usize>,
    /// Messages of connections not yet registered that are being handled
    /// at once: a reconnect storm (every robot back together after a
    /// restart) waits here, each connection holding only its socket,
    /// instead of running thousands of registrations side by side.
    starting: tokio::sync::Semaphore,
}

/// Registrations handled at once (see [`Hub`]'s `starting`).
pub const STARTING_AT_ONCE: usize = 32;

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
        Arc::new(Hub {
            conns: Mutex::default(),
            next: std::sync::atomic::AtomicU64::new(0),
            closing: watch::Sender::new(false),
            open: watch::Sender::new(0),
            starting: tokio::sync::Semaphore::new(STARTING_AT_ONCE),
        })
    }

    /// Closes every connection, for a server that stops: each is sent a
    /// Close frame (1001, going away) and its robot's disconnect is
    /// recorded (the robot keeps its job until the heartbeat timeout, as
    /// after any closed socket); new connections are refused with 503.
    /// Completes once every connection's loop has ended.
    pub async fn close_all(&self) {
        self.closing.send_replace(true);
        let mut open = self.open.subscribe();
        let _ = open.wait_for(|n| *n == 0).await;
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
    if *st.hub.closing.borrow() {
        return (StatusCode::SERVICE_UNAVAILABLE, "the server is shutting down").into_response();
    }
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

fn error(code: i32, message: impl std::fmt::Display) -> Message {
    down("Error", Some(seed001::error(code, message)))
}

/// The message for a command, for a robot that takes the fail-over
/// extensions (`extensions`, declared at Register) or not.
pub fn command_message(cmd: &Command, extensions: bool) -> Message {
    let (action, body) = seed001::command(cmd, extensions);
    down(action, body)
}

fn code_of(e: &Error) -> i32 {
    match e {
        Error::DuplicateConnection | Error::Replaced => DUPLICATE_CONNECTION,
        e if e.is_client_error() => BAD_PARAMETERS,
        _ => UNKNOWN,
    }
}

/// The `{action, body}` of an up message.
fn parse(text: &str) -> Result<(String, Body), Bad> {
    let v: Value = serde_json::from_str(text).map_err(|e| Bad(format!("not JSON: {e}")))?;
    let action = v
        .get("action")
        .and_then(Value::as_str)
        .ok_or_else(|| Bad("action is required".into()))?
        .to_owned();
    Ok((action, Body::from_ws(v.get("body"))?))
}

/// A registered connection.
struct Session {
    robot: RobotId,
    connect: Key,
    hub_id: u64,
    /// Whether the robot takes Execute's fail-over extensions.
    extensions: bool,
}

/// What to do after a message.
enum Next {
    Continue,
    Close,
}

/// Completes once the hub closes.
async fn closed(closing: &mut watch::Receiver<bool>) {
    let _ = closing.wait_for(|c| *c).await;
}

/// Counts a socket's loop as open while it lives.
struct Open(Arc<Hub>);

impl Open {
    fn new(hub: &Arc<Hub>) -> Open {
        hub.open.send_modify(|n| *n += 1);
        Open(hub.clone())
    }
}

impl Drop for Open {
    fn drop(&mut self) {
        self.0.open.send_modify(|n| *n -= 1);
    }
}

async fn serve<S: Store>(st: HubState<S>, code: String, socket: WebSocket) {
    // Dropped last, once the disconnect is recorded.
    let _open = Open::new(&st.hub);
    let mut closing = st.hub.closing.subscribe();
    let (mut sink, stream) = socket.split();
    // Frames are read as they arrive and noted as heard from the robot
    // before they wait their turn: a robot whose messages queue behind slow
    // work here is alive all the same (see the engine's `liveness.rs`).
    let registered = Arc::new(std::sync::OnceLock::<RobotId>::new());
    let (frames, mut incoming) = mpsc::channel::<(Timestamp, String)>(FRAMES_WAITING);
    let reader = tokio::spawn(read_frames(st.engine.clone(), registered.clone(), stream, frames));
    let (wake_tx, mut wake_rx) = mpsc::channel::<()>(1);
    let (push_tx, mut push_rx) = mpsc::unbounded_channel::<Vec<Command>>();
    let ends = Ends {
        wake: wake_tx,
        push: push_tx,
    };
    let mut session: Option<Session> = None;
    loop {
        tokio::select! {
            frame = incoming.recv() => {
                let Some((received, text)) = frame else { break };
                // Boxed: the engine's futures are large, and a connection
                // waits most of its life; only a message being handled
                // should hold that memory.
                let _starting = match session {
                    Some(_) => None,
                    None => st.hub.starting.acquire().await.ok(),
                };
                let (out, next) = Box::pin(handle(&st, &code, &text, received, &mut session, &ends)).await;
                if let Some(s) = &session {
                    let _ = registered.set(s.robot);
                }
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
                let ext = session.as_ref().is_some_and(|s| s.extensions);
                if send_all(&mut sink, &cmds, ext).await.is_err() {
                    break;
                }
                if let Some(s) = &session {
                    st.engine.handed(s.robot, &cmds);
                }
            }
            () = closed(&mut closing) => {
                let bye = CloseFrame {
                    code: close_code::AWAY,
                    reason: "server shutting down".into(),
                };
                let _ = sink.send(Message::Close(Some(bye))).await;
                break;
            }
            Some(()) = wake_rx.recv() => {
                let Some(s) = &session else { continue };
                match Box::pin(st.engine.take_commands(s.robot)).await {
                    Ok(cmds) => {
                        if send_all(&mut sink, &cmds, s.extensions).await.is_err() {
                            break;
                        }
                    }
                    Err(e) => tracing::error!(error = %e, robot = %code, "cannot take robot commands"),
                }
            }
        }
    }
    reader.abort();
    if let Some(s) = session {
        st.hub.detach(s.robot, s.hub_id);
        if let Err(e) = Box::pin(st.engine.disconnect(&code, s.connect)).await {
            tracing::error!(error = %e, robot = %code, "cannot record a robot disconnect");
        }
        tracing::info!(robot = %code, "robot disconnected");
    }
}

/// Frames of one connection read ahead of their handling (a robot sends a
/// heartbeat every few seconds; beyond this the socket waits).
const FRAMES_WAITING: usize = 256;

/// Reads a connection's frames into `frames` until it closes, noting each
/// as heard from the robot once it has registered.
async fn read_frames<S: Store>(
    engine: Arc<Engine<S>>,
    registered: Arc<std::sync::OnceLock<RobotId>>,
    mut stream: futures::stream::SplitStream<WebSocket>,
    frames: mpsc::Sender<(Timestamp, String)>,
) {
    while let Some(msg) = stream.next().await {
        let text = match msg {
            Ok(Message::Text(t)) => t.to_string(),
            Ok(Message::Binary(b)) => String::from_utf8_lossy(&b).into_owned(),
            Ok(Message::Ping(_) | Message::Pong(_)) => {
                if let Some(r) = registered.get() {
                    engine.heard(*r);
                }
                continue;
            }
            Ok(Message::Close(_)) | Err(_) => break,
        };
        let received = match registered.get() {
            Some(r) => engine.heard(*r),
            None => engine.now(),
        };
        if frames.send((received, text)).await.is_err() {
            break;
        }
    }
}

/// Sends `cmds` in order; an error means the socket is gone.
async fn send_all<K>(sink: &mut K, cmds: &[Command], extensions: bool) -> Result<(), K::Error>
where
    K: futures::Sink<Message> + Unpin,
{
    for c in cmds {
        sink.send(command_message(c, extensions)).await?;
    }
    Ok(())
}

async fn handle<S: Store>(
    st: &HubState<S>,
    code: &str,
    text: &str,
    received: Timestamp,
    session: &mut Option<Session>,
    ends: &Ends,
) -> (Vec<Message>, Next) {
    let (action, body) = match parse(text) {
        Ok(p) => p,
        Err(e) => return (vec![error(BAD_PARAMETERS, e)], Next::Continue),
    };
    if action == "Register" {
        if session.is_some() {
            return bad(Bad("this connection is already registered".into()));
        }
        let reg = match seed001::register(&body) {
            Ok(r) => r,
            Err(e) => return (vec![error(BAD_PARAMETERS, e)], Next::Close),
        };
        return match st
            .engine
            .register_socket(
                code,
                reg.supplier_code,
                reg.supplier_secret,
                reg.version,
                &reg.capabilities,
            )
            .await
        {
            Ok(reg) => {
                let hub_id = st.hub.attach(reg.robot.id, ends);
                *session = Some(Session {
                    robot: reg.robot.id,
                    connect: reg.connect,
                    hub_id,
                    extensions: reg.robot.extensions,
                });
                tracing::info!(robot = %code, "robot registered over WebSocket");
                let out = reg
                    .license
                    .map(|l| command_message(&Command::SendLicense { license_content: l }, false))
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
        return bad(Bad("register first".into()));
    };
    match act(&st.engine, code, s.connect, &action, &body, received).await {
        Ok(Act::Nothing) => (vec![], Next::Continue),
        Ok(Act::Commands(cmds)) => (
            cmds.iter().map(|c| command_message(c, s.extensions)).collect(),
            Next::Continue,
        ),
        Err(Refusal::Bad(e)) => bad(e),
        Err(Refusal::Engine(e)) if !e.is_client_error() => {
            tracing::error!(error = %e, robot = %code, "robot hub internal error");
            (vec![error(UNKNOWN, "internal error")], Next::Continue)
        }
        // Another registration replaced this connection: 10000, then closed.
        Err(Refusal::Engine(e @ Error::Replaced)) => (vec![error(code_of(&e), e)], Next::Close),
        Err(Refusal::Engine(e)) => (vec![error(code_of(&e), e)], Next::Continue),
    }
}

fn bad(e: Bad) -> (Vec<Message>, Next) {
    (vec![error(BAD_PARAMETERS, e)], Next::Continue)
}

/// What a registered robot's message comes to.
enum Act {
    Nothing,
    Commands(Vec<Command>),
}

/// Why a message was refused.
enum Refusal {
    Bad(Bad),
    Engine(Error),
}

impl From<Bad> for Refusal {
    fn from(e: Bad) -> Self {
        Refusal::Bad(e)
    }
}

impl From<Error> for Refusal {
    fn from(e: Error) -> Self {
        Refusal::Engine(e)
    }
}

/// A registered robot's message: the translation table of the module docs.
async fn act<S: Store>(
    engine: &Engine<S>,
    code: &str,
    connect: Key,
    action: &str,
    b: &Body,
    received: Timestamp,
) -> Result<Act, Refusal> {
    match action {
        "Heartbeat" => {
            let run = seed001::heartbeat(b)?;
            Ok(Act::Commands(
                engine.heartbeat_received(code, connect, run, received).await?,
            ))
        }
        "ReportLogs" => {
            let (run, logs) = (seed001::run_instance(b)?, seed001::logs(b)?);
            engine.report_logs(code, connect, run, logs).await?;
            Ok(Act::Nothing)
        }
        "ReportFinish" => {
            let (run, f) = (seed001::run_instance(b)?, seed001::finish(b)?);
            engine
                .report_finish(code, connect, run, f.status, f.error_code, f.outputs)
                .await?;
            Ok(Act::Nothing)
        }
        "ReportVideoRecord" => {
            let (run, video) = (seed001::run_instance(b)?, seed001::video(b)?);
            engine.report_video(code, connect, run, video).await?;
            Ok(Act::Nothing)
        }
        "ReportCheckpoint" => {
            let (run, data) = (seed001::run_instance(b)?, seed001::checkpoint(b)?);
            engine.report_checkpoint(code, connect, run, data).await?;
            Ok(Act::Nothing)
        }
        other => Err(Bad(format!("unknown action {other}")).into()),
    }
}
