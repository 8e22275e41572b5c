//! The store conformance suite: written once, run against every backend.
//!
//! A backend's test calls [`run`] with a function that makes a fresh, empty
//! store; every case gets its own store. Cases panic with the case's name on
//! failure. The suite covers versioned commits and their atomicity, unique
//! keys, the dispatch, idle-robot and deadline indexes, the outbox, the audit
//! chain, domain events and consumers' cursors, the job-window query, leases, and two engines racing on one store
//! (for jobs, and for the timers).

use std::collections::BTreeSet;
use std::future::Future;
use std::sync::Arc;

use serde_json::json;

use crate::audit::{self, AuditDraft};
use crate::auth::PasswordCost;
use crate::engine::{Engine, EngineConfig};
use crate::error::StoreError;
use crate::events::{self, Cursor, Event};
use crate::ids::*;
use crate::model::*;
use crate::record::Mapped;
use crate::store::*;
use crate::time::{ManualClock, Timestamp};
use crate::transport::Command;

/// Runs every case, each on a fresh store from `make`.
pub async fn run<S, F, Fut>(mut make: F)
where
    S: Store + Clone,
    F: FnMut() -> Fut,
    Fut: Future<Output = S>,
{
    ids_are_serial(make().await).await;
    versioned_commits(make().await).await;
    commits_are_atomic(make().await).await;
    unique_keys(make().await).await;
    dispatch_index(make().await).await;
    idle_robot_index(make().await).await;
    deadline_index(make().await).await;
    outbox(make().await).await;
    audit_chain(make().await).await;
    domain_events(make().await).await;
    job_window(make().await).await;
    lookups(make().await).await;
    roles(make().await).await;
    logs_dropped(make().await).await;
    item_lists(make().await).await;
    records(make().await).await;
    full_text(make().await).await;
    engines_race(make().await).await;
    lease(make().await).await;
    counts(make().await).await;
    counts_at_once(make().await).await;
    timers_fire_once(make().await).await;
}

fn key(n: u8) -> Key {
    Key::from_random([n; 16])
}

/// A job for tests.
pub fn sample_job(id: i64, process: ProcessId, priority: i32) -> Job {
    Job {
        id: JobId(id),
        key: Key::from_random((id as u128).to_le_bytes()),
        version: 1,
        process,
        user: UserId(1),
        user_name: "alice".into(),
        state: JobState::Pending,
        priority,
        arguments: Arc::new(json!({"a": 1})),
        queue_item: None,
        robot: None,
        connect: None,
        attempt: 1,
        not_before: None,
        deadline: None,
        job_number: 1_000_000_000 + id,
        package_version: None,
        created_at: Timestamp(1_000 + id),
        started_at: None,
        ended_at: None,
        checkpoint: None,
        steps: 0,
        step_records: Vec::new(),
        outputs: None,
        error_code: None,
        reason: None,
        forced: false,
        retry: None,
        window_ms: None,
        triggered: false,
        pipeline_run: None,
        runs_pipeline: None,
        pinned: None,
    }
}

/// A queue item for tests: New, no reference.
pub fn sample_item(id: i64, process: ProcessId) -> QueueItem {
    QueueItem {
        id: QueueItemId(id),
        key: Key::from_random((id as u128 + 9_000).to_le_bytes()),
        version: 1,
        process,
        state: ItemState::New,
        priority: 0,
        reference: None,
        content: Arc::new(json!({})),
        retry_count: 0,
        retry_of: None,
        job: None,
        defer_until: None,
        deadline: None,
        created_at: Timestamp(0),
        ended_at: None,
        progress: None,
        output: None,
        shared_reference: None,
        risk_sla: None,
    }
}

/// A robot for tests.
pub fn sample_robot(id: i64, state: RobotState) -> Robot {
    Robot {
        id: RobotId(id),
        key: Key::from_random((id as u128 + 1_000_000).to_le_bytes()),
        version: 1,
        code: format!("robot-{id}").into(),
        profile: Arc::new(RobotProfile::default()),
        robot_version: None,
        state,
        connect: Some(key(id as u8)),
        job: None,
        last_seen: Timestamp(0),
        deadline: None,
        awaiting_heartbeat: false,
        node: None,
        extensions: false,
    }
}

/// A process for tests (default limits: `maxRunNum` 1), at version 1.
pub fn sample_process(id: i64) -> Process {
    Process {
        id: ProcessId(id),
        key: Key::from_random((id as u128 + 2_000_000).to_le_bytes()),
        version: 1,
        spec: Arc::new(ProcessSpec::new(format!("p{id}"), ProcessType::Unattended)),
        running: 0,
        day: 0,
        day_successes: 0,
        pending_items: 0,
        created_at: Timestamp(0),
    }
}

/// A user for tests.
pub fn sample_user(id: i64, name: &str) -> User {
    User {
        id: UserId(id),
        key: Key::from_random((id as u128 + 3_000_000).to_le_bytes()),
        version: 1,
        name: name.into(),
        password_hash: "x".into(),
        failed_logins: 0,
        first_failed_at: None,
        locked_at: None,
        locked: false,
        disabled: false,
        roles: BTreeSet::new(),
        grants: BTreeSet::new(),
        folders: BTreeSet::new(),
        created_at: Timestamp(0),
        directory: None,
    }
}

async fn put<S: Store>(s: &S, writes: Vec<Write>) -> StoreResult<()> {
    s.commit(Commit {
        writes,
        ..Commit::default()
    })
    .await
}

async fn ids_are_serial<S: Store>(s: S) {
    let a = s.next_id(IdKind::Job).await.unwrap();
    let b = s.next_id(IdKind::Job).await.unwrap();
    let r = s.next_id(IdKind::Robot).await.unwrap();
    assert!(b > a, "ids_are_serial: job ids increase");
    assert!(r >= 1, "ids_are_serial: robot ids start at 1 or more");
}

async fn versioned_commits<S: Store>(s: S) {
    let j = sample_job(1, ProcessId(1), 0);
    put(&s, vec![Write::Job(j.clone())]).await.unwrap();
    // A second insert of version 1 conflicts.
    assert_eq!(
        put(&s, vec![Write::Job(j.clone())]).await,
        Err(StoreError::Conflict),
        "versioned_commits: re-insert"
    );
    // Two writers read version 1; the first wins, the second conflicts.
    let mut a = j.clone();
    a.state = JobState::Running;
    a.version = 2;
    let mut b = j.clone();
    b.state = JobState::Canceled;
    b.version = 2;
    put(&s, vec![Write::Job(a)]).await.unwrap();
    assert_eq!(
        put(&s, vec![Write::Job(b)]).await,
        Err(StoreError::Conflict),
        "versioned_commits: lost update"
    );
    let got = s.job(JobId(1)).await.unwrap().unwrap();
    assert_eq!(
        (got.state, got.version),
        (JobState::Running, 2),
        "versioned_commits: the winner's write stands"
    );
    // Skipping a version conflicts too.
    let mut c = got.clone();
    c.version = 4;
    assert_eq!(
        put(&s, vec![Write::Job(c)]).await,
        Err(StoreError::Conflict),
        "versioned_commits: skipped version"
    );
}

