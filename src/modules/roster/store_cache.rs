//! Rosters in memory, written through to storage.
//!
//! A user's roster is loaded on first need and kept while any session of the user is bound;
//! it is dropped when the last session closes. Each user has one `tokio::sync::Mutex`: every
//! read-modify-write of a roster (IQ, subscription stanza, broadcast) holds it, so the state
//! machine always sees the latest state and versions stay in order. Rosters of offline users
//! (the contact of a subscription request, say) go through the same entry and are dropped as
//! soon as nobody holds them.
//!
//! The map entry of a user is removed only while no guard exists (`Arc::strong_count == 1`,
//! checked under the map's shard lock, which is also held whenever a guard is created), so
//! two tasks can never hold two different mutexes for the same user.

use std::collections::HashMap;
use std::sync::Arc;

use dashmap::DashMap;
use jid::BareJid;
use minidom::Element;
use tokio::sync::{Mutex, OwnedMutexGuard};

use super::item::Item;
use super::subscription::{Entry, State, Sub};
use crate::server::Server;
use crate::storage::StorageError;
use crate::storage::roster::{ItemWrite, PendingWrite, StoredItem, StoredRoster};
use crate::xml;

/// One user's roster, as loaded.
pub struct UserRoster {
    /// XEP-0237 version of the items.
    pub version: i64,
    items: HashMap<BareJid, Item>,
    /// Inbound subscription requests waiting for the user's answer (§3.1.3), as received.
    pending_in: HashMap<BareJid, Element>,
    /// Contacts with 'from' or 'both', computed on demand for presence broadcasts.
    subscribers: Option<Arc<[BareJid]>>,
    /// Private notes (`notes.rs`), decrypted; empty when notes are disabled.
    notes: HashMap<BareJid, String>,
}

impl UserRoster {
    fn from_stored(user: &BareJid, stored: StoredRoster) -> UserRoster {
        let mut items = HashMap::with_capacity(stored.items.len());
        for it in stored.items {
            let (Ok(jid), Some(sub)) = (BareJid::new(&it.contact), Sub::parse(&it.subscription)) else {
                tracing::warn!(%user, contact = %it.contact, "skipping an unreadable roster item");
                continue;
            };
            items.insert(
                jid,
                Item {
                    name: it.name,
                    groups: it.groups,
                    sub,
                    ask: it.ask,
                    approved: it.approved,
                },
            );
        }
        let mut pending_in = HashMap::with_capacity(stored.pending_in.len());
        for (contact, stanza) in stored.pending_in {
            match (BareJid::new(&contact), stanza.parse::<Element>()) {
                (Ok(jid), Ok(el)) => {
                    pending_in.insert(jid, el);
                }
                _ => tracing::warn!(%user, %contact, "skipping an unreadable subscription request"),
            }
        }
        UserRoster {
            version: stored.version,
            items,
            pending_in,
            subscribers: None,
            notes: HashMap::new(),
        }
    }

    /// The user's private note on `contact`, if any.
    pub fn note(&self, contact: &BareJid) -> Option<&str> {
        self.notes.get(contact).map(String::as_str)
    }

    pub fn item_count(&self) -> usize {
        self.items.len()
    }

    pub fn item(&self, contact: &BareJid) -> Option<&Item> {
        self.items.get(contact)
    }

    pub fn items(&self) -> impl Iterator<Item = (&BareJid, &Item)> {
        self.items.iter()
    }

    /// Subscription requests waiting for an answer.
    pub fn pending_in(&self) -> impl Iterator<Item = &Element> {
        self.pending_in.values()
    }

    pub fn pending_in_count(&self) -> usize {
        self.pending_in.len()
    }

    /// The state machine's view of one contact.
    pub fn entry(&self, contact: &BareJid) -> Entry {
        let pending_in = self.pending_in.contains_key(contact);
        match self.items.get(contact) {
            Some(it) => Entry {
                state: State::from_parts(it.sub, it.ask, pending_in),
                approved: it.approved,
            },
            None => Entry {
                state: State::from_parts(Sub::None, false, pending_in),
                approved: false,
            },
        }
    }

    /// Every contact with an item or a pending request, and its entry.
    pub fn entries(&self) -> Vec<(BareJid, Entry)> {
        let mut out: Vec<(BareJid, Entry)> = self.items.keys().map(|j| (j.clone(), self.entry(j))).collect();
        for j in self.pending_in.keys() {
            if !self.items.contains_key(j) {
                out.push((j.clone(), self.entry(j)));
            }
        }
        out
    }

    /// Contacts subscribed to the user's presence ('from' or 'both'): who gets broadcasts.
    pub fn subscribers(&mut self) -> Arc<[BareJid]> {
        if let Some(s) = &self.subscribers {
            return s.clone();
        }
        let list: Arc<[BareJid]> = self
            .items
            .iter()
            .filter(|(_, it)| it.sub.has_from())
            .map(|(j, _)| j.clone())
            .collect();
        self.subscribers = Some(list.clone());
        list
    }

