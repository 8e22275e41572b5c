//! # rpa-store-sql
//!
//! Durable [`rpa_core::Store`] backends: SQLite (the embedded default, one
//! file, WAL) and PostgreSQL (several engine nodes on one database). One
//! driver per backend: SQLite through rusqlite (a writer thread of the
//! store's own and a few read-only connections), PostgreSQL through sqlx.
//! The few places where the dialects differ say so.
//!
//! ```text
//!  Engine ──read──► memory: what is live (ReadCache) ──miss / ended──► readers (src/read.rs)
//!         ──commit─► plan (JSON, statements; src/plan.rs) ──► group writer:
//!                      one transaction per group of commits; a stale commit
//!                      (a row not at the version it read) fails alone;
//!                      then the group's audit rows; COMMIT; then memory
//! ```
//!
//! Layout, a job per file: `lib.rs` the store, connecting, the migrations'
//! list; `stores.rs` the capability traits; `plan.rs` a commit as
//! statements; `read.rs` reads on either backend; `queries.rs` the hot
//! queries; `rows.rs` sqlx rows, values and errors;
//! `sealing.rs` vendor secrets and sealed record kinds at rest; `take.rs` robots' outbox takes;
//! `records.rs` record kinds (`rpa_core::record`: SQL made from each kind's
//! row mapping);
//! `sqlite/` the SQLite file: opening, locking, migrating (`mod.rs`), the
//! writer thread (`writer.rs`), the read connections (`readers.rs`), the
//! checkpoints beside the writer (`checkpoints.rs`);
//! `postgres/` the PostgreSQL group
//! writer (`mod.rs`), its prepared call (`group_call.rs`) and the node
//! cache with its notifications (`cache.rs`).
//!
//! Every entity is stored whole as JSON; the other columns serve lookups,
//! uniqueness and the indexes heartbeats, timers and the job window use
//! (`migrations/`). Versioned commits make two engines on one database
//! safe: a commit whose snapshot is stale changes nothing and returns
//! [`StoreError::Conflict`]. Serial ids are taken from the database in
//! blocks, so an id costs a round trip only once per block.
//!
//! Commits go through one group writer per store: it takes every commit
//! waiting and applies them in one transaction. The caller turns its
//! commit into statements first (`plan`), so the writer only runs them. On
//! SQLite the writer is a thread of its own with the file's one write
//! connection (rusqlite, prepared statements kept; a savepoint per commit
//! only when a commit of the group is refused), and a thread beside it
//! copies the log back into the file. On PostgreSQL (`postgres/mod.rs`) it
//! is a task; the writers of several nodes lock the rows they write in
//! one order (no cluster-wide lock; the audit events are integrated into
//! the chain afterwards). A group of job, queue item and robot
//! writes is checked against the stored versions under those locks and
//! written with one multi-row statement per table: when the writer's
//! knowledge of the database still holds, in one round trip, one call of
//! the prepared function `rpa_write_rows` with the rows as bound arrays
//! (`postgres/group_call.rs`; the function checks that knowledge first), else in
//! two; other groups go through an anonymous block with a sub-block per
//! commit. A process's counters change by [`Counts`], checked against the
//! process's limits: on SQLite applied to the process row as stored; on
//! PostgreSQL added to the writing node's row of `rpa_process_counts`
//! under a shared lock on the process (no limits) or an exclusive one
//! (limits, on the exact sum; `postgres/counts.rs`). Robots' takes from the
//! outbox that wait while one is in flight share one statement and its
//! flush (`take.rs`). Leases (`rpa_leases`, [`Store::lease`]) are one
//! conditional upsert.
//!
//! Vendor secrets and the data of sealed record kinds ([`rpa_core::record::Kind::sealed`]:
//! assets, which hold credentials) are stored sealed with ChaCha20-Poly1305
//! (`enc:v1:<nonce><ciphertext>`, hex) and opened on read; the key never
//! reaches the database. [`SqlOptions::sealing`] says where the key comes
//! from ([`Sealing`]: by default a file beside an SQLite database; a
//! PostgreSQL store must be given one); plain storage only by the loudly
//! named [`Sealing::PlainTextInsecure`].
//!
//! SQLite runs with `journal_mode=WAL` and, by default, `synchronous=NORMAL`:
//! a commit is durable against a crash of the process, and a power loss can
//! lose the last commits before the WAL was synced (the database stays
//! consistent). `synchronous=FULL` syncs every commit.
//!
//! Both backends keep what is live in memory: people, sessions, processes,
//! robots, vendors (secrets still sealed), unfinished jobs and queue items,
//! and the dispatch and deadline indexes over them (an
//! [`rpa_core::ReadCache`]). Dispatch reads only that memory. Ended jobs
//! and items, run logs, files, the audit log and the job-window query come
//! from the database.
//!
//! - SQLite: the store is the only writer of its file (one server per file,
//!   enforced by a lock file), so the memory is whole and exact: loaded at
//!   start, updated by the writer thread after each transaction commits, in
//!   commit order, before any caller hears back; it also holds the waiting
//!   robot commands ([`ReadCache::mirror`](rpa_core::ReadCache)).
//! - PostgreSQL: other nodes write too, so the memory is a node cache that
//!   may lag and never decides alone: every decision still ends in a
//!   versioned commit the database checks. It takes in this node's commits
//!   as they commit and the rows other nodes announce on `rpa_changes`,
//!   re-reads what a refused commit wrote, reads through on a miss, and
//!   reloads after its listening connection was lost (`postgres/cache.rs`). Timers
//!   and robot commands are read from the database.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use plan::Val;
use read::Reader;
use rpa_core::error::StoreError;
use rpa_core::ids::*;
use rpa_core::model::*;
use rpa_core::record::{Cell, ColumnType};
use rpa_core::store::*;
use rpa_core::transport::{Command, RobotTransport};
use rpa_core::{Key, ReadCache, Timestamp};
use serde::de::DeserializeOwned;
use sqlx::AnyPool;
use sqlx::any::AnyPoolOptions;
use tokio::sync::{mpsc, oneshot};

