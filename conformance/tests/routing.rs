//! RFC 6120 §8 (stanzas), §10 (server rules for processing XML stanzas) and
//! RFC 6121 §8 (delivery rules).

use std::time::Duration;

use conformance::{Incoming, SILENCE, TestServer, XmppClient, ns, xml};

async fn two_users() -> (TestServer, XmppClient, XmppClient) {
    let server = TestServer::start().await;
    server.add_user("alice", "passw0rd").await;
    server.add_user("bob", "passw0rd").await;
    let alice = server.client("alice", "passw0rd").await;
    let bob = server.client("bob", "passw0rd").await;
    (server, alice, bob)
}

fn body(e: &conformance::Element) -> Option<String> {
    e.get_child("body", ns::CLIENT).map(|b| b.text())
}

// RFC 6120 §8.1.2.1: a message to a full JID is delivered with 'from' stamped
// by the server with the sender's full JID.
#[tokio::test]
async fn rfc6120_8_1_2_1_message_to_full_jid_stamped_from() {
    let (_server, mut alice, mut bob) = two_users().await;
    let to = bob.jid().to_string();
    alice.send_message(&to, "hello bob").await;
    let m = bob.expect_message().await;
    assert_eq!(body(&m).as_deref(), Some("hello bob"));
    assert_eq!(
        m.attr("from"),
        Some(alice.jid().to_string().as_str()),
        "{}",
        xml::to_string(&m)
    );
    assert_eq!(m.attr("to"), Some(to.as_str()));
    // And back.
    let to = alice.jid().to_string();
    bob.send_message(&to, "hi alice").await;
    let m = alice.expect_message().await;
    assert_eq!(body(&m).as_deref(), Some("hi alice"));
    assert_eq!(m.attr("from"), Some(bob.jid().to_string().as_str()));
}

// RFC 6121 §8.5.2.1.1: a message to the bare JID reaches an available resource.
#[tokio::test]
async fn rfc6121_8_5_2_1_1_message_to_bare_jid() {
    let (_server, mut alice, mut bob) = two_users().await;
    bob.send_presence(0).await;
    bob.ping_server().await;
    alice.send_message("bob@localhost", "to your bare jid").await;
    let m = bob.expect_message().await;
    assert_eq!(body(&m).as_deref(), Some("to your bare jid"));
    assert_eq!(m.attr("from"), Some(alice.jid().to_string().as_str()));
}

// RFC 6120 §8.1.2.1 rule 1: the server adds or overrides 'from' with the full
// JID of the sending resource. A forged 'from' must never reach the recipient;
// closing the stream with <invalid-from/> (§4.9.3.9) is accepted too.
#[tokio::test]
async fn rfc6120_8_1_2_1_forged_from_overridden_or_rejected() {
    let server = TestServer::start().await;
    server.add_user("alice", "passw0rd").await;
    server.add_user("bob", "passw0rd").await;
    server.add_user("carol", "passw0rd").await;
    let mut bob = server.client("bob", "passw0rd").await;
    let mut alice = server.raw_login("alice", "passw0rd", Some("desk")).await;
    let to = bob.jid().to_string();
    alice
        .send(format!(
            "<message from='carol@localhost/phone' to='{to}' type='chat' id='forged'><body>trust me</body></message>"
        ))
        .await;
    match alice.next_within(Duration::from_secs(2)).await {
        Some(Incoming::Element(e)) if e.is("error", ns::STREAM) => {
            assert_eq!(
                xml::stream_error_condition(&e).as_deref(),
                Some("invalid-from"),
                "{}",
                xml::to_string(&e)
            );
            bob.expect_no_message(SILENCE).await;
        }
        None => {
            let m = bob.expect_message().await;
            assert_eq!(
                m.attr("from"),
                Some("alice@localhost/desk"),
                "forged from not overridden: {}",
                xml::to_string(&m)
            );
        }
        Some(other) => panic!("unexpected: {other:?}"),
    }
}

