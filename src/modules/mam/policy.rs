//! What an account's archive keeps (XEP-0313 §5.1.1 and the XEP-0334 hints) and the
//! XEP-0359 stanza ids on what it keeps. Pure functions over the stanza, no I/O.
//!
//! Kept: messages of type chat or normal (or none) with a `<body/>`, or with a `<store/>` hint.
//! Never: `<no-store/>` or `<no-permanent-store/>` hints, error, headline and groupchat
//! messages (a room archives its own), carbons and archive results (copies of messages
//! archived already).

use minidom::Element;

use crate::xml::{self, ns};

pub const NS_SID: &str = "urn:xmpp:sid:0";
pub const NS_HINTS: &str = "urn:xmpp:hints";
const NS_CARBONS: &str = "urn:xmpp:carbons:2";
/// XEP-0424 message retraction.
pub const NS_RETRACT: &str = "urn:xmpp:message-retract:1";
pub const NS_TOMBSTONE: &str = "urn:xmpp:message-retract:1#tombstone";

/// Whether an account's archive keeps `msg` (a `<message/>`).
pub fn archivable(msg: &Element) -> bool {
    if !matches!(msg.attr("type"), None | Some("chat") | Some("normal")) {
        return false;
    }
    if msg.has_child("no-store", NS_HINTS) || msg.has_child("no-permanent-store", NS_HINTS) {
        return false;
    }
    if msg.has_child("sent", NS_CARBONS)
        || msg.has_child("received", NS_CARBONS)
        || msg.has_child("result", super::NS)
    {
        return false;
    }
    msg.has_child("body", ns::CLIENT) || msg.has_child("store", NS_HINTS)
}

/// Whether a room's archive keeps a groupchat message it broadcasts: one with a body (or a
/// `<store/>` hint), without a no-store hint (a subject change alone is not kept).
pub fn room_archivable(msg: &Element) -> bool {
    if msg.has_child("no-store", NS_HINTS) || msg.has_child("no-permanent-store", NS_HINTS) {
        return false;
    }
    msg.has_child("body", ns::CLIENT) || msg.has_child("store", NS_HINTS)
}

/// Whether the archive has anything to do with `msg`: keep it, remove a stanza-id from it
/// or apply the retraction it carries (the hooks' cheap pre-check).
pub fn concerns_archive(msg: &Element) -> bool {
    has_stanza_id(msg) || archivable(msg) || msg.has_child("retract", NS_RETRACT)
}

/// Whether `msg` carries any `<stanza-id/>` (the common case, none, costs one scan).
pub fn has_stanza_id(msg: &Element) -> bool {
    msg.has_child("stanza-id", NS_SID)
}

/// Removes every `<stanza-id/>` whose `by` `claims` (XEP-0359 §4: an id claiming to be
/// ours that we did not add must not survive); the others stay (after the other children).
/// Returns how many were removed.
pub fn strip_stanza_ids(msg: &mut Element, claims: impl Fn(&str) -> bool) -> usize {
    let mut kept = Vec::new();
    let mut removed = 0;
    while let Some(sid) = msg.remove_child("stanza-id", NS_SID) {
        if sid.attr("by").is_none_or(&claims) {
            removed += 1;
        } else {
            kept.push(sid);
        }
    }
    for sid in kept {
        msg.append_child(sid);
    }
    removed
}

/// The text of `msg`'s `<body/>` (empty when none): what full-text search looks in.
pub fn body_text(msg: &Element) -> String {
    msg.get_child("body", ns::CLIENT)
        .map(|b| b.text())
        .unwrap_or_default()
}

/// The sender's id for `msg`, which a retraction names: its origin-id, else its `id`.
pub fn origin_id(msg: &Element) -> String {
    msg.get_child("origin-id", NS_SID)
        .and_then(|o| o.attr("id"))
        .or_else(|| msg.attr("id"))
        .unwrap_or_default()
        .to_string()
}

/// The id of the message `msg` retracts (XEP-0424 `<retract id=../>`), if it is a retraction.
pub fn retracts(msg: &Element) -> Option<&str> {
    msg.get_child("retract", NS_RETRACT)
        .and_then(|r| r.attr("id"))
        .filter(|id| !id.is_empty())
}

/// XEP-0424 §5 tombstone of an archived message (XML text): the same addresses, type and
/// ids, its content replaced by `<retracted stamp=../>`. `None` if it does not parse.
pub fn tombstone(text: &str, stamp: &str) -> Option<String> {
    let original: Element = text.parse().ok()?;
    let mut tomb = Element::bare("message", ns::CLIENT);
    for name in ["from", "to", "type", "id"] {
        if let Some(value) = original.attr(name) {
            xml::set_attr(&mut tomb, name, value);
        }
    }
    for keep in original
        .children()
        .filter(|c| c.is("origin-id", NS_SID) || c.is("stanza-id", NS_SID))
    {
        tomb.append_child(keep.clone());
    }
    let mut retracted = Element::bare("retracted", NS_RETRACT);
    xml::set_attr(&mut retracted, "stamp", stamp);
    tomb.append_child(retracted);
    Some(xml::to_string(&tomb))
}

