//! The start-up configuration (JSON): users, processes, grants, vendors,
//! robots, loaded into an engine before it serves. The same process
//! definition is accepted by `POST /admin/processes`.
//!
//! ```json
//! {
//!   "admin": { "name": "admin", "password": "change-me" },
//!   "processes": [
//!     { "name": "Invoice entry", "type": "Unattended", "version": "1.0.0",
//!       "arguments": [ { "name": "invoice", "id": "inv", "type": "int", "required": true } ],
//!       "maxRunNum": 2, "maxDayNum": 0 }
//!   ],
//!   "users": [ { "name": "alice", "password": "wonderland", "processes": ["Invoice entry"] } ],
//!   "vendors": [ { "supplierCode": "acme", "secret": "acme-vendor-secret" } ],
//!   "licenses": [ { "name": "acme-2030", "content": "LIC-1", "expiresAt": "2030-12-31 23:59:59", "seats": 10 } ],
//!   "robots": [ { "robotId": "robot-1", "pool": "default", "license": "acme-2030" } ],
//!   "capabilities": [ { "name": "ocr", "kind": "ocr", "backend": { "type": "tesseract", "languages": "eng" },
//!       "processes": ["Invoice entry"], "dailyQuota": 1000 } ]
//! }
//! ```

use rpa_core::engine::NewUser;
use rpa_core::error::Error;
use rpa_core::model::{
    Actor, ArgType, ArgumentSpec, ProcessSpec, ProcessType, RetryPolicy, RobotProfile, RobotRequirements,
};
use rpa_core::store::People as _;
use rpa_core::trigger::QueueTrigger;
use rpa_core::{Engine, Store};
use serde::{Deserialize, Serialize};

/// The whole file.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The administrator (created with every permission if missing).
    pub admin: Option<UserDef>,
    /// Processes, created when no process of that name exists.
    #[serde(default)]
    pub processes: Vec<ProcessDef>,
    /// The parent this server reports its run results to (two-level
    /// collaboration, seed 001 §6.5.3).
    #[serde(default)]
    pub parent: Option<ParentDef>,
    /// The children whose reports this server accepts.
    #[serde(default)]
    pub children: Vec<ChildDef>,
    /// Roles, created when missing (before the users that name them).
    #[serde(default)]
    pub roles: Vec<RoleDef>,
    /// Users, created when missing; `processes` are granted by name.
    #[serde(default)]
    pub users: Vec<UserDef>,
    /// Robot vendors.
    #[serde(default)]
    pub vendors: Vec<VendorDef>,
    /// Robot licenses ([`crate::licenses::LicenseDef`]): created when
    /// missing, renewed when their terms differ from the stored ones.
    #[serde(default)]
    pub licenses: Vec<crate::licenses::LicenseDef>,
    /// Robot profiles and licenses.
    #[serde(default)]
    pub robots: Vec<RobotDef>,
    /// The organisation's LDAP directory: its users log in with their
    /// directory password and get their grants from their groups.
    #[serde(default)]
    pub ldap: Option<LdapDef>,
    /// Single sign-on for the console with an OpenID Connect provider.
    #[serde(default)]
    pub oidc: Option<OidcDef>,
    /// AI capabilities ([`crate::ai::CapabilityDef`]): registered when
    /// missing or retired, changed when their spec differs from the stored one.
    #[serde(default)]
    pub capabilities: Vec<crate::ai::CapabilityDef>,
    /// AutomationEdge listener accounts (seed 003 Basic credentials).
    #[serde(default)]
    pub listeners: Vec<ListenerDef>,
    /// Schedules, created when no schedule of that name exists.
    #[serde(default)]
    pub schedules: Vec<ScheduleDef>,
    /// The workflow engine (seed 004): its callers, people and workflows.
    #[serde(default)]
    pub flow: FlowDef,
    /// Elastic robot pools, saved at start.
    #[serde(default)]
    pub pools: Vec<PoolDef>,
    /// Pipelines ([`rpa_core::pipeline::PipelineDef`]), saved at start when
    /// they differ from the stored one of the same name.
    #[serde(default)]
    pub pipelines: Vec<rpa_core::pipeline::PipelineDef>,
    /// The UiPath-compatible surface (seed 002): its OAuth clients.
    #[serde(default)]
    pub uipath: UiPathDef,
}

/// The UiPath-compatible surface's part of the file.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct UiPathDef {
    /// OAuth clients that may ask `/oauth/token` for tokens.
    #[serde(default)]
    pub clients: Vec<UiPathClientDef>,
    /// How long a token lasts (default 3600).
    pub token_ttl_seconds: Option<u64>,
    /// Personal access tokens: bearer tokens of fixed value, each acting
    /// as a user for a year from the server's start.
    #[serde(default)]
    pub personal_access_tokens: Vec<PersonalTokenDef>,
}

