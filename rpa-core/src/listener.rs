//! Listener requests (seed 003, the AutomationEdge listener): a business
//! system asks by message for a process run, and the request goes to the
//! automation queue (a job is started) or to the fall-out queue (kept with
//! the reason, nothing started).
//!
//! The rules, pure:
//! - [`Perform::decide`]: whether a request is accepted, in this order:
//!   expired on arrival, unknown process (or not granted to the listener's
//!   user), a process bound to another profile (`ProfileName` is the robot
//!   pool: a process with a pool runs only for requests naming it), a
//!   process that takes no direct runs (Queue processes) or is at its day
//!   limit, inputs that do not fit the process's arguments.
//! - One request per `(app_id, source_message_id)`: a repeat is answered
//!   with the first request's answer and starts nothing (the store's unique
//!   `source` column decides between simultaneous repeats).
//! - The request's retry (`RetryFlag`, `NoOfTimesRetry`,
//!   `RetryCoolOffInterval`) becomes the job's own retry policy, and its
//!   `expiration` the window of each attempt: an attempt that fails or
//!   expires is tried again after the cool-off while attempts remain.
//! - [`mask`]: inputs of arguments marked secret are never echoed.

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::error::Error;
use crate::ids::{JobId, Key, UserId};
use crate::limits;
use crate::model::{Process, ProcessSpec, ProcessType, RetryPolicy};
use crate::record::{Cell, Column, Kind, Mapped, Record};
use crate::time::Timestamp;

/// The prefix of every input name in `AutomationInputDictionary`.
pub const INPUT_PREFIX: &str = "Search.";

/// What an input of a secret argument is shown as.
pub const MASK: &str = "********";

/// A request, as the listener's message gives it (payload decoded).
#[derive(Debug, Clone, PartialEq)]
pub struct Perform {
    /// `ProcessName`.
    pub process: String,
    /// `ProfileName` (or the message's `profile`).
    pub profile: String,
    /// `UserName`: who sent it, as the sender says.
    pub user_name: String,
    /// `AutomationInputDictionary`, as sent (`Search.` names).
    pub inputs: Map<String, Value>,
    /// `RetryFlag` with `NoOfTimesRetry` and `RetryCoolOffInterval` (ms).
    pub retry: Option<(u32, u64)>,
    /// `expiration`: ms for queue wait and run together.
    pub expiration_ms: i64,
    /// `Timestamp`, when given and readable: when it was sent.
    pub sent_at: Option<Timestamp>,
    /// `ReferenceCode`.
    pub reference: String,
    /// `app_id`.
    pub app_id: String,
    /// `source_message_id`.
    pub source_message_id: String,
    /// `wait_for_completion`.
    pub wait: bool,
    /// The `PerformAutomation` object as sent (echoed, masked, in answers).
    pub request: Value,
}

/// Why a request went to the fall-out queue: the seed's error object.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Fault {
    /// `error_code`.
    pub code: String,
    /// `error_msg`.
    pub message: String,
}

/// The fall-out codes.
pub mod codes {
    /// Unknown process, or one the listener's user is not granted.
    pub const PROCESS: &str = "BsnErr111";
    /// The process takes no request now (a Queue process, its day limit reached).
    pub const QUEUE: &str = "BsnErr002";
    /// The inputs do not fit the process's arguments.
    pub const INPUT: &str = "BsnErr003";
    /// The request expired before it could be queued.
    pub const EXPIRED: &str = "BsnErr004";
    /// The process runs only in another profile (its robot pool).
    pub const PROFILE: &str = "BsnErr005";
}

fn fault(code: &str, message: impl Into<String>) -> Fault {
    Fault {
        code: code.into(),
        message: message.into(),
    }
}

