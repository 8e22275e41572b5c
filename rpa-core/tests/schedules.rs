//! Schedules through the engine with a manual clock: one job per due time,
//! once across engines, missed times after downtime, limits that refuse a
//! firing (kept with the reason), turning schedules off and on, bad input.

mod common;

use std::sync::Arc;

use common::{T0, World, block};
use rpa_core::Error;
use rpa_core::model::*;
use rpa_core::schedule::{Missed, Rule, Schedule, ScheduleSpec};
use rpa_core::store::JobQuery;
use rpa_core::store::prelude::*;
use rpa_core::{MemoryStore, Timestamp};
use serde_json::json;

const MIN: u64 = 60_000;

fn spec(p: &Process, rule: Rule) -> ScheduleSpec {
    ScheduleSpec {
        name: "nightly".into(),
        process: p.id,
        arguments: Arc::new(json!({"n": "7"})),
        rule,
        zone: "Asia/Shanghai".into(),
        from: None,
        until: None,
        hours: None,
        skip_dates: Vec::new(),
        missed: Missed::RunOnce,
    }
}

fn world() -> (World, Process) {
    let mut w = World::new();
    let p = w.process(|s| {
        s.arguments = vec![ArgumentSpec {
            name: "n".into(),
            id: "n".into(),
            arg_type: ArgType::Int,
            required: true,
            secret: false,
        }];
    });
    (w, p)
}

fn create(w: &World, s: ScheduleSpec) -> Schedule {
    block(w.engine.create_schedule(Actor::System, &w.user, s)).unwrap()
}

fn jobs(w: &World, p: &Process) -> Vec<Job> {
    let q = JobQuery {
        process: p.id,
        from: Timestamp(0),
        to: Timestamp(i64::MAX),
        state: None,
        limit: 1000,
    };
    block(w.engine.store().jobs_of_process(q)).unwrap().1
}

#[test]
fn a_schedule_starts_one_job_per_due_time_with_its_arguments() {
    let (w, p) = world();
    let s = create(&w, spec(&p, Rule::Every { ms: MIN }));
    assert_eq!(s.next_at, Some(T0.plus_ms(MIN)));
    assert_eq!(
        w.engine.schedule_upcoming(&s, 5).unwrap(),
        (1..=5).map(|k| T0.plus_ms(k * MIN)).collect::<Vec<_>>()
    );
    w.advance(MIN - 1);
    w.tick();
    assert!(jobs(&w, &p).is_empty(), "not yet");
    w.advance(1);
    assert_eq!(w.tick().schedules_fired, 1);
    w.tick();
    let started = jobs(&w, &p);
    assert_eq!(started.len(), 1, "one job for one due time");
    assert_eq!(*started[0].arguments, json!({"n": 7}));
    assert_eq!(started[0].user, w.user.id);
    let firings = block(w.engine.schedule_firings(s.id, 0, 10)).unwrap();
    assert_eq!(firings.len(), 1);
    assert_eq!((firings[0].due, firings[0].job), (T0.plus_ms(MIN), Some(started[0].id)));
    assert_eq!(
        block(w.engine.schedule(s.id)).unwrap().next_at,
        Some(T0.plus_ms(2 * MIN))
    );
    w.audit_ok();
}

#[test]
fn two_engines_on_one_store_fire_a_due_time_once() {
    let store = MemoryStore::new();
    let mut a = World::with_store(store.clone(), 1);
    let p = a.process(|_| {});
    let b = World::with_store(store, 2);
    let mut s = spec(&p, Rule::Every { ms: MIN });
    s.arguments = Arc::new(json!({}));
    create(&a, s);
    for round in 1..=20u64 {
        a.advance(MIN);
        b.advance(MIN);
        let now = T0.plus_ms(round * MIN);
        let (x, y) = block(async { futures::join!(a.engine.fire_schedules(now), b.engine.fire_schedules(now)) });
        assert_eq!(x.unwrap() + y.unwrap(), 1, "round {round}: one firing between the two");
    }
    assert_eq!(jobs(&a, &p).len(), 20);
    a.audit_ok();
}

