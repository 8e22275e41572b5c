//! The web console (seed 001 §6.3.1 b): pages served by the server itself
//! at `/`, and the few reads they need that the documented APIs do not
//! give. Everything else the console does goes through the APIs a client
//! would use: `/rpa/api/login`, `startJob`, `stopJob`, `jobStatus`,
//! `/admin/*` (robots, processes, schedules, pipelines, audit), so the
//! console can do exactly what the signed-in user may do, no more.
//!
//! | method, path | who | answer (seed 000 envelope) |
//! |---|---|---|
//! | `GET /`, `/console/app.js`, `/console/app.css` | anyone | the pages (embedded in the binary) |
//! | `GET /console/api/me` | a session | `{name, permissions}` |
//! | `GET /console/api/overview` | a session | robots by state, today's jobs by state, queue depths, success per process over 7 days (processes the user may see) |
//! | `GET /console/api/jobs?processId=&state=&limit=` | a session | the newest jobs of the last 30 days of the processes the user may see |
//! | `GET /console/api/jobs/{jobId}` | a session that may see the job | the job, its steps, run logs (with screenshot links) and recordings |
//! | `GET /console/api/queues/{processId}/items?limit=` | a session granted the queue process (or OperateAllJobs) | its newest items (default 100, at most 500) |
//! | `GET /console/api/screen` | a session | the operations big screen's figures ([`Screen`]): applications, subscriptions, runs, demands, executors, designers |
//! | `GET /console/api/tickets?open=` | ViewAudit | the newest 200 workflow tickets (seed 004), `open=true`: those not ended, with their workflow's and state's names |
//! | `GET /console/api/stream` | a session | `text/event-stream`: one `change` event per committed audit event (`{seq, action, type}`), `expired` when the session ends |
//!
//! Live: the stream reads the audit chain after the position it started
//! at and sends what was committed, within a quarter of a second, whichever
//! node committed it; the page reloads what it shows. Tokens travel only in
//! the `X-Access-Token` header (the stream is read with `fetch`, not
//! `EventSource`, which cannot send headers), never in a URL, so they reach
//! no log; the console keeps the token in the tab's `sessionStorage`. No
//! cookie authenticates anything, so a cross-site request carries no
//! credentials (nothing to forge); the pages are sent with a strict
//! Content-Security-Policy (scripts and styles from this server only, no
//! inline script, no framing).

use std::collections::HashMap;
use std::convert::Infallible;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use rpa_core::error::Error;
use rpa_core::model::{Actor, Job, JobState, Permission, Process, RobotState, User};
use rpa_core::store::JobQuery;
use rpa_core::{Store, Timestamp};
use serde::Serialize;
use serde_json::{Value, json};
use utoipa::ToSchema;

use crate::AppState;
use crate::seed000::{Answer, BusinessError, Done, Envelope, session};

pub(crate) const INDEX: &str = include_str!("../console/index.html");
const SCRIPT: &str = include_str!("../console/app.js");
const STYLE: &str = include_str!("../console/app.css");

/// The policy every console page is sent with.
pub const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; \
     media-src 'self' blob:; connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'";

/// How often the stream looks at the audit chain.
const STREAM_POLL: Duration = Duration::from_millis(250);
/// How often the stream checks that its session still holds.
const STREAM_RECHECK: Duration = Duration::from_secs(5);
/// Most jobs a list answers.
const MAX_JOBS: usize = 500;
/// Days the overview's chart covers.
const CHART_DAYS: usize = 7;

/// The console's routes.
pub fn router<S: Store>() -> Router<AppState<S>> {
    Router::new()
        .route("/", get(|| async { page(INDEX, "text/html; charset=utf-8") }))
        .route("/console", get(|| async { page(INDEX, "text/html; charset=utf-8") }))
        .route("/console/", get(|| async { page(INDEX, "text/html; charset=utf-8") }))
        .route(
            "/console/app.js",
            get(|| async { page(SCRIPT, "text/javascript; charset=utf-8") }),
        )
        .route(
            "/console/app.css",
            get(|| async { page(STYLE, "text/css; charset=utf-8") }),
        )
        .route("/console/api/me", get(me::<S>))
        .route("/console/api/overview", get(overview::<S>))
        .route("/console/api/jobs", get(jobs::<S>))
        .route("/console/api/jobs/{jobId}", get(job::<S>))
        .route("/console/api/tickets", get(tickets::<S>))
        .route("/console/api/screen", get(screen::<S>))
        .route("/console/api/queues/{processId}/items", get(items::<S>))
        .route("/console/api/stream", get(stream::<S>))
}

