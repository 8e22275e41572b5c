//! The scheduler (DESIGN §5): pairs idle robots with dispatchable jobs.
//!
//! Order: highest priority first, then oldest (lowest job id). A job may run
//! on a robot only if the process has a free `maxRunNum` slot, today's
//! successes plus running jobs are below `maxDayNum`, and the robot meets the
//! process's requirements (vendor, pool, labels, attended or not). A robot
//! runs one job at a time. A job pinned to a robot ([`Job::pinned`],
//! UiPath's `Specific` strategy) is in that robot's own index, not its
//! process's: only that robot takes it, weighed against the best of the
//! others by the same order when it is filled.
//!
//! Cost: the store keeps a per-process ordered index of dispatchable jobs and
//! an ordered set of idle robots, so placing a job or filling a robot is
//! O(P log n) for P processes and n pending jobs, never a scan of jobs.
//! After every engine operation no idle robot can take a dispatchable job,
//! except across engines racing on one store; [`Engine::tick`] closes that gap.
//!
//! Concurrent dispatches of one engine do not race for the same pair: a
//! dispatch *claims* the job and the robot it picked until its commit is
//! done, and the others pass claimed ones by (robots finishing together
//! would otherwise all reach for the same best job, and all but one commit
//! would conflict). A dispatch that finds only claimed candidates leaves
//! them to their holders; a holder that lets a claim go after that (it may
//! have failed: its job was taken meanwhile) dispatches once more when its
//! operation ends, so no pair is left waiting for the next tick. Engines on one store still settle races by versions,
//! and each takes the jobs of its own share first ([`crate::share`]), so
//! that they seldom race for the same job.

use std::collections::HashSet;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use super::{Delta, Engine, Tx, is_conflict};
use crate::arguments;
use crate::audit::{self, Subject};
use crate::error::Result;
use crate::ids::*;
use crate::job::{self, JobCtx, JobEvent};
use crate::limits;
use crate::model::*;
use crate::queue::{self, ItemEvent};
use crate::robot::{self, RobotEvent};
use crate::share::{self, Passed, Share};
use crate::store::{Store, is_dispatchable, is_idle};
use crate::time::Timestamp;
use crate::transport::{Command, Execute};

/// Robots examined per store page.
const PAGE: usize = 64;
/// Idle robots other nodes keep that a search for one of this node's own
/// passes by before it gives up: the node keeping the first idle robot a
/// job may run finds it at once, and every node hears of new jobs.
const OTHERS_PASSED: usize = 1024;
/// Re-reads after conflicts before leaving the pair to the next tick.
const ATTEMPTS: usize = 16;

/// Jobs and robots that dispatches of this engine are committing right now.
#[derive(Debug, Default)]
pub(crate) struct Claims {
    jobs: Mutex<HashSet<JobId>>,
    robots: Mutex<HashSet<RobotId>>,
    /// The best job passed by for another node's share ([`share::pick`]).
    passed: Mutex<Passed>,
    /// How many times a dispatch found only claimed candidates and left
    /// them to their holders.
    left: AtomicU64,
    /// A claim was let go after a dispatch left work to it: dispatch again.
    redo: AtomicBool,
}

/// Rounds of dispatching again that one operation makes at most (each
/// round is one [`Engine::dispatch_all`]; the tick catches anything left).
const REDO_MAX: usize = 4;

/// What [`Claims::job_of_share`] found.
enum Picked<'a> {
    /// This job, claimed.
    Taken(JobId, Claim<'a>),
    /// Every head is held by another dispatch of this node.
    AllHeld,
    /// The heads are other nodes' to take, and those nodes are ready.
    Passing,
}

/// A claimed job or robot; released when dropped (after the commit).
#[must_use]
pub(crate) struct Claim<'a> {
    claims: &'a Claims,
    what: Claimed,
    /// [`Claims::left`] when it was claimed.
    left: u64,
}

enum Claimed {
    Job(JobId),
    Robot(RobotId),
}

