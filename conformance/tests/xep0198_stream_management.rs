//! XEP-0198 stream management (v1.6) in raw XML: the stream feature, enabling, the `<r/>`/`<a/>`
//! counters (modulo 2^32), acknowledgements the server asks for, the errors, and resumption
//! (replay of what was never acknowledged, failures, the timeout to offline storage).

use std::time::Duration;

use conformance::{ChannelBindingMode, Element, RawClient, ScramHash, TestServer, XmppClient, ns, xml};

const SM: &str = "urn:xmpp:sm:3";
const DELAY: &str = "urn:xmpp:delay";
const PW: &str = "passw0rd";

fn is_sm(e: &Element, name: &str) -> bool {
    e.is(name, SM)
}

fn body(e: &Element) -> Option<String> {
    e.get_child("body", ns::CLIENT).map(|b| b.text())
}

fn h_of(e: &Element) -> u32 {
    e.attr("h")
        .and_then(|h| h.parse().ok())
        .unwrap_or_else(|| panic!("no h: {}", xml::to_string(e)))
}

/// A server with alice and bob, `toml` appended to its configuration.
async fn server_with(toml: &str) -> TestServer {
    // Off by default: on unless the test's own section says otherwise.
    let toml = if toml.contains("[stream_management]") {
        toml.replace("[stream_management]\n", "[stream_management]\nenabled = true\n")
    } else {
        format!("[stream_management]\nenabled = true\n{toml}")
    };
    let server = TestServer::start_with(move |cfg| cfg.extra_toml = toml).await;
    server.add_user("alice", PW).await;
    server.add_user("bob", PW).await;
    server
}

/// STARTTLS and SCRAM as `user`: the features of the authenticated stream (no bind yet).
async fn authenticated(server: &TestServer, user: &str) -> (RawClient, Element) {
    let mut c = server.raw().await;
    c.open_stream().await;
    c.starttls().await;
    c.sasl_scram(user, PW, ScramHash::Sha1, ChannelBindingMode::None)
        .await
        .unwrap_or_else(|f| panic!("login as {user} failed: {f:?}"));
    let features = c.restart_stream().await;
    (c, features)
}

/// Bound as `user/res`, stream management enabled (with `enable` as the request): the
/// `<enabled/>`.
async fn enabled(server: &TestServer, user: &str, res: &str, enable: &str) -> (RawClient, Element) {
    let mut c = server.raw_login(user, PW, Some(res)).await;
    c.send(enable).await;
    let answer = c.read_until(|e| e.ns() == SM).await;
    assert!(is_sm(&answer, "enabled"), "{}", xml::to_string(&answer));
    (c, answer)
}

/// Available presence, and the self-presence it echoes (so messages to the resource flow).
async fn available(c: &mut RawClient) {
    c.send("<presence/>").await;
    c.read_until(|e| e.name() == "presence").await;
}

/// Reads until the chat message with `text`; returns how many stanzas came up to it.
async fn read_message(c: &mut RawClient, text: &str) -> u32 {
    let mut stanzas = 0;
    loop {
        let e = c.expect_element().await;
        if matches!(e.name(), "message" | "presence" | "iq") && e.ns() == ns::CLIENT {
            stanzas += 1;
        }
        if body(&e).as_deref() == Some(text) {
            return stanzas;
        }
    }
}

/// Counts what the server sent (stanzas) until `<r/>`, answering nothing.
async fn stanzas_until_request(c: &mut RawClient) -> u32 {
    let mut stanzas = 0;
    loop {
        let e = c.expect_element().await;
        if is_sm(&e, "r") {
            return stanzas;
        }
        if e.ns() == ns::CLIENT {
            stanzas += 1;
        }
    }
}

async fn bob(server: &TestServer) -> XmppClient {
    server.client("bob", PW).await
}

/// Bob sends `text` to `to` and makes sure the server routed it.
async fn bob_sends(bob: &mut XmppClient, to: &str, text: &str) {
    bob.send_message(to, text).await;
    bob.ping_server().await;
}

