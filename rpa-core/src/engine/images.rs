//! Executor images and executors (the rules are in [`crate::image`]):
//! keeping uploaded versions, retiring them, the version a pool starts,
//! and the executors provisioners start and stop.

use super::{Decided, Engine, Tx};
use crate::audit::Subject;
use crate::error::{Entity, Error, Result};
use crate::ids::Key;
use crate::image::{self, Executor, ExecutorImage};
use crate::model::{Actor, Permission};
use crate::package::Version;
use crate::record::{Mapped, Select};
use crate::store::{Records, Store};
use crate::time::Timestamp;

/// Most versions of one image, and executors, a list reads.
const MAX_LIST: usize = 10_000;

/// An image file stored by the caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewImage {
    /// The stored file.
    pub file: Key,
    /// Lowercase hex SHA-256.
    pub sha256: String,
    /// Bytes.
    pub size: u64,
}

impl<S: Store> Engine<S> {
    /// The versions of image `name`, newest first.
    pub async fn image_versions(&self, name: &str) -> Result<Vec<ExecutorImage>> {
        let mut kept: Vec<ExecutorImage> = self.store.list(Select::only("name", name, MAX_LIST)).await?;
        kept.sort_by_cached_key(|k| std::cmp::Reverse(Version::parse(&k.image_version).ok()));
        Ok(kept)
    }

    /// Every image version, by name then newest first.
    pub async fn images(&self) -> Result<Vec<ExecutorImage>> {
        let mut all: Vec<ExecutorImage> = self.store.list(Select::all(MAX_LIST)).await?;
        all.sort_by_cached_key(|k| (k.name.clone(), std::cmp::Reverse(Version::parse(&k.image_version).ok())));
        Ok(all)
    }

    /// Keeps `file` as `version` of image `name` (permission ManageRobots):
    /// `None` is the latest version's next patch (1.0.0 for a first one).
    /// The same bytes again change nothing; other bytes under a kept
    /// version are refused.
    pub async fn add_image(
        &self,
        actor: Actor,
        name: &str,
        version: Option<&str>,
        file: NewImage,
    ) -> Result<ExecutorImage> {
        self.require(actor, Permission::ManageRobots).await?;
        image::check_name(name).map_err(Error::InvalidArgument)?;
        let wanted = version
            .map(Version::parse)
            .transpose()
            .map_err(Error::InvalidArgument)?;
        decided!(self, |_attempt| {
            let kept = self.image_versions(name).await?;
            let version = match &wanted {
                Some(v) => v.clone(),
                None => kept
                    .first()
                    .and_then(|k| Version::parse(&k.image_version).ok())
                    .map_or_else(|| Version::parse("1.0.0").expect("a version"), |v| v.next_patch()),
            };
            if !image::upload(&kept, &version, &file.sha256).map_err(Error::InvalidArgument)? {
                let same = kept
                    .into_iter()
                    .find(|k| Version::parse(&k.image_version).is_ok_and(|v| v == version))
                    .ok_or_else(|| Error::Internal("a kept version vanished".into()))?;
                return Ok(Decided::Answer(same));
            }
            let now = self.now();
            let v = version.to_string();
            let img = ExecutorImage {
                key: ExecutorImage::key_of(name, &v),
                version: 1,
                name: name.to_owned(),
                image_version: v,
                file: file.file,
                sha256: file.sha256.clone(),
                size: file.size,
                uploaded_at: now,
                uploaded_by: actor.to_string(),
                retired: false,
            };
            let mut tx = Tx::default();
            tx.record(&img)?.audit(
                now,
                actor,
                "image.upload",
                Subject::Text(format!("image:{}", img.key).into()),
                format!("{} bytes, sha256 {}", img.size, img.sha256),
            );
            Ok(Decided::Commit(tx, img))
        })
    }

    /// Retires `version` of image `name`: no pool starts it any more
    /// (permission ManageRobots). Executors running it keep running.
    pub async fn retire_image(&self, actor: Actor, name: &str, version: &str) -> Result<ExecutorImage> {
        self.require(actor, Permission::ManageRobots).await?;
        let want = Version::parse(version).map_err(Error::InvalidArgument)?;
        decided!(self, |_attempt| {
            let mut img = self
                .image_versions(name)
                .await?
                .into_iter()
                .find(|k| !k.retired && Version::parse(&k.image_version).is_ok_and(|v| v == want))
                .ok_or_else(|| {
                    Error::NotFound(
                        Entity::Record(ExecutorImage::KIND.name),
                        ExecutorImage::key_of(name, version),
                    )
                })?;
            img.retired = true;
            img.version += 1;
            let mut tx = Tx::default();
            tx.record(&img)?.audit(
                self.now(),
                actor,
                "image.retire",
                Subject::Text(format!("image:{}", img.key).into()),
                String::new(),
            );
            Ok(Decided::Commit(tx, img))
        })
    }

    /// The image version pool `pool` starts its robots with, if it names an image.
    pub async fn pool_image(&self, pool: &str) -> Result<Option<ExecutorImage>> {
        let p = self.pool(pool).await?;
        let Some(name) = &p.spec.image else {
            return Ok(None);
        };
        let kept = self.image_versions(name).await?;
        let chosen = image::choose(&kept, p.spec.image_version.as_deref())
            .map_err(|e| Error::InvalidArgument(format!("pool {pool}: image {name}: {e}")))?;
        Ok(Some(chosen.clone()))
    }

    /// Records that a provisioner started `robot` of `pool` on `host`.
    pub async fn executor_started(
        &self,
        robot: &str,
        pool: &str,
        image: Option<&ExecutorImage>,
        host: &str,
        pid: Option<u32>,
    ) -> Result<Executor> {
        decided!(self, |_attempt| {
            let old = self.store.get::<Executor>(robot).await?;
            let now = self.now();
            let e = Executor {
                robot: robot.to_owned(),
                version: old.map_or(1, |o| o.version + 1),
                pool: pool.to_owned(),
                image: image.map(|i| i.key.clone()),
                host: host.to_owned(),
                pid,
                started_at: now,
                stopped_at: None,
            };
            let mut tx = Tx::default();
            tx.record(&e)?.audit(
                now,
                Actor::System,
                "executor.start",
                Subject::Text(format!("robot:{robot}").into()),
                format!(
                    "pool {pool} on {host}{}",
                    image.map_or(String::new(), |i| format!(", image {}", i.key))
                ),
            );
            Ok(Decided::Commit(tx, e))
        })
    }

    /// Records that `robot`'s executor stopped (`why`: reclaimed, exited, server stopping).
    pub async fn executor_stopped(&self, robot: &str, why: &str) -> Result<()> {
        decided!(self, |_attempt| {
            let Some(mut e) = self.store.get::<Executor>(robot).await? else {
                return Ok(Decided::Answer(()));
            };
            if e.stopped_at.is_some() {
                return Ok(Decided::Answer(()));
            }
            let now: Timestamp = self.now();
            e.stopped_at = Some(now);
            e.version += 1;
            let mut tx = Tx::default();
            tx.record(&e)?.audit(
                now,
                Actor::System,
                "executor.stop",
                Subject::Text(format!("robot:{robot}").into()),
                why.to_owned(),
            );
            Ok(Decided::Commit(tx, ()))
        })
    }

    /// Every executor a provisioner started, by robot (permission ManageRobots).
    pub async fn executors(&self, actor: Actor) -> Result<Vec<Executor>> {
        self.require(actor, Permission::ManageRobots).await?;
        Ok(self.store.list(Select::all(MAX_LIST)).await?)
    }
}
