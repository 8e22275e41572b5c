//! Robots: registration, heartbeats, reports (seed 001 A.1/A.2), vendors,
//! profiles and files. A WebSocket robot and an HTTP robot are the same to
//! these operations; only how commands reach them differs.

use std::sync::Arc;

use serde_json::Value;

use super::liveness::Holder;
use super::{Decided, Engine, Tx, is_conflict, non_empty};
use crate::audit::Subject;
use crate::auth;
use crate::error::{Entity, Error, Result, StoreError};
use crate::events;
use crate::ids::*;
use crate::job::{FinishStatus, JobEvent};
use crate::model::*;
use crate::record::Select;
use crate::robot::{self, RobotEvent};
use crate::store::People as _;
use crate::store::{Records, Store, Write, is_idle};
use crate::time::Timestamp;
use crate::transport::Command;

/// What a robot gets back from registering (seed 001 A.2.2).
#[derive(Debug, Clone)]
pub struct Registration {
    /// The robot.
    pub robot: Robot,
    /// `robotConnectId`.
    pub connect: Key,
    /// `licenseContent`, when a license is bound.
    pub license: Option<String>,
}

/// A robot's progress report (the ReportCheckpoint extension).
#[derive(Debug, Clone, Default)]
pub struct Progress {
    /// The state a fail-over run resumes from (`None`: unchanged).
    pub checkpoint: Option<Value>,
    /// The step of the run it reached, if it says.
    pub step: Option<StepReport>,
}

/// A step a robot reached: `step`, `stepName`, `taskProcessId`.
#[derive(Debug, Clone, Default)]
pub struct StepReport {
    /// The step's number in the run.
    pub step: u32,
    /// Its name.
    pub name: Option<String>,
    /// The id of the process's data step (default: the step number).
    pub task: Option<i64>,
    /// A person decides here: the run pauses (see [`crate::flow`]).
    pub pause: bool,
}

/// One reported log line (seed 001 RunInstanceLog).
#[derive(Debug, Clone)]
pub struct NewLog {
    /// `content`.
    pub content: String,
    /// `screenshot`.
    pub screenshot: Option<String>,
    /// `logAt`.
    pub log_at: String,
    /// `logLevel`.
    pub level: LogLevel,
}

/// The capability a robot declares at Register to take Execute's fail-over
/// extensions (`checkpoint`, `attempt`).
pub const CHECKPOINT_CAPABILITY: &str = "checkpoint";

impl<S: Store> Engine<S> {
    // ---------------------------------------------------------- administration

    /// Registers a vendor (supplier code + shared secret).
    pub async fn register_vendor(&self, actor: Actor, code: &str, secret: &str) -> Result<Vendor> {
        self.require(actor, Permission::ManageRobots).await?;
        let code = non_empty(code, "supplier code")?;
        if secret.len() < 8 {
            return Err(Error::InvalidArgument(
                "vendor secret must be at least 8 characters".into(),
            ));
        }
        let existing = self.store.vendor_by_code(code).await?;
        let v = match existing {
            Some(v) => Vendor {
                secret: secret.into(),
                version: v.version + 1,
                ..v
            },
            None => Vendor {
                id: VendorId(self.next_id(IdKind::Vendor).await?),
                key: self.new_key(),
                version: 1,
                code: code.into(),
                secret: secret.into(),
            },
        };
        let mut tx = Tx::default();
        tx.put(Write::Vendor(v.clone())).audit(
            self.now(),
            actor,
            "vendor.register",
            Subject::Id("vendor", v.id.0),
            v.code.clone(),
        );
        self.commit(tx).await?;
        Ok(v)
    }

    /// Sets a robot's profile (pool, labels, attended, vendor, license),
    /// creating the robot record if the executor has never connected.
    pub async fn configure_robot(&self, actor: Actor, code: &str, profile: RobotProfile) -> Result<Robot> {
        self.require(actor, Permission::ManageRobots).await?;
        let code = non_empty(code, "robot id")?;
        decided!(
            self,
            |_attempt| {
                let mut r = match self.store.robot_by_code(code).await? {
                    Some(r) => r,
                    None => self.new_robot(code).await?,
                };
                let mut profile = profile.clone();
                // A license record's binding is changed through the licenses.
                if let Some(held) = &r.profile.held {
                    if profile
                        .license
                        .as_ref()
                        .is_some_and(|l| r.profile.license.as_ref() != Some(l))
                    {
                        return Err(Error::InvalidArgument(format!(
                            "robot {code} holds license {}: unbind it before giving it other content",
                            held.name
                        )));
                    }
                    profile.license = r.profile.license.clone();
                    profile.held = Some(held.clone());
                } else {
                    profile.held = None;
                }
                r.profile = Arc::new(profile);
                let mut tx = Tx::default();
                tx.robot(r.clone()).audit(
                    self.now(),
                    actor,
                    "robot.configure",
                    Subject::Id("robot", r.id.0),
                    String::new(),
                );
                let r = Robot {
                    version: r.version + 1,
                    ..r
                };
                Ok(Decided::Commit(tx, r))
            },
            conflict_or_taken
        )
    }

