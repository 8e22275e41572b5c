//! The ticket state machine (seed 004, loonflow semantics), pure: every
//! operation takes a ticket and its [`Ctx`] (workflow, directory, parent,
//! clock) and gives the ticket as it is after, the flow logs to append and
//! the [`Effect`]s for the engine (start a robot job, post a hook, tell a
//! parent), or a reason in words and nothing changed.
//!
//! Rules, in the order the seed gives them:
//! - Participants are resolved when a ticket enters a state
//!   ([`Ticket::enter`]): person, people, department and role members,
//!   `creator` / `creator_tl` (the creator's department's approvers, else
//!   its leader), ticket field, parent ticket field; a robot state names a
//!   process, a hook state posts. Nobody to resolve refuses the move: a
//!   ticket never waits in a state nobody can handle.
//! - Distribution: 1 accept first (when several people could handle, one
//!   accepts, then handles), 2 direct (any of them), 3 random (one chosen on
//!   entry), 4 all (each must handle; the ticket moves once all have, by the
//!   reject a handler chose if any, else by the last choice).
//! - Handling checks, in order: the ticket has not ended; the transition
//!   leaves the current state; the caller is a current participant; no
//!   accept is pending; no add-node is open; required fields are given (if
//!   the transition checks them) and every field given has its type.
//!   Read-only and undeclared fields are ignored. The destination is the
//!   first condition that holds, else the transition's own.
//! - Robot, hook, timer and sub-workflow moves take the state's single
//!   transition with no participant check.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::directory::Directory;
use super::expr::Expr;
use super::workflow::{Field, Hook, REJECT, State, TIMER, Transition, Workflow, distribute, participant};
use crate::ids::Key;
use crate::record::{Cell, Column, Kind, Mapped, Record};
use crate::time::Timestamp;

/// The name the engine acts under when it moves a ticket by itself.
pub const LOONROBOT: &str = "loonrobot";

/// Posts of a hook tried before it waits for `retry_script`; the n-th
/// failure waits 2^n seconds before the next try.
pub const HOOK_TRIES: u32 = 5;

/// Flow log intervention types (`intervene_type_id`).
pub mod intervene {
    /// A transition.
    pub const NORMAL: u8 = 0;
    /// Delivered to someone else.
    pub const DELIVER: u8 = 1;
    /// Added a node (someone else first).
    pub const ADD_NODE: u8 = 2;
    /// The added node is done.
    pub const ADD_NODE_END: u8 = 3;
    /// Accepted.
    pub const ACCEPT: u8 = 4;
    /// Closed by force.
    pub const CLOSE: u8 = 5;
    /// State changed by an administrator.
    pub const CHANGE_STATE: u8 = 6;
    /// A comment.
    pub const COMMENT: u8 = 7;
}

/// What a handler of an all-must-handle state chose.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Handled {
    /// `transition_id`.
    pub transition_id: i64,
    /// `transition_name`.
    pub transition_name: String,
}

/// What a ticket waits for, besides people.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Waiting {
    /// A robot job (its key in [`Ticket::job_key`]).
    Robot,
    /// A hook to be posted, or its callback.
    Hook,
    /// A timer transition (at [`Ticket::timer_at`]).
    Timer,
    /// Its child tickets.
    Children,
}

impl Waiting {
    /// Its name in the store's `wait` column.
    pub fn as_str(self) -> &'static str {
        match self {
            Waiting::Robot => "robot",
            Waiting::Hook => "hook",
            Waiting::Timer => "timer",
            Waiting::Children => "children",
        }
    }
}

/// A ticket (a record kind).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Ticket {
    /// Its id.
    pub id: i64,
    /// Commit version.
    pub version: u64,
    /// `sn`: the serial number, with the app's prefix.
    pub sn: String,
    /// `title`.
    pub title: String,
    /// `workflow_id`.
    pub workflow_id: i64,
    /// `state_id`.
    pub state_id: i64,
    /// `participant_type_id` (resolved: 1, 2, 3, 4, 6, 9, 10 or 0 at the end).
    pub participant_type_id: u8,
    /// `participant`: a username, comma-separated usernames, a department
    /// or role id, a process name, `***` for a hook, empty at the end.
    pub participant: String,
    /// `relation`: everyone who created, handled or was asked to.
    pub relation: Vec<String>,
    /// `in_add_node`.
    pub in_add_node: bool,
    /// `add_node_man`: who added the node, and gets the ticket back.
    pub add_node_man: String,
    /// `is_end`.
    pub is_end: bool,
    /// `is_rejected`: the last transition was a reject.
    pub is_rejected: bool,
    /// `script_run_last_result`: false after a robot or hook failed.
    pub script_run_last_result: bool,
    /// `multi_all_person`: each handler of an all-must-handle state, and
    /// what they chose once they have.
    pub multi_all_person: BTreeMap<String, Option<Handled>>,
    /// `parent_ticket_id` (0: none).
    pub parent_ticket_id: i64,
    /// `parent_ticket_state_id` (0: none).
    pub parent_ticket_state_id: i64,
    /// `creator`.
    pub creator: String,
    /// The workflow's field values.
    pub fields: Map<String, Value>,
    /// The last person who handled each state (`remember_last_man_enable`).
    pub last_man: BTreeMap<i64, String>,
    /// What it waits for besides people.
    pub waiting: Option<Waiting>,
    /// The robot job of its robot state, while it runs.
    pub job_key: Option<Key>,
    /// When its timer transition fires.
    pub timer_at: Option<Timestamp>,
    /// Hook deliveries tried since the state was entered (or retried).
    pub hook_attempts: u32,
    /// The suspended job this ticket decides for (a pause step): it resumes
    /// when the ticket ends.
    #[serde(default)]
    pub pauses_job: Option<Key>,
    /// When its hook is to be posted (again); `None` once posted, or
    /// after [`HOOK_TRIES`] failures until `retry_script`.
    #[serde(default)]
    pub hook_next: Option<Timestamp>,
    /// `gmt_created`.
    pub created_at: Timestamp,
    /// `gmt_modified`.
    pub modified_at: Timestamp,
}

