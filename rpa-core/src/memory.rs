//! An in-memory [`Store`] for tests, benches and hosts that need no durability.
//!
//! One mutex around plain maps and ordered sets; every index the trait
//! promises is kept beside the data and updated in the same critical section.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::{Arc, Mutex, MutexGuard};

use crate::audit::{self, AuditDraft};
use crate::error::StoreError;
use crate::ids::*;
use crate::model::*;
use crate::record::{Cell, Kind, RecordStore, Row, Select};
use crate::store::*;
use crate::time::Timestamp;
use crate::transport::Command;

/// The in-memory store. Cloning shares it: several engines on one clone
/// behave like several nodes on one database.
#[derive(Debug, Clone, Default)]
pub struct MemoryStore {
    inner: Arc<Mutex<Inner>>,
}

/// A multiply-rotate hasher for the store's own serial ids and random keys
/// (no key here is chosen by a client, so no flooding to defend against).
#[derive(Default, Clone, Copy)]
struct IdHasher(u64);

impl Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        if let Ok(k) = <[u8; 16]>::try_from(bytes) {
            // A random key: two words.
            let (a, b) = k.split_at(8);
            self.write_u64(u64::from_le_bytes(a.try_into().unwrap_or_default()));
            self.write_u64(u64::from_le_bytes(b.try_into().unwrap_or_default()));
            return;
        }
        for chunk in bytes.chunks(8) {
            let mut buf = [0u8; 8];
            buf[..chunk.len()].copy_from_slice(chunk);
            self.write_u64(u64::from_le_bytes(buf));
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = (self.0.rotate_left(5) ^ n).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }
    fn write_i64(&mut self, n: i64) {
        self.write_u64(n as u64);
    }
    fn write_usize(&mut self, n: usize) {
        self.write_u64(n as u64);
    }
}

type Fast<K, V> = HashMap<K, V, BuildHasherDefault<IdHasher>>;

/// Where a dispatchable job sits in the dispatch indexes: its robot if
/// pinned, its process, its place (priority first, then id).
type PendingKey = (Option<RobotId>, ProcessId, (Reverse<i32>, JobId));

fn pending_key(j: &Job) -> Option<PendingKey> {
    is_dispatchable(j).then_some((j.pinned, j.process, (Reverse(j.priority), j.id)))
}

/// Jobs by id. Ids come from the store's own dense sequence, so a table
/// indexed by id finds a job with one memory access. The table grows in
/// fixed chunks, so growing never copies what is already there. Ids far
/// outside the sequence (written by hand) go to a map.
#[derive(Debug, Default)]
struct Jobs {
    chunks: Vec<Box<[Option<Job>]>>,
    /// How many jobs each chunk holds (a chunk that empties is freed).
    live: Vec<u32>,
    sparse: Fast<JobId, Job>,
}

const CHUNK: usize = 4096;

impl Jobs {
    fn slot(&self, id: JobId) -> Option<(usize, usize)> {
        let i = usize::try_from(id.0).ok()?;
        (i / CHUNK <= self.chunks.len() + 256).then_some((i / CHUNK, i % CHUNK))
    }
    fn get(&self, id: &JobId) -> Option<&Job> {
        self.slot(*id)
            .and_then(|(c, i)| self.chunks.get(c).and_then(|chunk| chunk.get(i)?.as_ref()))
            .or_else(|| self.sparse.get(id))
    }
    fn put(&mut self, j: Job) {
        match self.slot(j.id).filter(|_| !self.sparse.contains_key(&j.id)) {
            Some((c, i)) => {
                while self.chunks.len() <= c {
                    self.chunks.push((0..CHUNK).map(|_| None).collect());
                    self.live.push(0);
                }
                if self.chunks[c].is_empty() {
                    self.chunks[c] = (0..CHUNK).map(|_| None).collect();
                }
                if self.chunks[c][i].replace(j).is_none() {
                    self.live[c] += 1;
                }
            }
            None => {
                self.sparse.insert(j.id, j);
            }
        }
    }
}

impl Jobs {
    /// Every job's id.
    fn ids(&self) -> Vec<JobId> {
        let dense = self.chunks.iter().flat_map(|c| c.iter().flatten().map(|j| j.id));
        dense.chain(self.sparse.keys().copied()).collect()
    }

    /// Takes a job out; a chunk left empty is freed.
    fn remove(&mut self, id: JobId) -> Option<Job> {
        if let Some(j) = self.sparse.remove(&id) {
            return Some(j);
        }
        let (c, i) = self.slot(id)?;
        let chunk = self.chunks.get_mut(c)?;
        let j = chunk.get_mut(i)?.take();
        if j.is_some() {
            let live = self.live.get_mut(c)?;
            *live -= 1;
            if *live == 0 {
                *chunk = Box::new([]);
            }
        }
        j
    }
}

/// One event of the chain as this store keeps it: its place in the chain
/// (`seq`, the previous hash) follows from its position, and the subject
/// stays in its compact form until somebody reads the event.
#[derive(Debug)]
struct Entry {
    at: Timestamp,
    actor: Actor,
    action: &'static str,
    subject: audit::Subject,
    detail: Text,
    hash: [u8; 32],
}

/// Text kept without an allocation of its own when short (most details are).
#[derive(Debug)]
enum Text {
    Inline { len: u8, bytes: [u8; 22] },
    Heap(Box<str>),
}

impl Text {
    fn new(s: String) -> Self {
        let mut bytes = [0; 22];
        match bytes.get_mut(..s.len()) {
            Some(b) => {
                b.copy_from_slice(s.as_bytes());
                Text::Inline {
                    len: s.len() as u8,
                    bytes,
                }
            }
            None => Text::Heap(s.into_boxed_str()),
        }
    }
    fn as_str(&self) -> &str {
        match self {
            // Copied whole from a `str`: always valid.
            Text::Inline { len, bytes } => std::str::from_utf8(&bytes[..usize::from(*len)]).unwrap_or_default(),
            Text::Heap(s) => s,
        }
    }
}

