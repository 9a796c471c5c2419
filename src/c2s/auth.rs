//! The SASL exchange on a c2s stream (RFC 6120 §6): mechanism selection, challenges,
//! throttling, and the failure conditions.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use minidom::Element;

use crate::accounts::{self, Account};
use crate::c2s::stream::ReadError;
use crate::c2s::transport::Transport;
use crate::error::{StreamError, StreamErrorCondition};
use crate::ops::log_limit::Repeated;
use crate::sasl::{ChannelBindings, Mechanism, SaslFailure, ScramServer};
use crate::server::Server;
use crate::xml::{StreamEvent, ns};

/// The mechanisms offered on a connection, strongest first.
pub fn offered_mechanisms(tls: bool, cb: &ChannelBindings) -> Vec<Mechanism> {
    Mechanism::ALL
        .into_iter()
        .filter(|m| match m {
            Mechanism::Plain => tls,
            m if m.is_plus() => tls && !cb.supported_types().is_empty(),
            _ => true,
        })
        .collect()
}

/// How an `<auth/>` ended.
pub enum AuthOutcome {
    Success(Account),
    /// A `<failure/>` was sent; the client may try again.
    Failed,
}

/// Which SASL profile carries an exchange: RFC 6120's, or XEP-0388's (SASL2), whose
/// `<challenge/>`, `<response/>` and `<abort/>` live in their own namespace.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Profile {
    Rfc6120,
    Sasl2,
}

impl Profile {
    fn ns(self) -> &'static str {
        match self {
            Profile::Rfc6120 => ns::SASL,
            Profile::Sasl2 => crate::c2s::sasl2::NS,
        }
    }
}

/// What a client asked for when it started an exchange.
pub struct Request<'a> {
    pub profile: Profile,
    pub mechanism: &'a str,
    /// The decoded initial response (`None`: the client sent none).
    pub initial: Option<Vec<u8>>,
    pub domain: &'a str,
    pub ip: IpAddr,
    pub cb: &'a ChannelBindings,
    pub encryption_ok: bool,
}

/// The verdict on an exchange, after throttling and the disabled check: the account and the
/// mechanism's additional data (the SCRAM server-final message).
pub type Verdict = Result<(Account, Option<Vec<u8>>), SaslFailure>;

/// Runs one exchange that starts with `auth`. Errors are stream-level: the caller closes.
pub async fn authenticate(
    server: &Arc<Server>,
    stream: &mut impl Transport,
    auth: &Element,
    domain: &str,
    ip: IpAddr,
    cb: &ChannelBindings,
    encryption_ok: bool,
) -> Result<AuthOutcome, ReadError> {
    let mechanism = auth.attr("mechanism").unwrap_or_default();
    // RFC 6120 §6.4.2: no text = no initial response; "=" = an empty one.
    let verdict = match decode(&auth.text()) {
        Ok(initial) => {
            let request = Request {
                profile: Profile::Rfc6120,
                mechanism,
                initial,
                domain,
                ip,
                cb,
                encryption_ok,
            };
            let attempt = exchange(server, stream, &request).await?;
            settle(server, ip, attempt).await
        }
        Err(failure) => (Err(failure), None),
    };
    match verdict {
        (Ok((account, additional)), _) => {
            let mut success = Element::bare("success", ns::SASL);
            if let Some(data) = additional {
                success.append_text(B64.encode(data));
            }
            stream.queue(&success);
            logged_in(&account, mechanism, ip, stream.kind());
            Ok(AuthOutcome::Success(account))
        }
        (Err(failure), checked) => {
            failed(server, mechanism, ip, checked.as_deref(), failure);
            let el = Element::builder("failure", ns::SASL)
                .append(Element::bare(failure.condition(), ns::SASL))
                .build();
            stream.send(&el).await.map_err(|_| ReadError::Io)?;
            Ok(AuthOutcome::Failed)
        }
    }
}

/// Counts and logs a login (both profiles).
pub fn logged_in(account: &Account, mechanism: &str, ip: IpAddr, transport: &'static str) {
    crate::metrics::login(mechanism, transport);
    tracing::info!(jid = %account, %ip, mechanism, "authenticated");
}

/// Counts and logs a failed exchange (both profiles); repeats are summarized.
pub fn failed(server: &Server, mechanism: &str, ip: IpAddr, account: Option<&str>, failure: SaslFailure) {
    crate::metrics::auth_failure(mechanism);
    if server.log_limit.note(Repeated::AuthFailure, &ip.to_string()) {
        tracing::info!(%ip, account = account.unwrap_or("-"), condition = failure.condition(), "authentication failed (repeats summarized)");
    }
}

