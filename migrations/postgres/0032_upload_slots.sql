-- XEP-0363 upload slots handed out and not yet used (PostgreSQL), so a restart does not
-- void them. Keep in step with migrations/sqlite/0032_upload_slots.sql. A row goes when its
-- upload completes or it expires.
CREATE TABLE upload_slots (
    id           TEXT COLLATE "C" NOT NULL PRIMARY KEY,
    owner        TEXT   NOT NULL,
    filename     TEXT   NOT NULL,
    size         BIGINT NOT NULL,
    content_type TEXT,
    expires      BIGINT NOT NULL,
    file_expires BIGINT NOT NULL
);
