//! AI capabilities (seed 001 §5.1 c: speech recognition, OCR, NLP,
//! knowledge graphs, face recognition, called by processes and robots).
//! Pure: what a capability is, who may call it, and its daily quota.
//!
//! An administrator registers a capability: its kind, what serves it (a
//! local Tesseract, or an HTTP service with credentials), the processes
//! granted it, a daily quota of calls and a timeout. A robot calls it
//! during a job it is running; the call is admitted only for a process
//! granted the capability and while the day's quota lasts
//! ([`Capability::refusal`]), counted ([`Usage`]) and audited in one
//! commit before the service is asked, so a quota holds across nodes.
//!
//! The kind is [sealed](crate::record::Kind::sealed): an HTTP service's
//! credentials are kept encrypted at rest and never shown
//! ([`Capability::redacted`]).

use std::future::Future;
use std::pin::Pin;

use serde::{Deserialize, Serialize};

use crate::record::{Cell, Column, Kind, Mapped, Record};
use crate::time::Timestamp;

/// Most capabilities a server keeps.
pub const MAX_CAPABILITIES: usize = 1_000;
/// Most bytes a call sends to a capability.
pub const MAX_INPUT: usize = 20 * 1024 * 1024;
/// Longest timeout of a call.
pub const MAX_TIMEOUT_MS: u64 = 10 * 60 * 1000;
/// A timeout when none is given.
pub const DEFAULT_TIMEOUT_MS: u64 = 30_000;
/// Grants every process.
pub const EVERY_PROCESS: &str = "*";

/// What a capability does (seed 001 §5.1 c).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum CapabilityKind {
    /// Optical character recognition: an image in, its text out.
    Ocr,
    /// Speech recognition.
    Speech,
    /// Natural language processing.
    Nlp,
    /// Knowledge graph queries.
    KnowledgeGraph,
    /// Face recognition.
    Face,
}

/// What serves a capability.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "camelCase")]
pub enum Backend {
    /// Tesseract on this server: the image in, its text out (OCR only).
    #[serde(rename_all = "camelCase")]
    Tesseract {
        /// Tesseract's languages, as its `-l` takes them (`eng`, `chi_sim+eng`).
        languages: String,
    },
    /// An HTTP service: the input is POSTed to `endpoint` with its content
    /// type, and the service's JSON answer is the call's output.
    #[serde(rename_all = "camelCase")]
    Http {
        /// `http://` or `https://` URL.
        endpoint: String,
        /// Sent as `Authorization: Bearer <token>` (sealed at rest, never shown).
        #[serde(default, skip_serializing_if = "String::is_empty")]
        token: String,
    },
}

/// What an administrator says a capability is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Spec {
    /// What it does.
    pub kind: CapabilityKind,
    /// What serves it.
    pub backend: Backend,
    /// The process names granted it; [`EVERY_PROCESS`] grants all.
    #[serde(default)]
    pub processes: Vec<String>,
    /// Most calls a day (in the server's time zone); none: no limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub daily_quota: Option<u64>,
    /// How long a call may take, in milliseconds.
    #[serde(default = "default_timeout")]
    pub timeout_ms: u64,
}

fn default_timeout() -> u64 {
    DEFAULT_TIMEOUT_MS
}

/// A capability as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Capability {
    /// Its name (the key; the last segment of `/v1/ai/{name}`).
    pub name: String,
    /// Commit version.
    pub version: u64,
    /// What it is.
    pub spec: Spec,
    /// Retired: refused to every caller until registered again.
    #[serde(default)]
    pub retired: bool,
    /// When it was registered or last changed.
    pub changed_at: Timestamp,
}

/// Why a call is not admitted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// The capability is retired.
    Retired,
    /// The job's process is not granted it.
    NotGranted(String),
    /// The day's calls are spent.
    QuotaSpent(u64),
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Refusal::Retired => write!(f, "the capability is retired"),
            Refusal::NotGranted(p) => write!(f, "process {p} is not granted this capability"),
            Refusal::QuotaSpent(q) => write!(f, "the daily quota of {q} calls is spent"),
        }
    }
}

/// Checks a capability name: it is a path segment.
pub fn check_name(name: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if ok {
        Ok(())
    } else {
        Err("a capability name is 1 to 64 letters, digits, '-', '_' or '.'".into())
    }
}

