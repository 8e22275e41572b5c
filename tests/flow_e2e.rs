//! The workflow API (seed 004) as a loonflow caller uses it: the example
//! server with its demo configuration, the app `ops-portal` signing every
//! request with `md5(timestamp + token)`, and a real robot that runs the
//! robot state of `vpn申请`.

use std::net::TcpListener;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

mod support;

use support::Proc;

const TOKEN: &str = "ops-portal-demo-token";

struct Client {
    http: reqwest::Client,
    base: String,
    app: String,
    token: String,
    /// Seconds added to the clock when signing (a stale caller).
    skew: i64,
}

impl Client {
    fn headers(&self, user: &str) -> Vec<(&'static str, String)> {
        let ts = (chrono::Utc::now().timestamp() + self.skew).to_string();
        let sig = rpa_core::auth::md5_signature(&ts, &self.token);
        vec![
            ("signature", sig),
            ("timestamp", ts),
            ("appname", self.app.clone()),
            ("username", user.to_owned()),
        ]
    }

    async fn call(&self, method: reqwest::Method, user: &str, path: &str, body: Option<Value>) -> Value {
        let mut r = self.http.request(method, format!("{}/api/v1.0{path}", self.base));
        for (k, v) in self.headers(user) {
            r = r.header(k, v);
        }
        if let Some(b) = body {
            r = r.json(&b);
        }
        let resp = r.send().await.unwrap();
        assert_eq!(resp.status(), 200, "{path}: every answer of this API is HTTP 200");
        resp.json().await.unwrap()
    }

    async fn get(&self, user: &str, path: &str) -> Value {
        self.call(reqwest::Method::GET, user, path, None).await
    }

    async fn post(&self, user: &str, path: &str, body: Value) -> Value {
        self.call(reqwest::Method::POST, user, path, Some(body)).await
    }

    async fn patch(&self, user: &str, path: &str, body: Value) -> Value {
        self.call(reqwest::Method::PATCH, user, path, Some(body)).await
    }
}

/// The example server on `port` over `db`, its files, key and log in
/// `dir`; with `dir/config.json` when `config`, else the demo configuration.
fn server(dir: &std::path::Path, port: u16, db: &str, config: bool) -> Proc {
    let mut cmd = Command::new(support::server_binary());
    cmd.args(["--listen", &format!("127.0.0.1:{port}"), "--db", db]);
    if config {
        cmd.arg("--config").arg(dir.join("config.json"));
    }
    Proc(
        cmd.arg("--files")
            .arg(dir.join("files"))
            .arg("--secret-key-file")
            .arg(dir.join("rpa.key"))
            .stdout(Stdio::from(std::fs::File::create(dir.join("server.log")).unwrap()))
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    )
}

fn ok(v: &Value) -> &Value {
    assert_eq!(v["code"], 0, "expected success: {v}");
    &v["data"]
}

fn refused(v: &Value, words: &str) {
    assert_eq!(v["code"], -1, "expected a refusal: {v}");
    assert!(
        v["msg"].as_str().unwrap().contains(words),
        "msg should say {words:?}: {v}"
    );
}

