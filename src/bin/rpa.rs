//! `rpa`: the command line of an rpa server's administration, for people
//! (tables) and scripts (`--json`). It speaks the server's own APIs: seed
//! 000 login and jobs, `/admin/*`, `/console/api/*`.
//!
//! ```text
//! rpa login admin                       # asks for the password; keeps the session
//! rpa jobs list --state Faulted
//! rpa jobs logs 3f2a... --follow
//! rpa queues import "Claims queue" claims.csv --reference-column claim
//! rpa audit verify
//! ```
//!
//! The session (server and token) is kept in `$RPA_HOME/session.json`
//! (default `~/.config/rpa`), readable by this user only; `RPA_SERVER` and
//! `RPA_TOKEN` override it. Passwords and secrets are read from the
//! terminal without echo, or from standard input when it is not a terminal,
//! never from the command line. Exit status: 0 done, 1 refused or failed,
//! 2 bad usage.

use std::io::{IsTerminal, Read};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use serde_json::{Map, Value, json};

#[derive(Parser)]
#[command(
    name = "rpa",
    about = "Administer an rpa server: users, roles, processes, robots, jobs, queues, audit"
)]
struct Cli {
    /// The server's base URL (default: the logged-in session's, else http://127.0.0.1:8080).
    #[arg(long, global = true, env = "RPA_SERVER")]
    server: Option<String>,
    /// Print JSON (the API's result) instead of tables.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Log in (the password is asked for) and keep the session.
    Login { user: String },
    /// End the kept session.
    Logout,
    /// Users: list, create, unlock, disable, enable.
    #[command(subcommand)]
    Users(Users),
    /// Create a role from permissions (ManageUsers, ManageProcesses, ManageRobots, ViewAudit, OperateAllJobs).
    Role {
        name: String,
        #[arg(long = "permission", required = true)]
        permissions: Vec<String>,
    },
    /// Let a user start a process (name or id).
    Grant { user: String, process: String },
    /// Take a process away from a user.
    Revoke { user: String, process: String },
    /// Issue a personal access token for a user (shown once).
    Token {
        user: String,
        #[arg(long, default_value_t = 30)]
        days: u32,
    },
    /// Processes: list, create, upload a package.
    #[command(subcommand)]
    Processes(Processes),
    /// Robots: list, configure.
    #[command(subcommand)]
    Robots(Robots),
    /// Register a robot vendor (the secret is asked for).
    Vendor { code: String },
    /// Jobs: list, show, start, stop, kill, logs.
    #[command(subcommand)]
    Jobs(Jobs),
    /// Queues: depths, add an item, import items from CSV or JSON.
    #[command(subcommand)]
    Queues(Queues),
    /// The audit log: verify the chain, show the last events.
    #[command(subcommand)]
    Audit(Audit),
    /// The process catalogue: search, publish, subscribe, unpublish.
    #[command(subcommand)]
    Catalogue(Catalogue),
    /// The whole configuration, in the configuration file's format (no secrets).
    #[command(subcommand)]
    Config(ConfigCmd),
    /// Schedules and their next fire times.
    Schedules,
    /// Pipelines.
    Pipelines,
}

#[derive(Subcommand)]
enum Users {
    /// Every user.
    List,
    /// A new user (the password is asked for).
    Create {
        name: String,
        #[arg(long = "role")]
        roles: Vec<String>,
        /// Processes granted (names or ids).
        #[arg(long = "process")]
        processes: Vec<String>,
    },
    /// Unlock a user locked by wrong passwords.
    Unlock { name: String },
    /// Disable a user: no login, sessions stop at once.
    Disable { name: String },
    /// Enable a disabled user.
    Enable { name: String },
}

#[derive(Subcommand)]
enum Processes {
    /// Every process.
    List,
    /// Create a process from a JSON definition file (as in the configuration file).
    Create { file: PathBuf },
    /// The process's kept package versions, newest first.
    Packages { process: String },
    /// Run a kept version from now on (a rollback when older), or with
    /// --latest follow the latest version again.
    Pin {
        process: String,
        #[arg(required_unless_present = "latest")]
        version: Option<String>,
        #[arg(long, conflicts_with = "version")]
        latest: bool,
    },
    /// Upload a package file as a new version (default: the next patch).
    Upload {
        process: String,
        file: PathBuf,
        #[arg(long)]
        version: Option<String>,
    },
}

#[derive(Subcommand)]
enum Robots {
    /// Every robot with its state.
    List,
    /// Configure a robot (created if missing).
    Add {
        robot_id: String,
        #[arg(long)]
        vendor: Option<String>,
        #[arg(long)]
        pool: Option<String>,
        #[arg(long = "label")]
        labels: Vec<String>,
        #[arg(long)]
        attended: bool,
        /// A file holding the robot's license, bound to it (seed 001 SendLicense).
        #[arg(long)]
        license: Option<PathBuf>,
    },
}

