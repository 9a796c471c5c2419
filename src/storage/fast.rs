//! XEP-0484 FAST tokens (migration 0045): only the key derived from each token (see
//! `sasl::ht`), its user agent, mechanism, expiry and the highest `count` used with it.

use super::{Storage, StorageError, now_unix};

/// One stored token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FastToken {
    /// SHA-256 of the token (the HT HMAC key).
    pub key: Vec<u8>,
    /// The XEP-0388 user-agent id it was issued to.
    pub user_agent: String,
    pub software: String,
    pub device: String,
    pub mechanism: String,
    pub issued_at: i64,
    pub expires_at: i64,
    /// Highest `<fast count=.../>` used with it; -1 when none yet.
    pub last_count: i64,
}

type Row = (Vec<u8>, String, String, String, String, i64, i64, i64);

fn token(
    (key, user_agent, software, device, mechanism, issued_at, expires_at, last_count): Row,
) -> FastToken {
    FastToken {
        key,
        user_agent,
        software,
        device,
        mechanism,
        issued_at,
        expires_at,
        last_count,
    }
}

macro_rules! select_tokens {
    ($rest:literal) => {
        concat!(
            "SELECT key, user_agent, software, device, mechanism, issued_at, expires_at, last_count \
             FROM fast_tokens WHERE host = $1 AND username = $2 ",
            $rest
        )
    };
}

impl Storage {
    /// The tokens of one user agent of an account, expired ones too, newest first.
    pub async fn fast_tokens_of_agent(
        &self,
        host: &str,
        username: &str,
        user_agent: &str,
    ) -> Result<Vec<FastToken>, StorageError> {
        const SQL: &str = select_tokens!("AND user_agent = $3 ORDER BY issued_at DESC");
        let rows: Vec<Row> = with_pool!(self, pool => {
            sqlx::query_as(SQL).bind(host).bind(username).bind(user_agent).fetch_all(pool).await?
        });
        Ok(rows.into_iter().map(token).collect())
    }

    /// Every unexpired token of an account, by user agent then newest first (for the user's
    /// own list). Expired ones are deleted on the way.
    pub async fn fast_tokens(&self, host: &str, username: &str) -> Result<Vec<FastToken>, StorageError> {
        const EXPIRED: &str =
            "DELETE FROM fast_tokens WHERE host = $1 AND username = $2 AND expires_at <= $3";
        const SQL: &str = select_tokens!("ORDER BY user_agent, issued_at DESC");
        let now = now_unix();
        let rows: Vec<Row> = with_pool!(self, pool => {
            sqlx::query(EXPIRED).bind(host).bind(username).bind(now).execute(pool).await?;
            sqlx::query_as(SQL).bind(host).bind(username).fetch_all(pool).await?
        });
        Ok(rows.into_iter().map(token).collect())
    }

    /// Stores a new token and drops the user agent's others, except `keep` (the token the
    /// client just logged in with, valid until the new one is used). Its `issued_at` is made
    /// later than every other token of the agent (a second later at least), so a use can tell
    /// older tokens from newer. `Ok(false)`: no such account.
    pub async fn fast_token_issue(
        &self,
        host: &str,
        username: &str,
        new: &FastToken,
        keep: Option<&[u8]>,
    ) -> Result<bool, StorageError> {
        const INSERT: &str = "INSERT INTO fast_tokens (host, username, key, user_agent, software, device, \
                              mechanism, issued_at, expires_at, last_count) \
                              VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)";
        const PRUNE: &str = "DELETE FROM fast_tokens WHERE host = $1 AND username = $2 AND user_agent = $3 \
                             AND key <> $4 AND key <> $5";
        const LATEST: &str = "SELECT MAX(issued_at) FROM fast_tokens WHERE host = $1 AND username = $2 \
                              AND user_agent = $3";
        let keep = keep.unwrap_or(&new.key).to_vec();
        with_pool!(self, pool => {
            let mut tx = pool.begin().await?;
            if !lock_account_row!(tx, host, username) {
                tx.rollback().await?;
                return Ok(false);
            }
            sqlx::query(PRUNE)
                .bind(host)
                .bind(username)
                .bind(&new.user_agent)
                .bind(&new.key)
                .bind(&keep)
                .execute(&mut *tx)
                .await?;
            let latest: Option<i64> = sqlx::query_scalar(LATEST)
                .bind(host)
                .bind(username)
                .bind(&new.user_agent)
                .fetch_one(&mut *tx)
                .await?;
            let issued_at = latest.map_or(new.issued_at, |l| new.issued_at.max(l + 1));
            sqlx::query(INSERT)
                .bind(host)
                .bind(username)
                .bind(&new.key)
                .bind(&new.user_agent)
                .bind(&new.software)
                .bind(&new.device)
                .bind(&new.mechanism)
                .bind(issued_at)
                .bind(new.expires_at)
                .bind(new.last_count)
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
        });
        Ok(true)
    }

