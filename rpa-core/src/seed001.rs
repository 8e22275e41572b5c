//! Seed 001's robot messages, read and written once for both transports
//! (the WebSocket hub's `{action, body}` and the HTTP robot API's bodies and
//! `{Action, Body}` answers): plain serde_json, no I/O.
//!
//! | message | fields read (A.1 / A.2) | decoded as |
//! |---|---|---|
//! | Register | `supplierCode`, `supplierSecret`, `version?`, `capabilities?` (extension: the extensions it speaks) | [`Register`] |
//! | Heartbeat | `runInstanceId?` | [`heartbeat`] |
//! | ReportLogs | `runInstanceId`, `logs: RunInstanceLog[]` (`content`, `screenshot?`, `logAt`, `logLevel` 0/1/2) | [`logs`] |
//! | ReportFinish | `runInstanceId`, `status` 0/1/2, `errorCode?` (32-bit), `outputValues?` (extension) | [`Finish`] |
//! | ReportVideoRecord | `runInstanceId`, `videoId` | [`video`] |
//! | ReportCheckpoint (extension) | `runInstanceId`, `checkpoint`, `step`?, `stepName`?, `taskProcessId`?, `pause`? | [`checkpoint`] |
//!
//! Down, a [`Command`] (the domain's word, as the outbox stores it) becomes
//! its action word and body here ([`command`]): Execute is table A.7, plus
//! the extensions `checkpoint`, `attempt` and `accessToken` (the run's
//! bearer token for the UiPath-compatible API) for a robot that
//! declared the capability `"checkpoint"` at Register (DESIGN §7: adapters
//! add no fields inside a documented object for robots that did not ask).
//!
//! A malformed message is a [`Bad`]: both transports answer it with error
//! 10001 and a message naming the field.

use serde_json::{Map, Value, json};

use crate::engine::{NewLog, Progress, StepReport};
use crate::ids::Key;
use crate::job::FinishStatus;
use crate::model::LogLevel;
use crate::transport::{Command, Execute};

/// Error 10000: a second connection for a robot that has a live one.
pub const DUPLICATE_CONNECTION: i32 = 10000;
/// Error 10001: bad parameters.
pub const BAD_PARAMETERS: i32 = 10001;
/// Error 19999: anything else.
pub const UNKNOWN: i32 = 19999;

/// A malformed message: what is wrong, naming the field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bad(pub String);

impl std::fmt::Display for Bad {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

fn bad(m: impl Into<String>) -> Bad {
    Bad(m.into())
}

/// A message body: a JSON object, read field by field. A field that is
/// absent or `null` counts as absent.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Body(pub Map<String, Value>);

impl Body {
    /// A body sent as bytes (HTTP): a JSON object; an empty body is `{}`.
    pub fn from_bytes(bytes: &[u8]) -> Result<Body, Bad> {
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(Body::default());
        }
        match serde_json::from_slice::<Value>(bytes) {
            Ok(Value::Object(m)) => Ok(Body(m)),
            Ok(_) => Err(bad("the request body must be a JSON object")),
            Err(e) => Err(bad(format!("the request body is not valid JSON: {e}"))),
        }
    }

    /// A body as a WebSocket message carries it: a string holding a JSON
    /// object (as the document says) or, leniently, the object itself;
    /// absent, null or empty is `{}`.
    pub fn from_ws(body: Option<&Value>) -> Result<Body, Bad> {
        match body {
            None | Some(Value::Null) => Ok(Body::default()),
            Some(Value::String(s)) if s.trim().is_empty() => Ok(Body::default()),
            Some(Value::String(s)) => match serde_json::from_str::<Value>(s) {
                Ok(Value::Object(m)) => Ok(Body(m)),
                _ => Err(bad("body must be a string holding a JSON object")),
            },
            Some(Value::Object(m)) => Ok(Body(m.clone())),
            Some(_) => Err(bad("body must be a string holding a JSON object")),
        }
    }

    fn get(&self, name: &str) -> Option<&Value> {
        self.0.get(name).filter(|v| !v.is_null())
    }

