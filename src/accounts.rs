//! Account management shared by the CLI, in-band registration and admin commands: JID
//! validation, credential derivation, and the storage calls.

use std::sync::Arc;

use jid::{BareJid, FullJid};

use crate::config::Config;
use crate::router::hooks::AccountRemoved;
use crate::sasl::{self, HashAlg};
use crate::server::Server;
use crate::storage::{Storage, StorageError};

/// Why an account operation failed; the messages are shown to users and admins as they are.
#[derive(Debug, thiserror::Error)]
pub enum AccountError {
    #[error("'{0}' is not a valid JID (expected user@domain)")]
    InvalidJid(String),
    #[error("domain '{0}' is not hosted by this server (domains: {1})")]
    UnknownDomain(String, String),
    #[error("user {0} already exists")]
    Exists(String),
    #[error("user {0} does not exist")]
    NotFound(String),
    #[error("the password must have at least {0} characters")]
    WeakPassword(usize),
    #[error("the password contains characters that are not allowed")]
    InvalidPassword,
    #[error(transparent)]
    Storage(#[from] StorageError),
}

/// A validated, normalized account address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Account {
    /// Nodeprep'd local part.
    pub user: String,
    /// The configured spelling of a hosted domain.
    pub domain: String,
}

impl std::fmt::Display for Account {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}@{}", self.user, self.domain)
    }
}

impl Account {
    /// Parses `user@domain`, normalizes it (RFC 7622) and checks the domain is hosted.
    pub fn parse(jid: &str, config: &Config) -> Result<Account, AccountError> {
        let parsed = jid::BareJid::new(jid).map_err(|_| AccountError::InvalidJid(jid.into()))?;
        let user = parsed
            .node()
            .ok_or_else(|| AccountError::InvalidJid(jid.into()))?
            .to_string();
        Self::from_parts(&user, parsed.domain().as_str(), config)
    }

    /// Builds an account from a local part and domain (for example a SASL username).
    pub fn from_parts(user: &str, domain: &str, config: &Config) -> Result<Account, AccountError> {
        let joined = format!("{user}@{domain}");
        let parsed = jid::BareJid::new(&joined).map_err(|_| AccountError::InvalidJid(joined.clone()))?;
        let user = parsed
            .node()
            .ok_or_else(|| AccountError::InvalidJid(joined.clone()))?
            .to_string();
        let domain = config
            .domains
            .iter()
            .find(|d| d.eq_ignore_ascii_case(parsed.domain().as_str()))
            .ok_or_else(|| {
                AccountError::UnknownDomain(parsed.domain().to_string(), config.domains.join(", "))
            })?
            .clone();
        Ok(Account { user, domain })
    }
}

/// Whether `password` may be set: long enough, and SASLprep accepts it.
pub fn validate_password(password: &str, config: &Config) -> Result<(), AccountError> {
    let min = config.registration.min_password_length;
    if password.chars().count() < min {
        return Err(AccountError::WeakPassword(min));
    }
    sasl::prepare_password(password).map_err(|_| AccountError::InvalidPassword)?;
    Ok(())
}

fn credentials_for(password: &str, config: &Config) -> Result<Vec<sasl::ScramCredentials>, AccountError> {
    validate_password(password, config)?;
    let iterations = config.auth.scram_iterations;
    Ok(HashAlg::ALL
        .iter()
        .map(|&alg| sasl::new_credentials(alg, password, iterations))
        .collect())
}

/// Creates an account with SCRAM-SHA-1 and SCRAM-SHA-256 credentials.
pub async fn create(
    storage: &Storage,
    config: &Config,
    account: &Account,
    password: &str,
) -> Result<(), AccountError> {
    let creds = credentials_for(password, config)?;
    match storage.create_user(&account.domain, &account.user, &creds).await {
        Err(StorageError::UserExists) => Err(AccountError::Exists(account.to_string())),
        other => Ok(other?),
    }
}

/// Replaces an account's password.
pub async fn set_password(
    storage: &Storage,
    config: &Config,
    account: &Account,
    password: &str,
) -> Result<(), AccountError> {
    let creds = credentials_for(password, config)?;
    if storage
        .set_credentials(&account.domain, &account.user, &creds)
        .await?
    {
        Ok(())
    } else {
        Err(AccountError::NotFound(account.to_string()))
    }
}

/// Removes an account, from any path (in-band XEP-0077, admin XEP-0133, the CLI): the
/// `account_removed` observers run first, while its data can still be read (the roster tells
/// its contacts), then the account and its data are deleted. `by`: the account's own session
/// that asked (in-band), if any. Sessions still open are the caller's to close.
pub async fn remove(
    server: &Arc<Server>,
    account: &Account,
    by: Option<FullJid>,
) -> Result<(), AccountError> {
    if !server.storage.user_exists(&account.domain, &account.user).await? {
        return Err(AccountError::NotFound(account.to_string()));
    }
    let jid =
        BareJid::new(&account.to_string()).map_err(|_| AccountError::InvalidJid(account.to_string()))?;
    let event = AccountRemoved { account: jid, by };
    server.registry.hooks.account_removed.notify(server, &event).await;
    delete(&server.storage, account).await
}

/// Deletes an account and its data, and nothing else: [`remove`] is the removal that tells
/// the rest of the server.
async fn delete(storage: &Storage, account: &Account) -> Result<(), AccountError> {
    if storage.delete_user(&account.domain, &account.user).await? {
        Ok(())
    } else {
        Err(AccountError::NotFound(account.to_string()))
    }
}

/// Checks a plaintext password against the stored SCRAM credentials (for SASL PLAIN).
///
/// An unknown account costs the same as a known one: the same two lookups, then the same
/// key derivation, against stand-in credentials with the iteration count most accounts have
/// (so the time of the answer does not tell whether the account exists).
pub async fn check_password(
    server: &Server,
    account: &Account,
    password: &str,
) -> Result<bool, StorageError> {
    let storage = &server.storage;
    let sha256 = storage
        .get_credentials(&account.domain, &account.user, HashAlg::Sha256)
        .await?;
    let sha1 = storage
        .get_credentials(&account.domain, &account.user, HashAlg::Sha1)
        .await?;
    let (creds, known) = match sha256.or(sha1) {
        Some(c) => (c, true),
        None => (
            sasl::fake_credentials(
                HashAlg::Sha256,
                &server.fake_salt_secret,
                &account.user,
                server.fake_iterations().await,
            ),
            false,
        ),
    };
    // Stand-in keys are random, so this is false for them; `known` only makes it certain.
    // PBKDF2: on the bounded pool, not on the runtime's threads.
    let password = password.to_owned();
    let matches = server
        .hash_pool
        .run(move || sasl::verify_password(&creds, &password))
        .await;
    Ok(matches & known)
}
