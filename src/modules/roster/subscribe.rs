//! Subscription stanzas (RFC 6121 §3) and probes (§4.3).
//!
//! A local user's `subscribe`/`subscribed`/`unsubscribe`/`unsubscribed` is processed in two
//! halves, each under one roster lock at a time (never two, so no lock order to get wrong):
//!
//! 1. outbound, in the `outbound` hook, on the sender's roster: Appendix A.2 plus
//!    pre-approval (§3.4), roster push, 'from' stamped with the bare JID (§3.1.2);
//! 2. inbound, in the `presence_to_account` hook (so a blocking module's hook can stop it
//!    first), on the contact's roster: Appendix A.3, roster push, delivery, and the answers
//!    the server gives for the contact: "subscribed" for a pre-approved or existing
//!    subscription, "unsubscribed" for an account that does not exist (§8.5.1).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use jid::{BareJid, FullJid};
use minidom::Element;

use super::item::{self, Item};
use super::presence::{
    deliver_to_eligible, deliver_to_interested, send_current_presence, send_unavailable_from,
};
use super::store_cache::{Change, UserRoster, storage_key};
use super::subscription::{self, Entry, Kind, Sub};
use super::{Roster, is_local_account, send};
use crate::error::StanzaError;
use crate::router::hooks::{AccountRemoved, Flow, Routed};
use crate::router::{self, Destination};
use crate::server::Server;
use crate::storage::StorageError;
use crate::xml::{self, ns};

/// What the `type` of a presence stanza asks for.
enum PresenceType {
    Available,
    Unavailable,
    Probe,
    Subscription(Kind),
    Other,
}

fn presence_type(stanza: &Element) -> PresenceType {
    match stanza.attr("type") {
        None => PresenceType::Available,
        Some("unavailable") => PresenceType::Unavailable,
        Some("probe") => PresenceType::Probe,
        Some(t) => Kind::parse(t).map_or(PresenceType::Other, PresenceType::Subscription),
    }
}

/// A presence stanza the server sends on a user's behalf.
fn presence(from: &BareJid, to: &BareJid, kind: Kind) -> Element {
    let mut p = Element::bare("presence", ns::CLIENT);
    xml::set_attr(&mut p, "type", kind.as_str());
    xml::set_attr(&mut p, "from", from.as_str());
    xml::set_attr(&mut p, "to", to.as_str());
    p
}

/// The changes that bring `contact`'s item and pending request to `next`. An item is created
/// only when there is something to remember besides a pending request; `request` is the
/// subscription request to keep when one starts pending.
fn plan(
    roster: &UserRoster,
    contact: &BareJid,
    next: Entry,
    request: Option<&Element>,
) -> (Change<Item>, Change<Element>) {
    let old = roster.item(contact);
    let needed = old.is_some() || next.state.sub() != Sub::None || next.state.pending_out() || next.approved;
    let item = if needed {
        let mut it = old.cloned().unwrap_or_else(Item::empty);
        it.sub = next.state.sub();
        it.ask = next.state.pending_out();
        it.approved = next.approved;
        if old == Some(&it) {
            Change::Keep
        } else {
            Change::Set(it)
        }
    } else {
        Change::Keep
    };
    let pending = match (
        roster.entry(contact).state.pending_in(),
        next.state.pending_in(),
        request,
    ) {
        (false, true, Some(r)) => Change::Set(r.clone()),
        (true, false, _) => Change::Remove,
        _ => Change::Keep,
    };
    (item, pending)
}

/// The outbound half's result.
struct Applied {
    before: Entry,
    forward: bool,
}

impl Roster {
    /// `outbound`: every stanza a local session sends.
    pub(super) async fn on_outbound(&self, server: Arc<Server>, routed: Routed) -> Flow<Routed> {
        if routed.stanza.name() != "presence" {
            return Flow::Continue(routed);
        }
        let Some(to) = &routed.to else {
            return Flow::Continue(routed);
        };
        match presence_type(&routed.stanza) {
            PresenceType::Available => {
                self.track_directed(&server, &routed.from, to, true);
                Flow::Continue(routed)
            }
            PresenceType::Unavailable => {
                self.track_directed(&server, &routed.from, to, false);
                Flow::Continue(routed)
            }
            PresenceType::Probe => Flow::Continue(to_bare(&server, routed)),
            PresenceType::Subscription(kind) => self.outbound_subscription(&server, routed, kind).await,
            PresenceType::Other => Flow::Continue(routed),
        }
    }

