//! One client connection as an XML stream: the socket (plain or TLS), the parser, and the
//! write buffer. Reading is cancel-safe, so the session loop can `select!` on it.

use std::collections::VecDeque;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use futures::FutureExt;
use minidom::Element;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::server::TlsStream;

use crate::error::{StreamError, StreamErrorCondition};
use crate::session::SharedStanza;
use crate::xml::{self, ParserLimits, StreamEvent, StreamParser};

/// A client socket before or after TLS.
pub enum Conn {
    Plain(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
}

impl Conn {
    pub fn is_tls(&self) -> bool {
        matches!(self, Conn::Tls(_))
    }
}

impl AsyncRead for Conn {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Conn::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Conn::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Conn {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
        match self.get_mut() {
            Conn::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Conn::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Conn::Plain(s) => Pin::new(s).poll_flush(cx),
            Conn::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Conn::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Conn::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}

/// Why reading stopped.
#[derive(Debug)]
pub enum ReadError {
    /// The client broke the protocol: send this stream error.
    Stream(StreamError),
    /// The socket closed or failed: nothing more can be sent.
    Io,
}

/// The most one socket read takes in.
const READ_CHUNK: usize = 4096;

/// How long one write may block on a client that does not read.
const WRITE_TIMEOUT: Duration = Duration::from_secs(30);

pub struct XmppStream {
    conn: Conn,
    parser: StreamParser,
    /// Empty (no allocation) between reads: see `read_chunk`.
    read_buf: Vec<u8>,
    events: VecDeque<StreamEvent>,
    out: Vec<u8>,
    /// Whether our stream header went out for the current stream (errors need one first).
    pub header_sent: bool,
    /// Stream id of the current stream.
    pub stream_id: String,
    /// Domain to put in a header sent only to carry an error.
    pub domain: String,
    /// Bytes read from the socket since [`XmppStream::take_bytes_read`] last ran.
    bytes_read: u64,
    /// During negotiation: how long the client may take to complete its next header or
    /// element before the stream ends with `connection-timeout`.
    event_timeout: Option<Duration>,
}

impl XmppStream {
    pub fn new(conn: Conn, limits: ParserLimits, domain: String) -> Self {
        XmppStream {
            conn,
            parser: StreamParser::new(limits),
            read_buf: Vec::new(),
            events: VecDeque::new(),
            out: Vec::new(),
            header_sent: false,
            stream_id: String::new(),
            domain,
            bytes_read: 0,
            event_timeout: None,
        }
    }

    /// Sets (or with `None` lifts) the time allowed for each header or element.
    pub fn set_event_timeout(&mut self, timeout: Option<Duration>) {
        self.event_timeout = timeout;
    }

    pub fn conn(&self) -> &Conn {
        &self.conn
    }

    /// Takes the socket back (for the STARTTLS upgrade).
    pub fn into_conn(self) -> Conn {
        self.conn
    }

    /// Begins a new stream on the same socket (after TLS or SASL, RFC 6120 §4.3.3).
    pub fn restart(&mut self, limits: ParserLimits) {
        self.parser = StreamParser::new(limits);
        self.events.clear();
        self.header_sent = false;
    }

    pub fn set_limits(&mut self, limits: ParserLimits) {
        self.parser.set_limits(limits);
    }

    /// The next header, element or close. Cancel-safe.
    pub async fn next_event(&mut self) -> Result<StreamEvent, ReadError> {
        read_within(self.event_timeout, self.read_event()).await
    }

    async fn read_event(&mut self) -> Result<StreamEvent, ReadError> {
        let mut parsed = Vec::new();
        loop {
            if let Some(ev) = self.events.pop_front() {
                return Ok(ev);
            }
            self.read_chunk().await?;
            if self.read_buf.is_empty() {
                return Err(ReadError::Io);
            }
            self.bytes_read += self.read_buf.len() as u64;
            let fed = self.parser.feed(&self.read_buf, &mut parsed);
            self.read_buf = Vec::new();
            fed.map_err(ReadError::Stream)?;
            self.events.extend(parsed.drain(..));
        }
    }

    /// Reads what the client sent into `read_buf` (left empty at end of stream), waiting
    /// without holding a buffer: most sessions are idle most of the time, and a read buffer
    /// parked in each of them was a fifth of an idle session's memory. Plain sockets wait for
    /// readiness; TLS waits for one byte of plaintext, then takes what else rustls already
    /// decrypted. Cancel-safe: only the wait awaits, and it consumes nothing.
    async fn read_chunk(&mut self) -> Result<(), ReadError> {
        loop {
            let first = match &mut self.conn {
                Conn::Plain(tcp) => {
                    tcp.readable().await.map_err(|_| ReadError::Io)?;
                    None
                }
                Conn::Tls(_) => {
                    let mut one = [0u8; 1];
                    if self.conn.read(&mut one).await.map_err(|_| ReadError::Io)? == 0 {
                        return Ok(());
                    }
                    Some(one[0])
                }
            };
            self.read_buf.reserve_exact(READ_CHUNK);
            match (&mut self.conn, first) {
                (Conn::Plain(tcp), _) => match tcp.try_read_buf(&mut self.read_buf) {
                    Ok(_) => return Ok(()),
                    // A spurious wake-up: wait again, without the buffer.
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => self.read_buf = Vec::new(),
                    Err(_) => return Err(ReadError::Io),
                },
                (conn, first) => {
                    self.read_buf.extend(first);
                    match conn.read_buf(&mut self.read_buf).now_or_never() {
                        None | Some(Ok(_)) => return Ok(()),
                        Some(Err(_)) => return Err(ReadError::Io),
                    }
                }
            }
        }
    }

