//! SQL storage: SQLite (embedded default) or PostgreSQL (production), via sqlx.
//!
//! # How the two backends share code
//!
//! [`Storage`] holds an enum of the two concrete pools, and [`with_pool!`] expands a
//! block once per backend with `pool` bound to the concrete `SqlitePool` / `PgPool`.
//! Each expansion is type-checked against its own driver, so native types work on
//! both (`bool`, `Vec<u8>`, `i64`), while the SQL text is written once: both
//! drivers accept `$1` placeholders and `INSERT ... ON CONFLICT DO NOTHING`.
//!
//! We did not use `sqlx::Any`: it funnels every value through a lowest common
//! denominator (no `bool` on SQLite, no per-driver connect options such as WAL or
//! busy_timeout without re-parsing URLs), and needs runtime driver installation.
//!
//! Queries are built at runtime (`sqlx::query`, not the checking macros), so no
//! database is needed at compile time. Migrations are embedded with
//! `sqlx::migrate!` and applied by [`Storage::open`].
//!
//! # Adding a feature
//!
//! Add a file with its own `impl Storage` block (see `accounts.rs`, `secrets.rs`)
//! and a new migration with the same number and name under both
//! `migrations/sqlite/` and `migrations/postgres/`. Tables keyed by a user must
//! declare `REFERENCES accounts (host, username) ON DELETE CASCADE` so
//! [`Storage::delete_user`] removes their rows without being edited. Add tests
//! with `backend_tests!` (see `tests/mod.rs`) so they run on both backends.

/// Runs `$body` with `$pool` bound to the open backend's concrete pool.
///
/// The body is duplicated per backend, so it may `return` or use `?` as usual.
macro_rules! with_pool {
    ($storage:expr, $pool:ident => $body:expr) => {
        match &$storage.pool {
            $crate::storage::Pool::Sqlite($pool) => $body,
            $crate::storage::Pool::Postgres($pool) => $body,
        }
    };
}

/// Locks an account's row for the rest of transaction `$tx`, as its first statement, and
/// evaluates to whether the account exists (errors are `?`-returned). A no-op write rather
/// than a SELECT: it holds PostgreSQL's row lock against a concurrent store or delete of the
/// account, and takes SQLite's write lock up front, so SQLite never has to upgrade a read
/// snapshot that went stale and nothing read after it can change under the transaction.
/// A feature with a per-account row of its own passes the statement that writes it (bound to
/// host and username, touching no row when the account does not exist).
macro_rules! lock_account_row {
    ($tx:expr, $host:expr, $username:expr) => {
        lock_account_row!(
            $tx,
            $host,
            $username,
            "UPDATE accounts SET disabled = disabled WHERE host = $1 AND username = $2"
        )
    };
    ($tx:expr, $host:expr, $username:expr, $statement:expr) => {
        sqlx::query($statement)
            .bind($host)
            .bind($username)
            .execute(&mut *$tx)
            .await?
            .rows_affected()
            != 0
    };
}

mod accounts;
mod admin;
pub mod archive;
mod blacklist;
mod connect;
pub mod fast;
pub mod muc;
pub mod notes;
pub mod offline;
#[macro_use]
pub mod pep;
pub mod portable;
pub mod privacy;
mod private;
pub mod pubsub;
pub mod push;
pub mod room_archive;
pub mod roster;
mod secrets;
#[cfg(test)]
mod tests;
pub mod upload;
mod vcard;

/// Handle to the database; cheap to clone (the pools are reference-counted).
#[derive(Clone)]
pub struct Storage {
    pool: Pool,
}

#[derive(Clone)]
enum Pool {
    Sqlite(sqlx::SqlitePool),
    Postgres(sqlx::PgPool),
}

#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error("user already exists")]
    UserExists,
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    #[error("migration: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("unsupported database url: {0}")]
    UnsupportedUrl(String),
}

impl Storage {
    /// "sqlite" or "postgres".
    pub fn backend_name(&self) -> &'static str {
        match self.pool {
            Pool::Sqlite(_) => "sqlite",
            Pool::Postgres(_) => "postgres",
        }
    }

    /// Waits for checked-out connections to return, then closes the pool.
    pub async fn close(&self) {
        with_pool!(self, pool => pool.close().await)
    }
}

/// Current time as unix seconds, for `created_at` / `updated_at` columns.
fn now_unix() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}
