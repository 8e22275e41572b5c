//! Schedules (seed 001 §6.1.2 c: "within a time window, by minute / hour /
//! day / week / month"): when a schedule fires, and what happens to the
//! times the engine was not there for. Pure: times in, times out.
//!
//! - [`Rule`]: every N seconds, minutes or hours; daily at times; weekly on
//!   weekdays; monthly on days (the last day included); a cron expression
//!   (five fields, or six with seconds).
//! - In the schedule's IANA zone. A local time that a daylight-saving change
//!   skips fires at the first local time after the gap; a local time that
//!   occurs twice fires once, at its first occurrence. "Every N" counts
//!   real time from its anchor, so no change of the clocks doubles or skips it.
//! - Within an optional date window (`from`, `until`), an optional daily
//!   time window (`hours`: start inclusive, end exclusive, wrapping past
//!   midnight when the end is earlier), never on a non-working day
//!   (`skip_dates`, local dates).
//! - [`after_downtime`]: the due times the engine comes to late (more than
//!   [`GRACE_MS`] after them) were missed: [`Missed::RunOnce`] (the default)
//!   fires once for all of them, [`Missed::Skip`] fires none of them.
//!
//! [`ScheduleSpec::validate`] refuses what could never fire (an unparsable
//! cron, an empty window, no times) with the reason.

use std::str::FromStr;
use std::sync::Arc;

use chrono::{Datelike, Duration, LocalResult, NaiveDate, NaiveDateTime, NaiveTime, TimeZone, Timelike, Weekday};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::ids::ProcessId;
use crate::record::{Cell, Column, Kind, Mapped, Record};
use crate::time::{Timestamp, Tz};

/// A due time the engine reaches later than this (ms) was missed.
pub const GRACE_MS: u64 = 60_000;

/// The most fire times a search looks at before it gives up.
const SEARCH: usize = 200_000;

/// A day of a month.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum MonthDay {
    /// The day, 1–31 (a month without it is passed over).
    Day(u32),
    /// The word `"last"`: the month's last day.
    Last(LastDay),
}

/// The word `"last"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LastDay {
    /// The month's last day.
    Last,
}

/// When a schedule fires (before its windows and calendar).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", tag = "kind")]
pub enum Rule {
    /// Every `ms` milliseconds of real time from the schedule's anchor.
    Every {
        /// The period.
        ms: u64,
    },
    /// Every day at `times` (local `HH:MM[:SS]`).
    Daily {
        /// Times of day.
        times: Vec<NaiveTime>,
    },
    /// On `days` at `times`.
    Weekly {
        /// Weekdays (`"Mon"`, `"Tuesday"`, ...).
        days: Vec<Weekday>,
        /// Times of day.
        times: Vec<NaiveTime>,
    },
    /// On `days` of the month at `times`.
    Monthly {
        /// Days of the month, or `"last"`.
        days: Vec<MonthDay>,
        /// Times of day.
        times: Vec<NaiveTime>,
    },
    /// A cron expression, read in the schedule's zone.
    Cron {
        /// Five fields (minute hour day month weekday) or six (seconds first).
        expr: String,
    },
}

/// What happens to due times the engine was not there for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Missed {
    /// Fire once for all of them (the default).
    #[default]
    RunOnce,
    /// Fire none of them.
    Skip,
}

/// A schedule's definition.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ScheduleSpec {
    /// Unique name.
    pub name: String,
    /// The process it starts.
    pub process: ProcessId,
    /// The job's arguments (checked against the process when saved).
    pub arguments: Arc<Value>,
    /// When.
    pub rule: Rule,
    /// The IANA zone of its local times (`Asia/Shanghai`, ...).
    pub zone: String,
    /// Not before this time.
    #[serde(default)]
    pub from: Option<Timestamp>,
    /// Not after this time.
    #[serde(default)]
    pub until: Option<Timestamp>,
    /// Only between these local times of day.
    #[serde(default)]
    pub hours: Option<(NaiveTime, NaiveTime)>,
    /// Local dates it never fires on.
    #[serde(default)]
    pub skip_dates: Vec<NaiveDate>,
    /// After downtime.
    #[serde(default)]
    pub missed: Missed,
}

