//! Retention of run files through the engine (memory store, manual clock):
//! old run files and the oldest beyond the byte budget are purged, once,
//! audited; packages and files outside runs stay; a purged file is gone.

mod common;

use common::*;
use rpa_core::error::Error;
use rpa_core::model::*;
use rpa_core::retention::Policy;
use rpa_core::store::prelude::*;
use serde_json::json;

const DAY: u64 = 86_400_000;

#[test]
fn run_files_go_by_age_and_by_bytes_and_nothing_else_does() {
    let mut w = World::new();
    let p = w.process(|_| {});
    let job = w.start(&p, json!({}));
    let file = |name: &str, size: u64, run: bool| {
        block(w.engine.record_file(
            Actor::System,
            FileSource::File,
            name,
            size,
            "00",
            run.then_some(job.key),
        ))
        .unwrap()
    };
    let old = file("old.png", 100, true);
    let package = block(
        w.engine
            .record_file(Actor::System, FileSource::Package, "p.pkg", 100, "00", None),
    )
    .unwrap();
    let loose = file("loose.txt", 100, false);
    w.advance(5 * DAY);
    let middle = file("middle.png", 100, true);
    w.advance(DAY);
    let newest = file("newest.cast", 100, true);

    let by_age = Policy {
        max_age_days: Some(3),
        max_bytes: None,
        log_days: None,
    };
    let removed = block(w.engine.apply_retention(&by_age)).unwrap();
    assert_eq!(removed.iter().map(|f| f.key).collect::<Vec<_>>(), [old.key]);
    assert!(removed[0].purged_at.is_some());
    assert!(block(w.engine.apply_retention(&by_age)).unwrap().is_empty(), "once");
    let e = block(w.engine.file(old.key)).unwrap_err();
    assert!(matches!(e, Error::NotFound(..)), "{e}");

    let by_bytes = Policy {
        max_age_days: None,
        max_bytes: Some(150),
        log_days: None,
    };
    let removed = block(w.engine.apply_retention(&by_bytes)).unwrap();
    assert_eq!(
        removed.iter().map(|f| f.key).collect::<Vec<_>>(),
        [middle.key],
        "the oldest first"
    );
    for kept in [&newest, &package, &loose] {
        assert!(block(w.engine.file(kept.key)).is_ok(), "{} stays", kept.name);
    }
    assert!(block(w.engine.apply_retention(&Policy::default())).unwrap().is_empty());
    let purges = block(w.engine.audit_events(Actor::System, 0, 1000))
        .unwrap()
        .into_iter()
        .filter(|e| e.action == "file.purge")
        .count();
    assert_eq!(purges, 2);
    w.audit_ok();
}

#[test]
fn run_logs_of_old_ended_jobs_go_and_running_ones_keep_theirs() {
    use rpa_core::engine::NewLog;
    let mut w = World::new();
    let p = w.process(|s| s.max_run_num = 0);
    let bot = w.connect("r1");
    let other = w.connect("r2");
    let log = |b: &Bot, j: &Job| {
        let line = NewLog {
            content: format!("working on {}", j.key),
            screenshot: None,
            log_at: "2026-01-01 00:00:00".into(),
            level: LogLevel::Info,
        };
        block(w.engine.report_logs(&b.code, b.connect, j.key, vec![line])).unwrap();
    };
    let logs = |j: &Job| block(w.engine.store().logs(j.id)).unwrap().len();
    let old = w.start(&p, json!({}));
    let running = w.start(&p, json!({}));
    w.beat(&bot, None);
    w.beat(&other, None);
    let (old, running) = (w.job(&old), w.job(&running));
    let (ob, rb) = if old.robot == Some(w.robot(&bot).id) {
        (&bot, &other)
    } else {
        (&other, &bot)
    };
    log(ob, &old);
    log(rb, &running);
    w.finish(ob, &old, rpa_core::job::FinishStatus::Success).unwrap();
    w.advance(5 * DAY);
    let recent = w.start(&p, json!({}));
    w.beat(ob, None);
    let recent = w.job(&recent);
    log(ob, &recent);
    w.finish(ob, &recent, rpa_core::job::FinishStatus::Success).unwrap();
    assert_eq!((logs(&old), logs(&running), logs(&recent)), (1, 1, 1));

    let dropped = block(w.engine.apply_log_retention(3, 30)).unwrap();
    assert_eq!(dropped, 1, "only the old ended job");
    assert_eq!((logs(&old), logs(&running), logs(&recent)), (0, 1, 1));
    assert_eq!(block(w.engine.apply_log_retention(3, 30)).unwrap(), 0, "caught up");
    let purges = block(w.engine.audit_events(Actor::System, 0, 1000))
        .unwrap()
        .into_iter()
        .filter(|e| e.action == "logs.purge")
        .count();
    assert_eq!(purges, 1);
    w.audit_ok();
}
