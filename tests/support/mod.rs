//! Shared by the cross-crate tests: where the PostgreSQL suites find their database.
#![allow(dead_code)]

use sqlx::Connection;

pub mod robots;

/// `DATABASE_URL` when it names PostgreSQL; `None` (the caller skips, saying
/// so) on a laptop without it; a failure under `CI=true`.
pub fn postgres_url() -> Option<String> {
    match std::env::var("DATABASE_URL") {
        Ok(u) if u.starts_with("postgres") => Some(u),
        _ if std::env::var("CI").is_ok_and(|v| v == "true") => {
            panic!("CI=true but DATABASE_URL does not name a PostgreSQL database")
        }
        _ => {
            eprintln!("skipping PostgreSQL test: DATABASE_URL is not set");
            None
        }
    }
}

fn case_name(tag: &str) -> String {
    format!("rpa_case_{tag}_{}", std::process::id())
}

/// Drops the database [`fresh_postgres`] made for `tag` (connections to it
/// are closed).
pub async fn drop_postgres(url: &str, tag: &str) {
    let mut admin = sqlx::PgConnection::connect(url)
        .await
        .unwrap_or_else(|e| panic!("PostgreSQL at DATABASE_URL: {e}"));
    let sql = format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", case_name(tag));
    sqlx::Executor::execute(&mut admin, sql.as_str()).await.unwrap();
}

/// A fresh database named `rpa_case_<tag>_<pid>` on the server of `url`; its URL.
pub async fn fresh_postgres(url: &str, tag: &str) -> String {
    let name = case_name(tag);
    let mut admin = sqlx::PgConnection::connect(url)
        .await
        .unwrap_or_else(|e| panic!("PostgreSQL at DATABASE_URL: {e}"));
    sqlx::Executor::execute(
        &mut admin,
        format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)").as_str(),
    )
    .await
    .unwrap();
    sqlx::Executor::execute(&mut admin, format!("CREATE DATABASE {name}").as_str())
        .await
        .unwrap();
    format!(
        "{}/{name}",
        url.rsplit_once('/').expect("DATABASE_URL ends with /database").0
    )
}

/// The example server built beside the running test.
pub fn server_binary() -> std::path::PathBuf {
    let exe = std::env::current_exe().unwrap();
    exe.parent().unwrap().parent().unwrap().join("examples").join("server")
}

/// Starts the example server on `port` over `db`, with `dir/config.json`,
/// its files, key and log (`server-<port>.log`) in `dir`; a heartbeat
/// timeout of 2 s unless `extra` sets one.
pub fn start_server(dir: &std::path::Path, db: &str, port: u16, extra: &[&str]) -> std::process::Child {
    start_server_with_env(dir, db, port, extra, &[])
}

