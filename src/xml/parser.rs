//! The incremental stream parser: bytes in, stream header / stanzas / close out.
//!
//! rxml already refuses DTDs, entity declarations, processing instructions and comments
//! (RFC 6120 §11.1's restricted XML). On top of it this parser enforces a byte budget per
//! top-level element and a depth limit, so a client cannot make us buffer without bound, and
//! turns every failure into the stream error condition RFC 6120 §4.9.3 names.

use minidom::Element;
use rxml::error::EndOrError;
use rxml::{Event, Parse, Parser, RawEvent, RawParser, WithOptions};

use crate::error::{StreamError, StreamErrorCondition};
use crate::xml::ns;

/// Longest name or attribute value accepted (a JID is at most 3071 bytes).
const MAX_TOKEN_BYTES: usize = 8192;

/// Limits applied to what one client may send.
#[derive(Debug, Clone, Copy)]
pub struct ParserLimits {
    /// Bytes one top-level element (stanza or nonza) may take, including whitespace before it.
    pub max_stanza_bytes: usize,
    /// Element nesting below the stream root.
    pub max_depth: usize,
}

impl Default for ParserLimits {
    fn default() -> Self {
        ParserLimits {
            max_stanza_bytes: 262_144,
            max_depth: 48,
        }
    }
}

/// The attributes of a received `<stream:stream>` header.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StreamHeader {
    pub to: Option<String>,
    pub from: Option<String>,
    pub version: Option<String>,
    pub lang: Option<String>,
    /// The default namespace the client declared (`jabber:client` for c2s).
    pub default_ns: Option<String>,
}

/// What the parser hands to the session.
#[derive(Debug, Clone, PartialEq)]
pub enum StreamEvent {
    Header(StreamHeader),
    Element(Element),
    /// `</stream:stream>`.
    Closed,
    /// The client answered a keepalive probe below the XML stream (a WebSocket pong).
    Alive,
}

/// One parser per stream; a stream restart (after STARTTLS or SASL) makes a new one.
pub struct StreamParser {
    parser: Parser,
    /// Reads the header a second time without namespace resolution, because rxml's resolved
    /// events do not say which default namespace the root declared. Dropped once it is open.
    header_sniffer: Option<RawParser>,
    limits: ParserLimits,
    /// Open elements below the root; the first is the stanza being built.
    stack: Vec<Element>,
    root_open: bool,
    closed: bool,
    /// The root's default namespace declaration, seen in raw events before resolution.
    root_default_ns: Option<String>,
    /// Bytes consumed since the last top-level element was completed.
    pending_bytes: usize,
    /// Checks UTF-8 as bytes arrive: rxml holds character data until the next `<`, so
    /// invalid bytes between stanzas would otherwise go unreported.
    utf8: Utf8Check,
    /// Whether the first `<` arrived; anything else first is not XML at all.
    seen_markup: bool,
}

impl StreamParser {
    pub fn new(limits: ParserLimits) -> Self {
        let options = rxml::Options {
            // Caps names and attribute values (text is emitted in chunks of this size, so
            // bodies are unaffected). rxml reserves a scratch buffer of this length, so it is
            // kept small and released after every read (see `feed`).
            max_token_length: MAX_TOKEN_BYTES,
            ..Default::default()
        };
        StreamParser {
            parser: Parser::with_options(options),
            header_sniffer: Some(RawParser::new()),
            limits,
            stack: Vec::new(),
            root_open: false,
            closed: false,
            root_default_ns: None,
            pending_bytes: 0,
            utf8: Utf8Check::default(),
            seen_markup: false,
        }
    }

    /// Changes the limits, e.g. once the client has authenticated.
    pub fn set_limits(&mut self, limits: ParserLimits) {
        self.limits = limits;
    }

    /// Bytes read since the last top-level element ended (what follows it so far).
    pub fn pending_bytes(&self) -> usize {
        self.pending_bytes
    }

