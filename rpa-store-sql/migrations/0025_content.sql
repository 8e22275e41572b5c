-- rpa schema, version 25: the operations centre's articles (news, courses,
-- knowledge base; record kind of rpa_core::content). `search_text` holds
-- the words a search finds an article by; its full-text index is made per
-- backend (0025_content.sqlite.sql, 0025_content.postgres.sql).
CREATE TABLE rpa_articles (
    id BIGINT PRIMARY KEY,
    section TEXT,
    search_text TEXT,
    version BIGINT NOT NULL,
    data TEXT NOT NULL
);
CREATE INDEX rpa_articles_section ON rpa_articles (section, id);
