//! Pipelines (seed 001 §6.5.1 b: "dependencies between tasks and their
//! call order"): a DAG of steps, each a process run with arguments, and the
//! rules of a run. Pure: definitions in, checked plans and run changes out.
//!
//! An argument of a step is a JSON literal, or a string holding references:
//! `${inputs.<name>}` (an input given when the run starts) or
//! `${steps.<step>.outputs.<name>}` (an output an upstream step's robot
//! reported, `::output {"name": ...}` in the example executor). A string
//! that is exactly one reference takes the referenced value as it is (a
//! number stays a number); references inside longer text are written into
//! it. A reference to a step makes that step upstream; `after` adds
//! dependencies that pass no value.
//!
//! [`PipelineDef::compile`] refuses with the exact reason: a cycle, a
//! reference to an unknown input, step or output, an argument the process
//! does not declare or of the wrong type, a required argument left unbound,
//! a Queue process (started by its items).
//!
//! A run ([`PipelineRun`]):
//!
//! | step | becomes | when |
//! |---|---|---|
//! | Waiting | Running | every step it depends on is Successful (and the run is not halted or stopping): its job starts |
//! | Waiting | Faulted | its job could not start (a limit, its arguments) |
//! | Waiting | Skipped | a step it depends on failed (`onFailure: continue`), any step failed (`stop`, the default), or the run was stopped |
//! | Running | Successful | its job succeeded and reported every declared output |
//! | Running | Faulted | its job failed, was stopped by someone else, or left out a declared output |
//! | Running | Stopped | its job was stopped because the run was |
//!
//! A failed step with `onFailure: stop` halts the run: nothing more starts
//! and the running steps' jobs are stopped. With `continue`, only the steps
//! downstream of it are skipped and independent branches go on. The run
//! ends when no step runs and none can start: Stopped if it was stopped,
//! Faulted if a step failed, Successful otherwise. A rerun from a failed
//! run keeps the outputs of its Successful steps and runs the others again.

use std::collections::HashMap;
use std::sync::Arc;

use petgraph::algo::toposort;
use petgraph::graph::{DiGraph, NodeIndex};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::ids::{JobId, Key, ProcessId, UserId};
use crate::model::{JobState, ProcessSpec, ProcessType};
use crate::record::{Cell, Column, Kind, Mapped, Record};
use crate::time::Timestamp;

/// Most steps a pipeline may have.
pub const MAX_STEPS: usize = 1000;

/// What a failed step does to the rest of its run.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OnFailure {
    /// Halt the run: nothing more starts, running steps are stopped.
    #[default]
    Stop,
    /// Skip only the steps downstream of the failed one.
    Continue,
}

/// A pipeline as its author writes it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PipelineDef {
    /// Its name, unique.
    pub name: String,
    /// The inputs a run is started with (all required).
    #[serde(default)]
    pub inputs: Vec<String>,
    /// Its steps.
    pub steps: Vec<StepDef>,
}

/// One step: a process and its arguments.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct StepDef {
    /// Its name, unique in the pipeline.
    pub name: String,
    /// The process it runs (by name).
    pub process: String,
    /// Its arguments: literals or references.
    #[serde(default)]
    pub arguments: Map<String, Value>,
    /// The outputs its job must report (for steps downstream).
    #[serde(default)]
    pub outputs: Vec<String>,
    /// Steps it waits for without taking a value from them.
    #[serde(default)]
    pub after: Vec<String>,
    /// What its failure does to the run.
    #[serde(default)]
    pub on_failure: OnFailure,
}

/// What [`PipelineDef::compile`] needs to know of a process.
#[derive(Debug, Clone)]
pub struct ProcessInfo {
    /// Its id.
    pub id: ProcessId,
    /// Its definition.
    pub spec: Arc<ProcessSpec>,
}

/// A reference inside an argument.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ref {
    /// `${inputs.<name>}`.
    Input(String),
    /// `${steps.<step>.outputs.<name>}`.
    Output {
        /// The upstream step.
        step: String,
        /// Its output.
        output: String,
    },
}

/// A piece of an argument string.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Piece {
    Text(String),
    Ref(Ref),
}

