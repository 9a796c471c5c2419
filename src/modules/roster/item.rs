//! Roster items on the wire (RFC 6121 §2.1): parsing and validating a roster set (§2.3.3,
//! §2.4, §2.5), and rendering items for results and pushes.

use jid::{BareJid, Jid};
use minidom::Element;

use super::subscription::Sub;
use crate::error::StanzaError;
use crate::xml;

pub const NS: &str = "jabber:iq:roster";
/// Longest `name` attribute accepted, in bytes (§2.3.3: "a server-configured limit").
pub const MAX_NAME_BYTES: usize = 1024;
/// Longest group name accepted, in bytes (§2.3.3).
pub const MAX_GROUP_BYTES: usize = 1024;
/// Most groups one item may be in.
pub const MAX_GROUPS: usize = 64;

/// One roster item as the server keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Item {
    pub name: Option<String>,
    pub groups: Vec<String>,
    pub sub: Sub,
    /// Pending out: `ask='subscribe'` (§2.1.2.2).
    pub ask: bool,
    /// Subscription pre-approved (§2.1.2.1, §3.4).
    pub approved: bool,
}

impl Item {
    /// A new item with no name, groups or subscription.
    pub fn empty() -> Item {
        Item {
            name: None,
            groups: Vec::new(),
            sub: Sub::None,
            ask: false,
            approved: false,
        }
    }
}

/// A validated roster set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SetRequest {
    /// Add or update (§2.3, §2.4). `ask`, `approved` and any `subscription` other than
    /// "remove" are ignored, as §2.1.2 requires.
    Update {
        jid: BareJid,
        name: Option<String>,
        groups: Vec<String>,
        /// The private note child (`notes.rs`): `None` when absent (the note is left as
        /// it is), `Some("")` to delete it. Its length is checked by the caller.
        note: Option<String>,
    },
    /// `subscription='remove'` (§2.5).
    Remove(BareJid),
}

/// Validates the `<query/>` of a roster set sent by `user`.
pub fn parse_set(query: &Element, user: &BareJid) -> Result<SetRequest, StanzaError> {
    let mut items = query.children().filter(|c| c.is("item", NS));
    let (Some(item), None) = (items.next(), items.next()) else {
        // §2.3.3 (1): exactly one <item/>.
        return Err(StanzaError::bad_request().text("a roster set carries exactly one item"));
    };
    let Some(jid) = item.attr("jid") else {
        return Err(StanzaError::bad_request().text("the item has no jid"));
    };
    let jid = Jid::new(jid).map_err(|_| StanzaError::jid_malformed().text("the item's jid is not valid"))?;
    let jid = match jid.try_into_full() {
        Err(bare) => bare,
        Ok(_) => {
            return Err(StanzaError::bad_request().text("roster items are bare JIDs, without a resource"));
        }
    };
    if jid == *user {
        return Err(StanzaError::not_allowed().text("your own JID cannot be in your roster"));
    }
    if item.attr("subscription") == Some("remove") {
        return Ok(SetRequest::Remove(jid));
    }
    let name = item.attr("name").filter(|n| !n.is_empty());
    if name.is_some_and(|n| n.len() > MAX_NAME_BYTES) {
        return Err(
            StanzaError::not_acceptable().text(format!("the name is longer than {MAX_NAME_BYTES} bytes"))
        );
    }
    let mut groups: Vec<String> = Vec::new();
    for group in item.children().filter(|c| c.is("group", NS)) {
        let text = group.text();
        if text.is_empty() {
            // §2.3.3: to put an item in no group, send no <group/> at all.
            return Err(StanzaError::not_acceptable().text("a group name cannot be empty"));
        }
        if text.len() > MAX_GROUP_BYTES {
            return Err(StanzaError::not_acceptable()
                .text(format!("a group name is longer than {MAX_GROUP_BYTES} bytes")));
        }
        if groups.contains(&text) {
            // §2.3.3 (2): duplicate groups.
            return Err(StanzaError::bad_request().text(format!("the group '{text}' is listed twice")));
        }
        groups.push(text);
    }
    if groups.len() > MAX_GROUPS {
        return Err(
            StanzaError::not_acceptable().text(format!("an item can be in at most {MAX_GROUPS} groups"))
        );
    }
    let mut notes = item.children().filter(|c| c.is("note", super::notes::NS));
    let note = notes.next().map(Element::text);
    if notes.next().is_some() {
        return Err(StanzaError::bad_request().text("an item carries at most one note"));
    }
    Ok(SetRequest::Update {
        jid,
        name: name.map(str::to_owned),
        groups,
        note,
    })
}