/// The audit chain in fixed chunks: appending never copies older events.
#[derive(Debug, Default)]
struct AuditLog {
    chunks: Vec<Vec<Entry>>,
    /// The domain events some entries carry, by seq (in order: appended so).
    events: Vec<(u64, Arc<crate::events::Event>)>,
}

const AUDIT_CHUNK: usize = 65_536;

impl AuditLog {
    fn entry(&self, seq: u64) -> Option<&Entry> {
        let i = usize::try_from(seq.checked_sub(1)?).ok()?;
        self.chunks.get(i / AUDIT_CHUNK)?.get(i % AUDIT_CHUNK)
    }
    fn len(&self) -> u64 {
        self.chunks
            .last()
            .map_or(0, |c| ((self.chunks.len() - 1) * AUDIT_CHUNK + c.len()) as u64)
    }
    fn append(&mut self, d: AuditDraft) {
        let seq = self.len() + 1;
        let prev = self.entry(seq - 1).map_or([0; 32], |e| e.hash);
        let hash = audit::hash_of(&prev, seq, &d);
        if let Some(e) = d.event {
            self.events.push((seq, e));
        }
        if self.chunks.last().is_none_or(|c| c.len() == AUDIT_CHUNK) {
            self.chunks.push(Vec::with_capacity(AUDIT_CHUNK));
        }
        if let Some(c) = self.chunks.last_mut() {
            c.push(Entry {
                at: d.at,
                actor: d.actor,
                action: d.action,
                subject: d.subject,
                detail: Text::new(d.detail),
                hash,
            });
        }
    }
    fn get_mut(&mut self, seq: u64) -> Option<&mut Entry> {
        let i = usize::try_from(seq.checked_sub(1)?).ok()?;
        self.chunks.get_mut(i / AUDIT_CHUNK)?.get_mut(i % AUDIT_CHUNK)
    }
    /// Events with `seq > after`, at most `limit`.
    fn after(&self, after: u64, limit: usize) -> Vec<AuditEvent> {
        let mut prev = self.entry(after).map_or([0; 32], |e| e.hash);
        let mut out = Vec::new();
        let mut events = self.events[self.events.partition_point(|(s, _)| *s <= after)..]
            .iter()
            .peekable();
        for seq in after.saturating_add(1)..=self.len() {
            if out.len() == limit {
                break;
            }
            let Some(e) = self.entry(seq) else { break };
            out.push(AuditEvent {
                seq,
                at: e.at,
                actor: e.actor,
                action: std::borrow::Cow::Borrowed(e.action),
                subject: e.subject.to_string(),
                detail: e.detail.as_str().to_owned(),
                event: events.next_if(|(s, _)| *s == seq).map(|(_, e)| e.clone()),
                prev_hash: prev,
                hash: e.hash,
            });
            prev = e.hash;
        }
        out
    }
}

#[derive(Debug, Default)]
struct Inner {
    seq: HashMap<IdKindKey, i64>,
    tokens: HashMap<[u8; 32], Token>,
    processes: Fast<ProcessId, Process>,
    process_keys: Fast<Key, ProcessId>,
    jobs: Jobs,
    job_keys: Fast<Key, JobId>,
    /// Each process's jobs in creation order (the job window of
    /// `jobs_of_process`). Not kept by a read side.
    jobs_by_process: Fast<ProcessId, Vec<(Timestamp, JobId)>>,
    read_side: bool,
    /// A read side's live jobs known to have no run log: seen at version 1
    /// (the commit that takes a robot's log lines writes the job again, so
    /// a job at version 1 has none), with no log line mirrored since.
    unlogged: std::collections::HashSet<JobId, BuildHasherDefault<IdHasher>>,
    pending: Fast<ProcessId, BTreeSet<(Reverse<i32>, JobId)>>,
    /// Dispatchable jobs pinned to a robot, by robot (not in `pending`).
    pinned: Fast<RobotId, BTreeSet<(Reverse<i32>, JobId)>>,
    /// How many of each process's dispatchable jobs are pinned.
    pinned_count: Fast<ProcessId, u64>,
    items: Fast<QueueItemId, Box<QueueItem>>,
    item_keys: Fast<Key, QueueItemId>,
    item_refs: HashMap<(ProcessId, String), QueueItemId>,
    robots: Fast<RobotId, Robot>,
    robot_codes: HashMap<Arc<str>, RobotId>,
    idle: BTreeSet<RobotId>,
    vendors: HashMap<String, Vendor>,
    logs: Fast<JobId, Vec<RunLog>>,
    videos: HashMap<JobId, Vec<VideoRecord>>,
    records: HashMap<&'static str, Table>,
    timers: BTreeSet<(Timestamp, Due)>,
    outbox: Fast<RobotId, VecDeque<Command>>,
    audit: AuditLog,
    /// Whether commits leave their audit events for [`AuditStore::integrate`].
    integrate_later: bool,
    /// Each commit's audit events waiting for integration, in commit order.
    unplaced: VecDeque<Vec<AuditDraft>>,
    leases: HashMap<String, (u64, Timestamp)>,
}

type IdKindKey = &'static str;

fn kind_key(k: IdKind) -> IdKindKey {
    k.name()
}

/// The rows of one record kind, by key, its unique columns' values, and an
/// index of every indexed column (as the SQL tables have).
#[derive(Debug, Default)]
struct Table {
    rows: BTreeMap<Cell, Row>,
    /// (column, value) → the key of the row that holds it.
    unique: HashMap<(usize, Cell), Cell>,
    /// (column, value, key) of every non-null indexed value.
    index: std::collections::BTreeSet<(usize, Cell, Cell)>,
}

fn indexed(row: &Row) -> impl Iterator<Item = (usize, Cell, Cell)> + '_ {
    row.cells
        .iter()
        .enumerate()
        .filter(|(_, v)| **v != Cell::Null)
        .map(|(i, v)| (i, v.clone(), row.key.clone()))
}

