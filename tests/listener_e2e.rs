//! The AutomationEdge listener (seed 003) over a real socket: the example
//! server on an SQLite file, a real robot executor (examples/robot), and
//! requests sent as a listener client sends them (Basic credentials, the
//! payload a JSON string). Asynchronous and synchronous success, a robot
//! failure, a retry after its cool-off, expiration while queued and while
//! running, a repeated source, fall-outs, and every HTTP status.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

mod support;

use support::Proc;

const CONFIG: &str = r#"{
  "admin": { "name": "admin", "password": "admin-pw" },
  "processes": [
    { "name": "Claims", "type": "Unattended", "maxRunNum": 0, "maxRetries": 0,
      "arguments": [
        { "name": "policy", "type": "string", "required": true },
        { "name": "pin", "type": "string", "required": false, "secret": true }
      ] },
    { "name": "Nowhere", "type": "Unattended", "labels": ["no-robot-has-this"] }
  ],
  "users": [ { "name": "crm", "password": "pw", "processes": ["Claims", "Nowhere"] } ],
  "vendors": [ { "supplierCode": "acme", "secret": "acme-secret" } ],
  "listeners": [ { "name": "se", "password": "se", "user": "crm" } ]
}"#;

/// `policy` decides what the run does: `fail` exits 2; `slow` sleeps;
/// `flaky:<file>` fails while `<file>` is missing (creating it). Every run
/// appends its policy to `$RUNS`.
const SCRIPT: &str = r#"echo "$RPA_ARG_POLICY" >> "$RUNS"
case "$RPA_ARG_POLICY" in
  fail) echo "cannot do it"; exit 2 ;;
  slow) sleep 60 ;;
  flaky:*) f="${RPA_ARG_POLICY#flaky:}"; if [ ! -f "$f" ]; then touch "$f"; exit 2; fi ;;
esac
echo "::output {\"policy\": \"$RPA_ARG_POLICY\", \"pin\": \"$RPA_ARG_PIN\"}"
"#;

struct Listener {
    base: String,
    http: reqwest::Client,
    dir: PathBuf,
}

/// A message as seed 003 shows it.
fn message(
    process: &str,
    source: &str,
    inputs: Value,
    wait: bool,
    expiration: i64,
    retry: Option<(u32, u64)>,
) -> Value {
    let (flag, times, cool) = match retry {
        Some((n, c)) => (true, n, c),
        None => (false, 0, 0),
    };
    let payload = json!({"PerformAutomation": {
        "AutomationInputDictionary": inputs,
        "ProcessName": process, "ProfileName": "Profile1", "APIVersion": "", "AppId": "",
        "CommandExecutionWindow": "", "CommandGenerationSource": "", "Country": "", "Instance": "",
        "PartnerId": "", "ReferenceCode": "REF-9", "Timestamp": "", "UserName": "userName", "ID": "",
        "RetryFlag": flag,
        "Retry": {"PreviousRequestIds": [], "NoOfTimesRetry": times, "RetryCoolOffInterval": cool}
    }});
    json!({
        "payload": payload.to_string(),
        "content_type": "json",
        "content_encoding": "application/json",
        "profile": "Profile1",
        "expiration": expiration,
        "wait_for_completion": wait,
        "source_message_id": source,
        "app_id": "1",
        "header": {}
    })
}