impl Mapped for Ticket {
    const KIND: &'static Kind = &Kind {
        table: "rpa_tickets",
        name: "ticket",
        key: Column::int("id"),
        sealed: false,
        cached: false,
        columns: &[
            Column::text("sn").unique("ticket sn"),
            Column::int("workflow"),
            Column::text("creator"),
            Column::int("parent"),
            Column::text("wait"),
            Column::text("job_key"),
            Column::text("duty"),
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
            Cell::from(self.sn.as_str()),
            Cell::Int(self.workflow_id),
            Cell::from(self.creator.as_str()),
            Cell::from((self.parent_ticket_id != 0).then_some(self.parent_ticket_id)),
            Cell::from(self.waiting.map(Waiting::as_str)),
            Cell::from(self.job_key.map(|k| k.to_string())),
            Cell::from(self.duty_key()),
        ]
    }
}

impl Record for Ticket {}

impl Ticket {
    /// Who must act on it, as one indexed value: `user:<name>`,
    /// `role:<id>`, `dept:<id>`, `multi` (several people: read them), or
    /// none (ended, or waiting for a robot or a hook).
    pub fn duty_key(&self) -> Option<String> {
        if self.is_end {
            return None;
        }
        match self.participant_type_id {
            participant::PERSONAL => Some(format!("user:{}", self.participant)),
            participant::MULTI | participant::MULTI_ALL => Some("multi".into()),
            participant::DEPT => Some(format!("dept:{}", self.participant)),
            participant::ROLE => Some(format!("role:{}", self.participant)),
            _ => None,
        }
    }
}

/// A flow log entry (a record kind).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FlowLog {
    /// Its id.
    pub id: i64,
    /// Always 1: logs are appended, never changed.
    pub version: u64,
    /// `ticket_id`.
    pub ticket_id: i64,
    /// What happened.
    #[serde(flatten)]
    pub entry: LogEntry,
    /// The ticket's values after it.
    pub ticket_data: Map<String, Value>,
    /// `gmt_created`.
    pub created_at: Timestamp,
}

impl Mapped for FlowLog {
    const KIND: &'static Kind = &Kind {
        table: "rpa_flow_logs",
        name: "flow log",
        key: Column::int("id"),
        sealed: false,
        cached: false,
        columns: &[Column::int("ticket")],
    };
    fn key(&self) -> Cell {
        Cell::Int(self.id)
    }
    fn version(&self) -> u64 {
        self.version
    }
    fn cells(&self) -> Vec<Cell> {
        vec![Cell::Int(self.ticket_id)]
    }
}

impl Record for FlowLog {}

/// What a flow log says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogEntry {
    /// The state it happened in.
    pub state_id: i64,
    /// The transition taken (0: none).
    pub transition_id: i64,
    /// Its name (or the intervention's).
    pub transition_name: String,
    /// Its `attribute_type_id` (0: none).
    pub attribute_type_id: u8,
    /// Who: 1 a person, 6 a robot, 10 a hook.
    pub participant_type_id: u8,
    /// Their username, process name or `loonrobot`.
    pub participant: String,
    /// `suggestion`.
    pub suggestion: String,
    /// `intervene_type_id` (see [`intervene`]).
    pub intervene_type_id: u8,
}

/// What the engine does after a commit's decision, in the same commit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Effect {
    /// Start a job of the process named so, with the ticket's fields.
    Robot {
        /// The process's name.
        process: String,
    },
    /// Post the ticket to the hook.
    Hook(Hook),
    /// A child ticket ended: its parent may move on.
    ChildEnded {
        /// The parent ticket.
        parent: i64,
        /// The parent's state the child belongs to.
        parent_state: i64,
    },
}

/// A decision: the ticket after, what to log, what to do.
#[derive(Debug, Clone, PartialEq)]
pub struct Moved {
    /// The ticket after.
    pub ticket: Ticket,
    /// Flow logs to append, in order.
    pub logs: Vec<LogEntry>,
    /// What the engine does.
    pub effects: Vec<Effect>,
}

/// Who acts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Who<'a> {
    /// A person, by username.
    Person(&'a str),
    /// The robot of a robot state, by process name.
    Robot(&'a str),
    /// A hook (posted with `wait`, or its callback).
    Hook,
    /// A timer transition.
    Timer,
    /// All child tickets ended.
    Children,
}

impl Who<'_> {
    fn log_as(&self) -> (u8, String) {
        match self {
            Who::Person(u) => (participant::PERSONAL, (*u).to_owned()),
            Who::Robot(p) => (participant::ROBOT, (*p).to_owned()),
            Who::Hook => (participant::HOOK, LOONROBOT.into()),
            Who::Timer | Who::Children => (participant::PERSONAL, LOONROBOT.into()),
        }
    }
}

/// What a ticket operation reads besides the ticket.
pub struct Ctx<'a> {
    /// The ticket's workflow.
    pub workflow: &'a Workflow,
    /// The people.
    pub directory: &'a Directory,
    /// The parent ticket, if it has one.
    pub parent: Option<&'a Ticket>,
    /// The parent ticket's current state (in its own workflow).
    pub parent_state: Option<&'a State>,
    /// Now.
    pub now: Timestamp,
    /// A random number (the random distribution's choice).
    pub pick: u64,
}

