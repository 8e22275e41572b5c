//! AI capabilities (the rules are in [`crate::ai`]): registering and
//! retiring them (permission ManageProcesses), and admitting a robot's
//! call. A call is admitted for a job its robot is running, of a process
//! granted the capability, while the day's quota lasts; admitting it counts
//! it and audits it in one commit, before the service is asked, so the
//! quota holds across nodes and every call is on record with its job.

use super::{Decided, Engine, Tx};
use crate::ai::{self, Capability, MAX_CAPABILITIES, Refusal, Spec, Usage};
use crate::audit::Subject;
use crate::error::{Entity, Error, Limit, Result};
use crate::ids::{JobId, Key};
use crate::model::*;
use crate::record::{Mapped, Select};
use crate::store::{Records, Store};

/// A call admitted: what to call, for which job.
#[derive(Debug, Clone)]
pub struct Admitted {
    /// The capability, credentials included (never show it).
    pub capability: Capability,
    /// The job the call is made for.
    pub job: JobId,
    /// Its process's name.
    pub process: String,
    /// Calls admitted today, this one included.
    pub calls_today: u64,
}

impl<S: Store> Engine<S> {
    /// Registers capability `name`, or replaces the spec of one that
    /// exists (a retired one is registered again).
    pub async fn register_capability(&self, actor: Actor, name: &str, spec: Spec) -> Result<Capability> {
        self.require(actor, Permission::ManageProcesses).await?;
        ai::check_name(name).map_err(Error::InvalidArgument)?;
        spec.check().map_err(Error::InvalidArgument)?;
        decided!(self, |_attempt| {
            let now = self.now();
            let version = match self.store.get::<Capability>(name).await? {
                Some(old) => old.version + 1,
                None => {
                    let n = self
                        .store
                        .records(Capability::KIND, &Select::all(MAX_CAPABILITIES).bare())
                        .await?
                        .len();
                    if n >= MAX_CAPABILITIES {
                        return Err(Error::InvalidArgument(format!(
                            "a server keeps at most {MAX_CAPABILITIES} capabilities"
                        )));
                    }
                    1
                }
            };
            let c = Capability {
                name: name.to_owned(),
                version,
                spec: spec.clone(),
                retired: false,
                changed_at: now,
            };
            let mut tx = Tx::default();
            tx.record(&c)?
                .audit(now, actor, "ai.register", subject(name), describe(&spec));
            Ok(Decided::Commit(tx, c))
        })
    }

    /// Retires capability `name`: every later call is refused.
    pub async fn retire_capability(&self, actor: Actor, name: &str) -> Result<Capability> {
        self.require(actor, Permission::ManageProcesses).await?;
        decided!(self, |_attempt| {
            let now = self.now();
            let mut c = self.live_capability(name).await?;
            c.retired = true;
            c.version += 1;
            c.changed_at = now;
            let mut tx = Tx::default();
            tx.record(&c)?
                .audit(now, actor, "ai.retire", subject(name), String::new());
            Ok(Decided::Commit(tx, c))
        })
    }

    /// Every capability, tokens blanked.
    pub async fn capabilities(&self, actor: Actor) -> Result<Vec<Capability>> {
        self.require(actor, Permission::ManageProcesses).await?;
        let all: Vec<Capability> = self.store.list(Select::all(MAX_CAPABILITIES)).await?;
        Ok(all.iter().map(Capability::redacted).collect())
    }

    /// Capability `name` as stored, token included (for configuration
    /// loading; never show it).
    pub async fn capability(&self, name: &str) -> Result<Option<Capability>> {
        Ok(self.store.get::<Capability>(name).await?)
    }

    /// Capability `name`'s calls per day, oldest first.
    pub async fn capability_usage(&self, actor: Actor, name: &str) -> Result<Vec<Usage>> {
        self.require(actor, Permission::ManageProcesses).await?;
        if self.store.get::<Capability>(name).await?.is_none() {
            return Err(Error::NotFound(Entity::Record(Capability::KIND.name), name.to_owned()));
        }
        let mut usage: Vec<Usage> = self.store.list(Select::only("capability", name, 100_000)).await?;
        usage.sort_by_key(|u| u.day);
        Ok(usage)
    }