fn uniques(row: &Row) -> impl Iterator<Item = (usize, &Cell, &'static str)> {
    row.kind
        .columns
        .iter()
        .zip(&row.cells)
        .enumerate()
        .filter_map(|(i, (c, v))| c.unique.filter(|_| *v != Cell::Null).map(|what| (i, v, what)))
}

impl Table {
    fn check(&self, row: &Row) -> Result<(), StoreError> {
        check_version(self.rows.get(&row.key).map(|r| r.version), row.version)?;
        for (i, v, what) in uniques(row) {
            if self.unique.get(&(i, v.clone())).is_some_and(|k| *k != row.key) {
                return Err(StoreError::Duplicate(what));
            }
        }
        Ok(())
    }

    fn put(&mut self, row: Row) {
        if let Some(old) = self.rows.get(&row.key) {
            for (i, v, _) in uniques(old) {
                self.unique.remove(&(i, v.clone()));
            }
            for entry in indexed(old) {
                self.index.remove(&entry);
            }
        }
        for (i, v, _) in uniques(&row) {
            self.unique.insert((i, v.clone()), row.key.clone());
        }
        self.index.extend(indexed(&row));
        self.rows.insert(row.key.clone(), row);
    }

    fn select(&self, kind: &Kind, s: &Select) -> Vec<Row> {
        use std::ops::Bound;
        if let Some((col, v)) = &s.only
            && *v != Cell::Null
            && let Some(i) = kind.column(col)
        {
            let from = match &s.after {
                Some(a) => Bound::Excluded((i, v.clone(), a.clone())),
                None => Bound::Included((i, v.clone(), Cell::Null)),
            };
            return self
                .index
                .range((from, Bound::Unbounded))
                .take_while(|(j, w, _)| *j == i && w == v)
                .take(s.limit)
                .filter_map(|(_, _, k)| self.rows.get(k).cloned())
                .collect();
        }
        let from = match &s.after {
            Some(a) => std::ops::Bound::Excluded(a),
            None => std::ops::Bound::Unbounded,
        };
        self.rows
            .range((from, std::ops::Bound::Unbounded))
            .map(|(_, r)| r)
            .filter(|r| s.matches(r))
            .take(s.limit)
            .cloned()
            .collect()
    }
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// A store whose commits leave their audit events unplaced until
    /// [`AuditStore::integrate`] links them into the chain, as the
    /// PostgreSQL store's do (unlike it, reading the chain does not
    /// integrate first): for simulations of integrators that die and hand
    /// over.
    pub fn integrating_later() -> Self {
        let s = Self::default();
        s.lock().integrate_later = true;
        s
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic while holding the lock leaves maps that are still consistent
        // (every write is checked before any is applied), so poison is ignored.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// An empty store to serve as a durable store's read side (see
    /// [`ReadCache`]): it keeps no job window, which the durable store
    /// answers.
    pub(crate) fn read_side() -> Self {
        let s = Self::default();
        s.lock().read_side = true;
        s
    }

    /// Applies a commit that a durable store has already checked and
    /// committed, without checking it again: this store then serves as the
    /// durable store's read side (`rpa-store-sql` on SQLite). It holds only
    /// what is live: jobs and queue items that reached their end are
    /// dropped (the durable store answers for them), and audit events, run
    /// logs, recordings and files are not kept; it only keeps which live
    /// jobs have no run log (see [`ReadCache::has_no_logs`]).
    pub(crate) fn mirror(&self, c: &Commit) {
        let mut g = self.lock();
        for w in &c.writes {
            match w {
                Write::Log(_) | Write::Video(_) | Write::DropLogs(_) => {}
                Write::Record(r) if !r.kind.cached => {}
                Write::Job(j) if j.state.is_terminal() => g.forget_job(j.id),
                Write::Job(j) if j.version == 1 => {
                    g.unlogged.insert(j.id);
                    g.apply(w.clone());
                }
                Write::Item(i) if i.state.is_terminal() => g.forget_item(i.id),
                Write::Counts(n) => {
                    if let Some(p) = g.processes.get_mut(&n.process) {
                        n.apply_unchecked(p);
                    }
                }
                w => g.apply(w.clone()),
            }
        }
        for w in &c.writes {
            if let Write::Log(l) = w {
                g.unlogged.remove(&l.job);
            }
        }
        for r in &c.clear_outbox {
            if let Some(q) = g.outbox.get_mut(r) {
                q.clear();
            }
        }
        for (r, cmd) in &c.commands {
            g.outbox.entry(*r).or_default().push_back(cmd.clone());
        }
    }

    /// Takes in what a durable store read from the database or wrote, on a
    /// node whose database other nodes write too: an entity is replaced only
    /// by a newer version of it (versions only grow), so changes arriving
    /// late or twice, from any source, are harmless (a process is also
    /// replaced at the same version: its counters may have changed). A job or queue item
    /// that has ended is dropped; `RevokeToken` drops a session. Counters
    /// (`Counts`), commands, logs and files are not kept.
    pub(crate) fn refresh(&self, writes: impl IntoIterator<Item = Write>) {
        let mut g = self.lock();
        for w in writes {
            let newer = |stored: Option<u64>, new: u64| stored.is_none_or(|v| v < new);
            match w {
                Write::Job(j) if newer(g.jobs.get(&j.id).map(|x| x.version), j.version) => {
                    if j.state.is_terminal() {
                        g.forget_job(j.id);
                    } else {
                        g.put_job(j);
                    }
                }
                Write::Item(i) if newer(g.items.get(&i.id).map(|x| x.version), i.version) => {
                    if i.state.is_terminal() {
                        g.forget_item(i.id);
                    } else {
                        g.apply(Write::Item(i));
                    }
                }
                Write::Robot(r) if newer(g.robots.get(&r.id).map(|x| x.version), r.version) => g.put_robot(r),
                // Counting may leave a process's version as it is (see
                // `Counts`): its counters as read replace those held.
                Write::Process(p) if g.processes.get(&p.id).is_none_or(|x| x.version <= p.version) => {
                    g.apply(Write::Process(p));
                }
                Write::Record(r)
                    if r.kind.cached
                        && newer(
                            g.records
                                .get(r.kind.table)
                                .and_then(|t| t.rows.get(&r.key))
                                .map(|x| x.version),
                            r.version,
                        ) =>
                {
                    g.apply(Write::Record(r))
                }
                Write::Vendor(v) if newer(g.vendors.get(&v.code).map(|x| x.version), v.version) => {
                    g.apply(Write::Vendor(v));
                }
                w @ (Write::Token(_) | Write::RevokeToken(_)) => g.apply(w),
                _ => {}
            }
        }
    }

    /// What is live here: unfinished jobs and queue items, and sessions
    /// (to find those that ended elsewhere).
    pub(crate) fn live(&self) -> (Vec<JobId>, Vec<QueueItemId>, Vec<[u8; 32]>) {
        let g = self.lock();
        (
            g.jobs.ids(),
            g.items.keys().copied().collect(),
            g.tokens.keys().copied().collect(),
        )
    }

    /// Test hook: changes one audit event in place, as an attacker with disk access would.
    #[doc(hidden)]
    pub fn tamper_audit(&self, seq: u64, detail: &str) {
        if let Some(e) = self.lock().audit.get_mut(seq) {
            e.detail = Text::new(detail.to_owned());
        }
    }
}

fn check_version(stored: Option<u64>, new: u64) -> Result<(), StoreError> {
    match stored {
        None if new == 1 => Ok(()),
        Some(v) if v + 1 == new => Ok(()),
        _ => Err(StoreError::Conflict),
    }
}

impl Inner {
    fn check(&self, w: &Write) -> Result<(), StoreError> {
        match w {
            Write::Process(p) => check_version(self.processes.get(&p.id).map(|x| x.version), p.version)?,
            Write::Counts(c) => {
                let mut p = self.processes.get(&c.process).ok_or(StoreError::Conflict)?.clone();
                c.apply(&mut p)?;
            }
            Write::Job(j) => check_version(self.jobs.get(&j.id).map(|x| x.version), j.version)?,
            Write::Item(i) => {
                check_version(self.items.get(&i.id).map(|x| x.version), i.version)?;
                if let Some(r) = &i.reference
                    && self
                        .item_refs
                        .get(&(i.process, r.clone()))
                        .is_some_and(|id| *id != i.id)
                {
                    return Err(StoreError::Duplicate("queue item reference"));
                }
            }
            Write::Robot(r) => {
                check_version(self.robots.get(&r.id).map(|x| x.version), r.version)?;
                if self.robot_codes.get(&r.code).is_some_and(|id| *id != r.id) {
                    return Err(StoreError::Duplicate("robot id"));
                }
            }
            Write::Vendor(v) => {
                let stored = self.vendors.get(&v.code);
                if stored.is_some_and(|s| s.id != v.id) {
                    return Err(StoreError::Duplicate("supplier code"));
                }
                check_version(stored.map(|x| x.version), v.version)?;
            }
            Write::Record(r) => match self.records.get(r.kind.table) {
                Some(t) => t.check(r)?,
                None => check_version(None, r.version)?,
            },
            Write::Token(_) | Write::RevokeToken(_) | Write::Log(_) | Write::Video(_) | Write::DropLogs(_) => {}
        }
        Ok(())
    }

