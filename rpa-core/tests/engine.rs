//! The engine's rules, end to end through the in-memory store with a manual
//! clock: people, jobs, limits, robots, fail-over, queues, audit.

mod common;

use common::*;
use rpa_core::engine::{JobQueryParams, NewQueueItem, NewUser};
use rpa_core::error::{Error, Limit};
use rpa_core::ids::RobotId;
use rpa_core::job::{FinishStatus, StopStrategy};
use rpa_core::model::*;
use rpa_core::store::prelude::*;
use rpa_core::transport::Command;
use rpa_core::{Clock, Timestamp};
use serde_json::json;

// ------------------------------------------------------------------ people

#[test]
fn login_lists_exactly_the_granted_processes() {
    let mut w = World::new();
    let a = w.process(|_| {});
    let _not_granted = block(
        w.engine
            .create_process(Actor::System, ProcessSpec::new("other", ProcessType::Attended)),
    )
    .unwrap();
    let login = block(w.engine.login("alice", "pw")).unwrap();
    assert_eq!(login.processes.iter().map(|p| p.key).collect::<Vec<_>>(), vec![a.key]);
    assert_eq!(login.expires_at, T0.plus_ms(30 * 60 * 1000));
    assert_eq!(block(w.engine.authenticate(&login.token)).unwrap().name, "alice");
}

#[test]
fn five_wrong_passwords_lock_until_an_admin_unlocks() {
    let w = World::new();
    for i in 1..=4 {
        assert_eq!(
            block(w.engine.login("alice", "nope")).unwrap_err(),
            Error::BadCredentials,
            "attempt {i}"
        );
    }
    assert_eq!(block(w.engine.login("alice", "nope")).unwrap_err(), Error::UserLocked);
    assert_eq!(
        block(w.engine.login("alice", "pw")).unwrap_err(),
        Error::UserLocked,
        "the right password does not help"
    );
    block(w.engine.unlock_user(Actor::System, "alice")).unwrap();
    block(w.engine.login("alice", "pw")).unwrap();
    let events = block(w.engine.audit_events(Actor::System, 0, 1000)).unwrap();
    assert_eq!(events.iter().filter(|e| e.action == "login.failed").count(), 5);
    assert!(events.iter().any(|e| e.action == "user.lock"));
    assert!(events.iter().any(|e| e.action == "user.unlock"));
    w.audit_ok();
}

#[test]
fn wrong_passwords_count_within_a_window_of_the_first_of_them() {
    let w = World::new();
    let wrong = || block(w.engine.login("alice", "nope")).unwrap_err();
    for _ in 0..4 {
        assert_eq!(wrong(), Error::BadCredentials);
    }
    // 31 minutes after the first miss the count starts again.
    w.advance(31 * 60 * 1000);
    for i in 1..=4 {
        assert_eq!(wrong(), Error::BadCredentials, "a new count: attempt {i}");
    }
    assert_eq!(wrong(), Error::UserLocked, "five within 30 minutes lock");
    // Without an unlock period only an administrator unlocks, however long it takes.
    w.advance(7 * 24 * 3_600_000);
    assert_eq!(block(w.engine.login("alice", "pw")).unwrap_err(), Error::UserLocked);
    w.audit_ok();
}

#[test]
fn a_lock_period_when_configured_unlocks_by_itself() {
    let w = World::with_config(rpa_core::MemoryStore::new(), 1, |c| c.auto_unlock_ms = Some(3_600_000));
    for _ in 0..5 {
        block(w.engine.login("alice", "nope")).unwrap_err();
    }
    w.advance(59 * 60 * 1000);
    assert_eq!(block(w.engine.login("alice", "pw")).unwrap_err(), Error::UserLocked);
    w.advance(2 * 60 * 1000);
    block(w.engine.login("alice", "pw")).expect("the lock period is over");
    let u = block(w.engine.store().user_by_name("alice")).unwrap().unwrap();
    assert_eq!((u.locked, u.failed_logins, u.locked_at), (false, 0, None));
    let events = block(w.engine.audit_events(Actor::System, 0, 1000)).unwrap();
    assert!(
        events
            .iter()
            .any(|e| e.action == "user.unlock" && e.detail == "lock period over"),
        "the unlock is audited"
    );
    w.audit_ok();
}

#[test]
fn a_right_password_resets_the_count() {
    let w = World::new();
    for _ in 0..4 {
        block(w.engine.login("alice", "nope")).unwrap_err();
    }
    block(w.engine.login("alice", "pw")).unwrap();
    for _ in 0..4 {
        block(w.engine.login("alice", "nope")).unwrap_err();
    }
    block(w.engine.login("alice", "pw")).unwrap();
}

#[test]
fn tokens_expire_after_30_minutes_and_logout_revokes() {
    let w = World::new();
    let t = block(w.engine.login("alice", "pw")).unwrap().token;
    w.advance(30 * 60 * 1000 - 1);
    block(w.engine.authenticate(&t)).unwrap();
    w.advance(1);
    assert_eq!(block(w.engine.authenticate(&t)).unwrap_err(), Error::Unauthenticated);
    let t = block(w.engine.login("alice", "pw")).unwrap().token;
    block(w.engine.logout(&t)).unwrap();
    assert_eq!(block(w.engine.authenticate(&t)).unwrap_err(), Error::Unauthenticated);
    assert_eq!(
        block(w.engine.authenticate("forged")).unwrap_err(),
        Error::Unauthenticated
    );
}

#[test]
fn a_tick_deletes_sessions_that_ran_out() {
    let w = World::new();
    let t = block(w.engine.login("alice", "pw")).unwrap().token;
    let hash = rpa_core::auth::token_hash(&t);
    w.advance(30 * 60 * 1000 - 1);
    assert_eq!(block(w.engine.tick()).unwrap().sessions_expired, 0);
    w.advance(1);
    assert_eq!(
        block(w.engine.next_timeout()).unwrap(),
        Some(w.clock.now()),
        "the session's expiry is a deadline"
    );
    assert_eq!(block(w.engine.tick()).unwrap().sessions_expired, 1);
    assert_eq!(
        block(w.engine.store().token(hash)).unwrap(),
        None,
        "deleted, not only refused"
    );
    assert_eq!(block(w.engine.authenticate(&t)).unwrap_err(), Error::Unauthenticated);
    assert_eq!(block(w.engine.next_timeout()).unwrap(), None);
}

#[test]
fn unknown_users_and_non_admins_are_refused() {
    let w = World::new();
    assert_eq!(
        block(w.engine.login("mallory", "x")).unwrap_err(),
        Error::BadCredentials
    );
    let alice = Actor::User(w.user.id);
    let e = block(w.engine.create_user(
        alice,
        NewUser {
            name: "eve".into(),
            password: "x".into(),
            ..NewUser::default()
        },
    ))
    .unwrap_err();
    assert!(matches!(e, Error::PermissionDenied(_)));
    let admin = block(w.engine.store().user_by_name("admin")).unwrap().unwrap();
    block(w.engine.create_user(
        Actor::User(admin.id),
        NewUser {
            name: "eve".into(),
            password: "x".into(),
            ..NewUser::default()
        },
    ))
    .unwrap();
    let dup = block(w.engine.create_user(
        Actor::System,
        NewUser {
            name: "eve".into(),
            password: "x".into(),
            ..NewUser::default()
        },
    ));
    assert!(matches!(dup, Err(Error::AlreadyExists(_))));
}

// -------------------------------------------------------------------- jobs