fn page(body: &'static str, kind: &'static str) -> Response {
    let mut r = (StatusCode::OK, body).into_response();
    let h = r.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(kind));
    h.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CSP));
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    r
}

/// The signed-in user.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Me {
    /// Login name.
    pub name: String,
    /// What the user's roles allow.
    pub permissions: Vec<String>,
    /// The server's time zone (IANA): the console shows times in it, as
    /// the APIs write them.
    pub time_zone: String,
}

/// The signed-in user, their permissions and the server's time zone.
#[utoipa::path(get, path = "/console/api/me", tag = "console",
    params(("X-Access-Token" = String, Header, description = "a session")),
    responses((status = 200, description = "the user", body = Envelope<Me>)))]
pub(crate) async fn me<S: Store>(State(st): State<AppState<S>>, h: HeaderMap) -> Answer<Me> {
    let user = session(&st, &h).await?;
    let mut permissions = Vec::new();
    for p in Permission::ALL {
        if st.engine.has_permission(Actor::User(user.id), p).await? {
            permissions.push(format!("{p:?}"));
        }
    }
    Ok(Done::ok(Me {
        name: user.name,
        permissions,
        time_zone: st.engine.config().time_zone.name().to_owned(),
    }))
}

/// The processes `user` may see: granted, or all with OperateAllJobs.
pub(crate) async fn visible<S: Store>(st: &AppState<S>, user: &User) -> Result<Vec<Process>, BusinessError> {
    let all = st
        .engine
        .has_permission(Actor::User(user.id), Permission::OperateAllJobs)
        .await?;
    let mut ps = st.engine.processes().await?;
    ps.retain(|p| all || user.granted(p));
    Ok(ps)
}

/// Counts by word.
type Counts = std::collections::BTreeMap<&'static str, u64>;

/// What the overview page shows.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Overview {
    /// Robots by state (every state, zeros included).
    #[schema(value_type = std::collections::BTreeMap<String, u64>)]
    pub robots: Counts,
    /// Jobs created today (the server's calendar) by state, over the
    /// processes the user may see.
    #[schema(value_type = std::collections::BTreeMap<String, u64>)]
    pub jobs_today: Counts,
    /// Jobs waiting for a robot now.
    pub pending: u64,
    /// Jobs running now.
    pub running: u64,
    /// Queue processes with their New items.
    pub queues: Vec<QueueDepth>,
    /// Per process, the last days' runs.
    pub processes: Vec<ProcessDays>,
    /// The days of `processes[].days`, oldest first (`yyyy-MM-dd`).
    pub days: Vec<String>,
}

/// A queue's depth.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct QueueDepth {
    /// The queue process's id.
    pub process_id: String,
    /// Its name.
    pub name: String,
    /// Items waiting (New).
    pub new_items: u32,
    /// Its jobs running now.
    pub running: u32,
}

/// A process's runs by day.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ProcessDays {
    /// Its id.
    pub process_id: String,
    /// Its name.
    pub name: String,
    /// Per day (oldest first): `[successful, faulted]` jobs created that day.
    pub days: Vec<[u64; 2]>,
}

/// Robots by state, today's jobs, queue depths and the last seven days per
/// process, over the processes the user may see.
#[utoipa::path(get, path = "/console/api/overview", tag = "console",
    params(("X-Access-Token" = String, Header, description = "a session")),
    responses((status = 200, description = "the figures", body = Envelope<Overview>)))]
pub(crate) async fn overview<S: Store>(State(st): State<AppState<S>>, h: HeaderMap) -> Answer<Overview> {
    let user = session(&st, &h).await?;
    Ok(Done::ok(overview_of(&st, &user).await?))
}

