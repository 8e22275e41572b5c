//! Executor images through the engine (in-memory store): versions kept
//! and never changed, the version a pool starts (the latest not retired,
//! or its pin), retiring, permissions, and the executors' records.

mod common;

use common::*;
use rpa_core::Error;
use rpa_core::Key;
use rpa_core::engine::NewImage;
use rpa_core::model::*;
use rpa_core::pool::PoolSpec;

fn file(n: u8) -> NewImage {
    NewImage {
        file: Key([n; 16]),
        sha256: format!("{n:064x}"),
        size: u64::from(n),
    }
}

#[test]
fn a_pool_starts_the_latest_version_or_its_pin_and_executors_are_recorded() {
    let w = World::new();
    let e = &w.engine;
    let first = block(e.add_image(Actor::System, "desktop", None, file(1))).unwrap();
    assert_eq!(first.image_version, "1.0.0");
    let next = block(e.add_image(Actor::System, "desktop", None, file(2))).unwrap();
    assert_eq!(next.image_version, "1.0.1", "the next patch");
    let again = block(e.add_image(Actor::System, "desktop", Some("1.0.1"), file(2))).unwrap();
    assert_eq!(again, next, "the same bytes again change nothing");
    assert!(matches!(
        block(e.add_image(Actor::System, "desktop", Some("1.0.1"), file(3))),
        Err(Error::InvalidArgument(_))
    ));
    assert!(matches!(
        block(e.add_image(Actor::User(w.user.id), "desktop", None, file(4))),
        Err(Error::PermissionDenied(_))
    ));
    let mut spec = PoolSpec {
        name: "burst".into(),
        min: 0,
        max: 2,
        idle_grace_seconds: 1,
        image: Some("desktop".into()),
        image_version: None,
    };
    block(e.save_pool(Actor::System, spec.clone())).unwrap();
    assert_eq!(block(e.pool_image("burst")).unwrap().unwrap().image_version, "1.0.1");
    spec.image_version = Some("1.0.0".into());
    block(e.save_pool(Actor::System, spec.clone())).unwrap();
    assert_eq!(
        block(e.pool_image("burst")).unwrap().unwrap().image_version,
        "1.0.0",
        "pinned: a rollback"
    );
    block(e.retire_image(Actor::System, "desktop", "1.0.0")).unwrap();
    assert!(block(e.pool_image("burst")).is_err(), "the pin is retired");
    spec.image_version = None;
    block(e.save_pool(Actor::System, spec)).unwrap();
    let img = block(e.pool_image("burst")).unwrap().unwrap();
    assert_eq!(img.image_version, "1.0.1");

    block(e.executor_started("burst-1", "burst", Some(&img), "vm-7", Some(4242))).unwrap();
    block(e.executor_stopped("burst-1", "idle")).unwrap();
    block(e.executor_stopped("burst-1", "idle")).unwrap();
    let vms = block(e.executors(Actor::System)).unwrap();
    assert_eq!(vms.len(), 1);
    assert_eq!(
        (
            vms[0].image.as_deref(),
            vms[0].host.as_str(),
            vms[0].pid,
            vms[0].stopped_at.is_some()
        ),
        (Some("desktop@1.0.1"), "vm-7", Some(4242), true)
    );
    let bad = PoolSpec {
        name: "odd".into(),
        min: 0,
        max: 1,
        idle_grace_seconds: 1,
        image: None,
        image_version: Some("1.0.0".into()),
    };
    assert!(
        block(e.save_pool(Actor::System, bad)).is_err(),
        "a version without an image"
    );
    w.audit_ok();
}
