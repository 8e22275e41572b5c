//! Workflows and tickets (the rules are in [`crate::flow`]): every ticket
//! operation reads the ticket, its workflow, the directory and its parent,
//! decides with the pure state machine, and commits in one go the ticket,
//! its flow logs, the audit event, the job of a robot state it enters, and
//! the parent's move when its last child ends. A robot state's job that
//! ends moves its ticket through [`Engine::follow_flows`] (the `flow`
//! consumer of domain events, run by [`Engine::tick`]), which also fires
//! due timer transitions.

use std::sync::Arc;

use serde_json::{Map, Value};

use super::{Decided, Engine, Tx};
use crate::arguments;
use crate::audit::Subject;
use crate::error::{Entity, Error, Result};
use crate::events::{Cursor, Event};
use crate::flow::workflow::{STATE_IDS, Surroundings};
use crate::flow::{Ctx, Directory, Effect, FlowLog, Moved, Request, Ticket, Waiting, Who, Workflow, WorkflowDef};
use crate::ids::*;
use crate::limits;
use crate::model::*;
use crate::record::{Cell, Mapped, Select};
use crate::store::People as _;
use crate::store::{Records, Store};
use crate::time::Timestamp;

/// The consumer that moves tickets when their robot jobs end.
pub const FLOW_CONSUMER: &str = "flow";

/// Tickets read per page.
const PAGE: usize = 500;

/// How long a node uses a workflow or the directory as it last read them.
/// Both change by administration, rarely: another node's change is seen
/// within this time, this node's own at once.
const CACHE_TTL: std::time::Duration = std::time::Duration::from_secs(1);

/// Workflows and the directory as last read, with when.
#[derive(Default)]
pub(super) struct FlowCache {
    workflows: std::sync::Mutex<std::collections::HashMap<i64, (Arc<Workflow>, std::time::Instant)>>,
    directory: std::sync::Mutex<Option<(Arc<Directory>, std::time::Instant)>>,
}

impl FlowCache {
    fn workflow(&self, id: i64) -> Option<Arc<Workflow>> {
        let g = self.workflows.lock().unwrap_or_else(|p| p.into_inner());
        g.get(&id)
            .filter(|(_, at)| at.elapsed() < CACHE_TTL)
            .map(|(w, _)| w.clone())
    }

    fn keep_workflow(&self, w: Arc<Workflow>) {
        let mut g = self.workflows.lock().unwrap_or_else(|p| p.into_inner());
        g.insert(w.id, (w, std::time::Instant::now()));
    }

    fn directory(&self) -> Option<Arc<Directory>> {
        let g = self.directory.lock().unwrap_or_else(|p| p.into_inner());
        g.as_ref()
            .filter(|(_, at)| at.elapsed() < CACHE_TTL)
            .map(|(d, _)| d.clone())
    }

    fn keep_directory(&self, d: Arc<Directory>) {
        *self.directory.lock().unwrap_or_else(|p| p.into_inner()) = Some((d, std::time::Instant::now()));
    }
}

/// What a list of tickets is filtered by (seed 004 `GET /tickets`).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TicketQuery {
    /// `sn`: starts with.
    pub sn: String,
    /// `title`: contains.
    pub title: String,
    /// `create_start`, `create_end`.
    pub created: (Option<Timestamp>, Option<Timestamp>),
    /// `workflow_ids` (empty: all).
    pub workflows: Vec<i64>,
    /// `state_ids` (empty: all).
    pub states: Vec<i64>,
    /// `ticket_ids` (empty: all).
    pub tickets: Vec<i64>,
    /// `is_end`.
    pub is_end: Option<bool>,
    /// `is_rejected`.
    pub is_rejected: Option<bool>,
    /// `category`: all, owner, duty, relation.
    pub category: String,
    /// Newest first (`reverse` 1, the default).
    pub reverse: bool,
}

struct Around<'a> {
    workflows: &'a [Workflow],
    processes: &'a [Process],
}

impl Surroundings for Around<'_> {
    fn workflow_id(&self, name: &str) -> Option<i64> {
        self.workflows.iter().find(|w| w.name == name).map(|w| w.id)
    }
    fn process_exists(&self, name: &str) -> bool {
        self.processes.iter().any(|p| p.spec.name == name)
    }
}

fn refused(e: String) -> Error {
    Error::InvalidArgument(e)
}

