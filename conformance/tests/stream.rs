//! RFC 6120 §4 (XML streams), §11 (XML usage) and stream errors (§4.9).

use std::time::Duration;

use conformance::{Element, RawClient, SILENCE, TestServer, ns, xml};

const STREAM_NS_DECL: &str = "xmlns:stream='http://etherx.jabber.org/streams'";

/// Sends a custom stream header and returns the stream error that follows.
async fn header_error(server: &TestServer, header: &str) -> conformance::StreamErrorInfo {
    let mut c = server.raw().await;
    c.send(header).await;
    c.expect_stream_error().await
}

/// Logged-in raw client (STARTTLS, SCRAM-SHA-1, bind) for alice.
async fn alice(server: &TestServer) -> RawClient {
    server.add_user("alice", "passw0rd").await;
    server.raw_login("alice", "passw0rd", Some("raw")).await
}

// RFC 6120 §4.7: the response header carries from, a unique id and version
// 1.0; features follow (§4.3.2). With TLS required, STARTTLS is offered with
// <required/> (§5.4.1).
#[tokio::test]
async fn rfc6120_4_7_response_header_and_features() {
    let server = TestServer::start().await;
    let mut c = server.raw().await;
    let features = c.open_stream().await;
    let header = c.header.clone().unwrap();
    assert!(
        header.is("stream", ns::STREAM),
        "header: {}",
        xml::to_string(&header)
    );
    assert_eq!(
        header.attr("from"),
        Some("localhost"),
        "§4.7.1: 'from' must be the server domain"
    );
    let id = header.attr("id").unwrap_or("");
    assert!(!id.is_empty(), "§4.7.3: the response header must include an 'id'");
    assert_eq!(header.attr("version"), Some("1.0"), "§4.7.5: version 1.0");
    let t = c.transcript();
    assert!(
        t.contains("xmlns='jabber:client'") || t.contains("xmlns=\"jabber:client\""),
        "§4.8.2: content namespace jabber:client must be declared: {t}"
    );
    let starttls = features
        .get_child("starttls", ns::TLS)
        .unwrap_or_else(|| panic!("§5.4.1: STARTTLS must be offered: {}", xml::to_string(&features)));
    assert!(
        starttls.get_child("required", ns::TLS).is_some(),
        "§5.4.1: TLS is mandatory here, <required/> must be present"
    );
}

// RFC 6120 §4.7.3: stream ids are unique (and unpredictable).
#[tokio::test]
async fn rfc6120_4_7_3_stream_ids_unique() {
    let server = TestServer::start().await;
    let mut ids = Vec::new();
    for _ in 0..3 {
        let mut c = server.raw().await;
        c.open_stream().await;
        ids.push(c.header.unwrap().attr("id").unwrap_or("").to_owned());
    }
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 3, "stream ids repeat: {ids:?}");
    assert!(
        ids.iter().all(|i| i.len() >= 8),
        "stream ids too short to be unpredictable: {ids:?}"
    );
}

// RFC 6120 §4.9.3.6 <host-unknown/>; §4.9.1.2: the server still sends its
// stream header before the error.
#[tokio::test]
async fn rfc6120_4_9_3_6_host_unknown() {
    let server = TestServer::start().await;
    let e = header_error(
        &server,
        &format!("<?xml version='1.0'?><stream:stream xmlns='jabber:client' {STREAM_NS_DECL} to='example.org' version='1.0'>"),
    )
    .await;
    e.assert_condition(&["host-unknown"]);
    assert!(
        e.header.is_some(),
        "§4.9.1.2: a response stream header must precede the error"
    );
}

// RFC 6120 §4.8.1 / §4.9.3.10: wrong stream namespace -> <invalid-namespace/>.
#[tokio::test]
async fn rfc6120_4_9_3_10_invalid_stream_namespace() {
    let server = TestServer::start().await;
    let e = header_error(
        &server,
        "<?xml version='1.0'?><stream:stream xmlns='jabber:client' xmlns:stream='http://wrong.example/streams' to='localhost' version='1.0'>",
    )
    .await;
    e.assert_condition(&["invalid-namespace"]);
}

