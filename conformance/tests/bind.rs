//! RFC 6120 §7 (resource binding) and the legacy session establishment.

use conformance::{ChannelBindingMode, Incoming, RawClient, SILENCE, ScramHash, TestServer, ns, xml};

/// Logged in (SASL done, stream restarted) but not bound.
async fn authenticated(server: &TestServer, user: &str, pw: &str) -> RawClient {
    let mut c = server.raw_starttls().await;
    c.sasl_scram(user, pw, ScramHash::Sha1, ChannelBindingMode::None)
        .await
        .unwrap_or_else(|f| panic!("login {user}: {f:?}"));
    c.restart_stream().await;
    c
}

// RFC 6120 §7.6.1: the bind feature is offered after SASL.
#[tokio::test]
async fn rfc6120_7_4_bind_feature_offered() {
    let server = TestServer::start().await;
    server.add_user("alice", "passw0rd").await;
    let c = authenticated(&server, "alice", "passw0rd").await;
    let f = c.features.clone().unwrap();
    assert!(f.get_child("bind", ns::BIND).is_some(), "{}", xml::to_string(&f));
}

// RFC 6120 §7.6: server-generated resource, unique per session.
#[tokio::test]
async fn rfc6120_7_6_server_generated_resource() {
    let server = TestServer::start().await;
    server.add_user("alice", "passw0rd").await;
    let mut jids = Vec::new();
    for _ in 0..2 {
        let mut c = authenticated(&server, "alice", "passw0rd").await;
        let jid = c.bind(None).await.expect("bind");
        let (bare, res) = jid
            .split_once('/')
            .unwrap_or_else(|| panic!("not a full JID: {jid}"));
        assert_eq!(bare, "alice@localhost");
        assert!(!res.is_empty());
        jids.push((jid, c));
    }
    assert_ne!(
        jids[0].0, jids[1].0,
        "two sessions got the same generated resource"
    );
}

// RFC 6120 §7.7: a client-submitted resource is used.
#[tokio::test]
async fn rfc6120_7_7_client_submitted_resource() {
    let server = TestServer::start().await;
    server.add_user("alice", "passw0rd").await;
    let mut c = authenticated(&server, "alice", "passw0rd").await;
    let jid = c.bind(Some("balcony")).await.expect("bind");
    assert_eq!(jid, "alice@localhost/balcony");
    // The bound JID is used for routing: message to self arrives with it.
    c.send("<message to='alice@localhost/balcony' id='m1'><body>echo</body></message>")
        .await;
    let m = c.read_until(|e| e.name() == "message").await;
    assert_eq!(m.attr("from"), Some("alice@localhost/balcony"));
    assert_eq!(m.attr("to"), Some("alice@localhost/balcony"));
}

// RFC 6120 §7.7.2.2: binding a resource that is in use. The server may
// (1) override it with a generated one, (2) refuse with <conflict/>, or
// (3) terminate the old session (with a <conflict/> stream error) and give
// the resource to the new one. Whatever it does must be coherent.
#[tokio::test]
async fn rfc6120_7_7_2_2_resource_conflict() {
    let server = TestServer::start().await;
    server.add_user("alice", "passw0rd").await;
    let mut old = authenticated(&server, "alice", "passw0rd").await;
    assert_eq!(
        old.bind(Some("phone")).await.expect("bind"),
        "alice@localhost/phone"
    );
    let mut new = authenticated(&server, "alice", "passw0rd").await;
    match new.bind(Some("phone")).await {
        Ok(jid) if jid == "alice@localhost/phone" => {
            // (3) Takeover: the old stream must be closed with <conflict/>.
            let e = old.expect_stream_error().await;
            e.assert_condition(&["conflict"]);
        }
        Ok(jid) => {
            // (1) Override: both sessions live.
            assert!(jid.starts_with("alice@localhost/"), "{jid}");
            let r = old
                .iq("<iq type='get' id='p1' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>")
                .await;
            assert_eq!(r.attr("type"), Some("result"));
        }
        Err(iq) => {
            // (2) Refusal with <conflict/>; the old session is untouched.
            assert!(iq.contains("conflict"), "bind refused without <conflict/>: {iq}");
            let r = old
                .iq("<iq type='get' id='p1' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>")
                .await;
            assert_eq!(r.attr("type"), Some("result"));
        }
    }
    // The resource is routable to exactly one session: a message to it is
    // received once overall.
    let mut probe = server.raw_login("alice", "passw0rd", Some("probe")).await;
    probe
        .send("<message to='alice@localhost/phone' type='chat' id='c1'><body>who</body></message>")
        .await;
    let mut got = 0;
    for c in [&mut old, &mut new] {
        while let Some(Incoming::Element(e)) = c.next_within(SILENCE).await {
            if e.name() == "message" && e.attr("id") == Some("c1") {
                got += 1;
            }
        }
    }
    assert_eq!(
        got, 1,
        "the message to alice@localhost/phone was delivered {got} times"
    );
}