/// The pieces of `s`: text and references.
fn pieces(s: &str) -> Result<Vec<Piece>, String> {
    let mut out = Vec::new();
    let mut rest = s;
    while let Some(i) = rest.find("${") {
        if i > 0 {
            out.push(Piece::Text(rest[..i].to_owned()));
        }
        let after = &rest[i + 2..];
        let Some(end) = after.find('}') else {
            return Err(format!("'{s}' has a '${{' that is not closed"));
        };
        let inner = &after[..end];
        let parts: Vec<&str> = inner.split('.').collect();
        let r = match parts[..] {
            ["inputs", name] if valid_name(name) => Ref::Input(name.to_owned()),
            ["steps", step, "outputs", output] if valid_name(step) && valid_name(output) => Ref::Output {
                step: step.to_owned(),
                output: output.to_owned(),
            },
            _ => {
                return Err(format!(
                    "unknown reference '${{{inner}}}': use ${{inputs.<name>}} or ${{steps.<step>.outputs.<name>}}"
                ));
            }
        };
        out.push(Piece::Ref(r));
        rest = &after[end + 1..];
    }
    if !rest.is_empty() {
        out.push(Piece::Text(rest.to_owned()));
    }
    Ok(out)
}

/// The references in an argument's value (only strings hold any).
pub fn refs(v: &Value) -> Result<Vec<Ref>, String> {
    match v {
        Value::String(s) => Ok(pieces(s)?
            .into_iter()
            .filter_map(|p| match p {
                Piece::Ref(r) => Some(r),
                Piece::Text(_) => None,
            })
            .collect()),
        _ => Ok(Vec::new()),
    }
}

fn valid_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 128
        && !s
            .chars()
            .any(|c| matches!(c, '.' | '{' | '}' | '$') || c.is_whitespace())
}

/// A checked pipeline: its definition with each step's process and dependencies.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Plan {
    /// The definition.
    pub def: PipelineDef,
    /// Each step's process, in the order of `def.steps`.
    pub processes: Vec<ProcessId>,
    /// Each step's dependencies (indexes into `def.steps`), in order.
    pub deps: Vec<Vec<usize>>,
}

impl PipelineDef {
    /// Checks the definition against the processes `process` finds by name,
    /// and gives its plan; refused with the reason.
    pub fn compile(&self, process: impl Fn(&str) -> Option<ProcessInfo>) -> Result<Plan, String> {
        if self.name.trim().is_empty() {
            return Err("a pipeline needs a name".into());
        }
        if self.steps.is_empty() || self.steps.len() > MAX_STEPS {
            return Err(format!("a pipeline has 1 to {MAX_STEPS} steps"));
        }
        let mut inputs = std::collections::HashSet::new();
        for i in &self.inputs {
            if !valid_name(i) {
                return Err(format!(
                    "input name '{i}' must be non-empty, without '.', '{{', '}}', '$' or spaces"
                ));
            }
            if !inputs.insert(i.as_str()) {
                return Err(format!("input '{i}' is declared twice"));
            }
        }
        let mut index = HashMap::new();
        for (i, s) in self.steps.iter().enumerate() {
            if !valid_name(&s.name) {
                return Err(format!(
                    "step name '{}' must be non-empty, without '.', '{{', '}}', '$' or spaces",
                    s.name
                ));
            }
            if index.insert(s.name.as_str(), i).is_some() {
                return Err(format!("step '{}' is declared twice", s.name));
            }
            if let Some(o) = s.outputs.iter().find(|o| !valid_name(o)) {
                return Err(format!("step '{}': output name '{o}' is not valid", s.name));
            }
        }
        let mut processes = Vec::with_capacity(self.steps.len());
        let mut deps = Vec::with_capacity(self.steps.len());
        for s in &self.steps {
            let at = |m: String| format!("step '{}': {m}", s.name);
            let p = process(&s.process).ok_or_else(|| at(format!("no process named '{}'", s.process)))?;
            if p.spec.pipeline.is_some() {
                return Err(at(format!("'{}' runs a pipeline itself", s.process)));
            }
            if p.spec.process_type == ProcessType::Queue {
                return Err(at(format!(
                    "'{}' is a Queue process, started by its queue items",
                    s.process
                )));
            }
            let mut d = Vec::new();
            for (name, v) in &s.arguments {
                let Some(arg) = p.spec.arguments.iter().find(|a| &a.name == name || &a.id == name) else {
                    return Err(at(format!("process '{}' has no argument '{name}'", s.process)));
                };
                let rs = refs(v).map_err(|e| at(format!("argument '{name}': {e}")))?;
                if rs.is_empty() {
                    crate::arguments::check_value(arg, v).map_err(|e| at(e.to_string()))?;
                }
                for r in rs {
                    match r {
                        Ref::Input(i) if !inputs.contains(i.as_str()) => {
                            return Err(at(format!(
                                "argument '{name}' reads input '{i}', which is not declared"
                            )));
                        }
                        Ref::Input(_) => {}
                        Ref::Output { step, output } => {
                            let Some(&j) = index.get(step.as_str()) else {
                                return Err(at(format!(
                                    "argument '{name}' reads step '{step}', which does not exist"
                                )));
                            };
                            if step == s.name {
                                return Err(at(format!("argument '{name}' reads the step's own output")));
                            }
                            if !self.steps[j].outputs.contains(&output) {
                                return Err(at(format!(
                                    "argument '{name}' reads output '{output}' of step '{step}', which declares no such output"
                                )));
                            }
                            d.push(j);
                        }
                    }
                }
            }
            if let Some(missing) = p
                .spec
                .arguments
                .iter()
                .find(|a| a.required && !s.arguments.contains_key(&a.name) && !s.arguments.contains_key(&a.id))
            {
                return Err(at(format!("required argument '{}' is not bound", missing.name)));
            }
            for a in &s.after {
                match index.get(a.as_str()) {
                    None => return Err(at(format!("runs after step '{a}', which does not exist"))),
                    Some(_) if *a == s.name => return Err(at("runs after itself".into())),
                    Some(&j) => d.push(j),
                }
            }
            d.sort_unstable();
            d.dedup();
            processes.push(p.id);
            deps.push(d);
        }
        let mut g: DiGraph<usize, ()> = DiGraph::new();
        let nodes: Vec<NodeIndex> = (0..self.steps.len()).map(|i| g.add_node(i)).collect();
        for (i, d) in deps.iter().enumerate() {
            for &j in d {
                g.add_edge(nodes[j], nodes[i], ());
            }
        }
        if let Err(c) = toposort(&g, None) {
            let s = &self.steps[g[c.node_id()]].name;
            return Err(format!("the steps form a cycle through step '{s}'"));
        }
        Ok(Plan {
            def: self.clone(),
            processes,
            deps,
        })
    }
}

