//! Enforcement (spec §7): the `outbound` hook judges what a user sends by the sending
//! session's effective list (active, else default); the `inbound` hook judges what reaches a
//! local user by the list of the resource it reaches (XEP-0016 §3 rules 1-2: the addressed
//! resource's effective list; for a stanza to the bare JID that the router hands to resources,
//! each candidate resource's effective list, see `per_resource`: the resources it denies are
//! named in `Routed::excluded` and the router's account rules leave them out; the default
//! list when it
//! reaches no resource: IQs the server answers for the account, offline storage,
//! subscription stanzas). A JID-only list decides with four hash lookups; roster facts are
//! read only for lists with group or subscription items.
//!
//! Presence the roster module fans out through the router's account rules (broadcasts, probe
//! answers, initial presence) never passes those hooks: the registry's synchronous
//! `recipient_filter` judges each recipient instead,
//! from the cache alone (`presence_allowed`), which holds every account with a session
//! (loaded in `session_opened`) and, for accounts whose lists have group or subscription
//! items, their roster facts (`Cache::facts`, kept current by `Cache::roster_changed`).
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
use crate::router::hooks::{Flow, Routed, Stage};
use crate::router::registry::Registry;
use crate::router::{bounce, deliver_to_full};
use crate::server::Server;
use crate::session::{Recipient, SessionRecord};

/// The users' own rules: before the roster (`Protocol`), and carbons observe only what got
/// through, so a stopped stanza is neither processed nor copied.
const STAGE: Stage = Stage::Policy;

