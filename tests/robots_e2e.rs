//! Real processes: the example server on an SQLite file, real robot
//! executors (examples/robot) over WebSocket and HTTP, driven through the
//! business API. Nothing is mocked.

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

fn example(name: &str) -> PathBuf {
    // target/<profile>/deps/<this test> -> target/<profile>/examples/<name>
    let exe = std::env::current_exe().unwrap();
    let dir = exe.parent().unwrap().parent().unwrap().join("examples").join(name);
    assert!(dir.exists(), "{} is built by `cargo test`", dir.display());
    dir
}

fn log(path: &std::path::Path) -> Stdio {
    Stdio::from(std::fs::File::create(path).unwrap())
}

struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

struct Cluster {
    base: String,
    dir: PathBuf,
    _server: Proc,
    http: reqwest::Client,
    token: String,
    admin: String,
}

const CONFIG: &str = r#"{
  "admin": { "name": "admin", "password": "admin-pw" },
  "processes": [
    { "name": "A", "type": "Unattended", "maxRunNum": 2, "maxRetries": 2,
      "arguments": [ { "name": "n", "type": "int", "required": true } ] },
    { "name": "B", "type": "Unattended", "maxRunNum": 1, "maxRetries": 2 }
  ],
  "users": [ { "name": "alice", "password": "pw", "processes": ["A", "B"] } ],
  "vendors": [ { "supplierCode": "acme", "secret": "acme-secret" } ]
}"#;

