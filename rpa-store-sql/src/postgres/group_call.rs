//! A PostgreSQL group of row commits in one round trip and one prepared
//! statement: `rpa_write_rows`, a PL/pgSQL function (re)created at start-up,
//! called with the group's rows as bound arrays.
//!
//! The server neither parses the rows as SQL text nor plans a statement per
//! group: the call is prepared once per connection, the function's
//! statements are planned once per session, and the values travel in
//! binary. The function first locks the rows it writes (the counted
//! processes, then each table's rows, in the order every group writer
//! locks them: nothing cluster-wide) and checks that the writer's knowledge
//! still holds (each row's version, each counted process's version),
//! raising `40001` otherwise; then it writes each row's final state, the
//! counters, the commands, the notifications and the group's audit events
//! (unplaced: the integrator links them into the chain). One statement is
//! one transaction: all or nothing.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::LazyLock;

use sqlx::PgConnection;

use rpa_core::model::{Job, Process, QueueItem, Robot};
use rpa_core::record::{ColumnType, Kind, Mapped};
use rpa_core::store::Counts;

use super::counts::{self, Lock};
use crate::plan::{EntityRow, Val};

/// The kinds a group writes through the function: their tables and
/// indexed columns come from their row mappings, as `plan::row`'s rows do.
pub(crate) const TABLES: [&Kind; 3] = [Job::KIND, QueueItem::KIND, Robot::KIND];

fn sql_type(ty: ColumnType) -> &'static str {
    match ty {
        ColumnType::Int => "BIGINT",
        ColumnType::Text => "TEXT",
    }
}

/// What the writer expects to find once the rows are locked.
pub(crate) struct Expected {
    /// Each row's version (`None`: not there yet).
    pub rows: HashMap<(&'static str, i64), Option<i64>>,
    /// Each counted process.
    pub processes: Vec<Guard>,
}

/// A counted process as the writer knows it: locked as `lock` says (see
/// `counts.rs`), at `version`, and under an exclusive lock with exactly
/// `counts` (running, pending items, day, successes that day) as summed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Guard {
    pub id: i64,
    pub version: i64,
    pub lock: Lock,
    pub counts: [i64; 4],
}

impl Guard {
    pub fn of(p: &Process) -> Guard {
        Guard {
            id: p.id.0,
            version: p.version as i64,
            lock: Lock::of(Some(p)),
            counts: [
                i64::from(p.running),
                i64::from(p.pending_items),
                p.day,
                i64::from(p.day_successes),
            ],
        }
    }
}

/// What a group writes, each value once, in the order written.
pub(crate) struct Writes<'a> {
    /// Each row's final state.
    pub rows: Vec<&'a EntityRow>,
    /// The writing node (whose counts rows take `counts`).
    pub node: u64,
    /// Counts to add, one per process and day.
    pub counts: Vec<Counts>,
    /// Commands: seq, robot, JSON.
    pub outbox: Vec<(i64, i64, &'a str)>,
    /// Payloads for channel `rpa_outbox`: the robots with new commands.
    pub woken: Vec<String>,
    /// Payloads for the node caches' channel.
    pub changes: Vec<String>,
    /// The group's audit events, unplaced, as one JSON array (`None`: none).
    pub audit: Option<String>,
}

