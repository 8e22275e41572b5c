-- rpa schema, version 6: listener requests (seed 003), a record kind
-- (rpa_core::listener::ListenerRequest): key, indexed columns, version, data.
CREATE TABLE rpa_listener_requests (
    id BIGINT PRIMARY KEY,
    source TEXT NOT NULL,
    queue TEXT NOT NULL,
    job_key TEXT,
    version BIGINT NOT NULL,
    data TEXT NOT NULL
);
CREATE UNIQUE INDEX rpa_listener_requests_source ON rpa_listener_requests (source);
CREATE INDEX rpa_listener_requests_queue ON rpa_listener_requests (queue, id);
CREATE INDEX rpa_listener_requests_job_key ON rpa_listener_requests (job_key) WHERE job_key IS NOT NULL;
