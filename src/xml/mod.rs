//! XML plumbing: namespaces, the incremental stream parser with limits, and small helpers
//! for addressing attributes and serialization.

pub mod parser;
pub mod write;

pub use parser::{ParserLimits, StreamEvent, StreamHeader, StreamParser};

use minidom::Element;

/// Namespaces used across the server.
pub mod ns {
    pub const STREAM: &str = "http://etherx.jabber.org/streams";
    pub const CLIENT: &str = "jabber:client";
    pub const STREAMS: &str = "urn:ietf:params:xml:ns:xmpp-streams";
    pub const STANZAS: &str = "urn:ietf:params:xml:ns:xmpp-stanzas";
    pub const TLS: &str = "urn:ietf:params:xml:ns:xmpp-tls";
    pub const SASL: &str = "urn:ietf:params:xml:ns:xmpp-sasl";
    pub const BIND: &str = "urn:ietf:params:xml:ns:xmpp-bind";
    pub const SESSION: &str = "urn:ietf:params:xml:ns:xmpp-session";
    pub const SASL_CB: &str = "urn:xmpp:sasl-cb:0";
    pub const CAPS: &str = "http://jabber.org/protocol/caps";
    pub const REGISTER_FEATURE: &str = "http://jabber.org/features/iq-register";
    pub const XML: &str = "http://www.w3.org/XML/1998/namespace";
}

/// Escapes text for use in character data and single- or double-quoted attributes.
pub fn escape(s: &str) -> std::borrow::Cow<'_, str> {
    if !s.contains(['<', '>', '&', '\'', '"']) {
        return std::borrow::Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 16);
    for c in s.chars() {
        match c {
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '&' => out.push_str("&amp;"),
            '\'' => out.push_str("&apos;"),
            '"' => out.push_str("&quot;"),
            c => out.push(c),
        }
    }
    std::borrow::Cow::Owned(out)
}

fn ncname(name: &str) -> rxml::NcName {
    // The addressing attributes are set on every stanza: skip validating them each time.
    match name {
        "from" => rxml::xml_ncname!("from").to_owned(),
        "to" => rxml::xml_ncname!("to").to_owned(),
        "type" => rxml::xml_ncname!("type").to_owned(),
        "id" => rxml::xml_ncname!("id").to_owned(),
        // Only called with literal attribute names of our own, which are valid NCNames.
        _ => rxml::NcName::try_from(name).expect("attribute name is a valid NCName"),
    }
}

/// A stanza's `type` as one of the values RFC 6120/6121 define (no allocation), `Some("")`
/// for any other value (which no check accepts), `None` when absent.
pub fn stanza_type(el: &Element) -> Option<&'static str> {
    const KNOWN: [&str; 16] = [
        "chat",
        "normal",
        "groupchat",
        "headline",
        "error",
        "get",
        "set",
        "result",
        "unavailable",
        "subscribe",
        "subscribed",
        "unsubscribe",
        "unsubscribed",
        "probe",
        "available",
        "invisible",
    ];
    let value = el.attr("type")?;
    Some(KNOWN.into_iter().find(|k| *k == value).unwrap_or(""))
}

/// Sets (or replaces) an unnamespaced attribute.
pub fn set_attr(el: &mut Element, name: &str, value: &str) {
    el.attrs_mut()
        .insert(rxml::Namespace::NONE, ncname(name), value.to_owned());
}

/// Removes an unnamespaced attribute.
pub fn remove_attr(el: &mut Element, name: &str) {
    el.attrs_mut().remove(&rxml::Namespace::NONE, &ncname(name));
}

/// The `<iq type='result'/>` answering `iq` (same `id`), carrying `payload` if any.
/// Addressing is the caller's: the router answers from the addressee back to the sender,
/// a service from its own JID, pre-bind negotiation with neither.
pub fn iq_result(iq: &Element, payload: Option<Element>) -> Element {
    let mut reply = Element::bare("iq", ns::CLIENT);
    set_attr(&mut reply, "type", "result");
    if let Some(id) = iq.attr("id") {
        set_attr(&mut reply, "id", id);
    }
    if let Some(payload) = payload {
        reply.append_child(payload);
    }
    reply
}

/// Swaps `from` and `to`, for replies.
pub fn swap_addresses(el: &mut Element) {
    let from = el.attr("from").map(str::to_owned);
    let to = el.attr("to").map(str::to_owned);
    match to {
        Some(to) => set_attr(el, "from", &to),
        None => remove_attr(el, "from"),
    }
    match from {
        Some(from) => set_attr(el, "to", &from),
        None => remove_attr(el, "to"),
    }
}

/// Serializes an element as it goes on the wire (no XML declaration).
pub fn to_bytes(el: &Element) -> Vec<u8> {
    let mut out = Vec::with_capacity(256);
    // What we parsed or built holds only XML characters; anything else is logged, not sent.
    if let Err(e) = write::write_element(el, &mut out) {
        tracing::error!(error = %e, element = el.name(), "could not serialize element");
    }
    out
}

/// Serializes an element to a String, for logs and tests.
pub fn to_string(el: &Element) -> String {
    String::from_utf8(to_bytes(el)).unwrap_or_default()
}

/// A builder shortcut for an element with a text child.
pub fn text_element(name: &str, ns: &str, text: &str) -> Element {
    Element::builder(name, ns).append(text).build()
}
