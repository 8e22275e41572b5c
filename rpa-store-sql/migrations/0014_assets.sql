-- rpa schema, version 14: assets, record kind of rpa_core::asset (the name
-- column is null once an asset is deleted, freeing the name).
CREATE TABLE rpa_assets (id BIGINT PRIMARY KEY, name TEXT, version BIGINT NOT NULL, data TEXT NOT NULL);
CREATE UNIQUE INDEX rpa_assets_name ON rpa_assets (name);
