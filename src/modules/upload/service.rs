//! Stanzas addressed to the upload domain: disco (XEP-0363 §3) and slot requests (§4).

use std::sync::Arc;

use jid::{FullJid, Jid};
use minidom::Element;
use xmpp_parsers::data_forms::{DataForm, DataFormType, Field};
use xmpp_parsers::disco::{DiscoInfoResult, DiscoItemsResult, Identity};
use xmpp_parsers::http_upload::SlotRequest;

use super::NS;
use super::slots::Uploads;
use crate::error::StanzaError;
use crate::modules::disco::{NS_INFO, NS_ITEMS};
use crate::router;
use crate::server::Server;
use crate::xml;

/// Everything addressed to the upload domain or one of its JIDs.
pub async fn handle(uploads: &Arc<Uploads>, server: &Arc<Server>, from: FullJid, stanza: Element) {
    if stanza.name() != "iq" {
        if stanza.name() == "message" && stanza.attr("type") != Some("error") {
            router::bounce(server, &stanza, StanzaError::service_unavailable());
        }
        return;
    }
    let kind = stanza.attr("type").unwrap_or("");
    if kind != "get" && kind != "set" {
        return;
    }
    // Only the domain itself answers; it has no users or resources.
    let to_domain = match stanza.attr("to").map(Jid::new) {
        Some(Ok(to)) => to.node().is_none() && to.resource().is_none(),
        _ => false,
    };
    let Some(payload) = stanza.children().next().filter(|_| to_domain && kind == "get") else {
        return router::bounce(server, &stanza, StanzaError::service_unavailable());
    };
    let answer = if payload.is("query", NS_INFO) && payload.attr("node").is_none() {
        Ok(info(server))
    } else if payload.is("query", NS_ITEMS) && payload.attr("node").is_none() {
        Ok(DiscoItemsResult {
            node: None,
            items: Vec::new(),
            rsm: None,
        }
        .into())
    } else if payload.is("request", NS) {
        slot(uploads, server, &from, payload.clone()).await
    } else {
        Err(StanzaError::service_unavailable())
    };
    reply(server, &from, &stanza, answer);
}

/// §4: a slot for a local user.
async fn slot(
    uploads: &Uploads,
    server: &Server,
    from: &FullJid,
    payload: Element,
) -> Result<Element, StanzaError> {
    if server.hosted_domain(from.domain().as_str()).is_none() {
        return Err(StanzaError::forbidden());
    }
    // xmpp-parsers 0.23 requires `content-type`, which §4 makes optional: fill it in for the
    // parser and clear it again.
    let typed = payload.attr("content-type").is_some();
    let mut payload = payload;
    if !typed {
        xml::set_attr(&mut payload, "content-type", "application/octet-stream");
    }
    let mut request = SlotRequest::try_from(payload)
        .map_err(|_| StanzaError::bad_request().text("a request needs a filename and a size"))?;
    if !typed {
        request.content_type = None;
    }
    let result = uploads.request(server, &from.to_bare(), request).await?;
    Ok(result.into())
}

/// §3: the store/file identity, the namespace, and the max-file-size form.
fn info(server: &Server) -> Element {
    let max = server.config().upload.max_file_size;
    DiscoInfoResult {
        node: None,
        identities: vec![Identity {
            category: "store".into(),
            type_: "file".into(),
            lang: None,
            name: Some("HTTP File Upload".into()),
        }],
        features: [NS_INFO, NS_ITEMS, NS].iter().map(|f| f.to_string()).collect(),
        extensions: vec![DataForm::new(
            DataFormType::Result_,
            NS,
            vec![Field::text_single("max-file-size", &max.to_string())],
        )],
    }
    .into()
}

fn reply(server: &Arc<Server>, to: &FullJid, iq: &Element, answer: Result<Element, StanzaError>) {
    match answer {
        Ok(payload) => {
            let mut r = xml::iq_result(iq, Some(payload));
            if let Some(from) = iq.attr("to") {
                xml::set_attr(&mut r, "from", from);
            }
            xml::set_attr(&mut r, "to", &to.to_string());
            router::deliver_to_full(server, to, r);
        }
        Err(e) => router::bounce(server, iq, e),
    }
}
