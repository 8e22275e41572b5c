//! Single sign-on for the console (seed 001 §6.3.2 a; the rules are in
//! [`rpa_core::identity`], the OpenID Connect client is the server's).
//!
//! | method, path | who | answer |
//! |---|---|---|
//! | `GET /console/api/sso` | anyone | `{enabled, label}`: whether the login form offers single sign-on |
//! | `GET /console/oidc/login` | a browser | 302 to the provider's authorisation endpoint (a fresh `state`, `nonce` and PKCE verifier kept by the server for ten minutes) |
//! | `GET /console/oidc/callback?code=&state=` | the browser, back from the provider | the console page, signed in: its session token is in the page (never in a URL), which the console moves to the tab's `sessionStorage` |
//!
//! A callback with an unknown, used or expired `state`, an `error` from the
//! provider, or claims the provider does not vouch for gives the console's
//! login form with the reason. The user is the provider's user name; its
//! grants come from its groups through the configuration's mappings, as
//! for the LDAP directory; a user in no mapped group is refused.

use std::future::Future;
use std::pin::Pin;

use axum::Router;
use axum::extract::{Query, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use rpa_core::Store;
use rpa_core::identity::GroupMapping;
use serde::Deserialize;
use serde_json::json;

use crate::AppState;
use crate::console::{CSP, INDEX};

/// A future an [`Sso`] answers with (`Err`: a reason fit for the user).
pub type SsoFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, String>> + Send + 'a>>;

/// A login begun: where to send the browser, and what to keep.
#[derive(Debug, Clone)]
pub struct Started {
    /// The provider's authorisation URL, with the parameters.
    pub url: String,
    /// `state`.
    pub state: String,
    /// The PKCE verifier (secret).
    pub verifier: String,
    /// `nonce`.
    pub nonce: String,
}

/// Who the provider says signed in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claims {
    /// The provider.
    pub issuer: String,
    /// Its subject id.
    pub subject: String,
    /// The user name.
    pub username: String,
    /// The groups.
    pub groups: Vec<String>,
}

/// An OpenID Connect provider.
pub trait Sso: Send + Sync {
    /// Begins a login.
    fn begin(&self) -> SsoFuture<'_, Started>;
    /// Trades `code` for the user's claims.
    fn finish<'a>(&'a self, code: &'a str, verifier: &'a str, nonce: &'a str) -> SsoFuture<'a, Claims>;
    /// What the groups get.
    fn mappings(&self) -> &[GroupMapping];
    /// The login form's button.
    fn label(&self) -> &str;
}

/// The routes.
pub fn router<S: Store>() -> Router<AppState<S>> {
    Router::new()
        .route("/console/api/sso", get(status::<S>))
        .route("/console/oidc/login", get(login::<S>))
        .route("/console/oidc/callback", get(callback::<S>))
}

async fn status<S: Store>(State(st): State<AppState<S>>) -> Response {
    let (enabled, label) = match &st.sso {
        Some(s) => (true, s.label().to_owned()),
        None => (false, String::new()),
    };
    axum::Json(json!({"success": true, "code": 200, "message": "success",
        "result": {"enabled": enabled, "label": label}, "timestamp": st.engine.now().0}))
    .into_response()
}

/// The console's page, carrying `name` = `value` for its script.
fn page(name: &str, value: &str) -> Response {
    let escaped: String = value
        .chars()
        .map(|c| match c {
            '&' => "&amp;".to_owned(),
            '"' => "&quot;".to_owned(),
            '<' => "&lt;".to_owned(),
            '>' => "&gt;".to_owned(),
            c => c.to_string(),
        })
        .collect();
    let body = INDEX.replacen(
        "<head>",
        &format!("<head>\n<meta name=\"{name}\" content=\"{escaped}\">"),
        1,
    );
    let mut r = (StatusCode::OK, body).into_response();
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    h.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CSP));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    r
}

fn refused(why: &str) -> Response {
    page("rpa-sso-error", why)
}

async fn login<S: Store>(State(st): State<AppState<S>>) -> Response {
    let Some(sso) = &st.sso else {
        return refused("single sign-on is not configured");
    };
    let started = match sso.begin().await {
        Ok(s) => s,
        Err(why) => {
            tracing::warn!(error = %why, "single sign-on cannot begin");
            return refused("the sign-on provider cannot be reached; try again later");
        }
    };
    if let Err(e) = st
        .engine
        .begin_sso(&started.state, &started.verifier, &started.nonce)
        .await
    {
        tracing::error!(error = %e, "single sign-on: keeping the login");
        return refused("internal error");
    }
    let mut r = StatusCode::FOUND.into_response();
    if let Ok(v) = HeaderValue::from_str(&started.url) {
        r.headers_mut().insert(header::LOCATION, v);
    }
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

/// The provider's answer.
#[derive(Debug, Deserialize)]
struct Back {
    code: Option<String>,
    state: Option<String>,
    error: Option<String>,
    error_description: Option<String>,
}

async fn callback<S: Store>(State(st): State<AppState<S>>, Query(b): Query<Back>) -> Response {
    let Some(sso) = &st.sso else {
        return refused("single sign-on is not configured");
    };
    if let Some(e) = &b.error {
        let why = b.error_description.as_deref().unwrap_or(e);
        return refused(&format!("the sign-on provider refused: {why}"));
    }
    let (Some(code), Some(state)) = (&b.code, &b.state) else {
        return refused("the sign-on provider sent no code");
    };
    let login = match st.engine.take_sso(state).await {
        Ok(l) => l,
        Err(e) => return refused(&e.to_string()),
    };
    let claims = match sso.finish(code, &login.verifier, &login.nonce).await {
        Ok(c) => c,
        Err(_) => return refused("the sign-on provider's answer was refused (the server's log says why)"),
    };
    let account = rpa_core::identity::Account {
        login: claims.username.clone(),
        dn: rpa_core::identity::sso_name(&claims.issuer, &claims.subject),
        groups: claims.groups.into_iter().collect(),
        disabled: false,
    };
    match st.engine.sso_login(&account, sso.mappings()).await {
        Ok(token) => page("rpa-sso", &token),
        Err(e) if e.is_client_error() => refused(&e.to_string()),
        Err(e) => {
            tracing::error!(error = %e, "single sign-on");
            refused("internal error")
        }
    }
}
