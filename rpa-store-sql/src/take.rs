//! PostgreSQL: robots' commands taken from the outbox, many robots per
//! statement.
//!
//! A take deletes the commands it hands out, and a command is handed out
//! only once that delete has committed (at most once, even across nodes).
//! Committed one by one, every take that found something waited for its
//! own WAL flush, and the group writer's commits queued behind them. Here
//! the takes that wait while one is in flight share the next statement and
//! its one flush.

use rpa_core::error::StoreError;
use rpa_core::ids::RobotId;
use rpa_core::store::StoreResult;
use rpa_core::transport::Command;
use sqlx::{AnyPool, Row};
use tokio::sync::{mpsc, oneshot};

use crate::{backend_err, data, queries};

/// One robot's take: its oldest `n` commands.
pub(crate) struct Request {
    pub robot: RobotId,
    pub n: usize,
    pub done: oneshot::Sender<StoreResult<Vec<Command>>>,
}

/// Most takes in one statement.
pub(crate) const BATCH_MAX: usize = 512;

/// Takes every request waiting and answers them with one statement.
pub(crate) async fn run(pool: AnyPool, mut rx: mpsc::Receiver<Request>) {
    while let Some(first) = rx.recv().await {
        let batch = crate::waiting(&mut rx, first, BATCH_MAX);
        match take(&pool, &batch).await {
            Ok(mut taken) => {
                for r in batch {
                    let mine = share(&mut taken, r.robot.0, r.n);
                    let _ = r.done.send(Ok(mine));
                }
            }
            Err(e) => {
                for r in batch {
                    let _ = r.done.send(Err(e.clone()));
                }
            }
        }
    }
}

/// The requests' robots and how many commands each may take (two requests
/// of one robot add up); the deleted commands by robot, oldest first.
async fn take(pool: &AnyPool, batch: &[Request]) -> StoreResult<Vec<(i64, i64, Command)>> {
    let mut wants: Vec<(i64, usize)> = Vec::new();
    for r in batch {
        match wants.iter_mut().find(|(robot, _)| *robot == r.robot.0) {
            Some((_, n)) => *n = n.saturating_add(r.n),
            None => wants.push((r.robot.0, r.n)),
        }
    }
    let list = |f: fn(&(i64, usize)) -> String| wants.iter().map(f).collect::<Vec<_>>().join(",");
    let rows = sqlx::query(queries::OUTBOX_TAKE_PG)
        .bind(list(|(robot, _)| robot.to_string()))
        .bind(list(|(_, n)| n.min(&(i64::MAX as usize)).to_string()))
        .fetch_all(pool)
        .await
        .map_err(backend_err)?;
    let mut taken = Vec::with_capacity(rows.len());
    for r in &rows {
        let robot: i64 = r.try_get("robot").map_err(backend_err)?;
        let seq: i64 = r.try_get("seq").map_err(backend_err)?;
        taken.push((robot, seq, data(r)?));
    }
    taken.sort_by_key(|(robot, seq, _)| (*robot, *seq));
    Ok(taken)
}

/// The oldest `n` of `robot`'s commands, removed from `taken`.
fn share(taken: &mut Vec<(i64, i64, Command)>, robot: i64, n: usize) -> Vec<Command> {
    let mut mine = Vec::new();
    let mut i = 0;
    while i < taken.len() && mine.len() < n {
        if taken[i].0 == robot {
            mine.push(taken.remove(i).2);
        } else {
            i += 1;
        }
    }
    mine
}

/// The take batcher stopped: the store is being dropped.
pub(crate) fn stopped<T>(_: T) -> StoreError {
    StoreError::Backend("the outbox reader stopped".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stop(n: i64) -> Command {
        Command::Error {
            error_code: 0,
            message: n.to_string(),
        }
    }

    #[test]
    fn two_takes_of_one_robot_share_its_commands_oldest_first() {
        let mut taken = vec![
            (1, 10, stop(10)),
            (2, 11, stop(11)),
            (1, 12, stop(12)),
            (1, 13, stop(13)),
        ];
        let a = share(&mut taken, 1, 2);
        let b = share(&mut taken, 1, 5);
        let c = share(&mut taken, 2, 1);
        assert_eq!(a, vec![stop(10), stop(12)]);
        assert_eq!(b, vec![stop(13)]);
        assert_eq!(c, vec![stop(11)]);
        assert!(taken.is_empty());
    }
}
