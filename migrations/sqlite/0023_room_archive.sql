-- XEP-0313 archives of MUC rooms (SQLite). Keep in step with
-- migrations/postgres/0023_room_archive.sql.
--
-- One row per groupchat message a room archived (`muc#roomconfig_enablearchiving`),
-- keyed by the room (its service domain and node) and the XEP-0359 stanza-id the room
-- gave it (`by` the room): unix microseconds made unique by the server, from the same
-- clock as accounts' archives, so id order is time order. `stanza` is the message as the
-- room broadcast it (from the occupant JID, no real JID); `real_jid` is the sender's bare
-- JID, shown only to those the room lets see real JIDs. No foreign key: a room's archive
-- is deleted with the room (destroy) or by an administrator.
CREATE TABLE room_archive_messages (
    host      TEXT    NOT NULL, -- the MUC service domain
    room      TEXT    NOT NULL, -- the room's node
    id        INTEGER NOT NULL,
    nick      TEXT    NOT NULL, -- the sender's nickname then
    real_jid  TEXT    NOT NULL, -- the sender's bare JID
    origin_id TEXT    NOT NULL, -- the sender's id for it (origin-id, else 'id')
    body      TEXT    NOT NULL, -- its <body/> text ('' when none or retracted)
    stanza    TEXT    NOT NULL,
    PRIMARY KEY (host, room, id)
) STRICT;

-- Retention: expiring old messages of every room.
CREATE INDEX room_archive_messages_age ON room_archive_messages (id);

-- XEP-0431 full-text search, as archive_fts for accounts.
CREATE VIRTUAL TABLE room_archive_fts USING fts5(
    body,
    host UNINDEXED,
    room UNINDEXED,
    tokenize = 'unicode61 remove_diacritics 0'
);

CREATE TRIGGER room_archive_fts_insert AFTER INSERT ON room_archive_messages WHEN new.body <> '' BEGIN
    INSERT OR REPLACE INTO room_archive_fts (rowid, body, host, room)
        VALUES (new.id, new.body, new.host, new.room);
END;

CREATE TRIGGER room_archive_fts_delete AFTER DELETE ON room_archive_messages WHEN old.body <> '' BEGIN
    DELETE FROM room_archive_fts WHERE rowid = old.id;
END;

CREATE TRIGGER room_archive_fts_update AFTER UPDATE OF body ON room_archive_messages BEGIN
    DELETE FROM room_archive_fts WHERE rowid = old.id;
    INSERT OR REPLACE INTO room_archive_fts (rowid, body, host, room)
        SELECT new.id, new.body, new.host, new.room WHERE new.body <> '';
END;