// RFC 6120 §8.1.2.1: a 'from' equal to the sender's own bare JID is fine and
// is stamped with the full JID.
#[tokio::test]
async fn rfc6120_8_1_2_1_own_bare_from_stamped_full() {
    let server = TestServer::start().await;
    server.add_user("alice", "passw0rd").await;
    server.add_user("bob", "passw0rd").await;
    let mut bob = server.client("bob", "passw0rd").await;
    let mut alice = server.raw_login("alice", "passw0rd", Some("desk")).await;
    let to = bob.jid().to_string();
    alice
        .send(format!(
            "<message from='alice@localhost' to='{to}' type='chat' id='own'><body>me</body></message>"
        ))
        .await;
    let m = bob.expect_message().await;
    assert_eq!(
        m.attr("from"),
        Some("alice@localhost/desk"),
        "{}",
        xml::to_string(&m)
    );
}

// RFC 6121 §8.5.1 (no such user): a message may be silently dropped or
// bounced with <service-unavailable/>; nothing else is acceptable.
#[tokio::test]
async fn rfc6121_8_5_1_message_to_unknown_user() {
    let (_server, mut alice, _bob) = two_users().await;
    alice
        .send_xml("<message type='chat' to='nobody@localhost' id='nu1'><body>anyone?</body></message>")
        .await;
    alice.ping_server().await;
    // At most one bounce, from the addressee, with service-unavailable; nothing else.
    let mut bounces = 0;
    alice
        .expect_none(
            SILENCE,
            "stanza other than one service-unavailable bounce from the addressee",
            |e| {
                let bounce = e.name() == "message"
                    && e.attr("id") == Some("nu1")
                    && e.attr("from") == Some("nobody@localhost")
                    && xml::stanza_error(e).is_some_and(|(_, c)| c == "service-unavailable");
                bounces += usize::from(bounce);
                !bounce || bounces > 1
            },
        )
        .await;
}

// RFC 6121 §8.5.1: an IQ to a nonexistent user -> <service-unavailable/>.
#[tokio::test]
async fn rfc6121_8_5_1_iq_to_unknown_user() {
    let (_server, mut alice, _bob) = two_users().await;
    let r = alice
        .iq(
            "get",
            Some("nobody@localhost"),
            "<query xmlns='jabber:iq:version'/>",
        )
        .await;
    xml::assert_stanza_error(&r, &["service-unavailable"]);
    let r = alice
        .iq(
            "get",
            Some("nobody@localhost/res"),
            "<query xmlns='jabber:iq:version'/>",
        )
        .await;
    xml::assert_stanza_error(&r, &["service-unavailable"]);
}

// RFC 6120 §10.4 / §8.3.3.16: a stanza to a domain this server cannot reach
// -> <remote-server-not-found/> (or <remote-server-timeout/>).
#[tokio::test]
async fn rfc6120_10_4_remote_server_not_found() {
    let (_server, mut alice, _bob) = two_users().await;
    alice
        .send_xml("<message type='chat' to='someone@unreachable.invalid' id='rs1'><body>hi</body></message>")
        .await;
    let e = alice
        .wait_for(|e| e.name() == "message" && e.attr("id") == Some("rs1"))
        .await;
    xml::assert_stanza_error(&e, &["remote-server-not-found", "remote-server-timeout"]);
    let r = alice
        .iq(
            "get",
            Some("unreachable.invalid"),
            "<ping xmlns='urn:xmpp:ping'/>",
        )
        .await;
    xml::assert_stanza_error(&r, &["remote-server-not-found", "remote-server-timeout"]);
}

// RFC 6121 §8.5.3.2.3 (via RFC 6120 §10.5.3.2): an IQ to a full JID with no
// such connected resource -> <service-unavailable/>, whether or not the user
// has other resources online.
#[tokio::test]
async fn rfc6121_8_5_3_2_3_iq_to_offline_full_jid() {
    let server = TestServer::start().await;
    server.add_user("alice", "passw0rd").await;
    server.add_user("bob", "passw0rd").await;
    let mut alice = server.client("alice", "passw0rd").await;
    let r = alice
        .iq("get", Some("bob@localhost/gone"), "<ping xmlns='urn:xmpp:ping'/>")
        .await;
    xml::assert_stanza_error(&r, &["service-unavailable"]);
    let mut bob = server.client_jid("bob@localhost/here", "passw0rd").await;
    let r = alice
        .iq("get", Some("bob@localhost/gone"), "<ping xmlns='urn:xmpp:ping'/>")
        .await;
    xml::assert_stanza_error(&r, &["service-unavailable"]);
    // Not delivered to the other resource either.
    bob.expect_none(SILENCE, "iq", |e| e.name() == "iq").await;
}

