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
//!
//! **Robots whose socket a node holds** (WebSocket robots,
//! [`robot::keeper`]) are kept by that node alone, in memory: their
//! heartbeats write nothing while nothing changes (state, job, node), their
//! stored deadline is no timer, and:
//!
//! - **Every tick, on every node.** A robot kept here and not heard for a
//!   window (the heartbeat timeout plus its slack) is timed out
//!   ([`Engine::sweep_silent`], at most every [`SWEEP_MAX_MS`]).
//! - **A node that is gone** (its lease `node:<id>` ran out) took its
//!   sockets with it: the node firing the timers closes its robots
//!   ([`robot::orphan`]), which keep their jobs until the latest deadline
//!   they could have had, so a robot that reconnects elsewhere in time keeps
//!   its run and one that does not is timed out within the window plus half
//!   a node lease of its last hearing. A node that starts closes the robots
//!   an earlier process under its number left behind.
//! - **Anyone who must know** (a registration elsewhere, a deadline from
//!   the index) asks [`Engine::holder`]: heard here, held by a live node
//!   elsewhere, or gone.

use std::collections::HashMap;
use std::sync::Mutex;

use super::{Decided, Engine, Tx};
use crate::audit::Subject;
use crate::error::Result;
use crate::ids::{JobId, Key, RobotId};
use crate::model::{Actor, Job, Robot, RobotState};
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
    /// When the next tick looks for silent robots kept here.
    next_sweep: Option<Timestamp>,
    /// When the timer holder next looks for robots of nodes that are gone.
    next_orphans: Option<Timestamp>,
    /// Whether this node looked for robots an earlier process under its
    /// number left behind.
    own_orphans_closed: bool,
}

/// The longest pause between two looks at the robots kept here: a silent
/// robot is timed out at most this late.
pub const SWEEP_MAX_MS: u64 = 1_000;

