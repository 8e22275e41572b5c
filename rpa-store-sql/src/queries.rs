//! The statements on the paths every job and robot takes (heartbeat,
//! finish, timers, lookups that miss memory), in one place so that
//! `tests/plans.rs` can show each one's query plan and check that none
//! scans a table. Dispatch itself reads no table: it reads the live jobs
//! and robots kept in memory.

/// A job by id (finish, heartbeat, status).
pub const JOB: &str = "SELECT data FROM rpa_jobs WHERE id = $1";
/// A job by key (seed 000 `jobId`, seed 001 `runInstanceId`).
pub const JOB_BY_KEY: &str = "SELECT data FROM rpa_jobs WHERE key = $1";
/// A robot by id.
pub const ROBOT: &str = "SELECT data FROM rpa_robots WHERE id = $1";
/// A robot by the executor's own id (every seed 001 call).
pub const ROBOT_BY_CODE: &str = "SELECT data FROM rpa_robots WHERE code = $1";
/// A process by id.
pub const PROCESS: &str = "SELECT data FROM rpa_processes_v WHERE id = $1";
/// A process by key (seed 000 `processId`).
pub const PROCESS_BY_KEY: &str = "SELECT data FROM rpa_processes_v WHERE key = $1";
/// A session (every seed 000 call).
pub const TOKEN: &str = "SELECT data FROM rpa_tokens WHERE hash = $1";
/// A user by id (every seed 000 call).
pub const USER: &str = "SELECT data FROM rpa_users WHERE id = $1";
/// Timers: deadlines that have come (indexes `rpa_robots_silent`,
/// `rpa_jobs_expire`, `rpa_jobs_ready`, `rpa_tokens_expiry`); a session's is
/// named by its hash.
pub const DUE: &str = "SELECT t, kind, id, hash FROM (
         SELECT silent_at AS t, 0 AS kind, id, CAST(NULL AS TEXT) AS hash FROM rpa_robots WHERE silent_at IS NOT NULL AND silent_at <= $1
         UNION ALL SELECT expire_at AS t, 1 AS kind, id, NULL FROM rpa_jobs WHERE expire_at IS NOT NULL AND expire_at <= $2
         UNION ALL SELECT ready_at AS t, 2 AS kind, id, NULL FROM rpa_jobs WHERE ready_at IS NOT NULL AND ready_at <= $3
         UNION ALL SELECT expires_at AS t, 3 AS kind, 0, hash FROM rpa_tokens WHERE expires_at <= $4
     ) d ORDER BY t, kind, id, hash LIMIT $5";
/// Timers: the earliest deadline (each MIN is one index probe).
pub const NEXT_DUE: &str = "SELECT MIN(t) FROM (
         SELECT MIN(silent_at) AS t FROM rpa_robots
         UNION ALL SELECT MIN(expire_at) AS t FROM rpa_jobs
         UNION ALL SELECT MIN(ready_at) AS t FROM rpa_jobs
         UNION ALL SELECT MIN(expires_at) AS t FROM rpa_tokens
     ) d";
/// Heartbeat, PostgreSQL: take the oldest commands of many robots at once:
/// `$1` the robots and `$2` how many commands each may take, as
/// comma-separated numbers in the same order.
pub const OUTBOX_TAKE_PG: &str = "DELETE FROM rpa_outbox WHERE seq IN (SELECT x.seq FROM \
     unnest(CAST(string_to_array($1, ',') AS BIGINT[]), CAST(string_to_array($2, ',') AS BIGINT[])) AS w(robot, n) \
     CROSS JOIN LATERAL (SELECT b.seq FROM rpa_outbox b WHERE b.robot = w.robot ORDER BY b.seq LIMIT w.n \
     FOR UPDATE SKIP LOCKED) AS x) RETURNING robot, seq, data";
/// Heartbeat, SQLite: drop a robot's oldest rows, the commands its memory mirror handed out.
pub const OUTBOX_DROP_SQLITE: &str =
    "DELETE FROM rpa_outbox WHERE seq IN (SELECT seq FROM rpa_outbox WHERE robot = $1 ORDER BY seq LIMIT $2)";
