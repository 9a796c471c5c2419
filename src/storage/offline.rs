//! XEP-0160 offline messages (and their XEP-0013 headers): per account, an ordered queue of
//! message stanzas kept as XML text, numbered by a per-account sequence that is never reused.

use super::{Storage, StorageError};

/// One stored message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OfflineMessage {
    /// Per-account sequence number: delivery order, and the XEP-0013 node.
    pub seq: i64,
    /// When it was stored, in unix milliseconds (the XEP-0203 stamp).
    pub stamp_ms: i64,
    /// The sender's full JID, as in the stanza's 'from'.
    pub sender: String,
    /// The stanza as XML text.
    pub stanza: String,
}

/// A message without its stanza (an XEP-0013 header).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OfflineHeader {
    pub seq: i64,
    pub stamp_ms: i64,
    pub sender: String,
}

/// What `offline_store` did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OfflineStored {
    /// Stored under this sequence number.
    Stored(i64),
    /// There is no such account: nothing stored.
    NoAccount,
    /// The account already holds the maximum number of messages: nothing stored.
    Full,
}

type MessageRow = (i64, i64, String, String);
type HeaderRow = (i64, i64, String);

const COUNT: &str = "SELECT COUNT(*) FROM offline_messages WHERE host = $1 AND username = $2";
const NEXT_SEQ: &str = "INSERT INTO offline_counters (host, username, last_seq) VALUES ($1, $2, 1) \
                        ON CONFLICT (host, username) \
                        DO UPDATE SET last_seq = offline_counters.last_seq + 1 \
                        RETURNING last_seq";
const INSERT: &str = "INSERT INTO offline_messages (host, username, seq, stamp_ms, sender, stanza) \
                      VALUES ($1, $2, $3, $4, $5, $6)";
const LOAD: &str = "SELECT seq, stamp_ms, sender, stanza FROM offline_messages \
                    WHERE host = $1 AND username = $2 AND seq > $3 ORDER BY seq LIMIT $4";
const GET: &str = "SELECT seq, stamp_ms, sender, stanza FROM offline_messages \
                   WHERE host = $1 AND username = $2 AND seq = $3";
const HEADERS: &str = "SELECT seq, stamp_ms, sender FROM offline_messages \
                       WHERE host = $1 AND username = $2 ORDER BY seq";
const DELETE: &str = "DELETE FROM offline_messages WHERE host = $1 AND username = $2 AND seq = $3";
const PURGE: &str = "DELETE FROM offline_messages WHERE host = $1 AND username = $2";

impl Storage {
    /// Appends a message to the account's queue unless the account does not exist or already
    /// holds `max` messages. Atomic: concurrent stores for one account get distinct, increasing
    /// sequence numbers and never exceed `max` together.
    pub async fn offline_store(
        &self,
        host: &str,
        username: &str,
        sender: &str,
        stanza: &str,
        stamp_ms: i64,
        max: usize,
    ) -> Result<OfflineStored, StorageError> {
        let max = i64::try_from(max).unwrap_or(i64::MAX);
        let outcome = with_pool!(self, pool => {
            let mut tx = pool.begin().await?;
            // So the count below cannot go stale.
            if !lock_account_row!(tx, host, username) {
                tx.rollback().await?;
                OfflineStored::NoAccount
            } else {
                let count: i64 = sqlx::query_scalar(COUNT)
                    .bind(host)
                    .bind(username)
                    .fetch_one(&mut *tx)
                    .await?;
                if count >= max {
                    tx.rollback().await?;
                    OfflineStored::Full
                } else {
                    let seq: i64 = sqlx::query_scalar(NEXT_SEQ)
                        .bind(host)
                        .bind(username)
                        .fetch_one(&mut *tx)
                        .await?;
                    sqlx::query(INSERT)
                        .bind(host)
                        .bind(username)
                        .bind(seq)
                        .bind(stamp_ms)
                        .bind(sender)
                        .bind(stanza)
                        .execute(&mut *tx)
                        .await?;
                    tx.commit().await?;
                    OfflineStored::Stored(seq)
                }
            }
        });
        Ok(outcome)
    }

    /// How many messages the account has waiting.
    pub async fn offline_count(&self, host: &str, username: &str) -> Result<u64, StorageError> {
        let count: i64 = with_pool!(self, pool => {
            sqlx::query_scalar(COUNT).bind(host).bind(username).fetch_one(pool).await?
        });
        Ok(count.unsigned_abs())
    }

    /// Up to `limit` messages numbered after `after`, oldest first.
    pub async fn offline_load(
        &self,
        host: &str,
        username: &str,
        after: i64,
        limit: u32,
    ) -> Result<Vec<OfflineMessage>, StorageError> {
        let rows: Vec<MessageRow> = with_pool!(self, pool => {
            sqlx::query_as(LOAD)
                .bind(host)
                .bind(username)
                .bind(after)
                .bind(i64::from(limit))
                .fetch_all(pool)
                .await?
        });
        Ok(rows.into_iter().map(message).collect())
    }

    /// The messages with these numbers that exist, oldest first.
    pub async fn offline_get(
        &self,
        host: &str,
        username: &str,
        seqs: &[i64],
    ) -> Result<Vec<OfflineMessage>, StorageError> {
        let mut seqs = seqs.to_vec();
        seqs.sort_unstable();
        seqs.dedup();
        let mut out = Vec::with_capacity(seqs.len());
        with_pool!(self, pool => {
            let mut conn = pool.acquire().await?;
            for seq in seqs {
                let row: Option<MessageRow> = sqlx::query_as(GET)
                    .bind(host)
                    .bind(username)
                    .bind(seq)
                    .fetch_optional(&mut *conn)
                    .await?;
                out.extend(row.map(message));
            }
        });
        Ok(out)
    }

    /// Every message's header, oldest first.
    pub async fn offline_headers(
        &self,
        host: &str,
        username: &str,
    ) -> Result<Vec<OfflineHeader>, StorageError> {
        let rows: Vec<HeaderRow> = with_pool!(self, pool => {
            sqlx::query_as(HEADERS).bind(host).bind(username).fetch_all(pool).await?
        });
        Ok(rows
            .into_iter()
            .map(|(seq, stamp_ms, sender)| OfflineHeader {
                seq,
                stamp_ms,
                sender,
            })
            .collect())
    }

    /// Deletes the messages with these numbers (in one transaction); returns how many existed.
    pub async fn offline_delete(
        &self,
        host: &str,
        username: &str,
        seqs: &[i64],
    ) -> Result<u64, StorageError> {
        if seqs.is_empty() {
            return Ok(0);
        }
        let deleted = with_pool!(self, pool => {
            let mut tx = pool.begin().await?;
            let mut deleted = 0;
            for &seq in seqs {
                deleted += sqlx::query(DELETE)
                    .bind(host)
                    .bind(username)
                    .bind(seq)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected();
            }
            tx.commit().await?;
            deleted
        });
        Ok(deleted)
    }

    /// Deletes every message of the account; returns how many there were.
    pub async fn offline_purge(&self, host: &str, username: &str) -> Result<u64, StorageError> {
        let deleted = with_pool!(self, pool => {
            sqlx::query(PURGE).bind(host).bind(username).execute(pool).await?.rows_affected()
        });
        Ok(deleted)
    }
}

fn message((seq, stamp_ms, sender, stanza): MessageRow) -> OfflineMessage {
    OfflineMessage {
        seq,
        stamp_ms,
        sender,
        stanza,
    }
}
