//! The robot hub over a real socket, spoken to as seed 001 A.1 says:
//! `{action, body}` with `body` a string holding JSON.

use rpa_core::store::prelude::*;
use std::sync::Arc;
use std::time::Duration;

use futures::{SinkExt, StreamExt};
use rpa_adapters_ws::{Hub, HubState, router};
use rpa_core::auth::{PasswordCost, supplier_proof};
use rpa_core::fixtures::{self, Basics};
use rpa_core::model::{Actor, JobState, ProcessSpec, ProcessType, RobotState, User};
use rpa_core::{Engine, EngineConfig, Key, ManualClock, MemoryStore, Timestamp};
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

struct Rig {
    addr: String,
    hub: Arc<Hub>,
    engine: Arc<Engine<MemoryStore>>,
    user: User,
    process: Key,
    clock: ManualClock,
}

async fn rig() -> Rig {
    let hub = Hub::new();
    let clock = ManualClock::new(Timestamp(1_700_000_000_000));
    let config = EngineConfig {
        password_cost: PasswordCost::TESTING,
        ..EngineConfig::default()
    };
    let engine = Arc::new(Engine::new(MemoryStore::new(), Arc::new(clock.clone()), config).with_transport(hub.clone()));
    let Basics { process: p, user } = fixtures::basics(&engine, ProcessSpec::new("p", ProcessType::Unattended))
        .await
        .unwrap();
    engine.bind_license(Actor::System, "r1", "LIC-1").await.unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let app = router(HubState {
        engine: engine.clone(),
        hub: hub.clone(),
    });
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    Rig {
        addr,
        hub,
        engine,
        user,
        process: p.key,
        clock,
    }
}

async fn open(rig: &Rig, robot: &str) -> Ws {
    let (ws, _) = tokio_tungstenite::connect_async(format!("ws://{}/robothub/{robot}", rig.addr))
        .await
        .unwrap();
    ws
}

async fn send(ws: &mut Ws, action: &str, body: Value) {
    let m = json!({"action": action, "body": body.to_string()});
    ws.send(Message::Text(m.to_string().into())).await.unwrap();
}

/// The next message as (action, body parsed from its string), or None if the socket closed.
async fn recv(ws: &mut Ws) -> Option<(String, Value)> {
    loop {
        let m = tokio::time::timeout(Duration::from_secs(5), ws.next())
            .await
            .expect("a message within 5 s");
        match m {
            Some(Ok(Message::Text(t))) => {
                let v: Value = serde_json::from_str(&t).unwrap();
                let body = match v.get("body") {
                    Some(Value::String(s)) => serde_json::from_str(s).unwrap(),
                    None => Value::Null,
                    other => panic!("body must be a string holding JSON, got {other:?}"),
                };
                return Some((v["action"].as_str().unwrap().to_owned(), body));
            }
            Some(Ok(Message::Close(_))) | None | Some(Err(_)) => return None,
            Some(Ok(_)) => continue,
        }
    }
}

async fn register(rig: &Rig, robot: &str) -> Ws {
    let mut ws = open(rig, robot).await;
    send(
        &mut ws,
        "Register",
        json!({"supplierCode": "acme", "supplierSecret": supplier_proof("acme-secret", robot), "version": "1.2"}),
    )
    .await;
    ws
}

