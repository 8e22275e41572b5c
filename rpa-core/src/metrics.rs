//! Figures for operators: counters and latency histograms the engine and
//! its adapters record as they work, and the Prometheus text format they
//! are read in (`/metrics`).
//!
//! Two kinds of figure:
//! - recorded here, in this node's memory, as things happen: commits and
//!   their latency (one commit in [`TIMED_EVERY`] is timed: reading the
//!   clock costs as much as the rest of an in-memory commit's bookkeeping), optimistic-concurrency conflicts, dispatch latency
//!   (a job's start → its Execute sent), webhook deliveries, HTTP requests
//!   by API family, status and latency. Counters start at zero with the
//!   process, as Prometheus counters do.
//! - read from the store when scraped (jobs by state and process, queue
//!   depths, robots by state, consumer lag): the host writes them with
//!   [`Exposition`] (see the server's `/metrics`).
//!
//! Nothing here waits: a counter is an atomic, a labelled family a short
//! mutex around a small map.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

/// Upper bounds (seconds) of the latency buckets: 0.5 ms to 10 s.
pub const LATENCY_BUCKETS: [f64; 14] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// A latency histogram with [`LATENCY_BUCKETS`].
#[derive(Debug, Default)]
pub struct Histogram {
    /// Observations at or below each bound (not cumulative; rendering sums them).
    buckets: [AtomicU64; LATENCY_BUCKETS.len()],
    /// All observations.
    count: AtomicU64,
    /// Their sum, in microseconds.
    sum_us: AtomicU64,
}

impl Histogram {
    /// Records one latency, in seconds.
    pub fn observe(&self, seconds: f64) {
        let seconds = if seconds.is_finite() { seconds.max(0.0) } else { 0.0 };
        if let Some(i) = LATENCY_BUCKETS.iter().position(|b| seconds <= *b) {
            self.buckets[i].fetch_add(1, Ordering::Relaxed);
        }
        self.count.fetch_add(1, Ordering::Relaxed);
        self.sum_us.fetch_add((seconds * 1e6) as u64, Ordering::Relaxed);
    }

    /// Records one latency, in milliseconds.
    pub fn observe_ms(&self, ms: i64) {
        self.observe(ms.max(0) as f64 / 1000.0);
    }

    /// How many observations.
    pub fn count(&self) -> u64 {
        self.count.load(Ordering::Relaxed)
    }

    /// Cumulative counts per bound, the count and the sum (seconds).
    fn snapshot(&self) -> ([u64; LATENCY_BUCKETS.len()], u64, f64) {
        let mut cumulative = [0u64; LATENCY_BUCKETS.len()];
        let mut sum = 0;
        for (i, b) in self.buckets.iter().enumerate() {
            sum += b.load(Ordering::Relaxed);
            cumulative[i] = sum;
        }
        let count = self.count().max(sum);
        (cumulative, count, self.sum_us.load(Ordering::Relaxed) as f64 / 1e6)
    }
}

/// Label values of one series of a family, in the family's label order.
type Labels = Vec<String>;

/// A family of counters told apart by labels (`{family="admin",status="200"}`).
#[derive(Debug)]
pub struct CounterVec {
    names: &'static [&'static str],
    series: Mutex<BTreeMap<Labels, u64>>,
}

impl CounterVec {
    /// A family with these label names.
    pub const fn new(names: &'static [&'static str]) -> CounterVec {
        CounterVec {
            names,
            series: Mutex::new(BTreeMap::new()),
        }
    }

    /// Adds `n` to the series with these label values.
    pub fn add(&self, values: &[&str], n: u64) {
        let mut series = self.series.lock().unwrap_or_else(|e| e.into_inner());
        match series
            .iter_mut()
            .find(|(k, _)| k.iter().map(String::as_str).eq(values.iter().copied()))
        {
            Some((_, v)) => *v += n,
            None => {
                series.insert(values.iter().map(|s| (*s).to_owned()).collect(), n);
            }
        }
    }

    /// The series' value (0 if never added to).
    pub fn get(&self, values: &[&str]) -> u64 {
        let series = self.series.lock().unwrap_or_else(|e| e.into_inner());
        series
            .iter()
            .find(|(k, _)| k.iter().map(String::as_str).eq(values.iter().copied()))
            .map_or(0, |(_, v)| *v)
    }
}

