-- XEP-0431 full-text search of accounts' archives (PostgreSQL tsvector + GIN). Keep in
-- step with migrations/sqlite/0022_archive_fulltext.sql.
--
-- `body` is the message's <body/> text (empty when none, or once retracted). The 'simple'
-- configuration: lower-cased words, no stemming and no stop words, as SQLite's unicode61.
ALTER TABLE archive_messages ADD COLUMN body TEXT NOT NULL DEFAULT '';
ALTER TABLE archive_messages
    ADD COLUMN body_tsv tsvector GENERATED ALWAYS AS (to_tsvector('simple', body)) STORED;
CREATE INDEX archive_messages_fulltext ON archive_messages USING GIN (body_tsv);