/// Adds `<stanza-id xmlns='urn:xmpp:sid:0' by=.. id=../>`.
pub fn add_stanza_id(msg: &mut Element, by: &str, id: &str) {
    let mut sid = Element::bare("stanza-id", NS_SID);
    xml::set_attr(&mut sid, "by", by);
    xml::set_attr(&mut sid, "id", id);
    msg.append_child(sid);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(s: &str) -> Element {
        format!("<message xmlns='jabber:client' {s}</message>")
            .parse()
            .unwrap()
    }

    #[test]
    fn xep0313_5_1_1_what_is_archived() {
        let kept = [
            "type='chat'><body>hi</body>",
            "><body>hi</body>",
            "type='normal'><body>hi</body>",
            "type='chat'><store xmlns='urn:xmpp:hints'/><active xmlns='http://jabber.org/protocol/chatstates'/>",
        ];
        for m in kept {
            assert!(archivable(&msg(m)), "{m}");
        }
        let not = [
            "type='chat'><active xmlns='http://jabber.org/protocol/chatstates'/>",
            "type='groupchat'><body>hi</body>",
            "type='headline'><body>hi</body>",
            "type='error'><body>hi</body>",
            "type='chat'><body>hi</body><no-store xmlns='urn:xmpp:hints'/>",
            "type='chat'><body>hi</body><no-permanent-store xmlns='urn:xmpp:hints'/>",
            "type='error'><store xmlns='urn:xmpp:hints'/>",
            "><body>x</body><received xmlns='urn:xmpp:carbons:2'/>",
            "><body>x</body><result xmlns='urn:xmpp:mam:2'/>",
        ];
        for m in not {
            assert!(!archivable(&msg(m)), "{m}");
        }
    }

    #[test]
    fn xep0424_retraction_and_tombstone() {
        let r = msg("type='chat'><retract xmlns='urn:xmpp:message-retract:1' id='o1'/><body>x</body>");
        assert_eq!(retracts(&r), Some("o1"));
        assert_eq!(retracts(&msg("><body>x</body>")), None);
        let original = msg("from='a@x/r' to='b@x' id='m1' type='chat'><body>oops</body>\
             <origin-id xmlns='urn:xmpp:sid:0' id='o1'/><stanza-id xmlns='urn:xmpp:sid:0' by='b@x' id='7'/>");
        assert_eq!(origin_id(&original), "o1");
        assert_eq!(origin_id(&msg("id='m2'><body>x</body>")), "m2");
        let tomb: Element = tombstone(&xml::to_string(&original), "2026-12-07T00:00:00Z")
            .unwrap()
            .parse()
            .unwrap();
        assert_eq!((tomb.attr("from"), tomb.attr("id")), (Some("a@x/r"), Some("m1")));
        assert!(!tomb.has_child("body", ns::CLIENT));
        assert!(tomb.has_child("origin-id", NS_SID) && tomb.has_child("stanza-id", NS_SID));
        let retracted = tomb.get_child("retracted", NS_RETRACT).unwrap();
        assert_eq!(retracted.attr("stamp"), Some("2026-12-07T00:00:00Z"));
        assert_eq!(tombstone("not xml", "x"), None);
    }

    #[test]
    fn xep0359_forged_ids_stripped_others_kept() {
        let mut m = msg(
            "type='chat'><body>hi</body><stanza-id xmlns='urn:xmpp:sid:0' by='bob@example.org' id='forged'/>\
             <origin-id xmlns='urn:xmpp:sid:0' id='o1'/>\
             <stanza-id xmlns='urn:xmpp:sid:0' by='elsewhere.example' id='theirs'/>\
             <stanza-id xmlns='urn:xmpp:sid:0' by='bob@example.org' id='forged2'/>",
        );
        assert_eq!(strip_stanza_ids(&mut m, |by| by == "bob@example.org"), 2);
        let ids: Vec<_> = m
            .children()
            .filter(|c| c.ns() == NS_SID)
            .map(|c| (c.name().to_string(), c.attr("id").unwrap().to_string()))
            .collect();
        assert_eq!(
            ids,
            [
                ("origin-id".into(), "o1".into()),
                ("stanza-id".into(), "theirs".into())
            ]
        );
        assert!(m.has_child("body", ns::CLIENT));
        assert_eq!(m.attr("type"), Some("chat"));
        add_stanza_id(&mut m, "bob@example.org", "42");
        assert_eq!(m.children().last().unwrap().attr("id"), Some("42"));
    }
}