/// A personal access token of the configuration.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PersonalTokenDef {
    /// The token (at least 16 characters).
    pub token: String,
    /// The user it acts as.
    pub user: String,
}

impl std::fmt::Debug for PersonalTokenDef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PersonalTokenDef")
            .field("user", &self.user)
            .finish_non_exhaustive()
    }
}

/// An OAuth client: `client_credentials` with its secret, `refresh_token`
/// with its refresh token (UiPath's "User Key"); its tokens act as `user`.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct UiPathClientDef {
    /// `client_id`.
    pub client_id: String,
    /// `client_secret`.
    pub client_secret: String,
    /// A refresh token the client may present instead.
    pub refresh_token: Option<String>,
    /// The engine user its tokens act as.
    pub user: String,
}

impl std::fmt::Debug for UiPathClientDef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UiPathClientDef")
            .field("client_id", &self.client_id)
            .field("user", &self.user)
            .finish_non_exhaustive()
    }
}

/// An elastic robot pool ([`rpa_core::pool`]) and, optionally, how this
/// server starts its robots.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct PoolDef {
    /// The pool (robot profiles' `pool`; processes name it in `pool`).
    pub name: String,
    /// Fewest robots it wants.
    #[serde(default)]
    pub min: u32,
    /// Most robots it wants.
    pub max: u32,
    /// How long a robot the pool no longer wants may stay idle before the
    /// provisioner stops it.
    #[serde(default = "sixty")]
    pub idle_grace_seconds: u64,
    /// A command that starts one robot of the pool on this server's machine
    /// (program and arguments; `{robot}` in an argument becomes the robot's
    /// id, and `RPA_ROBOT_ID`, `RPA_POOL` are in its environment). Empty:
    /// the figure is only published, for an autoscaler of your own.
    #[serde(default)]
    pub command: Vec<String>,
    /// The executor image its robots start with (`{image}` in an argument
    /// becomes the image file's path; `RPA_IMAGE`, `RPA_IMAGE_VERSION` are
    /// in the environment).
    #[serde(default)]
    pub image: Option<String>,
    /// The image version it is pinned to (default: the latest not retired).
    #[serde(default)]
    pub image_version: Option<String>,
}

fn sixty() -> u64 {
    60
}

impl PoolDef {
    /// The pool's bounds.
    pub fn spec(&self) -> rpa_core::pool::PoolSpec {
        rpa_core::pool::PoolSpec {
            name: self.name.clone(),
            min: self.min,
            max: self.max,
            idle_grace_seconds: self.idle_grace_seconds,
            image: self.image.clone(),
            image_version: self.image_version.clone(),
        }
    }
}

/// The workflow engine's part of the file.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FlowDef {
    /// The applications that call `/api/v1.0` (seed 004 "调用token").
    #[serde(default)]
    pub apps: Vec<crate::loonflow::FlowApp>,
    /// The people tickets flow between; replaces the stored directory.
    #[serde(default)]
    pub directory: Option<rpa_core::flow::Directory>,
    /// Workflow definitions, saved (replacing one of the same name) when
    /// they differ from the stored one.
    #[serde(default)]
    pub workflows: Vec<rpa_core::flow::WorkflowDef>,
}

/// A schedule (seed 001 §6.1.2 c): exactly one of `every`, `daily`,
/// `weekly`, `monthly`, `cron`. Times of day are `HH:MM[:SS]`, dates
/// `yyyy-MM-dd`, instants `yyyy-MM-dd HH:mm:ss`, all in `zone`.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ScheduleDef {
    /// Unique name.
    pub name: String,
    /// The process's name.
    pub process: String,
    /// The job's arguments.
    #[serde(default)]
    #[schema(value_type = Object)]
    pub arguments: serde_json::Value,
    /// `{"seconds"|"minutes"|"hours": N}`.
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub every: Option<std::collections::BTreeMap<String, u64>>,
    /// Times of day.
    #[serde(default)]
    pub daily: Option<Vec<String>>,
    /// `{"days": ["Mon", ...], "times": [...]}`.
    #[serde(default)]
    pub weekly: Option<DaysAndTimes>,
    /// `{"days": [1, 15, "last"], "times": [...]}`.
    #[serde(default)]
    pub monthly: Option<DaysAndTimes>,
    /// A cron expression: five fields, or six with seconds first.
    #[serde(default)]
    pub cron: Option<String>,
    /// IANA zone (default: the server's).
    #[serde(default)]
    pub zone: Option<String>,
    /// Not before (`yyyy-MM-dd HH:mm:ss`).
    #[serde(default)]
    pub from: Option<String>,
    /// Not after (`yyyy-MM-dd HH:mm:ss`).
    #[serde(default)]
    pub until: Option<String>,
    /// Only between two times of day, `["08:00", "18:00"]`.
    #[serde(default)]
    pub hours: Option<(String, String)>,
    /// Non-working days (`yyyy-MM-dd`): never fires on them.
    #[serde(default)]
    pub skip_dates: Vec<String>,
    /// After downtime: `runOnce` (default) or `skip`.
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    pub missed: Option<rpa_core::schedule::Missed>,
    /// Whose jobs they are (a user name; default: who saves it, or the
    /// configuration's administrator).
    #[serde(default)]
    pub owner: Option<String>,
}

