//! The UiPath-compatible surface as seed 002's walk-through uses it, over a
//! real socket with a real robot: OAuth tokens (refresh token and client
//! credentials), folders, robots and sessions, releases, StartJobs with
//! InputArguments, GetByKey until the job ends, job lists with $filter,
//! StopJobs, queues and AddQueueItem, and UiPath's error answers.

use std::net::TcpListener;
use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

mod support;

use support::Proc;

const CONFIG: &str = r#"{
  "admin": { "name": "admin", "password": "admin-pw" },
  "processes": [
    { "name": "Invoice", "type": "Unattended", "maxRunNum": 0,
      "arguments": [ { "name": "invoice", "type": "int", "required": true } ] },
    { "name": "Claims", "type": "Queue" },
    { "name": "Batch", "type": "Queue", "maxRetries": 0, "queueTrigger": { "minItems": 1000, "maxConcurrent": 1 } },
    { "name": "Payroll", "type": "Unattended", "folder": "Shared" }
  ],
  "users": [ { "name": "ops", "password": "pw", "processes": ["Invoice", "Claims", "Batch"] } ],
  "vendors": [ { "supplierCode": "acme", "secret": "acme-secret" } ],
  "uipath": { "clients": [
    { "clientId": "ops-client", "clientSecret": "ops-secret", "refreshToken": "ops-user-key", "user": "ops" },
    { "clientId": "admin-client", "clientSecret": "admin-secret", "user": "admin" } ] }
}"#;

struct Api {
    http: reqwest::Client,
    odata: String,
    token: String,
}

