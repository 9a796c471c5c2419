//! The session directory: who is bound, as which full JID, what routing decides from, and a
//! handle to reach each of them.
//!
//! Routing and modules see sessions only through [`SessionDirectory`]. Its lookups return a
//! [`Recipient`]: today always a session on this node, later also one on another node of a
//! cluster (a replicated directory), without its callers changing. What routing decides from
//! (availability, priority, last presence, carbons, roster pushes, the active privacy list)
//! is the [`SessionRecord`], plain data a replicated directory can carry; what only the local
//! connection has (mailbox, kick, module extensions) stays on [`SessionEntry`].

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicU64, Ordering};

use dashmap::DashMap;
use futures::future::BoxFuture;
use jid::{BareJid, FullJid};
use minidom::Element;
use tokio::sync::oneshot;

use super::{BindOutcome, DeliveryError, SessionEntry, SessionLink, SharedStanza};
use crate::error::{StreamError, StreamErrorCondition};

/// The routing facts of one bound resource: what the router's rules (RFC 6121 §8.5) and
/// its per-recipient decisions read. Plain data, so a directory can replicate it.
pub struct SessionRecord {
    pub jid: FullJid,
    /// Unique per connection, so a replaced session's late unbind cannot remove its successor.
    pub conn_id: u64,
    /// Set by initial presence (RFC 6121 §4.2); only available resources get bare-JID traffic.
    available: AtomicBool,
    priority: AtomicI32,
    /// The last presence broadcast by this resource (for probes and new resources).
    presence: std::sync::Mutex<Option<Element>>,
    /// XEP-0280: the resource enabled carbons.
    wants_carbons: AtomicBool,
    /// RFC 6121 §2.1.6: the resource asked for the roster, so it gets roster pushes.
    roster_pushes: AtomicBool,
    /// XEP-0016: the name of the resource's active privacy list.
    privacy_list: std::sync::Mutex<Option<String>>,
}

impl SessionRecord {
    pub(super) fn new(jid: FullJid, conn_id: u64) -> SessionRecord {
        SessionRecord {
            jid,
            conn_id,
            available: AtomicBool::new(false),
            priority: AtomicI32::new(0),
            presence: std::sync::Mutex::new(None),
            wants_carbons: AtomicBool::new(false),
            roster_pushes: AtomicBool::new(false),
            privacy_list: std::sync::Mutex::new(None),
        }
    }

    pub fn is_available(&self) -> bool {
        self.available.load(Ordering::Acquire)
    }

    pub fn priority(&self) -> i32 {
        self.priority.load(Ordering::Acquire)
    }

    /// Available with a non-negative priority: may receive messages to the bare JID.
    pub fn is_eligible(&self) -> bool {
        self.is_available() && self.priority() >= 0
    }

    /// Records a broadcast presence: availability, priority and the stanza itself.
    pub fn set_presence(&self, available: bool, priority: i32, stanza: Option<Element>) {
        self.priority.store(priority, Ordering::Release);
        self.available.store(available, Ordering::Release);
        *self.presence.lock().unwrap_or_else(|e| e.into_inner()) = stanza;
    }