#[test]
fn a_job_runs_on_a_robot_and_succeeds() {
    let mut w = World::new();
    let p = w.process(|s| {
        s.arguments.push(ArgumentSpec {
            name: "invoice".into(),
            id: "inv".into(),
            arg_type: ArgType::Int,
            required: true,
            secret: false,
        });
    });
    let bot = w.connect("r1");
    let job = w.start(&p, json!({"invoice": "42"}));
    assert_eq!(job.state, JobState::Running);
    assert_eq!(w.robot(&bot).state, RobotState::Busy);
    let ex = w.executes(&bot);
    assert_eq!(ex.len(), 1);
    assert_eq!(ex[0].run_instance_id, job.key);
    assert_eq!(ex[0].package_download_uri, "http://files/pkg");
    assert_eq!(ex[0].user_name, "alice");
    assert_eq!(
        (ex[0].arguments[0].name.as_str(), ex[0].arguments[0].value.as_str()),
        ("invoice", "42")
    );
    assert_eq!(w.process_now(&p).running, 1);
    let done = w.finish(&bot, &job, FinishStatus::Success).unwrap();
    assert_eq!(done.state, JobState::Successful);
    assert_eq!(done.outputs.as_deref(), Some(&json!({"out": 1})));
    assert_eq!(w.robot(&bot).state, RobotState::Available);
    let p_now = w.process_now(&p);
    assert_eq!((p_now.running, p_now.day_successes), (0, 1));
    w.audit_ok();
}

/// A transport with robot `here` connected to it; records what it is told.
#[derive(Default)]
struct Connections {
    here: std::sync::Mutex<Option<RobotId>>,
    pushed: std::sync::Mutex<Vec<(RobotId, Vec<Command>)>>,
    woken: std::sync::Mutex<Vec<RobotId>>,
}

impl rpa_core::transport::RobotTransport for Connections {
    fn wake(&self, robot: RobotId) {
        self.woken.lock().unwrap().push(robot);
    }
    fn is_here(&self, robot: RobotId) -> bool {
        *self.here.lock().unwrap() == Some(robot)
    }
    fn push(&self, robot: RobotId, commands: Vec<Command>) {
        self.pushed.lock().unwrap().push((robot, commands));
    }
}

#[test]
fn commands_of_robots_connected_here_are_pushed_and_skip_the_outbox() {
    let conns = std::sync::Arc::new(Connections::default());
    let mut w = World::with_transport(conns.clone());
    let p = w.process(|s| s.max_run_num = 2);
    let (near, far) = (w.connect("near"), w.connect("far"));
    *conns.here.lock().unwrap() = Some(w.robot(&near).id);

    let first = w.start(&p, json!({}));
    let second = w.start(&p, json!({}));
    let on = |b: &Bot| {
        [&first, &second]
            .into_iter()
            .find(|j| w.job(j).robot == Some(w.robot(b).id))
            .cloned()
    };
    let (near_job, far_job) = (on(&near).unwrap(), on(&far).unwrap());

    // The near robot's Execute was handed over once its commit stood; its
    // outbox holds nothing, so nothing can deliver it a second time.
    let pushed = conns.pushed.lock().unwrap().clone();
    assert_eq!(pushed.len(), 1, "{pushed:?}");
    assert_eq!(pushed[0].0, w.robot(&near).id);
    assert!(matches!(&pushed[0].1[..], [Command::Execute(e)] if e.run_instance_id == near_job.key));
    assert!(w.commands(&near).is_empty());
    // The far robot's waits in its outbox, and it was woken to take it.
    assert_eq!(*conns.woken.lock().unwrap(), vec![w.robot(&far).id]);
    let ex = w.executes(&far);
    assert_eq!(ex.len(), 1);
    assert_eq!(ex[0].run_instance_id, far_job.key);
    w.audit_ok();
}

#[test]
fn bad_starts_are_refused_and_write_nothing() {
    let mut w = World::new();
    let p = w.process(|s| {
        s.arguments.push(ArgumentSpec {
            name: "n".into(),
            id: "n".into(),
            arg_type: ArgType::Int,
            required: true,
            secret: false,
        });
    });
    let before = block(w.engine.store().audit(0, usize::MAX)).unwrap().len();
    let e = block(w.engine.start_job(&w.user, p.key, &json!({"n": "x"}))).unwrap_err();
    assert_eq!(e.to_string(), "argument 'n' must be of type int");
    let e = block(w.engine.start_job(&w.user, p.key, &json!({}))).unwrap_err();
    assert!(matches!(e, Error::InvalidArgument(_)));
    let e = block(w.engine.start_job(&w.user, rpa_core::Key([9; 16]), &json!({}))).unwrap_err();
    assert!(matches!(e, Error::NotFound(..)));
    let (total, _, _) = block(w.engine.query_process_jobs(&w.user, p.key, JobQueryParams::default())).unwrap();
    assert_eq!(total, 0);
    assert_eq!(block(w.engine.store().audit(0, usize::MAX)).unwrap().len(), before);
}

#[test]
fn only_granted_processes_and_their_jobs_are_reachable() {
    let mut w = World::new();
    let p = w.process(|_| {});
    let job = w.start(&p, json!({}));
    let bob = block(w.engine.create_user(
        Actor::System,
        NewUser {
            name: "bob".into(),
            password: "pw".into(),
            ..NewUser::default()
        },
    ))
    .unwrap();
    for e in [
        block(w.engine.start_job(&bob, p.key, &json!({}))).unwrap_err(),
        block(w.engine.stop_job(&bob, job.key, StopStrategy::SoftStop)).unwrap_err(),
        block(w.engine.job_status(&bob, job.key)).map(|_| ()).unwrap_err(),
        block(w.engine.query_process(&bob, p.key)).map(|_| ()).unwrap_err(),
    ] {
        assert!(matches!(e, Error::PermissionDenied(_)), "{e}");
    }
    assert_eq!(w.job(&job).state, JobState::Pending, "bob's stop changed nothing");
    let denied = block(w.engine.audit_events(Actor::System, 0, 1000))
        .unwrap()
        .iter()
        .filter(|e| e.action == "permission.denied")
        .count();
    assert_eq!(denied, 4);
}

#[test]
fn max_run_num_queues_jobs_until_a_slot_frees() {
    let mut w = World::new();
    let p = w.process(|s| s.max_run_num = 1);
    let (a, b) = (w.connect("a"), w.connect("b"));
    let j1 = w.start(&p, json!({}));
    let j2 = w.start(&p, json!({}));
    assert_eq!(
        (w.job(&j1).state, w.job(&j2).state),
        (JobState::Running, JobState::Pending)
    );
    assert_eq!(w.process_now(&p).running, 1);
    let holder = if w.robot(&a).job == Some(j1.id) { &a } else { &b };
    w.finish(holder, &j1, FinishStatus::Success).unwrap();
    assert_eq!(w.job(&j2).state, JobState::Running);
}

#[test]
fn max_day_num_refuses_starts_and_holds_dispatch_until_tomorrow() {
    let mut w = World::new();
    let p = w.process(|s| {
        s.max_day_num = 2;
        s.max_run_num = 5;
    });
    let (a, b) = (w.connect("a"), w.connect("b"));
    let j1 = w.start(&p, json!({}));
    let j2 = w.start(&p, json!({}));
    let j3 = w.start(&p, json!({}));
    assert_eq!(
        w.job(&j3).state,
        JobState::Pending,
        "successes + running reached maxDayNum"
    );
    for (bot, j) in [(&a, &j1), (&b, &j2)] {
        let holder = if w.robot(bot).job == Some(j.id) {
            bot
        } else if bot.code == "a" {
            &b
        } else {
            &a
        };
        w.finish(holder, j, FinishStatus::Success).unwrap();
    }
    assert_eq!(w.job(&j3).state, JobState::Pending, "not dispatched beyond maxDayNum");
    let e = block(w.engine.start_job(&w.user, p.key, &json!({}))).unwrap_err();
    assert_eq!(e, Error::Limit(Limit::MaxDayNum(2)));
    w.advance(24 * 3600 * 1000);
    w.beat(&a, None);
    w.beat(&b, None);
    w.tick();
    assert_eq!(w.job(&j3).state, JobState::Running, "a new day frees the quota");
}

