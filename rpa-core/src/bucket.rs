//! Storage buckets (UiPath's `Buckets`, seed 002): named places in a folder
//! where processes keep files by path. Pure: what a bucket and a file path
//! are, and which files a listing shows.
//!
//! A file's bytes live in the server's file store under a key of their own
//! ([`BucketFile::blob`]); writing a path again points it at new bytes.
//! People and robots read and write through links the server signs
//! (`GetReadUri`, `GetWriteUri`), as UiPath's storage does.

use serde::{Deserialize, Serialize};

use crate::asset::{folder_name, name_cell};
use crate::ids::Key;
use crate::record::{Cell, Column, Kind, Mapped, Record};
use crate::time::Timestamp;

/// A bucket.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Bucket {
    /// Serial id.
    pub id: i64,
    /// Commit version.
    pub version: u64,
    /// Its name, unique among the buckets of its folder not deleted.
    pub name: String,
    /// UiPath's `Identifier` (a GUID, given or made).
    pub identifier: String,
    /// What it is for.
    #[serde(default)]
    pub description: String,
    /// Its folder; none: the default folder.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub folder: Option<String>,
    /// Deleted (its name is free again; its files are gone).
    #[serde(default)]
    pub deleted: bool,
    /// When it was created.
    pub created_at: Timestamp,
}

impl Bucket {
    /// Its folder's name.
    pub fn folder(&self) -> &str {
        folder_name(self.folder.as_deref())
    }
}

impl Mapped for Bucket {
    const KIND: &'static Kind = &Kind {
        table: "rpa_buckets",
        name: "bucket",
        key: Column::int("id"),
        sealed: false,
        cached: false,
        columns: &[Column::text("name").unique("bucket name")],
    };
    fn key(&self) -> Cell {
        Cell::Int(self.id)
    }
    fn version(&self) -> u64 {
        self.version
    }
    fn cells(&self) -> Vec<Cell> {
        vec![name_cell(self.deleted, self.folder(), &self.name)]
    }
}

impl Record for Bucket {}

/// A file of a bucket, by path.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BucketFile {
    /// `<bucket id>/<path>`: one record a path.
    pub key: String,
    /// Commit version.
    pub version: u64,
    /// The bucket.
    pub bucket: i64,
    /// Its path in the bucket ([`check_path`]).
    pub path: String,
    /// The content type it was written with.
    pub content_type: String,
    /// Size in bytes.
    pub size: u64,
    /// Where its bytes are in the file store.
    pub blob: Key,
    /// Deleted (a new write brings it back).
    #[serde(default)]
    pub deleted: bool,
    /// When it was last written.
    pub updated_at: Timestamp,
}

impl BucketFile {
    /// The record key of `path` in `bucket`.
    pub fn key_of(bucket: i64, path: &str) -> String {
        format!("{bucket}/{path}")
    }
}

impl Mapped for BucketFile {
    const KIND: &'static Kind = &Kind {
        table: "rpa_bucket_files",
        name: "bucket file",
        key: Column::text("key"),
        sealed: false,
        cached: false,
        columns: &[Column::int("bucket")],
    };
    fn key(&self) -> Cell {
        Cell::Text(self.key.clone())
    }
    fn version(&self) -> u64 {
        self.version
    }
    fn cells(&self) -> Vec<Cell> {
        vec![Cell::Int(self.bucket)]
    }
}

impl Record for BucketFile {}

/// Most characters in a bucket's name.
pub const MAX_NAME: usize = 128;
/// Most characters in a file path.
pub const MAX_PATH: usize = 1024;
/// Most files a bucket lists.
pub const MAX_FILES: usize = 100_000;

/// Checks a bucket's name.
pub fn check_name(name: &str) -> Result<(), String> {
    let name = name.trim();
    if name.is_empty() || name.chars().count() > MAX_NAME || name.chars().any(char::is_control) {
        return Err(format!(
            "a bucket's name has 1 to {MAX_NAME} characters and no control characters"
        ));
    }
    Ok(())
}

