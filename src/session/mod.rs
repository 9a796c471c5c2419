//! The session table: who is connected, as which full JID, and how to reach them.
//!
//! Each connected resource has a bounded mailbox. Delivery never waits: a full mailbox means
//! the client cannot keep up, and that session is disconnected instead of growing memory.
//! This is the single-node table; the cluster issue puts a replicated one beside it.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicU64, Ordering};

use dashmap::DashMap;
use jid::{BareJid, FullJid};
use minidom::Element;
use tokio::sync::{Notify, mpsc, oneshot};

use crate::error::{StreamError, StreamErrorCondition};

/// What a session's writer receives.
#[derive(Debug)]
///
/// Stanzas are boxed: every session's channel preallocates a block of slots, and a slot the
/// size of an `Element` would cost kilobytes per idle connection.
pub enum Outbound {
    Stanza(Box<Element>),
    /// A stanza whose sender must learn it reached the client's socket (offline storage deletes
    /// a message only then). The writer fires `written` after the flush that carried it
    /// succeeded. If the session ends first it is dropped unfired, and the stanza is not
    /// bounced: whoever sent it still holds it.
    Tracked(Box<Element>, oneshot::Sender<()>),
}

impl Outbound {
    /// The stanza, and the acknowledgement to fire once it is written, if tracked.
    pub fn into_parts(self) -> (Element, Option<oneshot::Sender<()>>) {
        match self {
            Outbound::Stanza(el) => (*el, None),
            Outbound::Tracked(el, written) => (*el, Some(written)),
        }
    }
}

/// Why a delivery did not happen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeliveryError {
    /// The session's queue was full; it is being disconnected.
    Overloaded,
    /// The session ended before the stanza could be queued.
    Gone,
}

/// One bound resource, shared between the table and its connection task.
pub struct SessionEntry {
    pub jid: FullJid,
    /// Unique per connection, so a replaced session's late unbind cannot remove its successor.
    pub conn_id: u64,
    tx: mpsc::Sender<Outbound>,
    /// Set by initial presence (RFC 6121 §4.2); only available resources get bare-JID traffic.
    available: AtomicBool,
    priority: AtomicI32,
    kick_reason: std::sync::Mutex<Option<StreamError>>,
    kicked: Notify,
    /// Set once the connection finished closing (unavailable routed, close hooks run).
    ended: AtomicBool,
    ended_notify: Notify,
    /// The last presence broadcast by this resource (for probes and new resources).
    presence: std::sync::Mutex<Option<Element>>,
    /// Per-session state owned by modules, one value per type (see `extension`).
    extensions: std::sync::Mutex<Vec<Arc<dyn std::any::Any + Send + Sync>>>,
}

impl SessionEntry {
    pub fn is_available(&self) -> bool {
        self.available.load(Ordering::Acquire)
    }

    pub fn priority(&self) -> i32 {
        self.priority.load(Ordering::Acquire)
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

    /// This session's state of type `T`, created on first use. Modules keep their
    /// per-session data here (roster interest, carbons, directed presence) without the core
    /// knowing their types.
    pub fn extension<T: Default + Send + Sync + 'static>(&self) -> Arc<T> {
        let mut list = self.extensions.lock().unwrap_or_else(|e| e.into_inner());
        for ext in list.iter() {
            if let Ok(found) = ext.clone().downcast::<T>() {
                return found;
            }
        }
        let created = Arc::new(T::default());
        list.push(created.clone());
        created
    }

    /// Queues a stanza without waiting. A full queue disconnects the slow session. On failure
    /// the stanza comes back, so the caller can answer its sender without a defensive copy.
    pub fn deliver(&self, stanza: Element) -> Result<(), (DeliveryError, Element)> {
        self.enqueue(Outbound::Stanza(Box::new(stanza)))
    }

    /// Like `deliver`, and the receiver resolves once the stanza was flushed to the client's
    /// socket; it fails (sender dropped) if the session ended before. "Written" means handed
    /// to the kernel: what a connection loses after that, only stream management could tell.
    pub fn deliver_tracked(
        &self,
        stanza: Element,
    ) -> Result<oneshot::Receiver<()>, (DeliveryError, Element)> {
        let (written, rx) = oneshot::channel();
        self.enqueue(Outbound::Tracked(Box::new(stanza), written))
            .map(|()| rx)
    }

    fn enqueue(&self, item: Outbound) -> Result<(), (DeliveryError, Element)> {
        match self.tx.try_send(item) {
            Ok(()) => Ok(()),
            Err(mpsc::error::TrySendError::Full(item)) => {
                let first = self.kick(StreamError::with_text(
                    StreamErrorCondition::PolicyViolation,
                    "too many queued stanzas: the client is not reading",
                ));
                if first {
                    tracing::warn!(jid = %self.jid, "session queue full: disconnecting slow client");
                    crate::metrics::queue_overflow_disconnect();
                }
                Err((DeliveryError::Overloaded, item.into_parts().0))
            }
            Err(mpsc::error::TrySendError::Closed(item)) => Err((DeliveryError::Gone, item.into_parts().0)),
        }
    }

