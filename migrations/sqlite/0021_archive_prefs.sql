-- XEP-0441 archiving preferences (SQLite). Keep in step with
-- migrations/postgres/0021_archive_prefs.sql. No row: the default, 'always' with empty
-- lists. The lists are JIDs, one per line (a JID cannot hold a line break).
CREATE TABLE archive_prefs (
    host         TEXT NOT NULL,
    username     TEXT NOT NULL,
    default_mode TEXT NOT NULL CHECK (default_mode IN ('always', 'never', 'roster')),
    always_jids  TEXT NOT NULL,
    never_jids   TEXT NOT NULL,
    PRIMARY KEY (host, username),
    FOREIGN KEY (host, username) REFERENCES accounts (host, username) ON DELETE CASCADE
) STRICT;
