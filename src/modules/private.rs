//! XEP-0049 private XML storage: a client keeps arbitrary XML on the server, keyed by the
//! namespace of its root element (bookmarks, roster notes, client preferences...).
//!
//! Only the account itself may read or write it. A set replaces, per namespace, everything
//! stored before with the element(s) of that namespace it carries; other namespaces are kept.
//! Data is stored as the XML received and returned exactly so.

use std::sync::Arc;

use minidom::Element;

use crate::accounts::Account;
use crate::error::StanzaError;
use crate::router::hooks::PrivateStored;
use crate::router::registry::{IqRequest, IqResponse, IqResult, IqTarget, IqType, Module, Registry};
use crate::xml;

pub const NS: &str = "jabber:iq:private";

pub struct Private;

impl Module for Private {
    fn name(&self) -> &'static str {
        "private"
    }

    fn register(self: Arc<Self>, r: &mut Registry) {
        r.feature(NS);
        // Every target, so another user's JID or the server gets `forbidden` (XEP-0049 §3)
        // rather than the router's generic service-unavailable.
        let targets = [IqTarget::OwnAccount, IqTarget::OtherAccount, IqTarget::Server];
        r.iq(IqType::Get, NS, "query", &targets, get);
        r.iq(IqType::Set, NS, "query", &targets, set);
    }
}

/// XEP-0049 §2.3: namespaces reserved in Jabber (`jabber:*`, `http://jabber.org/*`,
/// `vcard-temp`) cannot be used; neither can an element without a namespace. This also
/// catches a child that did not declare one and so inherited `jabber:iq:private`.
fn is_reserved(ns: &str) -> bool {
    ns.is_empty() || ns.starts_with("jabber:") || ns.starts_with("http://jabber.org/") || ns == "vcard-temp"
}

fn reserved_error(ns: &str) -> StanzaError {
    StanzaError::not_acceptable().text(if ns.is_empty() {
        "private XML needs a namespace of its own".to_owned()
    } else {
        format!("the namespace '{ns}' is reserved")
    })
}

/// XEP-0049 §2.3 / §3: private data belongs to the sender alone; a request addressed to any
/// other JID (another user, the server) is refused with the preferred `forbidden`.
fn own_account(req: &IqRequest) -> Result<Account, StanzaError> {
    if req.target != IqTarget::OwnAccount {
        return Err(StanzaError::forbidden().text("private XML can only be accessed by its owner"));
    }
    let user = req.to.node().map(|n| n.as_str()).unwrap_or_default();
    Account::from_parts(user, req.to.domain().as_str(), &req.server.config())
        .map_err(|_| StanzaError::internal_server_error())
}

/// §2.3: at least one child, else `not-acceptable` (the condition of the XEP's example).
fn require_children(query: &Element) -> Result<Vec<&Element>, StanzaError> {
    let children: Vec<&Element> = query.children().collect();
    if children.is_empty() {
        return Err(
            StanzaError::not_acceptable().text("the query must contain an element in the namespace to use")
        );
    }
    Ok(children)
}

async fn get(req: IqRequest) -> IqResult {
    let account = own_account(&req)?;
    let requested = require_children(req.payload())?;
    let ns = requested[0].ns();
    // §2.3: "A client MUST NOT query for more than [one] namespace in a single IQ get".
    if requested.iter().any(|c| c.ns() != ns) {
        return Err(StanzaError::bad_request().text("retrieve one namespace per request"));
    }
    if is_reserved(&ns) {
        return Err(reserved_error(&ns));
    }
    let stored = req
        .server
        .storage
        .get_private(&account.domain, &account.user, &ns)
        .await
        .map_err(|e| {
            tracing::error!(error = %e, jid = %account, "storage error loading private XML");
            StanzaError::internal_server_error()
        })?;
    let mut query = Element::bare("query", NS);
    match stored {
        Some(data) => {
            for el in parse_stored(&data).map_err(|e| {
                tracing::error!(error = %e, jid = %account, %ns, "stored private XML is not valid XML");
                StanzaError::internal_server_error()
            })? {
                query.append_child(el);
            }
        }
        // Nothing stored: the request's element comes back as sent (usually empty).
        None => {
            for el in requested {
                query.append_child(el.clone());
            }
        }
    }
    Ok(IqResponse::with(query))
}

async fn set(req: IqRequest) -> IqResult {
    let account = own_account(&req)?;
    let children = require_children(req.payload())?;
    let max = req.server.config().limits.max_private_size;
    // (namespace, its elements serialized and concatenated), in order of first appearance.
    let mut items: Vec<(String, String)> = Vec::new();
    for child in children {
        let ns = child.ns();
        if is_reserved(&ns) {
            return Err(reserved_error(&ns));
        }
        let text = xml::to_string(child);
        match items.iter_mut().find(|(n, _)| *n == ns) {
            Some((_, data)) => data.push_str(&text),
            None => items.push((ns, text)),
        }
    }
    if let Some((ns, data)) = items.iter().find(|(_, data)| data.len() > max) {
        return Err(StanzaError::not_acceptable().text(format!(
            "the private XML in '{ns}' has {} bytes; the limit is {max}",
            data.len()
        )));
    }
    match req
        .server
        .storage
        .set_private(&account.domain, &account.user, &items)
        .await
    {
        Ok(true) => {
            let hooks = &req.server.registry.hooks.private_stored;
            if !hooks.is_empty() {
                for (namespace, data) in items {
                    let stored = PrivateStored {
                        account: req.to.clone(),
                        namespace,
                        data,
                    };
                    hooks.notify(&req.server, &stored).await;
                }
            }
            Ok(IqResponse::empty())
        }
        // Deleted while this session was still open; its sessions are being closed.
        Ok(false) => Err(StanzaError::item_not_found().text("this account no longer exists")),
        Err(e) => {
            tracing::error!(error = %e, jid = %account, "storage error saving private XML");
            Err(StanzaError::internal_server_error())
        }
    }
}

/// The stored element(s) of one namespace: each was serialized on its own (declaring its
/// namespace), so wrapping them in one root makes a document again.
fn parse_stored(data: &str) -> Result<Vec<Element>, minidom::Error> {
    let wrapped: Element = format!("<query xmlns='{NS}'>{data}</query>").parse()?;
    Ok(wrapped.children().cloned().collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reserved_namespaces() {
        for ns in [
            "",
            "jabber:client",
            "jabber:server",
            "jabber:iq:private",
            "jabber:iq:roster",
            "jabber:x:data",
            "http://jabber.org/protocol/disco#info",
            "vcard-temp",
        ] {
            assert!(is_reserved(ns), "{ns}");
        }
        for ns in [
            "storage:bookmarks",
            "storage:rosternotes",
            "exodus:prefs",
            "gajim:prefs",
            "vcard-temp:x:update",
            "urn:xmpp:bookmarks:1",
            "http://jabber.org.example/x",
        ] {
            assert!(!is_reserved(ns), "{ns}");
        }
    }

    /// Several elements of one namespace are stored concatenated and come back unchanged.
    #[test]
    fn stored_fragments_round_trip() {
        let query: Element = "<query xmlns='jabber:iq:private'>\
            <a xmlns='x:y' k='v'>1 &amp; 2<b/></a><p:c xmlns:p='x:y' xml:lang='en'>t</p:c></query>"
            .parse()
            .unwrap();
        let data: String = query.children().map(xml::to_string).collect();
        let back = parse_stored(&data).unwrap();
        let original: Vec<Element> = query.children().cloned().collect();
        assert_eq!(back, original, "{data}");
    }
}
