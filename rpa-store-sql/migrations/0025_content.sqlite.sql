-- SQLite: an FTS5 index over rpa_articles.search_text (external content:
-- the words only), kept by triggers on every write of the table.
CREATE VIRTUAL TABLE IF NOT EXISTS rpa_articles_fts USING fts5(search_text, content='rpa_articles', content_rowid='rowid');
CREATE TRIGGER IF NOT EXISTS rpa_articles_fts_insert AFTER INSERT ON rpa_articles BEGIN
    INSERT INTO rpa_articles_fts (rowid, search_text) VALUES (new.rowid, new.search_text);
END;
CREATE TRIGGER IF NOT EXISTS rpa_articles_fts_delete AFTER DELETE ON rpa_articles BEGIN
    INSERT INTO rpa_articles_fts (rpa_articles_fts, rowid, search_text) VALUES ('delete', old.rowid, old.search_text);
END;
CREATE TRIGGER IF NOT EXISTS rpa_articles_fts_update AFTER UPDATE ON rpa_articles BEGIN
    INSERT INTO rpa_articles_fts (rpa_articles_fts, rowid, search_text) VALUES ('delete', old.rowid, old.search_text);
    INSERT INTO rpa_articles_fts (rowid, search_text) VALUES (new.rowid, new.search_text);
END;
INSERT INTO rpa_articles_fts (rpa_articles_fts) VALUES ('rebuild');
