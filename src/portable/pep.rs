//! XEP-0227 §4.7: an account's PEP nodes in the portable format, as Prosody writes them:
//! `<pubsub xmlns='…#owner'>` with one `<configure node/>` form (and the owner's
//! `<affiliations node/>`) per node, and `<pubsub xmlns='…pubsub'>` with `<items node/>`.

use std::collections::BTreeMap;

use minidom::Element;
use xmpp_parsers::data_forms::{DataForm, DataFormType};

use crate::modules::pubsub::config::{NS_NODE_CONFIG, NodeConfig};
use crate::modules::pubsub::{NS_PUBSUB, NS_PUBSUB_OWNER};
use crate::storage::pep::{StoredPepItem, StoredPepNode};
use crate::xml;

/// The two `<pubsub/>` elements for `nodes` (none when there are no nodes).
pub fn export(nodes: &[StoredPepNode]) -> Vec<Element> {
    if nodes.is_empty() {
        return Vec::new();
    }
    let mut owner = Element::bare("pubsub", NS_PUBSUB_OWNER);
    let mut items = Element::bare("pubsub", NS_PUBSUB);
    for n in nodes {
        let mut form: DataForm = NodeConfig::from_text(&n.config).to_form();
        form.type_ = DataFormType::Submit;
        let mut configure = Element::bare("configure", NS_PUBSUB_OWNER);
        xml::set_attr(&mut configure, "node", &n.node);
        configure.append_child(form.into());
        owner.append_child(configure);
        if !n.affiliations.is_empty() {
            let mut affs = Element::bare("affiliations", NS_PUBSUB_OWNER);
            xml::set_attr(&mut affs, "node", &n.node);
            for (jid, affiliation) in &n.affiliations {
                let mut a = Element::bare("affiliation", NS_PUBSUB_OWNER);
                xml::set_attr(&mut a, "jid", jid);
                xml::set_attr(&mut a, "affiliation", affiliation);
                affs.append_child(a);
            }
            owner.append_child(affs);
        }
        let mut list = Element::bare("items", NS_PUBSUB);
        xml::set_attr(&mut list, "node", &n.node);
        for i in &n.items {
            let mut item = Element::bare("item", NS_PUBSUB);
            xml::set_attr(&mut item, "id", &i.id);
            xml::set_attr(&mut item, "publisher", &i.publisher);
            match i.payload.parse::<Element>() {
                Ok(payload) => item.append_child(payload),
                Err(e) => {
                    tracing::warn!(node = %n.node, item = %i.id, error = %e, "stored PEP item is not valid XML; not exported");
                    continue;
                }
            };
            list.append_child(item);
        }
        items.append_child(list);
    }
    vec![owner, items]
}

/// Collects nodes from the `<pubsub/>` children of a `<user/>`, in any order. `owner` is
/// the account's bare JID (the publisher of items that name none). Unknown or refused parts
/// are described in `ignored`.
#[derive(Default)]
pub struct Collector {
    nodes: BTreeMap<String, StoredPepNode>,
}

impl Collector {
    fn node(&mut self, name: &str) -> &mut StoredPepNode {
        self.nodes
            .entry(name.to_owned())
            .or_insert_with(|| StoredPepNode {
                node: name.to_owned(),
                config: NodeConfig::default().to_text(),
                items: Vec::new(),
                affiliations: Vec::new(),
            })
    }

    pub fn add(&mut self, el: &Element, owner: &str, ignored: &mut Vec<String>) {
        for child in el.children() {
            let Some(name) = child.attr("node") else {
                ignored.push(format!("<{}/> without a node in a PEP export", child.name()));
                continue;
            };
            match (el.ns().as_str(), child.name()) {
                (NS_PUBSUB_OWNER, "configure") => {
                    let mut config = NodeConfig::default();
                    let form = child
                        .get_child("x", "jabber:x:data")
                        .and_then(|x| DataForm::try_from(x.clone()).ok());
                    if let Some(form) = form
                        && let Err(e) = config.apply_form(&form, NS_NODE_CONFIG)
                    {
                        ignored.push(format!("the configuration of PEP node '{name}': {}", e.0));
                        config = NodeConfig::default();
                    }
                    self.node(name).config = config.to_text();
                }
                (NS_PUBSUB_OWNER, "affiliations") => {
                    let mut affs: Vec<(String, String)> = child
                        .children()
                        .filter_map(|a| {
                            let jid = a.attr("jid")?;
                            let aff = a.attr("affiliation")?;
                            matches!(aff, "member" | "outcast" | "publisher")
                                .then(|| (jid.to_owned(), aff.to_owned()))
                        })
                        .collect();
                    affs.sort();
                    self.node(name).affiliations = affs;
                }
                (NS_PUBSUB, "items") => {
                    let node = self.node(name);
                    for item in child.children().filter(|i| i.is("item", NS_PUBSUB)) {
                        let (Some(id), Some(payload)) = (item.attr("id"), item.children().next()) else {
                            ignored.push(format!("an item without id or payload in PEP node '{name}'"));
                            continue;
                        };
                        node.items.retain(|i| i.id != id);
                        node.items.push(StoredPepItem {
                            id: id.to_owned(),
                            publisher: item.attr("publisher").unwrap_or(owner).to_owned(),
                            payload: xml::to_string(payload),
                            seq: 0,
                        });
                    }
                }
                _ => ignored.push(format!("<{}/> in '{}'", child.name(), el.ns())),
            }
        }
    }

    /// The nodes, sorted by name, items numbered in file order.
    pub fn finish(self) -> Vec<StoredPepNode> {
        self.nodes
            .into_values()
            .map(|mut n| {
                for (seq, item) in (1..).zip(n.items.iter_mut()) {
                    item.seq = seq;
                }
                n
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nodes_round_trip_through_the_format() {
        let config = NodeConfig {
            access_model: crate::modules::pubsub::config::AccessModel::Open,
            ..NodeConfig::default()
        };
        let nodes = vec![StoredPepNode {
            node: "urn:xmpp:omemo:2:devices".into(),
            config: config.to_text(),
            items: vec![
                StoredPepItem {
                    id: "current".into(),
                    publisher: "a@x".into(),
                    payload: "<devices xmlns='urn:xmpp:omemo:2'><device id='1'/></devices>".into(),
                    seq: 1,
                },
                StoredPepItem {
                    id: "other".into(),
                    publisher: "a@x".into(),
                    payload: "<x xmlns='urn:x'>t &amp; u</x>".into(),
                    seq: 2,
                },
            ],
            affiliations: vec![("b@x".into(), "member".into())],
        }];
        let mut collector = Collector::default();
        let mut ignored = Vec::new();
        // Items first: the order in the file does not matter.
        for el in export(&nodes).iter().rev() {
            let reparsed: Element = xml::to_string(el).parse().unwrap();
            collector.add(&reparsed, "a@x", &mut ignored);
        }
        assert!(ignored.is_empty(), "{ignored:?}");
        let back = collector.finish();
        assert_eq!(back.len(), 1);
        assert_eq!(NodeConfig::from_text(&back[0].config), config);
        assert_eq!(back[0].affiliations, nodes[0].affiliations);
        let payloads: Vec<Element> = back[0].items.iter().map(|i| i.payload.parse().unwrap()).collect();
        let expected: Vec<Element> = nodes[0]
            .items
            .iter()
            .map(|i| i.payload.parse().unwrap())
            .collect();
        assert_eq!(payloads, expected);
        assert_eq!(back[0].items[1].seq, 2);
    }
}
