//! A raw XML-over-socket client for edge and error cases.
//!
//! Everything the server sends is parsed incrementally with rxml (a strict
//! XML parser) into minidom [`Element`]s: the stream header, each top-level
//! element, the stream footer and the TCP close are reported as [`Incoming`]
//! events. Parse errors in what the server sends fail the test.

use std::collections::VecDeque;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use minidom::Element;
use minidom::tree_builder::TreeBuilder;
use rustls::ClientConfig;
use rustls_pki_types::ServerName;
use rxml::Parse;
use rxml::error::EndOrError;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::Instant;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

use crate::scram::{ChannelBindingMode, ScramClient, ScramHash};
use crate::{TIMEOUT, ns, tls, xml};

/// Whether `CONFORMANCE_TRACE` is set: raw traffic is then printed to stderr
/// (run with `--nocapture`).
fn trace() -> bool {
    static T: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *T.get_or_init(|| std::env::var_os("CONFORMANCE_TRACE").is_some())
}

/// Something received from the server.
#[derive(Debug, Clone)]
pub enum Incoming {
    /// The stream header (`<stream:stream ...>`), as an element without children.
    Header(Element),
    /// A complete top-level element (stanza, nonza, stream error...).
    Element(Element),
    /// `</stream:stream>`.
    StreamEnd,
    /// The connection was closed (or reset) by the server.
    Closed,
}

/// A stream error as observed by [`RawClient::expect_stream_error`].
#[derive(Debug, Clone)]
pub struct StreamErrorInfo {
    /// Defined condition, e.g. `host-unknown`.
    pub condition: String,
    pub element: Element,
    /// Whether the server sent a stream header on this stream (before the error).
    pub header: Option<Element>,
    /// Whether `</stream:stream>` followed the error.
    pub footer_received: bool,
    /// Whether the TCP connection was closed afterwards.
    pub connection_closed: bool,
}

impl StreamErrorInfo {
    /// Asserts the condition and the RFC 6120 §4.9.1.1 closing sequence
    /// (`<stream:error/>` followed by `</stream:stream>`).
    pub fn assert_condition(&self, expected: &[&str]) {
        assert!(
            expected.contains(&self.condition.as_str()),
            "expected stream error {expected:?}, got <{}/>: {}",
            self.condition,
            xml::to_string(&self.element)
        );
        assert!(
            self.footer_received,
            "RFC 6120 §4.9.1.1: the stream error <{}/> must be followed by </stream:stream>",
            self.condition
        );
    }
}

/// Failure of a SASL exchange.
#[derive(Debug, Clone)]
pub struct SaslFailure {
    /// Defined condition of the `<failure/>` (e.g. `not-authorized`), or a
    /// description prefixed with `stream-error:` / `protocol:` when the server
    /// did something else.
    pub condition: String,
    /// Number of client messages sent before the failure (1 = after `<auth/>`).
    pub step: usize,
    pub element: Option<Element>,
}

enum Conn {
    Plain(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
    Gone,
}

struct XmlReader {
    parser: rxml::RawParser,
    builder: TreeBuilder,
    header_emitted: bool,
    queue: VecDeque<Incoming>,
}

impl XmlReader {
    fn new() -> Self {
        XmlReader {
            parser: rxml::RawParser::new(),
            builder: TreeBuilder::new(),
            header_emitted: false,
            queue: VecDeque::new(),
        }
    }

    fn feed(&mut self, mut data: &[u8]) -> Result<(), String> {
        loop {
            let before = data.len();
            match self.parser.parse(&mut data, false) {
                Ok(Some(ev)) => self.on_event(ev)?,
                Ok(None) => return Ok(()),
                Err(EndOrError::NeedMoreData) => {
                    if data.is_empty() {
                        return Ok(());
                    }
                    if data.len() == before {
                        return Err("XML parser made no progress".into());
                    }
                }
                Err(EndOrError::Error(e)) => return Err(format!("invalid XML from server: {e}")),
            }
        }
    }

