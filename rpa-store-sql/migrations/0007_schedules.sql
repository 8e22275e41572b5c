-- rpa schema, version 7: schedules and their firings (seed 001 §6.1.2 c),
-- record kinds (rpa_core::schedule::{Schedule, ScheduleFiring}). One firing
-- per schedule and due time (`slot`): two nodes firing the same due time
-- cannot both commit.
CREATE TABLE rpa_schedules (
    id BIGINT PRIMARY KEY,
    name TEXT NOT NULL,
    enabled BIGINT NOT NULL,
    version BIGINT NOT NULL,
    data TEXT NOT NULL
);
CREATE UNIQUE INDEX rpa_schedules_name ON rpa_schedules (name);
CREATE INDEX rpa_schedules_enabled ON rpa_schedules (enabled, id);

CREATE TABLE rpa_schedule_firings (
    id BIGINT PRIMARY KEY,
    schedule BIGINT NOT NULL,
    slot TEXT NOT NULL,
    version BIGINT NOT NULL,
    data TEXT NOT NULL
);
CREATE UNIQUE INDEX rpa_schedule_firings_slot ON rpa_schedule_firings (slot);
CREATE INDEX rpa_schedule_firings_schedule ON rpa_schedule_firings (schedule, id);
