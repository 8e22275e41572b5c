//! The scheduling centre in the server, with real robot processes: queue
//! triggers (items wait for `minItems`, at most `maxConcurrent` run, a
//! trigger changed or removed over the admin API).

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
