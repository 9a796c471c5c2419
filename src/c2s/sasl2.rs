//! XEP-0388 Extensible SASL Profile (`urn:xmpp:sasl:2`) on a c2s stream: the
//! `<authentication/>` feature, `<authenticate/>` with its initial response and user agent,
//! and the `<success/>` or `<failure/>` it ends with. The mechanisms, their state machines
//! and the throttling are RFC 6120's (`auth.rs`); FAST tokens (`fast.rs`) are one more kind
//! of mechanism. Bind2 and the rest of what rides inline is the caller's (`negotiate.rs`).

use std::net::IpAddr;
use std::sync::Arc;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use minidom::Element;

use crate::accounts::Account;
use crate::c2s::auth::{self, Profile, Request};
use crate::c2s::fast::{self, UsedToken};
use crate::c2s::stream::ReadError;
use crate::c2s::transport::Transport;
use crate::sasl::{ChannelBindings, Mechanism, SaslFailure};
use crate::server::Server;
use crate::xml::{self, ns};

pub const NS: &str = "urn:xmpp:sasl:2";

/// Longest user-agent id, software or device name we keep (they end up in resources and in
/// the session list).
const MAX_USER_AGENT_FIELD: usize = 128;

/// The client's `<user-agent/>` (XEP-0388 §2.3): `id` identifies the installation across
/// reconnects (Bind2 derives the resource from it; FAST tokens belong to it).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UserAgent {
    pub id: Option<String>,
    pub software: Option<String>,
    pub device: Option<String>,
}

impl UserAgent {
    /// Reads the `<user-agent/>` child of `<authenticate/>`. Fields too long to be honest
    /// make the request malformed.
    pub fn parse(authenticate: &Element) -> Result<Option<UserAgent>, SaslFailure> {
        let Some(ua) = authenticate.get_child("user-agent", NS) else {
            return Ok(None);
        };
        let field = |value: Option<String>| -> Result<Option<String>, SaslFailure> {
            match value.map(|v| v.trim().to_string()) {
                Some(v) if v.len() > MAX_USER_AGENT_FIELD => Err(SaslFailure::MalformedRequest),
                Some(v) if v.is_empty() => Ok(None),
                other => Ok(other),
            }
        };
        Ok(Some(UserAgent {
            id: field(ua.attr("id").map(str::to_string))?,
            software: field(ua.get_child("software", NS).map(|e| e.text()))?,
            device: field(ua.get_child("device", NS).map(|e| e.text()))?,
        }))
    }
}

/// The `<authentication/>` stream feature: the same mechanisms as RFC 6120's, and what may
/// ride inline (Bind2, FAST).
pub fn feature(mechanisms: &[Mechanism], inline: Vec<Element>) -> Element {
    let mut f = Element::bare("authentication", NS);
    for m in mechanisms {
        f.append_child(xml::text_element("mechanism", NS, m.name()));
    }
    if !inline.is_empty() {
        let mut el = Element::bare("inline", NS);
        for child in inline {
            el.append_child(child);
        }
        f.append_child(el);
    }
    f
}

/// A successful `<authenticate/>`, before the success is sent.
pub struct Authenticated {
    pub account: Account,
    pub mechanism: String,
    /// The mechanism's additional data (SCRAM server-final, FAST's responder hash).
    pub additional: Option<Vec<u8>>,
    pub user_agent: Option<UserAgent>,
    /// The FAST token logged in with, if any.
    pub fast_token: Option<UsedToken>,
}

pub enum Outcome {
    Success(Box<Authenticated>),
    /// A `<failure/>` was sent; the client may try again.
    Failed,
}

/// Runs one exchange that starts with `<authenticate/>`. Errors are stream-level.
pub async fn authenticate(
    server: &Arc<Server>,
    stream: &mut impl Transport,
    authenticate: &Element,
    domain: &str,
    ip: IpAddr,
    cb: &ChannelBindings,
    encryption_ok: bool,
) -> Result<Outcome, ReadError> {
    let mechanism = authenticate.attr("mechanism").unwrap_or_default();
    let verdict = match parse_request(authenticate) {
        Ok((initial, user_agent)) => {
            let request = Request {
                profile: Profile::Sasl2,
                mechanism,
                initial,
                domain,
                ip,
                cb,
                encryption_ok,
            };
            let (attempt, used) = if fast::is_fast_mechanism(mechanism) {
                let tls = stream.is_secure();
                fast::exchange(server, authenticate, &request, user_agent.as_ref(), tls).await
            } else {
                (auth::exchange(server, stream, &request).await?, None)
            };
            let (verdict, checked) = auth::settle(server, ip, attempt).await;
            (verdict.map(|ok| (ok, user_agent, used)), checked)
        }
        Err(failure) => (Err(failure), None),
    };
    match verdict {
        (Ok(((account, additional), user_agent, fast_token)), _) => {
            Ok(Outcome::Success(Box::new(Authenticated {
                account,
                mechanism: mechanism.to_string(),
                additional,
                user_agent,
                fast_token,
            })))
        }
        (Err(failure), checked) => {
            auth::failed(server, mechanism, ip, checked.as_deref(), failure);
            stream
                .send(&failure_element(failure))
                .await
                .map_err(|_| ReadError::Io)?;
            Ok(Outcome::Failed)
        }
    }
}