impl Spec {
    /// Why this spec cannot be a capability's, if it cannot.
    pub fn check(&self) -> Result<(), String> {
        match &self.backend {
            Backend::Tesseract { languages } => {
                if self.kind != CapabilityKind::Ocr {
                    return Err("Tesseract serves OCR capabilities only".into());
                }
                let ok = !languages.is_empty()
                    && languages.len() <= 200
                    && languages
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '+'));
                if !ok {
                    return Err("Tesseract languages are names joined by '+', such as eng or chi_sim+eng".into());
                }
            }
            Backend::Http { endpoint, token } => {
                let scheme = endpoint.starts_with("http://") || endpoint.starts_with("https://");
                if !scheme || endpoint.len() > 2048 || endpoint.chars().any(|c| c.is_control() || c == ' ') {
                    return Err("an HTTP capability needs an http:// or https:// endpoint".into());
                }
                if token.len() > 4096 || token.chars().any(char::is_control) {
                    return Err("a capability token is at most 4096 characters, no control characters".into());
                }
            }
        }
        if self.processes.iter().any(|p| p.trim().is_empty()) {
            return Err("a granted process name is empty".into());
        }
        if self.processes.len() > 10_000 {
            return Err("a capability is granted to at most 10000 processes".into());
        }
        if self.daily_quota == Some(0) {
            return Err("a daily quota is at least 1 (leave it out for no limit)".into());
        }
        if !(1..=MAX_TIMEOUT_MS).contains(&self.timeout_ms) {
            return Err(format!("timeoutMs is between 1 and {MAX_TIMEOUT_MS}"));
        }
        Ok(())
    }

    /// Whether the process named `process` is granted it.
    pub fn grants(&self, process: &str) -> bool {
        self.processes.iter().any(|p| p == EVERY_PROCESS || p == process)
    }
}

impl Capability {
    /// Why a job of process `process` may not call it now, with `used`
    /// calls admitted today, if it may not.
    pub fn refusal(&self, process: &str, used: u64) -> Option<Refusal> {
        if self.retired {
            return Some(Refusal::Retired);
        }
        if !self.spec.grants(process) {
            return Some(Refusal::NotGranted(process.to_owned()));
        }
        match self.spec.daily_quota {
            Some(q) if used >= q => Some(Refusal::QuotaSpent(q)),
            _ => None,
        }
    }

    /// As people see it: an HTTP service's token blanked.
    pub fn redacted(&self) -> Capability {
        let mut c = self.clone();
        if let Backend::Http { token, .. } = &mut c.spec.backend
            && !token.is_empty()
        {
            *token = "********".into();
        }
        c
    }
}

impl Mapped for Capability {
    const KIND: &'static Kind = &Kind {
        table: "rpa_ai_capabilities",
        name: "AI capability",
        key: Column::text("name"),
        sealed: true,
        cached: false,
        columns: &[],
    };
    fn key(&self) -> Cell {
        Cell::Text(self.name.clone())
    }
    fn version(&self) -> u64 {
        self.version
    }
    fn cells(&self) -> Vec<Cell> {
        Vec::new()
    }
}

impl Record for Capability {}

/// A capability's calls on one day: admitted (counted against the quota)
/// and refused by the quota.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Usage {
    /// The capability.
    pub capability: String,
    /// The day (days since 1970-01-01 in the server's time zone).
    pub day: i64,
    /// Commit version.
    pub version: u64,
    /// Calls admitted.
    pub calls: u64,
    /// Calls refused because the quota was spent.
    pub refused: u64,
}

impl Usage {
    /// The key of `capability`'s usage on `day`.
    pub fn key_of(capability: &str, day: i64) -> String {
        format!("{capability}@{day}")
    }

    /// No calls yet.
    pub fn new(capability: &str, day: i64) -> Usage {
        Usage {
            capability: capability.to_owned(),
            day,
            version: 0,
            calls: 0,
            refused: 0,
        }
    }
}

impl Mapped for Usage {
    const KIND: &'static Kind = &Kind {
        table: "rpa_ai_usage",
        name: "AI capability usage",
        key: Column::text("key"),
        sealed: false,
        cached: false,
        columns: &[Column::text("capability")],
    };
    fn key(&self) -> Cell {
        Cell::Text(Usage::key_of(&self.capability, self.day))
    }
    fn version(&self) -> u64 {
        self.version
    }
    fn cells(&self) -> Vec<Cell> {
        vec![Cell::Text(self.capability.clone())]
    }
}

