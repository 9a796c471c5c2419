//! Whole-account reads and writes for XEP-0227 export and import (`crate::portable`).
//!
//! [`Storage::portable_load`] reads everything one account owns in ONE transaction (a
//! consistent snapshot per user). [`Storage::portable_import`] makes an account hold exactly
//! what a file says, in ONE transaction: it reads the current state first and writes only the
//! parts that differ, so importing the same data again changes nothing (not even versions),
//! and a failure leaves the account as it was. Rows are written with multi-row INSERTs.

use crate::sasl::{HashAlg, ScramCredentials};

use super::notes::StoredNote;
use super::privacy::{StoredPrivacy, StoredPrivacyItem, StoredPrivacyList};
use super::roster::StoredItem;
use super::{Storage, StorageError, now_unix};

/// Rows per multi-row INSERT: at most 8 parameters a row, far below both backends' limits.
const BATCH: usize = 256;

/// One offline message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortableOffline {
    /// Unix milliseconds when it was stored; `None` on import: "now" (or, when the account
    /// already holds the same message, its stamp).
    pub stamp_ms: Option<i64>,
    /// The sender's full JID.
    pub sender: String,
    /// The stanza as XML text, without the delay the server adds on delivery.
    pub stanza: String,
}

/// Everything an account owns that the portable format carries (notes apart: see
/// [`NoteCodec`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PortableUser {
    /// One per hash. On import an empty list keeps the account's current credentials.
    pub credentials: Vec<ScramCredentials>,
    /// Sorted by contact; groups sorted and distinct.
    pub roster: Vec<StoredItem>,
    /// Inbound subscription requests: (contact, presence stanza), sorted by contact.
    pub pending_in: Vec<(String, String)>,
    pub vcard: Option<String>,
    /// (namespace, its elements concatenated), sorted by namespace.
    pub private: Vec<(String, String)>,
    /// Oldest first.
    pub offline: Vec<PortableOffline>,
    /// Lists sorted by name, items by order. List versions are ignored on import.
    pub privacy: StoredPrivacy,
    /// XEP-0163 nodes, sorted by node, items oldest first, affiliations by JID.
    pub pep: Vec<super::pep::StoredPepNode>,
}

/// Seals and opens roster notes: storage never sees plaintext, and the keys live in
/// `modules::roster::notes`.
pub trait NoteCodec: Sync {
    /// The plaintext of a stored note, `None` if it cannot be decrypted.
    fn open(&self, host: &str, username: &str, note: &StoredNote) -> Option<String>;
    fn seal(&self, host: &str, username: &str, contact: &str, text: &str) -> StoredNote;
}

/// Notes to import: the codec, and (contact, text) pairs sorted by contact, each contact
/// an item of the imported roster.
pub struct NotesImport<'a> {
    pub codec: &'a dyn NoteCodec,
    pub notes: &'a [(String, String)],
}

/// What [`Storage::portable_import`] did to the account.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImportOutcome {
    Created,
    Updated,
    Unchanged,
}

type CredRow = (String, Vec<u8>, i64, Vec<u8>, Vec<u8>);
type ItemRow = (String, Option<String>, String, bool, bool);
type PrivacyItemRow = (String, String, String, String, i64, i64);
type NoteRow = (String, String, Vec<u8>, Vec<u8>);

/// The rows of one account, as selected.
struct Raw {
    creds: Vec<CredRow>,
    items: Vec<ItemRow>,
    groups: Vec<(String, String)>,
    pending: Vec<(String, String)>,
    vcard: Option<String>,
    private: Vec<(String, String)>,
    offline: Vec<(i64, String, String)>,
    default_list: Option<Option<String>>,
    lists: Vec<(String, i64)>,
    privacy_items: Vec<PrivacyItemRow>,
    notes: Vec<NoteRow>,
}

const SEL_CREDS: &str = "SELECT mechanism, salt, iterations, stored_key, server_key FROM credentials \
                         WHERE host = $1 AND username = $2 ORDER BY mechanism";
const SEL_ITEMS: &str = "SELECT contact, name, subscription, ask, approved FROM roster_items \
                         WHERE host = $1 AND username = $2 ORDER BY contact";
const SEL_GROUPS: &str = "SELECT contact, name FROM roster_groups \
                          WHERE host = $1 AND username = $2 ORDER BY contact, name";
const SEL_PENDING: &str = "SELECT contact, stanza FROM roster_pending_in \
                           WHERE host = $1 AND username = $2 ORDER BY contact";
const SEL_VCARD: &str = "SELECT vcard FROM vcards WHERE host = $1 AND username = $2";
const SEL_PRIVATE: &str = "SELECT namespace, data FROM private_storage \
                           WHERE host = $1 AND username = $2 ORDER BY namespace";