    /// `presence_to_account`: presence for a local bare JID.
    pub(super) async fn on_presence_to_account(&self, server: Arc<Server>, routed: Routed) -> Flow<Routed> {
        let kind = match presence_type(&routed.stanza) {
            PresenceType::Probe => None,
            PresenceType::Subscription(kind) => Some(kind),
            _ => return Flow::Continue(routed),
        };
        let Some(contact) = routed.to.as_ref().map(|t| t.to_bare()) else {
            return Flow::Continue(routed);
        };
        if !is_local_account(&server, &contact) {
            return Flow::Continue(routed);
        }
        match kind {
            None => self.inbound_probe(&server, &routed.from, &contact).await,
            Some(kind) => {
                let user = routed.from.to_bare();
                self.inbound(&server, &user, Some(&routed.from), &contact, kind, routed.stanza)
                    .await
            }
        }
        Flow::Handled
    }

    /// §3.1.2, §3.1.5, §3.2.2, §3.3.2: the user's side of a subscription stanza.
    async fn outbound_subscription(
        &self,
        server: &Arc<Server>,
        mut routed: Routed,
        kind: Kind,
    ) -> Flow<Routed> {
        let user = routed.from.to_bare();
        let contact = match router::classify(server, routed.to.as_ref()) {
            Destination::Bare(bare) => bare,
            // §3.1.2: a full JID is treated as the bare JID.
            Destination::Full(full) => full.to_bare(),
            Destination::Remote(jid) => {
                if kind == Kind::Subscribe {
                    // No s2s yet: the router answers remote-server-not-found; nothing changes.
                    return Flow::Continue(routed);
                }
                // Ending or answering still updates the user's side.
                let contact = jid.to_bare();
                if let Err(e) = self.apply_outbound(server, &user, &contact, kind).await {
                    tracing::error!(%user, error = %e, "roster storage error");
                }
                return Flow::Handled;
            }
            _ => return Flow::Continue(routed),
        };
        if contact == user {
            if kind == Kind::Subscribe {
                router::bounce(
                    server,
                    &routed.stanza,
                    StanzaError::not_allowed().text("you cannot subscribe to yourself"),
                );
            }
            return Flow::Handled;
        }
        let applied = match self.apply_outbound(server, &user, &contact, kind).await {
            Ok(Some(applied)) => applied,
            Ok(None) => {
                let max = server.config().limits.max_roster_items;
                router::bounce(
                    server,
                    &routed.stanza,
                    StanzaError::not_allowed().text(format!("your roster is full ({max} items)")),
                );
                return Flow::Handled;
            }
            Err(e) => {
                tracing::error!(%user, error = %e, "roster storage error");
                router::bounce(server, &routed.stanza, StanzaError::internal_server_error());
                return Flow::Handled;
            }
        };
        if kind == Kind::Unsubscribed && applied.before.state.sub().has_from() {
            // §3.2.2: while the contact is still subscribed, it learns the user is gone.
            send_unavailable_from(server, &user, &contact);
        }
        if !applied.forward {
            return Flow::Handled;
        }
        // §3.1.2: stamped with the user's bare JID, addressed to the contact's.
        xml::set_attr(&mut routed.stanza, "from", user.as_str());
        xml::set_attr(&mut routed.stanza, "to", contact.as_str());
        routed.to = Some(contact.clone().into());
        route_local(server, routed).await;
        if kind == Kind::Subscribed {
            // §3.1.5: the new subscriber gets the user's current presence.
            send_current_presence(server, &user, &contact);
        }
        Flow::Handled
    }

    /// Applies Appendix A.2 (+ §3.4) to `user`'s roster. `None`: refused, the roster is full.
    async fn apply_outbound(
        &self,
        server: &Arc<Server>,
        user: &BareJid,
        contact: &BareJid,
        kind: Kind,
    ) -> Result<Option<Applied>, StorageError> {
        let mut g = self.cache.lock(server, user).await?;
        let before = g.roster().entry(contact);
        let outcome = subscription::outbound(before, kind);
        let (item, pending) = plan(g.roster(), contact, outcome.next, None);
        let creates = matches!(item, Change::Set(_)) && g.roster().item(contact).is_none();
        if creates && g.roster().item_count() >= server.config().limits.max_roster_items {
            return Ok(None);
        }
        if let Some(changed) = g.write(contact, item, pending).await? {
            let version = g.get().version;
            let note = g.get().note(contact);
            self.push_change(server, user, contact, version, changed, note);
        }
        Ok(Some(Applied {
            before,
            forward: outcome.forward,
        }))
    }

