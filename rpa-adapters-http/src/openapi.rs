//! `GET /openapi.json`: an OpenAPI 3.1 description of every endpoint.

use axum::Router;
use axum::routing::get;
use rpa_core::Store;
use serde_json::{Value, json};

use crate::AppState;

/// The route.
pub fn router<S: Store>() -> Router<AppState<S>> {
    Router::new().route("/openapi.json", get(|| async { axum::Json(document()) }))
}

fn op(tag: &str, summary: &str, security: &str, request: Option<Value>, result: Value) -> Value {
    let mut o = json!({
        "tags": [tag],
        "summary": summary,
        "responses": {"200": {"description": "answer in the API's envelope", "content": {"application/json": {"schema": result}}}},
    });
    if !security.is_empty() {
        o["security"] = json!([{ security: [] }]);
    }
    if let Some(r) = request {
        o["requestBody"] = json!({"required": true, "content": {"application/json": {"schema": r}}});
    }
    o
}

fn obj(props: &[(&str, &str)], required: &[&str]) -> Value {
    let mut p = serde_json::Map::new();
    for (name, ty) in props {
        p.insert((*name).into(), json!({"type": ty}));
    }
    json!({"type": "object", "properties": p, "required": required})
}

fn biz(result: Value) -> Value {
    json!({"type": "object", "properties": {
        "success": {"type": "boolean"}, "message": {"type": "string"}, "code": {"type": "integer", "enum": [200, 401, 500]},
        "result": result, "timestamp": {"type": "integer", "description": "epoch milliseconds"}},
        "required": ["success", "message", "code", "timestamp"]})
}

fn robot(value: Value) -> Value {
    json!({"type": "object", "properties": {
        "successful": {"type": "boolean"}, "resultHint": {"type": "string"}, "resultValue": value},
        "required": ["successful", "resultHint", "resultValue"]})
}

