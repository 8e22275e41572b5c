-- SQLite: `rpa_audit` keyed by its rowid (`seq INTEGER PRIMARY KEY`). A
-- `BIGINT PRIMARY KEY` is an index of its own beside the table's rowid:
-- one more page that every commit group wrote, and two lookups per read.
CREATE TABLE rpa_audit_by_rowid (seq INTEGER PRIMARY KEY, data TEXT NOT NULL);
INSERT INTO rpa_audit_by_rowid (seq, data) SELECT seq, data FROM rpa_audit ORDER BY seq;
DROP TABLE rpa_audit;
ALTER TABLE rpa_audit_by_rowid RENAME TO rpa_audit;
