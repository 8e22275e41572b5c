//! Executors for the end-to-end tests, behaving as DESIGN §7 and the
//! README ask of executors: an HTTP robot keeps its `robotConnectId` and
//! heart-beats another node when its node stops answering, and reports a
//! finish again there if the answer was lost; a WebSocket robot registers
//! again (on the next node) with the same id and reports again the finish
//! it sent on the lost connection. Each counts the runs it executes in a
//! shared [`Tally`]. Beside them, [`business_client`]: a seed 000 caller
//! starting jobs.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::Mutex as StdMutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use futures::{SinkExt, StreamExt};
use rpa::core::auth::supplier_proof;
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

use super::post;

/// What the robots saw.
#[derive(Default)]
pub struct Tally {
    /// Executions per run instance.
    pub executions: StdMutex<HashMap<String, u32>>,
    /// Reports of a robot's own run refused on their first attempt.
    pub refused: StdMutex<Vec<String>>,
    /// When the kill happened.
    pub killed_at: StdMutex<Option<Instant>>,
    /// Per robot that lost its node: from the kill until it worked again.
    pub back: StdMutex<Vec<(String, Duration)>>,
    /// Per robot: when it last sent a message, and its longest silence
    /// between two messages (a robot silent past the heartbeat timeout
    /// may be taken for dead, and its run given to another).
    pub silence: StdMutex<HashMap<String, (Instant, Duration)>>,
}

impl Tally {
    /// Robot `id` sends a message now.
    fn sends(&self, id: &str) {
        let now = Instant::now();
        let mut s = self.silence.lock().unwrap();
        let (last, longest) = s.entry(id.to_owned()).or_insert((now, Duration::ZERO));
        *longest = (*longest).max(now - *last);
        *last = now;
    }
    /// The longest silence of any robot, and whose.
    pub fn longest_silence(&self) -> (String, Duration) {
        self.silence
            .lock()
            .unwrap()
            .iter()
            .map(|(id, (_, d))| (id.clone(), *d))
            .max_by_key(|(_, d)| *d)
            .unwrap_or_default()
    }
    fn executed(&self, run: &str) {
        *self.executions.lock().unwrap().entry(run.to_owned()).or_default() += 1;
    }
    fn refused(&self, what: String) {
        eprintln!("cluster: refused {what}");
        self.refused.lock().unwrap().push(what);
    }
    /// A robot that failed to reach its node since the kill works again.
    fn back(&self, id: &str, failed: &mut bool) {
        if std::mem::take(failed)
            && let Some(k) = *self.killed_at.lock().unwrap()
        {
            self.back.lock().unwrap().push((id.to_owned(), k.elapsed()));
        }
    }
}

/// The nodes a client or robot may talk to: the one it is given, the next
/// when that one stops answering.
#[derive(Clone)]
pub struct Nodes {
    pub bases: Vec<String>,
    pub at: usize,
}

impl Nodes {
    pub fn base(&self) -> &str {
        &self.bases[self.at % self.bases.len()]
    }
    pub fn unreachable(&mut self) {
        self.at += 1;
    }
}

/// An HTTP robot (seed 001 A.2): executes what it is given (counting it),
/// reports the finish until a node answers, keeps its connect id across
/// nodes.
pub async fn http_robot(mut nodes: Nodes, id: String, stop: Arc<AtomicBool>, tally: Arc<Tally>) {
    let http = reqwest::Client::new();
    let mut connect: Option<String> = None;
    let mut failed = false;
    while !stop.load(Ordering::Relaxed) {
        let base = nodes.base().to_owned();
        let Some(c) = connect.clone() else {
            let proof = supplier_proof("acme-secret", &id);
            let body = json!({"supplierCode": "acme", "supplierSecret": proof});
            match post(
                &http,
                format!("{base}/robots/connect/register"),
                &[("robotId", &id)],
                body,
            )
            .await
            {
                Some((200, v)) => connect = v["resultValue"]["robotConnectId"].as_str().map(str::to_owned),
                Some(_) => tokio::time::sleep(Duration::from_millis(200)).await,
                None => {
                    nodes.unreachable();
                    tokio::time::sleep(Duration::from_millis(100)).await
                }
            }
            continue;
        };
        let h = [("robotId", id.as_str()), ("robotConnectId", c.as_str())];
        tally.sends(&id);
        match post(&http, format!("{base}/robots/connect/heartbeat"), &h, json!({})).await {
            Some((200, v)) => {
                tally.back(&id, &mut failed);
                if v["resultValue"]["Action"] != "Execute" {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    continue;
                }
                let run = v["resultValue"]["Body"]["runInstanceId"].as_str().unwrap().to_owned();
                tally.executed(&run);
                tokio::time::sleep(Duration::from_millis(1)).await;
                let mut first = true;
                loop {
                    let base = nodes.base().to_owned();
                    let body = json!({"runInstanceId": run, "status": 0});
                    tally.sends(&id);
                    match post(&http, format!("{base}/robots/connect/reportFinish"), &h, body).await {
                        Some((200, _)) => break,
                        Some((status, v)) => {
                            if first {
                                tally.refused(format!("{id} finish {run}: {status} {v}"));
                            }
                            break;
                        }
                        None => {
                            failed = true;
                            first = false;
                            nodes.unreachable();
                            tokio::time::sleep(Duration::from_millis(100)).await;
                        }
                    }
                }
            }
            Some((401, _)) => connect = None,
            Some(_) => tokio::time::sleep(Duration::from_millis(100)).await,
            None => {
                failed = true;
                nodes.unreachable();
                tokio::time::sleep(Duration::from_millis(100)).await
            }
        }
    }
}

