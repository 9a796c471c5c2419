//! The one configuration file: a serde struct whose doc comments are the documentation.
//!
//! Unknown keys are errors (a typo must not silently fall back to a default), and every
//! error names the file and line. `config/example.toml` lists every key with its default.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

/// The whole configuration.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The XMPP domains this server hosts (virtual hosts). Users are `user@domain`.
    pub domains: Vec<String>,
    /// Admin accounts (bare JIDs); they may run administrative commands.
    #[serde(default)]
    pub admins: Vec<String>,
    #[serde(default)]
    pub storage: StorageConfig,
    #[serde(default)]
    pub tls: TlsConfig,
    /// Listening sockets. Default: c2s on 5222 (STARTTLS required), direct TLS on 5223,
    /// HTTP on 127.0.0.1:5280.
    #[serde(default = "default_listeners")]
    pub listen: Vec<ListenerConfig>,
    #[serde(default)]
    pub registration: RegistrationConfig,
    #[serde(default)]
    pub limits: LimitsConfig,
    #[serde(default)]
    pub auth: AuthConfig,
    #[serde(default)]
    pub log: LogConfig,
}

/// Where accounts and all other data live.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StorageConfig {
    /// `sqlite://path/to/file.db` (created with its directory on first start) or
    /// `postgres://user:password@host/db`. The environment variable
    /// `SWITCHBOARD_DATABASE_URL` overrides it, so a password need not sit in this file.
    #[serde(default = "default_db_url")]
    pub url: String,
}

/// The certificate presented on STARTTLS and direct TLS.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// PEM certificate chain.
    #[serde(default = "default_cert")]
    pub cert: PathBuf,
    /// PEM private key.
    #[serde(default = "default_key")]
    pub key: PathBuf,
    /// When both files are missing, generate a self-signed certificate for the domains there
    /// (and reuse it on later starts). Meant for development; production sets real files.
    #[serde(default = "yes")]
    pub generate_self_signed: bool,
}

/// What a listener speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ListenerKind {
    /// Client-to-server XMPP with STARTTLS (RFC 6120), usually port 5222.
    C2s,
    /// Client-to-server XMPP over direct TLS (XEP-0368), usually port 5223.
    C2sDirectTls,
    /// HTTP: `/health` (and later metrics and WebSocket).
    Http,
}

impl ListenerKind {
    pub fn name(self) -> &'static str {
        match self {
            ListenerKind::C2s => "c2s",
            ListenerKind::C2sDirectTls => "c2s_direct_tls",
            ListenerKind::Http => "http",
        }
    }
}

/// One listening socket.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListenerConfig {
    pub kind: ListenerKind,
    /// `ip:port`; port 0 picks a free port (see `serve --ports-file`).
    pub address: SocketAddr,
    /// c2s only: refuse authentication before STARTTLS. Turn off only on trusted networks
    /// (for example a loopback benchmark).
    #[serde(default = "yes")]
    pub require_encryption: bool,
}

/// XEP-0077 in-band registration.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegistrationConfig {
    /// Let anyone create an account from their client. Off by default.
    #[serde(default)]
    pub enabled: bool,
    /// Accounts one IP address may register per hour.
    #[serde(default = "default_registrations_per_hour")]
    pub per_ip_per_hour: u32,
    /// Shortest password accepted at registration and password change.
    #[serde(default = "default_min_password")]
    pub min_password_length: usize,
}

/// Resource limits. The defaults suit a public server.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitsConfig {
    /// Bytes a stanza may have after authentication (XEP-0478 advertises it).
    #[serde(default = "default_max_stanza")]
    pub max_stanza_size: usize,
    /// Bytes a stanza may have before authentication.
    #[serde(default = "default_max_stanza_preauth")]
    pub max_stanza_size_preauth: usize,
    /// Element nesting depth inside a stanza.
    #[serde(default = "default_max_depth")]
    pub max_depth: usize,
    /// Simultaneous connections from one IP address.
    #[serde(default = "default_connections_per_ip")]
    pub connections_per_ip: usize,
    /// Simultaneous connections in all.
    #[serde(default = "default_max_connections")]
    pub max_connections: usize,
    /// Seconds a client has to finish TLS, authentication and resource binding.
    #[serde(default = "default_negotiation_timeout")]
    pub negotiation_timeout_secs: u64,
    /// Seconds without traffic before the server pings a client (XEP-0199).
    #[serde(default = "default_idle_ping")]
    pub idle_ping_secs: u64,
    /// Seconds to wait for the answer to that ping before closing the stream.
    #[serde(default = "default_ping_timeout")]
    pub ping_timeout_secs: u64,
    /// Stanzas queued for one session before it is judged too slow and disconnected.
    #[serde(default = "default_mailbox")]
    pub session_queue: usize,
    /// Resources (sessions) one account may have at once.
    #[serde(default = "default_max_resources")]
    pub max_resources_per_user: usize,
    /// Items one roster may hold (RFC 6121 §2); also caps the subscription requests waiting
    /// for one user's answer. Adding more is refused with `not-allowed`.
    #[serde(default = "default_max_roster_items")]
    pub max_roster_items: usize,
    /// Messages kept for one account while it is offline (XEP-0160); past it senders get
    /// `service-unavailable`. 0 turns offline storage off.
    #[serde(default = "default_max_offline")]
    pub max_offline_messages: usize,
    /// Bytes one account's vCard (XEP-0054) may take, as stored; larger ones are refused.
    #[serde(default = "default_max_vcard")]
    pub max_vcard_size: usize,
    /// Bytes of private XML (XEP-0049) one account may store per namespace.
    #[serde(default = "default_max_private")]
    pub max_private_size: usize,
}

