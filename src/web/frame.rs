//! RFC 7395 framing: each WebSocket text message holds exactly one XML element, with its
//! namespaces declared; `<open/>` and `<close/>` in the framing namespace stand for the
//! stream header and its end.
//!
//! Messages go through the stream parser inside a made-up root that declares only the
//! `stream` prefix, so the parser's checks (restricted XML, size and depth limits, the
//! error conditions) apply unchanged. One parser serves the whole WebSocket
//! ([`FrameParser`]): a message costs no parser setup, and since each message must be one
//! complete element, nothing but whitespace carries over from one to the next. A message
//! that is not exactly one element is parsed again on its own ([`parse`]) for the exact
//! error condition.

use minidom::Element;
use xmpp_parsers::websocket::Open;

use crate::error::{StreamError, StreamErrorCondition};
use crate::xml::{ParserLimits, StreamEvent, StreamHeader, StreamParser, ns};

/// The framing namespace (RFC 7395 §3.3.1).
pub const NS_FRAMING: &str = "urn:ietf:params:xml:ns:xmpp-framing";

const ROOT: &[u8] = b"<stream:stream xmlns:stream='http://etherx.jabber.org/streams'>";
const END: &[u8] = b"</stream:stream>";

/// What one text message from the client means.
#[derive(Debug)]
pub enum Frame {
    Open(StreamHeader),
    Close,
    Element(Element),
}

/// The parser of one WebSocket connection's messages.
pub struct FrameParser {
    parser: StreamParser,
    events: Vec<StreamEvent>,
    limits: ParserLimits,
}

impl FrameParser {
    pub fn new(limits: ParserLimits) -> FrameParser {
        let mut parser = StreamParser::new(limits);
        let mut events = Vec::with_capacity(2);
        parser
            .feed(ROOT, &mut events)
            .expect("the made-up root is well-formed");
        events.clear();
        FrameParser {
            parser,
            events,
            limits,
        }
    }

    /// Changes the limits, e.g. once the client has authenticated.
    pub fn set_limits(&mut self, limits: ParserLimits) {
        self.limits = limits;
        self.parser.set_limits(limits);
    }

    /// Parses one text message. After an error the parser is spent (the stream ends).
    pub fn parse(&mut self, text: &str) -> Result<Frame, StreamError> {
        match self.parse_one(text) {
            Some(el) => classify(el),
            // Not exactly one element followed by whitespace: the message alone says why.
            None => match parse(text, self.limits) {
                Err(e) => Err(e),
                Ok(_) => Err(not_one_element()),
            },
        }
    }

    /// The message's element when it is exactly one, complete, with only whitespace after.
    fn parse_one(&mut self, text: &str) -> Option<Element> {
        if !text.trim_start().starts_with('<') {
            return None;
        }
        self.events.clear();
        self.parser.feed(text.as_bytes(), &mut self.events).ok()?;
        // What the parser holds past the element (rxml keeps text until the next `<`).
        let after = text.len().checked_sub(self.parser.pending_bytes())?;
        if !text[after..].trim().is_empty() || self.events.len() != 1 {
            return None;
        }
        match self.events.pop() {
            Some(StreamEvent::Element(el)) => Some(el),
            _ => None,
        }
    }
}

/// Parses one text message on its own.
pub fn parse(text: &str, limits: ParserLimits) -> Result<Frame, StreamError> {
    if !text.trim_start().starts_with('<') {
        return Err(not_one_element());
    }
    let mut parser = StreamParser::new(limits);
    let mut events = Vec::with_capacity(3);
    parser.feed(ROOT, &mut events)?;
    parser.feed(text.as_bytes(), &mut events)?;
    // Closing the made-up root flushes trailing text and catches an unclosed element.
    parser.feed(END, &mut events)?;
    let mut elements = events.into_iter().filter_map(|e| match e {
        StreamEvent::Element(el) => Some(el),
        _ => None,
    });
    let Some(el) = elements.next() else {
        return Err(not_one_element());
    };
    if elements.next().is_some() {
        return Err(StreamError::with_text(
            StreamErrorCondition::BadFormat,
            "one element per message (RFC 7395 §3.3.3)",
        ));
    }
    classify(el)
}

/// A stanza, or the framing element it stands for.
fn classify(el: Element) -> Result<Frame, StreamError> {
    if el.ns() != NS_FRAMING {
        return Ok(Frame::Element(el));
    }
    match el.name() {
        "open" => open(el).map(Frame::Open),
        "close" => Ok(Frame::Close),
        _ => Err(StreamError::with_text(
            StreamErrorCondition::UnsupportedStanzaType,
            "unknown framing element",
        )),
    }
}

fn not_one_element() -> StreamError {
    StreamError::with_text(
        StreamErrorCondition::NotWellFormed,
        "a message must hold one complete XML element (RFC 7395 §3.3.3)",
    )
}

fn open(el: Element) -> Result<StreamHeader, StreamError> {
    let open = Open::try_from(el)
        .map_err(|_| StreamError::with_text(StreamErrorCondition::BadFormat, "a malformed <open/>"))?;
    Ok(StreamHeader {
        to: open.to.map(|j| j.to_string()),
        from: open.from.map(|j| j.to_string()),
        version: open.version,
        lang: open.xml_lang,
        // The framing namespace replaces the stream's default namespace: stanzas carry
        // their own `jabber:client` declarations.
        default_ns: Some(ns::CLIENT.to_string()),
    })
}

