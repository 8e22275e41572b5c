//! The node cache on PostgreSQL: what is live, in memory, on every node.
//!
//! Several nodes write one database, so no node's memory is the truth; it is
//! a cache that is allowed to lag and never allowed to decide. Every
//! decision still ends in a versioned commit, which the database refuses if
//! a snapshot it rests on was stale, and counters are checked against the
//! stored row ([`Counts`](rpa_core::store::Counts)). What keeps the cache close:
//!
//! - a node's own commits go into it right after they commit, in order;
//! - every group of commits announces the entities it changed on channel
//!   `rpa_changes` (delivered at commit), and the other nodes read those
//!   rows and take them in;
//! - a commit refused as stale re-reads the entities it wrote before the
//!   caller hears of the conflict, so the retry decides on fresh data;
//! - a point lookup that misses (an entity created elsewhere a moment ago)
//!   reads the database;
//! - when the listening connection is lost (notifications may have been
//!   missed), the node reloads what is live and re-reads whatever it holds
//!   that is no longer live.
//!
//! What another node commits can give this node work: a job that waits for
//! a robot (each node places jobs on the robots whose sockets it holds), a
//! robot that became idle. The refresher then rings [`Doorbell`], which the
//! host answers with a dispatch (`rpa::server::dispatch_on_notice`).
//!
//! Entities are replaced only by newer versions ([`ReadCache::refresh`]),
//! so changes arriving late, twice or out of order are harmless. Timers and
//! robot commands are not cached: they are read from the database.

use std::collections::HashSet;
use std::fmt::Write as _;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rpa_core::ReadCache;
use rpa_core::ids::*;
use rpa_core::model::*;
use rpa_core::store::{Commit, StoreResult, Write};
use serde::de::DeserializeOwned;
use sqlx::AnyPool;
use tokio::sync::{mpsc, oneshot};

use rpa_core::record::Cell;

use crate::plan::Val;
use crate::read::{self, Reader};
use crate::{backend_err, records};

/// The channel that announces changed entities.
pub(crate) const CHANNEL: &str = "rpa_changes";

/// Longest payload sent (PostgreSQL's limit is 8,000 bytes).
const PAYLOAD_MAX: usize = 7_800;

/// Entities that commits changed, by kind.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct Changes {
    pub jobs: Vec<i64>,
    pub items: Vec<i64>,
    pub robots: Vec<i64>,
    pub processes: Vec<i64>,
    /// Rows of [cached](rpa_core::record::Kind::cached) record kinds: (table, key).
    pub records: Vec<(String, Cell)>,
    /// Supplier codes.
    pub vendors: Vec<String>,
    /// Session hashes.
    pub tokens: Vec<[u8; 32]>,
}

impl Changes {
    /// What `c` changes.
    pub fn of(c: &Commit) -> Self {
        let mut ch = Changes::default();
        ch.add(c);
        ch
    }

    /// Adds what `c` changes.
    pub fn add(&mut self, c: &Commit) {
        for w in &c.writes {
            match w {
                Write::Job(j) => self.jobs.push(j.id.0),
                Write::Item(i) => self.items.push(i.id.0),
                Write::Robot(r) => self.robots.push(r.id.0),
                Write::Process(p) => self.processes.push(p.id.0),
                Write::Counts(n) => self.processes.push(n.process.0),
                Write::Record(r) if r.kind.cached => self.records.push((r.kind.table.to_owned(), r.key.clone())),
                Write::Vendor(v) => self.vendors.push(v.code.clone()),
                Write::Token(t) => self.tokens.push(t.hash),
                Write::RevokeToken(h) => self.tokens.push(*h),
                Write::Log(_) | Write::Video(_) | Write::DropLogs(_) | Write::Record(_) => {}
            }
        }
    }

    /// Adds `other`.
    pub fn merge(&mut self, other: Changes) {
        self.jobs.extend(other.jobs);
        self.items.extend(other.items);
        self.robots.extend(other.robots);
        self.processes.extend(other.processes);
        self.records.extend(other.records);
        self.vendors.extend(other.vendors);
        self.tokens.extend(other.tokens);
    }

    pub fn is_empty(&self) -> bool {
        self.jobs.is_empty()
            && self.items.is_empty()
            && self.robots.is_empty()
            && self.processes.is_empty()
            && self.records.is_empty()
            && self.vendors.is_empty()
            && self.tokens.is_empty()
    }

    fn dedup(&mut self) {
        for v in [&mut self.jobs, &mut self.items, &mut self.robots, &mut self.processes] {
            v.sort_unstable();
            v.dedup();
        }
        self.records.sort_unstable();
        self.records.dedup();
        self.vendors.sort_unstable();
        self.vendors.dedup();
        self.tokens.sort_unstable();
        self.tokens.dedup();
    }

