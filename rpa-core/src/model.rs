//! The one model behind all five documents (DESIGN §2).
//!
//! Every entity has a serial id and a 32-hex [`Key`]. Versioned entities carry
//! `version`: the number of commits that wrote them; a commit succeeds only if
//! the stored version is the one the writer read (see [`crate::store`]).

use std::collections::BTreeSet;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::ids::*;
use crate::time::Timestamp;

/// Seed 000 process type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ProcessType {
    /// Runs on an unattended robot.
    Unattended,
    /// Runs on an attended robot (a person's machine).
    Attended,
    /// Fed by queue items: each item runs as one job on an unattended robot.
    Queue,
}

impl ProcessType {
    /// The word seed 000 uses.
    pub fn as_str(self) -> &'static str {
        match self {
            ProcessType::Unattended => "Unattended",
            ProcessType::Attended => "Attended",
            ProcessType::Queue => "Queue",
        }
    }
}

/// Value type of a process argument (seed 000 §3.2: boolean, string, int, other).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[allow(missing_docs)]
pub enum ArgType {
    Boolean,
    String,
    Int,
    Other,
}

impl ArgType {
    /// The word seed 000 uses.
    pub fn as_str(self) -> &'static str {
        match self {
            ArgType::Boolean => "boolean",
            ArgType::String => "string",
            ArgType::Int => "int",
            ArgType::Other => "other",
        }
    }
}

/// One entry of a process's argument schema.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ArgumentSpec {
    /// Argument name (the key callers use in `params`).
    pub name: String,
    /// Argument id (also accepted as the key in `params`).
    pub id: String,
    /// Value type.
    #[serde(rename = "type")]
    pub arg_type: ArgType,
    /// Whether `startJob` must supply it.
    pub required: bool,
    /// Whether its value is a secret: never echoed back (seed 003 masks it).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub secret: bool,
}

/// How failed work is tried again.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RetryPolicy {
    /// Extra attempts after the first (0 = never retried).
    pub max_retries: u32,
    /// Back-off before the first retry; doubles per retry.
    pub backoff_ms: u64,
    /// Upper bound of the back-off.
    pub backoff_max_ms: u64,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_retries: 2,
            backoff_ms: 1_000,
            backoff_max_ms: 60_000,
        }
    }
}

impl RetryPolicy {
    /// Back-off before attempt `next_attempt` (2 = first retry).
    pub fn backoff(&self, next_attempt: u32) -> u64 {
        let shift = next_attempt.saturating_sub(2).min(32);
        self.backoff_ms.saturating_mul(1u64 << shift).min(self.backoff_max_ms)
    }
}

/// Which robots may run a process.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RobotRequirements {
    /// Only robots of this vendor (supplier code).
    pub vendor: Option<String>,
    /// Only robots in this pool.
    pub pool: Option<String>,
    /// Robots must carry every one of these labels.
    pub labels: Vec<String>,
}

/// What a process is: set by an administrator, changed rarely.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProcessSpec {
    /// Display name.
    pub name: String,
    /// Unattended, Attended or Queue.
    pub process_type: ProcessType,
    /// Package version the robots run.
    pub version: String,
    /// Where robots download the package (`packageDownloadUri`).
    pub package_uri: String,
    /// Argument schema.
    pub arguments: Vec<ArgumentSpec>,
    /// Most jobs running at once; 0 = no limit.
    pub max_run_num: u32,
    /// Most successful runs per calendar day; 0 = no limit.
    pub max_day_num: u32,
    /// Most queue items waiting (`New`); 0 = no limit.
    pub max_pending_items: u32,
    /// Retry policy for jobs (robot loss, application errors) and queue items.
    pub retry: RetryPolicy,
    /// Dispatch priority: higher first.
    pub priority: i32,
    /// Which robots may run it.
    pub requirements: RobotRequirements,
    /// A job not finished this long after creation is Faulted (seed 003 expiration).
    pub expiration_ms: Option<u64>,
    /// Ask robots to record the screen.
    pub video_record: bool,
    /// The workflow (by name) whose tickets take this process's pause
    /// steps: a robot that reports a pause step opens one, and the job
    /// resumes when it ends (see [`crate::flow`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pause_workflow: Option<String>,
    /// A Queue process's trigger: its items wait and get jobs in rounds
    /// (see [`crate::trigger`]); none: each item starts its own job.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trigger: Option<crate::trigger::QueueTrigger>,
    /// The pipeline (by name) its jobs run: such a job runs no robot of its
    /// own but a run of that pipeline, its arguments the run's inputs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pipeline: Option<String>,
    /// The folder it is in, for clients that organise processes in folders
    /// (UiPath's); none: the default folder.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub folder: Option<String>,
    /// The package version it is pinned to (see [`crate::package`]); none:
    /// it follows the latest version uploaded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub package_pin: Option<String>,
    /// A Queue process's items have references unique within it (a repeat
    /// is refused); when false, a reference is a label items may share.
    #[serde(default = "unique_by_default", skip_serializing_if = "is_true")]
    pub unique_references: bool,
    /// Its region, scenario, business domain and the minutes a successful
    /// run saves, for the run analysis (see [`crate::analysis`]).
    #[serde(default, skip_serializing_if = "crate::analysis::Attributes::is_empty")]
    pub attributes: crate::analysis::Attributes,
}

