//! RFC 7395: XMPP over WebSocket at `/xmpp-websocket`. The upgrade checks the `xmpp`
//! subprotocol, the Origin allow-list and the connection limits; the connection is then a
//! [`WsTransport`], negotiated and attached to its session like a TCP stream.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Extension;
use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use futures::SinkExt;
use jid::FullJid;
use minidom::Element;
use tracing::Instrument;

use crate::c2s::negotiate::{self, Rules};
use crate::c2s::session::Session;
use crate::c2s::stream::ReadError;
use crate::c2s::transport::Transport;
use crate::error::{StreamError, StreamErrorCondition};
use crate::limits::ConnectionSlot;
use crate::sasl::ChannelBindings;
use crate::server::Server;
use crate::session::SharedStanza;
use crate::tls::TlsContext;
use crate::web::WebListener;
use crate::web::frame::{self, Frame, FrameParser};
use crate::xml::{ParserLimits, StreamEvent};

pub const PATH: &str = "/xmpp-websocket";

/// The subprotocol RFC 7395 §3.1 registers.
const SUBPROTOCOL: &str = "xmpp";

/// Close codes (RFC 6455 §7.4.1).
const CLOSE_NORMAL: u16 = 1000;
const CLOSE_UNSUPPORTED: u16 = 1003;
const CLOSE_TOO_BIG: u16 = 1009;

/// How long one write may block on a client that does not read (as over TCP).
const WRITE_TIMEOUT: Duration = Duration::from_secs(30);

/// Socket read buffer: tungstenite's default (128 KiB, allocated up front) would be most of
/// an idle session's memory; messages larger than this still arrive whole.
const READ_BUFFER: usize = 4096;

/// `GET /xmpp-websocket`: the upgrade.
pub async fn upgrade(
    State(server): State<Arc<Server>>,
    Extension(listener): Extension<Arc<WebListener>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    ws: WebSocketUpgrade,
) -> Response {
    if !ws.requested_protocols().any(|p| {
        p.to_str()
            .is_ok_and(|p| p.trim().eq_ignore_ascii_case(SUBPROTOCOL))
    }) {
        return (
            StatusCode::BAD_REQUEST,
            "the xmpp WebSocket subprotocol is required (RFC 7395 §3.1)\n",
        )
            .into_response();
    }
    if let Some(origin) = headers.get(header::ORIGIN) {
        let config = server.config();
        let allowed = &config.web.origins;
        if !allowed.is_empty() && !allowed.iter().any(|a| a.as_bytes() == origin.as_bytes()) {
            tracing::info!(%peer, origin = ?origin, "WebSocket refused: origin not allowed");
            return (StatusCode::FORBIDDEN, "origin not allowed\n").into_response();
        }
    }
    let ip = listener.client_ip(peer, &headers);
    let slot = match server.connections.acquire(ip) {
        Ok(slot) => slot,
        Err(refusal) => {
            tracing::warn!(%ip, ?refusal, "WebSocket refused: too many connections");
            return (StatusCode::SERVICE_UNAVAILABLE, "too many connections\n").into_response();
        }
    };
    // The largest message is the largest stanza; the parser applies the smaller limit
    // before authentication.
    let max = server.config().limits.max_stanza_size;
    let span = tracing::info_span!("c2s", transport = "websocket", %ip, jid = tracing::field::Empty);
    ws.protocols([SUBPROTOCOL])
        .max_message_size(max)
        .max_frame_size(max)
        .read_buffer_size(READ_BUFFER)
        .on_upgrade(move |socket| serve(server, listener, socket, ip, slot).instrument(span))
}

/// Serves one WebSocket connection until it ends.
async fn serve(
    server: Arc<Server>,
    listener: Arc<WebListener>,
    socket: WebSocket,
    ip: std::net::IpAddr,
    mut slot: ConnectionSlot,
) {
    let _done = listener.done.clone();
    let (total, idle) = {
        let limits = &server.config().limits;
        (
            Duration::from_secs(limits.negotiation_timeout_secs),
            Duration::from_secs(limits.negotiation_idle_secs),
        )
    };
    let tls = server.tls.load_full();
    let transport = WsTransport::new(socket, &server, listener.secure());
    let conn_id = server.sessions.next_conn_id();
    let rules = Rules {
        require_encryption: listener.require_encryption,
        total,
        idle,
    };
    let negotiation = negotiate::negotiate(&server, &tls, transport, ip, conn_id, rules, &mut slot);
    let Some(bound) = Box::pin(negotiation).await else {
        return;
    };
    drop(tls);
    let negotiate::Bound { stream, session } = bound;
    let session = match session {
        negotiate::BoundSession::New(jid, link) => Session::open(server, jid, link, listener.index).await,
        negotiate::BoundSession::Resumed(session) => *session,
    };
    crate::c2s::session::run(session, stream, listener.shutdown.clone()).await;
}

