//! Robot licenses through the engine (in-memory store, manual clock):
//! binding sends SendLicense, renewal sends it again, taking it away sends
//! Error, seats and the robot list and vendor hold, and an expired license
//! stops dispatch to its robots until it is renewed.

mod common;

use common::*;
use rpa_core::error::Error;
use rpa_core::license::{REVOKED, Terms};
use rpa_core::model::*;
use rpa_core::transport::Command;
use serde_json::json;

fn terms(content: &str, seats: u32, expires_in_ms: Option<i64>) -> Terms {
    Terms {
        content: content.into(),
        vendor: Some("acme".into()),
        expires_at: expires_in_ms.map(|ms| rpa_core::Timestamp(T0.0 + ms)),
        robots: vec![],
        seats,
    }
}

fn licenses_sent(cmds: &[Command]) -> Vec<String> {
    cmds.iter()
        .filter_map(|c| match c {
            Command::SendLicense { license_content } => Some(license_content.clone()),
            _ => None,
        })
        .collect()
}

fn configure(w: &World, code: &str) {
    let profile = RobotProfile {
        vendor: Some("acme".into()),
        ..RobotProfile::default()
    };
    block(w.engine.configure_robot(Actor::System, code, profile)).unwrap();
}

#[test]
fn a_bound_license_is_sent_at_once_and_at_every_registration() {
    let w = World::new();
    configure(&w, "r1");
    let bot = w.connect("r1");
    block(w.engine.create_license(Actor::System, "L", terms("LIC-A", 1, None))).unwrap();
    block(w.engine.bind_license_to(Actor::System, "L", "r1")).unwrap();
    assert_eq!(
        licenses_sent(&w.beat(&bot, None)),
        vec!["LIC-A"],
        "sent with the next heartbeat"
    );
    block(w.engine.disconnect("r1", bot.connect)).unwrap();
    let again = block(
        w.engine
            .register_robot("r1", "acme", &rpa_core::auth::supplier_proof(SECRET, "r1"), None),
    )
    .unwrap();
    assert_eq!(again.license.as_deref(), Some("LIC-A"));
}

#[test]
fn a_renewal_reaches_every_robot_holding_it() {
    let w = World::new();
    configure(&w, "r1");
    configure(&w, "r2");
    let (b1, b2) = (w.connect("r1"), w.connect("r2"));
    block(
        w.engine
            .create_license(Actor::System, "L", terms("LIC-A", 2, Some(60_000))),
    )
    .unwrap();
    for r in ["r1", "r2"] {
        block(w.engine.bind_license_to(Actor::System, "L", r)).unwrap();
    }
    w.beat(&b1, None);
    w.beat(&b2, None);
    block(
        w.engine
            .renew_license(Actor::System, "L", terms("LIC-B", 2, Some(120_000))),
    )
    .unwrap();
    assert_eq!(licenses_sent(&w.beat(&b1, None)), vec!["LIC-B"]);
    assert_eq!(licenses_sent(&w.beat(&b2, None)), vec!["LIC-B"]);
    assert_eq!(w.robot(&b1).profile.license.as_deref(), Some("LIC-B"));
    let lowered = block(w.engine.renew_license(Actor::System, "L", terms("LIC-C", 1, None)));
    assert!(matches!(lowered, Err(Error::InvalidArgument(ref m)) if m.contains("lowering its seats")));
}

#[test]
fn seats_robots_and_vendor_are_held_to() {
    let w = World::new();
    for r in ["r1", "r2", "r3"] {
        configure(&w, r);
    }
    block(
        w.engine
            .configure_robot(Actor::System, "other", RobotProfile::default()),
    )
    .unwrap();
    let mut t = terms("LIC", 1, None);
    t.robots = vec!["r1".into(), "r2".into(), "other".into()];
    block(w.engine.create_license(Actor::System, "L", t)).unwrap();
    let refused = |r: &str| match block(w.engine.bind_license_to(Actor::System, "L", r)) {
        Err(Error::InvalidArgument(m)) => m,
        other => panic!("{r}: {other:?}"),
    };
    assert!(refused("r3").contains("may not be bound to robot r3"));
    assert!(refused("other").contains("vendor acme"));
    block(w.engine.bind_license_to(Actor::System, "L", "r1")).unwrap();
    block(w.engine.bind_license_to(Actor::System, "L", "r1")).expect("binding twice is one binding");
    assert!(refused("r2").contains("no free seat (1 of 1)"));
    assert!(matches!(
        block(w.engine.bind_license_to(Actor::System, "L", "ghost")),
        Err(Error::NotFound(..))
    ));
    block(w.engine.unbind_license(Actor::System, "L", "r1")).unwrap();
    block(w.engine.bind_license_to(Actor::System, "L", "r2")).expect("the seat is free again");
    let alice = w.user.id;
    assert!(matches!(
        block(w.engine.bind_license_to(Actor::User(alice), "L", "r1")),
        Err(Error::PermissionDenied(_))
    ));
}

