//! XEP-0133 §4.11: the service-wide blacklist of bare JIDs and whole domains the service
//! refuses to communicate with. Stored in SQL (`service_blacklist`), edited by the
//! `edit-blacklist` admin command, cached here.
//!
//! Enforcement (XEP-0133 leaves the behaviour to the service):
//! - a local account that is listed, or whose domain is listed, is turned away as its session
//!   opens with the stream error `<not-authorized/>` ("account blacklisted"), before anything it
//!   sends is read; the edit command also ends the sessions it already has;
//! - a stanza a local user sends to a listed JID, or to any JID of a listed domain, is answered
//!   `<not-allowed/>` (type cancel: the service's policy, retrying will not help); errors and
//!   IQ results to them are dropped.
//!
//! Traffic pays nothing while the list is empty: both hooks have a synchronous `wants` check
//! reading one atomic flag.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};

use jid::{BareJid, Jid};

use crate::error::{StanzaError, StreamError, StreamErrorCondition};
use crate::router::hooks::{Flow, Routed, SessionEvent};
use crate::router::registry::{Module, Registry};
use crate::server::Server;

/// The cached list; `None` until first read from SQL. One server per process, like the
/// runtime admin list.
static LIST: RwLock<Option<Arc<HashSet<String>>>> = RwLock::new(None);
/// Whether the cached list has entries: the hot-path check.
static NONEMPTY: AtomicBool = AtomicBool::new(false);
/// Whether the cache was filled (from SQL or by an edit).
static LOADED: AtomicBool = AtomicBool::new(false);

fn cached() -> Option<Arc<HashSet<String>>> {
    LIST.read().unwrap_or_else(|e| e.into_inner()).clone()
}

/// Replaces the cache (after the stored list changed).
pub fn set_cache(list: &[String]) {
    let set: HashSet<String> = list.iter().cloned().collect();
    NONEMPTY.store(!set.is_empty(), Ordering::Release);
    *LIST.write().unwrap_or_else(|e| e.into_inner()) = Some(Arc::new(set));
    LOADED.store(true, Ordering::Release);
}

/// Fills the cache from SQL unless it already is.
async fn ensure_loaded(server: &Server) {
    if LOADED.load(Ordering::Acquire) {
        return;
    }
    match server.storage.blacklist().await {
        Ok(list) => {
            // An edit that raced this read is newer: keep it.
            if !LOADED.load(Ordering::Acquire) {
                set_cache(&list);
            }
        }
        Err(e) => tracing::error!(error = %e, "cannot read the blacklist"),
    }
}

/// Whether `jid` (any form) is listed, by its bare JID or its domain.
pub fn is_listed(jid: &Jid) -> bool {
    if !NONEMPTY.load(Ordering::Acquire) {
        return false;
    }
    let Some(list) = cached() else {
        return false;
    };
    list.contains(jid.domain().as_str()) || list.contains(jid.to_bare().as_str())
}

/// Whether the account `bare` is listed (itself or its domain), reading SQL once if the cache
/// is not filled yet. For a login check (SASL `account-disabled`, RFC 6120 §6.5.1).
pub async fn account_listed(server: &Server, bare: &BareJid) -> bool {
    ensure_loaded(server).await;
    is_listed(&Jid::from(bare.clone()))
}

/// Parses one entry of the edit form: a bare JID or a domain, normalised.
pub fn parse_entry(text: &str) -> Result<String, String> {
    let jid = Jid::new(text.trim()).map_err(|_| format!("'{text}' is not a valid JID"))?;
    if jid.resource().is_some() {
        return Err(format!(
            "'{text}': give a bare JID or a domain, without a resource"
        ));
    }
    Ok(jid.to_bare().to_string())
}

/// Whether a listed entry covers the account `bare` (the account itself or its domain).
pub fn covers(entry: &str, bare: &BareJid) -> bool {
    entry == bare.as_str() || entry == bare.domain().as_str()
}

pub struct Blacklist;

fn wants_outbound(_: &Server, routed: &Routed) -> bool {
    routed.to.as_ref().is_some_and(is_listed)
}

fn wants_session(_: &Server, event: &SessionEvent) -> bool {
    !LOADED.load(Ordering::Acquire) || is_listed(&Jid::from(event.entry.jid.clone()))
}

impl Module for Blacklist {
    fn name(&self) -> &'static str {
        "blacklist"
    }

    fn register(self: Arc<Self>, r: &mut Registry) {
        // First of the session_opened hooks. The others still run (their session_closed
        // counterparts expect them to); the kick ends the stream before anything is read.
        r.hooks
            .session_opened
            .add_for(1000, "blacklist", wants_session, |server, event| async move {
                ensure_loaded(&server).await;
                if !is_listed(&Jid::from(event.entry.jid.clone())) {
                    return Flow::Continue(event);
                }
                tracing::info!(jid = %event.entry.jid, "blacklisted account refused");
                event.entry.kick(StreamError::with_text(
                    StreamErrorCondition::NotAuthorized,
                    "account blacklisted",
                ));
                Flow::Continue(event)
            });
        // First on the outbound chain: nothing else (carbons, privacy) sees a refused stanza.
        r.hooks
            .outbound
            .add_for(1000, "blacklist", wants_outbound, |server, routed| async move {
                crate::router::bounce(
                    &server,
                    &routed.stanza,
                    StanzaError::not_allowed().text("the service does not communicate with this address"),
                );
                Flow::Handled
            });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_are_bare_jids_or_domains() {
        assert_eq!(parse_entry(" Spam.Example ").unwrap(), "spam.example");
        assert_eq!(parse_entry("bad@example.net").unwrap(), "bad@example.net");
        assert!(parse_entry("bad@example.net/res").is_err());
        assert!(parse_entry("a@@b").is_err());
        let bare = BareJid::new("bob@example.org").unwrap();
        assert!(covers("example.org", &bare));
        assert!(covers("bob@example.org", &bare));
        assert!(!covers("alice@example.org", &bare));
    }
}
