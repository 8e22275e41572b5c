//! Vendor secrets at rest: where the key comes from ([`Sealing`],
//! [`key_file`]) and sealing with ChaCha20-Poly1305 (`enc:v1:<nonce><ciphertext>`, hex).

use super::*;

/// How vendor secrets (what robots prove themselves with) and the data of
/// sealed record kinds (credential assets) are kept at rest.
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
pub(crate) fn sealing_key(url: &str, backend: Backend, sealing: &Sealing) -> Result<Option<[u8; 32]>, StoreError> {
    match sealing {
        Sealing::Key(k) => Ok(Some(*k)),
        Sealing::PlainTextInsecure => {
            tracing::warn!(
                "vendor secrets and credential assets are stored in PLAIN TEXT (Sealing::PlainTextInsecure): \
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

/// Prefix of a sealed value.
pub(crate) const SEALED: &str = "enc:v1:";

pub(crate) fn seal(key: &[u8; 32], plain: &str) -> Result<String, StoreError> {
    use chacha20poly1305::aead::{Aead, KeyInit};
    use rand::RngCore;
    let cipher = chacha20poly1305::ChaCha20Poly1305::new(key.into());
    let mut nonce = [0u8; 12];
    rand::rng().fill_bytes(&mut nonce);
    let sealed = cipher
        .encrypt(&nonce.into(), plain.as_bytes())
        .map_err(|_| StoreError::Backend("cannot encrypt a sealed value".into()))?;
    Ok(format!("{SEALED}{}{}", hex::encode(nonce), hex::encode(sealed)))
}

pub(crate) fn unseal(key: Option<&[u8; 32]>, stored: &str) -> Result<String, StoreError> {
    use chacha20poly1305::aead::{Aead, KeyInit};
    let Some(body) = stored.strip_prefix(SEALED) else {
        return Ok(stored.to_owned());
    };
    let key = key.ok_or_else(|| StoreError::Backend("a value is sealed and no secret key is configured".into()))?;
    let bytes = hex::decode(body).map_err(|_| StoreError::Backend("a sealed value is damaged".into()))?;
    if bytes.len() < 12 {
        return Err(StoreError::Backend("a sealed value is damaged".into()));
    }
    let (nonce, sealed) = bytes.split_at(12);
    let cipher = chacha20poly1305::ChaCha20Poly1305::new(key.into());
    let plain = cipher
        .decrypt(chacha20poly1305::Nonce::from_slice(nonce), sealed)
        .map_err(|_| StoreError::Backend("a sealed value does not open with the configured key".into()))?;
    String::from_utf8(plain).map_err(|_| StoreError::Backend("a sealed value is damaged".into()))
}
