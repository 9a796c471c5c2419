//! Client-to-server connections: a transport (`transport.rs`; TCP/TLS in `stream.rs`) is
//! negotiated (STARTTLS, SASL, bind), then attaches to the bound session (`session.rs`).

pub mod auth;
pub mod bind2;
pub mod csi;
pub mod fast;
pub mod inbound;
pub mod keepalive;
pub mod negotiate;
pub mod pace;
pub mod sasl2;
pub mod session;
pub mod sm;
pub mod stream;
pub mod trace;
pub mod transport;
pub mod writer;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio_rustls::TlsAcceptor;

use crate::limits::ConnectionSlot;
use crate::ops::log_limit::Repeated;
use crate::server::Server;
use session::Session;
use stream::Conn;

/// An accepted client socket and its place under the connection limits.
pub struct Accepted {
    pub tcp: TcpStream,
    pub peer: SocketAddr,
    /// Released when the connection ends; moves to the authenticated count at SASL success.
    pub slot: ConnectionSlot,
}

/// Serves one accepted client connection until it ends.
pub async fn serve(
    server: Arc<Server>,
    accepted: Accepted,
    listener: usize,
    direct_tls: bool,
    require_encryption: bool,
    shutdown: watch::Receiver<bool>,
) {
    let Accepted { tcp, peer, mut slot } = accepted;
    let _ = tcp.set_nodelay(true);
    let (timeout, idle) = {
        let limits = &server.config().limits;
        (
            Duration::from_secs(limits.negotiation_timeout_secs),
            Duration::from_secs(limits.negotiation_idle_secs),
        )
    };
    // One certificate snapshot for the whole connection, so a reload between the handshake
    // and SASL cannot mismatch the channel binding.
    let tls = server.tls.load_full();
    let conn = if direct_tls {
        let acceptor = TlsAcceptor::from(tls.server_config.clone());
        // A handshake is a few round trips: one that takes longer than the idle limit is a
        // client that sends (almost) nothing.
        match tokio::time::timeout(idle, Box::pin(acceptor.accept(tcp))).await {
            Ok(Ok(tls)) => Conn::Tls(Box::new(tls)),
            Ok(Err(e)) => {
                if server
                    .log_limit
                    .note(Repeated::NegotiationFailed, &peer.ip().to_string())
                {
                    tracing::debug!(%peer, error = %e, "TLS handshake failed (repeats summarized)");
                }
                return;
            }
            Err(_) => return,
        }
    } else {
        Conn::Plain(tcp)
    };
    let conn_id = server.sessions.next_conn_id();
    // Boxed: negotiation's state (SASL, TLS upgrade) is freed once bound instead of sitting
    // in every idle connection's task for its whole life.
    let stream = stream::XmppStream::new(
        conn,
        negotiate::preauth_limits(&server),
        server.default_domain().to_string(),
    );
    let Some(bound) = Box::pin(negotiate::negotiate(
        &server,
        &tls,
        stream,
        peer.ip(),
        conn_id,
        negotiate::Rules {
            require_encryption,
            total: timeout,
            idle,
        },
        &mut slot,
    ))
    .await
    else {
        return;
    };
    drop(tls);
    let negotiate::Bound { stream, session } = bound;
    let session = match session {
        negotiate::BoundSession::New(jid, link) => Session::open(server, jid, link, listener).await,
        negotiate::BoundSession::Resumed(session) => *session,
    };
    // Every log line of the session carries its JID (the span is opened by the listener).
    session::run(session, stream, shutdown).await;
}