/// A saved pipeline.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Pipeline {
    /// Serial id.
    pub id: i64,
    /// Commit version.
    pub version: u64,
    /// Its checked plan.
    pub plan: Arc<Plan>,
    /// When it was first saved.
    pub created_at: Timestamp,
    /// When it was last saved.
    pub updated_at: Timestamp,
}

impl Mapped for Pipeline {
    const KIND: &'static Kind = &Kind {
        table: "rpa_pipelines",
        name: "pipeline",
        key: Column::int("id"),
        sealed: false,
        cached: false,
        columns: &[Column::text("name").unique("pipeline name")],
    };
    fn key(&self) -> Cell {
        Cell::Int(self.id)
    }
    fn version(&self) -> u64 {
        self.version
    }
    fn cells(&self) -> Vec<Cell> {
        vec![self.plan.def.name.as_str().into()]
    }
}

impl Record for Pipeline {}

/// Where a run is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum RunState {
    /// Steps run or can start.
    Running,
    /// Every step succeeded.
    Successful,
    /// A step failed.
    Faulted,
    /// It was stopped.
    Stopped,
}

impl RunState {
    /// The word the admin API shows.
    pub fn as_str(self) -> &'static str {
        match self {
            RunState::Running => "Running",
            RunState::Successful => "Successful",
            RunState::Faulted => "Faulted",
            RunState::Stopped => "Stopped",
        }
    }
}

/// Where a step of a run is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum StepState {
    /// Its dependencies have not all succeeded yet.
    Waiting,
    /// Its job is pending or running.
    Running,
    /// Its job succeeded with every declared output.
    Successful,
    /// It failed.
    Faulted,
    /// Its job was stopped with the run.
    Stopped,
    /// It will not run.
    Skipped,
}

impl StepState {
    /// The word the admin API shows.
    pub fn as_str(self) -> &'static str {
        match self {
            StepState::Waiting => "Waiting",
            StepState::Running => "Running",
            StepState::Successful => "Successful",
            StepState::Faulted => "Faulted",
            StepState::Stopped => "Stopped",
            StepState::Skipped => "Skipped",
        }
    }
}

/// One step of a run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StepRun {
    /// Where it is.
    pub state: StepState,
    /// Its job, once started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job: Option<JobId>,
    /// That job's key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job_key: Option<Key>,
    /// Its outputs, once Successful.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outputs: Option<Arc<Value>>,
    /// Why it failed or was skipped.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Taken over from the run this one reruns.
    #[serde(default)]
    pub reused: bool,
    /// When its job started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at: Option<Timestamp>,
    /// When it ended.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ended_at: Option<Timestamp>,
}

impl StepRun {
    fn waiting() -> StepRun {
        StepRun {
            state: StepState::Waiting,
            job: None,
            job_key: None,
            outputs: None,
            reason: None,
            reused: false,
            started_at: None,
            ended_at: None,
        }
    }
}

