//! Package versions (the rules are in [`crate::package`]): keeping each
//! upload, moving a process to the latest version or the one it is pinned
//! to, in the same commit as the version, and which package a job runs.

use std::sync::Arc;

use super::{Decided, Engine, Tx};
use crate::audit::Subject;
use crate::error::{Error, Result};
use crate::ids::Key;
use crate::model::{Actor, Job, Permission, Process, ProcessSpec};
use crate::package::{self, PackageVersion, Upload, Version};
use crate::record::Select;
use crate::store::{Records, Store};

/// Most versions kept per process that a list reads.
const MAX_VERSIONS: usize = 10_000;

/// A package's bytes as stored, to be kept as a version.
#[derive(Debug, Clone)]
pub struct NewPackage {
    /// The stored file.
    pub file: Key,
    /// Its download link.
    pub uri: String,
    /// Lowercase hex SHA-256.
    pub sha256: String,
    /// Bytes.
    pub size: u64,
}

impl<S: Store> Engine<S> {
    /// Keeps `pkg` as `version` of process `key` (permission
    /// ManageProcesses); `None`: the latest version's next patch (for the
    /// first, the process's own version, or 1.0.0). A process that follows the latest moves to it when it is
    /// the latest, in the same commit. The same bytes again under the same
    /// version change nothing; other bytes are refused.
    pub async fn add_package_version(
        &self,
        actor: Actor,
        key: Key,
        version: Option<&str>,
        pkg: NewPackage,
    ) -> Result<(PackageVersion, Process)> {
        self.require(actor, Permission::ManageProcesses).await?;
        decided!(self, |_attempt| {
            let p = self.process_by_key(key).await?;
            let kept = self.kept_versions(p.id.0).await?;
            let v = match version {
                Some(v) => Version::parse(v).map_err(Error::InvalidArgument)?,
                None => match package::latest(&kept).and_then(|l| Version::parse(&l.name).ok()) {
                    Some(latest) => latest.next_patch(),
                    None => Version::parse(&p.spec.version).unwrap_or(Version {
                        parts: [1, 0, 0],
                        pre: None,
                    }),
                },
            };
            let name = v.to_string();
            let pv = match package::upload(&kept, &v, &pkg.sha256).map_err(Error::InvalidArgument)? {
                Upload::Again => {
                    let same = kept.into_iter().find(|k| Version::parse(&k.name).is_ok_and(|x| x == v));
                    return Ok(Decided::Answer((same.expect("the version kept"), p)));
                }
                Upload::New => PackageVersion {
                    key: PackageVersion::key_of(p.id.0, &name),
                    version: 1,
                    process: p.id.0,
                    name: name.clone(),
                    file: pkg.file,
                    uri: pkg.uri.clone(),
                    sha256: pkg.sha256.clone(),
                    size: pkg.size,
                    uploaded_at: self.now(),
                    uploaded_by: actor.to_string(),
                },
            };
            let mut tx = Tx::default();
            tx.record(&pv)?.audit(
                pv.uploaded_at,
                actor,
                "package.upload",
                Subject::Id("process", p.id.0),
                format!("version {name} sha256:{}", pv.sha256),
            );
            let mut all = kept;
            all.push(pv.clone());
            let moves = p.spec.package_pin.is_none() && package::latest(&all).is_some_and(|l| l.key == pv.key);
            let p = if moves {
                self.run_version(&mut tx, actor, p, &pv, None)
            } else {
                p
            };
            Ok(Decided::Commit(tx, (pv, p)))
        })
    }

    /// Pins process `key` to `version` (a rollback when it is older), or
    /// with `None` lets it follow the latest again (permission ManageProcesses).
    pub async fn pin_package(&self, actor: Actor, key: Key, version: Option<&str>) -> Result<Process> {
        self.require(actor, Permission::ManageProcesses).await?;
        let wanted = version
            .map(Version::parse)
            .transpose()
            .map_err(Error::InvalidArgument)?;
        decided!(self, |_attempt| {
            let p = self.process_by_key(key).await?;
            let kept = self.kept_versions(p.id.0).await?;
            let target = match &wanted {
                Some(v) => kept
                    .iter()
                    .find(|k| Version::parse(&k.name).is_ok_and(|x| x == *v))
                    .ok_or_else(|| {
                        Error::InvalidArgument(format!("process {} has no package version {v}", p.spec.name))
                    })?,
                None => package::latest(&kept).ok_or_else(|| {
                    Error::InvalidArgument(format!("process {} has no package versions", p.spec.name))
                })?,
            };
            let pin = wanted.as_ref().map(ToString::to_string);
            let mut tx = Tx::default();
            let p = self.run_version(&mut tx, actor, p, target, Some(pin));
            Ok(Decided::Commit(tx, p))
        })
    }

    /// A process's package versions, newest first.
    pub async fn package_versions(&self, key: Key) -> Result<Vec<PackageVersion>> {
        let p = self.process_by_key(key).await?;
        Ok(package::newest_first(self.kept_versions(p.id.0).await?))
    }

    async fn kept_versions(&self, process: i64) -> Result<Vec<PackageVersion>> {
        Ok(self.store.list(Select::only("process", process, MAX_VERSIONS)).await?)
    }

    /// Writes `p` running `v` (and its pin, when `pin` says) into `tx`.
    fn run_version(
        &self,
        tx: &mut Tx,
        actor: Actor,
        p: Process,
        v: &PackageVersion,
        pin: Option<Option<String>>,
    ) -> Process {
        let spec = ProcessSpec {
            version: v.name.clone(),
            package_uri: v.uri.clone(),
            package_pin: pin.unwrap_or_else(|| p.spec.package_pin.clone()),
            ..(*p.spec).clone()
        };
        let detail = match &spec.package_pin {
            Some(pin) => format!("runs version {} (pinned to {pin})", v.name),
            None => format!("runs version {} (the latest)", v.name),
        };
        let p = Process {
            spec: Arc::new(spec),
            ..p
        };
        tx.process(p.clone())
            .audit(self.now(), actor, "package.run", Subject::Id("process", p.id.0), detail);
        Process {
            version: p.version + 1,
            ..p
        }
    }

    /// The package link a job of `p` runs: the version it recorded when it
    /// was started, if the process has moved to another since and that
    /// version is kept; else the process's own.
    pub(crate) async fn package_of(&self, job: &Job, p: &Process) -> Result<String> {
        match job.package_version.as_deref() {
            Some(v) if v != p.spec.version => {
                let kept = self
                    .store
                    .get::<PackageVersion>(PackageVersion::key_of(p.id.0, v))
                    .await?;
                Ok(kept.map_or_else(|| p.spec.package_uri.clone(), |k| k.uri))
            }
            _ => Ok(p.spec.package_uri.clone()),
        }
    }
}
