//! The seed 000 family's envelope and its one error type, shared by the
//! business API ([`crate::business`]) and the administration API
//! ([`crate::admin`]).
//!
//! Envelope `{success, message, code, result, timestamp}` (DESIGN §7):
//! `timestamp` is epoch milliseconds by the engine's clock; `result` is a
//! JSON value, present only on success. Every failure is a [`BusinessError`]:
//!
//! | error | HTTP | `code` |
//! |---|---|---|
//! | [`BusinessError::Refused`]: a business failure (bad input, a limit, not found, not allowed) | 200 | 500 |
//! | [`BusinessError::Unauthenticated`]: missing, wrong or expired `X-Access-Token` | 401 | 401 |
//! | [`BusinessError::Body`]: a body too large or unreadable | 413 / 400 | 500 |
//! | [`BusinessError::NoRoute`]: no such path (404) or method (405) | 404 / 405 | 404 / 405 |
//! | [`BusinessError::Internal`]: the server failed (logged, never shown) | 500 | 500 |

use std::borrow::Cow;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use rpa_core::Store;
use rpa_core::error::Error;
use rpa_core::model::User;
use serde::Serialize;
use utoipa::ToSchema;

use crate::AppState;
use crate::clock::now_ms;
use crate::wire::Fields;

/// The seed 000 envelope around a `result` of type `T`.
#[derive(Debug, Serialize, ToSchema)]
pub struct Envelope<T> {
    /// Whether the call succeeded.
    pub success: bool,
    /// What happened, in words.
    pub message: String,
    /// 200 on success; 500 for a refused call, 401 for a bad token, 404/405 for no such endpoint.
    pub code: i32,
    /// The answer (success only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub result: Option<T>,
    /// Epoch milliseconds.
    pub timestamp: i64,
}

/// A successful seed 000 answer: HTTP 200, `code` 200.
#[derive(Debug)]
pub struct Done<T> {
    message: Cow<'static, str>,
    result: Option<T>,
}

impl<T> Done<T> {
    /// Success with a result.
    pub fn ok(result: T) -> Done<T> {
        Done {
            message: "success".into(),
            result: Some(result),
        }
    }
}

impl Done<()> {
    /// Success without a result, saying `message`.
    pub fn said(message: impl Into<Cow<'static, str>>) -> Done<()> {
        Done {
            message: message.into(),
            result: None,
        }
    }
}

impl<T: Serialize> IntoResponse for Done<T> {
    fn into_response(self) -> Response {
        let body = Envelope {
            success: true,
            message: self.message.into_owned(),
            code: 200,
            result: self.result,
            timestamp: now_ms(),
        };
        (StatusCode::OK, axum::Json(body)).into_response()
    }
}

/// A seed 000 answer.
pub type Answer<T> = Result<Done<T>, BusinessError>;

/// Every way a seed 000 (or administration) call fails.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BusinessError {
    /// Refused: the message says why (HTTP 200, `code` 500).
    #[error("{0}")]
    Refused(String),
    /// No valid `X-Access-Token` (HTTP 401).
    #[error("invalid or expired X-Access-Token; log in again")]
    Unauthenticated,
    /// The body could not be read (its HTTP status: 413 too large, 400 otherwise).
    #[error("cannot read the request body: {1}")]
    Body(StatusCode, String),
    /// No endpoint for this path (404) or method (405).
    #[error("{1}")]
    NoRoute(StatusCode, String),
    /// The server failed; the details are in its log.
    #[error("internal error")]
    Internal,
}

impl BusinessError {
    /// A refusal saying `why`.
    pub fn refused(why: impl Into<String>) -> BusinessError {
        BusinessError::Refused(why.into())
    }

    fn status_and_code(&self) -> (StatusCode, i32) {
        match self {
            BusinessError::Refused(_) => (StatusCode::OK, 500),
            BusinessError::Unauthenticated => (StatusCode::UNAUTHORIZED, 401),
            BusinessError::Body(s, _) => (*s, 500),
            BusinessError::NoRoute(s, _) => (*s, i32::from(s.as_u16())),
            BusinessError::Internal => (StatusCode::INTERNAL_SERVER_ERROR, 500),
        }
    }
}

impl From<Error> for BusinessError {
    fn from(e: Error) -> BusinessError {
        match e {
            Error::Unauthenticated => BusinessError::Unauthenticated,
            e if e.is_client_error() => BusinessError::Refused(e.to_string()),
            e => {
                tracing::error!(error = %e, "business API internal error");
                BusinessError::Internal
            }
        }
    }
}

impl From<crate::wire::Bad> for BusinessError {
    fn from(why: crate::wire::Bad) -> BusinessError {
        BusinessError::Refused(why)
    }
}

impl IntoResponse for BusinessError {
    fn into_response(self) -> Response {
        let (status, code) = self.status_and_code();
        let body: Envelope<()> = Envelope {
            success: false,
            message: self.to_string(),
            code,
            result: None,
            timestamp: now_ms(),
        };
        (status, axum::Json(body)).into_response()
    }
}

/// Reads the body as a JSON object; oversize and malformed bodies are errors.
pub(crate) fn fields(body: Result<Bytes, BytesRejection>) -> Result<Fields, BusinessError> {
    let bytes = body.map_err(|r| BusinessError::Body(r.status(), r.body_text()))?;
    Ok(Fields::parse(&bytes)?)
}

/// The user behind `X-Access-Token`.
pub(crate) async fn session<S: Store>(st: &AppState<S>, headers: &HeaderMap) -> Result<User, BusinessError> {
    let token = headers
        .get("x-access-token")
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .unwrap_or("");
    if token.is_empty() {
        return Err(BusinessError::Unauthenticated);
    }
    Ok(st.engine.authenticate(token).await?)
}
