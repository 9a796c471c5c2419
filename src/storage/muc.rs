//! XEP-0045 persistent rooms: configuration, subject and affiliations per (service, room).

use super::{Storage, StorageError, now_unix};

/// A persistent room as stored.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct StoredRoom {
    /// The muc#roomconfig form (XML text).
    pub config: String,
    pub subject: Option<String>,
    /// Who set the subject, if an occupant did.
    pub subject_nick: Option<String>,
    /// (bare JID, affiliation name, reason).
    pub affiliations: Vec<(String, String, Option<String>)>,
}

const SELECT_ROOM: &str =
    "SELECT config, subject, subject_nick FROM muc_rooms WHERE service = $1 AND room = $2";
const SELECT_AFFILIATIONS: &str = "SELECT jid, affiliation, reason FROM muc_affiliations \
                                   WHERE service = $1 AND room = $2 ORDER BY jid";
const UPSERT_ROOM: &str = "INSERT INTO muc_rooms (service, room, config, subject, subject_nick, updated_at) \
                           VALUES ($1, $2, $3, $4, $5, $6) \
                           ON CONFLICT (service, room) DO UPDATE SET config = excluded.config, \
                           subject = excluded.subject, subject_nick = excluded.subject_nick, \
                           updated_at = excluded.updated_at";
const DELETE_AFFILIATIONS: &str = "DELETE FROM muc_affiliations WHERE service = $1 AND room = $2";
const INSERT_AFFILIATION: &str = "INSERT INTO muc_affiliations (service, room, jid, affiliation, reason) \
                                  VALUES ($1, $2, $3, $4, $5)";
const DELETE_ROOM: &str = "DELETE FROM muc_rooms WHERE service = $1 AND room = $2";

impl Storage {
    /// The stored room, if it is persistent.
    pub async fn muc_load_room(&self, service: &str, room: &str) -> Result<Option<StoredRoom>, StorageError> {
        with_pool!(self, pool => {
            let row: Option<(String, Option<String>, Option<String>)> = sqlx::query_as(SELECT_ROOM)
                .bind(service)
                .bind(room)
                .fetch_optional(pool)
                .await?;
            let Some((config, subject, subject_nick)) = row else {
                return Ok(None);
            };
            let affiliations: Vec<(String, String, Option<String>)> = sqlx::query_as(SELECT_AFFILIATIONS)
                .bind(service)
                .bind(room)
                .fetch_all(pool)
                .await?;
            Ok(Some(StoredRoom {
                config,
                subject,
                subject_nick,
                affiliations,
            }))
        })
    }

    /// Stores (or replaces) a room whole, in one transaction.
    pub async fn muc_save_room(
        &self,
        service: &str,
        room: &str,
        stored: &StoredRoom,
    ) -> Result<(), StorageError> {
        with_pool!(self, pool => {
            let mut tx = pool.begin().await?;
            sqlx::query(UPSERT_ROOM)
                .bind(service)
                .bind(room)
                .bind(&stored.config)
                .bind(&stored.subject)
                .bind(&stored.subject_nick)
                .bind(now_unix())
                .execute(&mut *tx)
                .await?;
            sqlx::query(DELETE_AFFILIATIONS)
                .bind(service)
                .bind(room)
                .execute(&mut *tx)
                .await?;
            for (jid, affiliation, reason) in &stored.affiliations {
                sqlx::query(INSERT_AFFILIATION)
                    .bind(service)
                    .bind(room)
                    .bind(jid)
                    .bind(affiliation)
                    .bind(reason)
                    .execute(&mut *tx)
                    .await?;
            }
            tx.commit().await?;
        });
        Ok(())
    }

    /// Forgets a room (destroyed, or no longer persistent). Ok(false) if it was not stored.
    pub async fn muc_delete_room(&self, service: &str, room: &str) -> Result<bool, StorageError> {
        let n = with_pool!(self, pool => {
            sqlx::query(DELETE_ROOM).bind(service).bind(room).execute(pool).await?.rows_affected()
        });
        Ok(n > 0)
    }
}
