//! The one configuration file as a serde struct. Every key is documented once, in
//! [`docs::KEYS`] (which also generates `config/example.toml` and marks the keys a reload
//! cannot change); the fields here carry no doc comments of their own.
//!
//! Unknown keys are errors (a typo must not silently fall back to a default), and every
//! error names the file and line. `config/example.toml` lists every key with its default.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

pub mod docs;
pub mod reload;

/// The whole configuration.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    pub domains: Vec<String>,
    #[serde(default)]
    pub admins: Vec<String>,
    #[serde(default)]
    pub storage: StorageConfig,
    #[serde(default)]
    pub tls: TlsConfig,
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
    #[serde(default)]
    pub muc: MucConfig,
    #[serde(default)]
    pub contact: ContactConfig,
    #[serde(default)]
    pub roster_notes: RosterNotesConfig,
    #[serde(default)]
    pub upload: UploadConfig,
    #[serde(default)]
    pub external_services: ExternalServicesConfig,
    #[serde(default)]
    pub proxy65: Proxy65Config,
    #[serde(default)]
    pub pubsub: PubSubConfig,
    #[serde(default)]
    pub web: WebConfig,
    #[serde(default)]
    pub mam: MamConfig,
    #[serde(default)]
    pub stream_management: StreamManagementConfig,
}

/// XEP-0313 message archives of accounts.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct MamConfig {
    #[serde(default = "yes")]
    pub enabled: bool,
}

impl Default for MamConfig {
    fn default() -> Self {
        MamConfig { enabled: true }
    }
}

/// XEP-0198 stream management.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct StreamManagementConfig {
    #[serde(default)]
    pub enabled: bool,
    #[serde(default = "default_sm_request_every")]
    pub request_ack_every: u32,
    #[serde(default = "default_sm_request_after")]
    pub request_ack_after_secs: u64,
    #[serde(default = "default_sm_max_unacked")]
    pub max_unacked: usize,
    #[serde(default = "default_sm_resume_timeout")]
    pub resume_timeout_secs: u64,
}

impl Default for StreamManagementConfig {
    fn default() -> Self {
        StreamManagementConfig {
            enabled: false,
            request_ack_every: default_sm_request_every(),
            request_ack_after_secs: default_sm_request_after(),
            max_unacked: default_sm_max_unacked(),
            resume_timeout_secs: default_sm_resume_timeout(),
        }
    }
}

fn default_sm_request_every() -> u32 {
    5
}
fn default_sm_request_after() -> u64 {
    30
}
fn default_sm_max_unacked() -> usize {
    5000
}
fn default_sm_resume_timeout() -> u64 {
    300
}

/// Web clients on the HTTP listeners: RFC 7395 WebSocket, XEP-0206 BOSH, XEP-0156 discovery.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct WebConfig {
    #[serde(default)]
    pub origins: Vec<String>,
    #[serde(default)]
    pub websocket_url: Option<String>,
    #[serde(default)]
    pub websocket_see_other_uri: Option<String>,
    #[serde(default)]
    pub bosh_url: Option<String>,
    #[serde(default = "default_bosh_inactivity")]
    pub bosh_inactivity_secs: u64,
}

impl Default for WebConfig {
    fn default() -> Self {
        WebConfig {
            origins: Vec::new(),
            websocket_url: None,
            websocket_see_other_uri: None,
            bosh_url: None,
            bosh_inactivity_secs: default_bosh_inactivity(),
        }
    }
}

fn default_bosh_inactivity() -> u64 {
    60
}

/// XEP-0065 SOCKS5 bytestreams proxy.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Proxy65Config {
    #[serde(default)]
    pub enabled: bool,
    #[serde(default)]
    pub domain: Option<String>,
    #[serde(default = "default_proxy65_address")]
    pub address: SocketAddr,
    #[serde(default)]
    pub host: Option<String>,
    #[serde(default = "default_proxy65_max_transfer")]
    pub max_transfer_size: u64,
    #[serde(default = "default_proxy65_rate")]
    pub bytes_per_second: u64,
    #[serde(default = "default_proxy65_activation_timeout")]
    pub activation_timeout_secs: u64,
    #[serde(default = "default_proxy65_per_ip")]
    pub max_connections_per_ip: u32,
}