    fn on_event(&mut self, ev: rxml::RawEvent) -> Result<(), String> {
        let head_close = matches!(ev, rxml::RawEvent::ElementHeadClose(_));
        let foot = matches!(ev, rxml::RawEvent::ElementFoot(_));
        self.builder
            .process_event(ev)
            .map_err(|e| format!("XML from server: {e}"))?;
        if head_close && !self.header_emitted && self.builder.depth() == 1 {
            self.header_emitted = true;
            let header = self.builder.top().expect("root").clone();
            self.queue.push_back(Incoming::Header(header));
        }
        if foot {
            match self.builder.depth() {
                1 => {
                    if let Some(el) = self.builder.unshift_child() {
                        self.queue.push_back(Incoming::Element(el));
                    }
                }
                0 => self.queue.push_back(Incoming::StreamEnd),
                _ => {}
            }
        }
        Ok(())
    }
}

/// Raw XMPP client.
pub struct RawClient {
    conn: Conn,
    reader: XmlReader,
    eof: bool,
    tls_config: Arc<ClientConfig>,
    /// Domain used in `to` of stream headers.
    pub domain: String,
    /// Default timeout for expected answers.
    pub timeout: Duration,
    received: Vec<u8>,
    /// The last stream header received.
    pub header: Option<Element>,
    /// Full JID after a successful bind.
    pub jid: Option<String>,
    /// The last `<stream:features/>` received by [`Self::open_stream`].
    pub features: Option<Element>,
    next_id: u64,
}

impl RawClient {
    /// Plain TCP connection (e.g. to the STARTTLS c2s port). `tls_config` is
    /// used by [`Self::starttls`].
    pub async fn connect(addr: SocketAddr, tls_config: Arc<ClientConfig>, domain: &str) -> Self {
        let tcp = TcpStream::connect(addr)
            .await
            .unwrap_or_else(|e| panic!("connect {addr}: {e}"));
        tcp.set_nodelay(true).ok();
        Self::from_conn(Conn::Plain(tcp), tls_config, domain)
    }

    /// Plain TCP connection from a chosen local address: on Linux every 127.x.y.z is a
    /// loopback address of its own, so tests can play several clients' IP addresses.
    pub async fn connect_from(
        addr: SocketAddr,
        local: std::net::IpAddr,
        tls_config: Arc<ClientConfig>,
        domain: &str,
    ) -> Self {
        let socket = tokio::net::TcpSocket::new_v4().expect("socket");
        socket
            .bind(SocketAddr::new(local, 0))
            .unwrap_or_else(|e| panic!("bind {local}: {e}"));
        let tcp = socket
            .connect(addr)
            .await
            .unwrap_or_else(|e| panic!("connect {addr} from {local}: {e}"));
        tcp.set_nodelay(true).ok();
        Self::from_conn(Conn::Plain(tcp), tls_config, domain)
    }

    /// TCP + immediate TLS handshake (XEP-0368 direct TLS).
    pub async fn connect_direct_tls(addr: SocketAddr, tls_config: Arc<ClientConfig>, domain: &str) -> Self {
        let tcp = TcpStream::connect(addr)
            .await
            .unwrap_or_else(|e| panic!("connect {addr}: {e}"));
        tcp.set_nodelay(true).ok();
        let tls = Self::handshake(tcp, tls_config.clone(), domain)
            .await
            .unwrap_or_else(|e| panic!("direct TLS handshake with {addr} failed: {e}"));
        Self::from_conn(Conn::Tls(Box::new(tls)), tls_config, domain)
    }

    async fn handshake(
        tcp: TcpStream,
        config: Arc<ClientConfig>,
        domain: &str,
    ) -> io::Result<TlsStream<TcpStream>> {
        let name = ServerName::try_from(domain.to_owned())
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
        TlsConnector::from(config).connect(name, tcp).await
    }

    fn from_conn(conn: Conn, tls_config: Arc<ClientConfig>, domain: &str) -> Self {
        RawClient {
            conn,
            reader: XmlReader::new(),
            eof: false,
            tls_config,
            domain: domain.to_owned(),
            timeout: TIMEOUT,
            received: Vec::new(),
            header: None,
            jid: None,
            features: None,
            next_id: 0,
        }
    }

    /// A fresh stanza id.
    pub fn id(&mut self) -> String {
        self.next_id += 1;
        format!("raw{}", self.next_id)
    }

