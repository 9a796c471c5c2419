//! XEP-0352 client state indication: while the client says it is inactive, stanzas it does
//! not need right away are held instead of written, and written all at once later.
//!
//! What is held (`classify`): presence broadcasts (collapsed per sender: the latest from each
//! full JID replaces the earlier one), messages without a body (chat states, receipts,
//! markers, PEP events) and room messages. What is written at once, after everything held
//! before it (so the client sees the order it would have seen): IQs, subscription and error
//! presence, messages with a body (also inside carbons), encrypted messages, invitations,
//! errors, and stanzas whose sender waits for the write (offline delivery). `<active/>` writes
//! everything held; so does passing `limits.csi_max_held` (flushed, never dropped).

use std::collections::{HashMap, VecDeque};

use minidom::Element;
use tokio::sync::mpsc;

use crate::c2s::writer::WRITE_BATCH;
use crate::metrics::CsiFlushReason;
use crate::session::{Outbound, SharedStanza};
use crate::xml::{self, ns};

pub const NS: &str = "urn:xmpp:csi:0";

const CARBONS: &str = "urn:xmpp:carbons:2";
const FORWARD: &str = "urn:xmpp:forward:0";
const ENCRYPTED: [(&str, &str); 2] = [
    ("encrypted", "eu.siacs.conversations.axolotl"),
    ("encrypted", "urn:xmpp:omemo:2"),
];

/// What inactivity does with one outbound stanza.
#[derive(Debug, PartialEq, Eq)]
pub enum Class {
    /// Written at once, after everything held.
    Urgent,
    /// Held; a later presence with the same key (the sender's full JID) replaces it.
    Presence(String),
    /// Held.
    Hold,
}

/// `<active/>` (true) or `<inactive/>` (false), if `el` is one.
pub fn request(el: &Element) -> Option<bool> {
    if !el.has_ns(NS) {
        return None;
    }
    match el.name() {
        "active" => Some(true),
        "inactive" => Some(false),
        _ => None,
    }
}

/// Classifies one mailbox item.
pub fn classify(item: &Outbound) -> Class {
    match item {
        // Its sender (offline delivery) waits for the write.
        Outbound::Tracked(..) => Class::Urgent,
        Outbound::Stanza(el) => classify_element(el),
        Outbound::Shared(shared) => classify_shared(shared),
    }
}

fn classify_element(el: &Element) -> Class {
    let kind = xml::stanza_type(el);
    match el.name() {
        "presence" => match (kind, el.attr("from")) {
            (None | Some("unavailable"), Some(from)) => Class::Presence(from.to_owned()),
            _ => Class::Urgent,
        },
        "message" => {
            if kind == Some("error") || message_is_urgent(el) {
                Class::Urgent
            } else {
                Class::Hold
            }
        }
        _ => Class::Urgent,
    }
}

/// A message the user should see now: a body (in a chat, or carbon-copied), an encrypted
/// payload, an invitation. Room messages wait (a busy room would keep the client awake).
fn message_is_urgent(el: &Element) -> bool {
    if xml::stanza_type(el) == Some("groupchat") {
        return false;
    }
    if el.has_child("body", ns::CLIENT) || ENCRYPTED.iter().any(|&(n, s)| el.has_child(n, s)) {
        return true;
    }
    if el.has_child("x", "jabber:x:conference")
        || el
            .get_child("x", "http://jabber.org/protocol/muc#user")
            .is_some_and(|x| x.has_child("invite", "http://jabber.org/protocol/muc#user"))
    {
        return true;
    }
    ["received", "sent"].iter().any(|direction| {
        el.get_child(direction, CARBONS)
            .and_then(|d| d.get_child("forwarded", FORWARD))
            .and_then(|f| f.get_child("message", ns::CLIENT))
            .is_some_and(message_is_urgent)
    })
}

/// Room broadcasts: occupant presence is collapsed per occupant, the rest (room messages,
/// serialized once for every occupant) waits.
fn classify_shared(shared: &SharedStanza) -> Class {
    match shared.name() {
        "presence" => match shared_root_attr(shared, "from") {
            Some(from) if shared_root_attr(shared, "type").is_none_or(|t| t == "unavailable") => {
                Class::Presence(from)
            }
            _ => Class::Urgent,
        },
        "message" => Class::Hold,
        _ => Class::Urgent,
    }
}

/// An attribute of a shared stanza's root element, as serialized (escaped; good as a key).
fn shared_root_attr(shared: &SharedStanza, name: &str) -> Option<String> {
    let (head, tail) = shared.parts();
    // The root's start tag ends at the first '>' (attribute values escape it).
    let start_tag = match head.find('>') {
        Some(end) => head[..end].to_owned(),
        None => [head, &tail[..tail.find('>')?]].concat(),
    };
    let needle = format!(" {name}='");
    let at = start_tag.find(&needle)? + needle.len();
    let len = start_tag[at..].find('\'')?;
    Some(start_tag[at..at + len].to_owned())
}