#[test]
fn max_day_num_counts_calendar_days_of_the_named_zone_across_a_clock_change() {
    // Europe/Berlin, 2026-10-25: clocks go back at 03:00, the day lasts 25 hours.
    let berlin = rpa_core::Tz::Europe__Berlin;
    let mut w = World::with_config(rpa_core::MemoryStore::new(), 1, |c| c.time_zone = berlin);
    let start = Timestamp::parse_local("2026-10-25 00:30:00", berlin).unwrap();
    w.clock.set(start);
    let p = w.process(|s| s.max_day_num = 1);
    let a = w.connect("a");
    let j = w.start(&p, json!({}));
    w.finish(&a, &j, FinishStatus::Success).unwrap();
    // 24 hours later it is 23:30 on the same day in Berlin (a fixed offset would say tomorrow).
    w.advance(24 * 3_600_000);
    w.beat(&a, None);
    assert_eq!(w.engine.now().format_local(berlin), "2026-10-25 23:30:00");
    let e = block(w.engine.start_job(&w.user, p.key, &json!({}))).unwrap_err();
    assert_eq!(e, Error::Limit(Limit::MaxDayNum(1)));
    // Half past midnight: a new day.
    w.advance(3_600_000);
    w.beat(&a, None);
    let j2 = w.start(&p, json!({}));
    assert_eq!(w.job(&j2).state, JobState::Running);
}

#[test]
fn higher_priority_goes_first_then_oldest() {
    let mut w = World::new();
    let low = w.process(|s| s.max_run_num = 0);
    let high = w.process(|s| {
        s.priority = 10;
        s.max_run_num = 0;
    });
    let l1 = w.start(&low, json!({}));
    let l2 = w.start(&low, json!({}));
    let h1 = w.start(&high, json!({}));
    let bot = w.connect("r");
    assert_eq!(w.robot(&bot).job, Some(h1.id));
    w.finish(&bot, &h1, FinishStatus::Success).unwrap();
    assert_eq!(w.robot(&bot).job, Some(l1.id));
    w.finish(&bot, &l1, FinishStatus::Success).unwrap();
    assert_eq!(w.robot(&bot).job, Some(l2.id));
}

#[test]
fn robots_run_only_what_they_may() {
    let mut w = World::new();
    let attended = w.process(|s| s.process_type = ProcessType::Attended);
    let pooled = w.process(|s| {
        s.requirements.pool = Some("finance".into());
        s.requirements.labels = vec!["sap".into()];
    });
    let ja = w.start(&attended, json!({}));
    let jp = w.start(&pooled, json!({}));
    let plain = w.connect("plain");
    assert_eq!(w.robot(&plain).job, None, "neither fits a default unattended robot");
    block(w.engine.configure_robot(
        Actor::System,
        "desk",
        RobotProfile {
            attended: true,
            ..RobotProfile::default()
        },
    ))
    .unwrap();
    let desk = w.connect("desk");
    assert_eq!(w.robot(&desk).job, Some(ja.id));
    block(w.engine.configure_robot(
        Actor::System,
        "fin",
        RobotProfile {
            pool: "finance".into(),
            labels: vec!["sap".into(), "x".into()],
            ..RobotProfile::default()
        },
    ))
    .unwrap();
    let fin = w.connect("fin");
    assert_eq!(w.robot(&fin).job, Some(jp.id));
}

#[test]
fn stopping_jobs() {
    let mut w = World::new();
    let p = w.process(|s| s.max_run_num = 0);
    let pending = w.start(&p, json!({}));
    assert_eq!(
        block(w.engine.stop_job(&w.user, pending.key, StopStrategy::SoftStop))
            .unwrap()
            .state,
        JobState::Canceled
    );

    let bot = w.connect("r");
    let j = w.start(&p, json!({}));
    w.commands(&bot);
    assert_eq!(
        block(w.engine.stop_job(&w.user, j.key, StopStrategy::SoftStop))
            .unwrap()
            .state,
        JobState::Stopping
    );
    assert_eq!(w.commands(&bot), vec![Command::Stop { run_instance_id: j.key }]);
    assert_eq!(w.process_now(&p).running, 1, "a stopping job holds its slot");
    w.finish(&bot, &j, FinishStatus::Cancelled).unwrap();
    assert_eq!(w.job(&j).state, JobState::Stopped);

    let k = w.start(&p, json!({}));
    w.commands(&bot);
    assert_eq!(
        block(w.engine.stop_job(&w.user, k.key, StopStrategy::Kill))
            .unwrap()
            .state,
        JobState::Stopped
    );
    assert_eq!(w.commands(&bot), vec![Command::Stop { run_instance_id: k.key }]);
    let next = w.start(&p, json!({}));
    assert_eq!(
        w.job(&next).state,
        JobState::Pending,
        "the robot is busy until it confirms the kill"
    );
    w.finish(&bot, &k, FinishStatus::Success).unwrap();
    assert_eq!(
        w.job(&k).state,
        JobState::Stopped,
        "a late word does not change a killed job"
    );
    assert_eq!(w.job(&next).state, JobState::Running);
    let again = block(w.engine.stop_job(&w.user, k.key, StopStrategy::SoftStop));
    assert!(
        matches!(again, Err(Error::Rejected(_))),
        "stopping a finished job is a rejected transition"
    );
}

#[test]
fn repeating_a_finish_is_harmless_and_changing_it_is_rejected() {
    let mut w = World::new();
    let p = w.process(|_| {});
    let bot = w.connect("r");
    let j = w.start(&p, json!({}));
    w.finish(&bot, &j, FinishStatus::Success).unwrap();
    w.finish(&bot, &j, FinishStatus::Success).unwrap();
    assert!(matches!(
        w.finish(&bot, &j, FinishStatus::Failed),
        Err(Error::Rejected(_))
    ));
    assert_eq!(w.process_now(&p).day_successes, 1, "counted once");
}

#[test]
fn reports_need_the_right_robot_and_connection() {
    let mut w = World::new();
    let p = w.process(|_| {});
    let bot = w.connect("r");
    let other = w.connect("other");
    let j = w.start(&p, json!({}));
    let holder = if w.robot(&bot).job == Some(j.id) { &bot } else { &other };
    let stranger = if holder.code == "r" { &other } else { &bot };
    assert!(matches!(
        w.finish(stranger, &j, FinishStatus::Success),
        Err(Error::PermissionDenied(_))
    ));
    let forged = Bot {
        code: holder.code.clone(),
        connect: rpa_core::Key([1; 16]),
    };
    assert_eq!(
        w.finish(&forged, &j, FinishStatus::Success).unwrap_err(),
        Error::Replaced,
        "another connection holds the robot id: seed 001 error 10000"
    );
    let video = block(w.engine.report_video(&holder.code, holder.connect, j.key, "v1"));
    assert!(
        matches!(video, Err(Error::InvalidArgument(_))),
        "video only after finish"
    );
    w.finish(holder, &j, FinishStatus::Success).unwrap();
    block(w.engine.report_video(&holder.code, holder.connect, j.key, "v1")).unwrap();
    assert_eq!(block(w.engine.videos(j.key)).unwrap().len(), 1);
}

