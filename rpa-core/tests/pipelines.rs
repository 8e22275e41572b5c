//! Pipelines through the engine (memory store, manual clock): a diamond
//! that passes outputs, a failing branch under each policy, stopping,
//! rerunning, a limit refusing a step, bad definitions.

mod common;

use common::*;
use rpa_core::error::Error;
use rpa_core::events::Event;
use rpa_core::job::FinishStatus;
use rpa_core::model::*;
use rpa_core::pipeline::{PipelineDef, PipelineRun, RunState, StepState};
use rpa_core::store::prelude::*;
use rpa_core::transport::Command;
use serde_json::{Map, Value, json};

fn world() -> World {
    let mut w = World::new();
    for (name, arg, t) in [
        ("extract", Some("month"), ArgType::String),
        ("enter", Some("invoice"), ArgType::Int),
        ("report", Some("count"), ArgType::Int),
        ("close", None, ArgType::Other),
    ] {
        w.process(|s| {
            s.name = name.into();
            s.max_run_num = 0;
            if let Some(a) = arg {
                s.arguments.push(ArgumentSpec {
                    name: a.into(),
                    id: a.into(),
                    arg_type: t,
                    required: true,
                    secret: false,
                });
            }
        });
    }
    w
}

fn month_end(report_policy: &str) -> PipelineDef {
    serde_json::from_value(json!({
        "name": "month end", "inputs": ["month"],
        "steps": [
            {"name": "extract", "process": "extract", "arguments": {"month": "${inputs.month}"}, "outputs": ["invoice_id", "count"]},
            {"name": "enter", "process": "enter", "arguments": {"invoice": "${steps.extract.outputs.invoice_id}"}},
            {"name": "report", "process": "report", "arguments": {"count": "${steps.extract.outputs.count}"}, "onFailure": report_policy},
            {"name": "close", "process": "close", "after": ["enter", "report"]}
        ]
    }))
    .unwrap()
}

fn start(w: &World, def: PipelineDef) -> PipelineRun {
    let p = block(w.engine.save_pipeline(Actor::System, def)).unwrap();
    let admin = block(w.engine.store().user_by_name("admin")).unwrap().unwrap();
    let mut inputs = Map::new();
    if p.plan.def.inputs.iter().any(|i| i == "month") {
        inputs.insert("month".into(), json!("2026-11"));
    }
    block(w.engine.start_pipeline(Actor::User(admin.id), &admin, p.id, inputs)).unwrap()
}

fn run(w: &World, r: &PipelineRun) -> PipelineRun {
    block(w.engine.pipeline_run(r.id)).unwrap()
}

/// The robot running step `step` of `r`, and what its Execute said.
fn holder<'a>(w: &World, bots: &'a [Bot], r: &PipelineRun, step: usize) -> (&'a Bot, Job) {
    let job = block(w.engine.store().job(run(w, r).steps[step].job.expect("step started")))
        .unwrap()
        .unwrap();
    let bot = bots
        .iter()
        .find(|b| w.robot(b).job == Some(job.id))
        .expect("a robot runs it");
    (bot, job)
}

fn finish(w: &World, b: &Bot, j: &Job, status: FinishStatus, outputs: Option<Value>) {
    block(w.engine.report_finish(&b.code, b.connect, j.key, status, None, outputs)).unwrap();
}

fn states(r: &PipelineRun) -> Vec<StepState> {
    r.steps.iter().map(|s| s.state).collect()
}

