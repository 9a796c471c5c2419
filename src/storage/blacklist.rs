//! Queries of the admin commands (XEP-0133 and our own): the service-wide blacklist (§4.11),
//! recent logins behind "active users" (§4.16, §4.21), and the stored MUC rooms.

use super::{Storage, StorageError, now_unix};

impl Storage {
    /// The blacklist (bare JIDs and domains), sorted.
    pub async fn blacklist(&self) -> Result<Vec<String>, StorageError> {
        const SQL: &str = "SELECT jid FROM service_blacklist ORDER BY jid";
        let list = with_pool!(self, pool => {
            sqlx::query_scalar(SQL).fetch_all(pool).await?
        });
        Ok(list)
    }

    /// Replaces the whole blacklist in one transaction (the edit form submits the full list).
    pub async fn set_blacklist(&self, jids: &[String]) -> Result<(), StorageError> {
        const CLEAR: &str = "DELETE FROM service_blacklist";
        const INSERT: &str = "INSERT INTO service_blacklist (jid, added_at) VALUES ($1, $2) \
                              ON CONFLICT (jid) DO NOTHING";
        let now = now_unix();
        with_pool!(self, pool => {
            let mut tx = pool.begin().await?;
            sqlx::query(CLEAR).execute(&mut *tx).await?;
            for jid in jids {
                sqlx::query(INSERT).bind(jid).bind(now).execute(&mut *tx).await?;
            }
            tx.commit().await?;
        });
        Ok(())
    }

    /// Usernames of `host` whose last session ended at or after `since` (unix seconds),
    /// sorted. Accounts online right now are the caller's to add.
    pub async fn logged_out_since(&self, host: &str, since: i64) -> Result<Vec<String>, StorageError> {
        const SQL: &str = "SELECT username FROM last_activity WHERE host = $1 AND logout_at >= $2 \
                           ORDER BY username";
        let users = with_pool!(self, pool => {
            sqlx::query_scalar(SQL).bind(host).bind(since).fetch_all(pool).await?
        });
        Ok(users)
    }

    /// Localparts of the stored (persistent) rooms of a MUC service, sorted.
    pub async fn muc_room_names(&self, service: &str) -> Result<Vec<String>, StorageError> {
        const SQL: &str = "SELECT room FROM muc_rooms WHERE service = $1 ORDER BY room";
        let rooms = with_pool!(self, pool => {
            sqlx::query_scalar(SQL).bind(service).fetch_all(pool).await?
        });
        Ok(rooms)
    }
}