/// The throttling and account checks every exchange ends with, whatever its mechanism.
/// Only an exchange that tried a secret is counted and held back, and its answer, right or
/// wrong, waits as long as a wrong one would: the timing tells nothing.
/// Also returns the account (or name) whose secret was tried, for the log.
pub async fn settle(server: &Server, ip: IpAddr, attempt: Attempt) -> (Verdict, Option<String>) {
    let Attempt { result, checked } = attempt;
    if let Some(account_key) = &checked {
        let delay = hold_back(server, ip, account_key, result.is_ok());
        if !delay.is_zero() {
            tokio::time::sleep(delay).await;
        }
    }
    // A disabled or blacklisted account (XEP-0133) is refused only after its credentials
    // were proven.
    let verdict = match result {
        Ok((account, _)) if disabled(server, &account).await => Err(SaslFailure::AccountDisabled),
        other => other,
    };
    (verdict, checked)
}

/// How long the answer to a password check waits. A wrong password is counted for the
/// address and the account in one atomic step each, which also gives it its position, so
/// simultaneous guesses cannot all pass as "early". A right one is not counted and waits
/// what the next wrong one would: the owner gets in within the longest backoff (2 s) however
/// long an attack goes on, and an attacker cannot tell a hit by its speed.
fn hold_back(server: &Server, ip: IpAddr, account_key: &str, password_ok: bool) -> Duration {
    let (by_ip, by_account) = (&server.auth_failures_by_ip, &server.auth_failures_by_account);
    let ip_key = ip.to_string();
    let (ip_nth, account_nth) = if password_ok {
        (by_ip.count(&ip_key) + 1, by_account.count(account_key) + 1)
    } else {
        (by_ip.record(&ip_key), by_account.record(account_key))
    };
    backoff(ip_nth, by_ip.max()).max(backoff(account_nth, by_account.max()))
}

/// The wait for the `nth` wrong password in a window where `free` are answered at once:
/// nothing up to `free`, then 250 ms doubling up to 2 s.
fn backoff(nth: u32, free: u32) -> Duration {
    if nth <= free {
        return Duration::ZERO;
    }
    let ms = 250u64 << (nth - free - 1).min(3);
    Duration::from_millis(ms.min(2000))
}

/// Disabled (XEP-0133 §4.3) or blacklisted (§4.11, the account or its domain).
async fn disabled(server: &Server, account: &Account) -> bool {
    if let Ok(bare) = jid::BareJid::new(&account.to_string())
        && server.blacklist.account_listed(&server.storage, &bare).await
    {
        return true;
    }
    server
        .storage
        .is_disabled(&account.domain, &account.user)
        .await
        .unwrap_or_else(|e| {
            tracing::error!(error = %e, "storage error reading the disabled flag");
            false
        })
}

/// How an exchange ended, before throttling.
pub struct Attempt {
    pub result: Verdict,
    /// The account (or, for an unknown one, the name) whose password was tried. `None` when
    /// the exchange failed before any password was checked: malformed or unsupported
    /// requests, channel-binding types we lack, a downgrade, an abort.
    pub checked: Option<String>,
}

impl Attempt {
    /// A failure that checked no password.
    pub fn early(failure: SaslFailure) -> Self {
        Attempt {
            result: Err(failure),
            checked: None,
        }
    }
}

/// The mechanism's steps, up to the verdict on the secret (before throttling).
pub async fn exchange(
    server: &Arc<Server>,
    stream: &mut impl Transport,
    request: &Request<'_>,
) -> Result<Attempt, ReadError> {
    let Request {
        profile,
        domain,
        ip,
        cb,
        ..
    } = *request;
    let tls = stream.is_secure();
    if !request.encryption_ok {
        return Ok(Attempt::early(SaslFailure::EncryptionRequired));
    }
    let offered = offered_mechanisms(tls, cb);
    let mechanism = match Mechanism::from_name(request.mechanism) {
        Some(m) if offered.contains(&m) => m,
        Some(Mechanism::Plain) => return Ok(Attempt::early(SaslFailure::EncryptionRequired)),
        _ => return Ok(Attempt::early(SaslFailure::InvalidMechanism)),
    };
    let initial = match request.initial.clone() {
        Some(data) => data,
        None => match challenge(stream, profile, b"").await? {
            Ok(data) => data,
            Err(f) => return Ok(Attempt::early(f)),
        },
    };
    if mechanism == Mechanism::Plain {
        return Ok(plain(server, domain, ip, &initial).await);
    }
    let mut scram = ScramServer::new(mechanism, cb.clone(), offered.iter().any(|m| m.is_plus()));
    let first = match scram.handle_client_first(&initial) {
        Ok(first) => first,
        Err(f) => return Ok(Attempt::early(f)),
    };
    let account = Account::from_parts(&first.username, domain, &server.config()).ok();
    let account_key = account
        .as_ref()
        .map(|a| a.to_string())
        .unwrap_or_else(|| first.username.clone());
    // An authzid may only name the authenticating account itself.
    if let Some(authzid) = &first.authzid
        && Account::parse(authzid, &server.config()).ok() != account
    {
        return Ok(Attempt::early(SaslFailure::InvalidAuthzid));
    }
    let hash = mechanism.hash().expect("SCRAM mechanisms have a hash");
    let creds = match &account {
        Some(a) => match server.storage.get_credentials(&a.domain, &a.user, hash).await {
            Ok(c) => c,
            Err(e) => {
                tracing::error!(error = %e, "storage error during authentication");
                return Ok(Attempt::early(SaslFailure::TemporaryAuthFailure));
            }
        },
        None => None,
    };
    // Unknown users get stand-in credentials with the iteration count most accounts have.
    let iterations = server.fake_iterations().await;
    let server_first = scram.server_first(creds, &server.fake_salt_secret, iterations);
    let client_final = match challenge(stream, profile, &server_first).await? {
        Ok(data) => data,
        Err(f) => return Ok(Attempt::early(f)),
    };
    let result = match (scram.handle_client_final(&client_final), account) {
        (Ok(server_final), Some(account)) => Ok((account, Some(server_final))),
        (Ok(_), None) => Err(SaslFailure::NotAuthorized),
        (Err(f), _) => Err(f),
    };
    Ok(Attempt {
        result,
        checked: scram.proof_checked().then_some(account_key),
    })
}

