//! Liveness of robots whose socket a node holds (memory store, manual
//! clock, several engines on one store): heartbeats that change nothing
//! write nothing; a silent robot is timed out by its node within a window;
//! when its node is gone, another node closes it and it keeps its run only
//! if it comes back in time.

mod common;

use std::sync::atomic::Ordering;

use common::*;
use rpa_core::auth::supplier_proof;
use rpa_core::error::Error;
use rpa_core::job::FinishStatus;
use rpa_core::model::*;
use rpa_core::transport::Command;
use rpa_core::{Engine, MemoryStore};
use serde_json::json;

/// The heartbeat every robot sends (seed 001: a few seconds).
const BEAT_MS: u64 = 5_000;

fn commits(e: &Engine<MemoryStore>) -> u64 {
    e.metrics().commits.load(Ordering::Relaxed)
}

#[test]
fn heartbeats_of_a_robot_kept_by_its_node_write_nothing_while_nothing_changes() {
    let mut w = World::new();
    let p = w.process(|_| {});
    let a = w.socket("a");
    w.tick(); // the first tick's own work
    let idle = w.robot(&a);
    let before = commits(&w.engine);
    for _ in 0..60 {
        w.advance(BEAT_MS);
        w.beat(&a, None);
        assert_eq!(w.tick().robots_timed_out, 0);
    }
    assert_eq!(
        commits(&w.engine),
        before,
        "five minutes of heartbeats, nothing written"
    );
    assert_eq!(w.robot(&a).version, idle.version);
    assert_eq!(w.engine.metrics().heartbeats.get(&["quiet"]), 60);
    assert!(
        block(w.engine.robots()).unwrap()[0].last_seen > idle.last_seen,
        "the node that hears it shows when"
    );

    // A job: the assignment is written; its heartbeats naming it are not.
    let j = w.start(&p, json!({}));
    assert_eq!(w.executes(&a).len(), 1);
    let busy = w.robot(&a);
    assert_eq!(busy.state, RobotState::Busy);
    for _ in 0..20 {
        w.advance(BEAT_MS);
        w.beat(&a, Some(j.key));
        w.tick();
    }
    assert_eq!(w.robot(&a).version, busy.version, "running it changes nothing");
    w.finish(&a, &j, FinishStatus::Success).unwrap();
    assert_eq!(w.job(&j).attempt, 1);
    assert_eq!(w.robot(&a).state, RobotState::Available);
    w.audit_ok();
}

#[test]
fn a_silent_robot_kept_by_its_node_is_timed_out_within_a_window() {
    let mut w = World::new();
    let p = w.process(|_| {});
    let a = w.socket("a");
    let j = w.start(&p, json!({}));
    assert_eq!(w.executes(&a).len(), 1);
    w.advance(BEAT_MS);
    w.beat(&a, Some(j.key));
    let window = w.engine.config().heartbeat_timeout_ms + w.engine.config().heartbeat_slack_ms;
    w.advance(window - 1);
    assert_eq!(w.tick().robots_timed_out, 0, "heard a window ago less a millisecond");
    assert_eq!(w.job(&j).state, JobState::Running);
    // Its node looks at least every second.
    w.advance(rpa_core::engine::SWEEP_MAX_MS);
    assert_eq!(w.tick().robots_timed_out, 1, "silent a whole window");
    assert_eq!(w.robot(&a).state, RobotState::Unresponsive);
    let j = w.job(&j);
    assert_eq!(
        (j.state, j.attempt),
        (JobState::Pending, 2),
        "its job waits for another robot"
    );

    // Heard again: back (written once), and given its job's next attempt.
    let answer = w.beat(&a, None);
    assert_eq!(
        w.engine.metrics().heartbeats.get(&["written"]),
        2,
        "its first heartbeat after registering, and this one"
    );
    assert_eq!(w.robot(&a).job, Some(j.id));
    assert!(
        answer
            .iter()
            .any(|c| matches!(c, Command::Execute(e) if e.attempt == 2))
    );
}

#[test]
fn a_second_connection_elsewhere_is_refused_while_the_node_holding_the_robot_lives() {
    let w = World::new();
    let other = w.node(2);
    assert!(w.tick().leader);
    block(other.tick()).unwrap();
    let a = socket_on(&other, "a");
    for _ in 0..12 {
        w.advance(BEAT_MS);
        block(other.heartbeat("a", a.connect, None)).unwrap();
        block(other.tick()).unwrap();
        assert_eq!(w.tick().robots_timed_out, 0, "the timer holder leaves it to its node");
    }
    let proof = supplier_proof(SECRET, "a");
    let again = block(w.engine.register_socket("a", "acme", &proof, Some("1.0"), &[]));
    assert!(matches!(again, Err(Error::DuplicateConnection)));
    assert_eq!(w.robot(&a).node, Some(2));
}