async fn commits_are_atomic<S: Store>(s: S) {
    put(&s, vec![Write::Process(sample_process(1))]).await.unwrap();
    let mut p = sample_process(1);
    p.running = 5;
    p.version = 2;
    let stale_job = Job {
        version: 3,
        ..sample_job(9, ProcessId(1), 0)
    };
    let c = Commit {
        writes: vec![Write::Process(p), Write::Job(stale_job)],
        audit: vec![AuditDraft {
            at: Timestamp(1),
            actor: Actor::System,
            action: "x",
            subject: "y".into(),
            detail: String::new(),
            event: None,
        }],
        commands: vec![(
            RobotId(1),
            Command::Stop {
                run_instance_id: key(1),
            },
        )],
        clear_outbox: vec![],
    };
    assert_eq!(
        s.commit(c).await,
        Err(StoreError::Conflict),
        "commits_are_atomic: one stale write fails the commit"
    );
    assert_eq!(
        s.process(ProcessId(1)).await.unwrap().unwrap().running,
        0,
        "commits_are_atomic: nothing applied"
    );
    assert!(s.job(JobId(9)).await.unwrap().is_none(), "commits_are_atomic: no job");
    assert!(s.audit(0, 10).await.unwrap().is_empty(), "commits_are_atomic: no audit");
    assert!(
        s.take_commands(RobotId(1), usize::MAX).await.unwrap().is_empty(),
        "commits_are_atomic: no command"
    );
}

async fn unique_keys<S: Store>(s: S) {
    put(&s, vec![Write::record(&sample_user(1, "alice")).unwrap()])
        .await
        .unwrap();
    assert_eq!(
        put(&s, vec![Write::record(&sample_user(2, "alice")).unwrap()]).await,
        Err(StoreError::Duplicate("user name")),
        "unique_keys: user name"
    );
    put(&s, vec![Write::Robot(sample_robot(1, RobotState::Disconnected))])
        .await
        .unwrap();
    let mut twin = sample_robot(2, RobotState::Disconnected);
    twin.code = "robot-1".into();
    assert_eq!(
        put(&s, vec![Write::Robot(twin)]).await,
        Err(StoreError::Duplicate("robot id")),
        "unique_keys: robot code"
    );
    let item = |id: i64| QueueItem {
        reference: Some("INV-1".into()),
        ..sample_item(id, ProcessId(1))
    };
    put(&s, vec![Write::Item(item(1))]).await.unwrap();
    assert_eq!(
        put(&s, vec![Write::Item(item(2))]).await,
        Err(StoreError::Duplicate("queue item reference")),
        "unique_keys: item reference"
    );
    assert_eq!(
        s.item_by_reference(ProcessId(1), "INV-1").await.unwrap().map(|i| i.id),
        Some(QueueItemId(1))
    );
}

async fn dispatch_index<S: Store>(s: S) {
    let (p1, p2) = (ProcessId(1), ProcessId(2));
    let mut late = sample_job(4, p1, 0);
    late.not_before = Some(Timestamp(10_000));
    let mut running = sample_job(5, p1, 9);
    running.state = JobState::Running;
    put(
        &s,
        vec![
            Write::Job(sample_job(1, p1, 0)),
            Write::Job(sample_job(2, p1, 5)),
            Write::Job(sample_job(3, p2, 5)),
            Write::Job(late),
            Write::Job(running),
        ],
    )
    .await
    .unwrap();
    let next = |ps: Vec<ProcessId>| {
        let s = &s;
        async move { s.next_pending(&ps).await.unwrap().map(|j| j.id.0) }
    };
    assert_eq!(next(vec![p1]).await, Some(2), "dispatch_index: priority first");
    assert_eq!(
        next(vec![p1, p2]).await,
        Some(2),
        "dispatch_index: then oldest across processes"
    );
    assert_eq!(next(vec![p2]).await, Some(3));
    assert_eq!(next(vec![]).await, None);
    let heads = |ps: Vec<ProcessId>, n| {
        let s = &s;
        async move {
            let ids = s.pending_heads(&ps, n).await.unwrap();
            ids.into_iter().map(|j| j.0).collect::<Vec<_>>()
        }
    };
    assert_eq!(
        heads(vec![p1, p2], 10).await,
        vec![2, 3, 1],
        "dispatch_index: heads in dispatch order"
    );
    assert_eq!(
        heads(vec![p1, p2], 2).await,
        vec![2, 3],
        "dispatch_index: at most `limit` heads"
    );
    assert_eq!(heads(vec![p1], 1).await, vec![2]);
    assert!(heads(vec![], 5).await.is_empty());
    assert_eq!(
        s.pending_count(p1).await.unwrap(),
        2,
        "dispatch_index: backing-off and running jobs excluded"
    );
    let mut j2 = s.job(JobId(2)).await.unwrap().unwrap();
    j2.state = JobState::Running;
    j2.version += 1;
    put(&s, vec![Write::Job(j2)]).await.unwrap();
    assert_eq!(
        next(vec![p1]).await,
        Some(1),
        "dispatch_index: a started job leaves the index"
    );
    let mut j4 = s.job(JobId(4)).await.unwrap().unwrap();
    j4.not_before = None;
    j4.priority = 1;
    j4.version += 1;
    put(&s, vec![Write::Job(j4)]).await.unwrap();
    assert_eq!(
        next(vec![p1]).await,
        Some(4),
        "dispatch_index: a job whose back-off ended joins it"
    );
    // Jobs pinned to a robot: in their robot's index alone.
    let mut pinned = sample_job(10, p1, 50);
    pinned.pinned = Some(RobotId(7));
    let mut other = sample_job(11, p1, 60);
    other.pinned = Some(RobotId(7));
    put(&s, vec![Write::Job(pinned), Write::Job(other)]).await.unwrap();
    assert_eq!(
        next(vec![p1]).await,
        Some(4),
        "dispatch_index: pinned jobs are not everyone's"
    );
    assert_eq!(s.next_pinned(RobotId(7)).await.unwrap().map(|j| j.id.0), Some(11));
    assert_eq!(s.next_pinned(RobotId(8)).await.unwrap(), None);
    assert_eq!(s.pinned_robots().await.unwrap(), vec![RobotId(7)]);
    assert_eq!(
        s.pending_count(p1).await.unwrap(),
        4,
        "dispatch_index: pinned jobs are counted"
    );
    for id in [10, 11] {
        let mut j = s.job(JobId(id)).await.unwrap().unwrap();
        j.state = JobState::Running;
        j.version += 1;
        put(&s, vec![Write::Job(j)]).await.unwrap();
    }
    assert_eq!(s.next_pinned(RobotId(7)).await.unwrap(), None);
    assert!(s.pinned_robots().await.unwrap().is_empty());
    assert_eq!(s.pending_count(p1).await.unwrap(), 2);
}

