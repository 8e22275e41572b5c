-- Dispatch reads the live jobs and robots every node keeps in memory (the
-- SQLite mirror, the PostgreSQL node cache), never these indexes: dropped,
-- so that starting, dispatching and finishing a job maintain two fewer.
DROP INDEX IF EXISTS rpa_jobs_dispatch;
DROP INDEX IF EXISTS rpa_robots_idle;
