//! Workflow definitions (seed 004): fields, states and transitions, as a
//! document that uses the seed's own names, checked and compiled into a
//! [`Workflow`] with ids.
//!
//! A definition is refused, with the exact reason, unless: state names and
//! field keys are unique; exactly one state is the start (`type_id` 1) and
//! at least one is an end (2); every transition joins two states of the
//! workflow; every state can reach an end state (a cycle no path leaves is
//! refused); a robot, hook or sub-workflow state has exactly one way out
//! (the seed's rule: the engine takes it by itself); condition expressions
//! parse and read known fields; participant types, distribution types and
//! field attributes are the seed's numbers.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use petgraph::graph::{DiGraph, NodeIndex};
use petgraph::visit::{Bfs, Reversed};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::expr::Expr;
use crate::record::{Cell, Column, Kind, Mapped, Record};
use crate::time::Timestamp;

/// Participant types (seed 004 "处理人类型").
pub mod participant {
    /// None (start and end states).
    pub const NONE: u8 = 0;
    /// One person (`username`).
    pub const PERSONAL: u8 = 1;
    /// Several people (comma-separated usernames).
    pub const MULTI: u8 = 2;
    /// A department (its id): its members.
    pub const DEPT: u8 = 3;
    /// A role (its id): its members.
    pub const ROLE: u8 = 4;
    /// A variable: `creator` or `creator_tl`.
    pub const VARIABLE: u8 = 5;
    /// A robot: the participant names the process that runs the state.
    pub const ROBOT: u8 = 6;
    /// A ticket field holding usernames.
    pub const FIELD: u8 = 7;
    /// A field of the parent ticket holding usernames.
    pub const PARENT_FIELD: u8 = 8;
    /// Several people, each of whom must handle.
    pub const MULTI_ALL: u8 = 9;
    /// A hook: `{"hook_url", "hook_token", "wait"}`.
    pub const HOOK: u8 = 10;

    /// The seed's name of a participant type.
    pub fn name(t: u8) -> &'static str {
        match t {
            PERSONAL => "个人",
            MULTI => "多人",
            DEPT => "部门",
            ROLE => "角色",
            VARIABLE => "变量",
            ROBOT => "脚本",
            FIELD => "工单字段",
            PARENT_FIELD => "父工单字段",
            MULTI_ALL => "多人全部处理",
            HOOK => "hook",
            _ => "无",
        }
    }
}

/// Distribution types (seed 004 "分配方式").
pub mod distribute {
    /// Several handlers must accept first.
    pub const ACCEPT: u8 = 1;
    /// Anyone of them handles.
    pub const DIRECT: u8 = 2;
    /// One of them, at random.
    pub const RANDOM: u8 = 3;
    /// All of them must handle.
    pub const ALL: u8 = 4;
}

/// Field attributes in a state (`state_field_str`).
pub mod attribute {
    /// Shown, never written by a handler.
    pub const READ_ONLY: u8 = 1;
    /// Must be given.
    pub const REQUIRED: u8 = 2;
    /// May be given.
    pub const OPTIONAL: u8 = 3;
}

/// Field types (seed 004 "自定义字段类型").
pub const FIELD_TYPES: [u16; 14] = [5, 10, 15, 20, 25, 30, 35, 40, 45, 50, 55, 60, 70, 80];

/// Names a workflow's own fields may not take (the ticket's base fields;
/// `title` may be declared: it is the ticket's title).
pub const BASE_FIELDS: [&str; 17] = [
    "workflow_id",
    "sn",
    "state_id",
    "parent_ticket_id",
    "parent_ticket_state_id",
    "participant_type_id",
    "participant",
    "relation",
    "in_add_node",
    "add_node_man",
    "transition_id",
    "suggestion",
    "username",
    "creator",
    "gmt_created",
    "gmt_modified",
    "is_deleted",
];

/// A workflow's field (seed `CustomField`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Field {
    /// `field_key`.
    pub field_key: String,
    /// `field_name`.
    pub field_name: String,
    /// `field_type_id`: one of [`FIELD_TYPES`].
    pub field_type_id: u16,
    /// `order_id`.
    #[serde(default)]
    pub order_id: i64,
    /// `default_value`.
    #[serde(default)]
    pub default_value: Option<String>,
    /// `description`.
    #[serde(default)]
    pub description: String,
    /// `field_choice`: value → label, for choice types.
    #[serde(default)]
    pub field_choice: Map<String, Value>,
    /// `label`: free-form, for callers.
    #[serde(default = "empty_object")]
    pub label: Value,
}