    /// Binds a license to a robot; it is sent with SendLicense on registration.
    pub async fn bind_license(&self, actor: Actor, code: &str, license: &str) -> Result<Robot> {
        let current = self.store.robot_by_code(code).await?;
        let mut profile = current.map(|r| (*r.profile).clone()).unwrap_or_default();
        profile.license = Some(license.into());
        self.configure_robot(actor, code, profile).await
    }

    /// All robots. Those whose socket this node holds show when it last
    /// heard them (their heartbeats write nothing while nothing changes);
    /// those held elsewhere, their last written change.
    pub async fn robots(&self) -> Result<Vec<Robot>> {
        let mut robots = self.store.robots().await?;
        self.with_hearings(&mut robots);
        Ok(robots)
    }

    async fn new_robot(&self, code: &str) -> Result<Robot> {
        Ok(Robot {
            id: RobotId(self.next_id(IdKind::Robot).await?),
            key: self.new_key(),
            version: 0,
            code: code.into(),
            profile: Arc::new(RobotProfile::default()),
            robot_version: None,
            state: RobotState::Disconnected,
            connect: None,
            job: None,
            last_seen: self.now(),
            deadline: None,
            awaiting_heartbeat: false,
            node: None,
            extensions: false,
        })
    }

    // ------------------------------------------------------------ connection

    /// Seed 001 Register: proves the vendor, opens a new connection.
    ///
    /// A robot id with a healthy connection gets [`Error::DuplicateConnection`]
    /// (10000) and the live connection is kept. A robot that still holds a
    /// job (it crashed or lost its socket) comes back Busy with it. Work is
    /// given after the first heartbeat, which says what the robot still runs.
    pub async fn register_robot(
        &self,
        code: &str,
        supplier_code: &str,
        supplier_secret: &str,
        version: Option<&str>,
    ) -> Result<Registration> {
        self.register(code, supplier_code, supplier_secret, version, &[], None)
            .await
    }

    /// [`Engine::register_robot`] for a robot that declares `capabilities`
    /// (seed 001 extensions it speaks; `"checkpoint"`: Execute's
    /// `checkpoint` and `attempt`).
    pub async fn register_robot_with(
        &self,
        code: &str,
        supplier_code: &str,
        supplier_secret: &str,
        version: Option<&str>,
        capabilities: &[&str],
    ) -> Result<Registration> {
        self.register(code, supplier_code, supplier_secret, version, capabilities, None)
            .await
    }

    /// [`Engine::register_robot`] for a connection whose socket this node
    /// holds (the WebSocket hub): the connection dies with this node, so when
    /// the node is gone (its lease `node:<id>` expired) the robot may
    /// register again on another node at once and keep its run.
    pub async fn register_socket(
        &self,
        code: &str,
        supplier_code: &str,
        supplier_secret: &str,
        version: Option<&str>,
        capabilities: &[&str],
    ) -> Result<Registration> {
        self.register(
            code,
            supplier_code,
            supplier_secret,
            version,
            capabilities,
            Some(self.node),
        )
        .await
    }

