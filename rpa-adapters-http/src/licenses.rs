//! Robot licenses over HTTP (administration; the rules are in
//! [`rpa_core::license`]). Every call needs the `X-Access-Token` of a user
//! whose role grants ManageRobots; answers use the seed 000 envelope.
//!
//! | method, path | body → answer |
//! |---|---|
//! | `POST /admin/licenses` | [`LicenseDef`] → [`LicenseInfo`] |
//! | `GET /admin/licenses` | → `[LicenseInfo]` (retired ones included) |
//! | `PUT /admin/licenses/{name}` | the new terms ([`LicenseDef`] without `name`): a renewal; its robots are sent `SendLicense` |
//! | `DELETE /admin/licenses/{name}` | → the retired license; its robots are sent `Error` |
//! | `POST /admin/licenses/{name}/bind` | `{robotId}` → the license; the robot is sent `SendLicense` |
//! | `POST /admin/licenses/{name}/unbind` | `{robotId}` → the license; the robot is sent `Error` |
//!
//! Times (`expiresAt`) are `yyyy-MM-dd HH:mm:ss` in the server's time zone,
//! as everywhere in the seed 000 family.

use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::routing::{post, put};
use rpa_core::license::{License, Terms};
use rpa_core::model::{Actor, Permission};
use rpa_core::time::Timestamp;
use rpa_core::{Engine, Store};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

use crate::AppState;
use crate::admin::admin;
use crate::seed000::{Answer, BusinessError, Done, Envelope, fields};

/// The license routes.
pub fn router<S: Store>() -> Router<AppState<S>> {
    Router::new()
        .route("/admin/licenses", post(create::<S>).get(list::<S>))
        .route("/admin/licenses/{name}", put(renew::<S>).delete(retire::<S>))
        .route("/admin/licenses/{name}/bind", post(bind::<S>))
        .route("/admin/licenses/{name}/unbind", post(unbind::<S>))
}

/// A license as an administrator gives it (also the configuration's
/// `licenses` entries).
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct LicenseDef {
    /// Its name (taken from the path on renewal).
    #[serde(default)]
    pub name: String,
    /// Sent to robots as `licenseContent`.
    pub content: String,
    /// Only robots of this vendor may hold it.
    pub vendor: Option<String>,
    /// `yyyy-MM-dd HH:mm:ss`: from then on its robots get no work.
    pub expires_at: Option<String>,
    /// Only these robot ids may hold it (none: any).
    #[serde(default)]
    pub robots: Vec<String>,
    /// How many robots may hold it at once (default 1).
    #[serde(default = "one")]
    pub seats: u32,
}

fn one() -> u32 {
    1
}

impl LicenseDef {
    /// Its terms, times read in the engine's zone.
    pub fn terms<S: Store>(&self, engine: &Engine<S>) -> Result<Terms, String> {
        let expires_at = match self.expires_at.as_deref() {
            None | Some("") => None,
            Some(s) => Some(
                Timestamp::parse_local(s, engine.config().time_zone)
                    .ok_or_else(|| format!("expiresAt {s:?} is not yyyy-MM-dd HH:mm:ss"))?,
            ),
        };
        Ok(Terms {
            content: self.content.clone(),
            vendor: self.vendor.clone().filter(|v| !v.is_empty()),
            expires_at,
            robots: self.robots.clone(),
            seats: self.seats,
        })
    }
}

/// A license.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct LicenseInfo {
    /// Its name.
    pub name: String,
    /// Its content.
    pub content: String,
    /// Only robots of this vendor may hold it.
    pub vendor: Option<String>,
    /// When it stops counting (`yyyy-MM-dd HH:mm:ss`), if ever.
    pub expires_at: Option<String>,
    /// Whether it has expired.
    pub expired: bool,
    /// The robot ids that may hold it (empty: any).
    pub robots: Vec<String>,
    /// Seats.
    pub seats: u32,
    /// The robots holding it.
    pub bound: Vec<String>,
    /// Retired.
    pub retired: bool,
    /// Created or last renewed.
    pub changed_at: String,
}

fn info<S: Store>(st: &AppState<S>, l: License) -> LicenseInfo {
    let zone = st.engine.config().time_zone;
    let now = st.engine.now();
    LicenseInfo {
        expired: l.terms.expired(now),
        expires_at: l.terms.expires_at.map(|t| t.format_local(zone)),
        changed_at: l.changed_at.format_local(zone),
        name: l.name,
        content: l.terms.content,
        vendor: l.terms.vendor,
        robots: l.terms.robots,
        seats: l.terms.seats,
        bound: l.bound,
        retired: l.retired,
    }
}

fn def(body: Result<Bytes, BytesRejection>) -> Result<LicenseDef, BusinessError> {
    let f = fields(body)?;
    serde_json::from_value(Value::Object(f.0)).map_err(|e| BusinessError::refused(format!("invalid license: {e}")))
}

