//! XEP-0402 bookmarks in PEP (`urn:xmpp:bookmarks:1`, one item per room) kept in step with
//! XEP-0048 bookmarks in XEP-0049 private storage (`storage:bookmarks`), both ways
//! (XEP-0402 §3 `#compat` and `#compat-pep`):
//!
//! - a change to the PEP node rewrites the private `<storage/>` (its `<url/>` bookmarks kept);
//! - private XML stored under `storage:bookmarks` (the private module's `private_stored`
//!   hook) becomes publishes and retractions on the node, notified like any other.

use std::sync::Arc;

use jid::BareJid;
use minidom::Element;

use super::config::{AccessModel, MAX_ITEMS, NodeConfig, SendLast};
use super::events;
use super::node::Node;
use super::pep::{Pep, STORAGE, create_stored, parts};
use crate::error::StanzaError;
use crate::server::Server;
use crate::xml;

pub const NODE: &str = "urn:xmpp:bookmarks:1";
pub const NS_LEGACY: &str = "storage:bookmarks";
pub const FEATURE_COMPAT: &str = "urn:xmpp:bookmarks:1#compat";
pub const FEATURE_COMPAT_PEP: &str = "urn:xmpp:bookmarks:1#compat-pep";
const NS_PRIVATE: &str = "jabber:iq:private";

/// XEP-0402 §5: the node's configuration.
pub fn node_config() -> NodeConfig {
    NodeConfig {
        access_model: AccessModel::Whitelist,
        max_items: MAX_ITEMS,
        persist_items: true,
        send_last_published_item: SendLast::Never,
        ..NodeConfig::default()
    }
}

fn truthy(v: Option<&str>) -> bool {
    matches!(v, Some("true" | "1"))
}

/// A XEP-0048 `<conference/>` as a XEP-0402 item: (room JID, payload).
pub fn legacy_to_native(conference: &Element) -> Option<(String, Element)> {
    let room = BareJid::new(conference.attr("jid")?).ok()?;
    let mut native = Element::bare("conference", NODE);
    if let Some(name) = conference.attr("name") {
        xml::set_attr(&mut native, "name", name);
    }
    if truthy(conference.attr("autojoin")) {
        xml::set_attr(&mut native, "autojoin", "true");
    }
    for child in ["nick", "password"] {
        if let Some(el) = conference.get_child(child, NS_LEGACY) {
            native.append_child(xml::text_element(child, NODE, &el.text()));
        }
    }
    Some((room.to_string(), native))
}

/// A XEP-0402 item as a XEP-0048 `<conference/>`.
pub fn native_to_legacy(room: &str, native: &Element) -> Element {
    let mut legacy = Element::bare("conference", NS_LEGACY);
    xml::set_attr(&mut legacy, "jid", room);
    if let Some(name) = native.attr("name") {
        xml::set_attr(&mut legacy, "name", name);
    }
    xml::set_attr(
        &mut legacy,
        "autojoin",
        if truthy(native.attr("autojoin")) {
            "true"
        } else {
            "false"
        },
    );
    for child in ["nick", "password"] {
        if let Some(el) = native.get_child(child, NODE) {
            legacy.append_child(xml::text_element(child, NS_LEGACY, &el.text()));
        }
    }
    legacy
}

/// The `<storage/>` elements in stored private XML of `storage:bookmarks`.
fn parse_private(data: &str) -> Vec<Element> {
    match format!("<query xmlns='{NS_PRIVATE}'>{data}</query>").parse::<Element>() {
        Ok(q) => q
            .children()
            .filter(|c| c.is("storage", NS_LEGACY))
            .cloned()
            .collect(),
        Err(e) => {
            tracing::warn!(error = %e, "stored bookmarks are not valid XML");
            Vec::new()
        }
    }
}

