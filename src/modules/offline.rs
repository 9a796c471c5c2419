//! XEP-0160 offline messages, stamped with XEP-0203 `<delay/>` when delivered, and XEP-0013
//! flexible offline message retrieval.
//!
//! # Storing
//! The router calls `message_offline` for a chat/normal message to a local account that has no
//! available resource with a non-negative priority. The message is stored (as XML, with the
//! time) unless XEP-0160 §4 or a XEP-0334 hint says otherwise: standalone chat states are
//! dropped (XEP-0085 §5.5: not stored, not worth an error), `<no-store/>` is bounced. No
//! account, a full queue (`max_offline_messages`) or a storage error: `Continue`, so the
//! router answers `service-unavailable` the same way in every case (RFC 6121 §8.5.2.2.1);
//! nothing is lost silently.
//!
//! # Delivering
//! When a session becomes available with a non-negative priority (`presence_broadcast`), a
//! task sends it the stored messages in order, in chunks, each tracked by
//! `router::deliver_tracked`; a row is deleted only once the session's writer flushed
//! it to the socket. Remaining window: a connection that dies after the kernel accepted the
//! bytes but before the client read them loses those messages (only XEP-0198 acknowledgements
//! could close it); a session that ends with messages queued keeps them stored, and a stanza
//! written during a stream-error shutdown may come again (at least once, never lost).
//! One delivery runs per account at a time, so two resources coming online together do not
//! both get the same messages.
//!
//! # XEP-0013
//! A session that uses the offline node or `<offline/>` commands manages its messages itself:
//! it gets no automatic delivery, and neither do other sessions of the account while it is
//! connected (§2.2). Nodes are the per-account sequence numbers, zero-padded so that
//! dictionary order is delivery order, and never reused.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use jid::BareJid;
use minidom::Element;

use crate::error::StanzaError;
use crate::ops::log_limit::Repeated;
use crate::router::hooks::{Flow, Routed, Stage};
use crate::router::registry::{IqRequest, IqResponse, IqResult, IqTarget, IqType, Module, Registry};
use crate::server::Server;
use crate::session::Recipient;
use crate::storage::offline::{OfflineMessage, OfflineStored};
use crate::xml::{self, ns};

/// XEP-0013 namespace, feature and disco node.
pub const NS_OFFLINE: &str = "http://jabber.org/protocol/offline";
/// XEP-0160 §5 disco feature.
pub const FEATURE_MSGOFFLINE: &str = "msgoffline";
/// XEP-0203.
pub const NS_DELAY: &str = "urn:xmpp:delay";
const NS_CHATSTATES: &str = "http://jabber.org/protocol/chatstates";
const NS_HINTS: &str = "urn:xmpp:hints";
const NS_SID: &str = "urn:xmpp:sid:0";
const NS_DATA: &str = "jabber:x:data";
const NS_INFO: &str = "http://jabber.org/protocol/disco#info";
const NS_ITEMS: &str = "http://jabber.org/protocol/disco#items";
type DeliveryLock = Arc<tokio::sync::Mutex<()>>;

#[derive(Default)]
pub struct Offline {
    /// One lock per account with a delivery running or waiting (removed when unused), so a
    /// client that stops reading holds up only its own account.
    delivery: dashmap::DashMap<BareJid, DeliveryLock>,
}

/// Per-session state.
#[derive(Default)]
struct OfflineSession {
    /// Available with a non-negative priority, as of this session's last broadcast presence.
    eligible: AtomicBool,
    /// Used XEP-0013: never flood this session, nor others of the account while it is here.
    flexible: AtomicBool,
}

impl Module for Offline {
    fn name(&self) -> &'static str {
        "offline"
    }

    fn register(self: Arc<Self>, r: &mut Registry) {
        r.feature(FEATURE_MSGOFFLINE);
        r.feature(NS_OFFLINE);
        let me = self.clone();
        r.hooks
            .message_offline
            .add(Stage::Protocol, "offline", move |server, routed| {
                let me = me.clone();
                async move { me.store(&server, routed).await }
            });
        // It only looks and spawns: an observer of the broadcast presence.
        let me = self;
        r.hooks
            .presence_broadcasted
            .observe("offline", move |server, routed| {
                me.clone().on_presence(server, routed)
            });
        r.disco_node(NS_OFFLINE, &[IqTarget::OwnAccount], node_info, node_items);
        r.iq(
            IqType::Get,
            NS_OFFLINE,
            "offline",
            &[IqTarget::OwnAccount],
            view_or_fetch,
        );
        r.iq(
            IqType::Set,
            NS_OFFLINE,
            "offline",
            &[IqTarget::OwnAccount],
            remove_or_purge,
        );
    }
}