    /// Everything received on this connection so far (lossy UTF-8), for messages.
    pub fn transcript(&self) -> String {
        let s = String::from_utf8_lossy(&self.received);
        if s.len() > 6000 {
            let mut start = s.len() - 6000;
            while !s.is_char_boundary(start) {
                start += 1;
            }
            format!("...{}", &s[start..])
        } else {
            s.into_owned()
        }
    }

    pub fn is_tls(&self) -> bool {
        matches!(self.conn, Conn::Tls(_))
    }

    /// RFC 9266 tls-exporter data of the current TLS connection.
    pub fn tls_exporter(&self) -> Option<Vec<u8>> {
        match &self.conn {
            Conn::Tls(t) => tls::tls_exporter(t),
            _ => None,
        }
    }

    /// RFC 5929 tls-server-end-point data of the current TLS connection.
    pub fn tls_server_end_point(&self) -> Option<Vec<u8>> {
        match &self.conn {
            Conn::Tls(t) => tls::tls_server_end_point(t),
            _ => None,
        }
    }

    /// Negotiated ALPN protocol, if any.
    pub fn alpn(&self) -> Option<Vec<u8>> {
        match &self.conn {
            Conn::Tls(t) => t.get_ref().1.alpn_protocol().map(|p| p.to_vec()),
            _ => None,
        }
    }

    /// Sends bytes; errors (e.g. the server already closed) are returned.
    pub async fn try_send(&mut self, data: impl AsRef<[u8]>) -> io::Result<()> {
        let data = data.as_ref();
        if trace() {
            eprintln!("C: {}", String::from_utf8_lossy(&data[..data.len().min(2000)]));
        }
        match &mut self.conn {
            Conn::Plain(s) => {
                s.write_all(data).await?;
                s.flush().await
            }
            Conn::Tls(s) => {
                s.write_all(data).await?;
                s.flush().await
            }
            Conn::Gone => Err(io::Error::new(io::ErrorKind::NotConnected, "gone")),
        }
    }

    /// Sends bytes, panicking on I/O errors.
    pub async fn send(&mut self, data: impl AsRef<[u8]>) {
        let data = data.as_ref();
        if let Err(e) = self.try_send(data).await {
            panic!(
                "sending {:?} failed: {e}\nreceived so far:\n{}",
                String::from_utf8_lossy(&data[..data.len().min(300)]),
                self.transcript()
            );
        }
    }

    /// Sends an element (serialised by minidom).
    pub async fn send_element(&mut self, el: &Element) {
        let s = xml::to_string(el);
        self.send(s).await;
    }

    async fn read_more(&mut self, deadline: Instant) -> Result<bool, String> {
        let mut buf = vec![0u8; 16384];
        let fut = async {
            match &mut self.conn {
                Conn::Plain(s) => s.read(&mut buf).await,
                Conn::Tls(s) => s.read(&mut buf).await,
                Conn::Gone => Ok(0),
            }
        };
        let n = match tokio::time::timeout_at(deadline, fut).await {
            Err(_) => return Ok(false),
            Ok(Ok(n)) => n,
            Ok(Err(e))
                if matches!(
                    e.kind(),
                    io::ErrorKind::ConnectionReset
                        | io::ErrorKind::UnexpectedEof
                        | io::ErrorKind::BrokenPipe
                        | io::ErrorKind::ConnectionAborted
                ) =>
            {
                0
            }
            Ok(Err(e)) => return Err(format!("read error: {e}")),
        };
        if n == 0 {
            if trace() {
                eprintln!("S: <connection closed>");
            }
            self.eof = true;
            return Ok(true);
        }
        if trace() {
            eprintln!("S: {}", String::from_utf8_lossy(&buf[..n]));
        }
        self.received.extend_from_slice(&buf[..n]);
        self.reader.feed(&buf[..n])?;
        Ok(true)
    }

    /// Next event within `d`; `None` on timeout. Panics if the server sends invalid XML.
    pub async fn next_within(&mut self, d: Duration) -> Option<Incoming> {
        let deadline = Instant::now() + d;
        loop {
            if let Some(ev) = self.reader.queue.pop_front() {
                if let Incoming::Header(h) = &ev {
                    self.header = Some(h.clone());
                }
                return Some(ev);
            }
            if self.eof {
                return Some(Incoming::Closed);
            }
            match self.read_more(deadline).await {
                Ok(true) => {}
                Ok(false) => return None,
                Err(e) => panic!("{e}\nreceived:\n{}", self.transcript()),
            }
        }
    }

