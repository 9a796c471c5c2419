//! XEP-0313 message archives of accounts: one row per message per owner, keyed by the
//! XEP-0359 stanza-id the owner saw (unix microseconds made unique, so id order is time
//! order), written in batches by the archive module's writer task and paged with XEP-0059.

use sqlx::AssertSqlSafe;

use super::{Storage, StorageError};

/// A message to archive in one owner's archive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArchiveRow {
    pub host: String,
    pub username: String,
    pub id: i64,
    /// The other party's bare JID.
    pub peer: String,
    /// The other party's resource, empty when none.
    pub peer_resource: String,
    /// Sent by the owner (true) or received.
    pub outgoing: bool,
    /// The sender's id for the message (its origin-id, else its `id`), which a XEP-0424
    /// retraction names; empty when none.
    pub origin_id: String,
    /// Its `<body/>` text (empty when none): what full-text search looks in.
    pub body: String,
    /// The message as XML text.
    pub stanza: String,
}

/// A XEP-0424 retraction to apply to one owner's archive: the messages with `peer` in
/// direction `outgoing` whose sender's id is `origin_id` become tombstones.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Retraction {
    pub host: String,
    pub username: String,
    pub peer: String,
    pub outgoing: bool,
    pub origin_id: String,
}

/// A message read back from an archive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArchivedMessage {
    pub id: i64,
    pub peer: String,
    pub peer_resource: String,
    pub outgoing: bool,
    pub stanza: String,
}

/// Which messages of an archive a query is about (XEP-0313 §4.1 filters). Bounds are
/// inclusive for `start`/`end` (ids are microsecond times), exclusive for the id bounds.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ArchiveFilter {
    /// Bare JID, and the resource when the filter named a full JID.
    pub peer: Option<(String, Option<String>)>,
    pub start: Option<i64>,
    pub end: Option<i64>,
    pub after_id: Option<i64>,
    pub before_id: Option<i64>,
    /// Only these ids (XEP-0313 `#extended`).
    pub ids: Option<Vec<i64>>,
    /// XEP-0431: only messages whose body matches.
    pub fulltext: Option<FullText>,
}

/// A full-text query, already written in each backend's syntax from the same terms
/// (`modules::mam::fulltext`): every term must match.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FullText {
    /// An SQLite FTS5 MATCH expression.
    pub fts5: String,
    /// A PostgreSQL tsquery (`to_tsquery('simple', ..)`).
    pub tsquery: String,
}

/// Where a page starts (XEP-0059 §2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PageFrom {
    /// The first items of the set.
    Start,
    /// Items after this id.
    After(i64),
    /// The items just before this id (paging backwards).
    Before(i64),
    /// The last items of the set (an empty `<before/>`).
    Last,
    /// Items from this position of the set (XEP-0059 §2.4).
    Index(u64),
}

/// One page of a query.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArchivePage {
    /// Oldest first.
    pub messages: Vec<ArchivedMessage>,
    /// How many messages the whole filtered set holds.
    pub count: u64,
    /// The position of the page's first message in the set.
    pub first_index: Option<u64>,
    /// No more messages beyond this page in the paging direction.
    pub complete: bool,
}

type Row = (i64, String, String, bool, String);

const INSERT: &str = "INSERT INTO archive_messages \
                      (host, username, id, peer, peer_resource, outgoing, origin_id, stanza, body) \
                      SELECT $1, $2, $3, $4, $5, $6, $7, $8, $9 \
                      WHERE EXISTS (SELECT 1 FROM accounts WHERE host = $1 AND username = $2) \
                      ON CONFLICT DO NOTHING";
const HAS_ID: &str = "SELECT COUNT(*) FROM archive_messages WHERE host = $1 AND username = $2 AND id = $3";
const BOUNDS: &str = "SELECT MIN(id), MAX(id) FROM archive_messages WHERE host = $1 AND username = $2";
const PURGE: &str = "DELETE FROM archive_messages WHERE host = $1 AND username = $2";
const RETRACTED: &str = "SELECT id, stanza FROM archive_messages WHERE host = $1 AND username = $2 \
                         AND peer = $3 AND outgoing = $4 AND origin_id = $5";
const TOMBSTONE: &str =
    "UPDATE archive_messages SET stanza = $4, body = '' WHERE host = $1 AND username = $2 AND id = $3";
const EXPIRE: &str = "DELETE FROM archive_messages WHERE id < $1";

/// A value bound to a placeholder of a query built at runtime.
pub(super) enum Bind<'a> {
    Int(i64),
    Text(&'a str),
}

