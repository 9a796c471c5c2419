//! XEP-0030 service discovery and the XEP-0115 hash of the server's own disco#info, with the
//! XEP-0157 contact addresses form. An account's disco#info lists every namespace the server
//! answers for it (the IQ handlers registered for the account).

use std::sync::Arc;

use base64::Engine;
use minidom::Element;
use sha1::{Digest, Sha1};

use crate::config::ContactConfig;
use crate::error::StanzaError;
use crate::router::registry::{
    Identity, IqHandler, IqRequest, IqResponse, IqResult, IqTarget, IqType, Module, Registry,
};
use crate::xml;

pub const NS_INFO: &str = "http://jabber.org/protocol/disco#info";
pub const NS_ITEMS: &str = "http://jabber.org/protocol/disco#items";
/// The XEP-0115 node naming this software.
pub const CAPS_NODE: &str = "https://github.com/switchboard-xmpp/switchboard";
/// XEP-0157's FORM_TYPE.
pub const NS_SERVERINFO: &str = "urn:xmpp:dataforms:serverinfo";
const NS_DATA: &str = "jabber:x:data";

pub struct Disco;

impl Module for Disco {
    fn name(&self) -> &'static str {
        "disco"
    }

    fn register(self: Arc<Self>, r: &mut Registry) {
        r.feature(NS_INFO);
        r.feature(NS_ITEMS);
        r.identity(Identity {
            category: "server",
            kind: "im",
            name: "switchboard",
        });
        r.iq(
            IqType::Get,
            NS_INFO,
            "query",
            &[IqTarget::Server, IqTarget::OwnAccount],
            info,
        );
        r.iq(
            IqType::Get,
            NS_ITEMS,
            "query",
            &[IqTarget::Server, IqTarget::OwnAccount],
            items,
        );
    }
}

async fn info(req: IqRequest) -> IqResult {
    let node = req.payload().attr("node").map(str::to_owned);
    if let Some(handler) = node_handler(&req, node.as_deref(), false) {
        return handler(req).await;
    }
    let mut query = Element::bare("query", NS_INFO);
    match (req.target, node.as_deref()) {
        (IqTarget::Server, None) => fill_server_info(&mut query, &req.server),
        (IqTarget::Server, Some(n)) if n == format!("{CAPS_NODE}#{}", req.server.caps_ver) => {
            xml::set_attr(&mut query, "node", n);
            fill_server_info(&mut query, &req.server);
        }
        // The account itself (XEP-0030 §3.1 for a bare JID the server answers for): every
        // namespace the server answers at the account, disco#items included.
        (IqTarget::OwnAccount, None) => {
            let registry = &req.server.registry;
            query.append_child(identity_element("account", "registered", None));
            for id in registry.account_identities() {
                let name = (!id.name.is_empty()).then_some(id.name);
                query.append_child(identity_element(id.category, id.kind, name));
            }
            let mut vars = registry.namespaces_for(IqTarget::OwnAccount);
            for var in registry.account_features() {
                vars.insert(var);
            }
            for var in vars {
                query.append_child(feature_element(var));
            }
        }
        _ => return Err(StanzaError::item_not_found()),
    }
    Ok(IqResponse::with(query))
}

async fn items(req: IqRequest) -> IqResult {
    let node = req.payload().attr("node").map(str::to_owned);
    if let Some(handler) = node_handler(&req, node.as_deref(), true) {
        return handler(req).await;
    }
    if node.is_some() {
        return Err(StanzaError::item_not_found());
    }
    let mut query = Element::bare("query", NS_ITEMS);
    if req.target == IqTarget::Server {
        // Components (MUC...) registered with `Registry::service`.
        for (domain, name) in req.server.registry.services(&req.server.config()) {
            let mut item = Element::bare("item", NS_ITEMS);
            xml::set_attr(&mut item, "jid", domain);
            xml::set_attr(&mut item, "name", name);
            query.append_child(item);
        }
    }
    Ok(IqResponse::with(query))
}

/// A module's handler for the requested node (see `Registry::disco_node`).
fn node_handler(req: &IqRequest, node: Option<&str>, items: bool) -> Option<IqHandler> {
    req.server
        .registry
        .disco_node_handler(node?, req.target, items)
        .cloned()
}

fn fill_server_info(query: &mut Element, server: &crate::server::Server) {
    let registry = &server.registry;
    for id in registry.identities() {
        query.append_child(identity_element(id.category, id.kind, Some(id.name)));
    }
    for var in registry.features() {
        query.append_child(feature_element(var));
    }
    // The form the running hash was computed with: `contact` keys change only on a restart.
    if let Some(form) = contact_form(&server.config().contact) {
        query.append_child(form);
    }
}