    /// Next event; panics after the default timeout.
    pub async fn next(&mut self) -> Incoming {
        let t = self.timeout;
        match self.next_within(t).await {
            Some(ev) => ev,
            None => panic!(
                "nothing received from the server within {t:?}\nreceived so far:\n{}",
                self.transcript()
            ),
        }
    }

    /// Next top-level element; panics on timeout, stream end or close.
    pub async fn expect_element(&mut self) -> Element {
        loop {
            match self.next().await {
                Incoming::Element(e) => return e,
                Incoming::Header(_) => continue,
                other => panic!(
                    "expected an element, got {other:?}\nreceived:\n{}",
                    self.transcript()
                ),
            }
        }
    }

    /// Reads elements until one satisfies `pred` (others are skipped).
    pub async fn read_until(&mut self, mut pred: impl FnMut(&Element) -> bool) -> Element {
        let deadline = Instant::now() + self.timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.next_within(left).await {
                Some(Incoming::Element(e)) if pred(&e) => return e,
                Some(Incoming::Element(_)) | Some(Incoming::Header(_)) => continue,
                Some(other) => panic!(
                    "stream ended ({other:?}) before the expected element\nreceived:\n{}",
                    self.transcript()
                ),
                None => panic!(
                    "expected element not received within {:?}\nreceived:\n{}",
                    self.timeout,
                    self.transcript()
                ),
            }
        }
    }

    /// Asserts that no element arrives within `d` (stream end/close also fail).
    pub async fn expect_silence(&mut self, d: Duration) {
        if let Some(ev) = self.next_within(d).await {
            panic!(
                "expected nothing from the server, got {ev:?}\nreceived:\n{}",
                self.transcript()
            );
        }
    }