    /// A required, non-empty string (trimmed).
    pub fn str(&self, name: &str) -> Result<&str, Bad> {
        match self.get(name) {
            None => Err(bad(format!("{name} is required"))),
            Some(Value::String(s)) if !s.trim().is_empty() => Ok(s.trim()),
            Some(Value::String(_)) => Err(bad(format!("{name} must not be empty"))),
            Some(_) => Err(bad(format!("{name} must be a string"))),
        }
    }

    /// An optional string (absent, null or empty → `None`).
    pub fn opt_str(&self, name: &str) -> Result<Option<&str>, Bad> {
        match self.get(name) {
            None => Ok(None),
            Some(Value::String(s)) if s.trim().is_empty() => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.trim())),
            Some(_) => Err(bad(format!("{name} must be a string"))),
        }
    }

    /// An optional integer: a JSON number or a string holding one.
    pub fn opt_i64(&self, name: &str) -> Result<Option<i64>, Bad> {
        match self.get(name) {
            None => Ok(None),
            Some(Value::Number(n)) => n
                .as_i64()
                .map(Some)
                .ok_or_else(|| bad(format!("{name} must be an integer"))),
            Some(Value::String(s)) if s.trim().is_empty() => Ok(None),
            Some(Value::String(s)) => s
                .trim()
                .parse()
                .map(Some)
                .map_err(|_| bad(format!("{name} must be an integer"))),
            Some(_) => Err(bad(format!("{name} must be an integer"))),
        }
    }

    /// An optional boolean: `true`/`false`, `"true"`/`"false"`, 1/0.
    pub fn opt_bool(&self, name: &str) -> Result<Option<bool>, Bad> {
        match self.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(*b)),
            Some(Value::String(s)) if s == "true" || s == "1" => Ok(Some(true)),
            Some(Value::String(s)) if s == "false" || s == "0" => Ok(Some(false)),
            Some(Value::Number(n)) if n.as_i64() == Some(1) => Ok(Some(true)),
            Some(Value::Number(n)) if n.as_i64() == Some(0) => Ok(Some(false)),
            Some(_) => Err(bad(format!("{name} must be a boolean"))),
        }
    }

    /// Any JSON value, if present.
    pub fn value(&self, name: &str) -> Option<&Value> {
        self.get(name)
    }
}

/// Register (A.1.1, A.2.1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Register<'a> {
    /// The vendor's code.
    pub supplier_code: &'a str,
    /// Its proof for this robot id.
    pub supplier_secret: &'a str,
    /// The executor's version.
    pub version: Option<&'a str>,
    /// Extension: the protocol extensions it speaks (`"checkpoint"`).
    pub capabilities: Vec<&'a str>,
}

/// Reads a Register body.
pub fn register(b: &Body) -> Result<Register<'_>, Bad> {
    Ok(Register {
        supplier_code: b.str("supplierCode")?,
        supplier_secret: b.str("supplierSecret")?,
        version: b.opt_str("version")?,
        capabilities: match b.value("capabilities") {
            None => Vec::new(),
            Some(Value::Array(a)) => a
                .iter()
                .map(|c| {
                    c.as_str()
                        .ok_or_else(|| bad("capabilities must be an array of strings"))
                })
                .collect::<Result<_, _>>()?,
            Some(_) => return Err(bad("capabilities must be an array of strings")),
        },
    })
}

/// A `runInstanceId` as given: a 32-character id.
fn parse_run(s: &str) -> Result<Key, Bad> {
    s.parse().map_err(|_| bad("runInstanceId must be a 32-character id"))
}

/// The run a report is about (required).
pub fn run_instance(b: &Body) -> Result<Key, Bad> {
    parse_run(b.str("runInstanceId")?)
}

/// A Heartbeat body: the run the robot says it is executing, if any.
pub fn heartbeat(b: &Body) -> Result<Option<Key>, Bad> {
    b.opt_str("runInstanceId")?.map(parse_run).transpose()
}

