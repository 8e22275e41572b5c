//! Elastic robot pools (seed 001 §6.5.2 c): how many robots a pool wants,
//! from its backlog and its processes' limits. Pure: counts in, a number out.
//!
//! A process's work goes to the pool its requirements name (`pool`), or to
//! the pool [`DEFAULT_POOL`] when it names none (where robots are unless
//! their profile says otherwise). Its demand, in robots (one job each):
//!
//! | part | counts |
//! |---|---|
//! | running | its running jobs |
//! | pending | its pending jobs that may run now: no more than `maxRunNum` leaves room for |
//! | waiting | queue items its trigger would start jobs for now ([`crate::trigger`]), within the same room |
//!
//! A pool wants the sum of its processes' demands, kept between its `min`
//! and `max`. The engine records the figure ([`Pool::desired`]) when it
//! changes, with a `pool_changed` domain event, for autoscalers; the server
//! can also start and stop robot processes to follow it.

use serde::{Deserialize, Serialize};

use crate::model::Process;
use crate::record::{Cell, Column, Kind, Mapped, Record};
use crate::time::Timestamp;
use crate::trigger::TriggerState;

/// The pool of robots without a pool of their own, and of processes that
/// name none.
pub const DEFAULT_POOL: &str = "default";

/// A pool's bounds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PoolSpec {
    /// The pool (robot profiles' `pool`).
    pub name: String,
    /// Fewest robots it wants, even with nothing to do.
    #[serde(default)]
    pub min: u32,
    /// Most robots it wants (≥ `min`, ≥ 1).
    pub max: u32,
    /// How long a robot the pool no longer wants may stay idle before a
    /// provisioner stops it, in seconds.
    #[serde(default = "default_grace")]
    pub idle_grace_seconds: u64,
    /// The executor image (its name, [`crate::image`]) its provisioner
    /// starts robots with; none: the provisioner's command alone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    /// The image version it is pinned to; none: the latest not retired.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_version: Option<String>,
}

fn default_grace() -> u64 {
    60
}

impl PoolSpec {
    /// Refuses bounds that make no sense, with the reason.
    pub fn check(&self) -> Result<(), String> {
        if self.name.trim().is_empty() {
            return Err("a pool needs a name".into());
        }
        if self.max == 0 {
            return Err(format!("pool '{}': max must be at least 1", self.name));
        }
        if self.min > self.max {
            return Err(format!(
                "pool '{}': min {} is above max {}",
                self.name, self.min, self.max
            ));
        }
        if let Some(i) = &self.image {
            crate::image::check_name(i)?;
        }
        if let Some(v) = &self.image_version {
            if self.image.is_none() {
                return Err(format!("pool '{}': imageVersion without an image", self.name));
            }
            crate::package::Version::parse(v)?;
        }
        Ok(())
    }

    /// The robots the pool wants for `demand`.
    pub fn desired(&self, demand: Demand) -> u32 {
        demand.total().clamp(self.min, self.max)
    }
}

/// Work waiting for or held by robots, in robots.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Demand {
    /// Running jobs.
    pub running: u32,
    /// Pending jobs that may run now.
    pub pending: u32,
    /// Queue items a trigger would start now.
    pub waiting: u32,
}

impl Demand {
    /// Robots all of it takes.
    pub fn total(&self) -> u32 {
        self.running.saturating_add(self.pending).saturating_add(self.waiting)
    }

    /// This and `other` together.
    pub fn plus(self, other: Demand) -> Demand {
        Demand {
            running: self.running.saturating_add(other.running),
            pending: self.pending.saturating_add(other.pending),
            waiting: self.waiting.saturating_add(other.waiting),
        }
    }
}

/// The pool process `p`'s work goes to.
pub fn pool_of(p: &Process) -> &str {
    p.spec.requirements.pool.as_deref().unwrap_or(DEFAULT_POOL)
}

