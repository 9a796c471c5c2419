//! Enforcement (spec §7): the `outbound` hook judges what a user sends by the sending
//! session's effective list (active, else default); the `inbound` hook judges what reaches a
//! local user by the recipient's list (the addressed resource's effective list, the default
//! list for a bare JID). A JID-only list decides with four hash lookups; roster facts are
//! loaded only for lists with group or subscription items.
//!
//! Presence the roster module delivers itself (broadcasts, probe answers, initial presence)
//! never passes those hooks: the registry's synchronous `presence_filter` judges it instead,
//! from the cache alone (`presence_allowed`), which holds every account with a session
//! (loaded in `session_opened`). Lists whose decision for a peer depends on group or
//! subscription items are not evaluated there (no roster access without awaiting): such
//! presence is allowed (xep/xep-ignore-list.md §13).
//!
//! MUC (written separately) runs `hooks.inbound` for private messages and invitations it
//! delivers, with `from` the occupant JID or the inviter: this module then stops them.

use std::sync::Arc;

use jid::{BareJid, FullJid, Jid};
use minidom::Element;

use super::Blocking;
use super::model::{self, List, PeerFacts};
use super::xep0191::NS_ERRORS;
use crate::error::StanzaError;
use crate::router::hooks::{Flow, Routed};
use crate::router::registry::Registry;
use crate::router::{bounce, deliver_to_full};
use crate::server::Server;
use crate::session::SessionEntry;

/// Higher than roster (0) and carbons (-100): a stopped stanza is neither processed nor copied.
const PRIORITY: i32 = 100;

pub(super) fn register(me: &Arc<Blocking>, r: &mut Registry) {
    let m = me.clone();
    r.hooks.outbound.add(PRIORITY, "blocking", move |server, routed| {
        let m = m.clone();
        async move { m.on_outbound(&server, routed).await }
    });
    let m = me.clone();
    r.hooks.inbound.add(PRIORITY, "blocking", move |server, routed| {
        let m = m.clone();
        async move { m.on_inbound(&server, routed).await }
    });
    let m = me.clone();
    r.hooks
        .presence_filter
        .add("blocking", move |server, from, to, stanza| {
            m.presence_allowed(server, from, to, stanza)
        });
    // The presence filter reads the cache only: every account with a session is in it.
    let m = me.clone();
    r.hooks
        .session_opened
        .add(PRIORITY, "blocking", move |server, event| {
            let m = m.clone();
            async move {
                let user = event.entry.jid.to_bare();
                if let Err(e) = m.cache.get(&server, &user).await {
                    tracing::warn!(%user, error = ?e, "cannot load privacy lists for a new session");
                }
                Flow::Continue(event)
            }
        });
}

/// The selector a stanza falls under, seen from the list owner (`outgoing`: the owner sends
/// it). Subscription-management presence gets 0, which only selector-less items match.
pub fn selector(stanza: &Element, outgoing: bool) -> u8 {
    match stanza.name() {
        "message" => model::MESSAGE,
        "presence" => match stanza.attr("type") {
            None | Some("unavailable") if outgoing => model::PRESENCE_OUT,
            None | Some("unavailable") => model::PRESENCE_IN,
            // A probe asks for the owner's presence: answering it is presence out.
            Some("probe") => model::PRESENCE_OUT,
            _ => 0,
        },
        _ => model::IQ,
    }
}

/// The owner's roster facts about `peer`, for lists that need them.
pub async fn peer_facts(server: &Server, owner: &BareJid, peer: &Jid) -> Option<PeerFacts> {
    let node = owner.node()?;
    let roster = server
        .storage
        .roster_load(owner.domain().as_str(), node.as_str())
        .await
        .ok()?;
    let bare = peer.to_bare();
    let item = roster.items.into_iter().find(|i| i.contact == bare.as_str())?;
    Some(PeerFacts {
        subscription: item.subscription,
        groups: item.groups,
    })
}

/// The deciding item, if `list` denies `selector` stanzas with `peer`.
async fn denying<'a>(
    server: &Server,
    list: &'a List,
    owner: &BareJid,
    peer: &Jid,
    selector: u8,
) -> Option<&'a model::Item> {
    let facts = if list.needs_roster() {
        peer_facts(server, owner, peer).await
    } else {
        None
    };
    list.decide(peer, selector, facts.as_ref()).filter(|i| !i.allow)
}

