//! The process catalogue (the rules are in [`crate::catalogue`]):
//! publishing a process's current package, searching, subscribing (a new
//! process of the subscriber's, with its own kept version of the
//! published package, in one commit) and unpublishing. Every change audited.

use super::{Decided, Engine, Tx, dup_as_exists};
use crate::audit::Subject;
use crate::catalogue::{self, Listing};
use crate::error::{Entity, Error, Result};
use crate::ids::*;
use crate::model::*;
use crate::package::{PackageVersion, Version};
use crate::record::{Mapped, Select};
use crate::store::People as _;
use crate::store::{Records, Store};

/// Most listings read.
const MAX_LISTINGS: usize = 10_000;

impl<S: Store> Engine<S> {
    /// Publishes process `key`'s current package version under `name`
    /// (default: the process's name), with a description and tags
    /// (permission ManageProcesses).
    pub async fn publish(
        &self,
        actor: Actor,
        key: Key,
        name: Option<&str>,
        description: &str,
        tags: &[String],
    ) -> Result<Listing> {
        self.require(actor, Permission::ManageProcesses).await?;
        let p = self.process_by_key(key).await?;
        let name = name.map(str::trim).filter(|n| !n.is_empty()).unwrap_or(&p.spec.name);
        let tags = catalogue::check(name, description, tags).map_err(Error::InvalidArgument)?;
        let kept = self
            .store
            .get::<PackageVersion>(PackageVersion::key_of(p.id.0, &p.spec.version))
            .await?
            .ok_or_else(|| {
                Error::InvalidArgument(format!(
                    "process {} has no uploaded package version {} to publish",
                    p.spec.name, p.spec.version
                ))
            })?;
        let now = self.now();
        let l = Listing {
            id: self.next_id(IdKind::of::<Listing>()).await?,
            version: 1,
            name: name.to_owned(),
            description: description.trim().to_owned(),
            tags,
            process: p.id.0,
            package_version: kept.name.clone(),
            file: kept.file,
            uri: kept.uri.clone(),
            sha256: kept.sha256.clone(),
            published_by: actor.to_string(),
            published_at: now,
            unpublished: false,
            subscriptions: 0,
        };
        let mut tx = Tx::default();
        tx.record(&l)?.audit(
            now,
            actor,
            "catalogue.publish",
            Subject::Id("listing", l.id),
            format!("{} version {}", l.name, l.package_version),
        );
        self.commit(tx).await.map_err(dup_as_exists)?;
        Ok(l)
    }

    /// Unpublishes a listing (permission ManageProcesses); processes
    /// subscribed to it keep running their package.
    pub async fn unpublish(&self, actor: Actor, id: i64) -> Result<Listing> {
        self.require(actor, Permission::ManageProcesses).await?;
        decided!(self, |_attempt| {
            let mut l = self.listing(id).await?;
            l.unpublished = true;
            l.version += 1;
            let mut tx = Tx::default();
            tx.record(&l)?.audit(
                self.now(),
                actor,
                "catalogue.unpublish",
                Subject::Id("listing", l.id),
                l.name.clone(),
            );
            Ok(Decided::Commit(tx, l))
        })
    }

    /// A published listing.
    pub async fn listing(&self, id: i64) -> Result<Listing> {
        self.store
            .get::<Listing>(id)
            .await?
            .filter(|l| !l.unpublished)
            .ok_or_else(|| Error::NotFound(Entity::Record(Listing::KIND.name), id.to_string()))
    }

    /// Published listings matching every word of `query` and `tag`, by name.
    pub async fn search_catalogue(&self, query: &str, tag: Option<&str>) -> Result<Vec<Listing>> {
        let all: Vec<Listing> = self.store.list(Select::all(MAX_LISTINGS)).await?;
        let mut found: Vec<Listing> = all.into_iter().filter(|l| catalogue::matches(l, query, tag)).collect();
        found.sort_by_cached_key(|l| l.name.to_lowercase());
        Ok(found)
    }

