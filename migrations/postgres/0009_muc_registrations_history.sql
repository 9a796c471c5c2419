-- XEP-0045 registered nicknames and discussion history of persistent rooms (PostgreSQL).
-- Keep in step with migrations/sqlite/0009_muc_registrations_history.sql.
--
-- Both belong to a stored room and go with it (destroyed, or no longer persistent).

-- §7.10: a user registered with a room reserves one nickname there; a nickname is reserved
-- for one user at most.
CREATE TABLE muc_registrations (
    service TEXT COLLATE "C" NOT NULL,
    room    TEXT COLLATE "C" NOT NULL,
    jid     TEXT COLLATE "C" NOT NULL,
    nick    TEXT COLLATE "C" NOT NULL,
    PRIMARY KEY (service, room, jid),
    UNIQUE (service, room, nick),
    FOREIGN KEY (service, room) REFERENCES muc_rooms (service, room) ON DELETE CASCADE
);

-- §7.2.13: the last messages (at most the room's history length), replayed on join. `stanza`
-- is the broadcast message as XML text, its delay stamp included; `seq` orders them.
CREATE TABLE muc_history (
    service TEXT COLLATE "C" NOT NULL,
    room    TEXT COLLATE "C" NOT NULL,
    seq     BIGINT NOT NULL,
    at_ms   BIGINT NOT NULL,
    stanza  TEXT   NOT NULL,
    PRIMARY KEY (service, room, seq),
    FOREIGN KEY (service, room) REFERENCES muc_rooms (service, room) ON DELETE CASCADE
);