impl<S: Store> Engine<S> {
    /// Saves workflow definition `def` (ManageProcesses), replacing the one
    /// of the same name: states and transitions keep their ids by name.
    pub async fn save_workflow(&self, actor: Actor, creator: &str, def: WorkflowDef) -> Result<Workflow> {
        self.require(actor, Permission::ManageProcesses).await?;
        let workflows = self.workflows().await?;
        let processes = self.store.processes().await?;
        let previous = workflows.iter().find(|w| w.name == def.name);
        let mut fresh = Vec::with_capacity(def.ids_needed());
        for _ in 0..def.ids_needed() {
            fresh.push(self.next_id(IdKind::Record(STATE_IDS)).await?);
        }
        let id = match previous {
            Some(p) => p.id,
            None => self.next_id(IdKind::of::<Workflow>()).await?,
        };
        let around = Around {
            workflows: &workflows,
            processes: &processes,
        };
        let now = self.now();
        let mut all = fresh.into_iter();
        let w = def
            .compile(id, creator, now, previous, &mut all, &around)
            .map_err(refused)?;
        let mut tx = Tx::default();
        tx.record(&w)?.audit(
            now,
            actor,
            if previous.is_some() {
                "workflow.replace"
            } else {
                "workflow.create"
            },
            Subject::Id("workflow", w.id),
            w.name.clone(),
        );
        self.commit(tx).await?;
        self.flow_cache.keep_workflow(Arc::new(w.clone()));
        Ok(w)
    }

    /// Every workflow, by id.
    pub async fn workflows(&self) -> Result<Vec<Workflow>> {
        let mut out: Vec<Workflow> = Vec::new();
        loop {
            let mut sel = Select::all(PAGE);
            if let Some(last) = out.last() {
                sel = sel.after(last.id.into());
            }
            let page: Vec<Workflow> = self.store.list(sel).await?;
            let done = page.len() < PAGE;
            out.extend(page);
            if done {
                return Ok(out);
            }
        }
    }

    /// Workflow `id` (as read within the last second).
    pub async fn workflow(&self, id: i64) -> Result<Arc<Workflow>> {
        if let Some(w) = self.flow_cache.workflow(id) {
            return Ok(w);
        }
        let w = Arc::new(
            self.store
                .get::<Workflow>(id)
                .await?
                .ok_or_else(|| Error::NotFound(Entity::Record(Workflow::KIND.name), id.to_string()))?,
        );
        self.flow_cache.keep_workflow(w.clone());
        Ok(w)
    }

    /// Replaces the directory of people tickets flow between (ManageUsers).
    pub async fn sync_directory(&self, actor: Actor, mut dir: Directory) -> Result<Directory> {
        self.require(actor, Permission::ManageUsers).await?;
        dir.check().map_err(refused)?;
        decided!(self, |_attempt| {
            let old = self.directory().await?;
            dir.version = old.version + 1;
            let mut tx = Tx::default();
            tx.record(&dir)?.audit(
                self.now(),
                actor,
                "directory.sync",
                Subject::Text("directory".into()),
                format!(
                    "{} users, {} departments, {} roles",
                    dir.users.len(),
                    dir.depts.len(),
                    dir.roles.len()
                ),
            );
            Ok(Decided::Commit(tx, dir.clone()))
        })?;
        let users = self.store.users().await?;
        let merged = dir
            .clone()
            .with_accounts(users.iter().map(|u| (u.name.as_str(), u.disabled)));
        self.flow_cache.keep_directory(Arc::new(merged));
        Ok(dir)
    }

    /// The directory as configured (synchronised), without the platform's
    /// own accounts that [`Engine::directory`] adds.
    pub async fn configured_directory(&self) -> Result<Directory> {
        Ok(self
            .store
            .get::<Directory>(crate::flow::directory::DIRECTORY_KEY)
            .await?
            .unwrap_or_default())
    }

    /// The directory (empty until synchronised; as read within the last second).
    pub async fn directory(&self) -> Result<Arc<Directory>> {
        if let Some(d) = self.flow_cache.directory() {
            return Ok(d);
        }
        let users = self.store.users().await?;
        let d = Arc::new(
            self.store
                .get::<Directory>(crate::flow::directory::DIRECTORY_KEY)
                .await?
                .unwrap_or_default()
                .with_accounts(users.iter().map(|u| (u.name.as_str(), u.disabled))),
        );
        self.flow_cache.keep_directory(d.clone());
        Ok(d)
    }

    /// Ticket `id`.
    pub async fn ticket(&self, id: i64) -> Result<Ticket> {
        self.store
            .get::<Ticket>(id)
            .await?
            .ok_or_else(|| Error::NotFound(Entity::Record(Ticket::KIND.name), id.to_string()))
    }

