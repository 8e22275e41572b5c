-- rpa schema, version 16: on a parent server, where each child's reports
-- stand and its figures per process and day (record kinds of
-- rpa_core::federation).
CREATE TABLE rpa_child_cursors (child TEXT PRIMARY KEY, version BIGINT NOT NULL, data TEXT NOT NULL);
CREATE TABLE rpa_child_figures (key TEXT PRIMARY KEY, child TEXT, version BIGINT NOT NULL, data TEXT NOT NULL);
CREATE INDEX rpa_child_figures_child ON rpa_child_figures (child);
