//! The HTTP listener: `/health`, Prometheus `/metrics`, and the web clients' routes
//! (`crate::web`: WebSocket, BOSH, host-meta) and XEP-0363 uploads.

use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::server::Server;

/// Prometheus text exposition format 0.0.4.
async fn metrics(State(server): State<Arc<Server>>) -> impl IntoResponse {
    let body = crate::metrics::render(server.sessions.session_count());
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], body)
}

pub async fn serve(
    server: Arc<Server>,
    listener: TcpListener,
    mut shutdown: watch::Receiver<bool>,
    web: crate::web::WebListener,
) {
    let local = listener.local_addr().expect("a bound listener has an address");
    let upload = crate::modules::upload::http::routes(&server, local, shutdown.clone());
    let app = Router::new()
        .route("/health", get(|| async { "ok\n" }))
        .route("/metrics", get(metrics))
        .merge(crate::web::router(web))
        .with_state(server)
        .merge(upload);
    let stop = async move {
        let _ = shutdown.changed().await;
    };
    let app = app.into_make_service_with_connect_info::<std::net::SocketAddr>();
    if let Err(e) = axum::serve(listener, app).with_graceful_shutdown(stop).await {
        tracing::error!(error = %e, "HTTP listener failed");
    }
}
