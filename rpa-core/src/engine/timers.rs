//! Deadlines as data (CONVENTIONS "Timers are data"): the store indexes every
//! deadline derived from the entities; [`Engine::tick`] fires the due ones and
//! [`Engine::next_timeout`] says when to call it again. Nothing here sleeps.
//!
//! Several engines on one store fire each deadline once: a tick first takes
//! or renews the store's lease [`TIMER_LEASE`] for
//! [`EngineConfig::timer_lease_ms`](super::EngineConfig::timer_lease_ms), and
//! an engine that does not hold it does nothing. Every tick also keeps this
//! node's own lease `node:<id>` (renewed at half its life): a node whose
//! lease ran out is gone, and the WebSocket connections it held with it. Versioned commits would keep
//! double firing harmless anyway; the lease keeps it from happening.
//!
//! A tick slowed by load can outlast the timer lease. So the host also
//! calls [`Engine::keep_timer_lease`] on its own timer: it renews the lease
//! this node holds as long as its ticks show progress (a tick marks each
//! deadline it fires and each step it ends). A tick stuck for half a lease
//! shows none: the lease then runs out and another node fires the timers.

use super::liveness::Holder;
use super::{Decided, Engine, Tx, is_conflict};
use crate::audit::Subject;
use crate::error::{Error, Result};
use crate::ids::*;
use crate::job::JobEvent;
use crate::model::*;
use crate::robot::{self, RobotEvent};
use crate::store::{Due, Store, Write};
use crate::time::Timestamp;
use std::sync::atomic::{AtomicI64, Ordering};

/// The lease whose holder fires the timers.
pub const TIMER_LEASE: &str = "timers";

/// What one [`Engine::tick`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TickReport {
    /// Whether this engine holds the timer lease (if not, it did nothing).
    pub leader: bool,
    /// Robots that became Unresponsive (or lost a job while disconnected).
    pub robots_timed_out: usize,
    /// Jobs Faulted by their deadline.
    pub jobs_expired: usize,
    /// Jobs whose back-off ended.
    pub jobs_ready: usize,
    /// Jobs dispatched.
    pub dispatched: usize,
    /// Sessions deleted because their token ran out.
    pub sessions_expired: usize,
    /// Schedule firings handled (jobs started, or refused or skipped and recorded).
    pub schedules_fired: usize,
    /// Tickets moved by their robot jobs' ends and their timers.
    pub tickets_moved: usize,
    /// Pools whose wanted robots changed.
    pub pools_resized: usize,
    /// Ended jobs folded into the run analysis's figures.
    pub runs_folded: usize,
    /// Designers gone Offline or reclaimed.
    pub designers_lapsed: usize,
}

/// Deadlines handled per store page.
const BATCH: usize = 256;

/// The timer lease as this node holds it: until when, and when its ticks
/// last made progress (milliseconds; `i64::MIN`: never).
#[derive(Debug)]
pub(crate) struct TimerLease {
    until: AtomicI64,
    progress: AtomicI64,
}

impl Default for TimerLease {
    fn default() -> Self {
        TimerLease {
            until: AtomicI64::new(i64::MIN),
            progress: AtomicI64::new(i64::MIN),
        }
    }
}

/// Whether a node that holds the timer lease until `until` (of `lease_ms`)
/// and whose ticks last made progress at `progress` renews it at `now`:
/// once less than two thirds of it are left, and only while its ticks made
/// progress within half a lease (a stuck tick lets it run out).
pub(crate) fn renews_timer_lease(now: i64, until: i64, progress: i64, lease_ms: u64) -> bool {
    let lease_ms = lease_ms as i64;
    until > now && until - now <= lease_ms * 2 / 3 && now.saturating_sub(progress) < lease_ms / 2
}

