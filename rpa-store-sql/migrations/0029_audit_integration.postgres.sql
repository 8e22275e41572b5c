-- PostgreSQL: numbered by a sequence (a commit that read another's rows
-- draws after it), timed by the database's clock in milliseconds.
CREATE SEQUENCE rpa_audit_pending_id OWNED BY rpa_audit_pending.id;
ALTER TABLE rpa_audit_pending
    ALTER COLUMN id SET DEFAULT nextval('rpa_audit_pending_id'),
    ALTER COLUMN written_at SET DEFAULT CAST(floor(extract(epoch FROM clock_timestamp()) * 1000) AS BIGINT);
