//! The server's real composition: HTTP adapter + engine + SQL store, over a
//! real socket. A job started and finished through the documented APIs
//! survives a restart on the same database, and the audit chain verifies.

mod support;

use std::sync::Arc;

use rpa::core::auth::{PasswordCost, supplier_proof};
use rpa::http::config::Config;
use rpa::http::{AppState, Files, HttpSettings, app};
use rpa::sql::{SqlOptions, SqlStore};
use rpa::{Engine, EngineConfig, SystemClock};
use serde_json::{Value, json};

const CONFIG: &str = r#"{
  "admin": { "name": "admin", "password": "admin-pw" },
  "processes": [ { "name": "Invoice entry", "type": "Unattended", "maxRunNum": 1,
                   "arguments": [ { "name": "invoice", "type": "int", "required": true } ] } ],
  "users": [ { "name": "alice", "password": "wonderland", "processes": ["Invoice entry"] } ],
  "vendors": [ { "supplierCode": "acme", "secret": "acme-secret" } ]
}"#;

/// A running server; `stop` shuts it down and lets go of its store.
struct Server {
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<()>,
}

impl Server {
    async fn stop(self) {
        let _ = self.stop.send(());
        self.task.await.unwrap();
    }
}

async fn serve(store: SqlStore) -> (String, Arc<Engine<SqlStore>>, Server) {
    let config = EngineConfig {
        password_cost: PasswordCost::TESTING,
        ..EngineConfig::default()
    };
    let engine = Arc::new(Engine::new(store, Arc::new(SystemClock), config));
    Config::parse(CONFIG).unwrap().apply(&engine).await.unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let settings = HttpSettings {
        public_url: base.clone(),
        ..HttpSettings::default()
    };
    let state = AppState {
        engine: engine.clone(),
        files: Files::memory(),
        settings: Arc::new(settings),
        ai: None,
        directory: None,
        sso: None,
    };
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        axum::serve(listener, app(state))
            .with_graceful_shutdown(async move {
                let _ = stopped.await;
            })
            .await
            .unwrap()
    });
    (base, engine, Server { stop, task })
}

async fn post(base: &str, path: &str, headers: &[(&str, &str)], body: Value) -> Value {
    let mut req = reqwest::Client::new().post(format!("{base}{path}")).json(&body);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    req.send().await.unwrap().json().await.unwrap()
}