fn empty_object() -> Value {
    Value::Object(Map::new())
}

fn one() -> u8 {
    1
}

fn yes() -> bool {
    true
}

/// A hook participant (`participant_type_id` 10).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hook {
    /// Where the ticket is posted.
    pub hook_url: String,
    /// The token `signature = md5(timestamp + hook_token)` is made with.
    pub hook_token: String,
    /// `true`: the ticket moves on once the hook is posted; `false`: it
    /// waits for `hook_call_back`.
    #[serde(default)]
    pub wait: bool,
}

/// A state as a definition gives it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StateDef {
    /// `name`, unique in the workflow.
    pub name: String,
    /// `type_id`: 0 normal, 1 start, 2 end.
    #[serde(default)]
    pub type_id: u8,
    /// `participant_type_id` (see [`participant`]).
    #[serde(default)]
    pub participant_type_id: u8,
    /// `participant`: a string, or a hook's object.
    #[serde(default)]
    pub participant: Value,
    /// `distribute_type_id` (see [`distribute`]), default 1.
    #[serde(default = "one")]
    pub distribute_type_id: u8,
    /// `state_field_str`: field key → attribute (see [`attribute`]).
    #[serde(default)]
    pub state_field_str: BTreeMap<String, u8>,
    /// `order_id`.
    #[serde(default)]
    pub order_id: i64,
    /// `is_hidden`.
    #[serde(default)]
    pub is_hidden: bool,
    /// The sub-workflow whose tickets this state waits for, by name.
    #[serde(default)]
    pub sub_workflow: Option<String>,
    /// `label`.
    #[serde(default = "empty_object")]
    pub label: Value,
    /// `remember_last_man_enable`.
    #[serde(default)]
    pub remember_last_man_enable: bool,
}

/// A condition of a transition, by state name.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ConditionDef {
    /// The expression (see [`super::expr`]).
    pub expression: String,
    /// The state the ticket goes to when it holds.
    pub target_state: String,
}

/// A transition as a definition gives it (states by name).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TransitionDef {
    /// `name`: the button.
    pub name: String,
    /// From this state.
    pub source_state: String,
    /// To this state (unless a condition holds).
    pub destination_state: String,
    /// `transition_type_id`: 1 normal, 2 timer.
    #[serde(default = "one")]
    pub transition_type_id: u8,
    /// `timer`: seconds after the ticket enters the source state (type 2).
    #[serde(default)]
    pub timer: u64,
    /// `condition_expression`, evaluated in order; the first that holds wins.
    #[serde(default)]
    pub condition_expression: Vec<ConditionDef>,
    /// `attribute_type_id`: 1 agree, 2 reject, 3 other.
    #[serde(default = "one")]
    pub attribute_type_id: u8,
    /// `field_require_check`, default true.
    #[serde(default = "yes")]
    pub field_require_check: bool,
    /// `alert_enable`.
    #[serde(default)]
    pub alert_enable: bool,
    /// `alert_text`.
    #[serde(default)]
    pub alert_text: String,
}

/// A workflow definition, as the configuration and the admin API take it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WorkflowDef {
    /// `name`, unique.
    pub name: String,
    /// `description`.
    #[serde(default)]
    pub description: String,
    /// `view_permission_check`: only related users see its tickets (default).
    #[serde(default = "yes")]
    pub view_permission_check: bool,
    /// `limit_expression`: kept and shown.
    #[serde(default = "empty_object")]
    pub limit_expression: Value,
    /// `display_form_str`: the fields a form shows, kept and shown.
    #[serde(default)]
    pub display_form_str: Vec<String>,
    /// Its fields.
    #[serde(default)]
    pub fields: Vec<Field>,
    /// Its states.
    pub states: Vec<StateDef>,
    /// Its transitions.
    #[serde(default)]
    pub transitions: Vec<TransitionDef>,
}