/// A family of histograms told apart by labels.
#[derive(Debug)]
pub struct HistogramVec {
    names: &'static [&'static str],
    series: Mutex<BTreeMap<Labels, std::sync::Arc<Histogram>>>,
}

impl HistogramVec {
    /// A family with these label names.
    pub const fn new(names: &'static [&'static str]) -> HistogramVec {
        HistogramVec {
            names,
            series: Mutex::new(BTreeMap::new()),
        }
    }

    /// Records one latency (seconds) in the series with these label values.
    pub fn observe(&self, values: &[&str], seconds: f64) {
        let h = {
            let mut series = self.series.lock().unwrap_or_else(|e| e.into_inner());
            match series
                .iter()
                .find(|(k, _)| k.iter().map(String::as_str).eq(values.iter().copied()))
            {
                Some((_, h)) => h.clone(),
                None => series
                    .entry(values.iter().map(|s| (*s).to_owned()).collect())
                    .or_default()
                    .clone(),
            }
        };
        h.observe(seconds);
    }
}

/// One commit in this many is timed for [`Metrics::commit_seconds`].
pub const TIMED_EVERY: u64 = 16;

/// What a node records as it works (see the module docs).
#[derive(Debug)]
pub struct Metrics {
    /// Commits tried (for sampling).
    tried: AtomicU64,
    /// Commits that landed.
    pub commits: AtomicU64,
    /// Commits refused because another writer changed what they read.
    pub conflicts: AtomicU64,
    /// Robots whose stored deadline ran out (or nearly) while this node
    /// was hearing from them: their heartbeats were handled or written late.
    pub deadlines_kept: AtomicU64,
    /// Robot heartbeats handled here by `outcome`: `written` (something
    /// changed, or an HTTP robot's stored deadline ran low) or `quiet`
    /// (nothing written).
    pub heartbeats: CounterVec,
    /// Latency of the store's commits, one in [`TIMED_EVERY`] timed.
    pub commit_seconds: Histogram,
    /// From a job's start (its creation, or the time it was deferred to) to
    /// its first Execute being sent to a robot.
    pub dispatch_seconds: Histogram,
    /// Webhook deliveries by `result` (`delivered`, `failed`).
    pub webhook_deliveries: CounterVec,
    /// AI capability calls by `capability` and `outcome` (`answered`,
    /// `failed`, `timeout`, `refused`).
    pub ai_calls: CounterVec,
    /// From a commit to its audit events' integration into the chain, as
    /// this node's integrator saw it (stores that link in the commit: none).
    pub audit_integration_seconds: Histogram,
    /// Audit events this node's integrator gave their place in the chain.
    pub audit_integrated: AtomicU64,
    /// Dispatches made again because a claim was let go after another
    /// dispatch had left work to it (see [`crate::engine`]'s dispatch).
    pub dispatch_redone: AtomicU64,
    /// HTTP requests by `family` and `status`.
    pub http_requests: CounterVec,
    /// HTTP latency by `family`.
    pub http_seconds: HistogramVec,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics {
            tried: AtomicU64::new(0),
            commits: AtomicU64::new(0),
            conflicts: AtomicU64::new(0),
            deadlines_kept: AtomicU64::new(0),
            heartbeats: CounterVec::new(&["outcome"]),
            commit_seconds: Histogram::default(),
            dispatch_seconds: Histogram::default(),
            webhook_deliveries: CounterVec::new(&["result"]),
            ai_calls: CounterVec::new(&["capability", "outcome"]),
            audit_integration_seconds: Histogram::default(),
            audit_integrated: AtomicU64::new(0),
            dispatch_redone: AtomicU64::new(0),
            http_requests: CounterVec::new(&["family", "status"]),
            http_seconds: HistogramVec::new(&["family"]),
        }
    }
}

impl Metrics {
    /// Whether the commit about to be made is one of those timed.
    pub fn time_this_commit(&self) -> bool {
        self.tried.fetch_add(1, Ordering::Relaxed).is_multiple_of(TIMED_EVERY)
    }