impl Proxy65Config {
    /// The service domain, or `None` when disabled.
    pub fn service_domain(&self, domains: &[String]) -> Option<String> {
        if !self.enabled {
            return None;
        }
        Some(match &self.domain {
            Some(d) => d.clone(),
            None => format!("proxy.{}", domains.first()?),
        })
    }

    fn validate(&self, config: &Config) -> Result<(), (&'static str, String)> {
        if let Some(d) = self.service_domain(&config.domains)
            && (jid::BareJid::new(&d).map(|j| j.node().is_some()).unwrap_or(true)
                || config.hosts(&d)
                || config.muc.service_domain(&config.domains).as_deref() == Some(d.as_str())
                || config.upload.service_domain(&config.domains).as_deref() == Some(d.as_str()))
        {
            return Err((
                "domain",
                format!("'{d}' is not a valid proxy domain (nor may it be hosted or another service's)"),
            ));
        }
        if self.enabled && self.address.ip().is_unspecified() && self.host.is_none() {
            return Err((
                "host",
                "the proxy listens on every address: say which host clients should connect to".into(),
            ));
        }
        if self.max_connections_per_ip == 0 {
            return Err(("max_connections_per_ip", "must be at least 1".into()));
        }
        if self.max_transfer_size == 0 || self.activation_timeout_secs == 0 {
            return Err((
                "max_transfer_size",
                "max_transfer_size and activation_timeout_secs must be at least 1".into(),
            ));
        }
        Ok(())
    }
}

/// XEP-0060 publish-subscribe service.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct PubSubConfig {
    #[serde(default)]
    pub enabled: bool,
    #[serde(default)]
    pub domain: Option<String>,
    #[serde(default)]
    pub creators: PubSubCreators,
}

/// Who may create nodes on the publish-subscribe service.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PubSubCreators {
    /// Every account of a hosted domain.
    #[default]
    Local,
    Admins,
}

impl PubSubConfig {
    /// The service domain, or `None` when disabled.
    pub fn service_domain(&self, domains: &[String]) -> Option<String> {
        if !self.enabled {
            return None;
        }
        Some(match &self.domain {
            Some(d) => d.clone(),
            None => format!("pubsub.{}", domains.first()?),
        })
    }

    fn validate(&self, config: &Config) -> Result<(), (&'static str, String)> {
        if let Some(d) = self.service_domain(&config.domains)
            && (jid::BareJid::new(&d).map(|j| j.node().is_some()).unwrap_or(true)
                || config.hosts(&d)
                || [
                    config.muc.service_domain(&config.domains),
                    config.upload.service_domain(&config.domains),
                    config.proxy65.service_domain(&config.domains),
                ]
                .contains(&Some(d.clone())))
        {
            return Err((
                "domain",
                format!("'{d}' is not a valid pubsub domain (nor may it be hosted or another service's)"),
            ));
        }
        Ok(())
    }
}

/// XEP-0215 external services (STUN and TURN servers for calls).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ExternalServicesConfig {
    #[serde(default)]
    pub services: Vec<ExternalService>,
    #[serde(default)]
    pub secret: Option<String>,
    #[serde(default = "default_turn_credential_lifetime")]
    pub credential_lifetime_secs: u64,
}

/// One STUN or TURN server.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ExternalService {
    #[serde(rename = "type")]
    pub kind: ExternalServiceKind,
    pub host: String,
    #[serde(default)]
    pub port: Option<u16>,
    #[serde(default)]
    pub transport: Option<ExternalTransport>,
    #[serde(default)]
    pub name: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ExternalServiceKind {
    Stun,
    Stuns,
    Turn,
    Turns,
}