fn unique_by_default() -> bool {
    true
}

fn is_true(b: &bool) -> bool {
    *b
}

impl ProcessSpec {
    /// A spec with sensible defaults: one run at a time, no day limit, default retry.
    pub fn new(name: impl Into<String>, process_type: ProcessType) -> Self {
        ProcessSpec {
            name: name.into(),
            process_type,
            version: "1.0.0".into(),
            package_uri: String::new(),
            arguments: Vec::new(),
            max_run_num: 1,
            max_day_num: 0,
            max_pending_items: 0,
            retry: RetryPolicy::default(),
            priority: 0,
            requirements: RobotRequirements::default(),
            expiration_ms: None,
            video_record: false,
            pause_workflow: None,
            trigger: None,
            pipeline: None,
            folder: None,
            package_pin: None,
            unique_references: true,
            attributes: crate::analysis::Attributes::default(),
        }
    }
}

/// A process and its live counters.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Process {
    /// Serial id.
    pub id: ProcessId,
    /// 32-hex key (seed 000 `processId`).
    pub key: Key,
    /// Commit version.
    pub version: u64,
    /// The definition.
    pub spec: Arc<ProcessSpec>,
    /// Jobs in Running or Stopping (seed 000 `currentRunNum`).
    pub running: u32,
    /// Calendar day `day_successes` counts.
    pub day: i64,
    /// Successful runs on `day`.
    pub day_successes: u32,
    /// Queue items in state New.
    pub pending_items: u32,
    /// Creation time.
    pub created_at: Timestamp,
}

impl Process {
    /// Successful runs today.
    pub fn successes_on(&self, day: i64) -> u32 {
        if self.day == day { self.day_successes } else { 0 }
    }
}

/// Job states (seed 000 §3.3 words, plus Stopping between a stop request and the robot's answer).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[allow(missing_docs)]
pub enum JobState {
    Pending,
    Running,
    Stopping,
    Successful,
    Faulted,
    Stopped,
    Canceled,
    /// Waiting for a person at a pause step (a ticket of the process's
    /// pause workflow): it holds no robot and no slot, and its deadline
    /// does not run; the ticket's end makes it Pending again.
    Suspended,
}

impl JobState {
    /// All states.
    pub const ALL: [JobState; 8] = [
        JobState::Pending,
        JobState::Running,
        JobState::Stopping,
        JobState::Successful,
        JobState::Faulted,
        JobState::Stopped,
        JobState::Canceled,
        JobState::Suspended,
    ];
    /// The word for this state.
    pub fn as_str(self) -> &'static str {
        match self {
            JobState::Pending => "Pending",
            JobState::Running => "Running",
            JobState::Stopping => "Stopping",
            JobState::Successful => "Successful",
            JobState::Faulted => "Faulted",
            JobState::Stopped => "Stopped",
            JobState::Canceled => "Canceled",
            JobState::Suspended => "Suspended",
        }
    }
    /// Parses the word for a state.
    pub fn parse(s: &str) -> Option<JobState> {
        JobState::ALL.into_iter().find(|st| st.as_str() == s)
    }
    /// No further transition is possible.
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            JobState::Successful | JobState::Faulted | JobState::Stopped | JobState::Canceled
        )
    }
    /// Holds a `maxRunNum` slot.
    pub fn is_active(self) -> bool {
        matches!(self, JobState::Running | JobState::Stopping)
    }
}

