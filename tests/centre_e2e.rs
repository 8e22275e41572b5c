//! The scheduling centre in the server, with real robot processes: queue
//! triggers (items wait for `minItems`, at most `maxConcurrent` run, a
//! trigger changed or removed over the admin API) and pipelines (a diamond
//! of five steps with a failing branch, a rerun, a stop, bad definitions).

use std::net::TcpListener;
use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

mod support;

use support::Proc;

const CONFIG: &str = r#"{
  "admin": { "name": "admin", "password": "admin-pw" },
  "processes": [
    { "name": "Claims", "type": "Queue", "maxRunNum": 0,
      "queueTrigger": { "minItems": 3, "maxConcurrent": 2 } },
    { "name": "Nightly", "type": "Unattended" }
  ],
  "users": [ { "name": "ops", "password": "pw", "processes": ["Claims", "Nightly"] } ],
  "vendors": [ { "supplierCode": "acme", "secret": "acme-secret" } ]
}"#;

async fn call(http: &reqwest::Client, method: reqwest::Method, url: String, token: &str, body: Option<Value>) -> Value {
    let mut r = http.request(method, url).header("X-Access-Token", token);
    if let Some(b) = body {
        r = r.json(&b);
    }
    r.send().await.unwrap().json().await.unwrap()
}

fn lines(dir: &Path) -> Vec<String> {
    std::fs::read_to_string(dir.join("runs.txt"))
        .unwrap_or_default()
        .lines()
        .map(str::to_owned)
        .collect()
}

/// The most runs that overlapped, from "start x" / "end x" lines.
fn most_at_once(lines: &[String]) -> usize {
    let (mut now, mut most) = (0usize, 0usize);
    for l in lines {
        if l.starts_with("start ") {
            now += 1;
            most = most.max(now);
        } else if l.starts_with("end ") {
            now = now.saturating_sub(1);
        }
    }
    most
}

