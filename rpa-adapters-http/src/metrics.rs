//! `GET /metrics`: the engine's figures in the Prometheus text format, and
//! the layer that counts and times every HTTP request by API family.
//!
//! | metric | type | labels | from |
//! |---|---|---|---|
//! | `rpa_jobs_pending` | gauge | `process` | jobs waiting for a robot (the dispatch index) |
//! | `rpa_jobs_running` | gauge | `process` | jobs Running or Stopping (the process's slot count) |
//! | `rpa_jobs_today` | gauge | `process`, `state` | jobs created since midnight (server zone), by state |
//! | `rpa_queue_items_new` | gauge | `process` | New items of each Queue process |
//! | `rpa_robots` | gauge | `state` | robots by state |
//! | `rpa_audit_unintegrated`, `rpa_audit_unintegrated_oldest_seconds` | gauge | | committed audit events waiting for their place in the chain (PostgreSQL), and the oldest one's wait |
//! | `rpa_audit_head` | gauge | | the last committed sequence number |
//! | `rpa_event_consumer_lag` | gauge | `consumer` | events committed that a consumer has not yet moved past |
//! | `rpa_commits_total`, `rpa_commit_conflicts_total`, `rpa_commit_seconds` | counter, histogram | | this node's commits |
//! | `rpa_dispatch_seconds` | histogram | | a job's start → its Execute sent (this node's dispatches) |
//! | `rpa_audit_integration_seconds`, `rpa_audit_integrated_total` | histogram, counter | | commit → integration into the audit chain, as this node's integrator saw it, and the events it integrated |
//! | `rpa_robot_deadlines_kept_total` | counter | | robots this node heard while their stored deadline ran out: it handles or writes heartbeats late |
//! | `rpa_ai_calls_total` | counter | `capability`, `outcome` | AI capability calls: `answered`, `failed`, `timeout`, `refused` (quota) |
//! | `rpa_webhook_deliveries_total` | counter | `result` | webhook deliveries (`delivered`, `failed` after every retry) |
//! | `rpa_http_requests_total`, `rpa_http_request_seconds` | counter, histogram | `family`, `status` | every HTTP request on this node |
//!
//! Commits per second is `rate(rpa_commits_total[1m])`. The store-read
//! gauges cost one indexed query per process per scrape. Without
//! [`crate::HttpSettings::metrics_token`] the page is open, as exporters
//! usually are (it shows process names and counts, nothing else); with one,
//! a scrape sends `Authorization: Bearer <token>`.

use std::time::Instant;

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use rpa_core::events::Cursor;
use rpa_core::metrics::Exposition;
use rpa_core::model::{JobState, ProcessType, RobotState};
use rpa_core::record::{Records, Select};
use rpa_core::{Store, Timestamp};

use crate::AppState;

/// The route.
pub fn router<S: Store>() -> Router<AppState<S>> {
    Router::new().route("/metrics", get(scrape::<S>))
}

/// The API family a path belongs to (the `family` label).
pub fn family(path: &str) -> &'static str {
    const FAMILIES: [(&str, &str); 14] = [
        ("/rpa/api/", "business"),
        ("/robots/", "robot"),
        ("/v1/file/", "robot"),
        ("/design/", "robot"),
        ("/robothub/", "robot"),
        ("/listener/", "listener"),
        ("/api/v1.0/", "loonflow"),
        ("/admin/", "admin"),
        ("/console", "console"),
        ("/odata/", "uipath"),
        ("/oauth/", "uipath"),
        ("/identity_/", "uipath"),
        ("/metrics", "metrics"),
        ("/docs", "docs"),
    ];
    if path == "/" {
        return "console";
    }
    if let Some((_, f)) = FAMILIES.iter().find(|(prefix, _)| path.starts_with(prefix)) {
        return f;
    }
    if path.contains("/odata/") || path.contains("/orchestrator_/") {
        return "uipath";
    }
    if path == "/openapi.json" {
        return "docs";
    }
    "other"
}

/// Counts and times a request (the layer [`crate::app`] puts around every route).
pub async fn track<S: Store>(State(st): State<AppState<S>>, req: Request, next: Next) -> Response {
    let fam = family(req.uri().path());
    let began = Instant::now();
    let response = next.run(req).await;
    let m = st.engine.metrics();
    m.http_seconds.observe(&[fam], began.elapsed().as_secs_f64());
    m.http_requests.add(&[fam, response.status().as_str()], 1);
    response
}

