//! Accept loops: one per configured listener, with per-IP and total connection limits and
//! shutdown. Each accepted connection runs in its own task, so a panic stays in it.

use std::net::SocketAddr;
use std::sync::Arc;
use tracing::Instrument;

use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch};

use crate::config::{ListenerConfig, ListenerKind};
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
    loop {
        let accepted = tokio::select! {
            _ = stop.changed() => break,
            a = bound.listener.accept() => a,
        };
        let (tcp, peer) = match accepted {
            Ok(a) => a,
            Err(e) => {
                // Usually EMFILE: back off instead of spinning.
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                continue;
            }
        };
        let Some(slot) = server.connections.acquire(peer.ip()) else {
            tracing::warn!(%peer, "connection refused: too many connections");
            drop(tcp);
            continue;
        };
        let server = server.clone();
        let shutdown = shutdown.clone();
        let done = done.clone();
        // One span per connection: its peer address, and its JID once bound.
        let span = tracing::info_span!("c2s", ip = %peer.ip(), jid = tracing::field::Empty);
        tokio::spawn(
            async move {
                crate::c2s::serve(server, tcp, peer, index, direct_tls, require_encryption, shutdown).await;
                drop(slot);
                drop(done);
            }
            .instrument(span),
        );
    }
}
