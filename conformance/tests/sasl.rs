//! RFC 6120 §6 (SASL), RFC 5802/7677 (SCRAM), RFC 4616 (PLAIN), RFC 5929 /
//! RFC 9266 channel binding, XEP-0440.

use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use conformance::client::tokio_xmpp_sasl_login;
use conformance::scram::ScramClient;
use conformance::tls::ConnectorBinding;
use conformance::{ChannelBindingMode, Incoming, RawClient, ScramHash, TestServer, ns, xml};

async fn with_alice() -> TestServer {
    let server = TestServer::start().await;
    server.add_user("alice", "secret").await;
    server
}

/// Reads the next SASL `<failure/>` condition (panics on anything else).
async fn expect_failure(c: &mut RawClient) -> String {
    let e = c.expect_element().await;
    assert!(
        e.is("failure", ns::SASL),
        "expected a SASL <failure/>, got {}",
        xml::to_string(&e)
    );
    e.children()
        .find(|c| c.name() != "text")
        .map(|c| c.name().to_owned())
        .unwrap_or_else(|| panic!("<failure/> without condition: {}", xml::to_string(&e)))
}

// RFC 6120 §6.4.1: after TLS the server offers SASL mechanisms, including
// SCRAM-SHA-1 (mandatory to implement in RFC 6120 §13.8) and SCRAM-SHA-256.
#[tokio::test]
async fn rfc6120_6_4_1_mechanisms_offered_after_tls() {
    let server = TestServer::start().await;
    let c = server.raw_starttls().await;
    let f = c.features.clone().unwrap();
    let mechs = xml::mechanisms(&f);
    for m in ["SCRAM-SHA-1", "SCRAM-SHA-256"] {
        assert!(mechs.iter().any(|x| x == m), "{m} not offered: {mechs:?}");
    }
}

// RFC 7677 SCRAM-SHA-256, driven by tokio-xmpp's SASL implementation.
#[tokio::test]
async fn rfc7677_scram_sha_256_login_tokio_xmpp() {
    let server = with_alice().await;
    tokio_xmpp_sasl_login(
        server.starttls_connector(),
        "alice@localhost",
        "secret",
        &["SCRAM-SHA-256"],
    )
    .await
    .expect("SCRAM-SHA-256 login");
    // And the full client (bind + Online) works.
    let c = server.client("alice", "secret").await;
    assert_eq!(c.jid().to_bare().to_string(), "alice@localhost");
}

// RFC 6120 §6.4 with SCRAM-SHA-1 and the "n,," GS2 header, done by hand over
// raw XML the way Pidgin does; the server signature is verified.
#[tokio::test]
async fn rfc6120_6_4_scram_sha_1_login_pidgin_style() {
    let server = with_alice().await;
    let mut c = server.raw_starttls().await;
    c.sasl_scram("alice", "secret", ScramHash::Sha1, ChannelBindingMode::None)
        .await
        .expect("SCRAM-SHA-1 login");
    let f = c.restart_stream().await;
    assert!(f.get_child("bind", ns::BIND).is_some(), "bind offered after SASL");
    let jid = c.bind(Some("pidgin")).await.expect("bind");
    assert_eq!(jid, "alice@localhost/pidgin");
}

// RFC 6120 §6.4 / RFC 7677: SCRAM-SHA-256 by hand, too.
#[tokio::test]
async fn rfc7677_scram_sha_256_login_raw() {
    let server = with_alice().await;
    let mut c = server.raw_starttls().await;
    c.sasl_scram("alice", "secret", ScramHash::Sha256, ChannelBindingMode::None)
        .await
        .expect("SCRAM-SHA-256 login");
}

// RFC 4616 PLAIN over TLS (raw and through tokio-xmpp).
#[tokio::test]
async fn rfc4616_plain_login_over_tls() {
    let server = with_alice().await;
    let mut c = server.raw_starttls().await;
    assert!(
        xml::has_mechanism(c.features.as_ref().unwrap(), "PLAIN"),
        "PLAIN should be offered over TLS"
    );
    c.sasl_plain("alice", "secret").await.expect("PLAIN login");
    c.restart_stream().await;
    c.bind(None).await.expect("bind");
    tokio_xmpp_sasl_login(
        server.starttls_connector(),
        "alice@localhost",
        "secret",
        &["PLAIN"],
    )
    .await
    .expect("tokio-xmpp PLAIN login");
}

