//! Elastic robot pools (the rules are in [`crate::pool`]): their bounds,
//! and the robots each wants, recorded by the timer holder when the figure
//! changes (with a `pool_changed` event for autoscalers).

use std::collections::HashMap;

use super::{Decided, Engine, Tx};
use crate::audit::Subject;
use crate::error::{Entity, Error, Result};
use crate::events::Event;
use crate::model::*;
use crate::pool::{self, Demand, Pool, PoolSpec};
use crate::record::{Mapped, Select};
use crate::store::{Records, Store};
use crate::trigger::TriggerState;

/// How often the timer holder sizes the pools.
const SCAN_MS: u64 = 1_000;

/// Most pools.
const MAX_POOLS: usize = 1_000;

impl<S: Store> Engine<S> {
    /// Saves a pool's bounds (permission ManageRobots); the robots it wants
    /// are worked out again at once.
    pub async fn save_pool(&self, actor: Actor, spec: PoolSpec) -> Result<Pool> {
        self.require(actor, Permission::ManageRobots).await?;
        spec.check().map_err(Error::InvalidArgument)?;
        decided!(self, |_attempt| {
            let now = self.now();
            let existing: Option<Pool> = self.store.get(spec.name.as_str()).await?;
            let pool = match existing {
                Some(old) if old.spec == spec => return Ok(Decided::Answer(old)),
                Some(old) => Pool {
                    spec: spec.clone(),
                    version: old.version + 1,
                    ..old
                },
                None => Pool {
                    spec: spec.clone(),
                    version: 1,
                    desired: spec.min,
                    demand: Demand::default(),
                    changed_at: now,
                },
            };
            let mut tx = Tx::default();
            tx.record(&pool)?.audit(
                now,
                actor,
                "pool.save",
                Subject::Text(format!("pool:{}", spec.name).into()),
                format!("min {} max {}", spec.min, spec.max),
            );
            Ok(Decided::Commit(tx, pool))
        })?;
        self.size_pools(true).await?;
        self.pool(&spec.name).await
    }

    /// A pool by name.
    pub async fn pool(&self, name: &str) -> Result<Pool> {
        self.store
            .get::<Pool>(name)
            .await?
            .ok_or_else(|| Error::NotFound(Entity::Record(Pool::KIND.name), name.to_owned()))
    }

    /// Every pool, by name.
    pub async fn pools(&self) -> Result<Vec<Pool>> {
        Ok(self.store.list(Select::all(MAX_POOLS)).await?)
    }

    /// The demand on every pool that has any, now.
    pub async fn pool_demands(&self) -> Result<HashMap<String, Demand>> {
        let mut out: HashMap<String, Demand> = HashMap::new();
        for p in self.store.processes().await? {
            let pending = u32::try_from(self.store.pending_count(p.id).await?).unwrap_or(u32::MAX);
            let trigger = match p.spec.trigger {
                Some(_) => self.store.get::<TriggerState>(p.id.0).await?,
                None => None,
            };
            let d = pool::demand_of(&p, pending, trigger.as_ref());
            if d.total() > 0 {
                let e = out.entry(pool::pool_of(&p).to_owned()).or_default();
                *e = e.plus(d);
            }
        }
        Ok(out)
    }

    /// Records the robots each pool wants where the figure changed (at most
    /// once a second unless `now`); the number of pools changed.
    /// [`Engine::tick`] calls it on the timer holder.
    pub async fn size_pools(&self, now: bool) -> Result<usize> {
        let t = self.now();
        {
            let mut next = self.pool_scan.lock().unwrap_or_else(|p| p.into_inner());
            if !now && t < *next {
                return Ok(0);
            }
            *next = t.plus_ms(SCAN_MS);
        }
        let pools = self.pools().await?;
        if pools.is_empty() {
            return Ok(0);
        }
        let demands = self.pool_demands().await?;
        let mut changed = 0;
        for mut p in pools {
            let demand = demands.get(&p.spec.name).copied().unwrap_or_default();
            let desired = p.spec.desired(demand);
            if desired == p.desired {
                continue;
            }
            let previous = p.desired;
            p.desired = desired;
            p.demand = demand;
            p.changed_at = t;
            p.version += 1;
            let mut tx = Tx::default();
            tx.record(&p)?
                .audit(
                    t,
                    Actor::System,
                    "pool.resize",
                    Subject::Text(format!("pool:{}", p.spec.name).into()),
                    format!("{previous} -> {desired}"),
                )
                .event(
                    t,
                    Event::PoolChanged {
                        pool: p.spec.name.as_str().into(),
                        desired,
                        previous,
                        demand,
                    },
                );
            match self.commit(tx).await {
                Ok(()) => changed += 1,
                // Another node sized it meanwhile: the next pass looks again.
                Err(e) if super::is_conflict(&e) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(changed)
    }
}
