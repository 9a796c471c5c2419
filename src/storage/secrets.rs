//! Server-wide random secrets, generated once and shared by every process.

use super::{Storage, StorageError};

const SELECT: &str = "SELECT value FROM server_secrets WHERE name = $1";
const INSERT: &str = "INSERT INTO server_secrets (name, value) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING";

impl Storage {
    /// Returns the named secret, creating 32 random bytes atomically on first use.
    pub async fn secret(&self, name: &str) -> Result<Vec<u8>, StorageError> {
        let value = with_pool!(self, pool => {
            // Plain read first: after the first call this never takes a write lock.
            let existing: Option<Vec<u8>> =
                sqlx::query_scalar(SELECT).bind(name).fetch_optional(pool).await?;
            match existing {
                Some(value) => value,
                None => {
                    // rand's thread RNG is a CSPRNG seeded from the OS.
                    let fresh: [u8; 32] = rand::random();
                    // Insert-if-absent then read back: when two processes race,
                    // both return the one row that won, never a losing candidate.
                    sqlx::query(INSERT).bind(name).bind(&fresh[..]).execute(pool).await?;
                    sqlx::query_scalar(SELECT).bind(name).fetch_one(pool).await?
                }
            }
        });
        Ok(value)
    }
}