async fn idle_robot_index<S: Store>(s: S) {
    let mut busy = sample_robot(2, RobotState::Busy);
    busy.job = Some(JobId(1));
    put(
        &s,
        vec![
            Write::Robot(sample_robot(1, RobotState::Available)),
            Write::Robot(busy),
            Write::Robot(sample_robot(3, RobotState::Available)),
            Write::Robot(sample_robot(4, RobotState::Disconnected)),
        ],
    )
    .await
    .unwrap();
    let ids = |v: Vec<Robot>| v.into_iter().map(|r| r.id.0).collect::<Vec<_>>();
    assert_eq!(
        ids(s.available_robots(None, 10).await.unwrap()),
        vec![1, 3],
        "idle_robot_index"
    );
    assert_eq!(
        ids(s.available_robots(Some(RobotId(1)), 10).await.unwrap()),
        vec![3],
        "idle_robot_index: paging"
    );
    assert_eq!(
        ids(s.available_robots(None, 1).await.unwrap()),
        vec![1],
        "idle_robot_index: limit"
    );
    let mut r1 = s.robot(RobotId(1)).await.unwrap().unwrap();
    r1.state = RobotState::Busy;
    r1.job = Some(JobId(2));
    r1.version += 1;
    put(&s, vec![Write::Robot(r1)]).await.unwrap();
    assert_eq!(
        ids(s.available_robots(None, 10).await.unwrap()),
        vec![3],
        "idle_robot_index: busy leaves"
    );
}

async fn deadline_index<S: Store>(s: S) {
    let mut j = sample_job(1, ProcessId(1), 0);
    j.not_before = Some(Timestamp(500));
    j.deadline = Some(Timestamp(900));
    let mut r = sample_robot(1, RobotState::Available);
    r.deadline = Some(Timestamp(700));
    let t = Token {
        hash: [9; 32],
        user: UserId(1),
        created_at: Timestamp(0),
        expires_at: Timestamp(800),
    };
    put(
        &s,
        vec![Write::Job(j.clone()), Write::Robot(r.clone()), Write::Token(t)],
    )
    .await
    .unwrap();
    assert_eq!(
        s.next_due().await.unwrap(),
        Some(Timestamp(500)),
        "deadline_index: earliest"
    );
    assert_eq!(
        s.due(Timestamp(499), 10).await.unwrap(),
        vec![],
        "deadline_index: nothing yet"
    );
    assert_eq!(
        s.due(Timestamp(1000), 10).await.unwrap(),
        vec![
            Due::JobReady(JobId(1)),
            Due::RobotSilent(RobotId(1)),
            Due::TokenExpired([9; 32]),
            Due::JobExpired(JobId(1))
        ],
        "deadline_index: in time order (sessions too)"
    );
    assert_eq!(
        s.due(Timestamp(1000), 1).await.unwrap().len(),
        1,
        "deadline_index: limit"
    );
    // A robot whose socket a node holds: that node keeps its deadline.
    r.node = Some(3);
    r.version += 1;
    put(&s, vec![Write::Robot(r.clone())]).await.unwrap();
    assert!(
        !s.due(Timestamp(1000), 10)
            .await
            .unwrap()
            .contains(&Due::RobotSilent(RobotId(1))),
        "deadline_index: a robot kept by its node"
    );
    r.node = None;
    j.state = JobState::Successful;
    j.not_before = None;
    j.version += 1;
    r.deadline = Some(Timestamp(2000));
    r.version += 1;
    put(&s, vec![Write::Job(j), Write::Robot(r), Write::RevokeToken([9; 32])])
        .await
        .unwrap();
    assert_eq!(
        s.due(Timestamp(1000), 10).await.unwrap(),
        vec![],
        "deadline_index: moved and cleared deadlines, a deleted session"
    );
    assert_eq!(s.next_due().await.unwrap(), Some(Timestamp(2000)));
}

async fn outbox<S: Store>(s: S) {
    let stop = |n| Command::Stop {
        run_instance_id: key(n),
    };
    let c = Commit {
        commands: vec![(RobotId(1), stop(1)), (RobotId(2), stop(2)), (RobotId(1), stop(3))],
        ..Commit::default()
    };
    s.commit(c).await.unwrap();
    assert_eq!(
        s.take_commands(RobotId(1), usize::MAX).await.unwrap(),
        vec![stop(1), stop(3)],
        "outbox: in order"
    );
    assert_eq!(
        s.take_commands(RobotId(1), usize::MAX).await.unwrap(),
        vec![],
        "outbox: taken once"
    );
    s.commit(Commit {
        commands: vec![(RobotId(3), stop(5)), (RobotId(3), stop(6))],
        ..Commit::default()
    })
    .await
    .unwrap();
    assert_eq!(
        s.take_commands(RobotId(3), 1).await.unwrap(),
        vec![stop(5)],
        "outbox: one at a time"
    );
    assert_eq!(
        s.take_commands(RobotId(3), 1).await.unwrap(),
        vec![stop(6)],
        "outbox: the rest stays"
    );
    let c = Commit {
        clear_outbox: vec![RobotId(2)],
        commands: vec![(RobotId(2), stop(4))],
        ..Commit::default()
    };
    s.commit(c).await.unwrap();
    assert_eq!(
        s.take_commands(RobotId(2), usize::MAX).await.unwrap(),
        vec![stop(4)],
        "outbox: cleared before new commands"
    );
}

async fn audit_chain<S: Store>(s: S) {
    for i in 0..3 {
        let d = |n: i32| AuditDraft {
            at: Timestamp(i64::from(n)),
            actor: Actor::User(UserId(1)),
            action: "t",
            subject: format!("s{n}").into(),
            detail: "d".into(),
            event: None,
        };
        s.commit(Commit {
            audit: vec![d(i * 2), d(i * 2 + 1)],
            ..Commit::default()
        })
        .await
        .unwrap();
    }
    let events = s.audit(0, 100).await.unwrap();
    assert_eq!(events.len(), 6, "audit_chain: every event kept");
    assert_eq!(audit::verify(&events), Ok(6), "audit_chain: verifies across commits");
    assert_eq!(
        s.audit(4, 100).await.unwrap().first().map(|e| e.seq),
        Some(5),
        "audit_chain: paging by seq"
    );
}

