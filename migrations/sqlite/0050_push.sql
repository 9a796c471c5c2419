-- XEP-0357 push registrations (SQLite). Keep in step with migrations/postgres/0050_push.sql.
--
-- One row per account, app server and node. `options` is the publish-options form the
-- client gave (XML, sent back with every publish), NULL without one. Rows go with their
-- account through ON DELETE CASCADE.
CREATE TABLE push_registrations (
    host         TEXT    NOT NULL,
    username     TEXT    NOT NULL,
    service      TEXT    NOT NULL,
    node         TEXT    NOT NULL,
    options      TEXT,
    include_body INTEGER NOT NULL CHECK (include_body IN (0, 1)),
    created_at   INTEGER NOT NULL,
    PRIMARY KEY (host, username, service, node),
    FOREIGN KEY (host, username) REFERENCES accounts (host, username) ON DELETE CASCADE
) STRICT;
