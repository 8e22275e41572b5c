-- rpa schema, version 1. Written once for SQLite and PostgreSQL.
-- Every entity is stored whole as JSON in `data` (the source of truth);
-- the other columns exist for lookups, uniqueness and the indexes that
-- dispatch, heartbeats and timers use, so none of them scans a table.

CREATE TABLE rpa_seq (kind TEXT PRIMARY KEY, next BIGINT NOT NULL);

CREATE TABLE rpa_users (id BIGINT PRIMARY KEY, name TEXT NOT NULL UNIQUE, version BIGINT NOT NULL, data TEXT NOT NULL);
CREATE TABLE rpa_roles (id BIGINT PRIMARY KEY, name TEXT NOT NULL UNIQUE, version BIGINT NOT NULL, data TEXT NOT NULL);
CREATE TABLE rpa_tokens (hash TEXT PRIMARY KEY, expires_at BIGINT NOT NULL, data TEXT NOT NULL);
CREATE TABLE rpa_processes (id BIGINT PRIMARY KEY, key TEXT NOT NULL UNIQUE, version BIGINT NOT NULL, data TEXT NOT NULL);

CREATE TABLE rpa_jobs (
    id BIGINT PRIMARY KEY,
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
-- dispatch: the best pending job of a process
CREATE INDEX rpa_jobs_dispatch ON rpa_jobs (process, priority DESC, id) WHERE dispatchable = 1;
-- seed 000 queryProcessJob window
CREATE INDEX rpa_jobs_window ON rpa_jobs (process, created_at);
-- timers
CREATE INDEX rpa_jobs_ready ON rpa_jobs (ready_at) WHERE ready_at IS NOT NULL;
CREATE INDEX rpa_jobs_expire ON rpa_jobs (expire_at) WHERE expire_at IS NOT NULL;

CREATE TABLE rpa_items (
    id BIGINT PRIMARY KEY,
    key TEXT NOT NULL UNIQUE,
    process BIGINT NOT NULL,
    reference TEXT,
    version BIGINT NOT NULL,
    data TEXT NOT NULL,
    CONSTRAINT rpa_items_reference UNIQUE (process, reference)
);

CREATE TABLE rpa_robots (
    id BIGINT PRIMARY KEY,
    code TEXT NOT NULL UNIQUE,
    idle BIGINT NOT NULL,
    silent_at BIGINT,
    version BIGINT NOT NULL,
    data TEXT NOT NULL
);
CREATE INDEX rpa_robots_idle ON rpa_robots (id) WHERE idle = 1;
CREATE INDEX rpa_robots_silent ON rpa_robots (silent_at) WHERE silent_at IS NOT NULL;

CREATE TABLE rpa_vendors (code TEXT PRIMARY KEY, version BIGINT NOT NULL, data TEXT NOT NULL);

CREATE TABLE rpa_logs (id BIGINT PRIMARY KEY, job BIGINT NOT NULL, data TEXT NOT NULL);
CREATE INDEX rpa_logs_job ON rpa_logs (job, id);
CREATE TABLE rpa_videos (job BIGINT NOT NULL, at BIGINT NOT NULL, data TEXT NOT NULL);
CREATE INDEX rpa_videos_job ON rpa_videos (job);
CREATE TABLE rpa_files (key TEXT PRIMARY KEY, personal_of TEXT, version BIGINT NOT NULL, data TEXT NOT NULL);
CREATE INDEX rpa_files_personal ON rpa_files (personal_of) WHERE personal_of IS NOT NULL;

CREATE TABLE rpa_outbox (seq BIGINT PRIMARY KEY, robot BIGINT NOT NULL, data TEXT NOT NULL);
CREATE INDEX rpa_outbox_robot ON rpa_outbox (robot, seq);

CREATE TABLE rpa_audit (seq BIGINT PRIMARY KEY, data TEXT NOT NULL);
-- the chain's tail: every commit that appends locks this row, so appends are serial
CREATE TABLE rpa_audit_tail (id BIGINT PRIMARY KEY, seq BIGINT NOT NULL, hash TEXT NOT NULL);
INSERT INTO rpa_audit_tail (id, seq, hash) VALUES (1, 0, '0000000000000000000000000000000000000000000000000000000000000000');