/// Days and times of a weekly or monthly schedule.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DaysAndTimes {
    /// Weekdays (`"Mon"`, `"Tuesday"`) or days of the month (1–31, `"last"`).
    #[schema(value_type = Vec<Object>)]
    pub days: Vec<serde_json::Value>,
    /// Times of day.
    pub times: Vec<String>,
}

fn time_of_day(s: &str) -> Result<chrono::NaiveTime, String> {
    chrono::NaiveTime::parse_from_str(s, "%H:%M:%S")
        .or_else(|_| chrono::NaiveTime::parse_from_str(s, "%H:%M"))
        .map_err(|_| format!("{s:?} is not a time of day (HH:MM or HH:MM:SS)"))
}

fn times_of_day(v: &[String]) -> Result<Vec<chrono::NaiveTime>, String> {
    v.iter().map(|s| time_of_day(s)).collect()
}

impl ScheduleDef {
    /// The engine's definition, with the process `process` (found by name
    /// by the caller) and `default_zone` when none is given.
    pub fn spec(
        &self,
        process: rpa_core::ids::ProcessId,
        default_zone: &str,
    ) -> Result<rpa_core::schedule::ScheduleSpec, String> {
        use rpa_core::schedule::{LastDay, MonthDay, Rule, ScheduleSpec};
        let zone = self.zone.clone().unwrap_or_else(|| default_zone.to_owned());
        let tz: rpa_core::time::Tz = zone.parse().map_err(|_| format!("unknown time zone {zone:?}"))?;
        let mut rules = Vec::new();
        if let Some(e) = &self.every {
            let [(unit, n)] = e.iter().collect::<Vec<_>>()[..] else {
                return Err("every: give one of seconds, minutes or hours".into());
            };
            let ms = match unit.as_str() {
                "seconds" => n.saturating_mul(1_000),
                "minutes" => n.saturating_mul(60_000),
                "hours" => n.saturating_mul(3_600_000),
                other => return Err(format!("every: {other:?} is not seconds, minutes or hours")),
            };
            rules.push(Rule::Every { ms });
        }
        if let Some(d) = &self.daily {
            rules.push(Rule::Daily {
                times: times_of_day(d)?,
            });
        }
        if let Some(w) = &self.weekly {
            let days = w
                .days
                .iter()
                .map(|d| {
                    d.as_str()
                        .and_then(|s| s.parse::<chrono::Weekday>().ok())
                        .ok_or_else(|| format!("weekly: {d} is not a weekday"))
                })
                .collect::<Result<_, _>>()?;
            rules.push(Rule::Weekly {
                days,
                times: times_of_day(&w.times)?,
            });
        }
        if let Some(m) = &self.monthly {
            let days = m
                .days
                .iter()
                .map(|d| match d {
                    serde_json::Value::String(s) if s.eq_ignore_ascii_case("last") => Ok(MonthDay::Last(LastDay::Last)),
                    serde_json::Value::Number(n) => n
                        .as_u64()
                        .and_then(|n| u32::try_from(n).ok())
                        .map(MonthDay::Day)
                        .ok_or_else(|| format!("monthly: {d} is not a day of a month")),
                    _ => Err(format!("monthly: {d} is not a day of a month or \"last\"")),
                })
                .collect::<Result<_, _>>()?;
            rules.push(Rule::Monthly {
                days,
                times: times_of_day(&m.times)?,
            });
        }
        if let Some(c) = &self.cron {
            rules.push(Rule::Cron { expr: c.clone() });
        }
        let rule = match rules.len() {
            1 => rules.remove(0),
            0 => return Err("a schedule needs one of every, daily, weekly, monthly or cron".into()),
            _ => return Err("a schedule takes only one of every, daily, weekly, monthly or cron".into()),
        };
        let instant = |s: &Option<String>, what: &str| -> Result<Option<rpa_core::Timestamp>, String> {
            let Some(s) = s else { return Ok(None) };
            let local = chrono::NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S")
                .map_err(|_| format!("{what}: {s:?} is not yyyy-MM-dd HH:mm:ss"))?;
            use chrono::TimeZone;
            tz.from_local_datetime(&local)
                .earliest()
                .map(|d| Some(rpa_core::Timestamp(d.timestamp_millis())))
                .ok_or_else(|| format!("{what}: {s} does not exist in {zone}"))
        };
        let hours = match &self.hours {
            Some((a, b)) => Some((time_of_day(a)?, time_of_day(b)?)),
            None => None,
        };
        let skip_dates = self
            .skip_dates
            .iter()
            .map(|d| {
                chrono::NaiveDate::parse_from_str(d, "%Y-%m-%d")
                    .map_err(|_| format!("skipDates: {d:?} is not yyyy-MM-dd"))
            })
            .collect::<Result<_, _>>()?;
        Ok(ScheduleSpec {
            name: self.name.clone(),
            process,
            arguments: std::sync::Arc::new(if self.arguments.is_null() {
                serde_json::json!({})
            } else {
                self.arguments.clone()
            }),
            rule,
            zone: zone.clone(),
            from: instant(&self.from, "from")?,
            until: instant(&self.until, "until")?,
            hours,
            skip_dates,
            missed: self.missed.unwrap_or_default(),
        })
    }
}

