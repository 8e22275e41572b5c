//! Webhook subscriptions (the rules are in [`crate::webhook`]): saving and
//! deleting them, their secrets, and the deliveries that failed every try.
//! Delivering is the host's (`rpa::webhooks` runs one consumer of the
//! event stream per subscription).

use super::{Decided, Engine, Tx};
use crate::audit::Subject;
use crate::error::{Entity, Error, Result};
use crate::events::EventRecord;
use crate::ids::*;
use crate::model::*;
use crate::record::{Mapped, Select};
use crate::store::{Records, Store};
use crate::webhook::{self, Failure, Subscription};

/// Subscriptions and failures read per page.
const PAGE: usize = 500;

impl<S: Store> Engine<S> {
    /// Subscribes `url` to the event kinds `events` (none: all), as `actor`
    /// (permission ManageProcesses): the subscription and its signing
    /// secret (shown this once; [`Engine::webhook_secret`] derives it again).
    pub async fn create_webhook(
        &self,
        actor: Actor,
        by: &str,
        url: &str,
        events: Vec<String>,
    ) -> Result<(Subscription, String)> {
        self.require(actor, Permission::ManageProcesses).await?;
        Subscription::check(url, &events).map_err(Error::InvalidArgument)?;
        let now = self.now();
        let s = Subscription {
            id: self.next_id(IdKind::of::<Subscription>()).await?,
            version: 1,
            url: url.to_owned(),
            events,
            enabled: true,
            created_by: by.to_owned(),
            created_at: now,
        };
        let secret = self.webhook_secret(s.id)?;
        let mut tx = Tx::default();
        // The URL may carry credentials: the audit names the host only.
        let host = url
            .split("://")
            .nth(1)
            .and_then(|r| r.split(['/', '?']).next())
            .unwrap_or("");
        let host = host.rsplit('@').next().unwrap_or(host);
        tx.record(&s)?.audit(
            now,
            actor,
            "webhook.create",
            Subject::Id("webhook", s.id),
            host.to_owned(),
        );
        self.commit(tx).await?;
        Ok((s, secret))
    }

    /// The signing secret of subscription `id` (from the server's key).
    pub fn webhook_secret(&self, id: i64) -> Result<String> {
        let key = self
            .config
            .link_key
            .as_ref()
            .ok_or_else(|| Error::InvalidArgument("this server has no secret key to sign webhooks with".into()))?;
        Ok(webhook::secret(key, id))
    }

    /// Every subscription, deleted ones included, by id.
    pub async fn webhooks(&self) -> Result<Vec<Subscription>> {
        let mut out: Vec<Subscription> = Vec::new();
        loop {
            let mut sel = Select::all(PAGE);
            if let Some(last) = out.last() {
                sel = sel.after(last.id.into());
            }
            let page: Vec<Subscription> = self.store.list(sel).await?;
            let done = page.len() < PAGE;
            out.extend(page);
            if done {
                return Ok(out);
            }
        }
    }

    /// Subscription `id`.
    pub async fn webhook(&self, id: i64) -> Result<Subscription> {
        self.store
            .get::<Subscription>(id)
            .await?
            .ok_or_else(|| Error::NotFound(Entity::Record(Subscription::KIND.name), id.to_string()))
    }

    /// Deletes subscription `id` (ManageProcesses): nothing more is delivered to it.
    pub async fn delete_webhook(&self, actor: Actor, id: i64) -> Result<Subscription> {
        self.require(actor, Permission::ManageProcesses).await?;
        decided!(self, |_attempt| {
            let mut s = self.webhook(id).await?;
            if !s.enabled {
                return Ok(Decided::Answer(s));
            }
            s.enabled = false;
            s.version += 1;
            let mut tx = Tx::default();
            tx.record(&s)?.audit(
                self.now(),
                actor,
                "webhook.delete",
                Subject::Id("webhook", id),
                String::new(),
            );
            Ok(Decided::Commit(tx, s))
        })
    }

    /// Keeps the delivery of `event` to `s` that failed `attempts` tries.
    pub async fn webhook_failed(
        &self,
        s: &Subscription,
        event: &EventRecord,
        attempts: u32,
        error: &str,
    ) -> Result<Failure> {
        let now = self.now();
        let f = Failure {
            id: self.next_id(IdKind::of::<Failure>()).await?,
            version: 1,
            subscription: s.id,
            seq: event.seq,
            body: serde_json::to_value(event).map_err(|e| Error::Internal(e.to_string()))?,
            attempts,
            error: error.to_owned(),
            failed_at: now,
            redeliver: false,
            delivered: false,
        };
        let mut tx = Tx::default();
        tx.record(&f)?.audit(
            now,
            Actor::System,
            "webhook.failed",
            Subject::Id("webhook", s.id),
            format!("event {} after {attempts} tries: {error}", event.seq),
        );
        self.commit(tx).await?;
        Ok(f)
    }

    /// The failed deliveries of subscription `id`, oldest first.
    pub async fn webhook_failures(&self, id: i64, after: i64, limit: usize) -> Result<Vec<Failure>> {
        Ok(self
            .store
            .list(Select::only("subscription", id, limit).after(after.into()))
            .await?)
    }

    /// Asks for failed delivery `failure` of subscription `id` to be made
    /// again (ManageProcesses); the deliverer does it next.
    pub async fn redeliver_webhook(&self, actor: Actor, id: i64, failure: i64) -> Result<Failure> {
        self.require(actor, Permission::ManageProcesses).await?;
        decided!(self, |_attempt| {
            let mut f = self
                .store
                .get::<Failure>(failure)
                .await?
                .filter(|f| f.subscription == id)
                .ok_or_else(|| Error::NotFound(Entity::Record(Failure::KIND.name), failure.to_string()))?;
            if f.redeliver || f.delivered {
                return Ok(Decided::Answer(f));
            }
            f.redeliver = true;
            f.version += 1;
            let mut tx = Tx::default();
            tx.record(&f)?.audit(
                self.now(),
                actor,
                "webhook.redeliver",
                Subject::Id("webhook", id),
                format!("event {}", f.seq),
            );
            Ok(Decided::Commit(tx, f))
        })
    }

    /// Failed deliveries an administrator asked to be made again.
    pub async fn webhook_redeliveries(&self) -> Result<Vec<Failure>> {
        Ok(self.store.list(Select::only("redeliver", 1, PAGE)).await?)
    }

    /// Records the outcome of a redelivery of `f`: delivered, or still failing with `error`.
    pub async fn webhook_redelivered(&self, f: &Failure, error: Option<&str>) -> Result<()> {
        decided!(self, |_attempt| {
            let Some(mut now) = self.store.get::<Failure>(f.id).await? else {
                return Ok(Decided::Answer(()));
            };
            if !now.redeliver {
                return Ok(Decided::Answer(()));
            }
            now.redeliver = false;
            now.attempts += 1;
            match error {
                None => now.delivered = true,
                Some(e) => now.error = e.to_owned(),
            }
            now.version += 1;
            let mut tx = Tx::default();
            tx.record(&now)?.audit(
                self.now(),
                Actor::System,
                if error.is_none() {
                    "webhook.redelivered"
                } else {
                    "webhook.failed"
                },
                Subject::Id("webhook", now.subscription),
                format!("event {}", now.seq),
            );
            Ok(Decided::Commit(tx, ()))
        })
    }
}