// RFC 6120 §4.8.2 / §4.9.3.10: content namespace other than jabber:client on
// a c2s stream -> <invalid-namespace/>.
#[tokio::test]
async fn rfc6120_4_9_3_10_invalid_content_namespace() {
    let server = TestServer::start().await;
    let e = header_error(
        &server,
        &format!("<?xml version='1.0'?><stream:stream xmlns='urn:example:wrong' {STREAM_NS_DECL} to='localhost' version='1.0'>"),
    )
    .await;
    e.assert_condition(&["invalid-namespace"]);
}

// RFC 6120 §4.7.5: for an initial header with version 2.0 the server answers
// with the lower version (1.0) -- or refuses with <unsupported-version/>
// (§4.9.3.25). Both are accepted; anything else fails.
#[tokio::test]
async fn rfc6120_4_7_5_unsupported_major_version() {
    let server = TestServer::start().await;
    let mut c = server.raw().await;
    c.send(format!(
        "<?xml version='1.0'?><stream:stream xmlns='jabber:client' {STREAM_NS_DECL} to='localhost' version='2.0'>"
    ))
    .await;
    let header = c.read_header().await;
    match header.attr("version") {
        Some("1.0") => {
            // Negotiated down: features must follow, or the server may still refuse.
            let next = c.expect_element().await;
            if next.is("error", ns::STREAM) {
                assert_eq!(
                    xml::stream_error_condition(&next).as_deref(),
                    Some("unsupported-version")
                );
            } else {
                assert!(next.is("features", ns::STREAM), "got {}", xml::to_string(&next));
            }
        }
        _ => {
            let e = c.expect_stream_error().await;
            e.assert_condition(&["unsupported-version"]);
        }
    }
}

// RFC 6120 §4.7.5: a higher minor version is answered with the server's
// highest version (1.0), and the stream proceeds.
#[tokio::test]
async fn rfc6120_4_7_5_minor_version_negotiated_down() {
    let server = TestServer::start().await;
    let mut c = server.raw().await;
    c.send(format!(
        "<?xml version='1.0'?><stream:stream xmlns='jabber:client' {STREAM_NS_DECL} to='localhost' version='1.5'>"
    ))
    .await;
    let header = c.read_header().await;
    assert_eq!(header.attr("version"), Some("1.0"), "§4.7.5: whichever is lower");
    let f = c.expect_element().await;
    assert!(
        f.is("features", ns::STREAM),
        "features expected: {}",
        xml::to_string(&f)
    );
}

// RFC 6120 §4.7.5 rule 4: no version attribute means 0.9; the server SHOULD
// NOT put a version in its response. A 1.0-only server may refuse with
// <unsupported-version/>. Answering version='1.0' with features fails.
#[tokio::test]
async fn rfc6120_4_7_5_missing_version() {
    let server = TestServer::start().await;
    let mut c = server.raw().await;
    c.send(format!(
        "<?xml version='1.0'?><stream:stream xmlns='jabber:client' {STREAM_NS_DECL} to='localhost'>"
    ))
    .await;
    let header = c.read_header().await;
    if header.attr("version") == Some("1.0") {
        let e = c.expect_stream_error().await;
        e.assert_condition(&["unsupported-version"]);
    } else {
        // Legacy (0.9) stream or refusal: no features; an error must be unsupported-version.
        c.expect_none(
            Duration::from_secs(2),
            "element but an unsupported-version stream error",
            |el| !is_unsupported_version(el),
        )
        .await;
    }
}