async fn domain_events<S: Store>(s: S) {
    let ended = |n: i64| {
        let mut j = sample_job(n, ProcessId(1), 0);
        j.state = JobState::Successful;
        j.outputs = Some(Arc::new(json!({"text": "it's \"$rpa$\" \\ \u{0} ünï 😀", "n": n})));
        events::job_ended(&j)
    };
    let draft = |n: i64, event: Option<&Event>| AuditDraft {
        at: Timestamp(n),
        actor: Actor::System,
        action: "t",
        subject: format!("job:{n}").into(),
        detail: String::new(),
        event: event.map(|e| Arc::new(e.clone())),
    };
    let with = |writes: Vec<Write>, audit: Vec<AuditDraft>| Commit {
        writes,
        audit,
        ..Commit::default()
    };
    let e1 = ended(1);
    s.commit(with(
        vec![Write::Job(sample_job(1, ProcessId(1), 0))],
        vec![draft(1, Some(&e1))],
    ))
    .await
    .unwrap();
    // A stale write: its event must not appear either.
    let stale = with(
        vec![Write::Job(sample_job(1, ProcessId(1), 0))],
        vec![draft(2, Some(&ended(2)))],
    );
    assert_eq!(
        s.commit(stale).await,
        Err(StoreError::Conflict),
        "domain_events: stale commit"
    );
    s.commit(with(vec![], vec![draft(3, None)])).await.unwrap();
    let e3 = ended(3);
    s.commit(with(vec![], vec![draft(4, Some(&e3))])).await.unwrap();
    let page = s.events(0, 100).await.unwrap();
    let seen: Vec<(u64, &Event)> = page.events.iter().map(|r| (r.seq, &r.event)).collect();
    assert_eq!(
        seen,
        vec![(1, &e1), (3, &e3)],
        "domain_events: committed events, in order, numbered by the chain, byte for byte"
    );
    assert_eq!(page.through, 3, "domain_events: the page reaches the chain's end");
    let page = s.events(1, 1).await.unwrap();
    assert!(
        page.events.is_empty(),
        "domain_events: an audit event without a domain event"
    );
    assert_eq!(page.through, 2, "domain_events: a page past events-less audit");
    assert_eq!(
        audit::verify(&s.audit(0, 100).await.unwrap()),
        Ok(3),
        "domain_events: the chain verifies"
    );

    // Cursors: versioned like entities, atomic with the rest of a commit.
    assert_eq!(
        s.get::<Cursor>("c").await.unwrap(),
        None,
        "domain_events: no cursor yet"
    );
    let at = |seq: u64, version: u64| {
        Write::record(&Cursor {
            name: "c".into(),
            seq,
            version,
        })
        .unwrap()
    };
    s.commit(with(vec![at(1, 1)], vec![])).await.unwrap();
    assert_eq!(
        s.commit(with(vec![at(3, 1)], vec![])).await,
        Err(StoreError::Conflict),
        "domain_events: two runners move one cursor"
    );
    let mut stale_job = sample_job(1, ProcessId(1), 0);
    stale_job.version = 5;
    assert_eq!(
        s.commit(with(vec![at(3, 2), Write::Job(stale_job)], vec![])).await,
        Err(StoreError::Conflict),
        "domain_events: a cursor moves with its commit or not at all"
    );
    assert_eq!(
        s.get::<Cursor>("c").await.unwrap().map(|c| c.seq),
        Some(1),
        "domain_events: cursor kept"
    );
    s.commit(with(vec![at(3, 2)], vec![])).await.unwrap();
    assert_eq!(
        s.get::<Cursor>("c").await.unwrap(),
        Some(Cursor {
            name: "c".into(),
            seq: 3,
            version: 2
        }),
        "domain_events: cursor moved"
    );
}

async fn job_window<S: Store>(s: S) {
    let p = ProcessId(1);
    let mut writes = Vec::new();
    for id in 1..=6 {
        let mut j = sample_job(id, p, 0);
        j.created_at = Timestamp(id * 100);
        if id % 2 == 0 {
            j.state = JobState::Successful;
        }
        writes.push(Write::Job(j));
    }
    writes.push(Write::Job(sample_job(7, ProcessId(2), 0)));
    put(&s, writes).await.unwrap();
    // Written later but created in between (clocks of two nodes differ).
    let mut late = sample_job(8, p, 0);
    late.created_at = Timestamp(250);
    put(&s, vec![Write::Job(late)]).await.unwrap();
    let q = |from, to, state, limit| JobQuery {
        process: p,
        from: Timestamp(from),
        to: Timestamp(to),
        state,
        limit,
    };
    let (total, jobs) = s.jobs_of_process(q(200, 500, None, 10)).await.unwrap();
    assert_eq!(total, 5, "job_window: inclusive window");
    assert_eq!(
        jobs.iter().map(|j| j.id.0).collect::<Vec<_>>(),
        vec![5, 4, 3, 8, 2],
        "job_window: newest first"
    );
    let (total, jobs) = s
        .jobs_of_process(q(0, 1000, Some(JobState::Successful), 2))
        .await
        .unwrap();
    assert_eq!(
        (total, jobs.len()),
        (3, 2),
        "job_window: total counts all, records limited"
    );
    assert_eq!(
        s.job_counts(p, Timestamp(200), Timestamp(500)).await.unwrap(),
        vec![(JobState::Pending, 3), (JobState::Successful, 2)],
        "job_window: counts by state in the window"
    );
    assert_eq!(
        s.job_counts(ProcessId(9), Timestamp(0), Timestamp(1000)).await.unwrap(),
        vec![],
        "job_window: no jobs, no counts"
    );
}

async fn item_lists<S: Store>(s: S) {
    let (p, q) = (sample_process(1), sample_process(2));
    let mut writes = vec![Write::Process(p.clone()), Write::Process(q.clone())];
    for id in 1..=5 {
        writes.push(Write::Item(sample_item(id, if id == 3 { q.id } else { p.id })));
    }
    put(&s, writes).await.unwrap();
    let ids = |v: Vec<QueueItem>| v.into_iter().map(|i| i.id.0).collect::<Vec<_>>();
    assert_eq!(
        ids(s.items_of_process(p.id, 10).await.unwrap()),
        [5, 4, 2, 1],
        "item_lists: newest first"
    );
    assert_eq!(
        ids(s.items_of_process(p.id, 2).await.unwrap()),
        [5, 4],
        "item_lists: limited"
    );
    assert_eq!(
        ids(s.items_of_process(q.id, 10).await.unwrap()),
        [3],
        "item_lists: by process"
    );
}

async fn logs_dropped<S: Store>(s: S) {
    let p = sample_process(1);
    let (a, b) = (sample_job(1, p.id, 0), sample_job(2, p.id, 0));
    let log = |id: i64, job: JobId| {
        Write::Log(RunLog {
            id: RunLogId(id),
            job,
            robot: RobotId(1),
            content: format!("line {id}"),
            screenshot: None,
            log_at: String::new(),
            level: LogLevel::Info,
            received_at: Timestamp(0),
        })
    };
    put(
        &s,
        vec![
            Write::Process(p),
            Write::Job(a.clone()),
            Write::Job(b.clone()),
            log(1, a.id),
            log(2, a.id),
            log(3, b.id),
        ],
    )
    .await
    .unwrap();
    put(&s, vec![Write::DropLogs(a.id)]).await.unwrap();
    assert!(
        s.logs(a.id).await.unwrap().is_empty(),
        "logs_dropped: the job's logs are gone"
    );
    assert_eq!(
        s.logs(b.id).await.unwrap().len(),
        1,
        "logs_dropped: other jobs keep theirs"
    );
    put(&s, vec![Write::DropLogs(a.id)]).await.unwrap();
}

