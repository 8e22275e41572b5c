//! Retention of what runs leave (screenshots, recordings, output files):
//! run files older than a number of days are removed, and while run files
//! hold more than a number of bytes the oldest go first. Packages and
//! personal-folder files are never removed by retention. A removed file
//! keeps its record (marked purged, so the audit log and the run's log
//! still name it); its bytes are deleted and a download answers not found.
//! Pure: which files go.

use crate::model::{FileSource, StoredFile};
use crate::time::Timestamp;

/// How long run files are kept and how many bytes they may hold.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Policy {
    /// Days a run file is kept (`None`: no limit).
    pub max_age_days: Option<u64>,
    /// Most bytes all run files may hold (`None`: no limit).
    pub max_bytes: Option<u64>,
}

impl Policy {
    /// Whether it removes anything ever.
    pub fn is_off(&self) -> bool {
        self.max_age_days.is_none() && self.max_bytes.is_none()
    }
}

/// Whether retention may remove `f`: a file of a run, not yet purged.
pub fn is_run_file(f: &StoredFile) -> bool {
    f.job.is_some() && f.personal_of.is_none() && f.source != FileSource::Package && f.purged_at.is_none()
}

/// The run files among `files` that `policy` removes at `now`: those past
/// the age, then the oldest of the rest while the total is over the bytes.
/// Oldest first.
pub fn to_remove<'a>(files: &'a [StoredFile], policy: &Policy, now: Timestamp) -> Vec<&'a StoredFile> {
    let mut kept: Vec<&StoredFile> = files.iter().filter(|f| is_run_file(f)).collect();
    kept.sort_by_key(|f| (f.created_at, f.id));
    let cutoff = policy
        .max_age_days
        .map(|d| Timestamp(now.0.saturating_sub((d as i64).saturating_mul(86_400_000))));
    let mut out = Vec::new();
    let mut rest = Vec::new();
    for f in kept {
        if cutoff.is_some_and(|c| f.created_at < c) {
            out.push(f);
        } else {
            rest.push(f);
        }
    }
    if let Some(max) = policy.max_bytes {
        let mut total: u64 = rest.iter().map(|f| f.size).sum();
        for f in rest {
            if total <= max {
                break;
            }
            total -= f.size;
            out.push(f);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::{FileId, JobId, Key};
    use crate::model::Actor;

    const DAY: i64 = 86_400_000;

    fn file(id: i64, day: i64, size: u64) -> StoredFile {
        StoredFile {
            id: FileId(id),
            key: Key([id as u8; 16]),
            version: 1,
            source: FileSource::File,
            name: format!("f{id}"),
            size,
            sha256: String::new(),
            owner: Actor::System,
            personal_of: None,
            job: Some(JobId(1)),
            created_at: Timestamp(day * DAY),
            purged_at: None,
        }
    }

    fn ids(v: Vec<&StoredFile>) -> Vec<i64> {
        v.into_iter().map(|f| f.id.0).collect()
    }

    #[test]
    fn old_files_go_then_the_oldest_while_over_the_bytes() {
        let files = vec![file(3, 9, 10), file(1, 1, 10), file(2, 5, 10), file(4, 10, 10)];
        let now = Timestamp(10 * DAY);
        let age = Policy {
            max_age_days: Some(3),
            max_bytes: None,
        };
        assert_eq!(ids(to_remove(&files, &age, now)), [1, 2]);
        let bytes = Policy {
            max_age_days: None,
            max_bytes: Some(25),
        };
        assert_eq!(ids(to_remove(&files, &bytes, now)), [1, 2], "40 bytes down to 20");
        let both = Policy {
            max_age_days: Some(6),
            max_bytes: Some(10),
        };
        assert_eq!(ids(to_remove(&files, &both, now)), [1, 3]);
        assert!(to_remove(&files, &Policy::default(), now).is_empty());
    }

    #[test]
    fn packages_personal_files_and_purged_ones_are_left_alone() {
        let mut package = file(1, 0, 100);
        package.source = FileSource::Package;
        let mut personal = file(2, 0, 100);
        personal.personal_of = Some("alice".into());
        let mut loose = file(3, 0, 100);
        loose.job = None;
        let mut purged = file(4, 0, 100);
        purged.purged_at = Some(Timestamp(1));
        let files = vec![package, personal, loose, purged, file(5, 0, 1)];
        let all = Policy {
            max_age_days: Some(0),
            max_bytes: Some(0),
        };
        assert_eq!(ids(to_remove(&files, &all, Timestamp(DAY))), [5]);
    }
}
