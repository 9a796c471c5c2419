//! switchboard-bench: load generator / benchmark for any XMPP server.
//!
//! See bench/README.md for usage and how to read the figures.

mod bosh;
mod chat;
mod client;
mod login_idle;
mod mam;
mod muc;
mod presence;
mod report;
mod scram;
mod seen;
mod stats;
mod ws;
mod xml;

use anyhow::Result;
use clap::{Args, Parser, Subcommand};
use client::{Mech, Target};
use std::sync::Arc;
use std::time::Duration;

#[derive(Parser)]
#[command(name = "switchboard-bench", version, about = "XMPP server benchmark")]
struct Cli {
    /// Tokio worker threads (default: number of CPUs this process may use).
    #[arg(long, global = true)]
    threads: Option<usize>,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Log in N clients and keep them connected: logins/s, memory and CPU per session.
    LoginIdle(login_idle::LoginIdleArgs),
    /// M sender/receiver pairs exchanging chat messages: throughput, latency, loss.
    Chat(chat::ChatArgs),
    /// U users with K mutual contacts log in, then update their presence.
    Presence(presence::PresenceArgs),
    /// XEP-0313 archive queries (a page, or a full-text search) on seeded archives.
    Mam(mam::MamArgs),
    /// N occupants join one MUC room, then K of them post at stepped rates.
    Muc(muc::MucArgs),
    /// Create the mutual roster subscriptions used by `presence` (run once).
    PresenceSetup(presence::SetupArgs),
    /// N BOSH sessions long-polling while TCP senders message them: CPU per delivered message.
    BoshPoll(bosh::BoshArgs),
    /// Create accounts via in-band registration (XEP-0077).
    Register(RegisterArgs),
    /// Print a comparison table from result files written with --out.
    Report(report::ReportArgs),
}

/// Connection options shared by all scenarios.
#[derive(Args, Clone)]
pub struct Common {
    /// Server host (IP or name) to connect to.
    #[arg(long, default_value = "127.0.0.1")]
    pub host: String,
    /// Client-to-server port.
    #[arg(long, default_value_t = 5222)]
    pub port: u16,
    /// XMPP domain of the accounts (stream 'to').
    #[arg(long, default_value = "localhost")]
    pub domain: String,
    /// Username pattern; `{n}` is replaced by the user number.
    #[arg(long, default_value = "bench{n}")]
    pub users: String,
    /// Password of every account.
    #[arg(long, default_value = "pw")]
    pub password: String,
    /// Number of the first user.
    #[arg(long, default_value_t = 1)]
    pub first: u64,
    /// SASL mechanism.
    #[arg(long, value_enum, default_value = "SCRAM-SHA-1")]
    pub mech: Mech,
    /// Logins (or registrations) in flight at once.
    #[arg(long, default_value_t = 50)]
    pub concurrency: usize,
    /// Per-login timeout in seconds.
    #[arg(long, default_value_t = 30)]
    pub timeout: u64,
    /// Resource prefix (the user number is appended).
    #[arg(long, default_value = "bench")]
    pub resource: String,
    /// Connect over RFC 7395 WebSocket at this path of --host:--port (e.g. /xmpp-websocket
    /// on the HTTP port) instead of TCP.
    #[arg(long)]
    pub websocket: Option<String>,
}

impl Common {
    pub fn target(&self) -> Arc<Target> {
        Arc::new(Target {
            host: self.host.clone(),
            port: self.port,
            domain: self.domain.clone(),
            user_pattern: self.users.clone(),
            password: self.password.clone(),
            mech: self.mech,
            resource: self.resource.clone(),
            timeout: Duration::from_secs(self.timeout),
            salts: Default::default(),
            websocket: self.websocket.clone(),
        })
    }
}

/// Measurement / output options shared by the scenarios.
#[derive(Args, Clone)]
pub struct Measure {
    /// PID(s) of the server under test (comma separated) for RSS/CPU figures.
    #[arg(long, value_delimiter = ',')]
    pub server_pid: Vec<u32>,
    /// Label of the server in the output (e.g. prosody).
    #[arg(long, default_value = "server")]
    pub label: String,
    /// Append machine-readable results to this file (for `report`).
    #[arg(long)]
    pub out: Option<String>,
    /// Do not pre-compute SCRAM salted passwords before the measured phase.
    #[arg(long)]
    pub no_prefetch: bool,
}