/// One session's client state and what it holds. Empty (no allocation) while active.
pub struct Csi {
    inactive: bool,
    max_held: usize,
    /// Held stanzas in arrival order; a collapsed presence leaves a `None` behind.
    held: VecDeque<Option<Outbound>>,
    /// Where each sender's held presence is: its index in `held` counted from `base`.
    presence_at: HashMap<String, u64>,
    /// The absolute index of `held[0]` (indices stay valid while the queue drains).
    base: u64,
    /// Stanzas in `held` (the `None`s left out).
    count: usize,
}

impl Csi {
    /// Active, holding up to `max_held` stanzas while inactive (at least one).
    pub fn new(max_held: usize) -> Csi {
        Csi {
            inactive: false,
            max_held: max_held.max(1),
            held: VecDeque::new(),
            presence_at: HashMap::new(),
            base: 0,
            count: 0,
        }
    }

    pub fn is_inactive(&self) -> bool {
        self.inactive
    }

    /// Stanzas held now.
    pub fn held(&self) -> usize {
        self.count
    }

    /// Switches state. Going active releases everything held (to be written now).
    pub fn set_active(&mut self, active: bool) -> Vec<Outbound> {
        self.inactive = !active;
        if active {
            self.release(CsiFlushReason::Active)
        } else {
            Vec::new()
        }
    }

    /// Takes `first` and what else is already in the mailbox (up to a write batch) while
    /// inactive; returns what must be written now, in order (empty if all was held).
    pub fn admit(&mut self, first: Outbound, mailbox: &mut mpsc::Receiver<Outbound>) -> Vec<Outbound> {
        let mut out = Vec::new();
        let mut next = Some(first);
        let mut taken = 0;
        while let Some(item) = next.take() {
            taken += 1;
            self.take(item, &mut out);
            if taken < WRITE_BATCH {
                next = mailbox.try_recv().ok();
            }
        }
        out
    }

    /// One item: held, or (urgent, or past the bound) released with everything before it.
    fn take(&mut self, item: Outbound, out: &mut Vec<Outbound>) {
        match classify(&item) {
            Class::Urgent => {
                out.extend(self.release(CsiFlushReason::Urgent));
                out.push(item);
                return;
            }
            Class::Presence(from) => {
                let at = self.base + self.held.len() as u64;
                if let Some(before) = self.presence_at.insert(from, at) {
                    // The latest presence per sender wins; the earlier one is dropped.
                    if let Some(slot) = self.held.get_mut((before - self.base) as usize)
                        && slot.take().is_some()
                    {
                        self.count -= 1;
                        crate::metrics::csi_collapsed();
                    }
                }
                crate::metrics::csi_held("presence");
            }
            Class::Hold => crate::metrics::csi_held("message"),
        }
        self.held.push_back(Some(item));
        self.count += 1;
        if self.count > self.max_held {
            out.extend(self.release(CsiFlushReason::Overflow));
        }
    }

    /// Everything held, in order (the session is closing or detaching).
    pub fn take_all(&mut self) -> Vec<Outbound> {
        self.release(CsiFlushReason::Closing)
    }

