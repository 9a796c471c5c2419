//! Who the service trusts and whom it refuses, as live state on the server: the admin list
//! (configuration, or as edited at runtime by XEP-0133 edit-admin) and the cached blacklist
//! (XEP-0133 §4.11, stored in SQL). Read by c2s (login, pacing), the blacklist hooks and the
//! admin commands; one instance per server, so two servers in one process never share them.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};

use jid::{BareJid, Jid};

use crate::config::Config;
use crate::storage::Storage;

/// The admin list as edited at runtime; `None` = the configuration's `admins`. Not
/// persisted: a restart goes back to the configuration, and a reload that changes `admins`
/// replaces it.
#[derive(Default)]
pub struct Admins {
    runtime: RwLock<Option<Vec<BareJid>>>,
}

impl Admins {
    /// The current admins: the runtime list if edited, else the configuration's `admins`.
    pub fn list(&self, config: &Config) -> Vec<BareJid> {
        if let Some(list) = self.runtime.read().unwrap_or_else(|e| e.into_inner()).as_ref() {
            return list.clone();
        }
        config
            .admins
            .iter()
            .filter_map(|a| BareJid::new(a).ok())
            .collect()
    }

    /// Whether `jid` is an admin (see [`Admins::list`]).
    pub fn contains(&self, config: &Config, jid: &BareJid) -> bool {
        if let Some(list) = self.runtime.read().unwrap_or_else(|e| e.into_inner()).as_ref() {
            return list.contains(jid);
        }
        config
            .admins
            .iter()
            .any(|a| BareJid::new(a).is_ok_and(|a| &a == jid))
    }

    /// Replaces the admin list until the next restart or a reload that changes `admins`.
    pub fn replace(&self, list: Vec<BareJid>) {
        *self.runtime.write().unwrap_or_else(|e| e.into_inner()) = Some(list);
    }
}

/// The blacklist as cached from SQL. Traffic pays one atomic read while it is empty.
#[derive(Default)]
pub struct Blacklist {
    /// `None` until first read from SQL.
    list: RwLock<Option<Arc<HashSet<String>>>>,
    /// Whether the cached list has entries: the hot-path check.
    nonempty: AtomicBool,
    /// Whether the cache was filled (from SQL or by an edit).
    loaded: AtomicBool,
}

impl Blacklist {
    /// Replaces the cache (after the stored list changed).
    pub fn set(&self, list: &[String]) {
        let set: HashSet<String> = list.iter().cloned().collect();
        self.nonempty.store(!set.is_empty(), Ordering::Release);
        *self.list.write().unwrap_or_else(|e| e.into_inner()) = Some(Arc::new(set));
        self.loaded.store(true, Ordering::Release);
    }

    /// Whether the cache was filled yet.
    pub fn is_loaded(&self) -> bool {
        self.loaded.load(Ordering::Acquire)
    }

    /// Fills the cache from SQL unless it already is.
    pub async fn ensure_loaded(&self, storage: &Storage) {
        if self.is_loaded() {
            return;
        }
        match storage.blacklist().await {
            Ok(list) => {
                // An edit that raced this read is newer: keep it.
                if !self.is_loaded() {
                    self.set(&list);
                }
            }
            Err(e) => tracing::error!(error = %e, "cannot read the blacklist"),
        }
    }

    /// Whether `jid` (any form) is listed, by its bare JID or its domain.
    pub fn is_listed(&self, jid: &Jid) -> bool {
        if !self.nonempty.load(Ordering::Acquire) {
            return false;
        }
        let Some(list) = self.list.read().unwrap_or_else(|e| e.into_inner()).clone() else {
            return false;
        };
        list.contains(jid.domain().as_str()) || list.contains(jid.to_bare().as_str())
    }

    /// Whether the account `bare` is listed (itself or its domain), reading SQL once if the
    /// cache is not filled yet. For a login check (SASL `account-disabled`, RFC 6120 §6.5.1).
    pub async fn account_listed(&self, storage: &Storage, bare: &BareJid) -> bool {
        self.ensure_loaded(storage).await;
        self.is_listed(&Jid::from(bare.clone()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runtime_admins_replace_the_configured_ones() {
        let config = Config::parse(
            "domains = [\"example.org\"]\nadmins = [\"boss@example.org\"]\n",
            "t",
        )
        .unwrap();
        let admins = Admins::default();
        let boss = BareJid::new("boss@example.org").unwrap();
        let other = BareJid::new("other@example.org").unwrap();
        assert!(admins.contains(&config, &boss));
        admins.replace(vec![other.clone()]);
        assert!(!admins.contains(&config, &boss));
        assert!(admins.contains(&config, &other));
        assert_eq!(admins.list(&config), vec![other]);
    }

    #[test]
    fn blacklist_covers_jids_and_domains_once_set() {
        let list = Blacklist::default();
        let jid = Jid::new("bad@spam.example/r").unwrap();
        assert!(!list.is_listed(&jid));
        list.set(&["spam.example".into()]);
        assert!(list.is_loaded());
        assert!(list.is_listed(&jid));
        assert!(!list.is_listed(&Jid::new("ok@example.org").unwrap()));
    }
}