/// A run of a pipeline.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PipelineRun {
    /// Serial id.
    pub id: i64,
    /// Commit version.
    pub version: u64,
    /// The pipeline.
    pub pipeline: i64,
    /// The plan it runs (as it was when the run started).
    pub plan: Arc<Plan>,
    /// Its inputs.
    pub inputs: Map<String, Value>,
    /// Who started it: the owner of its jobs.
    pub owner: UserId,
    /// Where it is.
    pub state: RunState,
    /// Its steps, in the order of the plan.
    pub steps: Vec<StepRun>,
    /// A step with `onFailure: stop` failed: nothing more starts.
    #[serde(default)]
    pub halted: bool,
    /// It was asked to stop.
    #[serde(default)]
    pub stopping: bool,
    /// The run it reruns.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rerun_of: Option<i64>,
    /// The job it is, when a pipeline process's job started it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job: Option<JobId>,
    /// When it started.
    pub created_at: Timestamp,
    /// When it ended.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ended_at: Option<Timestamp>,
}

impl Mapped for PipelineRun {
    const KIND: &'static Kind = &Kind {
        table: "rpa_pipeline_runs",
        name: "pipeline run",
        key: Column::int("id"),
        sealed: false,
        cached: false,
        columns: &[Column::int("pipeline")],
    };
    fn key(&self) -> Cell {
        Cell::Int(self.id)
    }
    fn version(&self) -> u64 {
        self.version
    }
    fn cells(&self) -> Vec<Cell> {
        vec![Cell::Int(self.pipeline)]
    }
}

impl Record for PipelineRun {}

/// What a run's change asks of the engine.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RunEffects {
    /// Jobs to stop (the run halted or was stopped).
    pub stop: Vec<JobId>,
    /// The run ended (with its state).
    pub ended: bool,
}

impl PipelineRun {
    /// A new run of `plan` with `inputs` (every declared input, nothing else).
    pub fn new(
        id: i64,
        pipeline: i64,
        plan: Arc<Plan>,
        inputs: Map<String, Value>,
        owner: UserId,
        now: Timestamp,
    ) -> Result<PipelineRun, String> {
        if let Some(missing) = plan.def.inputs.iter().find(|i| !inputs.contains_key(*i)) {
            return Err(format!("input '{missing}' is missing"));
        }
        if let Some(extra) = inputs.keys().find(|k| !plan.def.inputs.contains(k)) {
            return Err(format!("the pipeline has no input '{extra}'"));
        }
        let steps = vec![StepRun::waiting(); plan.def.steps.len()];
        Ok(PipelineRun {
            id,
            version: 0,
            pipeline,
            plan,
            inputs,
            owner,
            state: RunState::Running,
            steps,
            halted: false,
            stopping: false,
            rerun_of: None,
            job: None,
            created_at: now,
            ended_at: None,
        })
    }

    /// A new run that reruns this ended one: its Successful steps are kept
    /// with their outputs, the others run again.
    pub fn rerun(&self, id: i64, owner: UserId, now: Timestamp) -> Result<PipelineRun, String> {
        if self.state == RunState::Running {
            return Err("the run has not ended".into());
        }
        if self.state == RunState::Successful {
            return Err("every step of the run succeeded: there is nothing to rerun".into());
        }
        let steps = self
            .steps
            .iter()
            .map(|s| match s.state {
                StepState::Successful => StepRun {
                    reused: true,
                    ..s.clone()
                },
                _ => StepRun::waiting(),
            })
            .collect();
        Ok(PipelineRun {
            id,
            version: 0,
            pipeline: self.pipeline,
            plan: self.plan.clone(),
            inputs: self.inputs.clone(),
            owner,
            state: RunState::Running,
            steps,
            halted: false,
            stopping: false,
            rerun_of: Some(self.id),
            job: None,
            created_at: now,
            ended_at: None,
        })
    }

    /// The steps that can start now.
    pub fn ready(&self) -> Vec<usize> {
        if self.state != RunState::Running || self.halted || self.stopping {
            return Vec::new();
        }
        (0..self.steps.len())
            .filter(|&i| {
                self.steps[i].state == StepState::Waiting
                    && self.plan.deps[i]
                        .iter()
                        .all(|&d| self.steps[d].state == StepState::Successful)
            })
            .collect()
    }

    /// Step `i`'s arguments with its references resolved.
    pub fn arguments(&self, i: usize) -> Result<Value, String> {
        let mut out = Map::new();
        for (name, v) in &self.plan.def.steps[i].arguments {
            let resolved = match v {
                Value::String(s) => {
                    let ps = pieces(s)?;
                    match &ps[..] {
                        [Piece::Ref(r)] => self.value_of(r)?,
                        _ => {
                            let mut text = String::new();
                            for p in ps {
                                match p {
                                    Piece::Text(t) => text.push_str(&t),
                                    Piece::Ref(r) => match self.value_of(&r)? {
                                        Value::String(s) => text.push_str(&s),
                                        other => text.push_str(&other.to_string()),
                                    },
                                }
                            }
                            Value::String(text)
                        }
                    }
                }
                other => other.clone(),
            };
            out.insert(name.clone(), resolved);
        }
        Ok(Value::Object(out))
    }