#[tokio::test]
async fn xep0198_3_stream_feature_offered_after_authentication_only() {
    let server = server_with("").await;
    let mut c = server.raw().await;
    let before = c.open_stream().await;
    assert!(
        before.get_child("sm", SM).is_none(),
        "{}",
        xml::to_string(&before)
    );
    drop(c);
    let (_c, after) = authenticated(&server, "alice").await;
    assert!(after.get_child("sm", SM).is_some(), "{}", xml::to_string(&after));
}

#[tokio::test]
async fn xep0198_3_not_offered_unless_switched_on() {
    let server = TestServer::start().await;
    server.add_user("alice", PW).await;
    let (_c, features) = authenticated(&server, "alice").await;
    assert!(
        features.get_child("sm", SM).is_none(),
        "{}",
        xml::to_string(&features)
    );
    let mut c = server.raw_login("alice", PW, Some("r")).await;
    c.send(format!("<enable xmlns='{SM}'/>")).await;
    let answer = c.read_until(|e| e.ns() == SM).await;
    assert!(is_sm(&answer, "failed"), "{}", xml::to_string(&answer));
}

#[tokio::test]
async fn xep0198_3_enable_before_bind_fails_with_unexpected_request() {
    let server = server_with("").await;
    let (mut c, _) = authenticated(&server, "alice").await;
    c.send(format!("<enable xmlns='{SM}'/>")).await;
    let answer = c.expect_element().await;
    assert!(is_sm(&answer, "failed"), "{}", xml::to_string(&answer));
    assert!(
        answer.get_child("unexpected-request", ns::STANZAS).is_some(),
        "{}",
        xml::to_string(&answer)
    );
    // The stream goes on: binding still works.
    c.bind(Some("r")).await.unwrap();
}

#[tokio::test]
async fn xep0198_3_enable_without_resume_and_twice() {
    let server = server_with("").await;
    let (mut c, enabled) = enabled(&server, "alice", "r", &format!("<enable xmlns='{SM}'/>")).await;
    assert!(
        enabled.attr("id").is_none(),
        "no resumption asked: {}",
        xml::to_string(&enabled)
    );
    assert!(!matches!(enabled.attr("resume"), Some("true") | Some("1")));
    c.send(format!("<enable xmlns='{SM}' resume='true'/>")).await;
    let again = c.read_until(|e| e.ns() == SM).await;
    assert!(is_sm(&again, "failed"), "{}", xml::to_string(&again));
    assert!(again.get_child("unexpected-request", ns::STANZAS).is_some());
}

#[tokio::test]
async fn xep0198_3_enable_with_resume_gives_id_and_max() {
    let server = server_with("[stream_management]\nresume_timeout_secs = 120\n").await;
    let (_c, enabled) = enabled(
        &server,
        "alice",
        "r",
        &format!("<enable xmlns='{SM}' resume='true'/>"),
    )
    .await;
    assert!(
        matches!(enabled.attr("resume"), Some("true") | Some("1")),
        "{}",
        xml::to_string(&enabled)
    );
    assert!(enabled.attr("id").is_some_and(|id| !id.is_empty()));
    assert_eq!(enabled.attr("max"), Some("120"), "the configured maximum");
    // The client may ask for less, never more.
    let (_c, less) = enabled_as(
        &server,
        "r2",
        "<enable xmlns='urn:xmpp:sm:3' resume='true' max='30'/>",
    )
    .await;
    assert_eq!(less.attr("max"), Some("30"));
    let (_c, more) = enabled_as(
        &server,
        "r3",
        "<enable xmlns='urn:xmpp:sm:3' resume='true' max='9999'/>",
    )
    .await;
    assert_eq!(more.attr("max"), Some("120"));
}

async fn enabled_as(server: &TestServer, res: &str, enable: &str) -> (RawClient, Element) {
    enabled(server, "alice", res, enable).await
}

