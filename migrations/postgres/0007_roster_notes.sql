-- Private per-contact roster notes (xep/xep-roster-notes.md), PostgreSQL.
-- Keep in step with migrations/sqlite/0007_roster_notes.sql.
--
-- Only ciphertext is stored: AES-256-GCM under the configured key `key_id`, with a random
-- 96-bit nonce, and (host, username, contact) as associated data, so a ciphertext copied to
-- another row does not decrypt. A note belongs to a roster item and goes with it.

CREATE TABLE roster_notes (
    host       TEXT COLLATE "C" NOT NULL,
    username   TEXT COLLATE "C" NOT NULL,
    contact    TEXT COLLATE "C" NOT NULL,
    key_id     TEXT COLLATE "C" NOT NULL,
    nonce      BYTEA NOT NULL,
    ciphertext BYTEA NOT NULL,
    PRIMARY KEY (host, username, contact),
    FOREIGN KEY (host, username, contact)
        REFERENCES roster_items (host, username, contact) ON DELETE CASCADE
);

-- Rotation and the startup check look rows up by key.
CREATE INDEX roster_notes_key ON roster_notes (key_id);