impl Record for Usage {}

/// What a call sends to a capability.
#[derive(Debug, Clone)]
pub struct Input {
    /// The bytes (an image for OCR).
    pub bytes: Vec<u8>,
    /// Their media type (`image/png`, `application/json`).
    pub content_type: String,
}

/// Why a capability gave no answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// Its service cannot be reached or is not installed.
    Unavailable(String),
    /// It took longer than the capability's timeout (milliseconds).
    TimedOut(u64),
    /// It answered with an error.
    Failed(String),
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Failure::Unavailable(why) => write!(f, "unavailable: {why}"),
            Failure::TimedOut(ms) => write!(f, "no answer within {ms} ms"),
            Failure::Failed(why) => write!(f, "failed: {why}"),
        }
    }
}

/// A capability's answer: its output as JSON (OCR: `{"text": ...}`).
pub type Answer = Result<serde_json::Value, Failure>;

/// What calls the services behind capabilities: the host's outbound side
/// (processes and HTTP), given to the robot API.
pub trait Service: Send + Sync + 'static {
    /// Calls `capability` with `input`, within its timeout.
    fn call<'a>(
        &'a self,
        capability: &'a Capability,
        input: Input,
    ) -> Pin<Box<dyn Future<Output = Answer> + Send + 'a>>;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ocr(processes: &[&str], quota: Option<u64>) -> Capability {
        Capability {
            name: "ocr".into(),
            version: 1,
            spec: Spec {
                kind: CapabilityKind::Ocr,
                backend: Backend::Tesseract {
                    languages: "eng".into(),
                },
                processes: processes.iter().map(|p| (*p).to_owned()).collect(),
                daily_quota: quota,
                timeout_ms: 1_000,
            },
            retired: false,
            changed_at: Timestamp(0),
        }
    }

    #[test]
    fn a_call_needs_a_grant_and_a_quota_left() {
        let c = ocr(&["invoices"], Some(2));
        assert_eq!(c.refusal("invoices", 0), None);
        assert_eq!(c.refusal("invoices", 1), None);
        assert_eq!(c.refusal("invoices", 2), Some(Refusal::QuotaSpent(2)));
        assert_eq!(c.refusal("payroll", 0), Some(Refusal::NotGranted("payroll".into())));
        let every = ocr(&[EVERY_PROCESS], None);
        assert_eq!(every.refusal("payroll", u64::MAX), None);
        let mut retired = every;
        retired.retired = true;
        assert_eq!(retired.refusal("payroll", 0), Some(Refusal::Retired));
        assert_eq!(
            ocr(&[], None).refusal("invoices", 0),
            Some(Refusal::NotGranted("invoices".into()))
        );
    }

    #[test]
    fn specs_are_checked() {
        let mut s = ocr(&["p"], None).spec;
        assert_eq!(s.check(), Ok(()));
        s.kind = CapabilityKind::Nlp;
        assert!(s.check().unwrap_err().contains("OCR capabilities only"));
        s.kind = CapabilityKind::Ocr;
        s.backend = Backend::Tesseract {
            languages: "eng; rm -rf /".into(),
        };
        assert!(s.check().is_err(), "languages reach a command line");
        s.backend = Backend::Http {
            endpoint: "ftp://x".into(),
            token: String::new(),
        };
        assert!(s.check().is_err());
        s.backend = Backend::Http {
            endpoint: "http://127.0.0.1:9/nlp".into(),
            token: "t".into(),
        };
        assert_eq!(s.check(), Ok(()));
        s.daily_quota = Some(0);
        assert!(s.check().is_err());
        s.daily_quota = None;
        s.timeout_ms = 0;
        assert!(s.check().is_err());
        assert!(check_name("ocr-v2.eng").is_ok());
        assert!(check_name("a/b").is_err() && check_name("").is_err());
    }

    #[test]
    fn tokens_are_never_shown() {
        let mut c = ocr(&["p"], None);
        c.spec.backend = Backend::Http {
            endpoint: "http://h/x".into(),
            token: "secret-token".into(),
        };
        let shown = serde_json::to_string(&c.redacted()).unwrap();
        assert!(!shown.contains("secret-token"), "{shown}");
    }
}
