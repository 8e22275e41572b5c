//! Retention of run files through the engine (memory store, manual clock):
//! old run files and the oldest beyond the byte budget are purged, once,
//! audited; packages and files outside runs stay; a purged file is gone.

mod common;

use common::*;
use rpa_core::error::Error;
use rpa_core::model::*;
use rpa_core::retention::Policy;
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