/// XEP-0157 §2: the addresses configured in `[contact]`, as a serverinfo form; `None` when
/// there are none. Only fields with addresses are listed.
pub fn contact_form(contact: &ContactConfig) -> Option<Element> {
    if contact.is_empty() {
        return None;
    }
    let mut x = Element::bare("x", NS_DATA);
    xml::set_attr(&mut x, "type", "result");
    let mut field = |var: &str, kind: Option<&str>, values: &[String]| {
        let mut f = Element::bare("field", NS_DATA);
        xml::set_attr(&mut f, "var", var);
        if let Some(kind) = kind {
            xml::set_attr(&mut f, "type", kind);
        }
        for v in values {
            f.append_child(xml::text_element("value", NS_DATA, v));
        }
        x.append_child(f);
    };
    field("FORM_TYPE", Some("hidden"), &[NS_SERVERINFO.to_string()]);
    for (var, addresses) in contact.fields() {
        if !addresses.is_empty() {
            field(var, Some("list-multi"), addresses);
        }
    }
    Some(x)
}

fn identity_element(category: &str, kind: &str, name: Option<&str>) -> Element {
    let mut el = Element::bare("identity", NS_INFO);
    xml::set_attr(&mut el, "category", category);
    xml::set_attr(&mut el, "type", kind);
    if let Some(name) = name {
        xml::set_attr(&mut el, "name", name);
    }
    el
}

fn feature_element(var: &str) -> Element {
    let mut el = Element::bare("feature", NS_INFO);
    xml::set_attr(&mut el, "var", var);
    el
}

/// XEP-0115 §5.1 verification string of the server's disco#info, with the contact form
/// (§5.4 step 7).
pub fn caps_ver(registry: &Registry, contact: &ContactConfig) -> String {
    let mut identities: Vec<String> = registry
        .identities()
        .iter()
        .map(|i| format!("{}/{}//{}<", i.category, i.kind, i.name))
        .collect();
    identities.sort();
    let mut features: Vec<&str> = registry.features().collect();
    features.sort();
    let mut s = identities.concat();
    for f in features {
        s.push_str(f);
        s.push('<');
    }
    if contact_form(contact).is_some() {
        s.push_str(NS_SERVERINFO);
        s.push('<');
        // Fields sorted by var, values sorted within each.
        let mut fields: Vec<_> = contact
            .fields()
            .into_iter()
            .filter(|(_, a)| !a.is_empty())
            .collect();
        fields.sort_by_key(|(var, _)| *var);
        for (var, addresses) in fields {
            s.push_str(var);
            s.push('<');
            let mut values: Vec<&String> = addresses.iter().collect();
            values.sort();
            for v in values {
                s.push_str(v);
                s.push('<');
            }
        }
    }
    base64::engine::general_purpose::STANDARD.encode(Sha1::digest(s.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// XEP-0115 §5.2's simple example: identity client/pc//Exodus 0.9.1 and four features.
    #[test]
    fn caps_ver_matches_xep0115_example() {
        struct Example;
        impl Module for Example {
            fn name(&self) -> &'static str {
                "example"
            }
            fn register(self: Arc<Self>, r: &mut Registry) {
                r.identity(Identity {
                    category: "client",
                    kind: "pc",
                    name: "Exodus 0.9.1",
                });
                for f in [
                    "http://jabber.org/protocol/caps",
                    NS_INFO,
                    NS_ITEMS,
                    "http://jabber.org/protocol/muc",
                ] {
                    r.feature(f);
                }
            }
        }
        let registry = Registry::build(vec![Arc::new(Example)]);
        assert_eq!(
            caps_ver(&registry, &ContactConfig::default()),
            "QgayPKawpkPSDYmwT/WM94uAlu0="
        );
    }

    #[test]
    fn contact_form_lists_only_configured_kinds_and_changes_the_hash() {
        let registry = Registry::build(vec![Arc::new(Disco)]);
        let none = ContactConfig::default();
        assert!(contact_form(&none).is_none());
        let contact = ContactConfig {
            abuse: vec!["mailto:abuse@example.org".into()],
            ..ContactConfig::default()
        };
        let form = contact_form(&contact).unwrap();
        let vars: Vec<_> = form.children().filter_map(|f| f.attr("var")).collect();
        assert_eq!(vars, ["FORM_TYPE", "abuse-addresses"]);
        assert_ne!(caps_ver(&registry, &none), caps_ver(&registry, &contact));
    }

    #[test]
    fn module_disco_nodes_are_found_by_node_and_target() {
        struct Nodes;
        impl Module for Nodes {
            fn name(&self) -> &'static str {
                "nodes"
            }
            fn register(self: Arc<Self>, r: &mut Registry) {
                r.disco_node(
                    "urn:example:node",
                    &[IqTarget::OwnAccount],
                    |_| async { Ok(IqResponse::empty()) },
                    |_| async { Err(StanzaError::forbidden()) },
                );
            }
        }
        let registry = Registry::build(vec![Arc::new(Nodes)]);
        for items in [false, true] {
            assert!(
                registry
                    .disco_node_handler("urn:example:node", IqTarget::OwnAccount, items)
                    .is_some()
            );
            assert!(
                registry
                    .disco_node_handler("urn:example:node", IqTarget::Server, items)
                    .is_none()
            );
            assert!(
                registry
                    .disco_node_handler("urn:example:other", IqTarget::OwnAccount, items)
                    .is_none()
            );
        }
    }
}