async fn roles<S: Store>(s: S) {
    let role = |id: i64, name: &str| Role {
        id: RoleId(id),
        key: key(u8::try_from(id).unwrap_or(0) + 100),
        version: 1,
        name: name.into(),
        permissions: [Permission::ViewAudit].into_iter().collect(),
    };
    put(
        &s,
        vec![
            Write::record(&role(2, "auditor")).unwrap(),
            Write::record(&role(1, "operator")).unwrap(),
        ],
    )
    .await
    .unwrap();
    let names: Vec<String> = s.roles().await.unwrap().into_iter().map(|r| r.name).collect();
    assert_eq!(names, ["operator", "auditor"], "roles: every role, by id");
    assert_eq!(
        s.role_by_name("auditor").await.unwrap().map(|r| r.id),
        Some(RoleId(2)),
        "roles: by name"
    );
}

async fn lookups<S: Store>(s: S) {
    let p = sample_process(1);
    let j = sample_job(1, p.id, 0);
    let r = sample_robot(1, RobotState::Disconnected);
    let u = sample_user(1, "bob");
    let v = Vendor {
        id: VendorId(1),
        key: key(7),
        version: 1,
        code: "acme".into(),
        secret: "s3cret-s3cret".into(),
    };
    let t = Token {
        hash: [7; 32],
        user: u.id,
        created_at: Timestamp(0),
        expires_at: Timestamp(10),
    };
    put(
        &s,
        vec![
            Write::Process(p.clone()),
            Write::Job(j.clone()),
            Write::Robot(r.clone()),
            Write::record(&u).unwrap(),
            Write::Vendor(v.clone()),
            Write::Token(t.clone()),
        ],
    )
    .await
    .unwrap();
    assert_eq!(
        s.process_by_key(p.key).await.unwrap(),
        Some(p.clone()),
        "lookups: process by key"
    );
    assert_eq!(
        s.job_by_key(j.key).await.unwrap(),
        Some(j),
        "lookups: job by key round-trips every field"
    );
    assert_eq!(
        s.robot_by_code("robot-1").await.unwrap(),
        Some(r),
        "lookups: robot by code"
    );
    assert_eq!(s.user_by_name("bob").await.unwrap(), Some(u), "lookups: user by name");
    assert_eq!(s.vendor_by_code("acme").await.unwrap(), Some(v), "lookups: vendor");
    assert_eq!(s.token([7; 32]).await.unwrap(), Some(t), "lookups: token");
    put(&s, vec![Write::RevokeToken([7; 32])]).await.unwrap();
    assert_eq!(s.token([7; 32]).await.unwrap(), None, "lookups: revoked token");
    assert_eq!(s.processes().await.unwrap(), vec![p], "lookups: all processes");
}

/// Two engines on one store, racing: no job runs twice, `maxRunNum` holds.
fn sample_file(id: i64, personal_of: Option<&str>, version: u64) -> StoredFile {
    StoredFile {
        id: FileId(id),
        key: key(u8::try_from(id).unwrap_or(u8::MAX)),
        version,
        source: FileSource::File,
        name: format!("f{id}.txt"),
        size: 3,
        sha256: String::new(),
        owner: Actor::System,
        personal_of: personal_of.map(str::to_owned),
        job: None,
        created_at: Timestamp(1_000),
        purged_at: None,
    }
}

/// Record kinds (see [`crate::record`]): point reads, versions, selection
/// by an indexed column (null included), pages after a key, atomicity.
/// The full-text column of a kind: every word must start a word of the
/// text, best match first, within a column's selection; a change or a
/// removal leaves no stale match.
async fn full_text<S: Store>(s: S) {
    use crate::content::{Article, Draft, Section};
    use crate::record::{Records as _, Select, search_words};
    let article = |id: i64, section: Section, title: &str, body: &str, version: u64| Article {
        id,
        version,
        draft: Draft {
            section,
            title: title.into(),
            body: body.into(),
            tags: vec![],
            link: None,
        },
        author: "admin".into(),
        created_at: Timestamp(id),
        updated_at: Timestamp(id),
        removed: false,
    };
    let put = |a: Article| {
        let s = &s;
        async move {
            s.commit(Commit {
                writes: vec![Write::Record(crate::record::Row::of(&a).unwrap())],
                ..Commit::default()
            })
            .await
        }
    };
    put(article(
        1,
        Section::Knowledge,
        "Reading invoices with OCR",
        "Robots read scanned invoices.",
        1,
    ))
    .await
    .unwrap();
    put(article(
        2,
        Section::Knowledge,
        "Queues",
        "An invoice queue feeds robots; invoices invoices.",
        1,
    ))
    .await
    .unwrap();
    put(article(3, Section::News, "Invoice robots go live", "", 1))
        .await
        .unwrap();
    let found = |q: &str, select: Select| {
        let s = &s;
        let words = search_words(q);
        async move {
            s.search_for::<Article>(words, select)
                .await
                .unwrap()
                .into_iter()
                .map(|a| a.id)
                .collect::<Vec<_>>()
        }
    };
    let mut all = found("INVOICE", Select::all(10)).await;
    all.sort_unstable();
    assert_eq!(all, [1, 2, 3], "full text: a word starts words, any case");
    assert_eq!(
        found("invoice robots", Select::all(10)).await.len(),
        3,
        "full text: every word"
    );
    assert_eq!(
        found("ocr invoices", Select::all(10)).await,
        [1],
        "full text: all words must match"
    );
    assert_eq!(
        found("invoice", Select::only("section", "news", 10)).await,
        [3],
        "full text: within a selection"
    );
    assert_eq!(found("invoice", Select::all(1)).await.len(), 1, "full text: the limit");
    assert_eq!(found("payroll", Select::all(10)).await, Vec::<i64>::new());
    assert_eq!(
        found("\"*) OR (", Select::all(10)).await,
        Vec::<i64>::new(),
        "full text: no words, no rows"
    );
    put(article(
        1,
        Section::Knowledge,
        "Reading receipts",
        "Robots read scanned receipts.",
        2,
    ))
    .await
    .unwrap();
    assert_eq!(
        found("ocr", Select::all(10)).await,
        Vec::<i64>::new(),
        "full text: a change replaces the words"
    );
    assert_eq!(found("receipts", Select::all(10)).await, [1]);
    let mut removed = article(3, Section::News, "Invoice robots go live", "", 2);
    removed.removed = true;
    put(removed).await.unwrap();
    let mut left = found("invoice", Select::all(10)).await;
    left.sort_unstable();
    assert_eq!(left, [2], "full text: a removed article is not found");
}