    /// Asserts that no element matching `pred` is queued or arrives within `window`.
    /// Every event in the window is inspected; the ones that do not match are kept, in
    /// order, for later reads. A stream end or close ends the window (nothing can follow).
    pub async fn expect_none(
        &mut self,
        window: Duration,
        what: &str,
        mut pred: impl FnMut(&Element) -> bool,
    ) {
        let deadline = Instant::now() + window;
        let mut kept = VecDeque::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let Some(ev) = self.next_within(left).await else {
                break;
            };
            if let Incoming::Element(e) = &ev
                && pred(e)
            {
                panic!(
                    "expected no {what} within {window:?}, got {}\nreceived:\n{}",
                    xml::to_string(e),
                    self.transcript()
                );
            }
            let ended = matches!(ev, Incoming::StreamEnd | Incoming::Closed);
            kept.push_back(ev);
            if ended {
                break;
            }
        }
        kept.extend(self.reader.queue.drain(..));
        self.reader.queue = kept;
    }

    /// Reads the server's stream header (skipping nothing else).
    pub async fn read_header(&mut self) -> Element {
        match self.next().await {
            Incoming::Header(h) => h,
            other => panic!(
                "expected a stream header, got {other:?}\nreceived:\n{}",
                self.transcript()
            ),
        }
    }

    /// Sends a standard c2s stream header to `self.domain`.
    pub async fn send_header(&mut self) {
        let h = format!(
            "<?xml version='1.0'?><stream:stream xmlns='jabber:client' xmlns:stream='{}' to='{}' version='1.0' xml:lang='en'>",
            ns::STREAM,
            self.domain
        );
        self.send(h).await;
    }

    /// Sends the stream header, reads the response header and the features.
    pub async fn open_stream(&mut self) -> Element {
        self.send_header().await;
        let header = self.read_header().await;
        assert_eq!(header.name(), "stream", "response header is not <stream:stream>");
        let features = self.expect_element().await;
        assert!(
            features.is("features", ns::STREAM),
            "expected <stream:features/>, got {}",
            xml::to_string(&features)
        );
        self.features = Some(features.clone());
        features
    }

    /// Resets the parser and opens a new stream (after SASL success or TLS).
    pub async fn restart_stream(&mut self) -> Element {
        self.reader = XmlReader::new();
        self.open_stream().await
    }

    /// STARTTLS (RFC 6120 §5.4): `<starttls/>`, `<proceed/>`, TLS handshake
    /// trusting only the test certificate, stream restart. Returns the new features.
    pub async fn starttls(&mut self) -> Element {
        self.send(format!("<starttls xmlns='{}'/>", ns::TLS)).await;
        let el = self.expect_element().await;
        assert!(
            el.is("proceed", ns::TLS),
            "expected <proceed/>, got {}",
            xml::to_string(&el)
        );
        self.upgrade_tls().await;
        self.restart_stream().await
    }

    /// TLS handshake on the current TCP connection (after `<proceed/>`).
    pub async fn upgrade_tls(&mut self) {
        let conn = std::mem::replace(&mut self.conn, Conn::Gone);
        let Conn::Plain(tcp) = conn else {
            panic!("upgrade_tls on a non-plain connection")
        };
        let tls = Self::handshake(tcp, self.tls_config.clone(), &self.domain)
            .await
            .unwrap_or_else(|e| panic!("TLS handshake after <proceed/> failed: {e}"));
        self.conn = Conn::Tls(Box::new(tls));
        self.reader = XmlReader::new();
        self.eof = false;
    }

    /// Waits for a stream error (skipping other elements), then for the stream
    /// footer and connection close (each within the timeout).
    pub async fn expect_stream_error(&mut self) -> StreamErrorInfo {
        let deadline = Instant::now() + self.timeout;
        let element = loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.next_within(left).await {
                Some(Incoming::Element(e)) if e.is("error", ns::STREAM) => break e,
                Some(Incoming::Element(_)) | Some(Incoming::Header(_)) => continue,
                Some(other) => panic!(
                    "expected a stream error, got {other:?} first\nreceived:\n{}",
                    self.transcript()
                ),
                None => panic!(
                    "no stream error within {:?}\nreceived:\n{}",
                    self.timeout,
                    self.transcript()
                ),
            }
        };
        let condition = xml::stream_error_condition(&element).unwrap_or_else(|| {
            panic!(
                "stream error without a defined condition: {}",
                xml::to_string(&element)
            )
        });
        let mut footer_received = false;
        let mut connection_closed = false;
        let deadline = Instant::now() + self.timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.next_within(left).await {
                Some(Incoming::StreamEnd) => footer_received = true,
                Some(Incoming::Closed) => {
                    connection_closed = true;
                    break;
                }
                Some(Incoming::Element(e)) => panic!(
                    "element after the stream error: {}\nreceived:\n{}",
                    xml::to_string(&e),
                    self.transcript()
                ),
                Some(Incoming::Header(_)) => {}
                None => break,
            }
            if footer_received && !connection_closed {
                // Give the server a moment to close TCP too.
                if let Some(Incoming::Closed) = self.next_within(Duration::from_secs(3)).await {
                    connection_closed = true;
                }
                break;
            }
        }
        StreamErrorInfo {
            condition,
            element,
            header: self.header.clone(),
            footer_received,
            connection_closed,
        }
    }

    /// Expects the stream to end (`</stream:stream>`) and/or the connection to
    /// close, with no element before. Returns whether the footer was seen.
    pub async fn expect_closed(&mut self) -> bool {
        let mut footer = false;
        loop {
            match self.next().await {
                Incoming::StreamEnd => footer = true,
                Incoming::Closed => return footer,
                other => panic!(
                    "expected the stream to close, got {other:?}\nreceived:\n{}",
                    self.transcript()
                ),
            }
        }
    }

    /// Sends `<auth/>` with the given mechanism and optional initial response
    /// (`None` = no text, `Some("")` = `=`).
    pub async fn send_auth(&mut self, mechanism: &str, initial: Option<&[u8]>) {
        let body = match initial {
            None => String::new(),
            Some([]) => "=".into(),
            Some(d) => B64.encode(d),
        };
        self.send(format!(
            "<auth xmlns='{}' mechanism='{}'>{}</auth>",
            ns::SASL,
            mechanism,
            body
        ))
        .await;
    }

    /// Reads the next SASL element (challenge/success/failure).
    async fn sasl_element(&mut self, step: usize) -> Result<Element, SaslFailure> {
        loop {
            match self.next().await {
                Incoming::Element(e) if e.ns() == ns::SASL => return Ok(e),
                Incoming::Element(e) if e.is("error", ns::STREAM) => {
                    return Err(SaslFailure {
                        condition: format!(
                            "stream-error:{}",
                            xml::stream_error_condition(&e).unwrap_or_default()
                        ),
                        step,
                        element: Some(e),
                    });
                }
                Incoming::Element(e) => {
                    return Err(SaslFailure {
                        condition: format!("protocol:unexpected <{}/>", e.name()),
                        step,
                        element: Some(e),
                    });
                }
                Incoming::Header(_) => continue,
                other => {
                    return Err(SaslFailure {
                        condition: format!("protocol:stream ended ({other:?})"),
                        step,
                        element: None,
                    });
                }
            }
        }
    }

    fn failure_of(e: Element, step: usize) -> SaslFailure {
        let condition = e
            .children()
            .find(|c| c.ns() == ns::SASL && c.name() != "text")
            .map(|c| c.name().to_owned())
            .unwrap_or_else(|| "protocol:failure without condition".into());
        SaslFailure {
            condition,
            step,
            element: Some(e),
        }
    }

    /// SASL PLAIN (RFC 4616) with an empty authzid.
    pub async fn sasl_plain(&mut self, user: &str, password: &str) -> Result<(), SaslFailure> {
        let msg = format!("\0{user}\0{password}");
        self.send_auth("PLAIN", Some(msg.as_bytes())).await;
        let e = self.sasl_element(1).await?;
        match e.name() {
            "success" => Ok(()),
            "failure" => Err(Self::failure_of(e, 1)),
            _ => Err(SaslFailure {
                condition: format!("protocol:unexpected <{}/> after PLAIN", e.name()),
                step: 1,
                element: Some(e),
            }),
        }
    }

    /// Full SCRAM exchange over raw XML, with the given hash and GS2 channel
    /// binding flag (`ChannelBindingMode::None` = `n,,` like Pidgin). Verifies
    /// the server signature.
    pub async fn sasl_scram(
        &mut self,
        user: &str,
        password: &str,
        hash: ScramHash,
        binding: ChannelBindingMode,
    ) -> Result<(), SaslFailure> {
        let mut scram = ScramClient::new(hash, user, password, binding);
        let first = scram.client_first();
        self.send_auth(&scram.mechanism(), Some(first.as_bytes())).await;
        let e = self.sasl_element(1).await?;
        let server_first = match e.name() {
            "challenge" => decode_sasl_text(&e, 1)?,
            "failure" => return Err(Self::failure_of(e, 1)),
            other => {
                return Err(SaslFailure {
                    condition: format!("protocol:unexpected <{other}/> after client-first"),
                    step: 1,
                    element: Some(e),
                });
            }
        };
        let fin = scram.client_final(&server_first).map_err(|m| SaslFailure {
            condition: format!("protocol:{m}"),
            step: 1,
            element: None,
        })?;
        self.send(format!(
            "<response xmlns='{}'>{}</response>",
            ns::SASL,
            B64.encode(fin)
        ))
        .await;
        let e = self.sasl_element(2).await?;
        match e.name() {
            "success" => {
                let data = decode_sasl_text(&e, 2)?;
                scram.verify_server_final(&data).map_err(|m| SaslFailure {
                    condition: format!("protocol:{m}"),
                    step: 2,
                    element: Some(e.clone()),
                })
            }
            "challenge" => {
                // Server-final in a challenge: answer with an empty response.
                let data = decode_sasl_text(&e, 2)?;
                scram.verify_server_final(&data).map_err(|m| SaslFailure {
                    condition: format!("protocol:{m}"),
                    step: 2,
                    element: Some(e.clone()),
                })?;
                self.send(format!("<response xmlns='{}'/>", ns::SASL)).await;
                let e = self.sasl_element(3).await?;
                match e.name() {
                    "success" => Ok(()),
                    "failure" => Err(Self::failure_of(e, 3)),
                    other => Err(SaslFailure {
                        condition: format!("protocol:unexpected <{other}/>"),
                        step: 3,
                        element: Some(e),
                    }),
                }
            }
            "failure" => Err(Self::failure_of(e, 2)),
            other => Err(SaslFailure {
                condition: format!("protocol:unexpected <{other}/> after client-final"),
                step: 2,
                element: Some(e),
            }),
        }
    }

    /// Resource binding (RFC 6120 §7). Returns the bound full JID, or the
    /// error IQ (serialised) on failure.
    pub async fn bind(&mut self, resource: Option<&str>) -> Result<String, String> {
        let id = self.id();
        let inner = match resource {
            Some(r) => format!(
                "<bind xmlns='{}'><resource>{}</resource></bind>",
                ns::BIND,
                xml::escape(r)
            ),
            None => format!("<bind xmlns='{}'/>", ns::BIND),
        };
        self.send(format!("<iq type='set' id='{id}'>{inner}</iq>")).await;
        let resp = self
            .read_until(|e| e.name() == "iq" && e.attr("id") == Some(id.as_str()))
            .await;
        match resp.attr("type") {
            Some("result") => {
                let jid = resp
                    .get_child("bind", ns::BIND)
                    .and_then(|b| b.get_child("jid", ns::BIND))
                    .map(|j| j.text())
                    .ok_or_else(|| format!("bind result without <jid/>: {}", xml::to_string(&resp)))?;
                self.jid = Some(jid.clone());
                Ok(jid)
            }
            _ => Err(xml::to_string(&resp)),
        }
    }

    /// Sends an IQ given as XML (its `id` attribute is used to match the
    /// response) and returns the response IQ, skipping other elements.
    pub async fn iq(&mut self, iq_xml: &str) -> Element {
        let el: Element = xml::parse_client(iq_xml);
        let id = el
            .attr("id")
            .expect("iq passed to RawClient::iq needs an id")
            .to_owned();
        self.send(iq_xml).await;
        self.read_until(|e| {
            e.name() == "iq"
                && e.attr("id") == Some(id.as_str())
                && matches!(e.attr("type"), Some("result") | Some("error"))
        })
        .await
    }

    /// Sends `</stream:stream>`.
    pub async fn close_stream(&mut self) {
        let _ = self.try_send("</stream:stream>").await;
    }
}

