//! Per-account privacy state, cached while the account is in use, and the one write path
//! every view goes through (so all three views see the same model, spec §5).

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use dashmap::DashMap;
use jid::BareJid;

use super::model::{Item, List, PeerFacts};
use crate::error::StanzaError;
use crate::server::Server;
use crate::session::SessionRecord;
use crate::storage::privacy::PrivacyWrite;

/// Entries kept for accounts without sessions before the cache sheds them.
const MAX_OFFLINE_ENTRIES: usize = 10_000;
/// Attempts at loading roster facts while roster changes keep racing with the load.
const FACTS_LOAD_ATTEMPTS: usize = 3;

/// An account's roster facts about each contact (subscription, groups), for lists with
/// `group` or `subscription` items. A contact not in it is not in the roster.
pub type RosterFacts = HashMap<BareJid, PeerFacts>;

/// An account's lists and default list, immutable once built (replaced on change).
#[derive(Debug, Default, Clone)]
pub struct UserPrivacy {
    pub default_list: Option<String>,
    pub lists: HashMap<String, Arc<List>>,
}

impl UserPrivacy {
    /// Whether any list has `group` or `subscription` items (any: a session may make any
    /// list active without a write).
    pub fn needs_roster(&self) -> bool {
        self.lists.values().any(|l| l.needs_roster())
    }

    /// Whether no list has any item: nothing can be denied.
    pub fn is_empty(&self) -> bool {
        self.lists.values().all(|l| l.items.is_empty())
    }

    pub fn default(&self) -> Option<&Arc<List>> {
        self.default_list.as_ref().and_then(|n| self.lists.get(n))
    }

    /// The list `session`'s stanzas are judged by: its active list, else the default list.
    pub fn effective(&self, session: Option<&SessionRecord>) -> Option<&Arc<List>> {
        if let Some(active) = session.and_then(|s| s.privacy_list())
            && let Some(list) = self.lists.get(&active)
        {
            return Some(list);
        }
        self.default()
    }
}

/// Per-session state (`SessionEntry::extension`).
#[derive(Default)]
pub struct SessionPrivacy {
    /// The session asked for the blocklist (XEP-0191 §3.1): it gets block/unblock pushes.
    pub wants_blocklist: AtomicBool,
    /// The session used the ignore protocol: it gets delta pushes (spec §6.5).
    pub wants_ignore: AtomicBool,
    /// The session used XEP-0016: it gets list pushes (spec §5.4).
    pub wants_privacy: AtomicBool,
}

impl SessionPrivacy {
    pub fn wants_blocklist(&self) -> bool {
        self.wants_blocklist.load(Ordering::Acquire)
    }
    pub fn wants_ignore(&self) -> bool {
        self.wants_ignore.load(Ordering::Acquire)
    }
    pub fn wants_privacy(&self) -> bool {
        self.wants_privacy.load(Ordering::Acquire)
    }
}

/// A change made to one list.
pub struct Change {
    pub name: String,
    pub old: Option<Arc<List>>,
    /// `None`: deleted.
    pub new: Option<Arc<List>>,
    /// The version after the change (the list's, or the account counter for a deletion).
    pub version: i64,
    /// The account's state before and after.
    pub before: Arc<UserPrivacy>,
    pub after: Arc<UserPrivacy>,
}

/// Why a write did not happen.
pub enum WriteError {
    /// The expected version was stale; the list's current version (0: no such list).
    Stale(i64),
    Stanza(StanzaError),
}

impl From<StanzaError> for WriteError {
    fn from(e: StanzaError) -> Self {
        WriteError::Stanza(e)
    }
}

/// What an edit decided.
pub enum Edit {
    /// Nothing to change.
    Keep,
    /// Store these items (creating the list if needed).
    Replace(Vec<Item>),
    Delete,
}

#[derive(Default)]
pub struct Cache {
    users: DashMap<BareJid, Arc<UserPrivacy>>,
    /// Roster facts of the cached accounts whose lists need them, so that the synchronous
    /// presence filter judges `group` and `subscription` items exactly. Kept current by
    /// [`Cache::roster_changed`]; replaced whole by each load.
    facts: DashMap<BareJid, Arc<RosterFacts>>,
    /// Counts roster changes seen: a facts load that raced with one is done again.
    roster_changes: AtomicU64,
    /// Serializes writes (they are rare); reads never take it.
    write: tokio::sync::Mutex<()>,
}

/// What a privacy storage failure is logged as (`StanzaError::storage`).
const STORAGE: &str = "privacy storage error";