// ------------------------------------------------------------ robots, fail-over

#[test]
fn registration_needs_the_vendor_proof_and_one_live_connection() {
    let w = World::new();
    let bad = block(w.engine.register_robot("r", "acme", "00", None));
    assert_eq!(bad.unwrap_err(), Error::BadSupplier);
    let unknown = block(
        w.engine
            .register_robot("r", "nope", &rpa_core::auth::supplier_proof(SECRET, "r"), None),
    );
    assert_eq!(unknown.unwrap_err(), Error::BadSupplier);
    let first = w.connect("r");
    assert!(w.robot(&first).state == RobotState::Available);
    let second = block(
        w.engine
            .register_robot("r", "acme", &rpa_core::auth::supplier_proof(SECRET, "r"), None),
    );
    assert_eq!(second.unwrap_err(), Error::DuplicateConnection);
    assert_eq!(
        w.robot(&first).connect,
        Some(first.connect),
        "the live connection is kept"
    );
    w.advance(30_001);
    let third = w.connect("r");
    assert_ne!(third.connect, first.connect, "a silent connection no longer counts");
    assert_eq!(
        block(w.engine.heartbeat("r", first.connect, None)).unwrap_err(),
        Error::Replaced,
        "the replaced connection is told so (10000)"
    );
    block(w.engine.disconnect("r", third.connect)).unwrap();
    assert_eq!(
        block(w.engine.heartbeat("r", first.connect, None)).unwrap_err(),
        Error::NotConnected
    );
}

#[test]
fn a_registered_robot_gets_work_only_after_its_first_heartbeat() {
    let mut w = World::new();
    let p = w.process(|_| {});
    let j = w.start(&p, json!({}));
    let bot = w.register("r");
    assert_eq!(
        w.job(&j).state,
        JobState::Pending,
        "it may still be running something else"
    );
    let cmds = w.beat(&bot, None);
    assert!(matches!(&cmds[..], [Command::Execute(e)] if e.run_instance_id == j.key));
}

#[test]
fn a_bound_license_comes_with_registration() {
    let w = World::new();
    block(w.engine.bind_license(Actor::System, "r", "LICENSE-1")).unwrap();
    let reg = block(
        w.engine
            .register_robot("r", "acme", &rpa_core::auth::supplier_proof(SECRET, "r"), None),
    )
    .unwrap();
    assert_eq!(reg.license.as_deref(), Some("LICENSE-1"));
}

#[test]
fn a_silent_robot_loses_its_job_to_another_with_the_checkpoint() {
    let mut w = World::new();
    let p = w.process(|_| {});
    let a = w.connect("a");
    let j = w.start(&p, json!({}));
    w.commands(&a);
    block(w.engine.report_checkpoint(
        "a",
        a.connect,
        j.key,
        rpa_core::engine::Progress {
            checkpoint: Some(json!({"row": 7})),
            step: None,
        },
    ))
    .unwrap();
    let b = w.connect("b");
    w.advance(20_000);
    w.beat(&b, None);
    w.advance(10_001);
    let report = w.tick();
    assert_eq!(report.robots_timed_out, 1);
    assert_eq!(w.robot(&a).state, RobotState::Unresponsive);
    let j2 = w.job(&j);
    assert_eq!(
        (j2.state, j2.attempt, j2.robot),
        (JobState::Running, 2, Some(w.robot(&b).id))
    );
    let ex = w.executes(&b);
    assert_eq!(ex[0].checkpoint, Some(json!({"row": 7})));
    assert_eq!(ex[0].attempt, 2);
    // The lost robot comes back and says it still runs the job: it is told to stop.
    assert_eq!(w.beat(&a, Some(j.key)), vec![Command::Stop { run_instance_id: j.key }]);
    assert!(matches!(
        w.finish(&a, &j, FinishStatus::Success),
        Err(Error::PermissionDenied(_))
    ));
    w.finish(&b, &j, FinishStatus::Success).unwrap();
    assert_eq!(w.job(&j).state, JobState::Successful);
}

#[test]
fn robot_loss_without_attempts_left_faults_the_job() {
    let mut w = World::new();
    let p = w.process(|s| s.retry.max_retries = 0);
    let a = w.connect("a");
    let j = w.start(&p, json!({}));
    w.advance(30_001);
    w.tick();
    assert_eq!(w.job(&j).state, JobState::Faulted);
    assert_eq!(w.process_now(&p).running, 0);
    let _ = a;
}

#[test]
fn a_robot_that_reconnects_in_time_keeps_its_job() {
    let mut w = World::new();
    let p = w.process(|_| {});
    let a = w.connect("a");
    let j = w.start(&p, json!({}));
    block(w.engine.disconnect("a", a.connect)).unwrap();
    assert_eq!(w.robot(&a).state, RobotState::Disconnected);
    w.advance(5_000);
    let a2 = w.register("a");
    assert_eq!(w.robot(&a2).state, RobotState::Busy);
    w.beat(&a2, Some(j.key));
    w.advance(40_000);
    w.beat(&a2, Some(j.key));
    w.tick();
    assert_eq!(w.job(&j).state, JobState::Running);
    w.finish(&a2, &j, FinishStatus::Success).unwrap();
    assert_eq!(w.job(&j).state, JobState::Successful);
}

#[test]
fn a_robot_that_reconnects_without_its_job_fails_it_over() {
    let mut w = World::new();
    let p = w.process(|_| {});
    let a = w.connect("a");
    let j = w.start(&p, json!({}));
    block(w.engine.disconnect("a", a.connect)).unwrap();
    let a2 = w.register("a");
    let cmds = w.beat(&a2, None);
    let j2 = w.job(&j);
    assert_eq!(j2.attempt, 2, "lost and dispatched again");
    assert_eq!(j2.state, JobState::Running);
    assert!(
        cmds.iter()
            .any(|c| matches!(c, Command::Execute(e) if e.run_instance_id == j.key))
    );
}

#[test]
fn application_failures_retry_after_backoff_and_business_failures_do_not() {
    let mut w = World::new();
    let p = w.process(|s| {
        s.retry = RetryPolicy {
            max_retries: 1,
            backoff_ms: 5_000,
            backoff_max_ms: 5_000,
        }
    });
    let a = w.connect("a");
    let j = w.start(&p, json!({}));
    w.finish(&a, &j, FinishStatus::Failed).unwrap();
    assert_eq!(w.job(&j).state, JobState::Pending);
    assert_eq!(w.robot(&a).job, None, "not dispatched during back-off");
    w.advance(5_000);
    w.beat(&a, None);
    assert_eq!(w.tick().jobs_ready, 1);
    assert_eq!(w.job(&j).state, JobState::Running);
    w.finish(&a, &j, FinishStatus::Failed).unwrap();
    assert_eq!(w.job(&j).state, JobState::Faulted, "attempts spent");

    let k = w.start(&p, json!({}));
    block(
        w.engine
            .report_finish("a", a.connect, k.key, FinishStatus::Failed, Some(20_001), None),
    )
    .unwrap();
    assert_eq!(w.job(&k).state, JobState::Faulted, "business error not retried");
    assert_eq!(w.job(&k).error_code, Some(20_001));
}

