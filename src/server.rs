//! The state every connection and module shares: configuration, storage, the session table,
//! the module registry and the limiters. One `Arc<Server>` per process.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Instant;

use arc_swap::{ArcSwap, Guard};

use crate::config::Config;
use crate::limits::{ConnectionLimiter, WindowLimiter};
use crate::router::registry::Registry;
use crate::session::SessionDirectory;
use crate::storage::Storage;
use crate::tls::TlsContext;

/// Changes the log filter of the running process (set by the binary that installed logging).
pub type LogLevelSetter = Box<dyn Fn(&str) -> Result<(), String> + Send + Sync>;

pub struct Server {
    /// The live configuration: replaced whole by a reload (`config::reload`), read with
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
    pub registry: Registry,
    /// Certificate and key for new TLS connections; a reload swaps in the files read again.
    /// Take one snapshot per connection (`load_full`) so the handshake and channel binding
    /// use the same certificate.
    pub tls: ArcSwap<TlsContext>,
    /// Keys the deterministic fake SCRAM salt of unknown users, so probing cannot tell them apart.
    pub fake_salt_secret: Vec<u8>,
    pub auth_failures_by_ip: WindowLimiter,
    pub auth_failures_by_account: WindowLimiter,
    pub registrations_by_ip: WindowLimiter,
    /// Presence subscription requests per account per minute (flood control).
    pub subscriptions_by_account: WindowLimiter,
    pub connections: ConnectionLimiter,
    pub started: Instant,
    /// XEP-0115 verification string of the server's disco#info, computed once from the registry.
    pub caps_ver: String,
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
            .set_limits(l.connections_per_ip, l.max_connections);
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