fn ws_message(action: &str, body: Value) -> Message {
    Message::Text(json!({"action": action, "body": body.to_string()}).to_string().into())
}

/// A WebSocket robot (seed 001 A.1): registers, heart-beats every 200 ms,
/// executes what it is given (counting it). When its socket dies it
/// registers again (on the next node) and reports again the last finish it
/// sent, which the lost connection may not have delivered.
pub async fn ws_robot(mut nodes: Nodes, id: String, stop: Arc<AtomicBool>, tally: Arc<Tally>) {
    let mut last_finish: Option<String> = None;
    let mut failed = false;
    while !stop.load(Ordering::Relaxed) {
        let url = format!("{}/robothub/{id}", nodes.base().replacen("http", "ws", 1));
        let Ok(Ok((mut ws, _))) =
            tokio::time::timeout(Duration::from_secs(3), tokio_tungstenite::connect_async(url)).await
        else {
            failed = true;
            nodes.unreachable();
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        };
        let proof = supplier_proof("acme-secret", &id);
        let mut out = vec![ws_message(
            "Register",
            json!({"supplierCode": "acme", "supplierSecret": proof}),
        )];
        if let Some(run) = &last_finish {
            out.push(ws_message("ReportFinish", json!({"runInstanceId": run, "status": 0})));
        }
        out.push(ws_message("Heartbeat", json!({})));
        let mut sent = true;
        for m in out {
            sent &= ws.send(m).await.is_ok();
        }
        let mut beat = tokio::time::interval(Duration::from_millis(200));
        let mut registered_at = None;
        while sent && !stop.load(Ordering::Relaxed) {
            tokio::select! {
                m = ws.next() => {
                    let Some(Ok(Message::Text(t))) = m else { break };
                    let v: Value = serde_json::from_str(&t).unwrap();
                    let body: Value = v["body"].as_str().map(|b| serde_json::from_str(b).unwrap()).unwrap_or(Value::Null);
                    match v["action"].as_str() {
                        Some("Execute") => {
                            let run = body["runInstanceId"].as_str().unwrap().to_owned();
                            tally.executed(&run);
                            tokio::time::sleep(Duration::from_millis(1)).await;
                            let done = ws_message("ReportFinish", json!({"runInstanceId": run, "status": 0}));
                            tally.sends(&id);
                            last_finish = Some(run);
                            if ws.send(done).await.is_err() {
                                break;
                            }
                        }
                        Some("Error") if body["errorCode"] == 10000 => {
                            // The old connection still counts: try again shortly.
                            tokio::time::sleep(Duration::from_millis(300)).await;
                            break;
                        }
                        Some("Error") => {
                            // A report of the robot's own run refused (a
                            // repeated finish after a reconnect is accepted).
                            tally.refused(format!("{id} over WebSocket: {body}"));
                        }
                        _ => {}
                    }
                }
                _ = beat.tick() => {
                    if registered_at.is_none() {
                        registered_at = Some(Instant::now());
                    } else {
                        tally.back(&id, &mut failed);
                    }
                    tally.sends(&id);
                    if ws.send(ws_message("Heartbeat", json!({}))).await.is_err() {
                        break;
                    }
                }
            }
        }
        if !stop.load(Ordering::Relaxed) {
            failed = true;
            nodes.unreachable();
        }
    }
}

/// A business system (seed 000) starting jobs of `process` until `acked`
/// holds `total` acknowledged starts (a start answered success), moving to
/// the next node when its node stops answering.
pub async fn business_client(
    mut nodes: Nodes,
    token: String,
    process: String,
    total: usize,
    acked: Arc<tokio::sync::Mutex<Vec<String>>>,
    stop: Arc<AtomicBool>,
) {
    let http = reqwest::Client::new();
    while !stop.load(Ordering::Relaxed) && acked.lock().await.len() < total {
        let h = [("X-Access-Token", token.as_str())];
        let body = json!({"processId": process});
        match post(&http, format!("{}/rpa/api/startJob", nodes.base()), &h, body).await {
            Some((200, v)) if v["success"] == true => acked
                .lock()
                .await
                .push(v["result"]["jobId"].as_str().unwrap().to_owned()),
            Some(_) => tokio::time::sleep(Duration::from_millis(50)).await,
            None => {
                nodes.unreachable();
                tokio::time::sleep(Duration::from_millis(50)).await
            }
        }
    }
}
