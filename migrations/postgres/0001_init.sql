-- Initial schema (PostgreSQL). Keep in step with migrations/sqlite/0001_init.sql:
-- same tables, columns and keys; only the column types differ.
--
-- Text keys use COLLATE "C" so ORDER BY is bytewise, as in SQLite, whatever
-- the cluster's locale. Timestamps are unix seconds written by the server
-- (one clock, one Rust type on both backends). Every per-user table must
-- reference accounts with ON DELETE CASCADE: that is how delete_user removes
-- everything a user owns.

-- A user exists independently of its credential rows.
CREATE TABLE accounts (
    host       TEXT COLLATE "C" NOT NULL,
    username   TEXT COLLATE "C" NOT NULL,
    created_at BIGINT  NOT NULL,
    disabled   BOOLEAN NOT NULL DEFAULT FALSE,
    PRIMARY KEY (host, username)
);

-- One row per SCRAM hash; never the password itself.
CREATE TABLE credentials (
    host       TEXT COLLATE "C" NOT NULL,
    username   TEXT COLLATE "C" NOT NULL,
    mechanism  TEXT COLLATE "C" NOT NULL, -- "SCRAM-SHA-1" | "SCRAM-SHA-256"
    salt       BYTEA  NOT NULL,
    iterations BIGINT NOT NULL CHECK (iterations BETWEEN 1 AND 4294967295), -- u32
    stored_key BYTEA  NOT NULL,
    server_key BYTEA  NOT NULL,
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (host, username, mechanism),
    FOREIGN KEY (host, username) REFERENCES accounts (host, username) ON DELETE CASCADE
);

-- Server-wide random keys (e.g. for dialback or stream-management tokens).
CREATE TABLE server_secrets (
    name  TEXT COLLATE "C" NOT NULL PRIMARY KEY,
    value BYTEA NOT NULL
);