#[tokio::test]
async fn xep0198_4_r_is_answered_with_the_stanzas_handled() {
    let server = server_with("").await;
    let (mut c, _) = enabled(&server, "alice", "r", &format!("<enable xmlns='{SM}'/>")).await;
    c.send(format!("<r xmlns='{SM}'/>")).await;
    let a = c.read_until(|e| e.ns() == SM).await;
    assert!(is_sm(&a, "a"), "{}", xml::to_string(&a));
    assert_eq!(h_of(&a), 0, "nothing sent since enable");
    // Three stanzas of each kind; nonzas do not count.
    c.send("<presence/>").await;
    c.send("<iq type='get' id='p1'><ping xmlns='urn:xmpp:ping'/></iq>")
        .await;
    c.send("<message to='nobody@localhost' type='chat' id='m1'><body>x</body></message>")
        .await;
    c.send(format!("<r xmlns='{SM}'/>")).await;
    let a = c.read_until(|e| is_sm(e, "a")).await;
    assert_eq!(h_of(&a), 3);
}

#[tokio::test]
async fn xep0198_4_server_requests_an_ack_after_n_stanzas() {
    let server =
        server_with("[stream_management]\nrequest_ack_every = 3\nrequest_ack_after_secs = 0\n").await;
    let (mut c, _) = enabled(&server, "alice", "r", &format!("<enable xmlns='{SM}'/>")).await;
    let mut bob = bob(&server).await;
    for i in 0..3 {
        bob_sends(&mut bob, "alice@localhost/r", &format!("m{i}")).await;
    }
    assert_eq!(
        stanzas_until_request(&mut c).await,
        3,
        "<r/> after the third stanza"
    );
    c.send(format!("<a xmlns='{SM}' h='3'/>")).await;
    // Acknowledged: no request until three more.
    bob_sends(&mut bob, "alice@localhost/r", "m3").await;
    c.expect_none(Duration::from_millis(500), "an <r/> before three stanzas", |e| {
        is_sm(e, "r")
    })
    .await;
}

#[tokio::test]
async fn xep0198_4_server_requests_an_ack_after_t_seconds() {
    let server =
        server_with("[stream_management]\nrequest_ack_every = 0\nrequest_ack_after_secs = 1\n").await;
    let (mut c, _) = enabled(&server, "alice", "r", &format!("<enable xmlns='{SM}'/>")).await;
    let mut bob = bob(&server).await;
    bob_sends(&mut bob, "alice@localhost/r", "one").await;
    let started = std::time::Instant::now();
    read_message(&mut c, "one").await;
    c.read_until(|e| is_sm(e, "r")).await;
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(700),
        "asked too early: {waited:?}"
    );
    assert!(waited < Duration::from_secs(4), "asked too late: {waited:?}");
}

#[tokio::test]
async fn xep0198_5_ack_of_more_than_sent_is_a_stream_error() {
    let server = server_with("").await;
    let (mut c, _) = enabled(&server, "alice", "r", &format!("<enable xmlns='{SM}'/>")).await;
    let mut bob = bob(&server).await;
    bob_sends(&mut bob, "alice@localhost/r", "only").await;
    let sent = read_message(&mut c, "only").await;
    c.send(format!("<a xmlns='{SM}' h='{}'/>", sent + 1)).await;
    let error = c.expect_stream_error().await;
    error.assert_condition(&["undefined-condition"]);
    let detail = error
        .element
        .get_child("handled-count-too-high", SM)
        .unwrap_or_else(|| panic!("no <handled-count-too-high/>: {}", xml::to_string(&error.element)));
    assert_eq!(detail.attr("h"), Some((sent + 1).to_string().as_str()));
    assert_eq!(detail.attr("send-count"), Some(sent.to_string().as_str()));
}

#[tokio::test]
async fn xep0198_4_h_is_compared_modulo_2_32() {
    let server = server_with("").await;
    let (mut c, _) = enabled(&server, "alice", "r", &format!("<enable xmlns='{SM}'/>")).await;
    // 2^32 - 1 is one before 0 modulo 2^32: an old count, not one beyond what was sent.
    c.send(format!("<a xmlns='{SM}' h='4294967295'/>")).await;
    // Beyond the 32 bits of the counter it is malformed.
    c.send(format!("<r xmlns='{SM}'/>")).await;
    let a = c.read_until(|e| is_sm(e, "a")).await;
    assert_eq!(h_of(&a), 0);
    c.send(format!("<a xmlns='{SM}' h='4294967296'/>")).await;
    c.expect_stream_error().await.assert_condition(&["bad-format"]);
}

