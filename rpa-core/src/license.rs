//! Robot licenses (seed 001 `SendLicense`, table A.8): what a license is,
//! which robots may hold it, and when it stops counting. Pure.
//!
//! A license has content (the text robots receive), an optional vendor
//! (only robots of that vendor may hold it), an optional expiry, an
//! optional list of the robot ids it may be bound to, and a number of seats
//! (robots that may hold it at once). An administrator binds it to a robot;
//! the robot is sent `SendLicense` then, again when the license is renewed,
//! and in the answer to every Register. Unbinding it, or retiring the
//! license, sends the robot `Error` ([`REVOKED`]). From its expiry on, the
//! robots holding it are given no work ([`License::refusal`]) until it is
//! renewed.

use serde::{Deserialize, Serialize};

use crate::record::{Cell, Column, Kind, Mapped, Record};
use crate::seed001::UNKNOWN;
use crate::time::Timestamp;

/// The seed 001 error code a robot is sent when its license is taken away
/// (the standard has no code of its own for it: 19999, "unknown").
pub const REVOKED: i32 = UNKNOWN;

/// Most licenses a server keeps.
pub const MAX_LICENSES: usize = 10_000;

/// Most seats of one license.
pub const MAX_SEATS: u32 = 100_000;

/// A license as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct License {
    /// Its name (the key).
    pub name: String,
    /// Commit version.
    pub version: u64,
    /// What the terms say, sent to robots as `licenseContent`.
    pub terms: Terms,
    /// The robot ids holding it, in the order they were bound.
    #[serde(default)]
    pub bound: Vec<String>,
    /// Retired: bound to nobody, and bound again only once re-created.
    #[serde(default)]
    pub retired: bool,
    /// When it was created or last renewed.
    pub changed_at: Timestamp,
}

/// What an administrator says a license is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Terms {
    /// Sent to robots as `licenseContent`.
    pub content: String,
    /// Only robots of this vendor (supplier code) may hold it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vendor: Option<String>,
    /// From this moment on it no longer counts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<Timestamp>,
    /// Only these robot ids may hold it; none: any robot.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub robots: Vec<String>,
    /// How many robots may hold it at once.
    pub seats: u32,
}

impl Terms {
    /// Why these terms cannot be a license's, if they cannot.
    pub fn check(&self) -> Result<(), String> {
        if self.content.is_empty() {
            return Err("a license needs content".into());
        }
        if self.content.len() > 64 * 1024 {
            return Err("a license's content is at most 64 KiB".into());
        }
        if !(1..=MAX_SEATS).contains(&self.seats) {
            return Err(format!("seats must be between 1 and {MAX_SEATS}"));
        }
        if self.robots.iter().any(String::is_empty) {
            return Err("a robot id in robots is empty".into());
        }
        Ok(())
    }

    /// Whether it has expired at `now`.
    pub fn expired(&self, now: Timestamp) -> bool {
        self.expires_at.is_some_and(|e| now >= e)
    }
}

/// Checks a license name.
pub fn check_name(name: &str) -> Result<(), String> {
    if name.is_empty() || name.len() > 200 || name.chars().any(char::is_control) {
        return Err("a license name is 1 to 200 characters, none of them control characters".into());
    }
    Ok(())
}

impl License {
    /// Why the robot `robot` of vendor `vendor` may not be bound to it at
    /// `now`, if it may not.
    pub fn refuse_binding(&self, robot: &str, vendor: Option<&str>, now: Timestamp) -> Option<String> {
        let t = &self.terms;
        if self.retired {
            return Some(format!("license {} is retired", self.name));
        }
        if t.expired(now) {
            return Some(format!(
                "license {} expired at {}",
                self.name,
                t.expires_at.unwrap_or(now)
            ));
        }
        if !t.robots.is_empty() && !t.robots.iter().any(|r| r == robot) {
            return Some(format!("license {} may not be bound to robot {robot}", self.name));
        }
        if let Some(v) = &t.vendor
            && vendor != Some(v.as_str())
        {
            return Some(format!("license {} is for robots of vendor {v}", self.name));
        }
        if self.bound.len() >= t.seats as usize {
            return Some(format!(
                "license {} has no free seat ({} of {})",
                self.name,
                self.bound.len(),
                t.seats
            ));
        }
        None
    }