// RFC 6120 §8.2.3: an IQ get/set must contain exactly one child; two (or zero)
// children -> <bad-request/>.
#[tokio::test]
async fn rfc6120_8_2_3_iq_child_count_bad_request() {
    let server = TestServer::start().await;
    server.add_user("alice", "passw0rd").await;
    let mut c = server.raw_login("alice", "passw0rd", None).await;
    let r = c
        .iq("<iq type='get' id='two' to='localhost'><ping xmlns='urn:xmpp:ping'/><query xmlns='jabber:iq:version'/></iq>")
        .await;
    xml::assert_stanza_error(&r, &["bad-request"]);
    let r = c.iq("<iq type='get' id='zero' to='localhost'/>").await;
    xml::assert_stanza_error(&r, &["bad-request"]);
}

// RFC 6120 §8.2.3: an IQ without an id, or with an unknown type, is an error.
#[tokio::test]
async fn rfc6120_8_2_3_iq_bad_type() {
    let server = TestServer::start().await;
    server.add_user("alice", "passw0rd").await;
    let mut c = server.raw_login("alice", "passw0rd", None).await;
    c.send("<iq type='fetch' id='bt1' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>")
        .await;
    match c.next().await {
        Incoming::Element(e) if e.name() == "iq" => {
            assert_eq!(e.attr("id"), Some("bt1"));
            xml::assert_stanza_error(&e, &["bad-request"]);
        }
        Incoming::Element(e) if e.is("error", ns::STREAM) => {
            let cond = xml::stream_error_condition(&e).unwrap_or_default();
            assert!(
                ["invalid-xml", "bad-format", "unsupported-stanza-type"].contains(&cond.as_str()),
                "{}",
                xml::to_string(&e)
            );
        }
        other => panic!("unexpected {other:?}"),
    }
}

// RFC 6120 §8.4: an IQ with a payload namespace the server does not
// understand -> <service-unavailable/>, echoing the id, from the server.
#[tokio::test]
async fn rfc6120_8_4_unknown_namespace_service_unavailable() {
    let (_server, mut alice, _bob) = two_users().await;
    let r = alice
        .iq(
            "get",
            Some("localhost"),
            "<query xmlns='urn:example:not-implemented'/>",
        )
        .await;
    xml::assert_stanza_error(&r, &["service-unavailable"]);
    assert_eq!(r.attr("from"), Some("localhost"));
    let r = alice
        .iq(
            "set",
            Some("localhost"),
            "<thing xmlns='urn:example:not-implemented'/>",
        )
        .await;
    xml::assert_stanza_error(&r, &["service-unavailable"]);
}

// RFC 6120 §8.2.3: IQ stanzas of type result or error are never answered.
#[tokio::test]
async fn rfc6120_8_2_3_result_and_error_not_answered() {
    let server = TestServer::start().await;
    server.add_user("alice", "passw0rd").await;
    let mut c = server.raw_login("alice", "passw0rd", None).await;
    c.send("<iq type='result' id='r1' to='localhost'/>").await;
    c.send("<iq type='error' id='e1' to='localhost'><error type='cancel'><service-unavailable xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></iq>").await;
    c.send("<iq type='result' id='r2' to='alice@localhost'/>").await;
    c.send("<iq type='get' id='after' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>")
        .await;
    let e = c.expect_element().await;
    assert_eq!(
        e.attr("id"),
        Some("after"),
        "something answered a result/error IQ: {}",
        xml::to_string(&e)
    );
    c.expect_silence(SILENCE).await;
}

