//! Package versions through the engine (memory store, manual clock): every
//! upload kept, the process on the latest or on its pin, rollback, and a
//! job running the version it was started with.

mod common;

use common::*;
use rpa_core::engine::NewPackage;
use rpa_core::error::Error;
use rpa_core::ids::Key;
use rpa_core::model::*;
use rpa_core::transport::{Command, Execute};
use serde_json::json;

fn pkg(n: u8) -> NewPackage {
    NewPackage {
        file: Key([n; 16]),
        uri: format!("http://files/{n}"),
        sha256: format!("{n:064x}"),
        size: u64::from(n),
    }
}

fn runs(w: &World, p: &Process) -> (String, String, Option<String>) {
    let p = w.process_now(p);
    (
        p.spec.version.clone(),
        p.spec.package_uri.clone(),
        p.spec.package_pin.clone(),
    )
}

#[test]
fn a_process_runs_the_latest_version_or_its_pin() {
    let mut w = World::new();
    let p = w.process(|_| {});
    let add = |v: Option<&str>, n: u8| block(w.engine.add_package_version(Actor::System, p.key, v, pkg(n)));

    let (first, _) = add(None, 1).unwrap();
    assert_eq!(
        first.name, p.spec.version,
        "the first package takes the process's version"
    );
    assert_eq!(runs(&w, &p), ("1.0.0".into(), "http://files/1".into(), None));
    add(Some("1.1.0"), 2).unwrap();
    assert_eq!(runs(&w, &p).0, "1.1.0", "a newer version is run at once");
    add(Some("1.0.5"), 3).unwrap();
    assert_eq!(runs(&w, &p).0, "1.1.0", "an older upload is kept, not run");
    let (next, _) = add(None, 4).unwrap();
    assert_eq!(next.name, "1.1.1", "no version given: the next patch of the latest");

    // Rollback: pinned to an older version, later uploads do not move it.
    block(w.engine.pin_package(Actor::System, p.key, Some("1.0"))).unwrap();
    assert_eq!(
        runs(&w, &p),
        ("1.0.0".into(), "http://files/1".into(), Some("1.0.0".into()))
    );
    add(Some("2.0.0"), 5).unwrap();
    assert_eq!(runs(&w, &p).0, "1.0.0");
    block(w.engine.pin_package(Actor::System, p.key, None)).unwrap();
    assert_eq!(runs(&w, &p), ("2.0.0".into(), "http://files/5".into(), None));

    // A version is its bytes.
    let before = w.process_now(&p).version;
    let (again, _) = add(Some("2.0.0"), 5).unwrap();
    assert_eq!(again.file, Key([5; 16]));
    assert_eq!(
        w.process_now(&p).version,
        before,
        "the same upload again changes nothing"
    );
    let e = add(Some("2.0.0"), 6).unwrap_err();
    assert!(
        matches!(&e, Error::InvalidArgument(m) if m.contains("never changes")),
        "{e}"
    );
    let e = add(Some("two"), 7).unwrap_err();
    assert!(
        matches!(&e, Error::InvalidArgument(m) if m.contains("MAJOR.MINOR.PATCH")),
        "{e}"
    );
    let e = block(w.engine.pin_package(Actor::System, p.key, Some("9.9.9"))).unwrap_err();
    assert!(
        matches!(&e, Error::InvalidArgument(m) if m.contains("no package version 9.9.9")),
        "{e}"
    );

    let names: Vec<String> = block(w.engine.package_versions(p.key))
        .unwrap()
        .into_iter()
        .map(|v| v.name)
        .collect();
    assert_eq!(names, ["2.0.0", "1.1.1", "1.1.0", "1.0.5", "1.0.0"]);
    let e = block(
        w.engine
            .add_package_version(Actor::User(w.user.id), p.key, None, pkg(8)),
    )
    .unwrap_err();
    assert!(matches!(e, Error::PermissionDenied(_)), "{e}");
    w.audit_ok();
}

#[test]
fn a_job_runs_the_version_it_was_started_with() {
    let mut w = World::new();
    let p = w.process(|_| {});
    block(
        w.engine
            .add_package_version(Actor::System, p.key, Some("1.0.0"), pkg(1)),
    )
    .unwrap();
    let job = w.start(&p, json!({}));
    assert_eq!(job.package_version.as_deref(), Some("1.0.0"));
    // The process moves on before a robot takes the job.
    block(
        w.engine
            .add_package_version(Actor::System, p.key, Some("1.1.0"), pkg(2)),
    )
    .unwrap();
    let bot = w.register("r1");
    let executes: Vec<Execute> = w
        .beat(&bot, None)
        .into_iter()
        .filter_map(|c| match c {
            Command::Execute(e) => Some(*e),
            _ => None,
        })
        .collect();
    assert_eq!(executes.len(), 1);
    assert!(
        executes[0].package_download_uri.starts_with("http://files/1"),
        "{}",
        executes[0].package_download_uri
    );
    // A job started now runs the new one.
    let later = w.start(&p, json!({}));
    assert_eq!(later.package_version.as_deref(), Some("1.1.0"));
}