#[derive(Subcommand)]
enum Jobs {
    /// The newest jobs of the last 30 days.
    List {
        #[arg(long)]
        process: Option<String>,
        #[arg(long)]
        state: Option<String>,
        #[arg(long, default_value_t = 50)]
        limit: u32,
    },
    /// A job with its steps and log.
    Show { job: String },
    /// Start a job of a process.
    Start {
        process: String,
        /// Arguments as a JSON object.
        #[arg(long, default_value = "{}")]
        params: String,
    },
    /// Ask a job's robot to stop it.
    Stop { job: String },
    /// End a job at once (Stopped), whatever its robot does.
    Kill { job: String },
    /// A job's run log; with --follow, until the job ends.
    Logs {
        job: String,
        #[arg(long, short)]
        follow: bool,
    },
}

#[derive(Subcommand)]
enum Queues {
    /// Queue processes and their waiting items.
    List,
    /// A queue's newest items.
    Items {
        process: String,
        #[arg(long, default_value_t = 50)]
        limit: u32,
    },
    /// Add one item.
    Add {
        process: String,
        /// The item's content as a JSON object.
        #[arg(long, default_value = "{}")]
        content: String,
        #[arg(long)]
        reference: Option<String>,
    },
    /// Add every row of a CSV file (a header line names the fields), a JSON
    /// array of objects, or JSON lines (`.jsonl`), with a progress bar.
    Import(Import),
}

#[derive(Args)]
struct Import {
    process: String,
    file: PathBuf,
    /// The field that holds each item's unique reference.
    #[arg(long)]
    reference_column: Option<String>,
    /// Requests in flight at once.
    #[arg(long, default_value_t = 8)]
    concurrency: usize,
    /// Read and check the file, add nothing.
    #[arg(long)]
    dry_run: bool,
}

#[derive(Subcommand)]
enum ConfigCmd {
    /// Write the server's configuration (to the file, or standard output).
    Export {
        #[arg(long, short)]
        output: Option<PathBuf>,
    },
    /// Create what a configuration file lists and the server lacks.
    Import { file: PathBuf },
}

#[derive(Subcommand)]
enum Catalogue {
    /// Published processes matching every word (name, description, tags).
    Search {
        #[arg(default_value = "")]
        words: String,
        #[arg(long)]
        tag: Option<String>,
    },
    /// Publish a process's current package version.
    Publish {
        process: String,
        #[arg(long)]
        name: Option<String>,
        #[arg(long, default_value = "")]
        description: String,
        #[arg(long = "tag")]
        tags: Vec<String>,
    },
    /// Subscribe: a process of your own running the published package.
    Subscribe {
        listing: i64,
        #[arg(long)]
        name: Option<String>,
        #[arg(long)]
        folder: Option<String>,
    },
    /// Unpublish a listing (subscribers keep their processes).
    Unpublish { listing: i64 },
}

#[derive(Subcommand)]
enum Audit {
    /// Verify the hash chain from the first event.
    Verify,
    /// The last events.
    Tail {
        #[arg(long, default_value_t = 20)]
        limit: u64,
    },
}

/// What went wrong, for the person at the terminal.
struct Failure(String);

impl<E: std::fmt::Display> From<E> for Failure {
    fn from(e: E) -> Failure {
        Failure(e.to_string())
    }
}

type Done = Result<(), Failure>;

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure(message)) => {
            eprintln!("rpa: {message}");
            ExitCode::from(1)
        }
    }
}

// ------------------------------------------------------------------ session

#[derive(Clone)]
struct Client {
    http: reqwest::Client,
    server: String,
    token: String,
}

fn home() -> PathBuf {
    if let Some(d) = std::env::var_os("RPA_HOME") {
        return PathBuf::from(d);
    }
    if let Some(d) = std::env::var_os("XDG_CONFIG_HOME") {
        return PathBuf::from(d).join("rpa");
    }
    PathBuf::from(std::env::var_os("HOME").unwrap_or_default()).join(".config/rpa")
}

fn kept() -> Option<Value> {
    let text = std::fs::read_to_string(home().join("session.json")).ok()?;
    serde_json::from_str(&text).ok()
}

fn keep(server: &str, user: &str, token: &str) -> Done {
    let dir = home();
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let path = dir.join("session.json");
    let text = json!({"server": server, "user": user, "token": token}).to_string();
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    std::io::Write::write_all(&mut file, text.as_bytes()).map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(())
}

fn server_of(cli: &Cli) -> String {
    cli.server
        .clone()
        .or_else(|| kept().and_then(|s| s["server"].as_str().map(str::to_owned)))
        .unwrap_or_else(|| "http://127.0.0.1:8080".into())
        .trim_end_matches('/')
        .to_owned()
}

