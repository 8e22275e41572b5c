//! The local provisioner of elastic pools ([`rpa_core::pool`]): for each
//! pool whose configuration gives a `command`, the node that holds the
//! pool's lease (`provisioner:<pool>`) starts robot processes up to the
//! robots the pool wants (less those of the pool connected from elsewhere,
//! never more than its `max`), and stops robots it started that the pool no
//! longer wants once they have been idle for the pool's grace period.
//!
//! A robot it starts is `<pool>-<n>`: its profile (pool `<pool>`) is saved
//! first, then the command runs with `{robot}` in its arguments replaced by
//! that id and `RPA_ROBOT_ID`, `RPA_POOL` in its environment.
//! A stopping
//! server stops the robots it started (their jobs fail over as any lost
//! robot's do). Each start and stop is logged with the pool, the robot and
//! the program, never the arguments (they may hold a secret).
//!
//! A pool that names an executor image ([`rpa_core::image`]) starts its
//! robots with the version it runs (the latest not retired, or its pin):
//! the image file is written once per content under the system's
//! temporary directory (`rpa-executor-images/<sha256>`), `{image}` in an
//! argument becomes its path, and `RPA_IMAGE`, `RPA_IMAGE_VERSION`,
//! `RPA_IMAGE_FILE` are in the environment. Each executor started and
//! stopped is recorded (its image version, this host, its process id) for
//! `GET /admin/executors`.

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rpa_adapters_http::Files;
use rpa_core::image::ExecutorImage;
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
    files: Files,
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
            if let Err(e) = step(&engine, &files, p).await {
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
            let _ = engine.executor_stopped(&robot, "the server stopped").await;
            tracing::info!(pool = %p.provision.pool, robot = %robot, "provisioner stopped a robot (server stopping)");
        }
    }
}

async fn step<S: Store>(engine: &Engine<S>, files: &Files, p: &mut Started) -> Result<(), rpa_core::Error> {
    let name = p.provision.pool.clone();
    // Robots that exited by themselves are gone.
    let mut exited = Vec::new();
    p.children.retain(|robot, c| match c.try_wait() {
        Ok(None) => true,
        _ => {
            tracing::warn!(pool = %name, robot = %robot, "a provisioned robot exited");
            exited.push(robot.clone());
            false
        }
    });
    for robot in exited {
        engine.executor_stopped(&robot, "exited").await?;
    }
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
    let mut image: Option<(ExecutorImage, std::path::PathBuf)> = None;
    while p.children.len() < want {
        if image.is_none()
            && let Some(img) = engine.pool_image(&name).await?
        {
            let path = image_file(files, &img)
                .await
                .map_err(|e| rpa_core::Error::Internal(format!("image {}: {e}", img.key)))?;
            image = Some((img, path));
        }
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
        match spawn(&p.provision, &robot, image.as_ref()) {
            Ok(child) => {
                tracing::info!(pool = %name, robot = %robot, program = %p.provision.command[0], "provisioner started a robot");
                engine
                    .executor_started(&robot, &name, image.as_ref().map(|(i, _)| i), &host(), child.id())
                    .await?;
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
                engine.executor_stopped(&robot, "idle past the pool's grace").await?;
                tracing::info!(pool = %name, robot = %robot, "provisioner stopped an idle robot");
            }
        }
    }
    Ok(())
}

/// This machine's name, for the executors' records.
fn host() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".into())
}

/// The local file of `img` (written once per content, through a temporary name).
async fn image_file(files: &Files, img: &ExecutorImage) -> std::io::Result<std::path::PathBuf> {
    let dir = std::env::temp_dir().join("rpa-executor-images");
    let path = dir.join(&img.sha256);
    if tokio::fs::try_exists(&path).await? {
        return Ok(path);
    }
    tokio::fs::create_dir_all(&dir).await?;
    let bytes = files
        .get(img.file)
        .await?
        .ok_or_else(|| std::io::Error::other("its file is missing from the file store"))?;
    let part = dir.join(format!("{}.part-{}", img.sha256, std::process::id()));
    tokio::fs::write(&part, &bytes).await?;
    tokio::fs::rename(&part, &path).await?;
    Ok(path)
}

fn spawn(p: &Provision, robot: &str, image: Option<&(ExecutorImage, std::path::PathBuf)>) -> std::io::Result<Child> {
    let (program, args) = p
        .command
        .split_first()
        .ok_or_else(|| std::io::Error::other("the pool's command is empty"))?;
    let path = image.map(|(_, f)| f.to_string_lossy().into_owned()).unwrap_or_default();
    let mut cmd = Command::new(program);
    if let Some((img, _)) = image {
        cmd.env("RPA_IMAGE", &img.name)
            .env("RPA_IMAGE_VERSION", &img.image_version)
            .env("RPA_IMAGE_FILE", &path);
    }
    cmd.args(
        args.iter()
            .map(|a| a.replace("{robot}", robot).replace("{image}", &path)),
    )
    .env("RPA_ROBOT_ID", robot)
    .env("RPA_POOL", &p.pool)
    .stdin(std::process::Stdio::null())
    .stdout(std::process::Stdio::null())
    .stderr(std::process::Stdio::null())
    .kill_on_drop(true)
    .spawn()
}
