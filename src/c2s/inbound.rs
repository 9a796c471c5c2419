//! What the session does with one stanza the client sent: RFC 6120 §8 checks, the `from`
//! stamp, flood limits and the session's own availability, then the router.

use std::sync::Arc;

use minidom::Element;

use crate::c2s::pace::Pacer;
use crate::error::{StanzaError, StreamError, StreamErrorCondition};
use crate::router;
use crate::server::Server;
use crate::session::SessionEntry;
use crate::xml::{self, ns};

/// Validates and stamps one stanza from the client, then routes it. An `Err` closes the stream.
pub async fn handle_stanza(
    server: &Arc<Server>,
    entry: &SessionEntry,
    jid_text: &str,
    pacer: &mut Pacer,
    mut el: Element,
) -> Result<(), StreamError> {
    let jid = &entry.jid;
    let name = el.name();
    if !matches!(name, "message" | "presence" | "iq") {
        return Err(StreamError::with_text(
            StreamErrorCondition::UnsupportedStanzaType,
            format!("<{name}/> is not supported here"),
        ));
    }
    if !el.has_ns(ns::CLIENT) {
        return Err(StreamError::new(StreamErrorCondition::InvalidNamespace));
    }
    // RFC 6120 §8.1.2.1: a 'from' must be the client's own full or bare JID.
    if let Some(from) = el.attr("from") {
        let ok = jid::Jid::new(from).is_ok_and(|f| match f.try_as_full() {
            Ok(full) => full == jid,
            Err(bare) => *bare == jid.to_bare(),
        });
        if !ok {
            return Err(StreamError::with_text(
                StreamErrorCondition::InvalidFrom,
                "the from address is not yours",
            ));
        }
    }
    xml::set_attr(&mut el, "from", jid_text);
    // Looked up once: attribute lookups are a visible cost on the hot path.
    let stanza_type = xml::stanza_type(&el);
    if let Err(error) = validate(&el, stanza_type) {
        router::bounce(server, &el, error);
        return Ok(());
    }
    if let Some(error) = flood_check(server, entry, pacer, &el, stanza_type) {
        router::bounce(server, &el, error);
        return Ok(());
    }
    if el.name() == "presence" && matches!(stanza_type, None | Some("unavailable")) && el.attr("to").is_none()
    {
        // This session records its own availability: only it knows it is still the session
        // bound to this full JID (a replacing connection may already own the name).
        match router::announced_availability(&el) {
            Ok((available, priority)) => {
                entry.set_presence(available, priority, available.then(|| el.clone()))
            }
            Err(error) => {
                router::bounce(server, &el, error);
                return Ok(());
            }
        }
    }
    router::route(server, jid, el).await;
    Ok(())
}

/// Presence and subscription flood limits: available-presence broadcasts per session
/// (`limits.presence_per_second`) and subscription requests per account
/// (`limits.subscriptions_per_minute`). Unavailable presence always passes: going offline
/// must work.
fn flood_check(
    server: &Server,
    entry: &SessionEntry,
    pacer: &mut Pacer,
    el: &Element,
    stanza_type: Option<&str>,
) -> Option<StanzaError> {
    if el.name() != "presence" {
        return None;
    }
    match stanza_type {
        None if el.attr("to").is_none() && !pacer.allow_presence() => {
            Some(StanzaError::policy_violation().text("too many presence updates; wait a moment"))
        }
        Some("subscribe")
            if !server
                .subscriptions_by_account
                .try_record(&entry.jid.to_bare().to_string()) =>
        {
            Some(StanzaError::policy_violation().text("too many subscription requests; try again later"))
        }
        _ => None,
    }
}

/// Stanza-level checks of RFC 6120 §8 (`stanza_type`: `xml::stanza_type(el)`).
fn validate(el: &Element, stanza_type: Option<&str>) -> Result<(), StanzaError> {
    match el.name() {
        "iq" => {
            if el.attr("id").is_none_or(str::is_empty) {
                return Err(StanzaError::bad_request().text("an IQ needs an id"));
            }
            match stanza_type {
                Some("get") | Some("set") => {
                    if el.children().count() != 1 {
                        return Err(StanzaError::bad_request().text("a get or set IQ has exactly one child"));
                    }
                }
                Some("result") => {
                    if el.children().count() > 1 {
                        return Err(StanzaError::bad_request());
                    }
                }
                Some("error") => {}
                _ => return Err(StanzaError::bad_request().text("unknown IQ type")),
            }
        }
        "message" => {
            if !matches!(
                stanza_type,
                None | Some("normal") | Some("chat") | Some("groupchat") | Some("headline") | Some("error")
            ) {
                return Err(StanzaError::bad_request().text("unknown message type"));
            }
        }
        _ => {
            if !matches!(
                stanza_type,
                None | Some("unavailable")
                    | Some("subscribe")
                    | Some("subscribed")
                    | Some("unsubscribe")
                    | Some("unsubscribed")
                    | Some("probe")
                    | Some("error")
            ) {
                return Err(StanzaError::bad_request().text("unknown presence type"));
            }
        }
    }
    // A malformed 'to' is answered by the router, which parses it anyway.
    Ok(())
}