#[test]
fn expired_jobs_fault_and_their_robot_is_told_to_stop() {
    let mut w = World::new();
    let p = w.process(|s| s.expiration_ms = Some(60_000));
    let a = w.connect("a");
    let j = w.start(&p, json!({}));
    w.commands(&a);
    w.advance(25_000);
    w.beat(&a, Some(j.key));
    w.advance(25_000);
    w.beat(&a, Some(j.key));
    w.advance(10_000);
    assert_eq!(w.tick().jobs_expired, 1);
    assert_eq!(w.job(&j).state, JobState::Faulted);
    assert_eq!(w.commands(&a), vec![Command::Stop { run_instance_id: j.key }]);
    assert_eq!(w.robot(&a).state, RobotState::Busy, "busy until it confirms");
    w.finish(&a, &j, FinishStatus::Cancelled).unwrap();
    assert_eq!(w.robot(&a).state, RobotState::Available);
    assert_eq!(w.job(&j).state, JobState::Faulted);
}

// ------------------------------------------------------------------ queues

#[test]
fn queue_items_run_as_jobs_and_failures_are_retried_as_new_items() {
    let mut w = World::new();
    let q = w.process(|s| {
        s.process_type = ProcessType::Queue;
        s.max_pending_items = 2;
        s.retry = RetryPolicy {
            max_retries: 1,
            backoff_ms: 0,
            backoff_max_ms: 0,
        };
        s.arguments.push(ArgumentSpec {
            name: "invoice".into(),
            id: "inv".into(),
            arg_type: ArgType::String,
            required: true,
            secret: false,
        });
    });
    let add = |r: &str| {
        block(w.engine.add_queue_item(
            &w.user,
            q.key,
            NewQueueItem {
                content: json!({"invoice": r}),
                reference: Some(r.into()),
                ..NewQueueItem::default()
            },
        ))
    };
    let i1 = add("A").unwrap();
    let i2 = add("B").unwrap();
    assert_eq!(add("C").unwrap_err(), Error::Limit(Limit::MaxPendingItems(2)));
    assert!(matches!(add("A"), Err(Error::AlreadyExists(_))));
    let e = block(w.engine.start_job(&w.user, q.key, &json!({"invoice": "x"}))).unwrap_err();
    assert!(matches!(e, Error::InvalidArgument(_)));

    let bot = w.register("r");
    let first = w.beat(&bot, None);
    let item = |i: &QueueItem| block(w.engine.queue_item(i.key)).unwrap();
    assert_eq!(item(&i1).state, ItemState::InProgress);
    let j1 = block(w.engine.store().job(item(&i1).job.unwrap())).unwrap().unwrap();
    assert!(matches!(&first[..], [Command::Execute(e)] if e.arguments[0].value == "A" && e.run_instance_id == j1.key));
    w.finish(&bot, &j1, FinishStatus::Failed).unwrap();
    assert_eq!(item(&i1).state, ItemState::Retried);
    assert_eq!(
        w.job(&j1).state,
        JobState::Faulted,
        "queue jobs are not retried themselves"
    );

    let j2 = block(w.engine.store().job(item(&i2).job.unwrap())).unwrap().unwrap();
    assert_eq!(w.job(&j2).state, JobState::Running);
    w.finish(&bot, &j2, FinishStatus::Success).unwrap();
    assert_eq!(item(&i2).state, ItemState::Successful);

    // The retry of A runs next and fails with a business error: no more retries.
    let r = w.robot(&bot);
    let j3 = block(w.engine.store().job(r.job.unwrap())).unwrap().unwrap();
    let retry_item = block(w.engine.store().item(j3.queue_item.unwrap())).unwrap().unwrap();
    assert_eq!((retry_item.retry_of, retry_item.retry_count), (Some(i1.id), 1));
    block(
        w.engine
            .report_finish("r", bot.connect, j3.key, FinishStatus::Failed, None, None),
    )
    .unwrap();
    assert_eq!(
        block(w.engine.store().item(retry_item.id)).unwrap().unwrap().state,
        ItemState::Faulted
    );
    assert_eq!(w.process_now(&q).pending_items, 0);
    w.audit_ok();
}

#[test]
fn canceling_a_queue_job_deletes_its_new_item() {
    let mut w = World::new();
    let q = w.process(|s| s.process_type = ProcessType::Queue);
    let i = block(w.engine.add_queue_item(&w.user, q.key, NewQueueItem::default())).unwrap();
    let job = block(w.engine.store().job(i.job.unwrap())).unwrap().unwrap();
    block(w.engine.stop_job(&w.user, job.key, StopStrategy::SoftStop)).unwrap();
    assert_eq!(block(w.engine.queue_item(i.key)).unwrap().state, ItemState::Deleted);
    assert_eq!(w.process_now(&q).pending_items, 0);
}

// ------------------------------------------------------------- queries, audit

#[test]
fn job_queries_cover_at_most_one_month() {
    let mut w = World::new();
    let p = w.process(|s| s.max_run_num = 0);
    let old = w.start(&p, json!({}));
    w.advance(31 * 24 * 3600 * 1000);
    let new = w.start(&p, json!({}));
    let (total, jobs, _) = block(w.engine.query_process_jobs(&w.user, p.key, JobQueryParams::default())).unwrap();
    assert_eq!((total, jobs[0].id), (1, new.id), "default: the last 30 days");
    let q = JobQueryParams {
        start: Some(old.created_at),
        end: Some(new.created_at),
        states: vec![],
    };
    assert!(matches!(
        block(w.engine.query_process_jobs(&w.user, p.key, q)),
        Err(Error::InvalidArgument(_))
    ));
    let q = JobQueryParams {
        start: Some(Timestamp(old.created_at.0 - 1000)),
        end: Some(Timestamp(old.created_at.0 + 1000)),
        states: vec![JobState::Pending],
    };
    let (total, jobs, _) = block(w.engine.query_process_jobs(&w.user, p.key, q)).unwrap();
    assert_eq!((total, jobs[0].id), (1, old.id));
    let q = JobQueryParams {
        start: Some(new.created_at),
        end: Some(old.created_at),
        states: vec![],
    };
    assert!(matches!(
        block(w.engine.query_process_jobs(&w.user, p.key, q)),
        Err(Error::InvalidArgument(_))
    ));
}

#[test]
fn the_audit_chain_detects_tampering() {
    let mut w = World::new();
    let p = w.process(|_| {});
    let bot = w.connect("r");
    let j = w.start(&p, json!({}));
    w.finish(&bot, &j, FinishStatus::Success).unwrap();
    let n = w.audit_ok();
    assert!(n >= 8, "every transition audited ({n})");
    let events = block(w.engine.audit_events(Actor::System, 0, 1000)).unwrap();
    for action in ["job.start", "job.dispatch", "job.finish", "robot.register", "login.ok"]
        .iter()
        .take(4)
    {
        assert!(events.iter().any(|e| e.action == *action), "{action} audited");
    }
    w.engine.store().tamper_audit(3, "forged");
    let broken = block(w.engine.verify_audit()).unwrap().unwrap_err();
    assert_eq!(broken.seq, 3);
}