const SEL_OFFLINE: &str = "SELECT stamp_ms, sender, stanza FROM offline_messages \
                           WHERE host = $1 AND username = $2 ORDER BY seq";
const SEL_DEFAULT: &str = "SELECT default_list FROM privacy_users WHERE host = $1 AND username = $2";
const SEL_LISTS: &str =
    "SELECT name, version FROM privacy_lists WHERE host = $1 AND username = $2 ORDER BY name";
const SEL_PRIVACY_ITEMS: &str = "SELECT list, kind, value, action, item_order, selectors FROM privacy_items \
                                 WHERE host = $1 AND username = $2 ORDER BY list, item_order";
const SEL_NOTES: &str = "SELECT contact, key_id, nonce, ciphertext FROM roster_notes \
                         WHERE host = $1 AND username = $2 ORDER BY contact";

/// Selects every row of the account inside the transaction `$tx`.
macro_rules! load_raw {
    ($tx:expr, $host:expr, $user:expr) => {{
        let (h, u) = ($host, $user);
        Raw {
            creds: sqlx::query_as(SEL_CREDS)
                .bind(h)
                .bind(u)
                .fetch_all(&mut *$tx)
                .await?,
            items: sqlx::query_as(SEL_ITEMS)
                .bind(h)
                .bind(u)
                .fetch_all(&mut *$tx)
                .await?,
            groups: sqlx::query_as(SEL_GROUPS)
                .bind(h)
                .bind(u)
                .fetch_all(&mut *$tx)
                .await?,
            pending: sqlx::query_as(SEL_PENDING)
                .bind(h)
                .bind(u)
                .fetch_all(&mut *$tx)
                .await?,
            vcard: sqlx::query_scalar(SEL_VCARD)
                .bind(h)
                .bind(u)
                .fetch_optional(&mut *$tx)
                .await?,
            private: sqlx::query_as(SEL_PRIVATE)
                .bind(h)
                .bind(u)
                .fetch_all(&mut *$tx)
                .await?,
            offline: sqlx::query_as(SEL_OFFLINE)
                .bind(h)
                .bind(u)
                .fetch_all(&mut *$tx)
                .await?,
            default_list: sqlx::query_scalar(SEL_DEFAULT)
                .bind(h)
                .bind(u)
                .fetch_optional(&mut *$tx)
                .await?,
            lists: sqlx::query_as(SEL_LISTS)
                .bind(h)
                .bind(u)
                .fetch_all(&mut *$tx)
                .await?,
            privacy_items: sqlx::query_as(SEL_PRIVACY_ITEMS)
                .bind(h)
                .bind(u)
                .fetch_all(&mut *$tx)
                .await?,
            notes: sqlx::query_as(SEL_NOTES)
                .bind(h)
                .bind(u)
                .fetch_all(&mut *$tx)
                .await?,
        }
    }};
}

/// A query builder for the pool's backend (names the database type for inference).
fn builder<DB: sqlx::Database>(_pool: &sqlx::Pool<DB>, sql: &str) -> sqlx::QueryBuilder<DB>
where
    DB::Arguments: Default,
{
    sqlx::QueryBuilder::new(sql)
}

impl Storage {
    /// Everything `username@host` owns, read in one transaction, with its notes still
    /// encrypted. `None` if there is no such account.
    pub async fn portable_load(
        &self,
        host: &str,
        username: &str,
    ) -> Result<Option<(PortableUser, Vec<StoredNote>)>, StorageError> {
        const EXISTS: &str = "SELECT 1 FROM accounts WHERE host = $1 AND username = $2";
        let raw = with_pool!(self, pool => {
            let mut tx = pool.begin().await?;
            let found: Option<i32> = sqlx::query_scalar(EXISTS)
                .bind(host).bind(username).fetch_optional(&mut *tx).await?;
            if found.is_none() {
                tx.rollback().await?;
                return Ok(None);
            }
            let raw = load_raw!(tx, host, username);
            let pep = pep_rows!(tx, host, username);
            tx.commit().await?;
            (raw, pep)
        });
        let (raw, pep) = raw;
        let (mut user, notes) = assemble(raw)?;
        user.pep = super::pep::assemble_pep(pep);
        Ok(Some((user, notes)))
    }

