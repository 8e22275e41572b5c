//! Running consumers of the domain events (see [`rpa_core::events`]) whose
//! effects lie outside the store: one loop per consumer, on the node that
//! holds the consumer's lease, delivering each batch to a [`Sink`] and then
//! moving the consumer's cursor. A sink that fails is given the same batch
//! again after a pause; a node that dies mid-batch leaves the cursor where
//! it was, and whoever runs the consumer next delivers that batch again: at
//! least once, in order, nothing skipped. Sinks here: [`EventFile`] (JSON
//! lines in a file) and [`HttpSink`] (signed POSTs to a URL).

use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use rpa_core::events::EventRecord;
use rpa_core::{Engine, Store};
use tokio::io::AsyncWriteExt;

/// How many audit events a consumer reads at a time.
const BATCH: usize = 500;
/// How often an idle consumer looks for new events.
const POLL: Duration = Duration::from_millis(200);
/// The pause after a failed delivery or store call.
const PAUSE: Duration = Duration::from_secs(1);

/// Where a consumer's events go.
pub trait Sink: Send {
    /// Delivers `events` (in order). `Ok` once every one of them is safely
    /// where it goes: the cursor moves past them next.
    fn deliver(&mut self, events: &[EventRecord]) -> impl Future<Output = Result<(), String>> + Send;
}

/// A lease as this node last saw it (see [`Engine::hold_consumer`]):
/// renewed at most every quarter of the lease's length, so a runner that
/// polls often does not write to the store at every poll.
pub struct Lease {
    name: String,
    held: bool,
    checked: Option<std::time::Instant>,
}

impl Lease {
    /// The lease `name`, not yet asked for.
    pub fn new(name: &str) -> Lease {
        Lease {
            name: name.to_owned(),
            held: false,
            checked: None,
        }
    }

    /// Whether this node holds it (taking or renewing it when due).
    pub async fn hold<S: Store>(&mut self, engine: &Engine<S>) -> Result<bool, rpa_core::Error> {
        let every = Duration::from_millis(engine.config().timer_lease_ms / 4);
        if self.checked.is_none_or(|t| t.elapsed() >= every) {
            let held = engine.hold_consumer(&self.name).await?;
            if held != self.held {
                tracing::info!(lease = %self.name, node = engine.node(), held, "lease");
            }
            self.held = held;
            self.checked = Some(std::time::Instant::now());
        }
        Ok(self.held)
    }
}

/// Runs consumer `name` into `sink` until `shutdown` completes.
pub async fn run_consumer<S: Store, K: Sink>(
    engine: Arc<Engine<S>>,
    name: &str,
    mut sink: K,
    shutdown: impl Future<Output = ()>,
) {
    tokio::pin!(shutdown);
    let mut lease = Lease::new(name);
    let mut refused = None;
    loop {
        let wait = match step(&engine, name, &mut sink, &mut lease, &mut refused).await {
            Ok(true) => Duration::ZERO,
            Ok(false) => POLL,
            Err(e) => {
                tracing::error!(consumer = name, error = %e, "event consumer: will try again");
                PAUSE
            }
        };
        tokio::select! {
            _ = &mut shutdown => return,
            _ = tokio::time::sleep(wait) => {}
        }
    }
}

/// One batch; `Ok(true)` when there may be more right away. A batch the
/// sink refused is kept in `refused` and given to it again as it was (not
/// re-read with what came since), while this node keeps the lease.
async fn step<S: Store, K: Sink>(
    engine: &Engine<S>,
    name: &str,
    sink: &mut K,
    lease: &mut Lease,
    refused: &mut Option<rpa_core::events::Batch>,
) -> Result<bool, String> {
    if !lease.hold(engine).await.map_err(|e| e.to_string())? {
        *refused = None;
        return Ok(false);
    }
    let batch = match refused.take() {
        Some(b) => b,
        None => engine.events_for(name, BATCH).await.map_err(|e| e.to_string())?,
    };
    if !batch.moves() {
        return Ok(false);
    }
    if !batch.page.events.is_empty()
        && let Err(e) = sink.deliver(&batch.page.events).await
    {
        *refused = Some(batch);
        return Err(e);
    }
    match engine.acknowledge(&batch).await {
        Ok(()) => Ok(true),
        // Another runner moved it (a lease that passed on): read again.
        Err(rpa_core::Error::Store(rpa_core::error::StoreError::Conflict)) => Ok(true),
        Err(e) => Err(e.to_string()),
    }
}