    fn apply(&mut self, w: Write) {
        match w {
            Write::Token(t) => {
                if let Some(old) = self.tokens.get(&t.hash) {
                    self.timers.remove(&timer_of_token(old));
                }
                self.timers.insert(timer_of_token(&t));
                self.tokens.insert(t.hash, t);
            }
            Write::RevokeToken(h) => {
                if let Some(old) = self.tokens.remove(&h) {
                    self.timers.remove(&timer_of_token(&old));
                }
            }
            Write::Process(p) => {
                self.process_keys.insert(p.key, p.id);
                self.processes.insert(p.id, p);
            }
            Write::Counts(c) => {
                if let Some(p) = self.processes.get_mut(&c.process) {
                    // Checked in `check`: cannot fail here.
                    let _ = c.apply(p);
                }
            }
            Write::Job(j) => self.put_job(j),
            Write::Item(i) => {
                self.item_keys.insert(i.key, i.id);
                if let Some(r) = &i.reference {
                    self.item_refs.insert((i.process, r.clone()), i.id);
                }
                self.items.insert(i.id, Box::new(i));
            }
            Write::Robot(r) => self.put_robot(r),
            Write::Vendor(v) => {
                self.vendors.insert(v.code.clone(), v);
            }
            Write::Log(l) => self.logs.entry(l.job).or_default().push(l),
            Write::DropLogs(j) => {
                self.logs.remove(&j);
            }
            Write::Video(v) => self.videos.entry(v.job).or_default().push(v),
            Write::Record(r) => self.records.entry(r.kind.table).or_default().put(r),
        }
    }

    /// Takes a dispatchable job out of the dispatch indexes.
    fn unindex_pending(&mut self, old: Option<PendingKey>) {
        let Some((pinned, process, entry)) = old else {
            return;
        };
        match pinned {
            Some(r) => {
                if let Some(set) = self.pinned.get_mut(&r) {
                    set.remove(&entry);
                    if set.is_empty() {
                        self.pinned.remove(&r);
                    }
                }
                if let Some(n) = self.pinned_count.get_mut(&process) {
                    *n = n.saturating_sub(1);
                }
            }
            None => {
                if let Some(set) = self.pending.get_mut(&process) {
                    set.remove(&entry);
                }
            }
        }
    }

