//! The server's outbound sender (`--events-url`): every domain event is
//! POSTed to a receiver, signed with `RPA_EVENTS_SECRET`, at least once and
//! in order; a batch the receiver refuses is sent again. A real server
//! process, a real HTTP robot, a receiver on a real socket.

use std::net::TcpListener;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use serde_json::{Value, json};

mod support;

use support::robots::{Nodes, Tally, http_robot};
use support::{Proc, all_events, login, post, start_server_with_env};

const CONFIG: &str = r#"{
  "admin": { "name": "admin", "password": "admin-pw" },
  "processes": [ { "name": "P", "type": "Unattended", "maxRunNum": 0 } ],
  "users": [ { "name": "alice", "password": "pw", "processes": ["P"] } ],
  "vendors": [ { "supplierCode": "acme", "secret": "acme-secret" } ]
}"#;

const SECRET: &str = "receiver-secret";

/// What the receiver was sent: the events header, the signature header and
/// the body of each POST, and whether it accepted it.
#[derive(Default)]
struct Received {
    posts: Mutex<Vec<(String, String, Bytes, bool)>>,
}

async fn receive(State(r): State<Arc<Received>>, headers: HeaderMap, body: Bytes) -> StatusCode {
    let header = |n: &str| headers.get(n).and_then(|v| v.to_str().ok()).unwrap_or("").to_owned();
    let mut posts = r.posts.lock().unwrap();
    // The first delivery is refused: it must come again.
    let accept = !posts.is_empty();
    posts.push((header("x-rpa-events"), header("x-rpa-signature"), body, accept));
    if accept {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_event_reaches_the_webhook_signed_in_order_and_a_refused_batch_comes_again() {
    let received = Arc::new(Received::default());
    let receiver = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let hook = format!("http://{}/hook", receiver.local_addr().unwrap());
    let app = axum::Router::new()
        .route("/hook", axum::routing::post(receive))
        .with_state(received.clone());
    tokio::spawn(async move { axum::serve(receiver, app).await.unwrap() });

    let dir = std::env::temp_dir().join(format!("rpa-webhook-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("config.json"), CONFIG).unwrap();
    let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let base = format!("http://127.0.0.1:{port}");
    let db = dir.join("rpa.db").display().to_string();
    // Killed when dropped, so a failing assertion leaves no server behind.
    let server = Proc(start_server_with_env(
        &dir,
        &db,
        port,
        &["--events-url", &hook],
        &[("RPA_EVENTS_SECRET", SECRET)],
    ));
    let http = reqwest::Client::new();
    let (token, process) = login(&http, &base, "alice", "pw").await;
    let stop = Arc::new(AtomicBool::new(false));
    let robot = tokio::spawn(http_robot(
        Nodes {
            bases: vec![base.clone()],
            at: 0,
        },
        "r1".into(),
        stop.clone(),
        Arc::new(Tally::default()),
    ));
    let mut jobs = Vec::new();
    for _ in 0..3 {
        let (_, v) = post(
            &http,
            format!("{base}/rpa/api/startJob"),
            &[("X-Access-Token", &token)],
            json!({"processId": process, "params": {}}),
        )
        .await
        .unwrap();
        jobs.push(v["result"]["jobId"].as_str().unwrap().to_owned());
    }

    // Wait until the receiver accepted the end of every job.
    let delivered = |r: &Received| -> Vec<Value> {
        r.posts
            .lock()
            .unwrap()
            .iter()
            .filter(|p| p.3)
            .flat_map(|p| {
                serde_json::from_slice::<Value>(&p.2).unwrap()["events"]
                    .as_array()
                    .unwrap()
                    .clone()
            })
            .collect()
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let ended: Vec<String> = delivered(&received)
            .iter()
            .filter(|e| e["type"] == "job_ended")
            .map(|e| e["key"].as_str().unwrap().to_owned())
            .collect();
        if jobs.iter().all(|j| ended.contains(j)) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the webhook did not get every job's end: {ended:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    robot.await.unwrap();

    let posts = received.posts.lock().unwrap().clone();
    let now = chrono::Utc::now().timestamp();
    for (events, signature, body, _) in &posts {
        assert!(
            rpa::core::auth::verify_delivery(SECRET.as_bytes(), signature, body, now, 300),
            "delivery {events} is signed with the secret"
        );
    }
    assert!(posts.len() >= 2);
    assert_eq!(posts[1].0, posts[0].0, "the refused batch came again, the same");
    assert_eq!(posts[1].2, posts[0].2);

    // What the receiver accepted is what the server holds, in order.
    let (admin, _) = login(&http, &base, "admin", "admin-pw").await;
    let held = all_events(&http, &base, &admin).await;
    let got = delivered(&received);
    let seqs: Vec<u64> = got.iter().map(|e| e["seq"].as_u64().unwrap()).collect();
    assert!(seqs.windows(2).all(|w| w[0] < w[1]), "in order, none twice: {seqs:?}");
    assert_eq!(
        got,
        held[..got.len()].to_vec(),
        "the events the server holds, as it holds them"
    );
    drop(server);
    let _ = std::fs::remove_dir_all(&dir);
}