/// What an accepted request starts.
#[derive(Debug, Clone, PartialEq)]
pub struct Accepted {
    /// The job's arguments (validated, normalised).
    pub arguments: Arc<Value>,
    /// The job's deadline.
    pub deadline: Timestamp,
    /// The job's own retry policy, when the request asks for retries.
    pub retry: Option<RetryPolicy>,
    /// The window of each attempt (the request's expiration) when retried.
    pub window_ms: Option<u64>,
}

impl Perform {
    /// The request's unique source: one per app and source message id.
    pub fn source(&self) -> String {
        source(&self.app_id, &self.source_message_id)
    }

    /// Whether the request is accepted for `process` (`None`: no process of
    /// that name granted to the listener's user), at `now`, on `day`.
    pub fn decide(&self, process: Option<&Process>, now: Timestamp, day: i64) -> Result<Accepted, Fault> {
        let expired = self.expiration_ms <= 0
            || self
                .sent_at
                .is_some_and(|t| t.plus_ms(u64::try_from(self.expiration_ms).unwrap_or(0)) <= now);
        if expired {
            return Err(fault(codes::EXPIRED, "Request expired before it could be queued."));
        }
        let Some(p) = process else {
            return Err(fault(codes::PROCESS, "Incorrect process name in the request."));
        };
        if let Some(pool) = p.spec.requirements.pool.as_deref().filter(|pool| *pool != self.profile) {
            return Err(fault(
                codes::PROFILE,
                format!("Process {} runs in profile {pool}, not {}.", p.spec.name, self.profile),
            ));
        }
        if p.spec.process_type == ProcessType::Queue {
            return Err(fault(
                codes::QUEUE,
                "Queue is not available hence message moved to fallout queue. (the process works queue items)",
            ));
        }
        if let Err(e) = limits::may_start(p, day) {
            return Err(fault(
                codes::QUEUE,
                format!(
                    "Queue is not available hence message moved to fallout queue. ({})",
                    Error::Limit(e)
                ),
            ));
        }
        let arguments =
            inputs(&p.spec, &self.inputs).map_err(|e| fault(codes::INPUT, format!("Invalid input: {e}")))?;
        let window = u64::try_from(self.expiration_ms).unwrap_or(0);
        let retry = self.retry.map(|(times, cool_off)| RetryPolicy {
            max_retries: times,
            backoff_ms: cool_off,
            backoff_max_ms: cool_off,
        });
        Ok(Accepted {
            arguments,
            deadline: now.plus_ms(window),
            window_ms: retry.as_ref().map(|_| window),
            retry,
        })
    }
}

/// The unique source of a request of app `app`.
pub fn source(app: &str, source_message_id: &str) -> String {
    format!("{}:{app}{source_message_id}", app.len())
}

/// The job's arguments from `AutomationInputDictionary`: `Search.` taken
/// off each name, then checked against the process's arguments.
pub fn inputs(spec: &ProcessSpec, given: &Map<String, Value>) -> Result<Arc<Value>, Error> {
    let mut args = Map::new();
    for (k, v) in given {
        let Some(name) = k.strip_prefix(INPUT_PREFIX).filter(|n| !n.is_empty()) else {
            return Err(Error::InvalidArgument(format!(
                "input '{k}' must be named {INPUT_PREFIX}<name>"
            )));
        };
        args.insert(name.to_owned(), v.clone());
    }
    crate::arguments::validate_shared(spec, &Value::Object(args))
}

/// `inputs` with the value of every secret argument replaced by [`MASK`].
pub fn mask(spec: &ProcessSpec, inputs: &Map<String, Value>) -> Map<String, Value> {
    inputs
        .iter()
        .map(|(k, v)| {
            let name = k.strip_prefix(INPUT_PREFIX).unwrap_or(k);
            let secret = spec
                .arguments
                .iter()
                .any(|a| a.secret && (a.name == name || a.id == name));
            (k.clone(), if secret { Value::from(MASK) } else { v.clone() })
        })
        .collect()
}