    /// Feeds received bytes; completed events are appended to `out`. An error is final:
    /// the caller sends it as a stream error and closes.
    pub fn feed(&mut self, data: &[u8], out: &mut Vec<StreamEvent>) -> Result<(), StreamError> {
        self.utf8.check(data)?;
        if !self.seen_markup {
            // An HTTP request or other garbage must be refused now, not when a '<' shows up.
            match data.iter().find(|b| !matches!(b, b' ' | b'\t' | b'\r' | b'\n')) {
                Some(b'<') => self.seen_markup = true,
                Some(_) => {
                    return Err(StreamError::with_text(
                        StreamErrorCondition::NotWellFormed,
                        "the stream must begin with XML",
                    ));
                }
                None => {}
            }
        }
        let mut data = data;
        while !self.closed {
            let before = data;
            let event = self.parser.parse(&mut data, false);
            let consumed = &before[..before.len() - data.len()];
            self.pending_bytes += consumed.len();
            if let Some(sniffer) = &mut self.header_sniffer {
                sniff_default_ns(sniffer, consumed, &mut self.root_default_ns);
            }
            if self.pending_bytes > self.limits.max_stanza_bytes {
                return Err(StreamError::with_text(
                    StreamErrorCondition::PolicyViolation,
                    format!("stanza larger than {} bytes", self.limits.max_stanza_bytes),
                ));
            }
            match event {
                Ok(Some(ev)) => self.handle(ev, out)?,
                Ok(None) => {
                    self.closed = true;
                    if self.root_open {
                        out.push(StreamEvent::Closed);
                    }
                }
                Err(EndOrError::NeedMoreData) => {
                    // Idle connections are most connections: give back the lexer's scratch
                    // buffer between reads instead of holding it for the stream's lifetime.
                    self.parser.release_temporaries();
                    return Ok(());
                }
                Err(EndOrError::Error(e)) => return Err(classify(e)),
            }
        }
        Ok(())
    }

    fn handle(&mut self, ev: Event, out: &mut Vec<StreamEvent>) -> Result<(), StreamError> {
        match ev {
            Event::XmlDeclaration(..) => {}
            Event::StartElement(_, (ns_name, name), attrs) => {
                if !self.root_open {
                    self.root_open = true;
                    self.header_sniffer = None;
                    return self.open_root(ns_name.as_str(), name.as_str(), &attrs, out);
                }
                if self.stack.len() >= self.limits.max_depth {
                    return Err(StreamError::with_text(
                        StreamErrorCondition::PolicyViolation,
                        "elements nested too deeply",
                    ));
                }
                let mut el = Element::builder(name.as_str(), ns_name.as_str()).build();
                *el.attrs_mut() = attrs;
                self.stack.push(el);
            }
            Event::EndElement(_) => match self.stack.pop() {
                Some(el) => match self.stack.last_mut() {
                    Some(parent) => {
                        parent.append_child(el);
                    }
                    None => {
                        self.pending_bytes = 0;
                        out.push(StreamEvent::Element(el));
                    }
                },
                None => {
                    self.closed = true;
                    out.push(StreamEvent::Closed);
                }
            },
            Event::Text(_, text) => match self.stack.last_mut() {
                Some(top) => top.append_text(text),
                // Between stanzas only whitespace keepalives are meaningful.
                None if text.trim().is_empty() => {}
                None => {
                    return Err(StreamError::with_text(
                        StreamErrorCondition::BadFormat,
                        "text outside of a stanza",
                    ));
                }
            },
        }
        Ok(())
    }

    fn open_root(
        &mut self,
        ns_name: &str,
        name: &str,
        attrs: &rxml::AttrMap,
        out: &mut Vec<StreamEvent>,
    ) -> Result<(), StreamError> {
        if ns_name != ns::STREAM {
            return Err(StreamError::with_text(
                StreamErrorCondition::InvalidNamespace,
                "the stream namespace must be http://etherx.jabber.org/streams",
            ));
        }
        if name != "stream" {
            return Err(StreamError::with_text(
                StreamErrorCondition::BadFormat,
                "the root element must be <stream:stream>",
            ));
        }
        let plain = |key: &str| {
            attrs
                .get(
                    &rxml::Namespace::NONE,
                    &rxml::NcName::try_from(key).expect("ncname"),
                )
                .cloned()
        };
        let lang = attrs
            .iter()
            .find(|((ns, name), _)| ns.as_str() == ns::XML && name.as_str() == "lang")
            .map(|(_, v)| v.clone());
        // The stanza pending-bytes budget restarts after the header.
        self.pending_bytes = 0;
        out.push(StreamEvent::Header(StreamHeader {
            to: plain("to"),
            from: plain("from"),
            version: plain("version"),
            lang,
            default_ns: self.root_default_ns.take(),
        }));
        Ok(())
    }
}

