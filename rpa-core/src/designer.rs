//! Third-party designers and cloud designer scheduling (seed 001 §6.2.3):
//! an RPA designer (the design tool, on a machine of the pool) registers
//! with its vendor's proof, as robots do, and heart-beats; a person asks
//! for one and gets an idle designer for a session; it goes back to the
//! pool when released, when its holder has left it unused past the idle
//! limit, or when it falls silent. Pure: the states and their rules.

use serde::{Deserialize, Serialize};

use crate::ids::Key;
use crate::record::{Cell, Column, Kind, Mapped, Record};
use crate::time::Timestamp;

/// Where a designer stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum DesignerState {
    /// Heard from, held by nobody: it may be allocated.
    Idle,
    /// Held by a person.
    Allocated,
    /// Not heard from within the heartbeat timeout.
    Offline,
}

impl DesignerState {
    /// `Idle`, `Allocated` or `Offline`.
    pub fn as_str(self) -> &'static str {
        match self {
            DesignerState::Idle => "Idle",
            DesignerState::Allocated => "Allocated",
            DesignerState::Offline => "Offline",
        }
    }
}

/// A registered designer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Designer {
    /// Its own id (`designerId`).
    pub code: String,
    /// Commit version.
    pub version: u64,
    /// The vendor that proved it.
    pub vendor: String,
    /// The design tool's version, as it said.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_version: Option<String>,
    /// Where a person reaches it (an address, a remote desktop URL).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    /// The connection its heartbeats must name (`designerConnectId`).
    pub connect: Key,
    /// Where it stands.
    pub state: DesignerState,
    /// Who holds it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub holder: Option<String>,
    /// Since when.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allocated_at: Option<Timestamp>,
    /// Its last heartbeat.
    pub last_heard: Timestamp,
    /// When its holder last used it (a heartbeat saying `inUse`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_used: Option<Timestamp>,
    /// When it first registered.
    pub registered_at: Timestamp,
}

impl Mapped for Designer {
    const KIND: &'static Kind = &Kind {
        table: "rpa_designers",
        name: "designer",
        key: Column::text("code"),
        sealed: false,
        cached: false,
        columns: &[Column::text("state"), Column::text("holder")],
    };
    fn key(&self) -> Cell {
        self.code.as_str().into()
    }
    fn version(&self) -> u64 {
        self.version
    }
    fn cells(&self) -> Vec<Cell> {
        vec![self.state.as_str().into(), Cell::from(self.holder.clone())]
    }
}

impl Record for Designer {}

/// How long designers may be silent or unused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Silent this long: Offline (its allocation ends).
    pub heartbeat_timeout_ms: u64,
    /// Held but unused this long: reclaimed.
    pub idle_ms: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            heartbeat_timeout_ms: 90_000,
            idle_ms: 30 * 60_000,
        }
    }
}

/// What a designer's deadline does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lapse {
    /// Silent past the timeout: Offline.
    Silent,
    /// Held and unused past the idle limit: back to Idle.
    Unused,
}

/// A designer as it registers, or again with a new connection (its
/// allocation, if any, stays: the holder's session survives a restart of
/// the tool).
pub fn register(
    old: Option<Designer>,
    code: &str,
    vendor: &str,
    client_version: Option<String>,
    host: Option<String>,
    connect: Key,
    now: Timestamp,
) -> Designer {
    match old {
        Some(d) => Designer {
            vendor: vendor.to_owned(),
            client_version,
            host,
            connect,
            state: if d.holder.is_some() {
                DesignerState::Allocated
            } else {
                DesignerState::Idle
            },
            last_heard: now,
            ..d
        },
        None => Designer {
            code: code.to_owned(),
            version: 0,
            vendor: vendor.to_owned(),
            client_version,
            host,
            connect,
            state: DesignerState::Idle,
            holder: None,
            allocated_at: None,
            last_heard: now,
            last_used: None,
            registered_at: now,
        },
    }
}

impl Designer {
    /// A heartbeat; `in_use`: its holder is working in it now.
    pub fn heartbeat(&mut self, in_use: bool, now: Timestamp) {
        self.last_heard = now;
        if self.state == DesignerState::Offline {
            self.state = if self.holder.is_some() {
                DesignerState::Allocated
            } else {
                DesignerState::Idle
            };
        }
        if in_use && self.holder.is_some() {
            self.last_used = Some(now);
        }
    }

    /// Whether a deadline has passed, and which.
    pub fn lapse(&self, limits: Limits, now: Timestamp) -> Option<Lapse> {
        if self.state != DesignerState::Offline
            && now.0.saturating_sub(self.last_heard.0) > limits.heartbeat_timeout_ms as i64
        {
            return Some(Lapse::Silent);
        }
        if self.state == DesignerState::Allocated {
            let since = self.last_used.into_iter().chain(self.allocated_at).max()?;
            if now.0.saturating_sub(since.0) > limits.idle_ms as i64 {
                return Some(Lapse::Unused);
            }
        }
        None
    }

