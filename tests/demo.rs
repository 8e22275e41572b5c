//! The demo as the README's "first job in a minute" runs it: the example
//! server with its demo configuration (no `--config`), a real robot, a job
//! of "Invoice entry" that runs the demo package and reports its output.

use std::net::TcpListener;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

mod support;

use support::Proc;

/// Now plus `secs`, as seed 000 writes times (the demo server's zone, Asia/Shanghai: UTC+8, no daylight saving).
fn shanghai(secs: i64) -> String {
    (chrono::Utc::now() + chrono::Duration::seconds(secs) + chrono::Duration::hours(8))
        .format("%Y-%m-%d %H:%M:%S")
        .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_job_runs_its_package_and_reports_its_output() {
    let dir = std::env::temp_dir().join(format!("rpa-demo-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let base = format!("http://127.0.0.1:{port}");
    let server = || {
        Proc(
            Command::new(support::server_binary())
                .args(["--listen", &format!("127.0.0.1:{port}")])
                .arg("--db")
                .arg(dir.join("rpa.db"))
                .arg("--files")
                .arg(dir.join("files"))
                .arg("--secret-key-file")
                .arg(dir.join("rpa.key"))
                .stdout(Stdio::from(std::fs::File::create(dir.join("server.log")).unwrap()))
                .stderr(Stdio::null())
                .spawn()
                .unwrap(),
        )
    };
    let first = server();
    let http = reqwest::Client::new();
    let (token, process) = support::login(&http, &base, "alice", "wonderland").await;
    let _robot = support::start_robot(&base, &dir, "robot-2", "acme-vendor-secret");
    let started = support::post(
        &http,
        format!("{base}/rpa/api/startJob"),
        &[("X-Access-Token", &token)],
        json!({"processId": process, "params": {"invoice": "42", "customer": "Ann"}}),
    )
    .await
    .unwrap()
    .1;
    let job = started["result"]["jobId"].as_str().unwrap().to_owned();
    let deadline = Instant::now() + Duration::from_secs(60);
    let record = loop {
        let (_, v) = support::post(
            &http,
            format!("{base}/rpa/api/queryProcessJob"),
            &[("X-Access-Token", &token)],
            json!({"processId": process, "startTime": shanghai(-3600), "endTime": shanghai(3600)}),
        )
        .await
        .unwrap();
        let rec: Option<Value> = v["result"]["record"]
            .as_array()
            .and_then(|r| r.iter().find(|j| j["jobId"] == job.as_str()).cloned());
        if let Some(r) = rec.filter(|r| r["state"] == "Successful") {
            break r;
        }
        assert!(Instant::now() < deadline, "the demo job did not finish: {v}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(record["outputValues"]["invoice"], "42", "{record}");
    assert_eq!(record["outputValues"]["entered"], true);
    let (_, steps) = support::post(
        &http,
        format!("{base}/rpa/api/jobStatus"),
        &[("X-Access-Token", &token)],
        json!({"jobId": job}),
    )
    .await
    .unwrap();
    assert_eq!(
        steps["result"].as_array().map(Vec::len),
        Some(2),
        "the package's two steps: {steps}"
    );

    // A restart keeps the package it installed (no second one).
    drop(first);
    let _second = server();
    let (admin, _) = support::login(&http, &base, "admin", "admin-demo-password").await;
    let listed = support::get_json(&http, format!("{base}/admin/processes"), &admin).await;
    let invoice = listed["result"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["processName"] == "Invoice entry")
        .cloned()
        .unwrap();
    assert!(
        invoice["packageDownloadUri"].as_str().unwrap().contains("/v1/file/"),
        "{invoice}"
    );
    // The README's UiPath credentials: the personal access token and the OAuth client.
    let releases: Value = http
        .get(format!("{base}/demo/DefaultTenant/orchestrator_/odata/Releases"))
        .header("Authorization", "Bearer rpa-demo-personal-access-token")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(
        releases["value"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["Name"] == "Invoice entry"),
        "{releases}"
    );
    let oauth: Value = http
        .post(format!("{base}/oauth/token"))
        .json(&json!({"grant_type": "refresh_token", "client_id": "demo-client", "refresh_token": "demo-user-key"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(oauth["token_type"], "Bearer", "{oauth}");
    let packages = std::fs::read_dir(dir.join("files")).unwrap().count();
    assert_eq!(
        packages,
        rpa::server::DEMO_PACKAGES.len(),
        "one package file per demo process, installed once"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