impl Drop for Claim<'_> {
    fn drop(&mut self) {
        let c = self.claims;
        // Under the set's lock, as a dispatch leaves work to holders: either
        // it saw this claim let go, or this sees that it left work.
        let left = match self.what {
            Claimed::Job(id) => {
                let mut held = c.jobs.lock().unwrap_or_else(|p| p.into_inner());
                held.remove(&id);
                c.left.load(Ordering::SeqCst)
            }
            Claimed::Robot(id) => {
                let mut held = c.robots.lock().unwrap_or_else(|p| p.into_inner());
                held.remove(&id);
                c.left.load(Ordering::SeqCst)
            }
        };
        if left != self.left {
            c.redo.store(true, Ordering::SeqCst);
        }
    }
}

impl Claims {
    fn claim(&self, what: Claimed) -> Claim<'_> {
        Claim {
            claims: self,
            what,
            left: self.left.load(Ordering::SeqCst),
        }
    }
    /// A dispatch leaves the robots it found claimed to their holders:
    /// false if one of them was let go meanwhile (look again).
    fn leave_robots(&self, seen: &[RobotId]) -> bool {
        self.leave(&self.robots, seen)
    }
    /// [`Claims::leave_robots`] for jobs.
    fn leave_jobs(&self, seen: &[JobId]) -> bool {
        self.leave(&self.jobs, seen)
    }
    fn leave<T: Eq + std::hash::Hash>(&self, set: &Mutex<HashSet<T>>, seen: &[T]) -> bool {
        let held = set.lock().unwrap_or_else(|p| p.into_inner());
        let all = seen.iter().all(|id| held.contains(id));
        if all {
            self.left.fetch_add(1, Ordering::SeqCst);
        }
        all
    }
    /// Whether a claim was let go after work was left to it (and forgets it).
    fn take_redo(&self) -> bool {
        self.redo.swap(false, Ordering::SeqCst)
    }
    /// How many jobs are claimed.
    fn jobs_claimed(&self) -> usize {
        self.jobs.lock().unwrap_or_else(|p| p.into_inner()).len()
    }
    /// Claims the first of `ids` nobody holds.
    fn first_job(&self, ids: impl IntoIterator<Item = JobId>) -> Option<(JobId, Claim<'_>)> {
        let mut held = self.jobs.lock().unwrap_or_else(|p| p.into_inner());
        let id = ids.into_iter().find(|id| !held.contains(id))?;
        held.insert(id);
        Some((id, self.claim(Claimed::Job(id))))
    }
    /// Claims the one of `heads` (best first) this node takes
    /// ([`share::pick`] among those nobody holds; `ready`: the heads whose
    /// node keeps an idle robot that may run them).
    fn job_of_share(&self, heads: &[JobId], share: Share, ready: &[JobId]) -> Picked<'_> {
        let mut held = self.jobs.lock().unwrap_or_else(|p| p.into_inner());
        let free: Vec<JobId> = heads.iter().copied().filter(|id| !held.contains(id)).collect();
        if free.is_empty() {
            return Picked::AllHeld;
        }
        let mut passed = self.passed.lock().unwrap_or_else(|p| p.into_inner());
        let owner_ready = |j: JobId| ready.contains(&j);
        match share::pick(share, &free, &mut passed, owner_ready) {
            Some(id) => {
                held.insert(id);
                Picked::Taken(id, self.claim(Claimed::Job(id)))
            }
            None => Picked::Passing,
        }
    }
    /// Claims robot `id` unless somebody holds it.
    fn robot(&self, id: RobotId) -> Option<Claim<'_>> {
        let mut held = self.robots.lock().unwrap_or_else(|p| p.into_inner());
        held.insert(id).then(|| self.claim(Claimed::Robot(id)))
    }
}

/// Idle robots a dispatch looks at to learn which nodes are ready.
const READY_SCAN: usize = 256;

impl<S: Store> Engine<S> {
    /// Puts a dispatchable job on the first idle robot that may run it.
    pub(crate) async fn place_job(&self, id: JobId) -> Result<bool> {
        let placed = self.place_job_once(id).await?;
        self.hand_back().await?;
        Ok(placed)
    }

    /// Places the best dispatchable job of a process, if any.
    pub(crate) async fn place_next(&self, process: ProcessId) -> Result<bool> {
        let placed = self.place_next_once(process).await?;
        self.hand_back().await?;
        Ok(placed)
    }

