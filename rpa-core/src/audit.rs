//! The hash-chained audit log (seed 001 §8: tamper-evident logs).
//!
//! Each event's hash is BLAKE3 over the previous event's hash and the event's
//! fields, so changing, removing or reordering any event breaks every hash
//! after it. Stores call [`link`] when they append; [`verify`] re-walks a chain.

use std::sync::Arc;

use crate::events::Event;
use crate::model::{Actor, AuditEvent};
use crate::time::Timestamp;

/// What an audit event is about: mostly one entity (`job:42`), sometimes free text.
///
/// Kept apart from its text form so that recording an event about an entity
/// allocates nothing; [`Subject::fmt`] gives the text stored and hashed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Subject {
    /// An entity: its kind (`job`, `robot`, …) and serial id.
    Id(&'static str, i64),
    /// Anything else.
    Text(Box<str>),
}

impl Subject {
    /// Hands the text form to `put`, piece by piece.
    fn write_to(&self, put: &mut impl FnMut(&[u8])) {
        match self {
            Subject::Id(kind, id) => {
                put(kind.as_bytes());
                put(b":");
                put(decimal(*id, &mut [0; 20]).as_bytes());
            }
            Subject::Text(t) => put(t.as_bytes()),
        }
    }
}

/// `n` in decimal, written into `buf` (20 bytes hold any i64).
fn decimal(n: i64, buf: &mut [u8; 20]) -> &str {
    let mut i = buf.len();
    let mut v = n.unsigned_abs();
    loop {
        i -= 1;
        buf[i] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    if n < 0 {
        i -= 1;
        buf[i] = b'-';
    }
    std::str::from_utf8(&buf[i..]).unwrap_or_default()
}

/// Appends `kind:id` to `out`, without the formatting machinery.
pub fn push_id(out: &mut String, kind: &str, id: i64) {
    out.push_str(kind);
    out.push(':');
    out.push_str(decimal(id, &mut [0; 20]));
}

/// `kind:id` as text, e.g. for an event's detail.
pub fn id_text(kind: &str, id: i64) -> String {
    let mut out = String::with_capacity(kind.len() + 21);
    push_id(&mut out, kind, id);
    out
}

impl std::fmt::Display for Subject {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Subject::Id(kind, id) => write!(f, "{kind}:{id}"),
            Subject::Text(t) => f.write_str(t),
        }
    }
}

impl From<String> for Subject {
    fn from(s: String) -> Self {
        Subject::Text(s.into_boxed_str())
    }
}

impl From<&str> for Subject {
    fn from(s: &str) -> Self {
        Subject::Text(s.into())
    }
}

/// An audit event before the store gives it its place in the chain.
#[derive(Debug, Clone, PartialEq)]
pub struct AuditDraft {
    /// When.
    pub at: Timestamp,
    /// Who.
    pub actor: Actor,
    /// What.
    pub action: &'static str,
    /// On what.
    pub subject: Subject,
    /// Details.
    pub detail: String,
    /// The domain event this change is (see [`crate::events`]): kept with
    /// the event, outside the hash (a copy of what the commit wrote).
    pub event: Option<Arc<Event>>,
}

/// Bytes to hash, on the stack while they fit (they almost always do).
struct Preimage {
    stack: [u8; 256],
    len: usize,
    heap: Vec<u8>,
}

impl Preimage {
    fn new() -> Self {
        Preimage {
            stack: [0; 256],
            len: 0,
            heap: Vec::new(),
        }
    }
    fn put(&mut self, b: &[u8]) {
        if self.heap.is_empty()
            && let Some(dst) = self.stack.get_mut(self.len..self.len + b.len())
        {
            dst.copy_from_slice(b);
            self.len += b.len();
            return;
        }
        if self.heap.is_empty() {
            self.heap.extend_from_slice(&self.stack[..self.len]);
        }
        self.heap.extend_from_slice(b);
    }
    fn len(&self) -> usize {
        if self.heap.is_empty() {
            self.len
        } else {
            self.heap.len()
        }
    }
    fn bytes_mut(&mut self) -> &mut [u8] {
        if self.heap.is_empty() {
            &mut self.stack[..self.len]
        } else {
            &mut self.heap
        }
    }
    fn hash(mut self) -> [u8; 32] {
        *blake3::hash(self.bytes_mut()).as_bytes()
    }
}