fn client(cli: &Cli) -> Result<Client, Failure> {
    let token = std::env::var("RPA_TOKEN")
        .ok()
        .filter(|t| !t.is_empty())
        .or_else(|| kept().and_then(|s| s["token"].as_str().map(str::to_owned)))
        .ok_or_else(|| Failure("not logged in: run `rpa login <user>` (or set RPA_TOKEN)".into()))?;
    Ok(Client {
        http: reqwest::Client::builder().timeout(Duration::from_secs(60)).build()?,
        server: server_of(cli),
        token,
    })
}

/// A secret from the terminal (no echo) or one line of standard input.
fn secret(prompt: &str) -> Result<String, Failure> {
    let s = if std::io::stdin().is_terminal() {
        rpassword::prompt_password(prompt)?
    } else {
        let mut s = String::new();
        std::io::stdin().read_to_string(&mut s)?;
        s.lines().next().unwrap_or("").to_owned()
    };
    if s.is_empty() {
        return Err(Failure("an empty secret".into()));
    }
    Ok(s)
}

impl Client {
    /// Calls the API; the envelope's result (seed 000's envelope).
    async fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Result<Value, Failure> {
        let mut req = self
            .http
            .request(method, format!("{}{path}", self.server))
            .header("X-Access-Token", &self.token);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let r = req
            .send()
            .await
            .map_err(|e| format!("{}: {}", self.server, e.without_url()))?;
        let status = r.status();
        let v: Value = r
            .json()
            .await
            .map_err(|_| format!("{path}: the server answered {status} without the API's envelope"))?;
        if status == 401 || v["code"] == 401 {
            return Err(Failure(
                "the session has ended or is not valid: run `rpa login <user>`".into(),
            ));
        }
        if v["success"] != true {
            return Err(Failure(v["message"].as_str().unwrap_or("refused").to_owned()));
        }
        Ok(v.get("result").cloned().unwrap_or(Value::Null))
    }

    async fn get(&self, path: &str) -> Result<Value, Failure> {
        self.call(reqwest::Method::GET, path, None).await
    }

    async fn post(&self, path: &str, body: Value) -> Result<Value, Failure> {
        self.call(reqwest::Method::POST, path, Some(body)).await
    }

    /// A process's id from its name or id, among those the user may see.
    async fn process(&self, name_or_id: &str) -> Result<String, Failure> {
        let o = self.get("/console/api/overview").await?;
        let ps = o["processes"].as_array().cloned().unwrap_or_default();
        ps.iter()
            .find(|p| p["processId"] == name_or_id)
            .or_else(|| ps.iter().find(|p| p["name"] == name_or_id))
            .and_then(|p| p["processId"].as_str().map(str::to_owned))
            .ok_or_else(|| Failure(format!("no process {name_or_id} that you may see")))
    }
}

// ------------------------------------------------------------------ output

/// Prints `rows` as a table of `columns` (header, field), or as JSON.
fn show(json: bool, value: &Value, columns: &[(&str, &str)]) {
    if json {
        println!("{}", serde_json::to_string_pretty(value).unwrap_or_default());
        return;
    }
    let rows: Vec<Value> = match value {
        Value::Array(a) => a.clone(),
        v => vec![v.clone()],
    };
    let cell = |r: &Value, field: &str| -> String {
        match r.pointer(&format!("/{}", field.replace('.', "/"))) {
            None | Some(Value::Null) => String::new(),
            Some(Value::String(s)) => s.clone(),
            Some(Value::Array(a)) => a
                .iter()
                .map(|x| x.as_str().map_or_else(|| x.to_string(), str::to_owned))
                .collect::<Vec<_>>()
                .join(", "),
            Some(v) => v.to_string(),
        }
    };
    let table: Vec<Vec<String>> = rows
        .iter()
        .map(|r| columns.iter().map(|(_, f)| cell(r, f)).collect())
        .collect();
    let widths: Vec<usize> = columns
        .iter()
        .enumerate()
        .map(|(i, (h, _))| {
            table
                .iter()
                .map(|r| r[i].chars().count())
                .chain([h.len()])
                .max()
                .unwrap_or(0)
        })
        .collect();
    let line = |cells: Vec<String>| {
        let mut s = String::new();
        for (i, c) in cells.iter().enumerate() {
            if i > 0 {
                s.push_str("  ");
            }
            s.push_str(c);
            if i + 1 < cells.len() {
                s.push_str(&" ".repeat(widths[i].saturating_sub(c.chars().count())));
            }
        }
        println!("{}", s.trim_end());
    };
    line(columns.iter().map(|(h, _)| (*h).to_owned()).collect());
    for r in table {
        line(r);
    }
    if rows.is_empty() {
        println!("(none)");
    }
}

