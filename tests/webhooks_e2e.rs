//! Webhook subscriptions with the example server and a real HTTP receiver:
//! signed deliveries of the kinds asked for, in order, a refused delivery
//! tried again under the same delivery id, a delivery that fails every try
//! kept and redelivered on request, nothing after deletion, bad input
//! refused; deliveries that survive a server killed with SIGKILL.

use std::net::TcpListener;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::http::{HeaderMap, StatusCode};
use serde_json::{Value, json};

mod support;

use support::Proc;

/// A POST as received: path, delivery id, event kind, signature, body.
type Post = (String, String, String, String, String);

#[derive(Default)]
struct Receiver {
    /// Every POST.
    seen: Mutex<Vec<Post>>,
    /// POSTs to /ok still to refuse.
    refuse: AtomicUsize,
    /// Whether /flaky accepts.
    flaky_ok: AtomicBool,
}

async fn receive(
    axum::extract::State(r): axum::extract::State<Arc<Receiver>>,
    axum::extract::Path(path): axum::extract::Path<String>,
    h: HeaderMap,
    body: String,
) -> StatusCode {
    let header = |n: &str| h.get(n).and_then(|v| v.to_str().ok()).unwrap_or("").to_owned();
    r.seen.lock().unwrap().push((
        path.clone(),
        header("x-rpa-delivery"),
        header("x-rpa-event"),
        header("x-rpa-signature"),
        body,
    ));
    let ok = match path.as_str() {
        "ok" => r
            .refuse
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_err(),
        _ => r.flaky_ok.load(Ordering::SeqCst),
    };
    if ok {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    }
}

