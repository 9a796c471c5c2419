//! The SASL exchange on a c2s stream (RFC 6120 §6): mechanism selection, challenges,
//! throttling, and the failure conditions.

use std::net::IpAddr;
use std::sync::Arc;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use minidom::Element;

use crate::accounts::{self, Account};
use crate::c2s::stream::{ReadError, XmppStream};
use crate::error::{StreamError, StreamErrorCondition};
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

/// Runs one exchange that starts with `auth`. Errors are stream-level: the caller closes.
pub async fn authenticate(
    server: &Arc<Server>,
    stream: &mut XmppStream,
    auth: &Element,
    domain: &str,
    ip: IpAddr,
    cb: &ChannelBindings,
    encryption_ok: bool,
) -> Result<AuthOutcome, ReadError> {
    let result = exchange(server, stream, auth, domain, ip, cb, encryption_ok).await?;
    // A disabled or blacklisted account (XEP-0133) is refused only after its credentials
    // were proven.
    let result = match result {
        Ok((account, _)) if disabled(server, &account).await => {
            Err((SaslFailure::AccountDisabled, Some(account.to_string())))
        }
        other => other,
    };
    match result {
        Ok((account, additional)) => {
            server.auth_failures_by_account.clear(&account.to_string());
            let mut success = Element::bare("success", ns::SASL);
            if let Some(data) = additional {
                success.append_text(B64.encode(data));
            }
            stream.queue(&success);
            crate::metrics::login(auth.attr("mechanism").unwrap_or_default());
            tracing::info!(jid = %account, %ip, "authenticated");
            Ok(AuthOutcome::Success(account))
        }
        Err((failure, account)) => {
            if !matches!(
                failure,
                SaslFailure::Aborted | SaslFailure::TemporaryAuthFailure | SaslFailure::AccountDisabled
            ) {
                server.auth_failures_by_ip.record(&ip.to_string());
                if let Some(a) = &account {
                    server.auth_failures_by_account.record(a);
                }
            }
            // Backoff: from the third recent failure of this IP or account on, each answer
            // comes later, which slows guessing far more than it slows a mistyping user.
            if !matches!(failure, SaslFailure::Aborted) {
                let ip_failures = server.auth_failures_by_ip.count(&ip.to_string());
                let account_failures = account
                    .as_deref()
                    .map_or(0, |a| server.auth_failures_by_account.count(a));
                let delay = backoff(ip_failures.max(account_failures));
                if !delay.is_zero() {
                    tokio::time::sleep(delay).await;
                }
            }
            crate::metrics::auth_failure(auth.attr("mechanism").unwrap_or_default());
            tracing::info!(%ip, account = account.as_deref().unwrap_or("-"), condition = failure.condition(), "authentication failed");
            let el = Element::builder("failure", ns::SASL)
                .append(Element::bare(failure.condition(), ns::SASL))
                .build();
            stream.send(&el).await.map_err(|_| ReadError::Io)?;
            Ok(AuthOutcome::Failed)
        }
    }
}

