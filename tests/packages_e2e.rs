//! Package versions over real sockets with a real robot: two versions
//! uploaded, jobs run the latest, a rollback pins the older one, and a
//! package damaged on the server's disk is refused by the robot's checksum
//! check instead of being run.

use std::net::TcpListener;

use serde_json::{Value, json};

mod support;

const V1: &str = "echo '::output {\"runs\": \"one\"}'\n";
const V2: &str = "echo '::output {\"runs\": \"two\"}'\n";

async fn upload(http: &reqwest::Client, base: &str, token: &str, process: &str, version: &str, body: &str) -> Value {
    http.post(format!("{base}/admin/processes/{process}/package?version={version}"))
        .header("X-Access-Token", token)
        .body(body.to_owned())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

/// Starts a job and waits for its end; the job as the console shows it.
async fn run(http: &reqwest::Client, base: &str, token: &str, process: &str) -> Value {
    let (_, started) = support::post(
        http,
        format!("{base}/rpa/api/startJob"),
        &[("X-Access-Token", token)],
        json!({"processId": process, "params": {"invoice": "1", "customer": "Eve"}}),
    )
    .await
    .unwrap();
    let job = started["result"]["jobId"].as_str().expect("a job");
    support::job_end(http, base, token, job).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jobs_run_the_latest_version_a_rollback_and_never_damaged_bytes() {
    let dir = std::env::temp_dir().join(format!("rpa-packages-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let base = format!("http://127.0.0.1:{port}");
    let _server = support::demo_server(&dir, &dir.join("rpa.db").to_string_lossy(), port, &[], &[]);
    let http = reqwest::Client::new();
    let (_, process) = support::login(&http, &base, "alice", "wonderland").await; // Invoice entry
    let (admin, _) = support::login(&http, &base, "admin", "admin-demo-password").await;
    let _robot = support::start_robot(&base, &dir, "robot-2", "acme-vendor-secret");

    // The demo's own package is 1.0.0; two more versions.
    let up = upload(&http, &base, &admin, &process, "1.1.0", V1).await;
    assert_eq!(up["result"]["current"], true, "{up}");
    let up = upload(&http, &base, &admin, &process, "1.2.0", V2).await;
    assert_eq!(
        (up["result"]["version"].clone(), up["result"]["current"].clone()),
        (json!("1.2.0"), json!(true))
    );
    let sha = up["result"]["sha256"].as_str().unwrap().to_owned();
    let refused = upload(&http, &base, &admin, &process, "1.2.0", V1).await;
    assert_eq!(refused["success"], false);
    assert!(
        refused["message"].as_str().unwrap().contains("never changes"),
        "{refused}"
    );
    let refused = upload(&http, &base, &admin, &process, "latest", V1).await;
    assert!(
        refused["message"].as_str().unwrap().contains("MAJOR.MINOR.PATCH"),
        "{refused}"
    );

    let job = run(&http, &base, &admin, &process).await;
    assert_eq!(job["outputs"]["runs"], "two", "{job}");

    // Rollback to 1.1.0.
    let (_, pinned) = support::post(
        &http,
        format!("{base}/admin/processes/{process}/package/pin"),
        &[("X-Access-Token", &admin)],
        json!({"version": "1.1.0"}),
    )
    .await
    .unwrap();
    assert_eq!(pinned["result"]["version"], "1.1.0", "{pinned}");
    let job = run(&http, &base, &admin, &process).await;
    assert_eq!(job["outputs"]["runs"], "one", "{job}");
    let list = support::get_json(&http, format!("{base}/admin/processes/{process}/packages"), &admin).await;
    let versions: Vec<(String, bool)> = list["result"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| {
            (
                v["version"].as_str().unwrap().to_owned(),
                v["current"].as_bool().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        versions,
        [("1.2.0".into(), false), ("1.1.0".into(), true), ("1.0.0".into(), false)],
        "{list}"
    );

    // Follow the latest again; then the latest's bytes are damaged on disk.
    let (_, followed) = support::post(
        &http,
        format!("{base}/admin/processes/{process}/package/pin"),
        &[("X-Access-Token", &admin)],
        json!({"version": null}),
    )
    .await
    .unwrap();
    assert_eq!(followed["result"]["version"], "1.2.0", "{followed}");
    let file = list["result"][0]["fileId"].as_str().unwrap();
    let download = http
        .get(format!("{base}/v1/file/{file}"))
        .header("X-Access-Token", &admin)
        .send()
        .await
        .unwrap();
    assert_eq!(download.headers()["x-checksum-sha256"], sha.as_str());
    assert!(
        download.headers()["repr-digest"]
            .to_str()
            .unwrap()
            .starts_with("sha-256=:")
    );
    std::fs::write(
        dir.join("files").join(file),
        "echo '::output {\"runs\": \"tampered\"}'\n",
    )
    .unwrap();
    let job = run(&http, &base, &admin, &process).await;
    assert_ne!(job["outputs"]["runs"], "tampered", "damaged bytes are never run: {job}");
    assert_eq!(job["state"], "Faulted", "{job}");
    let log = job["logs"].to_string();
    assert!(log.contains("checksum"), "the robot says why: {job}");
    let _ = std::fs::remove_dir_all(&dir);
}