    /// Puts a dispatchable job into the dispatch indexes.
    fn index_pending(&mut self, j: &Job) {
        if !is_dispatchable(j) {
            return;
        }
        let entry = (Reverse(j.priority), j.id);
        match j.pinned {
            Some(r) => {
                self.pinned.entry(r).or_default().insert(entry);
                *self.pinned_count.entry(j.process).or_default() += 1;
            }
            None => {
                self.pending.entry(j.process).or_default().insert(entry);
            }
        }
    }

    fn put_job(&mut self, j: Job) {
        if let Some(old) = self.jobs.get(&j.id) {
            for t in timers_of_job(old) {
                self.timers.remove(&t);
            }
            let key = pending_key(old);
            self.unindex_pending(key);
        } else {
            self.job_keys.insert(j.key, j.id);
            if !self.read_side {
                let v = self.jobs_by_process.entry(j.process).or_default();
                let e = (j.created_at, j.id);
                if v.last().is_none_or(|last| *last < e) {
                    v.push(e);
                } else {
                    let at = v.partition_point(|x| *x < e);
                    v.insert(at, e);
                }
            }
        }
        self.timers.extend(timers_of_job(&j));
        self.index_pending(&j);
        self.jobs.put(j);
    }

    /// A job by key.
    fn job_by_key(&self, key: Key) -> Option<&Job> {
        self.job_keys.get(&key).and_then(|id| self.jobs.get(id))
    }

    /// Drops a job and everything that indexes it.
    fn forget_job(&mut self, id: JobId) {
        self.unlogged.remove(&id);
        if let Some(old) = self.jobs.remove(id) {
            for t in timers_of_job(&old) {
                self.timers.remove(&t);
            }
            self.unindex_pending(pending_key(&old));
            self.job_keys.remove(&old.key);
            if let Some(v) = self.jobs_by_process.get_mut(&old.process)
                && let Ok(at) = v.binary_search(&(old.created_at, old.id))
            {
                v.remove(at);
            }
        }
    }

    /// Drops a queue item and its lookups.
    fn forget_item(&mut self, id: QueueItemId) {
        if let Some(old) = self.items.remove(&id) {
            self.item_keys.remove(&old.key);
            if let Some(r) = &old.reference {
                self.item_refs.remove(&(old.process, r.clone()));
            }
        }
    }

    fn put_robot(&mut self, r: Robot) {
        if let Some(old) = self.robots.get(&r.id) {
            if let Some(t) = timers_of_robot(old) {
                self.timers.remove(&t);
            }
        } else {
            self.robot_codes.insert(r.code.clone(), r.id);
        }
        if let Some(t) = timers_of_robot(&r) {
            self.timers.insert(t);
        }
        if is_idle(&r) {
            self.idle.insert(r.id);
        } else {
            self.idle.remove(&r.id);
        }
        self.robots.insert(r.id, r);
    }
}

impl CommitStore for MemoryStore {
    async fn next_id(&self, kind: IdKind) -> StoreResult<i64> {
        let mut g = self.lock();
        let n = g.seq.entry(kind_key(kind)).or_insert(0);
        *n += 1;
        Ok(*n)
    }

