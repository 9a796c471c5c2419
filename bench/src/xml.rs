//! Incremental XMPP stream splitter plus a tiny element tree.
//!
//! The splitter tokenises the byte stream just far enough to find the
//! boundaries of top-level stanzas (children of `<stream:stream>`); it honours
//! quoted attribute values, comments, processing instructions and CDATA.
//! Complete stanzas are handed to `quick-xml` for real parsing.

use anyhow::{Result, anyhow, bail};
use quick_xml::Reader;
use quick_xml::events::{BytesStart, Event};

/// What the splitter found next in the buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Frame {
    /// `<stream:stream ...>` opening tag; the range covers the tag.
    StreamOpen(usize, usize),
    /// A complete top-level stanza (element) in `buf[start..end]`.
    Stanza(usize, usize),
    /// `</stream:stream>`.
    StreamClose,
}

/// Incremental splitter over a growable byte buffer.
pub struct Splitter {
    pub buf: Vec<u8>,
    /// Start of unconsumed data.
    head: usize,
    /// Position up to which the data has been tokenised.
    scan: usize,
    /// Element depth: 0 outside the stream, 1 inside `<stream:stream>`.
    depth: u32,
    /// Start of the stanza currently being accumulated (depth >= 2).
    stanza_start: usize,
}

impl Splitter {
    pub fn new(cap: usize) -> Self {
        Splitter {
            buf: Vec::with_capacity(cap),
            head: 0,
            scan: 0,
            depth: 0,
            stanza_start: 0,
        }
    }

    /// Forget the stream state (after SASL success / STARTTLS). Unconsumed
    /// bytes stay in the buffer.
    pub fn reset_stream(&mut self) {
        self.depth = 0;
        self.scan = self.head;
    }

    /// Drop consumed bytes at the front of the buffer and make sure at least
    /// `min_spare` bytes of spare capacity exist for the next read.
    pub fn prepare_read(&mut self, min_spare: usize) {
        if self.head > 0 {
            if self.head == self.buf.len() {
                self.buf.clear();
            } else {
                self.buf.drain(..self.head);
            }
            self.scan -= self.head;
            if self.depth >= 2 {
                self.stanza_start -= self.head;
            }
            self.head = 0;
        }
        if self.buf.capacity() - self.buf.len() < min_spare {
            self.buf.reserve(min_spare);
        }
    }

    /// Shrink the buffer (used by idle connections to keep the bench's own
    /// footprint small).
    pub fn shrink(&mut self, cap: usize) {
        self.prepare_read(0);
        self.buf.shrink_to(cap.max(self.buf.len()));
    }

    /// Try to find the next frame in the buffered data. `Ok(None)` means more
    /// data is needed. The returned ranges are valid until the next call to
    /// `prepare_read`.
    pub fn next_frame(&mut self) -> Result<Option<Frame>> {
        loop {
            let buf = &self.buf[..];
            let Some(off) = memchr::memchr(b'<', &buf[self.scan..]) else {
                // Only character data (or whitespace keepalives) so far.
                self.scan = buf.len();
                if self.depth <= 1 {
                    self.head = self.scan;
                }
                return Ok(None);
            };
            let lt = self.scan + off;
            if self.depth <= 1 {
                // Whitespace between stanzas is consumed.
                self.head = lt;
            }
            let rest = &buf[lt..];
            if rest.len() < 2 {
                self.scan = lt;
                return Ok(None);
            }
            match rest[1] {
                b'?' => match memchr::memmem::find(rest, b"?>") {
                    Some(e) => {
                        self.scan = lt + e + 2;
                        if self.depth <= 1 {
                            self.head = self.scan;
                        }
                        continue;
                    }
                    None => {
                        self.scan = lt;
                        return Ok(None);
                    }
                },
                b'!' => {
                    let (close, skip): (&[u8], usize) = if rest.starts_with(b"<!--") {
                        (b"-->", 4)
                    } else if rest.starts_with(b"<![CDATA[") {
                        (b"]]>", 9)
                    } else if rest.len() < 9 {
                        self.scan = lt;
                        return Ok(None);
                    } else {
                        bail!("unsupported markup declaration in stream");
                    };
                    match memchr::memmem::find(&rest[skip..], close) {
                        Some(e) => {
                            self.scan = lt + skip + e + close.len();
                            if self.depth <= 1 {
                                self.head = self.scan;
                            }
                            continue;
                        }
                        None => {
                            self.scan = lt;
                            return Ok(None);
                        }
                    }
                }
                _ => {}
            }
            // A start, end or empty-element tag: find the closing '>' outside
            // of quoted attribute values.
            let Some(gt) = find_tag_end(rest) else {
                self.scan = lt;
                return Ok(None);
            };
            let end = lt + gt + 1;
            self.scan = end;
            let is_end = rest[1] == b'/';
            let is_empty = !is_end && gt >= 1 && rest[gt - 1] == b'/';
            if is_end {
                match self.depth {
                    0 => bail!("unexpected end tag outside of stream"),
                    1 => {
                        self.depth = 0;
                        self.head = end;
                        return Ok(Some(Frame::StreamClose));
                    }
                    2 => {
                        self.depth = 1;
                        self.head = end;
                        return Ok(Some(Frame::Stanza(self.stanza_start, end)));
                    }
                    _ => self.depth -= 1,
                }
            } else if is_empty {
                match self.depth {
                    0 => bail!("empty element outside of stream"),
                    1 => {
                        self.head = end;
                        return Ok(Some(Frame::Stanza(lt, end)));
                    }
                    _ => {}
                }
            } else {
                match self.depth {
                    0 => {
                        self.depth = 1;
                        self.head = end;
                        return Ok(Some(Frame::StreamOpen(lt, end)));
                    }
                    1 => {
                        self.stanza_start = lt;
                        self.depth = 2;
                    }
                    _ => self.depth += 1,
                }
            }
        }
    }
}

