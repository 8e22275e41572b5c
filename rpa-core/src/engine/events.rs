//! Domain events for consumers (see [`crate::events`]): reading them after
//! a consumer's cursor, moving the cursor, and the lease that lets one node
//! of a cluster run a consumer at a time.

use std::sync::atomic::Ordering;

use super::{Engine, Tx};
use crate::error::Result;
use crate::events::{Batch, Cursor, EventPage, consumer_lease};
use crate::store::{Integrated, Records, Store};

/// The lease whose holder integrates committed audit events into the chain.
pub const INTEGRATOR_LEASE: &str = "audit-integrator";

impl<S: Store> Engine<S> {
    /// Domain events among the `limit` audit events after `after`.
    pub async fn events(&self, after: u64, limit: usize) -> Result<EventPage> {
        Ok(self.store.events(after, limit).await?)
    }

    /// Consumer `name`'s next events: those among the `limit` audit events
    /// after its cursor. Handle them, then [`Engine::acknowledge`] the batch.
    pub async fn events_for(&self, name: &str, limit: usize) -> Result<Batch> {
        let cursor = self
            .store
            .get::<Cursor>(name)
            .await?
            .unwrap_or_else(|| Cursor::start(name));
        let page = self.store.events(cursor.seq, limit).await?;
        Ok(Batch { cursor, page })
    }

    /// Moves consumer `batch.cursor.name` past `batch`. Fails with a
    /// conflict, and moves nothing, when the cursor is no longer where the
    /// batch read it (another runner of the same consumer moved it): the
    /// caller reads again.
    pub async fn acknowledge(&self, batch: &Batch) -> Result<()> {
        if !batch.moves() {
            return Ok(());
        }
        let mut tx = Tx::default();
        tx.record(&batch.advanced())?;
        self.commit(tx).await
    }

    /// Takes or renews the lease that makes this node the cluster's audit
    /// integrator (for as long as the timer lease lasts); answers whether
    /// it holds it. Integrating without it is safe (the store takes one
    /// integrator at a time), only wasted.
    pub async fn hold_integrator(&self) -> Result<bool> {
        let now = self.now();
        let until = now.plus_ms(self.config.timer_lease_ms);
        Ok(self.store.lease(INTEGRATOR_LEASE, self.node, now, until).await?)
    }

    /// One integration step: the events committed and not yet in the
    /// audit chain take their places (see
    /// [`AuditStore::integrate`](crate::store::AuditStore::integrate)); the
    /// wait is recorded in the metrics.
    pub async fn integrate_audit(&self) -> Result<Integrated> {
        let done = self.store.integrate().await?;
        if done.events > 0 {
            let m = self.metrics();
            m.audit_integrated.fetch_add(done.events, Ordering::Relaxed);
            m.audit_integration_seconds.observe_ms(done.longest_wait_ms);
        }
        Ok(done)
    }

    /// Takes or renews the lease that lets this node run consumer `name`
    /// (for as long as the timer lease lasts); answers whether it holds it.
    /// A runner that stops renewing loses it to another node within that time.
    pub async fn hold_consumer(&self, name: &str) -> Result<bool> {
        let now = self.now();
        let until = now.plus_ms(self.config.timer_lease_ms);
        Ok(self.store.lease(&consumer_lease(name), self.node, now, until).await?)
    }
}