    async fn commit(&self, c: Commit) -> StoreResult<()> {
        let mut g = self.lock();
        for w in &c.writes {
            g.check(w)?;
        }
        for w in c.writes {
            g.apply(w);
        }
        for r in c.clear_outbox {
            if let Some(q) = g.outbox.get_mut(&r) {
                q.clear();
            }
        }
        for (r, cmd) in c.commands {
            g.outbox.entry(r).or_default().push_back(cmd);
        }
        if g.integrate_later {
            if !c.audit.is_empty() {
                g.unplaced.push_back(c.audit);
            }
        } else {
            for d in c.audit {
                g.audit.append(d);
            }
        }
        Ok(())
    }
}

impl PeopleStore for MemoryStore {
    async fn token(&self, hash: [u8; 32]) -> StoreResult<Option<Token>> {
        Ok(self.lock().tokens.get(&hash).cloned())
    }
}

impl ProcessStore for MemoryStore {
    async fn process(&self, id: ProcessId) -> StoreResult<Option<Process>> {
        Ok(self.lock().processes.get(&id).cloned())
    }
    async fn process_by_key(&self, key: Key) -> StoreResult<Option<Process>> {
        let g = self.lock();
        Ok(g.process_keys.get(&key).and_then(|id| g.processes.get(id)).cloned())
    }
    async fn processes(&self) -> StoreResult<Vec<Process>> {
        let mut v: Vec<Process> = self.lock().processes.values().cloned().collect();
        v.sort_by_key(|p| p.id);
        Ok(v)
    }
}

impl JobStore for MemoryStore {
    async fn job(&self, id: JobId) -> StoreResult<Option<Job>> {
        Ok(self.lock().jobs.get(&id).cloned())
    }
    async fn job_by_key(&self, key: Key) -> StoreResult<Option<Job>> {
        let g = self.lock();
        Ok(g.job_by_key(key).cloned())
    }
    async fn jobs_of_process(&self, q: JobQuery) -> StoreResult<(u64, Vec<Job>)> {
        let g = self.lock();
        let all = g.jobs_by_process.get(&q.process).map_or(&[][..], Vec::as_slice);
        let start = all.partition_point(|x| *x < (q.from, JobId(i64::MIN)));
        let end = all.partition_point(|x| *x <= (q.to, JobId(i64::MAX)));
        let mut total = 0u64;
        let mut out = Vec::new();
        for (_, id) in all.get(start..end).unwrap_or_default().iter().rev() {
            let Some(j) = g.jobs.get(id) else { continue };
            if q.state.is_none_or(|s| s == j.state) {
                total += 1;
                if out.len() < q.limit {
                    out.push(j.clone());
                }
            }
        }
        Ok((total, out))
    }
    async fn job_counts(
        &self,
        process: ProcessId,
        from: Timestamp,
        to: Timestamp,
    ) -> StoreResult<Vec<(JobState, u64)>> {
        let g = self.lock();
        let all = g.jobs_by_process.get(&process).map_or(&[][..], Vec::as_slice);
        let start = all.partition_point(|x| *x < (from, JobId(i64::MIN)));
        let end = all.partition_point(|x| *x <= (to, JobId(i64::MAX)));
        let mut counts = [0u64; JobState::ALL.len()];
        for (_, id) in all.get(start..end).unwrap_or_default() {
            if let Some(j) = g.jobs.get(id)
                && let Some(i) = JobState::ALL.iter().position(|s| *s == j.state)
            {
                counts[i] += 1;
            }
        }
        Ok(JobState::ALL.into_iter().zip(counts).filter(|(_, n)| *n > 0).collect())
    }
    async fn next_pending(&self, processes: &[ProcessId]) -> StoreResult<Option<Job>> {
        let g = self.lock();
        let best = processes
            .iter()
            .filter_map(|p| g.pending.get(p).and_then(|s| s.first()))
            .min();
        Ok(best.and_then(|(_, id)| g.jobs.get(id)).cloned())
    }
    async fn pending_heads(&self, processes: &[ProcessId], limit: usize) -> StoreResult<Vec<JobId>> {
        let g = self.lock();
        let mut heads: Vec<(Reverse<i32>, JobId)> = processes
            .iter()
            .filter_map(|p| g.pending.get(p))
            .flat_map(|s| s.iter().take(limit).copied())
            .collect();
        heads.sort_unstable();
        Ok(heads.into_iter().take(limit).map(|(_, id)| id).collect())
    }
    async fn pending_count(&self, process: ProcessId) -> StoreResult<u64> {
        let g = self.lock();
        Ok(g.pending.get(&process).map_or(0, |s| s.len() as u64) + g.pinned_count.get(&process).copied().unwrap_or(0))
    }
    async fn next_pinned(&self, robot: RobotId) -> StoreResult<Option<Job>> {
        let g = self.lock();
        Ok(g.pinned
            .get(&robot)
            .and_then(|s| s.first())
            .and_then(|(_, id)| g.jobs.get(id))
            .cloned())
    }
    async fn pinned_robots(&self) -> StoreResult<Vec<RobotId>> {
        let mut robots: Vec<RobotId> = self.lock().pinned.keys().copied().collect();
        robots.sort();
        Ok(robots)
    }
}

impl QueueStore for MemoryStore {
    async fn item(&self, id: QueueItemId) -> StoreResult<Option<QueueItem>> {
        Ok(self.lock().items.get(&id).map(|i| (**i).clone()))
    }
    async fn items_of_process(&self, process: ProcessId, limit: usize) -> StoreResult<Vec<QueueItem>> {
        let g = self.lock();
        let mut items: Vec<QueueItem> = g
            .items
            .values()
            .filter(|i| i.process == process)
            .map(|i| (**i).clone())
            .collect();
        items.sort_unstable_by_key(|i| std::cmp::Reverse(i.id));
        items.truncate(limit);
        Ok(items)
    }
    async fn item_by_key(&self, key: Key) -> StoreResult<Option<QueueItem>> {
        let g = self.lock();
        Ok(g.item_keys
            .get(&key)
            .and_then(|id| g.items.get(id))
            .map(|i| (**i).clone()))
    }
    async fn item_by_reference(&self, process: ProcessId, reference: &str) -> StoreResult<Option<QueueItem>> {
        let g = self.lock();
        Ok(g.item_refs
            .get(&(process, reference.to_owned()))
            .and_then(|id| g.items.get(id))
            .map(|i| (**i).clone()))
    }
}

impl RobotStore for MemoryStore {
    async fn robot(&self, id: RobotId) -> StoreResult<Option<Robot>> {
        Ok(self.lock().robots.get(&id).cloned())
    }
    async fn robot_by_code(&self, code: &str) -> StoreResult<Option<Robot>> {
        let g = self.lock();
        Ok(g.robot_codes.get(code).and_then(|id| g.robots.get(id)).cloned())
    }
    async fn robots(&self) -> StoreResult<Vec<Robot>> {
        let mut v: Vec<Robot> = self.lock().robots.values().cloned().collect();
        v.sort_by_key(|r| r.id);
        Ok(v)
    }
    async fn available_robots(&self, after: Option<RobotId>, limit: usize) -> StoreResult<Vec<Robot>> {
        let g = self.lock();
        let start = after.map_or(i64::MIN, |a| a.0.saturating_add(1));
        Ok(g.idle
            .range(RobotId(start)..)
            .take(limit)
            .filter_map(|id| g.robots.get(id).cloned())
            .collect())
    }
    async fn vendor_by_code(&self, code: &str) -> StoreResult<Option<Vendor>> {
        Ok(self.lock().vendors.get(code).cloned())
    }
}

impl RunStore for MemoryStore {
    async fn logs(&self, job: JobId) -> StoreResult<Vec<RunLog>> {
        Ok(self.lock().logs.get(&job).cloned().unwrap_or_default())
    }
    async fn videos(&self, job: JobId) -> StoreResult<Vec<VideoRecord>> {
        Ok(self.lock().videos.get(&job).cloned().unwrap_or_default())
    }
}

impl DeadlineStore for MemoryStore {
    async fn due(&self, now: Timestamp, limit: usize) -> StoreResult<Vec<Due>> {
        Ok(self
            .lock()
            .timers
            .iter()
            .take_while(|(t, _)| *t <= now)
            .take(limit)
            .map(|(_, d)| *d)
            .collect())
    }
    async fn next_due(&self) -> StoreResult<Option<Timestamp>> {
        Ok(self.lock().timers.first().map(|(t, _)| *t))
    }
}

impl OutboxStore for MemoryStore {
    async fn take_commands(&self, robot: RobotId, limit: usize) -> StoreResult<Vec<Command>> {
        let mut g = self.lock();
        let Some(q) = g.outbox.get_mut(&robot) else {
            return Ok(Vec::new());
        };
        // An emptied queue stays: the robot's next command reuses its buffer.
        Ok(q.drain(..limit.min(q.len())).collect())
    }
}

impl AuditStore for MemoryStore {
    async fn head(&self) -> StoreResult<u64> {
        Ok(self.lock().audit.len())
    }