#[test]
fn the_robots_of_a_node_that_is_gone_keep_their_runs_only_if_they_come_back_in_time() {
    let mut w = World::new();
    let p = w.process(|s| s.max_run_num = 2);
    let other = w.node(2);
    assert!(w.tick().leader);
    block(other.tick()).unwrap();
    let a = socket_on(&other, "a");
    let b = socket_on(&other, "b");
    let ja = w.start(&p, json!({}));
    let jb = w.start(&p, json!({}));
    // Started on this node, they wait for node 2, which keeps the robots and
    // dispatches when it hears of them (on PostgreSQL, the store's doorbell).
    assert_eq!(block(other.dispatch_all()).unwrap(), 2);
    let held = |bot: &Bot| w.robot(bot).job.expect("given a job");
    assert_ne!(held(&a), held(&b));
    let (ka, kb) = if held(&a) == ja.id {
        (ja.key, jb.key)
    } else {
        (jb.key, ja.key)
    };
    block(other.heartbeat("a", a.connect, Some(ka))).unwrap();
    block(other.heartbeat("b", b.connect, Some(kb))).unwrap();

    // Node 2 dies: no more ticks, no more heartbeats reach anyone.
    let lease = w.engine.node_lease_ms();
    let mut closed = 0;
    // The timer holder looks every half lease.
    for _ in 0..(lease * 3 / 2 / 1_000 + 1) {
        w.advance(1_000);
        closed += w.tick().robots_timed_out;
    }
    assert_eq!(closed, 2, "both closed once node 2's lease ran out");
    for bot in [&a, &b] {
        let r = w.robot(bot);
        assert_eq!((r.state, r.node), (RobotState::Disconnected, None));
        assert!(r.job.is_some(), "each keeps its job for now");
    }

    // a comes back on this node and still runs its job: it keeps it.
    let a2 = w.register("a");
    w.beat(&a2, Some(ka));
    let window = w.engine.config().heartbeat_timeout_ms;
    for _ in 0..window / 1_000 {
        w.advance(1_000);
        w.beat(&a2, Some(ka));
        w.tick();
    }
    let ja = block(w.engine.job(ka)).unwrap();
    assert_eq!((ja.state, ja.attempt), (JobState::Running, 1), "a kept its run");
    // b never came back: its job was tried again.
    let jb = block(w.engine.job(kb)).unwrap();
    assert_eq!(jb.attempt, 2, "b's run was lost and tried again");
    assert_eq!(w.robot(&b).job, None);
    w.audit_ok();
}

#[test]
fn a_node_that_starts_closes_the_robots_an_earlier_process_under_its_number_left() {
    let mut w = World::new();
    let p = w.process(|_| {});
    let first = w.node(7);
    block(first.tick()).unwrap();
    let a = socket_on(&first, "a");
    let j = w.start(&p, json!({}));
    assert_eq!(block(first.dispatch_all()).unwrap(), 1, "node 7 keeps the robot");
    assert_eq!(w.robot(&a).job, Some(j.id));
    drop(first);

    w.advance(2_000);
    let restarted = w.node(7);
    let report = block(restarted.tick()).unwrap();
    assert_eq!(report.robots_timed_out, 1, "its socket died with the earlier process");
    let r = w.robot(&a);
    assert_eq!((r.state, r.job), (RobotState::Disconnected, Some(j.id)));
    // Back on the restarted node in time, still running it: it keeps its run.
    let proof = supplier_proof(SECRET, "a");
    let again = block(restarted.register_socket("a", "acme", &proof, Some("1.0"), &[])).unwrap();
    block(restarted.heartbeat("a", again.connect, Some(j.key))).unwrap();
    assert_eq!(w.robot(&a).state, RobotState::Busy);
    assert_eq!(w.job(&j).attempt, 1);
}

#[test]
fn the_timer_lease_outlasts_a_slow_tick_but_not_a_stuck_one() {
    let w = World::new();
    let lease_ms = w.engine.config().timer_lease_ms;
    let (a, b) = (w.node(1), w.node(2));
    assert!(block(a.tick()).unwrap().leader, "the first tick takes the timer lease");
    assert!(!block(b.tick()).unwrap().leader);

    // Node 1's next tick is still running: its keeper renews the lease
    // while that tick made progress less than half a lease ago.
    w.advance(lease_ms * 4 / 10);
    assert!(block(a.keep_timer_lease()).unwrap());
    w.advance(lease_ms * 7 / 10);
    assert!(
        !block(b.tick()).unwrap().leader,
        "past the first lease's end, node 1 still fires the timers"
    );

    // The tick shows no progress for more than half a lease: the lease is
    // not renewed again, runs out, and node 2 takes it.
    assert!(block(a.keep_timer_lease()).unwrap(), "held until it runs out");
    w.advance(lease_ms / 2);
    assert!(!block(a.keep_timer_lease()).unwrap(), "run out, not renewed");
    assert!(block(b.tick()).unwrap().leader, "another node fires the timers");
    assert!(!block(a.tick()).unwrap().leader, "and keeps them");
}