impl Cluster {
    async fn start(name: &str) -> Cluster {
        let dir = std::env::temp_dir().join(format!("rpa-e2e-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("config.json"), CONFIG).unwrap();
        let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let base = format!("http://127.0.0.1:{port}");
        let server = Command::new(example("server"))
            .args(["--listen", &format!("127.0.0.1:{port}"), "--heartbeat-timeout", "3"])
            .arg("--db")
            .arg(dir.join("rpa.db"))
            .arg("--config")
            .arg(dir.join("config.json"))
            .arg("--files")
            .arg(dir.join("files"))
            .arg("--secret-key-file")
            .arg(dir.join("rpa.key"))
            .stdout(log(&dir.join("server.log")))
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let http = reqwest::Client::new();
        let deadline = Instant::now() + Duration::from_secs(30);
        let login = loop {
            let r = http
                .post(format!("{base}/rpa/api/login"))
                .json(&json!({"username": "alice", "password": "pw"}))
                .send()
                .await;
            if let Ok(r) = r {
                break r.json::<Value>().await.unwrap();
            }
            assert!(Instant::now() < deadline, "server did not start");
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        let token = login["result"]["token"].as_str().unwrap().to_owned();
        let a: Value = http
            .post(format!("{base}/rpa/api/login"))
            .json(&json!({"username": "admin", "password": "admin-pw"}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let admin = a["result"]["token"].as_str().unwrap().to_owned();
        Cluster {
            base,
            dir,
            _server: Proc(server),
            http,
            token,
            admin,
        }
    }

    async fn biz(&self, path: &str, body: Value) -> Value {
        let v: Value = self
            .http
            .post(format!("{}{path}", self.base))
            .header("X-Access-Token", &self.token)
            .json(&body)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(v["code"], 200, "{path}: {v}");
        v["result"].clone()
    }

    async fn process(&self, name: &str) -> String {
        let v: Value = self
            .http
            .post(format!("{}/rpa/api/login", self.base))
            .json(&json!({"username": "alice", "password": "pw"}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        v["result"]["processes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["name"] == name)
            .unwrap()["id"]
            .as_str()
            .unwrap()
            .to_owned()
    }

    async fn package(&self, process: &str, script: &str) {
        let v: Value = self
            .http
            .post(format!("{}/admin/processes/{process}/package", self.base))
            .header("X-Access-Token", &self.admin)
            .body(script.to_owned())
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(v["code"], 200, "{v}");
    }

    fn robot(&self, id: &str, transport: &str) -> Proc {
        Proc(
            Command::new(example("robot"))
                .args([
                    "--server",
                    &self.base,
                    "--id",
                    id,
                    "--vendor",
                    "acme",
                    "--secret",
                    "acme-secret",
                    "--transport",
                    transport,
                    "--heartbeat",
                    "1",
                ])
                .arg("--work-dir")
                .arg(self.dir.join("work").join(id))
                .stdout(log(&self.dir.join(format!("{id}.log"))))
                .stderr(Stdio::null())
                .spawn()
                .unwrap(),
        )
    }

    async fn status(&self, job: &str) -> String {
        self.biz("/rpa/api/jobStatus", json!({"jobId": job})).await[0]["status"]
            .as_str()
            .unwrap()
            .to_owned()
    }

    async fn wait_status(&self, job: &str, want: &str, secs: u64) {
        let deadline = Instant::now() + Duration::from_secs(secs);
        loop {
            let s = self.status(job).await;
            if s == want {
                return;
            }
            assert!(Instant::now() < deadline, "job {job} is {s}, not {want}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn robot_of(&self, job: &str) -> Option<String> {
        let v: Value = self
            .http
            .get(format!("{}/admin/robots", self.base))
            .header("X-Access-Token", &self.admin)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        v["result"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["jobId"] == job)
            .map(|r| r["robotId"].as_str().unwrap().to_owned())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_jobs_on_three_robots_run_once_each_within_max_run_num() {
    let c = Cluster::start("many").await;
    let (a, b) = (c.process("A").await, c.process("B").await);
    c.package(&a, "echo \"n=$RPA_ARG_N\"\necho '::output {\"ok\": true}'\n")
        .await;
    c.package(&b, "echo b\n").await;
    let _robots = [c.robot("ws-1", "ws"), c.robot("ws-2", "ws"), c.robot("http-1", "http")];
    let mut jobs = Vec::new();
    for i in 0..1000 {
        let (p, params) = if i % 4 == 3 {
            (&b, json!({}))
        } else {
            (&a, json!({"n": i}))
        };
        jobs.push(
            c.biz("/rpa/api/startJob", json!({"processId": p, "params": params}))
                .await["jobId"]
                .as_str()
                .unwrap()
                .to_owned(),
        );
    }
    let deadline = Instant::now() + Duration::from_secs(240);
    loop {
        let qa = c.biz("/rpa/api/queryProcess", json!({"processId": a})).await;
        let qb = c.biz("/rpa/api/queryProcess", json!({"processId": b})).await;
        assert!(
            qa["currentRunNum"].as_i64().unwrap() <= 2,
            "maxRunNum of A exceeded: {qa}"
        );
        assert!(
            qb["currentRunNum"].as_i64().unwrap() <= 1,
            "maxRunNum of B exceeded: {qb}"
        );
        let done_a = c
            .biz(
                "/rpa/api/queryProcessJob",
                json!({"processId": a, "state": "Successful"}),
            )
            .await["total"]
            .as_i64()
            .unwrap();
        let done_b = c
            .biz(
                "/rpa/api/queryProcessJob",
                json!({"processId": b, "state": "Successful"}),
            )
            .await["total"]
            .as_i64()
            .unwrap();
        if done_a + done_b == 1000 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "only {done_a} + {done_b} of 1000 jobs succeeded; see {}",
            c.dir.display()
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    // Each job was dispatched exactly once (the audit log records every dispatch).
    let mut dispatches = std::collections::HashMap::<String, u32>::new();
    let mut after = 0;
    loop {
        let v: Value = c
            .http
            .get(format!("{}/admin/audit?after={after}&limit=1000", c.base))
            .header("X-Access-Token", &c.admin)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let events = v["result"].as_array().unwrap();
        if events.is_empty() {
            break;
        }
        for e in events {
            after = e["seq"].as_u64().unwrap();
            if e["action"] == "job.dispatch" {
                *dispatches.entry(e["subject"].as_str().unwrap().to_owned()).or_default() += 1;
            }
        }
    }
    assert_eq!(dispatches.len(), 1000);
    assert!(dispatches.values().all(|n| *n == 1), "a job ran twice");
    let rec = c.biz("/rpa/api/queryProcessJob", json!({"processId": a})).await;
    assert_eq!(rec["record"][0]["outputValues"], json!({"ok": true}));
}

const RESUMABLE: &str = r#"
if [ -n "$RPA_CHECKPOINT" ]; then
  echo "resuming from $RPA_CHECKPOINT"
  echo '::step 2 Post totals'
  echo '::output {"resumed": true}'
  exit 0
fi
echo '::checkpoint {"step": 1}'
echo '::step 1 Open ledger'
sleep 30
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_robot_killed_mid_job_hands_it_over_with_its_checkpoint() {
    let c = Cluster::start("failover").await;
    let b = c.process("B").await;
    c.package(&b, RESUMABLE).await;
    let mut first = Some(c.robot("r1", "ws"));
    let job = c.biz("/rpa/api/startJob", json!({"processId": b, "params": {}})).await["jobId"]
        .as_str()
        .unwrap()
        .to_owned();
    c.wait_status(&job, "Running", 30).await;
    tokio::time::sleep(Duration::from_millis(800)).await; // the checkpoint is reported
    assert_eq!(c.robot_of(&job).await.as_deref(), Some("r1"));
    let _second = c.robot("r2", "http");
    tokio::time::sleep(Duration::from_millis(500)).await;
    drop(first.take()); // kill -9 the robot holding the job
    c.wait_status(&job, "Successful", 30).await;
    let rec = c.biz("/rpa/api/queryProcessJob", json!({"processId": b})).await;
    assert_eq!(
        rec["record"][0]["outputValues"],
        json!({"resumed": true}),
        "the second robot resumed from the checkpoint"
    );
    // Each robot reported its step, one over WebSocket, one over HTTP.
    let steps = c.biz("/rpa/api/jobStatus", json!({"jobId": job})).await;
    let listed: Vec<(i64, i64)> = steps
        .as_array()
        .unwrap()
        .iter()
        .map(|s| (s["step"].as_i64().unwrap(), s["stopTag"].as_i64().unwrap()))
        .collect();
    assert_eq!(listed, [(1, 0), (2, 0)], "{steps}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stop_job_kills_the_script_and_the_job_ends_stopped() {
    let c = Cluster::start("stop").await;
    let b = c.process("B").await;
    c.package(&b, "echo started\nsleep 60\n").await;
    let _r = c.robot("r1", "http");
    let job = c.biz("/rpa/api/startJob", json!({"processId": b, "params": {}})).await["jobId"]
        .as_str()
        .unwrap()
        .to_owned();
    c.wait_status(&job, "Running", 30).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    c.biz("/rpa/api/stopJob", json!({"jobId": job})).await;
    c.wait_status(&job, "Stopped", 20).await;
}