/// Index of the `>` that closes the tag starting at `s[0] == b'<'`.
fn find_tag_end(s: &[u8]) -> Option<usize> {
    let mut i = 1;
    while i < s.len() {
        let pos = memchr::memchr3(b'>', b'"', b'\'', &s[i..])? + i;
        let c = s[pos];
        if c == b'>' {
            return Some(pos);
        }
        let close = memchr::memchr(c, &s[pos + 1..])?;
        i = pos + 1 + close + 1;
    }
    None
}

/// Minimal owned element tree (used outside of the hot path).
#[derive(Debug, Default, Clone)]
pub struct Element {
    /// Local name (prefix stripped).
    pub name: String,
    /// Namespace from an `xmlns` attribute on this element, or inherited.
    pub ns: String,
    pub attrs: Vec<(String, String)>,
    pub children: Vec<Element>,
    pub text: String,
}

impl Element {
    pub fn attr(&self, name: &str) -> Option<&str> {
        self.attrs
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn child(&self, name: &str) -> Option<&Element> {
        self.children.iter().find(|c| c.name == name)
    }

    pub fn child_ns(&self, name: &str, ns: &str) -> Option<&Element> {
        self.children.iter().find(|c| c.name == name && c.ns == ns)
    }

    /// Short human-readable description, for error messages.
    pub fn describe(&self) -> String {
        let mut s = format!("<{} xmlns='{}'", self.name, self.ns);
        for (k, v) in &self.attrs {
            s.push_str(&format!(" {k}='{v}'"));
        }
        s.push('>');
        for c in &self.children {
            s.push_str(&c.describe());
        }
        if !self.text.is_empty() {
            s.push_str(&self.text);
        }
        s.push_str(&format!("</{}>", self.name));
        s
    }
}

fn local(name: &str) -> &str {
    match name.rfind(':') {
        Some(i) => &name[i + 1..],
        None => name,
    }
}

fn start_element(e: &BytesStart<'_>, parent_ns: &str) -> Result<Element> {
    let mut el = Element {
        name: local(e.name().as_ref()).to_string(),
        ns: parent_ns.to_string(),
        ..Default::default()
    };
    let qname = e.name();
    let prefix = qname.as_ref().find(':').map(|i| &qname.as_ref()[..i]);
    for a in e.attributes() {
        let a = a.map_err(|err| anyhow!("bad attribute: {err}"))?;
        let key = a.key.as_ref();
        let val = a
            .normalized_value(quick_xml::XmlVersion::Implicit1_0)
            .map_err(|err| anyhow!("bad attribute value: {err}"))?
            .into_owned();
        if key == "xmlns" && prefix.is_none() {
            el.ns = val.clone();
        } else if let (Some(p), Some(k)) = (prefix, key.strip_prefix("xmlns:"))
            && p == k
        {
            el.ns = val.clone();
        }
        el.attrs.push((key.to_string(), val));
    }
    Ok(el)
}

fn push_entity(out: &mut String, name: &str) {
    match name {
        "amp" => out.push('&'),
        "lt" => out.push('<'),
        "gt" => out.push('>'),
        "quot" => out.push('"'),
        "apos" => out.push('\''),
        _ => {
            let n = if let Some(h) = name.strip_prefix("#x") {
                u32::from_str_radix(h, 16).ok()
            } else if let Some(d) = name.strip_prefix('#') {
                d.parse().ok()
            } else {
                None
            };
            if let Some(c) = n.and_then(char::from_u32) {
                out.push(c);
            }
        }
    }
}

/// Parse one complete element (a stanza) into an [`Element`].
pub fn parse_element(bytes: &[u8], default_ns: &str) -> Result<Element> {
    let s = std::str::from_utf8(bytes)?;
    let mut r = Reader::from_str(s);
    let mut stack: Vec<Element> = Vec::new();
    loop {
        match r.read_event().map_err(|e| anyhow!("xml error: {e}"))? {
            Event::Start(e) => {
                let ns = stack.last().map(|p| p.ns.as_str()).unwrap_or(default_ns);
                let el = start_element(&e, ns)?;
                stack.push(el);
            }
            Event::Empty(e) => {
                let ns = stack.last().map(|p| p.ns.as_str()).unwrap_or(default_ns);
                let el = start_element(&e, ns)?;
                match stack.last_mut() {
                    Some(p) => p.children.push(el),
                    None => return Ok(el),
                }
            }
            Event::End(_) => {
                let el = stack.pop().ok_or_else(|| anyhow!("unbalanced"))?;
                match stack.last_mut() {
                    Some(p) => p.children.push(el),
                    None => return Ok(el),
                }
            }
            Event::Text(t) => {
                if let Some(p) = stack.last_mut() {
                    p.text.push_str(&t.xml10_content());
                }
            }
            Event::CData(t) => {
                if let Some(p) = stack.last_mut() {
                    p.text.push_str(&t.xml10_content());
                }
            }
            Event::GeneralRef(r) => {
                if let Some(p) = stack.last_mut() {
                    push_entity(&mut p.text, &r.xml10_content());
                }
            }
            Event::Eof => bail!("incomplete element"),
            _ => {}
        }
    }
}

/// Hot-path inspection of an incoming stanza: the top-level element name,
/// its `type` attribute, and the text of a `<body>` or `<status>` child, without building
/// a tree. The body borrows from the input (it is `None` when it contains
/// entity references, which the bench's own messages never do).
pub fn quick_inspect(bytes: &[u8]) -> Result<Inspect<'_>> {
    let s = std::str::from_utf8(bytes)?;
    let mut r = Reader::from_str(s);
    let mut out = Inspect::default();
    let mut depth = 0u32;
    let mut in_body = false;
    loop {
        match r.read_event().map_err(|e| anyhow!("xml error: {e}"))? {
            Event::Start(e) => {
                if depth == 0 {
                    top_attrs(&e, &mut out);
                } else if depth == 1 {
                    match e.local_name().as_ref() {
                        "body" | "status" => in_body = true,
                        "ping" => out.ping = true,
                        _ => {}
                    }
                }
                depth += 1;
            }
            Event::Empty(e) => {
                if depth == 0 {
                    top_attrs(&e, &mut out);
                    return Ok(out);
                }
                if depth == 1 && e.local_name().as_ref() == "ping" {
                    out.ping = true;
                }
            }
            Event::End(_) => {
                depth = depth.saturating_sub(1);
                in_body = false;
                if depth == 0 {
                    return Ok(out);
                }
            }
            Event::Text(t) if in_body => {
                if let std::borrow::Cow::Borrowed(b) = t.into_inner() {
                    out.body = Some(b);
                }
            }
            Event::Eof => return Ok(out),
            _ => {}
        }
    }
}

