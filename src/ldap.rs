//! The organisation's LDAP directory (seed 001 §6.3.2 a; the rules are in
//! [`rpa_core::identity`]): its accounts and groups read with the
//! server's own account, a user's password checked by binding as that
//! user, and the sync that keeps the users matching it (one node at a
//! time, under a lease, every `syncSeconds`). A directory that does not
//! answer changes nothing: the sync tries again later, and its users'
//! logins are refused with a clear message while local users log in.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use ldap3::{LdapConnAsync, LdapConnSettings, Scope, SearchEntry};
use rpa_adapters_http::config::LdapDef;
use rpa_core::identity::{self, Account, Unreachable};
use rpa_core::model::Actor;
use rpa_core::{Engine, Store};

/// LDAP's result code for a wrong password.
const INVALID_CREDENTIALS: u32 = 49;

/// The directory of an [`LdapDef`].
pub struct Ldap {
    def: LdapDef,
}

impl Ldap {
    /// The directory `def` describes (nothing is contacted yet).
    pub fn new(def: LdapDef) -> Ldap {
        Ldap { def }
    }

    fn timeout(&self) -> Duration {
        Duration::from_secs(self.def.timeout_seconds.max(1))
    }

    /// A connection (the URL is not repeated in errors: it may carry credentials).
    async fn connect(&self) -> Result<ldap3::Ldap, Unreachable> {
        let settings = LdapConnSettings::new().set_conn_timeout(self.timeout());
        let (conn, mut ldap) = LdapConnAsync::with_settings(settings, &self.def.url)
            .await
            .map_err(|e| Unreachable(format!("connecting to the directory: {e}")))?;
        ldap3::drive!(conn);
        ldap.with_timeout(self.timeout());
        Ok(ldap)
    }

    /// Every account of the users' base, with the mapped groups it is in.
    pub async fn accounts(&self) -> Result<Vec<Account>, Unreachable> {
        let mut ldap = self.connect().await?;
        let fail = |what: &str, e: ldap3::LdapError| Unreachable(format!("{what}: {e}"));
        ldap.simple_bind(&self.def.bind_dn, &self.def.bind_password)
            .await
            .and_then(|r| r.success())
            .map_err(|e| fail("binding with the server's account", e))?;
        let login = self.def.login_attribute.as_str();
        let (users, _) = ldap
            .search(&self.def.users_base, Scope::Subtree, &self.def.user_filter, vec![login])
            .await
            .and_then(|r| r.success())
            .map_err(|e| fail("searching the users", e))?;
        let mut disabled = BTreeSet::new();
        if let Some(f) = &self.def.disabled_filter {
            let filter = format!("(&{}{})", self.def.user_filter, f);
            let (off, _) = ldap
                .search(&self.def.users_base, Scope::Subtree, &filter, vec!["1.1"])
                .await
                .and_then(|r| r.success())
                .map_err(|e| fail("searching the disabled users", e))?;
            disabled.extend(off.into_iter().map(|e| SearchEntry::construct(e).dn.to_lowercase()));
        }
        let member = self.def.member_attribute.as_str();
        let (groups, _) = ldap
            .search(
                &self.def.groups_base,
                Scope::Subtree,
                &self.def.group_filter,
                vec![member],
            )
            .await
            .and_then(|r| r.success())
            .map_err(|e| fail("searching the groups", e))?;
        let _ = ldap.unbind().await;
        // Member DN (lower case) → the groups it is in.
        let mut member_of: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for g in groups {
            let g = SearchEntry::construct(g);
            for m in g.attrs.get(member).into_iter().flatten() {
                member_of.entry(m.to_lowercase()).or_default().insert(g.dn.clone());
            }
        }
        Ok(users
            .into_iter()
            .filter_map(|e| {
                let e = SearchEntry::construct(e);
                let login = e.attrs.get(login)?.first()?.clone();
                let key = e.dn.to_lowercase();
                Some(Account {
                    login,
                    groups: member_of.get(&key).cloned().unwrap_or_default(),
                    disabled: disabled.contains(&key),
                    dn: e.dn,
                })
            })
            .collect())
    }
}

impl identity::Directory for Ldap {
    fn verify<'a>(&'a self, dn: &'a str, password: &'a str) -> identity::Answer<'a, bool> {
        Box::pin(async move {
            let outcome = async {
                let mut ldap = self.connect().await?;
                let r = ldap
                    .simple_bind(dn, password)
                    .await
                    .map_err(|e| Unreachable(format!("binding as a user: {e}")))?;
                let _ = ldap.unbind().await;
                match r.rc {
                    0 => Ok(true),
                    INVALID_CREDENTIALS => Ok(false),
                    rc => Err(Unreachable(format!("binding as a user: result code {rc}"))),
                }
            }
            .await;
            if let Err(Unreachable(why)) = &outcome {
                tracing::warn!(error = %why, "the directory did not answer a login");
            }
            outcome
        })
    }
}

/// Keeps the users matching the directory until `shutdown` completes: one
/// node at a time (the lease `ldap-sync`), every `syncSeconds`.
pub async fn run_sync<S: Store>(
    engine: Arc<Engine<S>>,
    ldap: Arc<Ldap>,
    shutdown: impl std::future::Future<Output = ()>,
) {
    tokio::pin!(shutdown);
    let every = Duration::from_secs(ldap.def.sync_seconds.max(1));
    let mut lease = crate::consume::Lease::new("ldap-sync");
    loop {
        let wait = match lease.hold(&engine).await {
            Ok(true) => {
                sync_once(&engine, &ldap).await;
                every
            }
            Ok(false) => Duration::from_secs(1),
            Err(e) => {
                tracing::error!(error = %e, "directory sync: the lease");
                Duration::from_secs(1)
            }
        };
        tokio::select! {
            _ = &mut shutdown => return,
            _ = tokio::time::sleep(wait) => {}
        }
    }
}

/// One sync; what it did is logged.
pub async fn sync_once<S: Store>(engine: &Engine<S>, ldap: &Ldap) {
    let accounts = match ldap.accounts().await {
        Ok(a) => a,
        Err(Unreachable(why)) => {
            tracing::warn!(error = %why, "directory sync: the directory did not answer; nothing changed");
            return;
        }
    };
    match engine.sync_accounts(Actor::System, &accounts, &ldap.def.groups).await {
        Ok(r) => {
            if !(r.created.is_empty() && r.updated.is_empty() && r.disabled.is_empty()) {
                tracing::info!(
                    accounts = accounts.len(),
                    created = r.created.len(),
                    updated = r.updated.len(),
                    disabled = r.disabled.len(),
                    "directory sync"
                );
            }
            if !r.conflicts.is_empty() {
                tracing::warn!(users = ?r.conflicts, "directory sync: local users of the same name are left alone");
            }
            if !r.unknown.is_empty() {
                tracing::warn!(names = ?r.unknown, "directory sync: the group mappings name what does not exist");
            }
        }
        Err(e) => tracing::error!(error = %e, "directory sync failed"),
    }
}
