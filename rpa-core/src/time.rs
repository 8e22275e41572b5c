//! Time as data: the [`Clock`] trait, a [`ManualClock`] for tests, and [`Timestamp`].
//!
//! The core never reads the wall clock itself; it asks the clock it was given.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

use chrono::{DateTime, Datelike, LocalResult, NaiveDate, NaiveDateTime, NaiveTime, TimeZone, Timelike, Utc};
pub use chrono_tz::Tz;
use serde::{Deserialize, Serialize};

/// Milliseconds since the Unix epoch, UTC.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Timestamp(pub i64);

/// One day in milliseconds.
pub const DAY_MS: i64 = 86_400_000;

impl Timestamp {
    /// `self + ms`, saturating.
    pub fn plus_ms(self, ms: u64) -> Timestamp {
        Timestamp(self.0.saturating_add(i64::try_from(ms).unwrap_or(i64::MAX)))
    }

    /// Calendar day number (days since 1970-01-01) in the zone `tz`.
    pub fn day(self, tz: Tz) -> i64 {
        i64::from(self.in_zone(tz).date_naive().num_days_from_ce()) - UNIX_EPOCH_DAYS_FROM_CE
    }

    /// Start of the next calendar day in the zone `tz`.
    pub fn next_midnight(self, tz: Tz) -> Timestamp {
        self.day_bounds(tz).1
    }

    /// This calendar day in the zone `tz`: its first instant, the first
    /// instant of the next day, and its number (see [`Timestamp::day`]). A
    /// day is 23, 24 or 25 hours long where the zone changes its offset.
    pub fn day_bounds(self, tz: Tz) -> (Timestamp, Timestamp, i64) {
        let date = self.in_zone(tz).date_naive();
        let next = date.succ_opt().unwrap_or(date);
        (
            start_of(date, tz),
            start_of(next, tz),
            i64::from(date.num_days_from_ce()) - UNIX_EPOCH_DAYS_FROM_CE,
        )
    }

    /// As a chrono time in the zone `tz`.
    pub fn in_zone(self, tz: Tz) -> DateTime<Tz> {
        tz.from_utc_datetime(
            &DateTime::<Utc>::from_timestamp_millis(self.0)
                .unwrap_or_default()
                .naive_utc(),
        )
    }

    /// `yyyy-MM-dd HH:mm:ss` in the zone `tz` (seed 000's time format).
    pub fn format_local(self, tz: Tz) -> String {
        self.in_zone(tz).format("%Y-%m-%d %H:%M:%S").to_string()
    }

    /// Parses `yyyy-MM-dd HH:mm:ss` read in the zone `tz`. A local time the
    /// zone shows twice (clocks going back) is the earlier instant; one it
    /// skips (clocks going forward) is read as the instant the skip ends.
    pub fn parse_local(s: &str, tz: Tz) -> Option<Timestamp> {
        let naive = NaiveDateTime::parse_from_str(s.trim(), "%Y-%m-%d %H:%M:%S").ok()?;
        Some(local_instant(naive, tz))
    }
}

/// Days from 0001-01-01 (chrono's common era) to 1970-01-01.
const UNIX_EPOCH_DAYS_FROM_CE: i64 = 719_163;

/// The instant a local time names in `tz`: the earlier of two, or, for a
/// time the zone skips, the end of the skip.
fn local_instant(naive: NaiveDateTime, tz: Tz) -> Timestamp {
    match tz.from_local_datetime(&naive) {
        LocalResult::Single(t) | LocalResult::Ambiguous(t, _) => Timestamp(t.timestamp_millis()),
        LocalResult::None => {
            // Offset changes skip whole minutes, at most a few hours: the
            // first local minute after the gap is where it ends.
            let mut probe = naive
                .with_second(0)
                .unwrap_or(naive)
                .with_nanosecond(0)
                .unwrap_or(naive);
            for _ in 0..(4 * 60) {
                probe += chrono::Duration::minutes(1);
                if let Some(t) = tz.from_local_datetime(&probe).earliest() {
                    return Timestamp(t.timestamp_millis());
                }
            }
            Timestamp(naive.and_utc().timestamp_millis())
        }
    }
}

/// The first instant of `date` in `tz`.
fn start_of(date: NaiveDate, tz: Tz) -> Timestamp {
    local_instant(date.and_time(NaiveTime::MIN), tz)
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.in_zone(Tz::UTC))
    }
}