/// A listener account: the Basic credentials a business system sends to
/// `/listener/rpa/api/message`, and the user (with its grants) it acts as.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListenerDef {
    /// The Basic user name.
    pub name: String,
    /// The Basic password.
    pub password: String,
    /// The engine user it acts as (a user of this configuration or of the store).
    pub user: String,
}

impl std::fmt::Debug for ListenerDef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ListenerDef")
            .field("name", &self.name)
            .field("user", &self.user)
            .finish_non_exhaustive()
    }
}

/// A user.
#[derive(Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserDef {
    /// Login name.
    pub name: String,
    /// Password (needed to create the user; exports carry none).
    #[serde(default)]
    pub password: Option<String>,
    /// Role names.
    #[serde(default)]
    pub roles: Vec<String>,
    /// Names of processes granted.
    #[serde(default)]
    pub processes: Vec<String>,
    /// Folders granted: every process in them, present and future.
    #[serde(default)]
    pub folders: Vec<String>,
}

/// This server's parent: where it reports its run results, under which
/// name, signed with which secret (the parent's `children` entry).
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ParentDef {
    /// The parent's base URL.
    pub url: String,
    /// This server's name at the parent.
    pub name: String,
    /// The secret reports are signed with.
    pub secret: String,
}

impl std::fmt::Debug for ParentDef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ParentDef")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

/// A child whose reports this server accepts.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChildDef {
    /// Its name (its `parent.name`).
    pub name: String,
    /// The secret its reports are signed with (at least 16 characters).
    pub secret: String,
}

impl std::fmt::Debug for ChildDef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChildDef")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

impl std::fmt::Debug for UserDef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UserDef")
            .field("name", &self.name)
            .field("roles", &self.roles)
            .field("processes", &self.processes)
            .finish_non_exhaustive()
    }
}

/// A role: a name for a set of permissions.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RoleDef {
    /// Its unique name (what users' `roles` say).
    pub name: String,
    /// What it allows.
    pub permissions: Vec<rpa_core::model::Permission>,
}

/// A vendor.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct VendorDef {
    /// `supplierCode`.
    pub supplier_code: String,
    /// The shared secret robots prove with.
    pub secret: String,
}

/// A robot's profile.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RobotDef {
    /// The executor's id.
    pub robot_id: String,
    /// Vendor it must register with.
    pub vendor: Option<String>,
    /// Pool.
    #[serde(default = "default_pool")]
    pub pool: String,
    /// Labels.
    #[serde(default)]
    pub labels: Vec<String>,
    /// Attended robot.
    #[serde(default)]
    pub attended: bool,
    /// License content bound as it is (no expiry, no seats).
    pub license_content: Option<String>,
    /// The license (by name, see `licenses`) bound to it.
    pub license: Option<String>,
    /// The folders whose processes it runs (none: every folder).
    #[serde(default)]
    pub folders: Vec<String>,
}

fn default_pool() -> String {
    "default".into()
}

impl From<RobotDef> for RobotProfile {
    fn from(r: RobotDef) -> RobotProfile {
        RobotProfile {
            vendor: r.vendor,
            pool: r.pool,
            labels: r.labels,
            attended: r.attended,
            license: r.license_content,
            held: None,
            folders: r.folders,
        }
    }
}

