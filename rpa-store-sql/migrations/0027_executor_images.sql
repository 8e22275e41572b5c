-- rpa schema, version 27: executor images by version, and the executors
-- provisioners started (record kinds of rpa_core::image).
CREATE TABLE rpa_executor_images (key TEXT PRIMARY KEY, name TEXT NOT NULL, version BIGINT NOT NULL, data TEXT NOT NULL);
CREATE INDEX rpa_executor_images_name ON rpa_executor_images (name);
CREATE TABLE rpa_executors (robot TEXT PRIMARY KEY, pool TEXT NOT NULL, version BIGINT NOT NULL, data TEXT NOT NULL);
