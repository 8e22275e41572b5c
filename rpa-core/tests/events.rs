//! Domain events through the engine: what a consumer sees of jobs, queue
//! items and robots, and how its cursor moves (in-memory store, manual clock).

mod common;

use common::*;
use rpa_core::engine::NewQueueItem;
use rpa_core::error::{Error, StoreError};
use rpa_core::events::Event;
use rpa_core::job::FinishStatus;
use rpa_core::model::*;
use rpa_core::store::prelude::*;
use serde_json::json;

/// Every domain event so far, in order.
fn seen(w: &World) -> Vec<Event> {
    block(w.engine.events(0, 100_000))
        .unwrap()
        .events
        .into_iter()
        .map(|r| r.event)
        .collect()
}

#[test]
fn a_job_that_ends_is_one_event_with_its_outputs() {
    let mut w = World::new();
    let p = w.process(|_| {});
    let bot = w.connect("r1");
    let job = w.start(&p, json!({}));
    assert!(
        !seen(&w).iter().any(|e| matches!(e, Event::JobEnded { .. })),
        "a running job has not ended"
    );
    w.finish(&bot, &job, FinishStatus::Success).unwrap();
    // Repeating the report changes nothing, and tells nothing new.
    w.finish(&bot, &job, FinishStatus::Success).unwrap();
    let ended: Vec<Event> = seen(&w)
        .into_iter()
        .filter(|e| matches!(e, Event::JobEnded { .. }))
        .collect();
    let robot = w.robot(&bot);
    assert_eq!(
        ended,
        vec![Event::JobEnded {
            job: job.id,
            key: job.key,
            process: p.id,
            state: JobState::Successful,
            queue_item: None,
            robot: Some(robot.id),
            error_code: None,
            reason: None,
            outputs: Some(json!({"out": 1}).into()),
            started_at: w.job(&job).started_at,
        }]
    );
    w.audit_ok();
}

#[test]
fn queue_items_end_as_events_and_a_retry_is_its_own_item() {
    let mut w = World::new();
    let q = w.process(|s| {
        s.process_type = ProcessType::Queue;
        s.retry.max_retries = 1;
        s.retry.backoff_ms = 0;
        s.retry.backoff_max_ms = 0;
    });
    let item = block(w.engine.add_queue_item(&w.user, q.key, NewQueueItem::default())).unwrap();
    let bot = w.register("r");
    w.beat(&bot, None);
    let first = block(
        w.engine
            .store()
            .job(block(w.engine.queue_item(item.key)).unwrap().job.unwrap()),
    )
    .unwrap()
    .unwrap();
    w.finish(&bot, &first, FinishStatus::Failed).unwrap();
    let retry_job = w.robot(&bot).job.expect("the retry runs next");
    let retry = block(w.engine.store().job(retry_job)).unwrap().unwrap();
    w.finish(&bot, &retry, FinishStatus::Success).unwrap();
    let items: Vec<(ItemState, Option<i64>)> = seen(&w)
        .into_iter()
        .filter_map(|e| match e {
            Event::ItemEnded { state, job, .. } => Some((state, job.map(|j| j.0))),
            _ => None,
        })
        .collect();
    assert_eq!(
        items,
        vec![
            (ItemState::Retried, Some(first.id.0)),
            (ItemState::Successful, Some(retry.id.0))
        ]
    );
}

#[test]
fn robots_connection_changes_are_events_and_busy_is_not() {
    let mut w = World::new();
    let p = w.process(|_| {});
    let bot = w.connect("r1");
    let job = w.start(&p, json!({}));
    w.finish(&bot, &job, FinishStatus::Success).unwrap();
    w.advance(31_000);
    w.tick();
    let bot = w.connect("r1");
    block(w.engine.disconnect("r1", bot.connect)).unwrap();
    let robot: Vec<(RobotState, RobotState)> = seen(&w)
        .into_iter()
        .filter_map(|e| match e {
            Event::RobotChanged { from, state, .. } => Some((from, state)),
            _ => None,
        })
        .collect();
    assert_eq!(
        robot,
        vec![
            (RobotState::Disconnected, RobotState::Available),
            (RobotState::Available, RobotState::Unresponsive),
            (RobotState::Unresponsive, RobotState::Available),
            (RobotState::Available, RobotState::Disconnected),
        ]
    );
}

#[test]
fn a_consumer_sees_each_event_once_in_order_and_two_runners_cannot_both_move_it() {
    let mut w = World::new();
    let p = w.process(|_| {});
    let bot = w.connect("r1");
    let mut handled = Vec::new();
    for round in 0..5 {
        for _ in 0..3 {
            let job = w.start(&p, json!({}));
            w.finish(&bot, &job, FinishStatus::Success).unwrap();
        }
        // Small batches: a consumer pages through.
        loop {
            let batch = block(w.engine.events_for("tests", 4)).unwrap();
            if !batch.moves() {
                break;
            }
            handled.extend(batch.page.events.iter().map(|r| r.seq));
            block(w.engine.acknowledge(&batch)).unwrap();
        }
        assert_eq!(
            handled.len(),
            (round + 1) * 6 + 1,
            "every job's start and end and the robot's connection, once"
        );
    }
    let all: Vec<u64> = block(w.engine.events(0, 100_000))
        .unwrap()
        .events
        .iter()
        .map(|r| r.seq)
        .collect();
    assert_eq!(handled, all, "in order, none skipped, none twice");

    // Two runners read the same batch: only the first moves the cursor.
    let job = w.start(&p, json!({}));
    w.finish(&bot, &job, FinishStatus::Success).unwrap();
    let a = block(w.engine.events_for("tests", 100)).unwrap();
    let b = block(w.engine.events_for("tests", 100)).unwrap();
    assert_eq!(a, b);
    block(w.engine.acknowledge(&a)).unwrap();
    assert_eq!(
        block(w.engine.acknowledge(&b)).unwrap_err(),
        Error::Store(StoreError::Conflict)
    );
    assert!(!block(w.engine.events_for("tests", 100)).unwrap().moves());
    // Another consumer has a cursor of its own.
    assert_eq!(
        block(w.engine.events_for("other", 100_000)).unwrap().page.events.len(),
        all.len() + 2,
        "the last job's start and end too"
    );
    w.audit_ok();
}

#[test]
fn one_node_at_a_time_runs_a_consumer() {
    let store = rpa_core::MemoryStore::new();
    let a = World::with_config(store.clone(), 1, |c| c.node = Some(1));
    let b = World::with_config(store, 2, |c| c.node = Some(2));
    assert!(block(a.engine.hold_consumer("c")).unwrap());
    assert!(!block(b.engine.hold_consumer("c")).unwrap(), "held by the other node");
    assert!(block(b.engine.hold_consumer("d")).unwrap(), "another consumer is free");
    a.advance(10_001);
    b.advance(10_001);
    assert!(
        block(b.engine.hold_consumer("c")).unwrap(),
        "passes on once not renewed"
    );
}
