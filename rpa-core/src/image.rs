//! Executor images (seed 001 §6.2.2 b): the image files executors start
//! from, uploaded and versioned (a version never changes content), listed,
//! retired; an elastic pool names the image its provisioner starts
//! executors with (the latest version, or one it pins), and each executor
//! a provisioner started is recorded with its image version, its host and
//! when it started and stopped ("VM information"). Pure: the records and
//! which version a pool runs.

use serde::{Deserialize, Serialize};

use crate::ids::Key;
use crate::package::Version;
use crate::record::{Cell, Column, Kind, Mapped, Record};
use crate::time::Timestamp;

/// A version of an image.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ExecutorImage {
    /// [`ExecutorImage::key_of`].
    pub key: String,
    /// Commit version.
    pub version: u64,
    /// The image's name.
    pub name: String,
    /// This version (`MAJOR.MINOR.PATCH[-PRE]`).
    pub image_version: String,
    /// The stored file.
    pub file: Key,
    /// Lowercase hex SHA-256 of its bytes.
    pub sha256: String,
    /// Bytes.
    pub size: u64,
    /// When it was uploaded.
    pub uploaded_at: Timestamp,
    /// Who uploaded it.
    pub uploaded_by: String,
    /// Retired: no pool starts it any more.
    #[serde(default)]
    pub retired: bool,
}

impl ExecutorImage {
    /// The key of `name`'s `version`.
    pub fn key_of(name: &str, version: &str) -> String {
        format!("{name}@{version}")
    }
}

impl Mapped for ExecutorImage {
    const KIND: &'static Kind = &Kind {
        table: "rpa_executor_images",
        name: "executor image",
        key: Column::text("key"),
        sealed: false,
        cached: false,
        columns: &[Column::text("name")],
    };
    fn key(&self) -> Cell {
        self.key.as_str().into()
    }
    fn version(&self) -> u64 {
        self.version
    }
    fn cells(&self) -> Vec<Cell> {
        vec![self.name.as_str().into()]
    }
}

impl Record for ExecutorImage {}

/// Checks an image's name: 1 to 64 letters, digits, `.`, `_` or `-`.
pub fn check_name(name: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
    if ok {
        Ok(())
    } else {
        Err(format!("image name {name:?}: 1 to 64 letters, digits, '.', '_' or '-'"))
    }
}

/// What uploading `sha256` as `version` of an image does, given its kept versions.
pub fn upload(kept: &[ExecutorImage], version: &Version, sha256: &str) -> Result<bool, String> {
    match kept
        .iter()
        .find(|k| Version::parse(&k.image_version).is_ok_and(|v| v == *version))
    {
        Some(k) if k.sha256 == sha256 => Ok(false),
        Some(_) => Err(format!(
            "version {version} exists with other content; a version never changes: upload it as a new version"
        )),
        None => Ok(true),
    }
}

/// The version a pool starts: `pinned` if given (and not retired), else
/// the latest version not retired.
pub fn choose<'a>(kept: &'a [ExecutorImage], pinned: Option<&str>) -> Result<&'a ExecutorImage, String> {
    let live = kept.iter().filter(|k| !k.retired);
    match pinned {
        Some(p) => {
            let want = Version::parse(p)?;
            live.into_iter()
                .find(|k| Version::parse(&k.image_version).is_ok_and(|v| v == want))
                .ok_or_else(|| format!("image version {p} is not kept (or retired)"))
        }
        None => live
            .filter_map(|k| Version::parse(&k.image_version).ok().map(|v| (v, k)))
            .max_by(|a, b| a.0.cmp(&b.0))
            .map(|(_, k)| k)
            .ok_or_else(|| "the image has no version that is not retired".into()),
    }
}

/// An executor a provisioner started: its "VM information".
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Executor {
    /// Its robot's id (the key: a robot id started again is its new run).
    pub robot: String,
    /// Commit version.
    pub version: u64,
    /// Its pool.
    pub pool: String,
    /// Its image and version (`name@version`), if the pool names one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    /// The machine it runs on.
    pub host: String,
    /// Its process id there.
    pub pid: Option<u32>,
    /// When it started.
    pub started_at: Timestamp,
    /// When it stopped, if it did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stopped_at: Option<Timestamp>,
}

impl Mapped for Executor {
    const KIND: &'static Kind = &Kind {
        table: "rpa_executors",
        name: "executor",
        key: Column::text("robot"),
        sealed: false,
        cached: false,
        columns: &[Column::text("pool")],
    };
    fn key(&self) -> Cell {
        self.robot.as_str().into()
    }
    fn version(&self) -> u64 {
        self.version
    }
    fn cells(&self) -> Vec<Cell> {
        vec![self.pool.as_str().into()]
    }
}

impl Record for Executor {}

#[cfg(test)]
mod tests {
    use super::*;

    fn image(v: &str, sha: &str, retired: bool) -> ExecutorImage {
        ExecutorImage {
            key: ExecutorImage::key_of("desktop", v),
            version: 1,
            name: "desktop".into(),
            image_version: v.into(),
            file: Key([1; 16]),
            sha256: sha.into(),
            size: 1,
            uploaded_at: Timestamp(0),
            uploaded_by: "admin".into(),
            retired,
        }
    }

    #[test]
    fn a_pool_runs_the_latest_live_version_or_its_pin() {
        let kept = vec![
            image("1.0.0", "a", false),
            image("1.10.0", "b", false),
            image("2.0.0", "c", true),
        ];
        assert_eq!(choose(&kept, None).unwrap().image_version, "1.10.0", "2.0.0 is retired");
        assert_eq!(choose(&kept, Some("1.0")).unwrap().image_version, "1.0.0");
        assert!(choose(&kept, Some("2.0.0")).is_err());
        assert!(choose(&[], None).is_err());
    }

    #[test]
    fn a_version_never_changes_content() {
        let kept = vec![image("1.0.0", "a", false)];
        let v = Version::parse("1.0.0").unwrap();
        assert_eq!(upload(&kept, &v, "a"), Ok(false));
        assert!(upload(&kept, &v, "b").is_err());
        assert_eq!(upload(&kept, &Version::parse("1.0.1").unwrap(), "b"), Ok(true));
        assert!(check_name("win-10_desktop.v2").is_ok());
        assert!(check_name("a/b").is_err());
        assert!(check_name("").is_err());
    }
}