/// A process definition (seed 000 field names where they exist).
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ProcessDef {
    /// `processName`.
    pub name: String,
    /// `Unattended`, `Attended` or `Queue`.
    #[serde(rename = "type")]
    #[schema(value_type = String)]
    pub process_type: ProcessType,
    /// Package version.
    #[serde(default = "default_version")]
    pub version: String,
    /// Where robots download the package (set by a package upload otherwise).
    #[serde(default)]
    pub package_uri: String,
    /// Argument schema.
    #[serde(default)]
    pub arguments: Vec<ArgumentDef>,
    /// Most jobs running at once (0 = no limit).
    #[serde(default = "one")]
    pub max_run_num: u32,
    /// Most successful runs a day (0 = no limit).
    #[serde(default)]
    pub max_day_num: u32,
    /// Most queue items waiting (0 = no limit).
    #[serde(default)]
    pub max_pending_items: u32,
    /// Dispatch priority (higher first).
    #[serde(default)]
    pub priority: i32,
    /// Retries after the first attempt.
    #[serde(default = "two")]
    pub max_retries: u32,
    /// First retry back-off in milliseconds (doubles per retry, capped at 60 s).
    #[serde(default = "thousand")]
    pub retry_backoff_ms: u64,
    /// Only robots of this vendor.
    pub vendor: Option<String>,
    /// Only robots in this pool.
    pub pool: Option<String>,
    /// Robots must carry these labels.
    #[serde(default)]
    pub labels: Vec<String>,
    /// Fault a job not finished this long after creation.
    pub expiration_ms: Option<u64>,
    /// Ask robots to record the screen.
    #[serde(default)]
    pub video_record: bool,
    /// The workflow (by name) whose tickets take the pause steps of its
    /// runs: a robot that reports a pause step opens one, and the job
    /// resumes with the person's decision when it ends.
    pub pause_workflow: Option<String>,
    /// A Queue process's trigger: its items wait, and get jobs when
    /// `minItems` wait, at most `maxConcurrent` at once (without one, each
    /// item starts its own job as it is added).
    pub queue_trigger: Option<QueueTriggerDef>,
    /// The pipeline (by name) this process's jobs run: `startJob` and
    /// schedules start a run of it, the job's arguments its inputs.
    pub pipeline: Option<String>,
    /// The folder it is in for UiPath clients (default: `Default`).
    pub folder: Option<String>,
    /// A Queue process's item references are unique within it (default);
    /// `false`: a reference is a label items may share.
    #[serde(default = "yes")]
    pub unique_references: bool,
    /// Its region, for the run analysis.
    pub region: Option<String>,
    /// The business scenario it automates, for the scenario analysis.
    pub scenario: Option<String>,
    /// The business domain it belongs to.
    pub business_domain: Option<String>,
    /// Minutes of a person's work a successful run saves (the analysis's saved hours).
    #[serde(default)]
    pub saved_minutes: u32,
}

/// An OpenID Connect provider the console signs in with (see
/// [`crate::sso`]): the authorisation code flow with PKCE.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct OidcDef {
    /// The provider's issuer URL (its discovery document is under it).
    pub issuer: String,
    /// This server's client id there.
    pub client_id: String,
    /// Its client secret (none: a public client; PKCE protects the code).
    #[serde(default)]
    pub client_secret: Option<String>,
    /// Scopes asked for (default `openid profile`).
    #[serde(default = "default_scopes")]
    pub scopes: String,
    /// The userinfo claim holding the user name (default `preferred_username`).
    #[serde(default = "default_username_claim")]
    pub username_claim: String,
    /// The userinfo claim listing the user's groups (default `groups`).
    #[serde(default = "default_groups_claim")]
    pub groups_claim: String,
    /// The login form's button (default "Sign in with single sign-on").
    #[serde(default = "default_sso_label")]
    pub label: String,
    /// What each group's members get; a user in no listed group is refused.
    pub groups: Vec<rpa_core::identity::GroupMapping>,
}

impl std::fmt::Debug for OidcDef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OidcDef")
            .field("issuer", &self.issuer)
            .field("client_id", &self.client_id)
            .field("client_secret", &self.client_secret.as_ref().map(|_| "***"))
            .finish_non_exhaustive()
    }
}

fn default_scopes() -> String {
    "openid profile".into()
}
fn default_username_claim() -> String {
    "preferred_username".into()
}
fn default_groups_claim() -> String {
    "groups".into()
}
fn default_sso_label() -> String {
    "Sign in with single sign-on".into()
}

/// The organisation's LDAP directory (see [`rpa_core::identity`]).
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct LdapDef {
    /// `ldap://host:389` or `ldaps://host:636`.
    pub url: String,
    /// The account the server searches with.
    pub bind_dn: String,
    /// Its password (never logged nor shown).
    pub bind_password: String,
    /// Where the users are (`ou=people,dc=example,dc=com`).
    pub users_base: String,
    /// Which entries are users (default `(objectClass=inetOrgPerson)`).
    #[serde(default = "default_user_filter")]
    pub user_filter: String,
    /// The attribute holding the login (default `uid`).
    #[serde(default = "default_login_attribute")]
    pub login_attribute: String,
    /// Users also matching this filter are disabled (e.g.
    /// `(employeeType=disabled)`); none: every listed user is enabled.
    #[serde(default)]
    pub disabled_filter: Option<String>,
    /// Where the groups are.
    pub groups_base: String,
    /// Which entries are groups (default `(objectClass=groupOfNames)`).
    #[serde(default = "default_group_filter")]
    pub group_filter: String,
    /// The attribute listing a group's members' DNs (default `member`).
    #[serde(default = "default_member_attribute")]
    pub member_attribute: String,
    /// What each group's members get; a user in no listed group is not a user here.
    pub groups: Vec<rpa_core::identity::GroupMapping>,
    /// Seconds between syncs (default 300).
    #[serde(default = "default_sync_seconds")]
    pub sync_seconds: u64,
    /// Seconds a directory has to answer (default 10).
    #[serde(default = "default_ldap_timeout")]
    pub timeout_seconds: u64,
}