// RFC 6120 §4.7.5: an explicit version lower than 1.0 (0.9): the server
// answers with that lower version (no features) or refuses with
// <unsupported-version/>; it must not claim 1.0 and carry on.
#[tokio::test]
async fn rfc6120_4_7_5_version_0_9() {
    let server = TestServer::start().await;
    let mut c = server.raw().await;
    c.send(format!(
        "<?xml version='1.0'?><stream:stream xmlns='jabber:client' {STREAM_NS_DECL} to='localhost' version='0.9'>"
    ))
    .await;
    let header = c.read_header().await;
    if header.attr("version") == Some("1.0") {
        let e = c.expect_stream_error().await;
        e.assert_condition(&["unsupported-version"]);
    } else {
        // A 0.9 stream gets no stream features; an error must be unsupported-version.
        c.expect_none(
            Duration::from_secs(2),
            "element but an unsupported-version stream error",
            |el| !is_unsupported_version(el),
        )
        .await;
    }
}

fn is_unsupported_version(el: &Element) -> bool {
    el.is("error", ns::STREAM) && xml::stream_error_condition(el).as_deref() == Some("unsupported-version")
}

// RFC 6120 §4.9.3.13 <not-well-formed/>: data that is not XML at all.
#[tokio::test]
async fn rfc6120_4_9_3_13_not_well_formed_garbage() {
    let server = TestServer::start().await;
    let mut c = server.raw().await;
    c.send("GET / HTTP/1.1\r\nHost: localhost\r\n\r\n").await;
    let e = c.expect_stream_error().await;
    e.assert_condition(&["not-well-formed"]);
}

// RFC 6120 §4.9.3.13: mismatched tags before authentication.
#[tokio::test]
async fn rfc6120_4_9_3_13_not_well_formed_pre_auth() {
    let server = TestServer::start().await;
    let mut c = server.raw().await;
    c.open_stream().await;
    c.send("<foo><bar></foo>").await;
    let e = c.expect_stream_error().await;
    e.assert_condition(&["not-well-formed"]);
}

// RFC 6120 §4.9.3.13: mismatched tags in a stanza of an authenticated stream.
#[tokio::test]
async fn rfc6120_4_9_3_13_not_well_formed_after_auth() {
    let server = TestServer::start().await;
    let mut c = alice(&server).await;
    c.send("<message to='alice@localhost'><body>hi</message>").await;
    let e = c.expect_stream_error().await;
    e.assert_condition(&["not-well-formed"]);
}

// RFC 6120 §4.9.3.13: an attribute without quotes / duplicate attribute.
#[tokio::test]
async fn rfc6120_4_9_3_13_not_well_formed_duplicate_attribute() {
    let server = TestServer::start().await;
    let mut c = alice(&server).await;
    c.send("<message to='alice@localhost' to='bob@localhost'><body>hi</body></message>")
        .await;
    let e = c.expect_stream_error().await;
    e.assert_condition(&["not-well-formed"]);
}

// RFC 6120 §11.1: a DTD (here in the prolog, before the stream header) ->
// <restricted-xml/>.
#[tokio::test]
async fn rfc6120_11_1_restricted_xml_doctype() {
    let server = TestServer::start().await;
    let mut c = server.raw().await;
    c.send(format!(
        "<?xml version='1.0'?><!DOCTYPE stream:stream><stream:stream xmlns='jabber:client' {STREAM_NS_DECL} to='localhost' version='1.0'>"
    ))
    .await;
    let e = c.expect_stream_error().await;
    e.assert_condition(&["restricted-xml"]);
}

// RFC 6120 §11.1: an internal DTD subset with an entity declaration (the
// "billion laughs" vector) -> <restricted-xml/>; the entity is never expanded.
#[tokio::test]
async fn rfc6120_11_1_restricted_xml_entity_declaration() {
    let server = TestServer::start().await;
    let mut c = server.raw().await;
    c.send(format!(
        "<?xml version='1.0'?><!DOCTYPE stream:stream [<!ENTITY lol 'lol'><!ENTITY lol2 '&lol;&lol;&lol;&lol;'>]><stream:stream xmlns='jabber:client' {STREAM_NS_DECL} to='localhost' version='1.0'>"
    ))
    .await;
    let e = c.expect_stream_error().await;
    e.assert_condition(&["restricted-xml"]);
}