    fn value_of(&self, r: &Ref) -> Result<Value, String> {
        match r {
            Ref::Input(i) => self
                .inputs
                .get(i)
                .cloned()
                .ok_or_else(|| format!("input '{i}' is missing")),
            Ref::Output { step, output } => {
                let j = self.index(step).ok_or_else(|| format!("no step '{step}'"))?;
                self.steps[j]
                    .outputs
                    .as_deref()
                    .and_then(|o| o.get(output))
                    .cloned()
                    .ok_or_else(|| format!("step '{step}' has no output '{output}'"))
            }
        }
    }

    fn index(&self, step: &str) -> Option<usize> {
        self.plan.def.steps.iter().position(|s| s.name == step)
    }

    /// The step that runs job `job`.
    pub fn step_of(&self, job: JobId) -> Option<usize> {
        self.steps.iter().position(|s| s.job == Some(job))
    }

    /// Step `i`'s job started.
    pub fn started(&mut self, i: usize, job: JobId, key: Key, now: Timestamp) {
        let s = &mut self.steps[i];
        s.state = StepState::Running;
        s.job = Some(job);
        s.job_key = Some(key);
        s.started_at = Some(now);
    }

    /// Step `i` could not start.
    pub fn refused(&mut self, i: usize, reason: String, now: Timestamp) -> RunEffects {
        self.fail(i, StepState::Faulted, reason, now)
    }

    /// The job of a step ended.
    pub fn job_ended(
        &mut self,
        job: JobId,
        state: JobState,
        outputs: Option<&Arc<Value>>,
        reason: Option<&str>,
        now: Timestamp,
    ) -> RunEffects {
        let Some(i) = self.step_of(job) else {
            return RunEffects::default();
        };
        if self.steps[i].state != StepState::Running {
            return RunEffects::default();
        }
        match state {
            JobState::Successful => {
                let declared = &self.plan.def.steps[i].outputs;
                let missing = declared
                    .iter()
                    .find(|o| outputs.and_then(|v| v.get(o.as_str())).is_none());
                if let Some(o) = missing {
                    return self.fail(
                        i,
                        StepState::Faulted,
                        format!("the job succeeded without output '{o}'"),
                        now,
                    );
                }
                let s = &mut self.steps[i];
                s.state = StepState::Successful;
                s.outputs = outputs.cloned();
                s.ended_at = Some(now);
                RunEffects::default()
            }
            JobState::Stopped | JobState::Canceled if self.stopping => {
                let s = &mut self.steps[i];
                s.state = StepState::Stopped;
                s.reason = Some("the run was stopped".into());
                s.ended_at = Some(now);
                RunEffects::default()
            }
            other => {
                let why = reason.map_or_else(|| format!("its job ended {}", other.as_str()), str::to_owned);
                self.fail(i, StepState::Faulted, why, now)
            }
        }
    }

    fn fail(&mut self, i: usize, state: StepState, reason: String, now: Timestamp) -> RunEffects {
        let s = &mut self.steps[i];
        s.state = state;
        s.reason = Some(reason);
        s.ended_at = Some(now);
        let name = self.plan.def.steps[i].name.clone();
        match self.plan.def.steps[i].on_failure {
            OnFailure::Stop => {
                self.halted = true;
                self.skip_waiting(|_| true, &format!("step '{name}' failed"), now);
                RunEffects {
                    stop: self.running_jobs(),
                    ended: false,
                }
            }
            OnFailure::Continue => {
                let down = self.downstream(i);
                self.skip_waiting(|j| down[j], &format!("step '{name}' failed"), now);
                RunEffects::default()
            }
        }
    }

    /// Which steps depend, directly or not, on step `i`.
    fn downstream(&self, i: usize) -> Vec<bool> {
        let mut down = vec![false; self.steps.len()];
        down[i] = true;
        // Dependencies point upstream; sweep until nothing changes (plans are DAGs).
        loop {
            let mut changed = false;
            for (j, d) in self.plan.deps.iter().enumerate() {
                if !down[j] && d.iter().any(|&k| down[k]) {
                    down[j] = true;
                    changed = true;
                }
            }
            if !changed {
                break;
            }
        }
        down[i] = false;
        down
    }