/// One run of a process.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Job {
    /// Serial id; also the age order for dispatch.
    pub id: JobId,
    /// 32-hex key (seed 000 `jobId`, seed 001 `runInstanceId`).
    pub key: Key,
    /// Commit version.
    pub version: u64,
    /// The process it runs.
    pub process: ProcessId,
    /// Who started it.
    pub user: UserId,
    /// Their name, for Execute's `userName`.
    pub user_name: Arc<str>,
    /// State.
    pub state: JobState,
    /// Dispatch priority: higher first.
    pub priority: i32,
    /// Arguments (a JSON object).
    pub arguments: Arc<Value>,
    /// The queue item it works, for Queue processes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub queue_item: Option<QueueItemId>,
    /// The robot running it (or that last ran it while it is stopping).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub robot: Option<RobotId>,
    /// The robot connection it was dispatched on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connect: Option<Key>,
    /// Attempt number, from 1.
    pub attempt: u32,
    /// Not dispatched before this time (retry back-off, defer-until).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub not_before: Option<Timestamp>,
    /// Faulted if not finished by then.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deadline: Option<Timestamp>,
    /// Seed 000 `jobNumber`.
    pub job_number: i64,
    /// The process's package version when the job was started: the one it
    /// runs (seed 000 `queryProcessJob.version`). `None` for jobs stored
    /// before versions were recorded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub package_version: Option<Arc<str>>,
    /// Creation time.
    pub created_at: Timestamp,
    /// Start of the current (or last) attempt.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at: Option<Timestamp>,
    /// When it reached a terminal state.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ended_at: Option<Timestamp>,
    /// Last checkpoint the robot reported: a fail-over run gets it back.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checkpoint: Option<Arc<Value>>,
    /// The current step: the number of the last step reported, or of
    /// checkpoints reported without a step number.
    pub steps: u32,
    /// The steps the robot reported, in order (seed 000 `jobStatus`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub step_records: Vec<JobStep>,
    /// Output values the robot reported with its finish.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outputs: Option<Arc<Value>>,
    /// Seed 001 `errorCode` of the last failure.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_code: Option<i32>,
    /// Why it ended, when not successfully.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<Arc<str>>,
    /// Ended without the robot's confirmation (Kill, expiration): the robot's late finish is accepted.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub forced: bool,
    /// Its own retry policy, instead of its process's (a listener request's `Retry`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry: Option<RetryPolicy>,
    /// Each attempt's window, ms: an attempt that expires is tried again
    /// (after the back-off, with a fresh deadline) while attempts remain.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub window_ms: Option<u64>,
    /// Started by its process's queue trigger: counted among the
    /// trigger's active jobs until it ends.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub triggered: bool,
    /// The pipeline run whose step it is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pipeline_run: Option<i64>,
    /// The pipeline run it is (a pipeline process's job).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub runs_pipeline: Option<i64>,
    /// The one robot that may run it (UiPath's `Specific` strategy); none:
    /// any robot the process's requirements allow.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pinned: Option<RobotId>,
}

/// Queue item states (seed 000 §3.6 words plus the orchestrator states of DESIGN §3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[allow(missing_docs)]
pub enum ItemState {
    New,
    InProgress,
    Successful,
    Faulted,
    Retried,
    Abandoned,
    Deleted,
}

impl ItemState {
    /// The core's word (seed 000 renders `Deleted` as `Delete`).
    pub fn as_str(self) -> &'static str {
        match self {
            ItemState::New => "New",
            ItemState::InProgress => "InProgress",
            ItemState::Successful => "Successful",
            ItemState::Faulted => "Faulted",
            ItemState::Retried => "Retried",
            ItemState::Abandoned => "Abandoned",
            ItemState::Deleted => "Deleted",
        }
    }
    /// No further transition is possible.
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            ItemState::Successful | ItemState::Retried | ItemState::Abandoned | ItemState::Deleted
        )
    }
}

/// A unit of work in a Queue process.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QueueItem {
    /// Serial id.
    pub id: QueueItemId,
    /// 32-hex key (seed 000 `key`).
    pub key: Key,
    /// Commit version.
    pub version: u64,
    /// The Queue process.
    pub process: ProcessId,
    /// State.
    pub state: ItemState,
    /// Priority (copied to its job).
    pub priority: i32,
    /// Unique reference within the process, if given.
    pub reference: Option<String>,
    /// The reference of an item of a process whose references are not
    /// unique ([`ProcessSpec::unique_references`]): a label, not indexed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shared_reference: Option<String>,
    /// Content (a JSON object), passed to the job as its arguments.
    pub content: Arc<Value>,
    /// How many times it was retried before (0 for the first).
    pub retry_count: u32,
    /// The item this one retries.
    pub retry_of: Option<QueueItemId>,
    /// The job that works it.
    pub job: Option<JobId>,
    /// Not worked before this time.
    pub defer_until: Option<Timestamp>,
    /// Its job is Faulted if not done by this time.
    pub deadline: Option<Timestamp>,
    /// Creation time.
    pub created_at: Timestamp,
    /// When it reached a terminal state or Faulted.
    pub ended_at: Option<Timestamp>,
    /// What the one working it last said of its progress (a transaction's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub progress: Option<String>,
    /// What working it produced (a transaction's output).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output: Option<Arc<Value>>,
    /// When it is at risk of missing its SLA (UiPath's `RiskSlaDate`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub risk_sla: Option<Timestamp>,
}