#[test]
fn a_diamond_runs_branches_together_and_passes_outputs() {
    let w = world();
    let bots: Vec<Bot> = (0..3).map(|i| w.connect(&format!("r{i}"))).collect();
    let r = start(&w, month_end("stop"));
    use StepState::*;
    assert_eq!(states(&run(&w, &r)), [Running, Waiting, Waiting, Waiting]);
    let (b, j) = holder(&w, &bots, &r, 0);
    assert_eq!(j.arguments.as_ref(), &json!({"month": "2026-11"}));
    assert_eq!(j.pipeline_run, Some(r.id));
    finish(
        &w,
        b,
        &j,
        FinishStatus::Success,
        Some(json!({"invoice_id": "42", "count": 3})),
    );
    assert_eq!(states(&run(&w, &r)), [Successful, Running, Running, Waiting]);
    let (b1, j1) = holder(&w, &bots, &r, 1);
    assert_eq!(j1.arguments.as_ref(), &json!({"invoice": 42}), "typed by the process");
    let (b2, j2) = holder(&w, &bots, &r, 2);
    assert_eq!(j2.arguments.as_ref(), &json!({"count": 3}));
    finish(&w, b1, &j1, FinishStatus::Success, None);
    assert_eq!(run(&w, &r).steps[3].state, Waiting, "close waits for report too");
    finish(&w, b2, &j2, FinishStatus::Success, None);
    let (b3, j3) = holder(&w, &bots, &r, 3);
    finish(&w, b3, &j3, FinishStatus::Success, None);
    let done = run(&w, &r);
    assert_eq!(done.state, RunState::Successful);
    assert!(done.ended_at.is_some());
    let events = block(w.engine.events(0, 1000)).unwrap().events;
    let ended: Vec<_> = events
        .iter()
        .filter_map(|e| match &e.event {
            Event::PipelineRunEnded { run, state, .. } => Some((*run, *state)),
            _ => None,
        })
        .collect();
    assert_eq!(ended, [(r.id, RunState::Successful)]);
    w.audit_ok();
}

#[test]
fn a_failing_step_that_stops_the_run_stops_its_sibling_and_a_rerun_reuses_outputs() {
    let w = world();
    let bots: Vec<Bot> = (0..3).map(|i| w.connect(&format!("r{i}"))).collect();
    let r = start(&w, month_end("stop"));
    let (b, j) = holder(&w, &bots, &r, 0);
    finish(
        &w,
        b,
        &j,
        FinishStatus::Success,
        Some(json!({"invoice_id": 7, "count": 1})),
    );
    let (b1, j1) = holder(&w, &bots, &r, 1);
    let (b2, j2) = holder(&w, &bots, &r, 2);
    w.commands(b2);
    // enter fails (a business error: no retry): report's job is told to stop.
    block(
        w.engine
            .report_finish(&b1.code, b1.connect, j1.key, FinishStatus::Failed, Some(20_001), None),
    )
    .unwrap();
    assert!(
        w.commands(b2)
            .iter()
            .any(|c| matches!(c, Command::Stop { run_instance_id } if *run_instance_id == j2.key)),
        "the sibling is stopped"
    );
    use StepState::*;
    assert_eq!(states(&run(&w, &r)), [Successful, Faulted, Running, Skipped]);
    assert_eq!(run(&w, &r).state, RunState::Running, "until the sibling stopped");
    finish(&w, b2, &j2, FinishStatus::Cancelled, None);
    let ended = run(&w, &r);
    assert_eq!(ended.state, RunState::Faulted);
    assert_eq!(states(&ended), [Successful, Faulted, Faulted, Skipped]);

    let admin = block(w.engine.store().user_by_name("admin")).unwrap().unwrap();
    let again = block(w.engine.rerun_pipeline(Actor::User(admin.id), &admin, r.id)).unwrap();
    assert_eq!(again.rerun_of, Some(r.id));
    assert_eq!(states(&run(&w, &again)), [Successful, Running, Running, Waiting]);
    assert!(run(&w, &again).steps[0].reused);
    let (_, j1) = holder(&w, &bots, &again, 1);
    assert_eq!(j1.arguments.as_ref(), &json!({"invoice": 7}), "extract's output reused");
    for i in 1..=3 {
        let (b, j) = holder(&w, &bots, &again, i);
        finish(&w, b, &j, FinishStatus::Success, None);
    }
    assert_eq!(run(&w, &again).state, RunState::Successful);
    let e = block(w.engine.rerun_pipeline(Actor::User(admin.id), &admin, again.id)).unwrap_err();
    assert!(matches!(e, Error::InvalidArgument(m) if m.contains("nothing to rerun")));
    w.audit_ok();
}

