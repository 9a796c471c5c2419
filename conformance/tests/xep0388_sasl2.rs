//! XEP-0388 Extensible SASL Profile (SASL2), raw XML: the `<authentication/>` feature, every
//! mechanism of RFC 6120's SASL through `<authenticate/>`, challenges and responses in the
//! SASL2 namespace, `<success/>` without a stream restart, `<failure/>` conditions, and the
//! same password-guessing backoff as SASL1.

use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use conformance::sasl2::{self, NS};
use conformance::scram::ScramClient;
use conformance::{ChannelBindingMode, RawClient, ScramHash, TestServer, ns, xml};

async fn with_alice() -> TestServer {
    let server = TestServer::start().await;
    server.add_user("alice", "secret").await;
    server
}

// §2.1: after TLS the server offers `<authentication/>` with the mechanisms of RFC 6120's
// `<mechanisms/>`, and what may ride inline (Bind2 with its inline features).
#[tokio::test]
async fn xep0388_2_1_authentication_feature_lists_the_sasl_mechanisms() {
    let server = TestServer::start().await;
    let c = server.raw_starttls().await;
    let f = c.features.clone().unwrap();
    assert_eq!(
        sasl2::mechanisms(&f),
        xml::mechanisms(&f),
        "{}",
        xml::to_string(&f)
    );
    assert!(sasl2::mechanisms(&f).iter().any(|m| m == "SCRAM-SHA-256"));
    let inline = sasl2::authentication(&f)
        .unwrap()
        .get_child("inline", NS)
        .expect("inline");
    let bind = inline
        .get_child("bind", sasl2::BIND2)
        .expect("Bind2 offered inline");
    let vars: Vec<_> = bind
        .get_child("inline", sasl2::BIND2)
        .expect("Bind2 inline features")
        .children()
        .filter_map(|f| f.attr("var"))
        .collect();
    assert!(vars.contains(&sasl2::CARBONS), "{vars:?}");
}

// §2.1 and RFC 6120 §5.3.1: before TLS (required by default) nothing to authenticate with.
#[tokio::test]
async fn xep0388_2_1_not_offered_before_tls() {
    let server = TestServer::start().await;
    let mut c = server.raw().await;
    let f = c.open_stream().await;
    assert!(sasl2::authentication(&f).is_none(), "{}", xml::to_string(&f));
    // And an <authenticate/> sent anyway is refused without checking anything.
    sasl2::send_authenticate(&mut c, "PLAIN", Some(b"\0alice\0secret"), "").await;
    let failure = sasl2::next_sasl2(&mut c).await;
    assert_eq!(sasl2::condition(&failure), "encryption-required");
}

// §2.4 + §2.6.1: SCRAM-SHA-256 with the initial response inline; the server-final message
// in `<additional-data/>`, the bare JID as authorization identifier; no stream restart:
// the features (resource binding) follow at once and the stream goes on.
#[tokio::test]
async fn xep0388_4_authenticate_with_initial_response() {
    let server = with_alice().await;
    let mut c = server.raw_starttls().await;
    let success = sasl2::login(&mut c, "alice", "secret", &sasl2::user_agent("ua-1")).await;
    assert_eq!(sasl2::authorization_identifier(&success), "alice@localhost");
    let f = sasl2::features_after_success(&mut c).await;
    assert!(f.get_child("bind", ns::BIND).is_some(), "{}", xml::to_string(&f));
    assert!(sasl2::authentication(&f).is_none(), "{}", xml::to_string(&f));
    let jid = c.bind(Some("raw")).await.expect("bind after SASL2");
    assert_eq!(jid, "alice@localhost/raw");
    let r = c
        .iq("<iq type='get' id='p1' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>")
        .await;
    assert_eq!(r.attr("type"), Some("result"), "{}", xml::to_string(&r));
}

