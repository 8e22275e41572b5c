//! Webhook subscriptions (the scheduling centre's outbound notifications):
//! an administrator subscribes a URL to kinds of domain events
//! ([`crate::events`]); each subscription is a consumer of the event stream
//! of its own (`webhook:<id>`), so it gets every event it wants at least
//! once and in order, whatever the others do, and never holds up a commit.
//!
//! The rules, pure:
//! - A subscription names an `http(s)` URL and the event kinds it wants
//!   (none: all of them); anything else is refused with the reason.
//! - Its signing secret is not stored: it is derived from the server's key
//!   and the subscription's id ([`secret`]), shown once when it is created,
//!   and the same on every node.
//! - A delivery is tried at [`RETRY_MS`] after the first failure (at once,
//!   45 s, 2.5 min, 5 min); when every try failed it is kept as a
//!   [`Failure`] (visible, and delivered again on request) and the stream
//!   moves on.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::auth::LinkKey;
use crate::record::{Cell, Column, Kind, Mapped, Record};
use crate::time::Timestamp;

/// The event kinds a subscription may ask for.
pub const KINDS: [&str; 7] = [
    "job_started",
    "job_ended",
    "item_ended",
    "robot_changed",
    "ticket_changed",
    "pipeline_run_ended",
    "pool_changed",
];

/// When each delivery is tried again after a failure, in milliseconds
/// after the previous try: at once, 45 s, 2.5 min, 5 min; then it fails.
pub const RETRY_MS: [u64; 4] = [0, 45_000, 150_000, 300_000];

/// A subscription (a record kind).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Subscription {
    /// Its id.
    pub id: i64,
    /// Commit version.
    pub version: u64,
    /// Where deliveries go.
    pub url: String,
    /// The event kinds it wants (empty: all).
    pub events: Vec<String>,
    /// False once deleted: nothing more is delivered.
    pub enabled: bool,
    /// Who made it.
    pub created_by: String,
    /// When.
    pub created_at: Timestamp,
}

impl Mapped for Subscription {
    const KIND: &'static Kind = &Kind {
        table: "rpa_webhooks",
        name: "webhook subscription",
        key: Column::int("id"),
        sealed: false,
        cached: false,
        columns: &[],
    };
    fn key(&self) -> Cell {
        Cell::Int(self.id)
    }
    fn version(&self) -> u64 {
        self.version
    }
    fn cells(&self) -> Vec<Cell> {
        Vec::new()
    }
}

impl Record for Subscription {}

impl Subscription {
    /// Checks a new subscription's URL and event kinds.
    pub fn check(url: &str, events: &[String]) -> Result<(), String> {
        let rest = url
            .strip_prefix("https://")
            .or_else(|| url.strip_prefix("http://"))
            .ok_or_else(|| format!("url {url:?} is not an http(s) URL"))?;
        if rest.split(['/', '?', '#']).next().is_none_or(str::is_empty) || url.chars().any(char::is_whitespace) {
            return Err(format!("url {url:?} names no host"));
        }
        if let Some(e) = events.iter().find(|e| !KINDS.contains(&e.as_str())) {
            return Err(format!("event kind {e:?} is none of {}", KINDS.join(", ")));
        }
        Ok(())
    }

    /// Whether it wants events of `kind`.
    pub fn wants(&self, kind: &str) -> bool {
        self.enabled && (self.events.is_empty() || self.events.iter().any(|e| e == kind))
    }

    /// The name of its consumer of the event stream.
    pub fn consumer(&self) -> String {
        consumer(self.id)
    }
}

/// The consumer name of subscription `id`.
pub fn consumer(id: i64) -> String {
    format!("webhook:{id}")
}

/// The signing secret of subscription `id` under the server's key: 64 hex
/// characters, the same on every node, never stored.
pub fn secret(key: &LinkKey, id: i64) -> String {
    hex::encode(crate::auth::derive_key(
        &key.0,
        format!("webhook subscription {id}").as_bytes(),
    ))
}

/// The delivery id of event `seq` to subscription `id` (receivers drop repeats).
pub fn delivery_id(id: i64, seq: u64) -> String {
    format!("{id}-{seq}")
}

/// A delivery that failed every try (a record kind).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Failure {
    /// Its id.
    pub id: i64,
    /// Commit version.
    pub version: u64,
    /// The subscription.
    pub subscription: i64,
    /// The event's position in the stream.
    pub seq: u64,
    /// The body that was posted (the event as JSON).
    pub body: Value,
    /// Tries made.
    pub attempts: u32,
    /// What the last try got.
    pub error: String,
    /// When it was given up.
    pub failed_at: Timestamp,
    /// An administrator asked for it to be delivered again (not yet done).
    pub redeliver: bool,
    /// Delivered on a later request.
    pub delivered: bool,
}

impl Mapped for Failure {
    const KIND: &'static Kind = &Kind {
        table: "rpa_webhook_failures",
        name: "webhook failure",
        key: Column::int("id"),
        sealed: false,
        cached: false,
        columns: &[Column::int("subscription"), Column::int("redeliver")],
    };
    fn key(&self) -> Cell {
        Cell::Int(self.id)
    }
    fn version(&self) -> u64 {
        self.version
    }
    fn cells(&self) -> Vec<Cell> {
        vec![Cell::Int(self.subscription), Cell::Int(i64::from(self.redeliver))]
    }
}

impl Record for Failure {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_and_event_kinds_are_checked() {
        assert!(Subscription::check("https://hooks.example.com/rpa", &[]).is_ok());
        assert!(Subscription::check("http://127.0.0.1:9/x", &["job_ended".into()]).is_ok());
        for (url, why) in [
            ("ftp://x", "not an http(s) URL"),
            ("https://", "names no host"),
            ("https:///path", "names no host"),
            ("http://a b", "names no host"),
        ] {
            assert!(Subscription::check(url, &[]).unwrap_err().contains(why), "{url}");
        }
        let e = Subscription::check("http://x", &["job_exploded".into()]).unwrap_err();
        assert!(e.contains("job_exploded"), "{e}");
        assert!(Subscription::check("http://x", &["job_started".into(), "pool_changed".into()]).is_ok());
    }

    #[test]
    fn a_secret_is_the_same_on_every_node_and_differs_per_subscription() {
        let key = LinkKey([3; 32]);
        assert_eq!(secret(&key, 1), secret(&LinkKey([3; 32]), 1));
        assert_ne!(secret(&key, 1), secret(&key, 2));
        assert_ne!(secret(&key, 1), secret(&LinkKey([4; 32]), 1));
        assert_eq!(secret(&key, 1).len(), 64);
    }

    #[test]
    fn a_subscription_without_kinds_wants_every_event_until_deleted() {
        let mut s = Subscription {
            id: 1,
            version: 1,
            url: "http://x".into(),
            events: vec![],
            enabled: true,
            created_by: "admin".into(),
            created_at: Timestamp(0),
        };
        assert!(s.wants("ticket_changed"));
        s.events = vec!["job_ended".into()];
        assert!(s.wants("job_ended") && !s.wants("robot_changed"));
        s.enabled = false;
        assert!(!s.wants("job_ended"));
    }
}
