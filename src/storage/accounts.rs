//! Accounts and their SCRAM credentials.

use crate::sasl::{HashAlg, ScramCredentials};

use super::{Storage, StorageError, now_unix};

// Bytewise order on both backends: the PostgreSQL columns are COLLATE "C".
const LIST_ALL: &str = "SELECT host, username FROM accounts ORDER BY host, username";
const LIST_HOST: &str = "SELECT host, username FROM accounts WHERE host = $1 ORDER BY host, username";

/// salt, iterations, stored_key, server_key.
type CredentialRow = (Vec<u8>, i64, Vec<u8>, Vec<u8>);

/// Inserts one credential row per entry inside the transaction `$tx`.
macro_rules! insert_credentials {
    ($tx:expr, $host:expr, $username:expr, $creds:expr) => {
        for c in $creds {
            sqlx::query(
                "INSERT INTO credentials \
                 (host, username, mechanism, salt, iterations, stored_key, server_key, updated_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
            )
            .bind($host)
            .bind($username)
            .bind(c.alg.mechanism_name())
            .bind(&c.salt)
            .bind(i64::from(c.iterations))
            .bind(&c.stored_key)
            .bind(&c.server_key)
            .bind(now_unix())
            .execute(&mut *$tx)
            .await?;
        }
    };
}

impl Storage {
    /// Creates the account and its credential rows in ONE transaction; UserExists if present.
    pub async fn create_user(
        &self,
        host: &str,
        username: &str,
        creds: &[ScramCredentials],
    ) -> Result<(), StorageError> {
        with_pool!(self, pool => {
            let mut tx = pool.begin().await?;
            // DO NOTHING instead of catching a unique violation: a racing
            // creator waits for the winner's commit, then sees 0 rows. Being
            // the first statement, it also takes SQLite's write lock up front.
            let inserted = sqlx::query(
                "INSERT INTO accounts (host, username, created_at) VALUES ($1, $2, $3) \
                 ON CONFLICT (host, username) DO NOTHING",
            )
            .bind(host)
            .bind(username)
            .bind(now_unix())
            .execute(&mut *tx)
            .await?
            .rows_affected();
            if inserted == 0 {
                tx.rollback().await?;
                return Err(StorageError::UserExists);
            }
            insert_credentials!(tx, host, username, creds);
            tx.commit().await?;
        });
        Ok(())
    }

    /// Deletes account + credentials (+ everything else keyed by the user, through
    /// ON DELETE CASCADE). Ok(false) if it did not exist.
    pub async fn delete_user(&self, host: &str, username: &str) -> Result<bool, StorageError> {
        const SQL: &str = "DELETE FROM accounts WHERE host = $1 AND username = $2";
        let deleted = with_pool!(self, pool => {
            sqlx::query(SQL).bind(host).bind(username).execute(pool).await?.rows_affected()
        });
        Ok(deleted > 0)
    }

    /// Replaces all credential rows of an existing user atomically, and revokes its XEP-0484
    /// FAST tokens in the same step (a new password ends every login it did not make).
    /// Ok(false) if no such user.
    pub async fn set_credentials(
        &self,
        host: &str,
        username: &str,
        creds: &[ScramCredentials],
    ) -> Result<bool, StorageError> {
        with_pool!(self, pool => {
            let mut tx = pool.begin().await?;
            // Against a concurrent delete_user.
            if !lock_account_row!(tx, host, username) {
                tx.rollback().await?;
                return Ok(false);
            }
            sqlx::query("DELETE FROM credentials WHERE host = $1 AND username = $2")
                .bind(host)
                .bind(username)
                .execute(&mut *tx)
                .await?;
            insert_credentials!(tx, host, username, creds);
            sqlx::query("DELETE FROM fast_tokens WHERE host = $1 AND username = $2")
                .bind(host)
                .bind(username)
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
        });
        Ok(true)
    }

    pub async fn get_credentials(
        &self,
        host: &str,
        username: &str,
        alg: HashAlg,
    ) -> Result<Option<ScramCredentials>, StorageError> {
        const SQL: &str = "SELECT salt, iterations, stored_key, server_key FROM credentials \
                           WHERE host = $1 AND username = $2 AND mechanism = $3";
        let row: Option<CredentialRow> = with_pool!(self, pool => {
            sqlx::query_as(SQL)
                .bind(host)
                .bind(username)
                .bind(alg.mechanism_name())
                .fetch_optional(pool)
                .await?
        });
        let Some((salt, iterations, stored_key, server_key)) = row else {
            return Ok(None);
        };
        // The column CHECK keeps it in u32 range; fail loudly if edited by hand.
        let iterations = u32::try_from(iterations).map_err(|e| sqlx::Error::ColumnDecode {
            index: "iterations".into(),
            source: Box::new(e),
        })?;
        Ok(Some(ScramCredentials {
            alg,
            salt,
            iterations,
            stored_key,
            server_key,
        }))
    }

    /// The iteration count most stored credentials have (ties: the higher), if any.
    pub async fn most_common_iterations(&self) -> Result<Option<u32>, StorageError> {
        const SQL: &str = "SELECT iterations FROM credentials GROUP BY iterations \
                           ORDER BY COUNT(*) DESC, iterations DESC LIMIT 1";
        let n: Option<i64> = with_pool!(self, pool => {
            sqlx::query_scalar(SQL).fetch_optional(pool).await?
        });
        Ok(n.and_then(|n| u32::try_from(n).ok()))
    }

    pub async fn user_exists(&self, host: &str, username: &str) -> Result<bool, StorageError> {
        const SQL: &str = "SELECT 1 FROM accounts WHERE host = $1 AND username = $2";
        // Selecting a constant avoids decoding EXISTS(), a bool on PostgreSQL but
        // an integer on SQLite.
        let found = with_pool!(self, pool => {
            sqlx::query(SQL).bind(host).bind(username).fetch_optional(pool).await?.is_some()
        });
        Ok(found)
    }

    /// Sorted by host then username; `host` None = all hosts.
    pub async fn list_users(&self, host: Option<&str>) -> Result<Vec<(String, String)>, StorageError> {
        let users = with_pool!(self, pool => match host {
            Some(host) => sqlx::query_as(LIST_HOST).bind(host).fetch_all(pool).await?,
            None => sqlx::query_as(LIST_ALL).fetch_all(pool).await?,
        });
        Ok(users)
    }

    pub async fn count_users(&self, host: &str) -> Result<u64, StorageError> {
        const SQL: &str = "SELECT COUNT(*) FROM accounts WHERE host = $1";
        let count: i64 = with_pool!(self, pool => {
            sqlx::query_scalar(SQL).bind(host).fetch_one(pool).await?
        });
        // COUNT(*) is never negative.
        Ok(count.unsigned_abs())
    }
}