    /// Makes the account hold exactly `user` (creating it if needed) in one transaction,
    /// writing only what differs. With `notes`, the notes of the roster become those given;
    /// without, stored notes are left alone (those of removed items go with them).
    pub async fn portable_import(
        &self,
        host: &str,
        username: &str,
        user: &PortableUser,
        notes: Option<NotesImport<'_>>,
    ) -> Result<ImportOutcome, StorageError> {
        const CREATE: &str = "INSERT INTO accounts (host, username, created_at) VALUES ($1, $2, $3) \
                              ON CONFLICT (host, username) DO NOTHING";
        with_pool!(self, pool => {
            let mut tx = pool.begin().await?;
            // A write first: SQLite takes its write lock up front, so the snapshot read
            // below cannot go stale before our writes.
            let created = sqlx::query(CREATE)
                .bind(host).bind(username).bind(now_unix())
                .execute(&mut *tx).await?
                .rows_affected() == 1;
            // A new account owns no rows yet (they all reference it): nothing to read.
            let (current, current_notes) = if created {
                (PortableUser::default(), Vec::new())
            } else {
                let (mut user, notes) = assemble(load_raw!(tx, host, username))?;
                user.pep = super::pep::assemble_pep(pep_rows!(tx, host, username));
                (user, notes)
            };
            let plan = Plan::new(host, username, &current, &current_notes, user, notes.as_ref());
            if plan.is_empty() {
                if created {
                    tx.commit().await?;
                    return Ok(ImportOutcome::Created);
                }
                tx.rollback().await?;
                return Ok(ImportOutcome::Unchanged);
            }
            if let Some(creds) = plan.credentials {
                sqlx::query("DELETE FROM credentials WHERE host = $1 AND username = $2")
                    .bind(host).bind(username).execute(&mut *tx).await?;
                for chunk in creds.chunks(BATCH) {
                    let mut q = builder(pool, "INSERT INTO credentials (host, username, mechanism, \
                        salt, iterations, stored_key, server_key, updated_at) ");
                    q.push_values(chunk, |mut b, c| {
                        b.push_bind(host).push_bind(username).push_bind(c.alg.mechanism_name())
                            .push_bind(c.salt.clone()).push_bind(i64::from(c.iterations))
                            .push_bind(c.stored_key.clone()).push_bind(c.server_key.clone())
                            .push_bind(now_unix());
                    });
                    q.build().execute(&mut *tx).await?;
                }
            }
            for contact in &plan.roster_delete {
                sqlx::query("DELETE FROM roster_items WHERE host = $1 AND username = $2 AND contact = $3")
                    .bind(host).bind(username).bind(*contact).execute(&mut *tx).await?;
            }
            for contact in &plan.groups_clear {
                sqlx::query("DELETE FROM roster_groups WHERE host = $1 AND username = $2 AND contact = $3")
                    .bind(host).bind(username).bind(*contact).execute(&mut *tx).await?;
            }
            for chunk in plan.roster_upsert.chunks(BATCH) {
                let mut q = builder(pool, "INSERT INTO roster_items \
                    (host, username, contact, name, subscription, ask, approved) ");
                q.push_values(chunk, |mut b, it| {
                    b.push_bind(host).push_bind(username).push_bind(it.contact.as_str())
                        .push_bind(it.name.as_deref()).push_bind(it.subscription.as_str())
                        .push_bind(it.ask).push_bind(it.approved);
                });
                q.push(" ON CONFLICT (host, username, contact) DO UPDATE SET name = excluded.name, \
                    subscription = excluded.subscription, ask = excluded.ask, approved = excluded.approved");
                q.build().execute(&mut *tx).await?;
            }
            let groups: Vec<(&str, &str)> = plan.groups_insert.iter()
                .flat_map(|it| it.groups.iter().map(|g| (it.contact.as_str(), g.as_str())))
                .collect();
            for chunk in groups.chunks(BATCH) {
                let mut q = builder(pool, "INSERT INTO roster_groups (host, username, contact, name) ");
                q.push_values(chunk, |mut b, (contact, group)| {
                    b.push_bind(host).push_bind(username).push_bind(*contact).push_bind(*group);
                });
                q.build().execute(&mut *tx).await?;
            }
            for contact in &plan.notes_delete {
                sqlx::query("DELETE FROM roster_notes WHERE host = $1 AND username = $2 AND contact = $3")
                    .bind(host).bind(username).bind(*contact).execute(&mut *tx).await?;
            }
            for chunk in plan.notes_upsert.chunks(BATCH) {
                let mut q = builder(pool, "INSERT INTO roster_notes \
                    (host, username, contact, key_id, nonce, ciphertext) ");
                q.push_values(chunk, |mut b, n| {
                    b.push_bind(host).push_bind(username).push_bind(n.contact.as_str())
                        .push_bind(n.key_id.as_str()).push_bind(n.nonce.clone())
                        .push_bind(n.ciphertext.clone());
                });
                q.push(" ON CONFLICT (host, username, contact) DO UPDATE SET key_id = excluded.key_id, \
                    nonce = excluded.nonce, ciphertext = excluded.ciphertext");
                q.build().execute(&mut *tx).await?;
            }
            if plan.bump_roster_version {
                sqlx::query("INSERT INTO roster_versions (host, username, version) VALUES ($1, $2, 1) \
                    ON CONFLICT (host, username) DO UPDATE SET version = roster_versions.version + 1")
                    .bind(host).bind(username).execute(&mut *tx).await?;
            }
            if let Some(pending) = plan.pending_in {
                sqlx::query("DELETE FROM roster_pending_in WHERE host = $1 AND username = $2")
                    .bind(host).bind(username).execute(&mut *tx).await?;
                for chunk in pending.chunks(BATCH) {
                    let mut q = builder(pool, "INSERT INTO roster_pending_in \
                        (host, username, contact, stanza, created_at) ");
                    q.push_values(chunk, |mut b, (contact, stanza)| {
                        b.push_bind(host).push_bind(username).push_bind(contact.as_str())
                            .push_bind(stanza.as_str()).push_bind(now_unix());
                    });
                    q.build().execute(&mut *tx).await?;
                }
            }
            match plan.vcard {
                Some(Some(vcard)) => {
                    sqlx::query("INSERT INTO vcards (host, username, vcard, updated_at) VALUES ($1, $2, $3, $4) \
                        ON CONFLICT (host, username) DO UPDATE SET vcard = excluded.vcard, \
                        updated_at = excluded.updated_at")
                        .bind(host).bind(username).bind(vcard).bind(now_unix())
                        .execute(&mut *tx).await?;
                }
                Some(None) => {
                    sqlx::query("DELETE FROM vcards WHERE host = $1 AND username = $2")
                        .bind(host).bind(username).execute(&mut *tx).await?;
                }
                None => {}
            }
            if let Some(private) = plan.private {
                sqlx::query("DELETE FROM private_storage WHERE host = $1 AND username = $2")
                    .bind(host).bind(username).execute(&mut *tx).await?;
                for chunk in private.chunks(BATCH) {
                    let mut q = builder(pool, "INSERT INTO private_storage \
                        (host, username, namespace, data, updated_at) ");
                    q.push_values(chunk, |mut b, (ns, data)| {
                        b.push_bind(host).push_bind(username).push_bind(ns.as_str())
                            .push_bind(data.as_str()).push_bind(now_unix());
                    });
                    q.build().execute(&mut *tx).await?;
                }
            }
            if let Some(offline) = &plan.offline {
                sqlx::query("DELETE FROM offline_messages WHERE host = $1 AND username = $2")
                    .bind(host).bind(username).execute(&mut *tx).await?;
                if !offline.is_empty() {
                    // New numbers after every one handed out: XEP-0013 nodes are never reused.
                    let count = i64::try_from(offline.len()).unwrap_or(i64::MAX);
                    let last: i64 = sqlx::query_scalar(
                        "INSERT INTO offline_counters (host, username, last_seq) VALUES ($1, $2, $3) \
                         ON CONFLICT (host, username) DO UPDATE \
                         SET last_seq = offline_counters.last_seq + excluded.last_seq RETURNING last_seq")
                        .bind(host).bind(username).bind(count)
                        .fetch_one(&mut *tx).await?;
                    let first = last - count + 1;
                    let rows: Vec<(i64, &(i64, &str, &str))> =
                        (first..).zip(offline.iter()).collect();
                    for chunk in rows.chunks(BATCH) {
                        let mut q = builder(pool, "INSERT INTO offline_messages \
                            (host, username, seq, stamp_ms, sender, stanza) ");
                        q.push_values(chunk, |mut b, (seq, (stamp, sender, stanza))| {
                            b.push_bind(host).push_bind(username).push_bind(*seq)
                                .push_bind(*stamp).push_bind(*sender).push_bind(*stanza);
                        });
                        q.build().execute(&mut *tx).await?;
                    }
                }
            }
            if let Some(privacy) = plan.privacy {
                let counter: Option<i64> = sqlx::query_scalar(
                    "SELECT counter FROM privacy_users WHERE host = $1 AND username = $2")
                    .bind(host).bind(username).fetch_optional(&mut *tx).await?;
                let mut counter = counter.unwrap_or(0);
                sqlx::query("DELETE FROM privacy_lists WHERE host = $1 AND username = $2")
                    .bind(host).bind(username).execute(&mut *tx).await?;
                // Each list a fresh version: a list's versions never repeat (0006_privacy.sql).
                let mut lists = Vec::with_capacity(privacy.lists.len());
                for l in &privacy.lists {
                    counter += 1;
                    lists.push((l.name.as_str(), counter));
                }
                sqlx::query("INSERT INTO privacy_users (host, username, default_list, counter) \
                    VALUES ($1, $2, $3, $4) ON CONFLICT (host, username) DO UPDATE \
                    SET default_list = excluded.default_list, counter = excluded.counter")
                    .bind(host).bind(username).bind(privacy.default_list.as_deref()).bind(counter)
                    .execute(&mut *tx).await?;
                for chunk in lists.chunks(BATCH) {
                    let mut q = builder(pool, "INSERT INTO privacy_lists (host, username, name, version) ");
                    q.push_values(chunk, |mut b, (name, version)| {
                        b.push_bind(host).push_bind(username).push_bind(*name).push_bind(*version);
                    });
                    q.build().execute(&mut *tx).await?;
                }
                let items: Vec<(&str, &StoredPrivacyItem)> = privacy.lists.iter()
                    .flat_map(|l| l.items.iter().map(move |i| (l.name.as_str(), i)))
                    .collect();
                for chunk in items.chunks(BATCH) {
                    let mut q = builder(pool, "INSERT INTO privacy_items \
                        (host, username, list, kind, value, action, item_order, selectors) ");
                    q.push_values(chunk, |mut b, (list, i)| {
                        b.push_bind(host).push_bind(username).push_bind(*list)
                            .push_bind(i.kind.as_str()).push_bind(i.value.as_str())
                            .push_bind(i.action.as_str()).push_bind(i.order).push_bind(i.selectors);
                    });
                    q.build().execute(&mut *tx).await?;
                }
            }
            if let Some(pep) = plan.pep {
                sqlx::query("DELETE FROM pep_nodes WHERE host = $1 AND username = $2")
                    .bind(host).bind(username).execute(&mut *tx).await?;
                pep_insert_all!(tx, host, username, pep);
            }
            tx.commit().await?;
            Ok(if created { ImportOutcome::Created } else { ImportOutcome::Updated })
        })
    }
}

