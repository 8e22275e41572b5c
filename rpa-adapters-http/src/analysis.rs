//! Run analysis and scenario analysis over HTTP (seed 001 §6.4.1 b, c; the
//! rules are in [`rpa_core::analysis`]).
//!
//! | method, path | who | body, query → answer |
//! |---|---|---|
//! | `GET /admin/analysis/runs` | a session: the processes it may see | `by` (`process`, `region`, `scenario`, `businessDomain`; default `process`), `period` (`day`, `week`, `month`, `all`; default `day`), `from`, `to` (`yyyy-MM-dd`, the server's calendar; default the last 30 days) → [`RunReport`] |
//! | `PUT /admin/processes/{processId}/attributes` | ManageProcesses | [`AttributesDef`] → the process (`ProcessDetails`) |
//!
//! Bad input (an unknown `by` or `period`, a malformed day, `to` before
//! `from`, more than ten years, an attribute longer than 64 characters)
//! answers HTTP 200 with `code` 500 and the reason in `message`, as the rest of
//! the administration API does; no session answers 401.

use std::collections::HashMap;

use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::routing::{get, put};
use rpa_core::Store;
use rpa_core::analysis::{Attributes, Bucket, Dimension, Period};
use rpa_core::model::{Actor, Permission};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

use crate::AppState;
use crate::admin::{ProcessDetails, admin, process_details, process_id};
use crate::console::visible;
use crate::seed000::{Answer, BusinessError, Done, Envelope, fields, session};

/// Days a report covers when `from` is not given.
const DEFAULT_DAYS: i64 = 30;

/// The routes.
pub fn router<S: Store>() -> Router<AppState<S>> {
    Router::new()
        .route("/admin/analysis/runs", get(runs::<S>))
        .route("/admin/processes/{process_id}/attributes", put(set_attributes::<S>))
}

/// A report.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RunReport {
    /// What it groups by.
    pub by: String,
    /// How it groups days.
    pub period: String,
    /// First day.
    pub from: String,
    /// Last day.
    pub to: String,
    /// One per period and value: `value`, `period`, `runs`, `successful`,
    /// `faulted`, `stopped`, `canceled`, `successRate` (0..1 or null),
    /// `averageDurationMs` (or null), `runHours`, `savedHours`.
    #[schema(value_type = Vec<Object>)]
    pub buckets: Vec<Bucket>,
}

/// Run counts, success rates, durations and saved hours per dimension and period.
#[utoipa::path(get, path = "/admin/analysis/runs", tag = "admin",
    params(("X-Access-Token" = String, Header, description = "a session"),
        ("by" = Option<String>, Query, description = "process, region, scenario or businessDomain"),
        ("period" = Option<String>, Query, description = "day, week, month or all"),
        ("from" = Option<String>, Query, description = "first day, yyyy-MM-dd (default: 29 days before to)"),
        ("to" = Option<String>, Query, description = "last day, yyyy-MM-dd (default: today)")),
    responses((status = 200, description = "the report", body = Envelope<RunReport>)))]
pub(crate) async fn runs<S: Store>(
    State(st): State<AppState<S>>,
    h: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Answer<RunReport> {
    let user = session(&st, &h).await?;
    let by_word = q.get("by").map_or("process", String::as_str);
    let period_word = q.get("period").map_or("day", String::as_str);
    let by = Dimension::parse(by_word).map_err(BusinessError::refused)?;
    let period = Period::parse(period_word).map_err(BusinessError::refused)?;
    let today = st.engine.now().in_zone(st.engine.config().time_zone).date_naive();
    let to = q
        .get("to")
        .cloned()
        .unwrap_or_else(|| today.format("%Y-%m-%d").to_string());
    let from = match q.get("from") {
        Some(f) => f.clone(),
        None => match chrono::NaiveDate::parse_from_str(&to, "%Y-%m-%d") {
            Ok(t) => (t - chrono::Days::new(DEFAULT_DAYS as u64 - 1))
                .format("%Y-%m-%d")
                .to_string(),
            // The check below names the bad `to`.
            Err(_) => to.clone(),
        },
    };
    let processes = visible(&st, &user).await?;
    let buckets = st.engine.run_analysis(&processes, by, period, &from, &to).await?;
    Ok(Done::ok(RunReport {
        by: by_word.to_owned(),
        period: period_word.to_owned(),
        from,
        to,
        buckets,
    }))
}

/// A process's analysis attributes (each optional; blank clears it).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct AttributesDef {
    /// Its region.
    pub region: Option<String>,
    /// The business scenario it automates.
    pub scenario: Option<String>,
    /// Its business domain.
    pub business_domain: Option<String>,
    /// Minutes of a person's work a successful run saves (0..1440).
    #[serde(default)]
    pub saved_minutes: u32,
}

/// Sets a process's region, scenario, business domain and saved minutes (permission ManageProcesses).
#[utoipa::path(put, path = "/admin/processes/{processId}/attributes", tag = "admin",
    params(("X-Access-Token" = String, Header, description = "an administrator's session"),
        ("processId" = String, Path, description = "the process")),
    request_body = AttributesDef,
    responses((status = 200, description = "the process", body = Envelope<ProcessDetails>)))]
pub(crate) async fn set_attributes<S: Store>(
    State(st): State<AppState<S>>,
    h: HeaderMap,
    Path(pid): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> Answer<ProcessDetails> {
    let me = admin(&st, &h, Permission::ManageProcesses).await?;
    let key = process_id(&pid)?;
    let f = fields(body)?;
    let def: AttributesDef = serde_json::from_value(Value::Object(f.0))
        .map_err(|e| BusinessError::refused(format!("invalid attributes: {e}")))?;
    let attributes = Attributes {
        region: def.region,
        scenario: def.scenario,
        business_domain: def.business_domain,
        saved_minutes: def.saved_minutes,
    };
    let p = st
        .engine
        .set_process_attributes(Actor::User(me.id), key, attributes)
        .await?;
    Ok(Done::ok(process_details(&st, &p)))
}