/// The document.
pub fn document() -> Value {
    let s = "string";
    let job_fields = obj(&[("jobId", s)], &["jobId"]);
    let process_fields = obj(&[("processId", s)], &["processId"]);
    let mut paths = serde_json::Map::new();
    let mut add = |path: &str, method: &str, o: Value| {
        let entry = paths.entry(path.to_owned()).or_insert_with(|| json!({}));
        entry[method] = o;
    };
    add(
        "/rpa/api/login",
        "post",
        op(
            "business",
            "Log in; the token is valid 30 minutes",
            "",
            Some(obj(&[("username", s), ("password", s)], &["username", "password"])),
            biz(
                json!({"type": "object", "properties": {"token": {"type": s}, "processes": {"type": "array", "items": obj(&[("id", s), ("name", s), ("type", s)], &[])}}}),
            ),
        ),
    );
    add(
        "/rpa/api/logout",
        "post",
        op("business", "End the session", "token", None, biz(json!({}))),
    );
    add(
        "/rpa/api/queryProcess",
        "post",
        op(
            "business",
            "A granted process and its limits",
            "token",
            Some(process_fields.clone()),
            biz(obj(
                &[
                    ("processId", s),
                    ("processName", s),
                    ("argument", "array"),
                    ("maxRunNum", "integer"),
                    ("currentRunNum", "integer"),
                    ("maxDayNum", "integer"),
                    ("type", s),
                    ("version", s),
                ],
                &[],
            )),
        ),
    );
    add(
        "/rpa/api/startJob",
        "post",
        op(
            "business",
            "Start a job (params: object or string holding JSON)",
            "token",
            Some(
                json!({"type": "object", "properties": {"processId": {"type": s}, "params": {"type": ["object", "string"]}}, "required": ["processId"]}),
            ),
            biz(obj(
                &[("jobId", s), ("status", s), ("creationTime", s), ("type", s)],
                &[],
            )),
        ),
    );
    add(
        "/rpa/api/stopJob",
        "post",
        op(
            "business",
            "Stop a job",
            "token",
            Some(job_fields.clone()),
            biz(json!({})),
        ),
    );
    add(
        "/rpa/api/jobStatus",
        "post",
        op(
            "business",
            "A job's state and progress",
            "token",
            Some(job_fields),
            biz(
                json!({"type": "array", "items": obj(&[("processName", s), ("processId", "integer"), ("stopTag", "integer"), ("step", "integer"), ("id", "integer"), ("taskProcessId", "integer"), ("autoJobId", "integer"), ("status", s)], &[])}),
            ),
        ),
    );
    add(
        "/rpa/api/addQueueItem",
        "post",
        op(
            "business",
            "Add an item to a Queue process",
            "token",
            Some(
                json!({"type": "object", "properties": {"processId": {"type": s}, "params": {"type": ["object", "string"]}, "reference": {"type": s}, "priority": {"type": "integer"}}, "required": ["processId"]}),
            ),
            biz(obj(&[("key", s), ("status", s), ("creationTime", s)], &[])),
        ),
    );
    add(
        "/rpa/api/queryProcessJob",
        "post",
        op(
            "business",
            "Jobs of a process in a window of at most one month (default 30 days)",
            "token",
            Some(obj(
                &[("processId", s), ("state", s), ("startTime", s), ("endTime", s)],
                &["processId"],
            )),
            biz(
                json!({"type": "object", "properties": {"total": {"type": "integer"}, "record": {"type": "array", "items": obj(&[("processId", s), ("createTime", s), ("beginTime", s), ("endTime", s), ("userName", s), ("processName", s), ("jobId", s), ("jobNumber", "integer"), ("version", s), ("state", s), ("ocJobId", "integer"), ("autoProcessId", "integer"), ("outputValues", "object")], &[])}}}),
            ),
        ),
    );
    add(
        "/robots/connect/register",
        "post",
        op(
            "robot",
            "Register an executor (header robotId)",
            "",
            Some(obj(
                &[("supplierCode", s), ("supplierSecret", s), ("version", s)],
                &["supplierCode", "supplierSecret"],
            )),
            robot(obj(&[("robotConnectId", s), ("licenseContent", s)], &[])),
        ),
    );
    add(
        "/robots/connect/heartbeat",
        "post",
        op(
            "robot",
            "Heartbeat; answers one waiting command",
            "robot",
            Some(obj(&[("runInstanceId", s)], &[])),
            robot(
                json!({"type": "object", "properties": {"Action": {"type": s, "enum": ["None", "Execute", "Stop", "Error"]}, "Body": {}}}),
            ),
        ),
    );
    add(
        "/robots/connect/reportLogs",
        "post",
        op(
            "robot",
            "Report log lines",
            "robot",
            Some(
                json!({"type": "object", "properties": {"runInstanceId": {"type": s}, "logs": {"type": "array", "items": obj(&[("content", s), ("screenshot", s), ("logAt", s), ("logLevel", "integer")], &["content", "logAt", "logLevel"])}}, "required": ["runInstanceId", "logs"]}),
            ),
            robot(json!({})),
        ),
    );
    add(
        "/robots/connect/reportFinish",
        "post",
        op(
            "robot",
            "Report the end of a run (status 0/1/2; outputValues extension)",
            "robot",
            Some(obj(
                &[
                    ("runInstanceId", s),
                    ("status", "integer"),
                    ("errorCode", "integer"),
                    ("outputValues", "object"),
                ],
                &["runInstanceId", "status"],
            )),
            robot(json!({})),
        ),
    );
    add(
        "/robots/connect/reportVideoRecord",
        "post",
        op(
            "robot",
            "Report a screen recording after the finish",
            "robot",
            Some(obj(
                &[("runInstanceId", s), ("videoId", s)],
                &["runInstanceId", "videoId"],
            )),
            robot(json!({})),
        ),
    );
    add(
        "/robots/connect/reportCheckpoint",
        "post",
        op(
            "robot",
            "Extension: save intermediate state for fail-over",
            "robot",
            Some(
                json!({"type": "object", "properties": {"runInstanceId": {"type": s}, "checkpoint": {}}, "required": ["runInstanceId", "checkpoint"]}),
            ),
            robot(json!({})),
        ),
    );
    add(
        "/v1/file/{source}/upload",
        "post",
        json!({"tags": ["robot"], "summary": "Upload a file (multipart field 'file'; source file, demand or icon)",
        "parameters": [{"name": "source", "in": "path", "required": true, "schema": {"type": s, "enum": ["file", "demand", "icon"]}}],
        "requestBody": {"content": {"multipart/form-data": {"schema": {"type": "object", "properties": {"file": {"type": s, "format": "binary"}}}}}},
        "responses": {"200": {"description": "stored", "content": {"application/json": {"schema": robot(obj(&[("fileId", s), ("fileName", s), ("fileUrl", s)], &[]))}}}}}),
    );
    add(
        "/v1/file/{fileId}",
        "get",
        json!({"tags": ["robot"], "summary": "Download a stored file (robot headers or X-Access-Token)",
        "parameters": [{"name": "fileId", "in": "path", "required": true, "schema": {"type": s}}],
        "responses": {"200": {"description": "the bytes", "content": {"application/octet-stream": {}}}}}),
    );
    add(
        "/design/personalfile",
        "post",
        op(
            "robot",
            "Put an uploaded file in a personal folder",
            "robot",
            Some(obj(
                &[
                    ("fileId", s),
                    ("fileName", s),
                    ("runInstanceId", s),
                    ("userId", s),
                    ("userName", s),
                ],
                &["fileId"],
            )),
            robot(json!({})),
        ),
    );
    for (path, method, summary) in [
        ("/admin/users", "post", "Create a user"),
        ("/admin/users", "get", "List users"),
        ("/admin/users/unlock", "post", "Unlock a user"),
        ("/admin/grants", "post", "Grant a process to a user"),
        ("/admin/processes", "post", "Create a process"),
        ("/admin/processes", "get", "List processes"),
        (
            "/admin/processes/{processId}/package",
            "post",
            "Upload a package version (raw body; ?version=)",
        ),
        ("/admin/vendors", "post", "Register a vendor (supplierCode, secret)"),
        (
            "/admin/robots",
            "post",
            "Configure a robot (pool, labels, attended, licenseContent)",
        ),
        ("/admin/robots", "get", "List robots"),
        (
            "/admin/jobs/{jobId}/kill",
            "post",
            "Kill a job: it ends Stopped at once, its robot is sent Stop",
        ),
        ("/admin/audit", "get", "Audit events (?after=&limit=)"),
        ("/admin/audit/verify", "get", "Verify the audit hash chain"),
    ] {
        add(path, method, op("admin", summary, "token", None, biz(json!({}))));
    }
    add(
        "/openapi.json",
        "get",
        json!({"summary": "This document", "responses": {"200": {"description": "OpenAPI 3.1"}}}),
    );
    json!({
        "openapi": "3.1.0",
        "info": {"title": "rpa", "version": env!("CARGO_PKG_VERSION"),
                 "description": "Business API (seed 000), robot HTTP API (seed 001 A.2), administration."},
        "paths": paths,
        "components": {"securitySchemes": {
            "token": {"type": "apiKey", "in": "header", "name": "X-Access-Token"},
            "robot": {"type": "apiKey", "in": "header", "name": "robotConnectId", "description": "with header robotId"},
        }},
    })
}
