//! Crash safety with real processes, under a load of job starts and robot
//! finishes (6,000 of each) from HTTP clients and robots:
//!
//! - SQLite: the example server is killed with SIGKILL mid-load, then
//!   restarted on the same file.
//! - PostgreSQL: two server processes on one database share the clients and
//!   robots; one is killed with SIGKILL mid-load and not restarted. Its
//!   clients and robots move to the other node (a robot keeps its connect
//!   id: the cluster shares it), which takes over the timer lease and fails
//!   over the jobs the dead node's robots were running.
//!
//! Either way: every start acknowledged is there once, every job ends, the
//! robots (which count what they execute; `support::robots`) executed every
//! job exactly once, the audit chain verifies, every ended job is exactly
//! one domain event, and the servers' `--events-file` consumer (killed with
//! its server, resumed from its cursor) wrote every event, none skipped.

use std::collections::HashSet;
use std::net::TcpListener;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use serde_json::json;
use tokio::sync::Mutex;

mod support;

use support::robots::{Nodes, Tally, business_client, http_robot};
use support::{all_events, assert_events_file_complete, events_in_file, get_json, login, post, start_server};

const CONFIG: &str = r#"{
  "admin": { "name": "admin", "password": "admin-pw" },
  "processes": [ { "name": "P", "type": "Unattended", "maxRunNum": 0, "maxRetries": 5 } ],
  "users": [ { "name": "alice", "password": "pw", "processes": ["P"] } ],
  "vendors": [ { "supplierCode": "acme", "secret": "acme-secret" } ]
}"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_server_killed_mid_load_loses_nothing_it_acknowledged() {
    let dir = std::env::temp_dir().join(format!("rpa-crash-{}", std::process::id()));
    let db = dir.join("rpa.db").display().to_string();
    crash_mid_load(&dir, &db, 1).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_one_of_two_nodes_killed_mid_load_the_other_finishes_the_work() {
    let Some(url) = support::postgres_url() else { return };
    let db = support::fresh_postgres(&url, "crash").await;
    let dir = std::env::temp_dir().join(format!("rpa-crash-pg-{}", std::process::id()));
    crash_mid_load(&dir, &db, 2).await;
}