    /// Contacts the user is subscribed to ('to' or 'both'): who is probed.
    pub fn subscriptions(&self) -> Vec<BareJid> {
        self.items
            .iter()
            .filter(|(_, it)| it.sub.has_to())
            .map(|(j, _)| j.clone())
            .collect()
    }
}

/// A change to one contact's item or pending request.
pub enum Change<T> {
    Keep,
    Set(T),
    Remove,
}

impl<T> Change<T> {
    pub fn is_keep(&self) -> bool {
        matches!(self, Change::Keep)
    }
}

type Slot = Arc<Mutex<Option<UserRoster>>>;

/// Loaded rosters, one lockable slot per user.
#[derive(Default)]
pub struct RosterCache {
    map: DashMap<BareJid, Slot>,
}

impl RosterCache {
    /// Locks `user`'s roster, loading it from storage if needed.
    pub async fn lock<'a>(
        &'a self,
        server: &'a Server,
        user: &BareJid,
    ) -> Result<RosterGuard<'a>, StorageError> {
        let slot = self.map.entry(user.clone()).or_default().clone();
        let guard = slot.lock_owned().await;
        let mut g = RosterGuard {
            cache: self,
            server,
            user: user.clone(),
            guard: Some(guard),
        };
        if g.slot().is_none() {
            let (host, username) = storage_key(server, user);
            let stored = server.storage.roster_load(host, username).await?;
            let mut roster = UserRoster::from_stored(user, stored);
            if let Some(keys) = super::notes::NoteKeys::from_config(&server.config().roster_notes) {
                for (contact, text) in super::notes::load(&server.storage, &keys, host, username).await? {
                    if let Ok(jid) = BareJid::new(&contact) {
                        roster.notes.insert(jid, text);
                    }
                }
            }
            *g.slot() = Some(roster);
        }
        Ok(g)
    }

    /// Drops `user`'s roster if no session of the user is bound and nobody holds it.
    pub fn evict(&self, server: &Server, user: &BareJid) {
        if server.sessions.sessions_of(user).is_empty() {
            self.map.remove_if(user, |_, slot| Arc::strong_count(slot) == 1);
        }
    }

    /// Rosters currently in memory.
    pub fn loaded(&self) -> usize {
        self.map.len()
    }
}

/// The (host, username) storage key of a local user: the configured spelling of the domain.
pub fn storage_key<'a>(server: &'a Server, user: &'a BareJid) -> (&'a str, &'a str) {
    let domain = user.domain().as_str();
    let host = server.hosted_domain(domain).unwrap_or(domain);
    (host, user.node().map(|n| n.as_str()).unwrap_or_default())
}

/// Exclusive access to one user's loaded roster.
pub struct RosterGuard<'a> {
    cache: &'a RosterCache,
    server: &'a Server,
    user: BareJid,
    guard: Option<OwnedMutexGuard<Option<UserRoster>>>,
}