fn transition(offers: &Value, name: &str) -> i64 {
    offers["value"]
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["transition_name"] == name)
        .unwrap_or_else(|| panic!("no transition {name} in {offers}"))["transition_id"]
        .as_i64()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_vpn_request_goes_through_people_and_a_robot() {
    let dir = std::env::temp_dir().join(format!("rpa-flow-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    vpn_request(&dir, dir.join("rpa.db").to_str().unwrap()).await;
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_vpn_request_goes_through_people_and_a_robot_on_postgres() {
    let Some(url) = support::postgres_url() else {
        return;
    };
    let db = support::fresh_postgres(&url, "flow").await;
    let dir = std::env::temp_dir().join(format!("rpa-flow-pg-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    vpn_request(&dir, &db).await;
    let _ = std::fs::remove_dir_all(&dir);
    support::drop_postgres(&url, "flow").await;
}

async fn vpn_request(dir: &std::path::Path, db: &str) {
    let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let base = format!("http://127.0.0.1:{port}");
    let _server = server(dir, port, db, false);
    let c = Client {
        http: reqwest::Client::new(),
        base: base.clone(),
        app: "ops-portal".into(),
        token: TOKEN.into(),
        skew: 0,
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    let list = loop {
        if let Ok(r) = c.http.get(format!("{base}/api/v1.0/workflows")).send().await
            && r.status() == 200
        {
            break c.get("lilei", "/workflows?name=vpn").await;
        }
        assert!(Instant::now() < deadline, "the server did not start");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let workflows = ok(&list);
    assert_eq!(workflows["total"], 1, "{workflows}");
    let wf = workflows["value"][0]["id"].as_i64().unwrap();
    assert_eq!(workflows["value"][0]["name"], "vpn申请");

    // Signatures: a wrong one, a stale one, an unknown app, no appname.
    let forged = Client {
        token: "not-the-token".into(),
        ..Client {
            http: c.http.clone(),
            base: base.clone(),
            app: c.app.clone(),
            token: String::new(),
            skew: 0,
        }
    };
    refused(&forged.get("lilei", "/workflows").await, "签名校验失败");
    let stale = Client {
        http: c.http.clone(),
        base: base.clone(),
        app: c.app.clone(),
        token: TOKEN.into(),
        skew: -121,
    };
    refused(&stale.get("lilei", "/workflows").await, "120");
    let stranger = Client {
        http: c.http.clone(),
        base: base.clone(),
        app: "stranger".into(),
        token: TOKEN.into(),
        skew: 0,
    };
    refused(&stranger.get("lilei", "/workflows").await, "appname");
    let bare: Value = c
        .http
        .get(format!("{base}/api/v1.0/tickets"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    refused(&bare, "appname");
    refused(&c.get("lilei", "/no/such/path").await, "has no endpoint");

    // The start state: its way out and its fields.
    let init = c.get("lilei", &format!("/workflows/{wf}/init_state")).await;
    let init = ok(&init);
    assert_eq!(init["name"], "发起人-新建中");
    assert_eq!(init["type_id"], 1);
    let submit = init["transition"][0]["transition_id"].as_i64().unwrap();
    assert_eq!(init["transition"][0]["transition_name"], "提交");
    let required: Vec<&str> = init["field_list"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["field_attribute"] == 2)
        .map(|f| f["field_key"].as_str().unwrap())
        .collect();
    assert_eq!(required, ["title", "vpn_days"]);
    let far = c.get("lilei", "/tickets?page=18446744073709551615&per_page=1000").await;
    assert_eq!(ok(&far)["value"], json!([]), "a page past the end is empty");
    refused(&c.get("lilei", "/tickets?page=0").await, "page");
    refused(&c.get("lilei", "/tickets?category=mine").await, "category");
    refused(&c.get("lilei", "/tickets?is_end=maybe").await, "is_end");
    refused(&c.get("lilei", "/tickets?create_start=yesterday").await, "create_start");
    let far = c
        .get("lilei", &format!("/workflows/{wf}/states?page=18446744073709551615"))
        .await;
    assert_eq!(ok(&far)["value"], json!([]));
    let states = c.get("lilei", &format!("/workflows/{wf}/states?per_page=20")).await;
    assert_eq!(ok(&states)["total"], 6);
    let state_id = ok(&states)["value"][1]["id"].as_i64().unwrap();
    let state = c.get("lilei", &format!("/workflows/states/{state_id}")).await;
    assert_eq!(ok(&state)["name"], "发起人tl-审批中");

    // Bad input changes nothing.
    let missing = c
        .post(
            "lilei",
            "/tickets",
            json!({"workflow_id": wf, "transition_id": submit, "title": "vpn"}),
        )
        .await;
    refused(&missing, "vpn_days");
    let wrong_type = c
        .post(
            "lilei",
            "/tickets",
            json!({"workflow_id": wf, "transition_id": submit, "title": "vpn", "vpn_days": "three"}),
        )
        .await;
    refused(&wrong_type, "integer");
    refused(
        &c.post(
            "lilei",
            "/tickets",
            json!({"workflow_id": 9999, "transition_id": submit}),
        )
        .await,
        "9999",
    );
    refused(
        &c.post(
            "lilei",
            "/tickets",
            json!({"workflow_id": wf, "transition_id": 9999, "title": "t", "vpn_days": 1}),
        )
        .await,
        "9999",
    );
    let none = c.get("lilei", "/tickets?category=owner").await;
    assert_eq!(ok(&none)["total"], 0, "nothing was half-written: {none}");

    // lilei asks; zhangsan (the department's leader) rejects, then approves.
    let created = c
        .post(
            "lilei",
            "/tickets",
            json!({"workflow_id": wf, "transition_id": submit, "title": "vpn for the audit", "vpn_days": "3",
                   "reason": "audit", "suggestion": "请尽快处理"}),
        )
        .await;
    let ticket = ok(&created)["ticket_id"].as_i64().unwrap();
    let t = format!("/tickets/{ticket}");
    refused(&c.get("jack", &t).await, "not related");
    let detail = c.get("lilei", &t).await;
    let value = &ok(&detail)["value"];
    assert_eq!(value["participant"], "zhangsan");
    assert_eq!(value["participant_type_id"], 1);
    assert!(value["sn"].as_str().unwrap().starts_with("loonflow_"), "{value}");
    assert_eq!(value["title"], "vpn for the audit");
    let offers = c.get("zhangsan", &format!("{t}/transitions")).await;
    let (agree, reject) = (transition(ok(&offers), "同意"), transition(ok(&offers), "退回"));
    assert_eq!(
        ok(&c.get("jack", &format!("{t}/transitions")).await)["value"],
        json!([])
    );
    refused(
        &c.patch("jack", &t, json!({"transition_id": agree})).await,
        "not a current participant",
    );
    ok(&c
        .patch(
            "zhangsan",
            &t,
            json!({"transition_id": reject, "suggestion": "天数写错"}),
        )
        .await);
    let back = c.get("lilei", &t).await;
    assert_eq!(ok(&back)["value"]["state_id"], init["id"]);
    assert_eq!(ok(&back)["value"]["is_rejected"], true);
    ok(&c
        .patch(
            "lilei",
            &t,
            json!({"transition_id": submit, "title": "vpn for the audit", "vpn_days": 5}),
        )
        .await);
    ok(&c
        .patch("zhangsan", &t, json!({"transition_id": agree, "suggestion": "同意"}))
        .await);

    // The ops role: two people, accept first. wangwu cannot handle after guiji accepted.
    let ops = c.get("guiji", &format!("{t}/transitions")).await;
    assert_eq!(ok(&ops)["value"][0]["is_accept"], true, "{ops}");
    let ops_offers = c.get("wangwu", &format!("{t}/transitions")).await;
    assert_eq!(ok(&ops_offers)["value"][0]["transition_name"], "接单");
    let info = c.get("lilei", &format!("{t}/participant_info")).await;
    assert_eq!(ok(&info)["participant_username_list"], json!(["guiji", "wangwu"]));
    let duty = c.get("wangwu", "/tickets?category=duty").await;
    assert_eq!(ok(&duty)["total"], 1, "{duty}");
    ok(&c.post("guiji", &format!("{t}/accept"), json!({})).await);
    refused(
        &c.post("wangwu", &format!("{t}/accept"), json!({})).await,
        "not a current participant",
    );
    let done_offers = c.get("guiji", &format!("{t}/transitions")).await;
    let handled = transition(ok(&done_offers), "处理完成");
    ok(&c
        .patch("guiji", &t, json!({"transition_id": handled, "suggestion": "已处理"}))
        .await);

    // The robot state: a real robot runs vpn-grant; its output lands in vpn_account.
    let _robot = support::start_robot(&base, dir, "robot-1", "acme-vendor-secret");
    let deadline = Instant::now() + Duration::from_secs(60);
    let confirmed = loop {
        let d = c.get("lilei", &t).await;
        let v = ok(&d)["value"].clone();
        if v["participant"] == "lilei" && v["participant_type_id"] == 1 {
            break v;
        }
        assert!(Instant::now() < deadline, "the robot state did not finish: {v}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let account = confirmed["field_list"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["field_key"] == "vpn_account")
        .unwrap()["field_value"]
        .clone();
    assert!(account.as_str().unwrap().starts_with("vpn-"), "{confirmed}");
    let confirm = c.get("lilei", &format!("{t}/transitions")).await;
    let finish = transition(ok(&confirm), "确认完成");
    ok(&c
        .patch(
            "lilei",
            &t,
            json!({"transition_id": finish, "suggestion": "已经生效,感谢"}),
        )
        .await);
    let ended = c.get("lilei", &t).await;
    assert_eq!(ok(&ended)["value"]["is_end"], true);
    refused(&c.patch("lilei", &t, json!({"transition_id": finish})).await, "ended");

    // The record: flow logs newest first, the robot's among them; steps per state.
    let logs = c.get("lilei", &format!("{t}/flowlogs?per_page=20")).await;
    let logs = ok(&logs);
    let names: Vec<&str> = logs["value"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["transition"]["transition_name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "确认完成",
            "脚本执行完成",
            "处理完成",
            "接单",
            "同意",
            "提交",
            "退回",
            "提交"
        ],
        "{logs}"
    );
    let robot_log = &logs["value"][1];
    assert_eq!(robot_log["participant"], "vpn-grant");
    assert_eq!(robot_log["participant_type_id"], 6);
    let steps = c.get("lilei", &format!("{t}/flowsteps")).await;
    let steps = ok(&steps)["value"].as_array().unwrap().clone();
    assert_eq!(steps.len(), 6);
    assert_eq!(
        steps[0]["state_flow_log_list"].as_array().unwrap().len(),
        2,
        "two submits"
    );
    let states = c.get("lilei", &format!("/tickets/states?ticket_ids={ticket}")).await;
    assert_eq!(ok(&states)[ticket.to_string()]["state_name"], "结束");
    let mine = c.get("lilei", "/tickets?category=owner&is_end=1").await;
    assert_eq!(ok(&mine)["total"], 1);
    assert_eq!(ok(&mine)["value"][0]["state"]["state_name"], "结束");
}

/// What the hook receiver saw: each post's headers and body.
#[derive(Default)]
struct Posts {
    seen: std::sync::Mutex<Vec<(axum::http::HeaderMap, Value)>>,
    /// Posts to refuse (code -1) before accepting.
    refuse: std::sync::atomic::AtomicUsize,
}

async fn receive(
    axum::extract::State(p): axum::extract::State<std::sync::Arc<Posts>>,
    headers: axum::http::HeaderMap,
    axum::Json(body): axum::Json<Value>,
) -> axum::Json<Value> {
    p.seen.lock().unwrap().push((headers, body));
    let refuse = p
        .refuse
        .fetch_update(
            std::sync::atomic::Ordering::SeqCst,
            std::sync::atomic::Ordering::SeqCst,
            |n| n.checked_sub(1),
        )
        .is_ok();
    axum::Json(if refuse {
        json!({"code": -1, "msg": "busy"})
    } else {
        json!({"code": 0, "msg": ""})
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hooks_are_posted_signed_and_a_waiting_one_moves_on_at_its_callback() {
    let dir = std::env::temp_dir().join(format!("rpa-flow-hooks-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let posts = std::sync::Arc::new(Posts::default());
    posts.refuse.store(1, std::sync::atomic::Ordering::SeqCst);
    let receiver = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let hook_url = format!("http://{}/hook", receiver.local_addr().unwrap());
    let app = axum::Router::new()
        .route("/hook", axum::routing::post(receive))
        .with_state(posts.clone());
    tokio::spawn(async move { axum::serve(receiver, app).await.unwrap() });
    let config = json!({
        "admin": {"name": "admin", "password": "admin-password"},
        "flow": {
            "apps": [{"app_name": "portal", "token": "portal-token", "workflows": ["deploy"]}],
            "directory": {"users": [{"username": "ann"}]},
            "workflows": [{
                "name": "deploy",
                "fields": [{"field_key": "version", "field_name": "version", "field_type_id": 5},
                           {"field_key": "deployed_to", "field_name": "deployed to", "field_type_id": 5}],
                "states": [
                    {"name": "new", "type_id": 1, "participant_type_id": 5, "participant": "creator",
                     "state_field_str": {"title": 2, "version": 2}},
                    {"name": "notify", "participant_type_id": 10,
                     "participant": {"hook_url": hook_url, "hook_token": "hook-secret", "wait": true}},
                    {"name": "deploy", "participant_type_id": 10,
                     "participant": {"hook_url": hook_url, "hook_token": "hook-secret", "wait": false},
                     "state_field_str": {"deployed_to": 3}},
                    {"name": "check", "participant_type_id": 5, "participant": "creator",
                     "state_field_str": {"deployed_to": 1}},
                    {"name": "done", "type_id": 2}
                ],
                "transitions": [
                    {"name": "submit", "source_state": "new", "destination_state": "notify"},
                    {"name": "notified", "source_state": "notify", "destination_state": "deploy"},
                    {"name": "deployed", "source_state": "deploy", "destination_state": "check"},
                    {"name": "ok", "source_state": "check", "destination_state": "done"}
                ]
            }]
        }
    });
    std::fs::write(dir.join("config.json"), config.to_string()).unwrap();
    let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let base = format!("http://127.0.0.1:{port}");
    let _server = server(&dir, port, "memory", true);
    let c = Client {
        http: reqwest::Client::new(),
        base: base.clone(),
        app: "portal".into(),
        token: "portal-token".into(),
        skew: 0,
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    let wf = loop {
        if let Ok(r) = c.http.get(format!("{base}/api/v1.0/workflows")).send().await
            && r.status() == 200
        {
            break ok(&c.get("ann", "/workflows").await)["value"][0]["id"]
                .as_i64()
                .unwrap();
        }
        assert!(Instant::now() < deadline, "the server did not start");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let init = c.get("ann", &format!("/workflows/{wf}/init_state")).await;
    let submit = ok(&init)["transition"][0]["transition_id"].as_i64().unwrap();
    let created = c
        .post(
            "ann",
            "/tickets",
            json!({"workflow_id": wf, "transition_id": submit, "title": "release", "version": "2.1"}),
        )
        .await;
    let ticket = ok(&created)["ticket_id"].as_i64().unwrap();
    let t = format!("/tickets/{ticket}");
    refused(
        &c.post("ann", &format!("{t}/hook_call_back"), json!({"result": true}))
            .await,
        "not waiting on a hook",
    );

    // The first post is refused (code -1): the ticket says so, and the hook is posted again.
    // The second is taken; with wait: true the ticket moves on, to the hook that waits.
    let deadline = Instant::now() + Duration::from_secs(30);
    let waiting = loop {
        let v = ok(&c.get("ann", &t).await)["value"].clone();
        if posts.seen.lock().unwrap().len() >= 3 && v["script_run_last_result"] == true {
            break v;
        }
        assert!(Instant::now() < deadline, "the hooks were not posted: {v}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(waiting["participant_type_id"], 10);
    assert_eq!(waiting["participant"], "***", "a hook's token is never shown");
    let seen = posts.seen.lock().unwrap().clone();
    for (headers, body) in &seen {
        let ts = headers["timestamp"].to_str().unwrap();
        let expected = rpa_core::auth::md5_signature(ts, "hook-secret");
        assert_eq!(
            headers["signature"].to_str().unwrap(),
            expected,
            "signed with md5(timestamp + hook_token)"
        );
        assert!((chrono::Utc::now().timestamp() - ts.parse::<i64>().unwrap()).abs() < 60);
        assert_eq!(body["id"], ticket);
        assert_eq!(body["version"], "2.1");
        assert_eq!(body["title"], "release");
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(
        posts.seen.lock().unwrap().len(),
        3,
        "a hook that waits for its callback is posted once"
    );

    // The callback: a failure first, then the result with a field.
    ok(&c
        .post(
            "ann",
            &format!("{t}/hook_call_back"),
            json!({"result": false, "msg": "disk full"}),
        )
        .await);
    let failed = c.get("ann", &t).await;
    assert_eq!(ok(&failed)["value"]["script_run_last_result"], false);
    refused(
        &c.post("ann", &format!("{t}/hook_call_back"), json!({"result": "yes"}))
            .await,
        "boolean",
    );
    ok(&c
        .post(
            "ann",
            &format!("{t}/hook_call_back"),
            json!({"result": true, "msg": "deployed", "field_value": {"deployed_to": "prod-1"}}),
        )
        .await);
    let checked = ok(&c.get("ann", &t).await)["value"].clone();
    assert_eq!(checked["participant"], "ann", "{checked}");
    let deployed = checked["field_list"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["field_key"] == "deployed_to")
        .unwrap()["field_value"]
        .clone();
    assert_eq!(deployed, "prod-1");
    let _ = std::fs::remove_dir_all(&dir);
}

/// Now plus `secs`, as seed 000 writes times (the server's zone, Asia/Shanghai: UTC+8).
fn shanghai(secs: i64) -> String {
    (chrono::Utc::now() + chrono::Duration::seconds(secs) + chrono::Duration::hours(8))
        .format("%Y-%m-%d %H:%M:%S")
        .to_string()
}

/// A package that pauses for a person at step 1, then, resumed, reports
/// what the person decided.
const PAUSING_PACKAGE: &str = r#"echo "::step 0 read the payment"
if [ -z "$RPA_ARG_DECISION" ]; then
  echo "::pause 1 check the amount"
  sleep 60
fi
echo "::step 2 enter the payment"
echo "::output {\"decision\": \"$RPA_ARG_DECISION\", \"approved\": \"$RPA_ARG_APPROVED\", \"note\": \"$RPA_ARG_NOTE\"}"
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_robot_pauses_for_a_persons_decision_and_resumes_with_it() {
    let dir = std::env::temp_dir().join(format!("rpa-flow-pause-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let config = json!({
        "admin": {"name": "admin", "password": "admin-password"},
        "processes": [{"name": "pay", "type": "Unattended", "maxRunNum": 1, "maxDayNum": 0,
                       "pauseWorkflow": "payment check"}],
        "users": [{"name": "alice", "password": "alice-password", "processes": ["pay"]}],
        "vendors": [{"supplierCode": "acme", "secret": "acme-vendor-secret"}],
        "robots": [{"robotId": "robot-1"}],
        "flow": {
            "apps": [{"app_name": "portal", "token": "portal-token", "workflows": ["payment check"]}],
            "directory": {"users": [{"username": "checker"}]},
            "workflows": [{
                "name": "payment check",
                "fields": [{"field_key": "note", "field_name": "note", "field_type_id": 5}],
                "states": [
                    {"name": "paused", "type_id": 1},
                    {"name": "decide", "participant_type_id": 1, "participant": "checker", "state_field_str": {"note": 3}},
                    {"name": "done", "type_id": 2}
                ],
                "transitions": [
                    {"name": "ask", "source_state": "paused", "destination_state": "decide"},
                    {"name": "approve", "source_state": "decide", "destination_state": "done"},
                    {"name": "refuse", "source_state": "decide", "destination_state": "done", "attribute_type_id": 2}
                ]
            }]
        }
    });
    std::fs::write(dir.join("config.json"), config.to_string()).unwrap();
    let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let base = format!("http://127.0.0.1:{port}");
    let _server = server(&dir, port, dir.join("rpa.db").to_str().unwrap(), true);
    let http = reqwest::Client::new();
    let (admin, _) = support::login(&http, &base, "admin", "admin-password").await;
    let (alice, process) = support::login(&http, &base, "alice", "alice-password").await;
    support::upload_package(&http, &base, &admin, &process, PAUSING_PACKAGE).await;
    let _robot = support::start_robot(&base, &dir, "robot-1", "acme-vendor-secret");
    let started = support::post(
        &http,
        format!("{base}/rpa/api/startJob"),
        &[("X-Access-Token", &alice)],
        json!({"processId": process, "params": {}}),
    )
    .await
    .unwrap()
    .1;
    let job = started["result"]["jobId"].as_str().unwrap().to_owned();

    // The pause opens a ticket for the checker; the job shows the pause step.
    let c = Client {
        http: http.clone(),
        base: base.clone(),
        app: "portal".into(),
        token: "portal-token".into(),
        skew: 0,
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    let ticket = loop {
        let duty = c.get("checker", "/tickets?category=duty").await;
        if ok(&duty)["total"] == 1 {
            break ok(&duty)["value"][0]["id"].as_i64().unwrap();
        }
        assert!(Instant::now() < deadline, "no pause ticket: {duty}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let status = |job: String| {
        let (http, base, alice) = (http.clone(), base.clone(), alice.clone());
        async move {
            support::post(
                &http,
                format!("{base}/rpa/api/jobStatus"),
                &[("X-Access-Token", &alice)],
                json!({"jobId": job}),
            )
            .await
            .unwrap()
            .1
        }
    };
    let paused = status(job.clone()).await;
    let steps = paused["result"].as_array().unwrap();
    assert_eq!(steps.last().unwrap()["step"], 1, "{paused}");
    assert_eq!(steps.last().unwrap()["stopTag"], 1, "a pause step: {paused}");

    // The checker approves with a note: the run resumes and finishes with the decision.
    let offers = c.get("checker", &format!("/tickets/{ticket}/transitions")).await;
    let approve = transition(ok(&offers), "approve");
    ok(&c
        .patch(
            "checker",
            &format!("/tickets/{ticket}"),
            json!({"transition_id": approve, "note": "fine"}),
        )
        .await);
    let deadline = Instant::now() + Duration::from_secs(60);
    let record = loop {
        let (_, v) = support::post(
            &http,
            format!("{base}/rpa/api/queryProcessJob"),
            &[("X-Access-Token", &alice)],
            json!({"processId": process, "startTime": shanghai(-3600), "endTime": shanghai(3600)}),
        )
        .await
        .unwrap();
        let rec = v["result"]["record"]
            .as_array()
            .and_then(|r| r.iter().find(|j| j["jobId"] == job.as_str()).cloned());
        if let Some(r) = rec.filter(|r| r["state"] == "Successful") {
            break r;
        }
        assert!(Instant::now() < deadline, "the job did not resume and finish: {v}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(record["outputValues"]["decision"], "approve", "{record}");
    assert_eq!(record["outputValues"]["approved"], "true");
    assert_eq!(record["outputValues"]["note"], "fine");
    let runs = std::fs::read_to_string(dir.join("robot-1.log")).unwrap_or_default();
    assert!(
        runs.contains("paused for a person"),
        "the robot paused, it did not fail"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deliver_add_node_fields_comments_state_and_close_over_http() {
    let dir = std::env::temp_dir().join(format!("rpa-flow-ops-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let base = format!("http://127.0.0.1:{port}");
    let _server = server(&dir, port, "memory", false);
    let c = Client {
        http: reqwest::Client::new(),
        base: base.clone(),
        app: "ops-portal".into(),
        token: TOKEN.into(),
        skew: 0,
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    let wf = loop {
        if let Ok(r) = c.http.get(format!("{base}/api/v1.0/workflows")).send().await
            && r.status() == 200
        {
            break ok(&c.get("lilei", "/workflows?name=vpn").await)["value"][0]["id"]
                .as_i64()
                .unwrap();
        }
        assert!(Instant::now() < deadline, "the server did not start");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let init = c.get("lilei", &format!("/workflows/{wf}/init_state")).await;
    let (start, submit) = (
        ok(&init)["id"].as_i64().unwrap(),
        ok(&init)["transition"][0]["transition_id"].as_i64().unwrap(),
    );
    let created = c
        .post(
            "lilei",
            "/tickets",
            json!({"workflow_id": wf, "transition_id": submit, "title": "vpn", "vpn_days": 2}),
        )
        .await;
    let t = format!("/tickets/{}", ok(&created)["ticket_id"]);
    let participant = |v: Value| ok(&v)["value"]["participant"].clone();

    // Deliver: zhangsan hands it to jack.
    refused(
        &c.post("zhangsan", &format!("{t}/deliver"), json!({})).await,
        "target_username",
    );
    refused(
        &c.post("jack", &format!("{t}/deliver"), json!({"target_username": "wangwu"}))
            .await,
        "not a current participant",
    );
    assert_eq!(
        ok(&c
            .post(
                "zhangsan",
                &format!("{t}/deliver"),
                json!({"target_username": "jack", "suggestion": "yours"})
            )
            .await),
        &json!(true)
    );
    assert_eq!(participant(c.get("lilei", &t).await), "jack");

    // Add node: jack asks wangwu first, who can only finish the added node.
    ok(&c
        .post(
            "jack",
            &format!("{t}/add_node"),
            json!({"target_username": "wangwu", "suggestion": "please check"}),
        )
        .await);
    let offers = c.get("wangwu", &format!("{t}/transitions")).await;
    assert_eq!(
        ok(&offers)["value"],
        json!([{"transition_id": 0, "transition_name": "完成", "field_require_check": false,
        "is_accept": false, "in_add_node": true, "enable_alert": false, "alert_enable": false, "alert_text": "", "attribute_type_id": 3}])
    );
    let detail = c.get("wangwu", &t).await;
    assert_eq!(ok(&detail)["value"]["in_add_node"], true);
    assert_eq!(ok(&detail)["value"]["add_node_man"], "jack");
    ok(&c
        .post("wangwu", &format!("{t}/add_node_end"), json!({"suggestion": "checked"}))
        .await);
    assert_eq!(participant(c.get("lilei", &t).await), "jack");

    // Fields, comments, a retry that has nothing to retry.
    ok(&c
        .patch("jack", &format!("{t}/fields"), json!({"reason": "for the audit"}))
        .await);
    refused(
        &c.patch("jack", &format!("{t}/fields"), json!({"vpn_days": "many"}))
            .await,
        "integer",
    );
    refused(
        &c.patch("lisi", &format!("{t}/fields"), json!({"reason": "x"})).await,
        "neither",
    );
    refused(
        &c.post("lilei", &format!("{t}/comments"), json!({})).await,
        "suggestion",
    );
    ok(&c
        .post("lilei", &format!("{t}/comments"), json!({"suggestion": "any news?"}))
        .await);
    refused(
        &c.post("lilei", &format!("{t}/retry_script"), json!({})).await,
        "neither a robot nor a hook",
    );

    // An administrator puts it back to the start; its creator closes it.
    let put = |user: &'static str, body: Value| {
        let c = &c;
        let t = t.clone();
        async move {
            c.call(reqwest::Method::PUT, user, &format!("{t}/state"), Some(body))
                .await
        }
    };
    refused(&put("jack", json!({"state_id": start})).await, "administrator");
    refused(&put("admin", json!({"state_id": 99999})).await, "99999");
    ok(&put("admin", json!({"state_id": start})).await);
    assert_eq!(participant(c.get("lilei", &t).await), "lilei");
    refused(
        &c.post("jack", &format!("{t}/close"), json!({"suggestion": "no"})).await,
        "creator or an administrator",
    );
    ok(&c
        .post("lilei", &format!("{t}/close"), json!({"suggestion": "not needed"}))
        .await);
    let closed = c.get("lilei", &t).await;
    assert_eq!(ok(&closed)["value"]["is_end"], true);
    assert_eq!(ok(&closed)["value"]["participant"], "");

    let logs = c.get("lilei", &format!("{t}/flowlogs?per_page=50")).await;
    let kinds: Vec<i64> = ok(&logs)["value"]
        .as_array()
        .unwrap()
        .iter()
        .rev()
        .map(|l| l["intervene_type_id"].as_i64().unwrap())
        .collect();
    assert_eq!(kinds, [0, 1, 2, 3, 7, 6, 5], "{logs}");
    let relation = c.get("wangwu", "/tickets?category=relation").await;
    assert_eq!(ok(&relation)["total"], 1);
    let wrong_method = c.call(reqwest::Method::DELETE, "lilei", "/tickets", None).await;
    refused(&wrong_method, "does not take DELETE");

    // Clients of loonflow before 0.3: a trailing slash, `username` in the
    // query or in the body (as JSON sent without a content type).
    let old_style = |method: reqwest::Method, path: String, body: Option<String>| {
        let mut r = c.http.request(method, format!("{base}/api/v1.0{path}"));
        for (k, v) in c.headers("") {
            if k != "username" {
                r = r.header(k, v);
            }
        }
        if let Some(b) = body {
            r = r.body(b);
        }
        async move { r.send().await.unwrap().json::<Value>().await.unwrap() }
    };
    let by_query = old_style(reqwest::Method::GET, format!("{t}/?username=lilei"), None).await;
    assert_eq!(ok(&by_query)["value"]["creator"], "lilei");
    let by_body = old_style(
        reqwest::Method::POST,
        format!("{t}/comments/"),
        Some(json!({"username": "lilei", "suggestion": "from an old client"}).to_string()),
    )
    .await;
    ok(&by_body);
    refused(
        &old_style(reqwest::Method::GET, format!("{t}/"), None).await,
        "username",
    );
    let _ = std::fs::remove_dir_all(&dir);
}
