//! Domain events: what happened to jobs, queue items and robots, for those
//! who follow it (DESIGN §4).
//!
//! An event is written in the commit that made it happen, as part of that
//! commit's audit event: it takes the audit chain's sequence number (global,
//! in commit order, never reused). So an event exists exactly when its
//! change was committed, and a store needs nothing of its own to keep
//! events. The chain's hash covers the audit event's own fields, not the
//! event: it is a copy of what the commit wrote (the job's row holds the
//! same state and outputs).
//!
//! A consumer reads events after its [`Cursor`] and moves the cursor in a
//! commit of its own, conditional on the cursor it read: at least once, in
//! order, and a consumer that dies resumes where its last commit left it. A
//! consumer whose effects are rows moves its cursor in the same commit as
//! its rows (exactly once); one whose effects lie outside (a file, an HTTP
//! call) moves it after them (at least once: after a crash it sees the last
//! batch again). See [`Engine::events_for`](crate::Engine::events_for).

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::ids::*;
use crate::model::{AuditEvent, ItemState, JobState, RobotState};
use crate::time::Timestamp;

/// Something that happened, as the commit that made it happen recorded it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", rename_all_fields = "camelCase")]
pub enum Event {
    /// A job was handed to a robot: its Execute is on its way (one per
    /// attempt; a robot resuming its own run after a reconnection is none).
    JobStarted {
        /// The job.
        job: JobId,
        /// Its key (seed 001 `runInstanceId`).
        key: Key,
        /// Its process.
        process: ProcessId,
        /// The robot.
        robot: RobotId,
        /// Which attempt (1 first).
        attempt: u32,
    },
    /// A job reached a terminal state.
    JobEnded {
        /// The job.
        job: JobId,
        /// Its key (seed 001 `runInstanceId`).
        key: Key,
        /// Its process.
        process: ProcessId,
        /// How it ended: Successful, Faulted, Stopped or Canceled.
        state: JobState,
        /// The queue item it worked, if any.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        queue_item: Option<QueueItemId>,
        /// The robot that ran it, if one did.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        robot: Option<RobotId>,
        /// The robot's error code, if it reported one.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        error_code: Option<i32>,
        /// Why it ended this way, when not by the robot's own report.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reason: Option<Arc<str>>,
        /// The robot's output values.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        outputs: Option<Arc<Value>>,
        /// When its last attempt began, if it started.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        started_at: Option<Timestamp>,
    },
    /// A queue item reached a terminal state (Successful, Faulted, Retried,
    /// Abandoned or Deleted).
    ItemEnded {
        /// The item.
        item: QueueItemId,
        /// Its key.
        key: Key,
        /// Its queue's process.
        process: ProcessId,
        /// How it ended.
        state: ItemState,
        /// The job that worked it, if any.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        job: Option<JobId>,
    },
    /// A robot's connection state changed (Available, Unresponsive,
    /// Disconnected). Busy and back are told by the jobs' own events.
    RobotChanged {
        /// The robot.
        robot: RobotId,
        /// The executor's own id.
        code: Arc<str>,
        /// Its state now.
        state: RobotState,
        /// Its state before.
        from: RobotState,
    },
    /// A workflow ticket was created or changed (seed 004): moved, handled,
    /// accepted, delivered, closed, its fields changed.
    TicketChanged {
        /// The ticket's id.
        ticket: i64,
        /// Its serial number.
        sn: String,
        /// Its workflow.
        workflow: i64,
        /// Its state now.
        state: i64,
        /// Who may handle it now: `participant_type_id`.
        participant_type_id: u8,
        /// And `participant`.
        participant: String,
        /// It reached an end state.
        is_end: bool,
        /// What happened (the audit action: `ticket.create`, `ticket.handle`, ...).
        action: Arc<str>,
    },
    /// A pipeline run ended: Successful, Faulted or Stopped.
    PipelineRunEnded {
        /// The run.
        run: i64,
        /// Its pipeline.
        pipeline: i64,
        /// The pipeline's name.
        name: Arc<str>,
        /// How it ended.
        state: crate::pipeline::RunState,
        /// The run it reran, if any.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        rerun_of: Option<i64>,
    },
    /// The robots a pool wants changed (for autoscalers).
    PoolChanged {
        /// The pool.
        pool: Arc<str>,
        /// Robots it wants now.
        desired: u32,
        /// Robots it wanted before.
        previous: u32,
        /// The demand behind the figure.
        demand: crate::pool::Demand,
    },
}

impl Event {
    /// The event's type, as its JSON's `type` field says it.
    pub fn kind(&self) -> &'static str {
        match self {
            Event::JobStarted { .. } => "job_started",
            Event::JobEnded { .. } => "job_ended",
            Event::ItemEnded { .. } => "item_ended",
            Event::RobotChanged { .. } => "robot_changed",
            Event::TicketChanged { .. } => "ticket_changed",
            Event::PipelineRunEnded { .. } => "pipeline_run_ended",
            Event::PoolChanged { .. } => "pool_changed",
        }
    }
}

