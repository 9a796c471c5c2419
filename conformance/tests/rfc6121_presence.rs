//! RFC 6121 §4 (presence): initial presence, probes, updates, unavailable, directed
//! presence; multi-resource accounts.

use std::time::Duration;

use conformance::blocking::settle_without;
use conformance::{Element, TestServer, XmppClient, xml};

const ROSTER: &str = "jabber:iq:roster";
const PW: &str = "passw0rd";
const EXT: &str = "urn:example:presence-ext";

fn is_presence(e: &Element, ptype: Option<&str>, from: &str) -> bool {
    e.name() == "presence" && e.attr("type") == ptype && e.attr("from") == Some(from)
}

fn status(e: &Element) -> Option<String> {
    e.get_child("status", "jabber:client").map(|s| s.text())
}

async fn send_sub(c: &mut XmppClient, ptype: &str, to: &str) {
    c.send_xml(&format!("<presence type='{ptype}' to='{to}'/>")).await;
    c.ping_server().await;
}

/// Everything received up to a server round trip.
async fn settle(c: &mut XmppClient) -> Vec<Element> {
    c.ping_server().await;
    let mut out = Vec::new();
    while let Some(e) = c.recv_within(Duration::from_millis(30)).await {
        out.push(e);
    }
    out
}

fn dump(v: &[Element]) -> String {
    v.iter().map(xml::to_string).collect::<Vec<_>>().join("\n")
}

async fn server_with(users: &[&str]) -> TestServer {
    let server = TestServer::start().await;
    for u in users {
        server.add_user(u, PW).await;
    }
    server
}

/// `a` subscribes to `b` and `b` approves ('to' for a, 'from' for b); neither need be
/// available.
async fn subscribe(a: &mut XmppClient, a_bare: &str, b: &mut XmppClient, b_bare: &str) {
    send_sub(a, "subscribe", b_bare).await;
    send_sub(b, "subscribed", a_bare).await;
}

/// alice and bob with a mutual subscription, both connected, neither available yet.
async fn friends() -> (TestServer, XmppClient, XmppClient) {
    let server = server_with(&["alice", "bob", "carol"]).await;
    let mut alice = server.client_jid("alice@localhost/a", PW).await;
    let mut bob = server.client_jid("bob@localhost/b", PW).await;
    subscribe(&mut alice, "alice@localhost", &mut bob, "bob@localhost").await;
    subscribe(&mut bob, "bob@localhost", &mut alice, "alice@localhost").await;
    settle(&mut alice).await;
    settle(&mut bob).await;
    (server, alice, bob)
}

// RFC 6121 §4.2.2: initial presence goes to every contact with a 'from' subscription
// (their available resources), and to all of the user's available resources including
// the sender; the stanza keeps its extensions.
#[tokio::test]
async fn rfc6121_4_2_2_initial_presence_broadcast() {
    let (server, mut alice, mut bob) = friends().await;
    let mut carol = server.client("carol", PW).await;
    carol.send_presence(0).await;
    bob.send_presence(0).await;
    settle(&mut bob).await;
    alice
        .send_xml(&format!(
            "<presence><show>chat</show><status>hi</status><priority>3</priority><x xmlns='{EXT}'><y a='1'>t</y></x></presence>"
        ))
        .await;
    let p = bob.wait_for(|e| is_presence(e, None, "alice@localhost/a")).await;
    assert_eq!(status(&p).as_deref(), Some("hi"));
    let x = p.get_child("x", EXT).expect("extension delivered");
    let y = x.get_child("y", EXT).unwrap();
    assert_eq!((y.attr("a"), y.text().as_str()), (Some("1"), "t"));
    // §4.2.2: the sender's own resource gets it too.
    alice
        .wait_for(|e| is_presence(e, None, "alice@localhost/a"))
        .await;
    // No subscription, no presence.
    alice.ping_server().await;
    settle_without(&mut carol, "presence from alice/a (no subscription)", |e| {
        e.attr("from") == Some("alice@localhost/a")
    })
    .await;
}

// RFC 6121 §4.2.3 / §4.3.2: at initial presence the user learns the current presence of
// the contacts it is subscribed to (the server answers the probes), and nothing about
// contacts that are offline or not subscribed to.
#[tokio::test]
async fn rfc6121_4_3_2_probe_answered_at_initial_presence() {
    let (server, mut alice, mut bob) = friends().await;
    let mut carol = server.client("carol", PW).await;
    carol.send_presence(0).await;
    bob.send_xml("<presence><show>away</show><status>lunch</status></presence>")
        .await;
    settle(&mut bob).await;
    alice.send_presence(0).await;
    let p = alice.wait_for(|e| is_presence(e, None, "bob@localhost/b")).await;
    assert_eq!(status(&p).as_deref(), Some("lunch"));
    assert_eq!(p.attr("to"), Some("alice@localhost/a"));
    settle_without(&mut alice, "stanza from carol", |e| {
        e.attr("from").is_some_and(|f| f.starts_with("carol@"))
    })
    .await;
}

