//! XEP-0363 upload slots not yet used: written when handed out, removed when used up or
//! expired, read back at start so a restart does not void them.

use super::{Storage, StorageError};

/// One open slot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredSlot {
    pub id: String,
    /// The owner's key in the upload directory.
    pub owner: String,
    pub filename: String,
    pub size: i64,
    pub content_type: Option<String>,
    pub expires: i64,
    pub file_expires: i64,
}

const INSERT: &str = "INSERT INTO upload_slots (id, owner, filename, size, content_type, expires, file_expires) \
                      VALUES ($1, $2, $3, $4, $5, $6, $7)";
const DELETE: &str = "DELETE FROM upload_slots WHERE id = $1";
const DELETE_EXPIRED: &str = "DELETE FROM upload_slots WHERE expires <= $1";
const SELECT_OPEN: &str = "SELECT id, owner, filename, size, content_type, expires, file_expires \
                           FROM upload_slots WHERE expires > $1 ORDER BY id";

type Row = (String, String, String, i64, Option<String>, i64, i64);

impl Storage {
    pub async fn upload_slot_insert(&self, slot: &StoredSlot) -> Result<(), StorageError> {
        with_pool!(self, pool => {
            sqlx::query(INSERT)
                .bind(&slot.id)
                .bind(&slot.owner)
                .bind(&slot.filename)
                .bind(slot.size)
                .bind(&slot.content_type)
                .bind(slot.expires)
                .bind(slot.file_expires)
                .execute(pool)
                .await?;
        });
        Ok(())
    }

    pub async fn upload_slot_delete(&self, id: &str) -> Result<(), StorageError> {
        with_pool!(self, pool => {
            sqlx::query(DELETE).bind(id).execute(pool).await?;
        });
        Ok(())
    }

    /// Slots still open at `now` (expired ones are deleted first).
    pub async fn upload_slots_open(&self, now: i64) -> Result<Vec<StoredSlot>, StorageError> {
        let rows: Vec<Row> = with_pool!(self, pool => {
            sqlx::query(DELETE_EXPIRED).bind(now).execute(pool).await?;
            sqlx::query_as(SELECT_OPEN).bind(now).fetch_all(pool).await?
        });
        Ok(rows
            .into_iter()
            .map(
                |(id, owner, filename, size, content_type, expires, file_expires)| StoredSlot {
                    id,
                    owner,
                    filename,
                    size,
                    content_type,
                    expires,
                    file_expires,
                },
            )
            .collect())
    }

    /// Deletes the slots expired at `now`.
    pub async fn upload_slots_expire(&self, now: i64) -> Result<(), StorageError> {
        with_pool!(self, pool => {
            sqlx::query(DELETE_EXPIRED).bind(now).execute(pool).await?;
        });
        Ok(())
    }
}