// RFC 6120 §7.7.2.1 / RFC 7622 §3.4: a resourcepart longer than 1023 bytes
// cannot be bound as is: <bad-request/> (or not-acceptable / policy), or the
// server overrides it with a valid one.
#[tokio::test]
async fn rfc6120_7_7_2_1_oversized_resource() {
    let server = TestServer::start().await;
    server.add_user("alice", "passw0rd").await;
    let mut c = authenticated(&server, "alice", "passw0rd").await;
    let long = "r".repeat(2000);
    match c.bind(Some(&long)).await {
        Ok(jid) => {
            let res = jid.split_once('/').map(|x| x.1).unwrap_or("");
            assert!(
                !res.is_empty() && res.len() <= 1023,
                "server bound an invalid resource ({} bytes)",
                res.len()
            );
        }
        Err(iq) => {
            let el = xml::parse_client(&iq);
            xml::assert_stanza_error(
                &el,
                &[
                    "bad-request",
                    "not-acceptable",
                    "policy-violation",
                    "jid-malformed",
                ],
            );
        }
    }
}

// draft-cridland-xmpp-session / RFC 3921 §3: the legacy session feature is
// advertised as <optional/>, and a session request is answered with a result.
#[tokio::test]
async fn rfc3921_3_session_optional() {
    let server = TestServer::start().await;
    server.add_user("alice", "passw0rd").await;
    let mut c = authenticated(&server, "alice", "passw0rd").await;
    let f = c.features.clone().unwrap();
    let session = f
        .get_child("session", ns::SESSION)
        .unwrap_or_else(|| panic!("no session feature: {}", xml::to_string(&f)));
    assert!(
        session.get_child("optional", ns::SESSION).is_some(),
        "session feature must carry <optional/>"
    );
    c.bind(None).await.expect("bind");
    let r = c
        .iq(&format!(
            "<iq type='set' id='sess1'><session xmlns='{}'/></iq>",
            ns::SESSION
        ))
        .await;
    assert_eq!(
        r.attr("type"),
        Some("result"),
        "session without 'to': {}",
        xml::to_string(&r)
    );
    // RFC 3921 §3 example addresses the server domain.
    let r = c
        .iq(&format!(
            "<iq type='set' id='sess2' to='localhost'><session xmlns='{}'/></iq>",
            ns::SESSION
        ))
        .await;
    assert_eq!(
        r.attr("type"),
        Some("result"),
        "session with to='localhost' (RFC 3921 §3 example): {}",
        xml::to_string(&r)
    );
}

// RFC 6120 §7.1: stanzas before resource binding are not processed: a stanza
// sent after SASL but before bind must not be delivered.
#[tokio::test]
async fn rfc6120_7_1_stanza_before_bind_not_routed() {
    let server = TestServer::start().await;
    server.add_user("alice", "passw0rd").await;
    server.add_user("bob", "passw0rd").await;
    let mut bob = server.client("bob", "passw0rd").await;
    let mut c = authenticated(&server, "alice", "passw0rd").await;
    let to = bob.jid().to_string();
    c.send(format!(
        "<message to='{to}' type='chat' id='early'><body>before bind</body></message>"
    ))
    .await;
    // The sender may get nothing, a stanza error or a not-authorized stream error.
    c.expect_none(SILENCE, "answer other than a refusal", |e| {
        let refusal = if e.is("error", ns::STREAM) {
            xml::stream_error_condition(e).as_deref() == Some("not-authorized")
        } else {
            e.name() == "message"
                && xml::stanza_error(e).is_some_and(|(_, c)| {
                    ["not-authorized", "not-allowed", "bad-request"].contains(&c.as_str())
                })
        };
        !refusal
    })
    .await;
    bob.expect_no_message(SILENCE).await;
}
