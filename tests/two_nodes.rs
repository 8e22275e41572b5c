//! Two engine nodes on one PostgreSQL database: a robot connected to node A
//! over WebSocket receives, without heart-beating, the Execute of a job
//! started on node B (node A hears of the job and dispatches to the robots
//! whose sockets it holds), then the Stop that node B commits for it
//! (LISTEN/NOTIFY wakes node A's hub).

use rpa_core::store::prelude::*;
use std::sync::Arc;
use std::time::Duration;

mod support;

use futures::{SinkExt, StreamExt};
use rpa::core::auth::{PasswordCost, supplier_proof};
use rpa::core::fixtures::{self, Basics};
use rpa::core::model::{ProcessSpec, ProcessType};
use rpa::sql::{SqlOptions, SqlStore};
use rpa::ws::{Hub, HubState, router};
use rpa::{Engine, EngineConfig, SystemClock};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_a_command_committed_on_one_node_reaches_a_robot_on_another() {
    let Some(url) = support::postgres_url() else { return };
    let db = support::fresh_postgres(&url, "nodes").await;
    let config = || EngineConfig {
        password_cost: PasswordCost::TESTING,
        ..EngineConfig::default()
    };

    // Node A: the hub, listening for other nodes' commands.
    let store_a = SqlStore::connect(&db, test_options()).await.unwrap();
    let hub = Hub::new();
    store_a.listen(hub.clone());
    let bell = store_a.doorbell().expect("a PostgreSQL store rings");
    let node_a = Arc::new(Engine::new(store_a, Arc::new(SystemClock), config()).with_transport(hub.clone()));
    // As a server: node A dispatches when another node's commit leaves it work.
    tokio::spawn(rpa::server::dispatch_on_notice(
        node_a.clone(),
        bell,
        std::future::pending::<()>(),
    ));
    let Basics { process: p, .. } = fixtures::basics(&node_a, ProcessSpec::new("p", ProcessType::Unattended))
        .await
        .unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = router(HubState {
        engine: node_a.clone(),
        hub,
    });
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });

    // Node B: another engine on the same database.
    let node_b = Engine::new(
        SqlStore::connect(&db, test_options()).await.unwrap(),
        Arc::new(SystemClock),
        config(),
    );

    let (mut ws, _) = tokio_tungstenite::connect_async(format!("ws://{addr}/robothub/r1"))
        .await
        .unwrap();
    let register = json!({"supplierCode": "acme", "supplierSecret": supplier_proof("acme-secret", "r1")});
    ws.send(Message::Text(
        json!({"action": "Register", "body": register.to_string()})
            .to_string()
            .into(),
    ))
    .await
    .unwrap();
    ws.send(Message::Text(
        json!({"action": "Heartbeat", "body": "{}"}).to_string().into(),
    ))
    .await
    .unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;

    let user = node_b.store().user_by_name("u").await.unwrap().unwrap();
    let job = node_b.start_job(&user, p.key, &json!({})).await.unwrap();
    let execute = next_command(&mut ws, "Execute")
        .await
        .expect("the Execute arrives without a heartbeat");
    let execute: Value = serde_json::from_str(execute["body"].as_str().unwrap()).unwrap();
    assert_eq!(execute["runInstanceId"], job.key.to_string());
    node_b
        .stop_job(&user, job.key, rpa::core::job::StopStrategy::SoftStop)
        .await
        .unwrap();
    // Seed 001's Stop has no body: the robot stops what it runs.
    next_command(&mut ws, "Stop")
        .await
        .expect("the Stop committed on node B arrives without a heartbeat");
    drop(ws);
}

/// The next command `action` on `ws`, within 3 s.
async fn next_command<S>(ws: &mut S, action: &str) -> Option<Value>
where
    S: StreamExt<Item = Result<Message, tokio_tungstenite::tungstenite::Error>> + Unpin,
{
    tokio::time::timeout(Duration::from_secs(3), async {
        while let Some(Ok(m)) = ws.next().await {
            if let Message::Text(t) = m {
                let v: Value = serde_json::from_str(&t).unwrap();
                if v["action"] == action {
                    return Some(v);
                }
            }
        }
        None
    })
    .await
    .ok()
    .flatten()
}

/// Vendor secrets sealed with a fixed key, the same on both nodes.
fn test_options() -> SqlOptions {
    SqlOptions {
        sealing: rpa::sql::Sealing::Key([5; 32]),
        ..SqlOptions::default()
    }
}
