-- PostgreSQL: the groups waiting keep their events where they are now
-- written, and a group takes its number there.
INSERT INTO rpa_audit_groups (id, data) SELECT id, data FROM rpa_audit_pending;
ALTER TABLE rpa_audit_pending DROP COLUMN data;
ALTER TABLE rpa_audit_pending ALTER COLUMN id DROP DEFAULT;
ALTER TABLE rpa_audit_groups ALTER COLUMN id SET DEFAULT nextval('rpa_audit_pending_id');
