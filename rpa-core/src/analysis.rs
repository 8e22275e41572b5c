//! Run analysis and scenario analysis (seed 001 §6.4.1 b, c): processes
//! carry a region, a scenario and a business domain; run counts, success
//! rates, durations and saved hours are reported per such dimension and per
//! day, week or month.
//!
//! The figures are kept per process and day ([`RunFigures`]), folded from
//! the `job_ended` domain events by the `analysis` consumer in the same
//! commit as its cursor (exactly once). A report reads the figures of its
//! days, at most processes × days rows whatever the number of jobs, and
//! groups them here ([`aggregate`]); a process's attributes are read as they
//! are now, so moving a process to another region moves its history with it.
//! Pure: the attributes, how ended jobs fold and how figures group.

use std::collections::{BTreeMap, HashMap};

use serde::{Deserialize, Serialize};

use crate::ids::ProcessId;
use crate::model::JobState;
use crate::record::{Cell, Column, Kind, Mapped, Record};

/// The consumer that folds ended jobs into [`RunFigures`].
pub const CONSUMER: &str = "analysis";

/// Longest attribute value.
pub const MAX_ATTRIBUTE: usize = 64;

/// Most days one report covers.
pub const MAX_DAYS: i64 = 3660;

/// What a process is, for the analysis.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Attributes {
    /// Where it runs for (a region, a branch).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    /// The business scenario it automates.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scenario: Option<String>,
    /// The business domain it belongs to (finance, HR, ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub business_domain: Option<String>,
    /// Minutes of a person's work a successful run saves.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub saved_minutes: u32,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

impl Attributes {
    /// None set.
    pub fn is_empty(&self) -> bool {
        *self == Attributes::default()
    }

    /// Checks the values (trimmed, blank means none) and returns them cleaned.
    pub fn checked(self) -> Result<Attributes, String> {
        let clean = |name: &str, v: Option<String>| -> Result<Option<String>, String> {
            match v.map(|s| s.trim().to_owned()).filter(|s| !s.is_empty()) {
                Some(s) if s.chars().count() > MAX_ATTRIBUTE => {
                    Err(format!("{name} has at most {MAX_ATTRIBUTE} characters"))
                }
                other => Ok(other),
            }
        };
        if self.saved_minutes > 24 * 60 {
            return Err("savedMinutes is at most 1440 (a day)".into());
        }
        Ok(Attributes {
            region: clean("region", self.region)?,
            scenario: clean("scenario", self.scenario)?,
            business_domain: clean("businessDomain", self.business_domain)?,
            saved_minutes: self.saved_minutes,
        })
    }
}

/// Ended jobs counted by how they ended, with their durations: what the
/// run figures here and a child's figures on a parent
/// ([`crate::federation::ChildFigures`]) keep.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Tally {
    /// Jobs that ended Successful.
    pub successful: u64,
    /// Jobs that ended Faulted.
    pub faulted: u64,
    /// Jobs that ended Stopped.
    pub stopped: u64,
    /// Jobs that ended Canceled.
    pub canceled: u64,
    /// Sum of the durations (start of the last attempt to the end) of the jobs that started.
    pub duration_ms: i64,
    /// How many durations the sum holds.
    pub timed: u64,
}

impl Tally {
    /// Counts a job that ended `state` after `duration_ms` (if it started).
    pub fn count(&mut self, state: JobState, duration_ms: Option<i64>) {
        match state {
            JobState::Successful => self.successful += 1,
            JobState::Faulted => self.faulted += 1,
            JobState::Stopped => self.stopped += 1,
            _ => self.canceled += 1,
        }
        if let Some(d) = duration_ms {
            self.duration_ms += d.max(0);
            self.timed += 1;
        }
    }
}

/// A process's ended jobs on one day (the server's calendar).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RunFigures {
    /// [`RunFigures::key_of`]: the day first, so a range of days is a range of keys.
    pub key: String,
    /// Commit version.
    pub version: u64,
    /// The process.
    pub process: ProcessId,
    /// `yyyy-MM-dd`.
    pub day: String,
    /// Its ended jobs.
    #[serde(flatten)]
    pub tally: Tally,
}