impl ExternalServiceKind {
    pub fn name(self) -> &'static str {
        match self {
            ExternalServiceKind::Stun => "stun",
            ExternalServiceKind::Stuns => "stuns",
            ExternalServiceKind::Turn => "turn",
            ExternalServiceKind::Turns => "turns",
        }
    }

    /// TURN relays take credentials; STUN needs none.
    pub fn is_turn(self) -> bool {
        matches!(self, ExternalServiceKind::Turn | ExternalServiceKind::Turns)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ExternalTransport {
    Udp,
    Tcp,
}

impl ExternalTransport {
    pub fn name(self) -> &'static str {
        match self {
            ExternalTransport::Udp => "udp",
            ExternalTransport::Tcp => "tcp",
        }
    }
}

/// XEP-0363 HTTP file upload, served by the HTTP listener.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct UploadConfig {
    #[serde(default)]
    pub enabled: bool,
    #[serde(default)]
    pub domain: Option<String>,
    #[serde(default = "default_upload_directory")]
    pub directory: PathBuf,
    #[serde(default)]
    pub public_url: Option<String>,
    #[serde(default)]
    pub secret: Option<String>,
    #[serde(default = "default_upload_max_file_size")]
    pub max_file_size: u64,
    #[serde(default = "default_upload_quota")]
    pub quota_per_user: u64,
    #[serde(default = "default_upload_slot_lifetime")]
    pub slot_lifetime_secs: u64,
    #[serde(default = "default_upload_file_lifetime")]
    pub file_lifetime_secs: u64,
    #[serde(default = "default_upload_cleanup_interval")]
    pub cleanup_interval_secs: u64,
}

impl UploadConfig {
    /// The service domain, or `None` when disabled.
    pub fn service_domain(&self, domains: &[String]) -> Option<String> {
        if !self.enabled {
            return None;
        }
        Some(match &self.domain {
            Some(d) => d.clone(),
            None => format!("upload.{}", domains.first()?),
        })
    }

    fn validate(&self, config: &Config) -> Result<(), (&'static str, String)> {
        if let Some(d) = self.service_domain(&config.domains)
            && (jid::BareJid::new(&d).map(|j| j.node().is_some()).unwrap_or(true)
                || config.hosts(&d)
                || config.muc.service_domain(&config.domains).as_deref() == Some(d.as_str()))
        {
            return Err((
                "domain",
                format!("'{d}' is not a valid upload domain (nor may it be hosted or the MUC domain)"),
            ));
        }
        if self.enabled && !config.listen.iter().any(|l| l.kind.is_http()) {
            return Err(("enabled", "the upload service needs an http listener".into()));
        }
        if let Some(url) = &self.public_url
            && !(url.starts_with("http://") || url.starts_with("https://"))
        {
            return Err(("public_url", "must start with http:// or https://".into()));
        }
        if self.secret.as_ref().is_some_and(|s| s.len() < 16) {
            return Err(("secret", "must be at least 16 characters".into()));
        }
        if self.max_file_size == 0 || self.quota_per_user < self.max_file_size {
            return Err((
                "max_file_size",
                "must be at least 1 and at most quota_per_user".into(),
            ));
        }
        if self.slot_lifetime_secs == 0 || self.file_lifetime_secs == 0 || self.cleanup_interval_secs == 0 {
            return Err((
                "slot_lifetime_secs",
                "slot_lifetime_secs, file_lifetime_secs and cleanup_interval_secs must be at least 1".into(),
            ));
        }
        Ok(())
    }
}

