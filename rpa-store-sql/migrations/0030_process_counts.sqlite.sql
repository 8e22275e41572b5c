-- SQLite: the processes as read are the processes as stored.
CREATE VIEW rpa_processes_v AS SELECT id, key, version, data FROM rpa_processes;