    /// Robot `robot`'s call of capability `name` for its run `run` (the
    /// caller has authenticated the robot): admitted (counted against
    /// today's quota and audited), or refused. A call the quota refuses is
    /// counted as refused.
    pub async fn admit_ai_call(&self, robot: &Robot, run: Key, name: &str) -> Result<Admitted> {
        let code = &robot.code;
        decided!(self, |_attempt| {
            let now = self.now();
            let job = match self.store.job_by_key(run).await? {
                Some(j) if j.robot == Some(robot.id) && j.state == JobState::Running => j,
                Some(_) => {
                    return Err(Error::InvalidArgument(format!(
                        "run instance {run} is not running on robot {code}"
                    )));
                }
                None => return Err(Error::NotFound(Entity::Job, run.to_string())),
            };
            let capability = match self.store.get::<Capability>(name).await? {
                Some(c) if !c.retired => c,
                _ => return Err(Error::NotFound(Entity::Record(Capability::KIND.name), name.to_owned())),
            };
            let process = self
                .store
                .process(job.process)
                .await?
                .ok_or_else(|| Error::Internal(format!("job {} has no process", job.id)))?;
            let day = now.day(self.config.time_zone);
            let mut usage = self
                .store
                .get::<Usage>(Usage::key_of(name, day).as_str())
                .await?
                .unwrap_or_else(|| Usage::new(name, day));
            usage.version += 1;
            let mut tx = Tx::default();
            let outcome = match capability.refusal(&process.spec.name, usage.calls) {
                Some(Refusal::NotGranted(p)) => {
                    return Err(Error::PermissionDenied(format!(
                        "process {p} is not granted capability {name}"
                    )));
                }
                Some(Refusal::Retired) => {
                    return Err(Error::NotFound(Entity::Record(Capability::KIND.name), name.to_owned()));
                }
                Some(Refusal::QuotaSpent(quota)) => {
                    usage.refused += 1;
                    tx.audit(
                        now,
                        Actor::Robot(robot.id),
                        "ai.refuse",
                        Subject::Id("job", job.id.0),
                        format!("{name}: the daily quota of {quota} calls is spent"),
                    );
                    Err(Error::Limit(Limit::DailyQuota {
                        capability: name.to_owned(),
                        quota,
                    }))
                }
                None => {
                    usage.calls += 1;
                    tx.audit(
                        now,
                        Actor::Robot(robot.id),
                        "ai.call",
                        Subject::Id("job", job.id.0),
                        format!("{name} (call {} today)", usage.calls),
                    );
                    Ok(Admitted {
                        capability: capability.clone(),
                        job: job.id,
                        process: process.spec.name.clone(),
                        calls_today: usage.calls,
                    })
                }
            };
            tx.record(&usage)?;
            Ok(Decided::Commit(tx, outcome))
        })?
    }

    async fn live_capability(&self, name: &str) -> Result<Capability> {
        match self.store.get::<Capability>(name).await? {
            Some(c) if !c.retired => Ok(c),
            _ => Err(Error::NotFound(Entity::Record(Capability::KIND.name), name.to_owned())),
        }
    }
}

fn subject(name: &str) -> Subject {
    Subject::Text(format!("ai:{name}").into())
}

fn describe(s: &Spec) -> String {
    let backend = match &s.backend {
        ai::Backend::Tesseract { languages } => format!("tesseract {languages}"),
        ai::Backend::Http { endpoint, .. } => format!("http {endpoint}"),
    };
    let quota = s.daily_quota.map_or_else(|| "none".to_owned(), |q| q.to_string());
    format!(
        "{:?} via {backend}; processes {}; daily quota {quota}; timeout {} ms",
        s.kind,
        s.processes.join(","),
        s.timeout_ms
    )
}
