-- rpa schema, version 2: leases, so that work one node of a cluster must do
-- alone (the timers) has one holder at a time. A lease passes to another
-- holder only once `expires_at` is in the past.
CREATE TABLE rpa_leases (name TEXT PRIMARY KEY, holder BIGINT NOT NULL, expires_at BIGINT NOT NULL);
