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

    /// Every stored room of a service with its configuration form (XML text), by room name:
    /// the directory of rooms that are not loaded (§6.3 lists them too).
    pub async fn muc_room_configs(&self, service: &str) -> Result<Vec<(String, String)>, StorageError> {
        const SQL: &str = "SELECT room, config FROM muc_rooms WHERE service = $1 ORDER BY room";
        let rows = with_pool!(self, pool => {
            sqlx::query_as(SQL).bind(service).fetch_all(pool).await?
        });
        Ok(rows)
    }
}

/// A message of a persistent room's discussion history (§7.2.13).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredMessage {
    /// Order within the room, increasing.
    pub seq: i64,
    pub at_ms: i64,
    /// The broadcast message as XML text.
    pub stanza: String,
}

const SELECT_REGISTRATIONS: &str =
    "SELECT jid, nick FROM muc_registrations WHERE service = $1 AND room = $2 ORDER BY jid";
const DELETE_REGISTRATION: &str =
    "DELETE FROM muc_registrations WHERE service = $1 AND room = $2 AND jid = $3";
const INSERT_REGISTRATION: &str =
    "INSERT INTO muc_registrations (service, room, jid, nick) VALUES ($1, $2, $3, $4)";
const SELECT_HISTORY: &str = "SELECT seq, at_ms, stanza FROM muc_history WHERE service = $1 AND room = $2 \
                              ORDER BY seq DESC LIMIT $3";
const INSERT_HISTORY: &str =
    "INSERT INTO muc_history (service, room, seq, at_ms, stanza) VALUES ($1, $2, $3, $4, $5)";
const TRIM_HISTORY: &str = "DELETE FROM muc_history WHERE service = $1 AND room = $2 AND seq <= $3";

impl Storage {
    /// §7.10: the registered nicknames of a stored room, as (bare JID, nick).
    pub async fn muc_registrations(
        &self,
        service: &str,
        room: &str,
    ) -> Result<Vec<(String, String)>, StorageError> {
        with_pool!(self, pool => {
            Ok(sqlx::query_as(SELECT_REGISTRATIONS).bind(service).bind(room).fetch_all(pool).await?)
        })
    }

    /// Registers `jid` with `nick` (replacing its previous nick), or unregisters it (`None`).
    /// The room must be stored; a nick reserved by another JID is a database error.
    pub async fn muc_set_registration(
        &self,
        service: &str,
        room: &str,
        jid: &str,
        nick: Option<&str>,
    ) -> Result<(), StorageError> {
        with_pool!(self, pool => {
            let mut tx = pool.begin().await?;
            sqlx::query(DELETE_REGISTRATION).bind(service).bind(room).bind(jid).execute(&mut *tx).await?;
            if let Some(nick) = nick {
                sqlx::query(INSERT_REGISTRATION)
                    .bind(service)
                    .bind(room)
                    .bind(jid)
                    .bind(nick)
                    .execute(&mut *tx)
                    .await?;
            }
            tx.commit().await?;
        });
        Ok(())
    }

    /// The last `limit` messages of a stored room's history, oldest first.
    pub async fn muc_history(
        &self,
        service: &str,
        room: &str,
        limit: usize,
    ) -> Result<Vec<StoredMessage>, StorageError> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let mut rows: Vec<(i64, i64, String)> = with_pool!(self, pool => {
            sqlx::query_as(SELECT_HISTORY).bind(service).bind(room).bind(limit).fetch_all(pool).await?
        });
        rows.reverse();
        Ok(rows
            .into_iter()
            .map(|(seq, at_ms, stanza)| StoredMessage { seq, at_ms, stanza })
            .collect())
    }

    /// Appends a message to a stored room's history, keeping the last `keep` (0: none).
    pub async fn muc_history_push(
        &self,
        service: &str,
        room: &str,
        message: &StoredMessage,
        keep: usize,
    ) -> Result<(), StorageError> {
        let keep = i64::try_from(keep).unwrap_or(i64::MAX);
        with_pool!(self, pool => {
            let mut tx = pool.begin().await?;
            sqlx::query(INSERT_HISTORY)
                .bind(service)
                .bind(room)
                .bind(message.seq)
                .bind(message.at_ms)
                .bind(&message.stanza)
                .execute(&mut *tx)
                .await?;
            sqlx::query(TRIM_HISTORY)
                .bind(service)
                .bind(room)
                .bind(message.seq.saturating_sub(keep))
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
        });
        Ok(())
    }
}
