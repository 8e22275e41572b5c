//! The services behind AI capabilities ([`rpa_core::ai`]): Tesseract run
//! as a process on this server (OCR), and HTTP services. The robot API
//! admits a call (grant, quota, audit) and then asks [`Services`].
//!
//! - Tesseract: `tesseract stdin stdout -l <languages>`, the image on its
//!   standard input, the text on its standard output; at most
//!   [`TESSERACT_AT_ONCE`] at a time, killed past the capability's timeout.
//!   Not installed: the call answers "unavailable" (`apt-get install
//!   tesseract-ocr`).
//! - HTTP: the input POSTed to the endpoint with its content type and, when
//!   the capability has a token, `Authorization: Bearer <token>` (never
//!   logged). A JSON answer is the output; any other 2xx answer becomes
//!   `{"text": <body>}`; another status is a failure.

use std::future::Future;
use std::pin::Pin;
use std::process::Stdio;
use std::time::Duration;

use rpa_core::ai::{Answer, Backend, Capability, Failure, Input, Service};
use serde_json::{Value, json};
use tokio::io::AsyncWriteExt;
use tokio::sync::Semaphore;

/// Most Tesseract processes at once.
pub const TESSERACT_AT_ONCE: usize = 4;
/// Largest answer read from a service.
const MAX_ANSWER: usize = 16 * 1024 * 1024;

/// Calls Tesseract and HTTP services.
#[derive(Debug)]
pub struct Services {
    http: reqwest::Client,
    tesseract: String,
    running: Semaphore,
}

impl Default for Services {
    fn default() -> Self {
        Services::new("tesseract")
    }
}

impl Services {
    /// Services that run Tesseract as `program` (a name on `PATH` or a path).
    pub fn new(program: &str) -> Services {
        Services {
            http: reqwest::Client::new(),
            tesseract: program.to_owned(),
            running: Semaphore::new(TESSERACT_AT_ONCE),
        }
    }

    async fn tesseract(&self, languages: &str, input: Input) -> Answer {
        let _turn = self
            .running
            .acquire()
            .await
            .map_err(|_| Failure::Unavailable("shutting down".into()))?;
        let mut child = tokio::process::Command::new(&self.tesseract)
            .args(["stdin", "stdout", "-l", languages])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| match e.kind() {
                std::io::ErrorKind::NotFound => {
                    Failure::Unavailable(format!("{} is not installed on this server", self.tesseract))
                }
                _ => Failure::Unavailable(format!("cannot start {}: {e}", self.tesseract)),
            })?;
        let mut stdin = child
            .stdin
            .take()
            .ok_or_else(|| Failure::Failed("no standard input".into()))?;
        // Written beside the wait: Tesseract reads all of it before it answers.
        let write = async move {
            let _ = stdin.write_all(&input.bytes).await;
            drop(stdin);
        };
        let (_, out) = tokio::join!(write, child.wait_with_output());
        let out = out.map_err(|e| Failure::Failed(format!("tesseract: {e}")))?;
        if !out.status.success() {
            let err = String::from_utf8_lossy(&out.stderr);
            let why = err.lines().rev().find(|l| !l.trim().is_empty()).unwrap_or("no message");
            return Err(Failure::Failed(format!("tesseract exited with {}: {why}", out.status)));
        }
        let text = String::from_utf8_lossy(&out.stdout).trim_end().to_owned();
        Ok(json!({ "text": text }))
    }

    async fn post(&self, endpoint: &str, token: &str, input: Input) -> Answer {
        let mut req = self
            .http
            .post(endpoint)
            .header(reqwest::header::CONTENT_TYPE, input.content_type)
            .body(input.bytes);
        if !token.is_empty() {
            req = req.bearer_auth(token);
        }
        // Without the endpoint: it is the administrator's, and may carry
        // credentials in its user part.
        let resp = req.send().await.map_err(|e| Failure::Unavailable(without_url(&e)))?;
        let status = resp.status();
        let json_answer = resp
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|t| t.contains("json"));
        let body = resp
            .bytes()
            .await
            .map_err(|e| Failure::Failed(format!("reading the answer: {}", without_url(&e))))?;
        if body.len() > MAX_ANSWER {
            return Err(Failure::Failed(format!("the answer is over {MAX_ANSWER} bytes")));
        }
        if status.is_server_error() && status != reqwest::StatusCode::INTERNAL_SERVER_ERROR {
            return Err(Failure::Unavailable(format!("the service answered {status}")));
        }
        if !status.is_success() {
            let text = String::from_utf8_lossy(&body);
            return Err(Failure::Failed(format!(
                "the service answered {status}: {}",
                text.chars().take(200).collect::<String>()
            )));
        }
        if json_answer {
            serde_json::from_slice::<Value>(&body)
                .map_err(|e| Failure::Failed(format!("the service's JSON does not parse: {e}")))
        } else {
            Ok(json!({ "text": String::from_utf8_lossy(&body) }))
        }
    }
}

/// A request error and its causes (`connection refused`), without the URL.
fn without_url(e: &reqwest::Error) -> String {
    let mut text = e.to_string();
    if let Some(i) = text.find(" for url (") {
        text.truncate(i);
    }
    let mut cause = std::error::Error::source(e);
    while let Some(c) = cause {
        let c_text = c.to_string();
        if !c_text.contains("://") {
            text.push_str(": ");
            text.push_str(&c_text);
        }
        cause = c.source();
    }
    text
}

impl Service for Services {
    fn call<'a>(
        &'a self,
        capability: &'a Capability,
        input: Input,
    ) -> Pin<Box<dyn Future<Output = Answer> + Send + 'a>> {
        Box::pin(async move {
            let ms = capability.spec.timeout_ms;
            let work = async {
                match &capability.spec.backend {
                    Backend::Tesseract { languages } => self.tesseract(languages, input).await,
                    Backend::Http { endpoint, token } => self.post(endpoint, token, input).await,
                }
            };
            match tokio::time::timeout(Duration::from_millis(ms), work).await {
                Ok(answer) => answer,
                Err(_) => Err(Failure::TimedOut(ms)),
            }
        })
    }
}
