-- PostgreSQL: a link's hash before its group and its events' hashes as
-- bytes (32 per hash) instead of hex text (64 per hash): half the size.
ALTER TABLE rpa_audit_links
    ALTER COLUMN prev TYPE BYTEA USING decode(prev, 'hex'),
    ALTER COLUMN hashes TYPE BYTEA USING decode(hashes, 'hex');