async fn wait_for(dir: &Path, what: &str, done: impl Fn(&[String]) -> bool) {
    let deadline = Instant::now() + Duration::from_secs(40);
    loop {
        let l = lines(dir);
        if done(&l) {
            return;
        }
        assert!(Instant::now() < deadline, "{what}: {l:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn triggers(dir: &Path, db: &str) {
    let _ = std::fs::remove_dir_all(dir);
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(dir.join("config.json"), CONFIG).unwrap();
    let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let _server = Proc(support::start_server(dir, db, port, &[]));
    let base = format!("http://127.0.0.1:{port}");
    let http = reqwest::Client::new();
    let (admin, _) = support::login(&http, &base, "admin", "admin-pw").await;
    let (ops, _) = support::login(&http, &base, "ops", "pw").await;
    let processes = call(
        &http,
        reqwest::Method::GET,
        format!("{base}/admin/processes"),
        &admin,
        None,
    )
    .await;
    let key = |name: &str| {
        processes["result"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["processName"] == name)
            .unwrap()["processId"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    let (claims, nightly) = (key("Claims"), key("Nightly"));
    assert_eq!(
        processes["result"][0]["queueTrigger"],
        json!({"minItems": 3, "maxConcurrent": 2})
    );
    support::upload_package(
        &http,
        &base,
        &admin,
        &claims,
        "echo \"start $RPA_ARG_CLAIM\" >> \"$RUNS\"; sleep 0.4; echo \"end $RPA_ARG_CLAIM\" >> \"$RUNS\"\n",
    )
    .await;
    let _robots: Vec<Proc> = (1..=3)
        .map(|i| support::start_robot(&base, dir, &format!("robot-{i}"), "acme-secret"))
        .collect();
    let trigger_url = format!("{base}/admin/processes/{claims}/trigger");
    let trigger = || call(&http, reqwest::Method::GET, trigger_url.clone(), &admin, None);
    let add = |claim: String| {
        call(
            &http,
            reqwest::Method::POST,
            format!("{base}/rpa/api/addQueueItem"),
            &ops,
            Some(json!({"processId": claims, "params": {"claim": claim}})),
        )
    };

    // Two items: below minItems, nothing runs.
    for c in ["c1", "c2"] {
        let a = add(c.into()).await;
        assert_eq!(
            (a["success"].as_bool(), a["result"]["status"].as_str()),
            (Some(true), Some("New")),
            "{a}"
        );
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(lines(dir).is_empty(), "ran below minItems: {:?}", lines(dir));
    let t = trigger().await;
    assert_eq!(
        (t["result"]["waiting"].as_u64(), t["result"]["active"].as_u64()),
        (Some(2), Some(0)),
        "{t}"
    );

    // The third fills the batch; then seven more: all run, never more than two at once.
    for i in 3..=10 {
        add(format!("c{i}")).await;
    }
    wait_for(dir, "ten claims run", |l| {
        l.iter().filter(|x| x.starts_with("end ")).count() == 10
    })
    .await;
    let l = lines(dir);
    assert_eq!(most_at_once(&l), 2, "maxConcurrent 2: {l:?}");
    for i in 1..=10 {
        let n = l.iter().filter(|x| **x == format!("start c{i}")).count();
        assert_eq!(n, 1, "claim c{i} ran {n} times");
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let t = trigger().await;
        if (t["result"]["waiting"].as_u64(), t["result"]["active"].as_u64()) == (Some(0), Some(0)) {
            break;
        }
        assert!(Instant::now() < deadline, "trigger counts stay {t}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // Changed over the API: a batch of 10; bad triggers are refused with the reason.
    let put = |url: String, body: Value| call(&http, reqwest::Method::PUT, url, &admin, Some(body));
    let bad = put(trigger_url.clone(), json!({"minItems": 0, "maxConcurrent": 1})).await;
    assert_eq!(bad["success"], false);
    assert!(bad["message"].as_str().unwrap().contains("minItems"), "{bad}");
    let bad = put(trigger_url.clone(), json!({"minItems": 1})).await;
    assert!(bad["message"].as_str().unwrap().contains("maxConcurrent"), "{bad}");
    let bad = put(
        format!("{base}/admin/processes/{nightly}/trigger"),
        json!({"minItems": 1, "maxConcurrent": 1}),
    )
    .await;
    assert!(bad["message"].as_str().unwrap().contains("Queue"), "{bad}");
    let set = put(trigger_url.clone(), json!({"minItems": 10, "maxConcurrent": 3})).await;
    assert_eq!(
        set["result"]["queueTrigger"],
        json!({"minItems": 10, "maxConcurrent": 3}),
        "{set}"
    );
    for i in 11..=12 {
        add(format!("c{i}")).await;
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(lines(dir).len(), 20, "a batch of 10 holds two items");

    // Removed: the waiting items run at once, and new items run as added.
    let gone = call(&http, reqwest::Method::DELETE, trigger_url.clone(), &admin, None).await;
    assert_eq!(gone["result"]["queueTrigger"], Value::Null, "{gone}");
    add("c13".into()).await;
    wait_for(dir, "the rest run", |l| {
        l.iter().filter(|x| x.starts_with("end ")).count() == 13
    })
    .await;

    let audit = call(
        &http,
        reqwest::Method::GET,
        format!("{base}/admin/audit/verify"),
        &admin,
        None,
    )
    .await;
    assert_eq!(audit["success"], true, "{audit}");
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queue_triggers_on_sqlite() {
    let dir = std::env::temp_dir().join(format!("rpa-triggers-{}", std::process::id()));
    let db = dir.join("rpa.db").to_str().unwrap().to_owned();
    triggers(&dir, &db).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queue_triggers_on_postgres() {
    let Some(url) = support::postgres_url() else {
        return;
    };
    let db = support::fresh_postgres(&url, "triggers").await;
    let dir = std::env::temp_dir().join(format!("rpa-triggers-pg-{}", std::process::id()));
    triggers(&dir, &db).await;
    support::drop_postgres(&url, "triggers").await;
}

const PIPELINE_CONFIG: &str = r#"{
  "admin": { "name": "admin", "password": "admin-pw" },
  "processes": [
    { "name": "Extract", "type": "Unattended", "maxRunNum": 0,
      "arguments": [ { "name": "month", "type": "string", "required": true } ] },
    { "name": "Enter", "type": "Unattended", "maxRunNum": 0,
      "arguments": [ { "name": "invoice", "type": "int", "required": true } ] },
    { "name": "Check", "type": "Unattended", "maxRunNum": 0, "maxRetries": 0,
      "arguments": [ { "name": "invoice", "type": "int", "required": true } ] },
    { "name": "Archive", "type": "Unattended", "maxRunNum": 0 },
    { "name": "Summary", "type": "Unattended", "maxRunNum": 0,
      "arguments": [ { "name": "text", "type": "string", "required": true } ] },
    { "name": "Slow", "type": "Unattended", "maxRunNum": 0 },
    { "name": "Month end", "type": "Unattended", "pipeline": "month end",
      "arguments": [ { "name": "month", "type": "string", "required": true } ] }
  ],
  "users": [ { "name": "ops", "password": "pw", "processes": ["Month end"] } ],
  "vendors": [ { "supplierCode": "acme", "secret": "acme-secret" } ]
}"#;

/// Each process's script: it writes what it ran with to `$RUNS`.
const SCRIPTS: [(&str, &str); 6] = [
    (
        "Extract",
        "echo \"extract $RPA_ARG_MONTH\" >> \"$RUNS\"\necho '::output {\"invoice_id\": 42, \"count\": 3}'\n",
    ),
    ("Enter", "sleep 0.3; echo \"enter $RPA_ARG_INVOICE\" >> \"$RUNS\"\n"),
    (
        "Check",
        "echo \"check $RPA_ARG_INVOICE\" >> \"$RUNS\"\n[ -f \"$(dirname \"$RUNS\")/check-ok\" ] || exit 3\n",
    ),
    ("Archive", "echo archive >> \"$RUNS\"\n"),
    ("Summary", "echo \"summary $RPA_ARG_TEXT\" >> \"$RUNS\"\n"),
    ("Slow", "echo slow >> \"$RUNS\"; sleep 60\n"),
];

async fn run_ended(http: &reqwest::Client, base: &str, admin: &str, run: i64) -> Value {
    let deadline = Instant::now() + Duration::from_secs(40);
    loop {
        let r = call(
            http,
            reqwest::Method::GET,
            format!("{base}/admin/pipeline-runs/{run}"),
            admin,
            None,
        )
        .await;
        if r["result"]["state"] != "Running" {
            return r["result"].clone();
        }
        assert!(Instant::now() < deadline, "run {run} did not end: {r}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn step_states(run: &Value) -> Vec<(String, String)> {
    run["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["name"].as_str().unwrap().to_owned(),
                s["state"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

async fn pipelines(dir: &Path, db: &str) {
    let _ = std::fs::remove_dir_all(dir);
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(dir.join("config.json"), PIPELINE_CONFIG).unwrap();
    let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let _server = Proc(support::start_server(dir, db, port, &[]));
    let base = format!("http://127.0.0.1:{port}");
    let http = reqwest::Client::new();
    let (admin, _) = support::login(&http, &base, "admin", "admin-pw").await;
    let processes = call(
        &http,
        reqwest::Method::GET,
        format!("{base}/admin/processes"),
        &admin,
        None,
    )
    .await;
    for (name, script) in SCRIPTS {
        let key = processes["result"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["processName"] == name)
            .unwrap()["processId"]
            .as_str()
            .unwrap()
            .to_owned();
        support::upload_package(&http, &base, &admin, &key, script).await;
    }
    let _robots: Vec<Proc> = (1..=3)
        .map(|i| support::start_robot(&base, dir, &format!("robot-{i}"), "acme-secret"))
        .collect();
    let post = |path: String, body: Value| {
        call(
            &http,
            reqwest::Method::POST,
            format!("{base}{path}"),
            &admin,
            Some(body),
        )
    };

    // Bad definitions are refused with the reason, nothing stored.
    let cycle = post(
        "/admin/pipelines".into(),
        json!({"name": "loop", "steps": [
            {"name": "a", "process": "Archive", "after": ["b"]},
            {"name": "b", "process": "Archive", "after": ["a"]}]}),
    )
    .await;
    assert_eq!(cycle["success"], false);
    assert!(cycle["message"].as_str().unwrap().contains("cycle"), "{cycle}");
    let unknown = post(
        "/admin/pipelines".into(),
        json!({"name": "bad", "steps": [
            {"name": "a", "process": "Archive"},
            {"name": "b", "process": "Enter", "arguments": {"invoice": "${steps.a.outputs.id}"}}]}),
    )
    .await;
    assert!(
        unknown["message"].as_str().unwrap().contains("output 'id' of step 'a'"),
        "{unknown}"
    );
    let list = call(
        &http,
        reqwest::Method::GET,
        format!("{base}/admin/pipelines"),
        &admin,
        None,
    )
    .await;
    assert_eq!(list["result"], json!([]));

    // Five steps: extract → (enter → archive), (check, failing), and summary joining enter and check.
    let saved = post(
        "/admin/pipelines".into(),
        json!({"name": "month end", "inputs": ["month"], "steps": [
            {"name": "extract", "process": "Extract", "arguments": {"month": "${inputs.month}"},
             "outputs": ["invoice_id", "count"]},
            {"name": "enter", "process": "Enter", "arguments": {"invoice": "${steps.extract.outputs.invoice_id}"}},
            {"name": "check", "process": "Check", "arguments": {"invoice": "${steps.extract.outputs.invoice_id}"},
             "onFailure": "continue"},
            {"name": "archive", "process": "Archive", "after": ["enter"]},
            {"name": "summary", "process": "Summary",
             "arguments": {"text": "${inputs.month}: ${steps.extract.outputs.count} invoices"},
             "after": ["enter", "check"]}]}),
    )
    .await;
    assert_eq!(saved["success"], true, "{saved}");
    let pid = saved["result"]["pipelineId"].as_i64().unwrap();
    assert_eq!(
        saved["result"]["dependsOn"][4],
        json!({"step": "summary", "after": ["extract", "enter", "check"]})
    );
    let missing = post(format!("/admin/pipelines/{pid}/runs"), json!({})).await;
    assert!(missing["message"].as_str().unwrap().contains("month"), "{missing}");
    let started = post(
        format!("/admin/pipelines/{pid}/runs"),
        json!({"inputs": {"month": "2026-11"}}),
    )
    .await;
    assert_eq!(started["success"], true, "{started}");
    let run = started["result"]["runId"].as_i64().unwrap();
    let ended = run_ended(&http, &base, &admin, run).await;
    let s = |v: &[(&str, &str)]| {
        v.iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect::<Vec<_>>()
    };
    assert_eq!(ended["state"], "Faulted", "{ended}");
    assert_eq!(
        step_states(&ended),
        s(&[
            ("extract", "Successful"),
            ("enter", "Successful"),
            ("check", "Faulted"),
            ("archive", "Successful"),
            ("summary", "Skipped")
        ]),
        "{ended}"
    );
    assert_eq!(ended["steps"][0]["outputs"], json!({"invoice_id": 42, "count": 3}));
    assert!(ended["steps"][0]["jobId"].as_str().unwrap().len() == 32);
    let mut l = lines(dir);
    l.sort();
    assert_eq!(
        l,
        ["archive", "check 42", "enter 42", "extract 2026-11"],
        "each step ran once"
    );

    // The check is fixed: a rerun runs check and summary, reusing the rest.
    std::fs::write(dir.join("check-ok"), "").unwrap();
    let again = post(format!("/admin/pipeline-runs/{run}/rerun"), json!({})).await;
    assert_eq!(again["result"]["rerunOf"], run, "{again}");
    let again = run_ended(&http, &base, &admin, again["result"]["runId"].as_i64().unwrap()).await;
    assert_eq!(again["state"], "Successful", "{again}");
    assert_eq!(again["steps"][1]["reused"], true);
    let mut l = lines(dir);
    l.sort();
    assert_eq!(
        l,
        [
            "archive",
            "check 42",
            "check 42",
            "enter 42",
            "extract 2026-11",
            "summary 2026-11: 3 invoices"
        ]
    );

    // Exposed as a process: the business API's startJob runs the pipeline.
    let (ops, month_end) = support::login(&http, &base, "ops", "pw").await;
    let job = support::post(
        &http,
        format!("{base}/rpa/api/startJob"),
        &[("X-Access-Token", &ops)],
        json!({"processId": month_end, "params": {"month": "2026-12"}}),
    )
    .await
    .unwrap()
    .1;
    assert_eq!(job["result"]["status"], "Running", "{job}");
    let job = job["result"]["jobId"].as_str().unwrap().to_owned();
    let deadline = Instant::now() + Duration::from_secs(40);
    loop {
        let s = support::post(
            &http,
            format!("{base}/rpa/api/jobStatus"),
            &[("X-Access-Token", &ops)],
            json!({"jobId": job}),
        )
        .await
        .unwrap()
        .1;
        if s["result"][0]["status"] == "Successful" {
            break;
        }
        assert!(Instant::now() < deadline, "the pipeline job did not succeed: {s}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(lines(dir).contains(&"summary 2026-12: 3 invoices".to_string()));
    let runs = call(
        &http,
        reqwest::Method::GET,
        format!("{base}/admin/pipelines/{pid}/runs"),
        &admin,
        None,
    )
    .await;
    assert_eq!(runs["result"].as_array().unwrap().len(), 3, "{runs}");
    assert_eq!(runs["result"][2]["inputs"], json!({"month": "2026-12"}));

    // A stopped run stops its running job and ends Stopped.
    let slow = post(
        "/admin/pipelines".into(),
        json!({"name": "slow", "steps": [{"name": "wait", "process": "Slow"}, {"name": "after", "process": "Archive", "after": ["wait"]}]}),
    )
    .await;
    let slow_run = post(
        format!("/admin/pipelines/{}/runs", slow["result"]["pipelineId"]),
        json!({}),
    )
    .await;
    let slow_run = slow_run["result"]["runId"].as_i64().unwrap();
    wait_for(dir, "the slow step runs", |l| l.iter().any(|x| x == "slow")).await;
    let stopping = post(format!("/admin/pipeline-runs/{slow_run}/stop"), json!({})).await;
    assert_eq!(stopping["success"], true, "{stopping}");
    let stopped = run_ended(&http, &base, &admin, slow_run).await;
    assert_eq!(stopped["state"], "Stopped", "{stopped}");
    assert_eq!(step_states(&stopped), s(&[("wait", "Stopped"), ("after", "Skipped")]));

    // Every run's end is a domain event (and so a webhook kind).
    let events = support::all_events(&http, &base, &admin).await;
    let ends: Vec<(i64, &str)> = events
        .iter()
        .filter(|e| e["type"] == "pipeline_run_ended")
        .map(|e| (e["run"].as_i64().unwrap(), e["state"].as_str().unwrap()))
        .collect();
    assert_eq!(ends.len(), 4, "{ends:?}");
    assert!(ends.contains(&(run, "Faulted")) && ends.contains(&(slow_run, "Stopped")));
    let audit = call(
        &http,
        reqwest::Method::GET,
        format!("{base}/admin/audit/verify"),
        &admin,
        None,
    )
    .await;
    assert_eq!(audit["success"], true, "{audit}");
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pipelines_on_sqlite() {
    let dir = std::env::temp_dir().join(format!("rpa-pipelines-{}", std::process::id()));
    let db = dir.join("rpa.db").to_str().unwrap().to_owned();
    pipelines(&dir, &db).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pipelines_on_postgres() {
    let Some(url) = support::postgres_url() else {
        return;
    };
    let db = support::fresh_postgres(&url, "pipelines").await;
    let dir = std::env::temp_dir().join(format!("rpa-pipelines-pg-{}", std::process::id()));
    pipelines(&dir, &db).await;
    support::drop_postgres(&url, "pipelines").await;
}

/// An elastic pool whose robots the server starts: `{robot}` and the
/// robot binary's path are filled in by the test.
fn pool_config(robot_binary: &Path, base: &str, dir: &Path) -> String {
    json!({
        "admin": { "name": "admin", "password": "admin-pw" },
        "processes": [ { "name": "Burst", "type": "Unattended", "maxRunNum": 0, "pool": "burst" } ],
        "users": [ { "name": "ops", "password": "pw", "processes": ["Burst"] } ],
        "vendors": [ { "supplierCode": "acme", "secret": "acme-secret" } ],
        "pools": [ { "name": "burst", "min": 0, "max": 2, "idleGraceSeconds": 1,
                     "command": [ robot_binary.to_str().unwrap(), "--server", base, "--id", "{robot}",
                                  "--vendor", "acme", "--secret", "acme-secret", "--transport", "ws",
                                  "--heartbeat", "1", "--work-dir", dir.join("work").join("{robot}").to_str().unwrap() ] } ]
    })
    .to_string()
}

async fn pool_state(http: &reqwest::Client, base: &str, admin: &str) -> Value {
    let pools = call(http, reqwest::Method::GET, format!("{base}/admin/pools"), admin, None).await;
    pools["result"][0].clone()
}

async fn elastic(dir: &Path, db: &str) {
    let _ = std::fs::remove_dir_all(dir);
    std::fs::create_dir_all(dir).unwrap();
    let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let base = format!("http://127.0.0.1:{port}");
    let robot = support::server_binary().with_file_name("robot");
    std::fs::write(dir.join("config.json"), pool_config(&robot, &base, dir)).unwrap();
    let runs = dir.join("runs.txt");
    let _server = Proc(support::start_server_with_env(
        dir,
        db,
        port,
        &[],
        &[("RUNS", runs.to_str().unwrap())],
    ));
    let http = reqwest::Client::new();
    let (admin, _) = support::login(&http, &base, "admin", "admin-pw").await;
    let (ops, burst) = support::login(&http, &base, "ops", "pw").await;
    support::upload_package(
        &http,
        &base,
        &admin,
        &burst,
        "sleep 1; echo \"burst $RPA_ROBOT_ID $RPA_IMAGE_VERSION\" >> \"$RUNS\"\n",
    )
    .await;

    // The pool's executors start from an image: two versions uploaded, the
    // latest runs.
    for (version, bytes) in [("1.0.0", "desktop image one"), ("1.1.0", "desktop image two")] {
        let up = http
            .post(format!("{base}/admin/images/desktop?version={version}"))
            .header("X-Access-Token", &admin)
            .body(bytes)
            .send()
            .await
            .unwrap()
            .json::<Value>()
            .await
            .unwrap();
        assert_eq!(up["result"]["version"], version, "{up}");
    }
    let changed = http
        .post(format!("{base}/admin/images/desktop?version=1.1.0"))
        .header("X-Access-Token", &admin)
        .body("other bytes")
        .send()
        .await
        .unwrap()
        .json::<Value>()
        .await
        .unwrap();
    assert!(
        changed["message"].as_str().unwrap_or("").contains("never changes"),
        "{changed}"
    );
    let set = call(
        &http,
        reqwest::Method::PUT,
        format!("{base}/admin/pools/burst"),
        &admin,
        Some(json!({"min": 0, "max": 2, "idleGraceSeconds": 1, "image": "desktop"})),
    )
    .await;
    assert_eq!(set["result"]["image"], "desktop", "{set}");

    // Nothing to do: the pool wants no robot and none runs.
    let p = pool_state(&http, &base, &admin).await;
    assert_eq!(
        (p["name"].as_str(), p["desired"].as_u64(), p["connected"].as_u64()),
        (Some("burst"), Some(0), Some(0)),
        "{p}"
    );
    let bad = call(
        &http,
        reqwest::Method::PUT,
        format!("{base}/admin/pools/burst"),
        &admin,
        Some(json!({"min": 3, "max": 2})),
    )
    .await;
    assert!(bad["message"].as_str().unwrap().contains("above max"), "{bad}");

    // Five jobs: the pool wants two (its max), the server starts two robots, they run all five.
    for _ in 0..5 {
        let s = call(
            &http,
            reqwest::Method::POST,
            format!("{base}/rpa/api/startJob"),
            &ops,
            Some(json!({"processId": burst})),
        )
        .await;
        assert_eq!(s["success"], true, "{s}");
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let p = pool_state(&http, &base, &admin).await;
        if p["desired"] == 2 && p["connected"] == 2 {
            break;
        }
        assert!(Instant::now() < deadline, "the pool did not grow: {p}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    wait_for(dir, "five burst jobs", |l| l.len() == 5).await;
    let l = lines(dir);
    let robots: std::collections::BTreeSet<&str> = l
        .iter()
        .map(|x| x.trim_start_matches("burst ").split(' ').next().unwrap_or(""))
        .collect();
    assert_eq!(robots.into_iter().collect::<Vec<_>>(), ["burst-1", "burst-2"], "{l:?}");
    assert!(
        l.iter().all(|x| x.ends_with(" 1.1.0")),
        "every run on image 1.1.0: {l:?}"
    );
    let executors = call(
        &http,
        reqwest::Method::GET,
        format!("{base}/admin/executors"),
        &admin,
        None,
    )
    .await;
    let vms: Vec<(&str, &str, &str)> = executors["result"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["robotId"].as_str().unwrap(),
                e["image"].as_str().unwrap_or(""),
                e["imageVersion"].as_str().unwrap_or(""),
            )
        })
        .collect();
    assert_eq!(
        vms,
        [("burst-1", "desktop", "1.1.0"), ("burst-2", "desktop", "1.1.0")],
        "{executors}"
    );
    assert!(
        executors["result"][0]["host"].as_str().is_some_and(|h| !h.is_empty())
            && executors["result"][0]["pid"].as_u64().is_some(),
        "{executors}"
    );

    // Idle past the grace period, the robots are stopped.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let p = pool_state(&http, &base, &admin).await;
        if p["desired"] == 0 && p["connected"] == 0 {
            break;
        }
        assert!(Instant::now() < deadline, "the pool did not shrink: {p}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let events = support::all_events(&http, &base, &admin).await;
    let changes: Vec<(u64, u64)> = events
        .iter()
        .filter(|e| e["type"] == "pool_changed")
        .map(|e| (e["previous"].as_u64().unwrap(), e["desired"].as_u64().unwrap()))
        .collect();
    assert_eq!(changes.first(), Some(&(0, 2)), "{changes:?}");
    assert_eq!(changes.last().map(|c| c.1), Some(0), "{changes:?}");
    // The stopped executors keep their record, with when they stopped.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let executors = call(
            &http,
            reqwest::Method::GET,
            format!("{base}/admin/executors"),
            &admin,
            None,
        )
        .await;
        let all = executors["result"].as_array().cloned().unwrap_or_default();
        if all.len() == 2 && all.iter().all(|e| e["stopTime"].is_string()) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "executors not recorded as stopped: {executors}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let retired = call(
        &http,
        reqwest::Method::DELETE,
        format!("{base}/admin/images/desktop/1.1.0"),
        &admin,
        None,
    )
    .await;
    assert_eq!(retired["result"]["retired"], true, "{retired}");
    let images = call(
        &http,
        reqwest::Method::GET,
        format!("{base}/admin/images"),
        &admin,
        None,
    )
    .await;
    let kept: Vec<(&str, bool)> = images["result"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| (i["version"].as_str().unwrap(), i["retired"].as_bool().unwrap()))
        .collect();
    assert_eq!(kept, [("1.1.0", true), ("1.0.0", false)], "{images}");
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_elastic_pool_starts_and_stops_robots_on_sqlite() {
    let dir = std::env::temp_dir().join(format!("rpa-pools-{}", std::process::id()));
    let db = dir.join("rpa.db").to_str().unwrap().to_owned();
    elastic(&dir, &db).await;
}