impl QueueItem {
    /// Its reference, unique or shared.
    pub fn any_reference(&self) -> Option<&str> {
        self.reference.as_deref().or(self.shared_reference.as_deref())
    }
}

/// Robot states (UiPath session words, DESIGN §3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[allow(missing_docs)]
pub enum RobotState {
    Disconnected,
    Available,
    Busy,
    Unresponsive,
}

impl RobotState {
    /// The word for this state.
    pub fn as_str(self) -> &'static str {
        match self {
            RobotState::Disconnected => "Disconnected",
            RobotState::Available => "Available",
            RobotState::Busy => "Busy",
            RobotState::Unresponsive => "Unresponsive",
        }
    }
}

/// What an administrator says about a robot.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RobotProfile {
    /// Vendor (supplier code) the robot must register with.
    pub vendor: Option<String>,
    /// Pool.
    pub pool: String,
    /// Labels.
    pub labels: Vec<String>,
    /// Attended robots run Attended processes; unattended ones the rest.
    pub attended: bool,
    /// Bound license content (sent with SendLicense).
    pub license: Option<String>,
    /// The license record that content comes from, when it comes from one
    /// (see [`crate::license`]); bound and unbound through the licenses.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub held: Option<crate::license::Held>,
    /// The folders whose processes it runs (UiPath's robots in folders);
    /// none: every folder.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub folders: Vec<String>,
}

impl RobotProfile {
    /// Whether it serves `folder` (none: the default folder).
    pub fn serves(&self, folder: Option<&str>) -> bool {
        let folder = crate::asset::folder_name(folder);
        self.folders.is_empty() || self.folders.iter().any(|f| f == folder)
    }
}

impl Default for RobotProfile {
    fn default() -> Self {
        RobotProfile {
            vendor: None,
            pool: "default".into(),
            labels: Vec::new(),
            attended: false,
            license: None,
            held: None,
            folders: Vec::new(),
        }
    }
}

/// An executor (seed 001), identified by the id it connects with.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Robot {
    /// Serial id.
    pub id: RobotId,
    /// 32-hex key.
    pub key: Key,
    /// Commit version.
    pub version: u64,
    /// The executor's own id (`/robothub/{id}`, header `robotId`).
    pub code: Arc<str>,
    /// Administrator's settings.
    pub profile: Arc<RobotProfile>,
    /// Executor version it registered with.
    pub robot_version: Option<Arc<str>>,
    /// State.
    pub state: RobotState,
    /// Current connection (`robotConnectId`).
    pub connect: Option<Key>,
    /// The job it runs.
    pub job: Option<JobId>,
    /// Last registration or heartbeat.
    pub last_seen: Timestamp,
    /// Becomes Unresponsive (and loses its job) if silent until then.
    pub deadline: Option<Timestamp>,
    /// Registered but not heard from since: it gets work only after a
    /// heartbeat has said what it is running (a robot that reconnects may
    /// still be busy with a run the engine gave away).
    pub awaiting_heartbeat: bool,
    /// The node whose socket holds the current connection (WebSocket): the
    /// connection dies with that node. `None` for HTTP robots, whose calls
    /// may reach any node.
    #[serde(default)]
    pub node: Option<u64>,
    /// Declared at Register (`capabilities: ["checkpoint"]`): it takes
    /// Execute's fail-over extensions `checkpoint` and `attempt`. Robots that
    /// did not declare them get exactly table A.7's fields.
    #[serde(default)]
    pub extensions: bool,
}

impl Robot {
    /// Why this robot is given no work at `now`, if it is given none (its
    /// license has expired).
    pub fn refusal(&self, now: crate::time::Timestamp) -> Option<String> {
        self.profile.held.as_ref().and_then(|h| h.refusal(now))
    }

    /// Whether this robot is given work at `now` (see [`Robot::refusal`]).
    pub fn takes_work(&self, now: crate::time::Timestamp) -> bool {
        self.refusal(now).is_none()
    }

