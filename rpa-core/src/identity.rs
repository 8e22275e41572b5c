//! Unified identity (seed 001 §6.3.2 a): users from the organisation's
//! directory (LDAP) beside the local ones. A directory account that is a
//! member of a mapped group is a user here, named by its login; its
//! roles, processes and folders are those its groups map to, and its
//! password is checked by the directory (a bind), never stored here.
//! Each sync makes the users match the directory: new accounts are
//! created, changed group memberships change grants, an account that left
//! the mapped groups, disappeared or is disabled there is disabled here
//! (and enabled again when it comes back). Local users (no directory
//! name) are never touched. Pure: what a sync changes.

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::pin::Pin;

use serde::{Deserialize, Serialize};

/// An account as the directory lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Account {
    /// The login (the user's name here).
    pub login: String,
    /// Its distinguished name (what a password is checked against).
    pub dn: String,
    /// The groups it is a member of (their DNs).
    pub groups: BTreeSet<String>,
    /// Disabled in the directory.
    pub disabled: bool,
}

/// What members of a directory group get.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct GroupMapping {
    /// The group's DN (compared without regard to case).
    pub group: String,
    /// Role names.
    #[serde(default)]
    pub roles: Vec<String>,
    /// Process names.
    #[serde(default)]
    pub processes: Vec<String>,
    /// Folder names.
    #[serde(default)]
    pub folders: Vec<String>,
}

/// What a directory user should be, from its groups.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Wanted {
    /// Its DN.
    pub dn: String,
    /// Role names.
    pub roles: BTreeSet<String>,
    /// Process names.
    pub processes: BTreeSet<String>,
    /// Folder names.
    pub folders: BTreeSet<String>,
    /// Enabled.
    pub enabled: bool,
}

/// The users the directory wants, by login: accounts in at least one
/// mapped group, with the union of their groups' grants.
pub fn wanted(accounts: &[Account], mappings: &[GroupMapping]) -> BTreeMap<String, Wanted> {
    let mut out = BTreeMap::new();
    for a in accounts {
        let mut w = Wanted {
            dn: a.dn.clone(),
            enabled: !a.disabled,
            ..Wanted::default()
        };
        let mut member = false;
        for m in mappings {
            if a.groups.iter().any(|g| g.eq_ignore_ascii_case(&m.group)) {
                member = true;
                w.roles.extend(m.roles.iter().cloned());
                w.processes.extend(m.processes.iter().cloned());
                w.folders.extend(m.folders.iter().cloned());
            }
        }
        if member && !a.login.trim().is_empty() {
            out.insert(a.login.clone(), w);
        }
    }
    out
}

/// A user here, as a sync compares it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Current {
    /// Its name.
    pub name: String,
    /// Its directory DN; `None`: a local user.
    pub dn: Option<String>,
    /// Role names.
    pub roles: BTreeSet<String>,
    /// Process names.
    pub processes: BTreeSet<String>,
    /// Folder names.
    pub folders: BTreeSet<String>,
    /// Disabled.
    pub disabled: bool,
}

/// One change a sync makes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// A new directory user.
    Create(String, Wanted),
    /// A directory user whose DN, grants or state changed.
    Update(String, Wanted),
    /// A directory user no longer wanted: disabled.
    Disable(String),
    /// A local user the directory also lists: left alone, reported.
    Conflict(String),
}

/// What makes `current` match `wanted`.
pub fn plan(current: &[Current], wanted: &BTreeMap<String, Wanted>) -> Vec<Change> {
    let mut out = Vec::new();
    for (login, w) in wanted {
        match current.iter().find(|c| &c.name == login) {
            None => out.push(Change::Create(login.clone(), w.clone())),
            Some(c) if c.dn.is_none() => out.push(Change::Conflict(login.clone())),
            Some(c) => {
                let same = c.dn.as_deref() == Some(w.dn.as_str())
                    && c.roles == w.roles
                    && c.processes == w.processes
                    && c.folders == w.folders
                    && c.disabled != w.enabled;
                if !same {
                    out.push(Change::Update(login.clone(), w.clone()));
                }
            }
        }
    }
    for c in current {
        if c.dn.is_some() && !c.disabled && !wanted.contains_key(&c.name) {
            out.push(Change::Disable(c.name.clone()));
        }
    }
    out
}

/// What a sync did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SyncReport {
    /// Users created.
    pub created: Vec<String>,
    /// Users whose grants or state changed.
    pub updated: Vec<String>,
    /// Users disabled.
    pub disabled: Vec<String>,
    /// Local users of the same name as a directory account (left alone).
    pub conflicts: Vec<String>,
    /// Grants naming a role, process or folder that does not exist (skipped).
    pub unknown: Vec<String>,
}

/// The directory name of a single sign-on user: `oidc:<issuer>#<subject>`.
pub fn sso_name(issuer: &str, subject: &str) -> String {
    format!("{SSO_PREFIX}{issuer}#{subject}")
}

/// What [`sso_name`]s start with: such users are the sign-on provider's,
/// not the LDAP directory's.
pub const SSO_PREFIX: &str = "oidc:";

/// How long a single sign-on login may take, from its start to the
/// provider's answer.
pub const SSO_LOGIN_MS: u64 = 10 * 60_000;

