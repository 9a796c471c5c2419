-- Initial schema (SQLite). Keep in step with migrations/postgres/0001_init.sql:
-- same tables, columns and keys; only the column types differ.
--
-- STRICT tables so a wrongly bound type fails loudly instead of being stored
-- as-is. Timestamps are unix seconds written by the server (one clock, one
-- Rust type on both backends). Every per-user table must reference accounts
-- with ON DELETE CASCADE: that is how delete_user removes everything a user
-- owns (sqlx enables PRAGMA foreign_keys on every connection).

-- A user exists independently of its credential rows.
CREATE TABLE accounts (
    host       TEXT    NOT NULL,
    username   TEXT    NOT NULL,
    created_at INTEGER NOT NULL,
    disabled   INTEGER NOT NULL DEFAULT 0 CHECK (disabled IN (0, 1)),
    PRIMARY KEY (host, username)
) STRICT;

-- One row per SCRAM hash; never the password itself.
CREATE TABLE credentials (
    host       TEXT    NOT NULL,
    username   TEXT    NOT NULL,
    mechanism  TEXT    NOT NULL, -- "SCRAM-SHA-1" | "SCRAM-SHA-256"
    salt       BLOB    NOT NULL,
    iterations INTEGER NOT NULL CHECK (iterations BETWEEN 1 AND 4294967295),
    stored_key BLOB    NOT NULL,
    server_key BLOB    NOT NULL,
    updated_at INTEGER NOT NULL,
    PRIMARY KEY (host, username, mechanism),
    FOREIGN KEY (host, username) REFERENCES accounts (host, username) ON DELETE CASCADE
) STRICT;

-- Server-wide random keys (e.g. for dialback or stream-management tokens).
CREATE TABLE server_secrets (
    name  TEXT NOT NULL PRIMARY KEY,
    value BLOB NOT NULL
) STRICT;
