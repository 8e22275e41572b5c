-- rpa schema, version 29: audit events written in their commit, before
-- they have a place in the chain (PostgreSQL: every commit of every node
-- writes here, and one integrator at a time links them into `rpa_audit`;
-- SQLite links them in the commit and leaves this table empty). One row per
-- group of commits: `data` is a JSON array of the group's events, in order.
CREATE TABLE rpa_audit_pending (id BIGINT PRIMARY KEY, written_at BIGINT NOT NULL, data TEXT NOT NULL);