    /// Whether this robot may run jobs of `spec`.
    pub fn can_run(&self, spec: &ProcessSpec) -> bool {
        let p = &*self.profile;
        let kind_ok = match spec.process_type {
            ProcessType::Attended => p.attended,
            ProcessType::Unattended | ProcessType::Queue => !p.attended,
        };
        kind_ok
            && spec.pipeline.is_none()
            && spec
                .requirements
                .vendor
                .as_ref()
                .is_none_or(|v| p.vendor.as_ref() == Some(v))
            && spec.requirements.pool.as_ref().is_none_or(|pool| &p.pool == pool)
            && spec.requirements.labels.iter().all(|l| p.labels.contains(l))
            && p.serves(spec.folder.as_deref())
    }
}

/// A robot vendor (seed 001 supplier): robots prove they belong to it with its secret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Vendor {
    /// Serial id.
    pub id: VendorId,
    /// 32-hex key.
    pub key: Key,
    /// Commit version.
    pub version: u64,
    /// `supplierCode`.
    pub code: String,
    /// The shared secret (stores keep it encrypted at rest; never logged or returned).
    pub secret: String,
}

/// Something a role allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Permission {
    /// Create users, unlock them, grant processes, define roles.
    ManageUsers,
    /// Create and change processes.
    ManageProcesses,
    /// Register vendors, configure robots, bind licenses.
    ManageRobots,
    /// Read and verify the audit log.
    ViewAudit,
    /// Stop and inspect any job, granted or not.
    OperateAllJobs,
    /// Write the operations centre's news, courses and knowledge base.
    ManageContent,
}

impl Permission {
    /// Every permission.
    pub const ALL: [Permission; 6] = [
        Permission::ManageUsers,
        Permission::ManageProcesses,
        Permission::ManageRobots,
        Permission::ViewAudit,
        Permission::OperateAllJobs,
        Permission::ManageContent,
    ];
}

/// A named set of permissions.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Role {
    /// Serial id.
    pub id: RoleId,
    /// 32-hex key.
    pub key: Key,
    /// Commit version.
    pub version: u64,
    /// Unique name.
    pub name: String,
    /// What it allows.
    pub permissions: BTreeSet<Permission>,
}

impl crate::record::Mapped for Role {
    const KIND: &'static crate::record::Kind = &crate::record::Kind {
        table: "rpa_roles",
        name: "role",
        key: crate::record::Column::int("id"),
        sealed: false,
        cached: true,
        columns: &[crate::record::Column::text("name").unique("role name")],
    };
    fn key(&self) -> crate::record::Cell {
        self.id.0.into()
    }
    fn version(&self) -> u64 {
        self.version
    }
    fn cells(&self) -> Vec<crate::record::Cell> {
        vec![self.name.as_str().into()]
    }
}

impl crate::record::Record for Role {}

impl crate::record::Mapped for User {
    const KIND: &'static crate::record::Kind = &crate::record::Kind {
        table: "rpa_users",
        name: "user",
        key: crate::record::Column::int("id"),
        sealed: false,
        cached: true,
        columns: &[crate::record::Column::text("name").unique("user name")],
    };
    fn key(&self) -> crate::record::Cell {
        self.id.0.into()
    }
    fn version(&self) -> u64 {
        self.version
    }
    fn cells(&self) -> Vec<crate::record::Cell> {
        vec![self.name.as_str().into()]
    }
}

impl crate::record::Record for User {}

/// A person who calls the business API.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct User {
    /// Serial id.
    pub id: UserId,
    /// 32-hex key.
    pub key: Key,
    /// Commit version.
    pub version: u64,
    /// Login name (unique).
    pub name: String,
    /// Argon2 PHC string.
    pub password_hash: String,
    /// Wrong passwords since the last successful login, counted within the
    /// window that began at `first_failed_at`.
    pub failed_logins: u32,
    /// The first wrong password of that count.
    #[serde(default)]
    pub first_failed_at: Option<Timestamp>,
    /// Locked after too many wrong passwords, until an administrator unlocks
    /// (or the configured lock period ends).
    pub locked: bool,
    /// When it was locked.
    #[serde(default)]
    pub locked_at: Option<Timestamp>,
    /// Disabled by an administrator: no login, no session, until enabled
    /// again. (Users are disabled, never deleted: the audit log names them.)
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub disabled: bool,
    /// Roles by id.
    pub roles: BTreeSet<RoleId>,
    /// Processes the user may start.
    pub grants: BTreeSet<ProcessId>,
    /// Folders whose every process, present and future, the user may start
    /// (a process's folder: [`ProcessSpec::folder`], none being
    /// [`crate::asset::DEFAULT_FOLDER`]).
    #[serde(default, skip_serializing_if = "BTreeSet::is_empty")]
    pub folders: BTreeSet<String>,
    /// Creation time.
    pub created_at: Timestamp,
    /// The distinguished name of its account in the organisation's
    /// directory, which checks its password and decides its grants (see
    /// [`crate::identity`]); `None`: a local user.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub directory: Option<String>,
}

