-- rpa schema, version 5: where each consumer of the domain events is. The
-- events themselves travel in the audit chain (`rpa_audit`), numbered by
-- its sequence.
CREATE TABLE rpa_cursors (name TEXT PRIMARY KEY, version BIGINT NOT NULL, data TEXT NOT NULL);
