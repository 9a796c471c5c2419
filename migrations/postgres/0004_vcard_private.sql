-- XEP-0054 vCards and XEP-0049 private XML storage (PostgreSQL). Keep in step
-- with migrations/sqlite/0004_vcard_private.sql.
--
-- Both hold XML exactly as the owner sent it (serialized once, never rebuilt
-- from parsed fields), so clients get back every element and attribute they
-- stored. Rows go with their account through ON DELETE CASCADE.

-- One vCard per account: the whole <vCard xmlns='vcard-temp'/> element.
CREATE TABLE vcards (
    host       TEXT COLLATE "C" NOT NULL,
    username   TEXT COLLATE "C" NOT NULL,
    vcard      TEXT   NOT NULL,
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (host, username),
    FOREIGN KEY (host, username) REFERENCES accounts (host, username) ON DELETE CASCADE
);

-- Private XML, one row per account and namespace: the element(s) of that
-- namespace from the last set, concatenated.
CREATE TABLE private_storage (
    host       TEXT COLLATE "C" NOT NULL,
    username   TEXT COLLATE "C" NOT NULL,
    namespace  TEXT COLLATE "C" NOT NULL,
    data       TEXT   NOT NULL,
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (host, username, namespace),
    FOREIGN KEY (host, username) REFERENCES accounts (host, username) ON DELETE CASCADE
);