#[test]
fn after_downtime_missed_times_fire_once_or_are_skipped_and_recorded() {
    let (w, p) = world();
    let once = create(&w, spec(&p, Rule::Every { ms: 10 * MIN }));
    let mut skip = spec(&p, Rule::Every { ms: 10 * MIN });
    skip.name = "skipper".into();
    skip.missed = Missed::Skip;
    let skip = create(&w, skip);
    // Down for 35 minutes and a bit: due at 10, 20 and 30 minutes.
    w.advance(35 * MIN);
    w.tick();
    assert_eq!(
        jobs(&w, &p).len(),
        1,
        "run once for all missed; the skipping schedule starts none"
    );
    let f = block(w.engine.schedule_firings(once.id, 0, 10)).unwrap();
    assert_eq!(
        (f.len(), f[0].missed, f[0].due, f[0].reason.clone()),
        (1, 2, T0.plus_ms(30 * MIN), None)
    );
    let f = block(w.engine.schedule_firings(skip.id, 0, 10)).unwrap();
    assert_eq!((f.len(), f[0].missed, f[0].job), (1, 3, None));
    assert!(f[0].reason.as_deref().unwrap().starts_with("skipped"));
    assert_eq!(
        block(w.engine.schedule(skip.id)).unwrap().next_at,
        Some(T0.plus_ms(40 * MIN))
    );
    let audit = block(w.engine.store().audit(0, 1000)).unwrap();
    assert!(audit.iter().any(|e| e.action == "schedule.skip"));
    assert!(
        audit
            .iter()
            .any(|e| e.action == "schedule.fire" && e.detail.contains("once for 3"))
    );
}

#[test]
fn a_firing_a_limit_refuses_is_kept_with_the_reason() {
    let mut w = World::new();
    let p = w.process(|s| s.max_day_num = 1);
    let bot = w.connect("bot-1");
    let mut s = spec(&p, Rule::Every { ms: MIN });
    s.arguments = Arc::new(json!({}));
    let s = create(&w, s);
    w.advance(MIN);
    w.tick();
    let first = jobs(&w, &p);
    assert_eq!(first.len(), 1);
    w.beat(&bot, None);
    w.finish(&bot, &first[0], rpa_core::job::FinishStatus::Success).unwrap();
    w.advance(MIN);
    w.tick();
    assert_eq!(jobs(&w, &p).len(), 1, "maxDayNum reached: no second job");
    let f = block(w.engine.schedule_firings(s.id, 0, 10)).unwrap();
    assert_eq!(f.len(), 2);
    assert!(
        f[1].reason.as_deref().unwrap().contains("maxDayNum"),
        "{:?}",
        f[1].reason
    );
    assert_eq!(f[1].job, None);
}

#[test]
fn a_schedule_turned_off_fires_nothing_and_turned_on_counts_from_then() {
    let (w, p) = world();
    let s = create(&w, spec(&p, Rule::Every { ms: MIN }));
    let off = block(w.engine.set_schedule_enabled(Actor::System, s.id, false)).unwrap();
    assert_eq!((off.enabled, off.next_at), (false, None));
    assert!(w.engine.schedule_upcoming(&off, 5).unwrap().is_empty());
    w.advance(10 * MIN + 30_000);
    w.tick();
    assert!(jobs(&w, &p).is_empty());
    let on = block(w.engine.set_schedule_enabled(Actor::System, s.id, true)).unwrap();
    assert_eq!(
        on.next_at,
        Some(T0.plus_ms(11 * MIN)),
        "the next time after now; nothing missed"
    );
    w.advance(30_000);
    w.tick();
    assert_eq!(jobs(&w, &p).len(), 1);
}

#[test]
fn bad_schedules_are_refused_with_the_reason_and_nothing_is_stored() {
    let (w, p) = world();
    let refused = |s: ScheduleSpec| match block(w.engine.create_schedule(Actor::System, &w.user, s)) {
        Err(Error::InvalidArgument(m)) => m,
        other => panic!("{other:?}"),
    };
    assert!(
        refused(spec(
            &p,
            Rule::Cron {
                expr: "every day".into()
            }
        ))
        .contains("cron")
    );
    let mut window = spec(&p, Rule::Every { ms: MIN });
    window.from = Some(T0.plus_ms(MIN));
    window.until = Some(T0);
    assert!(refused(window).contains("date window"));
    let mut args = spec(&p, Rule::Every { ms: MIN });
    args.arguments = Arc::new(json!({}));
    assert!(refused(args).contains("n"), "a required argument missing");
    assert!(block(w.engine.schedules()).unwrap().is_empty());
    create(&w, spec(&p, Rule::Every { ms: MIN }));
    assert!(matches!(
        block(
            w.engine
                .create_schedule(Actor::System, &w.user, spec(&p, Rule::Every { ms: MIN }))
        ),
        Err(Error::AlreadyExists(_))
    ));
    let alice = w.user.clone();
    assert!(matches!(
        block(
            w.engine
                .create_schedule(Actor::User(alice.id), &alice, spec(&p, Rule::Every { ms: MIN }))
        ),
        Err(Error::PermissionDenied(_))
    ));
}

