//! Reporting to a parent server (two-level collaboration, seed 001
//! §6.5.3): a consumer of this server's domain events whose sink turns each
//! batch's ended jobs into run results and posts them, signed, to the
//! parent's `/federation/v1/results`. The consumer's durable cursor moves
//! only once the parent has answered, so results reach it at least once
//! and in order across restarts and parent outages; the parent counts a
//! result sent twice once (see [`rpa_core::federation`]).

use std::sync::Arc;
use std::time::Duration;

use rpa_core::events::EventRecord;
use rpa_core::{Engine, Store};

use crate::consume::Sink;

/// The consumer that reports to the parent.
pub const PARENT_CONSUMER: &str = "parent-report";

/// Posts run results to a parent.
pub struct ParentSink<S> {
    engine: Arc<Engine<S>>,
    client: reqwest::Client,
    url: String,
    name: String,
    secret: Vec<u8>,
}

impl<S: Store> ParentSink<S> {
    /// Reports to the parent at `base` as `name`, signing with `secret`.
    pub fn new(engine: Arc<Engine<S>>, base: &str, name: &str, secret: &str) -> Result<Self, String> {
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .build()
            .map_err(|e| e.to_string())?;
        Ok(ParentSink {
            engine,
            client,
            url: format!("{}/federation/v1/results", base.trim_end_matches('/')),
            name: name.to_owned(),
            secret: secret.as_bytes().to_vec(),
        })
    }
}

impl<S: Store> Sink for ParentSink<S> {
    async fn deliver(&mut self, events: &[EventRecord]) -> Result<(), String> {
        let results = self.engine.run_results(events).await.map_err(|e| e.to_string())?;
        if results.is_empty() {
            return Ok(());
        }
        let body = serde_json::to_vec(&serde_json::json!({ "results": results })).map_err(|e| e.to_string())?;
        let now = chrono::Utc::now().timestamp();
        let sent = self
            .client
            .post(&self.url)
            .header("content-type", "application/json")
            .header("x-rpa-child", &self.name)
            .header(
                "x-rpa-signature",
                rpa_core::auth::sign_delivery(&self.secret, now, &body),
            )
            .body(body)
            .send()
            .await;
        let (first, last) = (results[0].seq, results[results.len() - 1].seq);
        match sent {
            Ok(r) if r.status().is_success() => {
                let v: serde_json::Value = r.json().await.map_err(|e| e.to_string())?;
                if v["success"] == true {
                    tracing::debug!(first, last, "run results reported to the parent");
                    Ok(())
                } else {
                    Err(format!("results {first}-{last}: the parent refused: {}", v["message"]))
                }
            }
            Ok(r) => Err(format!("results {first}-{last}: the parent answered {}", r.status())),
            Err(e) => Err(format!("results {first}-{last}: {}", e.without_url())),
        }
    }
}