    /// Subscribes to a listing: a new process named `name` (default: the
    /// listing's) in `folder`, with the published process's definition,
    /// running the published package (kept as its own first version), and
    /// granted to `actor` if a user (permission ManageProcesses).
    pub async fn subscribe(&self, actor: Actor, id: i64, name: Option<&str>, folder: Option<&str>) -> Result<Process> {
        self.require(actor, Permission::ManageProcesses).await?;
        let l = self.listing(id).await?;
        let source = self
            .store
            .process(ProcessId(l.process))
            .await?
            .ok_or_else(|| Error::Internal("a listing without its process".into()))?;
        let name = name.map(str::trim).filter(|n| !n.is_empty()).unwrap_or(&l.name);
        let pkg = super::NewPackage {
            file: l.file,
            uri: l.uri.clone(),
            sha256: l.sha256.clone(),
            size: 0,
        };
        let origin = format!("listing {} ({})", l.id, l.name);
        self.process_from(
            actor,
            &source.spec,
            name,
            folder,
            &l.package_version,
            pkg,
            &origin,
            Some(&l),
        )
        .await
    }

    /// A process from a parent's listing (two-level collaboration, seed 001
    /// §6.5.3 a): `spec` is the parent's definition, `pkg` the package
    /// bytes this server stored (permission ManageProcesses).
    #[allow(clippy::too_many_arguments)]
    pub async fn adopt_listing(
        &self,
        actor: Actor,
        spec: &ProcessSpec,
        name: &str,
        folder: Option<&str>,
        version: &str,
        pkg: super::NewPackage,
        origin: &str,
    ) -> Result<Process> {
        self.require(actor, Permission::ManageProcesses).await?;
        self.process_from(actor, spec, name, folder, version, pkg, origin, None)
            .await
    }

    /// A new process named `name` in `folder` with `spec`'s definition,
    /// running `pkg` as its first package `version`, granted to `actor` if
    /// a user: one commit, audited as `catalogue.subscribe` from `origin`,
    /// that counts the subscription on `listing` if given.
    #[allow(clippy::too_many_arguments)]
    async fn process_from(
        &self,
        actor: Actor,
        spec: &ProcessSpec,
        name: &str,
        folder: Option<&str>,
        version: &str,
        pkg: super::NewPackage,
        origin: &str,
        listing: Option<&Listing>,
    ) -> Result<Process> {
        let name = name.trim().to_owned();
        if self.store.processes().await?.iter().any(|p| p.spec.name == name) {
            return Err(Error::AlreadyExists(format!("process {name}")));
        }
        let version = Version::parse(version).map_err(Error::InvalidArgument)?.to_string();
        let spec = ProcessSpec {
            name,
            version: version.clone(),
            package_uri: pkg.uri.clone(),
            package_pin: None,
            folder: folder.map(str::trim).filter(|f| !f.is_empty()).map(str::to_owned),
            trigger: None,
            pipeline: None,
            pause_workflow: None,
            ..spec.clone()
        };
        super::jobs::check_spec(&spec)?;
        let now = self.now();
        let p = self.new_process(spec, now).await?;
        let kept = PackageVersion {
            key: PackageVersion::key_of(p.id.0, &version),
            version: 1,
            process: p.id.0,
            name: version,
            file: pkg.file,
            uri: pkg.uri,
            sha256: pkg.sha256,
            size: pkg.size,
            uploaded_at: now,
            uploaded_by: actor.to_string(),
        };
        let mut tx = Tx::default();
        tx.process(p.clone()).record(&kept)?.audit(
            now,
            actor,
            "catalogue.subscribe",
            Subject::Id("process", p.id.0),
            format!("{} from {origin}", p.spec.name),
        );
        if let Actor::User(uid) = actor
            && let Some(mut u) = self.store.user(uid).await?
        {
            u.grants.insert(p.id);
            tx.user(u)?;
        }
        if let Some(l) = listing {
            tx.record(&Listing {
                version: l.version + 1,
                subscriptions: l.subscriptions + 1,
                ..l.clone()
            })?;
        }
        self.commit(tx).await?;
        Ok(Process { version: 1, ..p })
    }
}
