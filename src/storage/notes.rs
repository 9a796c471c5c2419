//! Private roster notes (xep/xep-roster-notes.md): ciphertext only, one row per roster item
//! (migration 0007). Encryption is the caller's (`modules::roster::notes`): this file never
//! sees a plaintext note.

use super::{Storage, StorageError};

/// One encrypted note as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredNote {
    /// Normalized bare JID of the contact.
    pub contact: String,
    pub key_id: String,
    pub nonce: Vec<u8>,
    pub ciphertext: Vec<u8>,
}

/// One note row of any user, for rotation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NoteRow {
    pub host: String,
    pub username: String,
    pub note: StoredNote,
}

type Row = (String, String, Vec<u8>, Vec<u8>);
type FullRow = (String, String, String, String, Vec<u8>, Vec<u8>);

const BUMP_VERSION: &str = "INSERT INTO roster_versions (host, username, version) VALUES ($1, $2, 1) \
     ON CONFLICT (host, username) DO UPDATE SET version = roster_versions.version + 1 \
     RETURNING version";

impl Storage {
    /// Every note of a user, sorted by contact.
    pub async fn notes_load(&self, host: &str, username: &str) -> Result<Vec<StoredNote>, StorageError> {
        const SQL: &str = "SELECT contact, key_id, nonce, ciphertext FROM roster_notes \
                           WHERE host = $1 AND username = $2 ORDER BY contact";
        let rows: Vec<Row> = with_pool!(self, pool => {
            sqlx::query_as(SQL).bind(host).bind(username).fetch_all(pool).await?
        });
        Ok(rows
            .into_iter()
            .map(|(contact, key_id, nonce, ciphertext)| StoredNote {
                contact,
                key_id,
                nonce,
                ciphertext,
            })
            .collect())
    }

    /// Sets (`Some`) or deletes (`None`) the note on `contact`'s roster item and bumps the
    /// roster version, in one transaction. Returns the new version; `None` when there is no
    /// such roster item (nothing changed).
    pub async fn note_write(
        &self,
        host: &str,
        username: &str,
        contact: &str,
        note: Option<&StoredNote>,
    ) -> Result<Option<i64>, StorageError> {
        const EXISTS: &str = "SELECT 1 FROM roster_items WHERE host = $1 AND username = $2 AND contact = $3";
        const UPSERT: &str = "INSERT INTO roster_notes (host, username, contact, key_id, nonce, ciphertext) \
             VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (host, username, contact) DO UPDATE SET \
             key_id = excluded.key_id, nonce = excluded.nonce, ciphertext = excluded.ciphertext";
        const DELETE: &str = "DELETE FROM roster_notes WHERE host = $1 AND username = $2 AND contact = $3";
        let version = with_pool!(self, pool => {
            let mut tx = pool.begin().await?;
            let exists: Option<i32> = sqlx::query_scalar(EXISTS)
                .bind(host).bind(username).bind(contact)
                .fetch_optional(&mut *tx).await?;
            if exists.is_none() {
                return Ok(None);
            }
            match note {
                Some(n) => {
                    sqlx::query(UPSERT)
                        .bind(host).bind(username).bind(contact)
                        .bind(&n.key_id).bind(&n.nonce).bind(&n.ciphertext)
                        .execute(&mut *tx).await?;
                }
                None => {
                    sqlx::query(DELETE)
                        .bind(host).bind(username).bind(contact)
                        .execute(&mut *tx).await?;
                }
            }
            let v: i64 = sqlx::query_scalar(BUMP_VERSION)
                .bind(host).bind(username)
                .fetch_one(&mut *tx).await?;
            tx.commit().await?;
            v
        });
        Ok(Some(version))
    }

    /// (key id, number of notes under it), sorted by key id.
    pub async fn notes_key_usage(&self) -> Result<Vec<(String, i64)>, StorageError> {
        const SQL: &str = "SELECT key_id, COUNT(*) FROM roster_notes GROUP BY key_id ORDER BY key_id";
        let rows = with_pool!(self, pool => {
            sqlx::query_as(SQL).fetch_all(pool).await?
        });
        Ok(rows)
    }

    /// Up to `limit` notes not under `key_id`, after `after` (host, username, contact) in
    /// key order: rotation walks the table once with this, so rows it cannot change (a
    /// concurrent write) are never seen twice.
    pub async fn notes_not_under(
        &self,
        key_id: &str,
        after: Option<(&str, &str, &str)>,
        limit: i64,
    ) -> Result<Vec<NoteRow>, StorageError> {
        const SQL: &str = "SELECT host, username, contact, key_id, nonce, ciphertext FROM roster_notes \
             WHERE key_id <> $1 AND (host, username, contact) > ($2, $3, $4) \
             ORDER BY host, username, contact LIMIT $5";
        let (h, u, c) = after.unwrap_or(("", "", ""));
        let rows: Vec<FullRow> = with_pool!(self, pool => {
            sqlx::query_as(SQL).bind(key_id).bind(h).bind(u).bind(c).bind(limit)
                .fetch_all(pool).await?
        });
        Ok(rows
            .into_iter()
            .map(|(host, username, contact, key_id, nonce, ciphertext)| NoteRow {
                host,
                username,
                note: StoredNote {
                    contact,
                    key_id,
                    nonce,
                    ciphertext,
                },
            })
            .collect())
    }

    /// Replaces the ciphertext of `old` with `new` if the row is still exactly `old` (no
    /// concurrent write). The plaintext is unchanged, so the roster version is not bumped.
    /// Returns whether the row was replaced.
    pub async fn note_replace(&self, old: &NoteRow, new: &StoredNote) -> Result<bool, StorageError> {
        const SQL: &str = "UPDATE roster_notes SET key_id = $1, nonce = $2, ciphertext = $3 \
             WHERE host = $4 AND username = $5 AND contact = $6 AND key_id = $7 AND nonce = $8";
        let n = with_pool!(self, pool => {
            sqlx::query(SQL)
                .bind(&new.key_id).bind(&new.nonce).bind(&new.ciphertext)
                .bind(&old.host).bind(&old.username).bind(&old.note.contact)
                .bind(&old.note.key_id).bind(&old.note.nonce)
                .execute(pool).await?.rows_affected()
        });
        Ok(n == 1)
    }
}
