//! Where uploaded bytes live: a directory (servers) or memory (tests).
//! The engine keeps only metadata ([`rpa_core::model::StoredFile`]).

use std::collections::HashMap;
use std::io;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use rpa_core::Key;

/// A byte store keyed by file key.
#[derive(Debug, Clone)]
pub enum Files {
    /// One file per key in a directory.
    Dir(Arc<PathBuf>),
    /// In memory.
    Memory(Arc<Mutex<HashMap<Key, Bytes>>>),
}

impl Files {
    /// A directory store, created if missing.
    pub fn dir(path: impl Into<PathBuf>) -> io::Result<Files> {
        let path = path.into();
        std::fs::create_dir_all(&path)?;
        Ok(Files::Dir(Arc::new(path)))
    }

    /// An in-memory store.
    pub fn memory() -> Files {
        Files::Memory(Arc::default())
    }

    /// Stores bytes under `key` (written to a temporary name, then renamed:
    /// a crash never leaves half a file under the key).
    pub async fn put(&self, key: Key, bytes: Bytes) -> io::Result<()> {
        match self {
            Files::Dir(dir) => {
                let tmp = dir.join(format!("{key}.part"));
                tokio::fs::write(&tmp, &bytes).await?;
                tokio::fs::rename(&tmp, dir.join(key.to_string())).await
            }
            Files::Memory(m) => {
                m.lock().unwrap_or_else(|p| p.into_inner()).insert(key, bytes);
                Ok(())
            }
        }
    }

    /// Deletes the bytes stored under `key` (none stored: nothing to do).
    pub async fn delete(&self, key: Key) -> io::Result<()> {
        match self {
            Files::Dir(dir) => match tokio::fs::remove_file(dir.join(key.to_string())).await {
                Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
                _ => Ok(()),
            },
            Files::Memory(m) => {
                m.lock().unwrap_or_else(|p| p.into_inner()).remove(&key);
                Ok(())
            }
        }
    }

    /// The bytes stored under `key`.
    pub async fn get(&self, key: Key) -> io::Result<Option<Bytes>> {
        match self {
            Files::Dir(dir) => match tokio::fs::read(dir.join(key.to_string())).await {
                Ok(b) => Ok(Some(b.into())),
                Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
                Err(e) => Err(e),
            },
            Files::Memory(m) => Ok(m.lock().unwrap_or_else(|p| p.into_inner()).get(&key).cloned()),
        }
    }
}
