//! `Storage::open`: pick the backend from the URL, connect, apply migrations.

use std::str::FromStr;
use std::time::Duration;

use sqlx::migrate::Migrator;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};

use super::{Pool, Storage, StorageError};

static SQLITE_MIGRATIONS: Migrator = sqlx::migrate!("migrations/sqlite");
static POSTGRES_MIGRATIONS: Migrator = sqlx::migrate!("migrations/postgres");

/// `switchboard user add` writes to the file a running server holds open: wait for its locks.
const SQLITE_BUSY_TIMEOUT: Duration = Duration::from_secs(5);

impl Storage {
    /// "sqlite://path" (create file and parent dirs if missing; WAL; busy_timeout),
    /// "sqlite::memory:", "postgres://..." / "postgresql://...". Runs migrations.
    pub async fn open(url: &str) -> Result<Storage, StorageError> {
        let pool = if let Some(rest) = url.strip_prefix("sqlite:") {
            Pool::Sqlite(open_sqlite(url, rest).await?)
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            let pool = PgPoolOptions::new()
                .connect_with(PgConnectOptions::from_str(url)?)
                .await?;
            // sqlx serialises concurrent migrators with an advisory lock.
            POSTGRES_MIGRATIONS.run(&pool).await?;
            Pool::Postgres(pool)
        } else {
            return Err(StorageError::UnsupportedUrl(redact(url)));
        };
        Ok(Storage { pool })
    }
}

/// `rest` is the URL after "sqlite:".
async fn open_sqlite(url: &str, rest: &str) -> Result<SqlitePool, StorageError> {
    let options = SqliteConnectOptions::from_str(url)?
        .foreign_keys(true) // delete_user relies on ON DELETE CASCADE
        .busy_timeout(SQLITE_BUSY_TIMEOUT);

    if is_memory(rest) {
        // An in-memory database dies with its last connection, and each one
        // would otherwise be private: keep exactly one connection, forever.
        let pool = SqlitePoolOptions::new()
            .max_connections(1)
            .min_connections(1)
            .idle_timeout(None)
            .max_lifetime(None)
            .connect_with(options)
            .await?;
        SQLITE_MIGRATIONS.run(&pool).await?;
        return Ok(pool);
    }

    // WAL lets the CLI write while the server reads; NORMAL sync is durable
    // enough in WAL mode (a power cut may lose the last commits, not corrupt).
    let options = options
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Normal);
    if let Some(dir) = options.get_filename().parent()
        && !dir.as_os_str().is_empty()
    {
        tokio::fs::create_dir_all(dir).await.map_err(sqlx::Error::Io)?;
    }

    // SQLite has no migration lock: when the server and the CLI create a fresh
    // file at the same moment, the loser fails on "table already exists" (or on
    // switching to WAL). By the retry the winner has committed, so it is a no-op.
    match connect_and_migrate(&options).await {
        Ok(pool) => Ok(pool),
        Err(e) => {
            tracing::debug!(error = %e, "sqlite open failed (another process creating the file?); retrying once");
            tokio::time::sleep(Duration::from_millis(250)).await;
            connect_and_migrate(&options).await
        }
    }
}

async fn connect_and_migrate(options: &SqliteConnectOptions) -> Result<SqlitePool, StorageError> {
    let pool = SqlitePoolOptions::new().connect_with(options.clone()).await?;
    if let Err(e) = SQLITE_MIGRATIONS.run(&pool).await {
        pool.close().await;
        return Err(e.into());
    }
    Ok(pool)
}

/// Mirrors sqlx's own test for an in-memory SQLite URL.
fn is_memory(rest: &str) -> bool {
    let rest = rest.trim_start_matches("//");
    let (db, params) = rest.split_once('?').unwrap_or((rest, ""));
    db == ":memory:" || params.split('&').any(|p| p == "mode=memory")
}

/// Only the scheme: a mistyped "postgress://user:password@..." must not reach the logs.
fn redact(url: &str) -> String {
    match url.split_once(':') {
        Some((scheme, _)) => format!("{scheme}:..."),
        None => url.to_owned(),
    }
}
