//! Run analysis through the engine (in-memory store, manual clock): ended
//! jobs are folded once into figures per process and day by the timer's
//! tick, and reports group them by process, region, scenario or business
//! domain and by day, week or month, over the processes a reader may see.

mod common;

use common::*;
use rpa_core::analysis::{Attributes, Bucket, Dimension, Period};
use rpa_core::job::FinishStatus;
use rpa_core::model::*;
use rpa_core::{Error, Timestamp};
use serde_json::json;

const MINUTE: u64 = 60_000;

fn day_of(w: &World, t: Timestamp) -> String {
    t.in_zone(w.engine.config().time_zone).format("%Y-%m-%d").to_string()
}

/// Runs one job of `p` on `bot` for `minutes` and ends it with `status`.
fn run(w: &World, bot: &Bot, p: &Process, minutes: u64, status: FinishStatus) {
    let job = w.start(p, json!({}));
    assert_eq!(w.executes(bot).len(), 1);
    w.advance(minutes * MINUTE);
    w.finish(bot, &job, status).unwrap();
    w.beat(bot, None);
}

fn report(w: &World, by: Dimension, period: Period, from: &str, to: &str) -> Vec<Bucket> {
    let ps = block(w.engine.processes()).unwrap();
    block(w.engine.run_analysis(&ps, by, period, from, to)).unwrap()
}

fn rows(buckets: &[Bucket]) -> Vec<(String, String, u64, u64, u64)> {
    buckets
        .iter()
        .map(|b| (b.period.clone(), b.value.clone(), b.runs, b.successful, b.faulted))
        .collect()
}

fn attributes(region: &str, scenario: &str, saved: u32) -> Attributes {
    Attributes {
        region: Some(region.into()),
        scenario: Some(scenario.into()),
        business_domain: None,
        saved_minutes: saved,
    }
}

#[test]
fn ended_jobs_are_counted_once_by_region_scenario_and_period() {
    let mut w = World::new();
    let invoices = w.process(|s| {
        s.retry.max_retries = 0;
        s.attributes = attributes("north", "invoicing", 30);
    });
    let claims = w.process(|s| {
        s.name = "claims".into();
        s.retry.max_retries = 0;
        s.attributes = attributes("south", "claims", 12);
    });
    let bot = w.connect("r1");
    let first = day_of(&w, w.engine.now());
    run(&w, &bot, &invoices, 10, FinishStatus::Success);
    run(&w, &bot, &invoices, 4, FinishStatus::Failed);
    run(&w, &bot, &claims, 6, FinishStatus::Success);
    assert_eq!(
        report(&w, Dimension::Region, Period::Day, &first, &first),
        [],
        "nothing is counted before the timer folds it"
    );
    assert_eq!(w.tick().runs_folded, 3);
    assert_eq!(w.tick().runs_folded, 0, "a second fold finds nothing new");

    let by_region = report(&w, Dimension::Region, Period::Day, &first, &first);
    assert_eq!(
        rows(&by_region),
        [
            (first.clone(), "north".into(), 2, 1, 1),
            (first.clone(), "south".into(), 1, 1, 0)
        ]
    );
    let north = &by_region[0];
    assert_eq!(north.success_rate, Some(0.5));
    assert_eq!(north.average_duration_ms, Some(7 * MINUTE as i64));
    assert_eq!(north.saved_hours, 0.5, "one success × 30 minutes");
    assert_eq!(by_region[1].saved_hours, 0.2);

    // The next day: one more claim; a month groups both days, a day does not.
    w.advance(24 * 60 * MINUTE);
    let second = day_of(&w, w.engine.now());
    run(&w, &bot, &claims, 1, FinishStatus::Success);
    assert_eq!(w.tick().runs_folded, 1);
    let by_scenario = report(&w, Dimension::Scenario, Period::Month, &first, &second);
    assert_eq!(
        rows(&by_scenario),
        [
            (first[..7].into(), "claims".into(), 2, 2, 0),
            (first[..7].into(), "invoicing".into(), 2, 1, 1)
        ]
    );
    let by_process = report(&w, Dimension::Process, Period::Day, &second, &second);
    assert_eq!(rows(&by_process), [(second.clone(), "claims".into(), 1, 1, 0)]);
    assert_eq!(
        report(&w, Dimension::BusinessDomain, Period::All, &first, &second)
            .iter()
            .map(|b| (b.value.as_str(), b.runs))
            .collect::<Vec<_>>(),
        [("(none)", 4)],
        "no process has a business domain"
    );

    // Moving a process to another region moves its history with it.
    block(
        w.engine
            .set_process_attributes(Actor::System, claims.key, attributes("north", "claims", 12)),
    )
    .unwrap();
    let all = report(&w, Dimension::Region, Period::All, &first, &second);
    assert_eq!(rows(&all), [("all".into(), "north".into(), 4, 3, 1)]);
    w.audit_ok();
}

#[test]
fn a_report_counts_only_the_processes_given_and_checks_its_input() {
    let mut w = World::new();
    let invoices = w.process(|s| s.retry.max_retries = 0);
    let secret = w.process(|s| s.name = "payroll".into());
    let bot = w.connect("r1");
    run(&w, &bot, &invoices, 1, FinishStatus::Success);
    run(&w, &bot, &secret, 1, FinishStatus::Success);
    w.tick();
    let today = day_of(&w, w.engine.now());
    let only_invoices = vec![w.process_now(&invoices)];
    let got = block(
        w.engine
            .run_analysis(&only_invoices, Dimension::Process, Period::Day, &today, &today),
    )
    .unwrap();
    assert_eq!(rows(&got), [(today.clone(), "invoice".into(), 1, 1, 0)]);
    let bad = block(
        w.engine
            .run_analysis(&only_invoices, Dimension::Process, Period::Day, &today, "2020-01-01"),
    );
    assert!(matches!(bad, Err(Error::InvalidArgument(m)) if m.contains("before")));
    let refused = block(
        w.engine
            .set_process_attributes(Actor::User(w.user.id), invoices.key, Attributes::default()),
    );
    assert!(matches!(refused, Err(Error::PermissionDenied(_))), "{refused:?}");
    let long = Attributes {
        region: Some("r".repeat(65)),
        ..Attributes::default()
    };
    let refused = block(w.engine.set_process_attributes(Actor::System, invoices.key, long));
    assert!(matches!(refused, Err(Error::InvalidArgument(_))));
}

#[test]
fn nodes_sharing_a_store_fold_each_job_once() {
    let store = rpa_core::MemoryStore::new();
    let mut a = World::with_store(store.clone(), 1);
    let b = World::with_store(store, 2);
    let p = a.process(|s| s.retry.max_retries = 0);
    let bot = a.connect("r1");
    for _ in 0..5 {
        run(&a, &bot, &p, 2, FinishStatus::Success);
    }
    let folded_b = block(b.engine.fold_runs()).unwrap();
    let folded_a = block(a.engine.fold_runs()).unwrap();
    assert_eq!((folded_b, folded_a), (5, 0));
    let today = day_of(&a, a.engine.now());
    let r = report(&a, Dimension::Process, Period::Day, &today, &today);
    assert_eq!(rows(&r), [(today.clone(), "invoice".into(), 5, 5, 0)]);
}
