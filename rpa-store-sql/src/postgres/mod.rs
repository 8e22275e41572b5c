//! The PostgreSQL group writer: a group of commits in three round trips,
//! whatever its size.
//!
//! 1. `BEGIN`, then the processes whose counters the group changes, locked
//!    (by id, shared or exclusive as `counts.rs` says: the writers of
//!    several nodes lock rows in one order and wait only for the rows they
//!    share; nothing cluster-wide) and read with their summed counters.
//!    The [`Counts`](rpa_core::store::Counts) are checked in commit order,
//!    in Rust (the rule lives in `rpa-core`), and become additions to this
//!    node's rows of `rpa_process_counts`.
//! 2. One anonymous block with every commit's statements, each commit in
//!    its own `BEGIN ... EXCEPTION` sub-block (a savepoint), values inlined
//!    as escaped literals; it reports which commits failed and why. A
//!    failed commit invalidates the counters computed after it, so if a
//!    later commit failed too the round is undone and run again without
//!    the first failure.
//! 3. The audit events of the commits that stood, unplaced, as one row of
//!    `rpa_audit_groups` (where they stay), marked as waiting in
//!    `rpa_audit_pending`; `COMMIT`. The integrator ([`Integrator`], one at
//!    a time, by any node) gives them their places in the chain afterwards,
//!    in order, writing only their numbers and hashes: writers never wait
//!    for one another on the chain's tail, and no event is written twice.
//!
//! Several statements travel in one simple query (sqlx sends a query
//! without arguments that way). A group that the block cannot carry (a
//! commit that also rewrites a process row, or a block the server refuses
//! as a whole) runs again statement by statement, each commit in a
//! savepoint of its own.

pub(crate) mod cache;
mod counts;
pub(crate) mod group_call;

use counts::Lock;

use cache::Changes;

use std::collections::HashMap;
use std::fmt::Write as _;

use rpa_core::ReadCache;
use rpa_core::audit::{self, AuditDraft};
use rpa_core::error::StoreError;
use rpa_core::model::Process;
use rpa_core::store::{Integrated, StoreResult, Unintegrated, Write};
use sqlx::{AnyConnection, AnyPool, Connection, PgConnection, Row};
use tokio::sync::{mpsc, oneshot};

use crate::plan::{self, EntityRow, Expect, Planned, Step, Stmt, Val};
use crate::{GROUP_MAX, backend_err, bind, data, unique_err};

/// A commit waiting for the group writer.
pub(crate) struct Pending {
    pub planned: Planned,
    /// The commit's writes, for the node cache once it stands.
    pub writes: Vec<Write>,
    /// What it changes, announced to the other nodes once it stands.
    pub changes: Changes,
    pub done: oneshot::Sender<StoreResult<()>>,
}

/// Takes every commit waiting and writes them as one group; each caller
/// hears back after the transaction commits. Under load many callers share
/// one transaction, and nobody waits for a batch to fill.
///
/// Before anyone hears back, the node cache takes in what stood (with the
/// process counters as written) and re-reads what a stale commit wrote; the
/// group announces what it changed to the other nodes (see `cache.rs`).
pub(crate) async fn group_writer(
    pool: AnyPool,
    url: String,
    mut rx: mpsc::Receiver<Pending>,
    cache: ReadCache,
    node: u64,
) {
    let mut hint = None;
    let mut held = None;
    while let Some(first) = rx.recv().await {
        let mut batch = crate::waiting(&mut rx, first, GROUP_MAX);
        let mut done = None;
        if batch.iter().all(|p| p.planned.rows.is_some()) {
            done = rows_in_one(&url, &mut held, &batch, node, &cache, &mut hint).await;
            if done.is_none() {
                done = rows_at_once(&pool, &batch, node, &cache, &mut hint).await;
            }
        }
        if done.is_none() {
            // The next group tries the fast path again only after a clean one.
            hint = None;
            done = one_block(&pool, &mut batch, node, &cache).await;
        }
        let (results, processes) = match done {
            Some(done) => done,
            None => (stepwise(&pool, &mut batch, node).await, Vec::new()),
        };
        let mut reread = Changes::default();
        for (p, r) in batch.iter_mut().zip(&results) {
            match r {
                Ok(()) => cache.refresh(std::mem::take(&mut p.writes)),
                Err(StoreError::Conflict) => reread.merge(std::mem::take(&mut p.changes)),
                Err(_) => {}
            }
        }
        if processes.is_empty() {
            // Counters as stored (written statement by statement).
            for (p, r) in batch.iter_mut().zip(&results) {
                if r.is_ok() {
                    reread.processes.append(&mut p.changes.processes);
                }
            }
        }
        cache.refresh(processes.into_iter().map(Write::Process));
        if !reread.is_empty() {
            cache::after_conflict(&pool, &cache, &reread).await;
        }
        for (p, r) in batch.into_iter().zip(results) {
            let _ = p.done.send(r);
        }
    }
}

/// The payloads that announce what the commits that stood changed.
fn payloads(batch: &[Pending], results: &[StoreResult<()>], node: u64) -> Vec<String> {
    let mut all = Changes::default();
    for (p, r) in batch.iter().zip(results) {
        if r.is_ok() {
            all.merge(p.changes.clone());
        }
    }
    all.payloads(node)
}

/// One statement that sends each of `payloads` on `channel`. Payloads are
/// digits, letters and spaces only (robot ids, `Changes::payloads`): safe
/// in quotes.
fn notify_sql(channel: &str, payloads: &[String]) -> String {
    if payloads.is_empty() {
        return String::new();
    }
    let list: Vec<String> = payloads.iter().map(|p| format!("'{p}'")).collect();
    format!(
        "SELECT pg_notify('{channel}', p) FROM unnest(ARRAY[{}]) AS p; ",
        list.join(", ")
    )
}

fn fail_all<T>(e: StoreError, n: usize) -> Vec<StoreResult<T>> {
    (0..n).map(|_| Err(e.clone())).collect()
}

async fn begin(pool: &AnyPool) -> StoreResult<sqlx::Transaction<'static, sqlx::Any>> {
    pool.begin().await.map_err(backend_err)
}

/// Rounds of a group before it goes statement by statement.
const ROUNDS: usize = 4;

/// The group in one block. `None`: the block cannot carry this group
/// (nothing was written); run it statement by statement instead.
///
/// A commit that fails on the server invalidates the counters of the
/// commits after it (they were computed as if it stood). So when a commit
/// fails and a later one fails too, the round is undone and run again
/// without the first failure; a later failure that was only a consequence
/// then goes through.
///
/// Also the processes whose counters the group changed, as written.
async fn one_block(
    pool: &AnyPool,
    batch: &mut [Pending],
    node: u64,
    cache: &ReadCache,
) -> Option<(Vec<StoreResult<()>>, Vec<Process>)> {
    if batch.iter().any(|p| p.planned.writes_process) {
        return None;
    }
    let n = batch.len();
    let steps: Vec<Vec<Step>> = batch.iter_mut().map(|p| std::mem::take(&mut p.planned.steps)).collect();
    let ids: Vec<i64> = steps
        .iter()
        .flatten()
        .filter_map(|s| match s {
            Step::Counts(c) => Some(c.process.0),
            _ => None,
        })
        .collect();
    let locks = locks_for(cache, ids).await;
    // Failures found in earlier rounds: those commits are left out.
    let mut known: Vec<Option<StoreError>> = vec![None; n];
    let mut conn = match pool.acquire().await {
        Ok(c) => c,
        Err(e) => return Some((fail_all(backend_err(e), n), Vec::new())),
    };
    for _ in 0..ROUNDS {
        let processes = match open(&mut conn, &locks).await {
            Ok(x) => x,
            // A deadlock with another node's writer: try the round again.
            Err(StoreError::Conflict) => {
                rollback(&mut conn).await;
                continue;
            }
            Err(e) => {
                rollback(&mut conn).await;
                return Some((fail_all(e, n), Vec::new()));
            }
        };
        let (block, mut results, sent, written) = compose(&steps, processes, &known, &locks, node);
        if sent.iter().any(|s| *s) {
            let failed = match run_block(&mut conn, &block).await {
                Ok(f) => f,
                Err(e) => {
                    // The server refused the block as a whole: nothing of it stands.
                    tracing::warn!(error = %e, "a group's block was refused; writing it statement by statement");
                    rollback(&mut conn).await;
                    break;
                }
            };
            for (i, state, text) in failed {
                if let Some(r) = results.get_mut(i) {
                    *r = Err(server_error(&state, &text));
                }
            }
            let first = (0..n).find(|&i| sent[i] && results[i].is_err());
            if let Some(f) = first
                && (f + 1..n).any(|i| known[i].is_none() && results[i].is_err())
            {
                rollback(&mut conn).await;
                known[f] = results[f].as_ref().err().cloned();
                continue;
            }
        }
        let audit: Vec<AuditDraft> = batch
            .iter_mut()
            .zip(&results)
            .filter(|(_, r)| r.is_ok())
            .flat_map(|(p, _)| std::mem::take(&mut p.planned.audit))
            .collect();
        // The counters as composed are the ones written only if every commit
        // sent stood; else the caller re-reads them.
        let clean = (0..n).all(|i| !sent[i] || results[i].is_ok());
        let written = if clean { written } else { Vec::new() };
        let close = match finish(audit, &notify_sql(cache::CHANNEL, &payloads(batch, &results, node))) {
            Ok(sql) => sql,
            Err(e) => {
                rollback(&mut conn).await;
                return Some((fail_all(e, n), Vec::new()));
            }
        };
        return Some(match sqlx::Executor::execute(&mut *conn, close.as_str()).await {
            Ok(_) => (results, written),
            Err(e) => {
                rollback(&mut conn).await;
                (fail_all(backend_err(e), n), Vec::new())
            }
        });
    }
    // Statement by statement after all.
    for (p, s) in batch.iter_mut().zip(steps) {
        p.planned.steps = s;
    }
    None
}

