-- rpa schema, version 21: a process's jobs in one state, newest first
-- (UiPath's `Jobs?$filter=State eq '...'`, seed 000 queryProcessJob with
-- a state), read and counted from the index alone.
CREATE INDEX rpa_jobs_state ON rpa_jobs (process, state, created_at, id);