    async fn register(
        &self,
        code: &str,
        supplier_code: &str,
        supplier_secret: &str,
        version: Option<&str>,
        capabilities: &[&str],
        node: Option<u64>,
    ) -> Result<Registration> {
        let code = non_empty(code, "robot id")?;
        let vendor = self.store.vendor_by_code(supplier_code).await?;
        if !vendor.is_some_and(|v| auth::verify_supplier_proof(&v.secret, code, supplier_secret)) {
            let mut tx = Tx::default();
            tx.audit(
                self.now(),
                Actor::System,
                "robot.register.failed",
                format!("robot:{code}"),
                "bad supplier".into(),
            );
            return Err(self.record_failure(tx, Error::BadSupplier).await);
        }
        let mut confirmed = false;
        decided!(
            self,
            |_attempt| {
                let now = self.now();
                let mut r = match self.store.robot_by_code(code).await? {
                    Some(r) => r,
                    None => {
                        let mut r = self.new_robot(code).await?;
                        r.profile = Arc::new(RobotProfile {
                            vendor: Some(supplier_code.into()),
                            ..RobotProfile::default()
                        });
                        r
                    }
                };
                if r.profile.vendor.as_deref().is_some_and(|v| v != supplier_code) {
                    return Err(Error::BadSupplier);
                }
                let before = r.state;
                // The current connection's deadline as its holder knows it;
                // closed if its socket died with its node.
                self.vouch(&mut r, now).await?;
                let connect = self.new_key();
                match robot::apply(&mut r, RobotEvent::Register(connect), now, self.robot_window()) {
                    Err(Error::DuplicateConnection) if !confirmed => {
                        // Decided on this node's copy: confirm it before refusing.
                        confirmed = true;
                        if self.store.confirm(code, None).await? {
                            return Ok(Decided::Again);
                        }
                        return Err(Error::DuplicateConnection);
                    }
                    other => other?,
                };
                r.node = node;
                if node == Some(self.node) {
                    // Kept here from now on (see `liveness.rs`).
                    self.renew_node_lease(now).await?;
                    self.heard(r.id);
                }
                r.extensions = capabilities.contains(&CHECKPOINT_CAPABILITY);
                r.robot_version = version.map(Into::into);
                let mut tx = Tx::default();
                tx.commit.clear_outbox.push(r.id);
                tx.audit(
                    now,
                    Actor::Robot(r.id),
                    "robot.register",
                    Subject::Id("robot", r.id.0),
                    r.state.as_str().into(),
                );
                tx.robot_changed(now, before, &r);
                tx.robot(r.clone());
                let license = r.profile.license.clone();
                let registration = Registration {
                    robot: Robot {
                        version: r.version + 1,
                        ..r
                    },
                    connect,
                    license,
                };
                Ok(Decided::Commit(tx, registration))
            },
            conflict_or_taken
        )
    }

    /// A known robot proving its vendor without a connection id (WebSocket
    /// robots calling the HTTP file endpoints: the hub never hands out a
    /// `robotConnectId`). The robot must have registered before.
    pub async fn authenticate_robot(&self, code: &str, supplier_code: &str, supplier_secret: &str) -> Result<Robot> {
        let vendor = self.store.vendor_by_code(supplier_code).await?;
        if !vendor.is_some_and(|v| auth::verify_supplier_proof(&v.secret, code, supplier_secret)) {
            return Err(Error::BadSupplier);
        }
        confirmed!(
            self,
            code,
            None,
            match self.store.robot_by_code(code).await? {
                Some(r) if r.profile.vendor.as_deref().is_none_or(|v| v == supplier_code) && r.connect.is_some() => {
                    Ok(r)
                }
                _ => Err(Error::NotConnected),
            }
        )
    }

    /// The robot behind `(code, connect)`, or [`Error::NotConnected`]
    /// (confirmed against the durable store before it is answered).
    pub async fn connected_robot(&self, code: &str, connect: Key) -> Result<Robot> {
        confirmed!(self, code, None, self.robot_connected(code, connect).await)
    }

    /// [`Engine::connected_robot`] as this node's copy has it.
    async fn robot_connected(&self, code: &str, connect: Key) -> Result<Robot> {
        match self.store.robot_by_code(code).await? {
            Some(r) if r.connect == Some(connect) => Ok(r),
            Some(r) if r.connect.is_some() => Err(Error::Replaced),
            _ => Err(Error::NotConnected),
        }
    }

    /// Seed 001 Heartbeat. `run_instance` is the job the robot says it runs.
    /// Returns the robot's waiting commands (an HTTP robot's answer).
    ///
    /// A robot that reconnected and does not report its job has lost it: the
    /// job fails over. One that reports a job it no longer holds keeps it if
    /// the job still waits for a robot (it is resumed, not restarted), and
    /// is told to stop it otherwise.
    pub async fn heartbeat(&self, code: &str, connect: Key, run_instance: Option<Key>) -> Result<Vec<Command>> {
        self.heartbeat_take(code, connect, run_instance, usize::MAX).await
    }

    /// [`Engine::heartbeat`] of a message that arrived at `received` (as
    /// [`Engine::heard`] answered) and waited its turn since: a heartbeat
    /// that arrived before the Execute of the robot's job was handed over
    /// says nothing about that job.
    pub async fn heartbeat_received(
        &self,
        code: &str,
        connect: Key,
        run_instance: Option<Key>,
        received: Timestamp,
    ) -> Result<Vec<Command>> {
        confirmed!(
            self,
            code,
            run_instance,
            self.heartbeat_once(code, connect, run_instance, usize::MAX, Some(received))
                .await
        )
    }

    /// [`Engine::heartbeat`] answering with at most `limit` commands; the
    /// rest wait for the next heartbeat (an HTTP robot gets one per answer).
    pub async fn heartbeat_take(
        &self,
        code: &str,
        connect: Key,
        run_instance: Option<Key>,
        limit: usize,
    ) -> Result<Vec<Command>> {
        confirmed!(
            self,
            code,
            run_instance,
            self.heartbeat_once(code, connect, run_instance, limit, None).await
        )
    }