// RFC 6120 §11.1: a reference to an undeclared entity is rejected (restricted
// XML, and not well-formed XML either).
#[tokio::test]
async fn rfc6120_11_1_restricted_xml_entity_reference() {
    let server = TestServer::start().await;
    let mut c = alice(&server).await;
    c.send("<message to='alice@localhost'><body>&xxe;</body></message>")
        .await;
    let e = c.expect_stream_error().await;
    e.assert_condition(&["restricted-xml", "not-well-formed"]);
}

// RFC 6120 §11.1: a processing instruction inside the stream -> <restricted-xml/>.
#[tokio::test]
async fn rfc6120_11_1_restricted_xml_processing_instruction() {
    let server = TestServer::start().await;
    let mut c = server.raw().await;
    c.open_stream().await;
    c.send("<?evil instruction?>").await;
    let e = c.expect_stream_error().await;
    e.assert_condition(&["restricted-xml"]);
}

// RFC 6120 §11.1: comments are restricted too -> <restricted-xml/>.
#[tokio::test]
async fn rfc6120_11_1_restricted_xml_comment() {
    let server = TestServer::start().await;
    let mut c = server.raw().await;
    c.open_stream().await;
    c.send("<!-- hello -->").await;
    let e = c.expect_stream_error().await;
    e.assert_condition(&["restricted-xml"]);
}

// RFC 6120 §11.6 / §4.9.3.22: bytes violating UTF-8. The RFC names
// <unsupported-encoding/> for this; <not-well-formed/> is also accepted (XML
// treats an encoding error as a fatal well-formedness error).
#[tokio::test]
async fn rfc6120_11_6_invalid_utf8() {
    let server = TestServer::start().await;
    let mut c = alice(&server).await;
    let mut data = b"<message to='alice@localhost'><body>".to_vec();
    data.extend_from_slice(&[0xff, 0xfe, 0xc3, 0x28]);
    data.extend_from_slice(b"</body></message>");
    c.send(data).await;
    let e = c.expect_stream_error().await;
    e.assert_condition(&["unsupported-encoding", "not-well-formed"]);
}

// RFC 6120 §11.6 / §4.9.3.22: invalid UTF-8 between stanzas (at stream
// level, not inside an element) is detected as well.
#[tokio::test]
async fn rfc6120_11_6_invalid_utf8_between_stanzas() {
    let server = TestServer::start().await;
    let mut c = alice(&server).await;
    c.send([0xc0u8, 0x80, 0xff]).await;
    let e = c.expect_stream_error().await;
    e.assert_condition(&["unsupported-encoding", "not-well-formed"]);
}

// RFC 6120 §11.6: an overlong / invalid UTF-8 sequence in the stream header.
#[tokio::test]
async fn rfc6120_11_6_invalid_utf8_in_header() {
    let server = TestServer::start().await;
    let mut c = server.raw().await;
    let mut data =
        format!("<?xml version='1.0'?><stream:stream xmlns='jabber:client' {STREAM_NS_DECL} to='local")
            .into_bytes();
    data.extend_from_slice(&[0xed, 0xa0, 0x80]); // UTF-16 surrogate encoded in UTF-8: invalid
    data.extend_from_slice(b"host' version='1.0'>");
    c.send(data).await;
    let e = c.expect_stream_error().await;
    e.assert_condition(&["unsupported-encoding", "not-well-formed", "host-unknown"]);
}

// RFC 6120 §4.9.3.24: an unknown first-level element -> <unsupported-stanza-type/>.
#[tokio::test]
async fn rfc6120_4_9_3_24_unsupported_stanza_type() {
    let server = TestServer::start().await;
    let mut c = alice(&server).await;
    c.send("<foo xmlns='jabber:client'><bar/></foo>").await;
    let e = c.expect_stream_error().await;
    e.assert_condition(&["unsupported-stanza-type"]);
}

