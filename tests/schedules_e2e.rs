//! Schedules in the server: a real server on SQLite (and on PostgreSQL), a
//! schedule from the configuration file and one saved over the admin API,
//! fired by the server's timer loop, run by a real robot process; history,
//! next fire times, turning off, and bad definitions refused.

use std::net::TcpListener;
use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

mod support;

use support::Proc;

const CONFIG: &str = r#"{
  "admin": { "name": "admin", "password": "admin-pw" },
  "processes": [ { "name": "Tick", "type": "Unattended", "maxRunNum": 0,
                   "arguments": [ { "name": "who", "type": "string", "required": true } ] } ],
  "users": [ { "name": "ops", "password": "pw", "processes": ["Tick"] } ],
  "vendors": [ { "supplierCode": "acme", "secret": "acme-secret" } ],
  "schedules": [ { "name": "from-config", "process": "Tick", "arguments": { "who": "config" },
                   "every": { "seconds": 2 }, "zone": "Europe/Paris", "owner": "ops" } ]
}"#;

async fn call(http: &reqwest::Client, method: reqwest::Method, url: String, token: &str, body: Option<Value>) -> Value {
    let mut r = http.request(method, url).header("X-Access-Token", token);
    if let Some(b) = body {
        r = r.json(&b);
    }
    r.send().await.unwrap().json().await.unwrap()
}

fn runs(dir: &Path) -> Vec<String> {
    std::fs::read_to_string(dir.join("runs.txt"))
        .unwrap_or_default()
        .lines()
        .map(str::to_owned)
        .collect()
}

async fn scenario(dir: &Path, db: &str) {
    let _ = std::fs::remove_dir_all(dir);
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(dir.join("config.json"), CONFIG).unwrap();
    let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let _server = Proc(support::start_server(dir, db, port, &[]));
    let base = format!("http://127.0.0.1:{port}");
    let http = reqwest::Client::new();
    let (admin, _) = support::login(&http, &base, "admin", "admin-pw").await;
    let (_, tick) = support::login(&http, &base, "ops", "pw").await;
    support::upload_package(&http, &base, &admin, &tick, "echo \"$RPA_ARG_WHO\" >> \"$RUNS\"\n").await;
    let _robot = support::start_robot(&base, dir, "robot-1", "acme-secret");
    let get = |path: &str| call(&http, reqwest::Method::GET, format!("{base}{path}"), &admin, None);
    let post = |path: &str, body: Value| {
        call(
            &http,
            reqwest::Method::POST,
            format!("{base}{path}"),
            &admin,
            Some(body),
        )
    };

    // Bad definitions are refused with the reason; nothing is stored.
    let bad = post(
        "/admin/schedules",
        json!({"name": "bad", "process": "Tick", "arguments": {"who": "x"}, "cron": "61 * * * *"}),
    )
    .await;
    assert_eq!(bad["success"], false, "{bad}");
    assert!(bad["message"].as_str().unwrap().contains("cron"), "{bad}");
    let bad = post(
        "/admin/schedules",
        json!({"name": "bad", "process": "Tick", "every": {"seconds": 2}}),
    )
    .await;
    assert!(
        bad["message"].as_str().unwrap().contains("who"),
        "a required argument missing: {bad}"
    );
    let bad = post(
        "/admin/schedules",
        json!({"name": "bad", "process": "Tick", "arguments": {"who": "x"}, "daily": ["09:00"],
               "from": "2026-01-02 00:00:00", "until": "2026-01-01 00:00:00"}),
    )
    .await;
    assert!(bad["message"].as_str().unwrap().contains("window"), "{bad}");

    // One saved over the API: a cron with seconds.
    let saved = post(
        "/admin/schedules",
        json!({"name": "from-api", "process": "Tick", "arguments": {"who": "api"}, "cron": "*/3 * * * * *", "zone": "Asia/Shanghai"}),
    )
    .await;
    assert_eq!(saved["success"], true, "{saved}");
    let api_id = saved["result"]["scheduleId"].as_i64().unwrap();
    assert_eq!(saved["result"]["nextFireTimes"].as_array().unwrap().len(), 5);
    let list = get("/admin/schedules").await;
    let names: Vec<&str> = list["result"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, vec!["from-config", "from-api"], "{list}");
    assert_eq!(list["result"][0]["owner"], "ops");

    // Both fire, the robot runs their jobs.
    let deadline = Instant::now() + Duration::from_secs(40);
    loop {
        let r = runs(dir);
        if r.iter().filter(|x| *x == "config").count() >= 3 && r.iter().filter(|x| *x == "api").count() >= 2 {
            break;
        }
        assert!(Instant::now() < deadline, "schedules did not run: {r:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // History: one firing per due time, each with its job, due times strictly increasing.
    let firings = get(&format!("/admin/schedules/{api_id}/firings")).await;
    let f = firings["result"].as_array().unwrap();
    assert!(f.len() >= 2, "{firings}");
    assert!(
        f.iter().all(|x| x["jobId"].is_string() && x["reason"].is_null()),
        "{firings}"
    );
    let dues: Vec<&str> = f.iter().map(|x| x["due"].as_str().unwrap()).collect();
    assert!(dues.windows(2).all(|w| w[0] < w[1]), "{dues:?}");
    let job = f[0]["jobId"].as_str().unwrap();
    let (ops, _) = support::login(&http, &base, "ops", "pw").await;
    let status = call(
        &http,
        reqwest::Method::POST,
        format!("{base}/rpa/api/jobStatus"),
        &ops,
        Some(json!({"jobId": job})),
    )
    .await;
    assert_eq!(status["result"][0]["status"], "Successful", "{status}");

    // Turned off: no more firings.
    let off = post(&format!("/admin/schedules/{api_id}/disable"), json!({})).await;
    assert_eq!(
        (
            off["result"]["enabled"].as_bool(),
            off["result"]["nextFireTimes"].as_array().map(Vec::len)
        ),
        (Some(false), Some(0))
    );
    let count = get(&format!("/admin/schedules/{api_id}/firings")).await["result"]
        .as_array()
        .unwrap()
        .len();
    tokio::time::sleep(Duration::from_secs(4)).await;
    let later = get(&format!("/admin/schedules/{api_id}/firings")).await["result"]
        .as_array()
        .unwrap()
        .len();
    assert_eq!(later, count, "a schedule turned off fires no more");
    let unknown = post("/admin/schedules/999/enable", json!({})).await;
    assert_eq!(unknown["success"], false);
    let audit = get("/admin/audit/verify").await;
    assert_eq!(audit["success"], true, "{audit}");
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schedules_fire_in_the_server_on_sqlite() {
    let dir = std::env::temp_dir().join(format!("rpa-schedules-{}", std::process::id()));
    let db = dir.join("rpa.db").to_str().unwrap().to_owned();
    scenario(&dir, &db).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schedules_fire_in_the_server_on_postgres() {
    let Some(url) = support::postgres_url() else {
        return;
    };
    let db = support::fresh_postgres(&url, "schedules").await;
    let dir = std::env::temp_dir().join(format!("rpa-schedules-pg-{}", std::process::id()));
    scenario(&dir, &db).await;
    support::drop_postgres(&url, "schedules").await;
}
