//! PostgreSQL: robot commands are handed out at most once, oldest first,
//! while two nodes take them at once (their takes share statements), and
//! serial ids stay unique when many callers find a block spent at once.

mod common;

use rpa_core::store::prelude::*;
use std::collections::HashMap;
use std::sync::Arc;

use common::{fresh_postgres, postgres_url};
use rpa_core::ids::{IdKind, RobotId};
use rpa_core::store::Commit;
use rpa_core::transport::Command;
use rpa_store_sql::{SqlOptions, SqlStore};

const ROBOTS: i64 = 4;
const PER_ROBOT: usize = 60;

fn command(robot: i64, n: usize) -> Command {
    Command::Error {
        error_code: robot as i32,
        message: n.to_string(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_commands_are_taken_once_in_order_by_two_nodes_at_once() {
    let Some(url) = postgres_url() else { return };
    let db = fresh_postgres(&url).await;
    let a = Arc::new(SqlStore::connect(&db, common::pg_options()).await.unwrap());
    let b = Arc::new(SqlStore::connect(&db, common::pg_options()).await.unwrap());
    for n in 0..PER_ROBOT {
        let commands = (1..=ROBOTS).map(|r| (RobotId(r), command(r, n))).collect();
        a.commit(Commit {
            commands,
            ..Commit::default()
        })
        .await
        .unwrap();
    }
    // Per robot, three takers on each node, each taking up to 4 at a time
    // until the robot has nothing left.
    let mut tasks = Vec::new();
    for r in 1..=ROBOTS {
        for node in [&a, &b, &a, &b, &a, &b] {
            let node = node.clone();
            tasks.push(tokio::spawn(async move {
                let mut got = Vec::new();
                loop {
                    let taken = node.take_commands(RobotId(r), 4).await.unwrap();
                    if taken.is_empty() {
                        return (r, got);
                    }
                    assert!(taken.len() <= 4, "more than asked for");
                    got.push(taken);
                }
            }));
        }
    }
    let mut seen: HashMap<i64, Vec<usize>> = HashMap::new();
    for t in tasks {
        let (r, takes) = t.await.unwrap();
        for take in takes {
            let numbers: Vec<usize> = take
                .iter()
                .map(|c| match c {
                    Command::Error { error_code, message } => {
                        assert_eq!(i64::from(*error_code), r, "another robot's command");
                        message.parse().unwrap()
                    }
                    other => panic!("unexpected command {other:?}"),
                })
                .collect();
            assert!(
                numbers.windows(2).all(|w| w[0] < w[1]),
                "a take out of order: {numbers:?}"
            );
            seen.entry(r).or_default().extend(numbers);
        }
    }
    for r in 1..=ROBOTS {
        let mut got = seen.remove(&r).unwrap_or_default();
        got.sort_unstable();
        assert_eq!(got, (0..PER_ROBOT).collect::<Vec<_>>(), "robot {r}: each command once");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_callers_that_find_the_id_block_spent_share_one_reservation() {
    let Some(url) = postgres_url() else { return };
    let db = fresh_postgres(&url).await;
    let options = SqlOptions {
        id_block: 10,
        ..common::pg_options()
    };
    let store = Arc::new(SqlStore::connect(&db, options).await.unwrap());
    let tasks: Vec<_> = (0..50)
        .map(|_| {
            let s = store.clone();
            tokio::spawn(async move { s.next_id(IdKind::Job).await.unwrap() })
        })
        .collect();
    let mut ids = Vec::new();
    for t in tasks {
        ids.push(t.await.unwrap());
    }
    ids.sort_unstable();
    // Fifty ids from five blocks of ten: none given twice, none skipped.
    assert_eq!(ids, (1..=50).collect::<Vec<i64>>());
}