async fn scrape<S: Store>(State(st): State<AppState<S>>, h: HeaderMap) -> Response {
    if let Some(token) = &st.settings.metrics_token {
        let sent = h
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split_once(' '))
            .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
            .map(|(_, t)| t.trim());
        if !sent.is_some_and(|t| rpa_core::auth::same(t.as_bytes(), token.as_bytes())) {
            return (StatusCode::UNAUTHORIZED, "a bearer token is needed\n").into_response();
        }
    }
    match page(&st).await {
        Ok(text) => {
            let mut r = (StatusCode::OK, text).into_response();
            r.headers_mut()
                .insert(header::CONTENT_TYPE, HeaderValue::from_static(Exposition::CONTENT_TYPE));
            r
        }
        Err(e) => {
            tracing::error!(error = %e, "metrics: reading the store");
            (StatusCode::SERVICE_UNAVAILABLE, "the store cannot be read now\n").into_response()
        }
    }
}

async fn page<S: Store>(st: &AppState<S>) -> Result<String, rpa_core::Error> {
    let engine = &st.engine;
    let store = engine.store();
    let now = engine.now();
    let (today, _, _) = now.day_bounds(engine.config().time_zone);
    let processes = engine.processes().await?;
    let mut out = Exposition::default();

    let mut pending = Vec::with_capacity(processes.len());
    let mut today_by_state = Vec::new();
    for p in &processes {
        pending.push(store.pending_count(p.id).await? as f64);
        for (s, n) in store.job_counts(p.id, today, Timestamp(now.0 + 60_000)).await? {
            today_by_state.push((p.spec.name.as_str(), s, n));
        }
    }
    out.gauge(
        "rpa_jobs_pending",
        "Jobs waiting for a robot, by process.",
        processes
            .iter()
            .zip(&pending)
            .map(|(p, n)| (vec![("process", p.spec.name.as_str())], *n)),
    );
    out.gauge(
        "rpa_jobs_running",
        "Jobs Running or Stopping, by process.",
        processes
            .iter()
            .map(|p| (vec![("process", p.spec.name.as_str())], f64::from(p.running))),
    );
    out.gauge(
        "rpa_jobs_today",
        "Jobs created since midnight (the server's time zone), by process and state.",
        today_by_state
            .iter()
            .map(|(p, s, n)| (vec![("process", *p), ("state", JobState::as_str(*s))], *n as f64)),
    );
    out.gauge(
        "rpa_queue_items_new",
        "Queue items waiting (New), by queue process.",
        processes
            .iter()
            .filter(|p| p.spec.process_type == ProcessType::Queue)
            .map(|p| (vec![("process", p.spec.name.as_str())], f64::from(p.pending_items))),
    );
    let robots = engine.robots().await?;
    out.gauge(
        "rpa_robots",
        "Robots by state.",
        [
            RobotState::Available,
            RobotState::Busy,
            RobotState::Unresponsive,
            RobotState::Disconnected,
        ]
        .map(|s| {
            let n = robots.iter().filter(|r| r.state == s).count();
            (vec![("state", s.as_str())], n as f64)
        }),
    );
    // Before the head: reading the chain integrates what waits.
    let waiting = store.unintegrated().await?;
    out.gauge(
        "rpa_audit_unintegrated",
        "Groups of committed audit events waiting for their place in the chain.",
        [(vec![], waiting.commits as f64)],
    );
    out.gauge(
        "rpa_audit_unintegrated_oldest_seconds",
        "How long the oldest group of committed audit events has waited for integration.",
        [(vec![], waiting.oldest_wait_ms as f64 / 1000.0)],
    );
    let head = store.head().await?;
    out.gauge(
        "rpa_audit_head",
        "The last committed sequence number.",
        [(vec![], head as f64)],
    );
    let cursors = store.list::<Cursor>(Select::all(1000)).await?;
    out.gauge(
        "rpa_event_consumer_lag",
        "Committed events a consumer has not yet moved past (audit positions).",
        cursors
            .iter()
            .map(|c| (vec![("consumer", c.name.as_str())], head.saturating_sub(c.seq) as f64)),
    );
    engine.metrics().render(&mut out);
    Ok(out.finish())
}

#[cfg(test)]
mod tests {
    use super::family;

    #[test]
    fn paths_fall_into_their_documents_families() {
        assert_eq!(family("/rpa/api/startJob"), "business");
        assert_eq!(family("/robots/connect/heartbeat"), "robot");
        assert_eq!(family("/acme/default/orchestrator_/odata/Jobs"), "uipath");
        assert_eq!(family("/acme/default/odata/Releases"), "uipath");
        assert_eq!(family("/odata/Jobs"), "uipath");
        assert_eq!(family("/api/v1.0/tickets"), "loonflow");
        assert_eq!(family("/listener/rpa/api/execute"), "listener");
        assert_eq!(family("/"), "console");
        assert_eq!(family("/console/api/overview"), "console");
        assert_eq!(family("/nowhere"), "other");
    }
}
