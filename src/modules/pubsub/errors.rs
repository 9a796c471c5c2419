//! XEP-0060 error conditions: a defined condition plus a `pubsub#errors` element.

use minidom::Element;

use super::node::Denied;
use crate::error::StanzaError;

pub const NS_PUBSUB: &str = "http://jabber.org/protocol/pubsub";
pub const NS_ERRORS: &str = "http://jabber.org/protocol/pubsub#errors";

/// `feature-not-implemented` with `<unsupported feature='...'/>` (XEP-0060 §7.1.3.x and
/// elsewhere): what this service does not offer.
pub fn unsupported(feature: &str) -> StanzaError {
    let mut el = Element::bare("unsupported", NS_ERRORS);
    crate::xml::set_attr(&mut el, "feature", feature);
    StanzaError::feature_not_implemented().with_application(el)
}

/// `bad-request` with a `pubsub#errors` condition (`item-required`, `payload-required`...).
pub fn bad_request(condition: &str) -> StanzaError {
    StanzaError::bad_request().application(condition, NS_ERRORS)
}

/// §8.2.3.3 and others: the request names no node.
pub fn nodeid_required() -> StanzaError {
    bad_request("nodeid-required")
}

/// The node does not exist.
pub fn no_such_node() -> StanzaError {
    StanzaError::item_not_found().text("no such node")
}

/// XEP-0060 §7.1.5: `publish-options` do not match the node.
pub fn precondition_not_met(why: &str) -> StanzaError {
    StanzaError::conflict()
        .application("precondition-not-met", NS_ERRORS)
        .text(why.to_owned())
}

/// XEP-0060 §6.5.9 (and §6.1.3): access refused by the node's access model.
pub fn denied(d: Denied) -> StanzaError {
    match d {
        Denied::PresenceSubscriptionRequired => {
            StanzaError::not_authorized().application("presence-subscription-required", NS_ERRORS)
        }
        Denied::NotInRosterGroup => {
            StanzaError::not_authorized().application("not-in-roster-group", NS_ERRORS)
        }
        Denied::ClosedNode => StanzaError::not_allowed().application("closed-node", NS_ERRORS),
        Denied::Outcast => StanzaError::forbidden(),
        Denied::NotSubscribed => StanzaError::not_authorized().application("not-subscribed", NS_ERRORS),
    }
}
