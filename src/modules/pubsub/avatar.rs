//! XEP-0398: the XEP-0084 PEP avatar and the XEP-0054 vCard PHOTO kept consistent, and the
//! avatar's hash put in the account's presence (XEP-0153 `vcard-temp:x:update`).
//!
//! - metadata published in PEP (with its data item) becomes the vCard's PHOTO (an empty
//!   `<metadata/>` removes it);
//! - a vCard stored with a PHOTO (the vcard module's `vcard_stored` hook) is published as
//!   avatar data and metadata, notified like any publish; without a PHOTO, as an empty
//!   `<metadata/>`;
//! - available presence a client sends without `vcard-temp:x:update` gets one with the hash.

use std::sync::Arc;

use base64::Engine;
use jid::BareJid;
use minidom::Element;
use sha1::{Digest, Sha1};

use super::config::NodeConfig;
use super::events;
use super::node::Node;
use super::pep::{Pep, STORAGE, create_stored, parts};
use crate::error::StanzaError;
use crate::server::Server;
use crate::xml;

pub const NS_DATA: &str = "urn:xmpp:avatar:data";
pub const NS_METADATA: &str = "urn:xmpp:avatar:metadata";
pub const FEATURE_CONVERSION: &str = "urn:xmpp:pep-vcard-conversion:0";
pub const NS_UPDATE: &str = "vcard-temp:x:update";
const NS_VCARD: &str = "vcard-temp";

/// The avatar a vCard's PHOTO holds: (SHA-1 hex of the image, MIME type, base64, bytes).
fn vcard_photo(vcard: &Element) -> Option<(String, String, String, usize)> {
    let photo = vcard.get_child("PHOTO", NS_VCARD)?;
    let b64: String = photo
        .get_child("BINVAL", NS_VCARD)?
        .text()
        .chars()
        .filter(|c| !c.is_whitespace())
        .collect();
    let bytes = base64::engine::general_purpose::STANDARD.decode(&b64).ok()?;
    if bytes.is_empty() {
        return None;
    }
    let kind = photo
        .get_child("TYPE", NS_VCARD)
        .map(|t| t.text())
        .filter(|t| !t.is_empty())
        .unwrap_or_else(|| "image/png".to_owned());
    Some((hex::encode(Sha1::digest(&bytes)), kind, b64, bytes.len()))
}

/// The `<info/>` of the current metadata whose data is stored in PEP (no `url`).
fn current_info(metadata: &Element) -> Option<&Element> {
    metadata
        .children()
        .find(|i| i.is("info", NS_METADATA) && i.attr("url").is_none())
}

/// The vCard with its PHOTO replaced by `photo` (type, base64), or removed.
fn with_photo(vcard: &Element, photo: Option<(&str, &str)>) -> Element {
    let mut out = Element::bare("vCard", NS_VCARD);
    for child in vcard.children().filter(|c| !c.is("PHOTO", NS_VCARD)) {
        out.append_child(child.clone());
    }
    if let Some((kind, b64)) = photo {
        let mut el = Element::bare("PHOTO", NS_VCARD);
        el.append_child(xml::text_element("TYPE", NS_VCARD, kind));
        el.append_child(xml::text_element("BINVAL", NS_VCARD, b64));
        out.append_child(el);
    }
    out
}

impl Pep {
    /// The avatar hash to put in the account's presence (`None`: unknown yet or no avatar).
    pub fn photo_hash(&self, owner: &BareJid) -> Option<String> {
        self.photos
            .get(owner)
            .and_then(|h| (!h.is_empty()).then(|| h.clone()))
    }

    /// Learns the account's current avatar hash (at login, before its first presence).
    pub async fn load_photo_hash(&self, server: &Server, owner: &BareJid) -> Result<(), StanzaError> {
        if self.photos.contains_key(owner) {
            return Ok(());
        }
        let guard = self.lock(server, owner).await?;
        let hash = guard
            .as_ref()
            .and_then(|nodes| nodes.get(NS_METADATA))
            .and_then(Node::last_item)
            .and_then(|m| current_info(&m.payload))
            .and_then(|i| i.attr("id"))
            .unwrap_or("")
            .to_owned();
        self.photos.insert(owner.clone(), hash);
        Ok(())
    }

    /// After the owner published avatar metadata: the vCard's PHOTO follows.
    pub async fn avatar_to_vcard(
        &self,
        server: &Server,
        owner: &BareJid,
        nodes: &super::pep::Nodes,
    ) -> Result<(), StanzaError> {
        let Some(metadata) = nodes.get(NS_METADATA).and_then(Node::last_item) else {
            return Ok(());
        };
        let photo = match current_info(&metadata.payload) {
            None => None,
            Some(info) => {
                let (Some(id), Some(kind)) = (info.attr("id"), info.attr("type")) else {
                    return Ok(());
                };
                let data = nodes
                    .get(NS_DATA)
                    .and_then(|n| n.items.iter().find(|i| i.id == id));
                // Published in the wrong order or elsewhere: nothing to convert.
                let Some(data) = data else { return Ok(()) };
                Some((id.to_owned(), kind.to_owned(), data.payload.text()))
            }
        };
        let (host, user) = parts(owner);
        let stored = server
            .storage
            .get_vcard(host, user)
            .await
            .map_err(StanzaError::storage(STORAGE))?;
        let vcard = stored
            .and_then(|text| text.parse::<Element>().ok())
            .unwrap_or_else(|| Element::bare("vCard", NS_VCARD));
        let updated = with_photo(&vcard, photo.as_ref().map(|(_, k, b)| (k.as_str(), b.as_str())));
        let text = xml::to_string(&updated);
        if text.len() > server.config().limits.max_vcard_size {
            tracing::info!(%owner, "avatar too large for the vCard; PHOTO not updated");
            return Ok(());
        }
        server
            .storage
            .set_vcard(host, user, &text)
            .await
            .map_err(StanzaError::storage(STORAGE))?;
        self.photos
            .insert(owner.clone(), photo.map(|(id, _, _)| id).unwrap_or_default());
        Ok(())
    }