    fn skip_waiting(&mut self, which: impl Fn(usize) -> bool, reason: &str, now: Timestamp) {
        for (j, s) in self.steps.iter_mut().enumerate() {
            if s.state == StepState::Waiting && which(j) {
                s.state = StepState::Skipped;
                s.reason = Some(reason.to_owned());
                s.ended_at = Some(now);
            }
        }
    }

    fn running_jobs(&self) -> Vec<JobId> {
        self.steps
            .iter()
            .filter(|s| s.state == StepState::Running)
            .filter_map(|s| s.job)
            .collect()
    }

    /// Asks the run to stop: nothing more starts, waiting steps are
    /// skipped, the running steps' jobs are to be stopped.
    pub fn stop(&mut self, now: Timestamp) -> Result<RunEffects, String> {
        if self.state != RunState::Running {
            return Err(format!("the run has ended {}", self.state.as_str()));
        }
        self.stopping = true;
        self.skip_waiting(|_| true, "the run was stopped", now);
        Ok(RunEffects {
            stop: self.running_jobs(),
            ended: false,
        })
    }

    /// Each step's outputs by step name (for the job a run is).
    pub fn outputs(&self) -> Value {
        let mut m = Map::new();
        for (s, d) in self.steps.iter().zip(&self.plan.def.steps) {
            if let Some(o) = &s.outputs {
                m.insert(d.name.clone(), Value::clone(o));
            }
        }
        Value::Object(m)
    }

    /// Why it did not succeed: its first failed step's reason.
    pub fn failure(&self) -> Option<String> {
        self.steps
            .iter()
            .zip(&self.plan.def.steps)
            .find(|(s, _)| matches!(s.state, StepState::Faulted | StepState::Stopped))
            .map(|(s, d)| format!("step '{}': {}", d.name, s.reason.as_deref().unwrap_or("failed")))
    }

