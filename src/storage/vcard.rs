//! XEP-0054 vCards: one XML text per account, stored and returned byte for byte.

use super::{Storage, StorageError, now_unix};

const SELECT: &str = "SELECT vcard FROM vcards WHERE host = $1 AND username = $2";
// INSERT ... SELECT from accounts: no row (0 affected) when the account does not exist,
// instead of a foreign key error. The WHERE clause also settles SQLite's parsing ambiguity
// between a join's ON and the upsert's ON CONFLICT.
const UPSERT: &str = "INSERT INTO vcards (host, username, vcard, updated_at) \
                      SELECT host, username, $3, $4 FROM accounts WHERE host = $1 AND username = $2 \
                      ON CONFLICT (host, username) DO UPDATE \
                      SET vcard = excluded.vcard, updated_at = excluded.updated_at";

impl Storage {
    /// The account's vCard XML, if it ever set one.
    pub async fn get_vcard(&self, host: &str, username: &str) -> Result<Option<String>, StorageError> {
        let vcard = with_pool!(self, pool => {
            sqlx::query_scalar(SELECT).bind(host).bind(username).fetch_optional(pool).await?
        });
        Ok(vcard)
    }

    /// Replaces the account's vCard. Ok(false) if there is no such account.
    pub async fn set_vcard(&self, host: &str, username: &str, vcard: &str) -> Result<bool, StorageError> {
        let stored = with_pool!(self, pool => {
            sqlx::query(UPSERT)
                .bind(host)
                .bind(username)
                .bind(vcard)
                .bind(now_unix())
                .execute(pool)
                .await?
                .rows_affected()
        });
        Ok(stored > 0)
    }
}