    /// Writes every recorded figure.
    pub fn render(&self, out: &mut Exposition) {
        out.counter(
            "rpa_commits_total",
            "Commits that landed in the store.",
            &[],
            self.commits.load(Ordering::Relaxed),
        );
        out.counter(
            "rpa_commit_conflicts_total",
            "Commits refused because another writer changed what they read (then decided again).",
            &[],
            self.conflicts.load(Ordering::Relaxed),
        );
        out.counter(
            "rpa_robot_deadlines_kept_total",
            "Robots kept alive because this node heard them while their stored deadline ran out (heartbeats handled or written late: the node is behind).",
            &[],
            self.deadlines_kept.load(Ordering::Relaxed),
        );
        out.counter_vec(
            "rpa_heartbeats_total",
            "Robot heartbeats handled by this node, by outcome: written (something changed, or an HTTP robot's stored deadline ran low) or quiet (nothing written).",
            &self.heartbeats,
        );
        out.histogram(
            "rpa_commit_seconds",
            "Latency of the store's commits (one commit in 16 is timed).",
            &[],
            &self.commit_seconds,
        );
        out.histogram(
            "rpa_dispatch_seconds",
            "From a job's start to its first Execute sent to a robot.",
            &[],
            &self.dispatch_seconds,
        );
        out.histogram(
            "rpa_audit_integration_seconds",
            "From a commit to the integration of its audit events into the chain (the longest wait of each integration step of this node).",
            &[],
            &self.audit_integration_seconds,
        );
        out.counter(
            "rpa_audit_integrated_total",
            "Audit events this node integrated into the chain.",
            &[],
            self.audit_integrated.load(Ordering::Relaxed),
        );
        out.counter(
            "rpa_dispatch_redone_total",
            "Dispatches made again because a robot or job another dispatch had left to its claim was let go.",
            &[],
            self.dispatch_redone.load(Ordering::Relaxed),
        );
        out.counter_vec(
            "rpa_webhook_deliveries_total",
            "Webhook deliveries by result.",
            &self.webhook_deliveries,
        );
        out.counter_vec(
            "rpa_ai_calls_total",
            "AI capability calls by capability and outcome (answered, failed, timeout, refused).",
            &self.ai_calls,
        );
        out.counter_vec(
            "rpa_http_requests_total",
            "HTTP requests by API family and status.",
            &self.http_requests,
        );
        out.help(
            "rpa_http_request_seconds",
            "HTTP request latency by API family.",
            "histogram",
        );
        let series = self.http_seconds.series.lock().unwrap_or_else(|e| e.into_inner());
        for (values, h) in series.iter() {
            let labels: Vec<(&str, &str)> = self
                .http_seconds
                .names
                .iter()
                .copied()
                .zip(values.iter().map(String::as_str))
                .collect();
            out.histogram_series("rpa_http_request_seconds", &labels, h);
        }
    }
}

/// A page in the Prometheus text exposition format (version 0.0.4).
#[derive(Debug, Default)]
pub struct Exposition {
    text: String,
}

impl Exposition {
    /// The content type of the page.
    pub const CONTENT_TYPE: &'static str = "text/plain; version=0.0.4; charset=utf-8";

    /// The page so far.
    pub fn finish(self) -> String {
        self.text
    }

    /// `# HELP` and `# TYPE` lines of a metric.
    pub fn help(&mut self, name: &str, help: &str, kind: &str) {
        let _ = writeln!(
            self.text,
            "# HELP {name} {}",
            help.replace('\\', "\\\\").replace('\n', "\\n")
        );
        let _ = writeln!(self.text, "# TYPE {name} {kind}");
    }

