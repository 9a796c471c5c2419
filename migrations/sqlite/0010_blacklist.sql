-- XEP-0133 §4.11: the service-wide blacklist. Keep in step with
-- migrations/postgres/0010_blacklist.sql.

-- A bare JID (user@domain) or a whole domain the service refuses to communicate with.
CREATE TABLE service_blacklist (
    jid        TEXT    NOT NULL PRIMARY KEY,
    added_at   INTEGER NOT NULL
) STRICT;
