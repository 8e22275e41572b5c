//! Unified identity through the engine (in-memory store, a directory
//! stand-in at the core's trait boundary): a sync creates, updates and
//! disables directory users and leaves local users alone; a directory
//! user's password is checked by the directory, never with an empty
//! password, and a directory that does not answer refuses in words.

mod common;

use std::collections::BTreeSet;

use common::*;
use rpa_core::Error;
use rpa_core::identity::{Account, Answer, Directory, GroupMapping, Unreachable};
use rpa_core::model::*;
use rpa_core::store::People as _;

struct Stand {
    up: bool,
}

impl Directory for Stand {
    fn verify<'a>(&'a self, dn: &'a str, password: &'a str) -> Answer<'a, bool> {
        Box::pin(async move {
            if !self.up {
                return Err(Unreachable("connection refused".into()));
            }
            Ok(password == format!("pw of {dn}"))
        })
    }
}

fn account(login: &str, groups: &[&str]) -> Account {
    Account {
        login: login.into(),
        dn: format!("uid={login}"),
        groups: groups.iter().map(|g| (*g).to_owned()).collect(),
        disabled: false,
    }
}

#[test]
fn a_sync_makes_the_users_match_the_directory() {
    let mut w = World::new();
    let p = w.process(|_| {});
    let maps = vec![
        GroupMapping {
            group: "cn=ops".into(),
            processes: vec!["invoice".into(), "nope".into()],
            ..GroupMapping::default()
        },
        GroupMapping {
            group: "cn=admins".into(),
            roles: vec!["admin".into()],
            ..GroupMapping::default()
        },
    ];
    let e = &w.engine;
    let r = block(e.sync_accounts(
        Actor::System,
        &[
            account("carol", &["cn=ops"]),
            account("alice", &["cn=ops"]),
            account("zed", &[]),
        ],
        &maps,
    ))
    .unwrap();
    assert_eq!(r.created, ["carol"]);
    assert_eq!(r.conflicts, ["alice"], "a local user of the same name is left alone");
    assert_eq!(r.unknown, ["process nope"]);
    let carol = block(e.store().user_by_name("carol")).unwrap().unwrap();
    assert_eq!(carol.grants, BTreeSet::from([p.id]));
    assert_eq!(carol.directory.as_deref(), Some("uid=carol"));
    assert!(
        block(e.store().user_by_name("zed")).unwrap().is_none(),
        "in no mapped group"
    );

    // Again: nothing to do.
    let again = block(e.sync_accounts(Actor::System, &[account("carol", &["cn=ops"])], &maps)).unwrap();
    assert!(again.created.is_empty() && again.updated.is_empty() && again.disabled.is_empty());

    // carol moves to the admins; then leaves every mapped group.
    let r = block(e.sync_accounts(Actor::System, &[account("carol", &["cn=admins"])], &maps)).unwrap();
    assert_eq!(r.updated, ["carol"]);
    let carol = block(e.store().user_by_name("carol")).unwrap().unwrap();
    assert!(carol.grants.is_empty() && carol.roles.len() == 1);
    let r = block(e.sync_accounts(Actor::System, &[], &maps)).unwrap();
    assert_eq!(r.disabled, ["carol"]);
    assert!(block(e.store().user_by_name("carol")).unwrap().unwrap().disabled);
    assert!(!block(e.store().user_by_name("alice")).unwrap().unwrap().disabled);
    // Back in a group: enabled again.
    let r = block(e.sync_accounts(Actor::System, &[account("carol", &["cn=ops"])], &maps)).unwrap();
    assert_eq!(r.updated, ["carol"]);
    assert!(!block(e.store().user_by_name("carol")).unwrap().unwrap().disabled);
    let refused = block(e.sync_accounts(Actor::User(w.user.id), &[], &maps));
    assert!(matches!(refused, Err(Error::PermissionDenied(_))));
    w.audit_ok();
}

