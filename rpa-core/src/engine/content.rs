//! The operations centre's content (the rules are in [`crate::content`]):
//! writing, listing and searching articles; the hot applications.

use std::collections::HashMap;

use super::{Decided, Engine, Tx};
use crate::analysis::{Dimension, Period};
use crate::audit::Subject;
use crate::catalogue::Listing;
use crate::content::{self, Article, Draft, Hot, Section};
use crate::error::{Entity, Error, Result};
use crate::ids::IdKind;
use crate::model::{Actor, Permission, Process};
use crate::record::{Mapped, Select, search_words};
use crate::store::People as _;
use crate::store::{Records, Store};

/// Most articles a list or a search answers.
pub const MAX_ARTICLES: usize = 200;
/// Most listings the hot list looks at.
const MAX_LISTINGS: usize = 10_000;

impl<S: Store> Engine<S> {
    /// Publishes an article (permission ManageContent).
    pub async fn publish_article(&self, actor: Actor, draft: Draft) -> Result<Article> {
        self.require(actor, Permission::ManageContent).await?;
        let draft = draft.checked().map_err(Error::InvalidArgument)?;
        let now = self.now();
        let a = Article {
            id: self.next_id(IdKind::of::<Article>()).await?,
            version: 1,
            draft,
            author: self.actor_name(actor).await?,
            created_at: now,
            updated_at: now,
            removed: false,
        };
        let mut tx = Tx::default();
        tx.record(&a)?.audit(
            now,
            actor,
            "article.publish",
            Subject::Id("article", a.id),
            format!("{}: {}", a.draft.section.as_str(), a.draft.title),
        );
        self.commit(tx).await?;
        Ok(a)
    }

    /// Replaces article `id`'s text (permission ManageContent).
    pub async fn change_article(&self, actor: Actor, id: i64, draft: Draft) -> Result<Article> {
        let draft = draft.checked().map_err(Error::InvalidArgument)?;
        self.rewrite_article(actor, id, "article.change", |a| a.draft = draft.clone())
            .await
    }

    /// Removes article `id`: no longer listed nor found (permission ManageContent).
    pub async fn remove_article(&self, actor: Actor, id: i64) -> Result<Article> {
        self.rewrite_article(actor, id, "article.remove", |a| a.removed = true)
            .await
    }

    /// Article `id` changed by `change`, committed and audited as `action`
    /// (permission ManageContent).
    async fn rewrite_article(
        &self,
        actor: Actor,
        id: i64,
        action: &'static str,
        change: impl Fn(&mut Article),
    ) -> Result<Article> {
        self.require(actor, Permission::ManageContent).await?;
        decided!(self, |_attempt| {
            let mut a = self.article(id).await?;
            let now = self.now();
            change(&mut a);
            a.version += 1;
            a.updated_at = now;
            let mut tx = Tx::default();
            tx.record(&a)?
                .audit(now, actor, action, Subject::Id("article", a.id), a.draft.title.clone());
            Ok(Decided::Commit(tx, a))
        })
    }

    /// Article `id`, unless removed.
    pub async fn article(&self, id: i64) -> Result<Article> {
        self.store
            .get::<Article>(id)
            .await?
            .filter(|a| !a.removed)
            .ok_or_else(|| Error::NotFound(Entity::Record(Article::KIND.name), id.to_string()))
    }

    /// The newest articles of `section` (all sections: `None`), at most `limit`.
    pub async fn articles(&self, section: Option<Section>, limit: usize) -> Result<Vec<Article>> {
        let limit = limit.clamp(1, MAX_ARTICLES);
        let mut all: Vec<Article> = match section {
            Some(s) => self.store.list(Select::only("section", s.as_str(), usize::MAX)).await?,
            None => self.store.list(Select::all(usize::MAX)).await?,
        };
        all.retain(|a| !a.removed);
        all.sort_by(|a, b| b.created_at.cmp(&a.created_at).then(b.id.cmp(&a.id)));
        all.truncate(limit);
        Ok(all)
    }

    /// The articles (of `section`, if given) holding every word of `query`,
    /// best match first. A query without words finds nothing.
    pub async fn search_articles(&self, query: &str, section: Option<Section>, limit: usize) -> Result<Vec<Article>> {
        let words = search_words(query);
        let limit = limit.clamp(1, MAX_ARTICLES);
        let select = match section {
            Some(s) => Select::only("section", s.as_str(), limit),
            None => Select::all(limit),
        };
        Ok(self.store.search_for::<Article>(words, select).await?)
    }

    /// The hottest applications among `processes` (those the reader may
    /// see) and the published listings: runs ended over the last `days`
    /// days and subscriptions, ranked by [`content::rank`].
    pub async fn hot_applications(&self, processes: &[Process], days: u32, limit: usize) -> Result<Vec<Hot>> {
        let zone = self.config.time_zone;
        let today = self.now().in_zone(zone).date_naive();
        let from = today - chrono::Days::new(u64::from(days.clamp(1, 366)) - 1);
        let runs = self
            .run_analysis(
                processes,
                Dimension::Process,
                Period::All,
                &from.format("%Y-%m-%d").to_string(),
                &today.format("%Y-%m-%d").to_string(),
            )
            .await?;
        let runs: HashMap<&str, (u64, u64)> = runs
            .iter()
            .map(|b| (b.value.as_str(), (b.runs, b.successful)))
            .collect();
        let listings: Vec<Listing> = self.store.list(Select::all(MAX_LISTINGS)).await?;
        let mut hot = Vec::new();
        for p in processes {
            let (r, ok) = runs.get(p.spec.name.as_str()).copied().unwrap_or((0, 0));
            let listing = listings.iter().find(|l| !l.unpublished && l.process == p.id.0);
            hot.push(Hot {
                name: p.spec.name.clone(),
                listing_id: listing.map(|l| l.id),
                runs: r,
                successful: ok,
                subscriptions: listing.map_or(0, |l| l.subscriptions),
                score: 0,
            });
        }
        // Listings of processes the reader does not see: their subscriptions.
        for l in listings.iter().filter(|l| !l.unpublished) {
            if !processes.iter().any(|p| p.id.0 == l.process) {
                hot.push(Hot {
                    name: l.name.clone(),
                    listing_id: Some(l.id),
                    runs: 0,
                    successful: 0,
                    subscriptions: l.subscriptions,
                    score: 0,
                });
            }
        }
        Ok(content::rank(hot, limit))
    }

    /// The name an article records as its author.
    async fn actor_name(&self, actor: Actor) -> Result<String> {
        Ok(match actor {
            Actor::User(id) => self.store.user(id).await?.map_or_else(|| actor.to_string(), |u| u.name),
            other => other.to_string(),
        })
    }
}