pub(super) fn register(me: &Arc<Blocking>, r: &mut Registry) {
    // Most accounts have no list: their traffic skips enforcement after one cache lookup.
    let m = me.clone();
    let cache = me.clone();
    r.hooks.outbound.add_for(
        STAGE,
        "blocking",
        move |_, routed| routed.to.is_some() && !cache.has_no_items(&routed.from.to_bare()),
        move |server, routed| {
            let m = m.clone();
            async move { m.on_outbound(&server, routed).await }
        },
    );
    let m = me.clone();
    let cache = me.clone();
    r.hooks.inbound.add_for(
        STAGE,
        "blocking",
        move |_, routed| {
            routed
                .to
                .as_ref()
                .is_some_and(|to| !cache.has_no_items(&to.to_bare()))
        },
        move |server, routed| {
            let m = m.clone();
            async move { m.on_inbound(&server, routed).await }
        },
    );
    // The roster module hands subscription stanzas to the contact's side through
    // `presence_to_account` itself, past the `inbound` hook: judged here, as inbound, first.
    let m = me.clone();
    r.hooks
        .presence_to_account
        .add(STAGE, "blocking", move |server, routed| {
            let m = m.clone();
            async move {
                let subscription = matches!(
                    routed.stanza.attr("type"),
                    Some("subscribe" | "subscribed" | "unsubscribe" | "unsubscribed")
                );
                if subscription {
                    m.on_inbound(&server, routed).await
                } else {
                    Flow::Continue(routed)
                }
            }
        });
    let m = me.clone();
    r.hooks
        .recipient_filter
        .add("blocking", move |server, from, to, stanza| {
            m.presence_allowed(server, from, to, stanza)
        });
    // Roster facts for group/subscription items follow the roster as it is stored.
    let m = me.clone();
    r.hooks
        .roster_changed
        .add("blocking", move |user, contact, item| {
            let facts = item.map(|(subscription, groups)| PeerFacts {
                subscription: subscription.to_owned(),
                groups: groups.to_vec(),
            });
            m.cache.roster_changed(user, contact, facts);
        });
    // The presence filter reads the cache only: every account with a session is in it.
    let m = me.clone();
    r.hooks
        .session_opened
        .observe_async("blocking", move |server, event| {
            let (m, server, user) = (m.clone(), server.clone(), event.entry.jid.to_bare());
            async move {
                if let Err(e) = m.cache.get(&server, &user).await {
                    tracing::warn!(%user, error = ?e, "cannot load privacy lists for a new session");
                }
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

/// Whether the router hands a stanza to the bare JID to resources by rule (RFC 6121
/// §8.5.2.1), and whether its candidates need a non-negative priority.
fn fan_out(stanza: &Element) -> Option<bool> {
    match (stanza.name(), stanza.attr("type")) {
        ("message", None | Some("normal" | "chat" | "headline")) => Some(true),
        ("presence", None | Some("unavailable")) => Some(false),
        _ => None,
    }
}

impl Blocking {
    /// Whether `user`'s lists are known (cached) to hold no item at all, so nothing of
    /// theirs can be denied. Unknown (not cached): `false`, the full check runs.
    fn has_no_items(&self, user: &BareJid) -> bool {
        self.cache.cached(user).is_some_and(|p| p.is_empty())
    }

    /// The deciding item, if `list` of `owner` denies `selector` stanzas with `peer`. Roster
    /// facts are read from storage (a routed stanza may await), which also refreshes the
    /// cached facts the presence filter uses.
    async fn denying<'a>(
        &self,
        server: &Server,
        list: &'a List,
        owner: &BareJid,
        peer: &Jid,
        selector: u8,
    ) -> Option<&'a model::Item> {
        let facts = if list.needs_roster() {
            self.cache.load_facts(server, owner).await.ok()
        } else {
            None
        };
        let peer_facts = facts.as_ref().and_then(|f| f.get(&peer.to_bare()));
        list.decide(peer, selector, peer_facts).filter(|i| !i.allow)
    }

    /// Whether `list` of `owner` denies `selector` presence with `peer`, from memory: the
    /// cached roster facts for lists with group or subscription items.
    fn denies_presence(&self, owner: &BareJid, list: &List, peer: &Jid, selector: u8) -> bool {
        let item = if list.needs_roster() {
            match self.cache.facts(owner) {
                Some(facts) => list.decide(peer, selector, facts.get(&peer.to_bare())),
                // Not loaded (the account left the cache meanwhile): what can be told without.
                None => list.decide_without_roster(peer, selector).flatten(),
            }
        } else {
            list.decide(peer, selector, None)
        };
        item.is_some_and(|i| !i.allow)
    }

    /// The `recipient_filter`: presence from `from` (a resource of another account) to session
    /// `to`, judged as presence-out by the sender's effective list (its session's active
    /// list, else its default list) and as presence-in by the receiving session's effective
    /// list. Synchronous, from the cache: an account not in it (no session) has no list
    /// applied here.
    pub fn presence_allowed(
        &self,
        server: &Server,
        from: &FullJid,
        to: &SessionRecord,
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
                && self.denies_presence(&sender, list, &Jid::from(to.jid.clone()), selector(stanza, true))
            {
                crate::metrics::module_event("blocking", "presence_denied");
                return false;
            }
        }
        if let Some(state) = self.cache.cached(&recipient)
            && let Some(list) = state.effective(Some(to))
            && self.denies_presence(
                &recipient,
                list,
                &Jid::from(from.clone()),
                selector(stanza, false),
            )
        {
            crate::metrics::module_event("blocking", "presence_denied");
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
        let Some(item) = self.denying(server, &list, &owner, &peer, sel).await else {
            return Flow::Continue(routed);
        };
        crate::metrics::module_event("blocking", "outbound_denied");
        let stanza = &routed.stanza;
        let answerable = match stanza.name() {
            "presence" => false,
            "iq" => matches!(stanza.attr("type"), Some("get" | "set")),
            _ => stanza.attr("type") != Some("error"),
        };
        if answerable {
            // XEP-0191 §3.3.1 / XEP-0016 §2.13: not-acceptable, with <blocked/> for a block.
            let mut error = StanzaError::not_acceptable();
            if item.is_block() {
                error = error.application("blocked", NS_ERRORS);
            }
            deliver_to_full(server, &routed.from, error.reply_to(stanza));
        }
        Flow::Handled
    }

    async fn on_inbound(&self, server: &Arc<Server>, mut routed: Routed) -> Flow<Routed> {
        let Some(to) = routed.to.as_ref() else {
            return Flow::Continue(routed);
        };
        let owner = to.to_bare();
        if owner == routed.from.to_bare() {
            return Flow::Continue(routed);
        }
        let session = to.try_as_full().ok().and_then(|f| server.sessions.get(f));
        // To the bare JID (or to a resource that is gone, which messages treat alike): the
        // resources it would reach decide, each by its own list.
        let chat_or_normal = routed.stanza.name() == "message"
            && matches!(routed.stanza.attr("type"), None | Some("chat" | "normal"));
        if session.is_none()
            && (to.try_as_full().is_err() || chat_or_normal)
            && let Some(verdict) = self.per_resource(server, &owner, &routed).await
        {
            return match verdict {
                Some(denied) => {
                    routed.excluded = denied;
                    Flow::Continue(routed)
                }
                None => Flow::Handled,
            };
        }
        let Ok(Some(list)) = self.cache.effective(server, &owner, session.as_deref()).await else {
            return Flow::Continue(routed);
        };
        let sel = selector(&routed.stanza, false);
        let peer = Jid::from(routed.from.clone());
        if self.denying(server, &list, &owner, &peer, sel).await.is_none() {
            return Flow::Continue(routed);
        }
        self.deny_inbound(server, &routed.stanza);
        Flow::Handled
    }

    /// XEP-0016 §3 rules 1-2 for a stanza to the bare JID that the router hands to resources
    /// (messages chat/normal/headline, available/unavailable presence): each candidate
    /// resource is judged by its effective list (active, else default), never the default
    /// list over an active one. `None` when no resource is a candidate (offline storage or
    /// nothing: the default list judges, as for the account) or none has an active list (the
    /// default list judges all alike); `Some(None)`: every candidate denies it (answered
    /// here); `Some(Some(denied))`: the resources whose list denies it (empty: all allow),
    /// which the router's account rules then leave out (RFC 6121 §8.5.2.1: chat/normal to the
    /// highest priority among the others), carbons included.
    async fn per_resource(
        &self,
        server: &Arc<Server>,
        owner: &BareJid,
        routed: &Routed,
    ) -> Option<Option<Vec<FullJid>>> {
        let eligible_only = fan_out(&routed.stanza)?;
        // Most accounts have no list: one map lookup, no session scan.
        if self.cache.cached(owner).is_some_and(|s| s.lists.is_empty()) {
            return None;
        }
        let sessions = server.sessions.sessions_of(owner);
        let candidates: Vec<&Recipient> = sessions
            .iter()
            .filter(|s| s.is_available() && (!eligible_only || s.priority() >= 0))
            .collect();
        if candidates.is_empty() || candidates.iter().all(|s| !s.has_privacy_list()) {
            return None;
        }
        let state = self.cache.get(server, owner).await.ok()?;
        let sel = selector(&routed.stanza, false);
        let peer = Jid::from(routed.from.clone());
        // One read of the roster facts for all the resources' lists.
        let facts = if state.needs_roster() {
            self.cache.load_facts(server, owner).await.ok()
        } else {
            None
        };
        let peer_facts = facts.as_ref().and_then(|f| f.get(&peer.to_bare()));
        let mut allowed = 0;
        let mut denied = Vec::new();
        for s in &sessions {
            let denies = state
                .effective(Some(s))
                .is_some_and(|list| list.denies(&peer, sel, peer_facts));
            if denies {
                denied.push(s.jid.clone());
            } else if candidates.iter().any(|c| c.same(s)) {
                allowed += 1;
            }
        }
        if allowed == candidates.len() {
            return Some(Some(Vec::new()));
        }
        if allowed == 0 {
            self.deny_inbound(server, &routed.stanza);
            return Some(None);
        }
        crate::metrics::module_event("blocking", "inbound_denied_some_resources");
        Some(Some(denied))
    }

    /// A stanza denied by the recipient's list.
    fn deny_inbound(&self, server: &Arc<Server>, stanza: &Element) {
        crate::metrics::module_event("blocking", "inbound_denied");
        // XEP-0191 §3.3.2 / XEP-0016 §2.13: messages and IQ requests get service-unavailable
        // (as if the user did not exist); presence and IQ results are dropped.
        let answer = match stanza.name() {
            "presence" => false,
            "iq" => matches!(stanza.attr("type"), Some("get" | "set")),
            _ => true,
        };
        if answer {
            bounce(server, stanza, StanzaError::service_unavailable());
        }
    }
}