    /// Applies `lapse`: the holder, if any, loses it.
    pub fn expire(&mut self, lapse: Lapse) {
        self.holder = None;
        self.allocated_at = None;
        self.state = match lapse {
            Lapse::Silent => DesignerState::Offline,
            Lapse::Unused => DesignerState::Idle,
        };
    }

    /// `person` gets it.
    pub fn allocate(&mut self, person: &str, now: Timestamp) {
        self.state = DesignerState::Allocated;
        self.holder = Some(person.to_owned());
        self.allocated_at = Some(now);
        self.last_used = Some(now);
    }

    /// `person` gives it back.
    pub fn release(&mut self, person: &str) -> Result<(), String> {
        if self.holder.as_deref() != Some(person) {
            return Err(format!("designer {} is not held by {person}", self.code));
        }
        self.holder = None;
        self.allocated_at = None;
        if self.state == DesignerState::Allocated {
            self.state = DesignerState::Idle;
        }
        Ok(())
    }
}

/// The designer to give `person`: the one it holds already, else the idle
/// one that has waited longest (least recently used, then registered).
pub fn pick<'a>(designers: &'a [Designer], person: &str) -> Option<&'a Designer> {
    if let Some(d) = designers.iter().find(|d| d.holder.as_deref() == Some(person)) {
        return Some(d);
    }
    designers
        .iter()
        .filter(|d| d.state == DesignerState::Idle)
        .min_by_key(|d| (d.last_used.unwrap_or(Timestamp(0)), d.registered_at, d.code.clone()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn designer(code: &str, at: i64) -> Designer {
        register(
            None,
            code,
            "acme",
            None,
            Some(format!("rdp://{code}")),
            Key([1; 16]),
            Timestamp(at),
        )
    }

    #[test]
    fn a_person_gets_the_idle_designer_that_waited_longest_and_keeps_it() {
        let mut a = designer("a", 10);
        let b = designer("b", 5);
        let mut c = designer("c", 1);
        c.state = DesignerState::Offline;
        a.last_used = Some(Timestamp(3));
        let all = vec![a.clone(), b.clone(), c];
        assert_eq!(
            pick(&all, "ann").map(|d| d.code.as_str()),
            Some("b"),
            "never used, before a"
        );
        let mut held = all.clone();
        held[0].allocate("ann", Timestamp(20));
        assert_eq!(
            pick(&held, "ann").map(|d| d.code.as_str()),
            Some("a"),
            "the one ann holds"
        );
        held[1].allocate("bo", Timestamp(20));
        assert_eq!(pick(&held, "cy"), None, "none idle");
    }

    #[test]
    fn silence_and_disuse_end_an_allocation() {
        let limits = Limits {
            heartbeat_timeout_ms: 100,
            idle_ms: 1_000,
        };
        let mut d = designer("a", 0);
        d.allocate("ann", Timestamp(0));
        d.heartbeat(false, Timestamp(90));
        assert_eq!(d.lapse(limits, Timestamp(150)), None);
        d.heartbeat(true, Timestamp(500));
        d.heartbeat(false, Timestamp(1_400));
        assert_eq!(d.lapse(limits, Timestamp(1_450)), None, "used at 500");
        d.heartbeat(false, Timestamp(1_550));
        assert_eq!(d.lapse(limits, Timestamp(1_600)), Some(Lapse::Unused));
        d.expire(Lapse::Unused);
        assert_eq!((d.state, d.holder.as_deref()), (DesignerState::Idle, None));
        assert_eq!(d.lapse(limits, Timestamp(1_700)), Some(Lapse::Silent));
        d.expire(Lapse::Silent);
        assert_eq!(d.state, DesignerState::Offline);
        assert_eq!(d.lapse(limits, Timestamp(9_999)), None, "once");
        d.heartbeat(false, Timestamp(10_000));
        assert_eq!(d.state, DesignerState::Idle, "heard again");
    }

    #[test]
    fn only_its_holder_releases_it_and_a_new_connection_keeps_the_holder() {
        let mut d = designer("a", 0);
        d.allocate("ann", Timestamp(1));
        assert!(d.release("bo").is_err());
        let again = register(
            Some(d.clone()),
            "a",
            "acme",
            Some("2.0".into()),
            None,
            Key([2; 16]),
            Timestamp(5),
        );
        assert_eq!(
            (again.holder.as_deref(), again.state),
            (Some("ann"), DesignerState::Allocated)
        );
        d.release("ann").unwrap();
        assert_eq!(d.state, DesignerState::Idle);
    }
}