/// Creates a license.
#[utoipa::path(post, path = "/admin/licenses", tag = "admin",
    params(("X-Access-Token" = String, Header, description = "an administrator's session")),
    request_body = LicenseDef,
    responses((status = 200, description = "the license", body = Envelope<LicenseInfo>)))]
pub(crate) async fn create<S: Store>(
    State(st): State<AppState<S>>,
    h: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Answer<LicenseInfo> {
    let me = admin(&st, &h, Permission::ManageRobots).await?;
    let d = def(body)?;
    let terms = d.terms(&st.engine).map_err(BusinessError::refused)?;
    let l = st.engine.create_license(Actor::User(me.id), &d.name, terms).await?;
    Ok(Done::ok(info(&st, l)))
}

/// Every license.
#[utoipa::path(get, path = "/admin/licenses", tag = "admin",
    params(("X-Access-Token" = String, Header, description = "an administrator's session")),
    responses((status = 200, description = "the licenses", body = Envelope<Vec<LicenseInfo>>)))]
pub(crate) async fn list<S: Store>(State(st): State<AppState<S>>, h: HeaderMap) -> Answer<Vec<LicenseInfo>> {
    admin(&st, &h, Permission::ManageRobots).await?;
    let all = st.engine.licenses().await?;
    Ok(Done::ok(all.into_iter().map(|l| info(&st, l)).collect()))
}

/// Renews a license: new terms; its robots are sent the new content.
#[utoipa::path(put, path = "/admin/licenses/{name}", tag = "admin",
    params(("X-Access-Token" = String, Header, description = "an administrator's session"),
        ("name" = String, Path, description = "the license")),
    request_body = LicenseDef,
    responses((status = 200, description = "the license", body = Envelope<LicenseInfo>)))]
pub(crate) async fn renew<S: Store>(
    State(st): State<AppState<S>>,
    h: HeaderMap,
    Path(name): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> Answer<LicenseInfo> {
    let me = admin(&st, &h, Permission::ManageRobots).await?;
    let d = def(body)?;
    if !d.name.is_empty() && d.name != name {
        return Err(BusinessError::refused("a license cannot be renamed"));
    }
    let terms = d.terms(&st.engine).map_err(BusinessError::refused)?;
    let l = st.engine.renew_license(Actor::User(me.id), &name, terms).await?;
    Ok(Done::ok(info(&st, l)))
}

/// Retires a license: its robots lose it and are sent Error.
#[utoipa::path(delete, path = "/admin/licenses/{name}", tag = "admin",
    params(("X-Access-Token" = String, Header, description = "an administrator's session"),
        ("name" = String, Path, description = "the license")),
    responses((status = 200, description = "the retired license", body = Envelope<LicenseInfo>)))]
pub(crate) async fn retire<S: Store>(
    State(st): State<AppState<S>>,
    h: HeaderMap,
    Path(name): Path<String>,
) -> Answer<LicenseInfo> {
    let me = admin(&st, &h, Permission::ManageRobots).await?;
    let l = st.engine.retire_license(Actor::User(me.id), &name).await?;
    Ok(Done::ok(info(&st, l)))
}

/// Binds a license to a robot, which is sent SendLicense.
#[utoipa::path(post, path = "/admin/licenses/{name}/bind", tag = "admin",
    params(("X-Access-Token" = String, Header, description = "an administrator's session"),
        ("name" = String, Path, description = "the license")),
    request_body(content = Object, description = "{robotId}"),
    responses((status = 200, description = "the license", body = Envelope<LicenseInfo>)))]
pub(crate) async fn bind<S: Store>(
    State(st): State<AppState<S>>,
    h: HeaderMap,
    Path(name): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> Answer<LicenseInfo> {
    binding(st, h, name, body, true).await
}

/// Takes a license from a robot, which is sent Error.
#[utoipa::path(post, path = "/admin/licenses/{name}/unbind", tag = "admin",
    params(("X-Access-Token" = String, Header, description = "an administrator's session"),
        ("name" = String, Path, description = "the license")),
    request_body(content = Object, description = "{robotId}"),
    responses((status = 200, description = "the license", body = Envelope<LicenseInfo>)))]
pub(crate) async fn unbind<S: Store>(
    State(st): State<AppState<S>>,
    h: HeaderMap,
    Path(name): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> Answer<LicenseInfo> {
    binding(st, h, name, body, false).await
}

/// Binds (`bind`) or unbinds license `name` and the body's `robotId`.
async fn binding<S: Store>(
    st: AppState<S>,
    h: HeaderMap,
    name: String,
    body: Result<Bytes, BytesRejection>,
    bind: bool,
) -> Answer<LicenseInfo> {
    let me = admin(&st, &h, Permission::ManageRobots).await?;
    let robot = fields(body)?.str("robotId")?.to_owned();
    let actor = Actor::User(me.id);
    let l = if bind {
        st.engine.bind_license_to(actor, &name, &robot).await?
    } else {
        st.engine.unbind_license(actor, &name, &robot).await?
    };
    Ok(Done::ok(info(&st, l)))
}