/// XEP-0045 multi-user chat service.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct MucConfig {
    #[serde(default = "yes")]
    pub enabled: bool,
    #[serde(default)]
    pub domain: Option<String>,
    #[serde(default)]
    pub creators: MucCreators,
    #[serde(default = "default_muc_max_occupants")]
    pub max_occupants: usize,
    #[serde(default = "default_muc_history")]
    pub history_default: usize,
    #[serde(default = "default_muc_max_history")]
    pub max_history: usize,
    #[serde(default = "default_muc_rooms_per_user")]
    pub rooms_per_user: usize,
    #[serde(default)]
    pub persistent_creators: MucCreators,
    #[serde(default = "default_muc_max_room_address")]
    pub max_room_address_length: usize,
    #[serde(default = "default_muc_max_room_name")]
    pub max_room_name_length: usize,
    #[serde(default = "default_muc_max_description")]
    pub max_description_length: usize,
    #[serde(default = "default_muc_max_nick")]
    pub max_nick_length: usize,
    #[serde(default = "default_muc_items_page")]
    pub max_items_per_page: usize,
    #[serde(default = "default_muc_idle_unload")]
    pub idle_unload_secs: u64,
    #[serde(default = "default_muc_room_queue")]
    pub room_queue_length: usize,
    #[serde(default = "default_muc_room_queue_wait")]
    pub room_queue_wait_ms: u64,
    #[serde(default = "yes")]
    pub archiving_default: bool,
    #[serde(default)]
    pub archive_max_age_secs: u64,
}

/// XEP-0157 contact addresses, listed in the server's disco#info (URIs such as
/// `mailto:abuse@example.org` or `xmpp:admin@example.org`).
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ContactConfig {
    #[serde(default)]
    pub abuse: Vec<String>,
    #[serde(default)]
    pub admin: Vec<String>,
    #[serde(default)]
    pub feedback: Vec<String>,
    #[serde(default)]
    pub sales: Vec<String>,
    #[serde(default)]
    pub security: Vec<String>,
    #[serde(default)]
    pub status: Vec<String>,
    #[serde(default)]
    pub support: Vec<String>,
}

impl ContactConfig {
    /// (XEP-0157 field name, addresses), in the registry's order; empty lists included.
    pub fn fields(&self) -> [(&'static str, &[String]); 7] {
        [
            ("abuse-addresses", &self.abuse),
            ("admin-addresses", &self.admin),
            ("feedback-addresses", &self.feedback),
            ("sales-addresses", &self.sales),
            ("security-addresses", &self.security),
            ("status-addresses", &self.status),
            ("support-addresses", &self.support),
        ]
    }

    pub fn is_empty(&self) -> bool {
        self.fields().iter().all(|(_, a)| a.is_empty())
    }
}

/// Who may create MUC rooms.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum MucCreators {
    #[default]
    Anyone,
    Admins,
}

impl MucConfig {
    /// The service domain, or `None` when disabled.
    pub fn service_domain(&self, domains: &[String]) -> Option<String> {
        if !self.enabled {
            return None;
        }
        Some(match &self.domain {
            Some(d) => d.clone(),
            None => format!("conference.{}", domains.first()?),
        })
    }
}

/// Where accounts and all other data live.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct StorageConfig {
    #[serde(default = "default_db_url")]
    pub url: String,
}

/// The certificate presented on STARTTLS and direct TLS.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    #[serde(default = "default_cert")]
    pub cert: PathBuf,
    #[serde(default = "default_key")]
    pub key: PathBuf,
    #[serde(default = "yes")]
    pub generate_self_signed: bool,
}

/// What a listener speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ListenerKind {
    /// Client-to-server XMPP with STARTTLS (RFC 6120), usually port 5222.
    C2s,
    /// Client-to-server XMPP over direct TLS (XEP-0368), usually port 5223.
    C2sDirectTls,
    /// HTTP: `/health`, `/metrics`, WebSocket, BOSH, host-meta, uploads.
    Http,
    /// The same routes over TLS with the c2s certificate, usually port 5281.
    Https,
}

impl ListenerKind {
    /// Serves the HTTP routes (plain or TLS).
    pub fn is_http(self) -> bool {
        matches!(self, ListenerKind::Http | ListenerKind::Https)
    }

    pub fn name(self) -> &'static str {
        match self {
            ListenerKind::C2s => "c2s",
            ListenerKind::C2sDirectTls => "c2s_direct_tls",
            ListenerKind::Http => "http",
            ListenerKind::Https => "https",
        }
    }
}