impl User {
    /// Whether the user may start and see the jobs of `p`: it is granted
    /// to them, or its folder is. (Roles with OperateAllJobs reach every
    /// process besides; the engine checks those.)
    pub fn granted(&self, p: &Process) -> bool {
        self.grants.contains(&p.id)
            || self
                .folders
                .contains(crate::asset::folder_name(p.spec.folder.as_deref()))
    }
}

/// A login session. Only the SHA-256 of the token is stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Token {
    /// SHA-256 of the opaque token.
    pub hash: [u8; 32],
    /// Whose session.
    pub user: UserId,
    /// Issue time.
    pub created_at: Timestamp,
    /// Invalid from then on.
    pub expires_at: Timestamp,
}

/// Seed 001 log level.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[allow(missing_docs)]
pub enum LogLevel {
    Info = 0,
    Warning = 1,
    Error = 2,
}

impl LogLevel {
    /// From seed 001's integer.
    pub fn from_int(v: i64) -> Option<LogLevel> {
        match v {
            0 => Some(LogLevel::Info),
            1 => Some(LogLevel::Warning),
            2 => Some(LogLevel::Error),
            _ => None,
        }
    }
}

/// One line a robot reported (seed 001 RunInstanceLog).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunLog {
    /// Serial id.
    pub id: RunLogId,
    /// The job.
    pub job: JobId,
    /// The robot that reported it.
    pub robot: RobotId,
    /// `content`.
    pub content: String,
    /// `screenshot` id.
    pub screenshot: Option<String>,
    /// `logAt` as the robot sent it.
    pub log_at: String,
    /// `logLevel`.
    pub level: LogLevel,
    /// When the engine accepted it.
    pub received_at: Timestamp,
}

/// A screen recording a robot reported after a finish.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VideoRecord {
    /// The job.
    pub job: JobId,
    /// The robot.
    pub robot: RobotId,
    /// `videoId`.
    pub video_id: String,
    /// When it was reported.
    pub at: Timestamp,
}

/// Seed 001 upload source.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[allow(missing_docs)]
pub enum FileSource {
    File,
    Demand,
    Icon,
    Package,
}

impl FileSource {
    /// From the `{source}` path segment.
    pub fn parse(s: &str) -> Option<FileSource> {
        match s {
            "file" => Some(FileSource::File),
            "demand" => Some(FileSource::Demand),
            "icon" => Some(FileSource::Icon),
            _ => None,
        }
    }
}

/// Who did something.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Actor {
    /// The engine itself (timers, configuration loading).
    System,
    /// A person.
    User(UserId),
    /// An executor.
    Robot(RobotId),
}

impl std::fmt::Display for Actor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Actor::System => f.write_str("system"),
            Actor::User(u) => write!(f, "user:{u}"),
            Actor::Robot(r) => write!(f, "robot:{r}"),
        }
    }
}

/// Metadata of an uploaded file; the bytes live wherever the host keeps them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredFile {
    /// Serial id.
    pub id: FileId,
    /// 32-hex key (`fileId`).
    pub key: Key,
    /// Commit version.
    pub version: u64,
    /// Upload source.
    pub source: FileSource,
    /// Original file name.
    pub name: String,
    /// Size in bytes.
    pub size: u64,
    /// SHA-256 of the content, hex.
    pub sha256: String,
    /// Who uploaded it.
    pub owner: Actor,
    /// In whose personal folder it is, if any (user name).
    pub personal_of: Option<String>,
    /// The job it belongs to, if any.
    pub job: Option<JobId>,
    /// Upload time.
    pub created_at: Timestamp,
    /// When retention removed its bytes (see [`crate::retention`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub purged_at: Option<Timestamp>,
}

impl crate::record::Mapped for StoredFile {
    const KIND: &'static crate::record::Kind = &crate::record::Kind {
        table: "rpa_files",
        name: "file",
        key: crate::record::Column::text("key"),
        sealed: false,
        cached: false,
        columns: &[
            crate::record::Column::text("personal_of"),
            crate::record::Column::int("job"),
        ],
    };
    fn key(&self) -> crate::record::Cell {
        self.key.to_string().into()
    }
    fn version(&self) -> u64 {
        self.version
    }
    fn cells(&self) -> Vec<crate::record::Cell> {
        vec![self.personal_of.clone().into(), self.job.map(|j| j.0).into()]
    }
}

