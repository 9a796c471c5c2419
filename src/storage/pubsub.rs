//! The XEP-0060 service at `pubsub.<domain>`: its nodes (configuration as text), items
//! (payload XML as published), affiliations and subscriptions, keyed by the service domain.
//!
//! The pubsub module keeps the service's nodes in memory and writes every change through
//! here before it answers; nothing here interprets configurations or payloads.

use super::pep::StoredPepItem;
use super::{Storage, StorageError, now_unix};

/// One stored subscription.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredSubscription {
    /// The JID as subscribed (bare or full).
    pub jid: String,
    pub subid: String,
    /// `subscribed` or `pending`.
    pub state: String,
    /// Subscription options, `key=value` lines.
    pub options: String,
}

/// One stored node with everything it holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredPubsubNode {
    pub node: String,
    pub config: String,
    /// Oldest first.
    pub items: Vec<StoredPepItem>,
    /// `(bare JID, affiliation)`, sorted by JID.
    pub affiliations: Vec<(String, String)>,
    /// Sorted by JID.
    pub subscriptions: Vec<StoredSubscription>,
}

const SELECT_NODES: &str = "SELECT node, config FROM pubsub_nodes WHERE service = $1 ORDER BY node";
const SELECT_ITEMS: &str = "SELECT node, item_id, publisher, payload, seq FROM pubsub_items \
                            WHERE service = $1 ORDER BY node, seq";
const SELECT_AFFILIATIONS: &str =
    "SELECT node, jid, affiliation FROM pubsub_affiliations WHERE service = $1 ORDER BY node, jid";
const SELECT_SUBSCRIPTIONS: &str = "SELECT node, jid, subid, state, options FROM pubsub_subscriptions \
                                    WHERE service = $1 ORDER BY node, jid";
const INSERT_NODE: &str = "INSERT INTO pubsub_nodes (service, node, config, created_at) VALUES ($1, $2, $3, $4) \
                           ON CONFLICT (service, node) DO NOTHING";
const UPDATE_CONFIG: &str = "UPDATE pubsub_nodes SET config = $3 WHERE service = $1 AND node = $2";
const DELETE_NODE: &str = "DELETE FROM pubsub_nodes WHERE service = $1 AND node = $2";
const UPSERT_ITEM: &str = "INSERT INTO pubsub_items (service, node, item_id, publisher, payload, seq, updated_at) \
                           VALUES ($1, $2, $3, $4, $5, $6, $7) \
                           ON CONFLICT (service, node, item_id) DO UPDATE SET \
                           publisher = excluded.publisher, payload = excluded.payload, seq = excluded.seq, \
                           updated_at = excluded.updated_at";
const DELETE_ITEM: &str = "DELETE FROM pubsub_items WHERE service = $1 AND node = $2 AND item_id = $3";
const DELETE_ITEMS: &str = "DELETE FROM pubsub_items WHERE service = $1 AND node = $2";
const UPSERT_AFFILIATION: &str = "INSERT INTO pubsub_affiliations (service, node, jid, affiliation) \
                                  VALUES ($1, $2, $3, $4) ON CONFLICT (service, node, jid) \
                                  DO UPDATE SET affiliation = excluded.affiliation";
const DELETE_AFFILIATION: &str =
    "DELETE FROM pubsub_affiliations WHERE service = $1 AND node = $2 AND jid = $3";
const UPSERT_SUBSCRIPTION: &str = "INSERT INTO pubsub_subscriptions (service, node, jid, subid, state, options) \
                                   VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (service, node, jid) \
                                   DO UPDATE SET subid = excluded.subid, state = excluded.state, \
                                   options = excluded.options";
const DELETE_SUBSCRIPTION: &str =
    "DELETE FROM pubsub_subscriptions WHERE service = $1 AND node = $2 AND jid = $3";

type ItemRow = (String, String, String, String, i64);
type SubscriptionRow = (String, String, String, String, String);

impl Storage {
    /// Every node of a service with everything it holds, read in one transaction.
    pub async fn pubsub_load(&self, service: &str) -> Result<Vec<StoredPubsubNode>, StorageError> {
        let (nodes, items, affiliations, subscriptions) = with_pool!(self, pool => {
            let mut tx = pool.begin().await?;
            let nodes: Vec<(String, String)> =
                sqlx::query_as(SELECT_NODES).bind(service).fetch_all(&mut *tx).await?;
            let items: Vec<ItemRow> = sqlx::query_as(SELECT_ITEMS).bind(service).fetch_all(&mut *tx).await?;
            let affiliations: Vec<(String, String, String)> =
                sqlx::query_as(SELECT_AFFILIATIONS).bind(service).fetch_all(&mut *tx).await?;
            let subscriptions: Vec<SubscriptionRow> =
                sqlx::query_as(SELECT_SUBSCRIPTIONS).bind(service).fetch_all(&mut *tx).await?;
            tx.commit().await?;
            (nodes, items, affiliations, subscriptions)
        });
        let mut out: Vec<StoredPubsubNode> = nodes
            .into_iter()
            .map(|(node, config)| StoredPubsubNode {
                node,
                config,
                items: Vec::new(),
                affiliations: Vec::new(),
                subscriptions: Vec::new(),
            })
            .collect();
        // Every list is sorted by node: find by binary search.
        let index =
            |out: &[StoredPubsubNode], node: &str| out.binary_search_by(|n| n.node.as_str().cmp(node)).ok();
        for (node, id, publisher, payload, seq) in items {
            if let Some(i) = index(&out, &node) {
                out[i].items.push(StoredPepItem {
                    id,
                    publisher,
                    payload,
                    seq,
                });
            }
        }
        for (node, jid, affiliation) in affiliations {
            if let Some(i) = index(&out, &node) {
                out[i].affiliations.push((jid, affiliation));
            }
        }
        for (node, jid, subid, state, options) in subscriptions {
            if let Some(i) = index(&out, &node) {
                out[i].subscriptions.push(StoredSubscription {
                    jid,
                    subid,
                    state,
                    options,
                });
            }
        }
        Ok(out)
    }