#[test]
fn taking_a_license_away_sends_error() {
    let w = World::new();
    configure(&w, "r1");
    configure(&w, "r2");
    let (b1, b2) = (w.connect("r1"), w.connect("r2"));
    block(w.engine.create_license(Actor::System, "L", terms("LIC", 2, None))).unwrap();
    block(w.engine.bind_license_to(Actor::System, "L", "r1")).unwrap();
    block(w.engine.bind_license_to(Actor::System, "L", "r2")).unwrap();
    w.beat(&b1, None);
    w.beat(&b2, None);
    block(w.engine.unbind_license(Actor::System, "L", "r1")).unwrap();
    let told = w.beat(&b1, None);
    assert!(
        matches!(&told[..], [Command::Error { error_code, message }] if *error_code == REVOKED && message.contains("license L")),
        "{told:?}"
    );
    assert_eq!(w.robot(&b1).profile.license, None);
    let retired = block(w.engine.retire_license(Actor::System, "L")).unwrap();
    assert!(retired.retired && retired.bound.is_empty());
    assert!(matches!(&w.beat(&b2, None)[..], [Command::Error { .. }]));
    assert!(matches!(
        block(w.engine.bind_license_to(Actor::System, "L", "r1")),
        Err(Error::NotFound(..))
    ));
    block(w.engine.create_license(Actor::System, "L", terms("LIC-2", 1, None))).expect("a retired name is free again");
    w.audit_ok();
}

#[test]
fn an_expired_license_stops_dispatch_until_renewed() {
    let mut w = World::new();
    let p = w.process(|_| {});
    configure(&w, "r1");
    block(
        w.engine
            .create_license(Actor::System, "L", terms("LIC", 1, Some(10_000))),
    )
    .unwrap();
    block(w.engine.bind_license_to(Actor::System, "L", "r1")).unwrap();
    let bot = w.connect("r1");
    assert_eq!(
        licenses_sent(&w.beat(&bot, None)),
        Vec::<String>::new(),
        "Register answered it"
    );
    w.advance(10_000);
    let robot = w.robot(&bot);
    assert!(robot.refusal(w.engine.now()).unwrap().contains("license L expired"));
    let j = w.start(&p, json!({}));
    w.beat(&bot, None);
    w.tick();
    assert_eq!(
        w.job(&j).state,
        JobState::Pending,
        "no work for a robot whose license expired"
    );
    let refused = block(w.engine.bind_license_to(Actor::System, "L", "r1"));
    assert!(refused.is_ok(), "already bound: {refused:?}");
    block(
        w.engine
            .renew_license(Actor::System, "L", terms("LIC-2", 1, Some(3_600_000))),
    )
    .unwrap();
    assert_eq!(w.job(&j).state, JobState::Running, "renewal gives it work again");
    let cmds = w.beat(&bot, None);
    assert_eq!(licenses_sent(&cmds), vec!["LIC-2"]);
    assert!(
        cmds.iter()
            .any(|c| matches!(c, Command::Execute(e) if e.run_instance_id == j.key))
    );
}

#[test]
fn a_robot_profile_change_keeps_its_license() {
    let w = World::new();
    configure(&w, "r1");
    block(w.engine.create_license(Actor::System, "L", terms("LIC", 1, None))).unwrap();
    block(w.engine.bind_license_to(Actor::System, "L", "r1")).unwrap();
    let moved = RobotProfile {
        vendor: Some("acme".into()),
        pool: "night".into(),
        ..RobotProfile::default()
    };
    let r = block(w.engine.configure_robot(Actor::System, "r1", moved)).unwrap();
    assert_eq!(r.profile.license.as_deref(), Some("LIC"));
    assert_eq!(r.profile.held.as_ref().map(|h| h.name.as_str()), Some("L"));
    let other = RobotProfile {
        vendor: Some("acme".into()),
        license: Some("OTHER".into()),
        ..RobotProfile::default()
    };
    assert!(matches!(
        block(w.engine.configure_robot(Actor::System, "r1", other)),
        Err(Error::InvalidArgument(_))
    ));
}
