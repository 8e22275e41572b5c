-- rpa schema, version 13: elastic robot pools, record kind of rpa_core::pool.
CREATE TABLE rpa_pools (name TEXT PRIMARY KEY, version BIGINT NOT NULL, data TEXT NOT NULL);