/// The overview's figures for `user`.
async fn overview_of<S: Store>(st: &AppState<S>, user: &User) -> Result<Overview, BusinessError> {
    let tz = st.engine.config().time_zone;
    let now = st.engine.now();
    let mut robots: Counts = [
        RobotState::Available,
        RobotState::Busy,
        RobotState::Unresponsive,
        RobotState::Disconnected,
    ]
    .into_iter()
    .map(|s| (s.as_str(), 0))
    .collect();
    for r in st.engine.robots().await? {
        *robots.entry(r.state.as_str()).or_default() += 1;
    }
    // Day windows, oldest first; the last is today's.
    let mut windows = Vec::with_capacity(CHART_DAYS);
    let mut at = now;
    for _ in 0..CHART_DAYS {
        let (start, next, _) = at.day_bounds(tz);
        windows.push((start, Timestamp(next.0 - 1)));
        at = Timestamp(start.0 - 1);
    }
    windows.reverse();
    let mut jobs_today: Counts = JobState::ALL.into_iter().map(|s| (s.as_str(), 0)).collect();
    let (mut pending, mut running) = (0, 0);
    let mut queues = Vec::new();
    let mut processes = Vec::new();
    let store = st.engine.store();
    for p in visible(st, user).await? {
        pending += store.pending_count(p.id).await.map_err(Error::from)?;
        running += u64::from(p.running);
        if p.spec.process_type == rpa_core::model::ProcessType::Queue {
            queues.push(QueueDepth {
                process_id: p.key.to_string(),
                name: p.spec.name.clone(),
                new_items: p.pending_items,
                running: p.running,
            });
        }
        let mut days = Vec::with_capacity(CHART_DAYS);
        for (i, (from, to)) in windows.iter().enumerate() {
            let counts = store.job_counts(p.id, *from, *to).await.map_err(Error::from)?;
            let of = |s: JobState| counts.iter().find(|(c, _)| *c == s).map_or(0, |(_, n)| *n);
            days.push([of(JobState::Successful), of(JobState::Faulted)]);
            if i + 1 == windows.len() {
                for (s, n) in counts {
                    *jobs_today.entry(s.as_str()).or_default() += n;
                }
            }
        }
        processes.push(ProcessDays {
            process_id: p.key.to_string(),
            name: p.spec.name.clone(),
            days,
        });
    }
    let days = windows
        .iter()
        .map(|(from, _)| from.in_zone(tz).format("%Y-%m-%d").to_string())
        .collect();
    Ok(Overview {
        robots,
        jobs_today,
        pending,
        running,
        queues,
        processes,
        days,
    })
}

/// The operations big screen (seed 001 §6.4.1 a).
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Screen {
    /// Processes the user may see, by type (`Unattended`, `Attended`, `Queue`).
    #[schema(value_type = std::collections::BTreeMap<String, u64>)]
    pub applications: Counts,
    /// Catalogue listings published.
    pub published: u64,
    /// Subscriptions to them, in all.
    pub subscriptions: u64,
    /// The most subscribed listings: `[name, subscriptions]`, at most 5.
    pub top_subscribed: Vec<(String, u64)>,
    /// The hottest applications (runs over 30 days and subscriptions): `[name, score]`, at most 5.
    pub hot: Vec<(String, u64)>,
    /// Today's jobs by state, over the processes the user may see.
    #[schema(value_type = std::collections::BTreeMap<String, u64>)]
    pub runs_today: Counts,
    /// The last seven days (oldest first): `[successful, faulted]`, all visible processes together.
    pub run_days: Vec<[u64; 2]>,
    /// Their days, `yyyy-MM-dd`.
    pub days: Vec<String>,
    /// Open tickets (demands, problems, requests) by workflow: `[workflow, open, ended]`.
    pub demands: Vec<(String, u64, u64)>,
    /// Executors (robots) by state.
    #[schema(value_type = std::collections::BTreeMap<String, u64>)]
    pub executors: Counts,
    /// Designers by state.
    #[schema(value_type = std::collections::BTreeMap<String, u64>)]
    pub designers: Counts,
}

/// The big screen's figures, over what the user may see.
#[utoipa::path(get, path = "/console/api/screen", tag = "console",
    params(("X-Access-Token" = String, Header, description = "a session")),
    responses((status = 200, description = "the figures", body = Envelope<Screen>)))]