/// The bytes hashed for an event: the previous hash, the position, and
/// every field, each text prefixed by its length.
fn preimage(
    prev: &[u8; 32],
    seq: u64,
    at: Timestamp,
    actor: Actor,
    action: &str,
    subject: impl FnOnce(&mut Preimage),
    detail: &str,
) -> Preimage {
    let mut buf = Preimage::new();
    buf.put(prev);
    buf.put(&seq.to_le_bytes());
    buf.put(&at.0.to_le_bytes());
    let (tag, id) = match actor {
        Actor::System => (0u8, 0),
        Actor::User(u) => (1, u.0),
        Actor::Robot(r) => (2, r.0),
    };
    buf.put(&[tag]);
    buf.put(&id.to_le_bytes());
    buf.put(&(action.len() as u64).to_le_bytes());
    buf.put(action.as_bytes());
    // The subject's length goes before it: written after, once known.
    let at_len = buf.len();
    buf.put(&[0; 8]);
    subject(&mut buf);
    let len = (buf.len() - at_len - 8) as u64;
    buf.bytes_mut()[at_len..at_len + 8].copy_from_slice(&len.to_le_bytes());
    buf.put(&(detail.len() as u64).to_le_bytes());
    buf.put(detail.as_bytes());
    buf
}

fn digest(prev: &[u8; 32], e: &AuditEvent) -> [u8; 32] {
    preimage(
        prev,
        e.seq,
        e.at,
        e.actor,
        &e.action,
        |b| b.put(e.subject.as_bytes()),
        &e.detail,
    )
    .hash()
}

/// The hash `draft` gets as the event after one with hash `prev`, at `seq`:
/// the same as [`link`]'s, without building the event.
pub fn hash_of(prev: &[u8; 32], seq: u64, draft: &AuditDraft) -> [u8; 32] {
    preimage(
        prev,
        seq,
        draft.at,
        draft.actor,
        draft.action,
        |b| draft.subject.write_to(&mut |bytes| b.put(bytes)),
        &draft.detail,
    )
    .hash()
}

/// Makes `draft` the event after one with hash `prev` (zeros for the first) at `seq`.
pub fn link(prev: [u8; 32], seq: u64, draft: AuditDraft) -> AuditEvent {
    place(prev, seq, unplaced(draft))
}

/// `draft` as a store writes it before the event has its place in the
/// chain (no position, no hashes): a store that integrates its events after
/// the commit (see [`crate::store::AuditStore::integrate`]) keeps it so
/// until [`place`] gives it one.
pub fn unplaced(draft: AuditDraft) -> AuditEvent {
    AuditEvent {
        seq: 0,
        at: draft.at,
        actor: draft.actor,
        action: std::borrow::Cow::Borrowed(draft.action),
        subject: draft.subject.to_string(),
        detail: draft.detail,
        event: draft.event,
        prev_hash: [0; 32],
        hash: [0; 32],
    }
}

/// Gives an [`unplaced`] event its place: the event after one with hash
/// `prev`, at `seq` (the same event [`link`] makes of its draft).
pub fn place(prev: [u8; 32], seq: u64, mut e: AuditEvent) -> AuditEvent {
    e.seq = seq;
    e.prev_hash = prev;
    e.hash = digest(&prev, &e);
    e
}

/// What of a stored event its hash covers, read without the rest: the
/// domain event it carries is passed over, not built. An integrator hashes
/// events read this way.
#[derive(Debug, serde::Deserialize)]
pub struct Hashed<'a> {
    /// When.
    pub at: Timestamp,
    /// Who.
    pub actor: Actor,
    /// What.
    #[serde(borrow)]
    pub action: std::borrow::Cow<'a, str>,
    /// On what.
    #[serde(borrow)]
    pub subject: std::borrow::Cow<'a, str>,
    /// Details.
    #[serde(borrow)]
    pub detail: std::borrow::Cow<'a, str>,
}