fn top_attrs(e: &BytesStart<'_>, out: &mut Inspect<'_>) {
    out.name = match e.local_name().as_ref() {
        "message" => TopName::Message,
        "presence" => TopName::Presence,
        "iq" => TopName::Iq,
        _ => TopName::Other,
    };
    for a in e.attributes().flatten() {
        if a.key.as_ref() == "type" {
            out.typ = match a.value.as_ref() {
                "error" => StanzaType::Error,
                "subscribe" => StanzaType::Subscribe,
                "subscribed" => StanzaType::Subscribed,
                "unavailable" => StanzaType::Unavailable,
                _ => StanzaType::Other,
            };
            out.is_error = out.typ == StanzaType::Error;
        }
    }
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub enum TopName {
    Message,
    Presence,
    Iq,
    #[default]
    Other,
}

/// The `type` attribute of a stanza, as far as the bench cares.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub enum StanzaType {
    /// No `type` attribute (e.g. available presence).
    #[default]
    None,
    Error,
    Subscribe,
    Subscribed,
    Unavailable,
    Other,
}

#[derive(Debug, Default)]
pub struct Inspect<'a> {
    pub typ: StanzaType,
    pub name: TopName,
    pub is_error: bool,
    /// Text of the `<body>` (message) or `<status>` (presence) child.
    pub body: Option<&'a str>,
    /// An `<iq>` carrying a `<ping/>` child (XEP-0199).
    pub ping: bool,
}

