//! Package versions (seed 001 §6.1.1): every package uploaded for a process
//! is kept under its version, which never changes content; a process runs
//! the latest version (by version order) unless it is pinned to one, and
//! pinning an older one is a rollback. A job runs the version it recorded
//! when it was started, even if the process has moved on since.
//!
//! Versions are `MAJOR[.MINOR[.PATCH]][-PRE]` with numeric parts, compared
//! part by part; a pre-release sorts before its release (`1.2.0-rc1` <
//! `1.2.0`). Pure: what a version is, which is latest, what an upload does.

use std::cmp::Ordering;

use serde::{Deserialize, Serialize};

use crate::ids::Key;
use crate::record::{Cell, Column, Kind, Mapped, Record};
use crate::time::Timestamp;

/// A version, parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Version {
    /// The numeric parts, three of them (missing ones are 0).
    pub parts: [u64; 3],
    /// The pre-release label, if any.
    pub pre: Option<String>,
}

impl Version {
    /// Parses `1`, `1.2`, `1.2.3`, `1.2.3-rc.1`; the reason otherwise.
    pub fn parse(s: &str) -> Result<Version, String> {
        let bad = || format!("version {s:?}: expected MAJOR.MINOR.PATCH with numbers, as 1.2.0 or 1.2.0-rc1");
        let s = s.trim();
        let (numbers, pre) = match s.split_once('-') {
            Some((n, p)) if !p.is_empty() && p.chars().all(|c| c.is_ascii_alphanumeric() || c == '.') => {
                (n, Some(p.to_owned()))
            }
            Some(_) => return Err(bad()),
            None => (s, None),
        };
        let mut parts = [0u64; 3];
        let mut n = 0;
        for (i, part) in numbers.split('.').enumerate() {
            if i >= 3 || part.is_empty() || !part.chars().all(|c| c.is_ascii_digit()) || part.len() > 18 {
                return Err(bad());
            }
            parts[i] = part.parse().map_err(|_| bad())?;
            n += 1;
        }
        if n == 0 {
            return Err(bad());
        }
        Ok(Version { parts, pre })
    }

    /// The next patch version (`1.2.3` → `1.2.4`; `1.2.3-rc1` → `1.2.3`).
    pub fn next_patch(&self) -> Version {
        let [a, b, c] = self.parts;
        match self.pre {
            Some(_) => Version {
                parts: [a, b, c],
                pre: None,
            },
            None => Version {
                parts: [a, b, c.saturating_add(1)],
                pre: None,
            },
        }
    }
}

impl std::fmt::Display for Version {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let [a, b, c] = self.parts;
        write!(f, "{a}.{b}.{c}")?;
        if let Some(p) = &self.pre {
            write!(f, "-{p}")?;
        }
        Ok(())
    }
}

impl Ord for Version {
    fn cmp(&self, other: &Self) -> Ordering {
        self.parts
            .cmp(&other.parts)
            .then_with(|| match (&self.pre, &other.pre) {
                (None, None) => Ordering::Equal,
                (Some(_), None) => Ordering::Less,
                (None, Some(_)) => Ordering::Greater,
                (Some(a), Some(b)) => a.cmp(b),
            })
    }
}

impl PartialOrd for Version {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

/// One uploaded version of a process's package. Never changed once
/// written: a version is its bytes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PackageVersion {
    /// `"<process id>:<version>"`.
    pub key: String,
    /// Commit version.
    pub version: u64,
    /// The process (its serial id).
    pub process: i64,
    /// The package's version, as uploaded.
    pub name: String,
    /// The stored file holding the bytes.
    pub file: Key,
    /// Where robots fetch it (the server's file link).
    pub uri: String,
    /// Lowercase hex SHA-256 of the bytes.
    pub sha256: String,
    /// Bytes.
    pub size: u64,
    /// When it was uploaded.
    pub uploaded_at: Timestamp,
    /// Who uploaded it (an audit actor word: `user:3`, `system`).
    pub uploaded_by: String,
}

impl PackageVersion {
    /// The record key of `version` of process `process`.
    pub fn key_of(process: i64, version: &str) -> String {
        format!("{process}:{}", version.trim())
    }
}

