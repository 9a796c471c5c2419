-- XEP-0431 full-text search of accounts' archives (SQLite FTS5). Keep in step with
-- migrations/postgres/0022_archive_fulltext.sql.
--
-- `body` is the message's <body/> text (empty when none, or once retracted). The FTS5
-- table keeps its own copy under the archive id as its rowid (ids are unique across
-- archives: the server hands out each once), with the owner for filtering, maintained by
-- triggers.
ALTER TABLE archive_messages ADD COLUMN body TEXT NOT NULL DEFAULT '';

CREATE VIRTUAL TABLE archive_fts USING fts5(
    body,
    host UNINDEXED,
    username UNINDEXED,
    tokenize = 'unicode61 remove_diacritics 0'
);

CREATE TRIGGER archive_fts_insert AFTER INSERT ON archive_messages WHEN new.body <> '' BEGIN
    INSERT OR REPLACE INTO archive_fts (rowid, body, host, username)
        VALUES (new.id, new.body, new.host, new.username);
END;

CREATE TRIGGER archive_fts_delete AFTER DELETE ON archive_messages WHEN old.body <> '' BEGIN
    DELETE FROM archive_fts WHERE rowid = old.id;
END;

CREATE TRIGGER archive_fts_update AFTER UPDATE OF body ON archive_messages BEGIN
    DELETE FROM archive_fts WHERE rowid = old.id;
    INSERT OR REPLACE INTO archive_fts (rowid, body, host, username)
        SELECT new.id, new.body, new.host, new.username WHERE new.body <> '';
END;
