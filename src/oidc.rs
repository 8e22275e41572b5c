//! Single sign-on for the console with OpenID Connect (seed 001 §6.3.2 a;
//! the rules are in [`rpa_core::identity`]): the authorisation code flow
//! with PKCE (S256) against the provider the configuration names, its
//! endpoints read from its discovery document. The ID token comes straight
//! from the token endpoint over the server's own connection, so (as OpenID
//! Connect Core §3.1.3.7 allows) its issuer, audience, expiry and nonce are
//! checked and its signature is not; the user's name and groups come from
//! the userinfo endpoint. Neither the client secret nor any token is
//! logged.

use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rpa_adapters_http::config::OidcDef;
use rpa_adapters_http::sso::{Claims, Sso, SsoFuture, Started};
use rpa_core::identity::GroupMapping;
use serde_json::Value;
use sha2::{Digest, Sha256};
use tokio::sync::OnceCell;

/// The provider's endpoints.
#[derive(Debug, Clone)]
struct Discovery {
    issuer: String,
    authorization_endpoint: String,
    token_endpoint: String,
    userinfo_endpoint: String,
}

/// The provider an [`OidcDef`] names.
pub struct Oidc {
    def: OidcDef,
    redirect_uri: String,
    client: reqwest::Client,
    discovery: OnceCell<Discovery>,
}

impl Oidc {
    /// The provider of `def`; the browser comes back to `public_url` + `/console/oidc/callback`.
    pub fn new(def: OidcDef, public_url: &str) -> Result<Oidc, String> {
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| e.to_string())?;
        Ok(Oidc {
            redirect_uri: format!("{}/console/oidc/callback", public_url.trim_end_matches('/')),
            def,
            client,
            discovery: OnceCell::new(),
        })
    }

    async fn discovery(&self) -> Result<&Discovery, String> {
        self.discovery
            .get_or_try_init(|| async {
                let url = format!(
                    "{}/.well-known/openid-configuration",
                    self.def.issuer.trim_end_matches('/')
                );
                let v: Value = self
                    .client
                    .get(&url)
                    .send()
                    .await
                    .and_then(|r| r.error_for_status())
                    .map_err(|e| format!("the provider's discovery document: {}", e.without_url()))?
                    .json()
                    .await
                    .map_err(|e| format!("the provider's discovery document: {e}"))?;
                let field = |k: &str| {
                    v[k].as_str()
                        .map(str::to_owned)
                        .ok_or_else(|| format!("the provider's discovery document has no {k}"))
                };
                let d = Discovery {
                    issuer: field("issuer")?,
                    authorization_endpoint: field("authorization_endpoint")?,
                    token_endpoint: field("token_endpoint")?,
                    userinfo_endpoint: field("userinfo_endpoint")?,
                };
                if d.issuer.trim_end_matches('/') != self.def.issuer.trim_end_matches('/') {
                    return Err(format!("the provider says its issuer is {}", d.issuer));
                }
                Ok(d)
            })
            .await
    }

    async fn finish_inner(&self, code: &str, verifier: &str, nonce: &str) -> Result<Claims, String> {
        let d = self.discovery().await?;
        let form = [
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", self.redirect_uri.as_str()),
            ("code_verifier", verifier),
            ("client_id", self.def.client_id.as_str()),
        ];
        let mut request = self.client.post(&d.token_endpoint);
        if let Some(secret) = &self.def.client_secret {
            request = request.basic_auth(&self.def.client_id, Some(secret));
        }
        let answer = request
            .form(&form)
            .send()
            .await
            .map_err(|e| format!("the token endpoint: {}", e.without_url()))?;
        let status = answer.status();
        let body: Value = answer
            .json()
            .await
            .map_err(|e| format!("the token endpoint's answer: {e}"))?;
        if !status.is_success() {
            return Err(format!(
                "the token endpoint refused the code ({status}: {})",
                body["error"].as_str().unwrap_or("no reason")
            ));
        }
        let id_token = body["id_token"].as_str().ok_or("the token endpoint gave no id_token")?;
        let access_token = body["access_token"]
            .as_str()
            .ok_or("the token endpoint gave no access_token")?;
        let claims = payload(id_token)?;
        check_id_token(
            &claims,
            &d.issuer,
            &self.def.client_id,
            nonce,
            chrono::Utc::now().timestamp(),
        )?;
        let subject = claims["sub"].as_str().ok_or("the id_token has no sub")?.to_owned();
        let info: Value = self
            .client
            .get(&d.userinfo_endpoint)
            .bearer_auth(access_token)
            .send()
            .await
            .and_then(|r| r.error_for_status())
            .map_err(|e| format!("the userinfo endpoint: {}", e.without_url()))?
            .json()
            .await
            .map_err(|e| format!("the userinfo endpoint's answer: {e}"))?;
        if info["sub"].as_str() != Some(subject.as_str()) {
            return Err("the userinfo endpoint answered for another subject".into());
        }
        let username = info[self.def.username_claim.as_str()]
            .as_str()
            .filter(|s| !s.trim().is_empty())
            .ok_or_else(|| format!("the provider gave no {}", self.def.username_claim))?
            .to_owned();
        let groups = match &info[self.def.groups_claim.as_str()] {
            Value::Array(a) => a.iter().filter_map(|g| g.as_str().map(str::to_owned)).collect(),
            Value::String(s) => vec![s.clone()],
            _ => Vec::new(),
        };
        Ok(Claims {
            issuer: d.issuer.clone(),
            subject,
            username,
            groups,
        })
    }
}