/// A compiled state.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct State {
    /// Its id (unique across workflows).
    pub id: i64,
    /// `name`.
    pub name: String,
    /// `type_id`.
    pub type_id: u8,
    /// `participant_type_id`.
    pub participant_type_id: u8,
    /// `participant` as text (a hook's is its JSON).
    pub participant: String,
    /// The hook, for participant type 10.
    #[serde(default)]
    pub hook: Option<Hook>,
    /// `distribute_type_id`.
    pub distribute_type_id: u8,
    /// `state_field_str`.
    pub state_field_str: BTreeMap<String, u8>,
    /// `order_id`.
    pub order_id: i64,
    /// `is_hidden`.
    pub is_hidden: bool,
    /// `sub_workflow_id` (0: none).
    pub sub_workflow_id: i64,
    /// `label`.
    pub label: Value,
    /// `remember_last_man_enable`.
    pub remember_last_man_enable: bool,
}

impl State {
    /// Fields a handler must give here.
    pub fn required(&self) -> impl Iterator<Item = &str> {
        self.state_field_str
            .iter()
            .filter(|(_, a)| **a == attribute::REQUIRED)
            .map(|(k, _)| k.as_str())
    }

    /// Whether a handler (or a robot, or a hook's callback) may write `key` here.
    pub fn writable(&self, key: &str) -> bool {
        matches!(
            self.state_field_str.get(key),
            Some(&attribute::REQUIRED | &attribute::OPTIONAL)
        )
    }

    /// Whether the engine moves a ticket on from here by itself (robot, hook, sub-workflow).
    pub fn automatic(&self) -> bool {
        matches!(self.participant_type_id, participant::ROBOT | participant::HOOK) || self.sub_workflow_id != 0
    }
}

/// A compiled condition.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Condition {
    /// `expression`.
    pub expression: String,
    /// `target_state_id`.
    pub target_state_id: i64,
}

/// A compiled transition.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Transition {
    /// Its id (unique across workflows).
    pub id: i64,
    /// `name`.
    pub name: String,
    /// `source_state_id`.
    pub source_state_id: i64,
    /// `destination_state_id`.
    pub destination_state_id: i64,
    /// `transition_type_id`.
    pub transition_type_id: u8,
    /// `timer` (seconds).
    pub timer: u64,
    /// `condition_expression`.
    pub condition_expression: Vec<Condition>,
    /// `attribute_type_id`.
    pub attribute_type_id: u8,
    /// `field_require_check`.
    pub field_require_check: bool,
    /// `alert_enable`.
    pub alert_enable: bool,
    /// `alert_text`.
    pub alert_text: String,
}

/// The longest timer a transition may have: ten years, in seconds.
pub const MAX_TIMER_S: u64 = 10 * 366 * 24 * 3600;

/// Transition attribute: reject.
pub const REJECT: u8 = 2;
/// Transition type: timer.
pub const TIMER: u8 = 2;

/// A workflow, compiled: ids given, checked (a record kind).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Workflow {
    /// Its id.
    pub id: i64,
    /// Commit version.
    pub version: u64,
    /// `name`.
    pub name: String,
    /// `description`.
    pub description: String,
    /// `view_permission_check`.
    pub view_permission_check: bool,
    /// `limit_expression`.
    pub limit_expression: Value,
    /// `display_form_str`.
    pub display_form_str: Vec<String>,
    /// Its fields.
    pub fields: Vec<Field>,
    /// Its states, in definition order.
    pub states: Vec<State>,
    /// Its transitions, in definition order.
    pub transitions: Vec<Transition>,
    /// Who saved it.
    pub creator: String,
    /// When it was first saved.
    pub created_at: Timestamp,
    /// When it was last saved.
    pub modified_at: Timestamp,
    /// The definition it was compiled from (for export).
    pub definition: Arc<WorkflowDef>,
}

impl Mapped for Workflow {
    const KIND: &'static Kind = &Kind {
        table: "rpa_flow_workflows",
        name: "workflow",
        key: Column::int("id"),
        sealed: false,
        cached: false,
        columns: &[Column::text("name").unique("workflow name")],
    };
    fn key(&self) -> Cell {
        Cell::Int(self.id)
    }
    fn version(&self) -> u64 {
        self.version
    }
    fn cells(&self) -> Vec<Cell> {
        vec![Cell::from(self.name.as_str())]
    }
}

impl Record for Workflow {}

/// The serial state and transition ids come from.
pub const STATE_IDS: &str = "rpa_flow_states";

