-- rpa schema, version 17: the process catalogue, record kind of
-- rpa_core::catalogue (the name column is null once a listing is
-- unpublished, freeing the name).
CREATE TABLE rpa_catalogue (id BIGINT PRIMARY KEY, name TEXT, version BIGINT NOT NULL, data TEXT NOT NULL);
CREATE UNIQUE INDEX rpa_catalogue_name ON rpa_catalogue (name);