impl crate::record::Record for StoredFile {}

/// One link of the hash-chained audit log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuditEvent {
    /// Position in the chain, from 1.
    pub seq: u64,
    /// When.
    pub at: Timestamp,
    /// Who.
    pub actor: Actor,
    /// What (e.g. `job.dispatch`, `login.failed`).
    pub action: std::borrow::Cow<'static, str>,
    /// On what (e.g. `job:42`).
    pub subject: String,
    /// Details (e.g. `Running->Successful`, or `robot:3 attempt:1` for a dispatch).
    pub detail: String,
    /// The domain event this change is (see [`crate::events`]; not
    /// covered by `hash`: a copy of what the commit wrote).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event: Option<Arc<crate::events::Event>>,
    /// Hash of the previous event (zeros for the first).
    #[serde(with = "hex32")]
    pub prev_hash: [u8; 32],
    /// Hash over this event and `prev_hash`.
    #[serde(with = "hex32")]
    pub hash: [u8; 32],
}

/// A 32-byte hash as 64 hex digits; reads the array of numbers that
/// earlier versions stored, too.
mod hex32 {
    use serde::de::{self, SeqAccess, Visitor};
    use serde::{Deserializer, Serializer};

    pub fn serialize<S: Serializer>(h: &[u8; 32], s: S) -> Result<S::Ok, S::Error> {
        let mut buf = [0u8; 64];
        hex::encode_to_slice(h, &mut buf).map_err(serde::ser::Error::custom)?;
        s.serialize_str(std::str::from_utf8(&buf).map_err(serde::ser::Error::custom)?)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<[u8; 32], D::Error> {
        struct Hash;
        impl<'de> Visitor<'de> for Hash {
            type Value = [u8; 32];
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("64 hex digits or 32 numbers")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<[u8; 32], E> {
                let mut h = [0u8; 32];
                hex::decode_to_slice(v, &mut h).map_err(E::custom)?;
                Ok(h)
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<[u8; 32], A::Error> {
                let mut h = [0u8; 32];
                for (i, b) in h.iter_mut().enumerate() {
                    *b = seq.next_element()?.ok_or_else(|| de::Error::invalid_length(i, &self))?;
                }
                if seq.next_element::<u8>()?.is_some() {
                    return Err(de::Error::invalid_length(33, &self));
                }
                Ok(h)
            }
        }
        d.deserialize_any(Hash)
    }
}

/// A step of a job's run, as its robot reported it (seed 000 `jobStatus`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobStep {
    /// The step record's own id (`id`).
    pub id: i64,
    /// The step's number in the run (`step`).
    pub step: u32,
    /// The step's name, if the robot gave one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<Arc<str>>,
    /// The id of the process's data step it ran (`taskProcessId`; the step
    /// number when the robot gave none).
    pub task: i64,
    /// When it was reported.
    pub at: Timestamp,
    /// Whether the job pauses at this step waiting for a person (`stopTag`).
    pub pause: bool,
}

// Row mappings of the kinds with typed writes (see `crate::record`): the
// SQL stores write their rows from these alone. The derived columns
// (dispatchable, ready_at, expire_at, idle, silent_at) are what the
// databases' indexes and the stores' reloads select on.

impl crate::record::Mapped for Process {
    const KIND: &'static crate::record::Kind = &crate::record::Kind {
        table: "rpa_processes",
        name: "process",
        key: crate::record::Column::int("id"),
        sealed: false,
        cached: false,
        columns: &[crate::record::Column::text("key").fixed()],
    };
    fn key(&self) -> crate::record::Cell {
        self.id.0.into()
    }
    fn version(&self) -> u64 {
        self.version
    }
    fn cells(&self) -> Vec<crate::record::Cell> {
        vec![self.key.to_string().into()]
    }
}