/// A rule made ready to search.
enum Compiled {
    Every(i64),
    Local,
    Cron(Box<croner::Cron>),
}

fn cron(expr: &str) -> Result<croner::Cron, String> {
    croner::parser::CronParser::builder()
        .seconds(croner::parser::Seconds::Optional)
        .build()
        .parse(expr)
        .map_err(|e| format!("cron expression {expr:?}: {e}"))
}

impl ScheduleSpec {
    /// The zone, read.
    pub fn tz(&self) -> Result<Tz, String> {
        Tz::from_str(&self.zone).map_err(|_| format!("unknown time zone {:?}", self.zone))
    }

    /// Refuses a definition that is malformed or could never fire; `anchor`
    /// is the schedule's creation time.
    pub fn validate(&self, anchor: Timestamp) -> Result<(), String> {
        if self.name.trim().is_empty() || self.name.len() > 256 {
            return Err("a schedule's name must be 1 to 256 characters".into());
        }
        self.tz()?;
        match &self.rule {
            Rule::Every { ms } if *ms < 1_000 => return Err("every: the period must be at least one second".into()),
            Rule::Daily { times } | Rule::Weekly { times, .. } | Rule::Monthly { times, .. } if times.is_empty() => {
                return Err("at least one time of day is needed".into());
            }
            Rule::Weekly { days, .. } if days.is_empty() => return Err("weekly: at least one weekday is needed".into()),
            Rule::Monthly { days, .. } if days.is_empty() => return Err("monthly: at least one day is needed".into()),
            Rule::Monthly { days, .. } => {
                if let Some(d) = days
                    .iter()
                    .find(|d| matches!(d, MonthDay::Day(n) if !(1..=31).contains(n)))
                {
                    return Err(format!("monthly: {d:?} is not a day of a month"));
                }
            }
            Rule::Cron { expr } => {
                cron(expr)?;
            }
            _ => {}
        }
        if let (Some(f), Some(u)) = (self.from, self.until)
            && f >= u
        {
            return Err("the date window is empty: from must be before until".into());
        }
        if let Some((a, b)) = self.hours
            && a == b
        {
            return Err("the daily time window is empty: its start and end are the same".into());
        }
        if self.next_after(anchor, anchor)?.is_none() {
            return Err("the schedule would never fire within its windows".into());
        }
        Ok(())
    }

    fn compiled(&self) -> Result<Compiled, String> {
        Ok(match &self.rule {
            Rule::Every { ms } => Compiled::Every(i64::try_from((*ms).max(1)).unwrap_or(i64::MAX)),
            Rule::Cron { expr } => Compiled::Cron(Box::new(cron(expr)?)),
            _ => Compiled::Local,
        })
    }

    /// The first fire time strictly after `t` (`anchor`: where "every N"
    /// counts from, the schedule's creation), or `None` when there is none.
    pub fn next_after(&self, anchor: Timestamp, t: Timestamp) -> Result<Option<Timestamp>, String> {
        let tz = self.tz()?;
        let rule = self.compiled()?;
        let anchor = self.from.unwrap_or(anchor);
        let mut t = match self.from {
            Some(f) if f.0 > t.0 => Timestamp(f.0 - 1),
            _ => t,
        };
        for _ in 0..SEARCH {
            let Some(c) = self.raw_next(&rule, tz, anchor, t) else {
                return Ok(None);
            };
            if self.until.is_some_and(|u| c > u) {
                return Ok(None);
            }
            if self.allowed(tz, c) {
                return Ok(Some(c));
            }
            t = c;
        }
        Ok(None)
    }

    /// The next `n` fire times after `t`.
    pub fn upcoming(&self, anchor: Timestamp, t: Timestamp, n: usize) -> Result<Vec<Timestamp>, String> {
        let mut out = Vec::with_capacity(n);
        let mut t = t;
        while out.len() < n {
            match self.next_after(anchor, t)? {
                Some(c) => {
                    out.push(c);
                    t = c;
                }
                None => break,
            }
        }
        Ok(out)
    }

    fn allowed(&self, tz: Tz, c: Timestamp) -> bool {
        let local = local(tz, c);
        if self.skip_dates.contains(&local.date()) {
            return false;
        }
        match self.hours {
            Some((a, b)) if a < b => (a..b).contains(&local.time()),
            Some((a, b)) => local.time() >= a || local.time() < b,
            None => true,
        }
    }

