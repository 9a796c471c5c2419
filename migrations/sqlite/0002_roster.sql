-- Rosters, presence subscriptions, roster versions and last activity (SQLite).
-- Keep in step with migrations/postgres/0002_roster.sql.
--
-- RFC 6121 §2 (roster items and groups), §3 (subscription state, pre-approval, inbound
-- requests waiting for an answer), XEP-0237 (one version counter per user) and XEP-0012
-- (when the user's last session ended). Contacts are normalized bare JIDs.

CREATE TABLE roster_items (
    host         TEXT    NOT NULL,
    username     TEXT    NOT NULL,
    contact      TEXT    NOT NULL,
    name         TEXT,
    subscription TEXT    NOT NULL DEFAULT 'none'
                 CHECK (subscription IN ('none', 'to', 'from', 'both')),
    ask          INTEGER NOT NULL DEFAULT 0 CHECK (ask IN (0, 1)),      -- pending out
    approved     INTEGER NOT NULL DEFAULT 0 CHECK (approved IN (0, 1)), -- pre-approved
    PRIMARY KEY (host, username, contact),
    FOREIGN KEY (host, username) REFERENCES accounts (host, username) ON DELETE CASCADE
) STRICT;

-- Who has a user in their roster (account deletion).
CREATE INDEX roster_items_contact ON roster_items (contact);

CREATE TABLE roster_groups (
    host     TEXT NOT NULL,
    username TEXT NOT NULL,
    contact  TEXT NOT NULL,
    name     TEXT NOT NULL,
    PRIMARY KEY (host, username, contact, name),
    FOREIGN KEY (host, username, contact)
        REFERENCES roster_items (host, username, contact) ON DELETE CASCADE
) STRICT;

-- Inbound subscription requests not answered yet, as received (RFC 6121 §3.1.3: delivered
-- again at each initial presence until the user answers). Independent of roster items: a
-- request does not put the requester in the roster.
CREATE TABLE roster_pending_in (
    host       TEXT    NOT NULL,
    username   TEXT    NOT NULL,
    contact    TEXT    NOT NULL,
    stanza     TEXT    NOT NULL,
    created_at INTEGER NOT NULL,
    PRIMARY KEY (host, username, contact),
    FOREIGN KEY (host, username) REFERENCES accounts (host, username) ON DELETE CASCADE
) STRICT;

CREATE INDEX roster_pending_in_contact ON roster_pending_in (contact);

-- XEP-0237: bumped with every item change.
CREATE TABLE roster_versions (
    host     TEXT    NOT NULL,
    username TEXT    NOT NULL,
    version  INTEGER NOT NULL,
    PRIMARY KEY (host, username),
    FOREIGN KEY (host, username) REFERENCES accounts (host, username) ON DELETE CASCADE
) STRICT;

-- XEP-0012: end of the user's last session, unix seconds, and its status text.
CREATE TABLE last_activity (
    host      TEXT    NOT NULL,
    username  TEXT    NOT NULL,
    logout_at INTEGER NOT NULL,
    status    TEXT    NOT NULL DEFAULT '',
    PRIMARY KEY (host, username),
    FOREIGN KEY (host, username) REFERENCES accounts (host, username) ON DELETE CASCADE
) STRICT;

-- A deleted account's own rows go by ON DELETE CASCADE. Other users keep it in their
-- rosters (with the name and groups they chose) but lose every subscription with it and
-- any request from it, as if it had sent "unsubscribe" and "unsubscribed".
CREATE TRIGGER roster_account_deleted AFTER DELETE ON accounts
BEGIN
    UPDATE roster_versions SET version = version + 1
     WHERE EXISTS (
        SELECT 1 FROM roster_items r
         WHERE r.host = roster_versions.host AND r.username = roster_versions.username
           AND r.contact = OLD.username || '@' || lower(OLD.host)
           AND (r.subscription <> 'none' OR r.ask = 1 OR r.approved = 1));
    UPDATE roster_items SET subscription = 'none', ask = 0, approved = 0
     WHERE contact = OLD.username || '@' || lower(OLD.host)
       AND (subscription <> 'none' OR ask = 1 OR approved = 1);
    DELETE FROM roster_pending_in WHERE contact = OLD.username || '@' || lower(OLD.host);
END;