/// A single sign-on login under way: what the server keeps between
/// sending the browser to the provider and its coming back (sealed at
/// rest: the PKCE verifier is a secret).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SsoLogin {
    /// The SHA-256 (hex) of its `state`.
    pub state: String,
    /// Commit version.
    pub version: u64,
    /// The PKCE code verifier.
    pub verifier: String,
    /// The `nonce` the ID token must carry.
    pub nonce: String,
    /// When it began.
    pub started_at: crate::time::Timestamp,
    /// Its callback came: a second one is refused.
    #[serde(default)]
    pub used: bool,
}

impl crate::record::Mapped for SsoLogin {
    const KIND: &'static crate::record::Kind = &crate::record::Kind {
        table: "rpa_sso_logins",
        name: "single sign-on login",
        key: crate::record::Column::text("state"),
        sealed: true,
        cached: false,
        columns: &[],
    };
    fn key(&self) -> crate::record::Cell {
        self.state.as_str().into()
    }
    fn version(&self) -> u64 {
        self.version
    }
    fn cells(&self) -> Vec<crate::record::Cell> {
        Vec::new()
    }
}

impl crate::record::Record for SsoLogin {}

/// Why a directory did not answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unreachable(pub String);

/// A future a [`Directory`] answers with.
pub type Answer<'a, T> = Pin<Box<dyn Future<Output = Result<T, Unreachable>> + Send + 'a>>;

/// The organisation's directory, as the engine uses it.
pub trait Directory: Send + Sync {
    /// Whether `password` is the password of the account `dn` (a bind).
    fn verify<'a>(&'a self, dn: &'a str, password: &'a str) -> Answer<'a, bool>;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn account(login: &str, groups: &[&str]) -> Account {
        Account {
            login: login.into(),
            dn: format!("uid={login},ou=people,dc=example,dc=com"),
            groups: groups.iter().map(|g| (*g).to_owned()).collect(),
            disabled: false,
        }
    }

    fn mapping(group: &str, roles: &[&str], processes: &[&str]) -> GroupMapping {
        GroupMapping {
            group: group.into(),
            roles: roles.iter().map(|r| (*r).to_owned()).collect(),
            processes: processes.iter().map(|p| (*p).to_owned()).collect(),
            folders: vec![],
        }
    }

    #[test]
    fn members_of_mapped_groups_get_the_union_of_their_grants() {
        let maps = [
            mapping("cn=ops,dc=example,dc=com", &["operator"], &["Invoice entry"]),
            mapping("cn=finance,dc=example,dc=com", &[], &["Payments"]),
        ];
        let w = wanted(
            &[
                account("carol", &["CN=Ops,dc=example,dc=com", "cn=finance,dc=example,dc=com"]),
                account("dave", &["cn=other,dc=example,dc=com"]),
            ],
            &maps,
        );
        assert_eq!(w.keys().collect::<Vec<_>>(), ["carol"], "dave is in no mapped group");
        let carol = &w["carol"];
        assert_eq!(carol.roles, BTreeSet::from(["operator".to_owned()]));
        assert_eq!(
            carol.processes,
            BTreeSet::from(["Invoice entry".to_owned(), "Payments".to_owned()])
        );
    }

    #[test]
    fn a_sync_creates_updates_disables_and_leaves_local_users_alone() {
        let maps = [mapping("cn=ops", &[], &["A"])];
        let mut gone = account("erin", &["cn=ops"]);
        gone.disabled = true;
        let w = wanted(
            &[account("carol", &["cn=ops"]), account("alice", &["cn=ops"]), gone],
            &maps,
        );
        let current = vec![
            Current {
                name: "alice".into(),
                dn: None,
                roles: BTreeSet::new(),
                processes: BTreeSet::new(),
                folders: BTreeSet::new(),
                disabled: false,
            },
            Current {
                name: "bob".into(),
                dn: Some("uid=bob".into()),
                roles: BTreeSet::new(),
                processes: BTreeSet::new(),
                folders: BTreeSet::new(),
                disabled: false,
            },
            Current {
                name: "erin".into(),
                dn: Some("uid=erin,ou=people,dc=example,dc=com".into()),
                roles: BTreeSet::new(),
                processes: BTreeSet::from(["A".to_owned()]),
                folders: BTreeSet::new(),
                disabled: false,
            },
        ];
        let changes = plan(&current, &w);
        assert!(changes.contains(&Change::Conflict("alice".into())));
        assert!(
            changes.contains(&Change::Disable("bob".into())),
            "bob left the directory"
        );
        assert!(
            changes
                .iter()
                .any(|c| matches!(c, Change::Create(n, w) if n == "carol" && w.enabled))
        );
        assert!(
            changes
                .iter()
                .any(|c| matches!(c, Change::Update(n, w) if n == "erin" && !w.enabled)),
            "disabled in the directory: {changes:?}"
        );
        // Once applied, nothing more to do.
        let applied: Vec<Current> = w
            .iter()
            .filter(|(n, _)| *n != "alice")
            .map(|(n, w)| Current {
                name: n.clone(),
                dn: Some(w.dn.clone()),
                roles: w.roles.clone(),
                processes: w.processes.clone(),
                folders: w.folders.clone(),
                disabled: !w.enabled,
            })
            .chain(current.iter().filter(|c| c.name == "alice").cloned())
            .collect();
        assert_eq!(plan(&applied, &w), [Change::Conflict("alice".into())]);
    }
}