/// Where the engine gets "now".
pub trait Clock: Send + Sync + 'static {
    /// The current time.
    fn now(&self) -> Timestamp;
}

/// The wall clock, for servers.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Timestamp {
        Timestamp(Utc::now().timestamp_millis())
    }
}

/// A clock that moves only when told to: tests jump it to the next deadline.
#[derive(Debug, Clone)]
pub struct ManualClock(Arc<AtomicI64>);

impl ManualClock {
    /// A clock stopped at `start`.
    pub fn new(start: Timestamp) -> Self {
        ManualClock(Arc::new(AtomicI64::new(start.0)))
    }
    /// Moves the clock forward by `ms`.
    pub fn advance(&self, ms: u64) {
        self.0
            .fetch_add(i64::try_from(ms).unwrap_or(i64::MAX), Ordering::SeqCst);
    }
    /// Sets the clock to `t` (never backwards).
    pub fn set(&self, t: Timestamp) {
        self.0.fetch_max(t.0, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Timestamp {
        Timestamp(self.0.load(Ordering::SeqCst))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SHANGHAI: Tz = chrono_tz::Asia::Shanghai;
    const BERLIN: Tz = chrono_tz::Europe::Berlin;

    #[test]
    fn local_format_round_trips_in_a_zone() {
        let t = Timestamp::parse_local("2021-09-22 16:05:24", SHANGHAI).unwrap();
        assert_eq!(t.format_local(SHANGHAI), "2021-09-22 16:05:24");
        assert_eq!(t.format_local(Tz::UTC), "2021-09-22 08:05:24");
        assert!(Timestamp::parse_local("2021-09-22", SHANGHAI).is_none());
    }

    #[test]
    fn days_follow_the_zone() {
        let before = Timestamp::parse_local("2021-09-22 23:59:59", SHANGHAI).unwrap();
        let after = before.plus_ms(1000);
        assert_eq!(after.day(SHANGHAI), before.day(SHANGHAI) + 1);
        assert_eq!(before.next_midnight(SHANGHAI), after);
        assert_eq!(Timestamp(0).day(Tz::UTC), 0);
        assert_eq!(Timestamp(DAY_MS - 1).day(Tz::UTC), 0);
        assert_eq!(Timestamp(-1).day(Tz::UTC), -1);
    }

    #[test]
    fn days_where_clocks_change_are_23_and_25_hours_long() {
        // Europe/Berlin: 2026-03-29 02:00 → 03:00, 2026-10-25 03:00 → 02:00.
        let spring = Timestamp::parse_local("2026-03-29 12:00:00", BERLIN).unwrap();
        let (start, end, day) = spring.day_bounds(BERLIN);
        assert_eq!(end.0 - start.0, 23 * 3_600_000);
        assert_eq!(start.format_local(BERLIN), "2026-03-29 00:00:00");
        assert_eq!(end.format_local(BERLIN), "2026-03-30 00:00:00");
        assert_eq!(spring.day(BERLIN), day);
        let autumn = Timestamp::parse_local("2026-10-25 12:00:00", BERLIN).unwrap();
        let (start, end, _) = autumn.day_bounds(BERLIN);
        assert_eq!(end.0 - start.0, 25 * 3_600_000);
        // Every instant of the day counts for it, the repeated hour too.
        let repeated = Timestamp::parse_local("2026-10-25 02:30:00", BERLIN).unwrap();
        assert_eq!(repeated.plus_ms(3_600_000).format_local(BERLIN), "2026-10-25 02:30:00");
        assert_eq!(repeated.plus_ms(3_600_000).day(BERLIN), autumn.day(BERLIN));
    }

    #[test]
    fn local_times_a_zone_skips_or_repeats_are_read_without_failing() {
        // 02:30 does not exist in Berlin on 2026-03-29: read as 03:00 (01:00 UTC).
        let skipped = Timestamp::parse_local("2026-03-29 02:30:00", BERLIN).unwrap();
        assert_eq!(skipped.format_local(BERLIN), "2026-03-29 03:00:00");
        assert_eq!(skipped.format_local(Tz::UTC), "2026-03-29 01:00:00");
        // 02:30 happens twice on 2026-10-25: the first one (CEST, 00:30 UTC).
        let twice = Timestamp::parse_local("2026-10-25 02:30:00", BERLIN).unwrap();
        assert_eq!(twice.format_local(Tz::UTC), "2026-10-25 00:30:00");
    }
}