fn params() -> Vec<(String, String)> {
    let mut p = Vec::new();
    let array = |p: &mut Vec<(String, String)>, name: String, ty: &str| p.push((name, format!("{ty}[]")));
    for (k, kind) in TABLES.iter().enumerate() {
        array(&mut p, format!("g{k}_id"), "BIGINT");
        array(&mut p, format!("g{k}_ver"), "BIGINT");
        array(&mut p, format!("t{k}_id"), "BIGINT");
        for c in kind.columns {
            array(&mut p, format!("t{k}_{}", c.name), sql_type(c.ty));
        }
        array(&mut p, format!("t{k}_version"), "BIGINT");
        array(&mut p, format!("t{k}_data"), "TEXT");
    }
    for (name, ty) in [
        ("gp_id", "BIGINT"),
        ("gp_ver", "BIGINT"),
        ("gp_shared", "BOOLEAN"),
        ("gp_counts", "BIGINT"),
        ("c_process", "BIGINT"),
        ("c_running", "BIGINT"),
        ("c_pending", "BIGINT"),
        ("c_day", "BIGINT"),
        ("c_successes", "BIGINT"),
        ("o_seq", "BIGINT"),
        ("o_robot", "BIGINT"),
        ("o_data", "TEXT"),
        ("woken", "TEXT"),
        ("changes", "TEXT"),
    ] {
        array(&mut p, name.to_string(), ty);
    }
    p.push(("audit".to_string(), "TEXT".to_string()));
    p.push(("writer_node".to_string(), "BIGINT".to_string()));
    p
}