    /// Why new terms cannot replace these, given the robots holding it.
    pub fn refuse_renewal(&self, terms: &Terms) -> Option<String> {
        if let Err(why) = terms.check() {
            return Some(why);
        }
        if (terms.seats as usize) < self.bound.len() {
            return Some(format!(
                "{} robots hold license {}: unbind some before lowering its seats to {}",
                self.bound.len(),
                self.name,
                terms.seats
            ));
        }
        if !terms.robots.is_empty()
            && let Some(r) = self.bound.iter().find(|r| !terms.robots.contains(r))
        {
            return Some(format!("robot {r} holds license {}: unbind it first", self.name));
        }
        None
    }
}

/// What a robot holds: the license's name, content and expiry, copied onto
/// the robot when bound or renewed (so dispatch needs no extra read).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Held {
    /// The license's name.
    pub name: String,
    /// Its expiry.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<Timestamp>,
}

impl Held {
    /// Why a robot holding it gets no work at `now`, if it gets none.
    pub fn refusal(&self, now: Timestamp) -> Option<String> {
        match self.expires_at {
            Some(e) if now >= e => Some(format!("license {} expired at {e}", self.name)),
            _ => None,
        }
    }
}

impl Mapped for License {
    const KIND: &'static Kind = &Kind {
        table: "rpa_licenses",
        name: "license",
        key: Column::text("name"),
        sealed: false,
        cached: false,
        columns: &[],
    };
    fn key(&self) -> Cell {
        Cell::Text(self.name.clone())
    }
    fn version(&self) -> u64 {
        self.version
    }
    fn cells(&self) -> Vec<Cell> {
        Vec::new()
    }
}

impl Record for License {}

#[cfg(test)]
mod tests {
    use super::*;

    fn license(seats: u32) -> License {
        License {
            name: "L".into(),
            version: 1,
            terms: Terms {
                content: "LIC".into(),
                vendor: Some("acme".into()),
                expires_at: Some(Timestamp(1_000)),
                robots: vec!["r1".into(), "r2".into()],
                seats,
            },
            bound: vec![],
            retired: false,
            changed_at: Timestamp(0),
        }
    }

    #[test]
    fn binding_follows_the_terms() {
        let mut l = license(1);
        assert_eq!(l.refuse_binding("r1", Some("acme"), Timestamp(999)), None);
        let why = |l: &License, r, v, t| l.refuse_binding(r, v, Timestamp(t)).unwrap();
        assert!(why(&l, "r3", Some("acme"), 0).contains("may not be bound to robot r3"));
        assert!(why(&l, "r1", Some("other"), 0).contains("vendor acme"));
        assert!(why(&l, "r1", None, 0).contains("vendor acme"));
        assert!(why(&l, "r1", Some("acme"), 1_000).contains("expired"));
        l.bound.push("r2".into());
        assert!(why(&l, "r1", Some("acme"), 0).contains("no free seat (1 of 1)"));
        l.retired = true;
        assert!(why(&l, "r1", Some("acme"), 0).contains("retired"));
    }

    #[test]
    fn renewal_keeps_the_robots_holding_it() {
        let mut l = license(2);
        l.bound = vec!["r1".into(), "r2".into()];
        let mut t = l.terms.clone();
        t.seats = 1;
        assert!(l.refuse_renewal(&t).unwrap().contains("lowering its seats"));
        t.seats = 2;
        t.robots = vec!["r1".into()];
        assert!(l.refuse_renewal(&t).unwrap().contains("robot r2 holds"));
        t.robots.clear();
        t.expires_at = None;
        assert_eq!(l.refuse_renewal(&t), None);
        t.content.clear();
        assert!(l.refuse_renewal(&t).is_some());
    }

    #[test]
    fn a_held_license_stops_work_from_its_expiry() {
        let h = Held {
            name: "L".into(),
            expires_at: Some(Timestamp(10)),
        };
        assert_eq!(h.refusal(Timestamp(9)), None);
        assert!(h.refusal(Timestamp(10)).unwrap().contains("license L expired"));
        let forever = Held {
            name: "L".into(),
            expires_at: None,
        };
        assert_eq!(forever.refusal(Timestamp(i64::MAX)), None);
    }

    #[test]
    fn terms_are_checked() {
        let mut t = license(1).terms;
        assert_eq!(t.check(), Ok(()));
        t.seats = 0;
        assert!(t.check().is_err());
        t.seats = 1;
        t.robots.push(String::new());
        assert!(t.check().is_err());
    }
}
