-- rpa schema, version 18: how far run-log retention has gone, record kind
-- of rpa_core::retention.
CREATE TABLE rpa_log_retention (name TEXT PRIMARY KEY, version BIGINT NOT NULL, data TEXT NOT NULL);
