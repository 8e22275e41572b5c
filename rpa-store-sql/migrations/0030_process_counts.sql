-- rpa schema, version 30: a process's counters by node. PostgreSQL keeps
-- them here, one row per process and node slot (a node's number modulo
-- 256), each node adding its commits' counts to its slot's row (a row's
-- running count may fall below zero: a job
-- dispatched on one node can end on another); a process's counters are the
-- sum of its rows (`rpa_processes_v`), and the counters in the process's
-- `data` are not read. SQLite keeps them in `data` and leaves this table empty.
CREATE TABLE rpa_process_counts (
    process BIGINT NOT NULL,
    node BIGINT NOT NULL,
    running BIGINT NOT NULL,
    pending_items BIGINT NOT NULL,
    day BIGINT NOT NULL,
    day_successes BIGINT NOT NULL,
    PRIMARY KEY (process, node)
);
