//! Serialization on the hot path. minidom writes through rxml's encoder, which makes a small
//! buffer for every tag, attribute and text piece; for a chat message that was a seventh of
//! the server's CPU. This writer appends straight to the output buffer and produces the same
//! bytes: `xmlns` where the namespace changes (always on the root), attributes in the
//! element's map order, single quotes, `<x/>` for an element without children, and rxml's
//! escaping. What it does not cover (declared prefixes, attributes in a namespace other than
//! `xml`) goes to minidom. Characters XML forbids are refused here: minidom panics on them.

use minidom::{Element, Node};

use super::ns;

/// An element holding a character XML does not allow (a control character, U+FFFE/U+FFFF).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the element holds a character XML does not allow")]
pub struct Unwritable;

/// Why the fast path stopped.
enum Stop {
    /// Something only minidom writes (prefixes).
    NeedsMinidom,
    Unwritable,
}

/// Appends `el` to `out`, exactly as `Element::write_to` would. On error `out` is as before.
pub fn write_element(el: &Element, out: &mut Vec<u8>) -> Result<(), Unwritable> {
    let start = out.len();
    match write_fast(el, None, out) {
        Ok(()) => Ok(()),
        Err(Stop::Unwritable) => {
            out.truncate(start);
            Err(Unwritable)
        }
        Err(Stop::NeedsMinidom) => {
            out.truncate(start);
            // minidom panics on a character XML forbids: the fast path may have stopped before
            // reaching one, so look at the whole element first.
            if !writable(el) {
                return Err(Unwritable);
            }
            el.write_to(out).map_err(|_| {
                out.truncate(start);
                Unwritable
            })
        }
    }
}

/// Whether every attribute value and text of `el` holds only XML characters.
fn writable(el: &Element) -> bool {
    let mut sink = Vec::new();
    el.attrs().iter().all(|(_, v)| {
        sink.clear();
        escape(v, true, &mut sink)
    }) && el.nodes().all(|n| match n {
        Node::Element(child) => writable(child),
        Node::Text(text) => {
            sink.clear();
            escape(text, false, &mut sink)
        }
    })
}

/// Writes `el` under a parent in namespace `parent_ns` (`None`: the root).
fn write_fast(el: &Element, parent_ns: Option<&str>, out: &mut Vec<u8>) -> Result<(), Stop> {
    if !el.prefixes.declared_prefixes().is_empty() {
        return Err(Stop::NeedsMinidom);
    }
    out.push(b'<');
    out.extend_from_slice(el.name().as_bytes());
    // The namespace as text without allocating for the ones stanzas use; others are rare.
    let owned;
    let namespace = match known_namespace(el) {
        Some(n) => n,
        None => {
            owned = el.ns();
            owned.as_str()
        }
    };
    if parent_ns != Some(namespace) {
        out.extend_from_slice(b" xmlns='");
        if !escape(namespace, true, out) {
            return Err(Stop::Unwritable);
        }
        out.push(b'\'');
    }
    for ((attr_ns, name), value) in el.attrs().iter() {
        out.push(b' ');
        if !attr_ns.is_none() {
            if attr_ns.as_str() != ns::XML {
                return Err(Stop::NeedsMinidom);
            }
            out.extend_from_slice(b"xml:");
        }
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(b"='");
        if !escape(value, true, out) {
            return Err(Stop::Unwritable);
        }
        out.push(b'\'');
    }
    let mut nodes = el.nodes().peekable();
    if nodes.peek().is_none() {
        out.extend_from_slice(b"/>");
        return Ok(());
    }
    out.push(b'>');
    for node in nodes {
        match node {
            Node::Element(child) => write_fast(child, Some(namespace), out)?,
            Node::Text(text) => {
                if !escape(text, false, out) {
                    return Err(Stop::Unwritable);
                }
            }
        }
    }
    out.extend_from_slice(b"</");
    out.extend_from_slice(el.name().as_bytes());
    out.push(b'>');
    Ok(())
}

/// The namespaces most stanzas are made of, matched without allocating.
fn known_namespace(el: &Element) -> Option<&'static str> {
    const KNOWN: [&str; 8] = [
        ns::CLIENT,
        ns::STANZAS,
        "http://jabber.org/protocol/chatstates",
        "urn:xmpp:receipts",
        "urn:xmpp:delay",
        "http://jabber.org/protocol/muc#user",
        "urn:xmpp:occupant-id:0",
        ns::CAPS,
    ];
    KNOWN.into_iter().find(|n| el.has_ns(*n))
}

