//! Storage buckets (the rules are in [`crate::bucket`]): creating and
//! deleting them (permission ManageProcesses), reading them (any user), and
//! the files in them. A file is written by whoever holds a write link the
//! adapter signed for it, so the engine records it for the system, naming
//! the path; the bytes are the adapter's to keep.

use super::{Decided, Engine, Tx, dup_as_exists};
use crate::audit::Subject;
use crate::bucket::{self, Bucket, BucketFile};
use crate::error::{Entity, Error, Result};
use crate::ids::*;
use crate::model::*;
use crate::record::{Mapped, Select};
use crate::store::{Records, Store};

/// Most buckets listed.
const MAX_BUCKETS: usize = 10_000;

impl<S: Store> Engine<S> {
    /// Creates a bucket in `folder` (permission ManageProcesses).
    pub async fn create_bucket(
        &self,
        actor: Actor,
        name: &str,
        folder: Option<String>,
        identifier: Option<String>,
        description: &str,
    ) -> Result<Bucket> {
        self.require(actor, Permission::ManageProcesses).await?;
        bucket::check_name(name).map_err(Error::InvalidArgument)?;
        let now = self.now();
        let b = Bucket {
            id: self.next_id(IdKind::of::<Bucket>()).await?,
            version: 1,
            name: name.trim().to_owned(),
            identifier: identifier
                .filter(|i| !i.trim().is_empty())
                .unwrap_or_else(|| self.new_key().to_string()),
            description: description.to_owned(),
            folder: folder.filter(|f| f != crate::asset::DEFAULT_FOLDER),
            deleted: false,
            created_at: now,
        };
        let mut tx = Tx::default();
        tx.record(&b)?
            .audit(now, actor, "bucket.create", Subject::Id("bucket", b.id), b.name.clone());
        self.commit(tx).await.map_err(dup_as_exists)?;
        Ok(b)
    }

    /// Deletes a bucket (permission ManageProcesses): its name is free again
    /// and its files are no longer listed or read.
    pub async fn delete_bucket(&self, actor: Actor, id: i64) -> Result<Bucket> {
        self.require(actor, Permission::ManageProcesses).await?;
        decided!(self, |_attempt| {
            let mut b = self.bucket(id).await?;
            b.deleted = true;
            b.version += 1;
            let mut tx = Tx::default();
            tx.record(&b)?.audit(
                self.now(),
                actor,
                "bucket.delete",
                Subject::Id("bucket", b.id),
                b.name.clone(),
            );
            Ok(Decided::Commit(tx, b))
        })
    }

    /// A bucket not deleted, by id.
    pub async fn bucket(&self, id: i64) -> Result<Bucket> {
        self.store
            .get::<Bucket>(id)
            .await?
            .filter(|b| !b.deleted)
            .ok_or_else(|| Error::NotFound(Entity::Record(Bucket::KIND.name), id.to_string()))
    }

    /// Every bucket not deleted, by id.
    pub async fn buckets(&self) -> Result<Vec<Bucket>> {
        let all: Vec<Bucket> = self.store.list(Select::all(MAX_BUCKETS)).await?;
        Ok(all.into_iter().filter(|b| !b.deleted).collect())
    }

    /// Records that `path` of bucket `id` now holds the bytes stored under
    /// `blob` (written through a signed link). The file it replaces, if
    /// any, with its old blob for the caller to drop.
    pub async fn put_bucket_file(
        &self,
        id: i64,
        path: &str,
        content_type: &str,
        size: u64,
        blob: Key,
    ) -> Result<(BucketFile, Option<BucketFile>)> {
        let path = bucket::check_path(path).map_err(Error::InvalidArgument)?;
        decided!(self, |_attempt| {
            let b = self.bucket(id).await?;
            let old: Option<BucketFile> = self.store.get(BucketFile::key_of(b.id, &path)).await?;
            let now = self.now();
            let f = BucketFile {
                key: BucketFile::key_of(b.id, &path),
                version: old.as_ref().map_or(1, |o| o.version + 1),
                bucket: b.id,
                path: path.clone(),
                content_type: content_type.chars().take(256).collect(),
                size,
                blob,
                deleted: false,
                updated_at: now,
            };
            let mut tx = Tx::default();
            tx.record(&f)?.audit(
                now,
                Actor::System,
                "bucket.write",
                Subject::Id("bucket", b.id),
                format!("{path} ({size} bytes, by a signed link)"),
            );
            Ok(Decided::Commit(tx, (f, old.filter(|o| !o.deleted))))
        })
    }

    /// The file at `path` of bucket `id`.
    pub async fn bucket_file(&self, id: i64, path: &str) -> Result<BucketFile> {
        let path = bucket::check_path(path).map_err(Error::InvalidArgument)?;
        let b = self.bucket(id).await?;
        self.store
            .get::<BucketFile>(BucketFile::key_of(b.id, &path))
            .await?
            .filter(|f| !f.deleted)
            .ok_or(Error::NotFound(Entity::Record(BucketFile::KIND.name), path))
    }

    /// The files of bucket `id` a listing shows ([`bucket::listed`]), by path.
    pub async fn bucket_files(
        &self,
        id: i64,
        directory: &str,
        recursive: bool,
        glob: Option<&str>,
    ) -> Result<Vec<BucketFile>> {
        let b = self.bucket(id).await?;
        let all: Vec<BucketFile> = self.store.list(Select::only("bucket", b.id, bucket::MAX_FILES)).await?;
        Ok(all
            .into_iter()
            .filter(|f| !f.deleted && bucket::listed(&f.path, directory, recursive, glob))
            .collect())
    }

    /// Deletes the file at `path` of bucket `id` (permission
    /// ManageProcesses, or a robot running a job: `actor`); its old blob
    /// for the caller to drop.
    pub async fn delete_bucket_file(&self, actor: Actor, id: i64, path: &str) -> Result<BucketFile> {
        if !matches!(actor, Actor::Robot(_)) {
            self.require(actor, Permission::ManageProcesses).await?;
        }
        decided!(self, |_attempt| {
            let mut f = self.bucket_file(id, path).await?;
            f.deleted = true;
            f.version += 1;
            let mut tx = Tx::default();
            tx.record(&f)?.audit(
                self.now(),
                actor,
                "bucket.delete_file",
                Subject::Id("bucket", id),
                f.path.clone(),
            );
            Ok(Decided::Commit(tx, f))
        })
    }
}
