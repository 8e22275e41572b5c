//! The SQLite file's checkpoints, off the writer thread.
//!
//! A checkpoint copies the pages the log (`-wal`) holds back into the
//! file and syncs both, even with `synchronous = NORMAL`. Run by the writer
//! at a commit (SQLite's automatic checkpoint), it stopped every commit of
//! the store while it copied ~40 MB and waited for the disk: ~17% of the
//! writer thread's time was spent waiting in `fsync` there, ~10% copying
//! (docs/PERFORMANCE.md, "SQLite: checkpoints beside the writer").
//!
//! Here a thread of its own, on a connection of its own, copies what the
//! log holds shortly after each commit group (`PASSIVE`: the writer goes
//! on appending meanwhile; SQLite lets one writer and one checkpoint work
//! on a file at once). The writer keeps its automatic checkpoint at
//! [`CHECKPOINT_PAGES`](super::CHECKPOINT_PAGES) frames: by then this
//! thread has copied nearly all of them, so the writer copies only the
//! last few and syncs little, and the log starts over from its beginning
//! (which only a checkpoint run between two of the writer's transactions
//! lets it do). So the log stays bounded as before.

use std::path::Path;
use std::sync::mpsc::{Receiver, SyncSender, TryRecvError, sync_channel};
use std::thread::JoinHandle;
use std::time::Duration;

use rpa_core::error::StoreError;
use rpa_core::store::StoreResult;
use rusqlite::Connection;

use super::err;
use crate::Synchronous;

/// How long after a commit group the thread copies the log: the pages
/// that commits rewrite meanwhile (the tail of a table, a robot's row)
/// are copied once.
const PAUSE: Duration = Duration::from_millis(50);

/// The checkpoint thread; stopped (and waited for) by [`stop`](Self::stop).
pub(crate) struct Checkpoints {
    nudge: SyncSender<()>,
    thread: JoinHandle<()>,
}

impl Checkpoints {
    /// Opens a connection of its own to the file at `path` and starts the
    /// thread. It syncs as `sync` says, as the writer would.
    pub fn start(path: &Path, sync: Synchronous) -> StoreResult<Checkpoints> {
        let conn = Connection::open(path).map_err(err)?;
        let sync = match sync {
            Synchronous::Normal => "NORMAL",
            Synchronous::Full => "FULL",
        };
        conn.execute_batch(&format!(
            "PRAGMA synchronous = {sync}; PRAGMA busy_timeout = 5000; PRAGMA wal_autocheckpoint = 0;"
        ))
        .map_err(err)?;
        let (nudge, rx) = sync_channel(1);
        let thread = std::thread::Builder::new()
            .name("rpa-sqlite-checkpoints".into())
            .spawn(move || run(conn, rx))
            .map_err(|e| StoreError::Backend(format!("cannot start the SQLite checkpoints: {e}")))?;
        Ok(Checkpoints { nudge, thread })
    }

    /// Says that a commit group wrote to the log (never waits).
    pub fn nudge(&self) {
        let _ = self.nudge.try_send(());
    }

    /// Ends the thread once its checkpoint, if one is running, is done.
    pub fn stop(self) {
        drop(self.nudge);
        let _ = self.thread.join();
    }
}

fn run(conn: Connection, rx: Receiver<()>) {
    while rx.recv().is_ok() {
        std::thread::sleep(PAUSE);
        if let Err(TryRecvError::Disconnected) = rx.try_recv() {
            return;
        }
        // (busy, frames in the log, frames copied): busy when the writer's
        // own checkpoint runs; the next group nudges again.
        let done = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |r| {
            Ok((r.get::<_, i64>(0)?, r.get::<_, i64>(1)?, r.get::<_, i64>(2)?))
        });
        match done {
            Ok((_, log, copied)) => tracing::trace!(log, copied, "checkpoint"),
            Err(e) => tracing::warn!(error = %e, "an SQLite checkpoint failed; the writer's own checkpoints go on"),
        }
    }
}