/// Alice's resumable session with `unacked` messages from bob received and not acknowledged,
/// then the connection cut: the resumption id.
async fn cut_with_unacked(server: &TestServer, bob: &mut XmppClient, unacked: &[&str]) -> (String, u32) {
    let (mut c, enabled) = enabled(
        server,
        "alice",
        "r",
        &format!("<enable xmlns='{SM}' resume='true'/>"),
    )
    .await;
    let id = enabled.attr("id").expect("id").to_string();
    available(&mut c).await;
    let mut received = 1; // the self-presence
    for text in unacked {
        bob_sends(bob, "alice@localhost/r", text).await;
        received += read_message(&mut c, text).await;
    }
    drop(c);
    (id, received)
}

#[tokio::test]
async fn xep0198_5_resumption_replays_unacked() {
    let server = server_with("").await;
    let mut bob = bob(&server).await;
    let (id, received) = cut_with_unacked(&server, &mut bob, &["one", "two"]).await;
    // Detached, the session still takes messages.
    tokio::time::sleep(Duration::from_millis(200)).await;
    bob_sends(&mut bob, "alice@localhost/r", "three").await;
    bob.expect_none(
        Duration::from_millis(300),
        "an error for a hibernating session",
        |e| e.attr("type") == Some("error"),
    )
    .await;

    let (mut c, _) = authenticated(&server, "alice").await;
    // The client handled the self-presence and "one" only.
    let handled = received - 1;
    c.send(format!("<resume xmlns='{SM}' previd='{id}' h='{handled}'/>"))
        .await;
    let resumed = c.expect_element().await;
    assert!(is_sm(&resumed, "resumed"), "{}", xml::to_string(&resumed));
    assert_eq!(resumed.attr("previd"), Some(id.as_str()));
    assert_eq!(h_of(&resumed), 1, "the server handled alice's presence");
    let mut bodies = Vec::new();
    while bodies.len() < 2 {
        let e = c.expect_element().await;
        if let Some(b) = body(&e) {
            bodies.push(b);
        }
    }
    assert_eq!(bodies, ["two", "three"], "replayed in order, then the queued one");
    // The stream goes on with the same session and counters.
    c.send(format!("<r xmlns='{SM}'/>")).await;
    let a = c.read_until(|e| is_sm(e, "a")).await;
    assert_eq!(h_of(&a), 1);
    c.send("<iq type='get' id='after' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>")
        .await;
    let pong = c.read_until(|e| e.attr("id") == Some("after")).await;
    assert_eq!(pong.attr("to"), Some("alice@localhost/r"));
    // The copies kept in offline storage against a crash while hibernating are gone: another
    // resource coming online gets none of them.
    let mut other = server.client_jid("alice@localhost/other", PW).await;
    other.send_presence(0).await;
    other
        .expect_none(
            Duration::from_millis(800),
            "a replayed message delivered twice",
            |e| body(e).is_some(),
        )
        .await;
}

#[tokio::test]
async fn xep0198_5_resume_with_unknown_or_stale_id_fails_with_item_not_found() {
    let server = server_with("").await;
    // Ended cleanly: its id is stale.
    let (mut old, enabled) = enabled(
        &server,
        "alice",
        "r",
        &format!("<enable xmlns='{SM}' resume='true'/>"),
    )
    .await;
    let stale = enabled.attr("id").unwrap().to_string();
    old.close_stream().await;
    old.expect_closed().await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    for id in [
        stale.as_str(),
        "nonsense",
        "616c696365406c6f63616c686f73742f72.00",
    ] {
        let (mut c, _) = authenticated(&server, "alice").await;
        c.send(format!("<resume xmlns='{SM}' previd='{id}' h='0'/>"))
            .await;
        let answer = c.expect_element().await;
        assert!(is_sm(&answer, "failed"), "{id}: {}", xml::to_string(&answer));
        assert!(
            answer.get_child("item-not-found", ns::STANZAS).is_some(),
            "{id}: {}",
            xml::to_string(&answer)
        );
        // A failed resumption leaves the stream usable: bind instead.
        c.bind(Some("r")).await.unwrap();
    }
}

