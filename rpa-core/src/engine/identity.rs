//! Unified identity (the rules are in [`crate::identity`]): making the
//! users match the organisation's directory.

use std::collections::{BTreeMap, BTreeSet};

use super::{Decided, Engine, Tx};
use crate::audit::Subject;
use crate::auth;
use crate::error::{Error, Result};
use crate::identity::{self, Account, Change, Current, GroupMapping, SyncReport, Wanted};
use crate::ids::{IdKind, ProcessId, RoleId, UserId};
use crate::model::{Actor, Permission, User};
use crate::store::People as _;
use crate::store::{Records, Store};

impl<S: Store> Engine<S> {
    /// Makes the users match `accounts` (the directory's, as just read)
    /// through `mappings` (permission ManageUsers): each change in a commit
    /// of its own, audited (`user.sync`).
    pub async fn sync_accounts(
        &self,
        actor: Actor,
        accounts: &[Account],
        mappings: &[GroupMapping],
    ) -> Result<SyncReport> {
        self.require(actor, Permission::ManageUsers).await?;
        let roles: BTreeMap<String, RoleId> = self.store.roles().await?.into_iter().map(|r| (r.name, r.id)).collect();
        let processes: BTreeMap<String, ProcessId> = self
            .store
            .processes()
            .await?
            .into_iter()
            .map(|p| (p.spec.name.clone(), p.id))
            .collect();
        let role_name: BTreeMap<RoleId, String> = roles.iter().map(|(n, id)| (*id, n.clone())).collect();
        let process_name: BTreeMap<ProcessId, String> = processes.iter().map(|(n, id)| (*id, n.clone())).collect();
        let users = self.store.users().await?;
        let current: Vec<Current> = users
            .iter()
            .map(|u| Current {
                name: u.name.clone(),
                // The sign-on provider's users are not the directory's: as local ones.
                dn: u.directory.clone().filter(|d| !d.starts_with(identity::SSO_PREFIX)),
                roles: u.roles.iter().filter_map(|r| role_name.get(r).cloned()).collect(),
                processes: u.grants.iter().filter_map(|p| process_name.get(p).cloned()).collect(),
                folders: u.folders.clone(),
                disabled: u.disabled,
            })
            .collect();
        let mut report = SyncReport::default();
        // Names a mapping gives that do not exist: skipped, reported once.
        let mut unknown = BTreeSet::new();
        let mut wanted = identity::wanted(accounts, mappings);
        for w in wanted.values_mut() {
            unknown.extend(
                w.roles
                    .iter()
                    .filter(|r| !roles.contains_key(*r))
                    .map(|r| format!("role {r}")),
            );
            unknown.extend(
                w.processes
                    .iter()
                    .filter(|p| !processes.contains_key(*p))
                    .map(|p| format!("process {p}")),
            );
            w.roles.retain(|r| roles.contains_key(r));
            w.processes.retain(|p| processes.contains_key(p));
        }
        report.unknown = unknown.into_iter().collect();
        for change in identity::plan(&current, &wanted) {
            match change {
                Change::Conflict(name) => report.conflicts.push(name),
                Change::Create(name, w) => {
                    self.create_directory_user(actor, &name, &w, &roles, &processes).await?;
                    report.created.push(name);
                }
                Change::Update(name, w) => {
                    self.update_directory_user(actor, &name, Some(&w), &roles, &processes)
                        .await?;
                    report.updated.push(name);
                }
                Change::Disable(name) => {
                    self.update_directory_user(actor, &name, None, &roles, &processes)
                        .await?;
                    report.disabled.push(name);
                }
            }
        }
        Ok(report)
    }

    /// Keeps a single sign-on login under way (see [`identity::SsoLogin`]).
    pub async fn begin_sso(&self, state: &str, verifier: &str, nonce: &str) -> Result<()> {
        let login = identity::SsoLogin {
            state: hex::encode(auth::token_hash(state)),
            version: 1,
            verifier: verifier.to_owned(),
            nonce: nonce.to_owned(),
            started_at: self.now(),
            used: false,
        };
        let mut tx = Tx::default();
        tx.record(&login)?;
        self.commit(tx).await
    }

    /// The single sign-on login `state` names, once: unknown, used or older
    /// than [`identity::SSO_LOGIN_MS`] is refused.
    pub async fn take_sso(&self, state: &str) -> Result<identity::SsoLogin> {
        let key = hex::encode(auth::token_hash(state));
        decided!(self, |_attempt| {
            let refused = || Error::InvalidArgument("this sign-on is unknown, used or expired; sign in again".into());
            let Some(mut l) = self.store.get::<identity::SsoLogin>(key.as_str()).await? else {
                return Err(refused());
            };
            if l.used || self.now().0 - l.started_at.0 > identity::SSO_LOGIN_MS as i64 {
                return Err(refused());
            }
            l.used = true;
            l.version += 1;
            let mut tx = Tx::default();
            tx.record(&l)?;
            Ok(Decided::Commit(tx, l))
        })
    }

