//! Delivering webhook subscriptions (see [`rpa_core::webhook`]): one task
//! per subscription, each a consumer of the event stream of its own
//! (`webhook:<id>`, run by one node at a time, its lease), posting each
//! event it wants, in order:
//!
//! ```text
//! POST <url>
//! content-type: application/json
//! x-rpa-delivery: <subscription id>-<event seq>   (the same on every try: drop repeats)
//! x-rpa-event: job_started | job_ended | item_ended | robot_changed | ticket_changed | pipeline_run_ended | pool_changed
//! x-rpa-signature: t=<unix time>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>
//!
//! {"seq": ..., "at": ..., "type": "job_ended", ...}
//! ```
//!
//! A 2xx answer delivers it. Otherwise it is tried again after the delays
//! of [`rpa_core::webhook::RETRY_MS`] (the server's `--webhook-retry-ms`
//! may shorten them); when every try failed it is kept as a failure
//! (`GET /admin/webhooks/{id}/failures`) and the stream moves on. A failure
//! an administrator asks to redeliver is posted once more by the node that
//! runs the supervisor. The cursor moves after each batch: after a crash
//! the last batch may be delivered again, never skipped.

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use rpa_core::events::EventRecord;
use rpa_core::webhook::{self, Subscription};
use rpa_core::{Engine, Store};
use tokio::sync::watch;

use crate::consume::Lease;

/// How often subscriptions are looked at (new, deleted) and redeliveries made.
const LOOK: Duration = Duration::from_secs(1);
/// How long a receiver has to answer.
const TIMEOUT: Duration = Duration::from_secs(10);
/// Events read per batch.
const BATCH: usize = 100;
/// The lease of the node that makes redeliveries.
pub const REDELIVERY_LEASE: &str = "webhook-redeliveries";

/// Runs every subscription's deliveries until `shutdown` completes; a
/// failed delivery is tried again after each of `retry` (the default:
/// [`webhook::RETRY_MS`]).
pub async fn run_webhooks<S: Store>(engine: Arc<Engine<S>>, retry: Vec<Duration>, shutdown: impl Future<Output = ()>) {
    tokio::pin!(shutdown);
    let http = match reqwest::Client::builder().timeout(TIMEOUT).build() {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(error = %e, "webhooks: no HTTP client");
            return;
        }
    };
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut redeliveries = Lease::new(REDELIVERY_LEASE);
    let mut running: HashMap<i64, tokio::task::JoinHandle<()>> = HashMap::new();
    loop {
        match engine.webhooks().await {
            Ok(subs) => {
                for s in subs {
                    if !s.enabled {
                        if let Some(t) = running.remove(&s.id) {
                            t.abort();
                        }
                        continue;
                    }
                    if running.get(&s.id).is_some_and(|t| !t.is_finished()) {
                        continue;
                    }
                    let task = deliver_forever(engine.clone(), http.clone(), s.clone(), retry.clone(), stop_rx.clone());
                    running.insert(s.id, tokio::spawn(task));
                }
            }
            Err(e) => tracing::error!(error = %e, "webhooks: cannot read the subscriptions"),
        }
        if let Err(e) = redeliver(&engine, &http, &mut redeliveries).await {
            tracing::error!(error = %e, "webhooks: redeliveries");
        }
        tokio::select! {
            _ = &mut shutdown => break,
            _ = tokio::time::sleep(LOOK) => {}
        }
    }
    let _ = stop_tx.send(true);
    for (_, t) in running {
        let _ = t.await;
    }
}

/// Delivers subscription `s`'s events until it is deleted or `stop` says so.
async fn deliver_forever<S: Store>(
    engine: Arc<Engine<S>>,
    http: reqwest::Client,
    s: Subscription,
    retry: Vec<Duration>,
    mut stop: watch::Receiver<bool>,
) {
    let name = s.consumer();
    let secret = match engine.webhook_secret(s.id) {
        Ok(k) => k,
        Err(e) => {
            tracing::error!(webhook = s.id, error = %e, "webhook not delivered");
            return;
        }
    };
    let mut d = Deliverer {
        lease: Lease::new(&name),
        name,
        http,
        secret,
        retry,
    };
    loop {
        let idle = match d.step(&engine, &s, &mut stop).await {
            Ok(more) => !more,
            Err(e) => {
                tracing::error!(webhook = s.id, error = %e, "webhook: will try again");
                true
            }
        };
        if *stop.borrow() {
            return;
        }
        if idle {
            tokio::select! {
                _ = stop.changed() => return,
                _ = tokio::time::sleep(Duration::from_millis(200)) => {}
            }
        }
    }
}