    /// Asks the connection to close with a stream error (conflict, shutdown, overload...).
    /// Returns whether this call decided the reason (later calls change nothing).
    pub fn kick(&self, reason: StreamError) -> bool {
        let mut slot = self.kick_reason.lock().unwrap_or_else(|e| e.into_inner());
        let first = slot.is_none();
        if first {
            *slot = Some(reason);
        }
        drop(slot);
        self.kicked.notify_one();
        first
    }

    /// Called by the connection task when it finished closing: its unavailable presence was
    /// routed and the `session_closed` hooks ran.
    pub fn mark_ended(&self) {
        self.ended.store(true, Ordering::Release);
        self.ended_notify.notify_waiters();
    }

    /// Resolves once `mark_ended` was called.
    pub async fn ended(&self) {
        loop {
            let notified = self.ended_notify.notified();
            if self.ended.load(Ordering::Acquire) {
                return;
            }
            notified.await;
        }
    }

    /// Resolves when `kick` was called; yields the reason.
    pub async fn kicked(&self) -> StreamError {
        loop {
            if let Some(reason) = self.kick_reason.lock().unwrap_or_else(|e| e.into_inner()).clone() {
                return reason;
            }
            self.kicked.notified().await;
        }
    }
}

/// The connection side of a bound session.
pub struct SessionLink {
    pub entry: Arc<SessionEntry>,
    pub mailbox: mpsc::Receiver<Outbound>,
}

/// Result of binding a resource.
pub enum BindOutcome {
    Bound(SessionLink),
    /// The account already has the maximum number of resources.
    TooManyResources,
}

/// All sessions on this node, keyed by bare JID.
#[derive(Default)]
pub struct SessionTable {
    by_bare: DashMap<BareJid, Vec<Arc<SessionEntry>>>,
    next_conn_id: AtomicU64,
}

impl SessionTable {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn next_conn_id(&self) -> u64 {
        self.next_conn_id.fetch_add(1, Ordering::Relaxed) + 1
    }

    /// Binds `jid`. An existing session with the same full JID is replaced: it is kicked with
    /// `<conflict/>` (RFC 6120 §7.7.2.2, the "override" policy).
    pub fn bind(&self, jid: FullJid, conn_id: u64, queue: usize, max_resources: usize) -> BindOutcome {
        let (tx, mailbox) = mpsc::channel(queue);
        let entry = Arc::new(SessionEntry {
            jid: jid.clone(),
            conn_id,
            tx,
            available: AtomicBool::new(false),
            priority: AtomicI32::new(0),
            kick_reason: std::sync::Mutex::new(None),
            kicked: Notify::new(),
            ended: AtomicBool::new(false),
            ended_notify: Notify::new(),
            presence: std::sync::Mutex::new(None),
            extensions: std::sync::Mutex::new(Vec::new()),
        });
        let replaced = {
            let mut list = self.by_bare.entry(jid.to_bare()).or_default();
            let existing = list.iter().position(|e| e.jid == jid);
            match existing {
                Some(i) => Some(std::mem::replace(&mut list[i], entry.clone())),
                None if list.len() >= max_resources => return BindOutcome::TooManyResources,
                None => {
                    list.push(entry.clone());
                    None
                }
            }
        };
        if let Some(old) = replaced {
            old.kick(StreamError::with_text(
                StreamErrorCondition::Conflict,
                "replaced by a new connection with the same resource",
            ));
        }
        BindOutcome::Bound(SessionLink { entry, mailbox })
    }

    /// Ends the session bound to `jid`, if any, before a new connection binds it (RFC 6120
    /// §7.7.2.2): the old one is kicked with `<conflict/>` and given `grace` to finish
    /// closing, so its unavailable presence and close hooks run on its own state and reach
    /// contacts before anything of its successor. A session that does not finish in time is
    /// replaced anyway by `bind`.
    pub async fn take_over(&self, jid: &FullJid, grace: std::time::Duration) {
        let Some(old) = self.get(jid) else { return };
        old.kick(StreamError::with_text(
            StreamErrorCondition::Conflict,
            "replaced by a new connection with the same resource",
        ));
        let _ = tokio::time::timeout(grace, old.ended()).await;
    }

    /// Removes a session, unless it was already replaced by a newer one.
    pub fn unbind(&self, jid: &FullJid, conn_id: u64) {
        let bare = jid.to_bare();
        self.by_bare.remove_if_mut(&bare, |_, list| {
            list.retain(|e| !(e.jid == *jid && e.conn_id == conn_id));
            list.is_empty()
        });
    }

