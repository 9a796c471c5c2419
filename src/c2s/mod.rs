//! Client-to-server connections: negotiation (STARTTLS, SASL, bind) then the session loop.

pub mod auth;
pub mod negotiate;
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
    direct_tls: bool,
    require_encryption: bool,
    shutdown: watch::Receiver<bool>,
) {
    let _ = tcp.set_nodelay(true);
    let timeout = Duration::from_secs(server.config().limits.negotiation_timeout_secs);
    let conn = if direct_tls {
        let acceptor = TlsAcceptor::from(server.tls.server_config.clone());
        match tokio::time::timeout(timeout, acceptor.accept(tcp)).await {
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
    let Some(bound) =
        negotiate::negotiate(&server, conn, peer.ip(), require_encryption, conn_id, timeout).await
    else {
        return;
    };
    session::run(server, bound, shutdown).await;
}