pub(crate) async fn screen<S: Store>(State(st): State<AppState<S>>, h: HeaderMap) -> Answer<Screen> {
    let user = session(&st, &h).await?;
    let over = overview_of(&st, &user).await?;
    let processes = visible(&st, &user).await?;
    let mut applications: Counts = ["Unattended", "Attended", "Queue"]
        .into_iter()
        .map(|t| (t, 0))
        .collect();
    for p in &processes {
        *applications.entry(p.spec.process_type.as_str()).or_default() += 1;
    }
    let mut listings = st.engine.search_catalogue("", None).await?;
    listings.sort_by(|a, b| b.subscriptions.cmp(&a.subscriptions).then(a.name.cmp(&b.name)));
    let hot = st.engine.hot_applications(&processes, 30, 5).await?;
    let workflows = st.engine.workflows().await?;
    let mut demands = Vec::new();
    for w in &workflows {
        let q = rpa_core::engine::TicketQuery {
            workflows: vec![w.id],
            ..rpa_core::engine::TicketQuery::default()
        };
        let (_, open) = st
            .engine
            .tickets(
                &user.name,
                &rpa_core::engine::TicketQuery {
                    is_end: Some(false),
                    ..q.clone()
                },
                1,
                1,
            )
            .await?;
        let (_, ended) = st
            .engine
            .tickets(
                &user.name,
                &rpa_core::engine::TicketQuery {
                    is_end: Some(true),
                    ..q
                },
                1,
                1,
            )
            .await?;
        demands.push((w.name.clone(), open as u64, ended as u64));
    }
    let designers = st
        .engine
        .designer_counts()
        .await?
        .into_iter()
        .map(|(s, n)| (s.as_str(), n))
        .collect();
    Ok(Done::ok(Screen {
        applications,
        published: listings.len() as u64,
        subscriptions: listings.iter().map(|l| l.subscriptions).sum(),
        top_subscribed: listings
            .iter()
            .filter(|l| l.subscriptions > 0)
            .take(5)
            .map(|l| (l.name.clone(), l.subscriptions))
            .collect(),
        hot: hot.into_iter().map(|h| (h.name, h.score)).collect(),
        runs_today: over.jobs_today,
        run_days: (0..over.days.len())
            .map(|i| {
                over.processes
                    .iter()
                    .fold([0, 0], |[ok, bad], p| [ok + p.days[i][0], bad + p.days[i][1]])
            })
            .collect(),
        days: over.days,
        demands,
        executors: over.robots,
        designers,
    }))
}

/// A job in a list.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct JobRow {
    /// Its id (seed 000 `jobId`).
    pub job_id: String,
    /// Its process's id.
    pub process_id: String,
    /// Its process's name.
    pub process_name: String,
    /// Its state word.
    pub state: &'static str,
    /// Who started it.
    pub user_name: String,
    /// The robot running or that ran it.
    pub robot_id: Option<String>,
    /// Which attempt.
    pub attempt: u32,
    /// Created (epoch ms).
    pub created_at: i64,
    /// Its current or last attempt began (epoch ms).
    pub started_at: Option<i64>,
    /// Ended (epoch ms).
    pub ended_at: Option<i64>,
    /// The robot's error code, if any.
    pub error_code: Option<i32>,
    /// Why it ended this way, when not by the robot's report.
    pub reason: Option<String>,
}

async fn row<S: Store>(st: &AppState<S>, j: &Job, p: &Process) -> Result<JobRow, BusinessError> {
    let robot_id = match j.robot {
        Some(r) => st
            .engine
            .store()
            .robot(r)
            .await
            .map_err(Error::from)?
            .map(|r| r.code.to_string()),
        None => None,
    };
    Ok(JobRow {
        job_id: j.key.to_string(),
        process_id: p.key.to_string(),
        process_name: p.spec.name.clone(),
        state: j.state.as_str(),
        user_name: j.user_name.to_string(),
        robot_id,
        attempt: j.attempt,
        created_at: j.created_at.0,
        started_at: j.started_at.map(|t| t.0),
        ended_at: j.ended_at.map(|t| t.0),
        error_code: j.error_code,
        reason: j.reason.as_deref().map(str::to_owned),
    })
}

/// The newest jobs of the last 30 days of the processes the user may see.
#[utoipa::path(get, path = "/console/api/jobs", tag = "console",
    params(("X-Access-Token" = String, Header, description = "a session"),
        ("processId" = Option<String>, Query, description = "only this process's"),
        ("state" = Option<String>, Query, description = "only jobs in this state"),
        ("limit" = Option<usize>, Query, description = "at most this many (default 100, at most 500)")),
    responses((status = 200, description = "the jobs, newest first", body = Envelope<Vec<JobRow>>)))]