#[tokio::test]
async fn xep0198_5_resume_with_a_wrong_secret_for_a_hibernating_session_fails() {
    let server = server_with("").await;
    let mut bob = bob(&server).await;
    let (id, _) = cut_with_unacked(&server, &mut bob, &["one"]).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    // The JID half names the parked session; only the secret is guessed.
    let (jid_half, secret) = id.split_once('.').expect("id has a secret half");
    let mut guessed = secret.to_string();
    let last = if guessed.ends_with('0') { "1" } else { "0" };
    guessed.replace_range(guessed.len() - 1.., last);
    let (mut c, _) = authenticated(&server, "alice").await;
    c.send(format!(
        "<resume xmlns='{SM}' previd='{jid_half}.{guessed}' h='0'/>"
    ))
    .await;
    let answer = c.expect_element().await;
    assert!(is_sm(&answer, "failed"), "{}", xml::to_string(&answer));
    assert!(
        answer.get_child("item-not-found", ns::STANZAS).is_some(),
        "{}",
        xml::to_string(&answer)
    );
    // The guess took nothing: the owner still resumes with the real id.
    let (mut owner, _) = authenticated(&server, "alice").await;
    owner
        .send(format!("<resume xmlns='{SM}' previd='{id}' h='0'/>"))
        .await;
    let resumed = owner.expect_element().await;
    assert!(is_sm(&resumed, "resumed"), "{}", xml::to_string(&resumed));
}

#[tokio::test]
async fn xep0198_5_resume_of_another_accounts_session_fails() {
    let server = server_with("").await;
    let mut bob = bob(&server).await;
    let (id, _) = cut_with_unacked(&server, &mut bob, &["secret"]).await;
    let (mut c, _) = authenticated(&server, "bob").await;
    c.send(format!("<resume xmlns='{SM}' previd='{id}' h='0'/>"))
        .await;
    let answer = c.expect_element().await;
    assert!(
        answer.get_child("item-not-found", ns::STANZAS).is_some(),
        "{}",
        xml::to_string(&answer)
    );
}

#[tokio::test]
async fn xep0198_5_resume_of_a_replaced_session_fails() {
    let server = server_with("").await;
    let mut bob = bob(&server).await;
    let (id, _) = cut_with_unacked(&server, &mut bob, &["before"]).await;
    // A new login takes the same resource: the hibernating session ends.
    let mut newer = server.raw_login("alice", PW, Some("r")).await;
    newer.send("<presence/>").await;
    let (mut c, _) = authenticated(&server, "alice").await;
    c.send(format!("<resume xmlns='{SM}' previd='{id}' h='0'/>"))
        .await;
    let answer = c.expect_element().await;
    assert!(is_sm(&answer, "failed"), "{}", xml::to_string(&answer));
    assert!(answer.get_child("item-not-found", ns::STANZAS).is_some());
    // What the old session never had acknowledged went to the resource that replaced it.
    read_message(&mut newer, "before").await;
}

#[tokio::test]
async fn xep0198_5_resume_with_h_beyond_what_was_sent_fails() {
    let server = server_with("").await;
    let mut bob = bob(&server).await;
    let (id, received) = cut_with_unacked(&server, &mut bob, &["x"]).await;
    let (mut c, _) = authenticated(&server, "alice").await;
    c.send(format!(
        "<resume xmlns='{SM}' previd='{id}' h='{}'/>",
        received + 5
    ))
    .await;
    let answer = c.expect_element().await;
    assert!(is_sm(&answer, "failed"), "{}", xml::to_string(&answer));
    assert!(
        answer.get_child("undefined-condition", ns::STANZAS).is_some(),
        "{}",
        xml::to_string(&answer)
    );
    let detail = answer
        .get_child("handled-count-too-high", SM)
        .expect("handled-count-too-high");
    assert_eq!(detail.attr("send-count"), Some(received.to_string().as_str()));
    // The session still waits: a correct resumption works.
    drop(c);
    let (mut c, _) = authenticated(&server, "alice").await;
    c.send(format!("<resume xmlns='{SM}' previd='{id}' h='{received}'/>"))
        .await;
    let resumed = c.expect_element().await;
    assert!(is_sm(&resumed, "resumed"), "{}", xml::to_string(&resumed));
}

