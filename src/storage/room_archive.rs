//! XEP-0313 archives of MUC rooms: one row per groupchat message a room archived, keyed by
//! the room and the XEP-0359 stanza-id it gave the message (the same id clock as accounts'
//! archives), written in batches by the archive module's writer and paged as accounts' are
//! (`archive::Storage::archive_page`).

use super::archive::{ArchiveFilter, PageFrom, Table};
use super::{Storage, StorageError};

/// A message to archive in a room's archive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoomArchiveRow {
    /// The MUC service domain.
    pub host: String,
    /// The room's node.
    pub room: String,
    pub id: i64,
    pub nick: String,
    /// The sender's bare JID (shown only to those who may see real JIDs).
    pub real_jid: String,
    /// The sender's id for it (origin-id, else `id`); empty when none.
    pub origin_id: String,
    /// Its `<body/>` text: what full-text search looks in.
    pub body: String,
    /// The message as the room broadcast it.
    pub stanza: String,
}

/// A message read back from a room's archive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoomArchivedMessage {
    pub id: i64,
    pub nick: String,
    pub real_jid: String,
    pub stanza: String,
}

/// One page of a room archive query (see `archive::ArchivePage`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoomArchivePage {
    pub messages: Vec<RoomArchivedMessage>,
    pub count: u64,
    pub first_index: Option<u64>,
    pub complete: bool,
}

const ROOMS: Table = Table {
    messages: "room_archive_messages",
    owner: "room",
    fts: "room_archive_fts",
    // `with` names an occupant JID: filtered by the nick.
    peer: None,
    resource: "nick",
    columns: "id, nick, real_jid, stanza",
};

const INSERT: &str = "INSERT INTO room_archive_messages \
                      (host, room, id, nick, real_jid, origin_id, body, stanza) \
                      VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT DO NOTHING";
const HAS_ID: &str = "SELECT COUNT(*) FROM room_archive_messages WHERE host = $1 AND room = $2 AND id = $3";
const GET: &str = "SELECT id, nick, real_jid, stanza FROM room_archive_messages \
                   WHERE host = $1 AND room = $2 AND id = $3";
const BOUNDS: &str = "SELECT MIN(id), MAX(id) FROM room_archive_messages WHERE host = $1 AND room = $2";
const PURGE: &str = "DELETE FROM room_archive_messages WHERE host = $1 AND room = $2";
const EXPIRE: &str = "DELETE FROM room_archive_messages WHERE id < $1";
const TOMBSTONE: &str =
    "UPDATE room_archive_messages SET stanza = $4, body = '' WHERE host = $1 AND room = $2 AND id = $3";
const MAX_ID: &str = "SELECT MAX(id) FROM room_archive_messages";

type Row = (i64, String, String, String);

fn message((id, nick, real_jid, stanza): Row) -> RoomArchivedMessage {
    RoomArchivedMessage {
        id,
        nick,
        real_jid,
        stanza,
    }
}

impl Storage {
    /// Appends messages to their rooms' archives in one transaction; returns how many were
    /// stored (an id already there is skipped).
    pub async fn room_archive_append(&self, rows: &[RoomArchiveRow]) -> Result<u64, StorageError> {
        if rows.is_empty() {
            return Ok(0);
        }
        let stored = with_pool!(self, pool => {
            let mut tx = pool.begin().await?;
            let mut stored = 0;
            for row in rows {
                stored += sqlx::query(INSERT)
                    .bind(&row.host)
                    .bind(&row.room)
                    .bind(row.id)
                    .bind(&row.nick)
                    .bind(&row.real_jid)
                    .bind(&row.origin_id)
                    .bind(&row.body)
                    .bind(&row.stanza)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected();
            }
            tx.commit().await?;
            stored
        });
        Ok(stored)
    }

    /// One page of at most `max` messages of the room's archive matching `filter` (its
    /// `peer` filter: the resource is the nick, the bare JID is not compared).
    pub async fn room_archive_query(
        &self,
        host: &str,
        room: &str,
        filter: &ArchiveFilter,
        from: PageFrom,
        max: usize,
    ) -> Result<RoomArchivePage, StorageError> {
        let page = self
            .archive_page::<Row>(&ROOMS, host, room, filter, from, max, |r| r.0)
            .await?;
        Ok(RoomArchivePage {
            messages: page.rows.into_iter().map(message).collect(),
            count: page.count,
            first_index: page.first_index,
            complete: page.complete,
        })
    }

    /// Whether the room's archive holds a message with this id.
    pub async fn room_archive_has_id(&self, host: &str, room: &str, id: i64) -> Result<bool, StorageError> {
        let n: i64 = with_pool!(self, pool => {
            sqlx::query_scalar(HAS_ID).bind(host).bind(room).bind(id).fetch_one(pool).await?
        });
        Ok(n > 0)
    }

    /// The message with this id in the room's archive.
    pub async fn room_archive_get(
        &self,
        host: &str,
        room: &str,
        id: i64,
    ) -> Result<Option<RoomArchivedMessage>, StorageError> {
        let row: Option<Row> = with_pool!(self, pool => {
            sqlx::query_as(GET).bind(host).bind(room).bind(id).fetch_optional(pool).await?
        });
        Ok(row.map(message))
    }

    /// The ids of the room's oldest and newest archived messages, if any.
    pub async fn room_archive_bounds(
        &self,
        host: &str,
        room: &str,
    ) -> Result<Option<(i64, i64)>, StorageError> {
        let (min, max): (Option<i64>, Option<i64>) = with_pool!(self, pool => {
            sqlx::query_as(BOUNDS).bind(host).bind(room).fetch_one(pool).await?
        });
        Ok(min.zip(max))
    }

    /// Deletes the room's whole archive; returns how many messages it held.
    pub async fn room_archive_purge(&self, host: &str, room: &str) -> Result<u64, StorageError> {
        let n = with_pool!(self, pool => {
            sqlx::query(PURGE).bind(host).bind(room).execute(pool).await?.rows_affected()
        });
        Ok(n)
    }

    /// Deletes every room's messages older than `before_id` (retention); returns how many.
    pub async fn room_archive_expire(&self, before_id: i64) -> Result<u64, StorageError> {
        let n = with_pool!(self, pool => {
            sqlx::query(EXPIRE).bind(before_id).execute(pool).await?.rows_affected()
        });
        Ok(n)
    }

    /// Replaces one archived message's text by `stanza` and empties its body (a XEP-0425
    /// tombstone); false when the room has no message with this id.
    pub async fn room_archive_tombstone(
        &self,
        host: &str,
        room: &str,
        id: i64,
        stanza: &str,
    ) -> Result<bool, StorageError> {
        let n = with_pool!(self, pool => {
            sqlx::query(TOMBSTONE)
                .bind(host)
                .bind(room)
                .bind(id)
                .bind(stanza)
                .execute(pool)
                .await?
                .rows_affected()
        });
        Ok(n > 0)
    }

    /// The largest id any room's archive holds.
    pub async fn room_archive_max_id(&self) -> Result<Option<i64>, StorageError> {
        let max: Option<i64> = with_pool!(self, pool => {
            sqlx::query_scalar(MAX_ID).fetch_one(pool).await?
        });
        Ok(max)
    }
}