/// Our `<open/>` for a stream (RFC 7395 §3.4).
pub fn our_open(domain: &str, id: &str, to: Option<&str>) -> Element {
    let open = Open {
        from: domain.parse().ok(),
        to: to.and_then(|t| t.parse().ok()),
        id: Some(id.to_string()),
        version: Some("1.0".to_string()),
        xml_lang: Some("en".to_string()),
    };
    open.into()
}

/// `<close/>`, with the URI to go to instead when the endpoint moved (RFC 7395 §3.6.1).
pub fn close(see_other_uri: Option<&str>) -> Element {
    let mut close = Element::bare("close", NS_FRAMING);
    if let Some(uri) = see_other_uri {
        crate::xml::set_attr(&mut close, "see-other-uri", uri);
    }
    close
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> ParserLimits {
        ParserLimits {
            max_stanza_bytes: 1000,
            max_depth: 8,
        }
    }

    /// The condition, which the stream's parser must agree on (after good messages).
    fn condition(text: &str) -> StreamErrorCondition {
        let alone = parse(text, limits()).expect_err(text).condition;
        let mut stream = FrameParser::new(limits());
        stream.parse("<presence xmlns='jabber:client'/>  ").unwrap();
        assert_eq!(stream.parse(text).expect_err(text).condition, alone, "{text}");
        alone
    }

    #[test]
    fn one_parser_for_the_stream() {
        let mut stream = FrameParser::new(limits());
        for i in 0..3 {
            let text = format!("<message xmlns='jabber:client' id='m{i}'><body>x{i}</body></message>\n");
            let Frame::Element(el) = stream.parse(&text).unwrap() else {
                panic!("not an element");
            };
            assert_eq!(el.attr("id"), Some(format!("m{i}").as_str()));
            assert_eq!(el.get_child("body", ns::CLIENT).unwrap().text(), format!("x{i}"));
        }
        // Prefixes declared in one message do not reach the next.
        let Frame::Element(el) = stream.parse("<p:a xmlns:p='urn:x'/>").unwrap() else {
            panic!("not an element");
        };
        assert!(el.is("a", "urn:x"));
        assert!(stream.parse("<p:a/>").is_err());
        assert!(matches!(
            FrameParser::new(limits()).parse(&format!("<close xmlns='{NS_FRAMING}'/>")),
            Ok(Frame::Close)
        ));
    }

    #[test]
    fn one_element_per_message() {
        let Frame::Element(el) = parse(
            "<message xmlns='jabber:client' to='a@b'><body>x</body></message>",
            limits(),
        )
        .unwrap() else {
            panic!("not an element");
        };
        assert!(el.is("message", ns::CLIENT));
        assert_eq!(el.get_child("body", ns::CLIENT).unwrap().text(), "x");
        assert_eq!(
            condition("<a xmlns='x'/><b xmlns='x'/>"),
            StreamErrorCondition::BadFormat
        );
        assert_eq!(condition("<a xmlns='x'>"), StreamErrorCondition::NotWellFormed);
        assert_eq!(condition("   "), StreamErrorCondition::NotWellFormed);
        assert_eq!(condition("<a xmlns='x'/>junk"), StreamErrorCondition::BadFormat);
        assert_eq!(condition("<a xmlns='x'/>junk>"), StreamErrorCondition::BadFormat);
        assert_eq!(condition("<a xmlns='x'/><b"), StreamErrorCondition::NotWellFormed);
        assert_eq!(
            condition("<a xmlns='x'></b>"),
            StreamErrorCondition::NotWellFormed
        );
        assert_eq!(condition("<?pi x?><a/>"), StreamErrorCondition::RestrictedXml);
    }

    #[test]
    fn framing_elements() {
        let Frame::Open(h) = parse(
            &format!("<open xmlns='{NS_FRAMING}' to='example.org' version='1.0'/>"),
            limits(),
        )
        .unwrap() else {
            panic!("not an open");
        };
        assert_eq!(h.to.as_deref(), Some("example.org"));
        assert_eq!(h.version.as_deref(), Some("1.0"));
        assert!(matches!(
            parse(&format!("<close xmlns='{NS_FRAMING}'/>"), limits()),
            Ok(Frame::Close)
        ));
        assert_eq!(
            condition(&format!("<reopen xmlns='{NS_FRAMING}'/>")),
            StreamErrorCondition::UnsupportedStanzaType
        );
    }

    #[test]
    fn size_limit() {
        let big = format!(
            "<message xmlns='jabber:client'><body>{}</body></message>",
            "x".repeat(2000)
        );
        assert_eq!(condition(&big), StreamErrorCondition::PolicyViolation);
    }

    #[test]
    fn our_open_round_trips() {
        let el = our_open("example.org", "abc", Some("u@example.org"));
        assert_eq!(el.attr("from"), Some("example.org"));
        assert_eq!(el.attr("to"), Some("u@example.org"));
        assert_eq!(el.attr("id"), Some("abc"));
        assert_eq!(el.attr("version"), Some("1.0"));
    }
}