    async fn heartbeat_once(
        &self,
        code: &str,
        connect: Key,
        run_instance: Option<Key>,
        limit: usize,
        received: Option<Timestamp>,
    ) -> Result<Vec<Command>> {
        // The robot, whether it needs a dispatch attempt, and a run it
        // reports but no longer holds.
        let (rid, filled, stale) = decided!(self, |_attempt| {
            let now = self.now();
            let mut r = self.robot_connected(code, connect).await?;
            self.heard(r.id);
            let was_idle = is_idle(&r);
            let held = match r.job {
                Some(j) => self.store.job(j).await?,
                None => None,
            };
            match held {
                Some(ref job) if Some(job.key) != run_instance => {
                    let stale_connection = job.connect != r.connect;
                    let received = received.unwrap_or(now);
                    if job.state.is_active() && (stale_connection || self.disowns(r.id, job, received)) {
                        let t = self
                            .transition(
                                job.id,
                                JobEvent::RobotLost,
                                Actor::Robot(r.id),
                                Some(RobotEvent::Heartbeat),
                            )
                            .await;
                        match t {
                            Err(e) if is_conflict(&e) => return Ok(Decided::Again),
                            Err(e) => return Err(e),
                            Ok(t) => {
                                self.follow_up(&t).await?;
                                return Ok(Decided::Answer((r.id, false, None)));
                            }
                        }
                    }
                    if job.state.is_terminal() {
                        // The robot stopped a job that was ended without it.
                        robot::apply(&mut r, RobotEvent::Release, now, self.robot_window())?;
                    }
                }
                _ => self.owns(r.id),
            }
            let before = r.clone();
            robot::apply(&mut r, RobotEvent::Heartbeat, now, self.robot_window())?;
            let mut tx = Tx::default();
            let stale = run_instance.filter(|_| r.job.is_none());
            // A heartbeat that changes nothing but the deadline writes
            // nothing when this node keeps the robot (`liveness.rs`), or, with
            // slack configured, until less than the timeout is left.
            let unchanged = before.state == r.state
                && before.job == r.job
                && !before.awaiting_heartbeat
                && held
                    .as_ref()
                    .is_none_or(|j| Some(j.key) == run_instance && j.connect == r.connect);
            let kept_here = robot::keeper(&before) == Some(self.node);
            let stored_enough = self.config.heartbeat_slack_ms > 0
                && before
                    .deadline
                    .is_some_and(|d| d.0 - now.0 > self.config.heartbeat_timeout_ms as i64);
            if unchanged && (kept_here || stored_enough) {
                self.metrics.heartbeats.add(&["quiet"], 1);
                return Ok(Decided::Answer((r.id, false, stale)));
            }
            self.metrics.heartbeats.add(&["written"], 1);
            if let Some(mut job) =
                held.filter(|j| Some(j.key) == run_instance && j.connect != r.connect && j.state.is_active())
            {
                // Reconnected and still running it: the job follows the new connection.
                job.connect = r.connect;
                tx.job(job);
            }
            let idle = is_idle(&r);
            if let Some(ev) = events::robot_changed(before.state, &r) {
                // Back from Unresponsive.
                tx.audit(
                    now,
                    Actor::Robot(r.id),
                    "robot.heartbeat",
                    Subject::Id("robot", r.id.0),
                    r.state.as_str().into(),
                )
                .event(now, ev);
            }
            tx.robot(r.clone());
            // An idle robot already had its chance at every job; only one
            // that just became idle needs a dispatch attempt.
            Ok(Decided::Commit(tx, (r.id, idle && !was_idle, stale)))
        })?;
        if let Some(k) = stale {
            // The robot runs something it no longer holds: it keeps it if the
            // job still waits for a robot, otherwise it is told to stop. "No
            // longer holds" was read from this node's copy: confirmed first.
            let keep = self.adopt(rid, k).await?
                || (self.store.confirm(code, Some(k)).await?
                    && (self.runs(rid, k).await? || self.adopt(rid, k).await?));
            if !keep {
                let mut tx = Tx::default();
                tx.command(rid, Command::Stop { run_instance_id: k });
                self.commit(tx).await?;
            }
        }
        if filled {
            self.fill_robot(rid).await?;
        }
        Ok(self.handed_over(rid, self.store.take_commands(rid, limit).await?))
    }

