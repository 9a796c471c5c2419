//! Blocking and privacy: XEP-0191 Blocking Command, XEP-0016 Privacy Lists and the
//! incremental ignore-list protocol (`urn:switchboard:ignore:0`, xep/xep-ignore-list.md),
//! three views over ONE model (`model`), cached per account (`cache`) and enforced by the
//! router's `outbound` and `inbound` hooks, `presence_to_account` for subscription stanzas
//! and the synchronous `recipient_filter` for presence the router fans out (`enforce`).
//!
//! Every change, whichever view makes it, goes through `Cache::modify` and then `notify`,
//! which tells each view's interested resources what changed in that view's terms
//! (spec §5.4).

pub mod cache;
pub mod enforce;
pub mod ignore;
pub mod model;
pub mod xep0016;
pub mod xep0191;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use jid::{BareJid, FullJid, Jid};
use minidom::Element;

use crate::router::registry::{Module, Registry};
use crate::server::Server;
use crate::xml::{self, ns};
use cache::{Cache, Change, SessionPrivacy, UserPrivacy};

pub struct Blocking {
    pub cache: Cache,
    push_id: AtomicU64,
}

impl Blocking {
    pub fn new() -> Blocking {
        Blocking {
            cache: Cache::default(),
            push_id: AtomicU64::new(0),
        }
    }

    /// An `<iq type='set'/>` push carrying `payload` for `to`.
    fn push(&self, to: &FullJid, payload: Element) -> Element {
        let n = self.push_id.fetch_add(1, Ordering::Relaxed);
        let mut iq = Element::bare("iq", ns::CLIENT);
        xml::set_attr(&mut iq, "type", "set");
        xml::set_attr(&mut iq, "id", &format!("privacy-push-{n}"));
        xml::set_attr(&mut iq, "to", &to.to_string());
        iq.append_child(payload);
        iq
    }

    /// Tells every view's interested resources about a change (spec §5.4): XEP-0191 pushes
    /// when the blocklist (the default list's block items) changed, ignore deltas for the
    /// changed list (not to `origin`, which gets the answer), XEP-0016 list pushes.
    pub async fn notify(
        &self,
        server: &Arc<Server>,
        user: &BareJid,
        before: &UserPrivacy,
        after: &UserPrivacy,
        change: Option<&Change>,
        origin: Option<&FullJid>,
    ) {
        let old: Vec<String> = before
            .default()
            .map(|l| l.blocked_jids().into_iter().map(str::to_owned).collect())
            .unwrap_or_default();
        let new: Vec<String> = after
            .default()
            .map(|l| l.blocked_jids().into_iter().map(str::to_owned).collect())
            .unwrap_or_default();
        let added: Vec<String> = new.iter().filter(|j| !old.contains(j)).cloned().collect();
        let removed: Vec<String> = old.iter().filter(|j| !new.contains(j)).cloned().collect();
        let sessions = server.sessions.sessions_of(user);
        for session in &sessions {
            // Who asked for pushes is the session's own state, kept where it is bound.
            let Some(state) = session.local().map(|l| l.extension::<SessionPrivacy>()) else {
                continue;
            };
            if state.wants_blocklist() {
                if !added.is_empty() {
                    let p = xep0191::block_payload(xep0191::JidList::Block, &added);
                    crate::router::push(session, self.push(&session.jid, p));
                }
                if !removed.is_empty() {
                    // All gone: the unblock-all form (XEP-0191 §3.4).
                    let jids: &[String] = if new.is_empty() { &[] } else { &removed };
                    let p = xep0191::block_payload(xep0191::JidList::Unblock, jids);
                    crate::router::push(session, self.push(&session.jid, p));
                }
            }
            if let Some(change) = change {
                if state.wants_ignore() && Some(&session.jid) != origin {
                    let p = ignore::delta_payload(change);
                    crate::router::push(session, self.push(&session.jid, p));
                }
                if state.wants_privacy() {
                    let p = xep0016::push_payload(&change.name);
                    crate::router::push(session, self.push(&session.jid, p));
                }
            }
        }
        if !added.is_empty() {
            xep0191::presence_to_contacts(server, user, &added, true).await;
        }
        if !removed.is_empty() {
            xep0191::presence_to_contacts(server, user, &removed, false).await;
        }
    }
}

impl Default for Blocking {
    fn default() -> Self {
        Blocking::new()
    }
}

impl Module for Blocking {
    fn name(&self) -> &'static str {
        "blocking"
    }

    fn register(self: Arc<Self>, r: &mut Registry) {
        xep0191::register(&self, r);
        ignore::register(&self, r);
        xep0016::register(&self, r);
        enforce::register(&self, r);
        let me = self;
        // Released, not closed: the `session_closed` observers' work (the roster's unavailable
        // presence) still passes the presence filter, which needs the cache.
        r.hooks
            .session_released
            .observe("blocking", move |server, event| {
                me.cache.evict(server, &event.entry.jid.to_bare());
            });
    }
}

/// The bare JID form of a JID item value, for roster lookups.
pub(crate) fn bare_of(jid: &str) -> Option<BareJid> {
    Jid::new(jid).ok().map(|j| j.to_bare())
}
