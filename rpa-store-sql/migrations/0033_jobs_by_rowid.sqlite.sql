-- SQLite: `rpa_jobs` keyed by its rowid (`id INTEGER PRIMARY KEY`), as
-- `rpa_audit` since version 32: a `BIGINT PRIMARY KEY` is an index of its
-- own beside the rowid, written by every new job and searched before the
-- table by every read of a job by id. Same columns, same indexes.
CREATE TABLE rpa_jobs_by_rowid (
    id INTEGER PRIMARY KEY,
    key TEXT NOT NULL UNIQUE,
    process BIGINT NOT NULL,
    state TEXT NOT NULL,
    priority BIGINT NOT NULL,
    dispatchable BIGINT NOT NULL,
    ready_at BIGINT,
    expire_at BIGINT,
    created_at BIGINT NOT NULL,
    version BIGINT NOT NULL,
    data TEXT NOT NULL
);
INSERT INTO rpa_jobs_by_rowid (id, key, process, state, priority, dispatchable, ready_at, expire_at, created_at, version, data)
    SELECT id, key, process, state, priority, dispatchable, ready_at, expire_at, created_at, version, data FROM rpa_jobs ORDER BY id;
DROP TABLE rpa_jobs;
ALTER TABLE rpa_jobs_by_rowid RENAME TO rpa_jobs;
CREATE INDEX rpa_jobs_window ON rpa_jobs (process, created_at);
CREATE INDEX rpa_jobs_ready ON rpa_jobs (ready_at) WHERE ready_at IS NOT NULL;
CREATE INDEX rpa_jobs_expire ON rpa_jobs (expire_at) WHERE expire_at IS NOT NULL;
CREATE INDEX rpa_jobs_state ON rpa_jobs (process, state, created_at, id);