impl Hashed<'_> {
    /// Its hash as the event after one with hash `prev`, at `seq`: the
    /// hash [`place`] gives the whole event.
    pub fn hash(&self, prev: &[u8; 32], seq: u64) -> [u8; 32] {
        preimage(
            prev,
            seq,
            self.at,
            self.actor,
            &self.action,
            |b| b.put(self.subject.as_bytes()),
            &self.detail,
        )
        .hash()
    }
}

/// A group of [`unplaced`] events put back in their places, as a store
/// keeps them once integrated: the events as they were committed, and apart
/// from them the first one's number, the hash before it and each one's hash
/// (see [`hashes_bytes`]). It checks nothing ([`verify`] does): an event
/// beyond the hashes reads with zeros, so a changed, added or removed event
/// breaks the chain where it stands.
pub fn reassemble(first_seq: u64, mut prev: [u8; 32], hashes: &[[u8; 32]], events: Vec<AuditEvent>) -> Vec<AuditEvent> {
    let mut seq = first_seq;
    let mut hashes = hashes.iter();
    events
        .into_iter()
        .map(|mut e| {
            e.seq = seq;
            e.prev_hash = prev;
            e.hash = hashes.next().copied().unwrap_or([0; 32]);
            seq += 1;
            prev = e.hash;
            e
        })
        .collect()
}

/// A group's hashes as one byte string: 32 bytes each, in order.
pub fn hashes_bytes(hashes: &[[u8; 32]]) -> Vec<u8> {
    hashes.concat()
}

/// The hashes of [`hashes_bytes`]; a last piece shorter than 32 bytes reads as zeros.
pub fn hashes_of_bytes(bytes: &[u8]) -> Vec<[u8; 32]> {
    bytes
        .chunks(32)
        .map(|piece| <[u8; 32]>::try_from(piece).unwrap_or([0; 32]))
        .collect()
}

/// How long a committed event may wait for its place in the chain before
/// [`crate::Engine::verify_audit`] calls the chain broken (it was committed
/// and never integrated: held back, or damaged before it could be).
pub const INTEGRATION_BOUND_MS: i64 = 60_000;

/// A break in the chain.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("audit chain broken at event {seq}: {why}")]
pub struct ChainBroken {
    /// The first event that does not verify.
    pub seq: u64,
    /// What is wrong with it.
    pub why: &'static str,
}

/// Checks a chain one event at a time, from the first.
#[derive(Debug, Clone, Default)]
pub struct Verifier {
    prev: [u8; 32],
    count: u64,
}

impl Verifier {
    /// Events verified so far.
    pub fn count(&self) -> u64 {
        self.count
    }

    /// Checks the next event.
    pub fn push(&mut self, e: &AuditEvent) -> Result<(), ChainBroken> {
        if e.seq != self.count + 1 {
            return Err(ChainBroken {
                seq: e.seq,
                why: "missing or reordered event",
            });
        }
        if e.prev_hash != self.prev {
            return Err(ChainBroken {
                seq: e.seq,
                why: "does not follow the previous event",
            });
        }
        if digest(&self.prev, e) != e.hash {
            return Err(ChainBroken {
                seq: e.seq,
                why: "content changed",
            });
        }
        self.prev = e.hash;
        self.count += 1;
        Ok(())
    }
}