#[tokio::test]
async fn a_robot_registers_gets_its_license_runs_a_job_and_reports() {
    let rig = rig().await;
    let mut ws = register(&rig, "r1").await;
    assert_eq!(
        recv(&mut ws).await,
        Some(("SendLicense".into(), json!({"licenseContent": "LIC-1"})))
    );
    send(&mut ws, "Heartbeat", json!({})).await;
    let job = rig.engine.start_job(&rig.user, rig.process, &json!({})).await.unwrap();
    // pushed without waiting for a heartbeat
    let (action, body) = recv(&mut ws).await.unwrap();
    assert_eq!(action, "Execute");
    assert_eq!(body["runInstanceId"], job.key.to_string());
    assert_eq!(body["userName"], "u");
    for field in ["packageDownloadUri", "arguments", "videoRecordRequired", "userId"] {
        assert!(body.get(field).is_some(), "Execute carries {field}: {body}");
    }
    let run = job.key.to_string();
    send(
        &mut ws,
        "ReportLogs",
        json!({"runInstanceId": run, "logs": [{"content": "hi", "logAt": "2026-11-25 10:00:00", "logLevel": 0}]}),
    )
    .await;
    send(&mut ws, "ReportFinish", json!({"runInstanceId": run, "status": 0})).await;
    send(
        &mut ws,
        "ReportVideoRecord",
        json!({"runInstanceId": run, "videoId": "vid-1"}),
    )
    .await;
    send(&mut ws, "Heartbeat", json!({})).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(rig.engine.job(job.key).await.unwrap().state, JobState::Successful);
    assert_eq!(rig.engine.job_logs(&rig.user, job.key).await.unwrap().len(), 1);
    assert_eq!(rig.engine.videos(job.key).await.unwrap().len(), 1);
}

#[tokio::test]
async fn a_duplicate_connection_gets_10000_and_is_closed_and_the_first_keeps_working() {
    let rig = rig().await;
    let mut first = register(&rig, "r1").await;
    recv(&mut first).await;
    send(&mut first, "Heartbeat", json!({})).await;
    let mut second = register(&rig, "r1").await;
    let (action, body) = recv(&mut second).await.unwrap();
    assert_eq!(action, "Error");
    assert_eq!(body["errorCode"], 10000);
    assert_eq!(recv(&mut second).await, None, "the second connection is closed");
    let job = rig.engine.start_job(&rig.user, rig.process, &json!({})).await.unwrap();
    let (action, body) = recv(&mut first).await.unwrap();
    assert_eq!(
        (action.as_str(), body["runInstanceId"].as_str()),
        ("Execute", Some(job.key.to_string().as_str()))
    );
}

#[tokio::test]
async fn bad_messages_get_10001_and_the_connection_stays_usable() {
    let rig = rig().await;
    let mut ws = open(&rig, "r1").await;
    send(&mut ws, "Heartbeat", json!({})).await;
    let (a, b) = recv(&mut ws).await.unwrap();
    assert_eq!(
        (a.as_str(), b["errorCode"].as_i64()),
        ("Error", Some(10001)),
        "register first: {b}"
    );
    send(
        &mut ws,
        "Register",
        json!({"supplierCode": "acme", "supplierSecret": supplier_proof("acme-secret", "r1")}),
    )
    .await;
    recv(&mut ws).await; // license
    ws.send(Message::Text("not json".into())).await.unwrap();
    assert_eq!(recv(&mut ws).await.unwrap().1["errorCode"], 10001);
    ws.send(Message::Text(
        json!({"action": "Heartbeat", "body": {"runInstanceId": 5}})
            .to_string()
            .into(),
    ))
    .await
    .unwrap();
    assert_eq!(recv(&mut ws).await.unwrap().1["errorCode"], 10001);
    send(
        &mut ws,
        "ReportFinish",
        json!({"runInstanceId": "0123456789abcdef0123456789abcdef", "status": 0}),
    )
    .await;
    let (_, b) = recv(&mut ws).await.unwrap();
    assert_eq!(b["errorCode"], 10001, "unknown run instance: {b}");
    send(&mut ws, "Dance", json!({})).await;
    assert_eq!(recv(&mut ws).await.unwrap().1["errorCode"], 10001);
    send(&mut ws, "Heartbeat", json!({})).await;
    let job = rig.engine.start_job(&rig.user, rig.process, &json!({})).await.unwrap();
    assert_eq!(
        recv(&mut ws).await.unwrap().1["runInstanceId"],
        job.key.to_string(),
        "still usable"
    );
    // As over HTTP: a logAt that is no date-time and an errorCode beyond 32 bits are refused.
    let run = job.key.to_string();
    for (action, body, field) in [
        (
            "ReportLogs",
            json!({"runInstanceId": run, "logs": [{"content": "x", "logAt": "yesterday", "logLevel": 0}]}),
            "logAt",
        ),
        (
            "ReportFinish",
            json!({"runInstanceId": run, "status": 2, "errorCode": 4_294_967_296_i64}),
            "errorCode",
        ),
    ] {
        send(&mut ws, action, body).await;
        let (_, b) = recv(&mut ws).await.unwrap();
        assert_eq!(b["errorCode"], 10001, "{b}");
        assert!(b["message"].as_str().unwrap().contains(field), "{b}");
    }
    assert_eq!(
        rig.engine.job(job.key).await.unwrap().state,
        JobState::Running,
        "nothing changed"
    );
}