/// One listening socket.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ListenerConfig {
    pub kind: ListenerKind,
    pub address: SocketAddr,
    #[serde(default = "yes")]
    pub require_encryption: bool,
    #[serde(default)]
    pub session_rate: Option<RateConfig>,
    #[serde(default)]
    pub behind_tls_proxy: bool,
}

/// XEP-0077 in-band registration.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RegistrationConfig {
    #[serde(default)]
    pub enabled: bool,
    #[serde(default = "default_registrations_per_hour")]
    pub per_ip_per_hour: u32,
    #[serde(default = "default_min_password")]
    pub min_password_length: usize,
}

/// Resource limits. The defaults suit a public server.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct LimitsConfig {
    #[serde(default = "default_max_stanza")]
    pub max_stanza_size: usize,
    #[serde(default = "default_max_stanza_preauth")]
    pub max_stanza_size_preauth: usize,
    #[serde(default = "default_max_depth")]
    pub max_depth: usize,
    #[serde(default = "default_connections_per_ip")]
    pub connections_per_ip: usize,
    #[serde(default = "default_unauthenticated_per_ip")]
    pub unauthenticated_per_ip: usize,
    #[serde(default = "default_max_connections")]
    pub max_connections: usize,
    #[serde(default = "default_negotiation_timeout")]
    pub negotiation_timeout_secs: u64,
    #[serde(default = "default_negotiation_idle")]
    pub negotiation_idle_secs: u64,
    #[serde(default = "default_idle_ping")]
    pub idle_ping_secs: u64,
    #[serde(default = "default_ping_timeout")]
    pub ping_timeout_secs: u64,
    #[serde(default = "default_mailbox")]
    pub session_queue: usize,
    #[serde(default = "default_max_resources")]
    pub max_resources_per_user: usize,
    #[serde(default = "default_max_roster_items")]
    pub max_roster_items: usize,
    #[serde(default = "default_max_offline")]
    pub max_offline_messages: usize,
    #[serde(default = "default_csi_max_held")]
    pub csi_max_held: usize,
    #[serde(default = "default_max_archive_page")]
    pub max_archive_page: usize,
    #[serde(default)]
    pub archive_max_age_secs: u64,
    #[serde(default = "default_max_vcard")]
    pub max_vcard_size: usize,
    #[serde(default = "default_max_private")]
    pub max_private_size: usize,
    #[serde(default = "default_throttle_disconnect")]
    pub throttle_disconnect_secs: u64,
    #[serde(default = "default_presence_rate")]
    pub presence_per_second: u32,
    #[serde(default = "default_presence_burst")]
    pub presence_burst: u32,
    #[serde(default = "default_subscriptions")]
    pub subscriptions_per_minute: u32,
    #[serde(default)]
    pub session_rate: RateConfig,
    #[serde(default)]
    pub admin_session_rate: Option<RateConfig>,
}

/// Per-session read pacing: token buckets for stanzas and bytes. 0 as a rate: no limit.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RateConfig {
    #[serde(default = "default_stanza_rate")]
    pub stanzas_per_second: u32,
    #[serde(default = "default_stanza_burst")]
    pub stanza_burst: u32,
    #[serde(default = "default_byte_rate")]
    pub bytes_per_second: u32,
    #[serde(default = "default_byte_burst")]
    pub bytes_burst: u32,
}

/// Authentication policy.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct AuthConfig {
    #[serde(default = "default_iterations")]
    pub scram_iterations: u32,
    #[serde(default = "default_failures_per_ip")]
    pub failures_per_ip_per_minute: u32,
    #[serde(default = "default_failures_per_account")]
    pub failures_per_account_per_minute: u32,
    #[serde(default = "default_fast_token_lifetime_secs")]
    pub fast_token_lifetime_secs: u64,
}

