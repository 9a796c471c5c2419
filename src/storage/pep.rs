//! XEP-0163 personal eventing: each account's nodes (configuration as text), their items
//! (payload XML as published) and the affiliations the owner granted.
//!
//! The pubsub module keeps a loaded account's nodes in memory and writes every change
//! through here before it answers; nothing here interprets configurations or payloads.

use super::{Storage, StorageError, now_unix};

/// One stored item.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredPepItem {
    pub id: String,
    /// Bare JID of whoever published it.
    pub publisher: String,
    /// The payload element, serialized.
    pub payload: String,
    /// Publication order within the node (larger is newer).
    pub seq: i64,
}

/// One stored node with everything it holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredPepNode {
    pub node: String,
    /// `key=value` lines.
    pub config: String,
    /// Oldest first.
    pub items: Vec<StoredPepItem>,
    /// `(bare JID, affiliation)`, sorted by JID.
    pub affiliations: Vec<(String, String)>,
}

pub(super) const SELECT_NODES: &str =
    "SELECT node, config FROM pep_nodes WHERE host = $1 AND username = $2 ORDER BY node";
pub(super) const SELECT_ITEMS: &str = "SELECT node, item_id, publisher, payload, seq FROM pep_items \
                            WHERE host = $1 AND username = $2 ORDER BY node, seq";
pub(super) const SELECT_AFFILIATIONS: &str = "SELECT node, jid, affiliation FROM pep_affiliations \
                                   WHERE host = $1 AND username = $2 ORDER BY node, jid";
// INSERT ... SELECT from accounts: no row for a missing account.
const INSERT_NODE: &str = "INSERT INTO pep_nodes (host, username, node, config, created_at) \
                           SELECT host, username, $3, $4, $5 FROM accounts WHERE host = $1 AND username = $2 \
                           ON CONFLICT (host, username, node) DO NOTHING";
pub(super) const INSERT_NODE_RAW: &str =
    "INSERT INTO pep_nodes (host, username, node, config, created_at) VALUES ($1, $2, $3, $4, $5)";
const UPDATE_CONFIG: &str =
    "UPDATE pep_nodes SET config = $4 WHERE host = $1 AND username = $2 AND node = $3";
const DELETE_NODE: &str = "DELETE FROM pep_nodes WHERE host = $1 AND username = $2 AND node = $3";
pub(super) const UPSERT_ITEM: &str = "INSERT INTO pep_items (host, username, node, item_id, publisher, payload, seq, updated_at) \
                           VALUES ($1, $2, $3, $4, $5, $6, $7, $8) \
                           ON CONFLICT (host, username, node, item_id) DO UPDATE SET \
                           publisher = excluded.publisher, payload = excluded.payload, seq = excluded.seq, \
                           updated_at = excluded.updated_at";
const DELETE_ITEM: &str =
    "DELETE FROM pep_items WHERE host = $1 AND username = $2 AND node = $3 AND item_id = $4";
const DELETE_ITEMS: &str = "DELETE FROM pep_items WHERE host = $1 AND username = $2 AND node = $3";
pub(super) const UPSERT_AFFILIATION: &str = "INSERT INTO pep_affiliations (host, username, node, jid, affiliation) \
                                  VALUES ($1, $2, $3, $4, $5) ON CONFLICT (host, username, node, jid) \
                                  DO UPDATE SET affiliation = excluded.affiliation";
const DELETE_AFFILIATION: &str =
    "DELETE FROM pep_affiliations WHERE host = $1 AND username = $2 AND node = $3 AND jid = $4";

type ItemRow = (String, String, String, String, i64);
/// The rows of one account: nodes, items, affiliations.
pub(super) type Loaded = (Vec<(String, String)>, Vec<ItemRow>, Vec<(String, String, String)>);

/// Reads an account's PEP rows inside transaction `$tx` (also used by the XEP-0227 export
/// and import, in their transactions).
macro_rules! pep_rows {
    ($tx:expr, $host:expr, $username:expr) => {{
        let nodes: Vec<(String, String)> = sqlx::query_as($crate::storage::pep::SELECT_NODES)
            .bind($host)
            .bind($username)
            .fetch_all(&mut *$tx)
            .await?;
        let items: Vec<(String, String, String, String, i64)> =
            sqlx::query_as($crate::storage::pep::SELECT_ITEMS)
                .bind($host)
                .bind($username)
                .fetch_all(&mut *$tx)
                .await?;
        let affiliations: Vec<(String, String, String)> =
            sqlx::query_as($crate::storage::pep::SELECT_AFFILIATIONS)
                .bind($host)
                .bind($username)
                .fetch_all(&mut *$tx)
                .await?;
        (nodes, items, affiliations)
    }};
}

/// Rows to nodes (every list is sorted by node).
pub(super) fn assemble_pep((nodes, items, affiliations): Loaded) -> Vec<StoredPepNode> {
    let mut out: Vec<StoredPepNode> = nodes
        .into_iter()
        .map(|(node, config)| StoredPepNode {
            node,
            config,
            items: Vec::new(),
            affiliations: Vec::new(),
        })
        .collect();
    for (node, id, publisher, payload, seq) in items {
        if let Some(n) = out.iter_mut().find(|n| n.node == node) {
            n.items.push(StoredPepItem {
                id,
                publisher,
                payload,
                seq,
            });
        }
    }
    for (node, jid, affiliation) in affiliations {
        if let Some(n) = out.iter_mut().find(|n| n.node == node) {
            n.affiliations.push((jid, affiliation));
        }
    }
    out
}