    /// The rule's next time after `t`, before windows and calendar.
    fn raw_next(&self, rule: &Compiled, tz: Tz, anchor: Timestamp, t: Timestamp) -> Option<Timestamp> {
        match rule {
            Compiled::Every(ms) => {
                if t < anchor {
                    return Some(anchor);
                }
                let k = (t.0 - anchor.0) / ms + 1;
                Some(Timestamp(anchor.0.checked_add(k.checked_mul(*ms)?)?))
            }
            Compiled::Cron(c) => {
                let start = tz.timestamp_millis_opt(t.0).single()?;
                c.find_next_occurrence(&start, false)
                    .ok()
                    .map(|d| Timestamp(d.timestamp_millis()))
            }
            Compiled::Local => {
                let times = self.times();
                let mut day = local(tz, t).date();
                // Eight years covers "monthly on the 29th of February"-like rules.
                for _ in 0..(366 * 8) {
                    if self.on_day(day) {
                        for &time in &times {
                            let at = resolve(tz, day.and_time(time));
                            if at > t {
                                return Some(at);
                            }
                        }
                    }
                    day = day.succ_opt()?;
                }
                None
            }
        }
    }

    fn times(&self) -> Vec<NaiveTime> {
        let mut v = match &self.rule {
            Rule::Daily { times } | Rule::Weekly { times, .. } | Rule::Monthly { times, .. } => times.clone(),
            _ => Vec::new(),
        };
        v.sort_unstable();
        v.dedup();
        v
    }

    fn on_day(&self, day: NaiveDate) -> bool {
        match &self.rule {
            Rule::Weekly { days, .. } => days.contains(&day.weekday()),
            Rule::Monthly { days, .. } => days.iter().any(|d| match d {
                MonthDay::Day(n) => day.day() == *n,
                MonthDay::Last(_) => day.succ_opt().is_none_or(|next| next.month() != day.month()),
            }),
            _ => true,
        }
    }
}

fn local(tz: Tz, t: Timestamp) -> NaiveDateTime {
    tz.timestamp_millis_opt(t.0)
        .single()
        .map_or_else(NaiveDateTime::default, |d| d.naive_local())
}

/// The instant of a local time: the first of two (clocks set back), or the
/// first local minute after a gap (clocks set forward).
fn resolve(tz: Tz, local: NaiveDateTime) -> Timestamp {
    let mut l = local;
    for _ in 0..(24 * 60) {
        match tz.from_local_datetime(&l) {
            LocalResult::Single(d) => return Timestamp(d.timestamp_millis()),
            LocalResult::Ambiguous(first, _) => return Timestamp(first.timestamp_millis()),
            LocalResult::None => {
                l = (l + Duration::minutes(1))
                    .with_second(0)
                    .and_then(|x| x.with_nanosecond(0))
                    .unwrap_or(l + Duration::minutes(1));
            }
        }
    }
    Timestamp(local.and_utc().timestamp_millis())
}

/// What to do when a schedule's `next_at` has come.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Firing {
    /// The due time this firing is for (the last one that came).
    pub due: Timestamp,
    /// Whether a job starts.
    pub fire: bool,
    /// Due times missed (folded into this firing, or skipped).
    pub missed: u32,
    /// The schedule's next fire time afterwards.
    pub next: Option<Timestamp>,
}

/// The firing for a schedule whose next fire time `next_at` has come by
/// `now` (`None` if it has not): every due time up to `now` is accounted
/// for, and the next one after `now` is found.
pub fn after_downtime(
    spec: &ScheduleSpec,
    anchor: Timestamp,
    next_at: Timestamp,
    now: Timestamp,
) -> Result<Option<Firing>, String> {
    if next_at > now {
        return Ok(None);
    }
    let mut last = next_at;
    let mut count: u32 = 1;
    let next = loop {
        match spec.next_after(anchor, last)? {
            Some(n) if n <= now => {
                last = n;
                count = count.saturating_add(1);
            }
            other => break other,
        }
    };
    let late = |t: Timestamp| now.0.saturating_sub(t.0) > i64::try_from(GRACE_MS).unwrap_or(i64::MAX);
    let (fire, missed) = match spec.missed {
        Missed::RunOnce => (true, count - 1),
        Missed::Skip if late(last) => (false, count),
        Missed::Skip => (true, count - 1),
    };
    Ok(Some(Firing {
        due: last,
        fire,
        missed,
        next,
    }))
}

