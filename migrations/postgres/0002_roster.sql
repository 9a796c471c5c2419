-- Rosters, presence subscriptions, roster versions and last activity (PostgreSQL).
-- Keep in step with migrations/sqlite/0002_roster.sql.
--
-- RFC 6121 §2 (roster items and groups), §3 (subscription state, pre-approval, inbound
-- requests waiting for an answer), XEP-0237 (one version counter per user) and XEP-0012
-- (when the user's last session ended). Contacts are normalized bare JIDs.

CREATE TABLE roster_items (
    host         TEXT COLLATE "C" NOT NULL,
    username     TEXT COLLATE "C" NOT NULL,
    contact      TEXT COLLATE "C" NOT NULL,
    name         TEXT,
    subscription TEXT    NOT NULL DEFAULT 'none'
                 CHECK (subscription IN ('none', 'to', 'from', 'both')),
    ask          BOOLEAN NOT NULL DEFAULT FALSE, -- pending out
    approved     BOOLEAN NOT NULL DEFAULT FALSE, -- pre-approved
    PRIMARY KEY (host, username, contact),
    FOREIGN KEY (host, username) REFERENCES accounts (host, username) ON DELETE CASCADE
);

-- Who has a user in their roster (account deletion).
CREATE INDEX roster_items_contact ON roster_items (contact);

CREATE TABLE roster_groups (
    host     TEXT COLLATE "C" NOT NULL,
    username TEXT COLLATE "C" NOT NULL,
    contact  TEXT COLLATE "C" NOT NULL,
    name     TEXT COLLATE "C" NOT NULL,
    PRIMARY KEY (host, username, contact, name),
    FOREIGN KEY (host, username, contact)
        REFERENCES roster_items (host, username, contact) ON DELETE CASCADE
);

-- Inbound subscription requests not answered yet, as received (RFC 6121 §3.1.3: delivered
-- again at each initial presence until the user answers). Independent of roster items: a
-- request does not put the requester in the roster.
CREATE TABLE roster_pending_in (
    host       TEXT COLLATE "C" NOT NULL,
    username   TEXT COLLATE "C" NOT NULL,
    contact    TEXT COLLATE "C" NOT NULL,
    stanza     TEXT   NOT NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (host, username, contact),
    FOREIGN KEY (host, username) REFERENCES accounts (host, username) ON DELETE CASCADE
);

CREATE INDEX roster_pending_in_contact ON roster_pending_in (contact);

-- XEP-0237: bumped with every item change.
CREATE TABLE roster_versions (
    host     TEXT COLLATE "C" NOT NULL,
    username TEXT COLLATE "C" NOT NULL,
    version  BIGINT NOT NULL,
    PRIMARY KEY (host, username),
    FOREIGN KEY (host, username) REFERENCES accounts (host, username) ON DELETE CASCADE
);

-- XEP-0012: end of the user's last session, unix seconds, and its status text.
CREATE TABLE last_activity (
    host      TEXT COLLATE "C" NOT NULL,
    username  TEXT COLLATE "C" NOT NULL,
    logout_at BIGINT NOT NULL,
    status    TEXT   NOT NULL DEFAULT '',
    PRIMARY KEY (host, username),
    FOREIGN KEY (host, username) REFERENCES accounts (host, username) ON DELETE CASCADE
);

-- A deleted account's own rows go by ON DELETE CASCADE. Other users keep it in their
-- rosters (with the name and groups they chose) but lose every subscription with it and
-- any request from it, as if it had sent "unsubscribe" and "unsubscribed".
CREATE FUNCTION roster_account_deleted() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    jid TEXT := OLD.username || '@' || lower(OLD.host);
BEGIN
    UPDATE roster_versions v SET version = v.version + 1
     WHERE EXISTS (
        SELECT 1 FROM roster_items r
         WHERE r.host = v.host AND r.username = v.username AND r.contact = jid
           AND (r.subscription <> 'none' OR r.ask OR r.approved));
    UPDATE roster_items SET subscription = 'none', ask = FALSE, approved = FALSE
     WHERE contact = jid AND (subscription <> 'none' OR ask OR approved);
    DELETE FROM roster_pending_in WHERE contact = jid;
    RETURN OLD;
END
$$;

CREATE TRIGGER roster_account_deleted AFTER DELETE ON accounts
    FOR EACH ROW EXECUTE FUNCTION roster_account_deleted();
