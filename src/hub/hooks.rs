//! Typed hook points: the closed set of places where modules meet stanza flow, each with its
//! own payload type. Modules meet here instead of importing each other.
//!
//! Generic over the context the hooks hand their functions (`C`, the server): this file never
//! names the server. Modules use the instantiation for `Server` (`router::hooks`).
//!
//! Two kinds, never mixed in one list:
//! - **Interceptors** ([`Interceptors`]) may change a stanza or stop it (`Flow::Handled`). They
//!   run by [`Stage`], in the order the enum declares (the reason for each stage's place is
//!   written on it); interceptors sharing a stage must not depend on each other's order.
//! - **Observers** ([`Observers`]) see an outcome the router already decided, through a shared
//!   reference: they cannot change or stop anything, and no observer depends on another's
//!   order. Work that must follow other observers' work has its own, later point
//!   (`session_released` after `session_closed`).
//!
//! Registering, for a module of a later issue:
//! ```ignore
//! r.hooks.inbound.add_for(Stage::Policy, "mymodule", |_, routed| wants(routed), |server, routed| async move {
//!     Flow::Continue(routed)
//! });
//! r.hooks.sent.observe("mymodule", |server, routed| look_at(server, routed));
//! r.hooks.session_closed.observe_async("mymodule", |server, event| {
//!     let entry = event.entry.clone();
//!     async move { cleanup(entry).await }
//! });
//! ```

use std::sync::Arc;

use futures::future::BoxFuture;
use jid::{BareJid, FullJid, Jid};
use minidom::Element;

use crate::session::{Recipient, SessionEntry, SessionRecord};

/// A synchronous verdict on one recipient of presence the router fans out to an account
/// (`router::deliver_to_account`: roster broadcasts, probe answers, initial presence): `from`
/// the sending resource, `to` the receiving resource's record. `false`: not delivered.
pub type RecipientFilterFn<C> = Arc<dyn Fn(&C, &FullJid, &SessionRecord, &Element) -> bool + Send + Sync>;

