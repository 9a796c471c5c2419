//! XEP-0191 Blocking Command over the shared privacy model (xep/xep-ignore-list.md §5.3),
//! with enforcement both ways (§7).

use conformance::blocking::{
    BLOCKING, BLOCKING_ERRORS as ERRORS, PW, SHORT, Setup, block, block_push as push, blocklist, condition,
    drain, no_presence_from, ok, presence_from, server_with, setup, subscribe,
};
use conformance::{TestServer, XmppClient, ns, xml};

// XEP-0191 §2: the feature is advertised.
#[tokio::test]
async fn xep0191_2_discovery() {
    let mut s = setup().await;
    let info = s
        .desk
        .iq(
            "get",
            Some("localhost"),
            &format!("<query xmlns='{}'/>", ns::DISCO_INFO),
        )
        .await;
    assert!(
        info.get_child("query", ns::DISCO_INFO)
            .unwrap()
            .children()
            .any(|f| f.name() == "feature" && f.attr("var") == Some(BLOCKING)),
        "{}",
        xml::to_string(&info)
    );
}

// XEP-0191 §3.1: an empty blocklist, then the blocked JIDs.
#[tokio::test]
async fn xep0191_3_1_blocklist() {
    let mut s = setup().await;
    assert!(blocklist(&mut s.desk).await.is_empty());
    ok(&block(
        &mut s.desk,
        "block",
        &["romeo@montague.net", "iago@shakespeare.lit"],
    )
    .await);
    let mut got = blocklist(&mut s.desk).await;
    got.sort();
    assert_eq!(got, vec!["iago@shakespeare.lit", "romeo@montague.net"]);
}

// XEP-0191 §3.2: block is acknowledged and pushed to every resource that asked for the
// blocklist, the blocking one included; a resource that never asked gets no push.
#[tokio::test]
async fn xep0191_3_2_block_push() {
    let mut s = setup().await;
    blocklist(&mut s.desk).await;
    blocklist(&mut s.phone).await;
    ok(&block(&mut s.desk, "block", &["romeo@montague.net"]).await);
    assert_eq!(push(&mut s.desk, "block").await, vec!["romeo@montague.net"]);
    assert_eq!(push(&mut s.phone, "block").await, vec!["romeo@montague.net"]);
    // A legacy client (bob never asked) sees nothing of bob's own blocks.
    ok(&block(&mut s.bob, "block", &["x@example.net"]).await);
    s.bob
        .expect_none(SHORT, "block push", |e| e.get_child("block", BLOCKING).is_some())
        .await;
}

// XEP-0191 §3.2: a block without items is bad-request; a malformed JID is jid-malformed.
#[tokio::test]
async fn xep0191_3_2_block_errors() {
    let mut s = setup().await;
    let r = block(&mut s.desk, "block", &[]).await;
    assert_eq!(condition(&r).as_deref(), Some("bad-request"));
    let r = block(&mut s.desk, "block", &["@@bad"]).await;
    assert_eq!(condition(&r).as_deref(), Some("jid-malformed"));
}

// XEP-0191 §3.3.1 (as numbered in this server's spec §7.1): the blocking user's messages and
// IQs to the blocked JID are answered not-acceptable with <blocked/>.
#[tokio::test]
async fn xep0191_3_3_1_outbound_blocked_error() {
    let mut s = setup().await;
    ok(&block(&mut s.desk, "block", &["bob@localhost"]).await);
    s.desk
        .send_xml("<message to='bob@localhost/home' id='m1' type='chat'><body>hi</body></message>")
        .await;
    let e = s
        .desk
        .wait_for(|e| e.name() == "message" && e.attr("id") == Some("m1"))
        .await;
    assert_eq!(e.attr("type"), Some("error"));
    assert_eq!(condition(&e).as_deref(), Some("not-acceptable"));
    assert!(
        e.get_child("error", ns::CLIENT)
            .unwrap()
            .get_child("blocked", ERRORS)
            .is_some(),
        "{}",
        xml::to_string(&e)
    );
    let r = s
        .desk
        .iq(
            "get",
            Some("bob@localhost/home"),
            "<query xmlns='jabber:iq:version'/>",
        )
        .await;
    assert_eq!(condition(&r).as_deref(), Some("not-acceptable"));
    s.bob.expect_no_message(SHORT).await;
}

