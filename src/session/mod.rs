//! Sessions: each bound resource's mailbox and lifecycle (this file) and the directory that
//! finds them (`directory.rs`).
//!
//! Each connected resource has a bounded mailbox. Delivery never waits: a full mailbox means
//! the client cannot keep up, and that session is disconnected instead of growing memory.
//! Only the session and router layers deliver; modules hand stanzas to the router.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use jid::FullJid;
use minidom::Element;
use tokio::sync::{Notify, mpsc, oneshot};

use crate::error::{StreamError, StreamErrorCondition};

pub mod directory;

pub use directory::{LocalDirectory, Recipient, SessionDirectory, SessionRecord};

/// What a session's writer receives.
///
/// Stanzas are boxed: every session's channel preallocates a block of slots, and a slot the
/// size of an `Element` would cost kilobytes per idle connection.
#[derive(Debug)]
pub enum Outbound {
    Stanza(Box<Element>),
    /// A stanza whose sender must learn it reached the client's socket (offline storage deletes
    /// a message only then). The writer fires `written` after the flush that carried it
    /// succeeded. If the session ends first it is dropped unfired, and the stanza is not
    /// bounced: whoever sent it still holds it.
    Tracked(Box<Element>, oneshot::Sender<()>),
    /// One of many identical copies (a room's broadcast), addressed to this session.
    Shared(Arc<SharedStanza>),
}

/// A stanza serialized once for many sessions: the copies differ only in `to`, which each
/// writer fills in with its own session's JID. A delivery is then a reference count and a
/// byte copy instead of a deep clone and a serialization per recipient.
#[derive(Debug)]
pub struct SharedStanza {
    xml: String,
    /// `xml[..to_at]` ends with the opening quote of the root's `to` value.
    to_at: usize,
}

impl SharedStanza {
    /// Serializes `stanza` with its `to` left to each recipient. `None` if the serializer
    /// refuses the element (a stanza that could not be written to anyone).
    pub fn new(mut stanza: Element) -> Option<SharedStanza> {
        // An empty value marks the place: the serializer orders attributes its own way, and
        // the first ` to=''` is the root's (values never hold a bare quote, and children come
        // after the root's start tag).
        crate::xml::set_attr(&mut stanza, "to", "");
        let mut bytes = Vec::new();
        crate::xml::write::write_element(&stanza, &mut bytes).ok()?;
        let xml = String::from_utf8(bytes).ok()?;
        let marker = " to=''";
        let to_at = xml.find(marker)? + marker.len() - 1;
        Some(SharedStanza { xml, to_at })
    }

    /// The text before and after the `to` value.
    pub fn parts(&self) -> (&str, &str) {
        self.xml.split_at(self.to_at)
    }

    /// The stanza's element name (for metrics).
    pub fn name(&self) -> &str {
        let tag = self.xml.get(1..).unwrap_or("");
        let end = tag.find([' ', '>', '/']).unwrap_or(tag.len());
        &tag[..end]
    }

    /// The copy for one recipient; `to` is already escaped (`attr_value`).
    pub fn render(&self, to: &str) -> String {
        let (head, tail) = self.parts();
        [head, to, tail].concat()
    }
}

/// `value` escaped as the serializer escapes an attribute value, so a `SharedStanza` filled
/// in with it is byte for byte what serializing the element with that `to` gives.
pub fn attr_value(value: &str) -> String {
    let mut probe = Element::bare("a", "");
    crate::xml::set_attr(&mut probe, "v", value);
    let text = crate::xml::to_string(&probe);
    let value_of = |text: &str| {
        let start = text.find(" v='")? + 4;
        let len = text[start..].rfind('\'')?;
        Some(text[start..start + len].to_owned())
    };
    value_of(&text).unwrap_or_else(|| crate::xml::escape(value).into_owned())
}

/// Why a delivery did not happen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeliveryError {
    /// The session's queue was full; it is being disconnected.
    Overloaded,
    /// The session ended before the stanza could be queued.
    Gone,
}

