-- XEP-0484 FAST tokens, SQLite. Keep in step with migrations/postgres/0045_fast_tokens.sql.
--
-- The token itself is never stored: `key` is its SHA-256, which is also the HMAC key of the
-- HT-* mechanisms (tokens are longer than SHA-256's block, so HMAC hashes them first). A
-- token belongs to one user agent (XEP-0388 user-agent id) and one mechanism; `last_count`
-- is the highest `<fast count=.../>` seen (-1: none yet), against replays.

CREATE TABLE fast_tokens (
    host       TEXT    NOT NULL,
    username   TEXT    NOT NULL,
    key        BLOB    NOT NULL,
    user_agent TEXT    NOT NULL,
    software   TEXT    NOT NULL,
    device     TEXT    NOT NULL,
    mechanism  TEXT    NOT NULL,
    issued_at  INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    last_count INTEGER NOT NULL,
    PRIMARY KEY (host, username, key),
    FOREIGN KEY (host, username) REFERENCES accounts (host, username) ON DELETE CASCADE
) STRICT;

-- A login looks up the tokens of its user agent.
CREATE INDEX fast_tokens_agent ON fast_tokens (host, username, user_agent);
