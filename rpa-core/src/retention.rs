//! Retention of what runs leave. Run files (screenshots, recordings,
//! output files) older than a number of days are removed, and while run
//! files hold more than a number of bytes the oldest go first. Packages and
//! personal-folder files are never removed by retention. A removed file
//! keeps its record (marked purged, so the audit log and the run's log
//! still name it); its bytes are deleted and a download answers not found.
//! Run logs of jobs that ended and were created more than a number of days
//! ago are deleted, window by window of creation time behind a cursor
//! ([`LogCursor`]), so each job's logs are looked at once; a job still
//! running past the age keeps its logs. Pure: which files go, which
//! window of jobs is next.

use serde::{Deserialize, Serialize};

use crate::model::{FileSource, StoredFile};
use crate::record::{Cell, Column, Kind, Mapped, Record};
use crate::time::Timestamp;

/// How far log retention has gone: the logs of jobs created at or before
/// `through` were looked at.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogCursor {
    /// Always `"logs"`.
    pub name: String,
    /// Commit version.
    pub version: u64,
    /// Jobs created at or before this were handled.
    pub through: Timestamp,
}

impl LogCursor {
    /// Nothing handled yet.
    pub fn start() -> LogCursor {
        LogCursor {
            name: "logs".into(),
            version: 0,
            through: Timestamp(-1),
        }
    }
}

impl Mapped for LogCursor {
    const KIND: &'static Kind = &Kind {
        table: "rpa_log_retention",
        name: "log retention",
        key: Column::text("name"),
        sealed: false,
        cached: false,
        columns: &[],
    };
    fn key(&self) -> Cell {
        self.name.as_str().into()
    }
    fn version(&self) -> u64 {
        self.version
    }
    fn cells(&self) -> Vec<Cell> {
        Vec::new()
    }
}

impl Record for LogCursor {}

/// The longest window of creation time one step looks at.
pub const LOG_WINDOW_MS: i64 = 86_400_000;

/// The next window of creation times, `(from, to)` inclusive, whose ended
/// jobs lose their logs when logs are kept `days`; `None` when the cursor
/// has reached the age. No job was created before `earliest` (the oldest
/// process's creation), so the first window starts there.
pub fn next_log_window(
    cursor: &LogCursor,
    days: u64,
    now: Timestamp,
    earliest: Timestamp,
) -> Option<(Timestamp, Timestamp)> {
    let cutoff = now.0.saturating_sub((days as i64).saturating_mul(86_400_000));
    let from = (cursor.through.0 + 1).max(earliest.0);
    if from > cutoff {
        return None;
    }
    Some((
        Timestamp(from),
        Timestamp(cutoff.min(from.saturating_add(LOG_WINDOW_MS - 1))),
    ))
}

/// How long run files are kept and how many bytes they may hold.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Policy {
    /// Days a run file is kept (`None`: no limit).
    pub max_age_days: Option<u64>,
    /// Most bytes all run files may hold (`None`: no limit).
    pub max_bytes: Option<u64>,
    /// Days the run logs of an ended job are kept (`None`: no limit).
    pub log_days: Option<u64>,
}

impl Policy {
    /// Whether it removes anything ever.
    pub fn is_off(&self) -> bool {
        self.max_age_days.is_none() && self.max_bytes.is_none() && self.log_days.is_none()
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
            log_days: None,
        };
        assert_eq!(ids(to_remove(&files, &age, now)), [1, 2]);
        let bytes = Policy {
            max_age_days: None,
            max_bytes: Some(25),
            log_days: None,
        };
        assert_eq!(ids(to_remove(&files, &bytes, now)), [1, 2], "40 bytes down to 20");
        let both = Policy {
            max_age_days: Some(6),
            max_bytes: Some(10),
            log_days: None,
        };
        assert_eq!(
            ids(to_remove(&files, &both, now)),
            [1, 2, 3],
            "age, then the oldest down to 10 bytes"
        );
        assert!(to_remove(&files, &Policy::default(), now).is_empty());
    }

    #[test]
    fn log_windows_walk_up_to_the_age_a_day_at_a_time() {
        let now = Timestamp(10 * DAY);
        let zero = Timestamp(0);
        let mut c = LogCursor::start();
        assert_eq!(
            next_log_window(&c, 3, now, zero),
            Some((Timestamp(0), Timestamp(DAY - 1)))
        );
        assert_eq!(
            next_log_window(&c, 3, now, Timestamp(5 * DAY)),
            Some((Timestamp(5 * DAY), Timestamp(6 * DAY - 1))),
            "from the oldest process on"
        );
        c.through = Timestamp(6 * DAY + 5);
        assert_eq!(
            next_log_window(&c, 3, now, zero),
            Some((Timestamp(6 * DAY + 6), Timestamp(7 * DAY)))
        );
        c.through = Timestamp(7 * DAY);
        assert_eq!(next_log_window(&c, 3, now, zero), None, "caught up");
        assert_eq!(
            next_log_window(&c, 0, now, zero).unwrap().1,
            Timestamp(8 * DAY),
            "a day at most"
        );
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
            log_days: None,
        };
        assert_eq!(ids(to_remove(&files, &all, Timestamp(DAY))), [5]);
    }
}
