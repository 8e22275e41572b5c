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
//!   "robots": [ { "robotId": "robot-1", "pool": "default", "licenseContent": "LIC-1" } ]
//! }
//! ```

use rpa_core::engine::NewUser;
use rpa_core::error::Error;
use rpa_core::model::{
    Actor, ArgType, ArgumentSpec, ProcessSpec, ProcessType, RetryPolicy, RobotProfile, RobotRequirements,
};
use rpa_core::{Engine, Store};
use serde::Deserialize;

/// The whole file.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The administrator (created with every permission if missing).
    pub admin: Option<UserDef>,
    /// Processes, created when no process of that name exists.
    #[serde(default)]
    pub processes: Vec<ProcessDef>,
    /// Users, created when missing; `processes` are granted by name.
    #[serde(default)]
    pub users: Vec<UserDef>,
    /// Robot vendors.
    #[serde(default)]
    pub vendors: Vec<VendorDef>,
    /// Robot profiles and licenses.
    #[serde(default)]
    pub robots: Vec<RobotDef>,
    /// AutomationEdge listener accounts (seed 003 Basic credentials).
    #[serde(default)]
    pub listeners: Vec<ListenerDef>,
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
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserDef {
    /// Login name.
    pub name: String,
    /// Password.
    pub password: String,
    /// Role names.
    #[serde(default)]
    pub roles: Vec<String>,
    /// Names of processes granted.
    #[serde(default)]
    pub processes: Vec<String>,
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
    /// Bound license.
    pub license_content: Option<String>,
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
        }
    }
}

impl Config {
    /// Parses a JSON configuration.
    pub fn parse(text: &str) -> Result<Config, String> {
        serde_json::from_str(text).map_err(|e| format!("configuration: {e}"))
    }

    /// Creates what is missing; existing users and processes are left as they are.
    pub async fn apply<S: Store>(&self, engine: &Engine<S>) -> Result<(), Error> {
        if let Some(a) = &self.admin {
            engine.ensure_admin(&a.name, &a.password).await?;
        }
        let existing = engine.processes().await?;
        let mut by_name = std::collections::HashMap::new();
        for p in existing {
            by_name.insert(p.spec.name.clone(), p.key);
        }
        for def in &self.processes {
            if !by_name.contains_key(&def.name) {
                let p = engine.create_process(Actor::System, def.clone().into()).await?;
                by_name.insert(def.name.clone(), p.key);
            }
        }
        for v in &self.vendors {
            engine
                .register_vendor(Actor::System, &v.supplier_code, &v.secret)
                .await?;
        }
        for r in &self.robots {
            engine
                .configure_robot(Actor::System, &r.robot_id, r.clone().into())
                .await?;
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
                        engine.grant(Actor::System, &u.name, g).await?;
                    }
                }
                None => {
                    let roles = u.roles.clone();
                    engine
                        .create_user(
                            Actor::System,
                            NewUser {
                                name: u.name.clone(),
                                password: u.password.clone(),
                                roles,
                                grants,
                            },
                        )
                        .await?;
                }
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

    /// The listener accounts, for [`crate::HttpSettings::listeners`].
    pub fn listener_accounts(&self) -> Vec<crate::listener::ListenerAccount> {
        self.listeners
            .iter()
            .map(|l| crate::listener::ListenerAccount::new(&l.name, &l.password, &l.user))
            .collect()
    }
}
