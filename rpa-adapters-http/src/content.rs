//! The operations centre's content over HTTP (seed 001 §6.4.3; the rules
//! are in [`rpa_core::content`]): news, courses and the knowledge base,
//! and the hot applications.
//!
//! | method, path | who | body, query → answer |
//! |---|---|---|
//! | `GET /admin/content` | a session | `section` (`news`, `course`, `knowledge`; default all), `q` (words: every one must start a word of the title, tags or body; best match first; default: the newest), `limit` (1..200, default 50) → `[ArticleView]` |
//! | `GET /admin/content/{id}` | a session | → [`ArticleView`] |
//! | `POST /admin/content` | ManageContent | [`ArticleDef`] → [`ArticleView`] |
//! | `PUT /admin/content/{id}` | ManageContent | [`ArticleDef`] → [`ArticleView`] |
//! | `DELETE /admin/content/{id}` | ManageContent | → the removed [`ArticleView`]: no longer listed nor found |
//! | `GET /admin/content/hot` | a session: the processes it may see, and the catalogue | `days` (1..366, default 30), `limit` (1..100, default 10) → `[{name, listingId?, runs, successful, subscriptions, score}]`, hottest first |
//!
//! Bad input (an unknown section, a title of no or more than 200
//! characters, a link that is not http(s), a malformed number) answers
//! HTTP 200 with `code` 500 and the reason in `message`; an unknown or
//! removed article the same, "article N not found"; no session 401.

use std::collections::HashMap;

use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::routing::get;
use rpa_core::Store;
use rpa_core::content::{Article, Draft, Hot, Section};
use rpa_core::model::{Actor, Permission};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

use crate::AppState;
use crate::admin::admin;
use crate::console::visible;
use crate::seed000::{Answer, BusinessError, Done, Envelope, fields, session};

/// The routes.
pub fn router<S: Store>() -> Router<AppState<S>> {
    Router::new()
        .route("/admin/content", get(list::<S>).post(publish::<S>))
        .route("/admin/content/hot", get(hot::<S>))
        .route(
            "/admin/content/{id}",
            get(one::<S>).put(change::<S>).delete(remove::<S>),
        )
}

/// An article as the API shows it.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ArticleView {
    /// Its id.
    pub id: i64,
    /// `news`, `course` or `knowledge`.
    pub section: &'static str,
    /// Its title.
    pub title: String,
    /// Its text.
    pub body: String,
    /// Its tags.
    pub tags: Vec<String>,
    /// Its link, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub link: Option<String>,
    /// Who wrote it.
    pub author: String,
    /// Published (the server's zone, `yyyy-MM-dd HH:mm:ss`).
    pub create_time: String,
    /// Last changed.
    pub update_time: String,
    /// Removed (only in the answer to a removal).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub removed: bool,
}

fn view<S: Store>(st: &AppState<S>, a: Article) -> ArticleView {
    let tz = st.engine.config().time_zone;
    ArticleView {
        id: a.id,
        section: a.draft.section.as_str(),
        title: a.draft.title,
        body: a.draft.body,
        tags: a.draft.tags,
        link: a.draft.link,
        author: a.author,
        create_time: a.created_at.format_local(tz),
        update_time: a.updated_at.format_local(tz),
        removed: a.removed,
    }
}

/// What an administrator writes.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ArticleDef {
    /// `news`, `course` or `knowledge`.
    pub section: String,
    /// 1 to 200 characters.
    pub title: String,
    /// Its text (at most 100,000 bytes).
    #[serde(default)]
    pub body: String,
    /// At most 16 tags of 1 to 32 characters.
    #[serde(default)]
    pub tags: Vec<String>,
    /// An http(s) link (a course's material).
    pub link: Option<String>,
}

fn draft(body: Result<Bytes, BytesRejection>) -> Result<Draft, BusinessError> {
    let f = fields(body)?;
    let def: ArticleDef = serde_json::from_value(Value::Object(f.0))
        .map_err(|e| BusinessError::refused(format!("invalid article: {e}")))?;
    Ok(Draft {
        section: Section::parse(&def.section).map_err(BusinessError::refused)?,
        title: def.title,
        body: def.body,
        tags: def.tags,
        link: def.link,
    })
}

fn number<T: std::str::FromStr>(q: &HashMap<String, String>, name: &str, default: T) -> Result<T, BusinessError> {
    match q.get(name) {
        None => Ok(default),
        Some(v) => v
            .trim()
            .parse()
            .map_err(|_| BusinessError::refused(format!("{name}: {v:?} is not a number"))),
    }
}

fn id_of(s: &str) -> Result<i64, BusinessError> {
    s.parse()
        .map_err(|_| BusinessError::refused(format!("article {s} not found")))
}

