-- XEP-0313 archives of MUC rooms (PostgreSQL). Keep in step with
-- migrations/sqlite/0023_room_archive.sql.
--
-- One row per groupchat message a room archived (`muc#roomconfig_enablearchiving`),
-- keyed by the room (its service domain and node) and the XEP-0359 stanza-id the room
-- gave it (`by` the room): unix microseconds made unique by the server, from the same
-- clock as accounts' archives, so id order is time order. `stanza` is the message as the
-- room broadcast it (from the occupant JID, no real JID); `real_jid` is the sender's bare
-- JID, shown only to those the room lets see real JIDs. No foreign key: a room's archive
-- is deleted with the room (destroy) or by an administrator.
CREATE TABLE room_archive_messages (
    host      TEXT COLLATE "C" NOT NULL, -- the MUC service domain
    room      TEXT COLLATE "C" NOT NULL, -- the room's node
    id        BIGINT NOT NULL,
    nick      TEXT COLLATE "C" NOT NULL, -- the sender's nickname then
    real_jid  TEXT COLLATE "C" NOT NULL, -- the sender's bare JID
    origin_id TEXT NOT NULL, -- the sender's id for it (origin-id, else 'id')
    body      TEXT NOT NULL, -- its <body/> text ('' when none or retracted)
    stanza    TEXT NOT NULL,
    body_tsv  tsvector GENERATED ALWAYS AS (to_tsvector('simple', body)) STORED,
    PRIMARY KEY (host, room, id)
);

-- Retention: expiring old messages of every room.
CREATE INDEX room_archive_messages_age ON room_archive_messages (id);
-- XEP-0431 full-text search, as for accounts.
CREATE INDEX room_archive_messages_fulltext ON room_archive_messages USING GIN (body_tsv);
