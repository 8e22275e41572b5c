//! Business API throughput over loopback, on the SQLite store: `startJob`
//! and `jobStatus` with 32 concurrent clients. `cargo bench --bench http`;
//! figures go to docs/PERFORMANCE.md. The server and the clients share the
//! machine's cores.
#![allow(missing_docs)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{Criterion, SamplingMode, Throughput, criterion_group, criterion_main};
use rpa::core::auth::PasswordCost;
use rpa::http::config::Config;
use rpa::http::{AppState, Files, HttpSettings, app};
use rpa::sql::{SqlOptions, SqlStore};
use rpa::{Engine, EngineConfig, SystemClock};
use serde_json::{Value, json};

const CLIENTS: u64 = 32;

struct Rig {
    rt: tokio::runtime::Runtime,
    base: String,
    token: String,
    process: String,
    job: String,
    http: reqwest::Client,
}

fn rig() -> Rig {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let (base, token, process, job) = rt.block_on(async {
        let dir = std::env::temp_dir().join(format!("rpa-bench-http-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("bench.db");
        let _ = std::fs::remove_file(&path);
        let store = SqlStore::connect(&SqlStore::sqlite_url(&path), SqlOptions::default())
            .await
            .unwrap();
        let config = EngineConfig {
            password_cost: PasswordCost::TESTING,
            ..EngineConfig::default()
        };
        let engine = Arc::new(Engine::new(store, Arc::new(SystemClock), config));
        let cfg = r#"{"processes": [{"name": "P", "type": "Unattended", "maxRunNum": 0}],
                      "users": [{"name": "u", "password": "p", "processes": ["P"]}]}"#;
        Config::parse(cfg).unwrap().apply(&engine).await.unwrap();
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
        let http = reqwest::Client::new();
        let login: Value = http
            .post(format!("{base}/rpa/api/login"))
            .json(&json!({"username": "u", "password": "p"}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let token = login["result"]["token"].as_str().unwrap().to_owned();
        let process = login["result"]["processes"][0]["id"].as_str().unwrap().to_owned();
        let job: Value = http
            .post(format!("{base}/rpa/api/startJob"))
            .header("X-Access-Token", &token)
            .json(&json!({"processId": process}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        (
            base,
            token,
            process,
            job["result"]["jobId"].as_str().unwrap().to_owned(),
        )
    });
    Rig {
        rt,
        base,
        token,
        process,
        job,
        http: reqwest::Client::new(),
    }
}

impl Rig {
    /// `iters` requests spread over the clients; the time they took together.
    fn run(&self, iters: u64, path: &'static str, body: Value) -> Duration {
        self.rt.block_on(async {
            let start = Instant::now();
            let mut tasks = Vec::new();
            for c in 0..CLIENTS {
                let n = iters / CLIENTS + u64::from(c < iters % CLIENTS);
                let (http, url, token, body) = (
                    self.http.clone(),
                    format!("{}{path}", self.base),
                    self.token.clone(),
                    body.clone(),
                );
                tasks.push(tokio::spawn(async move {
                    for _ in 0..n {
                        let v: Value = http
                            .post(&url)
                            .header("X-Access-Token", &token)
                            .json(&body)
                            .send()
                            .await
                            .unwrap()
                            .json()
                            .await
                            .unwrap();
                        assert_eq!(v["code"], 200, "{v}");
                    }
                }));
            }
            for t in tasks {
                t.await.unwrap();
            }
            start.elapsed()
        })
    }
}

fn business_api(c: &mut Criterion) {
    let rig = rig();
    let mut g = c.benchmark_group("business_api");
    g.throughput(Throughput::Elements(1));
    g.sample_size(10)
        .sampling_mode(SamplingMode::Flat)
        .measurement_time(Duration::from_secs(5));
    let start = json!({"processId": rig.process});
    g.bench_function("startJob", |b| {
        b.iter_custom(|iters| rig.run(iters, "/rpa/api/startJob", start.clone()))
    });
    let status = json!({"jobId": rig.job});
    g.bench_function("jobStatus", |b| {
        b.iter_custom(|iters| rig.run(iters, "/rpa/api/jobStatus", status.clone()))
    });
    g.finish();
}

criterion_group!(benches, business_api);
criterion_main!(benches);