pub(crate) async fn jobs<S: Store>(
    State(st): State<AppState<S>>,
    h: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Answer<Vec<JobRow>> {
    let user = session(&st, &h).await?;
    let limit = limit_of(&q)?;
    let state = match q.get("state").map(|s| s.trim()).filter(|s| !s.is_empty()) {
        None => None,
        Some(s) => Some(
            JobState::ALL
                .into_iter()
                .find(|x| x.as_str().eq_ignore_ascii_case(s))
                .ok_or_else(|| BusinessError::refused(format!("state {s} is not a job state")))?,
        ),
    };
    let mut ps = visible(&st, &user).await?;
    if let Some(pid) = q.get("processId").map(|s| s.trim()).filter(|s| !s.is_empty()) {
        let k = crate::admin::process_id(pid)?;
        ps.retain(|p| p.key == k);
        if ps.is_empty() {
            return Err(BusinessError::refused(format!("process {pid} not found")));
        }
    }
    let now = st.engine.now();
    let mut found: Vec<(Job, usize)> = Vec::new();
    for (i, p) in ps.iter().enumerate() {
        let (_, js) = st
            .engine
            .store()
            .jobs_of_process(JobQuery {
                process: p.id,
                from: Timestamp(now.0 - 30 * 86_400_000),
                to: Timestamp(now.0 + 60_000),
                state,
                limit,
            })
            .await
            .map_err(Error::from)?;
        found.extend(js.into_iter().map(|j| (j, i)));
    }
    found.sort_by_key(|(j, _)| std::cmp::Reverse((j.created_at, j.id)));
    found.truncate(limit);
    let mut out = Vec::with_capacity(found.len());
    for (j, i) in &found {
        out.push(row(&st, j, &ps[*i]).await?);
    }
    Ok(Done::ok(out))
}

/// A list's `limit`: default 100, at most 500.
fn limit_of(q: &HashMap<String, String>) -> Result<usize, BusinessError> {
    match q.get("limit").map(|s| s.trim()).filter(|s| !s.is_empty()) {
        None => Ok(100),
        Some(s) => Ok(s
            .parse::<usize>()
            .ok()
            .filter(|n| *n >= 1)
            .ok_or_else(|| BusinessError::refused("limit must be a positive number"))?
            .min(MAX_JOBS)),
    }
}

/// A job with all it left.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct JobDetail {
    /// The job.
    #[serde(flatten)]
    pub job: JobRow,
    /// Its arguments.
    #[schema(value_type = Object)]
    pub arguments: Value,
    /// Its outputs, once ended.
    #[schema(value_type = Option<Object>)]
    pub outputs: Option<Value>,
    /// Its steps (`{step, name, at, pause}`).
    #[schema(value_type = Vec<Object>)]
    pub steps: Vec<Value>,
    /// Run logs: `{logAt, level, content, screenshot}`; `screenshot` is a
    /// link to the stored file when the robot sent one.
    #[schema(value_type = Vec<Object>)]
    pub logs: Vec<Value>,
    /// Screen recordings: `{videoId, at, url}`.
    #[schema(value_type = Vec<Object>)]
    pub recordings: Vec<Value>,
}

/// A job with its arguments, outputs, steps, run log and recordings.
#[utoipa::path(get, path = "/console/api/jobs/{jobId}", tag = "console",
    params(("X-Access-Token" = String, Header, description = "a session that may see the job"),
        ("jobId" = String, Path, description = "the job")),
    responses((status = 200, description = "the job", body = Envelope<JobDetail>)))]
