//! Cluster correctness with real processes: two or four example servers on
//! one PostgreSQL database; business clients start jobs on one node while
//! HTTP and WebSocket robots talk (mostly) to the others; in some runs nodes are
//! killed with SIGKILL mid-load (the one firing the timers, and one that
//! does not). Every robot counts the runs it executes.
//!
//! Whatever happens: every acknowledged job ends Successful, every run is
//! executed exactly once (no robot dies here, so nothing may run twice), no
//! robot is told that a run it holds is not its own, and the audit chain
//! verifies. The robots behave as DESIGN §7 and the README ask executors
//! to: an HTTP robot keeps its `robotConnectId` and heart-beats another node
//! when its node stops answering, and reports a finish again there if the
//! answer was lost; a WebSocket robot registers again on another node with
//! the same id and reports again the finish it sent on the lost connection.
//!
//! Each run prints what it measured (`cluster:` lines): the time from a
//! node's death until its robots work again and until its timers run on a
//! survivor.

use std::collections::HashSet;
use std::net::TcpListener;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use serde_json::json;
use sqlx::Connection;
use tokio::sync::Mutex;

mod support;

use support::robots::{Nodes, Tally, business_client, http_robot, ws_robot};
use support::{Proc, get_json, login, post, start_server};

const CONFIG: &str = r#"{
  "admin": { "name": "admin", "password": "admin-pw" },
  "processes": [ { "name": "P", "type": "Unattended", "maxRunNum": 0, "maxRetries": 5 } ],
  "users": [ { "name": "alice", "password": "pw", "processes": ["P"] } ],
  "vendors": [ { "supplierCode": "acme", "secret": "acme-secret" } ]
}"#;

/// Jobs per run (`RPA_CLUSTER_JOBS` overrides).
fn total_jobs() -> usize {
    std::env::var("RPA_CLUSTER_JOBS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3000)
}

/// Which nodes a run kills mid-load.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Kill {
    None,
    /// The node that fires the timers.
    TimerHolder,
    /// A node that does not fire them.
    Other,
    /// The timer holder and one other node.
    HolderAndOther,
}