/// What a subscription's deliveries need.
struct Deliverer {
    lease: Lease,
    name: String,
    http: reqwest::Client,
    secret: String,
    retry: Vec<Duration>,
}

impl Deliverer {
    /// One batch; `Ok(true)` when there may be more at once.
    async fn step<S: Store>(
        &mut self,
        engine: &Engine<S>,
        s: &Subscription,
        stop: &mut watch::Receiver<bool>,
    ) -> Result<bool, String> {
        if !self.lease.hold(engine).await.map_err(|e| e.to_string())? {
            return Ok(false);
        }
        let batch = engine.events_for(&self.name, BATCH).await.map_err(|e| e.to_string())?;
        if !batch.moves() {
            return Ok(false);
        }
        // Read after the batch: a deletion committed before any of its events counts.
        let s = &engine.webhook(s.id).await.map_err(|e| e.to_string())?;
        if !s.enabled {
            return Ok(false);
        }
        for ev in batch.page.events.iter().filter(|e| s.wants(e.event.kind())) {
            let mut error = match post(&self.http, s, &self.secret, ev).await {
                Ok(()) => {
                    engine.metrics().webhook_deliveries.add(&["delivered"], 1);
                    continue;
                }
                Err(e) => e,
            };
            let mut tries = 1;
            for delay in &self.retry {
                tokio::select! {
                    _ = stop.changed() => return Ok(false),
                    _ = tokio::time::sleep(*delay) => {}
                }
                tries += 1;
                match post(&self.http, s, &self.secret, ev).await {
                    Ok(()) => {
                        error.clear();
                        break;
                    }
                    Err(e) => error = e,
                }
            }
            let result = if error.is_empty() { "delivered" } else { "failed" };
            engine.metrics().webhook_deliveries.add(&[result], 1);
            if !error.is_empty() {
                tracing::warn!(webhook = s.id, seq = ev.seq, tries, %error, "webhook delivery failed");
                engine
                    .webhook_failed(s, ev, tries, &error)
                    .await
                    .map_err(|e| e.to_string())?;
            }
        }
        match engine.acknowledge(&batch).await {
            Ok(()) => Ok(true),
            Err(rpa_core::Error::Store(rpa_core::error::StoreError::Conflict)) => Ok(true),
            Err(e) => Err(e.to_string()),
        }
    }
}

/// Posts `ev` to `s`; the receiver's refusal in words (its URL is not
/// repeated: it may carry credentials).
async fn post(http: &reqwest::Client, s: &Subscription, secret: &str, ev: &EventRecord) -> Result<(), String> {
    let body = serde_json::to_vec(ev).map_err(|e| e.to_string())?;
    send(http, s, secret, ev.seq, ev.event.kind(), body).await
}

async fn send(
    http: &reqwest::Client,
    s: &Subscription,
    secret: &str,
    seq: u64,
    kind: &str,
    body: Vec<u8>,
) -> Result<(), String> {
    let now = chrono::Utc::now().timestamp();
    let signature = rpa_core::auth::sign_delivery(secret.as_bytes(), now, &body);
    let sent = http
        .post(&s.url)
        .header("content-type", "application/json")
        .header("x-rpa-delivery", webhook::delivery_id(s.id, seq))
        .header("x-rpa-event", kind)
        .header("x-rpa-signature", signature)
        .body(body)
        .send()
        .await;
    match sent {
        Ok(r) if r.status().is_success() => Ok(()),
        Ok(r) => Err(format!("the receiver answered {}", r.status())),
        Err(e) => Err(e.without_url().to_string()),
    }
}

/// Makes the redeliveries administrators asked for (on the node that holds
/// [`REDELIVERY_LEASE`]).
async fn redeliver<S: Store>(
    engine: &Engine<S>,
    http: &reqwest::Client,
    lease: &mut Lease,
) -> Result<(), rpa_core::Error> {
    if !lease.hold(engine).await? {
        return Ok(());
    }
    for f in engine.webhook_redeliveries().await? {
        let s = engine.webhook(f.subscription).await?;
        let secret = engine.webhook_secret(s.id)?;
        let kind = f.body.get("type").and_then(|t| t.as_str()).unwrap_or("").to_owned();
        let body = serde_json::to_vec(&f.body).map_err(|e| rpa_core::Error::Internal(e.to_string()))?;
        let outcome = send(http, &s, &secret, f.seq, &kind, body).await;
        let result = if outcome.is_ok() { "delivered" } else { "failed" };
        engine.metrics().webhook_deliveries.add(&[result], 1);
        engine
            .webhook_redelivered(&f, outcome.as_ref().err().map(String::as_str))
            .await?;
    }
    Ok(())
}