/// How long to hold back the answer to a failed authentication after `failures` recent ones:
/// nothing for the first two, then 250 ms doubling up to 2 s.
fn backoff(failures: u32) -> std::time::Duration {
    if failures < 3 {
        return std::time::Duration::ZERO;
    }
    let ms = 250u64 << (failures - 3).min(3);
    std::time::Duration::from_millis(ms.min(2000))
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

type Exchange = Result<(Account, Option<Vec<u8>>), (SaslFailure, Option<String>)>;

async fn exchange(
    server: &Arc<Server>,
    stream: &mut XmppStream,
    auth: &Element,
    domain: &str,
    ip: IpAddr,
    cb: &ChannelBindings,
    encryption_ok: bool,
) -> Result<Exchange, ReadError> {
    let tls = stream.conn().is_tls();
    if !encryption_ok {
        return Ok(Err((SaslFailure::EncryptionRequired, None)));
    }
    let offered = offered_mechanisms(tls, cb);
    let mechanism = match auth.attr("mechanism").and_then(Mechanism::from_name) {
        Some(m) if offered.contains(&m) => m,
        Some(Mechanism::Plain) => return Ok(Err((SaslFailure::EncryptionRequired, None))),
        _ => return Ok(Err((SaslFailure::InvalidMechanism, None))),
    };
    if !server.auth_failures_by_ip.allowed(&ip.to_string()) {
        return Ok(Err((SaslFailure::TemporaryAuthFailure, None)));
    }
    // RFC 6120 §6.4.2: no text = no initial response; "=" = an empty one.
    let initial = match decode(&auth.text()) {
        Ok(v) => v,
        Err(f) => return Ok(Err((f, None))),
    };
    let initial = match initial {
        Some(data) => data,
        None => match challenge(stream, b"").await? {
            Ok(data) => data,
            Err(f) => return Ok(Err((f, None))),
        },
    };
    if mechanism == Mechanism::Plain {
        return Ok(plain(server, domain, &initial).await);
    }
    let mut scram = ScramServer::new(mechanism, cb.clone(), offered.iter().any(|m| m.is_plus()));
    let first = match scram.handle_client_first(&initial) {
        Ok(first) => first,
        Err(f) => return Ok(Err((f, None))),
    };
    let account = Account::from_parts(&first.username, domain, &server.config()).ok();
    let account_key = account
        .as_ref()
        .map(|a| a.to_string())
        .unwrap_or_else(|| first.username.clone());
    if !server.auth_failures_by_account.allowed(&account_key) {
        return Ok(Err((SaslFailure::TemporaryAuthFailure, Some(account_key))));
    }
    // An authzid may only name the authenticating account itself.
    if let Some(authzid) = &first.authzid
        && Account::parse(authzid, &server.config()).ok() != account
    {
        return Ok(Err((SaslFailure::InvalidAuthzid, Some(account_key))));
    }
    let hash = mechanism.hash().expect("SCRAM mechanisms have a hash");
    let creds = match &account {
        Some(a) => match server.storage.get_credentials(&a.domain, &a.user, hash).await {
            Ok(c) => c,
            Err(e) => {
                tracing::error!(error = %e, "storage error during authentication");
                return Ok(Err((SaslFailure::TemporaryAuthFailure, None)));
            }
        },
        None => None,
    };
    let server_first = scram.server_first(
        creds,
        &server.fake_salt_secret,
        server.config().auth.scram_iterations,
    );
    let client_final = match challenge(stream, &server_first).await? {
        Ok(data) => data,
        Err(f) => return Ok(Err((f, Some(account_key)))),
    };
    match (scram.handle_client_final(&client_final), account) {
        (Ok(server_final), Some(account)) => Ok(Ok((account, Some(server_final)))),
        (Ok(_), None) => Ok(Err((SaslFailure::NotAuthorized, Some(account_key)))),
        (Err(f), _) => Ok(Err((f, Some(account_key)))),
    }
}

async fn plain(server: &Arc<Server>, domain: &str, data: &[u8]) -> Exchange {
    let msg = crate::sasl::parse_plain(data).map_err(|f| (f, None))?;
    let account = Account::from_parts(&msg.authcid, domain, &server.config())
        .map_err(|_| (SaslFailure::NotAuthorized, Some(msg.authcid.clone())))?;
    let key = account.to_string();
    if !server.auth_failures_by_account.allowed(&key) {
        return Err((SaslFailure::TemporaryAuthFailure, Some(key)));
    }
    if let Some(authzid) = &msg.authzid
        && Account::parse(authzid, &server.config()).ok().as_ref() != Some(&account)
    {
        return Err((SaslFailure::InvalidAuthzid, Some(key)));
    }
    match accounts::check_password(&server.storage, &account, &msg.password).await {
        Ok(true) => Ok((account, None)),
        Ok(false) => Err((SaslFailure::NotAuthorized, Some(key))),
        Err(e) => {
            tracing::error!(error = %e, "storage error during authentication");
            Err((SaslFailure::TemporaryAuthFailure, None))
        }
    }
}

/// Base64 payload of `<auth/>` or `<response/>`: `None` when absent.
fn decode(text: &str) -> Result<Option<Vec<u8>>, SaslFailure> {
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
async fn challenge(stream: &mut XmppStream, data: &[u8]) -> Result<Result<Vec<u8>, SaslFailure>, ReadError> {
    let mut el = Element::bare("challenge", ns::SASL);
    if !data.is_empty() {
        el.append_text(B64.encode(data));
    }
    stream.send(&el).await.map_err(|_| ReadError::Io)?;
    let reply = match stream.next_event().await? {
        StreamEvent::Element(e) => e,
        StreamEvent::Closed => return Err(ReadError::Io),
        StreamEvent::Header(_) => {
            return Err(ReadError::Stream(StreamError::new(
                StreamErrorCondition::BadFormat,
            )));
        }
    };
    if reply.is("abort", ns::SASL) {
        return Ok(Err(SaslFailure::Aborted));
    }
    if reply.is("response", ns::SASL) {
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
        assert_eq!(backoff(0), Duration::ZERO);
        assert_eq!(backoff(2), Duration::ZERO);
        assert_eq!(backoff(3), Duration::from_millis(250));
        assert_eq!(backoff(4), Duration::from_millis(500));
        assert_eq!(backoff(6), Duration::from_millis(2000));
        assert_eq!(backoff(1000), Duration::from_millis(2000));
    }
}