    /// Creates a node with `owner` as its owner. Ok(false) when the node exists.
    pub async fn pubsub_create_node(
        &self,
        service: &str,
        node: &str,
        config: &str,
        owner: &str,
    ) -> Result<bool, StorageError> {
        let created = with_pool!(self, pool => {
            let mut tx = pool.begin().await?;
            let created = sqlx::query(INSERT_NODE)
                .bind(service)
                .bind(node)
                .bind(config)
                .bind(now_unix())
                .execute(&mut *tx)
                .await?
                .rows_affected();
            if created > 0 {
                sqlx::query(UPSERT_AFFILIATION).bind(service).bind(node).bind(owner).bind("owner").execute(&mut *tx).await?;
            }
            tx.commit().await?;
            created
        });
        Ok(created > 0)
    }

    pub async fn pubsub_set_config(
        &self,
        service: &str,
        node: &str,
        config: &str,
    ) -> Result<(), StorageError> {
        with_pool!(self, pool => {
            sqlx::query(UPDATE_CONFIG).bind(service).bind(node).bind(config).execute(pool).await?;
        });
        Ok(())
    }

    /// Deletes a node with its items, affiliations and subscriptions.
    pub async fn pubsub_delete_node(&self, service: &str, node: &str) -> Result<(), StorageError> {
        with_pool!(self, pool => {
            sqlx::query(DELETE_NODE).bind(service).bind(node).execute(pool).await?;
        });
        Ok(())
    }

    /// Stores (or replaces) `item` and removes the items `evicted` in one transaction.
    pub async fn pubsub_publish(
        &self,
        service: &str,
        node: &str,
        item: &StoredPepItem,
        evicted: &[String],
    ) -> Result<(), StorageError> {
        with_pool!(self, pool => {
            let mut tx = pool.begin().await?;
            sqlx::query(UPSERT_ITEM)
                .bind(service)
                .bind(node)
                .bind(&item.id)
                .bind(&item.publisher)
                .bind(&item.payload)
                .bind(item.seq)
                .bind(now_unix())
                .execute(&mut *tx)
                .await?;
            for id in evicted {
                sqlx::query(DELETE_ITEM).bind(service).bind(node).bind(id).execute(&mut *tx).await?;
            }
            tx.commit().await?;
        });
        Ok(())
    }

    /// Removes some items of a node (retraction, or a smaller `max_items`).
    pub async fn pubsub_retract(
        &self,
        service: &str,
        node: &str,
        ids: &[String],
    ) -> Result<(), StorageError> {
        with_pool!(self, pool => {
            let mut tx = pool.begin().await?;
            for id in ids {
                sqlx::query(DELETE_ITEM).bind(service).bind(node).bind(id).execute(&mut *tx).await?;
            }
            tx.commit().await?;
        });
        Ok(())
    }

    /// Removes every item of a node.
    pub async fn pubsub_purge(&self, service: &str, node: &str) -> Result<(), StorageError> {
        with_pool!(self, pool => {
            sqlx::query(DELETE_ITEMS).bind(service).bind(node).execute(pool).await?;
        });
        Ok(())
    }

    /// Sets (`Some`) or removes (`None`) one bare JID's affiliation with a node.
    pub async fn pubsub_set_affiliation(
        &self,
        service: &str,
        node: &str,
        jid: &str,
        affiliation: Option<&str>,
    ) -> Result<(), StorageError> {
        with_pool!(self, pool => {
            match affiliation {
                Some(a) => sqlx::query(UPSERT_AFFILIATION).bind(service).bind(node).bind(jid).bind(a).execute(pool).await?,
                None => sqlx::query(DELETE_AFFILIATION).bind(service).bind(node).bind(jid).execute(pool).await?,
            };
        });
        Ok(())
    }

    /// Stores (`Some`) or removes (`None`) one JID's subscription to a node.
    pub async fn pubsub_set_subscription(
        &self,
        service: &str,
        node: &str,
        jid: &str,
        subscription: Option<&StoredSubscription>,
    ) -> Result<(), StorageError> {
        with_pool!(self, pool => {
            match subscription {
                Some(s) => sqlx::query(UPSERT_SUBSCRIPTION)
                    .bind(service)
                    .bind(node)
                    .bind(jid)
                    .bind(&s.subid)
                    .bind(&s.state)
                    .bind(&s.options)
                    .execute(pool)
                    .await?,
                None => sqlx::query(DELETE_SUBSCRIPTION).bind(service).bind(node).bind(jid).execute(pool).await?,
            };
        });
        Ok(())
    }
}