// RFC 6120 §6.5.10: a wrong password gives <not-authorized/> with every mechanism.
#[tokio::test]
async fn rfc6120_6_5_10_wrong_password_not_authorized() {
    let server = with_alice().await;
    for hash in [ScramHash::Sha1, ScramHash::Sha256] {
        let mut c = server.raw_starttls().await;
        let f = c
            .sasl_scram("alice", "wrong", hash, ChannelBindingMode::None)
            .await
            .expect_err("login with a wrong password succeeded");
        assert_eq!(f.condition, "not-authorized", "{hash:?}: {f:?}");
    }
    let mut c = server.raw_starttls().await;
    let f = c
        .sasl_plain("alice", "wrong")
        .await
        .expect_err("PLAIN wrong password");
    assert_eq!(f.condition, "not-authorized", "{f:?}");
    let r = tokio_xmpp_sasl_login(
        server.starttls_connector(),
        "alice@localhost",
        "wrong",
        &["SCRAM-SHA-256"],
    )
    .await;
    assert_eq!(r, Err("not-authorized".to_string()), "tokio-xmpp SCRAM-SHA-256");
}

// RFC 6120 §6.5.10 / §13.8: an unknown user fails exactly like a wrong
// password (no account enumeration).
#[tokio::test]
async fn rfc6120_6_5_10_unknown_user_same_failure() {
    let server = with_alice().await;
    for hash in [ScramHash::Sha1, ScramHash::Sha256] {
        let mut c = server.raw_starttls().await;
        let wrong = c
            .sasl_scram("alice", "wrong", hash, ChannelBindingMode::None)
            .await
            .expect_err("wrong password");
        let mut c = server.raw_starttls().await;
        let unknown = c
            .sasl_scram("nobody", "wrong", hash, ChannelBindingMode::None)
            .await
            .expect_err("unknown user");
        assert_eq!(
            unknown.condition, wrong.condition,
            "{hash:?}: {unknown:?} vs {wrong:?}"
        );
        assert_eq!(
            unknown.step, wrong.step,
            "{hash:?}: unknown user fails at a different step than a wrong password \
             (reveals account existence): {unknown:?} vs {wrong:?}"
        );
    }
    let mut c = server.raw_starttls().await;
    let wrong = c.sasl_plain("alice", "wrong").await.expect_err("wrong");
    let mut c = server.raw_starttls().await;
    let unknown = c.sasl_plain("nobody", "wrong").await.expect_err("unknown");
    assert_eq!(unknown.condition, wrong.condition);
}

// RFC 6120 §6.4.4 / §6.5.1: <abort/> is answered with <failure><aborted/>,
// and the client may then retry on the same stream.
#[tokio::test]
async fn rfc6120_6_4_4_abort() {
    let server = with_alice().await;
    let mut c = server.raw_starttls().await;
    let mut scram = ScramClient::new(ScramHash::Sha1, "alice", "secret", ChannelBindingMode::None);
    let first = scram.client_first();
    c.send_auth("SCRAM-SHA-1", Some(first.as_bytes())).await;
    let ch = c.expect_element().await;
    assert!(ch.is("challenge", ns::SASL), "{}", xml::to_string(&ch));
    c.send(format!("<abort xmlns='{}'/>", ns::SASL)).await;
    assert_eq!(expect_failure(&mut c).await, "aborted");
    c.sasl_scram("alice", "secret", ScramHash::Sha1, ChannelBindingMode::None)
        .await
        .expect("retry after abort");
}

// RFC 6120 §6.5.7: an unsupported mechanism -> <invalid-mechanism/>.
#[tokio::test]
async fn rfc6120_6_5_7_invalid_mechanism() {
    let server = with_alice().await;
    let mut c = server.raw_starttls().await;
    c.send_auth("X-NOT-A-MECHANISM", None).await;
    assert_eq!(expect_failure(&mut c).await, "invalid-mechanism");
}

// RFC 6120 §6.5.2: data that is not base64 -> <incorrect-encoding/>.
#[tokio::test]
async fn rfc6120_6_5_5_incorrect_encoding() {
    let server = with_alice().await;
    let mut c = server.raw_starttls().await;
    c.send(format!(
        "<auth xmlns='{}' mechanism='PLAIN'>%%% not base64 %%%</auth>",
        ns::SASL
    ))
    .await;
    let cond = expect_failure(&mut c).await;
    assert_eq!(cond, "incorrect-encoding");
    // Same inside a SCRAM response.
    let mut c = server.raw_starttls().await;
    let mut scram = ScramClient::new(ScramHash::Sha1, "alice", "secret", ChannelBindingMode::None);
    let first = scram.client_first();
    c.send_auth("SCRAM-SHA-1", Some(first.as_bytes())).await;
    let ch = c.expect_element().await;
    assert!(ch.is("challenge", ns::SASL));
    c.send(format!("<response xmlns='{}'>!!!!</response>", ns::SASL))
        .await;
    let cond = expect_failure(&mut c).await;
    assert_eq!(cond, "incorrect-encoding");
}