    /// The socket of `(code, connect)` closed. The robot keeps its job until
    /// the heartbeat timeout, in case it reconnects.
    pub async fn disconnect(&self, code: &str, connect: Key) -> Result<()> {
        decided!(self, |_attempt| {
            let Ok(mut r) = self.connected_robot(code, connect).await else {
                // Not (or no longer) the robot's connection: nothing to record.
                return Ok(Decided::Answer(()));
            };
            let now = self.now();
            let before = r.state;
            // Its job is kept until a window after its last hearing.
            let holder = self.vouch(&mut r, now).await?;
            self.forget_heard(r.id);
            if holder != Holder::Gone {
                robot::apply(&mut r, RobotEvent::Close, now, self.robot_window())?;
            }
            let mut tx = Tx::default();
            tx.audit(
                now,
                Actor::Robot(r.id),
                "robot.disconnect",
                Subject::Id("robot", r.id.0),
                String::new(),
            );
            tx.robot_changed(now, before, &r);
            tx.robot(r);
            Ok(Decided::Commit(tx, ()))
        })
    }

    /// Removes and returns a robot's waiting commands (the hub calls this when woken).
    pub async fn take_commands(&self, robot: RobotId) -> Result<Vec<Command>> {
        Ok(self.handed_over(robot, self.store.take_commands(robot, usize::MAX).await?))
    }

    // ---------------------------------------------------------------- reports

    /// Whether robot `rid` holds the run `run`, by what this node reads.
    async fn runs(&self, rid: RobotId, run: Key) -> Result<bool> {
        let (Some(r), Some(job)) = (self.store.robot(rid).await?, self.store.job_by_key(run).await?) else {
            return Ok(false);
        };
        Ok(r.job == Some(job.id) && job.robot == Some(rid) && job.state.is_active())
    }

    /// The robot behind `(code, connect)` and its run `run_instance`, as this node's copy has them.
    async fn run_of(&self, code: &str, connect: Key, run_instance: Key) -> Result<(Robot, Job)> {
        let r = self.robot_connected(code, connect).await?;
        let job = self.robots_job(&r, run_instance).await?;
        Ok((r, job))
    }

    async fn robots_job(&self, r: &Robot, run_instance: Key) -> Result<Job> {
        let job = self
            .store
            .job_by_key(run_instance)
            .await?
            .ok_or_else(|| Error::NotFound(Entity::Job, run_instance.to_string()))?;
        if job.robot != Some(r.id) {
            return Err(Error::PermissionDenied(
                "this run instance is not assigned to this robot".into(),
            ));
        }
        Ok(job)
    }

    /// Seed 001 ReportLogs.
    pub async fn report_logs(&self, code: &str, connect: Key, run_instance: Key, logs: Vec<NewLog>) -> Result<usize> {
        if logs.len() > self.config.max_log_batch {
            return Err(Error::InvalidArgument(format!(
                "at most {} logs per report",
                self.config.max_log_batch
            )));
        }
        let n = logs.len();
        let mut ids = Vec::with_capacity(n);
        for _ in 0..n {
            ids.push(RunLogId(self.next_id(IdKind::RunLog).await?));
        }
        decided!(self, |_attempt| {
            let (r, job) = confirmed!(
                self,
                code,
                Some(run_instance),
                self.run_of(code, connect, run_instance).await
            )?;
            if job.state.is_terminal() {
                return Err(Error::InvalidArgument(format!(
                    "job {} has ended: its run log is closed",
                    job.key
                )));
            }
            let now = self.now();
            let mut tx = Tx::default();
            for (l, id) in logs.iter().zip(&ids) {
                tx.put(Write::Log(RunLog {
                    id: *id,
                    job: job.id,
                    robot: r.id,
                    content: l.content.clone(),
                    screenshot: l.screenshot.clone(),
                    log_at: l.log_at.clone(),
                    level: l.level,
                    received_at: now,
                }));
            }
            // Written unchanged: a job that ends meanwhile (sealing its run
            // log) makes this commit conflict, so no line lands after the seal.
            tx.job(job);
            Ok(Decided::Commit(tx, n))
        })
    }

    /// Seed 001 ReportFinish, with the optional `outputValues` extension.
    pub async fn report_finish(
        &self,
        code: &str,
        connect: Key,
        run_instance: Key,
        status: FinishStatus,
        error_code: Option<i32>,
        outputs: Option<Value>,
    ) -> Result<Job> {
        let outputs = outputs.map(Arc::new);
        let t = confirmed!(
            self,
            code,
            Some(run_instance),
            async {
                let (r, job) = self.run_of(code, connect, run_instance).await?;
                let ev = JobEvent::Finish {
                    robot: r.id,
                    status,
                    error_code,
                    outputs: outputs.clone(),
                };
                self.transition_from(job.id, Some(job), Some(r.clone()), ev, Actor::Robot(r.id), None)
                    .await
            }
            .await
        )?;
        self.follow_up(&t).await?;
        Ok(t.job)
    }

