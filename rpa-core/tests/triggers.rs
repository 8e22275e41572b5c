//! Queue triggers through the engine (memory store, manual clock): when
//! waiting items get jobs, how many at once, retries, a trigger removed,
//! two engines deciding at once.

mod common;

use common::*;
use rpa_core::engine::NewQueueItem;
use rpa_core::error::Error;
use rpa_core::job::FinishStatus;
use rpa_core::model::*;
use rpa_core::store::prelude::*;
use rpa_core::trigger::{QueueTrigger, TriggerState};
use serde_json::json;

fn triggered(w: &mut World, min_items: u32, max_concurrent: u32) -> Process {
    w.process(|s| {
        s.process_type = ProcessType::Queue;
        s.max_run_num = 0;
        s.retry = RetryPolicy {
            max_retries: 1,
            backoff_ms: 5_000,
            backoff_max_ms: 5_000,
        };
        s.trigger = Some(QueueTrigger {
            min_items,
            max_concurrent,
        });
    })
}

fn add(w: &World, p: &Process, n: i64, priority: Option<i32>) -> QueueItem {
    block(w.engine.add_queue_item(
        &w.user,
        p.key,
        NewQueueItem {
            content: json!({ "n": n }),
            priority,
            ..NewQueueItem::default()
        },
    ))
    .unwrap()
}

fn item(w: &World, i: &QueueItem) -> QueueItem {
    block(w.engine.queue_item(i.key)).unwrap()
}

/// Jobs of the process not ended (pending or running).
fn active(w: &World, items: &[QueueItem]) -> Vec<Job> {
    items
        .iter()
        .filter_map(|i| item(w, i).job)
        .map(|j| block(w.engine.store().job(j)).unwrap().unwrap())
        .filter(|j| !j.state.is_terminal())
        .collect()
}

fn state(w: &World, p: &Process) -> TriggerState {
    block(w.engine.store().get::<TriggerState>(p.id.0)).unwrap().unwrap()
}

#[test]
fn items_wait_for_min_items_then_run_at_most_max_concurrent_until_drained() {
    let mut w = World::new();
    let p = triggered(&mut w, 3, 2);
    let bots: Vec<Bot> = (0..4).map(|i| w.connect(&format!("r{i}"))).collect();
    let a = add(&w, &p, 1, None);
    let b = add(&w, &p, 2, None);
    for i in [&a, &b] {
        let i = item(&w, i);
        assert_eq!(
            (i.state, i.job),
            (ItemState::New, None),
            "below minItems nothing starts"
        );
    }
    assert_eq!(w.process_now(&p).pending_items, 2);
    let c = add(&w, &p, 3, None);
    let d = add(&w, &p, 4, Some(9));
    let items = [a.clone(), b.clone(), c.clone(), d.clone()];
    // The third item filled the batch: two jobs (maxConcurrent) for the two oldest.
    let running = active(&w, &items);
    assert_eq!(running.len(), 2);
    assert!(running.iter().all(|j| j.triggered && j.state == JobState::Running));
    assert!(item(&w, &a).job.is_some() && item(&w, &b).job.is_some());
    assert_eq!(item(&w, &c).job, None);
    assert_eq!(item(&w, &d).job, None, "added while the round was full");
    assert_eq!((state(&w, &p).waiting, state(&w, &p).active), (2, 2));

    // A job ends: the best waiting item (priority 9) starts in the same commit.
    let holder = |j: &Job| bots.iter().find(|b| w.robot(b).job == Some(j.id)).unwrap();
    let first = &running[0];
    w.finish(holder(first), first, FinishStatus::Success).unwrap();
    let d_job = item(&w, &d).job.expect("the priority item started");
    assert_eq!(active(&w, &items).len(), 2);
    assert_eq!(item(&w, &c).job, None);

    // Below minItems, the started round still drains the queue.
    let second = &running[1];
    w.finish(holder(second), second, FinishStatus::Success).unwrap();
    assert!(item(&w, &c).job.is_some());
    for j in active(&w, &items) {
        w.finish(holder(&j), &j, FinishStatus::Success).unwrap();
    }
    assert!(items.iter().all(|i| item(&w, i).state == ItemState::Successful));
    assert!(block(w.engine.store().job(d_job)).unwrap().unwrap().triggered);
    assert_eq!((state(&w, &p).waiting, state(&w, &p).active), (0, 0));
    assert_eq!(w.process_now(&p).pending_items, 0);

    // The round is over: a lone new item waits for minItems again.
    let e = add(&w, &p, 5, None);
    assert_eq!(item(&w, &e).job, None);
    let audit = block(w.engine.store().audit(0, usize::MAX)).unwrap();
    assert_eq!(audit.iter().filter(|e| e.action == "job.trigger").count(), 4);
    w.audit_ok();
}

