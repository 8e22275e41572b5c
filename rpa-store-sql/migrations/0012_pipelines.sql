-- rpa schema, version 12: pipelines and their runs, record kinds of
-- rpa_core::pipeline.
CREATE TABLE rpa_pipelines (id BIGINT PRIMARY KEY, name TEXT NOT NULL, version BIGINT NOT NULL, data TEXT NOT NULL);
CREATE UNIQUE INDEX rpa_pipelines_name ON rpa_pipelines (name);

CREATE TABLE rpa_pipeline_runs (id BIGINT PRIMARY KEY, pipeline BIGINT NOT NULL, version BIGINT NOT NULL, data TEXT NOT NULL);
CREATE INDEX rpa_pipeline_runs_pipeline ON rpa_pipeline_runs (pipeline, id);