impl Cache {
    /// The account's state, from the cache or storage.
    pub async fn get(&self, server: &Server, user: &BareJid) -> Result<Arc<UserPrivacy>, StanzaError> {
        if let Some(u) = self.users.get(user) {
            return Ok(u.clone());
        }
        let Some(node) = user.node() else {
            return Ok(Arc::default());
        };
        let stored = server
            .storage
            .privacy_load(user.domain().as_str(), node.as_str())
            .await
            .map_err(StanzaError::storage(STORAGE))?;
        let mut lists = HashMap::new();
        for l in stored.lists {
            let items = l.items.iter().filter_map(Item::from_stored).collect();
            lists.insert(l.name.clone(), Arc::new(List::new(l.name, l.version, items)));
        }
        let state = Arc::new(UserPrivacy {
            default_list: stored.default_list,
            lists,
        });
        if self.users.len() >= MAX_OFFLINE_ENTRIES {
            self.users
                .retain(|u, _| !server.sessions.sessions_of(u).is_empty());
            self.facts.retain(|u, _| self.users.contains_key(u));
        }
        // A write that finished meanwhile already put the newer state: keep it.
        let state = self.users.entry(user.clone()).or_insert(state).clone();
        self.ensure_facts(server, user, &state).await?;
        Ok(state)
    }

    /// Loads the roster facts of `user` if its lists need them and they are not in memory.
    async fn ensure_facts(
        &self,
        server: &Server,
        user: &BareJid,
        state: &UserPrivacy,
    ) -> Result<(), StanzaError> {
        if state.needs_roster() && !self.facts.contains_key(user) {
            self.load_facts(server, user).await?;
        }
        Ok(())
    }

    /// The roster facts of `user`, read from storage (the source of truth); kept in memory
    /// when the account is cached. A roster change during the read makes it read again.
    pub async fn load_facts(&self, server: &Server, user: &BareJid) -> Result<Arc<RosterFacts>, StanzaError> {
        let Some(node) = user.node() else {
            return Ok(Arc::default());
        };
        let mut attempt = 0;
        loop {
            attempt += 1;
            let seen = self.roster_changes.load(Ordering::Acquire);
            let roster = server
                .storage
                .roster_load(user.domain().as_str(), node.as_str())
                .await
                .map_err(StanzaError::storage(STORAGE))?;
            let facts: RosterFacts = roster
                .items
                .into_iter()
                .filter_map(|i| {
                    let contact = BareJid::new(&i.contact).ok()?;
                    Some((
                        contact,
                        PeerFacts {
                            subscription: i.subscription,
                            groups: i.groups,
                        },
                    ))
                })
                .collect();
            let facts = Arc::new(facts);
            if self.users.contains_key(user) {
                self.facts.insert(user.clone(), facts.clone());
            }
            // Checked after the insert: a change reported later updates what was inserted; one
            // reported between the read and the insert may be missing from it.
            let raced = self.roster_changes.load(Ordering::Acquire) != seen;
            if raced && attempt < FACTS_LOAD_ATTEMPTS {
                continue;
            }
            return Ok(facts);
        }
    }

    /// The roster facts of `user` in memory (present whenever a cached account's lists need
    /// them).
    pub fn facts(&self, user: &BareJid) -> Option<Arc<RosterFacts>> {
        self.facts.get(user).map(|f| f.clone())
    }

    /// The roster module stored a change of `user`'s item for `contact` (`None`: removed).
    /// Synchronous and cheap: accounts whose lists do not need roster facts are skipped.
    pub fn roster_changed(&self, user: &BareJid, contact: &BareJid, item: Option<PeerFacts>) {
        self.roster_changes.fetch_add(1, Ordering::AcqRel);
        if let Some(mut facts) = self.facts.get_mut(user) {
            let mut updated = (**facts).clone();
            match item {
                Some(f) => updated.insert(contact.clone(), f),
                None => updated.remove(contact),
            };
            *facts = Arc::new(updated);
        }
    }

    /// The account's state if it is in memory (always, while the account has a session:
    /// loaded by `session_opened`, dropped by `session_released` after the last one).
    pub fn cached(&self, user: &BareJid) -> Option<Arc<UserPrivacy>> {
        self.users.get(user).map(|u| u.clone())
    }

    /// Forgets an account with no session left.
    pub fn evict(&self, server: &Server, user: &BareJid) {
        if server.sessions.sessions_of(user).is_empty() {
            self.users.remove(user);
            self.facts.remove(user);
        }
    }

    /// The list a session's stanzas are judged by: its active list, else the default list.
    pub async fn effective(
        &self,
        server: &Server,
        user: &BareJid,
        session: Option<&SessionRecord>,
    ) -> Result<Option<Arc<List>>, StanzaError> {
        let state = self.get(server, user).await?;
        Ok(state.effective(session).cloned())
    }