// RFC 6121 §4.3: a probe sent by a client is answered for subscribed contacts only.
#[tokio::test]
async fn rfc6121_4_3_client_probe() {
    let (server, mut alice, mut bob) = friends().await;
    let mut carol = server.client("carol", PW).await;
    carol.send_presence(0).await;
    bob.send_xml("<presence><status>here</status></presence>").await;
    settle(&mut bob).await;
    alice
        .send_xml("<presence type='probe' to='bob@localhost'/>")
        .await;
    let p = alice.wait_for(|e| is_presence(e, None, "bob@localhost/b")).await;
    assert_eq!(status(&p).as_deref(), Some("here"));
    // carol is not subscribed to bob.
    carol
        .send_xml("<presence type='probe' to='bob@localhost'/>")
        .await;
    settle_without(&mut carol, "available presence from bob/b", |e| {
        e.attr("from") == Some("bob@localhost/b") && e.attr("type").is_none()
    })
    .await;
}

// RFC 6121 §4.4: later presence updates are broadcast to subscribers.
#[tokio::test]
async fn rfc6121_4_4_presence_update_broadcast() {
    let (_server, mut alice, mut bob) = friends().await;
    bob.send_presence(0).await;
    alice.send_presence(0).await;
    settle(&mut bob).await;
    alice
        .send_xml("<presence><show>dnd</show><status>busy</status></presence>")
        .await;
    let p = bob
        .wait_for(|e| is_presence(e, None, "alice@localhost/a") && status(e).as_deref() == Some("busy"))
        .await;
    assert_eq!(
        p.get_child("show", "jabber:client").map(|s| s.text()).as_deref(),
        Some("dnd")
    );
}

// RFC 6121 §4.5: unavailable presence is broadcast, whether sent or implied by the
// connection going away.
#[tokio::test]
async fn rfc6121_4_5_unavailable_broadcast() {
    let (server, mut alice, mut bob) = friends().await;
    bob.send_presence(0).await;
    alice.send_presence(0).await;
    settle(&mut bob).await;
    alice
        .send_xml("<presence type='unavailable'><status>bye</status></presence>")
        .await;
    let p = bob
        .wait_for(|e| is_presence(e, Some("unavailable"), "alice@localhost/a"))
        .await;
    assert_eq!(status(&p).as_deref(), Some("bye"));
    // Raw client, dropped without closing the stream.
    let mut raw = server.raw_login("alice", PW, Some("raw")).await;
    raw.send("<presence/>").await;
    bob.wait_for(|e| is_presence(e, None, "alice@localhost/raw"))
        .await;
    drop(raw);
    bob.wait_for(|e| is_presence(e, Some("unavailable"), "alice@localhost/raw"))
        .await;
}

// RFC 6121 §4.6: directed presence reaches a non-subscriber, and so does the unavailable
// presence when the user goes offline; directed unavailable ends the tracking.
#[tokio::test]
async fn rfc6121_4_6_directed_presence_unavailable() {
    let server = server_with(&["alice", "carol", "dave"]).await;
    let mut alice = server.client_jid("alice@localhost/a", PW).await;
    let mut carol = server.client_jid("carol@localhost/c", PW).await;
    let mut dave = server.client_jid("dave@localhost/d", PW).await;
    carol.send_presence(0).await;
    dave.send_presence(0).await;
    alice.send_presence(0).await;
    alice
        .send_xml("<presence to='carol@localhost/c'><status>psst</status></presence>")
        .await;
    alice.send_xml("<presence to='dave@localhost'/>").await;
    carol
        .wait_for(|e| is_presence(e, None, "alice@localhost/a"))
        .await;
    dave.wait_for(|e| is_presence(e, None, "alice@localhost/a")).await;
    // Dave is told directly that alice is gone for him; he must not get it twice.
    alice
        .send_xml("<presence type='unavailable' to='dave@localhost'/>")
        .await;
    dave.wait_for(|e| is_presence(e, Some("unavailable"), "alice@localhost/a"))
        .await;
    alice.send_xml("<presence type='unavailable'/>").await;
    carol
        .wait_for(|e| is_presence(e, Some("unavailable"), "alice@localhost/a"))
        .await;
    alice.ping_server().await;
    settle_without(&mut dave, "unavailable presence from alice/a", |e| {
        is_presence(e, Some("unavailable"), "alice@localhost/a")
    })
    .await;
}

// RFC 6121 §4.6: directed presence from a resource that never sent broadcast presence
// still ends with unavailable when the session closes.
#[tokio::test]
async fn rfc6121_4_6_directed_presence_without_broadcast() {
    let server = server_with(&["alice", "carol"]).await;
    let mut carol = server.client_jid("carol@localhost/c", PW).await;
    carol.send_presence(0).await;
    let mut raw = server.raw_login("alice", PW, Some("raw")).await;
    raw.send("<presence to='carol@localhost/c'/>").await;
    carol
        .wait_for(|e| is_presence(e, None, "alice@localhost/raw"))
        .await;
    raw.close_stream().await;
    carol
        .wait_for(|e| is_presence(e, Some("unavailable"), "alice@localhost/raw"))
        .await;
}