async fn plain(server: &Arc<Server>, domain: &str, ip: IpAddr, data: &[u8]) -> Attempt {
    let msg = match crate::sasl::parse_plain(data) {
        Ok(msg) => msg,
        Err(f) => return Attempt::early(f),
    };
    // A name that cannot be an account is refused at once: no password was tried, and
    // nothing is learned that the name itself does not tell.
    let Ok(account) = Account::from_parts(&msg.authcid, domain, &server.config()) else {
        return Attempt::early(SaslFailure::NotAuthorized);
    };
    if let Some(authzid) = &msg.authzid
        && Account::parse(authzid, &server.config()).ok().as_ref() != Some(&account)
    {
        return Attempt::early(SaslFailure::InvalidAuthzid);
    }
    let key = account.to_string();
    let result = match accounts::check_password(server, &account, &msg.password).await {
        Ok(true) => Ok((account, None)),
        Ok(false) => Err(SaslFailure::NotAuthorized),
        Err(e) => {
            tracing::error!(%ip, error = %e, "storage error during authentication");
            return Attempt::early(SaslFailure::TemporaryAuthFailure);
        }
    };
    Attempt {
        result,
        checked: Some(key),
    }
}
/// Base64 payload of `<auth/>` or `<response/>`: `None` when absent.
pub fn decode(text: &str) -> Result<Option<Vec<u8>>, SaslFailure> {
    let text = text.trim();
    match text {
        "" => Ok(None),
        "=" => Ok(Some(Vec::new())),
        t if t.len() > crate::sasl::MAX_MESSAGE_LEN * 4 / 3 + 4 => Err(SaslFailure::MalformedRequest),
        t => B64
            .decode(t)
            .map(Some)
            .map_err(|_| SaslFailure::IncorrectEncoding),
    }
}

/// Sends a challenge and waits for the client's `<response/>` (or `<abort/>`).
async fn challenge(
    stream: &mut impl Transport,
    profile: Profile,
    data: &[u8],
) -> Result<Result<Vec<u8>, SaslFailure>, ReadError> {
    let mut el = Element::bare("challenge", profile.ns());
    if !data.is_empty() {
        el.append_text(B64.encode(data));
    }
    stream.send(&el).await.map_err(|_| ReadError::Io)?;
    let reply = loop {
        match stream.next_event().await? {
            StreamEvent::Element(e) => break e,
            StreamEvent::Alive => continue,
            StreamEvent::Closed => return Err(ReadError::Io),
            StreamEvent::Header(_) => {
                return Err(ReadError::Stream(StreamError::new(
                    StreamErrorCondition::BadFormat,
                )));
            }
        }
    };
    if reply.is("abort", profile.ns()) {
        return Ok(Err(SaslFailure::Aborted));
    }
    if reply.is("response", profile.ns()) {
        return Ok(decode(&reply.text()).map(Option::unwrap_or_default));
    }
    Err(ReadError::Stream(StreamError::with_text(
        StreamErrorCondition::NotAuthorized,
        "only SASL elements are allowed during authentication",
    )))
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::backoff;

    #[test]
    fn rfc6120_6_4_5_failures_back_off_up_to_two_seconds() {
        assert_eq!(backoff(0, 5), Duration::ZERO);
        assert_eq!(backoff(5, 5), Duration::ZERO);
        assert_eq!(backoff(6, 5), Duration::from_millis(250));
        assert_eq!(backoff(7, 5), Duration::from_millis(500));
        assert_eq!(backoff(8, 5), Duration::from_millis(1000));
        assert_eq!(backoff(9, 5), Duration::from_millis(2000));
        assert_eq!(backoff(1000, 5), Duration::from_millis(2000));
        assert_eq!(backoff(1, 0), Duration::from_millis(250));
    }
}
