//! Identifiers: serial ids as newtypes, and the 32-hex [`Key`] every entity carries.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

macro_rules! serial_id {
    ($(#[$doc:meta] $name:ident),+ $(,)?) => {$(
        #[$doc]
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(pub i64);

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.fmt(f)
            }
        }

        impl FromStr for $name {
            type Err = std::num::ParseIntError;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                s.parse().map($name)
            }
        }
    )+};
}

serial_id!(
    /// Serial id of a [`crate::model::User`].
    UserId,
    /// Serial id of a [`crate::model::Role`].
    RoleId,
    /// Serial id of a [`crate::model::Process`].
    ProcessId,
    /// Serial id of a [`crate::model::Job`]; also the dispatch tie-breaker (lower = older).
    JobId,
    /// Serial id of a [`crate::model::QueueItem`].
    QueueItemId,
    /// Serial id of a [`crate::model::Robot`].
    RobotId,
    /// Serial id of a [`crate::model::Vendor`].
    VendorId,
    /// Serial id of a [`crate::model::RunLog`].
    RunLogId,
    /// Serial id of a [`crate::model::StoredFile`].
    FileId,
);

/// Which serial sequence an id is drawn from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[allow(missing_docs)]
pub enum IdKind {
    User,
    Role,
    Process,
    Job,
    QueueItem,
    Robot,
    Vendor,
    RunLog,
    File,
    /// A job's step record.
    Step,
    /// The serial of a record kind, named by its table (see [`crate::record`]).
    Record(&'static str),
}

impl IdKind {
    /// The serial's name in a store.
    pub fn name(self) -> &'static str {
        match self {
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
            IdKind::Record(table) => table,
        }
    }

    /// The serial of the record kind `R`.
    pub fn of<R: crate::record::Record>() -> IdKind {
        IdKind::Record(R::KIND.table)
    }
}

/// A 32-character lowercase hex key (a UUID in simple form: v4, or v7
/// for keys an index should find in the order they were made).
///
/// Documents that speak of a "32-character random string" (seed 000 `jobId`,
/// seed 001 `runInstanceId`, `robotConnectId`) get this key.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Key(pub [u8; 16]);

impl Key {
    /// A v4 key from 16 random bytes.
    pub fn from_random(bytes: [u8; 16]) -> Self {
        Key(*uuid::Builder::from_random_bytes(bytes).into_uuid().as_bytes())
    }

    /// A v7 key: the time it was made in Unix milliseconds, then 74 random
    /// bits. Keys made later sort later, so a database index over them
    /// grows at one end (a random key lands on a random page of the index,
    /// which each insert then rewrites); the random part keeps them
    /// unguessable. It tells when it was made, to the millisecond.
    pub fn ordered(at: crate::time::Timestamp, random: [u8; 10]) -> Self {
        let millis = u64::try_from(at.0).unwrap_or(0);
        Key(*uuid::Builder::from_unix_timestamp_millis(millis, &random)
            .into_uuid()
            .as_bytes())
    }
}

impl fmt::Display for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut buf = [0u8; 32];
        // hex::encode_to_slice cannot fail: the buffer is exactly twice the input.
        let _ = hex::encode_to_slice(self.0, &mut buf);
        f.write_str(std::str::from_utf8(&buf).map_err(|_| fmt::Error)?)
    }
}

impl fmt::Debug for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Key({self})")
    }
}

/// A string that is not a 32-character hex key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not a 32-character hex key")]
pub struct BadKey;

impl FromStr for Key {
    type Err = BadKey;
    fn from_str(s: &str) -> Result<Self, BadKey> {
        if s.len() != 32 {
            return Err(BadKey);
        }
        let mut out = [0u8; 16];
        hex::decode_to_slice(s.to_ascii_lowercase(), &mut out).map_err(|_| BadKey)?;
        Ok(Key(out))
    }
}

impl Serialize for Key {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Key {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_round_trips_as_32_lowercase_hex() {
        let k = Key::from_random([0xAB; 16]);
        let s = k.to_string();
        assert_eq!(s.len(), 32);
        assert!(s.chars().all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase()));
        assert_eq!(s.parse::<Key>().unwrap(), k);
        assert_eq!(s.to_uppercase().parse::<Key>().unwrap(), k);
        assert_eq!(&s[12..13], "4", "a v4 uuid");
    }

    #[test]
    fn ordered_keys_sort_as_they_were_made_and_differ_within_a_millisecond() {
        let at = crate::time::Timestamp(1_700_000_000_000);
        let a = Key::ordered(at, [0xFF; 10]);
        let b = Key::ordered(at.plus_ms(1), [0; 10]);
        assert!(a.to_string() < b.to_string(), "{a} before {b}");
        assert_ne!(Key::ordered(at, [1; 10]), Key::ordered(at, [2; 10]));
        assert_eq!(&a.to_string()[12..13], "7", "a v7 uuid");
        assert_eq!(a.to_string().parse::<Key>().unwrap(), a);
    }

    #[test]
    fn bad_keys_are_rejected() {
        assert!("".parse::<Key>().is_err());
        assert!("zz".repeat(16).parse::<Key>().is_err());
        assert!("ab".repeat(15).parse::<Key>().is_err());
    }

    #[test]
    fn ids_display_and_parse() {
        assert_eq!(JobId(42).to_string(), "42");
        assert_eq!("42".parse::<JobId>().unwrap(), JobId(42));
    }
}
