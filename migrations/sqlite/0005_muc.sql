-- XEP-0045 persistent rooms (SQLite). Keep in step with migrations/postgres/0005_muc.sql.
--
-- Only persistent rooms are stored: their configuration (the muc#roomconfig form as
-- submitted, XML text), subject and affiliations. Occupants and history live in memory.
-- Keyed by the service domain and the room's localpart.

CREATE TABLE muc_rooms (
    service      TEXT    NOT NULL,
    room         TEXT    NOT NULL,
    config       TEXT    NOT NULL,
    subject      TEXT,
    subject_nick TEXT,
    updated_at   INTEGER NOT NULL,
    PRIMARY KEY (service, room)
) STRICT;

-- §5.2: owner, admin, member, outcast (none is the absence of a row).
CREATE TABLE muc_affiliations (
    service     TEXT NOT NULL,
    room        TEXT NOT NULL,
    jid         TEXT NOT NULL,
    affiliation TEXT NOT NULL CHECK (affiliation IN ('owner', 'admin', 'member', 'outcast')),
    reason      TEXT,
    PRIMARY KEY (service, room, jid),
    FOREIGN KEY (service, room) REFERENCES muc_rooms (service, room) ON DELETE CASCADE
) STRICT;