/// The RunInstanceLog records of a ReportLogs body.
pub fn logs(b: &Body) -> Result<Vec<NewLog>, Bad> {
    let Some(Value::Array(items)) = b.value("logs") else {
        return Err(bad("logs must be an array of RunInstanceLog"));
    };
    let mut out = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        let Value::Object(m) = item else {
            return Err(bad(format!("logs[{i}] must be an object")));
        };
        let l = Body(m.clone());
        let at = |e: Bad| bad(format!("logs[{i}].{e}"));
        let content = match l.value("content") {
            Some(Value::String(s)) => s.clone(),
            _ => return Err(bad(format!("logs[{i}].content is required and must be a string"))),
        };
        let screenshot = l.opt_str("screenshot").map_err(at)?.map(Into::into);
        let log_at = match l.value("logAt") {
            Some(Value::String(s)) if is_date_time(s) => s.trim().to_owned(),
            None => return Err(bad(format!("logs[{i}].logAt is required"))),
            Some(_) => {
                return Err(bad(format!(
                    "logs[{i}].logAt must be a date-time such as 2026-11-25 10:00:00"
                )));
            }
        };
        let level = match l.opt_i64("logLevel").map_err(at)? {
            Some(v) => LogLevel::from_int(v).ok_or_else(|| bad(format!("logs[{i}].logLevel must be 0, 1 or 2")))?,
            None => return Err(bad(format!("logs[{i}].logLevel is required"))),
        };
        out.push(NewLog {
            content,
            screenshot,
            log_at,
            level,
        });
    }
    Ok(out)
}

/// Whether `s` is a date-time as robots write RunInstanceLog's `logAt`
/// (A.3.1, type datetime): `yyyy-MM-dd HH:mm:ss`, optionally with a `T`
/// between date and time, fractions of a second, or an offset (RFC 3339).
pub fn is_date_time(s: &str) -> bool {
    let s = s.trim();
    chrono::DateTime::parse_from_rfc3339(s).is_ok()
        || ["%Y-%m-%d %H:%M:%S%.f", "%Y-%m-%dT%H:%M:%S%.f"]
            .iter()
            .any(|f| chrono::NaiveDateTime::parse_from_str(s, f).is_ok())
}

/// A ReportFinish body, past its `runInstanceId`.
#[derive(Debug, Clone, PartialEq)]
pub struct Finish {
    /// 0 success, 1 cancelled, 2 failed.
    pub status: FinishStatus,
    /// The robot's error code (20000–29999: a business error).
    pub error_code: Option<i32>,
    /// Extension: the run's outputs, a JSON object.
    pub outputs: Option<Value>,
}

/// Reads a ReportFinish body.
pub fn finish(b: &Body) -> Result<Finish, Bad> {
    let status = b.opt_i64("status")?.ok_or_else(|| bad("status is required"))?;
    let status =
        FinishStatus::from_int(status).ok_or_else(|| bad("status must be 0 (success), 1 (cancelled) or 2 (failed)"))?;
    let error_code = b
        .opt_i64("errorCode")?
        .map(|c| i32::try_from(c).map_err(|_| bad("errorCode is out of range")))
        .transpose()?;
    let outputs = match b.value("outputValues") {
        None => None,
        Some(v @ Value::Object(_)) => Some(v.clone()),
        Some(Value::String(s)) => match serde_json::from_str::<Value>(s) {
            Ok(v @ Value::Object(_)) => Some(v),
            _ => return Err(bad("outputValues must be a JSON object")),
        },
        Some(_) => return Err(bad("outputValues must be a JSON object")),
    };
    Ok(Finish {
        status,
        error_code,
        outputs,
    })
}

/// The `videoId` of a ReportVideoRecord body.
pub fn video(b: &Body) -> Result<&str, Bad> {
    b.str("videoId")
}

/// A ReportCheckpoint body: `checkpoint` (any JSON value) and, when the
/// robot says which step of the run it reached, `step` (a number from 0),
/// `stepName` and `taskProcessId` (the process's data step; default the
/// step number). One of `checkpoint` and `step` is required. `pause`
/// true marks the step as one where a person decides (`stopTag` 1): the
/// run stops there, and resumes when the person has decided.
pub fn checkpoint(b: &Body) -> Result<Progress, Bad> {
    let checkpoint = b.value("checkpoint").cloned();
    let pause = b.opt_bool("pause")?.unwrap_or(false);
    let step = match b.opt_i64("step")? {
        None => None,
        Some(n) => Some(StepReport {
            step: u32::try_from(n).map_err(|_| bad("step must be a number from 0"))?,
            name: b.opt_str("stepName")?.map(str::to_owned),
            task: b.opt_i64("taskProcessId")?,
            pause,
        }),
    };
    if checkpoint.is_none() && step.is_none() {
        return Err(bad("checkpoint is required"));
    }
    if pause && step.is_none() {
        return Err(bad("a pause is reported with its step"));
    }
    Ok(Progress { checkpoint, step })
}