/// A schedule, as kept.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Schedule {
    /// Serial id.
    pub id: i64,
    /// Commit version.
    pub version: u64,
    /// Its definition.
    pub spec: ScheduleSpec,
    /// Whether it fires.
    pub enabled: bool,
    /// Its next fire time (`None`: disabled, or never again).
    pub next_at: Option<Timestamp>,
    /// Where "every N" counts from: its creation.
    pub anchor: Timestamp,
    /// The user its jobs are started as.
    pub owner: crate::ids::UserId,
    /// Creation time.
    pub created_at: Timestamp,
}

impl Mapped for Schedule {
    const KIND: &'static Kind = &Kind {
        table: "rpa_schedules",
        name: "schedule",
        key: Column::int("id"),
        sealed: false,
        cached: false,
        columns: &[Column::text("name").unique("schedule name"), Column::int("enabled")],
    };
    fn key(&self) -> Cell {
        Cell::Int(self.id)
    }
    fn version(&self) -> u64 {
        self.version
    }
    fn cells(&self) -> Vec<Cell> {
        vec![self.spec.name.as_str().into(), Cell::Int(i64::from(self.enabled))]
    }
}

impl Record for Schedule {}

/// One firing of a schedule, as kept: its history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScheduleFiring {
    /// Serial id.
    pub id: i64,
    /// Commit version.
    pub version: u64,
    /// The schedule.
    pub schedule: i64,
    /// The due time it is for.
    pub due: Timestamp,
    /// When it was handled.
    pub at: Timestamp,
    /// The job started, if one was.
    pub job: Option<crate::ids::JobId>,
    /// That job's key.
    pub job_key: Option<crate::ids::Key>,
    /// Due times missed (folded into this one, or skipped).
    pub missed: u32,
    /// Why no job started: skipped after downtime, or refused by a limit.
    pub reason: Option<String>,
}

impl Mapped for ScheduleFiring {
    const KIND: &'static Kind = &Kind {
        table: "rpa_schedule_firings",
        name: "schedule firing",
        key: Column::int("id"),
        sealed: false,
        cached: false,
        columns: &[Column::int("schedule"), Column::text("slot").unique("schedule firing")],
    };
    fn key(&self) -> Cell {
        Cell::Int(self.id)
    }
    fn version(&self) -> u64 {
        self.version
    }
    fn cells(&self) -> Vec<Cell> {
        vec![Cell::Int(self.schedule), slot(self.schedule, self.due).into()]
    }
}

impl Record for ScheduleFiring {}

