-- rpa schema, version 11: queue triggers, record kinds of rpa_core::trigger.
-- One row of counts per Queue process with a trigger, and one row per item
-- that waited for it (its process column is null once its job started).
CREATE TABLE rpa_trigger_states (process BIGINT PRIMARY KEY, version BIGINT NOT NULL, data TEXT NOT NULL);

CREATE TABLE rpa_trigger_waits (
    rank TEXT PRIMARY KEY,
    process BIGINT,
    version BIGINT NOT NULL,
    data TEXT NOT NULL
);
CREATE INDEX rpa_trigger_waits_process ON rpa_trigger_waits (process, rank) WHERE process IS NOT NULL;
