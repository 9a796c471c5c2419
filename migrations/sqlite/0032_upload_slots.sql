-- XEP-0363 upload slots handed out and not yet used (SQLite), so a restart does not void
-- them. Keep in step with migrations/postgres/0032_upload_slots.sql. A row goes when its
-- upload completes or it expires.
CREATE TABLE upload_slots (
    id           TEXT    NOT NULL PRIMARY KEY,
    owner        TEXT    NOT NULL,
    filename     TEXT    NOT NULL,
    size         INTEGER NOT NULL,
    content_type TEXT,
    expires      INTEGER NOT NULL,
    file_expires INTEGER NOT NULL
) STRICT;
