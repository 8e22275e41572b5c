//! # rpa-store-sql
//!
//! Durable [`rpa_core::Store`] backends: SQLite (the embedded default, one
//! file, WAL) and PostgreSQL (several engine nodes on one database). Reads,
//! migrations and PostgreSQL go through sqlx's `Any` driver; SQLite writes
//! through a thread of the store's own (rusqlite). The few places where the
//! dialects differ say so.
//!
//! ```text
//!  Engine ──read──► memory: what is live (ReadCache) ──miss / ended──► reader pool (sqlx)
//!         ──commit─► plan (JSON, statements; src/plan.rs) ──► group writer:
//!                      one transaction per group of commits; a stale commit
//!                      (a row not at the version it read) fails alone;
//!                      then the group's audit rows; COMMIT; then memory
//! ```
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
//! connection (rusqlite, prepared statements kept), a savepoint per
//! commit. On PostgreSQL (`postgres.rs`) it is a task; each transaction
//! first takes an advisory lock, so the writers of several nodes take turns
//! (every commit appends to the one audit chain, so they would anyway) and
//! never lock rows in crossed order. A group of job, queue item and robot
//! writes is checked against the stored versions under that lock and
//! written with one multi-row statement per table: when the writer's
//! knowledge of the database still holds, in one round trip, one call of
//! the prepared function `rpa_write_rows` with the rows as bound arrays
//! (`group_call.rs`; the function checks that knowledge first), else in
//! two; other groups go through an anonymous block with a sub-block per
//! commit. A process's counters change by [`Counts`], applied to the row
//! as stored, checked against the process's limits. Robots' takes from the
//! outbox that wait while one is in flight share one statement and its
//! flush (`take.rs`). Leases (`rpa_leases`, [`Store::lease`]) are one
//! conditional upsert.
//!
//! Vendor secrets are stored sealed with ChaCha20-Poly1305
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
//!   reloads after its listening connection was lost (`cache.rs`). Timers
//!   and robot commands are read from the database.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use plan::Val;
use rpa_core::error::StoreError;
use rpa_core::events::Cursor;
use rpa_core::ids::*;
use rpa_core::model::*;
use rpa_core::store::*;
use rpa_core::transport::{Command, RobotTransport};
use rpa_core::{Key, ReadCache, Timestamp};
use serde::de::DeserializeOwned;
use sqlx::any::{AnyPoolOptions, AnyRow};
use sqlx::{AnyConnection, AnyPool, Row};
use tokio::sync::{mpsc, oneshot};

mod cache;
mod group_call;
mod plan;
mod postgres;
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
    ]
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
    /// How vendor secrets are kept at rest (default: sealed with a key kept
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

/// How vendor secrets (what robots prove themselves with) are kept at rest.
#[derive(Clone, Default)]
pub enum Sealing {
    /// Sealed with this key (ChaCha20-Poly1305). Nodes sharing a PostgreSQL
    /// database must share it.
    Key([u8; 32]),
    /// Sealed with a key kept in a file beside the SQLite database
    /// (`<database file>.key`, 64 hex characters, created with a fresh key
    /// and readable by this user only when missing; see [`key_file`]). A
    /// PostgreSQL database has no "beside": connecting refuses this and asks
    /// for [`Sealing::Key`].
    #[default]
    BesideDatabase,
    /// Stored as given: anyone who reads the database (a backup, a replica)
    /// can impersonate every robot of every vendor. For tests and for
    /// databases protected otherwise; the store warns at every start.
    PlainTextInsecure,
}

impl std::fmt::Debug for Sealing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Sealing::Key(_) => "Key(***)",
            Sealing::BesideDatabase => "BesideDatabase",
            Sealing::PlainTextInsecure => "PlainTextInsecure",
        })
    }
}

/// The key in the file `path` (64 hex characters), or, if there is no such
/// file, a fresh random key written to it (created readable by this user
/// only). Errors are said in words; they never show the key.
pub fn key_file(path: &std::path::Path) -> Result<[u8; 32], String> {
    let parse = |text: &str| -> Result<[u8; 32], String> {
        let bad = || format!("{}: the key must be 64 hex characters", path.display());
        hex::decode(text.trim())
            .map_err(|_| bad())?
            .try_into()
            .map_err(|_| bad())
    };
    match std::fs::read_to_string(path) {
        Ok(text) => parse(&text),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            use std::io::Write;
            #[cfg(unix)]
            use std::os::unix::fs::OpenOptionsExt;
            let (fresh, _) = rpa_core::auth::new_token();
            let mut open = std::fs::OpenOptions::new();
            open.write(true).create_new(true);
            #[cfg(unix)]
            open.mode(0o600);
            let mut f = open.open(path).map_err(|e| format!("{}: {e}", path.display()))?;
            writeln!(f, "{fresh}").map_err(|e| format!("{}: {e}", path.display()))?;
            tracing::info!(file = %path.display(), "created a new key for vendor secrets at rest");
            parse(&fresh)
        }
        Err(e) => Err(format!("{}: {e}", path.display())),
    }
}

