-- rpa schema, version 8: files found by the run they were uploaded for
-- (seed 001 A.2.8 without fileId). Files stored before this version keep
-- a null `job` column and are found by their key only.
ALTER TABLE rpa_files ADD COLUMN job BIGINT;
CREATE INDEX rpa_files_job ON rpa_files (job) WHERE job IS NOT NULL;
