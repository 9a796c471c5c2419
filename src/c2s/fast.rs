//! XEP-0484 Fast Authentication Streamlining Tokens inside SASL2: the `<fast/>` inline
//! feature, logins with an HT-SHA-256-* mechanism (`sasl::ht`) and a stored token, and
//! `<request-token/>` answered with `<token/>` in the success.
//!
//! A token belongs to one account, one user agent (the SASL2 user-agent id) and the
//! mechanism it was requested for. `<fast count=.../>` must grow from login to login (a
//! replayed initial response is refused); without a count only the channel binding (-ENDP,
//! -EXPR) stops replays. A login with a token retires the agent's older tokens; a new one is
//! issued when the client asks, or when the token is past half its life. Tokens expire after
//! `auth.fast_token_lifetime_secs`, and a password change revokes them all (storage).

use std::sync::Arc;

use minidom::Element;

use crate::accounts::Account;
use crate::c2s::auth::{Attempt, Request};
use crate::c2s::sasl2::UserAgent;
use crate::sasl::ht::{self, HtMechanism};
use crate::sasl::{ChannelBindings, SaslFailure};
use crate::server::Server;
use crate::storage::fast::FastToken;
use crate::xml;

pub const NS: &str = "urn:xmpp:fast:0";

/// The token a FAST login used.
#[derive(Debug, Clone)]
pub struct UsedToken {
    pub key: Vec<u8>,
    pub mechanism: &'static str,
    pub issued_at: i64,
    pub expires_at: i64,
}

/// Whether `name` is an HT mechanism name (handled here, not by `auth.rs`).
pub fn is_fast_mechanism(name: &str) -> bool {
    name.starts_with("HT-")
}

/// The HT mechanisms this connection can use: only over TLS, the -PLUS-like ones only with
/// their channel-binding data.
pub fn offered(tls: bool, cb: &ChannelBindings) -> Vec<HtMechanism> {
    if !tls {
        return Vec::new();
    }
    ht::HT_MECHANISMS
        .into_iter()
        .filter(|m| m.binding.is_none_or(|b| cb.get(b).is_some()))
        .collect()
}

/// The `<fast/>` advertisement inside SASL2's `<inline/>`.
pub fn feature(mechanisms: &[HtMechanism]) -> Element {
    let mut f = Element::bare("fast", NS);
    for m in mechanisms {
        f.append_child(xml::text_element("mechanism", NS, m.name));
    }
    f
}

fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