async fn walkthrough(url: &str) {
    let (base, engine, server) = serve(SqlStore::connect(url, test_options()).await.unwrap()).await;
    let login = post(
        &base,
        "/rpa/api/login",
        &[],
        json!({"username": "alice", "password": "wonderland"}),
    )
    .await;
    let token = login["result"]["token"].as_str().unwrap().to_owned();
    let process = login["result"]["processes"][0]["id"].as_str().unwrap().to_owned();
    let t = [("X-Access-Token", token.as_str())];
    let started = post(
        &base,
        "/rpa/api/startJob",
        &t,
        json!({"processId": process, "params": {"invoice": "5"}}),
    )
    .await;
    let job = started["result"]["jobId"].as_str().unwrap().to_owned();
    let bad = post(
        &base,
        "/rpa/api/startJob",
        &t,
        json!({"processId": process, "params": {}}),
    )
    .await;
    assert_eq!(bad["code"], 500, "{bad}");

    let proof = supplier_proof("acme-secret", "r1");
    let reg = post(
        &base,
        "/robots/connect/register",
        &[("robotId", "r1")],
        json!({"supplierCode": "acme", "supplierSecret": proof}),
    )
    .await;
    let connect = reg["resultValue"]["robotConnectId"].as_str().unwrap().to_owned();
    let r = [("robotId", "r1"), ("robotConnectId", connect.as_str())];
    let hb = post(&base, "/robots/connect/heartbeat", &r, json!({})).await;
    assert_eq!(hb["resultValue"]["Action"], "Execute", "{hb}");
    assert_eq!(hb["resultValue"]["Body"]["runInstanceId"], job.as_str());
    let logs =
        json!({"runInstanceId": job, "logs": [{"content": "step 1", "logAt": "2026-11-25 10:00:00", "logLevel": 0}]});
    assert_eq!(
        post(&base, "/robots/connect/reportLogs", &r, logs).await["successful"],
        true
    );
    let fin = post(
        &base,
        "/robots/connect/reportFinish",
        &r,
        json!({"runInstanceId": job, "status": 0, "outputValues": {"n": 1}}),
    )
    .await;
    assert_eq!(fin["successful"], true, "{fin}");

    // Run analysis: the process gets a region and saved minutes; the
    // timer's fold counts the run; the report groups it.
    let admin = post(
        &base,
        "/rpa/api/login",
        &[],
        json!({"username": "admin", "password": "admin-pw"}),
    )
    .await;
    let admin = admin["result"]["token"].as_str().unwrap().to_owned();
    let put = reqwest::Client::new()
        .put(format!("{base}/admin/processes/{process}/attributes"))
        .header("X-Access-Token", admin.as_str())
        .json(&json!({"region": "north", "businessDomain": "finance", "savedMinutes": 90}))
        .send()
        .await
        .unwrap()
        .json::<Value>()
        .await
        .unwrap();
    assert_eq!(
        (&put["result"]["region"], &put["result"]["savedMinutes"]),
        (&json!("north"), &json!(90)),
        "{put}"
    );
    engine.tick().await.unwrap();
    let get = |query: &str| {
        let (base, admin) = (base.clone(), admin.clone());
        let query = query.to_owned();
        async move {
            reqwest::Client::new()
                .get(format!("{base}/admin/analysis/runs?{query}"))
                .header("X-Access-Token", admin.as_str())
                .send()
                .await
                .unwrap()
                .json::<Value>()
                .await
                .unwrap()
        }
    };
    let report = get("by=region&period=all").await;
    let b = &report["result"]["buckets"];
    assert_eq!(
        (
            &b[0]["value"],
            &b[0]["runs"],
            &b[0]["successful"],
            &b[0]["successRate"],
            &b[0]["savedHours"]
        ),
        (&json!("north"), &json!(1), &json!(1), &json!(1.0), &json!(1.5)),
        "{report}"
    );
    let bad = get("by=country").await;
    assert_eq!(
        (&bad["code"], bad["message"].as_str().unwrap().contains("country")),
        (&json!(500), true),
        "{bad}"
    );
    let bad = get("from=2026-02-30").await;
    assert_eq!(bad["code"], 500, "{bad}");

    // The knowledge base: found by words through the database's own
    // full-text index (FTS5, tsvector), changed, removed.
    let content = |method: reqwest::Method, path: &str, body: Option<Value>| {
        let (base, admin) = (base.clone(), admin.clone());
        let path = path.to_owned();
        async move {
            let mut r = reqwest::Client::new()
                .request(method, format!("{base}/admin/content{path}"))
                .header("X-Access-Token", admin.as_str());
            if let Some(b) = body {
                r = r.json(&b);
            }
            r.send().await.unwrap().json::<Value>().await.unwrap()
        }
    };
    let made = content(
        reqwest::Method::POST,
        "",
        Some(json!({"section": "knowledge", "title": "Reading invoices", "body": "OCR turns scanned invoices into text.", "tags": ["ocr"]})),
    )
    .await;
    let id = made["result"]["id"].as_i64().unwrap_or_else(|| panic!("{made}"));
    content(
        reqwest::Method::POST,
        "",
        Some(json!({"section": "news", "title": "Invoice robots are live"})),
    )
    .await;
    let found = content(reqwest::Method::GET, "?q=invoice+ocr", None).await;
    assert_eq!(found["result"].as_array().map(Vec::len), Some(1), "{found}");
    assert_eq!(found["result"][0]["id"], id);
    let news = content(reqwest::Method::GET, "?q=INVOICE&section=news", None).await;
    assert_eq!(news["result"][0]["title"], "Invoice robots are live", "{news}");
    content(
        reqwest::Method::PUT,
        &format!("/{id}"),
        Some(json!({"section": "knowledge", "title": "Reading receipts", "body": "Receipts too."})),
    )
    .await;
    let gone = content(reqwest::Method::GET, "?q=ocr", None).await;
    assert_eq!(gone["result"], json!([]), "{gone}");
    content(reqwest::Method::DELETE, &format!("/{id}"), None).await;
    let gone = content(reqwest::Method::GET, "?q=receipts", None).await;
    assert_eq!(gone["result"], json!([]), "{gone}");
    let missing = content(reqwest::Method::GET, &format!("/{id}"), None).await;
    assert_eq!(
        (&missing["code"], &missing["success"]),
        (&json!(500), &json!(false)),
        "{missing}"
    );

    // A license bound by an administrator reaches the robot in its heartbeat.
    let a = [("X-Access-Token", admin.as_str())];
    let made = post(
        &base,
        "/admin/licenses",
        &a,
        json!({"name": "L", "content": "LIC-9", "seats": 2}),
    )
    .await;
    assert_eq!(made["code"], 200, "{made}");
    let bound = post(&base, "/admin/licenses/L/bind", &a, json!({"robotId": "r1"})).await;
    assert_eq!(bound["result"]["bound"], json!(["r1"]), "{bound}");
    let hb = post(&base, "/robots/connect/heartbeat", &r, json!({})).await;
    assert_eq!(
        hb["resultValue"],
        json!({"Action": "SendLicense", "Body": {"licenseContent": "LIC-9"}})
    );

    // A new engine on the same database: what was acknowledged is there.
    server.stop().await;
    drop(engine);
    let (base2, engine2, _server2) = serve(SqlStore::connect(url, test_options()).await.unwrap()).await;
    let status = post(&base2, "/rpa/api/jobStatus", &t, json!({"jobId": job})).await;
    assert_eq!(
        status["result"][0]["status"], "Successful",
        "the token and the job survive a restart: {status}"
    );
    let jobs = post(&base2, "/rpa/api/queryProcessJob", &t, json!({"processId": process})).await;
    assert_eq!(jobs["result"]["total"], 1);
    assert_eq!(jobs["result"]["record"][0]["outputValues"], json!({"n": 1}));
    let licenses = reqwest::Client::new()
        .get(format!("{base2}/admin/licenses"))
        .header("X-Access-Token", admin.as_str())
        .send()
        .await
        .unwrap()
        .json::<Value>()
        .await
        .unwrap();
    assert_eq!(licenses["result"][0]["bound"], json!(["r1"]), "{licenses}");
    let n = engine2.verify_audit().await.unwrap().expect("audit chain verifies");
    assert!(n >= 8, "{n} audit events");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_walkthrough_survives_restart() {
    let dir = std::env::temp_dir().join(format!("rpa-http-sql-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("rpa.db");
    let _ = std::fs::remove_file(&path);
    walkthrough(&SqlStore::sqlite_url(&path)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_walkthrough_survives_restart() {
    let Some(url) = support::postgres_url() else { return };
    let url = support::fresh_postgres(&url, "http").await;
    walkthrough(&url).await;
}

/// Vendor secrets sealed with a fixed key, the same for every store a test opens.
fn test_options() -> SqlOptions {
    SqlOptions {
        sealing: rpa::sql::Sealing::Key([5; 32]),
        ..SqlOptions::default()
    }
}