    /// Checkpoint extension: intermediate state a fail-over run resumes from.
    pub async fn report_checkpoint(
        &self,
        code: &str,
        connect: Key,
        run_instance: Key,
        progress: Progress,
    ) -> Result<Job> {
        let data = progress.checkpoint.map(Arc::new);
        let pause = progress.step.as_ref().is_some_and(|s| s.pause);
        let step = match progress.step {
            Some(s) => Some(Box::new(JobStep {
                id: self.next_id(IdKind::Step).await?,
                step: s.step,
                name: s.name.map(Into::into),
                task: s.task.unwrap_or(i64::from(s.step)),
                at: self.now(),
                pause: s.pause,
            })),
            None => None,
        };
        confirmed!(
            self,
            code,
            Some(run_instance),
            async {
                let (r, job) = self.run_of(code, connect, run_instance).await?;
                let ev = match (&step, pause) {
                    (Some(s), true) => JobEvent::Pause(data.clone(), s.clone()),
                    _ => JobEvent::Checkpoint(data.clone(), step.clone()),
                };
                let t = self.transition(job.id, ev, Actor::Robot(r.id), None).await?;
                if t.fx.paused {
                    // The robot is free: it may take other work.
                    self.follow_up(&t).await?;
                }
                Ok(t.job)
            }
            .await
        )
    }

    /// Seed 001 ReportVideoRecord: allowed once the run has finished.
    pub async fn report_video(&self, code: &str, connect: Key, run_instance: Key, video_id: &str) -> Result<()> {
        let video_id = non_empty(video_id, "videoId")?;
        let (r, job) = confirmed!(
            self,
            code,
            Some(run_instance),
            async {
                let (r, job) = self.run_of(code, connect, run_instance).await?;
                if !job.state.is_terminal() {
                    return Err(Error::InvalidArgument(
                        "a video can be reported only after the run has finished".into(),
                    ));
                }
                Ok((r, job))
            }
            .await
        )?;
        let now = self.now();
        let mut tx = Tx::default();
        tx.put(Write::Video(VideoRecord {
            job: job.id,
            robot: r.id,
            video_id: video_id.into(),
            at: now,
        }))
        .audit(
            now,
            Actor::Robot(r.id),
            "job.video",
            Subject::Id("job", job.id.0),
            video_id.into(),
        );
        self.commit(tx).await
    }

    /// A job's screen recordings.
    pub async fn videos(&self, job: Key) -> Result<Vec<VideoRecord>> {
        let j = self.job(job).await?;
        Ok(self.store.videos(j.id).await?)
    }

    // ------------------------------------------------------------------ files

    /// Records an uploaded file's metadata; the host keeps the bytes.
    pub async fn record_file(
        &self,
        owner: Actor,
        source: FileSource,
        name: &str,
        size: u64,
        sha256: &str,
        job: Option<Key>,
    ) -> Result<StoredFile> {
        let name = non_empty(name, "file name")?;
        let job = match job {
            Some(k) => {
                let j = self.job(k).await?;
                // A robot files output only for a run it was given.
                if let Actor::Robot(rid) = owner
                    && j.robot != Some(rid)
                {
                    return Err(Error::PermissionDenied(
                        "this run instance is not assigned to this robot".into(),
                    ));
                }
                Some(j.id)
            }
            None => None,
        };
        let now = self.now();
        let f = StoredFile {
            id: FileId(self.next_id(IdKind::File).await?),
            key: self.new_key(),
            version: 1,
            source,
            name: name.into(),
            size,
            sha256: sha256.into(),
            owner,
            personal_of: None,
            job,
            created_at: now,
            purged_at: None,
        };
        let mut tx = Tx::default();
        tx.record(&f)?
            .audit(now, owner, "file.upload", Subject::Id("file", f.id.0), f.name.clone());
        self.commit(tx).await?;
        Ok(f)
    }

