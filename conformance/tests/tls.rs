//! RFC 6120 §5 (STARTTLS), XEP-0368 (direct TLS), plaintext policy.

use conformance::client::tokio_xmpp_sasl_login;
use conformance::{Incoming, TestServer, XmppClient, ns, xml};
use tokio_xmpp::connect::DnsConfig;

// RFC 6120 §5.4.1 / §5.3.1: when TLS is required, STARTTLS is offered with
// <required/> and no mechanism that would expose the password (PLAIN) is
// offered before TLS.
#[tokio::test]
async fn rfc6120_5_4_1_starttls_required_and_no_plain_before_tls() {
    let server = TestServer::start().await;
    let mut c = server.raw().await;
    let f = c.open_stream().await;
    let st = f
        .get_child("starttls", ns::TLS)
        .unwrap_or_else(|| panic!("no STARTTLS: {}", xml::to_string(&f)));
    assert!(st.get_child("required", ns::TLS).is_some(), "<required/> missing");
    assert!(
        !xml::has_mechanism(&f, "PLAIN"),
        "PLAIN offered before TLS: {}",
        xml::to_string(&f)
    );
}

// RFC 6120 §5.4.3.3: after TLS the stream is restarted and the new features
// do not offer STARTTLS again; SASL is offered.
#[tokio::test]
async fn rfc6120_5_4_3_3_features_after_tls() {
    let server = TestServer::start().await;
    let mut c = server.raw().await;
    c.open_stream().await;
    let first_id = c.header.as_ref().and_then(|h| h.attr("id")).map(String::from);
    let f = c.starttls().await;
    assert!(c.is_tls());
    assert!(
        f.get_child("starttls", ns::TLS).is_none(),
        "STARTTLS offered again: {}",
        xml::to_string(&f)
    );
    assert!(
        !xml::mechanisms(&f).is_empty(),
        "no SASL mechanisms after TLS: {}",
        xml::to_string(&f)
    );
    let header = c.header.clone().unwrap();
    assert_eq!(header.attr("from"), Some("localhost"));
    assert!(
        header.attr("id").is_some_and(|i| !i.is_empty()),
        "§4.7.3: new stream id after TLS"
    );
    assert_ne!(
        header.attr("id").map(String::from),
        first_id,
        "§4.7.3: the restarted stream needs a new id"
    );
}

// RFC 6120 §5.4.3.3: <starttls/> on an already encrypted stream is not
// proceeded (it is not offered).
#[tokio::test]
async fn rfc6120_5_4_3_3_starttls_twice_refused() {
    let server = TestServer::start().await;
    let mut c = server.raw_starttls().await;
    c.send(format!("<starttls xmlns='{}'/>", ns::TLS)).await;
    match c.next().await {
        Incoming::Element(e) if e.is("proceed", ns::TLS) => panic!("<proceed/> to a second STARTTLS"),
        Incoming::Element(e) if e.is("failure", ns::TLS) || e.is("error", ns::STREAM) => {}
        Incoming::StreamEnd | Incoming::Closed => {}
        other => panic!("unexpected {other:?}"),
    }
}

// RFC 6120 §6.5.4 (with §5.3.1): authentication before TLS on a server that
// requires TLS fails: <encryption-required/> (or <invalid-mechanism/> since
// nothing is offered, or a policy-violation / not-authorized stream error).
#[tokio::test]
async fn rfc6120_6_5_4_auth_before_tls_refused() {
    let server = TestServer::start().await;
    server.add_user("alice", "secret").await;
    let mut c = server.raw().await;
    c.open_stream().await;
    c.send_auth("PLAIN", Some(b"\0alice\0secret")).await;
    match c.next().await {
        Incoming::Element(e) if e.is("success", ns::SASL) => {
            panic!("authenticated over plaintext although TLS is required")
        }
        Incoming::Element(e) if e.is("failure", ns::SASL) => {
            let cond = e
                .children()
                .next()
                .map(|c| c.name().to_owned())
                .unwrap_or_default();
            assert!(
                cond == "encryption-required" || cond == "invalid-mechanism",
                "got <{cond}/>"
            );
        }
        Incoming::Element(e) if e.is("error", ns::STREAM) => {
            let cond = xml::stream_error_condition(&e).unwrap_or_default();
            assert!(
                cond == "policy-violation" || cond == "not-authorized" || cond == "encryption-required",
                "{}",
                xml::to_string(&e)
            );
        }
        other => panic!("unexpected {other:?}"),
    }
}

