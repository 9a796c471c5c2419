//! Rosters (RFC 6121 §2), subscription state (§3), inbound subscription requests waiting for
//! an answer (§3.1.3), roster versions (XEP-0237) and last logout times (XEP-0012).
//!
//! Contacts are stored as normalized bare JID strings. Every change to an item bumps the
//! user's version counter in the same transaction, so versions are monotonic and survive
//! restarts. Deleting an account removes its own rows (ON DELETE CASCADE) and, through the
//! `roster_account_deleted` trigger of migration 0002, cancels the subscriptions other users
//! had with it.

use super::{Storage, StorageError, now_unix};

/// One roster item row, groups included.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredItem {
    /// Normalized bare JID.
    pub contact: String,
    pub name: Option<String>,
    /// "none", "to", "from" or "both".
    pub subscription: String,
    /// Pending out (`ask='subscribe'`).
    pub ask: bool,
    /// Pre-approved (RFC 6121 §3.4).
    pub approved: bool,
    pub groups: Vec<String>,
}

/// A user's whole roster as stored.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StoredRoster {
    /// 0 when the roster never changed.
    pub version: i64,
    /// Sorted by contact.
    pub items: Vec<StoredItem>,
    /// Inbound subscription requests not yet answered: (contact, the presence stanza as
    /// received, serialized), sorted by contact.
    pub pending_in: Vec<(String, String)>,
}

