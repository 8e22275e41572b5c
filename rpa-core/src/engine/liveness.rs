//! What this node has heard from robots, and what it lets that decide.
//!
//! A robot's stored deadline moves when one of its heartbeats is committed.
//! A node that handles or commits heartbeats late (a backlog of work, a
//! slow disk, a busy machine) can let the stored deadline pass while the
//! robot talks all along: timing it out then would fail over the job it is
//! running, and the run would happen twice. So each node notes in memory
//! when it last heard each robot: the WebSocket hub on every message as it
//! arrives, before handling it ([`Engine::heard`]); the HTTP robot API at
//! each heartbeat. From that:
//!
//! - **Timers.** A robot this node heard within the heartbeat timeout is not
//!   timed out here: its stored deadline is moved to the hearing plus the
//!   window instead (`robot::keep_alive`).
//! - **Every tick, on every node.** A robot this node heard within the
//!   timeout whose stored deadline has less than half the timeout left gets
//!   that same move, so the timers of other nodes (which cannot know what
//!   this node heard) keep seeing a live robot.
//! - **A robot that disowns its job.** A robot whose heartbeats do not name
//!   the job it holds on its current connection has lost that job (the
//!   Execute never reached it) once they have said so for a whole window,
//!   counted in their arrival times on this node. A heartbeat that arrived
//!   before this node handed the job's Execute over ([`Engine::handed_over`])
//!   crossed it on its way and says nothing of it, however late it is
//!   handled.
//!
//! Nothing here is durable: a node that restarts has heard nothing, and the
//! stored deadlines decide alone. A robot that is really silent is still
//! timed out within the timeout plus the slack of its last hearing.

use std::collections::HashMap;
use std::sync::Mutex;

use super::{Decided, Engine};
use crate::error::Result;
use crate::ids::{JobId, Key, RobotId};
use crate::model::{Job, RobotState};
use crate::robot;
use crate::store::Store;
use crate::time::Timestamp;
use crate::transport::Command;

/// What a node heard, per robot.
#[derive(Default)]
pub(crate) struct Heard {
    inner: Mutex<HeardInner>,
}

#[derive(Default)]
struct HeardInner {
    /// When each robot was last heard.
    at: HashMap<RobotId, Timestamp>,
    /// Since when a robot's heartbeats have not named the job it holds.
    disowned: HashMap<RobotId, (JobId, Timestamp)>,
    /// The last Execute handed over to each robot here: its run, and when.
    handed: HashMap<RobotId, (Key, Timestamp)>,
    /// When the next tick looks at the deadlines of robots heard here.
    next_scan: Option<Timestamp>,
}

