//! Robot licenses (the rules are in [`crate::license`]): creating, renewing
//! and retiring them, binding them to robots and unbinding them
//! (permission ManageRobots). Each change reaches the robots it concerns
//! in the same commit: `SendLicense` when bound or renewed, `Error` when
//! taken away, through the outbox (or pushed to a socket held here), so
//! both transports get them.

use std::sync::Arc;

use super::{Decided, Engine, Tx};
use crate::audit::Subject;
use crate::error::{Entity, Error, Result};
use crate::license::{self, Held, License, MAX_LICENSES, REVOKED, Terms};
use crate::model::*;
use crate::record::{Mapped, Select};
use crate::store::{Records, Store};
use crate::transport::Command;

impl<S: Store> Engine<S> {
    /// Creates license `name` (or re-creates a retired one).
    pub async fn create_license(&self, actor: Actor, name: &str, terms: Terms) -> Result<License> {
        self.require(actor, Permission::ManageRobots).await?;
        license::check_name(name).map_err(Error::InvalidArgument)?;
        terms.check().map_err(Error::InvalidArgument)?;
        decided!(self, |_attempt| {
            let now = self.now();
            let version = match self.store.get::<License>(name).await? {
                Some(old) if !old.retired => return Err(Error::AlreadyExists(format!("license {name}"))),
                Some(old) => old.version + 1,
                None => 1,
            };
            let l = License {
                name: name.to_owned(),
                version,
                terms: terms.clone(),
                bound: Vec::new(),
                retired: false,
                changed_at: now,
            };
            let mut tx = Tx::default();
            tx.record(&l)?
                .audit(now, actor, "license.create", subject(name), describe(&terms));
            Ok(Decided::Commit(tx, l))
        })
    }

    /// Replaces the terms of license `name` (a renewal): every robot holding
    /// it is sent the new content, and one whose license had expired is
    /// given work again.
    pub async fn renew_license(&self, actor: Actor, name: &str, terms: Terms) -> Result<License> {
        self.require(actor, Permission::ManageRobots).await?;
        let (l, robots) = decided!(self, |_attempt| {
            let now = self.now();
            let mut l = self.live_license(name).await?;
            if let Some(why) = l.refuse_renewal(&terms) {
                return Err(Error::InvalidArgument(why));
            }
            let mut tx = Tx::default();
            let mut robots = Vec::new();
            for code in &l.bound {
                let Some(r) = self.store.robot_by_code(code).await? else {
                    continue;
                };
                robots.push(r.id);
                give(&mut tx, r, name, &terms);
            }
            l.terms = terms.clone();
            l.version += 1;
            l.changed_at = now;
            tx.record(&l)?
                .audit(now, actor, "license.renew", subject(name), describe(&terms));
            Ok(Decided::Commit(tx, (l, robots)))
        })?;
        for r in robots {
            self.fill_robot(r).await?;
        }
        Ok(l)
    }

    /// Retires license `name`: every robot holding it loses it and is sent
    /// `Error`.
    pub async fn retire_license(&self, actor: Actor, name: &str) -> Result<License> {
        self.require(actor, Permission::ManageRobots).await?;
        decided!(self, |_attempt| {
            let now = self.now();
            let mut l = self.live_license(name).await?;
            let mut tx = Tx::default();
            for code in std::mem::take(&mut l.bound) {
                self.take_away(&mut tx, &code, name).await?;
            }
            l.retired = true;
            l.version += 1;
            l.changed_at = now;
            tx.record(&l)?
                .audit(now, actor, "license.retire", subject(name), String::new());
            Ok(Decided::Commit(tx, l))
        })
    }