impl<'a> Ctx<'a> {
    /// The context of a ticket of `workflow` without a parent, at `now`.
    pub fn new(workflow: &'a Workflow, directory: &'a Directory, now: Timestamp) -> Ctx<'a> {
        Ctx {
            workflow,
            directory,
            parent: None,
            parent_state: None,
            now,
            pick: 0,
        }
    }
}

/// A create or handle request: `transition_id`, `suggestion` and field values.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Request {
    /// `transition_id`.
    pub transition_id: i64,
    /// `suggestion`.
    pub suggestion: String,
    /// The other keys of the body: field values.
    pub fields: Map<String, Value>,
}

/// A way out of the ticket's state offered to a user (`transitions`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Offer {
    /// `transition_id` (0 for accept and add-node end).
    pub transition_id: i64,
    /// `transition_name`.
    pub transition_name: String,
    /// `field_require_check`.
    pub field_require_check: bool,
    /// `is_accept`.
    pub is_accept: bool,
    /// `in_add_node`.
    pub in_add_node: bool,
    /// `enable_alert`.
    pub enable_alert: bool,
    /// `alert_text`.
    pub alert_text: String,
    /// `attribute_type_id`.
    pub attribute_type_id: u8,
}

type Decision = Result<Moved, String>;

/// The value of `v` as field `f` keeps it, or why it does not fit.
pub fn coerce(f: &Field, v: &Value) -> Result<Value, String> {
    let key = &f.field_key;
    let bad = |what: &str| Err(format!("field {key} must be {what}, got {v}"));
    let text = |v: &Value| match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    };
    let choice = |s: &str| f.field_choice.is_empty() || f.field_choice.contains_key(s);
    match f.field_type_id {
        10 => match v {
            Value::Number(n) if n.is_i64() => Ok(v.clone()),
            Value::String(s) => s.trim().parse::<i64>().map(Value::from).or_else(|_| bad("an integer")),
            _ => bad("an integer"),
        },
        15 => match v {
            Value::Number(_) => Ok(v.clone()),
            Value::String(s) => s
                .trim()
                .parse::<f64>()
                .ok()
                .and_then(serde_json::Number::from_f64)
                .map(Value::Number)
                .map_or_else(|| bad("a number"), Ok),
            _ => bad("a number"),
        },
        20 => match v {
            Value::Bool(_) => Ok(v.clone()),
            Value::Number(n) if n.as_i64() == Some(0) || n.as_i64() == Some(1) => {
                Ok(Value::Bool(n.as_i64() == Some(1)))
            }
            Value::String(s) if matches!(s.as_str(), "true" | "True" | "1") => Ok(Value::Bool(true)),
            Value::String(s) if matches!(s.as_str(), "false" | "False" | "0") => Ok(Value::Bool(false)),
            _ => bad("a boolean"),
        },
        25 => match v {
            Value::String(s) if chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d").is_ok() => Ok(v.clone()),
            _ => bad("a date (yyyy-mm-dd)"),
        },
        30 => match v {
            Value::String(s) if chrono::NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S").is_ok() => Ok(v.clone()),
            _ => bad("a date and time (yyyy-mm-dd HH:MM:SS)"),
        },
        35 | 45 => match text(v) {
            Some(s) if choice(&s) => Ok(Value::String(s)),
            _ => bad("one of its choices"),
        },
        40 | 50 => {
            let items: Option<Vec<String>> = match v {
                Value::Array(a) => a.iter().map(text).collect(),
                other => text(other).map(|s| s.split(',').map(|p| p.trim().to_owned()).collect()),
            };
            match items {
                Some(items) if items.iter().all(|s| choice(s)) => Ok(Value::String(items.join(","))),
                _ => bad("some of its choices"),
            }
        }
        _ => match text(v) {
            Some(s) => Ok(Value::String(s)),
            None => bad("text"),
        },
    }
}

impl Ticket {
    /// A new ticket of `ctx.workflow`, created by `creator` with `req` at
    /// its start state, moved along `req.transition_id` (the seed's create).
    pub fn create(ctx: &Ctx<'_>, id: i64, sn: String, creator: &str, parent_state: i64, req: &Request) -> Decision {
        Ticket::open(ctx, id, sn, creator, parent_state, req, Who::Person(creator))
    }

    /// A new ticket opened by `who`: a person (the seed's create), or a
    /// robot's pause step (its required fields are not checked: they come
    /// from the run; its creator need not be in the directory).
    pub fn open(
        ctx: &Ctx<'_>,
        id: i64,
        sn: String,
        creator: &str,
        parent_state: i64,
        req: &Request,
        who: Who<'_>,
    ) -> Decision {
        let wf = ctx.workflow;
        if matches!(who, Who::Person(_)) && !ctx.directory.active(creator) {
            return Err(format!("user {creator} is not an active user of the directory"));
        }
        if let Some(p) = ctx.parent {
            let state = ctx
                .parent_state
                .ok_or_else(|| format!("parent ticket {}'s state is not in its workflow", p.id))?;
            if state.id != parent_state {
                return Err(format!("parent ticket {} is not in state {parent_state}", p.id));
            }
            if state.sub_workflow_id != wf.id {
                return Err(format!(
                    "parent ticket {}'s state {} does not take tickets of workflow {}",
                    p.id, state.name, wf.name
                ));
            }
        }
        let start = wf.start();
        let mut t = Ticket {
            id,
            version: 0,
            sn,
            title: String::new(),
            workflow_id: wf.id,
            state_id: start.id,
            participant_type_id: participant::PERSONAL,
            participant: creator.to_owned(),
            relation: vec![creator.to_owned()],
            in_add_node: false,
            add_node_man: String::new(),
            is_end: false,
            is_rejected: false,
            script_run_last_result: true,
            multi_all_person: BTreeMap::new(),
            parent_ticket_id: ctx.parent.map_or(0, |p| p.id),
            parent_ticket_state_id: ctx.parent.map_or(0, |_| parent_state),
            creator: creator.to_owned(),
            fields: Map::new(),
            last_man: BTreeMap::new(),
            waiting: None,
            job_key: None,
            timer_at: None,
            hook_attempts: 0,
            hook_next: None,
            pauses_job: None,
            created_at: ctx.now,
            modified_at: ctx.now,
        };
        for f in &wf.fields {
            if let Some(d) = f.default_value.as_deref().filter(|d| !d.is_empty())
                && let Ok(v) = coerce(f, &Value::String(d.to_owned()))
            {
                t.fields.insert(f.field_key.clone(), v);
            }
        }
        if !matches!(who, Who::Person(_)) {
            // A run's data: every declared field it has a fitting value for.
            for (k, v) in &req.fields {
                match wf.field(k).map(|f| coerce(f, v)) {
                    Some(Ok(v)) => {
                        t.fields.insert(k.clone(), v);
                    }
                    None if k == "title" => t.title = v.as_str().unwrap_or_default().to_owned(),
                    _ => {}
                }
            }
        }
        let mut m = t.handle(ctx, who, req)?;
        m.ticket.version = 1;
        Ok(m)
    }