/// Which queue a request went to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Queue {
    /// A job was started.
    Automation,
    /// Nothing was started: see the request's fault.
    Fallout,
}

impl Queue {
    /// The word stored in the `queue` column.
    pub fn as_str(self) -> &'static str {
        match self {
            Queue::Automation => "automation",
            Queue::Fallout => "fallout",
        }
    }
}

/// A listener request, as kept.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ListenerRequest {
    /// Serial id (`instance_id`).
    pub id: i64,
    /// Commit version.
    pub version: u64,
    /// `message_id`: a UUID, hyphenated.
    pub message_id: String,
    /// `app_id`.
    pub app_id: String,
    /// `source_message_id`.
    pub source_message_id: String,
    /// `ProcessName`.
    pub process_name: String,
    /// `ProfileName`.
    pub profile: String,
    /// `UserName`, as sent.
    pub user_name: String,
    /// `ReferenceCode`.
    pub reference: String,
    /// The engine user the listener's credentials act as.
    pub user: UserId,
    /// Where it went.
    pub queue: Queue,
    /// Why it fell out.
    pub fault: Option<Fault>,
    /// The job it started.
    pub job: Option<JobId>,
    /// That job's key.
    pub job_key: Option<Key>,
    /// Whether the sender waited for completion.
    pub wait: bool,
    /// `expiration`, ms.
    pub expiration_ms: i64,
    /// `NoOfTimesRetry` when `RetryFlag` was set, else 0.
    pub retries: u32,
    /// `RetryCoolOffInterval`, ms.
    pub cool_off_ms: u64,
    /// The `PerformAutomation` object as sent, inputs masked.
    pub request: Arc<Value>,
    /// When it arrived.
    pub created_at: Timestamp,
}

impl Mapped for ListenerRequest {
    const KIND: &'static Kind = &Kind {
        table: "rpa_listener_requests",
        name: "listener request",
        key: Column::int("id"),
        sealed: false,
        cached: false,
        columns: &[
            Column::text("source").unique("source message id"),
            Column::text("queue"),
            Column::text("job_key"),
        ],
    };
    fn key(&self) -> Cell {
        Cell::Int(self.id)
    }
    fn version(&self) -> u64 {
        self.version
    }
    fn cells(&self) -> Vec<Cell> {
        vec![
            source(&self.app_id, &self.source_message_id).into(),
            self.queue.as_str().into(),
            self.job_key.map(|k| k.to_string()).into(),
        ]
    }
}