// XEP-0191 §3.3.2: a blocked contact's messages and IQs get service-unavailable; its
// presence is dropped; nothing reaches the user.
#[tokio::test]
async fn xep0191_3_3_2_inbound_blocked() {
    let mut s = setup().await;
    ok(&block(&mut s.desk, "block", &["bob@localhost"]).await);
    s.bob
        .send_xml("<message to='alice@localhost' id='m2' type='chat'><body>hi</body></message>")
        .await;
    let e = s
        .bob
        .wait_for(|e| e.name() == "message" && e.attr("id") == Some("m2"))
        .await;
    assert_eq!(condition(&e).as_deref(), Some("service-unavailable"));
    let r = s
        .bob
        .iq(
            "get",
            Some("alice@localhost/desk"),
            "<query xmlns='jabber:iq:version'/>",
        )
        .await;
    assert_eq!(condition(&r).as_deref(), Some("service-unavailable"));
    s.bob.send_xml("<presence to='alice@localhost/desk'/>").await;
    s.bob.ping_server().await;
    s.desk
        .expect_none(SHORT, "stanza from bob", |e| {
            e.attr("from") == Some("bob@localhost/home")
        })
        .await;
}

// XEP-0191 §3.3 / §3.4: unblock one (pushed with the JID), unblock all (pushed empty);
// traffic flows again.
#[tokio::test]
async fn xep0191_3_4_unblock_and_unblock_all() {
    let mut s = setup().await;
    blocklist(&mut s.phone).await;
    ok(&block(
        &mut s.desk,
        "block",
        &["bob@localhost", "romeo@montague.net", "x@y"],
    )
    .await);
    push(&mut s.phone, "block").await;
    ok(&block(&mut s.desk, "unblock", &["bob@localhost"]).await);
    assert_eq!(push(&mut s.phone, "unblock").await, vec!["bob@localhost"]);
    s.bob.send_message("alice@localhost/desk", "again").await;
    let m = s.desk.expect_message().await;
    assert_eq!(m.attr("from"), Some("bob@localhost/home"));
    ok(&block(&mut s.desk, "unblock", &[]).await);
    assert!(push(&mut s.phone, "unblock").await.is_empty());
    assert!(blocklist(&mut s.desk).await.is_empty());
}

// XEP-0191 §3.2: blocking a contact subscribed to the user's presence sends it unavailable
// presence from each available resource; §3.3: unblocking sends the current presence.
#[tokio::test]
async fn xep0191_3_2_block_sends_unavailable() {
    let mut s = setup().await;
    // bob subscribes to alice, alice approves.
    s.bob
        .send_xml("<presence to='alice@localhost' type='subscribe'/>")
        .await;
    s.desk
        .wait_for(|e| e.name() == "presence" && e.attr("type") == Some("subscribe"))
        .await;
    s.desk
        .send_xml("<presence to='bob@localhost' type='subscribed'/>")
        .await;
    s.bob
        .wait_for(|e| {
            e.name() == "presence"
                && e.attr("from") == Some("alice@localhost/desk")
                && e.attr("type").is_none()
        })
        .await;
    ok(&block(&mut s.desk, "block", &["bob@localhost"]).await);
    s.bob
        .wait_for(|e| {
            e.name() == "presence"
                && e.attr("type") == Some("unavailable")
                && e.attr("from") == Some("alice@localhost/desk")
        })
        .await;
    // §3.3: unblocking sends the current presence again.
    while s.bob.recv_within(SHORT).await.is_some() {}
    ok(&block(&mut s.desk, "unblock", &["bob@localhost"]).await);
    s.bob
        .wait_for(|e| {
            e.name() == "presence"
                && e.attr("type").is_none()
                && e.attr("from") == Some("alice@localhost/desk")
        })
        .await;
}