/// An event in its place.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EventRecord {
    /// Its position: the audit chain's sequence number.
    pub seq: u64,
    /// When it happened, by the engine's clock.
    pub at: Timestamp,
    /// What happened.
    #[serde(flatten)]
    pub event: Event,
}

/// Events after a position.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct EventPage {
    /// The events, in order.
    pub events: Vec<EventRecord>,
    /// How far the page reaches: a consumer that handled its events may
    /// move its cursor here (past audit events that carry none).
    pub through: u64,
}

impl EventPage {
    /// The events among `audit` (a stretch of the chain after `after`).
    pub fn of(after: u64, audit: &[AuditEvent]) -> EventPage {
        EventPage {
            events: audit.iter().filter_map(record).collect(),
            through: audit.last().map_or(after, |e| e.seq.max(after)),
        }
    }
}

/// The domain event an audit event carries, if any.
pub fn record(e: &AuditEvent) -> Option<EventRecord> {
    Some(EventRecord {
        seq: e.seq,
        at: e.at,
        event: Event::clone(e.event.as_deref()?),
    })
}

/// A consumer's position in the events: it has handled every event up to
/// and including `seq`. Stored like an entity: the version guards against
/// two consumers of one name moving it at once.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cursor {
    /// The consumer.
    pub name: String,
    /// The last position handled.
    pub seq: u64,
    /// Optimistic-concurrency version (0: never stored).
    pub version: u64,
}

impl Cursor {
    /// A consumer's cursor before its first commit.
    pub fn start(name: &str) -> Cursor {
        Cursor {
            name: name.to_owned(),
            seq: 0,
            version: 0,
        }
    }
}

impl crate::record::Mapped for Cursor {
    const KIND: &'static crate::record::Kind = &crate::record::Kind {
        table: "rpa_cursors",
        name: "event cursor",
        key: crate::record::Column::text("name"),
        sealed: false,
        cached: false,
        columns: &[],
    };
    fn key(&self) -> crate::record::Cell {
        self.name.as_str().into()
    }
    fn version(&self) -> u64 {
        self.version
    }
    fn cells(&self) -> Vec<crate::record::Cell> {
        Vec::new()
    }
}

impl crate::record::Record for Cursor {}

/// A consumer's next events, read after its cursor.
#[derive(Debug, Clone, PartialEq)]
pub struct Batch {
    /// The cursor as read.
    pub cursor: Cursor,
    /// The events after it.
    pub page: EventPage,
}

impl Batch {
    /// The cursor moved past this batch (its new version included).
    pub fn advanced(&self) -> Cursor {
        Cursor {
            name: self.cursor.name.clone(),
            seq: self.page.through.max(self.cursor.seq),
            version: self.cursor.version + 1,
        }
    }

    /// Whether the batch moves the cursor at all.
    pub fn moves(&self) -> bool {
        self.page.through > self.cursor.seq
    }
}

/// The lease a consumer's runner holds on a cluster (one node at a time).
pub fn consumer_lease(name: &str) -> String {
    format!("consumer:{name}")
}

/// The event a robot's change from `before` is, if any: a change of its
/// connection state (Available, Unresponsive, Disconnected). Available ⇄
/// Busy is not one: the jobs' own events tell it.
pub fn robot_changed(before: RobotState, robot: &crate::model::Robot) -> Option<Event> {
    let connection = |s: RobotState| {
        if s == RobotState::Busy {
            RobotState::Available
        } else {
            s
        }
    };
    (connection(before) != connection(robot.state)).then(|| Event::RobotChanged {
        robot: robot.id,
        code: robot.code.clone(),
        state: robot.state,
        from: before,
    })
}

/// The event of a job handed to `robot`.
pub fn job_started(job: &crate::model::Job, robot: RobotId) -> Event {
    Event::JobStarted {
        job: job.id,
        key: job.key,
        process: job.process,
        robot,
        attempt: job.attempt,
    }
}

/// The event of a job that reached its end.
pub fn job_ended(job: &crate::model::Job) -> Event {
    Event::JobEnded {
        job: job.id,
        key: job.key,
        process: job.process,
        state: job.state,
        queue_item: job.queue_item,
        robot: job.robot,
        error_code: job.error_code,
        reason: job.reason.clone(),
        outputs: job.outputs.clone(),
        started_at: job.started_at,
    }
}

/// The event of a pipeline run that ended.
pub fn pipeline_run_ended(run: &crate::pipeline::PipelineRun) -> Event {
    Event::PipelineRunEnded {
        run: run.id,
        pipeline: run.pipeline,
        name: run.plan.def.name.as_str().into(),
        state: run.state,
        rerun_of: run.rerun_of,
    }
}

/// The event of a queue item that reached its end.
pub fn item_ended(item: &crate::model::QueueItem) -> Event {
    Event::ItemEnded {
        item: item.id,
        key: item.key,
        process: item.process,
        state: item.state,
        job: item.job,
    }
}
