-- rpa schema, version 24: the run analysis's figures per process and day
-- (record kind of rpa_core::analysis), keyed day first so that a range of
-- days is a range of the primary key.
CREATE TABLE rpa_run_figures (key TEXT PRIMARY KEY, version BIGINT NOT NULL, data TEXT NOT NULL);