mod plan;
mod postgres;
mod read;
mod records;
mod rows;
mod sealing;
mod stores;

pub(crate) use rows::{backend_err, bind, data, from_json, limit, unique_err};
pub use sealing::{Sealing, key_file};
use sealing::{seal, sealing_key, unseal};
pub mod queries;
mod sqlite;
mod take;

/// The schema migrations, in order: `(version, name, sql)`.
pub fn migrations() -> &'static [(i64, &'static str, &'static str)] {
    &[
        (1, "init", include_str!("../migrations/0001_init.sql")),
        (2, "leases", include_str!("../migrations/0002_leases.sql")),
        (3, "session expiry", include_str!("../migrations/0003_token_expiry.sql")),
        (
            4,
            "dispatch in memory",
            include_str!("../migrations/0004_dispatch_in_memory.sql"),
        ),
        (5, "event cursors", include_str!("../migrations/0005_event_cursors.sql")),
        (
            6,
            "listener requests",
            include_str!("../migrations/0006_listener_requests.sql"),
        ),
        (7, "schedules", include_str!("../migrations/0007_schedules.sql")),
        (8, "files by run", include_str!("../migrations/0008_files_by_run.sql")),
        (9, "workflows", include_str!("../migrations/0009_workflows.sql")),
        (10, "webhooks", include_str!("../migrations/0010_webhooks.sql")),
        (
            11,
            "queue triggers",
            include_str!("../migrations/0011_queue_triggers.sql"),
        ),
        (12, "pipelines", include_str!("../migrations/0012_pipelines.sql")),
        (13, "pools", include_str!("../migrations/0013_pools.sql")),
        (14, "assets", include_str!("../migrations/0014_assets.sql")),
        (
            15,
            "package versions",
            include_str!("../migrations/0015_package_versions.sql"),
        ),
        (16, "children", include_str!("../migrations/0016_children.sql")),
        (17, "catalogue", include_str!("../migrations/0017_catalogue.sql")),
        (
            18,
            "log retention",
            include_str!("../migrations/0018_log_retention.sql"),
        ),
        (
            19,
            "items by process",
            include_str!("../migrations/0019_items_by_process.sql"),
        ),
        (20, "buckets", include_str!("../migrations/0020_buckets.sql")),
        (
            21,
            "jobs by state",
            include_str!("../migrations/0021_jobs_by_state.sql"),
        ),
        (22, "licenses", include_str!("../migrations/0022_licenses.sql")),
        (
            23,
            "AI capabilities",
            include_str!("../migrations/0023_ai_capabilities.sql"),
        ),
        (24, "run figures", include_str!("../migrations/0024_run_figures.sql")),
        (25, "content", include_str!("../migrations/0025_content.sql")),
        (26, "designers", include_str!("../migrations/0026_designers.sql")),
        (
            27,
            "executor images",
            include_str!("../migrations/0027_executor_images.sql"),
        ),
        (28, "sso logins", include_str!("../migrations/0028_sso_logins.sql")),
        (
            29,
            "audit integration",
            include_str!("../migrations/0029_audit_integration.sql"),
        ),
        (
            30,
            "process counts",
            include_str!("../migrations/0030_process_counts.sql"),
        ),
        (
            31,
            "audit written once",
            include_str!("../migrations/0031_audit_written_once.sql"),
        ),
        (
            32,
            "audit by rowid",
            include_str!("../migrations/0032_audit_by_rowid.sql"),
        ),
        (
            33,
            "jobs by rowid",
            include_str!("../migrations/0033_jobs_by_rowid.sql"),
        ),
        (
            34,
            "audit hashes as bytes",
            include_str!("../migrations/0034_audit_hashes_as_bytes.sql"),
        ),
        (
            35,
            "audit groups compressed with lz4",
            include_str!("../migrations/0035_audit_groups_lz4.sql"),
        ),
    ]
}