    /// Signs in `account` (who the provider vouched for): the user its
    /// groups make (created or brought up to date), and a session token.
    /// An account in no mapped group, or whose name is a local user's or
    /// another provider account's, is refused.
    pub async fn sso_login(&self, account: &Account, mappings: &[GroupMapping]) -> Result<String> {
        let wanted = identity::wanted(std::slice::from_ref(account), mappings);
        let refuse = |why: String| Error::PermissionDenied(why);
        let Some(w) = wanted.get(&account.login) else {
            let mut tx = Tx::default();
            tx.audit(
                self.now(),
                Actor::System,
                "login.refused",
                Subject::Text(format!("user:{}", account.login).into()),
                "single sign-on: in no mapped group".into(),
            );
            return Err(self
                .record_failure(tx, refuse(format!("{} is in no group this server maps", account.login)))
                .await);
        };
        let roles: BTreeMap<String, RoleId> = self.store.roles().await?.into_iter().map(|r| (r.name, r.id)).collect();
        let processes: BTreeMap<String, ProcessId> = self
            .store
            .processes()
            .await?
            .into_iter()
            .map(|p| (p.spec.name.clone(), p.id))
            .collect();
        match self.store.user_by_name(&account.login).await? {
            None => {
                self.create_directory_user(Actor::System, &account.login, w, &roles, &processes)
                    .await?
            }
            Some(u) if u.directory.as_deref() != Some(account.dn.as_str()) => {
                return Err(refuse(format!(
                    "{} is a user of this server that does not sign on with this provider",
                    account.login
                )));
            }
            Some(_) => {
                self.update_directory_user(Actor::System, &account.login, Some(w), &roles, &processes)
                    .await?
            }
        }
        let user = self
            .store
            .user_by_name(&account.login)
            .await?
            .ok_or_else(|| Error::Internal("a user just written is missing".into()))?;
        let (token, _) = self
            .open_session(&user, "single sign-on", self.config.token_ttl_ms)
            .await?;
        Ok(token)
    }

    async fn create_directory_user(
        &self,
        actor: Actor,
        name: &str,
        w: &Wanted,
        roles: &BTreeMap<String, RoleId>,
        processes: &BTreeMap<String, ProcessId>,
    ) -> Result<()> {
        let now = self.now();
        let user = User {
            id: UserId(self.next_id(IdKind::User).await?),
            key: self.new_key(),
            version: 0,
            name: name.to_owned(),
            // Never used: the directory checks the password. A random hash
            // no password matches, should the user ever become local.
            password_hash: auth::hash_password(&auth::new_token().0, self.config.password_cost)?,
            failed_logins: 0,
            first_failed_at: None,
            locked_at: None,
            locked: false,
            disabled: !w.enabled,
            roles: w.roles.iter().filter_map(|r| roles.get(r).copied()).collect(),
            grants: w.processes.iter().filter_map(|p| processes.get(p).copied()).collect(),
            folders: w.folders.clone(),
            created_at: now,
            directory: Some(w.dn.clone()),
        };
        let mut tx = Tx::default();
        tx.user(user.clone())?.audit(
            now,
            actor,
            "user.sync",
            Subject::Id("user", user.id.0),
            format!("created from the directory ({})", w.dn),
        );
        self.commit(tx).await.map_err(super::dup_as_exists)
    }

    /// Sets a directory user's DN, grants and state to `w`, or (`None`) disables it.
    async fn update_directory_user(
        &self,
        actor: Actor,
        name: &str,
        w: Option<&Wanted>,
        roles: &BTreeMap<String, RoleId>,
        processes: &BTreeMap<String, ProcessId>,
    ) -> Result<()> {
        decided!(self, |_attempt| {
            let Some(mut u) = self.store.user_by_name(name).await? else {
                return Ok(Decided::Answer(()));
            };
            let detail = match w {
                Some(w) => {
                    u.directory = Some(w.dn.clone());
                    u.roles = w.roles.iter().filter_map(|r| roles.get(r).copied()).collect();
                    u.grants = w.processes.iter().filter_map(|p| processes.get(p).copied()).collect();
                    u.folders = w.folders.clone();
                    u.disabled = !w.enabled;
                    if w.enabled {
                        "grants from the directory".to_owned()
                    } else {
                        "disabled in the directory".to_owned()
                    }
                }
                None => {
                    u.disabled = true;
                    "no longer in a mapped group of the directory".to_owned()
                }
            };
            let mut tx = Tx::default();
            tx.user(u.clone())?
                .audit(self.now(), actor, "user.sync", Subject::Id("user", u.id.0), detail);
            Ok(Decided::Commit(tx, ()))
        })
    }
}
