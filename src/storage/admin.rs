//! Administration (XEP-0133): disabled accounts and the message of the day.

use super::{Storage, StorageError, now_unix};

impl Storage {
    /// Disables or re-enables an account. Ok(false) if it does not exist.
    pub async fn set_disabled(
        &self,
        host: &str,
        username: &str,
        disabled: bool,
    ) -> Result<bool, StorageError> {
        const SQL: &str = "UPDATE accounts SET disabled = $3 WHERE host = $1 AND username = $2";
        let n = with_pool!(self, pool => {
            sqlx::query(SQL).bind(host).bind(username).bind(disabled).execute(pool).await?.rows_affected()
        });
        Ok(n > 0)
    }

    /// Whether the account is disabled; false for an account that does not exist.
    pub async fn is_disabled(&self, host: &str, username: &str) -> Result<bool, StorageError> {
        const SQL: &str = "SELECT disabled FROM accounts WHERE host = $1 AND username = $2";
        let row: Option<bool> = with_pool!(self, pool => {
            sqlx::query_scalar(SQL).bind(host).bind(username).fetch_optional(pool).await?
        });
        Ok(row.unwrap_or(false))
    }

    /// Usernames of the disabled accounts of a domain, sorted.
    pub async fn list_disabled(&self, host: &str) -> Result<Vec<String>, StorageError> {
        // `disabled = $2` binds a native bool: INTEGER 0/1 on SQLite, BOOLEAN on PostgreSQL.
        const SQL: &str = "SELECT username FROM accounts WHERE host = $1 AND disabled = $2 ORDER BY username";
        let users = with_pool!(self, pool => {
            sqlx::query_scalar(SQL).bind(host).bind(true).fetch_all(pool).await?
        });
        Ok(users)
    }

    /// The message of the day of a domain, if set.
    pub async fn motd(&self, host: &str) -> Result<Option<String>, StorageError> {
        const SQL: &str = "SELECT text FROM motd WHERE host = $1";
        let text = with_pool!(self, pool => {
            sqlx::query_scalar(SQL).bind(host).fetch_optional(pool).await?
        });
        Ok(text)
    }

    /// Sets (Some) or deletes (None) the message of the day of a domain.
    pub async fn set_motd(&self, host: &str, text: Option<&str>) -> Result<(), StorageError> {
        const SET: &str = "INSERT INTO motd (host, text, updated_at) VALUES ($1, $2, $3) \
                           ON CONFLICT (host) DO UPDATE SET text = excluded.text, updated_at = excluded.updated_at";
        const DELETE: &str = "DELETE FROM motd WHERE host = $1";
        with_pool!(self, pool => match text {
            Some(t) => {
                sqlx::query(SET).bind(host).bind(t).bind(now_unix()).execute(pool).await?;
            }
            None => {
                sqlx::query(DELETE).bind(host).execute(pool).await?;
            }
        });
        Ok(())
    }
}