impl RunFigures {
    /// The key of a process's figures on a day.
    pub fn key_of(day: &str, process: ProcessId) -> String {
        format!("{day}/{}", process.0)
    }

    /// No runs yet.
    pub fn empty(day: &str, process: ProcessId) -> RunFigures {
        RunFigures {
            key: Self::key_of(day, process),
            version: 0,
            process,
            day: day.to_owned(),
            tally: Tally::default(),
        }
    }
}

impl Mapped for RunFigures {
    const KIND: &'static Kind = &Kind {
        table: "rpa_run_figures",
        name: "run figures",
        key: Column::text("key"),
        sealed: false,
        cached: false,
        columns: &[],
    };
    fn key(&self) -> Cell {
        self.key.as_str().into()
    }
    fn version(&self) -> u64 {
        self.version
    }
    fn cells(&self) -> Vec<Cell> {
        Vec::new()
    }
}

impl Record for RunFigures {}

/// An ended job, as the figures count it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ended {
    /// Its process.
    pub process: ProcessId,
    /// The day it ended (`yyyy-MM-dd`).
    pub day: String,
    /// How.
    pub state: JobState,
    /// From the start of its last attempt to its end, if it started.
    pub duration_ms: Option<i64>,
}

/// Counts `ended` in `figures` (keyed by [`RunFigures::key_of`]; a missing
/// entry is created).
pub fn fold(figures: &mut BTreeMap<String, RunFigures>, ended: &Ended) {
    figures
        .entry(RunFigures::key_of(&ended.day, ended.process))
        .or_insert_with(|| RunFigures::empty(&ended.day, ended.process))
        .tally
        .count(ended.state, ended.duration_ms);
}

/// What a report groups by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dimension {
    /// Each process (by name).
    Process,
    /// [`Attributes::region`].
    Region,
    /// [`Attributes::scenario`].
    Scenario,
    /// [`Attributes::business_domain`].
    BusinessDomain,
}

impl Dimension {
    /// `process`, `region`, `scenario` or `businessDomain`.
    pub fn parse(s: &str) -> Result<Dimension, String> {
        match s {
            "process" => Ok(Dimension::Process),
            "region" => Ok(Dimension::Region),
            "scenario" => Ok(Dimension::Scenario),
            "businessDomain" => Ok(Dimension::BusinessDomain),
            other => Err(format!(
                "by: {other:?} is not process, region, scenario or businessDomain"
            )),
        }
    }
}

/// How days are grouped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Period {
    /// `yyyy-MM-dd`.
    Day,
    /// ISO week, `yyyy-Www`.
    Week,
    /// `yyyy-MM`.
    Month,
    /// The whole range: `all`.
    All,
}

impl Period {
    /// `day`, `week`, `month` or `all`.
    pub fn parse(s: &str) -> Result<Period, String> {
        match s {
            "day" => Ok(Period::Day),
            "week" => Ok(Period::Week),
            "month" => Ok(Period::Month),
            "all" => Ok(Period::All),
            other => Err(format!("period: {other:?} is not day, week, month or all")),
        }
    }

    /// The period `day` (`yyyy-MM-dd`) falls in.
    pub fn of(self, day: &str) -> String {
        match self {
            Period::Day => day.to_owned(),
            Period::Month => day.get(..7).unwrap_or(day).to_owned(),
            Period::All => "all".to_owned(),
            Period::Week => match chrono::NaiveDate::parse_from_str(day, "%Y-%m-%d") {
                Ok(d) => {
                    use chrono::Datelike;
                    let w = d.iso_week();
                    format!("{}-W{:02}", w.year(), w.week())
                }
                Err(_) => day.to_owned(),
            },
        }
    }
}