/// Appends `text` escaped as rxml escapes it (`attribute`: inside a quoted value). `false` for
/// a character XML does not allow.
fn escape(text: &str, attribute: bool, out: &mut Vec<u8>) -> bool {
    let bytes = text.as_bytes();
    let mut copied = 0;
    for (i, &b) in bytes.iter().enumerate() {
        let replacement: &[u8] = match b {
            0x00..=0x08 | 0x0b | 0x0c | 0x0e..=0x1f => return false,
            // U+FFFE and U+FFFF (EF BF BE / EF BF BF) are not XML characters either.
            0xbe | 0xbf if i >= 2 && bytes[i - 2] == 0xef && bytes[i - 1] == 0xbf => return false,
            b'<' => b"&lt;",
            b'>' => b"&gt;",
            b'&' => b"&amp;",
            b'\r' => b"&#xd;",
            b'"' if attribute => b"&#34;",
            b'\'' if attribute => b"&#39;",
            b'\n' if attribute => b"&#xa;",
            b'\t' if attribute => b"&#x9;",
            _ => continue,
        };
        out.extend_from_slice(&bytes[copied..i]);
        out.extend_from_slice(replacement);
        copied = i + 1;
    }
    out.extend_from_slice(&bytes[copied..]);
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    fn minidom_bytes(el: &Element) -> Vec<u8> {
        let mut out = Vec::new();
        el.write_to(&mut out).unwrap();
        out
    }

    fn ours(el: &Element) -> Vec<u8> {
        let mut out = b"prefix".to_vec();
        write_element(el, &mut out).unwrap();
        out.split_off(6)
    }

    /// Stanzas as clients send them (parsed) and as modules build them.
    fn corpus() -> Vec<Element> {
        let parsed = [
            "<message xmlns='jabber:client' to='bob@localhost/b' from='alice@localhost/a' type='chat' id='m1'><body>hi &amp; &lt;bye&gt; 'quoted' \"double\"</body><active xmlns='http://jabber.org/protocol/chatstates'/></message>",
            "<presence xmlns='jabber:client' xml:lang='en'><show>away</show><status xml:lang='de'>weg\r\nbin gleich zurück ☕</status><priority>-1</priority><c xmlns='http://jabber.org/protocol/caps' hash='sha-1' node='n' ver='v=='/></presence>",
            "<iq xmlns='jabber:client' type='get' id='a&apos;b'><query xmlns='jabber:iq:roster'><item jid='x@y' name='tab\there&#10;newline'><group>G &amp; H</group></item></query></iq>",
            "<message xmlns='jabber:client'><x xmlns='jabber:x:data' type='submit'><field var='v'><value/></field></x><empty xmlns=''/></message>",
            "<message xmlns='jabber:client'><body></body><thread parent='p'>t</thread><x xmlns='http://jabber.org/protocol/muc#user'><item affiliation='none' role='participant'/><status code='110'/></x></message>",
        ];
        let mut all: Vec<Element> = parsed.iter().map(|s| s.parse().unwrap()).collect();
        let mut built = Element::builder("message", ns::CLIENT)
            .attr(
                rxml::xml_ncname!("to").to_owned(),
                "room@conference.localhost/nick 'x'",
            )
            .append(Element::builder("body", ns::CLIENT).append("a > b < c & d\te"))
            .append(
                Element::builder("delay", "urn:xmpp:delay")
                    .attr(rxml::xml_ncname!("stamp").to_owned(), "2026"),
            )
            .build();
        crate::xml::set_attr(&mut built, "type", "groupchat");
        all.push(built);
        all.push(Element::bare("ping", "urn:xmpp:ping"));
        all
    }

    #[test]
    fn byte_identical_to_minidom() {
        for el in corpus() {
            assert_eq!(
                String::from_utf8(ours(&el)).unwrap(),
                String::from_utf8(minidom_bytes(&el)).unwrap()
            );
        }
    }

    #[test]
    fn falls_back_to_minidom_for_prefixed_attributes() {
        let el: Element = "<a xmlns='urn:a' xmlns:p='urn:p' p:x='1'><b/></a>"
            .parse()
            .unwrap();
        assert_eq!(ours(&el), minidom_bytes(&el));
    }

    #[test]
    fn refuses_what_minidom_refuses() {
        let mut el = Element::bare("message", ns::CLIENT);
        el.append_text_node("bell \u{7}");
        let mut out = b"kept".to_vec();
        assert!(write_element(&el, &mut out).is_err());
        assert!(out.starts_with(b"kept"));
        let mut el = Element::bare("message", ns::CLIENT);
        crate::xml::set_attr(&mut el, "id", "\u{FFFE}");
        assert!(write_element(&el, &mut Vec::new()).is_err());
    }
}
