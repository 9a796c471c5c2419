//! # switchboard: an XMPP server
//!
//! # Layout
//! - [`server`]: the state one running server shares (live config, storage, sessions,
//!   registry, limiters, the admin list and blacklist in [`server::policy`]), and applying a
//!   reload to it ([`server::reload`]).
//! - [`config`]: the one TOML file, as a struct with defaults and validation; its documented
//!   keys and the generated example ([`config::docs`]); what a reload keeps ([`config::reload`]).
//! - [`listener`]: accept loops with connection limits; [`http`] serves `/health` and
//!   `/metrics` (names in [`metrics`]).
//! - [`tls`]: rustls configuration, the self-signed first-start certificate, channel binding.
//! - [`xml`]: the incremental stream parser (restricted XML, byte and depth limits).
//! - [`c2s`]: a client connection: negotiation (STARTTLS, SASL, bind), then the session loop.
//! - [`sasl`]: SCRAM-SHA-1/256(-PLUS) and PLAIN as pure state machines.
//! - [`router`]: destination classification and the RFC 6120/6121 delivery rules; the module
//!   registry (IQ handlers, disco features, services such as MUC) is [`router::registry`],
//!   the typed hook points where modules meet [`router::hooks`]: both are [`hub`]'s generic
//!   types instantiated for the server (so the server holds its registry without a circle).
//! - [`session`]: the session table, each session reached through a bounded mailbox.
//! - [`command`]: the contract of an ad-hoc command (XEP-0050) that modules register, and
//!   XEP-0004 forms.
//! - [`modules`]: features, one file or folder each: disco, ping, version, time, register,
//!   roster (subscriptions, presence, last activity, notes), offline, carbons, mam (message
//!   archives), vcard, private, blocking (XEP-0191, XEP-0016, our ignore lists), blacklist,
//!   muc, upload (XEP-0363), extdisco (XEP-0215), proxy65 (XEP-0065), motd, admin (XEP-0133)
//!   and account_commands (the commands they offer), adhoc (XEP-0050: runs every module's
//!   registered commands).
//! - [`storage`]: SQL (SQLite or PostgreSQL) behind narrow per-feature methods.
//! - [`accounts`]: account creation, passwords and removal for the CLI and in-band use.
//! - [`limits`], [`error`]: counters and the stream/stanza error values; [`ops`]: the rate
//!   limiter of repeated log lines.

pub mod accounts;
pub mod c2s;
pub mod command;
pub mod config;
pub mod error;
pub mod http;
pub mod hub;
pub mod limits;
pub mod listener;
pub mod metrics;
pub mod modules;
pub mod ops;
pub mod portable;
pub mod router;
pub mod sasl;
pub mod server;
pub mod session;
pub mod storage;
pub mod tls;
pub mod web;
pub mod xml;

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, watch};

use config::{Config, ListenerKind};
use limits::{ConnectionLimiter, WindowLimiter};
use router::registry::Registry;
use server::Server;