impl Record for ListenerRequest {}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::ids::ProcessId;
    use crate::model::{ArgType, ArgumentSpec};

    fn process(kind: ProcessType) -> Process {
        let mut spec = ProcessSpec::new("claims", kind);
        spec.arguments = vec![
            ArgumentSpec {
                name: "policy".into(),
                id: "p1".into(),
                arg_type: ArgType::String,
                required: true,
                secret: false,
            },
            ArgumentSpec {
                name: "pin".into(),
                id: "p2".into(),
                arg_type: ArgType::Int,
                required: false,
                secret: true,
            },
        ];
        spec.max_day_num = 1;
        Process {
            id: ProcessId(1),
            key: Key::from_random([1; 16]),
            version: 1,
            spec: Arc::new(spec),
            running: 0,
            day: 0,
            day_successes: 0,
            pending_items: 0,
            created_at: Timestamp(0),
        }
    }

    fn perform(inputs: Value) -> Perform {
        Perform {
            process: "claims".into(),
            profile: "Profile1".into(),
            user_name: "u".into(),
            inputs: inputs.as_object().cloned().unwrap_or_default(),
            retry: None,
            expiration_ms: 10_000,
            sent_at: None,
            reference: String::new(),
            app_id: "1".into(),
            source_message_id: "m".into(),
            wait: false,
            request: json!({}),
        }
    }

    const NOW: Timestamp = Timestamp(1_000_000);

    #[test]
    fn an_accepted_request_runs_with_its_inputs_until_its_expiration() {
        let p = process(ProcessType::Unattended);
        let a = perform(json!({"Search.policy": "A-1", "Search.pin": "42"}))
            .decide(Some(&p), NOW, 0)
            .unwrap();
        assert_eq!(*a.arguments, json!({"policy": "A-1", "pin": 42}));
        assert_eq!(a.deadline, NOW.plus_ms(10_000));
        assert_eq!((a.retry, a.window_ms), (None, None));
    }

    #[test]
    fn a_retried_request_gets_its_own_policy_and_window() {
        let p = process(ProcessType::Unattended);
        let mut r = perform(json!({"Search.policy": "A-1"}));
        r.retry = Some((3, 500));
        let a = r.decide(Some(&p), NOW, 0).unwrap();
        let policy = a.retry.unwrap();
        assert_eq!(
            (policy.max_retries, policy.backoff(2), policy.backoff(4)),
            (3, 500, 500)
        );
        assert_eq!(a.window_ms, Some(10_000));
    }

    #[test]
    fn requests_fall_out_with_the_reason() {
        let p = process(ProcessType::Unattended);
        let code = |r: &Perform, p: Option<&Process>, day| r.decide(p, NOW, day).unwrap_err().code;
        let ok = perform(json!({"Search.policy": "A-1"}));
        assert_eq!(code(&ok, None, 0), codes::PROCESS);
        assert_eq!(code(&ok, Some(&process(ProcessType::Queue)), 0), codes::QUEUE);
        let mut pooled = p.clone();
        Arc::make_mut(&mut pooled.spec).requirements.pool = Some("Finance".into());
        assert_eq!(code(&ok, Some(&pooled), 0), codes::PROFILE, "another profile's process");
        let mut finance = ok.clone();
        finance.profile = "Finance".into();
        assert!(finance.decide(Some(&pooled), NOW, 0).is_ok(), "its own profile");
        let mut spent = p.clone();
        spent.day = 5;
        spent.day_successes = 1;
        assert_eq!(code(&ok, Some(&spent), 5), codes::QUEUE, "day limit reached");
        assert_eq!(
            code(&perform(json!({})), Some(&p), 0),
            codes::INPUT,
            "required input missing"
        );
        assert_eq!(
            code(&perform(json!({"policy": "A-1"})), Some(&p), 0),
            codes::INPUT,
            "no Search. prefix"
        );
        assert_eq!(
            code(&perform(json!({"Search.policy": "A", "Search.nope": 1})), Some(&p), 0),
            codes::INPUT
        );
        let mut old = ok.clone();
        old.sent_at = Some(Timestamp(NOW.0 - 10_000));
        assert_eq!(code(&old, Some(&p), 0), codes::EXPIRED, "sent one expiration ago");
        let mut zero = ok.clone();
        zero.expiration_ms = 0;
        assert_eq!(code(&zero, Some(&p), 0), codes::EXPIRED);
        old.sent_at = Some(Timestamp(NOW.0 - 9_999));
        assert!(old.decide(Some(&p), NOW, 0).is_ok(), "one millisecond left");
    }

    #[test]
    fn secret_inputs_are_masked_by_name_or_id() {
        let p = process(ProcessType::Unattended);
        let given = json!({"Search.policy": "A-1", "Search.pin": 42, "Search.p2": 7});
        let masked = mask(&p.spec, given.as_object().unwrap());
        assert_eq!(
            Value::Object(masked),
            json!({"Search.policy": "A-1", "Search.pin": MASK, "Search.p2": MASK})
        );
    }

    #[test]
    fn one_source_per_app() {
        assert_ne!(source("1", "m"), source("2", "m"));
        assert_ne!(
            source("1", "2m"),
            source("12", "m"),
            "no two (app, id) pairs share a source"
        );
        assert_eq!(perform(json!({})).source(), source("1", "m"));
    }
}
