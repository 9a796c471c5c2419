//! XEP-0054 vcard-temp: each account's vCard, kept as the XML its owner sent and returned
//! exactly so (never rebuilt from parsed fields, so no element a client relies on is lost).
//!
//! XEP-0153 vCard-based avatars need nothing more from the server: the avatar lives in the
//! vCard's PHOTO, and the `vcard-temp:x:update` hash clients put in presence is forwarded
//! untouched by the router like any other presence child.

use std::sync::Arc;

use jid::BareJid;
use minidom::Element;

use crate::accounts::Account;
use crate::error::StanzaError;
use crate::router::hooks::VCardStored;
use crate::router::registry::{IqRequest, IqResponse, IqResult, IqTarget, IqType, Module, Registry};
use crate::server::Server;
use crate::xml;

pub const NS: &str = "vcard-temp";

pub struct VCard;

impl Module for VCard {
    fn name(&self) -> &'static str {
        "vcard"
    }

    fn register(self: Arc<Self>, r: &mut Registry) {
        // XEP-0054 §4: advertised on the server.
        r.feature(NS);
        let targets = [IqTarget::OwnAccount, IqTarget::OtherAccount, IqTarget::Server];
        r.iq(IqType::Get, NS, "vCard", &targets, get);
        r.iq(IqType::Set, NS, "vCard", &targets, set);
    }
}

async fn get(req: IqRequest) -> IqResult {
    match req.target {
        // §3.1: when none was ever set, an empty <vCard/> (one of the two answers allowed).
        IqTarget::OwnAccount => {
            let stored = load(&req.server, &req.to).await?;
            Ok(IqResponse::with(
                stored.unwrap_or_else(|| Element::bare("vCard", NS)),
            ))
        }
        // §3.3: the server answers for the user. No vCard and no such user get the same
        // service-unavailable (the XEP's example), so the answer does not reveal which
        // accounts exist (RFC 6121 §8.5.1).
        IqTarget::OtherAccount => match load(&req.server, &req.to).await? {
            Some(vcard) => Ok(IqResponse::with(vcard)),
            None => Err(StanzaError::service_unavailable()),
        },
        // §3.3 notes a server may have a vCard of its own; this one has none to give.
        IqTarget::Server => Err(StanzaError::item_not_found()),
    }
}

async fn set(req: IqRequest) -> IqResult {
    // §3.2: a 'to' other than the sender's own bare JID (another user, the server).
    if req.target != IqTarget::OwnAccount {
        return Err(StanzaError::forbidden().text("you can only change your own vCard"));
    }
    let server = &req.server;
    // The element exactly as received, child order, whitespace and unknown elements included.
    let vcard = xml::to_string(req.payload());
    let max = server.config().limits.max_vcard_size;
    if vcard.len() > max {
        return Err(StanzaError::not_acceptable().text(format!(
            "the vCard has {} bytes; the limit is {max} (use a smaller photo)",
            vcard.len()
        )));
    }
    let account = account_of(server, &req.to)?;
    match server
        .storage
        .set_vcard(&account.domain, &account.user, &vcard)
        .await
    {
        Ok(true) => {
            let hooks = &server.registry.hooks.vcard_stored;
            if !hooks.is_empty() {
                let stored = VCardStored {
                    account: req.to.clone(),
                    vcard: req.payload().clone(),
                };
                hooks.notify(server, &stored).await;
            }
            Ok(IqResponse::empty())
        }
        // Deleted while this session was still open; its sessions are being closed.
        Ok(false) => Err(StanzaError::item_not_found().text("this account no longer exists")),
        Err(e) => {
            tracing::error!(error = %e, jid = %account, "storage error saving a vCard");
            Err(StanzaError::internal_server_error())
        }
    }
}

/// The stored vCard of `jid`, parsed back into an element.
async fn load(server: &Arc<Server>, jid: &BareJid) -> Result<Option<Element>, StanzaError> {
    let account = account_of(server, jid)?;
    let stored = server
        .storage
        .get_vcard(&account.domain, &account.user)
        .await
        .map_err(|e| {
            tracing::error!(error = %e, jid = %account, "storage error loading a vCard");
            StanzaError::internal_server_error()
        })?;
    let Some(text) = stored else {
        return Ok(None);
    };
    match text.parse::<Element>() {
        Ok(vcard) => Ok(Some(vcard)),
        Err(e) => {
            tracing::error!(error = %e, jid = %account, "stored vCard is not valid XML");
            Err(StanzaError::internal_server_error())
        }
    }
}

/// The storage key of a local bare JID (the router only hands us hosted domains).
fn account_of(server: &Server, jid: &BareJid) -> Result<Account, StanzaError> {
    let user = jid.node().map(|n| n.as_str()).unwrap_or_default();
    Account::from_parts(user, jid.domain().as_str(), &server.config())
        .map_err(|_| StanzaError::service_unavailable())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What `set` stores parses back to the very element received, namespaces included.
    #[test]
    fn serialization_round_trips() {
        let iq: Element = "<iq xmlns='jabber:client' type='set' id='1'>\
            <vCard xmlns='vcard-temp' version='3.0'>\n  <FN xml:lang='fr'>Ann &amp; &lt;Bo&gt; “Ω”</FN>\n  \
            <N><FAMILY>X</FAMILY><GIVEN/></N>\
            <ext:X-FOO xmlns:ext='urn:example:ext' ext:a='1' b='2'><ext:BAR/>tail</ext:X-FOO>\
            <PHOTO><TYPE>image/png</TYPE><BINVAL>iVBORw0KGgo=</BINVAL></PHOTO>\n</vCard></iq>"
            .parse()
            .unwrap();
        let vcard = iq.children().next().unwrap();
        let text = xml::to_string(vcard);
        let back: Element = text.parse().unwrap();
        assert_eq!(&back, vcard, "{text}");
        assert_eq!(xml::to_string(&back), text);
        assert!(text.starts_with("<vCard xmlns='vcard-temp'"), "{text}");
    }
}