/// The tables in the order every group writer locks their rows (by name,
/// as `open_rows` reads them), after the counted processes.
fn lock_order() -> Vec<(usize, &'static str)> {
    let mut order: Vec<(usize, &'static str)> = TABLES.iter().enumerate().map(|(k, kind)| (k, kind.table)).collect();
    order.sort_by_key(|(_, table)| *table);
    order
}

/// `CREATE OR REPLACE FUNCTION rpa_write_rows(...)`, run at start-up.
pub(crate) fn function_sql() -> String {
    let params: Vec<String> = params().iter().map(|(n, t)| format!("{n} {t}")).collect();
    // Row by row on the primary keys (the ids come sorted): a set-wise
    // statement would be planned once per session, while the tables were
    // small, and keep scanning them whole.
    let mut body = String::new();
    let lock = |body: &mut String, ids: &str, vers: &str, table: &str| {
        let _ = writeln!(
            body,
            "FOR i IN 1 .. coalesce(cardinality({ids}), 0) LOOP\n  \
             SELECT version INTO rpa_v FROM {table} WHERE id = {ids}[i] FOR UPDATE;\n  \
             IF rpa_v IS DISTINCT FROM {vers}[i] THEN\n    \
             RAISE EXCEPTION USING ERRCODE = '40001', MESSAGE = 'rpa: a group was written from stale knowledge';\n  \
             END IF;\nEND LOOP;"
        );
    };
    // Counted processes: shared or exclusive (see `counts.rs`); under an
    // exclusive lock the counters must also be the ones the writer knows
    // (`gp_counts`: four per process).
    let _ = writeln!(
        body,
        "FOR i IN 1 .. coalesce(cardinality(gp_id), 0) LOOP\n  \
         IF gp_shared[i] THEN\n    SELECT version INTO rpa_v FROM rpa_processes WHERE id = gp_id[i] FOR SHARE;\n  \
         ELSE\n    SELECT version INTO rpa_v FROM rpa_processes WHERE id = gp_id[i] FOR UPDATE;\n  END IF;\n  \
         IF NOT gp_shared[i] THEN\n    SELECT ARRAY[t.running, t.pending_items, t.day, t.day_successes] INTO rpa_c \
         FROM rpa_process_totals(gp_id[i]) t;\n  END IF;\n  \
         IF rpa_v IS DISTINCT FROM gp_ver[i] OR (NOT gp_shared[i] AND rpa_c IS DISTINCT FROM gp_counts[4 * i - 3 : 4 * i]) THEN\n    \
         RAISE EXCEPTION USING ERRCODE = '40001', MESSAGE = 'rpa: a group was written from stale knowledge';\n  \
         END IF;\nEND LOOP;"
    );
    for (k, table) in lock_order() {
        lock(&mut body, &format!("g{k}_id"), &format!("g{k}_ver"), table);
    }
    for (k, kind) in TABLES.iter().enumerate() {
        let table = kind.table;
        let names: Vec<&str> = kind.columns.iter().map(|c| c.name).collect();
        let arrays: Vec<String> = names.iter().map(|c| format!("t{k}_{c}")).collect();
        let sets: Vec<String> = names
            .iter()
            .chain(["version", "data"].iter())
            .map(|c| format!("{c} = excluded.{c}"))
            .collect();
        let _ = writeln!(
            body,
            "IF cardinality(t{k}_id) > 0 THEN\n  INSERT INTO {table} (id, {}, version, data) \
             SELECT * FROM unnest(t{k}_id, {}, t{k}_version, t{k}_data)\n  ON CONFLICT (id) DO UPDATE SET {};\nEND IF;",
            names.join(", "),
            arrays.join(", "),
            sets.join(", ")
        );
    }
    let _ = writeln!(
        body,
        "IF cardinality(c_process) > 0 THEN\n  \
         INSERT INTO rpa_process_counts AS t (process, node, running, pending_items, day, day_successes) \
         SELECT p, writer_node, r, q, d, s FROM unnest(c_process, c_running, c_pending, c_day, c_successes) AS x(p, r, q, d, s)\n  \
         ON CONFLICT (process, node) DO UPDATE SET {};\nEND IF;",
        counts::ADD
    );
    body.push_str(
        "IF cardinality(o_seq) > 0 THEN\n  INSERT INTO rpa_outbox (seq, robot, data) SELECT * FROM unnest(o_seq, o_robot, o_data);\nEND IF;\n\
         PERFORM pg_notify('rpa_outbox', r) FROM unnest(woken) AS r;\n",
    );
    let _ = write!(
        body,
        "PERFORM pg_notify('{}', c) FROM unnest(changes) AS c;\n\
         IF audit IS NOT NULL THEN\n  {};\nEND IF;\n",
        super::cache::CHANNEL,
        super::write_group("audit")
    );
    format!(
        "CREATE OR REPLACE FUNCTION rpa_write_rows({}) RETURNS void LANGUAGE plpgsql AS $rpa$\nDECLARE rpa_v BIGINT; rpa_c BIGINT[];\nBEGIN\n{body}END\n$rpa$",
        params.join(", ")
    )
}

/// `SELECT rpa_write_rows($1, ...)`.
static CALL: LazyLock<String> = LazyLock::new(|| {
    let args: Vec<String> = (1..=params().len()).map(|i| format!("${i}")).collect();
    format!("SELECT rpa_write_rows({})", args.join(", "))
});

/// Writes the group, or fails with nothing written: the server refused it
/// (`40001` when the writer's knowledge no longer holds, a unique clash,
/// a broken connection).
pub(crate) async fn write(conn: &mut PgConnection, expected: &Expected, w: &Writes<'_>) -> Result<(), CallError> {
    let mut q = sqlx::query(CALL.as_str());
    for kind in TABLES {
        let table = kind.table;
        // By id: the order every writer locks rows in.
        let mut expect: Vec<(i64, Option<i64>)> = expected
            .rows
            .iter()
            .filter(|((t, _), _)| *t == table)
            .map(|((_, id), v)| (*id, *v))
            .collect();
        expect.sort_unstable();
        let (ids, vers): (Vec<i64>, Vec<Option<i64>>) = expect.into_iter().unzip();
        q = q.bind(ids).bind(vers);
        let rows: Vec<&EntityRow> = w.rows.iter().filter(|r| r.table == table).copied().collect();
        q = q.bind(rows.iter().map(|r| r.id).collect::<Vec<i64>>());
        for (k, col) in kind.columns.iter().enumerate() {
            let name = col.name;
            let values = rows.iter().map(|r| match r.cols.get(k) {
                Some((c, v)) if *c == name => Ok(v),
                _ => Err(CallError::Mismatch(format!("{table}.{name}"))),
            });
            q = match col.ty {
                ColumnType::Int => q.bind(
                    values
                        .map(|v| match v? {
                            Val::I(i) => Ok(Some(*i)),
                            Val::NI(i) => Ok(*i),
                            _ => Err(CallError::Mismatch(format!("{table}.{name}: not a number"))),
                        })
                        .collect::<Result<Vec<Option<i64>>, _>>()?,
                ),
                ColumnType::Text => q.bind(
                    values
                        .map(|v| match v? {
                            Val::S(s) => Ok(Some(s.as_str())),
                            Val::NS(s) => Ok(s.as_deref()),
                            _ => Err(CallError::Mismatch(format!("{table}.{name}: not text"))),
                        })
                        .collect::<Result<Vec<Option<&str>>, _>>()?,
                ),
            };
        }
        q = q
            .bind(rows.iter().map(|r| r.version as i64).collect::<Vec<i64>>())
            .bind(rows.iter().map(|r| r.json.as_str()).collect::<Vec<&str>>());
    }
    // By id: the order every writer locks processes in.
    let mut guards = expected.processes.clone();
    guards.sort_unstable();
    q = q
        .bind(guards.iter().map(|g| g.id).collect::<Vec<i64>>())
        .bind(guards.iter().map(|g| g.version).collect::<Vec<i64>>())
        .bind(guards.iter().map(|g| g.lock == Lock::Shared).collect::<Vec<bool>>())
        .bind(guards.iter().flat_map(|g| g.counts).collect::<Vec<i64>>());
    q = q
        .bind(w.counts.iter().map(|c| c.process.0).collect::<Vec<i64>>())
        .bind(w.counts.iter().map(|c| c.running).collect::<Vec<i64>>())
        .bind(w.counts.iter().map(|c| c.pending_items).collect::<Vec<i64>>())
        .bind(w.counts.iter().map(|c| c.day).collect::<Vec<i64>>())
        .bind(w.counts.iter().map(|c| i64::from(c.successes)).collect::<Vec<i64>>())
        .bind(w.outbox.iter().map(|o| o.0).collect::<Vec<i64>>())
        .bind(w.outbox.iter().map(|o| o.1).collect::<Vec<i64>>())
        .bind(w.outbox.iter().map(|o| o.2).collect::<Vec<&str>>())
        .bind(w.woken.iter().map(String::as_str).collect::<Vec<&str>>())
        .bind(w.changes.iter().map(String::as_str).collect::<Vec<&str>>())
        .bind(w.audit.as_deref())
        .bind(counts::slot(w.node));
    q.execute(conn).await.map(|_| ()).map_err(CallError::Server)
}

/// Why a call wrote nothing.
#[derive(Debug)]
pub(crate) enum CallError {
    /// A row's columns are not its kind's (a bug).
    Mismatch(String),
    /// The server refused the call, or the connection broke.
    Server(sqlx::Error),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_call_binds_one_value_per_parameter() {
        let n = params().len();
        assert_eq!(CALL.matches('$').count(), n);
        assert!(function_sql().contains("audit TEXT, writer_node BIGINT) RETURNS void"));
        assert!(!function_sql().contains("advisory"), "no cluster-wide lock");
        // PostgreSQL takes at most 100 arguments.
        assert!(n <= 100, "{n} parameters");
    }

    #[test]
    fn the_tables_name_the_columns_plan_row_gives() {
        use rpa_core::conformance::{sample_item, sample_job, sample_robot};
        use rpa_core::ids::ProcessId;
        use rpa_core::model::RobotState;
        use rpa_core::store::Write;
        let writes = [
            Write::Job(sample_job(1, ProcessId(1), 0)),
            Write::Item(sample_item(1, ProcessId(1))),
            Write::Robot(sample_robot(1, RobotState::Available)),
        ];
        for w in &writes {
            let row = crate::plan::row(w).unwrap().unwrap();
            let kind = TABLES.iter().find(|k| k.table == row.table).unwrap();
            let names: Vec<&str> = row.cols.iter().map(|(c, _)| *c).collect();
            let expected: Vec<&str> = kind.columns.iter().map(|c| c.name).collect();
            assert_eq!(names, expected, "{}", row.table);
        }
    }
}
