//! Ticket throughput through the workflow engine (seed 004): a ticket
//! created and handled through a 4-state workflow (start → approve → check
//! → end: one create, two handles, each a commit with its flow log), in
//! memory and on SQLite; and a user's duty list (`category=duty`) among
//! many stored tickets, in memory and on SQLite.
//!
//! `cargo bench --bench tickets`

use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, SamplingMode, Throughput, criterion_group, criterion_main};
use rpa::core::auth::PasswordCost;
use rpa::core::flow::{Directory, Request, Who, Workflow, WorkflowDef};
use rpa::core::model::Actor;
use rpa::core::{Engine, EngineConfig, ManualClock, MemoryStore, Store, TicketQuery, Timestamp};
use rpa::sql::{SqlOptions, SqlStore};
use serde_json::{Map, json};

const T0: Timestamp = Timestamp(1_767_225_600_000);

fn definition() -> WorkflowDef {
    serde_json::from_value(json!({
        "name": "bench",
        "fields": [{"field_key": "amount", "field_name": "amount", "field_type_id": 10}],
        "states": [
            {"name": "new", "type_id": 1, "participant_type_id": 5, "participant": "creator",
             "state_field_str": {"title": 2, "amount": 2}},
            {"name": "approve", "participant_type_id": 5, "participant": "creator_tl"},
            {"name": "check", "participant_type_id": 4, "participant": "1", "distribute_type_id": 2},
            {"name": "end", "type_id": 2}
        ],
        "transitions": [
            {"name": "submit", "source_state": "new", "destination_state": "approve"},
            {"name": "agree", "source_state": "approve", "destination_state": "check"},
            {"name": "done", "source_state": "check", "destination_state": "end"}
        ]
    }))
    .unwrap()
}

fn directory(people: usize) -> Directory {
    let mut users = vec![
        json!({"username": "boss", "dept_id": 1}),
        json!({"username": "checker", "dept_id": 1}),
    ];
    users.extend((0..people).map(|i| json!({"username": format!("u{i}"), "dept_id": 1})));
    serde_json::from_value(json!({
        "users": users,
        "depts": [{"id": 1, "name": "all", "leader": "boss"}],
        "roles": [{"id": 1, "name": "checkers", "members": ["checker"]}]
    }))
    .unwrap()
}

async fn engine<S: Store>(store: S, people: usize) -> (Engine<S>, Workflow) {
    let config = EngineConfig {
        password_cost: PasswordCost::TESTING,
        ..EngineConfig::default()
    };
    let engine = Engine::new(store, Arc::new(ManualClock::new(T0)), config);
    engine.ensure_admin("admin", "pw").await.unwrap();
    engine.sync_directory(Actor::System, directory(people)).await.unwrap();
    let wf = engine
        .save_workflow(Actor::System, "admin", definition())
        .await
        .unwrap();
    (engine, wf)
}

fn fields() -> Map<String, serde_json::Value> {
    json!({"title": "t", "amount": 5}).as_object().cloned().unwrap()
}

/// One ticket created by `creator` and handled to its end.
async fn lifecycle<S: Store>(e: &Engine<S>, wf: &Workflow, creator: &str) {
    let submit = Request {
        transition_id: wf.transitions[0].id,
        suggestion: String::new(),
        fields: fields(),
    };
    let t = e.create_ticket("b", creator, wf.id, (0, 0), &submit).await.unwrap();
    for (who, transition) in [("boss", 1), ("checker", 2)] {
        let req = Request {
            transition_id: wf.transitions[transition].id,
            ..Request::default()
        };
        e.move_ticket(t.id, who, "ticket.handle", |t, ctx| {
            t.handle(ctx, Who::Person(who), &req)
        })
        .await
        .unwrap();
    }
}