// XEP-0191 §3.3.2 with nobody online: the blocked contact's message is refused, not stored
// offline; the list is loaded from storage for an account without sessions.
#[tokio::test]
async fn xep0191_3_3_2_inbound_blocked_while_offline() {
    let s = setup().await;
    let Setup {
        server,
        mut desk,
        phone,
        mut bob,
    } = s;
    ok(&block(&mut desk, "block", &["bob@localhost"]).await);
    desk.close().await;
    phone.close().await;
    bob.ping_server().await;
    bob.send_xml("<message to='alice@localhost' id='off1' type='chat'><body>hi</body></message>")
        .await;
    let e = bob.wait_for(|e| e.attr("id") == Some("off1")).await;
    assert_eq!(condition(&e).as_deref(), Some("service-unavailable"));
    let mut desk = server.client_jid("alice@localhost/desk", PW).await;
    desk.send_presence(1).await;
    desk.expect_no_message(SHORT).await;
    assert_eq!(blocklist(&mut desk).await, vec!["bob@localhost"]);
}

/// alice/desk, bob/home and carol/c, available; alice and bob subscribed to each other, and
/// carol to both of them (the control: she sees what bob must not).
async fn triangle() -> (TestServer, XmppClient, XmppClient, XmppClient) {
    let server = server_with(&["alice", "bob", "carol"]).await;
    let mut alice = server.client_jid("alice@localhost/desk", PW).await;
    let mut bob = server.client_jid("bob@localhost/home", PW).await;
    let mut carol = server.client_jid("carol@localhost/c", PW).await;
    subscribe(&mut alice, &mut bob, "bob@localhost", "alice@localhost").await;
    subscribe(&mut bob, &mut alice, "alice@localhost", "bob@localhost").await;
    subscribe(&mut carol, &mut alice, "alice@localhost", "carol@localhost").await;
    subscribe(&mut carol, &mut bob, "bob@localhost", "carol@localhost").await;
    for c in [&mut alice, &mut bob, &mut carol] {
        c.send_presence(0).await;
        c.ping_server().await;
    }
    for c in [&mut alice, &mut bob, &mut carol] {
        drain(c).await;
    }
    (server, alice, bob, carol)
}

// XEP-0191 §3.3: once alice blocks bob, her presence broadcasts (and her unavailable
// presence when she leaves) no longer reach him, while other subscribers still get them.
#[tokio::test]
async fn xep0191_3_3_presence_broadcast_not_sent_to_blocked_contact() {
    let (_server, mut alice, mut bob, mut carol) = triangle().await;
    ok(&block(&mut alice, "block", &["bob@localhost"]).await);
    bob.wait_for(|e| presence_from(e, "alice@localhost/desk", Some("unavailable")))
        .await;
    alice.send_xml("<presence><show>away</show></presence>").await;
    let p = carol
        .wait_for(|e| presence_from(e, "alice@localhost/desk", None))
        .await;
    assert_eq!(
        p.get_child("show", ns::CLIENT).map(|s| s.text()).as_deref(),
        Some("away")
    );
    bob.ping_server().await;
    no_presence_from(&mut bob, "alice@localhost").await;
    // Leaving: carol learns it, bob (already told at block time) does not.
    alice.close().await;
    carol
        .wait_for(|e| presence_from(e, "alice@localhost/desk", Some("unavailable")))
        .await;
    no_presence_from(&mut bob, "alice@localhost").await;
}

// XEP-0191 §3.3: a blocked contact's presence updates no longer reach the user, neither as
// broadcasts nor as the answer to the user's initial presence; after unblocking they do.
#[tokio::test]
async fn xep0191_3_3_blocked_contacts_presence_not_received() {
    let (server, mut alice, mut bob, mut carol) = triangle().await;
    ok(&block(&mut alice, "block", &["bob@localhost"]).await);
    bob.wait_for(|e| presence_from(e, "alice@localhost/desk", Some("unavailable")))
        .await;
    while alice.recv_within(SHORT).await.is_some() {}
    bob.send_xml("<presence><show>away</show></presence>").await;
    carol
        .wait_for(|e| presence_from(e, "bob@localhost/home", None))
        .await;
    alice.ping_server().await;
    no_presence_from(&mut alice, "bob@localhost").await;
    // A new resource of alice's: its initial presence gets no answer from bob, and bob
    // gets nothing from it (nor from the answer to his own initial presence).
    let mut phone = server.client_jid("alice@localhost/phone", PW).await;
    phone.send_presence(0).await;
    phone.ping_server().await;
    no_presence_from(&mut phone, "bob@localhost").await;
    no_presence_from(&mut bob, "alice@localhost").await;
    let mut bob2 = server.client_jid("bob@localhost/other", PW).await;
    bob2.send_presence(0).await;
    bob2.ping_server().await;
    no_presence_from(&mut bob2, "alice@localhost").await;
    no_presence_from(&mut alice, "bob@localhost").await;
    // Unblocked: bob's updates arrive again.
    while alice.recv_within(SHORT).await.is_some() {}
    ok(&block(&mut alice, "unblock", &["bob@localhost"]).await);
    bob.send_xml("<presence><show>dnd</show></presence>").await;
    alice
        .wait_for(|e| presence_from(e, "bob@localhost/home", None))
        .await;
}