    fn push_change(
        &self,
        server: &Arc<Server>,
        user: &BareJid,
        contact: &BareJid,
        version: i64,
        item: Option<Item>,
        note: Option<&str>,
    ) {
        let el = match &item {
            Some(it) => item::item_element(contact, it),
            None => item::removed_element(contact),
        };
        let note = if item.is_some() { note } else { None };
        self.push(server, user, version, el, note);
    }

    /// §3.1.3, §3.1.6, §3.2.3, §3.3.3: `sender`'s `kind` arrives for the local `contact`.
    /// `requester` is the sending resource, when there is one to answer errors to.
    fn inbound<'a>(
        &'a self,
        server: &'a Arc<Server>,
        sender: &'a BareJid,
        requester: Option<&'a FullJid>,
        contact: &'a BareJid,
        kind: Kind,
        stanza: Element,
    ) -> Pin<Box<dyn Future<Output = ()> + Send + 'a>> {
        Box::pin(async move {
            if !self.account_exists(server, contact).await {
                // §8.5.1: a request to nobody is answered "unsubscribed" (others are ignored).
                if kind == Kind::Subscribe && is_local_account(server, sender) {
                    let reply = presence(contact, sender, Kind::Unsubscribed);
                    self.inbound(server, contact, None, sender, Kind::Unsubscribed, reply)
                        .await;
                }
                return;
            }
            let mut g = match self.cache.lock(server, contact).await {
                Ok(g) => g,
                Err(e) => {
                    tracing::error!(%contact, error = %e, "roster storage error");
                    return;
                }
            };
            let before = g.roster().entry(sender);
            let outcome = subscription::inbound(before, kind);
            let starts_pending = outcome.next.state.pending_in() && !before.state.pending_in();
            if starts_pending && g.roster().pending_in_count() >= server.config().limits.max_roster_items {
                drop(g);
                tracing::warn!(%contact, %sender, "too many subscription requests waiting; refused");
                if let Some(requester) = requester
                    && let Some(session) = server.sessions.get(requester)
                {
                    let mut error = StanzaError::resource_constraint()
                        .text("the contact has too many requests waiting")
                        .reply_to(&stanza);
                    xml::set_attr(&mut error, "to", &requester.to_string());
                    send(&session, error);
                }
                return;
            }
            let (item, pending) = plan(g.roster(), sender, outcome.next, Some(&stanza));
            match g.write(sender, item, pending).await {
                Ok(Some(changed)) => {
                    let version = g.get().version;
                    let note = g.get().note(sender);
                    self.push_change(server, contact, sender, version, changed, note);
                }
                Ok(None) => {}
                Err(e) => {
                    tracing::error!(%contact, error = %e, "roster storage error");
                    return;
                }
            }
            drop(g);
            if outcome.forward {
                if kind == Kind::Subscribe {
                    deliver_to_eligible(server, contact, &stanza);
                } else {
                    deliver_to_interested(server, contact, &stanza);
                }
            }
            if outcome.reply == Some(Kind::Subscribed) && is_local_account(server, sender) {
                // §3.1.3 / §3.4: approved for the contact, who need not be asked.
                let reply = presence(contact, sender, Kind::Subscribed);
                self.inbound(server, contact, None, sender, Kind::Subscribed, reply)
                    .await;
                send_current_presence(server, contact, sender);
            }
            if kind == Kind::Unsubscribe && before.state.sub().has_from() {
                // §3.3.3: the former subscriber sees the contact go.
                send_unavailable_from(server, contact, sender);
            }
        })
    }

    /// §4.3.2: a probe from `requester` for the local `contact`, answered to that resource.
    async fn inbound_probe(&self, server: &Arc<Server>, requester: &FullJid, contact: &BareJid) {
        let Some(target) = server.sessions.get(requester) else {
            return;
        };
        let user = requester.to_bare();
        let allowed = if *contact == user {
            true
        } else if !self.account_exists(server, contact).await {
            false
        } else {
            match self.cache.lock(server, contact).await {
                Ok(mut g) => g.roster().entry(&user).state.sub().has_from(),
                Err(e) => {
                    tracing::error!(%contact, error = %e, "roster storage error");
                    return;
                }
            }
        };
        if !allowed {
            // §4.3.2 / §8.5.1: no presence revealed; "unsubscribed" repairs a stale 'to'.
            let reply = presence(contact, &user, Kind::Unsubscribed);
            self.inbound(server, contact, None, &user, Kind::Unsubscribed, reply)
                .await;
            return;
        }
        let to = requester.to_string();
        for session in server.sessions.sessions_of(contact) {
            if session.jid != *requester
                && session.is_available()
                && let Some(mut p) = session.last_presence()
                && crate::router::recipient_allows(server, &session.jid, &target, &p)
            {
                xml::set_attr(&mut p, "to", &to);
                send(&target, p);
            }
        }
    }

    /// §2.5.2 (and account removal): `from`'s user no longer has `contact` (whose entry was
    /// `before`): end both subscriptions and any pending request, through the contact's
    /// inbound processing.
    pub(super) async fn cancel_all(
        &self,
        server: &Arc<Server>,
        from: &FullJid,
        contact: &BareJid,
        before: Entry,
    ) {
        let user = from.to_bare();
        if *contact == user || !is_local_account(server, contact) {
            return;
        }
        let state = before.state;
        if state.sub().has_to() || state.pending_out() {
            let routed = Routed {
                from: from.clone(),
                to: Some(contact.clone().into()),
                stanza: presence(&user, contact, Kind::Unsubscribe),
                excluded: Vec::new(),
            };
            route_local(server, routed).await;
        }
        if state.sub().has_from() || state.pending_in() {
            if state.sub().has_from() {
                send_unavailable_from(server, &user, contact);
            }
            let routed = Routed {
                from: from.clone(),
                to: Some(contact.clone().into()),
                stanza: presence(&user, contact, Kind::Unsubscribed),
                excluded: Vec::new(),
            };
            route_local(server, routed).await;
        }
    }

    /// `account_removed`, from any path (RFC 6121 §2.5.2, XEP-0077 §3.2): before the account
    /// is deleted, its contacts lose their subscriptions, as if it had sent "unsubscribe" and
    /// "unsubscribed" (with unavailable presence from its available resources); its roster
    /// leaves memory with its last session.
    pub(super) async fn account_removed(&self, server: &Arc<Server>, event: &AccountRemoved) {
        let user = event.account.clone();
        // The stanzas come from the account's bare JID; hooks get a full JID: the session that
        // asked, else one still open, else the account under a fixed resource.
        let from = match event
            .by
            .clone()
            .or_else(|| server.sessions.sessions_of(&user).first().map(|s| s.jid.clone()))
        {
            Some(from) => from,
            None => match FullJid::new(&format!("{user}/{REMOVAL_RESOURCE}")) {
                Ok(from) => from,
                Err(_) => return,
            },
        };
        let from = &from;
        let entries = match self.cache.lock(server, &user).await {
            Ok(mut g) => g.roster().entries(),
            Err(e) => {
                tracing::error!(%user, error = %e, "roster storage error");
                return;
            }
        };
        for (contact, entry) in entries {
            self.cancel_all(server, from, &contact, entry).await;
        }
    }

    /// Whether a local account exists (cheap when it is online).
    async fn account_exists(&self, server: &Server, jid: &BareJid) -> bool {
        if !server.sessions.sessions_of(jid).is_empty() {
            return true;
        }
        let (host, username) = storage_key(server, jid);
        match server.storage.user_exists(host, username).await {
            Ok(found) => found,
            Err(e) => {
                // Unknown: do not answer "unsubscribed" for an account that may exist.
                tracing::error!(%jid, error = %e, "cannot check whether an account exists");
                true
            }
        }
    }
}

/// The resource of the sender's address in the hooks, for a removal by an administrator of
/// an account that has no session.
const REMOVAL_RESOURCE: &str = "account-removal";

/// Hands a stamped subscription stanza or probe to the contact's side, through every
/// `presence_to_account` hook (a blocking module's included). Unhandled, such a stanza is
/// dropped, as the router's default would.
async fn route_local(server: &Arc<Server>, routed: Routed) {
    let _ = server
        .registry
        .hooks
        .presence_to_account
        .run(server, routed)
        .await;
}

/// A probe to a full JID is a probe of the account (§4.3).
fn to_bare(server: &Server, mut routed: Routed) -> Routed {
    if let Destination::Full(full) = router::classify(server, routed.to.as_ref()) {
        let bare = full.to_bare();
        xml::set_attr(&mut routed.stanza, "to", bare.as_str());
        routed.to = Some(bare.into());
    }
    routed
}
