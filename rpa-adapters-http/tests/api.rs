//! The HTTP APIs end to end over a real socket (127.0.0.1:0): every request
//! of seed 000 and seed 001 A.2, and the bad inputs a client can send.

use rpa_core::store::prelude::*;
use std::sync::Arc;

use reqwest::StatusCode;
use rpa_adapters_http::config::Config;
use rpa_adapters_http::{AppState, Files, HttpSettings, app};
use rpa_core::auth::LinkKey;
use rpa_core::auth::{PasswordCost, supplier_proof};
use rpa_core::{Engine, EngineConfig, ManualClock, MemoryStore, Timestamp};
use serde_json::{Value, json};

const CONFIG: &str = r#"{
  "admin": { "name": "admin", "password": "admin-pw" },
  "processes": [
    { "name": "Invoice entry", "type": "Unattended", "version": "2.1",
      "arguments": [ { "name": "invoice", "id": "inv", "type": "int", "required": true },
                     { "name": "note", "type": "string" } ],
      "maxRunNum": 1, "maxDayNum": 0 },
    { "name": "Claims", "type": "Queue", "maxRunNum": 1, "maxPendingItems": 2 },
    { "name": "Typed claims", "type": "Queue",
      "arguments": [ { "name": "amount", "type": "int", "required": true } ] },
    { "name": "Secret", "type": "Unattended" }
  ],
  "users": [ { "name": "alice", "password": "wonderland", "processes": ["Invoice entry", "Claims", "Typed claims"] },
             { "name": "bob", "password": "builder", "processes": ["Secret"] } ],
  "vendors": [ { "supplierCode": "acme", "secret": "acme-secret" } ],
  "robots": [ { "robotId": "r1", "licenseContent": "LIC-r1" } ]
}"#;

struct Server {
    base: String,
    http: reqwest::Client,
    clock: ManualClock,
    engine: Arc<Engine<MemoryStore>>,
}

impl Server {
    async fn start() -> Server {
        Self::start_with(HttpSettings::default()).await
    }

    async fn start_with(mut settings: HttpSettings) -> Server {
        let clock = ManualClock::new(Timestamp(1_700_000_000_000));
        let config = EngineConfig {
            password_cost: PasswordCost::TESTING,
            link_key: Some(LinkKey([9; 32])),
            ..EngineConfig::default()
        };
        let engine = Arc::new(Engine::new(MemoryStore::new(), Arc::new(clock.clone()), config));
        Config::parse(CONFIG).unwrap().apply(&engine).await.unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        settings.public_url = base.clone();
        settings.link_key = Some(LinkKey([9; 32]));
        let state = AppState {
            engine: engine.clone(),
            files: Files::memory(),
            settings: Arc::new(settings),
            ai: None,
            directory: None,
            sso: None,
        };
        tokio::spawn(async move { axum::serve(listener, app(state)).await.unwrap() });
        Server {
            base,
            http: reqwest::Client::new(),
            clock,
            engine,
        }
    }

    async fn post(&self, path: &str, headers: &[(&str, &str)], body: Value) -> (StatusCode, Value) {
        self.post_raw(path, headers, body.to_string()).await
    }

    async fn post_raw(&self, path: &str, headers: &[(&str, &str)], body: String) -> (StatusCode, Value) {
        let mut req = self
            .http
            .post(format!("{}{path}", self.base))
            .header("Content-Type", "application/json")
            .body(body);
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status();
        let text = resp.text().await.unwrap();
        (
            status,
            serde_json::from_str(&text).unwrap_or_else(|_| panic!("not JSON: {text}")),
        )
    }

    async fn login(&self, user: &str, pw: &str) -> (String, Value) {
        let (s, v) = self
            .post("/rpa/api/login", &[], json!({"username": user, "password": pw}))
            .await;
        assert_eq!(s, StatusCode::OK);
        assert_eq!(v["code"], 200, "{v}");
        (
            v["result"]["token"].as_str().unwrap().to_owned(),
            v["result"]["processes"].clone(),
        )
    }

    async fn biz(&self, token: &str, path: &str, body: Value) -> Value {
        let (s, v) = self.post(path, &[("X-Access-Token", token)], body).await;
        assert_eq!(s, StatusCode::OK, "{path}: {v}");
        v
    }

    async fn register(&self, robot: &str) -> String {
        let proof = supplier_proof("acme-secret", robot);
        let (s, v) = self
            .post(
                "/robots/connect/register",
                &[("robotId", robot)],
                json!({"supplierCode": "acme", "supplierSecret": proof, "version": "5.0"}),
            )
            .await;
        assert_eq!(s, StatusCode::OK, "{v}");
        v["resultValue"]["robotConnectId"].as_str().unwrap().to_owned()
    }

    async fn robot(&self, robot: &str, connect: &str, path: &str, body: Value) -> (StatusCode, Value) {
        self.post(path, &[("robotId", robot), ("robotConnectId", connect)], body)
            .await
    }

    async fn audit_len(&self) -> usize {
        self.engine.store().audit(0, usize::MAX).await.unwrap().len()
    }
}

fn pid(processes: &Value, name: &str) -> String {
    processes
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == name)
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned()
}

fn assert_envelope(v: &Value, success: bool) {
    assert_eq!(v["success"], success, "{v}");
    assert!(v["message"].is_string(), "{v}");
    assert!(v["code"].is_i64(), "{v}");
    assert!(v["timestamp"].is_i64(), "timestamp is epoch milliseconds: {v}");
    assert_eq!(
        v.get("result").is_some(),
        success && v["code"] == 200 && v.get("result").is_some()
    );
}

#[tokio::test]
async fn seed_000_walkthrough() {
    let s = Server::start().await;
    let (token, processes) = s.login("alice", "wonderland").await;
    let names: Vec<&str> = processes
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["Invoice entry", "Claims", "Typed claims"], "exactly the grants");
    assert_eq!(processes[0]["type"], "Unattended");
    assert_eq!(processes[0]["id"].as_str().unwrap().len(), 32);
    let invoice = pid(&processes, "Invoice entry");

    let q = s
        .biz(&token, "/rpa/api/queryProcess", json!({"processId": invoice}))
        .await;
    assert_envelope(&q, true);
    let r = &q["result"];
    assert_eq!(r["processId"], invoice.as_str());
    assert_eq!(r["processName"], "Invoice entry");
    assert_eq!(
        (
            r["maxRunNum"].as_i64(),
            r["currentRunNum"].as_i64(),
            r["maxDayNum"].as_i64()
        ),
        (Some(1), Some(0), Some(0))
    );
    assert_eq!(
        (r["type"].as_str(), r["version"].as_str()),
        (Some("Unattended"), Some("2.1"))
    );
    assert_eq!(
        r["argument"][0],
        json!({"name": "invoice", "id": "inv", "type": "int", "required": "true"})
    );

    // params as a string holding JSON, as seed 000 shows it
    let started = s
        .biz(
            &token,
            "/rpa/api/startJob",
            json!({"processId": invoice, "params": "{\"invoice\":\"7\"}"}),
        )
        .await;
    let r = &started["result"];
    let job = r["jobId"].as_str().unwrap().to_owned();
    assert_eq!(job.len(), 32);
    assert_eq!(
        (r["status"].as_str(), r["type"].as_str()),
        (Some("Pending"), Some("Unattended"))
    );
    assert!(regex_like_time(r["creationTime"].as_str().unwrap()), "{r}");
    // and as an object
    let second = s
        .biz(
            &token,
            "/rpa/api/startJob",
            json!({"processId": invoice, "params": {"invoice": 8}}),
        )
        .await;
    let second = second["result"]["jobId"].as_str().unwrap().to_owned();

    // a robot runs the first job and reports outputs
    let c = s.register("r1").await;
    let (_, hb) = s.robot("r1", &c, "/robots/connect/heartbeat", json!({})).await;
    assert_eq!(hb["resultValue"]["Action"], "Execute");
    assert_eq!(hb["resultValue"]["Body"]["runInstanceId"], job.as_str());
    let (st, _) = s
        .robot(
            "r1",
            &c,
            "/robots/connect/reportFinish",
            json!({"runInstanceId": job, "status": 0, "outputValues": {"total": "12.50"}}),
        )
        .await;
    assert_eq!(st, StatusCode::OK);

    let status = s.biz(&token, "/rpa/api/jobStatus", json!({"jobId": job})).await;
    let step = &status["result"][0];
    assert_eq!(step["status"], "Successful");
    assert_eq!(step["processName"], "Invoice entry");
    for f in ["processId", "stopTag", "step", "taskProcessId", "autoJobId", "id"] {
        assert!(step[f].is_i64(), "{f} is an int: {step}");
    }

    let jobs = s
        .biz(&token, "/rpa/api/queryProcessJob", json!({"processId": invoice}))
        .await;
    assert_eq!(jobs["result"]["total"], 2);
    let rec = jobs["result"]["record"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["jobId"] == job.as_str())
        .unwrap()
        .clone();
    for f in [
        "processId",
        "createTime",
        "beginTime",
        "endTime",
        "userName",
        "processName",
        "jobId",
        "version",
        "state",
    ] {
        assert!(rec[f].is_string(), "{f}: {rec}");
    }
    for f in ["jobNumber", "ocJobId", "autoProcessId"] {
        assert!(rec[f].is_i64(), "{f}: {rec}");
    }
    assert_eq!(
        (rec["userName"].as_str(), rec["state"].as_str()),
        (Some("alice"), Some("Successful"))
    );
    assert_eq!(rec["outputValues"], json!({"total": "12.50"}));
    let only_running = s
        .biz(
            &token,
            "/rpa/api/queryProcessJob",
            json!({"processId": invoice, "state": "Running"}),
        )
        .await;
    assert_eq!(only_running["result"]["total"], 1, "the second job runs now");

    let stopped = s.biz(&token, "/rpa/api/stopJob", json!({"jobId": second})).await;
    assert_envelope(&stopped, true);
    // One command per heartbeat answer: the Execute of the second job, then its Stop.
    let (_, hb) = s.robot("r1", &c, "/robots/connect/heartbeat", json!({})).await;
    assert_eq!(hb["resultValue"]["Action"], "Execute");
    assert_eq!(hb["resultValue"]["Body"]["runInstanceId"], second.as_str());
    let (_, hb) = s
        .robot("r1", &c, "/robots/connect/heartbeat", json!({"runInstanceId": second}))
        .await;
    assert_eq!(hb["resultValue"]["Action"], "Stop");
    // Stopping, until the robot confirms: shown as Running, and found by that filter.
    let stopping = s
        .biz(
            &token,
            "/rpa/api/queryProcessJob",
            json!({"processId": invoice, "state": "Running"}),
        )
        .await;
    assert_eq!(stopping["result"]["total"], 1, "{stopping}");
    assert_eq!(stopping["result"]["record"][0]["jobId"], second.as_str());
    assert_eq!(stopping["result"]["record"][0]["state"], "Running");
    s.robot(
        "r1",
        &c,
        "/robots/connect/reportFinish",
        json!({"runInstanceId": second, "status": 1}),
    )
    .await;
    let st = s.biz(&token, "/rpa/api/jobStatus", json!({"jobId": second})).await;
    assert_eq!(st["result"][0]["status"], "Stopped");

    let claims = pid(&processes, "Claims");
    let item = s
        .biz(
            &token,
            "/rpa/api/addQueueItem",
            json!({"processId": claims, "params": "{\"claimant\": \"Ann\", \"lines\": [1, 2], \"total\": 3.5}"}),
        )
        .await;
    assert_eq!(item["result"]["key"].as_str().unwrap().len(), 32);
    assert_eq!(item["result"]["status"], "InProgress", "the idle robot took it at once");
    for _ in 0..2 {
        let queued = s
            .biz(&token, "/rpa/api/addQueueItem", json!({"processId": claims}))
            .await;
        assert_eq!(queued["result"]["status"], "New");
    }
    let full = s
        .biz(&token, "/rpa/api/addQueueItem", json!({"processId": claims}))
        .await;
    assert_envelope(&full, false);
    assert!(
        full["message"].as_str().unwrap().contains("pending queue items"),
        "{full}"
    );
    // A queue's items carry free-form data unless its process declares their fields.
    let typed = pid(&processes, "Typed claims");
    for (params, want) in [
        (json!({"amount": "12", "extra": 1}), "unknown argument 'extra'"),
        (json!({"amount": "twelve"}), "amount"),
        (json!({}), "required argument 'amount'"),
    ] {
        let refused = s
            .biz(
                &token,
                "/rpa/api/addQueueItem",
                json!({"processId": typed, "params": params}),
            )
            .await;
        assert_envelope(&refused, false);
        assert!(refused["message"].as_str().unwrap().contains(want), "{refused}");
    }
    let ok = s
        .biz(
            &token,
            "/rpa/api/addQueueItem",
            json!({"processId": typed, "params": {"amount": 12}}),
        )
        .await;
    assert_envelope(&ok, true);
}

