//! A server stopped the way systemd and container runtimes stop it (SIGTERM)
//! exits cleanly: status 0, its robots' WebSockets closed with 1001 (going
//! away), and their disconnects recorded, as the server started again on the
//! same file shows.

use std::net::TcpListener;
use std::time::{Duration, Instant};

use futures::{SinkExt, StreamExt};
use rpa::core::auth::supplier_proof;
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

mod support;

use support::{get_json, login, start_server};

const CONFIG: &str = r#"{
  "admin": { "name": "admin", "password": "admin-pw" },
  "processes": [ { "name": "P", "type": "Unattended" } ],
  "users": [ { "name": "alice", "password": "pw", "processes": ["P"] } ],
  "vendors": [ { "supplierCode": "acme", "secret": "acme-secret" } ]
}"#;

fn ws_message(action: &str, body: Value) -> Message {
    Message::Text(json!({"action": action, "body": body.to_string()}).to_string().into())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_closes_robot_connections_records_their_disconnects_and_exits_0() {
    let dir = std::env::temp_dir().join(format!("rpa-shutdown-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("config.json"), CONFIG).unwrap();
    let db = dir.join("rpa.db").display().to_string();
    let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let base = format!("http://127.0.0.1:{port}");
    let mut server = start_server(&dir, &db, port, &["--heartbeat-timeout", "30"]);
    let http = reqwest::Client::new();
    login(&http, &base, "alice", "pw").await;

    let (mut ws, _) = tokio_tungstenite::connect_async(format!("ws://127.0.0.1:{port}/robothub/r1"))
        .await
        .unwrap();
    let proof = supplier_proof("acme-secret", "r1");
    ws.send(ws_message(
        "Register",
        json!({"supplierCode": "acme", "supplierSecret": proof}),
    ))
    .await
    .unwrap();
    ws.send(ws_message("Heartbeat", json!({}))).await.unwrap();
    let (admin, _) = login(&http, &base, "admin", "admin-pw").await;
    let state = async |base: &str| -> String {
        let v = get_json(&http, format!("{base}/admin/robots"), &admin).await;
        v["result"][0]["state"].as_str().unwrap_or("").to_owned()
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    while state(&base).await != "Available" {
        assert!(Instant::now() < deadline, "the robot registered");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let term = std::process::Command::new("kill")
        .args(["-TERM", &server.id().to_string()])
        .status()
        .unwrap();
    assert!(term.success());
    let close = loop {
        match tokio::time::timeout(Duration::from_secs(10), ws.next()).await.unwrap() {
            Some(Ok(Message::Close(frame))) => break frame,
            Some(Ok(_)) => continue,
            other => panic!("a Close frame, not {other:?}"),
        }
    };
    assert_eq!(close.map(|f| u16::from(f.code)), Some(1001), "going away");
    let deadline = Instant::now() + Duration::from_secs(15);
    let status = loop {
        if let Some(s) = server.try_wait().unwrap() {
            break s;
        }
        assert!(Instant::now() < deadline, "the server exits after SIGTERM");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(status.code(), Some(0), "a clean exit, not killed by the signal");

    // Started again on the same file: the robot's disconnect was recorded.
    let mut again = start_server(&dir, &db, port, &["--heartbeat-timeout", "30"]);
    let (admin2, _) = login(&http, &base, "admin", "admin-pw").await;
    let v = get_json(&http, format!("{base}/admin/robots"), &admin2).await;
    assert_eq!(v["result"][0]["state"], "Disconnected", "{v}");
    let audit = get_json(&http, format!("{base}/admin/audit"), &admin2).await;
    assert!(
        audit.to_string().contains("robot.disconnect"),
        "the disconnect is in the audit log: {audit}"
    );
    again.kill().unwrap();
    again.wait().unwrap();
    let _ = std::fs::remove_dir_all(&dir);
}