    fn release(&mut self, reason: CsiFlushReason) -> Vec<Outbound> {
        if self.count == 0 {
            self.held.clear();
            return Vec::new();
        }
        crate::metrics::csi_flush(reason.name(), self.count);
        self.base += self.held.len() as u64;
        self.presence_at.clear();
        self.count = 0;
        let released = self.held.drain(..).flatten().collect();
        // A long inactive spell should not keep its peak allocation.
        if self.held.capacity() > 64 {
            self.held = VecDeque::new();
        }
        released
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    /// `text` parsed with `jabber:client` as the root's namespace (unless it names one).
    fn parse(text: &str) -> Element {
        let root = &text[..text.find('>').unwrap()];
        let with_ns = if root.contains(" xmlns=") {
            text.to_owned()
        } else {
            let end = text.find([' ', '/', '>']).unwrap();
            format!("{} xmlns='jabber:client'{}", &text[..end], &text[end..])
        };
        with_ns.parse().unwrap()
    }

    fn stanza(text: &str) -> Outbound {
        Outbound::Stanza(Box::new(parse(text)))
    }

    fn ids(items: &[Outbound]) -> Vec<String> {
        items
            .iter()
            .map(|item| match item {
                Outbound::Stanza(el) | Outbound::Tracked(el, _) => el.attr("id").unwrap_or("").to_owned(),
                Outbound::Shared(s) => shared_root_attr(s, "id").unwrap_or_default(),
            })
            .collect()
    }

    fn admit(csi: &mut Csi, items: Vec<Outbound>) -> Vec<Outbound> {
        let (tx, mut rx) = mpsc::channel(64);
        let mut items = items.into_iter();
        let first = items.next().unwrap();
        for item in items {
            tx.try_send(item).unwrap();
        }
        csi.admit(first, &mut rx)
    }

    #[test]
    fn classification() {
        let c = |s: &str| classify(&stanza(s));
        assert_eq!(
            c("<presence from='a@x/1' id='p'/>"),
            Class::Presence("a@x/1".into())
        );
        assert_eq!(
            c("<presence from='a@x/1' type='unavailable'/>"),
            Class::Presence("a@x/1".into())
        );
        assert_eq!(c("<presence from='a@x' type='subscribe'/>"), Class::Urgent);
        assert_eq!(
            c("<message from='a@x/1'><body>hi</body></message>"),
            Class::Urgent
        );
        assert_eq!(
            c("<message from='a@x/1'><active xmlns='http://jabber.org/protocol/chatstates'/></message>"),
            Class::Hold
        );
        assert_eq!(
            c("<message from='r@x/n' type='groupchat'><body>hi</body></message>"),
            Class::Hold
        );
        assert_eq!(c("<message from='a@x/1' type='error'/>"), Class::Urgent);
        assert_eq!(c("<iq from='a@x/1' type='get' id='i'/>"), Class::Urgent);
        assert_eq!(
            c(
                "<message from='me@x'><sent xmlns='urn:xmpp:carbons:2'><forwarded xmlns='urn:xmpp:forward:0'>\
               <message xmlns='jabber:client' from='me@x/2' to='b@x'><body>hi</body></message>\
               </forwarded></sent></message>"
            ),
            Class::Urgent
        );
        assert_eq!(
            c("<message from='r@x'><x xmlns='jabber:x:conference' jid='r@x'/></message>"),
            Class::Urgent
        );
    }

    #[test]
    fn shared_presence_is_collapsed_by_its_from() {
        let mut el = parse("<presence from='room@muc/nick' id='s'/>");
        xml::set_attr(&mut el, "from", "room@muc/nick");
        let shared = Arc::new(SharedStanza::new(el).unwrap());
        assert_eq!(
            classify(&Outbound::Shared(shared)),
            Class::Presence("room@muc/nick".into())
        );
        let msg = SharedStanza::new(parse(
            "<message type='groupchat' from='r@m/n'><body>x</body></message>",
        ));
        assert_eq!(classify(&Outbound::Shared(Arc::new(msg.unwrap()))), Class::Hold);
    }

    #[test]
    fn held_until_urgent_then_in_order_with_presence_collapsed() {
        let mut csi = Csi::new(100);
        csi.set_active(false);
        let out = admit(
            &mut csi,
            vec![
                stanza("<presence from='a@x/1' id='p1'/>"),
                stanza(
                    "<message from='b@x/1' id='cs'><composing xmlns='http://jabber.org/protocol/chatstates'/></message>",
                ),
                stanza("<presence from='c@x/1' id='c1'/>"),
                stanza("<presence from='a@x/1' id='p2'/>"),
            ],
        );
        assert!(out.is_empty());
        assert_eq!(csi.held(), 3, "a@x/1's first presence was replaced");
        let out = admit(
            &mut csi,
            vec![stanza("<message from='b@x/1' id='m'><body>hi</body></message>")],
        );
        assert_eq!(ids(&out), ["cs", "c1", "p2", "m"]);
        assert_eq!(csi.held(), 0);
        // Collapsing still works after a flush moved the indices on.
        admit(&mut csi, vec![stanza("<presence from='a@x/1' id='p3'/>")]);
        admit(&mut csi, vec![stanza("<presence from='a@x/1' id='p4'/>")]);
        assert_eq!(ids(&csi.set_active(true)), ["p4"]);
    }

    #[test]
    fn overflow_flushes_instead_of_dropping() {
        let mut csi = Csi::new(3);
        csi.set_active(false);
        let held: Vec<Outbound> = (0..3)
            .map(|i| stanza(&format!("<presence from='a@x/{i}' id='{i}'/>")))
            .collect();
        assert!(admit(&mut csi, held).is_empty());
        let out = admit(&mut csi, vec![stanza("<presence from='z@x/1' id='3'/>")]);
        assert_eq!(ids(&out), ["0", "1", "2", "3"]);
    }

    #[test]
    fn requests() {
        assert_eq!(request(&parse("<inactive xmlns='urn:xmpp:csi:0'/>")), Some(false));
        assert_eq!(request(&parse("<active xmlns='urn:xmpp:csi:0'/>")), Some(true));
        assert_eq!(request(&parse("<other xmlns='urn:xmpp:csi:0'/>")), None);
        assert_eq!(request(&parse("<active xmlns='jabber:client'/>")), None);
    }
}