impl RosterGuard<'_> {
    fn slot(&mut self) -> &mut Option<UserRoster> {
        self.guard.as_mut().expect("held until drop")
    }

    pub fn roster(&mut self) -> &mut UserRoster {
        self.slot().as_mut().expect("loaded by lock()")
    }

    pub fn get(&self) -> &UserRoster {
        self.guard
            .as_ref()
            .and_then(|g| g.as_ref())
            .expect("loaded by lock()")
    }

    /// Sets (non-empty `text`) or deletes (empty) the note on an existing item, through to
    /// storage (encrypted with `keys`), bumping the roster version. Returns whether the note
    /// changed (false when it is the same, or there is no such item).
    pub async fn write_note(
        &mut self,
        keys: &super::notes::NoteKeys,
        contact: &BareJid,
        text: &str,
    ) -> Result<bool, StorageError> {
        let current = self.get().notes.get(contact).map(String::as_str).unwrap_or("");
        if current == text || !self.get().items.contains_key(contact) {
            return Ok(false);
        }
        let (host, username) = storage_key(self.server, &self.user);
        let stored = (!text.is_empty()).then(|| keys.encrypt(host, username, contact.as_str(), text));
        let Some(version) = self
            .server
            .storage
            .note_write(host, username, contact.as_str(), stored.as_ref())
            .await?
        else {
            return Ok(false);
        };
        let roster = self.roster();
        roster.version = version;
        if text.is_empty() {
            roster.notes.remove(contact);
        } else {
            roster.notes.insert(contact.clone(), text.to_owned());
        }
        Ok(true)
    }

    /// Writes a change through to storage, then to memory. Returns the item as it now is
    /// (`None` when removed) if the item changed, for the roster push.
    pub async fn write(
        &mut self,
        contact: &BareJid,
        item: Change<Item>,
        pending: Change<Element>,
    ) -> Result<Option<Option<Item>>, StorageError> {
        if item.is_keep() && pending.is_keep() {
            return Ok(None);
        }
        let stored;
        let item_write = match &item {
            Change::Keep => None,
            Change::Set(it) => {
                stored = StoredItem {
                    contact: contact.to_string(),
                    name: it.name.clone(),
                    subscription: it.sub.as_str().to_owned(),
                    ask: it.ask,
                    approved: it.approved,
                    groups: it.groups.clone(),
                };
                Some(ItemWrite::Upsert(&stored))
            }
            Change::Remove => Some(ItemWrite::Remove(contact.as_str())),
        };
        let stanza;
        let pending_write = match &pending {
            Change::Keep => None,
            Change::Set(el) => {
                stanza = xml::to_string(el);
                Some(PendingWrite::Store {
                    contact: contact.as_str(),
                    stanza: &stanza,
                })
            }
            Change::Remove => Some(PendingWrite::Clear(contact.as_str())),
        };
        let (host, username) = storage_key(self.server, &self.user);
        let version = self
            .server
            .storage
            .roster_write(host, username, item_write, pending_write)
            .await?;
        let roster = self.roster();
        match pending {
            Change::Keep => {}
            Change::Set(el) => {
                // Like storage: the first request is kept.
                roster.pending_in.entry(contact.clone()).or_insert(el);
            }
            Change::Remove => {
                roster.pending_in.remove(contact);
            }
        }
        if let Some(v) = version {
            roster.version = v;
        }
        let changed = match item {
            Change::Keep => return Ok(None),
            Change::Set(it) => {
                roster.items.insert(contact.clone(), it.clone());
                Some(it)
            }
            Change::Remove => {
                roster.items.remove(contact);
                // Storage removed the note with the item (ON DELETE CASCADE).
                roster.notes.remove(contact);
                None
            }
        };
        roster.subscribers = None;
        let view = changed.as_ref().map(|it| (it.sub.as_str(), it.groups.as_slice()));
        self.server
            .registry
            .hooks
            .roster_changed
            .notify(&self.user, contact, view);
        Ok(Some(changed))
    }
}

impl Drop for RosterGuard<'_> {
    fn drop(&mut self) {
        // Release the lock (and our reference to the slot) first, then maybe evict.
        self.guard.take();
        self.cache.evict(self.server, &self.user);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn jid(s: &str) -> BareJid {
        BareJid::new(s).unwrap()
    }

    fn roster() -> UserRoster {
        let stored = StoredRoster {
            version: 3,
            items: vec![
                StoredItem {
                    contact: "a@x".into(),
                    name: Some("A".into()),
                    subscription: "both".into(),
                    ask: false,
                    approved: false,
                    groups: vec!["G".into()],
                },
                StoredItem {
                    contact: "b@x".into(),
                    name: None,
                    subscription: "none".into(),
                    ask: true,
                    approved: false,
                    groups: vec![],
                },
                StoredItem {
                    contact: "c@x".into(),
                    name: None,
                    subscription: "from".into(),
                    ask: false,
                    approved: false,
                    groups: vec![],
                },
                StoredItem {
                    contact: "bad@@x".into(),
                    name: None,
                    subscription: "none".into(),
                    ask: false,
                    approved: false,
                    groups: vec![],
                },
            ],
            pending_in: vec![
                (
                    "b@x".into(),
                    "<presence xmlns='jabber:client' type='subscribe' from='b@x' to='u@x'/>".into(),
                ),
                (
                    "d@x".into(),
                    "<presence xmlns='jabber:client' type='subscribe' from='d@x' to='u@x'/>".into(),
                ),
            ],
        };
        UserRoster::from_stored(&jid("u@x"), stored)
    }

    #[test]
    fn loaded_states() {
        let mut r = roster();
        assert_eq!(r.version, 3);
        assert_eq!(r.item_count(), 3, "the unreadable item is skipped");
        assert_eq!(r.entry(&jid("a@x")).state, State::Both);
        assert_eq!(r.entry(&jid("b@x")).state, State::NonePendingOutIn);
        assert_eq!(r.entry(&jid("c@x")).state, State::From);
        assert_eq!(r.entry(&jid("d@x")).state, State::NonePendingIn);
        assert_eq!(r.entry(&jid("e@x")).state, State::None);
        assert_eq!(r.pending_in_count(), 2);
        assert_eq!(r.entries().len(), 4);
        let mut subs: Vec<String> = r.subscribers().iter().map(|j| j.to_string()).collect();
        subs.sort();
        assert_eq!(subs, ["a@x", "c@x"]);
        assert_eq!(r.subscriptions(), vec![jid("a@x")]);
    }
}
