//! Presence (RFC 6121 §4): broadcast to subscribers and own resources, initial presence
//! (probes answered from the session table, other resources, waiting subscription requests),
//! unavailable presence (also to directed-presence recipients, §4.6), and the end of a
//! session.
//!
//! Fan-out is the bulk of all traffic: the subscriber list is cached per roster (an
//! `Arc<[BareJid]>`, rebuilt only after a change), recipients come from the session table
//! without touching storage, and each recipient gets one clone of the stanza as it was sent
//! (extensions untouched), addressed to it.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use jid::{BareJid, FullJid, Jid};
use minidom::Element;

use super::store_cache::storage_key;
use super::{Roster, SessionState, is_local_account, send};
use crate::router::hooks::Routed;
use crate::router::{self, AccountRule, Addressing, deliver_to_account};
use crate::server::Server;
use crate::session::{Recipient, SessionEntry};
use crate::xml::{self, ns};

/// Directed-presence recipients remembered per resource; beyond this, no more are tracked.
const MAX_DIRECTED: usize = 1000;

impl Roster {
    /// `presence_broadcast`: presence without 'to' (§4.2, §4.4, §4.5). The session already
    /// recorded its own availability and priority.
    pub(super) async fn on_broadcast(&self, server: &Arc<Server>, routed: Routed) {
        let Routed { from, stanza, .. } = routed;
        let user = from.to_bare();
        let session = server.sessions.get(&from);
        let state = session
            .as_ref()
            .and_then(|s| s.local())
            .map(|s| s.extension::<SessionState>());
        if stanza.attr("type").is_none() {
            // Only the first available presence of a resource is initial presence (§4.2).
            let initial = state
                .as_ref()
                .is_some_and(|s| !s.announced.swap(true, Ordering::AcqRel));
            let subscribers = self.subscribers(server, &user).await;
            for contact in subscribers.iter() {
                deliver_to_available(server, &from, contact, &stanza);
            }
            // §4.2.2 / §4.4.2: every available resource of the user, the sender included.
            deliver_to_account(
                server,
                &from,
                &user,
                &stanza,
                AccountRule::Available,
                Addressing::EachResource,
            );
            if initial && let Some(session) = &session {
                self.initial_presence(server, session).await;
            }
            return;
        }
        if session.as_ref().is_some_and(|s| s.is_available()) {
            // The unavailable presence of a session that was replaced by a new connection
            // with the same full JID, which is available: that resource did not go away.
            // The old session's leftovers are handled when it closes (`on_session_closed`).
            return;
        }
        // Unavailable (§4.5): contacts and the other resources, if it had been available.
        let was_available = state
            .as_ref()
            .is_none_or(|s| s.announced.swap(false, Ordering::AcqRel));
        let subscribers: Arc<[BareJid]> = if was_available {
            self.subscribers(server, &user).await
        } else {
            Arc::from(Vec::new())
        };
        for contact in subscribers.iter() {
            deliver_to_available(server, &from, contact, &stanza);
        }
        if was_available {
            // The sender is unavailable by now (checked above), so this is the others.
            deliver_to_account(
                server,
                &from,
                &user,
                &stanza,
                AccountRule::Available,
                Addressing::EachResource,
            );
        }
        if let Some(state) = &state {
            // §4.6.3: whoever got directed presence learns it is gone, unless the broadcast
            // already told them.
            let directed = std::mem::take(&mut *state.directed.lock().unwrap_or_else(|e| e.into_inner()));
            for target in directed {
                let bare = target.to_bare();
                if !subscribers.contains(&bare) {
                    deliver_directed(server, &from, &target, &stanza);
                }
            }
            let status = stanza
                .get_child("status", ns::CLIENT)
                .map(|s| s.text())
                .unwrap_or_default();
            *state.last_status.lock().unwrap_or_else(|e| e.into_inner()) = status;
        }
    }