/// The seal of a job's run log that its end event records (seed 001 §8:
/// log integrity): `logs=<lines>:<BLAKE3 hex>`, the hash running over every
/// line in id order (each field length-prefixed). A line changed, removed
/// or added afterwards no longer matches ([`run_log_matches`]).
pub fn run_log_seal(logs: &[crate::model::RunLog]) -> String {
    let mut h = blake3::Hasher::new();
    for l in logs {
        h.update(&l.id.0.to_le_bytes());
        h.update(&l.robot.0.to_le_bytes());
        for field in [
            l.content.as_bytes(),
            l.screenshot.as_deref().unwrap_or("\0").as_bytes(),
            l.log_at.as_bytes(),
        ] {
            h.update(&(field.len() as u64).to_le_bytes());
            h.update(field);
        }
        h.update(&[l.level as u8]);
        h.update(&l.received_at.0.to_le_bytes());
    }
    format!("{SEAL}{}:{}", logs.len(), h.finalize().to_hex())
}

const SEAL: &str = "logs=";

/// The run-log seal an audit event's detail carries, if it carries one.
pub fn sealed_run_log(detail: &str) -> Option<&str> {
    detail.rsplit(' ').next().filter(|last| last.starts_with(SEAL))
}

/// Whether `logs` are still the run log that `seal` was made of.
pub fn run_log_matches(seal: &str, logs: &[crate::model::RunLog]) -> bool {
    run_log_seal(logs) == seal
}