/// A group of commits that write only jobs, queue items and robots (with
/// counters and commands), in two round trips: (1) `BEGIN`, the counters
/// and the stored versions of every row the group writes, locked in the
/// writers' one order; then each commit is checked here, in commit order,
/// against the versions as the commits before it leave them (a stale one
/// fails alone, [`StoreError::Conflict`]); (2) one multi-row statement per
/// table with the final state of each row, the commands, the counters,
/// the notifications, the group's audit events (unplaced), `COMMIT`. The server plans a handful
/// of statements per group instead of several per commit.
///
/// `None` (nothing written) if the server refuses the second round trip (a
/// unique key taken, say): the group then goes through [`one_block`],
/// which finds the commit at fault. On success `hint` holds what the
/// group left (see [`rows_in_one`]).
async fn rows_at_once(
    pool: &AnyPool,
    batch: &[Pending],
    node: u64,
    cache: &ReadCache,
    hint: &mut Option<Hint>,
) -> Option<Written> {
    let n = batch.len();
    let mut counted: Vec<i64> = Vec::new();
    let mut keys: HashMap<&'static str, Vec<i64>> = HashMap::new();
    for p in batch {
        counted.extend(counts_of(p).map(|c| c.process.0));
        for r in p.planned.rows.iter().flatten() {
            keys.entry(r.table).or_default().push(r.id);
        }
    }
    let locks = locks_for(cache, counted).await;
    let mut conn = match pool.acquire().await {
        Ok(c) => c,
        Err(e) => return Some((fail_all(backend_err(e), n), Vec::new())),
    };
    let (processes, versions) = match open_rows(&mut conn, &locks, &keys).await {
        Ok(x) => x,
        // A deadlock with another node's writer: no commit was at fault;
        // the next path takes the group, each commit on its own.
        Err(StoreError::Conflict) => {
            rollback(&mut conn).await;
            return None;
        }
        Err(e) => {
            rollback(&mut conn).await;
            return Some((fail_all(e, n), Vec::new()));
        }
    };
    let checked = check(batch, versions, processes, &locks);
    let sql = match group_writes(batch, &checked, node) {
        Ok(w) => write_sql(&w),
        Err(e) => {
            rollback(&mut conn).await;
            return Some((fail_all(e, n), Vec::new()));
        }
    };
    match sqlx::Executor::execute(&mut *conn, sql.as_str()).await {
        Ok(_) => {
            *hint = Some(Hint);
            Some((checked.results, checked.processes.into_values().collect()))
        }
        Err(e) => {
            tracing::debug!(error = %e, "a group's rows were refused; writing it commit by commit");
            rollback(&mut conn).await;
            None
        }
    }
}

/// How a group locks each process it counts for (`ids`, in any order),
/// sorted by id: as this node's copy of the process says (`counts.rs`).
async fn locks_for(cache: &ReadCache, mut ids: Vec<i64>) -> Vec<(i64, Lock)> {
    ids.sort_unstable();
    ids.dedup();
    let mut locks = Vec::with_capacity(ids.len());
    for id in ids {
        let known = rpa_core::store::ProcessStore::process(&**cache, rpa_core::ids::ProcessId(id))
            .await
            .ok()
            .flatten();
        locks.push((id, Lock::of(known.as_ref())));
    }
    locks
}

/// That this writer's last group went through as rows: the next one tries
/// [`rows_in_one`] first.
pub(crate) struct Hint;

/// [`rows_at_once`] in one round trip, when this writer's knowledge holds:
/// each row at the version its first commit in the group read, each
/// process at the version the node cache holds. `rpa_write_rows` (see
/// `group_call.rs`) locks those rows and checks exactly that, and refuses
/// otherwise (another node wrote meanwhile, or a commit is stale): `None`,
/// nothing written, and the group takes the two-round-trip path, which
/// sorts it out.
///
/// `held` is the writer's own connection for this path, opened on first use
/// (so no group waits for a connection behind readers) and dropped when it
/// breaks.
async fn rows_in_one(
    url: &str,
    held: &mut Option<PgConnection>,
    batch: &[Pending],
    node: u64,
    cache: &ReadCache,
    hint: &mut Option<Hint>,
) -> Option<Written> {
    hint.take()?;
    // The versions each row must have now, if every commit stands.
    let mut expected: HashMap<(&'static str, i64), Option<i64>> = HashMap::new();
    let mut versions: Versions = HashMap::new();
    for p in batch {
        for r in p.planned.rows.iter().flatten() {
            let before = (r.version > 1).then(|| r.version as i64 - 1);
            let key = (r.table, r.id);
            match expected.entry(key) {
                std::collections::hash_map::Entry::Vacant(v) => {
                    v.insert(before);
                }
                // A later commit of the group is already stale.
                _ if versions.get(&key).copied() != before => return None,
                _ => {}
            }
            versions.insert(key, r.version as i64);
        }
    }
    let mut processes = HashMap::new();
    for p in batch {
        for c in counts_of(p) {
            if let std::collections::hash_map::Entry::Vacant(v) = processes.entry(c.process.0) {
                v.insert(
                    rpa_core::store::ProcessStore::process(&**cache, c.process)
                        .await
                        .ok()??,
                );
            }
        }
    }
    let guarded: Vec<group_call::Guard> = processes.values().map(group_call::Guard::of).collect();
    let locks: Vec<(i64, Lock)> = guarded.iter().map(|g| (g.id, g.lock)).collect();
    let mut before: Versions = HashMap::new();
    for (k, v) in &expected {
        if let Some(v) = v {
            before.insert(*k, *v);
        }
    }
    let checked = check(batch, before, processes, &locks);
    if checked.results.iter().any(|r| r.is_err()) {
        return None;
    }
    let expected = group_call::Expected {
        rows: expected,
        processes: guarded,
    };
    let writes = group_writes(batch, &checked, node).ok()?;
    if held.is_none() {
        match PgConnection::connect(url).await {
            Ok(c) => *held = Some(c),
            Err(e) => {
                tracing::warn!(error = %e, "the group writer cannot open its connection");
                return None;
            }
        }
    }
    let conn = held.as_mut()?;
    match group_call::write(conn, &expected, &writes).await {
        Ok(()) => {
            *hint = Some(Hint);
            Some((checked.results, checked.processes.into_values().collect()))
        }
        // Refused by the server (stale, a unique clash): the connection is fine.
        Err(group_call::CallError::Server(sqlx::Error::Database(_))) => None,
        Err(group_call::CallError::Server(e)) => {
            tracing::debug!(error = %e, "the group writer's connection broke");
            *held = None;
            None
        }
        Err(group_call::CallError::Mismatch(what)) => {
            tracing::error!(column = %what, "a row does not match the group function");
            None
        }
    }
}

/// What a group wrote: each commit's result, the processes as written.
type Written = (Vec<StoreResult<()>>, Vec<Process>);

fn counts_of(p: &Pending) -> impl Iterator<Item = &rpa_core::store::Counts> {
    p.planned.steps.iter().filter_map(|s| match s {
        Step::Counts(c) => Some(c),
        _ => None,
    })
}

/// The lock a group took on process `id` (none taken: exclusive, which
/// checks every limit).
fn lock_of(locks: &[(i64, Lock)], id: i64) -> Lock {
    locks
        .iter()
        .find(|(p, _)| *p == id)
        .map_or(Lock::Exclusive, |(_, l)| *l)
}

/// The commits of a group checked in order.
struct Checked<'a> {
    results: Vec<StoreResult<()>>,
    /// The last state of each row the commits that stand write.
    last: HashMap<(&'static str, i64), &'a EntityRow>,
    /// Every process read, with the counters of the commits that stand.
    processes: HashMap<i64, Process>,
}

/// The process of `c` with `c` applied to its counters: as this commit's
/// earlier counts (`mine`) left it, else as `stored` (read under `lock`).
/// Over a limit, a limit under a shared lock, or an unknown process, is an
/// error and changes nothing.
fn apply_counts(
    c: &rpa_core::store::Counts,
    mine: &[Process],
    stored: &HashMap<i64, Process>,
    lock: Lock,
) -> StoreResult<Process> {
    let mut q = mine
        .iter()
        .rev()
        .find(|q| q.id == c.process)
        .or_else(|| stored.get(&c.process.0))
        .cloned()
        .ok_or(StoreError::Conflict)?;
    lock.holds(&q)?;
    c.apply_to_counters(&mut q)?;
    Ok(q)
}

/// Each commit against the rows as the commits before it leave them:
/// stale (a row not at the version it read) or over a limit, it fails
/// alone and changes nothing.
fn check<'a>(
    batch: &'a [Pending],
    mut versions: Versions,
    mut processes: HashMap<i64, Process>,
    locks: &[(i64, Lock)],
) -> Checked<'a> {
    let mut results = Vec::with_capacity(batch.len());
    let mut last = HashMap::new();
    for p in batch {
        let rows = p.planned.rows.as_deref().unwrap_or_default();
        let stale = rows.iter().find(|r| {
            let stored = versions.get(&(r.table, r.id)).copied();
            match r.version {
                1 => stored.is_some(),
                v => stored != Some(v as i64 - 1),
            }
        });
        if let Some(r) = stale {
            tracing::debug!(
                table = r.table,
                id = r.id,
                read = r.version.saturating_sub(1),
                stored = ?versions.get(&(r.table, r.id)),
                "a commit rests on a stale row"
            );
            results.push(Err(StoreError::Conflict));
            continue;
        }
        let mut mine: Vec<Process> = Vec::new();
        let counted = counts_of(p).try_for_each(|c| {
            let q = apply_counts(c, &mine, &processes, lock_of(locks, c.process.0))?;
            mine.push(q);
            Ok::<_, StoreError>(())
        });
        if let Err(e) = counted {
            results.push(Err(e));
            continue;
        }
        for r in rows {
            versions.insert((r.table, r.id), r.version as i64);
            last.insert((r.table, r.id), r);
        }
        for q in mine {
            processes.insert(q.id.0, q);
        }
        results.push(Ok(()));
    }
    Checked {
        results,
        last,
        processes,
    }
}