fn said(json: bool, value: &Value, words: &str) {
    if json {
        println!("{}", serde_json::to_string_pretty(value).unwrap_or_default());
    } else {
        println!("{words}");
    }
}

fn object(text: &str, what: &str) -> Result<Value, Failure> {
    match serde_json::from_str::<Value>(text) {
        Ok(v @ Value::Object(_)) => Ok(v),
        _ => Err(Failure(format!(
            "{what} must be a JSON object, as in '{{\"name\": \"value\"}}'"
        ))),
    }
}

fn time(ms: &Value) -> String {
    ms.as_i64()
        .and_then(chrono::DateTime::from_timestamp_millis)
        .map(|t| t.with_timezone(&chrono::Local).format("%Y-%m-%d %H:%M:%S").to_string())
        .unwrap_or_default()
}

// ------------------------------------------------------------------ commands

async fn run(cli: Cli) -> Done {
    let json = cli.json;
    match &cli.command {
        Command::Login { user } => {
            let server = server_of(&cli);
            let password = secret(&format!("{user}'s password: "))?;
            let http = reqwest::Client::new();
            let v: Value = http
                .post(format!("{server}/rpa/api/login"))
                .json(&json!({"username": user, "password": password}))
                .send()
                .await
                .map_err(|e| format!("{server}: {}", e.without_url()))?
                .json()
                .await
                .map_err(|_| format!("{server} does not answer as an rpa server"))?;
            if v["success"] != true {
                return Err(Failure(v["message"].as_str().unwrap_or("refused").to_owned()));
            }
            let token = v["result"]["token"].as_str().unwrap_or_default();
            keep(&server, user, token)?;
            said(
                json,
                &json!({"user": user, "server": server}),
                &format!("logged in to {server} as {user}"),
            );
            Ok(())
        }
        Command::Logout => {
            let c = client(&cli)?;
            let _ = c.post("/rpa/api/logout", json!({})).await;
            let _ = std::fs::remove_file(home().join("session.json"));
            said(json, &json!({}), "logged out");
            Ok(())
        }
        Command::Users(u) => users(&client(&cli)?, json, u).await,
        Command::Role { name, permissions } => {
            let c = client(&cli)?;
            let r = c
                .post("/admin/roles", json!({"name": name, "permissions": permissions}))
                .await?;
            show(
                json,
                &r,
                &[("ROLE", "name"), ("ID", "roleId"), ("PERMISSIONS", "permissions")],
            );
            Ok(())
        }
        Command::Grant { user, process } | Command::Revoke { user, process } => {
            let c = client(&cli)?;
            let pid = c.process(process).await.or_else(|e| hex_id(process).ok_or(e))?;
            let (path, word) = match cli.command {
                Command::Grant { .. } => ("/admin/grants", "granted"),
                _ => ("/admin/grants/revoke", "revoked"),
            };
            let r = c.post(path, json!({"name": user, "processId": pid})).await?;
            said(json, &r, &format!("{word}: {process} for {user}"));
            Ok(())
        }
        Command::Token { user, days } => {
            let c = client(&cli)?;
            let r = c.post("/admin/tokens", json!({"name": user, "days": days})).await?;
            show(
                json,
                &r,
                &[("TOKEN", "token"), ("USER", "user"), ("EXPIRES", "expiresAt")],
            );
            Ok(())
        }
        Command::Processes(p) => processes(&client(&cli)?, json, p).await,
        Command::Robots(r) => robots(&client(&cli)?, json, r).await,
        Command::Vendor { code } => {
            let c = client(&cli)?;
            let secret = secret(&format!("vendor {code}'s secret: "))?;
            let r = c
                .post("/admin/vendors", json!({"supplierCode": code, "secret": secret}))
                .await?;
            said(json, &r, &format!("vendor {code} registered"));
            Ok(())
        }
        Command::Jobs(j) => jobs(&client(&cli)?, json, j).await,
        Command::Queues(q) => queues(&client(&cli)?, json, q).await,
        Command::Audit(a) => audit(&client(&cli)?, json, a).await,
        Command::Catalogue(k) => catalogue(&client(&cli)?, json, k).await,
        Command::Config(ConfigCmd::Export { output }) => {
            let r = client(&cli)?.get("/admin/config").await?;
            let text = serde_json::to_string_pretty(&r)? + "\n";
            match output {
                Some(path) => {
                    std::fs::write(path, text).map_err(|e| format!("{}: {e}", path.display()))?;
                    said(
                        json,
                        &json!({"written": path}),
                        &format!("written to {}", path.display()),
                    );
                }
                None => print!("{text}"),
            }
            Ok(())
        }
        Command::Config(ConfigCmd::Import { file }) => {
            let doc = object(&read(file)?, &file.display().to_string())?;
            let r = client(&cli)?.post("/admin/config", doc).await?;
            said(json, &r, &format!("{} imported", file.display()));
            Ok(())
        }
        Command::Schedules => {
            let r = client(&cli)?.get("/admin/schedules").await?;
            show(
                json,
                &r,
                &[
                    ("ID", "scheduleId"),
                    ("NAME", "name"),
                    ("PROCESS", "processName"),
                    ("ENABLED", "enabled"),
                    ("NEXT", "nextFireTimes.0"),
                ],
            );
            Ok(())
        }
        Command::Pipelines => {
            let r = client(&cli)?.get("/admin/pipelines").await?;
            show(
                json,
                &r,
                &[
                    ("ID", "pipelineId"),
                    ("NAME", "name"),
                    ("VERSION", "version"),
                    ("UPDATED", "updateTime"),
                ],
            );
            Ok(())
        }
    }
}