/// The per-recipient filters (privacy and blocking). Synchronous, so that fan-out stays a
/// loop over the directory: a filter decides from what it has in memory. Empty: everything
/// is allowed, at the cost of one length check.
pub struct RecipientFilters<C> {
    entries: Vec<(&'static str, RecipientFilterFn<C>)>,
}

impl<C> Default for RecipientFilters<C> {
    fn default() -> Self {
        RecipientFilters { entries: Vec::new() }
    }
}

impl<C> RecipientFilters<C> {
    /// Adds a filter; `module` names it in logs.
    pub fn add<F>(&mut self, module: &'static str, f: F)
    where
        F: Fn(&C, &FullJid, &SessionRecord, &Element) -> bool + Send + Sync + 'static,
    {
        self.entries.push((module, Arc::new(f)));
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Whether every filter lets presence `stanza` from `from` reach session `to`.
    #[inline]
    pub fn allows(&self, server: &C, from: &FullJid, to: &SessionRecord, stanza: &Element) -> bool {
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

/// An interceptor's verdict.
pub enum Flow<T> {
    /// Not (fully) handled: pass the payload to the next interceptor or the default.
    Continue(T),
    /// Handled: nothing else runs, not even the observers of the outcome.
    Handled,
}

/// Where an interceptor runs in its chain. Chains run stage by stage in the order declared
/// here; each stage says why it comes where it does. Within a stage, registration order
/// (interceptors sharing a stage must not depend on it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Stage {
    /// What the server refuses whoever asks (the blacklist). First, so that no other module
    /// (policy, roster, offline storage, observers) ever sees a refused stanza or session.
    Admission,
    /// The users' own rules (XEP-0191 blocking, XEP-0016 privacy lists). Before `Protocol`, so
    /// that a stanza a user refused never reaches a module that would act on it (a
    /// subscription request from a blocked contact is not stored).
    Policy,
    /// Modules that take a stanza over and apply its protocol (roster subscriptions and
    /// broadcasts, offline storage). Last: they see only what admission and policy let by.
    Protocol,
}

pub type InterceptorFn<C, T> = Arc<dyn Fn(Arc<C>, T) -> BoxFuture<'static, Flow<T>> + Send + Sync>;

/// A synchronous pre-check: whether an interceptor wants this payload at all. Lets the hot
/// path (every chat message crosses several hook points) skip it without boxing a future or
/// touching the server's reference count. It may read module state it captured (caches).
pub type WantsFn<C, T> = Arc<dyn Fn(&C, &T) -> bool + Send + Sync>;

struct Interceptor<C, T> {
    stage: Stage,
    module: &'static str,
    wants: Option<WantsFn<C, T>>,
    handler: InterceptorFn<C, T>,
}

/// The interceptors of one hook point: they may change the payload or stop it.
pub struct Interceptors<C, T> {
    entries: Vec<Interceptor<C, T>>,
}

impl<C, T> Default for Interceptors<C, T> {
    fn default() -> Self {
        Interceptors { entries: Vec::new() }
    }
}

impl<C: Send + Sync + 'static, T: Send + 'static> Interceptors<C, T> {
    /// Adds an interceptor at `stage`; `module` names it in logs.
    pub fn add<F, Fut>(&mut self, stage: Stage, module: &'static str, f: F)
    where
        F: Fn(Arc<C>, T) -> Fut + Send + Sync + 'static,
        Fut: std::future::Future<Output = Flow<T>> + Send + 'static,
    {
        self.insert(stage, module, None, f);
    }

    /// Like [`Interceptors::add`], for an interceptor that only wants the payloads `wants`
    /// accepts; the others pass by without it running.
    pub fn add_for<W, F, Fut>(&mut self, stage: Stage, module: &'static str, wants: W, f: F)
    where
        W: Fn(&C, &T) -> bool + Send + Sync + 'static,
        F: Fn(Arc<C>, T) -> Fut + Send + Sync + 'static,
        Fut: std::future::Future<Output = Flow<T>> + Send + 'static,
    {
        self.insert(stage, module, Some(Arc::new(wants)), f);
    }

    fn insert<F, Fut>(&mut self, stage: Stage, module: &'static str, wants: Option<WantsFn<C, T>>, f: F)
    where
        F: Fn(Arc<C>, T) -> Fut + Send + Sync + 'static,
        Fut: std::future::Future<Output = Flow<T>> + Send + 'static,
    {
        let handler: InterceptorFn<C, T> = Arc::new(move |s, p| Box::pin(f(s, p)));
        self.entries.push(Interceptor {
            stage,
            module,
            wants,
            handler,
        });
        // Stable: within a stage, registration order.
        self.entries.sort_by_key(|e| e.stage);
    }

    /// The modules registered here with their stage, in the order they run (logs, tests).
    pub fn modules(&self) -> impl Iterator<Item = (Stage, &'static str)> + '_ {
        self.entries.iter().map(|e| (e.stage, e.module))
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Runs the chain.
    pub async fn run(&self, server: &Arc<C>, mut payload: T) -> Flow<T> {
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

type SyncObserverFn<C, T> = Arc<dyn Fn(&Arc<C>, &T) + Send + Sync>;
type AsyncObserverFn<C, T> = Arc<dyn Fn(&Arc<C>, &T) -> BoxFuture<'static, ()> + Send + Sync>;

enum Observer<C, T> {
    /// Cheap work done in place (a carbon copy, a spawn): no future is boxed.
    Sync(SyncObserverFn<C, T>),
    /// Work that waits (storage): the observer takes what it needs from the payload and
    /// returns a future that owns it.
    Async(AsyncObserverFn<C, T>),
}

/// The observers of one hook point: they see an outcome through a shared reference and
/// cannot change it. They are awaited one after the other, so the point's caller goes on
/// once they are done (a session starts reading only when `session_opened` observers ran).
pub struct Observers<C, T> {
    entries: Vec<(&'static str, Observer<C, T>)>,
}

impl<C, T> Default for Observers<C, T> {
    fn default() -> Self {
        Observers { entries: Vec::new() }
    }
}

impl<C, T> Observers<C, T> {
    /// Adds a synchronous observer; `module` names it in logs.
    pub fn observe<F>(&mut self, module: &'static str, f: F)
    where
        F: Fn(&Arc<C>, &T) + Send + Sync + 'static,
    {
        self.entries.push((module, Observer::Sync(Arc::new(f))));
    }

    /// Adds an observer whose work waits: `f` reads the payload and returns a future that
    /// owns what it took.
    pub fn observe_async<F, Fut>(&mut self, module: &'static str, f: F)
    where
        F: Fn(&Arc<C>, &T) -> Fut + Send + Sync + 'static,
        Fut: std::future::Future<Output = ()> + Send + 'static,
    {
        let f: AsyncObserverFn<C, T> = Arc::new(move |s, p| Box::pin(f(s, p)));
        self.entries.push((module, Observer::Async(f)));
    }

    /// The modules registered here (logs, tests).
    pub fn modules(&self) -> impl Iterator<Item = &'static str> + '_ {
        self.entries.iter().map(|(m, _)| *m)
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Shows `payload` to every observer.
    pub async fn notify(&self, server: &Arc<C>, payload: &T) {
        for (_, observer) in &self.entries {
            match observer {
                Observer::Sync(f) => f(server, payload),
                Observer::Async(f) => f(server, payload).await,
            }
        }
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

/// An account is being removed (XEP-0077 in-band, XEP-0133 delete-user, the `user del`
/// command): fired before its stored data is deleted, so that observers can still read it
/// (the roster tells the contacts, RFC 6121 §2.5.2 and XEP-0077 §3.2).
#[derive(Debug, Clone)]
pub struct AccountRemoved {
    pub account: BareJid,
    /// The session that asked for its own removal (in-band); `None` for an administrator's.
    pub by: Option<FullJid>,
}

/// Every hook point. Interceptors first, then observers; the comment of each says when it runs.
pub struct Hooks<C> {
    // --- Interceptors: may change or stop the stanza (or session), by `Stage`. ---
    /// Each stanza a local session sends, validated and stamped, before routing: blacklist
    /// (`Admission`), privacy and blocking of the sender (`Policy`), the roster's outbound
    /// subscriptions and directed presence (`Protocol`).
    pub outbound: Interceptors<C, Routed>,
    /// A stanza addressed to a local bare or full JID, before delivery, offline storage or an
    /// IQ handler: privacy and blocking of the recipient (`Policy`). `to` is the recipient.
    /// Skipped when empty. Components that deliver to users themselves (MUC private messages
    /// and invitations) run it too, with `from` the occupant or inviter.
    pub inbound: Interceptors<C, Routed>,
    /// Presence without `to` from a local session, after the router recorded the session's
    /// availability: the roster's broadcast and probes (`Protocol`). Default: tell the
    /// account's other resources.
    pub presence_broadcast: Interceptors<C, Routed>,
    /// Presence addressed to a local bare JID: blocking of subscription stanzas (`Policy`), the
    /// roster's subscriptions and probes (`Protocol`). Default: available and unavailable
    /// presence go to the account's available resources; others are dropped.
    pub presence_to_account: Interceptors<C, Routed>,
    /// A chat/normal message for a local account that no resource can take now: offline
    /// storage (`Protocol`). Default: `service-unavailable` to the sender.
    pub message_offline: Interceptors<C, Routed>,
    /// A resource was bound, before the session reads its first stanza: the blacklist may
    /// refuse it (`Admission`, `Handled`: kicked, and `session_opened` observers do not run).
    pub session_opening: Interceptors<C, SessionEvent>,
    /// One recipient of presence the router fans out to an account by rule
    /// (`router::deliver_to_account`: the roster's broadcasts, unavailable presence, probe
    /// answers, contacts' presence on initial presence), which `outbound` and `inbound` do
    /// not see. Consulted before each such delivery; not for the account's own resources.
    /// Filters are a conjunction: their order does not matter.
    pub recipient_filter: RecipientFilters<C>,

    // --- Observers: see the outcome, cannot change it. ---
    /// A stanza a local session sent that every `outbound` interceptor let through, just
    /// before the router delivers it (carbons of sent messages).
    pub sent: Observers<C, Routed>,
    /// A session's own broadcast presence (no `to`) once the router (or the roster) has
    /// broadcast it (MUC leaves rooms on unavailable, offline delivery on initial presence).
    pub presence_broadcasted: Observers<C, Routed>,
    /// A message was handed to some of an account's sessions while it has others bound
    /// (carbons: only those others can need a copy, so a single-session account costs
    /// nothing). The router has already chosen the recipients.
    pub message_delivered: Observers<C, Delivered>,
    /// A session opened and was not refused (the account's privacy cache, the message of
    /// the day).
    pub session_opened: Observers<C, SessionEvent>,
    /// A session ended, after its unavailable presence was routed (the roster's presence
    /// bookkeeping, MUC rooms it was still in).
    pub session_closed: Observers<C, SessionEvent>,
    /// After every `session_closed` observer finished: dropping per-account state that those
    /// observers still read (the privacy cache, which filters their unavailable presence).
    pub session_released: Observers<C, SessionEvent>,
    /// An account is being removed, from any path (see [`AccountRemoved`]).
    pub account_removed: Observers<C, AccountRemoved>,
    /// A roster item was stored (added, changed, removed).
    pub roster_changed: RosterObservers,
    /// Private XML was stored (XEP-0402 keeps its bookmarks in step); run before the set is
    /// answered.
    pub private_stored: Observers<C, PrivateStored>,
    /// A vCard was stored (XEP-0398 keeps the PEP avatar in step); run before the set is
    /// answered.
    pub vcard_stored: Observers<C, VCardStored>,
}

impl<C> Default for Hooks<C> {
    fn default() -> Self {
        Hooks {
            outbound: Default::default(),
            inbound: Default::default(),
            presence_broadcast: Default::default(),
            presence_to_account: Default::default(),
            message_offline: Default::default(),
            session_opening: Default::default(),
            recipient_filter: Default::default(),
            sent: Default::default(),
            presence_broadcasted: Default::default(),
            message_delivered: Default::default(),
            session_opened: Default::default(),
            session_closed: Default::default(),
            session_released: Default::default(),
            account_removed: Default::default(),
            roster_changed: Default::default(),
            private_stored: Default::default(),
            vcard_stored: Default::default(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_later_stage_runs_later_whatever_the_registration_order() {
        let mut list: Interceptors<(), ()> = Interceptors::default();
        list.add(Stage::Protocol, "c", |_, ()| async { Flow::Continue(()) });
        list.add(Stage::Admission, "a", |_, ()| async { Flow::Continue(()) });
        list.add(Stage::Policy, "b1", |_, ()| async { Flow::Continue(()) });
        list.add(Stage::Policy, "b2", |_, ()| async { Flow::Continue(()) });
        let order: Vec<_> = list.modules().map(|(_, m)| m).collect();
        assert_eq!(order, ["a", "b1", "b2", "c"]);
    }
}
