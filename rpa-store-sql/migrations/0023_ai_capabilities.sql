-- rpa schema, version 23: AI capabilities and their calls per day, record
-- kinds of rpa_core::ai (a capability's data is sealed: it may hold a token).
CREATE TABLE rpa_ai_capabilities (name TEXT PRIMARY KEY, version BIGINT NOT NULL, data TEXT NOT NULL);
CREATE TABLE rpa_ai_usage (key TEXT PRIMARY KEY, capability TEXT NOT NULL, version BIGINT NOT NULL, data TEXT NOT NULL);
CREATE INDEX rpa_ai_usage_capability ON rpa_ai_usage (capability);