async fn records<S: Store>(s: S) {
    use crate::record::{Cell, Select};
    let f = |id, owner, v| Write::record(&sample_file(id, owner, v)).unwrap();
    put(
        &s,
        vec![
            f(1, Some("ann"), 1),
            f(2, None, 1),
            f(3, Some("ann"), 1),
            f(4, Some("bo"), 1),
        ],
    )
    .await
    .unwrap();
    let one: Option<StoredFile> = s.get(key(1).to_string()).await.unwrap();
    assert_eq!(one, Some(sample_file(1, Some("ann"), 1)), "records: read back whole");
    assert_eq!(
        s.get::<StoredFile>(key(9).to_string()).await.unwrap(),
        None,
        "records: absent"
    );
    assert_eq!(
        put(&s, vec![f(1, None, 1)]).await,
        Err(StoreError::Conflict),
        "records: inserted twice"
    );
    assert_eq!(
        put(&s, vec![f(1, None, 3)]).await,
        Err(StoreError::Conflict),
        "records: a version skipped"
    );
    let mut stale = sample_job(7, ProcessId(1), 0);
    stale.version = 4;
    assert_eq!(
        put(&s, vec![f(1, None, 2), Write::Job(stale)]).await,
        Err(StoreError::Conflict),
        "records: a record moves with its commit or not at all"
    );
    put(&s, vec![f(1, Some("bo"), 2)]).await.unwrap();
    assert_eq!(
        s.get::<StoredFile>(key(1).to_string()).await.unwrap(),
        Some(sample_file(1, Some("bo"), 2)),
        "records: the second version replaces the first"
    );
    let ids = |v: Vec<StoredFile>| v.into_iter().map(|f| f.id.0).collect::<Vec<_>>();
    let mut ann = ids(s.list(Select::only("personal_of", "ann", 10)).await.unwrap());
    ann.sort_unstable();
    assert_eq!(ann, vec![3], "records: selected by a column, after a change of it");
    let mut bo = ids(s.list(Select::only("personal_of", "bo", 10)).await.unwrap());
    bo.sort_unstable();
    assert_eq!(bo, vec![1, 4], "records: selected by a column");
    let none = ids(s.list(Select::only("personal_of", Cell::Null, 10)).await.unwrap());
    assert_eq!(none, vec![2], "records: selected by a null column");
    let all = s.records(StoredFile::KIND, &Select::all(10)).await.unwrap();
    let keys: Vec<Cell> = all.iter().map(|r| r.key.clone()).collect();
    let mut sorted = keys.clone();
    sorted.sort();
    assert_eq!((keys.len(), &keys), (4, &sorted), "records: all, by key");
    let page = s
        .records(StoredFile::KIND, &Select::all(2).after(keys[1].clone()))
        .await
        .unwrap();
    let rest: Vec<Cell> = page.iter().map(|r| r.key.clone()).collect();
    assert_eq!(rest, keys[2..].to_vec(), "records: a page after a key");
    let bare = s
        .records(StoredFile::KIND, &Select::only("personal_of", "ann", 10).bare())
        .await
        .unwrap();
    let full = s
        .records(StoredFile::KIND, &Select::only("personal_of", "ann", 10))
        .await
        .unwrap();
    let shape = |rows: &[crate::record::Row]| -> Vec<(Cell, u64, Vec<Cell>)> {
        rows.iter()
            .map(|r| (r.key.clone(), r.version, r.cells.clone()))
            .collect()
    };
    assert_eq!(
        shape(&bare),
        shape(&full),
        "records: a bare selection has the same keys, versions and cells"
    );
    assert!(
        s.records(StoredFile::KIND, &Select::only("nope", 1, 1)).await.is_err(),
        "records: a column the kind does not index is refused"
    );

    // A unique column: a second row with the value is a duplicate, and a
    // row that gives the value up frees it.
    use crate::listener::{ListenerRequest, Queue};
    let req = |id: i64, source: &str, version: u64| ListenerRequest {
        id,
        version,
        message_id: format!("m{id}"),
        app_id: "app".into(),
        source_message_id: source.into(),
        process_name: "p".into(),
        profile: String::new(),
        user_name: String::new(),
        reference: String::new(),
        user: UserId(1),
        queue: Queue::Fallout,
        fault: None,
        job: None,
        job_key: None,
        wait: false,
        expiration_ms: 1,
        retries: 0,
        cool_off_ms: 0,
        request: Arc::new(json!({})),
        created_at: Timestamp(1),
    };
    let w = |r: ListenerRequest| Write::record(&r).unwrap();
    put(&s, vec![w(req(1, "x", 1))]).await.unwrap();
    assert_eq!(
        put(&s, vec![w(req(2, "x", 1))]).await,
        Err(StoreError::Duplicate("source message id")),
        "records: a unique column taken"
    );
    assert_eq!(
        s.find::<ListenerRequest>("source", crate::listener::source("app", "x"))
            .await
            .unwrap()
            .map(|r| r.id),
        Some(1),
        "records: found by a unique column"
    );
    put(&s, vec![w(req(1, "y", 2))]).await.unwrap();
    put(&s, vec![w(req(2, "x", 1))]).await.unwrap();
}

async fn engines_race<S: Store + Clone>(s: S) {
    let clock = ManualClock::new(Timestamp(1_700_000_000_000));
    let config = EngineConfig {
        password_cost: PasswordCost::TESTING,
        seed: Some(1),
        ..EngineConfig::default()
    };
    let a = Engine::new(s.clone(), Arc::new(clock.clone()), config.clone());
    let b = Engine::new(
        s.clone(),
        Arc::new(clock.clone()),
        EngineConfig {
            seed: Some(2),
            ..config
        },
    );
    let admin = a.ensure_admin("root", "pw").await.unwrap();
    let mut spec = ProcessSpec::new("race", ProcessType::Unattended);
    spec.max_run_num = 2;
    let p = a.create_process(Actor::System, spec).await.unwrap();
    a.grant(Actor::System, "root", p.key).await.unwrap();
    a.register_vendor(Actor::System, "acme", "vendor-secret").await.unwrap();
    let mut connects = Vec::new();
    for i in 0..4 {
        let code = format!("r{i}");
        let proof = crate::auth::supplier_proof("vendor-secret", &code);
        let reg = a.register_robot(&code, "acme", &proof, None).await.unwrap();
        a.heartbeat(&code, reg.connect, None).await.unwrap();
        connects.push((code, reg.connect));
    }
    let user = a
        .authenticate(&a.login("root", "pw").await.unwrap().token)
        .await
        .unwrap();
    let _ = admin;
    let starts = (0..10).map(|i| {
        let e = if i % 2 == 0 { &a } else { &b };
        let user = &user;
        async move { e.start_job(user, p.key, &json!({})).await.unwrap() }
    });
    let jobs = futures::future::join_all(starts).await;
    futures::future::join(a.dispatch_all(), b.dispatch_all())
        .await
        .0
        .unwrap();
    let check = || async {
        let p = s.process(p.id).await.unwrap().unwrap();
        let robots = s.robots().await.unwrap();
        let mut running = 0;
        for j in &jobs {
            let j = s.job(j.id).await.unwrap().unwrap();
            if j.state.is_active() {
                running += 1;
                let holders = robots.iter().filter(|r| r.job == Some(j.id)).count();
                assert_eq!(holders, 1, "engines_race: job {} held by {holders} robots", j.id);
            }
        }
        assert!(running <= 2, "engines_race: maxRunNum exceeded ({running})");
        assert_eq!(p.running, running, "engines_race: running counter matches");
        running
    };
    assert_eq!(check().await, 2, "engines_race: both slots used");
    // Finish everything, racing the two engines' reports and dispatches.
    for _ in 0..20 {
        let robots = s.robots().await.unwrap();
        let (s, a, b) = (&s, &a, &b);
        let finishes = robots.iter().filter_map(|r| {
            let job = r.job?;
            let (code, connect) = connects.iter().find(|(c, _)| **c == *r.code)?.clone();
            Some(async move {
                let j = s.job(job).await.unwrap().unwrap();
                let e = if job.0 % 2 == 0 { a } else { b };
                let _ = e
                    .report_finish(&code, connect, j.key, crate::job::FinishStatus::Success, None, None)
                    .await;
            })
        });
        futures::future::join_all(finishes).await;
        futures::future::join(a.dispatch_all(), b.dispatch_all())
            .await
            .0
            .unwrap();
        check().await;
    }
    for j in &jobs {
        assert_eq!(
            s.job(j.id).await.unwrap().unwrap().state,
            JobState::Successful,
            "engines_race: every job done once"
        );
    }
    assert_eq!(
        a.verify_audit().await.unwrap(),
        Ok(s.audit(0, usize::MAX).await.unwrap().len() as u64)
    );
}