/// Where an archive lives: accounts' (`archive_messages`, owned by host + username) or
/// rooms' (`room_archive_messages`, owned by host + room). The table and column names are
/// constants, never input.
pub(super) struct Table {
    pub messages: &'static str,
    /// The owner's column beside `host`.
    pub owner: &'static str,
    /// The SQLite FTS5 table mirroring the bodies.
    pub fts: &'static str,
    /// The `with` filter: the column of the bare JID (none: rooms filter by nick only) and
    /// of the resource.
    pub peer: Option<&'static str>,
    pub resource: &'static str,
    /// The columns a page reads.
    pub columns: &'static str,
}

pub(super) const ACCOUNTS: Table = Table {
    messages: "archive_messages",
    owner: "username",
    fts: "archive_fts",
    peer: Some("peer"),
    resource: "peer_resource",
    columns: "id, peer, peer_resource, outgoing, stanza",
};

/// The WHERE clause of `filter` on one owner's archive, with its values in placeholder order.
fn where_clause<'a>(
    table: &Table,
    host: &'a str,
    owner: &'a str,
    filter: &'a ArchiveFilter,
    postgres: bool,
) -> (String, Vec<Bind<'a>>) {
    let mut sql = format!("host = $1 AND {} = $2", table.owner);
    let mut binds = vec![Bind::Text(host), Bind::Text(owner)];
    let mut add = |sql: &mut String, clause: &str, value: Bind<'a>| {
        binds.push(value);
        sql.push_str(&clause.replace('?', &format!("${}", binds.len())));
    };
    if let Some((peer, resource)) = &filter.peer {
        if let Some(column) = table.peer {
            add(&mut sql, &format!(" AND {column} = ?"), Bind::Text(peer));
        }
        if let Some(resource) = resource {
            add(
                &mut sql,
                &format!(" AND {} = ?", table.resource),
                Bind::Text(resource),
            );
        }
    }
    for (bound, clause) in [
        (filter.start, " AND id >= ?"),
        (filter.end, " AND id <= ?"),
        (filter.after_id, " AND id > ?"),
        (filter.before_id, " AND id < ?"),
    ] {
        if let Some(v) = bound {
            add(&mut sql, clause, Bind::Int(v));
        }
    }
    if let Some(ft) = &filter.fulltext {
        if postgres {
            add(
                &mut sql,
                " AND body_tsv @@ to_tsquery('simple', ?)",
                Bind::Text(&ft.tsquery),
            );
        } else {
            // The owner's placeholders again: FTS5 filters its own copy of the owner.
            add(
                &mut sql,
                &format!(
                    " AND id IN (SELECT rowid FROM {fts} WHERE {fts} MATCH ? AND host = $1 AND {owner} = $2)",
                    fts = table.fts,
                    owner = table.owner
                ),
                Bind::Text(&ft.fts5),
            );
        }
    }
    if let Some(ids) = &filter.ids {
        if ids.is_empty() {
            sql.push_str(" AND 1 = 0");
        } else {
            sql.push_str(" AND id IN (");
            for (i, id) in ids.iter().enumerate() {
                if i > 0 {
                    sql.push_str(", ");
                }
                add(&mut sql, "?", Bind::Int(*id));
            }
            sql.push(')');
        }
    }
    (sql, binds)
}

/// Binds `$binds` in order to the sqlx query `$q`.
macro_rules! bind_all {
    ($q:expr, $binds:expr) => {{
        let mut q = $q;
        for b in $binds.iter() {
            q = match b {
                Bind::Int(i) => q.bind(*i),
                Bind::Text(s) => q.bind(*s),
            };
        }
        q
    }};
}

impl Storage {
    /// Appends messages to their owners' archives in one transaction; a row whose owner
    /// does not exist (any more) is skipped. Returns how many were stored.
    pub async fn archive_append(&self, rows: &[ArchiveRow]) -> Result<u64, StorageError> {
        if rows.is_empty() {
            return Ok(0);
        }
        let stored = with_pool!(self, pool => {
            let mut tx = pool.begin().await?;
            let mut stored = 0;
            for row in rows {
                stored += sqlx::query(INSERT)
                    .bind(&row.host)
                    .bind(&row.username)
                    .bind(row.id)
                    .bind(&row.peer)
                    .bind(&row.peer_resource)
                    .bind(row.outgoing)
                    .bind(&row.origin_id)
                    .bind(&row.stanza)
                    .bind(&row.body)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected();
            }
            tx.commit().await?;
            stored
        });
        Ok(stored)
    }