/// The initial response and the user agent of an `<authenticate/>`.
fn parse_request(authenticate: &Element) -> Result<(Option<Vec<u8>>, Option<UserAgent>), SaslFailure> {
    // §2.4: present means given, even when empty ("=" or nothing both mean empty).
    let initial = match authenticate.get_child("initial-response", NS) {
        None => None,
        Some(el) => Some(auth::decode(&el.text())?.unwrap_or_default()),
    };
    Ok((initial, UserAgent::parse(authenticate)?))
}

/// `<failure/>` (§2.6.2): the RFC 6120 condition and a human-readable text.
pub fn failure_element(failure: SaslFailure) -> Element {
    Element::builder("failure", NS)
        .append(Element::bare(failure.condition(), ns::SASL))
        .append(xml::text_element("text", NS, failure_text(failure)))
        .build()
}

fn failure_text(failure: SaslFailure) -> &'static str {
    match failure {
        SaslFailure::Aborted => "authentication aborted",
        SaslFailure::AccountDisabled => "this account is disabled",
        SaslFailure::CredentialsExpired => "the credentials have expired",
        SaslFailure::EncryptionRequired => "encrypt the connection first",
        SaslFailure::IncorrectEncoding => "the data is not valid base64",
        SaslFailure::InvalidAuthzid => "you may only authorize as yourself",
        SaslFailure::InvalidMechanism => "that mechanism is not offered",
        SaslFailure::MalformedRequest => "the request is malformed",
        SaslFailure::MechanismTooWeak => "that mechanism is too weak",
        SaslFailure::NotAuthorized => "wrong credentials",
        SaslFailure::TemporaryAuthFailure => "try again later",
    }
}

/// `<success/>` (§2.6.1): additional data, the authorization identifier (the full JID when
/// a resource was bound), then what inline features answered.
pub fn success_element(additional: Option<&[u8]>, identifier: &str, extra: Vec<Element>) -> Element {
    let mut s = Element::bare("success", NS);
    if let Some(data) = additional {
        s.append_child(xml::text_element("additional-data", NS, &B64.encode(data)));
    }
    s.append_child(xml::text_element("authorization-identifier", NS, identifier));
    for el in extra {
        s.append_child(el);
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn xep0388_2_3_user_agent_is_read_and_bounded() {
        let el: Element = "<authenticate xmlns='urn:xmpp:sasl:2' mechanism='PLAIN'><user-agent id='abc'><software>App</software><device>Phone</device></user-agent></authenticate>".parse().unwrap();
        let ua = UserAgent::parse(&el).unwrap().unwrap();
        assert_eq!(ua.id.as_deref(), Some("abc"));
        assert_eq!(ua.software.as_deref(), Some("App"));
        assert_eq!(ua.device.as_deref(), Some("Phone"));
        let long = format!(
            "<authenticate xmlns='urn:xmpp:sasl:2'><user-agent id='{}'/></authenticate>",
            "x".repeat(200)
        );
        let el: Element = long.parse().unwrap();
        assert_eq!(UserAgent::parse(&el), Err(SaslFailure::MalformedRequest));
        let el: Element = "<authenticate xmlns='urn:xmpp:sasl:2'/>".parse().unwrap();
        assert_eq!(UserAgent::parse(&el), Ok(None));
    }

    #[test]
    fn xep0388_2_4_initial_response_present_but_empty_is_empty() {
        let el: Element = "<authenticate xmlns='urn:xmpp:sasl:2'><initial-response/></authenticate>"
            .parse()
            .unwrap();
        assert_eq!(parse_request(&el).unwrap().0, Some(Vec::new()));
        let el: Element = "<authenticate xmlns='urn:xmpp:sasl:2'/>".parse().unwrap();
        assert_eq!(parse_request(&el).unwrap().0, None);
    }
}
