//! XEP-0160 (best practices for offline messages) with XEP-0203 delay stamps: what is
//! stored, when and how it is delivered, the per-user cap, durability across a restart.

use std::time::Duration;

use conformance::{Element, TestServer, XmppClient, ns, xml};

const DELAY: &str = "urn:xmpp:delay";
const OFFLINE: &str = "http://jabber.org/protocol/offline";
/// Enough for a stanza already queued behind a processed barrier to arrive.
const SHORT: Duration = Duration::from_millis(300);

fn body(e: &Element) -> Option<String> {
    e.get_child("body", ns::CLIENT).map(|b| b.text())
}

/// A server with alice and bob; alice is connected, bob is not.
async fn alice_and_offline_bob() -> (TestServer, XmppClient) {
    let server = TestServer::start().await;
    server.add_user("alice", "passw0rd").await;
    server.add_user("bob", "passw0rd").await;
    let alice = server.client("alice", "passw0rd").await;
    (server, alice)
}

/// Sends a chat message to bob's bare JID, then makes sure the server processed it and did
/// not answer with an error (a bounce would be queued before the ping result).
async fn send_stored(alice: &mut XmppClient, id: &str, text: &str) {
    alice
        .send_xml(&format!(
            "<message type='chat' to='bob@localhost' id='{id}'><body>{}</body></message>",
            xml::escape(text)
        ))
        .await;
    alice.ping_server().await;
    alice
        .expect_none(
            Duration::from_millis(50),
            "bounce of a message to an offline account",
            |e| e.attr("type") == Some("error"),
        )
        .await;
}

/// Seconds since the epoch of an XEP-0082 DateTime like 2024-01-02T03:04:05.678Z.
fn parse_stamp(stamp: &str) -> f64 {
    let t = chrono::DateTime::parse_from_rfc3339(stamp)
        .unwrap_or_else(|e| panic!("stamp {stamp:?} is not an XEP-0082 DateTime: {e}"));
    t.timestamp_millis() as f64 / 1000.0
}

fn now() -> f64 {
    chrono::Utc::now().timestamp_millis() as f64 / 1000.0
}

/// The XEP-0203 stamp of an offline message, checked to come from the server's domain.
fn delay_stamp(m: &Element) -> f64 {
    let d = m
        .get_child("delay", DELAY)
        .unwrap_or_else(|| panic!("XEP-0203 <delay/> missing: {}", xml::to_string(m)));
    assert_eq!(d.attr("from"), Some("localhost"), "{}", xml::to_string(m));
    parse_stamp(d.attr("stamp").expect("stamp"))
}

/// Number of messages still stored, through XEP-0013 §2.2.
async fn stored_count(c: &mut XmppClient) -> usize {
    let r = c
        .iq(
            "get",
            None,
            &format!("<query xmlns='{}' node='{OFFLINE}'/>", ns::DISCO_INFO),
        )
        .await;
    let form = r
        .get_child("query", ns::DISCO_INFO)
        .and_then(|q| q.get_child("x", ns::DATA_FORMS))
        .unwrap_or_else(|| panic!("no count form: {}", xml::to_string(&r)));
    form.children()
        .find(|f| f.attr("var") == Some("number_of_messages"))
        .and_then(|f| f.get_child("value", ns::DATA_FORMS))
        .map(|v| v.text().parse().expect("a number"))
        .expect("number_of_messages")
}