/// What migration `version` adds on `backend` only, run in the same
/// transaction after its shared SQL: the full-text indexes, which SQLite
/// and PostgreSQL make differently, and PostgreSQL's numbering and timing
/// of the audit events that wait for integration.
pub fn backend_migration(backend: Backend, version: i64) -> Option<&'static str> {
    match (backend, version) {
        (Backend::Sqlite, 25) => Some(include_str!("../migrations/0025_content.sqlite.sql")),
        (Backend::Postgres, 25) => Some(include_str!("../migrations/0025_content.postgres.sql")),
        (Backend::Postgres, 29) => Some(include_str!("../migrations/0029_audit_integration.postgres.sql")),
        (Backend::Sqlite, 30) => Some(include_str!("../migrations/0030_process_counts.sqlite.sql")),
        (Backend::Postgres, 30) => Some(include_str!("../migrations/0030_process_counts.postgres.sql")),
        (Backend::Postgres, 31) => Some(include_str!("../migrations/0031_audit_written_once.postgres.sql")),
        (Backend::Sqlite, 32) => Some(include_str!("../migrations/0032_audit_by_rowid.sqlite.sql")),
        (Backend::Sqlite, 33) => Some(include_str!("../migrations/0033_jobs_by_rowid.sqlite.sql")),
        (Backend::Postgres, 34) => Some(include_str!("../migrations/0034_audit_hashes_as_bytes.postgres.sql")),
        (Backend::Postgres, 35) => Some(include_str!("../migrations/0035_audit_groups_lz4.postgres.sql")),
        _ => None,
    }
}

/// Which database.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// SQLite file.
    Sqlite,
    /// PostgreSQL server.
    Postgres,
}

/// SQLite's `synchronous` setting.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Synchronous {
    /// Sync at checkpoints: survives process crashes; a power loss may lose the latest commits.
    #[default]
    Normal,
    /// Sync every commit.
    Full,
}

/// Connection settings.
#[derive(Debug, Clone)]
pub struct SqlOptions {
    /// SQLite durability.
    pub synchronous: Synchronous,
    /// Reader connections.
    pub max_connections: u32,
    /// Ids reserved per round trip.
    pub id_block: i64,
    /// How vendor secrets and sealed record kinds are kept at rest (default: sealed with a key kept
    /// beside an SQLite database).
    pub sealing: Sealing,
}

impl Default for SqlOptions {
    fn default() -> Self {
        SqlOptions {
            synchronous: Synchronous::Normal,
            max_connections: 8,
            id_block: 256,
            sealing: Sealing::BesideDatabase,
        }
    }
}

/// A store on SQLite or PostgreSQL. Cloning shares the pools.
#[derive(Clone)]
pub struct SqlStore {
    inner: Arc<Inner>,
}

