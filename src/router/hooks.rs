//! Typed hook points: the closed set of places where modules meet stanza flow, each with its
//! own payload type. Modules meet here instead of importing each other.
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

pub type InterceptorFn<T> = Arc<dyn Fn(Arc<Server>, T) -> BoxFuture<'static, Flow<T>> + Send + Sync>;

/// A synchronous pre-check: whether an interceptor wants this payload at all. Lets the hot
/// path (every chat message crosses several hook points) skip it without boxing a future or
/// touching the server's reference count. It may read module state it captured (caches).
pub type WantsFn<T> = Arc<dyn Fn(&Server, &T) -> bool + Send + Sync>;

struct Interceptor<T> {
    stage: Stage,
    module: &'static str,
    wants: Option<WantsFn<T>>,
    handler: InterceptorFn<T>,
}

/// The interceptors of one hook point: they may change the payload or stop it.
pub struct Interceptors<T> {
    entries: Vec<Interceptor<T>>,
}

impl<T> Default for Interceptors<T> {
    fn default() -> Self {
        Interceptors { entries: Vec::new() }
    }
}

impl<T: Send + 'static> Interceptors<T> {
    /// Adds an interceptor at `stage`; `module` names it in logs.
    pub fn add<F, Fut>(&mut self, stage: Stage, module: &'static str, f: F)
    where
        F: Fn(Arc<Server>, T) -> Fut + Send + Sync + 'static,
        Fut: std::future::Future<Output = Flow<T>> + Send + 'static,
    {
        self.insert(stage, module, None, f);
    }

    /// Like [`Interceptors::add`], for an interceptor that only wants the payloads `wants`
    /// accepts; the others pass by without it running.
    pub fn add_for<W, F, Fut>(&mut self, stage: Stage, module: &'static str, wants: W, f: F)
    where
        W: Fn(&Server, &T) -> bool + Send + Sync + 'static,
        F: Fn(Arc<Server>, T) -> Fut + Send + Sync + 'static,
        Fut: std::future::Future<Output = Flow<T>> + Send + 'static,
    {
        self.insert(stage, module, Some(Arc::new(wants)), f);
    }

    fn insert<F, Fut>(&mut self, stage: Stage, module: &'static str, wants: Option<WantsFn<T>>, f: F)
    where
        F: Fn(Arc<Server>, T) -> Fut + Send + Sync + 'static,
        Fut: std::future::Future<Output = Flow<T>> + Send + 'static,
    {
        let handler: InterceptorFn<T> = Arc::new(move |s, p| Box::pin(f(s, p)));
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

type SyncObserverFn<T> = Arc<dyn Fn(&Arc<Server>, &T) + Send + Sync>;
type AsyncObserverFn<T> = Arc<dyn Fn(&Arc<Server>, &T) -> BoxFuture<'static, ()> + Send + Sync>;

enum Observer<T> {
    /// Cheap work done in place (a carbon copy, a spawn): no future is boxed.
    Sync(SyncObserverFn<T>),
    /// Work that waits (storage): the observer takes what it needs from the payload and
    /// returns a future that owns it.
    Async(AsyncObserverFn<T>),
}

/// The observers of one hook point: they see an outcome through a shared reference and
/// cannot change it. They are awaited one after the other, so the point's caller goes on
/// once they are done (a session starts reading only when `session_opened` observers ran).
pub struct Observers<T> {
    entries: Vec<(&'static str, Observer<T>)>,
}

impl<T> Default for Observers<T> {
    fn default() -> Self {
        Observers { entries: Vec::new() }
    }
}

impl<T> Observers<T> {
    /// Adds a synchronous observer; `module` names it in logs.
    pub fn observe<F>(&mut self, module: &'static str, f: F)
    where
        F: Fn(&Arc<Server>, &T) + Send + Sync + 'static,
    {
        self.entries.push((module, Observer::Sync(Arc::new(f))));
    }

    /// Adds an observer whose work waits: `f` reads the payload and returns a future that
    /// owns what it took.
    pub fn observe_async<F, Fut>(&mut self, module: &'static str, f: F)
    where
        F: Fn(&Arc<Server>, &T) -> Fut + Send + Sync + 'static,
        Fut: std::future::Future<Output = ()> + Send + 'static,
    {
        let f: AsyncObserverFn<T> = Arc::new(move |s, p| Box::pin(f(s, p)));
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
    pub async fn notify(&self, server: &Arc<Server>, payload: &T) {
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
#[derive(Default)]
pub struct Hooks {
    // --- Interceptors: may change or stop the stanza (or session), by `Stage`. ---
    /// Each stanza a local session sends, validated and stamped, before routing: blacklist
    /// (`Admission`), privacy and blocking of the sender (`Policy`), the roster's outbound
    /// subscriptions and directed presence (`Protocol`).
    pub outbound: Interceptors<Routed>,
    /// A stanza addressed to a local bare or full JID, before delivery, offline storage or an
    /// IQ handler: privacy and blocking of the recipient (`Policy`). `to` is the recipient.
    /// Skipped when empty. Components that deliver to users themselves (MUC private messages
    /// and invitations) run it too, with `from` the occupant or inviter.
    pub inbound: Interceptors<Routed>,
    /// Presence without `to` from a local session, after the router recorded the session's
    /// availability: the roster's broadcast and probes (`Protocol`). Default: tell the
    /// account's other resources.
    pub presence_broadcast: Interceptors<Routed>,
    /// Presence addressed to a local bare JID: blocking of subscription stanzas (`Policy`), the
    /// roster's subscriptions and probes (`Protocol`). Default: available and unavailable
    /// presence go to the account's available resources; others are dropped.
    pub presence_to_account: Interceptors<Routed>,
    /// A chat/normal message for a local account that no resource can take now: offline
    /// storage (`Protocol`). Default: `service-unavailable` to the sender.
    pub message_offline: Interceptors<Routed>,
    /// A resource was bound, before the session reads its first stanza: the blacklist may
    /// refuse it (`Admission`, `Handled`: kicked, and `session_opened` observers do not run).
    pub session_opening: Interceptors<SessionEvent>,
    /// One recipient of presence the router fans out to an account by rule
    /// (`router::deliver_to_account`: the roster's broadcasts, unavailable presence, probe
    /// answers, contacts' presence on initial presence), which `outbound` and `inbound` do
    /// not see. Consulted before each such delivery; not for the account's own resources.
    /// Filters are a conjunction: their order does not matter.
    pub recipient_filter: RecipientFilters,

    // --- Observers: see the outcome, cannot change it. ---
    /// A stanza a local session sent that every `outbound` interceptor let through, just
    /// before the router delivers it (carbons of sent messages).
    pub sent: Observers<Routed>,
    /// A session's own broadcast presence (no `to`) once the router (or the roster) has
    /// broadcast it (MUC leaves rooms on unavailable, offline delivery on initial presence).
    pub presence_broadcasted: Observers<Routed>,
    /// A message was handed to some of an account's sessions while it has others bound
    /// (carbons: only those others can need a copy, so a single-session account costs
    /// nothing). The router has already chosen the recipients.
    pub message_delivered: Observers<Delivered>,
    /// A session opened and was not refused (the account's privacy cache, the message of
    /// the day).
    pub session_opened: Observers<SessionEvent>,
    /// A session ended, after its unavailable presence was routed (the roster's presence
    /// bookkeeping, MUC rooms it was still in).
    pub session_closed: Observers<SessionEvent>,
    /// After every `session_closed` observer finished: dropping per-account state that those
    /// observers still read (the privacy cache, which filters their unavailable presence).
    pub session_released: Observers<SessionEvent>,
    /// An account is being removed, from any path (see [`AccountRemoved`]).
    pub account_removed: Observers<AccountRemoved>,
    /// A roster item was stored (added, changed, removed).
    pub roster_changed: RosterObservers,
    /// Private XML was stored (XEP-0402 keeps its bookmarks in step); run before the set is
    /// answered.
    pub private_stored: Observers<PrivateStored>,
    /// A vCard was stored (XEP-0398 keeps the PEP avatar in step); run before the set is
    /// answered.
    pub vcard_stored: Observers<VCardStored>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::router::registry::Registry;

    /// Every interceptor chain of the server's modules, in the order it runs: the stages of
    /// ARCHITECTURE.md's hook table. A module that lands in another place fails here.
    #[test]
    fn interceptor_chains_run_by_stage_in_the_documented_order() {
        use Stage::*;
        let registry = Registry::build(crate::modules::all());
        let hooks = &registry.hooks;
        let chain = |list: &Interceptors<Routed>| list.modules().collect::<Vec<_>>();
        assert_eq!(
            chain(&hooks.outbound),
            [
                (Admission, "blacklist"),
                (Policy, "blocking"),
                (Protocol, "roster"),
                // Answers to its caps queries; the XEP-0398 avatar hash in presence.
                (Protocol, "pubsub"),
                (Protocol, "pubsub"),
                // The sender's archive copy, forged stanza-ids removed.
                (Protocol, "mam")
            ]
        );
        // push: the app servers' answers to its publishes.
        assert_eq!(
            chain(&hooks.inbound),
            [(Policy, "blocking"), (Protocol, "mam"), (Protocol, "push")]
        );
        assert_eq!(
            chain(&hooks.presence_to_account),
            [(Policy, "blocking"), (Protocol, "roster")]
        );
        assert_eq!(chain(&hooks.presence_broadcast), [(Protocol, "roster")]);
        // push looks (and passes on) before offline storage takes the message over.
        assert_eq!(
            chain(&hooks.message_offline),
            [(Policy, "push"), (Protocol, "offline")]
        );
        assert_eq!(
            hooks.session_opening.modules().collect::<Vec<_>>(),
            [(Admission, "blacklist")]
        );
        // Observers: who looks, in no order that matters.
        let sorted = |mut list: Vec<&'static str>| {
            list.sort();
            list
        };
        assert_eq!(sorted(hooks.sent.modules().collect()), ["carbons"]);
        assert_eq!(
            sorted(hooks.session_closed.modules().collect()),
            ["mam", "muc", "pubsub", "roster"]
        );
        assert_eq!(sorted(hooks.session_released.modules().collect()), ["blocking"]);
        assert_eq!(sorted(hooks.account_removed.modules().collect()), ["roster"]);
        assert_eq!(
            sorted(hooks.presence_broadcasted.modules().collect()),
            ["muc", "offline", "pubsub"]
        );
    }

    #[test]
    fn a_later_stage_runs_later_whatever_the_registration_order() {
        let mut list: Interceptors<()> = Interceptors::default();
        list.add(Stage::Protocol, "c", |_, ()| async { Flow::Continue(()) });
        list.add(Stage::Admission, "a", |_, ()| async { Flow::Continue(()) });
        list.add(Stage::Policy, "b1", |_, ()| async { Flow::Continue(()) });
        list.add(Stage::Policy, "b2", |_, ()| async { Flow::Continue(()) });
        let order: Vec<_> = list.modules().map(|(_, m)| m).collect();
        assert_eq!(order, ["a", "b1", "b2", "c"]);
    }
}