/// Process `p`'s demand with `pending` jobs waiting and its trigger's counts.
pub fn demand_of(p: &Process, pending: u32, trigger: Option<&TriggerState>) -> Demand {
    let room = match p.spec.max_run_num {
        0 => u32::MAX,
        max => max.saturating_sub(p.running),
    };
    let pending = pending.min(room);
    let waiting = match (p.spec.trigger, trigger) {
        (Some(t), Some(s)) => t.to_start(s.waiting, s.active).min(room - pending),
        _ => 0,
    };
    Demand {
        running: p.running,
        pending,
        waiting,
    }
}

/// A pool as stored: its bounds and the robots it last wanted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pool {
    /// Its bounds (the name is the key).
    pub spec: PoolSpec,
    /// Commit version.
    pub version: u64,
    /// The robots it wants, as last recorded.
    pub desired: u32,
    /// The demand that figure came from.
    pub demand: Demand,
    /// When the figure last changed.
    pub changed_at: Timestamp,
}

impl Mapped for Pool {
    const KIND: &'static Kind = &Kind {
        table: "rpa_pools",
        name: "pool",
        key: Column::text("name"),
        sealed: false,
        cached: false,
        columns: &[],
    };
    fn key(&self) -> Cell {
        Cell::Text(self.spec.name.clone())
    }
    fn version(&self) -> u64 {
        self.version
    }
    fn cells(&self) -> Vec<Cell> {
        Vec::new()
    }
}

impl Record for Pool {}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::{Key, ProcessId};
    use crate::model::{ProcessSpec, ProcessType};
    use crate::trigger::QueueTrigger;
    use std::sync::Arc;

    fn process(max_run: u32, running: u32, trigger: Option<QueueTrigger>) -> Process {
        let mut spec = ProcessSpec::new("p", ProcessType::Queue);
        spec.max_run_num = max_run;
        spec.trigger = trigger;
        Process {
            id: ProcessId(1),
            key: Key::from_random([1; 16]),
            version: 1,
            spec: Arc::new(spec),
            running,
            day: 0,
            day_successes: 0,
            pending_items: 0,
            created_at: Timestamp(0),
        }
    }

    #[test]
    fn demand_counts_only_what_the_limits_let_run() {
        assert_eq!(demand_of(&process(0, 2, None), 5, None).total(), 7);
        let capped = demand_of(&process(3, 2, None), 5, None);
        assert_eq!(
            (capped.running, capped.pending),
            (2, 1),
            "maxRunNum 3 leaves room for one"
        );
        let t = QueueTrigger {
            min_items: 5,
            max_concurrent: 4,
        };
        let batch_not_full = TriggerState {
            process: 1,
            version: 1,
            waiting: 3,
            active: 0,
        };
        assert_eq!(demand_of(&process(0, 0, Some(t)), 0, Some(&batch_not_full)).waiting, 0);
        let full = TriggerState {
            waiting: 9,
            ..batch_not_full
        };
        assert_eq!(demand_of(&process(0, 0, Some(t)), 0, Some(&full)).waiting, 4);
        assert_eq!(demand_of(&process(2, 0, Some(t)), 1, Some(&full)).waiting, 1);
    }

    #[test]
    fn a_pool_wants_its_demand_within_its_bounds() {
        let spec = PoolSpec {
            name: "p".into(),
            min: 1,
            max: 3,
            idle_grace_seconds: 60,
            image: None,
            image_version: None,
        };
        let d = |n| Demand {
            running: 0,
            pending: n,
            waiting: 0,
        };
        assert_eq!(spec.desired(d(0)), 1);
        assert_eq!(spec.desired(d(2)), 2);
        assert_eq!(spec.desired(d(50)), 3);
        assert!(spec.check().is_ok());
        let bad = PoolSpec { min: 4, ..spec.clone() };
        assert!(bad.check().unwrap_err().contains("above max"));
        let zero = PoolSpec { max: 0, min: 0, ..spec };
        assert!(zero.check().is_err());
    }
}
