-- XEP-0054 vCards and XEP-0049 private XML storage (SQLite). Keep in step with
-- migrations/postgres/0004_vcard_private.sql.
--
-- Both hold XML exactly as the owner sent it (serialized once, never rebuilt
-- from parsed fields), so clients get back every element and attribute they
-- stored. Rows go with their account through ON DELETE CASCADE.

-- One vCard per account: the whole <vCard xmlns='vcard-temp'/> element.
CREATE TABLE vcards (
    host       TEXT    NOT NULL,
    username   TEXT    NOT NULL,
    vcard      TEXT    NOT NULL,
    updated_at INTEGER NOT NULL,
    PRIMARY KEY (host, username),
    FOREIGN KEY (host, username) REFERENCES accounts (host, username) ON DELETE CASCADE
) STRICT;

-- Private XML, one row per account and namespace: the element(s) of that
-- namespace from the last set, concatenated.
CREATE TABLE private_storage (
    host       TEXT    NOT NULL,
    username   TEXT    NOT NULL,
    namespace  TEXT    NOT NULL,
    data       TEXT    NOT NULL,
    updated_at INTEGER NOT NULL,
    PRIMARY KEY (host, username, namespace),
    FOREIGN KEY (host, username) REFERENCES accounts (host, username) ON DELETE CASCADE
) STRICT;