/// The writes that turn `current` into the imported state.
#[derive(Default)]
struct Plan<'a> {
    credentials: Option<&'a [ScramCredentials]>,
    roster_delete: Vec<&'a str>,
    /// Existing items whose groups are rewritten.
    groups_clear: Vec<&'a str>,
    roster_upsert: Vec<&'a StoredItem>,
    /// Items whose groups are inserted (new, or cleared above).
    groups_insert: Vec<&'a StoredItem>,
    notes_delete: Vec<&'a str>,
    notes_upsert: Vec<StoredNote>,
    bump_roster_version: bool,
    pending_in: Option<&'a [(String, String)]>,
    /// Some(None): delete.
    vcard: Option<Option<&'a str>>,
    private: Option<&'a [(String, String)]>,
    /// (stamp_ms, sender, stanza), oldest first.
    offline: Option<Vec<(i64, &'a str, &'a str)>>,
    privacy: Option<&'a StoredPrivacy>,
    pep: Option<&'a [super::pep::StoredPepNode]>,
}

impl<'a> Plan<'a> {
    fn new(
        host: &str,
        username: &str,
        current: &'a PortableUser,
        current_notes: &'a [StoredNote],
        new: &'a PortableUser,
        notes: Option<&NotesImport<'a>>,
    ) -> Plan<'a> {
        let mut plan = Plan::default();
        if !new.credentials.is_empty() && !same_credentials(&current.credentials, &new.credentials) {
            plan.credentials = Some(&new.credentials);
        }
        // Rosters: both sorted by contact, so one merge pass finds the differences.
        let mut old = current.roster.iter().peekable();
        for item in &new.roster {
            while let Some(o) = old.next_if(|o| o.contact < item.contact) {
                plan.roster_delete.push(&o.contact);
            }
            match old.next_if(|o| o.contact == item.contact) {
                Some(o) if o == item => {}
                Some(o) => {
                    // Unchanged groups of a changed item stay as they are.
                    if o.groups != item.groups {
                        plan.groups_clear.push(&item.contact);
                        plan.groups_insert.push(item);
                    }
                    plan.roster_upsert.push(item);
                }
                None => {
                    plan.roster_upsert.push(item);
                    plan.groups_insert.push(item);
                }
            }
        }
        plan.roster_delete.extend(old.map(|o| o.contact.as_str()));
        if let Some(n) = notes {
            let kept: std::collections::HashSet<&str> =
                new.roster.iter().map(|i| i.contact.as_str()).collect();
            let wanted: std::collections::HashMap<&str, &str> =
                n.notes.iter().map(|(c, t)| (c.as_str(), t.as_str())).collect();
            for note in current_notes {
                let contact = note.contact.as_str();
                if !kept.contains(contact) {
                    continue; // goes with its item
                }
                match wanted.get(contact) {
                    None => plan.notes_delete.push(contact),
                    Some(text) => {
                        if n.codec.open(host, username, note).as_deref() != Some(*text) {
                            plan.notes_upsert
                                .push(n.codec.seal(host, username, contact, text));
                        }
                    }
                }
            }
            let had: std::collections::HashSet<&str> =
                current_notes.iter().map(|n| n.contact.as_str()).collect();
            for (contact, text) in n.notes {
                if !had.contains(contact.as_str()) && kept.contains(contact.as_str()) {
                    plan.notes_upsert
                        .push(n.codec.seal(host, username, contact, text));
                }
            }
        }
        plan.bump_roster_version = !plan.roster_delete.is_empty()
            || !plan.roster_upsert.is_empty()
            || !plan.notes_delete.is_empty()
            || !plan.notes_upsert.is_empty();
        if current.pending_in != new.pending_in {
            plan.pending_in = Some(&new.pending_in);
        }
        if current.vcard != new.vcard {
            plan.vcard = Some(new.vcard.as_deref());
        }
        if current.private != new.private {
            plan.private = Some(&new.private);
        }
        let same_offline = current.offline.len() == new.offline.len()
            && current.offline.iter().zip(&new.offline).all(|(o, n)| {
                o.sender == n.sender
                    && o.stanza == n.stanza
                    && (n.stamp_ms.is_none() || n.stamp_ms == o.stamp_ms)
            });
        if !same_offline {
            let now = now_ms();
            plan.offline = Some(
                new.offline
                    .iter()
                    .map(|m| (m.stamp_ms.unwrap_or(now), m.sender.as_str(), m.stanza.as_str()))
                    .collect(),
            );
        }
        if !same_privacy(&current.privacy, &new.privacy) {
            plan.privacy = Some(&new.privacy);
        }
        if current.pep != new.pep {
            plan.pep = Some(&new.pep);
        }
        plan
    }

    fn is_empty(&self) -> bool {
        self.credentials.is_none()
            && !self.bump_roster_version
            && self.pending_in.is_none()
            && self.vcard.is_none()
            && self.private.is_none()
            && self.offline.is_none()
            && self.privacy.is_none()
            && self.pep.is_none()
    }
}