/// A report's days: `from` and `to` (`yyyy-MM-dd`, both included), checked.
pub fn days(from: &str, to: &str) -> Result<(String, String), String> {
    let parse = |name: &str, s: &str| {
        chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d").map_err(|_| format!("{name}: {s:?} is not a yyyy-MM-dd date"))
    };
    let (f, t) = (parse("from", from)?, parse("to", to)?);
    if t < f {
        return Err("to is before from".into());
    }
    if (t - f).num_days() >= MAX_DAYS {
        return Err(format!("at most {MAX_DAYS} days in one report"));
    }
    Ok((f.format("%Y-%m-%d").to_string(), t.format("%Y-%m-%d").to_string()))
}

/// The value a report shows for runs whose process has no such attribute.
pub const UNSET: &str = "(none)";

/// One group of a report.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Bucket {
    /// The dimension's value (a process's name, a region, ...; [`UNSET`] when not set).
    pub value: String,
    /// The period ([`Period::of`]).
    pub period: String,
    /// Jobs ended (every way).
    pub runs: u64,
    /// Ended Successful.
    pub successful: u64,
    /// Ended Faulted.
    pub faulted: u64,
    /// Ended Stopped.
    pub stopped: u64,
    /// Ended Canceled (most never ran).
    pub canceled: u64,
    /// Successful among those that ran to an end (Successful, Faulted,
    /// Stopped), 0 to 1; none when none did.
    pub success_rate: Option<f64>,
    /// Mean duration of those that started, in milliseconds.
    pub average_duration_ms: Option<i64>,
    /// Sum of the durations, in hours.
    pub run_hours: f64,
    /// Successful runs × the process's `savedMinutes`, in hours.
    pub saved_hours: f64,
}

/// What a report knows of a process.
#[derive(Debug, Clone)]
pub struct ProcessInfo {
    /// Its name.
    pub name: String,
    /// Its attributes now.
    pub attributes: Attributes,
}