    /// The notification payloads that announce these changes from `node`:
    /// `<node> j12 r3 p1 v<hex code> t<hex hash> k<hex table>g<hex key> ...`
    /// (a record's key as `i<number>` or `s<text>` before it is hex), split to fit. Only
    /// digits, letters and spaces: safe inside a quoted SQL literal.
    pub fn payloads(&self, node: u64) -> Vec<String> {
        let mut ch = self.clone();
        ch.dedup();
        let mut entries: Vec<String> = Vec::new();
        for (tag, ids) in [
            ('j', &ch.jobs),
            ('i', &ch.items),
            ('r', &ch.robots),
            ('p', &ch.processes),
        ] {
            entries.extend(ids.iter().map(|id| format!("{tag}{id}")));
        }
        entries.extend(ch.vendors.iter().map(|c| format!("v{}", hex::encode(c))));
        entries.extend(ch.tokens.iter().map(|t| format!("t{}", hex::encode(t))));
        entries.extend(ch.records.iter().map(|(table, key)| {
            let key = match key {
                Cell::Int(n) => format!("i{n}"),
                Cell::Text(s) => format!("s{s}"),
                Cell::Null => String::new(),
            };
            format!("k{}g{}", hex::encode(table), hex::encode(key))
        }));
        let mut out = Vec::new();
        let mut cur = node.to_string();
        for e in entries {
            if cur.len() + 1 + e.len() > PAYLOAD_MAX {
                out.push(std::mem::replace(&mut cur, node.to_string()));
            }
            cur.push(' ');
            cur.push_str(&e);
        }
        if cur.len() > node.to_string().len() {
            out.push(cur);
        }
        out
    }

    /// Reads a payload: the node that sent it and what changed. `None` if
    /// it is not one of ours.
    pub fn parse(payload: &str) -> Option<(u64, Changes)> {
        let mut parts = payload.split(' ');
        let node = parts.next()?.parse().ok()?;
        let mut ch = Changes::default();
        for p in parts {
            let (tag, rest) = p.split_at_checked(1)?;
            let id = || rest.parse::<i64>().ok();
            match tag {
                "j" => ch.jobs.push(id()?),
                "i" => ch.items.push(id()?),
                "r" => ch.robots.push(id()?),
                "p" => ch.processes.push(id()?),
                "k" => {
                    let (table, key) = rest.split_once('g')?;
                    let table = String::from_utf8(hex::decode(table).ok()?).ok()?;
                    let key = String::from_utf8(hex::decode(key).ok()?).ok()?;
                    let key = match key.split_at_checked(1)? {
                        ("i", n) => Cell::Int(n.parse().ok()?),
                        ("s", s) => Cell::Text(s.to_owned()),
                        _ => return None,
                    };
                    ch.records.push((table, key));
                }
                "v" => ch.vendors.push(String::from_utf8(hex::decode(rest).ok()?).ok()?),
                "t" => {
                    let mut h = [0u8; 32];
                    hex::decode_to_slice(rest, &mut h).ok()?;
                    ch.tokens.push(h);
                }
                _ => return None,
            }
        }
        Some((node, ch))
    }
}

/// Rung when another node's commit may have given this node work to
/// dispatch, or after a reload (which may have missed some).
pub(crate) type Doorbell = Arc<tokio::sync::Notify>;

/// Whether `w`, written by another node, may give this node a dispatch.
fn gives_work(w: &Write) -> bool {
    match w {
        Write::Job(j) => rpa_core::store::is_dispatchable(j),
        Write::Robot(r) => rpa_core::store::is_idle(r),
        _ => false,
    }
}

/// Rows per `IN (...)` list.
const CHUNK: usize = 500;

async fn rows_by_id<T: DeserializeOwned>(db: &Reader, table: &str, ids: &[i64]) -> StoreResult<Vec<T>> {
    let mut out = Vec::with_capacity(ids.len());
    for chunk in ids.chunks(CHUNK) {
        // Numbers only: inlined.
        let mut sql = format!("SELECT data FROM {table} WHERE id IN (");
        for (i, id) in chunk.iter().enumerate() {
            let _ = write!(sql, "{}{id}", if i > 0 { ", " } else { "" });
        }
        sql.push(')');
        out.extend(db.data::<T>(sql, Vec::new()).await?);
    }
    Ok(out)
}

