-- XEP-0441 archiving preferences (PostgreSQL). Keep in step with
-- migrations/sqlite/0021_archive_prefs.sql. No row: the default, 'always' with empty
-- lists. The lists are JIDs, one per line (a JID cannot hold a line break).
CREATE TABLE archive_prefs (
    host         TEXT COLLATE "C" NOT NULL,
    username     TEXT COLLATE "C" NOT NULL,
    default_mode TEXT NOT NULL CHECK (default_mode IN ('always', 'never', 'roster')),
    always_jids  TEXT NOT NULL,
    never_jids   TEXT NOT NULL,
    PRIMARY KEY (host, username),
    FOREIGN KEY (host, username) REFERENCES accounts (host, username) ON DELETE CASCADE
);