#[tokio::test]
async fn a_wrong_supplier_proof_gets_an_error_and_is_closed() {
    let rig = rig().await;
    let mut ws = open(&rig, "r1").await;
    send(
        &mut ws,
        "Register",
        json!({"supplierCode": "acme", "supplierSecret": "00"}),
    )
    .await;
    let (a, b) = recv(&mut ws).await.unwrap();
    assert_eq!((a.as_str(), b["errorCode"].as_i64()), ("Error", Some(10001)));
    assert_eq!(recv(&mut ws).await, None);
}

#[tokio::test]
async fn a_closed_socket_disconnects_and_a_reconnect_in_time_keeps_the_job() {
    let rig = rig().await;
    let mut ws = register(&rig, "r1").await;
    recv(&mut ws).await;
    send(&mut ws, "Heartbeat", json!({})).await;
    let job = rig.engine.start_job(&rig.user, rig.process, &json!({})).await.unwrap();
    recv(&mut ws).await; // Execute
    ws.close(None).await.unwrap();
    drop(ws);
    tokio::time::sleep(Duration::from_millis(200)).await;
    let robot = rig.engine.store().robot_by_code("r1").await.unwrap().unwrap();
    assert_eq!(robot.state, RobotState::Disconnected);
    rig.clock.advance(10_000);
    let mut again = register(&rig, "r1").await;
    recv(&mut again).await;
    send(&mut again, "Heartbeat", json!({"runInstanceId": job.key.to_string()})).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let j = rig.engine.job(job.key).await.unwrap();
    assert_eq!((j.state, j.attempt), (JobState::Running, 1), "kept, not restarted");
    send(
        &mut again,
        "ReportFinish",
        json!({"runInstanceId": job.key.to_string(), "status": 0}),
    )
    .await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(rig.engine.job(job.key).await.unwrap().state, JobState::Successful);
}

#[tokio::test]
async fn commands_for_a_robot_connected_here_are_pushed_and_never_wait_in_its_outbox() {
    use rpa_core::job::StopStrategy;
    use rpa_core::transport::RobotTransport;
    let rig = rig().await;
    let mut ws = register(&rig, "r1").await;
    recv(&mut ws).await; // SendLicense
    send(&mut ws, "Heartbeat", json!({})).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    let robot = rig.engine.store().robot_by_code("r1").await.unwrap().unwrap().id;
    assert!(rig.hub.is_here(robot));

    let job = rig.engine.start_job(&rig.user, rig.process, &json!({})).await.unwrap();
    assert_eq!(recv(&mut ws).await.map(|(a, _)| a).as_deref(), Some("Execute"));
    // Nothing was left behind that a heartbeat or another node could deliver again.
    assert!(rig.engine.take_commands(robot).await.unwrap().is_empty());
    rig.engine
        .stop_job(&rig.user, job.key, StopStrategy::SoftStop)
        .await
        .unwrap();
    assert_eq!(recv(&mut ws).await.map(|(a, _)| a).as_deref(), Some("Stop"));
    assert!(rig.engine.take_commands(robot).await.unwrap().is_empty());

    // Once the socket is gone the robot is not here: its commands wait in the outbox.
    ws.close(None).await.unwrap();
    drop(ws);
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(!rig.hub.is_here(robot));
    rig.engine
        .stop_job(&rig.user, job.key, StopStrategy::Kill)
        .await
        .unwrap();
    let waiting = rig.engine.take_commands(robot).await.unwrap();
    assert!(
        waiting.iter().any(|c| c.action() == "Stop"),
        "the kill waits in the outbox: {waiting:?}"
    );
}

