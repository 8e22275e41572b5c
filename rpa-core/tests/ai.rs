//! AI capability calls through the engine (in-memory store, manual
//! clock): a robot's call is admitted only for a job it is running, of a
//! process granted the capability, while the day's quota lasts; admitted
//! calls are counted and audited with their job, quota refusals counted
//! too, and a new day starts a new count.

mod common;

use common::*;
use rpa_core::ai::{Backend, CapabilityKind, EVERY_PROCESS, Spec};
use rpa_core::error::{Error, Limit};
use rpa_core::model::*;
use rpa_core::store::AuditStore;
use serde_json::json;

fn ocr(processes: &[&str], quota: Option<u64>) -> Spec {
    Spec {
        kind: CapabilityKind::Ocr,
        backend: Backend::Tesseract {
            languages: "eng".into(),
        },
        processes: processes.iter().map(|p| (*p).to_owned()).collect(),
        daily_quota: quota,
        timeout_ms: 5_000,
    }
}

/// A world with process `invoice`, robot `r1` running one of its jobs.
fn running() -> (World, Bot, Job) {
    let mut w = World::new();
    let p = w.process(|_| {});
    let bot = w.connect("r1");
    let job = w.start(&p, json!({}));
    assert_eq!(w.executes(&bot).len(), 1, "the job went to r1");
    let job = w.job(&job);
    assert_eq!(job.state, JobState::Running);
    (w, bot, job)
}

#[test]
fn a_granted_call_is_counted_and_audited_with_its_job() {
    let (w, bot, job) = running();
    block(
        w.engine
            .register_capability(Actor::System, "ocr", ocr(&["invoice"], None)),
    )
    .unwrap();
    let robot = w.robot(&bot);
    let a = block(w.engine.admit_ai_call(&robot, job.key, "ocr")).unwrap();
    assert_eq!((a.job, a.process.as_str(), a.calls_today), (job.id, "invoice", 1));
    let a = block(w.engine.admit_ai_call(&robot, job.key, "ocr")).unwrap();
    assert_eq!(a.calls_today, 2);
    let usage = block(w.engine.capability_usage(Actor::System, "ocr")).unwrap();
    assert_eq!(usage.len(), 1);
    assert_eq!((usage[0].calls, usage[0].refused), (2, 0));
    let audit = block(w.engine.store().audit(0, 10_000)).unwrap();
    let calls: Vec<_> = audit.iter().filter(|e| e.action == "ai.call").collect();
    assert_eq!(calls.len(), 2);
    assert!(
        calls.iter().all(|e| e.subject == format!("job:{}", job.id.0)),
        "{calls:?}"
    );
    assert!(calls.iter().all(|e| e.actor == Actor::Robot(robot.id)));
    w.audit_ok();
}

#[test]
fn the_quota_refuses_past_its_calls_and_a_new_day_starts_again() {
    let (w, bot, job) = running();
    block(
        w.engine
            .register_capability(Actor::System, "ocr", ocr(&[EVERY_PROCESS], Some(2))),
    )
    .unwrap();
    let robot = w.robot(&bot);
    for _ in 0..2 {
        block(w.engine.admit_ai_call(&robot, job.key, "ocr")).unwrap();
    }
    let refused = block(w.engine.admit_ai_call(&robot, job.key, "ocr")).unwrap_err();
    assert_eq!(
        refused,
        Error::Limit(Limit::DailyQuota {
            capability: "ocr".into(),
            quota: 2
        })
    );
    let usage = block(w.engine.capability_usage(Actor::System, "ocr")).unwrap();
    assert_eq!((usage[0].calls, usage[0].refused), (2, 1));
    // The robot keeps heart-beating through the night; the job still runs.
    for _ in 0..24 {
        w.advance(3_600_000);
        w.beat(&bot, Some(job.key));
    }
    assert_eq!(w.job(&job).state, JobState::Running);
    let a = block(w.engine.admit_ai_call(&robot, job.key, "ocr")).unwrap();
    assert_eq!(a.calls_today, 1, "a new day, a new count");
    let usage = block(w.engine.capability_usage(Actor::System, "ocr")).unwrap();
    assert_eq!(usage.len(), 2);
    assert!(usage[0].day < usage[1].day);
}

#[test]
fn calls_outside_a_granted_running_job_are_refused() {
    let (w, bot, job) = running();
    block(
        w.engine
            .register_capability(Actor::System, "ocr", ocr(&["payroll"], None)),
    )
    .unwrap();
    let robot = w.robot(&bot);
    assert!(matches!(
        block(w.engine.admit_ai_call(&robot, job.key, "ocr")),
        Err(Error::PermissionDenied(m)) if m.contains("invoice")
    ));
    assert!(matches!(
        block(w.engine.admit_ai_call(&robot, job.key, "speech")),
        Err(Error::NotFound(..))
    ));
    // Another robot cannot call for r1's job.
    let other = w.connect("r2");
    block(
        w.engine
            .register_capability(Actor::System, "ocr", ocr(&["invoice"], None)),
    )
    .unwrap();
    assert!(matches!(
        block(w.engine.admit_ai_call(&w.robot(&other), job.key, "ocr")),
        Err(Error::InvalidArgument(m)) if m.contains("not running on robot r2")
    ));
    // Once the job has ended, no more calls for it.
    w.finish(&bot, &job, rpa_core::job::FinishStatus::Success).unwrap();
    assert!(matches!(
        block(w.engine.admit_ai_call(&robot, job.key, "ocr")),
        Err(Error::InvalidArgument(_))
    ));
    // Nothing refused this way was counted.
    assert!(
        block(w.engine.capability_usage(Actor::System, "ocr"))
            .unwrap()
            .is_empty()
    );
}

#[test]
fn a_retired_capability_is_refused_until_registered_again() {
    let (w, bot, job) = running();
    block(
        w.engine
            .register_capability(Actor::System, "ocr", ocr(&["invoice"], None)),
    )
    .unwrap();
    block(w.engine.retire_capability(Actor::System, "ocr")).unwrap();
    let robot = w.robot(&bot);
    assert!(matches!(
        block(w.engine.admit_ai_call(&robot, job.key, "ocr")),
        Err(Error::NotFound(..))
    ));
    let again = block(
        w.engine
            .register_capability(Actor::System, "ocr", ocr(&["invoice"], None)),
    )
    .unwrap();
    assert!(!again.retired && again.version == 3);
    block(w.engine.admit_ai_call(&robot, job.key, "ocr")).unwrap();
}

#[test]
fn only_process_managers_register_and_tokens_are_never_listed() {
    let w = World::new();
    let alice = Actor::User(w.user.id);
    let spec = Spec {
        kind: CapabilityKind::Nlp,
        backend: Backend::Http {
            endpoint: "http://127.0.0.1:9/nlp".into(),
            token: "the-token".into(),
        },
        processes: vec![EVERY_PROCESS.into()],
        daily_quota: None,
        timeout_ms: 1_000,
    };
    assert!(matches!(
        block(w.engine.register_capability(alice, "nlp", spec.clone())),
        Err(Error::PermissionDenied(_))
    ));
    assert!(matches!(
        block(w.engine.register_capability(Actor::System, "a/b", spec.clone())),
        Err(Error::InvalidArgument(_))
    ));
    block(w.engine.register_capability(Actor::System, "nlp", spec)).unwrap();
    let listed = block(w.engine.capabilities(Actor::System)).unwrap();
    let shown = serde_json::to_string(&listed).unwrap();
    assert!(!shown.contains("the-token"), "{shown}");
    assert!(block(w.engine.capabilities(alice)).is_err());
}
