//! XEP-0215 external service discovery: the STUN and TURN servers of
//! `[external_services]`, with time-limited TURN credentials from a shared secret (the TURN
//! REST scheme coturn's `use-auth-secret` checks: username = `<expiry>:<user>`, password =
//! base64(HMAC-SHA1(secret, username))). The feature is advertised only when servers are
//! configured (see `start`).

use std::sync::Arc;

use base64::Engine;
use hmac::{Hmac, Mac};
use jid::BareJid;
use minidom::Element;
use sha1::Sha1;

use crate::config::{ExternalService, ExternalServicesConfig};
use crate::error::StanzaError;
use crate::router::registry::{IqRequest, IqResponse, IqResult, IqTarget, IqType, Module, Registry};
use crate::xml;

pub const NS: &str = "urn:xmpp:extdisco:2";

pub struct ExternalServices;

impl Module for ExternalServices {
    fn name(&self) -> &'static str {
        "external_services"
    }

    fn register(self: Arc<Self>, r: &mut Registry) {
        r.iq(IqType::Get, NS, "services", &[IqTarget::Server], services);
        r.iq(IqType::Get, NS, "credentials", &[IqTarget::Server], credentials);
    }
}

/// Whether there is anything to advertise.
pub fn configured(config: &ExternalServicesConfig) -> bool {
    !config.services.is_empty()
}

/// §3.1: every configured server (of the requested type, if any).
async fn services(req: IqRequest) -> IqResult {
    let config = req.server.config().external_services.clone();
    if !configured(&config) {
        return Err(StanzaError::service_unavailable());
    }
    // Read by hand: xmpp-parsers 0.23's `ServicesQuery` knows only stun and turn (not the
    // stuns and turns types XEP-0215 registers), and its `Service` has no public fields.
    let wanted = req.payload().attr("type").map(str::to_owned);
    let mut result = Element::bare("services", NS);
    if let Some(t) = &wanted {
        xml::set_attr(&mut result, "type", t);
    }
    let owner = req.from.to_bare();
    for service in config
        .services
        .iter()
        .filter(|s| wanted.as_deref().is_none_or(|t| s.kind.name() == t))
    {
        result.append_child(element(service, &config, &owner, now()));
    }
    Ok(IqResponse::with(result))
}

/// §3.3: credentials for one TURN server, named by type and host (and port, if given).
async fn credentials(req: IqRequest) -> IqResult {
    let config = req.server.config().external_services.clone();
    if !configured(&config) {
        return Err(StanzaError::service_unavailable());
    }
    let asked = req
        .payload()
        .get_child("service", NS)
        .ok_or_else(|| StanzaError::bad_request().text("name the service"))?;
    let (Some(host), Some(kind)) = (asked.attr("host"), asked.attr("type")) else {
        return Err(StanzaError::bad_request().text("a service needs a host and a type"));
    };
    let port = asked.attr("port").and_then(|p| p.parse::<u16>().ok());
    let service = config
        .services
        .iter()
        .find(|s| {
            s.host == host && s.kind.name() == kind && (port.is_none() || s.port == port) && s.kind.is_turn()
        })
        .filter(|_| config.secret.is_some())
        .ok_or_else(StanzaError::item_not_found)?;
    let mut result = Element::bare("credentials", NS);
    result.append_child(element(service, &config, &req.from.to_bare(), now()));
    Ok(IqResponse::with(result))
}

fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

/// One `<service/>`; a TURN server with credentials when a secret is configured.
fn element(service: &ExternalService, config: &ExternalServicesConfig, owner: &BareJid, now: i64) -> Element {
    let mut el = Element::bare("service", NS);
    xml::set_attr(&mut el, "type", service.kind.name());
    xml::set_attr(&mut el, "host", &service.host);
    if let Some(port) = service.port {
        xml::set_attr(&mut el, "port", &port.to_string());
    }
    if let Some(transport) = service.transport {
        xml::set_attr(&mut el, "transport", transport.name());
    }
    if let Some(name) = &service.name {
        xml::set_attr(&mut el, "name", name);
    }
    if service.kind.is_turn()
        && let Some(secret) = &config.secret
    {
        let expires = now + config.credential_lifetime_secs as i64;
        let (username, password) = turn_credentials(secret.as_bytes(), expires, owner.as_str());
        xml::set_attr(&mut el, "username", &username);
        xml::set_attr(&mut el, "password", &password);
        if let Some(at) = chrono::DateTime::from_timestamp(expires, 0) {
            xml::set_attr(
                &mut el,
                "expires",
                &at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            );
        }
        xml::set_attr(&mut el, "restricted", "1");
    }
    el
}

/// The TURN REST API's credentials (draft-uberti-behave-turn-rest-00 §2.2, as coturn checks
/// them): username `<expiry unix time>:<user>`, password base64(HMAC-SHA1(secret, username)).
pub fn turn_credentials(secret: &[u8], expires: i64, user: &str) -> (String, String) {
    let username = format!("{expires}:{user}");
    let mut mac = Hmac::<Sha1>::new_from_slice(secret).expect("HMAC takes any key length");
    mac.update(username.as_bytes());
    let password = base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes());
    (username, password)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The same computation coturn's docs give as a shell one-liner:
    /// `echo -n "1700000000:alice@example.org" | openssl dgst -binary -sha1 -hmac north | base64`.
    #[test]
    fn turn_rest_credentials_match_openssl() {
        let (user, pass) = turn_credentials(b"north", 1_700_000_000, "alice@example.org");
        assert_eq!(user, "1700000000:alice@example.org");
        let expected = std::process::Command::new("sh")
            .arg("-c")
            .arg("printf %s '1700000000:alice@example.org' | openssl dgst -binary -sha1 -hmac north | base64")
            .output()
            .expect("openssl");
        assert_eq!(pass, String::from_utf8_lossy(&expected.stdout).trim());
    }
}