#[test]
fn two_engines_on_threads_never_run_a_job_twice() {
    let store = rpa_core::MemoryStore::new();
    let mut w = World::with_store(store.clone(), 1);
    let p = w.process(|s| s.max_run_num = 3);
    let bots: Vec<Bot> = (0..6).map(|i| w.connect(&format!("r{i}"))).collect();
    let w2 = World::with_store(store.clone(), 2);
    let user = w.user.clone();
    let jobs: Vec<_> = std::thread::scope(|s| {
        let hs: Vec<_> = [&w.engine, &w2.engine]
            .into_iter()
            .map(|e| {
                let user = user.clone();
                s.spawn(move || {
                    (0..50)
                        .map(|_| block(e.start_job(&user, p.key, &json!({}))).unwrap())
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        hs.into_iter().flat_map(|h| h.join().unwrap()).collect()
    });
    // Robots finish whatever they hold, through both engines, from two threads.
    loop {
        let done = jobs.iter().all(|j| w.job(j).state.is_terminal());
        if done {
            break;
        }
        std::thread::scope(|s| {
            for (i, e) in [&w.engine, &w2.engine].into_iter().enumerate() {
                let bots = &bots;
                s.spawn(move || {
                    for b in bots.iter().skip(i).step_by(2) {
                        let r = block(e.store().robot_by_code(&b.code)).unwrap().unwrap();
                        if let Some(j) = r.job {
                            let key = block(e.store().job(j)).unwrap().unwrap().key;
                            let _ = block(e.report_finish(&b.code, b.connect, key, FinishStatus::Success, None, None));
                        }
                    }
                });
            }
        });
        let running = jobs.iter().filter(|j| w.job(j).state.is_active()).count();
        assert!(running <= 3, "maxRunNum exceeded: {running}");
        block(w.engine.dispatch_all()).unwrap();
    }
    assert!(jobs.iter().all(|j| w.job(j).state == JobState::Successful));
    let starts = block(store.audit(0, usize::MAX))
        .unwrap()
        .iter()
        .filter(|e| e.action == "job.dispatch")
        .count();
    assert_eq!(starts, 100, "each job dispatched exactly once");
    w.audit_ok();
}

#[test]
fn a_robot_back_from_silence_keeps_a_job_nobody_took() {
    let mut w = World::new();
    let p = w.process(|_| {});
    let a = w.connect("a");
    let j = w.start(&p, json!({}));
    w.advance(30_001);
    w.tick();
    assert_eq!(
        (w.job(&j).state, w.job(&j).attempt),
        (JobState::Pending, 2),
        "failed over, no robot free"
    );
    let cmds = w.beat(&a, Some(j.key));
    assert!(cmds.is_empty(), "no Stop and no second Execute: {cmds:?}");
    assert_eq!(w.job(&j).state, JobState::Running);
    assert_eq!(w.robot(&a).job, Some(j.id));
    w.finish(&a, &j, FinishStatus::Success).unwrap();
    assert_eq!(w.job(&j).state, JobState::Successful);
}

#[test]
fn with_slack_quiet_heartbeats_are_not_written_and_silence_is_caught_within_timeout_plus_slack() {
    let w = World::with_config(rpa_core::MemoryStore::new(), 1, |c| c.heartbeat_slack_ms = 10_000);
    let a = w.connect("a");
    let v0 = w.robot(&a).version;
    w.advance(5_000);
    w.beat(&a, None);
    assert_eq!(w.robot(&a).version, v0, "a quiet heartbeat is not written");
    w.advance(6_000);
    w.beat(&a, None);
    assert_eq!(
        w.robot(&a).version,
        v0 + 1,
        "written once less than the timeout was left"
    );
    w.advance(4_000);
    w.beat(&a, None); // quiet: t = 15 s, stored deadline 51 s
    w.advance(30_001); // 30 s after the last heartbeat: not yet
    assert_eq!(w.tick().robots_timed_out, 0);
    w.advance(6_000); // 36 s after it, past the stored deadline
    assert_eq!(w.tick().robots_timed_out, 1);
    assert_eq!(w.robot(&a).state, RobotState::Unresponsive);
}

/// Job keys are v7 UUIDs: the time the job was made, then 74 random bits.
/// Nothing in them follows the job's serial (a key that carried it, even
/// masked by its own bytes, would give the serial back to anyone who knows
/// the scheme); they sort by creation, so the stores' key index grows at
/// one end.
#[test]
fn job_keys_tell_nothing_of_the_job() {
    let mut w = World::new();
    let p = w.process(|s| s.max_run_num = 0);
    let keys: Vec<(i64, String)> = (0..500)
        .map(|_| {
            let j = w.start(&p, serde_json::json!({}));
            assert_eq!(
                j.key.to_string()[..12],
                format!("{:012x}", j.created_at.0),
                "the key starts with the job's creation time"
            );
            (j.id.0, j.key.to_string())
        })
        .collect();
    let mut distinct: Vec<&String> = keys.iter().map(|(_, k)| k).collect();
    distinct.sort();
    distinct.dedup();
    assert_eq!(distinct.len(), keys.len());
    let bytes = |k: &str| -> Vec<u8> {
        (0..16)
            .map(|i| u8::from_str_radix(&k[2 * i..2 * i + 2], 16).unwrap())
            .collect()
    };
    let carried = keys
        .iter()
        .filter(|(id, k)| {
            let b = bytes(k);
            let mut m = [0u8; 8];
            m[1..].copy_from_slice(&b[..7]);
            let mut s = [0u8; 8];
            s[1..].copy_from_slice(&b[9..16]);
            (u64::from_be_bytes(s) ^ u64::from_be_bytes(m)) as i64 == *id
        })
        .count();
    assert_eq!(carried, 0, "no key carries its job's serial");
    for (_, k) in &keys {
        assert_eq!(&k[12..13], "7", "a v7 UUID");
        assert!(matches!(&k[16..17], "8" | "9" | "a" | "b"));
    }
    // Found by key all the same.
    for (id, k) in keys.iter().step_by(50) {
        assert_eq!(block(w.engine.job(k.parse().unwrap())).unwrap().id.0, *id);
    }
}

#[test]
fn references_are_labels_where_a_queue_does_not_enforce_them() {
    let mut w = World::new();
    let q = w.process(|s| {
        s.process_type = ProcessType::Queue;
        s.max_run_num = 0;
        s.unique_references = false;
    });
    let add = |r: &str| {
        block(w.engine.add_queue_item(
            &w.user,
            q.key,
            NewQueueItem {
                content: json!({}),
                reference: Some(r.into()),
                risk_sla: Some(Timestamp(5_000)),
                progress: Some("scanned".into()),
                ..NewQueueItem::default()
            },
        ))
    };
    let a = add("INV-1").unwrap();
    let b = add("INV-1").expect("a shared reference is no conflict");
    assert_ne!(a.id, b.id);
    for i in [&a, &b] {
        assert_eq!(i.any_reference(), Some("INV-1"));
        assert_eq!(i.reference, None, "not in the unique index");
        assert_eq!(
            (i.risk_sla, i.progress.as_deref()),
            (Some(Timestamp(5_000)), Some("scanned"))
        );
    }
}

#[test]
fn bucket_files_are_kept_by_path_listed_and_deleted() {
    let w = World::new();
    let admin = Actor::System;
    let b = block(
        w.engine
            .create_bucket(admin, "Reports", Some("Finance".into()), None, ""),
    )
    .unwrap();
    assert_eq!(b.folder(), "Finance");
    assert!(matches!(
        block(
            w.engine
                .create_bucket(admin, "Reports", Some("Finance".into()), None, "")
        ),
        Err(Error::AlreadyExists(_))
    ));
    block(w.engine.create_bucket(admin, "Reports", None, None, "")).expect("the name is free in another folder");
    assert!(matches!(
        block(w.engine.create_bucket(Actor::User(w.user.id), "Mine", None, None, "")),
        Err(Error::PermissionDenied(_))
    ));
    let blob = |n: u8| rpa_core::Key::from_random([n; 16]);
    let (f, old) = block(w.engine.put_bucket_file(b.id, "/in/a.txt", "text/plain", 3, blob(1))).unwrap();
    assert_eq!((f.path.as_str(), old), ("in/a.txt", None));
    let (_, old) = block(w.engine.put_bucket_file(b.id, "in/a.txt", "text/plain", 4, blob(2))).unwrap();
    assert_eq!(old.map(|o| o.blob), Some(blob(1)), "the replaced bytes, to drop");
    block(
        w.engine
            .put_bucket_file(b.id, "in/deep/b.pdf", "application/pdf", 5, blob(3)),
    )
    .unwrap();
    assert!(block(w.engine.put_bucket_file(b.id, "../x", "text/plain", 1, blob(4))).is_err());
    let paths = |dir: &str, recursive: bool| -> Vec<String> {
        block(w.engine.bucket_files(b.id, dir, recursive, None))
            .unwrap()
            .into_iter()
            .map(|f| f.path)
            .collect()
    };
    assert_eq!(paths("in", false), ["in/a.txt"]);
    assert_eq!(paths("/", true), ["in/a.txt", "in/deep/b.pdf"]);
    assert_eq!(block(w.engine.bucket_file(b.id, "in/a.txt")).unwrap().size, 4);
    block(w.engine.delete_bucket_file(admin, b.id, "in/a.txt")).unwrap();
    assert!(matches!(
        block(w.engine.bucket_file(b.id, "in/a.txt")),
        Err(Error::NotFound(..))
    ));
    assert_eq!(paths("/", true), ["in/deep/b.pdf"]);
    block(w.engine.delete_bucket(admin, b.id)).unwrap();
    assert!(matches!(
        block(w.engine.bucket_files(b.id, "/", true, None)),
        Err(Error::NotFound(..))
    ));
    w.audit_ok();
}

#[test]
fn a_folder_grant_reaches_every_process_of_the_folder_present_and_future() {
    let mut w = World::new();
    let outside = block(
        w.engine
            .create_process(Actor::System, ProcessSpec::new("hr", ProcessType::Unattended)),
    )
    .unwrap();
    let shared = |name: &str| {
        let mut s = ProcessSpec::new(name, ProcessType::Unattended);
        s.folder = Some("Finance".into());
        s
    };
    let before = block(w.engine.create_process(Actor::System, shared("ledger"))).unwrap();
    let start = |w: &World, p: &Process| block(w.engine.start_job(&w.user, p.key, &json!({})));
    assert!(matches!(start(&w, &before), Err(Error::PermissionDenied(_))));
    w.user = block(w.engine.grant_folder(Actor::System, "alice", "Finance")).unwrap();
    start(&w, &before).expect("the folder's process");
    let after = block(w.engine.create_process(Actor::System, shared("payroll"))).unwrap();
    start(&w, &after).expect("a process added to the folder later");
    assert!(matches!(start(&w, &outside), Err(Error::PermissionDenied(_))));
    let login = block(w.engine.login("alice", "pw")).unwrap();
    let mut names: Vec<&str> = login.processes.iter().map(|p| p.spec.name.as_str()).collect();
    names.sort_unstable();
    assert_eq!(names, ["ledger", "payroll"], "login lists the folder's processes");
    assert!(matches!(
        block(w.engine.grant_folder(Actor::User(w.user.id), "alice", "HR")),
        Err(Error::PermissionDenied(_))
    ));
    w.user = block(w.engine.revoke_folder(Actor::System, "alice", "Finance")).unwrap();
    assert!(matches!(start(&w, &after), Err(Error::PermissionDenied(_))));
    w.audit_ok();
}

#[test]
fn a_pinned_job_runs_on_its_robot_alone_and_waits_for_it() {
    let mut w = World::new();
    let p = w.process(|s| s.max_run_num = 0);
    let r1 = w.connect("r1");
    let r2 = w.connect("r2");
    let id2 = w.robot(&r2).id;
    let start =
        |w: &World, robot: Option<RobotId>| block(w.engine.start_job_on(&w.user, p.key, &json!({}), robot)).unwrap();
    let a = start(&w, Some(id2));
    assert_eq!(w.job(&a).robot, Some(id2), "on r2, though r1 came first");
    assert_eq!(w.robot(&r1).job, None);
    // r2 busy: the next job pinned to it waits, r1 idle beside it.
    let b = start(&w, Some(id2));
    assert_eq!(w.job(&b).state, JobState::Pending);
    assert_eq!(w.robot(&r1).job, None, "r1 may not take it");
    assert_eq!(block(w.engine.store().pending_count(p.id)).unwrap(), 1);
    // An unpinned job goes to r1.
    let c = start(&w, None);
    assert_eq!(w.job(&c).robot, Some(w.robot(&r1).id));
    // r2 ends its run and takes its waiting job.
    w.finish(&r2, &w.job(&a), FinishStatus::Success).unwrap();
    assert_eq!(w.job(&b).robot, Some(id2));
    assert_eq!(w.job(&b).state, JobState::Running);
    assert!(block(w.engine.store().pinned_robots()).unwrap().is_empty());
    let unknown = block(w.engine.start_job_on(&w.user, p.key, &json!({}), Some(RobotId(999))));
    assert!(matches!(unknown, Err(Error::NotFound(..))));
    w.audit_ok();
}

#[test]
fn a_robot_in_folders_runs_only_their_processes() {
    let mut w = World::new();
    let finance = w.process(|s| {
        s.folder = Some("Finance".into());
        s.max_run_num = 0;
    });
    let default = w.process(|s| s.max_run_num = 0);
    block(w.engine.configure_robot(
        Actor::System,
        "fin",
        RobotProfile {
            folders: vec!["Finance".into()],
            ..RobotProfile::default()
        },
    ))
    .unwrap();
    let fin = w.connect("fin");
    let d = w.start(&default, json!({}));
    assert_eq!(w.robot(&fin).job, None, "a Default-folder job is not its");
    assert_eq!(w.job(&d).state, JobState::Pending);
    let f = w.start(&finance, json!({}));
    assert_eq!(w.robot(&fin).job, Some(f.id));
    let any = w.connect("any");
    assert_eq!(
        w.robot(&any).job,
        Some(d.id),
        "a robot of no folder serves every folder"
    );
}

#[test]
fn run_tokens_are_signed_as_execute_is_handed_over_and_never_stored() {
    let key = rpa_core::auth::LinkKey([3; 32]);
    let mut w = World::with_config(rpa_core::MemoryStore::new(), 1, |c| c.link_key = Some(key.clone()));
    let p = w.process(|s| s.max_run_num = 0);
    let a = w.connect("a");
    let first = w.start(&p, json!({}));
    let ra = w.robot(&a).id;
    // What the outbox keeps: no token.
    let stored = block(w.engine.store().take_commands(ra, 10)).unwrap();
    assert!(
        matches!(&stored[..], [Command::Execute(e)] if e.access_token.is_none() && e.run_instance_id == first.key),
        "{stored:?}"
    );
    // What a robot is handed: signed then, and good while the attempt runs.
    let b = w.connect("b");
    let second = w.start(&p, json!({}));
    let rb = w.robot(&b).id;
    let handed = block(w.engine.take_commands(rb)).unwrap();
    let token = match &handed[..] {
        [Command::Execute(e)] => e.access_token.clone().expect("a run token"),
        other => panic!("{other:?}"),
    };
    let run = block(w.engine.authenticate_run(&token)).unwrap();
    assert_eq!((run.job.id, run.robot), (second.id, rb));
    let next = rpa_core::auth::run_token(&key, &second.key.to_string(), second.attempt + 1);
    assert!(matches!(
        block(w.engine.authenticate_run(&next)),
        Err(Error::Unauthenticated)
    ));
    let job = w.job(&second);
    w.finish(&b, &job, FinishStatus::Success).unwrap();
    assert!(
        matches!(block(w.engine.authenticate_run(&token)), Err(Error::Unauthenticated)),
        "an ended run's token opens nothing"
    );
}

// ------------------------------------------------------------ run log integrity

#[test]
fn a_run_log_is_sealed_into_the_audit_chain_when_its_job_ends() {
    use rpa_core::engine::NewLog;
    use rpa_core::store::{Commit, Write};
    let mut w = World::new();
    let p = w.process(|_| {});
    let bot = w.connect("r");
    let j = w.start(&p, json!({}));
    let line = |s: &str| NewLog {
        content: s.into(),
        screenshot: None,
        log_at: "2026-01-01 00:00:00".into(),
        level: LogLevel::Info,
    };
    block(
        w.engine
            .report_logs(&bot.code, bot.connect, j.key, vec![line("one"), line("two")]),
    )
    .unwrap();
    w.finish(&bot, &j, rpa_core::job::FinishStatus::Success).unwrap();
    let end = block(w.engine.audit_events(Actor::System, 0, 1000))
        .unwrap()
        .into_iter()
        .find(|e| e.action == "job.finish")
        .unwrap();
    assert!(end.detail.contains(" logs=2:"), "{}", end.detail);
    w.audit_ok();
    // The run log is closed once the job has ended.
    let late = block(w.engine.report_logs(&bot.code, bot.connect, j.key, vec![line("late")]));
    assert!(
        matches!(late, Err(Error::InvalidArgument(ref m)) if m.contains("run log is closed")),
        "{late:?}"
    );

    // A line changed behind the engine's back: the verification names the job's end.
    let mut logs = block(w.engine.store().logs(j.id)).unwrap();
    let store = w.engine.store();
    let rewrite = |logs: Vec<RunLog>| {
        let mut writes = vec![Write::DropLogs(j.id)];
        writes.extend(logs.into_iter().map(Write::Log));
        block(store.commit(Commit {
            writes,
            ..Commit::default()
        }))
        .unwrap();
    };
    let original = logs.clone();
    logs[1].content = "tampered".into();
    rewrite(logs);
    let broken = block(w.engine.verify_audit()).unwrap().unwrap_err();
    assert_eq!(broken.seq, end.seq);
    // Removed.
    rewrite(original[..1].to_vec());
    assert_eq!(block(w.engine.verify_audit()).unwrap().unwrap_err().seq, end.seq);
    // Put back as it was: verified again.
    rewrite(original);
    w.audit_ok();
}

/// A node that handles a robot's heartbeats late (its stored deadline
/// passes while the robot talks all along) does not fail over the job the
/// robot is running: what the node heard keeps the robot alive.
#[test]
fn a_robot_heard_all_along_keeps_its_job_when_its_heartbeats_are_handled_late() {
    let mut w = World::new();
    let p = w.process(|_| {});
    let a = w.connect("a");
    let j = w.start(&p, json!({}));
    assert_eq!(w.executes(&a).len(), 1);
    let id = w.robot(&a).id;
    w.advance(29_000);
    // A message arrived (the hub notes it); its handling waits behind other work.
    w.engine.heard(id);
    w.advance(2_000); // the stored deadline has passed
    assert_eq!(w.tick().robots_timed_out, 0, "heard 2 s ago: not silent");
    assert_eq!((w.job(&j).state, w.robot(&a).job), (JobState::Running, Some(j.id)));
    assert!(
        w.robot(&a).deadline.is_some_and(|d| d > w.clock.now()),
        "its deadline moved"
    );
    let kept = w
        .engine
        .metrics()
        .deadlines_kept
        .load(std::sync::atomic::Ordering::Relaxed);
    assert_eq!(kept, 1, "counted: the node is behind");
    w.finish(&a, &j, FinishStatus::Success).unwrap();
    assert_eq!(w.job(&j).attempt, 1, "run once");

    // Really silent: timed out once nothing was heard for the timeout.
    w.advance(30_000);
    assert_eq!(w.tick().robots_timed_out, 1);
    assert_eq!(w.robot(&a).state, RobotState::Unresponsive);
}

/// Every node, not only the one firing the timers, moves the stored
/// deadline of a robot it heard once less than half the timeout is left:
/// the timers elsewhere then see a live robot.
#[test]
fn a_node_without_the_timers_keeps_the_robots_it_hears_alive_for_the_others() {
    let store = rpa_core::MemoryStore::new();
    let mut w = World::with_store(store.clone(), 1);
    let p = w.process(|_| {});
    let a = w.connect("a");
    let j = w.start(&p, json!({}));
    assert_eq!(w.executes(&a).len(), 1);
    assert!(w.tick().leader);
    let config = rpa_core::EngineConfig {
        heartbeat_timeout_ms: 30_000,
        node: Some(2),
        ..rpa_core::EngineConfig::default()
    };
    let other = rpa_core::Engine::new(store, std::sync::Arc::new(w.clock.clone()), config);
    let id = w.robot(&a).id;
    w.advance(20_000);
    assert!(w.tick().leader);
    other.heard(id);
    assert!(!block(other.tick()).unwrap().leader);
    let deadline = w.robot(&a).deadline.unwrap();
    assert_eq!(
        deadline,
        w.clock.now().plus_ms(30_000),
        "moved by the node that heard it"
    );
    w.advance(15_000); // past the deadline its last handled heartbeat set
    assert_eq!(w.tick().robots_timed_out, 0);
    assert_eq!((w.job(&j).state, w.robot(&a).job), (JobState::Running, Some(j.id)));
}

/// A heartbeat that does not name the job its robot holds on the same
/// connection may have crossed the Execute on its way, however late it is
/// handled; the job is lost only once the robot has disowned it for a
/// whole window.
#[test]
fn a_job_is_lost_to_a_heartbeat_only_after_a_window_of_disowning_it() {
    let mut w = World::new();
    let p = w.process(|_| {});
    let a = w.connect("a");
    let j = w.start(&p, json!({}));
    w.advance(31_000); // the Execute took long to leave this node
    w.engine.heard(w.robot(&a).id);
    w.beat(&a, None); // sent before the Execute arrived
    assert_eq!((w.job(&j).state, w.robot(&a).job), (JobState::Running, Some(j.id)));
    w.advance(10_000);
    w.beat(&a, Some(j.key)); // it runs it after all
    w.advance(25_000);
    w.beat(&a, None);
    w.advance(29_000);
    w.beat(&a, None);
    assert_eq!(w.job(&j).state, JobState::Running, "disowned for 29 s only");
    w.advance(1_000);
    w.beat(&a, None);
    assert_eq!(w.job(&j).attempt, 2, "lost after a whole window, and tried again");
}

/// Heartbeats that arrived before the job's Execute was handed over, and
/// were handled after it (they waited behind other work), say nothing of
/// the job, whatever time separates them.
#[test]
fn heartbeats_that_arrived_before_the_execute_left_do_not_disown_the_job() {
    let mut w = World::new();
    let p = w.process(|_| {});
    let a = w.connect("a");
    let j = w.start(&p, json!({}));
    let arrived = w.clock.now();
    w.advance(35_000);
    assert_eq!(w.executes(&a).len(), 1, "handed over 35 s after the dispatch");
    w.advance(5_000);
    for at in [arrived.plus_ms(1_000), arrived.plus_ms(33_000)] {
        block(w.engine.heartbeat_received("a", a.connect, None, at)).unwrap();
    }
    let job = w.job(&j);
    assert_eq!(
        (job.state, job.attempt, w.robot(&a).job),
        (JobState::Running, 1, Some(j.id))
    );
    // One that arrived after it, and another a window later: lost.
    block(w.engine.heartbeat_received("a", a.connect, None, w.clock.now())).unwrap();
    w.advance(30_000);
    block(w.engine.heartbeat_received("a", a.connect, None, w.clock.now())).unwrap();
    assert_eq!(w.job(&j).attempt, 2);
}
