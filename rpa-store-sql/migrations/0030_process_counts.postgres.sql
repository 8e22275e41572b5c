-- PostgreSQL: the counters move out of the process rows, as node 0's.
INSERT INTO rpa_process_counts (process, node, running, pending_items, day, day_successes)
SELECT id, 0,
       CAST(CAST(data AS jsonb) ->> 'running' AS BIGINT),
       CAST(CAST(data AS jsonb) ->> 'pending_items' AS BIGINT),
       CAST(CAST(data AS jsonb) ->> 'day' AS BIGINT),
       CAST(CAST(data AS jsonb) ->> 'day_successes' AS BIGINT)
FROM rpa_processes;

-- A process's counters: the sum of its nodes' rows (successes of the
-- latest day any node counted; a count below zero reads as zero).
CREATE FUNCTION rpa_process_totals(
    p BIGINT,
    OUT running BIGINT, OUT pending_items BIGINT, OUT day BIGINT, OUT day_successes BIGINT
) LANGUAGE sql STABLE AS $$
    SELECT CAST(GREATEST(COALESCE(SUM(c.running), 0), 0) AS BIGINT),
           CAST(GREATEST(COALESCE(SUM(c.pending_items), 0), 0) AS BIGINT),
           COALESCE(MAX(c.day), 0),
           CAST(COALESCE(SUM(c.day_successes) FILTER (WHERE c.day = last.day), 0) AS BIGINT)
    FROM rpa_process_counts c,
         (SELECT MAX(day) AS day FROM rpa_process_counts WHERE process = p) last
    WHERE c.process = p
$$;

-- The processes as read: each with its counters.
CREATE VIEW rpa_processes_v AS
SELECT p.id, p.key, p.version,
       CAST(CAST(p.data AS jsonb) || jsonb_build_object(
           'running', t.running, 'pending_items', t.pending_items,
           'day', t.day, 'day_successes', t.day_successes) AS TEXT) AS data
FROM rpa_processes p CROSS JOIN LATERAL rpa_process_totals(p.id) t;