    /// Records a login with the token `key`, atomically: false when the token is gone or
    /// expired, or when `count` is not above every count used before (a replay). A use
    /// retires the user agent's older tokens (rotation: the client has the newer one).
    pub async fn fast_token_use(
        &self,
        host: &str,
        username: &str,
        key: &[u8],
        count: Option<i64>,
    ) -> Result<bool, StorageError> {
        const USE: &str = "UPDATE fast_tokens SET last_count = $4 WHERE host = $1 AND username = $2 \
                           AND key = $3 AND last_count < $4 AND expires_at > $5 \
                           RETURNING user_agent, issued_at";
        const VALID: &str = "SELECT user_agent, issued_at FROM fast_tokens WHERE host = $1 AND username = $2 \
                             AND key = $3 AND expires_at > $4";
        const RETIRE: &str = "DELETE FROM fast_tokens WHERE host = $1 AND username = $2 AND user_agent = $3 \
                              AND key <> $4 AND issued_at < $5";
        let now = now_unix();
        let used: Option<(String, i64)> = with_pool!(self, pool => {
            let mut tx = pool.begin().await?;
            let used: Option<(String, i64)> = match count {
                Some(count) => sqlx::query_as(USE)
                    .bind(host)
                    .bind(username)
                    .bind(key)
                    .bind(count)
                    .bind(now)
                    .fetch_optional(&mut *tx)
                    .await?,
                None => sqlx::query_as(VALID)
                    .bind(host)
                    .bind(username)
                    .bind(key)
                    .bind(now)
                    .fetch_optional(&mut *tx)
                    .await?,
            };
            if let Some((agent, issued_at)) = &used {
                sqlx::query(RETIRE)
                    .bind(host)
                    .bind(username)
                    .bind(agent)
                    .bind(key)
                    .bind(issued_at)
                    .execute(&mut *tx)
                    .await?;
            }
            tx.commit().await?;
            used
        });
        Ok(used.is_some())
    }

    /// Deletes one token; true when it existed.
    pub async fn fast_token_revoke(
        &self,
        host: &str,
        username: &str,
        key: &[u8],
    ) -> Result<bool, StorageError> {
        const SQL: &str = "DELETE FROM fast_tokens WHERE host = $1 AND username = $2 AND key = $3";
        let n = with_pool!(self, pool => {
            sqlx::query(SQL).bind(host).bind(username).bind(key).execute(pool).await?.rows_affected()
        });
        Ok(n > 0)
    }

    /// Deletes every token of one user agent of an account; how many there were.
    pub async fn fast_tokens_revoke_agent(
        &self,
        host: &str,
        username: &str,
        user_agent: &str,
    ) -> Result<u64, StorageError> {
        const SQL: &str = "DELETE FROM fast_tokens WHERE host = $1 AND username = $2 AND user_agent = $3";
        let n = with_pool!(self, pool => {
            sqlx::query(SQL).bind(host).bind(username).bind(user_agent).execute(pool).await?.rows_affected()
        });
        Ok(n)
    }

    /// Deletes every token of an account (the user ends them all); how many there were.
    pub async fn fast_tokens_revoke_all(&self, host: &str, username: &str) -> Result<u64, StorageError> {
        const SQL: &str = "DELETE FROM fast_tokens WHERE host = $1 AND username = $2";
        let n = with_pool!(self, pool => {
            sqlx::query(SQL).bind(host).bind(username).execute(pool).await?.rows_affected()
        });
        Ok(n)
    }
}