fn hex_id(s: &str) -> Option<String> {
    (s.len() == 32 && s.chars().all(|c| c.is_ascii_hexdigit())).then(|| s.to_ascii_lowercase())
}

async fn users(c: &Client, json: bool, cmd: &Users) -> Done {
    match cmd {
        Users::List => {
            let r = c.get("/admin/users").await?;
            show(
                json,
                &r,
                &[
                    ("NAME", "name"),
                    ("LOCKED", "locked"),
                    ("DISABLED", "disabled"),
                    ("ROLES", "roles"),
                    ("PROCESSES", "processes"),
                ],
            );
        }
        Users::Create { name, roles, processes } => {
            let password = secret(&format!("{name}'s new password: "))?;
            let mut ids = Vec::new();
            for p in processes {
                ids.push(c.process(p).await.or_else(|e| hex_id(p).ok_or(e))?);
            }
            let r = c
                .post(
                    "/admin/users",
                    json!({"name": name, "password": password, "roles": roles, "processes": ids}),
                )
                .await?;
            said(json, &r, &format!("user {name} created"));
        }
        Users::Unlock { name } | Users::Disable { name } | Users::Enable { name } => {
            let (path, word) = match cmd {
                Users::Unlock { .. } => ("/admin/users/unlock", "unlocked"),
                Users::Disable { .. } => ("/admin/users/disable", "disabled"),
                _ => ("/admin/users/enable", "enabled"),
            };
            let r = c.post(path, json!({"name": name})).await?;
            said(json, &r, &format!("{name}: {word}"));
        }
    }
    Ok(())
}

async fn processes(c: &Client, json: bool, cmd: &Processes) -> Done {
    match cmd {
        Processes::List => {
            let r = c.get("/admin/processes").await?;
            show(
                json,
                &r,
                &[
                    ("ID", "processId"),
                    ("NAME", "processName"),
                    ("TYPE", "type"),
                    ("VERSION", "version"),
                    ("RUNNING", "currentRunNum"),
                    ("MAX", "maxRunNum"),
                    ("ITEMS", "pendingItems"),
                ],
            );
        }
        Processes::Create { file } => {
            let def = object(&read(file)?, &file.display().to_string())?;
            let r = c.post("/admin/processes", def).await?;
            show(json, &r, &[("ID", "processId")]);
        }
        Processes::Packages { process } => {
            let pid = c.process(process).await.or_else(|e| hex_id(process).ok_or(e))?;
            let r = c.get(&format!("/admin/processes/{pid}/packages")).await?;
            show(
                json,
                &r,
                &[
                    ("VERSION", "version"),
                    ("CURRENT", "current"),
                    ("SHA256", "sha256"),
                    ("SIZE", "size"),
                    ("UPLOADED", "uploadTime"),
                    ("BY", "uploadedBy"),
                ],
            );
        }
        Processes::Pin { process, version, .. } => {
            let pid = c.process(process).await.or_else(|e| hex_id(process).ok_or(e))?;
            let r = c
                .post(
                    &format!("/admin/processes/{pid}/package/pin"),
                    json!({"version": version}),
                )
                .await?;
            said(
                json,
                &r,
                &match version {
                    Some(v) => format!("{process} runs version {v} from now on"),
                    None => format!(
                        "{process} follows the latest version: {}",
                        r["version"].as_str().unwrap_or("")
                    ),
                },
            );
        }
        Processes::Upload { process, file, version } => {
            let pid = c.process(process).await.or_else(|e| hex_id(process).ok_or(e))?;
            let bytes = std::fs::read(file).map_err(|e| format!("{}: {e}", file.display()))?;
            let mut url = format!("{}/admin/processes/{pid}/package", c.server);
            if let Some(v) = version {
                url.push_str(&format!("?version={}", urlencode(v)));
            }
            let v: Value = c
                .http
                .post(url)
                .header("X-Access-Token", &c.token)
                .body(bytes)
                .send()
                .await
                .map_err(|e| e.without_url().to_string())?
                .json()
                .await?;
            if v["success"] != true {
                return Err(Failure(v["message"].as_str().unwrap_or("refused").to_owned()));
            }
            show(
                json,
                &v["result"],
                &[
                    ("VERSION", "version"),
                    ("CURRENT", "current"),
                    ("SHA256", "sha256"),
                    ("FILE", "fileId"),
                ],
            );
        }
    }
    Ok(())
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => (b as char).to_string(),
            b => format!("%{b:02X}"),
        })
        .collect()
}

