//! The privacy model behind XEP-0016, XEP-0191 and the ignore-list protocol
//! (xep/xep-ignore-list.md §5): named lists of ordered items, a default list, and a
//! per-account counter that versions every change.

use super::{Storage, StorageError};

/// One item as stored; `kind` is "" (fall-through), "jid", "group" or "subscription".
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredPrivacyItem {
    pub kind: String,
    pub value: String,
    /// "allow" or "deny".
    pub action: String,
    pub order: i64,
    /// Bit set: 1 message, 2 iq, 4 presence-in, 8 presence-out; 0 means all.
    pub selectors: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredPrivacyList {
    pub name: String,
    pub version: i64,
    pub items: Vec<StoredPrivacyItem>,
}

/// Everything an account stored.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StoredPrivacy {
    pub default_list: Option<String>,
    pub lists: Vec<StoredPrivacyList>,
}

/// What a conditional write did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PrivacyWrite {
    /// Written; the list's new version (or, for a deletion, the account's counter).
    Done(i64),
    /// The list's version was not the expected one; its current version (0: no such list).
    Conflict(i64),
    /// No such account.
    NoAccount,
}

/// What a conditional list write does.
#[derive(Clone, Copy)]
enum ListChange<'a> {
    Delete,
    /// Every item replaced.
    Replace(&'a [StoredPrivacyItem]),
    /// Items with these orders removed, then these inserted.
    Patch {
        remove: &'a [i64],
        insert: &'a [StoredPrivacyItem],
    },
}

/// Creates the account's privacy row if needed, as a write (`lock_account_row!`).
const ENSURE_USER: &str = "INSERT INTO privacy_users (host, username, default_list, counter) \
                           SELECT host, username, NULL, 0 FROM accounts WHERE host = $1 AND username = $2 \
                           ON CONFLICT (host, username) DO UPDATE SET counter = privacy_users.counter";
const COUNTER: &str = "SELECT counter FROM privacy_users WHERE host = $1 AND username = $2";
const LIST_VERSION: &str =
    "SELECT version FROM privacy_lists WHERE host = $1 AND username = $2 AND name = $3";
const DELETE_ITEMS: &str = "DELETE FROM privacy_items WHERE host = $1 AND username = $2 AND list = $3";
const DELETE_LIST: &str = "DELETE FROM privacy_lists WHERE host = $1 AND username = $2 AND name = $3";
const UPSERT_LIST: &str = "INSERT INTO privacy_lists (host, username, name, version) VALUES ($1, $2, $3, $4) \
                           ON CONFLICT (host, username, name) DO UPDATE SET version = excluded.version";
const INSERT_ITEM: &str = "INSERT INTO privacy_items \
                           (host, username, list, kind, value, action, item_order, selectors) \
                           VALUES ($1, $2, $3, $4, $5, $6, $7, $8)";
const DELETE_ITEM: &str =
    "DELETE FROM privacy_items WHERE host = $1 AND username = $2 AND list = $3 AND item_order = $4";
const SET_DEFAULT: &str = "UPDATE privacy_users SET default_list = $3 WHERE host = $1 AND username = $2";
const CLEAR_DEFAULT_IF: &str = "UPDATE privacy_users SET default_list = NULL \
                                WHERE host = $1 AND username = $2 AND default_list = $3";
const LOAD_DEFAULT: &str = "SELECT default_list FROM privacy_users WHERE host = $1 AND username = $2";
const LOAD_LISTS: &str =
    "SELECT name, version FROM privacy_lists WHERE host = $1 AND username = $2 ORDER BY name";
const LOAD_ITEMS: &str = "SELECT list, kind, value, action, item_order, selectors FROM privacy_items \
                          WHERE host = $1 AND username = $2 ORDER BY list, item_order";

impl Storage {
    /// Every list of the account and its default list's name.
    pub async fn privacy_load(&self, host: &str, username: &str) -> Result<StoredPrivacy, StorageError> {
        with_pool!(self, pool => {
            let mut tx = pool.begin().await?;
            let default_list: Option<Option<String>> = sqlx::query_scalar(LOAD_DEFAULT)
                .bind(host)
                .bind(username)
                .fetch_optional(&mut *tx)
                .await?;
            let lists: Vec<(String, i64)> = sqlx::query_as(LOAD_LISTS)
                .bind(host)
                .bind(username)
                .fetch_all(&mut *tx)
                .await?;
            let items: Vec<(String, String, String, String, i64, i64)> = sqlx::query_as(LOAD_ITEMS)
                .bind(host)
                .bind(username)
                .fetch_all(&mut *tx)
                .await?;
            tx.commit().await?;
            let mut out = StoredPrivacy {
                default_list: default_list.flatten(),
                lists: lists
                    .into_iter()
                    .map(|(name, version)| StoredPrivacyList { name, version, items: Vec::new() })
                    .collect(),
            };
            for (list, kind, value, action, order, selectors) in items {
                if let Some(l) = out.lists.iter_mut().find(|l| l.name == list) {
                    l.items.push(StoredPrivacyItem { kind, value, action, order, selectors });
                }
            }
            Ok(out)
        })
    }