impl Workflow {
    /// A state of this workflow.
    pub fn state(&self, id: i64) -> Option<&State> {
        self.states.iter().find(|s| s.id == id)
    }

    /// A transition of this workflow.
    pub fn transition(&self, id: i64) -> Option<&Transition> {
        self.transitions.iter().find(|t| t.id == id)
    }

    /// A field of this workflow.
    pub fn field(&self, key: &str) -> Option<&Field> {
        self.fields.iter().find(|f| f.field_key == key)
    }

    /// The start state.
    pub fn start(&self) -> &State {
        self.states
            .iter()
            .find(|s| s.type_id == 1)
            .expect("a compiled workflow has a start state")
    }

    /// An end state (the first).
    pub fn end(&self) -> &State {
        self.states
            .iter()
            .find(|s| s.type_id == 2)
            .expect("a compiled workflow has an end state")
    }

    /// The transitions out of state `state`, in definition order.
    pub fn out_of(&self, state: i64) -> impl Iterator<Item = &Transition> {
        self.transitions.iter().filter(move |t| t.source_state_id == state)
    }
}

/// Who may create tickets of a workflow, and how many (`limit_expression`):
/// `{"period": hours, "count": n, "level": 1 (each user) | 2 (everyone),
/// "allow_persons": "a,b", "allow_depts": "1,2", "allow_roles": "1,2"}`,
/// every key optional.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateLimit {
    /// The period, in hours, `count` applies to.
    #[serde(default)]
    pub period: Option<u64>,
    /// At most this many tickets created in `period`.
    #[serde(default)]
    pub count: Option<u64>,
    /// 1: each user's own tickets count (default); 2: everyone's.
    #[serde(default)]
    pub level: Option<u8>,
    /// Only these usernames (comma-separated) may create.
    #[serde(default)]
    pub allow_persons: Option<String>,
    /// Only members of these departments (ids, comma-separated; a
    /// department's sub-departments included) may create.
    #[serde(default)]
    pub allow_depts: Option<String>,
    /// Only members of these roles (ids, comma-separated) may create.
    #[serde(default)]
    pub allow_roles: Option<String>,
}

impl CreateLimit {
    /// The limit `v` describes (`{}` or null: none), or why it is malformed.
    pub fn of(v: &Value) -> Result<CreateLimit, String> {
        if v.is_null() || v.as_object().is_some_and(Map::is_empty) || v.as_str() == Some("") {
            return Ok(CreateLimit::default());
        }
        let v = match v {
            Value::String(s) => serde_json::from_str(s).map_err(|e| format!("limit_expression: {e}"))?,
            other => other.clone(),
        };
        let l: CreateLimit = serde_json::from_value(v).map_err(|e| format!("limit_expression: {e}"))?;
        if l.period.is_some() != l.count.is_some() {
            return Err("limit_expression: period and count go together".into());
        }
        if !matches!(l.level, None | Some(1) | Some(2)) {
            return Err("limit_expression: level is 1 (each user) or 2 (everyone)".into());
        }
        for ids in [&l.allow_depts, &l.allow_roles].into_iter().flatten() {
            if ids
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .any(|s| s.parse::<i64>().is_err())
            {
                return Err(format!("limit_expression: {ids:?} must be comma-separated ids"));
            }
        }
        Ok(l)
    }

    /// Whether `user` may create a ticket now, `made` counting the tickets
    /// created in the period (by `user` alone, or by everyone).
    pub fn allows(&self, user: &str, dir: &super::Directory, made: impl FnOnce(bool) -> u64) -> Result<(), String> {
        let list = |s: &str| {
            s.split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(String::from)
                .collect::<Vec<_>>()
        };
        if let Some(p) = &self.allow_persons
            && !list(p).iter().any(|u| u == user)
        {
            return Err(format!("{user} may not create tickets of this workflow"));
        }
        if let Some(d) = &self.allow_depts {
            let allowed: Vec<i64> = list(d).iter().filter_map(|s| s.parse().ok()).collect();
            let mut dept = dir.user(user).map_or(0, |u| u.dept_id);
            let mut seen = 0;
            while dept != 0 && !allowed.contains(&dept) && seen < 64 {
                dept = dir.dept(dept).map_or(0, |d| d.parent_dept_id);
                seen += 1;
            }
            if dept == 0 || !allowed.contains(&dept) {
                return Err(format!("{user}'s department may not create tickets of this workflow"));
            }
        }
        if let Some(r) = &self.allow_roles {
            let allowed: Vec<i64> = list(r).iter().filter_map(|s| s.parse().ok()).collect();
            if !allowed.iter().any(|r| dir.role_members(*r).iter().any(|m| m == user)) {
                return Err(format!("{user}'s roles may not create tickets of this workflow"));
            }
        }
        if let (Some(period), Some(count)) = (self.period, self.count) {
            let everyone = self.level == Some(2);
            if made(everyone) >= count {
                return Err(format!(
                    "at most {count} tickets of this workflow may be created in {period} hours{}",
                    if everyone { "" } else { " by each user" }
                ));
            }
        }
        Ok(())
    }
}