/// A login with a token: the verdict (before throttling) and the token used.
pub async fn exchange(
    server: &Arc<Server>,
    authenticate: &Element,
    request: &Request<'_>,
    user_agent: Option<&UserAgent>,
    tls: bool,
) -> (Attempt, Option<UsedToken>) {
    let early = |f| (Attempt::early(f), None);
    if !request.encryption_ok {
        return early(SaslFailure::EncryptionRequired);
    }
    let Some(mechanism) = offered(tls, request.cb)
        .into_iter()
        .find(|m| m.name == request.mechanism)
    else {
        return early(SaslFailure::InvalidMechanism);
    };
    let Some(initial) = &request.initial else {
        return early(SaslFailure::MalformedRequest);
    };
    let (authcid, proof) = match ht::parse_initial(initial) {
        Ok(parsed) => parsed,
        Err(f) => return early(f),
    };
    let count = match authenticate.get_child("fast", NS).and_then(|f| f.attr("count")) {
        None => None,
        Some(c) => match c.parse::<u32>() {
            Ok(c) => Some(i64::from(c)),
            Err(_) => return early(SaslFailure::MalformedRequest),
        },
    };
    let invalidate = authenticate
        .get_child("fast", NS)
        .and_then(|f| f.attr("invalidate"))
        .is_some_and(|v| v == "true" || v == "1");
    let Ok(account) = Account::from_parts(&authcid, request.domain, &server.config()) else {
        return early(SaslFailure::NotAuthorized);
    };
    let checked = Some(account.to_string());
    let refuse = |f| {
        (
            Attempt {
                result: Err(f),
                checked: checked.clone(),
            },
            None,
        )
    };
    // Tokens belong to a user agent: without its id there is nothing to look up.
    let Some(agent) = user_agent.and_then(|ua| ua.id.as_deref()) else {
        return refuse(SaslFailure::NotAuthorized);
    };
    let cb: &[u8] = match mechanism.binding {
        Some(b) => request.cb.get(b).unwrap_or_default(),
        None => b"",
    };
    let tokens = match server
        .storage
        .fast_tokens_of_agent(&account.domain, &account.user, agent)
        .await
    {
        Ok(t) => t,
        Err(e) => {
            tracing::error!(error = %e, "storage error during FAST authentication");
            return early(SaslFailure::TemporaryAuthFailure);
        }
    };
    let Some(token) = tokens
        .into_iter()
        .find(|t| t.mechanism == mechanism.name && ht::verify_initiator(&t.key, cb, proof))
    else {
        return refuse(SaslFailure::NotAuthorized);
    };
    if token.expires_at <= now() {
        return refuse(SaslFailure::CredentialsExpired);
    }
    let accepted = server
        .storage
        .fast_token_use(&account.domain, &account.user, &token.key, count)
        .await;
    match accepted {
        Ok(true) => {}
        // Gone meanwhile, or a count not above the last: a replay.
        Ok(false) => return refuse(SaslFailure::NotAuthorized),
        Err(e) => {
            tracing::error!(error = %e, "storage error during FAST authentication");
            return early(SaslFailure::TemporaryAuthFailure);
        }
    }
    if invalidate
        && let Err(e) = server
            .storage
            .fast_token_revoke(&account.domain, &account.user, &token.key)
            .await
    {
        tracing::error!(error = %e, "storage error invalidating a FAST token");
    }
    let answer = ht::responder(&token.key, cb);
    let used = UsedToken {
        key: token.key,
        mechanism: mechanism.name,
        issued_at: token.issued_at,
        expires_at: token.expires_at,
    };
    (
        Attempt {
            result: Ok((account, Some(answer))),
            checked,
        },
        (!invalidate).then_some(used),
    )
}

/// The `<token/>` for the success, if one is due: the client asked with `<request-token/>`
/// for a mechanism it may use here, or logged in with a token past half its life. Needs the
/// user-agent id the token will belong to.
pub async fn issue_if_due(
    server: &Server,
    authenticate: &Element,
    account: &Account,
    user_agent: Option<&UserAgent>,
    offered: &[HtMechanism],
    used: Option<&UsedToken>,
) -> Option<Element> {
    let ua = user_agent?;
    let agent = ua.id.as_deref()?;
    let requested = authenticate
        .get_child("request-token", NS)
        .and_then(|r| r.attr("mechanism"))
        .and_then(|name| offered.iter().find(|m| m.name == name))
        .map(|m| m.name);
    let now = now();
    let aging = used
        .filter(|u| now >= u.issued_at + (u.expires_at - u.issued_at) / 2)
        .map(|u| u.mechanism);
    let mechanism = requested.or(aging)?;
    let lifetime = i64::try_from(server.config().auth.fast_token_lifetime_secs).unwrap_or(i64::MAX / 4);
    let (text, key) = ht::new_token();
    let new = FastToken {
        key: key.to_vec(),
        user_agent: agent.to_string(),
        software: ua.software.clone().unwrap_or_default(),
        device: ua.device.clone().unwrap_or_default(),
        mechanism: mechanism.to_string(),
        issued_at: now,
        expires_at: now + lifetime,
        last_count: -1,
    };
    let keep = used.map(|u| u.key.as_slice());
    match server
        .storage
        .fast_token_issue(&account.domain, &account.user, &new, keep)
        .await
    {
        Ok(true) => {}
        Ok(false) => return None,
        Err(e) => {
            tracing::error!(error = %e, "storage error issuing a FAST token");
            return None;
        }
    }
    let expiry = chrono::DateTime::from_timestamp(new.expires_at, 0)?
        .format("%Y-%m-%dT%H:%M:%SZ")
        .to_string();
    let mut el = Element::bare("token", NS);
    xml::set_attr(&mut el, "expiry", &expiry);
    xml::set_attr(&mut el, "token", &text);
    Some(el)
}