// RFC 6121 §4.2.2-§4.2.3 with several resources: a new resource learns its siblings'
// presence, and they learn its; a resource that never sent presence gets none.
#[tokio::test]
async fn rfc6121_4_2_multi_resource() {
    let server = server_with(&["alice"]).await;
    let mut one = server.client_jid("alice@localhost/one", PW).await;
    let mut quiet = server.client_jid("alice@localhost/quiet", PW).await;
    one.send_xml("<presence><status>first</status></presence>").await;
    settle(&mut one).await;
    let mut two = server.client_jid("alice@localhost/two", PW).await;
    two.send_presence(1).await;
    let p = two
        .wait_for(|e| is_presence(e, None, "alice@localhost/one"))
        .await;
    assert_eq!(status(&p).as_deref(), Some("first"));
    one.wait_for(|e| is_presence(e, None, "alice@localhost/two"))
        .await;
    settle_without(&mut quiet, "presence to a resource that never sent any", |e| {
        e.name() == "presence"
    })
    .await;
}

// RFC 6121 §4.2 / §8.5.2.1.1: a resource with negative priority still receives presence.
#[tokio::test]
async fn rfc6121_4_2_negative_priority_gets_presence() {
    let (_server, mut alice, mut bob) = friends().await;
    bob.send_presence(-5).await;
    settle(&mut bob).await;
    alice.send_presence(0).await;
    bob.wait_for(|e| is_presence(e, None, "alice@localhost/a")).await;
}

// The raw wire form: presence arrives with the stanza's own children, byte for byte in
// content, and the roster item is pushed with the subscription state.
#[tokio::test]
async fn rfc6121_4_4_raw_presence_verbatim() {
    let server = server_with(&["alice", "bob"]).await;
    let mut alice = server.client_jid("alice@localhost/a", PW).await;
    let mut bob = server.raw_login("bob", PW, Some("raw")).await;
    bob.send(format!(
        "<iq type='get' id='r'><query xmlns='{ROSTER}'/></iq><presence/>"
    ))
    .await;
    bob.read_until(|e| e.attr("id") == Some("r")).await;
    alice.send_presence(0).await;
    send_sub(&mut alice, "subscribe", "bob@localhost").await;
    bob.send("<presence type='subscribed' to='alice@localhost'/>")
        .await;
    bob.read_until(|e| {
        e.name() == "iq"
            && e.get_child("query", ROSTER)
                .and_then(|q| q.children().next())
                .is_some_and(|i| i.attr("subscription") == Some("from"))
    })
    .await;
    bob.send(format!(
        "<presence><status>s</status><c xmlns='http://jabber.org/protocol/caps' hash='sha-1' node='n' ver='v'/><x xmlns='{EXT}' k='v'><deep><er>text</er></deep></x></presence>"
    ))
    .await;
    let p = alice
        .wait_for(|e| is_presence(e, None, "bob@localhost/raw") && e.get_child("x", EXT).is_some())
        .await;
    let x = p.get_child("x", EXT).unwrap();
    assert_eq!(x.attr("k"), Some("v"));
    assert_eq!(
        x.get_child("deep", EXT)
            .and_then(|d| d.get_child("er", EXT))
            .map(|e| e.text())
            .as_deref(),
        Some("text")
    );
    let c = p
        .get_child("c", "http://jabber.org/protocol/caps")
        .expect("caps kept");
    assert_eq!(c.attr("ver"), Some("v"));
}

// RFC 6120 §7.7.2.2 with RFC 6121 §4.5: when a new connection takes over a full JID, the
// old session's end does not leave the resource looking unavailable to contacts. (Raw
// clients: tokio-xmpp would reconnect the replaced one.)
#[tokio::test]
async fn rfc6121_4_5_replaced_session_stays_available() {
    let (server, _alice, mut bob) = friends().await;
    bob.send_presence(0).await;
    let mut old = server.raw_login("alice", PW, Some("r")).await;
    old.send("<presence><status>old</status></presence>").await;
    bob.wait_for(|e| is_presence(e, None, "alice@localhost/r") && status(e).as_deref() == Some("old"))
        .await;
    let mut new = server.raw_login("alice", PW, Some("r")).await;
    new.send("<presence><status>new</status></presence>").await;
    // The old connection is told of the conflict and closed.
    let e = old.expect_stream_error().await;
    e.assert_condition(&["conflict"]);
    tokio::time::sleep(Duration::from_millis(200)).await;
    // In order: whatever came about alice/r, the last word is the new session's presence
    // (an unavailable between the two is fine: the resource was briefly gone).
    let got = settle(&mut bob).await;
    let last = got
        .iter()
        .rfind(|e| e.name() == "presence" && e.attr("from") == Some("alice@localhost/r"))
        .unwrap_or_else(|| panic!("no presence from alice/r: {}", dump(&got)));
    assert!(
        last.attr("type").is_none() && status(last).as_deref() == Some("new"),
        "{}",
        dump(&got)
    );
    // The new session's own end is broadcast as usual.
    drop(new);
    bob.wait_for(|e| is_presence(e, Some("unavailable"), "alice@localhost/r"))
        .await;
}
