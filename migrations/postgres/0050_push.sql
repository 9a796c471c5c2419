-- XEP-0357 push registrations (PostgreSQL). Keep in step with migrations/sqlite/0050_push.sql.
--
-- One row per account, app server and node. `options` is the publish-options form the
-- client gave (XML, sent back with every publish), NULL without one. Rows go with their
-- account through ON DELETE CASCADE.
CREATE TABLE push_registrations (
    host         TEXT COLLATE "C" NOT NULL,
    username     TEXT COLLATE "C" NOT NULL,
    service      TEXT COLLATE "C" NOT NULL,
    node         TEXT COLLATE "C" NOT NULL,
    options      TEXT,
    include_body BOOLEAN NOT NULL,
    created_at   BIGINT NOT NULL,
    PRIMARY KEY (host, username, service, node),
    FOREIGN KEY (host, username) REFERENCES accounts (host, username) ON DELETE CASCADE
);