#[allow(clippy::result_large_err)]
fn decode_sasl_text(e: &Element, step: usize) -> Result<String, SaslFailure> {
    let t = e.text();
    let t = t.trim();
    if t.is_empty() || t == "=" {
        return Ok(String::new());
    }
    let bytes = B64.decode(t).map_err(|err| SaslFailure {
        condition: format!("protocol:server sent invalid base64 ({err})"),
        step,
        element: Some(e.clone()),
    })?;
    String::from_utf8(bytes).map_err(|_| SaslFailure {
        condition: "protocol:server sent non-UTF-8 SCRAM data".into(),
        step,
        element: Some(e.clone()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reader_splits_stream() {
        let mut r = XmlReader::new();
        let data = b"<?xml version='1.0'?><stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' id='x' from='localhost' version='1.0'><stream:features><starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'><required/></starttls></stream:features> <message to='a@b'><body>hi</body></message></stream:stream>";
        // feed byte by byte to exercise incremental parsing
        for b in data.iter() {
            r.feed(std::slice::from_ref(b)).unwrap();
        }
        let evs: Vec<Incoming> = r.queue.drain(..).collect();
        assert_eq!(evs.len(), 4, "{evs:?}");
        match &evs[0] {
            Incoming::Header(h) => {
                assert_eq!(h.attr("id"), Some("x"));
                assert_eq!(h.ns(), ns::STREAM);
            }
            e => panic!("{e:?}"),
        }
        match &evs[1] {
            Incoming::Element(f) => {
                assert!(f.is("features", ns::STREAM));
                assert!(f.get_child("starttls", ns::TLS).is_some());
            }
            e => panic!("{e:?}"),
        }
        match &evs[2] {
            Incoming::Element(m) => {
                assert!(m.is("message", ns::CLIENT));
                assert_eq!(m.get_child("body", ns::CLIENT).unwrap().text(), "hi");
            }
            e => panic!("{e:?}"),
        }
        assert!(matches!(evs[3], Incoming::StreamEnd));
    }

    #[test]
    fn reader_rejects_garbage() {
        let mut r = XmlReader::new();
        assert!(r.feed(b"<stream:stream xmlns:stream='s'><a></b>").is_err());
    }
}
