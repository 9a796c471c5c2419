//! Typed hook points: the closed set of places where modules intercept or observe stanza flow,
//! each with its own payload type. Handlers run by priority (highest first); the first that
//! returns `Handled` ends the chain, otherwise the payload travels on and the router's default
//! applies. Modules meet here instead of importing each other.

use std::sync::Arc;

use futures::future::BoxFuture;
use jid::{BareJid, FullJid, Jid};
use minidom::Element;

use crate::server::Server;
use crate::session::{Recipient, SessionEntry, SessionRecord};

/// A synchronous verdict on one recipient of presence the router fans out to an account
/// (`router::deliver_to_account`: roster broadcasts, probe answers, initial presence): `from`
/// the sending resource, `to` the receiving resource's record. `false`: not delivered.
pub type RecipientFilterFn = Arc<dyn Fn(&Server, &FullJid, &SessionRecord, &Element) -> bool + Send + Sync>;

/// The per-recipient filters (privacy and blocking). Synchronous, so that fan-out stays a
/// loop over the directory: a filter decides from what it has in memory. Empty: everything
/// is allowed, at the cost of one length check.
#[derive(Default)]
pub struct RecipientFilters {
    entries: Vec<(&'static str, RecipientFilterFn)>,
}

impl RecipientFilters {
    /// Adds a filter; `module` names it in logs.
    pub fn add<F>(&mut self, module: &'static str, f: F)
    where
        F: Fn(&Server, &FullJid, &SessionRecord, &Element) -> bool + Send + Sync + 'static,
    {
        self.entries.push((module, Arc::new(f)));
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Whether every filter lets presence `stanza` from `from` reach session `to`.
    #[inline]
    pub fn allows(&self, server: &Server, from: &FullJid, to: &SessionRecord, stanza: &Element) -> bool {
        self.entries.iter().all(|(_, f)| f(server, from, to, stanza))
    }
}

/// A roster item as stored after a change: `(subscription, groups)`; `None` once removed.
pub type RosterItemView<'a> = Option<(&'a str, &'a [String])>;
/// An observer of stored roster changes: `(user, contact, item)`.
pub type RosterObserverFn = Arc<dyn Fn(&BareJid, &BareJid, RosterItemView<'_>) + Send + Sync>;

/// Observers of roster changes (privacy lists keep the roster facts their group and
/// subscription items need). Synchronous and cheap: called right after a change is stored.
#[derive(Default)]
pub struct RosterObservers {
    entries: Vec<(&'static str, RosterObserverFn)>,
}

impl RosterObservers {
    /// Adds an observer; `module` names it in logs.
    pub fn add<F>(&mut self, module: &'static str, f: F)
    where
        F: Fn(&BareJid, &BareJid, RosterItemView<'_>) + Send + Sync + 'static,
    {
        self.entries.push((module, Arc::new(f)));
    }

    /// Tells every observer that `user`'s item for `contact` is now `item`.
    pub fn notify(&self, user: &BareJid, contact: &BareJid, item: RosterItemView<'_>) {
        for (_, f) in &self.entries {
            f(user, contact, item);
        }
    }
}

/// A hook's verdict.
pub enum Flow<T> {
    /// Not (fully) handled: pass the payload to the next hook or the default.
    Continue(T),
    /// Handled: nothing else runs.
    Handled,
}

pub type HookFn<T> = Arc<dyn Fn(Arc<Server>, T) -> BoxFuture<'static, Flow<T>> + Send + Sync>;

/// A synchronous pre-check: whether a handler wants this payload at all. Lets the hot path
/// (every chat message crosses several hook points) skip a handler without boxing a future
/// or touching the server's reference count. It may read module state it captured (caches).
pub type WantsFn<T> = Arc<dyn Fn(&Server, &T) -> bool + Send + Sync>;

struct Entry<T> {
    priority: i32,
    module: &'static str,
    wants: Option<WantsFn<T>>,
    handler: HookFn<T>,
}

/// The handlers of one hook point.
pub struct HookList<T> {
    entries: Vec<Entry<T>>,
}

impl<T> Default for HookList<T> {
    fn default() -> Self {
        HookList { entries: Vec::new() }
    }
}

impl<T: Send + 'static> HookList<T> {
    /// Adds a handler; `module` names it in logs.
    pub fn add<F, Fut>(&mut self, priority: i32, module: &'static str, f: F)
    where
        F: Fn(Arc<Server>, T) -> Fut + Send + Sync + 'static,
        Fut: std::future::Future<Output = Flow<T>> + Send + 'static,
    {
        self.insert(priority, module, None, f);
    }

    /// Like [`HookList::add`], for a handler that only wants the payloads `wants` accepts;
    /// the others pass by without the handler running.
    pub fn add_for<W, F, Fut>(&mut self, priority: i32, module: &'static str, wants: W, f: F)
    where
        W: Fn(&Server, &T) -> bool + Send + Sync + 'static,
        F: Fn(Arc<Server>, T) -> Fut + Send + Sync + 'static,
        Fut: std::future::Future<Output = Flow<T>> + Send + 'static,
    {
        self.insert(priority, module, Some(Arc::new(wants)), f);
    }

    fn insert<F, Fut>(&mut self, priority: i32, module: &'static str, wants: Option<WantsFn<T>>, f: F)
    where
        F: Fn(Arc<Server>, T) -> Fut + Send + Sync + 'static,
        Fut: std::future::Future<Output = Flow<T>> + Send + 'static,
    {
        let handler: HookFn<T> = Arc::new(move |s, p| Box::pin(f(s, p)));
        self.entries.push(Entry {
            priority,
            module,
            wants,
            handler,
        });
        // Stable: equal priorities keep registration order.
        self.entries.sort_by_key(|e| std::cmp::Reverse(e.priority));
    }

    /// The modules registered here, in the order they run (for logs and tests).
    pub fn modules(&self) -> impl Iterator<Item = &'static str> + '_ {
        self.entries.iter().map(|e| e.module)
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Runs the chain.
    pub async fn run(&self, server: &Arc<Server>, mut payload: T) -> Flow<T> {
        for entry in &self.entries {
            if entry.wants.as_ref().is_some_and(|wants| !wants(server, &payload)) {
                continue;
            }
            match (entry.handler)(server.clone(), payload).await {
                Flow::Continue(p) => payload = p,
                Flow::Handled => return Flow::Handled,
            }
        }
        Flow::Continue(payload)
    }
}

/// A stanza in flight with its parsed addresses. `from` is the (stamped) sender.
pub struct Routed {
    pub from: FullJid,
    pub to: Option<Jid>,
    pub stanza: Element,
    /// Resources of the recipient account an `inbound` handler ruled out (a privacy list of
    /// their own denies it): the router's account rules pick among the others, and they get
    /// no carbon either. Empty (no allocation) for nearly every stanza.
    pub excluded: Vec<FullJid>,
}

/// A message and the local resources it is being delivered to.
pub struct Delivered {
    pub from: FullJid,
    pub stanza: Element,
    pub recipients: Vec<FullJid>,
}

/// A session's lifecycle event.
pub struct SessionEvent {
    pub entry: Arc<SessionEntry>,
}

impl SessionEvent {
    /// The session's handle, to hand stanzas for it to the router.
    pub fn recipient(&self) -> Recipient {
        Recipient::local_session(self.entry.clone())
    }
}

/// XEP-0049 private XML an account just stored: one namespace's data, as stored.
pub struct PrivateStored {
    pub account: BareJid,
    pub namespace: String,
    pub data: String,
}

/// A vCard (XEP-0054) an account just stored, as stored.
pub struct VCardStored {
    pub account: BareJid,
    pub vcard: Element,
}

/// Every hook point.
#[derive(Default)]
pub struct Hooks {
    /// Each stanza a local session sends, validated and stamped, before routing
    /// (privacy and blocking, carbons of sent messages).
    pub outbound: HookList<Routed>,
    /// A stanza from a local session addressed to a local bare or full JID, before delivery,
    /// offline storage or an IQ handler (privacy and blocking of the recipient). `to` is the
    /// recipient. Skipped when empty. Components that deliver to users themselves (MUC private
    /// messages and invitations) run it too, with `from` the occupant or inviter.
    pub inbound: HookList<Routed>,
    /// Presence without `to` from a local session, after the router recorded the session's
    /// availability (roster broadcast, probes). Default: tell the account's other resources.
    pub presence_broadcast: HookList<Routed>,
    /// Presence addressed to a local bare JID (subscriptions, probes). Default: available and
    /// unavailable presence go to the account's available resources; others are dropped.
    pub presence_to_account: HookList<Routed>,
    /// A chat/normal message for a local account that no resource can take now
    /// (offline storage). Default: `service-unavailable` to the sender.
    pub message_offline: HookList<Routed>,
    /// A message was handed to some of an account's sessions while it has others bound
    /// (carbons: only those others can need a copy, so a single-session account costs
    /// nothing). Observers only: the router has already chosen the recipients.
    pub message_delivered: HookList<Delivered>,
    /// A resource was bound.
    pub session_opened: HookList<SessionEvent>,
    /// A session ended (after its unavailable presence was routed).
    pub session_closed: HookList<SessionEvent>,
    /// One recipient of presence the router fans out to an account by rule
    /// (`router::deliver_to_account`: the roster's broadcasts, unavailable presence, probe
    /// answers, contacts' presence on initial presence), which `outbound` and `inbound` do
    /// not see. Consulted before each such delivery; not for the account's own resources.
    pub recipient_filter: RecipientFilters,
    /// A roster item was stored (added, changed, removed): observers only.
    pub roster_changed: RosterObservers,
    /// Private XML was stored (XEP-0402 keeps its bookmarks in step): observers, run before
    /// the set is answered.
    pub private_stored: HookList<PrivateStored>,
    /// A vCard was stored (XEP-0398 keeps the PEP avatar in step): observers, run before the
    /// set is answered.
    pub vcard_stored: HookList<VCardStored>,
}