#[test]
fn a_failing_branch_that_continues_lets_the_other_branch_finish() {
    let w = world();
    let bots: Vec<Bot> = (0..3).map(|i| w.connect(&format!("r{i}"))).collect();
    let r = start(&w, month_end("continue"));
    let (b, j) = holder(&w, &bots, &r, 0);
    finish(
        &w,
        b,
        &j,
        FinishStatus::Success,
        Some(json!({"invoice_id": 7, "count": 1})),
    );
    let (b1, j1) = holder(&w, &bots, &r, 1);
    let (b2, j2) = holder(&w, &bots, &r, 2);
    block(
        w.engine
            .report_finish(&b2.code, b2.connect, j2.key, FinishStatus::Failed, Some(20_001), None),
    )
    .unwrap();
    use StepState::*;
    assert_eq!(states(&run(&w, &r)), [Successful, Running, Faulted, Skipped]);
    finish(&w, b1, &j1, FinishStatus::Success, None);
    let ended = run(&w, &r);
    assert_eq!(
        (ended.state, states(&ended)),
        (RunState::Faulted, vec![Successful, Successful, Faulted, Skipped])
    );
}

#[test]
fn a_stopped_run_stops_its_jobs_and_ends_stopped() {
    let w = world();
    let bots: Vec<Bot> = (0..1).map(|i| w.connect(&format!("r{i}"))).collect();
    let r = start(&w, month_end("stop"));
    let (b, j) = holder(&w, &bots, &r, 0);
    w.commands(b);
    let stopping = block(w.engine.stop_pipeline_run(Actor::System, r.id)).unwrap();
    assert_eq!(stopping.state, RunState::Running);
    assert!(w.commands(b).iter().any(|c| matches!(c, Command::Stop { .. })));
    finish(&w, b, &j, FinishStatus::Cancelled, None);
    let ended = run(&w, &r);
    use StepState::*;
    assert_eq!(
        (ended.state, states(&ended)),
        (RunState::Stopped, vec![Stopped, Skipped, Skipped, Skipped])
    );
    assert!(block(w.engine.stop_pipeline_run(Actor::System, r.id)).is_err());
}

#[test]
fn a_step_a_limit_refuses_fails_with_the_reason() {
    let mut w = world();
    let capped = w.process(|s| {
        s.name = "capped".into();
        s.max_day_num = 1;
    });
    let bot = w.connect("r");
    let def: PipelineDef = serde_json::from_value(json!({"name": "once a day", "steps": [
        {"name": "a", "process": "capped"},
        {"name": "b", "process": "close", "after": ["a"]}]}))
    .unwrap();
    let r = start(&w, def.clone());
    let j = block(w.engine.store().job(run(&w, &r).steps[0].job.unwrap()))
        .unwrap()
        .unwrap();
    assert_eq!(j.process, capped.id);
    finish(&w, &bot, &j, FinishStatus::Success, None);
    // The day's one run is used: the next run's first step is refused, and the run ends.
    let r2 = start(&w, def);
    let ended = run(&w, &r2);
    assert_eq!(ended.state, RunState::Faulted);
    assert_eq!(states(&ended), [StepState::Faulted, StepState::Skipped]);
    assert!(
        ended.steps[0].reason.as_deref().unwrap().contains("maxDayNum"),
        "{:?}",
        ended.steps[0]
    );
    assert!(ended.steps[0].job.is_none());
}