/// Waits until the account has no stored message (deletion follows delivery closely).
async fn wait_queue_empty(c: &mut XmppClient) {
    for _ in 0..100 {
        if stored_count(c).await == 0 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("delivered offline messages were not deleted");
}

// XEP-0160 §3: a chat message to an account with no available resource is stored, and
// delivered to the resource that next sends non-negative initial presence, with a
// XEP-0203 <delay/> from the server; once delivered it is gone.
#[tokio::test]
async fn xep0160_offline_stored_and_delivered_with_delay() {
    let (server, mut alice) = alice_and_offline_bob().await;
    let before = now();
    send_stored(&mut alice, "off1", "while you were out & about").await;

    let mut bob = server.client("bob", "passw0rd").await;
    // Nothing before initial presence.
    bob.expect_no_message(SHORT).await;
    bob.send_presence(0).await;
    let m = bob.expect_message().await;
    assert_eq!(body(&m).as_deref(), Some("while you were out & about"));
    assert_eq!(m.attr("id"), Some("off1"));
    assert_eq!(m.attr("type"), Some("chat"));
    assert_eq!(
        m.attr("from"),
        Some(alice.jid().to_string().as_str()),
        "{}",
        xml::to_string(&m)
    );
    let stamp = delay_stamp(&m);
    assert!(
        stamp >= before - 1.0 && stamp <= now() + 1.0,
        "stamp {stamp} is not the storage time (sent at {before})"
    );
    bob.expect_no_message(SHORT).await;
    wait_queue_empty(&mut bob).await;
    bob.close().await;

    // Delivered once only.
    let mut bob = server.client("bob", "passw0rd").await;
    bob.send_presence(0).await;
    bob.ping_server().await;
    bob.expect_no_message(SHORT).await;

    // Live messages carry no delay.
    alice.send_message("bob@localhost", "live").await;
    let m = bob.expect_message().await;
    assert_eq!(body(&m).as_deref(), Some("live"));
    assert!(m.get_child("delay", DELAY).is_none(), "{}", xml::to_string(&m));
}

// XEP-0160 §3: stored messages come back in the order they were sent (normal ones too),
// more than one delivery chunk of them.
#[tokio::test]
async fn xep0160_offline_order_preserved() {
    const N: usize = 70;
    let (server, mut alice) = alice_and_offline_bob().await;
    for i in 1..=N {
        if i == 4 {
            // A normal message (no type) is stored as well.
            alice
                .send_xml("<message to='bob@localhost' id='n4'><body>4</body></message>")
                .await;
        } else {
            alice.send_message("bob@localhost", &i.to_string()).await;
        }
    }
    alice.ping_server().await;
    let mut bob = server.client("bob", "passw0rd").await;
    bob.send_presence(1).await;
    let mut last_stamp = 0.0;
    for i in 1..=N {
        let m = bob.expect_message().await;
        assert_eq!(
            body(&m),
            Some(i.to_string()),
            "out of order: {}",
            xml::to_string(&m)
        );
        let stamp = delay_stamp(&m);
        assert!(stamp >= last_stamp, "stamps go backwards");
        last_stamp = stamp;
    }
    bob.expect_no_message(SHORT).await;
    wait_queue_empty(&mut bob).await;
}

// XEP-0160 §3: when the queue is full the sender gets <service-unavailable/>; nothing is
// dropped silently, and what was stored is still delivered.
#[tokio::test]
async fn xep0160_offline_cap_service_unavailable() {
    let mut server = TestServer::start().await;
    let path = server.config_path().to_path_buf();
    let config = std::fs::read_to_string(&path).expect("config");
    let config = config.replacen("[limits]\n", "[limits]\nmax_offline_messages = 2\n", 1);
    std::fs::write(&path, config).expect("write config");
    server.restart().await;
    server.add_user("alice", "passw0rd").await;
    server.add_user("bob", "passw0rd").await;
    let mut alice = server.client("alice", "passw0rd").await;

    send_stored(&mut alice, "c1", "one").await;
    send_stored(&mut alice, "c2", "two").await;
    alice
        .send_xml("<message type='chat' to='bob@localhost' id='c3'><body>three</body></message>")
        .await;
    let e = alice.expect_message().await;
    assert_eq!(e.attr("id"), Some("c3"), "{}", xml::to_string(&e));
    assert_eq!(e.attr("from"), Some("bob@localhost"));
    xml::assert_stanza_error(&e, &["service-unavailable"]);

    let mut bob = server.client("bob", "passw0rd").await;
    bob.send_presence(0).await;
    assert_eq!(body(&bob.expect_message().await).as_deref(), Some("one"));
    assert_eq!(body(&bob.expect_message().await).as_deref(), Some("two"));
    bob.expect_no_message(SHORT).await;
}

// RFC 6121 §8.5.2.2.1 / XEP-0160 §3: nothing is stored for an account that does not exist;
// the sender gets the same <service-unavailable/> as for a full queue.
#[tokio::test]
async fn xep0160_unknown_account_not_stored() {
    let (_server, mut alice) = alice_and_offline_bob().await;
    alice
        .send_xml("<message type='chat' to='nobody@localhost' id='u1'><body>anyone?</body></message>")
        .await;
    let e = alice.expect_message().await;
    assert_eq!(e.attr("id"), Some("u1"));
    assert_eq!(e.attr("from"), Some("nobody@localhost"));
    xml::assert_stanza_error(&e, &["service-unavailable"]);
}

// XEP-0160 §3 note / RFC 6121 §8.5.2.1.1: a resource with negative priority never gets
// messages for the bare JID, stored ones included; they wait until it (or another
// resource) sends non-negative presence.
#[tokio::test]
async fn xep0160_negative_priority_no_delivery() {
    let (server, mut alice) = alice_and_offline_bob().await;
    send_stored(&mut alice, "before", "sent before login").await;
    let mut bob = server.client_jid("bob@localhost/shy", "passw0rd").await;
    bob.send_presence(-1).await;
    bob.ping_server().await;
    bob.expect_no_message(SHORT).await;
    // Still no eligible resource: stored, not delivered to the negative one.
    send_stored(&mut alice, "during", "sent while negative").await;
    bob.expect_no_message(SHORT).await;

    bob.send_presence(0).await;
    let first = bob.expect_message().await;
    let second = bob.expect_message().await;
    assert_eq!(body(&first).as_deref(), Some("sent before login"));
    assert_eq!(body(&second).as_deref(), Some("sent while negative"));
    delay_stamp(&first);
    delay_stamp(&second);
}

// XEP-0160 §4: headline and standalone chat states (XEP-0085 §5.5) are not stored and not
// answered; a XEP-0334 <no-store/> message is not stored and is answered; receipts are kept.
#[tokio::test]
async fn xep0160_4_what_is_not_stored() {
    let (server, mut alice) = alice_and_offline_bob().await;
    alice
        .send_xml("<message type='headline' to='bob@localhost' id='h1'><body>news</body></message>")
        .await;
    alice
        .send_xml(
            "<message type='chat' to='bob@localhost' id='cs1'>\
             <composing xmlns='http://jabber.org/protocol/chatstates'/></message>",
        )
        .await;
    alice.ping_server().await;
    alice.expect_no_message(SHORT).await;
    alice
        .send_xml(
            "<message type='chat' to='bob@localhost' id='ns1'><body>ephemeral</body>\
             <no-store xmlns='urn:xmpp:hints'/></message>",
        )
        .await;
    let e = alice.expect_message().await;
    assert_eq!(e.attr("id"), Some("ns1"));
    xml::assert_stanza_error(&e, &["service-unavailable"]);
    alice
        .send_xml(
            "<message type='chat' to='bob@localhost' id='rc1'>\
             <received xmlns='urn:xmpp:receipts' id='earlier'/></message>",
        )
        .await;
    send_stored(&mut alice, "kept", "kept").await;

    let mut bob = server.client("bob", "passw0rd").await;
    bob.send_presence(0).await;
    let receipt = bob.expect_message().await;
    assert_eq!(receipt.attr("id"), Some("rc1"), "{}", xml::to_string(&receipt));
    let r = receipt
        .get_child("received", "urn:xmpp:receipts")
        .expect("receipt kept intact");
    assert_eq!(r.attr("id"), Some("earlier"));
    assert_eq!(body(&bob.expect_message().await).as_deref(), Some("kept"));
    bob.expect_no_message(SHORT).await;
}

// Offline messages are durable: they survive the server being killed and started again.
#[tokio::test]
async fn xep0160_offline_survives_restart() {
    let (mut server, mut alice) = alice_and_offline_bob().await;
    send_stored(&mut alice, "r1", "first").await;
    send_stored(&mut alice, "r2", "second").await;
    let sender = alice.jid().to_string();
    drop(alice);
    server.restart().await;
    let mut bob = server.client("bob", "passw0rd").await;
    bob.send_presence(0).await;
    for (id, text) in [("r1", "first"), ("r2", "second")] {
        let m = bob.expect_message().await;
        assert_eq!(m.attr("id"), Some(id));
        assert_eq!(body(&m).as_deref(), Some(text));
        assert_eq!(m.attr("from"), Some(sender.as_str()));
        delay_stamp(&m);
    }
    bob.expect_no_message(SHORT).await;
}

// Two resources becoming available together share one delivery: every stored message
// arrives exactly once in all.
#[tokio::test]
async fn xep0160_two_resources_no_duplicates() {
    let (server, mut alice) = alice_and_offline_bob().await;
    for i in 0..10 {
        alice.send_message("bob@localhost", &format!("m{i}")).await;
    }
    alice.ping_server().await;
    let mut one = server.client_jid("bob@localhost/one", "passw0rd").await;
    let mut two = server.client_jid("bob@localhost/two", "passw0rd").await;
    one.send_presence(0).await;
    two.send_presence(0).await;
    let mut got = Vec::new();
    for c in [&mut one, &mut two] {
        while let Some(m) = c.recv_within(Duration::from_millis(500)).await {
            if m.name() == "message" {
                got.extend(body(&m));
            }
        }
    }
    got.sort();
    let mut expected: Vec<String> = (0..10).map(|i| format!("m{i}")).collect();
    expected.sort();
    assert_eq!(got, expected);
}