struct Inner {
    backend: Backend,
    /// Reads.
    read: Reader,
    id_block: i64,
    ids: Mutex<HashMap<&'static str, (i64, i64)>>,
    /// Held while a block of ids is reserved: callers that find the block
    /// spent wait for one reservation instead of each making their own.
    reserving: tokio::sync::Mutex<()>,
    writer: Writer,
    /// PostgreSQL: the take batcher ([`take`]).
    takes: Option<mpsc::Sender<take::Request>>,
    url: String,
    secret_key: Option<[u8; 32]>,
    /// The live entities and indexes in memory. SQLite: kept by the group
    /// writer (this store is the only writer of its file), so it is whole.
    /// PostgreSQL: a node cache (see `postgres/cache.rs`) that may lag other nodes.
    mirror: Option<ReadCache>,
    /// PostgreSQL: this node's connection for integrating audit events.
    integrator: Option<postgres::Integrator>,
    /// PostgreSQL: this node's connection for its leases.
    leases: Option<postgres::Leases>,
    /// Dropped with the store: stops the change listener.
    _stop: Option<oneshot::Sender<()>>,
    /// PostgreSQL: rung when another node's commit may give this one work.
    doorbell: Option<postgres::cache::Doorbell>,
}

/// Who writes.
enum Writer {
    /// PostgreSQL: the group writer task, and the pool it writes on (also
    /// the pool of reads, ids, leases and outbox takes).
    Pool(mpsc::Sender<postgres::Pending>, AnyPool),
    /// SQLite: the writer thread ([`sqlite`]).
    Thread(mpsc::Sender<sqlite::Work>),
}

/// Most commits in one transaction.
const GROUP_MAX: usize = 256;

/// `first` and whatever else is already waiting in `rx`, at most `max` in all.
pub(crate) fn waiting<T>(rx: &mut mpsc::Receiver<T>, first: T, max: usize) -> Vec<T> {
    let mut batch = vec![first];
    while batch.len() < max {
        match rx.try_recv() {
            Ok(t) => batch.push(t),
            Err(_) => break,
        }
    }
    batch
}

fn stopped<T>(_: T) -> StoreError {
    StoreError::Backend("the database writer stopped".into())
}

impl std::fmt::Debug for SqlStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqlStore")
            .field("backend", &self.inner.backend)
            .finish()
    }
}