/// What a definition needs from its surroundings while it is compiled.
pub trait Surroundings {
    /// The id of the workflow named `name`, if there is one.
    fn workflow_id(&self, name: &str) -> Option<i64>;
    /// Whether a process named `name` exists (robot states).
    fn process_exists(&self, name: &str) -> bool;
}

impl WorkflowDef {
    /// How many fresh ids [`WorkflowDef::compile`] may take at most.
    pub fn ids_needed(&self) -> usize {
        self.states.len() + self.transitions.len()
    }

    /// Checks this definition and compiles it into workflow `id`.
    /// `previous` is the workflow it replaces: states keep their ids by name
    /// and transitions by (source, name), so tickets in flight stay valid.
    /// `fresh` gives new ids (at most [`WorkflowDef::ids_needed`]).
    pub fn compile(
        &self,
        id: i64,
        creator: &str,
        now: Timestamp,
        previous: Option<&Workflow>,
        fresh: &mut dyn Iterator<Item = i64>,
        around: &dyn Surroundings,
    ) -> Result<Workflow, String> {
        CreateLimit::of(&self.limit_expression).map_err(|e| format!("workflow {}: {e}", self.name))?;
        let states = self.states(previous, fresh, around)?;
        let transitions = self.transitions(&states, previous, fresh)?;
        Ok(Workflow {
            id,
            version: previous.map_or(1, |p| p.version + 1),
            name: self.name.clone(),
            description: self.description.clone(),
            view_permission_check: self.view_permission_check,
            limit_expression: self.limit_expression.clone(),
            display_form_str: self.display_form_str.clone(),
            fields: self.fields.clone(),
            states,
            transitions,
            creator: previous.map_or_else(|| creator.to_owned(), |p| p.creator.clone()),
            created_at: previous.map_or(now, |p| p.created_at),
            modified_at: now,
            definition: Arc::new(self.clone()),
        })
    }

