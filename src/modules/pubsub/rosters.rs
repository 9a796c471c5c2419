//! The roster facts PEP decides from (who shares presence with whom, roster groups), read
//! from storage and cached per user while needed. The roster module tells every stored
//! change through `Hooks::roster_changed`; a change drops the user's cached view, and a load
//! that raced with a change is used once but not cached.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use dashmap::DashMap;
use jid::BareJid;

use crate::server::Server;
use crate::storage::StorageError;

/// One contact as the user's roster has it.
#[derive(Debug, Clone)]
pub struct Contact {
    /// "none", "to", "from" or "both".
    pub subscription: String,
    pub groups: Vec<String>,
}

impl Contact {
    /// The contact receives the user's presence.
    pub fn has_from(&self) -> bool {
        matches!(self.subscription.as_str(), "from" | "both")
    }

    /// The user receives the contact's presence.
    pub fn has_to(&self) -> bool {
        matches!(self.subscription.as_str(), "to" | "both")
    }
}

pub type RosterView = Arc<HashMap<BareJid, Contact>>;

#[derive(Default)]
pub struct Rosters {
    cache: DashMap<BareJid, RosterView>,
    /// Bumped by every change: a load that saw it move may be stale.
    generation: AtomicU64,
}

impl Rosters {
    pub async fn get(&self, server: &Server, user: &BareJid) -> Result<RosterView, StorageError> {
        if let Some(view) = self.cache.get(user) {
            return Ok(view.clone());
        }
        let before = self.generation.load(Ordering::Acquire);
        let (host, username) = (user.domain().as_str(), user.node().map_or("", |n| n.as_str()));
        let stored = server.storage.roster_load(host, username).await?;
        let mut view = HashMap::with_capacity(stored.items.len());
        for item in stored.items {
            if let Ok(jid) = BareJid::new(&item.contact) {
                view.insert(
                    jid,
                    Contact {
                        subscription: item.subscription,
                        groups: item.groups,
                    },
                );
            }
        }
        let view = Arc::new(view);
        if self.generation.load(Ordering::Acquire) == before {
            self.cache.insert(user.clone(), view.clone());
        }
        Ok(view)
    }

    /// Whether the cached view of `user`'s roster says `contact` receives the user's presence
    /// (`None`: not cached).
    pub fn cached_has_from(&self, user: &BareJid, contact: &BareJid) -> Option<bool> {
        let view = self.cache.get(user)?;
        Some(view.get(contact).is_some_and(Contact::has_from))
    }

    /// A roster item of `user` changed (observer of `Hooks::roster_changed`).
    pub fn changed(&self, user: &BareJid) {
        self.generation.fetch_add(1, Ordering::AcqRel);
        self.cache.remove(user);
    }

    /// The user is not needed any more (no session left).
    pub fn evict(&self, user: &BareJid) {
        self.cache.remove(user);
    }
}
