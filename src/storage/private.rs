//! XEP-0049 private XML storage: per account, one XML text per namespace.

use super::{Storage, StorageError, now_unix};

const SELECT: &str = "SELECT data FROM private_storage WHERE host = $1 AND username = $2 AND namespace = $3";
// As for vCards: INSERT ... SELECT from accounts affects no row for a missing account.
const UPSERT: &str = "INSERT INTO private_storage (host, username, namespace, data, updated_at) \
                      SELECT host, username, $3, $4, $5 FROM accounts WHERE host = $1 AND username = $2 \
                      ON CONFLICT (host, username, namespace) DO UPDATE \
                      SET data = excluded.data, updated_at = excluded.updated_at";

impl Storage {
    /// What the account stored under `namespace`, if anything.
    pub async fn get_private(
        &self,
        host: &str,
        username: &str,
        namespace: &str,
    ) -> Result<Option<String>, StorageError> {
        let data = with_pool!(self, pool => {
            sqlx::query_scalar(SELECT)
                .bind(host)
                .bind(username)
                .bind(namespace)
                .fetch_optional(pool)
                .await?
        });
        Ok(data)
    }

    /// Replaces the data of each `(namespace, data)` pair in ONE transaction (other
    /// namespaces are untouched). Ok(false), with nothing written, if there is no such account
    /// (an empty `items` checks nothing and returns Ok(true)).
    pub async fn set_private(
        &self,
        host: &str,
        username: &str,
        items: &[(String, String)],
    ) -> Result<bool, StorageError> {
        with_pool!(self, pool => {
            let mut tx = pool.begin().await?;
            // The first statement writes, so SQLite takes its write lock up front.
            for (namespace, data) in items {
                let stored = sqlx::query(UPSERT)
                    .bind(host)
                    .bind(username)
                    .bind(namespace)
                    .bind(data)
                    .bind(now_unix())
                    .execute(&mut *tx)
                    .await?
                    .rows_affected();
                if stored == 0 {
                    tx.rollback().await?;
                    return Ok(false);
                }
            }
            tx.commit().await?;
        });
        Ok(true)
    }
}