    /// Contacts subscribed to `user`'s presence (empty if the roster cannot be read).
    async fn subscribers(&self, server: &Arc<Server>, user: &BareJid) -> Arc<[BareJid]> {
        match self.cache.lock(server, user).await {
            Ok(mut g) => g.roster().subscribers(),
            Err(e) => {
                tracing::error!(%user, error = %e, "cannot read the roster for a presence broadcast");
                Arc::from(Vec::new())
            }
        }
    }

    /// §4.2.2-§4.2.3 (and §3.1.3): what a resource learns when it becomes available. Probes
    /// to local contacts are answered here from the session table (§4.3.2: the last presence
    /// of each available resource; nothing for offline contacts).
    async fn initial_presence(&self, server: &Arc<Server>, session: &Recipient) {
        let user = session.jid.to_bare();
        let (subscriptions, pending) = match self.cache.lock(server, &user).await {
            Ok(mut g) => {
                let r = g.roster();
                (r.subscriptions(), r.pending_in().cloned().collect::<Vec<_>>())
            }
            Err(e) => {
                tracing::error!(%user, error = %e, "cannot read the roster for initial presence");
                return;
            }
        };
        let me = session.jid.to_string();
        for contact in &subscriptions {
            for other in server.sessions.sessions_of(contact) {
                if other.is_available()
                    && let Some(p) = other.last_presence()
                    && router::recipient_allows(server, &other.jid, session, &p)
                {
                    send_addressed(session, p, &me);
                }
            }
        }
        // The user's other resources (an entity is subscribed to itself).
        for other in server.sessions.sessions_of(&user) {
            if other.jid != session.jid
                && other.is_available()
                && let Some(p) = other.last_presence()
            {
                send_addressed(session, p, &me);
            }
        }
        // §3.1.3: requests waiting for an answer, again, until answered. Blocking (XEP-0191)
        // belongs here too: a request from a JID the user blocked after it arrived is to be
        // skipped, not redelivered.
        if session.priority() >= 0 {
            for request in pending {
                send(session, request);
            }
        }
    }

    /// `outbound` for presence with 'to' and no type or 'unavailable': remember directed
    /// available presence, forget it when directed unavailable follows (§4.6).
    pub(super) fn track_directed(&self, server: &Server, from: &FullJid, to: &Jid, available: bool) {
        if to.to_bare() == from.to_bare() {
            // The user's own resources get its broadcasts anyway.
            return;
        }
        let Some(session) = server.sessions.local(from) else {
            return;
        };
        let state = session.extension::<SessionState>();
        let mut set = state.directed.lock().unwrap_or_else(|e| e.into_inner());
        if available {
            if set.len() < MAX_DIRECTED {
                set.insert(to.clone());
            }
        } else {
            set.remove(to);
        }
    }

    /// `session_closed`: unavailable presence not broadcast yet (a replaced session),
    /// directed presence still remembered (a resource that never sent broadcast presence),
    /// and when the user's last session ended: last logout (XEP-0012) and the roster leaves
    /// memory.
    pub(super) async fn on_session_closed(&self, server: &Arc<Server>, entry: &Arc<SessionEntry>) {
        let state = entry.extension::<SessionState>();
        let user = entry.jid.to_bare();
        let mut unavailable = Element::bare("presence", ns::CLIENT);
        xml::set_attr(&mut unavailable, "type", "unavailable");
        xml::set_attr(&mut unavailable, "from", &entry.jid.to_string());
        if state.announced.swap(false, Ordering::AcqRel) {
            // Its unavailable presence was not broadcast: it was replaced by a new session
            // with the same full JID. Unless that one is available, the resource is gone.
            let online = server.sessions.get(&entry.jid).is_some_and(|s| s.is_available());
            if !online {
                for contact in self.subscribers(server, &user).await.iter() {
                    deliver_to_available(server, &entry.jid, contact, &unavailable);
                }
                deliver_to_account(
                    server,
                    &entry.jid,
                    &user,
                    &unavailable,
                    AccountRule::Available,
                    Addressing::EachResource,
                );
            }
        }
        let directed = std::mem::take(&mut *state.directed.lock().unwrap_or_else(|e| e.into_inner()));
        for target in directed {
            deliver_directed(server, &entry.jid, &target, &unavailable);
        }
        if !server.sessions.sessions_of(&user).is_empty() {
            return;
        }
        let status = std::mem::take(&mut *state.last_status.lock().unwrap_or_else(|e| e.into_inner()));
        let (host, username) = storage_key(server, &user);
        let now = chrono::Utc::now().timestamp();
        if let Err(e) = server.storage.last_logout_set(host, username, now, &status).await {
            tracing::warn!(%user, error = %e, "cannot record the last logout");
        }
        self.cache.evict(server, &user);
    }
}

