//! The state every connection and module shares: configuration, storage, the session table,
//! the module registry, the limiters, the admin list and blacklist ([`policy`]) and the
//! shutdown request ([`Stop`]). One `Arc<Server>` per running server; nothing of it is
//! process-global, so tests may run several in one process.

pub mod policy;
pub mod reload;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use arc_swap::{ArcSwap, Guard};

use crate::config::Config;
use crate::hub::registry::Registry;
use crate::limits::{ConnectionLimiter, WindowLimiter};
use crate::session::SessionDirectory;
use crate::storage::Storage;
use crate::tls::TlsContext;

/// Changes the log filter of the running process (set by the binary that installed logging).
pub type LogLevelSetter = Box<dyn Fn(&str) -> Result<(), String> + Send + Sync>;

pub struct Server {
    /// The live configuration: replaced whole by a reload (`server::reload`), read with
    /// [`Server::config`]. Keys that need a restart keep their startup values in use.
    pub(crate) live_config: ArcSwap<Config>,
    /// Bumped by every [`Server::replace_config`], so a session notices a reload with one
    /// atomic read and recomputes what it derived from the configuration (its rate limits).
    pub(crate) config_generation: AtomicU64,
    /// The file a reload reads; unset when started from a value (tests).
    pub(crate) config_path: OnceLock<PathBuf>,
    pub(crate) log_level: OnceLock<LogLevelSetter>,
    /// Hosted domains, fixed at startup (a new domain needs a restart).
    pub(crate) domains: Vec<String>,
    pub storage: Storage,
    /// Who is bound where; modules and the router reach sessions only through it.
    pub sessions: Box<dyn SessionDirectory>,
    pub registry: Registry<Server>,
    /// Certificate and key for new TLS connections; a reload swaps in the files read again.
    /// Take one snapshot per connection (`load_full`) so the handshake and channel binding
    /// use the same certificate.
    pub tls: ArcSwap<TlsContext>,
    /// Keys the deterministic fake SCRAM salt of unknown users, so probing cannot tell them apart.
    pub fake_salt_secret: Vec<u8>,
    /// The iteration count most stored SCRAM credentials have (0: none seen) and when it was
    /// read, for unknown users' stand-in credentials: see [`Server::fake_iterations`].
    /// Never held across an await.
    pub(crate) typical_iterations: std::sync::RwLock<(u32, Option<Instant>)>,
    pub auth_failures_by_ip: WindowLimiter,
    pub auth_failures_by_account: WindowLimiter,
    pub registrations_by_ip: WindowLimiter,
    /// Presence subscription requests per account per minute (flood control).
    pub subscriptions_by_account: WindowLimiter,
    pub connections: ConnectionLimiter,
    /// PBKDF2 work (PLAIN password checks) off the runtime, bounded.
    pub hash_pool: crate::limits::HashPool,
    /// Rate limits the log lines of events a client can repeat (`ops::log_limit`).
    pub log_limit: crate::ops::log_limit::LogLimiter,
    pub started: Instant,
    /// XEP-0115 verification string of the server's disco#info, computed once from the registry.
    pub caps_ver: String,
    /// The admin list (configuration or runtime edit): see [`Server::is_admin`].
    pub admins: policy::Admins,
    /// The cached service blacklist (XEP-0133 §4.11).
    pub blacklist: policy::Blacklist,
    /// A shutdown or restart asked for from inside (the admin commands).
    pub stop: Stop,
}

/// A graceful stop asked for from inside the server: `run` drains as on a signal, and for a
/// restart `main` executes the binary again once it returned.
#[derive(Default)]
pub struct Stop {
    requested: tokio::sync::Notify,
    restart: AtomicBool,
}

impl Stop {
    /// Asks the running server to shut down gracefully.
    pub fn shutdown(&self) {
        self.requested.notify_one();
    }

    /// Drains like [`Stop::shutdown`], then asks `main` to start the process again.
    pub fn restart(&self) {
        self.restart.store(true, Ordering::SeqCst);
        self.requested.notify_one();
    }

    /// Whether a restart was asked for (checked once `run` returned).
    pub fn restart_requested(&self) -> bool {
        self.restart.load(Ordering::SeqCst)
    }

    /// Resolves once a shutdown or restart is asked for.
    pub async fn requested(&self) {
        self.requested.notified().await
    }
}

