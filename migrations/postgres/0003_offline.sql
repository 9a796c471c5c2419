-- XEP-0160 offline messages and XEP-0013 flexible retrieval (PostgreSQL). Keep in
-- step with migrations/sqlite/0003_offline.sql.
--
-- A message is kept as the XML text the router had (the stamped 'from' included);
-- the XEP-0203 <delay/> is added when it is delivered, from stamp_ms. Rows go with
-- their account through ON DELETE CASCADE.

-- The last sequence number handed out per account. Kept apart from the messages so
-- numbers are never reused after deletions: XEP-0013 nodes are derived from them,
-- and a client acting on an old header list must not hit a newer message.
CREATE TABLE offline_counters (
    host     TEXT COLLATE "C" NOT NULL,
    username TEXT COLLATE "C" NOT NULL,
    last_seq BIGINT NOT NULL,
    PRIMARY KEY (host, username),
    FOREIGN KEY (host, username) REFERENCES accounts (host, username) ON DELETE CASCADE
);

-- One row per stored message; delivery order is seq order.
CREATE TABLE offline_messages (
    host     TEXT COLLATE "C" NOT NULL,
    username TEXT COLLATE "C" NOT NULL,
    seq      BIGINT NOT NULL,
    stamp_ms BIGINT NOT NULL, -- unix milliseconds when it was stored
    sender   TEXT   NOT NULL, -- the full JID in 'from' (XEP-0013 header 'name')
    stanza   TEXT   NOT NULL,
    PRIMARY KEY (host, username, seq),
    FOREIGN KEY (host, username) REFERENCES accounts (host, username) ON DELETE CASCADE
);
