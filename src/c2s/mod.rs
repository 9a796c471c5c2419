//! Client-to-server connections: negotiation (STARTTLS, SASL, bind) then the session loop.

pub mod auth;
pub mod negotiate;
pub mod pace;
pub mod session;
pub mod stream;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio_rustls::TlsAcceptor;

use crate::server::Server;
use stream::Conn;

/// Serves one accepted client connection until it ends.
pub async fn serve(
    server: Arc<Server>,
    tcp: TcpStream,
    peer: SocketAddr,
    listener: usize,
    direct_tls: bool,
    require_encryption: bool,
    shutdown: watch::Receiver<bool>,
) {
    let _ = tcp.set_nodelay(true);
    let timeout = Duration::from_secs(server.config().limits.negotiation_timeout_secs);
    // One certificate snapshot for the whole connection, so a reload between the handshake
    // and SASL cannot mismatch the channel binding.
    let tls = server.tls.load_full();
    let conn = if direct_tls {
        let acceptor = TlsAcceptor::from(tls.server_config.clone());
        match tokio::time::timeout(timeout, Box::pin(acceptor.accept(tcp))).await {
            Ok(Ok(tls)) => Conn::Tls(Box::new(tls)),
            Ok(Err(e)) => {
                tracing::debug!(%peer, error = %e, "TLS handshake failed");
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
    let Some(bound) = Box::pin(negotiate::negotiate(
        &server,
        &tls,
        conn,
        peer.ip(),
        require_encryption,
        conn_id,
        timeout,
    ))
    .await
    else {
        return;
    };
    drop(tls);
    // Every log line of the session carries its JID (the span is opened by the listener).
    tracing::Span::current().record("jid", tracing::field::display(&bound.jid));
    session::run(server, bound, listener, shutdown).await;
}