/// Process counters change without conflicts between counting commits, and never past a limit.
async fn counts<S: Store>(s: S) {
    let mut p = sample_process(1);
    let spec = Arc::make_mut(&mut p.spec);
    spec.max_run_num = 2;
    spec.max_day_num = 3;
    spec.max_pending_items = 1;
    let stale = p.clone();
    s.commit(Commit {
        writes: vec![Write::Process(p.clone())],
        ..Commit::default()
    })
    .await
    .unwrap();
    let c = |running, pending_items, successes, day, limit_pending| Counts {
        process: p.id,
        running,
        pending_items,
        successes,
        day,
        limit_pending,
    };
    let commit = |c: Counts, more: Vec<Write>| {
        let mut writes = vec![Write::Counts(c)];
        writes.extend(more);
        s.commit(Commit {
            writes,
            ..Commit::default()
        })
    };
    // Two starts counted from the same snapshot: both land.
    commit(c(1, 0, 0, 10, false), vec![]).await.unwrap();
    commit(c(1, 0, 0, 10, false), vec![]).await.unwrap();
    let now = s.process(p.id).await.unwrap().unwrap();
    assert_eq!(now.running, 2, "counts: both counted");
    // A third passes maxRunNum: refused, and nothing of its commit is written.
    let job = sample_job(7, p.id, 0);
    assert_eq!(
        commit(c(1, 0, 0, 10, false), vec![Write::Job(job.clone())]).await,
        Err(StoreError::Conflict),
        "counts: maxRunNum holds"
    );
    assert!(
        s.job(job.id).await.unwrap().is_none(),
        "counts: a refused commit writes nothing"
    );
    // A whole-process write from a snapshot taken before the counts never
    // loses them: refused (the counts bumped the version) or written
    // without touching them (a store that keeps counters apart).
    let mut edit = stale;
    edit.version += 1;
    let wrote = s
        .commit(Commit {
            writes: vec![Write::Process(edit)],
            ..Commit::default()
        })
        .await;
    assert!(
        matches!(wrote, Ok(()) | Err(StoreError::Conflict)),
        "counts: a stale definition write: {wrote:?}"
    );
    assert_eq!(
        s.process(p.id).await.unwrap().unwrap().running,
        2,
        "counts: a definition written from an older snapshot keeps the counts"
    );
    // A success frees a slot and counts for the day; a hand-over in the same
    // commit may not pass maxDayNum (successes today + running).
    commit(c(-1, 0, 1, 10, false), vec![]).await.unwrap();
    commit(c(-1, 0, 1, 10, false), vec![]).await.unwrap();
    commit(c(1, 0, 0, 10, false), vec![]).await.unwrap();
    let now = s.process(p.id).await.unwrap().unwrap();
    assert_eq!((now.running, now.successes_on(10)), (1, 2));
    assert_eq!(
        commit(c(-1, 0, 1, 10, false), vec![]).await,
        Ok(()),
        "counts: a finish is never refused, not even the day's last success"
    );
    assert_eq!(
        commit(c(1, 0, 0, 10, false), vec![]).await,
        Err(StoreError::Conflict),
        "counts: maxDayNum holds"
    );
    commit(c(1, 0, 0, 11, false), vec![]).await.unwrap();
    let now = s.process(p.id).await.unwrap().unwrap();
    assert_eq!(
        (now.day, now.successes_on(11), now.running),
        (11, 0, 1),
        "counts: a new day starts at zero"
    );
    // New queue items are held to the limit; a retried item is not.
    commit(c(0, 1, 0, 11, true), vec![]).await.unwrap();
    assert_eq!(
        commit(c(0, 1, 0, 11, true), vec![]).await,
        Err(StoreError::Conflict),
        "counts: max pending items holds for new items"
    );
    commit(c(0, 1, 0, 11, false), vec![]).await.unwrap();
    assert_eq!(
        s.process(p.id).await.unwrap().unwrap().pending_items,
        2,
        "counts: a retry is counted"
    );
}

/// Many counting commits at once, which a store may write in one group:
/// every commit that stands counts and none that is refused does, even
/// when its counters were applied before the write that refused it;
/// `maxRunNum` holds across them; the process then reads at the version a
/// whole-process write follows.
async fn counts_at_once<S: Store + Clone>(s: S) {
    let mut p = sample_process(1);
    Arc::make_mut(&mut p.spec).max_run_num = 25;
    let mut writes = vec![Write::Process(p.clone())];
    writes.extend((1..=40).map(|i| Write::Job(sample_job(i, p.id, 0))));
    s.commit(Commit {
        writes,
        ..Commit::default()
    })
    .await
    .unwrap();
    let start = |id: i64| {
        let s = s.clone();
        async move {
            let mut j = sample_job(id, ProcessId(1), 0);
            j.state = JobState::Running;
            j.version = 2;
            let counts = Counts {
                process: ProcessId(1),
                running: 1,
                pending_items: 0,
                successes: 0,
                day: 10,
                limit_pending: false,
            };
            s.commit(Commit {
                writes: vec![Write::Counts(counts), Write::Job(j)],
                ..Commit::default()
            })
            .await
        }
    };
    // 10 starts of job 1 first (one stands, and the others are refused by
    // the job's version after their counters), then 40 of distinct jobs.
    let starts = std::iter::repeat_n(1, 10).chain(1..=40).map(start);
    let results = futures::future::join_all(starts).await;
    assert!(
        results.iter().all(|r| matches!(r, Ok(()) | Err(StoreError::Conflict))),
        "counts_at_once: refused as conflicts: {results:?}"
    );
    let stood = results.iter().filter(|r| r.is_ok()).count();
    assert_eq!(stood, 25, "counts_at_once: maxRunNum holds across commits at once");
    let mut running = 0;
    for i in 1..=40 {
        if s.job(JobId(i)).await.unwrap().unwrap().state == JobState::Running {
            running += 1;
        }
    }
    assert_eq!(running, 25, "counts_at_once: the jobs of the commits that stood");
    let now = s.process(p.id).await.unwrap().unwrap();
    assert_eq!(now.running, 25, "counts_at_once: counted once per commit that stood");
    let mut edit = now.clone();
    edit.version += 1;
    s.commit(Commit {
        writes: vec![Write::Process(edit)],
        ..Commit::default()
    })
    .await
    .expect("counts_at_once: a definition written from the process as read");
    assert_eq!(
        s.process(p.id).await.unwrap().unwrap().running,
        25,
        "counts_at_once: the counters outlive the definition write"
    );
}

