//! The local provisioner of elastic pools ([`rpa_core::pool`]): for each
//! pool whose configuration gives a `command`, the node that holds the
//! pool's lease (`provisioner:<pool>`) starts robot processes up to the
//! robots the pool wants (less those of the pool connected from elsewhere,
//! never more than its `max`), and stops robots it started that the pool no
//! longer wants once they have been idle for the pool's grace period.
//!
//! A robot it starts is `<pool>-<n>`: its profile (pool `<pool>`) is saved
//! first, then the command runs with `{robot}` in its arguments replaced by
//! that id and `RPA_ROBOT_ID`, `RPA_POOL` in its environment. A stopping
//! server stops the robots it started (their jobs fail over as any lost
//! robot's do). Each start and stop is logged with the pool, the robot and
//! the program, never the arguments (they may hold a secret).

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rpa_core::model::{Actor, RobotProfile, RobotState};
use rpa_core::{Engine, Store};
use tokio::process::{Child, Command};

use crate::consume::Lease;

/// How often each pool is looked at.
const LOOK: Duration = Duration::from_secs(1);

/// A pool this server starts robots for.
#[derive(Debug, Clone)]
pub struct Provision {
    /// The pool.
    pub pool: String,
    /// Program and arguments that start one robot.
    pub command: Vec<String>,
}

/// The robots started for one pool.
struct Started {
    provision: Provision,
    lease: Lease,
    children: HashMap<String, Child>,
    idle_since: HashMap<String, Instant>,
}

/// Runs the provisioners of `provisions` until `shutdown` completes, then
/// stops the robots they started.
pub async fn run_provisioners<S: Store>(
    engine: Arc<Engine<S>>,
    provisions: Vec<Provision>,
    shutdown: impl Future<Output = ()>,
) {
    if provisions.is_empty() {
        return;
    }
    tokio::pin!(shutdown);
    let mut pools: Vec<Started> = provisions
        .into_iter()
        .map(|p| Started {
            lease: Lease::new(&format!("provisioner:{}", p.pool)),
            provision: p,
            children: HashMap::new(),
            idle_since: HashMap::new(),
        })
        .collect();
    loop {
        for p in &mut pools {
            if let Err(e) = step(&engine, p).await {
                tracing::warn!(pool = %p.provision.pool, error = %e, "provisioner");
            }
        }
        tokio::select! {
            _ = &mut shutdown => break,
            _ = tokio::time::sleep(LOOK) => {}
        }
    }
    for p in &mut pools {
        for (robot, mut child) in p.children.drain() {
            let _ = child.kill().await;
            tracing::info!(pool = %p.provision.pool, robot = %robot, "provisioner stopped a robot (server stopping)");
        }
    }
}

async fn step<S: Store>(engine: &Engine<S>, p: &mut Started) -> Result<(), rpa_core::Error> {
    let name = p.provision.pool.clone();
    // Robots that exited by themselves are gone.
    p.children.retain(|robot, c| match c.try_wait() {
        Ok(None) => true,
        _ => {
            tracing::warn!(pool = %name, robot = %robot, "a provisioned robot exited");
            false
        }
    });
    if !p.lease.hold(engine).await? {
        return Ok(());
    }
    let pool = engine.pool(&name).await?;
    let robots: Vec<_> = engine
        .store()
        .robots()
        .await?
        .into_iter()
        .filter(|r| r.profile.pool == name)
        .collect();
    let connected = |r: &&rpa_core::model::Robot| !matches!(r.state, RobotState::Disconnected);
    let elsewhere = robots
        .iter()
        .filter(connected)
        .filter(|r| !p.children.contains_key(&*r.code))
        .count() as u32;
    let want = pool.desired.saturating_sub(elsewhere).min(pool.spec.max) as usize;
    let now = Instant::now();
    // Idle: connected here with no job (or not connected yet: counted from its start).
    for r in &robots {
        if r.job.is_some() {
            p.idle_since.remove(&*r.code);
        } else if p.children.contains_key(&*r.code) {
            p.idle_since.entry(r.code.to_string()).or_insert(now);
        }
    }
    let mut n = 1;
    while p.children.len() < want {
        let robot = loop {
            let id = format!("{name}-{n}");
            n += 1;
            let busy_elsewhere = robots.iter().filter(connected).any(|r| *r.code == *id);
            if !p.children.contains_key(&id) && !busy_elsewhere {
                break id;
            }
        };
        let profile = RobotProfile {
            pool: name.clone(),
            ..RobotProfile::default()
        };
        engine.configure_robot(Actor::System, &robot, profile).await?;
        match spawn(&p.provision, &robot) {
            Ok(child) => {
                tracing::info!(pool = %name, robot = %robot, program = %p.provision.command[0], "provisioner started a robot");
                p.idle_since.insert(robot.clone(), now);
                p.children.insert(robot, child);
            }
            Err(e) => {
                tracing::error!(pool = %name, robot = %robot, program = %p.provision.command[0], error = %e, "provisioner cannot start a robot");
                break;
            }
        }
    }
    let grace = Duration::from_secs(pool.spec.idle_grace_seconds);
    if p.children.len() > want {
        let mut idle: Vec<(String, Instant)> = p
            .children
            .keys()
            .filter_map(|r| p.idle_since.get(r).map(|t| (r.clone(), *t)))
            .filter(|(_, t)| now.duration_since(*t) >= grace)
            .collect();
        idle.sort_by_key(|(_, t)| *t);
        let surplus = p.children.len() - want;
        for (robot, _) in idle.into_iter().take(surplus) {
            if let Some(mut child) = p.children.remove(&robot) {
                let _ = child.kill().await;
                p.idle_since.remove(&robot);
                tracing::info!(pool = %name, robot = %robot, "provisioner stopped an idle robot");
            }
        }
    }
    Ok(())
}

fn spawn(p: &Provision, robot: &str) -> std::io::Result<Child> {
    let (program, args) = p
        .command
        .split_first()
        .ok_or_else(|| std::io::Error::other("the pool's command is empty"))?;
    Command::new(program)
        .args(args.iter().map(|a| a.replace("{robot}", robot)))
        .env("RPA_ROBOT_ID", robot)
        .env("RPA_POOL", &p.pool)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
}
