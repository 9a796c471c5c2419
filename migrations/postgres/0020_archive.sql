-- XEP-0313 message archives of accounts (PostgreSQL). Keep in step with
-- migrations/sqlite/0020_archive.sql.
--
-- One row per archived message per owner: a chat between two local accounts is
-- archived twice, in the sender's archive (outgoing) and in the recipient's
-- (incoming), each under its own id. `id` is the XEP-0359 stanza-id the owner saw:
-- unix microseconds made unique by the server, so id order is time order and the
-- time filters of a query are id ranges. Rows go with their account through
-- ON DELETE CASCADE.
CREATE TABLE archive_messages (
    host          TEXT COLLATE "C" NOT NULL,
    username      TEXT COLLATE "C" NOT NULL,
    id            BIGINT  NOT NULL,
    peer          TEXT COLLATE "C" NOT NULL, -- the other party's bare JID
    peer_resource TEXT COLLATE "C" NOT NULL, -- its resource, '' when none
    outgoing      BOOLEAN NOT NULL,
    origin_id     TEXT    NOT NULL, -- the sender's id for it (origin-id, else 'id'): retractions name it
    stanza        TEXT    NOT NULL, -- the message as XML text, as routed
    PRIMARY KEY (host, username, id),
    FOREIGN KEY (host, username) REFERENCES accounts (host, username) ON DELETE CASCADE
);

-- The `with` filter.
CREATE INDEX archive_messages_peer ON archive_messages (host, username, peer, id);
-- Retention: expiring old messages of every account.
CREATE INDEX archive_messages_age ON archive_messages (id);
