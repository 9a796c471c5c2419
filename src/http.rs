//! The HTTP listeners (`kind = "http"`, and `"https"`: the same routes over TLS with the c2s
//! certificate): `/health`, Prometheus `/metrics`, the web clients' routes (`crate::web`:
//! WebSocket, BOSH, host-meta) and XEP-0363 uploads.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::serve::ListenerExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};
use tokio_rustls::server::TlsStream;

use crate::server::Server;

/// Prometheus text exposition format 0.0.4.
async fn metrics(State(server): State<Arc<Server>>) -> impl IntoResponse {
    let body = crate::metrics::render(server.sessions.session_count());
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], body)
}

pub async fn serve(
    server: Arc<Server>,
    listener: TcpListener,
    shutdown: watch::Receiver<bool>,
    web: crate::web::WebListener,
) {
    let local = listener.local_addr().expect("a bound listener has an address");
    let tls = web.tls;
    let scheme = if tls { "https" } else { "http" };
    let upload =
        crate::modules::upload::http::routes(&server, &format!("{scheme}://{local}"), shutdown.clone());
    let app = Router::new()
        .route("/health", get(|| async { "ok\n" }))
        .route("/metrics", get(metrics))
        .merge(crate::web::router(web))
        .with_state(server.clone())
        .merge(upload);
    let stop = {
        let mut shutdown = shutdown.clone();
        async move {
            let _ = shutdown.changed().await;
        }
    };
    let app = app.into_make_service_with_connect_info::<SocketAddr>();
    let served = if tls {
        let listener = TlsListener::start(server, listener, shutdown.clone());
        // `tap_io` only to reach axum's `ConnectInfo<SocketAddr>` for any listener whose
        // address is a `SocketAddr`.
        axum::serve(listener.tap_io(|_| {}), app)
            .with_graceful_shutdown(stop)
            .await
    } else {
        axum::serve(listener, app).with_graceful_shutdown(stop).await
    };
    if let Err(e) = served {
        tracing::error!(error = %e, "HTTP listener failed");
    }
}

/// The HTTPS listener's side of accepting: TCP connections whose TLS handshake finished.
/// Each handshake runs in its own task, bounded by the negotiation timeout, so a slow or
/// silent client never holds up the others.
struct TlsListener {
    ready: mpsc::Receiver<(TlsStream<TcpStream>, SocketAddr)>,
    local: SocketAddr,
}

impl TlsListener {
    fn start(server: Arc<Server>, listener: TcpListener, mut shutdown: watch::Receiver<bool>) -> TlsListener {
        let local = listener.local_addr().expect("a bound listener has an address");
        let (tx, ready) = mpsc::channel(64);
        tokio::spawn(async move {
            loop {
                let (tcp, peer) = tokio::select! {
                    _ = shutdown.changed() => return,
                    accepted = listener.accept() => match accepted {
                        Ok(a) => a,
                        Err(e) => {
                            // Out of descriptors, typically: back off instead of spinning.
                            tracing::warn!(error = %e, "HTTPS accept failed");
                            tokio::time::sleep(Duration::from_millis(100)).await;
                            continue;
                        }
                    },
                };
                let _ = tcp.set_nodelay(true);
                // Read per connection, so a reload's new certificate applies to the next one.
                let config = server.tls.load().http_config.clone();
                let within = Duration::from_secs(server.config().limits.negotiation_timeout_secs);
                let tx = tx.clone();
                tokio::spawn(async move {
                    let handshake = tokio_rustls::TlsAcceptor::from(config).accept(tcp);
                    match tokio::time::timeout(within, handshake).await {
                        Ok(Ok(tls)) => {
                            let _ = tx.send((tls, peer)).await;
                        }
                        Ok(Err(e)) => tracing::debug!(%peer, error = %e, "HTTPS handshake failed"),
                        Err(_) => tracing::debug!(%peer, "HTTPS handshake timed out"),
                    }
                });
            }
        });
        TlsListener { ready, local }
    }
}

impl axum::serve::Listener for TlsListener {
    type Io = TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.ready.recv().await {
            Some(accepted) => accepted,
            // The accept loop stopped for shutdown; axum stops asking once it sees it too.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> std::io::Result<SocketAddr> {
        Ok(self.local)
    }
}
