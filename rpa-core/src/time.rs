//! Time as data: the [`Clock`] trait, a [`ManualClock`] for tests, and [`Timestamp`].
//!
//! The core never reads the wall clock itself; it asks the clock it was given.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

use chrono::{DateTime, FixedOffset, NaiveDateTime, Offset, TimeZone, Utc};
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

    /// Calendar day number (days since 1970-01-01) in the zone `offset`.
    pub fn day(self, offset: FixedOffset) -> i64 {
        (self.0 + i64::from(offset.local_minus_utc()) * 1000).div_euclid(DAY_MS)
    }

    /// Start of the next calendar day in the zone `offset`.
    pub fn next_midnight(self, offset: FixedOffset) -> Timestamp {
        let off = i64::from(offset.local_minus_utc()) * 1000;
        Timestamp((self.day(offset) + 1) * DAY_MS - off)
    }

    /// As a chrono time in the zone `offset`.
    pub fn in_zone(self, offset: FixedOffset) -> DateTime<FixedOffset> {
        offset.from_utc_datetime(
            &DateTime::<Utc>::from_timestamp_millis(self.0)
                .unwrap_or_default()
                .naive_utc(),
        )
    }

    /// `yyyy-MM-dd HH:mm:ss` in the zone `offset` (seed 000's time format).
    pub fn format_local(self, offset: FixedOffset) -> String {
        self.in_zone(offset).format("%Y-%m-%d %H:%M:%S").to_string()
    }

    /// Parses `yyyy-MM-dd HH:mm:ss` read in the zone `offset`.
    pub fn parse_local(s: &str, offset: FixedOffset) -> Option<Timestamp> {
        let naive = NaiveDateTime::parse_from_str(s.trim(), "%Y-%m-%d %H:%M:%S").ok()?;
        let dt = offset.from_local_datetime(&naive).single()?;
        Some(Timestamp(dt.timestamp_millis()))
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.in_zone(Utc.fix()))
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

    #[test]
    fn local_format_round_trips_in_a_zone() {
        let cst = FixedOffset::east_opt(8 * 3600).unwrap();
        let t = Timestamp::parse_local("2021-09-22 16:05:24", cst).unwrap();
        assert_eq!(t.format_local(cst), "2021-09-22 16:05:24");
        assert_eq!(t.format_local(FixedOffset::east_opt(0).unwrap()), "2021-09-22 08:05:24");
        assert!(Timestamp::parse_local("2021-09-22", cst).is_none());
    }

    #[test]
    fn days_follow_the_zone() {
        let cst = FixedOffset::east_opt(8 * 3600).unwrap();
        let before = Timestamp::parse_local("2021-09-22 23:59:59", cst).unwrap();
        let after = before.plus_ms(1000);
        assert_eq!(after.day(cst), before.day(cst) + 1);
        assert_eq!(before.next_midnight(cst), after);
    }
}