    /// Bytes read since the last call (what the rate limit charges).
    pub fn take_bytes_read(&mut self) -> u64 {
        std::mem::take(&mut self.bytes_read)
    }

    /// Drops what was queued and not yet flushed (an answer that must not go out after all).
    pub fn discard_queued(&mut self) {
        self.out.clear();
    }

    /// Buffers raw XML for the next flush.
    pub(super) fn queue_raw(&mut self, data: &str) {
        self.out.extend_from_slice(data.as_bytes());
    }

    /// Buffers one copy of a stanza serialized once for many sessions, with `to` (already
    /// escaped, `session::attr_value`) filled in.
    pub fn queue_shared(&mut self, stanza: &SharedStanza, to: &str) {
        let (head, tail) = stanza.parts();
        self.out.reserve(head.len() + to.len() + tail.len());
        self.out.extend_from_slice(head.as_bytes());
        self.out.extend_from_slice(to.as_bytes());
        self.out.extend_from_slice(tail.as_bytes());
    }

    /// Buffers an element for the next flush.
    pub fn queue(&mut self, el: &Element) {
        if let Err(e) = crate::xml::write::write_element(el, &mut self.out) {
            tracing::error!(error = %e, element = el.name(), "could not serialize an outgoing element");
        }
    }

    pub fn queued_bytes(&self) -> usize {
        self.out.len()
    }

    /// Writes what is buffered.
    pub async fn flush(&mut self) -> std::io::Result<()> {
        if self.out.is_empty() {
            return Ok(());
        }
        let write = async {
            self.conn.write_all(&self.out).await?;
            self.conn.flush().await
        };
        let result = match tokio::time::timeout(WRITE_TIMEOUT, write).await {
            Ok(r) => r,
            Err(_) => {
                crate::metrics::write_timeout_disconnect();
                Err(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    "client stopped reading",
                ))
            }
        };
        self.out.clear();
        if self.out.capacity() > 16 * 1024 {
            self.out = Vec::new();
        }
        result
    }

    /// Sends one element now.
    pub async fn send(&mut self, el: &Element) -> std::io::Result<()> {
        self.queue(el);
        self.flush().await
    }

    /// Queues our stream header (RFC 6120 §4.7) for the current stream.
    pub(super) fn queue_header(&mut self, to: Option<&str>) {
        self.stream_id = new_stream_id();
        let mut header = String::with_capacity(256);
        header.push_str("<?xml version='1.0'?><stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' id='");
        header.push_str(&self.stream_id);
        header.push_str("' from='");
        header.push_str(&xml::escape(&self.domain));
        if let Some(to) = to {
            header.push_str("' to='");
            header.push_str(&xml::escape(to));
        }
        header.push_str("' version='1.0' xml:lang='en'>");
        self.queue_raw(&header);
        self.header_sent = true;
    }

    /// Sends a stream error and closes the stream (RFC 6120 §4.9.1.1).
    pub async fn fail(&mut self, error: &StreamError) {
        if !self.header_sent {
            self.queue_header(None);
        }
        self.queue_raw(&error.to_xml());
        self.close().await;
    }

    /// Sends `</stream:stream>` and shuts the socket down.
    pub async fn close(&mut self) {
        self.queue_raw("</stream:stream>");
        let _ = self.flush().await;
        let _ = tokio::time::timeout(Duration::from_secs(2), self.conn.shutdown()).await;
    }
}

pub fn new_stream_id() -> String {
    use rand::Rng;
    let bytes: [u8; 12] = rand::rng().random();
    hex::encode(bytes)
}

/// `read` bounded by the transport's event timeout (`None`: unbounded); past it, the
/// `connection-timeout` stream error. Shared by every transport
/// (TCP/TLS here, WebSocket, BOSH).
pub async fn read_within(
    limit: Option<Duration>,
    read: impl Future<Output = Result<StreamEvent, ReadError>>,
) -> Result<StreamEvent, ReadError> {
    let Some(limit) = limit else {
        return read.await;
    };
    match tokio::time::timeout(limit, read).await {
        Ok(result) => result,
        Err(_) => Err(ReadError::Stream(StreamError::with_text(
            StreamErrorCondition::ConnectionTimeout,
            "nothing received in time",
        ))),
    }
}