    /// After the owner stored a vCard: the PEP avatar follows its PHOTO.
    pub async fn vcard_to_avatar(
        &self,
        server: &Arc<Server>,
        owner: &BareJid,
        vcard: &Element,
    ) -> Result<(), StanzaError> {
        let photo = vcard_photo(vcard);
        let roster = self
            .rosters
            .get(server, owner)
            .await
            .map_err(StanzaError::storage(STORAGE))?;
        let mut guard = self.lock(server, owner).await?;
        let nodes = guard.as_mut().expect("loaded by lock");
        let current = nodes.get(NS_METADATA).and_then(Node::last_item).and_then(|m| {
            current_info(&m.payload)
                .and_then(|i| i.attr("id"))
                .map(str::to_owned)
        });
        if current.as_deref() == photo.as_ref().map(|p| p.0.as_str()) {
            return Ok(());
        }
        let mut metadata = Element::bare("metadata", NS_METADATA);
        let id = match &photo {
            Some((id, kind, b64, bytes)) => {
                let data = xml::text_element("data", NS_DATA, b64);
                self.publish_internal(server, owner, &roster, nodes, NS_DATA, id, data)
                    .await?;
                let mut info = Element::bare("info", NS_METADATA);
                xml::set_attr(&mut info, "id", id);
                xml::set_attr(&mut info, "type", kind);
                xml::set_attr(&mut info, "bytes", &bytes.to_string());
                metadata.append_child(info);
                id.clone()
            }
            // No PHOTO any more: XEP-0084 §4.5 "disabling" metadata.
            None if current.is_some() => "none".to_owned(),
            None => return Ok(()),
        };
        self.publish_internal(server, owner, &roster, nodes, NS_METADATA, &id, metadata)
            .await?;
        self.photos
            .insert(owner.clone(), photo.map(|p| p.0).unwrap_or_default());
        Ok(())
    }

    /// Publishes on the owner's behalf (creating the node with the defaults), stored and
    /// notified like a publish of the owner's.
    #[allow(clippy::too_many_arguments)]
    async fn publish_internal(
        &self,
        server: &Arc<Server>,
        owner: &BareJid,
        roster: &super::rosters::RosterView,
        nodes: &mut super::pep::Nodes,
        node_name: &str,
        id: &str,
        payload: Element,
    ) -> Result<(), StanzaError> {
        if !nodes.contains_key(node_name) {
            let config = NodeConfig::default();
            create_stored(server, owner, node_name, &config).await?;
            nodes.insert(node_name.to_owned(), Node::new(config));
        }
        let node = nodes.get_mut(node_name).expect("present or created above");
        let (item, evicted) = node.publish(id.to_owned(), owner.to_string(), payload);
        let (host, user) = parts(owner);
        if node.config.persist_items {
            server
                .storage
                .pep_publish(host, user, node_name, &item.to_stored(), &evicted)
                .await
                .map_err(StanzaError::storage(STORAGE))?;
        }
        let event = events::items_event(node_name, &item, node.config.deliver_payloads);
        self.notify(server, owner, roster, node_name, node, event);
        Ok(())
    }
}

/// Adds `<x xmlns='vcard-temp:x:update'><photo>hash</photo></x>` to a presence.
pub fn add_photo_hash(presence: &mut Element, hash: &str) {
    let mut x = Element::bare("x", NS_UPDATE);
    x.append_child(xml::text_element("photo", NS_UPDATE, hash));
    presence.append_child(x);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn photo_from_vcard_and_back() {
        let vcard: Element = "<vCard xmlns='vcard-temp'><FN>A</FN><PHOTO><TYPE>image/png</TYPE>\
            <BINVAL>aGVs\n bG8=</BINVAL></PHOTO></vCard>"
            .parse()
            .unwrap();
        let (id, kind, b64, bytes) = vcard_photo(&vcard).unwrap();
        assert_eq!(id, hex::encode(Sha1::digest(b"hello")));
        assert_eq!((kind.as_str(), b64.as_str(), bytes), ("image/png", "aGVsbG8=", 5));
        let without = with_photo(&vcard, None);
        assert!(without.get_child("PHOTO", NS_VCARD).is_none());
        assert_eq!(without.get_child("FN", NS_VCARD).unwrap().text(), "A");
        let again = with_photo(&without, Some(("image/jpeg", "eA==")));
        let photo = again.get_child("PHOTO", NS_VCARD).unwrap();
        assert_eq!(photo.get_child("TYPE", NS_VCARD).unwrap().text(), "image/jpeg");
        let bad: Element = "<vCard xmlns='vcard-temp'><PHOTO><BINVAL>!!</BINVAL></PHOTO></vCard>"
            .parse()
            .unwrap();
        assert!(vcard_photo(&bad).is_none());
    }
}