fn regex_like_time(s: &str) -> bool {
    let b = s.as_bytes();
    s.len() == 19 && b[4] == b'-' && b[7] == b'-' && b[10] == b' ' && b[13] == b':' && b[16] == b':'
}

#[tokio::test]
async fn tokens_locks_and_other_users_jobs() {
    let s = Server::start().await;
    let (_, processes) = s.login("alice", "wonderland").await;
    let invoice = pid(&processes, "Invoice entry");
    let (bob, _) = s.login("bob", "builder").await;
    let (alice, _) = s.login("alice", "wonderland").await;
    let job = s
        .biz(
            &alice,
            "/rpa/api/startJob",
            json!({"processId": invoice, "params": {"invoice": 1}}),
        )
        .await;
    let job = job["result"]["jobId"].as_str().unwrap().to_owned();

    for (headers, why) in [(vec![], "missing"), (vec![("X-Access-Token", "forged")], "forged")] {
        let (st, v) = s.post("/rpa/api/jobStatus", &headers, json!({"jobId": job})).await;
        assert_eq!(st, StatusCode::UNAUTHORIZED, "{why}");
        assert_eq!(v["code"], 401);
        assert_envelope(&v, false);
    }
    for path in ["/rpa/api/jobStatus", "/rpa/api/stopJob"] {
        let v = s.biz(&bob, path, json!({"jobId": job})).await;
        assert_eq!(v["code"], 500, "bob may not touch alice's job: {v}");
        assert!(v["message"].as_str().unwrap().contains("permission denied"));
    }
    let v = s
        .biz(
            &bob,
            "/rpa/api/startJob",
            json!({"processId": invoice, "params": {"invoice": 1}}),
        )
        .await;
    assert_eq!(v["code"], 500);
    assert_eq!(
        s.biz(&alice, "/rpa/api/jobStatus", json!({"jobId": job})).await["result"][0]["status"],
        "Pending"
    );

    s.clock.advance(30 * 60 * 1000);
    let (st, v) = s
        .post(
            "/rpa/api/jobStatus",
            &[("X-Access-Token", &alice)],
            json!({"jobId": job}),
        )
        .await;
    assert_eq!(
        (st, v["code"].as_i64()),
        (StatusCode::UNAUTHORIZED, Some(401)),
        "expired after 30 minutes"
    );

    for _ in 0..5 {
        let (st, v) = s
            .post("/rpa/api/login", &[], json!({"username": "bob", "password": "wrong"}))
            .await;
        assert_eq!((st, v["code"].as_i64()), (StatusCode::OK, Some(500)));
    }
    let (_, v) = s
        .post("/rpa/api/login", &[], json!({"username": "bob", "password": "builder"}))
        .await;
    assert!(v["message"].as_str().unwrap().contains("locked"), "{v}");
    let (admin, _) = s.login("admin", "admin-pw").await;
    let v = s.biz(&admin, "/admin/users/unlock", json!({"name": "bob"})).await;
    assert_envelope(&v, true);
    s.login("bob", "builder").await;
}

#[tokio::test]
async fn bad_business_input_gets_a_clear_error_and_writes_nothing() {
    let s = Server::start().await;
    let (token, processes) = s.login("alice", "wonderland").await;
    let invoice = pid(&processes, "Invoice entry");
    let before = s.audit_len().await;
    let cases: Vec<(&str, String, &str)> = vec![
        ("/rpa/api/startJob", json!({}).to_string(), "processId is required"),
        (
            "/rpa/api/startJob",
            json!({"processId": 5}).to_string(),
            "processId must be a string",
        ),
        (
            "/rpa/api/startJob",
            json!({"processId": "nope"}).to_string(),
            "not found",
        ),
        (
            "/rpa/api/startJob",
            json!({"processId": "0123456789abcdef0123456789abcdef"}).to_string(),
            "not found",
        ),
        (
            "/rpa/api/startJob",
            json!({"processId": invoice, "params": {}}).to_string(),
            "required argument 'invoice'",
        ),
        (
            "/rpa/api/startJob",
            json!({"processId": invoice, "params": {"invoice": "x"}}).to_string(),
            "must be of type int",
        ),
        (
            "/rpa/api/startJob",
            json!({"processId": invoice, "params": "{broken"}).to_string(),
            "params must be a JSON object",
        ),
        (
            "/rpa/api/startJob",
            json!({"processId": invoice, "params": [1]}).to_string(),
            "params must be a JSON object",
        ),
        ("/rpa/api/startJob", "[1,2]".to_owned(), "must be a JSON object"),
        ("/rpa/api/startJob", "{\"processId\":".to_owned(), "not valid JSON"),
        (
            "/rpa/api/stopJob",
            json!({"jobId": "0123456789abcdef0123456789abcdef"}).to_string(),
            "not found",
        ),
        ("/rpa/api/jobStatus", json!({}).to_string(), "jobId is required"),
        (
            "/rpa/api/queryProcessJob",
            json!({"processId": invoice, "state": "Sleeping"}).to_string(),
            "state must be one of",
        ),
        (
            "/rpa/api/queryProcessJob",
            json!({"processId": invoice, "startTime": "yesterday"}).to_string(),
            "yyyy-MM-dd HH:mm:ss",
        ),
        (
            "/rpa/api/queryProcessJob",
            json!({"processId": invoice, "startTime": "2026-01-01 00:00:00", "endTime": "2026-03-01 00:00:00"})
                .to_string(),
            "at most one month",
        ),
        (
            "/rpa/api/addQueueItem",
            json!({"processId": invoice}).to_string(),
            "Queue process",
        ),
    ];
    for (path, body, want) in cases {
        let (st, v) = s.post_raw(path, &[("X-Access-Token", &token)], body.clone()).await;
        assert_eq!(st, StatusCode::OK, "{path} {body}");
        assert_envelope(&v, false);
        assert_eq!(v["code"], 500);
        assert!(v["message"].as_str().unwrap().contains(want), "{path} {body}: {v}");
    }
    let big = format!(
        "{{\"processId\":\"{invoice}\",\"params\":{{\"note\":\"{}\"}}}}",
        "x".repeat(2 << 20)
    );
    let (st, v) = s
        .post_raw("/rpa/api/startJob", &[("X-Access-Token", &token)], big)
        .await;
    assert_eq!(st, StatusCode::PAYLOAD_TOO_LARGE);
    assert_envelope(&v, false);
    assert_eq!(s.audit_len().await, before, "nothing written");
    let jobs = s
        .biz(&token, "/rpa/api/queryProcessJob", json!({"processId": invoice}))
        .await;
    assert_eq!(jobs["result"]["total"], 0);
}