    /// Edits list `name` of `user` through `edit`, checking `expected` (the list's version the
    /// client saw; 0: it must not exist) if given. `make_default`: also make it the default
    /// list when there is none.
    pub async fn modify(
        &self,
        server: &Server,
        user: &BareJid,
        name: &str,
        expected: Option<i64>,
        make_default: bool,
        edit: impl FnOnce(&UserPrivacy, Option<&List>) -> Result<Edit, StanzaError>,
    ) -> Result<Option<Change>, WriteError> {
        let _guard = self.write.lock().await;
        let Some(node) = user.node() else {
            return Err(StanzaError::not_allowed().into());
        };
        let (host, username) = (user.domain().as_str(), node.as_str());
        let before = self.get(server, user).await?;
        let old = before.lists.get(name).cloned();
        let current = old.as_ref().map_or(0, |l| l.version);
        if expected.is_some_and(|e| e != current) {
            return Err(WriteError::Stale(current));
        }
        let items = match edit(&before, old.as_deref())? {
            Edit::Keep => return Ok(None),
            Edit::Replace(items) => Some(items),
            Edit::Delete if old.is_none() => return Ok(None),
            Edit::Delete => None,
        };
        let storage = &server.storage;
        let written = match &items {
            None => {
                storage
                    .privacy_write_list(host, username, name, Some(current), None)
                    .await
            }
            Some(items) => {
                // Only the items that changed are written (orders are unique, spec §5.1).
                let old_items: &[Item] = old.as_ref().map_or(&[], |l| &l.items);
                let remove: Vec<i64> = old_items
                    .iter()
                    .filter(|o| !items.contains(o))
                    .map(|o| i64::from(o.order))
                    .collect();
                let insert: Vec<_> = items
                    .iter()
                    .filter(|n| !old_items.contains(n))
                    .map(Item::to_stored)
                    .collect();
                storage
                    .privacy_patch_list(host, username, name, Some(current), &remove, &insert)
                    .await
            }
        }
        .map_err(StanzaError::storage(STORAGE))?;
        let version = match written {
            PrivacyWrite::Done(v) => v,
            PrivacyWrite::Conflict(v) => {
                // Written elsewhere (another node): reload and let the client retry. Reloaded
                // now, not on next use: the synchronous presence filter reads memory only.
                self.users.remove(user);
                if !server.sessions.sessions_of(user).is_empty() {
                    let _ = self.get(server, user).await;
                }
                return Err(WriteError::Stale(v));
            }
            PrivacyWrite::NoAccount => return Err(StanzaError::item_not_found().into()),
        };
        let mut after = (*before).clone();
        let new = items.map(|items| Arc::new(List::new(name, version, items)));
        match &new {
            Some(list) => {
                after.lists.insert(name.to_owned(), list.clone());
            }
            None => {
                after.lists.remove(name);
                if after.default_list.as_deref() == Some(name) {
                    after.default_list = None;
                }
            }
        }
        if make_default && new.is_some() && after.default_list.is_none() {
            server
                .storage
                .privacy_set_default(host, username, Some(name))
                .await
                .map_err(StanzaError::storage(STORAGE))?;
            after.default_list = Some(name.to_owned());
        }
        let after = Arc::new(after);
        self.users.insert(user.clone(), after.clone());
        // A list with group or subscription items was just added: the filter needs facts.
        self.ensure_facts(server, user, &after).await?;
        Ok(Some(Change {
            name: name.to_owned(),
            old,
            new,
            version,
            before,
            after,
        }))
    }

    /// Makes `name` (which must exist) the default list, or clears it. Returns the states
    /// before and after.
    pub async fn set_default(
        &self,
        server: &Server,
        user: &BareJid,
        name: Option<&str>,
    ) -> Result<(Arc<UserPrivacy>, Arc<UserPrivacy>), StanzaError> {
        let _guard = self.write.lock().await;
        let Some(node) = user.node() else {
            return Err(StanzaError::not_allowed());
        };
        let before = self.get(server, user).await?;
        if let Some(n) = name
            && !before.lists.contains_key(n)
        {
            return Err(StanzaError::item_not_found());
        }
        server
            .storage
            .privacy_set_default(user.domain().as_str(), node.as_str(), name)
            .await
            .map_err(StanzaError::storage(STORAGE))?;
        let mut after = (*before).clone();
        after.default_list = name.map(str::to_owned);
        let after = Arc::new(after);
        self.users.insert(user.clone(), after.clone());
        Ok((before, after))
    }
}