/// Incremental UTF-8 validation across chunk boundaries.
#[derive(Default)]
struct Utf8Check {
    /// The start of a multi-byte sequence split by the previous chunk.
    partial: [u8; 4],
    partial_len: usize,
}

impl Utf8Check {
    fn check(&mut self, mut data: &[u8]) -> Result<(), StreamError> {
        let invalid = || StreamError::with_text(StreamErrorCondition::NotWellFormed, "invalid UTF-8");
        if self.partial_len > 0 {
            let need = match self.partial[0] {
                0xC0..=0xDF => 2,
                0xE0..=0xEF => 3,
                _ => 4,
            };
            let take = (need - self.partial_len).min(data.len());
            self.partial[self.partial_len..self.partial_len + take].copy_from_slice(&data[..take]);
            self.partial_len += take;
            data = &data[take..];
            if self.partial_len < need {
                return Ok(());
            }
            std::str::from_utf8(&self.partial[..need]).map_err(|_| invalid())?;
            self.partial_len = 0;
        }
        match std::str::from_utf8(data) {
            Ok(_) => Ok(()),
            Err(e) if e.error_len().is_none() => {
                let tail = &data[e.valid_up_to()..];
                self.partial[..tail.len()].copy_from_slice(tail);
                self.partial_len = tail.len();
                Ok(())
            }
            Err(_) => Err(invalid()),
        }
    }
}

/// Feeds header bytes to the raw parser and records a default namespace declaration.
fn sniff_default_ns(sniffer: &mut RawParser, mut bytes: &[u8], found: &mut Option<String>) {
    // Errors are reported by the main parser; the sniffer just stops looking.
    while let Ok(Some(ev)) = sniffer.parse(&mut bytes, false) {
        if let RawEvent::Attribute(_, (None, name), value) = ev
            && name.as_str() == "xmlns"
        {
            *found = Some(value);
        }
    }
}

