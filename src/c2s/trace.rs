//! Per-session traffic tracing, switched on by an administrator (ad-hoc command): every
//! stanza the session reads or writes is logged at info level with target "xmpp_trace",
//! with its secrets redacted ([`render`]): a trace is for debugging a client, and an
//! administrator must not learn passwords or private notes from it.

use minidom::Element;

use crate::xml;

#[derive(Default)]
pub struct TraceTraffic(pub std::sync::atomic::AtomicBool);

impl TraceTraffic {
    pub fn on(&self) -> bool {
        self.0.load(std::sync::atomic::Ordering::Relaxed)
    }
}

/// What replaces a secret in a trace.
pub const REDACTED: &str = "[redacted]";

/// Roster notes (`xep/xep-roster-notes.md`): private text, encrypted at rest.
const NOTES_NS: &str = "urn:switchboard:roster-notes:0";
const DATA_FORMS_NS: &str = "jabber:x:data";

/// `el` serialized for a trace log, its secrets replaced by [`REDACTED`]: the text of every
/// `<password/>` (XEP-0077 registration and password change, MUC room passwords) and of
/// every roster note, and the values of data form fields that are private (`text-private`,
/// or named like a password or a secret: submitted forms carry no field types).
pub fn render(el: &Element) -> String {
    if holds_secret(el) {
        let mut copy = el.clone();
        redact(&mut copy);
        xml::to_string(&copy)
    } else {
        xml::to_string(el)
    }
}

fn secret_element(el: &Element) -> bool {
    el.name() == "password" || (el.name() == "note" && el.ns() == NOTES_NS)
}

fn secret_field(el: &Element) -> bool {
    if el.name() != "field" || el.ns() != DATA_FORMS_NS {
        return false;
    }
    let var = el.attr("var").unwrap_or_default().to_ascii_lowercase();
    el.attr("type") == Some("text-private")
        || ["password", "secret", "token", "key"]
            .iter()
            .any(|w| var.contains(w))
}

fn holds_secret(el: &Element) -> bool {
    secret_element(el) || secret_field(el) || el.children().any(holds_secret)
}

fn redact(el: &mut Element) {
    if secret_element(el) {
        blank(el);
        return;
    }
    if secret_field(el) {
        for value in el.children_mut().filter(|c| c.name() == "value") {
            blank(value);
        }
        return;
    }
    for child in el.children_mut() {
        redact(child);
    }
}

/// Replaces all of `el`'s content with the marker (or nothing, when it was empty).
fn blank(el: &mut Element) {
    let had_content = el.nodes().next().is_some();
    let attrs = el.attrs().clone();
    *el = Element::builder(el.name(), el.ns()).build();
    *el.attrs_mut() = attrs;
    if had_content {
        el.append_text_node(REDACTED);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Element {
        s.parse().expect("xml")
    }

    #[test]
    fn register_password_change_is_redacted() {
        let el = parse(
            "<iq xmlns='jabber:client' type='set' id='c1'><query xmlns='jabber:iq:register'>\
             <username>alice</username><password>n3w-s3cret</password></query></iq>",
        );
        let out = render(&el);
        assert!(!out.contains("n3w-s3cret"), "{out}");
        assert!(out.contains("<username>alice</username>"), "{out}");
        assert!(out.contains(REDACTED), "{out}");
    }

    #[test]
    fn private_form_fields_and_notes_are_redacted() {
        let el = parse(
            "<iq xmlns='jabber:client' type='set' id='c2'>\
             <command xmlns='http://jabber.org/protocol/commands' node='x'>\
             <x xmlns='jabber:x:data' type='submit'>\
             <field var='password'><value>p1-secret</value></field>\
             <field var='password-verify'><value>p1-secret</value></field>\
             <field var='muc#roomconfig_roomsecret'><value>room-secret</value></field>\
             <field var='pin' type='text-private'><value>1234</value></field>\
             <field var='accountjid'><value>bob@localhost</value></field>\
             </x></command></iq>",
        );
        let out = render(&el);
        for secret in ["p1-secret", "room-secret", "1234"] {
            assert!(!out.contains(secret), "{out}");
        }
        assert!(out.contains("bob@localhost"), "{out}");
        let note = parse(
            "<iq xmlns='jabber:client' type='set' id='n1'><query xmlns='jabber:iq:roster'>\
             <item jid='bob@localhost'><note xmlns='urn:switchboard:roster-notes:0'>plays only ranked</note>\
             </item></query></iq>",
        );
        let out = render(&note);
        assert!(!out.contains("plays only ranked"), "{out}");
        assert!(out.contains("bob@localhost"), "{out}");
    }

    #[test]
    fn stanzas_without_secrets_are_unchanged() {
        let el = parse("<message xmlns='jabber:client' to='bob@localhost'><body>hi</body></message>");
        assert_eq!(render(&el), xml::to_string(&el));
    }
}