/// Execute's body: table A.7, then, for a robot that takes them
/// (`extensions`), `checkpoint` (when there is one), `attempt` and
/// `accessToken` (when the server signs run tokens).
pub fn execute(e: &Execute, extensions: bool) -> Value {
    let mut body = json!({
        "runInstanceId": e.run_instance_id,
        "packageDownloadUri": e.package_download_uri,
        "arguments": e
            .arguments
            .iter()
            .map(|a| json!({"name": a.name, "type": a.arg_type, "value": a.value}))
            .collect::<Vec<_>>(),
        "videoRecordRequired": e.video_record_required,
        "videoRecordMode": e.video_record_mode,
        "userId": e.user_id,
        "userName": e.user_name,
    });
    if let Some(u) = &e.file_upload_uri {
        body["fileUploadUri"] = json!(u);
    }
    if extensions {
        if let Some(c) = &e.checkpoint {
            body["checkpoint"] = c.clone();
        }
        body["attempt"] = json!(e.attempt);
        if let Some(t) = &e.access_token {
            body["accessToken"] = json!(t);
        }
    }
    body
}

/// A command's action word and body (`None`: the action has no body), for
/// a robot that takes the fail-over extensions or not.
pub fn command(cmd: &Command, extensions: bool) -> (&'static str, Option<Value>) {
    match cmd {
        Command::Execute(e) => ("Execute", Some(execute(e, extensions))),
        Command::Stop { .. } => ("Stop", None),
        Command::SendLicense { license_content } => ("SendLicense", Some(json!({"licenseContent": license_content}))),
        Command::Error { error_code, message } => ("Error", Some(error(*error_code, message))),
    }
}

