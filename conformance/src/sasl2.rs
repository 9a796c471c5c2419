//! Client side of XEP-0388 SASL2 (with XEP-0386 Bind2 and XEP-0484 FAST requests) over
//! raw XML, written from the XEPs independently of the server.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use minidom::Element;

use crate::raw::RawClient;
use crate::scram::{ChannelBindingMode, ScramClient, ScramHash};
use crate::{ns, xml};

pub const NS: &str = "urn:xmpp:sasl:2";
pub const BIND2: &str = "urn:xmpp:bind:0";
pub const FAST: &str = "urn:xmpp:fast:0";
pub const CARBONS: &str = "urn:xmpp:carbons:2";

/// A `<user-agent/>` element with the given id.
pub fn user_agent(id: &str) -> String {
    format!("<user-agent id='{id}'><software>conformance</software><device>test bench</device></user-agent>")
}

/// The `<authentication/>` feature of `features`, if offered.
pub fn authentication(features: &Element) -> Option<&Element> {
    features.get_child("authentication", NS)
}

/// The mechanisms of the `<authentication/>` feature.
pub fn mechanisms(features: &Element) -> Vec<String> {
    authentication(features)
        .map(|a| {
            a.children()
                .filter(|c| c.is("mechanism", NS))
                .map(|c| c.text())
                .collect()
        })
        .unwrap_or_default()
}

/// The RFC 6120 condition inside a SASL2 `<failure/>`.
pub fn condition(failure: &Element) -> String {
    assert!(
        failure.is("failure", NS),
        "expected a SASL2 <failure/>, got {}",
        xml::to_string(failure)
    );
    failure
        .children()
        .find(|c| c.ns() == ns::SASL)
        .map(|c| c.name().to_owned())
        .unwrap_or_else(|| panic!("SASL2 <failure/> without condition: {}", xml::to_string(failure)))
}

/// Sends `<authenticate/>` with `mechanism`, the base64 of `initial` (if any) and `extra`
/// (raw XML: user agent, Bind2, FAST requests).
pub async fn send_authenticate(c: &mut RawClient, mechanism: &str, initial: Option<&[u8]>, extra: &str) {
    let initial = match initial {
        None => String::new(),
        Some(data) => format!("<initial-response>{}</initial-response>", B64.encode(data)),
    };
    c.send(format!(
        "<authenticate xmlns='{NS}' mechanism='{mechanism}'>{initial}{extra}</authenticate>"
    ))
    .await;
}

/// Reads the next element in the SASL2 namespace (panics on anything else).
pub async fn next_sasl2(c: &mut RawClient) -> Element {
    let e = c.expect_element().await;
    assert_eq!(e.ns(), NS, "expected a SASL2 element, got {}", xml::to_string(&e));
    e
}

/// A whole SCRAM exchange in SASL2 with the initial response inline. `Ok(success)` after the
/// server signature in `<additional-data/>` was verified; `Err(failure)` otherwise.
pub async fn scram(
    c: &mut RawClient,
    user: &str,
    password: &str,
    hash: ScramHash,
    binding: ChannelBindingMode,
    extra: &str,
) -> Result<Element, Element> {
    let mut scram = ScramClient::new(hash, user, password, binding);
    let first = scram.client_first();
    send_authenticate(c, &scram.mechanism(), Some(first.as_bytes()), extra).await;
    let challenge = next_sasl2(c).await;
    if challenge.name() == "failure" {
        return Err(challenge);
    }
    assert_eq!(challenge.name(), "challenge", "{}", xml::to_string(&challenge));
    let server_first = String::from_utf8(B64.decode(challenge.text().trim()).expect("base64")).unwrap();
    let fin = scram.client_final(&server_first).expect("client-final");
    c.send(format!("<response xmlns='{NS}'>{}</response>", B64.encode(fin)))
        .await;
    let outcome = next_sasl2(c).await;
    match outcome.name() {
        "success" => {
            let data = outcome
                .get_child("additional-data", NS)
                .unwrap_or_else(|| {
                    panic!(
                        "SCRAM success without additional-data: {}",
                        xml::to_string(&outcome)
                    )
                })
                .text();
            let data = String::from_utf8(B64.decode(data.trim()).expect("base64")).unwrap();
            scram.verify_server_final(&data).expect("server signature");
            Ok(outcome)
        }
        "failure" => Err(outcome),
        other => panic!("unexpected <{other}/>: {}", xml::to_string(&outcome)),
    }
}

