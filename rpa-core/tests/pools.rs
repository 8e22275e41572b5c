//! Elastic pools through the engine (memory store, manual clock): the
//! robots a pool wants follow its backlog within its bounds, and each
//! change is recorded once, with a `pool_changed` event.

mod common;

use common::*;
use rpa_core::error::Error;
use rpa_core::events::Event;
use rpa_core::job::FinishStatus;
use rpa_core::model::*;
use rpa_core::pool::PoolSpec;
use rpa_core::store::prelude::*;
use serde_json::json;

fn changes(w: &World) -> Vec<(String, u32, u32)> {
    block(w.engine.events(0, 10_000))
        .unwrap()
        .events
        .into_iter()
        .filter_map(|e| match e.event {
            Event::PoolChanged {
                pool,
                desired,
                previous,
                ..
            } => Some((pool.to_string(), previous, desired)),
            _ => None,
        })
        .collect()
}

#[test]
fn a_pool_wants_robots_for_its_backlog_within_its_bounds() {
    let mut w = World::new();
    let p = w.process(|s| {
        s.max_run_num = 0;
        s.requirements.pool = Some("elastic".into());
    });
    let other = w.process(|s| {
        s.name = "elsewhere".into();
        s.max_run_num = 0;
    });
    let spec = PoolSpec {
        name: "elastic".into(),
        min: 1,
        max: 3,
        idle_grace_seconds: 5,
        image: None,
        image_version: None,
    };
    let pool = block(w.engine.save_pool(Actor::System, spec.clone())).unwrap();
    assert_eq!(pool.desired, 1, "min with nothing to do");
    let jobs: Vec<Job> = (0..5).map(|_| w.start(&p, json!({}))).collect();
    w.start(&other, json!({}));
    w.advance(1_000);
    assert_eq!(w.tick().pools_resized, 1);
    let pool = block(w.engine.pool("elastic")).unwrap();
    assert_eq!((pool.desired, pool.demand.pending), (3, 5), "max 3");
    w.tick();
    assert_eq!(changes(&w).len(), 1, "recorded once");

    // A robot of the pool takes work; the backlog drains, the pool shrinks to min.
    let bot = w.register("e1");
    block(w.engine.configure_robot(
        Actor::System,
        "e1",
        RobotProfile {
            pool: "elastic".into(),
            ..RobotProfile::default()
        },
    ))
    .unwrap();
    w.beat(&bot, None);
    while let Some(j) = w.robot(&bot).job {
        let job = block(w.engine.store().job(j)).unwrap().unwrap();
        w.finish(&bot, &job, FinishStatus::Success).unwrap();
        w.advance(1_000);
        w.tick();
    }
    assert!(jobs.iter().all(|j| w.job(j).state == JobState::Successful));
    assert_eq!(block(w.engine.pool("elastic")).unwrap().desired, 1);
    let c = changes(&w);
    assert_eq!(c.first(), Some(&("elastic".to_string(), 1, 3)));
    assert_eq!(c.last().map(|x| x.2), Some(1));
    assert!(
        c.windows(2).all(|w| w[0].2 == w[1].1),
        "each change starts where the last ended: {c:?}"
    );
    w.audit_ok();
}

#[test]
fn bad_bounds_are_refused() {
    let w = World::new();
    let e = block(w.engine.save_pool(
        Actor::System,
        PoolSpec {
            name: "p".into(),
            min: 3,
            max: 2,
            idle_grace_seconds: 1,
            image: None,
            image_version: None,
        },
    ))
    .unwrap_err();
    assert!(matches!(e, Error::InvalidArgument(m) if m.contains("above max")));
    assert!(block(w.engine.pools()).unwrap().is_empty());
}
