//! The hash-chained audit log (seed 001 §8: tamper-evident logs).
//!
//! Each event's hash is BLAKE3 over the previous event's hash and the event's
//! fields, so changing, removing or reordering any event breaks every hash
//! after it. Stores call [`link`] when they append; [`verify`] re-walks a chain.

use crate::model::{Actor, AuditEvent};
use crate::time::Timestamp;

/// An audit event before the store gives it its place in the chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditDraft {
    /// When.
    pub at: Timestamp,
    /// Who.
    pub actor: Actor,
    /// What.
    pub action: &'static str,
    /// On what.
    pub subject: String,
    /// Details.
    pub detail: String,
}

fn digest(
    prev: &[u8; 32],
    seq: u64,
    at: Timestamp,
    actor: Actor,
    action: &str,
    subject: &str,
    detail: &str,
) -> [u8; 32] {
    // One contiguous buffer hashed at once: far cheaper than many small updates.
    let mut buf = Vec::with_capacity(32 + 8 + 8 + 9 + 24 + action.len() + subject.len() + detail.len());
    buf.extend_from_slice(prev);
    buf.extend_from_slice(&seq.to_le_bytes());
    buf.extend_from_slice(&at.0.to_le_bytes());
    let (tag, id) = match actor {
        Actor::System => (0u8, 0),
        Actor::User(u) => (1, u.0),
        Actor::Robot(r) => (2, r.0),
    };
    buf.push(tag);
    buf.extend_from_slice(&id.to_le_bytes());
    for part in [action, subject, detail] {
        buf.extend_from_slice(&(part.len() as u64).to_le_bytes());
        buf.extend_from_slice(part.as_bytes());
    }
    *blake3::hash(&buf).as_bytes()
}

/// Makes `draft` the event after one with hash `prev` (zeros for the first) at `seq`.
pub fn link(prev: [u8; 32], seq: u64, draft: AuditDraft) -> AuditEvent {
    let hash = digest(
        &prev,
        seq,
        draft.at,
        draft.actor,
        draft.action,
        &draft.subject,
        &draft.detail,
    );
    AuditEvent {
        seq,
        at: draft.at,
        actor: draft.actor,
        action: std::borrow::Cow::Borrowed(draft.action),
        subject: draft.subject,
        detail: draft.detail,
        prev_hash: prev,
        hash,
    }
}

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
        if digest(&self.prev, e.seq, e.at, e.actor, &e.action, &e.subject, &e.detail) != e.hash {
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
                        subject: format!("job:{seq}"),
                        detail: String::new(),
                    },
                );
                prev = e.hash;
                e
            })
            .collect()
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