impl Mapped for PackageVersion {
    const KIND: &'static Kind = &Kind {
        table: "rpa_package_versions",
        name: "package version",
        key: Column::text("key"),
        sealed: false,
        cached: false,
        columns: &[Column::int("process")],
    };
    fn key(&self) -> Cell {
        self.key.as_str().into()
    }
    fn version(&self) -> u64 {
        self.version
    }
    fn cells(&self) -> Vec<Cell> {
        vec![Cell::Int(self.process)]
    }
}

impl Record for PackageVersion {}

/// The latest of `versions` by version order.
pub fn latest(versions: &[PackageVersion]) -> Option<&PackageVersion> {
    versions
        .iter()
        .filter_map(|v| Version::parse(&v.name).ok().map(|p| (p, v)))
        .max_by(|a, b| a.0.cmp(&b.0))
        .map(|(_, v)| v)
}

/// `versions` newest first.
pub fn newest_first(mut versions: Vec<PackageVersion>) -> Vec<PackageVersion> {
    versions.sort_by_cached_key(|v| std::cmp::Reverse(Version::parse(&v.name).ok()));
    versions
}

/// What an upload of `sha256` as `version` does, given the versions kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Upload {
    /// A new version: keep it.
    New,
    /// The same bytes under the same version again: nothing changes.
    Again,
}

/// Decides an upload: a version that exists with other bytes is refused
/// (versions never change content).
pub fn upload(kept: &[PackageVersion], version: &Version, sha256: &str) -> Result<Upload, String> {
    let name = version.to_string();
    match kept
        .iter()
        .find(|k| Version::parse(&k.name).is_ok_and(|v| v == *version))
    {
        Some(k) if k.sha256 == sha256 => Ok(Upload::Again),
        Some(_) => Err(format!(
            "version {name} exists with other content; a version never changes: upload it as a new version"
        )),
        None => Ok(Upload::New),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(s: &str) -> Version {
        Version::parse(s).unwrap()
    }

    fn kept(name: &str, sha: &str) -> PackageVersion {
        PackageVersion {
            key: PackageVersion::key_of(1, name),
            version: 1,
            process: 1,
            name: name.into(),
            file: Key([0; 16]),
            uri: String::new(),
            sha256: sha.into(),
            size: 0,
            uploaded_at: Timestamp(0),
            uploaded_by: "system".into(),
        }
    }

    #[test]
    fn versions_compare_by_number_and_pre_releases_come_first() {
        assert!(v("1.10.0") > v("1.9.9"));
        assert!(v("2") > v("1.99.99"));
        assert_eq!(v("1.2"), v("1.2.0"));
        assert!(v("1.2.0-rc1") < v("1.2.0"));
        assert!(v("1.2.0-rc1") > v("1.1.9"));
        assert!(v("1.2.0-rc2") > v("1.2.0-rc1"));
        assert_eq!(v("1.2").to_string(), "1.2.0");
        assert_eq!(v("1.2.3").next_patch().to_string(), "1.2.4");
        assert_eq!(v("1.3.0-rc1").next_patch().to_string(), "1.3.0");
    }

    #[test]
    fn odd_versions_are_refused_with_the_expected_form() {
        for bad in [
            "",
            "v1",
            "1..2",
            "1.2.3.4",
            "1.x",
            "1.2-",
            "-rc",
            "1.2.3-r c",
            "99999999999999999999",
        ] {
            let e = Version::parse(bad).unwrap_err();
            assert!(e.contains("MAJOR.MINOR.PATCH"), "{bad}: {e}");
        }
    }

    #[test]
    fn the_latest_is_by_version_not_by_upload() {
        let all = vec![kept("1.10.0", "a"), kept("1.9.0", "b"), kept("2.0.0-rc1", "c")];
        assert_eq!(latest(&all).unwrap().name, "2.0.0-rc1");
        let names: Vec<String> = newest_first(all).into_iter().map(|k| k.name).collect();
        assert_eq!(names, ["2.0.0-rc1", "1.10.0", "1.9.0"]);
        assert!(latest(&[]).is_none());
    }

    #[test]
    fn a_version_keeps_its_bytes() {
        let all = vec![kept("1.0.0", "aa")];
        assert_eq!(upload(&all, &v("1.0.0"), "aa"), Ok(Upload::Again));
        assert_eq!(upload(&all, &v("1.0"), "aa"), Ok(Upload::Again));
        assert!(upload(&all, &v("1.0.0"), "bb").unwrap_err().contains("never changes"));
        assert_eq!(upload(&all, &v("1.0.1"), "bb"), Ok(Upload::New));
    }
}