/// What the commits that stand write: each row's final state, the counts
/// (one per process and day), the commands, the notifications, the audit
/// events.
fn group_writes<'a>(batch: &'a [Pending], checked: &Checked<'a>, node: u64) -> StoreResult<group_call::Writes<'a>> {
    let mut rows: Vec<&EntityRow> = checked.last.values().copied().collect();
    rows.sort_by_key(|r| (r.table, r.id));
    let stood = || batch.iter().zip(&checked.results).filter(|(_, r)| r.is_ok());
    let counts = counts::merged(stood().flat_map(|(p, _)| counts_of(p)));
    let mut outbox = Vec::new();
    let mut woken = Vec::new();
    for (p, _) in stood() {
        for step in &p.planned.steps {
            if let Step::Outbox { seq, robot, data } = step {
                outbox.push((*seq, *robot, data.as_str()));
                woken.push(*robot);
            }
        }
    }
    woken.sort_unstable();
    woken.dedup();
    let drafts = stood().flat_map(|(p, _)| p.planned.audit.iter().cloned());
    Ok(group_call::Writes {
        rows,
        node,
        counts,
        outbox,
        woken: woken.iter().map(i64::to_string).collect(),
        changes: payloads(batch, &checked.results, node),
        audit: unplaced(drafts)?,
    })
}

/// [`group_writes`] as one text, ending with `COMMIT`.
fn write_sql(w: &group_call::Writes<'_>) -> String {
    let mut sql = String::new();
    for rows in w.rows.chunk_by(|a, b| a.table == b.table) {
        upsert(&mut sql, rows);
    }
    for c in &w.counts {
        sql.push_str(&counts::add(c, w.node).sql);
        sql.push_str("; ");
    }
    if !w.outbox.is_empty() {
        sql.push_str("INSERT INTO rpa_outbox (seq, robot, data) VALUES ");
        for (i, (seq, robot, data)) in w.outbox.iter().enumerate() {
            let _ = write!(sql, "{}({seq}, {robot}, ", if i > 0 { ", " } else { "" });
            literal(&mut sql, &Val::S((*data).to_owned()));
            sql.push(')');
        }
        sql.push_str("; ");
    }
    sql.push_str(&notify_sql("rpa_outbox", &w.woken));
    sql.push_str(&notify_sql(cache::CHANNEL, &w.changes));
    sql.push_str(&pending_sql(w.audit.as_deref()));
    sql.push_str("COMMIT");
    sql
}

/// One statement that writes `rows` (one table, each row once) whatever
/// their versions: inserted, or updated in place. Their versions were
/// checked with the rows locked.
fn upsert(sql: &mut String, rows: &[&EntityRow]) {
    let Some(first) = rows.first() else { return };
    let cols: Vec<&str> = first.cols.iter().map(|(c, _)| *c).collect();
    let _ = write!(
        sql,
        "INSERT INTO {} (id, {}, version, data) VALUES ",
        first.table,
        cols.join(", ")
    );
    for (i, r) in rows.iter().enumerate() {
        let _ = write!(sql, "{}({}", if i > 0 { ", " } else { "" }, r.id);
        for (_, v) in &r.cols {
            sql.push_str(", ");
            literal(sql, v);
        }
        let _ = write!(sql, ", {}, ", r.version);
        literal(sql, &Val::S(r.json.clone()));
        sql.push(')');
    }
    let sets: Vec<String> = cols
        .iter()
        .chain(["version", "data"].iter())
        .map(|c| format!("{c} = excluded.{c}"))
        .collect();
    let _ = write!(sql, " ON CONFLICT (id) DO UPDATE SET {}; ", sets.join(", "));
}