    /// Replaces (`Some`) or deletes (`None`) the list `name` in one transaction, if its version
    /// is `expected` (0: the list must not exist; `None`: any). Deleting the default list also
    /// clears the default.
    pub async fn privacy_write_list(
        &self,
        host: &str,
        username: &str,
        name: &str,
        expected: Option<i64>,
        items: Option<&[StoredPrivacyItem]>,
    ) -> Result<PrivacyWrite, StorageError> {
        let change = match items {
            None => ListChange::Delete,
            Some(items) => ListChange::Replace(items),
        };
        self.privacy_change(host, username, name, expected, change).await
    }

    /// Changes list `name` item by item in one transaction, if its version is `expected`
    /// (as for [`Storage::privacy_write_list`]): deletes the items with the orders in `remove`,
    /// then inserts `insert` (whose orders must then be free). Creates the list if needed. The
    /// cost is that of the change, not of the list.
    pub async fn privacy_patch_list(
        &self,
        host: &str,
        username: &str,
        name: &str,
        expected: Option<i64>,
        remove: &[i64],
        insert: &[StoredPrivacyItem],
    ) -> Result<PrivacyWrite, StorageError> {
        let change = ListChange::Patch { remove, insert };
        self.privacy_change(host, username, name, expected, change).await
    }

    /// The one conditional list write: checks the version, applies `change`, hands out the
    /// next version from the account's counter.
    async fn privacy_change(
        &self,
        host: &str,
        username: &str,
        name: &str,
        expected: Option<i64>,
        change: ListChange<'_>,
    ) -> Result<PrivacyWrite, StorageError> {
        with_pool!(self, pool => {
            let mut tx = pool.begin().await?;
            if !lock_account_row!(tx, host, username, ENSURE_USER) {
                tx.rollback().await?;
                return Ok(PrivacyWrite::NoAccount);
            }
            let counter: i64 = sqlx::query_scalar(COUNTER)
                .bind(host)
                .bind(username)
                .fetch_one(&mut *tx)
                .await?;
            let current: i64 = sqlx::query_scalar(LIST_VERSION)
                .bind(host)
                .bind(username)
                .bind(name)
                .fetch_optional(&mut *tx)
                .await?
                .unwrap_or(0);
            if expected.is_some_and(|e| e != current) {
                tx.rollback().await?;
                return Ok(PrivacyWrite::Conflict(current));
            }
            let version = counter + 1;
            let (remove, insert): (&[i64], &[StoredPrivacyItem]) = match change {
                ListChange::Delete => (&[], &[]),
                ListChange::Replace(items) => (&[], items),
                ListChange::Patch { remove, insert } => (remove, insert),
            };
            if matches!(change, ListChange::Delete | ListChange::Replace(_)) {
                sqlx::query(DELETE_ITEMS).bind(host).bind(username).bind(name).execute(&mut *tx).await?;
            }
            if matches!(change, ListChange::Delete) {
                sqlx::query(DELETE_LIST).bind(host).bind(username).bind(name).execute(&mut *tx).await?;
                sqlx::query(CLEAR_DEFAULT_IF).bind(host).bind(username).bind(name).execute(&mut *tx).await?;
            } else {
                sqlx::query(UPSERT_LIST)
                    .bind(host)
                    .bind(username)
                    .bind(name)
                    .bind(version)
                    .execute(&mut *tx)
                    .await?;
            }
            for order in remove {
                sqlx::query(DELETE_ITEM)
                    .bind(host)
                    .bind(username)
                    .bind(name)
                    .bind(order)
                    .execute(&mut *tx)
                    .await?;
            }
            for item in insert {
                sqlx::query(INSERT_ITEM)
                    .bind(host)
                    .bind(username)
                    .bind(name)
                    .bind(&item.kind)
                    .bind(&item.value)
                    .bind(&item.action)
                    .bind(item.order)
                    .bind(item.selectors)
                    .execute(&mut *tx)
                    .await?;
            }
            // The counter ends at the version handed out.
            sqlx::query("UPDATE privacy_users SET counter = $3 WHERE host = $1 AND username = $2")
                .bind(host)
                .bind(username)
                .bind(version)
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
            Ok(PrivacyWrite::Done(version))
        })
    }

    /// Sets or clears the default list. The caller checks that the list exists.
    /// Ok(false) if there is no such account.
    pub async fn privacy_set_default(
        &self,
        host: &str,
        username: &str,
        name: Option<&str>,
    ) -> Result<bool, StorageError> {
        with_pool!(self, pool => {
            let mut tx = pool.begin().await?;
            if !lock_account_row!(tx, host, username, ENSURE_USER) {
                tx.rollback().await?;
                return Ok(false);
            }
            sqlx::query(SET_DEFAULT).bind(host).bind(username).bind(name).execute(&mut *tx).await?;
            tx.commit().await?;
            Ok(true)
        })
    }
}