    async fn audit(&self, after: u64, limit: usize) -> StoreResult<Vec<AuditEvent>> {
        let g = self.lock();
        Ok(g.audit.after(after, limit))
    }

    async fn integrate(&self) -> StoreResult<crate::store::Integrated> {
        let mut g = self.lock();
        let mut done = crate::store::Integrated::default();
        while let Some(group) = g.unplaced.pop_front() {
            for d in group {
                g.audit.append(d);
                done.events += 1;
            }
        }
        Ok(done)
    }

    async fn unintegrated(&self) -> StoreResult<crate::store::Unintegrated> {
        Ok(crate::store::Unintegrated {
            commits: self.lock().unplaced.len() as u64,
            oldest_wait_ms: 0,
        })
    }
}

impl RecordStore for MemoryStore {
    async fn record(&self, kind: &'static Kind, key: &Cell) -> StoreResult<Option<Row>> {
        Ok(self
            .lock()
            .records
            .get(kind.table)
            .and_then(|t| t.rows.get(key))
            .cloned())
    }

    async fn records(&self, kind: &'static Kind, select: &Select) -> StoreResult<Vec<Row>> {
        select.check(kind)?;
        Ok(self
            .lock()
            .records
            .get(kind.table)
            .map(|t| t.select(kind, select))
            .unwrap_or_default())
    }

    async fn search(&self, kind: &'static Kind, words: &[String], select: &Select) -> StoreResult<Vec<Row>> {
        select.check(kind)?;
        let Some(col) = kind.full_text() else {
            return Err(crate::error::StoreError::Backend(format!(
                "{} has no full-text column",
                kind.name
            )));
        };
        if words.is_empty() {
            return Ok(Vec::new());
        }
        let only = Select {
            after: None,
            ..select.clone()
        };
        let g = self.lock();
        let Some(t) = g.records.get(kind.table) else {
            return Ok(Vec::new());
        };
        let mut hits: Vec<(usize, &Row)> = t
            .rows
            .values()
            .filter(|r| only.matches(r))
            .filter_map(|r| match r.cells.get(col) {
                Some(Cell::Text(text)) => crate::record::text_matches(text, words).map(|n| (n, r)),
                _ => None,
            })
            .collect();
        hits.sort_by(|a, b| b.0.cmp(&a.0).then_with(|| a.1.key.cmp(&b.1.key)));
        Ok(hits.into_iter().take(select.limit).map(|(_, r)| r.clone()).collect())
    }
}

impl LeaseStore for MemoryStore {
    async fn lease(&self, name: &str, holder: u64, now: Timestamp, until: Timestamp) -> StoreResult<bool> {
        let mut g = self.lock();
        match g.leases.get_mut(name) {
            Some((h, end)) if *h != holder && *end >= now => Ok(false),
            Some(l) => {
                *l = (holder, until);
                Ok(true)
            }
            None => {
                g.leases.insert(name.to_owned(), (holder, until));
                Ok(true)
            }
        }
    }

    async fn lease_holder(&self, name: &str, now: Timestamp) -> StoreResult<Option<u64>> {
        let g = self.lock();
        Ok(g.leases.get(name).filter(|(_, end)| *end >= now).map(|(h, _)| *h))
    }

    async fn lease_holders(&self, prefix: &str, now: Timestamp) -> StoreResult<Vec<u64>> {
        let g = self.lock();
        Ok(g.leases
            .iter()
            .filter(|(name, (_, end))| name.starts_with(prefix) && *end >= now)
            .map(|(_, (h, _))| *h)
            .collect())
    }
}

/// A durable store's read side: what is live (users, roles, sessions,
/// processes, robots, vendors, unfinished jobs and queue items, outboxes)
/// kept in memory, so that dispatch, heartbeats and logins read no
/// database. `rpa-store-sql` keeps one per store: on SQLite it is exact
/// (the one writer applies each commit to it as it stands,
/// [`ReadCache::mirror`]); on PostgreSQL it is a node's copy of what every
/// node writes ([`ReadCache::refresh`] takes in newer versions only, from
/// its own commits, the other nodes' notifications, and re-reads after a
/// conflict), and the engine confirms a refusal against the database
/// before answering it ([`crate::store::CommitStore::confirm`]).
///
/// It reads like any store (it dereferences to a [`MemoryStore`]); jobs and
/// queue items that ended are dropped, and the job window, audit chain,
/// run logs, recordings and files are not kept: the durable store answers
/// for them.
///
/// Record kinds marked [`Kind::cached`] are held whole once loaded
/// ([`ReadCache::load`]): the durable store loads a kind the first time it
/// is asked for one of its rows, and answers from memory from then on.
#[derive(Debug, Clone)]
pub struct ReadCache {
    store: MemoryStore,
    /// The cached record kinds loaded so far, by table.
    kinds: Arc<Mutex<HashMap<&'static str, &'static Kind>>>,
}

impl Default for ReadCache {
    fn default() -> Self {
        ReadCache::new()
    }
}

impl ReadCache {
    /// An empty cache.
    pub fn new() -> ReadCache {
        ReadCache {
            store: MemoryStore::read_side(),
            kinds: Arc::default(),
        }
    }

    fn kinds(&self) -> MutexGuard<'_, HashMap<&'static str, &'static Kind>> {
        self.kinds.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Takes in every row of the cached kind `kind` as read from the
    /// database (newer versions only, as [`ReadCache::refresh`]); from then
    /// on the cache answers for the kind.
    pub fn load(&self, kind: &'static Kind, rows: Vec<Row>) {
        self.store.refresh(rows.into_iter().map(Write::Record));
        self.kinds().insert(kind.table, kind);
    }