/// Log output.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct LogConfig {
    #[serde(default = "default_log_level")]
    pub level: String,
    #[serde(default)]
    pub format: LogFormat,
    #[serde(default = "default_repeat_interval_secs")]
    pub repeat_interval_secs: u64,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
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
        session_rate: None,
        behind_tls_proxy: false,
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
fn default_unauthenticated_per_ip() -> usize {
    8
}
fn default_negotiation_idle() -> u64 {
    10
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
fn default_csi_max_held() -> usize {
    256
}
fn default_max_offline() -> usize {
    500
}
fn default_max_archive_page() -> usize {
    250
}
fn default_max_vcard() -> usize {
    65_536
}
fn default_max_private() -> usize {
    65_536
}
fn default_throttle_disconnect() -> u64 {
    10
}
fn default_presence_rate() -> u32 {
    5
}
fn default_presence_burst() -> u32 {
    30
}
fn default_subscriptions() -> u32 {
    60
}
// Generous on purpose: one benchmark sender pushes 2000-4000 small messages a second.
fn default_stanza_rate() -> u32 {
    5000
}
fn default_stanza_burst() -> u32 {
    10_000
}
fn default_byte_rate() -> u32 {
    2_097_152
}
fn default_byte_burst() -> u32 {
    4_194_304
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
fn default_fast_token_lifetime_secs() -> u64 {
    14 * 24 * 3600
}
fn default_proxy65_address() -> SocketAddr {
    "127.0.0.1:7777".parse().expect("valid default address")
}
fn default_proxy65_max_transfer() -> u64 {
    1_073_741_824
}
fn default_proxy65_rate() -> u64 {
    10_485_760
}
fn default_proxy65_per_ip() -> u32 {
    16
}
fn default_proxy65_activation_timeout() -> u64 {
    60
}
fn default_turn_credential_lifetime() -> u64 {
    86_400
}
fn default_upload_directory() -> PathBuf {
    "data/upload".into()
}
fn default_upload_max_file_size() -> u64 {
    104_857_600
}
fn default_upload_quota() -> u64 {
    1_073_741_824
}
fn default_upload_slot_lifetime() -> u64 {
    300
}
fn default_upload_file_lifetime() -> u64 {
    2_592_000
}
fn default_upload_cleanup_interval() -> u64 {
    3600
}
fn default_muc_max_occupants() -> usize {
    200
}
fn default_muc_history() -> usize {
    20
}
fn default_muc_max_history() -> usize {
    100
}
fn default_muc_rooms_per_user() -> usize {
    50
}
fn default_muc_max_room_address() -> usize {
    64
}
fn default_muc_max_room_name() -> usize {
    100
}
fn default_muc_max_description() -> usize {
    1000
}
fn default_muc_max_nick() -> usize {
    64
}
fn default_muc_items_page() -> usize {
    100
}
fn default_muc_idle_unload() -> u64 {
    300
}
fn default_muc_room_queue() -> usize {
    256
}
fn default_muc_room_queue_wait() -> u64 {
    10_000
}
fn default_max_note() -> usize {
    1000
}
fn default_log_level() -> String {
    "info".into()
}

fn default_repeat_interval_secs() -> u64 {
    60
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
    MucConfig,
    StorageConfig,
    TlsConfig,
    RegistrationConfig,
    LimitsConfig,
    AuthConfig,
    LogConfig,
    RosterNotesConfig,
    RateConfig,
    UploadConfig,
    ExternalServicesConfig,
    Proxy65Config,
    PubSubConfig
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
        if let Ok(keys) = std::env::var("SWITCHBOARD_NOTE_KEYS") {
            let err = |message: String| ConfigError {
                path: path.display().to_string(),
                line: None,
                message,
            };
            config.roster_notes.keys = RosterNotesConfig::keys_from_env(&keys).map_err(err)?;
            config
                .roster_notes
                .validate()
                .map_err(|(key, m)| err(format!("roster_notes.{key} (SWITCHBOARD_NOTE_KEYS): {m}")))?;
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
        if l.connections_per_ip == 0
            || l.unauthenticated_per_ip == 0
            || l.max_connections == 0
            || l.max_resources_per_user == 0
        {
            return Err((
                "limits",
                "connection and resource limits must be at least 1".into(),
            ));
        }
        if let Some(d) = self.muc.service_domain(&self.domains)
            && (jid::BareJid::new(&d).map(|j| j.node().is_some()).unwrap_or(true) || self.hosts(&d))
        {
            return Err((
                "domain",
                format!("'{d}' is not a valid MUC domain (nor may it be hosted)"),
            ));
        }
        if l.negotiation_idle_secs == 0 || l.negotiation_idle_secs > l.negotiation_timeout_secs {
            return Err((
                "negotiation_idle_secs",
                "must be between 1 and negotiation_timeout_secs".into(),
            ));
        }
        if l.throttle_disconnect_secs == 0 {
            return Err(("throttle_disconnect_secs", "must be at least 1".into()));
        }
        if l.presence_per_second > 0 && l.presence_burst == 0 {
            return Err(("presence_burst", "must be at least 1".into()));
        }
        let rates = std::iter::once(&l.session_rate)
            .chain(l.admin_session_rate.as_ref())
            .chain(self.listen.iter().filter_map(|x| x.session_rate.as_ref()));
        for r in rates {
            if (r.stanzas_per_second > 0 && r.stanza_burst == 0)
                || (r.bytes_per_second > 0 && r.bytes_burst == 0)
            {
                return Err(("stanza_burst", "a burst must be at least 1".into()));
            }
        }
        let m = &self.muc;
        if m.room_queue_length == 0 {
            return Err(("room_queue_length", "must be at least 1".into()));
        }
        for (field, addresses) in self.contact.fields() {
            if let Some(a) = addresses.iter().find(|a| !a.contains(':')) {
                return Err((
                    "contact",
                    format!("{field}: '{a}' is not a URI (mailto:, xmpp:, https:)"),
                ));
            }
        }
        if m.max_occupants == 0 || m.history_default > m.max_history {
            return Err((
                "max_occupants",
                "max_occupants must be at least 1 and history_default at most max_history".into(),
            ));
        }
        if self.auth.fast_token_lifetime_secs == 0 || self.auth.fast_token_lifetime_secs > 366 * 24 * 3600 {
            return Err((
                "fast_token_lifetime_secs",
                "must be between 1 second and a year".into(),
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
        self.roster_notes.validate()?;
        self.upload.validate(self)?;
        self.proxy65.validate(self)?;
        self.pubsub.validate(self)?;
        if self.external_services.services.iter().any(|s| s.host.is_empty()) {
            return Err(("services", "every external service needs a host".into()));
        }
        if self.external_services.credential_lifetime_secs == 0 {
            return Err(("credential_lifetime_secs", "must be at least 1".into()));
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

/// A roster note key id and its 32 bytes.
pub type DecodedNoteKey = (String, zeroize::Zeroizing<[u8; 32]>);

/// Private per-contact roster notes (`xep/xep-roster-notes.md`), encrypted at rest with
/// AES-256-GCM. Without keys the feature is off and not advertised.
#[derive(Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RosterNotesConfig {
    #[serde(default)]
    pub keys: std::collections::BTreeMap<String, String>,
    #[serde(default)]
    pub active_key: Option<String>,
    #[serde(default = "default_max_note")]
    pub max_length: usize,
}

impl std::fmt::Debug for RosterNotesConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print the keys.
        f.debug_struct("RosterNotesConfig")
            .field("keys", &self.keys.keys().collect::<Vec<_>>())
            .field("active_key", &self.active_key)
            .field("max_length", &self.max_length)
            .finish()
    }
}

impl RosterNotesConfig {
    /// Whether notes are on (keys configured).
    pub fn enabled(&self) -> bool {
        !self.keys.is_empty()
    }

    /// The decoded keys; errors name the key.
    pub fn decoded_keys(&self) -> Result<Vec<DecodedNoteKey>, String> {
        use base64::Engine;
        let mut out = Vec::with_capacity(self.keys.len());
        for (id, b64) in &self.keys {
            if id.is_empty()
                || id.len() > 64
                || !id
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
            {
                return Err(format!("key id '{id}' must be 1-64 characters of [A-Za-z0-9_-]"));
            }
            let bytes = zeroize::Zeroizing::new(
                base64::engine::general_purpose::STANDARD
                    .decode(b64.trim())
                    .map_err(|_| format!("key '{id}' is not valid base64"))?,
            );
            let key: [u8; 32] = bytes
                .as_slice()
                .try_into()
                .map_err(|_| format!("key '{id}' must be 32 bytes, not {}", bytes.len()))?;
            out.push((id.clone(), zeroize::Zeroizing::new(key)));
        }
        Ok(out)
    }

    /// Parses `SWITCHBOARD_NOTE_KEYS` (`id=base64,id=base64`).
    fn keys_from_env(text: &str) -> Result<std::collections::BTreeMap<String, String>, String> {
        let mut keys = std::collections::BTreeMap::new();
        for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let Some((id, key)) = part.split_once('=') else {
                return Err(format!(
                    "SWITCHBOARD_NOTE_KEYS: an entry is not id=base64 (near '{}')",
                    &part[..part.len().min(8)]
                ));
            };
            keys.insert(id.trim().to_owned(), key.trim().to_owned());
        }
        Ok(keys)
    }

    fn validate(&self) -> Result<(), (&'static str, String)> {
        if self.max_length == 0 || self.max_length > 10_000 {
            return Err(("max_length", "must be between 1 and 10000".into()));
        }
        if self.keys.is_empty() {
            // With SWITCHBOARD_NOTE_KEYS, the keys come after parsing: `load` validates again.
            if let Some(active) = &self.active_key
                && std::env::var_os("SWITCHBOARD_NOTE_KEYS").is_none()
            {
                return Err((
                    "active_key",
                    format!("key '{active}' is not in keys (no keys are configured)"),
                ));
            }
            return Ok(());
        }
        self.decoded_keys().map_err(|e| ("keys", e))?;
        match &self.active_key {
            None => Err(("active_key", "required when keys are configured".into())),
            Some(a) if !self.keys.contains_key(a) => Err(("active_key", format!("key '{a}' is not in keys"))),
            Some(_) => Ok(()),
        }
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
    fn roster_notes_keys_are_validated() {
        let k = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=";
        let ok =
            format!("domains = [\"a\"]\n[roster_notes]\nkeys = {{ \"1\" = \"{k}\" }}\nactive_key = \"1\"\n");
        let c = Config::parse(&ok, "f").unwrap();
        assert!(c.roster_notes.enabled());
        assert_eq!(c.roster_notes.decoded_keys().unwrap().len(), 1);
        assert!(!format!("{c:?}").contains(k), "keys are not printed");
        let short = "domains = [\"a\"]\n[roster_notes]\nkeys = { \"k7\" = \"AAAA\" }\nactive_key = \"k7\"\n";
        let e = Config::parse(short, "f").unwrap_err();
        assert!(e.message.contains("'k7'"), "{e}");
        let missing =
            format!("domains = [\"a\"]\n[roster_notes]\nkeys = {{ \"1\" = \"{k}\" }}\nactive_key = \"2\"\n");
        let e = Config::parse(&missing, "f").unwrap_err();
        assert!(e.message.contains("'2'"), "{e}");
        assert!(
            !Config::parse("domains = [\"a\"]\n", "f")
                .unwrap()
                .roster_notes
                .enabled()
        );
        let env = RosterNotesConfig::keys_from_env(&format!("1={k}, 2={k}")).unwrap();
        assert_eq!(env.len(), 2);
        assert!(RosterNotesConfig::keys_from_env("nokey").is_err());
    }

    #[test]
    fn shipped_configs_are_valid() {
        let root = env!("CARGO_MANIFEST_DIR");
        for f in ["config/switchboard.toml", "config/example.toml"] {
            Config::load(&Path::new(root).join(f)).unwrap_or_else(|e| panic!("{e}"));
        }
    }
}