#[test]
fn bad_definitions_and_inputs_are_refused_and_nothing_is_stored() {
    let w = world();
    let cycle: PipelineDef = serde_json::from_value(json!({"name": "c", "steps": [
        {"name": "a", "process": "close", "after": ["b"]},
        {"name": "b", "process": "close", "after": ["a"]}]}))
    .unwrap();
    let e = block(w.engine.save_pipeline(Actor::System, cycle)).unwrap_err();
    assert!(matches!(&e, Error::InvalidArgument(m) if m.contains("cycle")), "{e}");
    assert!(block(w.engine.pipelines()).unwrap().is_empty());
    let p = block(w.engine.save_pipeline(Actor::System, month_end("stop"))).unwrap();
    let admin = block(w.engine.store().user_by_name("admin")).unwrap().unwrap();
    let e = block(w.engine.start_pipeline(Actor::User(admin.id), &admin, p.id, Map::new())).unwrap_err();
    assert!(matches!(&e, Error::InvalidArgument(m) if m.contains("month")), "{e}");
    assert!(block(w.engine.pipeline_runs(p.id, 0, 10)).unwrap().is_empty());
    // Saving again under the same name makes a new version of the same pipeline.
    let again = block(w.engine.save_pipeline(Actor::System, month_end("continue"))).unwrap();
    assert_eq!((again.id, again.version), (p.id, 2));
    let alice = w.user.clone();
    let e = block(w.engine.start_pipeline(Actor::User(alice.id), &alice, p.id, Map::new())).unwrap_err();
    assert!(matches!(e, Error::PermissionDenied(_)));
}

/// A process whose jobs run the pipeline "month end" (input `month`).
fn pipeline_process(w: &mut World) -> Process {
    block(w.engine.save_pipeline(Actor::System, month_end("stop"))).unwrap();
    w.process(|s| {
        s.name = "month end, as a process".into();
        s.pipeline = Some("month end".into());
        s.arguments.push(ArgumentSpec {
            name: "month".into(),
            id: "month".into(),
            arg_type: ArgType::String,
            required: true,
            secret: false,
        });
    })
}

fn run_of(w: &World, job: &Job) -> PipelineRun {
    let job = w.job(job);
    block(w.engine.pipeline_run(job.runs_pipeline.expect("the job is a run"))).unwrap()
}

#[test]
fn a_pipeline_process_job_is_a_run_and_ends_with_it() {
    let mut w = world();
    let p = pipeline_process(&mut w);
    let bots: Vec<Bot> = (0..3).map(|i| w.connect(&format!("r{i}"))).collect();
    let job = w.start(&p, json!({"month": "2026-12"}));
    assert_eq!((job.state, job.robot), (JobState::Running, None), "no robot of its own");
    assert_eq!(w.process_now(&p).running, 1, "it holds a slot of its process");
    let r = run_of(&w, &job);
    assert_eq!(r.job, Some(job.id));
    let (b, j) = holder(&w, &bots, &r, 0);
    assert_eq!(
        j.arguments.as_ref(),
        &json!({"month": "2026-12"}),
        "the job's arguments are the run's inputs"
    );
    finish(
        &w,
        b,
        &j,
        FinishStatus::Success,
        Some(json!({"invoice_id": 5, "count": 2})),
    );
    for i in 1..=3 {
        let (b, j) = holder(&w, &bots, &r, i);
        finish(&w, b, &j, FinishStatus::Success, None);
    }
    let done = w.job(&job);
    assert_eq!(done.state, JobState::Successful);
    assert_eq!(
        done.outputs.as_deref(),
        Some(&json!({"extract": {"invoice_id": 5, "count": 2}}))
    );
    let now = w.process_now(&p);
    assert_eq!((now.running, now.day_successes), (0, 1));
    assert!(bots.iter().all(|b| w.robot(b).state == RobotState::Available));
    w.audit_ok();
}