// RFC 6120 §6.5.8: a syntactically broken SCRAM message -> <malformed-request/>,
// in the first message and in the final one.
#[tokio::test]
async fn rfc6120_6_5_8_malformed_scram_message() {
    let server = with_alice().await;
    let mut c = server.raw_starttls().await;
    c.send_auth("SCRAM-SHA-1", Some(b"this is not scram")).await;
    assert_eq!(expect_failure(&mut c).await, "malformed-request");
    c.send_auth("SCRAM-SHA-1", Some(b"n,,n=alice,r=abcdefgh")).await;
    let ch = c.expect_element().await;
    assert!(ch.is("challenge", ns::SASL), "{}", xml::to_string(&ch));
    c.send(format!(
        "<response xmlns='{}'>{}</response>",
        ns::SASL,
        B64.encode("c=biws,p=not-a-final-message")
    ))
    .await;
    assert_eq!(expect_failure(&mut c).await, "malformed-request");
}

// RFC 6120 §6.5.6: PLAIN with an authzid of another user must not grant that
// identity -> <invalid-authzid/>.
#[tokio::test]
async fn rfc6120_6_5_6_invalid_authzid() {
    let server = with_alice().await;
    server.add_user("bob", "bob-password").await;
    let mut c = server.raw_starttls().await;
    c.send_auth("PLAIN", Some(b"bob@localhost\0alice\0secret")).await;
    let e = c.expect_element().await;
    if e.is("success", ns::SASL) {
        c.restart_stream().await;
        let jid = c.bind(None).await.expect("bind");
        panic!("authzid bob@localhost accepted for alice's credentials; bound {jid}");
    }
    assert!(e.is("failure", ns::SASL), "{}", xml::to_string(&e));
    let cond = e
        .children()
        .next()
        .map(|c| c.name().to_owned())
        .unwrap_or_default();
    assert_eq!(cond, "invalid-authzid");
}

// RFC 6120 §6.4.5: the server allows at least 2 retries on the same stream.
#[tokio::test]
async fn rfc6120_6_4_5_retries_allowed() {
    let server = with_alice().await;
    let mut c = server.raw_starttls().await;
    c.timeout = Duration::from_secs(20);
    for _ in 0..2 {
        let f = c
            .sasl_scram("alice", "wrong", ScramHash::Sha1, ChannelBindingMode::None)
            .await
            .expect_err("wrong password");
        assert_eq!(f.condition, "not-authorized", "{f:?}");
    }
    c.sasl_scram("alice", "secret", ScramHash::Sha1, ChannelBindingMode::None)
        .await
        .expect("third attempt (second retry) with the right password");
    c.restart_stream().await;
    c.bind(None).await.expect("bind");
}

// RFC 6120 §6.4.5 / §13.9: repeated failures are slowed down, but every attempt
// is answered with its real verdict (not-authorized, or a stream close after the
// allowed retries), and the correct password still logs in: throttling must not
// lock the owner out (temporary-auth-failure is a refusal of the right password).
#[tokio::test]
async fn rfc6120_6_4_5_repeated_failures_answered() {
    let server = with_alice().await;
    let mut c = server.raw_starttls().await;
    c.timeout = Duration::from_secs(30);
    let mut attempts = 0;
    while attempts < 8 {
        attempts += 1;
        match c
            .sasl_scram("alice", "wrong", ScramHash::Sha1, ChannelBindingMode::None)
            .await
        {
            Ok(()) => panic!("wrong password accepted"),
            Err(f) if f.condition == "not-authorized" => {}
            Err(f)
                if f.condition.starts_with("stream-error:")
                    || f.condition.starts_with("protocol:stream ended") =>
            {
                assert!(
                    attempts > 2,
                    "stream closed after only {attempts} attempts: {f:?}"
                );
                c = server.raw_starttls().await;
                c.timeout = Duration::from_secs(30);
            }
            Err(f) => panic!("unexpected failure on attempt {attempts}: {f:?}"),
        }
    }
    let mut c = server.raw_starttls().await;
    c.timeout = Duration::from_secs(30);
    c.sasl_scram("alice", "secret", ScramHash::Sha1, ChannelBindingMode::None)
        .await
        .expect("the correct password after failures logs in");
    c.restart_stream().await;
    c.bind(None).await.expect("bind");
}

