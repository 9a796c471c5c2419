//! Web clients on the HTTP listeners: RFC 7395 XMPP over WebSocket (`websocket.rs`, framing
//! in `frame.rs`), XEP-0124/XEP-0206 BOSH (`bosh.rs`) and XEP-0156 discovery
//! (`host_meta.rs`). A WebSocket connection and a BOSH session are two more
//! [`crate::c2s::transport::Transport`]s: negotiated and attached to a session by the same
//! code as a TCP connection, with the same limits, rate limits, metrics and logs.

pub mod bosh;
pub mod frame;
pub mod host_meta;
pub mod websocket;

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use axum::Router;
use axum::http::HeaderMap;
use tokio::sync::{mpsc, watch};

use crate::config::ListenerConfig;
use crate::server::Server;

/// What the web routes know of the listener that accepted the request.
#[derive(Clone)]
pub struct WebListener {
    /// Position in the configuration's `listen` list (per-listener rate limits).
    pub index: usize,
    /// Logins need a secure connection (`listen.require_encryption`).
    pub require_encryption: bool,
    /// Plain connections count as secure: a TLS-terminating proxy is in front
    /// (`listen.behind_tls_proxy`), or the listener is on a loopback address, which only a
    /// proxy on the same host (or a local client) can reach.
    pub trusted_proxy: bool,
    /// The listener speaks TLS itself (`kind = "https"`).
    pub tls: bool,
    pub shutdown: watch::Receiver<bool>,
    /// Held by every WebSocket and BOSH session, so shutdown waits for them to drain.
    pub done: Option<mpsc::Sender<()>>,
    /// This listener's BOSH sessions, by `sid`.
    pub bosh: Arc<bosh::Sessions>,
}

impl WebListener {
    pub fn new(
        config: &ListenerConfig,
        index: usize,
        shutdown: watch::Receiver<bool>,
        done: Option<mpsc::Sender<()>>,
    ) -> WebListener {
        WebListener {
            index,
            require_encryption: config.require_encryption,
            trusted_proxy: config.behind_tls_proxy || config.address.ip().is_loopback(),
            tls: config.kind == crate::config::ListenerKind::Https,
            shutdown,
            done,
            bosh: Arc::default(),
        }
    }

    /// Logins here count as encrypted: our own TLS, or a trusted proxy's.
    pub fn secure(&self) -> bool {
        self.tls || self.trusted_proxy
    }

    /// The client's address: the proxy's `X-Forwarded-For` (its last entry, the one the
    /// proxy itself added) when a trusted proxy is in front, else the peer. Connection
    /// limits count it, so a proxy's clients do not share one address's limits.
    pub fn client_ip(&self, peer: SocketAddr, headers: &HeaderMap) -> IpAddr {
        if !self.trusted_proxy {
            return peer.ip();
        }
        headers
            .get_all("x-forwarded-for")
            .iter()
            .next_back()
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.rsplit(',').next())
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(peer.ip())
    }
}

/// The web routes, merged into the HTTP listener's router.
pub fn router(listener: WebListener) -> Router<Arc<Server>> {
    Router::new()
        .route(websocket::PATH, axum::routing::get(websocket::upgrade))
        .route(
            bosh::PATH,
            axum::routing::post(bosh::request).options(bosh::preflight),
        )
        .route("/.well-known/host-meta", axum::routing::get(host_meta::xrd))
        .route("/.well-known/host-meta.json", axum::routing::get(host_meta::json))
        .layer(axum::Extension(Arc::new(listener)))
}