/// One RFC 7395 stream over a WebSocket.
pub struct WsTransport {
    socket: WebSocket,
    limits: ParserLimits,
    parser: FrameParser,
    /// Messages queued for the next flush: one per element.
    out: Vec<Message>,
    /// Whether our `<open/>` went out for the current stream (errors need one first).
    opened: bool,
    domain: String,
    bytes_read: u64,
    event_timeout: Option<Duration>,
    secure: bool,
    /// A WebSocket ping awaits its pong.
    pinging: bool,
    /// Where clients are sent instead (`web.websocket_see_other_uri`).
    see_other_uri: Option<String>,
    /// The close frame's code and reason when the stream fails: set by the read errors
    /// that have their own WebSocket code (a binary message, one over the size limit).
    close: (u16, &'static str),
}

impl WsTransport {
    fn new(socket: WebSocket, server: &Server, secure: bool) -> WsTransport {
        let limits = negotiate::preauth_limits(server);
        WsTransport {
            socket,
            limits,
            parser: FrameParser::new(limits),
            out: Vec::new(),
            opened: false,
            domain: server.default_domain().to_string(),
            bytes_read: 0,
            event_timeout: None,
            secure,
            pinging: false,
            see_other_uri: server.config().web.websocket_see_other_uri.clone(),
            close: (CLOSE_NORMAL, ""),
        }
    }

    async fn read_event(&mut self) -> Result<StreamEvent, ReadError> {
        loop {
            let message = match self.socket.recv().await {
                None => return Err(ReadError::Io),
                Some(Ok(m)) => m,
                Some(Err(e)) => return Err(self.read_error(e)),
            };
            match message {
                Message::Text(text) => {
                    self.bytes_read += text.len() as u64;
                    return match self.parser.parse(text.as_str()).map_err(ReadError::Stream)? {
                        Frame::Element(el) => Ok(StreamEvent::Element(el)),
                        Frame::Close => Ok(StreamEvent::Closed),
                        Frame::Open(header) => {
                            if let Some(uri) = self.see_other_uri.take() {
                                tracing::debug!(%uri, "WebSocket client sent elsewhere");
                                self.out.push(text_message(&frame::close(Some(&uri))));
                                self.close_socket(CLOSE_NORMAL, "").await;
                                return Err(ReadError::Io);
                            }
                            Ok(StreamEvent::Header(header))
                        }
                    };
                }
                Message::Binary(data) => {
                    self.bytes_read += data.len() as u64;
                    self.close = (CLOSE_UNSUPPORTED, "text messages only");
                    return Err(ReadError::Stream(StreamError::with_text(
                        StreamErrorCondition::BadFormat,
                        "XMPP over WebSocket uses text messages only (RFC 7395 §3.2)",
                    )));
                }
                Message::Pong(_) if self.pinging => {
                    self.pinging = false;
                    return Ok(StreamEvent::Alive);
                }
                // Pings are answered by the WebSocket layer; unsolicited pongs mean nothing.
                Message::Ping(_) | Message::Pong(_) => {}
                // The client closed the WebSocket without `<close/>`: the stream ends too.
                Message::Close(_) => return Ok(StreamEvent::Closed),
            }
        }
    }

    /// A receive error as a stream error: a message over the size limit gets one, a broken
    /// connection nothing.
    fn read_error(&mut self, e: axum::Error) -> ReadError {
        match e.into_inner().downcast_ref::<tungstenite::Error>() {
            Some(tungstenite::Error::Capacity(_)) => {
                self.close = (CLOSE_TOO_BIG, "message too big");
                ReadError::Stream(StreamError::with_text(
                    StreamErrorCondition::PolicyViolation,
                    format!("message larger than {} bytes", self.limits.max_stanza_bytes),
                ))
            }
            _ => ReadError::Io,
        }
    }