// §2.4: without an initial response the server starts with an empty challenge.
#[tokio::test]
async fn xep0388_2_4_authenticate_without_initial_response_gets_empty_challenge() {
    let server = with_alice().await;
    let mut c = server.raw_starttls().await;
    let mut scram = ScramClient::new(ScramHash::Sha1, "alice", "secret", ChannelBindingMode::None);
    sasl2::send_authenticate(&mut c, "SCRAM-SHA-1", None, "").await;
    let empty = sasl2::next_sasl2(&mut c).await;
    assert!(empty.is("challenge", NS), "{}", xml::to_string(&empty));
    assert_eq!(empty.text().trim(), "");
    let first = scram.client_first();
    c.send(format!("<response xmlns='{NS}'>{}</response>", B64.encode(first)))
        .await;
    let ch = sasl2::next_sasl2(&mut c).await;
    assert!(ch.is("challenge", NS), "{}", xml::to_string(&ch));
    let server_first = String::from_utf8(B64.decode(ch.text().trim()).unwrap()).unwrap();
    let fin = scram.client_final(&server_first).unwrap();
    c.send(format!("<response xmlns='{NS}'>{}</response>", B64.encode(fin)))
        .await;
    let success = sasl2::next_sasl2(&mut c).await;
    assert!(success.is("success", NS), "{}", xml::to_string(&success));
    let data = B64
        .decode(success.get_child("additional-data", NS).unwrap().text().trim())
        .unwrap();
    scram
        .verify_server_final(std::str::from_utf8(&data).unwrap())
        .unwrap();
}

// PLAIN (RFC 4616) over TLS through SASL2: no additional data.
#[tokio::test]
async fn xep0388_4_plain_with_initial_response() {
    let server = with_alice().await;
    let mut c = server.raw_starttls().await;
    sasl2::send_authenticate(&mut c, "PLAIN", Some(b"\0alice\0secret"), "").await;
    let success = sasl2::next_sasl2(&mut c).await;
    assert!(success.is("success", NS), "{}", xml::to_string(&success));
    assert!(success.get_child("additional-data", NS).is_none());
    assert_eq!(sasl2::authorization_identifier(&success), "alice@localhost");
    sasl2::features_after_success(&mut c).await;
}

// RFC 9266 channel binding in SASL2: SCRAM-SHA-256-PLUS with tls-exporter.
#[tokio::test]
async fn xep0388_4_scram_plus_with_tls_exporter() {
    let server = with_alice().await;
    let mut c = server.raw_starttls().await;
    let binding = ChannelBindingMode::Bind {
        name: "tls-exporter".into(),
        data: c.tls_exporter().expect("exporter"),
    };
    let success = sasl2::scram(&mut c, "alice", "secret", ScramHash::Sha256, binding, "")
        .await
        .unwrap_or_else(|f| panic!("{}", xml::to_string(&f)));
    assert_eq!(sasl2::authorization_identifier(&success), "alice@localhost");
}

// §2.6.2: a wrong password is `not-authorized`, with a text; the client may try again on
// the same stream.
#[tokio::test]
async fn xep0388_2_6_2_wrong_password_is_not_authorized() {
    let server = with_alice().await;
    let mut c = server.raw_starttls().await;
    let f = sasl2::scram(
        &mut c,
        "alice",
        "wrong",
        ScramHash::Sha256,
        ChannelBindingMode::None,
        "",
    )
    .await
    .expect_err("a wrong password");
    assert_eq!(sasl2::condition(&f), "not-authorized");
    assert!(
        f.get_child("text", NS).is_some_and(|t| !t.text().is_empty()),
        "{}",
        xml::to_string(&f)
    );
    // An unknown account looks the same.
    let f = sasl2::scram(
        &mut c,
        "nobody",
        "secret",
        ScramHash::Sha256,
        ChannelBindingMode::None,
        "",
    )
    .await
    .expect_err("an unknown account");
    assert_eq!(sasl2::condition(&f), "not-authorized");
    sasl2::login(&mut c, "alice", "secret", "").await;
}

// §2.6.2: a mechanism the server does not offer.
#[tokio::test]
async fn xep0388_2_6_2_unknown_mechanism_is_invalid_mechanism() {
    let server = with_alice().await;
    let mut c = server.raw_starttls().await;
    sasl2::send_authenticate(&mut c, "DIGEST-MD5", Some(b"x"), "").await;
    let f = sasl2::next_sasl2(&mut c).await;
    assert_eq!(sasl2::condition(&f), "invalid-mechanism");
    sasl2::send_authenticate(&mut c, "scram-sha-1", Some(b"n,,n=alice,r=abc"), "").await;
    let f = sasl2::next_sasl2(&mut c).await;
    assert_eq!(sasl2::condition(&f), "invalid-mechanism");
}