impl Heard {
    fn lock(&self) -> std::sync::MutexGuard<'_, HeardInner> {
        self.inner.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl<S: Store> Engine<S> {
    /// Notes that robot `robot` was heard from now: a message of its
    /// connection arrived (the hub calls this before handling it). Returns
    /// now, the message's arrival for [`Engine::heartbeat_received`].
    pub fn heard(&self, robot: RobotId) -> Timestamp {
        let now = self.now();
        let mut h = self.heard.lock();
        let at = h.at.entry(robot).or_insert(now);
        *at = (*at).max(now);
        now
    }

    /// Commands taken for `robot` to be sent at once (a heartbeat's
    /// answer, or a connection taking its outbox): notes when an Execute
    /// was handed over, and gives each its run token.
    pub(crate) fn handed_over(&self, robot: RobotId, cmds: Vec<Command>) -> Vec<Command> {
        self.handed(robot, &cmds);
        self.with_run_tokens(cmds)
    }

    /// Notes that `cmds` were just written to `robot`'s connection: the
    /// hub calls this for the commands pushed to it, which may wait in its
    /// queue while it handles the robot's messages.
    pub fn handed(&self, robot: RobotId, cmds: &[Command]) {
        if let Some(run) = cmds.iter().rev().find_map(|c| match c {
            Command::Execute(e) => Some(e.run_instance_id),
            _ => None,
        }) {
            let now = self.now();
            self.heard.lock().handed.insert(robot, (run, now));
        }
    }

    /// Forgets what this node heard from `robot` (its connection here closed).
    pub(crate) fn forget_heard(&self, robot: RobotId) {
        let mut h = self.heard.lock();
        h.at.remove(&robot);
        h.disowned.remove(&robot);
        h.handed.remove(&robot);
    }

    /// When this node last heard `robot`, if within the heartbeat timeout of `now`.
    pub(crate) fn heard_within(&self, robot: RobotId, now: Timestamp) -> Option<Timestamp> {
        let at = *self.heard.lock().at.get(&robot)?;
        (now.0 - at.0 < self.config.heartbeat_timeout_ms as i64).then_some(at)
    }

    /// A heartbeat of `robot` that arrived at `received` and does not name
    /// `job`, which the robot holds on its current connection: whether it
    /// has disowned that job for a whole window.
    pub(crate) fn disowns(&self, robot: RobotId, job: &Job, received: Timestamp) -> bool {
        let mut h = self.heard.lock();
        if h.handed
            .get(&robot)
            .is_some_and(|&(run, at)| run == job.key && received <= at)
        {
            // It left before the Execute reached it.
            return false;
        }
        let since = match h.disowned.get(&robot) {
            Some(&(j, since)) if j == job.id => since,
            _ => {
                h.disowned.insert(robot, (job.id, received));
                received
            }
        };
        received.0 - since.0 >= self.robot_window() as i64
    }

    /// A heartbeat of `robot` that names its job, or of a robot holding none.
    pub(crate) fn owns(&self, robot: RobotId) {
        let mut h = self.heard.lock();
        if !h.disowned.is_empty() {
            h.disowned.remove(&robot);
        }
    }

    /// Every tick: moves the stored deadline of each robot heard here within
    /// the timeout that has less than half of it left. Looks at most every
    /// quarter of the timeout. Returns how many robots it kept alive.
    pub(crate) async fn keep_heard(&self, now: Timestamp) -> Result<usize> {
        let timeout = self.config.heartbeat_timeout_ms as i64;
        let heard: Vec<(RobotId, Timestamp)> = {
            let mut h = self.heard.lock();
            if h.next_scan.is_some_and(|t| now < t) {
                return Ok(0);
            }
            h.next_scan = Some(now.plus_ms((timeout / 4).max(1) as u64));
            h.at.retain(|_, at| now.0 - at.0 < timeout);
            let HeardInner {
                at, handed, disowned, ..
            } = &mut *h;
            handed.retain(|r, _| at.contains_key(r));
            disowned.retain(|r, _| at.contains_key(r));
            h.at.iter().map(|(r, at)| (*r, *at)).collect()
        };
        let mut kept = 0;
        for (id, at) in heard {
            let lapsing = |d: Timestamp| d.0 - now.0 < timeout / 2;
            let Some(r) = self.store.robot(id).await? else { continue };
            if !matches!(r.state, RobotState::Available | RobotState::Busy)
                || !r.deadline.is_some_and(lapsing)
                || r.node.is_some_and(|n| n != self.node)
            {
                continue;
            }
            let moved = decided!(self, |_attempt| {
                let Some(mut r) = self.store.robot(id).await? else {
                    return Ok(Decided::Answer(false));
                };
                if r.node.is_some_and(|n| n != self.node) || !robot::keep_alive(&mut r, at, self.robot_window()) {
                    return Ok(Decided::Answer(false));
                }
                let mut tx = super::Tx::default();
                tx.robot(r);
                Ok(Decided::Commit(tx, true))
            })?;
            kept += usize::from(moved);
        }
        self.metrics
            .deadlines_kept
            .fetch_add(kept as u64, std::sync::atomic::Ordering::Relaxed);
        Ok(kept)
    }
}