/// A change to one item.
#[derive(Debug, Clone, Copy)]
pub enum ItemWrite<'a> {
    Upsert(&'a StoredItem),
    Remove(&'a str),
}

/// A change to one pending inbound request.
#[derive(Debug, Clone, Copy)]
pub enum PendingWrite<'a> {
    /// Keep the request; an earlier one from the same contact is kept instead (§3.1.3 lets
    /// the server store only one).
    Store {
        contact: &'a str,
        stanza: &'a str,
    },
    Clear(&'a str),
}

type ItemRow = (String, Option<String>, String, bool, bool);

const UPSERT_ITEM: &str = "INSERT INTO roster_items (host, username, contact, name, subscription, ask, approved) \
     VALUES ($1, $2, $3, $4, $5, $6, $7) \
     ON CONFLICT (host, username, contact) DO UPDATE SET name = excluded.name, \
     subscription = excluded.subscription, ask = excluded.ask, approved = excluded.approved";
const DELETE_GROUPS: &str = "DELETE FROM roster_groups WHERE host = $1 AND username = $2 AND contact = $3";
const INSERT_GROUP: &str =
    "INSERT INTO roster_groups (host, username, contact, name) VALUES ($1, $2, $3, $4)";
const DELETE_ITEM: &str = "DELETE FROM roster_items WHERE host = $1 AND username = $2 AND contact = $3";
const BUMP_VERSION: &str = "INSERT INTO roster_versions (host, username, version) VALUES ($1, $2, 1) \
     ON CONFLICT (host, username) DO UPDATE SET version = roster_versions.version + 1 \
     RETURNING version";
const STORE_PENDING: &str = "INSERT INTO roster_pending_in (host, username, contact, stanza, created_at) \
     VALUES ($1, $2, $3, $4, $5) ON CONFLICT (host, username, contact) DO NOTHING";
const CLEAR_PENDING: &str =
    "DELETE FROM roster_pending_in WHERE host = $1 AND username = $2 AND contact = $3";
const SELECT_VERSION: &str = "SELECT version FROM roster_versions WHERE host = $1 AND username = $2";

impl Storage {
    /// The whole roster of a user, read in one transaction.
    pub async fn roster_load(&self, host: &str, username: &str) -> Result<StoredRoster, StorageError> {
        const ITEMS: &str = "SELECT contact, name, subscription, ask, approved FROM roster_items \
                             WHERE host = $1 AND username = $2 ORDER BY contact";
        const GROUPS: &str = "SELECT contact, name FROM roster_groups \
                              WHERE host = $1 AND username = $2 ORDER BY contact, name";
        const PENDING: &str = "SELECT contact, stanza FROM roster_pending_in \
                               WHERE host = $1 AND username = $2 ORDER BY contact";
        let (version, rows, groups, pending_in) = with_pool!(self, pool => {
            let mut tx = pool.begin().await?;
            let version: Option<i64> = sqlx::query_scalar(SELECT_VERSION)
                .bind(host).bind(username).fetch_optional(&mut *tx).await?;
            let rows: Vec<ItemRow> = sqlx::query_as(ITEMS)
                .bind(host).bind(username).fetch_all(&mut *tx).await?;
            let groups: Vec<(String, String)> = sqlx::query_as(GROUPS)
                .bind(host).bind(username).fetch_all(&mut *tx).await?;
            let pending: Vec<(String, String)> = sqlx::query_as(PENDING)
                .bind(host).bind(username).fetch_all(&mut *tx).await?;
            tx.commit().await?;
            (version, rows, groups, pending)
        });
        // Both lists are sorted by contact: merge them in one pass.
        let mut groups = groups.into_iter().peekable();
        let items = rows
            .into_iter()
            .map(|(contact, name, subscription, ask, approved)| {
                let mut item_groups = Vec::new();
                while let Some((c, _)) = groups.peek() {
                    match c.as_str().cmp(contact.as_str()) {
                        std::cmp::Ordering::Less => {
                            groups.next();
                        }
                        std::cmp::Ordering::Equal => {
                            if let Some((_, g)) = groups.next() {
                                item_groups.push(g);
                            }
                        }
                        std::cmp::Ordering::Greater => break,
                    }
                }
                StoredItem {
                    contact,
                    name,
                    subscription,
                    ask,
                    approved,
                    groups: item_groups,
                }
            })
            .collect();
        Ok(StoredRoster {
            version: version.unwrap_or(0),
            items,
            pending_in,
        })
    }

    /// The current roster version (0 if the roster never changed).
    pub async fn roster_version(&self, host: &str, username: &str) -> Result<i64, StorageError> {
        let version: Option<i64> = with_pool!(self, pool => {
            sqlx::query_scalar(SELECT_VERSION).bind(host).bind(username).fetch_optional(pool).await?
        });
        Ok(version.unwrap_or(0))
    }

    /// Applies an item change and/or a pending-request change in one transaction. Returns the
    /// new roster version when an item changed (removing an absent item still counts).
    pub async fn roster_write(
        &self,
        host: &str,
        username: &str,
        item: Option<ItemWrite<'_>>,
        pending: Option<PendingWrite<'_>>,
    ) -> Result<Option<i64>, StorageError> {
        let version = with_pool!(self, pool => {
            let mut tx = pool.begin().await?;
            let mut version = None;
            match item {
                Some(ItemWrite::Upsert(it)) => {
                    sqlx::query(UPSERT_ITEM)
                        .bind(host)
                        .bind(username)
                        .bind(&it.contact)
                        .bind(it.name.as_deref())
                        .bind(&it.subscription)
                        .bind(it.ask)
                        .bind(it.approved)
                        .execute(&mut *tx)
                        .await?;
                    sqlx::query(DELETE_GROUPS)
                        .bind(host).bind(username).bind(&it.contact)
                        .execute(&mut *tx).await?;
                    for g in &it.groups {
                        sqlx::query(INSERT_GROUP)
                            .bind(host).bind(username).bind(&it.contact).bind(g)
                            .execute(&mut *tx).await?;
                    }
                }
                Some(ItemWrite::Remove(contact)) => {
                    sqlx::query(DELETE_ITEM)
                        .bind(host).bind(username).bind(contact)
                        .execute(&mut *tx).await?;
                }
                None => {}
            }
            if item.is_some() {
                let v: i64 = sqlx::query_scalar(BUMP_VERSION)
                    .bind(host).bind(username)
                    .fetch_one(&mut *tx).await?;
                version = Some(v);
            }
            match pending {
                Some(PendingWrite::Store { contact, stanza }) => {
                    sqlx::query(STORE_PENDING)
                        .bind(host).bind(username).bind(contact).bind(stanza).bind(now_unix())
                        .execute(&mut *tx).await?;
                }
                Some(PendingWrite::Clear(contact)) => {
                    sqlx::query(CLEAR_PENDING)
                        .bind(host).bind(username).bind(contact)
                        .execute(&mut *tx).await?;
                }
                None => {}
            }
            tx.commit().await?;
            version
        });
        Ok(version)
    }

    /// Records when the user's last session ended and the status text it left with. Nothing
    /// is recorded for an account that no longer exists (removed while logged in).
    pub async fn last_logout_set(
        &self,
        host: &str,
        username: &str,
        at: i64,
        status: &str,
    ) -> Result<(), StorageError> {
        const SQL: &str = "INSERT INTO last_activity (host, username, logout_at, status) \
                           SELECT $1, $2, $3, $4 WHERE EXISTS \
                           (SELECT 1 FROM accounts WHERE host = $1 AND username = $2) \
                           ON CONFLICT (host, username) DO UPDATE SET logout_at = excluded.logout_at, \
                           status = excluded.status";
        with_pool!(self, pool => {
            sqlx::query(SQL).bind(host).bind(username).bind(at).bind(status).execute(pool).await?;
        });
        Ok(())
    }

    /// (unix time of the last logout, its status text), if the user ever logged out.
    pub async fn last_logout(
        &self,
        host: &str,
        username: &str,
    ) -> Result<Option<(i64, String)>, StorageError> {
        const SQL: &str = "SELECT logout_at, status FROM last_activity WHERE host = $1 AND username = $2";
        let row = with_pool!(self, pool => {
            sqlx::query_as(SQL).bind(host).bind(username).fetch_optional(pool).await?
        });
        Ok(row)
    }
}