/// [`start_server`] with environment variables `env` set for the server.
pub fn start_server_with_env(
    dir: &std::path::Path,
    db: &str,
    port: u16,
    extra: &[&str],
    env: &[(&str, &str)],
) -> std::process::Child {
    use std::process::{Command, Stdio};
    let mut cmd = Command::new(server_binary());
    cmd.envs(env.iter().copied());
    cmd.args(["--listen", &format!("127.0.0.1:{port}")]);
    if !extra.contains(&"--heartbeat-timeout") {
        cmd.args(["--heartbeat-timeout", "2"]);
    }
    cmd.args(extra)
        .args(["--db", db])
        .arg("--config")
        .arg(dir.join("config.json"))
        .arg("--files")
        .arg(dir.join("files"))
        .arg("--secret-key-file")
        .arg(dir.join("rpa.key"))
        .stdout(Stdio::from(
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(dir.join(format!("server-{port}.log")))
                .unwrap(),
        ))
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

/// POSTs `body` as JSON; the status and the JSON answer, or `None` when the
/// server did not answer (or not with JSON) within 5 s.
pub async fn post(
    http: &reqwest::Client,
    url: String,
    headers: &[(&str, &str)],
    body: serde_json::Value,
) -> Option<(u16, serde_json::Value)> {
    let mut req = http.post(url).json(&body).timeout(std::time::Duration::from_secs(5));
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let r = req.send().await.ok()?;
    let status = r.status().as_u16();
    Some((status, r.json().await.ok()?))
}

/// Logs in over seed 000 (waiting up to 30 s for the server to come up):
/// the token and the id of the first process granted.
pub async fn login(http: &reqwest::Client, base: &str, user: &str, pw: &str) -> (String, String) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        if let Some((_, v)) = post(
            http,
            format!("{base}/rpa/api/login"),
            &[],
            serde_json::json!({"username": user, "password": pw}),
        )
        .await
            && v["code"] == 200
        {
            let p = v["result"]["processes"][0]["id"].as_str().unwrap_or("").to_owned();
            return (v["result"]["token"].as_str().unwrap().to_owned(), p);
        }
        assert!(std::time::Instant::now() < deadline, "the server did not come up");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

/// GETs `url` with a seed 000 token; the JSON answer.
pub async fn get_json(http: &reqwest::Client, url: String, token: &str) -> serde_json::Value {
    http.get(url)
        .header("X-Access-Token", token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

/// The body of a plain GET (a page without a session: `/metrics`, a signed link).
pub async fn get_text(http: &reqwest::Client, url: String) -> String {
    http.get(url).send().await.unwrap().text().await.unwrap()
}

/// The value of the sample `series` (name with labels, as written) on a
/// Prometheus page.
pub fn metric(page: &str, series: &str) -> Option<f64> {
    page.lines()
        .find_map(|l| l.strip_prefix(series).and_then(|rest| rest.strip_prefix(' ')))
        .map(|v| v.trim().parse().unwrap())
}

/// Waits (up to 90 s) for job `job` to end; the job as the console shows it.
#[allow(dead_code)]
pub async fn job_end(http: &reqwest::Client, base: &str, token: &str, job: &str) -> serde_json::Value {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(90);
    loop {
        let v = get_json(http, format!("{base}/console/api/jobs/{job}"), token).await;
        let state = v["result"]["state"].as_str().unwrap_or("").to_owned();
        if ["Successful", "Faulted", "Stopped", "Canceled"].contains(&state.as_str()) {
            return v["result"].clone();
        }
        assert!(std::time::Instant::now() < deadline, "the job did not end: {v}");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

/// Every domain event the server holds, in order (`GET /admin/events`, paged).
#[allow(dead_code)]
pub async fn all_events(http: &reqwest::Client, base: &str, admin: &str) -> Vec<serde_json::Value> {
    let mut out = Vec::new();
    let mut after = 0;
    loop {
        let page = get_json(http, format!("{base}/admin/events?after={after}&limit=1000"), admin).await;
        let through = page["result"]["through"].as_u64().expect("events page");
        out.extend(page["result"]["events"].as_array().unwrap().iter().cloned());
        if through == after {
            return out;
        }
        after = through;
    }
}

/// The events an `--events-file` holds, line by line.
#[allow(dead_code)]
pub fn events_in_file(path: &std::path::Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).expect("a line of JSON"))
        .collect()
}

/// Checks an `--events-file` against the events the server holds: every
/// event is in the file (none skipped), the file is in order (a batch may
/// repeat after a crash, at least once), and nothing is in the file that the
/// server does not hold. Events committed after `held` was read (a robot
/// of a killed node found silent, say) may be in the file already: the
/// file is compared up to the last event of `held`.
#[allow(dead_code)]
pub fn assert_events_file_complete(held: &[serde_json::Value], file: &[serde_json::Value]) {
    let through = held.last().and_then(|e| e["seq"].as_u64()).unwrap_or(0);
    let mut last = 0;
    let mut seen = std::collections::BTreeMap::new();
    for e in file {
        let seq = e["seq"].as_u64().expect("seq");
        if seq > through {
            continue;
        }
        if seq > last {
            last = seq;
        } else {
            assert!(seen.contains_key(&seq), "event {seq} out of order and not a repeat");
        }
        let first = seen.entry(seq).or_insert_with(|| e.clone());
        assert_eq!(first, e, "event {seq} written twice differently");
    }
    for e in held {
        let seq = e["seq"].as_u64().unwrap();
        assert_eq!(
            seen.get(&seq),
            Some(e),
            "event {seq} missing from the file, or different"
        );
    }
    assert_eq!(seen.len(), held.len(), "the file holds events the server does not");
}

/// A child process killed when dropped.
pub struct Proc(pub std::process::Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Uploads `script` as the package of process `process` (its key) with the
/// administrator's `token`.
pub async fn upload_package(http: &reqwest::Client, base: &str, token: &str, process: &str, script: &str) {
    let up = http
        .post(format!("{base}/admin/processes/{process}/package"))
        .header("X-Access-Token", token)
        .body(script.to_owned())
        .send()
        .await
        .unwrap();
    assert!(up.status().is_success(), "package upload: {}", up.status());
}

/// Starts the example robot `id` (vendor `acme` with `secret`, WebSocket,
/// heart-beating every second) with its work directory and log in `dir`
/// and `RUNS=dir/runs.txt` in its scripts' environment.
pub fn start_robot(base: &str, dir: &std::path::Path, id: &str, secret: &str) -> Proc {
    use std::process::{Command, Stdio};
    Proc(
        Command::new(server_binary().with_file_name("robot"))
            .args(["--server", base, "--id", id, "--vendor", "acme", "--secret", secret])
            .args(["--transport", "ws", "--heartbeat", "1"])
            .arg("--work-dir")
            .arg(dir.join("work").join(id))
            .env("RUNS", dir.join("runs.txt"))
            .stdout(Stdio::from(
                std::fs::File::create(dir.join(format!("{id}.log"))).unwrap(),
            ))
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    )
}

/// The example server with its demo configuration (its users, processes
/// and packages) over `db` on `port`, its files and key in `dir`, with
/// `args` and the environment `env` added.
pub fn demo_server(dir: &std::path::Path, db: &str, port: u16, args: &[&str], env: &[(&str, &str)]) -> Proc {
    use std::process::{Command, Stdio};
    Proc(
        Command::new(server_binary())
            .envs(env.iter().copied())
            .args(["--listen", &format!("127.0.0.1:{port}"), "--db", db])
            .args(args)
            .arg("--files")
            .arg(dir.join("files"))
            .arg("--secret-key-file")
            .arg(dir.join("rpa.key"))
            .stdout(Stdio::from(std::fs::File::create(dir.join("server.log")).unwrap()))
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    )
}