impl std::fmt::Debug for LdapDef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LdapDef")
            .field("url", &self.url)
            .field("bind_dn", &self.bind_dn)
            .field("bind_password", &"***")
            .field("users_base", &self.users_base)
            .field("groups_base", &self.groups_base)
            .finish_non_exhaustive()
    }
}

fn default_user_filter() -> String {
    "(objectClass=inetOrgPerson)".into()
}
fn default_login_attribute() -> String {
    "uid".into()
}
fn default_group_filter() -> String {
    "(objectClass=groupOfNames)".into()
}
fn default_member_attribute() -> String {
    "member".into()
}
fn default_sync_seconds() -> u64 {
    300
}
fn default_ldap_timeout() -> u64 {
    10
}

/// A queue trigger ([`rpa_core::trigger`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct QueueTriggerDef {
    /// New items that must wait before a round's first job starts (≥ 1).
    pub min_items: u32,
    /// Most trigger jobs pending or running at once (0: none, the items wait
    /// for transactions).
    pub max_concurrent: u32,
}

impl From<QueueTriggerDef> for QueueTrigger {
    fn from(d: QueueTriggerDef) -> QueueTrigger {
        QueueTrigger {
            min_items: d.min_items,
            max_concurrent: d.max_concurrent,
        }
    }
}

impl From<QueueTrigger> for QueueTriggerDef {
    fn from(t: QueueTrigger) -> QueueTriggerDef {
        QueueTriggerDef {
            min_items: t.min_items,
            max_concurrent: t.max_concurrent,
        }
    }
}

/// One argument of a process.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ArgumentDef {
    /// Name.
    pub name: String,
    /// Id (defaults to the name).
    pub id: Option<String>,
    /// `boolean`, `string`, `int` or `other`.
    #[serde(rename = "type")]
    #[schema(value_type = String)]
    pub arg_type: ArgType,
    /// Must `startJob` give it? (`true`/`false`, also as strings)
    #[serde(default, deserialize_with = "bool_or_string")]
    pub required: bool,
    /// Is its value a secret, never echoed back (masked in listener answers)?
    #[serde(default, deserialize_with = "bool_or_string")]
    pub secret: bool,
}

fn bool_or_string<'de, D: serde::Deserializer<'de>>(d: D) -> Result<bool, D::Error> {
    match serde_json::Value::deserialize(d)? {
        serde_json::Value::Bool(b) => Ok(b),
        serde_json::Value::String(s) if s == "true" => Ok(true),
        serde_json::Value::String(s) if s == "false" => Ok(false),
        _ => Err(serde::de::Error::custom("required must be true or false")),
    }
}

fn default_version() -> String {
    "1.0.0".into()
}
fn yes() -> bool {
    true
}

fn one() -> u32 {
    1
}
fn two() -> u32 {
    2
}
fn thousand() -> u64 {
    1000
}

impl From<ProcessDef> for ProcessSpec {
    fn from(d: ProcessDef) -> ProcessSpec {
        ProcessSpec {
            name: d.name,
            process_type: d.process_type,
            version: d.version,
            package_uri: d.package_uri,
            arguments: d
                .arguments
                .into_iter()
                .map(|a| ArgumentSpec {
                    id: a.id.unwrap_or_else(|| a.name.clone()),
                    name: a.name,
                    arg_type: a.arg_type,
                    required: a.required,
                    secret: a.secret,
                })
                .collect(),
            max_run_num: d.max_run_num,
            max_day_num: d.max_day_num,
            max_pending_items: d.max_pending_items,
            retry: RetryPolicy {
                max_retries: d.max_retries,
                backoff_ms: d.retry_backoff_ms,
                backoff_max_ms: 60_000,
            },
            priority: d.priority,
            requirements: RobotRequirements {
                vendor: d.vendor,
                pool: d.pool,
                labels: d.labels,
            },
            expiration_ms: d.expiration_ms,
            video_record: d.video_record,
            pause_workflow: d.pause_workflow,
            trigger: d.queue_trigger.map(Into::into),
            pipeline: d.pipeline,
            folder: d.folder,
            package_pin: None,
            unique_references: d.unique_references,
            attributes: rpa_core::analysis::Attributes {
                region: d.region,
                scenario: d.scenario,
                business_domain: d.business_domain,
                saved_minutes: d.saved_minutes,
            },
        }
    }
}