impl SqlStore {
    /// Connects to `url` (`sqlite://path?mode=rwc` or `postgres://...`) and
    /// runs the migrations that are missing.
    pub async fn connect(url: &str, options: SqlOptions) -> Result<SqlStore, StoreError> {
        if url.starts_with("sqlite:") {
            Self::connect_sqlite(url, options).await
        } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
            Self::connect_postgres(url, options).await
        } else {
            Err(StoreError::Backend(format!(
                "unsupported database URL (sqlite: or postgres:): {url}"
            )))
        }
    }

    /// The SQLite file: lock it (one server per file), open its write
    /// connection, migrate, load what is live into memory, start the writer.
    async fn connect_sqlite(url: &str, options: SqlOptions) -> Result<SqlStore, StoreError> {
        let lock = sqlite::lock(url).await?;
        let (path, sync) = (sqlite::path_of(url)?, options.synchronous);
        let opened = url.to_owned();
        let conn = tokio::task::spawn_blocking(move || {
            let conn = sqlite::open(&opened, sync)?;
            sqlite::migrate(&conn)?;
            Ok::<_, StoreError>(conn)
        })
        .await
        .map_err(|e| StoreError::Backend(format!("cannot open the SQLite file: {e}")))??;
        let (tx, rx) = mpsc::channel(GROUP_MAX * 4);
        let read = Reader::Sqlite(sqlite::Readers::new(path.clone(), options.max_connections));
        let mirror = ReadCache::new();
        let (writes, commands) = read::load_live(&read).await?;
        mirror.mirror(&Commit {
            writes,
            commands,
            ..Commit::default()
        });
        let m = mirror.clone();
        let checkpoints = sqlite::Checkpoints::start(&path, sync)?;
        std::thread::Builder::new()
            .name("rpa-sqlite-writer".into())
            .spawn(move || sqlite::run(conn, checkpoints, lock, m, rx))
            .map_err(|e| StoreError::Backend(format!("cannot start the SQLite writer: {e}")))?;
        Ok(SqlStore {
            inner: Arc::new(Inner {
                backend: Backend::Sqlite,
                read,
                id_block: options.id_block.max(1),
                ids: Mutex::default(),
                reserving: tokio::sync::Mutex::default(),
                writer: Writer::Thread(tx),
                takes: None,
                url: url.to_owned(),
                secret_key: sealing_key(url, Backend::Sqlite, &options.sealing)?,
                mirror: Some(mirror),
                integrator: None,
                leases: None,
                _stop: None,
                doorbell: None,
            }),
        })
    }

    /// PostgreSQL: the pool, the migrations (one node at a time), the node
    /// cache and its notifications, the group writer, the take batcher.
    async fn connect_postgres(url: &str, options: SqlOptions) -> Result<SqlStore, StoreError> {
        sqlx::any::install_default_drivers();
        let secret_key = sealing_key(url, Backend::Postgres, &options.sealing)?;
        let pool = AnyPoolOptions::new()
            .max_connections(options.max_connections.max(2))
            // No ping before every use (a round trip per query); a broken
            // connection fails its query, which reports the error.
            .test_before_acquire(false)
            .connect(url)
            .await
            .map_err(backend_err)?;
        postgres::migrate(&pool).await?;
        let node = rand::random();
        let cache = ReadCache::new();
        let (stop, stopped_rx) = oneshot::channel();
        let doorbell = postgres::cache::Doorbell::default();
        let loaded = postgres::cache::start(
            url.to_owned(),
            pool.clone(),
            cache.clone(),
            node,
            stopped_rx,
            doorbell.clone(),
        );
        loaded.await.map_err(stopped)??;
        let (tx, rx) = mpsc::channel(GROUP_MAX * 4);
        tokio::spawn(postgres::group_writer(
            pool.clone(),
            url.to_owned(),
            rx,
            cache.clone(),
            node,
        ));
        let (takes, takes_rx) = mpsc::channel(take::BATCH_MAX * 4);
        tokio::spawn(take::run(pool.clone(), takes_rx));
        Ok(SqlStore {
            inner: Arc::new(Inner {
                backend: Backend::Postgres,
                read: Reader::Postgres(pool.clone()),
                id_block: options.id_block.max(1),
                ids: Mutex::default(),
                reserving: tokio::sync::Mutex::default(),
                writer: Writer::Pool(tx, pool),
                takes: Some(takes),
                url: url.to_owned(),
                secret_key,
                mirror: Some(cache),
                integrator: Some(postgres::Integrator::new(url)),
                leases: Some(postgres::Leases::new(url)),
                _stop: Some(stop),
                doorbell: Some(doorbell),
            }),
        })
    }

    /// Wakes `transport` for every robot another node queued commands for
    /// (PostgreSQL LISTEN/NOTIFY on channel `rpa_outbox`); reconnects with
    /// back-off if the listening connection drops. SQLite has one node: no-op.
    pub fn listen(&self, transport: Arc<dyn RobotTransport>) {
        if self.inner.backend != Backend::Postgres {
            return;
        }
        let url = self.inner.url.clone();
        tokio::spawn(async move {
            let mut backoff = std::time::Duration::from_millis(200);
            loop {
                match sqlx::postgres::PgListener::connect(&url).await {
                    Ok(mut l) => match l.listen("rpa_outbox").await {
                        Ok(()) => {
                            backoff = std::time::Duration::from_millis(200);
                            while let Ok(n) = l.recv().await {
                                if let Ok(id) = n.payload().parse::<i64>() {
                                    transport.wake(RobotId(id));
                                }
                            }
                        }
                        Err(e) => tracing::warn!(error = %e, "LISTEN rpa_outbox failed"),
                    },
                    Err(e) => tracing::warn!(error = %e, "cannot open the notification connection"),
                }
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(std::time::Duration::from_secs(10));
            }
        });
    }

    /// PostgreSQL: notified when another node commits what may give this
    /// node a dispatch (a job that waits for a robot, an idle robot), and
    /// after this node reloads what is live. Each node places jobs on the
    /// robots whose sockets it holds, so a host dispatches when notified
    /// (`rpa::server::dispatch_on_notice`). SQLite has one node: `None`.
    pub fn doorbell(&self) -> Option<Arc<tokio::sync::Notify>> {
        self.inner.doorbell.clone()
    }

    /// An SQLite URL for a file path (created if missing).
    pub fn sqlite_url(path: &std::path::Path) -> String {
        format!("sqlite://{}?mode=rwc", path.display())
    }

    /// Which database this is.
    pub fn backend(&self) -> Backend {
        self.inner.backend
    }

    /// The rows of a read-only statement without parameters, column `i`
    /// read as `types[i]`: for tests and operators (raw rows as stored,
    /// counts). Runs on the store's own read connections.
    pub async fn query(&self, sql: &str, types: &[ColumnType]) -> StoreResult<Vec<Vec<Cell>>> {
        self.inner.read.rows(sql.to_owned(), Vec::new(), types.to_vec()).await
    }

    /// A PostgreSQL store's pool (tests of the group writer).
    #[cfg(test)]
    pub(crate) fn pool(&self) -> &AnyPool {
        match &self.inner.writer {
            Writer::Pool(_, pool) => pool,
            Writer::Thread(_) => panic!("an SQLite store has no sqlx pool"),
        }
    }

    /// A lookup of one entity: memory answers; where memory may lag other
    /// nodes (PostgreSQL), a miss asks the database and keeps what it finds.
    async fn point<T, F>(
        &self,
        memory: Option<F>,
        sql: &'static str,
        v: Val,
        keep: fn(T) -> Write,
    ) -> StoreResult<Option<T>>
    where
        T: DeserializeOwned + Clone,
        F: std::future::Future<Output = StoreResult<Option<T>>>,
    {
        if let Some(f) = memory {
            let hit = f.await?;
            if hit.is_some() || self.inner.backend == Backend::Sqlite {
                return Ok(hit);
            }
        }
        let found: Option<T> = self.one(sql, v).await?;
        if let (Some(m), Some(x)) = (&self.inner.mirror, &found) {
            m.refresh([keep(x.clone())]);
        }
        Ok(found)
    }

    /// What is live, in memory (always there once connected).
    fn memory(&self) -> StoreResult<&ReadCache> {
        self.inner
            .mirror
            .as_ref()
            .ok_or_else(|| StoreError::Backend("the store is not connected".into()))
    }

    /// The memory that holds everything live (SQLite), if it does.
    fn whole(&self) -> Option<&ReadCache> {
        self.inner
            .mirror
            .as_ref()
            .filter(|_| self.inner.backend == Backend::Sqlite)
    }

    async fn one<T: DeserializeOwned>(&self, sql: &'static str, v: Val) -> StoreResult<Option<T>> {
        self.inner.read.first(sql, vec![v]).await
    }

    async fn many<T: DeserializeOwned>(&self, sql: &'static str, args: Vec<Val>) -> StoreResult<Vec<T>> {
        self.inner.read.data(sql, args).await
    }

    /// The next serial id of a sequence, reserving a block when the local one is spent.
    async fn serial(&self, kind: &'static str) -> StoreResult<i64> {
        let take = || {
            let mut ids = self.inner.ids.lock().unwrap_or_else(|p| p.into_inner());
            match ids.get_mut(kind) {
                Some((next, end)) if *next < *end => {
                    *next += 1;
                    Some(*next - 1)
                }
                _ => None,
            }
        };
        if let Some(id) = take() {
            return Ok(id);
        }
        let _reserving = self.inner.reserving.lock().await;
        // Another caller may have reserved a block meanwhile.
        if let Some(id) = take() {
            return Ok(id);
        }
        let block = self.inner.id_block;
        let end = match &self.inner.writer {
            Writer::Thread(w) => {
                let (done, answer) = oneshot::channel();
                w.send(sqlite::Work::Serial { kind, block, done })
                    .await
                    .map_err(stopped)?;
                answer.await.map_err(stopped)??
            }
            Writer::Pool(_, pool) => sqlx::query_scalar::<_, i64>(queries::SEQ_RESERVE)
                .bind(kind)
                .bind(block)
                .fetch_one(pool)
                .await
                .map_err(backend_err)?,
        };
        let start = end - block;
        let mut ids = self.inner.ids.lock().unwrap_or_else(|p| p.into_inner());
        ids.insert(kind, (start + 1, end));
        Ok(start)
    }
}

/// Test helper: the audit chain verifies; its length.
#[cfg(test)]
pub(crate) async fn audit_ok(store: &SqlStore) -> u64 {
    let events = store.audit(0, 100_000).await.unwrap();
    rpa_core::audit::verify(&events).unwrap()
}