/// Opens storage, loads TLS and builds the module registry.
pub async fn start(config: Config) -> anyhow::Result<Arc<Server>> {
    let storage = storage::Storage::open(&config.storage.url).await?;
    metrics::install();
    tracing::info!(backend = storage.backend_name(), "storage ready");
    modules::roster::notes::check_keys(&storage, &config.roster_notes).await?;
    let tls = tls::load(&config.tls, &config.domains)?;
    let fake_salt_secret = storage.secret("scram-fake-salt").await?;
    let mut registry = Registry::build(modules::enabled(&config));
    if config.roster_notes.enabled() {
        registry.feature(modules::roster::notes::NS);
    }
    if modules::extdisco::configured(&config.external_services) {
        registry.feature(modules::extdisco::NS);
    }
    let caps_ver = modules::disco::caps_ver(&registry, &config.contact);
    // Built empty; `apply_limits` sets the numbers, as a reload does.
    let hour = Duration::from_secs(3600);
    let minute = Duration::from_secs(60);
    let server = Server {
        auth_failures_by_ip: WindowLimiter::new(0, minute),
        auth_failures_by_account: WindowLimiter::new(0, minute),
        registrations_by_ip: WindowLimiter::new(0, hour),
        subscriptions_by_account: WindowLimiter::new(0, minute),
        connections: ConnectionLimiter::new(0, 0, 0),
        hash_pool: limits::HashPool::per_core(),
        log_limit: ops::log_limit::LogLimiter::new(minute),
        sessions: Box::new(session::LocalDirectory::new()),
        domains: config.domains.clone(),
        live_config: arc_swap::ArcSwap::from_pointee(config.clone()),
        config_generation: Default::default(),
        config_path: Default::default(),
        log_level: Default::default(),
        storage,
        registry,
        tls: arc_swap::ArcSwap::from_pointee(tls),
        fake_salt_secret,
        typical_iterations: Default::default(),
        started: Instant::now(),
        caps_ver,
        admins: Default::default(),
        blacklist: Default::default(),
        stop: Default::default(),
    };
    server.apply_limits(&config);
    let server = Arc::new(server);
    // Archive ids continue past the stored ones, whatever the clock says.
    modules::mam::seed_ids(&server).await?;
    Ok(server)
}

/// Serves on already-bound listeners until `shutdown` resolves (or the server asks itself to
/// stop, [`server::Stop`]), then drains: every stream gets `system-shutdown` after its queued stanzas, and we
/// wait (bounded) for connections to end.
pub async fn run(
    server: Arc<Server>,
    listeners: Vec<listener::Bound>,
    shutdown: impl std::future::Future<Output = ()>,
) {
    let (stop_tx, stop_rx) = watch::channel(false);
    let (done_tx, mut done_rx) = mpsc::channel::<()>(1);
    let mut accept_tasks = Vec::new();
    for bound in listeners {
        tracing::info!(kind = bound.config.kind.name(), address = %bound.local_addr(), "listening");
        let server = server.clone();
        let stop = stop_rx.clone();
        accept_tasks.push(match bound.config.kind {
            ListenerKind::Http | ListenerKind::Https => {
                let web =
                    web::WebListener::new(&bound.config, bound.index, stop.clone(), Some(done_tx.clone()));
                tokio::spawn(http::serve(server, bound.listener, stop, web))
            }
            _ => tokio::spawn(listener::accept_c2s(server, bound, stop, done_tx.clone())),
        });
    }
    if let Some(task) = modules::proxy65::listen(&server, stop_rx.clone()).await {
        accept_tasks.push(task);
    }
    drop(done_tx);
    // Summaries of repeated events are written even when the flood stopped.
    let flusher = {
        let server = server.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            loop {
                tick.tick().await;
                server.log_limit.flush();
            }
        })
    };
    tokio::select! {
        () = shutdown => {}
        () = server.stop.requested() => {}
    }
    tracing::info!(sessions = server.sessions.session_count(), "shutting down");
    let sessions = server.sessions.all_sessions();
    // Rooms remove their occupants with status 332 (XEP-0045) before streams close.
    modules::muc::removal::announce_shutdown(&server).await;
    let _ = stop_tx.send(true);
    for task in accept_tasks {
        let _ = task.await;
    }
    if tokio::time::timeout(Duration::from_secs(10), done_rx.recv())
        .await
        .is_err()
    {
        tracing::warn!("some connections did not close in time");
    }
    // Sessions without a connection (XEP-0198 hibernation) end on the stop signal too, in
    // tasks of their own: their unacknowledged messages reach offline storage before it
    // closes.
    let ended = sessions
        .iter()
        .filter_map(|s| s.local())
        .map(|entry| entry.ended());
    if tokio::time::timeout(Duration::from_secs(10), futures::future::join_all(ended))
        .await
        .is_err()
    {
        tracing::warn!("some sessions did not end in time");
    }
    // Archived messages still queued for the writer are written before storage closes.
    modules::mam::flush_on_stop(&server).await;
    flusher.abort();
    server.log_limit.flush();
    server.storage.close().await;
    tracing::info!("stopped");
}