fn read(path: &Path) -> Result<String, Failure> {
    std::fs::read_to_string(path).map_err(|e| Failure(format!("{}: {e}", path.display())))
}

async fn robots(c: &Client, json: bool, cmd: &Robots) -> Done {
    match cmd {
        Robots::List => {
            let r = c.get("/admin/robots").await?;
            show(
                json,
                &r,
                &[
                    ("ROBOT", "robotId"),
                    ("STATE", "state"),
                    ("JOB", "jobId"),
                    ("POOL", "pool"),
                    ("LABELS", "labels"),
                    ("LAST SEEN", "lastSeen"),
                ],
            );
        }
        Robots::Add {
            robot_id,
            vendor,
            pool,
            labels,
            attended,
            license,
        } => {
            let mut body = json!({"robotId": robot_id, "labels": labels, "attended": attended});
            if let Some(path) = license {
                body["licenseContent"] = json!(read(path)?.trim_end());
            }
            if let Some(v) = vendor {
                body["vendor"] = json!(v);
            }
            if let Some(p) = pool {
                body["pool"] = json!(p);
            }
            let r = c.post("/admin/robots", body).await?;
            said(json, &r, &format!("robot {robot_id} configured"));
        }
    }
    Ok(())
}

const ENDED: [&str; 4] = ["Successful", "Faulted", "Stopped", "Canceled"];