// XEP-0440: supported channel-binding types are advertised, and with them the
// -PLUS mechanisms.
#[tokio::test]
async fn xep0440_channel_binding_types_advertised() {
    let server = TestServer::start().await;
    let c = server.raw_starttls().await;
    let f = c.features.clone().unwrap();
    let cb = f
        .get_child("sasl-channel-binding", ns::SASL_CB)
        .unwrap_or_else(|| panic!("no <sasl-channel-binding/> in {}", xml::to_string(&f)));
    let types: Vec<String> = cb
        .children()
        .filter(|c| c.is("channel-binding", ns::SASL_CB))
        .filter_map(|c| c.attr("type").map(String::from))
        .collect();
    for t in ["tls-exporter", "tls-server-end-point"] {
        assert!(types.iter().any(|x| x == t), "{t} not advertised: {types:?}");
    }
    assert!(
        xml::has_mechanism(&f, "SCRAM-SHA-256-PLUS"),
        "SCRAM-SHA-256-PLUS not offered: {:?}",
        xml::mechanisms(&f)
    );
}

// RFC 9266 tls-exporter with SCRAM-SHA-256-PLUS through tokio-xmpp.
#[tokio::test]
async fn rfc9266_scram_sha_256_plus_tls_exporter_tokio_xmpp() {
    let server = with_alice().await;
    let connector = server
        .starttls_connector()
        .with_binding(ConnectorBinding::TlsExporter);
    tokio_xmpp_sasl_login(connector, "alice@localhost", "secret", &["SCRAM-SHA-256-PLUS"])
        .await
        .expect("SCRAM-SHA-256-PLUS with tls-exporter");
}

// RFC 9266 tls-exporter, raw.
#[tokio::test]
async fn rfc9266_scram_sha_256_plus_tls_exporter_raw() {
    let server = with_alice().await;
    let mut c = server.raw_starttls().await;
    let data = c.tls_exporter().expect("TLS 1.3 exporter");
    c.sasl_scram(
        "alice",
        "secret",
        ScramHash::Sha256,
        ChannelBindingMode::Bind {
            name: "tls-exporter".into(),
            data,
        },
    )
    .await
    .expect("SCRAM-SHA-256-PLUS tls-exporter");
}

// RFC 5929 tls-server-end-point with SCRAM-SHA-256-PLUS, raw, on the direct
// TLS port.
#[tokio::test]
async fn rfc5929_scram_sha_256_plus_tls_server_end_point() {
    let server = with_alice().await;
    let mut c = server.raw_direct_tls().await;
    c.open_stream().await;
    let data = c.tls_server_end_point().expect("server certificate");
    c.sasl_scram(
        "alice",
        "secret",
        ScramHash::Sha256,
        ChannelBindingMode::Bind {
            name: "tls-server-end-point".into(),
            data,
        },
    )
    .await
    .expect("SCRAM-SHA-256-PLUS tls-server-end-point");
}

// RFC 5802 §6: channel binding data that does not match the TLS connection
// (a MITM) fails.
#[tokio::test]
async fn rfc5802_6_channel_binding_mismatch_fails() {
    let server = with_alice().await;
    let mut c = server.raw_starttls().await;
    let mut data = c.tls_exporter().expect("exporter");
    data[0] ^= 0xff;
    let f = c
        .sasl_scram(
            "alice",
            "secret",
            ScramHash::Sha256,
            ChannelBindingMode::Bind {
                name: "tls-exporter".into(),
                data,
            },
        )
        .await
        .expect_err("forged channel binding accepted");
    assert!(!f.condition.starts_with("protocol:"), "{f:?}");
}

// RFC 5802 §6: "y" (client supports channel binding but thinks the server does
// not) must fail when the server advertised -PLUS (downgrade detection).
#[tokio::test]
async fn rfc5802_6_downgrade_flag_y_rejected() {
    let server = with_alice().await;
    let mut c = server.raw_starttls().await;
    let f = c.features.clone().unwrap();
    assert!(
        xml::has_mechanism(&f, "SCRAM-SHA-256-PLUS") || xml::has_mechanism(&f, "SCRAM-SHA-1-PLUS"),
        "precondition: server advertises a -PLUS mechanism: {:?}",
        xml::mechanisms(&f)
    );
    let r = c
        .sasl_scram(
            "alice",
            "secret",
            ScramHash::Sha256,
            ChannelBindingMode::ClientSupportsServerNot,
        )
        .await;
    let f = r.expect_err("'y' GS2 flag accepted although the server supports channel binding");
    assert!(!f.condition.starts_with("protocol:"), "{f:?}");
}