/// A lease has one holder at a time; it passes on only once expired; its
/// holder is known until then.
async fn lease<S: Store>(s: S) {
    let t = Timestamp(1_000);
    assert!(
        s.lease("l", 1, t, Timestamp(2_000)).await.unwrap(),
        "lease: a free lease is taken"
    );
    assert!(
        !s.lease("l", 2, t, Timestamp(3_000)).await.unwrap(),
        "lease: a held lease is refused"
    );
    assert!(
        s.lease("other", 2, t, Timestamp(3_000)).await.unwrap(),
        "lease: leases are separate"
    );
    assert!(
        s.lease("l", 1, Timestamp(1_500), Timestamp(2_500)).await.unwrap(),
        "lease: the holder renews"
    );
    assert!(
        !s.lease("l", 2, Timestamp(2_500), Timestamp(4_000)).await.unwrap(),
        "lease: the renewal counts"
    );
    assert!(
        s.lease("l", 2, Timestamp(2_501), Timestamp(4_000)).await.unwrap(),
        "lease: an expired lease passes"
    );
    assert!(
        !s.lease("l", 1, Timestamp(2_600), Timestamp(5_000)).await.unwrap(),
        "lease: the old holder lost it"
    );
    let racers = (10..20).map(|h| s.lease("race", h, t, Timestamp(2_000)));
    let won = futures::future::join_all(racers)
        .await
        .into_iter()
        .filter(|r| *r.as_ref().unwrap())
        .count();
    assert_eq!(won, 1, "lease: one of ten racers takes a free lease");

    // Who holds a lease, as a node asks whether another still lives.
    assert_eq!(
        s.lease_holder("l", Timestamp(3_000)).await.unwrap(),
        Some(2),
        "lease: its holder"
    );
    assert_eq!(
        s.lease_holder("l", Timestamp(4_000)).await.unwrap(),
        Some(2),
        "lease: held until its end"
    );
    assert_eq!(
        s.lease_holder("l", Timestamp(4_001)).await.unwrap(),
        None,
        "lease: no holder once it ran out"
    );
    assert_eq!(
        s.lease_holder("none", t).await.unwrap(),
        None,
        "lease: no holder of a lease never taken"
    );

    // The live members of a family, as a node asks which nodes live.
    for (name, holder, until) in [
        ("fam:1", 1, 5_000),
        ("fam:2", 2, 6_000),
        ("fam:3", 3, 3_000),
        ("family", 9, 9_000),
    ] {
        assert!(s.lease(name, holder, Timestamp(2_000), Timestamp(until)).await.unwrap());
    }
    assert!(s.lease("fa%:4", 4, Timestamp(2_000), Timestamp(9_000)).await.unwrap());
    let mut live = s.lease_holders("fam:", Timestamp(4_000)).await.unwrap();
    live.sort_unstable();
    assert_eq!(live, [1, 2], "lease: the holders of a family's live leases");
    let mut live = s.lease_holders("fa%:", Timestamp(4_000)).await.unwrap();
    live.sort_unstable();
    assert_eq!(live, [4], "lease: a family's prefix is matched literally");
    assert!(s.lease_holders("fam:", Timestamp(6_001)).await.unwrap().is_empty());
}

/// Two engines on one store tick: a silent robot's timeout is handled by
/// the lease holder only, and the other engine takes over once the holder stops.
async fn timers_fire_once<S: Store + Clone>(s: S) {
    let clock = ManualClock::new(Timestamp(1_700_000_000_000));
    let config = |node| EngineConfig {
        password_cost: PasswordCost::TESTING,
        node: Some(node),
        timer_lease_ms: 60_000,
        heartbeat_timeout_ms: 30_000,
        ..EngineConfig::default()
    };
    let a = Engine::new(s.clone(), Arc::new(clock.clone()), config(1));
    let b = Engine::new(s.clone(), Arc::new(clock.clone()), config(2));
    a.register_vendor(Actor::System, "acme", "vendor-secret").await.unwrap();
    for code in ["r0", "r1"] {
        let proof = crate::auth::supplier_proof("vendor-secret", code);
        let reg = a.register_robot(code, "acme", &proof, None).await.unwrap();
        a.heartbeat(code, reg.connect, None).await.unwrap();
    }
    assert!(a.tick().await.unwrap().leader, "timers: the first engine to tick leads");
    clock.advance(31_000);
    let b_tick = b.tick().await.unwrap();
    assert!(
        !b_tick.leader,
        "timers: a second engine does not lead while the lease holds"
    );
    assert_eq!(b_tick.robots_timed_out, 0, "timers: a follower fires nothing");
    let robot = s.robot_by_code("r0").await.unwrap().unwrap();
    assert_eq!(
        robot.state,
        RobotState::Available,
        "timers: the follower left the robot alone"
    );
    let a_tick = a.tick().await.unwrap();
    assert_eq!(a_tick.robots_timed_out, 2, "timers: the leader fires both timeouts");
    // The leader stops ticking; once its lease runs out the follower leads.
    let proof = crate::auth::supplier_proof("vendor-secret", "r0");
    let reg = b.register_robot("r0", "acme", &proof, None).await.unwrap();
    b.heartbeat("r0", reg.connect, None).await.unwrap();
    clock.advance(5_000);
    assert!(
        !b.tick().await.unwrap().leader,
        "timers: the lease outlives a short pause"
    );
    clock.advance(56_000);
    let b_tick = b.tick().await.unwrap();
    assert!(b_tick.leader, "timers: the follower takes over an expired lease");
    assert_eq!(b_tick.robots_timed_out, 1, "timers: the new leader fires the timeout");
}

#[cfg(test)]
mod tests {
    #[test]
    fn memory_store_conforms() {
        futures::executor::block_on(super::run(|| async { crate::MemoryStore::new() }));
    }
}