/// The rows behind `ch`, as they are now, as writes for
/// [`ReadCache::refresh`]; sessions that are gone become `RevokeToken`.
/// Records of kinds `cache` has not loaded are left for its first load.
pub(crate) async fn fetch(db: &Reader, cache: &ReadCache, ch: &Changes) -> StoreResult<Vec<Write>> {
    let mut ch = ch.clone();
    ch.dedup();
    let mut w: Vec<Write> = Vec::new();
    let processes: Vec<Process> = rows_by_id(db, "rpa_processes_v", &ch.processes).await?;
    w.extend(processes.into_iter().map(Write::Process));
    for (table, key) in &ch.records {
        if let Some(kind) = cache.held(table) {
            w.extend(records::read_one(db, None, kind, key).await?.map(Write::Record));
        }
    }
    let robots: Vec<Robot> = rows_by_id(db, "rpa_robots", &ch.robots).await?;
    w.extend(robots.into_iter().map(Write::Robot));
    let items: Vec<QueueItem> = rows_by_id(db, "rpa_items", &ch.items).await?;
    w.extend(items.into_iter().map(Write::Item));
    let jobs: Vec<Job> = rows_by_id(db, "rpa_jobs", &ch.jobs).await?;
    w.extend(jobs.into_iter().map(Write::Job));
    for code in &ch.vendors {
        let vendor = db
            .first(
                "SELECT data FROM rpa_vendors WHERE code = $1",
                vec![Val::S(code.clone())],
            )
            .await?;
        w.extend(vendor.map(Write::Vendor));
    }
    for hash in &ch.tokens {
        let token = db
            .first(
                "SELECT data FROM rpa_tokens WHERE hash = $1",
                vec![Val::S(hex::encode(hash))],
            )
            .await?;
        w.push(match token {
            Some(t) => Write::Token(t),
            None => Write::RevokeToken(*hash),
        });
    }
    Ok(w)
}

/// Brings `cache` level with the database: takes in everything live, then
/// re-reads what it holds as live that the database no longer does.
async fn reconcile(db: &Reader, cache: &ReadCache) -> StoreResult<()> {
    let (live, _) = read::load_live(db).await?;
    let mut jobs = HashSet::new();
    let mut items = HashSet::new();
    let mut tokens = HashSet::new();
    for w in &live {
        match w {
            Write::Job(j) => {
                jobs.insert(j.id);
            }
            Write::Item(i) => {
                items.insert(i.id);
            }
            Write::Token(t) => {
                tokens.insert(t.hash);
            }
            _ => {}
        }
    }
    cache.refresh(live);
    for kind in cache.held_kinds() {
        cache.load(kind, records::read_all(db, None, kind).await?);
    }
    let (held_jobs, held_items, held_tokens) = cache.live();
    let stale = Changes {
        jobs: held_jobs
            .into_iter()
            .filter(|j| !jobs.contains(j))
            .map(|j| j.0)
            .collect(),
        items: held_items
            .into_iter()
            .filter(|i| !items.contains(i))
            .map(|i: QueueItemId| i.0)
            .collect(),
        tokens: held_tokens.into_iter().filter(|t| !tokens.contains(t)).collect(),
        ..Changes::default()
    };
    if !stale.is_empty() {
        cache.refresh(fetch(db, cache, &stale).await?);
    }
    Ok(())
}

/// Where the outcome of the first load goes.
type Ready = Arc<Mutex<Option<oneshot::Sender<StoreResult<()>>>>>;

enum News {
    /// Notifications may have been missed: reload.
    Reload,
    Changed(Changes),
}