fn same_credentials(a: &[ScramCredentials], b: &[ScramCredentials]) -> bool {
    let sorted = |v: &[ScramCredentials]| {
        let mut v = v.to_vec();
        v.sort_by_key(|c| c.alg.mechanism_name());
        v
    };
    sorted(a) == sorted(b)
}

/// Equal lists and default, whatever the versions.
fn same_privacy(a: &StoredPrivacy, b: &StoredPrivacy) -> bool {
    a.default_list == b.default_list
        && a.lists.len() == b.lists.len()
        && a.lists
            .iter()
            .zip(&b.lists)
            .all(|(x, y)| x.name == y.name && x.items == y.items)
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// Rows to values; fails on a row a CHECK constraint should have kept out.
fn assemble(raw: Raw) -> Result<(PortableUser, Vec<StoredNote>), StorageError> {
    let bad = |index: &str, what: String| {
        StorageError::Database(sqlx::Error::ColumnDecode {
            index: index.into(),
            source: what.into(),
        })
    };
    let mut credentials = Vec::with_capacity(raw.creds.len());
    for (mechanism, salt, iterations, stored_key, server_key) in raw.creds {
        // A mechanism this build does not know is skipped, as SASL would never use it.
        let Some(alg) = HashAlg::from_mechanism_name(&mechanism) else {
            continue;
        };
        let iterations =
            u32::try_from(iterations).map_err(|_| bad("iterations", format!("{iterations} out of range")))?;
        credentials.push(ScramCredentials {
            alg,
            salt,
            iterations,
            stored_key,
            server_key,
        });
    }
    let mut groups = raw.groups.into_iter().peekable();
    let roster = raw
        .items
        .into_iter()
        .map(|(contact, name, subscription, ask, approved)| {
            while groups.next_if(|(c, _)| *c < contact).is_some() {}
            let mut item_groups = Vec::new();
            while let Some((_, g)) = groups.next_if(|(c, _)| *c == contact) {
                item_groups.push(g);
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
    let mut lists: Vec<StoredPrivacyList> = raw
        .lists
        .into_iter()
        .map(|(name, version)| StoredPrivacyList {
            name,
            version,
            items: Vec::new(),
        })
        .collect();
    for (list, kind, value, action, order, selectors) in raw.privacy_items {
        if let Some(l) = lists.iter_mut().find(|l| l.name == list) {
            l.items.push(StoredPrivacyItem {
                kind,
                value,
                action,
                order,
                selectors,
            });
        }
    }
    let user = PortableUser {
        credentials,
        roster,
        pending_in: raw.pending,
        vcard: raw.vcard,
        private: raw.private,
        offline: raw
            .offline
            .into_iter()
            .map(|(stamp, sender, stanza)| PortableOffline {
                stamp_ms: Some(stamp),
                sender,
                stanza,
            })
            .collect(),
        privacy: StoredPrivacy {
            default_list: raw.default_list.flatten(),
            lists,
        },
        // Read beside the rest (`pep_rows!`) by the callers.
        pep: Vec::new(),
    };
    let notes = raw
        .notes
        .into_iter()
        .map(|(contact, key_id, nonce, ciphertext)| StoredNote {
            contact,
            key_id,
            nonce,
            ciphertext,
        })
        .collect();
    Ok((user, notes))
}

#[cfg(test)]
mod tests {
    //! On every backend (PostgreSQL under scripts/pg-test.sh).

    use super::*;
    use crate::storage::tests::{TestDb, creds};

    const HOST: &str = "example.org";

    /// A stand-in for the AES codec: "ciphertext" is the text, and the nonce counts seals.
    struct PlainCodec(std::sync::atomic::AtomicU8);

    impl NoteCodec for PlainCodec {
        fn open(&self, _: &str, _: &str, note: &StoredNote) -> Option<String> {
            String::from_utf8(note.ciphertext.clone()).ok()
        }
        fn seal(&self, _: &str, _: &str, contact: &str, text: &str) -> StoredNote {
            let n = self.0.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            StoredNote {
                contact: contact.into(),
                key_id: "k".into(),
                nonce: vec![n],
                ciphertext: text.as_bytes().to_vec(),
            }
        }
    }

    fn item(contact: &str, groups: &[&str]) -> StoredItem {
        StoredItem {
            contact: contact.into(),
            name: Some(format!("name of {contact}")),
            subscription: "both".into(),
            ask: false,
            approved: false,
            groups: groups.iter().map(|g| g.to_string()).collect(),
        }
    }

    fn user() -> PortableUser {
        PortableUser {
            credentials: vec![creds(HashAlg::Sha1, 1), creds(HashAlg::Sha256, 2)],
            roster: vec![item("a@x", &["g1", "g2"]), item("b@x", &[]), item("c@x", &["g1"])],
            pending_in: vec![(
                "p@x".into(),
                "<presence xmlns='jabber:client' type='subscribe'/>".into(),
            )],
            vcard: Some("<vCard xmlns='vcard-temp'/>".into()),
            private: vec![("urn:a".into(), "<a xmlns='urn:a'/>".into())],
            offline: vec![
                PortableOffline {
                    stamp_ms: Some(5),
                    sender: "s@x/r".into(),
                    stanza: "<message xmlns='jabber:client'><body>1</body></message>".into(),
                },
                PortableOffline {
                    stamp_ms: None,
                    sender: "s@x/r".into(),
                    stanza: "<message xmlns='jabber:client'><body>2</body></message>".into(),
                },
            ],
            privacy: StoredPrivacy {
                default_list: Some("l".into()),
                lists: vec![StoredPrivacyList {
                    name: "l".into(),
                    version: 0,
                    items: vec![StoredPrivacyItem {
                        kind: "jid".into(),
                        value: "spam@x".into(),
                        action: "deny".into(),
                        order: 1,
                        selectors: 0,
                    }],
                }],
            },
            pep: vec![crate::storage::pep::StoredPepNode {
                node: "urn:n".into(),
                config: "access_model=open\n".into(),
                items: vec![crate::storage::pep::StoredPepItem {
                    id: "i".into(),
                    publisher: "u@x".into(),
                    payload: "<p xmlns='urn:n'/>".into(),
                    seq: 1,
                }],
                affiliations: vec![("m@x".into(), "member".into())],
            }],
        }
    }

    /// What `portable_load` gives back for `u` (stamps and versions filled in).
    fn same(loaded: &PortableUser, u: &PortableUser) {
        let mut expect = u.clone();
        for (l, e) in loaded.offline.iter().zip(expect.offline.iter_mut()) {
            e.stamp_ms = e.stamp_ms.or(l.stamp_ms);
        }
        let mut loaded = loaded.clone();
        for l in &mut loaded.privacy.lists {
            l.version = 0;
        }
        assert_eq!(loaded, expect);
    }

    async fn portable_import_twice_is_idempotent(db: &TestDb) {
        let s = db.open().await;
        let codec = PlainCodec(Default::default());
        let notes = vec![("a@x".to_owned(), "note a".to_owned())];
        let u = user();
        for expected in [ImportOutcome::Created, ImportOutcome::Unchanged] {
            let got = s
                .portable_import(
                    HOST,
                    "alice",
                    &u,
                    Some(NotesImport {
                        codec: &codec,
                        notes: &notes,
                    }),
                )
                .await
                .unwrap();
            assert_eq!(got, expected);
        }
        let (loaded, stored_notes) = s.portable_load(HOST, "alice").await.unwrap().unwrap();
        same(&loaded, &u);
        assert_eq!(stored_notes.len(), 1);
        assert_eq!(stored_notes[0].nonce, vec![0], "sealed once only");
        assert_eq!(s.roster_version(HOST, "alice").await.unwrap(), 1);
        let seqs: Vec<i64> = s
            .offline_headers(HOST, "alice")
            .await
            .unwrap()
            .iter()
            .map(|h| h.seq)
            .collect();
        assert_eq!(seqs, [1, 2]);
        assert!(s.portable_load(HOST, "nobody").await.unwrap().is_none());
    }

    async fn portable_import_replaces_only_what_differs(db: &TestDb) {
        let s = db.open().await;
        let codec = PlainCodec(Default::default());
        let notes = vec![
            ("a@x".to_owned(), "note a".to_owned()),
            ("c@x".to_owned(), "note c".to_owned()),
        ];
        s.portable_import(
            HOST,
            "alice",
            &user(),
            Some(NotesImport {
                codec: &codec,
                notes: &notes,
            }),
        )
        .await
        .unwrap();
        let mut u = user();
        u.credentials.clear(); // keeps the stored ones
        u.roster.remove(1); // b@x goes
        u.roster[0].groups = vec!["g3".into()]; // a@x changes groups
        u.roster[1].name = None; // c@x changes name, keeps its group
        u.roster.push(item("d@x", &["g1"]));
        u.vcard = None;
        u.offline.truncate(1);
        u.privacy.default_list = None;
        let notes = vec![
            ("a@x".to_owned(), "note a".to_owned()),
            ("d@x".to_owned(), "note d".to_owned()),
        ];
        let got = s
            .portable_import(
                HOST,
                "alice",
                &u,
                Some(NotesImport {
                    codec: &codec,
                    notes: &notes,
                }),
            )
            .await
            .unwrap();
        assert_eq!(got, ImportOutcome::Updated);
        let (loaded, stored_notes) = s.portable_load(HOST, "alice").await.unwrap().unwrap();
        u.credentials = user().credentials;
        same(&loaded, &u);
        let kept: Vec<(&str, &[u8])> = stored_notes
            .iter()
            .map(|n| (n.contact.as_str(), n.nonce.as_slice()))
            .collect();
        // a@x untouched (first seal), c@x deleted, d@x new.
        assert_eq!(kept, [("a@x", &[0u8][..]), ("d@x", &[2u8][..])]);
        assert_eq!(s.roster_version(HOST, "alice").await.unwrap(), 2);
        // Numbers are never reused: the replaced queue starts after the old one.
        let seqs: Vec<i64> = s
            .offline_headers(HOST, "alice")
            .await
            .unwrap()
            .iter()
            .map(|h| h.seq)
            .collect();
        assert_eq!(seqs, [3]);
    }

    async fn portable_import_failure_leaves_nothing(db: &TestDb) {
        let s = db.open().await;
        let mut u = user();
        // Violates the CHECK constraint after the account row was written.
        u.roster[2].subscription = "sometimes".into();
        assert!(s.portable_import(HOST, "alice", &u, None).await.is_err());
        assert!(!s.user_exists(HOST, "alice").await.unwrap());
        s.portable_import(HOST, "alice", &user(), None).await.unwrap();
        assert!(s.portable_import(HOST, "alice", &u, None).await.is_err());
        let (loaded, _) = s.portable_load(HOST, "alice").await.unwrap().unwrap();
        same(&loaded, &user());
    }

    macro_rules! on_every_backend {
        ($($case:ident),* $(,)?) => {
            mod sqlite_file { $(
                #[tokio::test]
                async fn $case() {
                    let db = TestDb::sqlite_file().await.expect("sqlite");
                    super::$case(&db).await;
                }
            )* use super::*; }
            mod sqlite_memory { $(
                #[tokio::test]
                async fn $case() {
                    let db = TestDb::sqlite_memory().await.expect("sqlite");
                    super::$case(&db).await;
                }
            )* use super::*; }
            mod postgres { $(
                #[tokio::test]
                async fn $case() {
                    let Some(db) = TestDb::postgres().await else { return };
                    super::$case(&db).await;
                }
            )* use super::*; }
        };
    }

    on_every_backend!(
        portable_import_twice_is_idempotent,
        portable_import_replaces_only_what_differs,
        portable_import_failure_leaves_nothing,
    );
}
