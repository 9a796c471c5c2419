//! XEP-0030 service discovery and the XEP-0115 hash of the server's own disco#info, with the
//! XEP-0157 contact addresses form. An account's disco#info lists every namespace the server
//! answers for it (the IQ handlers registered for the account).

use std::sync::Arc;

use base64::Engine;
use sha1::{Digest, Sha1};

use crate::config::ContactConfig;
use crate::error::StanzaError;
use crate::router::registry::{
    Identity, IqHandler, IqRequest, IqResponse, IqResult, IqTarget, IqType, Module, Registry,
};
use jid::Jid;
use xmpp_parsers::data_forms::{DataForm, DataFormType, Field, FieldType};
use xmpp_parsers::disco::{self, DiscoInfoResult, DiscoItemsResult};

pub const NS_INFO: &str = "http://jabber.org/protocol/disco#info";
pub const NS_ITEMS: &str = "http://jabber.org/protocol/disco#items";
/// The XEP-0115 node naming this software.
pub const CAPS_NODE: &str = "https://github.com/switchboard-xmpp/switchboard";
/// XEP-0157's FORM_TYPE.
pub const NS_SERVERINFO: &str = "urn:xmpp:dataforms:serverinfo";

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
            &[IqTarget::Server, IqTarget::OwnAccount, IqTarget::OtherAccount],
            items,
        );
    }
}

async fn info(req: IqRequest) -> IqResult {
    let node = req.payload().attr("node").map(str::to_owned);
    if let Some(handler) = node_handler(&req, node.as_deref(), false) {
        return handler(req).await;
    }
    let info = match (req.target, node) {
        (IqTarget::Server, None) => server_info(&req.server, None),
        (IqTarget::Server, Some(n)) if n == format!("{CAPS_NODE}#{}", req.server.caps_ver) => {
            server_info(&req.server, Some(n))
        }
        // The account itself (XEP-0030 §3.1 for a bare JID the server answers for): every
        // namespace the server answers at the account, disco#items included.
        (IqTarget::OwnAccount, None) => {
            let registry = &req.server.registry;
            let mut identities = vec![identity("account", "registered", None)];
            for id in registry.account_identities() {
                let name = (!id.name.is_empty()).then_some(id.name);
                identities.push(identity(id.category, id.kind, name));
            }
            let mut features: std::collections::BTreeSet<String> = registry
                .namespaces_for(IqTarget::OwnAccount)
                .into_iter()
                .map(str::to_owned)
                .collect();
            features.extend(registry.account_features().map(str::to_owned));
            DiscoInfoResult {
                node: None,
                identities,
                features: features.into_iter().collect(),
                extensions: Vec::new(),
            }
        }
        _ => return Err(StanzaError::item_not_found()),
    };
    Ok(IqResponse::with(info.into()))
}

async fn items(req: IqRequest) -> IqResult {
    let node = req.payload().attr("node").map(str::to_owned);
    if let Some(handler) = node_handler(&req, node.as_deref(), true) {
        return handler(req).await;
    }
    if node.is_some() {
        return Err(StanzaError::item_not_found());
    }
    let mut result = DiscoItemsResult {
        node: None,
        items: Vec::new(),
        rsm: None,
    };
    if req.target != IqTarget::Server {
        // An account's items: what the modules list for this requester (PEP nodes).
        let lists = req.server.registry.account_item_lists().to_vec();
        for list in lists {
            result.items.extend(list(&req).await);
        }
    }
    if req.target == IqTarget::Server {
        // Components (MUC...) registered with `Registry::service`.
        for (domain, name) in req.server.registry.services(&req.server.config()) {
            let Ok(jid) = Jid::new(domain) else {
                tracing::warn!(domain, "a service domain is not a JID");
                continue;
            };
            result.items.push(disco::Item {
                jid,
                node: None,
                name: Some(name.to_owned()),
            });
        }
    }
    Ok(IqResponse::with(result.into()))
}

/// A module's handler for the requested node (see `Registry::disco_node`).
fn node_handler(req: &IqRequest, node: Option<&str>, items: bool) -> Option<IqHandler> {
    req.server
        .registry
        .disco_node_handler(node?, req.target, items)
        .cloned()
}

/// The server's disco#info: identities and features the modules registered, and the contact
/// form (the one the running hash was computed with: `contact` keys change only on a restart).
fn server_info(server: &crate::server::Server, node: Option<String>) -> DiscoInfoResult {
    let registry = &server.registry;
    DiscoInfoResult {
        node,
        identities: registry
            .identities()
            .iter()
            .map(|id| identity(id.category, id.kind, Some(id.name)))
            .collect(),
        features: registry.features().map(str::to_owned).collect(),
        extensions: contact_form(&server.config().contact).into_iter().collect(),
    }
}

fn identity(category: &str, kind: &str, name: Option<&str>) -> disco::Identity {
    disco::Identity {
        category: category.to_owned(),
        type_: kind.to_owned(),
        lang: None,
        name: name.map(str::to_owned),
    }
}

/// XEP-0157 §2: the addresses configured in `[contact]`, as a serverinfo form; `None` when
/// there are none. Only fields with addresses are listed.
pub fn contact_form(contact: &ContactConfig) -> Option<DataForm> {
    if contact.is_empty() {
        return None;
    }
    let fields = contact
        .fields()
        .into_iter()
        .filter(|(_, addresses)| !addresses.is_empty())
        .map(|(var, addresses)| Field {
            values: addresses.to_vec(),
            ..Field::new(var, FieldType::ListMulti)
        })
        .collect();
    Some(DataForm::new(DataFormType::Result_, NS_SERVERINFO, fields))
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
    use minidom::Element;

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
        let form = Element::from(contact_form(&contact).unwrap());
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
