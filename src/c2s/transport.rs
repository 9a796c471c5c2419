//! The framing a client connection speaks, apart from what the session does with it.
//!
//! A transport carries one XML stream: it opens it (an RFC 6120 stream header, or the
//! RFC 7395 `<open/>` of WebSocket), announces features, reads and writes one stanza at a
//! time, and closes it (with or without a stream error). Negotiation and the session loop
//! only speak through this trait, so another transport plugs in without either of them
//! knowing. The TCP/TLS implementation is [`XmppStream`] (`c2s/stream.rs`); RFC 7395
//! WebSocket is `web::websocket::WsTransport`.

use std::future::Future;
use std::time::Duration;

use jid::FullJid;
use minidom::Element;
use tokio_rustls::TlsAcceptor;

use crate::c2s::stream::{Conn, ReadError, XmppStream};
use crate::error::StreamError;
use crate::sasl::ChannelBindings;
use crate::session::SharedStanza;
use crate::tls::TlsContext;
use crate::xml::{ParserLimits, StreamEvent};

/// One client stream's framing. Methods that queue only buffer; [`Transport::flush`] writes.
pub trait Transport: Send {
    /// The next stream header, element or close. Cancel-safe (the session loop selects on it).
    fn next_event(&mut self) -> impl Future<Output = Result<StreamEvent, ReadError>> + Send;

    /// Bytes received since the last call (what the rate limit charges).
    fn take_bytes_read(&mut self) -> u64;

    /// During negotiation: how long the client may take for its next header or element
    /// (`None`: no limit).
    fn set_event_timeout(&mut self, timeout: Option<Duration>);

    /// The domain our side of the stream speaks for (in headers and error-only headers).
    fn set_domain(&mut self, domain: &str);

    /// A new stream begins on the same connection (after SASL success, RFC 6120 §4.3.3;
    /// RFC 7395 §3.5): the client opens it again.
    fn restart(&mut self, limits: ParserLimits);

    /// Changes the parser limits on the running stream (SASL2 success, which does not
    /// restart it: XEP-0388 §2.6.1). Transports that parse each request with the session's
    /// limits anyway (BOSH) keep the default.
    fn set_limits(&mut self, _limits: ParserLimits) {}

    /// Queues the opening of our side of the stream (RFC 6120 §4.7), answering the client's
    /// header that named `to` as its own address.
    fn open(&mut self, to: Option<&str>);

    /// Queues `<stream:features/>` with the children of `features`.
    fn queue_features(&mut self, features: &Element);

    /// Queues one top-level element (a stanza or a negotiation element).
    fn queue(&mut self, el: &Element);

    /// Queues a stanza serialized once for many sessions, with `to` (escaped) filled in.
    fn queue_shared(&mut self, stanza: &SharedStanza, to: &str);

    /// Drops what was queued and not yet flushed.
    fn discard_queued(&mut self);

    /// Writes what is queued.
    fn flush(&mut self) -> impl Future<Output = std::io::Result<()>> + Send;

    /// Queues one element and writes it now.
    fn send(&mut self, el: &Element) -> impl Future<Output = std::io::Result<()>> + Send {
        self.queue(el);
        self.flush()
    }

    /// Sends a stream error and closes the stream (RFC 6120 §4.9.1.1).
    fn fail(&mut self, error: &StreamError) -> impl Future<Output = ()> + Send;

    /// Closes our side of the stream and the connection under it.
    fn close(&mut self) -> impl Future<Output = ()> + Send;

    /// Whether the framing itself has the client acknowledge what it received. Then tracked
    /// stanzas count as delivered on its acknowledgement ([`crate::c2s::writer::Unacked`]),
    /// not when they are written. XEP-0198, negotiated per session, does the same on any
    /// transport; without either, the write is the acknowledgement.
    fn acknowledges_receipt(&self) -> bool {
        false
    }

    /// Queues a keepalive probe with this `id` for the idle client `to`: a XEP-0199 ping,
    /// unless the framing has its own (WebSocket ping frames, answered by
    /// [`StreamEvent::Alive`]).
    fn queue_keepalive_ping(&mut self, to: &FullJid, id: &str) {
        self.queue(&crate::c2s::keepalive::server_ping(to, id));
    }

