-- rpa schema, version 15: every uploaded package version of a process,
-- record kind of rpa_core::package (never changed once written).
CREATE TABLE rpa_package_versions (key TEXT PRIMARY KEY, process BIGINT, version BIGINT NOT NULL, data TEXT NOT NULL);
CREATE INDEX rpa_package_versions_process ON rpa_package_versions (process);