    /// Tickets matching `q` for `user`, and how many there are in all.
    /// `owner` and `duty` read the creator and duty indexes; the other
    /// categories read every ticket.
    pub async fn tickets(
        &self,
        user: &str,
        q: &TicketQuery,
        page: usize,
        per_page: usize,
    ) -> Result<(Vec<Ticket>, usize)> {
        let dir = self.directory().await?;
        let selections: Vec<(&'static str, String)> = match q.category.as_str() {
            "owner" => vec![("creator", user.to_owned())],
            "duty" => {
                let mut keys = vec![("duty", format!("user:{user}")), ("duty", "multi".to_owned())];
                if let Some(p) = dir.user(user).filter(|p| p.dept_id != 0) {
                    keys.push(("duty", format!("dept:{}", p.dept_id)));
                }
                for r in dir.roles.iter().filter(|r| r.members.iter().any(|m| m == user)) {
                    keys.push(("duty", format!("role:{}", r.id)));
                }
                keys
            }
            _ => Vec::new(),
        };
        let plain = q.sn.is_empty()
            && q.title.is_empty()
            && q.created == (None, None)
            && q.states.is_empty()
            && q.tickets.is_empty()
            && q.is_end.is_none()
            && q.is_rejected.is_none();
        if plain && !selections.is_empty() {
            return self.tickets_by_index(user, q, selections, &dir, page, per_page).await;
        }
        let mut all = Vec::new();
        if selections.is_empty() {
            self.scan(None, |t| {
                if matches(&t, q, user, &dir) {
                    all.push(t);
                }
            })
            .await?;
        } else {
            for (column, value) in selections {
                self.scan(Some((column, Cell::from(value))), |t| {
                    if matches(&t, q, user, &dir) {
                        all.push(t);
                    }
                })
                .await?;
            }
            all.sort_by_key(|t| t.id);
        }
        if q.reverse {
            all.reverse();
        }
        let total = all.len();
        let start = page.saturating_sub(1).saturating_mul(per_page);
        Ok((all.into_iter().skip(start).take(per_page).collect(), total))
    }

