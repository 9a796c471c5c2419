//! XEP-0441 archiving preferences: a default (`always`, `never`, `roster`) and JIDs always
//! or never archived (never wins when a JID is on both). Matching: a list entry that is a
//! bare JID matches every resource of it, a full JID only itself.
//!
//! Routing must not wait for the database, so the preferences of accounts with a session
//! are held in memory (loaded when a session opens, dropped when the last one closes, kept
//! current by `set` and, for `roster`, by the roster's change observers). An account with no
//! session (its messages go to offline storage, which writes to the database anyway) is
//! read from storage when a message needs it.

use std::collections::HashSet;
use std::sync::Arc;

use dashmap::DashMap;
use jid::{BareJid, Jid};
use xmpp_parsers::mam_prefs::{DefaultPrefs, Prefs as PrefsPayload};

use crate::error::StanzaError;
use crate::storage::archive::StoredPrefs;
use crate::storage::{Storage, StorageError};

/// One account's preferences, ready to decide.
#[derive(Debug, Clone, PartialEq)]
pub struct Prefs {
    default: DefaultPrefs,
    always: HashSet<String>,
    never: HashSet<String>,
    /// The roster's contacts (bare JIDs), only kept for the `roster` default.
    roster: HashSet<String>,
}

impl Default for Prefs {
    fn default() -> Self {
        Prefs {
            default: DefaultPrefs::Always,
            always: HashSet::new(),
            never: HashSet::new(),
            roster: HashSet::new(),
        }
    }
}

impl Prefs {
    /// Whether a message with `peer` (bare JID, resource or empty) is archived.
    pub fn allows(&self, peer: &str, resource: &str) -> bool {
        let listed = |set: &HashSet<String>| {
            set.contains(peer) || (!resource.is_empty() && set.contains(&format!("{peer}/{resource}")))
        };
        if listed(&self.never) {
            return false;
        }
        if listed(&self.always) {
            return true;
        }
        match self.default {
            DefaultPrefs::Always => true,
            DefaultPrefs::Never => false,
            DefaultPrefs::Roster => self.roster.contains(peer),
        }
    }

    fn from_stored(stored: Option<StoredPrefs>) -> Prefs {
        let Some(s) = stored else {
            return Prefs::default();
        };
        Prefs {
            default: match s.default_mode.as_str() {
                "never" => DefaultPrefs::Never,
                "roster" => DefaultPrefs::Roster,
                _ => DefaultPrefs::Always,
            },
            always: s.always.into_iter().collect(),
            never: s.never.into_iter().collect(),
            roster: HashSet::new(),
        }
    }

    /// The `<prefs/>` payload (lists sorted, so answers are stable).
    pub fn payload(&self) -> PrefsPayload {
        let sorted = |set: &HashSet<String>| {
            let mut v: Vec<&String> = set.iter().collect();
            v.sort();
            v.into_iter().filter_map(|j| Jid::new(j).ok()).collect()
        };
        PrefsPayload {
            default_: self.default.clone(),
            always: sorted(&self.always),
            never: sorted(&self.never),
        }
    }
}

/// Reads the account's preferences (and, for `roster`, its contacts) from storage.
async fn load(storage: &Storage, owner: &BareJid) -> Result<Prefs, StorageError> {
    let (host, user) = (owner.domain().as_str(), owner.node().map_or("", |n| n.as_str()));
    let mut prefs = Prefs::from_stored(storage.archive_prefs(host, user).await?);
    if prefs.default == DefaultPrefs::Roster {
        let roster = storage.roster_load(host, user).await?;
        prefs.roster = roster.items.into_iter().map(|i| i.contact).collect();
    }
    Ok(prefs)
}

/// The preferences of accounts with a session, by bare JID.
#[derive(Default)]
pub struct PrefsCache {
    accounts: DashMap<String, Arc<Prefs>>,
}