/// One firing per schedule and due time: the unique slot that makes a
/// second node's attempt at the same due time fail.
pub fn slot(schedule: i64, due: Timestamp) -> String {
    format!("{schedule}@{}", due.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(rule: Rule, zone: &str) -> ScheduleSpec {
        ScheduleSpec {
            name: "s".into(),
            process: ProcessId(1),
            arguments: Arc::new(serde_json::json!({})),
            rule,
            zone: zone.into(),
            from: None,
            until: None,
            hours: None,
            skip_dates: Vec::new(),
            missed: Missed::RunOnce,
        }
    }

    fn at(zone: &str, s: &str) -> Timestamp {
        let tz: Tz = zone.parse().unwrap();
        let l = NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S").unwrap();
        resolve(tz, l)
    }

    fn show(zone: &str, t: Timestamp) -> String {
        let tz: Tz = zone.parse().unwrap();
        tz.timestamp_millis_opt(t.0)
            .unwrap()
            .format("%Y-%m-%d %H:%M:%S %Z")
            .to_string()
    }

    fn t(h: u32, m: u32) -> NaiveTime {
        NaiveTime::from_hms_opt(h, m, 0).unwrap()
    }

    const NY: &str = "America/New_York";

    fn fires(s: &ScheduleSpec, from: &str, n: usize) -> Vec<String> {
        let start = at(&s.zone, from);
        s.upcoming(start, start, n)
            .unwrap()
            .into_iter()
            .map(|x| show(&s.zone, x))
            .collect()
    }

    #[test]
    fn daily_times_survive_both_daylight_saving_changes_once_each() {
        let s = spec(
            Rule::Daily {
                times: vec![t(2, 30), t(1, 30)],
            },
            NY,
        );
        assert_eq!(
            fires(&s, "2026-03-07 12:00:00", 4),
            [
                "2026-03-08 01:30:00 EST",
                "2026-03-08 03:00:00 EDT", // 02:30 does not exist: the first minute after the gap
                "2026-03-09 01:30:00 EDT",
                "2026-03-09 02:30:00 EDT",
            ]
        );
        assert_eq!(
            fires(&s, "2026-10-31 12:00:00", 4),
            [
                "2026-11-01 01:30:00 EDT", // 01:30 happens twice: once
                "2026-11-01 02:30:00 EST",
                "2026-11-02 01:30:00 EST",
                "2026-11-02 02:30:00 EST",
            ]
        );
    }

    #[test]
    fn every_n_counts_real_time_across_a_clock_change() {
        let s = spec(Rule::Every { ms: 3_600_000 }, NY);
        let start = at(NY, "2026-11-01 00:00:00");
        let times = s.upcoming(start, start, 4).unwrap();
        assert!(times.windows(2).all(|w| w[1].0 - w[0].0 == 3_600_000));
        assert_eq!(
            times.iter().map(|x| show(NY, *x)).collect::<Vec<_>>(),
            [
                "2026-11-01 01:00:00 EDT",
                "2026-11-01 01:00:00 EST",
                "2026-11-01 02:00:00 EST",
                "2026-11-01 03:00:00 EST"
            ]
        );
    }

    #[test]
    fn weekly_monthly_and_the_last_day() {
        let w = spec(
            Rule::Weekly {
                days: vec![Weekday::Mon, Weekday::Fri],
                times: vec![t(9, 0)],
            },
            "Asia/Shanghai",
        );
        assert_eq!(
            fires(&w, "2026-11-30 10:00:00", 3),
            [
                "2026-12-04 09:00:00 CST",
                "2026-12-07 09:00:00 CST",
                "2026-12-11 09:00:00 CST"
            ]
        );
        let m = spec(
            Rule::Monthly {
                days: vec![MonthDay::Day(31), MonthDay::Last(LastDay::Last)],
                times: vec![t(18, 0)],
            },
            "Europe/Berlin",
        );
        assert_eq!(
            fires(&m, "2027-01-31 19:00:00", 3),
            [
                "2027-02-28 18:00:00 CET",
                "2027-03-31 18:00:00 CEST",
                "2027-04-30 18:00:00 CEST"
            ],
            "the 31st and the last day are one firing in a 31-day month"
        );
    }

    #[test]
    fn windows_and_non_working_days_bound_the_fire_times() {
        let mut s = spec(Rule::Every { ms: 4 * 3_600_000 }, "UTC");
        s.hours = Some((t(8, 0), t(18, 0)));
        s.skip_dates = vec![NaiveDate::from_ymd_opt(2026, 12, 2).unwrap()];
        s.from = Some(at("UTC", "2026-12-01 00:00:00"));
        s.until = Some(at("UTC", "2026-12-03 12:00:00"));
        assert_eq!(
            fires(&s, "2026-11-30 00:00:00", 10),
            [
                "2026-12-01 08:00:00 UTC",
                "2026-12-01 12:00:00 UTC",
                "2026-12-01 16:00:00 UTC",
                "2026-12-03 08:00:00 UTC",
                "2026-12-03 12:00:00 UTC",
            ]
        );
        let mut night = spec(Rule::Every { ms: 3 * 3_600_000 }, "UTC");
        night.hours = Some((t(22, 0), t(3, 0)));
        assert_eq!(
            fires(&night, "2026-12-01 12:00:00", 3),
            [
                "2026-12-02 00:00:00 UTC",
                "2026-12-03 00:00:00 UTC",
                "2026-12-04 00:00:00 UTC"
            ],
            "a window past midnight"
        );
    }

    #[test]
    fn cron_in_the_zone_with_optional_seconds() {
        let s = spec(
            Rule::Cron {
                expr: "0 9 * * 1-5".into(),
            },
            "Asia/Shanghai",
        );
        assert_eq!(
            fires(&s, "2026-12-04 10:00:00", 2),
            ["2026-12-07 09:00:00 CST", "2026-12-08 09:00:00 CST"]
        );
        let secs = spec(
            Rule::Cron {
                expr: "*/20 * * * * *".into(),
            },
            "UTC",
        );
        assert_eq!(
            fires(&secs, "2026-12-04 10:00:05", 3),
            [
                "2026-12-04 10:00:20 UTC",
                "2026-12-04 10:00:40 UTC",
                "2026-12-04 10:01:00 UTC"
            ]
        );
    }

    #[test]
    fn what_could_never_fire_is_refused_with_the_reason() {
        let now = at("UTC", "2026-12-01 00:00:00");
        let bad = |s: ScheduleSpec| s.validate(now).unwrap_err();
        assert!(
            bad(spec(
                Rule::Cron {
                    expr: "61 * * * *".into()
                },
                "UTC"
            ))
            .contains("cron")
        );
        assert!(bad(spec(Rule::Daily { times: vec![t(1, 0)] }, "Mars/Olympus")).contains("time zone"));
        assert!(bad(spec(Rule::Daily { times: vec![] }, "UTC")).contains("time of day"));
        assert!(bad(spec(Rule::Every { ms: 10 }, "UTC")).contains("second"));
        let mut empty = spec(Rule::Daily { times: vec![t(1, 0)] }, "UTC");
        empty.from = Some(now.plus_ms(10));
        empty.until = Some(now);
        assert!(bad(empty).contains("date window"));
        let mut over = spec(Rule::Daily { times: vec![t(1, 0)] }, "UTC");
        over.until = Some(now.plus_ms(1));
        assert!(bad(over).contains("never fire"));
        let mut outside = spec(Rule::Daily { times: vec![t(7, 0)] }, "UTC");
        outside.hours = Some((t(8, 0), t(18, 0)));
        assert!(bad(outside).contains("never fire"));
        let bad_day = spec(
            Rule::Monthly {
                days: vec![MonthDay::Day(32)],
                times: vec![t(1, 0)],
            },
            "UTC",
        );
        assert!(bad(bad_day).contains("day of a month"));
        assert_eq!(spec(Rule::Daily { times: vec![t(1, 0)] }, "UTC").validate(now), Ok(()));
    }

    #[test]
    fn after_downtime_fires_once_for_all_missed_or_none() {
        let mut s = spec(Rule::Every { ms: 60_000 }, "UTC");
        let anchor = Timestamp(0);
        assert_eq!(
            after_downtime(&s, anchor, Timestamp(60_000), Timestamp(59_999)).unwrap(),
            None
        );
        let on_time = after_downtime(&s, anchor, Timestamp(60_000), Timestamp(60_500))
            .unwrap()
            .unwrap();
        assert_eq!(
            on_time,
            Firing {
                due: Timestamp(60_000),
                fire: true,
                missed: 0,
                next: Some(Timestamp(120_000))
            }
        );
        // Down from 60 s to 10 min 30 s: ten due times came.
        let run_once = after_downtime(&s, anchor, Timestamp(60_000), Timestamp(630_000))
            .unwrap()
            .unwrap();
        assert_eq!(
            (run_once.fire, run_once.missed, run_once.due, run_once.next),
            (true, 9, Timestamp(600_000), Some(Timestamp(660_000)))
        );
        s.missed = Missed::Skip;
        let skip = after_downtime(&s, anchor, Timestamp(60_000), Timestamp(630_000))
            .unwrap()
            .unwrap();
        assert_eq!(
            (skip.fire, skip.missed),
            (true, 9),
            "the last due time is on time: it fires"
        );
        s.rule = Rule::Every { ms: 600_000 };
        let all_late = after_downtime(&s, anchor, Timestamp(600_000), Timestamp(1_800_000 + 61_000))
            .unwrap()
            .unwrap();
        assert_eq!(
            (all_late.fire, all_late.missed, all_late.next),
            (false, 3, Some(Timestamp(2_400_000))),
            "every due time came more than a minute ago: none fires"
        );
    }
}
