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
//! Either way: every start acknowledged is there once, every job ends, and
//! the audit chain verifies.

use std::collections::HashSet;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use rpa::core::auth::supplier_proof;
use serde_json::{Value, json};
use tokio::sync::Mutex;

mod support;

const CONFIG: &str = r#"{
  "admin": { "name": "admin", "password": "admin-pw" },
  "processes": [ { "name": "P", "type": "Unattended", "maxRunNum": 0, "maxRetries": 5 } ],
  "users": [ { "name": "alice", "password": "pw", "processes": ["P"] } ],
  "vendors": [ { "supplierCode": "acme", "secret": "acme-secret" } ]
}"#;

fn server_binary() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    exe.parent().unwrap().parent().unwrap().join("examples").join("server")
}

fn start_server(dir: &Path, db: &str, port: u16) -> Child {
    Command::new(server_binary())
        .args(["--listen", &format!("127.0.0.1:{port}"), "--heartbeat-timeout", "2"])
        .args(["--db", db])
        .arg("--config")
        .arg(dir.join("config.json"))
        .arg("--files")
        .arg(dir.join("files"))
        .arg("--secret-key-file")
        .arg(dir.join("rpa.key"))
        .stdout(Stdio::from(
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(dir.join(format!("server-{port}.log")))
                .unwrap(),
        ))
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

async fn post(http: &reqwest::Client, url: String, headers: &[(&str, &str)], body: Value) -> Option<(u16, Value)> {
    let mut req = http.post(url).json(&body).timeout(Duration::from_secs(5));
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let r = req.send().await.ok()?;
    let status = r.status().as_u16();
    Some((status, r.json().await.ok()?))
}

async fn login(http: &reqwest::Client, base: &str, user: &str, pw: &str) -> (String, String) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some((_, v)) = post(
            http,
            format!("{base}/rpa/api/login"),
            &[],
            json!({"username": user, "password": pw}),
        )
        .await
            && v["code"] == 200
        {
            let p = v["result"]["processes"][0]["id"].as_str().unwrap_or("").to_owned();
            return (v["result"]["token"].as_str().unwrap().to_owned(), p);
        }
        assert!(Instant::now() < deadline, "the server did not come up");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The nodes a client or robot may talk to: the first it is given, the next when that one stops answering.
#[derive(Clone)]
struct Nodes {
    bases: Vec<String>,
    at: usize,
}

impl Nodes {
    fn base(&self) -> &str {
        &self.bases[self.at % self.bases.len()]
    }
    fn unreachable(&mut self) {
        self.at += 1;
    }
}

/// An HTTP robot that finishes whatever it is given, and re-registers when the server forgets it.
async fn robot(mut nodes: Nodes, id: String, stop: Arc<AtomicBool>, finished: Arc<AtomicUsize>) {
    let http = reqwest::Client::new();
    let mut connect: Option<String> = None;
    while !stop.load(Ordering::Relaxed) {
        let base = nodes.base().to_owned();
        let Some(c) = connect.clone() else {
            let proof = supplier_proof("acme-secret", &id);
            match post(
                &http,
                format!("{base}/robots/connect/register"),
                &[("robotId", &id)],
                json!({"supplierCode": "acme", "supplierSecret": proof}),
            )
            .await
            {
                Some((200, v)) => connect = v["resultValue"]["robotConnectId"].as_str().map(str::to_owned),
                Some(_) => tokio::time::sleep(Duration::from_millis(200)).await,
                None => {
                    nodes.unreachable();
                    tokio::time::sleep(Duration::from_millis(200)).await
                }
            }
            continue;
        };
        let h = [("robotId", id.as_str()), ("robotConnectId", c.as_str())];
        match post(&http, format!("{base}/robots/connect/heartbeat"), &h, json!({})).await {
            Some((200, v)) if v["resultValue"]["Action"] == "Execute" => {
                let run = v["resultValue"]["Body"]["runInstanceId"].as_str().unwrap().to_owned();
                let fin = post(
                    &http,
                    format!("{base}/robots/connect/reportFinish"),
                    &h,
                    json!({"runInstanceId": run, "status": 0}),
                )
                .await;
                if matches!(fin, Some((200, _))) {
                    finished.fetch_add(1, Ordering::Relaxed);
                }
            }
            Some((200, _)) => tokio::time::sleep(Duration::from_millis(20)).await,
            Some((401, _)) => connect = None,
            Some(_) => tokio::time::sleep(Duration::from_millis(100)).await,
            None => {
                nodes.unreachable();
                tokio::time::sleep(Duration::from_millis(100)).await
            }
        }
    }
}

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
    for _ in 0..count {
        // One after the other: the first creates the schema, the secret key and the configuration.
        let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let base = format!("http://127.0.0.1:{port}");
        servers.push((start_server(dir, db, port), port));
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
    let finished = Arc::new(AtomicUsize::new(0));
    let robots: Vec<_> = (0..4)
        .map(|i| tokio::spawn(robot(nodes(i), format!("r{i}"), stop.clone(), finished.clone())))
        .collect();

    // Clients start jobs; an acknowledged start is one answered success.
    const TOTAL: usize = 6000;
    let acked = Arc::new(Mutex::new(Vec::<String>::new()));
    let clients: Vec<_> = (0..8)
        .map(|i| {
            let (mut nodes, token, process, acked, stop) =
                (nodes(i), token.clone(), process.clone(), acked.clone(), stop.clone());
            tokio::spawn(async move {
                let http = reqwest::Client::new();
                while !stop.load(Ordering::Relaxed) && acked.lock().await.len() < TOTAL {
                    let h = [("X-Access-Token", token.as_str())];
                    let base = nodes.base();
                    match post(
                        &http,
                        format!("{base}/rpa/api/startJob"),
                        &h,
                        json!({"processId": process}),
                    )
                    .await
                    {
                        Some((200, v)) if v["success"] == true => acked
                            .lock()
                            .await
                            .push(v["result"]["jobId"].as_str().unwrap().to_owned()),
                        Some(_) => tokio::time::sleep(Duration::from_millis(50)).await,
                        None => {
                            nodes.unreachable();
                            tokio::time::sleep(Duration::from_millis(50)).await
                        }
                    }
                }
            })
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
        servers.push((start_server(dir, db, port), port));
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
    assert!(finished.load(Ordering::Relaxed) as u64 >= successful - 8);

    let (admin, _) = login(&http, &base, "admin", "admin-pw").await;
    let v: Value = http
        .get(format!("{base}/admin/audit/verify"))
        .header("X-Access-Token", &admin)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(
        v["result"]["verified"].as_u64().unwrap_or(0) > 3 * TOTAL as u64,
        "audit chain verifies after the crash: {v}"
    );
    for (mut s, _) in servers {
        s.kill().unwrap();
        s.wait().unwrap();
    }
}