impl PrefsCache {
    /// The account's preferences: from memory, or read (not kept) when it has no session.
    /// A storage failure archives (the default) rather than dropping history.
    pub async fn get(&self, storage: &Storage, owner: &BareJid) -> Arc<Prefs> {
        if let Some(p) = self.accounts.get(owner.as_str()) {
            return p.clone();
        }
        match load(storage, owner).await {
            Ok(p) => Arc::new(p),
            Err(e) => {
                tracing::warn!(error = %e, account = %owner, "cannot read archiving preferences");
                Arc::new(Prefs::default())
            }
        }
    }

    /// A session opened: keep the account's preferences in memory (unless already there).
    pub async fn session_opened(&self, storage: &Storage, owner: &BareJid) {
        if self.accounts.contains_key(owner.as_str()) {
            return;
        }
        match load(storage, owner).await {
            Ok(p) => {
                self.accounts
                    .entry(owner.to_string())
                    .or_insert_with(|| Arc::new(p));
            }
            Err(e) => tracing::warn!(error = %e, account = %owner, "cannot read archiving preferences"),
        }
    }

    /// The account's last session closed.
    pub fn forget(&self, owner: &BareJid) {
        self.accounts.remove(owner.as_str());
    }

    /// A roster item changed: the `roster` default follows it.
    pub fn roster_changed(&self, owner: &BareJid, contact: &BareJid, present: bool) {
        if let Some(mut p) = self.accounts.get_mut(owner.as_str())
            && p.default == DefaultPrefs::Roster
        {
            let p = Arc::make_mut(&mut p);
            if present {
                p.roster.insert(contact.to_string());
            } else {
                p.roster.remove(contact.as_str());
            }
        }
    }

    /// XEP-0441 §3.1: stores new preferences and answers with them as stored.
    pub async fn set(
        &self,
        storage: &Storage,
        owner: &BareJid,
        payload: PrefsPayload,
    ) -> Result<Prefs, StanzaError> {
        let text = |jids: &[Jid]| jids.iter().map(|j| j.to_string()).collect::<Vec<_>>();
        let stored = StoredPrefs {
            default_mode: match payload.default_ {
                DefaultPrefs::Always => "always",
                DefaultPrefs::Never => "never",
                DefaultPrefs::Roster => "roster",
            }
            .to_string(),
            always: text(&payload.always),
            never: text(&payload.never),
        };
        let (host, user) = (owner.domain().as_str(), owner.node().map_or("", |n| n.as_str()));
        storage
            .archive_prefs_set(host, user, &stored)
            .await
            .map_err(StanzaError::storage("archive preferences"))?;
        let prefs = load(storage, owner)
            .await
            .map_err(StanzaError::storage("archive preferences"))?;
        if self.accounts.contains_key(owner.as_str()) {
            self.accounts.insert(owner.to_string(), Arc::new(prefs.clone()));
        }
        Ok(prefs)
    }

    /// XEP-0441 §3.1: the current preferences.
    pub async fn current(&self, storage: &Storage, owner: &BareJid) -> Result<Prefs, StanzaError> {
        load(storage, owner)
            .await
            .map_err(StanzaError::storage("archive preferences"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn prefs(default: &str, always: &[&str], never: &[&str], roster: &[&str]) -> Prefs {
        let mut p = Prefs::from_stored(Some(StoredPrefs {
            default_mode: default.into(),
            always: always.iter().map(|s| s.to_string()).collect(),
            never: never.iter().map(|s| s.to_string()).collect(),
        }));
        p.roster = roster.iter().map(|s| s.to_string()).collect();
        p
    }

    #[test]
    fn xep0441_defaults_and_lists() {
        assert!(Prefs::default().allows("bob@x", "r"));
        let never = prefs("never", &["bob@x"], &[], &[]);
        assert!(never.allows("bob@x", "phone"));
        assert!(!never.allows("carol@x", ""));
        let roster = prefs("roster", &[], &["bob@x/evil"], &["bob@x"]);
        assert!(roster.allows("bob@x", "phone"));
        assert!(!roster.allows("bob@x", "evil"), "a full JID matches only itself");
        assert!(!roster.allows("carol@x", ""));
        let both = prefs("always", &["bob@x"], &["bob@x"], &[]);
        assert!(!both.allows("bob@x", ""), "never wins");
    }
}