/// The claims of a JWT (its payload, not verified here).
fn payload(jwt: &str) -> Result<Value, String> {
    let part = jwt.split('.').nth(1).ok_or("the id_token is not a JWT")?;
    let bytes = URL_SAFE_NO_PAD
        .decode(part.trim_end_matches('='))
        .map_err(|_| "the id_token's payload is not base64url")?;
    serde_json::from_slice(&bytes).map_err(|_| "the id_token's payload is not JSON".into())
}

/// OpenID Connect Core §3.1.3.7: issuer, audience, expiry and nonce.
fn check_id_token(c: &Value, issuer: &str, client_id: &str, nonce: &str, now: i64) -> Result<(), String> {
    if c["iss"].as_str() != Some(issuer) {
        return Err("the id_token is from another issuer".into());
    }
    let aud_ok = match &c["aud"] {
        Value::String(a) => a == client_id,
        Value::Array(a) => a.iter().any(|x| x.as_str() == Some(client_id)),
        _ => false,
    };
    if !aud_ok {
        return Err("the id_token is for another client".into());
    }
    if c["exp"].as_i64().is_none_or(|exp| exp < now - 60) {
        return Err("the id_token has expired".into());
    }
    if c["nonce"].as_str() != Some(nonce) {
        return Err("the id_token's nonce is not this login's".into());
    }
    Ok(())
}

impl Sso for Oidc {
    fn begin(&self) -> SsoFuture<'_, Started> {
        Box::pin(async move {
            let d = self.discovery().await?;
            let (state, _) = rpa_core::auth::new_token();
            let (nonce, _) = rpa_core::auth::new_token();
            let (verifier, _) = rpa_core::auth::new_token();
            let challenge = URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()));
            let mut url = reqwest::Url::parse(&d.authorization_endpoint)
                .map_err(|e| format!("the provider's authorization endpoint: {e}"))?;
            url.query_pairs_mut()
                .append_pair("response_type", "code")
                .append_pair("client_id", &self.def.client_id)
                .append_pair("redirect_uri", &self.redirect_uri)
                .append_pair("scope", &self.def.scopes)
                .append_pair("state", &state)
                .append_pair("nonce", &nonce)
                .append_pair("code_challenge", &challenge)
                .append_pair("code_challenge_method", "S256");
            Ok(Started {
                url: url.to_string(),
                state,
                verifier,
                nonce,
            })
        })
    }

    fn finish<'a>(&'a self, code: &'a str, verifier: &'a str, nonce: &'a str) -> SsoFuture<'a, Claims> {
        Box::pin(async move {
            let out = self.finish_inner(code, verifier, nonce).await;
            if let Err(why) = &out {
                tracing::warn!(error = %why, "single sign-on refused");
            }
            out
        })
    }

    fn mappings(&self) -> &[GroupMapping] {
        &self.def.groups
    }

    fn label(&self) -> &str {
        &self.def.label
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn an_id_token_is_checked_for_issuer_audience_expiry_and_nonce() {
        let good = json!({"iss": "https://idp", "aud": ["rpa"], "exp": 2_000, "nonce": "n1", "sub": "u"});
        assert!(check_id_token(&good, "https://idp", "rpa", "n1", 1_000).is_ok());
        assert!(check_id_token(&good, "https://other", "rpa", "n1", 1_000).is_err());
        assert!(check_id_token(&good, "https://idp", "else", "n1", 1_000).is_err());
        assert!(check_id_token(&good, "https://idp", "rpa", "n2", 1_000).is_err());
        assert!(check_id_token(&good, "https://idp", "rpa", "n1", 3_000).is_err());
        let jwt = format!("h.{}.s", URL_SAFE_NO_PAD.encode(serde_json::to_vec(&good).unwrap()));
        assert_eq!(payload(&jwt).unwrap(), good);
        assert!(payload("not a jwt").is_err());
    }
}