    fn state<'w>(&self, wf: &'w Workflow) -> Result<&'w State, String> {
        wf.state(self.state_id).ok_or_else(|| {
            format!(
                "ticket {}'s state {} is no longer in its workflow",
                self.id, self.state_id
            )
        })
    }

    /// The usernames who may handle it now.
    pub fn participants(&self, dir: &Directory) -> Vec<String> {
        let list = |s: &str| {
            s.split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(String::from)
                .collect()
        };
        match self.participant_type_id {
            participant::PERSONAL | participant::MULTI => list(&self.participant),
            participant::MULTI_ALL => self
                .multi_all_person
                .iter()
                .filter(|(_, h)| h.is_none())
                .map(|(u, _)| u.clone())
                .collect(),
            participant::DEPT => self
                .participant
                .parse()
                .map_or_else(|_| Vec::new(), |d| dir.dept_members(d)),
            participant::ROLE => self
                .participant
                .parse()
                .map_or_else(|_| Vec::new(), |r| dir.role_members(r)),
            _ => Vec::new(),
        }
    }

    /// Whether `user` may see it.
    pub fn may_view(&self, wf: &Workflow, dir: &Directory, user: &str) -> bool {
        !wf.view_permission_check
            || dir.is_admin(user)
            || self.relation.iter().any(|r| r == user)
            || self.participants(dir).iter().any(|p| p == user)
    }

    /// Checks that `user` may handle it now; answers whether an accept is pending.
    fn may_handle(&self, ctx: &Ctx<'_>, user: &str) -> Result<bool, String> {
        if self.is_end {
            return Err(format!("ticket {} has ended", self.id));
        }
        let people = self.participants(ctx.directory);
        if !people.iter().any(|p| p == user) {
            return Err(format!("{user} is not a current participant of ticket {}", self.id));
        }
        let state = self.state(ctx.workflow)?;
        Ok(people.len() > 1
            && state.distribute_type_id == distribute::ACCEPT
            && self.participant_type_id != participant::MULTI_ALL
            && !self.in_add_node)
    }

    /// What `user` can do now (`transitions`): nothing if they are not a
    /// current participant.
    pub fn offers(&self, ctx: &Ctx<'_>, user: &str) -> Vec<Offer> {
        let Ok(need_accept) = self.may_handle(ctx, user) else {
            return Vec::new();
        };
        let special = |name: &str, is_accept: bool, in_add_node: bool| Offer {
            transition_id: 0,
            transition_name: name.into(),
            field_require_check: false,
            is_accept,
            in_add_node,
            enable_alert: false,
            alert_text: String::new(),
            attribute_type_id: 3,
        };
        if self.in_add_node {
            return vec![special("完成", false, true)];
        }
        if need_accept {
            return vec![special("接单", true, false)];
        }
        ctx.workflow
            .out_of(self.state_id)
            .filter(|t| t.transition_type_id != TIMER)
            .map(|t| Offer {
                transition_id: t.id,
                transition_name: t.name.clone(),
                field_require_check: t.field_require_check,
                is_accept: false,
                in_add_node: false,
                enable_alert: t.alert_enable,
                alert_text: t.alert_text.clone(),
                attribute_type_id: t.attribute_type_id,
            })
            .collect()
    }

    /// Field values of `given` a handler may write in `state`, typed;
    /// `required` checks the state's required fields are there.
    fn writes(
        &self,
        wf: &Workflow,
        state: &State,
        given: &Map<String, Value>,
        required: bool,
    ) -> Result<Map<String, Value>, String> {
        if required {
            let missing: Vec<&str> = state
                .required()
                .filter(|k| given.get(*k).is_none_or(|v| v.is_null() || v.as_str() == Some("")))
                .collect();
            if !missing.is_empty() {
                return Err(format!(
                    "required fields are missing: {} (this state requires {})",
                    missing.join(","),
                    state.required().collect::<Vec<_>>().join(",")
                ));
            }
        }
        let mut out = Map::new();
        for (k, v) in given {
            if !state.writable(k) {
                continue;
            }
            let v = match wf.field(k) {
                Some(f) => coerce(f, v)?,
                None if k == "title" => match v {
                    Value::String(_) => v.clone(),
                    _ => return Err(format!("field title must be text, got {v}")),
                },
                None => continue,
            };
            out.insert(k.clone(), v);
        }
        Ok(out)
    }

    fn apply(&mut self, values: Map<String, Value>) {
        for (k, v) in values {
            if k == "title" {
                self.title = v.as_str().unwrap_or_default().to_owned();
            } else {
                self.fields.insert(k, v);
            }
        }
    }

    /// The values a flow log keeps, and conditions read.
    pub fn values(&self) -> Map<String, Value> {
        let mut m = self.fields.clone();
        m.insert("title".into(), Value::String(self.title.clone()));
        m.insert("sn".into(), Value::String(self.sn.clone()));
        m.insert("creator".into(), Value::String(self.creator.clone()));
        m.insert("state_id".into(), Value::from(self.state_id));
        m.insert("workflow_id".into(), Value::from(self.workflow_id));
        m.insert("participant".into(), Value::String(self.participant.clone()));
        m.insert("participant_type_id".into(), Value::from(self.participant_type_id));
        m
    }

    /// Handles the ticket: `who` takes transition `req.transition_id` out
    /// of the current state with `req`'s fields.
    pub fn handle(&self, ctx: &Ctx<'_>, who: Who<'_>, req: &Request) -> Decision {
        let wf = ctx.workflow;
        if self.is_end {
            return Err(format!("ticket {} has ended", self.id));
        }
        let state = self.state(wf)?;
        let t = wf
            .transition(req.transition_id)
            .filter(|t| t.source_state_id == state.id)
            .ok_or_else(|| {
                format!(
                    "transition {} is not a way out of the ticket's state {}",
                    req.transition_id, state.name
                )
            })?;
        let person = match who {
            Who::Person(u) => {
                if state.automatic() {
                    return Err(format!("state {} is handled by the engine, not by people", state.name));
                }
                if t.transition_type_id == TIMER {
                    return Err(format!("transition {} fires by its timer", t.name));
                }
                if self.may_handle(ctx, u)? {
                    return Err("accept the ticket before handling it".into());
                }
                if self.in_add_node {
                    return Err("an added node is open: only its end (add_node_end) is allowed".into());
                }
                Some(u)
            }
            _ => None,
        };
        let values = self.writes(wf, state, &req.fields, t.field_require_check && person.is_some())?;
        let mut next = self.clone();
        next.apply(values);
        next.modified_at = ctx.now;
        let (ptype, pname) = who.log_as();
        let mut logs = vec![LogEntry {
            state_id: state.id,
            transition_id: t.id,
            transition_name: t.name.clone(),
            attribute_type_id: t.attribute_type_id,
            participant_type_id: ptype,
            participant: pname,
            suggestion: req.suggestion.clone(),
            intervene_type_id: intervene::NORMAL,
        }];
        let mut via = t;
        if let (Some(u), participant::MULTI_ALL) = (person, self.participant_type_id) {
            next.multi_all_person.insert(
                u.to_owned(),
                Some(Handled {
                    transition_id: t.id,
                    transition_name: t.name.clone(),
                }),
            );
            let waiting: Vec<String> = next.participants(ctx.directory);
            if !waiting.is_empty() {
                next.participant = waiting.join(",");
                next.last_man.insert(state.id, u.to_owned());
                return Ok(Moved {
                    ticket: next,
                    logs,
                    effects: Vec::new(),
                });
            }
            if let Some(reject) = next
                .multi_all_person
                .values()
                .flatten()
                .filter_map(|h| wf.transition(h.transition_id))
                .find(|t| t.attribute_type_id == REJECT)
            {
                via = reject;
                logs[0].transition_id = via.id;
                logs[0].transition_name = via.name.clone();
                logs[0].attribute_type_id = via.attribute_type_id;
            }
        }
        if let Some(u) = person {
            next.last_man.insert(state.id, u.to_owned());
        }
        let values = next.values();
        let dest = via
            .condition_expression
            .iter()
            .find(|c| Expr::parse(&c.expression).is_ok_and(|e| e.holds(&values)))
            .map_or(via.destination_state_id, |c| c.target_state_id);
        let dest = wf
            .state(dest)
            .ok_or_else(|| format!("transition {} leads to state {dest}, which is gone", via.name))?;
        let mut effects = Vec::new();
        next.enter(ctx, dest, Some(via), &mut effects)?;
        Ok(Moved {
            ticket: next,
            logs,
            effects,
        })
    }

    /// Moves the ticket into `state` (by transition `via`, if any):
    /// resolves its participants, sets its flags, its timer and what it
    /// waits for, and says what the engine must do.
    pub fn enter(
        &mut self,
        ctx: &Ctx<'_>,
        state: &State,
        via: Option<&Transition>,
        effects: &mut Vec<Effect>,
    ) -> Result<(), String> {
        let dir = ctx.directory;
        self.state_id = state.id;
        self.is_end = state.type_id == 2;
        if let Some(t) = via {
            self.is_rejected = t.attribute_type_id == REJECT;
        }
        self.in_add_node = false;
        self.add_node_man.clear();
        self.multi_all_person.clear();
        self.script_run_last_result = true;
        self.waiting = None;
        self.job_key = None;
        self.timer_at = None;
        self.hook_attempts = 0;
        self.hook_next = None;
        self.modified_at = ctx.now;
        if self.is_end {
            self.participant_type_id = participant::NONE;
            self.participant.clear();
            if self.parent_ticket_id != 0 {
                effects.push(Effect::ChildEnded {
                    parent: self.parent_ticket_id,
                    parent_state: self.parent_ticket_state_id,
                });
            }
            return Ok(());
        }
        let name = &state.name;
        let nobody = |why: String| Err(format!("nobody can handle state {name}: {why}"));
        let users = |text: &str| -> Vec<String> {
            text.split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(String::from)
                .collect()
        };
        let (mut ptype, mut people): (u8, Vec<String>) = match state.participant_type_id {
            participant::ROBOT => {
                self.participant_type_id = participant::ROBOT;
                self.participant = state.participant.clone();
                self.waiting = Some(Waiting::Robot);
                effects.push(Effect::Robot {
                    process: state.participant.clone(),
                });
                return Ok(());
            }
            participant::HOOK => {
                self.participant_type_id = participant::HOOK;
                self.participant = "***".into();
                self.waiting = Some(Waiting::Hook);
                self.hook_next = Some(ctx.now);
                if let Some(h) = &state.hook {
                    effects.push(Effect::Hook(h.clone()));
                }
                return Ok(());
            }
            _ if state.sub_workflow_id != 0 => {
                self.participant_type_id = participant::PERSONAL;
                self.participant = LOONROBOT.into();
                self.waiting = Some(Waiting::Children);
                return Ok(());
            }
            participant::PERSONAL | participant::MULTI | participant::MULTI_ALL => {
                (participant::MULTI, users(&state.participant))
            }
            participant::DEPT => (
                participant::DEPT,
                dir.dept_members(state.participant.parse().unwrap_or(-1)),
            ),
            participant::ROLE => (
                participant::ROLE,
                dir.role_members(state.participant.parse().unwrap_or(-1)),
            ),
            participant::VARIABLE if state.participant == "creator" => (participant::MULTI, vec![self.creator.clone()]),
            participant::VARIABLE => match dir.approver_of(&self.creator) {
                Some(a) => (participant::MULTI, users(&a)),
                None => return nobody(format!("{}'s department has neither approver nor leader", self.creator)),
            },
            participant::FIELD => (
                participant::MULTI,
                users(
                    self.fields
                        .get(&state.participant)
                        .and_then(Value::as_str)
                        .unwrap_or(""),
                ),
            ),
            participant::PARENT_FIELD => (
                participant::MULTI,
                users(
                    ctx.parent
                        .and_then(|p| p.fields.get(&state.participant))
                        .and_then(Value::as_str)
                        .unwrap_or(""),
                ),
            ),
            other => return nobody(format!("participant type {other}")),
        };
        if let Some(u) = people.iter().find(|u| !dir.active(u)) {
            return nobody(format!("{u} is not an active user"));
        }
        if people.is_empty() {
            return nobody("the participant resolves to no one".into());
        }
        if state.remember_last_man_enable
            && let Some(last) = self.last_man.get(&state.id).filter(|u| dir.active(u))
        {
            ptype = participant::PERSONAL;
            people = vec![last.clone()];
        }
        if people.len() > 1 {
            match state.distribute_type_id {
                distribute::RANDOM => {
                    let i = (ctx.pick % people.len() as u64) as usize;
                    people = vec![people.swap_remove(i)];
                }
                distribute::ALL => {
                    ptype = participant::MULTI_ALL;
                    self.multi_all_person = people.iter().map(|u| (u.clone(), None)).collect();
                }
                _ => {}
            }
        }
        let (t, p) = match ptype {
            _ if people.len() == 1 => (participant::PERSONAL, people[0].clone()),
            participant::DEPT | participant::ROLE => (ptype, state.participant.clone()),
            _ => (ptype, people.join(",")),
        };
        self.participant_type_id = t;
        self.participant = p;
        for u in people {
            self.relate(&u);
        }
        if let Some(timer) = ctx
            .workflow
            .out_of(state.id)
            .filter(|t| t.transition_type_id == TIMER)
            .min_by_key(|t| t.timer)
        {
            self.timer_at = Some(ctx.now.plus_ms(timer.timer * 1000));
            self.waiting = Some(Waiting::Timer);
        }
        Ok(())
    }

    fn relate(&mut self, user: &str) {
        if !self.relation.iter().any(|r| r == user) {
            self.relation.push(user.to_owned());
        }
    }

    fn intervention(&self, user: &str, kind: u8, name: &str, suggestion: &str) -> LogEntry {
        LogEntry {
            state_id: self.state_id,
            transition_id: 0,
            transition_name: name.into(),
            attribute_type_id: 0,
            participant_type_id: participant::PERSONAL,
            participant: user.into(),
            suggestion: suggestion.into(),
            intervene_type_id: kind,
        }
    }

    fn done(self, log: LogEntry) -> Decision {
        Ok(Moved {
            ticket: self,
            logs: vec![log],
            effects: Vec::new(),
        })
    }

    /// `user` accepts it: they alone handle it now.
    pub fn accept(&self, ctx: &Ctx<'_>, user: &str) -> Decision {
        if !self.may_handle(ctx, user)? {
            return Err("the ticket has one handler: there is nothing to accept".into());
        }
        let mut t = self.clone();
        t.participant_type_id = participant::PERSONAL;
        t.participant = user.into();
        t.relate(user);
        t.modified_at = ctx.now;
        let log = t.intervention(user, intervene::ACCEPT, "接单", "接单处理");
        t.done(log)
    }

    fn target(&self, ctx: &Ctx<'_>, user: &str, target: &str) -> Result<(), String> {
        self.may_handle(ctx, user)?;
        if target.is_empty() || !ctx.directory.active(target) {
            return Err(format!("target_username {target:?} is not an active user"));
        }
        if target == user {
            return Err("target_username is the caller".into());
        }
        Ok(())
    }

    /// `user` hands it to `target`.
    pub fn deliver(&self, ctx: &Ctx<'_>, user: &str, target: &str, suggestion: &str) -> Decision {
        self.target(ctx, user, target)?;
        let mut t = self.clone();
        t.participant_type_id = participant::PERSONAL;
        t.participant = target.into();
        t.multi_all_person.clear();
        t.relate(target);
        t.modified_at = ctx.now;
        let log = t.intervention(user, intervene::DELIVER, "转交操作", suggestion);
        t.done(log)
    }

    /// `user` asks `target` first; it comes back to `user` at `add_node_end`.
    pub fn add_node(&self, ctx: &Ctx<'_>, user: &str, target: &str, suggestion: &str) -> Decision {
        if self.in_add_node {
            return Err("an added node is already open".into());
        }
        self.target(ctx, user, target)?;
        let mut t = self.clone();
        t.participant_type_id = participant::PERSONAL;
        t.participant = target.into();
        t.in_add_node = true;
        t.add_node_man = user.into();
        t.multi_all_person.clear();
        t.relate(target);
        t.modified_at = ctx.now;
        let log = t.intervention(user, intervene::ADD_NODE, "加签操作", suggestion);
        t.done(log)
    }

    /// The added node `user` is done: back to who added it.
    pub fn add_node_end(&self, ctx: &Ctx<'_>, user: &str, suggestion: &str) -> Decision {
        if !self.in_add_node {
            return Err(format!("ticket {} has no added node open", self.id));
        }
        self.may_handle(ctx, user)?;
        let mut t = self.clone();
        t.participant_type_id = participant::PERSONAL;
        t.participant = std::mem::take(&mut t.add_node_man);
        t.in_add_node = false;
        t.modified_at = ctx.now;
        let log = t.intervention(user, intervene::ADD_NODE_END, "完成加签", suggestion);
        t.done(log)
    }

    /// Closes it by force (its creator or an administrator).
    pub fn close(&self, ctx: &Ctx<'_>, user: &str, suggestion: &str) -> Decision {
        if self.is_end {
            return Err(format!("ticket {} has ended", self.id));
        }
        if user != self.creator && !ctx.directory.is_admin(user) {
            return Err("only the creator or an administrator may close a ticket".into());
        }
        let mut t = self.clone();
        let mut effects = Vec::new();
        t.enter(ctx, ctx.workflow.end(), None, &mut effects)?;
        let mut log = self.intervention(
            user,
            intervene::CLOSE,
            "强制关闭",
            &format!("强制关闭工单:{suggestion}"),
        );
        log.state_id = t.state_id;
        Ok(Moved {
            ticket: t,
            logs: vec![log],
            effects,
        })
    }

    /// An administrator puts it in state `state_id` (participants resolved anew).
    pub fn change_state(&self, ctx: &Ctx<'_>, user: &str, state_id: i64) -> Decision {
        if !ctx.directory.is_admin(user) {
            return Err("only an administrator may change a ticket's state".into());
        }
        let state = ctx
            .workflow
            .state(state_id)
            .ok_or_else(|| format!("state {state_id} is not a state of workflow {}", ctx.workflow.name))?;
        let mut t = self.clone();
        let mut effects = Vec::new();
        t.enter(ctx, state, None, &mut effects)?;
        let log = self.intervention(
            user,
            intervene::CHANGE_STATE,
            "修改状态",
            &format!("状态改为:{}", state.name),
        );
        Ok(Moved {
            ticket: t,
            logs: vec![log],
            effects,
        })
    }

    /// `user` (a current participant or an administrator) changes field values.
    pub fn update_fields(&self, ctx: &Ctx<'_>, user: &str, given: &Map<String, Value>) -> Result<Ticket, String> {
        if !ctx.directory.is_admin(user) && !self.participants(ctx.directory).iter().any(|p| p == user) {
            return Err(format!("{user} is neither a current participant nor an administrator"));
        }
        let wf = ctx.workflow;
        let mut values = Map::new();
        for (k, v) in given {
            let v = match wf.field(k) {
                Some(f) => coerce(f, v)?,
                None if k == "title" && v.is_string() => v.clone(),
                None => return Err(format!("{k} is not a field of workflow {}", wf.name)),
            };
            values.insert(k.clone(), v);
        }
        let mut t = self.clone();
        t.apply(values);
        t.modified_at = ctx.now;
        Ok(t)
    }

    /// A comment by `user` (someone who may see it).
    pub fn comment(&self, ctx: &Ctx<'_>, user: &str, suggestion: &str) -> Result<LogEntry, String> {
        if !self.may_view(ctx.workflow, ctx.directory, user) {
            return Err(format!("{user} may not see ticket {}", self.id));
        }
        Ok(self.intervention(user, intervene::COMMENT, "评论", suggestion))
    }

    fn single_way_out<'w>(&self, wf: &'w Workflow) -> Result<&'w Transition, String> {
        wf.out_of(self.state_id)
            .next()
            .ok_or_else(|| format!("state {} has no way out", self.state_id))
    }

    /// The robot job `key` of its robot state ended: on success its outputs
    /// are written into the fields the state marks writable and the ticket
    /// moves on; otherwise `script_run_last_result` is false and it stays.
    pub fn robot_ended(&self, ctx: &Ctx<'_>, key: Key, ok: bool, outputs: Option<&Value>, why: &str) -> Decision {
        if self.waiting != Some(Waiting::Robot) || self.job_key != Some(key) {
            return Err(format!("ticket {} is not waiting for job {key}", self.id));
        }
        let process = self.participant.clone();
        if ok {
            let wf = ctx.workflow;
            let state = self.state(wf)?;
            let mut fields = Map::new();
            if let Some(Value::Object(out)) = outputs {
                for (k, v) in out.iter().filter(|(k, _)| state.writable(k)) {
                    fields.insert(k.clone(), v.clone());
                }
            }
            let t = self.single_way_out(wf)?;
            let req = Request {
                transition_id: t.id,
                suggestion: format!("job {key} Successful"),
                fields,
            };
            match self.handle(ctx, Who::Robot(&process), &req) {
                Ok(m) => return Ok(m),
                Err(e) => return self.robot_failed(ctx, &process, &format!("job {key} succeeded, but: {e}")),
            }
        }
        self.robot_failed(ctx, &process, &format!("job {key}: {why}"))
    }

    fn robot_failed(&self, ctx: &Ctx<'_>, process: &str, why: &str) -> Decision {
        let mut t = self.clone();
        t.script_run_last_result = false;
        t.job_key = None;
        t.modified_at = ctx.now;
        let log = LogEntry {
            participant_type_id: participant::ROBOT,
            ..t.intervention(process, intervene::NORMAL, "脚本执行失败", why)
        };
        t.done(log)
    }

    /// Runs its robot or hook again after a failure (`retry_script`).
    pub fn retry_script(&self, ctx: &Ctx<'_>, user: &str) -> Decision {
        if !self.may_view(ctx.workflow, ctx.directory, user) {
            return Err(format!("{user} may not see ticket {}", self.id));
        }
        let state = self.state(ctx.workflow)?;
        let effect = match (self.waiting, &state.hook) {
            (Some(Waiting::Robot), _) => Effect::Robot {
                process: self.participant.clone(),
            },
            (Some(Waiting::Hook), Some(h)) => Effect::Hook(h.clone()),
            _ => return Err("the ticket's participant is neither a robot nor a hook: nothing to retry".into()),
        };
        if self.script_run_last_result {
            return Err("the last run did not fail: nothing to retry".into());
        }
        let mut t = self.clone();
        t.script_run_last_result = true;
        t.hook_attempts = 0;
        if t.waiting == Some(Waiting::Hook) {
            t.hook_next = Some(ctx.now);
        }
        t.modified_at = ctx.now;
        let log = t.intervention(user, intervene::NORMAL, "重试", "Ticket script retry start");
        Ok(Moved {
            ticket: t,
            logs: vec![log],
            effects: vec![effect],
        })
    }

    /// The hook was posted (`ok`) or failed: with `wait` the ticket moves on
    /// at once; a failure sets `script_run_last_result` false and, before
    /// [`HOOK_TRIES`] failures, sets the next try.
    pub fn hook_posted(&self, ctx: &Ctx<'_>, ok: bool, why: &str) -> Decision {
        if self.waiting != Some(Waiting::Hook) {
            return Err(format!("ticket {} is not waiting on a hook", self.id));
        }
        let state = self.state(ctx.workflow)?;
        let wait = state.hook.as_ref().is_some_and(|h| h.wait);
        if self.hook_next.is_none() {
            return Err(format!("ticket {}'s hook is not due", self.id));
        }
        let mut t = self.clone();
        t.modified_at = ctx.now;
        t.hook_attempts += 1;
        t.hook_next = None;
        if !ok {
            t.script_run_last_result = false;
            if t.hook_attempts < HOOK_TRIES {
                t.hook_next = Some(ctx.now.plus_ms(1000 << t.hook_attempts));
            }
            let log = LogEntry {
                participant_type_id: participant::HOOK,
                ..t.intervention(LOONROBOT, intervene::NORMAL, "hook失败", why)
            };
            return t.done(log);
        }
        if !wait {
            t.script_run_last_result = true;
            return Ok(Moved {
                ticket: t,
                logs: Vec::new(),
                effects: Vec::new(),
            });
        }
        let way = self.single_way_out(ctx.workflow)?;
        let req = Request {
            transition_id: way.id,
            suggestion: "hook posted".into(),
            fields: Map::new(),
        };
        t.handle(ctx, Who::Hook, &req)
    }

    /// The hook's callback (`hook_call_back`): `result` false marks the run
    /// failed; true writes `field_value` (fields the state marks writable)
    /// and moves on.
    pub fn hook_answered(&self, ctx: &Ctx<'_>, result: bool, msg: &str, field_value: &Map<String, Value>) -> Decision {
        if self.waiting != Some(Waiting::Hook) {
            return Err(format!("ticket {} is not waiting on a hook", self.id));
        }
        if self.hook_next.is_some() {
            return Err(format!(
                "ticket {} is not waiting on a hook's callback: its hook is not posted yet",
                self.id
            ));
        }
        let mut t = self.clone();
        t.modified_at = ctx.now;
        if !result {
            t.script_run_last_result = false;
            let log = LogEntry {
                participant_type_id: participant::HOOK,
                ..t.intervention(LOONROBOT, intervene::NORMAL, "hook回调失败", msg)
            };
            return t.done(log);
        }
        let way = self.single_way_out(ctx.workflow)?;
        let req = Request {
            transition_id: way.id,
            suggestion: msg.into(),
            fields: field_value.clone(),
        };
        t.handle(ctx, Who::Hook, &req)
    }

    /// Its timer transition, if due by `ctx.now`.
    pub fn timer_due(&self, ctx: &Ctx<'_>) -> Option<Decision> {
        self.timer_at.filter(|at| *at <= ctx.now)?;
        let t = ctx
            .workflow
            .out_of(self.state_id)
            .filter(|t| t.transition_type_id == TIMER)
            .min_by_key(|t| t.timer)?;
        let req = Request {
            transition_id: t.id,
            suggestion: format!("定时器流转 ({} s)", t.timer),
            fields: Map::new(),
        };
        Some(self.handle(ctx, Who::Timer, &req))
    }

    /// All its children of its current state ended: it moves on.
    pub fn children_ended(&self, ctx: &Ctx<'_>) -> Decision {
        if self.waiting != Some(Waiting::Children) {
            return Err(format!("ticket {} is not waiting for child tickets", self.id));
        }
        let way = self.single_way_out(ctx.workflow)?;
        let req = Request {
            transition_id: way.id,
            suggestion: "所有子工单处理完毕，自动流转".into(),
            fields: Map::new(),
        };
        self.handle(ctx, Who::Children, &req)
    }
}