/// What XEP-0160 §4 (and XEP-0334 hints) say about storing a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Storable {
    Yes,
    /// Not stored; the sender is told (the router's default bounce).
    No,
    /// Not stored and not answered (standalone chat states).
    Drop,
}

fn storable(msg: &Element) -> Storable {
    if !matches!(msg.attr("type"), None | Some("normal") | Some("chat")) {
        return Storable::No;
    }
    if msg.has_child("store", NS_HINTS) {
        return Storable::Yes;
    }
    if msg.has_child("no-store", NS_HINTS) {
        return Storable::No;
    }
    // XEP-0160 §4: chat messages with only XEP-0085 content are not stored.
    let mut has_state = false;
    for child in msg.children() {
        match child.ns().as_str() {
            NS_CHATSTATES => has_state = true,
            NS_HINTS | NS_SID => {}
            ns::CLIENT if child.name() == "thread" => {}
            _ => return Storable::Yes,
        }
    }
    if has_state { Storable::Drop } else { Storable::Yes }
}

/// The stored host spelling and user of a local bare JID.
fn account_of(server: &Server, bare: &BareJid) -> Option<(String, String)> {
    let host = server.hosted_domain(bare.domain().as_str())?;
    Some((host.to_owned(), bare.node()?.to_string()))
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// XEP-0082 DateTime with milliseconds, in UTC.
fn stamp(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .unwrap_or_default()
        .format("%Y-%m-%dT%H:%M:%S%.3fZ")
        .to_string()
}

/// XEP-0203 `<delay/>` naming the server that held the message.
fn delay(domain: &str, stamp_ms: i64) -> Element {
    let mut el = xml::text_element("delay", NS_DELAY, "Offline Storage");
    xml::set_attr(&mut el, "from", domain);
    xml::set_attr(&mut el, "stamp", &stamp(stamp_ms));
    el
}

/// XEP-0013 node of a message: its number, zero-padded so dictionary order is delivery order.
fn node_of(seq: i64) -> String {
    format!("{seq:012}")
}

fn seq_of(node: &str) -> Option<i64> {
    if node.is_empty() || !node.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    node.parse().ok()
}

/// A stored message as it goes out again: the original stanza plus the delay stamp.
fn restore(m: &OfflineMessage, domain: &str) -> Option<Element> {
    match m.stanza.parse::<Element>() {
        Ok(mut el) => {
            el.append_child(delay(domain, m.stamp_ms));
            Some(el)
        }
        Err(e) => {
            // Kept, not deleted: an operator can still look at it (or XEP-0013 purge it).
            tracing::error!(seq = m.seq, error = %e, "stored offline message does not parse; skipped");
            None
        }
    }
}

impl Offline {
    /// Runs `deliver_locked` with the account's delivery lock held.
    async fn send_stored(self: Arc<Self>, server: Arc<Server>, entry: Recipient) {
        let bare = entry.jid.to_bare();
        // Cloned under the map's shard lock, so the count below sees every waiter.
        let lock: DeliveryLock = self.delivery.entry(bare.clone()).or_default().clone();
        {
            let _one_at_a_time = lock.lock().await;
            deliver_locked(&server, &entry).await;
        }
        // The map's reference and ours: nobody else waits, forget it.
        self.delivery.remove_if(&bare, |_, l| Arc::strong_count(l) == 2);
    }

    async fn store(self: Arc<Self>, server: &Arc<Server>, routed: Routed) -> Flow<Routed> {
        match storable(&routed.stanza) {
            Storable::Yes => {}
            Storable::No => return Flow::Continue(routed),
            Storable::Drop => return Flow::Handled,
        }
        let max = server.config().limits.max_offline_messages;
        let Some(to) = routed.to.as_ref().map(|j| j.to_bare()) else {
            return Flow::Continue(routed);
        };
        let Some((host, user)) = account_of(server, &to) else {
            return Flow::Continue(routed);
        };
        if max == 0 {
            return Flow::Continue(routed);
        }
        let text = xml::to_string(&routed.stanza);
        let sender = routed.from.to_string();
        match server
            .storage
            .offline_store(&host, &user, &sender, &text, now_ms(), max)
            .await
        {
            Ok(OfflineStored::Stored(seq)) => {
                tracing::debug!(to = %to, seq, "message stored offline");
                crate::metrics::offline_stored();
                self.after_store(server, &to);
                Flow::Handled
            }
            Ok(OfflineStored::NoAccount) => Flow::Continue(routed),
            Ok(OfflineStored::Full) => {
                if server.log_limit.note(Repeated::OfflineFull, &sender) {
                    tracing::info!(to = %to, from = %sender, max, "offline queue full: message refused (repeats summarized)");
                }
                crate::metrics::offline_refused();
                Flow::Continue(routed)
            }
            Err(e) => {
                tracing::error!(to = %to, error = %e, "could not store an offline message");
                Flow::Continue(routed)
            }
        }
    }

    /// Closes the race between "no resource can take it" and a resource becoming available
    /// whose delivery already read the queue: if one is ready now, run a delivery for it
    /// (serialized with any running one, so nothing is sent twice).
    fn after_store(self: Arc<Self>, server: &Arc<Server>, bare: &BareJid) {
        let sessions = server.sessions.sessions_of(bare);
        if sessions.is_empty() || any_flexible(&sessions) {
            return;
        }
        let ready = sessions
            .iter()
            .filter(|s| {
                s.local()
                    .is_some_and(|l| l.extension::<OfflineSession>().eligible.load(Ordering::Acquire))
                    && s.is_eligible()
            })
            .max_by_key(|s| s.priority());
        if let Some(entry) = ready {
            tokio::spawn(self.send_stored(server.clone(), entry.clone()));
        }
    }

    /// A session's broadcast presence: when it becomes available with a non-negative priority,
    /// it gets the stored messages (XEP-0160 §3), unless XEP-0013 is in use.
    fn on_presence(self: Arc<Self>, server: &Arc<Server>, routed: &Routed) {
        let Some(entry) = server.sessions.get(&routed.from) else {
            return;
        };
        let Some(state) = entry.local().map(|l| l.extension::<OfflineSession>()) else {
            return;
        };
        let eligible = entry.is_available() && entry.priority() >= 0;
        let was = state.eligible.swap(eligible, Ordering::AcqRel);
        if !eligible || was {
            return;
        }
        if any_flexible(&server.sessions.sessions_of(&routed.from.to_bare())) {
            return;
        }
        tokio::spawn(self.send_stored(server.clone(), entry));
    }
}

/// Sends the account's stored messages to `entry`, oldest first, deleting each once it was
/// written to the client's socket.
async fn deliver_locked(server: &Server, entry: &Recipient) {
    let bare = entry.jid.to_bare();
    let Some((host, user)) = account_of(server, &bare) else {
        return;
    };
    // Chunks small enough to leave the mailbox room for live traffic.
    let chunk = (server.config().limits.session_queue / 4).clamp(1, 64) as u32;
    let storage = &server.storage;
    let mut after = 0;
    loop {
        if !entry.is_available() || entry.priority() < 0 {
            return;
        }
        let batch = match storage.offline_load(&host, &user, after, chunk).await {
            Ok(batch) => batch,
            Err(e) => {
                tracing::error!(jid = %entry.jid, error = %e, "could not load offline messages");
                return;
            }
        };
        let Some(last) = batch.last() else {
            return;
        };
        after = last.seq;
        let mut pending = Vec::with_capacity(batch.len());
        let mut stopped = false;
        for m in &batch {
            let Some(el) = restore(m, &host) else {
                continue;
            };
            match crate::router::deliver_tracked(entry, el) {
                Ok(written) => pending.push((m.seq, written)),
                Err(_) => {
                    stopped = true;
                    break;
                }
            }
        }
        let mut written = Vec::with_capacity(pending.len());
        for (seq, ack) in pending {
            if ack.await.is_err() {
                stopped = true;
                break;
            }
            written.push(seq);
        }
        if let Err(e) = storage.offline_delete(&host, &user, &written).await {
            // They reached the client: it may see them again next time, never lose them.
            tracing::error!(jid = %entry.jid, error = %e, "could not delete delivered offline messages");
            return;
        }
        if !written.is_empty() {
            tracing::debug!(jid = %entry.jid, count = written.len(), "offline messages delivered");
        }
        if stopped {
            return;
        }
    }
}

fn any_flexible(sessions: &[Recipient]) -> bool {
    sessions.iter().any(|s| {
        s.local()
            .is_some_and(|l| l.extension::<OfflineSession>().flexible.load(Ordering::Acquire))
    })
}

/// The requesting session chose XEP-0013: no automatic delivery for it (§2.2, §2.6).
fn use_flexible(req: &IqRequest) -> Option<Recipient> {
    let entry = req.server.sessions.get(&req.from)?;
    entry
        .local()?
        .extension::<OfflineSession>()
        .flexible
        .store(true, Ordering::Release);
    Some(entry)
}

fn own_account(req: &IqRequest) -> Result<(String, String), StanzaError> {
    account_of(&req.server, &req.to).ok_or_else(StanzaError::internal_server_error)
}

/// What an offline storage failure is logged as (`StanzaError::storage`).
const STORAGE: &str = "offline storage error";

/// XEP-0013 §2.2: the number of messages, as extended disco#info on the offline node.
async fn node_info(req: IqRequest) -> IqResult {
    use_flexible(&req);
    let (host, user) = own_account(&req)?;
    let count = req
        .server
        .storage
        .offline_count(&host, &user)
        .await
        .map_err(StanzaError::storage(STORAGE))?;
    Ok(IqResponse::with(count_info(count)))
}

fn count_info(count: u64) -> Element {
    let field = |var: &str, kind: Option<&str>, value: &str| {
        let mut f = Element::builder("field", NS_DATA)
            .append(xml::text_element("value", NS_DATA, value))
            .build();
        xml::set_attr(&mut f, "var", var);
        if let Some(kind) = kind {
            xml::set_attr(&mut f, "type", kind);
        }
        f
    };
    let mut identity = Element::bare("identity", NS_INFO);
    xml::set_attr(&mut identity, "category", "automation");
    xml::set_attr(&mut identity, "type", "message-list");
    let mut feature = Element::bare("feature", NS_INFO);
    xml::set_attr(&mut feature, "var", NS_OFFLINE);
    let mut form = Element::builder("x", NS_DATA)
        .append(field("FORM_TYPE", Some("hidden"), NS_OFFLINE))
        .append(field("number_of_messages", None, &count.to_string()))
        .build();
    xml::set_attr(&mut form, "type", "result");
    let mut query = Element::builder("query", NS_INFO)
        .append(identity)
        .append(feature)
        .append(form)
        .build();
    xml::set_attr(&mut query, "node", NS_OFFLINE);
    query
}

/// XEP-0013 §2.3: one item per message: the account, the node, the sender.
async fn node_items(req: IqRequest) -> IqResult {
    use_flexible(&req);
    let (host, user) = own_account(&req)?;
    let headers = req
        .server
        .storage
        .offline_headers(&host, &user)
        .await
        .map_err(StanzaError::storage(STORAGE))?;
    let mut query = Element::bare("query", NS_ITEMS);
    xml::set_attr(&mut query, "node", NS_OFFLINE);
    let jid = req.to.to_string();
    for h in headers {
        let mut item = Element::bare("item", NS_ITEMS);
        xml::set_attr(&mut item, "jid", &jid);
        xml::set_attr(&mut item, "node", &node_of(h.seq));
        xml::set_attr(&mut item, "name", &h.sender);
        query.append_child(item);
    }
    Ok(IqResponse::with(query))
}

/// The nodes of the `<item action='...'/>` children; item-not-found for one that names no
/// message number, bad-request without any.
fn requested_seqs(offline: &Element, action: &str) -> Result<Vec<i64>, StanzaError> {
    let mut seqs = Vec::new();
    for item in offline.children().filter(|c| c.is("item", NS_OFFLINE)) {
        if item.attr("action") != Some(action) {
            return Err(StanzaError::bad_request().text(format!("expected action='{action}'")));
        }
        let node = item.attr("node").unwrap_or_default();
        seqs.push(seq_of(node).ok_or_else(StanzaError::item_not_found)?);
    }
    if seqs.is_empty() {
        return Err(StanzaError::bad_request());
    }
    Ok(seqs)
}

/// XEP-0013 §2.4 view and §2.6 fetch: the messages (each marked with its node and stamped),
/// then the result. Nothing is removed (§2.5).
async fn view_or_fetch(req: IqRequest) -> IqResult {
    let entry = use_flexible(&req).ok_or_else(StanzaError::internal_server_error)?;
    let (host, user) = own_account(&req)?;
    let storage = &req.server.storage;
    // Everything goes through the session's mailbox before the result: keep room in it.
    let budget = (req.server.config().limits.session_queue / 2).max(1);
    let offline = req.payload();
    let messages = if offline.has_child("fetch", NS_OFFLINE) {
        let limit = u32::try_from(budget + 1).unwrap_or(u32::MAX);
        let all = storage
            .offline_load(&host, &user, 0, limit)
            .await
            .map_err(StanzaError::storage(STORAGE))?;
        if all.len() > budget {
            return Err(StanzaError::resource_constraint()
                .text("too many offline messages to fetch at once; view them in smaller sets"));
        }
        all
    } else {
        let mut seqs = requested_seqs(offline, "view")?;
        seqs.sort_unstable();
        seqs.dedup();
        if seqs.len() > budget {
            return Err(StanzaError::resource_constraint().text("too many messages in one request"));
        }
        let found = storage
            .offline_get(&host, &user, &seqs)
            .await
            .map_err(StanzaError::storage(STORAGE))?;
        if found.len() != seqs.len() {
            return Err(StanzaError::item_not_found());
        }
        found
    };
    for m in &messages {
        let Some(mut el) = restore(m, &host) else {
            continue;
        };
        el.append_child(offline_marker(m.seq));
        if !crate::router::push(&entry, el) {
            // The session is going away (or was just judged too slow): no result either.
            return Err(StanzaError::resource_constraint());
        }
    }
    Ok(IqResponse::empty())
}

/// `<offline><item node='...'/></offline>`, telling the client which message this is.
fn offline_marker(seq: i64) -> Element {
    let mut item = Element::bare("item", NS_OFFLINE);
    xml::set_attr(&mut item, "node", &node_of(seq));
    Element::builder("offline", NS_OFFLINE).append(item).build()
}

/// XEP-0013 §2.5 remove and §2.7 purge.
async fn remove_or_purge(req: IqRequest) -> IqResult {
    use_flexible(&req);
    let (host, user) = own_account(&req)?;
    let storage = &req.server.storage;
    let offline = req.payload();
    if offline.has_child("purge", NS_OFFLINE) {
        storage
            .offline_purge(&host, &user)
            .await
            .map_err(StanzaError::storage(STORAGE))?;
        return Ok(IqResponse::empty());
    }
    let mut seqs = requested_seqs(offline, "remove")?;
    seqs.sort_unstable();
    seqs.dedup();
    // All or nothing: an unknown node removes none.
    let found = storage
        .offline_get(&host, &user, &seqs)
        .await
        .map_err(StanzaError::storage(STORAGE))?;
    if found.len() != seqs.len() {
        return Err(StanzaError::item_not_found());
    }
    storage
        .offline_delete(&host, &user, &seqs)
        .await
        .map_err(StanzaError::storage(STORAGE))?;
    Ok(IqResponse::empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Element {
        s.parse().unwrap()
    }

    #[test]
    fn xep0160_4_which_messages_are_stored() {
        let m = |inner: &str, attrs: &str| {
            parse(&format!(
                "<message xmlns='jabber:client'{attrs}>{inner}</message>"
            ))
        };
        assert_eq!(storable(&m("<body>hi</body>", "")), Storable::Yes);
        assert_eq!(storable(&m("<body>hi</body>", " type='chat'")), Storable::Yes);
        assert_eq!(storable(&m("<body>hi</body>", " type='normal'")), Storable::Yes);
        assert_eq!(storable(&m("<body>hi</body>", " type='headline'")), Storable::No);
        assert_eq!(storable(&m("<body>hi</body>", " type='groupchat'")), Storable::No);
        assert_eq!(storable(&m("<body>hi</body>", " type='error'")), Storable::No);
        // Standalone chat states (with a thread, an origin-id) are dropped...
        let state = "<composing xmlns='http://jabber.org/protocol/chatstates'/><thread>t</thread>\
                     <origin-id xmlns='urn:xmpp:sid:0' id='x'/>";
        assert_eq!(storable(&m(state, " type='chat'")), Storable::Drop);
        // ...but a state beside content, or a receipt alone, is kept.
        let with_body = "<active xmlns='http://jabber.org/protocol/chatstates'/><body>b</body>";
        assert_eq!(storable(&m(with_body, " type='chat'")), Storable::Yes);
        let receipt = "<received xmlns='urn:xmpp:receipts' id='r1'/>";
        assert_eq!(storable(&m(receipt, " type='chat'")), Storable::Yes);
        // XEP-0334 hints.
        let no_store = "<body>b</body><no-store xmlns='urn:xmpp:hints'/>";
        assert_eq!(storable(&m(no_store, " type='chat'")), Storable::No);
        let store = "<gone xmlns='http://jabber.org/protocol/chatstates'/><store xmlns='urn:xmpp:hints'/>";
        assert_eq!(storable(&m(store, " type='chat'")), Storable::Yes);
    }

    #[test]
    fn xep0203_delay_added_on_delivery() {
        let stored = OfflineMessage {
            seq: 7,
            // 2002-09-10T23:08:25.123Z
            stamp_ms: 1_031_699_305_123,
            sender: "romeo@montague.net/orchard".into(),
            stanza: "<message xmlns='jabber:client' from='romeo@montague.net/orchard' \
                     to='juliet@capulet.com' id='m1'><body>O blessed &amp; night</body>\
                     <x xmlns='urn:example' a='1'><y/></x></message>"
                .into(),
        };
        let el = restore(&stored, "capulet.com").unwrap();
        assert_eq!(el.attr("from"), Some("romeo@montague.net/orchard"));
        assert_eq!(el.attr("to"), Some("juliet@capulet.com"));
        assert_eq!(el.attr("id"), Some("m1"));
        assert_eq!(
            el.get_child("body", ns::CLIENT).unwrap().text(),
            "O blessed & night"
        );
        assert!(
            el.get_child("x", "urn:example")
                .unwrap()
                .has_child("y", "urn:example")
        );
        let d = el.get_child("delay", NS_DELAY).expect("delay");
        assert_eq!(d.attr("from"), Some("capulet.com"));
        assert_eq!(d.attr("stamp"), Some("2002-09-10T23:08:25.123Z"));
        // What the router hands over survives the trip through text (xml:lang, prefixes).
        let original: Element = "<message xmlns='jabber:client' xml:lang='fr' to='a@b'>\
                                 <body xml:lang='en'>hi</body><p:x xmlns:p='urn:p' p:a='1'/></message>"
            .parse()
            .unwrap();
        let text = xml::to_string(&original);
        let back = restore(
            &OfflineMessage {
                stanza: text,
                ..stored.clone()
            },
            "capulet.com",
        )
        .unwrap();
        let mut expected = original.clone();
        expected.append_child(delay("capulet.com", stored.stamp_ms));
        assert_eq!(back, expected);
        // A row that does not parse is skipped, not fatal.
        let broken = OfflineMessage {
            stanza: "<message".into(),
            ..stored
        };
        assert!(restore(&broken, "capulet.com").is_none());
    }

    #[test]
    fn xep0013_nodes_sort_in_delivery_order_and_parse_back() {
        assert_eq!(node_of(42), "000000000042");
        assert!(node_of(9) < node_of(10));
        assert_eq!(seq_of(&node_of(123_456)), Some(123_456));
        assert_eq!(seq_of("2003-02-27T22:49:17.008Z"), None);
        assert_eq!(seq_of(""), None);
        assert_eq!(seq_of("-1"), None);
        let marker = offline_marker(3);
        assert_eq!(
            marker.get_child("item", NS_OFFLINE).unwrap().attr("node"),
            Some("000000000003")
        );
    }

    #[test]
    fn xep0013_2_2_count_form() {
        let q = count_info(66);
        assert_eq!(q.attr("node"), Some(NS_OFFLINE));
        let id = q.get_child("identity", NS_INFO).unwrap();
        assert_eq!(
            (id.attr("category"), id.attr("type")),
            (Some("automation"), Some("message-list"))
        );
        let form = q.get_child("x", NS_DATA).unwrap();
        let value = |var: &str| {
            form.children()
                .find(|f| f.attr("var") == Some(var))
                .and_then(|f| f.get_child("value", NS_DATA))
                .map(|v| v.text())
        };
        assert_eq!(value("FORM_TYPE").as_deref(), Some(NS_OFFLINE));
        assert_eq!(value("number_of_messages").as_deref(), Some("66"));
    }

    #[test]
    fn xep0013_item_actions_are_checked() {
        let offline = |items: &str| parse(&format!("<offline xmlns='{NS_OFFLINE}'>{items}</offline>"));
        let two = offline("<item action='view' node='000000000002'/><item action='view' node='5'/>");
        assert_eq!(requested_seqs(&two, "view").unwrap(), [2, 5]);
        assert_eq!(
            requested_seqs(&two, "remove").unwrap_err().condition,
            "bad-request"
        );
        let unknown = offline("<item action='view' node='2003-02-27T22:49:17.008Z'/>");
        assert_eq!(
            requested_seqs(&unknown, "view").unwrap_err().condition,
            "item-not-found"
        );
        assert_eq!(
            requested_seqs(&offline(""), "view").unwrap_err().condition,
            "bad-request"
        );
    }
}
