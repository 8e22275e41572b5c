//! The robot state machine (DESIGN §3).
//!
//! | state \ event | Register | Heartbeat | Assign | Release | Timeout | Close |
//! |---|---|---|---|---|---|---|
//! | Disconnected | Available, or Busy if it still holds a job | ✗ | ✗ | Disconnected | Disconnected (job lost) | Disconnected |
//! | Available | 10000 if healthy, else re-registers | Available | Busy | ✗ | Unresponsive | Disconnected |
//! | Busy | 10000 if healthy, else re-registers | Busy | ✗ | Available | Unresponsive (job lost) | Disconnected (job kept until timeout) |
//!
//! | Unresponsive | Available | Available | ✗ | Unresponsive | ✗ | Disconnected |
//!
//! Timeout is refused (✗) before the robot's deadline: a timer that read
//! an older copy of the robot cannot time out the copy a heartbeat renewed
//! meanwhile. [`keep_alive`] moves the deadline of a robot a node heard from
//! although its stored deadline is running out (see `engine/liveness.rs`).
//!
//! Who keeps a connected robot's deadline: the node holding the socket of a
//! WebSocket robot ([`keeper`]) keeps it in memory, so heartbeats that change
//! nothing write nothing and the stored deadline is no timer; when that node
//! is gone its robots are closed ([`orphan`]) with the latest deadline they
//! could have had. An HTTP robot, whose calls reach any node, keeps its
//! deadline in the store.
//!
//! A registered robot is given work only after its first heartbeat
//! (`awaiting_heartbeat`): the heartbeat says what it is still running.
//! "Healthy" means heard from within the heartbeat timeout. A WebSocket
//! connection held by a node that is gone died with it: the engine closes it
//! (Close) before it registers the robot's new connection, however healthy
//! it looked. A robot that closes
//! its socket keeps its job until the timeout: if it reconnects in time and says
//! in its heartbeat that it still runs the job, it keeps it.

use crate::error::{AnyState, Entity, Error, Rejected};
use crate::ids::{JobId, Key};
use crate::model::{Robot, RobotState};
use crate::time::Timestamp;

/// What happened to a robot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RobotEvent {
    /// A new connection proved its vendor.
    Register(Key),
    /// The connection is alive.
    Heartbeat,
    /// The scheduler gave it a job.
    Assign(JobId),
    /// It is done with its job.
    Release,
    /// Silent past its deadline.
    Timeout,
    /// Its connection closed.
    Close,
}

impl RobotEvent {
    fn name(self) -> &'static str {
        match self {
            RobotEvent::Register(_) => "register",
            RobotEvent::Heartbeat => "heartbeat",
            RobotEvent::Assign(_) => "assign",
            RobotEvent::Release => "release",
            RobotEvent::Timeout => "timeout",
            RobotEvent::Close => "close",
        }
    }
}

/// Whether the robot's current connection still counts (DESIGN §7, error 10000).
pub fn is_healthy(robot: &Robot, now: Timestamp) -> bool {
    matches!(robot.state, RobotState::Available | RobotState::Busy) && robot.deadline.is_some_and(|d| d > now)
}