/// Rewrites the owner's private `storage:bookmarks` from the node's items, keeping the
/// `<url/>` bookmarks stored there (XEP-0402 has none).
pub async fn write_private(server: &Server, owner: &BareJid, node: &Node) -> Result<(), StanzaError> {
    let (host, user) = parts(owner);
    let stored = server
        .storage
        .get_private(host, user, NS_LEGACY)
        .await
        .map_err(StanzaError::storage(STORAGE))?;
    let mut storage = Element::bare("storage", NS_LEGACY);
    for item in &node.items {
        storage.append_child(native_to_legacy(&item.id, &item.payload));
    }
    for old in stored.as_deref().map(parse_private).unwrap_or_default() {
        for url in old.children().filter(|c| c.is("url", NS_LEGACY)) {
            storage.append_child(url.clone());
        }
    }
    let items = [(NS_LEGACY.to_owned(), xml::to_string(&storage))];
    server
        .storage
        .set_private(host, user, &items)
        .await
        .map_err(StanzaError::storage(STORAGE))?;
    Ok(())
}

impl Pep {
    /// Private `storage:bookmarks` data was stored: the PEP node follows it, with
    /// notifications for what changed.
    pub async fn bookmarks_from_private(
        &self,
        server: &Arc<Server>,
        owner: &BareJid,
        data: &str,
    ) -> Result<(), StanzaError> {
        let wanted: Vec<(String, Element)> = parse_private(data)
            .iter()
            .flat_map(|s| s.children().filter(|c| c.is("conference", NS_LEGACY)))
            .filter_map(legacy_to_native)
            .collect();
        let roster = self
            .rosters
            .get(server, owner)
            .await
            .map_err(StanzaError::storage(STORAGE))?;
        let mut guard = self.lock(server, owner).await?;
        let nodes = guard.as_mut().expect("loaded by lock");
        if !nodes.contains_key(NODE) {
            if wanted.is_empty() {
                return Ok(());
            }
            let config = node_config();
            create_stored(server, owner, NODE, &config).await?;
            nodes.insert(NODE.to_owned(), Node::new(config));
        }
        let node = nodes.get_mut(NODE).expect("present or created above");
        let (host, user) = parts(owner);
        let gone: Vec<String> = node
            .items
            .iter()
            .filter(|i| !wanted.iter().any(|(id, _)| *id == i.id))
            .map(|i| i.id.clone())
            .collect();
        if !gone.is_empty() {
            server
                .storage
                .pep_retract(host, user, NODE, &gone)
                .await
                .map_err(StanzaError::storage(STORAGE))?;
            for id in &gone {
                node.retract(id);
            }
            if node.config.notify_retract {
                self.notify(
                    server,
                    owner,
                    &roster,
                    NODE,
                    node,
                    events::retract_event(NODE, &gone),
                );
            }
        }
        for (id, payload) in wanted {
            let same = node.items.iter().any(|i| i.id == id && i.payload == payload);
            if same {
                continue;
            }
            let (item, evicted) = node.publish(id, owner.to_string(), payload);
            server
                .storage
                .pep_publish(host, user, NODE, &item.to_stored(), &evicted)
                .await
                .map_err(StanzaError::storage(STORAGE))?;
            let event = events::items_event(NODE, &item, node.config.deliver_payloads);
            self.notify(server, owner, &roster, NODE, node, event);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conferences_convert_both_ways() {
        let legacy: Element = "<conference xmlns='storage:bookmarks' jid='Room@Conference.Example' name='The Room' autojoin='1'>\
            <nick>juliet</nick><password>pw</password></conference>"
            .parse()
            .unwrap();
        let (room, native) = legacy_to_native(&legacy).unwrap();
        assert_eq!(room, "room@conference.example");
        assert_eq!(native.attr("autojoin"), Some("true"));
        assert_eq!(native.get_child("nick", NODE).unwrap().text(), "juliet");
        let back = native_to_legacy(&room, &native);
        assert_eq!(back.attr("jid"), Some("room@conference.example"));
        assert_eq!(back.attr("name"), Some("The Room"));
        assert_eq!(back.attr("autojoin"), Some("true"));
        assert_eq!(back.get_child("password", NS_LEGACY).unwrap().text(), "pw");
        let no_jid: Element = "<conference xmlns='storage:bookmarks' name='x'/>"
            .parse()
            .unwrap();
        assert!(legacy_to_native(&no_jid).is_none());
    }
}