/// Stored versions of rows, by table and id.
type Versions = HashMap<(&'static str, i64), i64>;

/// [`open`], and the stored versions of the rows in `keys`, locked (tables
/// by name, rows by id: the order `rpa_write_rows` locks them in).
async fn open_rows(
    conn: &mut AnyConnection,
    counted: &[(i64, Lock)],
    keys: &HashMap<&'static str, Vec<i64>>,
) -> StoreResult<(HashMap<i64, Process>, Versions)> {
    let mut sql = String::new();
    let mut tables: Vec<&'static str> = keys.keys().copied().collect();
    tables.sort_unstable();
    for (k, table) in tables.iter().enumerate() {
        let ids: Vec<String> = keys[table].iter().map(i64::to_string).collect();
        let _ = write!(
            sql,
            "; SELECT {} AS k, CAST(id AS TEXT) || ':' || CAST(version AS TEXT) AS data FROM {table} WHERE id IN ({}) \
             ORDER BY id FOR UPDATE",
            10 + k,
            ids.join(", ")
        );
    }
    let (processes, rows) = open_with(conn, counted, &sql).await?;
    let mut versions = HashMap::new();
    for (k, text) in rows {
        let table = usize::try_from(k - 10)
            .ok()
            .and_then(|i| tables.get(i))
            .ok_or_else(|| StoreError::Backend("versions: unexpected row".into()))?;
        let (id, version) = text
            .split_once(':')
            .and_then(|(a, b)| Some((a.parse().ok()?, b.parse().ok()?)))
            .ok_or_else(|| StoreError::Backend("versions: damaged".into()))?;
        versions.insert((*table, id), version);
    }
    Ok((processes, versions))
}

/// One round trip: begins the transaction and reads the processes whose
/// counters change, locked (by id, as `counts.rs` says) and with their
/// counters as summed after the locks.
async fn open(conn: &mut AnyConnection, locks: &[(i64, Lock)]) -> StoreResult<HashMap<i64, Process>> {
    Ok(open_with(conn, locks, "").await?.0)
}

/// [`open`], with `extra` (more `SELECT k, data` statements, `k >= 10`,
/// each after a `;`) in the same round trip; their rows come back as they are.
async fn open_with(
    conn: &mut AnyConnection,
    locks: &[(i64, Lock)],
    extra: &str,
) -> StoreResult<(HashMap<i64, Process>, Vec<(i32, String)>)> {
    let mut sql = String::from("BEGIN");
    sql.push_str(&counts::lock_and_read(locks));
    sql.push_str(extra);
    // Without arguments sqlx sends the text as one simple query: several statements, one round trip.
    let rows = sqlx::Executor::fetch_all(&mut *conn, sql.as_str())
        .await
        .map_err(backend_err)?;
    let mut processes = HashMap::new();
    let mut more = Vec::new();
    for row in &rows {
        let k: i32 = row.try_get("k").map_err(backend_err)?;
        match k {
            2 => {
                let p: Process = data(row)?;
                processes.insert(p.id.0, p);
            }
            k if k >= 10 => more.push((k, row.try_get("data").map_err(backend_err)?)),
            _ => {}
        }
    }
    Ok((processes, more))
}

/// One round trip: the block, then the commits it reports failed
/// (`[[index, sqlstate, message], ...]`).
async fn run_block(conn: &mut AnyConnection, block: &str) -> Result<Vec<(usize, String, String)>, StoreError> {
    let sql = format!("{block};\nSELECT current_setting('rpa.failed') AS failed");
    let rows = sqlx::Executor::fetch_all(&mut *conn, sql.as_str())
        .await
        .map_err(backend_err)?;
    let failed: String = rows
        .first()
        .ok_or_else(|| StoreError::Backend("group results: missing".into()))?
        .try_get("failed")
        .map_err(backend_err)?;
    serde_json::from_str(&failed).map_err(|e| StoreError::Backend(format!("group results: {e}")))
}

/// The group's audit events (of the commits that stood, in commit order),
/// `notify`, and `COMMIT`: the last round trip.
fn finish(drafts: Vec<AuditDraft>, notify: &str) -> StoreResult<String> {
    Ok(format!("{}{notify}COMMIT", pending_sql(unplaced(drafts)?.as_deref())))
}

/// A group's audit events as they wait for their places in the chain: one
/// JSON array, in order (`None` without events).
fn unplaced(drafts: impl IntoIterator<Item = AuditDraft>) -> StoreResult<Option<String>> {
    let events: Vec<rpa_core::model::AuditEvent> = drafts.into_iter().map(audit::unplaced).collect();
    if events.is_empty() {
        return Ok(None);
    }
    plan::to_json(&events).map(Some)
}

/// The statement that writes a group's unplaced events; nothing without.
fn pending_sql(events: Option<&str>) -> String {
    let Some(json) = events else {
        return String::new();
    };
    let mut value = String::new();
    literal(&mut value, &Val::S(json.to_owned()));
    format!("{}; ", write_group(&value))
}

/// The statement that writes a group of events (`value`: an SQL expression
/// of the JSON array) where they stay, numbered, and marks it as waiting for
/// the integrator.
pub(crate) fn write_group(value: &str) -> String {
    format!(
        "WITH g AS (INSERT INTO rpa_audit_groups (data) VALUES ({value}) RETURNING id) \
         INSERT INTO rpa_audit_pending (id) SELECT id FROM g"
    )
}

/// Ends a failed round; a connection that cannot even roll back is dropped
/// from the pool.
async fn rollback(conn: &mut sqlx::pool::PoolConnection<sqlx::Any>) {
    if let Err(e) = sqlx::Executor::execute(&mut **conn, "ROLLBACK").await {
        tracing::warn!(error = %e, "cannot roll a group back; closing its connection");
        conn.close_on_drop();
    }
}

/// The block for the commits not known to fail: each commit's statements,
/// its counters applied in commit order to `processes`. Also each commit's
/// result so far (refused here: a limit, a missing process), whether it
/// was sent, and the processes as the block leaves them if it all stands.
fn compose(
    steps: &[Vec<Step>],
    mut processes: HashMap<i64, Process>,
    known: &[Option<StoreError>],
    locks: &[(i64, Lock)],
    node: u64,
) -> (String, Vec<StoreResult<()>>, Vec<bool>, Vec<Process>) {
    let mut results = Vec::with_capacity(steps.len());
    let mut sent = Vec::with_capacity(steps.len());
    let mut block =
        String::from("DO $rpa$ DECLARE rpa_n bigint; rpa_failed jsonb := '[]'; rpa_state text; rpa_text text; BEGIN\n");
    for (i, commit) in steps.iter().enumerate() {
        if let Some(e) = &known[i] {
            results.push(Err(e.clone()));
            sent.push(false);
            continue;
        }
        match statements(commit, &mut processes, locks, node) {
            Err(e) => {
                results.push(Err(e));
                sent.push(false);
            }
            Ok(stmts) => {
                results.push(Ok(()));
                sent.push(true);
                block.push_str("BEGIN\n");
                for s in &stmts {
                    block.push_str(&statement(s));
                    block.push_str(";\n");
                    if s.expect == Expect::OneRow {
                        block.push_str(
                            "GET DIAGNOSTICS rpa_n = ROW_COUNT; IF rpa_n <> 1 THEN RAISE EXCEPTION 'stale' USING ERRCODE = '40001'; END IF;\n",
                        );
                    }
                }
                let _ = writeln!(
                    block,
                    "EXCEPTION WHEN OTHERS THEN GET STACKED DIAGNOSTICS rpa_state = RETURNED_SQLSTATE, rpa_text = MESSAGE_TEXT; \
                     rpa_failed := rpa_failed || jsonb_build_array(jsonb_build_array({i}, rpa_state, rpa_text)); END;"
                );
            }
        }
    }
    block.push_str("PERFORM set_config('rpa.failed', rpa_failed::text, true); END $rpa$");
    (block, results, sent, processes.into_values().collect())
}

/// One commit's statements; its counters change `processes` only if the
/// whole commit can be written.
fn statements(
    steps: &[Step],
    processes: &mut HashMap<i64, Process>,
    locks: &[(i64, Lock)],
    node: u64,
) -> StoreResult<Vec<Stmt>> {
    let mut changed: Vec<Process> = Vec::new();
    let mut stmts = Vec::with_capacity(steps.len());
    for step in steps {
        match step {
            Step::Run(s) => stmts.push(Stmt {
                sql: s.sql.clone(),
                args: s.args.clone(),
                expect: s.expect,
            }),
            Step::Outbox { seq, robot, data } => stmts.push(plan::outbox(*seq, *robot, data.clone())),
            Step::Counts(c) => {
                let q = apply_counts(c, &changed, processes, lock_of(locks, c.process.0))?;
                stmts.push(counts::add(c, node));
                changed.push(q);
            }
        }
    }
    for q in changed {
        processes.insert(q.id.0, q);
    }
    Ok(stmts)
}

/// An error a commit's sub-block caught, in the store's words.
fn server_error(state: &str, text: &str) -> StoreError {
    match state {
        "40001" | "40P01" => StoreError::Conflict,
        "23505" => plan::duplicate(text),
        _ => StoreError::Backend(text.to_owned()),
    }
}

/// `stmt` with its arguments inlined as literals, as a statement of a block.
fn statement(stmt: &Stmt) -> String {
    let sql = stmt.sql.strip_prefix("SELECT ").map_or_else(
        || stmt.sql.to_string(),
        // A bare SELECT (pg_notify) is a PERFORM inside a block.
        |rest| format!("PERFORM {rest}"),
    );
    let mut out = String::with_capacity(sql.len() + 64);
    let mut chars = sql.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '$' && chars.peek().is_some_and(char::is_ascii_digit) {
            let mut k = 0usize;
            while let Some(d) = chars.peek().and_then(|d| d.to_digit(10)) {
                k = k * 10 + d as usize;
                chars.next();
            }
            match stmt.args.get(k.wrapping_sub(1)) {
                Some(v) => literal(&mut out, v),
                None => out.push_str("NULL"),
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// A value as an SQL literal: numbers as digits, text as an escape string
/// (`E'...'`, backslashes and quotes doubled, `$` as `\x24`), so that no
/// value can end the string or the block's `$rpa$` quoting early.
fn literal(out: &mut String, v: &Val) {
    match v {
        Val::I(x) | Val::NI(Some(x)) => {
            let _ = write!(out, "{x}");
        }
        Val::S(s) | Val::NS(Some(s)) => {
            out.push_str("E'");
            for c in s.chars() {
                match c {
                    '\'' => out.push_str("''"),
                    '\\' => out.push_str("\\\\"),
                    '$' => out.push_str("\\x24"),
                    c => out.push(c),
                }
            }
            out.push('\'');
        }
        Val::NI(None) | Val::NS(None) => out.push_str("NULL"),
    }
}

/// The group statement by statement, each commit in a savepoint.
async fn stepwise(pool: &AnyPool, batch: &mut [Pending], node: u64) -> Vec<StoreResult<()>> {
    let mut tx = match begin(pool).await {
        Ok(tx) => tx,
        Err(e) => return fail_all(e, batch.len()),
    };
    let mut results = Vec::with_capacity(batch.len());
    let mut audit = Vec::new();
    for p in batch.iter_mut() {
        // Any error aborts a PostgreSQL transaction: every commit has a savepoint.
        if let Err(e) = sqlx::query("SAVEPOINT rpa_commit").execute(&mut *tx).await {
            return fail_all(backend_err(e), batch.len());
        }
        let mut r = Ok(());
        for step in std::mem::take(&mut p.planned.steps) {
            r = run_step(&mut tx, step, node).await;
            if r.is_err() {
                break;
            }
        }
        let undo = if r.is_ok() {
            None
        } else {
            Some("ROLLBACK TO SAVEPOINT rpa_commit")
        };
        for stmt in undo.into_iter().chain(["RELEASE SAVEPOINT rpa_commit"]) {
            if let Err(e) = sqlx::query(stmt).execute(&mut *tx).await {
                return fail_all(backend_err(e), batch.len());
            }
        }
        if r.is_ok() {
            audit.append(&mut p.planned.audit);
        }
        results.push(r);
    }
    if !audit.is_empty()
        && let Err(e) = append_audit(&mut tx, audit).await
    {
        return fail_all(e, batch.len());
    }
    let notify = notify_sql(cache::CHANNEL, &payloads(batch, &results, node));
    if !notify.is_empty()
        && let Err(e) = sqlx::Executor::execute(&mut *tx, notify.as_str()).await
    {
        return fail_all(backend_err(e), batch.len());
    }
    match tx.commit().await {
        Ok(()) => results,
        Err(e) => fail_all(backend_err(e), batch.len()),
    }
}

async fn run_step(conn: &mut AnyConnection, step: Step, node: u64) -> Result<(), StoreError> {
    match step {
        Step::Run(stmt) => exec(conn, stmt).await,
        Step::Outbox { seq, robot, data } => exec(conn, plan::outbox(seq, robot, data)).await,
        Step::Counts(c) => {
            // Locked, then read: the counters stay as read until the commit.
            let locked = counts::lock_and_read(&[(c.process.0, Lock::Exclusive)]);
            let mut p: Option<Process> = None;
            for row in sqlx::Executor::fetch_all(&mut *conn, locked.trim_start_matches("; "))
                .await
                .map_err(backend_err)?
            {
                if row.try_get::<i32, _>("k").map_err(backend_err)? == 2 {
                    p = Some(data(&row)?);
                }
            }
            let mut p = p.ok_or(StoreError::Conflict)?;
            c.apply_to_counters(&mut p)?;
            exec(conn, counts::add(&c, node)).await
        }
    }
}

async fn exec(conn: &mut AnyConnection, stmt: Stmt) -> Result<(), StoreError> {
    let Stmt { sql, args, expect } = stmt;
    let mut q = sqlx::query(&sql);
    for v in args {
        q = bind(q, v);
    }
    let done = q.execute(&mut *conn).await.map_err(unique_err)?;
    if expect == Expect::OneRow && done.rows_affected() != 1 {
        return Err(StoreError::Conflict);
    }
    Ok(())
}

/// Writes a group's audit events (of the commits that succeeded, in commit
/// order), unplaced, for the integrator.
async fn append_audit(conn: &mut AnyConnection, drafts: Vec<AuditDraft>) -> Result<(), StoreError> {
    if let Some(json) = unplaced(drafts)? {
        sqlx::query(&write_group("$1"))
            .bind(json)
            .execute(&mut *conn)
            .await
            .map_err(backend_err)?;
    }
    Ok(())
}

/// Groups of events one integration step takes.
const INTEGRATE_GROUPS: i64 = 512;

/// A node's leases on their own connection: a lease says a node lives (and
/// with it the robots whose sockets it holds), so its renewal must not wait
/// for a pool that the node's load keeps busy. A connection that fails is
/// opened again at the next call.
pub(crate) struct Leases {
    url: String,
    conn: tokio::sync::Mutex<Option<PgConnection>>,
}

impl Leases {
    pub(crate) fn new(url: &str) -> Leases {
        Leases {
            url: url.to_owned(),
            conn: tokio::sync::Mutex::new(None),
        }
    }

    /// [`rpa_core::store::LeaseStore::lease`].
    pub(crate) async fn lease(&self, name: &str, holder: u64, now: i64, until: i64) -> StoreResult<bool> {
        let q = sqlx::query(crate::queries::LEASE)
            .bind(name)
            .bind(holder as i64)
            .bind(until)
            .bind(now);
        let mut held = self.conn.lock().await;
        let conn = connected(&mut held, &self.url).await?;
        match q.fetch_optional(conn).await {
            Ok(row) => Ok(row.is_some()),
            Err(e) => {
                *held = None;
                Err(backend_err(e))
            }
        }
    }

    /// [`rpa_core::store::LeaseStore::lease_holders`] (`pattern` for `LIKE`).
    pub(crate) async fn holders(&self, pattern: &str, now: i64) -> StoreResult<Vec<u64>> {
        let q = sqlx::query_scalar::<_, i64>(crate::queries::LEASE_HOLDERS)
            .bind(pattern)
            .bind(now);
        let mut held = self.conn.lock().await;
        let conn = connected(&mut held, &self.url).await?;
        match q.fetch_all(conn).await {
            Ok(h) => Ok(h.into_iter().map(|h| h as u64).collect()),
            Err(e) => {
                *held = None;
                Err(backend_err(e))
            }
        }
    }

    /// [`rpa_core::store::LeaseStore::lease_holder`].
    pub(crate) async fn holder(&self, name: &str, now: i64) -> StoreResult<Option<u64>> {
        let q = sqlx::query_scalar::<_, i64>(crate::queries::LEASE_HOLDER)
            .bind(name)
            .bind(now);
        let mut held = self.conn.lock().await;
        let conn = connected(&mut held, &self.url).await?;
        match q.fetch_optional(conn).await {
            Ok(h) => Ok(h.map(|h| h as u64)),
            Err(e) => {
                *held = None;
                Err(backend_err(e))
            }
        }
    }
}

/// The connection in `held`, opened if there is none.
async fn connected<'a>(held: &'a mut Option<PgConnection>, url: &str) -> StoreResult<&'a mut PgConnection> {
    if held.is_none() {
        *held = Some(PgConnection::connect(url).await.map_err(backend_err)?);
    }
    held.as_mut()
        .ok_or_else(|| StoreError::Backend("lease connection".into()))
}

/// The database clock in milliseconds, as `rpa_audit_pending.written_at` has it.
const NOW_MS: &str = "CAST(floor(extract(epoch FROM clock_timestamp()) * 1000) AS BIGINT)";

/// A node's audit integrator: its own connection, on which the steps'
/// statements are prepared once and the events travel as bound arrays
/// (not parsed as SQL text). One step at a time per node; across nodes
/// the chain's tail row decides.
pub(crate) struct Integrator {
    url: String,
    conn: tokio::sync::Mutex<Option<PgConnection>>,
}

impl Integrator {
    pub(crate) fn new(url: &str) -> Integrator {
        Integrator {
            url: url.to_owned(),
            conn: tokio::sync::Mutex::new(None),
        }
    }

    /// One integration step: the oldest groups of events waiting in
    /// `rpa_audit_pending` (by number: a commit that read another's rows
    /// came after it) take their places after the chain's tail, in order,
    /// and leave the table, in one transaction. The tail's row lock makes
    /// integrators take turns (any node may integrate; the lease only
    /// spares the work); the writers never take it. A group that cannot be
    /// read (damaged in the table) stops the step before it: it stays, and
    /// the chain's verification reports it once it waited too long.
    pub(crate) async fn integrate(&self) -> StoreResult<Integrated> {
        let mut held = self.conn.lock().await;
        if held.is_none() {
            *held = Some(PgConnection::connect(&self.url).await.map_err(backend_err)?);
        }
        let Some(conn) = held.as_mut() else {
            return Ok(Integrated::default());
        };
        // Most steps find nothing: no transaction, no lock for that.
        let waiting = sqlx::query_scalar::<_, i64>("SELECT id FROM rpa_audit_pending LIMIT 1")
            .fetch_optional(&mut *conn)
            .await;
        let done = match waiting {
            Ok(None) => return Ok(Integrated::default()),
            Ok(Some(_)) => step(conn).await,
            Err(e) => Err(e),
        };
        match done {
            Ok(done) => Ok(done),
            Err(e) => {
                // The transaction ended with the error or the connection broke: start afresh.
                *held = None;
                Err(backend_err(e))
            }
        }
    }
}

async fn step(conn: &mut PgConnection) -> Result<Integrated, sqlx::Error> {
    let mut tx = conn.begin().await?;
    let (seq, hash): (i64, String) = sqlx::query_as("SELECT seq, hash FROM rpa_audit_tail WHERE id = 1 FOR UPDATE")
        .fetch_one(&mut *tx)
        .await?;
    let rows: Vec<(i64, i64, Option<String>)> = sqlx::query_as(&format!(
        "SELECT p.id, {NOW_MS} - p.written_at, g.data FROM rpa_audit_pending p \
         LEFT JOIN rpa_audit_groups g ON g.id = p.id ORDER BY p.id LIMIT $1"
    ))
    .bind(INTEGRATE_GROUPS)
    .fetch_all(&mut *tx)
    .await?;
    let damaged = |what: String| sqlx::Error::Protocol(what);
    let mut seq = u64::try_from(seq).map_err(|e| damaged(format!("audit tail: {e}")))?;
    let mut prev = [0u8; 32];
    hex::decode_to_slice(&hash, &mut prev).map_err(|e| damaged(format!("audit tail: {e}")))?;
    let mut done = Integrated {
        full: rows.len() as i64 == INTEGRATE_GROUPS,
        ..Integrated::default()
    };
    let mut taken = Vec::new();
    let mut links = Links::default();
    for (id, waited, json) in rows {
        let events = match json.as_deref().map(serde_json::from_str::<Vec<audit::Hashed>>) {
            Some(Ok(e)) => e,
            Some(Err(e)) => {
                tracing::error!(group = id, error = %e, "a group of audit events cannot be read: integration stops before it");
                done.full = false;
                break;
            }
            None => {
                tracing::error!(
                    group = id,
                    "a group of audit events is missing: integration stops before it"
                );
                done.full = false;
                break;
            }
        };
        if !events.is_empty() {
            let before = prev;
            let hashes: Vec<[u8; 32]> = events
                .iter()
                .map(|e| {
                    seq += 1;
                    prev = e.hash(&prev, seq);
                    prev
                })
                .collect();
            done.events += hashes.len() as u64;
            links.push(id, seq, &before, &hashes);
        }
        done.longest_wait_ms = done.longest_wait_ms.max(waited);
        taken.push(id);
    }
    if taken.is_empty() {
        tx.rollback().await?;
        return Ok(Integrated::default());
    }
    if !links.group.is_empty() {
        sqlx::query(
            "INSERT INTO rpa_audit_links (last_seq, first_seq, group_id, prev, hashes) \
             SELECT * FROM unnest($1::BIGINT[], $2::BIGINT[], $3::BIGINT[], $4::BYTEA[], $5::BYTEA[])",
        )
        .bind(&links.last)
        .bind(&links.first)
        .bind(&links.group)
        .bind(&links.prev)
        .bind(&links.hashes)
        .execute(&mut *tx)
        .await?;
        sqlx::query("UPDATE rpa_audit_tail SET seq = $1, hash = $2 WHERE id = 1")
            .bind(seq as i64)
            .bind(hex::encode(prev))
            .execute(&mut *tx)
            .await?;
    }
    sqlx::query("DELETE FROM rpa_audit_pending WHERE id = ANY($1)")
        .bind(&taken)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(done)
}

/// The rows of `rpa_audit_links` one step writes, as bound arrays.
#[derive(Default)]
struct Links {
    last: Vec<i64>,
    first: Vec<i64>,
    group: Vec<i64>,
    prev: Vec<Vec<u8>>,
    hashes: Vec<Vec<u8>>,
}

impl Links {
    /// Group `group`'s events, the last at `last`, after the hash `prev`.
    fn push(&mut self, group: i64, last: u64, prev: &[u8; 32], hashes: &[[u8; 32]]) {
        self.last.push(last as i64);
        self.first.push((last - hashes.len() as u64 + 1) as i64);
        self.group.push(group);
        self.prev.push(prev.to_vec());
        self.hashes.push(audit::hashes_bytes(hashes));
    }
}

/// The chain's events after `after`, at most `n`: those linked before the
/// events were written once (`rpa_audit`), then the integrated groups, each
/// put back together with its place (see [`rpa_core::audit::reassemble`]).
pub(crate) async fn chain(pool: &AnyPool, after: u64, n: usize) -> StoreResult<Vec<rpa_core::model::AuditEvent>> {
    let limit = crate::limit(n);
    let mut events: Vec<rpa_core::model::AuditEvent> = Vec::new();
    let older: Vec<String> = sqlx::query_scalar("SELECT data FROM rpa_audit WHERE seq > $1 ORDER BY seq LIMIT $2")
        .bind(i64::try_from(after).unwrap_or(i64::MAX))
        .bind(limit)
        .fetch_all(pool)
        .await
        .map_err(backend_err)?;
    for data in older {
        events.push(crate::from_json(&data)?);
    }
    let after = events.last().map_or(after, |e| e.seq.max(after));
    if events.len() >= n {
        return Ok(events);
    }
    let groups = sqlx::query(
        "SELECT l.first_seq, l.prev, l.hashes, g.data FROM rpa_audit_links l \
         LEFT JOIN rpa_audit_groups g ON g.id = l.group_id WHERE l.last_seq > $1 ORDER BY l.last_seq LIMIT $2",
    )
    .bind(i64::try_from(after).unwrap_or(i64::MAX))
    .bind(crate::limit(n - events.len()))
    .fetch_all(pool)
    .await
    .map_err(backend_err)?;
    for row in groups {
        // A group gone from the table: the numbers jump, and verification says so.
        let Some(data) = row.try_get::<Option<String>, _>("data").map_err(backend_err)? else {
            continue;
        };
        let first: i64 = row.try_get("first_seq").map_err(backend_err)?;
        let prev: Vec<u8> = row.try_get("prev").map_err(backend_err)?;
        let hashes: Vec<u8> = row.try_get("hashes").map_err(backend_err)?;
        let prev = audit::hashes_of_bytes(&prev).first().copied().unwrap_or([0; 32]);
        let placed = audit::reassemble(
            u64::try_from(first).unwrap_or(0),
            prev,
            &audit::hashes_of_bytes(&hashes),
            crate::from_json(&data)?,
        );
        events.extend(placed.into_iter().filter(|e| e.seq > after));
        if events.len() >= n {
            events.truncate(n);
            break;
        }
    }
    Ok(events)
}

/// The number of the chain's last event (0: none yet).
pub(crate) async fn head(pool: &AnyPool) -> StoreResult<u64> {
    let seq: i64 = sqlx::query_scalar("SELECT seq FROM rpa_audit_tail WHERE id = 1")
        .fetch_one(pool)
        .await
        .map_err(backend_err)?;
    Ok(u64::try_from(seq).unwrap_or(0))
}

/// The groups of events waiting for integration, and the oldest one's wait.
pub(crate) async fn unintegrated(pool: &AnyPool) -> StoreResult<Unintegrated> {
    let row = sqlx::query(&format!(
        "SELECT COUNT(*) AS n, COALESCE(MAX({NOW_MS} - written_at), 0) AS waited FROM rpa_audit_pending"
    ))
    .fetch_one(pool)
    .await
    .map_err(backend_err)?;
    Ok(Unintegrated {
        commits: u64::try_from(row.try_get::<i64, _>("n").map_err(backend_err)?).unwrap_or(0),
        oldest_wait_ms: row.try_get("waited").map_err(backend_err)?,
    })
}

/// Runs the migrations the database has not had yet, each in a
/// transaction of its own, then (re)creates the group writer's function.
/// Several nodes starting at once: one migrates, the others wait (an
/// advisory lock, held by one connection throughout).
pub(crate) async fn migrate(pool: &AnyPool) -> StoreResult<()> {
    let mut conn = pool.acquire().await.map_err(backend_err)?;
    sqlx::raw_sql("CREATE TABLE IF NOT EXISTS rpa_migrations (version BIGINT PRIMARY KEY, name TEXT NOT NULL)")
        .execute(&mut *conn)
        .await
        .map_err(backend_err)?;
    sqlx::raw_sql("SELECT pg_advisory_lock(7262)")
        .execute(&mut *conn)
        .await
        .map_err(backend_err)?;
    let result = async {
        for (version, name, sql) in crate::migrations() {
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
            if let Some(own) = crate::backend_migration(crate::Backend::Postgres, *version) {
                sqlx::raw_sql(own).execute(&mut *tx).await.map_err(backend_err)?;
            }
            sqlx::query("INSERT INTO rpa_migrations (version, name) VALUES ($1, $2)")
                .bind(*version)
                .bind(*name)
                .execute(&mut *tx)
                .await
                .map_err(backend_err)?;
            tx.commit().await.map_err(backend_err)?;
            tracing::info!(version, name, "database migrated");
        }
        // Not a migration: replaced at every start, so it is always this version's.
        sqlx::raw_sql(&group_call::function_sql())
            .execute(&mut *conn)
            .await
            .map(|_| ())
            .map_err(backend_err)
    }
    .await;
    sqlx::raw_sql("SELECT pg_advisory_unlock(7262)")
        .execute(&mut *conn)
        .await
        .map_err(backend_err)?;
    result
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Backend, SqlOptions, SqlStore, queries};
    use rpa_core::ids::UserId;
    use rpa_core::model::User;
    use rpa_core::store::prelude::*;
    use rpa_core::store::{Commit, Write};
    use rpa_core::{Key, Timestamp};
    use sqlx::Connection;

    /// `DATABASE_URL` when it names a PostgreSQL server; `None` (skip, said)
    /// without one, except under `CI=true`, where that fails.
    fn database_url() -> Option<String> {
        match std::env::var("DATABASE_URL") {
            Ok(u) if u.starts_with("postgres") => Some(u),
            _ if std::env::var("CI").is_ok_and(|v| v == "true") => {
                panic!("CI=true but DATABASE_URL does not name a PostgreSQL database")
            }
            _ => {
                eprintln!("skipping: DATABASE_URL is not set");
                None
            }
        }
    }

    /// A fresh database on `DATABASE_URL`'s server; `None` (skip) when not in CI.
    async fn fresh(tag: &str) -> Option<SqlStore> {
        let url = database_url()?;
        let name = format!("rpa_case_writer_{tag}_{}", std::process::id());
        let mut admin = sqlx::PgConnection::connect(&url).await.unwrap();
        for sql in [
            format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"),
            format!("CREATE DATABASE {name}"),
        ] {
            sqlx::Executor::execute(&mut admin, sql.as_str()).await.unwrap();
        }
        let (base, _) = url.rsplit_once('/').unwrap();
        Some(
            SqlStore::connect(
                &format!("{base}/{name}"),
                SqlOptions {
                    sealing: crate::Sealing::Key([5; 32]),
                    ..SqlOptions::default()
                },
            )
            .await
            .unwrap(),
        )
    }

    fn user(id: i64, name: &str, version: u64) -> Pending {
        let mut c = Commit {
            writes: vec![
                Write::record(&User {
                    id: UserId(id),
                    key: Key([id as u8; 16]),
                    version,
                    name: name.into(),
                    password_hash: String::new(),
                    failed_logins: 0,
                    first_failed_at: None,
                    locked_at: None,
                    locked: false,
                    disabled: false,
                    roles: Default::default(),
                    grants: Default::default(),
                    folders: Default::default(),
                    created_at: Timestamp(0),
                    directory: None,
                })
                .unwrap(),
            ],
            ..Commit::default()
        };
        c.audit.push(AuditDraft {
            at: Timestamp(0),
            actor: rpa_core::model::Actor::System,
            action: "user.create",
            subject: rpa_core::audit::Subject::Id("user", id),
            detail: String::new(),
            event: None,
        });
        Pending {
            planned: plan::plan(&mut c, Backend::Postgres, &[]).unwrap(),
            writes: Vec::new(),
            changes: Changes::default(),
            done: oneshot::channel().0,
        }
    }

    /// A commit writing `job` at its version, with one audit event.
    fn job_commit(job: rpa_core::model::Job) -> Pending {
        let mut c = Commit {
            writes: vec![Write::Job(job.clone())],
            ..Commit::default()
        };
        c.audit.push(AuditDraft {
            at: Timestamp(0),
            actor: rpa_core::model::Actor::System,
            action: "job.test",
            subject: rpa_core::audit::Subject::Id("job", job.id.0),
            detail: job.version.to_string(),
            event: None,
        });
        let planned = plan::plan(&mut c, Backend::Postgres, &[]).unwrap();
        assert!(planned.rows.is_some(), "a job-only commit is written as rows");
        Pending {
            planned,
            changes: Changes::of(&c),
            writes: c.writes,
            done: oneshot::channel().0,
        }
    }

    fn version(j: &rpa_core::model::Job, v: u64) -> rpa_core::model::Job {
        rpa_core::model::Job {
            version: v,
            steps: v as u32,
            ..j.clone()
        }
    }

    async fn stored_job(store: &SqlStore, id: i64) -> Option<(u64, u32)> {
        let row = sqlx::query(queries::JOB)
            .bind(id)
            .fetch_optional(store.pool())
            .await
            .unwrap()?;
        let j: rpa_core::model::Job = data(&row).unwrap();
        Some((j.version, j.steps))
    }

    /// Rows at once: each commit is checked against the versions the
    /// commits before it leave; a stale one fails alone; a row written by
    /// two commits ends in the later one's state; only the commits that
    /// stood are in the audit chain.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn rows_at_once_check_each_commit_in_order() {
        let Some(store) = fresh("rows").await else { return };
        use rpa_core::conformance::sample_job;
        let (a, b) = (
            sample_job(1, rpa_core::ids::ProcessId(1), 0),
            sample_job(2, rpa_core::ids::ProcessId(1), 0),
        );
        let batch = vec![
            job_commit(a.clone()),
            job_commit(version(&a, 2)),
            job_commit(version(&a, 2)),
            job_commit(version(&b, 2)),
            job_commit(b.clone()),
        ];
        let mut hint = None;
        let (results, _) = rows_at_once(store.pool(), &batch, 0, &rpa_core::ReadCache::new(), &mut hint)
            .await
            .expect("written");
        let ok: Vec<bool> = results.iter().map(Result::is_ok).collect();
        assert_eq!(ok, [true, true, false, false, true], "{results:?}");
        assert_eq!(stored_job(&store, 1).await, Some((2, 2)));
        assert_eq!(stored_job(&store, 2).await, Some((1, 0)));
        let details: Vec<String> = store
            .audit(0, 10)
            .await
            .unwrap()
            .into_iter()
            .map(|e| e.detail)
            .collect();
        assert_eq!(details, ["1", "2", "1"]);
        assert_eq!(crate::audit_ok(&store).await, 3);

        // With what this writer knows, the next group is one round trip.
        assert!(hint.is_some());
        let batch = vec![job_commit(version(&a, 3)), job_commit(version(&b, 2))];
        let cache = ReadCache::new();
        let (results, _) = rows_in_one(&store.inner.url, &mut None, &batch, 0, &cache, &mut hint)
            .await
            .expect("one round trip");
        assert!(results.iter().all(Result::is_ok));
        assert_eq!(stored_job(&store, 1).await, Some((3, 3)));
        assert_eq!(crate::audit_ok(&store).await, 5);

        // Somebody else moved a row: the knowledge no longer holds, the
        // guard refuses, nothing is written.
        sqlx::query("UPDATE rpa_jobs SET version = version + 1 WHERE id = 1")
            .execute(store.pool())
            .await
            .unwrap();
        let batch = vec![job_commit(version(&a, 4))];
        assert!(
            rows_in_one(&store.inner.url, &mut None, &batch, 0, &cache, &mut Some(Hint))
                .await
                .is_none()
        );
        assert_eq!(stored_job(&store, 1).await, Some((3, 3)), "nothing written");
        sqlx::query("UPDATE rpa_jobs SET version = version - 1 WHERE id = 1")
            .execute(store.pool())
            .await
            .unwrap();
        // A stale commit is not written in one round trip either.
        let batch = vec![job_commit(version(&a, 9))];
        assert!(
            rows_in_one(&store.inner.url, &mut None, &batch, 0, &cache, &mut Some(Hint))
                .await
                .is_none()
        );
        assert_eq!(crate::audit_ok(&store).await, 5);
    }

    /// A unique key taken (another job's key) refuses the whole text: the
    /// rows path writes nothing and leaves the group to the block.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn rows_at_once_leave_a_unique_clash_to_the_block() {
        let Some(store) = fresh("rowsdup").await else { return };
        use rpa_core::conformance::sample_job;
        let a = sample_job(1, rpa_core::ids::ProcessId(1), 0);
        let twin = rpa_core::model::Job {
            id: rpa_core::ids::JobId(2),
            ..a.clone()
        };
        let mut batch = vec![job_commit(a.clone()), job_commit(twin)];
        assert!(
            rows_at_once(store.pool(), &batch, 0, &rpa_core::ReadCache::new(), &mut None)
                .await
                .is_none()
        );
        assert_eq!(stored_job(&store, 1).await, None, "nothing stands");
        let (results, _) = one_block(store.pool(), &mut batch, 0, &rpa_core::ReadCache::new())
            .await
            .expect("one block");
        assert!(results[0].is_ok() && results[1].is_err(), "{results:?}");
        assert_eq!(stored_job(&store, 1).await, Some((1, 0)));
        assert_eq!(crate::audit_ok(&store).await, 1);
    }

    /// One block carries a group: each commit stands or falls alone, and
    /// only the commits that stood are in the audit chain.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_group_in_one_block_isolates_each_commit() {
        let Some(store) = fresh("block").await else { return };
        let mut batch = vec![
            user(1, "ann", 1),
            user(2, "ann", 1),
            user(3, "bob", 2),
            user(4, "it's $rpa$ \\ fine", 1),
        ];
        let (results, _) = one_block(store.pool(), &mut batch, 0, &rpa_core::ReadCache::new())
            .await
            .expect("one block");
        assert_eq!(
            format!("{results:?}"),
            format!(
                "{:?}",
                [
                    Ok(()),
                    Err(StoreError::Duplicate("user name")),
                    Err(StoreError::Conflict),
                    Ok(())
                ]
            )
        );
        assert_eq!(store.user(UserId(1)).await.unwrap().unwrap().name, "ann");
        assert!(store.user(UserId(2)).await.unwrap().is_none());
        assert!(store.user(UserId(3)).await.unwrap().is_none());
        assert_eq!(store.user(UserId(4)).await.unwrap().unwrap().name, "it's $rpa$ \\ fine");
        let chain = store.audit(0, 10).await.unwrap();
        let subjects: Vec<&str> = chain.iter().map(|e| e.subject.as_str()).collect();
        assert_eq!(subjects, ["user:1", "user:4"]);
    }

    /// A database of the release before counters moved to node rows: each
    /// process's counters move, as node 0's, and read as they were.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn counters_of_an_older_database_move_to_node_rows() {
        use rpa_core::ids::ProcessId;
        let Some(store) = fresh("older").await else { return };
        let p = rpa_core::conformance::sample_process(4);
        store
            .commit(Commit {
                writes: vec![Write::Process(p.clone())],
                ..Commit::default()
            })
            .await
            .unwrap();
        // As the older release left it: counters in the process row.
        let old = Process {
            running: 3,
            day: 20,
            day_successes: 5,
            pending_items: 7,
            ..p
        };
        let undo = format!(
            "DROP VIEW rpa_processes_v; DROP FUNCTION rpa_process_totals; DROP TABLE rpa_process_counts; \
             DELETE FROM rpa_migrations WHERE version = 30; UPDATE rpa_processes SET data = '{}' WHERE id = 4",
            plan::to_json(&old).unwrap()
        );
        sqlx::raw_sql(&undo).execute(store.pool()).await.unwrap();
        let url = database_url().unwrap();
        let (base, _) = url.rsplit_once('/').unwrap();
        let name = format!("rpa_case_writer_older_{}", std::process::id());
        drop(store);
        let options = SqlOptions {
            sealing: crate::Sealing::Key([5; 32]),
            ..SqlOptions::default()
        };
        let store = SqlStore::connect(&format!("{base}/{name}"), options).await.unwrap();
        let now = store.process(ProcessId(4)).await.unwrap().unwrap();
        assert_eq!(
            (now.running, now.day, now.day_successes, now.pending_items),
            (3, 20, 5, 7),
            "the counters read as the older release left them"
        );
    }

    /// A commit that fails on the server does not take the later ones'
    /// counts down: counts are added to the node's row, not computed into
    /// the process row, so the later commits stand in the same round.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_failed_commit_does_not_take_later_counters_down() {
        use rpa_core::ids::ProcessId;
        use rpa_core::model::{ProcessSpec, ProcessType};
        use rpa_core::store::Counts;
        let Some(store) = fresh("counts").await else { return };
        let p = Process {
            id: ProcessId(9),
            key: Key([9; 16]),
            version: 1,
            spec: std::sync::Arc::new(ProcessSpec {
                max_run_num: 0,
                ..ProcessSpec::new("p", ProcessType::Unattended)
            }),
            running: 0,
            day: 0,
            day_successes: 0,
            pending_items: 0,
            created_at: Timestamp(0),
        };
        store
            .commit(Commit {
                writes: vec![Write::Process(p)],
                ..Commit::default()
            })
            .await
            .unwrap();
        let start = |user_version: u64, id: i64| {
            let mut pending = user(id, &format!("u{id}"), user_version);
            pending.planned.steps.insert(
                0,
                Step::Counts(Counts {
                    process: ProcessId(9),
                    running: 1,
                    pending_items: 0,
                    successes: 0,
                    day: 0,
                    limit_pending: false,
                }),
            );
            pending
        };
        // The first commit's user row is stale (version 2 of a row that does not exist).
        let mut batch = vec![start(2, 1), start(1, 2), start(1, 3)];
        let (results, written) = one_block(store.pool(), &mut batch, 0, &rpa_core::ReadCache::new())
            .await
            .expect("one block");
        assert!(
            results[0].is_err() && results[1].is_ok() && results[2].is_ok(),
            "{results:?}"
        );
        // As stored (this node's memory hears of writes made behind its back later).
        let row = sqlx::query(queries::PROCESS)
            .bind(9i64)
            .fetch_one(store.pool())
            .await
            .unwrap();
        let p: Process = data(&row).unwrap();
        assert_eq!(
            (p.running, p.version),
            (2, 1),
            "two starts counted once each, in this node's row; the process row is not written"
        );
        // Counts are added, so the later commits did not rest on the first:
        // they stood in the first round. The writer hands on counters only
        // when every commit stood (else the node re-reads them).
        assert!(written.is_empty(), "{written:?}");
    }

    /// A value the server cannot take in a block's text (a NUL character)
    /// sends the group down the statement-by-statement path, where only
    /// that commit fails.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_refused_block_falls_back_to_statements() {
        let Some(store) = fresh("fallback").await else { return };
        let mut batch = vec![user(1, "ann", 1), user(2, "nul\0name", 1), user(3, "cy", 1)];
        assert!(
            one_block(store.pool(), &mut batch, 0, &rpa_core::ReadCache::new())
                .await
                .is_none()
        );
        assert!(
            store.user(UserId(1)).await.unwrap().is_none(),
            "nothing of the block stands"
        );
        let mut batch = vec![user(1, "ann", 1), user(2, "nul\0name", 1), user(3, "cy", 1)];
        let results = stepwise(store.pool(), &mut batch, 0).await;
        assert!(
            results[0].is_ok() && results[1].is_err() && results[2].is_ok(),
            "{results:?}"
        );
        assert_eq!(store.user(UserId(3)).await.unwrap().unwrap().name, "cy");
        assert_eq!(store.audit(0, 10).await.unwrap().len(), 2);
    }

    #[test]
    fn values_are_inlined_as_literals_no_value_can_end() {
        let s = Stmt {
            sql: "UPDATE t SET a = $1, b = $2, c = $3 WHERE id = $10 AND v = $11".into(),
            args: vec![
                Val::S("it's \\' ; $rpa$ DROP TABLE t; --".into()),
                Val::NI(None),
                Val::NS(Some("x".into())),
                Val::I(4),
                Val::I(5),
                Val::I(6),
                Val::I(7),
                Val::I(8),
                Val::I(9),
                Val::I(-10),
                Val::I(11),
            ],
            expect: Expect::OneRow,
        };
        assert_eq!(
            statement(&s),
            "UPDATE t SET a = E'it''s \\\\'' ; \\x24rpa\\x24 DROP TABLE t; --', b = NULL, c = E'x' WHERE id = -10 AND v = 11"
        );
        let notify = Stmt {
            sql: "SELECT pg_notify('rpa_outbox', $1)".into(),
            args: vec![Val::S("7".into())],
            expect: Expect::Any,
        };
        assert_eq!(statement(&notify), "PERFORM pg_notify('rpa_outbox', E'7')");
    }

    /// Strings the writers inline as literals (the group block inside its
    /// `$rpa$` quoting, and the rows-at-once text) read back byte for byte,
    /// whatever they hold: quotes, backslashes, `$`, `$rpa$`, every Unicode
    /// plane. A string PostgreSQL cannot hold (NUL) is refused, and nothing
    /// of its statement runs. Against the real server of `DATABASE_URL`.
    #[test]
    fn inlined_literals_round_trip_byte_for_byte_or_are_refused() {
        use proptest::prelude::*;
        use proptest::test_runner::{Config, TestRunner};
        let Some(url) = database_url() else { return };
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let mut conn = rt.block_on(sqlx::PgConnection::connect(&url)).unwrap();
        rt.block_on(sqlx::Executor::execute(
            &mut conn,
            "CREATE TEMP TABLE rpa_literal_probe (v text)",
        ))
        .unwrap();
        // The runner takes a `Fn`: the one connection is lent to each case.
        let conn = std::cell::RefCell::new(conn);
        let fragments = prop::sample::select(vec![
            "'",
            "''",
            "\\",
            "\\'",
            "$",
            "$$",
            "$rpa$",
            "$1",
            "E'",
            "\\x24",
            "\0",
            "--",
            ";",
            "/*",
            "\n",
            "\r",
            "\u{7f}",
            "é",
            "\u{2028}",
            "\u{FEFF}",
            "😀",
            "\u{10FFFF}",
            "a",
            " ",
        ]);
        let tricky = prop::collection::vec(fragments, 0..12).prop_map(|parts| parts.concat());
        let strings = prop_oneof![tricky, any::<String>()];
        let mut runner = TestRunner::new(Config {
            cases: 400,
            ..Config::default()
        });
        runner
            .run(&strings, |s| {
                let mut conn = conn.borrow_mut();
                let conn = &mut *conn;
                let mut lit = String::new();
                literal(&mut lit, &Val::S(s.clone()));
                let select = format!("SELECT {lit}");
                let plain = rt.block_on(async {
                    sqlx::query_scalar::<_, String>(select.as_str())
                        .fetch_one(&mut *conn)
                        .await
                });
                let block = format!("DO $rpa$ BEGIN INSERT INTO rpa_literal_probe VALUES ({lit}); END $rpa$");
                let in_block = rt.block_on(async {
                    sqlx::Executor::execute(&mut *conn, block.as_str()).await?;
                    let v = sqlx::query_scalar::<_, String>("SELECT v FROM rpa_literal_probe")
                        .fetch_all(&mut *conn)
                        .await?;
                    sqlx::Executor::execute(&mut *conn, "DELETE FROM rpa_literal_probe").await?;
                    Ok::<_, sqlx::Error>(v)
                });
                if s.contains('\0') {
                    prop_assert!(plain.is_err(), "NUL must be refused: {s:?}");
                    prop_assert!(in_block.is_err(), "NUL must be refused in a block: {s:?}");
                    let left = rt
                        .block_on(
                            sqlx::query_scalar::<_, i64>("SELECT count(*) FROM rpa_literal_probe")
                                .fetch_one(&mut *conn),
                        )
                        .unwrap();
                    prop_assert_eq!(left, 0, "a refused block wrote nothing");
                } else {
                    prop_assert_eq!(plain.as_ref().ok(), Some(&s), "read back: {:?}", plain);
                    prop_assert_eq!(
                        in_block.as_ref().ok(),
                        Some(&vec![s.clone()]),
                        "in a block: {:?}",
                        in_block
                    );
                }
                Ok(())
            })
            .unwrap();
    }
}
