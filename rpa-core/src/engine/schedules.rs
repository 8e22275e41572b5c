//! Schedules (the rules are in [`crate::schedule`]): saving them, turning
//! them on and off, and firing them from [`Engine::tick`]. A firing is one
//! commit: the schedule moved to its next time, the firing's record (unique
//! per schedule and due time) and the job it starts, so two nodes that reach
//! the same due time start one job between them, and a firing a limit
//! refuses is kept with the reason.

use super::{Decided, Engine, Tx, dup_as_exists};
use crate::arguments;
use crate::audit::{self, Subject};
use crate::error::{Entity, Error, Result, StoreError};
use crate::ids::*;
use crate::limits;
use crate::model::*;
use crate::record::{Mapped, Select};
use crate::schedule::{self, Schedule, ScheduleFiring, ScheduleSpec};
use crate::store::People as _;
use crate::store::{Records, Store};
use crate::time::Timestamp;

/// How often the timer holder looks at every schedule even when none it
/// knows of is due (to learn of schedules other nodes saved).
const RESCAN_MS: u64 = 5_000;

/// Schedules read per page while firing.
const PAGE: usize = 500;

impl<S: Store> Engine<S> {
    /// Saves a schedule that starts jobs as `owner` (permission
    /// ManageProcesses for `actor`). Refused with the reason when malformed,
    /// when it could never fire, or when its arguments do not fit its process.
    pub async fn create_schedule(&self, actor: Actor, owner: &User, mut spec: ScheduleSpec) -> Result<Schedule> {
        self.require(actor, Permission::ManageProcesses).await?;
        let p = self
            .store
            .process(spec.process)
            .await?
            .ok_or_else(|| Error::NotFound(Entity::Process, spec.process.0.to_string()))?;
        if p.spec.process_type == ProcessType::Queue {
            return Err(Error::InvalidArgument(
                "a Queue process is started by its queue items, not by a schedule".into(),
            ));
        }
        spec.arguments = arguments::validate_shared(&p.spec, &spec.arguments)?;
        let now = self.now();
        spec.validate(now).map_err(Error::InvalidArgument)?;
        let s = Schedule {
            id: self.next_id(IdKind::of::<Schedule>()).await?,
            version: 1,
            next_at: spec.next_after(now, now).map_err(Error::InvalidArgument)?,
            spec,
            enabled: true,
            anchor: now,
            owner: owner.id,
            created_at: now,
        };
        let mut tx = Tx::default();
        tx.record(&s)?.audit(
            now,
            actor,
            "schedule.create",
            Subject::Id("schedule", s.id),
            s.spec.name.clone(),
        );
        self.commit(tx).await.map_err(dup_as_exists)?;
        self.schedules_changed(s.next_at);
        Ok(s)
    }

    /// Turns a schedule on (from now: times that passed while it was off
    /// are not missed ones) or off (permission ManageProcesses).
    pub async fn set_schedule_enabled(&self, actor: Actor, id: i64, enabled: bool) -> Result<Schedule> {
        self.require(actor, Permission::ManageProcesses).await?;
        let s = decided!(self, |_attempt| {
            let mut s = self.schedule(id).await?;
            if s.enabled == enabled {
                return Ok(Decided::Answer(s));
            }
            let now = self.now();
            s.enabled = enabled;
            s.next_at = if enabled {
                s.spec.next_after(s.anchor, now).map_err(Error::Internal)?
            } else {
                None
            };
            s.version += 1;
            let mut tx = Tx::default();
            let action = if enabled { "schedule.enable" } else { "schedule.disable" };
            tx.record(&s)?
                .audit(now, actor, action, Subject::Id("schedule", s.id), String::new());
            Ok(Decided::Commit(tx, s))
        })?;
        self.schedules_changed(s.next_at);
        Ok(s)
    }

    /// A schedule by id.
    pub async fn schedule(&self, id: i64) -> Result<Schedule> {
        self.store
            .get::<Schedule>(id)
            .await?
            .ok_or_else(|| Error::NotFound(Entity::Record(Schedule::KIND.name), id.to_string()))
    }

    /// Every schedule, by id.
    pub async fn schedules(&self) -> Result<Vec<Schedule>> {
        let mut all = Vec::new();
        loop {
            let mut sel = Select::all(PAGE);
            if let Some(last) = all.last().map(|s: &Schedule| s.id) {
                sel = sel.after(last.into());
            }
            let page: Vec<Schedule> = self.store.list(sel).await?;
            let done = page.len() < PAGE;
            all.extend(page);
            if done {
                return Ok(all);
            }
        }
    }

    /// A schedule's next `n` fire times (none while it is off).
    pub fn schedule_upcoming(&self, s: &Schedule, n: usize) -> Result<Vec<Timestamp>> {
        match s.next_at {
            Some(next) if s.enabled => {
                let mut v = vec![next];
                v.extend(
                    s.spec
                        .upcoming(s.anchor, next, n.saturating_sub(1))
                        .map_err(Error::Internal)?,
                );
                v.truncate(n);
                Ok(v)
            }
            _ => Ok(Vec::new()),
        }
    }

    /// A schedule's firings, oldest first, after the firing `after`.
    pub async fn schedule_firings(&self, id: i64, after: i64, limit: usize) -> Result<Vec<ScheduleFiring>> {
        self.schedule(id).await?;
        Ok(self
            .store
            .list(Select::only("schedule", id, limit).after(after.into()))
            .await?)
    }