impl Server {
    /// The current configuration. Cheap (no reference count touched); hold it for one
    /// operation, not across a long await, so a reload takes effect promptly.
    pub fn config(&self) -> Guard<Arc<Config>> {
        self.live_config.load()
    }

    /// Installs a reloaded configuration for everything that reads it from now on, and
    /// applies its limits to the shared limiters.
    pub fn replace_config(&self, config: Config) {
        self.apply_limits(&config);
        self.live_config.store(Arc::new(config));
        self.config_generation.fetch_add(1, Ordering::Release);
    }

    /// Which configuration is live (changes on every reload).
    pub fn config_generation(&self) -> u64 {
        self.config_generation.load(Ordering::Acquire)
    }

    /// Sets the limiters' numbers from `config` (at start and on reload).
    pub(crate) fn apply_limits(&self, config: &Config) {
        let (a, l) = (&config.auth, &config.limits);
        self.auth_failures_by_ip.set_max(a.failures_per_ip_per_minute);
        self.auth_failures_by_account
            .set_max(a.failures_per_account_per_minute);
        self.registrations_by_ip
            .set_max(config.registration.per_ip_per_hour);
        self.subscriptions_by_account.set_max(l.subscriptions_per_minute);
        self.connections
            .set_limits(l.connections_per_ip, l.unauthenticated_per_ip, l.max_connections);
        self.log_limit
            .set_interval(Duration::from_secs(config.log.repeat_interval_secs.max(1)));
    }

    /// Iterations for the stand-in SCRAM credentials of an unknown user: what most real
    /// accounts have, so the challenge does not single out unknown names after
    /// `auth.scram_iterations` changed (new accounts get the new count, old ones keep
    /// theirs). Read from storage again when older than ten minutes, and while no account
    /// was seen (accounts are also added by the CLI, another process); the configured count
    /// while none exists.
    pub async fn fake_iterations(&self) -> u32 {
        const MAX_AGE: Duration = Duration::from_secs(600);
        let fresh = self
            .typical_iterations
            .read()
            .is_ok_and(|t| t.0 != 0 && t.1.is_some_and(|at| at.elapsed() < MAX_AGE));
        if !fresh {
            match self.storage.most_common_iterations().await {
                Ok(n) => {
                    if let Ok(mut t) = self.typical_iterations.write() {
                        *t = (n.unwrap_or(0), Some(Instant::now()));
                    }
                }
                Err(e) => tracing::warn!(error = %e, "cannot read the usual SCRAM iteration count"),
            }
        }
        match self.typical_iterations.read().map(|t| t.0).unwrap_or(0) {
            0 => self.config().auth.scram_iterations,
            n => n,
        }
    }

    /// Remembers the file the configuration came from, for reloads. Set once.
    pub fn set_config_path(&self, path: &Path) {
        let _ = self.config_path.set(path.to_path_buf());
    }

    pub fn config_path(&self) -> Option<&Path> {
        self.config_path.get().map(PathBuf::as_path)
    }

    /// Installs how a reload changes the log level (the binary owns the subscriber). Set once.
    pub fn set_log_level_setter(&self, setter: LogLevelSetter) {
        let _ = self.log_level.set(setter);
    }

    /// Applies a new log level, when the binary installed a way to.
    pub(crate) fn set_log_level(&self, level: &str) -> Result<(), String> {
        match self.log_level.get() {
            Some(set) => set(level),
            None => Ok(()),
        }
    }

    /// The current admins: the runtime list if edited, else the configuration's `admins`.
    pub fn admins(&self) -> Vec<jid::BareJid> {
        self.admins.list(&self.config())
    }

    /// Whether `jid` is an admin (see [`Server::admins`]).
    pub fn is_admin(&self, jid: &jid::BareJid) -> bool {
        self.admins.contains(&self.config(), jid)
    }

    /// The domain to use when a stream header names none: the first configured one.
    pub fn default_domain(&self) -> &str {
        &self.domains[0]
    }

    /// The configured spelling of a hosted domain (case-insensitive match).
    pub fn hosted_domain(&self, domain: &str) -> Option<&str> {
        self.domains
            .iter()
            .find(|d| d.eq_ignore_ascii_case(domain))
            .map(String::as_str)
    }
}
