//! Posting the hooks of workflow states (seed 004, participant type 10):
//! the node that holds the `flow-hooks` lease posts each due hook with
//! `signature = md5(timestamp + hook_token)` and `timestamp` headers and
//! the ticket's values as the JSON body, then records the outcome on the
//! ticket ([`rpa_core::Engine::hook_posted`]). A receiver answers
//! `{"code": 0, "msg": ""}`; anything else (another code, an HTTP error, no
//! answer within the timeout) is a failure, tried again with back-off (see
//! [`rpa_core::flow::ticket::HOOK_TRIES`]) and by `retry_script`.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use rpa_core::flow::{Hook, Ticket};
use rpa_core::{Engine, Store};
use serde_json::{Value, json};

/// The lease of the node that posts hooks.
pub const HOOKS_LEASE: &str = "flow-hooks";
/// How often due hooks are looked for.
const POLL: Duration = Duration::from_millis(500);
/// How long a receiver has to answer.
const TIMEOUT: Duration = Duration::from_secs(10);

/// Posts due hooks until `shutdown` completes.
pub async fn run_hooks<S: Store>(engine: Arc<Engine<S>>, shutdown: impl Future<Output = ()>) {
    tokio::pin!(shutdown);
    let http = match reqwest::Client::builder().timeout(TIMEOUT).build() {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(error = %e, "hooks: no HTTP client");
            return;
        }
    };
    let mut lease = crate::consume::Lease::new(HOOKS_LEASE);
    loop {
        if let Err(e) = post_due(&engine, &http, &mut lease).await {
            tracing::error!(error = %e, "hooks: will try again");
        }
        tokio::select! {
            _ = &mut shutdown => return,
            _ = tokio::time::sleep(POLL) => {}
        }
    }
}

async fn post_due<S: Store>(
    engine: &Engine<S>,
    http: &reqwest::Client,
    lease: &mut crate::consume::Lease,
) -> Result<(), rpa_core::Error> {
    if !lease.hold(engine).await? {
        return Ok(());
    }
    let due = engine.hooks_due().await?;
    for (ticket, hook) in due {
        let outcome = post(http, &ticket, &hook).await;
        if let Err(why) = &outcome {
            tracing::warn!(ticket = ticket.id, url = %hook.hook_url, error = %why, "hook failed");
        }
        let why = outcome.as_ref().err().map_or("", String::as_str);
        match engine.hook_posted(ticket.id, outcome.is_ok(), why).await {
            Ok(_) => {}
            // The ticket moved on meanwhile, or cannot move: said on the ticket's side.
            Err(rpa_core::Error::InvalidArgument(e)) => {
                tracing::warn!(ticket = ticket.id, error = %e, "hook posted, ticket not moved")
            }
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// The body a hook receives: the ticket's values and identity.
pub fn body(t: &Ticket) -> Value {
    let mut v = Value::Object(t.values());
    v["id"] = json!(t.id);
    v["parent_ticket_id"] = json!(t.parent_ticket_id);
    v["parent_ticket_state_id"] = json!(t.parent_ticket_state_id);
    v["relation"] = json!(t.relation.join(","));
    v
}

async fn post(http: &reqwest::Client, t: &Ticket, hook: &Hook) -> Result<(), String> {
    let timestamp = chrono::Utc::now().timestamp().to_string();
    let signature = rpa_core::auth::md5_signature(&timestamp, &hook.hook_token);
    let r = http
        .post(&hook.hook_url)
        .header("signature", signature)
        .header("timestamp", timestamp)
        .json(&body(t))
        .send()
        .await
        .map_err(|e| format!("no answer: {e}"))?;
    let status = r.status();
    let answer: Value = r.json().await.map_err(|e| format!("HTTP {status}, not JSON: {e}"))?;
    match answer.get("code").and_then(Value::as_i64) {
        Some(0) if status.is_success() => Ok(()),
        _ => Err(format!("HTTP {status}: {answer}")),
    }
}