impl Api {
    async fn send(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> (u16, Value) {
        let mut r = self
            .http
            .request(method, format!("{}/{path}", self.odata))
            .header("Authorization", format!("Bearer {}", self.token))
            .header("X-UIPATH-FolderPath", "Default")
            .header("X-UIPATH-TenantName", "DefaultTenant");
        if let Some(b) = body {
            r = r.json(&b);
        }
        let res = r.send().await.unwrap();
        let status = res.status().as_u16();
        let text = res.text().await.unwrap();
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }
    async fn get(&self, path: &str) -> (u16, Value) {
        self.send(reqwest::Method::GET, path, None).await
    }
    async fn post(&self, path: &str, body: Value) -> (u16, Value) {
        self.send(reqwest::Method::POST, path, Some(body)).await
    }
}

async fn wait_state(api: &Api, key: &str, want: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (_, j) = api
            .get(&format!(
                "Jobs/UiPath.Server.Configuration.OData.GetByKey(identifier={key})"
            ))
            .await;
        if j["State"] == want {
            return j;
        }
        assert!(Instant::now() < deadline, "job {key} never {want}: {j}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn scenario(dir: &Path, db: &str) {
    let _ = std::fs::remove_dir_all(dir);
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(dir.join("config.json"), CONFIG).unwrap();
    let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let _server = Proc(support::start_server(dir, db, port, &[]));
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
        "echo \"checking invoice $RPA_ARG_INVOICE\"\nif [ \"$RPA_ARG_INVOICE\" = 99 ]; then sleep 30; fi\necho \"::output {\\\"total\\\": $RPA_ARG_INVOICE}\"\n",
    )
    .await;
    let _robot = support::start_robot(&base, dir, "robot-1", "acme-secret");

    // OAuth: the seed's refresh-token grant (JSON), and client credentials (a form).
    let t = http
        .post(format!("{base}/oauth/token"))
        .header("X-UIPATH-TenantName", "DefaultTenant")
        .json(&json!({"grant_type": "refresh_token", "client_id": "ops-client", "refresh_token": "ops-user-key"}))
        .send()
        .await
        .unwrap();
    assert_eq!(t.status(), 200);
    let t: Value = t.json().await.unwrap();
    assert_eq!(
        (t["token_type"].as_str(), t["expires_in"].as_u64()),
        (Some("Bearer"), Some(3600)),
        "{t}"
    );
    let ops_token = t["access_token"].as_str().unwrap().to_owned();
    let bad = http
        .post(format!("{base}/oauth/token"))
        .json(&json!({"grant_type": "refresh_token", "client_id": "ops-client", "refresh_token": "wrong"}))
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 400);
    assert_eq!(bad.json::<Value>().await.unwrap()["error"], "invalid_grant");
    let t: Value = http
        .post(format!("{base}/identity_/connect/token"))
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", "admin-client"),
            ("client_secret", "admin-secret"),
            ("scope", "OR.Jobs OR.Robots"),
        ])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(t["scope"], "OR.Jobs OR.Robots");
    let admin_api = Api {
        http: http.clone(),
        odata: format!("{base}/acme/DefaultTenant/orchestrator_/odata"),
        token: t["access_token"].as_str().unwrap().to_owned(),
    };
    let api = Api {
        http: http.clone(),
        odata: format!("{base}/acme/DefaultTenant/orchestrator_/odata"),
        token: ops_token.clone(),
    };

    // Folders, robots and their sessions.
    let (_, folders) = api.get("OrganizationUnits").await;
    assert_eq!(folders["value"][0]["DisplayName"], "Default");
    let deadline = Instant::now() + Duration::from_secs(30);
    let robot_id = loop {
        let (_, s) = admin_api.get("Sessions").await;
        if let Some(r) = s["value"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["State"] == "Available")
        {
            break r["Robot"]["Id"].as_i64().unwrap();
        }
        assert!(Instant::now() < deadline, "no robot available: {s}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    // The seed's own robot-state call.
    let (_, state) = admin_api
        .get(&format!("Sessions?$top=1&$filter=Robot/Id eq {robot_id}&$select=State"))
        .await;
    assert_eq!(state["value"], json!([{"State": "Available"}]), "{state}");
    let (_, robots) = admin_api.get("Robots").await;
    assert_eq!(robots["value"][0]["Name"], "robot-1");
    let (status, denied) = api.get("Robots").await;
    assert_eq!(status, 403, "ops may not list robots: {denied}");

    // Releases, filtered by name.
    let (_, releases) = api.get("Releases?$filter=Name%20eq%20'Invoice'").await;
    let release = &releases["value"].as_array().unwrap()[0];
    assert_eq!(
        (release["Name"].as_str(), release["ProcessVersion"].as_str()),
        (Some("Invoice"), Some("1.0.0"))
    );
    let release_key = release["Key"].as_str().unwrap().to_owned();
    assert_eq!(release_key.len(), 36, "a GUID");

    // StartJobs as the seed does it: ReleaseKey, Specific robots, InputArguments as a string.
    let (status, started) = api
        .post(
            "Jobs/UiPath.Server.Configuration.OData.StartJobs",
            json!({"startInfo": {"ReleaseKey": release_key, "Strategy": "Specific", "RobotIds": [robot_id],
                   "InputArguments": "{\"invoice\": 7}", "Source": "Manual"}}),
        )
        .await;
    assert_eq!(status, 201, "{started}");
    let job = &started["value"][0];
    assert!(
        matches!(job["State"].as_str(), Some("Pending" | "Running")) && job["Info"].is_null(),
        "{job}"
    );
    assert!(job["Id"].is_i64());
    let key = job["Key"].as_str().unwrap().to_owned();
    let done = wait_state(&api, &key, "Successful").await;
    assert_eq!(done["InputArguments"], "{\"invoice\":7}");
    assert_eq!(
        serde_json::from_str::<Value>(done["OutputArguments"].as_str().unwrap()).unwrap(),
        json!({"total": 7})
    );
    assert!(done["EndTime"].as_str().unwrap().ends_with('Z'));
    let (_, by_id) = api.get(&format!("Jobs({})", job["Id"])).await;
    assert_eq!(by_id["Key"], key);
    // Its run log, as UiPath's RobotLogs; and who the token is.
    let deadline = Instant::now() + Duration::from_secs(10);
    let logs = loop {
        let (status, logs) = api.get(&format!("RobotLogs?$filter=JobKey eq {key}&$orderby=Id")).await;
        assert_eq!(status, 200, "{logs}");
        if logs["@odata.count"].as_u64() > Some(0) || Instant::now() > deadline {
            break logs;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(
        logs["value"]
            .as_array()
            .unwrap()
            .iter()
            .any(|l| l["Message"] == "checking invoice 7"
                && l["Level"] == "Info"
                && l["RobotName"] == "robot-1"
                && l["JobKey"] == key.as_str()),
        "{logs}"
    );
    let (status, e) = api.get("RobotLogs").await;
    assert_eq!(status, 400, "logs are read a job at a time: {e}");
    let (_, me) = api.get("Users/UiPath.Server.Configuration.OData.GetCurrentUser").await;
    assert_eq!(
        (me["UserName"].as_str(), me["Type"].as_str()),
        (Some("ops"), Some("User")),
        "{me}"
    );

    // By name, then stopped.
    let (_, started) = api
        .post(
            "Jobs/UiPath.Server.Configuration.OData.StartJobs",
            json!({"startInfo": {"ReleaseName": "Invoice", "Strategy": "ModernJobsCount", "JobsCount": 1,
                   "InputArguments": "{\"invoice\": 99}"}}),
        )
        .await;
    let slow = started["value"][0].clone();
    wait_state(&api, slow["Key"].as_str().unwrap(), "Running").await;
    let (status, _) = api
        .post(
            "Jobs/UiPath.Server.Configuration.OData.StopJobs",
            json!({"jobIds": [slow["Id"]], "strategy": "SoftStop"}),
        )
        .await;
    assert_eq!(status, 200);
    wait_state(&api, slow["Key"].as_str().unwrap(), "Stopped").await;

    // Lists with $filter, $top and $count, on every route prefix.
    let (_, ok) = api.get("Jobs?$filter=State%20eq%20'Successful'&$count=true").await;
    assert_eq!(ok["@odata.count"], 1, "{ok}");
    assert_eq!(ok["value"][0]["Key"], key);
    let (_, both) = api
        .get(&format!(
            "Jobs?$filter=Key%20in%20('{key}','{}')&$top=1",
            slow["Key"].as_str().unwrap()
        ))
        .await;
    assert_eq!(both["value"].as_array().unwrap().len(), 1, "$top 1: {both}");
    let (_, recent) = api
        .get("Jobs?$filter=CreationTime+gt+2020-01-01T00:00:00Z+and+contains(ReleaseName,'inv')+and+not+(State+eq+'Pending')&$orderby=Id+asc&$select=Id,State")
        .await;
    let recent = recent["value"].as_array().unwrap();
    assert_eq!(recent.len(), 2, "{recent:?}");
    assert!(recent[0]["Id"].as_i64() < recent[1]["Id"].as_i64(), "$orderby Id asc");
    assert_eq!(
        recent[0].as_object().unwrap().len(),
        2,
        "$select Id,State: {:?}",
        recent[0]
    );
    for prefix in [format!("{base}/odata"), format!("{base}/acme/DefaultTenant/odata")] {
        let bare = Api {
            http: http.clone(),
            odata: prefix,
            token: ops_token.clone(),
        };
        let (status, r) = bare.get("Releases").await;
        assert_eq!((status, r["value"].as_array().map(Vec::len)), (200, Some(3)), "{r}");
        assert_eq!(r["@odata.count"], 3, "the total, as the seed reads it");
    }

    // Queues: created as the seed does, then items one by one and in bulk.
    let (status, created) = admin_api
        .post(
            "QueueDefinitions",
            json!({"Name": "Refunds", "Description": "", "MaxNumberOfRetries": 1,
                                          "AcceptAutomaticallyRetry": true, "EnforceUniqueReference": true}),
        )
        .await;
    assert_eq!(status, 201, "{created}");
    assert_eq!(created["MaxNumberOfRetries"], 1);
    let (_, queues) = admin_api.get("QueueDefinitions?$orderby=Name").await;
    let names: Vec<&str> = queues["value"]
        .as_array()
        .unwrap()
        .iter()
        .map(|q| q["Name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["Batch", "Claims", "Refunds"]);
    let (_, queues) = api.get("QueueDefinitions").await;
    assert_eq!(queues["value"][0]["Name"], "Claims");
    assert_eq!(queues["@odata.count"], 2, "ops sees the queues granted: {queues}");
    let (status, bulk) = api
        .post(
            "Queues/UiPathODataSvc.BulkAddQueueItems",
            json!({"queueName": "Claims", "commitType": "ProcessAllIndependently", "queueItems": [
                {"Name": "Claims", "Priority": "Low", "Reference": "B-1", "SpecificContent": {"n": 1}},
                {"Name": "Claims", "Priority": "Normal", "Reference": "B-2", "SpecificContent": {"n": 2}},
                {"Name": "Claims", "Priority": "Normal", "Reference": "B-1", "SpecificContent": {"n": 3}}]}),
        )
        .await;
    assert_eq!(status, 200, "{bulk}");
    assert_eq!(
        bulk["value"].as_array().unwrap().len(),
        1,
        "the repeated reference fails: {bulk}"
    );
    assert_eq!(bulk["value"][0]["Reference"], "B-1");
    let (status, e) = api
        .post(
            "Queues/UiPathODataSvc.BulkAddQueueItems",
            json!({"queueName": "Claims", "commitType": "AllOrNothing", "queueItems": [
                {"Reference": "B-3", "SpecificContent": {}}, {"Reference": "B-2", "SpecificContent": {}}]}),
        )
        .await;
    assert_eq!(status, 409, "all or nothing: {e}");
    let (status, listed) = api
        .get("QueueItems?$filter=Reference eq 'B-2' and Status ne 'Deleted'&$count=true")
        .await;
    assert_eq!(status, 200, "{listed}");
    assert_eq!(listed["@odata.count"], 1, "{listed}");
    assert_eq!(listed["value"][0]["SpecificContent"], json!({"n": 2}), "{listed}");
    let (_, claims) = api.get("QueueItems?$orderby=Reference&$top=1").await;
    assert_eq!(claims["value"][0]["Reference"], "B-1", "{claims}");

    // $expand: navigation properties kept beside $select; unknown ones refused.
    let (status, j) = api
        .get("Jobs?$top=1&$select=State&$expand=Robot($select=Name),Release")
        .await;
    assert_eq!(status, 200, "{j}");
    let first = j["value"][0].as_object().unwrap();
    let mut keys: Vec<&str> = first.keys().map(String::as_str).collect();
    keys.sort_unstable();
    assert_eq!(keys, ["Release", "Robot", "State"], "{j}");
    let (status, items) = api.get("QueueItems?$top=1&$expand=Robot,ReviewerUser").await;
    assert_eq!(status, 200, "{items}");
    assert!(items["value"][0]["ReviewerUser"].is_null(), "{items}");
    let (status, e) = api.get("Jobs?$expand=Nonsense").await;
    assert_eq!(status, 400, "{e}");

    // A queue that does not enforce unique references (UiPath's default),
    // items with an SLA risk date and progress, deleted before they ran.
    let (status, labels) = admin_api.post("QueueDefinitions", json!({"Name": "Labels"})).await;
    assert_eq!(
        (status, &labels["EnforceUniqueReference"]),
        (201, &json!(false)),
        "{labels}"
    );
    let mut deferred = Vec::new();
    for n in 0..3 {
        let (status, item) = admin_api
            .post(
                "Queues/UiPathODataSvc.AddQueueItem",
                json!({"itemData": {"Name": "Labels", "Reference": "same", "SpecificContent": {"n": n},
                    "DeferDate": "2099-01-01T00:00:00Z", "RiskSlaDate": "2098-12-31T12:00:00Z", "Progress": "scanned"}}),
            )
            .await;
        assert_eq!(status, 201, "a shared reference is accepted: {item}");
        assert_eq!(
            (&item["Reference"], &item["RiskSlaDate"], &item["Progress"]),
            (&json!("same"), &json!("2098-12-31T12:00:00.000Z"), &json!("scanned")),
            "{item}"
        );
        deferred.push(item["Id"].as_i64().unwrap());
    }
    let res = http
        .delete(format!("{}/QueueItems({})", admin_api.odata, deferred[0]))
        .bearer_auth(&admin_api.token)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 204, "{}", res.text().await.unwrap());
    let (_, gone) = admin_api.get(&format!("QueueItems({})", deferred[0])).await;
    assert_eq!(gone["Status"], "Deleted", "{gone}");
    let (status, bulk) = admin_api
        .post(
            "QueueItems/UiPathODataSvc.DeleteBulk",
            json!({"queueItemIds": [deferred[1], deferred[2], deferred[0]]}),
        )
        .await;
    assert_eq!(status, 200, "{bulk}");
    assert_eq!(bulk["Success"], false, "one was deleted already: {bulk}");
    assert_eq!(bulk["FailedItems"].as_array().map(Vec::len), Some(1), "{bulk}");
    assert_eq!(bulk["FailedItems"][0]["Key"], deferred[0]);
    let (_, left) = admin_api
        .get("QueueItems?$filter=Reference eq 'same' and Status ne 'Deleted'&$count=true")
        .await;
    assert_eq!(left["@odata.count"], 0, "{left}");

    // Transactions: a robot process takes items waiting for their trigger and ends them.
    for r in ["T-1", "T-2"] {
        let (status, _) = api
            .post(
                "Queues/UiPathODataSvc.AddQueueItem",
                json!({"itemData": {"Name": "Batch", "Reference": r, "SpecificContent": {"ref": r}}}),
            )
            .await;
        assert_eq!(status, 201);
    }
    let (status, t) = api
        .post(
            "Queues/UiPathODataSvc.StartTransaction",
            json!({"transactionData": {"Name": "Batch", "RobotIdentifier": null}}),
        )
        .await;
    assert_eq!(
        (status, t["Status"].as_str(), t["Reference"].as_str()),
        (200, Some("InProgress"), Some("T-1")),
        "{t}"
    );
    let id = t["Id"].as_i64().unwrap();
    let (status, _) = api
        .post(
            &format!("QueueItems({id})/UiPathODataSvc.SetTransactionProgress"),
            json!({"progress": "step 2 of 3"}),
        )
        .await;
    assert_eq!(status, 200);
    let (status, _) = api
        .post(
            &format!("Queues({id})/UiPathODataSvc.SetTransactionResult"),
            json!({"transactionResult": {"IsSuccessful": true, "Output": {"done": true}}}),
        )
        .await;
    assert_eq!(status, 200);
    let (_, item) = api.get(&format!("QueueItems({id})")).await;
    assert_eq!(
        (item["Status"].as_str(), item["Progress"].as_str()),
        (Some("Successful"), Some("step 2 of 3")),
        "{item}"
    );
    assert_eq!(item["Output"], json!({"done": true}));
    let (_, t2) = api
        .post(
            "Queues/UiPathODataSvc.StartTransaction",
            json!({"transactionData": {"Name": "Batch"}}),
        )
        .await;
    let id2 = t2["Id"].as_i64().unwrap();
    let (status, _) = api
        .post(
            &format!("Queues({id2})/UiPathODataSvc.SetTransactionResult"),
            json!({"transactionResult": {"IsSuccessful": false,
                   "ProcessingException": {"Reason": "bad data", "Details": "", "Type": "BusinessException"}}}),
        )
        .await;
    assert_eq!(status, 200);
    let (_, item) = api.get(&format!("QueueItems({id2})")).await;
    assert_eq!(item["Status"], "Failed", "{item}");
    let (status, _) = api
        .post(
            "Queues/UiPathODataSvc.StartTransaction",
            json!({"transactionData": {"Name": "Batch"}}),
        )
        .await;
    assert_eq!(status, 204, "nothing waits");
    let (status, e) = api
        .post(
            &format!("Queues({id2})/UiPathODataSvc.SetTransactionResult"),
            json!({"transactionResult": {"IsSuccessful": true}}),
        )
        .await;
    assert_eq!(status, 400, "ended already: {e}");
    // A queue made over this API starts no job: its item waits for a taker.
    let (status, waiting) = admin_api
        .post(
            "Queues/UiPathODataSvc.AddQueueItem",
            json!({"itemData": {"Name": "Refunds", "Reference": "RF-1", "SpecificContent": {"amount": 3}}}),
        )
        .await;
    assert_eq!(status, 201, "{waiting}");
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (_, still) = admin_api.get(&format!("QueueItems({})", waiting["Id"])).await;
    assert_eq!(still["Status"], "New", "no job took it: {still}");
    let (status, taken) = admin_api
        .post(
            "Queues/UiPathODataSvc.StartTransaction",
            json!({"transactionData": {"Name": "Refunds", "RobotIdentifier": "anything"}}),
        )
        .await;
    assert_eq!((status, &taken["Id"]), (200, &waiting["Id"]), "{taken}");
    assert_eq!(taken["SpecificContent"], json!({"amount": 3}));
    let (status, _) = admin_api
        .post(
            &format!("Queues({})/UiPathODataSvc.SetTransactionResult", waiting["Id"]),
            json!({"transactionResult": {"IsSuccessful": true}}),
        )
        .await;
    assert_eq!(status, 200);

    // Assets as the seed creates and changes them.
    let (status, asset) = admin_api
        .post(
            "Assets",
            json!({"Name": "测试参数2", "ValueScope": "Global", "ValueType": "Text",
                               "StringValue": "An asset added through an API call"}),
        )
        .await;
    assert_eq!(status, 201, "{asset}");
    let asset_id = asset["Id"].as_i64().unwrap();
    let (status, _) = admin_api
        .send(
            reqwest::Method::PUT,
            &format!("Assets({asset_id})"),
            Some(json!({"Name": "测试参数2", "ValueScope": "Global", "ValueType": "Text", "StringValue": "changed"})),
        )
        .await;
    assert_eq!(status, 200);
    let (_, listed) = api
        .get("Assets/UiPath.Server.Configuration.OData.GetFiltered?$filter=Name eq '测试参数2'")
        .await;
    assert_eq!(listed["value"][0]["StringValue"], "changed", "{listed}");
    let (status, _) = admin_api
        .post(
            "Assets",
            json!({"Name": "count", "ValueType": "Integer", "IntValue": 3}),
        )
        .await;
    assert_eq!(status, 201);
    let (status, e) = admin_api
        .post(
            "Assets",
            json!({"Name": "count", "ValueType": "Integer", "IntValue": 4}),
        )
        .await;
    assert_eq!(status, 409, "a name is unique: {e}");
    let (status, e) = api
        .post("Assets", json!({"Name": "x", "ValueType": "Text", "StringValue": "y"}))
        .await;
    assert_eq!(status, 403, "ops may read assets, not write them: {e}");
    let (status, _) = admin_api
        .send(reqwest::Method::DELETE, &format!("Assets({asset_id})"), None)
        .await;
    assert_eq!(status, 204);
    let (status, _) = api.get(&format!("Assets({asset_id})")).await;
    assert_eq!(status, 404);
    let (_, license) = api.get("Settings/UiPath.Server.Configuration.OData.GetLicense").await;
    assert_eq!(license["IsExpired"], false);
    let item = json!({"itemData": {"Name": "Claims", "Priority": "High", "Reference": "C-1",
                                   "SpecificContent": {"claim": "C-1", "amount": 12.5}}});
    let (status, added) = api.post("Queues/UiPathODataSvc.AddQueueItem", item.clone()).await;
    assert_eq!(status, 201, "{added}");
    assert!(
        matches!(added["Status"].as_str(), Some("New" | "InProgress")),
        "{added}"
    );
    assert_eq!(added["Priority"], "High");
    assert_eq!(added["SpecificContent"]["amount"], 12.5);
    let (status, dup) = api.post("Queues/UiPathODataSvc.AddQueueItem", item).await;
    assert_eq!(status, 409, "{dup}");
    assert!(dup["message"].as_str().unwrap().contains("Duplicate Reference"));

    // Folders: a process in "Shared" is seen only there (and with no folder named).
    let (_, folders) = admin_api.get("Folders?$orderby=DisplayName").await;
    let names: Vec<&str> = folders["value"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["DisplayName"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["Default", "Shared"]);
    let shared_id = folders["value"][1]["Id"].as_i64().unwrap();
    let in_folder = |folder: Option<(&'static str, String)>| {
        let mut r = http
            .get(format!("{base}/odata/Releases"))
            .header("Authorization", format!("Bearer {}", admin_api.token));
        if let Some((h, v)) = folder {
            r = r.header(h, v);
        }
        async move {
            let v: Value = r.send().await.unwrap().json().await.unwrap();
            let mut names: Vec<String> = v["value"]
                .as_array()
                .unwrap()
                .iter()
                .map(|r| r["Name"].as_str().unwrap().to_owned())
                .collect();
            names.sort();
            names
        }
    };
    assert_eq!(
        in_folder(Some(("X-UIPATH-FolderPath", "Shared".into()))).await,
        ["Payroll"]
    );
    assert_eq!(
        in_folder(Some(("X-UIPATH-OrganizationUnitId", shared_id.to_string()))).await,
        ["Payroll"]
    );
    // Base64 of UTF-16LE "Shared".
    assert_eq!(
        in_folder(Some(("X-UIPATH-FolderPath-Encoded", "UwBoAGEAcgBlAGQA".into()))).await,
        ["Payroll"]
    );
    assert_eq!(
        in_folder(Some(("X-UIPATH-FolderPath", "Default".into()))).await,
        ["Batch", "Claims", "Invoice", "Labels", "Refunds"]
    );
    assert_eq!(in_folder(None).await.len(), 6);

    // A folder granted to ops: its processes, and their jobs, are theirs.
    let shared_for_ops = || async {
        let v: Value = http
            .get(format!("{base}/odata/Releases"))
            .bearer_auth(&api.token)
            .header("X-UIPATH-FolderPath", "Shared")
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        v["@odata.count"].as_u64()
    };
    assert_eq!(shared_for_ops().await, Some(0));
    let granted = http
        .post(format!("{base}/admin/grants"))
        .header("X-Access-Token", &admin)
        .json(&json!({"name": "ops", "folder": "Shared"}))
        .send()
        .await
        .unwrap();
    assert_eq!(granted.status(), 200);
    assert_eq!(shared_for_ops().await, Some(1), "Payroll, through the folder");
    let (status, started) = api
        .post(
            "Jobs/UiPath.Server.Configuration.OData.StartJobs",
            json!({"startInfo": {"ReleaseName": "Payroll", "InputArguments": "{}"}}),
        )
        .await;
    assert_eq!(
        status, 404,
        "the Default folder's header does not reach Shared: {started}"
    );
    let users = support::get_json(&http, format!("{base}/admin/users"), &admin).await;
    let ops = users["result"]
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["name"] == "ops")
        .unwrap()
        .clone();
    assert_eq!(ops["folders"], json!(["Shared"]), "{ops}");
    let revoked = http
        .post(format!("{base}/admin/grants/revoke"))
        .header("X-Access-Token", &admin)
        .json(&json!({"name": "ops", "folder": "Shared"}))
        .send()
        .await
        .unwrap();
    assert_eq!(revoked.status(), 200);
    assert_eq!(shared_for_ops().await, Some(0));

    // UiPath's error answers.
    let anonymous = http.get(format!("{base}/odata/Releases")).send().await.unwrap();
    assert_eq!(anonymous.status(), 401);
    let e: Value = anonymous.json().await.unwrap();
    assert!(
        e["message"].is_string() && e["errorCode"].is_i64() && e["traceId"].is_string(),
        "{e}"
    );
    let lower = http
        .get(format!("{base}/odata/Releases"))
        .header("Authorization", format!("bearer {ops_token}"))
        .send()
        .await
        .unwrap();
    assert_eq!(lower.status(), 200, "the scheme word in any case");
    let elsewhere = http
        .get(format!("{base}/odata/Releases"))
        .header("Authorization", format!("Bearer {ops_token}"))
        .header("X-UIPATH-FolderPath", "Finance")
        .send()
        .await
        .unwrap();
    assert_eq!(elsewhere.status(), 404);
    let (status, e) = api.get("Jobs?$filter=State%20like%20'x'").await;
    assert_eq!(status, 400, "{e}");
    let (status, e) = api.get("Jobs?$filter=Colour%20eq%20'red'").await;
    assert_eq!(status, 400, "an unknown property: {e}");
    assert!(e["message"].as_str().unwrap().contains("Colour"), "{e}");
    let (status, _) = api.get("Nonsense").await;
    assert_eq!(status, 404);
    let (status, e) = api
        .post(
            "Jobs/UiPath.Server.Configuration.OData.StartJobs",
            json!({"startInfo": {"ReleaseName": "Nope"}}),
        )
        .await;
    assert_eq!(status, 404, "{e}");
    let (status, e) = api
        .post(
            "Jobs/UiPath.Server.Configuration.OData.StartJobs",
            json!({"startInfo": {"ReleaseName": "Invoice", "InputArguments": "{}"}}),
        )
        .await;
    assert_eq!(status, 400, "a required argument missing: {e}");
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uipath_clients_drive_the_server_on_sqlite() {
    let dir = std::env::temp_dir().join(format!("rpa-uipath-{}", std::process::id()));
    let db = dir.join("rpa.db").to_str().unwrap().to_owned();
    scenario(&dir, &db).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uipath_clients_drive_the_server_on_postgres() {
    let Some(url) = support::postgres_url() else {
        return;
    };
    let db = support::fresh_postgres(&url, "uipath").await;
    let dir = std::env::temp_dir().join(format!("rpa-uipath-pg-{}", std::process::id()));
    scenario(&dir, &db).await;
    support::drop_postgres(&url, "uipath").await;
}

const ASSET_CONFIG: &str = r#"{
  "admin": { "name": "admin", "password": "admin-pw" },
  "processes": [ { "name": "Payroll", "type": "Unattended", "folder": "Finance", "maxRunNum": 0 } ],
  "vendors": [ { "supplierCode": "acme", "secret": "acme-secret" } ]
}"#;

/// One UiPath call with `token`, in `folder`.
async fn call(http: &reqwest::Client, url: String, token: &str, folder: &str, body: Option<Value>) -> (u16, Value) {
    let mut r = match &body {
        Some(b) => http.post(url).json(b),
        None => http.get(url),
    };
    r = r.bearer_auth(token).header("X-UIPATH-FolderPath", folder);
    let res = r.send().await.unwrap();
    let status = res.status().as_u16();
    (status, res.json().await.unwrap_or(Value::Null))
}

/// Credentials and per-robot values: a person sees that they exist, the
/// robot running a job of the asset's folder gets the password through its
/// run token while the run lasts, and the database holds no password.
async fn credentials(dir: &Path, db: &str, sqlite_file: Option<&Path>) {
    let _ = std::fs::remove_dir_all(dir);
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(dir.join("config.json"), ASSET_CONFIG).unwrap();
    let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let _server = Proc(support::start_server(dir, db, port, &[]));
    let base = format!("http://127.0.0.1:{port}");
    let odata = format!("{base}/default/DefaultTenant/orchestrator_/odata");
    let http = reqwest::Client::new();
    let (admin, _) = support::login(&http, &base, "admin", "admin-pw").await;
    let processes = support::get_json(&http, format!("{base}/admin/processes"), &admin).await;
    let payroll = processes["result"][0]["processId"].as_str().unwrap().to_owned();
    // The run leaves its variables, then its token (the test waits for the
    // token, so both are there once it is), and runs until told.
    let handoff = dir.join("handoff");
    std::fs::create_dir_all(&handoff).unwrap();
    let h = handoff.display();
    let script = format!(
        "echo \"$UIPATH_URL $UIPATH_ROBOT_KEY $UIPATH_JOB_KEY\" > {h}/env\n\
         echo \"$RPA_ACCESS_TOKEN\" > {h}/token.tmp && mv {h}/token.tmp {h}/token\n\
         while [ ! -f {h}/done ]; do sleep 0.1; done\n"
    );
    support::upload_package(&http, &base, &admin, &payroll, &script).await;
    let _robot = support::start_robot(&base, dir, "robot-1", "acme-secret");
    let url = |p: &str| format!("{odata}/{p}");
    let get_robot_asset = "Assets/UiPath.Server.Configuration.OData.GetRobotAssetByNameForRobotKey";

    // A person creates them; the answers never hold a password.
    let (status, erp) = call(
        &http,
        url("Assets"),
        &admin,
        "Finance",
        Some(json!({"Name": "erp", "ValueScope": "Global", "ValueType": "Credential",
                    "CredentialUsername": "svc-erp", "CredentialPassword": "hunter2-erp"})),
    )
    .await;
    assert_eq!(status, 201, "{erp}");
    assert_eq!(
        (erp["CredentialUsername"].as_str(), &erp["CredentialPassword"]),
        (Some("svc-erp"), &Value::Null)
    );
    let (status, v) = call(
        &http,
        url("Assets"),
        &admin,
        "Finance",
        Some(json!({"Name": "greeting", "ValueScope": "PerRobot", "ValueType": "Text", "StringValue": "hello"})),
    )
    .await;
    assert_eq!(status, 201, "{v}");
    let (status, v) = call(
        &http,
        url("Assets"),
        &admin,
        "Default",
        Some(json!({"Name": "elsewhere", "ValueType": "Secret", "SecretValue": "not-for-finance"})),
    )
    .await;
    assert_eq!(status, 201, "{v}");
    let (status, v) = call(
        &http,
        url("Assets"),
        &admin,
        "Finance",
        Some(json!({"Name": "erp", "ValueType": "Text", "StringValue": "x"})),
    )
    .await;
    assert_eq!(status, 409, "a name is unique in its folder: {v}");
    let (_, listed) = call(
        &http,
        url("Assets/UiPath.Server.Configuration.OData.GetFiltered"),
        &admin,
        "Finance",
        None,
    )
    .await;
    assert_eq!(listed["@odata.count"], 2, "the folder's assets: {listed}");
    assert!(!listed.to_string().contains("hunter2"), "{listed}");
    let (status, e) = call(
        &http,
        url(get_robot_asset),
        &admin,
        "Finance",
        Some(json!({"assetName": "erp", "robotKey": "robot-1"})),
    )
    .await;
    assert_eq!(status, 403, "a person never gets a password: {e}");
    assert!(e["message"].is_string() && e["errorCode"].is_number(), "{e}");
    let (status, v) = call(
        &http,
        url(get_robot_asset),
        &admin,
        "Finance",
        Some(json!({"assetName": "greeting", "robotKey": "robot-1"})),
    )
    .await;
    assert_eq!((status, v["StringValue"].as_str()), (200, Some("hello")), "{v}");
    let (status, _) = call(
        &http,
        url("Assets/UiPath.Server.Configuration.OData.SetRobotAssetByRobotKey"),
        &admin,
        "Finance",
        Some(
            json!({"robotKey": "robot-1", "robotAsset": {"Name": "greeting", "ValueType": "Text", "StringValue": "x"}}),
        ),
    )
    .await;
    assert_eq!(status, 403, "only a robot sets its own value");

    // The robot runs a Finance job; its run token opens the folder's credentials.
    let (status, started) = call(
        &http,
        url("Jobs/UiPath.Server.Configuration.OData.StartJobs"),
        &admin,
        "Finance",
        Some(json!({"startInfo": {"ReleaseName": "Payroll", "InputArguments": "{}"}})),
    )
    .await;
    assert_eq!(status, 201, "{started}");
    let key = started["value"][0]["Key"].as_str().unwrap().to_owned();
    let deadline = Instant::now() + Duration::from_secs(30);
    let token = loop {
        if let Ok(t) = std::fs::read_to_string(handoff.join("token")) {
            break t.trim().to_owned();
        }
        assert!(Instant::now() < deadline, "the run never started");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(token.starts_with("rpa-run."), "the robot got a run token: {token:?}");
    let env = std::fs::read_to_string(handoff.join("env")).unwrap();
    assert!(
        env.starts_with(&format!("{base}/default/DefaultTenant robot-1 ")),
        "UiPath's variables for the SDK: {env}"
    );
    // No folder header: the job's own folder.
    let (status, v) = call(
        &http,
        url(get_robot_asset),
        &token,
        "",
        Some(json!({"assetName": "erp", "robotKey": "robot-1"})),
    )
    .await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(
        (v["CredentialUsername"].as_str(), v["CredentialPassword"].as_str()),
        (Some("svc-erp"), Some("hunter2-erp"))
    );
    let (status, _) = call(
        &http,
        url(get_robot_asset),
        &token,
        "",
        Some(json!({"assetName": "erp", "robotKey": "robot-2"})),
    )
    .await;
    assert_eq!(status, 403, "another robot's key");
    let (status, _) = call(
        &http,
        url(get_robot_asset),
        &token,
        "",
        Some(json!({"assetName": "elsewhere", "robotKey": "robot-1"})),
    )
    .await;
    assert_eq!(status, 404, "a secret of another folder");
    let (status, v) = call(
        &http,
        url("Assets/UiPath.Server.Configuration.OData.SetRobotAssetByRobotKey"),
        &token,
        "",
        Some(json!({"robotKey": "robot-1", "robotAsset": {"Name": "greeting", "ValueType": "Text", "StringValue": "from robot-1"}})),
    )
    .await;
    assert_eq!(status, 200, "{v}");
    let (_, v) = call(
        &http,
        url(get_robot_asset),
        &token,
        "",
        Some(json!({"assetName": "greeting", "robotKey": "robot-1"})),
    )
    .await;
    assert_eq!(v["StringValue"], "from robot-1");
    let (_, listed) = call(&http, url("Assets?$filter=Name eq 'greeting'"), &admin, "Finance", None).await;
    assert_eq!(
        listed["value"][0]["StringValue"], "hello",
        "the default stays: {listed}"
    );
    assert_eq!(listed["value"][0]["RobotValues"][0]["RobotName"], "robot-1", "{listed}");
    assert_eq!(listed["value"][0]["RobotValues"][0]["StringValue"], "from robot-1");
    let (status, _) = call(
        &http,
        url("Assets"),
        &token,
        "",
        Some(json!({"Name": "new", "ValueType": "Text", "StringValue": "x"})),
    )
    .await;
    assert_eq!(status, 403, "a run token administers nothing");
    let (status, _) = call(&http, url("Robots"), &token, "", None).await;
    assert_eq!(status, 403);

    // The run ends; so does its token.
    std::fs::write(handoff.join("done"), "").unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (_, j) = call(
            &http,
            url(&format!(
                "Jobs/UiPath.Server.Configuration.OData.GetByKey(identifier={key})"
            )),
            &admin,
            "Finance",
            None,
        )
        .await;
        if j["State"] == "Successful" {
            break;
        }
        assert!(Instant::now() < deadline, "the job never ended: {j}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (status, _) = call(
        &http,
        url(get_robot_asset),
        &token,
        "",
        Some(json!({"assetName": "erp", "robotKey": "robot-1"})),
    )
    .await;
    assert_eq!(status, 401, "a finished run's token opens nothing");

    // A person changes the user name without the password: the password stays.
    let erp_id = erp["Id"].as_i64().unwrap();
    let res = http
        .patch(url(&format!("Assets({erp_id})")))
        .bearer_auth(&admin)
        .json(&json!({"CredentialUsername": "svc-erp-2"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let (_, v) = call(&http, url(&format!("Assets({erp_id})")), &admin, "Finance", None).await;
    assert_eq!(
        (v["CredentialUsername"].as_str(), &v["CredentialPassword"]),
        (Some("svc-erp-2"), &Value::Null)
    );

    // Buckets: files written and read through signed links.
    let (status, bucket) = call(
        &http,
        url("Buckets"),
        &admin,
        "Finance",
        Some(json!({"Name": "Reports", "Identifier": "6f1c2a52-1111-4e2b-9c1d-000000000001"})),
    )
    .await;
    assert_eq!(status, 201, "{bucket}");
    let bid = bucket["Id"].as_i64().unwrap();
    let (status, w) = call(
        &http,
        url(&format!(
            "Buckets({bid})/UiPath.Server.Configuration.OData.GetWriteUri?path=/out/r%201.txt&contentType=text/plain"
        )),
        &admin,
        "Finance",
        None,
    )
    .await;
    assert_eq!(
        (status, &w["HttpMethod"], &w["RequiresAuth"]),
        (200, &json!("PUT"), &json!(false)),
        "{w}"
    );
    let put = http
        .put(w["Uri"].as_str().unwrap())
        .header("Content-Type", "text/plain")
        .body("total: 42")
        .send()
        .await
        .unwrap();
    assert!(put.status().is_success(), "{}", put.status());
    let (status, r) = call(
        &http,
        url(&format!(
            "Buckets({bid})/UiPath.Server.Configuration.OData.GetReadUri?path=out/r%201.txt"
        )),
        &admin,
        "Finance",
        None,
    )
    .await;
    assert_eq!(status, 200, "{r}");
    let read_uri = r["Uri"].as_str().unwrap().to_owned();
    let got = http.get(&read_uri).send().await.unwrap();
    assert_eq!(got.headers()["content-type"], "text/plain");
    assert_eq!(got.text().await.unwrap(), "total: 42");
    let forged = http
        .get(read_uri.replace("r%201.txt", "other.txt"))
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status(), 403, "a link opens only its own file");
    let as_write = http.put(&read_uri).body("x").send().await.unwrap();
    assert_eq!(as_write.status(), 403, "a read link does not write");
    let (_, files) = call(
        &http,
        url(&format!(
            "Buckets({bid})/UiPath.Server.Configuration.OData.GetFiles?directory=/out&fileNameGlob=*.txt"
        )),
        &admin,
        "Finance",
        None,
    )
    .await;
    assert_eq!(files["value"][0]["FullPath"], "out/r 1.txt", "{files}");
    assert_eq!(files["value"][0]["Size"], 9);
    let (_, listed) = call(
        &http,
        format!("{base}/default/DefaultTenant/orchestrator_/api/Buckets/{bid}/ListFiles?prefix=out"),
        &admin,
        "Finance",
        None,
    )
    .await;
    assert_eq!(listed["items"][0]["fullPath"], "out/r 1.txt", "{listed}");
    assert_eq!(listed["continuationToken"], Value::Null);
    let (_, by_key) = call(
        &http,
        url("Buckets/UiPath.Server.Configuration.OData.GetByKey(identifier='6f1c2a52-1111-4e2b-9c1d-000000000001')"),
        &admin,
        "Finance",
        None,
    )
    .await;
    assert_eq!(by_key["Id"], bid, "{by_key}");
    let (status, _) = call(
        &http,
        url(&format!(
            "Buckets({bid})/UiPath.Server.Configuration.OData.GetReadUri?path=out/r%201.txt"
        )),
        &admin,
        "Default",
        None,
    )
    .await;
    assert_eq!(status, 404, "another folder's bucket");
    let del = http
        .delete(url(&format!(
            "Buckets({bid})/UiPath.Server.Configuration.OData.DeleteFile?path=out/r%201.txt"
        )))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap();
    assert_eq!(del.status(), 204);
    assert_eq!(http.get(&read_uri).send().await.unwrap().status(), 404, "deleted");
    // A deleted bucket takes its files' bytes with it.
    let stored = || std::fs::read_dir(dir.join("files")).unwrap().count();
    let (_, w) = call(
        &http,
        url(&format!(
            "Buckets({bid})/UiPath.Server.Configuration.OData.GetWriteUri?path=left.txt"
        )),
        &admin,
        "Finance",
        None,
    )
    .await;
    let before = stored();
    let put = http.put(w["Uri"].as_str().unwrap()).body("x").send().await.unwrap();
    assert!(put.status().is_success());
    assert_eq!(stored(), before + 1);
    let gone = http
        .delete(url(&format!("Buckets({bid})")))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap();
    assert_eq!(gone.status(), 204);
    assert_eq!(stored(), before, "its bytes are removed");

    // At rest: no password in the database files.
    if let Some(file) = sqlite_file {
        for f in [file.to_path_buf(), file.with_extension("db-wal")] {
            if let Ok(bytes) = std::fs::read(&f) {
                let hay = String::from_utf8_lossy(&bytes);
                assert!(
                    !hay.contains("hunter2-erp") && !hay.contains("not-for-finance"),
                    "{} holds a password",
                    f.display()
                );
                assert!(!hay.contains("svc-erp"), "{} holds an asset in clear", f.display());
            }
        }
    }
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn credentials_reach_only_the_running_robot_on_sqlite() {
    let dir = std::env::temp_dir().join(format!("rpa-uipath-assets-{}", std::process::id()));
    let file = dir.join("rpa.db");
    let db = file.to_str().unwrap().to_owned();
    credentials(&dir, &db, Some(&file)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn credentials_reach_only_the_running_robot_on_postgres() {
    let Some(url) = support::postgres_url() else {
        return;
    };
    let db = support::fresh_postgres(&url, "uipath_assets").await;
    let dir = std::env::temp_dir().join(format!("rpa-uipath-assets-pg-{}", std::process::id()));
    credentials(&dir, &db, None).await;
    support::drop_postgres(&url, "uipath_assets").await;
}

/// `Specific` pins each job to its robot and `All` gives every connected
/// robot one: the robot that ran each job is the one asked for.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn specific_and_all_strategies_pin_jobs_to_robots() {
    let dir = std::env::temp_dir().join(format!("rpa-uipath-pin-{}", std::process::id()));
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
        "echo \"::output {\\\"done\\\": true}\"\n",
    )
    .await;
    let _r1 = support::start_robot(&base, &dir, "robot-1", "acme-secret");
    let _r2 = support::start_robot(&base, &dir, "robot-2", "acme-secret");
    let api = Api {
        http: http.clone(),
        odata: format!("{base}/odata"),
        token: admin.clone(),
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    let ids: std::collections::HashMap<String, i64> = loop {
        let (_, s) = api.get("Sessions?$filter=State eq 'Available'").await;
        let found: std::collections::HashMap<String, i64> = s["value"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| {
                (
                    r["Robot"]["Name"].as_str().unwrap().to_owned(),
                    r["Robot"]["Id"].as_i64().unwrap(),
                )
            })
            .collect();
        if found.len() == 2 {
            break found;
        }
        assert!(Instant::now() < deadline, "both robots available: {s}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let start = |strategy: Value| {
        let api = &api;
        async move {
            let mut info = json!({"ReleaseName": "Invoice", "InputArguments": "{\"invoice\": 1}"});
            info.as_object_mut()
                .unwrap()
                .extend(strategy.as_object().unwrap().clone());
            let (status, started) = api
                .post(
                    "Jobs/UiPath.Server.Configuration.OData.StartJobs",
                    json!({"startInfo": info}),
                )
                .await;
            assert_eq!(status, 201, "{started}");
            started["value"]
                .as_array()
                .unwrap()
                .iter()
                .map(|j| j["Key"].as_str().unwrap().to_owned())
                .collect::<Vec<_>>()
        }
    };
    let ran_on = |key: String| {
        let api = &api;
        async move {
            wait_state(api, &key, "Successful").await["Robot"]["Name"]
                .as_str()
                .unwrap()
                .to_owned()
        }
    };
    let pinned =
        start(json!({"Strategy": "Specific", "RobotIds": [ids["robot-2"], ids["robot-2"], ids["robot-2"]]})).await;
    assert_eq!(pinned.len(), 3);
    for key in pinned {
        assert_eq!(ran_on(key).await, "robot-2");
    }
    let all = start(json!({"Strategy": "All"})).await;
    let mut robots = Vec::new();
    for key in all {
        robots.push(ran_on(key).await);
    }
    robots.sort();
    assert_eq!(robots, ["robot-1", "robot-2"]);
    let (status, e) = api
        .post(
            "Jobs/UiPath.Server.Configuration.OData.StartJobs",
            json!({"startInfo": {"ReleaseName": "Invoice", "Strategy": "Specific", "RobotIds": [999999],
                   "InputArguments": "{\"invoice\": 1}"}}),
        )
        .await;
    assert_eq!(status, 404, "no such robot: {e}");
    // A robot in a folder: listed there, and runs only that folder's processes.
    let configured = http
        .post(format!("{base}/admin/robots"))
        .header("X-Access-Token", &admin)
        .json(&json!({"robotId": "robot-2", "vendor": "acme", "folders": ["Shared"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(configured.status(), 200);
    let names = |folder: &'static str| {
        let http = &http;
        let (base, admin) = (&base, &admin);
        async move {
            let v: Value = http
                .get(format!("{base}/odata/Robots"))
                .bearer_auth(admin)
                .header("X-UIPATH-FolderPath", folder)
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            let mut n: Vec<String> = v["value"]
                .as_array()
                .unwrap()
                .iter()
                .map(|r| r["Name"].as_str().unwrap().to_owned())
                .collect();
            n.sort();
            n
        }
    };
    assert_eq!(names("Default").await, ["robot-1"]);
    assert_eq!(
        names("Shared").await,
        ["robot-1", "robot-2"],
        "robot-1 serves every folder"
    );
    let (status, e) = api
        .post(
            "Jobs/UiPath.Server.Configuration.OData.StartJobs",
            json!({"startInfo": {"ReleaseName": "Invoice", "Strategy": "Specific", "RobotIds": [ids["robot-2"]],
                   "InputArguments": "{\"invoice\": 1}"}}),
        )
        .await;
    assert_eq!(
        status, 400,
        "robot-2 no longer runs the Default folder's processes: {e}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
