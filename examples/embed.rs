//! The smallest host: an engine embedded in-process on the in-memory store,
//! three simulated robots, a handful of jobs, and what happened, printed.
//!
//! `cargo run --release --example embed`

use std::sync::Arc;

use futures::executor::block_on;
use rpa::core::auth::{PasswordCost, supplier_proof};
use rpa::core::engine::{NewQueueItem, NewUser};
use rpa::core::job::FinishStatus;
use rpa::core::model::{Actor, ArgType, ArgumentSpec, ProcessSpec, ProcessType};
use rpa::core::store::prelude::*;
use rpa::core::transport::Command;
use rpa::{Engine, EngineConfig, Key, ManualClock, MemoryStore, Timestamp};
use serde_json::json;

fn main() -> Result<(), rpa::Error> {
    // A manual clock lets the example show a heartbeat timeout without waiting.
    let clock = ManualClock::new(Timestamp(1_700_000_000_000));
    let config = EngineConfig {
        password_cost: PasswordCost::TESTING,
        ..EngineConfig::default()
    };
    let engine = Engine::new(MemoryStore::new(), Arc::new(clock.clone()), config);
    block_on(run(&engine, &clock))
}

async fn run(engine: &Engine<MemoryStore>, clock: &ManualClock) -> Result<(), rpa::Error> {
    // Administration: a process with one required argument, a queue, a user, a vendor.
    let mut spec = ProcessSpec::new("Invoice entry", ProcessType::Unattended);
    spec.package_uri = "http://files.example/invoice-1.0.0.zip".into();
    spec.max_run_num = 2;
    spec.arguments.push(ArgumentSpec {
        name: "invoice".into(),
        id: "inv".into(),
        arg_type: ArgType::Int,
        required: true,
        secret: false,
    });
    let invoice = engine.create_process(Actor::System, spec).await?;
    let mut qspec = ProcessSpec::new("Claims queue", ProcessType::Queue);
    qspec.max_pending_items = 100;
    let claims = engine.create_process(Actor::System, qspec).await?;
    engine
        .create_user(
            Actor::System,
            NewUser {
                name: "alice".into(),
                password: "wonderland".into(),
                roles: vec![],
                grants: vec![invoice.key, claims.key],
            },
        )
        .await?;
    engine
        .register_vendor(Actor::System, "acme", "acme-vendor-secret")
        .await?;

    // Robots register with their vendor's proof and send a first heartbeat.
    let mut robots = Vec::new();
    for code in ["robot-1", "robot-2", "robot-3"] {
        let reg = engine
            .register_robot(code, "acme", &supplier_proof("acme-vendor-secret", code), Some("1.0"))
            .await?;
        engine.heartbeat(code, reg.connect, None).await?;
        println!("{code} registered (connection {})", reg.connect);
        robots.push((code, reg.connect, None::<Key>));
    }

    // A person logs in and starts work.
    let login = engine.login("alice", "wonderland").await?;
    let alice = engine.authenticate(&login.token).await?;
    println!(
        "alice logged in; granted: {:?}",
        login.processes.iter().map(|p| p.spec.name.as_str()).collect::<Vec<_>>()
    );
    let mut jobs = Vec::new();
    for n in 1..=5 {
        let job = engine
            .start_job(&alice, invoice.key, &json!({ "invoice": n.to_string() }))
            .await?;
        println!("started job {} -> {}", job.key, job.state.as_str());
        jobs.push(job.key);
    }
    let mut items = Vec::new();
    for n in 1..=3 {
        let item = engine
            .add_queue_item(
                &alice,
                claims.key,
                NewQueueItem {
                    content: json!({}),
                    reference: Some(format!("CLAIM-{n}")),
                    ..NewQueueItem::default()
                },
            )
            .await?;
        println!("queued item {} ({})", item.key, item.reference.as_deref().unwrap_or(""));
        items.push(item.key);
    }

    // robot-3 goes silent: its job fails over after the heartbeat timeout.
    let mut round = 0;
    loop {
        round += 1;
        for (code, connect, running) in robots.iter_mut() {
            if *code == "robot-3" && round > 1 && round < 10 {
                continue;
            }
            for cmd in engine.heartbeat(code, *connect, *running).await? {
                if let Command::Execute(e) = cmd {
                    println!("  {code} <- Execute {} (attempt {})", e.run_instance_id, e.attempt);
                    *running = Some(e.run_instance_id);
                }
            }
            if *code == "robot-3" && round == 1 {
                continue;
            }
            if let Some(run) = running.take() {
                engine
                    .report_finish(
                        code,
                        *connect,
                        run,
                        FinishStatus::Success,
                        None,
                        Some(json!({"ok": true})),
                    )
                    .await?;
                println!("  {code} finished {run}");
            }
        }
        clock.advance(5_000);
        let tick = engine.tick().await?;
        if tick.robots_timed_out > 0 {
            println!("  {} robot(s) went silent; their jobs fail over", tick.robots_timed_out);
        }
        let mut all_done = true;
        for k in &jobs {
            all_done &= engine.job(*k).await?.state.is_terminal();
        }
        for k in &items {
            all_done &= engine.queue_item(*k).await?.state.is_terminal();
        }
        if all_done || round > 40 {
            break;
        }
    }

    for k in &jobs {
        let j = engine.job(*k).await?;
        println!("job {} {} after {} attempt(s)", j.key, j.state.as_str(), j.attempt);
    }
    for k in &items {
        let i = engine.queue_item(*k).await?;
        println!("item {} {}", i.reference.as_deref().unwrap_or(""), i.state.as_str());
    }
    for r in engine.robots().await? {
        println!("{} is {}", r.code, r.state.as_str());
    }
    let p = engine
        .store()
        .process(invoice.id)
        .await?
        .map(|p| p.day_successes)
        .unwrap_or(0);
    println!("Invoice entry: {p} successful runs today");
    match engine.verify_audit().await? {
        Ok(n) => println!("audit chain verified: {n} events"),
        Err(broken) => println!("audit chain BROKEN: {broken}"),
    }
    Ok(())
}