#[tokio::test]
async fn xep0198_5_resume_displaces_a_connection_not_yet_seen_dead() {
    let server = server_with("").await;
    let (mut old, enabled) = enabled(
        &server,
        "alice",
        "r",
        &format!("<enable xmlns='{SM}' resume='true'/>"),
    )
    .await;
    let id = enabled.attr("id").unwrap().to_string();
    let (mut c, _) = authenticated(&server, "alice").await;
    c.send(format!("<resume xmlns='{SM}' previd='{id}' h='0'/>"))
        .await;
    let resumed = c.expect_element().await;
    assert!(is_sm(&resumed, "resumed"), "{}", xml::to_string(&resumed));
    // The old connection was let go of.
    assert!(
        matches!(
            old.next_within(Duration::from_secs(5)).await,
            Some(conformance::Incoming::Closed)
                | Some(conformance::Incoming::StreamEnd)
                | Some(conformance::Incoming::Element(_))
        ),
        "the old connection is no longer served"
    );
    c.send("<iq type='get' id='p' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>")
        .await;
    c.read_until(|e| e.attr("id") == Some("p")).await;
}

#[tokio::test]
async fn xep0198_5_timeout_sends_unacked_messages_to_offline_storage() {
    let server = server_with("").await;
    let mut bob = bob(&server).await;
    // The client asks for a one-second timeout (below the server's maximum).
    let (mut c, enabled) = enabled(
        &server,
        "alice",
        "r",
        &format!("<enable xmlns='{SM}' resume='true' max='1'/>"),
    )
    .await;
    assert_eq!(enabled.attr("max"), Some("1"));
    let id = enabled.attr("id").unwrap().to_string();
    available(&mut c).await;
    bob_sends(&mut bob, "alice@localhost/r", "keep me").await;
    read_message(&mut c, "keep me").await;
    drop(c);
    tokio::time::sleep(Duration::from_millis(2500)).await;
    // Too late to resume...
    let (mut late, _) = authenticated(&server, "alice").await;
    late.send(format!("<resume xmlns='{SM}' previd='{id}' h='0'/>"))
        .await;
    let answer = late.expect_element().await;
    assert!(
        answer.get_child("item-not-found", ns::STANZAS).is_some(),
        "{}",
        xml::to_string(&answer)
    );
    // ... but the message waits in offline storage, delivered on the next login.
    let mut alice = server.client("alice", PW).await;
    alice.send_presence(0).await;
    let m = alice.wait_for(|e| body(e).as_deref() == Some("keep me")).await;
    assert!(
        m.get_child("delay", DELAY).is_some(),
        "stored offline: {}",
        xml::to_string(&m)
    );
}

#[tokio::test]
async fn xep0198_5_hibernating_session_stays_bound_until_the_timeout() {
    let server = server_with("").await;
    let mut bob = bob(&server).await;
    let (mut c, _) = enabled(
        &server,
        "alice",
        "r",
        &format!("<enable xmlns='{SM}' resume='true' max='2'/>"),
    )
    .await;
    available(&mut c).await;
    drop(c);
    tokio::time::sleep(Duration::from_millis(300)).await;
    // Hibernating: the resource is still there, an IQ to it waits in its queue.
    bob.send_xml("<iq type='get' id='v1' to='alice@localhost/r'><query xmlns='jabber:iq:version'/></iq>")
        .await;
    bob.expect_none(
        Duration::from_millis(800),
        "an error from a hibernating resource",
        |e| e.attr("id") == Some("v1") && e.attr("type") == Some("error"),
    )
    .await;
    // After the timeout the session is gone: the same IQ is refused.
    tokio::time::sleep(Duration::from_millis(2000)).await;
    bob.send_xml("<iq type='get' id='v2' to='alice@localhost/r'><query xmlns='jabber:iq:version'/></iq>")
        .await;
    let answer = bob.wait_for(|e| e.attr("id") == Some("v2")).await;
    assert_eq!(answer.attr("type"), Some("error"), "{}", xml::to_string(&answer));
}