#[tokio::test]
async fn seed_001_http_walkthrough() {
    let s = Server::start().await;
    let (token, processes) = s.login("alice", "wonderland").await;
    let invoice = pid(&processes, "Invoice entry");

    let proof = supplier_proof("acme-secret", "r1");
    let (st, v) = s
        .post(
            "/robots/connect/register",
            &[("robotId", "r1")],
            json!({"supplierCode": "acme", "supplierSecret": proof}),
        )
        .await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(v["successful"], true);
    assert_eq!(v["resultHint"], "");
    assert_eq!(v["resultValue"]["licenseContent"], "LIC-r1");
    let c = v["resultValue"]["robotConnectId"].as_str().unwrap().to_owned();
    // No license bound: licenseContent is a string all the same (table A.4).
    let (_, unlicensed) = s
        .post(
            "/robots/connect/register",
            &[("robotId", "r-free")],
            json!({"supplierCode": "acme", "supplierSecret": supplier_proof("acme-secret", "r-free")}),
        )
        .await;
    assert_eq!(unlicensed["resultValue"]["licenseContent"], "", "{unlicensed}");

    // a second live connection: 10000, and the first stays usable
    let (st, v) = s
        .post(
            "/robots/connect/register",
            &[("robotId", "r1")],
            json!({"supplierCode": "acme", "supplierSecret": proof}),
        )
        .await;
    assert_eq!(st, StatusCode::BAD_REQUEST);
    assert_eq!(v["successful"], false);
    assert!(v["resultHint"].as_str().unwrap().starts_with("10000"), "{v}");

    let (_, v) = s.robot("r1", &c, "/robots/connect/heartbeat", json!({})).await;
    assert_eq!(v["resultValue"], json!({"Action": "None", "Body": null}));

    let job = s
        .biz(
            &token,
            "/rpa/api/startJob",
            json!({"processId": invoice, "params": {"invoice": 3, "note": "n"}}),
        )
        .await;
    let job = job["result"]["jobId"].as_str().unwrap().to_owned();
    let (_, v) = s.robot("r1", &c, "/robots/connect/heartbeat", json!({})).await;
    let body = &v["resultValue"]["Body"];
    assert_eq!(v["resultValue"]["Action"], "Execute");
    assert_eq!(body["runInstanceId"], job.as_str());
    assert_eq!(body["userName"], "alice");
    assert!(body["userId"].is_string());
    assert!(body["packageDownloadUri"].is_string());
    assert!(body["videoRecordRequired"].is_boolean());
    assert!(
        body.get("attempt").is_none() && body.get("checkpoint").is_none(),
        "r1 declared no capabilities: table A.7 only: {body}"
    );
    let args = body["arguments"].as_array().unwrap();
    assert!(
        args.contains(&json!({"name": "invoice", "type": "int", "value": "3"})),
        "{args:?}"
    );

    let (st, _) = s
        .robot(
            "r1",
            &c,
            "/robots/connect/reportLogs",
            json!({"runInstanceId": job, "logs": [
            {"content": "opened SAP", "screenshot": null, "logAt": "2026-11-25 10:00:00", "logLevel": 0},
            {"content": "slow", "logAt": "2026-11-25 10:00:01", "logLevel": 1}]}),
        )
        .await;
    assert_eq!(st, StatusCode::OK);
    let steps = |v: &Value| -> Vec<(i64, i64, i64, i64)> {
        v["result"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| {
                let n = |f: &str| r[f].as_i64().unwrap_or_else(|| panic!("{f} is an int: {r}"));
                (n("step"), n("taskProcessId"), n("stopTag"), n("id"))
            })
            .collect()
    };
    let status = s.biz(&token, "/rpa/api/jobStatus", json!({"jobId": job})).await;
    assert_eq!(steps(&status), [(0, 0, 0, 0)], "no step reported yet: step 0: {status}");
    let (st, _) = s
        .robot(
            "r1",
            &c,
            "/robots/connect/reportCheckpoint",
            json!({"runInstanceId": job, "checkpoint": {"row": 2}}),
        )
        .await;
    assert_eq!(st, StatusCode::OK);
    for (step, extra) in [(1, json!({"stepName": "open SAP"})), (2, json!({"taskProcessId": 77}))] {
        let mut body = json!({"runInstanceId": job, "checkpoint": {"row": step}, "step": step});
        body.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
        let (st, _) = s.robot("r1", &c, "/robots/connect/reportCheckpoint", body).await;
        assert_eq!(st, StatusCode::OK);
    }
    let (st, v) = s
        .robot(
            "r1",
            &c,
            "/robots/connect/reportCheckpoint",
            json!({"runInstanceId": job, "checkpoint": {}, "step": -1}),
        )
        .await;
    assert_eq!(st, StatusCode::BAD_REQUEST, "{v}");
    let status = s.biz(&token, "/rpa/api/jobStatus", json!({"jobId": job})).await;
    let listed = steps(&status);
    assert_eq!(
        listed.iter().map(|s| (s.0, s.1, s.2)).collect::<Vec<_>>(),
        [(1, 1, 0), (2, 77, 0)],
        "the steps reported, in order: {status}"
    );
    assert!(
        listed[0].3 > 0 && listed[1].3 > listed[0].3,
        "each step has its own id: {status}"
    );
    let auto: Vec<&Value> = status["result"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| &r["autoJobId"])
        .collect();
    assert!(auto[0].is_i64() && auto[0] == auto[1], "{status}");
    assert_eq!(status["result"][1]["status"], "Running");
    let (st, v) = s
        .robot(
            "r1",
            &c,
            "/robots/connect/reportVideoRecord",
            json!({"runInstanceId": job, "videoId": "v-1"}),
        )
        .await;
    assert_eq!(st, StatusCode::BAD_REQUEST, "video only after the finish: {v}");
    let (st, _) = s
        .robot(
            "r1",
            &c,
            "/robots/connect/reportFinish",
            json!({"runInstanceId": job, "status": 0}),
        )
        .await;
    assert_eq!(st, StatusCode::OK);
    let (st, _) = s
        .robot(
            "r1",
            &c,
            "/robots/connect/reportFinish",
            json!({"runInstanceId": job, "status": 0}),
        )
        .await;
    assert_eq!(st, StatusCode::OK, "the same finish again is harmless");
    let (st, _) = s
        .robot(
            "r1",
            &c,
            "/robots/connect/reportFinish",
            json!({"runInstanceId": job, "status": 2}),
        )
        .await;
    assert_eq!(st, StatusCode::BAD_REQUEST, "a different finish is rejected");
    let (st, _) = s
        .robot(
            "r1",
            &c,
            "/robots/connect/reportVideoRecord",
            json!({"runInstanceId": job, "videoId": "v-1"}),
        )
        .await;
    assert_eq!(st, StatusCode::OK);
    let logs = s
        .engine
        .job_logs(&s.engine.authenticate(&token).await.unwrap(), job.parse().unwrap())
        .await
        .unwrap();
    assert_eq!(logs.len(), 2);

    // upload, download, personal folder
    let form = reqwest::multipart::Form::new().part(
        "file",
        reqwest::multipart::Part::bytes(b"report body".to_vec()).file_name("report.txt"),
    );
    let v: Value = s
        .http
        .post(format!("{}/v1/file/file/upload", s.base))
        .header("robotId", "r1")
        .header("robotConnectId", &c)
        .header("runInstanceId", &job)
        .multipart(form)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let file_id = v["resultValue"]["fileId"].as_str().unwrap().to_owned();
    assert_eq!(v["resultValue"]["fileName"], "report.txt");
    let url = v["resultValue"]["fileUrl"].as_str().unwrap().to_owned();
    let anon = s.http.get(&url).send().await.unwrap();
    assert_eq!(
        anon.status(),
        StatusCode::UNAUTHORIZED,
        "files are not served to anonymous callers"
    );
    let got = s.http.get(&url).header("X-Access-Token", &token).send().await.unwrap();
    assert_eq!(got.status(), StatusCode::OK, "alice is granted the job's process");
    assert_eq!(got.bytes().await.unwrap().as_ref(), b"report body");
    // Nobody else: bob (not granted the process), another robot.
    let (bob, _) = s.login("bob", "builder").await;
    let other = s.register("r3").await;
    for (name, value) in [("X-Access-Token", bob.as_str())] {
        let r = s.http.get(&url).header(name, value).send().await.unwrap();
        assert_eq!(
            r.status(),
            StatusCode::NOT_FOUND,
            "bob may not read a run output of alice's process"
        );
    }
    let r = s
        .http
        .get(&url)
        .header("robotId", "r3")
        .header("robotConnectId", &other)
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.status(),
        StatusCode::NOT_FOUND,
        "nor may a robot that did not run the job"
    );
    // A robot files output only for its own runs, and writes only into the folder of the job's starter.
    let form = reqwest::multipart::Form::new().part(
        "file",
        reqwest::multipart::Part::bytes(b"x".to_vec()).file_name("x.txt"),
    );
    let r = s
        .http
        .post(format!("{}/v1/file/file/upload", s.base))
        .header("robotId", "r3")
        .header("robotConnectId", &other)
        .header("runInstanceId", &job)
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    let (st, _) = s
        .post(
            "/design/personalfile",
            &[("robotId", "r1"), ("robotConnectId", &c)],
            json!({"fileId": file_id, "runInstanceId": job, "userName": "bob"}),
        )
        .await;
    assert_eq!(
        st,
        StatusCode::FORBIDDEN,
        "not into bob's folder: alice started the job"
    );
    assert!(s.engine.personal_files("bob").await.unwrap().is_empty());
    let (st, _) = s
        .post(
            "/design/personalfile",
            &[("robotId", "r1"), ("robotConnectId", &c)],
            json!({"fileId": file_id, "fileName": "r.txt", "runInstanceId": job, "userName": "alice"}),
        )
        .await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(s.engine.personal_files("alice").await.unwrap().len(), 1);
    let (st, _) = s.post("/design/personalfile", &[], json!({"fileId": file_id})).await;
    assert_eq!(st, StatusCode::UNAUTHORIZED);
    // `userId` (the user's id, as Execute gives it) names the folder too.
    let user_id = |name: &str| {
        let engine = s.engine.clone();
        let name = name.to_owned();
        async move {
            engine
                .store()
                .user_by_name(&name)
                .await
                .unwrap()
                .unwrap()
                .id
                .0
                .to_string()
        }
    };
    let (alice_id, bob_id) = (user_id("alice").await, user_id("bob").await);
    let robot_headers = [("robotId", "r1"), ("robotConnectId", c.as_str())];
    let personal = |body: Value| s.post("/design/personalfile", &robot_headers, body);
    let (st, _) = personal(json!({"fileId": file_id, "runInstanceId": job, "userId": alice_id})).await;
    assert_eq!(st, StatusCode::OK);
    let (st, _) = personal(json!({"fileId": file_id, "runInstanceId": job, "userId": bob_id})).await;
    assert_eq!(st, StatusCode::FORBIDDEN, "bob did not start the job");
    let (st, v) =
        personal(json!({"fileId": file_id, "runInstanceId": job, "userId": alice_id, "userName": "bob"})).await;
    assert_eq!(st, StatusCode::BAD_REQUEST, "{v}");
    let (st, _) = personal(json!({"fileId": file_id, "runInstanceId": job, "userId": "999999"})).await;
    assert_eq!(st, StatusCode::NOT_FOUND);
    // The owner lists the folder and downloads from it.
    let (alice, _) = s.login("alice", "wonderland").await;
    let list: Value = s
        .http
        .get(format!("{}/design/personalfile", s.base))
        .header("X-Access-Token", &alice)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(list["successful"], true, "{list}");
    let files = list["resultValue"].as_array().unwrap();
    assert_eq!(files.len(), 1, "{list}");
    assert_eq!(files[0]["fileName"], "r.txt");
    assert_eq!(files[0]["fileId"], file_id.as_str());
    let got = s
        .http
        .get(files[0]["fileUrl"].as_str().unwrap())
        .header("X-Access-Token", &alice)
        .send()
        .await
        .unwrap();
    assert_eq!(got.status(), StatusCode::OK);
    // Without fileId (optional in the seed): the files uploaded for the run.
    for name in ["a.csv", "b.csv"] {
        let form = reqwest::multipart::Form::new()
            .part("file", reqwest::multipart::Part::bytes(b"1,2".to_vec()).file_name(name));
        let r = s
            .http
            .post(format!("{}/v1/file/file/upload", s.base))
            .header("robotId", "r1")
            .header("robotConnectId", &c)
            .header("runInstanceId", &job)
            .multipart(form)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK);
    }
    let (st, v) = personal(json!({"runInstanceId": job, "fileName": "b.csv"})).await;
    assert_eq!(st, StatusCode::OK, "{v}");
    let names = |files: Vec<rpa_core::model::StoredFile>| {
        let mut n: Vec<String> = files.into_iter().map(|f| f.name).collect();
        n.sort();
        n
    };
    assert_eq!(
        names(s.engine.personal_files("alice").await.unwrap()),
        ["b.csv", "r.txt"],
        "only the run's file of that name"
    );
    let (st, _) = personal(json!({"runInstanceId": job})).await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(
        names(s.engine.personal_files("alice").await.unwrap()),
        ["a.csv", "b.csv", "r.txt"],
        "every file of the run"
    );
    let (st, _) = personal(json!({"runInstanceId": job, "fileName": "none.csv"})).await;
    assert_eq!(st, StatusCode::NOT_FOUND, "no file of that name in the run");
    let (alice2, _) = s.login("alice", "wonderland").await;
    let (st, v) = s
        .post(
            "/design/personalfile",
            &[("X-Access-Token", alice2.as_str())],
            json!({}),
        )
        .await;
    assert_eq!(st, StatusCode::BAD_REQUEST, "neither fileId nor runInstanceId: {v}");
    let (bob, _) = s.login("bob", "builder").await;
    let theirs: Value = s
        .http
        .get(format!("{}/design/personalfile", s.base))
        .header("X-Access-Token", &bob)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(theirs["resultValue"], json!([]), "each sees only their own folder");
    let anonymous = s
        .http
        .get(format!("{}/design/personalfile", s.base))
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn bad_robot_input_gets_the_documented_status() {
    let s = Server::start().await;
    let (token, processes) = s.login("alice", "wonderland").await;
    let c = s.register("r1").await;
    let other = s.register("r2").await;
    let job = s
        .biz(
            &token,
            "/rpa/api/startJob",
            json!({"processId": pid(&processes, "Invoice entry"), "params": {"invoice": 1}}),
        )
        .await;
    let job = job["result"]["jobId"].as_str().unwrap().to_owned();
    s.robot("r1", &c, "/robots/connect/heartbeat", json!({})).await;
    s.robot("r2", &other, "/robots/connect/heartbeat", json!({})).await;
    let holder = if s.engine.job(job.parse().unwrap()).await.unwrap().robot
        == s.engine.store().robot_by_code("r1").await.unwrap().map(|r| r.id)
    {
        ("r1", c.clone())
    } else {
        ("r2", other.clone())
    };
    let stranger = if holder.0 == "r1" {
        ("r2", other.clone())
    } else {
        ("r1", c.clone())
    };

    let bad_proof = [("robotId", "r9")];
    let (st, v) = s
        .post(
            "/robots/connect/register",
            &bad_proof,
            json!({"supplierCode": "acme", "supplierSecret": "00"}),
        )
        .await;
    assert_eq!((st, v["successful"].as_bool()), (StatusCode::UNAUTHORIZED, Some(false)));
    let (st, _) = s
        .post(
            "/robots/connect/register",
            &[],
            json!({"supplierCode": "acme", "supplierSecret": "00"}),
        )
        .await;
    assert_eq!(st, StatusCode::UNAUTHORIZED, "robotId header missing");
    let (st, v) = s
        .post(
            "/robots/connect/register",
            &[("robotId", "r9")],
            json!({"supplierSecret": "00"}),
        )
        .await;
    assert_eq!(st, StatusCode::BAD_REQUEST);
    assert!(v["resultHint"].as_str().unwrap().starts_with("10001"), "{v}");

    // A connection id other than the live one of a connected robot: another
    // executor claims its id. The heartbeat answer tells it with the seed's
    // Error command (A.3.5 10000); its reports are refused with 10000.
    let (st, v) = s
        .robot(
            holder.0,
            "0123456789abcdef0123456789abcdef",
            "/robots/connect/heartbeat",
            json!({}),
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{v}");
    assert_eq!(v["resultValue"]["Action"], "Error", "{v}");
    assert_eq!(v["resultValue"]["Body"]["errorCode"], 10000, "{v}");
    let (st, v) = s
        .robot(
            holder.0,
            "0123456789abcdef0123456789abcdef",
            "/robots/connect/reportLogs",
            json!({"runInstanceId": job, "logs": []}),
        )
        .await;
    assert_eq!(st, StatusCode::BAD_REQUEST, "{v}");
    assert!(v["resultHint"].as_str().unwrap().starts_with("10000"), "{v}");

    let cases: Vec<(&str, &str, String, Value, StatusCode)> = vec![
        (
            "/robots/connect/heartbeat",
            "nobody",
            "0123456789abcdef0123456789abcdef".into(),
            json!({}),
            StatusCode::UNAUTHORIZED,
        ),
        (
            "/robots/connect/heartbeat",
            holder.0,
            "garbage".into(),
            json!({}),
            StatusCode::UNAUTHORIZED,
        ),
        (
            "/robots/connect/heartbeat",
            holder.0,
            holder.1.clone(),
            json!({"runInstanceId": 5}),
            StatusCode::BAD_REQUEST,
        ),
        (
            "/robots/connect/reportFinish",
            holder.0,
            holder.1.clone(),
            json!({"runInstanceId": job}),
            StatusCode::BAD_REQUEST,
        ),
        (
            "/robots/connect/reportFinish",
            holder.0,
            holder.1.clone(),
            json!({"runInstanceId": job, "status": 7}),
            StatusCode::BAD_REQUEST,
        ),
        (
            "/robots/connect/reportFinish",
            holder.0,
            holder.1.clone(),
            json!({"runInstanceId": job, "status": "zero"}),
            StatusCode::BAD_REQUEST,
        ),
        (
            "/robots/connect/reportFinish",
            holder.0,
            holder.1.clone(),
            json!({"runInstanceId": "0123456789abcdef0123456789abcdef", "status": 0}),
            StatusCode::NOT_FOUND,
        ),
        (
            "/robots/connect/reportFinish",
            stranger.0,
            stranger.1.clone(),
            json!({"runInstanceId": job, "status": 0}),
            StatusCode::FORBIDDEN,
        ),
        (
            "/robots/connect/reportLogs",
            holder.0,
            holder.1.clone(),
            json!({"runInstanceId": job}),
            StatusCode::BAD_REQUEST,
        ),
        (
            "/robots/connect/reportLogs",
            holder.0,
            holder.1.clone(),
            json!({"runInstanceId": job, "logs": [{"content": "x", "logAt": "t", "logLevel": 9}]}),
            StatusCode::BAD_REQUEST,
        ),
        (
            "/robots/connect/reportLogs",
            holder.0,
            holder.1.clone(),
            json!({"runInstanceId": job, "logs": [{"logAt": "t", "logLevel": 0}]}),
            StatusCode::BAD_REQUEST,
        ),
        (
            "/robots/connect/reportVideoRecord",
            holder.0,
            holder.1.clone(),
            json!({"runInstanceId": job}),
            StatusCode::BAD_REQUEST,
        ),
        (
            "/design/personalfile",
            holder.0,
            holder.1.clone(),
            json!({"fileId": "0123456789abcdef0123456789abcdef"}),
            StatusCode::NOT_FOUND,
        ),
    ];
    for (path, robot, connect, body, want) in cases {
        let (st, v) = s.robot(robot, &connect, path, body.clone()).await;
        assert_eq!(st, want, "{path} {body}: {v}");
        assert_eq!(v["successful"], false);
        assert!(!v["resultHint"].as_str().unwrap().is_empty());
        assert_eq!(v["resultValue"], Value::Null);
    }
    // Refused with 10001, naming the field: a logAt that is no date-time, an
    // errorCode beyond 32 bits (the WebSocket hub refuses both the same way).
    for (path, body, field) in [
        (
            "/robots/connect/reportLogs",
            json!({"runInstanceId": job, "logs": [{"content": "x", "logAt": "yesterday", "logLevel": 0}]}),
            "logAt",
        ),
        (
            "/robots/connect/reportFinish",
            json!({"runInstanceId": job, "status": 2, "errorCode": 4_294_967_296_i64}),
            "errorCode",
        ),
    ] {
        let (st, v) = s.robot(holder.0, &holder.1, path, body).await;
        assert_eq!(st, StatusCode::BAD_REQUEST, "{v}");
        let hint = v["resultHint"].as_str().unwrap();
        assert!(hint.starts_with("10001") && hint.contains(field), "{hint}");
    }
    let (st, _) = s
        .post_raw(
            "/robots/connect/reportFinish",
            &[("robotId", holder.0), ("robotConnectId", &holder.1)],
            "nope".into(),
        )
        .await;
    assert_eq!(st, StatusCode::BAD_REQUEST);
    assert_eq!(
        s.engine.job(job.parse().unwrap()).await.unwrap().state,
        rpa_core::model::JobState::Running,
        "nothing changed the job"
    );
    let v: Value = s
        .http
        .post(format!("{}/v1/file/bogus/upload", s.base))
        .header("X-Access-Token", &token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(v["successful"], false);
}

#[tokio::test]
async fn administration_and_packages() {
    let s = Server::start().await;
    let (admin, _) = s.login("admin", "admin-pw").await;
    let (alice, _) = s.login("alice", "wonderland").await;
    let v = s
        .biz(&alice, "/admin/processes", json!({"name": "x", "type": "Unattended"}))
        .await;
    assert!(v["message"].as_str().unwrap().contains("permission denied"), "{v}");
    let v = s.biz(&admin, "/admin/processes", json!({"name": "Payroll", "type": "Unattended", "arguments": [{"name": "month", "type": "string", "required": true}], "maxRunNum": 3})).await;
    let payroll = v["result"]["processId"].as_str().unwrap().to_owned();
    let v = s
        .biz(&admin, "/admin/processes", json!({"name": "Bad", "type": "Sideways"}))
        .await;
    assert!(
        v["message"].as_str().unwrap().contains("invalid process definition"),
        "{v}"
    );
    let pkg: Value = s
        .http
        .post(format!("{}/admin/processes/{payroll}/package?version=3.0", s.base))
        .header("X-Access-Token", &admin)
        .body(b"PK\x03\x04 package".to_vec())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let uri = pkg["result"]["packageDownloadUri"].as_str().unwrap().to_owned();
    s.biz(
        &admin,
        "/admin/users",
        json!({"name": "carol", "password": "pw", "processes": [payroll]}),
    )
    .await;
    let (carol, procs) = s.login("carol", "pw").await;
    assert_eq!(pid(&procs, "Payroll"), payroll);
    s.biz(
        &admin,
        "/admin/vendors",
        json!({"supplierCode": "globex", "secret": "globex-secret"}),
    )
    .await;
    let proof = supplier_proof("globex-secret", "g1");
    let (st, v) = s
        .post(
            "/robots/connect/register",
            &[("robotId", "g1")],
            json!({"supplierCode": "globex", "supplierSecret": proof}),
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{v}");
    let c = v["resultValue"]["robotConnectId"].as_str().unwrap().to_owned();
    s.robot("g1", &c, "/robots/connect/heartbeat", json!({})).await;
    s.biz(
        &carol,
        "/rpa/api/startJob",
        json!({"processId": payroll, "params": {"month": "2026-11"}}),
    )
    .await;
    let (_, v) = s.robot("g1", &c, "/robots/connect/heartbeat", json!({})).await;
    // Execute's link is the package's, signed to work for an hour.
    let link = v["resultValue"]["Body"]["packageDownloadUri"]
        .as_str()
        .unwrap()
        .to_owned();
    let (plain, query) = link.split_once('?').expect("a signed link");
    assert_eq!(plain, uri.as_str());
    assert!(query.starts_with("expires=") && query.contains("&signature="), "{link}");
    let got = s
        .http
        .get(&uri)
        .header("robotId", "g1")
        .header("robotConnectId", &c)
        .send()
        .await
        .unwrap();
    assert_eq!(got.bytes().await.unwrap().as_ref(), b"PK\x03\x04 package");
    // A third-party executor fetches the link with a plain GET, no headers.
    let http = s.http.clone();
    let get = |url: String| {
        let http = http.clone();
        async move { http.get(url).send().await.unwrap() }
    };
    let got = get(link.clone()).await;
    assert_eq!(got.status(), StatusCode::OK);
    assert_eq!(got.bytes().await.unwrap().as_ref(), b"PK\x03\x04 package");
    let forged = link.replace("signature=", "signature=00");
    assert_eq!(get(forged).await.status(), StatusCode::UNAUTHORIZED);
    let longer = link.replace("expires=", "expires=9");
    assert_eq!(
        get(longer).await.status(),
        StatusCode::UNAUTHORIZED,
        "the expiry is signed"
    );
    assert_eq!(
        get(uri.clone()).await.status(),
        StatusCode::UNAUTHORIZED,
        "unsigned: credentials needed"
    );
    // A new package version: the job started before keeps the version it runs.
    let pkg: Value = s
        .http
        .post(format!("{}/admin/processes/{payroll}/package?version=3.1", s.base))
        .header("X-Access-Token", &admin)
        .body(b"PK\x03\x04 package 3.1".to_vec())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(pkg["result"]["version"], "3.1.0", "versions are written in full: {pkg}");
    s.biz(
        &carol,
        "/rpa/api/startJob",
        json!({"processId": payroll, "params": {"month": "2026-12"}}),
    )
    .await;
    let jobs = s
        .biz(&carol, "/rpa/api/queryProcessJob", json!({"processId": payroll}))
        .await;
    let versions: Vec<&str> = jobs["result"]["record"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["version"].as_str().unwrap())
        .collect();
    assert_eq!(
        versions,
        ["3.1.0", "3.0.0"],
        "newest first, each with the version it runs"
    );
    let robots: Value = s
        .http
        .get(format!("{}/admin/robots", s.base))
        .header("X-Access-Token", &admin)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(
        robots["result"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["robotId"] == "g1" && r["state"] == "Busy"),
        "{robots}"
    );
    let verified: Value = s
        .http
        .get(format!("{}/admin/audit/verify", s.base))
        .header("X-Access-Token", &admin)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(verified["result"]["verified"].as_u64().unwrap() > 10);
    // An hour later the link no longer works.
    s.clock.advance(3_600_000 + 1_000);
    let expired = get(link.clone()).await;
    assert_eq!(expired.status(), StatusCode::UNAUTHORIZED);
    let v: Value = expired.json().await.unwrap();
    assert_eq!(v["successful"], false, "{v}");
}

#[tokio::test]
async fn oversize_bodies_get_413_in_each_apis_envelope() {
    let s = Server::start().await;
    let (admin, _) = s.login("admin", "admin-pw").await;
    let c = s.register("r1").await;
    let big = format!("{{\"runInstanceId\":\"{}\",\"logs\":[]}}", "x".repeat(2 << 20));
    let (st, v) = s
        .post_raw(
            "/robots/connect/reportLogs",
            &[("robotId", "r1"), ("robotConnectId", &c)],
            big,
        )
        .await;
    assert_eq!(st, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(
        (v["successful"].as_bool(), v["resultValue"].is_null()),
        (Some(false), true),
        "{v}"
    );
    let big = format!("{{\"name\":\"{}\",\"type\":\"Unattended\"}}", "x".repeat(2 << 20));
    let (st, v) = s.post_raw("/admin/processes", &[("X-Access-Token", &admin)], big).await;
    assert_eq!(st, StatusCode::PAYLOAD_TOO_LARGE);
    assert_envelope(&v, false);
    let (st, v) = s
        .post_raw(
            "/rpa/api/login",
            &[],
            format!("{{\"username\":\"{}\"}}", "x".repeat(2 << 20)),
        )
        .await;
    assert_eq!(st, StatusCode::PAYLOAD_TOO_LARGE);
    assert_envelope(&v, false);
}

#[tokio::test]
async fn bad_admin_input_is_refused_in_the_envelope() {
    let s = Server::start().await;
    let (admin, _) = s.login("admin", "admin-pw").await;
    let before = s.audit_len().await;
    let cases = [
        ("/admin/users", json!({"password": "x"}), "name is required"),
        (
            "/admin/users",
            json!({"name": "zed", "password": "x", "processes": [1]}),
            "processes must be an array of strings",
        ),
        (
            "/admin/users",
            json!({"name": "zed", "password": "x", "processes": ["nope"]}),
            "not found",
        ),
        (
            "/admin/users",
            json!({"name": "zed", "password": "x", "roles": ["wizard"]}),
            "role wizard not found",
        ),
        (
            "/admin/users",
            json!({"name": "alice", "password": "x"}),
            "already exists",
        ),
        ("/admin/users/unlock", json!({"name": "nobody"}), "not found"),
        ("/admin/grants", json!({"name": "alice"}), "processId is required"),
        (
            "/admin/grants",
            json!({"name": "alice", "processId": "0123456789abcdef0123456789abcdef"}),
            "not found",
        ),
        (
            "/admin/processes",
            json!({"type": "Queue"}),
            "invalid process definition",
        ),
        (
            "/admin/processes",
            json!({"name": "x", "type": "Queue", "maxRunNum": -1}),
            "invalid process definition",
        ),
        ("/admin/vendors", json!({"supplierCode": "v"}), "secret is required"),
        (
            "/admin/vendors",
            json!({"supplierCode": "v", "secret": "short"}),
            "at least 8 characters",
        ),
        ("/admin/robots", json!({"pool": "p"}), "invalid robot profile"),
    ];
    for (path, body, want) in cases {
        let v = s.biz(&admin, path, body.clone()).await;
        assert_envelope(&v, false);
        assert!(v["message"].as_str().unwrap().contains(want), "{path} {body}: {v}");
    }
    assert_eq!(s.audit_len().await, before, "nothing written");
    let (st, v) = s
        .post(
            "/admin/users",
            &[("X-Access-Token", "forged")],
            json!({"name": "x", "password": "y"}),
        )
        .await;
    assert_eq!((st, v["code"].as_i64()), (StatusCode::UNAUTHORIZED, Some(401)));
}

#[tokio::test]
async fn openapi_lists_every_endpoint() {
    let s = Server::start_with(HttpSettings::default()).await;
    let doc: Value = s
        .http
        .get(format!("{}/openapi.json", s.base))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let paths = doc["paths"].as_object().unwrap();
    // Every route the routers serve, with its method.
    let routes = [
        ("/rpa/api/login", "post"),
        ("/rpa/api/logout", "post"),
        ("/rpa/api/queryProcess", "post"),
        ("/rpa/api/startJob", "post"),
        ("/rpa/api/stopJob", "post"),
        ("/rpa/api/jobStatus", "post"),
        ("/rpa/api/addQueueItem", "post"),
        ("/rpa/api/queryProcessJob", "post"),
        ("/robots/connect/register", "post"),
        ("/robots/connect/heartbeat", "post"),
        ("/robots/connect/reportLogs", "post"),
        ("/robots/connect/reportFinish", "post"),
        ("/robots/connect/reportVideoRecord", "post"),
        ("/robots/connect/reportCheckpoint", "post"),
        ("/v1/file/{source}/upload", "post"),
        ("/v1/file/{fileId}", "get"),
        ("/design/personalfile", "post"),
        ("/design/personalfile", "get"),
        ("/console/api/me", "get"),
        ("/console/api/overview", "get"),
        ("/console/api/jobs", "get"),
        ("/console/api/jobs/{jobId}", "get"),
        ("/console/api/tickets", "get"),
        ("/console/api/queues/{processId}/items", "get"),
        ("/federation/v1/results", "post"),
        ("/admin/children", "get"),
        ("/federation/v1/catalogue", "get"),
        ("/federation/v1/catalogue/{listingId}/package", "get"),
        ("/admin/config", "get"),
        ("/admin/config", "post"),
        ("/admin/catalogue", "post"),
        ("/admin/catalogue", "get"),
        ("/admin/catalogue/{listingId}", "delete"),
        ("/admin/catalogue/{listingId}/subscribe", "post"),
        ("/admin/users", "post"),
        ("/admin/users", "get"),
        ("/admin/users/unlock", "post"),
        ("/admin/users/disable", "post"),
        ("/admin/users/enable", "post"),
        ("/admin/roles", "post"),
        ("/admin/grants", "post"),
        ("/admin/grants/revoke", "post"),
        ("/admin/tokens", "post"),
        ("/admin/processes", "post"),
        ("/admin/processes", "get"),
        ("/admin/processes/{processId}/package", "post"),
        ("/admin/processes/{processId}/packages", "get"),
        ("/admin/processes/{processId}/package/pin", "post"),
        ("/admin/vendors", "post"),
        ("/admin/robots", "post"),
        ("/admin/robots", "get"),
        ("/admin/jobs/{jobId}/kill", "post"),
        ("/admin/audit", "get"),
        ("/admin/audit/verify", "get"),
        ("/admin/events", "get"),
        ("/admin/listener/requests", "get"),
        ("/admin/schedules", "post"),
        ("/admin/schedules", "get"),
        ("/admin/schedules/{scheduleId}/enable", "post"),
        ("/admin/schedules/{scheduleId}/disable", "post"),
        ("/admin/schedules/{scheduleId}/firings", "get"),
        ("/admin/workflows", "post"),
        ("/admin/workflows", "get"),
        ("/admin/workflows/{workflowId}", "get"),
        ("/admin/flow/directory", "get"),
        ("/admin/flow/directory", "put"),
        ("/admin/webhooks", "post"),
        ("/admin/webhooks", "get"),
        ("/admin/webhooks/{webhookId}", "delete"),
        ("/admin/webhooks/{webhookId}/failures", "get"),
        ("/admin/webhooks/{webhookId}/failures/{failureId}/redeliver", "post"),
        ("/admin/licenses", "post"),
        ("/admin/licenses", "get"),
        ("/admin/licenses/{name}", "put"),
        ("/admin/licenses/{name}", "delete"),
        ("/admin/licenses/{name}/bind", "post"),
        ("/admin/licenses/{name}/unbind", "post"),
        ("/v1/ai/{capability}", "post"),
        ("/admin/ai/capabilities", "post"),
        ("/admin/ai/capabilities", "get"),
        ("/admin/ai/capabilities/{name}", "put"),
        ("/admin/ai/capabilities/{name}", "delete"),
        ("/admin/ai/capabilities/{name}/usage", "get"),
        ("/admin/analysis/runs", "get"),
        ("/admin/processes/{processId}/attributes", "put"),
        ("/admin/content", "get"),
        ("/admin/content", "post"),
        ("/admin/content/hot", "get"),
        ("/admin/content/{id}", "get"),
        ("/admin/content/{id}", "put"),
        ("/admin/content/{id}", "delete"),
        ("/console/api/processes/{processId}/problems", "get"),
        ("/console/api/processes/{processId}/problems", "post"),
        ("/console/api/tickets/{id}/handle", "post"),
        ("/design/connect/register", "post"),
        ("/design/connect/heartbeat", "post"),
        ("/admin/designers", "get"),
        ("/admin/designers/allocate", "post"),
        ("/admin/designers/{designerId}/release", "post"),
        ("/admin/images/{name}", "post"),
        ("/admin/images", "get"),
        ("/admin/images/{name}/{version}", "delete"),
        ("/admin/executors", "get"),
        ("/admin/processes/{processId}/trigger", "get"),
        ("/admin/processes/{processId}/trigger", "put"),
        ("/admin/processes/{processId}/trigger", "delete"),
        ("/admin/pipelines", "post"),
        ("/admin/pipelines", "get"),
        ("/admin/pipelines/{pipelineId}", "get"),
        ("/admin/pipelines/{pipelineId}/runs", "post"),
        ("/admin/pipelines/{pipelineId}/runs", "get"),
        ("/admin/pipeline-runs/{runId}", "get"),
        ("/admin/pipeline-runs/{runId}/stop", "post"),
        ("/admin/pipeline-runs/{runId}/rerun", "post"),
        ("/admin/pools", "get"),
        ("/admin/pools/{name}", "put"),
        ("/listener/rpa/api/message", "post"),
    ];
    for (p, method) in routes {
        assert!(
            paths.get(p).and_then(|m| m.get(method)).is_some(),
            "{method} {p} missing from /openapi.json"
        );
    }
    // The UiPath-compatible operations (one OData handler serves them) are
    // described from their table; every other one is a route above.
    let tagged = |op: &Value, tag: &str| op["tags"].as_array().is_some_and(|t| t.iter().any(|x| x == tag));
    let ops: Vec<(&String, &Value)> = paths
        .iter()
        .flat_map(|(p, m)| m.as_object().unwrap().values().map(move |op| (p, op)))
        .collect();
    let uipath: Vec<&&String> = ops
        .iter()
        .filter(|(_, op)| tagged(op, "uipath"))
        .map(|(p, _)| p)
        .collect();
    assert!(uipath.len() >= 30, "{uipath:?}");
    assert!(
        uipath
            .iter()
            .all(|p| p.starts_with("/odata/") || p.starts_with("/oauth/") || p.starts_with("/api/Buckets/")),
        "{uipath:?}"
    );
    assert_eq!(
        ops.len() - uipath.len(),
        routes.len(),
        "nothing documented that is not served"
    );
    // The results are described field by field, from the handlers' types.
    let schemas = doc["components"]["schemas"].as_object().unwrap();
    let started = &schemas["StartedJob"]["properties"];
    for f in ["jobId", "status", "creationTime", "type"] {
        assert!(started.get(f).is_some(), "StartedJob.{f}: {started}");
    }
    for s in [
        "ProcessInfo",
        "JobStep",
        "JobPage",
        "Registered",
        "RobotInfo",
        "ProcessDef",
        "StartJobRequest",
    ] {
        assert!(schemas.contains_key(s), "schema {s} missing");
    }
    let start = &doc["paths"]["/rpa/api/startJob"]["post"];
    assert_eq!(
        start["requestBody"]["content"]["application/json"]["schema"]["$ref"],
        "#/components/schemas/StartJobRequest"
    );
    // Swagger UI, served from the binary.
    let ui = s.http.get(format!("{}/docs/", s.base)).send().await.unwrap();
    assert_eq!(ui.status(), StatusCode::OK);
    assert!(ui.text().await.unwrap().contains("swagger"), "Swagger UI at /docs/");
}

#[tokio::test]
async fn envelopes_are_stamped_with_the_engines_clock() {
    let s = Server::start().await;
    let now = rpa_core::Clock::now(&s.clock).0;
    let (_, ok) = s
        .post(
            "/rpa/api/login",
            &[],
            json!({"username": "alice", "password": "wonderland"}),
        )
        .await;
    let (_, refused) = s.post("/rpa/api/login", &[], json!({"username": "alice"})).await;
    let (_, unauthenticated) = s.post("/rpa/api/startJob", &[], json!({})).await;
    let (_, no_route) = s.post("/rpa/api/nothing", &[], json!({})).await;
    for v in [&ok, &refused, &unauthenticated, &no_route] {
        assert_eq!(v["timestamp"], now, "{v}");
    }
    s.clock.advance(1_234);
    let (_, later) = s.post("/rpa/api/logout", &[], json!({})).await;
    assert_eq!(later["timestamp"], now + 1_234, "{later}");
}

#[tokio::test]
async fn administrators_kill_jobs_and_refused_admin_calls_are_audited() {
    let s = Server::start().await;
    let (admin, _) = s.login("admin", "admin-pw").await;
    let (alice, processes) = s.login("alice", "wonderland").await;
    let invoice = pid(&processes, "Invoice entry");
    let c = s.register("r1").await;
    s.robot("r1", &c, "/robots/connect/heartbeat", json!({})).await;
    let started = s
        .biz(
            &alice,
            "/rpa/api/startJob",
            json!({"processId": invoice, "params": {"invoice": 1}}),
        )
        .await;
    let job = started["result"]["jobId"].as_str().unwrap().to_owned();
    let (_, hb) = s.robot("r1", &c, "/robots/connect/heartbeat", json!({})).await;
    assert_eq!(hb["resultValue"]["Action"], "Execute");

    // Alice is no administrator: refused, and each refusal is in the audit chain.
    let before = s.audit_len().await as u64;
    let kill = format!("/admin/jobs/{job}/kill");
    let (st, v) = s.post(&kill, &[("X-Access-Token", &alice)], json!({})).await;
    assert_eq!(st, StatusCode::OK);
    assert_envelope(&v, false);
    assert!(v["message"].as_str().unwrap().contains("permission denied"), "{v}");
    let listed = s
        .http
        .get(format!("{}/admin/users", s.base))
        .header("X-Access-Token", &alice)
        .send()
        .await
        .unwrap();
    let listed: Value = listed.json().await.unwrap();
    assert_envelope(&listed, false);
    let denied: Vec<_> = s
        .engine
        .store()
        .audit(before, 100)
        .await
        .unwrap()
        .into_iter()
        .filter(|e| e.action == "permission.denied")
        .map(|e| e.subject)
        .collect();
    assert_eq!(denied, ["OperateAllJobs", "ManageUsers"], "{denied:?}");

    // The administrator kills it: Stopped at once, and the robot is told to stop.
    let (st, v) = s.post(&kill, &[("X-Access-Token", &admin)], json!({})).await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(v["result"], json!({"jobId": job, "state": "Stopped"}), "{v}");
    let status = s.biz(&alice, "/rpa/api/jobStatus", json!({"jobId": job})).await;
    assert_eq!(status["result"][0]["status"], "Stopped");
    let (_, hb) = s
        .robot("r1", &c, "/robots/connect/heartbeat", json!({"runInstanceId": job}))
        .await;
    assert_eq!(hb["resultValue"]["Action"], "Stop");
    let (_, v) = s
        .post(
            "/admin/jobs/00000000000000000000000000000000/kill",
            &[("X-Access-Token", &admin)],
            json!({}),
        )
        .await;
    assert_envelope(&v, false);
    assert!(v["message"].as_str().unwrap().contains("not found"), "{v}");
}

#[tokio::test]
async fn unknown_paths_and_wrong_methods_answer_in_their_familys_envelope() {
    let s = Server::start().await;
    let send = async |method: reqwest::Method, path: &str| {
        let r = s
            .http
            .request(method, format!("{}{path}", s.base))
            .send()
            .await
            .unwrap();
        let status = r.status();
        (status, r.json::<Value>().await.expect("a JSON envelope"))
    };
    for (method, path, status) in [
        (reqwest::Method::POST, "/rpa/api/startJobs", StatusCode::NOT_FOUND),
        (reqwest::Method::GET, "/rpa/api/login", StatusCode::METHOD_NOT_ALLOWED),
        (reqwest::Method::POST, "/admin/nothing", StatusCode::NOT_FOUND),
        (reqwest::Method::DELETE, "/admin/users", StatusCode::METHOD_NOT_ALLOWED),
    ] {
        let (st, v) = send(method.clone(), path).await;
        assert_eq!(st, status, "{method} {path}: {v}");
        assert_envelope(&v, false);
        assert_eq!(v["code"], status.as_u16(), "{v}");
        assert!(v["message"].as_str().unwrap().contains(path), "{v}");
    }
    for (method, path, status) in [
        (reqwest::Method::POST, "/robots/connect/dance", StatusCode::NOT_FOUND),
        (
            reqwest::Method::GET,
            "/robots/connect/heartbeat",
            StatusCode::METHOD_NOT_ALLOWED,
        ),
        (reqwest::Method::GET, "/v1/ai/ocr", StatusCode::METHOD_NOT_ALLOWED),
        (reqwest::Method::POST, "/v1/ai/ocr/extra", StatusCode::NOT_FOUND),
    ] {
        let (st, v) = send(method.clone(), path).await;
        assert_eq!(st, status, "{method} {path}: {v}");
        assert_eq!(v["successful"], false, "{v}");
        assert!(v["resultHint"].as_str().unwrap().contains(path), "{v}");
        assert_eq!(v["resultValue"], Value::Null);
    }
}

#[tokio::test]
async fn workflows_and_the_directory_are_managed_with_the_admin_token() {
    let s = Server::start().await;
    let (admin, _) = s.login("admin", "admin-pw").await;
    let (alice, _) = s.login("alice", "wonderland").await;
    let call = |method: reqwest::Method, path: &str, token: &str, body: Option<Value>| {
        let mut r = s
            .http
            .request(method, format!("{}{path}", s.base))
            .header("X-Access-Token", token);
        if let Some(b) = body {
            r = r.json(&b);
        }
        async move {
            let resp = r.send().await.unwrap();
            (resp.status(), resp.json::<Value>().await.unwrap())
        }
    };
    let directory = json!({
        "users": [{"username": "ann", "dept_id": 1}, {"username": "ben", "dept_id": 1}],
        "depts": [{"id": 1, "name": "ops", "leader": "ben"}],
        "roles": []
    });
    let (st, v) = call(
        reqwest::Method::PUT,
        "/admin/flow/directory",
        &alice,
        Some(directory.clone()),
    )
    .await;
    assert_eq!(
        (st, v["code"].as_i64()),
        (StatusCode::OK, Some(500)),
        "alice may not: {v}"
    );
    let broken = json!({"users": [{"username": "ann", "dept_id": 7}]});
    let (_, v) = call(reqwest::Method::PUT, "/admin/flow/directory", &admin, Some(broken)).await;
    assert!(v["message"].as_str().unwrap().contains("department 7"), "{v}");
    let (_, v) = call(reqwest::Method::PUT, "/admin/flow/directory", &admin, Some(directory)).await;
    assert_eq!(v["code"], 200, "{v}");
    let (_, v) = call(reqwest::Method::GET, "/admin/flow/directory", &admin, None).await;
    assert_eq!(v["result"]["users"][1]["username"], "ben");

    let def = json!({
        "name": "leave",
        "states": [
            {"name": "new", "type_id": 1, "participant_type_id": 5, "participant": "creator"},
            {"name": "approve", "participant_type_id": 5, "participant": "creator_tl"},
            {"name": "done", "type_id": 2}
        ],
        "transitions": [
            {"name": "submit", "source_state": "new", "destination_state": "approve"},
            {"name": "agree", "source_state": "approve", "destination_state": "done"}
        ]
    });
    let mut stuck = def.clone();
    stuck["transitions"][1]["destination_state"] = json!("approve");
    let (_, v) = call(reqwest::Method::POST, "/admin/workflows", &admin, Some(stuck)).await;
    assert_eq!(v["code"], 500);
    assert!(
        v["message"].as_str().unwrap().contains("no path leads from state"),
        "{v}"
    );
    let (_, v) = call(
        reqwest::Method::POST,
        "/admin/workflows",
        &admin,
        Some(json!({"name": "x"})),
    )
    .await;
    assert!(
        v["message"].as_str().unwrap().contains("invalid workflow definition"),
        "{v}"
    );
    let (_, saved) = call(reqwest::Method::POST, "/admin/workflows", &admin, Some(def.clone())).await;
    assert_eq!(saved["code"], 200, "{saved}");
    let id = saved["result"]["id"].as_i64().unwrap();
    assert_eq!(saved["result"]["states"].as_array().unwrap().len(), 3);
    let (_, exported) = call(reqwest::Method::GET, &format!("/admin/workflows/{id}"), &admin, None).await;
    assert_eq!(exported["result"]["name"], "leave");
    let (_, again) = call(
        reqwest::Method::POST,
        "/admin/workflows",
        &admin,
        Some(exported["result"].clone()),
    )
    .await;
    assert_eq!(
        again["result"]["version"], 2,
        "the export saves back as the same workflow"
    );
    assert_eq!(
        again["result"]["states"], saved["result"]["states"],
        "with the same state ids"
    );
    let (_, list) = call(reqwest::Method::GET, "/admin/workflows", &admin, None).await;
    assert_eq!(list["result"].as_array().unwrap().len(), 1);
    let (_, missing) = call(reqwest::Method::GET, "/admin/workflows/99", &admin, None).await;
    assert_eq!(missing["code"], 500, "{missing}");
}

#[tokio::test]
async fn roles_revoked_grants_and_disabled_users() {
    let s = Server::start().await;
    let (admin, _) = s.login("admin", "admin-pw").await;
    let (alice, processes) = s.login("alice", "wonderland").await;
    let invoice = pid(&processes, "Invoice entry");

    // A custom role from a permission list; a user holding it may read the
    // audit log and nothing else of the administration.
    let v = s
        .biz(
            &admin,
            "/admin/roles",
            json!({"name": "auditor", "permissions": ["ViewAudit"]}),
        )
        .await;
    assert_envelope(&v, true);
    assert_eq!(v["result"]["permissions"], json!(["ViewAudit"]), "{v}");
    let v = s
        .biz(
            &admin,
            "/admin/roles",
            json!({"name": "bad", "permissions": ["Everything"]}),
        )
        .await;
    assert!(
        v["message"]
            .as_str()
            .unwrap()
            .contains("\"Everything\" is not a permission"),
        "{v}"
    );
    let v = s
        .biz(&admin, "/admin/roles", json!({"name": "auditor", "permissions": []}))
        .await;
    assert!(v["message"].as_str().unwrap().contains("already exists"), "{v}");
    let v = s
        .biz(
            &admin,
            "/admin/users",
            json!({"name": "audrey", "password": "audit-pw-1", "roles": ["auditor"]}),
        )
        .await;
    assert_envelope(&v, true);
    let (audrey, _) = s.login("audrey", "audit-pw-1").await;
    let (st, v) = s
        .post("/admin/audit/verify", &[("X-Access-Token", &audrey)], json!({}))
        .await;
    assert_eq!(st, StatusCode::METHOD_NOT_ALLOWED, "{v}");
    let v = s.biz(&audrey, "/admin/users/unlock", json!({"name": "alice"})).await;
    assert!(v["message"].as_str().unwrap().contains("permission denied"), "{v}");

    // A revoked grant: alice may no longer start the process.
    let v = s
        .biz(
            &admin,
            "/admin/grants/revoke",
            json!({"name": "alice", "processId": invoice}),
        )
        .await;
    assert_envelope(&v, true);
    let v = s
        .biz(
            &alice,
            "/rpa/api/startJob",
            json!({"processId": invoice, "params": {"invoice": 1}}),
        )
        .await;
    assert!(v["message"].as_str().unwrap().contains("permission denied"), "{v}");

    // A disabled user: her session stops at once, her password no longer logs in.
    let v = s.biz(&admin, "/admin/users/disable", json!({"name": "alice"})).await;
    assert_envelope(&v, true);
    let (st, _) = s
        .post(
            "/rpa/api/queryProcess",
            &[("X-Access-Token", &alice)],
            json!({"processId": invoice}),
        )
        .await;
    assert_eq!(st, StatusCode::UNAUTHORIZED);
    let (_, v) = s
        .post(
            "/rpa/api/login",
            &[],
            json!({"username": "alice", "password": "wonderland"}),
        )
        .await;
    assert_envelope(&v, false);
    let v = s.biz(&admin, "/admin/users/disable", json!({"name": "admin"})).await;
    assert!(
        v["message"].as_str().unwrap().contains("cannot disable themself"),
        "{v}"
    );
    let v = s.biz(&admin, "/admin/users/disable", json!({"name": "nobody"})).await;
    assert!(v["message"].as_str().unwrap().contains("not found"), "{v}");
    let v = s.biz(&admin, "/admin/users/enable", json!({"name": "alice"})).await;
    assert_envelope(&v, true);
    s.login("alice", "wonderland").await;
}

#[tokio::test]
async fn the_catalogue_publishes_finds_and_subscribes() {
    let s = Server::start().await;
    let (admin, _) = s.login("admin", "admin-pw").await;
    let (alice, processes) = s.login("alice", "wonderland").await;
    let invoice = pid(&processes, "Invoice entry");
    let get = |path: String, token: String| {
        let http = s.http.clone();
        let url = format!("{}{path}", s.base);
        async move {
            http.get(url)
                .header("X-Access-Token", token)
                .send()
                .await
                .unwrap()
                .json::<Value>()
                .await
                .unwrap()
        }
    };

    // Nothing to publish before a package is uploaded.
    let v = s
        .biz(
            &admin,
            "/admin/catalogue",
            json!({"processId": invoice, "description": "x"}),
        )
        .await;
    assert!(v["message"].as_str().unwrap().contains("no uploaded package"), "{v}");
    let up: Value = s
        .http
        .post(format!("{}/admin/processes/{invoice}/package?version=2.0.0", s.base))
        .header("X-Access-Token", &admin)
        .body("echo invoices")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(up["result"]["current"], true, "{up}");
    let v = s
        .biz(
            &admin,
            "/admin/catalogue",
            json!({"processId": invoice, "description": "Types invoices into the ERP", "tags": ["Finance", "ERP"]}),
        )
        .await;
    assert_envelope(&v, true);
    assert_eq!(v["result"]["version"], "2.0.0");
    assert_eq!(v["result"]["tags"], json!(["finance", "erp"]));
    let listing = v["result"]["listingId"].as_i64().unwrap();
    let v = s.biz(&admin, "/admin/catalogue", json!({"processId": invoice})).await;
    assert!(v["message"].as_str().unwrap().contains("already exists"), "{v}");
    let v = s.biz(&alice, "/admin/catalogue", json!({"processId": invoice})).await;
    assert!(v["message"].as_str().unwrap().contains("permission denied"), "{v}");

    // Anyone with a session searches.
    let found = get("/admin/catalogue?q=invoices+erp".into(), alice.clone()).await;
    assert_eq!(found["result"].as_array().unwrap().len(), 1, "{found}");
    let found = get("/admin/catalogue?q=payroll".into(), alice.clone()).await;
    assert_eq!(found["result"], json!([]), "{found}");
    let found = get("/admin/catalogue?tag=finance".into(), alice.clone()).await;
    assert_eq!(found["result"][0]["name"], "Invoice entry", "{found}");

    // Subscribing makes a process of one's own running the published package.
    let v = s
        .biz(
            &admin,
            &format!("/admin/catalogue/{listing}/subscribe"),
            json!({"name": "Invoice entry (branch)", "folder": "Branch"}),
        )
        .await;
    assert_envelope(&v, true);
    assert_eq!(v["result"]["processName"], "Invoice entry (branch)");
    assert_eq!(v["result"]["version"], "2.0.0");
    assert_eq!(
        v["result"]["packageDownloadUri"], up["result"]["packageDownloadUri"],
        "{v}"
    );
    let subscribed = v["result"]["processId"].as_str().unwrap().to_owned();
    let versions = get(format!("/admin/processes/{subscribed}/packages"), admin.clone()).await;
    assert_eq!(versions["result"][0]["current"], true, "{versions}");
    let v = s
        .biz(
            &admin,
            &format!("/admin/catalogue/{listing}/subscribe"),
            json!({"name": "Invoice entry (branch)"}),
        )
        .await;
    assert!(v["message"].as_str().unwrap().contains("already exists"), "{v}");

    // Unpublished: no longer found nor subscribed to; the subscriber keeps its process.
    let (st, v) = {
        let r = s
            .http
            .delete(format!("{}/admin/catalogue/{listing}", s.base))
            .header("X-Access-Token", &admin)
            .send()
            .await
            .unwrap();
        (r.status(), r.json::<Value>().await.unwrap())
    };
    assert_eq!(st, StatusCode::OK, "{v}");
    assert_eq!(get("/admin/catalogue".into(), alice.clone()).await["result"], json!([]));
    let v = s
        .biz(&admin, &format!("/admin/catalogue/{listing}/subscribe"), json!({}))
        .await;
    assert!(v["message"].as_str().unwrap().contains("not found"), "{v}");
    let v = s.biz(&admin, "/admin/catalogue/nope/subscribe", json!({})).await;
    assert!(v["message"].as_str().unwrap().contains("not found"), "{v}");
    let audit = s
        .engine
        .audit_events(rpa_core::model::Actor::System, 0, 10_000)
        .await
        .unwrap();
    for action in ["catalogue.publish", "catalogue.subscribe", "catalogue.unpublish"] {
        assert!(audit.iter().any(|e| e.action == action), "{action} audited");
    }
}

/// Licenses over the administration API, as an HTTP robot sees them:
/// SendLicense in the heartbeat answer when bound and when renewed, Error
/// when taken away, and no work while its license has expired (with the
/// reason in `/admin/robots`).
#[tokio::test]
async fn licenses_reach_http_robots() {
    let s = Server::start().await;
    let (admin, _) = s.login("admin", "admin-pw").await;
    let (alice, processes) = s.login("alice", "wonderland").await;
    let invoice = pid(&processes, "Invoice entry");
    let zone = s.engine.config().time_zone;
    let at = |ms: i64| Timestamp(1_700_000_000_000 + ms).format_local(zone);
    let h = [("X-Access-Token", admin.as_str())];
    let send = |method: reqwest::Method, path: &str, body: Option<Value>| {
        let mut req = s
            .http
            .request(method, format!("{}{path}", s.base))
            .header("X-Access-Token", admin.as_str());
        if let Some(b) = body {
            req = req.json(&b);
        }
        async move {
            let resp = req.send().await.unwrap();
            (resp.status(), resp.json::<Value>().await.unwrap())
        }
    };

    let (_, v) = s
        .post(
            "/admin/licenses",
            &h,
            json!({"name": "acme-2024", "content": "LIC-2024", "vendor": "acme", "expiresAt": at(60_000), "seats": 1}),
        )
        .await;
    assert_eq!(v["code"], 200, "{v}");
    assert_eq!(v["result"]["expiresAt"], at(60_000));
    let (_, v) = s
        .post("/admin/licenses", &h, json!({"name": "acme-2024", "content": "X"}))
        .await;
    assert_eq!(v["code"], 500, "a name is taken once: {v}");
    let (_, v) = s
        .post(
            "/admin/licenses",
            &h,
            json!({"name": "bad", "content": "X", "expiresAt": "tomorrow"}),
        )
        .await;
    assert!(v["message"].as_str().unwrap().contains("expiresAt"), "{v}");

    let c = s.register("r2").await;
    let (_, v) = s.robot("r2", &c, "/robots/connect/heartbeat", json!({})).await;
    assert_eq!(v["resultValue"]["Action"], "None");
    let (_, v) = s
        .post("/admin/licenses/acme-2024/bind", &h, json!({"robotId": "r2"}))
        .await;
    assert_eq!(v["result"]["bound"], json!(["r2"]), "{v}");
    let (_, v) = s.robot("r2", &c, "/robots/connect/heartbeat", json!({})).await;
    assert_eq!(
        v["resultValue"],
        json!({"Action": "SendLicense", "Body": {"licenseContent": "LIC-2024"}})
    );
    s.register("r3").await;
    let (_, v) = s
        .post("/admin/licenses/acme-2024/bind", &h, json!({"robotId": "r3"}))
        .await;
    assert!(v["message"].as_str().unwrap().contains("no free seat"), "{v}");

    // Expired: no work, and the reason is shown.
    s.clock.advance(60_000);
    let job = s
        .biz(
            &alice,
            "/rpa/api/startJob",
            json!({"processId": invoice, "params": {"invoice": 1}}),
        )
        .await;
    let job = job["result"]["jobId"].as_str().unwrap().to_owned();
    let (_, v) = s.robot("r2", &c, "/robots/connect/heartbeat", json!({})).await;
    assert_eq!(v["resultValue"]["Action"], "None", "no work after expiry: {v}");
    let (_, robots) = send(reqwest::Method::GET, "/admin/robots", None).await;
    let r2 = robots["result"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["robotId"] == "r2")
        .unwrap()
        .clone();
    assert_eq!(r2["license"], "acme-2024");
    assert!(
        r2["blocked"].as_str().unwrap().contains("license acme-2024 expired"),
        "{r2}"
    );

    // Renewed: the new content, then the waiting job.
    let (st, v) = send(
        reqwest::Method::PUT,
        "/admin/licenses/acme-2024",
        Some(json!({"content": "LIC-2025", "vendor": "acme", "expiresAt": at(3_600_000), "seats": 1})),
    )
    .await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(v["result"]["expired"], false, "{v}");
    let (_, v) = s.robot("r2", &c, "/robots/connect/heartbeat", json!({})).await;
    assert_eq!(v["resultValue"]["Action"], "SendLicense", "{v}");
    assert_eq!(v["resultValue"]["Body"]["licenseContent"], "LIC-2025");
    let (_, v) = s.robot("r2", &c, "/robots/connect/heartbeat", json!({})).await;
    assert_eq!(v["resultValue"]["Action"], "Execute", "{v}");
    assert_eq!(v["resultValue"]["Body"]["runInstanceId"], job.as_str());

    // Taken away: Error, and nothing bound any more.
    let (_, v) = s
        .post("/admin/licenses/acme-2024/unbind", &h, json!({"robotId": "r2"}))
        .await;
    assert_eq!(v["result"]["bound"], json!([]), "{v}");
    let (_, v) = s
        .robot("r2", &c, "/robots/connect/heartbeat", json!({"runInstanceId": job}))
        .await;
    assert_eq!(v["resultValue"]["Action"], "Error", "{v}");
    assert_eq!(v["resultValue"]["Body"]["errorCode"], 19999);
    assert!(
        v["resultValue"]["Body"]["message"]
            .as_str()
            .unwrap()
            .contains("revoked")
    );
    let (st, v) = send(reqwest::Method::DELETE, "/admin/licenses/acme-2024", None).await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(v["result"]["retired"], true, "{v}");
    let (_, v) = send(reqwest::Method::GET, "/admin/licenses", None).await;
    assert_eq!(v["result"][0]["name"], "acme-2024", "{v}");

    // Only administrators.
    let (_, v) = s
        .post(
            "/admin/licenses",
            &[("X-Access-Token", alice.as_str())],
            json!({"name": "x", "content": "y"}),
        )
        .await;
    assert!(v["message"].as_str().unwrap().contains("permission"), "{v}");
}

#[tokio::test]
async fn ai_calls_get_the_documented_status_for_bad_input() {
    let s = Server::start().await;
    let (token, processes) = s.login("alice", "wonderland").await;
    let (admin, _) = s.login("admin", "admin-pw").await;
    let c = s.register("r1").await;
    let job = s
        .biz(
            &token,
            "/rpa/api/startJob",
            json!({"processId": pid(&processes, "Invoice entry"), "params": {"invoice": 1}}),
        )
        .await;
    let run = job["result"]["jobId"].as_str().unwrap().to_owned();
    s.robot("r1", &c, "/robots/connect/heartbeat", json!({})).await;
    let (st, v) = s
        .post(
            "/admin/ai/capabilities",
            &[("X-Access-Token", &admin)],
            json!({"name": "ocr", "kind": "ocr", "backend": {"type": "tesseract", "languages": "eng"},
                   "processes": ["Invoice entry"]}),
        )
        .await;
    assert_eq!((st, v["code"].as_i64()), (StatusCode::OK, Some(200)), "{v}");
    let (_, v) = s
        .post(
            "/admin/ai/capabilities",
            &[("X-Access-Token", &token)],
            json!({"name": "x", "kind": "ocr", "backend": {"type": "tesseract", "languages": "eng"}}),
        )
        .await;
    assert_ne!(v["code"], 200, "alice may not register capabilities: {v}");

    let other_run = "0123456789abcdef0123456789abcdef";
    let me = [("robotId", "r1"), ("robotConnectId", c.as_str())];
    let with = |run| vec![me[0], me[1], ("runInstanceId", run)];
    let run = run.as_str();
    for (path, headers, body, status, hint) in [
        (
            "/v1/ai/ocr",
            vec![("runInstanceId", run)],
            "img",
            StatusCode::UNAUTHORIZED,
            "robotId header",
        ),
        (
            "/v1/ai/ocr",
            me.to_vec(),
            "img",
            StatusCode::BAD_REQUEST,
            "runInstanceId",
        ),
        ("/v1/ai/ocr", with(run), "", StatusCode::BAD_REQUEST, "empty"),
        ("/v1/ai/ocr", with(other_run), "img", StatusCode::NOT_FOUND, other_run),
        ("/v1/ai/speech", with(run), "img", StatusCode::NOT_FOUND, "speech"),
        // Admitted, but this server was given no AI services.
        (
            "/v1/ai/ocr",
            with(run),
            "img",
            StatusCode::SERVICE_UNAVAILABLE,
            "no AI services",
        ),
    ] {
        let (st, v) = s.post_raw(path, &headers, body.to_owned()).await;
        assert_eq!(st, status, "{path} {headers:?}: {v}");
        assert_eq!(v["successful"], false, "{v}");
        assert!(v["resultHint"].as_str().unwrap().contains(hint), "{hint}: {v}");
        assert_eq!(v["resultValue"], Value::Null);
    }
    let usage: Value = s
        .http
        .get(format!("{}/admin/ai/capabilities/ocr/usage", s.base))
        .header("X-Access-Token", &admin)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(usage["result"][0]["calls"], 1, "only the admitted call counts: {usage}");
}

/// Designers: registered with the vendor's proof, allocated to people one
/// each, released by their holder (or an administrator), reclaimed when
/// unused past the idle limit, Offline when silent; every step audited.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn designers_are_registered_allocated_released_and_reclaimed() {
    let s = Server::start().await;
    let register = |id: &'static str, secret: &'static str| {
        let s = &s;
        async move {
            let proof = supplier_proof(secret, id);
            s.post(
                "/design/connect/register",
                &[("designerId", id)],
                json!({"supplierCode": "acme", "supplierSecret": proof, "version": "7.1", "host": format!("rdp://{id}.pool")}),
            )
            .await
        }
    };
    let (st, bad) = register("d1", "wrong").await;
    assert_eq!(
        (st, &bad["successful"]),
        (StatusCode::UNAUTHORIZED, &json!(false)),
        "{bad}"
    );
    let (st, missing) = s
        .post(
            "/design/connect/register",
            &[("designerId", "d1")],
            json!({"supplierCode": "acme"}),
        )
        .await;
    assert_eq!(st, StatusCode::BAD_REQUEST, "{missing}");
    assert!(
        missing["resultHint"].as_str().unwrap().starts_with("10001"),
        "{missing}"
    );
    let (_, d1) = register("d1", "acme-secret").await;
    let (_, d2) = register("d2", "acme-secret").await;
    let c1 = d1["resultValue"]["designerConnectId"].as_str().unwrap().to_owned();
    let c2 = d2["resultValue"]["designerConnectId"].as_str().unwrap().to_owned();
    assert_eq!(d1["resultValue"]["state"], "Idle");
    let beat = |id: &'static str, connect: String, in_use: bool| {
        let s = &s;
        async move {
            s.post(
                "/design/connect/heartbeat",
                &[("designerId", id), ("designerConnectId", connect.as_str())],
                json!({"inUse": in_use}),
            )
            .await
        }
    };
    let (st, _) = beat("d1", c2.clone(), false).await;
    assert_eq!(st, StatusCode::UNAUTHORIZED, "another designer's connection");

    let (alice, _) = s.login("alice", "wonderland").await;
    let (bob, _) = s.login("bob", "builder").await;
    let (admin, _) = s.login("admin", "admin-pw").await;
    let mine = s.biz(&alice, "/admin/designers/allocate", json!({})).await;
    assert_eq!(
        (&mine["result"]["designerId"], &mine["result"]["holder"]),
        (&json!("d1"), &json!("alice")),
        "{mine}"
    );
    assert_eq!(mine["result"]["host"], "rdp://d1.pool");
    let again = s.biz(&alice, "/admin/designers/allocate", json!({})).await;
    assert_eq!(again["result"]["designerId"], "d1", "one per person");
    let bobs = s.biz(&bob, "/admin/designers/allocate", json!({})).await;
    assert_eq!(bobs["result"]["designerId"], "d2");
    let none = s.biz(&admin, "/admin/designers/allocate", json!({})).await;
    assert_eq!(
        (&none["code"], &none["success"]),
        (&json!(500), &json!(false)),
        "{none}"
    );
    assert!(
        none["message"].as_str().unwrap().contains("no designer is idle"),
        "{none}"
    );
    let (_, held) = beat("d1", c1.clone(), true).await;
    assert_eq!(held["resultValue"], json!({"state": "Allocated", "holder": "alice"}));

    let refused = s.biz(&alice, "/admin/designers/d2/release", json!({})).await;
    assert_eq!(refused["code"], 500, "alice does not hold d2: {refused}");
    let taken = s.biz(&admin, "/admin/designers/d2/release", json!({})).await;
    assert_eq!(
        (&taken["result"]["state"], &taken["result"]["holder"]),
        (&json!("Idle"), &Value::Null),
        "an administrator takes it back: {taken}"
    );

    // Alice leaves d1 unused: heartbeats keep coming, without inUse.
    for _ in 0..31 {
        s.clock.advance(60_000);
        beat("d1", c1.clone(), false).await;
        beat("d2", c2.clone(), false).await;
    }
    s.engine.tick().await.unwrap();
    // Sessions last 30 minutes too.
    let (bob, _) = s.login("bob", "builder").await;
    let list = s
        .http
        .get(format!("{}/admin/designers", s.base))
        .header("X-Access-Token", &bob)
        .send()
        .await
        .unwrap()
        .json::<Value>()
        .await
        .unwrap();
    assert_eq!(
        list["result"][0]["state"], "Idle",
        "reclaimed after 30 minutes unused: {list}"
    );
    // d2 falls silent: Offline.
    s.clock.advance(60_000);
    beat("d1", c1.clone(), false).await;
    s.clock.advance(60_000);
    s.engine.tick().await.unwrap();
    let list = s
        .http
        .get(format!("{}/admin/designers", s.base))
        .header("X-Access-Token", &bob)
        .send()
        .await
        .unwrap()
        .json::<Value>()
        .await
        .unwrap();
    let states: Vec<_> = list["result"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| (d["designerId"].as_str().unwrap(), d["state"].as_str().unwrap()))
        .collect();
    assert_eq!(states, [("d1", "Idle"), ("d2", "Offline")], "{list}");
    let audit = s.engine.store().audit(0, usize::MAX).await.unwrap();
    let actions: Vec<&str> = audit
        .iter()
        .filter(|e| e.action.starts_with("designer."))
        .map(|e| &*e.action)
        .collect();
    assert_eq!(
        actions,
        [
            "designer.register.failed",
            "designer.register",
            "designer.register",
            "designer.allocate",
            "designer.allocate",
            "designer.release",
            "designer.reclaim",
            "designer.offline"
        ]
    );
}