// RFC 6120 §6.4.6: after SASL success and the stream restart, SASL is not
// offered again; resource binding is.
#[tokio::test]
async fn rfc6120_6_4_6_features_after_success() {
    let server = with_alice().await;
    let mut c = server.raw_starttls().await;
    c.sasl_scram("alice", "secret", ScramHash::Sha1, ChannelBindingMode::None)
        .await
        .expect("login");
    let f = c.restart_stream().await;
    assert!(
        f.get_child("mechanisms", ns::SASL).is_none(),
        "SASL offered again: {}",
        xml::to_string(&f)
    );
    assert!(
        f.get_child("starttls", ns::TLS).is_none(),
        "STARTTLS offered again"
    );
    assert!(f.get_child("bind", ns::BIND).is_some(), "bind not offered");
}

// RFC 6120 §6.4.2: an <auth/> after a successful authentication (before the
// restart is handled) must not re-authenticate; after the restart SASL is gone,
// so a second <auth/> is an error.
#[tokio::test]
async fn rfc6120_6_4_6_second_auth_rejected() {
    let server = with_alice().await;
    server.add_user("bob", "bob-password").await;
    let mut c = server.raw_starttls().await;
    c.sasl_plain("alice", "secret").await.expect("login");
    c.restart_stream().await;
    let msg = "\0bob\0bob-password";
    c.send(format!(
        "<auth xmlns='{}' mechanism='PLAIN'>{}</auth>",
        ns::SASL,
        B64.encode(msg)
    ))
    .await;
    match c.next().await {
        Incoming::Element(e) if e.is("success", ns::SASL) => {
            panic!("second SASL authentication succeeded on an authenticated stream")
        }
        Incoming::Element(e) if e.is("failure", ns::SASL) || e.is("error", ns::STREAM) => {}
        other => panic!("unexpected answer: {other:?}"),
    }
}

// RFC 6120 §6.4.2: without an initial response the server sends an empty
// challenge and the client answers with a <response/>.
#[tokio::test]
async fn rfc6120_6_4_2_plain_without_initial_response() {
    let server = with_alice().await;
    let mut c = server.raw_starttls().await;
    c.send_auth("PLAIN", None).await;
    let ch = c.expect_element().await;
    assert!(
        ch.is("challenge", ns::SASL),
        "expected an empty <challenge/>, got {}",
        xml::to_string(&ch)
    );
    let t = ch.text();
    assert!(
        t.trim().is_empty() || t.trim() == "=",
        "PLAIN challenge must be empty: {t:?}"
    );
    c.send(format!(
        "<response xmlns='{}'>{}</response>",
        ns::SASL,
        B64.encode("\0alice\0secret")
    ))
    .await;
    let e = c.expect_element().await;
    assert!(e.is("success", ns::SASL), "{}", xml::to_string(&e));
}

// RFC 9266 / RFC 5802: SCRAM-SHA-1-PLUS with tls-exporter (we offer it on TLS 1.3).
#[tokio::test]
async fn rfc9266_scram_sha_1_plus_tls_exporter() {
    let server = with_alice().await;
    let mut c = server.raw_starttls().await;
    assert!(
        xml::has_mechanism(c.features.as_ref().unwrap(), "SCRAM-SHA-1-PLUS"),
        "SCRAM-SHA-1-PLUS not offered: {:?}",
        xml::mechanisms(c.features.as_ref().unwrap())
    );
    let data = c.tls_exporter().expect("TLS 1.3 exporter");
    c.sasl_scram(
        "alice",
        "secret",
        ScramHash::Sha1,
        ChannelBindingMode::Bind {
            name: "tls-exporter".into(),
            data,
        },
    )
    .await
    .expect("SCRAM-SHA-1-PLUS tls-exporter");
}

// RFC 5802 §6: a channel-binding type the server does not support fails.
#[tokio::test]
async fn rfc5802_6_unsupported_channel_binding_type() {
    let server = with_alice().await;
    let mut c = server.raw_starttls().await;
    let f = c
        .sasl_scram(
            "alice",
            "secret",
            ScramHash::Sha256,
            ChannelBindingMode::Bind {
                name: "tls-unique".into(),
                data: vec![0u8; 12],
            },
        )
        .await
        .expect_err("tls-unique over TLS 1.3 (not supported) accepted");
    assert!(!f.condition.starts_with("protocol:"), "{f:?}");
}
