//! Unified identity against a real directory (seed 001 §6.3.2 a): the
//! test starts OpenLDAP's `slapd` on a free port with its own database,
//! fills it (people, and the groups `rpa-operators` and `rpa-admins`),
//! and starts the example server configured to use it. A directory user
//! logs in with the directory's password and gets the processes its group
//! maps to; a wrong password is refused; the local administrator keeps
//! working; a user moved out of the mapped groups is disabled at the next
//! sync and cannot log in; a user put in the admin group gets the admin
//! role; with the directory stopped, a directory user's login is refused
//! in words while local users log in.
//!
//! Needs Debian's `slapd` (`.ci/run` installs it): without it the test
//! says so and passes, except under `CI=true`, where it fails.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use ldap3::{LdapConnAsync, Mod};
use serde_json::{Value, json};

mod support;

const SUFFIX: &str = "dc=example,dc=com";
const ROOT_DN: &str = "cn=admin,dc=example,dc=com";
const ROOT_PW: &str = "directory-root-pw";

fn slapd() -> Option<PathBuf> {
    let p = PathBuf::from("/usr/sbin/slapd");
    p.exists().then_some(p)
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A running slapd, stopped when dropped.
struct Slapd {
    child: std::process::Child,
    url: String,
}

impl Drop for Slapd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_slapd(bin: &Path, dir: &Path, port: u16) -> Slapd {
    let db = dir.join("ldap-db");
    std::fs::create_dir_all(&db).unwrap();
    let conf = dir.join("slapd.conf");
    std::fs::write(
        &conf,
        format!(
            "include /etc/ldap/schema/core.schema\n\
             include /etc/ldap/schema/cosine.schema\n\
             include /etc/ldap/schema/inetorgperson.schema\n\
             pidfile {dir}/slapd.pid\n\
             modulepath /usr/lib/ldap\n\
             moduleload back_mdb\n\
             database mdb\n\
             maxsize 10485760\n\
             suffix \"{SUFFIX}\"\n\
             rootdn \"{ROOT_DN}\"\n\
             rootpw {ROOT_PW}\n\
             directory {db}\n",
            dir = dir.display(),
            db = db.display()
        ),
    )
    .unwrap();
    let url = format!("ldap://127.0.0.1:{port}");
    let child = std::process::Command::new(bin)
        .arg("-f")
        .arg(&conf)
        .args(["-h", &format!("{url}/"), "-d", "0"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    Slapd { child, url }
}

async fn directory(url: &str) -> ldap3::Ldap {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Ok((conn, mut ldap)) = LdapConnAsync::new(url).await {
            ldap3::drive!(conn);
            if ldap
                .simple_bind(ROOT_DN, ROOT_PW)
                .await
                .and_then(|r| r.success())
                .is_ok()
            {
                return ldap;
            }
        }
        assert!(Instant::now() < deadline, "slapd did not come up at {url}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn set(v: &[&str]) -> std::collections::HashSet<String> {
    v.iter().map(|s| (*s).to_owned()).collect()
}

async fn add(ldap: &mut ldap3::Ldap, dn: &str, attrs: Vec<(&str, Vec<&str>)>) {
    let attrs: Vec<(String, std::collections::HashSet<String>)> =
        attrs.into_iter().map(|(k, v)| (k.to_owned(), set(&v))).collect();
    ldap.add(dn, attrs).await.unwrap().success().unwrap();
}

async fn person(ldap: &mut ldap3::Ldap, uid: &str, password: &str) -> String {
    let dn = format!("uid={uid},ou=people,{SUFFIX}");
    add(
        ldap,
        &dn,
        vec![
            ("objectClass", vec!["inetOrgPerson"]),
            ("uid", vec![uid]),
            ("cn", vec![uid]),
            ("sn", vec![uid]),
            ("userPassword", vec![password]),
        ],
    )
    .await;
    dn
}

async fn login(http: &reqwest::Client, base: &str, user: &str, pw: &str) -> Value {
    support::post(
        http,
        format!("{base}/rpa/api/login"),
        &[],
        json!({"username": user, "password": pw}),
    )
    .await
    .map(|(_, v)| v)
    .unwrap_or(Value::Null)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn directory_users_log_in_with_their_groups_grants_and_lose_them_at_the_next_sync() {
    let Some(bin) = slapd() else {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "CI=true: no slapd at /usr/sbin/slapd (apt-get install slapd)"
        );
        eprintln!("skipped: no slapd at /usr/sbin/slapd (apt-get install slapd)");
        return;
    };
    let dir = std::env::temp_dir().join(format!("rpa-ldap-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let ldap_port = free_port();
    let mut slapd = Some(start_slapd(&bin, &dir, ldap_port));
    let url = slapd.as_ref().unwrap().url.clone();
    let mut ldap = directory(&url).await;
    add(
        &mut ldap,
        SUFFIX,
        vec![
            ("objectClass", vec!["dcObject", "organization"]),
            ("o", vec!["Example"]),
            ("dc", vec!["example"]),
        ],
    )
    .await;
    for ou in ["people", "groups"] {
        add(
            &mut ldap,
            &format!("ou={ou},{SUFFIX}"),
            vec![("objectClass", vec!["organizationalUnit"]), ("ou", vec![ou])],
        )
        .await;
    }
    let carol = person(&mut ldap, "carol", "carol-directory-pw").await;
    let dave = person(&mut ldap, "dave", "dave-directory-pw").await;
    let erin = person(&mut ldap, "erin", "erin-directory-pw").await;
    let operators = format!("cn=rpa-operators,ou=groups,{SUFFIX}");
    let admins = format!("cn=rpa-admins,ou=groups,{SUFFIX}");
    add(
        &mut ldap,
        &operators,
        vec![
            ("objectClass", vec!["groupOfNames"]),
            ("cn", vec!["rpa-operators"]),
            ("member", vec![carol.as_str(), dave.as_str()]),
        ],
    )
    .await;
    add(
        &mut ldap,
        &admins,
        vec![
            ("objectClass", vec!["groupOfNames"]),
            ("cn", vec!["rpa-admins"]),
            ("member", vec![erin.as_str()]),
        ],
    )
    .await;

    let config = json!({
        "admin": {"name": "admin", "password": "local-admin-pw"},
        "processes": [
            {"name": "Invoice entry", "type": "Unattended"},
            {"name": "Payroll", "type": "Unattended"}
        ],
        "ldap": {
            "url": url,
            "bindDn": ROOT_DN,
            "bindPassword": ROOT_PW,
            "usersBase": format!("ou=people,{SUFFIX}"),
            "groupsBase": format!("ou=groups,{SUFFIX}"),
            "disabledFilter": "(employeeType=disabled)",
            "groups": [
                {"group": operators, "processes": ["Invoice entry"]},
                {"group": admins, "roles": ["admin"]}
            ],
            "syncSeconds": 1,
            "timeoutSeconds": 2
        }
    });
    std::fs::write(dir.join("config.json"), config.to_string()).unwrap();
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let db = dir.join("rpa.db");
    let _server = support::Proc(support::start_server(&dir, &db.to_string_lossy(), port, &[]));
    let http = reqwest::Client::new();

    // carol: her directory password, the operators' process.
    let (carol_token, _) = support::login(&http, &base, "carol", "carol-directory-pw").await;
    let me = login(&http, &base, "carol", "carol-directory-pw").await;
    let processes: Vec<&str> = me["result"]["processes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert_eq!(processes, ["Invoice entry"], "{me}");
    let wrong = login(&http, &base, "carol", "not-her-password").await;
    assert_eq!(
        (&wrong["success"], &wrong["code"]),
        (&json!(false), &json!(500)),
        "{wrong}"
    );
    let empty = login(&http, &base, "carol", "").await;
    assert_eq!(
        empty["success"], false,
        "an empty password is never an anonymous bind: {empty}"
    );
    let local = login(&http, &base, "admin", "local-admin-pw").await;
    assert_eq!(local["success"], true, "the local administrator: {local}");
    // erin: the admin group's role.
    let (erin_token, _) = support::login(&http, &base, "erin", "erin-directory-pw").await;
    let roles = support::get_json(&http, format!("{base}/console/api/me"), &erin_token).await;
    assert!(
        roles["result"]["permissions"]
            .as_array()
            .unwrap()
            .contains(&json!("ManageUsers")),
        "{roles}"
    );
    let users = support::get_json(&http, format!("{base}/admin/users"), &erin_token).await;
    assert!(users.to_string().contains("carol"), "{users}");
    drop(carol_token);

    // dave leaves the operators: disabled at the next sync.
    ldap.modify(
        &operators,
        vec![Mod::Delete("member".to_owned(), set(&[dave.as_str()]))],
    )
    .await
    .unwrap()
    .success()
    .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let d = login(&http, &base, "dave", "dave-directory-pw").await;
        if d["success"] == false {
            break;
        }
        assert!(Instant::now() < deadline, "dave still logs in: {d}");
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let audit = support::get_json(&http, format!("{base}/admin/audit?limit=1000"), &erin_token).await;
    assert!(audit.to_string().contains("no longer in a mapped group"), "{audit}");

    // carol is disabled in the directory (disabledFilter): disabled here at
    // the next sync, though still in the group.
    ldap.modify(&carol, vec![Mod::Add("employeeType".to_owned(), set(&["disabled"]))])
        .await
        .unwrap()
        .success()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let c = login(&http, &base, "carol", "carol-directory-pw").await;
        if c["success"] == false {
            break;
        }
        assert!(Instant::now() < deadline, "carol still logs in: {c}");
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    ldap.modify(&carol, vec![Mod::Delete("employeeType".to_owned(), set(&["disabled"]))])
        .await
        .unwrap()
        .success()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let c = login(&http, &base, "carol", "carol-directory-pw").await;
        if c["success"] == true {
            break;
        }
        assert!(Instant::now() < deadline, "carol is not enabled again: {c}");
        tokio::time::sleep(Duration::from_millis(300)).await;
    }

    // The directory stops: its users are refused in words, local users log in.
    drop(ldap);
    slapd.take();
    let down = login(&http, &base, "carol", "carol-directory-pw").await;
    assert_eq!(down["success"], false, "{down}");
    assert!(
        down["message"]
            .as_str()
            .unwrap_or("")
            .contains("directory cannot be reached"),
        "{down}"
    );
    let local = login(&http, &base, "admin", "local-admin-pw").await;
    assert_eq!(local["success"], true, "{local}");
    let log = std::fs::read_to_string(dir.join(format!("server-{port}.log"))).unwrap_or_default();
    assert!(!log.contains(ROOT_PW), "the bind password is never logged");
    let _ = std::fs::remove_dir_all(&dir);
}