/// Who vouches for a connected robot's liveness, as this node knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Holder {
    /// Its stored deadline: an HTTP robot, or one not connected.
    Stored,
    /// This node holds its socket and last heard it then.
    Here(Timestamp),
    /// Another node that still lives holds its socket.
    Elsewhere,
    /// Its socket died with its node (or with an earlier process of this
    /// node, which this one never heard it on).
    Gone,
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

    /// Who vouches for `r`'s connection (see the module docs).
    pub(crate) async fn holder(&self, r: &Robot, now: Timestamp) -> Result<Holder> {
        Ok(match robot::keeper(r) {
            None => Holder::Stored,
            Some(n) if n == self.node => match self.heard.lock().at.get(&r.id) {
                Some(&at) => Holder::Here(at),
                None => Holder::Gone,
            },
            Some(n) if self.node_alive(n, now).await? => Holder::Elsewhere,
            Some(_) => Holder::Gone,
        })
    }

    /// Gives `r` the deadline its holder knows, so the robot state machine
    /// (which decides by deadlines) sees it: the last hearing here plus a
    /// window; a whole window from now when a live node elsewhere holds it;
    /// closed ([`robot::orphan`]) when its node is gone.
    pub(crate) async fn vouch(&self, r: &mut Robot, now: Timestamp) -> Result<Holder> {
        let h = self.holder(r, now).await?;
        match h {
            Holder::Stored => {}
            Holder::Here(at) => r.deadline = Some(at.plus_ms(self.robot_window())),
            Holder::Elsewhere => r.deadline = Some(now.plus_ms(self.robot_window())),
            Holder::Gone => robot::orphan(r, now, self.robot_window(), self.node_lease_ms())?,
        }
        Ok(h)
    }

    /// Every tick, on every node: times out the robots kept here that were
    /// not heard for a window. Looks at most every [`SWEEP_MAX_MS`] (or an
    /// eighth of the timeout). Returns how many it timed out.
    pub(crate) async fn sweep_silent(&self, now: Timestamp) -> Result<usize> {
        let window = self.robot_window() as i64;
        let silent: Vec<(RobotId, Timestamp)> = {
            let mut h = self.heard.lock();
            if h.next_sweep.is_some_and(|t| now < t) {
                return Ok(0);
            }
            let every = (self.config.heartbeat_timeout_ms / 8).clamp(1, SWEEP_MAX_MS);
            h.next_sweep = Some(now.plus_ms(every));
            h.at.iter()
                .filter(|(_, at)| now.0 - at.0 >= window)
                .map(|(r, at)| (*r, *at))
                .collect()
        };
        let mut timed_out = 0;
        for (id, at) in silent {
            timed_out += usize::from(self.robot_silent(id, false).await?);
            // Forgotten, unless heard again meanwhile.
            let mut h = self.heard.lock();
            if h.at.get(&id) == Some(&at) {
                h.at.remove(&id);
                h.handed.remove(&id);
                h.disowned.remove(&id);
            }
        }
        Ok(timed_out)
    }

    /// Closes the robots whose socket died with their node: on the node
    /// firing the timers (`leader`), those of nodes that are gone, every half
    /// node lease; on every node once, as it starts, those an earlier process
    /// under its number left. Returns how many it closed.
    pub(crate) async fn close_orphans(&self, now: Timestamp, leader: bool) -> Result<usize> {
        let (others, own) = {
            let mut h = self.heard.lock();
            let others = leader && h.next_orphans.is_none_or(|t| now >= t);
            if others {
                h.next_orphans = Some(now.plus_ms((self.node_lease_ms() / 2).max(1)));
            }
            (others, !std::mem::replace(&mut h.own_orphans_closed, true))
        };
        if !others && !own {
            return Ok(0);
        }
        let mut alive: HashMap<u64, bool> = HashMap::new();
        let mut closed = 0;
        for r in self.store.robots().await? {
            let orphaned = match robot::keeper(&r) {
                None => false,
                Some(n) if n == self.node => own && !self.heard.lock().at.contains_key(&r.id),
                Some(_) if !others => false,
                Some(n) => match alive.get(&n) {
                    Some(&a) => !a,
                    None => {
                        let a = self.node_alive(n, now).await?;
                        alive.insert(n, a);
                        !a
                    }
                },
            };
            if orphaned {
                closed += usize::from(self.robot_silent(r.id, false).await?);
            }
        }
        Ok(closed)
    }

    /// The commit closing `r`, whose socket died with its node (`before`:
    /// its state before [`Engine::vouch`] closed it).
    pub(crate) fn orphaned(&self, r: Robot, before: RobotState, now: Timestamp) -> Tx {
        let mut tx = Tx::default();
        tx.audit(
            now,
            Actor::System,
            "robot.disconnect",
            Subject::Id("robot", r.id.0),
            "its node is gone".into(),
        );
        tx.robot_changed(now, before, &r);
        tx.robot(r);
        tx
    }

    /// Gives each robot kept here the time this node last heard it.
    pub(crate) fn with_hearings(&self, robots: &mut [Robot]) {
        let h = self.heard.lock();
        for r in robots.iter_mut().filter(|r| robot::keeper(r) == Some(self.node)) {
            if let Some(&at) = h.at.get(&r.id) {
                r.last_seen = r.last_seen.max(at);
            }
        }
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
            // Those silent longer are left to `sweep_silent`.
            let HeardInner {
                at, handed, disowned, ..
            } = &mut *h;
            handed.retain(|r, _| at.contains_key(r));
            disowned.retain(|r, _| at.contains_key(r));
            h.at.iter()
                .filter(|(_, at)| now.0 - at.0 < timeout)
                .map(|(r, at)| (*r, *at))
                .collect()
        };
        let mut kept = 0;
        for (id, at) in heard {
            let lapsing = |d: Timestamp| d.0 - now.0 < timeout / 2;
            let Some(r) = self.store.robot(id).await? else { continue };
            // Robots kept by a node have no stored deadline to keep.
            if !matches!(r.state, RobotState::Available | RobotState::Busy)
                || !r.deadline.is_some_and(lapsing)
                || r.node.is_some()
            {
                continue;
            }
            let moved = decided!(self, |_attempt| {
                let Some(mut r) = self.store.robot(id).await? else {
                    return Ok(Decided::Answer(false));
                };
                if r.node.is_some() || !robot::keep_alive(&mut r, at, self.robot_window()) {
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
