-- rpa schema, version 22: robot licenses, record kind of rpa_core::license.
CREATE TABLE rpa_licenses (name TEXT PRIMARY KEY, version BIGINT NOT NULL, data TEXT NOT NULL);