pub(crate) async fn job<S: Store>(
    State(st): State<AppState<S>>,
    h: HeaderMap,
    Path(id): Path<String>,
) -> Answer<JobDetail> {
    let user = session(&st, &h).await?;
    let key = crate::wire::key("jobId", &id).map_err(|_| BusinessError::refused(format!("job {id} not found")))?;
    let (j, p) = st.engine.job_status(&user, key).await?;
    let logs = st.engine.job_logs(&user, key).await?;
    let videos = st.engine.store().videos(j.id).await.map_err(Error::from)?;
    // Signed for ten minutes: an <img> or <video> sends no header.
    let expires = now_s(&st) + 600;
    let file = |id: &str| -> Option<String> {
        let id = id.trim().parse::<rpa_core::Key>().ok()?.to_string();
        let path = format!("/v1/file/{id}");
        let key = st.settings.link_key.as_ref()?;
        Some(format!("{path}?{}", rpa_core::auth::sign_link(key, &path, expires)))
    };
    Ok(Done::ok(JobDetail {
        job: row(&st, &j, &p).await?,
        arguments: Value::clone(&j.arguments),
        outputs: j.outputs.as_deref().cloned(),
        steps: j
            .step_records
            .iter()
            .map(|s| json!({"step": s.step, "name": s.name, "at": s.at.0, "pause": s.pause}))
            .collect(),
        logs: logs
            .iter()
            .map(|l| {
                json!({
                    "logAt": l.log_at,
                    "level": format!("{:?}", l.level).to_uppercase(),
                    "content": l.content,
                    "screenshot": l.screenshot.as_deref().and_then(file),
                })
            })
            .collect(),
        recordings: videos
            .iter()
            .map(|v| json!({"videoId": v.video_id, "at": v.at.0, "url": file(&v.video_id)}))
            .collect(),
    }))
}

/// A queue item in a list.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ItemRow {
    /// Its id (seed 000 `itemId`).
    pub item_id: String,
    /// Its state word.
    pub state: &'static str,
    /// Its priority.
    pub priority: i32,
    /// Its unique reference, if any.
    pub reference: Option<String>,
    /// Tries made after a failure.
    pub retry_count: u32,
    /// The job working or that worked it.
    pub job_id: Option<String>,
    /// Progress the robot reported.
    pub progress: Option<String>,
    /// Its content.
    #[schema(value_type = Object)]
    pub content: Value,
    /// Created (epoch ms).
    pub created_at: i64,
    /// Ended (epoch ms).
    pub ended_at: Option<i64>,
}

/// A queue process's newest items (a session that may see the process).
#[utoipa::path(get, path = "/console/api/queues/{processId}/items", tag = "console",
    params(("X-Access-Token" = String, Header, description = "a session"),
        ("processId" = String, Path, description = "the queue process"),
        ("limit" = Option<usize>, Query, description = "at most this many (default 100, at most 500)")),
    responses((status = 200, description = "the items, newest first", body = Envelope<Vec<ItemRow>>)))]
pub(crate) async fn items<S: Store>(
    State(st): State<AppState<S>>,
    h: HeaderMap,
    Path(pid): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> Answer<Vec<ItemRow>> {
    let user = session(&st, &h).await?;
    let limit = limit_of(&q)?;
    let k = crate::admin::process_id(&pid)?;
    let p = visible(&st, &user)
        .await?
        .into_iter()
        .find(|p| p.key == k)
        .ok_or_else(|| BusinessError::refused(format!("process {pid} not found")))?;
    let store = st.engine.store();
    let items = store.items_of_process(p.id, limit).await.map_err(Error::from)?;
    let mut out = Vec::with_capacity(items.len());
    for i in items {
        let job_id = match i.job {
            Some(j) => store.job(j).await.map_err(Error::from)?.map(|j| j.key.to_string()),
            None => None,
        };
        out.push(ItemRow {
            item_id: i.key.to_string(),
            state: i.state.as_str(),
            priority: i.priority,
            reference: i.any_reference().map(str::to_owned),
            retry_count: i.retry_count,
            job_id,
            progress: i.progress.clone(),
            content: Value::clone(&i.content),
            created_at: i.created_at.0,
            ended_at: i.ended_at.map(|t| t.0),
        });
    }
    Ok(Done::ok(out))
}

/// A workflow ticket in a list.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TicketRow {
    /// Its id.
    pub id: i64,
    /// Its serial number.
    pub sn: String,
    /// Its title.
    pub title: String,
    /// Its workflow's name.
    pub workflow: String,
    /// Its state's name.
    pub state: String,
    /// Who may handle it now.
    pub participant: String,
    /// Who created it.
    pub creator: String,
    /// It reached an end state.
    pub is_end: bool,
    /// It was rejected.
    pub is_rejected: bool,
    /// The robot job its robot state runs, if any.
    pub job_id: Option<String>,
    /// Created (epoch ms).
    pub created_at: i64,
}

