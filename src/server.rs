//! The state every connection and module shares: configuration, storage, the session table,
//! the module registry and the limiters. One `Arc<Server>` per process.

use std::sync::Arc;
use std::time::Instant;

use crate::config::Config;
use crate::limits::{ConnectionLimiter, WindowLimiter};
use crate::router::registry::Registry;
use crate::session::SessionTable;
use crate::storage::Storage;
use crate::tls::TlsContext;

pub struct Server {
    pub config: Arc<Config>,
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
    /// The domain to use when a stream header names none: the first configured one.
    pub fn default_domain(&self) -> &str {
        &self.config.domains[0]
    }

    /// The configured spelling of a hosted domain (case-insensitive match).
    pub fn hosted_domain(&self, domain: &str) -> Option<&str> {
        self.config
            .domains
            .iter()
            .find(|d| d.eq_ignore_ascii_case(domain))
            .map(String::as_str)
    }
}