/// Starts `count` servers on `db`, puts the load on them, kills the first
/// mid-load (and, alone, restarts it), then checks what the survivors hold.
async fn crash_mid_load(dir: &Path, db: &str, count: usize) {
    let _ = std::fs::remove_dir_all(dir);
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(dir.join("config.json"), CONFIG).unwrap();
    let http = reqwest::Client::new();
    let mut servers = Vec::new();
    let mut bases = Vec::new();
    let events_file = dir.join("events.jsonl");
    let events_arg = events_file.display().to_string();
    let extra = ["--events-file", events_arg.as_str()];
    for _ in 0..count {
        // One after the other: the first creates the schema, the secret key and the configuration.
        let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let base = format!("http://127.0.0.1:{port}");
        servers.push((start_server(dir, db, port, &extra), port));
        login(&http, &base, "alice", "pw").await;
        bases.push(base);
    }
    let nodes = |i: usize| Nodes {
        bases: bases.clone(),
        at: i,
    };
    let base = bases.last().unwrap().clone();
    let (token, process) = login(&http, &base, "alice", "pw").await;

    let stop = Arc::new(AtomicBool::new(false));
    let tally = Arc::new(Tally::default());
    let robots: Vec<_> = (0..4)
        .map(|i| tokio::spawn(http_robot(nodes(i), format!("r{i}"), stop.clone(), tally.clone())))
        .collect();

    // Clients start jobs; an acknowledged start is one answered success.
    const TOTAL: usize = 6000;
    let acked = Arc::new(Mutex::new(Vec::<String>::new()));
    let clients: Vec<_> = (0..8)
        .map(|i| {
            let client = business_client(
                nodes(i),
                token.clone(),
                process.clone(),
                TOTAL,
                acked.clone(),
                stop.clone(),
            );
            tokio::spawn(client)
        })
        .collect();

    // Kill the server in the middle of the load, then bring it back on the same file.
    let deadline = Instant::now() + Duration::from_secs(120);
    while acked.lock().await.len() < TOTAL / 2 {
        assert!(Instant::now() < deadline, "load too slow before the crash");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let (mut victim, port) = servers.remove(0);
    victim.kill().unwrap(); // SIGKILL
    victim.wait().unwrap();
    let at_crash = acked.lock().await.len();
    if servers.is_empty() {
        tokio::time::sleep(Duration::from_millis(500)).await;
        servers.push((start_server(dir, db, port, &extra), port));
    }
    for c in clients {
        c.await.unwrap();
    }
    let acked: Vec<String> = acked.lock().await.clone();
    assert!(acked.len() >= TOTAL && at_crash < TOTAL);

    // Every acknowledged job exists once and reaches its end.
    let unique: HashSet<&String> = acked.iter().collect();
    assert_eq!(unique.len(), acked.len(), "a jobId was handed out twice");
    let deadline = Instant::now() + Duration::from_secs(180);
    let (total, successful) = loop {
        let q = post(
            &http,
            format!("{base}/rpa/api/queryProcessJob"),
            &[("X-Access-Token", &token)],
            json!({"processId": process}),
        )
        .await
        .unwrap()
        .1;
        let ok = post(
            &http,
            format!("{base}/rpa/api/queryProcessJob"),
            &[("X-Access-Token", &token)],
            json!({"processId": process, "state": "Successful"}),
        )
        .await
        .unwrap()
        .1;
        let (total, done) = (
            q["result"]["total"].as_u64().unwrap(),
            ok["result"]["total"].as_u64().unwrap(),
        );
        if done == total {
            break (total, done);
        }
        assert!(
            Instant::now() < deadline,
            "{done} of {total} jobs ended; see {}",
            dir.display()
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    stop.store(true, Ordering::Relaxed);
    for r in robots {
        r.await.unwrap();
    }
    // Starts that were committed but whose answer was lost in the crash may
    // add a few jobs; none is missing and none is there twice.
    assert!(
        total as usize >= acked.len() && total as usize <= acked.len() + 8,
        "{total} jobs for {} acknowledged starts",
        acked.len()
    );
    let records = post(
        &http,
        format!("{base}/rpa/api/queryProcessJob"),
        &[("X-Access-Token", &token)],
        json!({"processId": process}),
    )
    .await
    .unwrap()
    .1;
    let listed: HashSet<&str> = records["result"]["record"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["jobId"].as_str().unwrap())
        .collect();
    assert_eq!(listed.len() as u64, total, "no job listed twice");
    assert!(
        acked.iter().all(|j| listed.contains(j.as_str())),
        "an acknowledged job is missing"
    );
    // The robots executed every job, and none twice (no robot died).
    let executions = tally.executions.lock().unwrap().clone();
    let twice: Vec<_> = executions.iter().filter(|(_, n)| **n > 1).collect();
    assert!(twice.is_empty(), "runs executed more than once: {twice:?}");
    assert_eq!(executions.len() as u64, successful, "every Successful job was executed");
    assert!(executions.keys().all(|r| listed.contains(r.as_str())));

    let (admin, _) = login(&http, &base, "admin", "admin-pw").await;
    let v = get_json(&http, format!("{base}/admin/audit/verify"), &admin).await;
    assert!(
        v["result"]["verified"].as_u64().unwrap_or(0) > 3 * TOTAL as u64,
        "audit chain verifies after the crash: {v}"
    );

    // Every job ended is one event, and the consumer caught up with them all.
    let held = all_events(&http, &base, &admin).await;
    let mut ended: Vec<&str> = held
        .iter()
        .filter(|e| e["type"] == "job_ended")
        .map(|e| e["key"].as_str().unwrap())
        .collect();
    ended.sort_unstable();
    let n = ended.len();
    ended.dedup();
    assert_eq!(
        (n, ended.len()),
        (total as usize, total as usize),
        "one job_ended event per job"
    );
    let last = held.last().unwrap()["seq"].as_u64().unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while events_in_file(&events_file).last().and_then(|e| e["seq"].as_u64()) < Some(last) {
        assert!(Instant::now() < deadline, "the events file did not catch up");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_events_file_complete(&held, &events_in_file(&events_file));
    for (mut s, _) in servers {
        s.kill().unwrap();
        s.wait().unwrap();
    }
}