    /// The last available presence this resource broadcast, if it is available.
    pub fn last_presence(&self) -> Option<Element> {
        self.presence.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    pub fn wants_carbons(&self) -> bool {
        self.wants_carbons.load(Ordering::Acquire)
    }

    pub fn set_wants_carbons(&self, on: bool) {
        self.wants_carbons.store(on, Ordering::Release);
    }

    pub fn wants_roster_pushes(&self) -> bool {
        self.roster_pushes.load(Ordering::Acquire)
    }

    pub fn set_wants_roster_pushes(&self, on: bool) {
        self.roster_pushes.store(on, Ordering::Release);
    }

    /// The active privacy list's name, if any.
    pub fn privacy_list(&self) -> Option<String> {
        self.privacy_list
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Whether a privacy list is active (no allocation).
    pub fn has_privacy_list(&self) -> bool {
        self.privacy_list
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .is_some()
    }

    /// Whether `name` is the active privacy list (no allocation).
    pub fn privacy_list_is(&self, name: &str) -> bool {
        self.privacy_list
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .as_deref()
            == Some(name)
    }

    pub fn set_privacy_list(&self, name: Option<String>) {
        *self.privacy_list.lock().unwrap_or_else(|e| e.into_inner()) = name;
    }
}

/// A way to reach one bound resource: its record, and where its session lives. Cloning is a
/// reference-count bump. Callers read the record (`Deref`) and hand the handle to the router
/// to deliver; only the session and router layers deliver through it.
#[derive(Clone)]
pub struct Recipient {
    at: Place,
}

#[derive(Clone)]
enum Place {
    /// A session of this node. (A session of another node of a cluster comes next.)
    Local(Arc<SessionEntry>),
}

impl std::ops::Deref for Recipient {
    type Target = SessionRecord;

    fn deref(&self) -> &SessionRecord {
        match &self.at {
            Place::Local(entry) => entry,
        }
    }
}

impl Recipient {
    pub fn local_session(entry: Arc<SessionEntry>) -> Recipient {
        Recipient {
            at: Place::Local(entry),
        }
    }

    /// The session itself when it lives on this node (its module extensions, its close).
    pub fn local(&self) -> Option<&Arc<SessionEntry>> {
        match &self.at {
            Place::Local(entry) => Some(entry),
        }
    }

    /// Whether both handles reach the same session.
    pub fn same(&self, other: &Recipient) -> bool {
        match (&self.at, &other.at) {
            (Place::Local(a), Place::Local(b)) => Arc::ptr_eq(a, b),
        }
    }

    /// Asks the session to close with a stream error (conflict, an admin's kick...).
    /// Returns whether this call decided the reason.
    pub fn kick(&self, reason: StreamError) -> bool {
        match &self.at {
            Place::Local(entry) => entry.kick(reason),
        }
    }

    /// Whether the session was asked to close.
    pub fn is_kicked(&self) -> bool {
        match &self.at {
            Place::Local(entry) => entry.is_kicked(),
        }
    }

    /// Queues a stanza without waiting (see `SessionEntry::deliver`). Router only.
    pub(crate) fn deliver(&self, stanza: Element) -> Result<(), (DeliveryError, Element)> {
        match &self.at {
            Place::Local(entry) => entry.deliver(stanza),
        }
    }

    /// Queues a stanza and learns when it was written (see `SessionEntry::deliver_tracked`).
    /// Router only.
    pub(crate) fn deliver_tracked(
        &self,
        stanza: Element,
    ) -> Result<oneshot::Receiver<()>, (DeliveryError, Element)> {
        match &self.at {
            Place::Local(entry) => entry.deliver_tracked(stanza),
        }
    }

    /// Queues one copy of a shared stanza. Router only.
    pub(crate) fn deliver_shared(&self, stanza: &Arc<SharedStanza>) -> Result<(), DeliveryError> {
        match &self.at {
            Place::Local(entry) => entry.deliver_shared(stanza),
        }
    }
}

/// Who is bound where. The local in-memory table is the first implementation; a replicated
/// one (a cluster's) answers the same lookups with handles to other nodes' sessions too.
pub trait SessionDirectory: Send + Sync {
    /// A fresh connection id (unique on this node).
    fn next_conn_id(&self) -> u64;

    /// Binds `jid` on this node. An existing session with the same full JID is replaced: it
    /// is kicked with `<conflict/>` (RFC 6120 §7.7.2.2, the "override" policy).
    fn bind(&self, jid: FullJid, conn_id: u64, queue: usize, max_resources: usize) -> BindOutcome;

    /// Ends the session bound to `jid`, if any, before a new connection binds it (RFC 6120
    /// §7.7.2.2): it is kicked with `<conflict/>` and given `grace` to finish closing, so its
    /// unavailable presence and close hooks reach contacts before anything of its successor.
    fn take_over<'a>(&'a self, jid: &'a FullJid, grace: std::time::Duration) -> BoxFuture<'a, ()>;

    /// Removes a session, unless it was already replaced by a newer one.
    fn unbind(&self, jid: &FullJid, conn_id: u64);

    /// The resource bound as `jid`, wherever it lives.
    fn get(&self, jid: &FullJid) -> Option<Recipient>;

    /// The session bound as `jid` on this node (for its own module state).
    fn local(&self, jid: &FullJid) -> Option<Arc<SessionEntry>>;

    /// How many resources an account has bound (no allocation).
    fn count_of(&self, bare: &BareJid) -> usize;

    /// All resources of an account (bound, available or not).
    fn sessions_of(&self, bare: &BareJid) -> Vec<Recipient>;

    /// How many sessions this node holds.
    fn session_count(&self) -> usize;

    /// Every session of this node.
    fn all_sessions(&self) -> Vec<Recipient>;
}

/// All sessions on this node, keyed by bare JID.
#[derive(Default)]
pub struct LocalDirectory {
    by_bare: DashMap<BareJid, Vec<Recipient>>,
    next_conn_id: AtomicU64,
}

impl LocalDirectory {
    pub fn new() -> Self {
        Self::default()
    }
}

fn conflict() -> StreamError {
    StreamError::with_text(
        StreamErrorCondition::Conflict,
        "replaced by a new connection with the same resource",
    )
}

impl SessionDirectory for LocalDirectory {
    fn next_conn_id(&self) -> u64 {
        self.next_conn_id.fetch_add(1, Ordering::Relaxed) + 1
    }

    fn bind(&self, jid: FullJid, conn_id: u64, queue: usize, max_resources: usize) -> BindOutcome {
        let (entry, mailbox) = SessionEntry::new(jid.clone(), conn_id, queue);
        let handle = Recipient::local_session(entry.clone());
        let replaced = {
            let mut list = self.by_bare.entry(jid.to_bare()).or_default();
            let existing = list.iter().position(|e| e.jid == jid);
            match existing {
                Some(i) => Some(std::mem::replace(&mut list[i], handle)),
                None if list.len() >= max_resources => return BindOutcome::TooManyResources,
                None => {
                    list.push(handle);
                    None
                }
            }
        };
        if let Some(old) = replaced {
            old.kick(conflict());
        }
        BindOutcome::Bound(SessionLink { entry, mailbox })
    }

    fn take_over<'a>(&'a self, jid: &'a FullJid, grace: std::time::Duration) -> BoxFuture<'a, ()> {
        Box::pin(async move {
            let Some(old) = self.local(jid) else { return };
            old.kick(conflict());
            let _ = tokio::time::timeout(grace, old.ended()).await;
        })
    }

    fn unbind(&self, jid: &FullJid, conn_id: u64) {
        let bare = jid.to_bare();
        self.by_bare.remove_if_mut(&bare, |_, list| {
            list.retain(|e| !(e.jid == *jid && e.conn_id == conn_id));
            list.is_empty()
        });
    }

    fn get(&self, jid: &FullJid) -> Option<Recipient> {
        self.by_bare
            .get(&jid.to_bare())?
            .iter()
            .find(|e| e.jid == *jid)
            .cloned()
    }

    fn local(&self, jid: &FullJid) -> Option<Arc<SessionEntry>> {
        self.get(jid)?.local().cloned()
    }

    fn count_of(&self, bare: &BareJid) -> usize {
        self.by_bare.get(bare).map_or(0, |l| l.len())
    }

    fn sessions_of(&self, bare: &BareJid) -> Vec<Recipient> {
        self.by_bare.get(bare).map(|l| l.clone()).unwrap_or_default()
    }

    fn session_count(&self) -> usize {
        self.by_bare.iter().map(|l| l.len()).sum()
    }

    fn all_sessions(&self) -> Vec<Recipient> {
        self.by_bare.iter().flat_map(|l| l.value().clone()).collect()
    }
}
