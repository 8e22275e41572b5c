//! UiPath's job list with a million jobs stored, on the SQLite store, over
//! loopback: `GET /odata/Jobs?$filter=State eq 'Pending'&$top=100` (500 of
//! the million Pending: the state index reads them alone), and the same
//! for `Successful` (999,500 of them: the count walks the index). One
//! client, one request at a time. `cargo bench --bench odata_jobs`; the
//! million jobs are written once into a database under the system's
//! temporary directory and kept for later runs. Figures go to
//! docs/PERFORMANCE.md.
#![allow(missing_docs)]

use std::sync::Arc;
use std::time::Duration;

use criterion::{Criterion, SamplingMode, criterion_group, criterion_main};
use rpa::core::auth::PasswordCost;
use rpa::core::conformance::sample_job;
use rpa::core::model::JobState;
use rpa::core::store::prelude::*;
use rpa::core::store::{Commit, Write};
use rpa::http::config::Config;
use rpa::http::{AppState, Files, HttpSettings, app};
use rpa::sql::{SqlOptions, SqlStore};
use rpa::{Engine, EngineConfig, SystemClock, Timestamp};
use serde_json::{Value, json};

const JOBS: i64 = 1_000_000;
/// One job in this many is Pending.
const PENDING_EVERY: i64 = 2_000;

struct Rig {
    rt: tokio::runtime::Runtime,
    base: String,
    token: String,
    http: reqwest::Client,
}

fn rig() -> Rig {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let (base, token) = rt.block_on(async {
        let dir = std::env::temp_dir().join("rpa-bench-odata-jobs");
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("jobs.db");
        let fresh = !path.exists();
        let store = SqlStore::connect(&SqlStore::sqlite_url(&path), SqlOptions::default())
            .await
            .unwrap();
        let config = EngineConfig {
            password_cost: PasswordCost::TESTING,
            ..EngineConfig::default()
        };
        let engine = Arc::new(Engine::new(store, Arc::new(SystemClock), config));
        if fresh {
            let cfg = r#"{"processes": [{"name": "P", "type": "Unattended", "maxRunNum": 0}],
                          "users": [{"name": "u", "password": "p", "processes": ["P"]}]}"#;
            Config::parse(cfg).unwrap().apply(&engine).await.unwrap();
            let process = engine.processes().await.unwrap()[0].id;
            eprintln!("writing {JOBS} jobs (once) into {}", path.display());
            for start in (0..JOBS).step_by(10_000) {
                let writes = (start..start + 10_000)
                    .map(|i| {
                        let mut j = sample_job(10_000_000 + i, process, 0);
                        j.created_at = Timestamp(1_700_000_000_000 + i * 1_000);
                        if i % PENDING_EVERY != 0 {
                            j.state = JobState::Successful;
                            j.ended_at = Some(Timestamp(j.created_at.0 + 500));
                        }
                        Write::Job(j)
                    })
                    .collect();
                engine
                    .store()
                    .commit(Commit {
                        writes,
                        ..Commit::default()
                    })
                    .await
                    .unwrap();
            }
        }
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let state = AppState {
            engine,
            files: Files::memory(),
            settings: Arc::new(HttpSettings::default()),
            ai: None,
            directory: None,
            sso: None,
        };
        tokio::spawn(async move { axum::serve(listener, app(state)).await.unwrap() });
        let login: Value = reqwest::Client::new()
            .post(format!("{base}/rpa/api/login"))
            .json(&json!({"username": "u", "password": "p"}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        (base, login["result"]["token"].as_str().unwrap().to_owned())
    });
    Rig {
        rt,
        base,
        token,
        http: reqwest::Client::new(),
    }
}

impl Rig {
    fn list(&self, state: &str, want: u64) {
        self.rt.block_on(async {
            let v: Value = self
                .http
                .get(format!("{}/odata/Jobs", self.base))
                .query(&[("$filter", format!("State eq '{state}'")), ("$top", "100".into())])
                .bearer_auth(&self.token)
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            assert_eq!(v["@odata.count"], want, "{state}");
            assert_eq!(v["value"].as_array().map(Vec::len), Some(100));
        })
    }
}

fn odata_jobs(c: &mut Criterion) {
    let rig = rig();
    let pending = (JOBS / PENDING_EVERY) as u64;
    let mut g = c.benchmark_group("odata_jobs_1m");
    g.sample_size(20)
        .sampling_mode(SamplingMode::Flat)
        .measurement_time(Duration::from_secs(5));
    g.bench_function("State eq Pending, top 100", |b| b.iter(|| rig.list("Pending", pending)));
    g.bench_function("State eq Successful, top 100", |b| {
        b.iter(|| rig.list("Successful", JOBS as u64 - pending))
    });
    g.finish();
}

criterion_group!(benches, odata_jobs);
criterion_main!(benches);