#[test]
fn the_directory_checks_its_users_passwords() {
    let w = World::new();
    let e = &w.engine;
    let maps = vec![GroupMapping {
        group: "cn=ops".into(),
        ..GroupMapping::default()
    }];
    block(e.sync_accounts(Actor::System, &[account("carol", &["cn=ops"])], &maps)).unwrap();
    let up = Stand { up: true };
    assert!(block(e.login_with("carol", "pw of uid=carol", Some(&up))).is_ok());
    assert!(matches!(
        block(e.login_with("carol", "guess", Some(&up))),
        Err(Error::BadCredentials)
    ));
    assert!(
        matches!(block(e.login_with("carol", "", Some(&up))), Err(Error::BadCredentials)),
        "an empty password never reaches the directory"
    );
    let down = Stand { up: false };
    let refused = block(e.login_with("carol", "pw of uid=carol", Some(&down)));
    assert!(matches!(refused, Err(Error::DirectoryUnavailable)), "{refused:?}");
    assert!(matches!(
        block(e.login("carol", "pw of uid=carol")),
        Err(Error::DirectoryUnavailable)
    ));
    // Local users: their own password, whatever the directory.
    assert!(block(e.login_with("alice", "pw", Some(&down))).is_ok());
}

#[test]
fn single_sign_on_users_come_from_their_groups_and_a_login_is_taken_once() {
    let mut w = World::new();
    let p = w.process(|_| {});
    let e = &w.engine;
    let maps = vec![GroupMapping {
        group: "rpa-operators".into(),
        processes: vec!["invoice".into()],
        ..GroupMapping::default()
    }];
    block(e.begin_sso("state-1", "verifier-1", "nonce-1")).unwrap();
    let l = block(e.take_sso("state-1")).unwrap();
    assert_eq!((l.verifier.as_str(), l.nonce.as_str()), ("verifier-1", "nonce-1"));
    assert!(
        matches!(block(e.take_sso("state-1")), Err(Error::InvalidArgument(_))),
        "once"
    );
    assert!(matches!(
        block(e.take_sso("never-given")),
        Err(Error::InvalidArgument(_))
    ));
    block(e.begin_sso("state-2", "v", "n")).unwrap();
    w.advance(rpa_core::identity::SSO_LOGIN_MS + 1);
    assert!(
        matches!(block(e.take_sso("state-2")), Err(Error::InvalidArgument(_))),
        "expired"
    );

    let frank = |groups: &[&str]| Account {
        login: "frank".into(),
        dn: rpa_core::identity::sso_name("https://idp", "f-1"),
        groups: groups.iter().map(|g| (*g).to_owned()).collect(),
        disabled: false,
    };
    let token = block(e.sso_login(&frank(&["rpa-operators"]), &maps)).unwrap();
    let user = block(e.authenticate(&token)).unwrap();
    assert_eq!(
        (user.name.as_str(), user.grants.iter().copied().collect::<Vec<_>>()),
        ("frank", vec![p.id])
    );
    assert!(matches!(
        block(e.sso_login(&frank(&[]), &maps)),
        Err(Error::PermissionDenied(_))
    ));
    assert!(
        matches!(block(e.login("frank", "anything")), Err(Error::BadCredentials)),
        "no password here"
    );
    let alice = Account {
        login: "alice".into(),
        dn: rpa_core::identity::sso_name("https://idp", "a-1"),
        groups: BTreeSet::from(["rpa-operators".to_owned()]),
        disabled: false,
    };
    assert!(
        matches!(block(e.sso_login(&alice, &maps)), Err(Error::PermissionDenied(_))),
        "a local user's name"
    );
    // The LDAP sync leaves the provider's users alone.
    let r = block(e.sync_accounts(Actor::System, &[], &maps)).unwrap();
    assert!(r.disabled.is_empty(), "{r:?}");
    assert!(!block(e.store().user_by_name("frank")).unwrap().unwrap().disabled);
}