/// Maps a parser error to its RFC 6120 stream error condition.
fn classify(e: rxml::Error) -> StreamError {
    let text = e.to_string();
    if let rxml::Error::RestrictedXml(why) = e
        && why.contains("long")
    {
        return StreamError::with_text(StreamErrorCondition::PolicyViolation, text);
    }
    let restricted = matches!(e, rxml::Error::UndeclaredEntity)
        || text.contains("processing instruction")
        || text.contains("DOCTYPE")
        || text.contains("comment")
        || text.contains("<!")
        || text.contains("<?");
    let condition = if restricted {
        StreamErrorCondition::RestrictedXml
    } else {
        StreamErrorCondition::NotWellFormed
    };
    StreamError::with_text(condition, text)
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEADER: &str = "<?xml version='1.0'?><stream:stream to='localhost' version='1.0' \
        xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' xml:lang='en'>";

    fn parse(input: &str) -> Result<Vec<StreamEvent>, StreamError> {
        let mut p = StreamParser::new(ParserLimits {
            max_stanza_bytes: 4096,
            max_depth: 8,
        });
        let mut out = Vec::new();
        p.feed(input.as_bytes(), &mut out)?;
        Ok(out)
    }

    fn condition(input: &str) -> StreamErrorCondition {
        parse(input).expect_err("should fail").condition
    }

    #[test]
    fn header_attributes_are_reported() {
        let out = parse(HEADER).unwrap();
        let StreamEvent::Header(h) = &out[0] else {
            panic!("{out:?}")
        };
        assert_eq!(h.to.as_deref(), Some("localhost"));
        assert_eq!(h.version.as_deref(), Some("1.0"));
        assert_eq!(h.lang.as_deref(), Some("en"));
        assert_eq!(h.default_ns.as_deref(), Some("jabber:client"));
    }

    #[test]
    fn stanzas_come_out_whole_even_when_fed_byte_by_byte() {
        let input = format!("{HEADER}<message to='a@b'><body>hi &amp; bye</body></message> </stream:stream>");
        let mut p = StreamParser::new(ParserLimits::default());
        let mut out = Vec::new();
        for b in input.as_bytes() {
            p.feed(std::slice::from_ref(b), &mut out).unwrap();
        }
        assert_eq!(out.len(), 3, "{out:?}");
        let StreamEvent::Element(msg) = &out[1] else {
            panic!()
        };
        assert!(msg.is("message", ns::CLIENT));
        assert_eq!(msg.get_child("body", ns::CLIENT).unwrap().text(), "hi & bye");
        assert_eq!(out[2], StreamEvent::Closed);
    }

    #[test]
    fn wrong_stream_namespace_is_invalid_namespace() {
        let c = condition("<stream:stream xmlns:stream='urn:wrong' xmlns='jabber:client'>");
        assert_eq!(c, StreamErrorCondition::InvalidNamespace);
    }

    #[test]
    fn dtd_entities_and_pis_are_restricted_xml() {
        assert_eq!(
            condition("<!DOCTYPE foo [<!ENTITY x 'y'>]><stream:stream/>"),
            StreamErrorCondition::RestrictedXml
        );
        assert_eq!(
            condition(&format!("{HEADER}<?foo bar?>")),
            StreamErrorCondition::RestrictedXml
        );
        assert_eq!(
            condition(&format!("{HEADER}<message>&foo;</message>")),
            StreamErrorCondition::RestrictedXml
        );
        assert_eq!(
            condition(&format!("{HEADER}<!-- hi -->")),
            StreamErrorCondition::RestrictedXml
        );
    }

    #[test]
    fn broken_xml_is_not_well_formed() {
        assert_eq!(
            condition(&format!("{HEADER}<message></iq>")),
            StreamErrorCondition::NotWellFormed
        );
        let mut bad = HEADER.as_bytes().to_vec();
        bad.extend_from_slice(b"<message><body>\xff\xfe</body></message>");
        let mut p = StreamParser::new(ParserLimits::default());
        let err = p.feed(&bad, &mut Vec::new()).unwrap_err();
        assert_eq!(err.condition, StreamErrorCondition::NotWellFormed);
    }

    #[test]
    fn invalid_utf8_between_stanzas_is_caught_at_once() {
        let mut p = StreamParser::new(ParserLimits::default());
        p.feed(HEADER.as_bytes(), &mut Vec::new()).unwrap();
        let err = p.feed(b"\xc0\x80\xff", &mut Vec::new()).unwrap_err();
        assert_eq!(err.condition, StreamErrorCondition::NotWellFormed);
    }

    #[test]
    fn utf8_split_across_chunks_is_fine() {
        let text = format!("{HEADER}<message><body>h\u{e9}llo \u{1F600}</body></message>");
        let bytes = text.as_bytes();
        for cut in 0..bytes.len() {
            let mut p = StreamParser::new(ParserLimits::default());
            let mut out = Vec::new();
            p.feed(&bytes[..cut], &mut out).unwrap();
            p.feed(&bytes[cut..], &mut out).unwrap();
            assert_eq!(out.len(), 2, "cut at {cut}");
        }
    }

    #[test]
    fn garbage_before_the_header_is_refused_immediately() {
        assert_eq!(
            condition("GET / HTTP/1.1\r\n"),
            StreamErrorCondition::NotWellFormed
        );
        assert!(parse("  \n").unwrap().is_empty());
    }

    #[test]
    fn long_text_passes_but_huge_attribute_values_do_not() {
        let mut p = StreamParser::new(ParserLimits::default());
        let mut out = Vec::new();
        let body = "y".repeat(100_000);
        p.feed(
            format!("{HEADER}<message><body>{body}</body></message>").as_bytes(),
            &mut out,
        )
        .unwrap();
        let StreamEvent::Element(msg) = &out[1] else {
            panic!()
        };
        assert_eq!(msg.get_child("body", ns::CLIENT).unwrap().text().len(), 100_000);
        let huge = format!("{HEADER}<message id='{}'/>", "z".repeat(MAX_TOKEN_BYTES + 1));
        assert!(
            StreamParser::new(ParserLimits::default())
                .feed(huge.as_bytes(), &mut Vec::new())
                .is_err()
        );
    }

    #[test]
    fn oversized_and_deep_stanzas_are_policy_violations() {
        let big = format!("{HEADER}<message><body>{}</body></message>", "x".repeat(5000));
        assert_eq!(condition(&big), StreamErrorCondition::PolicyViolation);
        let deep = format!("{HEADER}{}", "<a>".repeat(20));
        assert_eq!(condition(&deep), StreamErrorCondition::PolicyViolation);
        // Many small stanzas never add up to the limit.
        let many = format!("{HEADER}{}", "<presence/>".repeat(1000));
        assert_eq!(parse(&many).unwrap().len(), 1001);
    }
}