/// Starts keeping `cache` level with what other nodes commit: a task that
/// listens on [`CHANNEL`] and one that reads what changed. The answer comes
/// once the first load is done. Both end when `stop` is dropped.
pub(crate) fn start(
    url: String,
    pool: AnyPool,
    cache: ReadCache,
    node: u64,
    mut stop: oneshot::Receiver<()>,
    bell: Doorbell,
) -> oneshot::Receiver<StoreResult<()>> {
    let (ready, loaded) = oneshot::channel();
    // Whoever knows first says how the start went: the listener if it
    // cannot listen at all, else the refresher once the first load is done.
    let ready = Arc::new(Mutex::new(Some(ready)));
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(refresher(Reader::Postgres(pool), cache, rx, ready.clone(), bell));
    tokio::spawn(async move {
        let mut backoff = Duration::from_millis(200);
        loop {
            let listened = async {
                let mut l = sqlx::postgres::PgListener::connect(&url).await?;
                l.listen(CHANNEL).await?;
                Ok::<_, sqlx::Error>(l)
            };
            let mut l = tokio::select! {
                l = listened => l,
                _ = &mut stop => return,
            };
            match &mut l {
                Ok(l) => {
                    backoff = Duration::from_millis(200);
                    // Listening from here on: whatever committed before is in the load.
                    if tx.send(News::Reload).is_err() {
                        return;
                    }
                    loop {
                        let next = tokio::select! {
                            n = l.try_recv() => n,
                            _ = &mut stop => return,
                        };
                        match next {
                            Ok(Some(n)) => match Changes::parse(n.payload()) {
                                Some((from, ch)) if from != node => {
                                    if tx.send(News::Changed(ch)).is_err() {
                                        return;
                                    }
                                }
                                Some(_) => {}
                                None => tracing::warn!(payload = n.payload(), "unreadable change notification"),
                            },
                            // The connection was lost: notifications may be missing.
                            Ok(None) => break,
                            Err(e) => {
                                tracing::warn!(error = %e, "the change listener failed");
                                break;
                            }
                        }
                    }
                }
                Err(e) => {
                    if let Some(r) = ready.lock().unwrap_or_else(|p| p.into_inner()).take() {
                        let _ = r.send(Err(backend_err(std::mem::replace(e, sqlx::Error::PoolClosed))));
                        return;
                    }
                    tracing::warn!(error = %e, "cannot listen for changes from other nodes");
                }
            }
            tokio::select! {
                _ = tokio::time::sleep(backoff) => {}
                _ = &mut stop => return,
            }
            backoff = (backoff * 2).min(Duration::from_secs(10));
        }
    });
    loaded
}

/// Reads what the notifications name, a batch at a time.
async fn refresher(db: Reader, cache: ReadCache, mut rx: mpsc::UnboundedReceiver<News>, ready: Ready, bell: Doorbell) {
    let mut reload = false;
    while let Some(first) = rx.recv().await {
        let mut changed = Changes::default();
        for news in std::iter::once(first).chain(std::iter::from_fn(|| rx.try_recv().ok())) {
            match news {
                News::Reload => reload = true,
                News::Changed(ch) => changed.merge(ch),
            }
        }
        loop {
            let done = if reload {
                reconcile(&db, &cache).await.inspect(|_| bell.notify_one())
            } else {
                fetch(&db, &cache, &changed).await.map(|w| {
                    let ring = w.iter().any(gives_work);
                    cache.refresh(w);
                    if ring {
                        bell.notify_one();
                    }
                })
            };
            let first = ready.lock().unwrap_or_else(|p| p.into_inner()).take();
            if let Some(r) = first {
                let _ = r.send(done.clone());
                if done.is_err() {
                    return;
                }
            }
            match done {
                Ok(()) => {
                    reload = false;
                    break;
                }
                Err(e) => {
                    // What was missed is found by a reload once the database answers.
                    tracing::warn!(error = %e, "cannot read changes from other nodes; reloading");
                    reload = true;
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
            }
        }
    }
}

/// A commit refused as stale: re-reads what it wrote, so the retry sees it fresh.
pub(crate) async fn after_conflict(pool: &AnyPool, cache: &ReadCache, ch: &Changes) {
    match fetch(&Reader::Postgres(pool.clone()), cache, ch).await {
        Ok(w) => cache.refresh(w),
        Err(e) => tracing::warn!(error = %e, "cannot re-read after a conflict"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payloads_round_trip_and_fit() {
        let ch = Changes {
            jobs: (1..3000).collect(),
            robots: vec![7, 7, 3],
            processes: vec![1],
            vendors: vec!["acme 'x' $y".into()],
            tokens: vec![[0xAB; 32]],
            records: vec![
                ("rpa_users".into(), Cell::Int(12)),
                ("rpa_roles".into(), Cell::Int(-3)),
                ("rpa_things".into(), Cell::Text("a 'b' $c g k".into())),
            ],
            ..Changes::default()
        };
        let payloads = ch.payloads(42);
        assert!(payloads.len() > 1, "split across notifications");
        let mut back = Changes::default();
        for p in &payloads {
            assert!(p.len() <= PAYLOAD_MAX);
            assert!(
                p.chars().all(|c| c.is_ascii_alphanumeric() || c == ' '),
                "safe to quote"
            );
            let (node, part) = Changes::parse(p).unwrap();
            assert_eq!(node, 42);
            back.merge(part);
        }
        let mut want = ch.clone();
        want.dedup();
        back.dedup();
        assert_eq!(back, want);
        assert!(Changes::default().payloads(1).is_empty());
        assert_eq!(Changes::parse("x j1"), None);
        assert_eq!(Changes::parse("1 z9"), None);
    }
}
