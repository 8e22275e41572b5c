//! The `rpa` command line against the example server (demo configuration)
//! and a real robot: log in, manage users, start a job and follow its log
//! to the end, import queue items from CSV with one refused, verify the
//! audit chain, log out.

use std::io::Write;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use serde_json::Value;

mod support;

fn rpa_binary() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_rpa"))
}

/// Runs `rpa args` with `stdin` as its input; its output.
fn rpa(home: &Path, server: &str, args: &[&str], stdin: &str) -> Output {
    let mut child = Command::new(rpa_binary())
        .args(args)
        .env("RPA_HOME", home)
        .env("RPA_SERVER", server)
        .env_remove("RPA_TOKEN")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the rpa binary");
    child.stdin.take().unwrap().write_all(stdin.as_bytes()).unwrap();
    child.wait_with_output().unwrap()
}

fn ok(out: &Output) -> String {
    assert!(
        out.status.success(),
        "rpa failed: {}\n{}",
        String::from_utf8_lossy(&out.stderr),
        String::from_utf8_lossy(&out.stdout)
    );
    String::from_utf8(out.stdout.clone()).unwrap()
}

fn refused(out: &Output) -> String {
    assert_eq!(out.status.code(), Some(1), "{}", String::from_utf8_lossy(&out.stdout));
    String::from_utf8(out.stderr.clone()).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_command_line_administers_a_server() {
    let dir = std::env::temp_dir().join(format!("rpa-cli-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let home = dir.join("home");
    let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let base = format!("http://127.0.0.1:{port}");
    let _server = support::demo_server(&dir, "memory", port, &[], &[]);
    let http = reqwest::Client::new();
    support::login(&http, &base, "alice", "wonderland").await;

    // Without a session every command says how to get one.
    let e = refused(&rpa(&home, &base, &["jobs", "list"], ""));
    assert!(e.contains("rpa login"), "{e}");
    let e = refused(&rpa(&home, &base, &["login", "admin"], "wrong-password\n"));
    assert!(e.contains("rpa:"), "{e}");
    let out = ok(&rpa(&home, &base, &["login", "admin"], "admin-demo-password\n"));
    assert!(out.contains("logged in"), "{out}");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(home.join("session.json"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o077, 0, "the session file is readable by its owner only");
    }

    // Users.
    ok(&rpa(
        &home,
        &base,
        &["users", "create", "bob", "--process", "Invoice entry"],
        "bob-password-1\n",
    ));
    let users: Value = serde_json::from_str(&ok(&rpa(&home, &base, &["--json", "users", "list"], ""))).unwrap();
    let bob = users
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["name"] == "bob")
        .expect("bob");
    assert_eq!(bob["processes"].as_array().unwrap().len(), 1, "{bob}");
    let table = ok(&rpa(&home, &base, &["users", "list"], ""));
    assert!(table.lines().next().unwrap().starts_with("NAME"), "{table}");
    assert!(table.lines().any(|l| l.starts_with("bob ")), "{table}");

    // Queue items from a CSV file: 40 rows, the last repeats a reference.
    let mut csv = String::from("claim,amount\n");
    for i in 1..=39 {
        csv.push_str(&format!("C-{i},{}\n", i * 10));
    }
    csv.push_str("C-1,999\n");
    let file = dir.join("claims.csv");
    std::fs::write(&file, csv).unwrap();
    let path = file.to_string_lossy().into_owned();
    let out = ok(&rpa(
        &home,
        &base,
        &[
            "queues",
            "import",
            "Claims queue",
            &path,
            "--reference-column",
            "claim",
            "--dry-run",
        ],
        "",
    ));
    assert!(out.contains("40 rows read"), "{out}");
    let out = rpa(
        &home,
        &base,
        &["queues", "import", "Claims queue", &path, "--reference-column", "claim"],
        "",
    );
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert_eq!(out.status.code(), Some(1), "one row is refused: {stdout}");
    assert!(stdout.contains("39 items added, 1 refused"), "{stdout}");
    assert!(stdout.contains("row 40:"), "{stdout}");
    let queues: Value = serde_json::from_str(&ok(&rpa(&home, &base, &["--json", "queues", "list"], ""))).unwrap();
    assert_eq!(queues[0]["newItems"], 39, "{queues}");
    // The import runs rows side by side: one added after it is the newest.
    ok(&rpa(
        &home,
        &base,
        &["queues", "add", "Claims queue", "--reference", "C-LATE"],
        "",
    ));
    let items = ok(&rpa(
        &home,
        &base,
        &["queues", "items", "Claims queue", "--limit", "5"],
        "",
    ));
    assert_eq!(items.lines().count(), 6, "a header and five items: {items}");
    assert!(
        items.lines().nth(1).is_some_and(|l| l.contains("C-LATE")),
        "the newest first: {items}"
    );

    // Package versions: a new one uploaded, listed, then a rollback.
    let script = dir.join("v2.sh");
    std::fs::write(&script, "echo '::output {\"entered\": true}'\n").unwrap();
    let script = script.to_string_lossy().into_owned();
    let out = ok(&rpa(
        &home,
        &base,
        &["processes", "upload", "Invoice entry", &script],
        "",
    ));
    assert!(out.contains("1.0.1"), "the next patch: {out}");
    let out = ok(&rpa(&home, &base, &["processes", "packages", "Invoice entry"], ""));
    assert!(out.contains("1.0.1") && out.contains("1.0.0"), "{out}");
    ok(&rpa(&home, &base, &["processes", "pin", "Invoice entry", "1.0.0"], ""));
    let listed: Value = serde_json::from_str(&ok(&rpa(
        &home,
        &base,
        &["--json", "processes", "packages", "Invoice entry"],
        "",
    )))
    .unwrap();
    assert_eq!(listed[1]["version"], "1.0.0");
    assert_eq!(listed[1]["current"], true, "{listed}");
    let out = ok(&rpa(
        &home,
        &base,
        &["processes", "pin", "Invoice entry", "--latest"],
        "",
    ));
    assert!(out.contains("follows the latest version: 1.0.1"), "{out}");
    let e = refused(&rpa(&home, &base, &["processes", "pin", "Invoice entry", "7.0.0"], ""));
    assert!(e.contains("no package version 7.0.0"), "{e}");

    // The catalogue: publish, find, subscribe.
    let out = ok(&rpa(
        &home,
        &base,
        &[
            "--json",
            "catalogue",
            "publish",
            "Invoice entry",
            "--description",
            "Types invoices",
            "--tag",
            "finance",
        ],
        "",
    ));
    let listing: Value = serde_json::from_str(&out).unwrap();
    let id = listing["listingId"].to_string();
    let found = ok(&rpa(
        &home,
        &base,
        &["catalogue", "search", "invoices", "--tag", "finance"],
        "",
    ));
    assert!(found.contains("Invoice entry"), "{found}");
    let out = ok(&rpa(
        &home,
        &base,
        &["catalogue", "subscribe", &id, "--name", "Invoices copy"],
        "",
    ));
    assert!(out.contains("Invoices copy"), "{out}");
    ok(&rpa(&home, &base, &["catalogue", "unpublish", &id], ""));
    let found = ok(&rpa(&home, &base, &["catalogue", "search"], ""));
    assert!(found.contains("(none)"), "{found}");

    // A job run by a real robot, its log followed to the end.
    let _robot = support::start_robot(&base, &dir, "robot-2", "acme-vendor-secret");
    let started: Value = serde_json::from_str(&ok(&rpa(
        &home,
        &base,
        &[
            "--json",
            "jobs",
            "start",
            "Invoice entry",
            "--params",
            r#"{"invoice": "12", "customer": "Dee"}"#,
        ],
        "",
    )))
    .unwrap();
    let job = started["jobId"].as_str().unwrap().to_owned();
    let out = ok(&rpa(&home, &base, &["jobs", "logs", &job, "--follow"], ""));
    assert!(out.contains("-- the job ended Successful"), "{out}");
    let shown = ok(&rpa(&home, &base, &["jobs", "show", &job], ""));
    assert!(
        shown.contains("Successful") && shown.contains("\"entered\":true"),
        "{shown}"
    );
    let listed = ok(&rpa(&home, &base, &["jobs", "list", "--state", "Successful"], ""));
    assert!(listed.contains(&job), "{listed}");
    let e = refused(&rpa(
        &home,
        &base,
        &["jobs", "start", "Invoice entry", "--params", "nope"],
        "",
    ));
    assert!(e.contains("must be a JSON object"), "{e}");
    let e = refused(&rpa(&home, &base, &["jobs", "list", "--state", "Sleeping"], ""));
    assert!(e.contains("Sleeping"), "{e}");

    // The configuration: exported without secrets, imported back with more.
    let license = dir.join("robot-9.lic");
    std::fs::write(&license, "LICENSE-FOR-ROBOT-9\n").unwrap();
    let license = license.to_string_lossy().into_owned();
    ok(&rpa(
        &home,
        &base,
        &["robots", "add", "robot-9", "--vendor", "acme", "--license", &license],
        "",
    ));
    let exported = dir.join("exported.json");
    let exported_path = exported.to_string_lossy().into_owned();
    ok(&rpa(
        &home,
        &base,
        &["config", "export", "--output", &exported_path],
        "",
    ));
    let text = std::fs::read_to_string(&exported).unwrap();
    assert!(
        !text.contains("wonderland") && !text.contains("acme-vendor-secret"),
        "no secrets: {text}"
    );
    let mut doc: Value = serde_json::from_str(&text).unwrap();
    let names: Vec<&str> = doc["processes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert!(
        names.contains(&"Invoice entry") && names.contains(&"Claims queue"),
        "{names:?}"
    );
    let robot9 = doc["robots"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["robotId"] == "robot-9")
        .unwrap();
    assert_eq!(robot9["licenseContent"], "LICENSE-FOR-ROBOT-9", "{robot9}");
    let alice = doc["users"]
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["name"] == "alice")
        .unwrap();
    assert!(alice.get("password").is_none(), "{alice}");
    // A new process and a new user without a password: refused, nothing created.
    let mut imported = doc["processes"][0].clone();
    imported["name"] = "Imported process".into();
    doc["processes"].as_array_mut().unwrap().push(imported);
    doc["users"]
        .as_array_mut()
        .unwrap()
        .push(serde_json::json!({"name": "dora", "processes": ["Imported process"]}));
    std::fs::write(&exported, doc.to_string()).unwrap();
    let e = refused(&rpa(&home, &base, &["config", "import", &exported_path], ""));
    assert!(e.contains("user dora: a password is needed"), "{e}");
    let list = ok(&rpa(&home, &base, &["processes", "list"], ""));
    assert!(!list.contains("Imported process"), "nothing half-imported: {list}");
    doc["users"].as_array_mut().unwrap().last_mut().unwrap()["password"] = "dora-password-1".into();
    std::fs::write(&exported, doc.to_string()).unwrap();
    ok(&rpa(&home, &base, &["config", "import", &exported_path], ""));
    let list = ok(&rpa(&home, &base, &["processes", "list"], ""));
    assert!(list.contains("Imported process"), "{list}");
    ok(&rpa(&home, &base, &["config", "import", &exported_path], "")); // again: nothing new

    // Into a fresh server: the same configuration comes out of it.
    let dir2 = dir.join("second");
    std::fs::create_dir_all(&dir2).unwrap();
    std::fs::write(
        dir2.join("config.json"),
        serde_json::json!({
            "admin": {"name": "admin", "password": "second-admin-pw"},
            "vendors": [{"supplierCode": "acme", "secret": "acme-vendor-secret"}]
        })
        .to_string(),
    )
    .unwrap();
    let port2 = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let base2 = format!("http://127.0.0.1:{port2}");
    let _second = support::Proc(support::start_server(&dir2, "memory", port2, &[]));
    support::login(&http, &base2, "admin", "second-admin-pw").await;
    let home2 = dir.join("home2");
    ok(&rpa(&home2, &base2, &["login", "admin"], "second-admin-pw\n"));
    let full: Value = serde_json::from_str(&ok(&rpa(&home, &base, &["config", "export"], ""))).unwrap();
    let mut to_import = full.clone();
    for u in to_import["users"].as_array_mut().unwrap() {
        u["password"] = "a-new-password-1".into();
    }
    let file = dir.join("to-import.json");
    std::fs::write(&file, to_import.to_string()).unwrap();
    ok(&rpa(&home2, &base2, &["config", "import", &file.to_string_lossy()], ""));
    let again: Value = serde_json::from_str(&ok(&rpa(&home2, &base2, &["config", "export"], ""))).unwrap();
    for section in ["roles", "processes", "pools", "pipelines", "schedules"] {
        assert_eq!(again[section], full[section], "{section} round-trips");
    }
    // By name: the shipped customer-service workflow is installed when each
    // server starts, so the two servers hold the workflows in another order.
    let by_name = |v: &Value| {
        let mut w: Vec<Value> = v["flow"]["workflows"].as_array().unwrap().clone();
        w.sort_by_key(|w| w["name"].as_str().unwrap_or("").to_owned());
        w
    };
    assert_eq!(by_name(&again), by_name(&full), "workflows round-trip");
    assert_eq!(
        again["flow"]["directory"], full["flow"]["directory"],
        "the directory round-trips"
    );
    let users = |v: &Value| {
        let mut u: Vec<String> = v["users"].as_array().unwrap().iter().map(|u| u.to_string()).collect();
        u.sort();
        u
    };
    assert_eq!(users(&again), users(&full), "users, their roles and grants round-trip");

    // The audit chain; a disabled user; the end of the session.
    let out = ok(&rpa(&home, &base, &["audit", "verify"], ""));
    assert!(out.contains("the audit chain verifies"), "{out}");
    let tail = ok(&rpa(&home, &base, &["audit", "tail", "--limit", "5"], ""));
    assert_eq!(tail.lines().count(), 6, "a header and five events: {tail}");
    ok(&rpa(&home, &base, &["users", "disable", "bob"], ""));
    let e = refused(&rpa(&home, &base, &["login", "bob"], "bob-password-1\n"));
    assert!(!e.is_empty());
    ok(&rpa(&home, &base, &["logout"], ""));
    let e = refused(&rpa(&home, &base, &["robots", "list"], ""));
    assert!(e.contains("rpa login"), "{e}");
    let _ = std::fs::remove_dir_all(&dir);
}