/// An Error body.
pub fn error(code: i32, message: impl std::fmt::Display) -> Value {
    json!({"errorCode": code, "message": message.to_string()})
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transport::Argument;

    fn body(v: Value) -> Body {
        Body::from_ws(Some(&Value::String(v.to_string()))).unwrap()
    }

    #[test]
    fn a_finish_is_read_with_its_extension_and_checked() {
        let f = finish(&body(
            json!({"status": 2, "errorCode": "20001", "outputValues": "{\"a\":1}"}),
        ))
        .unwrap();
        assert_eq!(f.status, FinishStatus::Failed);
        assert_eq!(f.error_code, Some(20001));
        assert_eq!(f.outputs, Some(json!({"a": 1})));
        assert_eq!(
            finish(&body(json!({"status": 0, "errorCode": 4_294_967_296_i64}))),
            Err(Bad("errorCode is out of range".into()))
        );
        assert_eq!(
            finish(&body(json!({"status": 3}))),
            Err(Bad("status must be 0 (success), 1 (cancelled) or 2 (failed)".into()))
        );
        assert_eq!(finish(&body(json!({}))), Err(Bad("status is required".into())));
        assert!(finish(&body(json!({"status": 0, "outputValues": [1]}))).is_err());
    }

    #[test]
    fn bodies_come_as_strings_holding_json_or_as_objects() {
        assert_eq!(Body::from_ws(None).unwrap(), Body::default());
        assert_eq!(Body::from_ws(Some(&json!(""))).unwrap(), Body::default());
        assert_eq!(
            Body::from_ws(Some(&json!({"videoId": "v"}))).unwrap(),
            body(json!({"videoId": "v"}))
        );
        assert!(Body::from_ws(Some(&json!("[1]"))).is_err());
        assert!(Body::from_ws(Some(&json!(3))).is_err());
        assert_eq!(Body::from_bytes(b"  ").unwrap(), Body::default());
        assert!(Body::from_bytes(b"[]").is_err());
        assert!(Body::from_bytes(b"{").is_err());
    }

    #[test]
    fn logs_name_the_record_and_field_at_fault() {
        let ok = logs(&body(
            json!({"logs": [{"content": "hi", "logAt": "2026-11-25 10:00:00", "logLevel": "1"}]}),
        ))
        .unwrap();
        assert_eq!(ok[0].level, LogLevel::from_int(1).unwrap());
        assert_eq!(
            logs(&body(json!({"logs": [{"content": "a", "logAt": "2026-11-25 10:00:00", "logLevel": 0}, {"content": "b", "logAt": "2026-11-25 10:00:01", "logLevel": 7}]}))).err(),
            Some(Bad("logs[1].logLevel must be 0, 1 or 2".into()))
        );
        assert!(logs(&body(json!({"logs": {}}))).is_err());
        for at in [
            "2026-11-25 10:00:00",
            "2026-11-25T10:00:00.250",
            "2026-11-25T10:00:00+08:00",
        ] {
            assert!(is_date_time(at), "{at}");
        }
        for at in ["yesterday", "2026-11-25", "2026-13-01 10:00:00", "1764064800000", ""] {
            assert!(!is_date_time(at), "{at}");
        }
        assert_eq!(
            logs(&body(
                json!({"logs": [{"content": "a", "logAt": 1_764_064_800_000_i64, "logLevel": 0}]})
            ))
            .err(),
            Some(Bad(
                "logs[0].logAt must be a date-time such as 2026-11-25 10:00:00".into()
            ))
        );
    }

    #[test]
    fn runs_and_registrations_are_checked() {
        assert_eq!(heartbeat(&body(json!({}))), Ok(None));
        assert_eq!(heartbeat(&body(json!({"runInstanceId": ""}))), Ok(None));
        assert!(heartbeat(&body(json!({"runInstanceId": "nope"}))).is_err());
        assert!(run_instance(&body(json!({}))).is_err());
        let b = body(json!({"supplierCode": "acme", "supplierSecret": "s"}));
        let r = register(&b).unwrap();
        assert_eq!((r.supplier_code, r.version, r.capabilities.len()), ("acme", None, 0));
        let b = body(json!({"supplierCode": "acme", "supplierSecret": "s", "capabilities": ["checkpoint"]}));
        assert_eq!(register(&b).unwrap().capabilities, ["checkpoint"]);
        let b = body(json!({"supplierCode": "acme", "supplierSecret": "s", "capabilities": "checkpoint"}));
        assert!(register(&b).is_err());
        assert!(register(&body(json!({"supplierCode": "acme"}))).is_err());
    }

    #[test]
    fn execute_is_table_a7_then_the_extensions() {
        let e = Execute {
            run_instance_id: Key([7; 16]),
            package_download_uri: "http://p".into(),
            file_upload_uri: None,
            arguments: vec![Argument {
                name: "n".into(),
                arg_type: "int".into(),
                value: "1".into(),
            }],
            video_record_required: false,
            video_record_mode: 0,
            user_id: "1".into(),
            user_name: "alice".into(),
            checkpoint: None,
            attempt: 1,
            access_token: None,
        };
        let v = execute(&e, false);
        let mut fields: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
        fields.sort_unstable();
        let a7 = [
            "arguments",
            "packageDownloadUri",
            "runInstanceId",
            "userId",
            "userName",
            "videoRecordMode",
            "videoRecordRequired",
        ];
        assert_eq!(fields, a7, "exactly table A.7's fields");
        let e = Execute {
            checkpoint: Some(json!({"row": 3})),
            attempt: 2,
            access_token: Some("t".into()),
            ..e
        };
        let v = execute(&e, true);
        assert_eq!(
            (v["attempt"].clone(), v["checkpoint"].clone()),
            (json!(2), json!({"row": 3}))
        );
        assert_eq!(v["accessToken"], json!("t"));
        assert!(
            execute(&e, false).get("accessToken").is_none(),
            "only with the extensions"
        );
        assert_eq!(v["arguments"][0], json!({"name": "n", "type": "int", "value": "1"}));
        assert_eq!(v["runInstanceId"], json!(Key([7; 16]).to_string()));
        assert_eq!(
            command(
                &Command::Stop {
                    run_instance_id: Key([7; 16])
                },
                true
            ),
            ("Stop", None)
        );
    }
}