/// One resource bound on this node, shared between the directory and its connection task:
/// its routing record (`Deref`) and what only the local connection has.
pub struct SessionEntry {
    record: SessionRecord,
    tx: mpsc::Sender<Outbound>,
    kick_reason: std::sync::Mutex<Option<StreamError>>,
    kicked: Notify,
    /// Set once the connection finished closing (unavailable routed, close hooks run).
    ended: AtomicBool,
    ended_notify: Notify,
    /// Per-session state owned by modules, one value per type (see `extension`).
    extensions: std::sync::Mutex<Vec<Arc<dyn std::any::Any + Send + Sync>>>,
}

impl std::ops::Deref for SessionEntry {
    type Target = SessionRecord;

    fn deref(&self) -> &SessionRecord {
        &self.record
    }
}

impl SessionEntry {
    /// A new session and its mailbox of `queue` stanzas.
    fn new(jid: FullJid, conn_id: u64, queue: usize) -> (Arc<SessionEntry>, mpsc::Receiver<Outbound>) {
        let (tx, mailbox) = mpsc::channel(queue);
        let entry = Arc::new(SessionEntry {
            record: SessionRecord::new(jid, conn_id),
            tx,
            kick_reason: std::sync::Mutex::new(None),
            kicked: Notify::new(),
            ended: AtomicBool::new(false),
            ended_notify: Notify::new(),
            extensions: std::sync::Mutex::new(Vec::new()),
        });
        (entry, mailbox)
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
    pub(crate) fn deliver(&self, stanza: Element) -> Result<(), (DeliveryError, Element)> {
        match self.slot() {
            Ok(slot) => {
                slot.send(Outbound::Stanza(Box::new(stanza)));
                Ok(())
            }
            Err(e) => Err((e, stanza)),
        }
    }

    /// Like `deliver`, and the receiver resolves once the stanza was flushed to the client's
    /// socket; it fails (sender dropped) if the session ended before. "Written" means handed
    /// to the kernel: what a connection loses after that, only stream management could tell.
    pub(crate) fn deliver_tracked(
        &self,
        stanza: Element,
    ) -> Result<oneshot::Receiver<()>, (DeliveryError, Element)> {
        match self.slot() {
            Ok(slot) => {
                let (written, rx) = oneshot::channel();
                slot.send(Outbound::Tracked(Box::new(stanza), written));
                Ok(rx)
            }
            Err(e) => Err((e, stanza)),
        }
    }

    /// Queues one copy of a shared stanza, addressed to this session (the writer fills in
    /// `to`). Fails like `deliver`.
    pub(crate) fn deliver_shared(&self, stanza: &Arc<SharedStanza>) -> Result<(), DeliveryError> {
        self.slot()?.send(Outbound::Shared(stanza.clone()));
        Ok(())
    }

    /// A place in the mailbox, reserved without waiting. A full mailbox disconnects the slow
    /// session.
    fn slot(&self) -> Result<mpsc::Permit<'_, Outbound>, DeliveryError> {
        self.tx.try_reserve().map_err(|e| match e {
            mpsc::error::TrySendError::Full(()) => {
                crate::metrics::queue_drop();
                let first = self.kick(StreamError::with_text(
                    StreamErrorCondition::PolicyViolation,
                    "too many queued stanzas: the client is not reading",
                ));
                if first {
                    tracing::warn!(jid = %self.jid, "session queue full: disconnecting slow client");
                    crate::metrics::queue_overflow_disconnect();
                }
                DeliveryError::Overloaded
            }
            mpsc::error::TrySendError::Closed(()) => DeliveryError::Gone,
        })
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

    /// Whether the connection was asked to close (`kick`), for work done on its behalf that
    /// waits (a busy room's queue) and should stop waiting.
    pub fn is_kicked(&self) -> bool {
        self.kick_reason
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .is_some()
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

#[cfg(test)]
mod tests {
    use super::*;

    fn jid(s: &str) -> FullJid {
        FullJid::new(s).unwrap()
    }

    fn bound(t: &LocalDirectory, j: &str) -> SessionLink {
        match t.bind(jid(j), t.next_conn_id(), 16, 4) {
            BindOutcome::Bound(l) => l,
            BindOutcome::TooManyResources => panic!("limit"),
        }
    }

    #[tokio::test]
    async fn same_resource_replaces_and_kicks_the_old_session() {
        let t = LocalDirectory::new();
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
        let t = LocalDirectory::new();
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

    /// What serializing `el` with `to` set gives, the reference a shared copy must match.
    fn serialized_with_to(el: &Element, to: &str) -> String {
        let mut el = el.clone();
        crate::xml::set_attr(&mut el, "to", to);
        crate::xml::to_string(&el)
    }

    #[test]
    fn shared_stanza_is_byte_identical_to_the_element_with_its_to() {
        let el: Element = "<message xmlns='jabber:client' type='groupchat' id='x1' \
            from='room@conf.example/nick'><body>a to='' b &lt; &apos; \" </body>\
            <x xmlns='urn:example' to='' from='z'/></message>"
            .parse()
            .unwrap();
        let shared = SharedStanza::new(el.clone()).unwrap();
        assert_eq!(shared.name(), "message");
        for to in [
            "a@b/r",
            "a@b/it's <\"odd\"> & more",
            "a@b/tab\there",
            "ünï@b/çødé",
        ] {
            assert_eq!(
                shared.render(&attr_value(to)),
                serialized_with_to(&el, to),
                "{to}"
            );
        }
    }

    #[test]
    fn shared_stanza_replaces_a_to_already_set() {
        let mut el = Element::bare("presence", "jabber:client");
        crate::xml::set_attr(&mut el, "to", "old@b/r");
        crate::xml::set_attr(&mut el, "from", "room@c/n");
        let shared = SharedStanza::new(el.clone()).unwrap();
        assert_eq!(shared.name(), "presence");
        assert_eq!(
            shared.render(&attr_value("new@b/r")),
            serialized_with_to(&el, "new@b/r")
        );
        assert!(!shared.render("x").contains("old@b/r"));
    }

    #[tokio::test]
    async fn shared_delivery_queues_a_reference_and_fails_like_deliver() {
        let t = LocalDirectory::new();
        let mut link = bound(&t, "a@b/r");
        let shared = Arc::new(SharedStanza::new(Element::bare("message", "jabber:client")).unwrap());
        link.entry.deliver_shared(&shared).unwrap();
        let Some(Outbound::Shared(got)) = link.mailbox.recv().await else {
            panic!("a shared stanza");
        };
        assert!(Arc::ptr_eq(&got, &shared));
        for _ in 0..16 {
            link.entry.deliver_shared(&shared).unwrap();
        }
        assert_eq!(link.entry.deliver_shared(&shared), Err(DeliveryError::Overloaded));
        let entry = link.entry.clone();
        drop(link);
        assert_eq!(entry.deliver_shared(&shared), Err(DeliveryError::Gone));
    }

    #[test]
    fn resource_limit_is_enforced() {
        let t = LocalDirectory::new();
        let _links: Vec<_> = (0..4).map(|i| bound(&t, &format!("a@b/{i}"))).collect();
        assert!(matches!(
            t.bind(jid("a@b/x"), 99, 16, 4),
            BindOutcome::TooManyResources
        ));
    }

    #[tokio::test]
    async fn tracked_delivery_is_acknowledged_by_the_writer_or_cancelled() {
        let t = LocalDirectory::new();
        let mut link = bound(&t, "a@b/r");
        let rx = link
            .entry
            .deliver_tracked(Element::bare("message", "jabber:client"))
            .unwrap();
        let Some(Outbound::Tracked(el, written)) = link.mailbox.recv().await else {
            panic!("a tracked stanza");
        };
        assert_eq!(el.name(), "message");
        written.send(()).unwrap();
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
        let t = LocalDirectory::new();
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