/// A file path as stored: `/` between parts (a `\` is taken for one), no
/// leading `/`, no empty, `.` or `..` part, no control characters.
pub fn check_path(path: &str) -> Result<String, String> {
    let path = path.replace('\\', "/");
    let parts: Vec<&str> = path.split('/').filter(|p| !p.is_empty()).collect();
    if parts.is_empty() {
        return Err("a file path names a file".into());
    }
    if parts.iter().any(|p| *p == "." || *p == "..") {
        return Err("a file path has no . or .. part".into());
    }
    let out = parts.join("/");
    if out.chars().count() > MAX_PATH || out.chars().any(char::is_control) {
        return Err(format!(
            "a file path has at most {MAX_PATH} characters and no control characters"
        ));
    }
    Ok(out)
}

/// A directory as a listing takes it: `/`, empty or a path prefix.
fn directory(dir: &str) -> String {
    let d = dir.replace('\\', "/");
    let d = d.trim_matches('/');
    if d.is_empty() { String::new() } else { format!("{d}/") }
}

/// Whether `path` is listed under `dir`: directly in it, or anywhere below
/// it when `recursive`; and its file name matches `glob` (`*` and `?`) if
/// one is given.
pub fn listed(path: &str, dir: &str, recursive: bool, glob: Option<&str>) -> bool {
    let dir = directory(dir);
    let Some(rest) = path.strip_prefix(&dir) else {
        return false;
    };
    if !recursive && rest.contains('/') {
        return false;
    }
    let name = path.rsplit('/').next().unwrap_or(path);
    glob.is_none_or(|g| glob_match(g, name))
}

/// `*` any run of characters, `?` one; case-insensitive as UiPath's.
fn glob_match(glob: &str, name: &str) -> bool {
    let g: Vec<char> = glob.to_lowercase().chars().collect();
    let n: Vec<char> = name.to_lowercase().chars().collect();
    let (mut gi, mut ni) = (0, 0);
    let (mut star, mut mark) = (None, 0);
    while ni < n.len() {
        if gi < g.len() && (g[gi] == '?' || g[gi] == n[ni]) {
            gi += 1;
            ni += 1;
        } else if gi < g.len() && g[gi] == '*' {
            star = Some(gi);
            mark = ni;
            gi += 1;
        } else if let Some(s) = star {
            gi = s + 1;
            mark += 1;
            ni = mark;
        } else {
            return false;
        }
    }
    g[gi..].iter().all(|c| *c == '*')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_normalised_or_refused() {
        assert_eq!(check_path("/in/a.pdf"), Ok("in/a.pdf".into()));
        assert_eq!(check_path("in\\\\b.txt"), Ok("in/b.txt".into()));
        assert_eq!(check_path("a//b"), Ok("a/b".into()));
        assert!(check_path("").is_err());
        assert!(check_path("/").is_err());
        assert!(check_path("../etc/passwd").is_err());
        assert!(check_path("a/./b").is_err());
        assert!(check_path("a\u{0}b").is_err());
        assert!(check_path(&"x".repeat(MAX_PATH + 1)).is_err());
        assert!(check_name("Invoices").is_ok());
        assert!(check_name(" ").is_err());
    }

    #[test]
    fn listings_follow_directory_recursion_and_glob() {
        assert!(listed("a.pdf", "/", false, None));
        assert!(!listed("in/a.pdf", "/", false, None));
        assert!(listed("in/a.pdf", "/", true, None));
        assert!(listed("in/a.pdf", "in", false, None));
        assert!(listed("in/a.pdf", "/in/", false, Some("*.PDF")));
        assert!(!listed("in/a.pdf", "in", false, Some("*.txt")));
        assert!(
            !listed("inbox/a.pdf", "in", true, None),
            "a prefix is a whole directory"
        );
        assert!(listed("in/x/a1.pdf", "in", true, Some("a?.pdf")));
        assert!(glob_match("*", ""));
        assert!(glob_match("a*b*c", "aXbYc"));
        assert!(!glob_match("a*b", "aXc"));
    }
}