/// Authentication policy.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthConfig {
    /// PBKDF2 iterations for new SCRAM credentials (RFC 7677 asks for at least 4096).
    #[serde(default = "default_iterations")]
    pub scram_iterations: u32,
    /// Failed authentications allowed per IP address per minute before further attempts are
    /// refused with `temporary-auth-failure`.
    #[serde(default = "default_failures_per_ip")]
    pub failures_per_ip_per_minute: u32,
    /// Failed authentications allowed per account per minute.
    #[serde(default = "default_failures_per_account")]
    pub failures_per_account_per_minute: u32,
}

/// Log output.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogConfig {
    /// `error`, `warn`, `info`, `debug`, `trace`, or a tracing filter directive. `RUST_LOG`
    /// overrides it. Never `trace` in production: it logs raw traffic.
    #[serde(default = "default_log_level")]
    pub level: String,
    /// `human` or `json`.
    #[serde(default)]
    pub format: LogFormat,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    #[default]
    Human,
    Json,
}

fn yes() -> bool {
    true
}
fn default_db_url() -> String {
    "sqlite://data/switchboard.db".into()
}
fn default_cert() -> PathBuf {
    "data/tls/cert.pem".into()
}
fn default_key() -> PathBuf {
    "data/tls/key.pem".into()
}
fn default_listeners() -> Vec<ListenerConfig> {
    let l = |kind, address: &str| ListenerConfig {
        kind,
        address: address.parse().expect("valid default address"),
        require_encryption: true,
    };
    vec![
        l(ListenerKind::C2s, "0.0.0.0:5222"),
        l(ListenerKind::C2sDirectTls, "0.0.0.0:5223"),
        l(ListenerKind::Http, "127.0.0.1:5280"),
    ]
}
fn default_registrations_per_hour() -> u32 {
    5
}
fn default_min_password() -> usize {
    6
}
fn default_max_stanza() -> usize {
    262_144
}
fn default_max_stanza_preauth() -> usize {
    10_000
}
fn default_max_depth() -> usize {
    48
}
fn default_connections_per_ip() -> usize {
    64
}
fn default_max_connections() -> usize {
    20_000
}
fn default_negotiation_timeout() -> u64 {
    60
}
fn default_idle_ping() -> u64 {
    300
}
fn default_ping_timeout() -> u64 {
    60
}
fn default_mailbox() -> usize {
    1024
}
fn default_max_resources() -> usize {
    32
}
fn default_max_roster_items() -> usize {
    1000
}
fn default_max_offline() -> usize {
    500
}
fn default_max_vcard() -> usize {
    65_536
}
fn default_max_private() -> usize {
    65_536
}
fn default_iterations() -> u32 {
    10_000
}
fn default_failures_per_ip() -> u32 {
    20
}
fn default_failures_per_account() -> u32 {
    5
}
fn default_log_level() -> String {
    "info".into()
}

macro_rules! defaults_from_serde {
    ($($t:ty),*) => {$(
        impl Default for $t {
            fn default() -> Self {
                toml::from_str("").expect("every field has a default")
            }
        }
    )*};
}
defaults_from_serde!(
    StorageConfig,
    TlsConfig,
    RegistrationConfig,
    LimitsConfig,
    AuthConfig,
    LogConfig
);

/// A configuration error, with the file (and line where known).
#[derive(Debug, thiserror::Error)]
#[error("{path}{}: {message}", line.map(|l| format!(":{l}")).unwrap_or_default())]
pub struct ConfigError {
    pub path: String,
    pub line: Option<usize>,
    pub message: String,
}

