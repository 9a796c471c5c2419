//! The state every connection and module shares: configuration, storage, the session table,
//! the module registry and the limiters. One `Arc<Server>` per process.

use std::sync::Arc;
use std::time::Instant;

use arc_swap::{ArcSwap, Guard};

use crate::config::Config;
use crate::limits::{ConnectionLimiter, WindowLimiter};
use crate::router::registry::Registry;
use crate::session::SessionTable;
use crate::storage::Storage;
use crate::tls::TlsContext;

pub struct Server {
    /// The live configuration: replaced whole by a reload (`config::reload`), read with
    /// [`Server::config`]. Keys that need a restart keep their startup values in use.
    pub(crate) live_config: ArcSwap<Config>,
    /// Hosted domains, fixed at startup (a new domain needs a restart).
    pub(crate) domains: Vec<String>,
    pub storage: Storage,
    pub sessions: SessionTable,
    pub registry: Registry,
    pub tls: TlsContext,
    /// Keys the deterministic fake SCRAM salt of unknown users, so probing cannot tell them apart.
    pub fake_salt_secret: Vec<u8>,
    pub auth_failures_by_ip: WindowLimiter,
    pub auth_failures_by_account: WindowLimiter,
    pub registrations_by_ip: WindowLimiter,
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

    /// Installs a reloaded configuration for everything that reads it from now on.
    pub fn replace_config(&self, config: Config) {
        self.live_config.store(Arc::new(config));
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
