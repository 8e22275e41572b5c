-- rpa schema, version 31: audit events written once. A group of commits'
-- events stays where its commit wrote it (`rpa_audit_groups`: a JSON array
-- of the events, unplaced, in order); `rpa_audit_pending` keeps only which
-- groups wait for their places and since when; the integrator writes a
-- group's place in the chain as one row of `rpa_audit_links`: its events'
-- first and last numbers, the hash before the first and each event's hash
-- (64 hex digits each, in order). PostgreSQL reads the chain as `rpa_audit`
-- (the events linked before this version) followed by the links; SQLite
-- links in the commit into `rpa_audit` and leaves these tables (and
-- `rpa_audit_pending`) empty.
CREATE TABLE rpa_audit_groups (id BIGINT PRIMARY KEY, data TEXT NOT NULL);
CREATE TABLE rpa_audit_links (
    last_seq BIGINT PRIMARY KEY,
    first_seq BIGINT NOT NULL,
    group_id BIGINT NOT NULL,
    prev TEXT NOT NULL,
    hashes TEXT NOT NULL
);
