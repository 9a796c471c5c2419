//! XEP-0065 SOCKS5 bytestreams proxy at `[proxy65] domain` (by default `proxy.<first
//! domain>`), listed in the server's disco#items.
//!
//! - this file: the module and what is addressed to the service domain: disco, the
//!   streamhost query (§6.3.1) and activation (§6.3.2).
//! - `socks5`: the SOCKS5 handshake (RFC 1928, as XEP-0065 §5.3 restricts it).
//! - `relay`: connections waiting for their peer and activation (closed after
//!   `activation_timeout_secs`), and the relay of an activated pair, with a size cap and a
//!   rate limit per transfer.

pub mod relay;
pub mod socks5;

use std::sync::Arc;

use jid::{FullJid, Jid};
use minidom::Element;
use tokio::sync::watch;
use xmpp_parsers::disco::{DiscoInfoResult, DiscoItemsResult, Identity};

use crate::error::StanzaError;
use crate::modules::disco::{NS_INFO, NS_ITEMS};
use crate::router::registry::{Module, Registry};
use crate::server::Server;
use crate::{router, xml};

pub const NS: &str = "http://jabber.org/protocol/bytestreams";

/// The proxy module: registers the service domain; `listen` starts the SOCKS5 side.
#[derive(Default)]
pub struct Proxy65 {
    relay: Arc<relay::Relay>,
}

impl Module for Proxy65 {
    fn name(&self) -> &'static str {
        "proxy65"
    }

    fn register(self: Arc<Self>, r: &mut Registry) {
        r.provide(self.relay.clone());
        let me = self.clone();
        r.service(
            "SOCKS5 Bytestreams Proxy",
            |config| config.proxy65.service_domain(&config.domains),
            move |server, from, stanza| {
                let relay = me.relay.clone();
                async move { handle(&relay, &server, from, stanza) }
            },
        );
    }
}

/// Binds the SOCKS5 listener when the service is on, and serves it until `stop`.
pub async fn listen(
    server: &Arc<Server>,
    stop: watch::Receiver<bool>,
) -> Option<tokio::task::JoinHandle<()>> {
    let relay = server.registry.provided::<relay::Relay>()?;
    let config = server.config().proxy65.clone();
    if !config.enabled {
        return None;
    }
    match tokio::net::TcpListener::bind(config.address).await {
        Ok(listener) => {
            let local = listener.local_addr().ok()?;
            tracing::info!(kind = "proxy65", address = %local, "listening");
            let host = config.host.clone().unwrap_or_else(|| local.ip().to_string());
            relay.set_streamhost(host, local.port());
            Some(tokio::spawn(relay::accept(relay, server.clone(), listener, stop)))
        }
        Err(e) => {
            tracing::error!(error = %e, address = %config.address, "proxy65: cannot bind the SOCKS5 listener");
            None
        }
    }
}

fn handle(relay: &relay::Relay, server: &Arc<Server>, from: FullJid, stanza: Element) {
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
    let to = match stanza.attr("to").map(Jid::new) {
        Some(Ok(to)) if to.node().is_none() && to.resource().is_none() => to,
        _ => return router::bounce(server, &stanza, StanzaError::service_unavailable()),
    };
    let Some(payload) = stanza.children().next() else {
        return router::bounce(server, &stanza, StanzaError::bad_request());
    };
    let answer = match kind {
        "get" if payload.is("query", NS_INFO) && payload.attr("node").is_none() => Ok(Some(info())),
        "get" if payload.is("query", NS_ITEMS) && payload.attr("node").is_none() => Ok(Some(
            DiscoItemsResult {
                node: None,
                items: Vec::new(),
                rsm: None,
            }
            .into(),
        )),
        "get" if payload.is("query", NS) => streamhost(relay, to.as_str()).map(Some),
        "set" if payload.is("query", NS) => activate(relay, server, &from, payload).map(|()| None),
        _ => Err(StanzaError::service_unavailable()),
    };
    match answer {
        Ok(payload) => {
            let mut r = xml::iq_result(&stanza, payload);
            xml::set_attr(&mut r, "from", to.as_str());
            xml::set_attr(&mut r, "to", &from.to_string());
            router::deliver_to_full(server, &from, r);
        }
        Err(e) => router::bounce(server, &stanza, e),
    }
}

fn info() -> Element {
    DiscoInfoResult {
        node: None,
        identities: vec![Identity {
            category: "proxy".into(),
            type_: "bytestreams".into(),
            lang: None,
            name: Some("SOCKS5 Bytestreams Proxy".into()),
        }],
        features: [NS_INFO, NS_ITEMS, NS].iter().map(|f| f.to_string()).collect(),
        extensions: Vec::new(),
    }
    .into()
}

/// §6.3.1: where to connect. Built by hand: xmpp-parsers 0.23 has no XEP-0065 types.
fn streamhost(relay: &relay::Relay, domain: &str) -> Result<Element, StanzaError> {
    let (host, port) = relay.streamhost().ok_or_else(StanzaError::service_unavailable)?;
    let mut sh = Element::bare("streamhost", NS);
    xml::set_attr(&mut sh, "jid", domain);
    xml::set_attr(&mut sh, "host", &host);
    xml::set_attr(&mut sh, "port", &port.to_string());
    let mut query = Element::bare("query", NS);
    query.append_child(sh);
    Ok(query)
}

/// §6.3.2: the initiator (the sender of this IQ) activates the pair of connections whose
/// address is SHA-1(sid, initiator, target).
fn activate(
    relay: &relay::Relay,
    server: &Arc<Server>,
    from: &FullJid,
    query: &Element,
) -> Result<(), StanzaError> {
    let sid = query
        .attr("sid")
        .filter(|s| !s.is_empty())
        .ok_or_else(|| StanzaError::bad_request().text("a sid is required"))?;
    let target = query
        .get_child("activate", NS)
        .map(|a| a.text())
        .ok_or_else(|| StanzaError::bad_request().text("name the target in <activate/>"))?;
    let target = Jid::new(target.trim()).map_err(|_| StanzaError::jid_malformed())?;
    let address = socks5::destination(sid, from.as_str(), target.as_str());
    relay.activate(server, &address)
}