/// Applies `ev` to `robot`; `timeout_ms` is the heartbeat timeout. On `Err`
/// the robot is unchanged. Returns the job the robot lost, if any (Timeout).
pub fn apply(robot: &mut Robot, ev: RobotEvent, now: Timestamp, timeout_ms: u64) -> Result<Option<JobId>, Error> {
    use RobotState::*;
    let deadline = Some(now.plus_ms(timeout_ms));
    let reject = |r: &Robot| Rejected {
        entity: Entity::Robot,
        state: AnyState::Robot(r.state),
        event: ev.name(),
    };
    let mut lost = None;
    let past = robot.deadline.is_some_and(|d| d <= now);
    match (robot.state, ev) {
        (Available | Busy, RobotEvent::Register(_)) if is_healthy(robot, now) => {
            return Err(Error::DuplicateConnection);
        }
        (_, RobotEvent::Register(connect)) => {
            robot.connect = Some(connect);
            robot.state = if robot.job.is_some() { Busy } else { Available };
            robot.last_seen = now;
            robot.deadline = deadline;
            robot.awaiting_heartbeat = true;
        }
        (Available | Busy | Unresponsive, RobotEvent::Heartbeat) => {
            if robot.state == Unresponsive {
                robot.state = if robot.job.is_some() { Busy } else { Available };
            }
            robot.last_seen = now;
            robot.deadline = deadline;
            robot.awaiting_heartbeat = false;
        }
        (Available, RobotEvent::Assign(job)) if robot.job.is_none() => {
            robot.state = Busy;
            robot.job = Some(job);
        }
        (Busy, RobotEvent::Release) => {
            robot.state = Available;
            robot.job = None;
        }
        (Disconnected | Unresponsive, RobotEvent::Release) if robot.job.is_some() => {
            robot.job = None;
            if robot.state == Disconnected {
                robot.deadline = None;
            }
        }
        (Available | Busy, RobotEvent::Timeout) if past => {
            lost = robot.job.take();
            robot.state = Unresponsive;
            robot.deadline = None;
        }
        (Disconnected, RobotEvent::Timeout) if past => {
            lost = robot.job.take();
            robot.deadline = None;
        }
        (Available | Busy | Unresponsive, RobotEvent::Close) => {
            robot.state = Disconnected;
            robot.connect = None;
            robot.node = None;
            if robot.job.is_none() {
                robot.deadline = None;
            }
        }
        _ => return Err(reject(robot).into()),
    }
    Ok(lost)
}

/// The node that keeps `robot`'s liveness in memory: the one holding the
/// socket of its live WebSocket connection. `None` for HTTP robots and for
/// robots not connected, whose stored deadline decides.
pub fn keeper(robot: &Robot) -> Option<u64> {
    robot
        .node
        .filter(|_| matches!(robot.state, RobotState::Available | RobotState::Busy))
}

/// A robot whose keeper node was found gone at `now` (`window_ms` as in
/// [`apply`]; the node held a lease of `lease_ms`, renewed before half of
/// it was gone): its socket died with the node, so it is closed (keeping its
/// job, as after any closed socket) with the latest deadline it could have
/// had. The node died at least half a lease before its lease ran out, hence
/// before `now`, and heard the robot at most then.
pub fn orphan(robot: &mut Robot, now: Timestamp, window_ms: u64, lease_ms: u64) -> Result<(), Error> {
    let deadline = now.plus_ms(window_ms.saturating_sub(lease_ms / 2));
    let before = robot.deadline;
    robot.deadline = Some(deadline);
    apply(robot, RobotEvent::Close, now, window_ms).inspect_err(|_| robot.deadline = before)?;
    Ok(())
}