/// A sink that appends each event as one line of JSON to a file and syncs
/// it to disk before the cursor moves. After a crash the file may hold the
/// last batch twice (a reader skips `seq`s it has seen); it never misses one.
pub struct EventFile {
    path: PathBuf,
    file: Option<tokio::fs::File>,
}

impl EventFile {
    /// Appends to `path` (created if missing).
    pub fn new(path: &Path) -> EventFile {
        EventFile {
            path: path.to_owned(),
            file: None,
        }
    }
}

impl Sink for EventFile {
    async fn deliver(&mut self, events: &[EventRecord]) -> Result<(), String> {
        let mut text = String::new();
        for e in events {
            text.push_str(&serde_json::to_string(e).map_err(|e| e.to_string())?);
            text.push('\n');
        }
        let file = match &mut self.file {
            Some(f) => f,
            None => self.file.insert(
                tokio::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(&self.path)
                    .await
                    .map_err(|e| format!("{}: {e}", self.path.display()))?,
            ),
        };
        let written = async {
            file.write_all(text.as_bytes()).await?;
            file.sync_data().await
        };
        if let Err(e) = written.await {
            // Open it afresh next time.
            self.file = None;
            return Err(format!("{}: {e}", self.path.display()));
        }
        Ok(())
    }
}

/// A sink that POSTs each batch to a URL (the outbound sender later
/// senders share): body `{"events": [...]}`, header `X-Rpa-Events:
/// <first seq>-<last seq>` and, with a secret, `X-Rpa-Signature`
/// ([`rpa_core::auth::sign_delivery`]: HMAC-SHA256 over the timestamp and
/// the body). A 2xx answer delivers the batch; anything else, or no answer
/// within the timeout, is a failure: the same batch is sent again after a
/// pause, so a receiver sees every event at least once, in order (it skips
/// `seq`s it has seen).
pub struct HttpSink {
    client: reqwest::Client,
    url: String,
    secret: Option<Vec<u8>>,
}

impl HttpSink {
    /// Sends to `url`, signing with `secret` if given.
    pub fn new(url: &str, secret: Option<&str>, timeout: Duration) -> Result<HttpSink, String> {
        // The URL may carry credentials: messages do not repeat it.
        let parsed = reqwest::Url::parse(url).map_err(|e| format!("not a valid URL: {e}"))?;
        if !matches!(parsed.scheme(), "http" | "https") {
            return Err("not an http(s) URL".into());
        }
        let client = reqwest::Client::builder()
            .timeout(timeout)
            .build()
            .map_err(|e| e.to_string())?;
        Ok(HttpSink {
            client,
            url: url.to_owned(),
            secret: secret.map(|s| s.as_bytes().to_vec()),
        })
    }
}

impl Sink for HttpSink {
    async fn deliver(&mut self, events: &[EventRecord]) -> Result<(), String> {
        let body = serde_json::to_vec(&serde_json::json!({ "events": events })).map_err(|e| e.to_string())?;
        let first = events.first().map_or(0, |e| e.seq);
        let last = events.last().map_or(0, |e| e.seq);
        let mut request = self
            .client
            .post(&self.url)
            .header("content-type", "application/json")
            .header("x-rpa-events", format!("{first}-{last}"));
        if let Some(secret) = &self.secret {
            let now = chrono::Utc::now().timestamp();
            request = request.header("x-rpa-signature", rpa_core::auth::sign_delivery(secret, now, &body));
        }
        match request.body(body).send().await {
            Ok(r) if r.status().is_success() => Ok(()),
            // The URL may carry credentials: it is not logged, the status is.
            Ok(r) => Err(format!("events {first}-{last}: the receiver answered {}", r.status())),
            Err(e) => Err(format!("events {first}-{last}: {}", e.without_url())),
        }
    }
}