    /// Ends the run if no step runs and none can start.
    pub fn settle(&mut self, now: Timestamp) -> bool {
        if self.state != RunState::Running {
            return false;
        }
        let busy = self.steps.iter().any(|s| s.state == StepState::Running);
        if busy || !self.ready().is_empty() {
            return false;
        }
        // Waiting steps left over can never start (their upstream ended otherwise).
        self.skip_waiting(|_| true, "an upstream step did not succeed", now);
        let failed = self
            .steps
            .iter()
            .any(|s| matches!(s.state, StepState::Faulted | StepState::Stopped));
        self.state = if self.stopping {
            RunState::Stopped
        } else if failed {
            RunState::Faulted
        } else {
            RunState::Successful
        };
        self.ended_at = Some(now);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{ArgType, ArgumentSpec};
    use serde_json::json;

    fn procs(name: &str) -> Option<ProcessInfo> {
        let mut spec = ProcessSpec::new(name, ProcessType::Unattended);
        match name {
            "extract" => spec.arguments.push(arg("month", ArgType::String, true)),
            "enter" => {
                spec.arguments.push(arg("invoice", ArgType::Int, true));
                spec.arguments.push(arg("note", ArgType::String, false));
            }
            "report" => spec.arguments.push(arg("count", ArgType::Int, false)),
            "claims" => spec.process_type = ProcessType::Queue,
            "noop" => {}
            _ => return None,
        }
        let id = ProcessId(name.len() as i64);
        Some(ProcessInfo {
            id,
            spec: Arc::new(spec),
        })
    }

    fn arg(name: &str, t: ArgType, required: bool) -> ArgumentSpec {
        ArgumentSpec {
            name: name.into(),
            id: name.into(),
            arg_type: t,
            required,
            secret: false,
        }
    }

    fn def(v: Value) -> PipelineDef {
        serde_json::from_value(v).unwrap()
    }

    fn month_end() -> PipelineDef {
        def(json!({
            "name": "month end", "inputs": ["month"],
            "steps": [
                {"name": "extract", "process": "extract", "arguments": {"month": "${inputs.month}"}, "outputs": ["invoice_id", "count"]},
                {"name": "enter", "process": "enter", "arguments": {"invoice": "${steps.extract.outputs.invoice_id}", "note": "for ${inputs.month}: ${steps.extract.outputs.count}"}},
                {"name": "report", "process": "report", "arguments": {"count": "${steps.extract.outputs.count}"}, "onFailure": "continue"},
                {"name": "close", "process": "noop", "after": ["enter", "report"]}
            ]
        }))
    }

    fn refused(v: Value) -> String {
        def(v).compile(procs).unwrap_err()
    }

    #[test]
    fn a_plan_knows_each_steps_process_and_dependencies() {
        let plan = month_end().compile(procs).unwrap();
        assert_eq!(plan.deps, vec![vec![], vec![0], vec![0], vec![1, 2]]);
        assert_eq!(plan.processes[1], ProcessId(5));
    }

    #[test]
    fn bad_definitions_are_refused_with_the_reason() {
        let cycle = refused(json!({"name": "c", "steps": [
            {"name": "a", "process": "noop", "after": ["b"]},
            {"name": "b", "process": "noop", "after": ["a"]}]}));
        assert!(cycle.contains("cycle"), "{cycle}");
        let e = refused(json!({"name": "x", "steps": [
            {"name": "a", "process": "extract", "arguments": {"month": "${steps.b.outputs.m}"}},
            {"name": "b", "process": "noop", "outputs": ["n"]}]}));
        assert!(e.contains("output 'm' of step 'b'"), "{e}");
        let e = refused(json!({"name": "x", "steps": [
            {"name": "a", "process": "extract", "arguments": {"month": "${steps.z.outputs.m}"}}]}));
        assert!(e.contains("step 'z', which does not exist"), "{e}");
        let e = refused(
            json!({"name": "x", "steps": [{"name": "a", "process": "extract", "arguments": {"month": "${inputs.m}"}}]}),
        );
        assert!(e.contains("input 'm'"), "{e}");
        let e = refused(json!({"name": "x", "steps": [{"name": "a", "process": "extract"}]}));
        assert!(e.contains("required argument 'month' is not bound"), "{e}");
        let e = refused(
            json!({"name": "x", "steps": [{"name": "a", "process": "enter", "arguments": {"invoice": "abc"}}]}),
        );
        assert!(e.contains("type int"), "{e}");
        let e = refused(json!({"name": "x", "steps": [{"name": "a", "process": "noop", "arguments": {"z": 1}}]}));
        assert!(e.contains("no argument 'z'"), "{e}");
        let e = refused(json!({"name": "x", "steps": [{"name": "a", "process": "claims"}]}));
        assert!(e.contains("Queue"), "{e}");
        let e = refused(json!({"name": "x", "steps": [{"name": "a", "process": "nope"}]}));
        assert!(e.contains("no process named 'nope'"), "{e}");
        let e = refused(
            json!({"name": "x", "steps": [{"name": "a", "process": "noop"}, {"name": "a", "process": "noop"}]}),
        );
        assert!(e.contains("twice"), "{e}");
        let e = refused(
            json!({"name": "x", "steps": [{"name": "a", "process": "extract", "arguments": {"month": "${oops}"}}]}),
        );
        assert!(e.contains("unknown reference"), "{e}");
        let e = refused(json!({"name": "x", "steps": []}));
        assert!(e.contains("1 to"), "{e}");
        let e = refused(json!({"name": "x", "steps": [{"name": "a", "process": "noop", "after": ["a"]}]}));
        assert!(e.contains("itself"), "{e}");
    }

    fn run() -> PipelineRun {
        let plan = Arc::new(month_end().compile(procs).unwrap());
        let mut inputs = Map::new();
        inputs.insert("month".into(), json!("2026-11"));
        PipelineRun::new(1, 1, plan, inputs, UserId(1), Timestamp(0)).unwrap()
    }

    fn start_ready(r: &mut PipelineRun, next_job: &mut i64) -> Vec<usize> {
        let ready = r.ready();
        for &i in &ready {
            *next_job += 1;
            r.started(
                i,
                JobId(*next_job),
                Key::from_random([*next_job as u8; 16]),
                Timestamp(0),
            );
        }
        ready
    }

    #[test]
    fn a_diamond_runs_in_dependency_order_and_passes_outputs() {
        let mut r = run();
        let mut n = 0;
        assert_eq!(start_ready(&mut r, &mut n), vec![0]);
        assert_eq!(r.arguments(0).unwrap(), json!({"month": "2026-11"}));
        let out = Arc::new(json!({"invoice_id": 42, "count": 3}));
        r.job_ended(JobId(1), JobState::Successful, Some(&out), None, Timestamp(1));
        assert_eq!(start_ready(&mut r, &mut n), vec![1, 2], "both branches at once");
        assert_eq!(
            r.arguments(1).unwrap(),
            json!({"invoice": 42, "note": "for 2026-11: 3"}),
            "a lone reference keeps its type, text gets the value written in"
        );
        r.job_ended(JobId(2), JobState::Successful, None, None, Timestamp(2));
        assert!(r.ready().is_empty(), "close waits for report");
        r.job_ended(JobId(3), JobState::Successful, None, None, Timestamp(2));
        assert_eq!(start_ready(&mut r, &mut n), vec![3]);
        assert!(!r.settle(Timestamp(3)));
        r.job_ended(JobId(4), JobState::Successful, None, None, Timestamp(3));
        assert!(r.settle(Timestamp(3)));
        assert_eq!(r.state, RunState::Successful);
    }

    #[test]
    fn a_failed_branch_with_continue_skips_only_its_downstream() {
        let mut r = run();
        let mut n = 0;
        start_ready(&mut r, &mut n);
        let out = Arc::new(json!({"invoice_id": 42, "count": 3}));
        r.job_ended(JobId(1), JobState::Successful, Some(&out), None, Timestamp(1));
        start_ready(&mut r, &mut n);
        let fx = r.job_ended(JobId(3), JobState::Faulted, None, Some("boom"), Timestamp(2));
        assert_eq!(fx, RunEffects::default(), "report continues: nothing stopped");
        assert_eq!(r.steps[3].state, StepState::Skipped, "close is downstream of report");
        assert_eq!(r.steps[1].state, StepState::Running, "enter goes on");
        assert!(!r.settle(Timestamp(2)));
        r.job_ended(JobId(2), JobState::Successful, None, None, Timestamp(3));
        assert!(r.settle(Timestamp(3)));
        assert_eq!(r.state, RunState::Faulted);
        assert_eq!(r.steps[2].reason.as_deref(), Some("boom"));
    }

    #[test]
    fn a_failed_step_with_stop_halts_the_run_and_stops_the_others() {
        let mut r = run();
        let mut n = 0;
        start_ready(&mut r, &mut n);
        let out = Arc::new(json!({"invoice_id": 42, "count": 3}));
        r.job_ended(JobId(1), JobState::Successful, Some(&out), None, Timestamp(1));
        start_ready(&mut r, &mut n);
        let fx = r.job_ended(JobId(2), JobState::Faulted, None, None, Timestamp(2));
        assert_eq!(fx.stop, vec![JobId(3)], "report's job is stopped");
        assert_eq!(r.steps[3].state, StepState::Skipped);
        assert!(r.ready().is_empty());
        r.job_ended(JobId(3), JobState::Stopped, None, None, Timestamp(3));
        assert!(r.settle(Timestamp(3)));
        assert_eq!(r.state, RunState::Faulted);

        // A rerun keeps extract's outputs and runs the rest.
        let mut again = r.rerun(2, UserId(1), Timestamp(4)).unwrap();
        assert!(again.steps[0].reused && again.steps[0].state == StepState::Successful);
        assert_eq!(start_ready(&mut again, &mut n), vec![1, 2]);
        assert_eq!(again.arguments(1).unwrap()["invoice"], json!(42));
        assert!(r.rerun(3, UserId(1), Timestamp(4)).is_ok());
    }

    #[test]
    fn a_missing_output_faults_the_step_and_a_stopped_run_ends_stopped() {
        let mut r = run();
        let mut n = 0;
        start_ready(&mut r, &mut n);
        let fx = r.job_ended(
            JobId(1),
            JobState::Successful,
            Some(&Arc::new(json!({"count": 1}))),
            None,
            Timestamp(1),
        );
        assert_eq!(fx.stop, Vec::<JobId>::new());
        assert!(r.steps[0].reason.as_deref().unwrap().contains("invoice_id"));
        assert!(r.settle(Timestamp(1)));
        assert_eq!(r.state, RunState::Faulted);
        assert!(r.steps[1..].iter().all(|s| s.state == StepState::Skipped));

        let mut r = run();
        start_ready(&mut r, &mut n);
        let fx = r.stop(Timestamp(2)).unwrap();
        assert_eq!(fx.stop.len(), 1);
        assert!(!r.settle(Timestamp(2)), "its job still runs");
        let job = r.steps[0].job.unwrap();
        r.job_ended(job, JobState::Stopped, None, None, Timestamp(3));
        assert!(r.settle(Timestamp(3)));
        assert_eq!(r.state, RunState::Stopped);
        assert_eq!(r.steps[0].state, StepState::Stopped);
        assert!(r.stop(Timestamp(4)).is_err());
        assert!(r.rerun(9, UserId(1), Timestamp(4)).is_ok());
    }

    #[test]
    fn a_run_needs_exactly_the_declared_inputs() {
        let plan = Arc::new(month_end().compile(procs).unwrap());
        let e = PipelineRun::new(1, 1, plan.clone(), Map::new(), UserId(1), Timestamp(0)).unwrap_err();
        assert!(e.contains("month"));
        let mut extra = Map::new();
        extra.insert("month".into(), json!("x"));
        extra.insert("zzz".into(), json!(1));
        let e = PipelineRun::new(1, 1, plan, extra, UserId(1), Timestamp(0)).unwrap_err();
        assert!(e.contains("zzz"));
    }
}