// RFC 6121 §8.5.2.1.1: a message to the bare JID goes to the highest-priority
// available resource(s) (or to all non-negative ones), never to a resource
// with negative priority. The highest-priority resource is also the most
// recently available one here, so every permitted policy delivers to it.
#[tokio::test]
async fn rfc6121_8_5_2_1_1_bare_jid_priority() {
    let server = TestServer::start().await;
    server.add_user("alice", "passw0rd").await;
    server.add_user("bob", "passw0rd").await;
    let mut alice = server.client("alice", "passw0rd").await;
    let mut low = server.client_jid("bob@localhost/low", "passw0rd").await;
    let mut negative = server.client_jid("bob@localhost/negative", "passw0rd").await;
    let mut high = server.client_jid("bob@localhost/high", "passw0rd").await;
    low.send_presence(1).await;
    low.ping_server().await;
    negative.send_presence(-1).await;
    negative.ping_server().await;
    high.send_presence(5).await;
    high.ping_server().await;
    alice.send_message("bob@localhost", "prioritised").await;
    let m = high.expect_message().await;
    assert_eq!(body(&m).as_deref(), Some("prioritised"));
    negative.expect_no_message(SILENCE).await;
    // `low` may or may not get a copy (policy (b) of §8.5.2.1.1).
    let _ = low.recv_within(Duration::from_millis(100)).await;
}

// RFC 6121 §8.5.3.1: a message to a full JID goes to that resource only.
#[tokio::test]
async fn rfc6121_8_5_3_1_message_to_full_jid_only_that_resource() {
    let server = TestServer::start().await;
    server.add_user("alice", "passw0rd").await;
    server.add_user("bob", "passw0rd").await;
    let mut alice = server.client("alice", "passw0rd").await;
    let mut b1 = server.client_jid("bob@localhost/one", "passw0rd").await;
    let mut b2 = server.client_jid("bob@localhost/two", "passw0rd").await;
    b1.send_presence(0).await;
    b2.send_presence(0).await;
    b1.ping_server().await;
    b2.ping_server().await;
    alice.send_message("bob@localhost/two", "just two").await;
    let m = b2.expect_message().await;
    assert_eq!(body(&m).as_deref(), Some("just two"));
    b1.expect_no_message(SILENCE).await;
}

// RFC 6120 §8.3.3.8: a syntactically invalid 'to' -> <jid-malformed/>.
#[tokio::test]
async fn rfc6120_8_3_3_8_jid_malformed() {
    let server = TestServer::start().await;
    server.add_user("alice", "passw0rd").await;
    let mut c = server.raw_login("alice", "passw0rd", None).await;
    let r = c
        .iq("<iq type='get' id='jm1' to='bad@@localhost'><ping xmlns='urn:xmpp:ping'/></iq>")
        .await;
    xml::assert_stanza_error(&r, &["jid-malformed"]);
    c.send("<message type='chat' id='jm2' to='a@b@c'><body>x</body></message>")
        .await;
    let e = c.read_until(|e| e.attr("id") == Some("jm2")).await;
    xml::assert_stanza_error(&e, &["jid-malformed"]);
}

// RFC 6120 §10.3 / RFC 6121 §8.5.2.1: a message without 'to' is handled as if
// addressed to the sender's bare JID; it must not bounce as undeliverable to
// some other entity. An IQ without 'to' is answered by the server on behalf
// of the account.
#[tokio::test]
async fn rfc6120_10_3_no_to_handled_for_account() {
    let server = TestServer::start().await;
    server.add_user("alice", "passw0rd").await;
    let mut c = server.raw_login("alice", "passw0rd", None).await;
    let r = c
        .iq("<iq type='get' id='nt1'><ping xmlns='urn:xmpp:ping'/></iq>")
        .await;
    match r.attr("type") {
        Some("result") => {}
        _ => xml::assert_stanza_error(&r, &["service-unavailable", "feature-not-implemented"]),
    }
    if let Some(from) = r.attr("from") {
        assert!(
            from == "alice@localhost" || from == c.jid.as_deref().unwrap_or(""),
            "reply to an IQ without 'to' comes from {from}"
        );
    }
}