    /// Seed 001 A.2.8: puts uploaded files in a personal folder: a robot's
    /// into the folder of the user who started the job it runs
    /// (`run_instance`), a person's into their own (an administrator's,
    /// `ManageUsers`, into anyone's). `folder_of` defaults to that folder.
    /// With `file` that file (renamed `file_name` if given); without it
    /// (`fileId` is optional in the seed) the files uploaded for the run
    /// `run_instance` (those named `file_name`, if given). The files moved.
    pub async fn add_personal_file(
        &self,
        actor: Actor,
        file: Option<Key>,
        file_name: Option<&str>,
        run_instance: Option<Key>,
        folder_of: Option<&str>,
    ) -> Result<Vec<StoredFile>> {
        let named = match file {
            Some(key) => Some(self.readable_file(actor, key).await?),
            None => None,
        };
        let job = match run_instance {
            Some(k) => Some(self.job(k).await?),
            None => None,
        };
        let default = match (actor, &job) {
            (Actor::Robot(_), Some(j)) => j.user_name.to_string(),
            (Actor::User(id), _) => self.store.user(id).await?.map(|u| u.name).unwrap_or_default(),
            _ => String::new(),
        };
        let folder_of = non_empty(folder_of.unwrap_or(&default), "userName")?;
        match actor {
            // A robot writes into the folder of the user who started the job it runs.
            Actor::Robot(rid) => match &job {
                Some(j) if j.robot == Some(rid) && &*j.user_name == folder_of => {}
                Some(j) if j.robot == Some(rid) => {
                    return Err(Error::PermissionDenied(format!(
                        "a robot writes only into the folder of {}, who started its job",
                        j.user_name
                    )));
                }
                Some(_) => {
                    return Err(Error::PermissionDenied(
                        "this run instance is not assigned to this robot".into(),
                    ));
                }
                None => {
                    return Err(Error::InvalidArgument(
                        "runInstanceId is required: a robot writes into the folder of the user who started its job"
                            .into(),
                    ));
                }
            },
            Actor::User(id) => {
                let own = self.store.user(id).await?.is_some_and(|u| u.name == folder_of);
                if !own {
                    self.require(actor, Permission::ManageUsers).await?;
                }
            }
            Actor::System => {}
        }
        let mut files = match (named, &job) {
            (Some(mut f), _) => {
                if let Some(n) = file_name {
                    f.name = non_empty(n, "fileName")?.into();
                }
                vec![f]
            }
            (None, Some(j)) => {
                let mut of_run = Vec::new();
                for f in self
                    .store
                    .list::<StoredFile>(Select::only("job", j.id.0, usize::MAX))
                    .await?
                {
                    if file_name.is_none_or(|n| f.name == n) {
                        of_run.push(self.readable_file(actor, f.key).await?);
                    }
                }
                if of_run.is_empty() {
                    return Err(Error::NotFound(Entity::File, format!("of run {}", j.key)));
                }
                of_run
            }
            (None, None) => {
                return Err(Error::InvalidArgument(
                    "give fileId, or runInstanceId to move the files uploaded for that run".into(),
                ));
            }
        };
        let now = self.now();
        let mut tx = Tx::default();
        for f in &mut files {
            if let Some(j) = &job {
                f.job = Some(j.id);
            }
            f.personal_of = Some(folder_of.into());
            f.version += 1;
            tx.record(&*f)?.audit(
                now,
                actor,
                "file.personal",
                Subject::Id("file", f.id.0),
                folder_of.into(),
            );
        }
        self.commit(tx).await?;
        Ok(files)
    }

    /// A stored file, if `actor` may read it: its uploader, the person whose
    /// personal folder holds it, the robot running its job, people granted
    /// its job's process, and administrators (`OperateAllJobs`). Packages
    /// are read by every robot and person signed in (robots download them
    /// to run their jobs). Anyone else is told there is no such file.
    pub async fn readable_file(&self, actor: Actor, key: Key) -> Result<StoredFile> {
        let f = self.file(key).await?;
        if f.owner == actor || f.source == FileSource::Package || actor == Actor::System {
            return Ok(f);
        }
        let job = match f.job {
            Some(j) => self.store.job(j).await?,
            None => None,
        };
        let may = match actor {
            Actor::Robot(rid) => job.as_ref().is_some_and(|j| j.robot == Some(rid)),
            Actor::User(id) => match self.store.user(id).await? {
                Some(u) => {
                    f.personal_of.as_deref() == Some(u.name.as_str())
                        || match &job {
                            Some(j) => self.store.process(j.process).await?.is_some_and(|p| u.granted(&p)),
                            None => false,
                        }
                        || self.has_permission(actor, Permission::OperateAllJobs).await?
                }
                None => false,
            },
            Actor::System => true,
        };
        if may {
            Ok(f)
        } else {
            Err(Error::NotFound(Entity::File, key.to_string()))
        }
    }

    /// File metadata by key.
    pub async fn file(&self, key: Key) -> Result<StoredFile> {
        self.store
            .get::<StoredFile>(key.to_string())
            .await?
            .filter(|f| f.purged_at.is_none())
            .ok_or_else(|| Error::NotFound(Entity::File, key.to_string()))
    }