#[test]
fn pending_trigger_jobs_count_as_active_and_max_run_num_still_caps_running() {
    let mut w = World::new();
    let mut p = triggered(&mut w, 1, 3);
    let spec = ProcessSpec {
        max_run_num: 1,
        ..(*p.spec).clone()
    };
    p = block(w.engine.update_process(Actor::System, p.key, spec)).unwrap();
    let bots: Vec<Bot> = (0..2).map(|i| w.connect(&format!("r{i}"))).collect();
    let items: Vec<QueueItem> = (0..5).map(|n| add(&w, &p, n, None)).collect();
    let jobs = active(&w, &items);
    assert_eq!(jobs.len(), 3, "three trigger jobs, pending or running");
    let running: Vec<&Job> = jobs.iter().filter(|j| j.state == JobState::Running).collect();
    assert_eq!(running.len(), 1, "maxRunNum 1");
    let bot = bots.iter().find(|b| w.robot(b).job == Some(running[0].id)).unwrap();
    w.finish(bot, running[0], FinishStatus::Success).unwrap();
    assert_eq!(active(&w, &items).len(), 3, "the ended job made room for one more");
    assert_eq!(items.iter().filter(|i| item(&w, i).job.is_none()).count(), 1);
}

#[test]
fn a_failed_item_is_retried_through_the_trigger_after_its_backoff() {
    let mut w = World::new();
    let p = triggered(&mut w, 1, 1);
    let bot = w.connect("r");
    let a = add(&w, &p, 1, None);
    let j1 = active(&w, std::slice::from_ref(&a)).remove(0);
    w.finish(&bot, &j1, FinishStatus::Failed).unwrap();
    assert_eq!(item(&w, &a).state, ItemState::Retried);
    // The retry got its trigger job at once, held by the back-off.
    let st = state(&w, &p);
    assert_eq!((st.waiting, st.active), (0, 1));
    assert_eq!(w.robot(&bot).job, None, "the back-off holds the retry");
    w.advance(5_000);
    w.tick();
    let j2 = block(w.engine.store().job(w.robot(&bot).job.expect("retry runs")))
        .unwrap()
        .unwrap();
    assert!(j2.triggered);
    let retry = block(w.engine.store().item(j2.queue_item.unwrap())).unwrap().unwrap();
    assert_eq!((retry.retry_of, retry.retry_count), (Some(a.id), 1));
    w.finish(&bot, &j2, FinishStatus::Success).unwrap();
    assert_eq!((state(&w, &p).waiting, state(&w, &p).active), (0, 0));
    assert_eq!(w.process_now(&p).pending_items, 0);
    w.audit_ok();
}

#[test]
fn removing_a_trigger_starts_every_waiting_item() {
    let mut w = World::new();
    let p = triggered(&mut w, 10, 1);
    let items: Vec<QueueItem> = (0..4).map(|n| add(&w, &p, n, None)).collect();
    assert!(items.iter().all(|i| item(&w, i).job.is_none()));
    let spec = ProcessSpec {
        trigger: None,
        ..(*p.spec).clone()
    };
    block(w.engine.update_process(Actor::System, p.key, spec)).unwrap();
    assert!(items.iter().all(|i| item(&w, i).job.is_some()));
    // Without a trigger, a new item starts its own job as it is added.
    assert!(add(&w, &p, 9, None).job.is_some());
}

#[test]
fn bad_triggers_are_refused() {
    let mut w = World::new();
    let _ = w.process(|_| {});
    let mut spec = ProcessSpec::new("nightly", ProcessType::Unattended);
    spec.trigger = Some(QueueTrigger {
        min_items: 1,
        max_concurrent: 1,
    });
    let e = block(w.engine.create_process(Actor::System, spec.clone())).unwrap_err();
    assert!(matches!(&e, Error::InvalidArgument(m) if m.contains("Queue")), "{e}");
    spec.process_type = ProcessType::Queue;
    spec.trigger = Some(QueueTrigger {
        min_items: 0,
        max_concurrent: 1,
    });
    let e = block(w.engine.create_process(Actor::System, spec)).unwrap_err();
    assert!(matches!(&e, Error::InvalidArgument(m) if m.contains("minItems")), "{e}");
}