/// `<item/>` for a roster result or push (§2.1.2).
pub fn item_element(jid: &BareJid, item: &Item) -> Element {
    let mut el = Element::bare("item", NS);
    xml::set_attr(&mut el, "jid", jid.as_str());
    if let Some(name) = &item.name {
        xml::set_attr(&mut el, "name", name);
    }
    xml::set_attr(&mut el, "subscription", item.sub.as_str());
    if item.ask {
        xml::set_attr(&mut el, "ask", "subscribe");
    }
    if item.approved {
        xml::set_attr(&mut el, "approved", "true");
    }
    for group in &item.groups {
        el.append_child(xml::text_element("group", NS, group));
    }
    el
}

/// The `<item subscription='remove'/>` of a removal push (§2.5.2).
pub fn removed_element(jid: &BareJid) -> Element {
    let mut el = Element::bare("item", NS);
    xml::set_attr(&mut el, "jid", jid.as_str());
    xml::set_attr(&mut el, "subscription", "remove");
    el
}

/// `<query xmlns='jabber:iq:roster' ver='...'/>`.
pub fn query(ver: i64) -> Element {
    let mut q = Element::bare("query", NS);
    xml::set_attr(&mut q, "ver", &ver.to_string());
    q
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user() -> BareJid {
        BareJid::new("juliet@example.com").unwrap()
    }

    fn parse(items: &str) -> Result<SetRequest, StanzaError> {
        let q: Element = format!("<query xmlns='{NS}'>{items}</query>").parse().unwrap();
        parse_set(&q, &user())
    }

    fn condition(items: &str) -> &'static str {
        parse(items).unwrap_err().condition
    }

    #[test]
    fn rfc6121_2_3_add_with_name_and_groups() {
        let r = parse(
            "<item jid='Nurse@Example.com' name='Nurse'><group>Servants</group><group>B</group></item>",
        );
        assert_eq!(
            r.unwrap(),
            SetRequest::Update {
                jid: BareJid::new("nurse@example.com").unwrap(),
                name: Some("Nurse".into()),
                groups: vec!["Servants".into(), "B".into()],
                note: None,
            }
        );
    }

    #[test]
    fn rfc6121_2_1_2_client_ask_approved_and_subscription_ignored() {
        let r = parse(
            "<item jid='nurse@example.com' ask='subscribe' approved='true' subscription='both' name=''/>",
        );
        assert_eq!(
            r.unwrap(),
            SetRequest::Update {
                jid: BareJid::new("nurse@example.com").unwrap(),
                name: None,
                groups: vec![],
                note: None,
            }
        );
    }

    #[test]
    fn rfc6121_2_5_remove() {
        let r = parse("<item jid='nurse@example.com' subscription='remove'/>");
        assert_eq!(
            r.unwrap(),
            SetRequest::Remove(BareJid::new("nurse@example.com").unwrap())
        );
    }

    #[test]
    fn rfc6121_2_3_3_item_count_is_bad_request() {
        assert_eq!(condition(""), "bad-request");
        assert_eq!(condition("<item jid='a@b'/><item jid='c@d'/>"), "bad-request");
    }

    #[test]
    fn rfc6121_2_3_3_duplicate_group_is_bad_request() {
        assert_eq!(
            condition("<item jid='a@b'><group>x</group><group>x</group></item>"),
            "bad-request"
        );
    }

    #[test]
    fn rfc6121_2_3_3_empty_or_long_group_and_long_name_not_acceptable() {
        assert_eq!(condition("<item jid='a@b'><group/></item>"), "not-acceptable");
        let long = "g".repeat(MAX_GROUP_BYTES + 1);
        assert_eq!(
            condition(&format!("<item jid='a@b'><group>{long}</group></item>")),
            "not-acceptable"
        );
        let long = "n".repeat(MAX_NAME_BYTES + 1);
        assert_eq!(
            condition(&format!("<item jid='a@b' name='{long}'/>")),
            "not-acceptable"
        );
        let many: String = (0..=MAX_GROUPS).map(|i| format!("<group>{i}</group>")).collect();
        assert_eq!(
            condition(&format!("<item jid='a@b'>{many}</item>")),
            "not-acceptable"
        );
        // At the limits it is fine.
        let name = "n".repeat(MAX_NAME_BYTES);
        let group = "g".repeat(MAX_GROUP_BYTES);
        assert!(
            parse(&format!(
                "<item jid='a@b' name='{name}'><group>{group}</group></item>"
            ))
            .is_ok()
        );
    }

    #[test]
    fn jid_errors() {
        assert_eq!(condition("<item name='x'/>"), "bad-request");
        assert_eq!(condition("<item jid='a@@b'/>"), "jid-malformed");
        assert_eq!(condition("<item jid='a@b/res'/>"), "bad-request");
        assert_eq!(condition("<item jid='Juliet@example.com'/>"), "not-allowed");
        assert_eq!(
            condition("<item jid='juliet@example.com' subscription='remove'/>"),
            "not-allowed"
        );
        // A domain (a gateway or server) is a valid contact.
        assert!(parse("<item jid='example.net'/>").is_ok());
    }

    #[test]
    fn note_child() {
        let note = |items: &str| match parse(items).unwrap() {
            SetRequest::Update { note, .. } => note,
            SetRequest::Remove(_) => panic!("not an update"),
        };
        let ns = super::super::notes::NS;
        assert_eq!(note("<item jid='a@b' name='A'/>"), None, "absent: unchanged");
        assert_eq!(
            note(&format!(
                "<item jid='a@b'><note xmlns='{ns}'>ranked only</note></item>"
            ))
            .as_deref(),
            Some("ranked only")
        );
        assert_eq!(
            note(&format!("<item jid='a@b'><note xmlns='{ns}'/></item>")).as_deref(),
            Some(""),
            "empty: delete"
        );
        // Another namespace is not a note.
        assert_eq!(
            note("<item jid='a@b'><note xmlns='urn:other'>x</note></item>"),
            None
        );
        assert_eq!(
            condition(&format!(
                "<item jid='a@b'><note xmlns='{ns}'>1</note><note xmlns='{ns}'>2</note></item>"
            )),
            "bad-request"
        );
    }

    #[test]
    fn rendering() {
        let jid = BareJid::new("nurse@example.com").unwrap();
        let mut item = Item::empty();
        assert_eq!(
            xml::to_string(&item_element(&jid, &item)),
            "<item xmlns='jabber:iq:roster' jid='nurse@example.com' subscription='none'/>"
        );
        item.name = Some("N".into());
        item.ask = true;
        item.approved = true;
        item.groups = vec!["G".into()];
        let el = item_element(&jid, &item);
        assert_eq!(el.attr("ask"), Some("subscribe"));
        assert_eq!(el.attr("approved"), Some("true"));
        assert_eq!(el.attr("name"), Some("N"));
        assert_eq!(el.get_child("group", NS).unwrap().text(), "G");
        assert_eq!(removed_element(&jid).attr("subscription"), Some("remove"));
        assert_eq!(query(7).attr("ver"), Some("7"));
    }
}