    /// [`Engine::tickets`] filtered by indexed columns only (category and
    /// workflows): rows are counted and ordered on their indexed values,
    /// and only the page asked for is decoded (and `multi` duty rows, whose
    /// people are in the data).
    async fn tickets_by_index(
        &self,
        user: &str,
        q: &TicketQuery,
        selections: Vec<(&'static str, String)>,
        dir: &Directory,
        page: usize,
        per_page: usize,
    ) -> Result<(Vec<Ticket>, usize)> {
        let multi = Cell::from("multi");
        let mut rows = Vec::new();
        for (column, value) in selections {
            let value = Cell::from(value);
            let mut after: Option<Cell> = None;
            loop {
                let mut sel = Select::only(column, value.clone(), PAGE).bare();
                if let Some(a) = after.take() {
                    sel = sel.after(a);
                }
                let chunk = self.store.records(Ticket::KIND, &sel).await?;
                let done = chunk.len() < PAGE;
                after = chunk.last().map(|r| r.key.clone());
                for r in chunk {
                    let workflow = match r.cell("workflow") {
                        Some(Cell::Int(w)) => *w,
                        _ => continue,
                    };
                    if !q.workflows.is_empty() && !q.workflows.contains(&workflow) {
                        continue;
                    }
                    if r.cell("duty") == Some(&multi) {
                        let Some(t) = self.store.get::<Ticket>(ticket_id(&r.key)).await? else {
                            continue;
                        };
                        if !t.participants(dir).iter().any(|p| p == user) {
                            continue;
                        }
                    }
                    rows.push(r);
                }
                if done {
                    break;
                }
            }
        }
        rows.sort_by(|a, b| a.key.cmp(&b.key));
        if q.reverse {
            rows.reverse();
        }
        let total = rows.len();
        let start = page.saturating_sub(1).saturating_mul(per_page);
        let mut tickets = Vec::with_capacity(per_page.min(total));
        for r in rows.iter().skip(start).take(per_page) {
            if let Some(t) = self.store.get::<Ticket>(ticket_id(&r.key)).await? {
                tickets.push(t);
            }
        }
        Ok((tickets, total))
    }

    /// Every ticket (or those whose `column` is `value`), by id.
    pub(super) async fn scan(&self, only: Option<(&'static str, Cell)>, mut each: impl FnMut(Ticket)) -> Result<()> {
        let mut after: Option<i64> = None;
        loop {
            let mut sel = match &only {
                Some((c, v)) => Select::only(c, v.clone(), PAGE),
                None => Select::all(PAGE),
            };
            if let Some(a) = after {
                sel = sel.after(a.into());
            }
            let chunk: Vec<Ticket> = self.store.list(sel).await?;
            after = chunk.last().map(|t| t.id);
            let done = chunk.len() < PAGE;
            chunk.into_iter().for_each(&mut each);
            if done {
                return Ok(());
            }
        }
    }

    /// Ticket `id`'s flow logs, oldest first.
    pub async fn flow_logs(&self, id: i64) -> Result<Vec<FlowLog>> {
        let mut out: Vec<FlowLog> = Vec::new();
        loop {
            let mut sel = Select::only("ticket", id, PAGE);
            if let Some(last) = out.last() {
                sel = sel.after(last.id.into());
            }
            let page: Vec<FlowLog> = self.store.list(sel).await?;
            let done = page.len() < PAGE;
            out.extend(page);
            if done {
                return Ok(out);
            }
        }
    }

    /// Creates a ticket of workflow `workflow` for `user` (seed 004 create),
    /// its serial number prefixed by `prefix`.
    pub async fn create_ticket(
        &self,
        prefix: &str,
        user: &str,
        workflow: i64,
        parent: (i64, i64),
        req: &Request,
    ) -> Result<Ticket> {
        let w = self.workflow(workflow).await?;
        let now = self.now();
        let limit = crate::flow::workflow::CreateLimit::of(&w.limit_expression).map_err(refused)?;
        if limit != crate::flow::workflow::CreateLimit::default() {
            let hours = i64::try_from(limit.period.unwrap_or(0)).unwrap_or(i64::MAX / 3_600_000);
            let since = now.0.saturating_sub(hours.saturating_mul(3_600_000));
            let dir = self.directory().await?;
            let mut mine = 0;
            let mut all = 0;
            self.scan(Some(("workflow", Cell::Int(workflow))), |t| {
                if t.created_at.0 >= since {
                    all += 1;
                    mine += u64::from(t.creator == user);
                }
            })
            .await?;
            limit
                .allows(user, &dir, |everyone| if everyone { all } else { mine })
                .map_err(refused)?;
        }
        let id = self.next_id(IdKind::of::<Ticket>()).await?;
        let day = now.in_zone(self.config.time_zone).format("%Y%m%d");
        let sn = format!("{prefix}_{day}{id:04}");
        let ticket = decided!(self, |_attempt| {
            let dir = self.directory().await?;
            let parent_ticket = match parent.0 {
                0 => None,
                p => Some(self.ticket(p).await?),
            };
            let parent_wf = match &parent_ticket {
                Some(p) => Some(self.workflow(p.workflow_id).await?),
                None => None,
            };
            let ctx = Ctx {
                workflow: &w,
                directory: &dir,
                parent: parent_ticket.as_ref(),
                parent_state: parent_ticket
                    .as_ref()
                    .zip(parent_wf.as_ref())
                    .and_then(|(p, pw)| pw.state(p.state_id)),
                now,
                pick: self.random(),
            };
            let moved = Ticket::create(&ctx, id, sn.clone(), user, parent.1, req).map_err(refused)?;
            let mut tx = Tx::default();
            let ticket = self.effects(&mut tx, &w, &dir, moved, user, "ticket.create").await?;
            Ok(Decided::Commit(tx, ticket))
        })?;
        self.place_ticket_job(&ticket).await?;
        Ok(ticket)
    }

    /// Places the job a ticket's robot state just started.
    async fn place_ticket_job(&self, t: &Ticket) -> Result<()> {
        if let Some(k) = t.job_key
            && let Some(j) = self.store.job_by_key(k).await?
            && j.state == JobState::Pending
        {
            self.place_job(j.id).await?;
        }
        Ok(())
    }

    /// Runs `op` on ticket `id` as `who` (audit action `action`) and commits
    /// what it decides; the ticket after.
    pub async fn move_ticket(
        &self,
        id: i64,
        who: &str,
        action: &'static str,
        op: impl Fn(&Ticket, &Ctx<'_>) -> std::result::Result<Moved, String>,
    ) -> Result<Ticket> {
        let outcome = decided!(self, |_attempt| {
            let t = self.ticket(id).await?;
            let w = self.workflow(t.workflow_id).await?;
            let dir = self.directory().await?;
            let parent = match t.parent_ticket_id {
                0 => None,
                p => self.store.get::<Ticket>(p).await?,
            };
            let ctx = Ctx {
                workflow: &w,
                directory: &dir,
                parent: parent.as_ref(),
                parent_state: None,
                now: self.now(),
                pick: self.random(),
            };
            let mut moved = op(&t, &ctx).map_err(refused)?;
            moved.ticket.version = t.version + 1;
            let mut tx = Tx::default();
            let ticket = self.effects(&mut tx, &w, &dir, moved, who, action).await?;
            Ok(Decided::Commit(tx, ticket))
        });
        let ticket = outcome?;
        self.place_ticket_job(&ticket).await?;
        if ticket.is_end
            && let Some(k) = ticket.pauses_job
            && let Some(j) = self.store.job_by_key(k).await?
            && j.state == JobState::Pending
        {
            self.place_job(j.id).await?;
        }
        Ok(ticket)
    }

    /// Changes ticket `id`'s field values (`PATCH fields`).
    pub async fn update_ticket_fields(&self, id: i64, user: &str, given: &Map<String, Value>) -> Result<Ticket> {
        decided!(self, |_attempt| {
            let t = self.ticket(id).await?;
            let w = self.workflow(t.workflow_id).await?;
            let dir = self.directory().await?;
            let ctx = Ctx::new(&w, &dir, self.now());
            let mut next = t.update_fields(&ctx, user, given).map_err(refused)?;
            next.version = t.version + 1;
            let mut tx = Tx::default();
            let detail = format!("by {user}: {}", given.keys().cloned().collect::<Vec<_>>().join(","));
            self.write_ticket(&mut tx, &next, Vec::new(), "ticket.fields", detail, ctx.now)
                .await?;
            Ok(Decided::Commit(tx, next))
        })
    }

    /// Appends a comment to ticket `id`.
    pub async fn comment_ticket(&self, id: i64, user: &str, suggestion: &str) -> Result<()> {
        let t = self.ticket(id).await?;
        let w = self.workflow(t.workflow_id).await?;
        let dir = self.directory().await?;
        let now = self.now();
        let ctx = Ctx::new(&w, &dir, now);
        let entry = t.comment(&ctx, user, suggestion).map_err(refused)?;
        let log = FlowLog {
            id: self.next_id(IdKind::of::<FlowLog>()).await?,
            version: 1,
            ticket_id: id,
            entry,
            ticket_data: t.values(),
            created_at: now,
        };
        let mut tx = Tx::default();
        tx.record(&log)?.audit(
            now,
            Actor::System,
            "ticket.comment",
            Subject::Id("ticket", id),
            format!("by {user}"),
        );
        self.commit(tx).await
    }

    fn random(&self) -> u64 {
        use rand::Rng;
        self.rng.lock().unwrap_or_else(|p| p.into_inner()).random()
    }

    /// Puts `moved` into `tx`: the ticket (one version on), its flow logs,
    /// the audit event, and what its effects ask (a robot job, a parent's
    /// move). The ticket as committed.
    async fn effects(
        &self,
        tx: &mut Tx,
        w: &Workflow,
        dir: &Directory,
        moved: Moved,
        who: &str,
        action: &'static str,
    ) -> Result<Ticket> {
        let now = self.now();
        let mut t = moved.ticket;
        if t.is_end
            && let Some(key) = t.pauses_job
        {
            let decision = moved.logs.last().map(|l| l.transition_name.clone()).unwrap_or_default();
            self.resume_job(tx, key, &t, &decision, now).await?;
        }
        for e in &moved.effects {
            match e {
                Effect::Robot { process } => {
                    let job = self.robot_step(w, &t, process, now).await?;
                    t.job_key = Some(job.key);
                    tx.job(job.clone()).audit(
                        now,
                        Actor::System,
                        "job.start",
                        Subject::Id("job", job.id.0),
                        format!("ticket:{} state:{}", t.id, t.state_id),
                    );
                }
                Effect::Hook(_) => {}
                Effect::ChildEnded { parent, parent_state } => {
                    self.child_ended(tx, dir, &t, *parent, *parent_state, now).await?;
                }
            }
        }
        let detail = format!("by {who}: state {} participant {}", t.state_id, t.participant);
        self.write_ticket(tx, &t, moved.logs, action, detail, now).await?;
        Ok(t)
    }

    /// Puts ticket `t` and its new flow `logs` into `tx`, with the audit
    /// event `action`.
    async fn write_ticket(
        &self,
        tx: &mut Tx,
        t: &Ticket,
        logs: Vec<crate::flow::LogEntry>,
        action: &'static str,
        detail: String,
        now: Timestamp,
    ) -> Result<()> {
        let data = t.values();
        for entry in logs {
            let log = FlowLog {
                id: self.next_id(IdKind::of::<FlowLog>()).await?,
                version: 1,
                ticket_id: t.id,
                entry,
                ticket_data: data.clone(),
                created_at: now,
            };
            tx.record(&log)?;
        }
        tx.record(t)?
            .audit(now, Actor::System, action, Subject::Id("ticket", t.id), detail)
            .event(
                now,
                Event::TicketChanged {
                    ticket: t.id,
                    sn: t.sn.clone(),
                    workflow: t.workflow_id,
                    state: t.state_id,
                    participant_type_id: t.participant_type_id,
                    participant: t.participant.clone(),
                    is_end: t.is_end,
                    action: action.into(),
                },
            );
        Ok(())
    }

    /// Opens the ticket of suspended job `job`'s pause step (in `tx`, the
    /// commit that suspends it): a ticket of the process's pause workflow,
    /// created by the job's user when the directory knows them (else by
    /// `loonrobot`), with the job's arguments and checkpoint as fields.
    pub(crate) async fn pause_ticket(&self, tx: &mut Tx, job: &Job, p: &Process, now: Timestamp) -> Result<()> {
        let name = p
            .spec
            .pause_workflow
            .as_deref()
            .ok_or_else(|| refused(format!("process {} names no workflow for its pause steps", p.spec.name)))?;
        let w = self
            .workflows()
            .await?
            .into_iter()
            .find(|w| w.name == name)
            .ok_or_else(|| refused(format!("pause workflow {name} does not exist")))?;
        let dir = self.directory().await?;
        let creator = if dir.active(&job.user_name) {
            job.user_name.to_string()
        } else {
            crate::flow::ticket::LOONROBOT.to_owned()
        };
        let mut fields = match &*job.arguments {
            Value::Object(m) => m.clone(),
            _ => Map::new(),
        };
        if let Some(Value::Object(c)) = job.checkpoint.as_deref() {
            fields.extend(c.iter().map(|(k, v)| (k.clone(), v.clone())));
        }
        let step = job.step_records.last();
        fields.entry("title").or_insert_with(|| {
            Value::String(format!(
                "{}: {}",
                p.spec.name,
                step.and_then(|s| s.name.as_deref()).unwrap_or("a decision")
            ))
        });
        let start = w.start();
        let way = w
            .out_of(start.id)
            .next()
            .ok_or_else(|| refused(format!("pause workflow {name} has no way out of its start")))?;
        let req = Request {
            transition_id: way.id,
            suggestion: format!("job {} paused at step {}", job.key, job.steps),
            fields,
        };
        let id = self.next_id(IdKind::of::<Ticket>()).await?;
        let day = now.in_zone(self.config.time_zone).format("%Y%m%d");
        let ctx = Ctx {
            workflow: &w,
            directory: &dir,
            parent: None,
            parent_state: None,
            now,
            pick: self.random(),
        };
        let who = Who::Robot(&p.spec.name);
        let mut moved = Ticket::open(&ctx, id, format!("pause_{day}{id:04}"), &creator, 0, &req, who)
            .map_err(|e| refused(format!("pause step: {e}")))?;
        moved.ticket.pauses_job = Some(job.key);
        self.effects(tx, &w, &dir, moved, &p.spec.name, "ticket.pause").await?;
        Ok(())
    }

    /// Resumes suspended job `key` (in `tx`, the commit that ends its
    /// ticket `t`): its arguments with the ticket's fields and the
    /// decision (`decision`: the last transition's name; `approved`: the
    /// ticket was not rejected).
    async fn resume_job(&self, tx: &mut Tx, key: Key, t: &Ticket, decision: &str, now: Timestamp) -> Result<()> {
        let Some(mut job) = self.store.job_by_key(key).await? else {
            return Ok(());
        };
        if job.state != JobState::Suspended {
            return Ok(());
        }
        let p = self
            .store
            .process(job.process)
            .await?
            .ok_or_else(|| Error::Internal("job without process".into()))?;
        let mut args = match &*job.arguments {
            Value::Object(m) => m.clone(),
            _ => Map::new(),
        };
        args.extend(t.fields.iter().map(|(k, v)| (k.clone(), v.clone())));
        args.insert("decision".into(), Value::String(decision.to_owned()));
        args.insert("approved".into(), Value::Bool(!t.is_rejected));
        let ctx = crate::job::JobCtx {
            now,
            retry: &p.spec.retry,
            retry_failures: job.queue_item.is_none(),
        };
        let resume = crate::job::JobEvent::Resume(Arc::new(Value::Object(args)));
        crate::job::apply(&mut job, resume, ctx)?;
        tx.audit(
            now,
            Actor::System,
            "job.resume",
            Subject::Id("job", job.id.0),
            format!("ticket:{} {decision}", t.id),
        );
        tx.job(job);
        Ok(())
    }

    /// The job of robot state `process` for ticket `t`: the ticket's
    /// fields the process declares as arguments.
    async fn robot_step(&self, w: &Workflow, t: &Ticket, process: &str, now: Timestamp) -> Result<Job> {
        let p = self
            .store
            .processes()
            .await?
            .into_iter()
            .find(|p| p.spec.name == process)
            .ok_or_else(|| refused(format!("robot state: process {process} does not exist")))?;
        limits::may_start(&p, self.today(now)).map_err(Error::Limit)?;
        let owner = self
            .store
            .user_by_name(&w.creator)
            .await?
            .ok_or_else(|| refused(format!("robot state: workflow owner {} is not a user", w.creator)))?;
        let values = t.values();
        let args: Map<String, Value> = p
            .spec
            .arguments
            .iter()
            .filter_map(|a| {
                values
                    .get(&a.name)
                    .or_else(|| values.get(&a.id))
                    .map(|v| (a.name.clone(), v.clone()))
            })
            .collect();
        let args = arguments::validate_shared(&p.spec, &Value::Object(args)).map_err(|e| {
            refused(format!(
                "robot state: the ticket's fields do not fit process {process}: {e}"
            ))
        })?;
        self.new_job(&p, &owner, args, None, now, None, None).await
    }

    /// Child `child` of `parent` ended (in `tx`): if every child of the
    /// parent's state has ended, the parent moves on in the same commit.
    async fn child_ended(
        &self,
        tx: &mut Tx,
        dir: &Directory,
        child: &Ticket,
        parent: i64,
        parent_state: i64,
        now: Timestamp,
    ) -> Result<()> {
        let Some(p) = self.store.get::<Ticket>(parent).await? else {
            return Ok(());
        };
        if p.state_id != parent_state || p.waiting != Some(Waiting::Children) {
            return Ok(());
        }
        let siblings: Vec<Ticket> = self.store.list(Select::only("parent", parent, 10_000)).await?;
        let open = siblings
            .iter()
            .filter(|s| s.id != child.id && s.parent_ticket_state_id == parent_state)
            .any(|s| !s.is_end);
        if open {
            return Ok(());
        }
        let pw = self.workflow(p.workflow_id).await?;
        let ctx = Ctx::new(&pw, dir, now);
        let moved = p.children_ended(&ctx).map_err(refused)?;
        let mut t = moved.ticket;
        t.version = p.version + 1;
        let detail = format!("state {}", t.state_id);
        self.write_ticket(tx, &t, moved.logs, "ticket.children_ended", detail, now)
            .await
    }

    /// Moves tickets whose robot jobs ended (the `flow` consumer) and fires
    /// due timer transitions; how many tickets moved.
    pub async fn follow_flows(&self) -> Result<usize> {
        let mut moved = 0;
        loop {
            // The head is read before looking for robot tickets: a robot
            // ticket that appears after the look ends its job after the head.
            let head = self.store.head().await?;
            let batch = self.events_for(FLOW_CONSUMER, 256).await?;
            if !batch.moves() {
                break;
            }
            // The tickets waiting for a robot, by their job (usually few:
            // past `PAGE` of them each event is looked up by its job instead).
            let robots: Vec<Ticket> = self
                .store
                .list(Select::only("wait", Waiting::Robot.as_str(), PAGE))
                .await?;
            let waiting: std::collections::HashMap<Key, i64> =
                robots.iter().filter_map(|t| t.job_key.map(|k| (k, t.id))).collect();
            let all_known = robots.len() < PAGE;
            if robots.is_empty() {
                // No ticket waits for a robot: nothing before the head concerns tickets.
                let mut tx = Tx::default();
                tx.record(&Cursor {
                    name: FLOW_CONSUMER.into(),
                    seq: head.max(batch.cursor.seq),
                    version: batch.cursor.version + 1,
                })?;
                match self.commit(tx).await {
                    Ok(()) => break,
                    Err(e) if super::is_conflict(&e) => break,
                    Err(e) => return Err(e),
                }
            }
            for ev in &batch.page.events {
                if let Event::JobEnded {
                    key,
                    state,
                    outputs,
                    reason,
                    ..
                } = &ev.event
                {
                    let t = match waiting.get(key) {
                        Some(id) => *id,
                        None if all_known => continue,
                        None => match self.store.find::<Ticket>("job_key", key.to_string().as_str()).await? {
                            Some(t) => t.id,
                            None => continue,
                        },
                    };
                    let ok = *state == JobState::Successful;
                    let why = reason
                        .as_deref()
                        .map_or_else(|| format!("{state:?}"), |r| format!("{state:?}: {r}"));
                    let key = *key;
                    let outputs = outputs.clone();
                    match self
                        .move_ticket(t, "robot", "ticket.robot", |t, ctx| {
                            t.robot_ended(ctx, key, ok, outputs.as_deref(), &why)
                        })
                        .await
                    {
                        Ok(_) => moved += 1,
                        Err(e) if e.is_client_error() && ok => {
                            // The run succeeded but the ticket cannot move on (the next
                            // state's robot job is refused by a limit, say): the run
                            // counts as failed, so that `retry_script` can try again.
                            let why = format!("the run succeeded, but the ticket cannot move on: {e}");
                            match self
                                .move_ticket(t, "robot", "ticket.robot", |t, ctx| {
                                    t.robot_ended(ctx, key, false, None, &why)
                                })
                                .await
                            {
                                Ok(_) => moved += 1,
                                Err(e) if e.is_client_error() => {}
                                Err(e) => return Err(e),
                            }
                        }
                        // A repeat (the ticket moved on already).
                        Err(e) if e.is_client_error() => {}
                        Err(e) => return Err(e),
                    }
                }
            }
            match self.acknowledge(&batch).await {
                Ok(()) => {}
                Err(e) if super::is_conflict(&e) => return Ok(moved),
                Err(e) => return Err(e),
            }
        }
        let now = self.now();
        let timers: Vec<Ticket> = self
            .store
            .list(Select::only("wait", Waiting::Timer.as_str(), PAGE))
            .await?;
        for t in timers.iter().filter(|t| t.timer_at.is_some_and(|at| at <= now)) {
            match self
                .move_ticket(t.id, "timer", "ticket.timer", |t, ctx| {
                    t.timer_due(ctx).unwrap_or_else(|| Err("not due".into()))
                })
                .await
            {
                Ok(_) => moved += 1,
                Err(e) if e.is_client_error() => {}
                Err(e) => return Err(e),
            }
        }
        Ok(moved)
    }

    /// Records the post of ticket `id`'s hook: `ok`, or failed for `why`.
    pub async fn hook_posted(&self, id: i64, ok: bool, why: &str) -> Result<Ticket> {
        self.move_ticket(id, "hook", "ticket.hook", |t, ctx| t.hook_posted(ctx, ok, why))
            .await
    }

    /// Tickets whose hook is to be posted now: each with its state's hook.
    pub async fn hooks_due(&self) -> Result<Vec<(Ticket, crate::flow::Hook)>> {
        let now = self.now();
        let waiting: Vec<Ticket> = self
            .store
            .list(Select::only("wait", Waiting::Hook.as_str(), PAGE))
            .await?;
        let mut out = Vec::new();
        for t in waiting.into_iter().filter(|t| t.hook_next.is_some_and(|at| at <= now)) {
            let w = self.workflow(t.workflow_id).await?;
            if let Some(h) = w.state(t.state_id).and_then(|s| s.hook.clone()) {
                out.push((t, h));
            }
        }
        Ok(out)
    }
}

/// A ticket row's key as its id.
fn ticket_id(key: &Cell) -> i64 {
    match key {
        Cell::Int(id) => *id,
        _ => 0,
    }
}

fn matches(t: &Ticket, q: &TicketQuery, user: &str, dir: &Directory) -> bool {
    let category = match q.category.as_str() {
        "owner" => t.creator == user,
        "duty" => !t.is_end && t.participants(dir).iter().any(|p| p == user),
        "relation" => t.relation.iter().any(|r| r == user),
        _ => true,
    };
    category
        && t.sn.starts_with(&q.sn)
        && t.title.contains(&q.title)
        && q.created.0.is_none_or(|s| t.created_at >= s)
        && q.created.1.is_none_or(|e| t.created_at <= e)
        && (q.workflows.is_empty() || q.workflows.contains(&t.workflow_id))
        && (q.states.is_empty() || q.states.contains(&t.state_id))
        && (q.tickets.is_empty() || q.tickets.contains(&t.id))
        && q.is_end.is_none_or(|e| t.is_end == e)
        && q.is_rejected.is_none_or(|r| t.is_rejected == r)
}
