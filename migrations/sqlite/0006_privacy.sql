-- Privacy model shared by XEP-0016, XEP-0191 and urn:switchboard:ignore:0 (SQLite).
-- Keep in step with migrations/postgres/0006_privacy.sql; see xep/xep-ignore-list.md §5.

-- Per account: the default list's name and a counter that versions every change.
-- A list's version is the counter value of its last change, so versions never repeat
-- for an account (a list deleted and re-created does not reuse an old version).
CREATE TABLE privacy_users (
    host         TEXT    NOT NULL,
    username     TEXT    NOT NULL,
    default_list TEXT,
    counter      INTEGER NOT NULL,
    PRIMARY KEY (host, username),
    FOREIGN KEY (host, username) REFERENCES accounts (host, username) ON DELETE CASCADE
) STRICT;

CREATE TABLE privacy_lists (
    host     TEXT    NOT NULL,
    username TEXT    NOT NULL,
    name     TEXT    NOT NULL,
    version  INTEGER NOT NULL,
    PRIMARY KEY (host, username, name),
    FOREIGN KEY (host, username) REFERENCES accounts (host, username) ON DELETE CASCADE
) STRICT;

-- kind: '' (fall-through), 'jid', 'group', 'subscription'; action: 'allow' / 'deny';
-- selectors: bit set (1 message, 2 iq, 4 presence-in, 8 presence-out), 0 = all.
-- Orders are unique in a list (XEP-0016 §2.1), so an item's order is its key: a single-item
-- change touches one row, whatever the list's size.
CREATE TABLE privacy_items (
    host       TEXT    NOT NULL,
    username   TEXT    NOT NULL,
    list       TEXT    NOT NULL,
    kind       TEXT    NOT NULL,
    value      TEXT    NOT NULL,
    action     TEXT    NOT NULL,
    item_order INTEGER NOT NULL,
    selectors  INTEGER NOT NULL,
    PRIMARY KEY (host, username, list, item_order),
    FOREIGN KEY (host, username, list) REFERENCES privacy_lists (host, username, name) ON DELETE CASCADE
) STRICT;