#[tokio::test]
async fn closing_the_hub_says_goodbye_to_every_robot_and_records_their_disconnects() {
    let rig = rig().await;
    let mut ws = register(&rig, "r1").await;
    assert_eq!(recv(&mut ws).await.map(|m| m.0), Some("SendLicense".into()));
    send(&mut ws, "Heartbeat", json!({})).await;
    let job = rig.engine.start_job(&rig.user, rig.process, &json!({})).await.unwrap();
    assert_eq!(recv(&mut ws).await.map(|m| m.0), Some("Execute".into()));
    let mut idle = open(&rig, "r2").await; // connected, never registered

    tokio::time::timeout(Duration::from_secs(5), rig.hub.close_all())
        .await
        .expect("every connection's loop ends");
    // Both sockets got a Close frame saying the server goes away.
    for socket in [&mut ws, &mut idle] {
        let close = loop {
            match tokio::time::timeout(Duration::from_secs(5), socket.next())
                .await
                .unwrap()
            {
                Some(Ok(Message::Close(frame))) => break frame,
                Some(Ok(_)) => continue,
                other => panic!("a Close frame, not {other:?}"),
            }
        };
        assert_eq!(close.map(|f| u16::from(f.code)), Some(1001));
    }
    // The disconnect was recorded before close_all completed; the robot keeps its run.
    let r = rig.engine.store().robot_by_code("r1").await.unwrap().unwrap();
    assert_eq!(
        (r.state, r.job),
        (
            RobotState::Disconnected,
            Some(rig.engine.job(job.key).await.unwrap().id)
        )
    );
    // A stopping hub takes no new robots.
    let refused = tokio_tungstenite::connect_async(format!("ws://{}/robothub/r3", rig.addr)).await;
    match refused {
        Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => assert_eq!(resp.status(), 503),
        other => panic!("a 503, not {other:?}"),
    }
}