    /// Binds license `name` to robot `code` (known: configured or once
    /// connected) and sends it `SendLicense` if it is connected. A robot
    /// holds one license at a time.
    pub async fn bind_license_to(&self, actor: Actor, name: &str, code: &str) -> Result<License> {
        self.require(actor, Permission::ManageRobots).await?;
        decided!(self, |_attempt| {
            let now = self.now();
            let mut l = self.live_license(name).await?;
            let Some(r) = self.store.robot_by_code(code).await? else {
                return Err(Error::NotFound(Entity::Robot, code.to_owned()));
            };
            match &r.profile.held {
                Some(h) if h.name == name => return Ok(Decided::Answer(l)),
                Some(h) => {
                    return Err(Error::InvalidArgument(format!(
                        "robot {code} holds license {}: unbind it first",
                        h.name
                    )));
                }
                None => {}
            }
            if let Some(why) = l.refuse_binding(code, r.profile.vendor.as_deref(), now) {
                return Err(Error::InvalidArgument(why));
            }
            let mut tx = Tx::default();
            give(&mut tx, r, name, &l.terms);
            l.bound.push(code.to_owned());
            l.version += 1;
            tx.record(&l)?
                .audit(now, actor, "license.bind", subject(name), format!("robot {code}"));
            Ok(Decided::Commit(tx, l))
        })
    }

    /// Takes license `name` away from robot `code`, which is sent `Error`.
    pub async fn unbind_license(&self, actor: Actor, name: &str, code: &str) -> Result<License> {
        self.require(actor, Permission::ManageRobots).await?;
        decided!(self, |_attempt| {
            let now = self.now();
            let mut l = self.live_license(name).await?;
            let Some(at) = l.bound.iter().position(|r| r == code) else {
                return Err(Error::NotFound(
                    Entity::Record(License::KIND.name),
                    format!("{name} bound to robot {code}"),
                ));
            };
            l.bound.remove(at);
            l.version += 1;
            let mut tx = Tx::default();
            self.take_away(&mut tx, code, name).await?;
            tx.record(&l)?
                .audit(now, actor, "license.unbind", subject(name), format!("robot {code}"));
            Ok(Decided::Commit(tx, l))
        })
    }

    /// License `name`, retired or not.
    pub async fn license(&self, name: &str) -> Result<License> {
        self.store
            .get::<License>(name)
            .await?
            .ok_or_else(|| Error::NotFound(Entity::Record(License::KIND.name), name.to_owned()))
    }

    /// Every license, retired ones included, by name.
    pub async fn licenses(&self) -> Result<Vec<License>> {
        Ok(self.store.list(Select::all(MAX_LICENSES)).await?)
    }

    async fn live_license(&self, name: &str) -> Result<License> {
        match self.license(name).await? {
            l if l.retired => Err(Error::NotFound(Entity::Record(License::KIND.name), name.to_owned())),
            l => Ok(l),
        }
    }

    /// Clears robot `code`'s license `name` in `tx`; a connected robot is
    /// sent `Error`.
    async fn take_away(&self, tx: &mut Tx, code: &str, name: &str) -> Result<()> {
        let Some(mut r) = self.store.robot_by_code(code).await? else {
            return Ok(());
        };
        if r.profile.held.as_ref().is_none_or(|h| h.name != name) {
            return Ok(());
        }
        let mut profile = (*r.profile).clone();
        profile.license = None;
        profile.held = None;
        r.profile = Arc::new(profile);
        if r.connect.is_some() {
            tx.command(
                r.id,
                Command::Error {
                    error_code: REVOKED,
                    message: format!("license {name} was revoked"),
                },
            );
        }
        tx.robot(r);
        Ok(())
    }
}

/// Gives robot `r` license `name` on `terms` in `tx`; a connected robot is
/// sent `SendLicense`.
fn give(tx: &mut Tx, mut r: Robot, name: &str, terms: &Terms) {
    let mut profile = (*r.profile).clone();
    profile.license = Some(terms.content.clone());
    profile.held = Some(Held {
        name: name.to_owned(),
        expires_at: terms.expires_at,
    });
    r.profile = Arc::new(profile);
    if r.connect.is_some() {
        tx.command(
            r.id,
            Command::SendLicense {
                license_content: terms.content.clone(),
            },
        );
    }
    tx.robot(r);
}

fn subject(name: &str) -> Subject {
    Subject::Text(format!("license:{name}").into())
}

fn describe(t: &Terms) -> String {
    let expiry = t.expires_at.map_or_else(|| "never".to_owned(), |e| e.to_string());
    format!("seats {} expires {expiry}", t.seats)
}