fn sqlite(round: u64) -> String {
    let dir = std::env::temp_dir().join(format!("rpa-bench-tickets-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(format!("t{round}.db"));
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
    }
    SqlStore::sqlite_url(&path)
}

fn throughput(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    const BATCH: u64 = 1000;
    let mut g = c.benchmark_group("ticket_lifecycle");
    g.throughput(Throughput::Elements(BATCH));
    g.sample_size(10)
        .sampling_mode(SamplingMode::Flat)
        .measurement_time(Duration::from_secs(10));
    g.bench_function("memory/1000", |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let mut took = Duration::ZERO;
                for _ in 0..iters {
                    let (e, wf) = engine(MemoryStore::new(), 10).await;
                    let t = Instant::now();
                    for i in 0..BATCH {
                        lifecycle(&e, &wf, &format!("u{}", i % 10)).await;
                    }
                    took += t.elapsed();
                }
                took
            })
        });
    });
    let mut round = 0;
    g.bench_function("sqlite/1000", |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let mut took = Duration::ZERO;
                for _ in 0..iters {
                    round += 1;
                    let store = SqlStore::connect(
                        &sqlite(round),
                        SqlOptions {
                            sealing: rpa::sql::Sealing::Key([5; 32]),
                            ..SqlOptions::default()
                        },
                    )
                    .await
                    .unwrap();
                    let (e, wf) = engine(store, 10).await;
                    let t = Instant::now();
                    for i in 0..BATCH {
                        lifecycle(&e, &wf, &format!("u{}", i % 10)).await;
                    }
                    took += t.elapsed();
                }
                took
            })
        });
    });
    g.finish();
}

/// `stored` open tickets, each waiting for its creator's department
/// leader: 1,000 people, so each has about stored / 1,000 to handle.
async fn duty_world<S: Store>(store: S, stored: u64) -> Engine<S> {
    let (e, wf) = engine(store, 1000).await;
    let mut people = directory(1000);
    for (i, u) in people.users.iter_mut().enumerate().skip(2) {
        u.dept_id = i as i64;
    }
    people.depts.extend(
        (2..1002)
            .map(|i| {
                serde_json::from_value(
                    json!({"id": i, "name": format!("d{i}"), "leader": format!("u{}", (i + 1) % 1000)}),
                )
                .unwrap()
            })
            .collect::<Vec<_>>(),
    );
    e.sync_directory(Actor::System, people).await.unwrap();
    let submit = Request {
        transition_id: wf.transitions[0].id,
        suggestion: String::new(),
        fields: fields(),
    };
    for i in 0..stored {
        e.create_ticket("d", &format!("u{}", i % 1000), wf.id, (0, 0), &submit)
            .await
            .unwrap();
    }
    e
}

fn duty_list(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    // `TICKETS_STORED=1000000 cargo bench --bench tickets -- duty` for the
    // figure at a million tickets (minutes to build).
    let stored: u64 = std::env::var("TICKETS_STORED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000);
    let q = TicketQuery {
        category: "duty".into(),
        reverse: true,
        ..TicketQuery::default()
    };
    let mut g = c.benchmark_group("duty_list");
    g.sample_size(20);
    let memory = rt.block_on(duty_world(MemoryStore::new(), stored));
    g.bench_function(BenchmarkId::new("memory", stored), |b| {
        b.iter(|| {
            let (page, total) = rt.block_on(memory.tickets("u7", &q, 1, 10)).unwrap();
            assert!(total as u64 == stored / 1000 && page.len() == 10);
        });
    });
    let store = rt
        .block_on(SqlStore::connect(
            &sqlite(0),
            SqlOptions {
                sealing: rpa::sql::Sealing::Key([5; 32]),
                ..SqlOptions::default()
            },
        ))
        .unwrap();
    let sqlite = rt.block_on(duty_world(store, stored));
    g.bench_function(BenchmarkId::new("sqlite", stored), |b| {
        b.iter(|| {
            let (page, total) = rt.block_on(sqlite.tickets("u7", &q, 1, 10)).unwrap();
            assert!(total as u64 == stored / 1000 && page.len() == 10);
        });
    });
    g.finish();
}

criterion_group!(benches, throughput, duty_list);
criterion_main!(benches);