#[tokio::test]
async fn execute_carries_the_fail_over_extensions_only_for_robots_that_declared_them() {
    let rig = rig().await;
    for (robot, capabilities, extended) in [("plain", json!([]), false), ("ext", json!(["checkpoint"]), true)] {
        let mut ws = open(&rig, robot).await;
        let proof = supplier_proof("acme-secret", robot);
        send(
            &mut ws,
            "Register",
            json!({"supplierCode": "acme", "supplierSecret": proof, "capabilities": capabilities}),
        )
        .await;
        send(&mut ws, "Heartbeat", json!({})).await;
        tokio::time::sleep(Duration::from_millis(100)).await;
        let job = rig.engine.start_job(&rig.user, rig.process, &json!({})).await.unwrap();
        let (action, body) = recv(&mut ws).await.unwrap();
        assert_eq!(
            (action.as_str(), body["runInstanceId"].as_str()),
            ("Execute", Some(job.key.to_string().as_str()))
        );
        assert_eq!(body.get("attempt").is_some(), extended, "{robot}: {body}");
        if !extended {
            let mut fields: Vec<&str> = body.as_object().unwrap().keys().map(String::as_str).collect();
            fields.sort_unstable();
            assert_eq!(
                fields,
                [
                    "arguments",
                    "packageDownloadUri",
                    "runInstanceId",
                    "userId",
                    "userName",
                    "videoRecordMode",
                    "videoRecordRequired"
                ],
                "exactly table A.7"
            );
        }
        send(
            &mut ws,
            "ReportFinish",
            json!({"runInstanceId": job.key.to_string(), "status": 0}),
        )
        .await;
        // Gone, so the next job goes to the next robot.
        drop(ws);
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test]
async fn license_changes_are_pushed_and_a_revocation_is_an_error() {
    let rig = rig().await;
    let mut ws = register(&rig, "r2").await;
    send(&mut ws, "Heartbeat", json!({})).await;
    let terms = rpa_core::license::Terms {
        content: "LIC-A".into(),
        vendor: None,
        expires_at: None,
        robots: vec![],
        seats: 1,
    };
    tokio::time::sleep(Duration::from_millis(100)).await;
    rig.engine
        .create_license(Actor::System, "L", terms.clone())
        .await
        .unwrap();
    rig.engine.bind_license_to(Actor::System, "L", "r2").await.unwrap();
    assert_eq!(
        recv(&mut ws).await,
        Some(("SendLicense".into(), json!({"licenseContent": "LIC-A"}))),
        "pushed when bound"
    );
    let renewed = rpa_core::license::Terms {
        content: "LIC-B".into(),
        ..terms
    };
    rig.engine.renew_license(Actor::System, "L", renewed).await.unwrap();
    assert_eq!(
        recv(&mut ws).await,
        Some(("SendLicense".into(), json!({"licenseContent": "LIC-B"}))),
        "pushed when renewed"
    );
    rig.engine.unbind_license(Actor::System, "L", "r2").await.unwrap();
    let (action, body) = recv(&mut ws).await.unwrap();
    assert_eq!(action, "Error");
    assert_eq!(body["errorCode"], 19999);
    assert!(
        body["message"].as_str().unwrap().contains("license L was revoked"),
        "{body}"
    );
    send(&mut ws, "Heartbeat", json!({})).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    let r = rig.engine.store().robot_by_code("r2").await.unwrap().unwrap();
    assert_eq!(r.state, RobotState::Available, "still connected, without a license");
}

#[tokio::test]
async fn a_connection_replaced_after_going_silent_gets_10000_and_is_closed() {
    let rig = rig().await;
    let mut first = register(&rig, "r2").await;
    send(&mut first, "Heartbeat", json!({})).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    // Silent past the timeout: a new registration of the same id is taken.
    rig.clock.advance(rig.engine.config().heartbeat_timeout_ms + 1);
    let mut second = register(&rig, "r2").await;
    send(&mut second, "Heartbeat", json!({})).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    // The first speaks again: it is told, then closed.
    send(&mut first, "Heartbeat", json!({})).await;
    let (action, body) = recv(&mut first).await.unwrap();
    assert_eq!(action, "Error");
    assert_eq!(body["errorCode"], 10000);
    assert_eq!(recv(&mut first).await, None, "closed after the error");
    // The replacement keeps the robot.
    send(&mut second, "Heartbeat", json!({})).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    let r = rig.engine.store().robot_by_code("r2").await.unwrap().unwrap();
    assert_eq!(r.state, RobotState::Available);
    let job = rig.engine.start_job(&rig.user, rig.process, &json!({})).await.unwrap();
    let (action, body) = recv(&mut second).await.unwrap();
    assert_eq!(action, "Execute");
    assert_eq!(body["runInstanceId"], job.key.to_string());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn robots_connecting_all_at_once_are_all_registered() {
    // More than the registrations handled at once: the rest wait their turn.
    let n = rpa_adapters_ws::STARTING_AT_ONCE * 10;
    let rig = Arc::new(rig().await);
    let mut all = Vec::new();
    for i in 0..n {
        let rig = rig.clone();
        all.push(tokio::spawn(async move {
            let mut ws = register(&rig, &format!("storm-{i}")).await;
            send(&mut ws, "Heartbeat", json!({})).await;
            ws
        }));
    }
    let mut sockets = Vec::new();
    for s in all {
        sockets.push(s.await.unwrap());
    }
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let robots = rig.engine.robots().await.unwrap();
        let up = robots
            .iter()
            .filter(|r| r.code.starts_with("storm-") && r.state == RobotState::Available)
            .count();
        if up == n {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "{up} of {n} registered");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(rig.hub.connections(), n);
    drop(sockets);
}
