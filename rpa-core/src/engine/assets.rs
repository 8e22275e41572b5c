//! Assets (the rules are in [`crate::asset`]): saving, changing, deleting
//! (permission ManageProcesses) and reading (any user).

use super::{Decided, Engine, Tx, dup_as_exists};
use crate::asset::{self, Asset, AssetValue};
use crate::audit::Subject;
use crate::error::{Entity, Error, Result};
use crate::ids::*;
use crate::model::*;
use crate::record::{Record, Select};
use crate::store::{Records, Store};

/// Most assets listed.
const MAX_ASSETS: usize = 10_000;

impl<S: Store> Engine<S> {
    /// Creates an asset (permission ManageProcesses).
    pub async fn create_asset(&self, actor: Actor, name: &str, value: AssetValue, description: &str) -> Result<Asset> {
        self.require(actor, Permission::ManageProcesses).await?;
        asset::check(name, &value).map_err(Error::InvalidArgument)?;
        let now = self.now();
        let a = Asset {
            id: self.next_id(IdKind::of::<Asset>()).await?,
            version: 1,
            name: name.trim().to_owned(),
            value,
            description: description.to_owned(),
            deleted: false,
            created_at: now,
            updated_at: now,
        };
        let mut tx = Tx::default();
        tx.record(&a)?
            .audit(now, actor, "asset.create", Subject::Id("asset", a.id), a.name.clone());
        self.commit(tx).await.map_err(dup_as_exists)?;
        Ok(a)
    }

    /// Changes an asset's name, value and description (permission ManageProcesses).
    pub async fn update_asset(
        &self,
        actor: Actor,
        id: i64,
        name: &str,
        value: AssetValue,
        description: &str,
    ) -> Result<Asset> {
        self.require(actor, Permission::ManageProcesses).await?;
        asset::check(name, &value).map_err(Error::InvalidArgument)?;
        decided!(self, |_attempt| {
            let mut a = self.asset(id).await?;
            a.name = name.trim().to_owned();
            a.value = value.clone();
            a.description = description.to_owned();
            a.updated_at = self.now();
            a.version += 1;
            let mut tx = Tx::default();
            tx.record(&a)?.audit(
                a.updated_at,
                actor,
                "asset.update",
                Subject::Id("asset", a.id),
                a.name.clone(),
            );
            Ok(Decided::Commit(tx, a))
        })
        .map_err(dup_as_exists)
    }

    /// Deletes an asset (permission ManageProcesses); its name is free again.
    pub async fn delete_asset(&self, actor: Actor, id: i64) -> Result<Asset> {
        self.require(actor, Permission::ManageProcesses).await?;
        decided!(self, |_attempt| {
            let mut a = self.asset(id).await?;
            a.deleted = true;
            a.updated_at = self.now();
            a.version += 1;
            let mut tx = Tx::default();
            tx.record(&a)?.audit(
                a.updated_at,
                actor,
                "asset.delete",
                Subject::Id("asset", a.id),
                a.name.clone(),
            );
            Ok(Decided::Commit(tx, a))
        })
    }

    /// An asset not deleted, by id.
    pub async fn asset(&self, id: i64) -> Result<Asset> {
        self.store
            .get::<Asset>(id)
            .await?
            .filter(|a| !a.deleted)
            .ok_or_else(|| Error::NotFound(Entity::Record(Asset::KIND.name), id.to_string()))
    }

    /// Every asset not deleted, by id.
    pub async fn assets(&self) -> Result<Vec<Asset>> {
        let all: Vec<Asset> = self.store.list(Select::all(MAX_ASSETS)).await?;
        Ok(all.into_iter().filter(|a| !a.deleted).collect())
    }
}