/// The key vendor secrets are sealed with on the database `url`, if any.
fn sealing_key(url: &str, backend: Backend, sealing: &Sealing) -> Result<Option<[u8; 32]>, StoreError> {
    match sealing {
        Sealing::Key(k) => Ok(Some(*k)),
        Sealing::PlainTextInsecure => {
            tracing::warn!(
                "vendor secrets are stored in PLAIN TEXT (Sealing::PlainTextInsecure): \
                 whoever reads the database can impersonate every robot"
            );
            Ok(None)
        }
        Sealing::BesideDatabase if backend == Backend::Postgres => Err(StoreError::Backend(
            "a PostgreSQL store needs the key that seals vendor secrets (SqlOptions::sealing = Sealing::Key, \
             the same on every node)"
                .into(),
        )),
        Sealing::BesideDatabase => {
            let mut name = sqlite::path_of(url)?.into_os_string();
            name.push(".key");
            key_file(std::path::Path::new(&name))
                .map(Some)
                .map_err(StoreError::Backend)
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
    /// Reads (and, on PostgreSQL, the group writer's transactions).
    read: AnyPool,
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
    /// PostgreSQL: a node cache (see `cache.rs`) that may lag other nodes.
    mirror: Option<ReadCache>,
    /// This store's name in change notifications (PostgreSQL).
    node: u64,
    /// Dropped with the store: stops the change listener.
    _stop: Option<oneshot::Sender<()>>,
}

/// Prefix of a sealed vendor secret.
const SEALED: &str = "enc:v1:";

fn seal(key: &[u8; 32], plain: &str) -> Result<String, StoreError> {
    use chacha20poly1305::aead::{Aead, KeyInit};
    use rand::RngCore;
    let cipher = chacha20poly1305::ChaCha20Poly1305::new(key.into());
    let mut nonce = [0u8; 12];
    rand::rng().fill_bytes(&mut nonce);
    let sealed = cipher
        .encrypt(&nonce.into(), plain.as_bytes())
        .map_err(|_| StoreError::Backend("cannot encrypt a vendor secret".into()))?;
    Ok(format!("{SEALED}{}{}", hex::encode(nonce), hex::encode(sealed)))
}

fn unseal(key: Option<&[u8; 32]>, stored: &str) -> Result<String, StoreError> {
    use chacha20poly1305::aead::{Aead, KeyInit};
    let Some(body) = stored.strip_prefix(SEALED) else {
        return Ok(stored.to_owned());
    };
    let key =
        key.ok_or_else(|| StoreError::Backend("a vendor secret is encrypted and no secret key is configured".into()))?;
    let bytes = hex::decode(body).map_err(|_| StoreError::Backend("a sealed vendor secret is damaged".into()))?;
    if bytes.len() < 12 {
        return Err(StoreError::Backend("a sealed vendor secret is damaged".into()));
    }
    let (nonce, sealed) = bytes.split_at(12);
    let cipher = chacha20poly1305::ChaCha20Poly1305::new(key.into());
    let plain = cipher
        .decrypt(chacha20poly1305::Nonce::from_slice(nonce), sealed)
        .map_err(|_| StoreError::Backend("a vendor secret does not open with the configured key".into()))?;
    String::from_utf8(plain).map_err(|_| StoreError::Backend("a sealed vendor secret is damaged".into()))
}

/// Who writes.
enum Writer {
    /// PostgreSQL: the group writer task, on the pool.
    Pool(mpsc::Sender<postgres::Pending>),
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

pub(crate) fn backend_err(e: sqlx::Error) -> StoreError {
    if let sqlx::Error::Database(db) = &e {
        let code = db.code().map(|c| c.into_owned()).unwrap_or_default();
        // PostgreSQL serialization failure / deadlock; SQLite busy or locked.
        if code == "40001" || code == "40P01" || code == "5" || code == "6" || code == "517" {
            return StoreError::Conflict;
        }
    }
    StoreError::Backend(e.to_string())
}

/// A unique violation: which key, in the memory store's words (or a conflict for primary keys).
pub(crate) fn unique_err(e: sqlx::Error) -> StoreError {
    if let sqlx::Error::Database(db) = &e
        && db.is_unique_violation()
    {
        let what = format!("{} {}", db.constraint().unwrap_or(""), db.message());
        return plan::duplicate(&what);
    }
    backend_err(e)
}

pub(crate) fn from_json<T: DeserializeOwned>(s: &str) -> Result<T, StoreError> {
    serde_json::from_str(s).map_err(|e| StoreError::Backend(format!("decode: {e}")))
}

pub(crate) fn data<T: DeserializeOwned>(row: &AnyRow) -> Result<T, StoreError> {
    from_json(&row.try_get::<String, _>("data").map_err(backend_err)?)
}

fn limit(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

type AnyQuery<'q> = sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>>;

pub(crate) fn bind(q: AnyQuery<'_>, v: Val) -> AnyQuery<'_> {
    match v {
        Val::I(x) => q.bind(x),
        Val::NI(x) => q.bind(x),
        Val::S(x) => q.bind(x),
        Val::NS(x) => q.bind(x),
    }
}

impl SqlStore {
    /// Connects to `url` (`sqlite://path?mode=rwc` or `postgres://...`) and
    /// runs the migrations that are missing.
    pub async fn connect(url: &str, options: SqlOptions) -> Result<SqlStore, StoreError> {
        sqlx::any::install_default_drivers();
        let backend = if url.starts_with("sqlite:") {
            Backend::Sqlite
        } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
            Backend::Postgres
        } else {
            return Err(StoreError::Backend(format!(
                "unsupported database URL (sqlite: or postgres:): {url}"
            )));
        };
        // One server per SQLite file, before anything touches it.
        let lock = match backend {
            Backend::Sqlite => Some(sqlite::lock(url).await?),
            Backend::Postgres => None,
        };
        let read = match backend {
            Backend::Sqlite => {
                let sync = match options.synchronous {
                    Synchronous::Normal => "NORMAL",
                    Synchronous::Full => "FULL",
                };
                let pragmas =
                    format!("PRAGMA journal_mode = WAL; PRAGMA synchronous = {sync}; PRAGMA busy_timeout = 5000;");
                AnyPoolOptions::new()
                    .max_connections(options.max_connections.max(1))
                    .after_connect(move |conn: &mut AnyConnection, _| {
                        let pragmas = pragmas.clone();
                        Box::pin(async move {
                            sqlx::Executor::execute(&mut *conn, pragmas.as_str()).await?;
                            Ok(())
                        })
                    })
                    .connect(url)
                    .await
                    .map_err(backend_err)?
            }
            Backend::Postgres => AnyPoolOptions::new()
                .max_connections(options.max_connections.max(2))
                // No ping before every use (a round trip per query); a broken
                // connection fails its query, which reports the error.
                .test_before_acquire(false)
                .connect(url)
                .await
                .map_err(backend_err)?,
        };
        let (writer, pg_rx, sqlite_rx) = match backend {
            Backend::Sqlite => {
                let (tx, rx) = mpsc::channel(GROUP_MAX * 4);
                (Writer::Thread(tx), None, Some(rx))
            }
            Backend::Postgres => {
                let (tx, rx) = mpsc::channel(GROUP_MAX * 4);
                (Writer::Pool(tx), Some(rx), None)
            }
        };
        let mut store = SqlStore {
            inner: Arc::new(Inner {
                backend,
                read,
                id_block: options.id_block.max(1),
                ids: Mutex::default(),
                reserving: tokio::sync::Mutex::default(),
                writer,
                takes: None,
                url: url.to_owned(),
                secret_key: sealing_key(url, backend, &options.sealing)?,
                mirror: None,
                node: rand::random(),
                _stop: None,
            }),
        };
        store.migrate().await?;
        if let Some(rx) = pg_rx {
            let cache = ReadCache::new();
            let (stop, stopped_rx) = oneshot::channel();
            let loaded = cache::start(
                url.to_owned(),
                store.inner.read.clone(),
                cache.clone(),
                store.inner.node,
                stopped_rx,
            );
            loaded.await.map_err(stopped)??;
            tokio::spawn(postgres::group_writer(
                store.inner.read.clone(),
                url.to_owned(),
                rx,
                cache.clone(),
                store.inner.node,
            ));
            let inner = Arc::get_mut(&mut store.inner)
                .ok_or_else(|| StoreError::Backend("the store was shared while connecting".into()))?;
            inner.mirror = Some(cache);
            inner._stop = Some(stop);
            let (takes, rx) = mpsc::channel(take::BATCH_MAX * 4);
            tokio::spawn(take::run(inner.read.clone(), rx));
            inner.takes = Some(takes);
        }
        if let (Some(rx), Some(lock)) = (sqlite_rx, lock) {
            let mirror = ReadCache::new();
            store.load_live(&mirror).await?;
            let conn = sqlite::open(url, options.synchronous)?;
            let m = mirror.clone();
            std::thread::Builder::new()
                .name("rpa-sqlite-writer".into())
                .spawn(move || sqlite::run(conn, lock, m, rx))
                .map_err(|e| StoreError::Backend(format!("cannot start the SQLite writer: {e}")))?;
            Arc::get_mut(&mut store.inner)
                .ok_or_else(|| StoreError::Backend("the store was shared while connecting".into()))?
                .mirror = Some(mirror);
        }
        Ok(store)
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

    /// An SQLite URL for a file path (created if missing).
    pub fn sqlite_url(path: &std::path::Path) -> String {
        format!("sqlite://{}?mode=rwc", path.display())
    }

    /// Which database this is.
    pub fn backend(&self) -> Backend {
        self.inner.backend
    }

    /// The pool for reads (for tests and operators: query plans, counts).
    pub fn pool(&self) -> &AnyPool {
        &self.inner.read
    }

    async fn migrate(&self) -> Result<(), StoreError> {
        // One connection throughout: PostgreSQL advisory locks belong to a session.
        let mut conn = self.inner.read.acquire().await.map_err(backend_err)?;
        sqlx::raw_sql("CREATE TABLE IF NOT EXISTS rpa_migrations (version BIGINT PRIMARY KEY, name TEXT NOT NULL)")
            .execute(&mut *conn)
            .await
            .map_err(backend_err)?;
        let postgres = self.inner.backend == Backend::Postgres;
        if postgres {
            // Several nodes starting at once: one migrates, the others wait.
            sqlx::raw_sql("SELECT pg_advisory_lock(7262)")
                .execute(&mut *conn)
                .await
                .map_err(backend_err)?;
        }
        let result = async {
            for (version, name, sql) in migrations() {
                let done: Option<i64> = sqlx::query_scalar("SELECT version FROM rpa_migrations WHERE version = $1")
                    .bind(*version)
                    .fetch_optional(&mut *conn)
                    .await
                    .map_err(backend_err)?;
                if done.is_some() {
                    continue;
                }
                let mut tx = sqlx::Connection::begin(&mut *conn).await.map_err(backend_err)?;
                sqlx::raw_sql(sql).execute(&mut *tx).await.map_err(backend_err)?;
                sqlx::query("INSERT INTO rpa_migrations (version, name) VALUES ($1, $2)")
                    .bind(*version)
                    .bind(*name)
                    .execute(&mut *tx)
                    .await
                    .map_err(backend_err)?;
                tx.commit().await.map_err(backend_err)?;
                tracing::info!(version, name, "database migrated");
            }
            Ok(())
        }
        .await;
        let result = match result {
            // Not a migration: replaced at every start, so it is always this version's.
            Ok(()) if postgres => sqlx::raw_sql(&group_call::function_sql())
                .execute(&mut *conn)
                .await
                .map(|_| ())
                .map_err(backend_err),
            r => r,
        };
        if postgres {
            sqlx::raw_sql("SELECT pg_advisory_unlock(7262)")
                .execute(&mut *conn)
                .await
                .map_err(backend_err)?;
        }
        result
    }

    /// Reads what is live (people, sessions, processes, robots, vendors,
    /// unfinished jobs and queue items, waiting commands) into `m`.
    async fn load_live(&self, m: &ReadCache) -> StoreResult<()> {
        let (writes, commands) = cache::load_live(&self.inner.read).await?;
        m.mirror(&Commit {
            writes,
            commands,
            ..Commit::default()
        });
        Ok(())
    }

    /// A lookup of one entity: memory answers; where memory may lag other
    /// nodes (PostgreSQL), a miss asks the database and keeps what it finds.
    async fn point<T, F>(&self, memory: Option<F>, sql: &str, v: Val, keep: fn(T) -> Write) -> StoreResult<Option<T>>
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

    async fn one<T: DeserializeOwned>(&self, sql: &str, v: Val) -> StoreResult<Option<T>> {
        let row = bind(sqlx::query(sql), v)
            .fetch_optional(&self.inner.read)
            .await
            .map_err(backend_err)?;
        row.map(|r| data(&r)).transpose()
    }

    async fn many<T: DeserializeOwned>(&self, q: AnyQuery<'_>) -> StoreResult<Vec<T>> {
        let rows = q.fetch_all(&self.inner.read).await.map_err(backend_err)?;
        rows.iter().map(data).collect()
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
            Writer::Pool(_) => sqlx::query_scalar::<_, i64>(queries::SEQ_RESERVE)
                .bind(kind)
                .bind(block)
                .fetch_one(&self.inner.read)
                .await
                .map_err(backend_err)?,
        };
        let start = end - block;
        let mut ids = self.inner.ids.lock().unwrap_or_else(|p| p.into_inner());
        ids.insert(kind, (start + 1, end));
        Ok(start)
    }
}

fn id_kind(k: IdKind) -> &'static str {
    match k {
        IdKind::User => "user",
        IdKind::Role => "role",
        IdKind::Process => "process",
        IdKind::Job => "job",
        IdKind::QueueItem => "item",
        IdKind::Robot => "robot",
        IdKind::Vendor => "vendor",
        IdKind::RunLog => "log",
        IdKind::File => "file",
        IdKind::Step => "step",
    }
}

impl CommitStore for SqlStore {
    async fn next_id(&self, kind: IdKind) -> StoreResult<i64> {
        self.serial(id_kind(kind)).await
    }

    async fn confirm(&self, robot: &str, run: Option<Key>) -> StoreResult<bool> {
        // SQLite's memory is exact: this store is its file's only writer.
        let Some(m) = self
            .inner
            .mirror
            .as_ref()
            .filter(|_| self.inner.backend == Backend::Postgres)
        else {
            return Ok(false);
        };
        let mut fresh = Vec::new();
        if let Some(r) = self.one::<Robot>(queries::ROBOT_BY_CODE, Val::S(robot.into())).await? {
            fresh.push(Write::Robot(r));
        }
        if let Some(k) = run
            && let Some(j) = self.one::<Job>(queries::JOB_BY_KEY, Val::S(k.to_string())).await?
        {
            fresh.push(Write::Job(j));
        }
        m.refresh(fresh);
        Ok(true)
    }

    async fn commit(&self, mut c: Commit) -> StoreResult<()> {
        if c.is_empty() {
            return Ok(());
        }
        if let Some(key) = &self.inner.secret_key {
            for w in &mut c.writes {
                if let Write::Vendor(v) = w {
                    v.secret = seal(key, &v.secret)?;
                }
            }
        }
        let (done, result) = oneshot::channel();
        match &self.inner.writer {
            Writer::Pool(w) => {
                let mut seqs = Vec::with_capacity(c.commands.len());
                for _ in &c.commands {
                    seqs.push(self.serial("outbox").await?);
                }
                let changes = cache::Changes::of(&c);
                let planned = plan::plan(&mut c, self.inner.backend, &seqs)?;
                w.send(postgres::Pending {
                    planned,
                    writes: c.writes,
                    changes,
                    done,
                })
                .await
                .map_err(stopped)?;
            }
            Writer::Thread(w) => {
                // The writer numbers outbox rows itself, in commit order.
                let seqs = vec![0; c.commands.len()];
                let planned = plan::plan(&mut c, self.inner.backend, &seqs)?;
                w.send(sqlite::Work::Commit {
                    planned,
                    commit: c,
                    done,
                })
                .await
                .map_err(stopped)?;
            }
        }
        result.await.map_err(stopped)?
    }
}

impl PeopleStore for SqlStore {
    async fn user(&self, id: UserId) -> StoreResult<Option<User>> {
        let memory = self.inner.mirror.as_ref().map(|m| m.user(id));
        self.point(memory, queries::USER, Val::I(id.0), Write::User).await
    }
    async fn user_by_name(&self, name: &str) -> StoreResult<Option<User>> {
        let memory = self.inner.mirror.as_ref().map(|m| m.user_by_name(name));
        self.point(
            memory,
            "SELECT data FROM rpa_users WHERE name = $1",
            Val::S(name.into()),
            Write::User,
        )
        .await
    }
    async fn users(&self) -> StoreResult<Vec<User>> {
        if let Some(m) = &self.inner.mirror {
            return m.users().await;
        }
        self.many(sqlx::query("SELECT data FROM rpa_users ORDER BY id")).await
    }
    async fn role(&self, id: RoleId) -> StoreResult<Option<Role>> {
        let memory = self.inner.mirror.as_ref().map(|m| m.role(id));
        self.point(
            memory,
            "SELECT data FROM rpa_roles WHERE id = $1",
            Val::I(id.0),
            Write::Role,
        )
        .await
    }
    async fn role_by_name(&self, name: &str) -> StoreResult<Option<Role>> {
        let memory = self.inner.mirror.as_ref().map(|m| m.role_by_name(name));
        self.point(
            memory,
            "SELECT data FROM rpa_roles WHERE name = $1",
            Val::S(name.into()),
            Write::Role,
        )
        .await
    }
    async fn token(&self, hash: [u8; 32]) -> StoreResult<Option<Token>> {
        let memory = self.inner.mirror.as_ref().map(|m| m.token(hash));
        self.point(memory, queries::TOKEN, Val::S(hex::encode(hash)), Write::Token)
            .await
    }
}

impl ProcessStore for SqlStore {
    async fn process(&self, id: ProcessId) -> StoreResult<Option<Process>> {
        let memory = self.inner.mirror.as_ref().map(|m| m.process(id));
        self.point(memory, queries::PROCESS, Val::I(id.0), Write::Process).await
    }
    async fn process_by_key(&self, key: Key) -> StoreResult<Option<Process>> {
        let memory = self.inner.mirror.as_ref().map(|m| m.process_by_key(key));
        self.point(memory, queries::PROCESS_BY_KEY, Val::S(key.to_string()), Write::Process)
            .await
    }
    async fn processes(&self) -> StoreResult<Vec<Process>> {
        if let Some(m) = &self.inner.mirror {
            return m.processes().await;
        }
        self.many(sqlx::query("SELECT data FROM rpa_processes ORDER BY id"))
            .await
    }
}

impl JobStore for SqlStore {
    async fn job(&self, id: JobId) -> StoreResult<Option<Job>> {
        // Live ones are in memory; ended ones only in the database.
        if let Some(m) = &self.inner.mirror
            && let Some(found) = m.job(id).await?
        {
            return Ok(Some(found));
        }
        self.one(queries::JOB, Val::I(id.0)).await
    }
    async fn job_by_key(&self, key: Key) -> StoreResult<Option<Job>> {
        // Live ones are in memory; ended ones only in the database.
        if let Some(m) = &self.inner.mirror
            && let Some(found) = m.job_by_key(key).await?
        {
            return Ok(Some(found));
        }
        self.one(queries::JOB_BY_KEY, Val::S(key.to_string())).await
    }
    async fn jobs_of_process(&self, q: JobQuery) -> StoreResult<(u64, Vec<Job>)> {
        let filter = if q.state.is_some() { " AND state = $4" } else { "" };
        let count_sql = format!(
            "SELECT COUNT(*) FROM rpa_jobs WHERE process = $1 AND created_at >= $2 AND created_at <= $3{filter}"
        );
        let mut count = sqlx::query_scalar::<_, i64>(&count_sql)
            .bind(q.process.0)
            .bind(q.from.0)
            .bind(q.to.0);
        if let Some(s) = q.state {
            count = count.bind(s.as_str());
        }
        let total = count.fetch_one(&self.inner.read).await.map_err(backend_err)?;
        let n = if q.state.is_some() { 5 } else { 4 };
        let sql = format!(
            "SELECT data FROM rpa_jobs WHERE process = $1 AND created_at >= $2 AND created_at <= $3{filter} ORDER BY created_at DESC, id DESC LIMIT ${n}"
        );
        let mut rows = sqlx::query(&sql).bind(q.process.0).bind(q.from.0).bind(q.to.0);
        if let Some(s) = q.state {
            rows = rows.bind(s.as_str());
        }
        let jobs = self.many(rows.bind(limit(q.limit))).await?;
        Ok((total as u64, jobs))
    }
    // Dispatch reads memory only (see the module docs).
    async fn next_pending(&self, processes: &[ProcessId]) -> StoreResult<Option<Job>> {
        self.memory()?.next_pending(processes).await
    }
    async fn pending_heads(&self, processes: &[ProcessId], n: usize) -> StoreResult<Vec<JobId>> {
        self.memory()?.pending_heads(processes, n).await
    }
    async fn pending_count(&self, process: ProcessId) -> StoreResult<u64> {
        self.memory()?.pending_count(process).await
    }
}

impl QueueStore for SqlStore {
    async fn item(&self, id: QueueItemId) -> StoreResult<Option<QueueItem>> {
        // Live ones are in memory; ended ones only in the database.
        if let Some(m) = &self.inner.mirror
            && let Some(found) = m.item(id).await?
        {
            return Ok(Some(found));
        }
        self.one("SELECT data FROM rpa_items WHERE id = $1", Val::I(id.0)).await
    }
    async fn item_by_key(&self, key: Key) -> StoreResult<Option<QueueItem>> {
        // Live ones are in memory; ended ones only in the database.
        if let Some(m) = &self.inner.mirror
            && let Some(found) = m.item_by_key(key).await?
        {
            return Ok(Some(found));
        }
        self.one("SELECT data FROM rpa_items WHERE key = $1", Val::S(key.to_string()))
            .await
    }
    async fn item_by_reference(&self, process: ProcessId, reference: &str) -> StoreResult<Option<QueueItem>> {
        // Live ones are in memory; ended ones only in the database.
        if let Some(m) = &self.inner.mirror
            && let Some(found) = m.item_by_reference(process, reference).await?
        {
            return Ok(Some(found));
        }
        let row = sqlx::query(queries::ITEM_BY_REFERENCE)
            .bind(process.0)
            .bind(reference)
            .fetch_optional(&self.inner.read)
            .await
            .map_err(backend_err)?;
        row.map(|r| data(&r)).transpose()
    }
}

impl RobotStore for SqlStore {
    async fn robot(&self, id: RobotId) -> StoreResult<Option<Robot>> {
        let memory = self.inner.mirror.as_ref().map(|m| m.robot(id));
        self.point(memory, queries::ROBOT, Val::I(id.0), Write::Robot).await
    }
    async fn robot_by_code(&self, code: &str) -> StoreResult<Option<Robot>> {
        let memory = self.inner.mirror.as_ref().map(|m| m.robot_by_code(code));
        self.point(memory, queries::ROBOT_BY_CODE, Val::S(code.into()), Write::Robot)
            .await
    }
    async fn robots(&self) -> StoreResult<Vec<Robot>> {
        if let Some(m) = &self.inner.mirror {
            return m.robots().await;
        }
        self.many(sqlx::query("SELECT data FROM rpa_robots ORDER BY id")).await
    }
    async fn available_robots(&self, after: Option<RobotId>, n: usize) -> StoreResult<Vec<Robot>> {
        self.memory()?.available_robots(after, n).await
    }
    async fn vendor_by_code(&self, code: &str) -> StoreResult<Option<Vendor>> {
        let memory = self.inner.mirror.as_ref().map(|m| m.vendor_by_code(code));
        let v = self
            .point(
                memory,
                "SELECT data FROM rpa_vendors WHERE code = $1",
                Val::S(code.into()),
                Write::Vendor,
            )
            .await?;
        v.map(|v| {
            Ok(Vendor {
                secret: unseal(self.inner.secret_key.as_ref(), &v.secret)?,
                ..v
            })
        })
        .transpose()
    }
}

impl RunStore for SqlStore {
    async fn logs(&self, job: JobId) -> StoreResult<Vec<RunLog>> {
        self.many(sqlx::query(queries::LOGS).bind(job.0)).await
    }
    async fn videos(&self, job: JobId) -> StoreResult<Vec<VideoRecord>> {
        self.many(sqlx::query("SELECT data FROM rpa_videos WHERE job = $1 ORDER BY at").bind(job.0))
            .await
    }
    async fn file_by_key(&self, key: Key) -> StoreResult<Option<StoredFile>> {
        self.one("SELECT data FROM rpa_files WHERE key = $1", Val::S(key.to_string()))
            .await
    }
    async fn personal_files(&self, owner: &str) -> StoreResult<Vec<StoredFile>> {
        let mut v: Vec<StoredFile> = self
            .many(sqlx::query("SELECT data FROM rpa_files WHERE personal_of = $1").bind(owner.to_owned()))
            .await?;
        v.sort_by_key(|f| f.id);
        Ok(v)
    }
}

impl DeadlineStore for SqlStore {
    async fn due(&self, now: Timestamp, n: usize) -> StoreResult<Vec<Due>> {
        if let Some(m) = self.whole() {
            return m.due(now, n).await;
        }
        let rows = sqlx::query(queries::DUE)
            .bind(now.0)
            .bind(now.0)
            .bind(now.0)
            .bind(now.0)
            .bind(limit(n))
            .fetch_all(&self.inner.read)
            .await
            .map_err(backend_err)?;
        rows.iter()
            .map(|r| {
                let kind: i64 = r.try_get(1).map_err(backend_err)?;
                let id: i64 = r.try_get(2).map_err(backend_err)?;
                Ok(match kind {
                    0 => Due::RobotSilent(RobotId(id)),
                    1 => Due::JobExpired(JobId(id)),
                    2 => Due::JobReady(JobId(id)),
                    _ => {
                        let hex: String = r.try_get(3).map_err(backend_err)?;
                        let mut hash = [0u8; 32];
                        hex::decode_to_slice(hex, &mut hash)
                            .map_err(|e| StoreError::Backend(format!("session hash: {e}")))?;
                        Due::TokenExpired(hash)
                    }
                })
            })
            .collect()
    }
    async fn next_due(&self) -> StoreResult<Option<Timestamp>> {
        if let Some(m) = self.whole() {
            return m.next_due().await;
        }
        let t: Option<i64> = sqlx::query_scalar(queries::NEXT_DUE)
            .fetch_one(&self.inner.read)
            .await
            .map_err(backend_err)?;
        Ok(t.map(Timestamp))
    }
}

impl OutboxStore for SqlStore {
    async fn take_commands(&self, robot: RobotId, n: usize) -> StoreResult<Vec<Command>> {
        if let (Some(m), Writer::Thread(w)) = (&self.inner.mirror, &self.inner.writer) {
            let taken = m.take_commands(robot, n).await?;
            if !taken.is_empty() {
                // The same commands are the robot's oldest rows: deleted in
                // the writer's next group, before this answer.
                let (done, result) = oneshot::channel();
                w.send(sqlite::Work::Taken {
                    robot,
                    n: taken.len(),
                    done,
                })
                .await
                .map_err(stopped)?;
                result.await.map_err(stopped)??;
            }
            return Ok(taken);
        }
        if n == 0 {
            return Ok(Vec::new());
        }
        // Most heartbeats find nothing: a delete that deletes nothing writes
        // nothing and waits for no flush, so no look first.
        let takes = self.inner.takes.as_ref().ok_or_else(|| take::stopped(()))?;
        let (done, answer) = oneshot::channel();
        takes
            .send(take::Request { robot, n, done })
            .await
            .map_err(take::stopped)?;
        answer.await.map_err(take::stopped)?
    }
}

impl AuditStore for SqlStore {
    async fn audit(&self, after: u64, n: usize) -> StoreResult<Vec<AuditEvent>> {
        let q = sqlx::query("SELECT data FROM rpa_audit WHERE seq > $1 ORDER BY seq LIMIT $2")
            .bind(i64::try_from(after).unwrap_or(i64::MAX))
            .bind(limit(n));
        self.many(q).await
    }

    async fn cursor(&self, name: &str) -> StoreResult<Option<Cursor>> {
        self.one("SELECT data FROM rpa_cursors WHERE name = $1", Val::S(name.to_owned()))
            .await
    }
}

impl LeaseStore for SqlStore {
    async fn lease(&self, name: &str, holder: u64, now: Timestamp, until: Timestamp) -> StoreResult<bool> {
        if let Writer::Thread(w) = &self.inner.writer {
            let (done, answer) = oneshot::channel();
            let name = name.to_owned();
            w.send(sqlite::Work::Lease {
                name,
                holder,
                now,
                until,
                done,
            })
            .await
            .map_err(stopped)?;
            return answer.await.map_err(stopped)?;
        }
        let row = sqlx::query(queries::LEASE)
            .bind(name)
            .bind(holder as i64)
            .bind(until.0)
            .bind(now.0)
            .fetch_optional(&self.inner.read)
            .await
            .map_err(backend_err)?;
        Ok(row.is_some())
    }

    async fn lease_holder(&self, name: &str, now: Timestamp) -> StoreResult<Option<u64>> {
        let row = sqlx::query(queries::LEASE_HOLDER)
            .bind(name)
            .bind(now.0)
            .fetch_optional(&self.inner.read)
            .await
            .map_err(backend_err)?;
        row.map(|r| r.try_get::<i64, _>(0).map(|h| h as u64).map_err(backend_err))
            .transpose()
    }
}

/// Test helper: the audit chain verifies; its length.
#[cfg(test)]
pub(crate) async fn audit_ok(store: &SqlStore) -> u64 {
    let events = store.audit(0, 100_000).await.unwrap();
    rpa_core::audit::verify(&events).unwrap()
}