/// The newest articles, or those matching `q`.
#[utoipa::path(get, path = "/admin/content", tag = "admin",
    params(("X-Access-Token" = String, Header, description = "a session"),
        ("section" = Option<String>, Query, description = "news, course or knowledge"),
        ("q" = Option<String>, Query, description = "words, each the start of a word of the title, tags or body"),
        ("limit" = Option<usize>, Query, description = "1..200, default 50")),
    responses((status = 200, description = "the articles", body = Envelope<Vec<ArticleView>>)))]
pub(crate) async fn list<S: Store>(
    State(st): State<AppState<S>>,
    h: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Answer<Vec<ArticleView>> {
    session(&st, &h).await?;
    let section = q
        .get("section")
        .filter(|s| !s.is_empty())
        .map(|s| Section::parse(s))
        .transpose()
        .map_err(BusinessError::refused)?;
    let limit = number(&q, "limit", 50usize)?;
    let found = match q.get("q").map(|s| s.trim()).filter(|s| !s.is_empty()) {
        Some(words) => st.engine.search_articles(words, section, limit).await?,
        None => st.engine.articles(section, limit).await?,
    };
    Ok(Done::ok(found.into_iter().map(|a| view(&st, a)).collect()))
}

/// One article.
#[utoipa::path(get, path = "/admin/content/{id}", tag = "admin",
    params(("X-Access-Token" = String, Header, description = "a session"),
        ("id" = i64, Path, description = "the article")),
    responses((status = 200, description = "the article", body = Envelope<ArticleView>)))]
pub(crate) async fn one<S: Store>(
    State(st): State<AppState<S>>,
    h: HeaderMap,
    Path(id): Path<String>,
) -> Answer<ArticleView> {
    session(&st, &h).await?;
    let a = st.engine.article(id_of(&id)?).await?;
    Ok(Done::ok(view(&st, a)))
}

/// Publishes an article (permission ManageContent).
#[utoipa::path(post, path = "/admin/content", tag = "admin",
    params(("X-Access-Token" = String, Header, description = "an administrator's session")),
    request_body = ArticleDef,
    responses((status = 200, description = "the article", body = Envelope<ArticleView>)))]
pub(crate) async fn publish<S: Store>(
    State(st): State<AppState<S>>,
    h: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Answer<ArticleView> {
    let me = admin(&st, &h, Permission::ManageContent).await?;
    let a = st.engine.publish_article(Actor::User(me.id), draft(body)?).await?;
    Ok(Done::ok(view(&st, a)))
}

/// Replaces an article (permission ManageContent).
#[utoipa::path(put, path = "/admin/content/{id}", tag = "admin",
    params(("X-Access-Token" = String, Header, description = "an administrator's session"),
        ("id" = i64, Path, description = "the article")),
    request_body = ArticleDef,
    responses((status = 200, description = "the article", body = Envelope<ArticleView>)))]
pub(crate) async fn change<S: Store>(
    State(st): State<AppState<S>>,
    h: HeaderMap,
    Path(id): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> Answer<ArticleView> {
    let me = admin(&st, &h, Permission::ManageContent).await?;
    let id = id_of(&id)?;
    let a = st.engine.change_article(Actor::User(me.id), id, draft(body)?).await?;
    Ok(Done::ok(view(&st, a)))
}

/// Removes an article (permission ManageContent).
#[utoipa::path(delete, path = "/admin/content/{id}", tag = "admin",
    params(("X-Access-Token" = String, Header, description = "an administrator's session"),
        ("id" = i64, Path, description = "the article")),
    responses((status = 200, description = "the removed article", body = Envelope<ArticleView>)))]
pub(crate) async fn remove<S: Store>(
    State(st): State<AppState<S>>,
    h: HeaderMap,
    Path(id): Path<String>,
) -> Answer<ArticleView> {
    let me = admin(&st, &h, Permission::ManageContent).await?;
    let a = st.engine.remove_article(Actor::User(me.id), id_of(&id)?).await?;
    Ok(Done::ok(view(&st, a)))
}

/// The hot applications: runs over the last `days` and subscriptions.
#[utoipa::path(get, path = "/admin/content/hot", tag = "admin",
    params(("X-Access-Token" = String, Header, description = "a session"),
        ("days" = Option<u32>, Query, description = "1..366, default 30"),
        ("limit" = Option<usize>, Query, description = "1..100, default 10")),
    responses((status = 200, description = "hottest first: name, listingId, runs, successful, subscriptions, score", body = Envelope<Vec<Object>>)))]
pub(crate) async fn hot<S: Store>(
    State(st): State<AppState<S>>,
    h: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Answer<Vec<Hot>> {
    let user = session(&st, &h).await?;
    let days = number(&q, "days", 30u32)?;
    if !(1..=366).contains(&days) {
        return Err(BusinessError::refused("days is 1 to 366"));
    }
    let limit = number(&q, "limit", 10usize)?.clamp(1, 100);
    let processes = visible(&st, &user).await?;
    Ok(Done::ok(st.engine.hot_applications(&processes, days, limit).await?))
}
