//! The people tickets flow between (seed 004 "同步用户信息"): users,
//! departments with their leader and approvers, and roles with their
//! members. The organisation's own directory is the source; it is
//! synchronised here whole (configuration file or admin API), and
//! participants are resolved against it.

use serde::{Deserialize, Serialize};

use crate::record::{Cell, Column, Kind, Mapped, Record};

/// A person tickets can be assigned to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Person {
    /// `username`.
    pub username: String,
    /// `alias`: the display name.
    #[serde(default)]
    pub alias: String,
    /// `email`.
    #[serde(default)]
    pub email: String,
    /// `phone`.
    #[serde(default)]
    pub phone: String,
    /// The department's id (0: none).
    #[serde(default)]
    pub dept_id: i64,
    /// `is_active`: an inactive person is assigned nothing.
    #[serde(default = "yes")]
    pub is_active: bool,
    /// `is_admin`: sees every ticket, may close and change any.
    #[serde(default)]
    pub is_admin: bool,
}

fn yes() -> bool {
    true
}

/// A department.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Dept {
    /// Its id.
    pub id: i64,
    /// `name`.
    pub name: String,
    /// `parent_dept_id` (0: none).
    #[serde(default)]
    pub parent_dept_id: i64,
    /// `leader`: a username.
    #[serde(default)]
    pub leader: String,
    /// `approver`: comma-separated usernames, preferred to the leader as `creator_tl`.
    #[serde(default)]
    pub approver: String,
}

/// A role.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Role {
    /// Its id.
    pub id: i64,
    /// `name`.
    pub name: String,
    /// Its members' usernames.
    #[serde(default)]
    pub members: Vec<String>,
}

/// The whole directory, as synchronised (a record kind with one row).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Directory {
    /// Commit version.
    #[serde(default)]
    pub version: u64,
    /// People.
    #[serde(default)]
    pub users: Vec<Person>,
    /// Departments.
    #[serde(default)]
    pub depts: Vec<Dept>,
    /// Roles.
    #[serde(default)]
    pub roles: Vec<Role>,
}

/// The key of the directory's one row.
pub const DIRECTORY_KEY: &str = "directory";

impl Mapped for Directory {
    const KIND: &'static Kind = &Kind {
        table: "rpa_flow_directory",
        name: "directory",
        key: Column::text("name"),
        sealed: false,
        cached: false,
        columns: &[],
    };
    fn key(&self) -> Cell {
        Cell::from(DIRECTORY_KEY)
    }
    fn version(&self) -> u64 {
        self.version
    }
    fn cells(&self) -> Vec<Cell> {
        Vec::new()
    }
}

impl Record for Directory {}

impl Directory {
    /// Checks that ids and usernames are unique and that references point
    /// at something (a person's department, a leader, approvers, members).
    pub fn check(&self) -> Result<(), String> {
        let mut names = std::collections::HashSet::new();
        for u in &self.users {
            if u.username.trim().is_empty() || u.username.contains(',') {
                return Err(format!("username {:?} is empty or holds a comma", u.username));
            }
            if !names.insert(u.username.as_str()) {
                return Err(format!("user {} is listed twice", u.username));
            }
        }
        let mut ids = std::collections::HashSet::new();
        for d in &self.depts {
            if !ids.insert(d.id) {
                return Err(format!("department {} is listed twice", d.id));
            }
            for who in d.leader.split(',').chain(d.approver.split(',')).map(str::trim) {
                if !who.is_empty() && !names.contains(who) {
                    return Err(format!("department {} names {who}, who is not a user", d.name));
                }
            }
        }
        for u in &self.users {
            if u.dept_id != 0 && !ids.contains(&u.dept_id) {
                return Err(format!(
                    "user {} is in department {}, which is not listed",
                    u.username, u.dept_id
                ));
            }
        }
        let mut roles = std::collections::HashSet::new();
        for r in &self.roles {
            if !roles.insert(r.id) {
                return Err(format!("role {} is listed twice", r.id));
            }
            if let Some(m) = r.members.iter().find(|m| !names.contains(m.as_str())) {
                return Err(format!("role {} names {m}, who is not a user", r.name));
            }
        }
        Ok(())
    }

    /// A person by username.
    pub fn user(&self, name: &str) -> Option<&Person> {
        self.users.iter().find(|u| u.username == name)
    }

    /// A department by id.
    pub fn dept(&self, id: i64) -> Option<&Dept> {
        self.depts.iter().find(|d| d.id == id)
    }

    /// A role by id.
    pub fn role(&self, id: i64) -> Option<&Role> {
        self.roles.iter().find(|r| r.id == id)
    }

    /// The active members of department `id`.
    pub fn dept_members(&self, id: i64) -> Vec<String> {
        self.users
            .iter()
            .filter(|u| u.dept_id == id && u.is_active)
            .map(|u| u.username.clone())
            .collect()
    }

    /// The active members of role `id`.
    pub fn role_members(&self, id: i64) -> Vec<String> {
        self.role(id).map_or_else(Vec::new, |r| {
            r.members.iter().filter(|m| self.active(m)).cloned().collect()
        })
    }

    /// Whether `name` is an active user.
    pub fn active(&self, name: &str) -> bool {
        self.user(name).is_some_and(|u| u.is_active)
    }

    /// The directory with the platform's own accounts (`(name, disabled)`)
    /// that it does not list, as people of no department: the users of the
    /// console and of the business API take part in workflows (they
    /// report problems, accept answers) under their own names. A person
    /// the directory lists keeps its entry.
    pub fn with_accounts<'a>(mut self, accounts: impl IntoIterator<Item = (&'a str, bool)>) -> Directory {
        for (name, disabled) in accounts {
            if self.user(name).is_none() {
                self.users.push(Person {
                    username: name.to_owned(),
                    alias: name.to_owned(),
                    email: String::new(),
                    phone: String::new(),
                    dept_id: 0,
                    is_active: !disabled,
                    is_admin: false,
                });
            }
        }
        self
    }

    /// Whether `name` is an administrator.
    pub fn is_admin(&self, name: &str) -> bool {
        self.user(name).is_some_and(|u| u.is_admin && u.is_active)
    }

    /// `creator_tl` of `name`: their department's approvers, else its leader.
    pub fn approver_of(&self, name: &str) -> Option<String> {
        let d = self.dept(self.user(name)?.dept_id)?;
        let approvers: Vec<&str> = d.approver.split(',').map(str::trim).filter(|s| !s.is_empty()).collect();
        if !approvers.is_empty() {
            return Some(approvers.join(","));
        }
        (!d.leader.trim().is_empty()).then(|| d.leader.trim().to_owned())
    }
}