/// The raw value of attribute `name` in the start tag that opens `s` (either quote), without
/// parsing: enough to compare a `from` with a JID the bench knows (bench JIDs need no escaping).
pub fn start_tag_attr<'a>(s: &'a [u8], name: &[u8]) -> Option<&'a [u8]> {
    let end = memchr::memchr(b'>', s).unwrap_or(s.len());
    let tag = &s[..end];
    let mut from = 0;
    while let Some(p) = memchr::memmem::find(&tag[from..], name).map(|p| p + from) {
        from = p + name.len();
        let preceded = p > 0 && tag[p - 1].is_ascii_whitespace();
        let rest = &tag[from..];
        if preceded && rest.len() >= 2 && rest[0] == b'=' && (rest[1] == b'\'' || rest[1] == b'"') {
            let quote = rest[1];
            let value = &rest[2..];
            return memchr::memchr(quote, value).map(|q| &value[..q]);
        }
    }
    None
}

/// Escape text for use in XML character data or attribute values.
pub fn escape(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '\'' => o.push_str("&apos;"),
            '"' => o.push_str("&quot;"),
            _ => o.push(c),
        }
    }
    o
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn start_tag_attr_reads_the_opening_tag_only() {
        let m = b"<message xfrom='no' from=\"a@b/c\" to='d'><body from='inner'/></message>";
        assert_eq!(start_tag_attr(m, b"from"), Some(&b"a@b/c"[..]));
        assert_eq!(start_tag_attr(m, b"to"), Some(&b"d"[..]));
        assert_eq!(
            start_tag_attr(b"<message to='x'><b from='y'/></message>", b"from"),
            None
        );
    }

    fn collect(chunks: &[&[u8]]) -> Vec<String> {
        let mut sp = Splitter::new(16);
        let mut out = Vec::new();
        for c in chunks {
            sp.prepare_read(c.len());
            sp.buf.extend_from_slice(c);
            while let Some(f) = sp.next_frame().unwrap() {
                match f {
                    Frame::StreamOpen(a, b) => {
                        out.push(format!("OPEN {}", String::from_utf8_lossy(&sp.buf[a..b])))
                    }
                    Frame::Stanza(a, b) => out.push(String::from_utf8_lossy(&sp.buf[a..b]).into()),
                    Frame::StreamClose => out.push("CLOSE".into()),
                }
            }
        }
        out
    }

    #[test]
    fn splits_byte_by_byte() {
        let data = b"<?xml version='1.0'?><stream:stream xmlns='jabber:client' a='x>y'> <!-- c --><message to='a'><body>1 &amp; <![CDATA[<x>]]></body></message>\n<presence/><iq type='result' id='x'><q a=\"/>\"/></iq></stream:stream>";
        let whole = collect(&[data]);
        let chunks: Vec<&[u8]> = data.chunks(1).collect();
        let bytewise = collect(&chunks);
        assert_eq!(whole, bytewise);
        assert_eq!(whole.len(), 5);
        assert!(whole[0].starts_with("OPEN <stream:stream"));
        assert_eq!(
            whole[1],
            "<message to='a'><body>1 &amp; <![CDATA[<x>]]></body></message>"
        );
        assert_eq!(whole[2], "<presence/>");
        assert_eq!(whole[4], "CLOSE");
    }

    #[test]
    fn parses_tree() {
        let el = parse_element(
            b"<stream:features xmlns:stream='http://etherx.jabber.org/streams'><mechanisms xmlns='urn:ietf:params:xml:ns:xmpp-sasl'><mechanism>SCRAM-SHA-1</mechanism><mechanism>PLAIN</mechanism></mechanisms></stream:features>",
            "jabber:client",
        )
        .unwrap();
        assert_eq!(el.name, "features");
        assert_eq!(el.ns, "http://etherx.jabber.org/streams");
        let m = el
            .child_ns("mechanisms", "urn:ietf:params:xml:ns:xmpp-sasl")
            .unwrap();
        assert_eq!(m.children.len(), 2);
        assert_eq!(m.children[0].text, "SCRAM-SHA-1");
    }

    #[test]
    fn inspects_message() {
        let i = quick_inspect(
            b"<message from='a@b/c' to='d@e/f' type='chat' id='7'><body>12 345</body><x/></message>",
        )
        .unwrap();
        assert_eq!(i.name, TopName::Message);
        assert_eq!(i.body, Some("12 345"));
        assert!(!i.is_error);
        let i = quick_inspect(b"<presence from='a@b/c'><status>3 4 5</status></presence>").unwrap();
        assert_eq!(i.name, TopName::Presence);
        assert_eq!(i.typ, StanzaType::None);
        assert_eq!(i.body, Some("3 4 5"));
        let i = quick_inspect(b"<presence from='a@b' type='subscribe'/>").unwrap();
        assert_eq!(i.typ, StanzaType::Subscribe);
        let i = quick_inspect(b"<iq type='get' id='p1'><ping xmlns='urn:xmpp:ping'/></iq>").unwrap();
        assert!(i.ping);
        assert_eq!(i.name, TopName::Iq);
    }
}