async fn admin(
    http: &reqwest::Client,
    method: reqwest::Method,
    url: String,
    token: &str,
    body: Option<Value>,
) -> Value {
    let mut r = http.request(method, url).header("X-Access-Token", token);
    if let Some(b) = body {
        r = r.json(&b);
    }
    r.send().await.unwrap().json().await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscriptions_get_signed_events_in_order_retried_and_redelivered() {
    let dir = std::env::temp_dir().join(format!("rpa-webhooks-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let recv = Arc::new(Receiver::default());
    recv.refuse.store(1, Ordering::SeqCst);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let hooks = format!("http://{}", listener.local_addr().unwrap());
    let app = axum::Router::new()
        .route("/{path}", axum::routing::post(receive))
        .with_state(recv.clone());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let base = format!("http://127.0.0.1:{port}");
    let _server = Proc(
        Command::new(support::server_binary())
            .args(["--listen", &format!("127.0.0.1:{port}"), "--db", "memory"])
            .args(["--webhook-retry-ms", "100,100,100"])
            .arg("--files")
            .arg(dir.join("files"))
            .arg("--secret-key-file")
            .arg(dir.join("rpa.key"))
            .stdout(Stdio::from(std::fs::File::create(dir.join("server.log")).unwrap()))
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let http = reqwest::Client::new();
    let (token, _) = support::login(&http, &base, "admin", "admin-demo-password").await;
    let (alice, process) = support::login(&http, &base, "alice", "wonderland").await;
    let post = reqwest::Method::POST;

    // Bad input is refused, nothing stored.
    for (body, why) in [
        (json!({"url": "ftp://example.com/x"}), "not an http(s) URL"),
        (
            json!({"url": format!("{hooks}/ok"), "events": ["job_exploded"]}),
            "job_exploded",
        ),
        (
            json!({"url": format!("{hooks}/ok"), "events": "job_ended"}),
            "list of event kinds",
        ),
    ] {
        let v = admin(
            &http,
            post.clone(),
            format!("{base}/admin/webhooks"),
            &token,
            Some(body),
        )
        .await;
        assert_eq!(v["code"], 500, "{v}");
        assert!(v["message"].as_str().unwrap().contains(why), "{v}");
    }
    let v = admin(
        &http,
        post.clone(),
        format!("{base}/admin/webhooks"),
        &alice,
        Some(json!({"url": format!("{hooks}/ok")})),
    )
    .await;
    assert_ne!(v["code"], 200, "alice may not subscribe: {v}");
    let listed = admin(
        &http,
        reqwest::Method::GET,
        format!("{base}/admin/webhooks"),
        &token,
        None,
    )
    .await;
    assert_eq!(listed["result"], json!([]));

    let ok = admin(
        &http,
        post.clone(),
        format!("{base}/admin/webhooks"),
        &token,
        Some(json!({"url": format!("{hooks}/ok"), "events": ["job_ended"]})),
    )
    .await;
    let ok_id = ok["result"]["id"].as_i64().unwrap();
    let secret = ok["result"]["secret"].as_str().unwrap().to_owned();
    assert_eq!(secret.len(), 64);
    let flaky = admin(
        &http,
        post.clone(),
        format!("{base}/admin/webhooks"),
        &token,
        Some(json!({"url": format!("{hooks}/flaky")})),
    )
    .await;
    let flaky_id = flaky["result"]["id"].as_i64().unwrap();
    let listed = admin(
        &http,
        reqwest::Method::GET,
        format!("{base}/admin/webhooks"),
        &token,
        None,
    )
    .await;
    assert!(
        listed["result"][0].get("secret").is_none(),
        "the secret is shown once: {listed}"
    );

    // Three jobs end (started, then stopped before any robot takes them).
    for n in 0..3 {
        let started = support::post(
            &http,
            format!("{base}/rpa/api/startJob"),
            &[("X-Access-Token", &alice)],
            json!({"processId": process, "params": {"invoice": n}}),
        )
        .await
        .unwrap()
        .1;
        let job = started["result"]["jobId"].as_str().unwrap().to_owned();
        support::post(
            &http,
            format!("{base}/rpa/api/stopJob"),
            &[("X-Access-Token", &alice)],
            json!({"jobId": job}),
        )
        .await
        .unwrap();
    }
    let delivered = |path: &str| {
        recv.seen
            .lock()
            .unwrap()
            .iter()
            .filter(|s| s.0 == path)
            .cloned()
            .collect::<Vec<_>>()
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    while delivered("ok").len() < 4 || delivered("flaky").len() < 12 {
        assert!(
            Instant::now() < deadline,
            "deliveries missing: {:?}",
            recv.seen.lock().unwrap()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;

    // /ok: the first try refused, then the same delivery again, then the rest, in order.
    let ok_seen = delivered("ok");
    assert_eq!(ok_seen.len(), 4, "{ok_seen:?}");
    assert_eq!(ok_seen[0].1, ok_seen[1].1, "a retry carries the same delivery id");
    let mut seqs = Vec::new();
    for (_, id, kind, signature, body) in &ok_seen[1..] {
        assert_eq!(kind, "job_ended");
        let now = chrono::Utc::now().timestamp();
        assert!(
            rpa_core::auth::verify_delivery(secret.as_bytes(), signature, body.as_bytes(), now, 300),
            "signed with the secret given at creation"
        );
        let v: Value = serde_json::from_str(body).unwrap();
        assert_eq!(v["type"], "job_ended");
        assert_eq!(v["state"], "Canceled");
        assert_eq!(*id, format!("{ok_id}-{}", v["seq"]));
        seqs.push(v["seq"].as_u64().unwrap());
    }
    assert!(seqs.windows(2).all(|w| w[0] < w[1]), "in order: {seqs:?}");

    // /flaky (every kind) refused every try: each event kept as a failure after 4 tries.
    let failures_url = format!("{base}/admin/webhooks/{flaky_id}/failures");
    let deadline = Instant::now() + Duration::from_secs(30);
    let failures = loop {
        let f = admin(&http, reqwest::Method::GET, failures_url.clone(), &token, None).await;
        if f["result"].as_array().is_some_and(|a| a.len() >= 3) {
            break f["result"].as_array().unwrap().clone();
        }
        assert!(Instant::now() < deadline, "no failures kept: {f}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(failures.iter().all(|f| f["attempts"] == 4), "{failures:?}");
    assert!(failures.iter().all(|f| f["error"].as_str().unwrap().contains("503")));

    // The receiver recovers; an administrator redelivers one failure.
    recv.flaky_ok.store(true, Ordering::SeqCst);
    let first = failures[0]["id"].as_i64().unwrap();
    let asked = admin(
        &http,
        post.clone(),
        format!("{failures_url}/{first}/redeliver"),
        &token,
        None,
    )
    .await;
    assert_eq!(asked["code"], 200, "{asked}");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let f = admin(&http, reqwest::Method::GET, failures_url.clone(), &token, None).await;
        if f["result"][0]["delivered"] == true {
            break;
        }
        assert!(Instant::now() < deadline, "not redelivered: {f}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let last = delivered("flaky").last().unwrap().clone();
    assert_eq!(
        serde_json::from_str::<Value>(&last.4).unwrap()["seq"],
        failures[0]["seq"],
        "the failed event, as it was"
    );

    // Deleted: nothing more.
    let deleted = admin(
        &http,
        reqwest::Method::DELETE,
        format!("{base}/admin/webhooks/{ok_id}"),
        &token,
        None,
    )
    .await;
    assert_eq!(deleted["result"]["enabled"], false);
    let before = delivered("ok").len();
    let started = support::post(
        &http,
        format!("{base}/rpa/api/startJob"),
        &[("X-Access-Token", &alice)],
        json!({"processId": process, "params": {"invoice": 9}}),
    )
    .await
    .unwrap()
    .1;
    let job = started["result"]["jobId"].as_str().unwrap().to_owned();
    support::post(
        &http,
        format!("{base}/rpa/api/stopJob"),
        &[("X-Access-Token", &alice)],
        json!({"jobId": job}),
    )
    .await
    .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while delivered("flaky").iter().filter(|s| s.4.contains(&job)).count() == 0 {
        assert!(Instant::now() < deadline, "the other subscription got nothing");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(delivered("ok").len(), before, "a deleted subscription gets nothing");
    let _ = std::fs::remove_dir_all(&dir);
}

/// Counts the POSTs it gets, slowly (each answer waits 50 ms).
async fn slow_receive(
    axum::extract::State(r): axum::extract::State<Arc<Receiver>>,
    h: HeaderMap,
    body: String,
) -> StatusCode {
    tokio::time::sleep(Duration::from_millis(50)).await;
    let header = |n: &str| h.get(n).and_then(|v| v.to_str().ok()).unwrap_or("").to_owned();
    r.seen.lock().unwrap().push((
        "slow".into(),
        header("x-rpa-delivery"),
        header("x-rpa-event"),
        header("x-rpa-signature"),
        body,
    ));
    StatusCode::OK
}

fn server(dir: &std::path::Path, db: &str, port: u16) -> Proc {
    Proc(
        Command::new(support::server_binary())
            .args(["--listen", &format!("127.0.0.1:{port}"), "--db", db])
            .arg("--files")
            .arg(dir.join("files"))
            .arg("--secret-key-file")
            .arg(dir.join("rpa.key"))
            .stdout(Stdio::from(
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(dir.join("server.log"))
                    .unwrap(),
            ))
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deliveries_survive_a_server_killed_mid_stream() {
    let dir = std::env::temp_dir().join(format!("rpa-webhooks-kill-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let db = dir.join("rpa.db").to_str().unwrap().to_owned();
    let recv = Arc::new(Receiver::default());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let hooks = format!("http://{}", listener.local_addr().unwrap());
    let app = axum::Router::new()
        .route("/slow", axum::routing::post(slow_receive))
        .with_state(recv.clone());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let base = format!("http://127.0.0.1:{port}");
    let mut first = server(&dir, &db, port);
    let http = reqwest::Client::new();
    let (token, _) = support::login(&http, &base, "admin", "admin-demo-password").await;
    let (alice, process) = support::login(&http, &base, "alice", "wonderland").await;
    let sub = admin(
        &http,
        reqwest::Method::POST,
        format!("{base}/admin/webhooks"),
        &token,
        Some(json!({"url": format!("{hooks}/slow"), "events": ["job_ended"]})),
    )
    .await;
    let secret = sub["result"]["secret"].as_str().unwrap().to_owned();

    // Thirty jobs end (started and stopped before a robot takes them).
    const JOBS: usize = 30;
    for n in 0..JOBS {
        let started = support::post(
            &http,
            format!("{base}/rpa/api/startJob"),
            &[("X-Access-Token", &alice)],
            json!({"processId": process, "params": {"invoice": n}}),
        )
        .await
        .unwrap()
        .1;
        let job = started["result"]["jobId"].as_str().unwrap().to_owned();
        support::post(
            &http,
            format!("{base}/rpa/api/stopJob"),
            &[("X-Access-Token", &alice)],
            json!({"jobId": job}),
        )
        .await
        .unwrap();
    }
    let events = support::all_events(&http, &base, &token).await;
    let ended: Vec<u64> = events
        .iter()
        .filter(|e| e["type"] == "job_ended")
        .map(|e| e["seq"].as_u64().unwrap())
        .collect();
    assert_eq!(ended.len(), JOBS);

    // Killed while the receiver has some of them.
    let deadline = Instant::now() + Duration::from_secs(30);
    while recv.seen.lock().unwrap().len() < 5 {
        assert!(Instant::now() < deadline, "no delivery before the kill");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    first.0.kill().unwrap(); // SIGKILL
    let _ = first.0.wait();
    let at_kill = recv.seen.lock().unwrap().len();
    assert!(at_kill < JOBS, "the kill came too late to tell anything ({at_kill})");

    // Restarted on the same database and key: every event arrives, in order, signed alike.
    let _second = server(&dir, &db, port);
    let deadline = Instant::now() + Duration::from_secs(60);
    let distinct = || {
        let mut seen = Vec::new();
        for s in recv.seen.lock().unwrap().iter() {
            if !seen.contains(&s.1) {
                seen.push(s.1.clone());
            }
        }
        seen
    };
    while distinct().len() < JOBS {
        assert!(
            Instant::now() < deadline,
            "deliveries missing after the restart: {}",
            distinct().len()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let sub_id = sub["result"]["id"].as_i64().unwrap();
    let expected: Vec<String> = ended.iter().map(|s| format!("{sub_id}-{s}")).collect();
    assert_eq!(distinct(), expected, "every event once at least, first seen in order");
    let now = chrono::Utc::now().timestamp();
    for (_, id, _, signature, body) in recv.seen.lock().unwrap().iter() {
        assert!(
            rpa_core::auth::verify_delivery(secret.as_bytes(), signature, body.as_bytes(), now, 300),
            "{id} signed with the secret given at creation"
        );
        let v: Value = serde_json::from_str(body).unwrap();
        assert_eq!(*id, format!("{sub_id}-{}", v["seq"]), "a repeat is the same delivery");
    }
    let _ = std::fs::remove_dir_all(&dir);
}