#[test]
fn stopping_a_pipeline_process_job_stops_its_run() {
    let mut w = world();
    let p = pipeline_process(&mut w);
    let bots: Vec<Bot> = (0..1).map(|i| w.connect(&format!("r{i}"))).collect();
    let job = w.start(&p, json!({"month": "2026-12"}));
    let r = run_of(&w, &job);
    let (b, j) = holder(&w, &bots, &r, 0);
    w.commands(b);
    let stopping = block(
        w.engine
            .stop_job(&w.user, job.key, rpa_core::job::StopStrategy::SoftStop),
    )
    .unwrap();
    assert_eq!(stopping.state, JobState::Stopping);
    assert!(
        w.commands(b).iter().any(|c| matches!(c, Command::Stop { .. })),
        "its step is stopped"
    );
    finish(&w, b, &j, FinishStatus::Cancelled, None);
    assert_eq!(run_of(&w, &job).state, RunState::Stopped);
    assert_eq!(w.job(&job).state, JobState::Stopped);
    assert_eq!(w.process_now(&p).running, 0);
    w.audit_ok();
}

#[test]
fn a_pipeline_process_without_its_pipeline_faults_its_jobs_with_the_reason() {
    let mut w = world();
    let p = w.process(|s| {
        s.name = "orphan".into();
        s.pipeline = Some("nowhere".into());
    });
    let job = w.start(&p, json!({}));
    let job = w.job(&job);
    assert_eq!(job.state, JobState::Faulted);
    assert!(job.reason.as_deref().unwrap().contains("no pipeline named 'nowhere'"));
    let e = block(w.engine.save_pipeline(
        Actor::System,
        serde_json::from_value(json!({"name": "nested", "steps": [{"name": "a", "process": "orphan"}]})).unwrap(),
    ))
    .unwrap_err();
    assert!(matches!(e, Error::InvalidArgument(m) if m.contains("runs a pipeline itself")));
}

#[test]
fn max_run_num_holds_pipeline_runs_until_one_ends() {
    let mut w = world();
    let p = pipeline_process(&mut w);
    let bots: Vec<Bot> = (0..2).map(|i| w.connect(&format!("r{i}"))).collect();
    let first = w.start(&p, json!({"month": "a"}));
    let second = w.start(&p, json!({"month": "b"}));
    assert_eq!(w.job(&second).state, JobState::Pending, "maxRunNum 1");
    let r = run_of(&w, &first);
    let (b, j) = holder(&w, &bots, &r, 0);
    // A business error: extract fails without a retry, and the run with it.
    block(
        w.engine
            .report_finish(&b.code, b.connect, j.key, FinishStatus::Failed, Some(20_001), None),
    )
    .unwrap();
    assert_eq!(w.job(&first).state, JobState::Faulted);
    assert!(w.job(&first).reason.as_deref().unwrap().contains("step 'extract'"));
    assert_eq!(
        w.job(&second).state,
        JobState::Running,
        "the freed slot starts the next run"
    );
    assert_eq!(run_of(&w, &second).inputs["month"], json!("b"));
}

#[test]
fn a_schedule_starts_a_pipeline_through_its_process() {
    use rpa_core::schedule::{Missed, Rule, ScheduleSpec};
    let mut w = world();
    let p = pipeline_process(&mut w);
    let admin = block(w.engine.store().user_by_name("admin")).unwrap().unwrap();
    let spec = ScheduleSpec {
        name: "nightly".into(),
        process: p.id,
        arguments: std::sync::Arc::new(json!({"month": "scheduled"})),
        rule: Rule::Every { ms: 60_000 },
        zone: "UTC".into(),
        from: None,
        until: None,
        hours: None,
        skip_dates: Vec::new(),
        missed: Missed::RunOnce,
    };
    block(w.engine.create_schedule(Actor::System, &admin, spec)).unwrap();
    w.advance(60_000);
    w.tick();
    let runs = block(w.engine.pipeline_runs(1, 0, 10)).unwrap();
    assert_eq!(runs.len(), 1);
    assert_eq!(runs[0].inputs["month"], json!("scheduled"));
    assert!(runs[0].job.is_some());
}