impl<S: Store> Engine<S> {
    /// Fires every deadline that has come, then dispatches. Call it at
    /// [`Engine::next_timeout`] (and now and then: day boundaries free `maxDayNum`).
    pub async fn tick(&self) -> Result<TickReport> {
        let mut report = TickReport::default();
        let now = self.now();
        self.renew_node_lease(now).await?;
        self.keep_heard(now).await?;
        report.robots_timed_out += self.sweep_silent(now).await?;
        report.leader = self.take_timer_lease(now).await?;
        report.robots_timed_out += self.close_orphans(now, report.leader).await?;
        if !report.leader {
            // The robots this node keeps are its own to fill.
            report.dispatched = self.dispatch_all().await?;
            return Ok(report);
        }
        loop {
            let now = self.now();
            let due = self.store.due(now, BATCH).await?;
            if due.is_empty() {
                break;
            }
            for d in &due {
                match *d {
                    Due::RobotSilent(r) => report.robots_timed_out += usize::from(self.robot_silent(r, true).await?),
                    Due::JobExpired(j) => report.jobs_expired += usize::from(self.fire(j, JobEvent::Expire).await?),
                    Due::JobReady(j) => report.jobs_ready += usize::from(self.fire(j, JobEvent::Ready).await?),
                    Due::TokenExpired(h) => report.sessions_expired += usize::from(self.expire_session(h).await?),
                }
                self.tick_progress();
            }
            if due.len() < BATCH {
                break;
            }
        }
        report.schedules_fired = self.fire_schedules(self.now()).await?;
        self.tick_progress();
        report.tickets_moved = self.follow_flows().await?;
        self.tick_progress();
        report.runs_folded = self.fold_runs().await?;
        report.designers_lapsed = self.lapse_designers().await?;
        report.pools_resized = self.size_pools(false).await?;
        self.tick_progress();
        report.dispatched = self.dispatch_all().await?;
        self.tick_progress();
        Ok(report)
    }

    /// Takes or renews the timer lease for a tick starting at `now`.
    async fn take_timer_lease(&self, now: Timestamp) -> Result<bool> {
        let until = now.plus_ms(self.config.timer_lease_ms);
        let held = self.store.lease(TIMER_LEASE, self.node, now, until).await?;
        let t = &self.timer_lease;
        t.until.store(if held { until.0 } else { i64::MIN }, Ordering::Relaxed);
        t.progress.store(now.0, Ordering::Relaxed);
        Ok(held)
    }

    /// Marks that the tick moved on (see [`Engine::keep_timer_lease`]).
    fn tick_progress(&self) {
        self.timer_lease.progress.store(self.now().0, Ordering::Relaxed);
    }

    /// Keeps the timer lease this node holds while its ticks make progress
    /// (see the module's documentation): a host calls it on its own timer,
    /// at least every sixth of the lease, so that a tick slowed by load
    /// keeps it. It never takes a lease it does not hold (ticks do). Answers
    /// whether this node holds the lease.
    pub async fn keep_timer_lease(&self) -> Result<bool> {
        let now = self.now();
        let t = &self.timer_lease;
        let (until, progress) = (t.until.load(Ordering::Relaxed), t.progress.load(Ordering::Relaxed));
        if !renews_timer_lease(now.0, until, progress, self.config.timer_lease_ms) {
            return Ok(until > now.0);
        }
        let end = now.plus_ms(self.config.timer_lease_ms);
        // Held by this node and not run out: renewed (one another node took meanwhile stays its own).
        let held = self.store.lease(TIMER_LEASE, self.node, now, end).await?;
        t.until.store(if held { end.0 } else { i64::MIN }, Ordering::Relaxed);
        Ok(held)
    }

    /// The earliest deadline, if any.
    pub async fn next_timeout(&self) -> Result<Option<Timestamp>> {
        Ok(self.store.next_due().await?)
    }