impl Config {
    /// Parses a JSON configuration.
    pub fn parse(text: &str) -> Result<Config, String> {
        let c: Config = serde_json::from_str(text).map_err(|e| format!("configuration: {e}"))?;
        if let Some(c) = c.children.iter().find(|c| c.secret.len() < 16) {
            return Err(format!(
                "configuration: child {}: a secret has at least 16 characters",
                c.name
            ));
        }
        if let Some(p) = &c.parent {
            if p.secret.len() < 16 {
                return Err("configuration: parent: a secret has at least 16 characters".into());
            }
            if !(p.url.starts_with("http://") || p.url.starts_with("https://")) {
                return Err("configuration: parent: url must be an http(s) URL".into());
            }
        }
        Ok(c)
    }

    /// Creates what is missing; existing users and processes are left as they are.
    pub async fn apply<S: Store>(&self, engine: &Engine<S>) -> Result<(), Error> {
        self.apply_as(engine, Actor::System).await
    }

    /// [`Config::apply`] done by `actor` (an import over the administration
    /// API): what it may not do is refused, and the audit log names it. A
    /// new user without a password is refused before anything is created.
    pub async fn apply_as<S: Store>(&self, engine: &Engine<S>, actor: Actor) -> Result<(), Error> {
        for u in &self.users {
            if u.password.is_none() && engine.store().user_by_name(&u.name).await?.is_none() {
                return Err(Error::InvalidArgument(format!(
                    "user {}: a password is needed to create the user (exports carry none); nothing was imported",
                    u.name
                )));
            }
        }
        if let Some(a) = &self.admin {
            let password = a
                .password
                .as_deref()
                .ok_or_else(|| Error::InvalidArgument("admin: a password is needed".into()))?;
            engine.ensure_admin(&a.name, password).await?;
        }
        let existing = engine.processes().await?;
        let mut by_name = std::collections::HashMap::new();
        for p in existing {
            by_name.insert(p.spec.name.clone(), p.key);
        }
        for def in &self.processes {
            if !by_name.contains_key(&def.name) {
                let p = engine.create_process(actor, def.clone().into()).await?;
                by_name.insert(def.name.clone(), p.key);
            }
        }
        for v in &self.vendors {
            engine.register_vendor(actor, &v.supplier_code, &v.secret).await?;
        }
        for l in &self.licenses {
            let terms = l.terms(engine).map_err(Error::InvalidArgument)?;
            match engine.license(&l.name).await {
                Ok(old) if !old.retired && old.terms == terms => {}
                Ok(old) if !old.retired => {
                    engine.renew_license(actor, &l.name, terms).await?;
                }
                _ => {
                    engine.create_license(actor, &l.name, terms).await?;
                }
            }
        }
        for c in &self.capabilities {
            let spec = c.spec().map_err(|e| Error::InvalidArgument(e.to_string()))?;
            match engine.capability(&c.name).await? {
                Some(old) if !old.retired && old.spec == spec => {}
                _ => {
                    engine.register_capability(actor, &c.name, spec).await?;
                }
            }
        }
        for r in &self.robots {
            engine.configure_robot(actor, &r.robot_id, r.clone().into()).await?;
            if let Some(l) = &r.license {
                engine.bind_license_to(actor, l, &r.robot_id).await?;
            }
        }
        for r in &self.roles {
            if engine.store().role_by_name(&r.name).await?.is_none() {
                engine
                    .create_role(actor, &r.name, r.permissions.iter().copied().collect())
                    .await?;
            }
        }
        for u in &self.users {
            let mut grants = Vec::new();
            for name in &u.processes {
                grants.push(
                    *by_name
                        .get(name)
                        .ok_or_else(|| Error::InvalidArgument(format!("user {}: no process named {name}", u.name)))?,
                );
            }
            match engine.store().user_by_name(&u.name).await? {
                Some(_) => {
                    for g in grants {
                        engine.grant(actor, &u.name, g).await?;
                    }
                }
                None => {
                    let roles = u.roles.clone();
                    engine
                        .create_user(
                            actor,
                            NewUser {
                                name: u.name.clone(),
                                password: u.password.clone().unwrap_or_default(),
                                roles,
                                grants,
                            },
                        )
                        .await?;
                }
            }
            for folder in &u.folders {
                engine.grant_folder(actor, &u.name, folder).await?;
            }
        }
        if !self.schedules.is_empty() {
            let existing: std::collections::HashSet<String> =
                engine.schedules().await?.into_iter().map(|s| s.spec.name).collect();
            let zone = engine.config().time_zone.name().to_owned();
            for def in self.schedules.iter().filter(|d| !existing.contains(&d.name)) {
                let process = engine
                    .processes()
                    .await?
                    .into_iter()
                    .find(|p| p.spec.name == def.process)
                    .ok_or_else(|| {
                        Error::InvalidArgument(format!("schedule {}: no process named {}", def.name, def.process))
                    })?;
                let owner_name = def
                    .owner
                    .clone()
                    .or_else(|| self.admin.as_ref().map(|a| a.name.clone()))
                    .ok_or_else(|| Error::InvalidArgument(format!("schedule {}: give an owner", def.name)))?;
                let owner = engine.store().user_by_name(&owner_name).await?.ok_or_else(|| {
                    Error::InvalidArgument(format!("schedule {}: no user named {owner_name}", def.name))
                })?;
                let spec = def
                    .spec(process.id, &zone)
                    .map_err(|e| Error::InvalidArgument(format!("schedule {}: {e}", def.name)))?;
                engine.create_schedule(actor, &owner, spec).await?;
            }
        }
        if let Some(d) = &self.flow.directory {
            let stored = engine.configured_directory().await?;
            if (&stored.users, &stored.depts, &stored.roles) != (&d.users, &d.depts, &d.roles) {
                engine.sync_directory(actor, d.clone()).await?;
            }
        }
        if !self.flow.workflows.is_empty() {
            let creator = self.admin.as_ref().map_or("admin", |a| a.name.as_str());
            let stored = engine.workflows().await?;
            for def in &self.flow.workflows {
                if stored.iter().any(|w| &*w.definition == def) {
                    continue;
                }
                engine
                    .save_workflow(actor, creator, def.clone())
                    .await
                    .map_err(|e| Error::InvalidArgument(format!("workflow {}: {e}", def.name)))?;
            }
        }
        if !self.pipelines.is_empty() {
            let stored = engine.pipelines().await?;
            for def in &self.pipelines {
                if stored.iter().any(|p| p.plan.def == *def) {
                    continue;
                }
                engine
                    .save_pipeline(actor, def.clone())
                    .await
                    .map_err(|e| Error::InvalidArgument(format!("pipeline {}: {e}", def.name)))?;
            }
        }
        for def in &self.pools {
            engine
                .save_pool(actor, def.spec())
                .await
                .map_err(|e| Error::InvalidArgument(format!("pool {}: {e}", def.name)))?;
        }
        for t in &self.uipath.personal_access_tokens {
            if t.token.len() < 16 {
                return Err(Error::InvalidArgument(format!(
                    "personal access token of {}: at least 16 characters",
                    t.user
                )));
            }
            let user =
                engine.store().user_by_name(&t.user).await?.ok_or_else(|| {
                    Error::InvalidArgument(format!("personal access token: no user named {}", t.user))
                })?;
            engine
                .install_token(&user, &t.token, "the configuration", 365 * 24 * 3_600_000)
                .await?;
        }
        for c in &self.uipath.clients {
            if engine.store().user_by_name(&c.user).await?.is_none() {
                return Err(Error::InvalidArgument(format!(
                    "uipath client {}: no user named {}",
                    c.client_id, c.user
                )));
            }
        }
        for l in &self.listeners {
            if engine.store().user_by_name(&l.user).await?.is_none() {
                return Err(Error::InvalidArgument(format!(
                    "listener {}: no user named {}",
                    l.name, l.user
                )));
            }
        }
        Ok(())
    }