// XEP-0368: direct TLS port, with ALPN "xmpp-client": no STARTTLS offered,
// SASL offered, and tokio-xmpp can log in through it.
#[tokio::test]
async fn xep0368_direct_tls() {
    let server = TestServer::start().await;
    server.add_user("alice", "secret").await;
    let mut c = server.raw_direct_tls().await;
    if let Some(p) = c.alpn() {
        assert_eq!(p, b"xmpp-client", "XEP-0368: negotiated ALPN must be xmpp-client");
    }
    let f = c.open_stream().await;
    assert!(
        f.get_child("starttls", ns::TLS).is_none(),
        "STARTTLS offered on a TLS stream"
    );
    assert!(
        !xml::mechanisms(&f).is_empty(),
        "no SASL on direct TLS: {}",
        xml::to_string(&f)
    );
    let client = XmppClient::connect(
        server.direct_tls_connector(),
        "alice@localhost".parse().unwrap(),
        "secret",
    )
    .await
    .unwrap_or_else(|e| panic!("tokio-xmpp over direct TLS: {e}"));
    assert_eq!(client.jid().to_bare().to_string(), "alice@localhost");
}

// XEP-0368: clients without ALPN can use the direct TLS port too.
#[tokio::test]
async fn xep0368_direct_tls_without_alpn() {
    let server = TestServer::start().await;
    let mut c =
        conformance::RawClient::connect_direct_tls(server.tls_addr(), server.tls_config(), "localhost").await;
    let f = c.open_stream().await;
    assert!(!xml::mechanisms(&f).is_empty());
}

// RFC 6120 §5.3.1: with require_encryption = false, STARTTLS is offered
// without <required/>, and a client may authenticate over plaintext
// (tokio-xmpp's insecure TCP connector).
#[tokio::test]
async fn rfc6120_5_3_1_plaintext_allowed_when_not_required() {
    let server = TestServer::start_with(|c| c.require_encryption = false).await;
    server.add_user("alice", "secret").await;
    let mut c = server.raw().await;
    let f = c.open_stream().await;
    if let Some(st) = f.get_child("starttls", ns::TLS) {
        assert!(st.get_child("required", ns::TLS).is_none(), "TLS marked required");
    }
    assert!(
        !xml::mechanisms(&f).is_empty(),
        "no SASL offered on plaintext: {}",
        xml::to_string(&f)
    );
    let connector =
        tokio_xmpp::connect::TcpServerConnector::from(DnsConfig::addr(&server.c2s_addr().to_string()));
    tokio_xmpp_sasl_login(
        connector.clone(),
        "alice@localhost",
        "secret",
        &["SCRAM-SHA-256", "SCRAM-SHA-1"],
    )
    .await
    .expect("plaintext SCRAM login");
    let client = XmppClient::connect(connector, "alice@localhost".parse().unwrap(), "secret")
        .await
        .unwrap_or_else(|e| panic!("tokio-xmpp plaintext: {e}"));
    assert_eq!(client.jid().to_bare().to_string(), "alice@localhost");
    // STARTTLS still works on that port.
    server.client("alice", "secret").await;
}

// RFC 6120 §5.4.3.2 / RFC 7590: the certificate presented is valid for the
// domain (the handshake verifies it against "localhost" with only the
// server's own certificate trusted); a client expecting another name fails.
#[tokio::test]
async fn rfc6120_13_7_certificate_name_checked() {
    let server = TestServer::start().await;
    let tcp = tokio::net::TcpStream::connect(server.tls_addr()).await.unwrap();
    let name = rustls_pki_types::ServerName::try_from("not-localhost.example".to_string()).unwrap();
    let r = tokio_rustls::TlsConnector::from(server.tls_config())
        .connect(name, tcp)
        .await;
    assert!(r.is_err(), "certificate accepted for an unrelated name");
    let _ok =
        conformance::RawClient::connect_direct_tls(server.tls_addr(), server.tls_config(), "localhost").await;
}
