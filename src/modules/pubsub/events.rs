//! Building notifications (XEP-0060 §7.1.2, §7.2.2, §8.2.4, §8.4.2, §8.5.2) and item
//! answers with xmpp-parsers' pubsub types.

use std::sync::Arc;

use jid::{BareJid, FullJid};
use minidom::Element;
use xmpp_parsers::pubsub::event::{Event, Item as EventItem, Payload};
use xmpp_parsers::pubsub::pubsub::Item as PubSubItem;
use xmpp_parsers::pubsub::{ItemId, NodeName};

use super::node::Item;
use crate::session::SharedStanza;
use crate::xml::{self, ns};

pub fn pubsub_item(item: &Item) -> PubSubItem {
    PubSubItem {
        id: Some(ItemId(item.id.clone())),
        publisher: None,
        payload: Some(item.payload.clone()),
    }
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
