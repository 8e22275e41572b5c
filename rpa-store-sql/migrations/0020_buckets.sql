-- rpa schema, version 20: storage buckets and their files, record kinds of
-- rpa_core::bucket (a bucket's name column is null once it is deleted,
-- freeing the name; files are listed by bucket).
CREATE TABLE rpa_buckets (id BIGINT PRIMARY KEY, name TEXT, version BIGINT NOT NULL, data TEXT NOT NULL);
CREATE UNIQUE INDEX rpa_buckets_name ON rpa_buckets (name);
CREATE TABLE rpa_bucket_files (key TEXT PRIMARY KEY, bucket BIGINT NOT NULL, version BIGINT NOT NULL, data TEXT NOT NULL);
CREATE INDEX rpa_bucket_files_bucket ON rpa_bucket_files (bucket, key);