async fn jobs(c: &Client, json: bool, cmd: &Jobs) -> Done {
    match cmd {
        Jobs::List { process, state, limit } => {
            let mut path = format!("/console/api/jobs?limit={limit}");
            if let Some(p) = process {
                path.push_str(&format!("&processId={}", c.process(p).await?));
            }
            if let Some(s) = state {
                path.push_str(&format!("&state={}", urlencode(s)));
            }
            let mut r = c.get(&path).await?;
            for j in r.as_array_mut().into_iter().flatten() {
                j["created"] = json!(time(&j["createdAt"]));
            }
            show(
                json,
                &r,
                &[
                    ("JOB", "jobId"),
                    ("PROCESS", "processName"),
                    ("STATE", "state"),
                    ("ROBOT", "robotId"),
                    ("BY", "userName"),
                    ("CREATED", "created"),
                ],
            );
        }
        Jobs::Show { job } => {
            let r = c.get(&format!("/console/api/jobs/{job}")).await?;
            if json {
                show(true, &r, &[]);
                return Ok(());
            }
            for (k, f) in [
                ("job", "jobId"),
                ("process", "processName"),
                ("state", "state"),
                ("robot", "robotId"),
                ("attempt", "attempt"),
                ("started by", "userName"),
                ("error code", "errorCode"),
                ("reason", "reason"),
            ] {
                let v = &r[f];
                if !v.is_null() {
                    println!("{k:>11}: {}", v.as_str().map_or_else(|| v.to_string(), str::to_owned));
                }
            }
            println!("{:>11}: {}", "created", time(&r["createdAt"]));
            println!("{:>11}: {}", "ended", time(&r["endedAt"]));
            println!("{:>11}: {}", "arguments", r["arguments"]);
            println!("{:>11}: {}", "outputs", r["outputs"]);
            for s in r["steps"].as_array().into_iter().flatten() {
                println!("{:>11}: {} {}", "step", s["step"], s["name"].as_str().unwrap_or(""));
            }
            print_logs(&r, 0);
        }
        Jobs::Start { process, params } => {
            let pid = c.process(process).await?;
            let r = c
                .post(
                    "/rpa/api/startJob",
                    json!({"processId": pid, "params": object(params, "--params")?}),
                )
                .await?;
            show(
                json,
                &r,
                &[("JOB", "jobId"), ("STATE", "status"), ("CREATED", "creationTime")],
            );
        }
        Jobs::Stop { job } => {
            let r = c.post("/rpa/api/stopJob", json!({"jobId": job})).await?;
            said(json, &r, &format!("{job}: stop asked of its robot"));
        }
        Jobs::Kill { job } => {
            let r = c.post(&format!("/admin/jobs/{job}/kill"), json!({})).await?;
            show(json, &r, &[("JOB", "jobId"), ("STATE", "state")]);
        }
        Jobs::Logs { job, follow } => {
            let mut printed = 0;
            loop {
                let r = c.get(&format!("/console/api/jobs/{job}")).await?;
                if json {
                    for l in r["logs"].as_array().into_iter().flatten().skip(printed) {
                        println!("{l}");
                    }
                    printed = r["logs"].as_array().map_or(0, Vec::len);
                } else {
                    printed = print_logs(&r, printed);
                }
                let state = r["state"].as_str().unwrap_or("");
                if !follow || ENDED.contains(&state) {
                    if *follow && !json {
                        println!("-- the job ended {state}");
                    }
                    break;
                }
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    }
    Ok(())
}

/// Prints a job's log lines after the first `skip`; how many it has.
fn print_logs(r: &Value, skip: usize) -> usize {
    let logs = r["logs"].as_array().cloned().unwrap_or_default();
    for l in logs.iter().skip(skip) {
        println!(
            "{} {:<5} {}",
            l["logAt"].as_str().unwrap_or(""),
            l["level"].as_str().unwrap_or(""),
            l["content"].as_str().unwrap_or("")
        );
    }
    logs.len()
}

async fn queues(c: &Client, json: bool, cmd: &Queues) -> Done {
    match cmd {
        Queues::List => {
            let o = c.get("/console/api/overview").await?;
            show(
                json,
                &o["queues"],
                &[
                    ("QUEUE", "name"),
                    ("ID", "processId"),
                    ("NEW", "newItems"),
                    ("RUNNING", "running"),
                ],
            );
        }
        Queues::Items { process, limit } => {
            let pid = c.process(process).await?;
            let mut r = c.get(&format!("/console/api/queues/{pid}/items?limit={limit}")).await?;
            for i in r.as_array_mut().into_iter().flatten() {
                i["created"] = json!(time(&i["createdAt"]));
            }
            show(
                json,
                &r,
                &[
                    ("ITEM", "itemId"),
                    ("STATE", "state"),
                    ("REFERENCE", "reference"),
                    ("RETRIES", "retryCount"),
                    ("JOB", "jobId"),
                    ("CREATED", "created"),
                ],
            );
        }
        Queues::Add {
            process,
            content,
            reference,
        } => {
            let pid = c.process(process).await?;
            let mut body = json!({"processId": pid, "params": object(content, "--content")?});
            if let Some(r) = reference {
                body["reference"] = json!(r);
            }
            let r = c.post("/rpa/api/addQueueItem", body).await?;
            show(
                json,
                &r,
                &[("ITEM", "key"), ("STATE", "status"), ("CREATED", "creationTime")],
            );
        }
        Queues::Import(i) => import(c, json, i).await?,
    }
    Ok(())
}

/// The rows of a CSV, JSON or JSON-lines file, as objects.
fn rows(path: &Path) -> Result<Vec<Map<String, Value>>, Failure> {
    let text = read(path)?;
    let ext = path
        .extension()
        .and_then(|e| e.to_str())
        .unwrap_or("")
        .to_ascii_lowercase();
    let not_object = |n: usize| Failure(format!("{}: row {n} is not a JSON object", path.display()));
    match ext.as_str() {
        "json" => match serde_json::from_str::<Value>(&text)? {
            Value::Array(a) => a
                .into_iter()
                .enumerate()
                .map(|(i, v)| match v {
                    Value::Object(o) => Ok(o),
                    _ => Err(not_object(i + 1)),
                })
                .collect(),
            _ => Err(Failure(format!(
                "{}: a JSON array of objects was expected",
                path.display()
            ))),
        },
        "jsonl" | "ndjson" => text
            .lines()
            .enumerate()
            .filter(|(_, l)| !l.trim().is_empty())
            .map(|(i, l)| match serde_json::from_str::<Value>(l) {
                Ok(Value::Object(o)) => Ok(o),
                _ => Err(not_object(i + 1)),
            })
            .collect(),
        _ => {
            let mut reader = csv::Reader::from_reader(text.as_bytes());
            let headers = reader.headers()?.clone();
            let mut out = Vec::new();
            for (i, rec) in reader.records().enumerate() {
                let rec = rec.map_err(|e| format!("{}: row {}: {e}", path.display(), i + 1))?;
                out.push(
                    headers
                        .iter()
                        .zip(rec.iter())
                        .map(|(h, v)| (h.to_owned(), Value::String(v.to_owned())))
                        .collect(),
                );
            }
            Ok(out)
        }
    }
}

async fn import(c: &Client, json: bool, i: &Import) -> Done {
    let pid = c.process(&i.process).await?;
    let items = rows(&i.file)?;
    if let Some(col) = &i.reference_column
        && let Some(n) = items.iter().position(|r| !r.contains_key(col))
    {
        return Err(Failure(format!("row {}: no field {col}", n + 1)));
    }
    if i.dry_run {
        said(
            json,
            &json!({"rows": items.len()}),
            &format!("{} rows read; nothing added (--dry-run)", items.len()),
        );
        return Ok(());
    }
    let bar = if json || !std::io::stderr().is_terminal() {
        indicatif::ProgressBar::hidden()
    } else {
        indicatif::ProgressBar::new(items.len() as u64)
    };
    bar.set_style(
        indicatif::ProgressStyle::with_template("{bar:40} {pos}/{len} items  {per_sec}  eta {eta}")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    let limit = Arc::new(tokio::sync::Semaphore::new(i.concurrency.max(1)));
    let mut tasks = tokio::task::JoinSet::new();
    for (n, row) in items.into_iter().enumerate() {
        let permit = limit.clone().acquire_owned().await?;
        let (c, pid, bar) = (c.clone(), pid.clone(), bar.clone());
        let reference = i
            .reference_column
            .as_ref()
            .and_then(|col| row.get(col))
            .map(|v| v.as_str().map_or_else(|| v.to_string(), str::to_owned));
        tasks.spawn(async move {
            let mut body = json!({"processId": pid, "params": Value::Object(row)});
            if let Some(r) = reference {
                body["reference"] = json!(r);
            }
            let r = c.post("/rpa/api/addQueueItem", body).await;
            drop(permit);
            bar.inc(1);
            (n + 1, r.err().map(|Failure(m)| m))
        });
    }
    let mut failed: Vec<(usize, String)> = Vec::new();
    let mut added = 0;
    while let Some(done) = tasks.join_next().await {
        match done? {
            (_, None) => added += 1,
            (n, Some(m)) => failed.push((n, m)),
        }
    }
    bar.finish_and_clear();
    failed.sort();
    if json {
        let failures: Vec<Value> = failed.iter().map(|(n, m)| json!({"row": n, "message": m})).collect();
        println!("{}", json!({"added": added, "failed": failures}));
    } else {
        println!("{added} items added, {} refused", failed.len());
        for (n, m) in &failed {
            println!("  row {n}: {m}");
        }
    }
    if failed.is_empty() {
        Ok(())
    } else {
        Err(Failure(format!("{} rows were not added", failed.len())))
    }
}

async fn catalogue(c: &Client, json: bool, cmd: &Catalogue) -> Done {
    let listing = [
        ("ID", "listingId"),
        ("NAME", "name"),
        ("VERSION", "version"),
        ("TAGS", "tags"),
        ("DESCRIPTION", "description"),
    ];
    match cmd {
        Catalogue::Search { words, tag } => {
            let mut path = format!("/admin/catalogue?q={}", urlencode(words));
            if let Some(t) = tag {
                path.push_str(&format!("&tag={}", urlencode(t)));
            }
            show(json, &c.get(&path).await?, &listing);
        }
        Catalogue::Publish {
            process,
            name,
            description,
            tags,
        } => {
            let pid = c.process(process).await.or_else(|e| hex_id(process).ok_or(e))?;
            let r = c
                .post(
                    "/admin/catalogue",
                    json!({"processId": pid, "name": name, "description": description, "tags": tags}),
                )
                .await?;
            show(json, &r, &listing);
        }
        Catalogue::Subscribe {
            listing: id,
            name,
            folder,
        } => {
            let r = c
                .post(
                    &format!("/admin/catalogue/{id}/subscribe"),
                    json!({"name": name, "folder": folder}),
                )
                .await?;
            show(
                json,
                &r,
                &[("ID", "processId"), ("NAME", "processName"), ("VERSION", "version")],
            );
        }
        Catalogue::Unpublish { listing: id } => {
            let r = c
                .call(reqwest::Method::DELETE, &format!("/admin/catalogue/{id}"), None)
                .await?;
            said(json, &r, &format!("listing {id} unpublished"));
        }
    }
    Ok(())
}

async fn audit(c: &Client, json: bool, cmd: &Audit) -> Done {
    match cmd {
        Audit::Verify => {
            let r = c
                .get("/admin/audit/verify")
                .await
                .map_err(|Failure(m)| Failure(format!("the audit chain does not verify: {m}")))?;
            said(json, &r, &format!("the audit chain verifies: {} events", r["verified"]));
        }
        Audit::Tail { limit } => {
            let head = c.get("/admin/audit/verify").await?["verified"].as_u64().unwrap_or(0);
            let after = head.saturating_sub(*limit);
            let r = c.get(&format!("/admin/audit?after={after}&limit={limit}")).await?;
            show(
                json,
                &r,
                &[
                    ("SEQ", "seq"),
                    ("TIME", "time"),
                    ("WHO", "actor"),
                    ("ACTION", "action"),
                    ("SUBJECT", "subject"),
                    ("DETAIL", "detail"),
                ],
            );
        }
    }
    Ok(())
}