    /// A job deadline: a rejection means the job moved on since the index was read.
    async fn fire(&self, job: JobId, ev: JobEvent) -> Result<bool> {
        match self.transition(job, ev, Actor::System, None).await {
            Ok(t) => {
                self.follow_up(&t).await?;
                if t.fx.changed && t.job.state == JobState::Pending {
                    self.place_job(t.job.id).await?;
                }
                Ok(t.fx.changed)
            }
            Err(Error::Rejected(_)) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// A session past its expiry: deleted (it was refused since it ran out).
    async fn expire_session(&self, hash: [u8; 32]) -> Result<bool> {
        match self.store.token(hash).await? {
            Some(t) if t.expires_at <= self.now() => {
                let mut tx = Tx::default();
                tx.put(Write::RevokeToken(hash));
                self.commit(tx).await?;
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    /// A robot silent past its deadline (as its holder knows it, see
    /// `liveness.rs`): Unresponsive, and its job fails over; or closed, if
    /// its socket died with its node. `from_index`: the deadline index named
    /// it (an entry a node's robot may have from an older row: written again
    /// without it). Returns whether the robot was timed out or closed.
    pub(crate) async fn robot_silent(&self, id: RobotId, from_index: bool) -> Result<bool> {
        decided!(self, |_attempt| {
            let now = self.now();
            let Some(mut r) = self.store.robot(id).await? else {
                return Ok(Decided::Answer(false));
            };
            let before = r.state;
            let holder = self.vouch(&mut r, now).await?;
            if holder == Holder::Gone {
                return Ok(Decided::Commit(self.orphaned(r, before, now), true));
            }
            if r.deadline.is_none_or(|d| d > now) {
                if from_index && holder != Holder::Stored {
                    let mut tx = Tx::default();
                    tx.robot(r);
                    return Ok(Decided::Commit(tx, false));
                }
                return Ok(Decided::Answer(false));
            }
            if holder == Holder::Stored
                && matches!(r.state, RobotState::Available | RobotState::Busy)
                && let Some(at) = self.heard_within(r.id, now)
            {
                // Heard all along: its heartbeats are late here, not missing.
                if !robot::keep_alive(&mut r, at, self.robot_window()) {
                    return Ok(Decided::Answer(false));
                }
                let mut tx = Tx::default();
                tx.robot(r);
                self.metrics
                    .deadlines_kept
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                return Ok(Decided::Commit(tx, false));
            }
            if let Some(j) = r.job
                && let Some(job) = self.store.job(j).await?
                && job.state.is_active()
                && job.robot == Some(r.id)
            {
                match self
                    .transition_from(
                        j,
                        Some(job),
                        Some(r.clone()),
                        JobEvent::RobotLost,
                        Actor::System,
                        Some(RobotEvent::Timeout),
                    )
                    .await
                {
                    // The job or the robot moved on since they were read: look again.
                    Err(e) if is_conflict(&e) || matches!(e, Error::Rejected(_)) => return Ok(Decided::Again),
                    Err(e) => return Err(e),
                    Ok(t) => {
                        self.follow_up(&t).await?;
                        return Ok(Decided::Answer(true));
                    }
                }
            }
            let before = r.state;
            robot::apply(&mut r, RobotEvent::Timeout, now, self.robot_window())?;
            let mut tx = Tx::default();
            tx.commit.clear_outbox.push(r.id);
            tx.audit(
                now,
                Actor::System,
                "robot.timeout",
                Subject::Id("robot", r.id.0),
                r.state.as_str().into(),
            );
            tx.robot_changed(now, before, &r);
            tx.robot(r);
            Ok(Decided::Commit(tx, true))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::renews_timer_lease;

    #[test]
    fn the_timer_lease_is_renewed_while_ticks_progress_and_not_before_a_third_is_gone() {
        // A 9 s lease taken at 0 by a tick that made progress at 0.
        assert!(!renews_timer_lease(2_000, 9_000, 0, 9_000), "more than two thirds left");
        assert!(renews_timer_lease(3_000, 9_000, 0, 9_000));
        assert!(renews_timer_lease(4_000, 9_000, 0, 9_000));
        assert!(
            !renews_timer_lease(4_500, 9_000, 0, 9_000),
            "no progress for half a lease"
        );
        assert!(
            renews_timer_lease(8_000, 9_000, 7_000, 9_000),
            "a slow tick still moving"
        );
        assert!(
            !renews_timer_lease(9_000, 9_000, 8_999, 9_000),
            "run out: a tick takes it again"
        );
        assert!(!renews_timer_lease(0, i64::MIN, i64::MIN, 9_000), "never held");
    }
}