/// Checks a whole chain, in order from the first event. Returns the number of events.
pub fn verify<'a>(events: impl IntoIterator<Item = &'a AuditEvent>) -> Result<u64, ChainBroken> {
    let mut v = Verifier::default();
    for e in events {
        v.push(e)?;
    }
    Ok(v.count())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::UserId;

    fn chain(n: u64) -> Vec<AuditEvent> {
        let mut prev = [0; 32];
        (1..=n)
            .map(|seq| {
                let e = link(
                    prev,
                    seq,
                    AuditDraft {
                        at: Timestamp(seq as i64),
                        actor: Actor::User(UserId(1)),
                        action: "job.start",
                        subject: Subject::Id("job", seq as i64),
                        detail: String::new(),
                        event: None,
                    },
                );
                prev = e.hash;
                e
            })
            .collect()
    }

    #[test]
    fn a_subject_hashes_as_its_text() {
        for (id, text) in [
            (0, "job:0"),
            (42, "job:42"),
            (-7, "job:-7"),
            (i64::MIN, "job:-9223372036854775808"),
        ] {
            let subject = Subject::Id("job", id);
            assert_eq!(subject.to_string(), text);
            let draft = |subject: Subject| AuditDraft {
                at: Timestamp(5),
                actor: Actor::System,
                action: "job.start",
                subject,
                detail: "d".into(),
                event: None,
            };
            assert_eq!(
                hash_of(&[1; 32], 3, &draft(subject)),
                hash_of(&[1; 32], 3, &draft(text.into()))
            );
        }
    }

    #[test]
    fn the_hash_covers_every_field_however_long() {
        for n in [0, 10, 200, 1000] {
            let draft = AuditDraft {
                at: Timestamp(9),
                actor: Actor::User(UserId(3)),
                action: "x.y",
                subject: "s".repeat(n).into(),
                detail: "d".repeat(n),
                event: None,
            };
            let mut want = Vec::new();
            want.extend_from_slice(&[7; 32]);
            want.extend_from_slice(&2u64.to_le_bytes());
            want.extend_from_slice(&9i64.to_le_bytes());
            want.push(1);
            want.extend_from_slice(&3i64.to_le_bytes());
            for part in ["x.y".to_owned(), "s".repeat(n), "d".repeat(n)] {
                want.extend_from_slice(&(part.len() as u64).to_le_bytes());
                want.extend_from_slice(part.as_bytes());
            }
            assert_eq!(
                hash_of(&[7; 32], 2, &draft),
                *blake3::hash(&want).as_bytes(),
                "length {n}"
            );
        }
    }

    #[test]
    fn events_store_hashes_as_hex_and_read_the_older_arrays() {
        let e = chain(2).remove(1);
        let json = serde_json::to_value(&e).unwrap();
        assert_eq!(json["hash"], hex::encode(e.hash));
        assert_eq!(serde_json::from_value::<AuditEvent>(json.clone()).unwrap(), e);
        let mut old = json;
        old["hash"] = serde_json::json!(e.hash.to_vec());
        old["prev_hash"] = serde_json::json!(e.prev_hash.to_vec());
        assert_eq!(serde_json::from_value::<AuditEvent>(old.clone()).unwrap(), e);
        old["hash"] = serde_json::json!([1, 2, 3]);
        assert!(serde_json::from_value::<AuditEvent>(old).is_err());
    }

    #[test]
    fn an_event_placed_later_is_the_event_linked_at_once() {
        let draft = AuditDraft {
            at: Timestamp(4),
            actor: Actor::User(UserId(2)),
            action: "job.start",
            subject: Subject::Id("job", 7),
            detail: "d".into(),
            event: None,
        };
        let stored = serde_json::to_string(&unplaced(draft.clone())).unwrap();
        let read: AuditEvent = serde_json::from_str(&stored).unwrap();
        let group = format!("[{stored}]");
        let hashed: Vec<Hashed> = serde_json::from_str(&group).unwrap();
        let placed = place([3; 32], 9, read);
        assert_eq!(
            placed.hash,
            hash_of(&[3; 32], 9, &draft),
            "the hash the memory store gives it"
        );
        assert_eq!(hashed[0].hash(&[3; 32], 9), placed.hash, "read without the rest");
        assert_eq!((placed.seq, placed.prev_hash), (9, [3; 32]));
        let mut v = Verifier::default();
        assert!(v.push(&place([0; 32], 1, placed.clone())).is_ok());
    }

    #[test]
    fn a_group_kept_apart_from_its_hashes_reads_as_the_chain_it_was_placed_in() {
        let whole = chain(6);
        let hashes: Vec<[u8; 32]> = whole[2..5].iter().map(|e| e.hash).collect();
        let bytes = hashes_bytes(&hashes);
        assert_eq!(bytes.len(), 3 * 32);
        let kept = || {
            whole[2..5]
                .iter()
                .map(|e| place([0; 32], 0, e.clone()))
                .collect::<Vec<_>>()
        };
        let group = |events| reassemble(3, whole[1].hash, &hashes_of_bytes(&bytes), events);

        let mut read = whole[..2].to_vec();
        read.extend(group(kept()));
        read.push(whole[5].clone());
        assert_eq!(read, whole);
        assert_eq!(verify(&read), Ok(6));

        // Changed, removed, reordered, added where the group is kept: the chain breaks there.
        let mut changed = kept();
        changed[1].detail = "forged".into();
        let mut removed = kept();
        removed.remove(1);
        let mut reordered = kept();
        reordered.swap(0, 2);
        let mut added = kept();
        added.push(added[0].clone());
        for (events, at) in [(changed, 4), (removed, 4), (reordered, 3), (added, 6)] {
            let mut read = whole[..2].to_vec();
            read.extend(group(events));
            read.push(whole[5].clone());
            assert_eq!(verify(&read).unwrap_err().seq, at);
        }
        // Hashes cut short: zeros, a break.
        assert_eq!(hashes_of_bytes(&[7; 40]), vec![[7; 32], [0; 32]]);
    }

    #[test]
    fn an_intact_chain_verifies() {
        assert_eq!(verify(&chain(5)), Ok(5));
        assert_eq!(verify(&[]), Ok(0));
    }

    #[test]
    fn changed_removed_and_reordered_events_are_detected() {
        let mut c = chain(5);
        c[2].detail = "forged".into();
        assert_eq!(verify(&c).unwrap_err().seq, 3);

        let mut c = chain(5);
        c.remove(1);
        assert_eq!(verify(&c).unwrap_err().seq, 3);

        let mut c = chain(5);
        c.swap(1, 2);
        assert!(verify(&c).is_err());

        // A forger who renumbers and relinks still cannot keep the old hashes.
        let mut c = chain(5);
        c[4].actor = Actor::System;
        assert_eq!(verify(&c).unwrap_err().why, "content changed");
    }
}