/// A robot heard from at `heard` (`timeout_ms` as in [`apply`]): a
/// connected robot's deadline moves to `heard + timeout_ms` if it was
/// earlier. Returns whether the robot changed.
pub fn keep_alive(robot: &mut Robot, heard: Timestamp, timeout_ms: u64) -> bool {
    let deadline = heard.plus_ms(timeout_ms);
    if !matches!(robot.state, RobotState::Available | RobotState::Busy) || robot.deadline.is_some_and(|d| d >= deadline)
    {
        return false;
    }
    robot.deadline = Some(deadline);
    robot.last_seen = robot.last_seen.max(heard);
    true
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::ids::*;
    use crate::model::RobotProfile;
    use crate::model::RobotState::*;

    const T: u64 = 30_000;

    fn robot() -> Robot {
        Robot {
            id: RobotId(1),
            key: Key([4; 16]),
            version: 1,
            code: "r1".into(),
            profile: Arc::new(RobotProfile::default()),
            robot_version: None,
            state: Disconnected,
            connect: None,
            job: None,
            last_seen: Timestamp(0),
            deadline: None,
            awaiting_heartbeat: false,
            node: None,
            extensions: false,
        }
    }

    fn at(ms: i64) -> Timestamp {
        Timestamp(ms)
    }

    #[test]
    fn register_assign_release() {
        let mut r = robot();
        apply(&mut r, RobotEvent::Register(Key([1; 16])), at(0), T).unwrap();
        assert_eq!(r.state, Available);
        assert!(r.awaiting_heartbeat, "no work before the first heartbeat");
        apply(&mut r, RobotEvent::Heartbeat, at(0), T).unwrap();
        assert!(!r.awaiting_heartbeat);
        apply(&mut r, RobotEvent::Assign(JobId(5)), at(1), T).unwrap();
        assert_eq!((r.state, r.job), (Busy, Some(JobId(5))));
        apply(&mut r, RobotEvent::Release, at(2), T).unwrap();
        assert_eq!((r.state, r.job), (Available, None));
    }

    #[test]
    fn a_second_connection_while_healthy_gets_10000() {
        let mut r = robot();
        apply(&mut r, RobotEvent::Register(Key([1; 16])), at(0), T).unwrap();
        let before = r.clone();
        assert_eq!(
            apply(&mut r, RobotEvent::Register(Key([2; 16])), at(10), T),
            Err(Error::DuplicateConnection)
        );
        assert_eq!(r, before);
        // silent past the timeout: the new connection wins
        apply(&mut r, RobotEvent::Register(Key([2; 16])), at(T as i64 + 1), T).unwrap();
        assert_eq!(r.connect, Some(Key([2; 16])));
    }

    #[test]
    fn timeout_makes_unresponsive_and_loses_the_job() {
        let mut r = robot();
        apply(&mut r, RobotEvent::Register(Key([1; 16])), at(0), T).unwrap();
        apply(&mut r, RobotEvent::Assign(JobId(5)), at(1), T).unwrap();
        let lost = apply(&mut r, RobotEvent::Timeout, at(T as i64), T).unwrap();
        assert_eq!(lost, Some(JobId(5)));
        assert_eq!((r.state, r.job), (Unresponsive, None));
        apply(&mut r, RobotEvent::Heartbeat, at(T as i64 + 5), T).unwrap();
        assert_eq!(r.state, Available, "a robot heard from again is available");
    }

    #[test]
    fn timeout_before_the_deadline_is_refused() {
        let mut r = robot();
        apply(&mut r, RobotEvent::Register(Key([1; 16])), at(0), T).unwrap();
        apply(&mut r, RobotEvent::Assign(JobId(5)), at(1), T).unwrap();
        // A heartbeat renewed the deadline after a timer read the robot.
        apply(&mut r, RobotEvent::Heartbeat, at(T as i64 - 1), T).unwrap();
        let before = r.clone();
        assert!(apply(&mut r, RobotEvent::Timeout, at(T as i64), T).is_err());
        assert_eq!(r, before, "the robot keeps its job");
        apply(&mut r, RobotEvent::Close, at(T as i64), T).unwrap();
        assert!(
            apply(&mut r, RobotEvent::Timeout, at(T as i64), T).is_err(),
            "closed, it keeps its job until its deadline"
        );
        assert_eq!(
            apply(&mut r, RobotEvent::Timeout, at(2 * T as i64), T).unwrap(),
            Some(JobId(5))
        );
    }

    #[test]
    fn keep_alive_moves_a_connected_robots_deadline_forward_only() {
        let mut r = robot();
        apply(&mut r, RobotEvent::Register(Key([1; 16])), at(0), T).unwrap();
        assert!(keep_alive(&mut r, at(10), T));
        assert_eq!(r.deadline, Some(at(10 + T as i64)));
        assert!(!keep_alive(&mut r, at(5), T), "an older hearing changes nothing");
        apply(&mut r, RobotEvent::Close, at(11), T).unwrap();
        assert!(!keep_alive(&mut r, at(12), T), "a closed connection is not kept");
    }

    #[test]
    fn close_keeps_the_job_until_reconnect_or_timeout() {
        let mut r = robot();
        apply(&mut r, RobotEvent::Register(Key([1; 16])), at(0), T).unwrap();
        apply(&mut r, RobotEvent::Assign(JobId(5)), at(1), T).unwrap();
        apply(&mut r, RobotEvent::Close, at(2), T).unwrap();
        assert_eq!((r.state, r.job), (Disconnected, Some(JobId(5))));
        apply(&mut r, RobotEvent::Register(Key([2; 16])), at(3), T).unwrap();
        assert_eq!((r.state, r.job), (Busy, Some(JobId(5))));
        apply(&mut r, RobotEvent::Close, at(4), T).unwrap();
        assert_eq!(
            apply(&mut r, RobotEvent::Timeout, at(T as i64 + 10), T).unwrap(),
            Some(JobId(5))
        );
        assert_eq!((r.state, r.job, r.deadline), (Disconnected, None, None));
    }

    #[test]
    fn a_connected_websocket_robot_is_kept_by_its_node() {
        let mut r = robot();
        apply(&mut r, RobotEvent::Register(Key([1; 16])), at(0), T).unwrap();
        assert_eq!(keeper(&r), None, "an HTTP robot: its stored deadline decides");
        r.node = Some(7);
        assert_eq!(keeper(&r), Some(7));
        apply(&mut r, RobotEvent::Close, at(5), T).unwrap();
        assert_eq!(keeper(&r), None, "closed: not connected anywhere");
    }

    #[test]
    fn an_orphan_keeps_its_job_until_the_latest_deadline_it_could_have_had() {
        let mut r = robot();
        apply(&mut r, RobotEvent::Register(Key([1; 16])), at(0), T).unwrap();
        apply(&mut r, RobotEvent::Assign(JobId(3)), at(0), T).unwrap();
        r.node = Some(7);
        // Found gone at 100 s; its lease lasted 10 s: it died by 95 s.
        orphan(&mut r, at(100_000), T, 10_000).unwrap();
        assert_eq!(
            (r.state, r.job, r.node, r.deadline),
            (Disconnected, Some(JobId(3)), None, Some(at(125_000)))
        );
        // Silent until then: the job is lost.
        assert_eq!(
            apply(&mut r, RobotEvent::Timeout, at(124_999), T).map_err(|_| ()),
            Err(())
        );
        assert_eq!(apply(&mut r, RobotEvent::Timeout, at(125_000), T), Ok(Some(JobId(3))));

        let mut idle = robot();
        apply(&mut idle, RobotEvent::Register(Key([1; 16])), at(0), T).unwrap();
        idle.node = Some(7);
        orphan(&mut idle, at(100_000), T, 10_000).unwrap();
        assert_eq!((idle.state, idle.deadline), (Disconnected, None), "nothing to wait for");
        let before = idle.clone();
        assert!(orphan(&mut idle, at(200_000), T, 10_000).is_err());
        assert_eq!(idle, before, "refused: unchanged");
    }

    #[test]
    fn illegal_events_change_nothing() {
        let events = [
            RobotEvent::Heartbeat,
            RobotEvent::Assign(JobId(1)),
            RobotEvent::Release,
            RobotEvent::Timeout,
            RobotEvent::Close,
        ];
        let mut rejected = 0;
        for state in [Disconnected, Available, Busy, Unresponsive] {
            for ev in events {
                let mut start = robot();
                start.state = state;
                if state == Busy {
                    start.job = Some(JobId(1));
                }
                let mut r = start.clone();
                if apply(&mut r, ev, at(0), T).is_err() {
                    assert_eq!(r, start, "{state:?} + {ev:?}");
                    rejected += 1;
                }
            }
        }
        assert!(rejected >= 8);
    }
}