    /// Deletes the run logs of ended jobs created more than `days` ago (see
    /// [`crate::retention`]): a window of creation time at a time behind
    /// the cursor, at most `windows` windows; each window's deletions and
    /// the cursor's move in commits of up to 500 jobs, the cursor in the
    /// last. How many jobs' logs were deleted.
    pub async fn apply_log_retention(&self, days: u64, windows: usize) -> Result<u64> {
        use crate::retention::{LogCursor, next_log_window};
        use crate::store::JobQuery;
        let mut dropped = 0;
        for _ in 0..windows {
            let cursor = self
                .store
                .get::<LogCursor>("logs")
                .await?
                .unwrap_or_else(LogCursor::start);
            let now = self.now();
            let processes = self.store.processes().await?;
            let earliest = processes.iter().map(|p| p.created_at).min().unwrap_or(now);
            let Some((from, to)) = next_log_window(&cursor, days, now, earliest) else {
                break;
            };
            let mut ended = Vec::new();
            for p in processes {
                let (_, jobs) = self
                    .store
                    .jobs_of_process(JobQuery {
                        process: p.id,
                        from,
                        to,
                        state: None,
                        limit: usize::MAX,
                    })
                    .await?;
                ended.extend(jobs.into_iter().filter(|j| j.state.is_terminal()).map(|j| j.id));
            }
            let chunks: Vec<&[JobId]> = if ended.is_empty() {
                vec![&[]]
            } else {
                ended.chunks(500).collect()
            };
            let last = chunks.len() - 1;
            for (i, chunk) in chunks.into_iter().enumerate() {
                let mut tx = Tx::default();
                for j in chunk {
                    tx.put(Write::DropLogs(*j));
                }
                if i == last {
                    tx.record(&LogCursor {
                        version: cursor.version + 1,
                        through: to,
                        ..cursor.clone()
                    })?;
                }
                if !chunk.is_empty() {
                    tx.audit(
                        now,
                        Actor::System,
                        "logs.purge",
                        Subject::Text("retention".into()),
                        format!(
                            "run logs of {} jobs created before {}",
                            chunk.len(),
                            to.format_local(self.config.time_zone)
                        ),
                    );
                }
                match self.commit(tx).await {
                    Ok(()) => dropped += chunk.len() as u64,
                    // Another node moved the cursor: it goes on from there next time.
                    Err(e) if super::is_conflict(&e) => return Ok(dropped),
                    Err(e) => return Err(e),
                }
            }
        }
        Ok(dropped)
    }

    /// Removes the run files `policy` no longer keeps (see
    /// [`crate::retention`]): marks them purged, audited, in commits of a
    /// hundred; the host deletes their bytes. Those removed, oldest first.
    pub async fn apply_retention(&self, policy: &crate::retention::Policy) -> Result<Vec<StoredFile>> {
        if policy.max_age_days.is_none() && policy.max_bytes.is_none() {
            return Ok(Vec::new());
        }
        const PAGE: usize = 1000;
        let mut all: Vec<StoredFile> = Vec::new();
        loop {
            let mut sel = Select::all(PAGE);
            if let Some(last) = all.last() {
                sel = sel.after(last.key.to_string().into());
            }
            let page: Vec<StoredFile> = self.store.list(sel).await?;
            let done = page.len() < PAGE;
            all.extend(page);
            if done {
                break;
            }
        }
        let now = self.now();
        let doomed: Vec<StoredFile> = crate::retention::to_remove(&all, policy, now)
            .into_iter()
            .cloned()
            .collect();
        let mut removed = Vec::with_capacity(doomed.len());
        for chunk in doomed.chunks(100) {
            let mut tx = Tx::default();
            let mut bytes = 0u64;
            for f in chunk {
                let purged = StoredFile {
                    version: f.version + 1,
                    purged_at: Some(now),
                    ..f.clone()
                };
                bytes += f.size;
                tx.record(&purged)?;
                removed.push(purged);
            }
            tx.audit(
                now,
                Actor::System,
                "file.purge",
                Subject::Text("retention".into()),
                format!("{} run files, {bytes} bytes", chunk.len()),
            );
            match self.commit(tx).await {
                Ok(()) => {}
                // Another node purged or a robot changed one: the next pass decides again.
                Err(e) if super::is_conflict(&e) => {
                    removed.truncate(removed.len() - chunk.len());
                }
                Err(e) => return Err(e),
            }
        }
        Ok(removed)
    }

    /// The name of the user whose serial id is `user_id` (seed 001
    /// `userId`, as Execute gives it).
    pub async fn user_name_of(&self, user_id: &str) -> Result<String> {
        let unknown = || Error::NotFound(Entity::User, user_id.to_owned());
        let id = user_id.trim().parse::<i64>().map_err(|_| unknown())?;
        Ok(self.store.user(UserId(id)).await?.ok_or_else(unknown)?.name)
    }

    /// Files in a personal folder.
    pub async fn personal_files(&self, owner: &str) -> Result<Vec<StoredFile>> {
        let mut files: Vec<StoredFile> = self.store.list(Select::only("personal_of", owner, usize::MAX)).await?;
        files.sort_by_key(|f| f.id);
        Ok(files)
    }
}

/// A conflict, or a robot id another engine registered first: either way,
/// read again.
fn conflict_or_taken(e: &Error) -> bool {
    is_conflict(e) || matches!(e, Error::Store(StoreError::Duplicate(_)))
}