impl Listener {
    async fn send_raw(&self, path: &str, auth: Option<&str>, body: String) -> (u16, Value) {
        let mut req = self
            .http
            .post(format!("{}{path}", self.base))
            .header("Content-Type", "application/json")
            .body(body)
            .timeout(Duration::from_secs(60));
        if let Some(a) = auth {
            req = req.header("Authorization", a);
        }
        let r = req.send().await.unwrap();
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    /// Sends as `se:se` (the seed's own example credentials, `c2U6c2U=`).
    async fn send(&self, body: Value) -> Value {
        let (status, v) = self
            .send_raw("/listener/rpa/api/message", Some("Basic c2U6c2U="), body.to_string())
            .await;
        assert_eq!(status, 200, "{v}");
        v
    }

    async fn admin(&self, path: &str) -> Value {
        let (token, _) = support::login(&self.http, &self.base, "admin", "admin-pw").await;
        support::get_json(&self.http, format!("{}{path}", self.base), &token).await
    }

    fn runs(&self) -> Vec<String> {
        std::fs::read_to_string(self.dir.join("runs.txt"))
            .unwrap_or_default()
            .lines()
            .map(str::to_owned)
            .collect()
    }
}

async fn start(dir: &Path, db: &str) -> (Listener, Proc, Proc) {
    let _ = std::fs::remove_dir_all(dir);
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(dir.join("config.json"), CONFIG).unwrap();
    let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let server = Proc(support::start_server(dir, db, port, &[]));
    let base = format!("http://127.0.0.1:{port}");
    let http = reqwest::Client::new();
    let (admin, _) = support::login(&http, &base, "admin", "admin-pw").await;
    let (_, claims) = support::login(&http, &base, "crm", "pw").await;
    support::upload_package(&http, &base, &admin, &claims, SCRIPT).await;
    let robot = support::start_robot(&base, dir, "robot-1", "acme-secret");
    (
        Listener {
            base,
            http,
            dir: dir.to_owned(),
        },
        server,
        robot,
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_listener_runs_requests_as_seed_003_describes_on_sqlite() {
    let dir = std::env::temp_dir().join(format!("rpa-listener-{}", std::process::id()));
    let db = dir.join("rpa.db").to_str().unwrap().to_owned();
    scenario(&dir, &db).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_listener_runs_requests_as_seed_003_describes_on_postgres() {
    let Some(url) = support::postgres_url() else {
        return;
    };
    let db = support::fresh_postgres(&url, "listener").await;
    let dir = std::env::temp_dir().join(format!("rpa-listener-pg-{}", std::process::id()));
    scenario(&dir, &db).await;
    support::drop_postgres(&url, "listener").await;
}

async fn scenario(dir: &Path, db: &str) {
    let dir = dir.to_owned();
    let (l, _server, _robot) = start(&dir, db).await;

    // Asynchronous: acknowledged at once; the job then runs on the robot.
    let a = l
        .send(message(
            "Claims",
            "async-1",
            json!({"Search.policy": "A-1"}),
            false,
            60_000,
            None,
        ))
        .await;
    assert_eq!(a["status"], "success", "{a}");
    assert_eq!(a["response"], json!({"acknowledge": true}));
    assert_eq!(a["error"], json!({}));
    assert!(a["instance_id"].as_i64().is_some());
    assert_eq!(a["message_id"].as_str().unwrap().len(), 36);

    // A repeated source: the first answer again, nothing more started.
    let again = l
        .send(message(
            "Claims",
            "async-1",
            json!({"Search.policy": "A-2"}),
            false,
            60_000,
            None,
        ))
        .await;
    assert_eq!(again, a);

    // Synchronous success: the robot's outputs, the request with the secret masked.
    let s = l
        .send(message(
            "Claims",
            "sync-1",
            json!({"Search.policy": "S-1", "Search.pin": "4321"}),
            true,
            60_000,
            None,
        ))
        .await;
    assert_eq!(s["status"], "success", "{s}");
    let r = &s["response"];
    assert_eq!(r["acknowledge"], true);
    assert_eq!(r["AutomationQueueType"], "successqueue", "{s}");
    assert_eq!(r["ErrorDetailObject"], json!([]));
    assert_eq!(r["AutomationOutputDictionary"]["policy"], "S-1");
    assert_eq!(
        r["PerformAutomation"]["AutomationInputDictionary"]["Search.pin"],
        "********"
    );
    assert_eq!(r["PerformAutomation"]["ProcessName"], "Claims");
    assert_eq!(r["RobotDetails"]["RobotId"], "robot-1");
    assert_eq!(
        s.to_string().matches("4321").count(),
        1,
        "the secret input shows only where the robot put it in its outputs: {s}"
    );

    // A robot failure: delivered ("success") but in the failure queue, with details.
    let f = l
        .send(message(
            "Claims",
            "sync-fail",
            json!({"Search.policy": "fail"}),
            true,
            60_000,
            None,
        ))
        .await;
    assert_eq!(f["status"], "success", "{f}");
    assert_eq!(f["response"]["AutomationQueueType"], "failurequeue", "{f}");
    let detail = &f["response"]["ErrorDetailObject"][0];
    assert_eq!(detail["Priority"], 0);
    assert!(detail["Type"].is_string() && detail["Description"].is_string() && detail["Code"].is_string());

    // A retry after the cool-off: the first attempt fails, the second succeeds.
    let marker = dir.join("flaky.mark");
    let flaky = format!("flaky:{}", marker.display());
    let t = Instant::now();
    let retried = l
        .send(message(
            "Claims",
            "sync-retry",
            json!({"Search.policy": flaky}),
            true,
            60_000,
            Some((2, 1_500)),
        ))
        .await;
    assert_eq!(retried["response"]["AutomationQueueType"], "successqueue", "{retried}");
    assert!(t.elapsed() >= Duration::from_millis(1_500), "the cool-off was waited");
    assert_eq!(
        l.runs().iter().filter(|r| **r == flaky).count(),
        2,
        "two attempts, no more"
    );

    // Expiration while running: answered when the window closes, failure queue.
    let t = Instant::now();
    let slow = l
        .send(message(
            "Claims",
            "sync-slow",
            json!({"Search.policy": "slow"}),
            true,
            2_000,
            None,
        ))
        .await;
    assert_eq!(slow["status"], "success");
    assert_eq!(slow["response"]["AutomationQueueType"], "failurequeue", "{slow}");
    assert_eq!(slow["response"]["JobState"], "Faulted");
    assert!(
        t.elapsed() < Duration::from_secs(30),
        "answered at expiration, not at the run's end"
    );

    // Expiration while queued: no robot may run the process.
    let queued = l
        .send(message("Nowhere", "sync-nowhere", json!({}), true, 1_500, None))
        .await;
    assert_eq!(queued["response"]["AutomationQueueType"], "failurequeue", "{queued}");
    assert_eq!(queued["response"]["RobotDetails"], Value::Null);

    // Fall-outs: unknown process, bad inputs, expired on arrival.
    let unknown = l
        .send(message(
            "test",
            "fo-1",
            json!({"Search.mask": "x"}),
            false,
            100_000,
            None,
        ))
        .await;
    assert_eq!(unknown["status"], "failure");
    assert_eq!(unknown["response"], json!({"acknowledge": true}));
    assert_eq!(unknown["error"]["error_code"], "BsnErr111", "{unknown}");
    assert!(unknown["error"]["error_msg"].is_string());
    let bad = l
        .send(message(
            "Claims",
            "fo-2",
            json!({"Search.nope": 1}),
            true,
            100_000,
            None,
        ))
        .await;
    assert_eq!(
        (bad["status"].as_str(), bad["error"]["error_code"].as_str()),
        (Some("failure"), Some("BsnErr003"))
    );
    let late = l
        .send(message("Claims", "fo-3", json!({"Search.policy": "x"}), false, 0, None))
        .await;
    assert_eq!(late["error"]["error_code"], "BsnErr004");
    let fallout = l.admin("/admin/listener/requests?queue=fallout").await;
    let listed: Vec<&str> = fallout["result"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["sourceMessageId"].as_str().unwrap())
        .collect();
    assert_eq!(listed, vec!["fo-1", "fo-2", "fo-3"], "{fallout}");
    assert_eq!(fallout["result"][0]["errorCode"], "BsnErr111");

    // The async job ran, once; the repeat started nothing.
    let deadline = Instant::now() + Duration::from_secs(30);
    while !l.runs().contains(&"A-1".to_owned()) {
        assert!(Instant::now() < deadline, "the async request's job never ran");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let runs = l.runs();
    assert_eq!(runs.iter().filter(|r| *r == "A-1").count(), 1);
    assert!(!runs.contains(&"A-2".to_owned()));
    let automation = l.admin("/admin/listener/requests?queue=automation&limit=100").await;
    assert_eq!(automation["result"].as_array().unwrap().len(), 6, "{automation}");

    // HTTP statuses.
    let body = message("Claims", "h-1", json!({"Search.policy": "x"}), false, 60_000, None).to_string();
    let path = "/listener/rpa/api/message";
    let (st, v) = l.send_raw(path, None, body.clone()).await;
    assert_eq!((st, v["status"].as_str()), (401, Some("failure")));
    let (st, _) = l.send_raw(path, Some("Basic c2U6d3Jvbmc="), body.clone()).await;
    assert_eq!(st, 401, "wrong password");
    let (st, _) = l.send_raw(path, Some("Bearer c2U6c2U="), body.clone()).await;
    assert_eq!(st, 401, "not Basic");
    let (st, v) = l
        .send_raw("/listener/rpa/api/nothing", Some("Basic c2U6c2U="), body.clone())
        .await;
    assert_eq!((st, v["status"].as_str()), (404, Some("failure")));
    let (st, _) = l.send_raw(path, Some("Basic c2U6c2U="), "{not json".into()).await;
    assert_eq!(st, 422);
    let (st, _) = l
        .send_raw(path, Some("Basic c2U6c2U="), json!({"payload": "{}"}).to_string())
        .await;
    assert_eq!(st, 422, "fields missing");
    let mut m = message("Claims", "h-2", json!({}), false, 60_000, None);
    m["payload"] = json!("not json");
    let (st, v) = l.send_raw(path, Some("basic c2U6c2U="), m.to_string()).await;
    assert_eq!(st, 422, "a payload that is not JSON: {v}");
    let _ = std::fs::remove_dir_all(&dir);
}
