-- PostgreSQL: the words of rpa_articles.search_text as a generated
-- tsvector (the 'simple' configuration: lower-cased words, no stemming,
-- as the other stores match), with a GIN index.
ALTER TABLE rpa_articles ADD COLUMN search_text_tsv tsvector
    GENERATED ALWAYS AS (to_tsvector('simple', coalesce(search_text, ''))) STORED;
CREATE INDEX rpa_articles_search ON rpa_articles USING GIN (search_text_tsv);