#[derive(Args)]
struct RegisterArgs {
    #[command(flatten)]
    common: Common,
    /// Number of accounts to create (users first..first+count-1).
    #[arg(long)]
    count: u64,
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    stats::now_us(); // initialise the epoch
    let mut rt = tokio::runtime::Builder::new_multi_thread();
    rt.enable_all();
    if let Some(t) = cli.threads {
        rt.worker_threads(t.max(1));
    }
    let rt = rt.build()?;
    let res = rt.block_on(async move {
        match cli.cmd {
            Cmd::LoginIdle(a) => login_idle::run(a).await,
            Cmd::Chat(a) => chat::run(a).await,
            Cmd::Presence(a) => presence::run(a).await,
            Cmd::Muc(a) => muc::run(a).await,
            Cmd::Mam(a) => mam::run(a).await,
            Cmd::PresenceSetup(a) => presence::setup(a).await,
            Cmd::BoshPoll(a) => bosh::run(a).await,
            Cmd::Register(a) => register(a).await,
            Cmd::Report(a) => report::run(a),
        }
    });
    // Idle connections may still be open; don't wait for their tasks.
    rt.shutdown_timeout(Duration::from_secs(1));
    res
}

/// Run `f(n)` for every user number in `first..first+count` with at most
/// `concurrency` in flight; returns the results in user order.
pub async fn for_each_user<T, F, Fut>(first: u64, count: u64, concurrency: usize, f: F) -> Vec<Result<T>>
where
    T: Send + 'static,
    F: Fn(u64) -> Fut,
    Fut: std::future::Future<Output = Result<T>> + Send + 'static,
{
    let sem = Arc::new(tokio::sync::Semaphore::new(concurrency.max(1)));
    let mut handles = Vec::with_capacity(count as usize);
    for n in first..first + count {
        let permit = sem.clone().acquire_owned().await.expect("semaphore");
        let fut = f(n);
        handles.push(tokio::spawn(async move {
            let r = fut.await;
            drop(permit);
            r
        }));
    }
    let mut out = Vec::with_capacity(handles.len());
    for h in handles {
        out.push(h.await.unwrap_or_else(|e| Err(anyhow::anyhow!("task: {e}"))));
    }
    out
}

/// Summarise errors: count per distinct message, printed to stderr.
pub fn summarize_errors<'a>(what: &str, errs: impl Iterator<Item = &'a anyhow::Error>) -> usize {
    let mut counts: std::collections::BTreeMap<String, usize> = Default::default();
    let mut total = 0;
    for e in errs {
        total += 1;
        let mut msg = format!("{e:#}");
        // Strip user-specific parts so identical failures group together.
        if msg.len() > 160 {
            msg.truncate(160);
        }
        *counts.entry(msg).or_default() += 1;
    }
    if total > 0 {
        eprintln!("{what}: {total} failed");
        for (m, c) in counts.iter().take(10) {
            eprintln!("  {c:>6} x {m}");
        }
    }
    total
}

/// Pre-compute SCRAM salted passwords for the given users.
pub async fn prefetch_salts(t: &Arc<Target>, first: u64, count: u64, concurrency: usize) {
    if t.mech != Mech::ScramSha1 {
        return;
    }
    let start = std::time::Instant::now();
    let res = for_each_user(first, count, concurrency, |n| {
        let t = t.clone();
        async move { client::prefetch_salt(&t, n).await }
    })
    .await;
    let failed = summarize_errors("SCRAM salt prefetch", res.iter().filter_map(|r| r.as_ref().err()));
    eprintln!(
        "prefetched {} SCRAM salts in {:.1}s ({} failed)",
        t.salts.len(),
        start.elapsed().as_secs_f64(),
        failed
    );
}

async fn register(a: RegisterArgs) -> Result<()> {
    stats::raise_nofile();
    let t = a.common.target();
    let start = std::time::Instant::now();
    let res = for_each_user(a.common.first, a.count, a.common.concurrency, |n| {
        let t = t.clone();
        async move { client::register(&t, n).await }
    })
    .await;
    let created = res
        .iter()
        .filter(|r| matches!(r, Ok(client::RegisterOutcome::Created)))
        .count();
    let exists = res
        .iter()
        .filter(|r| matches!(r, Ok(client::RegisterOutcome::Exists)))
        .count();
    let failed = summarize_errors("registration", res.iter().filter_map(|r| r.as_ref().err()));
    println!(
        "registered {created} new, {exists} already existed, {failed} failed in {:.1}s",
        start.elapsed().as_secs_f64()
    );
    if failed > 0 {
        anyhow::bail!("{failed} registrations failed");
    }
    Ok(())
}
