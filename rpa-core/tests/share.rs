//! Nodes of one cluster take the jobs of their own share first (memory
//! store, manual clock, several engines on one store): two nodes filling
//! robots at once take different jobs, a node alone keeps the strict order,
//! and a job whose node has no robot for it is still run, behind few
//! later ones.

mod common;

use common::*;
use rpa_core::job::FinishStatus;
use rpa_core::model::*;
use rpa_core::share::Share;
use rpa_core::store::JobStore;
use rpa_core::{Engine, MemoryStore};
use serde_json::json;

/// The job `bot` runs now.
fn running(w: &World, bot: &Bot) -> Option<Job> {
    let robot = w.robot(bot);
    let id = robot.job?;
    block(w.engine.store().job(id)).unwrap()
}

/// Nodes 1 and 2, each having read the other's lease.
fn two_nodes(w: &World) -> (Engine<MemoryStore>, Engine<MemoryStore>) {
    let (one, two) = (w.node(1), w.node(2));
    for _ in 0..2 {
        block(one.keep_node_lease()).unwrap();
        block(two.keep_node_lease()).unwrap();
    }
    (one, two)
}

#[test]
fn nodes_read_their_share_from_the_live_leases() {
    let w = World::new();
    let (one, two) = two_nodes(&w);
    assert_eq!(one.share(), Share { rank: 0, nodes: 2 });
    assert_eq!(two.share(), Share { rank: 1, nodes: 2 });
    // Node 2 is gone: once its lease runs out, node 1 is alone again.
    w.advance(one.node_lease_ms() + 1);
    block(one.keep_node_lease()).unwrap();
    assert_eq!(one.share(), Share::ALONE);
}

#[test]
fn two_nodes_filling_robots_at_once_take_different_jobs() {
    let mut w = World::new();
    let p = w.process(|s| s.max_run_num = 0);
    let jobs: Vec<Job> = (0..6).map(|_| w.start(&p, json!({}))).collect();
    let (one, two) = two_nodes(&w);
    // Both robots come at once: each node takes the best job of its share,
    // which is one of the two best jobs, not the same one.
    let a = socket_on(&one, "a");
    let b = socket_on(&two, "b");
    let (ja, jb) = (running(&w, &a).unwrap(), running(&w, &b).unwrap());
    assert_ne!(ja.id, jb.id);
    assert!(one.share().owns(ja.id) && two.share().owns(jb.id));
    let best_two = [jobs[0].id, jobs[1].id];
    assert!(best_two.contains(&ja.id) && best_two.contains(&jb.id), "{ja:?} {jb:?}");
}

#[test]
fn a_node_alone_runs_jobs_in_order() {
    let mut w = World::new();
    let p = w.process(|s| s.max_run_num = 0);
    let jobs: Vec<Job> = (0..6).map(|_| w.start(&p, json!({}))).collect();
    let one = w.node(1);
    block(one.keep_node_lease()).unwrap();
    assert_eq!(one.share(), Share::ALONE);
    let a = socket_on(&one, "a");
    let mut order = Vec::new();
    while let Some(j) = running(&w, &a) {
        order.push(j.id);
        block(one.report_finish(&a.code, a.connect, j.key, FinishStatus::Success, None, None)).unwrap();
    }
    assert_eq!(order, jobs.iter().map(|j| j.id).collect::<Vec<_>>());
}

#[test]
fn jobs_of_a_node_without_robots_run_behind_few_later_ones() {
    let mut w = World::new();
    let p = w.process(|s| s.max_run_num = 0);
    let jobs: Vec<Job> = (0..40).map(|_| w.start(&p, json!({}))).collect();
    // Node 2 lives but has no robot: node 1's robot runs every job.
    let (one, two) = two_nodes(&w);
    let a = socket_on(&one, "a");
    let mut order = Vec::new();
    while let Some(j) = running(&w, &a) {
        order.push(j.id);
        block(one.report_finish(&a.code, a.connect, j.key, FinishStatus::Success, None, None)).unwrap();
    }
    let mut sorted = order.clone();
    sorted.sort();
    assert_eq!(
        sorted,
        jobs.iter().map(|j| j.id).collect::<Vec<_>>(),
        "each job ran once"
    );
    // A job of node 2's share started behind at most one later job.
    for (at, id) in order.iter().enumerate() {
        let overtaken_by = order[..at].iter().filter(|earlier| *earlier > id).count();
        assert!(
            overtaken_by <= 1,
            "job {id:?} ran after {overtaken_by} later ones: {order:?}"
        );
        if overtaken_by == 1 {
            assert!(two.share().owns(*id), "only node 2's jobs wait");
        }
    }
    assert_ne!(order, sorted, "node 1 took its own share first");
    w.audit_ok();
}

#[test]
fn a_node_gives_jobs_only_to_robots_whose_socket_it_holds() {
    let mut w = World::new();
    let p = w.process(|s| s.max_run_num = 0);
    let (one, two) = two_nodes(&w);
    let a = socket_on(&one, "a");
    let b = socket_on(&two, "b");
    let c = socket_on(&two, "c");
    // Robot a is first in line, but node 2 holds b's socket.
    let j = block(two.start_job(&w.user, p.key, &json!({}))).unwrap();
    assert_eq!(running(&w, &b).map(|r| r.id), Some(j.id));
    let k = block(one.start_job(&w.user, p.key, &json!({}))).unwrap();
    assert_eq!(running(&w, &a).map(|r| r.id), Some(k.id));
    // Node 1 has no idle robot left: the job waits for node 2, which
    // dispatches when it hears of it (its tick, or the store's doorbell).
    let l = block(one.start_job(&w.user, p.key, &json!({}))).unwrap();
    assert!(running(&w, &c).is_none());
    assert_eq!(block(two.dispatch_all()).unwrap(), 1);
    assert_eq!(running(&w, &c).map(|r| r.id), Some(l.id));
}

#[test]
fn a_job_is_left_to_its_node_while_that_node_keeps_an_idle_robot_for_it() {
    let mut w = World::new();
    let p = w.process(|s| s.max_run_num = 0);
    let (one, two) = two_nodes(&w);
    let a = socket_on(&one, "a");
    let b = socket_on(&two, "b");
    let c = socket_on(&two, "c");
    let d = socket_on(&two, "d");
    // Started where no robot is kept: each waits for a node's dispatch.
    let (j, k) = (w.start(&p, json!({})), w.start(&p, json!({})));
    let (of_one, of_two) = if one.share().owns(j.id) { (j, k) } else { (k, j) };
    // Node 2 takes its own job and leaves node 1's to node 1, whose robot
    // a is idle (both would reach for it otherwise, and one be refused).
    assert_eq!(block(two.dispatch_all()).unwrap(), 1);
    assert_eq!(running(&w, &b).map(|r| r.id), Some(of_two.id));
    assert_eq!(block(one.dispatch_all()).unwrap(), 1);
    assert_eq!(running(&w, &a).map(|r| r.id), Some(of_one.id));
    // Node 1 has no idle robot now: node 2 takes its jobs at once.
    let (m, n) = (w.start(&p, json!({})), w.start(&p, json!({})));
    assert_eq!(block(two.dispatch_all()).unwrap(), 2);
    let taken: Vec<_> = [&c, &d].iter().filter_map(|r| running(&w, r).map(|j| j.id)).collect();
    assert!(taken.contains(&m.id) && taken.contains(&n.id), "{taken:?}");
}