    /// Gives an idle robot the best job it may run.
    pub(crate) async fn fill_robot(&self, id: RobotId) -> Result<bool> {
        let filled = self.fill_robot_once(id).await?;
        self.hand_back().await?;
        Ok(filled)
    }

    /// Places every dispatchable job an idle robot may take, best first.
    /// Returns how many jobs were dispatched. Cost follows the processes and
    /// the jobs placed, not the number of idle robots.
    pub async fn dispatch_all(&self) -> Result<usize> {
        let n = self.dispatch_all_once().await?;
        Ok(n + self.hand_back().await?)
    }

    /// Dispatches again while a claim was let go after another dispatch
    /// of this engine left work to it (see the module's documentation).
    async fn hand_back(&self) -> Result<usize> {
        let mut n = 0;
        for _ in 0..REDO_MAX {
            if !self.claims.take_redo() {
                break;
            }
            self.metrics.dispatch_redone.fetch_add(1, Ordering::Relaxed);
            n += self.dispatch_all_once().await?;
        }
        Ok(n)
    }

    async fn place_job_once(&self, id: JobId) -> Result<bool> {
        for _ in 0..ATTEMPTS {
            let Some(job) = self.store.job(id).await? else {
                return Ok(false);
            };
            if !is_dispatchable(&job) {
                return Ok(false);
            }
            if let Some(robot) = job.pinned {
                // Only its robot may take it: that robot takes its best job.
                return self.fill_robot_once(robot).await;
            }
            let Some(p) = self.store.process(job.process).await? else {
                return Ok(false);
            };
            if p.spec.pipeline.is_some() {
                // Its job is a pipeline run, not a robot's.
                return self.place_next_once(p.id).await;
            }
            if self.store.available_robots(None, 1).await?.is_empty() {
                return Ok(false);
            }
            if !limits::may_run(&p, self.today(self.now())) {
                return Ok(false);
            }
            // A better job of this process goes first.
            match self.store.next_pending(&[p.id]).await? {
                Some(head) if head.id != job.id => {
                    if !self.place_next_once(p.id).await? {
                        return Ok(false);
                    }
                    continue;
                }
                _ => {}
            }
            let Some((robot, _robot_claim)) = self.find_robot(&p).await? else {
                return Ok(false);
            };
            if self.try_assign(robot, job, p, true).await? {
                return Ok(true);
            }
        }
        Ok(false)
    }