/// SCRAM-SHA-256 login with `extra` inline; panics on failure.
pub async fn login(c: &mut RawClient, user: &str, password: &str, extra: &str) -> Element {
    scram(
        c,
        user,
        password,
        ScramHash::Sha256,
        ChannelBindingMode::None,
        extra,
    )
    .await
    .unwrap_or_else(|f| panic!("SASL2 login failed: {}", xml::to_string(&f)))
}

/// The `<authorization-identifier/>` of a `<success/>`.
pub fn authorization_identifier(success: &Element) -> String {
    success
        .get_child("authorization-identifier", NS)
        .unwrap_or_else(|| panic!("no authorization-identifier: {}", xml::to_string(success)))
        .text()
}

/// Reads the `<stream:features/>` the server sends after a SASL2 success (no restart).
pub async fn features_after_success(c: &mut RawClient) -> Element {
    let f = c.expect_element().await;
    assert!(
        f.is("features", ns::STREAM),
        "XEP-0388 §2.6.1: new stream features follow the success without a restart, got {}",
        xml::to_string(&f)
    );
    f
}

fn hmac_sha256(key: &[u8], data: &[u8]) -> Vec<u8> {
    use hmac::{Hmac, Mac};
    let mut m = Hmac::<sha2::Sha256>::new_from_slice(key).expect("hmac key");
    m.update(data);
    m.finalize().into_bytes().to_vec()
}

/// The HT-SHA-256-* initial response (draft-schmaus-kitten-sasl-ht): `user NUL
/// HMAC(token, "Initiator" || cb-data)`, the token text itself as the key.
pub fn ht_initial(user: &str, token: &str, cb: &[u8]) -> Vec<u8> {
    let mut msg = b"Initiator".to_vec();
    msg.extend_from_slice(cb);
    let mut out = format!("{user}\0").into_bytes();
    out.extend(hmac_sha256(token.as_bytes(), &msg));
    out
}

/// What the server must answer in `<additional-data/>`: `HMAC(token, "Responder" || cb-data)`.
pub fn ht_responder(token: &str, cb: &[u8]) -> Vec<u8> {
    let mut msg = b"Responder".to_vec();
    msg.extend_from_slice(cb);
    hmac_sha256(token.as_bytes(), &msg)
}

/// The `<token/>` of a success: (token, expiry).
pub fn token_of(success: &Element) -> Option<(String, String)> {
    let t = success.get_child("token", FAST)?;
    Some((t.attr("token")?.to_string(), t.attr("expiry")?.to_string()))
}

/// A FAST login: `<authenticate/>` with `mechanism`, the HT initial response for `token`
/// bound to `cb`, the user agent `ua_id`, `<fast/>` with `fast_attrs` and `extra`. The
/// success (its responder data checked) or the failure.
#[allow(clippy::too_many_arguments)]
pub async fn fast_login(
    c: &mut RawClient,
    mechanism: &str,
    user: &str,
    token: &str,
    cb: &[u8],
    ua_id: &str,
    fast_attrs: &str,
    extra: &str,
) -> Result<Element, Element> {
    let initial = ht_initial(user, token, cb);
    let extra = format!("{}<fast xmlns='{FAST}' {fast_attrs}/>{extra}", user_agent(ua_id));
    send_authenticate(c, mechanism, Some(&initial), &extra).await;
    let e = next_sasl2(c).await;
    match e.name() {
        "success" => {
            let data = e
                .get_child("additional-data", NS)
                .unwrap_or_else(|| panic!("FAST success without additional-data: {}", xml::to_string(&e)))
                .text();
            assert_eq!(
                B64.decode(data.trim()).expect("base64"),
                ht_responder(token, cb),
                "the server's responder HMAC"
            );
            Ok(e)
        }
        "failure" => Err(e),
        other => panic!("unexpected <{other}/>: {}", xml::to_string(&e)),
    }
}