    /// Whether the account's archive holds a message with this id.
    pub async fn archive_has_id(&self, host: &str, username: &str, id: i64) -> Result<bool, StorageError> {
        let n: i64 = with_pool!(self, pool => {
            sqlx::query_scalar(HAS_ID).bind(host).bind(username).bind(id).fetch_one(pool).await?
        });
        Ok(n > 0)
    }

    /// The ids of the account's oldest and newest archived messages, if any.
    pub async fn archive_bounds(
        &self,
        host: &str,
        username: &str,
    ) -> Result<Option<(i64, i64)>, StorageError> {
        let (min, max): (Option<i64>, Option<i64>) = with_pool!(self, pool => {
            sqlx::query_as(BOUNDS).bind(host).bind(username).fetch_one(pool).await?
        });
        Ok(min.zip(max))
    }

    /// Deletes the account's whole archive; returns how many messages it held.
    pub async fn archive_purge(&self, host: &str, username: &str) -> Result<u64, StorageError> {
        let n = with_pool!(self, pool => {
            sqlx::query(PURGE).bind(host).bind(username).execute(pool).await?.rows_affected()
        });
        Ok(n)
    }

    /// Applies a retraction: each matching message's text becomes `tombstone(text)` (its
    /// id and place stay). Returns how many were replaced.
    pub async fn archive_retract(
        &self,
        r: &Retraction,
        tombstone: impl Fn(&str) -> Option<String>,
    ) -> Result<u64, StorageError> {
        if r.origin_id.is_empty() {
            return Ok(0);
        }
        let n = with_pool!(self, pool => {
            let mut tx = pool.begin().await?;
            let rows: Vec<(i64, String)> = sqlx::query_as(RETRACTED)
                .bind(&r.host)
                .bind(&r.username)
                .bind(&r.peer)
                .bind(r.outgoing)
                .bind(&r.origin_id)
                .fetch_all(&mut *tx)
                .await?;
            let mut n = 0;
            for (id, text) in rows {
                if let Some(replaced) = tombstone(&text) {
                    n += sqlx::query(TOMBSTONE)
                        .bind(&r.host)
                        .bind(&r.username)
                        .bind(id)
                        .bind(&replaced)
                        .execute(&mut *tx)
                        .await?
                        .rows_affected();
                }
            }
            tx.commit().await?;
            n
        });
        Ok(n)
    }

    /// The largest id any account's archive holds.
    pub async fn archive_max_id(&self) -> Result<Option<i64>, StorageError> {
        let max: Option<i64> = with_pool!(self, pool => {
            sqlx::query_scalar("SELECT MAX(id) FROM archive_messages").fetch_one(pool).await?
        });
        Ok(max)
    }

    /// Deletes every account's messages older than `before_id` (retention); returns how many.
    pub async fn archive_expire(&self, before_id: i64) -> Result<u64, StorageError> {
        let n = with_pool!(self, pool => {
            sqlx::query(EXPIRE).bind(before_id).execute(pool).await?.rows_affected()
        });
        Ok(n)
    }

    /// One page of at most `max` messages of the account's archive matching `filter`.
    pub async fn archive_query(
        &self,
        host: &str,
        username: &str,
        filter: &ArchiveFilter,
        from: PageFrom,
        max: usize,
    ) -> Result<ArchivePage, StorageError> {
        let page = self
            .archive_page::<Row>(&ACCOUNTS, host, username, filter, from, max, |r| r.0)
            .await?;
        Ok(ArchivePage {
            messages: page
                .rows
                .into_iter()
                .map(|(id, peer, peer_resource, outgoing, stanza)| ArchivedMessage {
                    id,
                    peer,
                    peer_resource,
                    outgoing,
                    stanza,
                })
                .collect(),
            count: page.count,
            first_index: page.first_index,
            complete: page.complete,
        })
    }