    pub fn get(&self, jid: &FullJid) -> Option<Arc<SessionEntry>> {
        self.by_bare
            .get(&jid.to_bare())?
            .iter()
            .find(|e| e.jid == *jid)
            .cloned()
    }

    /// How many sessions an account has bound (no allocation).
    pub fn count_of(&self, bare: &BareJid) -> usize {
        self.by_bare.get(bare).map_or(0, |l| l.len())
    }

    /// All sessions of an account (bound, available or not).
    pub fn sessions_of(&self, bare: &BareJid) -> Vec<Arc<SessionEntry>> {
        self.by_bare.get(bare).map(|l| l.clone()).unwrap_or_default()
    }

    pub fn session_count(&self) -> usize {
        self.by_bare.iter().map(|l| l.len()).sum()
    }

    pub fn all_sessions(&self) -> Vec<Arc<SessionEntry>> {
        self.by_bare.iter().flat_map(|l| l.value().clone()).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn jid(s: &str) -> FullJid {
        FullJid::new(s).unwrap()
    }

    fn bound(t: &SessionTable, j: &str) -> SessionLink {
        match t.bind(jid(j), t.next_conn_id(), 16, 4) {
            BindOutcome::Bound(l) => l,
            BindOutcome::TooManyResources => panic!("limit"),
        }
    }

    #[tokio::test]
    async fn same_resource_replaces_and_kicks_the_old_session() {
        let t = SessionTable::new();
        let old = bound(&t, "a@b/r");
        let new = bound(&t, "a@b/r");
        assert_eq!(old.entry.kicked().await.condition, StreamErrorCondition::Conflict);
        assert_eq!(t.get(&jid("a@b/r")).unwrap().conn_id, new.entry.conn_id);
        // The old connection's late unbind leaves the new one alone.
        t.unbind(&jid("a@b/r"), old.entry.conn_id);
        assert!(t.get(&jid("a@b/r")).is_some());
        t.unbind(&jid("a@b/r"), new.entry.conn_id);
        assert_eq!(t.session_count(), 0);
    }

    #[test]
    fn extensions_are_per_type_and_created_once() {
        #[derive(Default)]
        struct Flag(std::sync::atomic::AtomicBool);
        let t = SessionTable::new();
        let link = bound(&t, "a@b/r");
        link.entry.extension::<Flag>().0.store(true, Ordering::Relaxed);
        assert!(link.entry.extension::<Flag>().0.load(Ordering::Relaxed));
        assert_eq!(*link.entry.extension::<u32>(), 0);
    }

    #[test]
    fn mailbox_slots_stay_small() {
        assert!(
            std::mem::size_of::<Outbound>() <= 24,
            "{}",
            std::mem::size_of::<Outbound>()
        );
    }

    #[test]
    fn resource_limit_is_enforced() {
        let t = SessionTable::new();
        let _links: Vec<_> = (0..4).map(|i| bound(&t, &format!("a@b/{i}"))).collect();
        assert!(matches!(
            t.bind(jid("a@b/x"), 99, 16, 4),
            BindOutcome::TooManyResources
        ));
    }

    #[tokio::test]
    async fn tracked_delivery_is_acknowledged_by_the_writer_or_cancelled() {
        let t = SessionTable::new();
        let mut link = bound(&t, "a@b/r");
        let rx = link
            .entry
            .deliver_tracked(Element::bare("message", "jabber:client"))
            .unwrap();
        let (el, written) = link.mailbox.recv().await.unwrap().into_parts();
        assert_eq!(el.name(), "message");
        written.expect("tracked").send(()).unwrap();
        rx.await.expect("acknowledged");
        // A session that ends with the stanza still queued cancels it.
        let rx = link
            .entry
            .deliver_tracked(Element::bare("message", "jabber:client"))
            .unwrap();
        drop(link);
        assert!(rx.await.is_err(), "dropped unfired");
        // And once the mailbox is gone, the stanza comes back.
        let link = bound(&t, "c@d/r");
        let entry = link.entry.clone();
        drop(link);
        let (err, el) = entry
            .deliver_tracked(Element::bare("message", "jabber:client"))
            .unwrap_err();
        assert_eq!(err, DeliveryError::Gone);
        assert_eq!(el.name(), "message");
    }

    #[tokio::test]
    async fn a_full_queue_kicks_instead_of_growing() {
        let t = SessionTable::new();
        let link = bound(&t, "a@b/r");
        for _ in 0..16 {
            link.entry
                .deliver(Element::bare("message", "jabber:client"))
                .unwrap();
        }
        let (err, returned) = link
            .entry
            .deliver(Element::bare("message", "jabber:client"))
            .unwrap_err();
        assert_eq!(err, DeliveryError::Overloaded);
        assert_eq!(returned.name(), "message");
        assert_eq!(
            link.entry.kicked().await.condition,
            StreamErrorCondition::PolicyViolation
        );
    }
}
