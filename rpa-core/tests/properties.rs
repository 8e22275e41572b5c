//! Property tests: random event sequences never break a state machine's invariants.

use std::sync::Arc;

use proptest::prelude::*;
use rpa_core::ids::*;
use rpa_core::job::{self, FinishStatus, JobCtx, JobEvent, Slot, StopStrategy};
use rpa_core::model::*;
use rpa_core::queue::{self, ItemEvent};
use rpa_core::robot::{self, RobotEvent};
use rpa_core::{Key, Timestamp};
use serde_json::json;

const R1: RobotId = RobotId(1);
const R2: RobotId = RobotId(2);

fn job_event() -> impl Strategy<Value = JobEvent> {
    let robot = prop_oneof![Just(R1), Just(R2)];
    let status = prop_oneof![
        Just(FinishStatus::Success),
        Just(FinishStatus::Cancelled),
        Just(FinishStatus::Failed)
    ];
    prop_oneof![
        robot.clone().prop_map(|robot| JobEvent::Dispatch {
            robot,
            connect: Key([1; 16])
        }),
        (robot, status, prop::option::of(prop_oneof![Just(500), Just(20_001)])).prop_map(
            |(robot, status, error_code)| JobEvent::Finish {
                robot,
                status,
                error_code,
                outputs: None
            }
        ),
        Just(JobEvent::Stop(StopStrategy::SoftStop)),
        Just(JobEvent::Stop(StopStrategy::Kill)),
        Just(JobEvent::RobotLost),
        Just(JobEvent::Expire),
        Just(JobEvent::Checkpoint(Some(Arc::new(json!({"n": 1}))), None)),
        Just(JobEvent::Ready),
    ]
}

fn new_job() -> Job {
    Job {
        id: JobId(1),
        key: Key([1; 16]),
        version: 1,
        process: ProcessId(1),
        user: UserId(1),
        user_name: "u".into(),
        state: JobState::Pending,
        priority: 0,
        arguments: Arc::new(json!({})),
        queue_item: None,
        robot: None,
        connect: None,
        attempt: 1,
        not_before: None,
        deadline: None,
        job_number: 1,
        package_version: None,
        created_at: Timestamp(0),
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

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn job_sequences_keep_their_invariants(events in prop::collection::vec(job_event(), 0..40), retries in 0u32..3, queue in any::<bool>()) {
        let policy = RetryPolicy { max_retries: retries, backoff_ms: 10, backoff_max_ms: 100 };
        let mut j = new_job();
        let mut slots: i32 = 0;
        let mut successes = 0;
        let mut ended = false;
        for (t, ev) in events.into_iter().enumerate() {
            let before = j.clone();
            let ctx = JobCtx { now: Timestamp(t as i64), retry: &policy, retry_failures: !queue };
            match job::apply(&mut j, ev, ctx) {
                Err(_) => prop_assert_eq!(&j, &before, "a rejected event changed the job"),
                Ok(fx) => {
                    if before.state.is_terminal() {
                        prop_assert_eq!(j.state, before.state, "a terminal state changed");
                        prop_assert!(!fx.changed);
                    }
                    slots += match fx.slot { Slot::Take => 1, Slot::Free => -1, Slot::Keep => 0 };
                    successes += i32::from(fx.succeeded);
                    if fx.ended.is_some() {
                        prop_assert!(!ended, "ended twice");
                        ended = true;
                        prop_assert!(j.state.is_terminal());
                    }
                }
            }
            prop_assert_eq!(slots, i32::from(j.state.is_active()), "slot accounting matches the state");
            prop_assert!(successes <= 1, "counted towards maxDayNum twice");
            prop_assert!(j.attempt <= 1 + retries, "more attempts than the policy allows");
            prop_assert_eq!(ended, j.state.is_terminal());
            if j.state.is_active() {
                prop_assert!(j.robot.is_some(), "a running job has a robot");
            }
        }
    }

    #[test]
    fn item_terminal_states_are_final(events in prop::collection::vec(0u8..7, 0..20)) {
        let mut item = QueueItem {
            id: QueueItemId(1), key: Key([2; 16]), version: 1, process: ProcessId(1), state: ItemState::New,
            priority: 0, reference: None, content: Arc::new(json!({})), retry_count: 0, retry_of: None, job: None,
            defer_until: None, deadline: None, created_at: Timestamp(0), ended_at: None, progress: None, output: None,
            shared_reference: None,
            risk_sla: None,
        };
        for e in events {
            let ev = [ItemEvent::Start(JobId(1)), ItemEvent::Succeed, ItemEvent::Fail, ItemEvent::Abandon, ItemEvent::Delete, ItemEvent::Retry, ItemEvent::Take][e as usize];
            let before = item.clone();
            match queue::apply(&mut item, ev, Timestamp(1)) {
                Err(_) => prop_assert_eq!(&item, &before),
                Ok(()) => prop_assert!(!before.state.is_terminal(), "left a terminal state"),
            }
        }
    }

    #[test]
    fn robot_states_agree_with_their_job(events in prop::collection::vec(0u8..6, 0..40), steps in prop::collection::vec(0u64..20_000, 40)) {
        let mut r = Robot {
            id: R1, key: Key([3; 16]), version: 1, code: "r".into(), profile: Arc::new(RobotProfile::default()),
            robot_version: None, state: RobotState::Disconnected, connect: None, job: None,
            last_seen: Timestamp(0), deadline: None, awaiting_heartbeat: false, node: None, extensions: false,
        };
        let mut now = 0i64;
        for (i, e) in events.into_iter().enumerate() {
            now += steps[i % steps.len()] as i64;
            let ev = match e {
                0 => RobotEvent::Register(Key([i as u8; 16])),
                1 => RobotEvent::Heartbeat,
                2 => RobotEvent::Assign(JobId(i as i64)),
                3 => RobotEvent::Release,
                4 => RobotEvent::Timeout,
                _ => RobotEvent::Close,
            };
            let before = r.clone();
            if robot::apply(&mut r, ev, Timestamp(now), 30_000).is_err() {
                prop_assert_eq!(&r, &before);
            }
            match r.state {
                RobotState::Available => prop_assert!(r.job.is_none()),
                RobotState::Busy => prop_assert!(r.job.is_some()),
                RobotState::Unresponsive => prop_assert!(r.job.is_none(), "a timed-out robot gave its job back"),
                RobotState::Disconnected => prop_assert!(r.connect.is_none()),
            }
            if r.state != RobotState::Disconnected {
                prop_assert!(r.connect.is_some());
            }
        }
    }
}
