//! SASL mechanisms (RFC 4422): SCRAM-SHA-1/256 and their -PLUS variants (RFC 5802, 7677), PLAIN.
//!
//! Pure state machines: no I/O, no storage. The caller looks credentials up and maps
//! [`SaslFailure`] to the `<failure/>` element of RFC 6120 §6.5.

pub mod credentials;
mod crypto;
pub mod ht;
pub mod plain;
pub mod scram;
mod scram_msg;
#[cfg(test)]
mod scram_tests;

pub use credentials::{
    HashAlg, ScramCredentials, derive_credentials, fake_credentials, new_credentials, prepare_password,
    verify_password,
};
/// Constant-time comparison, for secrets checked outside SASL too (XEP-0198 resumption ids).
pub(crate) use crypto::ct_eq;
pub use plain::{PlainMessage, parse_plain};
pub use scram::{ClientFirst, ScramServer};

/// Largest SASL payload (after base64 decoding) any step accepts.
pub const MAX_MESSAGE_LEN: usize = 4096;

/// A mechanism this server implements.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Mechanism {
    ScramSha1,
    ScramSha1Plus,
    ScramSha256,
    ScramSha256Plus,
    Plain,
}

impl Mechanism {
    /// Every mechanism, strongest first (the order to advertise them in).
    pub const ALL: [Mechanism; 5] = [
        Mechanism::ScramSha256Plus,
        Mechanism::ScramSha1Plus,
        Mechanism::ScramSha256,
        Mechanism::ScramSha1,
        Mechanism::Plain,
    ];

    /// The IANA-registered name, as sent in `<mechanism/>` and `<auth mechanism=.../>`.
    pub fn name(self) -> &'static str {
        match self {
            Mechanism::ScramSha1 => "SCRAM-SHA-1",
            Mechanism::ScramSha1Plus => "SCRAM-SHA-1-PLUS",
            Mechanism::ScramSha256 => "SCRAM-SHA-256",
            Mechanism::ScramSha256Plus => "SCRAM-SHA-256-PLUS",
            Mechanism::Plain => "PLAIN",
        }
    }

    /// Exact (case-sensitive) match on the registered name.
    pub fn from_name(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|m| m.name() == s)
    }

    /// The SCRAM hash, or None for PLAIN.
    pub fn hash(self) -> Option<HashAlg> {
        match self {
            Mechanism::ScramSha1 | Mechanism::ScramSha1Plus => Some(HashAlg::Sha1),
            Mechanism::ScramSha256 | Mechanism::ScramSha256Plus => Some(HashAlg::Sha256),
            Mechanism::Plain => None,
        }
    }

    /// Whether this is a channel-binding (-PLUS) variant.
    pub fn is_plus(self) -> bool {
        matches!(self, Mechanism::ScramSha1Plus | Mechanism::ScramSha256Plus)
    }
}

/// RFC 6120 §6.5 failure conditions we may send.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SaslFailure {
    Aborted,
    AccountDisabled,
    CredentialsExpired,
    EncryptionRequired,
    IncorrectEncoding,
    InvalidAuthzid,
    InvalidMechanism,
    MalformedRequest,
    MechanismTooWeak,
    NotAuthorized,
    TemporaryAuthFailure,
}

impl SaslFailure {
    /// The element name of the condition inside `<failure/>`, e.g. "not-authorized".
    pub fn condition(self) -> &'static str {
        match self {
            SaslFailure::Aborted => "aborted",
            SaslFailure::AccountDisabled => "account-disabled",
            SaslFailure::CredentialsExpired => "credentials-expired",
            SaslFailure::EncryptionRequired => "encryption-required",
            SaslFailure::IncorrectEncoding => "incorrect-encoding",
            SaslFailure::InvalidAuthzid => "invalid-authzid",
            SaslFailure::InvalidMechanism => "invalid-mechanism",
            SaslFailure::MalformedRequest => "malformed-request",
            SaslFailure::MechanismTooWeak => "mechanism-too-weak",
            SaslFailure::NotAuthorized => "not-authorized",
            SaslFailure::TemporaryAuthFailure => "temporary-auth-failure",
        }
    }
}

impl std::fmt::Display for SaslFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.condition())
    }
}

impl std::error::Error for SaslFailure {}

/// Channel-binding data of the TLS connection this exchange runs on (None = not available / no TLS).
#[derive(Default, Clone)]
pub struct ChannelBindings {
    /// RFC 9266: 32 bytes of `EXPORTER-Channel-Binding` keying material (TLS 1.3, or 1.2 with EMS).
    pub tls_exporter: Option<Vec<u8>>,
    /// RFC 5929: hash of the server certificate.
    pub tls_server_end_point: Option<Vec<u8>>,
}

impl ChannelBindings {
    /// The data for a `p=` channel-binding type name, if we have it.
    pub fn get(&self, cb_name: &str) -> Option<&[u8]> {
        match cb_name {
            "tls-exporter" => self.tls_exporter.as_deref(),
            "tls-server-end-point" => self.tls_server_end_point.as_deref(),
            _ => None,
        }
    }

    /// Types we can bind to, e.g. for the XEP-0440 `<sasl-channel-binding/>` advertisement.
    /// Empty means -PLUS mechanisms must not be offered.
    pub fn supported_types(&self) -> Vec<&'static str> {
        let mut out = Vec::new();
        if self.tls_exporter.is_some() {
            out.push("tls-exporter");
        }
        if self.tls_server_end_point.is_some() {
            out.push("tls-server-end-point");
        }
        out
    }
}

impl std::fmt::Debug for ChannelBindings {
    // Binding data identifies the TLS session: log only which types exist.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChannelBindings")
            .field("tls_exporter", &self.tls_exporter.is_some())
            .field("tls_server_end_point", &self.tls_server_end_point.is_some())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mechanism_names_round_trip() {
        for m in Mechanism::ALL {
            assert_eq!(Mechanism::from_name(m.name()), Some(m));
            assert_eq!(m.hash().is_none(), m == Mechanism::Plain);
        }
        assert_eq!(Mechanism::from_name("scram-sha-1"), None);
        assert_eq!(Mechanism::from_name("SCRAM-SHA-512"), None);
        assert!(Mechanism::ScramSha256Plus.is_plus());
        assert!(!Mechanism::ScramSha256.is_plus());
    }

    #[test]
    fn failure_conditions() {
        assert_eq!(SaslFailure::NotAuthorized.condition(), "not-authorized");
        assert_eq!(SaslFailure::MalformedRequest.to_string(), "malformed-request");
    }

    #[test]
    fn channel_binding_lookup() {
        let cb = ChannelBindings {
            tls_exporter: Some(vec![1; 32]),
            tls_server_end_point: None,
        };
        assert_eq!(cb.get("tls-exporter"), Some(&[1u8; 32][..]));
        assert_eq!(cb.get("tls-server-end-point"), None);
        assert_eq!(cb.get("tls-unique"), None);
        assert_eq!(cb.supported_types(), vec!["tls-exporter"]);
        assert!(ChannelBindings::default().supported_types().is_empty());
    }
}