/// Queues a copy of `stanza` addressed to `to`.
fn send_to(session: &Recipient, stanza: &Element, to: &str) {
    send_addressed(session, stanza.clone(), to);
}

/// Queues `stanza` addressed to `to`.
fn send_addressed(session: &Recipient, mut stanza: Element, to: &str) {
    crate::metrics::presence_fanout(1);
    xml::set_attr(&mut stanza, "to", to);
    send(session, stanza);
}

/// Presence from `from` to a local bare JID: every available resource the recipient filter
/// lets it reach (RFC 6121 §8.5.2.1.1), addressed to the bare JID.
pub fn deliver_to_available(server: &Server, from: &FullJid, to: &BareJid, stanza: &Element) {
    deliver_to_account(server, from, to, stanza, AccountRule::Available, Addressing::Bare);
}

/// A subscription request: available resources with non-negative priority (§3.1.3, §8).
/// Already judged by `inbound` when it was routed: no recipient filter.
pub fn deliver_to_eligible(server: &Server, to: &BareJid, stanza: &Element) {
    for session in AccountRule::Eligible.pick(&server.sessions.sessions_of(to)) {
        send(session, stanza.clone());
    }
}

/// Subscription answers and cancellations: the user's interested resources (§3.1.6, §3.2.3,
/// §3.3.3).
pub fn deliver_to_interested(server: &Server, to: &BareJid, stanza: &Element) {
    for session in AccountRule::RosterPushes.pick(&server.sessions.sessions_of(to)) {
        send(session, stanza.clone());
    }
}

/// Unavailable presence from `from` to a directed-presence recipient (a local full or bare
/// JID).
fn deliver_directed(server: &Server, from: &FullJid, target: &Jid, stanza: &Element) {
    match target.try_as_full() {
        Ok(full) => {
            if let Some(session) = server.sessions.get(full)
                && router::recipient_allows(server, from, &session, stanza)
            {
                send_to(&session, stanza, full.as_str());
            }
        }
        Err(bare) => {
            if is_local_account(server, bare) {
                deliver_to_available(server, from, bare, stanza);
            }
        }
    }
}

/// The current presence of each of `from`'s available resources, to `to`'s available
/// resources (§3.1.5: after approving a subscription).
pub fn send_current_presence(server: &Server, from: &BareJid, to: &BareJid) {
    if !is_local_account(server, to) {
        return;
    }
    for session in server.sessions.sessions_of(from) {
        if session.is_available()
            && let Some(p) = session.last_presence()
        {
            deliver_to_available(server, &session.jid, to, &p);
        }
    }
}

/// Unavailable presence from each of `from`'s available resources to `to` (§3.2.2, §3.3.3:
/// the subscription ends).
pub fn send_unavailable_from(server: &Server, from: &BareJid, to: &BareJid) {
    if !is_local_account(server, to) {
        return;
    }
    for session in server.sessions.sessions_of(from) {
        if session.is_available() {
            let mut p = Element::bare("presence", ns::CLIENT);
            xml::set_attr(&mut p, "type", "unavailable");
            xml::set_attr(&mut p, "from", &session.jid.to_string());
            deliver_to_available(server, &session.jid, to, &p);
        }
    }
}