    /// Sends what is queued, then a WebSocket close frame.
    async fn close_socket(&mut self, code: u16, reason: &str) {
        self.out.push(Message::Close(Some(CloseFrame {
            code,
            reason: reason.into(),
        })));
        let _ = Transport::flush(self).await;
    }
}

fn text_message(el: &Element) -> Message {
    let mut out = Vec::with_capacity(256);
    if let Err(e) = crate::xml::write::write_element(el, &mut out) {
        tracing::error!(error = %e, element = el.name(), "could not serialize an outgoing element");
    }
    // The serializer writes UTF-8 only.
    Message::Text(String::from_utf8(out).unwrap_or_default().into())
}

impl Transport for WsTransport {
    async fn next_event(&mut self) -> Result<StreamEvent, ReadError> {
        crate::c2s::stream::read_within(self.event_timeout, self.read_event()).await
    }

    fn take_bytes_read(&mut self) -> u64 {
        std::mem::take(&mut self.bytes_read)
    }

    fn set_event_timeout(&mut self, timeout: Option<Duration>) {
        self.event_timeout = timeout;
    }

    fn set_domain(&mut self, domain: &str) {
        domain.clone_into(&mut self.domain);
    }

    fn restart(&mut self, limits: ParserLimits) {
        self.limits = limits;
        self.parser.set_limits(limits);
        self.opened = false;
    }

    fn set_limits(&mut self, limits: ParserLimits) {
        self.limits = limits;
    }

    fn open(&mut self, to: Option<&str>) {
        let id = crate::c2s::stream::new_stream_id();
        self.out
            .push(text_message(&frame::our_open(&self.domain, &id, to)));
        self.opened = true;
    }

    fn queue_features(&mut self, features: &Element) {
        // With the `stream` prefix, as over TCP: some clients match the qualified name.
        let mut out = Vec::with_capacity(512);
        out.extend_from_slice(b"<stream:features xmlns:stream='http://etherx.jabber.org/streams'>");
        for child in features.children() {
            let _ = crate::xml::write::write_element(child, &mut out);
        }
        out.extend_from_slice(b"</stream:features>");
        self.out
            .push(Message::Text(String::from_utf8(out).unwrap_or_default().into()));
    }

    fn queue(&mut self, el: &Element) {
        self.out.push(text_message(el));
    }

    fn queue_shared(&mut self, stanza: &SharedStanza, to: &str) {
        let (head, tail) = stanza.parts();
        let mut text = String::with_capacity(head.len() + to.len() + tail.len());
        text.push_str(head);
        text.push_str(to);
        text.push_str(tail);
        self.out.push(Message::Text(text.into()));
    }

    fn discard_queued(&mut self) {
        self.out.clear();
    }

    async fn flush(&mut self) -> std::io::Result<()> {
        if self.out.is_empty() {
            return Ok(());
        }
        let messages = std::mem::take(&mut self.out);
        let socket = &mut self.socket;
        let write = async move {
            for m in messages {
                socket.feed(m).await?;
            }
            socket.flush().await
        };
        match tokio::time::timeout(WRITE_TIMEOUT, write).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(std::io::Error::other(e)),
            Err(_) => {
                crate::metrics::write_timeout_disconnect();
                Err(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    "client stopped reading",
                ))
            }
        }
    }

    async fn fail(&mut self, error: &StreamError) {
        if !self.opened {
            self.open(None);
        }
        // Each message stands alone, so the error declares the `stream` prefix itself.
        let xml = error.to_xml().replacen(
            "<stream:error>",
            "<stream:error xmlns:stream='http://etherx.jabber.org/streams'>",
            1,
        );
        self.out.push(Message::Text(xml.into()));
        self.out.push(text_message(&frame::close(None)));
        let (code, reason) = self.close;
        self.close_socket(code, reason).await;
    }

    async fn close(&mut self) {
        self.out.push(text_message(&frame::close(None)));
        self.close_socket(CLOSE_NORMAL, "").await;
    }

    fn queue_keepalive_ping(&mut self, _to: &FullJid, id: &str) {
        self.out.push(Message::Ping(id.as_bytes().to_vec().into()));
        self.pinging = true;
    }

    fn kind(&self) -> &'static str {
        "websocket"
    }

    fn is_secure(&self) -> bool {
        self.secure
    }

    fn channel_bindings(&self, _tls: &TlsContext) -> ChannelBindings {
        // TLS, when there is any, ends in the proxy: nothing to bind to.
        ChannelBindings::default()
    }
}