    async fn place_next_once(&self, process: ProcessId) -> Result<bool> {
        if self
            .store
            .process(process)
            .await?
            .is_some_and(|p| p.spec.pipeline.is_some())
        {
            return self.delegate_next(process).await;
        }
        for _ in 0..ATTEMPTS {
            if self.store.available_robots(None, 1).await?.is_empty() {
                return Ok(false);
            }
            let Some((job, _job_claim)) = self.next_unclaimed(&[process]).await? else {
                return Ok(false);
            };
            let Some(p) = self.store.process(process).await? else {
                return Ok(false);
            };
            if !limits::may_run(&p, self.today(self.now())) {
                return Ok(false);
            }
            let Some((robot, _robot_claim)) = self.find_robot(&p).await? else {
                return Ok(false);
            };
            if self.try_assign(robot, job, p, true).await? {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// The first idle robot that may run `p`'s jobs, that this node keeps
    /// ([`share::first_choice`]) and that no other dispatch of this engine
    /// holds, claimed; none when all are held (their holders are giving them
    /// jobs: reaching for one of them too would only be refused at commit,
    /// and under load such races multiply). Robots another node keeps are
    /// that node's to fill: looking for one of its own, a node passes at
    /// most [`OTHERS_PASSED`] of them by.
    async fn find_robot(&self, p: &Process) -> Result<Option<(Robot, Option<Claim<'_>>)>> {
        'search: for _ in 0..ATTEMPTS {
            let mut after = None;
            let mut passed = 0;
            let mut held = Vec::new();
            loop {
                let page = self.store.available_robots(after, PAGE).await?;
                let now = self.now();
                for r in page.iter().filter(|r| r.can_run(&p.spec) && r.takes_work(now)) {
                    if !share::first_choice(r, self.node) {
                        passed += 1;
                        continue;
                    }
                    match self.claims.robot(r.id) {
                        Some(claim) => return Ok(Some((r.clone(), Some(claim)))),
                        None => held.push(r.id),
                    }
                }
                match page.last() {
                    Some(last) if page.len() == PAGE && passed < OTHERS_PASSED => after = Some(last.id),
                    _ if self.claims.leave_robots(&held) => return Ok(None),
                    // One was let go while the others were looked at: look again.
                    _ => continue 'search,
                }
            }
        }
        Ok(None)
    }

    /// The best dispatchable job among `processes` that no other dispatch
    /// of this engine holds, claimed; none when every candidate is held
    /// (their holders are placing them; a holder that fails tries again).
    pub(crate) async fn next_unclaimed(&self, processes: &[ProcessId]) -> Result<Option<(Job, Option<Claim<'_>>)>> {
        if processes.is_empty() {
            return Ok(None);
        }
        let share = self.share();
        let others_idle = self.others_idle(share).await?;
        for _ in 0..ATTEMPTS {
            let claimed = self.claims.jobs_claimed();
            if claimed == 0 && share == Share::ALONE {
                // Nobody else is dispatching: the best job is free.
                let Some(job) = self.store.next_pending(processes).await? else {
                    return Ok(None);
                };
                match self.claims.first_job([job.id]) {
                    Some((_, claim)) => return Ok(Some((job, Some(claim)))),
                    None => continue,
                }
            }
            // One more head than there are claims (per node): one of them
            // is free, if any is.
            let want = share.window(claimed);
            let heads = self.store.pending_heads(processes, want).await?;
            if heads.is_empty() {
                return Ok(None);
            }
            let fewer = heads.len() < want;
            let ready = self.ready_heads(&heads, share, &others_idle).await?;
            let (id, claim) = match self.claims.job_of_share(&heads, share, &ready) {
                Picked::Taken(id, claim) => (id, Some(claim)),
                // Their nodes take them in a moment.
                Picked::Passing => return Ok(None),
                // Every candidate is held: their holders place them (or,
                // if one was let go meanwhile, look again).
                Picked::AllHeld if fewer && self.claims.leave_jobs(&heads) => return Ok(None),
                // More claims were made while the heads were read: read more.
                Picked::AllHeld => continue,
            };
            match self.store.job(id).await? {
                Some(job) if is_dispatchable(&job) => return Ok(Some((job, claim))),
                // Taken since the heads were read: look again.
                _ => continue,
            }
        }
        Ok(None)
    }

    /// The idle robots other live nodes keep, with their nodes' ranks (as
    /// this node's copy knows, among the first [`READY_SCAN`] idle robots).
    async fn others_idle(&self, share: Share) -> Result<Vec<(u64, Robot)>> {
        if share.nodes <= 1 {
            return Ok(Vec::new());
        }
        let live = self.live_nodes.lock().unwrap_or_else(|p| p.into_inner()).clone();
        let mut idle = Vec::new();
        for r in self.store.available_robots(None, READY_SCAN).await? {
            if let Some(k) = crate::robot::keeper(&r)
                && k != self.node
                && let Ok(rank) = live.binary_search(&k)
            {
                idle.push((rank as u64, r));
            }
        }
        Ok(idle)
    }

    /// The heads of other shares whose node keeps an idle robot that may
    /// run them: that node takes them in a moment.
    async fn ready_heads(&self, heads: &[JobId], share: Share, idle: &[(u64, Robot)]) -> Result<Vec<JobId>> {
        let mut ready = Vec::new();
        if idle.is_empty() {
            return Ok(ready);
        }
        for &id in heads {
            if share.owns(id) {
                continue;
            }
            let Some(job) = self.store.job(id).await? else { continue };
            let Some(p) = self.store.process(job.process).await? else {
                continue;
            };
            let owner = share.rank_of(id);
            if idle.iter().any(|(rank, r)| *rank == owner && r.can_run(&p.spec)) {
                ready.push(id);
            }
        }
        Ok(ready)
    }

    async fn fill_robot_once(&self, id: RobotId) -> Result<bool> {
        for _ in 0..ATTEMPTS {
            let Some(robot) = self.store.robot(id).await? else {
                return Ok(false);
            };
            if !is_idle(&robot) || !robot.takes_work(self.now()) || !share::first_choice(&robot, self.node) {
                return Ok(false);
            }
            let today = self.today(self.now());
            let processes = self.store.processes().await?;
            let eligible: Vec<ProcessId> = processes
                .iter()
                .filter(|p| limits::may_run(p, today) && robot.can_run(&p.spec))
                .map(|p| p.id)
                .collect();
            if eligible.is_empty() {
                return Ok(false);
            }
            // Held or not, this robot is the one to fill: a holder may fail.
            let _robot_claim = self.claims.robot(robot.id);
            // Its own pinned jobs compete with everyone's, best first.
            let pinned = self
                .store
                .next_pinned(robot.id)
                .await?
                .filter(|j| eligible.contains(&j.process));
            let open = self.next_unclaimed(&eligible).await?;
            let rank = |j: &Job| (std::cmp::Reverse(j.priority), j.id);
            let (job, _job_claim) = match (pinned, open) {
                (Some(mine), Some((other, claim))) => {
                    if rank(&mine) <= rank(&other) {
                        (mine, None)
                    } else {
                        (other, claim)
                    }
                }
                (Some(mine), None) => (mine, None),
                (None, Some(found)) => found,
                (None, None) => return Ok(false),
            };
            let Some(p) = processes.into_iter().find(|p| p.id == job.process) else {
                return Ok(false);
            };
            if self.try_assign(robot, job, p, true).await? {
                return Ok(true);
            }
        }
        Ok(false)
    }

    async fn dispatch_all_once(&self) -> Result<usize> {
        let mut n = 0;
        // Pipeline processes' jobs need no robot.
        for p in self.store.processes().await? {
            if p.spec.pipeline.is_some() {
                while self.delegate_next(p.id).await? {
                    n += 1;
                }
            }
        }
        loop {
            if self.store.available_robots(None, 1).await?.is_empty() {
                return Ok(n);
            }
            let today = self.today(self.now());
            let processes = self.store.processes().await?;
            let open: Vec<ProcessId> = processes
                .iter()
                .filter(|p| limits::may_run(p, today))
                .map(|p| p.id)
                .collect();
            // The best head across processes first; a process no idle robot
            // may run is skipped for the rest of this round.
            let mut placed = false;
            let mut candidates = open;
            while let Some(job) = self.store.next_pending(&candidates).await? {
                if self.place_next_once(job.process).await? {
                    n += 1;
                    placed = true;
                    break;
                }
                candidates.retain(|p| *p != job.process);
            }
            if !placed {
                break;
            }
        }
        // Jobs pinned to a robot wait for that robot alone.
        for robot in self.store.pinned_robots().await? {
            while self.fill_robot_once(robot).await? {
                n += 1;
            }
        }
        Ok(n)
    }

    /// A robot says it is running `key`, a job it lost that now waits for a
    /// robot: it keeps it (no Execute; it is already running it).
    pub(crate) async fn adopt(&self, robot: RobotId, key: crate::ids::Key) -> Result<bool> {
        for _ in 0..ATTEMPTS {
            let (Some(r), Some(job)) = (self.store.robot(robot).await?, self.store.job_by_key(key).await?) else {
                return Ok(false);
            };
            if !is_idle(&r) || !is_dispatchable(&job) || job.pinned.is_some_and(|p| p != robot) {
                return Ok(false);
            }
            let Some(p) = self.store.process(job.process).await? else {
                return Ok(false);
            };
            if self.try_assign(r, job, p, false).await? {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// Commits `job` Running on `robot`: see [`Engine::assign`].
    /// `Ok(false)` if the snapshot was stale (another engine won); the caller re-reads.
    async fn try_assign(&self, mut robot: Robot, mut job: Job, mut p: Process, execute: bool) -> Result<bool> {
        let now = self.now();
        if robot.connect.is_none() || !limits::may_run(&p, self.today(now)) || job.pinned.is_some_and(|r| r != robot.id)
        {
            return Ok(false);
        }
        let mut tx = Tx::default();
        self.assign(&mut tx, now, &mut robot, &mut job, &mut p, execute).await?;
        tx.job(job).robot(robot);
        match self.commit(tx).await {
            Ok(()) => Ok(true),
            Err(e) if is_conflict(&e) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// The decision part of a dispatch: `job` Running on `robot`, the process
    /// slot taken and the queue item InProgress (both written to `tx`),
    /// Execute in the robot's outbox (if `execute`; a robot resuming its own
    /// run gets none). The caller writes `robot` and `job` once it has made
    /// all its changes.
    pub(crate) async fn assign(
        &self,
        tx: &mut Tx,
        now: Timestamp,
        robot: &mut Robot,
        job: &mut Job,
        p: &mut Process,
        execute: bool,
    ) -> Result<()> {
        let connect = robot.connect.ok_or(crate::error::Error::NotConnected)?;
        let ctx = JobCtx {
            now,
            retry: &p.spec.retry,
            retry_failures: job.queue_item.is_none(),
        };
        job::apply(
            job,
            JobEvent::Dispatch {
                robot: robot.id,
                connect,
            },
            ctx,
        )?;
        robot::apply(robot, RobotEvent::Assign(job.id), now, self.robot_window())?;
        let today = self.today(now);
        tx.count(p, Delta::SLOT_TAKEN, today);
        if let Some(item_id) = job.queue_item
            && let Some(mut item) = self.store.item(item_id).await?
            && item.state == ItemState::New
        {
            queue::apply(&mut item, ItemEvent::Start(job.id), now)?;
            tx.count(p, Delta::ITEM_TAKEN, today);
            tx.item(item);
        }
        // Pending->Running is what `job.dispatch` means; the detail says where.
        let mut detail = String::with_capacity(48);
        audit::push_id(&mut detail, "robot", robot.id.0);
        detail.push(' ');
        audit::push_id(&mut detail, "attempt", i64::from(job.attempt));
        if !execute {
            detail.push_str(" (resumed by the robot that ran it)");
        }
        tx.audit(now, Actor::System, "job.dispatch", Subject::Id("job", job.id.0), detail);
        if execute {
            tx.event(now, crate::events::job_started(job, robot.id));
            if job.attempt <= 1 {
                let since = job.not_before.map_or(job.created_at, |t| t.max(job.created_at));
                tx.dispatched.push(now.0 - since.0);
            }
            let order = Execute {
                run_instance_id: job.key,
                package_download_uri: self.package_link(&self.package_of(job, p).await?, now),
                file_upload_uri: self.config.file_upload_uri.clone(),
                arguments: arguments::to_execute(&p.spec, &job.arguments),
                video_record_required: p.spec.video_record,
                video_record_mode: i32::from(p.spec.video_record),
                user_id: job.user.to_string(),
                user_name: job.user_name.to_string(),
                checkpoint: job.checkpoint.as_deref().cloned(),
                attempt: job.attempt,
                access_token: None,
            };
            tx.command(robot.id, Command::Execute(Box::new(order)));
        }
        Ok(())
    }
}

impl<S: Store> Engine<S> {
    /// `uri` as Execute gives it: a package stored here (a path under
    /// `/v1/file/`, no query) signed to work without credentials for
    /// [`EngineConfig::link_ttl_ms`](super::EngineConfig::link_ttl_ms);
    /// any other URI as it is.
    fn package_link(&self, uri: &str, now: Timestamp) -> String {
        let Some(key) = &self.config.link_key else {
            return uri.to_owned();
        };
        let path = uri
            .split_once("://")
            .map_or(uri, |(_, rest)| rest.find('/').map_or("", |i| &rest[i..]));
        if !path.starts_with("/v1/file/") || uri.contains('?') {
            return uri.to_owned();
        }
        let expires = now.plus_ms(self.config.link_ttl_ms).0.div_euclid(1000);
        format!("{uri}?{}", crate::auth::sign_link(key, path, expires))
    }
}