/// The newest workflow tickets (permission ViewAudit).
#[utoipa::path(get, path = "/console/api/tickets", tag = "console",
    params(("X-Access-Token" = String, Header, description = "a session with ViewAudit"),
        ("open" = Option<bool>, Query, description = "only tickets not ended")),
    responses((status = 200, description = "the tickets, newest first", body = Envelope<Vec<TicketRow>>)))]
pub(crate) async fn tickets<S: Store>(
    State(st): State<AppState<S>>,
    h: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Answer<Vec<TicketRow>> {
    let me = crate::admin::admin(&st, &h, Permission::ViewAudit).await?;
    let query = rpa_core::engine::TicketQuery {
        is_end: (q.get("open").map(String::as_str) == Some("true")).then_some(false),
        reverse: true,
        ..rpa_core::engine::TicketQuery::default()
    };
    let (list, _) = st.engine.tickets(&me.name, &query, 1, 200).await?;
    let workflows = st.engine.workflows().await?;
    let rows = list
        .into_iter()
        .map(|t| {
            let w = workflows.iter().find(|w| w.id == t.workflow_id);
            TicketRow {
                workflow: w.map_or_else(|| t.workflow_id.to_string(), |w| w.name.clone()),
                state: w
                    .and_then(|w| w.states.iter().find(|s| s.id == t.state_id))
                    .map_or_else(|| t.state_id.to_string(), |s| s.name.clone()),
                id: t.id,
                sn: t.sn,
                title: t.title,
                participant: t.participant,
                creator: t.creator,
                is_end: t.is_end,
                is_rejected: t.is_rejected,
                job_id: t.job_key.map(|k| k.to_string()),
                created_at: t.created_at.0,
            }
        })
        .collect();
    Ok(Done::ok(rows))
}

fn now_s<S: Store>(st: &AppState<S>) -> i64 {
    st.engine.now().0.div_euclid(1000)
}

/// `text/event-stream` of committed changes (see the module docs).
async fn stream<S: Store>(State(st): State<AppState<S>>, h: HeaderMap) -> Result<Response, BusinessError> {
    let token = h
        .get("x-access-token")
        .and_then(|v| v.to_str().ok())
        .map(|s| s.trim().to_owned())
        .unwrap_or_default();
    session(&st, &h).await?;
    let start = st.engine.store().head().await.map_err(Error::from)?;
    let engine = st.engine.clone();
    let body = futures::stream::unfold(
        (engine, token, start, std::time::Instant::now(), true, false),
        |(engine, token, mut after, mut checked, first, done)| async move {
            if done {
                return None;
            }
            if first {
                let hello = format!("retry: 2000\nevent: hello\ndata: {{\"seq\":{after}}}\n\n");
                return Some((
                    Ok::<_, Infallible>(hello),
                    (engine, token, after, checked, false, false),
                ));
            }
            loop {
                if checked.elapsed() >= STREAM_RECHECK {
                    if engine.authenticate(&token).await.is_err() {
                        let bye = "event: expired\ndata: {}\n\n".to_owned();
                        return Some((Ok(bye), (engine, token, after, checked, false, true)));
                    }
                    checked = std::time::Instant::now();
                }
                match engine.store().audit(after, 200).await {
                    Ok(events) if !events.is_empty() => {
                        let mut out = String::new();
                        for e in &events {
                            let kind = e.event.as_deref().map(|ev| ev.kind());
                            let data = json!({"seq": e.seq, "action": e.action, "type": kind});
                            out.push_str(&format!("id: {}\nevent: change\ndata: {data}\n\n", e.seq));
                            after = e.seq;
                        }
                        return Some((Ok(out), (engine, token, after, checked, false, false)));
                    }
                    Ok(_) => {}
                    Err(e) => tracing::warn!(error = %e, "console stream: reading the audit chain"),
                }
                tokio::time::sleep(STREAM_POLL).await;
                // A comment now and then keeps proxies from closing an idle stream.
                if checked.elapsed() >= STREAM_RECHECK / 2 && checked.elapsed() < STREAM_RECHECK / 2 + STREAM_POLL {
                    return Some((
                        Ok(": idle\n\n".to_owned()),
                        (engine, token, after, checked, false, false),
                    ));
                }
            }
        },
    );
    let mut r = Response::new(Body::from_stream(body));
    let hs = r.headers_mut();
    hs.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/event-stream"));
    hs.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    hs.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    Ok(r)
}
