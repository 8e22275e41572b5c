//! Two-level collaboration with two real servers: a child reports its
//! run results to its parent, across a parent outage and a kill -9 of the
//! child, and the parent counts each job once.

use std::net::TcpListener;
use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

mod support;

use support::Proc;

const SECRET: &str = "branch-one-shared-secret";

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn server(dir: &Path, port: u16) -> Proc {
    Proc(support::start_server(
        dir,
        &dir.join("rpa.db").to_string_lossy(),
        port,
        &[],
    ))
}

/// The parent's figures of `branch-1` for "Invoice entry": (successful, results).
async fn figures(http: &reqwest::Client, parent: &str, token: &str) -> (u64, u64) {
    let v = support::get_json(http, format!("{parent}/admin/children"), token).await;
    let Some(child) = v["result"]
        .as_array()
        .and_then(|c| c.iter().find(|c| c["child"] == "branch-1"))
    else {
        return (0, 0);
    };
    let successful = child["figures"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["process"] == "Invoice entry")
        .map(|f| f["successful"].as_u64().unwrap())
        .sum();
    (successful, child["results"].as_u64().unwrap())
}

async fn start_jobs(http: &reqwest::Client, child: &str, token: &str, process: &str, n: usize) -> Vec<String> {
    let mut jobs = Vec::new();
    for _ in 0..n {
        let (_, v) = support::post(
            http,
            format!("{child}/rpa/api/startJob"),
            &[("X-Access-Token", token)],
            json!({"processId": process, "params": {}}),
        )
        .await
        .unwrap();
        let job = v["result"]["jobId"].as_str().unwrap_or_else(|| panic!("a job: {v}"));
        jobs.push(job.to_owned());
    }
    jobs
}