    /// Notes that a schedule's next time may now be earlier than any known.
    fn schedules_changed(&self, next: Option<Timestamp>) {
        if let Some(t) = next {
            let mut g = self.schedule_scan.lock().unwrap_or_else(|p| p.into_inner());
            g.0 = Some(g.0.map_or(t, |x| x.min(t)));
        }
    }

    /// Fires every schedule whose time has come; the number of firings
    /// handled here. [`Engine::tick`] calls it on the node that holds the
    /// timers; a second caller at the same time fires nothing twice.
    pub async fn fire_schedules(&self, now: Timestamp) -> Result<usize> {
        {
            let g = self.schedule_scan.lock().unwrap_or_else(|p| p.into_inner());
            let due = g.0.is_some_and(|t| t <= now);
            if !due && now < g.1 {
                return Ok(0);
            }
        }
        let mut fired = 0;
        let mut earliest: Option<Timestamp> = None;
        let mut after: Option<i64> = None;
        loop {
            let mut sel = Select::only("enabled", 1, PAGE);
            if let Some(a) = after {
                sel = sel.after(a.into());
            }
            let page: Vec<Schedule> = self.store.list(sel).await?;
            after = page.last().map(|s| s.id);
            for s in &page {
                let next = match s.next_at {
                    Some(t) if t <= now => {
                        let (handled, next) = self.fire_schedule(s.id, now).await?;
                        fired += usize::from(handled);
                        next
                    }
                    other => other,
                };
                if let Some(t) = next {
                    earliest = Some(earliest.map_or(t, |e| e.min(t)));
                }
            }
            if page.len() < PAGE {
                break;
            }
        }
        let mut g = self.schedule_scan.lock().unwrap_or_else(|p| p.into_inner());
        g.0 = match (g.0.filter(|t| *t > now), earliest) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        g.1 = now.plus_ms(RESCAN_MS);
        Ok(fired)
    }

    /// Handles the due times of schedule `id` that came by `now`: whether a
    /// firing was recorded here (not by another node), and the schedule's
    /// next time.
    async fn fire_schedule(&self, id: i64, now: Timestamp) -> Result<(bool, Option<Timestamp>)> {
        let mut started = None;
        let outcome = decided!(
            self,
            |_attempt| {
                started = None;
                let mut s = self.schedule(id).await?;
                let firing = match (s.enabled, s.next_at) {
                    (true, Some(next)) => {
                        schedule::after_downtime(&s.spec, s.anchor, next, now).map_err(Error::Internal)?
                    }
                    _ => None,
                };
                let Some(f) = firing else {
                    return Ok(Decided::Answer((false, s.next_at)));
                };
                let mut record = ScheduleFiring {
                    id: self.next_id(IdKind::of::<ScheduleFiring>()).await?,
                    version: 1,
                    schedule: s.id,
                    due: f.due,
                    at: now,
                    job: None,
                    job_key: None,
                    missed: f.missed,
                    reason: None,
                };
                let mut tx = Tx::default();
                let name = s.spec.name.clone();
                if !f.fire {
                    record.reason = Some(format!(
                        "skipped: {} due time(s) came while the engine was not running",
                        f.missed
                    ));
                } else {
                    match self.schedule_job(&s, now).await? {
                        Ok(job) => {
                            record.job = Some(job.id);
                            record.job_key = Some(job.key);
                            tx.job(job.clone()).audit(
                                now,
                                Actor::System,
                                "job.start",
                                Subject::Id("job", job.id.0),
                                audit::id_text("process", job.process.0),
                            );
                            started = Some(job.id);
                        }
                        Err(reason) => record.reason = Some(reason),
                    }
                }
                let (action, detail) = match (&record.reason, f.missed) {
                    (None, 0) => ("schedule.fire", name),
                    (None, n) => ("schedule.fire", format!("{name} (once for {} due times)", n + 1)),
                    (Some(r), _) if !f.fire => ("schedule.skip", format!("{name}: {r}")),
                    (Some(r), _) => ("schedule.refused", format!("{name}: {r}")),
                };
                s.next_at = f.next;
                s.version += 1;
                tx.record(&s)?;
                tx.record(&record)?
                    .audit(now, Actor::System, action, Subject::Id("schedule", s.id), detail);
                Ok(Decided::Commit(tx, (true, s.next_at)))
            },
            |e: &Error| matches!(e, Error::Store(StoreError::Conflict))
        );
        let (handled, next) = match outcome {
            Ok(v) => v,
            // Another node recorded this due time first.
            Err(Error::Store(StoreError::Duplicate(_))) => {
                return Ok((false, self.schedule(id).await?.next_at));
            }
            Err(e) => return Err(e),
        };
        if let Some(j) = started.filter(|_| handled) {
            self.place_job(j).await?;
        }
        Ok((handled, next))
    }

    /// The job a schedule starts now, or why none may start.
    async fn schedule_job(&self, s: &Schedule, now: Timestamp) -> Result<std::result::Result<Job, String>> {
        let Some(p) = self.store.process(s.spec.process).await? else {
            return Ok(Err("the process no longer exists".into()));
        };
        if let Err(l) = limits::may_start(&p, self.today(now)) {
            return Ok(Err(Error::Limit(l).to_string()));
        }
        let Some(owner) = self.store.user(s.owner).await? else {
            return Ok(Err("the schedule's owner no longer exists".into()));
        };
        let args = arguments::validate_shared(&p.spec, &s.spec.arguments);
        match args {
            Ok(args) => Ok(Ok(self.new_job(&p, &owner, args, None, now, None, None).await?)),
            Err(e) => Ok(Err(format!("the arguments no longer fit the process: {e}"))),
        }
    }
}
