//! Accept loops: one per configured listener, with per-IP and total connection limits and
//! shutdown. Each accepted connection runs in its own task, so a panic stays in it.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use tracing::Instrument;

use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch};

use crate::config::{ListenerConfig, ListenerKind};
use crate::limits::Refusal;
use crate::ops::log_limit::Repeated;
use crate::server::Server;

/// A bound listener and its configuration.
pub struct Bound {
    pub config: ListenerConfig,
    /// Position in the configuration's `listen` list (per-listener settings follow reloads).
    pub index: usize,
    pub listener: TcpListener,
}

impl Bound {
    pub fn local_addr(&self) -> SocketAddr {
        self.listener.local_addr().unwrap_or(self.config.address)
    }
}

/// Binds every configured listener (so `run` can be handed already-bound sockets).
pub async fn bind_all(configs: &[ListenerConfig]) -> anyhow::Result<Vec<Bound>> {
    let mut out = Vec::new();
    for (index, config) in configs.iter().enumerate() {
        let listener = TcpListener::bind(config.address).await.map_err(|e| {
            anyhow::anyhow!(
                "cannot listen on {} ({}): {e}",
                config.address,
                config.kind.name()
            )
        })?;
        out.push(Bound {
            config: config.clone(),
            index,
            listener,
        });
    }
    Ok(out)
}

/// Accepts c2s connections until shutdown. `done` is held by every connection task, so the
/// caller knows when all have finished (its receiver yields `None`).
pub async fn accept_c2s(
    server: Arc<Server>,
    bound: Bound,
    shutdown: watch::Receiver<bool>,
    done: mpsc::Sender<()>,
) {
    let direct_tls = bound.config.kind == ListenerKind::C2sDirectTls;
    let require_encryption = bound.config.require_encryption;
    let index = bound.index;
    let mut stop = shutdown.clone();
    let draining = Arc::new(AtomicUsize::new(0));
    loop {
        let accepted = tokio::select! {
            _ = stop.changed() => break,
            a = bound.listener.accept() => a,
        };
        let (tcp, peer) = match accepted {
            Ok(a) => a,
            Err(e) => {
                // Usually EMFILE: back off instead of spinning.
                if server.log_limit.note(Repeated::AcceptFailed, "") {
                    tracing::warn!(error = %e, "accept failed (repeats summarized)");
                }
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                continue;
            }
        };
        let slot = match server.connections.acquire(peer.ip()) {
            Ok(slot) => slot,
            Err(refusal) => {
                if server
                    .log_limit
                    .note(Repeated::ConnectionRefused, &peer.ip().to_string())
                {
                    tracing::warn!(%peer, ?refusal, "connection refused: too many connections (repeats summarized)");
                }
                refuse(tcp, refusal, direct_tls, &draining);
                continue;
            }
        };
        let server = server.clone();
        let shutdown = shutdown.clone();
        let done = done.clone();
        // One span per connection: its peer address, and its JID once bound.
        let span = tracing::info_span!("c2s", ip = %peer.ip(), jid = tracing::field::Empty);
        tokio::spawn(
            async move {
                let accepted = crate::c2s::Accepted { tcp, peer, slot };
                crate::c2s::serve(server, accepted, index, direct_tls, require_encryption, shutdown).await;
                drop(done);
            }
            .instrument(span),
        );
    }
}

/// The stream error a refused connection gets, before anything of the client was read
/// (RFC 6120 §4.9.1.1: our header, the error, the close).
fn refusal_error(refusal: Refusal) -> &'static str {
    match refusal {
        Refusal::PerIp => concat!(
            "<?xml version='1.0'?><stream:stream xmlns='jabber:client' ",
            "xmlns:stream='http://etherx.jabber.org/streams' version='1.0'>",
            "<stream:error><policy-violation xmlns='urn:ietf:params:xml:ns:xmpp-streams'/>",
            "<text xmlns='urn:ietf:params:xml:ns:xmpp-streams'>too many connections from your ",
            "address; try again later</text></stream:error></stream:stream>"
        ),
        Refusal::Total => concat!(
            "<?xml version='1.0'?><stream:stream xmlns='jabber:client' ",
            "xmlns:stream='http://etherx.jabber.org/streams' version='1.0'>",
            "<stream:error><resource-constraint xmlns='urn:ietf:params:xml:ns:xmpp-streams'/>",
            "<text xmlns='urn:ietf:params:xml:ns:xmpp-streams'>the server is full; try again ",
            "later</text></stream:error></stream:stream>"
        ),
    }
}

/// Refused connections being drained at most at once (per listener); past it a refused
/// client still gets its error, but the socket is closed at once.
const MAX_DRAINING: usize = 1024;

/// Tells a refused client why, cheaply: one non-blocking write of a fixed string into the
/// empty socket buffer, then a short task that drains what the client sends until it closes
/// (closing with unread input would reset the connection and could destroy the error in
/// flight). A direct-TLS client cannot read plaintext: it is just closed.
fn refuse(tcp: tokio::net::TcpStream, refusal: Refusal, direct_tls: bool, draining: &Arc<AtomicUsize>) {
    if direct_tls {
        return;
    }
    let _ = tcp.try_write(refusal_error(refusal).as_bytes());
    if draining.fetch_add(1, Ordering::AcqRel) >= MAX_DRAINING {
        draining.fetch_sub(1, Ordering::AcqRel);
        return;
    }
    let draining = draining.clone();
    tokio::spawn(async move {
        drain_and_close(tcp).await;
        draining.fetch_sub(1, Ordering::AcqRel);
    });
}

/// Reads and discards for at most two seconds (and 64 KiB), after closing our side.
async fn drain_and_close(mut tcp: tokio::net::TcpStream) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let _ = tcp.shutdown().await;
    let mut buf = [0u8; 1024];
    let mut left: usize = 64 * 1024;
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(2);
    while left > 0 {
        match tokio::time::timeout_at(deadline, tcp.read(&mut buf)).await {
            Ok(Ok(n)) if n > 0 => left = left.saturating_sub(n),
            _ => break,
        }
    }
}
