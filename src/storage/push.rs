//! XEP-0357 push registrations: per account, one row per app server and node.

use super::{Storage, StorageError, now_unix};

/// One registration, as the client enabled it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PushRegistration {
    /// The app server's JID.
    pub service: String,
    pub node: String,
    /// The publish-options form (XML), sent back with every publish.
    pub options: Option<String>,
    /// The user asked for message bodies in notifications.
    pub include_body: bool,
}

// INSERT ... SELECT from accounts: no row for a missing account.
const UPSERT: &str = "INSERT INTO push_registrations \
                      (host, username, service, node, options, include_body, created_at) \
                      SELECT host, username, $3, $4, $5, $6, $7 FROM accounts WHERE host = $1 AND username = $2 \
                      ON CONFLICT (host, username, service, node) DO UPDATE \
                      SET options = excluded.options, include_body = excluded.include_body";
const SELECT: &str = "SELECT service, node, options, include_body FROM push_registrations \
                      WHERE host = $1 AND username = $2 ORDER BY created_at, service, node";
const DELETE_SERVICE: &str =
    "DELETE FROM push_registrations WHERE host = $1 AND username = $2 AND service = $3";
const DELETE_NODE: &str =
    "DELETE FROM push_registrations WHERE host = $1 AND username = $2 AND service = $3 AND node = $4";

impl Storage {
    /// Adds (or replaces the options of) a registration. Ok(false) if there is no such
    /// account.
    pub async fn push_enable(
        &self,
        host: &str,
        username: &str,
        reg: &PushRegistration,
    ) -> Result<bool, StorageError> {
        let stored = with_pool!(self, pool => {
            sqlx::query(UPSERT)
                .bind(host)
                .bind(username)
                .bind(&reg.service)
                .bind(&reg.node)
                .bind(&reg.options)
                .bind(reg.include_body)
                .bind(now_unix())
                .execute(pool)
                .await?
                .rows_affected()
        });
        Ok(stored != 0)
    }

    /// Removes the registrations with `service` (only `node`'s, if given); how many went.
    pub async fn push_disable(
        &self,
        host: &str,
        username: &str,
        service: &str,
        node: Option<&str>,
    ) -> Result<u64, StorageError> {
        let removed = with_pool!(self, pool => {
            match node {
                Some(node) => sqlx::query(DELETE_NODE).bind(host).bind(username).bind(service).bind(node).execute(pool).await?,
                None => sqlx::query(DELETE_SERVICE).bind(host).bind(username).bind(service).execute(pool).await?,
            }
            .rows_affected()
        });
        Ok(removed)
    }

    /// The account's registrations, oldest first.
    pub async fn push_registrations(
        &self,
        host: &str,
        username: &str,
    ) -> Result<Vec<PushRegistration>, StorageError> {
        let rows: Vec<(String, String, Option<String>, bool)> = with_pool!(self, pool => {
            sqlx::query_as(SELECT).bind(host).bind(username).fetch_all(pool).await?
        });
        Ok(rows
            .into_iter()
            .map(|(service, node, options, include_body)| PushRegistration {
                service,
                node,
                options,
                include_body,
            })
            .collect())
    }
}