    fn states(
        &self,
        previous: Option<&Workflow>,
        fresh: &mut dyn Iterator<Item = i64>,
        around: &dyn Surroundings,
    ) -> Result<Vec<State>, String> {
        let wf = &self.name;
        if self.name.trim().is_empty() {
            return Err("a workflow needs a name".into());
        }
        let mut keys = HashMap::new();
        for f in &self.fields {
            if f.field_key.trim().is_empty() {
                return Err(format!("workflow {wf}: a field has an empty field_key"));
            }
            if BASE_FIELDS.contains(&f.field_key.as_str()) {
                return Err(format!(
                    "workflow {wf}: field {} is a ticket's own field and cannot be declared",
                    f.field_key
                ));
            }
            if !FIELD_TYPES.contains(&f.field_type_id) {
                return Err(format!(
                    "workflow {wf}: field {} has field_type_id {}, which is none of {FIELD_TYPES:?}",
                    f.field_key, f.field_type_id
                ));
            }
            if keys.insert(f.field_key.as_str(), f).is_some() {
                return Err(format!("workflow {wf}: field {} is declared twice", f.field_key));
            }
        }
        let known = |k: &str| keys.contains_key(k) || k == "title" || BASE_FIELDS.contains(&k);
        let mut by_name: HashMap<&str, usize> = HashMap::new();
        for (i, s) in self.states.iter().enumerate() {
            if by_name.insert(s.name.as_str(), i).is_some() {
                return Err(format!("workflow {wf}: state {} is declared twice", s.name));
            }
        }
        let starts = self.states.iter().filter(|s| s.type_id == 1).count();
        if starts != 1 {
            return Err(format!(
                "workflow {wf}: it needs exactly one start state (type_id 1), it has {starts}"
            ));
        }
        if !self.states.iter().any(|s| s.type_id == 2) {
            return Err(format!("workflow {wf}: it needs an end state (type_id 2)"));
        }
        let mut states = Vec::with_capacity(self.states.len());
        for s in &self.states {
            let name = &s.name;
            if s.type_id > 2 {
                return Err(format!(
                    "workflow {wf}: state {name} has type_id {}, not 0, 1 or 2",
                    s.type_id
                ));
            }
            if !(1..=4).contains(&s.distribute_type_id) {
                return Err(format!(
                    "workflow {wf}: state {name} has distribute_type_id {}, not 1 to 4",
                    s.distribute_type_id
                ));
            }
            for (k, a) in &s.state_field_str {
                if !known(k) {
                    return Err(format!(
                        "workflow {wf}: state {name} names field {k}, which is not declared"
                    ));
                }
                if !(1..=3).contains(a) {
                    return Err(format!(
                        "workflow {wf}: state {name} gives field {k} attribute {a}, not 1 (read-only), 2 (required) or 3 (optional)"
                    ));
                }
            }
            let text = match &s.participant {
                Value::Null => String::new(),
                Value::String(t) => t.trim().to_owned(),
                other => other.to_string(),
            };
            let mut hook = None;
            let t = s.participant_type_id;
            let bad = |why: &str| Err(format!("workflow {wf}: state {name}: {why}"));
            match t {
                participant::NONE => {
                    if s.type_id == 0 {
                        return bad("a normal state needs a participant");
                    }
                }
                participant::PERSONAL | participant::MULTI | participant::MULTI_ALL if text.is_empty() => {
                    return bad("participant names nobody");
                }
                participant::DEPT | participant::ROLE if text.parse::<i64>().is_err() => {
                    return bad("participant must be a department or role id");
                }
                participant::VARIABLE if text != "creator" && text != "creator_tl" => {
                    return bad("a variable participant is creator or creator_tl");
                }
                participant::ROBOT => {
                    if !around.process_exists(&text) {
                        return bad(&format!("participant names process {text:?}, which does not exist"));
                    }
                }
                participant::FIELD if !keys.contains_key(text.as_str()) => {
                    return bad(&format!("participant names field {text:?}, which is not declared"));
                }
                participant::PARENT_FIELD if text.is_empty() => return bad("participant names no parent field"),
                participant::HOOK => {
                    let h: Hook = match &s.participant {
                        Value::String(t) => serde_json::from_str(t),
                        v => serde_json::from_value(v.clone()),
                    }
                    .map_err(|e| format!("workflow {wf}: state {name}: a hook participant is {{\"hook_url\", \"hook_token\", \"wait\"}}: {e}"))?;
                    if !(h.hook_url.starts_with("http://") || h.hook_url.starts_with("https://")) {
                        return bad("hook_url must be an http(s) URL");
                    }
                    hook = Some(h);
                }
                1..=10 => {}
                other => return bad(&format!("participant_type_id {other} is not 0 to 10")),
            }
            let sub_workflow_id = match &s.sub_workflow {
                None => 0,
                Some(sub) if sub == &self.name => return bad("a state cannot wait for its own workflow"),
                Some(sub) => around
                    .workflow_id(sub)
                    .ok_or_else(|| format!("workflow {wf}: state {name}: sub-workflow {sub} does not exist"))?,
            };
            let id = previous
                .and_then(|p| p.states.iter().find(|o| &o.name == name))
                .map(|o| o.id)
                .or_else(|| fresh.next())
                .ok_or("out of ids")?;
            states.push(State {
                id,
                name: name.clone(),
                type_id: s.type_id,
                participant_type_id: t,
                participant: if hook.is_some() { String::new() } else { text },
                hook,
                distribute_type_id: s.distribute_type_id,
                state_field_str: s.state_field_str.clone(),
                order_id: s.order_id,
                is_hidden: s.is_hidden,
                sub_workflow_id,
                label: s.label.clone(),
                remember_last_man_enable: s.remember_last_man_enable,
            });
        }
        Ok(states)
    }