/// Asserts that `c` receives nothing at all for a while.
async fn silent(c: &mut XmppClient) {
    c.ping_server().await;
    c.expect_none(SHORT, "stanza", |_| true).await;
}

// XEP-0191 §3.3.1: what the user sends to a blocked contact and cannot be answered is
// dropped without a word: directed presence, an IQ result, a message error. The contact
// gets none of it.
#[tokio::test]
async fn xep0191_3_3_1_outbound_blocked_dropped_silently() {
    let mut s = setup().await;
    ok(&block(&mut s.desk, "block", &["bob@localhost"]).await);
    for c in [&mut s.desk, &mut s.phone, &mut s.bob] {
        drain(c).await;
    }
    s.desk.send_xml("<presence to='bob@localhost/home'/>").await;
    s.desk.send_xml("<presence to='bob@localhost'/>").await;
    s.desk
        .send_xml("<iq type='result' id='r1' to='bob@localhost/home'/>")
        .await;
    s.desk
        .send_xml(
            "<message type='error' id='e1' to='bob@localhost/home'>\
             <error type='cancel'><item-not-found xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error>\
             </message>",
        )
        .await;
    silent(&mut s.desk).await;
    silent(&mut s.bob).await;
    // A headline message is a message: not-acceptable with <blocked/>.
    s.desk
        .send_xml("<message type='headline' id='h1' to='bob@localhost'><body>x</body></message>")
        .await;
    let e = s.desk.wait_for(|e| e.attr("id") == Some("h1")).await;
    assert_eq!(condition(&e).as_deref(), Some("not-acceptable"));
    assert!(
        e.get_child("error", ns::CLIENT)
            .and_then(|err| err.get_child("blocked", ERRORS))
            .is_some(),
        "{}",
        xml::to_string(&e)
    );
    silent(&mut s.bob).await;
}

// XEP-0191 §3.3.2 for the kinds not covered above: a message to a full JID and an IQ to the
// bare JID (answered by the server for the account) get service-unavailable; an IQ result,
// a probe and a subscription request are dropped without an answer, and the request is not
// kept for a later resource.
#[tokio::test]
async fn xep0191_3_3_2_inbound_blocked_other_kinds() {
    let mut s = setup().await;
    ok(&block(&mut s.desk, "block", &["bob@localhost"]).await);
    for c in [&mut s.desk, &mut s.phone, &mut s.bob] {
        drain(c).await;
    }
    s.bob
        .send_xml("<message to='alice@localhost/phone' id='f1' type='normal'><body>x</body></message>")
        .await;
    let e = s.bob.wait_for(|e| e.attr("id") == Some("f1")).await;
    assert_eq!(condition(&e).as_deref(), Some("service-unavailable"));
    let r = s
        .bob
        .iq("get", Some("alice@localhost"), "<query xmlns='jabber:iq:last'/>")
        .await;
    assert_eq!(condition(&r).as_deref(), Some("service-unavailable"));
    s.bob
        .send_xml("<iq type='result' id='r2' to='alice@localhost/desk'/>")
        .await;
    s.bob
        .send_xml("<presence type='probe' to='alice@localhost'/>")
        .await;
    s.bob
        .send_xml("<presence type='subscribe' to='alice@localhost'/>")
        .await;
    silent(&mut s.bob).await;
    silent(&mut s.desk).await;
    silent(&mut s.phone).await;
    let mut tablet = s.server.client_jid("alice@localhost/tablet", PW).await;
    tablet.send_presence(0).await;
    tablet.ping_server().await;
    tablet
        .expect_none(SHORT, "subscription request", |e| {
            e.attr("type") == Some("subscribe")
        })
        .await;
}