impl Config {
    /// Reads, parses and validates a file. Environment overrides apply after parsing.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
            path: path.display().to_string(),
            line: None,
            message: format!("cannot read: {e}"),
        })?;
        let mut config = Self::parse(&text, &path.display().to_string())?;
        if let Ok(url) = std::env::var("SWITCHBOARD_DATABASE_URL") {
            config.storage.url = url;
        }
        Ok(config)
    }

    /// Parses and validates configuration text; `origin` names it in errors.
    pub fn parse(text: &str, origin: &str) -> Result<Config, ConfigError> {
        let config: Config = toml::from_str(text).map_err(|e| ConfigError {
            path: origin.to_string(),
            line: e.span().map(|s| line_of(text, s.start)),
            message: e.message().to_string(),
        })?;
        config.validate().map_err(|(key, message)| ConfigError {
            path: origin.to_string(),
            line: find_key_line(text, key),
            message: format!("{key}: {message}"),
        })?;
        Ok(config)
    }

    fn validate(&self) -> Result<(), (&'static str, String)> {
        if self.domains.is_empty() {
            return Err(("domains", "at least one domain is required".into()));
        }
        for d in &self.domains {
            if jid::BareJid::new(d).map(|j| j.node().is_some()).unwrap_or(true) {
                return Err(("domains", format!("'{d}' is not a valid domain")));
            }
        }
        for a in &self.admins {
            if jid::BareJid::new(a).is_err() {
                return Err(("admins", format!("'{a}' is not a valid JID")));
            }
        }
        let l = &self.limits;
        if l.max_stanza_size < 10_000 {
            return Err((
                "max_stanza_size",
                "must be at least 10000 (RFC 6120 §13.12)".into(),
            ));
        }
        if l.max_stanza_size_preauth < 1024 || l.max_stanza_size_preauth > l.max_stanza_size {
            return Err((
                "max_stanza_size_preauth",
                "must be between 1024 and max_stanza_size".into(),
            ));
        }
        if l.max_depth < 4 {
            return Err(("max_depth", "must be at least 4".into()));
        }
        if l.max_vcard_size < 1024 || l.max_private_size < 1024 {
            return Err((
                "max_vcard_size",
                "vCard and private storage limits must be at least 1024".into(),
            ));
        }
        if l.session_queue < 16 {
            return Err(("session_queue", "must be at least 16".into()));
        }
        if l.connections_per_ip == 0 || l.max_connections == 0 || l.max_resources_per_user == 0 {
            return Err((
                "limits",
                "connection and resource limits must be at least 1".into(),
            ));
        }
        if self.auth.scram_iterations < 4096 {
            return Err(("scram_iterations", "must be at least 4096 (RFC 7677)".into()));
        }
        if !(self.storage.url.starts_with("sqlite:")
            || self.storage.url.starts_with("postgres://")
            || self.storage.url.starts_with("postgresql://"))
        {
            return Err(("url", "must start with sqlite:// or postgres://".into()));
        }
        if tracing_subscriber::EnvFilter::try_new(&self.log.level).is_err() {
            return Err((
                "level",
                format!("'{}' is not a log level or filter", self.log.level),
            ));
        }
        Ok(())
    }

    /// Whether `domain` is hosted here (domains compare case-insensitively).
    pub fn hosts(&self, domain: &str) -> bool {
        self.domains.iter().any(|d| d.eq_ignore_ascii_case(domain))
    }
}

fn line_of(text: &str, offset: usize) -> usize {
    text[..offset.min(text.len())].matches('\n').count() + 1
}

fn find_key_line(text: &str, key: &str) -> Option<usize> {
    text.lines()
        .position(|l| {
            let l = l.trim_start();
            l.starts_with(key) && l[key.len()..].trim_start().starts_with('=')
        })
        .map(|i| i + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minimal_file_gets_defaults() {
        let c = Config::parse("domains = [\"localhost\"]\n", "t").unwrap();
        assert_eq!(c.listen.len(), 3);
        assert_eq!(c.limits.max_stanza_size, 262_144);
        assert!(!c.registration.enabled);
        assert_eq!(c.storage.url, "sqlite://data/switchboard.db");
    }

    #[test]
    fn unknown_key_names_its_line() {
        let e = Config::parse("domains = [\"a\"]\n\n[limits]\nmax_stanza = 5\n", "f.toml").unwrap_err();
        assert_eq!(e.line, Some(4), "{e}");
        assert!(e.to_string().starts_with("f.toml:4:"), "{e}");
    }

    #[test]
    fn validation_errors_name_key_and_line() {
        let e = Config::parse("domains = [\"a\"]\n[limits]\nmax_stanza_size = 10\n", "f").unwrap_err();
        assert_eq!(e.line, Some(3));
        assert!(e.message.contains("max_stanza_size"));
        assert!(Config::parse("domains = []", "f").is_err());
        assert!(Config::parse("domains = [\"a@b\"]", "f").is_err());
    }

    #[test]
    fn shipped_configs_are_valid() {
        let root = env!("CARGO_MANIFEST_DIR");
        for f in ["config/switchboard.toml", "config/example.toml"] {
            Config::load(&Path::new(root).join(f)).unwrap_or_else(|e| panic!("{e}"));
        }
    }
}
