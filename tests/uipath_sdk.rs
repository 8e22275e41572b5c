//! UiPath's own Python SDK (`uipath` on PyPI, pinned in
//! `tests/uipath_sdk/requirements.txt`) against the server, unmodified:
//! `tests/uipath_sdk/client.py` starts a process with input arguments,
//! follows it to its end, lists jobs with a filter, stops a running job,
//! adds a queue item and reads an asset, with a real robot running the jobs;
//! a credential is refused to it (a person), while a process that runs the
//! SDK inside the robot (`tests/uipath_sdk/robot.py`) reads the credential,
//! sets its robot's value of an asset, works a queue item as a transaction
//! and writes a bucket file through its run token; a person reads the file.
//!
//! The SDK's interpreter is `$UIPATH_SDK_PYTHON` (`.ci/run` makes a virtual
//! environment for it). Without it the test says why and passes on a
//! developer's machine; under `CI=true` it fails.

use std::net::TcpListener;
use std::time::Duration;

use serde_json::{Value, json};

mod support;

use support::Proc;

const CONFIG: &str = r#"{
  "admin": { "name": "admin", "password": "admin-pw" },
  "processes": [
    { "name": "Invoice", "type": "Unattended", "maxRunNum": 0,
      "arguments": [ { "name": "invoice", "type": "int", "required": true } ] },
    { "name": "Claims", "type": "Queue" },
    { "name": "Vault", "type": "Unattended", "maxRunNum": 0 },
    { "name": "Batch", "type": "Queue", "queueTrigger": { "minItems": 1000, "maxConcurrent": 1 } }
  ],
  "users": [ { "name": "ops", "password": "pw", "processes": ["Invoice", "Claims", "Vault", "Batch"] } ],
  "vendors": [ { "supplierCode": "acme", "secret": "acme-secret" } ],
  "uipath": { "clients": [ { "clientId": "ops-client", "clientSecret": "ops-secret", "user": "ops" } ] }
}"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uipaths_python_sdk_drives_the_server() {
    let Some(python) = std::env::var("UIPATH_SDK_PYTHON").ok().filter(|p| !p.is_empty()) else {
        assert!(
            !std::env::var("CI").is_ok_and(|v| v == "true"),
            "CI=true but UIPATH_SDK_PYTHON is not set: .ci/run installs UiPath's SDK and sets it"
        );
        eprintln!(
            "skipping: UIPATH_SDK_PYTHON is not set (pip install -r tests/uipath_sdk/requirements.txt in a venv, then point it at its python)"
        );
        return;
    };
    let dir = std::env::temp_dir().join(format!("rpa-uipath-sdk-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("config.json"), CONFIG).unwrap();
    let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let db = dir.join("rpa.db").to_str().unwrap().to_owned();
    let _server = Proc(support::start_server(&dir, &db, port, &[]));
    let base = format!("http://127.0.0.1:{port}");
    let http = reqwest::Client::new();
    let (admin, _) = support::login(&http, &base, "admin", "admin-pw").await;
    let processes = support::get_json(&http, format!("{base}/admin/processes"), &admin).await;
    let invoice = processes["result"][0]["processId"].as_str().unwrap().to_owned();
    support::upload_package(
        &http,
        &base,
        &admin,
        &invoice,
        "if [ \"$RPA_ARG_INVOICE\" = 99 ]; then sleep 30; fi\necho \"::output {\\\"total\\\": $RPA_ARG_INVOICE}\"\n",
    )
    .await;
    // A process that runs UiPath's SDK inside the robot (tests/uipath_sdk/robot.py).
    let vault = processes["result"][2]["processId"].as_str().unwrap().to_owned();
    let robot_py = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/uipath_sdk/robot.py");
    support::upload_package(
        &http,
        &base,
        &admin,
        &vault,
        &format!("UIPATH_TELEMETRY_ENABLED=false exec '{python}' '{robot_py}'\n"),
    )
    .await;
    for body in [
        json!({"Name": "vault-login", "ValueType": "Credential", "CredentialUsername": "svc", "CredentialPassword": "s3cret-vault"}),
        json!({"Name": "counter", "ValueScope": "PerRobot", "ValueType": "Text", "StringValue": "unset"}),
    ] {
        let r = http
            .post(format!("{base}/odata/Assets"))
            .bearer_auth(&admin)
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 201);
    }
    let r = http
        .post(format!("{base}/odata/Buckets"))
        .bearer_auth(&admin)
        .json(&json!({"Name": "Reports"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let _robot = support::start_robot(&base, &dir, "robot-1", "acme-secret");
    // An asset for the script to read (seed 000 session tokens are bearer tokens too).
    let asset = http
        .post(format!("{base}/odata/Assets"))
        .bearer_auth(&admin)
        .json(&json!({"Name": "greeting", "ValueScope": "Global", "ValueType": "Text", "StringValue": "hello"}))
        .send()
        .await
        .unwrap();
    assert_eq!(asset.status(), 201);
    let token: Value = http
        .post(format!("{base}/oauth/token"))
        .json(&json!({"grant_type": "client_credentials", "client_id": "ops-client", "client_secret": "ops-secret"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/uipath_sdk/client.py");
    let run = tokio::process::Command::new(&python)
        .arg(script)
        .env("UIPATH_URL", format!("{base}/acme/DefaultTenant"))
        .env("UIPATH_ACCESS_TOKEN", token["access_token"].as_str().unwrap())
        .env("UIPATH_TELEMETRY_ENABLED", "false")
        .output();
    let out = tokio::time::timeout(Duration::from_secs(180), run)
        .await
        .expect("the SDK script finished")
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "the SDK script failed:\n{stdout}\n{stderr}");
    assert!(stdout.lines().last() == Some("ok"), "{stdout}");
    // The item the robot's process took as a transaction ended as it said.
    let items: Value = http
        .get(format!("{base}/odata/QueueItems?$filter=Reference eq 'R-1'"))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(items["value"][0]["Status"], "Successful", "{items}");
    assert_eq!(items["value"][0]["Output"], json!({"by": "robot-1"}), "{items}");
    let _ = std::fs::remove_dir_all(&dir);
}