// §2.6.2: responses that are not base64, or not SCRAM.
#[tokio::test]
async fn xep0388_2_6_2_bad_response_is_refused() {
    let server = with_alice().await;
    let mut c = server.raw_starttls().await;
    c.send(format!(
        "<authenticate xmlns='{NS}' mechanism='SCRAM-SHA-1'><initial-response>!!not base64!!</initial-response></authenticate>"
    ))
    .await;
    let f = sasl2::next_sasl2(&mut c).await;
    assert_eq!(sasl2::condition(&f), "incorrect-encoding");
    sasl2::send_authenticate(&mut c, "SCRAM-SHA-1", Some(b"garbage"), "").await;
    let f = sasl2::next_sasl2(&mut c).await;
    assert_eq!(sasl2::condition(&f), "malformed-request");
    // A client-final with a wrong nonce after a good client-first.
    sasl2::send_authenticate(&mut c, "SCRAM-SHA-1", Some(b"n,,n=alice,r=abcdef"), "").await;
    let ch = sasl2::next_sasl2(&mut c).await;
    assert!(ch.is("challenge", NS), "{}", xml::to_string(&ch));
    c.send(format!(
        "<response xmlns='{NS}'>{}</response>",
        B64.encode("c=biws,r=someoneelse,p=AAAA")
    ))
    .await;
    let f = sasl2::next_sasl2(&mut c).await;
    assert!(f.is("failure", NS), "{}", xml::to_string(&f));
}

// §2.5 (RFC 6120 §6.4.4 in SASL2 form): `<abort/>` answers a challenge: `aborted`.
#[tokio::test]
async fn xep0388_2_5_abort_during_exchange() {
    let server = with_alice().await;
    let mut c = server.raw_starttls().await;
    sasl2::send_authenticate(&mut c, "SCRAM-SHA-256", Some(b"n,,n=alice,r=abcdef"), "").await;
    let ch = sasl2::next_sasl2(&mut c).await;
    assert!(ch.is("challenge", NS), "{}", xml::to_string(&ch));
    c.send(format!("<abort xmlns='{NS}'/>")).await;
    let f = sasl2::next_sasl2(&mut c).await;
    assert_eq!(sasl2::condition(&f), "aborted");
    // The stream is still usable.
    sasl2::login(&mut c, "alice", "secret", "").await;
}

// RFC 6120 §6.4.5 applies to SASL2 too: five failures on a stream close it.
#[tokio::test]
async fn xep0388_2_6_2_five_failures_close_the_stream() {
    let server = with_alice().await;
    let mut c = server.raw_starttls().await;
    for _ in 0..4 {
        sasl2::send_authenticate(&mut c, "NOPE", None, "").await;
        assert_eq!(
            sasl2::condition(&sasl2::next_sasl2(&mut c).await),
            "invalid-mechanism"
        );
    }
    sasl2::send_authenticate(&mut c, "NOPE", None, "").await;
    assert_eq!(
        sasl2::condition(&sasl2::next_sasl2(&mut c).await),
        "invalid-mechanism"
    );
    c.expect_stream_error()
        .await
        .assert_condition(&["policy-violation"]);
}

// RFC 6120 §13.9: SASL2 shares SASL1's backoff. Five wrong passwords for alice through
// SASL1 are answered at once; the sixth guess, through SASL2, waits, and so does the
// owner's right password through SASL2.
#[tokio::test]
async fn xep0388_13_9_guesses_share_the_sasl1_backoff() {
    let server = TestServer::start_with(|c| c.extra_toml = "[auth]\nscram_iterations = 4096\n".into()).await;
    server.add_user("alice", "secret").await;
    let mut c = server.raw_starttls_from("127.0.0.7").await;
    for _ in 0..4 {
        let r = c.sasl_plain("alice", "wrong").await;
        assert_eq!(r.unwrap_err().condition, "not-authorized");
    }
    let mut c = server.raw_starttls_from("127.0.0.7").await;
    let r = c.sasl_plain("alice", "wrong").await;
    assert_eq!(r.unwrap_err().condition, "not-authorized");
    let mut c: RawClient = server.raw_starttls_from("127.0.0.8").await;
    c.timeout = Duration::from_secs(20);
    let started = Instant::now();
    sasl2::send_authenticate(&mut c, "PLAIN", Some(b"\0alice\0wrong"), "").await;
    assert_eq!(
        sasl2::condition(&sasl2::next_sasl2(&mut c).await),
        "not-authorized"
    );
    assert!(
        started.elapsed() >= Duration::from_millis(250),
        "the sixth guess was answered in {:?}",
        started.elapsed()
    );
    let started = Instant::now();
    sasl2::send_authenticate(&mut c, "PLAIN", Some(b"\0alice\0secret"), "").await;
    let success = sasl2::next_sasl2(&mut c).await;
    assert!(success.is("success", NS), "{}", xml::to_string(&success));
    assert!(started.elapsed() >= Duration::from_millis(250));
}
