-- XEP-0060 publish-subscribe service (pubsub.<domain>): its nodes, items, affiliations and
-- subscriptions (SQLite). Keep in step with migrations/postgres/0031_pubsub.sql.
--
-- `service` is the service's domain. Items, affiliations and subscriptions go with their
-- node through ON DELETE CASCADE.

-- One row per node: its configuration as `key=value` lines (pubsub#node_config fields).
CREATE TABLE pubsub_nodes (
    service    TEXT    NOT NULL,
    node       TEXT    NOT NULL,
    config     TEXT    NOT NULL,
    created_at INTEGER NOT NULL,
    PRIMARY KEY (service, node)
) STRICT;

-- Published items; `seq` orders them (a republished id becomes the newest).
CREATE TABLE pubsub_items (
    service    TEXT    NOT NULL,
    node       TEXT    NOT NULL,
    item_id    TEXT    NOT NULL,
    publisher  TEXT    NOT NULL,
    payload    TEXT    NOT NULL,
    seq        INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    PRIMARY KEY (service, node, item_id),
    FOREIGN KEY (service, node) REFERENCES pubsub_nodes (service, node) ON DELETE CASCADE
) STRICT;

-- Affiliations (owner, publisher, member, outcast) by bare JID.
CREATE TABLE pubsub_affiliations (
    service     TEXT NOT NULL,
    node        TEXT NOT NULL,
    jid         TEXT NOT NULL,
    affiliation TEXT NOT NULL,
    PRIMARY KEY (service, node, jid),
    FOREIGN KEY (service, node) REFERENCES pubsub_nodes (service, node) ON DELETE CASCADE
) STRICT;

-- Subscriptions by JID (bare or full, as subscribed): `subscribed` or `pending`, and the
-- subscription options as `key=value` lines.
CREATE TABLE pubsub_subscriptions (
    service TEXT NOT NULL,
    node    TEXT NOT NULL,
    jid     TEXT NOT NULL,
    subid   TEXT NOT NULL,
    state   TEXT NOT NULL,
    options TEXT NOT NULL,
    PRIMARY KEY (service, node, jid),
    FOREIGN KEY (service, node) REFERENCES pubsub_nodes (service, node) ON DELETE CASCADE
) STRICT;