/// Reserve a block of `$2` serial ids of kind `$1`; answers the end of the block.
pub const SEQ_RESERVE: &str = "INSERT INTO rpa_seq (kind, next) VALUES ($1, 1 + $2)
     ON CONFLICT (kind) DO UPDATE SET next = rpa_seq.next + excluded.next - 1 RETURNING next";
/// Take a free lease, renew our own, or take over an expired one: one statement.
pub const LEASE: &str = "INSERT INTO rpa_leases (name, holder, expires_at) VALUES ($1, $2, $3)
     ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, expires_at = excluded.expires_at
     WHERE rpa_leases.holder = excluded.holder OR rpa_leases.expires_at < $4
     RETURNING holder";
/// Whether a node lives: the holder of a lease that has not expired.
pub const LEASE_HOLDER: &str = "SELECT holder FROM rpa_leases WHERE name = $1 AND expires_at >= $2";
/// The holders of the live leases of a family (`$1` is the prefix with `%`).
pub const LEASE_HOLDERS: &str = "SELECT holder FROM rpa_leases WHERE name LIKE $1 ESCAPE '\\' AND expires_at >= $2";
/// Finish: a queue item by its reference.
pub const ITEM_BY_REFERENCE: &str = "SELECT data FROM rpa_items WHERE process = $1 AND reference = $2";
/// A versioned update, as every commit writes a job (the other tables alike).
pub const JOB_UPDATE: &str = "UPDATE rpa_jobs SET state = $1, priority = $2, dispatchable = $3, ready_at = $4, expire_at = $5, version = $6, data = $7 WHERE id = $8 AND version = $9";
/// A robot's runs logs (jobStatus steps).
pub const LOGS: &str = "SELECT data FROM rpa_logs WHERE job = $1 ORDER BY id";
/// Seed 000 queryProcessJob: a process's jobs in a window (index `rpa_jobs_window`).
pub const JOB_WINDOW: &str = "SELECT data FROM rpa_jobs WHERE process = $1 AND created_at >= $2 AND created_at <= $3 ORDER BY created_at DESC, id DESC LIMIT $4";
/// How many jobs [`JOB_WINDOW`] would list without its limit.
pub const JOB_WINDOW_COUNT: &str =
    "SELECT COUNT(*) FROM rpa_jobs WHERE process = $1 AND created_at >= $2 AND created_at <= $3";
/// A process's jobs in one state in a window, newest first (index `rpa_jobs_state`).
pub const JOB_STATE_WINDOW: &str = "SELECT data FROM rpa_jobs WHERE process = $1 AND created_at >= $2 AND created_at <= $3 AND state = $4 ORDER BY created_at DESC, id DESC LIMIT $5";
/// How many jobs [`JOB_STATE_WINDOW`] would list without its limit.
pub const JOB_STATE_WINDOW_COUNT: &str =
    "SELECT COUNT(*) FROM rpa_jobs WHERE process = $1 AND created_at >= $2 AND created_at <= $3 AND state = $4";

/// Every statement above with its name, for the plan test; `postgres` picks the outbox dialect.
pub fn hot_path(postgres: bool) -> Vec<(&'static str, &'static str)> {
    vec![
        ("job", JOB),
        ("job by key", JOB_BY_KEY),
        ("robot", ROBOT),
        ("robot by code", ROBOT_BY_CODE),
        ("process", PROCESS),
        ("process by key", PROCESS_BY_KEY),
        ("token", TOKEN),
        ("user", USER),
        ("due", DUE),
        ("next due", NEXT_DUE),
        (
            "outbox take",
            if postgres { OUTBOX_TAKE_PG } else { OUTBOX_DROP_SQLITE },
        ),
        ("item by reference", ITEM_BY_REFERENCE),
        ("job update", JOB_UPDATE),
        ("logs", LOGS),
        ("job window", JOB_WINDOW),
        ("job window count", JOB_WINDOW_COUNT),
        ("jobs by state", JOB_STATE_WINDOW),
        ("jobs by state count", JOB_STATE_WINDOW_COUNT),
    ]
}