impl crate::record::Mapped for Job {
    const KIND: &'static crate::record::Kind = &crate::record::Kind {
        table: "rpa_jobs",
        name: "job",
        key: crate::record::Column::int("id"),
        sealed: false,
        cached: false,
        columns: &[
            crate::record::Column::text("key").fixed(),
            crate::record::Column::int("process").fixed(),
            crate::record::Column::text("state"),
            crate::record::Column::int("priority"),
            crate::record::Column::int("dispatchable"),
            crate::record::Column::int("ready_at"),
            crate::record::Column::int("expire_at"),
            crate::record::Column::int("created_at").fixed(),
        ],
    };
    fn key(&self) -> crate::record::Cell {
        self.id.0.into()
    }
    fn version(&self) -> u64 {
        self.version
    }
    fn cells(&self) -> Vec<crate::record::Cell> {
        use crate::store::{Due, is_dispatchable, timers_of_job};
        let (mut ready, mut expire) = (None, None);
        for (t, due) in timers_of_job(self) {
            match due {
                Due::JobReady(_) => ready = Some(t.0),
                _ => expire = Some(t.0),
            }
        }
        vec![
            self.key.to_string().into(),
            self.process.0.into(),
            self.state.as_str().into(),
            i64::from(self.priority).into(),
            i64::from(is_dispatchable(self)).into(),
            ready.into(),
            expire.into(),
            self.created_at.0.into(),
        ]
    }
}

impl crate::record::Mapped for QueueItem {
    const KIND: &'static crate::record::Kind = &crate::record::Kind {
        table: "rpa_items",
        name: "queue item",
        key: crate::record::Column::int("id"),
        sealed: false,
        cached: false,
        columns: &[
            crate::record::Column::text("key").fixed(),
            crate::record::Column::int("process").fixed(),
            // Unique together with the process (`rpa_items_reference`).
            crate::record::Column::text("reference"),
        ],
    };
    fn key(&self) -> crate::record::Cell {
        self.id.0.into()
    }
    fn version(&self) -> u64 {
        self.version
    }
    fn cells(&self) -> Vec<crate::record::Cell> {
        vec![
            self.key.to_string().into(),
            self.process.0.into(),
            self.reference.clone().into(),
        ]
    }
}

impl crate::record::Mapped for Robot {
    const KIND: &'static crate::record::Kind = &crate::record::Kind {
        table: "rpa_robots",
        name: "robot",
        key: crate::record::Column::int("id"),
        sealed: false,
        cached: false,
        columns: &[
            crate::record::Column::text("code").unique("robot id").fixed(),
            crate::record::Column::int("idle"),
            crate::record::Column::int("silent_at"),
        ],
    };
    fn key(&self) -> crate::record::Cell {
        self.id.0.into()
    }
    fn version(&self) -> u64 {
        self.version
    }
    fn cells(&self) -> Vec<crate::record::Cell> {
        use crate::store::{is_idle, timers_of_robot};
        vec![
            self.code.to_string().into(),
            i64::from(is_idle(self)).into(),
            timers_of_robot(self).map(|(t, _)| t.0).into(),
        ]
    }
}

impl crate::record::Mapped for Vendor {
    const KIND: &'static crate::record::Kind = &crate::record::Kind {
        table: "rpa_vendors",
        name: "vendor",
        key: crate::record::Column::text("code").unique("supplier code"),
        // The secret alone is sealed, by the store, before the row is made.
        sealed: false,
        cached: false,
        columns: &[],
    };
    fn key(&self) -> crate::record::Cell {
        self.code.as_str().into()
    }
    fn version(&self) -> u64 {
        self.version
    }
    fn cells(&self) -> Vec<crate::record::Cell> {
        Vec::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::conformance::sample_job;

    /// A job is written at every change of its state: its row leaves out
    /// what it does not have, and rows written with those fields as `null`
    /// read the same.
    #[test]
    fn a_job_at_rest_leaves_out_what_it_does_not_have() {
        let job = Job {
            package_version: None,
            ..sample_job(7, ProcessId(1), 0)
        };
        let text = serde_json::to_string(&job).unwrap();
        assert!(!text.contains("null") && !text.contains("forced"), "{text}");
        let mut old: Value = serde_json::from_str(&text).unwrap();
        for f in [
            "queue_item",
            "robot",
            "connect",
            "not_before",
            "deadline",
            "package_version",
            "started_at",
            "ended_at",
            "checkpoint",
            "outputs",
            "error_code",
            "reason",
        ] {
            old[f] = Value::Null;
        }
        old["forced"] = false.into();
        assert_eq!(serde_json::from_value::<Job>(old).unwrap(), job);
        let ended = Job {
            robot: Some(RobotId(3)),
            started_at: Some(Timestamp(5)),
            ended_at: Some(Timestamp(9)),
            reason: Some("killed".into()),
            forced: true,
            ..job
        };
        let text = serde_json::to_string(&ended).unwrap();
        assert_eq!(serde_json::from_str::<Job>(&text).unwrap(), ended);
    }
}