    /// Whether the cache answers for the cached kind `kind` (it was loaded).
    pub fn holds(&self, kind: &'static Kind) -> bool {
        kind.cached && self.kinds().contains_key(kind.table)
    }

    /// The loaded kind whose table is `table`.
    pub fn held(&self, table: &str) -> Option<&'static Kind> {
        self.kinds().get(table).copied()
    }

    /// The loaded kinds.
    pub fn held_kinds(&self) -> Vec<&'static Kind> {
        self.kinds().values().copied().collect()
    }

    /// Takes in a commit the durable store has checked and committed,
    /// without checking it again (the only writer's view: SQLite).
    pub fn mirror(&self, c: &Commit) {
        self.store.mirror(c)
    }

    /// Whether `job` is live and known to have no run log: this cache saw
    /// it at version 1 (the commit that takes a robot's log lines writes
    /// the job again, so a job at version 1 has none) and mirrored no log
    /// line for it since. Only a
    /// cache that mirrors every commit of its database (SQLite's) can say
    /// so; otherwise, and for every other job, the database answers.
    pub fn has_no_logs(&self, job: JobId) -> bool {
        self.store.lock().unlogged.contains(&job)
    }

    /// Takes in entities read from the database or written by a commit that
    /// stood: each replaces what is held only if its version is newer, so
    /// news arriving late or twice, from any source, is harmless. A job or
    /// queue item that ended is dropped; `RevokeToken` drops a session.
    /// Counters (`Counts`), commands, logs and records of kinds that are
    /// not [cached](Kind::cached) are not kept.
    pub fn refresh(&self, writes: impl IntoIterator<Item = Write>) {
        self.store.refresh(writes)
    }

    /// What is held that may end elsewhere: unfinished jobs, queue items,
    /// sessions (to find those that ended while this node was not told).
    pub fn live(&self) -> (Vec<JobId>, Vec<QueueItemId>, Vec<[u8; 32]>) {
        self.store.live()
    }
}

impl std::ops::Deref for ReadCache {
    type Target = MemoryStore;
    fn deref(&self) -> &MemoryStore {
        &self.store
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::conformance::sample_job;

    #[test]
    fn a_chunk_of_jobs_is_freed_when_its_last_job_leaves_and_made_again() {
        let mut jobs = Jobs::default();
        let ids = [1, 2, CHUNK as i64 - 1, CHUNK as i64, CHUNK as i64 + 1];
        for id in ids {
            jobs.put(sample_job(id, ProcessId(1), 0));
        }
        // Written again: still one job in its slot.
        jobs.put(sample_job(2, ProcessId(1), 0));
        assert_eq!(jobs.ids().len(), ids.len());
        assert_eq!(jobs.live, [3, 2]);
        for id in [2, 1] {
            assert_eq!(jobs.remove(JobId(id)).map(|j| j.id), Some(JobId(id)));
            assert!(!jobs.chunks[0].is_empty(), "job {} is left", CHUNK - 1);
        }
        assert!(jobs.remove(JobId(1)).is_none(), "removed once");
        assert!(jobs.remove(JobId(CHUNK as i64 - 1)).is_some());
        assert!(jobs.chunks[0].is_empty(), "the first chunk is freed");
        assert!(!jobs.chunks[1].is_empty(), "the second holds two");
        jobs.put(sample_job(7, ProcessId(1), 0));
        assert_eq!(
            jobs.get(&JobId(7)).map(|j| j.id),
            Some(JobId(7)),
            "a freed chunk is made again"
        );
        assert_eq!(jobs.live, [1, 2]);
    }

    #[test]
    fn a_refresh_takes_only_newer_versions_and_drops_what_ended() {
        let m = MemoryStore::read_side();
        let mut j = sample_job(1, ProcessId(1), 0);
        j.version = 3;
        m.refresh([Write::Job(j.clone())]);
        let older = Job {
            version: 2,
            state: JobState::Running,
            ..j.clone()
        };
        m.refresh([Write::Job(older)]);
        let got = |m: &MemoryStore| m.lock().jobs.get(&JobId(1)).cloned();
        assert_eq!(got(&m).map(|j| (j.version, j.state)), Some((3, JobState::Pending)));
        assert_eq!(m.lock().pending.get(&ProcessId(1)).map(|s| s.len()), Some(1));
        let ended = Job {
            version: 4,
            state: JobState::Successful,
            ..j
        };
        m.refresh([Write::Job(ended)]);
        assert!(got(&m).is_none(), "an ended job leaves the cache");
        assert_eq!(m.lock().pending.get(&ProcessId(1)).map_or(0, |s| s.len()), 0);
        assert_eq!(m.live().0, Vec::<JobId>::new());

        let t = Token {
            hash: [5; 32],
            user: UserId(1),
            created_at: Timestamp(0),
            expires_at: Timestamp(10),
        };
        m.refresh([Write::Token(t)]);
        assert_eq!(m.live().2, vec![[5; 32]]);
        m.refresh([Write::RevokeToken([5; 32])]);
        assert!(m.live().2.is_empty());
    }

    #[test]
    fn audit_details_of_any_length_read_back_whole() {
        let long = "robot:7 attempt:3 (resumed by the robot that ran it)".to_owned();
        for detail in [
            String::new(),
            "Running->Successful".into(),
            "x".repeat(22),
            "é".repeat(11),
            long,
        ] {
            let mut log = AuditLog::default();
            log.append(AuditDraft {
                at: Timestamp(1),
                actor: Actor::System,
                action: "job.dispatch",
                subject: audit::Subject::Id("job", 1),
                detail: detail.clone(),
                event: None,
            });
            let e = log.after(0, 1).remove(0);
            assert_eq!(e.detail, detail);
            assert_eq!(e.subject, "job:1");
            assert_eq!(audit::verify(&[e]), Ok(1));
        }
    }
}