#[test]
fn two_engines_adding_at_once_never_pass_max_concurrent() {
    let store = rpa_core::MemoryStore::new();
    let mut w = World::with_store(store.clone(), 1);
    let p = triggered(&mut w, 2, 3);
    let w2 = World::with_store(store.clone(), 2);
    let user = w.user.clone();
    let items: Vec<QueueItem> = std::thread::scope(|s| {
        let hs: Vec<_> = [&w.engine, &w2.engine]
            .into_iter()
            .map(|e| {
                let user = user.clone();
                s.spawn(move || {
                    (0..40)
                        .map(|n| {
                            block(e.add_queue_item(
                                &user,
                                p.key,
                                NewQueueItem {
                                    content: json!({ "n": n }),
                                    ..NewQueueItem::default()
                                },
                            ))
                            .unwrap()
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        hs.into_iter().flat_map(|h| h.join().unwrap()).collect()
    });
    assert_eq!(active(&w, &items).len(), 3);
    let st = state(&w, &p);
    assert_eq!((st.waiting, st.active), (77, 3));
    assert_eq!(w.process_now(&p).pending_items, 80);
    // Robots drain it through both engines; never more than three at once.
    let bots: Vec<Bot> = (0..4).map(|i| w.connect(&format!("r{i}"))).collect();
    let mut finished = 0;
    while finished < 80 {
        let mut progressed = false;
        for (i, b) in bots.iter().enumerate() {
            let e = if i % 2 == 0 { &w.engine } else { &w2.engine };
            if let Some(j) = w.robot(b).job {
                let key = block(e.store().job(j)).unwrap().unwrap().key;
                block(e.report_finish(&b.code, b.connect, key, FinishStatus::Success, None, None)).unwrap();
                finished += 1;
                progressed = true;
            }
        }
        assert!(active(&w, &items).len() <= 3, "maxConcurrent passed");
        assert!(progressed, "the queue stalled with {finished} done");
    }
    assert!(items.iter().all(|i| item(&w, i).state == ItemState::Successful));
    let starts = block(store.audit(0, usize::MAX))
        .unwrap()
        .iter()
        .filter(|e| e.action == "job.dispatch")
        .count();
    assert_eq!(starts, 80, "each item's job ran once");
    w.audit_ok();
}

#[test]
fn transactions_take_waiting_items_and_end_them_with_the_retry_rules() {
    use rpa_core::engine::TransactionResult;
    use rpa_core::job::ErrorClass;
    let mut w = World::new();
    let p = triggered(&mut w, 100, 1);
    let a = add(&w, &p, 1, None);
    let b = add(&w, &p, 2, Some(5));
    // The best first: b (priority 5).
    let t1 = block(w.engine.start_transaction(&w.user, p.key, None))
        .unwrap()
        .unwrap();
    assert_eq!((t1.id, t1.state, t1.job), (b.id, ItemState::InProgress, None));
    block(w.engine.set_transaction_progress(&w.user, t1.id, "half way")).unwrap();
    let done = block(w.engine.end_transaction(
        &w.user,
        t1.id,
        TransactionResult {
            success: true,
            class: ErrorClass::Application,
            reason: None,
            output: Some(json!({"ok": 1})),
        },
    ))
    .unwrap();
    assert_eq!(done.state, ItemState::Successful);
    assert_eq!(
        (done.progress.as_deref(), done.output.as_deref()),
        (Some("half way"), Some(&json!({"ok": 1})))
    );
    // An application error while retries remain: a new item waits again.
    let t2 = block(w.engine.start_transaction(&w.user, p.key, None))
        .unwrap()
        .unwrap();
    assert_eq!(t2.id, a.id);
    let failed = block(w.engine.end_transaction(
        &w.user,
        t2.id,
        TransactionResult {
            success: false,
            class: ErrorClass::Application,
            reason: Some("timeout".into()),
            output: None,
        },
    ))
    .unwrap();
    assert_eq!(failed.state, ItemState::Retried);
    assert_eq!(state(&w, &p).waiting, 1, "the retry waits in the line");
    assert!(
        block(w.engine.start_transaction(&w.user, p.key, None))
            .unwrap()
            .is_none(),
        "held by its back-off"
    );
    w.advance(5_000);
    let t3 = block(w.engine.start_transaction(&w.user, p.key, None))
        .unwrap()
        .unwrap();
    assert_eq!((t3.retry_of, t3.retry_count), (Some(a.id), 1));
    // A business error: no retry.
    let last = block(w.engine.end_transaction(
        &w.user,
        t3.id,
        TransactionResult {
            success: false,
            class: ErrorClass::Business,
            reason: Some("bad data".into()),
            output: None,
        },
    ))
    .unwrap();
    assert_eq!(last.state, ItemState::Faulted);
    assert!(
        block(w.engine.start_transaction(&w.user, p.key, None))
            .unwrap()
            .is_none()
    );
    let e = block(w.engine.end_transaction(
        &w.user,
        t3.id,
        TransactionResult {
            success: true,
            class: ErrorClass::Application,
            reason: None,
            output: None,
        },
    ))
    .unwrap_err();
    assert!(matches!(e, Error::InvalidArgument(_)), "ended already: {e}");
    // With content of its own, a transaction creates its item.
    let own = block(w.engine.start_transaction(
        &w.user,
        p.key,
        Some(NewQueueItem {
            content: json!({"n": 9}),
            ..NewQueueItem::default()
        }),
    ))
    .unwrap()
    .unwrap();
    assert_eq!(
        (own.state, own.content.as_ref()),
        (ItemState::InProgress, &json!({"n": 9}))
    );
    assert_eq!(w.process_now(&p).pending_items, 0);
    w.audit_ok();
}

#[test]
fn a_queue_without_a_trigger_has_no_item_for_a_transaction() {
    let mut w = World::new();
    let p = w.process(|s| s.process_type = ProcessType::Queue);
    add(&w, &p, 1, None);
    assert!(
        block(w.engine.start_transaction(&w.user, p.key, None))
            .unwrap()
            .is_none()
    );
}

#[test]
fn deleting_new_items_frees_their_place_and_cancels_their_job() {
    let mut w = World::new();
    let p = triggered(&mut w, 2, 1);
    // Waiting for the trigger: it leaves the line and never gets a job.
    let a = add(&w, &p, 1, None);
    assert_eq!(state(&w, &p).waiting, 1);
    let gone = block(w.engine.delete_queue_item(&w.user, a.id)).unwrap();
    assert_eq!(gone.state, ItemState::Deleted);
    assert_eq!(state(&w, &p).waiting, 0);
    assert_eq!(w.process_now(&p).pending_items, 0);
    let b = add(&w, &p, 2, None);
    assert_eq!(
        item(&w, &b).job,
        None,
        "the deleted item does not count toward minItems"
    );
    assert_eq!(item(&w, &a).job, None);
    // Deleted twice, or worked: refused.
    assert!(matches!(
        block(w.engine.delete_queue_item(&w.user, a.id)),
        Err(Error::Rejected(_))
    ));

    // With a job not started (no robot): the job is canceled with it.
    let plain = w.process(|s| {
        s.process_type = ProcessType::Queue;
        s.max_run_num = 0;
    });
    let c = add(&w, &plain, 3, None);
    let job = item(&w, &c).job.expect("a job of its own");
    let gone = block(w.engine.delete_queue_item(&w.user, c.id)).unwrap();
    assert_eq!(gone.state, ItemState::Deleted);
    let job = block(w.engine.store().job(job)).unwrap().unwrap();
    assert_eq!(job.state, JobState::Canceled);
    assert_eq!(w.process_now(&plain).pending_items, 0);

    // Being worked: refused, unchanged.
    let bot = w.connect("r1");
    let d = add(&w, &plain, 4, None);
    assert!(w.robot(&bot).job.is_some(), "the robot took it");
    assert!(matches!(
        block(w.engine.delete_queue_item(&w.user, d.id)),
        Err(Error::Rejected(_))
    ));
    assert_eq!(item(&w, &d).state, ItemState::InProgress);
    w.audit_ok();
}
