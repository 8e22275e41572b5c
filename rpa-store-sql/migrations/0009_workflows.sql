-- rpa schema, version 9: the workflow engine (seed 004), record kinds of
-- rpa_core::flow: workflows, the directory of people (one row), tickets and
-- their flow logs.
CREATE TABLE rpa_flow_workflows (
    id BIGINT PRIMARY KEY,
    name TEXT NOT NULL,
    version BIGINT NOT NULL,
    data TEXT NOT NULL
);
CREATE UNIQUE INDEX rpa_flow_workflows_name ON rpa_flow_workflows (name);

CREATE TABLE rpa_flow_directory (name TEXT PRIMARY KEY, version BIGINT NOT NULL, data TEXT NOT NULL);

CREATE TABLE rpa_tickets (
    id BIGINT PRIMARY KEY,
    sn TEXT NOT NULL,
    workflow BIGINT NOT NULL,
    creator TEXT NOT NULL,
    parent BIGINT,
    wait TEXT,
    job_key TEXT,
    duty TEXT,
    version BIGINT NOT NULL,
    data TEXT NOT NULL
);
CREATE UNIQUE INDEX rpa_tickets_sn ON rpa_tickets (sn);
CREATE INDEX rpa_tickets_workflow ON rpa_tickets (workflow, id);
CREATE INDEX rpa_tickets_creator ON rpa_tickets (creator, id);
CREATE INDEX rpa_tickets_parent ON rpa_tickets (parent, id) WHERE parent IS NOT NULL;
CREATE INDEX rpa_tickets_wait ON rpa_tickets (wait, id) WHERE wait IS NOT NULL;
CREATE INDEX rpa_tickets_job_key ON rpa_tickets (job_key) WHERE job_key IS NOT NULL;
CREATE INDEX rpa_tickets_duty ON rpa_tickets (duty, id) WHERE duty IS NOT NULL;

CREATE TABLE rpa_flow_logs (
    id BIGINT PRIMARY KEY,
    ticket BIGINT NOT NULL,
    version BIGINT NOT NULL,
    data TEXT NOT NULL
);
CREATE INDEX rpa_flow_logs_ticket ON rpa_flow_logs (ticket, id);