/// Inserts `nodes` (after the account's nodes were deleted) inside transaction `$tx`.
macro_rules! pep_insert_all {
    ($tx:expr, $host:expr, $username:expr, $nodes:expr) => {{
        for n in $nodes {
            sqlx::query($crate::storage::pep::INSERT_NODE_RAW)
                .bind($host)
                .bind($username)
                .bind(&n.node)
                .bind(&n.config)
                .bind($crate::storage::now_unix())
                .execute(&mut *$tx)
                .await?;
            for i in &n.items {
                sqlx::query($crate::storage::pep::UPSERT_ITEM)
                    .bind($host)
                    .bind($username)
                    .bind(&n.node)
                    .bind(&i.id)
                    .bind(&i.publisher)
                    .bind(&i.payload)
                    .bind(i.seq)
                    .bind($crate::storage::now_unix())
                    .execute(&mut *$tx)
                    .await?;
            }
            for (jid, affiliation) in &n.affiliations {
                sqlx::query($crate::storage::pep::UPSERT_AFFILIATION)
                    .bind($host)
                    .bind($username)
                    .bind(&n.node)
                    .bind(jid)
                    .bind(affiliation)
                    .execute(&mut *$tx)
                    .await?;
            }
        }
    }};
}

impl Storage {
    /// Every node of an account with its items and affiliations, read in one transaction.
    pub async fn pep_load(&self, host: &str, username: &str) -> Result<Vec<StoredPepNode>, StorageError> {
        let rows: Loaded = with_pool!(self, pool => {
            let mut tx = pool.begin().await?;
            let rows = pep_rows!(tx, host, username);
            tx.commit().await?;
            rows
        });
        Ok(assemble_pep(rows))
    }

    /// Creates a node. Ok(false) when the account does not exist or the node already does.
    pub async fn pep_create_node(
        &self,
        host: &str,
        username: &str,
        node: &str,
        config: &str,
    ) -> Result<bool, StorageError> {
        let created = with_pool!(self, pool => {
            sqlx::query(INSERT_NODE)
                .bind(host)
                .bind(username)
                .bind(node)
                .bind(config)
                .bind(now_unix())
                .execute(pool)
                .await?
                .rows_affected()
        });
        Ok(created > 0)
    }

    /// Replaces a node's configuration.
    pub async fn pep_set_config(
        &self,
        host: &str,
        username: &str,
        node: &str,
        config: &str,
    ) -> Result<(), StorageError> {
        with_pool!(self, pool => {
            sqlx::query(UPDATE_CONFIG).bind(host).bind(username).bind(node).bind(config).execute(pool).await?;
        });
        Ok(())
    }

    /// Deletes a node with its items and affiliations.
    pub async fn pep_delete_node(&self, host: &str, username: &str, node: &str) -> Result<(), StorageError> {
        with_pool!(self, pool => {
            sqlx::query(DELETE_NODE).bind(host).bind(username).bind(node).execute(pool).await?;
        });
        Ok(())
    }

    /// Stores (or replaces) `item` and removes the items `evicted` (beyond the node's
    /// `max_items`) in one transaction.
    pub async fn pep_publish(
        &self,
        host: &str,
        username: &str,
        node: &str,
        item: &StoredPepItem,
        evicted: &[String],
    ) -> Result<(), StorageError> {
        with_pool!(self, pool => {
            let mut tx = pool.begin().await?;
            sqlx::query(UPSERT_ITEM)
                .bind(host)
                .bind(username)
                .bind(node)
                .bind(&item.id)
                .bind(&item.publisher)
                .bind(&item.payload)
                .bind(item.seq)
                .bind(now_unix())
                .execute(&mut *tx)
                .await?;
            for id in evicted {
                sqlx::query(DELETE_ITEM).bind(host).bind(username).bind(node).bind(id).execute(&mut *tx).await?;
            }
            tx.commit().await?;
        });
        Ok(())
    }

    /// Removes some items of a node (retraction, or a smaller `max_items`).
    pub async fn pep_retract(
        &self,
        host: &str,
        username: &str,
        node: &str,
        ids: &[String],
    ) -> Result<(), StorageError> {
        with_pool!(self, pool => {
            let mut tx = pool.begin().await?;
            for id in ids {
                sqlx::query(DELETE_ITEM).bind(host).bind(username).bind(node).bind(id).execute(&mut *tx).await?;
            }
            tx.commit().await?;
        });
        Ok(())
    }

    /// Removes every item of a node.
    pub async fn pep_purge(&self, host: &str, username: &str, node: &str) -> Result<(), StorageError> {
        with_pool!(self, pool => {
            sqlx::query(DELETE_ITEMS).bind(host).bind(username).bind(node).execute(pool).await?;
        });
        Ok(())
    }

    /// Sets (`Some`) or removes (`None`) one JID's affiliation with a node.
    pub async fn pep_set_affiliation(
        &self,
        host: &str,
        username: &str,
        node: &str,
        jid: &str,
        affiliation: Option<&str>,
    ) -> Result<(), StorageError> {
        with_pool!(self, pool => {
            match affiliation {
                Some(a) => sqlx::query(UPSERT_AFFILIATION).bind(host).bind(username).bind(node).bind(jid).bind(a).execute(pool).await?,
                None => sqlx::query(DELETE_AFFILIATION).bind(host).bind(username).bind(node).bind(jid).execute(pool).await?,
            };
        });
        Ok(())
    }
}