    fn transitions(
        &self,
        states: &[State],
        previous: Option<&Workflow>,
        fresh: &mut dyn Iterator<Item = i64>,
    ) -> Result<Vec<Transition>, String> {
        let wf = &self.name;
        let state = |name: &str| {
            states
                .iter()
                .find(|s| s.name == name)
                .ok_or_else(|| format!("workflow {wf}: a transition names state {name}, which is not declared"))
        };
        let keys: Vec<&str> = self.fields.iter().map(|f| f.field_key.as_str()).collect();
        let mut out = Vec::with_capacity(self.transitions.len());
        for t in &self.transitions {
            let from = state(&t.source_state)?;
            let to = state(&t.destination_state)?;
            let mut conditions = Vec::new();
            for c in &t.condition_expression {
                let e = Expr::parse(&c.expression).map_err(|e| {
                    format!(
                        "workflow {wf}: transition {}: condition {:?}: {e}",
                        t.name, c.expression
                    )
                })?;
                if let Some(k) = e
                    .fields()
                    .into_iter()
                    .find(|k| !keys.contains(k) && *k != "title" && !BASE_FIELDS.contains(k))
                {
                    return Err(format!(
                        "workflow {wf}: transition {}: condition {:?} reads field {k}, which is not declared",
                        t.name, c.expression
                    ));
                }
                conditions.push(Condition {
                    expression: c.expression.clone(),
                    target_state_id: state(&c.target_state)?.id,
                });
            }
            if !(1..=2).contains(&t.transition_type_id) {
                return Err(format!(
                    "workflow {wf}: transition {}: transition_type_id is 1 or 2",
                    t.name
                ));
            }
            if t.transition_type_id == TIMER && !(1..=MAX_TIMER_S).contains(&t.timer) {
                return Err(format!(
                    "workflow {wf}: transition {}: a timer transition needs timer seconds, from 1 to {MAX_TIMER_S}",
                    t.name
                ));
            }
            if !(1..=3).contains(&t.attribute_type_id) {
                return Err(format!(
                    "workflow {wf}: transition {}: attribute_type_id is 1, 2 or 3",
                    t.name
                ));
            }
            let id = previous
                .and_then(|p| {
                    p.transitions
                        .iter()
                        .find(|o| o.name == t.name && p.state(o.source_state_id).is_some_and(|s| s.name == from.name))
                })
                .map(|o| o.id)
                .or_else(|| fresh.next())
                .ok_or("out of ids")?;
            out.push(Transition {
                id,
                name: t.name.clone(),
                source_state_id: from.id,
                destination_state_id: to.id,
                transition_type_id: t.transition_type_id,
                timer: t.timer,
                condition_expression: conditions,
                attribute_type_id: t.attribute_type_id,
                field_require_check: t.field_require_check,
                alert_enable: t.alert_enable,
                alert_text: t.alert_text.clone(),
            });
        }
        check_graph(wf, states, &out)?;
        Ok(out)
    }
}

/// Every state reaches an end; automatic states have one way out.
fn check_graph(wf: &str, states: &[State], transitions: &[Transition]) -> Result<(), String> {
    let mut g: DiGraph<i64, ()> = DiGraph::new();
    let nodes: HashMap<i64, NodeIndex> = states.iter().map(|s| (s.id, g.add_node(s.id))).collect();
    for t in transitions {
        g.add_edge(nodes[&t.source_state_id], nodes[&t.destination_state_id], ());
        for c in &t.condition_expression {
            g.add_edge(nodes[&t.source_state_id], nodes[&c.target_state_id], ());
        }
    }
    for s in states.iter().filter(|s| s.automatic()) {
        let out = transitions.iter().filter(|t| t.source_state_id == s.id).count();
        if out != 1 {
            return Err(format!(
                "workflow {wf}: state {} is run by a robot, a hook or a sub-workflow and needs exactly one transition out, it has {out}",
                s.name
            ));
        }
    }
    let mut reaches_end = vec![false; g.node_count()];
    let reversed = Reversed(&g);
    for end in states.iter().filter(|s| s.type_id == 2) {
        let mut bfs = Bfs::new(reversed, nodes[&end.id]);
        while let Some(n) = bfs.next(reversed) {
            reaches_end[n.index()] = true;
        }
    }
    if let Some(s) = states.iter().find(|s| !reaches_end[nodes[&s.id].index()]) {
        return Err(format!(
            "workflow {wf}: no path leads from state {} to an end state (a ticket there could never end)",
            s.name
        ));
    }
    Ok(())
}
