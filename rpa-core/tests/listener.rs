//! Listener requests (seed 003) through the engine: a request and its job
//! are one commit, a repeated source starts nothing, fall-outs are kept
//! with their reason, and a request's retry and expiration drive its job.

mod common;

use common::{World, block};
use rpa_core::Clock;
use rpa_core::job::FinishStatus;
use rpa_core::listener::{ListenerRequest, Perform, Queue, codes};
use rpa_core::model::*;
use rpa_core::store::prelude::*;
use serde_json::{Value, json};

fn perform(process: &str, source: &str, inputs: Value) -> Perform {
    Perform {
        process: process.into(),
        profile: "Profile1".into(),
        user_name: "crm".into(),
        inputs: inputs.as_object().cloned().unwrap_or_default(),
        retry: None,
        expiration_ms: 60_000,
        sent_at: None,
        reference: "REF-1".into(),
        app_id: "crm".into(),
        source_message_id: source.into(),
        wait: false,
        request: json!({"ProcessName": process, "AutomationInputDictionary": inputs}),
    }
}

fn world() -> (World, Process) {
    let mut w = World::new();
    let p = w.process(|s| {
        s.arguments = vec![
            ArgumentSpec {
                name: "policy".into(),
                id: "policy".into(),
                arg_type: ArgType::String,
                required: true,
                secret: false,
            },
            ArgumentSpec {
                name: "pin".into(),
                id: "pin".into(),
                arg_type: ArgType::String,
                required: false,
                secret: true,
            },
        ];
    });
    (w, p)
}

fn send(w: &World, r: Perform) -> ListenerRequest {
    block(w.engine.listener_request(&w.user, r)).unwrap()
}

#[test]
fn an_accepted_request_starts_its_job_with_its_inputs_and_deadline() {
    let (w, p) = world();
    let r = send(
        &w,
        perform("invoice", "m1", json!({"Search.policy": "P-7", "Search.pin": "1234"})),
    );
    assert_eq!(r.queue, Queue::Automation);
    assert_eq!(r.message_id.len(), 36, "a hyphenated UUID");
    let job = block(w.engine.job(r.job_key.unwrap())).unwrap();
    assert_eq!(job.process, p.id);
    assert_eq!(*job.arguments, json!({"policy": "P-7", "pin": "1234"}));
    assert_eq!(job.deadline, Some(common::T0.plus_ms(60_000)));
    assert_eq!(
        r.request["AutomationInputDictionary"],
        json!({"Search.policy": "P-7", "Search.pin": "********"}),
        "the kept request never holds a secret input"
    );
    w.audit_ok();
}

#[test]
fn a_repeated_source_gets_the_first_answer_and_starts_nothing() {
    let (w, p) = world();
    let first = send(&w, perform("invoice", "same", json!({"Search.policy": "A"})));
    let again = send(&w, perform("invoice", "same", json!({"Search.policy": "B"})));
    assert_eq!(again, first);
    let mut other_app = perform("invoice", "same", json!({"Search.policy": "C"}));
    other_app.app_id = "erp".into();
    let other = send(&w, other_app);
    assert_ne!(other.id, first.id, "the same id from another app is another request");
    let jobs = block(w.engine.store().jobs_of_process(rpa_core::store::JobQuery {
        process: p.id,
        from: rpa_core::Timestamp(0),
        to: rpa_core::Timestamp(i64::MAX),
        state: None,
        limit: 10,
    }))
    .unwrap();
    assert_eq!(jobs.0, 2, "one job per distinct source");
}

#[test]
fn requests_that_cannot_run_fall_out_with_their_reason_and_are_listed() {
    let (w, _) = world();
    let unknown = send(&w, perform("nope", "a", json!({})));
    let bad = send(&w, perform("invoice", "b", json!({"Search.policy": 5, "Search.x": 1})));
    let mut late = perform("invoice", "c", json!({"Search.policy": "P"}));
    late.expiration_ms = 0;
    let late = send(&w, late);
    let codes_of = |r: &ListenerRequest| (r.queue, r.fault.as_ref().map(|f| f.code.clone()), r.job);
    assert_eq!(codes_of(&unknown), (Queue::Fallout, Some(codes::PROCESS.into()), None));
    assert_eq!(codes_of(&bad), (Queue::Fallout, Some(codes::INPUT.into()), None));
    assert_eq!(codes_of(&late), (Queue::Fallout, Some(codes::EXPIRED.into()), None));
    let listed = block(w.engine.listener_requests(Queue::Fallout, 0, 10)).unwrap();
    assert_eq!(
        listed.iter().map(|r| r.id).collect::<Vec<_>>(),
        vec![unknown.id, bad.id, late.id]
    );
    let page = block(w.engine.listener_requests(Queue::Fallout, bad.id, 10)).unwrap();
    assert_eq!(page.iter().map(|r| r.id).collect::<Vec<_>>(), vec![late.id]);
    assert!(
        block(w.engine.listener_requests(Queue::Automation, 0, 10))
            .unwrap()
            .is_empty()
    );
    w.audit_ok();
}

#[test]
fn a_process_not_granted_to_the_listener_user_falls_out_as_unknown() {
    let (mut w, _) = world();
    let hidden = block(
        w.engine
            .create_process(Actor::System, ProcessSpec::new("payroll", ProcessType::Unattended)),
    )
    .unwrap();
    assert!(!w.user.grants.contains(&hidden.id));
    let r = send(&w, perform("payroll", "h", json!({})));
    assert_eq!(r.fault.map(|f| f.code), Some(codes::PROCESS.into()));
    w.user = block(w.engine.store().user_by_name("alice")).unwrap().unwrap();
}

#[test]
fn a_retried_request_runs_again_after_its_cool_off_and_when_an_attempt_expires() {
    let (w, _) = world();
    let mut r = perform("invoice", "retry", json!({"Search.policy": "P"}));
    r.retry = Some((2, 5_000));
    r.expiration_ms = 20_000;
    let req = send(&w, r);
    let bot = w.connect("bot-1");
    w.tick();
    let job = block(w.engine.job(req.job_key.unwrap())).unwrap();
    assert_eq!((job.state, job.attempt), (JobState::Running, 1));
    // A failure: retried after the request's cool-off, not the process's back-off.
    let after = w.finish(&bot, &job, FinishStatus::Failed).unwrap();
    assert_eq!((after.state, after.attempt), (JobState::Pending, 2));
    assert_eq!(after.not_before, Some(w.clock.now().plus_ms(5_000)));
    w.beat(&bot, None);
    w.advance(5_000);
    w.tick();
    w.beat(&bot, None);
    let job = block(w.engine.job(req.job_key.unwrap())).unwrap();
    assert_eq!((job.state, job.attempt), (JobState::Running, 2));
    // This attempt outlives the request's window: it is stopped and tried again.
    w.advance(25_001);
    w.tick();
    let job = block(w.engine.job(req.job_key.unwrap())).unwrap();
    assert_eq!((job.state, job.attempt), (JobState::Pending, 3), "{:?}", job.reason);
    assert!(job.deadline.unwrap() > w.clock.now().plus_ms(20_000), "a fresh window");
    // The last attempt expires too: the job ends Faulted.
    w.advance(5_000);
    w.tick();
    w.beat(&bot, None);
    w.advance(20_001);
    w.tick();
    let job = block(w.engine.job(req.job_key.unwrap())).unwrap();
    assert_eq!((job.state, job.attempt), (JobState::Faulted, 3));
    w.audit_ok();
}