// RFC 6120 §4.9.3.12: a stanza before authentication -> <not-authorized/>
// (sent after TLS so encryption is not the issue). Nothing is delivered.
#[tokio::test]
async fn rfc6120_4_9_3_12_stanza_before_auth() {
    let server = TestServer::start().await;
    server.add_user("bob", "passw0rd").await;
    let mut bob = server.client("bob", "passw0rd").await;
    let mut c = server.raw_starttls().await;
    c.send(format!(
        "<message to='{}' type='chat'><body>sneaky</body></message>",
        bob.jid()
    ))
    .await;
    let e = c.expect_stream_error().await;
    e.assert_condition(&["not-authorized"]);
    bob.expect_no_message(SILENCE).await;
}

// RFC 6120 §4.4: the server answers the client's </stream:stream> with its
// own closing tag and closes the TCP connection.
#[tokio::test]
async fn rfc6120_4_4_stream_close_after_auth() {
    let server = TestServer::start().await;
    let mut c = alice(&server).await;
    c.close_stream().await;
    let footer = c.expect_closed().await;
    assert!(
        footer,
        "§4.4: the server must send </stream:stream> before closing"
    );
}

// RFC 6120 §4.4: same before authentication.
#[tokio::test]
async fn rfc6120_4_4_stream_close_pre_auth() {
    let server = TestServer::start().await;
    let mut c = server.raw().await;
    c.open_stream().await;
    c.close_stream().await;
    let footer = c.expect_closed().await;
    assert!(
        footer,
        "§4.4: the server must send </stream:stream> before closing"
    );
}

// RFC 6120 §4.6.1: whitespace between stanzas (keepalives) is allowed.
#[tokio::test]
async fn rfc6120_4_6_1_whitespace_keepalive() {
    let server = TestServer::start().await;
    let mut c = alice(&server).await;
    c.send(" \n \r\n\t ").await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    c.send("\n").await;
    let r = c
        .iq("<iq type='get' id='ka1' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>")
        .await;
    assert_eq!(r.attr("type"), Some("result"), "{}", xml::to_string(&r));
}

// RFC 6120 §4.9.1: stream errors are per stream: clients sending malformed
// data get disconnected without affecting other sessions.
#[tokio::test]
async fn rfc6120_4_9_1_malformed_client_does_not_affect_others() {
    let server = TestServer::start().await;
    server.add_user("alice", "passw0rd").await;
    server.add_user("bob", "passw0rd").await;
    server.add_user("mallory", "passw0rd").await;
    let mut alice = server.client("alice", "passw0rd").await;
    let mut bob = server.client("bob", "passw0rd").await;

    let garbage: Vec<&[u8]> = vec![
        b"<message><body>unclosed</message>",
        b"<?pi?>",
        &[0xc0, 0x80, 0xff],
        b"<!DOCTYPE x [<!ENTITY a 'b'>]>",
        b"<iq type='get' id='1'><query xmlns='jabber:iq:roster'></iq>",
    ];
    for g in garbage {
        eprintln!("mallory sends {:?}", String::from_utf8_lossy(g));
        let mut m = server.raw_login("mallory", "passw0rd", None).await;
        let _ = m.try_send(g).await;
        m.expect_stream_error().await;
    }
    // Pre-auth garbage too.
    let mut m = server.raw().await;
    m.send("\u{0}\u{1}<<<>>>").await;
    m.expect_stream_error().await;

    let bob_jid = bob.jid().to_string();
    alice.send_message(&bob_jid, "still here?").await;
    let msg = bob.expect_message().await;
    assert_eq!(
        msg.get_child("body", ns::CLIENT).map(|b| b.text()).as_deref(),
        Some("still here?")
    );
    let alice_jid = alice.jid().to_string();
    bob.send_message(&alice_jid, "yes").await;
    let msg = alice.expect_message().await;
    assert_eq!(
        msg.get_child("body", ns::CLIENT).map(|b| b.text()).as_deref(),
        Some("yes")
    );
}
