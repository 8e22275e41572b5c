//! Designers and their scheduling (the rules are in [`crate::designer`]):
//! registration with the vendor's proof, heartbeats, allocation to a
//! person, release, and the lapses the timer's leader applies.

use super::{Decided, Engine, Tx, non_empty};
use crate::audit::Subject;
use crate::auth;
use crate::designer::{self, Designer, DesignerState, Lapse};
use crate::error::{Entity, Error, Result};
use crate::ids::Key;
use crate::model::{Actor, Permission, User};
use crate::record::{Mapped, Select};
use crate::store::{Records, Store};

/// Most designers a pool holds (reads list them all).
const MAX_DESIGNERS: usize = 10_000;

impl<S: Store> Engine<S> {
    /// Registers designer `code` proven by its vendor (as a robot is):
    /// its connection id for heartbeats. A designer registering again keeps
    /// its holder.
    pub async fn register_designer(
        &self,
        code: &str,
        supplier_code: &str,
        supplier_secret: &str,
        client_version: Option<String>,
        host: Option<String>,
    ) -> Result<Designer> {
        let code = non_empty(code, "designer id")?.to_owned();
        if code.len() > 128 {
            return Err(Error::InvalidArgument(
                "a designer id has at most 128 characters".into(),
            ));
        }
        let vendor = self.store.vendor_by_code(supplier_code).await?;
        if !vendor.is_some_and(|v| auth::verify_supplier_proof(&v.secret, &code, supplier_secret)) {
            let mut tx = Tx::default();
            tx.audit(
                self.now(),
                Actor::System,
                "designer.register.failed",
                Subject::Text(format!("designer:{code}").into()),
                "bad supplier".into(),
            );
            self.commit(tx).await?;
            return Err(Error::BadSupplier);
        }
        decided!(self, |_attempt| {
            let old = self.store.get::<Designer>(code.as_str()).await?;
            if old.as_ref().is_some_and(|d| d.vendor != supplier_code) {
                return Err(Error::BadSupplier);
            }
            let version = old.as_ref().map_or(0, |d| d.version);
            let now = self.now();
            let mut d = designer::register(
                old,
                &code,
                supplier_code,
                client_version.clone(),
                host.clone(),
                self.new_key(),
                now,
            );
            d.version = version + 1;
            let mut tx = Tx::default();
            tx.record(&d)?.audit(
                now,
                Actor::System,
                "designer.register",
                Subject::Text(format!("designer:{code}").into()),
                format!("vendor {supplier_code}"),
            );
            Ok(Decided::Commit(tx, d))
        })
    }

    /// A heartbeat of designer `code` on connection `connect`; `in_use`:
    /// its holder works in it now. The designer after.
    pub async fn designer_heartbeat(&self, code: &str, connect: Key, in_use: bool) -> Result<Designer> {
        decided!(self, |_attempt| {
            let mut d = self.designer_on(code, connect).await?;
            let before = d.state;
            let now = self.now();
            d.heartbeat(in_use, now);
            d.version += 1;
            let mut tx = Tx::default();
            tx.record(&d)?;
            if before != d.state {
                tx.audit(
                    now,
                    Actor::System,
                    "designer.online",
                    Subject::Text(format!("designer:{code}").into()),
                    d.state.as_str().into(),
                );
            }
            Ok(Decided::Commit(tx, d))
        })
    }

    /// Designer `code`, if `connect` is its connection.
    async fn designer_on(&self, code: &str, connect: Key) -> Result<Designer> {
        match self.store.get::<Designer>(code).await? {
            Some(d) if d.connect == connect => Ok(d),
            _ => Err(Error::NotConnected),
        }
    }

    /// Every designer, by id (permission ManageRobots, or any session for
    /// the designers' states and holders: see the adapter).
    pub async fn designers(&self) -> Result<Vec<Designer>> {
        Ok(self.store.list(Select::all(MAX_DESIGNERS)).await?)
    }

    /// A designer for `user`: the one the user holds, else the idle one
    /// that waited longest. None idle: refused.
    pub async fn allocate_designer(&self, user: &User) -> Result<Designer> {
        decided!(self, |_attempt| {
            let all = self.designers().await?;
            let Some(d) = designer::pick(&all, &user.name) else {
                return Err(Error::InvalidArgument("no designer is idle; try again later".into()));
            };
            let mut d = d.clone();
            if d.holder.as_deref() == Some(user.name.as_str()) {
                return Ok(Decided::Answer(d));
            }
            let now = self.now();
            d.allocate(&user.name, now);
            d.version += 1;
            let mut tx = Tx::default();
            tx.record(&d)?.audit(
                now,
                Actor::User(user.id),
                "designer.allocate",
                Subject::Text(format!("designer:{}", d.code).into()),
                user.name.clone(),
            );
            Ok(Decided::Commit(tx, d))
        })
    }

    /// `user` gives designer `code` back; an administrator
    /// (ManageRobots) may take it back from anyone.
    pub async fn release_designer(&self, user: &User, code: &str) -> Result<Designer> {
        let admin = self
            .has_permission(Actor::User(user.id), Permission::ManageRobots)
            .await?;
        decided!(self, |_attempt| {
            let mut d = self
                .store
                .get::<Designer>(code)
                .await?
                .ok_or_else(|| Error::NotFound(Entity::Record(Designer::KIND.name), code.to_owned()))?;
            let holder = match (&d.holder, admin) {
                (Some(h), true) => h.clone(),
                _ => user.name.clone(),
            };
            d.release(&holder).map_err(Error::InvalidArgument)?;
            d.version += 1;
            let mut tx = Tx::default();
            tx.record(&d)?.audit(
                self.now(),
                Actor::User(user.id),
                "designer.release",
                Subject::Text(format!("designer:{code}").into()),
                holder,
            );
            Ok(Decided::Commit(tx, d))
        })
    }

    /// Applies the designers' lapses (silent: Offline; held and unused past
    /// the idle limit: reclaimed); how many changed. The timer's leader
    /// calls it.
    pub async fn lapse_designers(&self) -> Result<usize> {
        let limits = self.config.designer_limits;
        let now = self.now();
        let mut changed = 0;
        for d in self.designers().await? {
            let Some(lapse) = d.lapse(limits, now) else { continue };
            let mut d = d;
            let holder = d.holder.clone();
            d.expire(lapse);
            d.version += 1;
            let mut tx = Tx::default();
            let (action, detail) = match lapse {
                Lapse::Silent => ("designer.offline", holder.map(|h| format!("taken from {h}"))),
                Lapse::Unused => ("designer.reclaim", holder.map(|h| format!("unused by {h}"))),
            };
            tx.record(&d)?.audit(
                now,
                Actor::System,
                action,
                Subject::Text(format!("designer:{}", d.code).into()),
                detail.unwrap_or_default(),
            );
            match self.commit(tx).await {
                Ok(()) => changed += 1,
                // It heart-beat or was released meanwhile: next time.
                Err(e) if super::is_conflict(&e) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(changed)
    }

    /// The designers by state, for the overview.
    pub async fn designer_counts(&self) -> Result<[(DesignerState, u64); 3]> {
        let all = self.designers().await?;
        let n = |s| all.iter().filter(|d| d.state == s).count() as u64;
        Ok([
            (DesignerState::Idle, n(DesignerState::Idle)),
            (DesignerState::Allocated, n(DesignerState::Allocated)),
            (DesignerState::Offline, n(DesignerState::Offline)),
        ])
    }
}