    /// Whether STARTTLS can upgrade this connection (RFC 7395 streams never offer it).
    fn offers_starttls(&self) -> bool {
        false
    }

    /// Upgrades the connection to TLS after `<proceed/>`; a transport that does not offer
    /// STARTTLS never gets here.
    fn start_tls(self, _acceptor: TlsAcceptor) -> impl Future<Output = Option<Self>> + Send
    where
        Self: Sized,
    {
        async { None }
    }

    /// The transport's name in metrics and logs (`tcp`, `websocket`).
    fn kind(&self) -> &'static str;

    /// Whether the connection is encrypted (or, for a listener behind a TLS-terminating
    /// proxy, counts as such).
    fn is_secure(&self) -> bool;

    /// Channel-binding data of the connection (empty when it is not TLS); `tls` is the
    /// certificate snapshot the connection was accepted with.
    fn channel_bindings(&self, tls: &TlsContext) -> ChannelBindings;
}

impl Transport for XmppStream {
    fn next_event(&mut self) -> impl Future<Output = Result<StreamEvent, ReadError>> + Send {
        XmppStream::next_event(self)
    }

    fn take_bytes_read(&mut self) -> u64 {
        XmppStream::take_bytes_read(self)
    }

    fn set_event_timeout(&mut self, timeout: Option<Duration>) {
        XmppStream::set_event_timeout(self, timeout);
    }

    fn set_domain(&mut self, domain: &str) {
        domain.clone_into(&mut self.domain);
    }

    fn restart(&mut self, limits: ParserLimits) {
        XmppStream::restart(self, limits);
    }

    fn set_limits(&mut self, limits: ParserLimits) {
        XmppStream::set_limits(self, limits);
    }

    fn open(&mut self, to: Option<&str>) {
        self.queue_header(to);
    }

    fn queue_features(&mut self, features: &Element) {
        // Written with the stream prefix as every server does: some older clients match the
        // qualified name rather than the namespace.
        self.queue_raw("<stream:features>");
        for child in features.children() {
            XmppStream::queue(self, child);
        }
        self.queue_raw("</stream:features>");
    }

    fn queue(&mut self, el: &Element) {
        XmppStream::queue(self, el);
    }

    fn queue_shared(&mut self, stanza: &SharedStanza, to: &str) {
        XmppStream::queue_shared(self, stanza, to);
    }

    fn discard_queued(&mut self) {
        XmppStream::discard_queued(self);
    }

    fn flush(&mut self) -> impl Future<Output = std::io::Result<()>> + Send {
        XmppStream::flush(self)
    }

    fn fail(&mut self, error: &StreamError) -> impl Future<Output = ()> + Send {
        XmppStream::fail(self, error)
    }

    fn close(&mut self) -> impl Future<Output = ()> + Send {
        XmppStream::close(self)
    }

    fn offers_starttls(&self) -> bool {
        !self.conn().is_tls()
    }

    async fn start_tls(self, acceptor: TlsAcceptor) -> Option<Self> {
        let domain = self.domain.clone();
        let Conn::Plain(tcp) = self.into_conn() else {
            return None;
        };
        match acceptor.accept(tcp).await {
            // The caller restarts the stream with the limits it wants.
            Ok(tls) => Some(XmppStream::new(
                Conn::Tls(Box::new(tls)),
                ParserLimits::default(),
                domain,
            )),
            Err(e) => {
                tracing::debug!(error = %e, "TLS handshake failed");
                None
            }
        }
    }

    fn kind(&self) -> &'static str {
        "tcp"
    }

    fn is_secure(&self) -> bool {
        self.conn().is_tls()
    }

    fn channel_bindings(&self, tls: &TlsContext) -> ChannelBindings {
        match self.conn() {
            Conn::Plain(_) => ChannelBindings::default(),
            Conn::Tls(stream) => ChannelBindings {
                tls_exporter: crate::tls::exporter_binding(stream.get_ref().1),
                tls_server_end_point: Some(tls.server_end_point.clone()),
            },
        }
    }
}