/// Whether `list` denies `selector` presence with `peer`, as far as it can be told without
/// roster facts (undecidable: allowed).
fn denies_presence(list: &List, peer: &Jid, selector: u8) -> bool {
    list.decide_without_roster(peer, selector)
        .flatten()
        .is_some_and(|i| !i.allow)
}

impl Blocking {
    /// The `presence_filter`: presence from `from` (a resource of another account) to session
    /// `to`, judged as presence-out by the sender's effective list (its session's active
    /// list, else its default list) and as presence-in by the receiving session's effective
    /// list. Synchronous, from the cache: an account not in it (no session) has no list
    /// applied here.
    pub fn presence_allowed(
        &self,
        server: &Server,
        from: &FullJid,
        to: &SessionEntry,
        stanza: &Element,
    ) -> bool {
        let sender = from.to_bare();
        let recipient = to.jid.to_bare();
        if sender == recipient {
            return true;
        }
        // Most accounts have no list: one map lookup each, no session lookup.
        if let Some(state) = self.cache.cached(&sender)
            && !state.lists.is_empty()
        {
            let sending = server.sessions.get(from);
            if let Some(list) = state.effective(sending.as_deref())
                && denies_presence(list, &Jid::from(to.jid.clone()), selector(stanza, true))
            {
                return false;
            }
        }
        if let Some(state) = self.cache.cached(&recipient)
            && let Some(list) = state.effective(Some(to))
            && denies_presence(list, &Jid::from(from.clone()), selector(stanza, false))
        {
            return false;
        }
        true
    }

    async fn on_outbound(&self, server: &Arc<Server>, routed: Routed) -> Flow<Routed> {
        let Some(peer) = routed.to.clone() else {
            return Flow::Continue(routed);
        };
        let owner = routed.from.to_bare();
        // Own account and the server itself stay reachable.
        if peer.to_bare() == owner
            || (peer.node().is_none() && server.hosted_domain(peer.domain().as_str()).is_some())
        {
            return Flow::Continue(routed);
        }
        let session = server.sessions.get(&routed.from);
        let Ok(Some(list)) = self.cache.effective(server, &owner, session.as_deref()).await else {
            return Flow::Continue(routed);
        };
        let sel = selector(&routed.stanza, true);
        let Some(item) = denying(server, &list, &owner, &peer, sel).await else {
            return Flow::Continue(routed);
        };
        let stanza = &routed.stanza;
        let answerable = match stanza.name() {
            "presence" => false,
            "iq" => matches!(stanza.attr("type"), Some("get" | "set")),
            _ => stanza.attr("type") != Some("error"),
        };
        if answerable {
            // XEP-0191 §3.3.1 / XEP-0016 §2.13: not-acceptable, with <blocked/> for a block.
            let mut reply = StanzaError::not_acceptable().reply_to(stanza);
            if item.is_block()
                && let Some(error) = reply.children_mut().find(|c| c.name() == "error")
            {
                error.append_child(Element::bare("blocked", NS_ERRORS));
            }
            deliver_to_full(server, &routed.from, reply);
        }
        Flow::Handled
    }

    async fn on_inbound(&self, server: &Arc<Server>, routed: Routed) -> Flow<Routed> {
        let Some(to) = routed.to.as_ref() else {
            return Flow::Continue(routed);
        };
        let owner = to.to_bare();
        if owner == routed.from.to_bare() {
            return Flow::Continue(routed);
        }
        let session = to.try_as_full().ok().and_then(|f| server.sessions.get(f));
        let Ok(Some(list)) = self.cache.effective(server, &owner, session.as_deref()).await else {
            return Flow::Continue(routed);
        };
        let sel = selector(&routed.stanza, false);
        let peer = Jid::from(routed.from.clone());
        if denying(server, &list, &owner, &peer, sel).await.is_none() {
            return Flow::Continue(routed);
        }
        // XEP-0191 §3.3.2 / XEP-0016 §2.13: messages and IQ requests get service-unavailable
        // (as if the user did not exist); presence and IQ results are dropped.
        let stanza = &routed.stanza;
        let answer = match stanza.name() {
            "presence" => false,
            "iq" => matches!(stanza.attr("type"), Some("get" | "set")),
            _ => true,
        };
        if answer {
            bounce(server, stanza, StanzaError::service_unavailable());
        }
        Flow::Handled
    }
}