    /// One sample line.
    pub fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: f64) {
        self.text.push_str(name);
        if !labels.is_empty() {
            self.text.push('{');
            for (i, (k, v)) in labels.iter().enumerate() {
                if i > 0 {
                    self.text.push(',');
                }
                self.text.push_str(k);
                self.text.push_str("=\"");
                for c in v.chars() {
                    match c {
                        '\\' => self.text.push_str("\\\\"),
                        '"' => self.text.push_str("\\\""),
                        '\n' => self.text.push_str("\\n"),
                        c => self.text.push(c),
                    }
                }
                self.text.push('"');
            }
            self.text.push('}');
        }
        let _ = writeln!(self.text, " {}", Number(value));
    }

    /// A gauge family: its help, then one sample per series.
    pub fn gauge<'a>(
        &mut self,
        name: &str,
        help: &str,
        series: impl IntoIterator<Item = (Vec<(&'a str, &'a str)>, f64)>,
    ) {
        self.help(name, help, "gauge");
        for (labels, v) in series {
            self.sample(name, &labels, v);
        }
    }

    /// A counter without labels.
    pub fn counter(&mut self, name: &str, help: &str, labels: &[(&str, &str)], value: u64) {
        self.help(name, help, "counter");
        self.sample(name, labels, value as f64);
    }

    /// A labelled counter family.
    pub fn counter_vec(&mut self, name: &str, help: &str, family: &CounterVec) {
        self.help(name, help, "counter");
        let series = family.series.lock().unwrap_or_else(|e| e.into_inner());
        for (values, v) in series.iter() {
            let labels: Vec<(&str, &str)> = family
                .names
                .iter()
                .copied()
                .zip(values.iter().map(String::as_str))
                .collect();
            self.sample(name, &labels, *v as f64);
        }
    }

    /// A histogram: its help, then its series.
    pub fn histogram(&mut self, name: &str, help: &str, labels: &[(&str, &str)], h: &Histogram) {
        self.help(name, help, "histogram");
        self.histogram_series(name, labels, h);
    }

    /// One series of a histogram: `_bucket` lines (cumulative, `+Inf`
    /// last), `_sum`, `_count`.
    pub fn histogram_series(&mut self, name: &str, labels: &[(&str, &str)], h: &Histogram) {
        let (cumulative, count, sum) = h.snapshot();
        let bucket = format!("{name}_bucket");
        for (bound, n) in LATENCY_BUCKETS.iter().zip(cumulative) {
            let le = Number(*bound).to_string();
            let mut with = labels.to_vec();
            with.push(("le", &le));
            self.sample(&bucket, &with, n as f64);
        }
        let mut with = labels.to_vec();
        with.push(("le", "+Inf"));
        self.sample(&bucket, &with, count as f64);
        self.sample(&format!("{name}_sum"), labels, sum);
        self.sample(&format!("{name}_count"), labels, count as f64);
    }
}

/// A sample value as Prometheus writes it: integers without a fraction.
struct Number(f64);

impl std::fmt::Display for Number {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.0.fract() == 0.0 && self.0.abs() < 1e15 {
            write!(f, "{}", self.0 as i64)
        } else {
            write!(f, "{}", self.0)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_histogram_is_written_cumulatively_with_inf_sum_and_count() {
        let h = Histogram::default();
        h.observe(0.0004);
        h.observe(0.003);
        h.observe(0.003);
        h.observe(60.0);
        let mut out = Exposition::default();
        out.histogram("x_seconds", "X.", &[], &h);
        let text = out.finish();
        assert!(text.contains("# TYPE x_seconds histogram\n"), "{text}");
        assert!(text.contains("x_seconds_bucket{le=\"0.0005\"} 1\n"), "{text}");
        assert!(text.contains("x_seconds_bucket{le=\"0.0025\"} 1\n"), "{text}");
        assert!(text.contains("x_seconds_bucket{le=\"0.005\"} 3\n"), "{text}");
        assert!(text.contains("x_seconds_bucket{le=\"10\"} 3\n"), "{text}");
        assert!(text.contains("x_seconds_bucket{le=\"+Inf\"} 4\n"), "{text}");
        assert!(text.contains("x_seconds_count 4\n"), "{text}");
        assert!(text.contains("x_seconds_sum 60.0064\n"), "{text}");
    }

    #[test]
    fn label_values_are_escaped_and_series_kept_apart() {
        let c = CounterVec::new(&["process"]);
        c.add(&["Invoice \"entry\"\\\n"], 2);
        c.add(&["other"], 1);
        c.add(&["other"], 1);
        assert_eq!(c.get(&["other"]), 2);
        assert_eq!(c.get(&["never"]), 0);
        let mut out = Exposition::default();
        out.counter_vec("jobs_total", "Jobs.", &c);
        let text = out.finish();
        assert!(
            text.contains("jobs_total{process=\"Invoice \\\"entry\\\"\\\\\\n\"} 2\n"),
            "{text}"
        );
        assert!(text.contains("jobs_total{process=\"other\"} 2\n"), "{text}");
    }

    #[test]
    fn negative_and_odd_latencies_count_as_zero() {
        let h = Histogram::default();
        h.observe(-1.0);
        h.observe(f64::NAN);
        h.observe_ms(-5);
        let (cumulative, count, sum) = h.snapshot();
        assert_eq!((cumulative[0], count, sum), (3, 3, 0.0));
    }
}