mod properties {
    use chrono::{NaiveDate, NaiveTime, TimeZone, Weekday};
    use proptest::prelude::*;
    use rpa_core::Timestamp;
    use rpa_core::ids::ProcessId;
    use rpa_core::schedule::{LastDay, MonthDay, Rule, ScheduleSpec};
    use rpa_core::time::Tz;
    use std::sync::Arc;

    const ZONES: [&str; 5] = [
        "UTC",
        "America/New_York",
        "Europe/London",
        "Australia/Lord_Howe",
        "Asia/Shanghai",
    ];

    fn time() -> impl Strategy<Value = NaiveTime> {
        (0u32..24, 0u32..60).prop_map(|(h, m)| NaiveTime::from_hms_opt(h, m, 0).unwrap())
    }

    fn rule() -> impl Strategy<Value = Rule> {
        prop_oneof![
            (1u64..36_000).prop_map(|s| Rule::Every { ms: s * 1_000 }),
            prop::collection::vec(time(), 1..4).prop_map(|times| Rule::Daily { times }),
            (prop::collection::vec(0u8..7, 1..4), prop::collection::vec(time(), 1..3)).prop_map(|(d, times)| {
                Rule::Weekly {
                    days: d.into_iter().map(|n| Weekday::try_from(n).unwrap()).collect(),
                    times,
                }
            }),
            (
                prop::collection::vec(0u32..32, 1..4),
                prop::collection::vec(time(), 1..3)
            )
                .prop_map(|(d, times)| {
                    Rule::Monthly {
                        days: d
                            .into_iter()
                            .map(|n| {
                                if n == 0 {
                                    MonthDay::Last(LastDay::Last)
                                } else {
                                    MonthDay::Day(n)
                                }
                            })
                            .collect(),
                        times,
                    }
                }),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(150))]

        /// Fire times are strictly increasing and inside every window.
        #[test]
        fn fire_times_increase_and_stay_inside_their_windows(
            rule in rule(),
            zone in 0usize..ZONES.len(),
            start_day in 0i64..800,
            hours in prop::option::of((time(), time())),
            skip in prop::collection::vec(0i64..60, 0..5),
            span in prop::option::of(1i64..400),
        ) {
            let zone = ZONES[zone];
            let tz: Tz = zone.parse().unwrap();
            let start = Timestamp(1_767_225_600_000 + start_day * 86_400_000); // 2026-01-01 + days
            let day0 = NaiveDate::from_ymd_opt(2026, 1, 1).unwrap() + chrono::Duration::days(start_day);
            let spec = ScheduleSpec {
                name: "p".into(),
                process: ProcessId(1),
                arguments: Arc::new(serde_json::json!({})),
                rule,
                zone: zone.into(),
                from: Some(start),
                until: span.map(|d| Timestamp(start.0 + d * 86_400_000)),
                hours: hours.filter(|(a, b)| a != b),
                skip_dates: skip.iter().map(|d| day0 + chrono::Duration::days(*d)).collect(),
                missed: Default::default(),
            };
            let times = spec.upcoming(start, start, 25).unwrap();
            prop_assert!(times.windows(2).all(|w| w[0] < w[1]), "{times:?}");
            for t in &times {
                prop_assert!(*t >= start);
                prop_assert!(spec.until.is_none_or(|u| *t <= u));
                let local = tz.timestamp_millis_opt(t.0).unwrap().naive_local();
                prop_assert!(!spec.skip_dates.contains(&local.date()));
                if let Some((a, b)) = spec.hours {
                    let tod = local.time();
                    prop_assert!(if a < b { a <= tod && tod < b } else { tod >= a || tod < b }, "{tod} outside {a}-{b}");
                }
            }
        }
    }
}