async fn wait_ended(http: &reqwest::Client, child: &str, token: &str, jobs: &[String]) {
    let deadline = Instant::now() + Duration::from_secs(90);
    for j in jobs {
        loop {
            let v = support::get_json(http, format!("{child}/console/api/jobs/{j}"), token).await;
            if v["result"]["state"] == "Successful" {
                break;
            }
            assert!(Instant::now() < deadline, "job {j} did not end: {v}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

async fn wait_figures(http: &reqwest::Client, parent: &str, token: &str, want: u64) {
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let got = figures(http, parent, token).await;
        if got == (want, want) {
            return;
        }
        assert!(got.0 <= want && got.1 <= want, "counted twice: {got:?}, want {want}");
        assert!(Instant::now() < deadline, "the parent shows {got:?}, want {want}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_child_reports_each_run_once_across_outages_and_kills() {
    let root = std::env::temp_dir().join(format!("rpa-federation-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    let (pdir, cdir) = (root.join("parent"), root.join("child"));
    std::fs::create_dir_all(&pdir).unwrap();
    std::fs::create_dir_all(&cdir).unwrap();
    let (pport, cport) = (free_port(), free_port());
    let (parent, child) = (format!("http://127.0.0.1:{pport}"), format!("http://127.0.0.1:{cport}"));
    std::fs::write(
        pdir.join("config.json"),
        json!({
            "admin": {"name": "admin", "password": "parent-admin-pw"},
            "processes": [{"name": "Month end", "type": "Unattended", "maxRunNum": 1}],
            "children": [{"name": "branch-1", "secret": SECRET}]
        })
        .to_string(),
    )
    .unwrap();
    std::fs::write(
        cdir.join("config.json"),
        json!({
            "admin": {"name": "admin", "password": "child-admin-pw"},
            "processes": [{"name": "Invoice entry", "type": "Unattended", "maxRunNum": 1}],
            "vendors": [{"supplierCode": "acme", "secret": "acme-vendor-secret"}],
            "parent": {"url": parent, "name": "branch-1", "secret": SECRET}
        })
        .to_string(),
    )
    .unwrap();
    let http = reqwest::Client::new();
    let mut parent_server = Some(server(&pdir, pport));
    let mut child_server = Some(server(&cdir, cport));
    let (ptoken, _) = support::login(&http, &parent, "admin", "parent-admin-pw").await;
    let (ctoken, _) = support::login(&http, &child, "admin", "child-admin-pw").await;
    let procs = support::get_json(&http, format!("{child}/admin/processes"), &ctoken).await;
    let process = procs["result"][0]["processId"].as_str().unwrap().to_owned();
    support::upload_package(&http, &child, &ctoken, &process, "echo run\n").await;
    let _robot = support::start_robot(&child, &cdir, "robot-2", "acme-vendor-secret");

    let jobs = start_jobs(&http, &child, &ctoken, &process, 4).await;
    wait_ended(&http, &child, &ctoken, &jobs).await;
    wait_figures(&http, &parent, &ptoken, 4).await;

    // The parent goes away; the child keeps running jobs, then is killed.
    parent_server.take();
    let jobs = start_jobs(&http, &child, &ctoken, &process, 3).await;
    wait_ended(&http, &child, &ctoken, &jobs).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    child_server.take(); // SIGKILL
    parent_server = Some(server(&pdir, pport));
    child_server = Some(server(&cdir, cport));
    let (ptoken, _) = support::login(&http, &parent, "admin", "parent-admin-pw").await;
    wait_figures(&http, &parent, &ptoken, 7).await;
    // Nothing more arrives later.
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(figures(&http, &parent, &ptoken).await, (7, 7));

    // A report that is not signed with the child's secret is refused.
    let forged = http
        .post(format!("{parent}/federation/v1/results"))
        .header("x-rpa-child", "branch-1")
        .header(
            "x-rpa-signature",
            rpa::core::auth::sign_delivery(b"not-the-secret", chrono::Utc::now().timestamp(), b"{}"),
        )
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status(), 401);
    let v: Value = forged.json().await.unwrap();
    assert_eq!(v["code"], 401, "{v}");
    let body = json!({"results": [{"seq": 1, "process": "x", "day": "2026-01-01", "state": "Successful"}]}).to_string();
    let unknown = http
        .post(format!("{parent}/federation/v1/results"))
        .header("x-rpa-child", "branch-9")
        .header(
            "x-rpa-signature",
            rpa::core::auth::sign_delivery(SECRET.as_bytes(), chrono::Utc::now().timestamp(), body.as_bytes()),
        )
        .body(body.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(unknown.status(), 401, "an unknown child");
    // A report the parent already applied (a child that died before it
    // heard the answer sends it again) changes nothing.
    let again = http
        .post(format!("{parent}/federation/v1/results"))
        .header("x-rpa-child", "branch-1")
        .header(
            "x-rpa-signature",
            rpa::core::auth::sign_delivery(SECRET.as_bytes(), chrono::Utc::now().timestamp(), body.as_bytes()),
        )
        .body(body)
        .send()
        .await
        .unwrap();
    let v: Value = again.json().await.unwrap();
    assert_eq!(v["result"]["results"], 7, "{v}");
    assert_eq!(figures(&http, &parent, &ptoken).await, (7, 7));

    // The parent publishes a process; the child pulls it from the parent's
    // catalogue and runs it on its own robot.
    let procs = support::get_json(&http, format!("{parent}/admin/processes"), &ptoken).await;
    let month_end = procs["result"][0]["processId"].as_str().unwrap().to_owned();
    support::upload_package(
        &http,
        &parent,
        &ptoken,
        &month_end,
        "echo '::output {\"closed\": true}'\n",
    )
    .await;
    let (_, published) = support::post(
        &http,
        format!("{parent}/admin/catalogue"),
        &[("X-Access-Token", &ptoken)],
        json!({"processId": month_end, "description": "Closes the month", "tags": ["finance"]}),
    )
    .await
    .unwrap();
    let listing = published["result"]["listingId"].as_i64().expect("a listing");
    let (ctoken, _) = support::login(&http, &child, "admin", "child-admin-pw").await;
    let offered = support::get_json(&http, format!("{child}/admin/catalogue/parent"), &ctoken).await;
    assert_eq!(offered["result"][0]["name"], "Month end", "{offered}");
    let (_, pulled) = support::post(
        &http,
        format!("{child}/admin/catalogue/parent/{listing}/pull"),
        &[("X-Access-Token", &ctoken)],
        json!({"name": "Month end (branch)"}),
    )
    .await
    .unwrap();
    assert_eq!(pulled["result"]["processName"], "Month end (branch)", "{pulled}");
    let pulled_id = pulled["result"]["processId"].as_str().unwrap().to_owned();
    let (_, again) = support::post(
        &http,
        format!("{child}/admin/catalogue/parent/{listing}/pull"),
        &[("X-Access-Token", &ctoken)],
        json!({"name": "Month end (branch)"}),
    )
    .await
    .unwrap();
    assert!(again["message"].as_str().unwrap().contains("already exists"), "{again}");
    let jobs = start_jobs(&http, &child, &ctoken, &pulled_id, 1).await;
    wait_ended(&http, &child, &ctoken, &jobs).await;
    let job = support::get_json(&http, format!("{child}/console/api/jobs/{}", jobs[0]), &ctoken).await;
    assert_eq!(
        job["result"]["outputs"]["closed"], true,
        "the parent's package ran: {job}"
    );
    drop((parent_server, child_server));
    let _ = std::fs::remove_dir_all(&root);
}