/// Authenticated over WebSocket (RFC 7395, PLAIN), not bound.
async fn ws_authenticated(server: &TestServer, user: &str) -> conformance::websocket::WsClient {
    use base64::Engine;
    let mut ws = conformance::websocket::WsClient::connect(server.http_addr()).await;
    ws.open().await;
    let creds = base64::engine::general_purpose::STANDARD.encode(format!("\0{user}\0{PW}"));
    ws.send_text(&format!(
        "<auth xmlns='{}' mechanism='PLAIN'>{creds}</auth>",
        ns::SASL
    ))
    .await;
    let success = ws.expect_element().await;
    assert!(success.is("success", ns::SASL), "{}", xml::to_string(&success));
    let (_, features) = ws.open().await;
    assert!(
        features.get_child("sm", SM).is_some(),
        "{}",
        xml::to_string(&features)
    );
    ws
}

#[tokio::test]
async fn xep0198_5_resumption_moves_from_tcp_to_websocket_and_back() {
    let server = server_with("").await;
    let mut bob = bob(&server).await;
    let (id, _) = cut_with_unacked(&server, &mut bob, &["over tcp"]).await;

    // TCP to WebSocket: the message the client never acknowledged comes again.
    let mut ws = ws_authenticated(&server, "alice").await;
    ws.send_text(&format!("<resume xmlns='{SM}' previd='{id}' h='0'/>"))
        .await;
    let resumed = ws.expect_element().await;
    assert!(is_sm(&resumed, "resumed"), "{}", xml::to_string(&resumed));
    let m = ws.read_until(|e| body(e).is_some()).await;
    assert_eq!(body(&m).as_deref(), Some("over tcp"));
    bob_sends(&mut bob, "alice@localhost/r", "over websocket").await;
    let m = ws.read_until(|e| body(e).is_some()).await;
    assert_eq!(body(&m).as_deref(), Some("over websocket"));
    drop(ws);
    tokio::time::sleep(Duration::from_millis(300)).await;

    // And back to TCP: neither was acknowledged, both come again, in order.
    let (mut c, _) = authenticated(&server, "alice").await;
    c.send(format!("<resume xmlns='{SM}' previd='{id}' h='0'/>"))
        .await;
    let resumed = c.expect_element().await;
    assert!(is_sm(&resumed, "resumed"), "{}", xml::to_string(&resumed));
    let mut bodies = Vec::new();
    while bodies.len() < 2 {
        if let Some(b) = body(&c.expect_element().await) {
            bodies.push(b);
        }
    }
    assert_eq!(bodies, ["over tcp", "over websocket"]);
}

#[tokio::test]
async fn xep0198_5_graceful_shutdown_sends_unacked_messages_of_hibernating_sessions_to_offline_storage() {
    let mut server = server_with("").await;
    let mut bob = bob(&server).await;
    let _ = cut_with_unacked(&server, &mut bob, &["across the stop"]).await;
    drop(bob);
    tokio::time::sleep(Duration::from_millis(300)).await;
    server.terminate().await;
    assert!(
        server
            .logs()
            .contains("session ended jid=alice@localhost/r reason=\"connection lost\""),
        "the hibernating session ended on the stop:\n{}",
        server.logs()
    );
    server.restart().await;
    let mut alice = server.client("alice", PW).await;
    alice.send_presence(0).await;
    let m = alice
        .wait_for(|e| body(e).as_deref() == Some("across the stop"))
        .await;
    assert!(
        m.get_child("delay", DELAY).is_some(),
        "stored offline: {}",
        xml::to_string(&m)
    );
}

#[tokio::test]
async fn xep0198_5_kill_9_while_hibernating_keeps_unacked_messages_in_offline_storage() {
    let mut server = server_with("").await;
    let mut bob = bob(&server).await;
    let _ = cut_with_unacked(&server, &mut bob, &["through the crash"]).await;
    drop(bob);
    assert!(
        server
            .wait_for_log("session waits for resumption", 1, Duration::from_secs(5))
            .await
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    // SIGKILL: only what is in the database survives.
    server.restart().await;
    let mut alice = server.client("alice", PW).await;
    alice.send_presence(0).await;
    let m = alice
        .wait_for(|e| body(e).as_deref() == Some("through the crash"))
        .await;
    assert!(
        m.get_child("delay", DELAY).is_some(),
        "stored offline: {}",
        xml::to_string(&m)
    );
}
