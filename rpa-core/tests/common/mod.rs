//! A world for engine tests: an engine on the in-memory store, a manual
//! clock, a vendor, helpers to connect robots and act as them.
#![allow(dead_code)]

use rpa_core::store::prelude::*;
use std::sync::Arc;

use rpa_core::auth::{PasswordCost, supplier_proof};
use rpa_core::engine::NewUser;
use rpa_core::job::FinishStatus;
use rpa_core::model::*;
use rpa_core::transport::{Command, Execute, RobotTransport};
use rpa_core::{Engine, EngineConfig, Key, ManualClock, MemoryStore, Timestamp};
use serde_json::{Value, json};

pub const SECRET: &str = "vendor-secret";
pub const T0: Timestamp = Timestamp(1_700_000_000_000);

pub struct World {
    pub engine: Engine<MemoryStore>,
    pub clock: ManualClock,
    pub user: User,
}

pub struct Bot {
    pub code: String,
    pub connect: Key,
}

pub fn block<F: std::future::Future>(f: F) -> F::Output {
    futures::executor::block_on(f)
}

impl World {
    pub fn new() -> World {
        Self::with_store(MemoryStore::new(), 1)
    }

    pub fn with_store(store: MemoryStore, seed: u64) -> World {
        Self::with_config(store, seed, |_| {})
    }

    pub fn with_config(store: MemoryStore, seed: u64, tweak: impl FnOnce(&mut EngineConfig)) -> World {
        Self::build(store, seed, tweak, None)
    }

    /// A world whose engine tells `transport` about robot commands.
    pub fn with_transport(transport: Arc<dyn RobotTransport>) -> World {
        Self::build(MemoryStore::new(), 1, |_| {}, Some(transport))
    }

    fn build(
        store: MemoryStore,
        seed: u64,
        tweak: impl FnOnce(&mut EngineConfig),
        transport: Option<Arc<dyn RobotTransport>>,
    ) -> World {
        let clock = ManualClock::new(T0);
        let mut config = EngineConfig {
            password_cost: PasswordCost::TESTING,
            seed: Some(seed),
            heartbeat_timeout_ms: 30_000,
            ..EngineConfig::default()
        };
        tweak(&mut config);
        let mut engine = Engine::new(store, Arc::new(clock.clone()), config);
        if let Some(t) = transport {
            engine = engine.with_transport(t);
        }
        block(async {
            engine.ensure_admin("admin", "admin-pw").await.unwrap();
            match engine.register_vendor(Actor::System, "acme", SECRET).await {
                Ok(_) => {}
                Err(e) => panic!("{e}"),
            }
            let user = match engine.store().user_by_name("alice").await.unwrap() {
                Some(u) => u,
                None => engine
                    .create_user(
                        Actor::System,
                        NewUser {
                            name: "alice".into(),
                            password: "pw".into(),
                            ..NewUser::default()
                        },
                    )
                    .await
                    .unwrap(),
            };
            World { engine, clock, user }
        })
    }

    /// Creates a process granted to alice.
    pub fn process(&mut self, f: impl FnOnce(&mut ProcessSpec)) -> Process {
        let mut spec = ProcessSpec::new("invoice", ProcessType::Unattended);
        spec.package_uri = "http://files/pkg".into();
        f(&mut spec);
        block(async {
            let p = self.engine.create_process(Actor::System, spec).await.unwrap();
            self.user = self.engine.grant(Actor::System, "alice", p.key).await.unwrap();
            p
        })
    }

    /// Registers a robot (it gets no work before its first heartbeat).
    pub fn register(&self, code: &str) -> Bot {
        let reg = block(
            self.engine
                .register_robot(code, "acme", &supplier_proof(SECRET, code), Some("1.0")),
        )
        .unwrap();
        Bot {
            code: code.into(),
            connect: reg.connect,
        }
    }

    /// Registers a robot and sends its first heartbeat (running nothing).
    pub fn connect(&self, code: &str) -> Bot {
        let bot = self.register(code);
        self.beat(&bot, None);
        bot
    }

    /// Registers a robot on a socket this engine holds (as the WebSocket
    /// hub does) and sends its first heartbeat.
    pub fn socket(&self, code: &str) -> Bot {
        let reg = block(
            self.engine
                .register_socket(code, "acme", &supplier_proof(SECRET, code), Some("1.0"), &[]),
        )
        .unwrap();
        let bot = Bot {
            code: code.into(),
            connect: reg.connect,
        };
        self.beat(&bot, None);
        bot
    }

    /// Another engine (node `node`) on this world's store and clock.
    pub fn node(&self, node: u64) -> Engine<MemoryStore> {
        let config = EngineConfig {
            password_cost: PasswordCost::TESTING,
            heartbeat_timeout_ms: self.engine.config().heartbeat_timeout_ms,
            heartbeat_slack_ms: self.engine.config().heartbeat_slack_ms,
            node: Some(node),
            ..EngineConfig::default()
        };
        Engine::new(self.engine.store().clone(), Arc::new(self.clock.clone()), config)
    }

    pub fn start(&self, p: &Process, args: Value) -> Job {
        block(self.engine.start_job(&self.user, p.key, &args)).unwrap()
    }

    pub fn job(&self, j: &Job) -> Job {
        block(self.engine.job(j.key)).unwrap()
    }

    pub fn robot(&self, b: &Bot) -> Robot {
        block(self.engine.store().robot_by_code(&b.code)).unwrap().unwrap()
    }

    pub fn process_now(&self, p: &Process) -> Process {
        block(self.engine.store().process(p.id)).unwrap().unwrap()
    }

    /// Heartbeat reporting what the robot holds; returns its commands.
    pub fn beat(&self, b: &Bot, run: Option<Key>) -> Vec<Command> {
        block(self.engine.heartbeat(&b.code, b.connect, run)).unwrap()
    }

    pub fn commands(&self, b: &Bot) -> Vec<Command> {
        let r = self.robot(b);
        block(self.engine.take_commands(r.id)).unwrap()
    }

    pub fn executes(&self, b: &Bot) -> Vec<Execute> {
        self.commands(b)
            .into_iter()
            .filter_map(|c| match c {
                Command::Execute(e) => Some(*e),
                _ => None,
            })
            .collect()
    }

    pub fn finish(&self, b: &Bot, j: &Job, status: FinishStatus) -> rpa_core::Result<Job> {
        block(
            self.engine
                .report_finish(&b.code, b.connect, j.key, status, None, Some(json!({"out": 1}))),
        )
    }

    pub fn advance(&self, ms: u64) {
        self.clock.advance(ms);
    }

    pub fn tick(&self) -> rpa_core::engine::TickReport {
        block(self.engine.tick()).unwrap()
    }

    pub fn audit_ok(&self) -> u64 {
        block(self.engine.verify_audit())
            .unwrap()
            .expect("audit chain verifies")
    }
}

/// Registers `code` on a socket `node` holds (as its WebSocket hub does),
/// with its first heartbeat, which asks for work.
pub fn socket_on(node: &Engine<MemoryStore>, code: &str) -> Bot {
    let reg = block(node.register_socket(code, "acme", &supplier_proof(SECRET, code), Some("1.0"), &[])).unwrap();
    block(node.heartbeat(code, reg.connect, None)).unwrap();
    Bot {
        code: code.into(),
        connect: reg.connect,
    }
}
