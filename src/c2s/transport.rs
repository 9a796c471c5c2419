//! The framing a client connection speaks, apart from what the session does with it.
//!
//! A transport carries one XML stream: it opens it (an RFC 6120 stream header, or the
//! RFC 7395 `<open/>` of WebSocket), announces features, reads and writes one stanza at a
//! time, and closes it (with or without a stream error). Negotiation and the session loop
//! only speak through this trait, so a later transport (WebSocket, BOSH) plugs in without
//! either of them knowing. The TCP/TLS implementation is [`XmppStream`] (`c2s/stream.rs`).

use std::future::Future;

use minidom::Element;

use crate::c2s::stream::{Conn, ReadError, XmppStream};
use crate::error::StreamError;
use crate::sasl::ChannelBindings;
use crate::session::SharedStanza;
use crate::tls::TlsContext;
use crate::xml::StreamEvent;

/// One client stream's framing. Methods that queue only buffer; [`Transport::flush`] writes.
pub trait Transport: Send {
    /// The next stream header, element or close. Cancel-safe (the session loop selects on it).
    fn next_event(&mut self) -> impl Future<Output = Result<StreamEvent, ReadError>> + Send;

    /// Bytes received since the last call (what the rate limit charges).
    fn take_bytes_read(&mut self) -> u64;

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

    /// Whether the client acknowledges what it received (XEP-0198 later). Then tracked
    /// stanzas count as delivered on its acknowledgement ([`crate::c2s::writer::Unacked`]),
    /// not when they are written. Over plain TCP the write is the acknowledgement.
    fn acknowledges_receipt(&self) -> bool {
        false
    }

    /// Whether the connection is encrypted.
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