    /// One page of `table`'s archive of (host, owner): rows of `table.columns`, oldest first;
    /// `id_of` reads a row's id.
    #[allow(clippy::too_many_arguments)]
    pub(super) async fn archive_page<R>(
        &self,
        table: &Table,
        host: &str,
        owner: &str,
        filter: &ArchiveFilter,
        from: PageFrom,
        max: usize,
        id_of: fn(&R) -> i64,
    ) -> Result<Page<R>, StorageError>
    where
        R: for<'r> sqlx::FromRow<'r, sqlx::sqlite::SqliteRow>
            + for<'r> sqlx::FromRow<'r, sqlx::postgres::PgRow>
            + Send
            + Unpin,
    {
        let postgres = self.backend_name() == "postgres";
        let (base, binds) = where_clause(table, host, owner, filter, postgres);
        let messages = table.messages;
        let count_sql = format!("SELECT COUNT(*) FROM {messages} WHERE {base}");
        let count: i64 = with_pool!(self, pool => {
            bind_all!(sqlx::query_scalar(AssertSqlSafe(count_sql.clone())), binds)
                .fetch_one(pool)
                .await?
        });
        let count = count.unsigned_abs();
        if max == 0 {
            return Ok(Page {
                rows: Vec::new(),
                count,
                first_index: None,
                complete: count == 0,
            });
        }
        let limit = max + 1;
        let n = binds.len() + 1;
        let (bound, descending, offset) = match from {
            PageFrom::Start => (None, false, 0),
            PageFrom::After(id) => (Some((format!(" AND id > ${n}"), id)), false, 0),
            PageFrom::Before(id) => (Some((format!(" AND id < ${n}"), id)), true, 0),
            PageFrom::Last => (None, true, 0),
            PageFrom::Index(i) => (None, false, i),
        };
        let page_sql = format!(
            "SELECT {} FROM {messages} WHERE {base}{} ORDER BY id {} LIMIT {limit} OFFSET {offset}",
            table.columns,
            bound.as_ref().map_or("", |b| b.0.as_str()),
            if descending { "DESC" } else { "ASC" },
        );
        let mut rows: Vec<R> = with_pool!(self, pool => {
            let q = bind_all!(sqlx::query_as(AssertSqlSafe(page_sql.clone())), binds);
            let q = match &bound {
                Some((_, id)) => q.bind(*id),
                None => q,
            };
            q.fetch_all(pool).await?
        });
        let complete = rows.len() <= max;
        rows.truncate(max);
        if descending {
            rows.reverse();
        }
        let first_index = match (rows.first(), from) {
            (None, _) => None,
            (Some(_), PageFrom::Start) => Some(0),
            (Some(_), PageFrom::Index(i)) => Some(i),
            (Some(first), _) => {
                let before_sql = format!("SELECT COUNT(*) FROM {messages} WHERE {base} AND id < ${n}");
                let before: i64 = with_pool!(self, pool => {
                    bind_all!(sqlx::query_scalar(AssertSqlSafe(before_sql.clone())), binds)
                        .bind(id_of(first))
                        .fetch_one(pool)
                        .await?
                });
                Some(before.unsigned_abs())
            }
        };
        Ok(Page {
            rows,
            count,
            first_index,
            complete,
        })
    }
}

/// A page of rows of either archive (see [`ArchivePage`]).
pub(super) struct Page<R> {
    pub rows: Vec<R>,
    pub count: u64,
    pub first_index: Option<u64>,
    pub complete: bool,
}

/// XEP-0441 preferences as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredPrefs {
    /// "always", "never" or "roster".
    pub default_mode: String,
    pub always: Vec<String>,
    pub never: Vec<String>,
}

const PREFS_GET: &str = "SELECT default_mode, always_jids, never_jids FROM archive_prefs \
                         WHERE host = $1 AND username = $2";
const PREFS_SET: &str = "INSERT INTO archive_prefs (host, username, default_mode, always_jids, never_jids) \
                         SELECT $1, $2, $3, $4, $5 \
                         WHERE EXISTS (SELECT 1 FROM accounts WHERE host = $1 AND username = $2) \
                         ON CONFLICT (host, username) DO UPDATE SET default_mode = excluded.default_mode, \
                         always_jids = excluded.always_jids, never_jids = excluded.never_jids";

fn lines(s: &str) -> Vec<String> {
    s.lines().filter(|l| !l.is_empty()).map(str::to_string).collect()
}

impl Storage {
    /// The account's archiving preferences, if it ever set them.
    pub async fn archive_prefs(
        &self,
        host: &str,
        username: &str,
    ) -> Result<Option<StoredPrefs>, StorageError> {
        let row: Option<(String, String, String)> = with_pool!(self, pool => {
            sqlx::query_as(PREFS_GET).bind(host).bind(username).fetch_optional(pool).await?
        });
        Ok(row.map(|(default_mode, always, never)| StoredPrefs {
            default_mode,
            always: lines(&always),
            never: lines(&never),
        }))
    }

    /// Replaces the account's archiving preferences; false when the account does not exist.
    pub async fn archive_prefs_set(
        &self,
        host: &str,
        username: &str,
        prefs: &StoredPrefs,
    ) -> Result<bool, StorageError> {
        let always = prefs.always.join("\n");
        let never = prefs.never.join("\n");
        let n = with_pool!(self, pool => {
            sqlx::query(PREFS_SET)
                .bind(host)
                .bind(username)
                .bind(&prefs.default_mode)
                .bind(&always)
                .bind(&never)
                .execute(pool)
                .await?
                .rows_affected()
        });
        Ok(n > 0)
    }
}
