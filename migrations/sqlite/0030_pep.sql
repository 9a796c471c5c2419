-- XEP-0163 personal eventing: each account's publish-subscribe nodes, their items and
-- affiliations (SQLite). Keep in step with migrations/postgres/0030_pep.sql.
--
-- Payloads are stored as the XML the owner published, serialized once. Rows go with
-- their account (and items and affiliations with their node) through ON DELETE CASCADE.

-- One row per node: its configuration as `key=value` lines (pubsub#node_config fields).
CREATE TABLE pep_nodes (
    host       TEXT    NOT NULL,
    username   TEXT    NOT NULL,
    node       TEXT    NOT NULL,
    config     TEXT    NOT NULL,
    created_at INTEGER NOT NULL,
    PRIMARY KEY (host, username, node),
    FOREIGN KEY (host, username) REFERENCES accounts (host, username) ON DELETE CASCADE
) STRICT;

-- Published items; `seq` orders them (a republished id becomes the newest).
CREATE TABLE pep_items (
    host       TEXT    NOT NULL,
    username   TEXT    NOT NULL,
    node       TEXT    NOT NULL,
    item_id    TEXT    NOT NULL,
    publisher  TEXT    NOT NULL,
    payload    TEXT    NOT NULL,
    seq        INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    PRIMARY KEY (host, username, node, item_id),
    FOREIGN KEY (host, username, node) REFERENCES pep_nodes (host, username, node) ON DELETE CASCADE
) STRICT;

-- Affiliations the owner granted (members of a whitelist node, outcasts).
CREATE TABLE pep_affiliations (
    host        TEXT NOT NULL,
    username    TEXT NOT NULL,
    node        TEXT NOT NULL,
    jid         TEXT NOT NULL,
    affiliation TEXT NOT NULL,
    PRIMARY KEY (host, username, node, jid),
    FOREIGN KEY (host, username, node) REFERENCES pep_nodes (host, username, node) ON DELETE CASCADE
) STRICT;