/// Groups `figures` by `by` and `period`, counting only the processes in
/// `processes` (those the reader may see); ordered by period, then value.
pub fn aggregate(
    figures: &[RunFigures],
    processes: &HashMap<ProcessId, ProcessInfo>,
    by: Dimension,
    period: Period,
) -> Vec<Bucket> {
    #[derive(Default)]
    struct Sum {
        successful: u64,
        faulted: u64,
        stopped: u64,
        canceled: u64,
        duration_ms: i64,
        timed: u64,
        saved_minutes: u64,
    }
    let mut sums: BTreeMap<(String, String), Sum> = BTreeMap::new();
    for f in figures {
        let Some(p) = processes.get(&f.process) else { continue };
        let value = match by {
            Dimension::Process => Some(&p.name),
            Dimension::Region => p.attributes.region.as_ref(),
            Dimension::Scenario => p.attributes.scenario.as_ref(),
            Dimension::BusinessDomain => p.attributes.business_domain.as_ref(),
        };
        let value = value.map_or(UNSET, String::as_str).to_owned();
        let s = sums.entry((period.of(&f.day), value)).or_default();
        let t = &f.tally;
        s.successful += t.successful;
        s.faulted += t.faulted;
        s.stopped += t.stopped;
        s.canceled += t.canceled;
        s.duration_ms += t.duration_ms;
        s.timed += t.timed;
        s.saved_minutes += t.successful * u64::from(p.attributes.saved_minutes);
    }
    sums.into_iter()
        .map(|((period, value), s)| {
            let ran = s.successful + s.faulted + s.stopped;
            Bucket {
                value,
                period,
                runs: ran + s.canceled,
                successful: s.successful,
                faulted: s.faulted,
                stopped: s.stopped,
                canceled: s.canceled,
                success_rate: (ran > 0).then(|| s.successful as f64 / ran as f64),
                average_duration_ms: (s.timed > 0).then(|| s.duration_ms / s.timed as i64),
                run_hours: s.duration_ms as f64 / 3_600_000.0,
                saved_hours: s.saved_minutes as f64 / 60.0,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ended(p: i64, day: &str, state: JobState, d: Option<i64>) -> Ended {
        Ended {
            process: ProcessId(p),
            day: day.into(),
            state,
            duration_ms: d,
        }
    }

    fn info(name: &str, region: Option<&str>, saved: u32) -> ProcessInfo {
        ProcessInfo {
            name: name.into(),
            attributes: Attributes {
                region: region.map(Into::into),
                saved_minutes: saved,
                ..Attributes::default()
            },
        }
    }

    #[test]
    fn figures_group_by_region_and_month_with_rates_and_saved_hours() {
        let mut figures = BTreeMap::new();
        for e in [
            ended(1, "2026-11-02", JobState::Successful, Some(60_000)),
            ended(1, "2026-11-02", JobState::Faulted, Some(30_000)),
            ended(2, "2026-11-20", JobState::Successful, Some(90_000)),
            ended(2, "2026-12-01", JobState::Successful, Some(1_000)),
            ended(3, "2026-11-03", JobState::Canceled, None),
            ended(9, "2026-11-03", JobState::Successful, Some(5)),
        ] {
            fold(&mut figures, &e);
        }
        let rows: Vec<RunFigures> = figures.into_values().collect();
        let processes = HashMap::from([
            (ProcessId(1), info("invoices", Some("north"), 30)),
            (ProcessId(2), info("claims", Some("north"), 12)),
            (ProcessId(3), info("hr", None, 0)),
        ]);
        let report = aggregate(&rows, &processes, Dimension::Region, Period::Month);
        let got: Vec<_> = report
            .iter()
            .map(|b| (b.period.as_str(), b.value.as_str(), b.runs, b.successful))
            .collect();
        // Process 9 is not visible: not counted.
        assert_eq!(
            got,
            [
                ("2026-11", "(none)", 1, 0),
                ("2026-11", "north", 3, 2),
                ("2026-12", "north", 1, 1)
            ]
        );
        let north = &report[1];
        assert_eq!(north.success_rate, Some(2.0 / 3.0));
        assert_eq!(north.average_duration_ms, Some(60_000));
        assert_eq!(north.saved_hours, (30.0 + 12.0) / 60.0);
        assert_eq!(report[0].success_rate, None, "only canceled: no rate");
        assert_eq!(report[0].average_duration_ms, None);
    }

    #[test]
    fn periods_and_ranges() {
        assert_eq!(Period::Week.of("2026-11-29"), "2026-W48");
        assert_eq!(Period::Week.of("2027-01-01"), "2026-W53");
        assert_eq!(Period::Month.of("2026-11-29"), "2026-11");
        assert_eq!(Period::All.of("2026-11-29"), "all");
        assert!(days("2026-11-30", "2026-11-01").is_err());
        assert!(days("2026-13-01", "2026-12-01").unwrap_err().contains("from"));
        assert!(days("2000-01-01", "2026-12-01").unwrap_err().contains("at most"));
        assert_eq!(
            days("2026-11-01", "2026-11-30").unwrap(),
            ("2026-11-01".into(), "2026-11-30".into())
        );
        assert!(Dimension::parse("country").is_err());
        assert_eq!(Dimension::parse("businessDomain"), Ok(Dimension::BusinessDomain));
    }

    #[test]
    fn attributes_are_trimmed_and_bounded() {
        let a = Attributes {
            region: Some("  north ".into()),
            scenario: Some("   ".into()),
            ..Attributes::default()
        }
        .checked()
        .unwrap();
        assert_eq!((a.region.as_deref(), a.scenario), (Some("north"), None));
        let long = Attributes {
            business_domain: Some("x".repeat(65)),
            ..Attributes::default()
        };
        assert!(long.checked().unwrap_err().contains("businessDomain"));
        let day = Attributes {
            saved_minutes: 1441,
            ..Attributes::default()
        };
        assert!(day.checked().is_err());
    }
}