    /// The UiPath OAuth clients, for [`crate::HttpSettings::uipath_clients`].
    pub fn uipath_clients(&self) -> Vec<crate::uipath::UiPathClient> {
        self.uipath
            .clients
            .iter()
            .map(|c| {
                crate::uipath::UiPathClient::new(&c.client_id, &c.client_secret, c.refresh_token.as_deref(), &c.user)
            })
            .collect()
    }

    /// How long UiPath tokens last, for [`crate::HttpSettings::uipath_token_ttl_ms`].
    pub fn uipath_token_ttl_ms(&self) -> u64 {
        self.uipath.token_ttl_seconds.unwrap_or(3600).saturating_mul(1000)
    }

    /// The workflow API's callers, for [`crate::HttpSettings::flow_apps`].
    pub fn flow_apps(&self) -> Vec<crate::loonflow::FlowApp> {
        self.flow.apps.clone()
    }

    /// The children whose reports this server accepts, for
    /// [`crate::HttpSettings::children`].
    pub fn child_accounts(&self) -> Vec<crate::federation::ChildAccount> {
        self.children
            .iter()
            .map(|c| crate::federation::ChildAccount {
                name: c.name.clone(),
                secret: c.secret.clone(),
            })
            .collect()
    }

    /// The listener accounts, for [`crate::HttpSettings::listeners`].
    pub fn listener_accounts(&self) -> Vec<crate::listener::ListenerAccount> {
        self.listeners
            .iter()
            .map(|l| crate::listener::ListenerAccount::new(&l.name, &l.password, &l.user))
            .collect()
    }
}
