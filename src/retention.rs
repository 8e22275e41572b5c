//! Retention of run files (the rules are in [`rpa_core::retention`]): on
//! the node that holds the `retention` lease, every so often, the engine
//! marks the run files the policy no longer keeps as purged and this loop
//! deletes their bytes. A crash between the two leaves bytes nobody can
//! download (their record is purged); nothing is ever served half-removed.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use rpa_adapters_http::Files;
use rpa_core::retention::Policy;
use rpa_core::{Engine, Store};

use crate::consume::Lease;

/// The lease one node of a cluster holds to apply retention.
pub const RETENTION_LEASE: &str = "retention";

/// Applies `policy` every `every` until `shutdown` completes.
pub async fn run_retention<S: Store>(
    engine: Arc<Engine<S>>,
    files: Files,
    policy: Policy,
    every: Duration,
    shutdown: impl Future<Output = ()>,
) {
    if policy.is_off() {
        return;
    }
    tokio::pin!(shutdown);
    let mut lease = Lease::new(RETENTION_LEASE);
    loop {
        match lease.hold(&engine).await {
            Ok(true) => {
                if let Some(days) = policy.log_days {
                    match engine.apply_log_retention(days, 30).await {
                        Ok(0) => {}
                        Ok(n) => tracing::info!(jobs = n, "retention: run logs deleted"),
                        Err(e) => tracing::error!(error = %e, "retention: run logs, will try again"),
                    }
                }
                match engine.apply_retention(&policy).await {
                    Ok(removed) if !removed.is_empty() => {
                        let bytes: u64 = removed.iter().map(|f| f.size).sum();
                        for f in &removed {
                            if let Err(e) = files.delete(f.key).await {
                                tracing::warn!(file = %f.key, error = %e, "retention: cannot delete a file's bytes");
                            }
                        }
                        tracing::info!(files = removed.len(), bytes, "retention: run files removed");
                    }
                    Ok(_) => {}
                    Err(e) => tracing::error!(error = %e, "retention: will try again"),
                }
            }
            Ok(false) => {}
            Err(e) => tracing::error!(error = %e, "retention: lease"),
        }
        tokio::select! {
            _ = &mut shutdown => return,
            _ = tokio::time::sleep(every) => {}
        }
    }
}
