//! Assets (the rules are in [`crate::asset`]): saving, changing, deleting
//! (permission ManageProcesses), reading as a person (secrets blanked), and
//! reading and setting as a robot running a job ([`RunCaller`], from a run
//! token: [`crate::auth::run_token`]).

use super::{Decided, Engine, Tx, dup_as_exists};
use crate::asset::{self, Asset, AssetSpec, AssetValue};
use crate::audit::Subject;
use crate::error::{Entity, Error, Result};
use crate::ids::*;
use crate::model::*;
use crate::record::{Mapped, Select};
use crate::store::People as _;
use crate::store::{Records, Store};

/// Most assets listed.
const MAX_ASSETS: usize = 10_000;

/// A robot running an attempt of a job, as its run token proves.
#[derive(Debug, Clone)]
pub struct RunCaller {
    /// The job, running.
    pub job: Job,
    /// The robot running it.
    pub robot: RobotId,
    /// The folder of the job's process (none: the default folder).
    pub folder: Option<String>,
    /// The person who started the job: the robot acts with their grants.
    pub user: User,
}

impl<S: Store> Engine<S> {
    /// Creates an asset (permission ManageProcesses).
    pub async fn create_asset(&self, actor: Actor, spec: AssetSpec) -> Result<Asset> {
        self.require(actor, Permission::ManageProcesses).await?;
        asset::check(&spec).map_err(Error::InvalidArgument)?;
        let now = self.now();
        let a = Asset {
            id: self.next_id(IdKind::of::<Asset>()).await?,
            version: 1,
            name: spec.name.trim().to_owned(),
            folder: spec.folder,
            value: spec.value,
            per_robot: spec.per_robot,
            robot_values: spec.robot_values,
            description: spec.description,
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

    /// Changes an asset (permission ManageProcesses). A secret left empty
    /// in `spec` (a credential's password, a secret's value, as a person
    /// reads them) keeps the stored one.
    pub async fn update_asset(&self, actor: Actor, id: i64, spec: AssetSpec) -> Result<Asset> {
        self.require(actor, Permission::ManageProcesses).await?;
        asset::check(&spec).map_err(Error::InvalidArgument)?;
        decided!(self, |_attempt| {
            let mut a = self.asset(id).await?;
            a.value = keep_secret(spec.value.clone(), &a.value);
            a.robot_values = spec
                .robot_values
                .iter()
                .map(|v| asset::RobotValue {
                    robot: v.robot,
                    value: keep_secret(v.value.clone(), a.value_for(v.robot)),
                })
                .collect();
            a.name = spec.name.trim().to_owned();
            a.folder = spec.folder.clone();
            a.per_robot = spec.per_robot;
            a.description = spec.description.clone();
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

    /// An asset not deleted, by id, as a person sees it (secrets blanked).
    pub async fn asset(&self, id: i64) -> Result<Asset> {
        Ok(self.stored_asset(id).await?.redacted())
    }

    async fn stored_asset(&self, id: i64) -> Result<Asset> {
        self.store
            .get::<Asset>(id)
            .await?
            .filter(|a| !a.deleted)
            .ok_or_else(|| Error::NotFound(Entity::Record(Asset::KIND.name), id.to_string()))
    }

    /// Every asset not deleted, by id, as a person sees them (secrets blanked).
    pub async fn assets(&self) -> Result<Vec<Asset>> {
        let all: Vec<Asset> = self.store.list(Select::all(MAX_ASSETS)).await?;
        Ok(all.into_iter().filter(|a| !a.deleted).map(|a| a.redacted()).collect())
    }

    /// The robot running an attempt, from the attempt's run token: the
    /// attempt is the job's current one and still running on that robot.
    pub async fn authenticate_run(&self, token: &str) -> Result<RunCaller> {
        let key = self.config.link_key.as_ref().ok_or(Error::Unauthenticated)?;
        let (job_key, attempt) = crate::auth::verify_run_token(key, token).ok_or(Error::Unauthenticated)?;
        let job_key: Key = job_key.parse().map_err(|_| Error::Unauthenticated)?;
        let job = self.store.job_by_key(job_key).await?.ok_or(Error::Unauthenticated)?;
        let robot = match (job.state, job.robot) {
            (JobState::Running | JobState::Stopping, Some(r)) if job.attempt == attempt => r,
            _ => return Err(Error::Unauthenticated),
        };
        let user = match self.store.user(job.user).await? {
            Some(u) if !u.locked && !u.disabled => u,
            _ => return Err(Error::Unauthenticated),
        };
        let folder = self
            .store
            .process(job.process)
            .await?
            .and_then(|p| p.spec.folder.clone());
        Ok(RunCaller {
            job,
            robot,
            folder,
            user,
        })
    }

    /// `cmds` as handed to a robot: each Execute with its attempt's run
    /// token, when this server signs them (signed now, so no token is ever
    /// stored with the outbox).
    pub(crate) fn with_run_tokens(&self, mut cmds: Vec<crate::transport::Command>) -> Vec<crate::transport::Command> {
        let Some(key) = &self.config.link_key else {
            return cmds;
        };
        for c in &mut cmds {
            if let crate::transport::Command::Execute(e) = c {
                e.access_token = Some(crate::auth::run_token(key, &e.run_instance_id.to_string(), e.attempt));
            }
        }
        cmds
    }

    /// The asset `name` of the running job's folder with the value its
    /// robot gets, secrets included ([`asset::readable_by_run`]).
    pub async fn robot_asset(&self, run: &RunCaller, name: &str) -> Result<(Asset, AssetValue)> {
        let a = self.asset_of_run(run, name).await?;
        let value = a.value_for(run.robot).clone();
        Ok((a, value))
    }

    /// Sets the running job's robot's value of asset `name` (its own value
    /// of a per-robot asset, the value of a global one).
    pub async fn set_robot_asset(&self, run: &RunCaller, name: &str, value: AssetValue) -> Result<Asset> {
        decided!(self, |_attempt| {
            let old = self.asset_of_run(run, name).await?;
            let value = keep_secret(value.clone(), old.value_for(run.robot));
            let mut a = old.with_robot_value(run.robot, value).map_err(Error::InvalidArgument)?;
            a.updated_at = self.now();
            a.version += 1;
            let mut tx = Tx::default();
            let mut detail = String::new();
            crate::audit::push_id(&mut detail, "job", run.job.id.0);
            tx.record(&a)?.audit(
                a.updated_at,
                Actor::Robot(run.robot),
                "asset.set",
                Subject::Id("asset", a.id),
                format!("{} {detail}", a.name),
            );
            Ok(Decided::Commit(tx, a))
        })
    }

    async fn asset_of_run(&self, run: &RunCaller, name: &str) -> Result<Asset> {
        let cell = asset::unique_name(asset::folder_name(run.folder.as_deref()), name.trim());
        self.store
            .find::<Asset>("name", cell)
            .await?
            .filter(|a| !a.deleted && asset::readable_by_run(a, run.folder.as_deref()))
            .ok_or_else(|| Error::NotFound(Entity::Record(Asset::KIND.name), name.to_owned()))
    }
}

/// `new`, with the secret of `old` where `new`'s is empty (a person or
/// robot that read the value blanked and wrote it back unchanged).
fn keep_secret(new: AssetValue, old: &AssetValue) -> AssetValue {
    match (new, old) {
        (AssetValue::Credential { username, password }, AssetValue::Credential { password: kept, .. })
            if password.is_empty() =>
        {
            AssetValue::Credential {
                username,
                password: kept.clone(),
            }
        }
        (AssetValue::Secret(s), AssetValue::Secret(kept)) if s.is_empty() => AssetValue::Secret(kept.clone()),
        (new, _) => new,
    }
}
