//! Building notifications (XEP-0060 §7.1.2, §7.2.2, §8.2.4, §8.4.2, §8.5.2) and item
//! answers with xmpp-parsers' pubsub types.

use std::sync::Arc;

use jid::{BareJid, FullJid};
use minidom::Element;
use xmpp_parsers::pubsub::event::{Event, Item as EventItem, Payload};
use xmpp_parsers::pubsub::pubsub::{Item as PubSubItem, Items};
use xmpp_parsers::pubsub::{ItemId, NodeName};

use super::node::{Item, Node};
use crate::error::StanzaError;
use crate::session::SharedStanza;
use crate::xml::{self, ns};

pub fn pubsub_item(item: &Item) -> PubSubItem {
    PubSubItem {
        id: Some(ItemId(item.id.clone())),
        publisher: None,
        payload: Some(item.payload.clone()),
    }
}

/// XEP-0060 §6.5: the answer to an items request (all, the newest `max_items`, or by id).
pub fn items_answer(node: &Node, items: Items) -> Result<Element, StanzaError> {
    let found: Vec<PubSubItem> = if items.items.is_empty() {
        let max = items.max_items.map_or(usize::MAX, |m| m as usize);
        let skip = node.items.len().saturating_sub(max);
        node.items[skip..].iter().map(pubsub_item).collect()
    } else {
        let wanted: Vec<&str> = items
            .items
            .iter()
            .filter_map(|i| i.id.as_ref().map(|id| id.0.as_str()))
            .collect();
        let found: Vec<PubSubItem> = node
            .items
            .iter()
            .filter(|i| wanted.contains(&i.id.as_str()))
            .map(pubsub_item)
            .collect();
        if found.is_empty() {
            return Err(StanzaError::item_not_found().text("no such item"));
        }
        found
    };
    let answer = Items {
        max_items: None,
        node: items.node,
        subid: None,
        items: found,
    };
    Ok(xmpp_parsers::pubsub::PubSub::Items(answer).into())
}

fn event(payload: Payload) -> Element {
    Event { payload }.into()
}

/// A published item, with its payload unless the node says not to deliver payloads.
pub fn items_event(node: &str, item: &Item, with_payload: bool) -> Element {
    event(Payload::Items {
        node: NodeName(node.to_owned()),
        published: vec![EventItem {
            id: Some(ItemId(item.id.clone())),
            publisher: None,
            payload: with_payload.then(|| item.payload.clone()),
        }],
        retracted: Vec::new(),
    })
}

pub fn retract_event(node: &str, ids: &[String]) -> Element {
    event(Payload::Items {
        node: NodeName(node.to_owned()),
        published: Vec::new(),
        retracted: ids.iter().map(|id| ItemId(id.clone())).collect(),
    })
}

pub fn delete_event(node: &str) -> Element {
    event(Payload::Delete {
        node: NodeName(node.to_owned()),
        redirect: None,
    })
}

pub fn purge_event(node: &str) -> Element {
    event(Payload::Purge {
        node: NodeName(node.to_owned()),
    })
}

pub fn configuration_event(node: &str) -> Element {
    event(Payload::Configuration {
        node: NodeName(node.to_owned()),
        form: None,
    })
}

/// The notification message from the owner's bare JID (XEP-0163 §4.3), `to` left unset.
fn skeleton(owner: &BareJid, event: Element) -> Element {
    let mut m = Element::bare("message", ns::CLIENT);
    xml::set_attr(&mut m, "from", owner.as_str());
    xml::set_attr(&mut m, "type", "headline");
    xml::set_attr(&mut m, "id", &uuid::Uuid::new_v4().to_string());
    m.append_child(event);
    m
}

/// One notification for many recipients, serialized once.
pub fn shared_message(owner: &BareJid, event: Element) -> Option<Arc<SharedStanza>> {
    SharedStanza::new(skeleton(owner, event)).map(Arc::new)
}

/// One notification for one resource.
pub fn message(owner: &BareJid, to: &FullJid, event: Element) -> Element {
    let mut m = skeleton(owner, event);
    xml::set_attr(&mut m, "to", &to.to_string());
    m
}