async fn timer_holder(db: &str) -> Option<u64> {
    let mut c = sqlx::PgConnection::connect(db).await.ok()?;
    let row: Option<(i64,)> = sqlx::query_as("SELECT holder FROM rpa_leases WHERE name = 'timers'")
        .fetch_optional(&mut c)
        .await
        .ok()?;
    row.map(|(h,)| h as u64)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_two_nodes_jobs_started_on_one_robots_on_the_other_none_runs_twice() {
    cluster(2, Kill::None, "cl2").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_two_nodes_the_timer_holder_killed_none_lost_none_twice() {
    cluster(2, Kill::TimerHolder, "cl2h").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_two_nodes_a_node_without_the_timers_killed_none_lost_none_twice() {
    cluster(2, Kill::Other, "cl2o").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_four_nodes_two_killed_none_lost_none_twice() {
    cluster(4, Kill::HolderAndOther, "cl4").await;
}

async fn cluster(count: usize, kill: Kill, tag: &str) {
    let Some(url) = support::postgres_url() else { return };
    let db = support::fresh_postgres(&url, tag).await;
    let dir = std::env::temp_dir().join(format!("rpa-cluster-{tag}-{}", std::process::id()));
    run(&dir, &db, count, kill).await;
    support::drop_postgres(&url, tag).await;
    let _ = std::fs::remove_dir_all(&dir);
}

async fn run(dir: &Path, db: &str, count: usize, kill: Kill) {
    let _ = std::fs::remove_dir_all(dir);
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(dir.join("config.json"), CONFIG).unwrap();
    let http = reqwest::Client::new();
    let mut servers = Vec::new();
    let mut bases = Vec::new();
    for i in 0..count {
        // One after the other: the first creates the schema, the secret key and the configuration.
        let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let base = format!("http://127.0.0.1:{port}");
        let node = (i + 1).to_string();
        let child = start_server(dir, db, port, &["--heartbeat-timeout", "5", "--node", &node]);
        servers.push(Some(Proc(child)));
        login(&http, &base, "alice", "pw").await;
        bases.push(base);
    }
    let nodes = |i: usize| Nodes {
        bases: bases.clone(),
        at: i,
    };
    let (token, process) = login(&http, &bases[0], "alice", "pw").await;

    // Robots on every node but the first, where the clients start the jobs.
    let stop = Arc::new(AtomicBool::new(false));
    let tally = Arc::new(Tally::default());
    // The last of each kind on the first node too.
    let robot_node = |i: usize, of: usize| if i + 1 == of { 0 } else { 1 + i % (count - 1) };
    let mut robots = Vec::new();
    let mut robot_nodes = Vec::new();
    for i in 0..8 {
        let f = http_robot(nodes(robot_node(i, 8)), format!("h{i}"), stop.clone(), tally.clone());
        robots.push(tokio::spawn(f));
        robot_nodes.push(robot_node(i, 8));
    }
    for i in 0..4 {
        let f = ws_robot(nodes(robot_node(i, 4)), format!("w{i}"), stop.clone(), tally.clone());
        robots.push(tokio::spawn(f));
        robot_nodes.push(robot_node(i, 4));
    }

    let total = total_jobs();
    let acked = Arc::new(Mutex::new(Vec::<String>::new()));
    let clients: Vec<_> = (0..8)
        .map(|_| {
            let client = business_client(
                nodes(0),
                token.clone(),
                process.clone(),
                total,
                acked.clone(),
                stop.clone(),
            );
            tokio::spawn(client)
        })
        .collect();

    // The kill, a third of the way in.
    let started = Instant::now();
    let mut killed = Vec::new();
    if kill != Kill::None {
        let deadline = Instant::now() + Duration::from_secs(180);
        while acked.lock().await.len() < total / 3 {
            assert!(Instant::now() < deadline, "load too slow before the kill");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let holder = timer_holder(db).await.expect("a node holds the timers") as usize - 1;
        // Not the first node unless it holds the timers: the clients stay put.
        let other = (1..count).rev().find(|&i| i != holder).unwrap_or(0);
        killed = match kill {
            Kill::TimerHolder => vec![holder],
            Kill::Other => vec![other],
            Kill::HolderAndOther => vec![holder, other],
            Kill::None => vec![],
        };
        for &k in &killed {
            drop(servers[k].take()); // SIGKILL
        }
        *tally.killed_at.lock().unwrap() = Some(Instant::now());
        eprintln!("cluster: {count} nodes, killed {killed:?} (timer holder {holder})");
        // Until the timers run on a survivor.
        let at = Instant::now();
        let deadline = at + Duration::from_secs(60);
        loop {
            let h = timer_holder(db).await.map(|h| h as usize - 1);
            if h.is_some_and(|h| !killed.contains(&h)) {
                eprintln!("cluster: timers on node {} after {:?}", h.unwrap() + 1, at.elapsed());
                break;
            }
            assert!(Instant::now() < deadline, "no survivor took the timers");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    for c in clients {
        c.await.unwrap();
    }
    let acked: Vec<String> = acked.lock().await.clone();
    assert!(acked.len() >= total);
    let unique: HashSet<&String> = acked.iter().collect();
    assert_eq!(unique.len(), acked.len(), "a jobId was handed out twice");

    // Every job ends.
    let base = bases
        .iter()
        .enumerate()
        .find(|(i, _)| !killed.contains(i))
        .unwrap()
        .1
        .clone();
    let (token, process) = login(&http, &base, "alice", "pw").await;
    let query = async |state: Option<&str>| {
        let mut body = json!({"processId": process});
        if let Some(s) = state {
            body["state"] = json!(s);
        }
        let h = [("X-Access-Token", token.as_str())];
        post(&http, format!("{base}/rpa/api/queryProcessJob"), &h, body)
            .await
            .unwrap()
            .1
    };
    let deadline = Instant::now() + Duration::from_secs(180);
    let (jobs, successful) = loop {
        let (all, ok) = (query(None).await, query(Some("Successful")).await);
        let (jobs, done) = (
            all["result"]["total"].as_u64().unwrap(),
            ok["result"]["total"].as_u64().unwrap(),
        );
        if done == jobs {
            break (jobs, done);
        }
        assert!(
            Instant::now() < deadline,
            "{done} of {jobs} jobs ended; see {}",
            dir.display()
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    let elapsed = started.elapsed();
    stop.store(true, Ordering::Relaxed);
    for r in robots {
        r.await.unwrap();
    }

    // Starts committed whose answer died with a node may add a few jobs.
    assert!(
        jobs as usize >= acked.len() && jobs as usize <= acked.len() + 8,
        "{jobs} jobs for {} acknowledged starts",
        acked.len()
    );
    let records = query(None).await;
    let listed: HashSet<String> = records["result"]["record"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["jobId"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(listed.len() as u64, jobs, "no job listed twice");
    assert!(
        acked.iter().all(|j| listed.contains(j)),
        "an acknowledged job is missing"
    );

    // Executed: every job once, and none twice.
    let executions = tally.executions.lock().unwrap().clone();
    let twice: Vec<_> = executions.iter().filter(|(_, n)| **n > 1).collect();
    let never: Vec<_> = listed.iter().filter(|j| !executions.contains_key(*j)).collect();
    eprintln!(
        "cluster: {count} nodes, kill {kill:?}: {jobs} jobs ({successful} successful) in {elapsed:?}; \
         executed {} runs, twice {}, never {}; robots back after {:?}; longest silence of a robot {:?}",
        executions.len(),
        twice.len(),
        never.len(),
        tally.back.lock().unwrap(),
        tally.longest_silence(),
    );
    assert!(twice.is_empty(), "runs executed more than once: {twice:?}");
    assert!(never.is_empty(), "Successful jobs no robot executed: {never:?}");
    assert!(
        executions.keys().all(|r| listed.contains(r)),
        "a robot executed a run that is no job"
    );
    let refused = tally.refused.lock().unwrap().clone();
    assert!(refused.is_empty(), "robots were refused their own runs: {refused:?}");
    let moved = robot_nodes.iter().filter(|n| killed.contains(n)).count();
    assert!(
        tally.back.lock().unwrap().len() >= moved,
        "the {moved} robots of the killed nodes work again elsewhere"
    );

    let (admin, _) = login(&http, &base, "admin", "admin-pw").await;
    let v = get_json(&http, format!("{base}/admin/audit/verify"), &admin).await;
    assert!(
        v["result"]["verified"].as_u64().unwrap_or(0) > 3 * total as u64,
        "the audit chain verifies: {v}"
    );

    // The surviving nodes' audit integrators: what they linked into the
    // chain and how long the events waited.
    let (mut integrated, mut steps, mut waited) = (0.0, 0.0, 0.0);
    for (i, b) in bases.iter().enumerate() {
        if killed.contains(&i) {
            continue;
        }
        let page = support::get_text(&http, format!("{b}/metrics")).await;
        let sample = |series: &str| support::metric(&page, series).unwrap_or(0.0);
        integrated += sample("rpa_audit_integrated_total");
        steps += sample("rpa_audit_integration_seconds_count");
        waited += sample("rpa_audit_integration_seconds_sum");
        assert!(
            sample("rpa_audit_unintegrated_oldest_seconds") < 60.0,
            "committed events left waiting: {page}"
        );
    }
    eprintln!(
        "cluster: audit integrators on the survivors: {integrated} events in {steps} steps, mean longest wait {:.1} ms",
        1000.0 * waited / steps.max(1.0)
    );
    if kill == Kill::None {
        assert!(integrated > 0.0, "an integrator ran during the load");
    }
    drop(servers);
}
