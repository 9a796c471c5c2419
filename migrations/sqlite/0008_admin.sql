-- Administration (XEP-0133). Keep in step with migrations/postgres/0008_admin.sql.

-- The message of the day per hosted domain, shown to users as they log in.
CREATE TABLE motd (
    host       TEXT    NOT NULL PRIMARY KEY,
    text       TEXT    NOT NULL,
    updated_at INTEGER NOT NULL
) STRICT;
