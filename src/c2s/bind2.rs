//! XEP-0386 Bind 2 (`urn:xmpp:bind:0`), inline in a SASL2 `<authenticate/>`: the resource
//! is derived from the client's tag and user-agent id, so an installation gets the same
//! resource on every login (and replaces its own stale session), and the features modules
//! registered with [`Registry::bind2_inline`](crate::router::registry::Registry::bind2_inline)
//! are enabled in the same round trip.

use std::sync::Arc;

use jid::FullJid;
use minidom::Element;
use sha2::{Digest, Sha256};

use crate::accounts::Account;
use crate::server::Server;

pub const NS: &str = "urn:xmpp:bind:0";

/// Longest tag kept as the resource's prefix.
const MAX_TAG: usize = 32;

/// The `<bind/>` advertisement inside SASL2's `<inline/>`: every registered inline feature.
pub fn feature(server: &Server) -> Element {
    let mut inline = Element::bare("inline", NS);
    for var in server.registry.bind2_inline_features() {
        let mut f = Element::bare("feature", NS);
        crate::xml::set_attr(&mut f, "var", var);
        inline.append_child(f);
    }
    let mut bind = Element::bare("bind", NS);
    bind.append_child(inline);
    bind
}

/// The resource for a Bind2 request (§4): `<tag>.<8 hex digits>` where the digits hash the
/// account and the user-agent id, so the same installation always gets the same resource
/// while the id itself is not shown to contacts. Without an id, the digits are random.
pub fn resource(bind: &Element, account: &Account, user_agent_id: Option<&str>) -> String {
    let tag = bind
        .get_child("tag", NS)
        .map(|t| sanitize_tag(&t.text()))
        .filter(|t| !t.is_empty())
        .unwrap_or_else(|| "sb".to_string());
    let suffix = match user_agent_id {
        Some(id) => {
            let mut h = Sha256::new();
            h.update(account.to_string().as_bytes());
            h.update([0]);
            h.update(id.as_bytes());
            hex::encode(&h.finalize()[..4])
        }
        None => hex::encode(rand::random::<[u8; 4]>()),
    };
    format!("{tag}.{suffix}")
}

/// Keeps a tag to letters, digits, `-` and `_` (a client's name, not arbitrary text).
fn sanitize_tag(tag: &str) -> String {
    tag.chars()
        .filter(|c| c.is_alphanumeric() || matches!(c, '-' | '_'))
        .take(MAX_TAG)
        .collect()
}

/// Runs the inline requests among `bind`'s children for the session just bound as `jid`,
/// returning what goes into `<bound/>`. Unknown requests are ignored (§5: the client learns
/// from `<bound/>` what was enabled only where a feature answers).
pub fn run_inline(server: &Arc<Server>, jid: &FullJid, bind: &Element) -> Vec<Element> {
    bind.children()
        .filter(|c| c.ns() != NS)
        .filter_map(|request| {
            let handler = server.registry.bind2_inline_handler(&request.ns())?;
            handler(server, jid, request)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn account() -> Account {
        Account {
            user: "alice".into(),
            domain: "localhost".into(),
        }
    }

    #[test]
    fn xep0386_4_resource_is_stable_per_user_agent() {
        let bind: Element = "<bind xmlns='urn:xmpp:bind:0'><tag>Conv ersations!</tag></bind>"
            .parse()
            .unwrap();
        let a = resource(&bind, &account(), Some("id-1"));
        assert_eq!(a, resource(&bind, &account(), Some("id-1")));
        assert!(a.starts_with("Conversations."), "{a}");
        assert_ne!(a, resource(&bind, &account(), Some("id-2")));
        let untagged: Element = "<bind xmlns='urn:xmpp:bind:0'/>".parse().unwrap();
        assert!(resource(&untagged, &account(), None).starts_with("sb."));
        assert_ne!(
            resource(&untagged, &account(), None),
            resource(&untagged, &account(), None)
        );
    }
}