// RFC 6120 §8.3.1: an error stanza is never answered with another error
// (no bounce loops), whatever its destination.
#[tokio::test]
async fn rfc6120_8_3_1_error_stanzas_not_bounced() {
    let server = TestServer::start().await;
    server.add_user("alice", "passw0rd").await;
    let mut c = server.raw_login("alice", "passw0rd", None).await;
    let err = "<error type='cancel'><item-not-found xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error>";
    for to in [
        "nobody@localhost",
        "someone@unreachable.invalid",
        "alice@localhost/nope",
        "localhost",
    ] {
        c.send(format!("<message type='error' to='{to}' id='eb'>{err}</message>"))
            .await;
        c.send(format!("<iq type='error' to='{to}' id='eb-iq'>{err}</iq>"))
            .await;
    }
    c.send("<iq type='get' id='barrier' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>")
        .await;
    let e = c.expect_element().await;
    assert_eq!(
        e.attr("id"),
        Some("barrier"),
        "error stanza answered: {}",
        xml::to_string(&e)
    );
    c.expect_silence(SILENCE).await;
}

// RFC 6120 §10.5.3 / §8.2: an IQ between two clients is routed to the full
// JID and the response is routed back, both with stamped 'from'.
#[tokio::test]
async fn rfc6120_8_2_iq_round_trip_between_clients() {
    let (_server, mut alice, mut bob) = two_users().await;
    let bob_jid = bob.jid().to_string();
    let alice_jid = alice.jid().to_string();
    alice
        .send_xml(&format!(
            "<iq type='get' id='v1' to='{bob_jid}'><query xmlns='jabber:iq:version'/></iq>"
        ))
        .await;
    let req = bob.wait_for(|e| e.name() == "iq").await;
    assert_eq!(req.attr("from"), Some(alice_jid.as_str()));
    assert_eq!(req.attr("type"), Some("get"));
    assert_eq!(req.attr("id"), Some("v1"));
    bob.send_xml(&format!(
        "<iq type='result' id='v1' to='{alice_jid}'><query xmlns='jabber:iq:version'><name>bob</name><version>1</version></query></iq>"
    ))
    .await;
    let resp = alice
        .wait_for(|e| e.name() == "iq" && e.attr("id") == Some("v1"))
        .await;
    assert_eq!(resp.attr("type"), Some("result"), "{}", xml::to_string(&resp));
    assert_eq!(resp.attr("from"), Some(bob_jid.as_str()));
    let name = resp
        .get_child("query", "jabber:iq:version")
        .and_then(|q| q.get_child("name", "jabber:iq:version"))
        .map(|n| n.text());
    assert_eq!(name.as_deref(), Some("bob"));
}

// RFC 6120 §10.5: stanzas between two domains served by the same server are
// delivered locally; a client of the second domain connects with to='example.net'
// (the certificate covers it too).
#[tokio::test]
async fn rfc6120_10_5_local_delivery_across_hosted_domains() {
    let server = TestServer::start_with(|c| {
        c.domains = vec!["localhost".into(), "example.net".into()];
    })
    .await;
    server.add_user("alice", "passw0rd").await;
    let out = server
        .cli(&["user", "add", "carol@example.net", "--password", "passw0rd"])
        .await;
    assert!(out.success(), "{out:?}");
    let mut alice = server.client("alice", "passw0rd").await;
    let connector =
        conformance::tls::StartTlsConnector::new(server.c2s_addr(), server.tls_config(), "example.net");
    let mut carol = XmppClient::connect(connector, "carol@example.net".parse().unwrap(), "passw0rd")
        .await
        .unwrap_or_else(|e| panic!("carol@example.net login: {e}"));
    assert_eq!(carol.jid().to_bare().to_string(), "carol@example.net");
    let to = carol.jid().to_string();
    alice.send_message(&to, "cross-domain").await;
    let m = carol.expect_message().await;
    assert_eq!(body(&m).as_deref(), Some("cross-domain"));
    assert_eq!(m.attr("from"), Some(alice.jid().to_string().as_str()));
    let to = alice.jid().to_string();
    carol.send_message(&to, "back").await;
    let m = alice.expect_message().await;
    assert_eq!(body(&m).as_deref(), Some("back"));
    // Server-generated replies for example.net come from example.net.
    let r = carol
        .iq("get", Some("example.net"), "<ping xmlns='urn:xmpp:ping'/>")
        .await;
    assert_eq!(r.attr("type"), Some("result"));
    assert_eq!(r.attr("from"), Some("example.net"));
}
